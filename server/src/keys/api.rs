//! The key management API (OpenRouter-compatible), for scripts holding a management key:
//! `GET/POST /keys`, `GET/PATCH/DELETE /keys/{hash}`. Every query is scoped by the org of the calling
//! management key; another org's key is simply not found.

use super::{
    create_key_with, find_record, hash_secret, list_records, revoke_by_hash, update_key, KeyEdit,
    KeyRecord, KeyRules, KeyScope, LimitReset,
};
use crate::error::ApiError;
use crate::gateway::{info::rfc3339, LimitedBody, ManagementAuth};
use crate::money::Nanos;
use crate::state::AppState;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/keys", get(list).post(create))
        .route("/keys/{hash}", get(show).patch(update).delete(delete))
        .route("/activity", get(activity))
}

#[derive(serde::Deserialize)]
struct ActivityQuery {
    date: Option<String>,
    api_key_hash: Option<String>,
}

/// OpenRouter's `GET /activity`: usage per UTC day, model and endpoint over the last 30 completed days
/// (or `date`, one of them), optionally of one key (`api_key_hash`).
async fn activity(
    State(state): State<AppState>,
    ManagementAuth(me): ManagementAuth,
    axum::extract::Query(q): axum::extract::Query<ActivityQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = crate::store::now_ms();
    let today = now - now.rem_euclid(crate::usage::DAY_MS);
    let date = match q.date.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => {
            let day = crate::usage::parse_day(d).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`date` must be a UTC date like 2026-11-20, not {d:?}"
                ))
            })?;
            if day >= today || day < today - 30 * crate::usage::DAY_MS {
                return Err(ApiError::bad_request(format!(
                    "`date` must be one of the last 30 completed UTC days ({} to {})",
                    rfc3339(today - 30 * crate::usage::DAY_MS)
                        .get(..10)
                        .unwrap_or(""),
                    rfc3339(today - crate::usage::DAY_MS)
                        .get(..10)
                        .unwrap_or("")
                )));
            }
            Some(day)
        }
    };
    let key_id = match q.api_key_hash.as_deref().filter(|h| !h.is_empty()) {
        None => None,
        Some(hash) => {
            let found: Option<(String,)> =
                sqlx::query_as("SELECT id FROM api_keys WHERE hash = $1 AND org_id = $2")
                    .bind(hash)
                    .bind(&me.org_id)
                    .fetch_optional(&state.store.pool)
                    .await?;
            Some(
                found
                    .ok_or_else(|| {
                        ApiError::not_found(format!("no API key {hash:?} in this organisation"))
                    })?
                    .0,
            )
        }
    };
    Ok(Json(
        crate::usage::openrouter_activity(&state.store, &me.org_id, date, key_id.as_deref(), now)
            .await?,
    ))
}

fn key_json(k: &KeyRecord) -> Value {
    json!({
        "hash": k.hash,
        "name": k.name,
        "label": k.prefix,
        "disabled": k.disabled != 0,
        "limit": k.limit_nanos.map(|l| Nanos(l).usd_json()),
        "limit_remaining": k.limit_remaining().map(Nanos::usd_json),
        "usage": Nanos(k.usage_nanos).usd_json(),
        "created_at": rfc3339(k.created_at),
        "updated_at": k.updated_at.map(rfc3339),
        "expires_at": k.expires_at.map(rfc3339),
        "last_used_at": k.last_used_at.map(rfc3339),
        "limit_reset": k.limit_reset,
        "allowed_models": k.allowed_models.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()),
        "requests_per_minute": k.rpm_limit,
        "max_concurrent_requests": k.concurrency_limit,
        "provider": k.provider_prefs.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()),
    })
}

/// A key's default `provider` object, checked as a request's is, with every provider it names in the
/// catalog (by slug or name); the JSON to store, or None for `{}`.
async fn key_prefs(state: &AppState, v: &Value) -> Result<Option<String>, ApiError> {
    crate::gateway::route::parse_prefs(v)?;
    let known: Vec<(String, String)> = sqlx::query_as("SELECT slug, name FROM providers")
        .fetch_all(&state.store.pool)
        .await
        .map_err(ApiError::internal)?;
    for field in ["order", "only", "ignore"] {
        for name in v[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !known
                .iter()
                .any(|(slug, n)| slug.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(name))
            {
                let mut slugs: Vec<&str> = known.iter().map(|(s, _)| s.as_str()).collect();
                slugs.sort_unstable();
                return Err(ApiError::bad_field(
                    &format!("provider.{field}"),
                    format!(
                        "names {name:?}, which is not a provider here; the providers are {}",
                        slugs.join(", ")
                    ),
                ));
            }
        }
    }
    Ok((*v != json!({})).then(|| v.to_string()))
}

async fn find(state: &AppState, org_id: &str, hash: &str) -> Result<KeyRecord, ApiError> {
    find_record(&state.store, KeyScope::org(org_id), hash)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no API key {hash:?} in this organisation")))
}

async fn list(
    State(state): State<AppState>,
    ManagementAuth(me): ManagementAuth,
) -> Result<Json<Value>, ApiError> {
    let rows = list_records(&state.store, KeyScope::org(&me.org_id)).await?;
    Ok(Json(
        json!({ "data": rows.iter().map(key_json).collect::<Vec<_>>() }),
    ))
}

async fn show(
    State(state): State<AppState>,
    ManagementAuth(me): ManagementAuth,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "data": key_json(&find(&state, &me.org_id, &hash).await?) }),
    ))
}

/// The fields a request may set, checked strictly: an unknown or mistyped field is a 400 naming it.
#[derive(Default)]
struct KeyFields {
    name: Option<String>,
    /// Some(None) removes the limit.
    limit: Option<Option<Nanos>>,
    expires_at: Option<Option<i64>>,
    disabled: Option<bool>,
    limit_reset: Option<Option<LimitReset>>,
    allowed_models: Option<Option<Vec<String>>>,
    requests_per_minute: Option<Option<u32>>,
    max_concurrent_requests: Option<Option<u32>>,
    /// The key's default `provider` object (checked against the catalog before it is stored).
    provider: Option<Value>,
}

fn parse_fields(
    state: &AppState,
    bytes: &[u8],
    allow_disabled: bool,
) -> Result<KeyFields, ApiError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    };
    let mut f = KeyFields::default();
    for (k, v) in &map {
        match (k.as_str(), v) {
            ("name", Value::String(s))
                if !s.trim().is_empty() && s.trim().chars().count() <= 100 =>
            {
                f.name = Some(s.trim().to_string())
            }
            ("name", _) => {
                return Err(ApiError::bad_field(
                    "name",
                    "must be a string of 1 to 100 characters",
                ))
            }
            ("limit", Value::Null) => f.limit = Some(None),
            ("limit", Value::Number(n)) => {
                let amount = Nanos::parse_usd(&n.to_string()).map_err(|e| {
                    ApiError::bad_field("limit", format!("must be a USD amount: {e}"))
                })?;
                f.limit = Some(Some(amount));
            }
            ("limit", Value::String(s)) => {
                let amount = Nanos::parse_usd(s).map_err(|e| {
                    ApiError::bad_field("limit", format!("must be a USD amount: {e}"))
                })?;
                f.limit = Some(Some(amount));
            }
            ("limit", _) => {
                return Err(ApiError::bad_field("limit", "must be a USD amount or null"))
            }
            ("expires_at", Value::Null) => f.expires_at = Some(None),
            ("expires_at", Value::String(s)) => {
                let t =
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| {
                            ApiError::bad_field(
                                "expires_at",
                                "must be an RFC 3339 time like 2027-01-01T00:00:00Z, or null",
                            )
                        })?;
                f.expires_at = Some(Some((t.unix_timestamp_nanos() / 1_000_000) as i64));
            }
            ("expires_at", _) => {
                return Err(ApiError::bad_field(
                    "expires_at",
                    "must be an RFC 3339 time or null",
                ))
            }
            ("limit_reset", Value::Null) => f.limit_reset = Some(None),
            ("limit_reset", Value::String(s)) if LimitReset::parse(s).is_some() => {
                f.limit_reset = Some(LimitReset::parse(s))
            }
            ("limit_reset", _) => {
                return Err(ApiError::bad_field(
                    "limit_reset",
                    "must be \"daily\", \"weekly\", \"monthly\" or null",
                ))
            }
            ("allowed_models", Value::Null) => f.allowed_models = Some(None),
            ("allowed_models", Value::Array(items)) => {
                let catalog = state.catalog.get();
                let mut models = Vec::new();
                for item in items {
                    let Some(slug) = item.as_str() else {
                        return Err(ApiError::bad_field(
                            "allowed_models",
                            "must be an array of model ids",
                        ));
                    };
                    if !catalog.models.contains_key(slug) {
                        return Err(ApiError::bad_field(
                            "allowed_models",
                            format!("names {slug:?}, which is not in the catalog"),
                        ));
                    }
                    models.push(slug.to_string());
                }
                f.allowed_models = Some(Some(models));
            }
            ("allowed_models", _) => {
                return Err(ApiError::bad_field(
                    "allowed_models",
                    "must be an array of model ids, or null",
                ))
            }
            ("requests_per_minute", Value::Null) => f.requests_per_minute = Some(None),
            ("requests_per_minute", Value::Number(n))
                if n.as_u64().is_some_and(|v| (1..=1_000_000).contains(&v)) =>
            {
                f.requests_per_minute = Some(n.as_u64().and_then(|v| u32::try_from(v).ok()));
            }
            ("requests_per_minute", _) => {
                return Err(ApiError::bad_field(
                    "requests_per_minute",
                    "must be a whole number from 1 to 1000000, or null",
                ))
            }
            ("max_concurrent_requests", Value::Null) => f.max_concurrent_requests = Some(None),
            ("max_concurrent_requests", Value::Number(n))
                if n.as_u64().is_some_and(|v| (1..=100_000).contains(&v)) =>
            {
                f.max_concurrent_requests = Some(n.as_u64().and_then(|v| u32::try_from(v).ok()));
            }
            ("max_concurrent_requests", _) => {
                return Err(ApiError::bad_field(
                    "max_concurrent_requests",
                    "must be a whole number from 1 to 100000, or null",
                ))
            }
            ("provider", Value::Null | Value::Object(_)) => f.provider = Some(v.clone()),
            ("provider", _) => {
                return Err(ApiError::bad_field(
                    "provider",
                    "must be a routing object like {\"order\": [\"openai\"], \"sort\": \"price\"}, or null",
                ))
            }
            ("disabled", Value::Bool(b)) if allow_disabled => f.disabled = Some(*b),
            ("disabled", _) if allow_disabled => {
                return Err(ApiError::bad_field("disabled", "must be true or false"))
            }
            (other, _) => {
                return Err(ApiError::bad_field(
                    other,
                    "is not a field this endpoint accepts",
                ))
            }
        }
    }
    Ok(f)
}

async fn create(
    State(state): State<AppState>,
    ManagementAuth(me): ManagementAuth,
    LimitedBody(body): LimitedBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let f = parse_fields(&state, &body, false)?;
    let name = f
        .name
        .ok_or_else(|| ApiError::bad_field("name", "is required"))?;
    let provider = match f.provider.filter(|v| !v.is_null()) {
        Some(v) => key_prefs(&state, &v).await?,
        None => None,
    };
    let rules = KeyRules {
        limit_reset: f.limit_reset.flatten(),
        allowed_models: f.allowed_models.flatten(),
        requests_per_minute: f.requests_per_minute.flatten(),
        max_concurrent: f.max_concurrent_requests.flatten(),
        provider,
    };
    let k = create_key_with(
        &state.store,
        &me.org_id,
        &name,
        f.limit.flatten(),
        f.expires_at.flatten(),
        &rules,
    )
    .await
    .map_err(ApiError::internal)?;
    // The key belongs to the person behind the management key: it follows their removal or disabling.
    if let Some(maker) = &me.maker {
        sqlx::query("UPDATE api_keys SET created_by = $1 WHERE id = $2")
            .bind(&maker.id)
            .bind(&k.id)
            .execute(&state.store.writer)
            .await?;
    }
    let row = find(&state, &me.org_id, &hash_secret(&k.secret)).await?;
    tracing::info!(org = %me.org_id, by = %me.id, key = %k.id, "API key created over the management API");
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": key_json(&row), "key": k.secret })),
    ))
}

async fn update(
    State(state): State<AppState>,
    ManagementAuth(me): ManagementAuth,
    Path(hash): Path<String>,
    LimitedBody(body): LimitedBody,
) -> Result<Json<Value>, ApiError> {
    let f = parse_fields(&state, &body, true)?;
    let current = find(&state, &me.org_id, &hash).await?;
    let name = f.name.unwrap_or(current.name);
    let limit = f.limit.unwrap_or(current.limit_nanos.map(Nanos));
    let expires_at = f.expires_at.unwrap_or(current.expires_at);
    let disabled = f.disabled.unwrap_or(current.disabled != 0);
    let limit_reset = f
        .limit_reset
        .unwrap_or(current.limit_reset.as_deref().and_then(LimitReset::parse));
    let allowed_models = match f.allowed_models {
        Some(m) => m,
        None => current
            .allowed_models
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok()),
    };
    let requests_per_minute = f
        .requests_per_minute
        .unwrap_or(current.rpm_limit.and_then(|r| u32::try_from(r).ok()));
    let max_concurrent = f.max_concurrent_requests.unwrap_or(
        current
            .concurrency_limit
            .and_then(|r| u32::try_from(r).ok()),
    );
    let provider = match f.provider {
        Some(Value::Null) => None,
        Some(v) => key_prefs(&state, &v).await?,
        None => current.provider_prefs,
    };
    let edit = KeyEdit {
        name,
        limit,
        expires_at,
        disabled: Some(disabled),
        rules: KeyRules {
            limit_reset,
            allowed_models,
            requests_per_minute,
            max_concurrent,
            provider,
        },
    };
    update_key(&state.store, KeyScope::org(&me.org_id), &hash, &edit).await?;
    state.keys.forget_all();
    tracing::info!(org = %me.org_id, by = %me.id, key = %hash, "API key updated over the management API");
    Ok(Json(
        json!({ "data": key_json(&find(&state, &me.org_id, &hash).await?) }),
    ))
}

async fn delete(
    State(state): State<AppState>,
    ManagementAuth(me): ManagementAuth,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !revoke_by_hash(&state.store, KeyScope::org(&me.org_id), &hash).await? {
        return Err(ApiError::not_found(format!(
            "no API key {hash:?} in this organisation"
        )));
    }
    tracing::info!(org = %me.org_id, by = %me.id, key = %hash, "API key deleted over the management API");
    Ok(Json(json!({ "deleted": true })))
}
