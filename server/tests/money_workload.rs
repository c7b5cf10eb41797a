//! A randomized workload (seeded, reproducible: `SWITCHYARD_WORKLOAD_SEED=<n>` replays one) of every
//! request shape against every provider kind, across three organisations and their keys, concurrently:
//! plain, streamed, cut by the provider, left by the client, refused, failing over, misreported, with
//! media and choices, beside purchases, refunds and disputes arriving as Stripe webhooks. Afterwards
//! `switchyard audit` is clean, no balance was overdrawn by usage, no request was charged above its hold,
//! and everything the fake provider billed is charged to a tenant or recorded as the operator's loss.

mod common;

use common::{Db, TestApp, BEDROCK_KEY, UPSTREAM_KEY};
use futures::{stream, StreamExt};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use std::{collections::HashMap, time::Duration};
use switchyard::{
    billing::{ledger, stripe_sig},
    catalog,
    config::Secret,
    crypto::Cipher,
    money::Nanos,
};

const SECRET: &str = "whsec_workload";

fn catalog_text(fake: std::net::SocketAddr, dead: std::net::SocketAddr) -> String {
    format!(
        r#"
[[providers]]
slug = "w-oai"
name = "W OpenAI"
kind = "openai"
base_url = "http://{fake}/v1"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "w-dead"
name = "W Dead"
kind = "openai"
base_url = "http://{dead}/v1"

[[providers]]
slug = "w-anth"
name = "W Anthropic"
kind = "anthropic"
base_url = "http://{fake}/v1"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "w-gem"
name = "W Gemini"
kind = "gemini"
base_url = "http://{fake}/v1beta"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "w-aws"
name = "W Bedrock"
kind = "bedrock"
base_url = "http://{fake}/bedrock?region=eu-west-1"
api_key = "{BEDROCK_KEY}"

[[models]]
slug = "w/openai"
name = "W OpenAI"
context_length = 50000
max_output_tokens = 300
[[models.endpoints]]
provider = "w-oai"
upstream_model = "w-openai"
input_per_mtok = "1"
output_per_mtok = "20"

[[models]]
slug = "w/anthropic"
name = "W Anthropic"
context_length = 50000
max_output_tokens = 300
[[models.endpoints]]
provider = "w-anth"
upstream_model = "w-anthropic"
input_per_mtok = "3"
output_per_mtok = "15"

[[models]]
slug = "w/gemini"
name = "W Gemini"
context_length = 50000
max_output_tokens = 300
[[models.endpoints]]
provider = "w-gem"
upstream_model = "w-gemini"
input_per_mtok = "0.3"
output_per_mtok = "2.5"

[[models]]
slug = "w/bedrock"
name = "W Bedrock"
context_length = 50000
max_output_tokens = 300
[[models.endpoints]]
provider = "w-aws"
upstream_model = "anthropic.claude-w-v1:0"
input_per_mtok = "0.25"
output_per_mtok = "1.25"

[[models]]
slug = "w/fallback"
name = "W Fallback"
context_length = 50000
max_output_tokens = 300
[[models.endpoints]]
provider = "w-dead"
upstream_model = "gone"
input_per_mtok = "0.1"
output_per_mtok = "0.1"
[[models.endpoints]]
provider = "w-oai"
upstream_model = "w-fallback"
input_per_mtok = "1"
output_per_mtok = "20"
weight = 0

[markup]
default_percent = "10"
"#
    )
}

/// The upstream model of each catalog model, its wire's way of steering the fake, and its prices
/// (nano-USD per token in, out).
const MODELS: &[(&str, &str, u64, u64)] = &[
    ("w/openai", "w-openai", 1_000, 20_000),
    ("w/anthropic", "w-anthropic", 3_000, 15_000),
    ("w/gemini", "w-gemini", 300, 2_500),
    ("w/bedrock", "anthropic.claude-w-v1:0", 250, 1_250),
    ("w/fallback", "w-fallback", 1_000, 20_000),
];

struct Tenant {
    org: String,
    keys: Vec<String>,
}

async fn post_event(app: &TestApp, id: &str, kind: &str, object: Value) -> Value {
    let body = serde_json::to_vec(
        &json!({"id": id, "object": "event", "type": kind, "data": {"object": object}}),
    )
    .expect("json");
    let sig = stripe_sig::sign(&body, SECRET, switchyard::store::now_ms() / 1000);
    let r = app
        .http
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

/// A paid order of `usd` credits (its checkout made directly), and its payment intent.
async fn buy(app: &TestApp, org: &str, usd: u64, n: usize) -> String {
    let order = format!("ord_w{n}");
    let pi = format!("pi_w{n}");
    sqlx::query(
        "INSERT INTO orders (id, org_id, amount_nanos, fee_nanos, status, created_at) VALUES ($1, $2, $3, 0, 'pending', $4)",
    )
    .bind(&order)
    .bind(org)
    .bind(usd as i64 * 1_000_000_000)
    .bind(switchyard::store::now_ms())
    .execute(&app.store.writer)
    .await
    .expect("order");
    let v = post_event(
        app,
        &format!("evt_paid_{n}"),
        "checkout.session.completed",
        json!({"id": format!("cs_{n}"), "object": "checkout.session", "client_reference_id": order,
               "payment_status": "paid", "amount_total": usd * 100, "payment_intent": pi, "currency": "usd"}),
    )
    .await;
    assert_eq!(v["outcome"], "credited");
    pi
}

/// One random request; returns nothing: what matters is what the books and the fake say afterwards.
async fn one_request(app: &TestApp, key: &str, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (model, upstream, _, _) = MODELS[rng.random_range(0..MODELS.len())];
    let openai_wire = matches!(model, "w/openai" | "w/fallback");
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": format!("Request {seed}: tell me something.")}]});
    match rng.random_range(0..4) {
        0 => {}
        1 => body["max_tokens"] = json!(rng.random_range(1..60)),
        2 => body["max_tokens"] = json!(100_000),
        _ => body["max_completion_tokens"] = json!(rng.random_range(1..400)),
    }
    if (model == "w/openai" || model == "w/gemini") && rng.random_bool(0.3) {
        body["n"] = json!(rng.random_range(1..4));
    }
    if rng.random_bool(0.2) && model != "w/gemini" {
        body["messages"][0]["content"] = json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": if model == "w/openai" { "https://example.com/x.png" } else { "data:image/png;base64,iVBORw0KGgo=" }}}]);
    }
    if rng.random_bool(0.15) && model != "w/gemini" {
        body["tools"] = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);
    }
    let stream = rng.random_bool(0.5);
    body["stream"] = json!(stream);
    // What the provider does this time.
    let mut sw = json!({"chunk_delay_ms": 3});
    // (No 429s: one rests the provider's only key for seconds, and little else would run.)
    match rng.random_range(0..40) {
        0..=3 => sw["fill"] = json!(true),
        4..=7 => sw["drop_after"] = json!(rng.random_range(1..8)),
        8..=10 => sw["overreport"] = json!(rng.random_range(1..5000)),
        11..=12 => sw["status"] = json!(500),
        13..=14 => sw["status"] = json!(503),
        15..=18 => sw["tokens"] = json!(rng.random_range(1..40)),
        19 => sw["malformed"] = json!(true),
        _ => {}
    }
    if openai_wire {
        body["x_fake"] = sw;
    } else {
        sw["model"] = json!(upstream);
        sw["times"] = json!(1);
        let _ = app
            .http
            .post(format!("http://{}/_fake/arm", app.fake))
            .json(&sw)
            .send()
            .await;
    }
    let leave_after = rng
        .random_bool(0.2)
        .then(|| rng.random_range(300..1500usize));
    let req = app
        .http
        .post(app.url("/api/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body);
    let Ok(mut r) = req.send().await else {
        return;
    };
    match leave_after {
        // The client leaves part way through.
        Some(bytes) => {
            let mut got = 0;
            while got < bytes {
                match r.chunk().await {
                    Ok(Some(b)) => got += b.len(),
                    _ => break,
                }
            }
        }
        None => {
            let _ = r.bytes().await;
        }
    }
}

async fn the_books_hold_under_a_random_workload(db: Db) {
    let seed: u64 = std::env::var("SWITCHYARD_WORKLOAD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_205);
    eprintln!("workload seed {seed} (SWITCHYARD_WORKLOAD_SEED={seed} replays it)");
    let app = TestApp::start_with(db, |c| {
        c.stripe_webhook_secrets = vec![Secret::new(SECRET)];
        c.breaker_cooldown_ms = 100;
    })
    .await;
    let cipher = Cipher::from_config(&app.cfg).expect("cipher");
    catalog::file::apply(
        &app.store,
        &cipher,
        "workload.toml",
        &catalog_text(app.fake, common::dead_addr().await),
        &|_| None,
    )
    .await
    .expect("catalog");
    app.state
        .catalog
        .refresh(&app.store, &cipher)
        .await
        .expect("refresh");

    let mut rng = StdRng::seed_from_u64(seed);
    // Three organisations: one rich, one poor (most requests refused), one with key limits.
    let mut tenants = vec![Tenant {
        org: app.org_id.clone(),
        keys: vec![app.key.clone()],
    }];
    for name in ["poor", "limited"] {
        let org = switchyard::accounts::create_org(&app.store, name, &format!("owner@{name}.test"))
            .await
            .expect("org");
        let mut keys = Vec::new();
        for k in 0..2 {
            let limit = (name == "limited").then(|| Nanos(150_000_000 * (k + 1)));
            keys.push(
                switchyard::keys::create_key(&app.store, &org.id, &format!("k{k}"), limit, None)
                    .await
                    .expect("key")
                    .secret,
            );
        }
        tenants.push(Tenant { org: org.id, keys });
    }
    let mut orders = Vec::new();
    for (i, (t, usd)) in tenants.iter().zip([20u64, 1, 5]).enumerate() {
        orders.push((t.org.clone(), buy(&app, &t.org, usd, i).await));
    }
    for t in &tenants[1..2] {
        // The poor one gets four cents.
        ledger::grant(&app.store, &t.org, Nanos(40_000_000), "grant:poor", None)
            .await
            .expect("grant");
    }

    // The workload: 160 requests, eight at a time, with refunds and disputes arriving meanwhile.
    let jobs: Vec<(String, u64)> = (0..160)
        .map(|_| {
            let t = &tenants[rng.random_range(0..tenants.len())];
            (
                t.keys[rng.random_range(0..t.keys.len())].clone(),
                rng.random(),
            )
        })
        .collect();
    let app_ref = &app;
    let requests = stream::iter(jobs)
        .map(|(key, s)| async move { one_request(app_ref, &key, s).await })
        .buffer_unordered(8)
        .collect::<Vec<()>>();
    let money = async {
        let mut n = 100;
        for (i, ((_, pi), cents)) in orders.iter().zip([50, 99, 50]).enumerate() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            n += 1;
            // A partial refund (most of the poor one's dollar), then (for one) a dispute that is won.
            post_event(app_ref, &format!("evt_refund_{n}"), "charge.refunded",
                json!({"id": format!("ch_{n}"), "object": "charge", "payment_intent": pi, "amount_refunded": cents, "currency": "usd"})).await;
            if i == 0 {
                let d = json!({"id": "dp_w", "object": "dispute", "payment_intent": pi, "amount": 300, "currency": "usd", "status": "needs_response"});
                post_event(app_ref, "evt_dispute", "charge.dispute.created", d.clone()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut won = d;
                won["status"] = json!("won");
                post_event(app_ref, "evt_dispute_won", "charge.dispute.closed", won).await;
            }
        }
    };
    tokio::join!(requests, money);

    // Settlements of streams their clients left are queued from destructors: wait for the last.
    let mut settled = false;
    for _ in 0..100 {
        let (h,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM holds")
            .fetch_one(&app.store.pool)
            .await
            .expect("holds");
        if h == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(settled, "holds left behind");
    tokio::time::sleep(Duration::from_millis(200)).await;
    common::assert_audit_clean(&app.store).await;

    // No request was charged above its hold; no balance went below zero by usage (the audit checks that
    // usage never exceeds what was given; a refund may still take a balance below zero).
    let (over,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM generations WHERE charge_nanos > held_nanos")
            .fetch_one(&app.store.pool)
            .await
            .expect("count");
    assert_eq!(over, 0);
    let (served, refused): (i64, i64) = sqlx::query_as(
        "SELECT CAST(SUM(CASE WHEN status = 200 THEN 1 ELSE 0 END) AS BIGINT), \
                CAST(SUM(CASE WHEN status <> 200 THEN 1 ELSE 0 END) AS BIGINT) FROM generations",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("count");
    let (loss_n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM operator_losses")
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    let (cut,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM generations WHERE usage_estimated = 1")
            .fetch_one(&app.store.pool)
            .await
            .expect("count");
    let statuses: Vec<(i64, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM generations GROUP BY status ORDER BY status")
            .fetch_all(&app.store.pool)
            .await
            .expect("statuses");
    eprintln!("statuses {statuses:?}");
    let why: Vec<(String, Option<String>, i64)> = sqlx::query_as("SELECT model_slug, error, COUNT(*) FROM generations WHERE status <> 200 GROUP BY model_slug, error ORDER BY 3 DESC")
        .fetch_all(&app.store.pool)
        .await
        .expect("why");
    for w in why.iter().take(8) {
        eprintln!("  {w:?}");
    }
    eprintln!("workload: {} refused before they ran (402, 400), {served} served, {refused} failed upstream,", 160 - served - refused);
    eprintln!(
        "workload: {cut} billed from what arrived, {loss_n} operator losses, {} provider bills",
        app.fake_stats.bills().len()
    );
    assert!(
        served > 50,
        "the workload mostly ran ({served} served, {refused} not)"
    );
    assert!(
        cut > 0 && loss_n > 0,
        "the workload cut streams and lost something"
    );

    // Everything the fake billed is charged to a tenant or recorded as the operator's loss: per
    // provider model, the provider's cost of what it billed is covered by the cost the platform recorded
    // for the requests it served there plus the losses recorded there.
    let bills = app.fake_stats.bills();
    assert!(bills.len() as i64 >= served / 2);
    // (upstream model, upstream id, prompt, completion, cost, estimated)
    type Row = (Option<String>, Option<String>, i64, i64, i64, i64);
    let gens: Vec<Row> = sqlx::query_as(
        "SELECT upstream_model, upstream_id, prompt_tokens, completion_tokens, cost_nanos, usage_estimated FROM generations",
    )
    .fetch_all(&app.store.pool)
    .await
    .expect("generations");
    let losses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.upstream_model, l.cost_nanos FROM operator_losses l JOIN endpoints e ON e.id = l.endpoint_id",
    )
    .fetch_all(&app.store.pool)
    .await
    .expect("losses");
    let by_id: HashMap<&str, (i64, i64, bool)> = gens
        .iter()
        .filter_map(|(_, id, p, c, _, est)| id.as_deref().map(|id| (id, (*p, *c, *est != 0))))
        .collect();
    for (_, upstream, input, output) in MODELS {
        let billed: i64 = bills
            .iter()
            .filter(|b| b.model == *upstream)
            .map(|b| (b.prompt * input + b.completion * output) as i64)
            .sum();
        let recorded: i64 = gens
            .iter()
            .filter(|g| g.0.as_deref() == Some(upstream))
            .map(|g| g.4)
            .sum::<i64>()
            + losses
                .iter()
                .filter(|l| l.0 == *upstream)
                .map(|l| l.1)
                .sum::<i64>();
        assert!(
            billed <= recorded,
            "{upstream}: the provider billed {billed} nano-USD, the platform recorded {recorded}"
        );
        // Each answer is charged at exactly what its provider billed when the provider reported it;
        // counted from what arrived (a stream cut short or left by its client), at least that.
        for b in bills.iter().filter(|b| b.model == *upstream) {
            if let Some((p, c, estimated)) = by_id.get(b.id.as_str()) {
                let (p, c) = (*p as u64, *c as u64);
                if *estimated {
                    assert!(
                        p >= b.prompt && c >= b.completion,
                        "{upstream} {}: charged for {p}+{c} tokens, billed {}+{}",
                        b.id,
                        b.prompt,
                        b.completion
                    );
                } else {
                    assert_eq!((p, c), (b.prompt, b.completion), "{upstream} {}", b.id);
                }
            }
        }
    }
    app.stop().await;
}

both_backends!(the_books_hold_under_a_random_workload);
