//! Gateway benchmark: starts the fake upstream and the gateway as separate processes on loopback, then
//! sends the same load directly to the upstream (the baseline) and through the gateway (auth, credit
//! admission, proxying, settlement all on), and prints throughput, latency, the gateway's overhead and
//! its peak RSS. It ends with `switchyard audit` on the database it used, and fails if the audit does.
//!
//!   cargo run --release -p switchyard --bin bench -- [--seconds 10] [--concurrency 64] [--rate 500] [--database-url URL]

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};
use switchyard::{
    accounts, billing::ledger, catalog, config::Config, crypto::Cipher, keys, money::Nanos,
    store::Store,
};

struct Opts {
    seconds: u64,
    concurrency: usize,
    rate: u64,
    database_url: Option<String>,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        seconds: 10,
        concurrency: 64,
        rate: 500,
        database_url: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = val()?.parse()?,
            "--concurrency" => o.concurrency = val()?.parse()?,
            "--rate" => o.rate = val()?.parse()?,
            "--database-url" => o.database_url = Some(val()?),
            "--help" | "-h" => {
                println!("bench [--seconds N] [--concurrency N] [--rate RPS] [--database-url URL]\n\nStarts `switchyard dev-upstream` and `switchyard serve`, loads both, prints throughput, latency, overhead and peak RSS.");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; see --help"),
        }
    }
    Ok(o)
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18099)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[derive(Default)]
struct Sample {
    ok: u64,
    failed: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Sample {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

async fn one(client: &reqwest::Client, url: &str, key: &str, body: &Value, stream: bool) -> bool {
    let r = client.post(url).bearer_auth(key).json(body).send().await;
    match r {
        Ok(r) if r.status().is_success() => {
            if stream {
                r.text()
                    .await
                    .map(|t| t.ends_with("data: [DONE]\n\n"))
                    .unwrap_or(false)
            } else {
                r.bytes().await.is_ok()
            }
        }
        _ => false,
    }
}

/// Closed loop: `concurrency` workers send back to back for `secs`.
async fn closed_loop(
    url: String,
    key: String,
    body: Value,
    stream: bool,
    concurrency: usize,
    secs: u64,
) -> Sample {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let url = Arc::new(url);
    let end = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, key, body) = (client.clone(), url.clone(), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Sample::default();
            while Instant::now() < end {
                let t = Instant::now();
                if one(&client, &url, &key, &body, stream).await {
                    s.ok += 1;
                    s.latencies_us.push(t.elapsed().as_micros() as u64);
                } else {
                    s.failed += 1;
                }
            }
            s
        }));
    }
    let mut all = Sample::default();
    for t in tasks {
        let s = t.await.expect("worker");
        all.ok += s.ok;
        all.failed += s.failed;
        all.latencies_us.extend(s.latencies_us);
    }
    all.elapsed = start.elapsed();
    all
}

/// Open loop: requests start on a fixed schedule (`rate` per second) whatever the answers do; latency
/// is measured from the scheduled start, so a stall is not hidden (no coordinated omission).
async fn open_loop(
    url: String,
    key: String,
    body: Value,
    stream: bool,
    rate: u64,
    secs: u64,
) -> Sample {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .tcp_nodelay(true)
        .build()
        .expect("client");
    let url = Arc::new(url);
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (client, url, key, body, tx) = (
            client.clone(),
            url.clone(),
            key.clone(),
            body.clone(),
            tx.clone(),
        );
        tokio::spawn(async move {
            let ok = one(&client, &url, &key, &body, stream).await;
            let _ = tx.send((ok, due.elapsed().as_micros() as u64));
        });
    }
    drop(tx);
    let mut s = Sample::default();
    while let Some((ok, us)) = rx.recv().await {
        if ok {
            s.ok += 1;
            s.latencies_us.push(us);
        } else {
            s.failed += 1;
        }
    }
    s.elapsed = start.elapsed();
    s
}

fn row(name: &str, direct: &mut Sample, gw: &mut Sample) {
    println!(
        "{name:<34} {:>10.0} {:>10.0} {:>6.2} | {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>8.2} | {:>6}",
        direct.rps(),
        gw.rps(),
        gw.rps() / direct.rps(),
        direct.pct(0.5),
        gw.pct(0.5),
        gw.pct(0.5) - direct.pct(0.5),
        direct.pct(0.99),
        gw.pct(0.99),
        gw.pct(0.99) - direct.pct(0.99),
        direct.failed + gw.failed,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_opts()?;
    switchyard::init_tls();
    let exe_dir: PathBuf = std::env::current_exe()?
        .parent()
        .context("exe dir")?
        .to_path_buf();
    let bin = exe_dir.join("switchyard");
    if !bin.exists() {
        bail!(
            "{} is missing: build it first (cargo build --release -p switchyard)",
            bin.display()
        );
    }
    let dir = tempfile_dir()?;
    let db_url = o
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));

    let up_port = free_port();
    let upstream = Proc(
        Command::new(&bin)
            .args([
                "dev-upstream",
                "--addr",
                &format!("127.0.0.1:{up_port}"),
                "--chunk-delay-ms",
                "0",
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let up_base = format!("http://127.0.0.1:{up_port}/v1");
    wait_http(&format!("http://127.0.0.1:{up_port}/v1/models")).await?;

    let key_b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cfg = Config {
        secret_key: Some(switchyard::config::Secret::new(key_b64)),
        ..Config::default()
    };
    let store = Store::open(&db_url, 4).await?;
    let cipher = Cipher::from_config(&cfg)?;
    let cat = format!(
        "[[providers]]\nslug = \"dev\"\nname = \"Dev\"\nkind = \"openai\"\nbase_url = \"{up_base}\"\n\n[[models]]\nslug = \"bench/fast\"\nname = \"Bench\"\ncontext_length = 32000\nmax_output_tokens = 256\n[[models.endpoints]]\nprovider = \"dev\"\nupstream_model = \"fast-1\"\ninput_per_mtok = \"0.50\"\noutput_per_mtok = \"1.50\"\n\n[markup]\ndefault_percent = \"10\"\n"
    );
    catalog::file::apply(&store, &cipher, "bench.toml", &cat, &|_| None).await?;
    let org = accounts::create_org(
        &store,
        &format!("bench-{}", uuid::Uuid::new_v4().simple()),
        "bench@example.com",
    )
    .await?;
    ledger::grant(
        &store,
        &org.id,
        Nanos::parse_usd("1000000")?,
        &format!("grant:{}", uuid::Uuid::new_v4()),
        None,
    )
    .await?;
    let key = keys::create_key(&store, &org.id, "bench", None, None)
        .await?
        .secret;
    store.close().await;

    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .env("DATABASE_URL", &db_url)
        .env("SWITCHYARD_SECRET_KEY", key_b64)
        .env("SWITCHYARD_ADDR", "127.0.0.1:0")
        .env("SWITCHYARD_JOURNAL_DIR", dir.join("journal"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped());
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(out).lines();
    let gw_base = loop {
        let l = lines.next().context("gateway exited")??;
        if let Some(rest) = l.trim().strip_prefix("Dashboard:") {
            break rest.trim().trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let gw_pid = child.id();
    let gateway = Proc(child);

    let direct = format!("{up_base}/chat/completions");
    let through = format!("{gw_base}/api/v1/chat/completions");
    let plain = json!({"model": "fast-1", "messages": [{"role": "user", "content": "Benchmark prompt: say something short."}], "max_tokens": 16, "x_fake": {"tokens": 16}});
    let mut routed = plain.clone();
    routed["model"] = json!("bench/fast");
    let mut plain_s = plain.clone();
    plain_s["stream"] = json!(true);
    let mut routed_s = routed.clone();
    routed_s["stream"] = json!(true);

    // Warm both up (connections, caches, SQLite pages).
    let _ = closed_loop(through.clone(), key.clone(), routed.clone(), false, 8, 1).await;
    let _ = closed_loop(direct.clone(), key.clone(), plain.clone(), false, 8, 1).await;

    println!("\nSwitchyard gateway benchmark: {} s per run, {} workers (closed loop), {} req/s (open loop), database {}", o.seconds, o.concurrency, o.rate, if db_url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" });
    println!(
        "load generator, fake upstream and gateway share this machine's {} cores\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "{:<34} {:>10} {:>10} {:>6} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>6}",
        "scenario",
        "direct/s",
        "gateway/s",
        "ratio",
        "p50 dir",
        "p50 gw",
        "added",
        "p99 dir",
        "p99 gw",
        "added",
        "errors"
    );
    println!("{}", "-".repeat(140));
    let (s, c, r) = (o.seconds, o.concurrency, o.rate);
    let mut d = closed_loop(direct.clone(), key.clone(), plain.clone(), false, c, s).await;
    let mut g = closed_loop(through.clone(), key.clone(), routed.clone(), false, c, s).await;
    row("non-streaming, max throughput", &mut d, &mut g);
    let mut d = open_loop(direct.clone(), key.clone(), plain.clone(), false, r, s).await;
    let mut g = open_loop(through.clone(), key.clone(), routed.clone(), false, r, s).await;
    row(&format!("non-streaming, {r} req/s"), &mut d, &mut g);
    let mut d = closed_loop(direct.clone(), key.clone(), plain_s.clone(), true, c, s).await;
    let mut g = closed_loop(through.clone(), key.clone(), routed_s.clone(), true, c, s).await;
    row("streaming (16 chunks), max throughput", &mut d, &mut g);
    let mut d = open_loop(direct.clone(), key.clone(), plain_s.clone(), true, r, s).await;
    let mut g = open_loop(through.clone(), key.clone(), routed_s.clone(), true, r, s).await;
    row(&format!("streaming (16 chunks), {r} req/s"), &mut d, &mut g);
    println!("{}", "-".repeat(140));
    println!("latencies in ms; 'added' = gateway minus direct; ratio = gateway throughput / direct throughput");
    match peak_rss_kib(gw_pid) {
        Some(kib) => println!("gateway peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
        None => println!("gateway peak RSS: unavailable (no /proc)"),
    }

    // Every request was billed: `switchyard audit` finds the books whole (the gateway drains first).
    drop(gateway);
    drop(upstream);
    let store = Store::open(&db_url, 2).await?;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generations WHERE org_id = $1")
        .bind(&org.id)
        .fetch_one(&store.pool)
        .await?;
    store.close().await;
    println!("generations recorded: {n}");
    let audit = Command::new(&bin)
        .args(["audit", "--quiet"])
        .env("DATABASE_URL", &db_url)
        .env("RUST_LOG", "error")
        .output()?;
    print!("{}", String::from_utf8_lossy(&audit.stdout));
    let _ = std::fs::remove_dir_all(&dir);
    if !audit.status.success() {
        bail!(
            "switchyard audit failed after the benchmark: {}",
            String::from_utf8_lossy(&audit.stderr).trim()
        );
    }
    println!("switchyard audit: clean");
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "switchyard-bench-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

async fn wait_http(url: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if reqwest::get(url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not come up")
}
