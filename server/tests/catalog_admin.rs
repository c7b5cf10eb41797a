//! The catalog run by platform admins (the calls the `/admin/catalog` page makes), on SQLite and
//! PostgreSQL, against the fake upstream over real HTTP: provider keys encrypted and shown only by
//! their last four characters, connection tests and model import, prices (default, provider and model
//! markup, sale price) reaching the gateway for the next request and never for one in flight, disabled
//! endpoints getting no traffic, and every change in the audit log.

mod common;

use common::{chat_body, Db, TestApp, BEDROCK_KEY, UPSTREAM_KEY, UPSTREAM_KEY_2};
use serde_json::{json, Value};
use switchyard::catalog::admin::{change, page, provider_models, test_provider};
use switchyard_app::catalog_admin::CatalogOp;

fn usd_to_nanos(v: &Value) -> i64 {
    let f: f64 = v.to_string().parse().expect("a number");
    switchyard::money::Nanos::parse_usd(&format!("{f:.9}"))
        .expect("usd")
        .0
}

async fn admin(app: &TestApp) -> String {
    let (u, _) =
        switchyard::accounts::sign_up(&app.store, "root@example.com", "correct horse battery")
            .await
            .expect("sign up");
    u.id
}

fn provider(slug: &str, base: &str, key: &str) -> CatalogOp {
    CatalogOp::SaveProvider {
        id: None,
        slug: slug.into(),
        name: format!("{slug} provider"),
        kind: "openai".into(),
        base_url: base.into(),
        api_key: key.into(),
        website: "https://example.com".into(),
        data_policy: "no training on API data".into(),
        markup_percent: String::new(),
        collects_data: false,
        s3_buckets: String::new(),
    }
}

async fn provider_id(app: &TestApp, slug: &str) -> String {
    let (id,): (String,) = sqlx::query_as("SELECT id FROM providers WHERE slug = $1")
        .bind(slug)
        .fetch_one(&app.store.pool)
        .await
        .expect("provider");
    id
}

async fn audit_count(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_log")
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    n
}

async fn providers_keys_are_encrypted_tested_and_listed(db: Db) {
    let app = TestApp::start(db).await;
    let root = admin(&app).await;
    let base = format!("http://{}/v1", app.fake);
    let secret = format!("{UPSTREAM_KEY}-x9z1");
    // The fake checks the key: ours must reach it decrypted.
    let said = change(&app.state, &root, provider("acme", &base, &secret))
        .await
        .expect("add");
    assert!(said.contains("added"), "{said}");
    let (enc, last4, label, pid): (String, String, String, String) = sqlx::query_as(
        "SELECT c.secret_enc, c.last4, c.label, p.id FROM provider_credentials c \
         JOIN providers p ON p.id = c.provider_id WHERE p.slug = 'acme'",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("row");
    assert!(!enc.contains(UPSTREAM_KEY), "the key is stored encrypted");
    let context = switchyard::catalog::credential_context(&pid);
    assert_eq!(
        app.state.cipher.decrypt(&enc, &context).expect("decrypts"),
        secret
    );
    assert_eq!((last4.as_str(), label.as_str()), ("x9z1", "default"));
    // Nothing an admin sees (page or audit) holds the key.
    let p = page(&app.state).await.expect("page");
    let shown = serde_json::to_string(&p).expect("json");
    assert!(!shown.contains(UPSTREAM_KEY));
    let hints =
        |p: &switchyard_app::catalog_admin::CatalogAdmin| -> Vec<(String, String, u64, bool)> {
            p.providers
                .iter()
                .find(|p| p.slug == "acme")
                .expect("listed")
                .credentials
                .iter()
                .map(|c| (c.label.clone(), c.hint.clone(), c.weight, c.enabled))
                .collect()
        };
    assert_eq!(hints(&p), [("default".into(), "••••x9z1".into(), 1, true)]);
    let (audit,): (String,) = sqlx::query_as(
        "SELECT COALESCE(after_json, '') FROM audit_log WHERE action = 'add provider'",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("audit");
    assert!(
        !audit.contains(UPSTREAM_KEY) && audit.contains("••••x9z1"),
        "{audit}"
    );
    // The fake rejects the made-up key: with no other key, the test fails.
    let id = provider_id(&app, "acme").await;
    let e = test_provider(&app.state, &id).await.expect_err("wrong key");
    assert!(e.contains("401"), "{e}");
    // A second key in the pool: the test reports each key.
    let add = |label: &str, key: &str, weight: &str| CatalogOp::AddCredential {
        provider_id: id.clone(),
        label: label.into(),
        api_key: key.into(),
        weight: weight.into(),
    };
    change(&app.state, &root, add("good", UPSTREAM_KEY, "3"))
        .await
        .expect("add key");
    let ok = test_provider(&app.state, &id).await.expect("one key works");
    assert!(
        ok.contains("key good: acme provider answered") && ok.contains("listing 2 models"),
        "{ok}"
    );
    assert!(
        ok.contains("key default: ") && ok.contains("answered 401"),
        "{ok}"
    );
    // Same label twice, a bad weight, a blank key: refused, nothing changes.
    let before = audit_count(&app).await;
    for (op, says) in [
        (
            add("good", UPSTREAM_KEY, "1"),
            "already has a key called good",
        ),
        (add("other", UPSTREAM_KEY, "-2"), "weight"),
        (add("other", "  ", "1"), "API key: required"),
    ] {
        let e = change(&app.state, &root, op).await.expect_err("refused");
        assert!(e.contains(says), "{e}");
    }
    assert_eq!(audit_count(&app).await, before);
    // Turn the bad key off, then remove it: the page and the audit log follow.
    let p = page(&app.state).await.expect("page");
    let cred = |p: &switchyard_app::catalog_admin::CatalogAdmin, label: &str| {
        p.providers
            .iter()
            .filter(|p| p.slug == "acme")
            .flat_map(|p| p.credentials.iter())
            .find(|c| c.label == label)
            .map(|c| c.id.clone())
            .expect("credential")
    };
    let bad = cred(&p, "default");
    change(
        &app.state,
        &root,
        CatalogOp::SaveCredential {
            id: bad.clone(),
            label: "old".into(),
            weight: "1".into(),
            enabled: false,
        },
    )
    .await
    .expect("off");
    let ok = test_provider(&app.state, &id).await.expect("reachable");
    assert!(
        ok.contains("key good: ") && !ok.contains("key old") && !ok.contains("answered 401"),
        "only enabled keys are tried: {ok}"
    );
    assert_eq!(
        hints(&page(&app.state).await.expect("page")),
        [
            (
                "good".into(),
                format!("••••{}", &UPSTREAM_KEY[UPSTREAM_KEY.len() - 4..]),
                3,
                true
            ),
            ("old".into(), "••••x9z1".into(), 1, false)
        ]
    );
    change(&app.state, &root, CatalogOp::RemoveCredential { id: bad })
        .await
        .expect("remove");
    assert_eq!(hints(&page(&app.state).await.expect("page")).len(), 1);
    let actions: Vec<(String,)> = sqlx::query_as(
        "SELECT action FROM audit_log WHERE action LIKE '%key' ORDER BY created_at, id",
    )
    .fetch_all(&app.store.pool)
    .await
    .expect("audit");
    let actions: Vec<&str> = actions.iter().map(|(a,)| a.as_str()).collect();
    assert!(
        actions.contains(&"add key")
            && actions.contains(&"edit key")
            && actions.contains(&"remove key"),
        "{actions:?}"
    );
    let all: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT before_json, after_json FROM audit_log")
            .fetch_all(&app.store.pool)
            .await
            .expect("audit");
    assert!(
        all.iter()
            .all(|(b, a)| !format!("{b:?}{a:?}").contains(UPSTREAM_KEY)),
        "no key in the audit log"
    );
    // Editing the provider keeps its keys.
    let edit = CatalogOp::SaveProvider {
        id: Some(id.clone()),
        slug: "acme".into(),
        name: "Acme AI".into(),
        kind: "openai".into(),
        base_url: format!("{base}/"),
        api_key: String::new(),
        website: String::new(),
        data_policy: String::new(),
        markup_percent: "20".into(),
        collects_data: false,
        s3_buckets: String::new(),
    };
    change(&app.state, &root, edit).await.expect("edit");
    assert!(test_provider(&app.state, &id).await.is_ok());
    let listed = provider_models(&app.state, &id).await.expect("models");
    let ids: Vec<_> = listed
        .models
        .iter()
        .map(|m| (m.id.as_str(), m.imported))
        .collect();
    assert_eq!(ids, [("fast-1", false), ("smart-1", false)]);
    // An unreachable provider says so.
    let dead = provider_id(&app, "dead").await;
    let e = test_provider(&app.state, &dead).await.expect_err("dead");
    assert!(e.contains("did not answer"), "{e}");
    // Bad input changes nothing.
    let before = (
        audit_count(&app).await,
        page(&app.state).await.expect("page"),
    );
    for bad in [
        provider("Bad Slug", &base, ""),
        provider("ok", "ftp://example.com", ""),
        provider("acme", &base, ""),
        CatalogOp::SaveProvider {
            id: None,
            slug: "grpc".into(),
            name: "G".into(),
            kind: "grpc".into(),
            base_url: base.clone(),
            api_key: String::new(),
            website: String::new(),
            data_policy: String::new(),
            markup_percent: String::new(),
            collects_data: false,
            s3_buckets: String::new(),
        },
        CatalogOp::SetDefaultMarkup {
            percent: "-5".into(),
        },
    ] {
        assert!(
            change(&app.state, &root, bad.clone()).await.is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(audit_count(&app).await, before.0);
    assert_eq!(page(&app.state).await.expect("page"), before.1);
    app.stop().await;
}

/// Calls `model` once; returns (status, body).
async fn call(app: &TestApp, model: &str) -> (u16, Value) {
    let r = app.chat(chat_body(json!({"model": model}))).await;
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// The charge of a 200 answer, and what it should be at `in_per_m`/`out_per_m` nanos per token x
/// `num/den`, rounded up once.
fn charged(v: &Value) -> (i64, u64, u64) {
    (
        usd_to_nanos(&v["usage"]["cost"]),
        v["usage"]["prompt_tokens"].as_u64().expect("p"),
        v["usage"]["completion_tokens"].as_u64().expect("c"),
    )
}

fn at(p: u64, c: u64, input: i64, output: i64, num: i64, den: i64) -> i64 {
    let raw = (p as i64 * input + c as i64 * output) * num;
    (raw + den - 1) / den
}

async fn endpoint_of(app: &TestApp, model: &str, provider: &str) -> String {
    let (id,): (String,) = sqlx::query_as(
        "SELECT e.id FROM endpoints e JOIN models m ON m.id = e.model_id JOIN providers p ON p.id = e.provider_id \
         WHERE m.slug = $1 AND p.slug = $2",
    )
    .bind(model)
    .bind(provider)
    .fetch_one(&app.store.pool)
    .await
    .expect("endpoint");
    id
}

async fn model_id(app: &TestApp, slug: &str) -> String {
    let (id,): (String,) = sqlx::query_as("SELECT id FROM models WHERE slug = $1")
        .bind(slug)
        .fetch_one(&app.store.pool)
        .await
        .expect("model");
    id
}

fn price(id: &str, input: &str, output: &str, enabled: bool) -> CatalogOp {
    price_as(id, "smart-1", input, output, enabled)
}

fn price_as(id: &str, upstream: &str, input: &str, output: &str, enabled: bool) -> CatalogOp {
    CatalogOp::SaveEndpoint {
        id: id.into(),
        upstream_model: upstream.into(),
        cost_input: input.into(),
        cost_output: output.into(),
        cache_read: String::new(),
        cache_write: String::new(),
        request_price: String::new(),
        web_search: String::new(),
        audio_input: String::new(),
        service_tiers: String::new(),
        max_output_tokens: String::new(),
        priority: String::new(),
        weight: String::new(),
        enabled,
    }
}

fn model_rules(id: &str, markup: &str, sale: (&str, &str), hidden: bool) -> CatalogOp {
    CatalogOp::SaveModel {
        id: id.into(),
        slug: String::new(),
        name: "Smart One".into(),
        description: "A model imported in a test".into(),
        context_length: "32000".into(),
        max_output_tokens: String::new(),
        max_n: String::new(),
        first_byte_timeout_ms: String::new(),
        idle_timeout_ms: String::new(),
        input_modalities: "text".into(),
        output_modalities: "text".into(),
        supported_parameters: "max_tokens, temperature".into(),
        tokenizer: "Other".into(),
        enabled: true,
        hidden,
        sale_input: sale.0.into(),
        sale_output: sale.1.into(),
        markup_percent: markup.into(),
    }
}

async fn imported_models_are_priced_by_the_rules_and_in_flight_requests_keep_their_price(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("10").await;
    let root = admin(&app).await;
    let base = format!("http://{}/v1", app.fake);
    change(&app.state, &root, provider("acme", &base, UPSTREAM_KEY))
        .await
        .expect("add");
    let acme = provider_id(&app, "acme").await;
    let said = change(
        &app.state,
        &root,
        CatalogOp::Import {
            provider_id: acme.clone(),
            upstream: vec!["smart-1".into()],
        },
    )
    .await
    .expect("import");
    assert!(said.contains("acme/smart-1"), "{said}");
    // Imported, but off and unpriced: nothing is served at $0.
    let (s, _) = call(&app, "acme/smart-1").await;
    assert_ne!(s, 200, "an unpriced import must not serve");
    assert!(provider_models(&app.state, &acme)
        .await
        .expect("models")
        .models
        .iter()
        .any(|m| m.id == "smart-1" && m.imported));
    // Priced and on: the default markup (10 %) applies from the next request.
    let ep = endpoint_of(&app, "acme/smart-1", "acme").await;
    change(&app.state, &root, price(&ep, "1.00", "2.00", true))
        .await
        .expect("price");
    let (s, v) = call(&app, "acme/smart-1").await;
    assert_eq!(s, 200, "{v}");
    let (got, p, c) = charged(&v);
    assert_eq!(got, at(p, c, 1000, 2000, 110, 100));
    // The provider's markup beats the default; the model's beats the provider's; a sale price beats both.
    change(
        &app.state,
        &root,
        CatalogOp::SaveProvider {
            id: Some(acme.clone()),
            slug: "acme".into(),
            name: "Acme".into(),
            kind: "openai".into(),
            base_url: base.clone(),
            api_key: String::new(),
            website: String::new(),
            data_policy: String::new(),
            markup_percent: "20".into(),
            collects_data: false,
            s3_buckets: String::new(),
        },
    )
    .await
    .expect("provider markup");
    let (got, p, c) = charged(&call(&app, "acme/smart-1").await.1);
    assert_eq!(got, at(p, c, 1000, 2000, 120, 100));
    let mid = model_id(&app, "acme/smart-1").await;
    change(&app.state, &root, model_rules(&mid, "5", ("", ""), false))
        .await
        .expect("model markup");
    let (got, p, c) = charged(&call(&app, "acme/smart-1").await.1);
    assert_eq!(got, at(p, c, 1000, 2000, 105, 100));
    change(&app.state, &root, model_rules(&mid, "5", ("3", "4"), false))
        .await
        .expect("sale price");
    let (got, p, c) = charged(&call(&app, "acme/smart-1").await.1);
    assert_eq!(got, at(p, c, 3000, 4000, 1, 1));
    // The public list shows the sale price per token; the admin page shows cost, sale and margin.
    let (_, list) = app.get("/api/v1/models").await;
    let m = list["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == "acme/smart-1")
        .expect("listed");
    assert_eq!(m["pricing"]["prompt"], "0.000003");
    assert_eq!(m["pricing"]["completion"], "0.000004");
    let admin_view = page(&app.state).await.expect("page");
    let row = &admin_view
        .models
        .iter()
        .find(|m| m.slug == "acme/smart-1")
        .expect("model")
        .endpoints[0];
    assert_eq!(
        (
            row.cost_input.as_str(),
            row.cost_output.as_str(),
            row.sale_input.as_str(),
            row.sale_output.as_str()
        ),
        ("1.00", "2.00", "3.00", "4.00")
    );
    // (7 - 3) / 7 of what tenants pay is kept.
    assert_eq!(row.margin, "57.14 %");
    assert_eq!(row.price_rule, "sale price");

    // A request in flight keeps the price it was admitted at.
    change(&app.state, &root, model_rules(&mid, "5", ("", ""), false))
        .await
        .expect("back to markup");
    let (http, url, key) = (
        app.http.clone(),
        app.url("/api/v1/chat/completions"),
        app.key.clone(),
    );
    let (admitted, on_admit) = tokio::sync::oneshot::channel();
    let stream = tokio::spawn(async move {
        let body = chat_body(json!({"model": "acme/smart-1", "stream": true,
            "x_fake": {"tokens": 12, "chunk_delay_ms": 60}}));
        let r = http
            .post(url)
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("req");
        let id = r.headers()["x-generation-id"]
            .to_str()
            .expect("id")
            .to_string();
        // Headers arrive once the request is admitted (and priced) and the upstream has answered.
        let _ = admitted.send(());
        (id, r.text().await.expect("body"))
    });
    on_admit.await.expect("the stream started");
    change(&app.state, &root, model_rules(&mid, "100", ("", ""), false))
        .await
        .expect("markup 100 %");
    let (gen_id, text) = stream.await.expect("stream");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let g = app.wait_generation(&gen_id).await;
    let (charge, cost, p, c): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT charge_nanos, cost_nanos, prompt_tokens, completion_tokens FROM generations WHERE id = $1",
    )
    .bind(&gen_id)
    .fetch_one(&app.store.pool)
    .await
    .expect("generation");
    assert!(g.is_object());
    assert_eq!(cost, at(p as u64, c as u64, 1000, 2000, 1, 1));
    assert_eq!(
        charge,
        at(p as u64, c as u64, 1000, 2000, 105, 100),
        "the in-flight request kept 5 %"
    );
    let (got, p, c) = charged(&call(&app, "acme/smart-1").await.1);
    assert_eq!(
        got,
        at(p, c, 1000, 2000, 200, 100),
        "the next request pays 100 %"
    );

    // A hidden model is callable but not listed.
    change(&app.state, &root, model_rules(&mid, "100", ("", ""), true))
        .await
        .expect("hide");
    let (_, list) = app.get("/api/v1/models").await;
    assert!(!list["data"]
        .as_array()
        .expect("data")
        .iter()
        .any(|m| m["id"] == "acme/smart-1"));
    assert_eq!(call(&app, "acme/smart-1").await.0, 200);

    // Every change is in the audit log, newest first, with who and what.
    let audit = page(&app.state).await.expect("page").audit;
    assert_eq!(audit[0].action, "edit model");
    assert_eq!(audit[0].actor, "root@example.com");
    assert!(
        audit[0].change.contains("hidden: false → true"),
        "{}",
        audit[0].change
    );
    assert!(audit.iter().any(|a| a.action == "edit endpoint"
        && a.change.contains("cost_input: 0.00 → 1.00")
        && a.change.contains("enabled: false → true")));
    assert!(audit
        .iter()
        .any(|a| a.action == "import model" && a.target == "acme/smart-1"));
    assert!(audit
        .iter()
        .any(|a| a.action == "catalog apply" && a.actor == "the operator (CLI)"));
    app.assert_books_balance().await;
    app.stop().await;
}

/// The provider that served an answer, from the request log.
async fn served_by(app: &TestApp, v: Value) -> String {
    let id = v["id"].as_str().expect("id").to_string();
    let g = app.wait_generation(&id).await;
    g["provider_name"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| panic!("no provider in {g}"))
}

async fn disabled_endpoints_and_providers_get_no_traffic(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("10").await;
    let root = admin(&app).await;
    let base = format!("http://{}/v1", app.fake);
    // test/fast is served by "fake" at $0.50/$1.50; a second provider comes first.
    change(&app.state, &root, provider("cheap", &base, UPSTREAM_KEY))
        .await
        .expect("add");
    let cheap = provider_id(&app, "cheap").await;
    change(
        &app.state,
        &root,
        CatalogOp::Import {
            provider_id: cheap.clone(),
            upstream: vec!["fast-1".into()],
        },
    )
    .await
    .expect("import");
    // The import made a new model "fast-1"; serve test/fast through "cheap" instead.
    let (ep,): (String,) = sqlx::query_as(
        "SELECT e.id FROM endpoints e JOIN providers p ON p.id = e.provider_id WHERE p.slug = 'cheap'",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("endpoint");
    let fast = model_id(&app, "test/fast").await;
    sqlx::query("UPDATE endpoints SET model_id = $1 WHERE id = $2")
        .bind(&fast)
        .bind(&ep)
        .execute(&app.store.writer)
        .await
        .expect("move");
    // A lower priority puts it first every time (among equals the cheaper is only likelier).
    let mut on = price_as(&ep, "fast-1", "0.10", "0.20", true);
    if let CatalogOp::SaveEndpoint { priority, .. } = &mut on {
        *priority = "-1".into();
    }
    change(&app.state, &root, on.clone()).await.expect("on");
    for _ in 0..3 {
        let (s, v) = call(&app, "test/fast").await;
        assert_eq!(s, 200);
        assert_eq!(served_by(&app, v).await, "cheap");
    }
    // Endpoint off: every request goes to the other provider.
    change(
        &app.state,
        &root,
        price_as(&ep, "fast-1", "0.10", "0.20", false),
    )
    .await
    .expect("off");
    for _ in 0..3 {
        let (s, v) = call(&app, "test/fast").await;
        assert_eq!(s, 200);
        assert_eq!(served_by(&app, v).await, "fake");
    }
    // Back on, then the provider disabled: the same.
    change(&app.state, &root, on).await.expect("on again");
    assert_eq!(
        served_by(&app, call(&app, "test/fast").await.1).await,
        "cheap"
    );
    change(
        &app.state,
        &root,
        CatalogOp::SetProviderEnabled {
            id: cheap.clone(),
            enabled: false,
        },
    )
    .await
    .expect("disable");
    for _ in 0..3 {
        assert_eq!(
            served_by(&app, call(&app, "test/fast").await.1).await,
            "fake"
        );
    }
    // With its only provider disabled, a model is not served at all.
    let fake = provider_id(&app, "fake").await;
    change(
        &app.state,
        &root,
        CatalogOp::SetProviderEnabled {
            id: fake,
            enabled: false,
        },
    )
    .await
    .expect("disable");
    assert_ne!(call(&app, "test/fast").await.0, 200);
    app.assert_books_balance().await;
    app.stop().await;
}

async fn endpoint_health_comes_from_the_request_log(db: Db) {
    // No cool-down: the dead endpoint's breaker opens, but every request probes it again, so each
    // one records an attempt there.
    let app = TestApp::start_with(db, |c| c.breaker_cooldown_ms = 0).await;
    app.grant("10").await;
    // test/fallback tries the dead provider first (cheapest), then falls back to the fake.
    for _ in 0..6 {
        let (s, v) = call(&app, "test/fallback").await;
        assert_eq!(s, 200, "{v}");
        app.wait_generation(v["id"].as_str().expect("id")).await;
    }
    // A request the upstream refuses as the client's fault does not count against it.
    let r = app
        .chat(chat_body(
            json!({"model": "test/fast", "x_fake": {"status": 400}}),
        ))
        .await;
    assert_eq!(r.status().as_u16(), 400);
    let id = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    app.wait_generation(&id).await;
    let view = page(&app.state).await.expect("page");
    let dead = view
        .providers
        .iter()
        .find(|p| p.slug == "dead")
        .expect("dead");
    let fake = view
        .providers
        .iter()
        .find(|p| p.slug == "fake")
        .expect("fake");
    assert!(dead.degraded && !fake.degraded);
    let fallback = view
        .models
        .iter()
        .find(|m| m.slug == "test/fallback")
        .expect("model");
    let by = |name: &str| {
        fallback
            .endpoints
            .iter()
            .find(|e| e.provider == name)
            .expect("endpoint")
            .clone()
    };
    let (d, f) = (by("Dead Provider"), by("Fake OpenAI"));
    assert!(d.degraded && !f.degraded);
    assert_eq!(
        (d.health[0].requests, d.health[0].uptime.as_str()),
        (6, "0.00 %")
    );
    assert_eq!(
        (f.health[0].requests, f.health[0].uptime.as_str()),
        (6, "100.00 %")
    );
    assert!(
        f.health[0].latency.starts_with("p50 "),
        "{}",
        f.health[0].latency
    );
    assert_eq!(d.health[0].latency, "—");
    let fast = view
        .models
        .iter()
        .find(|m| m.slug == "test/fast")
        .expect("fast");
    let h = &fast.endpoints[0].health[0];
    assert_eq!(
        (h.requests, h.uptime.as_str()),
        (1, "—"),
        "a client error alone says nothing"
    );

    // The public endpoints list, in OpenRouter's shape (from the health snapshot, taken now).
    switchyard::catalog::health::refresh(&app.store, &app.state.endpoint_health)
        .await
        .expect("health");
    let (s, v) = app.get("/api/v1/models/test/fallback/endpoints").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["id"], "test/fallback");
    let eps = v["data"]["endpoints"].as_array().expect("endpoints");
    assert_eq!(eps.len(), 2);
    let dead = eps.iter().find(|e| e["tag"] == "dead").expect("dead");
    let fake = eps.iter().find(|e| e["tag"] == "fake").expect("fake");
    assert_eq!(
        (dead["status"].as_i64(), dead["uptime_last_5m"].as_f64()),
        (Some(-1), Some(0.0))
    );
    assert_eq!(
        (fake["status"].as_i64(), fake["uptime_last_1d"].as_f64()),
        (Some(0), Some(100.0))
    );
    assert_eq!(fake["pricing"]["prompt"], "0.00000055");
    assert!(fake["latency_last_30m"]["p50"].as_i64().is_some());
    assert_eq!(fake["provider_name"], "Fake OpenAI");
    let (s, v) = app.get("/api/v1/models/test/nope/endpoints").await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], 404);
    app.stop().await;
}

fn key_op(provider_id: &str, label: &str, key: &str, weight: &str) -> CatalogOp {
    CatalogOp::AddCredential {
        provider_id: provider_id.into(),
        label: label.into(),
        api_key: key.into(),
        weight: weight.into(),
    }
}

async fn credential_id(app: &TestApp, provider: &str, label: &str) -> String {
    let (id,): (String,) = sqlx::query_as(
        "SELECT c.id FROM provider_credentials c JOIN providers p ON p.id = c.provider_id \
         WHERE p.slug = $1 AND c.label = $2",
    )
    .bind(provider)
    .bind(label)
    .fetch_one(&app.store.pool)
    .await
    .expect("credential");
    id
}

async fn key_pools_share_traffic_by_weight_and_a_refused_key_fails_over(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("10").await;
    let root = admin(&app).await;
    let fake = provider_id(&app, "fake").await;
    // The fake accepts both keys and counts requests by the key's last four characters.
    change(
        &app.state,
        &root,
        key_op(&fake, "second", UPSTREAM_KEY_2, "3"),
    )
    .await
    .expect("add key");
    let tail = |k: &str| k[k.len() - 4..].to_string();
    let counts = |app: &TestApp| {
        let m = app.fake_stats.by_key.lock();
        (
            m.get(&tail(UPSTREAM_KEY)).copied().unwrap_or(0),
            m.get(&tail(UPSTREAM_KEY_2)).copied().unwrap_or(0),
        )
    };
    for _ in 0..60 {
        let (s, _) = call(&app, "test/fast").await;
        assert_eq!(s, 200);
    }
    let (first, second) = counts(&app);
    assert_eq!(first + second, 60);
    // Weights 1:3: the second key carries about three quarters (P(second <= 30) is about 1e-5).
    assert!(first > 0 && second > 30, "{first} / {second}");

    // A key the provider refuses, weighted to take nearly every request: each request still gets one
    // clean answer through another key, charged once, and the attempts say which key failed.
    change(
        &app.state,
        &root,
        key_op(&fake, "revoked", "sk-revoked-at-provider", "1000"),
    )
    .await
    .expect("add key");
    let before = app.balance().await.balance().0;
    let mut charged_total = 0;
    let mut saw_failover = false;
    for _ in 0..5 {
        let (s, v) = call(&app, "test/fast").await;
        assert_eq!(s, 200, "{v}");
        charged_total += usd_to_nanos(&v["usage"]["cost"]);
        let g = app.wait_generation(v["id"].as_str().expect("id")).await;
        let attempts = g["provider_responses"]
            .as_array()
            .expect("attempts")
            .clone();
        let last = attempts.last().expect("an attempt");
        assert_eq!(last["status"], 200);
        // Tenants never see which key of the pool was used.
        assert!(
            attempts.iter().all(|a| a.get("credential").is_none()),
            "{attempts:?}"
        );
        if attempts.len() == 2 {
            assert_eq!(attempts[0]["status"].as_u64(), Some(401));
            assert_eq!(attempts[0]["endpoint_id"], last["endpoint_id"]);
            saw_failover = true;
        }
    }
    assert!(
        saw_failover,
        "the revoked key (weight 1000 of 1004) was drawn at least once"
    );
    assert_eq!(before - app.balance().await.balance().0, charged_total);
    // Weight 0 rests a key: no request tries it.
    let revoked = credential_id(&app, "fake", "revoked").await;
    change(
        &app.state,
        &root,
        CatalogOp::SaveCredential {
            id: revoked,
            label: "revoked".into(),
            weight: "0".into(),
            enabled: true,
        },
    )
    .await
    .expect("rest");
    for _ in 0..5 {
        let (_, v) = call(&app, "test/fast").await;
        let g = app.wait_generation(v["id"].as_str().expect("id")).await;
        assert_eq!(
            g["provider_responses"].as_array().expect("a").len(),
            1,
            "{g}"
        );
    }
    app.stop().await;
}

async fn cache_request_and_organisation_prices_are_charged_exactly(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("10").await;
    let root = admin(&app).await;
    let ep = endpoint_of(&app, "test/fast", "fake").await;
    let mut op = price_as(&ep, "fast-1", "0.50", "1.50", true);
    if let CatalogOp::SaveEndpoint {
        cache_read,
        request_price,
        ..
    } = &mut op
    {
        *cache_read = "0.05".into();
        *request_price = "0.0001".into();
    }
    change(&app.state, &root, op).await.expect("price");
    let body = |cached: u64| chat_body(json!({"x_fake": {"cached_tokens": cached}}));
    // Cost in nanos x 10^6: uncached prompt at $0.50/M, cached at $0.05/M, output at $1.50/M, and
    // $0.0001 (100,000 nanos) per request; the tenant pays that x 1.1 (default markup) x the org's share.
    let expect = |p: u64, cached: u64, c: u64, share_ppm: i128| -> i64 {
        let cost = (p - cached) as i128 * 500_000_000
            + cached as i128 * 50_000_000
            + c as i128 * 1_500_000_000
            + 100_000 * 1_000_000;
        let num = cost * 1_100_000 * share_ppm;
        let den: i128 = 1_000_000 * 1_000_000 * 1_000_000;
        ((num + den - 1) / den) as i64
    };
    let r = app.chat(body(8)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    let (cost, p, c) = charged(&v);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
    assert_eq!(cost, expect(p, 8, c, 1_000_000));
    let id = v["id"].as_str().expect("id").to_string();
    app.wait_generation(&id).await;
    let (cached,): (i64,) =
        sqlx::query_as("SELECT cache_read_tokens FROM generations WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.store.pool)
            .await
            .expect("row");
    assert_eq!(cached, 8);
    // The public price list shows the cache and per-request prices after markup.
    let (_, models) = app.get("/api/v1/models").await;
    let fast = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == "test/fast")
        .expect("listed")
        .clone();
    assert_eq!(fast["pricing"]["input_cache_read"], "0.000000055");
    assert_eq!(fast["pricing"]["request"], "0.00011");

    // The organisation pays 90 % of list price from its next request, rounded once on the whole.
    let bad_before = audit_count(&app).await;
    for (org, pct, says) in [
        ("nobody", "90", "no organisation is called"),
        ("acme", "0", "above 0"),
        ("acme", "ninety", "pays"),
    ] {
        let e = change(
            &app.state,
            &root,
            CatalogOp::SetOrgPrice {
                org: org.into(),
                percent: pct.into(),
                note: String::new(),
            },
        )
        .await
        .expect_err("refused");
        assert!(e.contains(says), "{e}");
    }
    assert_eq!(audit_count(&app).await, bad_before);
    let said = change(
        &app.state,
        &root,
        CatalogOp::SetOrgPrice {
            org: "acme".into(),
            percent: "90".into(),
            note: "annual contract".into(),
        },
    )
    .await
    .expect("discount");
    assert!(said.contains("acme pays 90 %"), "{said}");
    let v: Value = app.chat(body(0)).await.json().await.expect("json");
    let (cost, p, c) = charged(&v);
    assert_eq!(cost, expect(p, 0, c, 900_000));
    let pg = page(&app.state).await.expect("page");
    assert_eq!(
        pg.org_prices
            .iter()
            .map(|o| (o.org.as_str(), o.percent.as_str(), o.note.as_str()))
            .collect::<Vec<_>>(),
        [("acme", "90", "annual contract")]
    );
    // Blank: list price again.
    change(
        &app.state,
        &root,
        CatalogOp::SetOrgPrice {
            org: "acme".into(),
            percent: String::new(),
            note: String::new(),
        },
    )
    .await
    .expect("list price");
    let v: Value = app.chat(body(0)).await.json().await.expect("json");
    let (cost, p, c) = charged(&v);
    assert_eq!(cost, expect(p, 0, c, 1_000_000));
    assert!(page(&app.state).await.expect("page").org_prices.is_empty());
    app.stop().await;
}

async fn models_describe_themselves_and_priority_orders_endpoints(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("10").await;
    let root = admin(&app).await;
    let fast = model_id(&app, "test/fast").await;
    let mut op = model_rules(&fast, "", ("", ""), false);
    if let CatalogOp::SaveModel {
        input_modalities,
        supported_parameters,
        tokenizer,
        max_output_tokens,
        ..
    } = &mut op
    {
        *input_modalities = "text, image".into();
        *supported_parameters = "max_tokens, tools".into();
        *tokenizer = "GPT".into();
        *max_output_tokens = "500".into();
    }
    change(&app.state, &root, op.clone()).await.expect("save");
    let (_, models) = app.get("/api/v1/models").await;
    let m = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|m| m["id"] == "test/fast")
        .expect("listed")
        .clone();
    assert_eq!(m["architecture"]["modality"], "text+image->text");
    assert_eq!(
        m["architecture"]["input_modalities"],
        json!(["text", "image"])
    );
    assert_eq!(m["architecture"]["tokenizer"], "GPT");
    assert_eq!(m["supported_parameters"], json!(["max_tokens", "tools"]));
    assert_eq!(m["top_provider"]["max_completion_tokens"], 500);
    // Unknown modalities and odd parameter names are refused, naming the field.
    for (field, value, says) in [
        ("in", "text, smell", "input modalities"),
        ("params", "max tokens", "supported parameters"),
    ] {
        let mut bad = op.clone();
        if let CatalogOp::SaveModel {
            input_modalities,
            supported_parameters,
            ..
        } = &mut bad
        {
            if field == "in" {
                *input_modalities = value.into();
            } else {
                *supported_parameters = value.into();
            }
        }
        let e = change(&app.state, &root, bad).await.expect_err("refused");
        assert!(e.contains(says), "{e}");
    }
    // test/fallback tries the cheaper dead provider first; a lower priority puts fake first.
    let (_, v) = call(&app, "test/fallback").await;
    let g = app.wait_generation(v["id"].as_str().expect("id")).await;
    assert_eq!(g["provider_responses"].as_array().expect("a").len(), 2);
    let ep = endpoint_of(&app, "test/fallback", "fake").await;
    let mut first = price_as(&ep, "fast-1", "0.50", "1.50", true);
    if let CatalogOp::SaveEndpoint { priority, .. } = &mut first {
        *priority = "-1".into();
    }
    change(&app.state, &root, first).await.expect("priority");
    let (_, v) = call(&app, "test/fallback").await;
    let g = app.wait_generation(v["id"].as_str().expect("id")).await;
    let attempts = g["provider_responses"].as_array().expect("a");
    assert_eq!(
        (attempts.len(), attempts[0]["provider"].as_str()),
        (1, Some("fake"))
    );

    // A new id: clients call it by the new one at once, and keys allowed the old id keep their access.
    sqlx::query(
        "UPDATE api_keys SET allowed_models = '[\"test/fast\",\"test/fallback\"]' WHERE id = $1",
    )
    .bind(&app.key_id)
    .execute(&app.store.writer)
    .await
    .expect("allow-list");
    let mut rename = op.clone();
    if let CatalogOp::SaveModel { slug, .. } = &mut rename {
        *slug = "Test Quick".into();
    }
    let e = change(&app.state, &root, rename.clone())
        .await
        .expect_err("bad id");
    assert!(e.contains("author/name"), "{e}");
    if let CatalogOp::SaveModel { slug, .. } = &mut rename {
        *slug = "test/fallback".into();
    }
    let e = change(&app.state, &root, rename.clone())
        .await
        .expect_err("taken");
    assert!(e.contains("already called test/fallback"), "{e}");
    if let CatalogOp::SaveModel { slug, .. } = &mut rename {
        *slug = "test/quick".into();
    }
    change(&app.state, &root, rename).await.expect("rename");
    assert_eq!(call(&app, "test/quick").await.0, 200);
    assert_eq!(call(&app, "test/fast").await.0, 404);
    let (allowed,): (String,) = sqlx::query_as("SELECT allowed_models FROM api_keys WHERE id = $1")
        .bind(&app.key_id)
        .fetch_one(&app.store.pool)
        .await
        .expect("key");
    assert_eq!(allowed, "[\"test/quick\",\"test/fallback\"]");
    let p = page(&app.state).await.expect("page");
    assert!(p
        .audit
        .iter()
        .any(|a| a.action == "edit model" && a.change.contains("slug: test/fast → test/quick")));
    app.stop().await;
}

async fn export_round_trips_and_openrouter_imports_preview_before_applying(db: Db) {
    use switchyard::catalog::{file, import};
    let app = TestApp::start(db).await;
    app.grant("10").await;
    let root = admin(&app).await;
    // Give the catalog everything export must carry.
    let smart = model_id(&app, "test/fast").await;
    change(
        &app.state,
        &root,
        model_rules(&smart, "25", ("0.90", "2.10"), true),
    )
    .await
    .expect("model");
    let ep = endpoint_of(&app, "test/fallback", "fake").await;
    let mut e = price_as(&ep, "fast-1", "0.50", "1.50", true);
    if let CatalogOp::SaveEndpoint {
        cache_read,
        cache_write,
        request_price,
        priority,
        ..
    } = &mut e
    {
        *cache_read = "0.05".into();
        *cache_write = "0.625".into();
        *request_price = "0.001".into();
        *priority = "2".into();
    }
    change(&app.state, &root, e).await.expect("endpoint");
    let exported = file::export(&app.store).await.expect("export");
    assert!(!exported.contains(UPSTREAM_KEY), "keys are never exported");
    for needle in [
        "sale_input_per_mtok = \"0.9\"",
        "markup_percent = \"25\"",
        "hidden = true",
        "cache_write_per_mtok = \"0.625\"",
        "per_request = \"0.001\"",
        "priority = 2",
        "default_percent = \"10\"",
    ] {
        assert!(
            exported.contains(needle),
            "{needle} missing from:\n{exported}"
        );
    }
    // Applying the export changes nothing (and keeps the stored keys): exporting again gives the same.
    let before = page(&app.state).await.expect("page");
    file::apply(
        &app.store,
        &app.state.cipher,
        "export.toml",
        &exported,
        &|_| None,
    )
    .await
    .expect("apply export");
    assert_eq!(file::export(&app.store).await.expect("export"), exported);
    let after = page(&app.state).await.expect("page");
    assert_eq!(after.providers, before.providers);
    assert_eq!(after.models, before.models);
    assert_eq!(call(&app, "test/fast").await.0, 200, "keys still work");

    // The starter catalog through a provider called `openai` (by author): a preview changes nothing.
    let base = format!("http://{}/v1", app.fake);
    change(&app.state, &root, provider("openai", &base, UPSTREAM_KEY))
        .await
        .expect("provider");
    let models_before: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM models")
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    let d = import::preview(&app.store, "", "").await.expect("preview");
    let added: Vec<&str> = d.added.iter().map(|l| l.slug.as_str()).collect();
    assert!(
        added.contains(&"openai/gpt-4o") && added.contains(&"openai/gpt-4o-mini"),
        "{added:?}"
    );
    assert!(added.iter().all(|s| s.starts_with("openai/")), "{added:?}");
    assert!(d
        .skipped
        .iter()
        .any(|l| l.slug == "anthropic/claude-sonnet-4"
            && l.detail.contains("no provider `anthropic`")));
    assert!(d.changed.is_empty() && d.removed.is_empty());
    let models_after: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM models")
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    assert_eq!(models_before, models_after, "a preview changes nothing");
    let said = change(
        &app.state,
        &root,
        CatalogOp::ImportCatalog {
            json: String::new(),
            provider_id: String::new(),
        },
    )
    .await
    .expect("apply");
    assert!(said.contains(&format!("{} new", added.len())), "{said}");
    let again = import::preview(&app.store, "", "").await.expect("preview");
    assert!(again.added.is_empty() && again.changed.is_empty());
    assert_eq!(again.unchanged as usize, added.len());
    // Its prices are the endpoint's cost: $0.15 / $0.60 per million for gpt-4o-mini, x 1.1 to tenants;
    // the upstream is asked for the model by its own name.
    let (s, v) = call(&app, "openai/gpt-4o-mini").await;
    assert_eq!(s, 200, "{v}");
    let (cost, p, c) = charged(&v);
    assert_eq!(cost, at(p, c, 150, 600, 11, 10));
    assert_eq!(
        app.fake_stats.last_body.lock().as_ref().expect("body")["model"],
        "gpt-4o-mini"
    );

    // A new list: gpt-4o's price changed and only two models remain; the rest are "removed".
    let list = json!({"data": [
        {"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "context_length": 128000,
         "pricing": {"prompt": "0.000002", "completion": "0.000008"}},
        {"id": "openai/gpt-4o-mini", "name": "OpenAI: GPT-4o mini", "context_length": 128000,
         "description": "A small, inexpensive GPT-4o for high-volume tasks; text and image input.",
         "architecture": {"input_modalities": ["text", "image", "file"], "output_modalities": ["text"], "tokenizer": "GPT"},
         "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
         "supported_parameters": ["max_tokens","temperature","top_p","stop","stream","seed","tools","tool_choice",
                                  "response_format","frequency_penalty","presence_penalty","logit_bias","logprobs","top_logprobs"],
         "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "input_cache_read": "0.000000075"}},
        {"id": "openrouter/auto", "name": "Auto", "pricing": {"prompt": "-1", "completion": "-1"}}
    ]})
    .to_string();
    let d = import::preview(&app.store, &list, "")
        .await
        .expect("preview");
    assert_eq!(d.changed.len(), 1, "{:?}", d.changed);
    assert!(
        d.changed[0].slug == "openai/gpt-4o"
            && d.changed[0]
                .detail
                .contains("cost: $2.50 / $10.00 → $2.00 / $8.00"),
        "{:?}",
        d.changed
    );
    assert_eq!(d.unchanged, 1);
    assert_eq!(d.removed.len(), added.len() - 2);
    assert!(d
        .skipped
        .iter()
        .any(|l| l.slug == "openrouter/auto" && l.detail.contains("varies")));
    change(
        &app.state,
        &root,
        CatalogOp::ImportCatalog {
            json: list.clone(),
            provider_id: String::new(),
        },
    )
    .await
    .expect("apply");
    let (_, models) = app.get("/api/v1/models").await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .filter(|id| id.starts_with("openai/"))
        .collect();
    assert_eq!(ids, ["openai/gpt-4o", "openai/gpt-4o-mini"]);
    // Bad input is refused and changes nothing.
    let e = import::preview(&app.store, "{\"models\": 1}", "")
        .await
        .expect_err("bad");
    assert!(e.contains("not a model list"), "{e}");
    // Through one provider, under full ids.
    let fake = provider_id(&app, "fake").await;
    let d = import::preview(&app.store, &list, &fake)
        .await
        .expect("preview");
    assert!(
        d.changed
            .iter()
            .all(|l| l.detail.contains("served by fake")),
        "{:?}",
        d.changed
    );
    app.stop().await;
}

async fn every_kind_of_provider_is_added_listed_and_tested(db: Db) {
    let app = TestApp::start(db).await;
    let root = admin(&app).await;
    let with_kind = |slug: &str, kind: &str, base: &str| {
        let key = if kind == "bedrock" {
            BEDROCK_KEY
        } else {
            UPSTREAM_KEY
        };
        let mut op = provider(slug, base, key);
        if let CatalogOp::SaveProvider {
            kind: k,
            collects_data,
            ..
        } = &mut op
        {
            *k = kind.into();
            *collects_data = kind == "gemini";
        }
        op
    };
    let fake = app.fake;
    for (slug, kind, base, models) in [
        (
            "anth",
            "anthropic",
            format!("http://{fake}/v1"),
            vec!["claude-a", "claude-b"],
        ),
        (
            "gem",
            "gemini",
            format!("http://{fake}/v1beta"),
            vec!["gemini-a", "embedding-a"],
        ),
        (
            "az",
            "azure",
            format!("http://{fake}/openai?api-version=2024-10-21"),
            vec!["dep-1"],
        ),
        (
            "aws",
            "bedrock",
            format!("http://{fake}/bedrock?region=us-east-1"),
            vec![
                "anthropic.claude-3-haiku-20240307-v1:0",
                "meta.llama3-1-70b-instruct-v1:0",
            ],
        ),
    ] {
        change(&app.state, &root, with_kind(slug, kind, &base))
            .await
            .expect(kind);
        let id = provider_id(&app, slug).await;
        let listed = provider_models(&app.state, &id).await.expect("listed");
        let ids: Vec<&str> = listed.models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, models, "{kind}");
        let ok = test_provider(&app.state, &id).await.expect("reachable");
        assert!(ok.contains("answered"), "{ok}");
    }
    // Bedrock with a wrong secret: the test shows AWS's own refusal of the signature.
    let mut op = provider(
        "aws-bad",
        &format!("http://{fake}/bedrock?region=us-east-1"),
        "AKIAFAKEBEDROCK01:wrong",
    );
    if let CatalogOp::SaveProvider { kind, .. } = &mut op {
        *kind = "bedrock".into();
    }
    change(&app.state, &root, op).await.expect("bedrock");
    let id = provider_id(&app, "aws-bad").await;
    let e = test_provider(&app.state, &id).await.expect_err("refused");
    assert!(
        e.contains("403") && e.contains("signature we calculated"),
        "{e}"
    );
    let p = page(&app.state).await.expect("page");
    let gem = p.providers.iter().find(|p| p.slug == "gem").expect("gem");
    assert!(gem.collects_data && gem.kind == "gemini");
    // A blank base URL is the service's own; Azure has none; unknown kinds are named.
    change(&app.state, &root, with_kind("groq", "groq", ""))
        .await
        .expect("groq");
    let (url,): (String,) = sqlx::query_as("SELECT base_url FROM providers WHERE slug = 'groq'")
        .fetch_one(&app.store.pool)
        .await
        .expect("row");
    assert_eq!(url, "https://api.groq.com/openai/v1");
    let e = change(&app.state, &root, with_kind("az2", "azure", ""))
        .await
        .expect_err("azure needs a URL");
    assert!(e.contains("base URL"), "{e}");
    let e = change(
        &app.state,
        &root,
        with_kind("x", "bogus", "http://x.test/v1"),
    )
    .await
    .expect_err("kind");
    assert!(e.contains("anthropic") && e.contains("gemini"), "{e}");
    // An endpoint's weight: 0 keeps it as a fallback; out of range is refused; the export keeps it.
    let (eid,): (String,) = sqlx::query_as(
        "SELECT e.id FROM endpoints e JOIN models m ON m.id = e.model_id WHERE m.slug = 'test/fast'",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("endpoint");
    let mut op = price_as(&eid, "fast-1", "0.50", "1.50", true);
    if let CatalogOp::SaveEndpoint { weight, .. } = &mut op {
        *weight = "-3".into();
    }
    let e = change(&app.state, &root, op.clone())
        .await
        .expect_err("weight");
    assert!(e.contains("weight"), "{e}");
    if let CatalogOp::SaveEndpoint { weight, .. } = &mut op {
        *weight = "0".into();
    }
    change(&app.state, &root, op).await.expect("weight 0");
    let p = page(&app.state).await.expect("page");
    let m = p
        .models
        .iter()
        .find(|m| m.slug == "test/fast")
        .expect("model");
    assert_eq!(m.endpoints[0].weight, 0);
    let exported = switchyard::catalog::file::export(&app.store)
        .await
        .expect("export");
    assert!(exported.contains("weight = 0"), "{exported}");
    assert!(exported.contains("collects_data = true"), "{exported}");
    app.stop().await;
}

async fn priced_extras_and_model_limits_are_set_on_the_admin_page(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("10").await;
    let root = admin(&app).await;
    let ep = endpoint_of(&app, "test/fast", "fake").await;
    // Service tiers, a web-search price and an audio price on the endpoint.
    let mut op = price_as(&ep, "fast-1", "0.50", "1.50", true);
    if let CatalogOp::SaveEndpoint {
        web_search,
        audio_input,
        service_tiers,
        ..
    } = &mut op
    {
        *web_search = "0.01".into();
        *audio_input = "40".into();
        *service_tiers = "flex=50, Priority=200".into();
    }
    change(&app.state, &root, op.clone()).await.expect("save");
    // Bad tiers are refused, saying how to write them.
    for (bad, says) in [
        ("flex", "like flex=50"),
        ("default=50", "default tier"),
        ("flex=0", "positive percentage"),
        ("flex=fast", "decimal"),
    ] {
        let mut op = op.clone();
        if let CatalogOp::SaveEndpoint { service_tiers, .. } = &mut op {
            *service_tiers = bad.into();
        }
        let e = change(&app.state, &root, op).await.expect_err(bad);
        assert!(e.contains(says), "{bad}: {e}");
    }
    // The model's most choices and its time limits.
    let model = model_id(&app, "test/fast").await;
    let mut m = model_rules(&model, "", ("", ""), false);
    if let CatalogOp::SaveModel {
        slug,
        name,
        max_n,
        first_byte_timeout_ms,
        idle_timeout_ms,
        max_output_tokens,
        ..
    } = &mut m
    {
        *slug = "test/fast".into();
        *name = "Test Fast".into();
        *max_n = "2".into();
        *first_byte_timeout_ms = "9000".into();
        *idle_timeout_ms = "4000".into();
        *max_output_tokens = "1000".into();
    }
    change(&app.state, &root, m.clone())
        .await
        .expect("save model");
    if let CatalogOp::SaveModel {
        idle_timeout_ms, ..
    } = &mut m
    {
        *idle_timeout_ms = "50".into();
    }
    let e = change(&app.state, &root, m).await.expect_err("too short");
    assert!(e.contains("idle limit"), "{e}");
    // The page shows what was saved; the export carries it; the gateway honours it.
    let p = page(&app.state).await.expect("page");
    let fast = p
        .models
        .iter()
        .find(|m| m.slug == "test/fast")
        .expect("model");
    assert_eq!(
        (fast.max_n.as_str(), fast.idle_timeout_ms.as_str()),
        ("2", "4000")
    );
    let e = &fast.endpoints[0];
    assert_eq!(
        (
            e.web_search.as_str(),
            e.audio_input.as_str(),
            e.service_tiers.as_str()
        ),
        ("0.01", "40.00", "flex=50, priority=200")
    );
    let toml = switchyard::catalog::file::export(&app.store)
        .await
        .expect("export");
    for line in [
        "max_n = 2",
        "idle_timeout_ms = 4000",
        "web_search = \"0.01\"",
        "flex = \"50\"",
    ] {
        assert!(toml.contains(line), "{line} in\n{toml}");
    }
    app.state
        .catalog
        .refresh(
            &app.store,
            &switchyard::crypto::Cipher::from_config(&app.cfg).expect("cipher"),
        )
        .await
        .expect("refresh");
    let (s, v) = call_with(
        &app,
        json!({"model": "test/fast", "n": 3, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call_with(&app, json!({"model": "test/fast", "service_tier": "flex", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(s, 200, "{v}");
    app.assert_books_balance().await;
    app.stop().await;
}

async fn call_with(app: &TestApp, body: Value) -> (u16, Value) {
    let r = app.chat(body).await;
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

both_backends!(
    priced_extras_and_model_limits_are_set_on_the_admin_page,
    every_kind_of_provider_is_added_listed_and_tested,
    key_pools_share_traffic_by_weight_and_a_refused_key_fails_over,
    cache_request_and_organisation_prices_are_charged_exactly,
    models_describe_themselves_and_priority_orders_endpoints,
    export_round_trips_and_openrouter_imports_preview_before_applying,
    endpoint_health_comes_from_the_request_log,
    providers_keys_are_encrypted_tested_and_listed,
    imported_models_are_priced_by_the_rules_and_in_flight_requests_keep_their_price,
    disabled_endpoints_and_providers_get_no_traffic,
);
