//! Reading a chat request: only what routing and billing need is looked at; everything else is kept as
//! it came and passed to OpenAI-compatible upstreams untouched.

use crate::error::ApiError;
use crate::providers::limits::{Detail, Media, PromptShape};
use serde_json::{Map, Value};

pub struct ChatRequest {
    /// The client's body without the gateway's own fields (`models`, `provider`, `route`, …).
    pub body: Map<String, Value>,
    /// The models to try, in order: `model`, then `models`.
    pub models: Vec<String>,
    /// The `provider` routing preferences.
    pub prefs: super::route::Prefs,
    pub stream: bool,
    /// `max_tokens` or `max_completion_tokens`, whichever is smaller (at least 1).
    pub max_tokens: Option<u64>,
    /// How many choices are asked for (`n`, at least 1).
    pub n: u64,
    /// What the prompt consists of: its text bytes (a token is at least one byte), media parts and
    /// tools, from which each endpoint's bound on billed prompt tokens follows.
    pub shape: PromptShape,
    /// Output billed beyond the choices: a `prediction`'s rejected tokens are billed as completion
    /// tokens (bounded by its bytes).
    pub output_extra: u64,
    /// A realistic prompt-token estimate, used only if the upstream reports no usage.
    pub prompt_estimate: u64,
}

/// A request body that must be a JSON object.
pub fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("request body must be a JSON object")),
    }
}

pub fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let mut body = json_object(bytes)?;
    let mut models = Vec::new();
    match body.get("model") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if !s.trim().is_empty() => models.push(s.trim().to_string()),
        Some(Value::String(_)) => return Err(ApiError::bad_field("model", "must not be empty")),
        Some(other) => {
            return Err(ApiError::bad_field(
                "model",
                format!("must be a string, got {}", type_name(other)),
            ))
        }
    }
    match body.remove("models") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            if list.len() > 10 {
                return Err(ApiError::bad_field("models", "may name at most 10 models"));
            }
            for (i, m) in list.iter().enumerate() {
                match m.as_str().map(str::trim) {
                    Some(s) if !s.is_empty() => {
                        if !models.iter().any(|x| x == s) {
                            models.push(s.to_string());
                        }
                    }
                    _ => {
                        return Err(ApiError::bad_field(
                            &format!("models[{i}]"),
                            "must be a model id",
                        ))
                    }
                }
            }
        }
        Some(other) => {
            return Err(ApiError::bad_field(
                "models",
                format!("must be an array of model ids, got {}", type_name(&other)),
            ))
        }
    }
    if models.is_empty() {
        return Err(ApiError::bad_field(
            "model",
            "is required: name a model from GET /api/v1/models",
        ));
    }
    let prefs = match body.remove("provider") {
        None | Some(Value::Null) => super::route::Prefs::default(),
        Some(v) => super::route::parse_prefs(&v)?,
    };
    // OpenRouter's own switches: routing is ours, usage is always included.
    for k in ["route", "transforms", "plugins", "usage"] {
        body.remove(k);
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad_field(
                "stream",
                format!("must be true or false, got {}", type_name(other)),
            ))
        }
    };
    if let Some(v) = body.get("stream_options") {
        if !(v.is_object() || v.is_null()) {
            return Err(ApiError::bad_field(
                "stream_options",
                format!("must be an object, got {}", type_name(v)),
            ));
        }
    }
    let mut max_tokens: Option<u64> = None;
    for field in ["max_tokens", "max_completion_tokens"] {
        match body.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n))
                if n.as_u64()
                    .is_some_and(|v| (1..=u32::MAX as u64).contains(&v)) =>
            {
                let v = n.as_u64().unwrap_or(1);
                max_tokens = Some(max_tokens.map_or(v, |m| m.min(v)));
            }
            Some(other) => {
                return Err(ApiError::bad_field(
                    field,
                    format!("must be a positive integer, got {}", short(other)),
                ))
            }
        }
    }
    let n = match body.get("n") {
        None | Some(Value::Null) => 1,
        Some(Value::Number(v)) if v.as_u64().is_some_and(|v| (1..=128).contains(&v)) => {
            v.as_u64().unwrap_or(1)
        }
        Some(other) => {
            return Err(ApiError::bad_field(
                "n",
                format!("must be an integer from 1 to 128, got {}", short(other)),
            ))
        }
    };
    let messages = match body.get("messages") {
        None | Some(Value::Null) => {
            return Err(ApiError::bad_field(
                "messages",
                "is required: an array of {role, content} objects",
            ))
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(ApiError::bad_field("messages", "must not be empty"))
        }
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(ApiError::bad_field(
                "messages",
                format!("must be an array, got {}", type_name(other)),
            ))
        }
    };
    let mut chars = 0usize;
    let mut media = Vec::new();
    let mut media_bytes = 0usize;
    for (i, m) in messages.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(ApiError::bad_field(
                &format!("messages[{i}]"),
                format!("must be an object, got {}", type_name(m)),
            ));
        };
        match m.get("role") {
            Some(Value::String(_)) => {}
            None => {
                return Err(ApiError::bad_field(
                    &format!("messages[{i}].role"),
                    "is required",
                ))
            }
            Some(other) => {
                return Err(ApiError::bad_field(
                    &format!("messages[{i}].role"),
                    format!("must be a string, got {}", type_name(other)),
                ))
            }
        }
        chars += content_chars(m.get("content"));
        if let Some(Value::Array(parts)) = m.get("content") {
            for (j, p) in parts.iter().enumerate() {
                // A file id names a file stored at the provider under the platform's account: another
                // tenant's upload, or the operator's. Only the file itself is taken.
                if p["type"] == "file" && p["file"].get("file_id").is_some_and(|f| !f.is_null()) {
                    return Err(ApiError::bad_field(
                        &format!("messages[{i}].content[{j}].file.file_id"),
                        "cannot be used here: files stored at a provider belong to the platform's account; send the file itself as file_data (a data: URL)",
                    ));
                }
                if let Some((kind, payload)) = media_part(p) {
                    media.push(kind);
                    media_bytes += payload;
                }
            }
        }
    }
    let tools = body.get("tools").is_some_and(|t| !t.is_null())
        || body.get("response_format").is_some_and(|r| !r.is_null());
    // A prediction's content is text the provider reads and may bill as rejected completion tokens.
    let output_extra = body
        .get("prediction")
        .filter(|p| !p.is_null())
        .map_or(0, |p| json_len(p) as u64);
    // Tool definitions and schemas are prompt the provider reads (and bills) too.
    let declared: usize = ["tools", "response_format"]
        .iter()
        .filter_map(|k| body.get(*k).filter(|v| !v.is_null()))
        .map(json_len)
        .sum();
    let prompt_estimate = ((chars + declared) as u64).div_ceil(4) + 4 * messages.len() as u64 + 3;
    Ok(ChatRequest {
        models,
        prefs,
        stream,
        max_tokens,
        n,
        shape: PromptShape {
            text_bytes: bytes.len().saturating_sub(media_bytes) as u64,
            media,
            tools,
        },
        output_extra,
        prompt_estimate,
        body,
    })
}

/// The length of a value's JSON text, counted without writing it anywhere.
fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// A content part that is not text: what kind of media it is, and how many of the request's bytes are
/// its payload (an inline image or file, audio data) rather than text.
fn media_part(p: &Value) -> Option<(Media, usize)> {
    let kind = p.get("type")?.as_str()?;
    Some(match kind {
        "text" => return None,
        "image_url" => {
            let url = p["image_url"]["url"]
                .as_str()
                .or_else(|| p["image_url"].as_str())
                .unwrap_or_default();
            let detail = match p["image_url"]["detail"].as_str() {
                Some("low") => Detail::Low,
                Some("high") => Detail::High,
                _ => Detail::Auto,
            };
            let size = url
                .starts_with("data:")
                .then(|| crate::providers::limits::image_size(url))
                .flatten();
            (Media::Image { detail, size }, url.len())
        }
        "input_audio" => (
            Media::Audio,
            p["input_audio"]["data"].as_str().map_or(0, str::len),
        ),
        "file" => (
            Media::File,
            p["file"]["file_data"].as_str().map_or(0, str::len),
        ),
        "video_url" | "input_video" => (Media::Video, 0),
        _ => (Media::Other, 0),
    })
}

fn content_chars(v: Option<&Value>) -> usize {
    match v {
        Some(Value::String(s)) => s.chars().count(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| {
                p.get("text")
                    .and_then(Value::as_str)
                    .map_or(0, |s| s.chars().count())
            })
            .sum(),
        _ => 0,
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    crate::providers::truncate(&s, 40)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(body: &str) -> String {
        match parse(body.as_bytes()) {
            Ok(_) => panic!("{body} should be refused"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn names_the_bad_field() {
        assert!(err("{").contains("not valid JSON"));
        assert!(err("[]").contains("JSON object"));
        assert!(
            err(r#"{"messages":[{"role":"user","content":"hi"}]}"#).contains("`model` is required")
        );
        assert!(err(r#"{"model":5,"messages":[]}"#).contains("`model` must be a string"));
        assert!(err(r#"{"model":"a/b","messages":"hi"}"#).contains("`messages` must be an array"));
        assert!(
            err(r#"{"model":"a/b","messages":[{"role":"user"}],"stream":"yes"}"#)
                .contains("`stream`")
        );
        assert!(
            err(r#"{"model":"a/b","messages":[{"role":"user"}],"max_tokens":-1}"#)
                .contains("`max_tokens`")
        );
        assert!(
            err(r#"{"model":"a/b","messages":[{"role":"user"}],"max_completion_tokens":0}"#)
                .contains("`max_completion_tokens` must be a positive integer")
        );
        assert!(err(r#"{"model":"a/b","messages":[{"role":"user"}],"n":0}"#).contains("`n`"));
        assert!(err(r#"{"model":"a/b","messages":[{"role":"user"}],"n":2.5}"#).contains("`n`"));
        assert!(
            err(r#"{"model":"a/b","messages":[{"content":"x"}]}"#).contains("`messages[0].role`")
        );
        assert!(err(
            r#"{"model":"a/b","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"file","file":{"file_id":"file-abc"}}]}]}"#
        )
        .contains("`messages[0].content[1].file.file_id` cannot be used here"));
    }

    #[test]
    fn keeps_unknown_fields() {
        let r = parse(br#"{"model":"a/b","messages":[{"role":"user","content":"hello"}],"max_tokens":7,"max_completion_tokens":9,"x_custom":{"a":1}}"#)
            .expect("valid");
        assert_eq!(r.max_tokens, Some(7));
        assert_eq!(r.models, vec!["a/b".to_string()]);
        assert_eq!(r.body["x_custom"]["a"], 1);
        assert!(!r.stream);
        assert_eq!(r.n, 1);
    }

    #[test]
    fn media_payloads_are_not_counted_as_text() {
        let img = format!("data:image/png;base64,{}", "A".repeat(4000));
        let body = json!({"model": "a/b", "n": 3, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": img, "detail": "low"}},
            {"type": "input_audio", "input_audio": {"data": "B".repeat(1000), "format": "wav"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,QUJD"}},
        ]}], "tools": [{"type": "function", "function": {"name": "f"}}]});
        let bytes = serde_json::to_vec(&body).expect("json");
        let r = parse(&bytes).expect("valid");
        assert_eq!(r.n, 3);
        assert!(r.shape.tools);
        assert_eq!(r.shape.media.len(), 3);
        assert_eq!(
            r.shape.media[0],
            Media::Image {
                detail: Detail::Low,
                size: None
            }
        );
        assert_eq!(r.shape.media[1], Media::Audio);
        assert_eq!(r.shape.media[2], Media::File);
        let payload = img.len() + 1000 + "data:application/pdf;base64,QUJD".len();
        assert_eq!(r.shape.text_bytes, (bytes.len() - payload) as u64);
    }
}
