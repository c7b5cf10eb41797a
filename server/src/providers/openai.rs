//! The `openai` adapter and the kinds that speak OpenAI's protocol: Azure OpenAI (deployments,
//! `api-version`, the `api-key` header) and the presets that differ only in base URL and quirks. The body is
//! the client's own JSON with `model` rewritten (and usage requested when streaming), so unknown fields
//! reach the upstream untouched; a preset's quirks rename or drop the few parameters its service refuses.

use super::ChatCall;
use crate::catalog::{Credential, Endpoint, ProviderKind};
use serde_json::{json, Map, Value};

/// How a service departs from OpenAI's chat API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quirks {
    /// Takes `stream_options.include_usage` (otherwise it reports usage in the last chunk unasked, or never).
    pub stream_options: bool,
    /// Knows `max_completion_tokens` (otherwise it is sent as `max_tokens`).
    pub max_completion_tokens: bool,
    /// Calls the seed `random_seed` (Mistral).
    pub random_seed: bool,
    /// Takes `reasoning_effort`.
    pub reasoning_effort: bool,
    /// Takes OpenRouter's own fields (`reasoning`, `transforms`, …) as they are.
    pub openrouter: bool,
}

pub fn quirks(kind: ProviderKind) -> Quirks {
    let base = Quirks {
        stream_options: true,
        max_completion_tokens: true,
        random_seed: false,
        reasoning_effort: true,
        openrouter: false,
    };
    match kind {
        ProviderKind::Mistral => Quirks {
            stream_options: false,
            max_completion_tokens: false,
            random_seed: true,
            reasoning_effort: false,
            ..base
        },
        ProviderKind::Deepseek | ProviderKind::Together | ProviderKind::Fireworks => Quirks {
            max_completion_tokens: false,
            reasoning_effort: false,
            ..base
        },
        ProviderKind::Ollama | ProviderKind::Vllm => Quirks {
            max_completion_tokens: false,
            ..base
        },
        // OpenRouter documents `max_tokens` (and passes it on as each provider needs).
        ProviderKind::Openrouter => Quirks {
            openrouter: true,
            max_completion_tokens: false,
            ..base
        },
        _ => base,
    }
}

/// The body an OpenAI-compatible service receives: the client's, with the model, the stream switch and
/// the output cap the hold was computed from (in the one field the service honours, any other dropped)
/// written over whatever the client sent.
pub fn body(kind: ProviderKind, upstream_model: &str, call: &ChatCall<'_>) -> Map<String, Value> {
    let q = quirks(kind);
    let mut body = call.body.clone();
    body.insert("model".into(), Value::String(upstream_model.to_string()));
    body.insert("stream".into(), Value::Bool(call.stream));
    body.remove("max_tokens");
    body.remove("max_completion_tokens");
    let cap = if q.max_completion_tokens {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    body.insert(cap.into(), json!(call.max_tokens));
    if call.stream && q.stream_options {
        let opts = body.entry("stream_options").or_insert_with(|| json!({}));
        if !opts.is_object() {
            *opts = json!({});
        }
        if let Some(o) = opts.as_object_mut() {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    } else if !q.stream_options {
        body.remove("stream_options");
    }
    if !q.openrouter {
        // OpenRouter's unified `reasoning` becomes OpenAI's `reasoning_effort` where the service has it.
        if let Some(r) = body.remove("reasoning") {
            let effort = r.get("effort").and_then(Value::as_str);
            if q.reasoning_effort && !body.contains_key("reasoning_effort") {
                if let Some(e) = effort {
                    body.insert("reasoning_effort".into(), Value::String(e.to_string()));
                }
            }
        }
        if !q.reasoning_effort {
            body.remove("reasoning_effort");
        }
    }
    if q.random_seed {
        if let Some(seed) = body.remove("seed") {
            body.insert("random_seed".into(), seed);
        }
    }
    body
}

/// Azure's `api-version` when the base URL does not carry one.
pub const AZURE_API_VERSION: &str = "2024-10-21";

/// The chat completions URL: `{base}/chat/completions`, or for Azure
/// `{base}/deployments/{deployment}/chat/completions?api-version=…` (the base URL's own `api-version`
/// query wins).
pub fn chat_url(ep: &Endpoint, path: &str) -> String {
    let base = &ep.provider.base_url;
    if ep.provider.kind != ProviderKind::Azure {
        return format!("{base}/{path}");
    }
    let (root, query) = base.split_once('?').unwrap_or((base.as_str(), ""));
    let version = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("api-version="))
        .unwrap_or(AZURE_API_VERSION);
    let root = root.trim_end_matches('/');
    format!(
        "{root}/deployments/{}/{path}?api-version={version}",
        urlencoding(&ep.upstream_model)
    )
}

/// Percent-encodes a path segment.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The request with this provider's authentication header.
pub fn authorise(
    kind: ProviderKind,
    req: reqwest::RequestBuilder,
    credential: Option<&Credential>,
) -> reqwest::RequestBuilder {
    match credential {
        Some(c) if kind == ProviderKind::Azure => req.header("api-key", c.secret.expose()),
        Some(c) => req.bearer_auth(c.secret.expose()),
        None => req,
    }
}

pub fn prepare(
    client: &reqwest::Client,
    ep: &Endpoint,
    credential: Option<&Credential>,
    call: &ChatCall<'_>,
) -> Result<super::Prepared, String> {
    let kind = ep.provider.kind;
    let body = body(kind, &ep.upstream_model, call);
    let req = client
        .post(chat_url(ep, "chat/completions"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).expect("a JSON map serialises"));
    Ok(super::Prepared {
        request: authorise(kind, req, credential),
        ctx: super::Ctx::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(body: Value, stream: bool) -> (Map<String, Value>, bool) {
        (body.as_object().cloned().expect("object"), stream)
    }

    /// The gateway's cap (the smaller of the client's and the catalog's) is 50 here.
    fn translate(kind: ProviderKind, body: Value, stream: bool) -> Value {
        let (b, stream) = call(body, stream);
        Value::Object(super::body(
            kind,
            "up-1",
            &ChatCall {
                body: &b,
                stream,
                max_tokens: 50,
            },
        ))
    }

    #[test]
    fn presets_rename_what_their_service_calls_otherwise() {
        let req = json!({"model": "a/b", "messages": [], "max_completion_tokens": 50, "seed": 7,
            "reasoning": {"effort": "high"}, "x_custom": 1, "stream_options": {"include_usage": false}});
        let openai = translate(ProviderKind::Openai, req.clone(), true);
        assert_eq!(
            openai,
            json!({"model": "up-1", "messages": [], "max_completion_tokens": 50, "seed": 7, "stream": true,
            "reasoning_effort": "high", "x_custom": 1, "stream_options": {"include_usage": true}})
        );
        let mistral = translate(ProviderKind::Mistral, req.clone(), true);
        assert_eq!(
            mistral,
            json!({"model": "up-1", "messages": [], "max_tokens": 50, "random_seed": 7, "x_custom": 1, "stream": true})
        );
        let deepseek = translate(
            ProviderKind::Deepseek,
            json!({"model": "a/b", "messages": [], "max_tokens": 80, "max_completion_tokens": 50}),
            false,
        );
        assert_eq!(
            deepseek,
            json!({"model": "up-1", "messages": [], "max_tokens": 50, "stream": false})
        );
        let openrouter = translate(ProviderKind::Openrouter, req, false);
        assert_eq!(openrouter["reasoning"], json!({"effort": "high"}));
        assert_eq!(openrouter["max_tokens"], json!(50));
    }

    #[test]
    fn the_cap_is_always_written_and_nothing_conflicts_with_it() {
        // No cap from the client: the gateway's is written all the same.
        let none = translate(ProviderKind::Openai, json!({"messages": []}), false);
        assert_eq!(none["max_completion_tokens"], json!(50));
        assert!(none.get("max_tokens").is_none());
        // A client's larger cap (in either field) never reaches the provider.
        let both = translate(
            ProviderKind::Groq,
            json!({"messages": [], "max_tokens": 9000, "max_completion_tokens": 8000}),
            false,
        );
        assert_eq!(both["max_completion_tokens"], json!(50));
        assert!(both.get("max_tokens").is_none());
        let vllm = translate(
            ProviderKind::Vllm,
            json!({"messages": [], "max_completion_tokens": 9000}),
            false,
        );
        assert_eq!(vllm["max_tokens"], json!(50));
        assert!(vllm.get("max_completion_tokens").is_none());
    }

    #[test]
    fn azure_addresses_the_deployment() {
        let provider = |base: &str| crate::catalog::Provider {
            id: "p".into(),
            slug: "az".into(),
            name: "Azure".into(),
            kind: ProviderKind::Azure,
            base_url: base.into(),
            collects_data: false,
            credentials: Vec::new(),
            s3_buckets: Vec::new(),
        };
        let ep = |base: &str| Endpoint {
            id: "e".into(),
            provider: std::sync::Arc::new(provider(base)),
            upstream_model: "gpt 4o".into(),
            input: crate::money::MtokPrice(0),
            output: crate::money::MtokPrice(0),
            cache_read: None,
            cache_write: None,
            request: crate::money::Nanos(0),
            max_output_tokens: None,
            web_search: None,
            audio_input: None,
            service_tiers: Vec::new(),
            priority: 0,
            weight: 100,
            markup: crate::money::Markup(0),
        };
        assert_eq!(
            chat_url(&ep("https://r.openai.azure.com/openai"), "chat/completions"),
            "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            chat_url(
                &ep("https://r.openai.azure.com/openai?api-version=2025-01-01-preview"),
                "embeddings"
            ),
            "https://r.openai.azure.com/openai/deployments/gpt%204o/embeddings?api-version=2025-01-01-preview"
        );
    }
}
