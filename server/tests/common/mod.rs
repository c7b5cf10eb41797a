//! Test harness: the real server on an ephemeral port, a fresh database per test (a SQLite file, or a
//! PostgreSQL database created for the test and dropped after), and the fake OpenAI upstream over HTTP.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use switchyard::{
    accounts, billing::ledger, catalog, config::Config, crypto::Cipher, devupstream, keys,
    money::Nanos, state::AppState, store::Store, Application,
};
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs an async test case once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() { super::$case($crate::common::Db::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() { super::$case($crate::common::Db::Postgres).await }
        }
    )*};
}

pub const UPSTREAM_KEY: &str = "sk-upstream-test-secret";
/// A second key the fake upstream accepts (a provider's key pool).
pub const UPSTREAM_KEY_2: &str = "sk-second-upstream-key2";
/// An AWS access key pair the fake's Bedrock accepts (it checks SigV4 signatures made with it).
pub const BEDROCK_KEY: &str = "AKIAFAKEBEDROCK01:fakeSecret/K7MDENG+bPxRfiCYEXAMPLEKEY";

pub fn pg_admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh database: its URL, and what to do to drop it.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(db: Db) -> TestDb {
        switchyard::init_tls();
        let dir = tempfile::tempdir().expect("tempdir");
        match db {
            Db::Sqlite => TestDb {
                url: format!("sqlite://{}/t.db", dir.path().display()),
                pg_name: None,
                _dir: dir,
            },
            Db::Postgres => {
                use sqlx::Connection;
                let name = format!("sy_t_{}", uuid::Uuid::new_v4().simple());
                let mut c = sqlx::PgConnection::connect(&pg_admin_url())
                    .await
                    .expect("PostgreSQL must run on 127.0.0.1:5432 (see README: the test command starts it)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .expect("create test database");
                let base = pg_admin_url();
                let url = format!(
                    "{}/{name}",
                    &base[..base.rfind('/').expect("url has a database")]
                );
                TestDb {
                    url,
                    pg_name: Some(name),
                    _dir: dir,
                }
            }
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside any runtime guarantee: use a short-lived one on a thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut c)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn test_config(db_url: &str, dir: &std::path::Path) -> Config {
    Config {
        database_url: switchyard::config::Secret::new(db_url),
        addr: "127.0.0.1:0".parse().expect("addr"),
        secret_key: Some(switchyard::config::Secret::new(
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )),
        secret_key_file: dir.join("secret.key"),
        max_body_bytes: 64 * 1024,
        upstream_first_byte_timeout_ms: 1_500,
        upstream_idle_timeout_ms: 1_500,
        stream_keepalive_ms: 300,
        key_cache_ttl_ms: 200,
        catalog_refresh_ms: 200,
        health_refresh_ms: 200,
        shutdown_grace_ms: 5_000,
        instance_stale_ms: 1_000,
        site_dir: dir.join("site"),
        journal_dir: dir.join("journal"),
        ..Config::default()
    }
}

/// The test catalog: `test/fast` on the fake upstream; `test/fallback` whose first endpoint is a
/// provider nobody listens on, so every request must fall back to the fake (until its circuit breaker
/// opens: then the dead one is tried last).
pub fn test_catalog(fake: SocketAddr, dead: SocketAddr) -> String {
    format!(
        r#"
[[providers]]
slug = "fake"
name = "Fake OpenAI"
kind = "openai"
base_url = "http://{fake}/v1"
api_key = "{UPSTREAM_KEY}"

[[providers]]
slug = "dead"
name = "Dead Provider"
kind = "openai"
base_url = "http://{dead}/v1"

[[providers]]
slug = "badkey"
name = "Misconfigured Provider"
kind = "openai"
base_url = "http://{fake}/v1"
api_key = "sk-wrong-platform-credential"

[[models]]
slug = "test/badkey"
name = "Test Bad Key"
context_length = 16000
[[models.endpoints]]
provider = "badkey"
upstream_model = "fast-1"
input_per_mtok = "0.50"
output_per_mtok = "1.50"

[[models]]
slug = "test/fast"
name = "Test Fast"
context_length = 16000
max_output_tokens = 1000
[[models.endpoints]]
provider = "fake"
upstream_model = "fast-1"
input_per_mtok = "0.50"
output_per_mtok = "1.50"

[[models]]
slug = "test/fallback"
name = "Test Fallback"
context_length = 16000
max_output_tokens = 1000
[[models.endpoints]]
provider = "dead"
upstream_model = "gone-1"
input_per_mtok = "0.10"
output_per_mtok = "0.10"
[[models.endpoints]]
provider = "fake"
upstream_model = "fast-1"
input_per_mtok = "0.50"
output_per_mtok = "1.50"
# A fallback only: never drawn before the dead provider, so every request tries that first.
weight = 0

[markup]
default_percent = "10"
"#
    )
}

pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub state: AppState,
    pub store: Store,
    pub fake: SocketAddr,
    pub fake_stats: Arc<devupstream::FakeStats>,
    pub http: reqwest::Client,
    pub org_id: String,
    pub key: String,
    pub key_id: String,
    pub cfg: Config,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub db: TestDb,
}

/// A port with nothing listening on it.
pub async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

impl TestApp {
    pub async fn start(db: Db) -> TestApp {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Config)) -> TestApp {
        switchyard::init_tls();
        let tdb = TestDb::new(db).await;
        let mut cfg = test_config(&tdb.url, tdb.dir());
        tweak(&mut cfg);
        let (fake, fake_stats) = devupstream::spawn(
            "127.0.0.1:0".parse().expect("addr"),
            devupstream::FakeConfig {
                chunk_delay_ms: 0,
                api_key: Some(UPSTREAM_KEY.into()),
                more_keys: vec![UPSTREAM_KEY_2.into(), BEDROCK_KEY.into()],
            },
        )
        .await
        .expect("fake upstream");
        let store = Store::open(cfg.database_url.expose(), 8)
            .await
            .expect("open store");
        let cipher = Cipher::from_config(&cfg).expect("cipher");
        let cat = test_catalog(fake, dead_addr().await);
        catalog::file::apply(&store, &cipher, "test.toml", &cat, &|_| None)
            .await
            .expect("apply test catalog");
        let org = accounts::create_org(&store, "acme", "owner@acme.test")
            .await
            .expect("org");
        let k = keys::create_key(&store, &org.id, "test", None, None)
            .await
            .expect("key");
        let app = Application::build_with_store(cfg.clone(), store.clone())
            .await
            .expect("build app");
        let addr = app.local_addr();
        let state = app.state();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            addr,
            state,
            store,
            fake,
            fake_stats,
            http: reqwest::Client::new(),
            org_id: org.id,
            key: k.secret,
            key_id: k.id,
            cfg,
            stop: Some(tx),
            server: Some(server),
            db: tdb,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn grant(&self, usd: &str) {
        ledger::grant(
            &self.store,
            &self.org_id,
            Nanos::parse_usd(usd).expect("usd"),
            &format!("grant:{}", uuid::Uuid::new_v4()),
            None,
        )
        .await
        .expect("grant");
    }

    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.chat_with_key(&self.key, body).await
    }

    pub async fn chat_with_key(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// total_usage from GET /api/v1/credits, in nanos.
    pub async fn usage_nanos(&self) -> i64 {
        ledger::balance(&self.store, &self.org_id)
            .await
            .expect("balance")
            .expect("org")
            .usage
            .0
    }

    pub async fn balance(&self) -> ledger::Balance {
        ledger::balance(&self.store, &self.org_id)
            .await
            .expect("balance")
            .expect("org")
    }

    /// The ledger invariants hold: this organisation's, and `switchyard audit`'s over the whole
    /// database.
    pub async fn assert_books_balance(&self) {
        let problems = ledger::audit(&self.store, &self.org_id)
            .await
            .expect("audit");
        assert!(problems.is_empty(), "ledger audit: {problems:?}");
        assert_audit_clean(&self.store).await;
    }

    pub async fn assert_no_holds(&self) {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM holds")
            .fetch_one(&self.store.pool)
            .await
            .expect("count");
        assert_eq!(n, 0, "holds left behind");
        assert_eq!(self.balance().await.reserved.0, 0, "reserved left behind");
    }

    /// Waits until the generation is recorded (settlement of a cut stream is asynchronous).
    pub async fn wait_generation(&self, id: &str) -> Value {
        for _ in 0..100 {
            let (s, v) = self.get(&format!("/api/v1/generation?id={id}")).await;
            if s == 200 {
                return v["data"].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("generation {id} was never recorded");
    }

    /// Graceful shutdown; hands back the database (dropped, for PostgreSQL, when the caller lets go).
    pub async fn stop(mut self) -> TestDb {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.await.expect("server task").expect("clean shutdown");
        }
        self.db
    }
}

pub fn chat_body(extra: Value) -> Value {
    let mut b = json!({"model": "test/fast", "messages": [{"role": "user", "content": "Say hello to the test suite."}]});
    if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
        o.extend(e);
    }
    b
}

/// Parses an SSE body into its data payloads.
pub fn sse_events(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The exact charge for a usage at the test prices ($0.50/$1.50 per M, 10 % markup), computed
/// independently of the server's code: nanos = ceil((p*500 + c*1500) * 1.1).
pub fn expected_charge(prompt: u64, completion: u64) -> i64 {
    let raw = (prompt * 500 + completion * 1500) as i128 * 11; // x10 for the 1.1
    ((raw + 9) / 10) as i64
}

/// Makes the fake answer the next `times` requests for the upstream `model` with these switches.
pub async fn arm(app: &TestApp, model: &str, times: u64, switches: Value) {
    let mut body = switches;
    body["model"] = json!(model);
    body["times"] = json!(times);
    let r = app
        .http
        .post(format!("http://{}/_fake/arm", app.fake))
        .json(&body)
        .send()
        .await
        .expect("arm");
    assert_eq!(r.status(), 204);
}

/// A chat request: its status, its body (JSON, or the text of a stream) and its generation id.
pub async fn ask(app: &TestApp, body: Value) -> (u16, Value, String) {
    let r = app.chat(body).await;
    let status = r.status().as_u16();
    let gen = r
        .headers()
        .get("x-generation-id")
        .map(|h| h.to_str().expect("ascii").to_string())
        .unwrap_or_default();
    let text = r.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v, gen)
}

/// `switchyard audit` finds nothing wrong (every money invariant, every organisation).
pub async fn assert_audit_clean(store: &Store) {
    let report = switchyard::billing::audit::run(store).await.expect("audit");
    assert!(report.clean(), "switchyard audit:\n{}", report.text(false));
}

/// The signed-in user acting in their first organisation.
pub async fn actor(store: &Store, user_id: &str) -> switchyard::accounts::orgs::Actor {
    switchyard::web::dashboard::actor_for(store, user_id)
        .await
        .expect("the user belongs to an organisation")
}

/// A TCP relay in front of PostgreSQL that can be cut: every open connection is closed and new ones are
/// refused until it is restored.
pub struct Relay {
    pub addr: SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (u, c) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !u.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client); // refused
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                c.lock().push(task);
            }
        });
        Relay { addr, up, conns }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
