//! Low-balance alerts: every organisation may set a threshold; when its balance falls under it, its
//! owners get one email, and the alert re-arms once the balance is back at or above the threshold. Runs
//! off the request path, every `low_balance_check_ms`; the "announced" flag flips with a conditional
//! update, so with several instances each crossing is announced once.

use crate::money::Nanos;
use crate::state::AppState;

fn usd(n: i64) -> String {
    let s = Nanos(n).to_usd_string();
    let (i, f) = s.split_once('.').unwrap_or((&s, ""));
    format!("${i}.{:0<2}", &f[..f.len().min(2)])
}

/// One pass: announces new crossings and re-arms recovered organisations; returns emails sent.
pub async fn check_once(state: &AppState) -> anyhow::Result<usize> {
    let store = &state.store;
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, name, credits_nanos - usage_nanos, low_balance_nanos, low_balance_notified \
         FROM orgs WHERE low_balance_nanos IS NOT NULL",
    )
    .fetch_all(&store.pool)
    .await?;
    let mut sent = 0;
    for (org, name, balance, threshold, notified) in rows {
        if balance >= threshold && notified != 0 {
            sqlx::query("UPDATE orgs SET low_balance_notified = 0 WHERE id = $1")
                .bind(&org)
                .execute(&store.writer)
                .await?;
            continue;
        }
        if balance >= threshold || notified != 0 {
            continue;
        }
        let claimed = sqlx::query(
            "UPDATE orgs SET low_balance_notified = 1 WHERE id = $1 AND low_balance_notified = 0",
        )
        .bind(&org)
        .execute(&store.writer)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            continue;
        }
        let owners: Vec<(String,)> = sqlx::query_as(
            "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 AND m.role = 'owner' AND u.disabled = 0",
        )
        .bind(&org)
        .fetch_all(&store.pool)
        .await?;
        let link = format!("{}/billing", state.public_url);
        for (email,) in owners {
            let mail =
                crate::mail::low_balance(&email, &name, &usd(balance), &usd(threshold), &link);
            if let Err(e) = state.mailer.send(mail).await {
                tracing::warn!(org = %org, error = %e, "could not send a low-balance email");
            } else {
                sent += 1;
            }
        }
        tracing::info!(org = %org, balance = %Nanos(balance).to_usd_string(), "low-balance alert sent");
    }
    Ok(sent)
}

pub async fn run(state: AppState) {
    let every = crate::config::Config::ms(state.cfg.low_balance_check_ms.max(100));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = check_once(&state).await {
            tracing::warn!(error = %e, "checking low-balance alerts failed; trying again later");
        }
    }
}
