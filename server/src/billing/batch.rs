//! Group commit: a whole batch of admissions and settlements in a handful of statements.
//!
//! Settlements are written with multi-row statements and the projections updated once per org and key.
//! Admissions of one org are first tried together: one conditional UPDATE reserves their sum, which is
//! exactly as safe as reserving each (the condition is the same inequality over the same row); if the
//! sum does not fit, each is decided alone, in order, so refusals are precise. Settlements go first, so
//! credit they release is available to the admissions of the same batch.

use super::{Generation, Hold, Loss, LossKind, Refusal};
use crate::money::Nanos;
use crate::store::{in_list, is_sqlite, new_id, now_ms, placeholders};
use sqlx::{Any, Transaction};
use std::collections::{HashMap, HashSet};

type Tx = Transaction<'static, Any>;

/// Writes many settlements; each releases its hold once and is charged once, whatever was settled before.
///
/// With `cap_unheld`, a settlement whose hold is already gone (released as its instance's, while it
/// was still running) is charged at most what its organisation and key can still pay; the rest is
/// recorded as the operator's loss, so usage never overdraws a balance or a key limit.
pub(super) async fn settle_many(
    tx: &mut Tx,
    items: &[(&Hold, &Generation)],
    cap_unheld: bool,
) -> Result<(), sqlx::Error> {
    if items.is_empty() {
        return Ok(());
    }
    let sqlite = is_sqlite(tx);
    // 1. Release the holds that are still open.
    let holds: Vec<&Hold> = items.iter().map(|(h, _)| *h).collect();
    let released = delete_holds(tx, &holds).await?;

    // Charges whose hold was released before they settled, limited to what can still be paid.
    let capped = if cap_unheld {
        cap_unheld_charges(tx, items, &released).await?
    } else {
        HashMap::new()
    };
    let owned: Vec<(&Hold, std::borrow::Cow<'_, Generation>)> = items
        .iter()
        .map(|(h, g)| match capped.get(g.id.as_str()) {
            Some(c) => (*h, std::borrow::Cow::Owned(c.clone())),
            None => (*h, std::borrow::Cow::Borrowed(*g)),
        })
        .collect();
    let items: Vec<(&Hold, &Generation)> = owned.iter().map(|(h, g)| (*h, g.as_ref())).collect();
    let items = &items[..];

    // 2. Record the generations not recorded yet.
    const GEN_COLS: usize = 27;
    let sql = format!(
        "INSERT INTO generations (id, org_id, key_id, model_slug, provider_slug, endpoint_id, upstream_model, upstream_id, \
           prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, usage_estimated, cost_nanos, charge_nanos, latency_ms, ttft_ms, finish_reason, \
           native_finish_reason, streamed, cancelled, status, error, attempts, created_at, held_nanos) VALUES {} \
         ON CONFLICT (id) DO NOTHING RETURNING id",
        placeholders(sqlite, items.len(), GEN_COLS, 1)
    );
    let mut q = sqlx::query_as::<_, (String,)>(&sql);
    for (_, g) in items {
        q = q
            .bind(&g.id)
            .bind(&g.org_id)
            .bind(&g.key_id)
            .bind(&g.model_slug)
            .bind(&g.provider_slug)
            .bind(&g.endpoint_id)
            .bind(&g.upstream_model)
            .bind(&g.upstream_id)
            .bind(g.prompt_tokens as i64)
            .bind(g.completion_tokens as i64)
            .bind(g.cache_read_tokens as i64)
            .bind(g.cache_write_tokens as i64)
            .bind(g.reasoning_tokens as i64)
            .bind(g.usage_estimated as i64)
            .bind(g.cost.0)
            .bind(g.charge.0)
            .bind(g.latency_ms)
            .bind(g.ttft_ms)
            .bind(&g.finish_reason)
            .bind(&g.native_finish_reason)
            .bind(g.streamed as i64)
            .bind(g.cancelled as i64)
            .bind(g.status as i64)
            .bind(&g.error)
            .bind(g.attempts.to_string())
            .bind(g.created_at)
            .bind(g.held.0);
    }
    let recorded: HashSet<String> = q
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();

    // The rollups and logged prompts of exactly the generations recorded now.
    let mut seen_rec = HashSet::new();
    let fresh: Vec<&Generation> = items
        .iter()
        .map(|(_, g)| *g)
        .filter(|g| recorded.contains(&g.id) && seen_rec.insert(g.id.as_str()))
        .collect();
    crate::usage::rollup::add(tx, &fresh).await?;
    crate::usage::rollup::keep_content(tx, &fresh).await?;
    let losses: Vec<(&Generation, usize, &Loss)> = fresh
        .iter()
        .flat_map(|g| g.losses.iter().enumerate().map(move |(i, l)| (*g, i, l)))
        .collect();
    record_losses(tx, &losses).await?;

    // 3. One usage ledger entry per newly recorded, charged generation.
    let now = now_ms();
    let mut seen = HashSet::new();
    let charged: Vec<&Generation> = items
        .iter()
        .map(|(_, g)| *g)
        .filter(|g| recorded.contains(&g.id) && g.charge.0 != 0 && seen.insert(g.id.clone()))
        .collect();
    let mut billed: HashSet<String> = HashSet::new();
    if !charged.is_empty() {
        let sql = format!(
            "INSERT INTO ledger (id, org_id, amount_nanos, kind, idempotency_key, reference, created_at) VALUES {} \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING reference",
            placeholders(sqlite, charged.len(), 7, 1)
        );
        let mut q = sqlx::query_as::<_, (Option<String>,)>(&sql);
        for g in &charged {
            q = q
                .bind(new_id())
                .bind(&g.org_id)
                .bind(-g.charge.0)
                .bind("usage")
                .bind(format!("gen:{}", g.id))
                .bind(&g.id)
                // Dated when the request was made, like its generation and rollup bucket, so usage
                // over any range reads the same in the ledger and in the dashboards.
                .bind(g.created_at);
        }
        billed = q
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .filter_map(|(r,)| r)
            .collect();
    }

    // 4. Projections, once per org and per key.
    #[derive(Default)]
    struct Delta {
        reserved: i64,
        usage: i64,
        used: bool,
    }
    let mut orgs: HashMap<&str, Delta> = HashMap::new();
    let mut keys: HashMap<&str, Delta> = HashMap::new();
    let mut released_once = HashSet::new();
    let mut billed_once = HashSet::new();
    for (h, g) in items {
        if released.contains(&h.id) && released_once.insert(h.id.as_str()) {
            orgs.entry(&h.org_id).or_default().reserved += h.amount.0;
            keys.entry(&h.key_id).or_default().reserved += h.amount.0;
        }
        if billed.contains(&g.id) && billed_once.insert(g.id.as_str()) {
            orgs.entry(&g.org_id).or_default().usage += g.charge.0;
            keys.entry(&g.key_id).or_default().usage += g.charge.0;
        }
        if recorded.contains(&g.id) {
            keys.entry(&g.key_id).or_default().used = true;
        }
    }
    for (org, d) in orgs {
        sqlx::query("UPDATE orgs SET reserved_nanos = reserved_nanos - $1, usage_nanos = usage_nanos + $2 WHERE id = $3")
            .bind(d.reserved)
            .bind(d.usage)
            .bind(org)
            .execute(&mut **tx)
            .await?;
    }
    for (key, d) in keys {
        sqlx::query(
            "UPDATE api_keys SET reserved_nanos = reserved_nanos - $1, usage_nanos = usage_nanos + $2, \
             period_usage_nanos = period_usage_nanos + $2, \
             last_used_at = COALESCE($3, last_used_at) WHERE id = $4",
        )
        .bind(d.reserved)
        .bind(d.usage)
        .bind(d.used.then_some(now))
        .bind(key)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Deletes the holds that are still there; returns which it deleted (each is released once).
async fn delete_holds(tx: &mut Tx, holds: &[&Hold]) -> Result<HashSet<String>, sqlx::Error> {
    let sql = format!(
        "DELETE FROM holds WHERE id IN ({}) RETURNING id",
        in_list(is_sqlite(tx), holds.len())
    );
    let mut q = sqlx::query_as::<_, (String,)>(&sql);
    for h in holds {
        q = q.bind(&h.id);
    }
    Ok(q.fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
}

/// Releases holds that are still open (a request that gave up on its admission); each once.
pub(super) async fn release_many(tx: &mut Tx, holds: &[&Hold]) -> Result<(), sqlx::Error> {
    if holds.is_empty() {
        return Ok(());
    }
    let released = delete_holds(tx, holds).await?;
    let mut once = HashSet::new();
    for h in holds {
        if released.contains(&h.id) && once.insert(h.id.as_str()) {
            sqlx::query("UPDATE orgs SET reserved_nanos = reserved_nanos - $1 WHERE id = $2")
                .bind(h.amount.0)
                .bind(&h.org_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("UPDATE api_keys SET reserved_nanos = reserved_nanos - $1 WHERE id = $2")
                .bind(h.amount.0)
                .bind(&h.key_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Writes operator losses: (the generation, the loss's number in it, the loss).
pub(super) async fn record_losses(
    tx: &mut Tx,
    losses: &[(&Generation, usize, &Loss)],
) -> Result<(), sqlx::Error> {
    if losses.is_empty() {
        return Ok(());
    }
    let sqlite = is_sqlite(tx);
    let sql = format!(
        "INSERT INTO operator_losses (id, generation_id, org_id, provider_slug, endpoint_id, kind, cost_nanos, \
           uncollected_nanos, note, created_at) VALUES {} ON CONFLICT (id) DO NOTHING",
        placeholders(sqlite, losses.len(), 10, 1)
    );
    let mut q = sqlx::query(&sql);
    for (g, i, l) in losses {
        q = q
            .bind(format!("{}:{i}", g.id))
            .bind(&g.id)
            .bind(&g.org_id)
            .bind(&l.provider_slug)
            .bind(&l.endpoint_id)
            .bind(l.kind.as_str())
            .bind(l.cost.0)
            .bind(l.uncollected.0)
            .bind(&l.note)
            .bind(g.created_at);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// For settlements whose hold was not there to release (and that are not recorded yet): the charge
/// each can still have, in order, without taking its organisation's balance or its key's limit below
/// zero; the generations whose charge had to shrink, with the difference as a loss.
async fn cap_unheld_charges(
    tx: &mut Tx,
    items: &[(&Hold, &Generation)],
    released: &HashSet<String>,
) -> Result<HashMap<String, Generation>, sqlx::Error> {
    let mut out = HashMap::new();
    let unheld: Vec<&Generation> = items
        .iter()
        .filter(|(h, g)| !released.contains(&h.id) && g.charge.0 > 0)
        .map(|(_, g)| *g)
        .collect();
    if unheld.is_empty() {
        return Ok(out);
    }
    let mut room_org: HashMap<String, i64> = HashMap::new();
    let mut room_key: HashMap<String, Option<i64>> = HashMap::new();
    for g in unheld {
        let known: Option<(String,)> = sqlx::query_as("SELECT id FROM generations WHERE id = $1")
            .bind(&g.id)
            .fetch_optional(&mut **tx)
            .await?;
        if known.is_some() || out.contains_key(&g.id) {
            continue; // settled before: changes nothing
        }
        if !room_org.contains_key(&g.org_id) {
            let (r,): (i64,) = sqlx::query_as(
                "SELECT credits_nanos - usage_nanos - reserved_nanos FROM orgs WHERE id = $1",
            )
            .bind(&g.org_id)
            .fetch_one(&mut **tx)
            .await?;
            room_org.insert(g.org_id.clone(), r);
        }
        if !room_key.contains_key(&g.key_id) {
            let (r,): (Option<i64>,) = sqlx::query_as(
                "SELECT limit_nanos - period_usage_nanos - reserved_nanos FROM api_keys WHERE id = $1",
            )
            .bind(&g.key_id)
            .fetch_one(&mut **tx)
            .await?;
            room_key.insert(g.key_id.clone(), r);
        }
        let org_room = room_org[&g.org_id].max(0);
        let key_room = room_key[&g.key_id].map_or(i64::MAX, |r| r.max(0));
        let charge = g.charge.0.min(org_room).min(key_room);
        *room_org.entry(g.org_id.clone()).or_default() -= charge;
        if let Some(Some(r)) = room_key.get_mut(&g.key_id) {
            *r -= charge;
        }
        if charge < g.charge.0 {
            let over = g.charge.0 - charge;
            tracing::warn!(generation = %g.id, charge = g.charge.0, payable = charge,
                "a settlement's hold was released before it settled; charged what the balance allows, the rest is the operator's loss");
            let mut c = g.clone();
            c.losses.push(Loss {
                kind: LossKind::HoldReleased,
                provider_slug: g.provider_slug.clone().unwrap_or_default(),
                endpoint_id: g.endpoint_id.clone().unwrap_or_default(),
                cost: Nanos(
                    ((g.cost.0 as i128 * over as i128 + g.charge.0 as i128 - 1)
                        / g.charge.0 as i128) as i64,
                ),
                uncollected: Nanos(over),
                note: Some("the hold was released before the request settled".into()),
            });
            c.charge = Nanos(charge);
            out.insert(g.id.clone(), c);
        }
    }
    Ok(out)
}

/// Decides many admissions; returns one outcome per hold, in order.
pub(super) async fn admit_many(
    tx: &mut Tx,
    holds: &[&Hold],
    instance_id: &str,
) -> Result<Vec<Result<(), Refusal>>, sqlx::Error> {
    // Keys whose limit resets start a new period the first time a request of that period arrives.
    let mut rolled: HashSet<(&str, i64)> = HashSet::new();
    for h in holds {
        if let Some(start) = h.period_start {
            if rolled.insert((&h.key_id, start)) {
                sqlx::query(
                    "UPDATE api_keys SET period_usage_nanos = 0, period_start = $1 \
                     WHERE id = $2 AND (period_start IS NULL OR period_start < $1)",
                )
                .bind(start)
                .bind(&h.key_id)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    let mut out: Vec<Option<Result<(), Refusal>>> = vec![None; holds.len()];
    let mut by_org: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, h) in holds.iter().enumerate() {
        match by_org.iter_mut().find(|(o, _)| *o == h.org_id) {
            Some((_, v)) => v.push(i),
            None => by_org.push((&h.org_id, vec![i])),
        }
    }
    for (org, idxs) in by_org {
        let total: i64 = idxs.iter().map(|&i| holds[i].amount.0).sum();
        let together = idxs.len() > 1
            && sqlx::query(
                "UPDATE orgs SET reserved_nanos = reserved_nanos + $1 WHERE id = $2 AND credits_nanos - usage_nanos - reserved_nanos >= $1",
            )
            .bind(total)
            .bind(org)
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
        if !together {
            for &i in &idxs {
                out[i] = Some(super::reserve_one(tx, holds[i]).await?);
            }
            continue;
        }
        // The org reserved the sum; now each key's share.
        let mut by_key: Vec<(&str, Vec<usize>)> = Vec::new();
        for &i in &idxs {
            match by_key.iter_mut().find(|(k, _)| *k == holds[i].key_id) {
                Some((_, v)) => v.push(i),
                None => by_key.push((&holds[i].key_id, vec![i])),
            }
        }
        let mut given_back = 0i64;
        for (key, kidx) in by_key {
            let ktotal: i64 = kidx.iter().map(|&i| holds[i].amount.0).sum();
            let fits = sqlx::query(
                "UPDATE api_keys SET reserved_nanos = reserved_nanos + $1 \
                 WHERE id = $2 AND (limit_nanos IS NULL OR limit_nanos - period_usage_nanos - reserved_nanos >= $1)",
            )
            .bind(ktotal)
            .bind(key)
            .execute(&mut **tx)
            .await?
            .rows_affected()
                == 1;
            if fits {
                for &i in &kidx {
                    out[i] = Some(Ok(()));
                }
                continue;
            }
            for &i in &kidx {
                let r = super::reserve_key(tx, holds[i]).await?;
                if r.is_err() {
                    given_back += holds[i].amount.0;
                }
                out[i] = Some(r);
            }
        }
        if given_back != 0 {
            sqlx::query("UPDATE orgs SET reserved_nanos = reserved_nanos - $1 WHERE id = $2")
                .bind(given_back)
                .bind(org)
                .execute(&mut **tx)
                .await?;
        }
    }
    let out: Vec<Result<(), Refusal>> = out
        .into_iter()
        .map(|o| o.unwrap_or(Err(Refusal::Unavailable("not decided".into()))))
        .collect();

    let admitted: Vec<&Hold> = holds
        .iter()
        .zip(&out)
        .filter(|(_, r)| r.is_ok())
        .map(|(h, _)| *h)
        .collect();
    if !admitted.is_empty() {
        let sqlite = is_sqlite(tx);
        let sql = format!(
            "INSERT INTO holds (id, org_id, key_id, amount_nanos, instance_id, created_at) VALUES {}",
            placeholders(sqlite, admitted.len(), 6, 1)
        );
        let now = now_ms();
        let mut q = sqlx::query(&sql);
        for h in admitted {
            q = q
                .bind(&h.id)
                .bind(&h.org_id)
                .bind(&h.key_id)
                .bind(h.amount.0)
                .bind(instance_id)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(out)
}
