//! The fake's AWS Bedrock runtime, under `/bedrock` (a provider's base URL is
//! `http://<fake>/bedrock?region=<region>`): `POST /bedrock/model/{modelId}/converse` and
//! `/converse-stream` (answers in AWS's binary event stream: `messageStart`, `contentBlockStart`,
//! `contentBlockDelta`, `contentBlockStop`, `messageStop`, `metadata`, each with the random `p` padding
//! AWS adds, and exceptions as exception frames), and the control plane's `GET
//! /bedrock/foundation-models`. Requests must be signed with SigV4 (service `bedrock`): when the fake
//! knows keys, a key written `ACCESS_KEY_ID:SECRET` is looked up by its access key ID and the signature is
//! computed again from what arrived (method, path, signed headers, body, date), so a request changed after
//! signing, a wrong secret or a stale date is refused as AWS refuses it; a bearer token is checked as a
//! Bedrock API key. Errors are AWS's: `{"message"}` with `x-amzn-ErrorType` and the documented statuses.

use super::{
    anthropic::example, delay, image_tokens, length, payload_tokens, text_chars, word, Bill, Fake,
    MediaRule, StreamGuard,
};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use serde_json::{json, Value};
use std::{sync::atomic::Ordering, time::Duration};

/// AWS's error: the status, `{"message"}`, and the error type in `x-amzn-ErrorType`.
fn error(status: u16, kind: &str, message: &str) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(json!({"message": message})),
    )
        .into_response();
    let h = r.headers_mut();
    if let Ok(v) = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/").parse() {
        h.insert("x-amzn-errortype", v);
    }
    h.insert(
        "x-amzn-requestid",
        "9e5b2f9c-0000-4000-8000-fakebedrock01"
            .parse()
            .expect("static header"),
    );
    r
}

/// Checks the request's SigV4 signature (or bearer API key) as AWS would; the refusal when it fails.
fn check_auth(
    f: &Fake,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let authz = super::header(headers, "authorization").unwrap_or_default();
    if let Some(token) = authz.strip_prefix("Bearer ") {
        return if f.accepts(Some(token)) {
            None
        } else {
            Some(error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ))
        };
    }
    let Some(fields) = authz.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Some(error(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let field = |name: &str| {
        fields
            .split(", ")
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_default()
    };
    let scope: Vec<&str> = field("Credential").split('/').collect();
    let (access, region) = match scope.as_slice() {
        [access, _date, region, "bedrock", "aws4_request"] => (*access, *region),
        _ => {
            return Some(error(
                403,
                "IncompleteSignatureException",
                "Credential should be scoped to a valid region and the bedrock service.",
            ))
        }
    };
    let date = super::header(headers, "x-amz-date").unwrap_or_default();
    let Ok(at) = time::PrimitiveDateTime::parse(
        date,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    ) else {
        return Some(error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let at: std::time::SystemTime = at.assume_utc().into();
    let skew = at
        .duration_since(std::time::SystemTime::now())
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > Duration::from_secs(300) {
        return Some(error(
            403,
            "InvalidSignatureException",
            "Signature expired: the request's date is more than 5 minutes from the server's time.",
        ));
    }
    // The secret for this access key ID, among the keys the fake knows.
    let known = f.cfg.api_key.iter().chain(&f.cfg.more_keys).find_map(|k| {
        let mut parts = k.splitn(3, ':');
        (parts.next() == Some(access)).then(|| (k.as_str(), parts.next(), parts.next()))
    });
    let (key, secret, token) = match known {
        Some((key, Some(secret), token)) => (key, secret, token),
        _ if f.cfg.api_key.is_none() => {
            // A fake without keys (the demo) takes any well-formed signature.
            f.accepts(Some(access));
            return None;
        }
        _ => {
            return Some(error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ))
        }
    };
    if token.is_some() && super::header(headers, "x-amz-security-token") != token {
        return Some(error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    let signed: Vec<&str> = field("SignedHeaders").split(';').collect();
    let pairs: Vec<(&str, &str)> = signed
        .iter()
        .filter(|h| !matches!(**h, "authorization"))
        .filter_map(|h| Some((*h, super::header(headers, h)?)))
        .collect();
    let host = super::header(headers, "host").unwrap_or_default();
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let identity = aws_credential_types::Credentials::new(
        access,
        secret,
        token.map(str::to_string),
        None,
        "fake",
    )
    .into();
    let expected = (|| {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("bedrock")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .ok()?
            .into();
        let req = SignableRequest::new(
            method.as_str(),
            url.as_str(),
            pairs.iter().copied(),
            SignableBody::Bytes(body),
        )
        .ok()?;
        Some(sign(req, &params).ok()?.signature().to_string())
    })();
    if expected.as_deref() != Some(field("Signature")) || !signed.contains(&"host") {
        return Some(error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    f.accepts(Some(key));
    None
}

/// The control plane's foundation-model list.
pub(super) async fn foundation_models(
    State(f): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = check_auth(&f, &method, &uri, &headers, b"") {
        return refused;
    }
    let model = |id: &str, name: &str, provider: &str| {
        json!({"modelArn": format!("arn:aws:bedrock:us-east-1::foundation-model/{id}"), "modelId": id,
            "modelName": name, "providerName": provider, "inputModalities": ["TEXT", "IMAGE"],
            "outputModalities": ["TEXT"], "responseStreamingSupported": true,
            "customizationsSupported": [], "inferenceTypesSupported": ["ON_DEMAND"],
            "modelLifecycle": {"status": "ACTIVE"}})
    };
    Json(json!({"modelSummaries": [
        model("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", "Anthropic"),
        model("meta.llama3-1-70b-instruct-v1:0", "Llama 3.1 70B Instruct", "Meta"),
    ]}))
    .into_response()
}

/// One event-stream frame.
fn frame(kind: &str, name: &str, payload: &Value) -> Bytes {
    let type_header = if kind == "exception" {
        ":exception-type"
    } else {
        ":event-type"
    };
    let m = Message::new_from_parts(
        vec![
            Header::new(type_header, HeaderValue::String(name.to_string().into())),
            Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ),
            Header::new(
                ":message-type",
                HeaderValue::String(kind.to_string().into()),
            ),
        ],
        payload.to_string().into_bytes(),
    );
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut out).expect("a small message encodes");
    Bytes::from(out)
}

/// An event with AWS's random-length padding.
fn event(name: &str, mut payload: Value, n: usize) -> Bytes {
    payload["p"] =
        json!("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[..(n * 7) % 50 + 1]);
    frame("event", name, &payload)
}

/// Tokens of the prompt before its last `cachePoint` (0 when none), and a key for that prefix.
fn cached_prefix(body: &Value) -> (u64, u64) {
    let mut blocks: Vec<&Value> = body["system"].as_array().into_iter().flatten().collect();
    blocks.extend(body["toolConfig"]["tools"].as_array().into_iter().flatten());
    for m in body["messages"].as_array().into_iter().flatten() {
        blocks.extend(m["content"].as_array().into_iter().flatten());
    }
    let (mut chars, mut prefix, mut key) = (0usize, 0usize, 0u64);
    for b in blocks {
        chars += text_chars(b) + b.get("toolSpec").map_or(0, |t| t.to_string().len());
        if b.get("cachePoint").is_some() {
            prefix = chars;
            key = (chars as u64) ^ 0xbed0_0000;
        }
    }
    ((prefix as u64).div_ceil(4), key)
}

pub(super) async fn converse(
    State(f): State<Fake>,
    Path((model, call)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    f.stats.requests.fetch_add(1, Ordering::Relaxed);
    let stream = match call.as_str() {
        "converse" => false,
        "converse-stream" => true,
        _ => return error(404, "UnknownOperationException", "Unknown operation"),
    };
    if let Some(refused) = check_auth(&f, &method, &uri, &headers, &body) {
        return refused;
    }
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return error(
                400,
                "SerializationException",
                "Unable to parse request body as JSON.",
            )
        }
    };
    *f.stats.last_body.lock() = Some(body.clone());
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(
            400,
            "ValidationException",
            "The model returned the following errors: messages: field required",
        );
    };
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m["role"].as_str(), Some("user" | "assistant")) {
            return error(400, "ValidationException", &format!("1 validation error detected: Value at 'messages.{}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]", i + 1));
        }
        let tool_block = m["content"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b.get("toolUse").is_some() || b.get("toolResult").is_some());
        if tool_block && body.get("toolConfig").is_none() {
            return error(400, "ValidationException", "The toolConfig field must be defined when using toolUse and toolResult content blocks.");
        }
    }
    let sw = f.stats.switches(&Value::Null, &model);
    delay(&sw).await;
    match sw.status {
        Some(429) => {
            return error(
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            )
        }
        Some(400) => {
            return error(
                400,
                "ValidationException",
                "Input is too long for requested model.",
            )
        }
        Some(401 | 403) => {
            return error(
                403,
                "AccessDeniedException",
                "You don't have access to the model with the specified model ID.",
            )
        }
        Some(503 | 529) => {
            return error(
                503,
                "ServiceUnavailableException",
                "Bedrock is unable to process your request.",
            )
        }
        Some(s) if s >= 500 => {
            return error(
                500,
                "InternalServerException",
                "The server encountered an internal error while processing the request.",
            )
        }
        _ => {}
    }
    if sw.malformed && !stream {
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"output\": {\"message\": {\"content\": [",
        )
            .into_response();
    }

    // What the model says.
    let inference = &body["inferenceConfig"];
    let (n, hit_max) = length(&sw, inference["maxTokens"].as_u64());
    let mut words: Vec<String> = (0..n).map(word).collect();
    let mut stop = if hit_max { "max_tokens" } else { "end_turn" };
    for s in inference["stopSequences"].as_array().into_iter().flatten() {
        if let Some(at) = s
            .as_str()
            .and_then(|s| words.iter().position(|w| w.trim() == s))
        {
            words.truncate(at);
            stop = "stop_sequence";
        }
    }
    let tools: Vec<&Value> = body["toolConfig"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("toolSpec"))
        .collect();
    let choice = &body["toolConfig"]["toolChoice"];
    let answered_tool = messages
        .last()
        .and_then(|m| m["content"].as_array())
        .is_some_and(|c| c.iter().any(|b| b.get("toolResult").is_some()));
    let call: Option<&Value> = if let Some(name) = choice["tool"]["name"].as_str() {
        tools.iter().copied().find(|t| t["name"] == name)
    } else if choice.get("any").is_some() || !answered_tool {
        tools.first().copied()
    } else {
        None
    };
    let thinking = body["additionalModelRequestFields"]["thinking"]["type"] == "enabled";
    let mut content = Vec::new();
    let mut output = 0u64;
    if thinking {
        content.push(json!({"reasoningContent": {"reasoningText": {"text": "Thinking it over.", "signature": "fake-bedrock-signature-0001"}}}));
        output += 3;
    }
    if let Some(tool) = call {
        if choice.get("tool").is_none() && choice.get("any").is_none() {
            content.push(json!({"text": "Let me check."}));
            output += 3;
        }
        let input = example(&tool["inputSchema"]["json"]);
        output += (input.to_string().len() as u64).div_ceil(4);
        content.push(json!({"toolUse": {"toolUseId": format!("tooluse_{}", uuid::Uuid::new_v4().simple()), "name": tool["name"], "input": input}}));
        stop = "tool_use";
    } else {
        output += words.len() as u64;
        content.push(json!({"text": words.concat()}));
    }
    let total = (text_chars(&body["system"])
        + text_chars(&body["messages"])
        + tools.iter().map(|t| t.to_string().len()).sum::<usize>()) as u64;
    // Images as Claude counts them, documents by their length.
    let media: u64 = messages
        .iter()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .map(|b| {
            if let Some(img) = b.get("image") {
                image_tokens(MediaRule::Claude, img["source"]["bytes"].as_str(), false)
            } else if let Some(doc) = b.get("document") {
                payload_tokens(doc["source"]["bytes"].as_str().unwrap_or(""))
            } else {
                0
            }
        })
        .sum();
    let prompt = total.div_ceil(4) + 3 + media;
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
    let usage = json!({"inputTokens": prompt - read - write, "outputTokens": output,
        "totalTokens": prompt + output, "cacheReadInputTokens": read, "cacheWriteInputTokens": write});
    let bill = Bill {
        id: format!("bedrock-{}", uuid::Uuid::new_v4().simple()),
        model: model.clone(),
        prompt,
        completion: output,
        finished: true,
    };
    if !stream {
        f.stats.bill(bill);
        return Json(json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 120},
        }))
        .into_response();
    }
    let delay_each = Duration::from_millis(sw.chunk_delay_ms.unwrap_or(f.cfg.chunk_delay_ms));
    let stats = f.stats.clone();
    let out = async_stream::stream! {
        let mut guard = StreamGuard::new(stats.clone(), Some(bill));
        yield Ok::<Bytes, std::io::Error>(event("messageStart", json!({"role": "assistant"}), 0));
        if sw.malformed {
            // A frame whose checksum does not match its bytes.
            let mut broken = frame("event", "contentBlockDelta", &json!({"contentBlockIndex": 0, "delta": {"text": "x"}})).to_vec();
            let last = broken.len() - 1;
            broken[last] ^= 0xff;
            yield Ok(Bytes::from(broken));
            return;
        }
        if let Some(name) = &sw.stream_exception {
            yield Ok(frame("exception", name, &json!({"message": "Too many requests, please wait before trying again."})));
            return;
        }
        let mut sent = 0u64;
        for (index, block) in content.iter().enumerate() {
            let mut deltas: Vec<Value> = Vec::new();
            if let Some(r) = block.get("reasoningContent") {
                deltas.push(json!({"reasoningContent": {"text": r["reasoningText"]["text"]}}));
                deltas.push(json!({"reasoningContent": {"signature": r["reasoningText"]["signature"]}}));
            } else if let Some(u) = block.get("toolUse") {
                yield Ok(event("contentBlockStart", json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": u["toolUseId"], "name": u["name"]}}}), index));
                let s = u["input"].to_string();
                let mid = s.char_indices().nth(s.chars().count() / 2).map_or(0, |(i, _)| i);
                deltas.push(json!({"toolUse": {"input": &s[..mid]}}));
                deltas.push(json!({"toolUse": {"input": &s[mid..]}}));
            } else if block["text"] == "Let me check." {
                deltas.push(json!({"text": "Let me check."}));
            } else {
                deltas.extend(words.iter().map(|w| json!({"text": w})));
            }
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
                yield Ok(event("contentBlockDelta", json!({"contentBlockIndex": index, "delta": d}), sent as usize));
            }
            yield Ok(event("contentBlockStop", json!({"contentBlockIndex": index}), index));
        }
        yield Ok(event("messageStop", json!({"stopReason": stop}), 3));
        let mut meta = json!({"usage": usage, "metrics": {"latencyMs": 120}});
        if sw.omit_usage {
            meta = json!({"metrics": {"latencyMs": 120}});
        }
        yield Ok(event("metadata", meta, 5));
        guard.finished = true;
    };
    Response::builder()
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("x-amzn-requestid", "9e5b2f9c-0000-4000-8000-fakebedrock02")
        .body(Body::from_stream(out))
        .expect("valid response")
}
