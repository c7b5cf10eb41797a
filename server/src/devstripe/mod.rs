//! A local stand-in for Stripe, for development and tests: real HTTP, the part of the API the platform
//! calls (Checkout Sessions, customers, payment intents for off-session charges, refunds), a hosted
//! checkout page a person or a browser test can pay or cancel, and webhooks signed exactly like Stripe's,
//! retried on failure and re-delivered on demand. The platform's Stripe client talks to it by base URL
//! only.
//!
//! Cards behave like Stripe's test cards: the checkout page offers 4242 (always succeeds), 0341 (pays
//! now, but later off-session charges are declined) and 3184 (every off-session charge needs the
//! holder to authenticate). `POST /_fake/fail_next?status=429|500` makes the next API call fail the way
//! Stripe's rate limiter or an outage answers; `POST /_fake/cut_next_answer` lets the next payment
//! intent go through but breaks the connection before its answer is sent (a lost response).

use crate::billing::stripe_sig;
use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Json, Router,
};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::{collections::HashMap, net::SocketAddr, sync::Arc};

pub struct FakeStripe {
    /// The secret key requests must carry; `None` accepts any.
    api_key: Option<String>,
    base: Mutex<String>,
    sessions: Mutex<HashMap<String, Value>>,
    customers: Mutex<HashMap<String, Value>>,
    payment_methods: Mutex<HashMap<String, Value>>,
    payment_intents: Mutex<HashMap<String, Value>>,
    /// The status the next API call fails with, once.
    fail_next: Mutex<Option<u16>>,
    /// The next payment intent is charged, but the connection breaks before its answer arrives.
    cut_next_answer: Mutex<bool>,
    events: Mutex<HashMap<String, Value>>,
    /// Idempotency-Key -> the response first given for it (status and body).
    idempotent: Mutex<HashMap<String, (StatusCode, Value)>>,
    webhook: Mutex<Option<(String, String)>>,
    http: reqwest::Client,
    /// Webhook deliveries made (for tests): (event id, HTTP status or 0 when unreachable).
    pub deliveries: Mutex<Vec<(String, u16)>>,
}

fn now_secs() -> i64 {
    crate::store::now_ms() / 1000
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_test_{}", uuid::Uuid::new_v4().simple())
}

/// Stripe's error shape.
fn stripe_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

impl FakeStripe {
    /// Where webhooks go, and the secret they are signed with.
    pub fn set_webhook(&self, url: &str, secret: &str) {
        *self.webhook.lock() = Some((url.to_string(), secret.to_string()));
    }

    pub fn base_url(&self) -> String {
        self.base.lock().clone()
    }

    pub fn session(&self, id: &str) -> Option<Value> {
        self.sessions.lock().get(id).cloned()
    }

    /// The id of the newest event of a type.
    pub fn last_event(&self, kind: &str) -> Option<String> {
        self.events
            .lock()
            .values()
            .filter(|e| e["type"] == kind)
            .max_by_key(|e| e["created_ms"].as_i64().unwrap_or(0))
            .and_then(|e| e["id"].as_str().map(String::from))
    }

    /// What Stripe answers before looking at a request: a bad key, or the failure a test asked for.
    fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        if !self.authorized(headers) {
            return Some(stripe_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Invalid API Key provided",
            ));
        }
        match self.fail_next.lock().take() {
            Some(429) => Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({"error": {"type": "invalid_request_error", "code": "rate_limit",
                        "message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."}})),
                )
                    .into_response(),
            ),
            Some(s) => Some(stripe_error(
                StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "api_error",
                "An unknown error occurred",
            )),
            None => None,
        }
    }

    /// Before a POST is handled: a refusal or the answer its Idempotency-Key already got (`Err`), else
    /// the key to remember the answer under.
    fn admit(&self, headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
        if let Some(refused) = self.refuse(headers) {
            return Err(Box::new(refused));
        }
        match self.replay(headers) {
            (_, Some(prev)) => Err(Box::new(prev)),
            (key, None) => Ok(key),
        }
    }

    /// The response an Idempotency-Key was first answered with.
    fn replay(&self, headers: &HeaderMap) -> (Option<String>, Option<Response>) {
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let prev = key
            .as_ref()
            .and_then(|k| self.idempotent.lock().get(k).cloned())
            .map(|(status, body)| (status, Json(body)).into_response());
        (key, prev)
    }

    fn remember(&self, key: Option<String>, status: StatusCode, body: &Value) {
        if let Some(k) = key {
            self.idempotent.lock().insert(k, (status, body.clone()));
        }
    }

    /// Every payment intent made (for tests).
    pub fn payment_intents(&self) -> Vec<Value> {
        self.payment_intents.lock().values().cloned().collect()
    }

    pub fn payment_intent(&self, id: &str) -> Option<Value> {
        self.payment_intents.lock().get(id).cloned()
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(key) = &self.api_key else {
            return true;
        };
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v == key)
    }

    fn record_event(&self, kind: &str, object: Value) -> String {
        let id = new_id("evt");
        let event = json!({
            "id": id, "object": "event", "api_version": "2025-09-30.clover", "created": now_secs(),
            "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null}, "type": kind,
            "created_ms": crate::store::now_ms(),
        });
        self.events.lock().insert(id.clone(), event);
        id
    }

    /// Sends an event to the webhook endpoint once: its HTTP status (0 when unreachable).
    async fn send_once(&self, event_id: &str) -> u16 {
        let Some((url, secret)) = self.webhook.lock().clone() else {
            return 0;
        };
        let Some(mut event) = self.events.lock().get(event_id).cloned() else {
            return 0;
        };
        if let Some(o) = event.as_object_mut() {
            o.remove("created_ms");
        }
        let body = serde_json::to_vec(&event).unwrap_or_default();
        let header = stripe_sig::sign(&body, &secret, now_secs());
        let status = match self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("stripe-signature", header)
            .body(body)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        self.deliveries.lock().push((event_id.to_string(), status));
        status
    }

    /// Delivers like Stripe: retried (with backoff) until the endpoint answers 2xx.
    async fn deliver_with_retries(self: Arc<Self>, event_id: String) {
        for attempt in 0..5u32 {
            let s = self.send_once(&event_id).await;
            if (200..300).contains(&s) {
                return;
            }
            tracing::warn!(event = %event_id, status = s, attempt, "fake Stripe: webhook not accepted; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(200 * 2u64.pow(attempt))).await;
        }
    }
}

pub async fn spawn(
    addr: SocketAddr,
    api_key: Option<String>,
) -> anyhow::Result<(SocketAddr, Arc<FakeStripe>)> {
    crate::init_tls();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let fake = Arc::new(FakeStripe {
        api_key,
        base: Mutex::new(format!("http://{local}/")),
        sessions: Mutex::default(),
        customers: Mutex::default(),
        payment_methods: Mutex::default(),
        payment_intents: Mutex::default(),
        fail_next: Mutex::default(),
        cut_next_answer: Mutex::default(),
        events: Mutex::default(),
        idempotent: Mutex::default(),
        webhook: Mutex::default(),
        http: reqwest::Client::new(),
        deliveries: Mutex::default(),
    });
    let app = Router::new()
        .route("/v1/checkout/sessions", post(create_session))
        .route("/v1/checkout/sessions/{id}", get(get_session))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/customers", post(create_customer))
        .route("/v1/payment_intents", post(create_payment_intent))
        .route("/v1/payment_intents/{id}", get(get_payment_intent))
        .route("/_fake/fail_next", post(fail_next))
        .route("/_fake/cut_next_answer", post(cut_next_answer))
        .route("/pay/{id}", get(pay_page).post(pay))
        .route("/_fake/events/{id}/deliver", post(redeliver))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(fake.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "fake Stripe stopped");
        }
    });
    Ok((local, fake))
}

type Form = HashMap<String, String>;

fn parse_form(body: &[u8]) -> Form {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

async fn create_session(
    State(f): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idem = match f.admit(&headers) {
        Ok(key) => key,
        Err(answer) => return *answer,
    };
    let form = parse_form(&body);
    let (Some(mode), Some(success_url)) = (form.get("mode"), form.get("success_url")) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: mode or success_url.",
        );
    };
    if mode != "payment" {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "This fake supports mode=payment only.",
        );
    }
    let mut total: i64 = 0;
    let mut currency = "usd".to_string();
    for i in 0.. {
        let Some(unit) = form.get(&format!("line_items[{i}][price_data][unit_amount]")) else {
            break;
        };
        let (Ok(unit), Ok(qty)) = (
            unit.parse::<i64>(),
            form.get(&format!("line_items[{i}][quantity]"))
                .map_or(Ok(1), |q| q.parse::<i64>()),
        ) else {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "Invalid integer in line_items.",
            );
        };
        if let Some(c) = form.get(&format!("line_items[{i}][price_data][currency]")) {
            currency = c.clone();
        }
        total += unit * qty;
    }
    if total <= 0 {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: line_items.",
        );
    }
    let metadata = metadata_of(&form, "metadata");
    let customer = form.get("customer").cloned();
    if customer.is_some() && form.contains_key("customer_email") {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "You may only specify one of these parameters: customer, customer_email.",
        );
    }
    if let Some(c) = &customer {
        if !f.customers.lock().contains_key(c) {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("No such customer: '{c}'"),
            );
        }
    }
    let future_usage = form.get("payment_intent_data[setup_future_usage]").cloned();
    let id = new_id("cs");
    let now = now_secs();
    let session = json!({
        "id": id, "object": "checkout.session", "adaptive_pricing": null, "after_expiration": null,
        "allow_promotion_codes": null, "amount_subtotal": total, "amount_total": total,
        "automatic_tax": {"enabled": false, "liability": null, "provider": null, "status": null},
        "billing_address_collection": null, "cancel_url": form.get("cancel_url"),
        "client_reference_id": form.get("client_reference_id"), "client_secret": null,
        "collected_information": null, "consent": null, "consent_collection": null, "created": now,
        "currency": currency, "currency_conversion": null, "custom_fields": [],
        "custom_text": {"after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null},
        "customer": customer, "customer_creation": "if_required", "customer_details": null,
        "customer_email": form.get("customer_email"), "discounts": [], "expires_at": now + 24 * 3600,
        "invoice": null, "invoice_creation": null, "livemode": false, "locale": null, "metadata": metadata,
        "mode": "payment", "payment_intent": null, "payment_link": null,
        "payment_method_collection": "if_required", "payment_method_configuration_details": null,
        "payment_method_options": {}, "payment_method_types": ["card"], "payment_status": "unpaid",
        "phone_number_collection": {"enabled": false}, "recovered_from": null,
        "saved_payment_method_options": null, "setup_intent": null, "shipping_address_collection": null,
        "shipping_cost": null, "shipping_details": null, "shipping_options": [], "status": "open",
        "submit_type": null, "subscription": null, "success_url": success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page", "url": format!("{}pay/{id}", f.base_url()),
        // Not in Stripe's object: what the session's payment intent will be created with.
        "fake_setup_future_usage": future_usage,
    });
    f.sessions.lock().insert(id, session.clone());
    f.remember(idem, StatusCode::OK, &session);
    Json(public(&session)).into_response()
}

async fn get_session(
    State(f): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = f.refuse(&headers) {
        return refused;
    }
    match f.session(&id) {
        Some(s) => Json(public(&s)).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such checkout.session: '{id}'"),
        ),
    }
}

fn cents(c: i64) -> String {
    format!("${}.{:02}", c / 100, c % 100)
}

async fn pay_page(State(f): State<Arc<FakeStripe>>, Path(id): Path<String>) -> Response {
    let Some(s) = f.session(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Html("<h1>No such checkout session</h1>".to_string()),
        )
            .into_response();
    };
    let amount = cents(s["amount_total"].as_i64().unwrap_or(0));
    let state = s["status"].as_str().unwrap_or("open");
    Html(format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pay {amount} — Stripe (local fake)</title><link rel="icon" href="data:,">
<style>body{{font-family:system-ui,sans-serif;background:#f6f9fc;margin:0;padding:48px 16px;color:#1a1f36}}
main{{max-width:420px;margin:0 auto;background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:32px}}
.amount{{font-size:2rem;font-weight:700;margin:.2rem 0 1.2rem}} .note{{color:#697386;font-size:.9rem}}
button{{font:inherit;font-weight:600;border:0;border-radius:6px;padding:.7rem 1.2rem;cursor:pointer}}
.pay{{background:#635bff;color:#fff;width:100%;margin:1rem 0 .6rem}}
select{{font:inherit;width:100%;padding:.55rem;border:1px solid #d5dbe1;border-radius:6px;margin:.3rem 0 0;background:#fff}} .cancel{{background:none;color:#635bff}}</style></head>
<body><main><p class="note">Local Stripe fake · test mode · nothing is charged</p>
<h1>Switchyard credits</h1><div class="amount" id="amount">{amount}</div><p class="note">Session {id} ({state})</p>
<form method="post"><input type="hidden" name="action" value="pay">
<label class="note" for="card">Test card</label>
<select name="card" id="card"><option value="4242">4242 4242 4242 4242 · succeeds</option>
<option value="0341">4000 0000 0000 0341 · pays now, later charges declined</option>
<option value="3184">4000 0027 6000 3184 · later charges need authentication</option></select>
<button class="pay" id="pay">Pay {amount}</button></form>
<form method="post"><input type="hidden" name="action" value="cancel"><button class="cancel" id="cancel">Cancel and go back</button></form>
</main></body></html>"#
    ))
    .into_response()
}

async fn pay(State(f): State<Arc<FakeStripe>>, Path(id): Path<String>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let Some(mut s) = f.session(&id) else {
        return (StatusCode::NOT_FOUND, "no such checkout session").into_response();
    };
    if form.get("action").map(String::as_str) == Some("cancel") {
        let to = s["cancel_url"].as_str().unwrap_or("/").to_string();
        return Redirect::to(&to).into_response();
    }
    if s["status"] == "open" {
        let last4 = form
            .get("card")
            .map(String::as_str)
            .filter(|c| matches!(*c, "0341" | "3184"))
            .unwrap_or("4242");
        // Saving the card for later attaches it to the session's customer.
        let saving = s["fake_setup_future_usage"].is_string() && s["customer"].is_string();
        let email = s["customer_email"].clone();
        let pm = card_payment_method(last4, saving.then(|| s["customer"].clone()), email.clone());
        let mut pi = new_payment_intent(s["amount_total"].as_i64().unwrap_or(0), &s["currency"]);
        pi["customer"] = s["customer"].clone();
        pi["payment_method"] = pm["id"].clone();
        pi["setup_future_usage"] = s["fake_setup_future_usage"].clone();
        pi["amount_received"] = pi["amount"].clone();
        pi["status"] = json!("succeeded");
        pi["latest_charge"] = json!(new_id("ch"));
        f.store(&f.payment_methods, &pm);
        f.store(&f.payment_intents, &pi);
        s["status"] = json!("complete");
        s["payment_status"] = json!("paid");
        s["payment_intent"] = pi["id"].clone();
        s["customer_details"] = json!({"email": email, "name": "Test Card Holder"});
        f.sessions.lock().insert(id.clone(), s.clone());
        let event = f.record_event("checkout.session.completed", public(&s));
        tokio::spawn(f.clone().deliver_with_retries(event));
    }
    let to = s["success_url"]
        .as_str()
        .unwrap_or("/")
        .replace("{CHECKOUT_SESSION_ID}", &id);
    Redirect::to(&to).into_response()
}

async fn create_refund(
    State(f): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = f.refuse(&headers) {
        return refused;
    }
    let form = parse_form(&body);
    let Some(pi) = form.get("payment_intent") else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: payment_intent.",
        );
    };
    let Some(mut s) = f.payment_intent(pi).filter(|p| p["status"] == "succeeded") else {
        return stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such payment_intent: '{pi}'"),
        );
    };
    let total = s["amount_received"].as_i64().unwrap_or(0);
    let already = s["fake_refunded"].as_i64().unwrap_or(0);
    let amount = match form.get("amount").map(|a| a.parse::<i64>()) {
        Some(Ok(a)) => a,
        Some(Err(_)) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "Invalid integer: amount.",
            )
        }
        None => total - already,
    };
    if amount <= 0 || already + amount > total {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Refund amount is greater than the unrefunded amount.",
        );
    }
    s["fake_refunded"] = json!(already + amount);
    f.store(&f.payment_intents, &s);
    let refund = json!({"id": new_id("re"), "object": "refund", "amount": amount, "currency": s["currency"],
        "payment_intent": pi, "status": "succeeded", "created": now_secs()});
    let charge = json!({"id": s["latest_charge"], "object": "charge", "amount": total,
        "amount_refunded": already + amount, "currency": s["currency"], "payment_intent": pi,
        "refunded": already + amount == total, "paid": true, "status": "succeeded"});
    let event = f.record_event("charge.refunded", charge);
    tokio::spawn(f.clone().deliver_with_retries(event));
    Json(refund).into_response()
}

#[derive(serde::Deserialize)]
struct Times {
    times: Option<usize>,
}

/// Delivers an event again, `times` times at once (duplicate delivery on demand); answers the statuses.
async fn redeliver(
    State(f): State<Arc<FakeStripe>>,
    Path(id): Path<String>,
    Query(t): Query<Times>,
) -> Response {
    let n = t.times.unwrap_or(1).clamp(1, 50);
    let sends = (0..n).map(|_| {
        let f = f.clone();
        let id = id.clone();
        async move { f.send_once(&id).await }
    });
    let statuses = futures::future::join_all(sends).await;
    Json(json!({"event": id, "statuses": statuses})).into_response()
}

/// A Stripe object without the fake's own bookkeeping (keys starting with `fake_`).
fn public(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !k.starts_with("fake_"));
    }
    v
}

/// `metadata[key]=value` form fields (under `prefix`) as Stripe's metadata object.
fn metadata_of(form: &Form, prefix: &str) -> serde_json::Map<String, Value> {
    form.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .and_then(|k| k.strip_prefix('['))
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_string(), Value::String(v.clone())))
        })
        .collect()
}

impl FakeStripe {
    fn store(&self, map: &Mutex<HashMap<String, Value>>, object: &Value) {
        if let Some(id) = object["id"].as_str() {
            map.lock().insert(id.to_string(), object.clone());
        }
    }
}

/// A card PaymentMethod, as Stripe returns it; `last4` picks the test card's behaviour.
fn card_payment_method(last4: &str, customer: Option<Value>, email: Value) -> Value {
    json!({
        "id": new_id("pm"), "object": "payment_method", "allow_redisplay": "unspecified",
        "billing_details": {"address": null, "email": email, "name": "Test Card Holder", "phone": null, "tax_id": null},
        "card": {"brand": "visa", "checks": null, "country": "US", "display_brand": "visa", "exp_month": 12,
                 "exp_year": 2034, "fingerprint": format!("fp{last4}"), "funding": "credit", "generated_from": null,
                 "last4": last4, "networks": null, "regulated_status": "unregulated", "three_d_secure_usage": null,
                 "wallet": null},
        "created": now_secs(), "customer": customer, "livemode": false, "metadata": {}, "type": "card",
    })
}

/// A PaymentIntent as Stripe returns it, before any payment method.
fn new_payment_intent(amount: i64, currency: &Value) -> Value {
    let id = new_id("pi");
    json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0, "amount_details": null,
        "amount_received": 0, "application": null, "application_fee_amount": null,
        "automatic_payment_methods": null, "canceled_at": null, "cancellation_reason": null,
        "capture_method": "automatic_async", "client_secret": format!("{id}_secret_fake"),
        "confirmation_method": "automatic", "created": now_secs(), "currency": currency, "customer": null,
        "description": null, "last_payment_error": null, "latest_charge": null, "livemode": false,
        "metadata": {}, "next_action": null, "on_behalf_of": null, "payment_method": null,
        "payment_method_configuration_details": null, "payment_method_options": null,
        "payment_method_types": ["card"], "processing": null, "receipt_email": null, "review": null,
        "setup_future_usage": null, "shipping": null, "source": null, "statement_descriptor": null,
        "statement_descriptor_suffix": null, "status": "requires_payment_method", "transfer_data": null,
        "transfer_group": null,
    })
}

#[derive(serde::Deserialize)]
struct FailNext {
    status: u16,
}

/// Makes the next API call fail with `status` (429 as Stripe's rate limiter, else an API error).
async fn fail_next(State(f): State<Arc<FakeStripe>>, Query(q): Query<FailNext>) -> Response {
    *f.fail_next.lock() = Some(q.status);
    Json(json!({"next_call_fails_with": q.status})).into_response()
}

async fn create_customer(
    State(f): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idem = match f.admit(&headers) {
        Ok(key) => key,
        Err(answer) => return *answer,
    };
    let form = parse_form(&body);
    let customer = json!({
        "id": new_id("cus"), "object": "customer", "address": null, "balance": 0, "created": now_secs(),
        "currency": null, "default_source": null, "delinquent": false, "description": form.get("description"),
        "email": form.get("email"), "invoice_prefix": null, "invoice_settings": null, "livemode": false,
        "metadata": metadata_of(&form, "metadata"), "name": form.get("name"), "phone": null,
        "preferred_locales": [], "shipping": null, "tax_exempt": "none", "test_clock": null,
    });
    f.store(&f.customers, &customer);
    f.remember(idem, StatusCode::OK, &customer);
    Json(customer).into_response()
}

/// `GET /v1/payment_intents/{id}`, with `expand[]=payment_method`.
async fn get_payment_intent(
    State(f): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    if let Some(refused) = f.refuse(&headers) {
        return refused;
    }
    let Some(mut pi) = f.payment_intent(&id) else {
        return stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such payment_intent: '{id}'"),
        );
    };
    let expand: Vec<String> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k.starts_with("expand"))
            .map(|(_, v)| v)
            .collect();
    if expand.iter().any(|e| e == "payment_method") {
        if let Some(pm) = pi["payment_method"]
            .as_str()
            .and_then(|p| f.payment_methods.lock().get(p).cloned())
        {
            pi["payment_method"] = pm;
        }
    }
    Json(public(&pi)).into_response()
}

/// `POST /v1/payment_intents` with `confirm=true`: charges a saved card now (off-session top-ups).
async fn create_payment_intent(
    State(f): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let idem = match f.admit(&headers) {
        Ok(key) => key,
        Err(answer) => return *answer,
    };
    let form = parse_form(&body);
    let bad = |m: &str| stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", m);
    let Some(Ok(amount)) = form.get("amount").map(|a| a.parse::<i64>()) else {
        return bad("Missing required param: amount.");
    };
    let Some(currency) = form.get("currency") else {
        return bad("Missing required param: currency.");
    };
    if amount < 50 {
        return bad("Amount must be at least $0.50 usd");
    }
    let mut pi = new_payment_intent(amount, &json!(currency));
    pi["customer"] = json!(form.get("customer"));
    pi["description"] = json!(form.get("description"));
    pi["metadata"] = Value::Object(metadata_of(&form, "metadata"));
    let pm = match form.get("payment_method") {
        Some(id) => match f.payment_methods.lock().get(id).cloned() {
            Some(pm) => pm,
            None => return bad(&format!("No such PaymentMethod: '{id}'")),
        },
        None => {
            f.store(&f.payment_intents, &pi);
            return Json(pi).into_response();
        }
    };
    if pm["customer"].is_null() || pm["customer"] != pi["customer"] {
        return bad("The provided PaymentMethod was previously used without being attached to a Customer or was detached from a Customer, and may not be used again.");
    }
    pi["payment_method"] = pm["id"].clone();
    if form.get("confirm").map(String::as_str) != Some("true") {
        pi["status"] = json!("requires_confirmation");
        f.store(&f.payment_intents, &pi);
        f.remember(idem, StatusCode::OK, &pi);
        return Json(pi).into_response();
    }
    let off_session = form.get("off_session").map(String::as_str) == Some("true");
    let decline = match pm["card"]["last4"].as_str() {
        Some("0341") => Some((
            "card_declined",
            Some("generic_decline"),
            "Your card was declined.",
        )),
        Some("3184") if off_session => Some((
            "authentication_required",
            Some("authentication_required"),
            "Your card was declined. This transaction requires authentication.",
        )),
        _ => None,
    };
    let charge = new_id("ch");
    pi["latest_charge"] = json!(charge);
    if let Some((code, decline_code, message)) = decline {
        let error = json!({"type": "card_error", "code": code, "decline_code": decline_code, "message": message,
            "charge": charge, "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")),
            "payment_method": pm});
        pi["status"] = json!("requires_payment_method");
        pi["last_payment_error"] = error.clone();
        f.store(&f.payment_intents, &pi);
        let mut error = error;
        error["payment_intent"] = pi.clone();
        let body = json!({"error": error});
        f.remember(idem, StatusCode::PAYMENT_REQUIRED, &body);
        let event = f.record_event("payment_intent.payment_failed", pi);
        tokio::spawn(f.clone().deliver_with_retries(event));
        return (StatusCode::PAYMENT_REQUIRED, Json(body)).into_response();
    }
    pi["status"] = json!("succeeded");
    pi["amount_received"] = json!(amount);
    f.store(&f.payment_intents, &pi);
    f.remember(idem, StatusCode::OK, &pi);
    let event = f.record_event("payment_intent.succeeded", pi.clone());
    tokio::spawn(f.clone().deliver_with_retries(event));
    if std::mem::take(&mut *f.cut_next_answer.lock()) {
        return cut_off(&pi);
    }
    Json(pi).into_response()
}

/// A 200 whose body breaks off half-way: the client sees the connection fail after the work was done.
fn cut_off(v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let half = bytes::Bytes::copy_from_slice(&body[..body.len() / 2]);
    let parts: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(half),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fake Stripe: connection cut",
        )),
    ];
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(futures::stream::iter(parts)),
    )
        .into_response()
}

async fn cut_next_answer(State(f): State<Arc<FakeStripe>>) -> Response {
    *f.cut_next_answer.lock() = true;
    Json(json!({"next_payment_intent_answer": "cut"})).into_response()
}
