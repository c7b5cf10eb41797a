//! Streaming answers: upstream events are rewritten and forwarded as they arrive (no buffering), with
//! keep-alive comments while the upstream is silent, a final usage chunk carrying `cost`, then `[DONE]`.
//! If the client goes away, the upstream is dropped (closing its connection) and what it produced so far
//! is billed, once: every kind of output that arrived, whether or not it was sent on yet.

use super::chat::{
    billed_usage, normalise_finish, stream_failure, usage_json, Billed, Outcome, Planned,
    StreamStart, Usage, GEN_HEADER,
};
use super::meter::Meter;
use super::sse::SseReader;
use crate::catalog::Endpoint;
use crate::money::Pricing;
use crate::providers::{Timeouts, Translator};
use axum::{
    body::Body,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::{json, Value};
use std::{convert::Infallible, time::Instant};

/// How long the upstream is still read after the client went away: what the provider already sent (in
/// buffers, on the wire) it bills, so it is counted; then the connection is closed, which stops it.
pub const DRAIN: std::time::Duration = std::time::Duration::from_millis(250);
/// Reading after the client left stops at the first silence this long.
const DRAIN_QUIET: std::time::Duration = std::time::Duration::from_millis(50);

/// What has streamed so far; settles on drop if the stream did not finish.
struct Progress {
    billed: Option<Billed>,
    /// The rest of the upstream stream, and its translation.
    reader: Option<SseReader>,
    translator: Translator,
    prompt_estimate: u64,
    endpoint: Endpoint,
    pricing: Pricing,
    ttft_ms: i64,
    meter: Meter,
    /// The usage the provider reported before the stream was cut (Anthropic's prompt count at the
    /// start, Gemini's running count).
    partial_usage: Option<Value>,
    finish: Option<String>,
}

impl Progress {
    fn usage(&self) -> Usage {
        billed_usage(
            self.meter.usage.as_ref(),
            self.partial_usage.as_ref(),
            self.prompt_estimate,
            self.meter.output_estimate(),
        )
    }

    fn outcome(&self, cancelled: bool, error: Option<String>) -> Outcome<'_> {
        Outcome {
            endpoint: Some(&self.endpoint),
            pricing: Some(super::governed::charged_pricing(
                &self.endpoint,
                self.pricing,
                self.meter.service_tier.as_deref(),
            )),
            usage: self.usage(),
            upstream_id: self.meter.upstream_id.clone(),
            finish_reason: if error.is_some() {
                Some("error".into())
            } else {
                self.finish.clone()
            },
            ttft_ms: Some(self.ttft_ms),
            streamed: true,
            cancelled,
            status: 200,
            error,
        }
    }
}

impl Progress {
    /// Reads what the upstream already sent (until it is silent for `DRAIN_QUIET`, at most `DRAIN`),
    /// counting it, then closes the connection.
    async fn drain(&mut self) {
        let Some(mut reader) = self.reader.take() else {
            return;
        };
        let until = tokio::time::Instant::now() + DRAIN;
        let mut chunks = Vec::new();
        loop {
            let wait =
                DRAIN_QUIET.min(until.saturating_duration_since(tokio::time::Instant::now()));
            if wait.is_zero() {
                break;
            }
            match tokio::time::timeout(wait, reader.next_data()).await {
                Ok(Ok(Some(data))) => {
                    let done = self.translator.feed(&data, &mut chunks).unwrap_or(true);
                    for mut c in chunks.drain(..) {
                        meter(self, &mut c);
                    }
                    self.partial_usage = self
                        .translator
                        .partial_usage()
                        .or(self.partial_usage.take());
                    if done {
                        break;
                    }
                }
                _ => break,
            }
        }
    }

    /// Settles a stream its client left, for what was produced.
    fn settle_left(&mut self) {
        let Some(mut billed) = self.billed.take() else {
            return;
        };
        self.reader = None;
        let generation = billed.generation(self.outcome(true, None));
        tracing::info!(generation = %generation.id, completion_tokens = generation.completion_tokens, "client disconnected mid-stream; billing what was produced");
        billed.settle_detached(generation);
    }
}

/// A stream dropped before it finished: its client went away. What the upstream already sent is read
/// (briefly, in a task of its own) and billed.
impl Drop for Progress {
    fn drop(&mut self) {
        let Some(billed) = self.billed.take() else {
            return;
        };
        let shutting_down = *billed.state.cut_streams.borrow();
        let mut left = Progress {
            billed: Some(billed),
            reader: self.reader.take(),
            translator: std::mem::replace(&mut self.translator, Translator::OpenAi),
            prompt_estimate: self.prompt_estimate,
            endpoint: self.endpoint.clone(),
            pricing: self.pricing,
            ttft_ms: self.ttft_ms,
            meter: std::mem::take(&mut self.meter),
            partial_usage: self.partial_usage.take(),
            finish: self.finish.take(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if left.reader.is_some() && !shutting_down => {
                rt.spawn(async move {
                    left.drain().await;
                    left.settle_left();
                });
            }
            _ => left.settle_left(),
        }
    }
}

fn event(v: &Value) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut out, v).expect("a JSON value serialises");
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

enum Wake {
    Data(Result<Option<String>, super::sse::SseError>),
    Idle,
    KeepAlive,
    Cut,
}

enum Step {
    Forward(Bytes),
    Skip,
}

/// Counts what a translated chunk carries (at once, so that a client gone before it is sent is still
/// billed for it).
fn meter(p: &mut Progress, v: &mut Value) {
    p.meter.note(v);
    if let Some(b) = p.billed.as_mut() {
        for c in v["choices"].as_array().into_iter().flatten() {
            if let Some(s) = c["delta"]["content"].as_str() {
                b.log_answer(s);
            }
        }
    }
}

/// Rewrites one counted chunk for the client.
fn step(p: &mut Progress, gen_id: &str, slug: &str, mut v: Value) -> Step {
    let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) else {
        return Step::Skip;
    };
    if choices.is_empty() {
        return Step::Skip; // the upstream's usage chunk: ours, with cost, comes at the end
    }
    for c in choices.iter_mut() {
        if let Some(native) = c["native_finish_reason"].as_str().map(str::to_string) {
            // The adapter already split normalised and native (Gemini).
            p.finish = Some(native);
        } else if let Some(native) = c["finish_reason"].as_str().map(str::to_string) {
            c["native_finish_reason"] = Value::String(native.clone());
            c["finish_reason"] = Value::String(normalise_finish(&native).to_string());
            p.finish = Some(native);
        }
    }
    v["id"] = Value::String(gen_id.to_string());
    v["model"] = Value::String(slug.to_string());
    v["provider"] = Value::String(p.endpoint.provider.name.clone());
    Step::Forward(event(&v))
}

/// A failure that ends the stream: what the client is told and its `metadata.error_type`.
struct Failure {
    message: String,
    error_type: &'static str,
}

impl Failure {
    fn upstream(message: String) -> Failure {
        Failure {
            message,
            error_type: "upstream_error",
        }
    }
}

pub(super) fn respond(
    billed: Billed,
    planned: &Planned,
    start: StreamStart,
    ttft_ms: i64,
    t: Timeouts,
) -> Response {
    let cfg = &billed.state.cfg;
    let idle = t.idle;
    let keepalive = crate::config::Config::ms(cfg.stream_keepalive_ms);
    let endpoint = planned.cand.endpoint.clone();
    let output_bound = planned.output_bound;
    let gen_id = billed.gen_id.clone();
    let slug = billed.model.slug.clone();
    let created = billed.created_at / 1000;
    let provider_name = endpoint.provider.name.clone();
    let StreamStart {
        reader,
        translator,
        pending,
        mut done,
    } = start;
    let mut p = Progress {
        reader,
        translator,
        prompt_estimate: planned.prompt_estimate,
        billed: Some(billed),
        endpoint,
        pricing: planned.cand.pricing,
        ttft_ms,
        meter: Meter::default(),
        partial_usage: None,
        finish: None,
    };
    let header_gen = gen_id.clone();
    let mut cut = p
        .billed
        .as_ref()
        .map(|b| b.state.cut_streams.subscribe())
        .expect("not settled yet");
    // What arrived before the response is counted now: a client gone before the body is read still
    // owes it.
    let mut chunks = pending;
    for v in chunks.iter_mut() {
        meter(&mut p, v);
    }
    p.partial_usage = p.translator.partial_usage();
    let body = async_stream::stream! {
        let mut failure: Option<Failure> = None;
        for v in chunks.drain(..) {
            if let Step::Forward(b) = step(&mut p, &gen_id, &slug, v) {
                yield Ok::<Bytes, Infallible>(b);
            }
        }
        let mut deadline = Instant::now() + idle;
        let mut ka = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        while failure.is_none() && !done {
            if p.meter.runaway(output_bound) {
                failure = Some(Failure { message: format!("provider {provider_name} went on past the output cap it was given; the answer was cut"), error_type: "upstream_error" });
                break;
            }
            let Some(r) = p.reader.as_mut() else { break };
            let woke = tokio::select! {
                next = r.next_data() => Wake::Data(next),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Idle,
                _ = ka.tick() => Wake::KeepAlive,
                _ = cut.wait_for(|c| *c) => Wake::Cut,
            };
            match woke {
                Wake::KeepAlive => yield Ok(Bytes::from_static(b": SWITCHYARD PROCESSING\n\n")),
                Wake::Cut => failure = Some(Failure::upstream("the platform is shutting down; retry the request".to_string())),
                Wake::Idle => failure = Some(Failure { message: format!("provider {provider_name} sent nothing for {} s", idle.as_secs()), error_type: "timeout" }),
                Wake::Data(next) => {
                    deadline = Instant::now() + idle;
                    match next {
                        Ok(Some(data)) => match p.translator.feed(&data, &mut chunks) {
                            Ok(d) => done = d,
                            Err(f) => {
                                let message = format!("provider {provider_name} failed mid-stream: {}", f.message);
                                let error_type = stream_failure(&p.endpoint, f).error_type();
                                failure = Some(Failure { message, error_type });
                            }
                        },
                        Ok(None) => {
                            // A protocol without an end marker (or an upstream that closes after its
                            // finish reason without [DONE]) still finished.
                            done = p.translator.finish(&mut chunks) || p.finish.is_some() || chunks.iter().any(|c| c["choices"][0]["finish_reason"].is_string());
                            if !done {
                                failure = Some(Failure::upstream(format!("provider {provider_name} closed the stream before it finished")));
                            }
                        }
                        Err(e) => failure = Some(Failure::upstream(format!("provider {provider_name}'s stream broke: {e}"))),
                    }
                    p.partial_usage = p.translator.partial_usage().or(p.partial_usage.take());
                    for mut v in chunks.drain(..) {
                        meter(&mut p, &mut v);
                        if let Step::Forward(b) = step(&mut p, &gen_id, &slug, v) {
                            yield Ok(b);
                        }
                    }
                }
            }
        }
        p.reader = None; // closes the upstream connection before we bill
        if let Some(f) = &failure {
            tracing::warn!(generation = %gen_id, error = %f.message, "stream ended with an error");
            yield Ok(event(&json!({
                "id": gen_id, "object": "chat.completion.chunk", "created": created, "model": slug, "provider": provider_name,
                "error": {"code": 502, "message": f.message, "metadata": {"provider_name": provider_name, "error_type": f.error_type}},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": "error"}],
            })));
        }
        let mut billed = p.billed.take().expect("settled once");
        let generation = billed.generation(p.outcome(false, failure.map(|f| f.message)));
        if generation.error.is_none() {
            let latency = billed.started.elapsed().as_millis() as u64;
            let streaming_ms = latency.saturating_sub(p.ttft_ms.max(0) as u64).max(1);
            billed.state.health.record_speed(
                &p.endpoint.id,
                latency,
                Some(generation.completion_tokens as f64 * 1000.0 / streaming_ms as f64),
            );
        }
        let usage = usage_json(p.meter.usage.as_ref(), &generation);
        billed.settle(generation).await;
        yield Ok(event(&json!({
            "id": gen_id, "object": "chat.completion.chunk", "created": created, "model": slug, "provider": provider_name,
            "choices": [], "usage": usage,
        })));
        yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
    };
    let mut res = Body::from_stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(v) = HeaderValue::from_str(&header_gen) {
        h.insert(GEN_HEADER, v);
    }
    res
}
