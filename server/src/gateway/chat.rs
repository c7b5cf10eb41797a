//! `POST /chat/completions`: bound, admit, dispatch (falling back to the next endpoint on retryable
//! failures before anything reached the client), answer, settle.
//!
//! What a request may cost is bounded before it runs: at each endpoint of the plan, the output cap the
//! provider is told (times the choices it bills), the prompt's text bytes and each media part at its
//! provider's documented maximum; the hold covers the dearest, and no settlement charges more than it.
//!
//! Upstreams are always asked to stream, so time limits are idle limits and an answer cut short is
//! counted. A streaming client gets the chunks as they come (`stream.rs`); for any other the whole answer
//! is read and merged (`collect.rs`) in a task of its own, so a client that goes away does not stop the
//! reading: the provider bills that answer, and so the tenant is charged for it.

use super::collect;
use super::governed;
use super::meter::{output_chars, Meter};
use super::request::{self, ChatRequest};
use super::route;
use super::sse::{Framing, SseError, SseReader};
use super::stream;
use super::{ApiKeyAuth, LimitedBody};
use crate::billing::{Generation, Hold, Loss, LossKind, Refusal};
use crate::catalog::{Credential, Endpoint, Model, NoCredential};
use crate::error::ApiError;
use crate::money::{Nanos, Pricing, Tokens};
use crate::providers::{
    self, limits, ChatCall, FailureKind, Timeouts, Translator, UpstreamFailure, Wire,
};
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
    /// A realistic prompt-token count, billed only when the upstream reports no usage (embeddings).
    pub prompt_estimate: u64,
    pub attempts: Vec<Value>,
    /// What providers may bill for this request that it is not charged for (abandoned attempts).
    pub losses: Vec<Loss>,
    /// The worst case of the attempt being made, recorded as a loss if the request is dropped (its
    /// client gone) while the provider may be generating.
    pub in_flight: Option<Loss>,
    /// Set once the settlement is queued; until then, dropping this settles it as cancelled.
    pub settled: bool,
    /// The request's messages when the organisation logs prompts, and the answer's text as it arrives.
    pub prompt_log: Option<String>,
    pub answer_log: String,
    /// The request's place in its key's concurrency limit, given back when this is dropped.
    pub _slot: Option<crate::keys::Slot>,
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

    /// Records an attempt given up after the provider may have started generating: its worst case at
    /// that endpoint is the operator's loss.
    pub fn abandoned(&mut self, ep: &Endpoint, pricing: &Pricing, bounds: (u64, u64), why: &str) {
        tracing::warn!(generation = %self.gen_id, provider = %ep.provider.slug, reason = why, "attempt abandoned after the provider may have started; its worst case is recorded as operator loss");
        self.losses.push(worst_case(ep, pricing, bounds, why));
    }
}

/// An attempt's worst case at its endpoint, as a loss.
pub(super) fn worst_case(
    ep: &Endpoint,
    pricing: &Pricing,
    (prompt, output): (u64, u64),
    why: &str,
) -> Loss {
    Loss {
        kind: LossKind::Abandoned,
        provider_slug: ep.provider.slug.clone(),
        endpoint_id: ep.id.clone(),
        cost: pricing.cost_bound(prompt, output),
        uncollected: pricing.charge_bound(prompt, output),
        note: Some(why.to_string()),
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

/// A request dropped before it settled (the client went away while it waited for the upstream of a
/// stream) releases its hold and is recorded as cancelled; nothing is charged, since no answer was
/// received, and attempts already abandoned stay recorded as losses.
impl Drop for Billed {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(l) = self.in_flight.take() {
            self.losses.push(l);
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
    /// (zero-completion insurance) or when nothing was served, and never more than the hold: usage
    /// reported above it is charged as the hold and the rest recorded as the operator's loss.
    pub fn generation(&self, o: Outcome<'_>) -> Generation {
        let errored =
            o.error.is_some() || o.finish_reason.as_deref().map(normalise_finish) == Some("error");
        let (cost, computed) = match o.pricing {
            Some(p) if !(o.usage.tokens.completion == 0 && errored) => {
                (p.cost(o.usage.tokens), p.charge(o.usage.tokens))
            }
            _ => (Nanos::ZERO, Nanos::ZERO),
        };
        let held = self.hold.amount;
        let mut losses = self.losses.clone();
        let charge = if computed > held {
            let over = Nanos(computed.0 - held.0);
            // The provider cost of what is not collected, in proportion (rounded up).
            let cost_over =
                (cost.0 as i128 * over.0 as i128 + computed.0 as i128 - 1) / computed.0 as i128;
            tracing::warn!(generation = %self.gen_id, provider = o.endpoint.map(|e| e.provider.slug.as_str()), charge = computed.0, held = held.0,
                "the provider reported usage above the hold; the tenant pays the hold, the rest is the operator's loss");
            losses.push(Loss {
                kind: LossKind::OverHold,
                provider_slug: o
                    .endpoint
                    .map(|e| e.provider.slug.clone())
                    .unwrap_or_default(),
                endpoint_id: o.endpoint.map(|e| e.id.clone()).unwrap_or_default(),
                cost: Nanos(cost_over as i64),
                uncollected: over,
                note: Some(format!(
                    "{} prompt and {} completion tokens reported; ${} held",
                    o.usage.tokens.prompt,
                    o.usage.tokens.completion,
                    held.to_usd_string()
                )),
            });
            held
        } else {
            computed
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
            held,
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
            losses,
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
    for (m, _) in &models {
        if req.n > m.max_choices() {
            return Err(ApiError::bad_field(
                "n",
                format!("may be at most {} for `{}`", m.max_choices(), m.slug),
            ));
        }
    }
    let prefs = req.prefs.clone().over(&key.provider_prefs);
    let extras = governed::read(
        &req.body,
        &req.shape.media,
        prefs.deny_data_collection == Some(true),
    )?;
    let plan = governed::apply(
        plan(&state, &key, &catalog, &models, &prefs, &req.body)?,
        &extras,
    )?;
    let plan = bounded(&req, plan);
    let worst = plan.iter().map(|p| p.hold).max().unwrap_or(Nanos::ZERO);
    let prompt_log = key.log_prompts.then(|| {
        req.body
            .get("messages")
            .map(Value::to_string)
            .unwrap_or_default()
    });
    let model = plan[0].cand.model.clone();
    let billed = admit(&state, &key, model, worst, req.prompt_estimate, prompt_log).await?;
    if req.stream {
        return dispatch(billed, req, plan).await;
    }
    // Read to the end even if the client goes away: the provider bills the answer all the same.
    tokio::spawn(dispatch(billed, req, plan))
        .await
        .map_err(ApiError::internal)?
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

/// One endpoint of the plan with what the request can cost there.
pub(super) struct Planned {
    pub cand: route::Candidate,
    /// The output cap the provider is told.
    pub cap: u64,
    /// The most prompt and output tokens the provider can bill (the cap times the choices it
    /// answers, and a prediction's rejected tokens).
    pub prompt_bound: u64,
    pub output_bound: u64,
    /// A realistic prompt count, billed only when the provider reports none (a stream cut short).
    pub prompt_estimate: u64,
    /// The most the request can be charged here.
    pub hold: Nanos,
}

/// Each endpoint's bounds, from what its provider is told and documents.
fn bounded(req: &ChatRequest, plan: Vec<route::Candidate>) -> Vec<Planned> {
    plan.into_iter()
        .map(|cand| {
            let wire = providers::wire(cand.endpoint.provider.kind);
            let model = &cand.endpoint.upstream_model;
            let cap = output_cap(req, &cand.model, &cand.endpoint);
            let extra = if wire == Wire::OpenAi {
                req.output_extra
            } else {
                0
            };
            let output_bound = cap
                .saturating_mul(providers::choices(wire, req.n))
                .saturating_add(extra);
            let prompt_bound =
                limits::prompt_bound(wire, model, &req.shape, cand.model.context_length);
            let media: u64 = req
                .shape
                .media
                .iter()
                .filter_map(|m| limits::allowance(wire, model, *m))
                .sum();
            let prompt_estimate = (req.prompt_estimate + media).min(prompt_bound);
            // A provider may serve the default tier instead of the one asked for.
            let held_at = Pricing {
                tier_ppm: cand.pricing.tier_ppm.max(crate::money::PPM as i64),
                ..cand.pricing
            };
            let hold = held_at.charge_bound(prompt_bound, output_bound);
            Planned {
                cand,
                cap,
                prompt_bound,
                output_bound,
                prompt_estimate,
                hold,
            }
        })
        .collect()
}

/// Reserves the request's worst case against the organisation's credit (and the key's limit).
pub(super) async fn admit(
    state: &AppState,
    key: &crate::keys::KeyInfo,
    model: Arc<Model>,
    worst: Nanos,
    prompt_estimate: u64,
    prompt_log: Option<String>,
) -> Result<Billed, ApiError> {
    // Before the credit is reserved: a request refused here holds nothing.
    let slot = match key.rules.max_concurrent {
        None => None,
        Some(limit) => Some(state.in_flight.acquire(&key.id, limit).map_err(|running| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "this API key allows {limit} requests at a time and {running} are running; retry when one finishes"
                ),
            )
            .with_meta("error_type", "key_concurrency_limited")
            .with_meta("max_concurrent_requests", limit)
            .retry_after(1)
        })?),
    };
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
        model,
        started: Instant::now(),
        created_at: crate::store::now_ms(),
        hold,
        prompt_estimate,
        attempts: Vec::new(),
        losses: Vec::new(),
        in_flight: None,
        settled: false,
        prompt_log,
        answer_log: String::new(),
        _slot: slot,
    })
}

/// The output cap a request gets at this endpoint (and its provider is told): its own `max_tokens`, never
/// above the endpoint's (or model's) limit, else that limit. Where the catalog names no limit, the
/// request's own within the context window, else `DEFAULT_OUTPUT_CAP` — not the whole window, which
/// providers that count the prompt and the cap together refuse, and which would hold a fortune.
fn output_cap(req: &ChatRequest, model: &Model, ep: &Endpoint) -> u64 {
    let cap = match (
        req.max_tokens,
        ep.max_output_tokens.or(model.max_output_tokens),
    ) {
        (Some(asked), Some(limit)) => asked.min(limit),
        (None, Some(limit)) => limit,
        (Some(asked), None) => asked.min(model.context_length),
        (None, None) => crate::catalog::DEFAULT_OUTPUT_CAP.min(model.context_length),
    };
    cap.max(1)
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
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("credits could not be checked: {why}; retry shortly"),
            )
            .with_meta("error_type", "billing_unavailable");
            e.retry_after = Some(2);
            e
        }
    }
}

/// What an endpoint started to answer.
pub(super) enum Start {
    /// A stream, with what it produced so far.
    Stream(StreamStart),
    /// One complete answer (an upstream that does not stream), in OpenAI's shape.
    Answer(Value),
}

/// Tries the plan's endpoints in order. Until something reaches the client, a retryable failure moves
/// on: to another key of the same endpoint when the key was the problem (refused, rate limited), else to
/// the next endpoint; an endpoint or key that failed is not tried again in this request. An attempt
/// given up after the provider may have started is recorded as the operator's loss.
async fn dispatch(
    mut billed: Billed,
    req: ChatRequest,
    plan: Vec<Planned>,
) -> Result<Response, ApiError> {
    let state = billed.state.clone();
    let mut last: Option<UpstreamFailure> = None;
    let mut failed_keys: Vec<String> = Vec::new();
    'endpoints: for p in &plan {
        let ep = &p.cand.endpoint;
        let t = Timeouts::for_model(&state.cfg, &p.cand.model);
        let mut tried_here = false;
        while let Some(cred) = pick_key(&mut billed, ep, &failed_keys, tried_here, &mut last) {
            tried_here = true;
            let attempt_started = Instant::now();
            let call = ChatCall {
                body: &req.body,
                stream: true,
                max_tokens: p.cap,
            };
            let bounds = (p.prompt_bound, p.output_bound);
            billed.in_flight = Some(worst_case(
                ep,
                &p.cand.pricing,
                bounds,
                "the client went away while the provider was answering",
            ));
            let started = async {
                let prepared = providers::prepare(&state.http, ep, cred, &call)?;
                let resp = providers::send(prepared.request, &ep.provider.name, t).await?;
                first_event(resp, ep, t, prepared.ctx).await
            }
            .await;
            let ttft = billed.started.elapsed().as_millis() as i64;
            billed.in_flight = None;
            let f = match started {
                Ok(start) if req.stream => {
                    state.health.record(&ep.id, true);
                    billed
                        .attempts
                        .push(attempt(ep, 200, None, attempt_started));
                    billed.model = p.cand.model.clone();
                    let start = match start {
                        Start::Stream(s) => s,
                        Start::Answer(v) => StreamStart {
                            reader: None,
                            translator: Translator::new(ep.provider.kind, Default::default()),
                            pending: collect::chunks_of(&v),
                            done: true,
                        },
                    };
                    return Ok(stream::respond(billed, p, start, ttft, t));
                }
                Ok(Start::Answer(v)) => Ok((v, None, None)),
                Ok(Start::Stream(s)) => collect::read_to_end(&state, ep, s, t, p.output_bound)
                    .await
                    .map(|c| (c.answer, Some(c.meter), c.cut)),
                Err(f) => Err(f),
            };
            let f = match f {
                Ok((answer, meter, cut)) => {
                    state.health.record(&ep.id, true);
                    billed
                        .attempts
                        .push(attempt(ep, 200, None, attempt_started));
                    billed.model = p.cand.model.clone();
                    return Ok(complete(billed, p, answer, meter, cut, ttft).await);
                }
                Err(f) => f,
            };
            if f.billable {
                billed.abandoned(ep, &p.cand.pricing, bounds, &f.message);
            }
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
                let mut f = UpstreamFailure::new(
                    FailureKind::Status(429),
                    &ep.provider.name,
                    format!("every key of this provider is resting after a rate limit; free again in {secs} s"),
                );
                f.retry_after = Some(secs);
                billed
                    .attempts
                    .push(attempt(ep, 429, Some(&f), Instant::now()));
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
    billed.attempts.push(attempt(ep, status, Some(&f), started));
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

/// An attempt as the generation records it (which key of the pool served stays out: tenants read this).
pub(super) fn attempt(
    ep: &Endpoint,
    status: u16,
    f: Option<&UpstreamFailure>,
    started: Instant,
) -> Value {
    json!({
        "provider": ep.provider.slug,
        "endpoint_id": ep.id,
        "status": status,
        "error_type": f.map(|f| f.error_type()),
        "message": f.map(|f| f.message.clone()),
        "latency_ms": started.elapsed().as_millis() as u64,
    })
}

/// Reads a complete answer and translates it to OpenAI's shape. Anything that goes wrong after the
/// provider answered 2xx may have been billed.
async fn read_answer(
    resp: reqwest::Response,
    ep: &Endpoint,
    t: Timeouts,
    ctx: &providers::Ctx,
) -> Result<Value, UpstreamFailure> {
    let fail =
        |kind, message: &str| UpstreamFailure::new(kind, &ep.provider.name, message).billable();
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
    /// The rest of the stream (none when it is all in `pending`).
    pub reader: Option<SseReader>,
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
            output_chars(d) > 0
                || d["tool_calls"].as_array().is_some_and(|a| !a.is_empty())
                || d.get("reasoning_details").is_some()
                || !c["finish_reason"].is_null()
        })
    })
}

/// A failure inside a stream, as an upstream failure (before anything reached the client). The
/// provider took the request: it may bill for it.
pub(super) fn stream_failure(ep: &Endpoint, f: providers::StreamFailure) -> UpstreamFailure {
    let kind = if f.status == 0 {
        FailureKind::Malformed
    } else {
        FailureKind::Status(f.status)
    };
    UpstreamFailure::new(kind, &ep.provider.name, f.message).billable()
}

/// Reads the upstream's answer until it says something (or fails), so that a failure before the
/// answer's first token can still fall back to another endpoint. An upstream that answers with one JSON
/// body (it does not stream) is read whole.
async fn first_event(
    resp: reqwest::Response,
    ep: &Endpoint,
    t: Timeouts,
    ctx: providers::Ctx,
) -> Result<Start, UpstreamFailure> {
    let fail =
        |kind, message: String| UpstreamFailure::new(kind, &ep.provider.name, message).billable();
    let json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if json {
        return read_answer(resp, ep, t, &ctx).await.map(Start::Answer);
    }
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
                    return Ok(Start::Stream(StreamStart {
                        reader: Some(reader),
                        translator,
                        pending,
                        done: true,
                    }));
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
                    return Ok(Start::Stream(StreamStart {
                        reader: Some(reader),
                        translator,
                        pending,
                        done,
                    }));
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
        audio: n(details.and_then(|d| d.get("audio_tokens"))),
    })
}

/// `usage.completion_tokens_details.reasoning_tokens` (0 when not reported).
pub(super) fn parse_reasoning(v: &Value) -> u64 {
    v.pointer("/usage/completion_tokens_details/reasoning_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// What to bill for an answer: the provider's usage when it reported its final one; else, for an
/// answer cut short, the prompt it counted so far (or the estimate) and at least the output that
/// arrived.
pub(super) fn billed_usage(
    reported: Option<&Value>,
    partial: Option<&Value>,
    prompt_estimate: u64,
    output_estimate: u64,
) -> Usage {
    let wrap = |u: &Value| json!({ "usage": u });
    if let Some(w) = reported.map(wrap) {
        if let Some(tokens) = parse_usage(&w) {
            return Usage {
                tokens,
                reasoning: parse_reasoning(&w),
                estimated: false,
            };
        }
    }
    match partial
        .map(wrap)
        .as_ref()
        .and_then(|w| parse_usage(w).map(|t| (t, parse_reasoning(w))))
    {
        Some((mut tokens, reasoning)) => {
            tokens.completion = tokens.completion.max(output_estimate);
            Usage {
                tokens,
                reasoning,
                estimated: true,
            }
        }
        None => Usage {
            tokens: Tokens::new(prompt_estimate, output_estimate),
            reasoning: 0,
            estimated: true,
        },
    }
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

/// A complete (non-streaming) answer: charge the upstream's usage (or, without one, what arrived),
/// settle, then answer.
async fn complete(
    mut billed: Billed,
    p: &Planned,
    mut v: Value,
    meter: Option<Meter>,
    cut: Option<String>,
    ttft: i64,
) -> Response {
    let ep = &p.cand.endpoint;
    let reported = match &meter {
        Some(m) => m.usage.clone(),
        None => v.get_mut("usage").map(Value::take).filter(|u| !u.is_null()),
    };
    let output = match &meter {
        Some(m) => m.output_estimate(),
        None => v["choices"].as_array().map_or(0, |cs| {
            cs.iter()
                .map(|c| output_chars(&c["message"]))
                .sum::<u64>()
                .div_ceil(4)
        }),
    };
    let usage = billed_usage(reported.as_ref(), None, p.prompt_estimate, output);
    if cut.is_some() {
        for c in v["choices"].as_array_mut().into_iter().flatten() {
            if c["finish_reason"].is_null() {
                c["finish_reason"] = json!("error");
            }
        }
    }
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
    let upstream_id = meter
        .as_ref()
        .and_then(|m| m.upstream_id.clone())
        .or_else(|| v["id"].as_str().map(str::to_string));
    let tier = meter
        .as_ref()
        .and_then(|m| m.service_tier.clone())
        .or_else(|| v["service_tier"].as_str().map(str::to_string));
    let generation = billed.generation(Outcome {
        endpoint: Some(ep),
        pricing: Some(governed::charged_pricing(
            ep,
            p.cand.pricing,
            tier.as_deref(),
        )),
        usage,
        upstream_id,
        finish_reason: finish,
        ttft_ms: Some(ttft),
        streamed: false,
        cancelled: false,
        status: 200,
        error: cut,
    });
    if usage.estimated {
        tracing::warn!(generation = %billed.gen_id, provider = %ep.provider.slug, "upstream reported no usage; billed an estimate");
    }
    let latency = billed.started.elapsed().as_millis() as u64;
    billed.state.health.record_speed(
        &ep.id,
        latency,
        Some(generation.completion_tokens as f64 * 1000.0 / latency.max(1) as f64),
    );
    let usage_v = usage_json(reported.as_ref(), &generation);
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
