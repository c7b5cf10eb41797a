//! The server's side of the admin area: every user and organisation of the platform, the dev outbox,
//! and disabling an account. Callers have checked the platform-admin flag.

use super::dashboard::internal;
use crate::billing::ledger;
use crate::money::Nanos;
use crate::state::AppState;
use crate::store::Store;
use switchyard_app::admin::{
    AdminData, AdminOrg, AdminPromo, AdminPurchase, AdminUser, OutboxMailView,
};

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
    type OrderRow = (String, String, i64, i64, i64, String, i64, String);
    let orders: Vec<OrderRow> = sqlx::query_as(
        "SELECT o.id, g.name, o.created_at, o.amount_nanos, o.fee_nanos, o.status, \
                o.refunded_nanos + o.disputed_nanos, o.kind \
         FROM orders o JOIN orgs g ON g.id = o.org_id ORDER BY o.created_at DESC LIMIT 100",
    )
    .fetch_all(&store.pool)
    .await
    .map_err(internal)?;
    let events = crate::billing::purchases::events_to_check(store)
        .await
        .map_err(internal)?;
    Ok(AdminData {
        payment_events: events
            .into_iter()
            .map(
                |(id, kind, outcome, at)| switchyard_app::admin::PaymentEvent {
                    id,
                    kind,
                    outcome: outcome.unwrap_or_default(),
                    received: super::minute(at),
                },
            )
            .collect(),
        purchases: orders
            .into_iter()
            .map(
                |(id, org, at, credits, fee, status, refunded, kind)| AdminPurchase {
                    id,
                    org,
                    date: super::minute(at),
                    credits_usd: Nanos(credits).to_usd_string(),
                    fee_usd: Nanos(fee).to_usd_string(),
                    status,
                    refunded_usd: Nanos(refunded).to_usd_string(),
                    automatic: kind == "auto_topup",
                },
            )
            .collect(),
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        promos: crate::billing::promo::list(store)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|p| AdminPromo {
                code: p.code,
                amount_usd: Nanos(p.amount_nanos).to_usd_string(),
                uses: p.uses,
                max_uses: p.max_uses,
                expires: p.expires_at.map(super::day),
            })
            .collect(),
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

/// A ledger entry by a platform admin: a grant (positive) or an adjustment (negative), with the reason
/// and the admin's id. The form's nonce is the idempotency key, so a form sent twice applies once.
pub async fn adjust_credits(
    store: &Store,
    me: &str,
    org_id: &str,
    amount_usd: &str,
    reason: &str,
    nonce: &str,
) -> Result<String, String> {
    let v = amount_usd.trim().trim_start_matches('$');
    let (negative, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d.trim_start_matches('$')),
        None => (false, v),
    };
    let n = Nanos::parse_usd(digits).map_err(|e| format!("amount: {e}"))?;
    if n.0 == 0 {
        return Err("amount: not zero".into());
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err("reason: say why, in up to 200 characters".into());
    }
    if nonce.trim().len() < 16 {
        return Err("the form is out of date; reload the page".into());
    }
    let name: Option<(String,)> = sqlx::query_as("SELECT name FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_optional(&store.pool)
        .await
        .map_err(internal)?;
    let (name,) = name.ok_or("no such organisation")?;
    let (amount, kind) = if negative {
        (Nanos(-n.0), "adjustment")
    } else {
        (n, "grant")
    };
    let mut tx = store.writer.begin().await.map_err(internal)?;
    let posted = crate::billing::ledger::post(
        &mut tx,
        org_id,
        amount,
        kind,
        &format!("admin:{}", nonce.trim()),
        Some(&format!("admin:{me}")),
        Some(reason),
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    if !posted {
        return Ok("this form was already applied; nothing changed".into());
    }
    tracing::info!(by = %me, org = %org_id, amount = %amount.to_usd_string(), kind, "credits adjusted by a platform admin");
    let verb = if negative { "deducted" } else { "granted" };
    Ok(format!("{verb} ${} for {name}", n.to_usd_string()))
}

/// Disables (or enables again) an account: a disabled person cannot sign in, their sessions end at
/// once, the keys they made stop working (the gateway checks the maker of every key) and their open
/// invitations are revoked. Admins cannot disable themselves (the platform would lose its last way in).
/// Says what the change affected.
pub async fn set_user_disabled(
    store: &Store,
    me: &str,
    user_id: &str,
    disabled: bool,
) -> Result<String, String> {
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
    if !disabled {
        return Ok("account enabled; the keys it made work again".into());
    }
    let r = crate::accounts::orgs::account_disabled(store, user_id)
        .await
        .map_err(internal)?;
    let keys = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut said = format!(
        "account disabled; its sessions have ended, and {} and {} it made stop working",
        keys(r.keys, "API key"),
        keys(r.management_keys, "management key")
    );
    if r.invitations > 0 {
        said.push_str(&format!(
            "; {} revoked",
            keys(r.invitations, "open invitation")
        ));
    }
    Ok(said)
}
