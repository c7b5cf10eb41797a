//! `POST /chat/completions`: admit, dispatch (falling back to the next endpoint on retryable failures
//! before the first byte), answer, settle.

use super::request::{self, ChatRequest};
use super::route;
use super::sse::{Framing, SseError, SseReader};
use super::stream;
use super::{ApiKeyAuth, LimitedBody};
use crate::billing::{Generation, Hold, Refusal};
use crate::catalog::{Credential, Endpoint, Model, NoCredential};
use crate::error::ApiError;
use crate::money::{Nanos, Pricing, Tokens};
use crate::providers::{self, ChatCall, FailureKind, Timeouts, Translator, UpstreamFailure};
use crate::state::AppState;
use axum::{
    extract::State,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};
use std::{sync::Arc, time::Instant};

pub const GEN_HEADER: &str = "x-generation-id";

/// Everything settlement needs about one request, whichever way it ends.
pub(super) struct Billed {
    pub state: AppState,
    pub key_id: String,
    pub org_id: String,
    pub gen_id: String,
    pub model: Arc<Model>,
    pub started: Instant,
    pub created_at: i64,
    pub hold: Hold,
    pub prompt_estimate: u64,
    pub attempts: Vec<Value>,
    /// Set once the settlement is queued; until then, dropping this settles it as cancelled.
    pub settled: bool,
    /// The request's messages when the organisation logs prompts, and the answer's text as it arrives.
    pub prompt_log: Option<String>,
    pub answer_log: String,
}

/// The most of an answer kept in the prompt log.
const ANSWER_LOG_MAX: usize = 1 << 20;

impl Billed {
    /// Adds answer text to the prompt log (when the organisation keeps one).
    pub fn log_answer(&mut self, text: &str) {
        if self.prompt_log.is_some() && self.answer_log.len() < ANSWER_LOG_MAX {
            let room = ANSWER_LOG_MAX - self.answer_log.len();
            let mut end = text.len().min(room);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.answer_log.push_str(&text[..end]);
        }
    }
}

/// The usage of a finished (or cut) response.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Usage {
    pub tokens: Tokens,
    /// The part of the completion spent reasoning, as the provider reports it.
    pub reasoning: u64,
    pub estimated: bool,
}

pub(super) struct Outcome<'a> {
    pub endpoint: Option<&'a Endpoint>,
    pub pricing: Option<Pricing>,
    pub usage: Usage,
    pub upstream_id: Option<String>,
    pub finish_reason: Option<String>,
    pub ttft_ms: Option<i64>,
    pub streamed: bool,
    pub cancelled: bool,
    pub status: u16,
    pub error: Option<String>,
}

/// A request dropped before it settled (the client went away while it waited for the upstream) releases
/// its hold and is recorded as cancelled; nothing is charged, since no answer was received.
impl Drop for Billed {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let generation = self.generation(Outcome {
            endpoint: None,
            pricing: None,
            usage: Usage::default(),
            upstream_id: None,
            finish_reason: None,
            ttft_ms: None,
            streamed: false,
            cancelled: true,
            status: 499,
            error: Some("the client closed the connection before the answer arrived".into()),
        });
        tracing::info!(generation = %self.gen_id, "client went away before the answer; hold released");
        self.settle_detached(generation);
    }
}

impl Billed {
    /// Settles and waits for the commit (so what the client is told next is already in the books).
    pub async fn settle(&mut self, generation: Generation) {
        self.settled = true;
        if let Err(e) = self.state.gate.settle(self.hold.clone(), generation).await {
            tracing::error!(generation = %self.gen_id, error = %e, "settlement failed");
        }
    }

    /// Queues the settlement without waiting (from destructors).
    pub fn settle_detached(&mut self, generation: Generation) {
        self.settled = true;
        self.state
            .gate
            .settle_detached(self.hold.clone(), generation);
    }

    /// The generation row for an outcome; charges nothing when no output came with an error
    /// (zero-completion insurance) or when nothing was served.
    pub fn generation(&self, o: Outcome<'_>) -> Generation {
        let errored =
            o.error.is_some() || o.finish_reason.as_deref().map(normalise_finish) == Some("error");
        let (cost, charge) = match o.pricing {
            Some(p) if !(o.usage.tokens.completion == 0 && errored) => {
                (p.cost(o.usage.tokens), p.charge(o.usage.tokens))
            }
            _ => (Nanos::ZERO, Nanos::ZERO),
        };
        let native = o.finish_reason.clone();
        Generation {
            id: self.gen_id.clone(),
            org_id: self.org_id.clone(),
            key_id: self.key_id.clone(),
            model_slug: self.model.slug.clone(),
            provider_slug: o.endpoint.map(|e| e.provider.slug.clone()),
            endpoint_id: o.endpoint.map(|e| e.id.clone()),
            upstream_model: o.endpoint.map(|e| e.upstream_model.clone()),
            upstream_id: o.upstream_id,
            prompt_tokens: o.usage.tokens.prompt,
            completion_tokens: o.usage.tokens.completion,
            cache_read_tokens: o.usage.tokens.cache_read,
            cache_write_tokens: o.usage.tokens.cache_write,
            reasoning_tokens: o.usage.reasoning,
            usage_estimated: o.usage.estimated,
            cost,
            charge,
            latency_ms: self.started.elapsed().as_millis() as i64,
            ttft_ms: o.ttft_ms,
            finish_reason: native.as_deref().map(normalise_finish).map(str::to_string),
            native_finish_reason: native,
            streamed: o.streamed,
            cancelled: o.cancelled,
            status: o.status,
            error: o.error,
            attempts: Value::Array(self.attempts.clone()),
            created_at: self.created_at,
            content: self.prompt_log.as_ref().map(|p| {
                Box::new(crate::billing::Content {
                    request: p.clone(),
                    response: self.answer_log.clone(),
                })
            }),
        }
    }
}

/// OpenRouter's normalised finish reasons; the native one is kept beside it.
pub(super) fn normalise_finish(native: &str) -> &'static str {
    match native {
        "length" | "max_tokens" => "length",
        "tool_calls" | "function_call" | "tool_use" => "tool_calls",
        "content_filter" | "safety" | "refusal" | "guardrail_intervened" | "content_filtered" => {
            "content_filter"
        }
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        "MAX_TOKENS" => "length",
        "error" | "MALFORMED_FUNCTION_CALL" => "error",
        _ => "stop",
    }
}

pub async fn chat_completions(
    State(state): State<AppState>,
    ApiKeyAuth(key): ApiKeyAuth,
    LimitedBody(bytes): LimitedBody,
) -> Result<Response, ApiError> {
    let req = request::parse(&bytes)?;
    run(state, key, req).await
}

/// Routes, admits, dispatches and settles a chat request (from `/chat/completions`, or translated from
/// `/completions` and `/messages`); answers in OpenAI's chat format.
pub(super) async fn run(
    state: AppState,
    key: Arc<crate::keys::KeyInfo>,
    req: ChatRequest,
) -> Result<Response, ApiError> {
    let catalog = state.catalog.get();
    let models = resolve_models(&state, &key, &catalog, &req.models)?;
    let prefs = req.prefs.clone().over(&key.provider_prefs);
    let plan = plan(&state, &key, &catalog, &models, &prefs, &req.body)?;
    let worst = plan
        .iter()
        .map(|c| {
            let prompt = req.prompt_upper_bound.min(c.model.context_length);
            c.pricing
                .charge_bound(prompt, output_cap(&req, &c.model, &c.endpoint))
        })
        .max()
        .unwrap_or(Nanos::ZERO);
    let prompt_log = key.log_prompts.then(|| {
        req.body
            .get("messages")
            .map(Value::to_string)
            .unwrap_or_default()
    });
    let billed = admit(&state, &key, &plan, worst, req.prompt_estimate, prompt_log).await?;
    dispatch(billed, req, plan).await
}

/// The models a request names, checked against the key's allow-list, then its per-minute limit.
pub(super) fn resolve_models(
    state: &AppState,
    key: &crate::keys::KeyInfo,
    catalog: &crate::catalog::Catalog,
    names: &[String],
) -> Result<Vec<route::Named>, ApiError> {
    let mut models = Vec::with_capacity(names.len());
    for name in names {
        let (model, variant) = route::resolve_model(catalog, name)?;
        if let Some(allowed) = &key.rules.allowed_models {
            if !allowed.iter().any(|m| *m == model.slug) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    format!(
                        "this API key may not call `{}`; it may call: {}",
                        model.slug,
                        allowed.join(", ")
                    ),
                )
                .with_meta("model", model.slug.clone()));
            }
        }
        models.push((model, variant));
    }
    if let Some(rpm) = key.rules.requests_per_minute {
        if let Err(wait) = state.rpm.check(&key.id, rpm) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!("this API key is limited to {rpm} requests per minute; retry in {wait} s"),
            )
            .with_meta("error_type", "key_rate_limited")
            .with_meta("requests_per_minute", rpm);
            e.retry_after = Some(wait);
            return Err(e);
        }
    }
    Ok(models)
}

/// The endpoints to try, with prices captured now: a catalog change never alters a request already
/// admitted.
pub(super) fn plan(
    state: &AppState,
    key: &crate::keys::KeyInfo,
    catalog: &crate::catalog::Catalog,
    models: &[route::Named],
    prefs: &route::Prefs,
    body: &serde_json::Map<String, Value>,
) -> Result<Vec<route::Candidate>, ApiError> {
    let probe_timeout = crate::config::Config::ms(state.cfg.upstream_first_byte_timeout_ms * 2);
    route::plan(
        catalog,
        &key.org_id,
        models,
        prefs,
        body,
        &state.health,
        probe_timeout,
    )
}

/// Reserves the request's worst case against the organisation's credit (and the key's limit).
pub(super) async fn admit(
    state: &AppState,
    key: &crate::keys::KeyInfo,
    plan: &[route::Candidate],
    worst: Nanos,
    prompt_estimate: u64,
    prompt_log: Option<String>,
) -> Result<Billed, ApiError> {
    let hold = state
        .gate
        .admit(
            &key.org_id,
            &key.id,
            worst,
            key.rules
                .limit_reset
                .map(|r| r.period_start(crate::store::now_ms())),
        )
        .await
        .map_err(|r| refusal_error(r, worst))?;
    Ok(Billed {
        state: state.clone(),
        key_id: key.id.clone(),
        org_id: key.org_id.clone(),
        gen_id: format!("gen-{}", crate::store::new_id()),
        model: plan[0].model.clone(),
        started: Instant::now(),
        created_at: crate::store::now_ms(),
        hold,
        prompt_estimate,
        attempts: Vec::new(),
        settled: false,
        prompt_log,
        answer_log: String::new(),
    })
}

/// The most output tokens this request can produce at this endpoint.
fn output_cap(req: &ChatRequest, model: &Model, ep: &Endpoint) -> u64 {
    let limit = ep
        .max_output_tokens
        .or(model.max_output_tokens)
        .unwrap_or(model.context_length);
    req.max_tokens.map_or(limit, |m| m.min(limit))
}

fn refusal_error(r: Refusal, needed: Nanos) -> ApiError {
    match r {
        Refusal::Balance { available } => ApiError::payment_required(format!(
            "insufficient credits: this request can cost up to ${} and the organisation has ${} available; add credits, or lower max_tokens",
            needed.to_usd_string(),
            available.to_usd_string()
        ))
        .with_meta("required_usd", needed.usd_json())
        .with_meta("available_usd", available.usd_json()),
        Refusal::KeyLimit { remaining } => ApiError::payment_required(format!(
            "this API key's credit limit is reached: the request can cost up to ${} and ${} of the limit remains; raise the key's limit",
            needed.to_usd_string(),
            remaining.to_usd_string()
        ))
        .with_meta("limit_remaining_usd", remaining.usd_json()),
        Refusal::Unavailable(why) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("credits could not be checked: {why}; try again"))
        }
    }
}

/// What an endpoint served.
enum Served {
    Json(Value),
    Stream(StreamStart),
}

/// Tries the plan's endpoints in order. Before the first byte reaches the client, a retryable failure
/// moves on: to another key of the same endpoint when the key was the problem (refused, rate limited),
/// else to the next endpoint; an endpoint or key that failed is not tried again in this request.
async fn dispatch(
    mut billed: Billed,
    req: ChatRequest,
    plan: Vec<route::Candidate>,
) -> Result<Response, ApiError> {
    let state = billed.state.clone();
    let t = Timeouts::from_config(&state.cfg);
    let mut last: Option<UpstreamFailure> = None;
    let mut failed_keys: Vec<String> = Vec::new();
    'endpoints: for cand in &plan {
        let ep = &cand.endpoint;
        let mut tried_here = false;
        while let Some(cred) = pick_key(&mut billed, ep, &failed_keys, tried_here, &mut last) {
            tried_here = true;
            let attempt_started = Instant::now();
            let call = ChatCall {
                body: &req.body,
                stream: req.stream,
                max_tokens: output_cap(&req, &cand.model, ep),
            };
            let served = async {
                let prepared = providers::prepare(&state.http, ep, cred, &call)?;
                let resp = providers::send(prepared.request, &ep.provider.name, t).await?;
                if req.stream {
                    first_event(resp, ep, t, prepared.ctx)
                        .await
                        .map(Served::Stream)
                } else {
                    read_answer(resp, ep, t, &prepared.ctx)
                        .await
                        .map(Served::Json)
                }
            }
            .await;
            let f = match served {
                Ok(served) => {
                    state.health.record(&ep.id, true);
                    billed
                        .attempts
                        .push(attempt(ep, cred, 200, None, attempt_started));
                    billed.model = cand.model.clone();
                    return Ok(match served {
                        Served::Stream(start) => {
                            let ttft = billed.started.elapsed().as_millis() as i64;
                            stream::respond(billed, ep.clone(), cand.pricing, start, ttft)
                        }
                        Served::Json(v) => complete(billed, ep, cand.pricing, v).await,
                    });
                }
                Err(f) => f,
            };
            match failed(
                &mut billed,
                ep,
                cred,
                f,
                attempt_started,
                &mut failed_keys,
                &mut last,
            ) {
                Next::OtherKey => {}
                Next::OtherEndpoint => break,
                Next::Answer => break 'endpoints,
            }
        }
    }
    Ok(unanswered(billed, last, req.stream).await)
}

/// A key of the endpoint's provider for the next attempt: `Some(None)` for a keyless server; `None`
/// when every key failed in this request or is resting (then, if no key was tried here, a resting
/// key's 429 is recorded as the attempt, without asking the upstream).
pub(super) fn pick_key<'a>(
    billed: &mut Billed,
    ep: &'a Endpoint,
    failed_keys: &[String],
    tried_here: bool,
    last: &mut Option<UpstreamFailure>,
) -> Option<Option<&'a Credential>> {
    let health = &billed.state.health;
    match ep
        .provider
        .pick_credential(|c| !failed_keys.contains(&c.id) && health.resting(&c.id).is_none())
    {
        Ok(c) => Some(c),
        Err(NoCredential) => {
            let rest = ep
                .provider
                .credentials
                .iter()
                .filter_map(|c| health.resting(&c.id))
                .min();
            if let (false, Some(secs)) = (tried_here, rest) {
                let f = UpstreamFailure {
                    kind: FailureKind::Status(429),
                    provider: ep.provider.name.clone(),
                    message: format!("every key of this provider is resting after a rate limit; free again in {secs} s"),
                    raw: None,
                    retry_after: Some(secs),
                };
                billed
                    .attempts
                    .push(attempt(ep, None, 429, Some(&f), Instant::now()));
                *last = Some(f);
            }
            None
        }
    }
}

/// Where a request goes after a failed attempt.
pub(super) enum Next {
    /// Another key of the same endpoint (the key was refused or rate limited).
    OtherKey,
    OtherEndpoint,
    /// The failure is the client's: answer it.
    Answer,
}

/// Records a failed attempt (the generation's attempts, the endpoint's health, a rate-limited key's
/// rest) and says where to go next.
pub(super) fn failed(
    billed: &mut Billed,
    ep: &Endpoint,
    cred: Option<&Credential>,
    f: UpstreamFailure,
    started: Instant,
    failed_keys: &mut Vec<String>,
    last: &mut Option<UpstreamFailure>,
) -> Next {
    let status = match f.kind {
        FailureKind::Status(s) => s,
        _ => 0,
    };
    billed
        .attempts
        .push(attempt(ep, cred, status, Some(&f), started));
    let health = &billed.state.health;
    if f.counts_against_health() {
        health.record(&ep.id, false);
    }
    let key_problem = matches!(f.kind, FailureKind::Status(401 | 403 | 429));
    if let Some(c) = cred.filter(|_| key_problem) {
        failed_keys.push(c.id.clone());
        if f.kind == FailureKind::Status(429) {
            health.rest(&c.id, f.retry_after);
        }
    }
    tracing::warn!(generation = %billed.gen_id, provider = %ep.provider.slug, credential = cred.map(|c| c.label.as_str()), error_type = f.error_type(), message = %f.message, "upstream attempt failed");
    let next = if !f.retryable() {
        Next::Answer
    } else if key_problem {
        Next::OtherKey
    } else {
        Next::OtherEndpoint
    };
    *last = Some(f);
    next
}

/// No endpoint answered: the last failure (or why none could be tried) goes to the client, recorded
/// and charged nothing.
pub(super) async fn unanswered(
    mut billed: Billed,
    last: Option<UpstreamFailure>,
    streamed: bool,
) -> Response {
    let err = match last {
        Some(f) => f.to_api_error(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_endpoint",
            format!("no provider of `{}` can be reached right now (every key is disabled or failed); try again shortly", billed.model.slug),
        )
        .with_meta("error_type", "no_available_provider"),
    };
    let outcome = Outcome {
        endpoint: None,
        pricing: None,
        usage: Usage::default(),
        upstream_id: None,
        finish_reason: None,
        ttft_ms: None,
        streamed,
        cancelled: false,
        status: err.status.as_u16(),
        error: Some(err.message.clone()),
    };
    let generation = billed.generation(outcome);
    billed.settle(generation).await;
    let mut res = err.into_response();
    if let Ok(v) = HeaderValue::from_str(&billed.gen_id) {
        res.headers_mut().insert(GEN_HEADER, v);
    }
    res
}

pub(super) fn attempt(
    ep: &Endpoint,
    cred: Option<&Credential>,
    status: u16,
    f: Option<&UpstreamFailure>,
    started: Instant,
) -> Value {
    json!({
        "provider": ep.provider.slug,
        "credential": cred.map(|c| c.label.clone()),
        "endpoint_id": ep.id,
        "status": status,
        "error_type": f.map(|f| f.error_type()),
        "message": f.map(|f| f.message.clone()),
        "latency_ms": started.elapsed().as_millis() as u64,
    })
}

/// Reads a complete answer and translates it to OpenAI's shape.
async fn read_answer(
    resp: reqwest::Response,
    ep: &Endpoint,
    t: Timeouts,
    ctx: &providers::Ctx,
) -> Result<Value, UpstreamFailure> {
    let fail = |kind, message: &str| UpstreamFailure {
        kind,
        provider: ep.provider.name.clone(),
        message: message.to_string(),
        raw: None,
        retry_after: None,
    };
    let body = providers::read_capped(resp, 64 * 1024 * 1024, t.idle)
        .await
        .map_err(|k| match k {
            FailureKind::Timeout => fail(FailureKind::Timeout, "the response body stalled"),
            FailureKind::Connect => fail(
                FailureKind::Connect,
                "the connection broke while reading the response",
            ),
            _ => fail(FailureKind::Malformed, "the response is too large"),
        })?;
    let raw = || Some(providers::truncate(&String::from_utf8_lossy(&body), 500));
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        let mut f = fail(
            FailureKind::Malformed,
            &format!("response is not JSON ({e})"),
        );
        f.raw = raw();
        f
    })?;
    providers::answer(ep.provider.kind, ctx, v).map_err(|m| {
        let mut f = fail(FailureKind::Malformed, &m);
        f.raw = raw();
        f
    })
}

/// An upstream stream that has produced something worth sending (or finished), translated.
pub(super) struct StreamStart {
    pub reader: SseReader,
    pub translator: Translator,
    /// Chunks produced so far, not yet sent.
    pub pending: Vec<Value>,
    /// The upstream already finished.
    pub done: bool,
}

/// Whether a chunk carries part of the answer (not just the role, or nothing).
fn substantive(v: &Value) -> bool {
    v["choices"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| {
            let d = &c["delta"];
            d["content"].as_str().is_some_and(|s| !s.is_empty())
                || d["reasoning"].as_str().is_some_and(|s| !s.is_empty())
                || d["tool_calls"].as_array().is_some_and(|a| !a.is_empty())
                || d.get("reasoning_details").is_some()
                || !c["finish_reason"].is_null()
        })
    })
}

/// A failure inside a stream, as an upstream failure (before anything reached the client).
fn stream_failure(ep: &Endpoint, f: providers::StreamFailure) -> UpstreamFailure {
    UpstreamFailure {
        kind: if f.status == 0 {
            FailureKind::Malformed
        } else {
            FailureKind::Status(f.status)
        },
        provider: ep.provider.name.clone(),
        message: f.message,
        raw: None,
        retry_after: None,
    }
}

/// Reads the upstream stream until it says something (or fails), so that a failure before the answer's
/// first token can still fall back to another endpoint.
async fn first_event(
    resp: reqwest::Response,
    ep: &Endpoint,
    t: Timeouts,
    ctx: providers::Ctx,
) -> Result<StreamStart, UpstreamFailure> {
    let fail = |kind, message: String| UpstreamFailure {
        kind,
        provider: ep.provider.name.clone(),
        message,
        raw: None,
        retry_after: None,
    };
    let framing = if providers::wire(ep.provider.kind) == providers::Wire::Bedrock {
        Framing::AwsEventStream
    } else {
        Framing::Sse
    };
    let mut reader = SseReader::new(resp, framing);
    let mut translator = Translator::new(ep.provider.kind, ctx);
    let mut pending = Vec::new();
    let deadline = tokio::time::Instant::now() + t.first_byte;
    loop {
        match tokio::time::timeout_at(deadline, reader.next_data()).await {
            Err(_) => return Err(fail(FailureKind::Timeout, "no stream event in time".into())),
            Ok(Err(e @ SseError::Broken(_))) => {
                return Err(fail(
                    FailureKind::Connect,
                    format!("the stream broke before its first event: {e}"),
                ))
            }
            Ok(Err(e)) => return Err(fail(FailureKind::Malformed, e.to_string())),
            Ok(Ok(None)) => {
                let done = translator.finish(&mut pending);
                if done && pending.iter().any(substantive) {
                    return Ok(StreamStart {
                        reader,
                        translator,
                        pending,
                        done: true,
                    });
                }
                return Err(fail(
                    FailureKind::Malformed,
                    "the stream ended before its first event".into(),
                ));
            }
            Ok(Ok(Some(data))) => {
                let done = translator
                    .feed(&data, &mut pending)
                    .map_err(|f| stream_failure(ep, f))?;
                if pending.iter().any(substantive) {
                    return Ok(StreamStart {
                        reader,
                        translator,
                        pending,
                        done,
                    });
                }
                if done {
                    return Err(fail(
                        FailureKind::Malformed,
                        "the stream ended before its first event".into(),
                    ));
                }
            }
        }
    }
}

/// The upstream's usage: prompt and completion tokens, and the cached part of the prompt
/// (`prompt_tokens_details.cached_tokens`; `cache_write_tokens` where a provider reports writes).
pub(super) fn parse_usage(v: &Value) -> Option<Tokens> {
    let u = v.get("usage")?;
    let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let details = u.get("prompt_tokens_details");
    Some(Tokens {
        prompt: u.get("prompt_tokens")?.as_u64()?,
        completion: n(u.get("completion_tokens")),
        cache_read: n(details.and_then(|d| d.get("cached_tokens"))),
        cache_write: n(details.and_then(|d| d.get("cache_write_tokens"))),
    })
}

/// `usage.completion_tokens_details.reasoning_tokens` (0 when not reported).
pub(super) fn parse_reasoning(v: &Value) -> u64 {
    v.pointer("/usage/completion_tokens_details/reasoning_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Usage as the client sees it: the upstream's numbers plus what the org was charged.
pub(super) fn usage_json(upstream: Option<&Value>, g: &Generation) -> Value {
    let mut u = match upstream {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        _ => json!({}),
    };
    u["prompt_tokens"] = json!(g.prompt_tokens);
    u["completion_tokens"] = json!(g.completion_tokens);
    u["total_tokens"] = json!(g.prompt_tokens + g.completion_tokens);
    u["cost"] = g.charge.usd_json();
    u["is_byok"] = json!(false);
    u
}

/// A complete (non-streaming) answer: charge the upstream's usage, settle, then answer.
async fn complete(mut billed: Billed, ep: &Endpoint, pricing: Pricing, mut v: Value) -> Response {
    let (usage, estimated) = match parse_usage(&v) {
        Some(tokens) => (
            Usage {
                tokens,
                reasoning: parse_reasoning(&v),
                estimated: false,
            },
            false,
        ),
        None => {
            let text_chars: usize = v["choices"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            c["message"]["content"]
                                .as_str()
                                .map_or(0, |s| s.chars().count())
                        })
                        .sum()
                })
                .unwrap_or(0);
            (
                Usage {
                    tokens: Tokens::new(billed.prompt_estimate, (text_chars as u64).div_ceil(4)),
                    reasoning: 0,
                    estimated: true,
                },
                true,
            )
        }
    };
    let finish = v["choices"][0]["native_finish_reason"]
        .as_str()
        .or(v["choices"][0]["finish_reason"].as_str())
        .map(str::to_string);
    if billed.prompt_log.is_some() {
        let message = &v["choices"][0]["message"];
        match message["content"].as_str() {
            Some(text) => billed.log_answer(text),
            None => billed.log_answer(&message.to_string()),
        }
    }
    let generation = billed.generation(Outcome {
        endpoint: Some(ep),
        pricing: Some(pricing),
        usage,
        upstream_id: v["id"].as_str().map(str::to_string),
        finish_reason: finish,
        ttft_ms: None,
        streamed: false,
        cancelled: false,
        status: 200,
        error: None,
    });
    if estimated {
        tracing::warn!(generation = %billed.gen_id, provider = %ep.provider.slug, "upstream reported no usage; billed an estimate");
    }
    let latency = billed.started.elapsed().as_millis() as u64;
    billed.state.health.record_speed(
        &ep.id,
        latency,
        Some(generation.completion_tokens as f64 * 1000.0 / latency.max(1) as f64),
    );
    let usage_v = usage_json(v.get("usage"), &generation);
    billed.settle(generation).await;
    v["id"] = Value::String(billed.gen_id.clone());
    v["model"] = Value::String(billed.model.slug.clone());
    v["provider"] = Value::String(ep.provider.name.clone());
    v["usage"] = usage_v;
    if let Some(choices) = v["choices"].as_array_mut() {
        for c in choices {
            // An adapter that already split the two (Gemini: tool calls finish with STOP) is kept.
            if c["native_finish_reason"].is_string() {
                continue;
            }
            if let Some(native) = c["finish_reason"].as_str().map(str::to_string) {
                c["native_finish_reason"] = Value::String(native.clone());
                c["finish_reason"] = Value::String(normalise_finish(&native).to_string());
            }
        }
    }
    let mut res = axum::Json(v).into_response();
    if let Ok(h) = HeaderValue::from_str(&billed.gen_id) {
        res.headers_mut().insert(GEN_HEADER, h);
    }
    res
}
