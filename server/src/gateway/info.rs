//! Read-only API: the public model list (OpenRouter's schema) and, for the calling key, its generation
//! records, the key itself and the org's credits.

use super::ApiKeyAuth;
use crate::billing::ledger;
use crate::catalog::Model;
use crate::error::ApiError;
use crate::money::{Nanos, Pricing};
use crate::state::AppState;
use axum::{
    extract::{Query, State},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// OpenRouter's `pricing` object: USD per token (and per request) after markup, as decimal strings.
pub fn pricing_json(p: &Pricing) -> Value {
    let (prompt, completion) = p.sale_per_token_usd();
    let mut v = json!({
        "prompt": prompt,
        "completion": completion,
        "request": p.request_usd(),
        "image": "0",
        "web_search": "0",
        "internal_reasoning": "0",
    });
    let (read, write) = p.cache_per_token_usd();
    if let Some(r) = read {
        v["input_cache_read"] = json!(r);
    }
    if let Some(w) = write {
        v["input_cache_write"] = json!(w);
    }
    v
}

/// OpenRouter's `architecture` object.
pub fn architecture_json(m: &Model) -> Value {
    json!({
        "modality": format!("{}->{}", m.input_modalities.join("+"), m.output_modalities.join("+")),
        "input_modalities": m.input_modalities,
        "output_modalities": m.output_modalities,
        "tokenizer": m.tokenizer,
        "instruct_type": null,
    })
}

pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let c = state.catalog.get();
    let data: Vec<Value> = c
        .models
        .values()
        .filter(|m| !m.hidden)
        .map(|m| {
            let ep = &m.endpoints[0];
            let max_out = ep.max_output_tokens.or(m.max_output_tokens);
            json!({
                "id": m.slug,
                "canonical_slug": m.slug,
                "name": m.name,
                "created": m.created_at / 1000,
                "description": m.description,
                "context_length": m.context_length,
                "architecture": architecture_json(m),
                "pricing": pricing_json(&c.list_pricing(m, ep)),
                "top_provider": {
                    "context_length": m.context_length,
                    "max_completion_tokens": max_out,
                    "is_moderated": false,
                },
                "per_request_limits": null,
                "supported_parameters": m.supported_parameters,
            })
        })
        .collect();
    Json(json!({ "data": data }))
}

/// `GET /models/{author}/{slug}/endpoints`: every provider serving a model, with its price after markup,
/// uptime over the last 5 minutes, 30 minutes and day, and latency percentiles over the last 30 minutes.
pub async fn model_endpoints(
    State(state): State<AppState>,
    axum::extract::Path((author, slug)): axum::extract::Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    use crate::catalog::health::{Health, MINUTE};
    let c = state.catalog.get();
    let id = format!("{author}/{slug}");
    let Some(m) = c.models.get(&id).filter(|m| !m.hidden) else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "model_not_found",
            format!("no model `{id}` in the catalog; GET /api/v1/models lists them"),
        ));
    };
    // From the background snapshot: an anonymous call never reads the request log.
    let h = state.endpoint_health.get();
    let uptime = |w: i64, ep: &str| {
        h.get(w, ep)
            .and_then(Health::uptime_bp)
            .map(|b| b as f64 / 100.0)
    };
    let endpoints: Vec<Value> = m
        .endpoints
        .iter()
        .map(|ep| {
            let recent = h.get(30 * MINUTE, &ep.id).cloned().unwrap_or_default();
            let pct = |v: &[i64]| {
                json!({"p50": Health::percentile(v, 50), "p75": Health::percentile(v, 75),
                       "p90": Health::percentile(v, 90), "p99": Health::percentile(v, 99)})
            };
            let degraded = crate::catalog::admin::degraded(
                h.get(5 * MINUTE, &ep.id),
                state.cfg.degraded_error_percent,
            );
            json!({
                "name": format!("{} | {}", ep.provider.name, m.slug),
                "model_name": m.name,
                "context_length": m.context_length,
                "pricing": pricing_json(&c.list_pricing(m, ep)),
                "provider_name": ep.provider.name,
                "tag": ep.provider.slug,
                "quantization": null,
                "max_completion_tokens": ep.max_output_tokens.or(m.max_output_tokens),
                "max_prompt_tokens": null,
                "supported_parameters": m.supported_parameters,
                // OpenRouter: 0 is normal, negative is degraded.
                "status": if degraded { -1 } else { 0 },
                "uptime_last_5m": uptime(5 * MINUTE, &ep.id),
                "uptime_last_30m": uptime(30 * MINUTE, &ep.id),
                "uptime_last_1d": uptime(1440 * MINUTE, &ep.id),
                "latency_last_30m": pct(&recent.latency),
                "supports_implicit_caching": ep.cache_read.is_some(),
            })
        })
        .collect();
    Ok(Json(json!({"data": {
        "id": m.slug,
        "name": m.name,
        "created": m.created_at / 1000,
        "description": m.description,
        "architecture": architecture_json(m),
        "endpoints": endpoints,
    }})))
}

#[derive(Deserialize)]
pub struct GenerationQuery {
    id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct GenRow {
    id: String,
    model_slug: String,
    provider_slug: Option<String>,
    upstream_id: Option<String>,
    prompt_tokens: i64,
    completion_tokens: i64,
    charge_nanos: i64,
    latency_ms: i64,
    usage_estimated: i64,
    ttft_ms: Option<i64>,
    finish_reason: Option<String>,
    native_finish_reason: Option<String>,
    streamed: i64,
    cancelled: i64,
    status: i64,
    error: Option<String>,
    attempts: String,
    created_at: i64,
}

pub async fn generation(
    State(state): State<AppState>,
    ApiKeyAuth(key): ApiKeyAuth,
    Query(q): Query<GenerationQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = q
        .id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_field("id", "is required: GET /api/v1/generation?id=gen-…"))?;
    // Scoped by the caller's org: another org's generation is simply not found. A key made by a member
    // sees what the member sees on the dashboard: the generations of the keys that member made.
    let member = key
        .maker
        .as_ref()
        .filter(|m| m.role.as_deref() == Some("member"))
        .map(|m| m.id.clone());
    let row: Option<GenRow> = sqlx::query_as(
        "SELECT id, model_slug, provider_slug, upstream_id, prompt_tokens, completion_tokens, charge_nanos, latency_ms, \
                usage_estimated, ttft_ms, finish_reason, native_finish_reason, streamed, cancelled, status, error, attempts, \
                created_at \
         FROM generations WHERE id = $1 AND org_id = $2 \
           AND ($3 = '' OR key_id IN (SELECT id FROM api_keys WHERE org_id = $2 AND created_by = $3))",
    )
    .bind(&id)
    .bind(&key.org_id)
    .bind(member.unwrap_or_default())
    .fetch_optional(&state.store.pool)
    .await?;
    let Some(r) = row else {
        return Err(ApiError::not_found(format!(
            "no generation {id:?} for this organisation (it may still be in flight)"
        )));
    };
    let mut attempts: Value = serde_json::from_str(&r.attempts).unwrap_or(Value::Array(vec![]));
    // Rows logged before key labels were kept out of the attempts: tenants never see them.
    for a in attempts.as_array_mut().into_iter().flatten() {
        if let Some(o) = a.as_object_mut() {
            o.remove("credential");
        }
    }
    let (pt, ct, latency, ttft) = (
        r.prompt_tokens,
        r.completion_tokens,
        r.latency_ms,
        r.ttft_ms,
    );
    Ok(Json(json!({ "data": {
        "id": r.id,
        "model": r.model_slug,
        "provider_name": r.provider_slug,
        "upstream_id": r.upstream_id,
        "created_at": rfc3339(r.created_at),
        "tokens_prompt": pt,
        "tokens_completion": ct,
        "native_tokens_prompt": pt,
        "native_tokens_completion": ct,
        "usage_estimated": r.usage_estimated != 0,
        "total_cost": Nanos(r.charge_nanos).usd_json(),
        "latency": latency,
        "generation_time": ttft.map(|t| latency - t),
        "time_to_first_token": ttft,
        "finish_reason": r.finish_reason,
        "native_finish_reason": r.native_finish_reason,
        "streamed": r.streamed != 0,
        "cancelled": r.cancelled != 0,
        "status": r.status,
        "error": r.error,
        "is_byok": false,
        "provider_responses": attempts,
    }})))
}

pub async fn key(
    State(state): State<AppState>,
    ApiKeyAuth(key): ApiKeyAuth,
) -> Result<Json<Value>, ApiError> {
    let (usage, period_usage, reserved): (i64, i64, i64) = sqlx::query_as(
        "SELECT usage_nanos, period_usage_nanos, reserved_nanos FROM api_keys WHERE id = $1",
    )
    .bind(&key.id)
    .fetch_one(&state.store.pool)
    .await?;
    // A period that has ended but not yet rolled over (no request since) counts as empty.
    let period_usage = match key.rules.limit_reset {
        Some(r) => {
            let (start,): (Option<i64>,) =
                sqlx::query_as("SELECT period_start FROM api_keys WHERE id = $1")
                    .bind(&key.id)
                    .fetch_one(&state.store.pool)
                    .await?;
            if start.is_some_and(|s| s >= r.period_start(crate::store::now_ms())) {
                period_usage
            } else {
                0
            }
        }
        None => period_usage,
    };
    let remaining = key
        .limit
        .map(|l| Nanos((l.0 - period_usage - reserved).max(0)));
    Ok(Json(json!({ "data": {
        "label": key.name,
        "limit": key.limit.map(Nanos::usd_json),
        "limit_reset": key.rules.limit_reset.map(|r| r.as_str()),
        "limit_remaining": remaining.map(Nanos::usd_json),
        "usage": Nanos(usage).usd_json(),
        "is_free_tier": false,
        "expires_at": key.expires_at.map(rfc3339),
        "allowed_models": key.rules.allowed_models,
        "rate_limit": {"requests": key.rules.requests_per_minute.map_or(-1, i64::from), "interval": "1m"},
        "max_concurrent_requests": key.rules.max_concurrent,
    }})))
}

pub async fn credits(
    State(state): State<AppState>,
    ApiKeyAuth(key): ApiKeyAuth,
) -> Result<Json<Value>, ApiError> {
    let b = ledger::balance(&state.store, &key.org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation not found"))?;
    Ok(Json(json!({ "data": {
        "total_credits": b.credits.usd_json(),
        "total_usage": b.usage.usd_json(),
    }})))
}
