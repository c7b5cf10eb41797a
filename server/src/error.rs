//! The API's one error shape, `{"error":{"code","message","type","metadata"}}` (OpenAI/OpenRouter
//! compatible), and the mapping of every failure the HTTP layer can see onto it.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub metadata: Map<String, Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            metadata: Map::new(),
            retry_after: None,
        }
    }

    /// Asks the client to wait this many seconds (`Retry-After`).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn with_meta(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.to_string(), value.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// A request field with the wrong type or value; names the field.
    pub fn bad_field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("`{field}` {message}")).with_meta("param", field)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    pub fn payment_required(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_credits",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "request body is larger than the limit of {limit} bytes; send a smaller request"
            ),
        )
        .with_meta("limit_bytes", limit)
    }

    /// An internal failure: logged with its detail, shown without it.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(error_id = %id, error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", format!("internal error (reference {id}); try again, and report the reference if it persists"))
            .with_meta("error_id", id)
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "code": self.status.as_u16(),
            "message": self.message,
            "type": self.kind,
            "metadata": Value::Object(self.metadata.clone()),
        }})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was not read: the connection cannot carry another request.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::unavailable(&e) {
            tracing::warn!(error = %e, "the database is unavailable");
            let mut a = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the platform's database is unavailable; retry shortly",
            );
            a.retry_after = Some(2);
            return a;
        }
        ApiError::internal(e)
    }
}
