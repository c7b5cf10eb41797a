//! Teams: organisations a person creates, renames and switches between; members with roles (owner,
//! admin, member); invitations by email. Every function takes the organisation the caller acts in and
//! the caller's role there, and touches rows of that organisation only. An organisation always keeps at
//! least one owner.

use super::{add_member, tokens, valid_email, AccountError, Org, Role};
use crate::store::{is_unique_violation, new_id, now_ms, Store};

/// Invitations work for a week.
pub const INVITATION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim() {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// Owners and admins manage the organisation: its members, invitations, name and every key.
    pub fn manages(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// The caller: who acts, in which organisation, with which role there.
#[derive(Clone, Debug)]
pub struct Actor {
    pub user_id: String,
    pub org_id: String,
    pub role: Role,
}

impl Actor {
    fn require_manager(&self) -> Result<(), AccountError> {
        if self.role.manages() {
            Ok(())
        } else {
            Err(AccountError::Refused(
                "only the organisation's owners and admins can do that".into(),
            ))
        }
    }
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct Membership {
    pub org_id: String,
    pub org_name: String,
    pub role: String,
}

/// Every organisation the user belongs to, in the order they joined.
pub async fn memberships(store: &Store, user_id: &str) -> Result<Vec<Membership>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.org_id, o.name AS org_name, m.role FROM memberships m JOIN orgs o ON o.id = m.org_id \
         WHERE m.user_id = $1 ORDER BY m.created_at, o.name",
    )
    .bind(user_id)
    .fetch_all(&store.pool)
    .await
}

fn checked_name(name: &str) -> Result<&str, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AccountError::Refused(
            "name: 1 to 100 characters, please".into(),
        ));
    }
    Ok(name)
}

fn name_taken(name: &str) -> AccountError {
    AccountError::Refused(format!(
        "name: an organisation named “{name}” already exists on this platform; choose another"
    ))
}

/// A new organisation owned by the user.
pub async fn create(store: &Store, user_id: &str, name: &str) -> Result<Org, AccountError> {
    let name = checked_name(name)?;
    let now = now_ms();
    let org = Org {
        id: new_id(),
        name: name.to_string(),
    };
    let mut tx = store.writer.begin().await?;
    let inserted = sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&org.id)
        .bind(&org.name)
        .bind(now)
        .execute(&mut *tx)
        .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Err(name_taken(name)),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    add_member(&mut tx, &org.id, user_id, Role::Owner, now).await?;
    tx.commit().await?;
    tracing::info!(org = %org.id, by = %user_id, "organisation created");
    Ok(org)
}

pub async fn rename(store: &Store, actor: &Actor, name: &str) -> Result<(), AccountError> {
    actor.require_manager()?;
    let name = checked_name(name)?;
    let r = sqlx::query("UPDATE orgs SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(&actor.org_id)
        .execute(&store.writer)
        .await;
    match r {
        Err(e) if is_unique_violation(&e) => Err(name_taken(name)),
        Err(e) => Err(e.into()),
        Ok(_) => {
            tracing::info!(org = %actor.org_id, by = %actor.user_id, "organisation renamed");
            Ok(())
        }
    }
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub joined_at: i64,
}

pub async fn members(store: &Store, org_id: &str) -> Result<Vec<Member>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, u.email, m.role, m.created_at AS joined_at FROM memberships m \
         JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 \
         ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.email",
    )
    .bind(org_id)
    .fetch_all(&store.pool)
    .await
}

/// Starts a transaction holding the organisation's row, so that concurrent role changes and removals
/// in one organisation happen one after the other (the "one owner remains" check stays true).
async fn locked(
    store: &Store,
    org_id: &str,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    let mut tx = store.writer.begin().await?;
    sqlx::query("UPDATE orgs SET name = name WHERE id = $1")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

async fn role_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org_id: &str,
    user_id: &str,
) -> Result<Option<Role>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.and_then(|r| Role::parse(&r.0)))
}

async fn owner_count(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org_id: &str,
) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner'")
            .bind(org_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(n)
}

const LAST_OWNER: &str =
    "an organisation needs at least one owner: make another member owner first";

/// What a change took from a person in an organisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Keys disabled (removal).
    pub keys: u64,
    /// Management keys that stop working (the person may no longer manage keys).
    pub management_keys: u64,
    /// Open invitations they sent, revoked.
    pub invitations: u64,
}

impl Revoked {
    /// "…; 2 management keys they made stop working and 1 invitation they sent is revoked".
    pub fn describe(&self, what: &str) -> String {
        let mut parts = Vec::new();
        let n = |k: u64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        if self.keys > 0 {
            parts.push(format!(
                "{} they made here {} disabled",
                n(self.keys, "key", "keys"),
                if self.keys == 1 { "is" } else { "are" }
            ));
        }
        if self.management_keys > 0 {
            parts.push(format!(
                "{} they made {} working",
                n(self.management_keys, "management key", "management keys"),
                if self.management_keys == 1 {
                    "stops"
                } else {
                    "stop"
                }
            ));
        }
        if self.invitations > 0 {
            parts.push(format!(
                "{} they sent {} revoked",
                n(self.invitations, "open invitation", "open invitations"),
                if self.invitations == 1 { "is" } else { "are" }
            ));
        }
        if parts.is_empty() {
            what.to_string()
        } else {
            format!("{what}; {}", parts.join(", "))
        }
    }
}

/// Revokes the open invitations a person sent (in one organisation, or in all).
async fn revoke_invitations_by(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org: Option<&str>,
    user: &str,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE invitations SET revoked_at = $1 WHERE invited_by = $2 AND ($3 = '' OR org_id = $3) \
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now_ms())
    .bind(user)
    .bind(org.unwrap_or(""))
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected())
}

/// A disabled account's open invitations are revoked, and its keys stop working (the gateway checks
/// the account of a key's maker on every lookup); returns what was affected.
pub async fn account_disabled(store: &Store, user: &str) -> Result<Revoked, sqlx::Error> {
    let mut tx = store.writer.begin().await?;
    let invitations = revoke_invitations_by(&mut tx, None, user).await?;
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, COUNT(*) FROM api_keys WHERE created_by = $1 AND revoked_at IS NULL AND disabled = 0 GROUP BY kind",
    )
    .bind(user)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let of = |k: &str| {
        counts
            .iter()
            .find(|(kind, _)| kind == k)
            .map_or(0, |(_, n)| *n as u64)
    };
    Ok(Revoked {
        keys: of("inference"),
        management_keys: of("management"),
        invitations,
    })
}

/// Changes a member's role. Admins change members and admins; only owners make or unmake owners. A
/// person who becomes a member loses what managing gave them: their management keys stop working (the
/// gateway checks the maker's role on every lookup) and their open invitations are revoked.
pub async fn set_role(
    store: &Store,
    actor: &Actor,
    target: &str,
    role: Role,
) -> Result<Revoked, AccountError> {
    actor.require_manager()?;
    let mut tx = locked(store, &actor.org_id).await?;
    let Some(current) = role_in(&mut tx, &actor.org_id, target).await? else {
        return Err(AccountError::NotFound("member in this organisation"));
    };
    if (current == Role::Owner || role == Role::Owner) && actor.role != Role::Owner {
        return Err(AccountError::Refused(
            "only an owner can make someone owner or change an owner's role".into(),
        ));
    }
    if current == Role::Owner
        && role != Role::Owner
        && owner_count(&mut tx, &actor.org_id).await? <= 1
    {
        return Err(AccountError::Refused(LAST_OWNER.into()));
    }
    sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3")
        .bind(role.as_str())
        .bind(&actor.org_id)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    let mut revoked = Revoked::default();
    if current.manages() && !role.manages() {
        revoked.invitations = revoke_invitations_by(&mut tx, Some(&actor.org_id), target).await?;
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM api_keys WHERE org_id = $1 AND created_by = $2 AND kind = 'management' \
             AND revoked_at IS NULL AND disabled = 0",
        )
        .bind(&actor.org_id)
        .bind(target)
        .fetch_one(&mut *tx)
        .await?;
        revoked.management_keys = n as u64;
    }
    tx.commit().await?;
    tracing::info!(org = %actor.org_id, by = %actor.user_id, member = %target, role = role.as_str(),
        management_keys = revoked.management_keys, invitations = revoked.invitations, "role changed");
    Ok(revoked)
}

/// Removes a member (or, with `target` the actor, leaves). The keys they created in the organisation
/// are disabled: a person who is no longer a member must not keep spending its credits. Admins and
/// owners can re-enable them on the keys page.
pub async fn remove_member(
    store: &Store,
    actor: &Actor,
    target: &str,
) -> Result<Revoked, AccountError> {
    let leaving = target == actor.user_id;
    if !leaving {
        actor.require_manager()?;
    }
    let mut tx = locked(store, &actor.org_id).await?;
    let Some(current) = role_in(&mut tx, &actor.org_id, target).await? else {
        return Err(AccountError::NotFound("member in this organisation"));
    };
    if !leaving && current == Role::Owner && actor.role != Role::Owner {
        return Err(AccountError::Refused(
            "only an owner can remove an owner".into(),
        ));
    }
    if current == Role::Owner && owner_count(&mut tx, &actor.org_id).await? <= 1 {
        return Err(AccountError::Refused(LAST_OWNER.into()));
    }
    sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(&actor.org_id)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    let disabled = sqlx::query(
        "UPDATE api_keys SET disabled = 1, updated_at = $1 \
         WHERE org_id = $2 AND created_by = $3 AND revoked_at IS NULL AND disabled = 0",
    )
    .bind(now_ms())
    .bind(&actor.org_id)
    .bind(target)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let invitations = revoke_invitations_by(&mut tx, Some(&actor.org_id), target).await?;
    tx.commit().await?;
    tracing::info!(org = %actor.org_id, by = %actor.user_id, member = %target, leaving, keys_disabled = disabled, invitations, "member removed");
    Ok(Revoked {
        keys: disabled,
        management_keys: 0,
        invitations,
    })
}

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// Invites an address; returns the invitation's id and its token (for the emailed link). A second
/// invitation of the same address replaces the first.
pub async fn invite(
    store: &Store,
    actor: &Actor,
    email: &str,
    role: Role,
) -> Result<(String, String), AccountError> {
    actor.require_manager()?;
    if role == Role::Owner && actor.role != Role::Owner {
        return Err(AccountError::Refused(
            "role: only an owner can invite an owner".into(),
        ));
    }
    let email = email.trim().to_ascii_lowercase();
    if !valid_email(&email) {
        return Err(AccountError::Refused(format!(
            "email: {email:?} is not an email address"
        )));
    }
    let now = now_ms();
    let mut tx = store.writer.begin().await?;
    let member: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND u.email = $2",
    )
    .bind(&actor.org_id)
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    if member.is_some() {
        return Err(AccountError::Refused(format!(
            "email: {email} is already a member"
        )));
    }
    sqlx::query(
        "UPDATE invitations SET revoked_at = $1 \
         WHERE org_id = $2 AND email = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(&actor.org_id)
    .bind(&email)
    .execute(&mut *tx)
    .await?;
    let (id, token) = (new_id(), tokens::random_token());
    sqlx::query(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&actor.org_id)
    .bind(&email)
    .bind(role.as_str())
    .bind(tokens::token_hash(&token))
    .bind(&actor.user_id)
    .bind(now + INVITATION_TTL_MS)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(org = %actor.org_id, by = %actor.user_id, invitation = %id, "invitation created");
    Ok((id, token))
}

/// Invitations not yet accepted or revoked (expired ones included, to be re-sent or revoked).
pub async fn open_invitations(store: &Store, org_id: &str) -> Result<Vec<Invitation>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.id, i.email, i.role, u.email AS invited_by, i.expires_at, i.created_at \
         FROM invitations i LEFT JOIN users u ON u.id = i.invited_by \
         WHERE i.org_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL ORDER BY i.created_at DESC",
    )
    .bind(org_id)
    .fetch_all(&store.pool)
    .await
}

pub async fn revoke_invitation(store: &Store, actor: &Actor, id: &str) -> Result<(), AccountError> {
    actor.require_manager()?;
    let n = sqlx::query(
        "UPDATE invitations SET revoked_at = $1 \
         WHERE id = $2 AND org_id = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now_ms())
    .bind(id)
    .bind(&actor.org_id)
    .execute(&store.writer)
    .await?
    .rows_affected();
    if n == 1 {
        Ok(())
    } else {
        Err(AccountError::NotFound("invitation"))
    }
}

/// An invitation as its link shows it.
#[derive(Clone, Debug)]
pub struct InvitationDetails {
    pub org_id: String,
    pub org_name: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    pub expires_at: i64,
    /// "pending", "expired", "accepted" or "revoked".
    pub state: &'static str,
    /// Whether an account with the invited address exists.
    pub account_exists: bool,
}

pub async fn invitation_by_token(
    store: &Store,
    token: &str,
) -> Result<Option<InvitationDetails>, sqlx::Error> {
    type Row = (
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        Option<i64>,
        Option<i64>,
        Option<String>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT i.org_id, o.name, i.email, i.role, u.email, i.expires_at, i.accepted_at, i.revoked_at, a.id \
         FROM invitations i JOIN orgs o ON o.id = i.org_id LEFT JOIN users u ON u.id = i.invited_by \
         LEFT JOIN users a ON a.email = i.email WHERE i.token_hash = $1",
    )
    .bind(tokens::token_hash(token))
    .fetch_optional(&store.pool)
    .await?;
    Ok(row.map(
        |(org_id, org_name, email, role, invited_by, expires_at, accepted, revoked, account)| {
            let state = if accepted.is_some() {
                "accepted"
            } else if revoked.is_some() {
                "revoked"
            } else if expires_at <= now_ms() {
                "expired"
            } else {
                "pending"
            };
            InvitationDetails {
                org_id,
                org_name,
                email,
                role,
                invited_by,
                expires_at,
                state,
                account_exists: account.is_some(),
            }
        },
    ))
}

/// Accepts an invitation for the signed-in user, whose address must be the invited one (the link
/// went to that address, which therefore counts as verified). Returns the organisation joined.
pub async fn accept(store: &Store, token: &str, user_id: &str) -> Result<Org, AccountError> {
    let now = now_ms();
    let mut tx = store.writer.begin().await?;
    let row: Option<(String, String, String, String)> = sqlx::query_as(
        "SELECT i.id, i.org_id, i.email, i.role FROM invitations i \
         WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > $2",
    )
    .bind(tokens::token_hash(token))
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, org_id, email, role)) = row else {
        return Err(AccountError::Refused(
            "this invitation is invalid, used, revoked or expired; ask for a new one".into(),
        ));
    };
    let (user_email,): (String,) = sqlx::query_as("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    if user_email != email {
        return Err(AccountError::Refused(format!(
            "this invitation is for {email}; sign in with that address to accept it"
        )));
    }
    let role = Role::parse(&role).unwrap_or(Role::Member);
    let already: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(&org_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    if already.is_none() {
        add_member(&mut tx, &org_id, user_id, role, now).await?;
    }
    sqlx::query("UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3")
        .bind(now)
        .bind(user_id)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) WHERE id = $2",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let (name,): (String,) = sqlx::query_as("SELECT name FROM orgs WHERE id = $1")
        .bind(&org_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(org = %org_id, user = %user_id, invitation = %id, "invitation accepted");
    Ok(Org { id: org_id, name })
}
