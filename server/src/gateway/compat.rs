//! Other API shapes over the one chat pipeline:
//!
//! - `POST /messages`: Anthropic's Messages API, so Anthropic SDKs and the tools built on them (Claude
//!   Code, …) can use any model of the catalog. The request is translated to an OpenAI chat request, routed,
//!   billed and answered like chat, and the answer (or each streamed chunk) translated back into a
//!   Messages API answer (or events). Keys may come as `x-api-key` (the SDKs' default) or a bearer token;
//!   errors come in Anthropic's shape.
//! - `POST /completions`: the legacy text completion API; the prompt becomes one user message and the
//!   answer comes back as `text_completion` objects (or chunks).

use super::chat::{self, GEN_HEADER};
use super::{request, ApiKeyAuth, LimitedBody};
use crate::error::ApiError;
use crate::state::AppState;
use axum::{
    body::Body,
    extract::{FromRequest, FromRequestParts, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{json, Map, Value};

/// The response's JSON body (small: an answer or an error).
async fn json_body(res: Response) -> (axum::http::response::Parts, Value) {
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    (parts, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn is_stream(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// Rewrites an SSE body event by event: `map` gets each `data:` payload (`[DONE]` included) and returns
/// the bytes to send instead; comments (keep-alives) pass through.
fn map_sse(res: Response, mut map: impl FnMut(&str) -> Vec<Bytes> + Send + 'static) -> Response {
    let (parts, body) = res.into_parts();
    let mut upstream = body.into_data_stream();
    let out = async_stream::stream! {
        let mut buf = BytesMut::new();
        while let Some(chunk) = upstream.next().await {
            let Ok(chunk) = chunk else { break };
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let block = buf.split_to(end + 2);
                let text = String::from_utf8_lossy(&block[..end]).to_string();
                if let Some(data) = text.strip_prefix("data: ") {
                    for b in map(data) {
                        yield Ok::<Bytes, std::convert::Infallible>(b);
                    }
                } else {
                    yield Ok(Bytes::from(format!("{text}\n\n")));
                }
            }
        }
    };
    Response::from_parts(parts, Body::from_stream(out))
}

// ---------------------------------------------------------------------------------------------------
// Anthropic's Messages API

/// Anthropic's error shape for a status.
fn anthropic_error(status: StatusCode, message: &str) -> Response {
    let kind = match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 | 503 => "overloaded_error",
        _ => "api_error",
    };
    (
        status,
        axum::Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response()
}

fn api_error_to_anthropic(e: ApiError) -> Response {
    let retry = e.retry_after;
    let mut res = anthropic_error(e.status, &e.message);
    if let Some(s) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        res.headers_mut().insert(header::RETRY_AFTER, s);
    }
    res
}

pub async fn messages(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let key = match ApiKeyAuth::from_request_parts(&mut parts, &state).await {
        Ok(ApiKeyAuth(k)) => k,
        Err(e) => return api_error_to_anthropic(e),
    };
    let bytes = match LimitedBody::from_request(Request::from_parts(parts, body), &state).await {
        Ok(LimitedBody(b)) => b,
        Err(e) => return api_error_to_anthropic(e),
    };
    let chat_req = match to_chat(&bytes)
        .and_then(|v| request::parse(&serde_json::to_vec(&v).expect("JSON serialises")))
    {
        Ok(r) => r,
        Err(e) => return api_error_to_anthropic(e),
    };
    let stream = chat_req.stream;
    let res = match chat::run(state, key, chat_req).await {
        Ok(r) => r,
        Err(e) => return api_error_to_anthropic(e),
    };
    if !res.status().is_success() {
        let (parts, v) = json_body(res).await;
        let mut out = anthropic_error(
            parts.status,
            v["error"]["message"]
                .as_str()
                .unwrap_or("the request failed"),
        );
        for h in [
            header::RETRY_AFTER,
            header::HeaderName::from_static(GEN_HEADER),
        ] {
            if let Some(v) = parts.headers.get(&h) {
                out.headers_mut().insert(h, v.clone());
            }
        }
        return out;
    }
    if stream && is_stream(&res) {
        let mut s = MessageStream::default();
        return map_sse(res, move |data| s.event(data));
    }
    let (parts, v) = json_body(res).await;
    let mut out = axum::Json(from_chat(&v)).into_response();
    if let Some(g) = parts.headers.get(GEN_HEADER) {
        out.headers_mut().insert(GEN_HEADER, g.clone());
    }
    out
}

fn bad(field: &str, why: &str) -> ApiError {
    ApiError::bad_field(field, why)
}

/// An Anthropic content block as OpenAI content parts (text and images).
fn parts_of(blocks: &[Value], at: &str) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let mut part = match b["type"].as_str() {
            Some("text") => json!({"type": "text", "text": b["text"].as_str().unwrap_or_default()}),
            Some("image") => {
                let src = &b["source"];
                let url = match src["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        src["media_type"].as_str().unwrap_or("image/png"),
                        src["data"].as_str().unwrap_or_default()
                    ),
                    Some("url") => src["url"].as_str().unwrap_or_default().to_string(),
                    _ => {
                        return Err(bad(
                            &format!("{at}.content[{j}].source"),
                            "must be a base64 or url source",
                        ))
                    }
                };
                json!({"type": "image_url", "image_url": {"url": url}})
            }
            Some("document") => {
                let src = &b["source"];
                json!({"type": "file", "file": {"file_data": format!("data:{};base64,{}",
                    src["media_type"].as_str().unwrap_or("application/pdf"), src["data"].as_str().unwrap_or_default())}})
            }
            _ => continue,
        };
        if let Some(c) = b.get("cache_control") {
            part["cache_control"] = c.clone();
        }
        out.push(part);
    }
    Ok(out)
}

/// A Messages API request as an OpenAI chat request.
pub fn to_chat(bytes: &[u8]) -> Result<Value, ApiError> {
    let b = request::json_object(bytes)?;
    let max = b
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("max_tokens", "is required: a positive integer"))?;
    let msgs = b
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("messages", "is required: an array of {role, content}"))?;
    let mut out_msgs: Vec<Value> = Vec::new();
    match b.get("system") {
        Some(Value::String(s)) => out_msgs.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            out_msgs.push(json!({"role": "system", "content": parts_of(blocks, "system")?}))
        }
        _ => {}
    }
    for (i, m) in msgs.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = m["role"].as_str().unwrap_or("");
        if !matches!(role, "user" | "assistant") {
            return Err(bad(
                &format!("{at}.role"),
                "must be \"user\" or \"assistant\"",
            ));
        }
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(a) => a.clone(),
            _ => {
                return Err(bad(
                    &format!("{at}.content"),
                    "must be a string or an array of blocks",
                ))
            }
        };
        if role == "assistant" {
            let text: String = blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect();
            let calls: Vec<Value> = blocks
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| json!({"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": b["input"].to_string()}}))
                .collect();
            let details: Vec<Value> = blocks
                .iter()
                .filter_map(|b| match b["type"].as_str() {
                    Some("thinking") => Some(json!({"type": "reasoning.text", "text": b["thinking"], "signature": b["signature"], "format": "anthropic-claude-v1"})),
                    Some("redacted_thinking") => Some(json!({"type": "reasoning.encrypted", "data": b["data"], "format": "anthropic-claude-v1"})),
                    _ => None,
                })
                .collect();
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            if !details.is_empty() {
                msg["reasoning_details"] = Value::Array(details);
            }
            out_msgs.push(msg);
            continue;
        }
        // A user turn: tool results become tool messages (first), the rest one user message.
        for r in blocks.iter().filter(|b| b["type"] == "tool_result") {
            let content = match &r["content"] {
                Value::String(s) => s.clone(),
                Value::Array(a) => a.iter().filter_map(|p| p["text"].as_str()).collect(),
                _ => String::new(),
            };
            out_msgs.push(
                json!({"role": "tool", "tool_call_id": r["tool_use_id"], "content": content}),
            );
        }
        let parts = parts_of(&blocks, &at)?;
        if !parts.is_empty() {
            out_msgs.push(json!({"role": "user", "content": parts}));
        }
    }
    let mut out = Map::new();
    if let Some(m) = b.get("model") {
        out.insert("model".into(), m.clone());
    }
    out.insert("messages".into(), Value::Array(out_msgs));
    out.insert("max_tokens".into(), json!(max));
    for k in ["temperature", "top_p", "top_k", "stream"] {
        if let Some(v) = b.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(s) = b.get("stop_sequences") {
        out.insert("stop".into(), s.clone());
    }
    if let Some(u) = b.get("metadata").and_then(|m| m.get("user_id")) {
        out.insert("user".into(), u.clone());
    }
    if let Some(tools) = b.get("tools").and_then(Value::as_array) {
        let t: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t["name"], "parameters": t["input_schema"]});
                if let Some(d) = t.get("description") {
                    f["description"] = d.clone();
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        out.insert("tools".into(), Value::Array(t));
    }
    if let Some(c) = b.get("tool_choice") {
        let choice = match c["type"].as_str() {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": c["name"]}}),
            _ => {
                return Err(bad(
                    "tool_choice",
                    "must be {\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}",
                ))
            }
        };
        out.insert("tool_choice".into(), choice);
        if c["disable_parallel_tool_use"] == true {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    if b.get("thinking").and_then(|t| t["type"].as_str()) == Some("enabled") {
        let budget = b["thinking"]["budget_tokens"].as_u64().unwrap_or(1024);
        out.insert("reasoning".into(), json!({"max_tokens": budget}));
    }
    Ok(Value::Object(out))
}

/// An OpenAI finish reason as Anthropic's stop reason (the native one when the upstream was Anthropic).
fn stop_reason(finish: &Value, native: &Value) -> &'static str {
    match native.as_str() {
        Some("end_turn") => return "end_turn",
        Some("stop_sequence") => return "stop_sequence",
        Some("max_tokens") => return "max_tokens",
        Some("tool_use") => return "tool_use",
        Some("refusal") => return "refusal",
        _ => {}
    }
    match finish.as_str() {
        Some("length") => "max_tokens",
        Some("tool_calls") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// OpenAI usage as Anthropic's (cache reads and writes apart from input).
fn anthropic_usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let read = n(&u["prompt_tokens_details"]["cached_tokens"]);
    let write = n(&u["prompt_tokens_details"]["cache_write_tokens"]);
    let prompt = n(&u["prompt_tokens"]);
    json!({"input_tokens": prompt.saturating_sub(read + write), "output_tokens": n(&u["completion_tokens"]),
        "cache_read_input_tokens": read, "cache_creation_input_tokens": write})
}

/// An OpenAI chat completion as a Messages API answer.
pub fn from_chat(v: &Value) -> Value {
    let choice = &v["choices"][0];
    let m = &choice["message"];
    let mut content = Vec::new();
    if let Some(details) = m["reasoning_details"].as_array() {
        for d in details {
            match d["type"].as_str() {
                Some("reasoning.text") => content.push(
                    json!({"type": "thinking", "thinking": d["text"], "signature": d["signature"]}),
                ),
                Some("reasoning.encrypted") => {
                    content.push(json!({"type": "redacted_thinking", "data": d["data"]}))
                }
                _ => {}
            }
        }
    } else if let Some(r) = m["reasoning"].as_str().filter(|r| !r.is_empty()) {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    if let Some(t) = m["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for c in m["tool_calls"].as_array().into_iter().flatten() {
        let input: Value = c["function"]["arguments"]
            .as_str()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_else(|| json!({}));
        content.push(json!({"type": "tool_use", "id": c["id"], "name": c["function"]["name"], "input": input}));
    }
    json!({
        "id": v["id"], "type": "message", "role": "assistant", "model": v["model"], "content": content,
        "stop_reason": stop_reason(&choice["finish_reason"], &choice["native_finish_reason"]),
        "stop_sequence": null, "usage": anthropic_usage(&v["usage"]),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    Thinking,
    Tool,
}

/// OpenAI chunks as Messages API events.
#[derive(Default)]
struct MessageStream {
    started: bool,
    index: usize,
    open: Option<Open>,
    stop: Option<&'static str>,
    stopped: bool,
}

fn sse_event(name: &str, v: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

impl MessageStream {
    fn close(&mut self, out: &mut Vec<Bytes>) {
        if self.open.take().is_some_and(|o| o != Open::None) {
            out.push(sse_event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.index}),
            ));
            self.index += 1;
        }
    }

    fn open(&mut self, kind: Open, block: Value, out: &mut Vec<Bytes>) {
        if self.open == Some(kind) && kind != Open::Tool {
            return;
        }
        self.close(out);
        out.push(sse_event(
            "content_block_start",
            json!({"type": "content_block_start", "index": self.index, "content_block": block}),
        ));
        self.open = Some(kind);
    }

    fn event(&mut self, data: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        if data.trim() == "[DONE]" {
            return out;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return out;
        };
        if !self.started {
            self.started = true;
            out.push(sse_event("message_start", json!({"type": "message_start", "message": {
                "id": v["id"], "type": "message", "role": "assistant", "model": v["model"], "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}}})));
        }
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            self.close(&mut out);
            out.push(sse_event(
                "error",
                json!({"type": "error", "error": {"type": "api_error", "message": e["message"]}}),
            ));
            self.stop = Some("end_turn");
            return out;
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            // The final usage chunk: the message ends.
            self.close(&mut out);
            if !self.stopped {
                self.stopped = true;
                out.push(sse_event("message_delta", json!({"type": "message_delta",
                    "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
                    "usage": anthropic_usage(u)})));
                out.push(sse_event("message_stop", json!({"type": "message_stop"})));
            }
            return out;
        }
        let c = &v["choices"][0];
        let d = &c["delta"];
        if let Some(r) = d["reasoning"].as_str().filter(|r| !r.is_empty()) {
            self.open(
                Open::Thinking,
                json!({"type": "thinking", "thinking": ""}),
                &mut out,
            );
            out.push(sse_event("content_block_delta", json!({"type": "content_block_delta", "index": self.index, "delta": {"type": "thinking_delta", "thinking": r}})));
        }
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            self.open(Open::Text, json!({"type": "text", "text": ""}), &mut out);
            out.push(sse_event("content_block_delta", json!({"type": "content_block_delta", "index": self.index, "delta": {"type": "text_delta", "text": t}})));
        }
        for tc in d["tool_calls"].as_array().into_iter().flatten() {
            if tc["id"].is_string() {
                self.open(Open::Tool, json!({"type": "tool_use", "id": tc["id"], "name": tc["function"]["name"], "input": {}}), &mut out);
            }
            if let Some(a) = tc["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                out.push(sse_event("content_block_delta", json!({"type": "content_block_delta", "index": self.index, "delta": {"type": "input_json_delta", "partial_json": a}})));
            }
        }
        if !c["finish_reason"].is_null() && c.get("finish_reason").is_some() {
            self.stop = Some(stop_reason(&c["finish_reason"], &c["native_finish_reason"]));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------------
// Legacy text completions

pub async fn completions(
    State(state): State<AppState>,
    ApiKeyAuth(key): ApiKeyAuth,
    LimitedBody(bytes): LimitedBody,
) -> Result<Response, ApiError> {
    let mut b = request::json_object(&bytes)?;
    let prompt = match b.remove("prompt") {
        Some(Value::String(s)) => s,
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(_)) => {
            return Err(bad(
                "prompt",
                "must be one string here (send one request per prompt)",
            ))
        }
        None => return Err(bad("prompt", "is required: the text to complete")),
        Some(_) => return Err(bad("prompt", "must be a string")),
    };
    if let Some(n) = b.remove("suffix").filter(|s| !s.is_null()) {
        let _ = n;
        return Err(bad(
            "suffix",
            "is not supported; put the text in the prompt",
        ));
    }
    b.remove("echo");
    b.remove("best_of");
    b.insert(
        "messages".into(),
        json!([{"role": "user", "content": prompt}]),
    );
    let req = request::parse(&serde_json::to_vec(&Value::Object(b)).expect("JSON serialises"))?;
    let stream = req.stream;
    let res = chat::run(state, key, req).await?;
    if !res.status().is_success() {
        return Ok(res);
    }
    if stream && is_stream(&res) {
        return Ok(map_sse(res, |data| {
            if data.trim() == "[DONE]" {
                return vec![Bytes::from_static(b"data: [DONE]\n\n")];
            }
            let Ok(mut v) = serde_json::from_str::<Value>(data) else {
                return Vec::new();
            };
            v["object"] = json!("text_completion");
            if let Some(cs) = v["choices"].as_array_mut() {
                for c in cs {
                    let text = c["delta"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    if let Some(o) = c.as_object_mut() {
                        o.remove("delta");
                        o.insert("text".into(), json!(text));
                    }
                }
            }
            vec![Bytes::from(format!("data: {v}\n\n"))]
        }));
    }
    let (parts, mut v) = json_body(res).await;
    v["object"] = json!("text_completion");
    if let Some(cs) = v["choices"].as_array_mut() {
        for c in cs {
            let text = c["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(o) = c.as_object_mut() {
                o.remove("message");
                o.insert("text".into(), json!(text));
            }
        }
    }
    let mut out = axum::Json(v).into_response();
    if let Some(g) = parts.headers.get(GEN_HEADER) {
        out.headers_mut().insert(GEN_HEADER, g.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_messages_request_becomes_chat_and_its_answer_comes_back() {
        let req = json!({"model": "a/b", "max_tokens": 100, "system": "Be brief.",
            "stop_sequences": ["END"], "metadata": {"user_id": "u1"},
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "w", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}, {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": 1}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}, {"type": "text", "text": "and?"}]}]});
        let chat = to_chat(req.to_string().as_bytes()).expect("valid");
        assert_eq!(
            chat,
            json!({"model": "a/b", "max_tokens": 100, "stop": ["END"], "user": "u1",
                "reasoning": {"max_tokens": 2000}, "parallel_tool_calls": false,
                "tools": [{"type": "function", "function": {"name": "w", "description": "weather", "parameters": {"type": "object"}}}],
                "tool_choice": {"type": "function", "function": {"name": "w"}},
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                    {"role": "assistant", "content": "ok", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "w", "arguments": "{\"c\":1}"}}]},
                    {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
                    {"role": "user", "content": [{"type": "text", "text": "and?"}]}]})
        );
        let answer = from_chat(&json!({"id": "gen-1", "model": "a/b",
            "choices": [{"message": {"role": "assistant", "content": "Hi", "tool_calls": [{"id": "t2", "type": "function", "function": {"name": "w", "arguments": "{\"c\":2}"}}]},
                "finish_reason": "tool_calls", "native_finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 5}}}));
        assert_eq!(
            answer,
            json!({"id": "gen-1", "type": "message", "role": "assistant", "model": "a/b",
                "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "t2", "name": "w", "input": {"c": 2}}],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 25, "output_tokens": 7, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 5}})
        );
        assert!(
            to_chat(br#"{"messages": []}"#).is_err(),
            "max_tokens is required"
        );
    }
}
