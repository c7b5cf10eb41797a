//! The server's side of the billing pages: the organisation's balance, its history (every ledger entry,
//! usage summed per day) with the balance after each line, and its orders.

use super::dashboard::internal;
use crate::accounts::orgs::Actor;
use crate::billing::{ledger, purchases};
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
        other => format!("Adjustment ({other})"),
    };
    match (note, reference) {
        (Some(n), _) if kind != "usage" => format!("{what}: {n}"),
        (None, Some(r)) if kind == "purchase" => format!("{what} (order {r})"),
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
    let t = state.terms;
    Ok(BillingData {
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
