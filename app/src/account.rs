//! Signing up, in and out: the server functions and the pages. The server implements `backend::Dashboard`
//! and provides it as context; the session is the dashboard's cookie session (tower-sessions).

use crate::{password_problems, PASSWORD_RULES};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

/// Who is signed in, and the organisation they are working in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub id: String,
    pub email: String,
    pub is_admin: bool,
    pub org_name: String,
    /// Exact decimal USD.
    pub balance_usd: String,
}

#[cfg(feature = "ssr")]
pub mod backend {
    use super::SessionUser;
    use std::{future::Future, pin::Pin, sync::Arc};

    pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
        /// The signed-in user, if the account still exists and is enabled.
        fn session_user<'a>(&'a self, user_id: &'a str) -> BoxFut<'a, Option<SessionUser>>;
        /// Keys of the user's organisation they may see (members: their own; admins and owners: all).
        fn list_keys<'a>(
            &'a self,
            user_id: &'a str,
        ) -> BoxFut<'a, Result<Vec<crate::keys::KeyView>, String>>;
        /// Creates a key; returns its secret (shown once).
        fn create_key<'a>(
            &'a self,
            user_id: &'a str,
            form: crate::keys::NewKeyForm,
        ) -> BoxFut<'a, Result<String, String>>;
        fn set_key_disabled<'a>(
            &'a self,
            user_id: &'a str,
            hash: &'a str,
            disabled: bool,
        ) -> BoxFut<'a, Result<(), String>>;
        fn delete_key<'a>(
            &'a self,
            user_id: &'a str,
            hash: &'a str,
        ) -> BoxFut<'a, Result<(), String>>;
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

/// The signed-in user's id from the session, if the session is still within its absolute lifetime
/// (an expired one is ended here).
#[cfg(feature = "ssr")]
async fn session_user_id(
    session: &tower_sessions::Session,
) -> Result<Option<String>, ServerFnError> {
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
    if user_id.is_some() && backend::now_secs() - signed_in_at > backend::ABSOLUTE_SESSION_SECS {
        let _ = session.flush().await;
        return Ok(None);
    }
    Ok(user_id)
}

/// The backend and the signed-in user's id, or an error asking to sign in.
#[cfg(feature = "ssr")]
pub(crate) async fn signed_in() -> Result<(backend::DashboardHandle, String), ServerFnError> {
    let (b, session, _) = context().await?;
    match session_user_id(&session).await? {
        Some(id) => Ok((b, id)),
        None => Err(ServerFnError::new("sign in first")),
    }
}

#[cfg(feature = "ssr")]
async fn start_session(
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
    Ok(())
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
pub async fn sign_in(email: String, password: String) -> Result<FormOutcome, ServerFnError> {
    let (b, session, client) = context().await?;
    let user_id = match b.0.sign_in(&email, &password, &client).await {
        Ok(id) => id,
        Err(message) => return Ok(Some(message)),
    };
    start_session(&session, &user_id).await?;
    leptos_axum::redirect("/dashboard");
    Ok(None)
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
    match session_user_id(&session).await? {
        Some(user_id) => Ok(b.0.session_user(&user_id).await),
        None => Ok(None),
    }
}

/// The message of a server function error, without the framework's prefix.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Header: who is signed in, with a sign-out button; or a sign-in link.
#[component]
pub fn UserMenu() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    // Re-read on every navigation, so signing in or out shows at once.
    let me = Resource::new(move || location.pathname.get(), |_| current_user());
    let sign_out = ServerAction::<SignOut>::new();
    view! {
        <Transition fallback=|| view! { <span class="muted">"…"</span> }>
            {move || {
                me.get()
                    .map(|r| match r.ok().flatten() {
                        Some(u) => {
                            view! {
                                <a href="/keys">"Keys"</a>
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

#[component]
pub fn SignUpPage() -> impl IntoView {
    let action = ServerAction::<SignUp>::new();
    let (email, set_email) = signal(String::new());
    let (password, set_password) = signal(String::new());
    let problems = move || password_problems(&password.get(), &email.get());
    view! {
        <main class="page narrow auth">
            <h1>"Create your account"</h1>
            <p class="lede">"You get a personal organisation to hold your credits and API keys."</p>
            <ActionForm action=action attr:class="form">
                <label>
                    "Email"
                    <input type="email" name="email" required autocomplete="email" on:input=move |ev| set_email.set(event_target_value(&ev))/>
                </label>
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
                <button type="submit" class="button">"Create account"</button>
                {move || form_message(action.value().get()).map(|m| view! { <p class="error" role="alert">{m}</p> })}
            </ActionForm>
            <p class="muted">"Already have an account? " <a href="/signin">"Sign in"</a></p>
        </main>
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let action = ServerAction::<SignIn>::new();
    view! {
        <main class="page narrow auth">
            <h1>"Sign in"</h1>
            <ActionForm action=action attr:class="form">
                <label>"Email" <input type="email" name="email" required autocomplete="email"/></label>
                <label>"Password" <input type="password" name="password" required autocomplete="current-password"/></label>
                <button type="submit" class="button">"Sign in"</button>
                {move || form_message(action.value().get()).map(|m| view! { <p class="error" role="alert">{m}</p> })}
            </ActionForm>
            <p class="muted">"New here? " <a href="/signup">"Create an account"</a></p>
        </main>
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| current_user());
    view! {
        <main class="page">
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    me.get()
                        .map(|r| match r.ok().flatten() {
                            Some(u) => {
                                view! {
                                    <h1>"Dashboard"</h1>
                                    <p class="lede">"Signed in as " <strong>{u.email.clone()}</strong> {u.is_admin.then_some(" · platform admin")}</p>
                                    <section class="cards">
                                        <div class="card">
                                            <div class="card-label">"Organisation"</div>
                                            <div class="card-value org">{u.org_name.clone()}</div>
                                        </div>
                                        <div class="card">
                                            <div class="card-label">"Balance"</div>
                                            <div class="card-value balance" title=format!("${} exactly", u.balance_usd)>{crate::cents(&u.balance_usd)}</div>
                                        </div>
                                    </section>
                                    <p><a class="button" href="/keys">"Manage API keys"</a></p>
                                    <p class="muted">"Usage and billing pages come next."</p>
                                }
                                    .into_any()
                            }
                            None => view! { <Redirect path="/signin"/> }.into_any(),
                        })
                }}
            </Suspense>
        </main>
    }
}
