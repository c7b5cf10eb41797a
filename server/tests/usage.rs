//! Usage dashboards on SQLite and PostgreSQL: after a mixed workload (real requests through the gateway,
//! answered, streamed, failed, plus synthetic generations in three organisations and a generation settled
//! twice), the rollups, the overview, the activity log and its CSV, the daily CSV, OpenRouter's
//! `/activity` and the admin analytics all equal sums computed directly from the ledger and the log.
//! Also: paging the activity log without gaps, members seeing only their own keys, prompt logging only
//! when turned on, and pruning the log by retention without changing any total.

mod common;

use common::{chat_body, Db, TestApp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use switchyard::billing::{ledger, Generation};
use switchyard::money::Nanos;
use switchyard::store::now_ms;
use switchyard::usage::{self, seed, DAY_MS};
use switchyard::web::dashboard::Accounts;
use switchyard_app::account::backend::{now_secs, Dashboard, Who};
use switchyard_app::usage::ActivityFilter;

fn who(user_id: &str, org_id: &str) -> Who {
    Who {
        user_id: user_id.into(),
        org_id: Some(org_id.into()),
        signed_in_at: now_secs(),
    }
}

async fn one<T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin>(
    app: &TestApp,
    sql: &str,
    binds: &[&str],
) -> T {
    let mut q = sqlx::query_as::<_, T>(sql);
    for b in binds {
        q = q.bind(b.to_string());
    }
    q.fetch_one(&app.store.pool).await.expect(sql)
}

/// -Σ usage ledger entries of an org since `from` (nanos charged).
async fn ledger_usage(app: &TestApp, org: &str, from: i64) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT) FROM ledger WHERE org_id = $1 AND kind = 'usage' AND created_at >= $2",
    )
    .bind(org)
    .bind(from)
    .fetch_one(&app.store.pool)
    .await
    .expect("ledger");
    -n
}

async fn user_id(app: &TestApp, email: &str) -> String {
    one::<(String,)>(app, "SELECT id FROM users WHERE email = $1", &[email])
        .await
        .0
}

/// Sums per (org, key, model) of a rollup table, and the same computed from the log.
type Sums = BTreeMap<(String, String, String), (i64, i64, i64, i64, i64, i64, i64, i64)>;

type SumRow = (
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

async fn sums(app: &TestApp, sql: &str) -> Sums {
    let rows: Vec<SumRow> = sqlx::query_as(sql)
        .fetch_all(&app.store.pool)
        .await
        .expect(sql);
    rows.into_iter()
        .map(|(o, k, m, a, b, c, d, e, f, g, h)| ((o, k, m), (a, b, c, d, e, f, g, h)))
        .collect()
}

async fn rollup_sums(app: &TestApp, table: &str) -> Sums {
    sums(app, &format!(
        "SELECT org_id, key_id, model_slug, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
         CAST(SUM(cancelled) AS BIGINT), CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), \
         CAST(SUM(cache_read_tokens) AS BIGINT), CAST(SUM(reasoning_tokens) AS BIGINT), CAST(SUM(charge_nanos) AS BIGINT) \
         FROM {table} GROUP BY org_id, key_id, model_slug"
    ))
    .await
}

async fn log_sums(app: &TestApp) -> Sums {
    sums(
        app,
        "SELECT org_id, key_id, model_slug, COUNT(*), CAST(SUM(CASE WHEN status IN (200, 499) THEN 0 ELSE 1 END) AS BIGINT), \
         CAST(SUM(cancelled) AS BIGINT), CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), \
         CAST(SUM(cache_read_tokens) AS BIGINT), CAST(SUM(reasoning_tokens) AS BIGINT), CAST(SUM(charge_nanos) AS BIGINT) \
         FROM generations GROUP BY org_id, key_id, model_slug",
    )
    .await
}

/// A CSV line's fields (the exports quote only what needs it; these rows hold no quotes).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn nanos(usd: &str) -> i64 {
    Nanos::parse_usd(usd).expect("exact decimal").0
}

/// The mixed workload: real requests (answered with cache and reasoning tokens, streamed, failed) by the
/// org's key, synthetic usage in acme and two more organisations, and one generation recorded twice.
async fn workload(app: &TestApp) {
    app.grant("100").await;
    for i in 0..4 {
        let r = app
            .chat(chat_body(
                json!({"x_fake": {"tokens": 10 + i, "cached_tokens": 3, "reasoning_tokens": 2}}),
            ))
            .await;
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        let r = app
            .chat(chat_body(json!({"stream": true, "x_fake": {"tokens": 7}})))
            .await;
        assert_eq!(r.status(), 200);
        let _ = r.text().await;
    }
    let r = app
        .chat(json!({"model": "test/badkey", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert!(r.status().is_client_error() || r.status().is_server_error());
    let _ = r.text().await;
    app.state.gate.flush().await;

    let catalog = app.state.catalog.get();
    let acme = seed::SeedOptions {
        generations: 1_500,
        days: 400,
        org: Some("acme".into()),
        keys: 3,
        ..Default::default()
    };
    seed::seed(&app.store, &catalog, &acme, |_| {})
        .await
        .expect("seed acme");
    let others = seed::SeedOptions {
        generations: 600,
        days: 60,
        orgs: 2,
        keys: 2,
        rng_seed: 7,
        ..Default::default()
    };
    seed::seed(&app.store, &catalog, &others, |_| {})
        .await
        .expect("seed others");

    // One generation settled twice (a retried settlement): recorded, rolled up and charged once.
    let g = Generation {
        id: "gen-twice".into(),
        org_id: app.org_id.clone(),
        key_id: app.key_id.clone(),
        model_slug: "test/fast".into(),
        provider_slug: Some("fake".into()),
        endpoint_id: Some("ep".into()),
        prompt_tokens: 100,
        completion_tokens: 50,
        cost: Nanos(125_000),
        charge: Nanos(137_500),
        latency_ms: 300,
        status: 200,
        attempts: json!([]),
        created_at: now_ms() - 3 * DAY_MS,
        ..Default::default()
    };
    switchyard::billing::record(&app.store, &[g.clone(), g.clone()])
        .await
        .expect("record");
    switchyard::billing::record(&app.store, &[g])
        .await
        .expect("record again");

    // A purchase and a partial refund for the analytics.
    let mut tx = app.store.writer.begin().await.expect("tx");
    ledger::post(
        &mut tx,
        &app.org_id,
        Nanos(20_000_000_000),
        "purchase",
        "test:purchase",
        None,
        None,
    )
    .await
    .expect("purchase");
    ledger::post(
        &mut tx,
        &app.org_id,
        Nanos(-5_000_000_000),
        "refund",
        "test:refund",
        None,
        None,
    )
    .await
    .expect("refund");
    tx.commit().await.expect("commit");
}

async fn rollups_exports_and_analytics_equal_the_ledger_and_the_log(db: Db) {
    let app = TestApp::start(db).await;
    workload(&app).await;
    let now = now_ms();
    let today = now - now.rem_euclid(DAY_MS);
    let d = Accounts::new(app.state.clone());
    let owner = user_id(&app, "owner@acme.test").await;
    let me = who(&owner, &app.org_id);

    // 1. The rollups are exactly the log's sums, hourly and daily, per org, key and model.
    let log = log_sums(&app).await;
    assert_eq!(rollup_sums(&app, "usage_hourly").await, log);
    assert_eq!(rollup_sums(&app, "usage_daily").await, log);
    // The one-dimension rollups agree with the log too, at both widths.
    for width in [usage::HOUR_MS, DAY_MS] {
        for (scope, dim, col) in [
            ("org_id", "model", "model_slug"),
            ("org_id", "key", "key_id"),
            ("'*'", "model", "model_slug"),
            ("'*'", "provider", "COALESCE(provider_slug, '')"),
            ("'*'", "org", "org_id"),
        ] {
            let from_dims: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
                "SELECT scope, value, CAST(SUM(requests) AS BIGINT), CAST(SUM(charge_nanos) AS BIGINT), \
                 CAST(SUM(completion_tokens) AS BIGINT) FROM usage_dims WHERE dim = $1 AND width = $2 \
                 AND (scope = '*') = $3 GROUP BY scope, value ORDER BY 1, 2",
            )
            .bind(dim)
            .bind(width)
            .bind(scope == "'*'")
            .fetch_all(&app.store.pool)
            .await
            .expect("dims");
            let from_log: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(&format!(
                "SELECT {scope}, {col}, COUNT(*), CAST(SUM(charge_nanos) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT) \
                 FROM generations GROUP BY {}{col} ORDER BY 1, 2",
                if scope == "'*'" { String::new() } else { format!("{scope}, ") }
            ))
            .fetch_all(&app.store.pool)
            .await
            .expect("log");
            assert_eq!(from_dims, from_log, "{scope} by {dim} at {width}");
        }
    }
    let twice = one::<(i64,)>(
        &app,
        "SELECT COUNT(*) FROM ledger WHERE idempotency_key = 'gen:gen-twice'",
        &[],
    )
    .await;
    assert_eq!(twice.0, 1, "a generation settled twice is charged once");
    let real = log
        .iter()
        .filter(|((o, k, _), _)| *o == app.org_id && *k == app.key_id)
        .fold((0, 0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1, a.2 + v.6));
    assert_eq!(real.0, 8, "7 real requests and the twice-settled one");
    assert_eq!(real.1, 1, "the refused upstream key is an error");
    assert_eq!(
        real.2, 8,
        "reasoning tokens reported by the upstream are kept"
    );

    // 2. Every org's charges in the log and rollups equal its usage ledger entries.
    let orgs: Vec<(String,)> = sqlx::query_as("SELECT id FROM orgs")
        .fetch_all(&app.store.pool)
        .await
        .expect("orgs");
    assert_eq!(orgs.len(), 3);
    for (org,) in &orgs {
        let charged: i64 = log
            .iter()
            .filter(|((o, _, _), _)| o == org)
            .map(|(_, v)| v.7)
            .sum();
        assert_eq!(charged, ledger_usage(&app, org, 0).await, "org {org}");
        assert!(charged > 0);
    }

    // 3. The overview: today / 7 / 30 days and the charts over every range equal the ledger.
    let o = d
        .usage_overview(&me, "30d", "model")
        .await
        .expect("overview");
    assert!(o.whole_org);
    for (p, from) in o
        .periods
        .iter()
        .zip([today, today - 6 * DAY_MS, today - 29 * DAY_MS])
    {
        assert_eq!(
            p.spend_nanos,
            ledger_usage(&app, &app.org_id, from).await,
            "{}",
            p.label
        );
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM generations WHERE org_id = $1 AND created_at >= $2",
        )
        .bind(&app.org_id)
        .bind(from)
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
        assert_eq!(p.requests, n, "{}", p.label);
    }
    for (range, group) in [
        ("24h", "key"),
        ("7d", "member"),
        ("30d", "model"),
        ("1y", "model"),
    ] {
        let o = d.usage_overview(&me, range, group).await.expect("overview");
        let w = usage::window(range, now);
        assert_eq!(o.chart.labels.len(), w.buckets);
        let spend: i64 = o.chart.totals(0).iter().sum();
        assert_eq!(
            spend,
            ledger_usage(&app, &app.org_id, w.start).await,
            "{range} by {group}"
        );
        let (req,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM generations WHERE org_id = $1 AND created_at >= $2",
        )
        .bind(&app.org_id)
        .bind(w.start)
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
        assert_eq!(
            o.chart.totals(2).iter().sum::<i64>(),
            req,
            "{range} by {group}"
        );
        assert!(o.chart.series.len() <= 7);
        let top: i64 = o.top_models.iter().map(|t| t.spend_nanos).sum();
        assert_eq!(
            top, spend,
            "top models over {range} cover everything (fewer than 10 models)"
        );
    }

    // 4. The activity log as CSV: every row of the org, charges summing to the ledger to the nano.
    let all = ActivityFilter {
        range: "all".into(),
        ..Default::default()
    };
    let csv = usage::activity_csv(
        &app.store,
        &common::actor(&app.store, &owner).await,
        &all,
        now,
    )
    .await
    .expect("csv");
    let mut lines = csv.lines();
    let head = fields(lines.next().expect("header"));
    let charge_col = head
        .iter()
        .position(|h| h == "charge_usd")
        .expect("charge column");
    let rows: Vec<Vec<String>> = lines.map(fields).collect();
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generations WHERE org_id = $1")
        .bind(&app.org_id)
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    assert_eq!(rows.len() as i64, count);
    assert_eq!(
        rows.iter()
            .map(|r| r[0].clone())
            .collect::<HashSet<_>>()
            .len(),
        rows.len(),
        "no row twice"
    );
    let csv_total: i64 = rows.iter().map(|r| nanos(&r[charge_col])).sum();
    assert_eq!(csv_total, ledger_usage(&app, &app.org_id, 0).await);

    // Daily totals for the last 90 days.
    let from = today - 89 * DAY_MS;
    let daily = usage::daily_csv(
        &app.store,
        &common::actor(&app.store, &owner).await,
        from,
        today,
    )
    .await
    .expect("daily");
    let rows: Vec<Vec<String>> = daily.lines().skip(1).map(fields).collect();
    assert!(rows.len() > 30);
    let total: i64 = rows.iter().map(|r| nanos(&r[8])).sum();
    assert_eq!(total, ledger_usage(&app, &app.org_id, from).await);
    let reqs: i64 = rows
        .iter()
        .map(|r| r[2].parse::<i64>().expect("requests"))
        .sum();
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM generations WHERE org_id = $1 AND created_at >= $2")
            .bind(&app.org_id)
            .bind(from)
            .fetch_one(&app.store.pool)
            .await
            .expect("count");
    assert_eq!(reqs, n);
    // Over HTTP with a session it needs signing in; bad dates are refused.
    let r = app
        .http
        .get(app.url("/usage/daily.csv"))
        .send()
        .await
        .expect("get");
    assert!(
        r.url().path().starts_with("/signin"),
        "signed out: sent to sign in"
    );

    // 5. OpenRouter's /activity with a management key: the last 30 completed days, per day and model.
    let mkey = switchyard::keys::create_management_key(&app.store, &app.org_id, "ops")
        .await
        .expect("mkey")
        .secret;
    let get = |q: &str| {
        let http = app.http.clone();
        let url = app.url(&format!("/api/v1/activity{q}"));
        let k = mkey.clone();
        async move {
            let r = http.get(url).bearer_auth(k).send().await.expect("get");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (s, v) = get("").await;
    assert_eq!(s, 200, "{v}");
    let data = v["data"].as_array().expect("data");
    let sum: i64 = data.iter().map(|r| nanos(&r["usage"].to_string())).sum();
    let in_window = ledger_usage(&app, &app.org_id, today - 30 * DAY_MS).await
        - ledger_usage(&app, &app.org_id, today).await;
    assert_eq!(sum, in_window);
    assert!(data
        .iter()
        .all(|r| r["date"].as_str().is_some() && r["requests"].as_i64().unwrap_or(0) > 0));
    let yesterday = &data
        .iter()
        .find(|r| r["date"].as_str().is_some())
        .expect("a day")["date"];
    let (s, v) = get(&format!("?date={}", yesterday.as_str().expect("date"))).await;
    assert_eq!(s, 200);
    assert!(v["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|r| r["date"] == *yesterday));
    let (s, v) = get("?date=yesterday").await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("date"));
    let (s, _) = get("?api_key_hash=nope").await;
    assert_eq!(s, 404);
    let r = app
        .http
        .get(app.url("/api/v1/activity"))
        .bearer_auth(&app.key)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403, "an inference key cannot read activity");

    // 6. Platform analytics reconcile with the ledger: revenue, purchases, refunds, liability.
    for (range, group) in [("1y", "org"), ("30d", "provider"), ("24h", "model")] {
        let a = d.analytics(&me, range, group).await;
        assert!(a.is_err(), "only platform admins");
        let w = usage::window(range, now);
        let a = usage::analytics(&app.store, range, group, now)
            .await
            .expect("analytics");
        let (rev,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(-SUM(amount_nanos), 0) AS BIGINT) FROM ledger WHERE kind = 'usage' AND created_at >= $1",
        ).bind(w.start).fetch_one(&app.store.pool).await.expect("rev");
        assert_eq!(a.revenue_nanos, rev, "{range}");
        let (cost, errs): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN status IN (200, 499) THEN 0 ELSE 1 END), 0) AS BIGINT) \
             FROM generations WHERE created_at >= $1",
        ).bind(w.start).fetch_one(&app.store.pool).await.expect("cost");
        assert_eq!((a.cost_nanos, a.errors), (cost, errs), "{range}");
        assert_eq!(a.by_org.iter().map(|r| r.revenue_nanos).sum::<i64>(), rev);
        assert_eq!(
            a.by_provider.iter().map(|r| r.cost_nanos).sum::<i64>(),
            cost
        );
        assert_eq!(a.chart.totals(0).iter().sum::<i64>(), rev);
        assert_eq!(a.chart.totals(2).iter().sum::<i64>(), rev - cost, "margin");
        assert_eq!(
            (a.purchases_nanos, a.refunds_nanos),
            (20_000_000_000, 5_000_000_000)
        );
        let balances: Vec<(i64,)> =
            sqlx::query_as("SELECT CAST(SUM(amount_nanos) AS BIGINT) FROM ledger GROUP BY org_id")
                .fetch_all(&app.store.pool)
                .await
                .expect("balances");
        let liability: i64 = balances.iter().map(|b| b.0.max(0)).sum();
        assert_eq!(a.liability_nanos, liability);
    }
    let fake = usage::analytics(&app.store, "7d", "provider", now)
        .await
        .expect("analytics");
    let p = fake
        .by_provider
        .iter()
        .find(|p| p.name == "badkey")
        .expect("the failing provider is listed");
    assert!(p.errors >= 1 && p.requests >= p.errors);
    app.assert_books_balance().await;
    app.stop().await;
}

async fn the_activity_log_pages_filters_and_scopes_members(db: Db) {
    let app = TestApp::start(db).await;
    workload(&app).await;
    let now = now_ms();
    let d = Accounts::new(app.state.clone());
    let owner = user_id(&app, "owner@acme.test").await;
    let me = who(&owner, &app.org_id);

    // Paging through everything: newest first, no row twice, none missing.
    let mut f = ActivityFilter {
        range: "all".into(),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let p = d.activity(&me, f.clone()).await.expect("page");
        assert!(p.rows.len() <= usage::PAGE_ROWS);
        seen.extend(p.rows.iter().map(|r| (r.time.clone(), r.id.clone())));
        pages += 1;
        match p.next {
            Some(c) => f.before = c,
            None => break,
        }
    }
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generations WHERE org_id = $1")
        .bind(&app.org_id)
        .fetch_one(&app.store.pool)
        .await
        .expect("count");
    assert_eq!(seen.len() as i64, count);
    assert_eq!(
        seen.iter().map(|s| &s.1).collect::<HashSet<_>>().len(),
        seen.len()
    );
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
    assert!(pages > 10);

    // Filters return only matching rows, and the count from the rollups matches the log.
    let first = d
        .activity(
            &me,
            ActivityFilter {
                range: "all".into(),
                ..Default::default()
            },
        )
        .await
        .expect("page");
    assert_eq!(first.matching, count);
    let model = first.models.first().cloned().expect("models offered");
    for (status, sql) in [
        ("error", "status NOT IN (200, 499)"),
        ("cancelled", "status = 499"),
        ("ok", "status = 200"),
    ] {
        let f = ActivityFilter {
            range: "30d".into(),
            model: model.clone(),
            status: status.into(),
            ..Default::default()
        };
        let p = d.activity(&me, f).await.expect("filtered");
        assert!(p.rows.iter().all(|r| r.model == model));
        assert!(
            p.rows.iter().all(|r| match status {
                "ok" => r.status == 200,
                "cancelled" => r.status == 499 && r.cancelled,
                _ => r.status != 200 && r.status != 499,
            }),
            "{status}"
        );
        // "30 days" is today and the 29 whole UTC days before.
        let since = now - now.rem_euclid(DAY_MS) - 29 * DAY_MS;
        let (n,): (i64,) = sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM generations WHERE org_id = $1 AND model_slug = $2 AND created_at >= $3 AND {sql}"
        )).bind(&app.org_id).bind(&model).bind(since).fetch_one(&app.store.pool).await.expect("count");
        assert_eq!(p.matching, n, "{status}");
    }
    let k = first
        .keys
        .iter()
        .find(|k| k.id == app.key_id)
        .expect("the test key is offered")
        .clone();
    let p = d
        .activity(
            &me,
            ActivityFilter {
                range: "all".into(),
                key: k.id.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("by key");
    assert_eq!(p.rows.len(), 8);
    assert!(p.rows.iter().all(|r| r.key == k.label));
    let answered = p
        .rows
        .iter()
        .find(|r| r.cached_tokens == 3)
        .expect("a cached answer");
    assert_eq!(answered.reasoning_tokens, 2);

    // The detail of a failed request names every attempt and why it failed.
    let failed = p
        .rows
        .iter()
        .find(|r| r.model == "test/badkey")
        .expect("the failed request");
    let detail = d.generation_detail(&me, &failed.id).await.expect("detail");
    assert!(!detail.attempts.is_empty());
    assert!(
        detail
            .attempts
            .iter()
            .all(|a| a.status == 401 || a.status >= 400),
        "{:?}",
        detail.attempts
    );
    assert!(!detail.logging && detail.prompt.is_none());

    // A member sees only their own keys' usage; another organisation's request is not found.
    let mem = "mem@acme.test";
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, $3)")
        .bind("u-member")
        .bind(mem)
        .bind(now)
        .execute(&app.store.writer)
        .await
        .expect("user");
    sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, 'u-member', 'member', $2)")
        .bind(&app.org_id).bind(now).execute(&app.store.writer).await.expect("member");
    let mk = switchyard::keys::create_key(&app.store, &app.org_id, "member key", None, None)
        .await
        .expect("key");
    sqlx::query("UPDATE api_keys SET created_by = 'u-member' WHERE id = $1")
        .bind(&mk.id)
        .execute(&app.store.writer)
        .await
        .expect("owner");
    for _ in 0..3 {
        let r = app
            .chat_with_key(&mk.secret, chat_body(json!({"x_fake": {"tokens": 5}})))
            .await;
        assert_eq!(r.status(), 200);
    }
    app.state.gate.flush().await;
    let member = who("u-member", &app.org_id);
    let p = d
        .activity(&member, ActivityFilter::default())
        .await
        .expect("member page");
    assert!(!p.whole_org && p.members.is_empty());
    assert_eq!(p.rows.len(), 3);
    assert_eq!(p.keys.len(), 1);
    assert!(p.rows.iter().all(|r| r.member == mem));
    let o = d
        .usage_overview(&member, "24h", "model")
        .await
        .expect("member overview");
    assert_eq!(o.periods[0].requests, 3);
    let (charged,): (i64,) = sqlx::query_as(
        "SELECT CAST(SUM(charge_nanos) AS BIGINT) FROM generations WHERE key_id = $1",
    )
    .bind(&mk.id)
    .fetch_one(&app.store.pool)
    .await
    .expect("sum");
    assert_eq!(o.periods[0].spend_nanos, charged);
    assert!(
        d.generation_detail(&member, &failed.id).await.is_err(),
        "not their key's request"
    );
    // The owner can filter by that member.
    let p = d
        .activity(
            &me,
            ActivityFilter {
                member: "u-member".into(),
                ..Default::default()
            },
        )
        .await
        .expect("by member");
    assert_eq!(p.rows.len(), 3);
    assert!(p.members.iter().any(|m| m.label == mem));
    let other: (String,) = sqlx::query_as("SELECT id FROM generations WHERE org_id <> $1 LIMIT 1")
        .bind(&app.org_id)
        .fetch_one(&app.store.pool)
        .await
        .expect("other");
    assert!(
        d.generation_detail(&me, &other.0).await.is_err(),
        "another organisation's request"
    );
    app.stop().await;
}

async fn prompts_are_kept_only_when_turned_on_and_the_log_prunes_by_retention(db: Db) {
    let app = TestApp::start(db).await;
    app.grant("10").await;
    let d = Accounts::new(app.state.clone());
    let owner = user_id(&app, "owner@acme.test").await;
    let me = who(&owner, &app.org_id);
    let ask = |text: &str, stream: bool| {
        chat_body(
            json!({"stream": stream, "messages": [{"role": "user", "content": text}], "x_fake": {"tokens": 6}}),
        )
    };

    let r = app.chat(ask("secret plans, not logged", false)).await;
    let off_id = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    let _ = r.text().await;
    app.state.gate.flush().await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generation_content")
        .fetch_one(&app.store.pool)
        .await
        .expect("n");
    assert_eq!(n, 0, "off by default");

    // Members cannot turn it on; bad retention is refused with nothing changed.
    assert!(d.set_prompt_logging(&me, true, "0").await.is_err());
    assert!(d.set_prompt_logging(&me, true, "many").await.is_err());
    let page = d.org_page(&me).await.expect("org page");
    assert!(!page.prompt_logging);
    let said = d.set_prompt_logging(&me, true, "7").await.expect("on");
    assert!(said.contains("7 days"), "{said}");
    let page = d.org_page(&me).await.expect("org page");
    assert!(page.prompt_logging && page.log_retention_days == 7);

    let r = app.chat(ask("a logged question", false)).await;
    let on_id = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    let answer: Value = r.json().await.expect("json");
    let r = app.chat(ask("a logged stream", true)).await;
    let stream_id = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    let body = r.text().await.expect("stream");
    app.state.gate.flush().await;
    let streamed_text: String = common::sse_events(&body)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();

    let detail = d.generation_detail(&me, &on_id).await.expect("detail");
    assert!(detail.logging);
    assert!(detail
        .prompt
        .as_deref()
        .expect("prompt")
        .contains("a logged question"));
    assert_eq!(
        detail.answer.as_deref(),
        answer["choices"][0]["message"]["content"].as_str()
    );
    let detail = d.generation_detail(&me, &stream_id).await.expect("detail");
    assert_eq!(detail.answer.as_deref(), Some(streamed_text.as_str()));
    assert!(!streamed_text.is_empty());
    let detail = d.generation_detail(&me, &off_id).await.expect("detail");
    assert!(
        detail.prompt.is_none(),
        "requests made while it was off keep nothing"
    );

    // Retention: a logged prompt older than the org's 7 days goes; the request log keeps its row.
    let eight_days = now_ms() - 8 * DAY_MS;
    sqlx::query("UPDATE generation_content SET created_at = $1 WHERE generation_id = $2")
        .bind(eight_days)
        .bind(&on_id)
        .execute(&app.store.writer)
        .await
        .expect("age");
    let (gens, prompts) = usage::prune(&app.store, None, now_ms())
        .await
        .expect("prune");
    assert_eq!((gens, prompts), (0, 1));
    assert!(d
        .generation_detail(&me, &on_id)
        .await
        .expect("detail")
        .prompt
        .is_none());
    assert!(d
        .generation_detail(&me, &stream_id)
        .await
        .expect("detail")
        .prompt
        .is_some());

    // Turning it off stops logging at once.
    d.set_prompt_logging(&me, false, "").await.expect("off");
    let r = app.chat(ask("not kept again", false)).await;
    let later = r.headers()["x-generation-id"]
        .to_str()
        .expect("id")
        .to_string();
    let _ = r.text().await;
    app.state.gate.flush().await;
    assert!(d
        .generation_detail(&me, &later)
        .await
        .expect("detail")
        .prompt
        .is_none());

    // Request-log retention: rows older than N days are deleted; every total stays (rollups keep them).
    let catalog = app.state.catalog.get();
    seed::seed(
        &app.store,
        &catalog,
        &seed::SeedOptions {
            generations: 400,
            days: 40,
            org: Some("acme".into()),
            keys: 1,
            ..Default::default()
        },
        |_| {},
    )
    .await
    .expect("seed");
    let before = d
        .usage_overview(&me, "1y", "model")
        .await
        .expect("overview");
    let (old,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generations WHERE created_at < $1")
        .bind(now_ms() - 10 * DAY_MS)
        .fetch_one(&app.store.pool)
        .await
        .expect("old");
    assert!(old > 100);
    let (gens, _) = usage::prune(&app.store, Some(10), now_ms())
        .await
        .expect("prune");
    assert_eq!(gens as i64, old);
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generations WHERE created_at < $1")
        .bind(now_ms() - 10 * DAY_MS)
        .fetch_one(&app.store.pool)
        .await
        .expect("left");
    assert_eq!(left, 0);
    let after = d
        .usage_overview(&me, "1y", "model")
        .await
        .expect("overview");
    assert_eq!(
        before.chart, after.chart,
        "the charts read the rollups, which pruning leaves"
    );
    assert_eq!(before.periods, after.periods);
    app.assert_books_balance().await;
    app.stop().await;
}

both_backends!(
    rollups_exports_and_analytics_equal_the_ledger_and_the_log,
    the_activity_log_pages_filters_and_scopes_members,
    prompts_are_kept_only_when_turned_on_and_the_log_prunes_by_retention,
);
