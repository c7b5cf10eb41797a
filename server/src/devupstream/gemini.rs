//! The fake's Google Generative Language API: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, the key in `x-goog-api-key` (or `?key=`), candidates with text,
//! thought and `functionCall` parts, `usageMetadata`, prompts blocked for safety (`promptFeedback`), and
//! Google's error bodies (`{"error":{"code","message","status","details"}}`, with `RetryInfo` on 429).

use super::{
    delay, image_tokens, length, payload_tokens, text_chars, word, Bill, Fake, MediaRule,
    StreamGuard,
};
use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use serde_json::{json, Value};
use std::{collections::HashMap, sync::atomic::Ordering, time::Duration};

fn error(code: u16, status: &str, message: &str, details: Value) -> Response {
    let mut e = json!({"error": {"code": code, "message": message, "status": status}});
    if !details.is_null() {
        e["error"]["details"] = details;
    }
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(e),
    )
        .into_response()
}

pub(super) async fn generate(
    State(f): State<Fake>,
    Path(call): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    f.stats.requests.fetch_add(1, Ordering::Relaxed);
    let Some((model, method)) = call.split_once(':') else {
        return error(404, "NOT_FOUND", "Method not found.", Value::Null);
    };
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return error(404, "NOT_FOUND", "Method not found.", Value::Null),
    };
    let key = super::header(&headers, "x-goog-api-key").or(q.get("key").map(String::as_str));
    if f.cfg.api_key.is_some() && !f.accepts(key) {
        return error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]),
        );
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                400,
                "INVALID_ARGUMENT",
                &format!("Invalid JSON payload received. {e}"),
                Value::Null,
            )
        }
    };
    *f.stats.last_body.lock() = Some(body.clone());
    if body["contents"].as_array().is_none_or(|c| c.is_empty()) {
        return error(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.contents: contents is not specified",
            Value::Null,
        );
    }
    let sw = f.stats.switches(&Value::Null, model);
    delay(&sw).await;
    match sw.status {
        Some(429) => {
            return error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.",
                json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]))
        }
        Some(503) => return error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", Value::Null),
        Some(400) => return error(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", Value::Null),
        Some(s) if s >= 500 => return error(s, "INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", Value::Null),
        _ => {}
    }
    if sw.malformed {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"candidates\": [",
        )
            .into_response();
    }
    // Inline images by Gemini's tiles; audio and documents by their length.
    let media: u64 = body["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["parts"].as_array().into_iter().flatten())
        .filter_map(|p| p.get("inlineData"))
        .map(|d| {
            let data = d["data"].as_str();
            if d["mimeType"]
                .as_str()
                .is_some_and(|m| m.starts_with("image/"))
            {
                image_tokens(MediaRule::Gemini, data, false)
            } else {
                payload_tokens(data.unwrap_or(""))
            }
        })
        .sum();
    let prompt = ((text_chars(&body["contents"]) + text_chars(&body["systemInstruction"])) as u64)
        .div_ceil(4)
        + 3
        + media;
    let response_id = format!("fake{}", uuid::Uuid::new_v4().simple());
    if sw.safety_block {
        let v = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
            "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}, "modelVersion": model, "responseId": response_id});
        return if stream {
            sse(&f, vec![v], &sw, None)
        } else {
            Json(v).into_response()
        };
    }
    let config = &body["generationConfig"];
    let (n, hit_max) = length(&sw, config["maxOutputTokens"].as_u64());
    let thoughts = if config["thinkingConfig"]["includeThoughts"] == true {
        4
    } else {
        0
    };
    let decls = body["tools"][0]["functionDeclarations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mode = config.get("toolConfig").unwrap_or(&body["toolConfig"])["functionCallingConfig"]
        ["mode"]
        .as_str()
        .unwrap_or("AUTO")
        .to_string();
    let answered = body["contents"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["parts"].as_array())
        .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()));
    let call = match mode.as_str() {
        "NONE" => None,
        "ANY" => decls.first(),
        _ if !answered => decls.first(),
        _ => None,
    };
    let mut events: Vec<Vec<Value>> = Vec::new();
    if thoughts > 0 {
        events.push(vec![json!({"text": "Thinking it over.", "thought": true})]);
    }
    let output = if let Some(d) = call {
        let args: serde_json::Map<String, Value> = d["parametersJsonSchema"]["properties"]
            .as_object()
            .map(|p| p.keys().map(|k| (k.clone(), json!("Paris"))).collect())
            .unwrap_or_default();
        events.push(vec![
            json!({"functionCall": {"name": d["name"], "args": args}}),
        ]);
        5
    } else {
        let words: Vec<String> = (0..n).map(word).collect();
        for chunk in words.chunks(4) {
            events.push(vec![json!({"text": chunk.concat()})]);
        }
        n
    };
    let finish = if hit_max && call.is_none() {
        "MAX_TOKENS"
    } else {
        "STOP"
    };
    // Every candidate is generated (and billed): the count covers them all.
    let candidates = config["candidateCount"].as_u64().unwrap_or(1).clamp(1, 8);
    let output = output * candidates + sw.overreport.unwrap_or(0);
    let usage = json!({"promptTokenCount": prompt, "candidatesTokenCount": output, "thoughtsTokenCount": thoughts,
        "totalTokenCount": prompt + output + thoughts});
    let bill = Bill {
        id: response_id.clone(),
        model: model.to_string(),
        prompt,
        completion: output + thoughts,
        finished: true,
    };
    if !stream {
        let parts: Vec<Value> = events.into_iter().flatten().collect();
        // A non-streamed answer's text is one part.
        let mut merged: Vec<Value> = Vec::new();
        for p in parts {
            match (merged.last_mut(), p["text"].as_str()) {
                (Some(last), Some(t))
                    if last["text"].is_string()
                        && last.get("thought").is_none()
                        && p.get("thought").is_none() =>
                {
                    let joined = format!("{}{t}", last["text"].as_str().unwrap_or_default());
                    last["text"] = json!(joined);
                }
                _ => merged.push(p),
            }
        }
        let all: Vec<Value> = (0..candidates)
            .map(|i| json!({"content": {"parts": merged, "role": "model"}, "finishReason": finish, "index": i}))
            .collect();
        let mut v = json!({"candidates": all, "modelVersion": model, "responseId": response_id});
        if !sw.omit_usage {
            v["usageMetadata"] = usage;
        }
        f.stats.bill(bill);
        return Json(v).into_response();
    }
    let last = events.len().saturating_sub(1);
    // Output tokens each event carries (across candidates), for the bill of a stream cut short.
    let mut per_event = Vec::new();
    let values: Vec<Value> = events
        .into_iter()
        .enumerate()
        .map(|(i, parts)| {
            let words = parts
                .iter()
                .map(|p| {
                    p["text"]
                        .as_str()
                        .map_or(1, |t| t.split_whitespace().count() as u64)
                })
                .sum::<u64>();
            per_event.push(words * candidates);
            let mut all = Vec::new();
            for index in 0..candidates {
                let mut c = json!({"content": {"parts": parts, "role": "model"}, "index": index});
                if i == last {
                    c["finishReason"] = json!(finish);
                }
                all.push(c);
            }
            let mut v = json!({"modelVersion": model, "responseId": response_id});
            if i == last {
                if !sw.omit_usage {
                    v["usageMetadata"] = usage.clone();
                }
            } else {
                v["usageMetadata"] = json!({"promptTokenCount": prompt, "totalTokenCount": prompt});
            }
            v["candidates"] = Value::Array(all);
            v
        })
        .collect();
    sse(&f, values, &sw, Some((bill, per_event)))
}

/// Google's model list.
pub(super) async fn models(
    State(f): State<Fake>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let key = super::header(&headers, "x-goog-api-key").or(q.get("key").map(String::as_str));
    if f.cfg.api_key.is_some() && !f.accepts(key) {
        return error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            Value::Null,
        );
    }
    Json(json!({"models": [
        {"name": "models/gemini-a", "displayName": "Gemini A", "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
         "supportedGenerationMethods": ["generateContent", "countTokens"]},
        {"name": "models/embedding-a", "displayName": "Embedding A", "inputTokenLimit": 2048, "outputTokenLimit": 1,
         "supportedGenerationMethods": ["embedContent"]},
    ]}))
    .into_response()
}

/// Server-sent events as Google sends them (`data: {...}` and CRLF line ends), billed (with the output
/// tokens of each event) when there is an answer.
fn sse(
    f: &Fake,
    values: Vec<Value>,
    sw: &super::Switches,
    bill: Option<(Bill, Vec<u64>)>,
) -> Response {
    let delay_each = Duration::from_millis(sw.chunk_delay_ms.unwrap_or(f.cfg.chunk_delay_ms));
    let drop_after = sw.drop_after;
    let stats = f.stats.clone();
    let (bill, per_event) = match bill {
        Some((b, e)) => (Some(b), e),
        None => (None, Vec::new()),
    };
    let stream = async_stream::stream! {
        let mut guard = StreamGuard::new(stats.clone(), bill);
        for (i, v) in values.into_iter().enumerate() {
            if !delay_each.is_zero() {
                tokio::time::sleep(delay_each).await;
            }
            if drop_after.is_some_and(|k| i as u64 >= k) {
                yield Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake upstream dropped the connection"));
                return;
            }
            guard.sent += per_event.get(i).copied().unwrap_or(0);
            yield Ok::<Bytes, std::io::Error>(Bytes::from(format!("data: {v}\r\n\r\n")));
        }
        guard.finished = true;
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("valid response")
}
