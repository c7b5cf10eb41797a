//! Streaming answers: upstream events are rewritten and forwarded as they arrive (no buffering), with
//! keep-alive comments while the upstream is silent, a final usage chunk carrying `cost`, then `[DONE]`.
//! If the client goes away, the upstream is dropped (closing its connection) and what it produced so far
//! is billed, once.

use super::chat::{
    normalise_finish, parse_reasoning, parse_usage, usage_json, Billed, Outcome, Usage, GEN_HEADER,
};
use super::sse::SseReader;
use crate::catalog::Endpoint;
use crate::money::{Pricing, Tokens};
use axum::{
    body::Body,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde_json::{json, Value};
use std::{convert::Infallible, time::Instant};

/// What has streamed so far; settles on drop if the stream did not finish.
struct Progress {
    billed: Option<Billed>,
    prompt_estimate: u64,
    endpoint: Endpoint,
    pricing: Pricing,
    ttft_ms: i64,
    upstream_usage: Option<Value>,
    upstream_id: Option<String>,
    finish: Option<String>,
    content_chars: u64,
    content_chunks: u64,
}

impl Progress {
    fn usage(&self) -> Usage {
        let wrapped = self.upstream_usage.as_ref().map(|u| json!({ "usage": u }));
        match wrapped.as_ref().and_then(parse_usage) {
            Some(tokens) => Usage {
                tokens,
                reasoning: wrapped.as_ref().map_or(0, parse_reasoning),
                estimated: false,
            },
            // No usage from the upstream (cut short): bill what arrived. Providers send about one token
            // per chunk; four characters a token is the usual estimate; take the larger.
            None => Usage {
                tokens: Tokens::new(
                    self.prompt_estimate,
                    self.content_chunks.max(self.content_chars.div_ceil(4)),
                ),
                reasoning: 0,
                estimated: true,
            },
        }
    }

    fn outcome(&self, cancelled: bool, error: Option<String>) -> Outcome<'_> {
        Outcome {
            endpoint: Some(&self.endpoint),
            pricing: Some(self.pricing),
            usage: self.usage(),
            upstream_id: self.upstream_id.clone(),
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

impl Drop for Progress {
    fn drop(&mut self) {
        let Some(mut billed) = self.billed.take() else {
            return;
        };
        let generation = billed.generation(self.outcome(true, None));
        tracing::info!(generation = %generation.id, completion_tokens = generation.completion_tokens, "client disconnected mid-stream; billing what was produced");
        billed.settle_detached(generation);
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
    Done,
    Fail(String),
}

/// Rewrites one upstream event for the client and notes what it tells about usage.
fn step(p: &mut Progress, gen_id: &str, slug: &str, data: &str) -> Step {
    if data.trim() == "[DONE]" {
        return Step::Done;
    }
    let mut v: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => {
            return Step::Fail(format!(
                "provider {} sent an invalid stream event ({e})",
                p.endpoint.provider.name
            ))
        }
    };
    if v.get("error").is_some_and(|e| !e.is_null()) {
        let msg = crate::providers::upstream_message(data.as_bytes());
        return Step::Fail(format!(
            "provider {} failed mid-stream: {msg}",
            p.endpoint.provider.name
        ));
    }
    if let Some(obj) = v.as_object_mut() {
        if let Some(u) = obj.remove("usage").filter(|u| !u.is_null()) {
            p.upstream_usage = Some(u);
        }
    }
    if p.upstream_id.is_none() {
        p.upstream_id = v["id"].as_str().map(str::to_string);
    }
    let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) else {
        return Step::Skip;
    };
    if choices.is_empty() {
        return Step::Skip; // the upstream's usage chunk: ours, with cost, comes at the end
    }
    for c in choices.iter_mut() {
        if let Some(s) = c["delta"]["content"].as_str() {
            if !s.is_empty() {
                p.content_chars += s.chars().count() as u64;
                p.content_chunks += 1;
                if let Some(b) = p.billed.as_mut() {
                    b.log_answer(s);
                }
            }
        }
        if let Some(native) = c["finish_reason"].as_str().map(str::to_string) {
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

pub(super) fn respond(
    billed: Billed,
    endpoint: Endpoint,
    pricing: Pricing,
    mut reader: SseReader,
    first: String,
    ttft_ms: i64,
) -> Response {
    let cfg = &billed.state.cfg;
    let idle = crate::config::Config::ms(cfg.upstream_idle_timeout_ms);
    let keepalive = crate::config::Config::ms(cfg.stream_keepalive_ms);
    let gen_id = billed.gen_id.clone();
    let slug = billed.model.slug.clone();
    let created = billed.created_at / 1000;
    let provider_name = endpoint.provider.name.clone();
    let mut p = Progress {
        prompt_estimate: billed.prompt_estimate,
        billed: Some(billed),
        endpoint,
        pricing,
        ttft_ms,
        upstream_usage: None,
        upstream_id: None,
        finish: None,
        content_chars: 0,
        content_chunks: 0,
    };
    let header_gen = gen_id.clone();
    let mut cut = p
        .billed
        .as_ref()
        .map(|b| b.state.cut_streams.subscribe())
        .expect("not settled yet");
    let body = async_stream::stream! {
        let mut failure: Option<String> = None;
        match step(&mut p, &gen_id, &slug, &first) {
            Step::Forward(b) => yield Ok::<Bytes, Infallible>(b),
            Step::Skip => {}
            Step::Done => {}
            Step::Fail(m) => failure = Some(m),
        }
        let mut deadline = Instant::now() + idle;
        let mut ka = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        while failure.is_none() {
            let woke = tokio::select! {
                next = reader.next_data() => Wake::Data(next),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Idle,
                _ = ka.tick() => Wake::KeepAlive,
                _ = cut.wait_for(|c| *c) => Wake::Cut,
            };
            match woke {
                Wake::KeepAlive => yield Ok(Bytes::from_static(b": SWITCHYARD PROCESSING\n\n")),
                Wake::Cut => failure = Some("the platform is shutting down; retry the request".to_string()),
                Wake::Idle => failure = Some(format!("provider {provider_name} sent nothing for {} s", idle.as_secs())),
                Wake::Data(next) => {
                    deadline = Instant::now() + idle;
                    match next {
                        Ok(Some(data)) => match step(&mut p, &gen_id, &slug, &data) {
                            Step::Forward(b) => yield Ok(b),
                            Step::Skip => {}
                            Step::Done => break,
                            Step::Fail(m) => failure = Some(m),
                        },
                        // An upstream that closes after its finish reason but without [DONE] still finished.
                        Ok(None) if p.finish.is_some() => break,
                        Ok(None) => failure = Some(format!("provider {provider_name} closed the stream before it finished")),
                        Err(e) => failure = Some(format!("provider {provider_name}'s stream broke: {e}")),
                    }
                }
            }
        }
        drop(reader); // closes the upstream connection before we bill
        if let Some(msg) = &failure {
            tracing::warn!(generation = %gen_id, error = %msg, "stream ended with an error");
            yield Ok(event(&json!({
                "id": gen_id, "object": "chat.completion.chunk", "created": created, "model": slug, "provider": provider_name,
                "error": {"code": 502, "message": msg, "metadata": {"provider_name": provider_name, "error_type": "upstream_error"}},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error", "native_finish_reason": "error"}],
            })));
        }
        let mut billed = p.billed.take().expect("settled once");
        let generation = billed.generation(p.outcome(false, failure));
        let usage = usage_json(p.upstream_usage.as_ref(), &generation);
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
