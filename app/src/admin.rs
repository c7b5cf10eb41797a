//! The admin area, for platform admins: every user (disable or enable an account), every organisation
//! with its balance, and the dev outbox (emails kept when no SMTP server is configured).

use crate::account::{form_message, outcome_line, Outcome};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    pub id: String,
    pub email: String,
    pub created: String,
    pub verified: bool,
    pub is_admin: bool,
    pub disabled: bool,
    pub orgs: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminOrg {
    pub id: String,
    pub name: String,
    pub members: i64,
    /// Exact decimal USD.
    pub balance_usd: String,
    pub created: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMailView {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub sent: String,
    /// The plain-text body.
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPurchase {
    pub id: String,
    pub org: String,
    pub date: String,
    pub credits_usd: String,
    pub fee_usd: String,
    pub status: String,
    pub refunded_usd: String,
    /// Charged by an automatic top-up (else paid on Stripe Checkout).
    pub automatic: bool,
}

/// A Stripe event that needs a person's eye: refused (a currency the platform does not sell in), or a
/// refund or dispute still waiting for the payment it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    pub id: String,
    pub kind: String,
    pub outcome: String,
    pub received: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPromo {
    pub code: String,
    pub amount_usd: String,
    pub uses: i64,
    pub max_uses: i64,
    pub expires: Option<String>,
}

/// The promo code form as submitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoForm {
    pub code: String,
    pub amount_usd: String,
    pub uses: String,
    /// YYYY-MM-DD (the code stops working at the start of that day, UTC); blank: never.
    pub expires: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminData {
    /// The viewing admin's user id.
    pub me: String,
    pub users: Vec<AdminUser>,
    pub orgs: Vec<AdminOrg>,
    pub outbox: Vec<OutboxMailView>,
    /// True when emails go to the outbox (no SMTP server configured).
    pub outbox_in_use: bool,
    /// The newest orders of every organisation.
    pub purchases: Vec<AdminPurchase>,
    /// Stripe events refused or waiting, newest first.
    pub payment_events: Vec<PaymentEvent>,
    /// A fresh token for the grant form: a form sent twice grants once.
    pub nonce: String,
    pub promos: Vec<AdminPromo>,
}

#[server(prefix = "/_app", endpoint = "admin")]
pub async fn load_admin() -> Result<AdminData, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.admin_overview(&who).await.map_err(ServerFnError::new)
}

#[server(prefix = "/_app", endpoint = "admin_user_disabled")]
pub async fn set_user_disabled(user_id: String, disabled: bool) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0
        .admin_set_user_disabled(&who, &user_id, disabled)
        .await
        .into())
}

#[server(prefix = "/_app", endpoint = "admin_adjust")]
pub async fn adjust_credits(
    org_id: String,
    amount_usd: String,
    reason: String,
    nonce: String,
) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0
        .admin_adjust_credits(&who, &org_id, &amount_usd, &reason, &nonce)
        .await
        .into())
}

#[server(prefix = "/_app", endpoint = "admin_promo")]
pub async fn create_promo(
    code: String,
    amount_usd: String,
    uses: String,
    expires: String,
) -> Result<Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    let form = PromoForm {
        code,
        amount_usd,
        uses,
        expires,
    };
    Ok(b.0
        .admin_create_promo(&who, form)
        .await
        .map(|c| format!("promo code {c} created"))
        .into())
}

/// Links in the plain-text body become clickable.
fn linkify(body: &str) -> impl IntoView {
    body.split_inclusive(char::is_whitespace)
        .map(|w| {
            let t = w.trim_end();
            if t.starts_with("http://") || t.starts_with("https://") {
                view! { <a href=t.to_string()>{t.to_string()}</a>{w[t.len()..].to_string()} }
                    .into_any()
            } else {
                w.to_string().into_any()
            }
        })
        .collect_view()
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let toggle = ServerAction::<SetUserDisabled>::new();
    let adjust = ServerAction::<AdjustCredits>::new();
    let promo = ServerAction::<CreatePromo>::new();
    let data = Resource::new(
        move || {
            (
                toggle.version().get(),
                adjust.version().get(),
                promo.version().get(),
            )
        },
        |_| load_admin(),
    );
    view! {
        <main class="page admin">
            <h1>"Admin"</h1>
            <nav class="admin-tabs"><a href="/admin" aria-current="page">"People and money"</a><a href="/admin/catalog">"Catalog"</a><a href="/admin/analytics">"Analytics"</a></nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) if crate::account::error_text(&e).contains("sign in") => view! { <Redirect path="/signin?next=/admin"/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any(),
                    Ok(d) => {
                        let me = d.me.clone();
                        view! {
                            <nav class="subnav">
                                <a href="#users">{format!("Users ({})", d.users.len())}</a>
                                <a href="#orgs">{format!("Organisations ({})", d.orgs.len())}</a>
                                <a href="#purchases">{format!("Purchases ({})", d.purchases.len())}</a>
                                {(!d.payment_events.is_empty()).then(|| view! { <a href="#payment-events" class="warn">{format!("Payment events to check ({})", d.payment_events.len())}</a> })}
                                <a href="#outbox">{format!("Outbox ({})", d.outbox.len())}</a>
                            </nav>
                            {move || outcome_line(toggle.value().get())}
                            <section class="panel" id="users">
                                <h2>"Users"</h2>
                                <div class="table-wrap">
                                <table class="admin-users">
                                    <thead><tr><th>"Email"</th><th>"Joined"</th><th>"Organisations"</th><th>"Status"</th><th></th></tr></thead>
                                    <tbody>
                                        {d.users.into_iter().map(|u| {
                                            let (id, disabled) = (u.id.clone(), u.disabled);
                                            let mine = u.id == me;
                                            view! {
                                                <tr class="admin-user" data-email=u.email.clone()>
                                                    <td>{u.email.clone()} {u.is_admin.then(|| view! { <span class="status active">"admin"</span> })}</td>
                                                    <td>{u.created.clone()}</td>
                                                    <td class="num">{u.orgs}</td>
                                                    <td>
                                                        {if u.disabled { view! { <span class="status disabled">"disabled"</span> }.into_any() }
                                                         else if u.verified { view! { <span class="status active">"verified"</span> }.into_any() }
                                                         else { view! { <span class="status expired">"unverified"</span> }.into_any() }}
                                                    </td>
                                                    <td class="row-actions">
                                                        {(!mine).then(|| view! {
                                                            <button type="button" class=if disabled { "button ghost small" } else { "button danger small" } on:click=move |_| {
                                                                toggle.dispatch(SetUserDisabled { user_id: id.clone(), disabled: !disabled });
                                                            }>{if disabled { "Enable" } else { "Disable" }}</button>
                                                        })}
                                                    </td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                </div>
                            </section>
                            <section class="panel" id="orgs">
                                <h2>"Organisations"</h2>
                                <div class="table-wrap">
                                <table class="admin-table admin-orgs">
                                    <thead><tr><th>"Name"</th><th>"Created"</th><th class="num">"Members"</th><th class="num">"Balance"</th></tr></thead>
                                    <tbody>
                                        {d.orgs.clone().into_iter().map(|o| view! {
                                            <tr>
                                                <td>{o.name.clone()}</td>
                                                <td>{o.created.clone()}</td>
                                                <td class="num">{o.members}</td>
                                                <td class="num" title=format!("${} exactly", o.balance_usd)>{crate::cents(&o.balance_usd)}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                </div>
                            </section>
                            <section class="panel" id="credits">
                                <h2>"Grant or deduct credits"</h2>
                                <p class="muted">"A ledger entry with your name and the reason; a negative amount deducts."</p>
                                <ActionForm action=adjust attr:class="form inline-form adjust-form">
                                    <input type="hidden" name="nonce" value=d.nonce.clone()/>
                                    <label>"Organisation"
                                        <select name="org_id" required>
                                            {d.orgs.iter().map(|o| view! { <option value=o.id.clone()>{o.name.clone()}</option> }).collect_view()}
                                        </select>
                                    </label>
                                    <label>"Amount (USD)" <input name="amount_usd" required inputmode="decimal" placeholder="10 or -2.50"/></label>
                                    <label class="grow">"Reason" <input name="reason" required maxlength="200" placeholder="e.g. outage credit, ticket #123"/></label>
                                    <button type="submit" class="button">"Apply"</button>
                                </ActionForm>
                                {move || outcome_line(adjust.value().get())}
                            </section>
                            <section class="panel" id="promos">
                                <h2>"Promo codes"</h2>
                                <p class="muted">"Credits an organisation adds on its billing page; each organisation uses a code once."</p>
                                <ActionForm action=promo attr:class="form inline-form promo-form">
                                    <label>"Code" <input name="code" maxlength="40" placeholder="random if blank"/></label>
                                    <label>"Amount (USD)" <input name="amount_usd" required inputmode="decimal" placeholder="5"/></label>
                                    <label>"Uses" <input name="uses" required inputmode="numeric" value="100"/></label>
                                    <label>"Expires on" <input name="expires" type="date"/></label>
                                    <button type="submit" class="button">"Create code"</button>
                                </ActionForm>
                                {move || outcome_line(promo.value().get())}
                                {(!d.promos.is_empty()).then(|| view! {
                                    <div class="table-wrap">
                                    <table class="admin-table promo-table">
                                        <thead><tr><th>"Code"</th><th class="num">"Amount"</th><th class="num">"Used"</th><th>"Expires"</th></tr></thead>
                                        <tbody>
                                            {d.promos.iter().map(|p| view! {
                                                <tr class="promo-row" data-code=p.code.clone()>
                                                    <td><code>{p.code.clone()}</code></td>
                                                    <td class="num">{crate::dollars(&p.amount_usd)}</td>
                                                    <td class="num">{format!("{} of {}", p.uses, p.max_uses)}</td>
                                                    <td>{p.expires.clone().unwrap_or_else(|| "never".into())}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    </div>
                                })}
                            </section>
                            <section class="panel" id="purchases">
                                <h2>"Purchases"</h2>
                                {if d.purchases.is_empty() {
                                    view! { <p class="muted empty">"No purchases yet."</p> }.into_any()
                                } else {
                                    view! {
                                        <div class="table-wrap">
                                        <table class="admin-table admin-purchases">
                                            <thead><tr><th>"Date"</th><th>"Organisation"</th><th>"How"</th><th class="num">"Credits"</th><th class="num">"Fee"</th><th>"Status"</th><th class="num" title="Refunded, and taken back by open or lost disputes">"Taken back"</th></tr></thead>
                                            <tbody>
                                                {d.purchases.iter().map(|p| view! {
                                                    <tr title=p.id.clone()>
                                                        <td>{p.date.clone()}</td>
                                                        <td>{p.org.clone()}</td>
                                                        <td>{if p.automatic { "Automatic top-up" } else { "Checkout" }}</td>
                                                        <td class="num">{crate::dollars(&p.credits_usd)}</td>
                                                        <td class="num">{crate::dollars(&p.fee_usd)}</td>
                                                        <td><span class=format!("status {}", if p.status == "paid" { "active" } else if p.status == "pending" { "disabled" } else { "expired" })>{p.status.clone()}</span></td>
                                                        <td class="num">{crate::dollars(&p.refunded_usd)}</td>
                                                    </tr>
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                        </div>
                                    }.into_any()
                                }}
                            </section>
                            {(!d.payment_events.is_empty()).then(|| view! {
                                <section class="panel" id="payment-events">
                                    <h2>"Payment events to check"</h2>
                                    <p class="muted">"Stripe events that moved no money: refused (a currency other than USD), or a refund or dispute waiting for the payment it belongs to (applied when that payment arrives)."</p>
                                    <div class="table-wrap">
                                    <table class="admin-table admin-payment-events">
                                        <thead><tr><th>"Received"</th><th>"Event"</th><th>"Type"</th><th>"What happened"</th></tr></thead>
                                        <tbody>
                                            {d.payment_events.iter().map(|e| view! {
                                                <tr>
                                                    <td>{e.received.clone()}</td>
                                                    <td><code>{e.id.clone()}</code></td>
                                                    <td>{e.kind.clone()}</td>
                                                    <td>{e.outcome.clone()}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    </div>
                                </section>
                            })}
                            <section class="panel" id="outbox">
                                <h2>"Outbox"</h2>
                                <p class="muted">{if d.outbox_in_use {
                                    "No SMTP server is configured (SWITCHYARD_SMTP_URL), so emails are kept here instead of sent. The newest 50:"
                                } else {
                                    "Emails are sent over SMTP. Emails kept here before SMTP was configured:"
                                }}</p>
                                {if d.outbox.is_empty() {
                                    view! { <p class="muted empty">"No emails yet."</p> }.into_any()
                                } else {
                                    view! {
                                        <ul class="outbox">
                                            {d.outbox.into_iter().map(|m| view! {
                                                <li class="mail" data-to=m.to.clone()>
                                                    <details>
                                                        <summary>
                                                            <span class="mail-subject">{m.subject.clone()}</span>
                                                            <span class="muted small">{format!(" to {} · {}", m.to, m.sent)}</span>
                                                        </summary>
                                                        <pre class="mail-body">{linkify(&m.body)}</pre>
                                                    </details>
                                                </li>
                                            }).collect_view()}
                                        </ul>
                                    }.into_any()
                                }}
                            </section>
                        }.into_any()
                    }
                })}
            </Transition>
        </main>
    }
}
