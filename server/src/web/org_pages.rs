//! The server's side of the organisation page: its members and open invitations, scoped by the actor.

use super::dashboard::internal;
use crate::accounts::orgs::{self, Actor};
use crate::store::now_ms;
use switchyard_app::orgs::{InvitationRow, MemberView, OrgPageData};

/// How long logged prompts are kept when the organisation did not say.
pub const DEFAULT_PROMPT_RETENTION_DAYS: i64 = 30;

/// Turns prompt logging on or off and sets its retention (1 to 365 days); owners and admins only.
pub async fn set_prompt_logging(
    state: &crate::state::AppState,
    actor: &Actor,
    on: bool,
    retention_days: &str,
) -> Result<String, String> {
    if !actor.role.manages() {
        return Err("only the organisation's owners and admins can change prompt logging".into());
    }
    let days: i64 = match retention_days.trim() {
        "" => DEFAULT_PROMPT_RETENTION_DAYS,
        d => d
            .parse()
            .ok()
            .filter(|n| (1..=365).contains(n))
            .ok_or_else(|| format!("Keep prompts for 1 to 365 days, not {d:?}"))?,
    };
    sqlx::query("UPDATE orgs SET prompt_logging = $1, log_retention_days = $2 WHERE id = $3")
        .bind(on as i64)
        .bind(days)
        .bind(&actor.org_id)
        .execute(&state.store.writer)
        .await
        .map_err(internal)?;
    // Keys carry the setting; read them again so it applies from the next request on this instance
    // (others within the key cache's few seconds).
    state.keys.forget_all();
    tracing::info!(org = %actor.org_id, user = %actor.user_id, on, days, "prompt logging changed");
    Ok(if on {
        format!(
            "Prompt logging is on: prompts and answers of new requests are kept for {days} days"
        )
    } else {
        "Prompt logging is off: new requests keep no prompts or answers".into()
    })
}

pub async fn page(store: &crate::store::Store, actor: &Actor) -> Result<OrgPageData, String> {
    let (name,): (String,) = sqlx::query_as("SELECT name FROM orgs WHERE id = $1")
        .bind(&actor.org_id)
        .fetch_one(&store.pool)
        .await
        .map_err(internal)?;
    let members = orgs::members(store, &actor.org_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|m| MemberView {
            is_you: m.user_id == actor.user_id,
            user_id: m.user_id,
            email: m.email,
            role: m.role,
            joined: super::day(m.joined_at),
        })
        .collect();
    // Who was invited, by whom, is for the people who manage the organisation.
    let invitations = if actor.role.manages() {
        let now = now_ms();
        orgs::open_invitations(store, &actor.org_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|i| InvitationRow {
                id: i.id,
                email: i.email,
                role: i.role,
                invited_by: i.invited_by,
                expires: super::day(i.expires_at),
                expired: i.expires_at <= now,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (logging, retention): (i64, Option<i64>) =
        sqlx::query_as("SELECT prompt_logging, log_retention_days FROM orgs WHERE id = $1")
            .bind(&actor.org_id)
            .fetch_one(&store.pool)
            .await
            .map_err(internal)?;
    Ok(OrgPageData {
        prompt_logging: logging != 0,
        log_retention_days: retention.unwrap_or(DEFAULT_PROMPT_RETENTION_DAYS),
        org_id: actor.org_id.clone(),
        name,
        role: actor.role.as_str().into(),
        members,
        invitations,
    })
}
