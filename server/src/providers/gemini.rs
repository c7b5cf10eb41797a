//! The `gemini` adapter: OpenAI chat requests to Google's Generative Language API (`generateContent`,
//! `streamGenerateContent?alt=sse`) and back.
//!
//! System messages become `systemInstruction`; turns become `contents` of parts (text, inline images and
//! files from data URLs, `functionCall`, `functionResponse` named after the call it answers); tools become
//! `functionDeclarations` with `toolConfig`; sampling settings, `stop`, `seed`, penalties and `n` go in
//! `generationConfig`, `response_format` as a JSON response with its schema, `reasoning` as a thinking
//! budget. Answers and stream events come back as OpenAI completions and chunks; a prompt or answer
//! blocked for safety finishes with `content_filter` (the block reason kept as the native reason).

use super::{openai_usage, ChatCall, Ctx, StreamFailure};
use crate::catalog::{Credential, Endpoint};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub fn prepare(
    client: &reqwest::Client,
    ep: &Endpoint,
    credential: Option<&Credential>,
    call: &ChatCall<'_>,
) -> Result<super::Prepared, String> {
    let (body, ctx) = request(call)?;
    let model = ep.upstream_model.trim_start_matches("models/");
    let url = if call.stream {
        format!(
            "{}/models/{model}:streamGenerateContent?alt=sse",
            ep.provider.base_url
        )
    } else {
        format!("{}/models/{model}:generateContent", ep.provider.base_url)
    };
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).expect("JSON serialises"));
    if let Some(c) = credential {
        req = req.header("x-goog-api-key", c.secret.expose());
    }
    Ok(super::Prepared { request: req, ctx })
}

/// The `generateContent` body for an OpenAI chat request.
pub fn request(call: &ChatCall<'_>) -> Result<(Value, Ctx), String> {
    let b = call.body;
    let mut ctx = Ctx::default();
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    // A tool result names its call by id; Gemini wants the function's name.
    let mut names: HashMap<String, String> = HashMap::new();
    let empty = Vec::new();
    for (i, m) in b
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        match m["role"].as_str().unwrap_or("") {
            "system" | "developer" => system.extend(parts(&m["content"], i)?),
            "user" => super::push_turn(&mut contents, "user", parts(&m["content"], i)?),
            "assistant" => {
                let mut out = parts(&m["content"], i)?;
                for (id, name, args) in super::tool_calls(m, i)? {
                    if !id.is_empty() {
                        names.insert(id.to_string(), name.to_string());
                    }
                    out.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                super::push_turn(&mut contents, "model", out);
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap_or_default();
                let name = names
                    .get(id)
                    .cloned()
                    .or_else(|| m["name"].as_str().map(str::to_string))
                    .ok_or_else(|| {
                        format!("messages[{i}]: tool_call_id {id:?} answers no earlier tool call")
                    })?;
                let text = match &m["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a.iter().filter_map(|p| p["text"].as_str()).collect(),
                    other => other.to_string(),
                };
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"content": text}),
                };
                super::push_turn(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            other => {
                return Err(format!(
                    "messages[{i}].role {other:?} is not one Gemini takes (system, developer, user, assistant, tool)"
                ))
            }
        }
    }
    if contents.is_empty() {
        return Err("Gemini needs at least one user or assistant message".into());
    }
    let mut out = Map::new();
    out.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    config.insert("maxOutputTokens".into(), json!(call.max_tokens));
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("n", "candidateCount"),
    ] {
        if let Some(v) = b.get(from).filter(|v| v.is_number()) {
            config.insert(to.into(), v.clone());
        }
    }
    let stops = super::stop_list(b.get("stop"));
    if !stops.is_empty() {
        config.insert("stopSequences".into(), Value::Array(stops));
    }
    match b.get("response_format").and_then(|r| r["type"].as_str()) {
        Some("json_schema") => {
            config.insert("responseMimeType".into(), json!("application/json"));
            let schema = &b["response_format"]["json_schema"]["schema"];
            if schema.is_object() {
                config.insert("responseJsonSchema".into(), schema.clone());
            }
        }
        Some("json_object") => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        _ => {}
    }
    if let Some(budget) = super::reasoning_budget(b, call.max_tokens) {
        ctx.hide_reasoning = b
            .get("reasoning")
            .and_then(|r| r.get("exclude"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        config.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": budget, "includeThoughts": !ctx.hide_reasoning}),
        );
    }
    out.insert("generationConfig".into(), Value::Object(config));
    let decls: Vec<Value> = b
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|t| t.get("function").is_some())
        .map(|t| {
            let f = &t["function"];
            let mut d = json!({"name": f["name"]});
            if let Some(desc) = f["description"].as_str() {
                d["description"] = json!(desc);
            }
            if f["parameters"].is_object() {
                d["parametersJsonSchema"] = f["parameters"].clone();
            }
            d
        })
        .collect();
    if !decls.is_empty() {
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let mode = match b.get("tool_choice") {
            Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
            Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
            Some(Value::String(s)) if s == "auto" => Some(json!({"mode": "AUTO"})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f["name"].as_str())
                .map(|n| json!({"mode": "ANY", "allowedFunctionNames": [n]})),
            _ => None,
        };
        if let Some(m) = mode {
            out.insert("toolConfig".into(), json!({"functionCallingConfig": m}));
        }
    }
    Ok((Value::Object(out), ctx))
}

/// OpenAI message content as Gemini parts.
fn parts(content: &Value, i: usize) -> Result<Vec<Value>, String> {
    use super::Part;
    let mut out = Vec::new();
    for (j, p) in super::content_parts(content, i)?.iter().enumerate() {
        let part = match super::part(p, i, j)? {
            None => continue,
            Some(Part::Text(t)) => json!({"text": t}),
            Some(Part::Image(url)) => {
                let (media, data) = super::data_url(url).ok_or_else(|| {
                    format!("messages[{i}].content[{j}]: Gemini takes images as data: URLs")
                })?;
                json!({"inlineData": {"mimeType": media, "data": data}})
            }
            Some(Part::Other("input_audio")) => {
                let a = &p["input_audio"];
                json!({"inlineData": {"mimeType": format!("audio/{}", a["format"].as_str().unwrap_or("wav")), "data": a["data"]}})
            }
            Some(Part::Other("file")) => {
                let (media, data) = p["file"]["file_data"]
                    .as_str()
                    .and_then(super::data_url)
                    .ok_or_else(|| {
                        format!("messages[{i}].content[{j}]: Gemini takes files as file_data data: URLs")
                    })?;
                json!({"inlineData": {"mimeType": media, "data": data}})
            }
            Some(Part::Other(other)) => return Err(super::refused_part(other, i, j, "Gemini")),
        };
        out.push(part);
    }
    Ok(out)
}

fn usage(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let thoughts = n("thoughtsTokenCount");
    let mut out = openai_usage(
        n("promptTokenCount") + n("toolUsePromptTokenCount"),
        n("candidatesTokenCount") + thoughts,
        n("cachedContentTokenCount"),
        0,
        thoughts,
    );
    // Audio is priced apart from text: its share of the prompt, per modality.
    let audio: u64 = u["promptTokensDetails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["modality"] == "AUDIO")
        .filter_map(|d| d["tokenCount"].as_u64())
        .sum();
    if audio > 0 {
        out["prompt_tokens_details"]["audio_tokens"] = audio.into();
    }
    out
}

/// What one candidate says: text, reasoning, tool calls, finish.
struct Said {
    text: String,
    reasoning: String,
    calls: Vec<Value>,
    native: Option<String>,
}

/// The candidates of an answer or stream event, each with its index (`candidateCount` asks for more
/// than one; each is generated and billed); a blocked prompt is one candidate carrying the block reason.
fn candidates(v: &Value, calls_before: &dyn Fn(u64) -> usize) -> Vec<(u64, Said)> {
    let all = v["candidates"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if all.is_empty() {
        let native = v["promptFeedback"]["blockReason"]
            .as_str()
            .map(str::to_string);
        return vec![(
            0,
            Said {
                text: String::new(),
                reasoning: String::new(),
                calls: Vec::new(),
                native,
            },
        )];
    }
    all.iter()
        .enumerate()
        .map(|(i, c)| {
            let index = c["index"].as_u64().unwrap_or(i as u64);
            (index, read_candidate(c, calls_before(index)))
        })
        .collect()
}

fn read_candidate(c: &Value, calls_before: usize) -> Said {
    let mut said = Said {
        text: String::new(),
        reasoning: String::new(),
        calls: Vec::new(),
        native: c["finishReason"].as_str().map(str::to_string),
    };
    for p in c["content"]["parts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        if let Some(f) = p.get("functionCall") {
            let n = calls_before + said.calls.len();
            let id = f["id"]
                .as_str()
                .map_or_else(|| format!("call_{n}"), str::to_string);
            said.calls
                .push(json!({"index": n, "id": id, "type": "function",
                "function": {"name": f["name"], "arguments": f["args"].to_string()}}));
        } else if let Some(t) = p["text"].as_str() {
            if p["thought"] == true {
                said.reasoning.push_str(t);
            } else {
                said.text.push_str(t);
            }
        }
    }
    said
}

/// Gemini's finish (and block) reasons as OpenAI's; tool calls finish as `tool_calls`.
fn finish(native: &str, has_calls: bool) -> &'static str {
    match native {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "OTHER" => "content_filter",
        "MALFORMED_FUNCTION_CALL" => "error",
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// A complete `generateContent` answer as an OpenAI chat completion.
pub fn answer(ctx: &Ctx, v: Value) -> Result<Value, String> {
    if !(v["candidates"].is_array() || v["promptFeedback"].is_object()) {
        return Err("response has neither candidates nor prompt feedback".into());
    }
    let choices: Vec<Value> = candidates(&v, &|_| 0)
        .into_iter()
        .map(|(index, said)| {
            let native = said.native.clone().unwrap_or_else(|| "STOP".into());
            let mut calls = said.calls;
            for c in calls.iter_mut() {
                if let Some(o) = c.as_object_mut() {
                    o.remove("index");
                }
            }
            let mut message = json!({"role": "assistant", "content": if said.text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(said.text) }});
            if !calls.is_empty() {
                message["tool_calls"] = Value::Array(calls.clone());
            }
            if !ctx.hide_reasoning && !said.reasoning.is_empty() {
                message["reasoning"] = json!(said.reasoning);
            }
            json!({"index": index, "message": message, "finish_reason": finish(&native, !calls.is_empty()),
                "native_finish_reason": native, "logprobs": null})
        })
        .collect();
    Ok(json!({
        "id": v["responseId"].as_str().map_or_else(|| format!("gemini-{}", crate::store::new_id()), str::to_string),
        "object": "chat.completion",
        "created": crate::store::now_ms() / 1000,
        "model": v["modelVersion"],
        "choices": choices,
        "usage": usage(&v["usageMetadata"]),
    }))
}

/// A `streamGenerateContent` stream being turned into chunks. Gemini has no end marker: the stream is
/// complete when its body ends after a finish reason.
pub struct StreamState {
    ctx: Ctx,
    id: Option<String>,
    model: Value,
    created: i64,
    usage: Option<Value>,
    /// Per candidate: tool calls so far, whether it started and whether it finished.
    calls: std::collections::BTreeMap<u64, usize>,
    started: std::collections::BTreeSet<u64>,
    finished: std::collections::BTreeSet<u64>,
}

impl StreamState {
    pub fn new(ctx: Ctx) -> StreamState {
        StreamState {
            ctx,
            id: None,
            model: Value::Null,
            created: crate::store::now_ms() / 1000,
            usage: None,
            calls: Default::default(),
            started: Default::default(),
            finished: Default::default(),
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<(&str, &str)>) -> Value {
        let mut choice =
            json!({"index": index, "delta": delta, "finish_reason": null, "logprobs": null});
        if let Some((f, native)) = finish {
            choice["finish_reason"] = json!(f);
            choice["native_finish_reason"] = json!(native);
        }
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [choice]})
    }

    pub fn feed(&mut self, data: &str, out: &mut Vec<Value>) -> Result<bool, StreamFailure> {
        let v = super::parse_event(data)?;
        super::error_event(&v, data)?;
        if self.id.is_none() {
            self.id = Some(v["responseId"].as_str().map_or_else(
                || format!("gemini-{}", crate::store::new_id()),
                str::to_string,
            ));
            self.model = v["modelVersion"].clone();
        }
        if v["usageMetadata"].is_object() {
            self.usage = Some(v["usageMetadata"].clone());
        }
        let calls = self.calls.clone();
        for (i, said) in candidates(&v, &|i| calls.get(&i).copied().unwrap_or(0)) {
            if self.started.insert(i) {
                out.push(self.chunk(i, json!({"role": "assistant", "content": ""}), None));
            }
            if !said.reasoning.is_empty() && !self.ctx.hide_reasoning {
                out.push(self.chunk(i, json!({"reasoning": said.reasoning}), None));
            }
            if !said.text.is_empty() {
                out.push(self.chunk(i, json!({"content": said.text}), None));
            }
            if !said.calls.is_empty() {
                *self.calls.entry(i).or_default() += said.calls.len();
                out.push(self.chunk(i, json!({"tool_calls": said.calls}), None));
            }
            if let Some(native) = said.native {
                if self.finished.insert(i) {
                    let f = finish(&native, self.calls.get(&i).is_some_and(|n| *n > 0));
                    out.push(self.chunk(i, json!({}), Some((f, &native))));
                }
            }
        }
        Ok(false)
    }

    /// The usage of the last chunk that carried one (Gemini reports a running count).
    pub fn partial_usage(&self) -> Option<Value> {
        self.usage.as_ref().map(usage)
    }

    /// The body ended: the usage chunk, if the stream finished. `true` when it did.
    pub fn finish(&mut self, out: &mut Vec<Value>) -> bool {
        // Complete when every candidate that began has its finish reason.
        if self.finished.is_empty() || self.started.iter().any(|i| !self.finished.contains(i)) {
            return false;
        }
        if let Some(u) = self.usage.take() {
            out.push(
                json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage(&u)}),
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProviderKind;

    #[test]
    fn snapshots() {
        super::super::snapshots::check_adapter(ProviderKind::Gemini, "gemini", |_, call| {
            request(call)
        });
    }
}
