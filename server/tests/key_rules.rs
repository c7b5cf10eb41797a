//! Per-key rules the gateway enforces, on SQLite and PostgreSQL: model allow-lists (403), requests per
//! minute (429 with Retry-After), requests at a time (429 while that many are in flight, streams until
//! they end), and credit limits that reset each period (402 until the period turns).

mod common;

use common::{chat_body, expected_charge, Db, TestApp};
use serde_json::{json, Value};
use switchyard::keys::{create_key_with, KeyRules, LimitReset};
use switchyard::money::Nanos;

async fn an_allow_list_limits_the_models_a_key_may_call(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let rules = KeyRules {
        allowed_models: Some(vec!["test/fallback".into()]),
        ..KeyRules::default()
    };
    let k = create_key_with(&app.store, &app.org_id, "narrow", None, None, &rules)
        .await
        .expect("key");
    let r = app.chat_with_key(&k.secret, chat_body(json!({}))).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], 403);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("may not call `test/fast`"),
        "{v}"
    );
    assert!(v["error"]["message"]
        .as_str()
        .expect("m")
        .contains("test/fallback"));
    let r = app
        .chat_with_key(
            &k.secret,
            json!({"model": "test/fallback", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .chat_with_key(
            &k.secret,
            json!({"model": "nobody/none", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status(), 404, "an unknown model is still a 404");
    let v: Value = app
        .http
        .get(app.url("/api/v1/key"))
        .bearer_auth(&k.secret)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(v["data"]["allowed_models"], json!(["test/fallback"]));
    app.assert_books_balance().await;
    app.stop().await;
}

async fn requests_per_minute_are_limited_per_key(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let rules = KeyRules {
        requests_per_minute: Some(3),
        ..KeyRules::default()
    };
    let k = create_key_with(&app.store, &app.org_id, "slow", None, None, &rules)
        .await
        .expect("key");
    for _ in 0..3 {
        assert_eq!(
            app.chat_with_key(&k.secret, chat_body(json!({})))
                .await
                .status(),
            200
        );
    }
    let r = app.chat_with_key(&k.secret, chat_body(json!({}))).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait));
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["metadata"]["error_type"], "key_rate_limited");
    assert!(v["error"]["message"]
        .as_str()
        .expect("m")
        .contains("3 requests per minute"));
    // Another key of the same org is not affected.
    assert_eq!(app.chat(chat_body(json!({}))).await.status(), 200);
    let v: Value = app
        .http
        .get(app.url("/api/v1/key"))
        .bearer_auth(&k.secret)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(v["data"]["rate_limit"]["requests"], 3);
    app.assert_books_balance().await;
    app.stop().await;
}

async fn requests_at_a_time_are_limited_per_key(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let rules = KeyRules {
        max_concurrent: Some(2),
        ..KeyRules::default()
    };
    let k = create_key_with(&app.store, &app.org_id, "two at a time", None, None, &rules)
        .await
        .expect("key");
    // Two slow streams hold both places until they end.
    common::arm(&app, "fast-1", 2, json!({"chunk_delay_ms": 150})).await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let r = app
            .chat_with_key(&k.secret, chat_body(json!({"stream": true})))
            .await;
        assert_eq!(r.status(), 200);
        streams.push(r);
    }
    let r = app.chat_with_key(&k.secret, chat_body(json!({}))).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["error"]["metadata"]["error_type"],
        "key_concurrency_limited"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("m")
            .contains("2 requests at a time"),
        "{v}"
    );
    // Another key of the organisation is not affected; the refused request held and charged nothing.
    assert_eq!(app.chat(chat_body(json!({}))).await.status(), 200);
    // A stream that ends gives its place back.
    let first = streams.remove(0);
    first.text().await.expect("read to the end");
    let mut ok = false;
    for _ in 0..50 {
        let r = app.chat_with_key(&k.secret, chat_body(json!({}))).await;
        if r.status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ok, "a place came back when the stream ended");
    drop(streams);
    let v: Value = app
        .http
        .get(app.url("/api/v1/key"))
        .bearer_auth(&k.secret)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(v["data"]["max_concurrent_requests"], 2);
    // Every place is given back once the streams are gone (a client that left included).
    for _ in 0..100 {
        if app.state.in_flight.running(&k.id) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.state.in_flight.running(&k.id), 0);
    // The abandoned stream settles from a task: wait for its hold to go.
    for _ in 0..100 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM holds")
            .fetch_one(&app.store.pool)
            .await
            .expect("count");
        if n == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.assert_no_holds().await;
    app.assert_books_balance().await;
    app.stop().await;
}

async fn a_resetting_limit_refills_when_the_period_turns(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let body = chat_body(json!({"max_tokens": 30}));
    let hold = expected_charge(serde_json::to_vec(&body).expect("json").len() as u64, 30);
    // Room for one request's worst case, not two.
    let allowance = Nanos(hold + 1_000);
    let limit = Some(allowance);
    let daily = KeyRules {
        limit_reset: Some(LimitReset::Daily),
        ..KeyRules::default()
    };
    let resetting = create_key_with(&app.store, &app.org_id, "daily", limit, None, &daily)
        .await
        .expect("key");
    let fixed = create_key_with(
        &app.store,
        &app.org_id,
        "fixed",
        limit,
        None,
        &KeyRules::default(),
    )
    .await
    .expect("key");
    for k in [&resetting, &fixed] {
        assert_eq!(
            app.chat_with_key(&k.secret, body.clone()).await.status(),
            200
        );
        let r = app.chat_with_key(&k.secret, body.clone()).await;
        assert_eq!(r.status(), 402);
        let v: Value = r.json().await.expect("json");
        assert!(
            v["error"]["message"]
                .as_str()
                .expect("m")
                .contains("credit limit"),
            "{v}"
        );
    }
    // Make it yesterday for both keys: only the resetting one gets a fresh allowance.
    sqlx::query("UPDATE api_keys SET period_start = COALESCE(period_start, 0) - 86400000 WHERE id IN ($1, $2)")
        .bind(&resetting.id)
        .bind(&fixed.id)
        .execute(&app.store.pool)
        .await
        .expect("rewind");
    let v: Value = app
        .http
        .get(app.url("/api/v1/key"))
        .bearer_auth(&resetting.secret)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert_eq!(v["data"]["limit_reset"], "daily");
    assert_eq!(
        Nanos::parse_usd(&format!(
            "{:.9}",
            v["data"]["limit_remaining"].as_f64().expect("n")
        ))
        .expect("usd"),
        allowance
    );
    assert_eq!(
        app.chat_with_key(&resetting.secret, body.clone())
            .await
            .status(),
        200,
        "a new day, a new allowance"
    );
    assert_eq!(
        app.chat_with_key(&fixed.secret, body.clone())
            .await
            .status(),
        402,
        "a limit without reset never refills"
    );
    // Total usage keeps counting across periods.
    let v: Value = app
        .http
        .get(app.url("/api/v1/key"))
        .bearer_auth(&resetting.secret)
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
    assert!(v["data"]["usage"].as_f64().expect("usage") * 1e9 > (hold as f64) * 0.5);
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

async fn the_management_api_sets_and_checks_key_rules(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let mkey = switchyard::keys::create_management_key(&app.store, &app.org_id, "ops")
        .await
        .expect("key")
        .secret;
    let send = |method: reqwest::Method, path: String, body: Value| {
        app.http
            .request(method, app.url(&path))
            .bearer_auth(&mkey)
            .json(&body)
            .send()
    };
    let r = send(
        reqwest::Method::POST,
        "/api/v1/keys".into(),
        json!({"name": "rules", "limit": 1, "limit_reset": "weekly", "allowed_models": ["test/fast"], "requests_per_minute": 2, "max_concurrent_requests": 4}),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["data"]["limit_reset"], "weekly");
    assert_eq!(v["data"]["allowed_models"], json!(["test/fast"]));
    assert_eq!(v["data"]["requests_per_minute"], 2);
    assert_eq!(v["data"]["max_concurrent_requests"], 4);
    let (hash, secret) = (
        v["data"]["hash"].as_str().expect("h").to_string(),
        v["key"].as_str().expect("k").to_string(),
    );
    assert_eq!(
        app.chat_with_key(&secret, chat_body(json!({})))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.chat_with_key(
            &secret,
            json!({"model": "test/fallback", "messages": [{"role": "user", "content": "x"}]})
        )
        .await
        .status(),
        403
    );

    for (body, field) in [
        (json!({"limit_reset": "hourly"}), "limit_reset"),
        (json!({"allowed_models": ["nobody/none"]}), "allowed_models"),
        (json!({"allowed_models": "test/fast"}), "allowed_models"),
        (json!({"requests_per_minute": 0}), "requests_per_minute"),
        (json!({"requests_per_minute": 1.5}), "requests_per_minute"),
        (
            json!({"max_concurrent_requests": 0}),
            "max_concurrent_requests",
        ),
        (
            json!({"max_concurrent_requests": "many"}),
            "max_concurrent_requests",
        ),
    ] {
        let r = send(
            reqwest::Method::PATCH,
            format!("/api/v1/keys/{hash}"),
            body.clone(),
        )
        .await
        .expect("req");
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"]["metadata"]["param"], field, "{v}");
    }
    let r = send(
        reqwest::Method::PATCH,
        format!("/api/v1/keys/{hash}"),
        json!({"allowed_models": null, "requests_per_minute": null, "limit_reset": null, "max_concurrent_requests": null}),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (
            v["data"]["allowed_models"].clone(),
            v["data"]["requests_per_minute"].clone(),
            v["data"]["limit_reset"].clone(),
            v["data"]["max_concurrent_requests"].clone()
        ),
        (Value::Null, Value::Null, Value::Null, Value::Null)
    );
    app.stop().await;
}

both_backends!(
    an_allow_list_limits_the_models_a_key_may_call,
    requests_per_minute_are_limited_per_key,
    requests_at_a_time_are_limited_per_key,
    a_resetting_limit_refills_when_the_period_turns,
    the_management_api_sets_and_checks_key_rules,
);
