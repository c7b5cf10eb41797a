//! The `switchyard` binary as a real process: the operator's commands, SIGTERM draining, what a hard
//! kill loses, and the official `openai` Python SDK calling the gateway from another process.

mod common;

use common::{chat_body, Db, TestDb, UPSTREAM_KEY};
use futures::StreamExt;
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};
use switchyard::{billing::ledger, devupstream, store::Store};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn cli(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("SWITCHYARD_SECRET_KEY", KEY_B64)
        .env("SWITCHYARD_JOURNAL_DIR", db.dir().join("journal"))
        .env("FAKE_UPSTREAM_KEY", UPSTREAM_KEY)
        .output()
        .expect("run switchyard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

/// Starts a fake upstream (streaming a chunk every `chunk_delay_ms`) and sets up a platform on it through
/// the CLI, as an operator would; returns the API key.
async fn operator_setup(db: &TestDb, chunk_delay_ms: u64) -> String {
    operator_setup_with_fake(db, chunk_delay_ms).await.0
}

/// The operator's set-up, and where the fake upstream listens.
async fn operator_setup_with_fake(
    db: &TestDb,
    chunk_delay_ms: u64,
) -> (String, std::net::SocketAddr) {
    let (fake, _) = devupstream::spawn(
        "127.0.0.1:0".parse().expect("a"),
        devupstream::FakeConfig {
            chunk_delay_ms,
            api_key: Some(UPSTREAM_KEY.into()),
            more_keys: Vec::new(),
        },
    )
    .await
    .expect("fake");
    let cat = common::test_catalog(fake, common::dead_addr().await)
        .replace(&format!("\"{UPSTREAM_KEY}\""), "\"env:FAKE_UPSTREAM_KEY\"");
    let file = write(db.dir(), "catalog.toml", &cat);
    let (ok, out, err) = cli(db, &["catalog", "apply", &file]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("4 endpoints"), "{out}");
    let (ok, out, err) = cli(
        db,
        &[
            "org",
            "create",
            "--name",
            "acme",
            "--owner-email",
            "Ops@Acme.test",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli(
        db,
        &[
            "credits", "grant", "--org", "acme", "--usd", "12.50", "--note", "welcome",
        ],
    );
    assert!(ok && out.contains("balance is now $12.5"), "{out}{err}");
    let (ok, out, err) = cli(
        db,
        &[
            "key",
            "create",
            "--org",
            "acme",
            "--name",
            "laptop",
            "--limit-usd",
            "5",
        ],
    );
    assert!(ok, "{out}{err}");
    let secret = out.lines().last().expect("a last line").to_string();
    assert!(
        secret.starts_with("sk-sy-v1-") && secret.len() == 9 + 64,
        "{secret:?}"
    );
    (secret, fake)
}

struct Server {
    child: Child,
    base: String,
}

/// A server left running by a failed test is killed, not leaked.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start_server(db: &TestDb, extra_env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("SWITCHYARD_SECRET_KEY", KEY_B64)
        .env("SWITCHYARD_JOURNAL_DIR", db.dir().join("journal"))
        .env("SWITCHYARD_ADDR", "127.0.0.1:0")
        .env("SWITCHYARD_KEY_CACHE_TTL_MS", "200")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn switchyard serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("server printed its address")
            .expect("line");
        if let Some(rest) = line.trim().strip_prefix("Dashboard:") {
            break rest.trim().trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server { child, base }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok);
}

async fn cli_sets_up_a_platform_that_serves_requests(db: Db) {
    let tdb = TestDb::new(db).await;
    let key = operator_setup(&tdb, 0).await;

    // Applying the same file again changes nothing.
    let file = tdb.dir().join("catalog.toml").display().to_string();
    let (ok, out, _) = cli(&tdb, &["catalog", "apply", &file]);
    assert!(ok && out.contains("4 endpoints"), "{out}");

    // A bad file names the line and applies nothing (the model below would otherwise be added).
    let bad = format!(
        "{}\n[[models]]\nslug = \"test/new\"\nname = \"New\"\ncontext_length = 1000\n[[models.endpoints]]\nprovider = \"fake\"\nupstream_model = \"x\"\ninput_per_mtok = \"cheap\"\noutput_per_mtok = \"1\"\n",
        std::fs::read_to_string(&file).expect("read")
    );
    let bad_file = write(tdb.dir(), "bad.toml", &bad);
    let (ok, out, err) = cli(&tdb, &["catalog", "apply", &bad_file]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("line ") && err.contains("cheap") && err.contains("nothing was applied"),
        "{err}"
    );
    let store = Store::open(&tdb.url, 2).await.expect("store");
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM models WHERE slug = 'test/new'")
        .fetch_one(&store.pool)
        .await
        .expect("q");
    assert_eq!(n, 0);

    // Export writes what apply takes back unchanged, without the keys.
    let (ok, exported, err) = cli(&tdb, &["catalog", "export"]);
    assert!(ok, "{err}");
    assert!(exported.contains("[[models.endpoints]]") && !exported.contains(UPSTREAM_KEY));
    let out_file = tdb.dir().join("exported.toml").display().to_string();
    let (ok, _, err) = cli(&tdb, &["catalog", "export", "-o", &out_file]);
    assert!(ok && err.contains("wrote the catalog"), "{err}");
    let (ok, out, err) = cli(&tdb, &["catalog", "apply", &out_file]);
    assert!(ok, "{out}{err}");
    let (_, again, _) = cli(&tdb, &["catalog", "export"]);
    assert_eq!(again, exported);
    // The starter catalog through one provider: a dry run, then --apply.
    let agg = write(
        tdb.dir(),
        "agg.toml",
        "[[providers]]\nslug = \"aggregator\"\nname = \"Aggregator\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
    );
    let (ok, out, err) = cli(&tdb, &["catalog", "apply", &agg]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli(
        &tdb,
        &["catalog", "import-openrouter", "--provider", "aggregator"],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("20 new")
            && out.contains("0 removed")
            && out.contains("+ openai/gpt-4o ")
            && out.contains("run again with --apply"),
        "{out}"
    );
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM models WHERE slug = 'openai/gpt-4o'")
        .fetch_one(&store.pool)
        .await
        .expect("q");
    assert_eq!(n, 0, "a dry run changes nothing");
    let (ok, out, err) = cli(
        &tdb,
        &[
            "catalog",
            "import-openrouter",
            "--provider",
            "aggregator",
            "--apply",
        ],
    );
    assert!(ok && out.contains("imported: 20 new"), "{out}{err}");
    let (ok, _, err) = cli(
        &tdb,
        &["catalog", "import-openrouter", "--provider", "nope"],
    );
    assert!(!ok && err.contains("no provider is called nope"), "{err}");

    let (ok, _, err) = cli(
        &tdb,
        &[
            "key",
            "create",
            "--org",
            "acme",
            "--name",
            "x",
            "--models",
            "test/fast,nope/none",
        ],
    );
    assert!(!ok && err.contains("nope/none"), "{err}");
    let (ok, out, err) = cli(
        &tdb,
        &[
            "key",
            "create",
            "--org",
            "acme",
            "--name",
            "narrow",
            "--models",
            "test/fast",
            "--rpm",
            "5",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(&tdb, &["credits", "grant", "--org", "nobody", "--usd", "1"]);
    assert!(!ok && err.contains("no organisation named"), "{err}");
    let (ok, _, err) = cli(
        &tdb,
        &["credits", "grant", "--org", "acme", "--usd", "1.2.3"],
    );
    assert!(!ok && err.contains("--usd"), "{err}");
    for sub in [
        &["--help"][..],
        &["serve", "--help"],
        &["catalog", "apply", "--help"],
        &["org", "create", "--help"],
        &["credits", "grant", "--help"],
        &["key", "create", "--help"],
        &["key", "revoke", "--help"],
        &["dev-upstream", "--help"],
    ] {
        let (ok, out, _) = cli(&tdb, sub);
        assert!(ok && out.contains("Usage"), "{sub:?}: {out}");
    }

    let mut server = start_server(&tdb, &[]);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/chat/completions", server.base))
        .bearer_auth(&key)
        .json(&chat_body(json!({})))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["usage"]["cost"].as_f64().expect("cost") > 0.0);

    // The operator makes a platform admin; the password comes on standard input, not the command line.
    let mut child = Command::new(BIN)
        .args(["admin", "create", "--email", "Ops@Acme.test"])
        .env("DATABASE_URL", &tdb.url)
        .env("SWITCHYARD_SECRET_KEY", KEY_B64)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"operator password 1\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("admin create");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("ops@acme.test is a platform admin")
    );
    let store = Store::open(&tdb.url, 2).await.expect("store");
    let admin = switchyard::accounts::sign_in(&store, "ops@acme.test", "operator password 1")
        .await
        .expect("sign in");
    assert!(admin.is_admin);

    // A management key made on the command line manages keys over the API.
    let (ok, out, err) = cli(
        &tdb,
        &[
            "key",
            "create",
            "--org",
            "acme",
            "--name",
            "ops",
            "--management",
        ],
    );
    assert!(ok && out.contains("management key"), "{out}{err}");
    let mkey = out.lines().last().expect("secret").to_string();
    let r = http
        .get(format!("{}/api/v1/keys", server.base))
        .bearer_auth(&mkey)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["data"][0]["name"], "laptop");

    // Revoking through the CLI stops the key within the cache TTL.
    let (ok, out, err) = cli(
        &tdb,
        &["key", "revoke", "--org", "acme", "--name", "laptop"],
    );
    assert!(ok, "{out}{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = http
        .post(format!("{}/api/v1/chat/completions", server.base))
        .bearer_auth(&key)
        .json(&chat_body(json!({})))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    let child = &mut server.child;
    signal(child, "-TERM");
    assert!(child.wait().expect("wait").success());
}

async fn sigterm_drains_streams_and_flushes_usage(db: Db) {
    let tdb = TestDb::new(db).await;
    let key = operator_setup(&tdb, 0).await;
    let mut server = start_server(&tdb, &[]);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v1/chat/completions", server.base))
        .bearer_auth(&key)
        .json(&chat_body(
            json!({"stream": true, "x_fake": {"tokens": 12, "chunk_delay_ms": 100}}),
        ))
        .send()
        .await
        .expect("req");
    let gen_id = r.headers()["x-generation-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let child = &mut server.child;
    tokio::time::sleep(Duration::from_millis(250)).await;
    signal(child, "-TERM");
    let text = r.text().await.expect("the stream finishes despite SIGTERM");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit {status:?}");
    let store = Store::open(&tdb.url, 2).await.expect("store");
    let (completion, charge): (i64, i64) =
        sqlx::query_as("SELECT completion_tokens, charge_nanos FROM generations WHERE id = $1")
            .bind(&gen_id)
            .fetch_one(&store.pool)
            .await
            .expect("generation recorded before exit");
    assert_eq!(completion, 12);
    assert!(charge > 0);
    let (org,): (String,) = sqlx::query_as("SELECT id FROM orgs WHERE name = 'acme'")
        .fetch_one(&store.pool)
        .await
        .expect("org");
    assert!(ledger::audit(&store, &org).await.expect("audit").is_empty());
}

async fn a_hard_kill_loses_at_most_the_requests_in_flight(db: Db) {
    let tdb = TestDb::new(db).await;
    let key = operator_setup(&tdb, 0).await;
    let mut server = start_server(&tdb, &[]);
    let http = reqwest::Client::new();
    // One finished request, then one cut by the kill.
    let r = http
        .post(format!("{}/api/v1/chat/completions", server.base))
        .bearer_auth(&key)
        .json(&chat_body(json!({})))
        .send()
        .await
        .expect("req");
    let first: Value = r.json().await.expect("json");
    let r = http
        .post(format!("{}/api/v1/chat/completions", server.base))
        .bearer_auth(&key)
        .json(&chat_body(
            json!({"stream": true, "x_fake": {"tokens": 100, "chunk_delay_ms": 50}}),
        ))
        .send()
        .await
        .expect("req");
    let mut body = r.bytes_stream();
    let _ = body.next().await;
    let child = &mut server.child;
    signal(child, "-KILL");
    let _ = child.wait();
    drop(body);
    let store = Store::open(&tdb.url, 2).await.expect("store");
    let (org,): (String,) = sqlx::query_as("SELECT id FROM orgs WHERE name = 'acme'")
        .fetch_one(&store.pool)
        .await
        .expect("org");
    let before = ledger::balance(&store, &org)
        .await
        .expect("b")
        .expect("org");
    assert!(
        before.reserved.0 > 0,
        "the killed request's hold is still reserved"
    );

    // The next start releases the dead instance's holds once it is stale.
    let mut server = start_server(&tdb, &[("SWITCHYARD_INSTANCE_STALE_MS", "500")]);
    let mut released = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = ledger::balance(&store, &org)
            .await
            .expect("b")
            .expect("org");
        if b.reserved.0 == 0 {
            released = true;
            break;
        }
    }
    assert!(released, "holds of the killed instance were not released");
    let after = ledger::balance(&store, &org)
        .await
        .expect("b")
        .expect("org");
    // The finished request was billed; the cut one was not (that is the documented loss bound).
    let first_cost = switchyard::money::Nanos::parse_usd(&format!(
        "{:.9}",
        first["usage"]["cost"].as_f64().expect("cost")
    ))
    .expect("usd")
    .0;
    assert_eq!(after.usage.0, first_cost);
    // What the provider may bill for the cut request is the operator's recorded loss, bounded by its
    // hold.
    let lost: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, uncollected_nanos FROM operator_losses WHERE org_id = $1")
            .bind(&org)
            .fetch_all(&store.pool)
            .await
            .expect("losses");
    assert_eq!(lost, vec![("instance_died".to_string(), before.reserved.0)]);
    assert!(ledger::audit(&store, &org).await.expect("audit").is_empty());
    let (ok, out, err) = cli(&tdb, &["audit"]);
    assert!(ok && out.contains("OK:"), "{out}{err}");
    assert!(out.contains("operator loss instance_died: 1"), "{out}");
    let child = &mut server.child;
    signal(child, "-TERM");
    assert!(child.wait().expect("wait").success());
}

async fn a_hard_kill_during_an_outage_loses_nothing_that_finished(db: Db) {
    let tdb = TestDb::new(db).await;
    let key = operator_setup(&tdb, 50).await;
    let relay = match db {
        Db::Postgres => Some(common::Relay::start("127.0.0.1:5432".parse().expect("addr")).await),
        Db::Sqlite => None,
    };
    let url = relay.as_ref().map_or(tdb.url.clone(), |r| {
        tdb.url.replace("127.0.0.1:5432", &r.addr.to_string())
    });
    let mut server = start_server(
        &tdb,
        &[
            ("DATABASE_URL", &url),
            ("SWITCHYARD_ADMISSION_TIMEOUT_MS", "500"),
        ],
    );
    // Three streams (20 tokens, 50 ms apart) admitted, then the database goes away.
    let mut streams = Vec::new();
    for _ in 0..3 {
        let url = format!("{}/api/v1/chat/completions", server.base);
        let key = key.clone();
        streams.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&chat_body(
                    json!({"stream": true, "x_fake": {"tokens": 20}}),
                ))
                .send()
                .await
                .expect("req");
            (r.status().as_u16(), r.text().await.expect("body"))
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut lock = None;
    match &relay {
        Some(r) => r.cut(),
        None => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&tdb.url)
                .await
                .expect("open");
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut c)
                .await
                .expect("lock");
            lock = Some(c);
        }
    }
    // They are answered to the end, each with its cost: their settlements are in the journal.
    for s in streams {
        let (status, text) = s.await.expect("task");
        assert_eq!(status, 200);
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        assert!(text.contains("\"cost\""), "{text}");
    }
    let journal = tdb.dir().join("journal");
    let files = || {
        std::fs::read_dir(&journal).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .count()
        })
    };
    assert!(files() > 0, "the settlements wait in the journal");
    // The process dies hard; the database comes back.
    signal(&server.child, "-KILL");
    let _ = server.child.wait();
    match (&relay, lock.take()) {
        (Some(r), _) => r.restore(),
        (None, Some(mut c)) => {
            use sqlx::Connection;
            sqlx::query("ROLLBACK")
                .execute(&mut c)
                .await
                .expect("unlock");
            c.close().await.expect("close");
        }
        (None, None) => {}
    }
    // The next start replays the journal before it serves: nothing that finished is lost.
    let mut server = start_server(&tdb, &[("SWITCHYARD_INSTANCE_STALE_MS", "500")]);
    let store = Store::open(&tdb.url, 2).await.expect("store");
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM generations g JOIN ledger l ON l.idempotency_key = 'gen:' || g.id \
         WHERE g.status = 200 AND g.completion_tokens = 20",
    )
    .fetch_one(&store.pool)
    .await
    .expect("count");
    assert_eq!(n, 3, "every finished stream is recorded and charged once");
    assert_eq!(files(), 0, "the journal is empty");
    let (ok, out, err) = cli(&tdb, &["audit"]);
    assert!(ok && out.contains("OK:"), "{out}{err}");
    signal(&server.child, "-TERM");
    assert!(server.child.wait().expect("wait").success());
}

/// The official `openai` Python package, in its own process, streaming and not.
async fn the_openai_python_sdk_works_and_cost_matches_credits(db: Db) {
    let tdb = TestDb::new(db).await;
    let key = operator_setup(&tdb, 5).await;
    let mut server = start_server(&tdb, &[]);
    let report = python_check(
        "openai_sdk_check.py",
        &[
            ("SWITCHYARD_BASE_URL", format!("{}/api/v1", server.base)),
            ("SWITCHYARD_API_KEY", key.clone()),
        ],
    )
    .await;
    assert!(report["non_stream_cost"].as_f64().expect("cost") > 0.0);
    assert!(report["stream_cost"].as_f64().expect("cost") > 0.0);
    let child = &mut server.child;
    signal(child, "-TERM");
    assert!(child.wait().expect("wait").success());
}

/// Runs a Python script of `e2e/` against the server; its last line is a JSON report.
async fn python_check(script: &str, env: &[(&str, String)]) -> Value {
    let python = std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../e2e")
        .join(script);
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect(
        "run python (the test command installs the openai and anthropic packages; SWITCHYARD_PYTHON picks the interpreter)",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("{}")).expect("a JSON report");
    assert_eq!(report["ok"], true, "{report}");
    report
}

async fn the_sdks_call_tools_and_the_messages_api(db: Db) {
    let tdb = TestDb::new(db).await;
    let (key, fake) = operator_setup_with_fake(&tdb, 2).await;
    let file = write(
        tdb.dir(),
        "anthropic.toml",
        &format!(
            r#"
[[providers]]
slug = "anth"
name = "Fake Anthropic"
kind = "anthropic"
base_url = "http://{fake}/v1"
api_key = "env:FAKE_UPSTREAM_KEY"

[[models]]
slug = "sdk/claude"
name = "Claude through the fake"
context_length = 200000
max_output_tokens = 4096
[[models.endpoints]]
provider = "anth"
upstream_model = "claude-sdk"
input_per_mtok = "3"
output_per_mtok = "15"
"#
        ),
    );
    let (ok, out, err) = cli(&tdb, &["catalog", "apply", &file]);
    assert!(ok, "{out}{err}");
    let mut server = start_server(&tdb, &[]);
    let report = python_check(
        "sdk_tools_and_messages_check.py",
        &[
            ("SWITCHYARD_BASE_URL", server.base.clone()),
            ("SWITCHYARD_API_KEY", key.clone()),
        ],
    )
    .await;
    assert_eq!(report["tool_args"]["city"], "Paris", "{report}");
    let child = &mut server.child;
    signal(child, "-TERM");
    assert!(child.wait().expect("wait").success());
}

both_backends!(
    the_sdks_call_tools_and_the_messages_api,
    cli_sets_up_a_platform_that_serves_requests,
    sigterm_drains_streams_and_flushes_usage,
    a_hard_kill_loses_at_most_the_requests_in_flight,
    a_hard_kill_during_an_outage_loses_nothing_that_finished,
    the_openai_python_sdk_works_and_cost_matches_credits,
);
