//! A fake upstream for development, demos, tests and the benchmark: real HTTP speaking OpenAI's wire format
//! (`/v1/chat/completions`, and Azure's `/openai/deployments/{name}/chat/completions`), Anthropic's
//! Messages API (`/v1/messages`, in `anthropic.rs`), Google's Generative Language API
//! (`/v1beta/models/{model}:generateContent` and `:streamGenerateContent`, in `gemini.rs`) and AWS
//! Bedrock's Converse API with SigV4 and binary event streams (`/bedrock/...`, in `bedrock.rs`): responses,
//! stream events, usage, each provider's error bodies and rate-limit headers, realistic token counts, and
//! switches for failure. An OpenAI-format request may steer it with an `x_fake` object in its body (which
//! the gateway passes through untouched, like any unknown field); any request can be steered by arming the
//! fake beforehand (`POST /_fake/arm` with the switches, an optional upstream `model` and `times`), which
//! is how tests make one endpoint fail and not the next:
//!
//! `{"status": 429|500|503|529|400|401, "malformed": true, "hang": true, "drop_after": 3,
//!   "chunk_delay_ms": 20, "first_byte_delay_ms": 100, "tokens": 12, "omit_usage": true,
//!   "fill": true, "overreport": 500}`
//!
//! Like a real provider it bills what it produces: `fill` answers as many tokens as the request allows
//! (or its own maximum, 8,192, when it names no limit), for every choice of `n` (`candidateCount`);
//! media parts are counted by each provider's own rules (image tiles and patches from the image's size,
//! audio and documents by length); `overreport` misreports the usage (and bills it) above what was
//! produced. Every answer's bill is kept (`GET /_fake/stats` → `bills`): a stream the gateway abandons
//! bills the tokens it had been sent.

mod anthropic;
mod bedrock;
mod gemini;

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
    /// Chat requests by the upstream model they named.
    pub by_model: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Switches armed for the next requests (`POST /_fake/arm`).
    armed: parking_lot::Mutex<Vec<Armed>>,
    /// Prompt prefixes written to the (Anthropic) prompt cache.
    cached: parking_lot::Mutex<std::collections::HashSet<u64>>,
    /// What each answer billed.
    bills: parking_lot::Mutex<Vec<Bill>>,
}

/// What the fake billed for one answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Bill {
    /// The answer's id as the fake gave it (the gateway keeps it as the generation's `upstream_id`).
    pub id: String,
    pub model: String,
    pub prompt: u64,
    pub completion: u64,
    /// The answer was sent whole (else: abandoned by the gateway, billed for what it had been sent).
    pub finished: bool,
}

/// A fake model's own output limit, used when a request names none.
pub const FAKE_MAX_OUTPUT: u64 = 8_192;

#[derive(Deserialize, Clone)]
struct Armed {
    #[serde(default)]
    model: Option<String>,
    #[serde(default = "one")]
    times: u64,
    #[serde(flatten)]
    switches: Switches,
}

fn one() -> u64 {
    1
}

impl FakeStats {
    /// Every bill so far.
    pub fn bills(&self) -> Vec<Bill> {
        self.bills.lock().clone()
    }

    pub(crate) fn bill(&self, b: Bill) {
        self.bills.lock().push(b);
    }

    /// Whether the prompt prefix is cached already; caches it if not.
    pub(crate) fn cache_seen(&self, key: u64) -> bool {
        !self.cached.lock().insert(key)
    }

    /// The switches for a request: its own `x_fake`, else the first armed entry for its model.
    pub(crate) fn switches(&self, own: &Value, model: &str) -> Switches {
        *self.by_model.lock().entry(model.to_string()).or_default() += 1;
        if let Ok(sw) = serde_json::from_value::<Switches>(own.clone()) {
            if !own.is_null() {
                return sw;
            }
        }
        let mut armed = self.armed.lock();
        let pos = armed
            .iter()
            .position(|a| a.times > 0 && a.model.as_deref().is_none_or(|m| m == model));
        match pos {
            Some(i) => {
                armed[i].times -= 1;
                let sw = armed[i].switches.clone();
                if armed[i].times == 0 {
                    armed.remove(i);
                }
                sw
            }
            None => Switches::default(),
        }
    }
}

#[derive(Clone)]
struct Fake {
    cfg: FakeConfig,
    stats: Arc<FakeStats>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(default)]
pub(crate) struct Switches {
    pub(crate) status: Option<u16>,
    pub(crate) malformed: bool,
    pub(crate) hang: bool,
    pub(crate) drop_after: Option<u64>,
    pub(crate) chunk_delay_ms: Option<u64>,
    pub(crate) first_byte_delay_ms: Option<u64>,
    pub(crate) tokens: Option<u64>,
    pub(crate) omit_usage: bool,
    /// This many prompt tokens were read from the prompt cache (at most the whole prompt).
    pub(crate) cached_tokens: Option<u64>,
    /// This many of the completion tokens were spent reasoning (at most all of them).
    pub(crate) reasoning_tokens: Option<u64>,
    /// Gemini: block the prompt for safety.
    pub(crate) safety_block: bool,
    /// Bedrock: answer a stream with this exception (e.g. `throttlingException`) after `messageStart`.
    pub(crate) stream_exception: Option<String>,
    /// Answer as many tokens as allowed: the request's limit, else the fake's own maximum.
    pub(crate) fill: bool,
    /// Report (and bill) this many completion tokens more than were produced.
    pub(crate) overreport: Option<u64>,
}

pub fn router(cfg: FakeConfig) -> (Router, Arc<FakeStats>) {
    let stats = Arc::new(FakeStats::default());
    let fake = Fake {
        cfg,
        stats: stats.clone(),
    };
    let r = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1beta/models/{call}", post(gemini::generate))
        .route("/v1beta/models", get(gemini::models))
        .route("/bedrock/model/{model}/{call}", post(bedrock::converse))
        .route(
            "/bedrock/foundation-models",
            get(bedrock::foundation_models),
        )
        .route("/openai/models", get(azure_models))
        .route("/v1/models", get(models))
        .route("/_fake/stats", get(stats_json))
        .route("/_fake/arm", post(arm))
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
    if let Some(sent) = header(&headers, "x-api-key") {
        // Anthropic's list.
        if f.cfg.api_key.is_some() && !f.accepts(Some(sent)) {
            return (StatusCode::UNAUTHORIZED, Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}))).into_response();
        }
        return Json(json!({"data": [
            {"type": "model", "id": "claude-a", "display_name": "Claude A", "created_at": "2025-05-14T00:00:00Z"},
            {"type": "model", "id": "claude-b", "display_name": "Claude B", "created_at": "2025-05-14T00:00:00Z"},
        ], "has_more": false, "first_id": "claude-a", "last_id": "claude-b"}))
        .into_response();
    }
    if let Some(refused) = refuse_key(&f, &headers) {
        return refused;
    }
    Json(json!({"object": "list", "data": [
        {"id": "fast-1", "object": "model", "created": 1700000000, "owned_by": "switchyard-dev"},
        {"id": "smart-1", "object": "model", "created": 1700000000, "owned_by": "switchyard-dev"},
    ]}))
    .into_response()
}

async fn arm(State(f): State<Fake>, Json(a): Json<Value>) -> Response {
    match serde_json::from_value::<Armed>(a) {
        Ok(a) => {
            f.stats.armed.lock().push(a);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn stats_json(State(f): State<Fake>) -> Json<Value> {
    Json(json!({
        "requests": f.stats.requests.load(Ordering::Relaxed),
        "streams_abandoned": f.stats.streams_abandoned.load(Ordering::Relaxed),
        "streams_completed": f.stats.streams_completed.load(Ordering::Relaxed),
        "last_body": f.stats.last_body.lock().clone(),
        "by_key": *f.stats.by_key.lock(),
        "by_model": *f.stats.by_model.lock(),
        "bills": f.stats.bills(),
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

/// The answer's `i`th word (with its leading space): one word is one token.
pub(crate) fn word(i: u64) -> String {
    let w = WORDS[(i as usize) % WORDS.len()];
    if i == 0 {
        w.to_string()
    } else {
        format!(" {w}")
    }
}

/// Characters of text anywhere in a JSON value (strings under `text`, `content`, `thinking`).
pub(crate) fn text_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.iter().map(text_chars).sum(),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "text"
                        | "content"
                        | "parts"
                        | "contents"
                        | "messages"
                        | "system"
                        | "systemInstruction"
                )
            })
            .map(|(_, v)| text_chars(v))
            .sum(),
        _ => 0,
    }
}

/// Sleeps per the switches before answering; never returns for `hang`.
pub(crate) async fn delay(sw: &Switches) {
    if let Some(ms) = sw.first_byte_delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if sw.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// How many tokens to answer and whether that hit the limit, given the request's output limit: the
/// answer's natural length (24 words, or `tokens`), or with `fill` everything allowed.
pub(crate) fn length(sw: &Switches, max: Option<u64>) -> (u64, bool) {
    if sw.fill {
        return (max.unwrap_or(FAKE_MAX_OUTPUT), true);
    }
    let want = sw.tokens.unwrap_or(24);
    match max {
        Some(m) if m < want => (m, true),
        _ => (want, false),
    }
}

/// The decoded size of a base64 payload, in bytes.
fn decoded_len(b64: &str) -> u64 {
    (b64.len() as u64) * 3 / 4
}

/// How a provider counts media in a prompt.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaRule {
    /// gpt-4o-mini's tiles: 2,833 base, 5,667 a 512 px tile after fitting in 2048² and the short side
    /// in 768 (low detail: the base only).
    OpenAi,
    /// Claude: ⌈w/28⌉ × ⌈h/28⌉ patches, at most 4,784.
    Claude,
    /// Gemini 2.x: 258 an image up to 384 px, else 258 a tile.
    Gemini,
}

/// Tokens of one image, from its inline payload's header when there is one.
pub(crate) fn image_tokens(rule: MediaRule, data_url_or_b64: Option<&str>, low: bool) -> u64 {
    let size = data_url_or_b64.and_then(|d| {
        if d.starts_with("data:") {
            crate::providers::limits::image_size(d)
        } else {
            crate::providers::limits::image_size(&format!("data:image/png;base64,{d}"))
        }
    });
    match rule {
        MediaRule::OpenAi => {
            if low {
                return 2_833;
            }
            let tiles = size.map_or(8, |(w, h)| {
                let (mut w, mut h) = (w as f64, h as f64);
                let fit = (2048.0 / w.max(h)).min(1.0);
                w *= fit;
                h *= fit;
                let short = (768.0 / w.min(h)).min(1.0);
                w *= short;
                h *= short;
                ((w / 512.0).ceil() * (h / 512.0).ceil()) as u64
            });
            2_833 + 5_667 * tiles
        }
        MediaRule::Claude => size
            .map_or(1_568, |(w, h)| {
                (w as u64).div_ceil(28) * (h as u64).div_ceil(28)
            })
            .min(4_784),
        MediaRule::Gemini => {
            size.map_or(258, |(w, h)| crate::providers::limits::gemini_tiles(w, h))
        }
    }
}

/// Tokens of audio or a document from its payload: a token per KB (32 a second of 16 kHz audio).
pub(crate) fn payload_tokens(b64: &str) -> u64 {
    decoded_len(b64).div_ceil(1000).max(1)
}

/// Media tokens in OpenAI-format messages.
fn openai_media_tokens(body: &Value) -> u64 {
    let mut n = 0;
    for m in body["messages"].as_array().into_iter().flatten() {
        for p in m["content"].as_array().into_iter().flatten() {
            n += match p["type"].as_str() {
                Some("image_url") => image_tokens(
                    MediaRule::OpenAi,
                    p["image_url"]["url"].as_str(),
                    p["image_url"]["detail"] == "low",
                ),
                Some("input_audio") => {
                    payload_tokens(p["input_audio"]["data"].as_str().unwrap_or(""))
                }
                Some("file") => payload_tokens(p["file"]["file_data"].as_str().unwrap_or("")),
                _ => 0,
            };
        }
    }
    n
}

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

impl Fake {
    /// Whether `sent` is a key this fake accepts (any, when it has none); counts the request by key.
    fn accepts(&self, sent: Option<&str>) -> bool {
        let ok = match &self.cfg.api_key {
            None => true,
            Some(key) => {
                sent.is_some_and(|s| s == key || self.cfg.more_keys.iter().any(|k| k == s))
            }
        };
        if ok {
            if let Some(key) = sent {
                let tail: String = key
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                *self.stats.by_key.lock().entry(tail).or_default() += 1;
            }
        }
        ok
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// OpenAI's answer to a missing or wrong key, when the fake has one.
fn refuse_key(f: &Fake, headers: &HeaderMap) -> Option<Response> {
    f.cfg.api_key.as_ref()?;
    let sent = header(headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    let ok = f.accepts(sent);
    (!ok).then(|| {
        openai_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    })
}

/// OpenAI's embeddings: one vector per input (deterministic, from the text), `dimensions` long (8 by
/// default), and the input's token count.
async fn embeddings(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    f.stats.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = refuse_key(&f, &headers) {
        return refused;
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
    let model = body["model"].as_str().unwrap_or("unknown").to_string();
    let sw = f.stats.switches(&body["x_fake"], &model);
    delay(&sw).await;
    if let Some(s) = sw.status.filter(|s| *s >= 400) {
        return openai_error(
            StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "The server had an error while processing your request.",
            "server_error",
            None,
        );
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect(),
        _ => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                "'input' is a required property",
                "invalid_request_error",
                None,
            )
        }
    };
    let dims = body["dimensions"].as_u64().unwrap_or(8).clamp(1, 4096) as usize;
    let mut tokens = 0u64;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += (text.chars().count() as u64).div_ceil(4).max(1);
            let mut h: u64 = 1469598103934665603;
            let vector: Vec<f64> = (0..dims)
                .map(|d| {
                    for b in text.bytes().chain([d as u8]) {
                        h = (h ^ b as u64).wrapping_mul(1099511628211);
                    }
                    ((h % 2000) as f64 / 1000.0) - 1.0
                })
                .collect();
            json!({"object": "embedding", "index": i, "embedding": vector})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

/// Azure's model list (`api-version` required, the key in `api-key`).
async fn azure_models(
    State(f): State<Fake>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !q.contains_key("api-version") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "404", "message": "Resource not found"}})),
        )
            .into_response();
    }
    if f.cfg.api_key.is_some() && !f.accepts(header(&headers, "api-key")) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}))).into_response();
    }
    Json(json!({"data": [{"id": "dep-1", "object": "model", "created_at": 1700000000}], "object": "list"})).into_response()
}

/// Azure OpenAI: the deployment in the path, `api-version` required, the key in `api-key`.
async fn azure_chat(
    State(f): State<Fake>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    f.stats.requests.fetch_add(1, Ordering::Relaxed);
    if !q.contains_key("api-version") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "404", "message": "Resource not found"}})),
        )
            .into_response();
    }
    if f.cfg.api_key.is_some() && !f.accepts(header(&headers, "api-key")) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}))).into_response();
    }
    let mut v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid JSON: {e}"),
                "invalid_request_error",
                None,
            )
        }
    };
    // The deployment names the model.
    v["model"] = Value::String(deployment);
    answer_chat(&f, v).await
}

async fn chat(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    f.stats.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(refused) = refuse_key(&f, &headers) {
        return refused;
    }
    if f.cfg.api_key.is_none() {
        f.accepts(header(&headers, "authorization").and_then(|v| v.strip_prefix("Bearer ")));
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
    answer_chat(&f, body).await
}

async fn answer_chat(f: &Fake, body: Value) -> Response {
    *f.stats.last_body.lock() = Some(body.clone());
    let sw = f
        .stats
        .switches(&body["x_fake"], body["model"].as_str().unwrap_or(""));
    delay(&sw).await;
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
    let (n, hit) = length(&sw, max);
    let finish = if hit { "length" } else { "stop" };
    let choices = body["n"].as_u64().unwrap_or(1).clamp(1, 128);
    let prompt = prompt_tokens(&body) + openai_media_tokens(&body);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = crate::store::now_ms() / 1000;
    let completion = n * choices + sw.overreport.unwrap_or(0);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": sw.cached_tokens.unwrap_or(0).min(prompt)},
        "completion_tokens_details": {"reasoning_tokens": sw.reasoning_tokens.unwrap_or(0).min(n)}});
    let bill = Bill {
        id: id.clone(),
        model: model.clone(),
        prompt,
        completion,
        finished: true,
    };
    if body["stream"].as_bool() != Some(true) {
        let text: String = (0..n).map(word).collect();
        let all: Vec<Value> = (0..choices)
            .map(|c| json!({"index": c, "message": {"role": "assistant", "content": text, "refusal": null}, "logprobs": null, "finish_reason": finish}))
            .collect();
        let mut v = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": all, "system_fingerprint": "fp_switchyard_dev",
        });
        if !sw.omit_usage {
            v["usage"] = usage;
        }
        f.stats.bill(bill);
        return Json(v).into_response();
    }
    let include_usage =
        body["stream_options"]["include_usage"].as_bool() == Some(true) && !sw.omit_usage;
    let delay = Duration::from_millis(sw.chunk_delay_ms.unwrap_or(f.cfg.chunk_delay_ms));
    let stats = f.stats.clone();
    let stream = async_stream::stream! {
        // Counts the stream as abandoned unless it reaches its end, and bills what it sent.
        let mut guard = StreamGuard::new(stats.clone(), Some(bill));
        let chunk = |c: u64, delta: Value, finish: Value| {
            let v = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_switchyard_dev", "choices": [{"index": c, "delta": delta, "logprobs": null, "finish_reason": finish}]});
            Ok::<Bytes, std::io::Error>(Bytes::from(format!("data: {v}\n\n")))
        };
        for c in 0..choices {
            yield chunk(c, json!({"role": "assistant", "content": ""}), Value::Null);
        }
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
            for c in 0..choices {
                guard.sent += 1;
                yield chunk(c, json!({"content": word(i)}), Value::Null);
            }
        }
        for c in 0..choices {
            yield chunk(c, json!({}), Value::String(finish.to_string()));
        }
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

/// Counts a stream as completed or abandoned when it ends, and bills it: the whole answer when it
/// finished, else the tokens it had sent.
pub(crate) struct StreamGuard {
    pub stats: Arc<FakeStats>,
    pub finished: bool,
    pub bill: Option<Bill>,
    /// Output tokens sent so far.
    pub sent: u64,
}

impl StreamGuard {
    pub fn new(stats: Arc<FakeStats>, bill: Option<Bill>) -> StreamGuard {
        StreamGuard {
            stats,
            finished: false,
            bill,
            sent: 0,
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let c = if self.finished {
            &self.stats.streams_completed
        } else {
            &self.stats.streams_abandoned
        };
        c.fetch_add(1, Ordering::Relaxed);
        if let Some(mut b) = self.bill.take() {
            if !self.finished {
                b.completion = self.sent;
                b.finished = false;
            }
            self.stats.bill(b);
        }
    }
}
