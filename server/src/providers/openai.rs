//! The `openai` adapter: any OpenAI-compatible server. The request body is the client's own JSON with
//! `model` rewritten (and usage requested when streaming), so unknown fields reach the upstream untouched.

use super::{truncate, upstream_message, FailureKind, Timeouts, UpstreamFailure};
use crate::catalog::{Credential, Endpoint};
use bytes::Bytes;
use futures::StreamExt;

/// Sends a chat completion and returns the response once its headers say success.
pub async fn send_chat(
    client: &reqwest::Client,
    ep: &Endpoint,
    credential: Option<&Credential>,
    body: Bytes,
    t: Timeouts,
) -> Result<reqwest::Response, UpstreamFailure> {
    let provider = ep.provider.name.clone();
    let fail = |kind, message: String| UpstreamFailure {
        kind,
        provider: provider.clone(),
        message,
        raw: None,
        retry_after: None,
    };
    let url = format!("{}/chat/completions", ep.provider.base_url);
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(c) = credential {
        req = req.bearer_auth(c.secret.expose());
    }
    let resp = match tokio::time::timeout(t.first_byte, req.send()).await {
        Err(_) => {
            return Err(fail(
                FailureKind::Timeout,
                "no response headers in time".into(),
            ))
        }
        Ok(Err(e)) if e.is_timeout() => {
            return Err(fail(FailureKind::Timeout, "connect timeout".into()))
        }
        Ok(Err(e)) => return Err(fail(FailureKind::Connect, describe(&e))),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| s.ceil().max(0.0) as u64);
    let body = read_capped(resp, 64 * 1024, t.idle)
        .await
        .unwrap_or_default();
    Err(UpstreamFailure {
        kind: FailureKind::Status(status.as_u16()),
        provider,
        message: upstream_message(&body),
        raw: Some(truncate(&String::from_utf8_lossy(&body), 2000)),
        retry_after,
    })
}

/// Reads a whole body, at most `cap` bytes, each chunk within `idle`.
pub async fn read_capped(
    resp: reqwest::Response,
    cap: usize,
    idle: std::time::Duration,
) -> Result<Vec<u8>, FailureKind> {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    loop {
        match tokio::time::timeout(idle, s.next()).await {
            Err(_) => return Err(FailureKind::Timeout),
            Ok(None) => return Ok(out),
            Ok(Some(Err(_))) => return Err(FailureKind::Connect),
            Ok(Some(Ok(b))) => {
                out.extend_from_slice(&b);
                if out.len() > cap {
                    return Err(FailureKind::Malformed);
                }
            }
        }
    }
}

/// A connection error without the URL's credentials or query.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = String::from(if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    });
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    truncate(&msg, 300)
}
