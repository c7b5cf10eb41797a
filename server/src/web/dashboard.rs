//! The server's side of the dashboard pages (`switchyard_app`'s `Dashboard` trait): accounts, email
//! links, organisations, members, invitations, keys and the admin area. Every call first resolves who
//! asks into an `Actor` (user, organisation, role), re-checked against the database on every request,
//! and every query after that is scoped by it. Sign-in, sign-up and reset are rate-limited.

use super::throttle::Throttle;
use crate::accounts::orgs::{self, Actor};
use crate::accounts::{self, tokens, AccountError, Role};
use crate::billing::ledger;
use crate::state::AppState;
use crate::store::Store;
use switchyard_app::account::backend::{BoxFut, Dashboard, Who};
use switchyard_app::account::{OrgChoice, SessionUser};
use switchyard_app::admin::AdminData;
use switchyard_app::billing::{BillingData, OrderView};
use switchyard_app::keys::{KeyView, NewKeyForm};
use switchyard_app::orgs::{InvitationView, OrgPageData};

pub struct Accounts {
    state: AppState,
    attempts: Throttle,
}

/// Sign-in attempts allowed per minute from one address, and against one account.
const PER_CLIENT: u32 = 20;
const PER_ACCOUNT: u32 = 10;
/// Sign-ups allowed per minute from one address.
const SIGNUPS_PER_CLIENT: u32 = 5;
/// Reset and verification emails per minute, per address asking and per account.
const EMAILS_PER_CLIENT: u32 = 5;
const EMAILS_PER_ACCOUNT: u32 = 3;

type Res<'a, T> = BoxFut<'a, Result<T, String>>;

impl Accounts {
    pub fn new(state: AppState) -> Self {
        Accounts {
            state,
            attempts: Throttle::default(),
        }
    }

    fn store(&self) -> &Store {
        &self.state.store
    }

    fn throttle(&self, kind: &'static str, id: &str, limit: u32) -> Result<(), String> {
        self.attempts
            .check(kind, id, limit)
            .map_err(|wait| format!("too many attempts; wait {wait} seconds and try again"))
    }

    fn link(&self, path: &str, token: &str) -> String {
        format!("{}/{path}?token={token}", self.state.public_url)
    }

    async fn send_verification_to(&self, user_id: &str, email: &str) -> Result<(), String> {
        self.throttle("verify-mail", user_id, EMAILS_PER_ACCOUNT)?;
        let token = tokens::issue(self.store(), user_id, tokens::Purpose::Verify)
            .await
            .map_err(internal)?;
        self.state
            .mailer
            .send(crate::mail::verify_email(
                email,
                &self.link("verify", &token),
            ))
            .await
            .map_err(internal)
    }

    /// The actor, and whether their address is verified (to create keys and invite people).
    async fn verified_actor(&self, who: &Who) -> Result<Actor, String> {
        let actor = resolve(self.store(), who).await?;
        let (verified,): (Option<i64>,) =
            sqlx::query_as("SELECT email_verified_at FROM users WHERE id = $1")
                .bind(&actor.user_id)
                .fetch_one(&self.store().pool)
                .await
                .map_err(internal)?;
        if verified.is_none() {
            return Err(
                "confirm your email address first: open the link we sent you (or send a new one from the banner at the top)"
                    .into(),
            );
        }
        Ok(actor)
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

const SIGN_IN_FIRST: &str = "sign in first";

/// The signed-in user, if the account is enabled and the session began after the last password change.
pub async fn resolve_user(store: &Store, who: &Who) -> Result<(String, bool), String> {
    let row: Option<(i64, i64, Option<i64>)> =
        sqlx::query_as("SELECT is_admin, disabled, password_changed_at FROM users WHERE id = $1")
            .bind(&who.user_id)
            .fetch_optional(&store.pool)
            .await
            .map_err(internal)?;
    match row {
        Some((is_admin, 0, changed)) if changed.is_none_or(|c| c / 1000 <= who.signed_in_at) => {
            Ok((who.user_id.clone(), is_admin != 0))
        }
        _ => Err(SIGN_IN_FIRST.into()),
    }
}

fn parse_role(role: &str) -> Result<Role, String> {
    Role::parse(role).ok_or_else(|| "role: choose member, admin or owner".to_string())
}

/// The signed-in user's id, if they are a platform admin.
async fn platform_admin(store: &Store, who: &Who) -> Result<String, String> {
    match resolve_user(store, who).await? {
        (id, true) => Ok(id),
        _ => Err("only platform admins can do that".into()),
    }
}

/// Who acts, where, as what: the session's organisation if they still belong to it, else the first
/// they joined.
pub async fn resolve(store: &Store, who: &Who) -> Result<Actor, String> {
    let (user_id, _) = resolve_user(store, who).await?;
    let all = orgs::memberships(store, &user_id).await.map_err(internal)?;
    let chosen = who
        .org_id
        .as_deref()
        .and_then(|o| all.iter().find(|m| m.org_id == o))
        .or(all.first())
        .ok_or("you are not a member of any organisation; create one on the organisation page")?;
    Ok(Actor {
        user_id,
        org_id: chosen.org_id.clone(),
        role: Role::parse(&chosen.role).unwrap_or(Role::Member),
    })
}

/// The actor of a signed-in user working in their first organisation (scripts and tests).
pub async fn actor_for(store: &Store, user_id: &str) -> Result<Actor, String> {
    resolve(
        store,
        &Who {
            user_id: user_id.into(),
            org_id: None,
            signed_in_at: i64::MAX / 2000,
        },
    )
    .await
}

impl Dashboard for Accounts {
    fn sign_up<'a>(
        &'a self,
        email: &'a str,
        password: &'a str,
        client: &'a str,
    ) -> Res<'a, String> {
        Box::pin(async move {
            self.throttle("signup", client, SIGNUPS_PER_CLIENT)?;
            let (user, _) = accounts::sign_up(self.store(), email, password)
                .await
                .map_err(message)?;
            // The account exists whatever the mail server says; the banner offers to send again.
            if let Err(e) = self.send_verification_to(&user.id, &user.email).await {
                tracing::warn!(user = %user.id, error = %e, "could not send the verification email");
            }
            Ok(user.id)
        })
    }

    fn sign_in<'a>(
        &'a self,
        email: &'a str,
        password: &'a str,
        client: &'a str,
    ) -> Res<'a, String> {
        Box::pin(async move {
            self.throttle("signin", client, PER_CLIENT)?;
            // Only an address can have an account: anything else is refused before it is counted (or
            // kept), and addresses are counted as the account lookup reads them.
            let email = email.trim().to_ascii_lowercase();
            if !accounts::valid_email(&email) {
                return Err(message(accounts::AccountError::InvalidCredentials));
            }
            self.throttle("signin-account", &email, PER_ACCOUNT)?;
            let user = accounts::sign_in(self.store(), &email, password)
                .await
                .map_err(message)?;
            Ok(user.id)
        })
    }

    fn session_user<'a>(&'a self, who: &'a Who) -> BoxFut<'a, Option<SessionUser>> {
        Box::pin(async move {
            let store = self.store();
            let (user_id, is_admin) = resolve_user(store, who).await.ok()?;
            let (email, verified): (String, Option<i64>) =
                sqlx::query_as("SELECT email, email_verified_at FROM users WHERE id = $1")
                    .bind(&user_id)
                    .fetch_one(&store.pool)
                    .await
                    .ok()?;
            let all = orgs::memberships(store, &user_id).await.ok()?;
            let actor = resolve(store, who).await.ok();
            let (org_id, org_name, role, balance) = match &actor {
                Some(a) => {
                    let name = all
                        .iter()
                        .find(|m| m.org_id == a.org_id)
                        .map(|m| m.org_name.clone())
                        .unwrap_or_default();
                    let b = ledger::balance(store, &a.org_id).await.ok().flatten();
                    (
                        a.org_id.clone(),
                        name,
                        a.role.as_str().to_string(),
                        b.map(|b| b.balance().to_usd_string())
                            .unwrap_or_else(|| "0".into()),
                    )
                }
                None => (
                    String::new(),
                    "(no organisation)".into(),
                    String::new(),
                    "0".into(),
                ),
            };
            Some(SessionUser {
                id: user_id,
                email,
                is_admin,
                email_verified: verified.is_some(),
                org_id,
                org_name,
                role,
                balance_usd: balance,
                orgs: all
                    .into_iter()
                    .map(|m| OrgChoice {
                        id: m.org_id,
                        name: m.org_name,
                        role: m.role,
                    })
                    .collect(),
            })
        })
    }

    fn send_verification<'a>(&'a self, who: &'a Who) -> Res<'a, ()> {
        Box::pin(async move {
            let (user_id, _) = resolve_user(self.store(), who).await?;
            let (email, verified): (String, Option<i64>) =
                sqlx::query_as("SELECT email, email_verified_at FROM users WHERE id = $1")
                    .bind(&user_id)
                    .fetch_one(&self.store().pool)
                    .await
                    .map_err(internal)?;
            if verified.is_some() {
                return Err("your email address is already confirmed".into());
            }
            self.send_verification_to(&user_id, &email).await
        })
    }

    fn verify_email<'a>(&'a self, token: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            accounts::verify_email(self.store(), token)
                .await
                .map_err(message)
        })
    }

    fn request_reset<'a>(&'a self, email: &'a str, client: &'a str) -> Res<'a, ()> {
        Box::pin(async move {
            self.throttle("reset", client, EMAILS_PER_CLIENT)?;
            let email = email.trim().to_ascii_lowercase();
            if !accounts::valid_email(&email) {
                return Err(format!("email: {email:?} is not an email address"));
            }
            let Some(user_id) = accounts::find_enabled_user(self.store(), &email)
                .await
                .map_err(message)?
            else {
                // Same answer as for an account: the page does not tell who has one.
                tracing::info!("password reset asked for an address without an account");
                return Ok(());
            };
            // Beyond the per-account limit, quietly send nothing (the answer must not differ).
            if self
                .throttle("reset-account", &user_id, EMAILS_PER_ACCOUNT)
                .is_err()
            {
                tracing::warn!(user = %user_id, "password reset emails for this account are being rate-limited");
                return Ok(());
            }
            let token = tokens::issue(self.store(), &user_id, tokens::Purpose::Reset)
                .await
                .map_err(internal)?;
            self.state
                .mailer
                .send(crate::mail::reset_password(
                    &email,
                    &self.link("reset", &token),
                ))
                .await
                .map_err(internal)
        })
    }

    fn reset_password<'a>(
        &'a self,
        token: &'a str,
        password: &'a str,
        client: &'a str,
    ) -> Res<'a, String> {
        Box::pin(async move {
            self.throttle("reset-use", client, PER_CLIENT)?;
            let user = accounts::reset_password(self.store(), token, password)
                .await
                .map_err(message)?;
            Ok(user.id)
        })
    }

    fn list_keys<'a>(&'a self, who: &'a Who) -> Res<'a, Vec<KeyView>> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::key_pages::list(self.store(), &actor).await
        })
    }

    fn create_key<'a>(&'a self, who: &'a Who, form: NewKeyForm) -> Res<'a, String> {
        Box::pin(async move {
            let actor = self.verified_actor(who).await?;
            super::key_pages::create(self.store(), &actor, form).await
        })
    }

    fn update_key<'a>(&'a self, who: &'a Who, hash: &'a str, form: NewKeyForm) -> Res<'a, ()> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::key_pages::update(self.store(), &actor, hash, form).await?;
            // This instance applies the change at once (others within the key cache's TTL).
            self.state.keys.forget_all();
            Ok(())
        })
    }

    fn set_key_disabled<'a>(&'a self, who: &'a Who, hash: &'a str, disabled: bool) -> Res<'a, ()> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::key_pages::set_disabled(self.store(), &actor, hash, disabled).await
        })
    }

    fn delete_key<'a>(&'a self, who: &'a Who, hash: &'a str) -> Res<'a, ()> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::key_pages::delete(self.store(), &actor, hash).await
        })
    }

    fn list_management_keys<'a>(&'a self, who: &'a Who) -> Res<'a, Option<Vec<KeyView>>> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::key_pages::list_management(self.store(), &actor).await
        })
    }

    fn create_management_key<'a>(&'a self, who: &'a Who, name: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            let actor = self.verified_actor(who).await?;
            super::key_pages::create_management(self.store(), &actor, name).await
        })
    }

    fn delete_management_key<'a>(&'a self, who: &'a Who, hash: &'a str) -> Res<'a, ()> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::key_pages::delete_management(self.store(), &actor, hash).await
        })
    }

    fn billing<'a>(&'a self, who: &'a Who, page: u32) -> Res<'a, BillingData> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::billing_pages::page(&self.state, &actor, page).await
        })
    }

    fn set_low_balance<'a>(&'a self, who: &'a Who, amount_usd: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::billing_pages::set_low_balance(self.store(), &actor, amount_usd).await
        })
    }

    fn redeem_promo<'a>(&'a self, who: &'a Who, code: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            // A confirmed address: a code's credits go to people, not to throwaway sign-ups.
            let actor = self.verified_actor(who).await?;
            self.throttle("promo", &actor.user_id, 10)?;
            let n =
                crate::billing::promo::redeem(self.store(), &actor.org_id, &actor.user_id, code)
                    .await?;
            Ok(format!("${} of credits added", n.to_usd_string()))
        })
    }

    fn admin_create_promo<'a>(
        &'a self,
        who: &'a Who,
        form: switchyard_app::admin::PromoForm,
    ) -> Res<'a, String> {
        Box::pin(async move {
            let me = platform_admin(self.store(), who).await?;
            let amount =
                crate::money::Nanos::parse_usd(form.amount_usd.trim().trim_start_matches('$'))
                    .map_err(|e| format!("amount: {e}"))?;
            let uses: i64 = form
                .uses
                .trim()
                .parse()
                .map_err(|_| "uses: a whole number".to_string())?;
            let expires = match form.expires.trim() {
                "" => None,
                v => {
                    let fmt = time::macros::format_description!("[year]-[month]-[day]");
                    let d = time::Date::parse(v, &fmt)
                        .map_err(|_| "expires on: use a date like 2027-01-31".to_string())?;
                    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
                }
            };
            crate::billing::promo::create(self.store(), &me, &form.code, amount, uses, expires)
                .await
        })
    }

    fn buy_credits<'a>(
        &'a self,
        who: &'a Who,
        amount_usd: &'a str,
        save_card: bool,
    ) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            crate::billing::purchases::start_checkout(&self.state, &actor, amount_usd, save_card)
                .await
        })
    }

    fn set_auto_topup<'a>(
        &'a self,
        who: &'a Who,
        enabled: bool,
        below_usd: &'a str,
        add_usd: &'a str,
    ) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            crate::billing::topup::configure(&self.state, &actor, enabled, below_usd, add_usd).await
        })
    }

    fn remove_card<'a>(&'a self, who: &'a Who) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            crate::billing::topup::remove_card(&self.state, &actor).await
        })
    }

    fn catalog_admin<'a>(
        &'a self,
        who: &'a Who,
    ) -> Res<'a, switchyard_app::catalog_admin::CatalogAdmin> {
        Box::pin(async move {
            platform_admin(self.store(), who).await?;
            crate::catalog::admin::page(&self.state).await
        })
    }

    fn catalog_change<'a>(
        &'a self,
        who: &'a Who,
        op: switchyard_app::catalog_admin::CatalogOp,
    ) -> Res<'a, String> {
        Box::pin(async move {
            let me = platform_admin(self.store(), who).await?;
            crate::catalog::admin::change(&self.state, &me, op).await
        })
    }

    fn test_provider<'a>(&'a self, who: &'a Who, id: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            platform_admin(self.store(), who).await?;
            crate::catalog::admin::test_provider(&self.state, id).await
        })
    }

    fn provider_models<'a>(
        &'a self,
        who: &'a Who,
        id: &'a str,
    ) -> Res<'a, switchyard_app::catalog_admin::UpstreamList> {
        Box::pin(async move {
            platform_admin(self.store(), who).await?;
            crate::catalog::admin::provider_models(&self.state, id).await
        })
    }

    fn catalog_import_preview<'a>(
        &'a self,
        who: &'a Who,
        json: &'a str,
        provider_id: &'a str,
    ) -> Res<'a, switchyard_app::catalog_admin::ImportDiff> {
        Box::pin(async move {
            platform_admin(self.store(), who).await?;
            crate::catalog::import::preview(&self.state.store, json, provider_id).await
        })
    }

    fn set_billing_name<'a>(&'a self, who: &'a Who, name: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::billing_pages::set_billing_name(self.store(), &actor, name).await
        })
    }

    fn order<'a>(&'a self, who: &'a Who, id: &'a str) -> Res<'a, OrderView> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::billing_pages::order(&self.state, &actor, id).await
        })
    }

    fn org_page<'a>(&'a self, who: &'a Who) -> Res<'a, OrgPageData> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::org_pages::page(self.store(), &actor).await
        })
    }

    fn create_org<'a>(&'a self, who: &'a Who, name: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            let (user_id, _) = resolve_user(self.store(), who).await?;
            let org = orgs::create(self.store(), &user_id, name)
                .await
                .map_err(message)?;
            Ok(org.id)
        })
    }

    fn check_membership<'a>(&'a self, who: &'a Who, org_id: &'a str) -> Res<'a, ()> {
        Box::pin(async move {
            let (user_id, _) = resolve_user(self.store(), who).await?;
            let all = orgs::memberships(self.store(), &user_id)
                .await
                .map_err(internal)?;
            if all.iter().any(|m| m.org_id == org_id) {
                Ok(())
            } else {
                Err(message(AccountError::NotFound("organisation")))
            }
        })
    }

    fn rename_org<'a>(&'a self, who: &'a Who, name: &'a str) -> Res<'a, ()> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            orgs::rename(self.store(), &actor, name)
                .await
                .map_err(message)
        })
    }

    fn invite<'a>(&'a self, who: &'a Who, email: &'a str, role: &'a str) -> Res<'a, ()> {
        Box::pin(async move {
            let actor = self.verified_actor(who).await?;
            let role = parse_role(role)?;
            self.throttle("invite", &actor.user_id, 20)?;
            let (_, token) = orgs::invite(self.store(), &actor, email, role)
                .await
                .map_err(message)?;
            let (inviter, org): (String, String) = sqlx::query_as(
                "SELECT u.email, o.name FROM users u, orgs o WHERE u.id = $1 AND o.id = $2",
            )
            .bind(&actor.user_id)
            .bind(&actor.org_id)
            .fetch_one(&self.store().pool)
            .await
            .map_err(internal)?;
            let expires = super::day(crate::store::now_ms() + orgs::INVITATION_TTL_MS);
            let to = email.trim().to_ascii_lowercase();
            let link = self.link("invite", &token);
            self.state
                .mailer
                .send(crate::mail::invitation(&crate::mail::Invite {
                    to: &to,
                    inviter: &inviter,
                    org: &org,
                    role: role.as_str(),
                    expires: &expires,
                    link: &link,
                }))
                .await
                .map_err(internal)
        })
    }

    fn revoke_invitation<'a>(&'a self, who: &'a Who, id: &'a str) -> Res<'a, ()> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            orgs::revoke_invitation(self.store(), &actor, id)
                .await
                .map_err(message)
        })
    }

    fn set_role<'a>(&'a self, who: &'a Who, user_id: &'a str, role: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            let role = parse_role(role)?;
            let r = orgs::set_role(self.store(), &actor, user_id, role)
                .await
                .map(|r| r.describe("role changed"))
                .map_err(message);
            // The member's management keys stop at once here (other instances within the cache TTL).
            self.state.keys.forget_all();
            r
        })
    }

    fn remove_member<'a>(&'a self, who: &'a Who, user_id: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            let r = orgs::remove_member(self.store(), &actor, user_id)
                .await
                .map(|r| r.describe("member removed"))
                .map_err(message);
            self.state.keys.forget_all();
            r
        })
    }

    fn invitation<'a>(&'a self, token: &'a str, who: Option<&'a Who>) -> Res<'a, InvitationView> {
        Box::pin(async move {
            let signed_in_as = match who {
                Some(w) => match resolve_user(self.store(), w).await {
                    Ok((id, _)) => {
                        let (email,): (String,) =
                            sqlx::query_as("SELECT email FROM users WHERE id = $1")
                                .bind(&id)
                                .fetch_one(&self.store().pool)
                                .await
                                .map_err(internal)?;
                        Some(email)
                    }
                    Err(_) => None,
                },
                None => None,
            };
            let i = orgs::invitation_by_token(self.store(), token)
                .await
                .map_err(internal)?
                .ok_or("this invitation link is not valid; ask the person who invited you for a new one")?;
            Ok(InvitationView {
                org_name: i.org_name,
                email: i.email,
                role: i.role,
                invited_by: i.invited_by,
                expires: super::day(i.expires_at),
                state: i.state.into(),
                account_exists: i.account_exists,
                signed_in_as,
            })
        })
    }

    fn accept_invitation<'a>(&'a self, who: &'a Who, token: &'a str) -> Res<'a, String> {
        Box::pin(async move {
            let (user_id, _) = resolve_user(self.store(), who).await?;
            let org = orgs::accept(self.store(), token, &user_id)
                .await
                .map_err(message)?;
            Ok(org.id)
        })
    }

    fn sign_up_invited<'a>(
        &'a self,
        token: &'a str,
        password: &'a str,
        client: &'a str,
    ) -> Res<'a, (String, String)> {
        Box::pin(async move {
            self.throttle("signup", client, SIGNUPS_PER_CLIENT)?;
            let i = orgs::invitation_by_token(self.store(), token)
                .await
                .map_err(internal)?
                .filter(|i| i.state == "pending")
                .ok_or("this invitation is invalid, used, revoked or expired; ask for a new one")?;
            let (user, _) = accounts::sign_up(self.store(), &i.email, password)
                .await
                .map_err(message)?;
            let org = orgs::accept(self.store(), token, &user.id)
                .await
                .map_err(message)?;
            Ok((user.id, org.id))
        })
    }

    fn usage_overview<'a>(
        &'a self,
        who: &'a Who,
        range: &'a str,
        group: &'a str,
    ) -> Res<'a, switchyard_app::usage::Overview> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            crate::usage::overview(self.store(), &actor, range, group, crate::store::now_ms()).await
        })
    }

    fn activity<'a>(
        &'a self,
        who: &'a Who,
        filter: switchyard_app::usage::ActivityFilter,
    ) -> Res<'a, switchyard_app::usage::ActivityPage> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            crate::usage::activity(self.store(), &actor, &filter, crate::store::now_ms()).await
        })
    }

    fn generation_detail<'a>(
        &'a self,
        who: &'a Who,
        id: &'a str,
    ) -> Res<'a, switchyard_app::usage::GenerationDetail> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            crate::usage::generation(self.store(), &actor, id).await
        })
    }

    fn analytics<'a>(
        &'a self,
        who: &'a Who,
        range: &'a str,
        group: &'a str,
    ) -> Res<'a, switchyard_app::usage::Analytics> {
        Box::pin(async move {
            platform_admin(self.store(), who).await?;
            crate::usage::analytics(self.store(), range, group, crate::store::now_ms()).await
        })
    }

    fn set_prompt_logging<'a>(
        &'a self,
        who: &'a Who,
        on: bool,
        retention_days: &'a str,
    ) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::org_pages::set_prompt_logging(&self.state, &actor, on, retention_days).await
        })
    }

    fn set_routing_defaults<'a>(
        &'a self,
        who: &'a Who,
        d: &'a switchyard_app::orgs::RoutingDefaults,
    ) -> Res<'a, String> {
        Box::pin(async move {
            let actor = resolve(self.store(), who).await?;
            super::org_pages::set_routing_defaults(&self.state, &actor, d).await
        })
    }

    fn admin_overview<'a>(&'a self, who: &'a Who) -> Res<'a, AdminData> {
        Box::pin(async move {
            let user_id = platform_admin(self.store(), who).await?;
            super::admin_pages::overview(&self.state, &user_id).await
        })
    }

    fn admin_adjust_credits<'a>(
        &'a self,
        who: &'a Who,
        org_id: &'a str,
        amount_usd: &'a str,
        reason: &'a str,
        nonce: &'a str,
    ) -> Res<'a, String> {
        Box::pin(async move {
            let me = platform_admin(self.store(), who).await?;
            super::admin_pages::adjust_credits(self.store(), &me, org_id, amount_usd, reason, nonce)
                .await
        })
    }

    fn admin_set_user_disabled<'a>(
        &'a self,
        who: &'a Who,
        user_id: &'a str,
        disabled: bool,
    ) -> Res<'a, String> {
        Box::pin(async move {
            let me = platform_admin(self.store(), who).await?;
            let r =
                super::admin_pages::set_user_disabled(self.store(), &me, user_id, disabled).await;
            self.state.keys.forget_all();
            r
        })
    }
}
