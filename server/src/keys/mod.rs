//! API keys: generation (`sk-sy-v1-` + 256 random bits, shown once), storage as SHA-256 hash plus a display
//! prefix, revocation, and the in-memory cache the gateway authenticates against. Management keys manage
//! an organisation's keys over the API (`api.rs`) and cannot call models.

pub mod api;

use crate::money::Nanos;
use crate::store::{new_id, now_ms, Store};
use anyhow::bail;
use parking_lot::RwLock;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

pub const KEY_PREFIX: &str = "sk-sy-v1-";

/// What the gateway needs to know about a key, as read from the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub limit: Option<Nanos>,
    pub expires_at: Option<i64>,
    pub disabled: bool,
    pub revoked: bool,
    pub kind: KeyKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Calls models; spends credits.
    Inference,
    /// Manages the org's keys over the API; cannot call models.
    Management,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Inference => "inference",
            KeyKind::Management => "management",
        }
    }
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn generate_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("{KEY_PREFIX}{}", hex::encode(b))
}

pub struct NewKey {
    pub id: String,
    pub secret: String,
    pub prefix: String,
}

/// Creates an inference key (one that calls models).
pub async fn create_key(
    store: &Store,
    org_id: &str,
    name: &str,
    limit: Option<Nanos>,
    expires_at: Option<i64>,
) -> anyhow::Result<NewKey> {
    insert_key(store, org_id, name, limit, expires_at, KeyKind::Inference).await
}

/// Creates a management key (one that manages the org's keys and cannot call models).
pub async fn create_management_key(
    store: &Store,
    org_id: &str,
    name: &str,
) -> anyhow::Result<NewKey> {
    insert_key(store, org_id, name, None, None, KeyKind::Management).await
}

async fn insert_key(
    store: &Store,
    org_id: &str,
    name: &str,
    limit: Option<Nanos>,
    expires_at: Option<i64>,
    kind: KeyKind,
) -> anyhow::Result<NewKey> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        bail!("the name must be 1 to 100 characters");
    }
    let secret = generate_secret();
    let prefix = format!("{}…", &secret[..KEY_PREFIX.len() + 6]);
    let id = new_id();
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, hash, prefix, limit_nanos, expires_at, created_at, kind) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(name)
    .bind(hash_secret(&secret))
    .bind(&prefix)
    .bind(limit.map(|n| n.0))
    .bind(expires_at)
    .bind(now_ms())
    .bind(kind.as_str())
    .execute(&store.writer)
    .await?;
    Ok(NewKey { id, secret, prefix })
}

/// Revokes a key by id; returns false when no such live key exists.
pub async fn revoke_key(store: &Store, id: &str) -> anyhow::Result<bool> {
    let r = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now_ms())
        .bind(id)
        .execute(&store.writer)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// id, org_id, name, limit_nanos, expires_at, disabled, revoked_at, kind
type KeyRow = (
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    String,
);

pub async fn lookup(store: &Store, hash: &str) -> Result<Option<KeyInfo>, sqlx::Error> {
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT id, org_id, name, limit_nanos, expires_at, disabled, revoked_at, kind FROM api_keys WHERE hash = $1",
    )
    .bind(hash)
    .fetch_optional(&store.pool)
    .await?;
    Ok(row.map(
        |(id, org_id, name, limit, expires_at, disabled, revoked_at, kind)| KeyInfo {
            id,
            org_id,
            name,
            limit: limit.map(Nanos),
            expires_at,
            disabled: disabled != 0,
            revoked: revoked_at.is_some(),
            kind: if kind == "management" {
                KeyKind::Management
            } else {
                KeyKind::Inference
            },
        },
    ))
}

/// Keys by hash, trusted for `ttl` (so a revocation made anywhere is seen within `ttl`). Unknown keys are
/// cached too, so a flood of bad keys does not reach the database.
pub struct KeyCache {
    ttl: Duration,
    map: RwLock<HashMap<String, CachedKey>>,
}

/// A lookup result (None: no such key) and when it was read.
type CachedKey = (Option<Arc<KeyInfo>>, Instant);

const KEY_CACHE_MAX: usize = 100_000;

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl,
            map: RwLock::new(HashMap::new()),
        }
    }

    pub async fn get(
        &self,
        store: &Store,
        secret: &str,
    ) -> Result<Option<Arc<KeyInfo>>, sqlx::Error> {
        let hash = hash_secret(secret);
        if let Some((info, at)) = self.map.read().get(&hash) {
            if at.elapsed() < self.ttl {
                return Ok(info.clone());
            }
        }
        let info = lookup(store, &hash).await?.map(Arc::new);
        let mut map = self.map.write();
        if map.len() >= KEY_CACHE_MAX {
            map.clear();
        }
        map.insert(hash, (info.clone(), Instant::now()));
        Ok(info)
    }

    pub fn forget_all(&self) {
        self.map.write().clear();
    }
}
