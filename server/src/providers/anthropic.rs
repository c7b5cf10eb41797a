//! The `anthropic` adapter: OpenAI chat requests to Anthropic's Messages API and back.
//!
//! Requests: system and developer messages become `system`; user, assistant and tool messages become
//! alternating turns of content blocks (text, images from data or https URLs, PDFs, `tool_use`,
//! `tool_result`), keeping `cache_control` where the client put it; tools, `tool_choice`,
//! `parallel_tool_calls`, `stop`, `top_k`, `user`; `response_format` becomes a forced tool whose input is
//! the answer; `reasoning` becomes `thinking` with a budget. Answers and stream events come back as
//! OpenAI chat completions and chunks: text, tool calls, reasoning (with signatures, so a conversation
//! with thinking and tools can continue), the native stop reason, and usage with the prompt-cache reads
//! and writes counted in `prompt_tokens` (Anthropic counts them apart).

use super::{openai_usage, ChatCall, Ctx, StreamFailure};
use crate::catalog::{Credential, Endpoint};
use serde_json::{json, Map, Value};

pub const VERSION: &str = "2023-06-01";
/// The tool a `response_format` is sent as, when its schema has no name.
const JSON_TOOL: &str = "json_output";
/// The least thinking budget Anthropic accepts.
const MIN_BUDGET: u64 = 1024;

pub fn prepare(
    client: &reqwest::Client,
    ep: &Endpoint,
    credential: Option<&Credential>,
    call: &ChatCall<'_>,
) -> Result<super::Prepared, String> {
    let (body, ctx) = request(&ep.upstream_model, call)?;
    let mut req = client
        .post(format!("{}/messages", ep.provider.base_url))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("anthropic-version", VERSION)
        .body(serde_json::to_vec(&body).expect("JSON serialises"));
    if let Some(c) = credential {
        req = req.header("x-api-key", c.secret.expose());
    }
    Ok(super::Prepared { request: req, ctx })
}

/// The Messages API body for an OpenAI chat request.
pub fn request(model: &str, call: &ChatCall<'_>) -> Result<(Value, Ctx), String> {
    let b = call.body;
    let mut ctx = Ctx::default();
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    let empty = Vec::new();
    let messages = b
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        match role {
            "system" | "developer" => system.extend(blocks(&m["content"], i)?),
            "user" => super::push_turn(&mut turns, "user", blocks(&m["content"], i)?),
            "assistant" => {
                let mut out = Vec::new();
                if let Some(details) = m.get("reasoning_details").and_then(Value::as_array) {
                    out.extend(details.iter().filter_map(thinking_block));
                }
                out.extend(blocks(&m["content"], i)?);
                for (id, name, input) in super::tool_calls(m, i)? {
                    out.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
                }
                super::push_turn(&mut turns, "assistant", out);
            }
            "tool" => {
                let content = match &m["content"] {
                    Value::String(s) => Value::String(s.clone()),
                    other => Value::Array(blocks(other, i)?),
                };
                super::push_turn(
                    &mut turns,
                    "user",
                    vec![json!({
                        "type": "tool_result",
                        "tool_use_id": m["tool_call_id"].as_str().unwrap_or_default(),
                        "content": content,
                    })],
                );
            }
            other => {
                return Err(format!(
                    "messages[{i}].role {other:?} is not one Anthropic takes (system, developer, user, assistant, tool)"
                ))
            }
        }
    }
    if turns.is_empty() {
        return Err("Anthropic needs at least one user or assistant message".into());
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("max_tokens".into(), json!(call.max_tokens));
    if call.stream {
        out.insert("stream".into(), json!(true));
    }
    // Anthropic's temperature runs 0–1 where OpenAI's runs 0–2.
    if let Some(t) = b.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    for k in ["top_p", "top_k"] {
        if let Some(v) = b.get(k).filter(|v| v.is_number()) {
            out.insert(k.into(), v.clone());
        }
    }
    let stops = super::stop_list(b.get("stop"));
    if !stops.is_empty() {
        out.insert("stop_sequences".into(), Value::Array(stops));
    }
    if let Some(u) = b.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    let mut tools: Vec<Value> = b
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|t| t["type"] == "function" || t.get("function").is_some())
        .map(|t| {
            let f = &t["function"];
            let mut tool = json!({
                "name": f["name"],
                "input_schema": if f["parameters"].is_object() { f["parameters"].clone() } else { json!({"type": "object", "properties": {}}) },
            });
            if let Some(d) = f["description"].as_str() {
                tool["description"] = json!(d);
            }
            if let Some(c) = t.get("cache_control") {
                tool["cache_control"] = c.clone();
            }
            tool
        })
        .collect();
    let parallel = b.get("parallel_tool_calls").and_then(Value::as_bool);
    let mut choice = match b.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f["name"].as_str())
            .map(|n| json!({"type": "tool", "name": n})),
        _ => None,
    };
    match b.get("response_format").and_then(|r| r["type"].as_str()) {
        Some("json_schema") => {
            let spec = &b["response_format"]["json_schema"];
            let name = spec["name"].as_str().unwrap_or(JSON_TOOL).to_string();
            let schema = if spec["schema"].is_object() {
                spec["schema"].clone()
            } else {
                json!({"type": "object"})
            };
            tools.push(json!({"name": name, "description": "Answer with this tool: its input is the response, in the requested JSON schema.", "input_schema": schema}));
            if choice.is_none() || tools.len() == 1 {
                choice = Some(json!({"type": "tool", "name": name}));
            }
            ctx.json_tool = Some(name);
        }
        Some("json_object") => {
            tools.push(json!({"name": JSON_TOOL, "description": "Answer with this tool: its input is the response, a JSON object.", "input_schema": {"type": "object"}}));
            if choice.is_none() || tools.len() == 1 {
                choice = Some(json!({"type": "tool", "name": JSON_TOOL}));
            }
            ctx.json_tool = Some(JSON_TOOL.into());
        }
        _ => {}
    }
    if parallel == Some(false) && !tools.is_empty() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    if let Some(budget) = super::reasoning_budget(b, call.max_tokens) {
        out.insert(
            "thinking".into(),
            thinking(budget, call.max_tokens, "at Anthropic")?,
        );
        // Thinking takes no sampling settings but the defaults.
        out.remove("temperature");
        out.remove("top_k");
        ctx.hide_reasoning = b
            .get("reasoning")
            .and_then(|r| r.get("exclude"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    Ok((Value::Object(out), ctx))
}

/// Claude's `thinking` for a reasoning budget: at least the least Claude accepts, and below
/// `max_tokens` (of which it is a part); an error naming `where` when `max_tokens` leaves no room.
pub fn thinking(budget: u64, max_tokens: u64, place: &str) -> Result<Value, String> {
    let budget = budget.max(MIN_BUDGET).min(max_tokens.saturating_sub(1));
    if budget < MIN_BUDGET {
        return Err(format!(
            "reasoning needs max_tokens above {MIN_BUDGET} {place} (the thinking budget is part of max_tokens); got {max_tokens}"
        ));
    }
    Ok(json!({"type": "enabled", "budget_tokens": budget}))
}

/// A reasoning detail (as answered before) back into a thinking block.
fn thinking_block(d: &Value) -> Option<Value> {
    match d["type"].as_str()? {
        "reasoning.text" => Some(json!({
            "type": "thinking",
            "thinking": d["text"].as_str().unwrap_or_default(),
            "signature": d["signature"].as_str().unwrap_or_default(),
        })),
        "reasoning.encrypted" => Some(json!({"type": "redacted_thinking", "data": d["data"]})),
        _ => None,
    }
}

/// OpenAI message content as Anthropic content blocks.
fn blocks(content: &Value, i: usize) -> Result<Vec<Value>, String> {
    use super::Part;
    let mut out = Vec::new();
    for (j, p) in super::content_parts(content, i)?.iter().enumerate() {
        let mut block = match super::part(p, i, j)? {
            None => continue,
            Some(Part::Text(t)) => json!({"type": "text", "text": t}),
            Some(Part::Image(url)) => match super::data_url(url) {
                Some((media, data)) => {
                    json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
                }
                None if url.starts_with("https://") || url.starts_with("http://") => {
                    json!({"type": "image", "source": {"type": "url", "url": url}})
                }
                None => {
                    return Err(format!(
                    "messages[{i}].content[{j}]: an image must be a data: URL or an http(s) URL"
                ))
                }
            },
            Some(Part::Other("file")) => {
                let data = p["file"]["file_data"].as_str().and_then(super::data_url);
                match data {
                    Some((media, data)) => {
                        json!({"type": "document", "source": {"type": "base64", "media_type": media, "data": data}})
                    }
                    None => {
                        return Err(format!(
                        "messages[{i}].content[{j}]: Anthropic takes files as file_data data: URLs"
                    ))
                    }
                }
            }
            Some(Part::Other(other)) => return Err(super::refused_part(other, i, j, "Anthropic")),
        };
        if let Some(c) = p.get("cache_control") {
            block["cache_control"] = c.clone();
        }
        out.push(block);
    }
    Ok(out)
}

/// Anthropic's usage as OpenAI's (cache reads and writes counted in the prompt).
fn usage(u: &Value, output: u64) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let (read, write) = (
        n("cache_read_input_tokens"),
        n("cache_creation_input_tokens"),
    );
    openai_usage(n("input_tokens") + read + write, output, read, write, 0)
}

/// A complete Messages API answer as an OpenAI chat completion.
pub fn answer(ctx: &Ctx, v: Value) -> Result<Value, String> {
    if v["type"] != "message" || !v["content"].is_array() {
        return Err("response is not a Messages API message".into());
    }
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut details = Vec::new();
    let mut tool_calls = Vec::new();
    let mut json_answer = false;
    for b in v["content"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
            Some("tool_use") if ctx.json_tool.as_deref() == b["name"].as_str() => {
                text.push_str(&b["input"].to_string());
                json_answer = true;
            }
            Some("tool_use") => tool_calls.push(json!({
                "id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()},
            })),
            Some("thinking") => {
                let t = b["thinking"].as_str().unwrap_or_default();
                reasoning.push_str(t);
                details.push(json!({"type": "reasoning.text", "text": t, "signature": b["signature"], "format": "anthropic-claude-v1", "index": details.len()}));
            }
            Some("redacted_thinking") => details.push(json!({"type": "reasoning.encrypted", "data": b["data"], "format": "anthropic-claude-v1", "index": details.len()})),
            _ => {}
        }
    }
    let native = match v["stop_reason"].as_str() {
        Some("tool_use") if json_answer && tool_calls.is_empty() => "end_turn",
        Some(s) => s,
        None => "end_turn",
    };
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !ctx.hide_reasoning && !details.is_empty() {
        message["reasoning"] = json!(reasoning);
        message["reasoning_details"] = Value::Array(details);
    }
    let output = v["usage"]["output_tokens"].as_u64().unwrap_or(0);
    Ok(json!({
        "id": v["id"],
        "object": "chat.completion",
        "created": crate::store::now_ms() / 1000,
        "model": v["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": native, "logprobs": null}],
        "usage": usage(&v["usage"], output),
    }))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Text,
    Tool(usize),
    Json,
    Thinking,
    Other,
}

/// A Messages API stream being turned into chunks.
pub struct StreamState {
    ctx: Ctx,
    id: String,
    model: String,
    created: i64,
    input: Value,
    output: u64,
    blocks: Vec<Block>,
    tools: usize,
    json_answer: bool,
}

impl StreamState {
    pub fn new(ctx: Ctx) -> StreamState {
        StreamState {
            ctx,
            id: String::new(),
            model: String::new(),
            created: crate::store::now_ms() / 1000,
            input: json!({}),
            output: 0,
            blocks: Vec::new(),
            tools: 0,
            json_answer: false,
        }
    }

    /// The prompt as counted when the message started, and the output counted so far.
    pub fn partial_usage(&self) -> Option<Value> {
        self.input
            .get("input_tokens")
            .map(|_| usage(&self.input, self.output))
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    }

    pub fn feed(&mut self, data: &str, out: &mut Vec<Value>) -> Result<bool, StreamFailure> {
        let v = super::parse_event(data)?;
        let index = v["index"].as_u64().unwrap_or(0) as usize;
        match v["type"].as_str().unwrap_or("") {
            "message_start" => {
                let m = &v["message"];
                self.id = m["id"].as_str().unwrap_or_default().to_string();
                self.model = m["model"].as_str().unwrap_or_default().to_string();
                self.input = m["usage"].clone();
                self.output = m["usage"]["output_tokens"].as_u64().unwrap_or(0);
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let b = &v["content_block"];
                let kind = match b["type"].as_str() {
                    Some("text") => Block::Text,
                    Some("tool_use") if self.ctx.json_tool.as_deref() == b["name"].as_str() => {
                        self.json_answer = true;
                        Block::Json
                    }
                    Some("tool_use") => {
                        let n = self.tools;
                        self.tools += 1;
                        out.push(self.chunk(
                            json!({"tool_calls": [{"index": n, "id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": ""}}]}),
                            None,
                        ));
                        Block::Tool(n)
                    }
                    Some("thinking") => Block::Thinking,
                    Some("redacted_thinking") => {
                        if !self.ctx.hide_reasoning {
                            out.push(self.chunk(json!({"reasoning_details": [{"type": "reasoning.encrypted", "data": b["data"], "format": "anthropic-claude-v1", "index": index}]}), None));
                        }
                        Block::Other
                    }
                    _ => Block::Other,
                };
                if self.blocks.len() <= index {
                    self.blocks.resize(index + 1, Block::Other);
                }
                self.blocks[index] = kind;
                if kind == Block::Text {
                    if let Some(t) = b["text"].as_str().filter(|t| !t.is_empty()) {
                        out.push(self.chunk(json!({"content": t}), None));
                    }
                }
            }
            "content_block_delta" => {
                let d = &v["delta"];
                let block = self.blocks.get(index).copied().unwrap_or(Block::Other);
                match (d["type"].as_str(), block) {
                    (Some("text_delta"), _) => {
                        out.push(self.chunk(json!({"content": d["text"]}), None));
                    }
                    (Some("input_json_delta"), Block::Json) => {
                        out.push(self.chunk(json!({"content": d["partial_json"]}), None));
                    }
                    (Some("input_json_delta"), Block::Tool(n)) => {
                        out.push(self.chunk(
                            json!({"tool_calls": [{"index": n, "function": {"arguments": d["partial_json"]}}]}),
                            None,
                        ));
                    }
                    (Some("thinking_delta"), _) if !self.ctx.hide_reasoning => {
                        out.push(self.chunk(
                            json!({"reasoning": d["thinking"], "reasoning_details": [{"type": "reasoning.text", "text": d["thinking"], "format": "anthropic-claude-v1", "index": index}]}),
                            None,
                        ));
                    }
                    (Some("signature_delta"), _) if !self.ctx.hide_reasoning => {
                        out.push(self.chunk(
                            json!({"reasoning_details": [{"type": "reasoning.text", "signature": d["signature"], "format": "anthropic-claude-v1", "index": index}]}),
                            None,
                        ));
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.output = n;
                }
                if let Some(reason) = v["delta"]["stop_reason"].as_str() {
                    let native = if reason == "tool_use" && self.json_answer && self.tools == 0 {
                        "end_turn"
                    } else {
                        reason
                    };
                    out.push(self.chunk(json!({}), Some(native)));
                }
            }
            "message_stop" => {
                out.push(json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [], "usage": usage(&self.input, self.output),
                }));
                return Ok(true);
            }
            "error" => {
                let status = match v["error"]["type"].as_str() {
                    Some("overloaded_error") => 529,
                    Some("rate_limit_error") => 429,
                    Some("invalid_request_error") => 400,
                    Some("request_too_large") => 413,
                    Some("timeout_error") => 504,
                    _ => 500,
                };
                return Err(StreamFailure {
                    status,
                    message: super::upstream_message(data.as_bytes()),
                });
            }
            _ => {} // ping, content_block_stop, and events added later
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProviderKind;

    fn translate(body: Value, stream: bool, max_tokens: u64) -> Result<(Value, Ctx), String> {
        let b = body.as_object().cloned().expect("object");
        request(
            "claude-x",
            &ChatCall {
                body: &b,
                stream,
                max_tokens,
            },
        )
    }

    /// Each fixture holds an OpenAI request, the Messages API request it must become, a Messages API
    /// answer and stream (as Anthropic documents them) and the OpenAI answer and chunks they must become.
    #[test]
    fn snapshots() {
        super::super::snapshots::check_adapter(ProviderKind::Anthropic, "anthropic", |_, call| {
            request("claude-x", call)
        });
    }

    #[test]
    fn refuses_what_it_cannot_express() {
        let e = translate(
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            false,
            100,
        )
        .expect_err("audio");
        assert!(e.contains("input_audio"), "{e}");
        let e = translate(
            json!({"messages": [{"role": "user", "content": "hi"}], "reasoning": {"effort": "high"}}),
            false,
            900,
        )
        .expect_err("budget");
        assert!(e.contains("max_tokens above 1024"), "{e}");
        let e = translate(
            json!({"messages": [{"role": "system", "content": "x"}]}),
            false,
            10,
        )
        .expect_err("no turns");
        assert!(e.contains("at least one"), "{e}");
    }

    #[test]
    fn stream_errors_carry_the_status_they_stand_for() {
        let mut s = StreamState::new(Ctx::default());
        let mut out = Vec::new();
        let f = s
            .feed(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                &mut out,
            )
            .expect_err("error event");
        assert_eq!(f.status, 529);
        assert_eq!(f.message, "Overloaded");
    }
}
