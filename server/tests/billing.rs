//! Buying credits on SQLite and PostgreSQL, through the production Stripe client and webhook handler
//! talking to the Stripe fake over real HTTP: checkout → hosted page → signed webhook → ledger → balance;
//! duplicate deliveries credit once; forged, stale and malformed webhooks change nothing; refunds reverse.

mod common;

use common::{actor, Db, TestApp};
use serde_json::{json, Value};
use std::sync::Arc;
use switchyard::billing::{ledger, purchases, stripe_sig};
use switchyard::config::Secret;
use switchyard::devstripe::{self, FakeStripe};
use switchyard::money::Nanos;

const KEY: &str = "sk_test_billing";
const SECRET: &str = "whsec_current";

async fn app_with_stripe(db: Db) -> (TestApp, Arc<FakeStripe>) {
    let (_, fake) = devstripe::spawn("127.0.0.1:0".parse().expect("addr"), Some(KEY.into()))
        .await
        .expect("fake stripe");
    let base = fake.base_url();
    let app = TestApp::start_with(db, |c| {
        c.stripe_secret_key = Some(Secret::new(KEY));
        c.stripe_api_base = base;
        // Two secrets, as during a rotation; the fake signs with the new one.
        c.stripe_webhook_secrets = vec![Secret::new("whsec_previous"), Secret::new(SECRET)];
    })
    .await;
    fake.set_webhook(&app.url("/webhooks/stripe"), SECRET);
    (app, fake)
}

async fn owner(app: &TestApp, email: &str) -> switchyard::accounts::orgs::Actor {
    let (u, _) = switchyard::accounts::sign_up(&app.store, email, "correct horse battery")
        .await
        .expect("sign up");
    actor(&app.store, &u.id).await
}

async fn balance(app: &TestApp, org: &str) -> Nanos {
    ledger::balance(&app.store, org)
        .await
        .expect("balance")
        .expect("org")
        .balance()
}

/// Waits until the org's balance is `want` (webhooks arrive asynchronously).
async fn wait_balance(app: &TestApp, org: &str, want: &str) {
    let want = Nanos::parse_usd(want).expect("usd");
    for _ in 0..100 {
        if balance(app, org).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "balance stayed {} (wanted {})",
        balance(app, org).await.to_usd_string(),
        want.to_usd_string()
    );
}

/// Presses "Pay" (or "Cancel") on the fake's hosted page; returns where it sends the browser.
async fn press(url: &str, action: &str) -> String {
    press_with(url, &format!("action={action}")).await
}

/// Pays on the hosted page with one of the fake's test cards (4242, 0341 or 3184).
async fn pay_with_card(url: &str, card: &str) -> String {
    press_with(url, &format!("action=pay&card={card}")).await
}

async fn press_with(url: &str, form: &str) -> String {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .expect("pay");
    assert_eq!(r.status().as_u16(), 303);
    r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string()
}

async fn post_event(app: &TestApp, body: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("stripe-signature", s);
    }
    let r = req.send().await.expect("webhook");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn now() -> i64 {
    switchyard::store::now_ms() / 1000
}

async fn audit(app: &TestApp, org: &str) {
    assert_eq!(
        ledger::audit(&app.store, org).await.expect("audit"),
        Vec::<String>::new()
    );
    common::assert_audit_clean(&app.store).await;
}

async fn a_purchase_is_credited_once_by_the_webhook(db: Db) {
    let (app, fake) = app_with_stripe(db).await;
    let ada = owner(&app, "ada@example.com").await;
    let url = purchases::start_checkout(&app.state, &ada, "25", false)
        .await
        .expect("checkout");
    assert!(url.starts_with(&fake.base_url()), "{url}");
    let (order, status, fee): (String, String, i64) =
        sqlx::query_as("SELECT id, status, fee_nanos FROM orders WHERE org_id = $1")
            .bind(&ada.org_id)
            .fetch_one(&app.store.pool)
            .await
            .expect("order");
    assert_eq!(
        (status.as_str(), fee),
        ("pending", 1_380_000_000),
        "5.5 % of $25, rounded up to the cent"
    );
    let sid = url.rsplit('/').next().expect("session id");
    let session = fake.session(sid).expect("session");
    assert_eq!(session["amount_total"], 2638);
    assert_eq!(session["client_reference_id"], order.as_str());
    assert_eq!(session["mode"], "payment");

    // The redirect back grants nothing; the webhook does.
    let back = press(&url, "pay").await;
    assert_eq!(
        back,
        format!("{}/billing/success?order={order}", app.state.public_url)
    );
    wait_balance(&app, &ada.org_id, "25").await;
    let (status,): (String,) = sqlx::query_as("SELECT status FROM orders WHERE id = $1")
        .bind(&order)
        .fetch_one(&app.store.pool)
        .await
        .expect("order");
    assert_eq!(status, "paid");

    // The same event ten times at once: credited once.
    let event = fake
        .last_event("checkout.session.completed")
        .expect("event");
    let r: Value = app
        .http
        .post(format!(
            "{}_fake/events/{event}/deliver?times=10",
            fake.base_url()
        ))
        .send()
        .await
        .expect("redeliver")
        .json()
        .await
        .expect("json");
    assert_eq!(
        r["statuses"],
        json!([200, 200, 200, 200, 200, 200, 200, 200, 200, 200])
    );
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("25").expect("usd")
    );
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM ledger WHERE org_id = $1 AND kind = 'purchase'")
            .bind(&ada.org_id)
            .fetch_one(&app.store.pool)
            .await
            .expect("count");
    assert_eq!(n, 1);
    audit(&app, &ada.org_id).await;

    // The receipt: for the organisation's members, not for anyone else.
    let ada_cookie = sign_in(&app, "ada@example.com").await;
    let r = app
        .http
        .get(app.url(&format!("/billing/receipts/{order}")))
        .header("cookie", &ada_cookie)
        .send()
        .await
        .expect("receipt");
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.expect("html");
    for needle in [
        order.as_str(),
        "$25.00",
        "$1.38",
        "$26.38",
        "ada@example.com (personal)",
    ] {
        assert!(html.contains(needle), "{needle} in the receipt");
    }
    owner(&app, "mallory@example.com").await;
    let mallory_cookie = sign_in(&app, "mallory@example.com").await;
    let r = app
        .http
        .get(app.url(&format!("/billing/receipts/{order}")))
        .header("cookie", &mallory_cookie)
        .send()
        .await
        .expect("receipt");
    assert_eq!(r.status().as_u16(), 404);

    // Refunds take the credits back: part, then the rest (the fee is not credits).
    let refund = |amount: Option<i64>| {
        let mut form = vec![("payment_intent".to_string(), session_pi(&fake, sid))];
        if let Some(a) = amount {
            form.push(("amount".into(), a.to_string()));
        }
        app.http
            .post(format!("{}v1/refunds", fake.base_url()))
            .bearer_auth(KEY)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&form).expect("form"))
            .send()
    };
    assert_eq!(
        refund(Some(1000)).await.expect("refund").status().as_u16(),
        200
    );
    wait_balance(&app, &ada.org_id, "15").await;
    assert_eq!(refund(None).await.expect("refund").status().as_u16(), 200);
    wait_balance(&app, &ada.org_id, "0").await;
    let (status, refunded): (String, i64) =
        sqlx::query_as("SELECT status, refunded_nanos FROM orders WHERE id = $1")
            .bind(&order)
            .fetch_one(&app.store.pool)
            .await
            .expect("order");
    assert_eq!((status.as_str(), refunded), ("refunded", 25_000_000_000));
    audit(&app, &ada.org_id).await;
}

/// Signs in over HTTP like the sign-in page does; returns the session cookie.
async fn sign_in(app: &TestApp, email: &str) -> String {
    let r = app
        .http
        .post(app.url("/_app/sign_in"))
        .header("origin", &app.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(format!(
            "email={}&password=correct+horse+battery",
            email.replace('@', "%40")
        ))
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status().as_u16(), 200);
    let c = r.headers()["set-cookie"].to_str().expect("cookie");
    c.split(';').next().expect("name=value").to_string()
}

/// Starts a checkout for `usd`; returns the order's id.
async fn checkout(app: &TestApp, actor: &switchyard::accounts::orgs::Actor, usd: &str) -> String {
    purchases::start_checkout(&app.state, actor, usd, false)
        .await
        .expect("checkout");
    let (order,): (String,) =
        sqlx::query_as("SELECT id FROM orders WHERE org_id = $1 ORDER BY created_at DESC")
            .bind(&actor.org_id)
            .fetch_one(&app.store.pool)
            .await
            .expect("order");
    order
}

fn session_pi(fake: &FakeStripe, sid: &str) -> String {
    fake.session(sid).expect("session")["payment_intent"]
        .as_str()
        .expect("paid session has a payment intent")
        .to_string()
}

async fn forged_stale_and_malformed_webhooks_change_nothing(db: Db) {
    let (app, _fake) = app_with_stripe(db).await;
    let ada = owner(&app, "ada@example.com").await;
    let order = checkout(&app, &ada, "10").await;
    let body = serde_json::to_vec(&json!({
        "id": "evt_forged", "object": "event", "type": "checkout.session.completed",
        "data": {"object": {"id": "cs_x", "object": "checkout.session", "client_reference_id": order,
            "payment_status": "paid", "amount_total": 1080, "payment_intent": "pi_x", "currency": "usd"}}
    }))
    .expect("json");
    let cases = [
        ("no signature", None),
        (
            "wrong secret",
            Some(stripe_sig::sign(&body, "whsec_attacker", now())),
        ),
        ("stale", Some(stripe_sig::sign(&body, SECRET, now() - 301))),
        ("malformed", Some("t=soon,v1=nothex".to_string())),
    ];
    for (what, sig) in cases {
        let (status, body) = post_event(&app, &body, sig).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
    // Signed right but changed on the way.
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] = b'9';
    let (status, _) = post_event(
        &app,
        &tampered,
        Some(stripe_sig::sign(&body, SECRET, now())),
    )
    .await;
    assert_eq!(status, 400);
    // Signed, but not an event.
    let junk = b"not json";
    let (status, _) = post_event(&app, junk, Some(stripe_sig::sign(junk, SECRET, now()))).await;
    assert_eq!(status, 400);
    assert_eq!(balance(&app, &ada.org_id).await, Nanos(0));
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM stripe_events")
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    assert_eq!(n, 0, "no event was recorded");

    // The same event signed with the previous secret (rotation) is accepted — and credits the order.
    let (status, r) = post_event(
        &app,
        &body,
        Some(stripe_sig::sign(&body, "whsec_previous", now())),
    )
    .await;
    assert_eq!((status, r["outcome"].as_str()), (200, Some("credited")));
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("10").expect("usd")
    );
    audit(&app, &ada.org_id).await;
}

async fn delayed_payments_wrong_amounts_and_refunds_below_zero(db: Db) {
    let (app, _fake) = app_with_stripe(db).await;
    let ada = owner(&app, "ada@example.com").await;
    let order = checkout(&app, &ada, "20").await;
    let send = |id: &str, kind: &str, object: Value| {
        let body = serde_json::to_vec(
            &json!({"id": id, "object": "event", "type": kind, "data": {"object": object}}),
        )
        .expect("json");
        let sig = stripe_sig::sign(&body, SECRET, now());
        let app = &app;
        async move { post_event(app, &body, Some(sig)).await }
    };
    let session = |status: &str, total: i64| {
        json!({"id": "cs_delayed", "object": "checkout.session", "client_reference_id": order, "currency": "usd",
               "payment_status": status, "amount_total": total, "payment_intent": "pi_delayed"})
    };
    // A bank transfer: completed but unpaid, then paid later.
    let (s, r) = send(
        "evt_1",
        "checkout.session.completed",
        session("unpaid", 2110),
    )
    .await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("awaiting payment")));
    assert_eq!(balance(&app, &ada.org_id).await, Nanos(0));
    // A paid event whose amount is not the order's is not credited (and Stripe is asked to retry).
    let (s, _) = send(
        "evt_2",
        "checkout.session.async_payment_succeeded",
        session("paid", 100),
    )
    .await;
    assert_eq!(s, 500);
    assert_eq!(balance(&app, &ada.org_id).await, Nanos(0));
    let (s, r) = send(
        "evt_3",
        "checkout.session.async_payment_succeeded",
        session("paid", 2110),
    )
    .await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("credited")));
    // Another event for the same order does not credit again.
    let (s, r) = send("evt_4", "checkout.session.completed", session("paid", 2110)).await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("already paid")));
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("20").expect("usd")
    );

    // Spend some, then the payment is disputed: the credits go back and the balance goes negative.
    spend(&app, &ada.org_id, "5", "gen:test").await;
    let (s, r) = send(
        "evt_5",
        "charge.dispute.created",
        json!({"id": "dp_1", "object": "dispute", "payment_intent": "pi_delayed", "amount": 2110, "currency": "usd"}),
    )
    .await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("reversed")));
    assert_eq!(balance(&app, &ada.org_id).await, Nanos(-5_000_000_000));
    // A refund after the dispute has nothing more to take back.
    let (s, r) = send("evt_6", "charge.refunded", json!({"id": "ch_1", "object": "charge", "payment_intent": "pi_delayed", "amount_refunded": 2110, "currency": "usd"})).await;
    assert_eq!(
        (s, r["outcome"].as_str()),
        (200, Some("nothing more to reverse"))
    );
    assert_eq!(balance(&app, &ada.org_id).await, Nanos(-5_000_000_000));
    // The gateway refuses calls while the balance is negative.
    let k = switchyard::keys::create_key(&app.store, &ada.org_id, "k", None, None)
        .await
        .expect("key");
    let r = app
        .chat_with_key(
            &k.secret,
            json!({"model": "test/fast", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 402);
}

async fn purchase_rules(db: Db) {
    let (app, fake) = app_with_stripe(db).await;
    let ada = owner(&app, "ada@example.com").await;
    for (amount, needle) in [
        ("abc", "amount"),
        ("4.99", "from $5 to $10000"),
        ("10.001", "whole cents"),
        ("20000", "from $5"),
    ] {
        let e = purchases::start_checkout(&app.state, &ada, amount, false)
            .await
            .expect_err("refused");
        assert!(e.contains(needle), "{amount}: {e}");
    }
    // Members do not buy; a cancelled checkout leaves the order pending and the balance untouched.
    let bob = switchyard::accounts::orgs::Actor {
        role: switchyard::accounts::Role::Member,
        ..ada.clone()
    };
    assert!(purchases::start_checkout(&app.state, &bob, "10", false)
        .await
        .is_err());
    let url = purchases::start_checkout(&app.state, &ada, "10", false)
        .await
        .expect("checkout");
    let back = press(&url, "cancel").await;
    assert!(back.contains("/billing?canceled=ord_"), "{back}");
    assert_eq!(balance(&app, &ada.org_id).await, Nanos(0));
    assert!(fake.last_event("checkout.session.completed").is_none());
    // The fee: a percentage rounded up to the cent, at least the minimum; none at 0 %.
    let t = app.state.terms;
    assert_eq!(
        t.quote(Nanos::parse_usd("5").expect("usd")).fee,
        Nanos::parse_usd("0.80").expect("usd")
    );
    assert_eq!(
        t.quote(Nanos::parse_usd("100").expect("usd")).fee,
        Nanos::parse_usd("5.50").expect("usd")
    );
    let free = purchases::Terms { fee_bp: 0, ..t };
    assert_eq!(
        free.quote(Nanos::parse_usd("100").expect("usd")).fee,
        Nanos(0)
    );
}

async fn admins_grant_and_deduct_with_a_reason(db: Db) {
    use switchyard_app::account::backend::{now_secs, Dashboard, Who};
    let (app, _fake) = app_with_stripe(db).await;
    let d = switchyard::web::dashboard::Accounts::new(app.state.clone());
    let root = owner(&app, "root@example.com").await; // the platform's first account: its admin
    let ada = owner(&app, "ada@example.com").await;
    let who = |a: &switchyard::accounts::orgs::Actor| Who {
        user_id: a.user_id.clone(),
        org_id: None,
        signed_in_at: now_secs(),
    };
    let nonce = d.admin_overview(&who(&root)).await.expect("admin").nonce;
    assert_eq!(
        d.admin_adjust_credits(&who(&root), &ada.org_id, "12.5", "welcome credit", &nonce)
            .await,
        Ok("granted $12.5 for ada@example.com (personal)".into())
    );
    // The same form twice applies once.
    assert!(d
        .admin_adjust_credits(&who(&root), &ada.org_id, "12.5", "welcome credit", &nonce)
        .await
        .expect("same")
        .contains("already applied"));
    let nonce2 = d.admin_overview(&who(&root)).await.expect("admin").nonce;
    d.admin_adjust_credits(
        &who(&root),
        &ada.org_id,
        "-2.50",
        "goodwill reversal",
        &nonce2,
    )
    .await
    .expect("deducted");
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("10").expect("usd")
    );
    for (amount, reason, needle) in [
        ("abc", "r", "amount"),
        ("0", "r", "not zero"),
        ("5", " ", "reason"),
    ] {
        let n = d.admin_overview(&who(&root)).await.expect("admin").nonce;
        let e = d
            .admin_adjust_credits(&who(&root), &ada.org_id, amount, reason, &n)
            .await
            .expect_err("refused");
        assert!(e.contains(needle), "{e}");
    }
    // Not for anyone else, and the ledger names the admin and the reason.
    let n = d.admin_overview(&who(&root)).await.expect("admin").nonce;
    assert!(d
        .admin_adjust_credits(&who(&ada), &ada.org_id, "100", "me", &n)
        .await
        .is_err());
    let rows: Vec<(String, i64, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT kind, amount_nanos, reference, note FROM ledger WHERE org_id = $1 ORDER BY created_at",
    )
    .bind(&ada.org_id)
    .fetch_all(&app.store.pool)
    .await
    .expect("ledger");
    let by = format!("admin:{}", root.user_id);
    assert_eq!(
        rows,
        vec![
            (
                "grant".into(),
                12_500_000_000,
                Some(by.clone()),
                Some("welcome credit".into())
            ),
            (
                "adjustment".into(),
                -2_500_000_000,
                Some(by),
                Some("goodwill reversal".into())
            ),
        ]
    );
    audit(&app, &ada.org_id).await;
    // The history lists them, newest first, with the running balance.
    let page = d.billing(&who(&ada), 1).await.expect("billing");
    assert_eq!(
        page.history
            .iter()
            .map(|h| (
                h.kind.as_str(),
                h.amount_usd.as_str(),
                h.balance_after_usd.as_str()
            ))
            .collect::<Vec<_>>(),
        [("adjustment", "-2.5", "10"), ("grant", "12.5", "12.5")]
    );
    // Every purchase shows in the admin area.
    purchases::start_checkout(&app.state, &ada, "10", false)
        .await
        .expect("checkout");
    let o = d.admin_overview(&who(&root)).await.expect("admin");
    assert_eq!(
        o.purchases
            .iter()
            .map(|p| (p.org.as_str(), p.status.as_str()))
            .collect::<Vec<_>>(),
        [("ada@example.com (personal)", "pending")]
    );
}

/// Usage written as the settlement writes it (a negative ledger row and the projection).
async fn spend(app: &TestApp, org: &str, usd: &str, key: &str) {
    let n = Nanos::parse_usd(usd).expect("usd").0;
    sqlx::query(
        "INSERT INTO ledger (id, org_id, amount_nanos, kind, idempotency_key, created_at) VALUES ($1, $2, $3, 'usage', $1, 0)",
    )
    .bind(key)
    .bind(org)
    .bind(-n)
    .execute(&app.store.writer)
    .await
    .expect("usage");
    sqlx::query("UPDATE orgs SET usage_nanos = usage_nanos + $1 WHERE id = $2")
        .bind(n)
        .bind(org)
        .execute(&app.store.writer)
        .await
        .expect("usage");
}

async fn low_balance_alerts_email_owners_once_per_crossing(db: Db) {
    use switchyard::billing::alerts::check_once;
    use switchyard_app::account::backend::{now_secs, Dashboard, Who};
    let (app, _fake) = app_with_stripe(db).await;
    let d = switchyard::web::dashboard::Accounts::new(app.state.clone());
    let ada = owner(&app, "ada@example.com").await;
    let who = Who {
        user_id: ada.user_id.clone(),
        org_id: None,
        signed_in_at: now_secs(),
    };
    let alerts = || async {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM outbox WHERE to_email = 'ada@example.com' AND subject LIKE '%balance below%'",
        )
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
        n
    };
    ledger::grant(
        &app.store,
        &ada.org_id,
        Nanos::parse_usd("10").expect("usd"),
        "g1",
        None,
    )
    .await
    .expect("grant");
    assert!(d.set_low_balance(&who, "lots").await.is_err());
    d.set_low_balance(&who, "5").await.expect("set");
    assert_eq!(
        d.billing(&who, 1)
            .await
            .expect("page")
            .low_balance_usd
            .as_deref(),
        Some("5")
    );
    assert_eq!(check_once(&app.state).await.expect("check"), 0);
    spend(&app, &ada.org_id, "6", "u1").await;
    assert_eq!(check_once(&app.state).await.expect("check"), 1);
    assert_eq!(
        check_once(&app.state).await.expect("check"),
        0,
        "once per crossing"
    );
    assert_eq!(alerts().await, 1);
    let (subject, body): (String, String) = sqlx::query_as(
        "SELECT subject, text_body FROM outbox WHERE to_email = 'ada@example.com' AND subject LIKE '%balance below%'",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("mail");
    assert_eq!(
        subject,
        "ada@example.com (personal): Switchyard balance below $5.00"
    );
    assert!(
        body.contains("$4.00") && body.contains(&format!("{}/billing", app.base)),
        "{body}"
    );
    // Back above the threshold re-arms it; the next fall announces again.
    ledger::grant(
        &app.store,
        &ada.org_id,
        Nanos::parse_usd("10").expect("usd"),
        "g2",
        None,
    )
    .await
    .expect("grant");
    assert_eq!(check_once(&app.state).await.expect("check"), 0);
    spend(&app, &ada.org_id, "10", "u2").await;
    assert_eq!(check_once(&app.state).await.expect("check"), 1);
    assert_eq!(alerts().await, 2);
    // Blank removes it; members cannot set it.
    d.set_low_balance(&who, "").await.expect("removed");
    spend(&app, &ada.org_id, "1", "u3").await;
    assert_eq!(check_once(&app.state).await.expect("check"), 0);
    let bob = switchyard::accounts::orgs::Actor {
        role: switchyard::accounts::Role::Member,
        ..ada.clone()
    };
    assert!(
        switchyard::web::billing_pages::set_low_balance(&app.store, &bob, "5")
            .await
            .is_err()
    );
}

async fn promo_codes_are_redeemed_once_per_organisation_and_person_within_their_uses(db: Db) {
    use switchyard::billing::promo;
    use switchyard_app::account::backend::{now_secs, Dashboard, Who};
    use switchyard_app::admin::PromoForm;
    let (app, _fake) = app_with_stripe(db).await;
    let d = std::sync::Arc::new(switchyard::web::dashboard::Accounts::new(app.state.clone()));
    let root = owner(&app, "root@example.com").await;
    let who = |a: &switchyard::accounts::orgs::Actor| Who {
        user_id: a.user_id.clone(),
        org_id: None,
        signed_in_at: now_secs(),
    };
    let form = |code: &str, amount: &str, uses: &str, expires: &str| PromoForm {
        code: code.into(),
        amount_usd: amount.into(),
        uses: uses.into(),
        expires: expires.into(),
    };
    let ada = owner(&app, "ada@example.com").await;
    assert!(
        d.admin_create_promo(&who(&ada), form("MINE", "100", "1", ""))
            .await
            .is_err(),
        "admins only"
    );
    assert_eq!(
        d.admin_create_promo(&who(&root), form("welcome5", "5", "3", ""))
            .await,
        Ok("WELCOME5".into())
    );
    assert!(d
        .admin_create_promo(&who(&root), form("WELCOME5", "5", "3", ""))
        .await
        .expect_err("dup")
        .contains("exists"));
    for (f, needle) in [
        (form("X", "abc", "3", ""), "amount"),
        (form("X", "5", "0", ""), "uses"),
        (form("X", "5", "3", "soon"), "expires"),
        (form("no spaces", "5", "3", ""), "code"),
    ] {
        let e = d
            .admin_create_promo(&who(&root), f)
            .await
            .expect_err("refused");
        assert!(e.contains(needle), "{e}");
    }
    let random = d
        .admin_create_promo(&who(&root), form("", "1", "1", "2001-01-01"))
        .await
        .expect("random");
    assert!(random.starts_with("SY-"));

    // Only a confirmed address redeems (sign-ups are free; people are not).
    assert!(d
        .redeem_promo(&who(&ada), "WELCOME5")
        .await
        .expect_err("unconfirmed")
        .contains("confirm your email"));
    sqlx::query("UPDATE users SET email_verified_at = 1 WHERE id = $1")
        .bind(&ada.user_id)
        .execute(&app.store.writer)
        .await
        .expect("verify");
    assert_eq!(
        d.redeem_promo(&who(&ada), " welcome5 ").await,
        Ok("$5 of credits added".into())
    );
    // Organisations are free to make: a second one of ada's does not redeem it again.
    let second = d.create_org(&who(&ada), "Ada's second").await.expect("org");
    let in_second = Who {
        org_id: Some(second.clone()),
        ..who(&ada)
    };
    assert!(d
        .redeem_promo(&in_second, "WELCOME5")
        .await
        .expect_err("once per person")
        .contains("each person"));
    assert_eq!(balance(&app, &second).await, Nanos(0));
    assert!(d
        .redeem_promo(&who(&ada), "WELCOME5")
        .await
        .expect_err("twice")
        .contains("already"));
    assert!(d
        .redeem_promo(&who(&ada), &random)
        .await
        .expect_err("expired")
        .contains("not valid"));
    assert!(d
        .redeem_promo(&who(&ada), "NOPE")
        .await
        .expect_err("unknown")
        .contains("not valid"));
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("5").expect("usd")
    );
    audit(&app, &ada.org_id).await;

    // Eight organisations race for the two uses left: exactly two get credits.
    let mut racers = Vec::new();
    for i in 0..8 {
        racers.push(owner(&app, &format!("racer{i}@example.com")).await);
    }
    let results = futures::future::join_all(racers.iter().map(|r| {
        let store = app.store.clone();
        let (org, user) = (r.org_id.clone(), r.user_id.clone());
        async move { promo::redeem(&store, &org, &user, "WELCOME5").await }
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        2,
        "{results:?}"
    );
    let (uses,): (i64,) = sqlx::query_as("SELECT uses FROM promo_codes WHERE code = 'WELCOME5'")
        .fetch_one(&app.store.pool)
        .await
        .expect("uses");
    assert_eq!(uses, 3);
    let (granted,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT) FROM ledger WHERE reference = 'promo:WELCOME5'",
    )
    .fetch_one(&app.store.pool)
    .await
    .expect("sum");
    assert_eq!(granted, 15_000_000_000);
    // One person racing from eight organisations of their own gets the credits once.
    d.admin_create_promo(&who(&root), form("SPREE", "1", "100", ""))
        .await
        .expect("promo");
    let mut orgs = Vec::new();
    for i in 0..8 {
        orgs.push(
            switchyard::accounts::orgs::create(&app.store, &root.user_id, &format!("spree {i}"))
                .await
                .expect("org")
                .id,
        );
    }
    let results = futures::future::join_all(orgs.iter().map(|o| {
        let store = app.store.clone();
        let (org, user) = (o.clone(), root.user_id.clone());
        async move { promo::redeem(&store, &org, &user, "SPREE").await }
    }))
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let listed = d.admin_overview(&who(&root)).await.expect("admin").promos;
    assert!(listed
        .iter()
        .any(|p| p.code == "WELCOME5" && p.uses == 3 && p.max_uses == 3));
}

/// Buys `usd` on the hosted page with `card`, ticking "save this card"; waits for the credits.
async fn buy_saving_card(
    app: &TestApp,
    actor: &switchyard::accounts::orgs::Actor,
    usd: &str,
    card: &str,
    balance_after: &str,
) {
    let url = purchases::start_checkout(&app.state, actor, usd, true)
        .await
        .expect("checkout");
    pay_with_card(&url, card).await;
    wait_balance(app, &actor.org_id, balance_after).await;
}

async fn topup_row(app: &TestApp, org: &str) -> (i64, i64, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT topup_armed, topup_failures, topup_error, card_label FROM orgs WHERE id = $1",
    )
    .bind(org)
    .fetch_one(&app.store.pool)
    .await
    .expect("org")
}

async fn topup_orders(app: &TestApp, org: &str) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT status, amount_nanos, fee_nanos FROM orders WHERE org_id = $1 AND kind = 'auto_topup' ORDER BY created_at",
    )
    .bind(org)
    .fetch_all(&app.store.pool)
    .await
    .expect("orders")
}

async fn automatic_top_up_charges_the_saved_card_once_per_crossing(db: Db) {
    use switchyard::billing::topup::{check_once, configure};
    let (app, fake) = app_with_stripe(db).await;
    let ada = owner(&app, "ada@example.com").await;
    let now = switchyard::store::now_ms();
    // No card yet: automatic top-up cannot be turned on.
    let e = configure(&app.state, &ada, true, "5", "20")
        .await
        .expect_err("no card yet");
    assert!(e.contains("save a card first"), "{e}");
    // A purchase without "save this card" keeps nothing.
    let url = purchases::start_checkout(&app.state, &ada, "10", false)
        .await
        .expect("checkout");
    press(&url, "pay").await;
    wait_balance(&app, &ada.org_id, "10").await;
    assert_eq!(topup_row(&app, &ada.org_id).await.3, None);
    // With it ticked, the payment is made as the org's Stripe customer and the card is kept.
    buy_saving_card(&app, &ada, "10", "4242", "20").await;
    let (customer,): (Option<String>,) =
        sqlx::query_as("SELECT stripe_customer_id FROM orgs WHERE id = $1")
            .bind(&ada.org_id)
            .fetch_one(&app.store.pool)
            .await
            .expect("customer");
    assert!(customer.expect("customer").starts_with("cus_"));
    assert_eq!(
        topup_row(&app, &ada.org_id).await.3.as_deref(),
        Some("Visa •••• 4242")
    );
    // Bad settings are refused.
    for (below, add) in [("-1", "20"), ("5", "1"), ("five", "20"), ("5", "20000")] {
        assert!(
            configure(&app.state, &ada, true, below, add).await.is_err(),
            "{below} {add}"
        );
    }
    let said = configure(&app.state, &ada, true, "5", "20")
        .await
        .expect("on");
    assert!(said.contains("Visa •••• 4242"), "{said}");
    // Above the threshold nothing happens.
    assert_eq!(check_once(&app.state, now).await.expect("pass"), 0);
    // Spending to $3 crosses it: one charge for $20 + fee, credited without waiting for the webhook.
    spend(&app, &ada.org_id, "17", "u1").await;
    let (r1, r2) = tokio::join!(check_once(&app.state, now), check_once(&app.state, now));
    assert_eq!(
        r1.expect("pass") + r2.expect("pass"),
        1,
        "one charge per crossing"
    );
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("23").expect("usd")
    );
    let fee = app
        .state
        .terms
        .quote(Nanos::parse_usd("20").expect("usd"))
        .fee;
    assert_eq!(
        topup_orders(&app, &ada.org_id).await,
        [("paid".to_string(), 20_000_000_000, fee.0)]
    );
    // The webhook that follows is handled once and adds nothing more.
    let mut delivered = false;
    for _ in 0..100 {
        if fake.deliveries.lock().iter().any(|(e, s)| {
            Some(e) == fake.last_event("payment_intent.succeeded").as_ref() && *s == 200
        }) {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(delivered, "payment_intent.succeeded reached the webhook");
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("23").expect("usd")
    );
    // The charge went to the saved card, off-session, for credits plus fee.
    let (pi,): (String,) = sqlx::query_as(
        "SELECT stripe_payment_intent FROM orders WHERE org_id = $1 AND kind = 'auto_topup'",
    )
    .bind(&ada.org_id)
    .fetch_one(&app.store.pool)
    .await
    .expect("pi");
    let charged = fake.payment_intent(&pi).expect("payment intent");
    assert_eq!(
        charged["amount_received"],
        json!((20_000_000_000 + fee.0) / 10_000_000)
    );
    assert_eq!(
        charged["customer"].as_str(),
        customer_of(&app, &ada.org_id).await.as_deref()
    );
    // Back above the threshold, a second pass does not charge again; falling under it again is a new
    // crossing.
    assert_eq!(check_once(&app.state, now).await.expect("pass"), 0);
    spend(&app, &ada.org_id, "19", "u2").await;
    assert_eq!(check_once(&app.state, now).await.expect("pass"), 1);
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("24").expect("usd")
    );
    assert_eq!(topup_orders(&app, &ada.org_id).await.len(), 2);
    // The history says what it was; the receipt names the billing name.
    switchyard::web::billing_pages::set_billing_name(&app.store, &ada, "Ada Analytics Ltd")
        .await
        .expect("billing name");
    let page = switchyard::web::billing_pages::page(&app.state, &ada, 1)
        .await
        .expect("page");
    assert!(page
        .history
        .iter()
        .any(|h| h.description == "Credits bought by card: automatic top-up"));
    assert!(
        page.topup_status.starts_with("On. Last top-up: $20"),
        "{}",
        page.topup_status
    );
    assert!(!page.topup_trouble);
    let cookie = sign_in(&app, "ada@example.com").await;
    let order = page
        .history
        .iter()
        .find_map(|h| h.order.clone())
        .expect("an order");
    let receipt = app
        .http
        .get(app.url(&format!("/billing/receipts/{order}")))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("receipt")
        .text()
        .await
        .expect("html");
    assert!(receipt.contains("Ada Analytics Ltd"), "{receipt}");
    assert!(
        receipt.contains("Saved card, charged automatically"),
        "{receipt}"
    );
    ledger_sums_to_balance(&app, &ada.org_id).await;
    // A top-up too small to clear the threshold is still one per crossing, whatever is saved meanwhile.
    configure(&app.state, &ada, true, "100", "5")
        .await
        .expect("on");
    assert_eq!(check_once(&app.state, now).await.expect("pass"), 1);
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("29").expect("usd")
    );
    buy_saving_card(&app, &ada, "10", "4242", "39").await;
    configure(&app.state, &ada, true, "100", "6")
        .await
        .expect("on");
    assert_eq!(check_once(&app.state, now).await.expect("pass"), 0);
    assert_eq!(topup_orders(&app, &ada.org_id).await.len(), 3);
    // Turning it off stops it.
    configure(&app.state, &ada, false, "", "")
        .await
        .expect("off");
    spend(&app, &ada.org_id, "36", "u3").await;
    assert_eq!(check_once(&app.state, now).await.expect("pass"), 0);
}

/// Every balance change is a ledger row: they add up to the balance. (These tests write usage
/// without generations, so the full audit does not apply.)
async fn ledger_sums_to_balance(app: &TestApp, org: &str) {
    let (sum,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT) FROM ledger WHERE org_id = $1",
    )
    .bind(org)
    .fetch_one(&app.store.pool)
    .await
    .expect("sum");
    assert_eq!(Nanos(sum), balance(app, org).await);
}

async fn customer_of(app: &TestApp, org: &str) -> Option<String> {
    let (c,): (Option<String>,) =
        sqlx::query_as("SELECT stripe_customer_id FROM orgs WHERE id = $1")
            .bind(org)
            .fetch_one(&app.store.pool)
            .await
            .expect("customer");
    c
}

async fn declined_top_ups_back_off_then_pause(db: Db) {
    use switchyard::billing::topup::{check_once, configure, MAX_DECLINES};
    let (app, fake) = app_with_stripe(db).await;
    let ada = owner(&app, "ada@example.com").await;
    let retry = app.state.cfg.topup_retry_ms as i64;
    let t0 = switchyard::store::now_ms();
    // 0341 pays now but declines every later charge.
    buy_saving_card(&app, &ada, "10", "0341", "10").await;
    configure(&app.state, &ada, true, "5", "20")
        .await
        .expect("on");
    spend(&app, &ada.org_id, "8", "u1").await;
    assert_eq!(check_once(&app.state, t0).await.expect("pass"), 1);
    let (armed, failures, error, _) = topup_row(&app, &ada.org_id).await;
    assert_eq!((armed, failures), (1, 1));
    assert_eq!(error.as_deref(), Some("Your card was declined."));
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("2").expect("usd")
    );
    let page = switchyard::web::billing_pages::page(&app.state, &ada, 1)
        .await
        .expect("page");
    assert!(page.topup_trouble);
    assert!(
        page.topup_status
            .starts_with("The last charge failed: Your card was declined. Next try after"),
        "{}",
        page.topup_status
    );
    // Within the wait nothing is tried; after it, once more; the waits double.
    assert_eq!(
        check_once(&app.state, t0 + retry - 1).await.expect("pass"),
        0
    );
    assert_eq!(check_once(&app.state, t0 + retry).await.expect("pass"), 1);
    let mut t = t0 + retry;
    for n in 2..MAX_DECLINES {
        let wait = retry << (n - 1);
        assert_eq!(
            check_once(&app.state, t + wait - 1).await.expect("pass"),
            0,
            "wait {n}"
        );
        t += wait;
        assert_eq!(
            check_once(&app.state, t).await.expect("pass"),
            1,
            "try {}",
            n + 1
        );
    }
    // Paused after MAX_DECLINES: no more tries, however long we wait; every order is failed.
    assert_eq!(topup_row(&app, &ada.org_id).await.1, MAX_DECLINES);
    assert_eq!(
        check_once(&app.state, t + 1_000 * retry)
            .await
            .expect("pass"),
        0
    );
    let orders = topup_orders(&app, &ada.org_id).await;
    assert_eq!(orders.len() as i64, MAX_DECLINES);
    assert!(orders.iter().all(|(s, _, _)| s == "failed"), "{orders:?}");
    let page = switchyard::web::billing_pages::page(&app.state, &ada, 1)
        .await
        .expect("page");
    assert!(
        page.topup_status
            .starts_with("Paused after 4 failed charges"),
        "{}",
        page.topup_status
    );
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("2").expect("usd")
    );
    // A card that needs its holder to authenticate fails off-session too, and says what to do.
    buy_saving_card(&app, &ada, "5", "3184", "7").await;
    assert_eq!(
        topup_row(&app, &ada.org_id).await.1,
        0,
        "a new card clears the declines"
    );
    spend(&app, &ada.org_id, "3", "u2").await;
    assert_eq!(check_once(&app.state, t).await.expect("pass"), 1);
    let error = topup_row(&app, &ada.org_id).await.2.expect("error");
    assert!(
        error.contains("requires authentication") && error.contains("Save this card"),
        "{error}"
    );
    // A working card: the next try succeeds.
    buy_saving_card(&app, &ada, "5", "4242", "9").await;
    spend(&app, &ada.org_id, "5", "u3").await;
    // Stripe rate-limits the first try: nothing is charged, the order waits and is retried under its
    // own idempotency key, and only one charge is ever made for it.
    reqwest::Client::new()
        .post(format!("{}_fake/fail_next?status=429", fake.base_url()))
        .send()
        .await
        .expect("fail next");
    assert_eq!(check_once(&app.state, t).await.expect("pass"), 1);
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("4").expect("usd")
    );
    let (_, failures, error, _) = topup_row(&app, &ada.org_id).await;
    assert_eq!(failures, 1);
    assert_eq!(
        error.as_deref(),
        Some("the payment provider did not answer")
    );
    let pending = topup_orders(&app, &ada.org_id).await;
    assert_eq!(pending.last().map(|o| o.0.as_str()), Some("pending"));
    assert_eq!(check_once(&app.state, t + retry).await.expect("pass"), 1);
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos::parse_usd("24").expect("usd")
    );
    let orders = topup_orders(&app, &ada.org_id).await;
    assert_eq!(orders.len(), pending.len(), "the waiting order was reused");
    assert_eq!(orders.last().map(|o| o.0.as_str()), Some("paid"));
    assert_eq!(
        topup_row(&app, &ada.org_id).await.1,
        0,
        "declines are forgotten after a success"
    );
    // Removing the card turns automatic top-up off.
    switchyard::billing::topup::remove_card(&app.state, &ada)
        .await
        .expect("remove");
    assert_eq!(topup_row(&app, &ada.org_id).await.3, None);
    spend(&app, &ada.org_id, "23", "u4").await;
    assert_eq!(
        check_once(&app.state, t + 100 * retry).await.expect("pass"),
        0
    );
    ledger_sums_to_balance(&app, &ada.org_id).await;
}

async fn a_top_up_whose_answer_is_lost_is_credited_by_its_webhook_and_never_charged_twice(db: Db) {
    use switchyard::billing::topup::{check_once, configure};
    let (app, fake) = app_with_stripe(db).await;
    let ada = owner(&app, "ada@example.com").await;
    let retry = app.state.cfg.topup_retry_ms as i64;
    let t = switchyard::store::now_ms();
    buy_saving_card(&app, &ada, "10", "4242", "10").await;
    configure(&app.state, &ada, true, "5", "20")
        .await
        .expect("on");
    spend(&app, &ada.org_id, "8", "u1").await;
    // Stripe charges the card, then the connection breaks before its answer reaches us.
    reqwest::Client::new()
        .post(format!("{}_fake/cut_next_answer", fake.base_url()))
        .send()
        .await
        .expect("cut");
    assert_eq!(check_once(&app.state, t).await.expect("pass"), 1);
    // (The pass counted a failure — unless the webhook had already landed and cleared it.)
    // Its webhook grants the credits; the order is paid.
    wait_balance(&app, &ada.org_id, "22").await;
    assert_eq!(topup_orders(&app, &ada.org_id).await[0].0, "paid");
    // The next pass sees the balance back above the threshold: nothing more is charged.
    assert_eq!(check_once(&app.state, t + retry).await.expect("pass"), 0);
    let off_session: Vec<Value> = fake
        .payment_intents()
        .into_iter()
        .filter(|pi| pi["metadata"]["kind"] == "auto_topup")
        .collect();
    assert_eq!(off_session.len(), 1, "one charge: {off_session:?}");
    assert_eq!(topup_orders(&app, &ada.org_id).await.len(), 1);
    assert_eq!(
        topup_row(&app, &ada.org_id).await.1,
        0,
        "recovered: the failure is forgotten"
    );
    ledger_sums_to_balance(&app, &ada.org_id).await;
}

/// Signs and posts an event, as Stripe would.
async fn stripe_event(app: &TestApp, id: &str, kind: &str, object: Value) -> (u16, Value) {
    let body = serde_json::to_vec(
        &json!({"id": id, "object": "event", "type": kind, "data": {"object": object}}),
    )
    .expect("json");
    let sig = stripe_sig::sign(&body, SECRET, now());
    post_event(app, &body, Some(sig)).await
}

async fn taken_back(app: &TestApp, order: &str) -> (String, i64, i64) {
    sqlx::query_as("SELECT status, refunded_nanos, disputed_nanos FROM orders WHERE id = $1")
        .bind(order)
        .fetch_one(&app.store.pool)
        .await
        .expect("order")
}

async fn refunds_and_disputes_are_exact(db: Db) {
    let (app, _fake) = app_with_stripe(db).await;
    let ada = owner(&app, "ada@example.com").await;
    let usd = |s: &str| Nanos::parse_usd(s).expect("usd");
    let session = |order: &str, pi: &str, currency: &str| {
        json!({"id": format!("cs_{pi}"), "object": "checkout.session", "client_reference_id": order,
               "payment_status": "paid", "amount_total": 2110, "payment_intent": pi, "currency": currency})
    };
    let refund = |pi: &str, cents: i64| {
        json!({"id": format!("ch_{pi}"), "object": "charge", "payment_intent": pi, "amount": 2110,
               "amount_refunded": cents, "currency": "usd"})
    };

    // A payment in another currency credits nothing; it is kept, refused, for the admin to see.
    let order = checkout(&app, &ada, "20").await;
    let (s, r) = stripe_event(
        &app,
        "evt_eur",
        "checkout.session.completed",
        session(&order, "pi_eur", "eur"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        r["outcome"]
            .as_str()
            .expect("outcome")
            .starts_with("refused: currency eur"),
        "{r}"
    );
    assert_eq!(balance(&app, &ada.org_id).await, Nanos(0));
    let admin = switchyard::web::admin_pages::overview(&app.state, "nobody")
        .await
        .expect("admin data");
    assert!(
        admin
            .payment_events
            .iter()
            .any(|e| e.id == "evt_eur" && e.outcome.contains("currency eur")),
        "{:?}",
        admin.payment_events
    );
    audit(&app, &ada.org_id).await;

    // Two partial refunds of one payment handled at once take back exactly the refunded amount
    // ($5, then $10 in all: Stripe reports the running total), whichever is handled first. Three
    // orders, to give a race every chance.
    let mut total = Nanos(0);
    for round in 0..3 {
        let order = checkout(&app, &ada, "20").await;
        let pi = format!("pi_twice_{round}");
        let (s, _) = stripe_event(
            &app,
            &format!("evt_paid_{round}"),
            "checkout.session.completed",
            session(&order, &pi, "usd"),
        )
        .await;
        assert_eq!(s, 200);
        let (e1, e2) = (format!("evt_r1_{round}"), format!("evt_r2_{round}"));
        let (a, b) = tokio::join!(
            stripe_event(&app, &e1, "charge.refunded", refund(&pi, 500)),
            stripe_event(&app, &e2, "charge.refunded", refund(&pi, 1000)),
        );
        assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
        assert_eq!(
            taken_back(&app, &order).await,
            ("refunded".into(), usd("10").0, 0)
        );
        total = Nanos(total.0 + usd("10").0);
        assert_eq!(balance(&app, &ada.org_id).await, total);
        audit(&app, &ada.org_id).await;
    }

    // A refund that arrives before its payment waits for it, and is applied when the payment lands.
    let order = checkout(&app, &ada, "20").await;
    let (s, r) = stripe_event(
        &app,
        "evt_early_refund",
        "charge.refunded",
        refund("pi_early", 700),
    )
    .await;
    assert_eq!(
        (s, r["outcome"].as_str()),
        (200, Some("waiting for its payment"))
    );
    assert_eq!(balance(&app, &ada.org_id).await, total);
    let admin = switchyard::web::admin_pages::overview(&app.state, "nobody")
        .await
        .expect("admin data");
    assert!(admin
        .payment_events
        .iter()
        .any(|e| e.id == "evt_early_refund"));
    let (s, r) = stripe_event(
        &app,
        "evt_late_payment",
        "checkout.session.completed",
        session(&order, "pi_early", "usd"),
    )
    .await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("credited")));
    assert_eq!(
        taken_back(&app, &order).await,
        ("refunded".into(), usd("7").0, 0)
    );
    total = Nanos(total.0 + usd("13").0);
    assert_eq!(balance(&app, &ada.org_id).await, total);
    let admin = switchyard::web::admin_pages::overview(&app.state, "nobody")
        .await
        .expect("admin data");
    assert!(
        !admin
            .payment_events
            .iter()
            .any(|e| e.id == "evt_early_refund"),
        "applied, no longer waiting"
    );
    audit(&app, &ada.org_id).await;

    // A partial dispute takes back only its amount; won, it gives it back.
    let order = checkout(&app, &ada, "20").await;
    let (s, _) = stripe_event(
        &app,
        "evt_paid_d",
        "checkout.session.completed",
        session(&order, "pi_disputed", "usd"),
    )
    .await;
    assert_eq!(s, 200);
    total = Nanos(total.0 + usd("20").0);
    let dispute = |status: &str, cents: i64| {
        json!({"id": "dp_partial", "object": "dispute", "payment_intent": "pi_disputed", "amount": cents,
               "currency": "usd", "status": status})
    };
    let (_, r) = stripe_event(
        &app,
        "evt_d1",
        "charge.dispute.created",
        dispute("needs_response", 600),
    )
    .await;
    assert_eq!(r["outcome"], "reversed");
    // Stripe's funds_withdrawn for the same dispute takes nothing more.
    let (_, r) = stripe_event(
        &app,
        "evt_d2",
        "charge.dispute.funds_withdrawn",
        dispute("needs_response", 600),
    )
    .await;
    assert_eq!(r["outcome"], "dispute already taken back");
    assert_eq!(
        taken_back(&app, &order).await,
        ("disputed".into(), 0, usd("6").0)
    );
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos(total.0 - usd("6").0)
    );
    audit(&app, &ada.org_id).await;
    let (_, r) = stripe_event(&app, "evt_d3", "charge.dispute.closed", dispute("won", 600)).await;
    assert_eq!(r["outcome"], "restored");
    let (_, r) = stripe_event(
        &app,
        "evt_d4",
        "charge.dispute.funds_reinstated",
        dispute("won", 600),
    )
    .await;
    assert_eq!(r["outcome"], "dispute already closed");
    assert_eq!(taken_back(&app, &order).await, ("paid".into(), 0, 0));
    assert_eq!(balance(&app, &ada.org_id).await, total);
    audit(&app, &ada.org_id).await;
    // A dispute lost keeps what it took.
    let lost = |status: &str| {
        json!({"id": "dp_lost", "object": "dispute", "payment_intent": "pi_disputed", "amount": 2110,
               "currency": "usd", "status": status})
    };
    let (_, r) = stripe_event(
        &app,
        "evt_d5",
        "charge.dispute.created",
        lost("needs_response"),
    )
    .await;
    assert_eq!(r["outcome"], "reversed");
    let (_, r) = stripe_event(&app, "evt_d6", "charge.dispute.closed", lost("lost")).await;
    assert_eq!(r["outcome"], "dispute lost");
    assert_eq!(
        taken_back(&app, &order).await,
        ("disputed".into(), 0, usd("20").0)
    );
    assert_eq!(
        balance(&app, &ada.org_id).await,
        Nanos(total.0 - usd("20").0)
    );
    audit(&app, &ada.org_id).await;
    app.stop().await;
}

both_backends!(
    refunds_and_disputes_are_exact,
    a_top_up_whose_answer_is_lost_is_credited_by_its_webhook_and_never_charged_twice,
    automatic_top_up_charges_the_saved_card_once_per_crossing,
    declined_top_ups_back_off_then_pause,
    promo_codes_are_redeemed_once_per_organisation_and_person_within_their_uses,
    low_balance_alerts_email_owners_once_per_crossing,
    admins_grant_and_deduct_with_a_reason,
    a_purchase_is_credited_once_by_the_webhook,
    forged_stale_and_malformed_webhooks_change_nothing,
    delayed_payments_wrong_amounts_and_refunds_below_zero,
    purchase_rules,
);
