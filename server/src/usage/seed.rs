//! Synthetic usage for tests and timings: N generations spread over the last days, across organisations,
//! keys and the catalog's models, recorded through the same statements settlement uses (log, rollups,
//! ledger, projections), so every number the dashboards show reconciles with the ledger.

use crate::billing::{record, Generation};
use crate::catalog::Catalog;
use crate::money::{Nanos, Tokens};
use crate::store::{new_id, now_ms, Store};
use anyhow::{bail, Context};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;

/// Generations per transaction: 26 bound values each stays under SQLite's 32,766.
const BATCH: usize = 1_000;

pub struct SeedOptions {
    pub generations: u64,
    /// Spread over this many days before now.
    pub days: u32,
    /// Into this organisation (by name); else into `orgs` synthetic organisations, made when missing.
    pub org: Option<String>,
    pub orgs: u32,
    /// Keys per organisation (made when it has fewer).
    pub keys: u32,
    pub rng_seed: u64,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            generations: 10_000,
            days: 90,
            org: None,
            orgs: 10,
            keys: 3,
            rng_seed: 42,
        }
    }
}

async fn org_id(store: &Store, name: &str) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query_as::<_, (String,)>("SELECT id FROM orgs WHERE name = $1")
            .bind(name)
            .fetch_optional(&store.pool)
            .await?
            .map(|(i,)| i),
    )
}

/// The organisation's synthetic keys, making some (owned by its first owner) until it has `want`; its
/// real keys keep only real usage.
async fn keys_of(store: &Store, org: &str, want: u32) -> anyhow::Result<Vec<String>> {
    let list = || async {
        sqlx::query_as::<_, (String,)>(
            "SELECT id FROM api_keys WHERE org_id = $1 AND kind = 'inference' AND revoked_at IS NULL \
             AND name LIKE 'synthetic %' ORDER BY created_at",
        )
        .bind(org)
        .fetch_all(&store.pool)
        .await
        .map(|v| v.into_iter().map(|(i,)| i).collect::<Vec<_>>())
    };
    let mut have = list().await?;
    let owner: Option<(String,)> = sqlx::query_as(
        "SELECT user_id FROM memberships WHERE org_id = $1 ORDER BY role = 'owner' DESC, created_at LIMIT 1",
    )
    .bind(org)
    .fetch_optional(&store.pool)
    .await?;
    while have.len() < want as usize {
        let k = crate::keys::create_key(
            store,
            org,
            &format!("synthetic {}", have.len() + 1),
            None,
            None,
        )
        .await?;
        if let Some((u,)) = &owner {
            sqlx::query("UPDATE api_keys SET created_by = $1 WHERE id = $2")
                .bind(u)
                .bind(&k.id)
                .execute(&store.writer)
                .await?;
        }
        have = list().await?;
    }
    Ok(have)
}

/// Seeds synthetic generations; `progress` is told how many are written so far. Returns the count.
pub async fn seed(
    store: &Store,
    catalog: &Catalog,
    o: &SeedOptions,
    progress: impl Fn(u64),
) -> anyhow::Result<u64> {
    let endpoints: Vec<_> = catalog
        .models
        .values()
        .flat_map(|m| m.endpoints.iter().map(move |e| (m.clone(), e.clone())))
        .collect();
    if endpoints.is_empty() {
        bail!("the catalog has no endpoints to attribute usage to; apply a catalog first");
    }
    let mut orgs: Vec<(String, Vec<String>)> = Vec::new();
    match &o.org {
        Some(name) => {
            let id = org_id(store, name)
                .await?
                .with_context(|| format!("no organisation named {name:?}"))?;
            orgs.push((id.clone(), keys_of(store, &id, o.keys.max(1)).await?));
        }
        None => {
            for i in 1..=o.orgs.max(1) {
                let name = format!("Synthetic {i}");
                let id = match org_id(store, &name).await? {
                    Some(id) => id,
                    None => {
                        crate::accounts::create_org(
                            store,
                            &name,
                            &format!("synthetic{i}@example.com"),
                        )
                        .await?
                        .id
                    }
                };
                orgs.push((id.clone(), keys_of(store, &id, o.keys.max(1)).await?));
            }
        }
    }
    let mut rng = StdRng::seed_from_u64(o.rng_seed);
    let now = now_ms();
    let span = o.days.max(1) as i64 * 86_400_000;
    let mut written = 0u64;
    let mut charged: Vec<i64> = vec![0; orgs.len()];
    while written < o.generations {
        let n = (o.generations - written).min(BATCH as u64) as usize;
        let mut gens = Vec::with_capacity(n);
        for _ in 0..n {
            // Organisations and models follow a skewed mix (the first ones busiest), like real traffic.
            let oi = (rng.random::<f64>().powi(2) * orgs.len() as f64) as usize;
            let (org, keys) = &orgs[oi.min(orgs.len() - 1)];
            let key = &keys[rng.random_range(0..keys.len())];
            let ei = (rng.random::<f64>().powi(2) * endpoints.len() as f64) as usize;
            let (model, ep) = &endpoints[ei.min(endpoints.len() - 1)];
            // More recent days busier.
            let created_at = now - (rng.random::<f64>().powf(1.5) * span as f64) as i64;
            let roll: u32 = rng.random_range(0..100);
            let status: u16 = match roll {
                0..=2 => 502,
                3 => 429,
                4 => 499,
                _ => 200,
            };
            let prompt = rng.random_range(20..4_000u64);
            let completion = if status == 200 {
                rng.random_range(1..1_500u64)
            } else {
                0
            };
            let cache_read = if rng.random_range(0..4) == 0 {
                prompt / 2
            } else {
                0
            };
            let tokens = Tokens {
                prompt,
                completion,
                cache_read,
                cache_write: 0,
                audio: 0,
            };
            let pricing = catalog.pricing(org, model, ep);
            let (cost, charge) = if status == 200 {
                (pricing.cost(tokens), pricing.charge(tokens))
            } else {
                (Nanos::ZERO, Nanos::ZERO)
            };
            charged[oi.min(orgs.len() - 1)] += charge.0;
            let streamed = rng.random_range(0..2) == 0;
            let latency = rng.random_range(150..6_000i64);
            gens.push(Generation {
                id: format!("gen-{}", new_id()),
                org_id: org.clone(),
                key_id: key.clone(),
                model_slug: model.slug.clone(),
                provider_slug: Some(ep.provider.slug.clone()),
                endpoint_id: Some(ep.id.clone()),
                upstream_model: Some(ep.upstream_model.clone()),
                upstream_id: None,
                prompt_tokens: prompt,
                completion_tokens: completion,
                cache_read_tokens: cache_read,
                cache_write_tokens: 0,
                reasoning_tokens: completion / 5,
                usage_estimated: false,
                cost,
                charge,
                held: charge,
                latency_ms: latency,
                ttft_ms: streamed.then(|| rng.random_range(80..latency.min(1_500))),
                finish_reason: (status == 200).then(|| "stop".to_string()),
                native_finish_reason: (status == 200).then(|| "stop".to_string()),
                streamed,
                cancelled: status == 499,
                status,
                error: (status != 200 && status != 499).then(|| "synthetic upstream failure".to_string()),
                attempts: json!([{ "provider": ep.provider.slug, "endpoint_id": ep.id, "status": status,
                                   "latency_ms": latency }]),
                created_at,
                content: None,
                losses: Vec::new(),
            });
        }
        record(store, &gens).await?;
        written += n as u64;
        progress(written);
    }
    // A bulk load leaves the planner's statistics behind; refresh them as a nightly job would.
    sqlx::query("ANALYZE").execute(&store.writer).await?;
    // Credit to cover what was charged (plus $10), so balances stay positive like a paying tenant's.
    for ((org, _), spent) in orgs.iter().zip(charged) {
        crate::billing::ledger::grant(
            store,
            org,
            Nanos(spent + 10_000_000_000),
            &format!("seed:{}", new_id()),
            Some("synthetic usage"),
        )
        .await?;
    }
    Ok(written)
}
