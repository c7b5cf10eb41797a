//! The OpenAI/OpenRouter-compatible API, served on both `/v1` and `/api/v1`:
//! parse -> authenticate -> route -> admit credits -> dispatch -> stream -> settle.

mod chat;
mod collect;
mod compat;
mod embeddings;
mod governed;
pub mod health;
pub(crate) mod info;
mod meter;
mod request;
pub mod route;
mod sse;
pub mod stream;

use crate::error::ApiError;
use crate::keys::{KeyInfo, KeyKind, KEY_PREFIX};
use crate::state::AppState;
use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use std::sync::Arc;

/// Every API route under both `/v1` and `/api/v1`: the gateway's and the key management API.
pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/chat/completions", post(chat::chat_completions))
        .route("/completions", post(compat::completions))
        .route("/messages", post(compat::messages))
        .route("/embeddings", post(embeddings::embeddings))
        .route("/models", get(info::models))
        .route(
            "/models/{author}/{slug}/endpoints",
            get(info::model_endpoints),
        )
        .route("/generation", get(info::generation))
        .route("/key", get(info::key))
        .route("/auth/key", get(info::key))
        .route("/credits", get(info::credits))
        .merge(crate::keys::api::routes())
        .fallback(|| async {
            ApiError::not_found("no such API route; see the README for the endpoints")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method not allowed on this route",
            )
        });
    Router::new().nest("/v1", api.clone()).nest("/api/v1", api)
}

/// The calling API key (one that calls models), authenticated. Handlers receive this, never the header.
pub struct ApiKeyAuth(pub Arc<KeyInfo>);

impl FromRequestParts<AppState> for ApiKeyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = authenticate(parts, state).await?;
        if key.kind != KeyKind::Inference {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "permission_error",
                "management keys cannot call models; use an API key",
            ));
        }
        Ok(ApiKeyAuth(key))
    }
}

/// The calling management key, authenticated.
pub struct ManagementAuth(pub Arc<KeyInfo>);

impl FromRequestParts<AppState> for ManagementAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = authenticate(parts, state).await?;
        if key.kind != KeyKind::Management {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "permission_error",
                "this endpoint needs a management key; API keys cannot manage keys",
            ));
        }
        Ok(ManagementAuth(key))
    }
}

/// A live key from the bearer header: present, known, not revoked, disabled or expired.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Arc<KeyInfo>, ApiError> {
    // Anthropic's SDKs send the key as `x-api-key`; everyone else as a bearer token.
    let x_api_key = parts
        .headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let secret = match (
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        x_api_key,
    ) {
        (Some(h), _) => h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <API key>`")
            })?,
        (None, Some(k)) => k,
        (None, None) => {
            return Err(ApiError::unauthorized(
                "missing API key: send the header `Authorization: Bearer sk-sy-v1-…`",
            ))
        }
    };
    if !secret.starts_with(KEY_PREFIX) || secret.len() > 200 {
        return Err(ApiError::unauthorized("invalid API key"));
    }
    // A database that does not answer is a 503 to retry, not a request left hanging.
    let wait = crate::config::Config::ms(state.cfg.admission_timeout_ms.max(1));
    let info = tokio::time::timeout(wait, state.keys.get(&state.store, secret))
        .await
        .map_err(|_| ApiError::from(sqlx::Error::PoolTimedOut))??
        .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
    if info.revoked {
        return Err(ApiError::unauthorized(
            "this API key was revoked; create a new one",
        ));
    }
    if info.disabled {
        return Err(ApiError::unauthorized(
            "this API key is disabled; an org admin can enable it",
        ));
    }
    if let Some(why) = info.maker_refusal() {
        return Err(ApiError::unauthorized(why));
    }
    if let Some(exp) = info.expires_at {
        if exp <= crate::store::now_ms() {
            return Err(ApiError::unauthorized(format!(
                "this API key expired at {}; create a new one",
                info::rfc3339(exp)
            )));
        }
    }
    Ok(info)
}

/// The request body, refused with 413 past the configured limit.
pub struct LimitedBody(pub Bytes);

impl FromRequest<AppState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.cfg.max_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::too_large(limit));
        }
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(b) => Ok(LimitedBody(b)),
            Err(e) => {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                if too_large {
                    Err(ApiError::too_large(limit))
                } else {
                    Err(ApiError::bad_request(format!(
                        "could not read the request body: {e}"
                    )))
                }
            }
        }
    }
}
