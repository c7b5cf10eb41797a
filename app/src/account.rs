//! Signing up, in and out: the server functions and the pages. The server implements `backend::Dashboard`
//! and provides it as context; the session is the dashboard's cookie session (tower-sessions).

use crate::{password_problems, PASSWORD_RULES};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Who is signed in, and the organisation they are working in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: String,
    pub email: String,
    pub is_admin: bool,
    pub email_verified: bool,
    /// The organisation the session works in (empty when the person belongs to none).
    pub org_id: String,
    pub org_name: String,
    /// Their role there: "owner", "admin" or "member".
    pub role: String,
    /// Exact decimal USD.
    pub balance_usd: String,
    /// Every organisation they belong to, for the switcher.
    pub orgs: Vec<OrgChoice>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgChoice {
    pub id: String,
    pub name: String,
    pub role: String,
}

#[cfg(feature = "ssr")]
pub mod backend {
    use super::SessionUser;
    use std::{future::Future, pin::Pin, sync::Arc};

    pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    /// Who asks: the signed-in user, the organisation their session works in (checked against their
    /// memberships on every request) and when they signed in (a later password change ends the session).
    #[derive(Clone, Debug)]
    pub struct Who {
        pub user_id: String,
        pub org_id: Option<String>,
        pub signed_in_at: i64,
    }

    type Res<'a, T> = BoxFut<'a, Result<T, String>>;

    /// What the account pages need from the server. Errors are messages for the person at the keyboard.
    pub trait Dashboard: Send + Sync + 'static {
        /// Creates the account; returns the user id.
        fn sign_up<'a>(
            &'a self,
            email: &'a str,
            password: &'a str,
            client: &'a str,
        ) -> BoxFut<'a, Result<String, String>>;
        /// Checks the credentials; returns the user id.
        fn sign_in<'a>(
            &'a self,
            email: &'a str,
            password: &'a str,
            client: &'a str,
        ) -> BoxFut<'a, Result<String, String>>;
        /// The signed-in user, if the account still exists, is enabled and the session still counts.
        fn session_user<'a>(&'a self, who: &'a Who) -> BoxFut<'a, Option<SessionUser>>;
        /// Emails a new verification link to the signed-in user.
        fn send_verification<'a>(&'a self, who: &'a Who) -> Res<'a, ()>;
        /// Uses a verification link; returns the verified address.
        fn verify_email<'a>(&'a self, token: &'a str) -> Res<'a, String>;
        /// Emails a reset link if the address has an account (the answer is the same either way).
        fn request_reset<'a>(&'a self, email: &'a str, client: &'a str) -> Res<'a, ()>;
        /// Sets a new password with a reset link; returns the user id (to sign them in).
        fn reset_password<'a>(
            &'a self,
            token: &'a str,
            password: &'a str,
            client: &'a str,
        ) -> Res<'a, String>;
        /// Keys of the organisation the user may see (members: their own; admins and owners: all).
        fn list_keys<'a>(&'a self, who: &'a Who) -> Res<'a, Vec<crate::keys::KeyView>>;
        /// Creates a key; returns its secret (shown once).
        fn create_key<'a>(&'a self, who: &'a Who, form: crate::keys::NewKeyForm)
            -> Res<'a, String>;
        /// Replaces a key's name and rules with the form's.
        fn update_key<'a>(
            &'a self,
            who: &'a Who,
            hash: &'a str,
            form: crate::keys::NewKeyForm,
        ) -> Res<'a, ()>;
        fn set_key_disabled<'a>(
            &'a self,
            who: &'a Who,
            hash: &'a str,
            disabled: bool,
        ) -> Res<'a, ()>;
        fn delete_key<'a>(&'a self, who: &'a Who, hash: &'a str) -> Res<'a, ()>;
        /// The organisation's management keys; `None` for members (they are for owners and admins).
        fn list_management_keys<'a>(
            &'a self,
            who: &'a Who,
        ) -> Res<'a, Option<Vec<crate::keys::KeyView>>>;
        /// Creates a management key; returns its secret (shown once).
        fn create_management_key<'a>(&'a self, who: &'a Who, name: &'a str) -> Res<'a, String>;
        fn delete_management_key<'a>(&'a self, who: &'a Who, hash: &'a str) -> Res<'a, ()>;
        /// The billing page of the organisation (history page `page`, from 1).
        fn billing<'a>(&'a self, who: &'a Who, page: u32) -> Res<'a, crate::billing::BillingData>;
        /// Sets (blank: removes) the low-balance alert; returns what is set now.
        fn set_low_balance<'a>(&'a self, who: &'a Who, amount_usd: &'a str) -> Res<'a, String>;
        /// Redeems a promo code for the organisation; says what was granted.
        fn redeem_promo<'a>(&'a self, who: &'a Who, code: &'a str) -> Res<'a, String>;
        /// Creates a promo code (platform admins); returns it.
        fn admin_create_promo<'a>(
            &'a self,
            who: &'a Who,
            form: crate::admin::PromoForm,
        ) -> Res<'a, String>;
        /// Starts a purchase; returns the Stripe Checkout URL. `save_card` keeps the card for
        /// automatic top-ups.
        fn buy_credits<'a>(
            &'a self,
            who: &'a Who,
            amount_usd: &'a str,
            save_card: bool,
        ) -> Res<'a, String>;
        /// Turns automatic top-up on (below `below_usd`, add `add_usd`) or off; says what is set.
        fn set_auto_topup<'a>(
            &'a self,
            who: &'a Who,
            enabled: bool,
            below_usd: &'a str,
            add_usd: &'a str,
        ) -> Res<'a, String>;
        /// Forgets the saved card (automatic top-up goes off).
        fn remove_card<'a>(&'a self, who: &'a Who) -> Res<'a, String>;
        /// The catalog as platform admins edit it.
        fn catalog_admin<'a>(&'a self, who: &'a Who)
            -> Res<'a, crate::catalog_admin::CatalogAdmin>;
        /// Makes one catalog change (platform admins); says what changed.
        fn catalog_change<'a>(
            &'a self,
            who: &'a Who,
            op: crate::catalog_admin::CatalogOp,
        ) -> Res<'a, String>;
        /// Calls a provider to check its address and key; says how it went.
        fn test_provider<'a>(&'a self, who: &'a Who, id: &'a str) -> Res<'a, String>;
        /// The models a provider lists (its `/models`).
        fn provider_models<'a>(
            &'a self,
            who: &'a Who,
            id: &'a str,
        ) -> Res<'a, crate::catalog_admin::UpstreamList>;
        /// What importing a catalog in OpenRouter's format would change (platform admins).
        fn catalog_import_preview<'a>(
            &'a self,
            who: &'a Who,
            json: &'a str,
            provider_id: &'a str,
        ) -> Res<'a, crate::catalog_admin::ImportDiff>;
        /// Sets the name receipts bill to (blank: the organisation's name).
        fn set_billing_name<'a>(&'a self, who: &'a Who, name: &'a str) -> Res<'a, String>;
        /// One of the organisation's orders.
        fn order<'a>(&'a self, who: &'a Who, id: &'a str) -> Res<'a, crate::billing::OrderView>;
        /// The organisation page: name, members, open invitations (for admins and owners).
        fn org_page<'a>(&'a self, who: &'a Who) -> Res<'a, crate::orgs::OrgPageData>;
        /// Creates an organisation owned by the user; returns its id.
        fn create_org<'a>(&'a self, who: &'a Who, name: &'a str) -> Res<'a, String>;
        /// Checks the user belongs to the organisation (before the session switches to it).
        fn check_membership<'a>(&'a self, who: &'a Who, org_id: &'a str) -> Res<'a, ()>;
        fn rename_org<'a>(&'a self, who: &'a Who, name: &'a str) -> Res<'a, ()>;
        fn invite<'a>(&'a self, who: &'a Who, email: &'a str, role: &'a str) -> Res<'a, ()>;
        fn revoke_invitation<'a>(&'a self, who: &'a Who, id: &'a str) -> Res<'a, ()>;
        /// Changes a member's role; says what the change took from them (management keys,
        /// invitations).
        fn set_role<'a>(&'a self, who: &'a Who, user_id: &'a str, role: &'a str)
            -> Res<'a, String>;
        /// Removes a member (with their own id, the user leaves); says which keys and invitations went
        /// with them.
        fn remove_member<'a>(&'a self, who: &'a Who, user_id: &'a str) -> Res<'a, String>;
        /// An invitation as its link shows it, to whoever holds the link.
        fn invitation<'a>(
            &'a self,
            token: &'a str,
            who: Option<&'a Who>,
        ) -> Res<'a, crate::orgs::InvitationView>;
        /// Accepts for the signed-in user; returns the organisation joined.
        fn accept_invitation<'a>(&'a self, who: &'a Who, token: &'a str) -> Res<'a, String>;
        /// Creates the invited address's account and accepts; returns (user id, organisation id).
        fn sign_up_invited<'a>(
            &'a self,
            token: &'a str,
            password: &'a str,
            client: &'a str,
        ) -> Res<'a, (String, String)>;
        /// Users, organisations and the dev outbox, for platform admins.
        fn admin_overview<'a>(&'a self, who: &'a Who) -> Res<'a, crate::admin::AdminData>;
        /// Grants (or, negative, deducts) credits with a reason, as a ledger entry naming the admin.
        fn admin_adjust_credits<'a>(
            &'a self,
            who: &'a Who,
            org_id: &'a str,
            amount_usd: &'a str,
            reason: &'a str,
            nonce: &'a str,
        ) -> Res<'a, String>;
        /// Disables or enables an account; says which of its keys stop (or work again).
        fn admin_set_user_disabled<'a>(
            &'a self,
            who: &'a Who,
            user_id: &'a str,
            disabled: bool,
        ) -> Res<'a, String>;
        /// The usage overview of the session's organisation (members: their own keys).
        fn usage_overview<'a>(
            &'a self,
            who: &'a Who,
            range: &'a str,
            group: &'a str,
        ) -> Res<'a, crate::usage::Overview>;
        fn activity<'a>(
            &'a self,
            who: &'a Who,
            filter: crate::usage::ActivityFilter,
        ) -> Res<'a, crate::usage::ActivityPage>;
        fn generation_detail<'a>(
            &'a self,
            who: &'a Who,
            id: &'a str,
        ) -> Res<'a, crate::usage::GenerationDetail>;
        /// Platform analytics (platform admins only).
        fn analytics<'a>(
            &'a self,
            who: &'a Who,
            range: &'a str,
            group: &'a str,
        ) -> Res<'a, crate::usage::Analytics>;
        /// Turns prompt logging on or off and sets how many days logged prompts are kept (owners and
        /// admins); returns what changed.
        fn set_prompt_logging<'a>(
            &'a self,
            who: &'a Who,
            on: bool,
            retention_days: &'a str,
        ) -> Res<'a, String>;
        /// Sets the organisation's default routing preferences (owners and admins); returns what changed.
        fn set_routing_defaults<'a>(
            &'a self,
            who: &'a Who,
            d: &'a crate::orgs::RoutingDefaults,
        ) -> Res<'a, String>;
    }

    #[derive(Clone)]
    pub struct DashboardHandle(pub Arc<dyn Dashboard>);

    /// The client's address, put in the request's extensions by the server (for rate limits).
    #[derive(Clone, Debug)]
    pub struct ClientAddr(pub String);

    /// Sessions end 30 days after sign-in whatever the activity (and after 7 idle days, by cookie expiry).
    pub const ABSOLUTE_SESSION_SECS: i64 = 30 * 24 * 3600;
    pub const USER_KEY: &str = "user_id";
    pub const SIGNED_IN_AT_KEY: &str = "signed_in_at";
    /// The organisation the session works in.
    pub const ORG_KEY: &str = "org_id";

    pub fn now_secs() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

#[cfg(feature = "ssr")]
async fn context(
) -> Result<(backend::DashboardHandle, tower_sessions::Session, String), ServerFnError> {
    let b = use_context::<backend::DashboardHandle>()
        .ok_or_else(|| ServerFnError::new("accounts are not available"))?;
    let session: tower_sessions::Session = leptos_axum::extract().await?;
    let ext: http::Extensions = leptos_axum::extract().await?;
    let client = ext
        .get::<backend::ClientAddr>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    Ok((b, session, client))
}

/// Who is signed in, from the session, if the session is still within its absolute lifetime (an
/// expired one is ended here).
#[cfg(feature = "ssr")]
async fn session_who(
    session: &tower_sessions::Session,
) -> Result<Option<backend::Who>, ServerFnError> {
    let user_id: Option<String> = session
        .get(backend::USER_KEY)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let signed_in_at: i64 = session
        .get(backend::SIGNED_IN_AT_KEY)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    if backend::now_secs() - signed_in_at > backend::ABSOLUTE_SESSION_SECS {
        let _ = session.flush().await;
        return Ok(None);
    }
    let org_id: Option<String> = session.get(backend::ORG_KEY).await.ok().flatten();
    Ok(Some(backend::Who {
        user_id,
        org_id,
        signed_in_at,
    }))
}

/// The backend and who is signed in, or an error asking to sign in.
#[cfg(feature = "ssr")]
pub(crate) async fn signed_in() -> Result<(backend::DashboardHandle, backend::Who), ServerFnError> {
    let (b, session, _) = context().await?;
    match session_who(&session).await? {
        Some(who) => Ok((b, who)),
        None => Err(ServerFnError::new("sign in first")),
    }
}

/// The backend, the session and the client's address (for the pages that work signed out too).
#[cfg(feature = "ssr")]
pub(crate) async fn session_context() -> Result<
    (
        backend::DashboardHandle,
        tower_sessions::Session,
        Option<backend::Who>,
        String,
    ),
    ServerFnError,
> {
    let (b, session, client) = context().await?;
    let who = session_who(&session).await?;
    Ok((b, session, who, client))
}

/// Makes the session work in this organisation.
#[cfg(feature = "ssr")]
pub(crate) async fn set_session_org(
    session: &tower_sessions::Session,
    org_id: &str,
) -> Result<(), ServerFnError> {
    session
        .insert(backend::ORG_KEY, org_id)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

#[cfg(feature = "ssr")]
pub(crate) async fn start_session(
    session: &tower_sessions::Session,
    user_id: &str,
) -> Result<(), ServerFnError> {
    // A new id at sign-in: a session id planted before sign-in is worthless after it.
    session
        .cycle_id()
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    session
        .insert(backend::USER_KEY, user_id)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    session
        .insert(backend::SIGNED_IN_AT_KEY, backend::now_secs())
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let _ = session.remove::<String>(backend::ORG_KEY).await;
    Ok(())
}

/// Where to go after signing in: a path on this site, never another site. Browsers drop tabs and
/// newlines from URLs and read `\\` as `/`, so `/\t/evil.example` or `/\\evil.example` would leave the site.
pub fn safe_next(next: &str) -> String {
    let n = next.trim();
    let local = n.starts_with('/')
        && !n.starts_with("//")
        && !n.contains('\\')
        && !n.chars().any(|c| c.is_control() || c.is_whitespace());
    if local {
        n.to_string()
    } else {
        "/dashboard".into()
    }
}

/// What a form submission says back: `Some(message)` when the person must fix something. (A refused
/// password is not a server failure, so it is not an error status.)
pub type FormOutcome = Option<String>;

#[server(prefix = "/_app", endpoint = "sign_up")]
pub async fn sign_up(email: String, password: String) -> Result<FormOutcome, ServerFnError> {
    let (b, session, client) = context().await?;
    let user_id = match b.0.sign_up(&email, &password, &client).await {
        Ok(id) => id,
        Err(message) => return Ok(Some(message)),
    };
    start_session(&session, &user_id).await?;
    leptos_axum::redirect("/dashboard");
    Ok(None)
}

#[server(prefix = "/_app", endpoint = "sign_in")]
pub async fn sign_in(
    email: String,
    password: String,
    #[server(default)] next: String,
) -> Result<FormOutcome, ServerFnError> {
    let (b, session, client) = context().await?;
    let user_id = match b.0.sign_in(&email, &password, &client).await {
        Ok(id) => id,
        Err(message) => return Ok(Some(message)),
    };
    start_session(&session, &user_id).await?;
    leptos_axum::redirect(&safe_next(&next));
    Ok(None)
}

/// What an action says back: done (a confirmation to show) or refused (what to fix).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done(String),
    Refused(String),
}

impl From<Result<String, String>> for Outcome {
    fn from(r: Result<String, String>) -> Self {
        match r {
            Ok(m) => Outcome::Done(m),
            Err(m) => Outcome::Refused(m),
        }
    }
}

/// Empties a form once its action succeeded, so that what was saved does not look unsaved.
pub(crate) fn clear_on_success(
    value: impl Fn() -> Option<Result<Outcome, ServerFnError>> + 'static,
    form: NodeRef<leptos::html::Form>,
) {
    Effect::new(move |_| {
        if let Some(Ok(Outcome::Done(_))) = value() {
            #[cfg(feature = "hydrate")]
            if let Some(f) = form.get_untracked() {
                f.reset();
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = form;
        }
    });
}

/// The line under a form: a confirmation, or what to fix.
pub(crate) fn outcome_line(v: Option<Result<Outcome, ServerFnError>>) -> Option<AnyView> {
    match v? {
        Ok(Outcome::Done(m)) => {
            let m = form_message(Some(Ok(Some(m))))?;
            Some(view! { <p class="notice" role="status">{m}</p> }.into_any())
        }
        Ok(Outcome::Refused(m)) => {
            let m = form_message(Some(Ok(Some(m))))?;
            Some(view! { <p class="error" role="alert">{m}</p> }.into_any())
        }
        Err(e) => {
            let m = form_message(Some(Err(e)))?;
            Some(view! { <p class="error" role="alert">{m}</p> }.into_any())
        }
    }
}

/// The message to show under a form, if any.
pub(crate) fn form_message(v: Option<Result<FormOutcome, ServerFnError>>) -> Option<String> {
    let text = match v? {
        Ok(outcome) => outcome?,
        Err(e) => error_text(&e),
    };
    // Messages are sentences on the page: "Wrong email or password."
    let mut chars = text.chars();
    let first = chars.next()?.to_uppercase().collect::<String>();
    let rest: String = chars.collect();
    Some(if rest.ends_with('.') {
        format!("{first}{rest}")
    } else {
        format!("{first}{rest}.")
    })
}

#[server(prefix = "/_app", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let (_, session, _) = context().await?;
    session
        .flush()
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    leptos_axum::redirect("/");
    Ok(())
}

#[server(prefix = "/_app", endpoint = "me")]
pub async fn current_user() -> Result<Option<SessionUser>, ServerFnError> {
    let (b, session, _) = context().await?;
    match session_who(&session).await? {
        Some(who) => Ok(b.0.session_user(&who).await),
        None => Ok(None),
    }
}

#[server(prefix = "/_app", endpoint = "resend_verification")]
pub async fn resend_verification() -> Result<Outcome, ServerFnError> {
    let (b, who) = signed_in().await?;
    Ok(b.0
        .send_verification(&who)
        .await
        .map(|_| "we sent a new link; it works for 24 hours".to_string())
        .into())
}

#[server(prefix = "/_app", endpoint = "verify_email")]
pub async fn verify_email(token: String) -> Result<Outcome, ServerFnError> {
    let (b, _, _) = context().await?;
    Ok(b.0
        .verify_email(&token)
        .await
        .map(|email| format!("{email} is confirmed. Thank you!"))
        .into())
}

#[server(prefix = "/_app", endpoint = "request_reset")]
pub async fn request_reset(email: String) -> Result<Outcome, ServerFnError> {
    let (b, _, client) = context().await?;
    Ok(b.0
        .request_reset(&email, &client)
        .await
        .map(|_| {
            format!(
                "if {} has an account, a link to choose a new password is on its way; it works for one hour",
                email.trim()
            )
        })
        .into())
}

#[server(prefix = "/_app", endpoint = "reset_password")]
pub async fn reset_password(token: String, password: String) -> Result<FormOutcome, ServerFnError> {
    let (b, session, client) = context().await?;
    let user_id = match b.0.reset_password(&token, &password, &client).await {
        Ok(id) => id,
        Err(message) => return Ok(Some(message)),
    };
    start_session(&session, &user_id).await?;
    leptos_axum::redirect("/dashboard");
    Ok(None)
}

/// Makes the session work in another of the user's organisations.
#[server(prefix = "/_app", endpoint = "switch_org")]
pub async fn switch_org(org_id: String) -> Result<(), ServerFnError> {
    let (b, who) = signed_in().await?;
    let (_, session, _) = context().await?;
    b.0.check_membership(&who, &org_id)
        .await
        .map_err(ServerFnError::new)?;
    set_session_org(&session, &org_id).await
}

/// The message of a server function error, without the framework's prefix.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The signed-in user, re-read on every navigation; provided by the app shell for the header, the
/// banner and the pages.
#[derive(Clone, Copy)]
pub struct Me(pub Resource<Result<Option<SessionUser>, ServerFnError>>);

#[cfg(feature = "hydrate")]
fn reload() {
    if let Some(w) = web_sys::window() {
        let _ = w.location().reload();
    }
}

#[cfg(not(feature = "hydrate"))]
fn reload() {}

/// Header: the organisation switcher and who is signed in, with a sign-out button; or a sign-in link.
#[component]
pub fn UserMenu() -> impl IntoView {
    let me = expect_context::<Me>().0;
    let sign_out = ServerAction::<SignOut>::new();
    let switch = ServerAction::<SwitchOrg>::new();
    // Every page shows the organisation's data: after a switch, load the page again.
    Effect::new(move |_| {
        if let Some(Ok(())) = switch.value().get() {
            reload();
        }
    });
    view! {
        <Transition fallback=|| view! { <span class="muted">"…"</span> }>
            {move || {
                me.get()
                    .map(|r| match r.ok().flatten() {
                        Some(u) => {
                            let current = u.org_id.clone();
                            view! {
                                <a href="/dashboard">"Usage"</a>
                                <a href="/activity">"Activity"</a>
                                <a href="/keys">"Keys"</a>
                                <a href="/billing">"Billing"</a>
                                <a href="/org">"Organisation"</a>
                                {u.is_admin.then(|| view! { <a href="/admin">"Admin"</a> })}
                                <ActionForm action=switch attr:class="inline org-switch">
                                    <label class="sr-only" for="org-switch">"Organisation"</label>
                                    <select id="org-switch" name="org_id" title="Switch organisation"
                                        onchange="this.form.requestSubmit ? this.form.requestSubmit() : this.form.submit()">
                                        {u.orgs.iter().map(|o| {
                                            let selected = o.id == current;
                                            view! { <option value=o.id.clone() selected=selected>{o.name.clone()}</option> }
                                        }).collect_view()}
                                    </select>
                                    <noscript><button type="submit" class="button ghost small">"Switch"</button></noscript>
                                </ActionForm>
                                <a class="who" href="/dashboard">{u.email.clone()}</a>
                                <ActionForm action=sign_out attr:class="inline">
                                    <button type="submit" class="button ghost">"Sign out"</button>
                                </ActionForm>
                            }
                                .into_any()
                        }
                        None => view! { <a class="button" href="/signin">"Sign in"</a> }.into_any(),
                    })
            }}
        </Transition>
    }
}

/// Asks a signed-in person with an unconfirmed address to open the emailed link, and offers a new one.
#[component]
pub fn VerifyBanner() -> impl IntoView {
    let me = expect_context::<Me>().0;
    let resend = ServerAction::<ResendVerification>::new();
    view! {
        <Transition fallback=|| ()>
            {move || {
                me.get()
                    .and_then(|r| r.ok().flatten())
                    .filter(|u| !u.email_verified)
                    .map(|u| {
                        view! {
                            <div class="banner" role="status">
                                <span>"Confirm your email address: we sent a link to " <strong>{u.email.clone()}</strong> ". Until then you cannot create API keys or invite people."</span>
                                <ActionForm action=resend attr:class="inline">
                                    <button type="submit" class="button ghost small">"Send a new link"</button>
                                </ActionForm>
                                {move || outcome_line(resend.value().get())}
                            </div>
                        }
                    })
            }}
        </Transition>
    }
}

/// A new-password field with its rules, each ticked off as the person types.
#[component]
pub(crate) fn NewPassword(email: Signal<String>) -> impl IntoView {
    let (password, set_password) = signal(String::new());
    let problems = move || password_problems(&password.get(), &email.get());
    view! {
        <label>
            "Password"
            <input type="password" name="password" required autocomplete="new-password" on:input=move |ev| set_password.set(event_target_value(&ev))/>
        </label>
        <ul class="rules" aria-label="Password rules">
            {PASSWORD_RULES
                .iter()
                .map(|rule| {
                    let rule = *rule;
                    view! {
                        <li class:ok=move || !password.get().is_empty() && !problems().contains(&rule)>{rule}</li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    let (email, set_email) = signal(String::new());
    view! {
        <main class="page narrow auth">
            <h1>"Create your account"</h1>
            <p class="lede">"You get a personal organisation to hold your credits and API keys."</p>
            <ActionForm action=action attr:class="form">
                <label>
                    "Email"
                    <input type="email" name="email" required autocomplete="email" on:input=move |ev| set_email.set(event_target_value(&ev))/>
                </label>
                <NewPassword email=email.into()/>
                <button type="submit" class="button">"Create account"</button>
                {move || form_message(action.value().get()).map(|m| view! { <p class="error" role="alert">{m}</p> })}
            </ActionForm>
            <p class="muted">"Already have an account? " <a href="/signin">"Sign in"</a></p>
        </main>
    }
}

/// A query parameter of the current page ("" when absent).
pub(crate) fn query_param(name: &'static str) -> impl Fn() -> String + Copy + Send + Sync {
    let q = leptos_router::hooks::use_query_map();
    move || q.read().get(name).unwrap_or_default()
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    let next = query_param("next");
    view! {
        <main class="page narrow auth">
            <h1>"Sign in"</h1>
            <ActionForm action=action attr:class="form">
                <input type="hidden" name="next" value=next/>
                <label>"Email" <input type="email" name="email" required autocomplete="email"/></label>
                <label>
                    <span class="label-row">"Password" <a class="small" href="/reset">"Forgot your password?"</a></span>
                    <input type="password" name="password" required autocomplete="current-password"/>
                </label>
                <button type="submit" class="button">"Sign in"</button>
                {move || form_message(action.value().get()).map(|m| view! { <p class="error" role="alert">{m}</p> })}
            </ActionForm>
            <p class="muted">"New here? " <a href="/signup">"Create an account"</a></p>
        </main>
    }
}

/// `/verify?token=…`: the link from the verification email.
#[component]
pub fn VerifyPage() -> impl IntoView {
    let token = query_param("token");
    let result = Resource::new(token, verify_email);
    // The banner read the account before the link was used: read it again.
    let me = expect_context::<Me>().0;
    Effect::new(move |_| {
        if let Some(Ok(Outcome::Done(_))) = result.get() {
            me.refetch();
        }
    });
    view! {
        <main class="page narrow auth">
            <h1>"Confirm your email"</h1>
            <Suspense fallback=|| view! { <p class="muted">"Checking the link…"</p> }>
                {move || result.get().map(|r| {
                    let ok = matches!(r, Ok(Outcome::Done(_)));
                    view! {
                        {outcome_line(Some(r))}
                        <p>
                            {if ok {
                                view! { <a class="button" href="/keys">"Create an API key"</a> }.into_any()
                            } else {
                                view! { <span class="muted">"Signed in? Send a new link from the banner at the top of any page."</span> }.into_any()
                            }}
                        </p>
                    }
                })}
            </Suspense>
        </main>
    }
}

/// `/reset`: ask for a reset link; `/reset?token=…`: choose a new password.
#[component]
pub fn ResetPage() -> impl IntoView {
    let token = query_param("token");
    let ask = ServerAction::<RequestReset>::new();
    let set = ServerAction::<ResetPassword>::new();
    view! {
        <main class="page narrow auth">
            {move || if token().is_empty() {
                view! {
                    <h1>"Reset your password"</h1>
                    <p class="lede">"Enter your account's email address and we will send you a link to choose a new password."</p>
                    <ActionForm action=ask attr:class="form">
                        <label>"Email" <input type="email" name="email" required autocomplete="email"/></label>
                        <button type="submit" class="button">"Send the link"</button>
                        {move || outcome_line(ask.value().get())}
                    </ActionForm>
                    <p class="muted">"Remembered it? " <a href="/signin">"Sign in"</a></p>
                }.into_any()
            } else {
                view! {
                    <h1>"Choose a new password"</h1>
                    <p class="lede">"Every other session of your account is signed out."</p>
                    <ActionForm action=set attr:class="form">
                        <input type="hidden" name="token" value=token/>
                        <NewPassword email=Signal::stored(String::new())/>
                        <button type="submit" class="button">"Set the password and sign in"</button>
                        {move || form_message(set.value().get()).map(|m| view! { <p class="error" role="alert">{m}</p> })}
                    </ActionForm>
                }.into_any()
            }}
        </main>
    }
}
