//! The catalog as platform admins run it from the browser. Every change is one transaction that also
//! bumps the catalog version (so every instance reloads its snapshot within `catalog_refresh_ms`) and
//! writes an audit row with the record before and after; secrets never reach the audit log.

use super::health::{self, Health, MINUTE};
use crate::money::{Markup, MtokPrice, Nanos, Pricing};
use crate::state::AppState;
use crate::store::{new_id, now_ms};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use switchyard_app::catalog_admin::{
    AdminEndpoint, AdminModel, AuditRow, CatalogAdmin, CatalogOp, CredentialRow, HealthView,
    OrgPrice, ProviderRow, UpstreamList, UpstreamModel,
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
    pad2(&MtokPrice(n).to_usd_string())
}

/// An exact decimal with at least two decimal places ("0.5" → "0.50"; every digit kept).
fn pad2(s: &str) -> String {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    format!("{i}.{f:0<2}")
}

/// "text,image" → "text, image".
fn list_text(s: &str) -> String {
    super::split_list(s).join(", ")
}

/// A multiplier in ppm as a percentage of list price ("90", "112.5").
fn format_percent_of_list(ppm: i64) -> String {
    // Parts per million of list price print as a percentage exactly as markup does.
    Markup(ppm).to_percent_string()
}

/// A model as stored (the admin page and the audit log read the same columns).
#[derive(sqlx::FromRow)]
struct ModelRecord {
    id: String,
    slug: String,
    name: String,
    description: String,
    context_length: i64,
    max_output_tokens: Option<i64>,
    enabled: i64,
    hidden: i64,
    sale_input_per_mtok_nanos: Option<i64>,
    sale_output_per_mtok_nanos: Option<i64>,
    input_modalities: String,
    output_modalities: String,
    supported_parameters: String,
    tokenizer: String,
    max_n: Option<i64>,
    first_byte_timeout_ms: Option<i64>,
    idle_timeout_ms: Option<i64>,
}

const MODEL_COLS: &str =
    "id, slug, name, description, context_length, max_output_tokens, enabled, hidden, \
    sale_input_per_mtok_nanos, sale_output_per_mtok_nanos, input_modalities, output_modalities, \
    supported_parameters, tokenizer, max_n, first_byte_timeout_ms, idle_timeout_ms";

impl ModelRecord {
    fn sale(&self) -> Option<(MtokPrice, MtokPrice)> {
        self.sale_input_per_mtok_nanos
            .zip(self.sale_output_per_mtok_nanos)
            .map(|(i, o)| (MtokPrice(i), MtokPrice(o)))
    }
}

/// An endpoint as stored, with its model's slug.
#[derive(sqlx::FromRow)]
struct EndpointRecord {
    id: String,
    model_id: String,
    model_slug: String,
    provider_id: String,
    upstream_model: String,
    input_per_mtok_nanos: i64,
    output_per_mtok_nanos: i64,
    cache_read_per_mtok_nanos: Option<i64>,
    cache_write_per_mtok_nanos: Option<i64>,
    request_nanos: i64,
    max_output_tokens: Option<i64>,
    priority: i64,
    weight: i64,
    enabled: i64,
    web_search_nanos: Option<i64>,
    audio_input_per_mtok_nanos: Option<i64>,
    service_tiers: Option<String>,
}

const ENDPOINT_COLS: &str = "e.id, e.model_id, m.slug AS model_slug, e.provider_id, e.upstream_model, \
    e.input_per_mtok_nanos, e.output_per_mtok_nanos, e.cache_read_per_mtok_nanos, e.cache_write_per_mtok_nanos, \
    e.request_nanos, e.max_output_tokens, e.priority, e.weight, e.enabled, e.web_search_nanos, \
    e.audio_input_per_mtok_nanos, e.service_tiers";

/// Service tiers as the admin page writes them: "flex=50, priority=200".
fn tiers_text(stored: Option<&str>) -> String {
    super::parse_service_tiers(stored)
        .into_iter()
        .map(|(t, ppm)| format!("{t}={}", Markup(ppm).to_percent_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads "flex=50, priority=200" (percent of the list price) into the stored form.
fn parse_tiers(v: &str) -> Result<Option<String>, String> {
    let mut tiers = std::collections::BTreeMap::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, pct) = part.split_once('=').ok_or(
            "service tiers: write them like flex=50, priority=200 (percent of the list price)",
        )?;
        let pct = Markup::parse_percent(pct.trim()).map_err(|e| format!("service tiers: {e}"))?;
        let name = name.trim().to_ascii_lowercase();
        super::file::check_service_tier(&name, pct).map_err(|e| format!("service tiers: {e}"))?;
        tiers.insert(name, pct);
    }
    Ok(super::file::service_tiers_json(&tiers))
}

/// Every provider's keys as the page shows them (never the key itself).
async fn credentials(
    pool: &sqlx::AnyPool,
) -> Result<std::collections::HashMap<String, Vec<CredentialRow>>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT id, provider_id, label, last4, weight, enabled FROM provider_credentials ORDER BY label",
    )
    .fetch_all(pool)
    .await?;
    let mut out: std::collections::HashMap<String, Vec<CredentialRow>> = Default::default();
    for (id, provider_id, label, last4, weight, enabled) in rows {
        out.entry(provider_id).or_default().push(CredentialRow {
            id,
            label,
            hint: format!("••••{last4}"),
            weight: weight.max(0) as u64,
            enabled: enabled != 0,
        });
    }
    Ok(out)
}

/// The last four characters of a key: enough to tell keys apart, useless to an attacker.
pub fn last4(key: &str) -> String {
    let n = key.chars().count();
    key.chars().skip(n.saturating_sub(4)).collect()
}

/// Adds a key to a provider's pool, or replaces the key of the same label.
pub async fn put_credential(
    tx: &mut Tx,
    cipher: &crate::crypto::Cipher,
    provider_id: &str,
    label: &str,
    key: &str,
    weight: i64,
    enabled: bool,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "INSERT INTO provider_credentials (id, provider_id, label, secret_enc, last4, weight, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT (provider_id, label) DO UPDATE SET secret_enc = excluded.secret_enc, last4 = excluded.last4, \
           weight = excluded.weight, enabled = excluded.enabled, updated_at = excluded.updated_at",
    )
    .bind(new_id())
    .bind(provider_id)
    .bind(label)
    .bind(cipher.encrypt(key, &super::credential_context(provider_id)))
    .bind(last4(key))
    .bind(weight)
    .bind(enabled as i64)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
        i64,
        Option<String>,
        Option<String>,
        i64,
        i64,
        Option<String>,
    );
    let providers: Vec<P> = sqlx::query_as(
        "SELECT p.id, p.slug, p.name, p.kind, p.base_url, p.enabled, p.website, p.data_policy, p.collects_data, \
                (SELECT COUNT(*) FROM endpoints e WHERE e.provider_id = p.id), p.s3_buckets \
         FROM providers p ORDER BY p.name",
    )
    .fetch_all(pool)
    .await
    .map_err(internal)?;
    let mut pools = credentials(pool).await.map_err(internal)?;
    let mut provider_names = BTreeMap::new();
    let providers: Vec<ProviderRow> = providers
        .into_iter()
        .map(
            |(id, slug, name, kind, base_url, enabled, website, policy, collects, n, s3)| {
                provider_names.insert(id.clone(), name.clone());
                ProviderRow {
                    markup_percent: rules.get(&format!("provider:{id}")).map(|&p| percent(p)),
                    credentials: pools.remove(&id).unwrap_or_default(),
                    id,
                    slug,
                    name,
                    kind,
                    base_url,
                    enabled: enabled != 0,
                    website: website.unwrap_or_default(),
                    data_policy: policy.unwrap_or_default(),
                    collects_data: collects != 0,
                    s3_buckets: s3
                        .as_deref()
                        .and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
                        .unwrap_or_default()
                        .join(", "),
                    endpoints: n as u32,
                    degraded: false,
                }
            },
        )
        .collect();
    let models: Vec<ModelRecord> =
        sqlx::query_as(&format!("SELECT {MODEL_COLS} FROM models ORDER BY slug"))
            .fetch_all(pool)
            .await
            .map_err(internal)?;
    let endpoints: Vec<EndpointRecord> = sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLS} FROM endpoints e JOIN models m ON m.id = e.model_id ORDER BY e.priority, e.created_at"
    ))
    .fetch_all(pool)
    .await
    .map_err(internal)?;
    let org_prices: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT o.name, p.multiplier_ppm, p.note FROM org_pricing p JOIN orgs o ON o.id = p.org_id ORDER BY o.name",
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
    let mut by_model: BTreeMap<String, Vec<EndpointRecord>> = BTreeMap::new();
    for e in endpoints {
        by_model.entry(e.model_id.clone()).or_default().push(e);
    }
    let models = models
        .into_iter()
        .map(|m| {
            let sale = m.sale();
            let id = m.id.clone();
            let model_markup = rules.get(&format!("model:{id}")).copied();
            let endpoints = by_model
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    let (eid, pid, upstream, input, output, on) = (
                        e.id.clone(),
                        e.provider_id.clone(),
                        e.upstream_model.clone(),
                        e.input_per_mtok_nanos,
                        e.output_per_mtok_nanos,
                        e.enabled,
                    );
                    let (markup, rule) = match (model_markup, rules.get(&format!("provider:{pid}")))
                    {
                        (Some(m), _) => (m, format!("model markup {} %", percent(m))),
                        (None, Some(&p)) => (p, format!("provider markup {} %", percent(p))),
                        (None, None) => (default, format!("default markup {} %", percent(default))),
                    };
                    let pricing = Pricing {
                        cache_read: e.cache_read_per_mtok_nanos.map(MtokPrice),
                        cache_write: e.cache_write_per_mtok_nanos.map(MtokPrice),
                        request: Nanos(e.request_nanos),
                        sale,
                        ..Pricing::simple(MtokPrice(input), MtokPrice(output), Markup(markup))
                    };
                    let mut extras = Vec::new();
                    let (read, write) = pricing.cache_per_token_usd();
                    let sale_mtok =
                        |c: i64| pad2(&Pricing::per_mtok_usd(MtokPrice(c), Markup(markup)));
                    if let (Some(c), Some(_)) = (e.cache_read_per_mtok_nanos, read) {
                        extras.push(format!("cache read ${} → ${}", mtok(c), sale_mtok(c)));
                    }
                    if let (Some(c), Some(_)) = (e.cache_write_per_mtok_nanos, write) {
                        extras.push(format!("cache write ${} → ${}", mtok(c), sale_mtok(c)));
                    }
                    if e.request_nanos > 0 {
                        extras.push(format!(
                            "per request {} → ${}",
                            Nanos(e.request_nanos).dollars(),
                            pricing.request_usd()
                        ));
                    }
                    let (si, so) = pricing.sale_per_mtok_usd();
                    let fix = |s: String| pad2(&s);
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
                        cache_read: e.cache_read_per_mtok_nanos.map(mtok).unwrap_or_default(),
                        cache_write: e.cache_write_per_mtok_nanos.map(mtok).unwrap_or_default(),
                        request_price: if e.request_nanos > 0 {
                            Nanos(e.request_nanos).to_usd_string()
                        } else {
                            String::new()
                        },
                        web_search: e
                            .web_search_nanos
                            .map(|n| Nanos(n).to_usd_string())
                            .unwrap_or_default(),
                        audio_input: e.audio_input_per_mtok_nanos.map(mtok).unwrap_or_default(),
                        service_tiers: tiers_text(e.service_tiers.as_deref()),
                        extras,
                        max_output_tokens: e
                            .max_output_tokens
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                        priority: e.priority,
                        weight: e.weight.max(0) as u64,
                        health: views,
                        degraded: is_degraded,
                        breaker: breaker_text(state.health.breaker(&eid)),
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
                slug: m.slug,
                name: m.name,
                description: m.description,
                context_length: m.context_length.max(0) as u64,
                max_output_tokens: m
                    .max_output_tokens
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                max_n: m.max_n.map(|v| v.to_string()).unwrap_or_default(),
                first_byte_timeout_ms: m
                    .first_byte_timeout_ms
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                idle_timeout_ms: m.idle_timeout_ms.map(|v| v.to_string()).unwrap_or_default(),
                input_modalities: list_text(&m.input_modalities),
                output_modalities: list_text(&m.output_modalities),
                supported_parameters: list_text(&m.supported_parameters),
                tokenizer: m.tokenizer,
                enabled: m.enabled != 0,
                hidden: m.hidden != 0,
                sale_input: sale.map(|(i, _)| mtok(i.0)),
                sale_output: sale.map(|(_, o)| mtok(o.0)),
                markup_percent: model_markup.map(percent),
                endpoints,
            }
        })
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
        org_prices: org_prices
            .into_iter()
            .map(|(org, ppm, note)| OrgPrice {
                org,
                percent: format_percent_of_list(ppm),
                note,
            })
            .collect(),
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
        i64,
        Option<String>,
        Option<String>,
        i64,
        Option<String>,
    );
    let r: Option<R> = sqlx::query_as(
        "SELECT slug, name, kind, base_url, enabled, website, data_policy, collects_data, s3_buckets FROM providers WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let markup = markup_of(tx, &format!("provider:{id}")).await?;
    Ok(r.map(|(slug, name, kind, base_url, enabled, website, policy, collects, s3)| {
        json!({"slug": slug, "name": name, "kind": kind, "base_url": base_url, "enabled": enabled != 0,
               "website": website, "data_policy": policy, "collects_data": collects != 0, "markup": markup,
               "s3_buckets": s3.and_then(|j| serde_json::from_str::<Value>(&j).ok())})
    }))
}

async fn credential_json(tx: &mut Tx, id: &str) -> Result<Option<(String, Value)>, sqlx::Error> {
    let r: Option<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT p.slug, c.label, c.last4, c.weight, c.enabled FROM provider_credentials c \
         JOIN providers p ON p.id = c.provider_id WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(r.map(|(slug, label, last4, weight, enabled)| {
        (
            slug,
            json!({"label": label, "key": format!("••••{last4}"), "weight": weight, "enabled": enabled != 0}),
        )
    }))
}

async fn markup_of(tx: &mut Tx, scope: &str) -> Result<Option<String>, sqlx::Error> {
    let r: Option<(i64,)> = sqlx::query_as("SELECT ppm FROM markup_rules WHERE scope = $1")
        .bind(scope)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(r.map(|(p,)| format!("{} %", percent(p))))
}

/// Sets (or, with None, clears) the markup rule of a scope: "default", "provider:{id}", "model:{id}".
pub async fn set_markup(tx: &mut Tx, scope: &str, m: Option<Markup>) -> Result<(), sqlx::Error> {
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
    let r: Option<ModelRecord> =
        sqlx::query_as(&format!("SELECT {MODEL_COLS} FROM models WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let markup = markup_of(tx, &format!("model:{id}")).await?;
    Ok(r.map(|m| {
        json!({"slug": m.slug, "name": m.name, "description": m.description, "context_length": m.context_length,
               "max_output_tokens": m.max_output_tokens, "input_modalities": m.input_modalities,
               "output_modalities": m.output_modalities, "supported_parameters": m.supported_parameters,
               "tokenizer": m.tokenizer, "enabled": m.enabled != 0, "hidden": m.hidden != 0,
               "sale_input": m.sale_input_per_mtok_nanos.map(mtok),
               "sale_output": m.sale_output_per_mtok_nanos.map(mtok), "markup": markup, "max_n": m.max_n,
               "first_byte_timeout_ms": m.first_byte_timeout_ms, "idle_timeout_ms": m.idle_timeout_ms})
    }))
}

async fn endpoint_json(tx: &mut Tx, id: &str) -> Result<Option<Value>, sqlx::Error> {
    let r: Option<EndpointRecord> = sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLS} FROM endpoints e JOIN models m ON m.id = e.model_id WHERE e.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(r.map(|e| {
        json!({"model": e.model_slug, "upstream_model": e.upstream_model,
               "cost_input": mtok(e.input_per_mtok_nanos), "cost_output": mtok(e.output_per_mtok_nanos),
               "cache_read": e.cache_read_per_mtok_nanos.map(mtok), "cache_write": e.cache_write_per_mtok_nanos.map(mtok),
               "per_request": (e.request_nanos > 0).then(|| Nanos(e.request_nanos).to_usd_string()),
               "max_output_tokens": e.max_output_tokens, "priority": e.priority, "weight": e.weight, "enabled": e.enabled != 0,
               "web_search": e.web_search_nanos.map(|n| Nanos(n).to_usd_string()),
               "audio_input": e.audio_input_per_mtok_nanos.map(mtok), "service_tiers": tiers_text(e.service_tiers.as_deref())})
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

/// Gives a model a new id: clients call it by the new one from the next request, and API keys allowed
/// the old id are allowed the new one. The request log keeps the id each request used.
async fn rename_model(tx: &mut Tx, id: &str, old: &str, new: &str) -> Result<(), String> {
    if !super::file::model_slug_ok(new) {
        return Err(
            "id: author/name in lower-case letters, digits, '-', '_' or '.', like acme/fast-1"
                .into(),
        );
    }
    let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM models WHERE slug = $1")
        .bind(new)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?;
    if taken.is_some() {
        return Err(format!("id: another model is already called {new}"));
    }
    sqlx::query("UPDATE models SET slug = $1 WHERE id = $2")
        .bind(new)
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    let keys: Vec<(String, String)> =
        sqlx::query_as("SELECT id, allowed_models FROM api_keys WHERE allowed_models LIKE $1")
            .bind(format!("%\"{old}\"%"))
            .fetch_all(&mut **tx)
            .await
            .map_err(internal)?;
    for (key_id, list) in keys {
        let Ok(mut models) = serde_json::from_str::<Vec<String>>(&list) else {
            continue;
        };
        for m in &mut models {
            if m == old {
                *m = new.to_string();
            }
        }
        sqlx::query("UPDATE api_keys SET allowed_models = $1 WHERE id = $2")
            .bind(serde_json::to_string(&models).map_err(internal)?)
            .bind(&key_id)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
    }
    Ok(())
}

/// "text, image" → "text,image", each item checked (against `allowed`, when given).
fn check_list(field: &str, v: &str, allowed: &[&str]) -> Result<String, String> {
    let items = super::split_list(v);
    for i in &items {
        let ok = if allowed.is_empty() {
            i.len() <= 64
                && i.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        } else {
            allowed.contains(&i.as_str())
        };
        if !ok {
            return Err(if allowed.is_empty() {
                format!("{field}: {i:?} is not a parameter name (letters, digits and _)")
            } else {
                format!("{field}: {i:?} is not one of {}", allowed.join(", "))
            });
        }
    }
    if !allowed.is_empty() && items.is_empty() {
        return Err(format!("{field}: at least one of {}", allowed.join(", ")));
    }
    Ok(items.join(","))
}

fn optional_count(field: &str, v: &str) -> Result<Option<i64>, String> {
    match v.trim() {
        "" => Ok(None),
        v => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("{field}: a positive whole number, or blank")),
    }
}

fn check_label(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 40 {
        return Err("label: a short name for the key, like default or team-b".into());
    }
    Ok(v.to_string())
}

fn check_weight(v: &str) -> Result<i64, String> {
    match v.trim() {
        "" => Ok(1),
        v => v
            .parse::<i64>()
            .ok()
            .filter(|w| (0..=1000).contains(w))
            .ok_or_else(|| {
                "weight: a whole number from 0 to 1000 (its share of the traffic; 0 rests the key)"
                    .to_string()
            }),
    }
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
    // A model's id may change, and with it the models keys are allowed: keys are read again.
    let keys_may_change = matches!(op, CatalogOp::SaveModel { .. });
    let mut tx = state.store.writer.begin().await.map_err(internal)?;
    let said = apply(state, &mut tx, actor, op).await?;
    bump(&mut tx).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    if keys_may_change {
        state.keys.forget_all();
    }
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
            collects_data,
            s3_buckets,
        } => {
            let slug = check_slug(&slug)?;
            let name = name.trim().to_string();
            if name.is_empty() {
                return Err("name: required".into());
            }
            let kind = super::ProviderKind::parse(kind.trim()).ok_or_else(|| {
                format!(
                    "kind: one of {}",
                    super::ProviderKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })?;
            let base_url = match (base_url.trim(), kind.default_base_url()) {
                ("", Some(default)) => default.to_string(),
                (url, _) => check_base_url(url)?,
            };
            let markup = parse_optional_percent("markup", &markup_percent)?;
            let buckets: Vec<String> = s3_buckets
                .split([',', '\n', ' '])
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_string)
                .collect();
            if !buckets.is_empty() && kind != super::ProviderKind::Bedrock {
                return Err(
                    "s3_buckets: only Bedrock providers read s3:// locations; leave it blank"
                        .into(),
                );
            }
            crate::providers::bedrock::S3Bucket::parse_all(&buckets)
                .map_err(|e| format!("s3_buckets: {e}"))?;
            let s3_json = super::s3_buckets_json(&buckets);
            let key = api_key.trim();
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
                         website = $5, data_policy = $6, updated_at = $7, collects_data = $9, s3_buckets = $10 WHERE id = $8",
                    )
                    .bind(&slug)
                    .bind(&name)
                    .bind(kind.as_str())
                    .bind(&base_url)
                    .bind(opt(&website))
                    .bind(opt(&data_policy))
                    .bind(now)
                    .bind(&id)
                    .bind(collects_data as i64)
                    .bind(&s3_json)
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
                        "INSERT INTO providers (id, slug, name, kind, base_url, website, \
                         data_policy, enabled, created_at, updated_at, collects_data, s3_buckets) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9, $10)",
                    )
                    .bind(&id)
                    .bind(&slug)
                    .bind(&name)
                    .bind(kind.as_str())
                    .bind(&base_url)
                    .bind(opt(&website))
                    .bind(opt(&data_policy))
                    .bind(now)
                    .bind(collects_data as i64)
                    .bind(&s3_json)
                    .execute(&mut **tx)
                    .await
                    .map_err(internal)?;
                    if !key.is_empty() {
                        put_credential(tx, &state.cipher, &id, "default", key, 1, true)
                            .await
                            .map_err(internal)?;
                    }
                    (id, None)
                }
            };
            set_markup(tx, &format!("provider:{id}"), markup)
                .await
                .map_err(internal)?;
            let mut after = provider_json(tx, &id).await.map_err(internal)?;
            if before.is_none() && !key.is_empty() {
                if let Some(a) = after.as_mut() {
                    a["key default"] = json!(format!("••••{}", last4(key)));
                }
            }
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
        CatalogOp::AddCredential {
            provider_id,
            label,
            api_key,
            weight,
        } => {
            let label = check_label(&label)?;
            let weight = check_weight(&weight)?;
            let key = api_key.trim();
            if key.is_empty() {
                return Err("API key: required".into());
            }
            let (slug,): (String,) = sqlx::query_as("SELECT slug FROM providers WHERE id = $1")
                .bind(&provider_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(internal)?
                .ok_or("no such provider")?;
            let taken: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM provider_credentials WHERE provider_id = $1 AND label = $2",
            )
            .bind(&provider_id)
            .bind(&label)
            .fetch_optional(&mut **tx)
            .await
            .map_err(internal)?;
            if taken.is_some() {
                return Err(format!(
                    "label: {slug} already has a key called {label}; pick another label, or remove that key first"
                ));
            }
            put_credential(tx, &state.cipher, &provider_id, &label, key, weight, true)
                .await
                .map_err(internal)?;
            record(
                tx,
                Some(actor),
                "add key",
                &slug,
                None,
                Some(json!({"label": label, "key": format!("••••{}", last4(key)), "weight": weight, "enabled": true})),
            )
            .await
            .map_err(internal)?;
            Ok(format!("Key {label} added to {slug}"))
        }
        CatalogOp::SaveCredential {
            id,
            label,
            weight,
            enabled,
        } => {
            let label = check_label(&label)?;
            let weight = check_weight(&weight)?;
            let (slug, before) = credential_json(tx, &id)
                .await
                .map_err(internal)?
                .ok_or("no such key")?;
            sqlx::query(
                "UPDATE provider_credentials SET label = $1, weight = $2, enabled = $3, updated_at = $4 WHERE id = $5",
            )
            .bind(&label)
            .bind(weight)
            .bind(enabled as i64)
            .bind(now)
            .bind(&id)
            .execute(&mut **tx)
            .await
            .map_err(|e| {
                if e.to_string().to_ascii_lowercase().contains("unique") {
                    format!("label: {slug} already has a key called {label}")
                } else {
                    internal(e)
                }
            })?;
            let after = credential_json(tx, &id)
                .await
                .map_err(internal)?
                .map(|(_, v)| v);
            record(tx, Some(actor), "edit key", &slug, Some(before), after)
                .await
                .map_err(internal)?;
            Ok(format!(
                "{slug}: key {label} saved{}",
                if enabled {
                    ""
                } else {
                    " (off: no requests use it)"
                }
            ))
        }
        CatalogOp::RemoveCredential { id } => {
            let (slug, before) = credential_json(tx, &id)
                .await
                .map_err(internal)?
                .ok_or("no such key")?;
            sqlx::query("DELETE FROM provider_credentials WHERE id = $1")
                .bind(&id)
                .execute(&mut **tx)
                .await
                .map_err(internal)?;
            let label = before["label"].as_str().unwrap_or_default().to_string();
            record(tx, Some(actor), "remove key", &slug, Some(before), None)
                .await
                .map_err(internal)?;
            Ok(format!("Key {label} removed from {slug}"))
        }
        CatalogOp::SetOrgPrice { org, percent, note } => {
            let org = org.trim();
            let (org_id, name): (String, String) =
                sqlx::query_as("SELECT id, name FROM orgs WHERE name = $1")
                    .bind(org)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| format!("organisation: no organisation is called {org:?}"))?;
            let share = parse_optional_percent("pays", &percent)?;
            if let Some(m) = share {
                if m.0 <= 0 || m.0 > 10_000_000 {
                    return Err(
                        "pays: a percentage of list price above 0 and at most 1000, like 90".into(),
                    );
                }
            }
            let before: Option<(i64, String)> =
                sqlx::query_as("SELECT multiplier_ppm, note FROM org_pricing WHERE org_id = $1")
                    .bind(&org_id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(internal)?;
            let show = |r: Option<(i64, String)>| {
                r.map(|(ppm, note)| json!({"pays": format!("{} % of list", format_percent_of_list(ppm)), "note": note}))
            };
            match share {
                Some(m) => {
                    sqlx::query(
                        "INSERT INTO org_pricing (org_id, multiplier_ppm, note, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (org_id) DO UPDATE SET multiplier_ppm = excluded.multiplier_ppm, \
                           note = excluded.note, updated_at = excluded.updated_at",
                    )
                    .bind(&org_id)
                    .bind(m.0)
                    .bind(note.trim())
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(internal)?;
                }
                None => {
                    sqlx::query("DELETE FROM org_pricing WHERE org_id = $1")
                        .bind(&org_id)
                        .execute(&mut **tx)
                        .await
                        .map_err(internal)?;
                }
            }
            let after = share.map(|m| (m.0, note.trim().to_string()));
            record(
                tx,
                Some(actor),
                "set organisation price",
                &name,
                show(before),
                show(after),
            )
            .await
            .map_err(internal)?;
            Ok(match share {
                Some(m) => format!(
                    "{name} pays {} % of list price from its next request",
                    format_percent_of_list(m.0)
                ),
                None => format!("{name} pays list price from its next request"),
            })
        }
        CatalogOp::ImportCatalog { json, provider_id } => {
            super::import::apply(tx, Some(actor), &json, &provider_id).await
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
            slug: new_slug,
            name,
            description,
            context_length,
            max_output_tokens,
            max_n,
            first_byte_timeout_ms,
            idle_timeout_ms,
            input_modalities,
            output_modalities,
            supported_parameters,
            tokenizer,
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
            let old_slug = before["slug"].as_str().unwrap_or_default().to_string();
            let new_slug = new_slug.trim().to_string();
            if !new_slug.is_empty() && new_slug != old_slug {
                rename_model(tx, &id, &old_slug, &new_slug).await?;
            }
            let ctx: i64 = context_length
                .trim()
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .ok_or("context length: a whole number of tokens, like 128000")?;
            let max_out = optional_count("max output tokens", &max_output_tokens)?;
            let max_n = optional_count("most choices per request", &max_n)?;
            let limit = |field: &str, v: &str| -> Result<Option<i64>, String> {
                match optional_count(field, v)? {
                    Some(ms) if !(100..=3_600_000).contains(&ms) => Err(format!(
                        "{field}: from 100 to 3600000 milliseconds (an hour)"
                    )),
                    ms => Ok(ms),
                }
            };
            let first_byte = limit("first-token limit", &first_byte_timeout_ms)?;
            let idle = limit("idle limit", &idle_timeout_ms)?;
            let inputs = check_list(
                "input modalities",
                &input_modalities,
                super::file::MODALITIES,
            )?;
            let outputs = check_list(
                "output modalities",
                &output_modalities,
                super::file::MODALITIES,
            )?;
            let params = check_list("supported parameters", &supported_parameters, &[])?;
            let tokenizer = tokenizer.trim();
            if tokenizer.is_empty() || tokenizer.len() > 40 {
                return Err("tokenizer: a short family name like GPT, Claude or Llama3".into());
            }
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
                 sale_input_per_mtok_nanos = $6, sale_output_per_mtok_nanos = $7, updated_at = $8, \
                 max_output_tokens = $9, input_modalities = $10, output_modalities = $11, supported_parameters = $12, \
                 tokenizer = $13, max_n = $15, first_byte_timeout_ms = $16, idle_timeout_ms = $17 WHERE id = $14",
            )
            .bind(name)
            .bind(description.trim())
            .bind(ctx)
            .bind(enabled as i64)
            .bind(hidden as i64)
            .bind(sale.map(|(i, _)| i.0))
            .bind(sale.map(|(_, o)| o.0))
            .bind(now)
            .bind(max_out)
            .bind(inputs)
            .bind(outputs)
            .bind(params)
            .bind(tokenizer)
            .bind(&id)
            .bind(max_n)
            .bind(first_byte)
            .bind(idle)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
            set_markup(tx, &format!("model:{id}"), markup)
                .await
                .map_err(internal)?;
            let after = model_json(tx, &id).await.map_err(internal)?;
            let slug = after
                .as_ref()
                .and_then(|a| a["slug"].as_str())
                .unwrap_or_default()
                .to_string();
            record(tx, Some(actor), "edit model", &slug, Some(before), after)
                .await
                .map_err(internal)?;
            Ok(format!("Model {slug} saved"))
        }
        CatalogOp::SaveEndpoint {
            id,
            upstream_model,
            cost_input,
            cost_output,
            cache_read,
            cache_write,
            request_price,
            web_search,
            audio_input,
            service_tiers,
            max_output_tokens,
            priority,
            weight,
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
            let optional_price = |field: &str, v: &str| -> Result<Option<i64>, String> {
                let v = v.trim();
                if v.is_empty() {
                    return Ok(None);
                }
                parse_price(field, v).map(|p| Some(p.0))
            };
            let read = optional_price("cost per 1M cached input read", &cache_read)?;
            let write = optional_price("cost per 1M cached input written", &cache_write)?;
            let request = match request_price.trim().trim_start_matches('$') {
                "" => Nanos::ZERO,
                v => Nanos::parse_usd(v).map_err(|e| format!("cost per request: {e}"))?,
            };
            let web_search = match web_search.trim().trim_start_matches('$') {
                "" => None,
                v => Some(
                    Nanos::parse_usd(v)
                        .map_err(|e| format!("cost per web search: {e}"))?
                        .0,
                ),
            };
            let audio = optional_price("cost per 1M audio input", &audio_input)?;
            let tiers = parse_tiers(&service_tiers)?;
            let max_out = optional_count("max output tokens", &max_output_tokens)?;
            let priority: i64 = match priority.trim() {
                "" => 0,
                v => v
                    .parse()
                    .ok()
                    .filter(|p: &i64| p.abs() <= 1_000_000)
                    .ok_or("priority: a whole number; lower is tried first")?,
            };
            let weight: i64 = match weight.trim() {
                "" => 100,
                v => v
                    .parse()
                    .ok()
                    .filter(|w: &i64| (0..=1_000_000).contains(w))
                    .ok_or("weight: a whole number from 0 (fallback only) to 1000000")?,
            };
            sqlx::query(
                "UPDATE endpoints SET upstream_model = $1, input_per_mtok_nanos = $2, output_per_mtok_nanos = $3, \
                 enabled = $4, updated_at = $5, cache_read_per_mtok_nanos = $6, cache_write_per_mtok_nanos = $7, \
                 request_nanos = $8, max_output_tokens = $9, priority = $10, weight = $12, web_search_nanos = $13, \
                 audio_input_per_mtok_nanos = $14, service_tiers = $15 WHERE id = $11",
            )
            .bind(upstream)
            .bind(input.0)
            .bind(output.0)
            .bind(enabled as i64)
            .bind(now)
            .bind(read)
            .bind(write)
            .bind(request.0)
            .bind(max_out)
            .bind(priority)
            .bind(&id)
            .bind(weight)
            .bind(web_search)
            .bind(audio)
            .bind(tiers)
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
                "Endpoint of {model} saved{}",
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

/// A provider's name, base URL and its enabled keys (label, key), in label order.
/// How to reach a provider: its name, kind, base URL and enabled keys (label, key).
struct Access {
    name: String,
    kind: super::ProviderKind,
    base: String,
}

async fn provider_access(
    state: &AppState,
    id: &str,
) -> Result<(Access, Vec<(String, String)>), String> {
    let row: Option<(String, String, String)> =
        sqlx::query_as("SELECT name, kind, base_url FROM providers WHERE id = $1")
            .bind(id)
            .fetch_optional(&state.store.pool)
            .await
            .map_err(internal)?;
    let (name, kind, base) = row.ok_or("no such provider")?;
    let kind = super::ProviderKind::parse(&kind).unwrap_or(super::ProviderKind::Openai);
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT label, secret_enc FROM provider_credentials WHERE provider_id = $1 AND enabled = 1 ORDER BY label",
    )
    .bind(id)
    .fetch_all(&state.store.pool)
    .await
    .map_err(internal)?;
    let mut keys = Vec::new();
    for (label, enc) in rows {
        let key = state
            .cipher
            .decrypt(&enc, &super::credential_context(id))
            .map_err(|_| {
                format!(
                    "key {label} cannot be decrypted with this server's secret key; add it again"
                )
            })?;
        keys.push((label, key));
    }
    Ok((Access { name, kind, base }, keys))
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

/// `GET {base}/models` with the provider's first enabled key.
async fn fetch_models(state: &AppState, id: &str) -> Result<Vec<UpstreamModel>, String> {
    let (access, keys) = provider_access(state, id).await?;
    list_upstream(state, &access, keys.first().map(|(_, k)| k.as_str())).await
}

/// The breaker as the admin page says it ("" while closed).
fn breaker_text(b: crate::gateway::health::Breaker) -> String {
    use crate::gateway::health::Breaker;
    match b {
        Breaker::Closed => String::new(),
        Breaker::Open { until, .. } => {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                "the next request probes it".into()
            } else {
                format!("out of rotation for {} s more", left.as_secs().max(1))
            }
        }
        Breaker::Probing { .. } => "one probe request out".into(),
    }
}

/// The provider's model list, asked the way its kind takes it: OpenAI's and Anthropic's `GET /models`
/// (`{"data": [{"id"}]}`), Azure's with its `api-version`, Google's (`{"models": [{"name"}]}`), and
/// Bedrock's signed control-plane list (`{"modelSummaries": [{"modelId"}]}`).
async fn list_upstream(
    state: &AppState,
    access: &Access,
    key: Option<&str>,
) -> Result<Vec<UpstreamModel>, String> {
    use super::ProviderKind as K;
    let (name, base) = (access.name.as_str(), access.base.as_str());
    let url = match access.kind {
        K::Azure => {
            let (root, query) = base.split_once('?').unwrap_or((base, ""));
            let version = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("api-version="))
                .unwrap_or(crate::providers::openai::AZURE_API_VERSION);
            format!(
                "{}/models?api-version={version}",
                root.trim_end_matches('/')
            )
        }
        _ => format!("{base}/models"),
    };
    let mut req = if access.kind == K::Bedrock {
        crate::providers::bedrock::list_models(&state.http, base, key)?
    } else {
        state.http.get(url)
    }
    .timeout(std::time::Duration::from_secs(10));
    if let Some(k) = key.filter(|_| access.kind != K::Bedrock) {
        req = match access.kind {
            K::Anthropic => req
                .header("x-api-key", k)
                .header("anthropic-version", crate::providers::anthropic::VERSION),
            K::Gemini => req.header("x-goog-api-key", k),
            K::Azure => req.header("api-key", k),
            _ => req.bearer_auth(k),
        };
    }
    let r = req
        .send()
        .await
        .map_err(|e| format!("{name} did not answer at {base}: {}", error_chain(&e)))?;
    let status = r.status();
    if status.is_redirection() {
        return Err(crate::providers::redirect_refused(name, r.headers()));
    }
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body["error"]["message"]
            .as_str()
            .or(body["message"].as_str())
            .unwrap_or("no error message");
        return Err(format!("{name} answered {status}: {msg}"));
    }
    let Some(list) = body["data"]
        .as_array()
        .or(body["models"].as_array())
        .or(body["modelSummaries"].as_array())
    else {
        return Err(format!(
            "{name} answered, but not with a model list ({{\"data\": [...]}})"
        ));
    };
    Ok(list
        .iter()
        .filter_map(|m| {
            let id = m["id"]
                .as_str()
                .or(m["modelId"].as_str())
                .or_else(|| m["name"].as_str().map(|n| n.trim_start_matches("models/")))?;
            Some(UpstreamModel {
                id: id.to_string(),
                context_length: m["context_length"]
                    .as_u64()
                    .or(m["context_window"].as_u64())
                    .or(m["inputTokenLimit"].as_u64()),
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

/// Calls the provider's model list with each enabled key and reports how each went and how long it took.
pub async fn test_provider(state: &AppState, id: &str) -> Result<String, String> {
    let (access, keys) = provider_access(state, id).await?;
    let (name, base) = (&access.name, &access.base);
    let mut tries: Vec<(Option<String>, Option<String>)> = keys
        .into_iter()
        .map(|(label, key)| (Some(label), Some(key)))
        .collect();
    if tries.is_empty() {
        tries.push((None, None));
    }
    let mut lines = Vec::new();
    let mut failed = 0;
    for (label, key) in &tries {
        let started = std::time::Instant::now();
        let who = label
            .as_ref()
            .map_or(String::new(), |l| format!("key {l}: "));
        match list_upstream(state, &access, key.as_deref()).await {
            Ok(models) => lines.push(format!(
                "{who}{name} answered in {} ms at {base}, listing {} model{}",
                started.elapsed().as_millis(),
                models.len(),
                if models.len() == 1 { "" } else { "s" }
            )),
            Err(e) => {
                failed += 1;
                lines.push(format!("{who}{e}"));
            }
        }
    }
    if failed == tries.len() {
        Err(lines.join("; "))
    } else {
        Ok(lines.join("; "))
    }
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
