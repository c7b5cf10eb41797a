//! The catalog as platform admins run it from the browser. Every change is one transaction that also
//! bumps the catalog version (so every instance reloads its snapshot within `catalog_refresh_ms`) and
//! writes an audit row with the record before and after; secrets never reach the audit log.

use super::health::{self, Health, MINUTE};
use crate::money::{Markup, MtokPrice, Pricing};
use crate::state::AppState;
use crate::store::{new_id, now_ms};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use switchyard_app::catalog_admin::{
    AdminEndpoint, AdminModel, AuditRow, CatalogAdmin, CatalogOp, HealthView, ProviderRow,
    UpstreamList, UpstreamModel,
};

/// The windows the admin page shows.
const WINDOWS: [(i64, &str); 3] = [
    (5 * MINUTE, "5 min"),
    (60 * MINUTE, "1 h"),
    (1440 * MINUTE, "1 day"),
];

fn bp_percent(bp: Option<i64>) -> String {
    bp.map_or("—".into(), |b| format!("{}.{:02} %", b / 100, b % 100))
}

fn percentiles(v: &[i64]) -> String {
    match (
        Health::percentile(v, 50),
        Health::percentile(v, 95),
        Health::percentile(v, 99),
    ) {
        (Some(a), Some(b), Some(c)) => format!("p50 {a} · p95 {b} · p99 {c} ms"),
        _ => "—".into(),
    }
}

/// Whether an endpoint's last-5-minutes error rate passes the threshold (with enough traffic to say).
pub fn degraded(h: Option<&Health>, threshold_percent: u64) -> bool {
    h.is_some_and(|h| {
        h.requests - h.client_errors >= 5
            && h.error_bp()
                .is_some_and(|e| e > threshold_percent as i64 * 100)
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

fn internal(e: impl std::fmt::Display) -> String {
    crate::web::dashboard::internal(e)
}

/// "$0.50" per million as the forms show it: exact decimal USD without the sign.
fn mtok(n: i64) -> String {
    let s = MtokPrice(n).to_usd_string();
    let (i, f) = s.split_once('.').unwrap_or((&s, ""));
    format!("{i}.{f:0<2}")
}

fn percent(ppm: i64) -> String {
    Markup(ppm).to_percent_string()
}

fn parse_price(field: &str, v: &str) -> Result<MtokPrice, String> {
    MtokPrice::parse_usd(v.trim().trim_start_matches('$')).map_err(|e| format!("{field}: {e}"))
}

fn parse_optional_percent(field: &str, v: &str) -> Result<Option<Markup>, String> {
    let v = v.trim().trim_end_matches('%').trim();
    if v.is_empty() {
        return Ok(None);
    }
    Markup::parse_percent(v)
        .map(Some)
        .map_err(|e| format!("{field}: {e}"))
}

/// The catalog page: every provider, model and endpoint (enabled or not), with prices resolved the
/// way the gateway resolves them, and the newest audit entries.
pub async fn page(state: &AppState) -> Result<CatalogAdmin, String> {
    let pool = &state.store.pool;
    let rules: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT scope, ppm FROM markup_rules")
            .fetch_all(pool)
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
    let default = rules.get("default").copied().unwrap_or(0);
    type P = (
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
        i64,
    );
    let providers: Vec<P> = sqlx::query_as(
        "SELECT p.id, p.slug, p.name, p.kind, p.base_url, p.api_key_last4, p.enabled, p.website, p.data_policy, \
                (SELECT COUNT(*) FROM endpoints e WHERE e.provider_id = p.id) \
         FROM providers p ORDER BY p.name",
    )
    .fetch_all(pool)
    .await
    .map_err(internal)?;
    let mut provider_names = BTreeMap::new();
    let providers: Vec<ProviderRow> = providers
        .into_iter()
        .map(
            |(id, slug, name, kind, base_url, last4, enabled, website, policy, n)| {
                provider_names.insert(id.clone(), name.clone());
                ProviderRow {
                    markup_percent: rules.get(&format!("provider:{id}")).map(|&p| percent(p)),
                    id,
                    slug,
                    name,
                    kind,
                    base_url,
                    key_hint: last4.map(|l| format!("••••{l}")),
                    enabled: enabled != 0,
                    website: website.unwrap_or_default(),
                    data_policy: policy.unwrap_or_default(),
                    endpoints: n as u32,
                    degraded: false,
                }
            },
        )
        .collect();
    type M = (
        String,
        String,
        String,
        String,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
    );
    let models: Vec<M> = sqlx::query_as(
        "SELECT id, slug, name, description, context_length, enabled, hidden, sale_input_per_mtok_nanos, \
                sale_output_per_mtok_nanos FROM models ORDER BY slug",
    )
    .fetch_all(pool)
    .await
    .map_err(internal)?;
    type E = (String, String, String, String, i64, i64, i64);
    let endpoints: Vec<E> = sqlx::query_as(
        "SELECT id, model_id, provider_id, upstream_model, input_per_mtok_nanos, output_per_mtok_nanos, enabled \
         FROM endpoints ORDER BY created_at",
    )
    .fetch_all(pool)
    .await
    .map_err(internal)?;
    let windows: Vec<i64> = WINDOWS.iter().map(|w| w.0).collect();
    let health = health::compute(&state.store, now_ms(), &windows)
        .await
        .map_err(internal)?;
    let threshold = state.cfg.degraded_error_percent;
    let mut degraded_providers = std::collections::BTreeSet::new();
    let mut by_model: BTreeMap<String, Vec<E>> = BTreeMap::new();
    for e in endpoints {
        by_model.entry(e.1.clone()).or_default().push(e);
    }
    let models = models
        .into_iter()
        .map(
            |(id, slug, name, description, ctx, enabled, hidden, sale_in, sale_out)| {
                let sale = sale_in
                    .zip(sale_out)
                    .map(|(i, o)| (MtokPrice(i), MtokPrice(o)));
                let model_markup = rules.get(&format!("model:{id}")).copied();
                let endpoints = by_model
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(eid, _, pid, upstream, input, output, on)| {
                        let (markup, rule) =
                            match (model_markup, rules.get(&format!("provider:{pid}"))) {
                                (Some(m), _) => (m, format!("model markup {} %", percent(m))),
                                (None, Some(&p)) => {
                                    (p, format!("provider markup {} %", percent(p)))
                                }
                                (None, None) => {
                                    (default, format!("default markup {} %", percent(default)))
                                }
                            };
                        let pricing = Pricing {
                            input: MtokPrice(input),
                            output: MtokPrice(output),
                            markup: Markup(markup),
                            sale,
                        };
                        let (si, so) = pricing.sale_per_mtok_usd();
                        let fix = |s: String| mtok(MtokPrice::parse_usd(&s).map_or(0, |p| p.0));
                        let is_degraded = degraded(health[0].get(&eid), threshold);
                        if is_degraded {
                            degraded_providers.insert(pid.clone());
                        }
                        let views = WINDOWS
                            .iter()
                            .zip(&health)
                            .map(|((_, label), map)| {
                                let h = map.get(&eid).cloned().unwrap_or_default();
                                HealthView {
                                    window: label.to_string(),
                                    requests: h.requests,
                                    uptime: bp_percent(h.uptime_bp()),
                                    error_rate: bp_percent(h.error_bp()),
                                    latency: percentiles(&h.latency),
                                    ttft: percentiles(&h.ttft),
                                }
                            })
                            .collect();
                        AdminEndpoint {
                            health: views,
                            degraded: is_degraded,
                            id: eid,
                            provider: provider_names.get(&pid).cloned().unwrap_or(pid),
                            upstream_model: upstream,
                            enabled: on != 0,
                            cost_input: mtok(input),
                            cost_output: mtok(output),
                            sale_input: fix(si),
                            sale_output: fix(so),
                            margin: pricing.margin_bp().map_or("—".into(), |bp| {
                                format!("{}.{:02} %", bp / 100, (bp % 100).abs())
                            }),
                            price_rule: if sale.is_some() {
                                "sale price".into()
                            } else {
                                rule
                            },
                        }
                    })
                    .collect();
                AdminModel {
                    id,
                    slug,
                    name,
                    description,
                    context_length: ctx.max(0) as u64,
                    enabled: enabled != 0,
                    hidden: hidden != 0,
                    sale_input: sale.map(|(i, _)| mtok(i.0)),
                    sale_output: sale.map(|(_, o)| mtok(o.0)),
                    markup_percent: model_markup.map(percent),
                    endpoints,
                }
            },
        )
        .collect();
    let providers = providers
        .into_iter()
        .map(|mut p| {
            p.degraded = degraded_providers.contains(&p.id);
            p
        })
        .collect();
    Ok(CatalogAdmin {
        default_markup_percent: percent(default),
        providers,
        models,
        audit: audit_rows(state, 100).await?,
    })
}

/// The newest audit entries, each change summarised field by field.
pub async fn audit_rows(state: &AppState, limit: i64) -> Result<Vec<AuditRow>, String> {
    type A = (
        i64,
        Option<String>,
        String,
        String,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<A> = sqlx::query_as(
        "SELECT a.created_at, u.email, a.action, a.target, a.before_json, a.after_json \
         FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id ORDER BY a.created_at DESC, a.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&state.store.pool)
    .await
    .map_err(internal)?;
    Ok(rows
        .into_iter()
        .map(|(at, who, action, target, before, after)| AuditRow {
            date: crate::web::minute(at),
            actor: who.unwrap_or_else(|| "the operator (CLI)".into()),
            action,
            target,
            change: summarize(before.as_deref(), after.as_deref()),
        })
        .collect())
}

/// "name: A → B; enabled: true → false" (or every field, for a new record).
fn summarize(before: Option<&str>, after: Option<&str>) -> String {
    let parse = |s: Option<&str>| -> BTreeMap<String, Value> {
        s.and_then(|s| serde_json::from_str::<BTreeMap<String, Value>>(s).ok())
            .unwrap_or_default()
    };
    let (b, a) = (parse(before), parse(after));
    let show = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "—".to_string(),
        Some(Value::String(s)) if s.is_empty() => "—".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let mut parts = Vec::new();
    for k in b
        .keys()
        .chain(a.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (b.get(k), a.get(k));
        if x != y {
            if b.is_empty() {
                parts.push(format!("{k}: {}", show(y)));
            } else {
                parts.push(format!("{k}: {} → {}", show(x), show(y)));
            }
        }
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join("; ")
    }
}

/// Writes an audit row inside the change's transaction.
pub async fn record(
    tx: &mut Tx,
    actor: Option<&str>,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, actor_id, action, target, before_json, after_json, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(before.map(|v| v.to_string()))
    .bind(after.map(|v| v.to_string()))
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the catalog version on, so that every instance reloads its snapshot.
pub async fn bump(tx: &mut Tx) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE catalog_state SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn provider_json(tx: &mut Tx, id: &str) -> Result<Option<Value>, sqlx::Error> {
    type R = (
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        Option<String>,
        Option<String>,
    );
    let r: Option<R> = sqlx::query_as(
        "SELECT slug, name, kind, base_url, api_key_last4, enabled, website, data_policy FROM providers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let markup = markup_of(tx, &format!("provider:{id}")).await?;
    Ok(r.map(
        |(slug, name, kind, base_url, last4, enabled, website, policy)| {
            json!({"slug": slug, "name": name, "kind": kind, "base_url": base_url,
               "api_key": last4.map(|l| format!("••••{l}")), "enabled": enabled != 0,
               "website": website, "data_policy": policy, "markup": markup})
        },
    ))
}

async fn markup_of(tx: &mut Tx, scope: &str) -> Result<Option<String>, sqlx::Error> {
    let r: Option<(i64,)> = sqlx::query_as("SELECT ppm FROM markup_rules WHERE scope = $1")
        .bind(scope)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(r.map(|(p,)| format!("{} %", percent(p))))
}

async fn set_markup(tx: &mut Tx, scope: &str, m: Option<Markup>) -> Result<(), sqlx::Error> {
    match m {
        Some(m) => {
            sqlx::query(
                "INSERT INTO markup_rules (scope, ppm, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (scope) DO UPDATE SET ppm = excluded.ppm, updated_at = excluded.updated_at",
            )
            .bind(scope)
            .bind(m.0)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM markup_rules WHERE scope = $1")
                .bind(scope)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

async fn model_json(tx: &mut Tx, id: &str) -> Result<Option<Value>, sqlx::Error> {
    type R = (
        String,
        String,
        String,
        i64,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
    );
    let r: Option<R> = sqlx::query_as(
        "SELECT slug, name, description, context_length, enabled, hidden, sale_input_per_mtok_nanos, \
                sale_output_per_mtok_nanos FROM models WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let markup = markup_of(tx, &format!("model:{id}")).await?;
    Ok(
        r.map(|(slug, name, description, ctx, enabled, hidden, si, so)| {
            json!({"slug": slug, "name": name, "description": description, "context_length": ctx,
               "enabled": enabled != 0, "hidden": hidden != 0,
               "sale_input": si.map(mtok), "sale_output": so.map(mtok), "markup": markup})
        }),
    )
}

async fn endpoint_json(tx: &mut Tx, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let r: Option<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT m.slug, e.upstream_model, e.input_per_mtok_nanos, e.output_per_mtok_nanos, e.enabled \
         FROM endpoints e JOIN models m ON m.id = e.model_id WHERE e.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(r.map(|(model, upstream, i, o, enabled)| {
        json!({"model": model, "upstream_model": upstream, "cost_input": mtok(i),
               "cost_output": mtok(o), "enabled": enabled != 0})
    }))
}

fn check_base_url(v: &str) -> Result<String, String> {
    let v = v.trim().trim_end_matches('/');
    let ok = reqwest::Url::parse(v)
        .ok()
        .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !ok {
        return Err("base URL: an http(s) address like https://api.openai.com/v1".into());
    }
    Ok(v.to_string())
}

fn check_slug(v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !v.starts_with('-');
    if !ok {
        return Err("slug: lower-case letters, digits and dashes, like openai or my-vllm".into());
    }
    Ok(v.to_string())
}

/// Makes one change as platform admin `actor`; returns what to tell them.
pub async fn change(state: &AppState, actor: &str, op: CatalogOp) -> Result<String, String> {
    let mut tx = state.store.writer.begin().await.map_err(internal)?;
    let said = apply(state, &mut tx, actor, op).await?;
    bump(&mut tx).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    // This instance serves the change at once; the others within `catalog_refresh_ms`.
    if let Err(e) = state.catalog.refresh(&state.store, &state.cipher).await {
        tracing::warn!(error = %e, "reloading the catalog after a change failed; the refresher will retry");
    }
    Ok(said)
}

async fn apply(
    state: &AppState,
    tx: &mut Tx,
    actor: &str,
    op: CatalogOp,
) -> Result<String, String> {
    let now = now_ms();
    match op {
        CatalogOp::SetDefaultMarkup { percent: p } => {
            let m = parse_optional_percent("default markup", &p)?
                .ok_or("default markup: a percentage like 10 or 5.5")?;
            let before = markup_of(tx, "default").await.map_err(internal)?;
            set_markup(tx, "default", Some(m)).await.map_err(internal)?;
            record(
                tx,
                Some(actor),
                "set default markup",
                "catalog",
                Some(json!({"markup": before})),
                Some(json!({"markup": format!("{} %", percent(m.0))})),
            )
            .await
            .map_err(internal)?;
            Ok(format!("default markup is {} %", percent(m.0)))
        }
        CatalogOp::SaveProvider {
            id,
            slug,
            name,
            kind,
            base_url,
            api_key,
            website,
            data_policy,
            markup_percent,
        } => {
            let slug = check_slug(&slug)?;
            let name = name.trim().to_string();
            if name.is_empty() {
                return Err("name: required".into());
            }
            let kind = super::ProviderKind::parse(kind.trim())
                .ok_or("kind: one of the wire protocols offered (openai)")?;
            let base_url = check_base_url(&base_url)?;
            let markup = parse_optional_percent("markup", &markup_percent)?;
            let key = api_key.trim();
            let (enc, last4) = if key.is_empty() {
                (None, None)
            } else {
                let tail: String = key
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                (Some(state.cipher.encrypt(key)), Some(tail))
            };
            let opt = |s: &str| {
                let s = s.trim();
                (!s.is_empty()).then(|| s.to_string())
            };
            let taken: Option<(String,)> =
                sqlx::query_as("SELECT id FROM providers WHERE slug = $1")
                    .bind(&slug)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(internal)?;
            let (id, before) = match id {
                Some(id) => {
                    let before = provider_json(tx, &id).await.map_err(internal)?;
                    if before.is_none() {
                        return Err("no such provider".into());
                    }
                    if taken.is_some_and(|(t,)| t != id) {
                        return Err(format!("slug: another provider is already called {slug}"));
                    }
                    sqlx::query(
                        "UPDATE providers SET slug = $1, name = $2, kind = $3, base_url = $4, \
                         api_key_enc = COALESCE($5, api_key_enc), api_key_last4 = COALESCE($6, api_key_last4), \
                         website = $7, data_policy = $8, updated_at = $9 WHERE id = $10",
                    )
                    .bind(&slug)
                    .bind(&name)
                    .bind(kind.as_str())
                    .bind(&base_url)
                    .bind(&enc)
                    .bind(&last4)
                    .bind(opt(&website))
                    .bind(opt(&data_policy))
                    .bind(now)
                    .bind(&id)
                    .execute(&mut **tx)
                    .await
                    .map_err(internal)?;
                    (id, before)
                }
                None => {
                    if taken.is_some() {
                        return Err(format!("slug: a provider is already called {slug}"));
                    }
                    let id = new_id();
                    sqlx::query(
                        "INSERT INTO providers (id, slug, name, kind, base_url, api_key_enc, api_key_last4, website, \
                         data_policy, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10)",
                    )
                    .bind(&id)
                    .bind(&slug)
                    .bind(&name)
                    .bind(kind.as_str())
                    .bind(&base_url)
                    .bind(&enc)
                    .bind(&last4)
                    .bind(opt(&website))
                    .bind(opt(&data_policy))
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(internal)?;
                    (id, None)
                }
            };
            set_markup(tx, &format!("provider:{id}"), markup)
                .await
                .map_err(internal)?;
            let after = provider_json(tx, &id).await.map_err(internal)?;
            let action = if before.is_some() {
                "edit provider"
            } else {
                "add provider"
            };
            record(tx, Some(actor), action, &slug, before.clone(), after)
                .await
                .map_err(internal)?;
            Ok(if before.is_some() {
                format!("{name} saved")
            } else {
                format!("{name} added: test the connection, then import its models")
            })
        }
        CatalogOp::SetProviderEnabled { id, enabled } => {
            let before = provider_json(tx, &id)
                .await
                .map_err(internal)?
                .ok_or("no such provider")?;
            sqlx::query("UPDATE providers SET enabled = $1, updated_at = $2 WHERE id = $3")
                .bind(enabled as i64)
                .bind(now)
                .bind(&id)
                .execute(&mut **tx)
                .await
                .map_err(internal)?;
            let after = provider_json(tx, &id).await.map_err(internal)?;
            let slug = before["slug"].as_str().unwrap_or_default().to_string();
            let action = if enabled {
                "enable provider"
            } else {
                "disable provider"
            };
            record(tx, Some(actor), action, &slug, Some(before), after)
                .await
                .map_err(internal)?;
            Ok(if enabled {
                format!("{slug} serves traffic again")
            } else {
                format!("{slug} is disabled: its endpoints get no traffic")
            })
        }
        CatalogOp::Import {
            provider_id,
            upstream,
        } => {
            let (pslug,): (String,) = sqlx::query_as("SELECT slug FROM providers WHERE id = $1")
                .bind(&provider_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(internal)?
                .ok_or("no such provider")?;
            let wanted: Vec<String> = upstream
                .iter()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect();
            if wanted.is_empty() {
                return Err("tick at least one model to import".into());
            }
            // Context lengths the provider reports, to pre-fill.
            let listed = fetch_models(state, &provider_id).await.unwrap_or_default();
            let mut added = Vec::new();
            for up in wanted {
                // Catalog ids are author/slug, like OpenRouter's; a bare upstream id takes the provider's.
                let slug = if up.contains('/') {
                    up.to_ascii_lowercase()
                } else {
                    format!("{pslug}/{}", up.to_ascii_lowercase())
                };
                if slug.len() > 128 || slug.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(format!("{up}: not a model id"));
                }
                let ctx = listed
                    .iter()
                    .find(|m| m.id == up)
                    .and_then(|m| m.context_length)
                    .unwrap_or(8192);
                let existing: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM models WHERE slug = $1")
                        .bind(&slug)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(internal)?;
                let model_id = match existing {
                    Some((id,)) => id,
                    None => {
                        let id = new_id();
                        sqlx::query(
                            "INSERT INTO models (id, slug, name, description, context_length, enabled, created_at, updated_at) \
                             VALUES ($1, $2, $3, '', $4, 1, $5, $5)",
                        )
                        .bind(&id)
                        .bind(&slug)
                        .bind(display_name(&up))
                        .bind(ctx as i64)
                        .bind(now)
                        .execute(&mut **tx)
                        .await
                        .map_err(internal)?;
                        id
                    }
                };
                // Off and unpriced until an admin sets its cost: an import never serves at $0.
                let r = sqlx::query(
                    "INSERT INTO endpoints (id, model_id, provider_id, upstream_model, input_per_mtok_nanos, \
                     output_per_mtok_nanos, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, 0, 0, $5, $5) \
                     ON CONFLICT (model_id, provider_id, upstream_model) DO NOTHING",
                )
                .bind(new_id())
                .bind(&model_id)
                .bind(&provider_id)
                .bind(&up)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(internal)?;
                if r.rows_affected() == 1 {
                    record(
                        tx,
                        Some(actor),
                        "import model",
                        &slug,
                        None,
                        Some(json!({"provider": pslug, "upstream_model": up, "context_length": ctx, "enabled": false})),
                    )
                    .await
                    .map_err(internal)?;
                    added.push(slug);
                }
            }
            Ok(if added.is_empty() {
                "those models were already in the catalog".into()
            } else {
                format!(
                    "added {}: set their cost and turn them on below",
                    added.join(", ")
                )
            })
        }
        CatalogOp::SaveModel {
            id,
            name,
            description,
            context_length,
            enabled,
            hidden,
            sale_input,
            sale_output,
            markup_percent,
        } => {
            let before = model_json(tx, &id)
                .await
                .map_err(internal)?
                .ok_or("no such model")?;
            let name = name.trim();
            if name.is_empty() {
                return Err("name: required".into());
            }
            let ctx: i64 = context_length
                .trim()
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .ok_or("context length: a whole number of tokens, like 128000")?;
            let markup = parse_optional_percent("markup", &markup_percent)?;
            let sale = match (sale_input.trim(), sale_output.trim()) {
                ("", "") => None,
                (i, o) if !i.is_empty() && !o.is_empty() => Some((
                    parse_price("sale price per 1M input", i)?,
                    parse_price("sale price per 1M output", o)?,
                )),
                _ => return Err("sale price: set both input and output, or neither".into()),
            };
            sqlx::query(
                "UPDATE models SET name = $1, description = $2, context_length = $3, enabled = $4, hidden = $5, \
                 sale_input_per_mtok_nanos = $6, sale_output_per_mtok_nanos = $7, updated_at = $8 WHERE id = $9",
            )
            .bind(name)
            .bind(description.trim())
            .bind(ctx)
            .bind(enabled as i64)
            .bind(hidden as i64)
            .bind(sale.map(|(i, _)| i.0))
            .bind(sale.map(|(_, o)| o.0))
            .bind(now)
            .bind(&id)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
            set_markup(tx, &format!("model:{id}"), markup)
                .await
                .map_err(internal)?;
            let after = model_json(tx, &id).await.map_err(internal)?;
            let slug = before["slug"].as_str().unwrap_or_default().to_string();
            record(tx, Some(actor), "edit model", &slug, Some(before), after)
                .await
                .map_err(internal)?;
            Ok(format!("{slug} saved"))
        }
        CatalogOp::SaveEndpoint {
            id,
            upstream_model,
            cost_input,
            cost_output,
            enabled,
        } => {
            let before = endpoint_json(tx, &id)
                .await
                .map_err(internal)?
                .ok_or("no such endpoint")?;
            let upstream = upstream_model.trim();
            if upstream.is_empty() {
                return Err("upstream model: required".into());
            }
            let input = parse_price("cost per 1M input", &cost_input)?;
            let output = parse_price("cost per 1M output", &cost_output)?;
            sqlx::query(
                "UPDATE endpoints SET upstream_model = $1, input_per_mtok_nanos = $2, output_per_mtok_nanos = $3, \
                 enabled = $4, updated_at = $5 WHERE id = $6",
            )
            .bind(upstream)
            .bind(input.0)
            .bind(output.0)
            .bind(enabled as i64)
            .bind(now)
            .bind(&id)
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                if e.to_string().to_ascii_lowercase().contains("unique") {
                    "that provider already serves this model under that upstream name".to_string()
                } else {
                    internal(e)
                }
            })?;
            let after = endpoint_json(tx, &id).await.map_err(internal)?;
            let model = before["model"].as_str().unwrap_or_default().to_string();
            record(
                tx,
                Some(actor),
                "edit endpoint",
                &model,
                Some(before),
                after,
            )
            .await
            .map_err(internal)?;
            Ok(format!(
                "{model}: endpoint saved{}",
                if enabled {
                    ""
                } else {
                    " (off: it gets no traffic)"
                }
            ))
        }
    }
}

/// "gpt-4o-mini" → "Gpt 4o Mini": a starting name an admin can edit.
fn display_name(id: &str) -> String {
    id.rsplit('/')
        .next()
        .unwrap_or(id)
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn provider_access(
    state: &AppState,
    id: &str,
) -> Result<(String, String, Option<String>), String> {
    let row: Option<(String, String, Option<String>)> =
        sqlx::query_as("SELECT name, base_url, api_key_enc FROM providers WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.store.pool)
            .await
            .map_err(internal)?;
    let (name, base, enc) = row.ok_or("no such provider")?;
    let key = match enc {
        Some(e) => Some(state.cipher.decrypt(&e).map_err(|_| {
            "the stored key cannot be decrypted with this server's secret key; save the key again"
                .to_string()
        })?),
        None => None,
    };
    Ok((name, base, key))
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `GET {base}/models` with the provider's key.
async fn fetch_models(state: &AppState, id: &str) -> Result<Vec<UpstreamModel>, String> {
    let (name, base, key) = provider_access(state, id).await?;
    let mut req = state
        .http
        .get(format!("{base}/models"))
        .timeout(std::time::Duration::from_secs(10));
    if let Some(k) = &key {
        req = req.bearer_auth(k);
    }
    let r = req
        .send()
        .await
        .map_err(|e| format!("{name} did not answer at {base}: {}", error_chain(&e)))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("no error message");
        return Err(format!("{name} answered {status}: {msg}"));
    }
    let Some(list) = body["data"].as_array() else {
        return Err(format!(
            "{name} answered, but not with a model list ({{\"data\": [...]}})"
        ));
    };
    Ok(list
        .iter()
        .filter_map(|m| {
            m["id"].as_str().map(|id| UpstreamModel {
                id: id.to_string(),
                context_length: m["context_length"]
                    .as_u64()
                    .or(m["context_window"].as_u64()),
                imported: false,
            })
        })
        .collect())
}

/// What the provider serves, marking what the catalog already has from it.
pub async fn provider_models(state: &AppState, id: &str) -> Result<UpstreamList, String> {
    let mut models = fetch_models(state, id).await?;
    let have: Vec<(String,)> =
        sqlx::query_as("SELECT upstream_model FROM endpoints WHERE provider_id = $1")
            .bind(id)
            .fetch_all(&state.store.pool)
            .await
            .map_err(internal)?;
    for m in &mut models {
        m.imported = have.iter().any(|(u,)| *u == m.id);
    }
    let (name,): (String,) = sqlx::query_as("SELECT name FROM providers WHERE id = $1")
        .bind(id)
        .fetch_one(&state.store.pool)
        .await
        .map_err(internal)?;
    Ok(UpstreamList {
        provider_id: id.to_string(),
        provider: name,
        models,
    })
}

/// Calls the provider's model list and reports the outcome and how long it took.
pub async fn test_provider(state: &AppState, id: &str) -> Result<String, String> {
    let started = std::time::Instant::now();
    let models = fetch_models(state, id).await?;
    let (name, base, _) = provider_access(state, id).await?;
    Ok(format!(
        "{name} answered in {} ms at {base}, listing {} model{}",
        started.elapsed().as_millis(),
        models.len(),
        if models.len() == 1 { "" } else { "s" }
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn changes_are_summarised_field_by_field() {
        assert_eq!(
            super::summarize(
                Some(r#"{"name":"A","enabled":true,"markup":null}"#),
                Some(r#"{"name":"B","enabled":true,"markup":"20 %"}"#)
            ),
            "markup: — → 20 %; name: A → B"
        );
        assert_eq!(super::summarize(None, Some(r#"{"slug":"x"}"#)), "slug: x");
        assert_eq!(super::display_name("gpt-4o-mini"), "Gpt 4o Mini");
        assert_eq!(super::display_name("meta/llama_3"), "Llama 3");
    }
}
