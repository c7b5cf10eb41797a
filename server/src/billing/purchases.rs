//! Buying credits: an order, a Stripe Checkout Session (async-stripe), and the webhook that grants the
//! credits. Credits come only from a verified webhook, never from the redirect back. Each Stripe event is
//! handled at most once: its id, the order's state change and the ledger row commit together.

use super::stripe_sig;
use crate::accounts::orgs::Actor;
use crate::money::Nanos;
use crate::state::AppState;
use crate::store::now_ms;
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

/// Nanos in one cent.
pub const CENT: i64 = 10_000_000;

/// What a purchase costs: the credits and the platform fee on top.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub credits: Nanos,
    pub fee: Nanos,
}

impl Quote {
    pub fn total(&self) -> Nanos {
        Nanos(self.credits.0 + self.fee.0)
    }
}

/// The purchase rules from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Terms {
    pub fee_bp: u32,
    pub fee_min: Nanos,
    pub min: Nanos,
    pub max: Nanos,
}

impl Terms {
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Terms> {
        let usd = |name: &str, v: &str| {
            Nanos::parse_usd(v).map_err(|e| anyhow::anyhow!("{name} {v:?}: {e}"))
        };
        let t = Terms {
            fee_bp: cfg.purchase_fee_bp,
            fee_min: usd("SWITCHYARD_PURCHASE_FEE_MIN_USD", &cfg.purchase_fee_min_usd)?,
            min: usd("SWITCHYARD_PURCHASE_MIN_USD", &cfg.purchase_min_usd)?,
            max: usd("SWITCHYARD_PURCHASE_MAX_USD", &cfg.purchase_max_usd)?,
        };
        if t.min.0 <= 0 || t.max.0 < t.min.0 {
            anyhow::bail!("SWITCHYARD_PURCHASE_MIN_USD must be above 0 and at most SWITCHYARD_PURCHASE_MAX_USD");
        }
        Ok(t)
    }

    /// The fee for buying `credits` (whole cents), by the formula the billing page previews.
    pub fn quote(&self, credits: Nanos) -> Quote {
        let fee_cents = switchyard_app::purchase_fee_cents(
            credits.0 / CENT,
            self.fee_bp,
            self.fee_min.0 / CENT,
        );
        Quote {
            credits,
            fee: Nanos(fee_cents * CENT),
        }
    }

    /// Checks an amount typed by a person: USD, whole cents, within the limits.
    pub fn parse(&self, usd: &str) -> Result<Quote, String> {
        let v = usd.trim().trim_start_matches('$');
        let n = Nanos::parse_usd(v).map_err(|e| format!("amount: {e}"))?;
        if n.0 % CENT != 0 {
            return Err("amount: whole cents, please (like 25 or 12.50)".into());
        }
        if n.0 < self.min.0 || n.0 > self.max.0 {
            return Err(format!(
                "amount: from ${} to ${}",
                self.min.to_usd_string(),
                self.max.to_usd_string()
            ));
        }
        Ok(self.quote(n))
    }
}

/// The Stripe client, when purchases are set up.
pub fn stripe_client(cfg: &crate::config::Config) -> anyhow::Result<Option<stripe::Client>> {
    let Some(key) = &cfg.stripe_secret_key else {
        return Ok(None);
    };
    let client = stripe::ClientBuilder::new(key.expose())
        .url(cfg.stripe_api_base.clone())
        .build()
        .map_err(|e| {
            anyhow::anyhow!("SWITCHYARD_STRIPE_API_BASE or the secret key is not usable: {e}")
        })?;
    Ok(Some(client))
}

/// Starts a purchase for the actor's organisation: returns the Stripe Checkout URL to send them to.
///
/// With `save_card`, the payment is made as the organisation's Stripe customer and the card is kept for
/// automatic top-ups (`setup_future_usage=off_session`); the webhook records it.
pub async fn start_checkout(
    state: &AppState,
    actor: &Actor,
    amount_usd: &str,
    save_card: bool,
) -> Result<String, String> {
    use stripe_checkout::checkout_session::{
        CreateCheckoutSession, CreateCheckoutSessionLineItems,
        CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionPaymentIntentData,
        CreateCheckoutSessionPaymentIntentDataSetupFutureUsage, ProductData,
    };
    use stripe_core::{IdempotencyKey, RequestStrategy, StripeRequest};
    if !actor.role.manages() {
        return Err("only the organisation's owners and admins buy credits".into());
    }
    let Some(client) = &state.stripe else {
        return Err("card payments are not set up on this platform; ask its operator (SWITCHYARD_STRIPE_SECRET_KEY)".into());
    };
    let q = state.terms.parse(amount_usd)?;
    let order = format!("ord_{}", uuid::Uuid::new_v4().simple());
    let email: Option<(String,)> = sqlx::query_as("SELECT email FROM users WHERE id = $1")
        .bind(&actor.user_id)
        .fetch_optional(&state.store.pool)
        .await
        .map_err(crate::web::dashboard::internal)?;
    sqlx::query(
        "INSERT INTO orders (id, org_id, created_by, amount_nanos, fee_nanos, status, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
    )
    .bind(&order)
    .bind(&actor.org_id)
    .bind(&actor.user_id)
    .bind(q.credits.0)
    .bind(q.fee.0)
    .bind(now_ms())
    .execute(&state.store.writer)
    .await
    .map_err(crate::web::dashboard::internal)?;
    let item = |name: &str, nanos: i64| {
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(stripe_types::Currency::USD);
        price.unit_amount = Some(nanos / CENT);
        price.product_data = Some(ProductData::new(name));
        let mut li = CreateCheckoutSessionLineItems::new();
        li.price_data = Some(price);
        li.quantity = Some(1);
        li
    };
    let mut items = vec![item("Switchyard credits", q.credits.0)];
    if q.fee.0 > 0 {
        items.push(item("Platform fee", q.fee.0));
    }
    let base = &state.public_url;
    let mut metadata = std::collections::HashMap::from([
        ("order_id".to_string(), order.clone()),
        ("org_id".to_string(), actor.org_id.clone()),
    ]);
    let customer = if save_card {
        metadata.insert("save_card".to_string(), "1".to_string());
        let email = email.as_ref().map(|(e,)| e.as_str());
        Some(super::topup::ensure_customer(state, client, &actor.org_id, email).await?)
    } else {
        None
    };
    let mut req = CreateCheckoutSession::new()
        .mode(stripe_shared::CheckoutSessionMode::Payment)
        .client_reference_id(order.clone())
        .line_items(items)
        .metadata(metadata)
        .success_url(format!("{base}/billing/success?order={order}"))
        .cancel_url(format!("{base}/billing?canceled={order}"));
    match (customer, email) {
        (Some(c), _) => {
            let mut pi = CreateCheckoutSessionPaymentIntentData::new();
            pi.setup_future_usage =
                Some(CreateCheckoutSessionPaymentIntentDataSetupFutureUsage::OffSession);
            req = req.customer(c).payment_intent_data(pi);
        }
        (None, Some((e,))) => req = req.customer_email(e),
        (None, None) => {}
    }
    let key = IdempotencyKey::new(&order).map_err(crate::web::dashboard::internal)?;
    let session = req
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(client)
        .await
        .map_err(|e| {
            tracing::error!(order = %order, error = %e, "creating the Stripe Checkout Session failed");
            "the payment provider did not answer; nothing was charged, try again in a moment".to_string()
        })?;
    let url = session
        .url
        .clone()
        .ok_or("the payment provider gave no checkout page; try again")?;
    sqlx::query("UPDATE orders SET stripe_session_id = $1 WHERE id = $2")
        .bind(session.id.as_str())
        .bind(&order)
        .execute(&state.store.writer)
        .await
        .map_err(crate::web::dashboard::internal)?;
    tracing::info!(order = %order, org = %actor.org_id, credits = %q.credits.to_usd_string(), fee = %q.fee.to_usd_string(), "checkout started");
    Ok(url)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message}})),
    )
        .into_response()
}

/// `POST /webhooks/stripe`: verifies the signature on the raw body, then handles the event once.
pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let secrets: Vec<String> = state
        .cfg
        .stripe_webhook_secrets
        .iter()
        .map(|s| s.expose().to_string())
        .collect();
    if let Err(e) = stripe_sig::verify(&body, header, &secrets, now_ms() / 1000) {
        tracing::warn!(error = %e, "refused a Stripe webhook");
        return refuse(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let event: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("the body is not JSON: {e}"),
            )
        }
    };
    let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return refuse(StatusCode::BAD_REQUEST, "the event has no id or type");
    };
    match handle(&state, id, kind, &event["data"]["object"]).await {
        Ok(outcome) => {
            tracing::info!(event = %id, kind, outcome = %outcome, "Stripe event handled");
            Json(json!({"received": true, "outcome": outcome})).into_response()
        }
        // Stripe retries anything but 2xx: a failure here is tried again later.
        Err(e) => {
            tracing::error!(event = %id, kind, error = %e, "handling a Stripe event failed; Stripe will retry");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not handle the event; retry",
            )
        }
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The only currency the platform sells credits in.
pub const CURRENCY: &str = "usd";

/// Events that move money: their object's currency must be the platform's.
fn moves_money(kind: &str, obj: &Value) -> bool {
    match kind {
        "checkout.session.completed" => obj["payment_status"] == "paid",
        "checkout.session.async_payment_succeeded" | "charge.refunded" => true,
        "payment_intent.succeeded" => obj["metadata"]["kind"] == "auto_topup",
        k => k.starts_with("charge.dispute."),
    }
}

/// Handles one verified event in one transaction, keeping what happened with the event (for the admin
/// page, the log and the fake).
async fn handle(state: &AppState, id: &str, kind: &str, obj: &Value) -> anyhow::Result<String> {
    // A card kept for automatic top-ups is looked up before the transaction: if Stripe does not answer,
    // the event fails as a whole and Stripe delivers it again.
    let card = match (&state.stripe, obj["payment_intent"].as_str()) {
        (Some(client), Some(pi))
            if kind == "checkout.session.completed"
                && obj["metadata"]["save_card"] == "1"
                && obj["payment_status"] == "paid"
                && !seen(state, id).await? =>
        {
            super::topup::card_of(client, pi).await?
        }
        _ => None,
    };
    let mut tx = state.store.writer.begin().await?;
    let order_ref = obj["client_reference_id"]
        .as_str()
        .or(obj["metadata"]["order_id"].as_str())
        .map(String::from);
    let first = sqlx::query(
        "INSERT INTO stripe_events (id, type, order_id, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(&order_ref)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first {
        tx.commit().await?;
        return Ok("duplicate".into());
    }
    let currency = obj["currency"]
        .as_str()
        .unwrap_or("none")
        .to_ascii_lowercase();
    if moves_money(kind, obj) && currency != CURRENCY {
        tracing::error!(event = %id, kind, currency = %currency, "refused a Stripe event in a currency other than the platform's; nothing was credited or taken back");
        let outcome = format!("refused: currency {currency} (the platform sells credits in usd)");
        record_outcome(&mut tx, id, &outcome).await?;
        tx.commit().await?;
        return Ok(outcome);
    }
    let session = Payment {
        order: order_ref.as_deref(),
        collected_cents: obj["amount_total"].as_i64().unwrap_or(-1),
        payment_intent: obj["payment_intent"].as_str(),
        session: obj["id"].as_str(),
        customer: obj["customer"].as_str(),
        card: card.as_ref(),
    };
    let outcome: String = match kind {
        "checkout.session.completed" if obj["payment_status"] == "paid" => {
            paid(&mut tx, session).await?.into()
        }
        "checkout.session.completed" => "awaiting payment".into(),
        "checkout.session.async_payment_succeeded" => paid(&mut tx, session).await?.into(),
        // Off-session charges (automatic top-ups) carry the order in the PaymentIntent's metadata.
        "payment_intent.succeeded" if obj["metadata"]["kind"] == "auto_topup" => {
            let charge = Payment {
                order: order_ref.as_deref(),
                collected_cents: obj["amount_received"].as_i64().unwrap_or(-1),
                payment_intent: obj["id"].as_str(),
                ..Payment::default()
            };
            paid(&mut tx, charge).await?.into()
        }
        "payment_intent.payment_failed" if obj["metadata"]["kind"] == "auto_topup" => {
            sqlx::query("UPDATE orders SET status = 'failed' WHERE id = $1 AND status = 'pending'")
                .bind(&order_ref)
                .execute(&mut *tx)
                .await?;
            "order closed".into()
        }
        "checkout.session.async_payment_failed" | "checkout.session.expired" => {
            let status = if kind.ends_with("expired") {
                "canceled"
            } else {
                "failed"
            };
            sqlx::query("UPDATE orders SET status = $1 WHERE id = $2 AND status = 'pending'")
                .bind(status)
                .bind(&order_ref)
                .execute(&mut *tx)
                .await?;
            "order closed".into()
        }
        "charge.refunded"
        | "charge.dispute.created"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.closed"
        | "charge.dispute.funds_reinstated" => reverse(&mut tx, id, kind, obj).await?.into(),
        _ => "ignored".into(),
    };
    record_outcome(&mut tx, id, &outcome).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn record_outcome(tx: &mut Tx, event: &str, outcome: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE stripe_events SET outcome = $1 WHERE id = $2")
        .bind(outcome)
        .bind(event)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether an event was already handled (a redelivery needs no call to Stripe).
async fn seen(state: &AppState, id: &str) -> anyhow::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM stripe_events WHERE id = $1")
        .bind(id)
        .fetch_optional(&state.store.pool)
        .await?;
    Ok(row.is_some())
}

/// A payment Stripe reports as made, for [`paid`].
#[derive(Default, Clone, Copy)]
pub struct Payment<'a> {
    pub order: Option<&'a str>,
    /// What Stripe collected, in cents.
    pub collected_cents: i64,
    pub payment_intent: Option<&'a str>,
    /// The Checkout Session, when paid there.
    pub session: Option<&'a str>,
    /// The Stripe customer it was paid as, and the card kept for automatic top-ups.
    pub customer: Option<&'a str>,
    pub card: Option<&'a super::topup::SavedCard>,
}

/// Marks the order paid and grants its credits (once per order, whichever event comes first).
pub async fn paid(tx: &mut Tx, p: Payment<'_>) -> anyhow::Result<&'static str> {
    let Some(order) = p.order else {
        return Ok("no order reference");
    };
    if let Some(pi) = p.payment_intent {
        lock_payment(tx, pi).await?;
    }
    let row: Option<(String, i64, i64, String, String)> = sqlx::query_as(
        "SELECT org_id, amount_nanos, fee_nanos, status, kind FROM orders WHERE id = $1",
    )
    .bind(order)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((org, credits, fee, status, kind)) = row else {
        tracing::warn!(
            order,
            "a paid Checkout Session names an order this platform does not have"
        );
        return Ok("unknown order");
    };
    if status != "pending" && status != "failed" {
        return Ok("already paid");
    }
    // The amount Stripe collected must be what the order says.
    let collected = p.collected_cents;
    if collected * CENT != credits + fee {
        anyhow::bail!(
            "order {order}: Stripe collected {collected} cents, the order is for {} nanos",
            credits + fee
        );
    }
    sqlx::query(
        "UPDATE orders SET status = 'paid', paid_at = $1, stripe_payment_intent = $2, \
         stripe_session_id = COALESCE(stripe_session_id, $3) WHERE id = $4",
    )
    .bind(now_ms())
    .bind(p.payment_intent)
    .bind(p.session)
    .bind(order)
    .execute(&mut **tx)
    .await?;
    let note = (kind == "auto_topup").then_some("automatic top-up");
    if kind == "auto_topup" {
        // A charge that went through ends any run of declines, and is this crossing's one charge
        // (whichever way it was confirmed: the API's answer or the webhook).
        sqlx::query(
            "UPDATE orgs SET topup_failures = 0, topup_retry_at = NULL, topup_error = NULL, \
             topup_armed = 0 WHERE id = $1",
        )
        .bind(&org)
        .execute(&mut **tx)
        .await?;
    }
    super::ledger::post(
        tx,
        &org,
        Nanos(credits),
        "purchase",
        &format!("purchase:{order}"),
        Some(order),
        note,
    )
    .await?;
    // Refunds and disputes that arrived before this payment are applied now.
    if let Some(pi) = p.payment_intent {
        let waiting: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT event_id, type, object FROM stripe_pending WHERE payment_intent = $1 ORDER BY received_at, event_id",
        )
        .bind(pi)
        .fetch_all(&mut **tx)
        .await?;
        for (event, kind, object) in waiting {
            let obj: Value = serde_json::from_str(&object)?;
            let outcome = reverse(tx, &event, &kind, &obj).await?;
            sqlx::query("DELETE FROM stripe_pending WHERE event_id = $1")
                .bind(&event)
                .execute(&mut **tx)
                .await?;
            record_outcome(tx, &event, &format!("{outcome} (after its payment)")).await?;
            tracing::info!(order, event = %event, kind = %kind, outcome, "applied a Stripe event that arrived before its payment");
        }
    }
    if let Some(card) = p.card {
        // A new card also clears the declines of the old one (a charge that went through in this
        // crossing still counts: `topup_armed` is left as it is).
        sqlx::query(
            "UPDATE orgs SET stripe_customer_id = COALESCE($1, stripe_customer_id), \
             card_payment_method = $2, card_label = $3, topup_failures = 0, topup_retry_at = NULL, \
             topup_error = NULL WHERE id = $4",
        )
        .bind(p.customer)
        .bind(&card.payment_method)
        .bind(&card.label)
        .bind(&org)
        .execute(&mut **tx)
        .await?;
        tracing::info!(org = %org, card = %card.label, "card saved for automatic top-up");
    }
    Ok("credited")
}

/// Serialises the events of one payment on PostgreSQL (a payment and a refund of it handled at once
/// must not miss each other: the refund would wait for a payment that has already passed it). SQLite
/// has one writer.
async fn lock_payment(tx: &mut Tx, payment_intent: &str) -> Result<(), sqlx::Error> {
    if !crate::store::is_sqlite(tx) {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
            .bind(payment_intent)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A refund or a dispute of a paid order, serialised on the order's row (PostgreSQL locks it; SQLite
/// has one writer) so that two of them handled at once cannot both take the same credits back:
///
/// - `charge.refunded`: Stripe says how much of the charge is refunded so far; the credits not yet taken
///   back by refunds or disputes follow it (the fee is not credits).
/// - `charge.dispute.created` (or `funds_withdrawn`): the dispute's amount, at most the credits left.
/// - `charge.dispute.closed` won (or `funds_reinstated`, or an inquiry closed without a chargeback):
///   what the dispute took comes back; lost: it stays taken.
///
/// An event for a payment the platform has not seen yet waits (`stripe_pending`) and is applied when
/// the payment lands. The balance may go negative; the gateway then answers 402.
async fn reverse(
    tx: &mut Tx,
    event: &str,
    kind: &str,
    obj: &Value,
) -> anyhow::Result<&'static str> {
    let Some(pi) = obj["payment_intent"].as_str() else {
        return Ok("no payment intent");
    };
    lock_payment(tx, pi).await?;
    let lock = if crate::store::is_sqlite(tx) {
        ""
    } else {
        " FOR UPDATE"
    };
    let row: Option<(String, String, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT id, org_id, amount_nanos, refunded_nanos, disputed_nanos FROM orders \
         WHERE stripe_payment_intent = $1 AND status IN ('paid', 'refunded', 'disputed'){lock}"
    ))
    .bind(pi)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((order, org, credits, refunded, disputed)) = row else {
        sqlx::query(
            "INSERT INTO stripe_pending (event_id, type, payment_intent, object, received_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event)
        .bind(kind)
        .bind(pi)
        .bind(obj.to_string())
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
        tracing::warn!(
            event,
            kind,
            payment_intent = pi,
            "a refund or dispute arrived before its payment; it waits for it"
        );
        return Ok("waiting for its payment");
    };
    let status_after = |refunded: i64, disputed: i64| {
        if disputed > 0 {
            "disputed"
        } else if refunded > 0 {
            "refunded"
        } else {
            "paid"
        }
    };
    let set_order = |refunded: i64, disputed: i64| {
        sqlx::query(
            "UPDATE orders SET refunded_nanos = $1, disputed_nanos = $2, status = $3 WHERE id = $4",
        )
        .bind(refunded)
        .bind(disputed)
        .bind(status_after(refunded, disputed))
        .bind(order.clone())
    };
    let cents = |k: &str| obj[k].as_i64().unwrap_or(0).max(0) * CENT;
    match kind {
        "charge.refunded" => {
            // Refunded money goes to the credits first; what disputes took is not taken twice.
            let reverse = cents("amount_refunded").min(credits - disputed) - refunded;
            if reverse <= 0 {
                return Ok("nothing more to reverse");
            }
            set_order(refunded + reverse, disputed)
                .execute(&mut **tx)
                .await?;
            super::ledger::post(
                tx,
                &org,
                Nanos(-reverse),
                "refund",
                &format!("refund:{event}"),
                Some(&order),
                Some("card payment refunded"),
            )
            .await?;
            Ok("reversed")
        }
        "charge.dispute.created" | "charge.dispute.funds_withdrawn" => {
            let Some(dispute) = obj["id"].as_str() else {
                return Ok("no dispute id");
            };
            let known: Option<(String,)> = sqlx::query_as("SELECT id FROM disputes WHERE id = $1")
                .bind(dispute)
                .fetch_optional(&mut **tx)
                .await?;
            if known.is_some() {
                return Ok("dispute already taken back");
            }
            let take = cents("amount").min(credits - refunded - disputed).max(0);
            sqlx::query(
                "INSERT INTO disputes (id, order_id, amount_nanos, status, created_at) VALUES ($1, $2, $3, 'open', $4)",
            )
            .bind(dispute)
            .bind(&order)
            .bind(take)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
            set_order(refunded, disputed + take)
                .execute(&mut **tx)
                .await?;
            if take > 0 {
                super::ledger::post(
                    tx,
                    &org,
                    Nanos(-take),
                    "refund",
                    &format!("dispute:{dispute}"),
                    Some(&order),
                    Some("card payment disputed"),
                )
                .await?;
            }
            tracing::warn!(order = %order, org = %org, dispute, "a card payment was disputed; its credits are taken back");
            Ok("reversed")
        }
        _ => {
            // Closed, or its funds reinstated.
            let Some(dispute) = obj["id"].as_str() else {
                return Ok("no dispute id");
            };
            let row: Option<(i64, String)> = sqlx::query_as(&format!(
                "SELECT amount_nanos, status FROM disputes WHERE id = $1{lock}"
            ))
            .bind(dispute)
            .fetch_optional(&mut **tx)
            .await?;
            let Some((taken, status)) = row else {
                return Ok("no such dispute");
            };
            if status != "open" {
                return Ok("dispute already closed");
            }
            let won = kind == "charge.dispute.funds_reinstated"
                || matches!(obj["status"].as_str(), Some("won" | "warning_closed"));
            if !won {
                sqlx::query("UPDATE disputes SET status = 'lost', closed_at = $1 WHERE id = $2")
                    .bind(now_ms())
                    .bind(dispute)
                    .execute(&mut **tx)
                    .await?;
                return Ok("dispute lost");
            }
            sqlx::query("UPDATE disputes SET status = 'won', closed_at = $1 WHERE id = $2")
                .bind(now_ms())
                .bind(dispute)
                .execute(&mut **tx)
                .await?;
            set_order(refunded, disputed - taken)
                .execute(&mut **tx)
                .await?;
            if taken > 0 {
                super::ledger::post(
                    tx,
                    &org,
                    Nanos(taken),
                    "adjustment",
                    &format!("dispute-won:{dispute}"),
                    Some(&order),
                    Some("dispute won: credits restored"),
                )
                .await?;
            }
            tracing::info!(order = %order, org = %org, dispute, "a dispute was won; its credits are restored");
            Ok("restored")
        }
    }
}

/// Stripe events that moved no money and need a person's eye, newest first: refused ones and refunds or
/// disputes still waiting for their payment. (id, type, outcome, received at.)
pub async fn events_to_check(
    store: &crate::store::Store,
) -> Result<Vec<(String, String, Option<String>, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, type, outcome, received_at FROM stripe_events \
         WHERE outcome LIKE 'refused%' OR outcome = 'waiting for its payment' \
         ORDER BY received_at DESC, id LIMIT 100",
    )
    .fetch_all(&store.pool)
    .await
}

/// An order as the billing pages show it.
#[derive(sqlx::FromRow, Clone, Debug)]
pub struct Order {
    pub id: String,
    pub org_id: String,
    pub amount_nanos: i64,
    pub fee_nanos: i64,
    pub status: String,
    pub refunded_nanos: i64,
    pub created_at: i64,
    pub paid_at: Option<i64>,
}

pub async fn find_order(
    store: &crate::store::Store,
    org_id: &str,
    id: &str,
) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, org_id, amount_nanos, fee_nanos, status, refunded_nanos, created_at, paid_at \
         FROM orders WHERE id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(&store.pool)
    .await
}
