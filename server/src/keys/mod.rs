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
    pub rules: KeyRules,
    /// The organisation keeps prompts and answers in its activity log.
    pub log_prompts: bool,
    /// The key's default routing preferences over its organisation's (a request's own `provider`
    /// fields win over both).
    pub provider_prefs: crate::gateway::route::Prefs,
    /// The person who made the key (keys made from the command line have none): a key works only while
    /// its maker may still do what it allows.
    pub maker: Option<Maker>,
}

/// The maker of a key, as of its lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maker {
    pub id: String,
    /// The account is disabled (or gone).
    pub disabled: bool,
    /// Their role in the key's organisation; none when they are no longer a member.
    pub role: Option<String>,
}

impl KeyInfo {
    /// Why the key no longer works because of its maker, if it does not.
    pub fn maker_refusal(&self) -> Option<&'static str> {
        let m = self.maker.as_ref()?;
        if m.disabled {
            return Some("the account that made this API key is disabled; ask an organisation admin for a key");
        }
        let Some(role) = m.role.as_deref() else {
            return Some("the person who made this API key is no longer in its organisation; ask an organisation admin for a key");
        };
        if self.kind == KeyKind::Management && !matches!(role, "owner" | "admin") {
            return Some("this management key's maker is no longer an owner or admin of the organisation, so it no longer works");
        }
        None
    }
}

/// What a key may do beyond its credit limit and expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRules {
    /// The credit limit counts usage since the start of the current day/week/month (UTC).
    pub limit_reset: Option<LimitReset>,
    /// Model slugs the key may call; None: every model.
    pub allowed_models: Option<Vec<String>>,
    pub requests_per_minute: Option<u32>,
    /// Requests in flight at once (streams count until they end).
    pub max_concurrent: Option<u32>,
    /// The key's own default `provider` object (JSON, checked when set); over the organisation's.
    pub provider: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitReset {
    Daily,
    Weekly,
    Monthly,
}

impl LimitReset {
    pub fn parse(s: &str) -> Option<LimitReset> {
        match s {
            "daily" => Some(LimitReset::Daily),
            "weekly" => Some(LimitReset::Weekly),
            "monthly" => Some(LimitReset::Monthly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LimitReset::Daily => "daily",
            LimitReset::Weekly => "weekly",
            LimitReset::Monthly => "monthly",
        }
    }

    /// When the period holding `now_ms` began: UTC midnight, Monday 00:00 UTC, or the 1st 00:00 UTC.
    pub fn period_start(self, now_ms: i64) -> i64 {
        let now = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let day = now.date();
        let start = match self {
            LimitReset::Daily => day,
            LimitReset::Weekly => {
                day - time::Duration::days(day.weekday().number_days_from_monday() as i64)
            }
            LimitReset::Monthly => day.replace_day(1).unwrap_or(day),
        };
        start.midnight().assume_utc().unix_timestamp() * 1000
    }
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
    insert_key(
        store,
        org_id,
        name,
        limit,
        expires_at,
        KeyKind::Inference,
        &KeyRules::default(),
    )
    .await
}

/// Creates an inference key with rules (limit reset, allowed models, requests per minute).
pub async fn create_key_with(
    store: &Store,
    org_id: &str,
    name: &str,
    limit: Option<Nanos>,
    expires_at: Option<i64>,
    rules: &KeyRules,
) -> anyhow::Result<NewKey> {
    insert_key(
        store,
        org_id,
        name,
        limit,
        expires_at,
        KeyKind::Inference,
        rules,
    )
    .await
}

/// Creates a management key (one that manages the org's keys and cannot call models).
pub async fn create_management_key(
    store: &Store,
    org_id: &str,
    name: &str,
) -> anyhow::Result<NewKey> {
    insert_key(
        store,
        org_id,
        name,
        None,
        None,
        KeyKind::Management,
        &KeyRules::default(),
    )
    .await
}

/// The allow-list as stored (a JSON array), or NULL.
pub fn allowed_models_json(models: &Option<Vec<String>>) -> Option<String> {
    models
        .as_ref()
        .map(|m| serde_json::Value::from(m.clone()).to_string())
}

async fn insert_key(
    store: &Store,
    org_id: &str,
    name: &str,
    limit: Option<Nanos>,
    expires_at: Option<i64>,
    kind: KeyKind,
    rules: &KeyRules,
) -> anyhow::Result<NewKey> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        bail!("the name must be 1 to 100 characters");
    }
    let secret = generate_secret();
    let prefix = format!("{}…", &secret[..KEY_PREFIX.len() + 6]);
    let id = new_id();
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, hash, prefix, limit_nanos, expires_at, created_at, kind, \
           limit_reset, allowed_models, rpm_limit, provider_prefs, concurrency_limit) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
    .bind(rules.limit_reset.map(LimitReset::as_str))
    .bind(allowed_models_json(&rules.allowed_models))
    .bind(rules.requests_per_minute.map(i64::from))
    .bind(&rules.provider)
    .bind(rules.max_concurrent.map(i64::from))
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

/// A key as the gateway reads it, with what it needs to know about the person who made it.
#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    org_id: String,
    name: String,
    limit_nanos: Option<i64>,
    expires_at: Option<i64>,
    disabled: i64,
    revoked_at: Option<i64>,
    kind: String,
    limit_reset: Option<String>,
    allowed_models: Option<String>,
    rpm_limit: Option<i64>,
    concurrency_limit: Option<i64>,
    prompt_logging: i64,
    org_prefs: Option<String>,
    key_prefs: Option<String>,
    created_by: Option<String>,
    maker_disabled: Option<i64>,
    maker_role: Option<String>,
}

pub async fn lookup(store: &Store, hash: &str) -> Result<Option<KeyInfo>, sqlx::Error> {
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT k.id, k.org_id, k.name, k.limit_nanos, k.expires_at, k.disabled, k.revoked_at, k.kind, k.limit_reset, \
                k.allowed_models, k.rpm_limit, k.concurrency_limit, o.prompt_logging, o.provider_prefs AS org_prefs, \
                k.provider_prefs AS key_prefs, k.created_by, u.disabled AS maker_disabled, m.role AS maker_role \
         FROM api_keys k JOIN orgs o ON o.id = k.org_id \
         LEFT JOIN users u ON u.id = k.created_by \
         LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.created_by \
         WHERE k.hash = $1",
    )
    .bind(hash)
    .fetch_optional(&store.pool)
    .await?;
    Ok(row.map(|r| {
        let prefs = |stored: Option<String>| {
            stored
                .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
                .and_then(|v| crate::gateway::route::parse_prefs(&v).ok())
                .unwrap_or_default()
        };
        KeyInfo {
            maker: r.created_by.map(|id| Maker {
                id,
                disabled: r.maker_disabled.unwrap_or(1) != 0,
                role: r.maker_role,
            }),
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            limit: r.limit_nanos.map(Nanos),
            expires_at: r.expires_at,
            disabled: r.disabled != 0,
            revoked: r.revoked_at.is_some(),
            kind: if r.kind == "management" {
                KeyKind::Management
            } else {
                KeyKind::Inference
            },
            rules: KeyRules {
                limit_reset: r.limit_reset.as_deref().and_then(LimitReset::parse),
                allowed_models: r.allowed_models.and_then(|m| serde_json::from_str(&m).ok()),
                requests_per_minute: r.rpm_limit.and_then(|r| u32::try_from(r).ok()),
                max_concurrent: r.concurrency_limit.and_then(|c| u32::try_from(c).ok()),
                provider: r.key_prefs.clone(),
            },
            log_prompts: r.prompt_logging != 0,
            provider_prefs: prefs(r.key_prefs).over(&prefs(r.org_prefs)),
        }
    }))
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

/// A key as the pages and the management API show it.
#[derive(sqlx::FromRow, Clone, Debug)]
pub struct KeyRecord {
    pub hash: String,
    pub name: String,
    pub prefix: String,
    pub limit_nanos: Option<i64>,
    pub usage_nanos: i64,
    pub period_usage_nanos: i64,
    pub reserved_nanos: i64,
    pub disabled: i64,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub limit_reset: Option<String>,
    pub allowed_models: Option<String>,
    pub rpm_limit: Option<i64>,
    pub concurrency_limit: Option<i64>,
    pub provider_prefs: Option<String>,
    pub created_by_email: Option<String>,
}

impl KeyRecord {
    pub fn limit_remaining(&self) -> Option<Nanos> {
        self.limit_nanos
            .map(|l| Nanos((l - self.period_usage_nanos - self.reserved_nanos).max(0)))
    }
}

/// Which keys a caller may see and change: all of an org's, or only those one member created.
#[derive(Clone, Copy, Debug)]
pub struct KeyScope<'a> {
    pub org_id: &'a str,
    pub creator: Option<&'a str>,
}

impl<'a> KeyScope<'a> {
    pub fn org(org_id: &'a str) -> Self {
        KeyScope {
            org_id,
            creator: None,
        }
    }
}

const RECORD_SELECT: &str = "SELECT k.hash, k.name, k.prefix, k.limit_nanos, k.usage_nanos, k.period_usage_nanos, \
     k.reserved_nanos, k.disabled, k.expires_at, k.created_at, k.updated_at, k.last_used_at, k.limit_reset, \
     k.allowed_models, k.rpm_limit, k.concurrency_limit, k.provider_prefs, u.email AS created_by_email \
     FROM api_keys k LEFT JOIN users u ON u.id = k.created_by \
     WHERE k.org_id = $1 AND k.revoked_at IS NULL";

/// `AND k.created_by = $n` when the scope is one member's keys (a fixed fragment; the value is bound).
fn creator_clause(scope: KeyScope<'_>, n: usize) -> String {
    if scope.creator.is_some() {
        format!(" AND k.created_by = ${n}")
    } else {
        String::new()
    }
}

pub async fn list_records(
    store: &Store,
    scope: KeyScope<'_>,
) -> Result<Vec<KeyRecord>, sqlx::Error> {
    let sql = format!(
        "{RECORD_SELECT} AND k.kind = 'inference'{} ORDER BY k.created_at",
        creator_clause(scope, 2)
    );
    let mut q = sqlx::query_as::<_, KeyRecord>(&sql).bind(scope.org_id);
    if let Some(c) = scope.creator {
        q = q.bind(c);
    }
    q.fetch_all(&store.pool).await
}

pub async fn find_record(
    store: &Store,
    scope: KeyScope<'_>,
    hash: &str,
) -> Result<Option<KeyRecord>, sqlx::Error> {
    let sql = format!(
        "{RECORD_SELECT} AND k.kind = 'inference' AND k.hash = $2{}",
        creator_clause(scope, 3)
    );
    let mut q = sqlx::query_as::<_, KeyRecord>(&sql)
        .bind(scope.org_id)
        .bind(hash);
    if let Some(c) = scope.creator {
        q = q.bind(c);
    }
    q.fetch_optional(&store.pool).await
}

/// The organisation's live management keys.
pub async fn list_management_records(
    store: &Store,
    org_id: &str,
) -> Result<Vec<KeyRecord>, sqlx::Error> {
    let sql = format!("{RECORD_SELECT} AND k.kind = 'management' ORDER BY k.created_at");
    sqlx::query_as::<_, KeyRecord>(&sql)
        .bind(org_id)
        .fetch_all(&store.pool)
        .await
}

/// Deletes (revokes) one of the organisation's management keys; false when there is no such key.
pub async fn revoke_management_key(
    store: &Store,
    org_id: &str,
    hash: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1, updated_at = $1 \
         WHERE org_id = $2 AND hash = $3 AND kind = 'management' AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(org_id)
    .bind(hash)
    .execute(&store.writer)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Enables or disables a key in scope; false when there is no such key.
pub async fn set_disabled(
    store: &Store,
    scope: KeyScope<'_>,
    hash: &str,
    disabled: bool,
) -> Result<bool, sqlx::Error> {
    update_in_scope(
        store,
        scope,
        hash,
        "disabled = $3, updated_at = $4",
        disabled as i64,
    )
    .await
}

/// Deletes (revokes) a key in scope; false when there is no such key.
pub async fn revoke_by_hash(
    store: &Store,
    scope: KeyScope<'_>,
    hash: &str,
) -> Result<bool, sqlx::Error> {
    update_in_scope(
        store,
        scope,
        hash,
        "revoked_at = $3, updated_at = $4",
        now_ms(),
    )
    .await
}

/// A key's new name and rules (everything but the secret).
pub struct KeyEdit {
    pub name: String,
    pub limit: Option<Nanos>,
    pub expires_at: Option<i64>,
    /// `None` leaves the key enabled or disabled as it is.
    pub disabled: Option<bool>,
    pub rules: KeyRules,
}

/// Replaces a live key's name and rules, in scope; false when there is no such key.
pub async fn update_key(
    store: &Store,
    scope: KeyScope<'_>,
    hash: &str,
    e: &KeyEdit,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE api_keys SET name = $3, limit_nanos = $4, expires_at = $5, disabled = COALESCE($6, disabled), \
           updated_at = $7, limit_reset = $8, allowed_models = $9, rpm_limit = $10, provider_prefs = $11, \
           concurrency_limit = $12 \
         WHERE org_id = $1 AND hash = $2 AND kind = 'inference' AND revoked_at IS NULL{}",
        creator_clause(scope, 13).replace("k.", "")
    );
    let mut q = sqlx::query(&sql)
        .bind(scope.org_id)
        .bind(hash)
        .bind(&e.name)
        .bind(e.limit.map(|l| l.0))
        .bind(e.expires_at)
        .bind(e.disabled.map(i64::from))
        .bind(now_ms())
        .bind(e.rules.limit_reset.map(LimitReset::as_str))
        .bind(allowed_models_json(&e.rules.allowed_models))
        .bind(e.rules.requests_per_minute.map(i64::from))
        .bind(&e.rules.provider)
        .bind(e.rules.max_concurrent.map(i64::from));
    if let Some(c) = scope.creator {
        q = q.bind(c);
    }
    Ok(q.execute(&store.writer).await?.rows_affected() == 1)
}

/// Sets `set` (a fixed SQL fragment using `$3` for `value` and `$4` for now) on one live key in scope.
async fn update_in_scope(
    store: &Store,
    scope: KeyScope<'_>,
    hash: &str,
    set: &'static str,
    value: i64,
) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "UPDATE api_keys SET {set} WHERE org_id = $1 AND hash = $2 AND kind = 'inference' AND revoked_at IS NULL{}",
        creator_clause(scope, 5).replace("k.", "")
    );
    let mut q = sqlx::query(&sql)
        .bind(scope.org_id)
        .bind(hash)
        .bind(value)
        .bind(now_ms());
    if let Some(c) = scope.creator {
        q = q.bind(c);
    }
    Ok(q.execute(&store.writer).await?.rows_affected() == 1)
}

/// Requests in flight per key, for keys with a concurrency limit. Held per instance (as requests per
/// minute); a key's entry goes when its last request ends, so memory follows what is in flight.
#[derive(Default)]
pub struct InFlight {
    counts: parking_lot::Mutex<HashMap<String, u32>>,
}

/// A request's place in its key's concurrency limit, given back when dropped (the request answered, its
/// stream ended or its client gone).
pub struct Slot {
    owner: Arc<InFlight>,
    key_id: String,
}

impl InFlight {
    /// Takes a place for a request of `key_id`; `Err(in flight)` when `limit` are already running.
    pub fn acquire(self: &Arc<Self>, key_id: &str, limit: u32) -> Result<Slot, u32> {
        let mut counts = self.counts.lock();
        let n = counts.entry(key_id.to_string()).or_insert(0);
        if *n >= limit {
            let running = *n;
            if running == 0 {
                counts.remove(key_id);
            }
            return Err(running);
        }
        *n += 1;
        Ok(Slot {
            owner: self.clone(),
            key_id: key_id.to_string(),
        })
    }

    /// Requests of `key_id` in flight here.
    pub fn running(&self, key_id: &str) -> u32 {
        self.counts.lock().get(key_id).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock();
        if let Some(n) = counts.get_mut(&self.key_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key_id);
            }
        }
    }
}

/// Requests-per-minute limits, per key, over a sliding 60-second window. Held per instance; with several
/// instances each enforces the limit on the traffic it sees.
#[derive(Default)]
pub struct RpmLimiter {
    windows: parking_lot::Mutex<HashMap<String, std::collections::VecDeque<Instant>>>,
}

impl RpmLimiter {
    /// Counts a request; Err(seconds to wait) when the key already made `limit` requests in the last minute.
    pub fn check(&self, key_id: &str, limit: u32) -> Result<(), u64> {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let mut all = self.windows.lock();
        let q = all.entry(key_id.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        if q.len() >= limit as usize {
            let oldest = *q.front().expect("non-empty when at the limit");
            let wait = window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_utc_midnight_monday_and_the_first() {
        // 2026-11-21 (a Saturday) 15:30:00 UTC
        let now = 1_795_275_000_000;
        assert_eq!(LimitReset::Daily.period_start(now), 1_795_219_200_000); // 2026-11-21 00:00
        assert_eq!(LimitReset::Weekly.period_start(now), 1_794_787_200_000); // 2026-11-16 00:00, Monday
        assert_eq!(LimitReset::Monthly.period_start(now), 1_793_491_200_000); // 2026-11-01 00:00
    }

    #[test]
    fn concurrency_slots_are_given_back_when_dropped() {
        let f = Arc::new(InFlight::default());
        let a = f.acquire("k", 2).expect("first");
        let b = f.acquire("k", 2).expect("second");
        assert_eq!(f.acquire("k", 2).err(), Some(2), "third at once");
        assert!(f.acquire("other", 1).is_ok(), "per key");
        drop(a);
        let c = f.acquire("k", 2).expect("a place came back");
        drop((b, c));
        assert_eq!(f.running("k"), 0);
        assert!(f.counts.lock().is_empty(), "nothing kept for idle keys");
        assert_eq!(f.acquire("z", 0).err(), Some(0));
        assert!(f.counts.lock().is_empty());
    }

    #[test]
    fn rpm_allows_the_limit_then_says_how_long_to_wait() {
        let l = RpmLimiter::default();
        for _ in 0..3 {
            assert!(l.check("k", 3).is_ok());
        }
        let wait = l.check("k", 3).expect_err("fourth in a minute");
        assert!((1..=60).contains(&wait));
        assert!(l.check("other", 3).is_ok(), "limits are per key");
    }
}
