//! Automatic top-up: an organisation saves a card while buying credits on Stripe Checkout, sets a
//! threshold and an amount, and when its balance falls below the threshold the platform charges the card
//! off-session (a confirmed PaymentIntent) for that amount plus the usual fee.
//!
//! At most one charge per crossing: `orgs.topup_armed` is cleared by a conditional update before the
//! charge (so two instances cannot both charge) and set again only once the balance is back at or above
//! the threshold. A declined charge re-arms after a backoff that doubles (`topup_retry_ms`, then ×2, ×4);
//! after [`MAX_DECLINES`] in a row the top-up pauses until the card or the settings are saved again.
//! The credits are granted by the same code as Checkout purchases, from the PaymentIntent's answer or
//! its webhook, whichever comes first; the order's ledger key makes the second a no-op.

use super::purchases::{self, Payment};
use crate::accounts::orgs::Actor;
use crate::money::Nanos;
use crate::state::AppState;
use crate::store::now_ms;

/// Declined charges in a row after which automatic top-up waits for a person.
pub const MAX_DECLINES: i64 = 4;

/// Stripe keeps idempotency keys for 24 hours: an unanswered charge is retried with its key within that.
const REUSE_ORDER_MS: i64 = 23 * 3_600_000;

/// A card saved at Stripe, as the platform keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedCard {
    pub payment_method: String,
    /// "Visa •••• 4242".
    pub label: String,
}

fn card_label(brand: &str, last4: &str) -> String {
    let brand = match brand {
        "amex" => "American Express".to_string(),
        "mastercard" => "Mastercard".to_string(),
        "visa" => "Visa".to_string(),
        "" | "unknown" => "Card".to_string(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    };
    format!("{brand} •••• {last4}")
}

/// The card a paid PaymentIntent was paid with.
pub async fn card_of(
    client: &stripe::Client,
    payment_intent: &str,
) -> Result<Option<SavedCard>, stripe::StripeError> {
    use stripe_api::payment_intent::RetrievePaymentIntent;
    use stripe_types::Expandable;
    let pi = RetrievePaymentIntent::new(payment_intent)
        .expand(vec!["payment_method".to_string()])
        .send(client)
        .await?;
    Ok(match pi.payment_method {
        Some(Expandable::Object(pm)) => Some(SavedCard {
            payment_method: pm.id.as_str().to_string(),
            label: pm
                .card
                .as_ref()
                .map_or("Saved card".into(), |c| card_label(&c.brand, &c.last4)),
        }),
        Some(Expandable::Id(id)) => Some(SavedCard {
            payment_method: id.as_str().to_string(),
            label: "Saved card".into(),
        }),
        None => None,
    })
}

/// The organisation's Stripe customer, created on first need (named as receipts name the organisation).
pub async fn ensure_customer(
    state: &AppState,
    client: &stripe::Client,
    org_id: &str,
    email: Option<&str>,
) -> Result<String, String> {
    use stripe_api::customer::CreateCustomer;
    let internal = crate::web::dashboard::internal;
    let (existing, name): (Option<String>, String) = sqlx::query_as(
        "SELECT stripe_customer_id, COALESCE(billing_name, name) FROM orgs WHERE id = $1",
    )
    .bind(org_id)
    .fetch_one(&state.store.pool)
    .await
    .map_err(internal)?;
    if let Some(c) = existing {
        return Ok(c);
    }
    let mut req = CreateCustomer::new()
        .name(name)
        .metadata(std::collections::HashMap::from([(
            "org_id".to_string(),
            org_id.to_string(),
        )]));
    if let Some(e) = email {
        req = req.email(e);
    }
    let customer = req.send(client).await.map_err(|e| {
        tracing::error!(org = %org_id, error = %e, "creating the Stripe customer failed");
        "the payment provider did not answer; nothing was charged, try again in a moment"
            .to_string()
    })?;
    // Two purchases at once may each create one; the first stored wins and the other stays unused.
    sqlx::query(
        "UPDATE orgs SET stripe_customer_id = COALESCE(stripe_customer_id, $1) WHERE id = $2",
    )
    .bind(customer.id.as_str())
    .bind(org_id)
    .execute(&state.store.writer)
    .await
    .map_err(internal)?;
    let (id,): (String,) = sqlx::query_as("SELECT stripe_customer_id FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_one(&state.store.writer)
        .await
        .map_err(internal)?;
    Ok(id)
}

/// Turns automatic top-up on (threshold and amount in USD) or off. Saving forgets earlier declines
/// (so a paused top-up tries again). A new threshold is a new crossing; saving the same one again
/// does not charge twice for the current crossing.
pub async fn configure(
    state: &AppState,
    actor: &Actor,
    enabled: bool,
    threshold_usd: &str,
    amount_usd: &str,
) -> Result<String, String> {
    let internal = crate::web::dashboard::internal;
    if !actor.role.manages() {
        return Err("only the organisation's owners and admins set up automatic top-up".into());
    }
    if !enabled {
        sqlx::query(
            "UPDATE orgs SET topup_threshold_nanos = NULL, topup_amount_nanos = NULL, topup_armed = 1, \
             topup_failures = 0, topup_retry_at = NULL, topup_error = NULL WHERE id = $1",
        )
        .bind(&actor.org_id)
        .execute(&state.store.writer)
        .await
        .map_err(internal)?;
        return Ok("automatic top-up is off".into());
    }
    let t = threshold_usd.trim().trim_start_matches('$');
    let threshold =
        Nanos::parse_usd(t).map_err(|e| format!("when the balance falls below: {e}"))?;
    if threshold.0 < 0 {
        return Err("when the balance falls below: $0 or more".into());
    }
    let q = state
        .terms
        .parse(amount_usd)
        .map_err(|e| e.replacen("amount", "add", 1))?;
    let (card,): (Option<String>,) = sqlx::query_as("SELECT card_label FROM orgs WHERE id = $1")
        .bind(&actor.org_id)
        .fetch_one(&state.store.pool)
        .await
        .map_err(internal)?;
    let Some(card) = card else {
        return Err("save a card first: buy credits once with \"Save this card for automatic top-up\" ticked".into());
    };
    sqlx::query(
        "UPDATE orgs SET topup_armed = CASE WHEN topup_threshold_nanos = $1 THEN topup_armed ELSE 1 END, \
         topup_threshold_nanos = $1, topup_amount_nanos = $2, \
         topup_failures = 0, topup_retry_at = NULL, topup_error = NULL WHERE id = $3",
    )
    .bind(threshold.0)
    .bind(q.credits.0)
    .bind(&actor.org_id)
    .execute(&state.store.writer)
    .await
    .map_err(internal)?;
    tracing::info!(org = %actor.org_id, threshold = %threshold.to_usd_string(), amount = %q.credits.to_usd_string(), "automatic top-up set");
    Ok(format!(
        "when the balance falls below {}, {card} is charged {} ({} of credits and a {} fee)",
        threshold.dollars(),
        q.total().dollars(),
        q.credits.dollars(),
        q.fee.dollars(),
    ))
}

/// Forgets the saved card (and so turns automatic top-up off).
pub async fn remove_card(state: &AppState, actor: &Actor) -> Result<String, String> {
    if !actor.role.manages() {
        return Err("only the organisation's owners and admins remove the card".into());
    }
    sqlx::query(
        "UPDATE orgs SET card_payment_method = NULL, card_label = NULL, topup_threshold_nanos = NULL, \
         topup_amount_nanos = NULL, topup_armed = 1, topup_failures = 0, topup_retry_at = NULL, \
         topup_error = NULL WHERE id = $1",
    )
    .bind(&actor.org_id)
    .execute(&state.store.writer)
    .await
    .map_err(crate::web::dashboard::internal)?;
    Ok("the card is removed and automatic top-up is off".into())
}

type Candidate = (
    String,
    i64,
    i64,
    i64,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

/// One pass over the organisations with automatic top-up: re-arms those whose balance recovered and
/// charges those under their threshold. `now` is the clock (ms) the backoff is measured against.
/// Returns the charges attempted.
pub async fn check_once(state: &AppState, now: i64) -> anyhow::Result<usize> {
    let store = &state.store;
    let rows: Vec<Candidate> = sqlx::query_as(
        "SELECT id, credits_nanos - usage_nanos, topup_threshold_nanos, topup_amount_nanos, \
                stripe_customer_id, card_payment_method, topup_armed, topup_failures, topup_retry_at \
         FROM orgs WHERE topup_threshold_nanos IS NOT NULL AND topup_amount_nanos IS NOT NULL",
    )
    .fetch_all(&store.pool)
    .await?;
    let mut attempted = 0;
    for (org, balance, threshold, amount, customer, card, armed, failures, retry_at) in rows {
        if balance >= threshold {
            if armed == 0 || failures > 0 {
                sqlx::query(
                    "UPDATE orgs SET topup_armed = 1, topup_failures = 0, topup_retry_at = NULL, \
                     topup_error = NULL WHERE id = $1",
                )
                .bind(&org)
                .execute(&store.writer)
                .await?;
            }
            continue;
        }
        if armed == 0 || failures >= MAX_DECLINES || retry_at.is_some_and(|r| r > now) {
            continue;
        }
        let (Some(customer), Some(card), Some(client)) = (customer, card, state.stripe.as_ref())
        else {
            continue;
        };
        // Claim this crossing, on the balance as it is now: only one instance (and one pass) charges.
        let claimed = sqlx::query(
            "UPDATE orgs SET topup_armed = 0 WHERE id = $1 AND topup_armed = 1 \
             AND topup_failures = $2 AND credits_nanos - usage_nanos < topup_threshold_nanos",
        )
        .bind(&org)
        .bind(failures)
        .execute(&store.writer)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            continue;
        }
        attempted += 1;
        charge(state, client, &org, &customer, &card, Nanos(amount), now).await?;
    }
    Ok(attempted)
}

/// Charges the saved card for one top-up and records what happened.
async fn charge(
    state: &AppState,
    client: &stripe::Client,
    org: &str,
    customer: &str,
    card: &str,
    amount: Nanos,
    now: i64,
) -> anyhow::Result<()> {
    use stripe_api::payment_intent::{CreatePaymentIntent, CreatePaymentIntentOffSession};
    use stripe_core::{IdempotencyKey, RequestStrategy, StripeRequest};
    let store = &state.store;
    let q = state.terms.quote(amount);
    // An earlier try that got no answer is repeated under its own key, so Stripe charges it at most once.
    let unanswered: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT id, amount_nanos, fee_nanos FROM orders WHERE org_id = $1 AND kind = 'auto_topup' \
         AND status = 'pending' AND created_at > $2 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(org)
    .bind(now_ms() - REUSE_ORDER_MS)
    .fetch_optional(&store.pool)
    .await?;
    let (order, credits, fee) = match unanswered {
        Some(o) => o,
        None => {
            let id = format!("ord_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(
                "INSERT INTO orders (id, org_id, created_by, amount_nanos, fee_nanos, status, created_at, kind) \
                 VALUES ($1, $2, NULL, $3, $4, 'pending', $5, 'auto_topup')",
            )
            .bind(&id)
            .bind(org)
            .bind(q.credits.0)
            .bind(q.fee.0)
            .bind(now_ms())
            .execute(&store.writer)
            .await?;
            (id, q.credits.0, q.fee.0)
        }
    };
    let cents = (credits + fee) / purchases::CENT;
    let key = IdempotencyKey::new(&order)?;
    let answer = CreatePaymentIntent::new(cents, stripe_types::Currency::USD)
        .customer(customer)
        .payment_method(card)
        .confirm(true)
        .off_session(CreatePaymentIntentOffSession::Bool(true))
        .description(format!(
            "Switchyard credits (automatic top-up) {}",
            Nanos(credits).to_usd_string()
        ))
        .metadata(std::collections::HashMap::from([
            ("order_id".to_string(), order.clone()),
            ("org_id".to_string(), org.to_string()),
            ("kind".to_string(), "auto_topup".to_string()),
        ]))
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(client)
        .await;
    match answer {
        Ok(pi) => {
            use stripe_shared::PaymentIntentStatus as S;
            match pi.status {
                S::Succeeded => {
                    let mut tx = store.writer.begin().await?;
                    let outcome = purchases::paid(
                        &mut tx,
                        Payment {
                            order: Some(&order),
                            collected_cents: pi.amount_received,
                            payment_intent: Some(pi.id.as_str()),
                            ..Payment::default()
                        },
                    )
                    .await?;
                    tx.commit().await?;
                    tracing::info!(org = %org, order = %order, outcome, "automatic top-up charged");
                }
                // Settles later; its webhook grants the credits.
                _ => {
                    sqlx::query("UPDATE orders SET stripe_payment_intent = $1 WHERE id = $2")
                        .bind(pi.id.as_str())
                        .bind(&order)
                        .execute(&store.writer)
                        .await?;
                    tracing::info!(org = %org, order = %order, status = ?pi.status, "automatic top-up submitted");
                }
            }
        }
        Err(stripe::StripeError::Stripe(e, status))
            if status == 402 || e.type_ == stripe_shared::ApiErrorsType::CardError =>
        {
            let why = e
                .message
                .clone()
                .unwrap_or_else(|| "the card was declined".into());
            let code = e.code.as_ref().map(|c| c.as_str().to_string());
            let why = if code.as_deref() == Some("authentication_required") {
                format!("{why} Buy credits once on this page to confirm the card, with \"Save this card\" ticked.")
            } else {
                why
            };
            declined(state, org, &order, &why, now).await?;
            tracing::warn!(org = %org, order = %order, code = ?code, "automatic top-up declined");
        }
        Err(e) => {
            // No answer (or Stripe's own trouble): the order stays pending and is tried again, under
            // the same idempotency key, after the backoff.
            tracing::warn!(org = %org, order = %order, error = %e, "automatic top-up got no answer from Stripe; will retry");
            let failures = backoff(
                state,
                org,
                &order,
                "the payment provider did not answer",
                now,
            )
            .await?;
            if failures >= MAX_DECLINES {
                sqlx::query(
                    "UPDATE orders SET status = 'failed' WHERE id = $1 AND status = 'pending'",
                )
                .bind(&order)
                .execute(&store.writer)
                .await?;
            }
        }
    }
    Ok(())
}

async fn declined(
    state: &AppState,
    org: &str,
    order: &str,
    why: &str,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE orders SET status = 'failed' WHERE id = $1 AND status = 'pending'")
        .bind(order)
        .execute(&state.store.writer)
        .await?;
    backoff(state, org, order, why, now).await?;
    Ok(())
}

/// Counts a failure of `order`, re-arms the top-up for after the (doubling) wait; returns the failures
/// so far. Nothing is counted if the order was paid meanwhile (its webhook can overtake a lost answer).
async fn backoff(
    state: &AppState,
    org: &str,
    order: &str,
    why: &str,
    now: i64,
) -> anyhow::Result<i64> {
    let (failures,): (i64,) = sqlx::query_as("SELECT topup_failures FROM orgs WHERE id = $1")
        .bind(org)
        .fetch_one(&state.store.writer)
        .await?;
    let failures = failures + 1;
    let wait = (state.cfg.topup_retry_ms as i64).saturating_mul(1 << (failures - 1).min(16));
    sqlx::query(
        "UPDATE orgs SET topup_failures = $1, topup_retry_at = $2, topup_error = $3, topup_armed = 1 \
         WHERE id = $4 AND NOT EXISTS (SELECT 1 FROM orders WHERE id = $5 AND status = 'paid')",
    )
    .bind(failures)
    .bind(now.saturating_add(wait))
    .bind(why)
    .bind(org)
    .bind(order)
    .execute(&state.store.writer)
    .await?;
    Ok(failures)
}

/// Checks every `low_balance_check_ms`, beside the low-balance alerts.
pub async fn run(state: AppState) {
    let every = crate::config::Config::ms(state.cfg.low_balance_check_ms.max(100));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = check_once(&state, now_ms()).await {
            tracing::warn!(error = %e, "automatic top-up pass failed; trying again later");
        }
    }
}

/// What automatic top-up is doing, for the billing page.
pub struct Status {
    pub card: Option<String>,
    pub threshold: Option<Nanos>,
    pub amount: Option<Nanos>,
    pub failures: i64,
    pub retry_at: Option<i64>,
    pub error: Option<String>,
    pub armed: bool,
    /// The newest automatic top-up order: (status, credits, created_at).
    pub last: Option<(String, Nanos, i64)>,
}

pub async fn status(store: &crate::store::Store, org: &str) -> Result<Status, sqlx::Error> {
    type Row = (
        Option<String>,
        Option<i64>,
        Option<i64>,
        i64,
        Option<i64>,
        Option<String>,
        i64,
    );
    let (card, threshold, amount, failures, retry_at, error, armed): Row = sqlx::query_as(
        "SELECT card_label, topup_threshold_nanos, topup_amount_nanos, topup_failures, topup_retry_at, \
         topup_error, topup_armed FROM orgs WHERE id = $1",
    )
    .bind(org)
    .fetch_one(&store.pool)
    .await?;
    let last: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT status, amount_nanos, created_at FROM orders WHERE org_id = $1 AND kind = 'auto_topup' \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(org)
    .fetch_optional(&store.pool)
    .await?;
    Ok(Status {
        card,
        threshold: threshold.map(Nanos),
        amount: amount.map(Nanos),
        failures,
        retry_at,
        error,
        armed: armed != 0,
        last: last.map(|(s, a, t)| (s, Nanos(a), t)),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cards_are_named_like_wallets_name_them() {
        assert_eq!(super::card_label("visa", "4242"), "Visa •••• 4242");
        assert_eq!(
            super::card_label("amex", "0005"),
            "American Express •••• 0005"
        );
        assert_eq!(super::card_label("discover", "1117"), "Discover •••• 1117");
        assert_eq!(super::card_label("", "1"), "Card •••• 1");
    }
}
