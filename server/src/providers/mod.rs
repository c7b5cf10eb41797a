//! Provider adapters: one per wire protocol. The gateway speaks OpenAI's chat format; an adapter turns a
//! request into its provider's (`prepare`), sends it with the same timeouts and error handling for all
//! (`send`), and turns the answer (`answer`) or each streamed event (`Translator`) back into OpenAI's shape.
//! Failures come back in one shape, so the gateway can decide whether to try the next endpoint and what to
//! tell the client.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod limits;
pub mod openai;
#[cfg(test)]
mod snapshots;

use crate::catalog::{Credential, Endpoint, ProviderKind};
use crate::error::ApiError;
use axum::http::StatusCode;
use futures::StreamExt;
use serde_json::{Map, Value};
use std::time::Duration;

/// Upstream time limits. Both are idle limits: a generation that keeps producing is never cut.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Until the response headers, and again until the first event of the stream.
    pub first_byte: Duration,
    /// The longest silence between two chunks.
    pub idle: Duration,
}

impl Timeouts {
    pub fn from_config(cfg: &crate::config::Config) -> Timeouts {
        Timeouts {
            first_byte: Duration::from_millis(cfg.upstream_first_byte_timeout_ms),
            idle: Duration::from_millis(cfg.upstream_idle_timeout_ms),
        }
    }

    /// The server's limits, or the model's own where the catalog sets them.
    pub fn for_model(cfg: &crate::config::Config, model: &crate::catalog::Model) -> Timeouts {
        let d = Timeouts::from_config(cfg);
        Timeouts {
            first_byte: model
                .first_byte_timeout_ms
                .map_or(d.first_byte, Duration::from_millis),
            idle: model.idle_timeout_ms.map_or(d.idle, Duration::from_millis),
        }
    }
}

/// How many choices a provider answers (and bills) for a request asking `n`: OpenAI-compatible services
/// and Gemini (`candidateCount`) give `n`; Anthropic and Bedrock have no `n` and give one.
pub fn choices(wire: Wire, n: u64) -> u64 {
    match wire {
        Wire::OpenAi | Wire::Gemini => n.max(1),
        Wire::Anthropic | Wire::Bedrock => 1,
    }
}

/// What an adapter needs from the client's request (already stripped of the gateway's own fields).
pub struct ChatCall<'a> {
    pub body: &'a Map<String, Value>,
    pub stream: bool,
    /// The most output tokens this request may produce at this endpoint (`max_tokens`, else the limit).
    pub max_tokens: u64,
}

/// What the answer's translation must remember about the request.
#[derive(Clone, Debug, Default)]
pub struct Ctx {
    /// `response_format` was sent as this forced tool; its input is the answer's content.
    pub json_tool: Option<String>,
    /// `reasoning.exclude`: reasoning is used but not returned.
    pub hide_reasoning: bool,
}

/// A request ready to send.
pub struct Prepared {
    pub request: reqwest::RequestBuilder,
    pub ctx: Ctx,
}

/// The wire protocol of a kind of provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
    /// AWS Bedrock's Converse API (its streams are AWS's binary event stream).
    Bedrock,
}

pub fn wire(kind: ProviderKind) -> Wire {
    match kind {
        ProviderKind::Anthropic => Wire::Anthropic,
        ProviderKind::Gemini => Wire::Gemini,
        ProviderKind::Bedrock => Wire::Bedrock,
        _ => Wire::OpenAi,
    }
}

/// The request parameters an adapter can express (beyond `messages`, `model`, `stream`). A request with
/// `provider.require_parameters` only goes to endpoints that honour all of its parameters.
pub fn honours(kind: ProviderKind, param: &str) -> bool {
    const COMMON: &[&str] = &[
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "reasoning",
        "reasoning_effort",
        "user",
        "stream_options",
    ];
    let extra: &[&str] = match wire(kind) {
        Wire::Anthropic => &["top_k", "parallel_tool_calls", "metadata"],
        Wire::Gemini => &[
            "top_k",
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "n",
            "logprobs",
            "top_logprobs",
        ],
        Wire::Bedrock => &[],
        Wire::OpenAi => return true,
    };
    COMMON.contains(&param) || extra.contains(&param)
}

/// Builds the upstream request for a chat completion.
pub fn prepare(
    client: &reqwest::Client,
    ep: &Endpoint,
    credential: Option<&Credential>,
    call: &ChatCall<'_>,
) -> Result<Prepared, UpstreamFailure> {
    let built = match wire(ep.provider.kind) {
        Wire::OpenAi => openai::prepare(client, ep, credential, call),
        Wire::Anthropic => anthropic::prepare(client, ep, credential, call),
        Wire::Gemini => gemini::prepare(client, ep, credential, call),
        Wire::Bedrock => bedrock::prepare(client, ep, credential, call),
    };
    built.map_err(|message| {
        UpstreamFailure::new(FailureKind::Unsupported, &ep.provider.name, message)
    })
}

/// A complete (non-streamed) answer in OpenAI's `chat.completion` shape.
pub fn answer(kind: ProviderKind, ctx: &Ctx, v: Value) -> Result<Value, String> {
    match wire(kind) {
        Wire::OpenAi => {
            if v.get("choices").is_some_and(Value::is_array) {
                Ok(v)
            } else {
                Err("response has no `choices` array".into())
            }
        }
        Wire::Anthropic => anthropic::answer(ctx, v),
        Wire::Gemini => gemini::answer(ctx, v),
        Wire::Bedrock => bedrock::answer(ctx, v),
    }
}

/// A failure reported inside a stream (before or after its first event).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFailure {
    /// The HTTP status the provider's error stands for (502 when it names none; 0: the event itself was
    /// not valid).
    pub status: u16,
    pub message: String,
}

/// Turns a provider's stream events into OpenAI `chat.completion.chunk` values as they arrive.
pub enum Translator {
    OpenAi,
    Anthropic(Box<anthropic::StreamState>),
    Gemini(Box<gemini::StreamState>),
    Bedrock(Box<bedrock::StreamState>),
}

impl Translator {
    pub fn new(kind: ProviderKind, ctx: Ctx) -> Translator {
        match wire(kind) {
            Wire::OpenAi => Translator::OpenAi,
            Wire::Anthropic => Translator::Anthropic(Box::new(anthropic::StreamState::new(ctx))),
            Wire::Gemini => Translator::Gemini(Box::new(gemini::StreamState::new(ctx))),
            Wire::Bedrock => Translator::Bedrock(Box::new(bedrock::StreamState::new(ctx))),
        }
    }

    /// Feeds one event's data; pushes the chunks it makes. `Ok(true)` when the stream is complete.
    pub fn feed(&mut self, data: &str, out: &mut Vec<Value>) -> Result<bool, StreamFailure> {
        match self {
            Translator::OpenAi => {
                if data.trim() == "[DONE]" {
                    return Ok(true);
                }
                let v = parse_event(data)?;
                error_event(&v, data)?;
                out.push(v);
                Ok(false)
            }
            Translator::Anthropic(s) => s.feed(data, out),
            Translator::Gemini(s) => s.feed(data, out),
            Translator::Bedrock(s) => s.feed(data, out),
        }
    }

    /// The usage the provider has reported so far in OpenAI's shape, for a stream cut before its final
    /// usage (Anthropic counts the prompt when the message starts, Gemini with every chunk).
    pub fn partial_usage(&self) -> Option<Value> {
        match self {
            Translator::OpenAi | Translator::Bedrock(_) => None,
            Translator::Anthropic(s) => s.partial_usage(),
            Translator::Gemini(s) => s.partial_usage(),
        }
    }

    /// The stream's body ended: chunks still owed (a protocol without an end marker finishes here).
    pub fn finish(&mut self, out: &mut Vec<Value>) -> bool {
        match self {
            Translator::OpenAi | Translator::Anthropic(_) | Translator::Bedrock(_) => false,
            Translator::Gemini(s) => s.finish(out),
        }
    }
}

/// Sends a prepared request; the response once its headers say success.
pub async fn send(
    prepared: reqwest::RequestBuilder,
    provider: &str,
    t: Timeouts,
) -> Result<reqwest::Response, UpstreamFailure> {
    let fail = |kind, message: String| UpstreamFailure::new(kind, provider, message);
    let resp = match tokio::time::timeout(t.first_byte, prepared.send()).await {
        // The request went out: the provider may be generating (and billing) already.
        Err(_) => {
            return Err(fail(FailureKind::Timeout, "no response headers in time".into()).billable())
        }
        Ok(Err(e)) if e.is_connect() && e.is_timeout() => {
            return Err(fail(FailureKind::Timeout, "connect timeout".into()))
        }
        Ok(Err(e)) if e.is_connect() => return Err(fail(FailureKind::Connect, describe(&e))),
        Ok(Err(e)) if e.is_timeout() => {
            return Err(fail(FailureKind::Timeout, "no response headers in time".into()).billable())
        }
        Ok(Err(e)) => return Err(fail(FailureKind::Connect, describe(&e)).billable()),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    if status.is_redirection() {
        return Err(fail(
            FailureKind::Status(status.as_u16()),
            redirect_refused(provider, resp.headers()),
        ));
    }
    let mut retry_after = retry_after(resp.headers());
    let body = read_capped(resp, 64 * 1024, t.idle)
        .await
        .unwrap_or_default();
    if retry_after.is_none() {
        retry_after = retry_delay_in_body(&body);
    }
    let mut f = fail(
        FailureKind::Status(status.as_u16()),
        upstream_message(&body),
    );
    f.raw = Some(truncate(&String::from_utf8_lossy(&body), 2000));
    f.retry_after = retry_after;
    Err(f)
}

/// What a redirect is told as: where it pointed (its host only), and that it was not followed.
pub fn redirect_refused(provider: &str, headers: &reqwest::header::HeaderMap) -> String {
    let target = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| reqwest::Url::parse(l).ok())
        .and_then(|u| {
            u.host_str()
                .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
        })
        .unwrap_or_else(|| "another address".into());
    format!(
        "provider {provider} redirected to {target}; redirects are not followed (the key and the prompt go to the configured address only): fix the provider's base URL"
    )
}

/// Provider text with anything shaped like a credential blanked: API keys (`sk-…`, `AKIA…`, `AIza…`),
/// bearer tokens, `key=`/`api-key:` values and long opaque tokens. Error text shown to tenants goes
/// through this; a provider may echo what it was sent.
pub fn scrub(text: &str) -> String {
    use std::sync::OnceLock;
    static SHAPES: OnceLock<regex::Regex> = OnceLock::new();
    let re = SHAPES.get_or_init(|| {
        regex::Regex::new(concat!(
            r"(?i)(bearer\s+|(?:api[-_]?key|x-api-key|x-goog-api-key|key|token|secret|password|signature)[\x22']?\s*[:=]\s*[\x22']?)[^\s\x22',;&]+",
            r"|\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}",
            r"|\bAKIA[0-9A-Z]{12,}",
            r"|\bAIza[0-9A-Za-z_\-]{20,}",
            r"|\b[A-Za-z0-9+/_\-]{40,}={0,2}",
        ))
        .expect("a valid pattern")
    });
    re.replace_all(text, |c: &regex::Captures<'_>| match c.get(1) {
        Some(prefix) => format!("{}[redacted]", prefix.as_str()),
        None => "[redacted]".to_string(),
    })
    .into_owned()
}

/// Seconds to wait from `retry-after-ms`, `retry-after` (seconds or an HTTP date).
pub fn retry_after(h: &reqwest::header::HeaderMap) -> Option<u64> {
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some((ms / 1000.0).ceil().max(0.0) as u64);
    }
    let v = text("retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return Some(s.ceil().max(0.0) as u64);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .map_or(0, |d| d.as_secs() + 1),
    )
}

/// Google's `RetryInfo` in an error body: `{"error":{"details":[{"retryDelay":"30s"}]}}`.
fn retry_delay_in_body(body: &[u8]) -> Option<u64> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["error"]["details"].as_array()?.iter().find_map(|d| {
        let s = d["retryDelay"].as_str()?.strip_suffix('s')?;
        s.parse::<f64>().ok().map(|s| s.ceil().max(0.0) as u64)
    })
}

/// Reads a whole body, at most `cap` bytes, each chunk within `idle`.
pub async fn read_capped(
    resp: reqwest::Response,
    cap: usize,
    idle: Duration,
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

/// An assistant message's tool calls: (id, function name, parsed arguments).
pub fn tool_calls(m: &Value, i: usize) -> Result<Vec<(&str, &str, Value)>, String> {
    m["tool_calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(j, tc)| {
            let args = tc["function"]["arguments"].as_str().unwrap_or("{}");
            let parsed = if args.trim().is_empty() {
                serde_json::json!({})
            } else {
                serde_json::from_str(args).map_err(|e| {
                    format!("messages[{i}].tool_calls[{j}].function.arguments is not JSON ({e})")
                })?
            };
            Ok((
                tc["id"].as_str().unwrap_or_default(),
                tc["function"]["name"].as_str().unwrap_or_default(),
                parsed,
            ))
        })
        .collect()
}

/// A stream event's JSON; a failure with status 0 (an invalid response) when it is not JSON.
pub fn parse_event(data: &str) -> Result<Value, StreamFailure> {
    serde_json::from_str(data).map_err(|e| StreamFailure {
        status: 0,
        message: format!("invalid stream event ({e})"),
    })
}

/// An event that carries `{"error": {"code", "message"}}` (OpenAI's and Google's mid-stream errors).
pub fn error_event(v: &Value, data: &str) -> Result<(), StreamFailure> {
    if v.get("error").is_none_or(Value::is_null) {
        return Ok(());
    }
    let status = v["error"]["code"]
        .as_u64()
        .filter(|c| (400..600).contains(c))
        .unwrap_or(502) as u16;
    Err(StreamFailure {
        status,
        message: upstream_message(data.as_bytes()),
    })
}

/// Appends a turn's blocks, merging consecutive turns of one role (Anthropic and Gemini both want turns
/// to alternate); a turn with no blocks is dropped.
pub fn push_turn(turns: &mut Vec<(String, Vec<Value>)>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((r, b)) if r == role => b.extend(blocks),
        _ => turns.push((role.to_string(), blocks)),
    }
}

/// A message's content as a list of parts: a string is one text part, null or "" none.
pub fn content_parts(content: &Value, i: usize) -> Result<std::borrow::Cow<'_, [Value]>, String> {
    use std::borrow::Cow;
    match content {
        Value::Null => Ok(Cow::Borrowed(&[])),
        Value::String(s) if s.is_empty() => Ok(Cow::Borrowed(&[])),
        Value::String(s) => Ok(Cow::Owned(vec![
            serde_json::json!({"type": "text", "text": s}),
        ])),
        Value::Array(parts) => Ok(Cow::Borrowed(parts)),
        _ => Err(format!(
            "messages[{i}].content must be a string or an array of parts"
        )),
    }
}

/// A content part as every adapter first reads it.
pub enum Part<'a> {
    Text(&'a str),
    /// An image's URL (`image_url.url`, or `image_url` as a string).
    Image(&'a str),
    /// Any other type of part, for the adapter to take or refuse (`refused_part`).
    Other(&'a str),
}

/// Reads part `j` of message `i`: None for an empty text, which is left out.
pub fn part(p: &Value, i: usize, j: usize) -> Result<Option<Part<'_>>, String> {
    Ok(Some(match p["type"].as_str() {
        Some("text") => match p["text"].as_str() {
            Some("") => return Ok(None),
            Some(t) => Part::Text(t),
            None => return Err(format!("messages[{i}].content[{j}].text must be a string")),
        },
        Some("image_url") => Part::Image(
            p["image_url"]["url"]
                .as_str()
                .or_else(|| p["image_url"].as_str())
                .ok_or_else(|| format!("messages[{i}].content[{j}].image_url.url is required"))?,
        ),
        Some(other) => Part::Other(other),
        None => return Err(format!("messages[{i}].content[{j}].type is required")),
    }))
}

/// The refusal of a part a provider does not take.
pub fn refused_part(kind: &str, i: usize, j: usize, provider: &str) -> String {
    format!("messages[{i}].content[{j}] is a {kind:?} part, which {provider} does not take")
}

/// A `data:` URL's media type and base64 payload.
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

/// `stop` as a list (OpenAI takes a string or up to four strings).
pub fn stop_list(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(a)) => a.iter().filter(|s| s.is_string()).cloned().collect(),
        _ => Vec::new(),
    }
}

/// The thinking budget a request asks for: `reasoning.max_tokens`, else `reasoning.effort` (or
/// `reasoning_effort`) as a share of the output cap; `None` when reasoning is not asked for.
pub fn reasoning_budget(body: &Map<String, Value>, max_tokens: u64) -> Option<u64> {
    let r = body.get("reasoning");
    if r.and_then(|r| r.get("enabled")).and_then(Value::as_bool) == Some(false) {
        return None;
    }
    if let Some(n) = r.and_then(|r| r.get("max_tokens")).and_then(Value::as_u64) {
        return Some(n);
    }
    let effort = r
        .and_then(|r| r.get("effort"))
        .or_else(|| body.get("reasoning_effort"))
        .and_then(Value::as_str);
    let share = match effort {
        Some("minimal") => 10,
        Some("low") => 20,
        Some("medium") => 50,
        Some("high") => 80,
        Some(_) => 50,
        None if r.and_then(|r| r.get("enabled")).and_then(Value::as_bool) == Some(true) => 50,
        None => return None,
    };
    Some(max_tokens * share / 100)
}

/// OpenAI's usage object from the four counts every provider reports in some shape.
pub fn openai_usage(
    prompt: u64,
    completion: u64,
    cache_read: u64,
    cache_write: u64,
    reasoning: u64,
) -> Value {
    serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read, "cache_write_tokens": cache_write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    })
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
    /// The request cannot be expressed in this provider's protocol (another provider may take it).
    Unsupported,
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
    /// The failure came after the provider took the request and may have started generating (a
    /// timeout or broken connection after sending, an answer that could not be read): it may bill
    /// the platform for it.
    pub billable: bool,
}

/// Words providers use when a prompt does not fit the model's context window.
fn says_context_too_long(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "context length",
        "context_length",
        "context window",
        "maximum context",
        "prompt is too long",
        "too many tokens",
        "exceeds the maximum number of tokens",
        "input is too long",
    ]
    .iter()
    .any(|w| m.contains(w))
}

impl UpstreamFailure {
    pub fn new(kind: FailureKind, provider: &str, message: impl Into<String>) -> UpstreamFailure {
        UpstreamFailure {
            kind,
            provider: provider.to_string(),
            message: message.into(),
            raw: None,
            retry_after: None,
            billable: false,
        }
    }

    /// Marks the failure as one the provider may bill for.
    pub fn billable(mut self) -> UpstreamFailure {
        self.billable = true;
        self
    }

    /// Whether another endpoint (or key) may succeed where this one failed.
    pub fn retryable(&self) -> bool {
        match self.kind {
            FailureKind::Connect
            | FailureKind::Timeout
            | FailureKind::Malformed
            | FailureKind::Unsupported => true,
            FailureKind::Status(s) => s == 408 || s == 429 || s >= 500 || s == 401 || s == 403,
        }
    }

    /// Whether this says something about the endpoint's health (the circuit breaker counts these);
    /// refused keys, rate limits and the client's own mistakes do not.
    pub fn counts_against_health(&self) -> bool {
        match self.kind {
            FailureKind::Connect | FailureKind::Timeout | FailureKind::Malformed => true,
            FailureKind::Status(s) => s >= 500 || s == 408,
            FailureKind::Unsupported => false,
        }
    }

    /// A stable name for what went wrong (`metadata.error_type`).
    pub fn error_type(&self) -> &'static str {
        match self.kind {
            FailureKind::Connect => "upstream_unreachable",
            FailureKind::Timeout => "timeout",
            FailureKind::Malformed => "invalid_upstream_response",
            FailureKind::Unsupported => "unsupported_parameter",
            FailureKind::Status(429) => "rate_limited",
            FailureKind::Status(401 | 403) => "upstream_auth_failed",
            FailureKind::Status(400 | 413 | 422) if says_context_too_long(&self.message) => {
                "context_length_exceeded"
            }
            FailureKind::Status(400 | 404 | 413 | 422) => "upstream_bad_request",
            FailureKind::Status(408 | 504) => "timeout",
            FailureKind::Status(503 | 529) => "provider_overloaded",
            FailureKind::Status(_) => "upstream_error",
        }
    }

    /// The error the client sees.
    pub fn to_api_error(&self) -> ApiError {
        let (status, kind, message) = match self.kind {
            FailureKind::Timeout | FailureKind::Status(408 | 504) => (
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
            FailureKind::Unsupported => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("provider {} cannot take this request: {}", self.provider, self.message),
            ),
            FailureKind::Status(s @ (401 | 403)) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("provider {} refused the platform's credentials (HTTP {s}); the operator must fix this provider's api_key", self.provider),
            ),
            FailureKind::Status(s @ (503 | 529)) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("provider {} is overloaded (HTTP {s}): {}", self.provider, self.message),
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

/// Pulls the human message out of an upstream error body (OpenAI's and Anthropic's
/// `{"error":{"message"}}`, Google's `{"error":{"message","status"}}` and friends).
pub fn upstream_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        // Google sometimes answers with a one-element array.
        let v = match v {
            Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
            v => v,
        };
        for path in [
            &["error", "message"][..],
            &["message"][..],
            &["Message"][..],
            &["error"][..],
            &["detail"][..],
        ] {
            let mut cur = &v;
            for k in path {
                cur = &cur[*k];
            }
            if let Some(s) = cur.as_str() {
                return scrub(&truncate(s, 500));
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        "(empty response body)".into()
    } else {
        scrub(&truncate(text.trim(), 500))
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

#[cfg(test)]
mod scrub_tests {
    #[test]
    fn credentials_in_provider_text_are_blanked() {
        let said = "Incorrect API key provided: sk-proj-abcdefghijklmnop1234. Authorization: Bearer eyJhbGciOi.x.y; \
                    key=AIzaSyA-abcdefghijklmnopqrstuvwxyz1234 api-key: \"azure-secret-value\" AKIAIOSFODNN7EXAMPLE \
                    token 'aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgYmFzZTY0IHNlY3JldA=='";
        let out = super::scrub(said);
        for secret in [
            "sk-proj-abcdefghijklmnop1234",
            "eyJhbGciOi.x.y",
            "AIzaSyA-abcdefghijklmnopqrstuvwxyz1234",
            "azure-secret-value",
            "AKIAIOSFODNN7EXAMPLE",
            "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgYmFzZTY0IHNlY3JldA",
        ] {
            assert!(!out.contains(secret), "{secret} left in {out}");
        }
        assert!(
            out.starts_with("Incorrect API key provided: [redacted]"),
            "{out}"
        );
        // Ordinary error text is left as it is.
        let plain = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.";
        assert_eq!(super::scrub(plain), plain);
    }
}
