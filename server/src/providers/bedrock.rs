//! The `bedrock` adapter: OpenAI chat requests to AWS Bedrock's Converse API (`POST
//! /model/{modelId}/converse`, and `/converse-stream`, whose answer is AWS's binary event stream) and back.
//!
//! Requests are signed with SigV4 (service `bedrock`) when the provider's key is
//! `ACCESS_KEY_ID:SECRET_ACCESS_KEY` (or `…:SESSION_TOKEN` for temporary credentials); a key without colons
//! is a Bedrock API key, sent as a bearer token. The region comes from the base URL's host
//! (`bedrock-runtime.<region>.amazonaws.com`, VPC endpoints included) or, for any other host (a proxy, the
//! fake), its `?region=` query.
//!
//! Translation: system and developer messages become `system`; turns alternate with content blocks (text,
//! images and documents from data URLs, or from `s3://` locations in a bucket the provider lists as
//! tenants' to name (Bedrock reads them with the platform's AWS identity, so no other bucket is ever
//! passed on; `bucketOwner` is sent when the list names the account), `toolUse`, `toolResult`, `reasoningContent`
//! with signatures), `cache_control` marks become `cachePoint` blocks; `max_tokens`, `temperature` (clamped
//! to 0–1), `top_p` and `stop` go in `inferenceConfig`; tools and `tool_choice` in `toolConfig`;
//! `response_format` is a forced tool whose input is the answer; `reasoning` on a Claude model becomes
//! `thinking` in `additionalModelRequestFields`; `user` goes in `requestMetadata`. Answers and stream
//! events (`messageStart`, `contentBlockStart`/`Delta`/`Stop`, `messageStop`, `metadata`, and the
//! exceptions) come back as OpenAI completions and chunks, with prompt-cache reads and writes counted in
//! `prompt_tokens` (Bedrock counts them apart, as Anthropic does) and the native stop reason kept.

use super::{openai_usage, ChatCall, Ctx, StreamFailure};
use crate::catalog::{Credential, Endpoint};
use serde_json::{json, Map, Value};

/// The SigV4 signing name of the Bedrock runtime.
pub const SERVICE: &str = "bedrock";
/// The tool a `response_format` is sent as, when its schema has no name.
const JSON_TOOL: &str = "json_output";
/// How reasoning with signatures is labelled (Bedrock's signatures are Claude's).
const REASONING_FORMAT: &str = "anthropic-claude-v1";

/// Where a provider's requests go: the base URL without its query, and the AWS region.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub root: String,
    pub region: String,
}

/// The base URL's root and region (`?region=` wins over the host's).
pub fn target(base_url: &str) -> Result<Target, String> {
    let (root, query) = base_url.split_once('?').unwrap_or((base_url, ""));
    let root = root.trim_end_matches('/').to_string();
    let from_query = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("region="))
        .filter(|r| !r.is_empty());
    let from_host = || {
        let host = root.split("://").nth(1)?.split(['/', ':']).next()?;
        let labels: Vec<&str> = host.split('.').collect();
        let at = labels.iter().position(|l| l.starts_with("bedrock"))?;
        labels.get(at + 1).filter(|r| r.contains('-')).copied()
    };
    match from_query.or_else(from_host).map(str::to_string) {
        Some(region) => Ok(Target { root, region }),
        None => Err(format!(
            "the Bedrock base URL {base_url} names no region: use https://bedrock-runtime.<region>.amazonaws.com, or add ?region=<region>"
        )),
    }
}

/// How a Bedrock key authenticates.
#[derive(Debug, PartialEq, Eq)]
pub enum Auth<'a> {
    /// SigV4 with an access key (and a session token for temporary credentials).
    Keys {
        access: &'a str,
        secret: &'a str,
        token: Option<&'a str>,
    },
    /// A Bedrock API key.
    Bearer(&'a str),
}

pub fn auth(key: &str) -> Auth<'_> {
    let mut parts = key.trim().splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(access), Some(secret), token) if !access.is_empty() && !secret.is_empty() => {
            Auth::Keys {
                access,
                secret,
                token: token.filter(|t| !t.is_empty()),
            }
        }
        _ => Auth::Bearer(key.trim()),
    }
}

/// A path segment percent-encoded as AWS's SDKs encode a model ID (`:` and `/` included).
fn encode_segment(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// The SigV4 headers (`authorization`, `x-amz-date`, and `x-amz-security-token` for temporary
/// credentials) for a request to `url`: a JSON POST of `body`, or a GET when `body` is `None`.
pub fn sign(
    url: &str,
    body: Option<&[u8]>,
    region: &str,
    access: &str,
    secret: &str,
    token: Option<&str>,
    at: std::time::SystemTime,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity = aws_credential_types::Credentials::new(
        access,
        secret,
        token.map(str::to_string),
        None,
        "switchyard",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign for Bedrock: {e}"))?
        .into();
    let json = [("content-type", "application/json")];
    let request = SignableRequest::new(
        if body.is_some() { "POST" } else { "GET" },
        url,
        json[..usize::from(body.is_some())].iter().copied(),
        SignableBody::Bytes(body.unwrap_or_default()),
    )
    .map_err(|e| format!("cannot sign for Bedrock: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign for Bedrock: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// The headers that authenticate a request with a provider key: SigV4 for an access key pair (signed
/// now), a bearer token for a Bedrock API key, none without a key.
fn auth_headers(
    url: &str,
    body: Option<&[u8]>,
    region: &str,
    key: Option<&str>,
) -> Result<Vec<(String, String)>, String> {
    Ok(match key.map(auth) {
        Some(Auth::Keys {
            access,
            secret,
            token,
        }) => sign(
            url,
            body,
            region,
            access,
            secret,
            token,
            std::time::SystemTime::now(),
        )?,
        Some(Auth::Bearer(k)) => vec![("authorization".into(), format!("Bearer {k}"))],
        None => Vec::new(),
    })
}

pub fn prepare(
    client: &reqwest::Client,
    ep: &Endpoint,
    credential: Option<&Credential>,
    call: &ChatCall<'_>,
) -> Result<super::Prepared, String> {
    let (body, ctx) = request(&ep.upstream_model, call, &ep.provider.s3_buckets)?;
    let t = target(&ep.provider.base_url)?;
    let url = format!(
        "{}/model/{}/{}",
        t.root,
        encode_segment(&ep.upstream_model),
        if call.stream {
            "converse-stream"
        } else {
            "converse"
        }
    );
    let body = serde_json::to_vec(&body).expect("JSON serialises");
    let signed = auth_headers(
        &url,
        Some(&body),
        &t.region,
        credential.map(|c| c.secret.expose()),
    )?;
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in signed {
        req = req.header(k, v);
    }
    Ok(super::Prepared { request: req, ctx })
}

/// A signed request for the control plane's foundation-model list (`bedrock.<region>.amazonaws.com` for
/// AWS's own hosts; `<base>/foundation-models` for any other).
pub fn list_models(
    client: &reqwest::Client,
    base_url: &str,
    key: Option<&str>,
) -> Result<reqwest::RequestBuilder, String> {
    let t = target(base_url)?;
    let url = format!(
        "{}/foundation-models",
        t.root.replacen("://bedrock-runtime", "://bedrock", 1)
    );
    let headers = auth_headers(&url, None, &t.region, key)?;
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    Ok(req)
}

/// Whether the model is one of Anthropic's (which takes `thinking` and `top_k` as extra fields).
fn is_claude(model: &str) -> bool {
    model.contains("anthropic.") || model.contains("claude")
}

/// A bucket tenants may name in `s3://` image and file locations: `bucket`, or `bucket@account` to have
/// Bedrock check the bucket's owner (`bucketOwner`, a 12-digit AWS account id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Bucket {
    pub name: String,
    pub owner: Option<String>,
}

impl S3Bucket {
    /// Parses `bucket` or `bucket@123456789012` (S3's bucket naming rules: 3–63 lowercase letters,
    /// digits, dots and hyphens, starting and ending with a letter or digit).
    pub fn parse(s: &str) -> Result<S3Bucket, String> {
        let s = s.trim().trim_start_matches("s3://").trim_end_matches('/');
        let (name, owner) = match s.split_once('@') {
            Some((n, o)) => (n, Some(o)),
            None => (s, None),
        };
        let name_ok = (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
            && !name.contains("..");
        if !name_ok {
            return Err(format!("{s:?} is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens), optionally followed by @ and the 12-digit account that owns it"));
        }
        if let Some(o) = owner {
            if o.len() != 12 || !o.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{s:?}: the owner after @ must be a 12-digit AWS account id"
                ));
            }
        }
        Ok(S3Bucket {
            name: name.to_string(),
            owner: owner.map(str::to_string),
        })
    }

    /// Every entry parsed; the first bad one is the error.
    pub fn parse_all(list: &[String]) -> Result<Vec<S3Bucket>, String> {
        list.iter().map(|b| S3Bucket::parse(b)).collect()
    }
}

impl std::fmt::Display for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.owner {
            Some(o) => write!(f, "{}@{o}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The `s3Location` for a tenant's `s3://bucket/key`, when the bucket is one the provider allows.
fn s3_location(url: &str, allowed: &[String], what: &str) -> Result<Value, String> {
    let rest = url.strip_prefix("s3://").unwrap_or_default();
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if key.is_empty() {
        return Err(format!("{what}: {url:?} names no object (s3://bucket/key)"));
    }
    let Some(b) = allowed
        .iter()
        .filter_map(|a| S3Bucket::parse(a).ok())
        .find(|a| a.name == bucket)
    else {
        return Err(format!(
            "{what}: s3:// locations are refused unless the provider lists the bucket as tenants' to name (Bedrock would read it with the platform's AWS identity); send the content as a data: URL"
        ));
    };
    let mut loc = json!({"uri": url});
    if let Some(owner) = b.owner {
        loc["bucketOwner"] = json!(owner);
    }
    Ok(json!({"s3Location": loc}))
}

/// The Converse body for an OpenAI chat request; `s3` lists the buckets tenants may name.
pub fn request(model: &str, call: &ChatCall<'_>, s3: &[String]) -> Result<(Value, Ctx), String> {
    let b = call.body;
    let mut ctx = Ctx::default();
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    let empty = Vec::new();
    let messages = b
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut uses_tools = false;
    for (i, m) in messages.iter().enumerate() {
        match m["role"].as_str().unwrap_or("") {
            "system" | "developer" => {
                for block in blocks(&m["content"], i, s3)? {
                    if block.get("text").is_none() && block.get("cachePoint").is_none() {
                        return Err(format!(
                            "messages[{i}]: a system message takes only text at Bedrock"
                        ));
                    }
                    system.push(block);
                }
            }
            "user" => super::push_turn(&mut turns, "user", blocks(&m["content"], i, s3)?),
            "assistant" => {
                let mut out = Vec::new();
                if let Some(details) = m.get("reasoning_details").and_then(Value::as_array) {
                    out.extend(details.iter().filter_map(reasoning_block));
                }
                out.extend(blocks(&m["content"], i, s3)?);
                for (id, name, input) in super::tool_calls(m, i)? {
                    uses_tools = true;
                    out.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
                }
                super::push_turn(&mut turns, "assistant", out);
            }
            "tool" => {
                uses_tools = true;
                let content = match &m["content"] {
                    Value::String(s) => vec![json!({"text": s})],
                    other => blocks(other, i, s3)?
                        .into_iter()
                        .filter(|b| b.get("cachePoint").is_none())
                        .collect(),
                };
                super::push_turn(
                    &mut turns,
                    "user",
                    vec![json!({"toolResult": {
                        "toolUseId": m["tool_call_id"].as_str().unwrap_or_default(),
                        "content": content,
                        "status": "success",
                    }})],
                );
            }
            other => {
                return Err(format!(
                    "messages[{i}].role {other:?} is not one Bedrock takes (system, developer, user, assistant, tool)"
                ))
            }
        }
    }
    if turns.is_empty() {
        return Err("Bedrock needs at least one user or assistant message".into());
    }
    let mut out = Map::new();
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
    let mut inference = Map::new();
    inference.insert("maxTokens".into(), json!(call.max_tokens));
    if let Some(t) = b.get("temperature").and_then(Value::as_f64) {
        inference.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = b.get("top_p").filter(|v| v.is_number()) {
        inference.insert("topP".into(), p.clone());
    }
    let stops = super::stop_list(b.get("stop"));
    if !stops.is_empty() {
        inference.insert("stopSequences".into(), Value::Array(stops));
    }
    let mut extra = Map::new();
    if let Some(k) = b.get("top_k").filter(|v| v.is_u64()) {
        if is_claude(model) {
            extra.insert("top_k".into(), k.clone());
        }
    }
    if let Some(u) = b.get("user").and_then(Value::as_str) {
        // Bedrock refuses metadata outside this alphabet; such a user is left out rather than failing.
        let fits = !u.is_empty()
            && u.len() <= 256
            && u.chars().all(|c| {
                c.is_ascii_alphanumeric() || c.is_whitespace() || ":_@$#=/+,-.".contains(c)
            });
        if fits {
            out.insert("requestMetadata".into(), json!({"user": u}));
        }
    }
    let mut tools: Vec<Value> = Vec::new();
    for t in b
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|t| t["type"] == "function" || t.get("function").is_some())
    {
        let f = &t["function"];
        let mut spec = json!({
            "name": f["name"],
            "inputSchema": {"json": if f["parameters"].is_object() { f["parameters"].clone() } else { json!({"type": "object", "properties": {}}) }},
        });
        if let Some(d) = f["description"].as_str() {
            spec["description"] = json!(d);
        }
        tools.push(json!({"toolSpec": spec}));
        if t.get("cache_control").is_some() {
            tools.push(json!({"cachePoint": {"type": "default"}}));
        }
    }
    let mut choice = match b.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => {
            // Converse has no "none": without earlier tool use the tools are simply not offered;
            // with it, they must be (Bedrock refuses tool blocks without a toolConfig).
            if !uses_tools {
                tools.clear();
            }
            None
        }
        Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f["name"].as_str())
            .map(|n| json!({"tool": {"name": n}})),
        _ => None,
    };
    let real_tools = tools.iter().filter(|t| t.get("toolSpec").is_some()).count();
    let forced = match b.get("response_format").and_then(|r| r["type"].as_str()) {
        Some("json_schema") => {
            let spec = &b["response_format"]["json_schema"];
            let name = spec["name"].as_str().unwrap_or(JSON_TOOL).to_string();
            let schema = if spec["schema"].is_object() {
                spec["schema"].clone()
            } else {
                json!({"type": "object"})
            };
            Some((name, schema, "in the requested JSON schema"))
        }
        Some("json_object") => Some((
            JSON_TOOL.to_string(),
            json!({"type": "object"}),
            "a JSON object",
        )),
        _ => None,
    };
    if let Some((name, schema, what)) = forced {
        tools.push(json!({"toolSpec": {
            "name": name,
            "description": format!("Answer with this tool: its input is the response, {what}."),
            "inputSchema": {"json": schema},
        }}));
        if choice.is_none() || real_tools == 0 {
            choice = Some(json!({"tool": {"name": name}}));
        }
        ctx.json_tool = Some(name);
    }
    if !tools.is_empty() {
        let mut config = json!({"tools": tools});
        if let Some(c) = choice {
            config["toolChoice"] = c;
        }
        out.insert("toolConfig".into(), config);
    }
    if let Some(budget) = super::reasoning_budget(b, call.max_tokens) {
        if is_claude(model) {
            extra.insert(
                "thinking".into(),
                super::anthropic::thinking(budget, call.max_tokens, "for Claude on Bedrock")?,
            );
            // Thinking takes no sampling settings but the defaults.
            inference.remove("temperature");
            inference.remove("topP");
            extra.remove("top_k");
        }
        ctx.hide_reasoning = b
            .get("reasoning")
            .and_then(|r| r.get("exclude"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    out.insert("inferenceConfig".into(), Value::Object(inference));
    if !extra.is_empty() {
        out.insert("additionalModelRequestFields".into(), Value::Object(extra));
    }
    Ok((Value::Object(out), ctx))
}

/// A reasoning detail (as answered before) back into a `reasoningContent` block.
fn reasoning_block(d: &Value) -> Option<Value> {
    match d["type"].as_str()? {
        "reasoning.text" => {
            let mut text = json!({"text": d["text"].as_str().unwrap_or_default()});
            if let Some(s) = d["signature"].as_str() {
                text["signature"] = json!(s);
            }
            Some(json!({"reasoningContent": {"reasoningText": text}}))
        }
        "reasoning.encrypted" => Some(json!({"reasoningContent": {"redactedContent": d["data"]}})),
        _ => None,
    }
}

/// An image's Converse format from its media type or file name.
fn image_format(media_or_name: &str) -> Option<&'static str> {
    let m = media_or_name.to_ascii_lowercase();
    [
        ("png", "png"),
        ("jpeg", "jpeg"),
        ("jpg", "jpeg"),
        ("gif", "gif"),
        ("webp", "webp"),
    ]
    .into_iter()
    .find(|(k, _)| m.ends_with(k))
    .map(|(_, f)| f)
}

/// A document's Converse format from its media type or file name.
fn document_format(media_or_name: &str) -> Option<&'static str> {
    let m = media_or_name.to_ascii_lowercase();
    [
        ("pdf", "pdf"),
        ("csv", "csv"),
        ("wordprocessingml.document", "docx"),
        (".docx", "docx"),
        ("msword", "doc"),
        (".doc", "doc"),
        ("spreadsheetml.sheet", "xlsx"),
        (".xlsx", "xlsx"),
        ("ms-excel", "xls"),
        (".xls", "xls"),
        ("html", "html"),
        ("markdown", "md"),
        (".md", "md"),
        ("plain", "txt"),
        (".txt", "txt"),
    ]
    .into_iter()
    .find(|(k, _)| m.ends_with(k))
    .map(|(_, f)| f)
}

/// A document name Bedrock accepts (letters, digits, single spaces, hyphens, parentheses, brackets).
fn document_name(name: Option<&str>, i: usize, j: usize) -> String {
    let base = name.map(|n| n.rsplit_once('.').map_or(n, |(stem, _)| stem));
    let cleaned: String = base
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-()[]".contains(c) {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if cleaned.is_empty() {
        format!("document-{i}-{j}")
    } else {
        cleaned.chars().take(200).collect()
    }
}

/// OpenAI message content as Converse content blocks.
fn blocks(content: &Value, i: usize, s3: &[String]) -> Result<Vec<Value>, String> {
    use super::Part;
    let mut out = Vec::new();
    for (j, p) in super::content_parts(content, i)?.iter().enumerate() {
        let block = match super::part(p, i, j)? {
            None => continue,
            Some(Part::Text(t)) => json!({"text": t}),
            Some(Part::Image(url)) => {
                let (format, source) = match super::data_url(url) {
                    Some((media, data)) => (image_format(media), json!({"bytes": data})),
                    // Bedrock reads it with the platform's own AWS identity: only buckets the
                    // provider lists, or a tenant could read any bucket the platform can see.
                    None if url.starts_with("s3://") => (
                        image_format(url.split(['?', '#']).next().unwrap_or(url)),
                        s3_location(url, s3, &format!("messages[{i}].content[{j}]"))?,
                    ),
                    None => return Err(format!("messages[{i}].content[{j}]: Bedrock takes images as data: URLs, not web URLs")),
                };
                let format = format.ok_or_else(|| {
                    format!(
                        "messages[{i}].content[{j}]: Bedrock takes PNG, JPEG, GIF and WebP images"
                    )
                })?;
                json!({"image": {"format": format, "source": source}})
            }
            Some(Part::Other("file")) => {
                let f = &p["file"];
                let data = f["file_data"].as_str().unwrap_or_default();
                let (format, source) = match super::data_url(data) {
                    Some((media, data)) => (document_format(media), json!({"bytes": data})),
                    None if data.starts_with("s3://") => (
                        document_format(data),
                        s3_location(data, s3, &format!("messages[{i}].content[{j}]"))?,
                    ),
                    None => {
                        return Err(format!(
                        "messages[{i}].content[{j}]: Bedrock takes files as file_data data: URLs"
                    ))
                    }
                };
                let format = format.ok_or_else(|| {
                    format!("messages[{i}].content[{j}]: Bedrock takes PDF, CSV, Word, Excel, HTML, Markdown and text documents")
                })?;
                json!({"document": {
                    "format": format,
                    "name": document_name(f["filename"].as_str(), i, j),
                    "source": source,
                }})
            }
            Some(Part::Other(other)) => return Err(super::refused_part(other, i, j, "Bedrock")),
        };
        out.push(block);
        if p.get("cache_control").is_some() {
            out.push(json!({"cachePoint": {"type": "default"}}));
        }
    }
    Ok(out)
}

/// Bedrock's usage as OpenAI's (cache reads and writes counted in the prompt).
fn usage(u: &Value) -> Value {
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let (read, write) = (n("cacheReadInputTokens"), n("cacheWriteInputTokens"));
    openai_usage(
        n("inputTokens") + read + write,
        n("outputTokens"),
        read,
        write,
        0,
    )
}

/// The stop reason, but an answer given through the forced JSON tool ended its turn.
fn native_stop(reason: Option<&str>, json_answer: bool, tool_calls: usize) -> &str {
    match reason {
        Some("tool_use") if json_answer && tool_calls == 0 => "end_turn",
        Some(s) => s,
        None => "end_turn",
    }
}

/// A complete Converse answer as an OpenAI chat completion.
pub fn answer(ctx: &Ctx, v: Value) -> Result<Value, String> {
    let Some(content) = v["output"]["message"]["content"].as_array() else {
        return Err("response is not a Converse answer (no output.message.content)".into());
    };
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut details = Vec::new();
    let mut tool_calls = Vec::new();
    let mut json_answer = false;
    for b in content {
        if let Some(t) = b["text"].as_str() {
            text.push_str(t);
        } else if let Some(u) = b.get("toolUse") {
            if ctx.json_tool.as_deref() == u["name"].as_str() {
                text.push_str(&u["input"].to_string());
                json_answer = true;
            } else {
                tool_calls.push(json!({
                    "id": u["toolUseId"], "type": "function",
                    "function": {"name": u["name"], "arguments": u["input"].to_string()},
                }));
            }
        } else if let Some(r) = b.get("reasoningContent") {
            if let Some(rt) = r.get("reasoningText") {
                let t = rt["text"].as_str().unwrap_or_default();
                reasoning.push_str(t);
                details.push(json!({"type": "reasoning.text", "text": t, "signature": rt["signature"], "format": REASONING_FORMAT, "index": details.len()}));
            } else if let Some(data) = r.get("redactedContent") {
                details.push(json!({"type": "reasoning.encrypted", "data": data, "format": REASONING_FORMAT, "index": details.len()}));
            }
        }
    }
    let native = native_stop(v["stopReason"].as_str(), json_answer, tool_calls.len());
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    if !ctx.hide_reasoning && !details.is_empty() {
        message["reasoning"] = json!(reasoning);
        message["reasoning_details"] = Value::Array(details);
    }
    let mut out = json!({
        "object": "chat.completion",
        "created": crate::store::now_ms() / 1000,
        "choices": [{"index": 0, "message": message, "finish_reason": native, "logprobs": null}],
    });
    if v.get("usage").is_some_and(Value::is_object) {
        out["usage"] = usage(&v["usage"]);
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    Text,
    Tool(usize),
    Json,
}

/// A ConverseStream being turned into chunks.
pub struct StreamState {
    ctx: Ctx,
    created: i64,
    blocks: Vec<Block>,
    tools: usize,
    json_answer: bool,
}

impl StreamState {
    pub fn new(ctx: Ctx) -> StreamState {
        StreamState {
            ctx,
            created: crate::store::now_ms() / 1000,
            blocks: Vec::new(),
            tools: 0,
            json_answer: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "object": "chat.completion.chunk", "created": self.created,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        })
    }

    fn block(&self, index: usize) -> Block {
        // Text blocks have no start event.
        self.blocks.get(index).copied().unwrap_or(Block::Text)
    }

    /// Feeds one event (`{"<type>": payload}`, as the event-stream reader gives it).
    pub fn feed(&mut self, data: &str, out: &mut Vec<Value>) -> Result<bool, StreamFailure> {
        let v = super::parse_event(data)?;
        let Some((name, e)) = v.as_object().and_then(|o| o.iter().next()) else {
            return Err(StreamFailure {
                status: 0,
                message: "invalid stream event (no event type)".into(),
            });
        };
        let index = e["contentBlockIndex"].as_u64().unwrap_or(0) as usize;
        match name.as_str() {
            "messageStart" => {
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "contentBlockStart" => {
                if let Some(u) = e["start"].get("toolUse") {
                    let kind = if self.ctx.json_tool.as_deref() == u["name"].as_str() {
                        self.json_answer = true;
                        Block::Json
                    } else {
                        let n = self.tools;
                        self.tools += 1;
                        out.push(self.chunk(
                            json!({"tool_calls": [{"index": n, "id": u["toolUseId"], "type": "function", "function": {"name": u["name"], "arguments": ""}}]}),
                            None,
                        ));
                        Block::Tool(n)
                    };
                    if self.blocks.len() <= index {
                        self.blocks.resize(index + 1, Block::Text);
                    }
                    self.blocks[index] = kind;
                }
            }
            "contentBlockDelta" => {
                let d = &e["delta"];
                if let Some(t) = d["text"].as_str() {
                    out.push(self.chunk(json!({"content": t}), None));
                } else if let Some(input) = d["toolUse"]["input"].as_str() {
                    match self.block(index) {
                        Block::Json => out.push(self.chunk(json!({"content": input}), None)),
                        Block::Tool(n) => out.push(self.chunk(
                            json!({"tool_calls": [{"index": n, "function": {"arguments": input}}]}),
                            None,
                        )),
                        Block::Text => {}
                    }
                } else if let Some(r) = d.get("reasoningContent") {
                    if self.ctx.hide_reasoning {
                        return Ok(false);
                    }
                    if let Some(t) = r["text"].as_str() {
                        out.push(self.chunk(
                            json!({"reasoning": t, "reasoning_details": [{"type": "reasoning.text", "text": t, "format": REASONING_FORMAT, "index": index}]}),
                            None,
                        ));
                    } else if let Some(s) = r["signature"].as_str() {
                        out.push(self.chunk(
                            json!({"reasoning_details": [{"type": "reasoning.text", "signature": s, "format": REASONING_FORMAT, "index": index}]}),
                            None,
                        ));
                    } else if let Some(data) = r.get("redactedContent") {
                        out.push(self.chunk(
                            json!({"reasoning_details": [{"type": "reasoning.encrypted", "data": data, "format": REASONING_FORMAT, "index": index}]}),
                            None,
                        ));
                    }
                }
            }
            "messageStop" => {
                let native = native_stop(e["stopReason"].as_str(), self.json_answer, self.tools);
                out.push(self.chunk(json!({}), Some(native)));
            }
            "metadata" => {
                if e["usage"].is_object() {
                    out.push(json!({
                        "object": "chat.completion.chunk", "created": self.created,
                        "choices": [], "usage": usage(&e["usage"]),
                    }));
                }
                return Ok(true);
            }
            "error" => {
                return Err(StreamFailure {
                    status: 502,
                    message: format!(
                        "{}: {}",
                        e["code"].as_str().unwrap_or("error"),
                        e["message"].as_str().unwrap_or_default()
                    ),
                })
            }
            other if other.ends_with("Exception") => {
                return Err(StreamFailure {
                    status: exception_status(other),
                    message: e["message"]
                        .as_str()
                        .or(e["Message"].as_str())
                        .map_or_else(|| other.to_string(), str::to_string),
                })
            }
            _ => {} // contentBlockStop, and events added later
        }
        Ok(false)
    }
}

/// The HTTP status an exception stands for (as the Converse API documents them).
fn exception_status(name: &str) -> u16 {
    match name {
        "throttlingException" | "modelNotReadyException" => 429,
        "validationException" => 400,
        "accessDeniedException" => 403,
        "resourceNotFoundException" => 404,
        "modelTimeoutException" => 408,
        "modelStreamErrorException" | "modelErrorException" => 424,
        "serviceUnavailableException" => 503,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ProviderKind;

    fn translate(
        model: &str,
        body: Value,
        stream: bool,
        max_tokens: u64,
    ) -> Result<(Value, Ctx), String> {
        let b = body.as_object().cloned().expect("object");
        request(
            model,
            &ChatCall {
                body: &b,
                stream,
                max_tokens,
            },
            &[],
        )
    }

    /// Each fixture holds an OpenAI request, the Converse request it must become, a Converse answer and
    /// stream events (as AWS documents them, each `{"<event type>": payload}`) and the OpenAI answer and
    /// chunks they must become.
    #[test]
    fn snapshots() {
        super::super::snapshots::check_adapter(ProviderKind::Bedrock, "bedrock", |case, call| {
            let model = case["model"]
                .as_str()
                .unwrap_or("anthropic.claude-3-5-sonnet-20240620-v1:0");
            request(model, call, &[])
        });
    }

    #[test]
    fn s3_locations_only_in_buckets_the_provider_lists() {
        let allowed = vec![
            "tenant-media@123456789012".to_string(),
            "open.docs".to_string(),
        ];
        let ask = |url: &str, file: bool| {
            let part = if file {
                json!({"type": "file", "file": {"file_data": url, "filename": "report.pdf"}})
            } else {
                json!({"type": "image_url", "image_url": {"url": url}})
            };
            let b = json!({"messages": [{"role": "user", "content": [part]}]});
            let b = b.as_object().cloned().expect("object");
            request(
                "anthropic.claude-x",
                &ChatCall {
                    body: &b,
                    stream: false,
                    max_tokens: 100,
                },
                &allowed,
            )
            .map(|(v, _)| v["messages"][0]["content"][0].clone())
        };
        assert_eq!(
            ask("s3://tenant-media/cats/1.png", false).expect("allowed"),
            json!({"image": {"format": "png", "source": {"s3Location": {
                "uri": "s3://tenant-media/cats/1.png", "bucketOwner": "123456789012"}}}})
        );
        assert_eq!(
            ask("s3://open.docs/q3/report.pdf", true).expect("allowed")["document"]["source"],
            json!({"s3Location": {"uri": "s3://open.docs/q3/report.pdf"}})
        );
        // Another bucket, a bucket whose name merely starts like an allowed one, no object: refused.
        for url in [
            "s3://platform-secrets/keys.png",
            "s3://tenant-media-evil/x.png",
            "s3://tenant/media/x.png",
            "s3://tenant-media",
        ] {
            let e = ask(url, false).expect_err(url);
            assert!(e.contains("messages[0].content[0]"), "{e}");
        }
        assert!(S3Bucket::parse("Bad_Bucket").is_err());
        assert!(S3Bucket::parse("media@1234").is_err());
        assert_eq!(
            S3Bucket::parse("s3://media@123456789012/")
                .expect("ok")
                .to_string(),
            "media@123456789012"
        );
    }

    #[test]
    fn the_region_comes_from_the_host_or_the_query() {
        let t = target("https://bedrock-runtime.eu-west-3.amazonaws.com").expect("host");
        assert_eq!(t.region, "eu-west-3");
        assert_eq!(t.root, "https://bedrock-runtime.eu-west-3.amazonaws.com");
        let t = target("https://vpce-0ab.bedrock-runtime.us-east-2.vpce.amazonaws.com/")
            .expect("vpc endpoint");
        assert_eq!(t.region, "us-east-2");
        let t = target("http://127.0.0.1:9/bedrock?region=ap-south-1").expect("query");
        assert_eq!(
            (t.root.as_str(), t.region.as_str()),
            ("http://127.0.0.1:9/bedrock", "ap-south-1")
        );
        let e = target("https://proxy.example.com/aws").expect_err("no region");
        assert!(e.contains("?region="), "{e}");
    }

    #[test]
    fn keys_are_access_key_pairs_or_api_keys() {
        assert_eq!(
            auth("AKIDEXAMPLE:wJalr/K7MDENG+bPxRfiCY"),
            Auth::Keys {
                access: "AKIDEXAMPLE",
                secret: "wJalr/K7MDENG+bPxRfiCY",
                token: None
            }
        );
        assert_eq!(
            auth("ASIA1:secret:FQoGZXIvYXdzE"),
            Auth::Keys {
                access: "ASIA1",
                secret: "secret",
                token: Some("FQoGZXIvYXdzE")
            }
        );
        assert_eq!(
            auth("ABSKQmVkcm9ja0FQSUtleQ=="),
            Auth::Bearer("ABSKQmVkcm9ja0FQSUtleQ==")
        );
        assert_eq!(
            encode_segment("anthropic.claude-3-haiku-20240307-v1:0"),
            "anthropic.claude-3-haiku-20240307-v1%3A0"
        );
        assert_eq!(
            encode_segment("arn:aws:bedrock:us-east-1:1:inference-profile/x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx"
        );
    }

    /// The signature covers the body and the date: the same request signs the same, a changed body
    /// signs differently, and temporary credentials add their session token.
    #[test]
    fn signatures_cover_the_body_and_the_date() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse";
        let h = |body: &[u8], at| {
            sign(
                url,
                Some(body),
                "us-east-1",
                "AKIDEXAMPLE",
                "secret",
                None,
                at,
            )
            .expect("signs")
        };
        let a = h(b"{}", at);
        let auth = &a
            .iter()
            .find(|(k, _)| k == "authorization")
            .expect("auth")
            .1;
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="),
            "{auth}"
        );
        assert_eq!(
            a.iter()
                .find(|(k, _)| k == "x-amz-date")
                .map(|(_, v)| v.as_str()),
            Some("20231114T221320Z")
        );
        assert_eq!(a, h(b"{}", at));
        assert_ne!(a, h(b"{ }", at));
        let with_token = sign(
            url,
            Some(b"{}"),
            "us-east-1",
            "ASIA",
            "secret",
            Some("tok"),
            at,
        )
        .expect("signs");
        assert!(with_token
            .iter()
            .any(|(k, v)| k == "x-amz-security-token" && v == "tok"));
    }

    #[test]
    fn refuses_what_it_cannot_express() {
        let e = translate(
            "anthropic.claude-x",
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
            false,
            100,
        )
        .expect_err("web image");
        assert!(e.contains("as data: URLs"), "{e}");
        let e = translate(
            "anthropic.claude-x",
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "s3://someone-elses-bucket/private.png"}}]}]}),
            false,
            100,
        )
        .expect_err("a bucket the platform can read");
        assert!(e.contains("s3:// locations are refused"), "{e}");
        let e = translate(
            "anthropic.claude-x",
            json!({"messages": [{"role": "user", "content": "hi"}], "reasoning": {"effort": "high"}}),
            false,
            900,
        )
        .expect_err("budget");
        assert!(e.contains("max_tokens above 1024"), "{e}");
        // Other models reason (or not) on their own: no Claude fields are sent.
        let (b, _) = translate(
            "meta.llama3-70b-instruct-v1:0",
            json!({"messages": [{"role": "user", "content": "hi"}], "reasoning": {"effort": "high"}, "top_k": 5}),
            false,
            900,
        )
        .expect("llama");
        assert!(b.get("additionalModelRequestFields").is_none(), "{b}");
    }

    #[test]
    fn stream_exceptions_carry_the_status_they_stand_for() {
        let mut s = StreamState::new(Ctx::default());
        let mut out = Vec::new();
        let f = s
            .feed(
                r#"{"throttlingException":{"message":"Too many requests, please wait before trying again."}}"#,
                &mut out,
            )
            .expect_err("exception");
        assert_eq!(f.status, 429);
        assert!(f.message.starts_with("Too many requests"), "{}", f.message);
        let f = s
            .feed(
                r#"{"modelStreamErrorException":{"message":"boom","originalStatusCode":500}}"#,
                &mut out,
            )
            .expect_err("exception");
        assert_eq!(f.status, 424);
    }
}
