//! Between the two shapes of an answer. Upstreams are always asked to stream, so that the gateway sees a
//! generation progress (its time limits are idle limits, and an answer cut short is counted); a client
//! that did not ask for a stream gets the chunks merged into one `chat.completion` (`Completion`). An
//! upstream that answers a stream request with one complete JSON answer anyway is turned into chunks
//! for a streaming client (`chunks_of`).
//!
//! Merging follows the rule OpenAI's own SDKs use to rebuild a completion from its stream: strings are
//! appended, objects merged key by key, lists of objects that carry an `index` merged by that index and
//! other lists extended; identifiers (`index`, `type`, `id`, `role`, `name`, `format`) are replaced, not
//! appended, since some providers repeat them in every chunk. Fields the gateway does not know survive.

use super::chat::{stream_failure, StreamStart};
use super::meter::Meter;
use super::sse::SseError;
use crate::catalog::Endpoint;
use crate::providers::{FailureKind, Timeouts, UpstreamFailure};
use crate::state::AppState;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A whole answer read from an upstream stream.
pub(super) struct Collected {
    pub answer: Value,
    pub meter: Meter,
    /// Why reading stopped before the stream's end (shutdown past its grace, a provider producing past
    /// the cap it was told): the answer so far is kept and billed, and ends with this error.
    pub cut: Option<String>,
}

/// Reads an upstream stream to its end (each silence within the idle limit), merging it into one
/// answer. A failure before the end is the attempt's: nothing has reached the client yet.
pub(super) async fn read_to_end(
    state: &AppState,
    ep: &Endpoint,
    start: StreamStart,
    t: Timeouts,
    output_bound: u64,
) -> Result<Collected, UpstreamFailure> {
    let fail =
        |kind, message: String| UpstreamFailure::new(kind, &ep.provider.name, message).billable();
    let StreamStart {
        mut reader,
        mut translator,
        pending,
        mut done,
    } = start;
    let mut meter = Meter::default();
    let mut answer = Completion::default();
    let mut chunks = pending;
    let mut shutdown = state.cut_streams.subscribe();
    let mut cut = None;
    loop {
        for mut c in chunks.drain(..) {
            meter.note(&mut c);
            answer.add(c);
        }
        if done {
            break;
        }
        if meter.runaway(output_bound) {
            tracing::warn!(provider = %ep.provider.slug, "the provider went on past the output cap it was given; reading stopped");
            cut = Some(format!(
                "provider {} went on past the output cap; the answer was cut",
                ep.provider.name
            ));
            break;
        }
        let Some(r) = reader.as_mut() else { break };
        let next = tokio::select! {
            n = tokio::time::timeout(t.idle, r.next_data()) => n,
            _ = shutdown.wait_for(|c| *c) => {
                cut = Some("the platform is shutting down; the answer was cut".to_string());
                break;
            }
        };
        match next {
            Err(_) => {
                return Err(fail(
                    FailureKind::Timeout,
                    format!("sent nothing for {} s mid-answer", t.idle.as_secs()),
                ))
            }
            Ok(Err(e @ SseError::Broken(_))) => {
                return Err(fail(
                    FailureKind::Connect,
                    format!("the stream broke mid-answer: {e}"),
                ))
            }
            Ok(Err(e)) => return Err(fail(FailureKind::Malformed, e.to_string())),
            Ok(Ok(None)) => {
                // A protocol without an end marker (or an upstream that closes after its finish
                // reason without [DONE]) still finished.
                done = translator.finish(&mut chunks)
                    || answer.finished()
                    || chunks
                        .iter()
                        .any(|c| c["choices"][0]["finish_reason"].is_string());
                if !done {
                    return Err(fail(
                        FailureKind::Connect,
                        "the stream ended before the answer finished".into(),
                    ));
                }
            }
            Ok(Ok(Some(data))) => {
                done = translator
                    .feed(&data, &mut chunks)
                    .map_err(|f| stream_failure(ep, f))?;
            }
        }
    }
    drop(reader); // closes the upstream connection
    Ok(Collected {
        answer: answer.finish(),
        meter,
        cut,
    })
}

/// Keys whose value is an identifier: a repeat replaces it.
const IDENTIFIERS: &[&str] = &["index", "type", "id", "role", "name", "format"];

/// Merges `delta` into `acc` (taking what it needs from `delta`, which is used up).
pub fn merge(acc: &mut Map<String, Value>, delta: Map<String, Value>) {
    for (k, dv) in delta {
        if dv.is_null() {
            acc.entry(k).or_insert(Value::Null);
            continue;
        }
        let Some(av) = acc.get_mut(&k) else {
            acc.insert(k, dv);
            continue;
        };
        if IDENTIFIERS.contains(&k.as_str()) || av.is_null() {
            *av = dv;
            continue;
        }
        match (av, dv) {
            (Value::String(a), Value::String(d)) => a.push_str(&d),
            (Value::Object(a), Value::Object(d)) => merge(a, d),
            (Value::Array(a), Value::Array(d)) => merge_list(a, d),
            (av, dv) => *av = dv,
        }
    }
}

fn merge_list(acc: &mut Vec<Value>, delta: Vec<Value>) {
    for item in delta {
        let index = item.get("index").and_then(Value::as_u64);
        let found = index.and_then(|i| {
            acc.iter_mut()
                .find(|a| a.get("index").and_then(Value::as_u64) == Some(i))
        });
        match (found, item) {
            (Some(Value::Object(a)), Value::Object(d)) => merge(a, d),
            (_, item) => acc.push(item),
        }
    }
}

/// One choice being rebuilt: its merged delta (the message) and its other fields (`finish_reason`,
/// `logprobs`).
type Choice = (Map<String, Value>, Map<String, Value>);

/// A completion being rebuilt from its chunks.
#[derive(Debug, Default)]
pub struct Completion {
    /// Top-level fields of the chunks (`id`, `created`, `model`, `system_fingerprint`, …).
    top: Map<String, Value>,
    /// Per choice index.
    choices: BTreeMap<u64, Choice>,
}

impl Completion {
    /// Adds one chunk (its usage already taken out by the meter).
    pub fn add(&mut self, chunk: Value) {
        let Value::Object(obj) = chunk else {
            return;
        };
        for (k, v) in obj {
            match k.as_str() {
                "object" | "usage" => {}
                "choices" => {
                    let Value::Array(choices) = v else { continue };
                    for c in choices {
                        self.add_choice(c);
                    }
                }
                _ if v.is_null() => {}
                _ => {
                    self.top.insert(k, v);
                }
            }
        }
    }

    fn add_choice(&mut self, c: Value) {
        let Value::Object(o) = c else { return };
        let index = o.get("index").and_then(Value::as_u64).unwrap_or(0);
        let (message, rest) = self.choices.entry(index).or_default();
        for (k, v) in o {
            match (k.as_str(), v) {
                ("index", _) => {}
                ("delta", Value::Object(d)) => merge(message, d),
                ("delta", _) => {}
                ("logprobs", Value::Object(d)) => {
                    let acc = rest.entry(k).or_insert_with(|| json!({}));
                    match acc {
                        Value::Object(a) => merge(a, d),
                        acc => *acc = Value::Object(d),
                    }
                }
                (_, Value::Null) => {
                    rest.entry(k).or_insert(Value::Null);
                }
                (_, v) => {
                    rest.insert(k, v);
                }
            }
        }
    }

    /// Whether a choice has its finish reason.
    pub fn finished(&self) -> bool {
        self.choices
            .values()
            .any(|(_, rest)| rest.get("finish_reason").is_some_and(|f| !f.is_null()))
    }

    /// The `chat.completion` the chunks make.
    pub fn finish(self) -> Value {
        let mut out = self.top;
        out.insert("object".into(), json!("chat.completion"));
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, (mut message, rest))| {
                message.insert("role".into(), json!("assistant"));
                let has_calls = message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if !message.get("content").is_some_and(Value::is_string) {
                    message.insert(
                        "content".into(),
                        if has_calls { Value::Null } else { json!("") },
                    );
                }
                // Stream-only bookkeeping of tool calls has no place in a message.
                if let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    for c in calls {
                        if let Some(o) = c.as_object_mut() {
                            o.remove("index");
                        }
                    }
                }
                let mut choice = Map::new();
                choice.insert("index".into(), json!(index));
                choice.insert("message".into(), Value::Object(message));
                choice.insert("logprobs".into(), Value::Null);
                choice.insert("finish_reason".into(), Value::Null);
                choice.extend(rest);
                Value::Object(choice)
            })
            .collect();
        out.insert("choices".into(), Value::Array(choices));
        Value::Object(out)
    }
}

/// A complete answer as the chunks a stream of it would have carried: one with each choice's message,
/// then one with the finish reasons, then the usage.
pub fn chunks_of(answer: &Value) -> Vec<Value> {
    let mut head = Map::new();
    for k in [
        "id",
        "created",
        "model",
        "system_fingerprint",
        "service_tier",
    ] {
        if let Some(v) = answer.get(k).filter(|v| !v.is_null()) {
            head.insert(k.into(), v.clone());
        }
    }
    head.insert("object".into(), json!("chat.completion.chunk"));
    let with = |choices: Vec<Value>| {
        let mut c = head.clone();
        c.insert("choices".into(), Value::Array(choices));
        Value::Object(c)
    };
    let choices = answer["choices"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut deltas = Vec::new();
    let mut finishes = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        let index = c["index"].as_u64().unwrap_or(i as u64);
        let mut delta = c["message"].clone();
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (j, call) in calls.iter_mut().enumerate() {
                call["index"] = json!(j);
            }
        }
        deltas.push(json!({"index": index, "delta": delta, "logprobs": c["logprobs"], "finish_reason": null}));
        let mut fin = json!({"index": index, "delta": {}, "finish_reason": c["finish_reason"]});
        if let Some(native) = c.get("native_finish_reason") {
            fin["native_finish_reason"] = native.clone();
        }
        finishes.push(fin);
    }
    let mut out = vec![with(deltas), with(finishes)];
    if let Some(u) = answer.get("usage").filter(|u| u.is_object()) {
        let mut last = with(Vec::new());
        last["usage"] = u.clone();
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_merge_into_the_completion_they_stream() {
        let chunks = [
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m", "system_fingerprint": "fp",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null},
                            {"index": 1, "delta": {"role": "assistant", "content": "B"}, "finish_reason": null}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel", "reasoning": "th"},
                "logprobs": {"content": [{"token": "Hel", "logprob": -0.1}]}, "finish_reason": null}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo", "reasoning": "ink",
                "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"a\""}}]},
                "logprobs": {"content": [{"token": "lo", "logprob": -0.2}]}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}},
                {"index": 1, "id": "call_2", "type": "function", "function": {"name": "put", "arguments": "{}"}}],
                "x_vendor": {"score": 1}}}]}),
            json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls", "native_finish_reason": "tool_use"},
                                           {"index": 1, "delta": {}, "finish_reason": "stop"}]}),
        ];
        let mut c = Completion::default();
        for ch in &chunks {
            c.add(ch.clone());
        }
        let v = c.finish();
        assert_eq!(
            v,
            json!({"id": "c1", "object": "chat.completion", "created": 7, "model": "m", "system_fingerprint": "fp",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "Hello", "reasoning": "think",
                        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{\"a\":1}"}},
                                       {"id": "call_2", "type": "function", "function": {"name": "put", "arguments": "{}"}}],
                        "x_vendor": {"score": 1}},
                     "logprobs": {"content": [{"token": "Hel", "logprob": -0.1}, {"token": "lo", "logprob": -0.2}]},
                     "finish_reason": "tool_calls", "native_finish_reason": "tool_use"},
                    {"index": 1, "message": {"role": "assistant", "content": "B"}, "logprobs": null, "finish_reason": "stop"}]})
        );
        // And back: a complete answer streams as the same content.
        let mut again = Completion::default();
        for ch in chunks_of(&v) {
            again.add(ch);
        }
        assert_eq!(again.finish()["choices"], v["choices"]);
    }

    #[test]
    fn a_message_with_only_tool_calls_has_null_content() {
        let mut c = Completion::default();
        c.add(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "x", "function": {"name": "f", "arguments": "{}"}}]}}]}));
        let v = c.finish();
        assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(v["choices"][0]["finish_reason"], Value::Null);
    }
}
