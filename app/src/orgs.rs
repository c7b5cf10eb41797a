//! The organisation page (name, members and roles, invitations, leaving, creating another) and the
//! invitation page that an emailed link opens.

use crate::account::{form_message, outcome_line, query_param, Me, NewPassword, Outcome};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub joined: String,
    pub is_you: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    pub expires: String,
    pub expired: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPageData {
    pub org_id: String,
    pub name: String,
    /// The viewer's role.
    pub role: String,
    pub members: Vec<MemberView>,
    /// Open invitations (only for owners and admins; empty for members).
    pub invitations: Vec<InvitationRow>,
    /// Prompts and answers are kept in the activity log, for this many days.
    pub prompt_logging: bool,
    pub log_retention_days: i64,
    /// How requests are routed when they do not say.
    pub routing: RoutingDefaults,
    /// The platform's providers (slug, name), to choose from.
    pub providers: Vec<(String, String)>,
}

/// The organisation's default routing preferences (a request's own `provider` object wins, field by field).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingDefaults {
    /// Provider slugs tried first, comma-separated.
    pub order: String,
    /// Provider slugs never used, comma-separated.
    pub ignore: String,
    /// "", "price", "latency" or "throughput".
    pub sort: String,
    /// Only providers that keep no prompts.
    pub deny_data_collection: bool,
    /// With an order: only the listed providers.
    pub only_ordered: bool,
}

#[server(prefix = "/_app", endpoint = "org_routing")]
pub async fn save_routing_defaults(
    order: String,
    ignore: String,
    sort: String,
    #[server(default)] deny_data_collection: String,
    #[server(default)] only_ordered: String,
) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    let d = RoutingDefaults {
        order,
        ignore,
        sort,
        deny_data_collection: !deny_data_collection.is_empty(),
        only_ordered: !only_ordered.is_empty(),
    };
    Ok(b.0.set_routing_defaults(&who, &d).await.into())
}

/// Routing defaults in words, a phrase per preference (none: the platform's default routing).
pub fn routing_summary(d: &RoutingDefaults) -> Vec<String> {
    let mut parts = Vec::new();
    if !d.order.is_empty() {
        parts.push(format!(
            "{} first{}",
            d.order,
            if d.only_ordered { " (and only)" } else { "" }
        ));
    }
    if !d.ignore.is_empty() {
        parts.push(format!("never {}", d.ignore));
    }
    if !d.sort.is_empty() {
        parts.push(format!("fastest-{} first", d.sort).replace("fastest-price", "cheapest"));
    }
    if d.deny_data_collection {
        parts.push("only providers that keep no prompts".into());
    }
    parts
}

/// The organisation page's routing defaults (owners and admins change them).
#[component]
fn Routing(
    d: RoutingDefaults,
    providers: Vec<(String, String)>,
    manages: bool,
    action: ServerAction<SaveRoutingDefaults>,
) -> impl IntoView {
    let summary = {
        let parts = routing_summary(&d);
        if parts.is_empty() {
            "Platform default: healthy providers first, cheaper ones preferred.".to_string()
        } else {
            format!("Requests that do not say otherwise: {}.", parts.join("; "))
        }
    };
    let known = providers
        .iter()
        .map(|(slug, name)| format!("{slug} ({name})"))
        .collect::<Vec<_>>()
        .join(", ");
    let sort_is = move |v: &str| d.sort == v;
    view! {
        <section class="panel routing-defaults">
            <h2>"Routing defaults"</h2>
            <p class="muted">{summary}</p>
            {manages.then(|| view! {
                <ActionForm action=action attr:class="form">
                    <div class="form-grid">
                        <label>"Try these providers first" <input name="order" placeholder="e.g. anthropic, openai" value=d.order.clone()/></label>
                        <label>"Never use" <input name="ignore" placeholder="e.g. together" value=d.ignore.clone()/></label>
                        <label>"Order the rest by"
                            <select name="sort">
                                <option value="" selected=sort_is("")>"platform default (health, then price)"</option>
                                <option value="price" selected=sort_is("price")>"price (cheapest first)"</option>
                                <option value="latency" selected=sort_is("latency")>"latency (quickest first)"</option>
                                <option value="throughput" selected=sort_is("throughput")>"throughput (fastest first)"</option>
                            </select>
                        </label>
                    </div>
                    <p class="muted small">{format!("Providers: {known}.")}</p>
                    <div class="checks-row">
                        <label class="check"><input type="checkbox" name="only_ordered" value="on" checked=d.only_ordered/>" Only the providers listed first (no fallbacks)"</label>
                        <label class="check"><input type="checkbox" name="deny_data_collection" value="on" checked=d.deny_data_collection/>" Only providers that keep no prompts"</label>
                        <button type="submit" class="button">"Save routing"</button>
                    </div>
                </ActionForm>
                {move || outcome_line(action.value().get())}
            })}
        </section>
    }
}

/// An invitation as its link shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationView {
    pub org_name: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    pub expires: String,
    /// "pending", "expired", "accepted" or "revoked".
    pub state: String,
    pub account_exists: bool,
    /// The address of whoever is signed in, if anyone.
    pub signed_in_as: Option<String>,
}

#[server(prefix = "/_app", endpoint = "org")]
pub async fn org_data() -> Result<OrgPageData, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.org_page(&who).await.map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "create_org")]
pub async fn create_org(name: String) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    let (_, session, _, _) = crate::account::session_context().await?;
    match b.0.create_org(&who, &name).await {
        Ok(org_id) => {
            crate::account::set_session_org(&session, &org_id).await?;
            Ok(Outcome::Done(format!(
                "“{}” is created and you are working in it now",
                name.trim()
            )))
        }
        Err(m) => Ok(Outcome::Refused(m)),
    }
}

#[server(prefix = "/_app", endpoint = "rename_org")]
pub async fn rename_org(name: String) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0
        .rename_org(&who, &name)
        .await
        .map(|_| "renamed".to_string())
        .into())
}

#[server(prefix = "/_app", endpoint = "invite")]
pub async fn invite(email: String, role: String) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0
        .invite(&who, &email, &role)
        .await
        .map(|_| format!("invitation sent to {}", email.trim()))
        .into())
}

#[server(prefix = "/_app", endpoint = "revoke_invitation")]
pub async fn revoke_invitation(id: String) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0
        .revoke_invitation(&who, &id)
        .await
        .map(|_| "invitation revoked".to_string())
        .into())
}

#[server(prefix = "/_app", endpoint = "set_role")]
pub async fn set_role(user_id: String, role: String) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0.set_role(&who, &user_id, &role).await.into())
}

#[server(prefix = "/_app", endpoint = "remove_member")]
pub async fn remove_member(user_id: String) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    let leaving = user_id == who.user_id;
    let r = b.0.remove_member(&who, &user_id).await;
    if leaving && r.is_ok() {
        leptos_axum::redirect("/dashboard");
    }
    Ok(r.map(|said| {
        if leaving {
            "you left the organisation".to_string()
        } else {
            said
        }
    })
    .into())
}

#[server(prefix = "/_app", endpoint = "invitation")]
pub async fn invitation(token: String) -> Result<InvitationView, ServerFnError> {
    let (b, _, who, _) = crate::account::session_context().await?;
    b.0.invitation(&token, who.as_ref())
        .await
        .map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "accept_invitation")]
pub async fn accept_invitation(token: String) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    let (_, session, _, _) = crate::account::session_context().await?;
    match b.0.accept_invitation(&who, &token).await {
        Ok(org_id) => {
            crate::account::set_session_org(&session, &org_id).await?;
            leptos_axum::redirect("/org");
            Ok(Outcome::Done("you joined the organisation".into()))
        }
        Err(m) => Ok(Outcome::Refused(m)),
    }
}

#[server(prefix = "/_app", endpoint = "sign_up_invited")]
pub async fn sign_up_invited(token: String, password: String) -> Result<Outcome, ServerFnError> {
    let (b, session, _, client) = crate::account::session_context().await?;
    match b.0.sign_up_invited(&token, &password, &client).await {
        Ok((user_id, org_id)) => {
            crate::account::start_session(&session, &user_id).await?;
            crate::account::set_session_org(&session, &org_id).await?;
            leptos_axum::redirect("/keys");
            Ok(Outcome::Done("welcome aboard".into()))
        }
        Err(m) => Ok(Outcome::Refused(m)),
    }
}

const ROLES: [&str; 3] = ["member", "admin", "owner"];

#[component]
pub fn OrgPage() -> impl IntoView {
    let me = expect_context::<Me>().0;
    let rename = ServerAction::<RenameOrg>::new();
    let invite = ServerAction::<Invite>::new();
    let revoke = ServerAction::<RevokeInvitation>::new();
    let set_role = ServerAction::<SetRole>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let create = ServerAction::<CreateOrg>::new();
    let logging = ServerAction::<crate::usage_ui::SavePromptLogging>::new();
    let routing = ServerAction::<SaveRoutingDefaults>::new();
    let data = Resource::new(
        move || {
            (
                logging.version().get(),
                routing.version().get(),
                rename.version().get(),
                invite.version().get(),
                revoke.version().get(),
                set_role.version().get(),
                remove.version().get(),
            )
        },
        |_| org_data(),
    );
    // The header shows the organisation's name: re-read it after a rename or a new organisation.
    Effect::new(move |_| {
        if rename.version().get() + create.version().get() > 0 {
            me.refetch();
        }
    });
    view! {
        <main class="page org">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) if crate::account::error_text(&e).contains("sign in") => view! { <Redirect path="/signin?next=/org"/> }.into_any(),
                    Err(e) => view! {
                        <h1>"Organisation"</h1>
                        <p class="error">{form_message(Some(Err(e)))}</p>
                    }.into_any(),
                    Ok(d) => {
                        let manages = d.role == "owner" || d.role == "admin";
                        let is_owner = d.role == "owner";
                        let me_id = d.members.iter().find(|m| m.is_you).map(|m| m.user_id.clone()).unwrap_or_default();
                        let org_name = d.name.clone();
                        view! {
                            <h1>{d.name.clone()}</h1>
                            <p class="lede">{format!("You are {} of this organisation. Members share its credits; each member sees the API keys they created, owners and admins see them all.", article(&d.role))}</p>
                            {manages.then(|| view! {
                                <section class="panel">
                                    <h2>"Name"</h2>
                                    <ActionForm action=rename attr:class="form inline-form">
                                        <label class="grow">"Organisation name" <input name="name" required maxlength="100" value=d.name.clone()/></label>
                                        <button type="submit" class="button">"Rename"</button>
                                    </ActionForm>
                                    {move || outcome_line(rename.value().get())}
                                </section>
                            })}
                            <crate::usage_ui::PromptLogging on=d.prompt_logging days=d.log_retention_days manages=manages action=logging/>
                            <Routing d=d.routing.clone() providers=d.providers.clone() manages=manages action=routing/>
                            <section class="panel">
                                <h2>"Members"</h2>
                                {move || outcome_line(set_role.value().get())}
                                {move || outcome_line(remove.value().get())}
                                <div class="table-wrap">
                                <table class="member-table">
                                    <thead><tr><th>"Member"</th><th>"Joined"</th><th>"Role"</th><th></th></tr></thead>
                                    <tbody>
                                        {d.members.clone().into_iter().map(|m| {
                                            let can_change = manages && !m.is_you && (is_owner || m.role != "owner");
                                            let (uid_role, uid_remove, email) = (m.user_id.clone(), m.user_id.clone(), m.email.clone());
                                            view! {
                                                <tr class="member-row" data-email=m.email.clone()>
                                                    <td>{m.email.clone()} {m.is_you.then(|| view! { <span class="muted small">" (you)"</span> })}</td>
                                                    <td>{m.joined.clone()}</td>
                                                    <td>
                                                        {if can_change {
                                                            let current = m.role.clone();
                                                            view! {
                                                                <select class="role-select" aria-label=format!("Role of {}", m.email) on:change=move |ev| {
                                                                    set_role.dispatch(SetRole { user_id: uid_role.clone(), role: event_target_value(&ev) });
                                                                }>
                                                                    {ROLES.iter().filter(|r| is_owner || **r != "owner").map(|r| view! {
                                                                        <option value=*r selected=current == *r>{*r}</option>
                                                                    }).collect_view()}
                                                                </select>
                                                            }.into_any()
                                                        } else {
                                                            view! { <span class=format!("status role-{}", m.role)>{m.role.clone()}</span> }.into_any()
                                                        }}
                                                    </td>
                                                    <td class="row-actions">
                                                        {can_change.then(|| view! {
                                                            <button type="button" class="button danger small" on:click=move |_| {
                                                                if crate::confirm(&format!("Remove {email} from the organisation? The API keys they created here are disabled and their open invitations revoked.")) {
                                                                    remove.dispatch(RemoveMember { user_id: uid_remove.clone() });
                                                                }
                                                            }>"Remove"</button>
                                                        })}
                                                    </td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                </div>
                            </section>
                            {manages.then(|| view! {
                                <section class="panel">
                                    <h2>"Invite someone"</h2>
                                    <p class="muted">"They get an email with a link that works for 7 days. They accept it signed in with that address, or by creating an account."</p>
                                    <ActionForm action=invite attr:class="form inline-form">
                                        <label class="grow">"Email" <input type="email" name="email" required placeholder="colleague@example.com"/></label>
                                        <label>
                                            "Role"
                                            <select name="role">
                                                <option value="member" selected>"member"</option>
                                                <option value="admin">"admin"</option>
                                                {is_owner.then(|| view! { <option value="owner">"owner"</option> })}
                                            </select>
                                        </label>
                                        <button type="submit" class="button">"Send invitation"</button>
                                    </ActionForm>
                                    {move || outcome_line(invite.value().get())}
                                    {move || outcome_line(revoke.value().get())}
                                    {if d.invitations.is_empty() {
                                        view! { <p class="muted empty">"No open invitations."</p> }.into_any()
                                    } else {
                                        view! {
                                            <div class="table-wrap">
                                            <table class="invite-table">
                                                <thead><tr><th>"Invited"</th><th>"Role"</th><th>"By"</th><th>"Expires"</th><th></th></tr></thead>
                                                <tbody>
                                                    {d.invitations.clone().into_iter().map(|i| {
                                                        let id = i.id.clone();
                                                        view! {
                                                            <tr class="invite-row" data-email=i.email.clone()>
                                                                <td>{i.email.clone()}</td>
                                                                <td>{i.role.clone()}</td>
                                                                <td>{i.invited_by.clone().unwrap_or_default()}</td>
                                                                <td>{if i.expired { view! { <span class="status expired">"expired"</span> }.into_any() } else { view! { <span>{i.expires.clone()}</span> }.into_any() }}</td>
                                                                <td class="row-actions">
                                                                    <button type="button" class="button ghost small" on:click=move |_| {
                                                                        revoke.dispatch(RevokeInvitation { id: id.clone() });
                                                                    }>"Revoke"</button>
                                                                </td>
                                                            </tr>
                                                        }
                                                    }).collect_view()}
                                                </tbody>
                                            </table>
                                            </div>
                                        }.into_any()
                                    }}
                                </section>
                            })}
                            <section class="panel">
                                <h2>"Leave"</h2>
                                <p class="muted">"You lose access to its credits and keys; the keys you created here are disabled. An organisation keeps at least one owner."</p>
                                <button type="button" class="button danger" on:click=move |_| {
                                    if crate::confirm(&format!("Leave “{org_name}”?")) {
                                        remove.dispatch(RemoveMember { user_id: me_id.clone() });
                                    }
                                }>"Leave this organisation"</button>
                            </section>
                        }.into_any()
                    }
                })}
            </Transition>
            <section class="panel">
                <h2>"Create another organisation"</h2>
                <p class="muted">"For a team or a client: its own credits, keys and members. You become its owner and the header's switcher moves between your organisations."</p>
                <ActionForm action=create attr:class="form inline-form">
                    <label class="grow">"Name" <input name="name" required maxlength="100" placeholder="e.g. Acme Research"/></label>
                    <button type="submit" class="button">"Create"</button>
                </ActionForm>
                {move || outcome_line(create.value().get())}
            </section>
        </main>
    }
}

fn article(role: &str) -> String {
    match role {
        "owner" => "an owner".into(),
        "admin" => "an admin".into(),
        other => format!("a {other}"),
    }
}

/// `/invite?token=…`: the link from an invitation email.
#[component]
pub fn InvitePage() -> impl IntoView {
    let token = query_param("token");
    let accept = ServerAction::<AcceptInvitation>::new();
    let join = ServerAction::<SignUpInvited>::new();
    let info = Resource::new(token, invitation);
    view! {
        <main class="page narrow auth">
            <Suspense fallback=|| view! { <p class="muted">"Checking the invitation…"</p> }>
                {move || info.get().map(|r| match r {
                    Err(e) => view! {
                        <h1>"Invitation"</h1>
                        <p class="error" role="alert">{form_message(Some(Err(e)))}</p>
                    }.into_any(),
                    Ok(i) if i.state != "pending" => view! {
                        <h1>{format!("Join {}", i.org_name)}</h1>
                        <p class="error" role="alert">{format!("This invitation is {}. Ask {} for a new one.", i.state, i.invited_by.clone().unwrap_or_else(|| "the organisation's admins".into()))}</p>
                    }.into_any(),
                    Ok(i) => {
                        let heading = format!("Join {}", i.org_name);
                        let lede = format!("{} invited {} to this organisation as {}. The invitation expires on ",
                            i.invited_by.clone().unwrap_or_else(|| "An admin".into()), i.email, i.role);
                        let expires = i.expires.clone();
                        let body = match &i.signed_in_as {
                            Some(me) if *me == i.email => view! {
                                <ActionForm action=accept attr:class="form">
                                    <input type="hidden" name="token" value=token/>
                                    <button type="submit" class="button">"Accept the invitation"</button>
                                    {move || outcome_line(accept.value().get())}
                                </ActionForm>
                            }.into_any(),
                            Some(me) => view! {
                                <p class="error" role="alert">{format!("You are signed in as {me}, but the invitation is for {}. Sign out, then open this link again and sign in with that address.", i.email)}</p>
                            }.into_any(),
                            None if i.account_exists => {
                                let next = format!("/signin?next={}", encode(&format!("/invite?token={}", token())));
                                view! {
                                    <p>"You already have an account with this address."</p>
                                    <p><a class="button" href=next>"Sign in to accept"</a></p>
                                }.into_any()
                            }
                            None => {
                                let email = Signal::stored(i.email.clone());
                                view! {
                                    <p>"Create your account to accept: choose a password."</p>
                                    <ActionForm action=join attr:class="form">
                                        <input type="hidden" name="token" value=token/>
                                        <label>"Email" <input type="email" value=i.email.clone() disabled/></label>
                                        <NewPassword email/>
                                        <button type="submit" class="button">"Create account and join"</button>
                                        {move || outcome_line(join.value().get())}
                                    </ActionForm>
                                }.into_any()
                            }
                        };
                        view! {
                            <h1>{heading}</h1>
                            <p class="lede">{lede} <span class="nowrap">{expires}</span> "."</p>
                            {body}
                        }.into_any()
                    }
                })}
            </Suspense>
        </main>
    }
}

/// Percent-encodes a path for a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
