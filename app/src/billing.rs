//! The billing page (balance, buying credits with the fee shown before paying, the history whose running
//! total is the balance) and the page Stripe Checkout returns to.

use crate::account::{form_message, query_param};
use leptos::prelude::*;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

/// One line of the history. Money is exact decimal USD; `amount_usd` is signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub date: String,
    /// "purchase", "usage", "grant", "refund" or "adjustment".
    pub kind: String,
    pub description: String,
    pub amount_usd: String,
    pub balance_after_usd: String,
    /// The order of a purchase (its receipt is at `/billing/receipts/{order}`).
    pub order: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingData {
    pub org_name: String,
    pub balance_usd: String,
    /// Owners and admins buy credits.
    pub can_buy: bool,
    /// Card payments are set up on this platform.
    pub payments: bool,
    pub fee_bp: u32,
    pub fee_min_cents: i64,
    pub min_cents: i64,
    pub max_cents: i64,
    pub history: Vec<HistoryRow>,
    pub page: u32,
    pub pages: u32,
    /// The low-balance alert's threshold, if set.
    pub low_balance_usd: Option<String>,
    /// The name receipts are made out to, when set (else the organisation's name).
    pub billing_name: Option<String>,
    /// The card kept for automatic top-ups ("Visa •••• 4242").
    pub card: Option<String>,
    /// Automatic top-up, when on: below this balance, add this much.
    pub topup_below_usd: Option<String>,
    pub topup_add_usd: Option<String>,
    /// What automatic top-up is doing, in a sentence; `topup_trouble` when it needs a person.
    pub topup_status: String,
    pub topup_trouble: bool,
}

/// An order as the return page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub id: String,
    /// "pending", "paid", "failed", "canceled", "refunded" or "disputed".
    pub status: String,
    pub credits_usd: String,
    pub fee_usd: String,
    pub balance_usd: String,
}

#[server(prefix = "/_app", endpoint = "billing")]
pub async fn load_billing(page: u32) -> Result<BillingData, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.billing(&who, page).await.map_err(ServerFnError::new)
}

/// Starts a purchase and sends the browser to Stripe Checkout.
#[server(prefix = "/_app", endpoint = "buy")]
pub async fn buy_credits(
    amount: String,
    save_card: Option<String>,
) -> Result<Option<String>, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    match b.0.buy_credits(&who, &amount, save_card.is_some()).await {
        Ok(url) => {
            leptos_axum::redirect(&url);
            Ok(None)
        }
        Err(m) => Ok(Some(m)),
    }
}

#[server(prefix = "/_app", endpoint = "redeem")]
pub async fn redeem_code(code: String) -> Result<crate::account::Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0.redeem_promo(&who, &code).await.into())
}

/// Sets (or, blank, removes) the organisation's low-balance alert.
#[server(prefix = "/_app", endpoint = "low_balance")]
pub async fn set_low_balance(amount: String) -> Result<crate::account::Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0.set_low_balance(&who, &amount).await.into())
}

/// Turns automatic top-up on or off.
#[server(prefix = "/_app", endpoint = "auto_topup")]
pub async fn set_auto_topup(
    enabled: Option<String>,
    below: String,
    add: String,
) -> Result<crate::account::Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0
        .set_auto_topup(&who, enabled.is_some(), &below, &add)
        .await
        .into())
}

#[server(prefix = "/_app", endpoint = "remove_card")]
pub async fn remove_saved_card() -> Result<crate::account::Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0.remove_card(&who).await.into())
}

#[server(prefix = "/_app", endpoint = "billing_name")]
pub async fn save_billing_name(name: String) -> Result<crate::account::Outcome, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    Ok(b.0.set_billing_name(&who, &name).await.into())
}

#[server(prefix = "/_app", endpoint = "order")]
pub async fn load_order(id: String) -> Result<OrderView, ServerFnError> {
    let (b, who) = crate::account::signed_in().await?;
    b.0.order(&who, &id).await.map_err(ServerFnError::new)
}

fn usd_cents(c: i64) -> String {
    format!("${}.{:02}", c / 100, c % 100)
}

/// Whole cents from what a person typed ("25", "12.5", "$10.00"), if it is that.
fn cents_of(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches('$');
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    if i.is_empty() || f.len() > 2 || !i.chars().chain(f.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = i.parse().ok()?;
    let frac: i64 = format!("{f:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

const PRESETS: [i64; 4] = [1000, 2500, 5000, 10000];

#[component]
pub fn BillingPage() -> impl IntoView {
    let page = query_param("page");
    let canceled = query_param("canceled");
    let redeem = ServerAction::<RedeemCode>::new();
    let topup = ServerAction::<SetAutoTopup>::new();
    let remove_card = ServerAction::<RemoveSavedCard>::new();
    let billing_name = ServerAction::<SaveBillingName>::new();
    let data = Resource::new(
        move || {
            (
                page().parse::<u32>().unwrap_or(1),
                redeem.version().get(),
                topup.version().get() + remove_card.version().get() + billing_name.version().get(),
            )
        },
        |(p, _, _)| load_billing(p),
    );
    let buy = ServerAction::<BuyCredits>::new();
    let alert = ServerAction::<SetLowBalance>::new();
    let (amount, set_amount) = signal("25".to_string());
    view! {
        <main class="page billing">
            <h1>"Billing"</h1>
            {move || (!canceled().is_empty()).then(|| view! {
                <p class="notice" role="status">"Payment canceled: nothing was charged."</p>
            })}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) if crate::account::error_text(&e).contains("sign in") => view! { <Redirect path="/signin?next=/billing"/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any(),
                    Ok(d) => {
                        let (bp, fee_min, min, max) = (d.fee_bp, d.fee_min_cents, d.min_cents, d.max_cents);
                        let has_saved_card = d.card.is_some();
                        let preview = move || {
                            let a = amount.get();
                            match cents_of(&a) {
                                Some(c) if (min..=max).contains(&c) => {
                                    let fee = crate::purchase_fee_cents(c, bp, fee_min);
                                    Ok((c, fee))
                                }
                                Some(_) => Err(format!("Choose an amount from {} to {}.", usd_cents(min), usd_cents(max))),
                                None => Err("Enter an amount in dollars, like 25 or 12.50.".to_string()),
                            }
                        };
                        view! {
                            <section class="cards">
                                <div class="card">
                                    <div class="card-label">"Balance"</div>
                                    <div class="card-value balance" title=format!("${} exactly", d.balance_usd)>{crate::cents(&d.balance_usd)}</div>
                                    <div class="muted small">{d.org_name.clone()}</div>
                                </div>
                            </section>
                            {match (d.can_buy, d.payments) {
                                (true, true) => view! {
                                    <section class="panel buy">
                                        <h2>"Buy credits"</h2>
                                        <ActionForm action=buy attr:class="form buy-form">
                                            <div class="presets" role="group" aria-label="Amount">
                                                {PRESETS.iter().map(|c| {
                                                    let v = (c / 100).to_string();
                                                    let v2 = v.clone();
                                                    view! {
                                                        <button type="button" class="button ghost preset"
                                                            class:selected=move || amount.get() == v
                                                            on:click=move |_| set_amount.set(v2.clone())>{usd_cents(*c)}</button>
                                                    }
                                                }).collect_view()}
                                            </div>
                                            <label>"Amount (USD)"
                                                <input name="amount" inputmode="decimal" required prop:value=amount
                                                    on:input=move |ev| set_amount.set(event_target_value(&ev))/>
                                            </label>
                                            <label class="check">
                                                <input type="checkbox" name="save_card" value="1"/>
                                                {if has_saved_card { "Save this card for automatic top-up (replaces the saved one)" } else { "Save this card for automatic top-up" }}
                                            </label>
                                            <div class="quote" aria-live="polite">
                                                {move || match preview() {
                                                    Ok((c, fee)) => view! {
                                                        <div class="quote-row"><span>"Credits"</span><span>{usd_cents(c)}</span></div>
                                                        <div class="quote-row"><span>{fee_label(bp, fee_min)}</span><span class="fee">{usd_cents(fee)}</span></div>
                                                        <div class="quote-row total"><span>"You pay"</span><span class="total-value">{usd_cents(c + fee)}</span></div>
                                                    }.into_any(),
                                                    Err(m) => view! { <p class="muted">{m}</p> }.into_any(),
                                                }}
                                            </div>
                                            <button type="submit" class="button" disabled=move || preview().is_err()>"Continue to payment"</button>
                                            {move || match buy.value().get() {
                                                Some(Ok(Some(m))) => form_message(Some(Ok(Some(m)))).map(|m| view! { <p class="error" role="alert">{m}</p> }.into_any()),
                                                Some(Err(e)) => form_message(Some(Err(e))).map(|m| view! { <p class="error" role="alert">{m}</p> }.into_any()),
                                                _ => None,
                                            }}
                                        </ActionForm>
                                        <p class="muted small">"You pay on Stripe's page; the credits arrive as soon as Stripe confirms the payment."</p>
                                    </section>
                                }.into_any(),
                                (true, false) => view! { <p class="notice">"Card payments are not set up on this platform yet; ask its operator for credits."</p> }.into_any(),
                                (false, _) => view! { <p class="muted">"Owners and admins of the organisation buy credits."</p> }.into_any(),
                            }}
                            <section class="panel redeem-panel">
                                <h2>"Redeem a code"</h2>
                                <ActionForm action=redeem attr:class="form inline-form">
                                    <label>"Promo code" <input name="code" required maxlength="40" autocomplete="off" placeholder="e.g. WELCOME5"/></label>
                                    <button type="submit" class="button ghost">"Redeem"</button>
                                </ActionForm>
                                {move || crate::account::outcome_line(redeem.value().get())}
                            </section>
                            {d.can_buy.then(|| {
                                let has_card = d.card.is_some();
                                let on = d.topup_below_usd.is_some();
                                view! {
                                <div class="settings-grid">
                                {d.payments.then(|| view! {
                                    <section class="panel topup-panel">
                                        <h2>"Automatic top-up"</h2>
                                        <p class="muted">"When the balance falls below an amount, the saved card is charged once for a set amount (plus the fee), so API keys keep working."</p>
                                        <div class="saved-card">
                                            {match d.card.clone() {
                                                Some(c) => view! {
                                                    <span class="card-name">{c}</span>
                                                    <ActionForm action=remove_card attr:class="inline">
                                                        <button type="submit" class="button ghost small">"Remove card"</button>
                                                    </ActionForm>
                                                }.into_any(),
                                                None => view! { <span class="muted">"No saved card yet: tick “Save this card for automatic top-up” when you buy credits."</span> }.into_any(),
                                            }}
                                        </div>
                                        <p class="topup-status" class:trouble=d.topup_trouble role="status">{d.topup_status.clone()}</p>
                                        <ActionForm action=topup attr:class="form topup-form">
                                            <label class="check"><input type="checkbox" name="enabled" value="1" checked=on disabled=!has_card/>"Top up automatically"</label>
                                            <div class="inline-form">
                                                <label>"When the balance falls below (USD)" <input name="below" inputmode="decimal" placeholder="5" value=d.topup_below_usd.clone().unwrap_or_default()/></label>
                                                <label>"Add (USD)" <input name="add" inputmode="decimal" placeholder="25" value=d.topup_add_usd.clone().unwrap_or_default()/></label>
                                                <button type="submit" class="button ghost" disabled=!has_card>"Save"</button>
                                            </div>
                                        </ActionForm>
                                        {move || crate::account::outcome_line(topup.value().get())}
                                        {move || crate::account::outcome_line(remove_card.value().get())}
                                    </section>
                                })}
                                <section class="panel alert-panel">
                                    <h2>"Low-balance alert"</h2>
                                    <p class="muted">"The organisation's owners get an email when the balance falls below this amount (once each time). Leave it blank for no alert."</p>
                                    <ActionForm action=alert attr:class="form inline-form">
                                        <label>"Alert below (USD)" <input name="amount" inputmode="decimal" placeholder="no alert" value=d.low_balance_usd.clone().unwrap_or_default()/></label>
                                        <button type="submit" class="button ghost">"Save"</button>
                                    </ActionForm>
                                    {move || crate::account::outcome_line(alert.value().get())}
                                </section>
                                <section class="panel billing-name-panel">
                                    <h2>"Billing name"</h2>
                                    <p class="muted">"Receipts are made out to this name (a company name, say). Blank uses the organisation's name."</p>
                                    <ActionForm action=billing_name attr:class="form inline-form">
                                        <label class="grow">"Bill to" <input name="name" maxlength="200" placeholder=d.org_name.clone() value=d.billing_name.clone().unwrap_or_default()/></label>
                                        <button type="submit" class="button ghost">"Save"</button>
                                    </ActionForm>
                                    {move || crate::account::outcome_line(billing_name.value().get())}
                                </section>
                                </div>
                            }})}
                            <section class="panel">
                                <h2>"History"</h2>
                                {if d.history.is_empty() {
                                    view! { <p class="muted empty">"Nothing yet: purchases, grants and each day's usage appear here."</p> }.into_any()
                                } else {
                                    view! {
                                        <div class="table-wrap">
                                        <table class="history">
                                            <thead><tr><th>"Date"</th><th>"What"</th><th class="num">"Amount"</th><th class="num">"Balance"</th></tr></thead>
                                            <tbody>
                                                {d.history.clone().into_iter().map(|h| {
                                                    let negative = h.amount_usd.starts_with('-');
                                                    view! {
                                                        <tr class=format!("history-row {}", h.kind)>
                                                            <td class="nowrap">{h.date.clone()}</td>
                                                            <td>
                                                                {h.description.clone()}
                                                                {h.order.clone().map(|o| view! { " · " <a class="receipt-link" href=format!("/billing/receipts/{o}") rel="external">"Receipt"</a> })}
                                                            </td>
                                                            <td class="num" class:negative=negative>{signed(&h.amount_usd)}</td>
                                                            <td class="num">{signed(&h.balance_after_usd)}</td>
                                                        </tr>
                                                    }
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                        </div>
                                        {(d.pages > 1).then(|| view! {
                                            <nav class="pager">
                                                {(d.page > 1).then(|| view! { <a href=format!("/billing?page={}", d.page - 1)>"← Newer"</a> })}
                                                <span class="muted">{format!("Page {} of {}", d.page, d.pages)}</span>
                                                {(d.page < d.pages).then(|| view! { <a href=format!("/billing?page={}", d.page + 1)>"Older →"</a> })}
                                            </nav>
                                        })}
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

/// "Platform fee (5.5%, min $0.80)".
fn fee_label(bp: u32, min_cents: i64) -> String {
    if bp == 0 {
        return "Platform fee".into();
    }
    let frac = format!("{:02}", bp % 100);
    let frac = frac.trim_end_matches('0');
    let pct = if frac.is_empty() {
        format!("{}", bp / 100)
    } else {
        format!("{}.{frac}", bp / 100)
    };
    if min_cents > 0 {
        format!("Platform fee ({pct}%, min {})", usd_cents(min_cents))
    } else {
        format!("Platform fee ({pct}%)")
    }
}

/// "-0.5" as "−$0.50", "3" as "$3.00".
fn signed(exact: &str) -> String {
    match exact.strip_prefix('-') {
        Some(rest) => format!("−{}", crate::dollars(rest)),
        None => crate::dollars(exact),
    }
}

/// `/billing/success?order=…`: where Stripe Checkout returns. The credits arrive with the webhook, which
/// may come a moment later: the page says "processing" and looks again until the order is paid.
#[component]
pub fn PurchaseDonePage() -> impl IntoView {
    let order = query_param("order");
    let tick = RwSignal::new(0u32);
    let status = Resource::new(move || (order(), tick.get()), |(o, _)| load_order(o));
    #[cfg(feature = "hydrate")]
    {
        let handle = set_interval_with_handle(
            move || {
                let pending = status
                    .get_untracked()
                    .and_then(|r| r.ok())
                    .is_some_and(|o| o.status == "pending");
                if pending && tick.get_untracked() < 120 {
                    tick.update(|t| *t += 1);
                }
            },
            std::time::Duration::from_secs(1),
        );
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    }
    view! {
        <main class="page narrow">
            <h1>"Thank you"</h1>
            <Transition fallback=|| view! { <p class="muted">"Checking your payment…"</p> }>
                {move || status.get().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{form_message(Some(Err(e)))}</p> }.into_any(),
                    Ok(o) if o.status == "pending" => view! {
                        <p class="processing" role="status"><span class="spinner" aria-hidden="true"></span>"Processing your payment… This page updates by itself."</p>
                    }.into_any(),
                    Ok(o) if o.status == "paid" || o.status == "refunded" || o.status == "disputed" => view! {
                        <p class="notice paid" role="status">{format!("{} of credits added.", crate::dollars(&o.credits_usd))}</p>
                        <section class="cards">
                            <div class="card">
                                <div class="card-label">"Balance"</div>
                                <div class="card-value balance">{crate::cents(&o.balance_usd)}</div>
                            </div>
                        </section>
                        <p class="actions-row">
                            <a class="button" href="/billing">"Back to billing"</a>
                            <a class="button ghost" href=format!("/billing/receipts/{}", o.id) rel="external">"Receipt"</a>
                            <a class="button ghost" href="/keys">"API keys"</a>
                        </p>
                    }.into_any(),
                    Ok(o) => view! {
                        <p class="error" role="alert">{format!("The payment did not go through (order {}, {}). Nothing was added; you can try again.", o.id, o.status)}</p>
                        <p><a class="button" href="/billing">"Back to billing"</a></p>
                    }.into_any(),
                })}
            </Transition>
        </main>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_typed_by_people() {
        assert_eq!(super::cents_of("25"), Some(2500));
        assert_eq!(super::cents_of("$12.5"), Some(1250));
        assert_eq!(super::cents_of("0.05"), Some(5));
        assert_eq!(super::cents_of("1.005"), None);
        assert_eq!(super::cents_of("ten"), None);
        assert_eq!(super::cents_of(""), None);
        assert_eq!(super::signed("-0.5"), "−$0.50");
        assert_eq!(super::fee_label(550, 80), "Platform fee (5.5%, min $0.80)");
        assert_eq!(super::fee_label(500, 0), "Platform fee (5%)");
    }
}
