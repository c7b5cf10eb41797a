//! The server's side of the organisation page: its members and open invitations, scoped by the actor.

use super::dashboard::internal;
use crate::accounts::orgs::{self, Actor};
use crate::store::now_ms;
use switchyard_app::orgs::{InvitationRow, MemberView, OrgPageData};

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
    Ok(OrgPageData {
        org_id: actor.org_id.clone(),
        name,
        role: actor.role.as_str().into(),
        members,
        invitations,
    })
}
