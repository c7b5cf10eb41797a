//! The server's side of the billing pages: the organisation's balance, its history (every ledger entry,
//! usage summed per day) with the balance after each line, and its orders.

use super::dashboard::internal;
use crate::accounts::orgs::Actor;
use crate::billing::{ledger, purchases, topup};
use crate::money::Nanos;
use crate::state::AppState;
use switchyard_app::billing::{BillingData, HistoryRow, OrderView};

const PER_PAGE: usize = 25;
const DAY_MS: i64 = 86_400_000;

fn describe(kind: &str, reference: Option<&str>, note: Option<&str>) -> String {
    let what = match kind {
        "purchase" => "Credits bought by card".to_string(),
        "usage" => "API usage".to_string(),
        "grant" => "Credits granted".to_string(),
        "refund" => "Card payment refunded".to_string(),
        "adjustment" => "Adjustment by the operator".to_string(),
        other => format!("Adjustment ({other})"),
    };
    match (note, reference) {
        (Some(n), _) if kind != "usage" => format!("{what}: {n}"),
        _ => what,
    }
}

pub async fn page(state: &AppState, actor: &Actor, page: u32) -> Result<BillingData, String> {
    let store = &state.store;
    let (org_name,): (String,) = sqlx::query_as("SELECT name FROM orgs WHERE id = $1")
        .bind(&actor.org_id)
        .fetch_one(&store.pool)
        .await
        .map_err(internal)?;
    let balance = ledger::balance(store, &actor.org_id)
        .await
        .map_err(internal)?
        .map_or(Nanos(0), |b| b.balance());
    // Newest first: every entry but usage, and usage as one line per UTC day.
    type Row = (i64, String, i64, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT at, kind, amount, reference, note FROM ( \
           SELECT created_at AS at, kind, amount_nanos AS amount, reference, note FROM ledger \
           WHERE org_id = $1 AND kind <> 'usage' \
           UNION ALL \
           SELECT MAX(created_at) AS at, 'usage' AS kind, CAST(SUM(amount_nanos) AS BIGINT) AS amount, \
                  NULL AS reference, NULL AS note \
           FROM ledger WHERE org_id = $1 AND kind = 'usage' GROUP BY created_at / {DAY_MS} \
         ) h ORDER BY at DESC, kind"
    ))
    .bind(&actor.org_id)
    .fetch_all(&store.pool)
    .await
    .map_err(internal)?;
    // The balance after each line, walking back from today's.
    let mut after = balance.0;
    let mut history = Vec::with_capacity(rows.len());
    for (at, kind, amount, reference, note) in rows {
        let date = if kind == "usage" {
            super::day(at)
        } else {
            super::minute(at)
        };
        history.push(HistoryRow {
            order: (kind == "purchase").then(|| reference.clone()).flatten(),
            date,
            description: describe(&kind, reference.as_deref(), note.as_deref()),
            kind,
            amount_usd: Nanos(amount).to_usd_string(),
            balance_after_usd: Nanos(after).to_usd_string(),
        });
        after -= amount;
    }
    let pages = history.len().div_ceil(PER_PAGE).max(1) as u32;
    let page = page.clamp(1, pages);
    let start = (page as usize - 1) * PER_PAGE;
    let history = history.into_iter().skip(start).take(PER_PAGE).collect();
    let (low, billing_name): (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT low_balance_nanos, billing_name FROM orgs WHERE id = $1")
            .bind(&actor.org_id)
            .fetch_one(&store.pool)
            .await
            .map_err(internal)?;
    let topup = topup::status(store, &actor.org_id)
        .await
        .map_err(internal)?;
    let (topup_status, topup_trouble) = topup_line(&topup);
    let t = state.terms;
    Ok(BillingData {
        billing_name,
        card: topup.card.clone(),
        topup_below_usd: topup.threshold.map(|n| n.to_usd_string()),
        topup_add_usd: topup.amount.map(|n| n.to_usd_string()),
        topup_status,
        topup_trouble,
        low_balance_usd: low.map(|l| Nanos(l).to_usd_string()),
        org_name,
        balance_usd: balance.to_usd_string(),
        can_buy: actor.role.manages(),
        payments: state.stripe.is_some(),
        fee_bp: t.fee_bp,
        fee_min_cents: t.fee_min.0 / 10_000_000,
        min_cents: t.min.0 / 10_000_000,
        max_cents: t.max.0 / 10_000_000,
        history,
        page,
        pages,
    })
}

/// One sentence on what automatic top-up is doing, and whether it needs a person.
fn topup_line(st: &topup::Status) -> (String, bool) {
    let (Some(below), Some(add)) = (st.threshold, st.amount) else {
        return ("Off.".into(), false);
    };
    let error = st.error.as_deref().unwrap_or("the card was declined.");
    if st.failures >= topup::MAX_DECLINES {
        return (
            format!(
                "Paused after {} failed charges in a row ({error}) Save a card again — buy credits with \"Save this card\" ticked — or save these settings to try again.",
                st.failures
            ),
            true,
        );
    }
    if st.failures > 0 {
        let next = st.retry_at.map(super::minute).unwrap_or_default();
        return (
            format!(
                "The last charge failed: {error} Next try after {next} (try {} of {}).",
                st.failures + 1,
                topup::MAX_DECLINES
            ),
            true,
        );
    }
    let card = st.card.as_deref().unwrap_or("the saved card");
    match &st.last {
        Some((status, credits, _)) if status == "pending" && !st.armed => (
            format!(
                "Charging {card} for {} of credits; they arrive as soon as Stripe confirms.",
                credits.dollars()
            ),
            false,
        ),
        Some((status, credits, at)) if status == "paid" => (
            format!(
                "On. Last top-up: {} on {}. Next: {} when the balance falls below {}.",
                credits.dollars(),
                super::minute(*at),
                add.dollars(),
                below.dollars()
            ),
            false,
        ),
        _ => (
            format!(
                "On. {card} is charged for {} of credits when the balance falls below {}.",
                add.dollars(),
                below.dollars()
            ),
            false,
        ),
    }
}

/// Sets the name receipts bill to (owners and admins); blank goes back to the organisation's name.
pub async fn set_billing_name(
    store: &crate::store::Store,
    actor: &Actor,
    name: &str,
) -> Result<String, String> {
    if !actor.role.manages() {
        return Err("only the organisation's owners and admins set the billing name".into());
    }
    let name = name.trim();
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err("billing name: at most 200 characters, on one line".into());
    }
    sqlx::query("UPDATE orgs SET billing_name = $1 WHERE id = $2")
        .bind((!name.is_empty()).then_some(name))
        .bind(&actor.org_id)
        .execute(&store.writer)
        .await
        .map_err(internal)?;
    Ok(if name.is_empty() {
        "receipts show the organisation's name".into()
    } else {
        format!("receipts are made out to {name}")
    })
}

/// Sets the low-balance alert (owners and admins); blank removes it. A new threshold re-arms the alert.
pub async fn set_low_balance(
    store: &crate::store::Store,
    actor: &Actor,
    amount_usd: &str,
) -> Result<String, String> {
    if !actor.role.manages() {
        return Err("only the organisation's owners and admins set the alert".into());
    }
    let v = amount_usd.trim().trim_start_matches('$');
    let threshold = if v.is_empty() {
        None
    } else {
        Some(Nanos::parse_usd(v).map_err(|e| format!("alert below: {e}"))?)
    };
    sqlx::query("UPDATE orgs SET low_balance_nanos = $1, low_balance_notified = 0 WHERE id = $2")
        .bind(threshold.map(|t| t.0))
        .bind(&actor.org_id)
        .execute(&store.writer)
        .await
        .map_err(internal)?;
    Ok(match threshold {
        Some(t) => format!(
            "the owners will get an email when the balance falls below ${}",
            t.to_usd_string()
        ),
        None => "no low-balance alert".into(),
    })
}

pub async fn order(state: &AppState, actor: &Actor, id: &str) -> Result<OrderView, String> {
    let o = purchases::find_order(&state.store, &actor.org_id, id)
        .await
        .map_err(internal)?
        .ok_or("no such order in this organisation")?;
    let balance = ledger::balance(&state.store, &actor.org_id)
        .await
        .map_err(internal)?
        .map_or(Nanos(0), |b| b.balance());
    Ok(OrderView {
        id: o.id,
        status: o.status,
        credits_usd: Nanos(o.amount_nanos).to_usd_string(),
        fee_usd: Nanos(o.fee_nanos).to_usd_string(),
        balance_usd: balance.to_usd_string(),
    })
}

#[derive(askama::Template)]
#[template(path = "receipt.html")]
struct Receipt {
    order_id: String,
    status_title: String,
    date: String,
    org_name: String,
    buyer: String,
    payment: String,
    credits: String,
    fee: String,
    total: String,
    refunded: String,
}

fn usd(n: i64) -> String {
    Nanos(n).dollars()
}

/// `GET /billing/receipts/{order}`: a printable receipt of one of the organisation's paid orders.
pub async fn receipt(
    state: AppState,
    session: tower_sessions::Session,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::{Html, IntoResponse, Redirect};
    let Some(actor) = super::usage_pages::session_actor(&state, &session).await else {
        return Redirect::to(&format!("/signin?next=/billing/receipts/{id}")).into_response();
    };
    let not_found = || {
        (
            axum::http::StatusCode::NOT_FOUND,
            Html(
                "<h1>No such receipt</h1><p><a href=\"/billing\">Back to billing</a></p>"
                    .to_string(),
            ),
        )
            .into_response()
    };
    type Row = (
        String,
        i64,
        i64,
        String,
        i64,
        Option<i64>,
        String,
        Option<String>,
        String,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT o.id, o.amount_nanos, o.fee_nanos, o.status, o.refunded_nanos, o.paid_at, COALESCE(g.billing_name, g.name), u.email, o.kind \
         FROM orders o JOIN orgs g ON g.id = o.org_id LEFT JOIN users u ON u.id = o.created_by \
         WHERE o.id = $1 AND o.org_id = $2 AND o.paid_at IS NOT NULL",
    )
    .bind(&id)
    .bind(&actor.org_id)
    .fetch_optional(&state.store.pool)
    .await
    .ok()
    .flatten();
    let Some((order_id, credits, fee, status, refunded, paid_at, org_name, buyer, kind)) = row
    else {
        return not_found();
    };
    let r = Receipt {
        order_id,
        status_title: match status.as_str() {
            "refunded" => "Payment received, then refunded".into(),
            "disputed" => "Payment received, then disputed".into(),
            _ => "Payment received — thank you".into(),
        },
        date: super::minute(paid_at.unwrap_or(0)),
        org_name,
        buyer: buyer.unwrap_or_else(|| "Automatic top-up".into()),
        payment: if kind == "auto_topup" {
            "Saved card, charged automatically via Stripe".into()
        } else {
            "Card, via Stripe Checkout".into()
        },
        credits: usd(credits),
        fee: usd(fee),
        total: usd(credits + fee),
        refunded: if refunded > 0 {
            usd(refunded)
        } else {
            String::new()
        },
    };
    match askama::Template::render(&r) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a receipt failed");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "could not render the receipt",
            )
                .into_response()
        }
    }
}
