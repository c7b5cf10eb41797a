//! The database goes away under load: PostgreSQL stops answering (every connection to it is cut and new
//! ones refused, as when the server stops or the network fails), SQLite is locked by another process.
//! Answers already admitted are still delivered, their settlements wait in the journal, new requests are
//! answered 503 with `Retry-After` at once, and when the database returns every settlement lands exactly
//! once: the audit is clean and no hold is left.

mod common;

use common::{sse_events, Db, Relay, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How the database is taken away and given back.
enum Outage {
    Postgres(Relay),
    /// Another connection holding SQLite's write lock.
    Sqlite {
        url: String,
        lock: Option<sqlx::SqliteConnection>,
    },
}

impl Outage {
    async fn begin(&mut self) {
        match self {
            Outage::Postgres(r) => r.cut(),
            Outage::Sqlite { url, lock } => {
                use sqlx::Connection;
                let mut c = sqlx::SqliteConnection::connect(url).await.expect("open");
                sqlx::query("BEGIN EXCLUSIVE")
                    .execute(&mut c)
                    .await
                    .expect("lock");
                *lock = Some(c);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Postgres(r) => r.restore(),
            Outage::Sqlite { lock, .. } => {
                if let Some(mut c) = lock.take() {
                    sqlx::query("ROLLBACK")
                        .execute(&mut c)
                        .await
                        .expect("unlock");
                    use sqlx::Connection;
                    c.close().await.expect("close");
                }
            }
        }
    }
}

async fn start(db: Db) -> (TestApp, Outage) {
    let relay = match db {
        Db::Postgres => Some(Relay::start("127.0.0.1:5432".parse().expect("addr")).await),
        Db::Sqlite => None,
    };
    let relay_addr = relay.as_ref().map(|r| r.addr);
    let app = TestApp::start_with(db, move |c| {
        c.admission_timeout_ms = 500;
        c.key_cache_ttl_ms = 100;
        if let Some(a) = relay_addr {
            let url = c
                .database_url
                .expose()
                .replace("127.0.0.1:5432", &a.to_string());
            c.database_url = switchyard::config::Secret::new(url);
        }
    })
    .await;
    app.grant("10").await;
    let outage = match relay {
        Some(r) => Outage::Postgres(r),
        None => Outage::Sqlite {
            url: app.db.url.clone(),
            lock: None,
        },
    };
    (app, outage)
}

fn journal_files(app: &TestApp) -> usize {
    std::fs::read_dir(&app.cfg.journal_dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .count()
        })
        .unwrap_or(0)
}

async fn settlements_wait_out_an_outage_and_land_once(db: Db) {
    let (app, mut outage) = start(db).await;
    // Six streams, each twenty tokens 100 ms apart, admitted before the database goes.
    let mut streams = Vec::new();
    for i in 0..6 {
        let http = app.http.clone();
        let url = app.url("/api/v1/chat/completions");
        let key = app.key.clone();
        streams.push(tokio::spawn(async move {
            let body = json!({"model": "test/fast", "stream": true,
                "messages": [{"role": "user", "content": format!("stream {i}")}],
                "x_fake": {"chunk_delay_ms": 100, "tokens": 20}});
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .expect("send");
            let status = r.status().as_u16();
            let gen = r.headers()["x-generation-id"]
                .to_str()
                .expect("id")
                .to_string();
            (status, gen, r.text().await.expect("body"))
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    outage.begin().await;
    let down_at = Instant::now();

    // Meanwhile a new request is refused quickly, with a time to retry.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let asked = Instant::now();
    let r = app
        .chat(json!({"model": "test/fast", "messages": [{"role": "user", "content": "now?"}]}))
        .await;
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], 503, "{v}");

    // The streams admitted before are delivered whole, each with its cost.
    let mut gens = Vec::new();
    for s in streams {
        let (status, gen, text) = s.await.expect("stream task");
        assert_eq!(status, 200);
        let events = sse_events(&text);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
        let usage: Value = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .find(|e| e["usage"].is_object())
            .expect("usage chunk");
        assert_eq!(usage["usage"]["completion_tokens"], 20);
        assert!(usage["usage"]["cost"].as_f64().expect("cost") > 0.0);
        gens.push(gen);
    }
    assert!(
        journal_files(&app) > 0,
        "the settlements wait in the journal"
    );
    assert!(down_at.elapsed() < Duration::from_secs(20));

    // The database returns: every settlement lands, once.
    outage.end().await;
    let mut landed = false;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generations WHERE status = 200")
            .fetch_one(&app.store.pool)
            .await
            .unwrap_or((0,));
        if n == 6 && journal_files(&app) == 0 {
            landed = true;
            break;
        }
    }
    assert!(
        landed,
        "the journal was replayed ({} files left)",
        journal_files(&app)
    );
    for gen in &gens {
        let (count, charge): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(-amount_nanos), 0) AS BIGINT) FROM ledger WHERE reference = $1",
        )
        .bind(gen)
        .fetch_one(&app.store.pool)
        .await
        .expect("ledger");
        assert_eq!(count, 1, "{gen} charged once");
        assert!(charge > 0);
    }
    // And the platform admits again.
    let r = app
        .chat(json!({"model": "test/fast", "messages": [{"role": "user", "content": "and now?"}]}))
        .await;
    let s = r.status().as_u16();
    assert_eq!(s, 200, "{}", r.text().await.unwrap_or_default());
    app.assert_books_balance().await;
    app.assert_no_holds().await;
    app.stop().await;
}

both_backends!(settlements_wait_out_an_outage_and_land_once);
