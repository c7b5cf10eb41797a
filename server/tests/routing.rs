//! Adapters and routing end to end over HTTP, on SQLite and PostgreSQL: Anthropic, Gemini and Azure
//! endpoints served by the fake (speaking each provider's wire format), failures injected on the first
//! endpoint (500, 429, overload, hang, malformed body, a stream cut before its first token) falling back
//! to the next with one clean answer billed once at the serving endpoint's price, streams cut after the
//! first token ending with an error chunk, the circuit breaker opening and closing, and every routing
//! preference.

mod common;

use common::{arm, ask, sse_events, Db, TestApp, BEDROCK_KEY, UPSTREAM_KEY};
use serde_json::{json, Value};
use std::time::Duration;
use switchyard::{catalog, crypto::Cipher, money::Nanos};

/// Providers of every wire format on the one fake, and models that route between them.
fn routing_catalog(fake: std::net::SocketAddr) -> String {
    format!(
        r#"
[[providers]]
slug = "anth"
name = "Fake Anthropic"
kind = "anthropic"
base_url = "http://{fake}/v1"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "gem"
name = "Fake Gemini"
kind = "gemini"
base_url = "http://{fake}/v1beta"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "az"
name = "Fake Azure"
kind = "azure"
base_url = "http://{fake}/openai?api-version=2024-10-21"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "aws"
name = "Fake Bedrock"
kind = "bedrock"
base_url = "http://{fake}/bedrock?region=eu-west-1"
api_key = "{BEDROCK_KEY}"

[[providers]]
slug = "aws-bad"
name = "Bedrock With A Wrong Secret"
kind = "bedrock"
base_url = "http://{fake}/bedrock?region=eu-west-1"
api_key = "AKIAFAKEBEDROCK01:not-the-secret"

[[providers]]
slug = "cheap"
name = "Cheap Host"
kind = "openai"
base_url = "http://{fake}/v1"
api_key = "{UPSTREAM_KEY}"
collects_data = true

[[providers]]
slug = "dear"
name = "Dear Host"
kind = "openai"
base_url = "http://{fake}/v1"
api_key = "{UPSTREAM_KEY}"

[[models]]
slug = "route/claude"
name = "Claude via two providers"
context_length = 200000
max_output_tokens = 4096
[[models.endpoints]]
provider = "anth"
upstream_model = "claude-a"
input_per_mtok = "3.00"
output_per_mtok = "15.00"
[[models.endpoints]]
provider = "fake"
upstream_model = "claude-backup"
input_per_mtok = "0.50"
output_per_mtok = "1.50"
weight = 0

[[models]]
slug = "route/gemini"
name = "Gemini"
context_length = 1000000
max_output_tokens = 8192
[[models.endpoints]]
provider = "gem"
upstream_model = "gemini-a"
input_per_mtok = "0.30"
output_per_mtok = "2.50"
[[models.endpoints]]
provider = "fake"
upstream_model = "gemini-backup"
input_per_mtok = "0.50"
output_per_mtok = "1.50"
weight = 0

[[models]]
slug = "route/bedrock"
name = "Claude on Bedrock"
context_length = 200000
max_output_tokens = 4096
[[models.endpoints]]
provider = "aws"
upstream_model = "anthropic.claude-3-haiku-20240307-v1:0"
input_per_mtok = "0.25"
output_per_mtok = "1.25"
[[models.endpoints]]
provider = "fake"
upstream_model = "bedrock-backup"
input_per_mtok = "0.50"
output_per_mtok = "1.50"
weight = 0

[[models]]
slug = "route/bedrock-bad"
name = "Bedrock, badly configured"
context_length = 8000
[[models.endpoints]]
provider = "aws-bad"
upstream_model = "meta.llama3-1-70b-instruct-v1:0"
input_per_mtok = "0.99"
output_per_mtok = "0.99"

[[models]]
slug = "route/azure"
name = "Azure deployment"
context_length = 128000
max_output_tokens = 4096
[[models.endpoints]]
provider = "az"
upstream_model = "dep-1"
input_per_mtok = "2.50"
output_per_mtok = "10.00"

[[models]]
slug = "route/embed"
name = "Embeddings"
context_length = 8192
output_modalities = ["embeddings"]
[[models.endpoints]]
provider = "anth"
upstream_model = "not-an-embedder"
input_per_mtok = "0.01"
output_per_mtok = "0"
[[models.endpoints]]
provider = "fake"
upstream_model = "embed-1"
input_per_mtok = "0.10"
output_per_mtok = "0"
weight = 0

[[models]]
slug = "route/pair"
name = "One model, two hosts"
context_length = 32000
max_output_tokens = 1000
[[models.endpoints]]
provider = "cheap"
upstream_model = "pair-cheap"
input_per_mtok = "1.00"
output_per_mtok = "1.00"
[[models.endpoints]]
provider = "dear"
upstream_model = "pair-dear"
input_per_mtok = "2.00"
output_per_mtok = "2.00"
"#
    )
}

async fn start(db: Db) -> TestApp {
    let app = TestApp::start_with(db, |c| c.breaker_cooldown_ms = 400).await;
    let cipher = Cipher::from_config(&app.cfg).expect("cipher");
    catalog::file::apply(
        &app.store,
        &cipher,
        "routing.toml",
        &routing_catalog(app.fake),
        &|_| None,
    )
    .await
    .expect("apply routing catalog");
    app.state
        .catalog
        .refresh(&app.store, &cipher)
        .await
        .expect("refresh");
    app.grant("10").await;
    app
}

async fn fake_count(app: &TestApp, model: &str) -> u64 {
    let v: Value = app
        .http
        .get(format!("http://{}/_fake/stats", app.fake))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    v["by_model"][model].as_u64().unwrap_or(0)
}

fn usd(v: &Value) -> i64 {
    let f: f64 = v.to_string().trim_matches('"').parse().expect("a number");
    Nanos::parse_usd(&format!("{f:.9}")).expect("usd").0
}

/// ceil(cost × 1.1) for a usage at a price per million tokens, independently of the server's code.
fn charge(
    prompt: u64,
    completion: u64,
    input_nanos_per_tok: u64,
    output_nanos_per_tok: u64,
) -> i64 {
    let raw = (prompt * input_nanos_per_tok + completion * output_nanos_per_tok) as i128 * 11;
    ((raw + 9) / 10) as i64
}

fn msg(model: &str, extra: Value) -> Value {
    let mut b =
        json!({"model": model, "messages": [{"role": "user", "content": "Hello there, adapter."}]});
    if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
        o.extend(e);
    }
    b
}

async fn every_adapter_answers_streams_and_bills_its_own_price(db: Db) {
    let app = start(db).await;
    // Anthropic, non-streamed: translated answer, usage, charge at Anthropic's price.
    let (s, v, gen) = ask(
        &app,
        msg("route/claude", json!({"max_tokens": 64, "stop": ["never"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "Fake Anthropic");
    assert_eq!(v["model"], "route/claude");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["native_finish_reason"], "end_turn");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .starts_with("Hello from"));
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_u64().expect("p"),
        v["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(c, 24);
    assert_eq!(usd(&v["usage"]["cost"]), charge(p, c, 3000, 15000));
    let sent = app.fake_stats.last_body.lock().clone().expect("body");
    assert_eq!(sent["model"], "claude-a");
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(sent["stop_sequences"], json!(["never"]));
    let g = app.wait_generation(&gen).await;
    assert_eq!(g["provider_name"], "anth");

    // Anthropic, streamed: chunks as they arrive, the final usage chunk with the same cost rule.
    let r = app
        .chat(msg(
            "route/claude",
            json!({"stream": true, "max_tokens": 10}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let events = sse_events(&r.text().await.expect("text"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 10, "{text}");
    let fin = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .expect("finish");
    assert_eq!(fin["choices"][0]["finish_reason"], "length");
    assert_eq!(fin["choices"][0]["native_finish_reason"], "max_tokens");
    let last = chunks.last().expect("usage chunk");
    let (p, c) = (
        last["usage"]["prompt_tokens"].as_u64().expect("p"),
        last["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(c, 10);
    assert_eq!(usd(&last["usage"]["cost"]), charge(p, c, 3000, 15000));

    // Anthropic tools: the call comes back as tool_calls; its result goes back as tool_result.
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let (s, v, _) = ask(
        &app,
        msg(
            "route/claude",
            json!({"tools": tools, "tool_choice": "required"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("args"))
        .expect("json args");
    assert_eq!(args["city"], "Paris");
    let follow = json!({"model": "route/claude", "tools": tools, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18 C"}]});
    let (s, v, _) = ask(&app, follow).await;
    assert_eq!(s, 200, "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string());
    let sent = app.fake_stats.last_body.lock().clone().expect("body");
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");

    // Anthropic prompt caching: written on first sight, read after, both counted and priced as prompt.
    let cached = json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "A long shared preamble. ".repeat(40), "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Hi"}]});
    let (_, first, _) = ask(&app, msg("route/claude", cached.clone())).await;
    let (_, second, _) = ask(&app, msg("route/claude", cached)).await;
    let write = first["usage"]["prompt_tokens_details"]["cache_write_tokens"]
        .as_u64()
        .expect("w");
    assert!(write > 200, "{first}");
    assert_eq!(
        second["usage"]["prompt_tokens_details"]["cached_tokens"],
        write
    );
    assert_eq!(
        first["usage"]["prompt_tokens"],
        second["usage"]["prompt_tokens"]
    );

    // Gemini, non-streamed and streamed.
    let (s, v, _) = ask(&app, msg("route/gemini", json!({"max_tokens": 12}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "Fake Gemini");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["choices"][0]["native_finish_reason"], "MAX_TOKENS");
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_u64().expect("p"),
        v["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(c, 12);
    assert_eq!(usd(&v["usage"]["cost"]), charge(p, c, 300, 2500));
    let sent = app.fake_stats.last_body.lock().clone().expect("body");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 12);
    let r = app.chat(msg("route/gemini", json!({"stream": true}))).await;
    let events = sse_events(&r.text().await.expect("text"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 24);
    assert_eq!(
        chunks.last().expect("usage")["usage"]["completion_tokens"],
        24
    );
    // A prompt Gemini blocks for safety finishes with content_filter and charges no output.
    arm(&app, "gemini-a", 1, json!({"safety_block": true})).await;
    let (s, v, _) = ask(&app, msg("route/gemini", json!({}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["choices"][0]["native_finish_reason"], "SAFETY");
    assert_eq!(v["usage"]["completion_tokens"], 0);

    // Azure: the deployment in the path, api-version, the api-key header.
    let (s, v, _) = ask(&app, msg("route/azure", json!({}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "Fake Azure");
    assert_eq!(fake_count(&app, "dep-1").await, 1);

    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

/// Bedrock: requests signed with SigV4 (the fake recomputes each signature from what arrived), the
/// Converse translation both ways, ConverseStream's binary event stream, tools, prompt caching, AWS's
/// errors and in-stream exceptions falling back before the first token, and a wrong secret reported as
/// the operator's to fix.
async fn bedrock_signs_translates_streams_and_falls_back(db: Db) {
    let app = start(db).await;
    const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
    let (s, v, gen) = ask(
        &app,
        msg(
            "route/bedrock",
            json!({"max_tokens": 64, "stop": ["never"], "temperature": 1.6, "user": "u-7"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "Fake Bedrock", "signed and answered: {v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["native_finish_reason"], "end_turn");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .starts_with("Hello from"));
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_u64().expect("p"),
        v["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(c, 24);
    assert_eq!(usd(&v["usage"]["cost"]), charge(p, c, 250, 1250));
    let sent = app.fake_stats.last_body.lock().clone().expect("body");
    assert_eq!(
        sent["inferenceConfig"],
        json!({"maxTokens": 64, "stopSequences": ["never"], "temperature": 1.0})
    );
    assert_eq!(sent["requestMetadata"]["user"], "u-7");
    assert_eq!(fake_count(&app, MODEL).await, 1);
    let g = app.wait_generation(&gen).await;
    assert_eq!(g["provider_name"], "aws");

    // Streamed: ConverseStream's binary frames become chunks as they arrive.
    let r = app
        .chat(msg(
            "route/bedrock",
            json!({"stream": true, "max_tokens": 10}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let events = sse_events(&r.text().await.expect("text"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk"))
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 10, "{text}");
    let fin = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .expect("finish");
    assert_eq!(fin["choices"][0]["finish_reason"], "length");
    assert_eq!(fin["choices"][0]["native_finish_reason"], "max_tokens");
    let last = chunks.last().expect("usage chunk");
    assert_eq!(last["provider"], "Fake Bedrock");
    let (p, c) = (
        last["usage"]["prompt_tokens"].as_u64().expect("p"),
        last["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(c, 10);
    assert_eq!(usd(&last["usage"]["cost"]), charge(p, c, 250, 1250));

    // Tools, streamed: the call's name first, its arguments in pieces; the result goes back as a
    // toolResult block (with the toolConfig Bedrock requires beside it).
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let r = app
        .chat(msg(
            "route/bedrock",
            json!({"tools": tools, "tool_choice": "required", "stream": true}),
        ))
        .await;
    let events = sse_events(&r.text().await.expect("text"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk"))
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]
                .as_object()
                .map(|_| &c["choices"][0]["delta"]["tool_calls"][0])
        })
        .collect();
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let id = calls[0]["id"].as_str().expect("id").to_string();
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).expect("args")["city"],
        "Paris"
    );
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    let follow = json!({"model": "route/bedrock", "tools": tools, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": "get_weather", "arguments": args}}]},
        {"role": "tool", "tool_call_id": id, "content": "18 C"}]});
    let (s, v, _) = ask(&app, follow).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["provider"], "Fake Bedrock");
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
    let sent = app.fake_stats.last_body.lock().clone().expect("body");
    assert_eq!(
        sent["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        id
    );

    // Prompt caching: a cachePoint's prefix is written, then read; both are priced as prompt.
    let cached = json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "A long shared preamble. ".repeat(40), "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Hi"}]});
    let (_, first, _) = ask(&app, msg("route/bedrock", cached.clone())).await;
    let (_, second, _) = ask(&app, msg("route/bedrock", cached)).await;
    let write = first["usage"]["prompt_tokens_details"]["cache_write_tokens"]
        .as_u64()
        .expect("w");
    assert!(write > 200, "{first}");
    assert_eq!(
        second["usage"]["prompt_tokens_details"]["cached_tokens"],
        write
    );
    assert_eq!(
        first["usage"]["prompt_tokens"],
        second["usage"]["prompt_tokens"]
    );

    // Failures before the first token fall back to the backup, billed once at its price; the
    // Bedrock attempt is recorded with what went wrong. The throttle comes last: its key then rests.
    // (An HTTP 429 is the generic path every adapter shares; the in-stream throttle is Bedrock's own.)
    let cases = [
        (json!({"status": 500}), false, "upstream_error", 500),
        (json!({"status": 503}), true, "provider_overloaded", 503),
        (
            json!({"malformed": true}),
            true,
            "invalid_upstream_response",
            0,
        ),
        (
            json!({"stream_exception": "throttlingException"}),
            true,
            "rate_limited",
            429,
        ),
    ];
    for (i, (switches, stream, error_type, status)) in cases.into_iter().enumerate() {
        // Two answers between failures keep the endpoint's breaker closed.
        for _ in 0..2 {
            let (s, v, _) = ask(&app, msg("route/bedrock", json!({"max_tokens": 2}))).await;
            assert_eq!(
                (s, v["provider"].as_str()),
                (200, Some("Fake Bedrock")),
                "before case {i}"
            );
        }
        let before = app.usage_nanos().await;
        arm(&app, MODEL, 1, switches.clone()).await;
        let r = app
            .chat(msg(
                "route/bedrock",
                json!({"stream": stream, "max_tokens": 20}),
            ))
            .await;
        assert_eq!(r.status(), 200, "case {i} {switches}");
        let gen = r.headers()["x-generation-id"]
            .to_str()
            .expect("id")
            .to_string();
        let text = r.text().await.expect("body");
        let usage = if stream {
            assert!(
                !text.contains("\"error\""),
                "case {i}: a clean stream: {text}"
            );
            let events = sse_events(&text);
            serde_json::from_str::<Value>(&events[events.len() - 2]).expect("usage chunk")
        } else {
            serde_json::from_str::<Value>(&text).expect("json")
        };
        assert_eq!(usage["provider"], "Fake OpenAI", "case {i}: {usage}");
        let (p, c) = (
            usage["usage"]["prompt_tokens"].as_u64().expect("p"),
            usage["usage"]["completion_tokens"].as_u64().expect("c"),
        );
        let g = app.wait_generation(&gen).await;
        let attempts = g["provider_responses"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 2, "case {i}: {attempts:?}");
        assert_eq!(attempts[0]["provider"], "aws");
        assert_eq!(
            attempts[0]["error_type"], error_type,
            "case {i}: {attempts:?}"
        );
        assert_eq!(attempts[0]["status"], status, "case {i}");
        assert_eq!(
            app.usage_nanos().await - before,
            charge(p, c, 500, 1500),
            "case {i}: billed once, at the backup's price"
        );
    }

    // The throttled key rests (Bedrock names no Retry-After: the default rest): the next request goes
    // straight to the backup without asking Bedrock.
    let asked = fake_count(&app, MODEL).await;
    let (s, v, _) = ask(&app, msg("route/bedrock", json!({}))).await;
    assert_eq!((s, v["provider"].as_str()), (200, Some("Fake OpenAI")));
    assert_eq!(
        fake_count(&app, MODEL).await,
        asked,
        "a resting key is not used"
    );

    // A wrong secret: AWS's refusal, named as the operator's to fix; nothing charged.
    let before = app.usage_nanos().await;
    let (s, v, _) = ask(&app, msg("route/bedrock-bad", json!({}))).await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["metadata"]["error_type"], "upstream_auth_failed");
    assert!(
        v["error"]["metadata"]["raw"]
            .as_str()
            .expect("raw")
            .contains("signature we calculated does not match"),
        "{v}"
    );
    assert_eq!(app.usage_nanos().await, before);

    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn failures_before_the_first_token_fall_back_and_bill_once(db: Db) {
    let app = start(db).await;
    // Each failure of the Anthropic endpoint falls back to the OpenAI-compatible backup, which is
    // cheaper: the answer is billed once, at the backup's price, and both attempts are recorded.
    let cases = [
        (json!({"status": 500}), false, "upstream_error", 500),
        (json!({"status": 529}), false, "provider_overloaded", 529),
        (json!({"status": 429}), false, "rate_limited", 429),
        (json!({"hang": true}), false, "timeout", 0),
        (
            json!({"malformed": true}),
            false,
            "invalid_upstream_response",
            0,
        ),
        (json!({"status": 500}), true, "upstream_error", 500),
        (json!({"drop_after": 0}), true, "upstream_unreachable", 0),
    ];
    for (i, (switches, stream, error_type, status)) in cases.into_iter().enumerate() {
        // Two answers between failures keep the endpoint's breaker closed (one failure in three).
        for _ in 0..2 {
            let (s, v, _) = ask(&app, msg("route/claude", json!({"max_tokens": 2}))).await;
            assert_eq!(
                (s, v["provider"].as_str()),
                (200, Some("Fake Anthropic")),
                "before case {i}"
            );
        }
        let before = app.usage_nanos().await;
        arm(&app, "claude-a", 1, switches.clone()).await;
        let r = app
            .chat(msg(
                "route/claude",
                json!({"stream": stream, "max_tokens": 20}),
            ))
            .await;
        assert_eq!(r.status(), 200, "case {i} {switches}");
        let gen = r.headers()["x-generation-id"]
            .to_str()
            .expect("id")
            .to_string();
        let text = r.text().await.expect("body");
        let (p, c) = if stream {
            let events = sse_events(&text);
            let last: Value = serde_json::from_str(&events[events.len() - 2]).expect("usage chunk");
            assert!(
                !text.contains("\"error\""),
                "case {i}: a clean stream: {text}"
            );
            assert_eq!(last["provider"], "Fake OpenAI");
            (
                last["usage"]["prompt_tokens"].as_u64().expect("p"),
                last["usage"]["completion_tokens"].as_u64().expect("c"),
            )
        } else {
            let v: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(v["provider"], "Fake OpenAI", "case {i}: {v}");
            (
                v["usage"]["prompt_tokens"].as_u64().expect("p"),
                v["usage"]["completion_tokens"].as_u64().expect("c"),
            )
        };
        let g = app.wait_generation(&gen).await;
        assert_eq!(g["provider_name"], "fake", "case {i}");
        let attempts = g["provider_responses"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 2, "case {i}: {attempts:?}");
        assert_eq!(attempts[0]["provider"], "anth");
        assert_eq!(
            attempts[0]["error_type"], error_type,
            "case {i}: {attempts:?}"
        );
        assert_eq!(attempts[0]["status"], status, "case {i}");
        assert_eq!(attempts[1]["status"], 200);
        let paid = app.usage_nanos().await - before;
        assert_eq!(
            paid,
            charge(p, c, 500, 1500),
            "case {i}: billed once, at the backup's price"
        );
        assert_eq!(usd(&g["total_cost"]), paid);
        if status == 429 {
            // The rate-limited key rests: the next request goes straight to the backup.
            let asked = fake_count(&app, "claude-a").await;
            let (s, v, _) = ask(&app, msg("route/claude", json!({}))).await;
            assert_eq!((s, v["provider"].as_str()), (200, Some("Fake OpenAI")));
            assert_eq!(
                fake_count(&app, "claude-a").await,
                asked,
                "a resting key is not used"
            );
            tokio::time::sleep(Duration::from_millis(2100)).await;
        }
    }

    // After the first token, a failure cannot fall back: the stream ends with an error chunk and
    // finish_reason "error", and what was produced is billed.
    // (The chunks are spaced so that the first ones leave the fake before it cuts the connection.)
    arm(
        &app,
        "claude-a",
        1,
        json!({"drop_after": 5, "chunk_delay_ms": 20}),
    )
    .await;
    let r = app.chat(msg("route/claude", json!({"stream": true}))).await;
    assert_eq!(r.status(), 200);
    let gen = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    let events = sse_events(&r.text().await.expect("text"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk"))
        .collect();
    let err = chunks
        .iter()
        .find(|c| c.get("error").is_some())
        .expect("an error chunk");
    assert_eq!(err["choices"][0]["finish_reason"], "error");
    assert_eq!(err["error"]["metadata"]["error_type"], "upstream_error");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 5);
    let g = app.wait_generation(&gen).await;
    assert_eq!(g["provider_name"], "anth");
    // Anthropic's output count comes at the end: what arrived is estimated (at least a token a chunk).
    assert_eq!(g["usage_estimated"], true);
    assert!(g["tokens_completion"].as_u64().expect("tokens") >= 5, "{g}");
    assert!(
        usd(&g["total_cost"]) > 0,
        "output produced before the cut is paid for"
    );

    // A failure the client caused is not retried elsewhere: the provider's own words come back.
    arm(&app, "claude-a", 1, json!({"status": 400})).await;
    let (s, v, _) = ask(&app, msg("route/claude", json!({}))).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["metadata"]["error_type"],
        "context_length_exceeded"
    );
    assert!(v["error"]["message"]
        .as_str()
        .expect("m")
        .contains("prompt is too long"));
    assert_eq!(v["error"]["metadata"]["provider_name"], "Fake Anthropic");

    // Every endpoint failing: the last provider's error, nothing charged.
    let before = app.usage_nanos().await;
    arm(&app, "gemini-a", 1, json!({"status": 503})).await;
    arm(&app, "gemini-backup", 1, json!({"status": 503})).await;
    let (s, v, _) = ask(&app, msg("route/gemini", json!({}))).await;
    assert_eq!(s, 502, "{v}");
    assert_eq!(v["error"]["metadata"]["error_type"], "provider_overloaded");
    assert_eq!(app.usage_nanos().await, before);

    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

/// What the admin's catalog page says of the breaker of the endpoint serving `upstream`.
async fn breaker_shown(app: &TestApp, upstream: &str) -> String {
    let page = switchyard::catalog::admin::page(&app.state)
        .await
        .expect("page");
    page.models
        .iter()
        .flat_map(|m| &m.endpoints)
        .find(|e| e.upstream_model == upstream)
        .map(|e| e.breaker.clone())
        .expect("endpoint")
}

async fn the_circuit_breaker_opens_and_a_probe_closes_it(db: Db) {
    let app = start(db).await;
    // Three failures in a row open the Anthropic endpoint's breaker.
    arm(&app, "claude-a", 3, json!({"status": 500})).await;
    for _ in 0..3 {
        let (s, v, _) = ask(&app, msg("route/claude", json!({}))).await;
        assert_eq!((s, v["provider"].as_str()), (200, Some("Fake OpenAI")));
    }
    let asked = fake_count(&app, "claude-a").await;
    assert_eq!(asked, 3);
    // Open: requests go to the backup first, without asking the failing endpoint.
    for _ in 0..4 {
        let (s, v, _) = ask(&app, msg("route/claude", json!({}))).await;
        assert_eq!((s, v["provider"].as_str()), (200, Some("Fake OpenAI")));
    }
    assert_eq!(fake_count(&app, "claude-a").await, asked, "out of rotation");
    // The admin's catalog page says so, on the endpoint.
    let shown = breaker_shown(&app, "claude-a").await;
    assert!(shown.starts_with("out of rotation for"), "{shown:?}");
    assert_eq!(breaker_shown(&app, "claude-backup").await, "");
    // After the cool-down one request probes it; its success closes the breaker.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        breaker_shown(&app, "claude-a").await,
        "the next request probes it"
    );
    let (s, v, _) = ask(&app, msg("route/claude", json!({}))).await;
    assert_eq!((s, v["provider"].as_str()), (200, Some("Fake Anthropic")));
    assert_eq!(breaker_shown(&app, "claude-a").await, "", "closed");
    for _ in 0..3 {
        let (_, v, _) = ask(&app, msg("route/claude", json!({}))).await;
        assert_eq!(v["provider"], "Fake Anthropic", "closed again");
    }
    // A failed probe keeps it open for twice as long.
    arm(&app, "claude-a", 4, json!({"status": 500})).await;
    for _ in 0..3 {
        ask(&app, msg("route/claude", json!({}))).await;
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (_, v, _) = ask(&app, msg("route/claude", json!({}))).await;
    assert_eq!(
        v["provider"], "Fake OpenAI",
        "the probe failed and fell back"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (_, v, _) = ask(&app, msg("route/claude", json!({}))).await;
    assert_eq!(
        v["provider"], "Fake OpenAI",
        "still cooling down (800 ms now)"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, v, _) = ask(&app, msg("route/claude", json!({}))).await;
    assert_eq!(v["provider"], "Fake Anthropic");
    // With the breaker open and no other endpoint, the open one is still tried rather than refusing.
    arm(&app, "dep-1", 3, json!({"status": 500})).await;
    for _ in 0..3 {
        assert_eq!(ask(&app, msg("route/azure", json!({}))).await.0, 502);
    }
    assert_eq!(ask(&app, msg("route/azure", json!({}))).await.0, 200);
    app.assert_books_balance().await;
    app.stop().await;
}

async fn routing_preferences_choose_and_filter_endpoints(db: Db) {
    let app = start(db).await;
    let served = |v: &Value| v["provider"].as_str().unwrap_or_default().to_string();
    // By default the cheaper host is preferred by the inverse square of price: 1/1² against 1/2²,
    // so about 80 % of first choices (never all: both get traffic).
    let mut cheap = 0;
    for _ in 0..150 {
        let (s, v, _) = ask(&app, msg("route/pair", json!({"max_tokens": 1}))).await;
        assert_eq!(s, 200, "{v}");
        cheap += (served(&v) == "Cheap Host") as u32;
    }
    assert!(
        (100..=140).contains(&cheap),
        "cheap host served {cheap} of 150"
    );
    // order / only / ignore / :floor / sort.
    let pick = |extra: Value| msg("route/pair", extra);
    for (extra, want) in [
        (json!({"provider": {"order": ["dear"]}}), "Dear Host"),
        (
            json!({"provider": {"order": ["Dear Host", "cheap"]}}),
            "Dear Host",
        ),
        (json!({"provider": {"only": ["dear"]}}), "Dear Host"),
        (json!({"provider": {"ignore": ["cheap"]}}), "Dear Host"),
        (json!({"provider": {"sort": "price"}}), "Cheap Host"),
        (
            json!({"provider": {"data_collection": "deny"}}),
            "Dear Host",
        ),
        (
            json!({"provider": {"max_price": {"prompt": 1.5}}}),
            "Cheap Host",
        ),
    ] {
        for _ in 0..5 {
            let (s, v, _) = ask(&app, pick(extra.clone())).await;
            assert_eq!((s, served(&v)), (200, want.to_string()), "{extra}");
        }
    }
    for _ in 0..5 {
        let (_, v, _) = ask(&app, msg("route/pair:floor", json!({}))).await;
        assert_eq!(served(&v), "Cheap Host");
        assert_eq!(v["model"], "route/pair");
    }
    // allow_fallbacks false: the first choice only; its failure is the answer.
    arm(&app, "pair-dear", 1, json!({"status": 500})).await;
    let (s, v, _) = ask(
        &app,
        pick(json!({"provider": {"order": ["dear"], "allow_fallbacks": false}})),
    )
    .await;
    assert_eq!(s, 502, "{v}");
    arm(&app, "pair-dear", 1, json!({"status": 500})).await;
    let (s, v, _) = ask(&app, pick(json!({"provider": {"order": ["dear"]}}))).await;
    assert_eq!(
        (s, served(&v)),
        (200, "Cheap Host".to_string()),
        "falls back by default"
    );
    // Nothing left after filtering: 503 naming why.
    let (s, v, _) = ask(
        &app,
        pick(json!({"provider": {"max_price": {"completion": 0.5}}})),
    )
    .await;
    assert_eq!(s, 503, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("max_price"),
        "{v}"
    );
    // require_parameters: Anthropic does not take a seed, so only the backup serves.
    let (s, v, _) = ask(
        &app,
        msg(
            "route/claude",
            json!({"seed": 7, "provider": {"require_parameters": true}}),
        ),
    )
    .await;
    assert_eq!((s, served(&v)), (200, "Fake OpenAI".to_string()), "{v}");
    // Bad preferences are refused, naming the field, and charge nothing.
    for (bad, field) in [
        (json!({"provider": {"sort": "fastest"}}), "provider.sort"),
        (json!({"provider": {"order": "dear"}}), "provider.order"),
        (
            json!({"provider": {"max_price": {"prompt": "lots"}}}),
            "provider.max_price.prompt",
        ),
        (json!({"provider": {"colour": "red"}}), "provider.colour"),
        (json!({"models": "route/pair"}), "models"),
    ] {
        let (s, v, _) = ask(&app, pick(bad.clone())).await;
        assert_eq!(s, 400, "{bad}");
        assert!(
            v["error"]["message"].as_str().expect("m").contains(field),
            "{v}"
        );
    }
    let (s, v, _) = ask(&app, msg("route/pair:turbo", json!({}))).await;
    assert_eq!(s, 404);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains(":floor"),
        "{v}"
    );

    // models: a fallback list across models, billed for the model that answered at its price.
    arm(&app, "dep-1", 1, json!({"status": 503})).await;
    let before = app.usage_nanos().await;
    let (s, v, gen) = ask(
        &app,
        json!({"models": ["route/azure", "route/gemini"], "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["model"], "route/gemini");
    let g = app.wait_generation(&gen).await;
    assert_eq!(g["model"], "route/gemini");
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_u64().expect("p"),
        v["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(app.usage_nanos().await - before, charge(p, c, 300, 2500));
    // An unknown model in the list is refused before anything is sent.
    let (s, _, _) = ask(&app, json!({"model": "route/pair", "models": ["nope/nope"], "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(s, 404);

    // An organisation's defaults (set by its owner on the organisation page) apply when the request
    // says nothing; the request's own win.
    let (owner,): (String,) =
        sqlx::query_as("SELECT id FROM users WHERE email = 'owner@acme.test'")
            .fetch_one(&app.store.pool)
            .await
            .expect("owner");
    let owner = common::actor(&app.store, &owner).await;
    let defaults = |order: &str, only: bool| switchyard_app::orgs::RoutingDefaults {
        order: order.into(),
        ignore: String::new(),
        sort: String::new(),
        deny_data_collection: false,
        only_ordered: only,
    };
    let set = |d| {
        let (state, owner) = (app.state.clone(), owner.clone());
        async move { switchyard::web::org_pages::set_routing_defaults(&state, &owner, &d).await }
    };
    let e = set(defaults("nobody", false))
        .await
        .expect_err("unknown provider");
    assert!(e.contains("nobody") && e.contains("dear"), "{e}");
    set(defaults("Dear Host", true)).await.expect("saved");
    let (stored,): (Option<String>,) =
        sqlx::query_as("SELECT provider_prefs FROM orgs WHERE id = $1")
            .bind(&app.org_id)
            .fetch_one(&app.store.pool)
            .await
            .expect("row");
    let stored: Value = serde_json::from_str(&stored.expect("stored")).expect("json");
    assert_eq!(stored, json!({"order": ["dear"], "allow_fallbacks": false}));
    for _ in 0..5 {
        let (_, v, _) = ask(&app, pick(json!({}))).await;
        assert_eq!(served(&v), "Dear Host");
    }
    let (_, v, _) = ask(&app, pick(json!({"provider": {"order": ["cheap"]}}))).await;
    assert_eq!(served(&v), "Cheap Host");

    // A key's own defaults (its edit form) win over the organisation's, field by field; the
    // request's own still win over both; other keys keep the organisation's.
    let other = switchyard::keys::create_key(&app.store, &app.org_id, "other", None, None)
        .await
        .expect("key");
    let hash = switchyard::keys::hash_secret(&app.key);
    let mut form = switchyard_app::keys::NewKeyForm {
        name: "test".into(),
        routing: defaults("nobody", false),
        ..Default::default()
    };
    let e = switchyard::web::key_pages::update(&app.store, &owner, &hash, form.clone())
        .await
        .expect_err("unknown provider");
    assert!(e.starts_with("routing: ") && e.contains("nobody"), "{e}");
    form.routing = defaults("cheap", false);
    form.routing.deny_data_collection = false;
    switchyard::web::key_pages::update(&app.store, &owner, &hash, form.clone())
        .await
        .expect("saved");
    app.state.keys.forget_all();
    for _ in 0..5 {
        let (_, v, _) = ask(&app, pick(json!({}))).await;
        assert_eq!(served(&v), "Cheap Host", "the key's order");
        let r = app.chat_with_key(&other.secret, pick(json!({}))).await;
        let v: Value = r.json().await.expect("json");
        assert_eq!(served(&v), "Dear Host", "the org's order for other keys");
    }
    // The key's order with the org's "no fallbacks": an ignored first choice leaves nothing.
    let (s, v, _) = ask(&app, pick(json!({"provider": {"ignore": ["cheap"]}}))).await;
    assert_eq!(s, 503, "{v}");
    let (_, v, _) = ask(&app, pick(json!({"provider": {"order": ["dear"]}}))).await;
    assert_eq!(served(&v), "Dear Host", "the request's own order");
    // Routing set over the management API that the form does not show survives a save of the form.
    sqlx::query("UPDATE api_keys SET provider_prefs = $1 WHERE hash = $2")
        .bind(r#"{"order":["cheap"],"max_price":{"prompt":100}}"#)
        .bind(&hash)
        .execute(&app.store.writer)
        .await
        .expect("set");
    form.routing = defaults("dear", false);
    switchyard::web::key_pages::update(&app.store, &owner, &hash, form.clone())
        .await
        .expect("saved");
    let (stored,): (Option<String>,) =
        sqlx::query_as("SELECT provider_prefs FROM api_keys WHERE hash = $1")
            .bind(&hash)
            .fetch_one(&app.store.pool)
            .await
            .expect("row");
    let stored: Value = serde_json::from_str(&stored.expect("stored")).expect("json");
    assert_eq!(
        stored,
        json!({"order": ["dear"], "max_price": {"prompt": 100}})
    );
    form.routing = defaults("", false);
    switchyard::web::key_pages::update(&app.store, &owner, &hash, form)
        .await
        .expect("cleared");
    app.state.keys.forget_all();
    set(defaults("", false)).await.expect("cleared");
    let (stored,): (Option<String>,) =
        sqlx::query_as("SELECT provider_prefs FROM orgs WHERE id = $1")
            .bind(&app.org_id)
            .fetch_one(&app.store.pool)
            .await
            .expect("row");
    assert_eq!(stored, None);

    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn embeddings_completions_and_messages_are_billed_like_chat(db: Db) {
    let app = start(db).await;
    let post = |path: &str, body: Value| {
        app.http
            .post(app.url(path))
            .bearer_auth(&app.key)
            .json(&body)
            .send()
    };
    // Embeddings: vectors per input, billed per input token at the serving endpoint's price; the
    // Anthropic endpoint (no embeddings) is passed over.
    let before = app.usage_nanos().await;
    let r = post("/v1/embeddings", json!({"model": "route/embed", "input": ["first text to embed", "second"], "dimensions": 4})).await.expect("send");
    assert_eq!(r.status(), 200);
    let gen = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().expect("data").len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().expect("vec").len(), 4);
    assert_eq!(v["model"], "route/embed");
    let p = v["usage"]["prompt_tokens"].as_u64().expect("tokens");
    assert!(p >= 2);
    assert_eq!(usd(&v["usage"]["cost"]), charge(p, 0, 100, 0));
    assert_eq!(app.usage_nanos().await - before, charge(p, 0, 100, 0));
    let g = app.wait_generation(&gen).await;
    assert_eq!(
        g["provider_responses"][0]["error_type"],
        "unsupported_parameter"
    );
    assert_eq!(g["provider_responses"][1]["status"], 200);
    for bad in [
        json!({"model": "route/embed"}),
        json!({"model": "route/embed", "input": []}),
        json!({"input": "x"}),
        json!({"model": "route/embed", "input": [1, "a", {}]}),
    ] {
        let r = post("/v1/embeddings", bad.clone()).await.expect("send");
        assert_eq!(r.status(), 400, "{bad}");
    }

    // Legacy completions: text in, text_completion out, streamed too; billed like chat.
    let before = app.usage_nanos().await;
    let r = post(
        "/v1/completions",
        json!({"model": "route/gemini", "prompt": "Once upon a time", "max_tokens": 6}),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["object"], "text_completion");
    assert!(v["choices"][0]["text"]
        .as_str()
        .expect("text")
        .starts_with("Hello"));
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_u64().expect("p"),
        v["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(app.usage_nanos().await - before, charge(p, c, 300, 2500));
    let r = post(
        "/v1/completions",
        json!({"model": "route/claude", "prompt": "Once", "stream": true}),
    )
    .await
    .expect("send");
    let events = sse_events(&r.text().await.expect("text"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk"))
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text.split_whitespace().count(), 24);
    assert!(chunks.last().expect("usage")["usage"]["cost"].is_number());
    let r = post("/v1/completions", json!({"model": "route/claude"}))
        .await
        .expect("send");
    assert_eq!(r.status(), 400);

    // Anthropic's Messages API in front of any model: the key as x-api-key, Anthropic's shapes both ways.
    let messages = |body: Value| {
        app.http
            .post(app.url("/v1/messages"))
            .header("x-api-key", &app.key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let before = app.usage_nanos().await;
    let r = messages(
        json!({"model": "route/gemini", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["type"], "text");
    assert_eq!(v["stop_reason"], "end_turn");
    let (i, o) = (
        v["usage"]["input_tokens"].as_u64().expect("in"),
        v["usage"]["output_tokens"].as_u64().expect("out"),
    );
    assert_eq!(o, 24);
    assert_eq!(app.usage_nanos().await - before, charge(i, o, 300, 2500));
    let sent = app.fake_stats.last_body.lock().clone().expect("body");
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    // Tools round trip through the Anthropic upstream.
    let r = messages(json!({"model": "route/claude", "max_tokens": 100,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "Weather?"}]})).await.expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let tool = v["content"]
        .as_array()
        .expect("content")
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("tool_use")
        .clone();
    assert_eq!(tool["input"]["city"], "Paris");
    // Streaming: Anthropic's events, ending with message_delta (stop reason, usage) and message_stop.
    let r = messages(
        json!({"model": "route/pair", "max_tokens": 8, "stream": true,
        "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await
    .expect("send");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(
        &names[names.len() - 2..],
        &["message_delta", "message_stop"]
    );
    assert!(names.contains(&"content_block_start") && names.contains(&"content_block_stop"));
    let datas = sse_events(&text);
    let delta: Value = serde_json::from_str(&datas[datas.len() - 2]).expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 8);
    // Errors in Anthropic's shape.
    let r = messages(json!({"model": "nope/nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await.expect("send");
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("not_found_error"))
    );
    let r =
        messages(json!({"model": "route/claude", "messages": [{"role": "user", "content": "x"}]}))
            .await
            .expect("send");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .expect("m")
        .contains("max_tokens"));
    let r = app
        .http
        .post(app.url("/v1/messages"))
        .header("x-api-key", "sk-sy-v1-wrong")
        .json(&json!({}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["type"], "authentication_error");

    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

both_backends!(
    bedrock_signs_translates_streams_and_falls_back,
    embeddings_completions_and_messages_are_billed_like_chat,
    every_adapter_answers_streams_and_bills_its_own_price,
    failures_before_the_first_token_fall_back_and_bill_once,
    the_circuit_breaker_opens_and_a_probe_closes_it,
    routing_preferences_choose_and_filter_endpoints,
);
