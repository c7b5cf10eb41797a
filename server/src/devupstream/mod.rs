//! A fake OpenAI-compatible upstream for development, demos, tests and the benchmark: real HTTP, OpenAI's
//! wire format (responses, SSE chunks, usage, error bodies, rate-limit headers), realistic token counts,
//! and switches for failure. A request steers it with an optional `x_fake` object in its body (which the
//! gateway passes through untouched, like any unknown field):
//!
//! `{"x_fake": {"status": 429|500|400|401, "malformed": true, "hang": true, "drop_after": 3,
//!   "chunk_delay_ms": 20, "first_byte_delay_ms": 100, "tokens": 12, "omit_usage": true}}`

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

#[derive(Clone, Debug, Default)]
pub struct FakeConfig {
    /// Delay between stream chunks unless the request says otherwise.
    pub chunk_delay_ms: u64,
    /// When set, requests must carry `Authorization: Bearer <this>` (or one of `more_keys`).
    pub api_key: Option<String>,
    pub more_keys: Vec<String>,
}

#[derive(Default)]
pub struct FakeStats {
    pub requests: AtomicU64,
    /// Streams that ended because the client (the gateway) went away.
    pub streams_abandoned: AtomicU64,
    pub streams_completed: AtomicU64,
    pub last_body: parking_lot::Mutex<Option<Value>>,
    /// Accepted chat requests by the last four characters of the key they carried.
    pub by_key: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
}

#[derive(Clone)]
struct Fake {
    cfg: FakeConfig,
    stats: Arc<FakeStats>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct Switches {
    status: Option<u16>,
    malformed: bool,
    hang: bool,
    drop_after: Option<u64>,
    chunk_delay_ms: Option<u64>,
    first_byte_delay_ms: Option<u64>,
    tokens: Option<u64>,
    omit_usage: bool,
    /// This many prompt tokens were read from the prompt cache (at most the whole prompt).
    cached_tokens: Option<u64>,
    /// This many of the completion tokens were spent reasoning (at most all of them).
    reasoning_tokens: Option<u64>,
}

pub fn router(cfg: FakeConfig) -> (Router, Arc<FakeStats>) {
    let stats = Arc::new(FakeStats::default());
    let fake = Fake {
        cfg,
        stats: stats.clone(),
    };
    let r = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/_fake/stats", get(stats_json))
        .with_state(fake);
    (r, stats)
}

/// Serves the fake on `addr` (port 0 for any) in the background; returns where it listens.
pub async fn spawn(
    addr: SocketAddr,
    cfg: FakeConfig,
) -> std::io::Result<(SocketAddr, Arc<FakeStats>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (app, stats) = router(cfg);
    tokio::spawn(async move {
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "dev upstream stopped");
        }
    });
    Ok((local, stats))
}

async fn models(State(f): State<Fake>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse_key(&f, &headers) {
        return refused;
    }
    Json(json!({"object": "list", "data": [
        {"id": "fast-1", "object": "model", "created": 1700000000, "owned_by": "switchyard-dev"},
        {"id": "smart-1", "object": "model", "created": 1700000000, "owned_by": "switchyard-dev"},
    ]}))
    .into_response()
}

async fn stats_json(State(f): State<Fake>) -> Json<Value> {
    Json(json!({
        "requests": f.stats.requests.load(Ordering::Relaxed),
        "streams_abandoned": f.stats.streams_abandoned.load(Ordering::Relaxed),
        "streams_completed": f.stats.streams_completed.load(Ordering::Relaxed),
        "last_body": f.stats.last_body.lock().clone(),
        "by_key": *f.stats.by_key.lock(),
    }))
}

fn openai_error(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}})),
    )
        .into_response()
}

const WORDS: &[&str] = &[
    "Hello",
    "from",
    "the",
    "Switchyard",
    "development",
    "upstream.",
    "This",
    "reply",
    "is",
    "generated",
    "locally",
    "so",
    "you",
    "can",
    "try",
    "the",
    "gateway",
    "without",
    "a",
    "provider",
    "account;",
    "every",
    "word",
    "is",
    "one",
    "token",
    "and",
    "the",
    "usage",
    "numbers",
    "are",
    "real",
    "counts.",
];

/// OpenAI-like prompt token count: about four characters a token plus per-message overhead.
fn prompt_tokens(body: &Value) -> u64 {
    let msgs = body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let chars: usize = msgs
        .iter()
        .map(|m| match &m["content"] {
            Value::String(s) => s.chars().count(),
            Value::Array(parts) => parts
                .iter()
                .map(|p| p["text"].as_str().map_or(0, |s| s.chars().count()))
                .sum(),
            _ => 0,
        })
        .sum();
    (chars as u64).div_ceil(4) + 4 * msgs.len() as u64 + 3
}

/// OpenAI's answer to a missing or wrong key, when the fake has one.
fn refuse_key(f: &Fake, headers: &HeaderMap) -> Option<Response> {
    let key = f.cfg.api_key.as_ref()?;
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = sent.is_some_and(|s| s == key || f.cfg.more_keys.iter().any(|k| k == s));
    (!ok).then(|| {
        openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    })
}

async fn chat(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    f.stats.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = refuse_key(&f, &headers) {
        return refused;
    }
    if let Some(key) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        let tail: String = key
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        *f.stats.by_key.lock().entry(tail).or_default() += 1;
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                &format!("We could not parse the JSON body of your request. ({e})"),
                "invalid_request_error",
                None,
            )
        }
    };
    *f.stats.last_body.lock() = Some(body.clone());
    let sw: Switches = serde_json::from_value(body["x_fake"].clone()).unwrap_or_default();
    if let Some(ms) = sw.first_byte_delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if sw.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    match sw.status {
        Some(429) => {
            let mut r = openai_error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached for requests per minute. Please try again in 1s.", "requests", Some("rate_limit_exceeded"));
            let h = r.headers_mut();
            h.insert("retry-after", "1".parse().expect("static header"));
            h.insert("x-ratelimit-limit-requests", "60".parse().expect("static header"));
            h.insert("x-ratelimit-remaining-requests", "0".parse().expect("static header"));
            h.insert("x-ratelimit-reset-requests", "1s".parse().expect("static header"));
            return r;
        }
        Some(400) => {
            return openai_error(StatusCode::BAD_REQUEST, "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "invalid_request_error", Some("context_length_exceeded"))
        }
        Some(401) => return openai_error(StatusCode::UNAUTHORIZED, "Incorrect API key provided.", "invalid_request_error", Some("invalid_api_key")),
        Some(s) if s >= 500 => {
            return openai_error(StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "The server had an error while processing your request. Sorry about that!", "server_error", None)
        }
        _ => {}
    }
    if sw.malformed {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"id\": \"chatcmpl-broken\", \"choices\": [",
        )
            .into_response();
    }
    let model = body["model"].as_str().unwrap_or("unknown").to_string();
    let max = body["max_completion_tokens"]
        .as_u64()
        .or(body["max_tokens"].as_u64());
    let want = sw.tokens.unwrap_or(24);
    let (n, finish) = match max {
        Some(m) if m < want => (m, "length"),
        _ => (want, "stop"),
    };
    let prompt = prompt_tokens(&body);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = crate::store::now_ms() / 1000;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n,
        "prompt_tokens_details": {"cached_tokens": sw.cached_tokens.unwrap_or(0).min(prompt)},
        "completion_tokens_details": {"reasoning_tokens": sw.reasoning_tokens.unwrap_or(0).min(n)}});
    let word = |i: u64| {
        let w = WORDS[(i as usize) % WORDS.len()];
        if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        }
    };
    if body["stream"].as_bool() != Some(true) {
        let text: String = (0..n).map(word).collect();
        let mut v = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null}, "logprobs": null, "finish_reason": finish}],
            "system_fingerprint": "fp_switchyard_dev",
        });
        if !sw.omit_usage {
            v["usage"] = usage;
        }
        return Json(v).into_response();
    }
    let include_usage =
        body["stream_options"]["include_usage"].as_bool() == Some(true) && !sw.omit_usage;
    let delay = Duration::from_millis(sw.chunk_delay_ms.unwrap_or(f.cfg.chunk_delay_ms));
    let stats = f.stats.clone();
    let stream = async_stream::stream! {
        // Counts the stream as abandoned unless it reaches its end.
        let mut guard = StreamGuard { stats: stats.clone(), finished: false };
        let chunk = |delta: Value, finish: Value| {
            let v = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_switchyard_dev", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
            Ok::<Bytes, std::io::Error>(Bytes::from(format!("data: {v}\n\n")))
        };
        yield chunk(json!({"role": "assistant", "content": ""}), Value::Null);
        for i in 0..n {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Some(d) = sw.drop_after {
                if i >= d {
                    yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake upstream dropped the connection"));
                    return;
                }
            }
            yield chunk(json!({"content": word(i)}), Value::Null);
        }
        yield chunk(json!({}), Value::String(finish.to_string()));
        if include_usage {
            let v = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage});
            yield Ok(Bytes::from(format!("data: {v}\n\n")));
        }
        yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
        guard.finished = true;
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .expect("valid response")
}

struct StreamGuard {
    stats: Arc<FakeStats>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let c = if self.finished {
            &self.stats.streams_completed
        } else {
            &self.stats.streams_abandoned
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}
