//! Configuration: one typed struct, layered defaults -> optional TOML file -> environment variables.
//! Invalid settings fail at start-up with a message that names the setting.

use serde::Deserialize;
use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// A value that never prints (logs, Debug, panics).
#[derive(Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://path` (created on first start) or `postgres://…`.
    pub database_url: Secret,
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// Base64 of 32 random bytes; encrypts provider credentials at rest. Without it a key file is used.
    pub secret_key: Option<Secret>,
    /// Where the key file lives when `secret_key` is not set (created on first start).
    pub secret_key_file: PathBuf,
    /// Largest request body accepted by the API, in bytes.
    pub max_body_bytes: usize,
    pub upstream_connect_timeout_ms: u64,
    /// Time allowed until the upstream's response headers arrive.
    pub upstream_first_byte_timeout_ms: u64,
    /// Longest silence allowed between two chunks of an upstream response.
    pub upstream_idle_timeout_ms: u64,
    /// Interval of SSE keep-alive comments while the upstream is silent.
    pub stream_keepalive_ms: u64,
    /// How long an endpoint whose circuit breaker opened stays out of rotation before it is probed.
    pub breaker_cooldown_ms: u64,
    /// How long a looked-up API key is trusted before it is read again (revocation delay).
    pub key_cache_ttl_ms: u64,
    /// How often the catalog snapshot is checked for changes made by other processes.
    pub catalog_refresh_ms: u64,
    /// Folder holding the built UI (`pkg/switchyard.js`, `pkg/switchyard.wasm`).
    pub site_dir: PathBuf,
    /// `text` or `json`.
    pub log_format: String,
    /// How long SIGTERM waits for in-flight requests and streams before giving up.
    pub shutdown_grace_ms: u64,
    pub db_max_connections: u32,
    /// An instance silent this long is taken for dead and its holds are released.
    pub instance_stale_ms: u64,
    /// How long a request waits for its credit to be reserved before it is answered 503 with
    /// `Retry-After` (the database is slow or unreachable).
    pub admission_timeout_ms: u64,
    /// Where settlements wait (fsync'd) while the database cannot take them; replayed at start and as
    /// soon as the database answers.
    pub journal_dir: PathBuf,
    /// Mark the session cookie Secure (it is whenever `public_url` is https).
    pub secure_cookies: bool,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs or addresses): the TLS proxy in front of the
    /// platform. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The address people reach the dashboard at, for links in emails (`https://llm.example.com`).
    /// Unset: `http://` and the address the server listens on.
    pub public_url: Option<String>,
    /// Where emails go: `smtp://user:pass@host:587?tls=required`, `smtps://…:465`. Unset: emails are
    /// kept in the dev outbox (platform admins read it in the dashboard) and announced in the log.
    pub smtp_url: Option<Secret>,
    /// The From of every email.
    pub mail_from: String,
    /// Stripe's secret API key (`sk_live_…`/`sk_test_…`). Unset: purchases use the built-in Stripe fake
    /// when the platform runs with `--demo`, and are unavailable otherwise.
    pub stripe_secret_key: Option<Secret>,
    /// Where the Stripe API is (`https://api.stripe.com/`; the fake's address in development and tests).
    pub stripe_api_base: String,
    /// Webhook signing secrets (`whsec_…`), comma-separated: two during a rotation.
    pub stripe_webhook_secrets: Vec<Secret>,
    /// The platform fee on purchases, in basis points (550 = 5.5 %), and its minimum in USD.
    pub purchase_fee_bp: u32,
    pub purchase_fee_min_usd: String,
    /// The smallest and largest purchase, in USD.
    pub purchase_min_usd: String,
    pub purchase_max_usd: String,
    /// How often balances are compared with their organisations' low-balance alerts and top-up thresholds.
    pub low_balance_check_ms: u64,
    /// The wait after a declined automatic top-up before the next try; it doubles with each decline.
    pub topup_retry_ms: u64,
    /// An endpoint whose error rate over the last 5 minutes passes this percentage is shown degraded.
    pub degraded_error_percent: u64,
    /// How often the endpoint health public pages show is recomputed from the request log.
    pub health_refresh_ms: u64,
    /// Request-log rows older than this many days are deleted (hourly); the usage rollups keep their
    /// sums, so dashboards and totals are unchanged. 0 keeps the log forever.
    pub log_retention_days: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: Secret::new("sqlite://data/switchyard.db"),
            addr: "127.0.0.1:8080".parse().expect("valid default address"),
            secret_key: None,
            secret_key_file: PathBuf::from("data/secret.key"),
            max_body_bytes: 4 * 1024 * 1024,
            upstream_connect_timeout_ms: 10_000,
            upstream_first_byte_timeout_ms: 120_000,
            upstream_idle_timeout_ms: 120_000,
            stream_keepalive_ms: 15_000,
            breaker_cooldown_ms: 15_000,
            key_cache_ttl_ms: 5_000,
            catalog_refresh_ms: 2_000,
            site_dir: PathBuf::from("site"),
            log_format: "text".into(),
            shutdown_grace_ms: 30_000,
            db_max_connections: 16,
            instance_stale_ms: 60_000,
            admission_timeout_ms: 2_000,
            journal_dir: PathBuf::from("data/journal"),
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            public_url: None,
            smtp_url: None,
            mail_from: "Switchyard <noreply@switchyard.local>".into(),
            stripe_secret_key: None,
            stripe_api_base: "https://api.stripe.com/".into(),
            stripe_webhook_secrets: Vec::new(),
            purchase_fee_bp: 550,
            purchase_fee_min_usd: "0.80".into(),
            purchase_min_usd: "5".into(),
            purchase_max_usd: "10000".into(),
            low_balance_check_ms: 30_000,
            topup_retry_ms: 15 * 60_000,
            degraded_error_percent: 20,
            health_refresh_ms: 15_000,
            log_retention_days: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?} is invalid: {message}")]
    Env {
        name: &'static str,
        value: String,
        message: String,
    },
    #[error("setting {name} is invalid: {message}")]
    Invalid { name: &'static str, message: String },
}

type Setter = fn(&mut Config, &str) -> Result<(), String>;

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    v.trim().parse::<T>().map_err(|e| e.to_string())
}

/// Every environment variable the platform reads, with how it sets the config.
const ENV: &[(&str, Setter)] = &[
    ("DATABASE_URL", |c, v| {
        c.database_url = Secret::new(v);
        Ok(())
    }),
    ("SWITCHYARD_ADDR", |c, v| num(v).map(|x| c.addr = x)),
    ("SWITCHYARD_SECRET_KEY", |c, v| {
        c.secret_key = Some(Secret::new(v));
        Ok(())
    }),
    ("SWITCHYARD_SECRET_KEY_FILE", |c, v| {
        c.secret_key_file = v.into();
        Ok(())
    }),
    ("SWITCHYARD_MAX_BODY_BYTES", |c, v| {
        num(v).map(|x| c.max_body_bytes = x)
    }),
    ("SWITCHYARD_UPSTREAM_CONNECT_TIMEOUT_MS", |c, v| {
        num(v).map(|x| c.upstream_connect_timeout_ms = x)
    }),
    ("SWITCHYARD_UPSTREAM_FIRST_BYTE_TIMEOUT_MS", |c, v| {
        num(v).map(|x| c.upstream_first_byte_timeout_ms = x)
    }),
    ("SWITCHYARD_UPSTREAM_IDLE_TIMEOUT_MS", |c, v| {
        num(v).map(|x| c.upstream_idle_timeout_ms = x)
    }),
    ("SWITCHYARD_STREAM_KEEPALIVE_MS", |c, v| {
        num(v).map(|x| c.stream_keepalive_ms = x)
    }),
    ("SWITCHYARD_BREAKER_COOLDOWN_MS", |c, v| {
        num(v).map(|x| c.breaker_cooldown_ms = x)
    }),
    ("SWITCHYARD_KEY_CACHE_TTL_MS", |c, v| {
        num(v).map(|x| c.key_cache_ttl_ms = x)
    }),
    ("SWITCHYARD_CATALOG_REFRESH_MS", |c, v| {
        num(v).map(|x| c.catalog_refresh_ms = x)
    }),
    ("SWITCHYARD_SITE_DIR", |c, v| {
        c.site_dir = v.into();
        Ok(())
    }),
    ("SWITCHYARD_LOG_FORMAT", |c, v| {
        c.log_format = v.into();
        Ok(())
    }),
    ("SWITCHYARD_SHUTDOWN_GRACE_MS", |c, v| {
        num(v).map(|x| c.shutdown_grace_ms = x)
    }),
    ("SWITCHYARD_DB_MAX_CONNECTIONS", |c, v| {
        num(v).map(|x| c.db_max_connections = x)
    }),
    ("SWITCHYARD_LOG_RETENTION_DAYS", |c, v| {
        num(v).map(|x| c.log_retention_days = x)
    }),
    ("SWITCHYARD_INSTANCE_STALE_MS", |c, v| {
        num(v).map(|x| c.instance_stale_ms = x)
    }),
    ("SWITCHYARD_ADMISSION_TIMEOUT_MS", |c, v| {
        num(v).map(|x| c.admission_timeout_ms = x)
    }),
    ("SWITCHYARD_JOURNAL_DIR", |c, v| {
        c.journal_dir = v.into();
        Ok(())
    }),
    ("SWITCHYARD_SECURE_COOKIES", |c, v| {
        num(v).map(|x| c.secure_cookies = x)
    }),
    ("SWITCHYARD_TRUSTED_PROXIES", |c, v| {
        c.trusted_proxies = crate::web::throttle::parse_trusted(v)?;
        Ok(())
    }),
    ("SWITCHYARD_PUBLIC_URL", |c, v| {
        let v = v.trim().trim_end_matches('/');
        if !(v.starts_with("http://") || v.starts_with("https://")) {
            return Err("must start with http:// or https://".into());
        }
        c.public_url = Some(v.to_string());
        Ok(())
    }),
    ("SWITCHYARD_SMTP_URL", |c, v| {
        c.smtp_url = Some(Secret::new(v.trim()));
        Ok(())
    }),
    ("SWITCHYARD_MAIL_FROM", |c, v| {
        c.mail_from = v.trim().to_string();
        Ok(())
    }),
    ("SWITCHYARD_STRIPE_SECRET_KEY", |c, v| {
        c.stripe_secret_key = Some(Secret::new(v.trim()));
        Ok(())
    }),
    ("SWITCHYARD_STRIPE_API_BASE", |c, v| {
        c.stripe_api_base = v.trim().to_string();
        Ok(())
    }),
    ("SWITCHYARD_STRIPE_WEBHOOK_SECRET", |c, v| {
        c.stripe_webhook_secrets = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect();
        Ok(())
    }),
    ("SWITCHYARD_PURCHASE_FEE_BP", |c, v| {
        num(v).map(|x| c.purchase_fee_bp = x)
    }),
    ("SWITCHYARD_PURCHASE_FEE_MIN_USD", |c, v| {
        c.purchase_fee_min_usd = v.trim().into();
        Ok(())
    }),
    ("SWITCHYARD_PURCHASE_MIN_USD", |c, v| {
        c.purchase_min_usd = v.trim().into();
        Ok(())
    }),
    ("SWITCHYARD_LOW_BALANCE_CHECK_MS", |c, v| {
        num(v).map(|x| c.low_balance_check_ms = x)
    }),
    ("SWITCHYARD_DEGRADED_ERROR_PERCENT", |c, v| {
        num(v).map(|x| c.degraded_error_percent = x)
    }),
    ("SWITCHYARD_HEALTH_REFRESH_MS", |c, v| {
        num(v).map(|x| c.health_refresh_ms = x)
    }),
    ("SWITCHYARD_TOPUP_RETRY_MS", |c, v| {
        num(v).map(|x| c.topup_retry_ms = x)
    }),
    ("SWITCHYARD_PURCHASE_MAX_USD", |c, v| {
        c.purchase_max_usd = v.trim().into();
        Ok(())
    }),
];

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    pub fn load_from(
        file: Option<&std::path::Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                toml::from_str::<Config>(&text).map_err(|e| ConfigError::File {
                    path: path.into(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        for (name, set) in ENV {
            if let Some(value) = env(name) {
                set(&mut cfg, &value).map_err(|message| ConfigError::Env {
                    name,
                    value,
                    message,
                })?;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database_url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                message: "must start with sqlite:// or postgres://".into(),
            });
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid {
                name: "SWITCHYARD_LOG_FORMAT",
                message: "must be text or json".into(),
            });
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                name: "SWITCHYARD_MAX_BODY_BYTES",
                message: "must be at least 1024".into(),
            });
        }
        Ok(())
    }

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_and_names_bad_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "addr = \"127.0.0.1:9000\"\nmax_body_bytes = 2048\n").expect("write");
        let cfg = Config::load_from(Some(&file), |n| {
            (n == "SWITCHYARD_MAX_BODY_BYTES").then(|| "4096".into())
        })
        .expect("valid");
        assert_eq!(cfg.addr.port(), 9000);
        assert_eq!(cfg.max_body_bytes, 4096);

        let err = Config::load_from(None, |n| (n == "SWITCHYARD_ADDR").then(|| "nope".into()))
            .expect_err("invalid");
        assert!(err.to_string().contains("SWITCHYARD_ADDR"), "{err}");
        std::fs::write(&file, "adr = \"x\"\n").expect("write");
        let err = Config::load_from(Some(&file), |_| None).expect_err("unknown key");
        assert!(err.to_string().contains("adr"), "{err}");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
