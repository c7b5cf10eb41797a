//! Snapshot tests of the adapters' translations. Each file under `server/tests/snapshots/<adapter>/`
//! holds the inputs of one case (a client request; a provider's answer and stream written after its
//! documentation) and, under `expect`, what the adapter must make of them. A change in translation fails
//! the test with both versions; `UPDATE_SNAPSHOTS=1` rewrites `expect` for a change that is meant (read
//! the diff before committing it).

use super::{ChatCall, Ctx, Translator};
use crate::catalog::ProviderKind;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Checks an adapter's fixtures: `<name>_request` is what `request` makes of the case's OpenAI request;
/// `openai_response` and `openai_chunks` are what the provider's `<name>_response` and `<name>_stream`
/// become (with `created` zeroed), and `stream_complete` whether the stream finished.
pub fn check_adapter(
    kind: ProviderKind,
    name: &str,
    request: impl Fn(&Value, &ChatCall<'_>) -> Result<(Value, Ctx), String>,
) {
    check(name, |case| {
        let body = case["openai_request"]
            .as_object()
            .cloned()
            .ok_or("openai_request must be an object")?;
        let call = ChatCall {
            body: &body,
            stream: body.get("stream") == Some(&json!(true)),
            max_tokens: case["max_tokens"].as_u64().unwrap_or(1024),
        };
        let (req, ctx) = request(case, &call)?;
        let mut got = json!({ format!("{name}_request"): req });
        if let Some(r) = case.get(format!("{name}_response")) {
            let mut a = super::answer(kind, &ctx, r.clone())?;
            a["created"] = json!(0);
            got["openai_response"] = a;
        }
        if let Some(events) = case.get(format!("{name}_stream")).and_then(Value::as_array) {
            let mut t = Translator::new(kind, ctx);
            let mut chunks = Vec::new();
            let mut done = false;
            for e in events {
                done = t.feed(&e.to_string(), &mut chunks).map_err(|f| f.message)?;
            }
            done = t.finish(&mut chunks) || done;
            for c in &mut chunks {
                if c.get("created").is_some() {
                    c["created"] = json!(0);
                }
            }
            got["openai_chunks"] = Value::Array(chunks);
            got["stream_complete"] = json!(done);
        }
        Ok(got)
    });
}

pub fn check(adapter: &str, translate: impl Fn(&Value) -> Result<Value, String>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(adapter);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no snapshots in {}", dir.display());
    let update = std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read snapshot");
        let mut case: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let got = match translate(&case) {
            Ok(v) => v,
            Err(e) => serde_json::json!({"error": e}),
        };
        if case.get("expect") == Some(&got) {
            continue;
        }
        if update {
            case["expect"] = got;
            let pretty = serde_json::to_string_pretty(&case).expect("JSON") + "\n";
            std::fs::write(&path, pretty).expect("write snapshot");
            continue;
        }
        failures.push(format!(
            "{}:\n  expected {}\n  got      {}",
            path.display(),
            case.get("expect").map(Value::to_string).unwrap_or_default(),
            got
        ));
    }
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ (UPDATE_SNAPSHOTS=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
