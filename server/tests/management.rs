//! The key management API over HTTP, on SQLite and PostgreSQL: CRUD with a management key, what each
//! kind of key may do, strict input checking, and that another org's keys are invisible and untouchable.

mod common;

use common::{chat_body, Db, TestApp};
use serde_json::{json, Value};
use std::time::Duration;

struct Mgmt<'a> {
    app: &'a TestApp,
    key: String,
}

impl Mgmt<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .app
            .http
            .request(method, self.app.url(path))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

async fn management_key(app: &TestApp, org_id: &str) -> String {
    switchyard::keys::create_management_key(&app.store, org_id, "ops")
        .await
        .expect("management key")
        .secret
}

async fn keys_are_managed_over_the_api(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("5").await;
    let m = Mgmt {
        app: &app,
        key: management_key(&app, &app.org_id).await,
    };
    use reqwest::Method;

    // The test key exists; the management key itself is not listed.
    let (s, v) = m.send(Method::GET, "/api/v1/keys", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().expect("list").len(), 1);
    assert_eq!(v["data"][0]["name"], "test");

    let (s, v) = m
        .send(
            Method::POST,
            "/api/v1/keys",
            Some(json!({"name": "ci", "limit": 1.5, "expires_at": "2099-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let secret = v["key"].as_str().expect("secret shown once").to_string();
    let hash = v["data"]["hash"].as_str().expect("hash").to_string();
    assert_eq!(v["data"]["limit"], 1.5);
    assert_eq!(v["data"]["limit_remaining"], 1.5);
    assert_eq!(v["data"]["expires_at"], "2099-01-01T00:00:00Z");
    assert!(v["data"].get("key").is_none());

    // The new key calls models; its usage shows on the management API.
    let r = app.chat_with_key(&secret, chat_body(json!({}))).await;
    assert_eq!(r.status(), 200);
    let (s, v) = m
        .send(Method::GET, &format!("/api/v1/keys/{hash}"), None)
        .await;
    assert_eq!(s, 200);
    assert!(v["data"]["usage"].as_f64().expect("usage") > 0.0);
    assert!(
        v["data"].get("key").is_none(),
        "the secret is never shown again"
    );
    assert!(!v.to_string().contains(&secret));

    // A key's default routing: shown back as set, applied to its requests (ignoring the only provider
    // of the model leaves nothing, and the 503 says why), removed with null.
    let (s, v) = m
        .send(
            Method::PATCH,
            &format!("/api/v1/keys/{hash}"),
            Some(json!({"provider": {"ignore": ["Fake OpenAI"], "sort": "price"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["data"]["provider"],
        json!({"ignore": ["Fake OpenAI"], "sort": "price"})
    );
    let r = app.chat_with_key(&secret, chat_body(json!({}))).await;
    assert_eq!(r.status(), 503);
    let e: Value = r.json().await.expect("json");
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("m")
            .contains("ignore"),
        "{e}"
    );
    let (s, v) = m
        .send(
            Method::PATCH,
            &format!("/api/v1/keys/{hash}"),
            Some(json!({"provider": null})),
        )
        .await;
    assert_eq!((s, &v["data"]["provider"]), (200, &Value::Null), "{v}");
    assert_eq!(
        app.chat_with_key(&secret, chat_body(json!({})))
            .await
            .status(),
        200
    );

    // Patch: rename, raise the limit, then disable; the gateway follows within the cache TTL.
    let (s, v) = m
        .send(
            Method::PATCH,
            &format!("/api/v1/keys/{hash}"),
            Some(json!({"name": "ci-2", "limit": "3"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["name"], "ci-2");
    assert_eq!(v["data"]["limit"], 3);
    let (s, _) = m
        .send(
            Method::PATCH,
            &format!("/api/v1/keys/{hash}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        app.chat_with_key(&secret, chat_body(json!({})))
            .await
            .status(),
        401
    );
    let (s, _) = m
        .send(
            Method::PATCH,
            &format!("/api/v1/keys/{hash}"),
            Some(json!({"disabled": false, "limit": null})),
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        app.chat_with_key(&secret, chat_body(json!({})))
            .await
            .status(),
        200
    );

    // Delete: gone from the list, refused by the gateway.
    let (s, v) = m
        .send(Method::DELETE, &format!("/api/v1/keys/{hash}"), None)
        .await;
    assert_eq!((s, v["deleted"].as_bool()), (200, Some(true)));
    let (s, _) = m
        .send(Method::GET, &format!("/api/v1/keys/{hash}"), None)
        .await;
    assert_eq!(s, 404);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        app.chat_with_key(&secret, chat_body(json!({})))
            .await
            .status(),
        401
    );
    app.assert_books_balance().await;
    app.stop().await;
}

async fn each_kind_of_key_stays_in_its_lane(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("1").await;
    let mkey = management_key(&app, &app.org_id).await;
    let r = app.chat_with_key(&mkey, chat_body(json!({}))).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert!(v["error"]["message"]
        .as_str()
        .expect("m")
        .contains("management keys cannot call models"));
    let r = app
        .http
        .get(app.url("/api/v1/keys"))
        .bearer_auth(&app.key)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 403);
    let r = app
        .http
        .get(app.url("/api/v1/keys"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    app.stop().await;
}

async fn bad_input_is_refused_and_changes_nothing(db: Db) {
    let app = TestApp::start(db).await;
    let m = Mgmt {
        app: &app,
        key: management_key(&app, &app.org_id).await,
    };
    use reqwest::Method;
    let cases = [
        (json!({}), "`name` is required"),
        (json!({"name": ""}), "`name`"),
        (json!({"name": "x", "limit": "lots"}), "`limit`"),
        (json!({"name": "x", "limit": -1}), "`limit`"),
        (
            json!({"name": "x", "expires_at": "tomorrow"}),
            "`expires_at`",
        ),
        (json!({"name": "x", "colour": "blue"}), "`colour`"),
        (json!({"name": "x", "provider": "fast"}), "`provider`"),
        (
            json!({"name": "x", "provider": {"sort": "random"}}),
            "`provider.sort`",
        ),
        (
            json!({"name": "x", "provider": {"order": ["nobody"]}}),
            "not a provider here",
        ),
        (json!({"name": "x", "disabled": true}), "`disabled`"),
        (json!(["name"]), "JSON object"),
    ];
    for (body, needle) in cases {
        let (s, v) = m
            .send(Method::POST, "/api/v1/keys", Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], 400);
        assert!(
            v["error"]["message"].as_str().expect("m").contains(needle),
            "{body}: {v}"
        );
    }
    let r = app
        .http
        .post(app.url("/api/v1/keys"))
        .bearer_auth(&m.key)
        .body("{nope")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
    let (s, _) = m
        .send(
            Method::PATCH,
            "/api/v1/keys/0000",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, v) = m.send(Method::GET, "/api/v1/keys", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["data"].as_array().expect("list").len(),
        1,
        "nothing was created"
    );
    app.stop().await;
}

async fn another_orgs_keys_are_invisible_and_untouchable(db: Db) {
    let app = TestApp::start(db).await;
    let ours = Mgmt {
        app: &app,
        key: management_key(&app, &app.org_id).await,
    };
    let other = switchyard::accounts::create_org(&app.store, "rival", "r@rival.test")
        .await
        .expect("org");
    let theirs = Mgmt {
        app: &app,
        key: management_key(&app, &other.id).await,
    };
    use reqwest::Method;
    let (_, v) = ours.send(Method::GET, "/api/v1/keys", None).await;
    let hash = v["data"][0]["hash"].as_str().expect("hash").to_string();
    let (_, v) = theirs.send(Method::GET, "/api/v1/keys", None).await;
    assert_eq!(v["data"], json!([]), "the rival sees none of our keys");
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"disabled": true}))),
        (Method::DELETE, None),
    ] {
        let (s, v) = theirs
            .send(method.clone(), &format!("/api/v1/keys/{hash}"), body)
            .await;
        assert_eq!(s, 404, "{method} {v}");
    }
    let (s, v) = ours
        .send(Method::GET, &format!("/api/v1/keys/{hash}"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["disabled"], false, "unchanged");
    app.stop().await;
}

both_backends!(
    keys_are_managed_over_the_api,
    each_kind_of_key_stays_in_its_lane,
    bad_input_is_refused_and_changes_nothing,
    another_orgs_keys_are_invisible_and_untouchable,
);
