//! The server's side of the account pages: sign-up, sign-in (rate-limited per client address and per
//! account) and the signed-in user's view, for `switchyard_app::account`.

use crate::accounts::{self, AccountError};
use crate::billing::ledger;
use crate::keys::RpmLimiter;
use crate::store::Store;
use switchyard_app::account::backend::{BoxFut, Dashboard};
use switchyard_app::account::SessionUser;
use switchyard_app::keys::{KeyView, NewKeyForm};

pub struct Accounts {
    store: Store,
    attempts: RpmLimiter,
}

/// Sign-in attempts allowed per minute from one address, and against one account.
const PER_CLIENT: u32 = 20;
const PER_ACCOUNT: u32 = 10;
/// Sign-ups allowed per minute from one address.
const SIGNUPS_PER_CLIENT: u32 = 5;

impl Accounts {
    pub fn new(store: Store) -> Self {
        Accounts {
            store,
            attempts: RpmLimiter::default(),
        }
    }

    fn throttle(&self, bucket: &str, limit: u32) -> Result<(), String> {
        self.attempts
            .check(bucket, limit)
            .map_err(|wait| format!("too many attempts; wait {wait} seconds and try again"))
    }
}

/// Logs an internal failure and returns what the person is told instead.
pub fn internal(e: impl std::fmt::Display) -> String {
    message(AccountError::Internal(e.to_string()))
}

fn message(e: AccountError) -> String {
    match e {
        AccountError::Internal(detail) => {
            tracing::error!(error = %detail, "account operation failed");
            "something went wrong on our side; try again in a moment".into()
        }
        other => other.to_string(),
    }
}

impl Dashboard for Accounts {
    fn sign_up<'a>(
        &'a self,
        email: &'a str,
        password: &'a str,
        client: &'a str,
    ) -> BoxFut<'a, Result<String, String>> {
        Box::pin(async move {
            self.throttle(&format!("signup:{client}"), SIGNUPS_PER_CLIENT)?;
            let (user, _) = accounts::sign_up(&self.store, email, password)
                .await
                .map_err(message)?;
            Ok(user.id)
        })
    }

    fn sign_in<'a>(
        &'a self,
        email: &'a str,
        password: &'a str,
        client: &'a str,
    ) -> BoxFut<'a, Result<String, String>> {
        Box::pin(async move {
            self.throttle(&format!("signin:{client}"), PER_CLIENT)?;
            self.throttle(
                &format!("signin-account:{}", email.trim().to_ascii_lowercase()),
                PER_ACCOUNT,
            )?;
            let user = accounts::sign_in(&self.store, email, password)
                .await
                .map_err(message)?;
            Ok(user.id)
        })
    }

    fn session_user<'a>(&'a self, user_id: &'a str) -> BoxFut<'a, Option<SessionUser>> {
        Box::pin(async move {
            let row: Option<(String, i64, i64)> =
                sqlx::query_as("SELECT email, is_admin, disabled FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.store.pool)
                    .await
                    .ok()
                    .flatten();
            let (email, is_admin, disabled) = row?;
            if disabled != 0 {
                return None;
            }
            // The organisation they joined first (their personal one, for a signed-up account).
            let org: Option<(String, String)> = sqlx::query_as(
                "SELECT o.id, o.name FROM memberships m JOIN orgs o ON o.id = m.org_id \
                 WHERE m.user_id = $1 ORDER BY m.created_at, o.name LIMIT 1",
            )
            .bind(user_id)
            .fetch_optional(&self.store.pool)
            .await
            .ok()
            .flatten();
            let (org_name, balance) = match org {
                Some((id, name)) => {
                    let b = ledger::balance(&self.store, &id).await.ok().flatten();
                    (
                        name,
                        b.map(|b| b.balance().to_usd_string())
                            .unwrap_or_else(|| "0".into()),
                    )
                }
                None => ("(no organisation)".into(), "0".into()),
            };
            Some(SessionUser {
                id: user_id.to_string(),
                email,
                is_admin: is_admin != 0,
                org_name,
                balance_usd: balance,
            })
        })
    }

    fn list_keys<'a>(&'a self, user_id: &'a str) -> BoxFut<'a, Result<Vec<KeyView>, String>> {
        Box::pin(super::key_pages::list(&self.store, user_id))
    }

    fn create_key<'a>(
        &'a self,
        user_id: &'a str,
        form: NewKeyForm,
    ) -> BoxFut<'a, Result<String, String>> {
        Box::pin(super::key_pages::create(&self.store, user_id, form))
    }

    fn set_key_disabled<'a>(
        &'a self,
        user_id: &'a str,
        hash: &'a str,
        disabled: bool,
    ) -> BoxFut<'a, Result<(), String>> {
        Box::pin(super::key_pages::set_disabled(
            &self.store,
            user_id,
            hash,
            disabled,
        ))
    }

    fn delete_key<'a>(&'a self, user_id: &'a str, hash: &'a str) -> BoxFut<'a, Result<(), String>> {
        Box::pin(super::key_pages::delete(&self.store, user_id, hash))
    }
}
