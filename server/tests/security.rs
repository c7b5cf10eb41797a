//! Provider credentials and prompts go only to the provider's configured origin: a provider (or anything
//! in front of it) that redirects gets an upstream error naming where it pointed, and the address it
//! pointed to receives nothing — no key, no prompt — for every provider kind, for chat, streams, the
//! connection test and the model import.

mod common;

use axum::{body::Bytes, http::HeaderMap, response::IntoResponse, routing::any, Router};
use common::{Db, TestApp, BEDROCK_KEY, UPSTREAM_KEY};
use serde_json::json;
use std::{net::SocketAddr, sync::Arc};
use switchyard::{catalog, crypto::Cipher};

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

both_backends!(redirects_are_never_followed);
