//! Single-use, expiring tokens for links sent by email (verify an address, reset a password). Only the
//! SHA-256 of a token is stored; a new token of a purpose ends the older unused ones.

use crate::store::{now_ms, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Verify,
    Reset,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Verify => "verify",
            Purpose::Reset => "reset",
        }
    }

    /// How long a link of this purpose works.
    pub fn ttl_ms(self) -> i64 {
        match self {
            Purpose::Verify => 24 * 3600 * 1000,
            Purpose::Reset => 3600 * 1000,
        }
    }
}

/// 32 random bytes, URL-safe.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new token for `user_id`; earlier unused ones of the same purpose stop working.
pub async fn issue(store: &Store, user_id: &str, purpose: Purpose) -> Result<String, sqlx::Error> {
    let token = random_token();
    let now = now_ms();
    let mut tx = store.writer.begin().await?;
    sqlx::query(
        "UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(purpose.as_str())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO email_tokens (hash, user_id, purpose, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash(&token))
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now + purpose.ttl_ms())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// Uses a token up: the user it was for, if it is of this purpose, unused and unexpired. In the caller's
/// transaction, so that what the token unlocks happens together with its use or not at all.
pub async fn consume(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    token: &str,
    purpose: Purpose,
) -> Result<Option<String>, sqlx::Error> {
    let now = now_ms();
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE email_tokens SET used_at = $1 \
         WHERE hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
    )
    .bind(now)
    .bind(token_hash(token))
    .bind(purpose.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.0))
}
