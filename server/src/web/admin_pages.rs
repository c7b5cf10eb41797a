//! The server's side of the admin area: every user and organisation of the platform, the dev outbox,
//! and disabling an account. Callers have checked the platform-admin flag.

use super::dashboard::internal;
use crate::billing::ledger;
use crate::money::Nanos;
use crate::state::AppState;
use crate::store::Store;
use switchyard_app::admin::{AdminData, AdminOrg, AdminUser, OutboxMailView};

pub async fn overview(state: &AppState, me: &str) -> Result<AdminData, String> {
    let store = &state.store;
    type UserRow = (String, String, i64, Option<i64>, i64, i64, i64);
    let users: Vec<UserRow> = sqlx::query_as(
        "SELECT u.id, u.email, u.created_at, u.email_verified_at, u.is_admin, u.disabled, \
                (SELECT COUNT(*) FROM memberships m WHERE m.user_id = u.id) \
         FROM users u ORDER BY u.created_at DESC LIMIT 500",
    )
    .fetch_all(&store.pool)
    .await
    .map_err(internal)?;
    let orgs: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT o.id, o.name, o.created_at, (SELECT COUNT(*) FROM memberships m WHERE m.org_id = o.id) \
         FROM orgs o ORDER BY o.created_at DESC LIMIT 500",
    )
    .fetch_all(&store.pool)
    .await
    .map_err(internal)?;
    let mut org_views = Vec::with_capacity(orgs.len());
    for (id, name, created, members) in orgs {
        let balance = ledger::balance(store, &id)
            .await
            .map_err(internal)?
            .map_or(Nanos(0), |b| b.balance());
        org_views.push(AdminOrg {
            id,
            name,
            members,
            balance_usd: balance.to_usd_string(),
            created: super::minute(created),
        });
    }
    let outbox = crate::mail::outbox(store, 50)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|m| OutboxMailView {
            id: m.id,
            to: m.to_email,
            subject: m.subject,
            sent: super::minute(m.created_at),
            body: m.text_body,
        })
        .collect();
    Ok(AdminData {
        me: me.to_string(),
        users: users
            .into_iter()
            .map(
                |(id, email, created, verified, admin, disabled, orgs)| AdminUser {
                    id,
                    email,
                    created: super::minute(created),
                    verified: verified.is_some(),
                    is_admin: admin != 0,
                    disabled: disabled != 0,
                    orgs,
                },
            )
            .collect(),
        orgs: org_views,
        outbox,
        outbox_in_use: state.mailer.uses_outbox(),
    })
}

/// Disables (or enables again) an account: a disabled person cannot sign in and their sessions end at
/// once. Admins cannot disable themselves (the platform would lose its last way in).
pub async fn set_user_disabled(
    store: &Store,
    me: &str,
    user_id: &str,
    disabled: bool,
) -> Result<(), String> {
    if me == user_id {
        return Err("you cannot disable your own account".into());
    }
    let n = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
        .bind(disabled as i64)
        .bind(user_id)
        .execute(&store.writer)
        .await
        .map_err(internal)?
        .rows_affected();
    if n == 0 {
        return Err("no such user".into());
    }
    tracing::info!(by = %me, user = %user_id, disabled, "account disabled or enabled by a platform admin");
    Ok(())
}
