//! The fake's Anthropic Messages API: `POST /v1/messages` with `x-api-key` and `anthropic-version`, the
//! documented answer and stream events (`message_start`, `content_block_*`, `ping`, `message_delta`,
//! `message_stop`), tool use, thinking blocks, prompt caching (a prefix marked with `cache_control` is
//! written on first sight and read after), stop sequences, and Anthropic's error bodies (`{"type":"error",
//! "error":{"type","message"}}`) with its rate-limit headers.

use super::{
    delay, image_tokens, length, payload_tokens, text_chars, word, Bill, Fake, MediaRule,
    StreamGuard,
};
use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use serde_json::{json, Value};
use std::{sync::atomic::Ordering, time::Duration};

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut r = (
        status,
        Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response();
    r.headers_mut()
        .insert("request-id", "req_fake0001".parse().expect("static header"));
    r
}

/// A value of the schema's type, for a tool's input.
pub(super) fn example(schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("object") => {
            let mut o = serde_json::Map::new();
            if let Some(props) = schema["properties"].as_object() {
                for (k, v) in props {
                    o.insert(k.clone(), example(v));
                }
            }
            Value::Object(o)
        }
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ => json!("Paris"),
    }
}

/// Tokens of the images and documents in the messages, counted as Claude counts them.
fn media_tokens(body: &Value) -> u64 {
    let mut n = 0;
    for m in body["messages"].as_array().into_iter().flatten() {
        for b in m["content"].as_array().into_iter().flatten() {
            let data = b["source"]["data"].as_str();
            n += match b["type"].as_str() {
                Some("image") => image_tokens(MediaRule::Claude, data, false),
                Some("document") => payload_tokens(data.unwrap_or("")),
                _ => 0,
            };
        }
    }
    n
}

/// Tokens of the prompt prefix up to the last block marked `cache_control` (0 when none).
fn cached_prefix(body: &Value) -> (u64, u64) {
    let mut chars_before = 0usize;
    let mut prefix = 0usize;
    let mut blocks: Vec<&Value> = Vec::new();
    if let Some(tools) = body["tools"].as_array() {
        blocks.extend(tools);
    }
    if let Some(sys) = body["system"].as_array() {
        blocks.extend(sys);
    }
    for m in body["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        match m["content"].as_array() {
            Some(parts) => blocks.extend(parts),
            None => blocks.push(&m["content"]),
        }
    }
    let mut key = 0u64;
    for b in blocks {
        chars_before += text_chars(b)
            + b["input_schema"].to_string().len() * (b["input_schema"].is_object() as usize);
        if b.get("cache_control").is_some() {
            prefix = chars_before;
            key = chars_before as u64 ^ (b.to_string().len() as u64) << 20;
        }
    }
    ((prefix as u64).div_ceil(4), key)
}

pub(super) async fn messages(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    f.stats.requests.fetch_add(1, Ordering::Relaxed);
    if f.cfg.api_key.is_some() && !f.accepts(super::header(&headers, "x-api-key")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    if super::header(&headers, "anthropic-version").is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("Request body is not valid JSON: {e}"),
            )
        }
    };
    *f.stats.last_body.lock() = Some(body.clone());
    for (field, ok) in [
        ("model", body["model"].is_string()),
        ("max_tokens", body["max_tokens"].is_u64()),
        (
            "messages",
            body["messages"].as_array().is_some_and(|m| !m.is_empty()),
        ),
    ] {
        if !ok {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("{field}: Field required"),
            );
        }
    }
    for (i, m) in body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !matches!(m["role"].as_str(), Some("user" | "assistant")) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("messages.{i}.role: Input should be 'user' or 'assistant'"),
            );
        }
    }
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let sw = f.stats.switches(&Value::Null, &model);
    delay(&sw).await;
    match sw.status {
        Some(429) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit (https://docs.anthropic.com/en/api/rate-limits); see the response headers for current usage.");
            let h = r.headers_mut();
            h.insert("retry-after", "2".parse().expect("static header"));
            h.insert(
                "anthropic-ratelimit-requests-limit",
                "50".parse().expect("static header"),
            );
            h.insert(
                "anthropic-ratelimit-requests-remaining",
                "0".parse().expect("static header"),
            );
            h.insert(
                "anthropic-ratelimit-requests-reset",
                "2026-01-01T00:00:02Z".parse().expect("static header"),
            );
            return r;
        }
        Some(529) => {
            return error(
                StatusCode::from_u16(529).expect("529"),
                "overloaded_error",
                "Overloaded",
            )
        }
        Some(400) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum",
            )
        }
        Some(401) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key",
            )
        }
        Some(s) if s >= 500 => {
            return error(
                StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "api_error",
                "Internal server error",
            )
        }
        _ => {}
    }
    if sw.malformed {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"id\": \"msg_broken\", \"content\": [",
        )
            .into_response();
    }

    // What the model says.
    let (n, hit_max) = length(&sw, body["max_tokens"].as_u64());
    let mut words: Vec<String> = (0..n).map(word).collect();
    let mut stop_reason = if hit_max { "max_tokens" } else { "end_turn" };
    let mut stop_sequence = Value::Null;
    for s in body["stop_sequences"].as_array().into_iter().flatten() {
        if let Some(s) = s.as_str() {
            if let Some(at) = words.iter().position(|w| w.trim() == s) {
                words.truncate(at);
                stop_reason = "stop_sequence";
                stop_sequence = json!(s);
            }
        }
    }
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    let choice = &body["tool_choice"];
    let answered_tool = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .is_some_and(|parts| parts.iter().any(|p| p["type"] == "tool_result"));
    let call: Option<&Value> = match choice["type"].as_str() {
        Some("tool") => tools.iter().find(|t| t["name"] == choice["name"]),
        Some("any") => tools.first(),
        Some("none") => None,
        _ if !answered_tool => tools.first(),
        _ => None,
    };
    let thinking = body["thinking"]["type"] == "enabled";
    let mut content = Vec::new();
    let mut output = 0u64;
    if thinking {
        content.push(json!({"type": "thinking", "thinking": "Thinking it over.", "signature": "fake-signature-0001"}));
        output += 3;
    }
    if let Some(tool) = call {
        let forced = choice["type"] == "tool" || choice["type"] == "any";
        if !forced {
            content.push(json!({"type": "text", "text": "Let me check."}));
            output += 3;
        }
        let input = example(&tool["input_schema"]);
        output += (input.to_string().len() as u64).div_ceil(4);
        content.push(json!({"type": "tool_use", "id": format!("toolu_{}", uuid::Uuid::new_v4().simple()), "name": tool["name"], "input": input}));
        stop_reason = "tool_use";
    } else {
        output += words.len() as u64;
        content.push(json!({"type": "text", "text": words.concat()}));
    }
    let total = (text_chars(&body["system"])
        + text_chars(&body["messages"])
        + body["tools"].to_string().len() * (!tools.is_empty() as usize)) as u64;
    let prompt = total.div_ceil(4) + 3 + media_tokens(&body);
    let output = output + sw.overreport.unwrap_or(0);
    let (prefix, key) = cached_prefix(&body);
    let prefix = prefix.min(prompt);
    let (read, write) = if prefix == 0 {
        (0, 0)
    } else if f.stats.cache_seen(key) {
        (prefix, 0)
    } else {
        (0, prefix)
    };
    let usage = json!({"input_tokens": prompt - read - write, "output_tokens": output,
        "cache_creation_input_tokens": write, "cache_read_input_tokens": read});
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let bill = Bill {
        id: id.clone(),
        model: model.clone(),
        prompt,
        completion: output,
        finished: true,
    };
    if body["stream"] != true {
        f.stats.bill(bill);
        return Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage,
        }))
        .into_response();
    }
    let delay_each = Duration::from_millis(sw.chunk_delay_ms.unwrap_or(f.cfg.chunk_delay_ms));
    let stats = f.stats.clone();
    let stream = async_stream::stream! {
        let mut guard = StreamGuard::new(stats.clone(), Some(bill));
        let ev = |name: &str, v: Value| Ok::<Bytes, std::io::Error>(Bytes::from(format!("event: {name}\ndata: {v}\n\n")));
        let mut start_usage = usage.clone();
        start_usage["output_tokens"] = json!(1);
        yield ev("message_start", json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage}}));
        yield ev("ping", json!({"type": "ping"}));
        let mut sent = 0u64;
        for (index, block) in content.iter().enumerate() {
            let start = match block["type"].as_str() {
                Some("thinking") => json!({"type": "thinking", "thinking": ""}),
                Some("tool_use") => json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                _ => json!({"type": "text", "text": ""}),
            };
            yield ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": start}));
            let deltas: Vec<Value> = match block["type"].as_str() {
                Some("thinking") => vec![
                    json!({"type": "thinking_delta", "thinking": block["thinking"]}),
                    json!({"type": "signature_delta", "signature": block["signature"]}),
                ],
                Some("tool_use") => {
                    let s = block["input"].to_string();
                    let mid = s.char_indices().nth(s.chars().count() / 2).map_or(0, |(i, _)| i);
                    vec![json!({"type": "input_json_delta", "partial_json": &s[..mid]}), json!({"type": "input_json_delta", "partial_json": &s[mid..]})]
                }
                _ => {
                    if block["text"] == "Let me check." {
                        vec![json!({"type": "text_delta", "text": "Let me check."})]
                    } else {
                        words.iter().map(|w| json!({"type": "text_delta", "text": w})).collect()
                    }
                }
            };
            for d in deltas {
                if !delay_each.is_zero() {
                    tokio::time::sleep(delay_each).await;
                }
                if sw.drop_after.is_some_and(|k| sent >= k) {
                    yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake upstream dropped the connection"));
                    return;
                }
                sent += 1;
                guard.sent = sent.min(output);
                yield ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": d}));
            }
            yield ev("content_block_stop", json!({"type": "content_block_stop", "index": index}));
        }
        let mut end_usage = json!({"output_tokens": output});
        if sw.omit_usage {
            end_usage = json!({});
        }
        yield ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence}, "usage": end_usage}));
        yield ev("message_stop", json!({"type": "message_stop"}));
        guard.finished = true;
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .expect("valid response")
}
