//! The gateway end to end over HTTP, on SQLite and on PostgreSQL: metering, charging, streaming,
//! concurrency, cancellation, fallbacks and every error status.

mod common;

use common::{chat_body, expected_charge, sse_events, Db, TestApp};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::Duration;

fn usd_to_nanos(v: &Value) -> i64 {
    let text = v.to_string();
    let f: f64 = text.parse().expect("a number");
    switchyard::money::Nanos::parse_usd(&format!("{f:.9}"))
        .expect("usd")
        .0
}

async fn non_streaming_is_metered_and_charged_exactly(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let r = app
        .chat(chat_body(
            json!({"max_tokens": 50, "temperature": 0.3, "x_custom_field": {"keep": [1, 2]}}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let gen_header = r
        .headers()
        .get("x-generation-id")
        .expect("X-Generation-Id")
        .to_str()
        .expect("ascii")
        .to_string();
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["id"], gen_header.as_str());
    assert!(gen_header.starts_with("gen-"));
    assert_eq!(v["model"], "test/fast");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .starts_with("Hello"));
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_u64().expect("p"),
        v["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    assert_eq!(c, 24);
    let cost = usd_to_nanos(&v["usage"]["cost"]);
    assert_eq!(
        cost,
        expected_charge(p, c),
        "charged cost x 1.1, rounded up once"
    );

    // The upstream saw its own model name and every unknown field, untouched.
    let last = app
        .fake_stats
        .last_body
        .lock()
        .clone()
        .expect("fake saw a request");
    assert_eq!(last["model"], "fast-1");
    assert_eq!(last["x_custom_field"], json!({"keep": [1, 2]}));
    assert_eq!(last["temperature"], 0.3);

    let (s, credits) = app.get("/api/v1/credits").await;
    assert_eq!(s, 200);
    assert_eq!(
        usd_to_nanos(&credits["data"]["total_credits"]),
        1_000_000_000
    );
    assert_eq!(usd_to_nanos(&credits["data"]["total_usage"]), cost);

    let g = app.wait_generation(&gen_header).await;
    assert_eq!(g["tokens_prompt"], p);
    assert_eq!(g["tokens_completion"], c);
    assert_eq!(usd_to_nanos(&g["total_cost"]), cost);
    assert_eq!(g["provider_name"], "fake");
    assert_eq!(g["streamed"], false);
    assert_eq!(g["finish_reason"], "stop");
    assert_eq!(
        g["provider_responses"].as_array().expect("attempts").len(),
        1
    );

    // Provider credentials are encrypted at rest.
    let (enc, provider): (String, String) = sqlx::query_as(
        "SELECT c.secret_enc, p.id FROM provider_credentials c JOIN providers p ON p.id = c.provider_id \
         WHERE p.slug = 'fake'",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("provider");
    assert!(!enc.contains(common::UPSTREAM_KEY) && !enc.contains("upstream-test"));
    assert_eq!(
        app.state
            .cipher
            .decrypt(&enc, &switchyard::catalog::credential_context(&provider))
            .expect("decrypts"),
        common::UPSTREAM_KEY
    );

    // Both prefixes serve the API.
    let r = app
        .http
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&chat_body(json!({})))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn streaming_forwards_chunks_and_bills_the_final_usage(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let r = app
        .chat(chat_body(
            json!({"stream": true, "x_fake": {"tokens": 10, "chunk_delay_ms": 5}}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let gen_id = r.headers()["x-generation-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let text = r.text().await.expect("body");
    let events = sse_events(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk json"))
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content.split_whitespace().count(), 10);
    for c in &chunks {
        assert_eq!(c["id"], gen_id.as_str());
        assert_eq!(c["model"], "test/fast");
    }
    let usage_chunk = chunks.last().expect("usage chunk");
    assert_eq!(usage_chunk["choices"], json!([]));
    let usage = &usage_chunk["usage"];
    assert_eq!(usage["completion_tokens"], 10);
    let cost = usd_to_nanos(&usage["cost"]);
    assert_eq!(
        cost,
        expected_charge(usage["prompt_tokens"].as_u64().expect("p"), 10)
    );
    assert_eq!(app.usage_nanos().await, cost);
    let g = app.wait_generation(&gen_id).await;
    assert_eq!(g["streamed"], true);
    assert_eq!(g["cancelled"], false);
    assert!(g["time_to_first_token"].as_i64().is_some());
    // The upstream was asked for usage although the client did not ask.
    let last = app.fake_stats.last_body.lock().clone().expect("body");
    assert_eq!(last["stream_options"]["include_usage"], true);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn keepalive_comments_flow_while_upstream_is_slow(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    // keep-alive is 300 ms in tests; 3 tokens at 700 ms each must produce comments between them.
    let r = app
        .chat(chat_body(
            json!({"stream": true, "x_fake": {"tokens": 3, "chunk_delay_ms": 700}}),
        ))
        .await;
    let text = r.text().await.expect("body");
    assert!(text.contains(": SWITCHYARD PROCESSING"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    app.assert_books_balance().await;
    app.stop().await;
}

async fn concurrent_requests_never_overspend(db: Db) {
    let app = TestApp::start(db).await;
    // max_tokens 100 at $1.50/M output x1.1 plus the prompt upper bound: the hold of one request.
    let body = chat_body(json!({"max_tokens": 100, "x_fake": {"first_byte_delay_ms": 400}}));
    let bytes = serde_json::to_vec(&body).expect("json").len() as u64;
    let hold = expected_charge(bytes, 100);
    // Enough for exactly 10 holds.
    let grant = hold * 10;
    switchyard::billing::ledger::grant(
        &app.store,
        &app.org_id,
        switchyard::money::Nanos(grant),
        "grant:ten",
        None,
    )
    .await
    .expect("grant");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let http = app.http.clone();
        let url = app.url("/api/v1/chat/completions");
        let key = app.key.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .expect("request");
            let s = r.status().as_u16();
            let v: Value = r.json().await.expect("json");
            (s, v)
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    let mut charged = 0i64;
    for t in tasks {
        let (s, v) = t.await.expect("task");
        match s {
            200 => {
                ok += 1;
                charged += usd_to_nanos(&v["usage"]["cost"]);
            }
            402 => {
                refused += 1;
                assert_eq!(v["error"]["code"], 402);
                assert!(v["error"]["message"]
                    .as_str()
                    .expect("msg")
                    .contains("insufficient credits"));
            }
            other => panic!("unexpected status {other}: {v}"),
        }
    }
    assert_eq!(
        ok, 10,
        "exactly the requests the balance covers are admitted"
    );
    assert_eq!(refused, 40);
    let b = app.balance().await;
    assert_eq!(b.usage.0, charged);
    assert!(b.usage.0 <= grant, "spent {} of {}", b.usage.0, grant);
    assert!(b.balance().0 >= 0);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn concurrent_requests_respect_the_key_limit(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("100").await;
    let body = chat_body(json!({"max_tokens": 100, "x_fake": {"first_byte_delay_ms": 400}}));
    let hold = expected_charge(serde_json::to_vec(&body).expect("json").len() as u64, 100);
    // The org could pay for all of them; the key's limit covers three.
    let k = switchyard::keys::create_key(
        &app.store,
        &app.org_id,
        "limited",
        Some(switchyard::money::Nanos(hold * 3 + hold / 2)),
        None,
    )
    .await
    .expect("key");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (http, url, key, body) = (
            app.http.clone(),
            app.url("/api/v1/chat/completions"),
            k.secret.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .expect("req")
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 402).count(),
        17,
        "{statuses:?}"
    );
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn client_that_disconnects_mid_stream_is_billed_once(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let r = app
        .chat(chat_body(
            json!({"stream": true, "x_fake": {"tokens": 200, "chunk_delay_ms": 20}}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let gen_id = r.headers()["x-generation-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let mut body = r.bytes_stream();
    let mut seen = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        seen += String::from_utf8_lossy(&chunk)
            .matches("\"content\"")
            .count();
        if seen >= 6 {
            break;
        }
    }
    drop(body); // the client goes away
    let g = app.wait_generation(&gen_id).await;
    assert_eq!(g["cancelled"], true);
    let completion = g["tokens_completion"].as_u64().expect("tokens");
    assert!(
        (5..200).contains(&completion),
        "billed {completion} tokens for a stream cut after ~6"
    );
    let charge = usd_to_nanos(&g["total_cost"]);
    assert!(charge > 0);
    // The upstream was stopped, not left generating.
    for _ in 0..50 {
        if app
            .fake_stats
            .streams_abandoned
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        app.fake_stats
            .streams_abandoned
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1,
        "upstream stream not cancelled"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (entries,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ledger WHERE reference = $1")
        .bind(&gen_id)
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    assert_eq!(entries, 1, "billed exactly once");
    assert_eq!(app.usage_nanos().await, charge);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn upstream_failures_map_to_clear_errors_and_charge_nothing(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let cases: &[(Value, u16, &str)] = &[
        (json!({"x_fake": {"status": 500}}), 502, "upstream_error"),
        (
            json!({"x_fake": {"status": 400}}),
            400,
            "context_length_exceeded",
        ),
        (
            json!({"x_fake": {"malformed": true}}),
            502,
            "invalid_upstream_response",
        ),
        (json!({"x_fake": {"hang": true}}), 504, "timeout"),
        (
            json!({"stream": true, "x_fake": {"hang": true}}),
            504,
            "timeout",
        ),
        (
            json!({"stream": true, "x_fake": {"status": 500}}),
            502,
            "upstream_error",
        ),
        (
            json!({"x_fake": {"status": 503}}),
            502,
            "provider_overloaded",
        ),
        // Last: the provider's only key then rests for its Retry-After (1 s).
        (json!({"x_fake": {"status": 429}}), 429, "rate_limited"),
    ];
    for (extra, status, error_type) in cases {
        let r = app.chat(chat_body(extra.clone())).await;
        assert_eq!(r.status().as_u16(), *status, "{extra}");
        if *status == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
        }
        let v: Value = r.json().await.expect("json error");
        assert_eq!(v["error"]["code"], *status, "{v}");
        assert_eq!(v["error"]["metadata"]["error_type"], *error_type, "{v}");
        assert_eq!(v["error"]["metadata"]["provider_name"], "Fake OpenAI");
        assert!(v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("Fake OpenAI"));
        assert!(
            !v.to_string().contains(common::UPSTREAM_KEY),
            "credentials leaked: {v}"
        );
    }
    // The rate-limited key rests: the provider is not asked again until its Retry-After passed.
    let asked = app
        .fake_stats
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    let r = app.chat(chat_body(json!({}))).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["metadata"]["error_type"], "rate_limited", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("resting"),
        "{v}"
    );
    assert_eq!(
        app.fake_stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        asked,
        "a resting key is not used"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = app.chat(chat_body(json!({}))).await;
    assert_eq!(r.status(), 200, "the key is used again after its rest");
    let paid = app.usage_nanos().await;
    assert!(paid > 0);

    // The provider's own words reach the client.
    let r = app
        .chat(chat_body(json!({"x_fake": {"status": 400}})))
        .await;
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("maximum context length is 8192"),
        "{v}"
    );

    // A provider that refuses the platform's own credentials is the operator's problem, not the client's.
    let r = app
        .chat(json!({"model": "test/badkey", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["metadata"]["error_type"], "upstream_auth_failed");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("credentials"),
        "{v}"
    );
    assert!(
        !v.to_string().contains("sk-wrong-platform-credential"),
        "credentials leaked: {v}"
    );

    assert_eq!(
        app.usage_nanos().await,
        paid,
        "errors charge nothing; only the one answer is paid for"
    );
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn a_client_that_gives_up_before_the_answer_is_charged_for_it(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    // Not streamed: the provider answers (and bills) after the client is gone; the answer is read to
    // its end and charged.
    let r = impatient
        .post(app.url("/api/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&chat_body(json!({"x_fake": {"first_byte_delay_ms": 1000}})))
        .send()
        .await;
    assert!(r.is_err(), "the client should have timed out");
    let mut row = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        row = sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(
            "SELECT status, cancelled, prompt_tokens, completion_tokens, charge_nanos, held_nanos \
             FROM generations WHERE org_id = $1",
        )
        .bind(&app.org_id)
        .fetch_optional(&app.store.pool)
        .await
        .expect("query");
        if row.is_some() {
            break;
        }
    }
    let (status, cancelled, prompt, completion, charge, held) =
        row.expect("the answer the client left behind is in the log");
    assert_eq!((status, cancelled, completion), (200, 0, 24));
    assert_eq!(charge, expected_charge(prompt as u64, 24));
    assert!(charge <= held);
    app.assert_books_balance().await;
    app.assert_no_holds().await;

    // Streamed, gone before the first token: nothing is charged, the hold is released, and the
    // attempt's worst case is the operator's loss (the provider had the request).
    let r = impatient
        .post(app.url("/api/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&chat_body(
            json!({"stream": true, "x_fake": {"first_byte_delay_ms": 1000}}),
        ))
        .send()
        .await;
    assert!(r.is_err(), "the client should have timed out");
    let mut found = None;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        found = sqlx::query_as::<_, (String, i64, i64)>(
            "SELECT id, status, charge_nanos FROM generations WHERE org_id = $1 AND cancelled = 1",
        )
        .bind(&app.org_id)
        .fetch_optional(&app.store.pool)
        .await
        .expect("query");
        if found.is_some() {
            break;
        }
    }
    let (gen, status, charge) = found.expect("the cancelled stream is in the log");
    assert_eq!((status, charge), (499, 0));
    let (kind, uncollected): (String, i64) = sqlx::query_as(
        "SELECT kind, uncollected_nanos FROM operator_losses WHERE generation_id = $1",
    )
    .bind(&gen)
    .fetch_one(&app.store.pool)
    .await
    .expect("the abandoned attempt is recorded as a loss");
    assert_eq!(kind, "abandoned");
    assert!(uncollected > 0);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn mid_stream_failure_ends_with_an_error_chunk(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let r = app.chat(chat_body(json!({"stream": true, "x_fake": {"tokens": 20, "drop_after": 5, "chunk_delay_ms": 30}}))).await;
    assert_eq!(r.status(), 200);
    let gen_id = r.headers()["x-generation-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let text = r.text().await.expect("body");
    let events = sse_events(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let err_chunk: Value = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|c| c.get("error").is_some())
        .expect("an error chunk");
    assert_eq!(err_chunk["choices"][0]["finish_reason"], "error");
    assert!(err_chunk["error"]["message"]
        .as_str()
        .expect("msg")
        .contains("Fake OpenAI"));
    let g = app.wait_generation(&gen_id).await;
    assert_eq!(g["finish_reason"], "error");
    // Billed for what arrived: one token a chunk or four characters a token, whichever is more.
    let content: Vec<String> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        content.len(),
        5,
        "five tokens arrived before the upstream broke"
    );
    let chars: usize = content.iter().map(|s| s.chars().count()).sum();
    assert_eq!(g["tokens_completion"], (chars as u64).div_ceil(4).max(5));
    assert_eq!(g["usage_estimated"], true);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn falls_back_to_the_next_endpoint_before_the_first_byte(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    for stream in [false, true] {
        let r = app.chat(json!({"model": "test/fallback", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})).await;
        assert_eq!(r.status(), 200);
        let gen_id = r.headers()["x-generation-id"]
            .to_str()
            .expect("ascii")
            .to_string();
        let _ = r.text().await.expect("body");
        let g = app.wait_generation(&gen_id).await;
        let attempts = g["provider_responses"]
            .as_array()
            .expect("attempts")
            .clone();
        assert_eq!(attempts.len(), 2, "{attempts:?}");
        assert_eq!(attempts[0]["provider"], "dead");
        assert_eq!(attempts[0]["error_type"], "upstream_unreachable");
        assert_eq!(attempts[1]["provider"], "fake");
        assert_eq!(g["provider_name"], "fake");
    }
    app.assert_books_balance().await;
    app.stop().await;
}

async fn bad_requests_get_the_documented_error_shape(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let url = app.url("/api/v1/chat/completions");
    let send = |body: String, key: Option<String>| {
        let mut r = app
            .http
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };
    let key = Some(app.key.clone());
    let cases: Vec<(String, Option<String>, u16, &str)> = vec![
        ("{not json".into(), key.clone(), 400, "not valid JSON"),
        (r#"{"messages":[{"role":"user","content":"x"}]}"#.into(), key.clone(), 400, "`model` is required"),
        (r#"{"model":42,"messages":[{"role":"user","content":"x"}]}"#.into(), key.clone(), 400, "`model` must be a string"),
        (r#"{"model":"test/fast","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#.into(), key.clone(), 400, "`stream`"),
        (r#"{"model":"test/fast","messages":[{"role":"user","content":"x"}],"max_tokens":"lots"}"#.into(), key.clone(), 400, "`max_tokens`"),
        (r#"{"model":"test/fast"}"#.into(), key.clone(), 400, "`messages` is required"),
        (r#"{"model":"nobody/nothing","messages":[{"role":"user","content":"x"}]}"#.into(), key.clone(), 404, "not in this platform's catalog"),
        (r#"{"model":"test/fast","messages":[]}"#.into(), None, 401, "missing API key"),
        (r#"{"model":"test/fast","messages":[]}"#.into(), Some("sk-sy-v1-0000".into()), 401, "invalid API key"),
        (r#"{"model":"test/fast","messages":[]}"#.into(), Some("not-even-a-key".into()), 401, "invalid API key"),
        (format!(r#"{{"model":"test/fast","messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(100_000)), key.clone(), 413, "larger than the limit"),
    ];
    for (body, key, status, needle) in cases {
        let r = send(body.clone(), key).await.expect("request");
        assert_eq!(
            r.status().as_u16(),
            status,
            "{}",
            &body[..body.len().min(80)]
        );
        let v: Value = r.json().await.expect("json error body");
        assert_eq!(v["error"]["code"], status);
        assert!(v["error"]["type"].is_string());
        assert!(v["error"]["metadata"].is_object());
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    // A field error names the field in metadata too.
    let r = send(
        r#"{"model":42,"messages":[]}"#.into(),
        Some(app.key.clone()),
    )
    .await
    .expect("req");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["metadata"]["param"], "model");
    // Unknown API routes answer in the same shape.
    let (s, v) = app.get("/api/v1/nope").await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], 404);

    assert_eq!(
        app.fake_stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing reached the upstream"
    );
    assert_eq!(app.usage_nanos().await, 0);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn keys_are_refused_when_revoked_expired_or_over_limit(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let store = &app.store;
    // Revoked: visible within the cache TTL (200 ms in tests).
    assert_eq!(app.chat(chat_body(json!({}))).await.status(), 200);
    switchyard::keys::revoke_key(store, &app.key_id)
        .await
        .expect("revoke");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = app.chat(chat_body(json!({}))).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert!(v["error"]["message"]
        .as_str()
        .expect("m")
        .contains("revoked"));

    // Expired.
    let expired = switchyard::keys::create_key(
        store,
        &app.org_id,
        "old",
        None,
        Some(switchyard::store::now_ms() - 1000),
    )
    .await
    .expect("key");
    let r = app
        .chat_with_key(&expired.secret, chat_body(json!({})))
        .await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert!(v["error"]["message"]
        .as_str()
        .expect("m")
        .contains("expired"));

    // Over its own limit: a key limited to $0.0001 cannot hold a 1000-token answer.
    let tight = switchyard::keys::create_key(
        store,
        &app.org_id,
        "tight",
        Some(switchyard::money::Nanos(100_000)),
        None,
    )
    .await
    .expect("key");
    let r = app
        .chat_with_key(&tight.secret, chat_body(json!({"max_tokens": 1000})))
        .await;
    assert_eq!(r.status(), 402);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("credit limit"),
        "{v}"
    );
    // ...but a small request fits.
    let r = app
        .chat_with_key(&tight.secret, chat_body(json!({"max_tokens": 10})))
        .await;
    assert_eq!(r.status(), 200);
    let (s, k) = {
        let r = app
            .http
            .get(app.url("/api/v1/key"))
            .bearer_auth(&tight.secret)
            .send()
            .await
            .expect("req");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    assert_eq!(s, 200);
    assert_eq!(k["data"]["label"], "tight");
    assert_eq!(usd_to_nanos(&k["data"]["limit"]), 100_000);
    let used = usd_to_nanos(&k["data"]["usage"]);
    assert!(used > 0);
    assert_eq!(usd_to_nanos(&k["data"]["limit_remaining"]), 100_000 - used);

    // An org with no credits: 402.
    let broke = switchyard::accounts::create_org(store, "broke", "b@broke.test")
        .await
        .expect("org");
    let bk = switchyard::keys::create_key(store, &broke.id, "k", None, None)
        .await
        .expect("key");
    let r = app.chat_with_key(&bk.secret, chat_body(json!({}))).await;
    assert_eq!(r.status(), 402);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], 402);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn read_endpoints_follow_openrouter_shapes(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("2.5").await;
    // Public model list: no key needed; prices per token after markup, as exact decimal strings.
    let r = app
        .http
        .get(app.url("/api/v1/models"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let fast = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == "test/fast")
        .expect("test/fast")
        .clone();
    assert_eq!(fast["pricing"]["prompt"], "0.00000055");
    assert_eq!(fast["pricing"]["completion"], "0.00000165");
    assert_eq!(fast["context_length"], 16000);
    assert_eq!(fast["name"], "Test Fast");
    let (s, c) = app.get("/v1/credits").await;
    assert_eq!(s, 200);
    assert_eq!(c["data"]["total_credits"], 2.5);
    assert_eq!(c["data"]["total_usage"], 0);
    let (s, k) = app.get("/api/v1/key").await;
    assert_eq!(s, 200);
    assert_eq!(k["data"]["label"], "test");
    assert_eq!(k["data"]["limit"], Value::Null);
    let (s, _) = app.get("/api/v1/generation").await;
    assert_eq!(s, 400);
    let (s, _) = app.get("/api/v1/generation?id=gen-doesnotexist").await;
    assert_eq!(s, 404);
    let r = app.http.get(app.url("/health")).send().await.expect("req");
    assert_eq!(r.status(), 200);
    app.stop().await;
}

async fn another_orgs_generation_is_not_found(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let r = app.chat(chat_body(json!({}))).await;
    let gen_id = r.headers()["x-generation-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let other = switchyard::accounts::create_org(&app.store, "other", "o@other.test")
        .await
        .expect("org");
    let ok = switchyard::keys::create_key(&app.store, &other.id, "k", None, None)
        .await
        .expect("key");
    let r = app
        .http
        .get(app.url(&format!("/api/v1/generation?id={gen_id}")))
        .bearer_auth(&ok.secret)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 404);
    app.stop().await;
}

async fn catalog_changes_reach_the_gateway_without_restart(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let cat = common::test_catalog(app.fake, common::dead_addr().await)
        .replace("default_percent = \"10\"", "default_percent = \"50\"");
    switchyard::catalog::file::apply(&app.store, &app.state.cipher, "t.toml", &cat, &|_| None)
        .await
        .expect("apply");
    let mut seen = String::new();
    for _ in 0..40 {
        let v: Value = app
            .http
            .get(app.url("/api/v1/models"))
            .send()
            .await
            .expect("req")
            .json()
            .await
            .expect("json");
        seen = v["data"][2]["pricing"]["prompt"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if seen == "0.00000075" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "0.00000075", "markup 50 % should be live");
    let r = app.chat(chat_body(json!({}))).await;
    let v: Value = r.json().await.expect("json");
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_u64().expect("p"),
        v["usage"]["completion_tokens"].as_u64().expect("c"),
    );
    let expected = ((p * 500 + c * 1500) * 15).div_ceil(10) as i64;
    assert_eq!(usd_to_nanos(&v["usage"]["cost"]), expected);
    app.stop().await;
}

/// Starts a streamed request in the background; resolves to its generation id and whole body.
fn spawn_stream(app: &TestApp, extra: Value) -> tokio::task::JoinHandle<(String, String)> {
    let (http, url, key) = (
        app.http.clone(),
        app.url("/api/v1/chat/completions"),
        app.key.clone(),
    );
    tokio::spawn(async move {
        let r = http
            .post(url)
            .bearer_auth(key)
            .json(&chat_body(extra))
            .send()
            .await
            .expect("req");
        let id = r.headers()["x-generation-id"]
            .to_str()
            .expect("ascii")
            .to_string();
        (id, r.text().await.expect("body"))
    })
}

async fn graceful_shutdown_finishes_streams_and_records_usage(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let stream = spawn_stream(
        &app,
        json!({"stream": true, "x_fake": {"tokens": 10, "chunk_delay_ms": 100}}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let org = app.org_id.clone();
    let db = app.stop().await; // returns only after the stream finished and usage was flushed
    let store = switchyard::store::Store::open(&db.url, 2)
        .await
        .expect("reopen");
    let (gen_id, text) = stream.await.expect("stream task");
    assert!(text.ends_with("data: [DONE]\n\n"), "stream was cut: {text}");
    let (n, charge): (i64, i64) = sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(charge_nanos), 0) AS BIGINT) FROM generations WHERE id = $1")
        .bind(&gen_id)
        .fetch_one(&store.pool)
        .await
        .expect("query");
    assert_eq!(n, 1);
    assert!(charge > 0);
    let problems = switchyard::billing::ledger::audit(&store, &org)
        .await
        .expect("audit");
    assert!(problems.is_empty(), "{problems:?}");
}

async fn streams_past_the_shutdown_grace_end_cleanly_and_are_billed(db: Db) {
    let app = TestApp::start_with(db, |c| c.shutdown_grace_ms = 300).await;
    app.grant("1").await;
    let stream = spawn_stream(
        &app,
        json!({"stream": true, "x_fake": {"tokens": 200, "chunk_delay_ms": 50}}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let org = app.org_id.clone();
    let db = app.stop().await;
    let (gen_id, text) = stream.await.expect("stream task");
    assert!(
        text.contains("shutting down") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    let store = switchyard::store::Store::open(&db.url, 2)
        .await
        .expect("reopen");
    let (completion, charge, finish): (i64, i64, Option<String>) = sqlx::query_as(
        "SELECT completion_tokens, charge_nanos, finish_reason FROM generations WHERE id = $1",
    )
    .bind(&gen_id)
    .fetch_one(&store.pool)
    .await
    .expect("the cut stream was recorded");
    assert!(
        completion > 0 && completion < 200 && charge > 0,
        "{completion} {charge}"
    );
    assert_eq!(finish.as_deref(), Some("error"));
    assert!(switchyard::billing::ledger::audit(&store, &org)
        .await
        .expect("audit")
        .is_empty());
}

both_backends!(
    streams_past_the_shutdown_grace_end_cleanly_and_are_billed,
    non_streaming_is_metered_and_charged_exactly,
    streaming_forwards_chunks_and_bills_the_final_usage,
    keepalive_comments_flow_while_upstream_is_slow,
    concurrent_requests_never_overspend,
    concurrent_requests_respect_the_key_limit,
    client_that_disconnects_mid_stream_is_billed_once,
    upstream_failures_map_to_clear_errors_and_charge_nothing,
    mid_stream_failure_ends_with_an_error_chunk,
    a_client_that_gives_up_before_the_answer_is_charged_for_it,
    falls_back_to_the_next_endpoint_before_the_first_byte,
    bad_requests_get_the_documented_error_shape,
    keys_are_refused_when_revoked_expired_or_over_limit,
    read_endpoints_follow_openrouter_shapes,
    another_orgs_generation_is_not_found,
    catalog_changes_reach_the_gateway_without_restart,
    graceful_shutdown_finishes_streams_and_records_usage,
);

/// `/health` tells a load balancer the truth: 503 once the database is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_an_unreachable_database() {
    let app = TestApp::start(Db::Postgres).await;
    let r = app.http.get(app.url("/health")).send().await.expect("req");
    assert_eq!(r.status(), 200);
    let name = app.db.url.rsplit('/').next().expect("db name").to_string();
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&common::pg_admin_url())
            .await
            .expect("admin connection");
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut c)
            .await
            .expect("drop");
    }
    let r = app.http.get(app.url("/health")).send().await.expect("req");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["database"], "unreachable");
}
