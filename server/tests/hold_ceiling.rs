//! The hold is a ceiling: no request shape can cost more than was reserved for it, on every provider kind
//! and both databases. The fake provider behaves as a real one bills: it fills whatever output limit it
//! is given (or its own maximum when given none), answers every choice of `n`, counts media parts by
//! each provider's rules, and can misreport its usage. After every scenario `switchyard audit` is clean.

mod common;

use common::{arm, ask, sse_events, Db, TestApp, BEDROCK_KEY, UPSTREAM_KEY};
use serde_json::{json, Value};
use std::time::Duration;
use switchyard::{catalog, crypto::Cipher};

/// Every provider kind on the one fake; each model's catalog output limit is 1,000 tokens and its
/// output is dear ($30 per million), so a provider left to its own default (8,192) would cost $0.25.
fn cap_catalog(fake: std::net::SocketAddr) -> String {
    let model = |slug: &str, provider: &str, upstream: &str, extra: &str| {
        format!(
            r#"
[[models]]
slug = "cap/{slug}"
name = "Capped {slug}"
context_length = 100000
max_output_tokens = 1000
input_modalities = ["text", "image", "audio", "file"]
{extra}
[[models.endpoints]]
provider = "{provider}"
upstream_model = "{upstream}"
input_per_mtok = "1.00"
output_per_mtok = "30.00"
"#
        )
    };
    let mut s = format!(
        r#"
[[providers]]
slug = "oai"
name = "Fake OpenAI"
kind = "openai"
base_url = "http://{fake}/v1"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "dsk"
name = "Fake DeepSeek"
kind = "deepseek"
base_url = "http://{fake}/v1"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "az"
name = "Fake Azure"
kind = "azure"
base_url = "http://{fake}/openai?api-version=2024-10-21"
api_key = "{UPSTREAM_KEY}"

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
slug = "aws"
name = "Fake Bedrock"
kind = "bedrock"
base_url = "http://{fake}/bedrock?region=eu-west-1"
api_key = "{BEDROCK_KEY}"
"#
    );
    s += &model("openai", "oai", "cap-openai", "");
    s += &model("deepseek", "dsk", "cap-deepseek", "");
    s += &model("azure", "az", "cap-azure", "");
    s += &model("anthropic", "anth", "cap-anthropic", "");
    s += &model("gemini", "gem", "cap-gemini", "");
    s += &model(
        "bedrock",
        "aws",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "",
    );
    s += &model("pair", "oai", "cap-pair", "max_n = 2");
    s += &model("slow", "oai", "cap-slow", "idle_timeout_ms = 300");
    s += &model("uncapped", "oai", "cap-uncapped", "").replace("max_output_tokens = 1000\n", "");
    s += &model("think", "anth", "cap-think", "")
        .replace("max_output_tokens = 1000", "max_output_tokens = 4000");
    // Priced extras: flex at half price, web search at a cent a request, audio input at $40/M.
    s += r#"
[[models]]
slug = "cap/extras"
name = "Capped with extras"
context_length = 100000
max_output_tokens = 1000
input_modalities = ["text", "audio"]
[[models.endpoints]]
provider = "oai"
upstream_model = "cap-extras"
input_per_mtok = "1.00"
output_per_mtok = "30.00"
web_search = "0.01"
audio_input_per_mtok = "40.00"
[models.endpoints.service_tiers]
flex = "50"
"#;
    s
}

/// Each kind's model, and where its provider is told the output cap.
const KINDS: &[(&str, &str, &str)] = &[
    ("cap/openai", "cap-openai", "/max_completion_tokens"),
    ("cap/deepseek", "cap-deepseek", "/max_tokens"),
    ("cap/azure", "cap-azure", "/max_completion_tokens"),
    ("cap/anthropic", "cap-anthropic", "/max_tokens"),
    (
        "cap/gemini",
        "cap-gemini",
        "/generationConfig/maxOutputTokens",
    ),
    (
        "cap/bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "/inferenceConfig/maxTokens",
    ),
];

async fn start(db: Db, usd: &str) -> TestApp {
    let app = TestApp::start_with(db, |c| {
        c.upstream_first_byte_timeout_ms = 1_500;
        c.upstream_idle_timeout_ms = 1_500;
    })
    .await;
    let cipher = Cipher::from_config(&app.cfg).expect("cipher");
    catalog::file::apply(
        &app.store,
        &cipher,
        "cap.toml",
        &cap_catalog(app.fake),
        &|_| None,
    )
    .await
    .expect("apply the catalog");
    app.state
        .catalog
        .refresh(&app.store, &cipher)
        .await
        .expect("refresh");
    app.grant(usd).await;
    app
}

fn msg(model: &str, extra: Value) -> Value {
    let mut b = json!({"model": model, "messages": [{"role": "user", "content": "Write as much as you may."}]});
    if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
        o.extend(e);
    }
    b
}

/// A generation as stored: (prompt, completion, charge, held, status, estimated).
async fn generation(app: &TestApp, id: &str) -> (i64, i64, i64, i64, i64, i64) {
    for _ in 0..100 {
        let row = sqlx::query_as(
            "SELECT prompt_tokens, completion_tokens, charge_nanos, held_nanos, status, usage_estimated \
             FROM generations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&app.store.pool)
        .await
        .expect("query");
        if let Some(r) = row {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("generation {id} was never recorded")
}

async fn losses(app: &TestApp, gen: &str) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT kind, cost_nanos, uncollected_nanos FROM operator_losses WHERE generation_id = $1 ORDER BY id",
    )
    .bind(gen)
    .fetch_all(&app.store.pool)
    .await
    .expect("losses")
}

/// The balance never goes below zero through usage, and the books balance.
async fn sound(app: &TestApp) {
    let b = app.balance().await;
    assert!(b.balance().0 >= 0, "usage overdrew the balance: {b:?}");
    app.assert_books_balance().await;
}

/// A 1024×1024 PNG as a data URL (only its header is read, by the gateway and by the fake alike).
fn png_1024() -> String {
    use base64::Engine;
    let mut bytes = vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52, 0,
        0, 0x04, 0x00, 0, 0, 0x04, 0x00, 8, 6, 0, 0, 0, 0x7F, 0x1D, 0x2B, 0x83,
    ];
    bytes.extend(std::iter::repeat_n(0u8, 300));
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

async fn every_provider_is_told_the_cap_it_was_held_for(db: Db) {
    // $0.05: one request's hold (1,000 tokens at $30/M plus markup) fits; a provider writing its own
    // 8,192 tokens would cost five times the balance. The second request no longer fits its hold.
    let app = start(db, "0.05").await;
    for expect in [200, 402] {
        arm(&app, "cap-openai", 1, json!({"fill": true})).await;
        let (s, v, _) = ask(&app, msg("cap/openai", json!({}))).await;
        assert_eq!(s, expect, "{v}");
        sound(&app).await;
    }
    // (The refused request's armed switch waits for the next request, which wants the same.)
    app.grant("2").await;
    for (model, upstream, field) in KINDS {
        for (stream, max) in [(false, None), (true, Some(5000)), (false, Some(400))] {
            arm(&app, upstream, 1, json!({"fill": true})).await;
            let mut extra = json!({"stream": stream});
            if let Some(m) = max {
                extra["max_tokens"] = json!(m);
            }
            let (s, v, gen) = ask(&app, msg(model, extra)).await;
            assert_eq!(s, 200, "{model}: {v}");
            let want = max.map_or(1000, |m: u64| m.min(1000));
            let sent = app.fake_stats.last_body.lock().clone().expect("body");
            assert_eq!(
                sent.pointer(field),
                Some(&json!(want)),
                "{model} was told {sent}"
            );
            if *field == "/max_completion_tokens" {
                assert!(
                    sent.get("max_tokens").is_none(),
                    "{model}: a second cap {sent}"
                );
            }
            let (_, completion, charge, held, status, estimated) = generation(&app, &gen).await;
            assert_eq!((status, estimated), (200, 0));
            assert_eq!(completion, want as i64, "{model} stream={stream}");
            assert!(charge <= held, "{model}: charged {charge} of {held}");
            assert!(
                losses(&app, &gen).await.is_empty(),
                "{model}: an honest provider costs no loss"
            );
            sound(&app).await;
        }
    }
    // A model the catalog gives no output limit: the request's own (within the context window), else
    // 4,096 — never the whole window.
    app.grant("5").await;
    for (max, told) in [
        (None, 4096),
        (Some(20_000), 20_000),
        (Some(500_000), 100_000),
    ] {
        let mut extra = json!({});
        if let Some(m) = max {
            extra["max_tokens"] = json!(m);
        }
        let (s, v, gen) = ask(&app, msg("cap/uncapped", extra)).await;
        assert_eq!(s, 200, "{v}");
        let sent = app.fake_stats.last_body.lock().clone().expect("body");
        assert_eq!(sent["max_completion_tokens"], json!(told), "{max:?}");
        let (_, _, charge, held, _, _) = generation(&app, &gen).await;
        assert!(charge <= held);
        assert!(
            held >= told * 30_000 * 11 / 10,
            "held {held} for {told} tokens"
        );
    }
    // max_tokens of zero or less, and n of zero, are the client's mistakes.
    for bad in [
        json!({"max_tokens": 0}),
        json!({"max_completion_tokens": -5}),
        json!({"n": 0}),
    ] {
        let field = bad
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .expect("field");
        let (s, v, _) = ask(&app, msg("cap/openai", bad)).await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .expect("message")
                .contains(&format!("`{field}`")),
            "{v}"
        );
    }
    app.stop().await;
}

async fn choices_and_media_are_held_for(db: Db) {
    let app = start(db, "5").await;
    // n: each choice fills the cap, and the hold covers all of them (OpenAI's n, Gemini's candidateCount).
    for (model, upstream, n) in [
        ("cap/openai", "cap-openai", 3u64),
        ("cap/gemini", "cap-gemini", 2),
    ] {
        arm(&app, upstream, 1, json!({"fill": true})).await;
        let (s, v, gen) = ask(&app, msg(model, json!({"n": n}))).await;
        assert_eq!(s, 200, "{v}");
        let (_, completion, charge, held, _, _) = generation(&app, &gen).await;
        assert_eq!(completion, 1000 * n as i64, "{model}");
        assert!(
            charge <= held && held >= (1000 * n as i64 * 30_000) * 11 / 10,
            "{model}: {charge} of {held}"
        );
        assert!(losses(&app, &gen).await.is_empty());
        if model == "cap/openai" {
            assert_eq!(v["choices"].as_array().expect("choices").len(), 3);
        }
    }
    // More choices than the model allows (its catalog says 2; the default is 8) name `n`.
    for (model, n, most) in [("cap/pair", 3, 2), ("cap/openai", 9, 8)] {
        let (s, v, _) = ask(&app, msg(model, json!({"n": n}))).await;
        assert_eq!(s, 400, "{v}");
        let m = v["error"]["message"].as_str().expect("message");
        assert!(
            m.contains("`n`") && m.contains(&format!("at most {most}")),
            "{m}"
        );
    }
    // Media: an inline 1024² image is counted by each provider's own rule (gpt-4o-mini's 25,501 tokens,
    // Claude's 1,369 patches, Gemini's tiles) and held for at each one's documented maximum.
    let image = png_1024();
    for (model, _, _) in KINDS {
        let body = msg(
            model,
            json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": image, "detail": "high"}}]}]}),
        );
        let (s, v, gen) = ask(&app, body).await;
        assert_eq!(s, 200, "{model}: {v}");
        let (prompt, _, charge, held, _, _) = generation(&app, &gen).await;
        assert!(prompt > 1000, "{model}: the image was counted ({prompt})");
        assert!(charge <= held, "{model}: {charge} of {held}");
        assert!(
            losses(&app, &gen).await.is_empty(),
            "{model}: the hold covered the image"
        );
    }
    // A web image (its size unknown) at OpenAI: held at the most any image can cost.
    let (s, v, gen) = ask(
        &app,
        msg(
            "cap/openai",
            json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (prompt, _, charge, held, _, _) = generation(&app, &gen).await;
    assert_eq!(
        prompt,
        2_833 + 8 * 5_667 + 3 + 4,
        "gpt-4o-mini's eight tiles"
    );
    assert!(charge <= held);
    // A document has no documented maximum: the hold takes the whole context window.
    let pdf = "data:application/pdf;base64,JVBERi0xLjQK".to_string() + &"A".repeat(4000);
    let (s, v, gen) = ask(
        &app,
        msg(
            "cap/anthropic",
            json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Summarise."},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf}}]}]}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, _, charge, held, _, _) = generation(&app, &gen).await;
    // 100,000 prompt tokens at $1/M and 1,000 output at $30/M, with 10 % markup.
    assert_eq!(held, (100_000 * 1_000 + 1_000 * 30_000) * 11 / 10);
    assert!(charge < held);
    sound(&app).await;
    app.stop().await;
}

async fn a_provider_that_bills_past_the_hold_costs_the_operator_not_the_tenant(db: Db) {
    let app = start(db, "1").await;
    // Each provider reports (and bills) 50,000 more tokens than it wrote, streamed and not.
    for (model, upstream, _) in KINDS {
        for stream in [false, true] {
            arm(&app, upstream, 1, json!({"overreport": 50_000})).await;
            let (s, v, gen) = ask(
                &app,
                msg(model, json!({"stream": stream, "max_tokens": 10})),
            )
            .await;
            assert_eq!(s, 200, "{model}: {v}");
            let (prompt, completion, charge, held, _, _) = generation(&app, &gen).await;
            assert_eq!(completion, 50_010, "{model}");
            assert_eq!(charge, held, "{model}: the tenant pays the hold");
            let computed = (prompt * 1_000 + completion * 30_000) * 11 / 10;
            let l = losses(&app, &gen).await;
            assert_eq!(l.len(), 1, "{model}: {l:?}");
            assert_eq!(l[0].0, "over_hold");
            assert!(
                (l[0].2 - (computed - held)).abs() <= 1,
                "{model}: uncollected {:?} vs {}",
                l[0],
                computed - held
            );
            if stream {
                let text = v.as_str().expect("sse");
                let usage: Value = sse_events(text)
                    .iter()
                    .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                    .find(|e| e["usage"].is_object())
                    .expect("usage chunk")["usage"]
                    .clone();
                assert_eq!(
                    usage["cost"].as_f64().map(|c| (c * 1e9).round() as i64),
                    Some(held)
                );
            }
            sound(&app).await;
        }
    }
    // The admin's analytics show it, per provider.
    let a = switchyard::usage::analytics(&app.store, "24h", "model", switchyard::store::now_ms())
        .await
        .expect("analytics");
    let row = a
        .losses
        .iter()
        .find(|l| l.kind == "over_hold" && l.provider == "anth")
        .expect("a loss row");
    assert_eq!(row.count, 2);
    assert_eq!(
        a.losses.iter().map(|l| l.count).sum::<i64>(),
        2 * KINDS.len() as i64
    );
    assert!(a.uncollected_nanos > 0);
    app.stop().await;
}

async fn cut_streams_bill_every_kind_of_output(db: Db) {
    let app = start(db, "5").await;
    // Anthropic streams thinking, then a tool call's arguments; the provider drops the stream after
    // three deltas. What arrived (thinking and arguments, not only text) is billed, at least what the
    // provider billed.
    arm(
        &app,
        "cap-think",
        1,
        json!({"drop_after": 3, "tokens": 50, "chunk_delay_ms": 10}),
    )
    .await;
    let body = msg(
        "cap/think",
        json!({"stream": true, "reasoning": {"max_tokens": 1024}, "max_tokens": 2000,
               "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object",
                   "properties": {"city": {"type": "string"}, "country": {"type": "string"}}}}}],
               "tool_choice": {"type": "function", "function": {"name": "lookup"}}}),
    );
    let (s, v, gen) = ask(&app, body).await;
    assert_eq!(s, 200, "{v}");
    assert!(v
        .as_str()
        .expect("sse")
        .contains("\"finish_reason\":\"error\""));
    let (_, completion, charge, held, _, estimated) = generation(&app, &gen).await;
    assert_eq!(estimated, 1);
    let bills = app.fake_stats.bills();
    let bill = bills
        .iter()
        .rev()
        .find(|b| b.model == "cap-think")
        .expect("bill");
    assert!(!bill.finished);
    assert!(
        completion as u64 >= bill.completion,
        "billed {completion}, the provider {}",
        bill.completion
    );
    assert!(
        completion >= 4,
        "thinking and tool arguments count ({completion})"
    );
    assert!(charge > 0 && charge <= held);
    // A client that leaves a stream is billed for what arrived, and the provider for what it sent.
    arm(
        &app,
        "cap-openai",
        1,
        json!({"chunk_delay_ms": 20, "tokens": 200}),
    )
    .await;
    let mut r = app.chat(msg("cap/openai", json!({"stream": true}))).await;
    let gen = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    let mut got = 0;
    while got < 400 {
        match r.chunk().await.expect("chunk") {
            Some(b) => got += b.len(),
            None => break,
        }
    }
    drop(r);
    let (_, completion, charge, held, _, _) = generation(&app, &gen).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bills = app.fake_stats.bills();
    let bill = bills
        .iter()
        .rev()
        .find(|b| b.model == "cap-openai")
        .expect("bill");
    assert!(!bill.finished);
    assert!(
        completion as u64 >= bill.completion,
        "charged {completion} tokens, the provider billed {}",
        bill.completion
    );
    assert!(charge <= held);
    sound(&app).await;
    app.stop().await;
}

async fn time_limits_are_idle_limits(db: Db) {
    let app = start(db, "5").await;
    // A non-streamed answer that takes 3 s to write (20 tokens, 150 ms apart) with 1.5 s limits: it keeps
    // producing, so it is neither cut nor counted against the endpoint.
    arm(
        &app,
        "cap-openai",
        1,
        json!({"chunk_delay_ms": 150, "tokens": 20}),
    )
    .await;
    let started = std::time::Instant::now();
    let (s, v, gen) = ask(&app, msg("cap/openai", json!({}))).await;
    assert_eq!(s, 200, "{v}");
    assert!(started.elapsed() > Duration::from_millis(2_500));
    let (_, completion, _, _, _, _) = generation(&app, &gen).await;
    assert_eq!(completion, 20);
    let ep = app.state.catalog.get().models["cap/openai"].endpoints[0]
        .id
        .clone();
    assert!(matches!(
        app.state.health.breaker(&ep),
        switchyard::gateway::health::Breaker::Closed
    ));
    // A model whose own idle limit is 300 ms: a 600 ms silence mid-answer abandons it. Nothing is
    // charged; the attempt's worst case is the operator's loss.
    arm(
        &app,
        "cap-slow",
        1,
        json!({"chunk_delay_ms": 600, "tokens": 5}),
    )
    .await;
    let (s, v, gen) = ask(&app, msg("cap/slow", json!({}))).await;
    assert_eq!(s, 504, "{v}");
    let (_, _, charge, _, status, _) = generation(&app, &gen).await;
    assert_eq!((charge, status), (0, 504));
    let l = losses(&app, &gen).await;
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].0, "abandoned");
    assert!(l[0].1 > 0 && l[0].2 > 0);
    sound(&app).await;
    app.stop().await;
}

async fn fields_that_change_the_price_are_priced_or_refused(db: Db) {
    let app = start(db, "5").await;
    // Flex at half price: charged half of what the default tier costs.
    let (s, v, gen) = ask(
        &app,
        msg(
            "cap/extras",
            json!({"service_tier": "flex", "max_tokens": 20}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (prompt, completion, charge, _, _, _) = generation(&app, &gen).await;
    let list = (prompt * 1_000 + completion * 30_000) * 11 / 10;
    assert_eq!(charge, (list + 1) / 2, "half of {list}");
    assert_eq!(
        app.fake_stats.last_body.lock().clone().expect("body")["service_tier"],
        "flex"
    );
    // Web search: the endpoint's price per searching request on top.
    let (s, v, gen) = ask(
        &app,
        msg(
            "cap/extras",
            json!({"web_search_options": {}, "max_tokens": 20}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (prompt, completion, charge, _, _, _) = generation(&app, &gen).await;
    assert_eq!(
        charge,
        (prompt * 1_000 + completion * 30_000 + 10_000_000) * 11 / 10
    );
    // Audio input where it is priced (at $40/M), refused where it is not.
    let audio = json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "UklGRg".repeat(400), "format": "wav"}}]}], "max_tokens": 20});
    let (s, v, _) = ask(&app, msg("cap/extras", audio.clone())).await;
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = ask(&app, msg("cap/openai", audio)).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().expect("m").contains("audio"),
        "{v}"
    );
    // Unpriced: refused, naming the field.
    for (body, field) in [
        (json!({"service_tier": "priority"}), "service_tier"),
        (json!({"web_search_options": {}}), "web_search_options"),
        (
            json!({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}),
            "modalities",
        ),
        (
            json!({"search_parameters": {"mode": "on"}}),
            "search_parameters",
        ),
        (
            json!({"tools": [{"type": "web_search_preview"}]}),
            "tools[0]",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]}),
            "messages[0].content[0].cache_control",
        ),
        (
            json!({"store": true, "provider": {"data_collection": "deny"}}),
            "store",
        ),
    ] {
        let (s, v, _) = ask(&app, msg("cap/openai", body.clone())).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .expect("m")
                .contains(&format!("`{field}`")),
            "{v}"
        );
    }
    // Keeping the conversation is the organisation's choice when its policy allows it.
    let (s, v, _) = ask(
        &app,
        msg("cap/openai", json!({"store": true, "max_tokens": 5})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        app.fake_stats.last_body.lock().clone().expect("body")["store"],
        true
    );
    sound(&app).await;
    app.stop().await;
}

both_backends!(
    every_provider_is_told_the_cap_it_was_held_for,
    choices_and_media_are_held_for,
    a_provider_that_bills_past_the_hold_costs_the_operator_not_the_tenant,
    cut_streams_bill_every_kind_of_output,
    time_limits_are_idle_limits,
    fields_that_change_the_price_are_priced_or_refused,
);
