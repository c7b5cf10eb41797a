//! Provider adapters: one per wire protocol. Each sends a request to an upstream and reports failures in
//! one shape, so the gateway can decide whether to try the next endpoint and what to tell the client.

pub mod openai;

use crate::error::ApiError;
use axum::http::StatusCode;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub first_byte: Duration,
    pub idle: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Could not connect or the connection broke before a response.
    Connect,
    /// No response (or no next chunk) in time.
    Timeout,
    /// The upstream answered with an error status.
    Status(u16),
    /// The upstream answered 2xx with something that is not a valid response.
    Malformed,
}

/// Why an upstream call failed. `message` is safe to show the client: it carries the provider's own
/// message, never the platform's credentials.
#[derive(Clone, Debug)]
pub struct UpstreamFailure {
    pub kind: FailureKind,
    pub provider: String,
    pub message: String,
    pub raw: Option<String>,
    pub retry_after: Option<u64>,
}

impl UpstreamFailure {
    /// Whether another endpoint may succeed where this one failed.
    pub fn retryable(&self) -> bool {
        match self.kind {
            FailureKind::Connect | FailureKind::Timeout | FailureKind::Malformed => true,
            FailureKind::Status(s) => s == 408 || s == 429 || s >= 500 || s == 401 || s == 403,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self.kind {
            FailureKind::Connect => "upstream_unreachable",
            FailureKind::Timeout => "timeout",
            FailureKind::Malformed => "invalid_upstream_response",
            FailureKind::Status(429) => "rate_limited",
            FailureKind::Status(401 | 403) => "upstream_auth_failed",
            FailureKind::Status(400 | 413 | 422)
                if self.message.to_ascii_lowercase().contains("context") =>
            {
                "context_length_exceeded"
            }
            FailureKind::Status(400 | 404 | 413 | 422) => "upstream_bad_request",
            FailureKind::Status(503 | 529) => "provider_overloaded",
            FailureKind::Status(_) => "upstream_error",
        }
    }

    /// The error the client sees.
    pub fn to_api_error(&self) -> ApiError {
        let (status, kind, message) = match self.kind {
            FailureKind::Timeout => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!("provider {} did not answer in time; try again, or pick another model", self.provider),
            ),
            FailureKind::Status(429) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!("provider {} is rate limiting: {}", self.provider, self.message),
            ),
            FailureKind::Status(s @ (400 | 404 | 413 | 422)) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("provider {} rejected the request (HTTP {s}): {}", self.provider, self.message),
            ),
            FailureKind::Status(s @ (401 | 403)) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("provider {} refused the platform's credentials (HTTP {s}); the operator must fix this provider's api_key", self.provider),
            ),
            FailureKind::Status(s) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("provider {} returned an error (HTTP {s}): {}", self.provider, self.message),
            ),
            FailureKind::Connect => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("could not reach provider {}: {}", self.provider, self.message),
            ),
            FailureKind::Malformed => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("provider {} sent an invalid response: {}", self.provider, self.message),
            ),
        };
        let mut e = ApiError::new(status, kind, message)
            .with_meta("provider_name", self.provider.clone())
            .with_meta("error_type", self.error_type());
        if let FailureKind::Status(s) = self.kind {
            e = e.with_meta("provider_code", s);
        }
        if let Some(raw) = &self.raw {
            e = e.with_meta("raw", raw.clone());
        }
        e.retry_after = self.retry_after;
        e
    }
}

/// Pulls the human message out of an upstream error body (OpenAI `{"error":{"message"}}` and friends).
pub fn upstream_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for path in [
            &["error", "message"][..],
            &["message"][..],
            &["error"][..],
            &["detail"][..],
        ] {
            let mut cur = &v;
            for k in path {
                cur = &cur[*k];
            }
            if let Some(s) = cur.as_str() {
                return truncate(s, 500);
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        "(empty response body)".into()
    } else {
        truncate(text.trim(), 500)
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
