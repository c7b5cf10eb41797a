//! A local stand-in for Stripe, for development and tests: real HTTP, the part of the API the platform
//! calls (Checkout Sessions, refunds), a hosted checkout page a person or a browser test can pay or cancel,
//! and webhooks signed exactly like Stripe's, retried on failure and re-delivered on demand. The
//! platform's Stripe client talks to it by base URL only.

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
    events: Mutex<HashMap<String, Value>>,
    /// Idempotency-Key -> the response first given for it.
    idempotent: Mutex<HashMap<String, Value>>,
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
    if !f.authorized(&headers) {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        );
    }
    let idem = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if let Some(prev) = idem
        .as_ref()
        .and_then(|k| f.idempotent.lock().get(k).cloned())
    {
        return Json(prev).into_response();
    }
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
    let metadata: serde_json::Map<String, Value> = form
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
                .map(|k| (k.to_string(), Value::String(v.clone())))
        })
        .collect();
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
        "customer": null, "customer_creation": "if_required", "customer_details": null,
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
    });
    f.sessions.lock().insert(id, session.clone());
    if let Some(k) = idem {
        f.idempotent.lock().insert(k, session.clone());
    }
    Json(session).into_response()
}

async fn get_session(
    State(f): State<Arc<FakeStripe>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !f.authorized(&headers) {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        );
    }
    match f.session(&id) {
        Some(s) => Json(s).into_response(),
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
.pay{{background:#635bff;color:#fff;width:100%;margin:1rem 0 .6rem}} .cancel{{background:none;color:#635bff}}</style></head>
<body><main><p class="note">Local Stripe fake · test mode · nothing is charged</p>
<h1>Switchyard credits</h1><div class="amount" id="amount">{amount}</div><p class="note">Session {id} ({state})</p>
<form method="post"><input type="hidden" name="action" value="pay"><button class="pay" id="pay">Pay {amount}</button></form>
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
        s["status"] = json!("complete");
        s["payment_status"] = json!("paid");
        s["payment_intent"] = json!(new_id("pi"));
        s["customer_details"] = json!({"email": s["customer_email"], "name": "Test Card Holder"});
        f.sessions.lock().insert(id.clone(), s.clone());
        let event = f.record_event("checkout.session.completed", s.clone());
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
    if !f.authorized(&headers) {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided",
        );
    }
    let form = parse_form(&body);
    let Some(pi) = form.get("payment_intent") else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Missing required param: payment_intent.",
        );
    };
    let Some((sid, mut s)) = f
        .sessions
        .lock()
        .iter()
        .find(|(_, s)| s["payment_intent"].as_str() == Some(pi.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
    else {
        return stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("No such payment_intent: '{pi}'"),
        );
    };
    let total = s["amount_total"].as_i64().unwrap_or(0);
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
    f.sessions.lock().insert(sid, s.clone());
    let refund = json!({"id": new_id("re"), "object": "refund", "amount": amount, "currency": s["currency"],
        "payment_intent": pi, "status": "succeeded", "created": now_secs()});
    let charge = json!({"id": format!("ch_{}", &pi[3..]), "object": "charge", "amount": total,
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
