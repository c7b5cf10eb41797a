//! Provider credentials and prompts go only to the provider's configured origin: a provider (or anything
//! in front of it) that redirects gets an upstream error naming where it pointed, and the address it
//! pointed to receives nothing — no key, no prompt — for every provider kind, for chat, streams, the
//! connection test and the model import. Keys follow the person who made them: disabling an account,
//! demoting a manager or removing a member stops what that person may no longer do, including keys they
//! minted through the management API, and revokes the invitations they sent.

mod common;

use axum::{body::Bytes, http::HeaderMap, response::IntoResponse, routing::any, Router};
use common::{Db, TestApp, BEDROCK_KEY, UPSTREAM_KEY};
use serde_json::json;
use std::{net::SocketAddr, sync::Arc};
use switchyard::{catalog, crypto::Cipher, web::dashboard::Accounts};
use switchyard_app::account::backend::{now_secs, Dashboard, Who};

/// What reached the trap: (path, headers, body).
type Caught = Arc<parking_lot::Mutex<Vec<(String, HeaderMap, Bytes)>>>;

async fn serve(app: Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    a
}

/// A server that records whatever reaches it, and one that redirects everything (307, keeping the
/// method and body) to it.
async fn trap_and_redirector() -> (SocketAddr, SocketAddr, Caught) {
    let caught: Caught = Arc::default();
    let c = caught.clone();
    let trap = serve(Router::new().fallback(any(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let c = c.clone();
            async move {
                c.lock().push((uri.to_string(), headers, body));
                axum::Json(json!({"data": []})).into_response()
            }
        },
    )))
    .await;
    let redirector = serve(
        Router::new().fallback(any(move |uri: axum::http::Uri| async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("http://{trap}{uri}"))],
            )
        })),
    )
    .await;
    (trap, redirector, caught)
}

fn catalog_text(r: SocketAddr) -> String {
    let mut s = String::new();
    for (slug, kind, base, key) in [
        ("r-openai", "openai", format!("http://{r}/v1"), UPSTREAM_KEY),
        (
            "r-azure",
            "azure",
            format!("http://{r}/openai?api-version=2024-10-21"),
            UPSTREAM_KEY,
        ),
        (
            "r-anthropic",
            "anthropic",
            format!("http://{r}/v1"),
            UPSTREAM_KEY,
        ),
        (
            "r-gemini",
            "gemini",
            format!("http://{r}/v1beta"),
            UPSTREAM_KEY,
        ),
        (
            "r-bedrock",
            "bedrock",
            format!("http://{r}/bedrock?region=eu-west-1"),
            BEDROCK_KEY,
        ),
    ] {
        s += &format!(
            r#"
[[providers]]
slug = "{slug}"
name = "{slug}"
kind = "{kind}"
base_url = "{base}"
api_key = "{key}"

[[models]]
slug = "redirect/{kind}"
name = "Redirected {kind}"
context_length = 8000
max_output_tokens = 100
[[models.endpoints]]
provider = "{slug}"
upstream_model = "anthropic.claude-model-v1:0"
input_per_mtok = "1"
output_per_mtok = "1"
"#
        );
    }
    s
}

const SECRET_PROMPT: &str = "the secret plans of the tenant";

async fn redirects_are_never_followed(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("5").await;
    let (trap, redirector, caught) = trap_and_redirector().await;
    let cipher = Cipher::from_config(&app.cfg).expect("cipher");
    catalog::file::apply(
        &app.store,
        &cipher,
        "r.toml",
        &catalog_text(redirector),
        &|_| None,
    )
    .await
    .expect("catalog");
    app.state
        .catalog
        .refresh(&app.store, &cipher)
        .await
        .expect("refresh");
    for kind in ["openai", "azure", "anthropic", "gemini", "bedrock"] {
        for stream in [false, true] {
            let (s, v, _) = common::ask(
                &app,
                json!({"model": format!("redirect/{kind}"), "stream": stream,
                       "messages": [{"role": "user", "content": SECRET_PROMPT}]}),
            )
            .await;
            assert_eq!(s, 502, "{kind}: {v}");
            let m = v["error"]["message"].as_str().expect("message");
            assert!(
                m.contains(&trap.to_string()) && m.contains("not followed"),
                "{kind}: {m}"
            );
            assert!(
                !m.contains(UPSTREAM_KEY) && !m.contains("fakeSecret"),
                "{m}"
            );
        }
    }
    // The admin's connection test and model import say the same.
    for slug in [
        "r-openai",
        "r-anthropic",
        "r-gemini",
        "r-azure",
        "r-bedrock",
    ] {
        let (id,): (String,) = sqlx::query_as("SELECT id FROM providers WHERE slug = $1")
            .bind(slug)
            .fetch_one(&app.store.pool)
            .await
            .expect("provider");
        let e = switchyard::catalog::admin::test_provider(&app.state, &id)
            .await
            .expect_err("redirected");
        assert!(e.contains(&trap.to_string()), "{slug}: {e}");
        let e = switchyard::catalog::admin::provider_models(&app.state, &id)
            .await
            .expect_err("redirected");
        assert!(e.contains(&trap.to_string()), "{slug}: {e}");
    }
    let got = caught.lock().clone();
    assert!(
        got.is_empty(),
        "the redirect target received {} requests: {:?}",
        got.len(),
        got.iter()
            .map(|(p, h, _)| (
                p.clone(),
                h.keys().map(|k| k.to_string()).collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
    );
    // The books are whole: nothing was charged for what never ran.
    let (charged,): (i64,) =
        sqlx::query_as("SELECT CAST(COALESCE(SUM(charge_nanos), 0) AS BIGINT) FROM generations")
            .fetch_one(&app.store.pool)
            .await
            .expect("sum");
    assert_eq!(charged, 0);
    app.assert_books_balance().await;
    app.stop().await;
}

fn who(user: &str, org: Option<&str>) -> Who {
    Who {
        user_id: user.into(),
        org_id: org.map(Into::into),
        signed_in_at: now_secs(),
    }
}

/// The token of the newest `/path?token=` link mailed to `to`.
async fn mailed_token(app: &TestApp, to: &str, path: &str) -> String {
    let (body,): (String,) = sqlx::query_as(
        "SELECT text_body FROM outbox WHERE to_email = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(to)
    .fetch_one(&app.store.pool)
    .await
    .expect("mail");
    let marker = format!("/{path}?token=");
    let start = body.find(&marker).expect("link") + marker.len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// A verified account.
async fn person(app: &TestApp, d: &Accounts, email: &str) -> String {
    let id = d
        .sign_up(email, "correct horse battery", email)
        .await
        .expect("sign up");
    let token = mailed_token(app, email, "verify").await;
    d.verify_email(&token).await.expect("verified");
    id
}

/// (status, error message) of a call with `key`: `/key` for inference keys, `/keys` for management keys.
async fn call(app: &TestApp, key: &str, management: bool) -> (u16, String) {
    let path = if management {
        "/api/v1/keys"
    } else {
        "/api/v1/key"
    };
    let r = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("call");
    let s = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (s, v["error"]["message"].as_str().unwrap_or("").to_string())
}

async fn keys_follow_the_person_who_made_them(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    let root = person(&app, &d, "root@example.com").await;
    let ada = person(&app, &d, "ada@example.com").await;
    let bob = person(&app, &d, "bob@example.com").await;
    let team = d.create_org(&who(&ada, None), "Team").await.expect("team");
    let ada_t = who(&ada, Some(&team));
    d.invite(&ada_t, "bob@example.com", "admin")
        .await
        .expect("invite");
    let token = mailed_token(&app, "bob@example.com", "invite").await;
    d.accept_invitation(&who(&bob, None), &token)
        .await
        .expect("joined");
    let bob_t = who(&bob, Some(&team));

    // Bob, an admin, makes a key, a management key, a key through the management API, and invites.
    let inference = d
        .create_key(
            &bob_t,
            switchyard_app::keys::NewKeyForm {
                name: "bob's".into(),
                ..Default::default()
            },
        )
        .await
        .expect("key");
    let management = d
        .create_management_key(&bob_t, "bob's ops")
        .await
        .expect("management key");
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/keys"))
        .bearer_auth(&management)
        .json(&json!({"name": "minted"}))
        .send()
        .await
        .expect("mint");
    assert_eq!(r.status(), 201);
    let minted = r.json::<serde_json::Value>().await.expect("json")["key"]
        .as_str()
        .expect("secret")
        .to_string();
    d.invite(&bob_t, "carol@example.com", "member")
        .await
        .expect("invite");
    let carol_link = mailed_token(&app, "carol@example.com", "invite").await;
    for (k, m) in [(&inference, false), (&management, true), (&minted, false)] {
        assert_eq!(call(&app, k, m).await.0, 200, "works at first");
    }

    // Demoted to member: the management key stops, the invitation is revoked, the keys still work.
    let said = d.set_role(&ada_t, &bob, "member").await.expect("demoted");
    assert!(
        said.contains("1 management key they made stops working")
            && said.contains("1 open invitation they sent is revoked"),
        "{said}"
    );
    let (s, why) = call(&app, &management, true).await;
    assert_eq!(s, 401);
    assert!(why.contains("no longer an owner or admin"), "{why}");
    assert_eq!(call(&app, &inference, false).await.0, 200);
    assert_eq!(call(&app, &minted, false).await.0, 200);
    let view = d.invitation(&carol_link, None).await.expect("view");
    assert_eq!(view.state, "revoked");
    // Made an admin again, their management key works again.
    d.set_role(&ada_t, &bob, "admin").await.expect("promoted");
    assert_eq!(call(&app, &management, true).await.0, 200);

    // A disabled account: every key it made stops, including the minted one; enabled, they work.
    d.invite(&bob_t, "dan@example.com", "member")
        .await
        .expect("invite");
    let dan_link = mailed_token(&app, "dan@example.com", "invite").await;
    let said = d
        .admin_set_user_disabled(&who(&root, None), &bob, true)
        .await
        .expect("disabled");
    assert!(
        said.contains("2 API keys and 1 management key it made stop working")
            && said.contains("1 open invitation revoked"),
        "{said}"
    );
    for (k, m) in [(&inference, false), (&management, true), (&minted, false)] {
        let (s, why) = call(&app, k, m).await;
        assert_eq!(s, 401);
        assert!(
            why.contains("account that made this API key is disabled"),
            "{why}"
        );
    }
    assert_eq!(
        d.invitation(&dan_link, None).await.expect("view").state,
        "revoked"
    );
    d.admin_set_user_disabled(&who(&root, None), &bob, false)
        .await
        .expect("enabled");
    for (k, m) in [(&inference, false), (&management, true), (&minted, false)] {
        assert_eq!(call(&app, k, m).await.0, 200, "enabled again");
    }

    // Removed: every key they made there is disabled, the management key with the others.
    let said = d.remove_member(&ada_t, &bob).await.expect("removed");
    assert!(
        said.contains("3 keys they made here are disabled"),
        "{said}"
    );
    for (k, m) in [(&inference, false), (&management, true), (&minted, false)] {
        assert_eq!(call(&app, k, m).await.0, 401, "after removal");
    }
    app.stop().await;
}

/// A generation by `key`; its id.
async fn generation_by(app: &TestApp, key: &str) -> String {
    let r = app.chat_with_key(key, common::chat_body(json!({}))).await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    // Recorded once settled; the key that made it reads it.
    for _ in 0..100 {
        let s = reqwest::Client::new()
            .get(app.url(&format!("/api/v1/generation?id={id}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("get")
            .status();
        if s == 200 {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("generation {id} was never recorded")
}

/// `/api/v1/generation` answers a member's key as the dashboard answers the member: only the
/// generations of the keys they made; owners' and admins' keys see the whole organisation's.
async fn member_keys_read_only_their_generations(db: Db) {
    let app = TestApp::start(db).await;
    let d = Accounts::new(app.state.clone());
    let ada = person(&app, &d, "ada@example.com").await;
    let bob = person(&app, &d, "bob@example.com").await;
    let team = d.create_org(&who(&ada, None), "Team").await.expect("team");
    switchyard::billing::ledger::grant(
        &app.store,
        &team,
        switchyard::money::Nanos::parse_usd("5").expect("usd"),
        "grant:team",
        None,
    )
    .await
    .expect("grant");
    let ada_t = who(&ada, Some(&team));
    d.invite(&ada_t, "bob@example.com", "member")
        .await
        .expect("invite");
    let token = mailed_token(&app, "bob@example.com", "invite").await;
    d.accept_invitation(&who(&bob, None), &token)
        .await
        .expect("joined");
    let form = |name: &str| switchyard_app::keys::NewKeyForm {
        name: name.into(),
        ..Default::default()
    };
    let ada_key = d.create_key(&ada_t, form("ada")).await.expect("key");
    let bob_key = d
        .create_key(&who(&bob, Some(&team)), form("bob"))
        .await
        .expect("key");
    let bob_key_2 = d
        .create_key(&who(&bob, Some(&team)), form("bob 2"))
        .await
        .expect("key");
    let by_ada = generation_by(&app, &ada_key).await;
    let by_bob = generation_by(&app, &bob_key).await;
    let read = |key: String, id: String| {
        let url = app.url(&format!("/api/v1/generation?id={id}"));
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("get")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        read(bob_key.clone(), by_ada.clone()).await,
        404,
        "not ada's"
    );
    assert_eq!(read(bob_key.clone(), by_bob.clone()).await, 200);
    assert_eq!(read(bob_key_2, by_bob.clone()).await, 200, "his other key");
    assert_eq!(read(ada_key.clone(), by_bob).await, 200, "owners see all");
    assert_eq!(read(ada_key, by_ada).await, 200);
    app.assert_books_balance().await;
    app.stop().await;
}

/// A provider key's ciphertext is bound to its provider: copied into another provider's row it does not
/// decrypt (so it is never sent to that provider's address) and leaves that pool; keys written before
/// binding are bound at start and keep working.
async fn provider_keys_are_bound_to_their_row(db: Db) {
    use aes_gcm::{aead::Aead, Aes256Gcm, KeyInit, Nonce};
    use base64::{engine::general_purpose::STANDARD as B64, Engine};
    let app = TestApp::start(db).await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.id, p.slug, c.secret_enc FROM provider_credentials c \
         JOIN providers p ON p.id = c.provider_id ORDER BY p.slug, c.label",
    )
    .fetch_all(&app.store.pool)
    .await
    .expect("rows");
    let (a, b) = {
        let first = &rows[0];
        let other = rows
            .iter()
            .find(|r| r.1 != first.1)
            .expect("two providers with keys");
        (first.clone(), other.clone())
    };
    assert!(a.2.starts_with("v2:"), "stored bound: {}", a.2);
    let provider = |c: &switchyard::catalog::Catalog, slug: &str| {
        c.models
            .values()
            .flat_map(|m| m.endpoints.iter())
            .find(|e| e.provider.slug == slug)
            .map(|e| e.provider.clone())
            .expect("provider serves a model")
    };
    let pool = |c: &switchyard::catalog::Catalog, slug: &str| {
        provider(c, slug)
            .credentials
            .iter()
            .map(|k| k.id.clone())
            .collect::<Vec<_>>()
    };
    // Copy a's ciphertext into b's row: b's pool loses that key, nothing else changes.
    sqlx::query("UPDATE provider_credentials SET secret_enc = $1 WHERE id = $2")
        .bind(&a.2)
        .bind(&b.0)
        .execute(&app.store.writer)
        .await
        .expect("swap");
    let c = catalog::load(&app.store, &app.state.cipher)
        .await
        .expect("loads");
    assert!(!pool(&c, &b.1).contains(&b.0), "moved key refused");
    assert!(pool(&c, &a.1).contains(&a.0), "the rest loads");

    // A key written before binding (no `v2:`, no associated data) is bound at start.
    let key = B64
        .decode("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .expect("key");
    let aes = Aes256Gcm::new_from_slice(&key).expect("aes");
    let nonce = [9u8; 12];
    let ct = aes
        .encrypt(Nonce::from_slice(&nonce), UPSTREAM_KEY.as_bytes())
        .expect("enc");
    let legacy = B64.encode([nonce.to_vec(), ct].concat());
    sqlx::query("UPDATE provider_credentials SET secret_enc = $1 WHERE id = $2")
        .bind(&legacy)
        .bind(&b.0)
        .execute(&app.store.writer)
        .await
        .expect("legacy");
    let c = catalog::load(&app.store, &app.state.cipher)
        .await
        .expect("loads");
    assert!(
        !pool(&c, &b.1).contains(&b.0),
        "unbound values are not read"
    );
    assert_eq!(
        catalog::bind_credentials(&app.store, &app.state.cipher)
            .await
            .expect("bind"),
        1
    );
    let c = catalog::load(&app.store, &app.state.cipher)
        .await
        .expect("loads");
    let p = provider(&c, &b.1);
    let k = p
        .credentials
        .iter()
        .find(|k| k.id == b.0)
        .expect("bound and back in the pool");
    assert_eq!(k.secret.expose(), UPSTREAM_KEY);
    app.stop().await;
}

/// `s3://` locations reach Bedrock only in a bucket the provider lists (with `bucketOwner` when the list
/// names the account); any other bucket is refused before anything is sent, and nothing is charged.
async fn s3_locations_only_in_listed_buckets(db: Db) {
    let app = TestApp::start(db).await;
    let text = format!(
        r#"
[[providers]]
slug = "aws"
name = "Fake Bedrock"
kind = "bedrock"
base_url = "http://{fake}/bedrock?region=eu-west-1"
api_key = "{BEDROCK_KEY}"
s3_buckets = ["tenant-media@123456789012"]

[[models]]
slug = "aws/claude"
name = "Claude on Bedrock"
context_length = 200000
max_output_tokens = 4096
[[models.endpoints]]
provider = "aws"
upstream_model = "anthropic.claude-3-haiku-20240307-v1:0"
input_per_mtok = "0.25"
output_per_mtok = "1.25"
"#,
        fake = app.fake
    );
    catalog::file::apply(&app.store, &app.state.cipher, "s3.toml", &text, &|_| None)
        .await
        .expect("apply");
    app.state
        .catalog
        .refresh(&app.store, &app.state.cipher)
        .await
        .expect("refresh");
    // Not for other kinds, and only bucket names.
    for (bad, needle) in [
        (
            text.replace("kind = \"bedrock\"", "kind = \"openai\""),
            "for bedrock providers",
        ),
        (
            text.replace("tenant-media@123456789012", "Tenant_Media"),
            "not an S3 bucket name",
        ),
    ] {
        let e = catalog::file::apply(&app.store, &app.state.cipher, "bad.toml", &bad, &|_| None)
            .await
            .expect_err("refused")
            .to_string();
        assert!(e.contains(needle), "{e}");
    }
    app.grant("5").await;
    let image = |url: &str| {
        json!({"model": "aws/claude", "max_tokens": 16, "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in it?"},
            {"type": "image_url", "image_url": {"url": url}}]}]})
    };
    let r = app.chat(image("s3://tenant-media/cats/1.png")).await;
    assert_eq!(r.status(), 200);
    let sent = app.fake_stats.last_body.lock().clone().expect("body");
    assert_eq!(
        sent["messages"][0]["content"][1]["image"]["source"],
        json!({"s3Location": {"uri": "s3://tenant-media/cats/1.png", "bucketOwner": "123456789012"}})
    );
    let before = app.usage_nanos().await;
    for url in [
        "s3://platform-private/keys.png",
        "s3://tenant-media-x/a.png",
    ] {
        *app.fake_stats.last_body.lock() = None;
        let r = app.chat(image(url)).await;
        assert_eq!(r.status(), 400, "{url}");
        let v: serde_json::Value = r.json().await.expect("json");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("s3:// locations are refused"),
            "{v}"
        );
        assert!(app.fake_stats.last_body.lock().is_none(), "nothing sent");
    }
    assert_eq!(app.usage_nanos().await, before, "nothing charged");
    app.assert_books_balance().await;
    app.stop().await;
}

/// One sign-in attempt over HTTP as the sign-in page makes it, with an `X-Forwarded-For`; the answer's
/// text.
async fn sign_in_from(app: &TestApp, forwarded_for: &str, email: &str) -> String {
    app.http
        .post(app.url("/_app/sign_in"))
        .header("origin", &app.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .header("x-forwarded-for", forwarded_for)
        .body(format!(
            "email={}&password=not+the+password",
            email.replace('@', "%40")
        ))
        .send()
        .await
        .expect("sign in")
        .text()
        .await
        .expect("body")
}

/// Attempts from `forwarded_for` (each with a new address, so only the per-client limit can trip) until
/// one is refused as too many; how many it took, if any was within `most`.
async fn attempts_until_limited(
    app: &TestApp,
    forwarded_for: &dyn Fn(usize) -> String,
    most: usize,
) -> Option<usize> {
    for i in 0..most {
        let said = sign_in_from(app, &forwarded_for(i), &format!("nobody{i}@example.com")).await;
        if said.contains("too many attempts") {
            return Some(i);
        }
        assert!(said.contains("wrong"), "{said}");
    }
    None
}

/// Behind a trusted proxy, clients with different forwarded addresses are limited apart (one attacker
/// does not lock everyone out); from an untrusted peer the header is ignored (forging it does not escape
/// the limit).
async fn limits_count_the_forwarded_client_only_behind_trusted_proxies(db: Db) {
    let app = TestApp::start_with(db, |c| {
        c.trusted_proxies = switchyard::web::throttle::parse_trusted("127.0.0.1/32").expect("cidr")
    })
    .await;
    let n = attempts_until_limited(&app, &|_| "203.0.113.7".into(), 60)
        .await
        .expect("one client is limited");
    assert!(n >= 20, "the limit is 20 a minute: limited after {n}");
    // Another client behind the same proxy is not; the limited one still is.
    let said = sign_in_from(&app, "198.51.100.20", "someone@example.com").await;
    assert!(!said.contains("too many"), "{said}");
    let said = sign_in_from(&app, "6.6.6.6, 203.0.113.7", "someone@example.com").await;
    assert!(
        said.contains("too many"),
        "what the client wrote left of the proxy's hop is ignored: {said}"
    );
    let test_db = app.stop().await;
    drop(test_db);

    // No trusted proxy: a header that changes every time does not escape the limit.
    let app = TestApp::start(db).await;
    let n = attempts_until_limited(&app, &|i| format!("192.0.2.{}", i % 250), 60).await;
    assert!(
        n.is_some_and(|n| n >= 20),
        "forged headers are ignored: {n:?}"
    );
    app.stop().await;
}

/// Public health (the endpoints API, model pages) comes from a snapshot refreshed in the background: an
/// anonymous call does not read the request log, and sees new traffic once the snapshot is retaken.
async fn public_health_comes_from_a_snapshot(db: Db) {
    let app = TestApp::start_with(db, |c| c.health_refresh_ms = 3_600_000).await;
    app.grant("1").await;
    // Let the start's snapshot be taken (an empty log), then make traffic.
    for _ in 0..100 {
        if app.state.endpoint_health.get().taken_at > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        app.state.endpoint_health.get().taken_at > 0,
        "taken at start"
    );
    assert_eq!(app.chat(common::chat_body(json!({}))).await.status(), 200);
    let uptime = |v: &serde_json::Value| v["data"]["endpoints"][0]["uptime_last_1d"].clone();
    let (s, v) = app.get("/api/v1/models/test/fast/endpoints").await;
    assert_eq!(s, 200);
    assert_eq!(
        uptime(&v),
        serde_json::Value::Null,
        "not until the snapshot is retaken: {v}"
    );
    switchyard::catalog::health::refresh(&app.store, &app.state.endpoint_health)
        .await
        .expect("refresh");
    let (_, v) = app.get("/api/v1/models/test/fast/endpoints").await;
    assert_eq!(uptime(&v), json!(100.0), "{v}");
    app.stop().await;
}

both_backends!(
    public_health_comes_from_a_snapshot,
    limits_count_the_forwarded_client_only_behind_trusted_proxies,
    s3_locations_only_in_listed_buckets,
    provider_keys_are_bound_to_their_row,
    redirects_are_never_followed,
    keys_follow_the_person_who_made_them,
    member_keys_read_only_their_generations
);
