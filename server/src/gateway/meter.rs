//! What an answer has produced so far, as it streams: every kind of output (content, reasoning, tool-call
//! arguments and names, refusals, audio transcripts) counted per choice, and the latest usage the
//! provider reported. A stream cut before its usage chunk is billed for everything that arrived, not
//! only its text.

use serde_json::Value;

#[derive(Debug, Default)]
pub struct Meter {
    /// Characters of output.
    chars: u64,
    /// Choice-deltas that carried output: providers send about one token each.
    chunks: u64,
    /// The last usage the provider reported (its final usage chunk, or a running count).
    pub usage: Option<Value>,
    /// The upstream's id of the answer.
    pub upstream_id: Option<String>,
    /// The service tier the provider says it served (OpenAI's `service_tier`).
    pub service_tier: Option<String>,
}

impl Meter {
    /// Notes one translated chunk: takes any usage out of it (the client gets ours, with `cost`) and
    /// counts its output.
    pub fn note(&mut self, chunk: &mut Value) {
        if let Some(obj) = chunk.as_object_mut() {
            if let Some(u) = obj.remove("usage").filter(|u| !u.is_null()) {
                self.usage = Some(u);
            }
        }
        if let Some(t) = chunk.get("service_tier").and_then(Value::as_str) {
            self.service_tier = Some(t.to_string());
        }
        if self.upstream_id.is_none() {
            self.upstream_id = chunk["id"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string);
        }
        for c in chunk["choices"].as_array().into_iter().flatten() {
            let n = output_chars(&c["delta"]);
            if n > 0 {
                self.chars += n;
                self.chunks += 1;
            }
        }
    }

    /// Output tokens that arrived, estimated: about one a chunk, or four characters each, whichever is
    /// more.
    pub fn output_estimate(&self) -> u64 {
        self.chunks.max(self.chars.div_ceil(4))
    }

    /// More output than `bound` tokens could make, by a wide margin: a provider that ignores the cap it
    /// was given (the hold still bounds the charge; this bounds the reading).
    pub fn runaway(&self, bound: u64) -> bool {
        self.chunks > bound.saturating_mul(2).saturating_add(64)
    }
}

/// Characters of output in a chat delta (or a complete message).
pub fn output_chars(d: &Value) -> u64 {
    let s = |v: &Value| v.as_str().map_or(0, |s| s.chars().count() as u64);
    let mut n = s(&d["content"]) + s(&d["refusal"]) + s(&d["audio"]["transcript"]);
    // Reasoning comes as `reasoning` (OpenRouter's), `reasoning_content` (DeepSeek, vLLM), or only in
    // `reasoning_details` (which otherwise repeats it).
    let reasoning = s(&d["reasoning"]).max(s(&d["reasoning_content"]));
    n += if reasoning > 0 {
        reasoning
    } else {
        d["reasoning_details"]
            .as_array()
            .map_or(0, |a| a.iter().map(|r| s(&r["text"])).sum())
    };
    for tc in d["tool_calls"].as_array().into_iter().flatten() {
        n += s(&tc["function"]["arguments"]) + s(&tc["function"]["name"]);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_of_output_counts() {
        let mut m = Meter::default();
        for mut c in [
            json!({"id": "up-1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"index": 0, "delta": {"reasoning": "Thinking hard"}}]}),
            json!({"choices": [{"index": 0, "delta": {"reasoning_content": "more"}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "get", "arguments": "{\"city\":"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"refusal": "No."}}, {"index": 1, "delta": {"content": "Yes"}}]}),
            json!({"choices": [{"index": 0, "delta": {"reasoning_details": [{"type": "reasoning.text", "text": "abcd"}]}}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3}}),
        ] {
            m.note(&mut c);
            assert!(c.get("usage").is_none(), "usage is taken out");
        }
        assert_eq!(m.upstream_id.as_deref(), Some("up-1"));
        assert_eq!(m.chunks, 6);
        assert_eq!(m.chars, 13 + 4 + 3 + 8 + 3 + 3 + 4);
        assert_eq!(m.output_estimate(), 10);
        assert_eq!(m.usage, Some(json!({"prompt_tokens": 3})));
        assert!(!m.runaway(0));
    }
}
