//! The `switchyard` command line: serve the platform, and the operator's tools (catalog, organisations,
//! credits, keys, the development upstream).

use crate::{
    accounts, billing::ledger, catalog, config::Config, crypto::Cipher, devupstream, keys,
    money::Nanos, store::Store,
};
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::{net::SocketAddr, path::PathBuf};

#[derive(Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "Self-hosted LLM API marketplace: one OpenAI-compatible endpoint, prepaid credits, every request metered."
)]
pub struct Cli {
    /// A TOML config file (settings as in the README); environment variables override it.
    #[arg(long, global = true, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the platform (the default when no command is given).
    Serve(ServeArgs),
    /// Manage the catalog of providers, models, endpoints and markup.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Manage an organisation's credits.
    #[command(subcommand)]
    Credits(CreditsCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Manage platform admins.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Usage data: synthetic generations, dashboard query timings, pruning the request log.
    #[command(subcommand)]
    Usage(UsageCmd),
    /// Check every money invariant on the database (balances, key totals, holds, charges against
    /// holds, orders, rollups, all against the ledger); prints what disagrees with its ids and exits 1.
    /// Read-only: safe on a live platform and from cron.
    Audit {
        /// Print only what disagrees (nothing when all is well).
        #[arg(long)]
        quiet: bool,
    },
    /// Run the fake OpenAI-compatible upstream used for development, tests and benchmarks.
    DevUpstream(DevUpstreamArgs),
}

#[derive(Subcommand, Debug)]
pub enum UsageCmd {
    /// Record N synthetic generations (log, rollups, ledger) spread over the last days, across the
    /// catalog's models; for trying the dashboards and timing them on a large log.
    Seed {
        /// How many generations.
        generations: u64,
        /// Spread over this many days before now.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Into this organisation (by name); default: organisations "Synthetic 1…N", made when missing.
        #[arg(long)]
        org: Option<String>,
        /// How many synthetic organisations (without --org).
        #[arg(long, default_value_t = 10)]
        orgs: u32,
        /// Keys per organisation (made when it has fewer).
        #[arg(long, default_value_t = 3)]
        keys: u32,
    },
    /// Time every dashboard query (the busiest organisation's, or --org's) and print the milliseconds.
    Timings {
        #[arg(long)]
        org: Option<String>,
        /// Runs of each query (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Delete request-log rows older than --days (rollups keep their sums) and expired logged prompts.
    Prune {
        #[arg(long)]
        days: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// Create a platform admin (or make an existing account one, setting its password).
    Create {
        #[arg(long)]
        email: String,
        /// The password; without it, the first line of standard input is read (keeps it out of `ps`).
        #[arg(long)]
        password: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Also start the development upstream and make sure a demo catalog, organisation, credits and key exist.
    #[arg(long)]
    pub demo: bool,
    /// Where the demo's development upstream listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub demo_upstream_addr: SocketAddr,
}

#[derive(Subcommand, Debug)]
pub enum CatalogCmd {
    /// Upsert the providers, models, endpoints and markup in FILE (idempotent; nothing is applied if any line is wrong).
    Apply {
        /// The catalog file (TOML; see assets/demo-catalog.toml).
        file: PathBuf,
    },
    /// Write the current catalog as TOML that `catalog apply` takes back (provider keys are not exported).
    Export {
        /// Where to write it (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Import models in OpenRouter's /api/v1/models JSON format; shows what would change, and with
    /// --apply changes it. Their prices become the endpoints' cost.
    ImportOpenrouter {
        /// The JSON file (default: the starter catalog in assets/catalog/openrouter-starter.json).
        file: Option<PathBuf>,
        /// Serve every model through this provider under its full id (default: the provider named by
        /// each model's author, e.g. openai/gpt-4o through provider `openai` as `gpt-4o`).
        #[arg(long)]
        provider: Option<String>,
        /// Make the changes (without it, only show them).
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OrgCmd {
    /// Create an organisation owned by a user (created when new).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum CreditsCmd {
    /// Grant credits (a ledger entry); prints the new balance.
    Grant {
        /// Organisation name.
        #[arg(long)]
        org: String,
        /// Amount in USD, e.g. 12.50.
        #[arg(long)]
        usd: String,
        /// Why (kept in the ledger).
        #[arg(long)]
        note: Option<String>,
        /// Makes a retried grant apply once (default: a fresh key, so every call grants).
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Show an organisation's balance.
    Show {
        #[arg(long)]
        org: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Create an API key; the secret is printed once, alone on the last line of stdout.
    Create {
        /// Organisation name.
        #[arg(long)]
        org: String,
        /// A label for the key.
        #[arg(long)]
        name: String,
        /// Most this key may spend, in USD.
        #[arg(long)]
        limit_usd: Option<String>,
        /// When the key stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires: Option<String>,
        /// The limit counts usage since the start of each day, week or month (UTC).
        #[arg(long, value_parser = ["daily", "weekly", "monthly"], requires = "limit_usd")]
        limit_reset: Option<String>,
        /// Only these models (comma-separated ids, e.g. acme/fast-1,acme/smart-1).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// At most this many requests per minute.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        rpm: Option<u32>,
        /// At most this many requests in flight at once.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        concurrency: Option<u32>,
        /// A management key: manages the org's API keys over /api/v1/keys and cannot call models.
        #[arg(long, conflicts_with_all = ["limit_usd", "expires", "limit_reset", "models", "rpm", "concurrency"])]
        management: bool,
    },
    /// Revoke a key (it stops working within the key cache TTL, 5 s by default).
    Revoke {
        /// The key's id (from `key list`).
        #[arg(long, conflicts_with_all = ["org", "name"])]
        id: Option<String>,
        /// Organisation name (with --name).
        #[arg(long, requires = "name")]
        org: Option<String>,
        /// The key's label (with --org).
        #[arg(long, requires = "org")]
        name: Option<String>,
    },
    /// List an organisation's keys.
    List {
        #[arg(long)]
        org: String,
    },
}

#[derive(Args, Debug)]
pub struct DevUpstreamArgs {
    #[arg(long, default_value = "127.0.0.1:9999")]
    pub addr: SocketAddr,
    /// Delay between streamed chunks, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub chunk_delay_ms: u64,
    /// Require this bearer key (repeat to accept several, like a provider with a key pool).
    #[arg(long)]
    pub api_key: Vec<String>,
}

fn init_logging(cfg: &Config, quiet: bool) {
    use tracing_subscriber::{fmt, EnvFilter};
    let default = if quiet {
        "warn"
    } else {
        "info,tower_http=warn,sqlx=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if cfg.log_format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = Config::load(cli.config.as_deref())?;
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs {
        demo: false,
        demo_upstream_addr: "127.0.0.1:0".parse()?,
    }));
    init_logging(
        &cfg,
        !matches!(command, Command::Serve(_) | Command::DevUpstream(_)),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(dispatch(cfg, command))
}

async fn open(cfg: &Config) -> anyhow::Result<Store> {
    Store::open(cfg.database_url.expose(), 4).await
}

async fn dispatch(cfg: Config, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(cfg, args).await,
        Command::Audit { quiet } => {
            let store = open(&cfg).await?;
            let report = crate::billing::audit::run(&store).await?;
            print!("{}", report.text(quiet));
            if !report.clean() {
                bail!(
                    "the audit found {} disagreement(s) with the ledger",
                    report.problems.len()
                );
            }
            Ok(())
        }
        Command::DevUpstream(a) => {
            let (addr, _) = devupstream::spawn(
                a.addr,
                devupstream::FakeConfig {
                    chunk_delay_ms: a.chunk_delay_ms,
                    api_key: a.api_key.first().cloned(),
                    more_keys: a.api_key.iter().skip(1).cloned().collect(),
                },
            )
            .await?;
            println!("dev upstream listening on http://{addr}/v1");
            crate::shutdown_signal().await;
            Ok(())
        }
        Command::Usage(UsageCmd::Seed {
            generations,
            days,
            org,
            orgs,
            keys,
        }) => {
            let store = open(&cfg).await?;
            let cipher = Cipher::from_config(&cfg)?;
            let catalog = catalog::load(&store, &cipher).await?;
            let opts = crate::usage::seed::SeedOptions {
                generations,
                days,
                org,
                orgs,
                keys,
                rng_seed: crate::store::now_ms() as u64,
            };
            let started = std::time::Instant::now();
            let step = (generations / 20).max(1_000);
            let n = crate::usage::seed::seed(&store, &catalog, &opts, |done| {
                if done % step < 1_000 || done == generations {
                    eprintln!(
                        "  {done} / {generations} generations ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            })
            .await?;
            println!(
                "seeded {n} generations in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Usage(UsageCmd::Timings { org, runs }) => {
            let store = open(&cfg).await?;
            let (name, rows, timings) =
                crate::usage::timings::run(&store, org.as_deref(), runs).await?;
            println!(
                "{} backend, {rows} generations in the log; organisation {name:?}; median of {runs} runs",
                match store.backend {
                    crate::store::Backend::Sqlite => "SQLite",
                    crate::store::Backend::Postgres => "PostgreSQL",
                }
            );
            println!(
                "{:<40} {:>10} {:>10} {:>8}",
                "query", "median ms", "max ms", "size"
            );
            for t in &timings {
                println!(
                    "{:<40} {:>10.1} {:>10.1} {:>8}",
                    t.name, t.median_ms, t.max_ms, t.size
                );
            }
            let worst = timings.iter().map(|t| t.median_ms).fold(0.0, f64::max);
            println!("slowest median: {worst:.1} ms");
            Ok(())
        }
        Command::Usage(UsageCmd::Prune { days }) => {
            let store = open(&cfg).await?;
            let (gens, prompts) =
                crate::usage::prune(&store, Some(days), crate::store::now_ms()).await?;
            println!("deleted {gens} request-log rows older than {days} days and {prompts} expired logged prompts");
            Ok(())
        }
        Command::Catalog(CatalogCmd::Export { output }) => {
            let store = open(&cfg).await?;
            let text = catalog::file::export(&store).await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote the catalog to {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        Command::Catalog(CatalogCmd::ImportOpenrouter {
            file,
            provider,
            apply,
        }) => {
            let store = open(&cfg).await?;
            let json = match &file {
                Some(f) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?,
                None => String::new(),
            };
            let provider_id = match &provider {
                None => String::new(),
                Some(slug) => {
                    let r: Option<(String,)> =
                        sqlx::query_as("SELECT id FROM providers WHERE slug = $1")
                            .bind(slug)
                            .fetch_optional(&store.pool)
                            .await?;
                    r.map(|(id,)| id)
                        .with_context(|| format!("--provider: no provider is called {slug}"))?
                }
            };
            let diff = catalog::import::preview(&store, &json, &provider_id)
                .await
                .map_err(anyhow::Error::msg)?;
            print!("{}", catalog::import::describe(&diff));
            if apply {
                let said = catalog::import::apply_now(&store, &json, &provider_id)
                    .await
                    .map_err(anyhow::Error::msg)?;
                println!("{said}");
            } else {
                println!("nothing changed; run again with --apply to make these changes");
            }
            Ok(())
        }
        Command::Catalog(CatalogCmd::Apply { file }) => {
            let store = open(&cfg).await?;
            let cipher = Cipher::from_config(&cfg)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let env = |n: &str| std::env::var(n).ok();
            let r = catalog::file::apply(&store, &cipher, &file.display().to_string(), &text, &env)
                .await?;
            println!(
                "applied {}: {} providers, {} models, {} endpoints{}{}",
                file.display(),
                r.providers,
                r.models,
                r.endpoints,
                if r.endpoints_disabled > 0 {
                    format!(
                        ", {} endpoints no longer listed were disabled",
                        r.endpoints_disabled
                    )
                } else {
                    String::new()
                },
                r.markup_percent
                    .map(|m| format!(", default markup {m}%"))
                    .unwrap_or_default()
            );
            println!(
                "running servers pick this up within {} ms",
                cfg.catalog_refresh_ms
            );
            Ok(())
        }
        Command::Admin(AdminCmd::Create { email, password }) => {
            let store = open(&cfg).await?;
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from standard input")?;
                    line.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let user = accounts::create_admin(&store, &email, &password).await?;
            println!("{} is a platform admin (user id {})", user.email, user.id);
            Ok(())
        }
        Command::Org(OrgCmd::Create { name, owner_email }) => {
            let store = open(&cfg).await?;
            let org = accounts::create_org(&store, &name, &owner_email).await?;
            println!(
                "created organisation {:?} (id {}) owned by {}",
                org.name,
                org.id,
                owner_email.trim().to_ascii_lowercase()
            );
            Ok(())
        }
        Command::Credits(CreditsCmd::Grant {
            org,
            usd,
            note,
            idempotency_key,
        }) => {
            let store = open(&cfg).await?;
            let org = accounts::find_org(&store, &org).await?;
            let amount = Nanos::parse_usd(&usd).map_err(|e| anyhow::anyhow!("--usd: {e}"))?;
            let key = idempotency_key
                .map(|k| format!("grant:{k}"))
                .unwrap_or_else(|| format!("grant:{}", uuid::Uuid::new_v4()));
            let granted = ledger::grant(&store, &org.id, amount, &key, note.as_deref()).await?;
            let b = ledger::balance(&store, &org.id)
                .await?
                .context("organisation vanished")?;
            if granted {
                println!(
                    "granted ${} to {:?}; balance is now ${}",
                    amount.to_usd_string(),
                    org.name,
                    b.balance().to_usd_string()
                );
            } else {
                println!(
                    "already granted (idempotency key {key}); balance is ${}",
                    b.balance().to_usd_string()
                );
            }
            Ok(())
        }
        Command::Credits(CreditsCmd::Show { org }) => {
            let store = open(&cfg).await?;
            let org = accounts::find_org(&store, &org).await?;
            let b = ledger::balance(&store, &org.id)
                .await?
                .context("organisation vanished")?;
            println!(
                "{:?}: balance ${} (credits ${}, usage ${}, reserved for requests in flight ${})",
                org.name,
                b.balance().to_usd_string(),
                b.credits.to_usd_string(),
                b.usage.to_usd_string(),
                b.reserved.to_usd_string()
            );
            Ok(())
        }
        Command::Key(KeyCmd::Create {
            org,
            name,
            limit_usd,
            expires,
            limit_reset,
            models,
            rpm,
            concurrency,
            management,
        }) => {
            let store = open(&cfg).await?;
            let org = accounts::find_org(&store, &org).await?;
            let limit = limit_usd
                .map(|s| Nanos::parse_usd(&s).map_err(|e| anyhow::anyhow!("--limit-usd: {e}")))
                .transpose()?;
            let expires_at = expires
                .map(|s| {
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "--expires {s:?} is not RFC 3339 (like 2027-01-01T00:00:00Z): {e}"
                            )
                        })
                })
                .transpose()?;
            let (k, what) = if management {
                (
                    keys::create_management_key(&store, &org.id, &name).await?,
                    "management key",
                )
            } else {
                for m in models.iter().flatten() {
                    let known: Option<(String,)> =
                        sqlx::query_as("SELECT id FROM models WHERE slug = $1")
                            .bind(m)
                            .fetch_optional(&store.pool)
                            .await?;
                    if known.is_none() {
                        bail!("--models: {m:?} is not in the catalog (GET /api/v1/models lists the ids)");
                    }
                }
                let rules = keys::KeyRules {
                    limit_reset: limit_reset.as_deref().and_then(keys::LimitReset::parse),
                    allowed_models: models,
                    requests_per_minute: rpm,
                    max_concurrent: concurrency,
                    provider: None,
                };
                (
                    keys::create_key_with(&store, &org.id, &name, limit, expires_at, &rules)
                        .await?,
                    "key",
                )
            };
            println!(
                "created {what} {:?} (id {}, {}) for {:?}; the secret is shown once:",
                name, k.id, k.prefix, org.name
            );
            println!("{}", k.secret);
            Ok(())
        }
        Command::Key(KeyCmd::Revoke { id, org, name }) => {
            let store = open(&cfg).await?;
            let ids: Vec<String> = match (id, org, name) {
                (Some(id), _, _) => vec![id],
                (None, Some(org), Some(name)) => {
                    let org = accounts::find_org(&store, &org).await?;
                    sqlx::query_as::<_, (String,)>("SELECT id FROM api_keys WHERE org_id = $1 AND name = $2 AND revoked_at IS NULL")
                        .bind(&org.id)
                        .bind(&name)
                        .fetch_all(&store.pool)
                        .await?
                        .into_iter()
                        .map(|(i,)| i)
                        .collect()
                }
                _ => bail!("say which key: --id ID, or --org NAME --name LABEL"),
            };
            let mut n = 0;
            for id in &ids {
                if keys::revoke_key(&store, id).await? {
                    n += 1;
                    println!("revoked key {id}");
                }
            }
            if n == 0 {
                bail!("no live key matched; `switchyard key list --org NAME` shows the keys");
            }
            Ok(())
        }
        Command::Key(KeyCmd::List { org }) => {
            let store = open(&cfg).await?;
            let org = accounts::find_org(&store, &org).await?;
            type Row = (
                String,
                String,
                String,
                Option<i64>,
                i64,
                Option<i64>,
                Option<i64>,
            );
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, name, prefix, limit_nanos, usage_nanos, expires_at, revoked_at FROM api_keys WHERE org_id = $1 ORDER BY created_at",
            )
            .bind(&org.id)
            .fetch_all(&store.pool)
            .await?;
            println!(
                "{:<34} {:<20} {:<18} {:>12} {:>12} status",
                "id", "name", "prefix", "usage $", "limit $"
            );
            for (id, name, prefix, limit, usage, expires, revoked) in rows {
                let status = if revoked.is_some() {
                    "revoked"
                } else if expires.is_some_and(|e| e <= crate::store::now_ms()) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{id:<34} {name:<20} {prefix:<18} {:>12} {:>12} {status}",
                    Nanos(usage).to_usd_string(),
                    limit.map_or("-".into(), |l| Nanos(l).to_usd_string())
                );
            }
            Ok(())
        }
    }
}

async fn serve(mut cfg: Config, args: ServeArgs) -> anyhow::Result<()> {
    let store = Store::open(cfg.database_url.expose(), cfg.db_max_connections).await?;
    // With --demo and no Stripe account configured, purchases go to the built-in Stripe fake.
    let fake_stripe = if args.demo && cfg.stripe_secret_key.is_none() {
        let key = format!("sk_test_demo_{}", uuid::Uuid::new_v4().simple());
        // A webhook secret the operator set is kept (and signs the fake's events); else a fresh one.
        let secret = match cfg.stripe_webhook_secrets.first() {
            Some(s) => s.expose().to_string(),
            None => format!("whsec_demo_{}", uuid::Uuid::new_v4().simple()),
        };
        let (_, fake) = crate::devstripe::spawn("127.0.0.1:0".parse()?, Some(key.clone())).await?;
        cfg.stripe_secret_key = Some(crate::config::Secret::new(key));
        cfg.stripe_api_base = fake.base_url();
        cfg.stripe_webhook_secrets = vec![crate::config::Secret::new(secret.clone())];
        Some((fake, secret))
    } else {
        None
    };
    let demo = if args.demo {
        let cipher = Cipher::from_config(&cfg)?;
        let data_dir = cfg
            .secret_key_file
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("data"));
        Some(crate::demo::prepare(&store, &cipher, &data_dir, args.demo_upstream_addr).await?)
    } else {
        None
    };
    let app = crate::Application::build_with_store(cfg, store).await?;
    let addr = app.local_addr();
    let base = format!("http://{addr}");
    if let Some((fake, secret)) = &fake_stripe {
        fake.set_webhook(
            &format!("{}/webhooks/stripe", app.state().public_url),
            secret,
        );
    }
    tracing::info!(%addr, "switchyard listening");
    println!();
    println!("  Switchyard is running.");
    println!("    Dashboard:  {base}/");
    match &demo {
        Some(d) => println!("    Sign in:    {base}/signin as {} with password {} (platform admin)", d.login.0, d.login.1),
        None => println!("    Sign in:    {base}/signin (or create an account at {base}/signup; the first account is the platform admin)"),
    }
    println!("    API:        {base}/api/v1  (OpenAI-compatible; also at {base}/v1)");
    if let Some((fake, _)) = &fake_stripe {
        println!(
            "    Payments:   a local Stripe fake at {} (no card is charged; set SWITCHYARD_STRIPE_SECRET_KEY for real Stripe)",
            fake.base_url()
        );
    }
    if let Some(d) = &demo {
        println!("    Demo key:   {}", d.api_key);
        println!(
            "    Models:     demo/fast-1, demo/smart-1 (served by the dev upstream at http://{})",
            d.upstream
        );
        println!();
        println!("  First call:");
        println!("    curl {base}/api/v1/chat/completions \\");
        println!(
            "      -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\",
            d.api_key
        );
        println!("      -d '{{\"model\": \"demo/fast-1\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hello\"}}]}}'");
        println!(
            "    curl {base}/api/v1/credits -H 'Authorization: Bearer {}'",
            d.api_key
        );
    }
    println!();
    app.run_until(crate::shutdown_signal()).await
}
