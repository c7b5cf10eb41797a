//! Storage: connection pools, migrations and the few differences between SQLite and PostgreSQL.
//! Queries use `$n` placeholders and portable SQL through sqlx's `Any` driver, so one query text runs on
//! both backends; money is BIGINT nano-USD, times are BIGINT unix milliseconds, flags are 0/1 integers.

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::{str::FromStr, time::Duration};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Connection pools. `pool` serves reads (and writes on PostgreSQL); `writer` is the connection that
/// serialises writes on SQLite, where a single writer avoids lock-upgrade deadlocks and busy retries.
#[derive(Clone, Debug)]
pub struct Store {
    pub pool: AnyPool,
    pub writer: AnyPool,
    pub backend: Backend,
}

static MIGRATOR_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static MIGRATOR_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Whether a connection (or transaction) talks to SQLite.
pub fn is_sqlite(conn: &sqlx::AnyConnection) -> bool {
    conn.backend_name() == "SQLite"
}

/// `($s,$s+1,…),(…)` for `rows` rows of `cols` columns; values are always bound, never inlined. On
/// SQLite plain `?`s: SQLite finds a numbered parameter's name by a linear scan, which makes binding
/// thousands of `$n` quadratic (a 1,000-row insert spent over a second there).
pub fn placeholders(sqlite: bool, rows: usize, cols: usize, start: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    let mut n = start;
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push(',');
            }
            if sqlite {
                out.push('?');
            } else {
                out.push('$');
                out.push_str(&n.to_string());
            }
            n += 1;
        }
        out.push(')');
    }
    out
}

/// `$1,$2,…` (or `?,?,…` on SQLite) for `n` values.
pub fn in_list(sqlite: bool, n: usize) -> String {
    (1..=n)
        .map(|i| {
            if sqlite {
                "?".to_string()
            } else {
                format!("${i}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Store {
    /// Connects, creating the SQLite file (and its folder) when missing, and applies migrations.
    pub async fn open(url: &str, max_connections: u32) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let store = match backend {
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
                let writer = sqlite_pool(&url, 1).await?;
                // WAL is a property of the file: set it once, before the readers open it.
                writer
                    .execute("PRAGMA journal_mode = WAL")
                    .await
                    .context("enabling WAL on the SQLite file")?;
                let pool = sqlite_pool(&url, max_connections.max(2)).await?;
                Store {
                    pool,
                    writer,
                    backend,
                }
            }
            Backend::Postgres => {
                let opts = AnyConnectOptions::from_str(url).context("parsing DATABASE_URL")?;
                let pool = AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .context("connecting to PostgreSQL (is it running, and does DATABASE_URL name an existing database?)")?;
                Store {
                    writer: pool.clone(),
                    pool,
                    backend,
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let m = match self.backend {
            Backend::Sqlite => &MIGRATOR_SQLITE,
            Backend::Postgres => &MIGRATOR_POSTGRES,
        };
        m.run(&self.writer)
            .await
            .context("applying database migrations")?;
        Ok(())
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Makes sure the folder exists and the file is created on first start (`mode=rwc`).
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" && !path.is_empty() {
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).with_context(|| {
                    format!("creating the database folder {}", parent.display())
                })?;
            }
        }
    }
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".into()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

async fn sqlite_pool(url: &str, max: u32) -> anyhow::Result<AnyPool> {
    let opts = AnyConnectOptions::from_str(url).context("parsing the SQLite DATABASE_URL")?;
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .with_context(|| "opening the SQLite database".to_string())
}

/// Whether an error says the database cannot be reached or used right now (rather than that a
/// statement is wrong): connections refused or broken, the pool exhausted, SQLite locked, PostgreSQL
/// shutting down or refusing connections.
pub fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite: BUSY (5) and LOCKED (6) with their extended codes (small numbers); PostgreSQL:
            // connection exceptions (08…), shutdown (57P0…), too many connections (53300), read-only
            // (25006).
            let sqlite_busy = code
                .parse::<u32>()
                .is_ok_and(|c| c < 10_000 && matches!(c & 0xff, 5 | 6));
            sqlite_busy
                || code.starts_with("08")
                || code.starts_with("57P0")
                || code == "53300"
                || code == "25006"
                || db.message().contains("database is locked")
                || db.message().contains("database is busy")
        }
        _ => false,
    }
}

/// True when the error is a unique-constraint violation (both backends).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code()
                .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
                || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

#[cfg(test)]
mod placeholder_tests {
    #[test]
    fn placeholders_number_every_value() {
        assert_eq!(super::placeholders(false, 2, 3, 1), "($1,$2,$3),($4,$5,$6)");
        assert_eq!(super::placeholders(true, 2, 2, 1), "(?,?),(?,?)");
        assert_eq!(super::in_list(false, 3), "$1,$2,$3");
        assert_eq!(super::in_list(true, 2), "?,?");
    }
}
