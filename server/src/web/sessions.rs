//! Dashboard sessions stored in the platform's database (SQLite or PostgreSQL) through the same `Any`
//! pools as everything else: tower-sessions' own SQL stores need one concrete pool type per backend.

use crate::store::{now_ms, Store};
use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, ExpiredDeletion, Result, SessionStore};

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    store: Store,
}

impl DbSessionStore {
    pub fn new(store: Store) -> Self {
        DbSessionStore { store }
    }
}

fn backend(e: sqlx::Error) -> Error {
    Error::Backend(e.to_string())
}

fn expiry_ms(r: &Record) -> i64 {
    (r.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64
}

#[async_trait]
impl SessionStore for DbSessionStore {
    /// Inserts under a fresh id, drawing another on the (astronomically unlikely) collision.
    async fn create(&self, record: &mut Record) -> Result<()> {
        loop {
            let json = serde_json::to_string(&*record).map_err(|e| Error::Encode(e.to_string()))?;
            let r = sqlx::query("INSERT INTO sessions (id, record, expires_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
                .bind(record.id.to_string())
                .bind(json)
                .bind(expiry_ms(record))
                .execute(&self.store.writer)
                .await
                .map_err(backend)?;
            if r.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let json = serde_json::to_string(record).map_err(|e| Error::Encode(e.to_string()))?;
        sqlx::query(
            "INSERT INTO sessions (id, record, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET record = excluded.record, expires_at = excluded.expires_at",
        )
        .bind(record.id.to_string())
        .bind(json)
        .bind(expiry_ms(record))
        .execute(&self.store.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT record FROM sessions WHERE id = $1 AND expires_at > $2")
                .bind(id.to_string())
                .bind(now_ms())
                .fetch_optional(&self.store.pool)
                .await
                .map_err(backend)?;
        row.map(|(json,)| serde_json::from_str(&json).map_err(|e| Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.store.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&self.store.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
