//! `switchyard audit`: every money invariant, checked on a live database (read-only, cron-friendly).
//!
//! - Each organisation's `credits`, `usage` and `reserved` equal its ledger rows and its open holds; its
//!   usage never exceeds all the credit it was ever given (usage does not overdraw; refunds may).
//! - Each key's usage equals the charges of its requests, its reserved amount its open holds.
//! - Every request was charged at most what was held for it, and exactly its ledger entry.
//! - Orders agree with the ledger: a paid order's purchase entry, refunds and disputes' entries equal
//!   what the order says was taken back, open and lost disputes equal the order's disputed amount.
//! - The usage rollups (hourly, daily and per dimension) agree with each other and with the ledger.
//!
//! What disagrees is listed with the ids involved; operator losses are summed for the record.

use crate::money::Nanos;
use crate::store::Store;

/// What an audit found.
#[derive(Debug, Default)]
pub struct Report {
    pub orgs: i64,
    pub keys: i64,
    pub ledger_rows: i64,
    pub generations: i64,
    pub orders: i64,
    pub holds: i64,
    /// Every disagreement, one line each, naming the ids involved.
    pub problems: Vec<String>,
    /// (kind, count, provider cost at stake, uncollected) per kind of operator loss.
    pub losses: Vec<(String, i64, Nanos, Nanos)>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report as the command prints it.
    pub fn text(&self, quiet: bool) -> String {
        let mut out = String::new();
        if !quiet {
            out.push_str(&format!(
                "audited {} organisations, {} keys, {} ledger entries, {} logged requests, {} orders, {} open holds\n",
                self.orgs, self.keys, self.ledger_rows, self.generations, self.orders, self.holds
            ));
            for (kind, n, cost, lost) in &self.losses {
                out.push_str(&format!(
                    "operator loss {kind}: {n} (provider cost {}, uncollected {})\n",
                    cost.dollars(),
                    lost.dollars()
                ));
            }
        }
        for p in &self.problems {
            out.push_str("MISMATCH ");
            out.push_str(p);
            out.push('\n');
        }
        if self.clean() && !quiet {
            out.push_str(
                "OK: every balance, key total, hold, charge, order and rollup agrees with the ledger\n",
            );
        }
        out
    }
}

/// At most this many rows of one kind of problem are listed (with a count of the rest).
const LIST: usize = 20;

fn push_all(problems: &mut Vec<String>, found: Vec<String>, what: &str) {
    let n = found.len();
    problems.extend(found.into_iter().take(LIST));
    if n > LIST {
        problems.push(format!("… and {} more {what}", n - LIST));
    }
}

pub async fn run(store: &Store) -> anyhow::Result<Report> {
    let pool = &store.pool;
    let mut r = Report::default();
    let count = |sql: &'static str| async move {
        sqlx::query_as::<_, (i64,)>(sql)
            .fetch_one(pool)
            .await
            .map(|(n,)| n)
    };
    r.orgs = count("SELECT COUNT(*) FROM orgs").await?;
    r.keys = count("SELECT COUNT(*) FROM api_keys").await?;
    r.ledger_rows = count("SELECT COUNT(*) FROM ledger").await?;
    r.generations = count("SELECT COUNT(*) FROM generations").await?;
    r.orders = count("SELECT COUNT(*) FROM orders").await?;
    r.holds = count("SELECT COUNT(*) FROM holds").await?;

    // Organisations against their ledger, holds and rollups.
    type OrgRow = (String, String, i64, i64, i64, i64, i64, i64, i64, i64);
    let orgs: Vec<OrgRow> = sqlx::query_as(
        "SELECT o.id, o.name, o.credits_nanos, o.usage_nanos, o.reserved_nanos, \
                COALESCE(l.credits, 0), COALESCE(l.used, 0), COALESCE(l.given, 0), \
                COALESCE(h.held, 0), COALESCE(d.charged, 0) \
         FROM orgs o \
         LEFT JOIN (SELECT org_id, \
                      CAST(SUM(CASE WHEN kind <> 'usage' THEN amount_nanos ELSE 0 END) AS BIGINT) AS credits, \
                      CAST(SUM(CASE WHEN kind = 'usage' THEN -amount_nanos ELSE 0 END) AS BIGINT) AS used, \
                      CAST(SUM(CASE WHEN amount_nanos > 0 THEN amount_nanos ELSE 0 END) AS BIGINT) AS given \
                    FROM ledger GROUP BY org_id) l ON l.org_id = o.id \
         LEFT JOIN (SELECT org_id, CAST(SUM(amount_nanos) AS BIGINT) AS held FROM holds GROUP BY org_id) h \
                ON h.org_id = o.id \
         LEFT JOIN (SELECT org_id, CAST(SUM(charge_nanos) AS BIGINT) AS charged FROM usage_daily GROUP BY org_id) d \
                ON d.org_id = o.id \
         ORDER BY o.id",
    )
    .fetch_all(pool)
    .await?;
    let mut found = Vec::new();
    for (id, name, credits, usage, reserved, l_credits, l_used, given, held, charged) in orgs {
        let who = format!("organisation {id} ({name})");
        if credits != l_credits || usage != l_used {
            found.push(format!("{who}: credits/usage {credits}/{usage} but the ledger says {l_credits}/{l_used} (nano-USD)"));
        }
        if reserved != held {
            found.push(format!(
                "{who}: reserved {reserved} but its open holds sum to {held}"
            ));
        }
        if charged != l_used {
            found.push(format!("{who}: its requests were charged {charged} (rollups) but its usage entries sum to {l_used}"));
        }
        if l_used > given {
            found.push(format!("{who}: usage {l_used} exceeds all the credit it was ever given ({given}): usage overdrew the balance"));
        }
    }
    push_all(&mut r.problems, found, "organisation mismatches");

    // Keys against their requests and holds.
    type KeyRow = (String, String, i64, i64, i64, i64, i64);
    let keys: Vec<KeyRow> = sqlx::query_as(
        "SELECT k.id, k.org_id, k.usage_nanos, k.reserved_nanos, k.period_usage_nanos, \
                COALESCE(h.held, 0), COALESCE(d.charged, 0) \
         FROM api_keys k \
         LEFT JOIN (SELECT key_id, CAST(SUM(amount_nanos) AS BIGINT) AS held FROM holds GROUP BY key_id) h \
                ON h.key_id = k.id \
         LEFT JOIN (SELECT key_id, CAST(SUM(charge_nanos) AS BIGINT) AS charged FROM usage_daily GROUP BY key_id) d \
                ON d.key_id = k.id \
         ORDER BY k.id",
    )
    .fetch_all(pool)
    .await?;
    let mut found = Vec::new();
    for (id, org, usage, reserved, period, held, charged) in keys {
        let who = format!("key {id} of organisation {org}");
        if usage != charged {
            found.push(format!(
                "{who}: usage {usage} but its requests were charged {charged}"
            ));
        }
        if reserved != held {
            found.push(format!(
                "{who}: reserved {reserved} but its open holds sum to {held}"
            ));
        }
        if period > usage || period < 0 {
            found.push(format!(
                "{who}: usage this period {period} is outside 0..={usage}"
            ));
        }
    }
    push_all(&mut r.problems, found, "key mismatches");

    // Requests: never charged above their hold, each charge in the ledger once and exactly.
    let over: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT id, charge_nanos, held_nanos FROM generations WHERE charge_nanos > held_nanos ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    push_all(
        &mut r.problems,
        over.into_iter()
            .map(|(id, c, h)| format!("request {id}: charged {c} but only {h} was held"))
            .collect(),
        "requests charged above their hold",
    );
    let unbilled: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT g.id, g.charge_nanos, COALESCE(-l.amount_nanos, 0) FROM generations g \
         LEFT JOIN ledger l ON l.idempotency_key = 'gen:' || g.id \
         WHERE COALESCE(-l.amount_nanos, 0) <> g.charge_nanos ORDER BY g.id",
    )
    .fetch_all(pool)
    .await?;
    push_all(
        &mut r.problems,
        unbilled
            .into_iter()
            .map(|(id, c, l)| format!("request {id}: charged {c} but its ledger entry says {l}"))
            .collect(),
        "requests whose ledger entry differs",
    );

    // Orders against the ledger and their disputes.
    type OrderRow = (String, String, i64, i64, i64, i64, i64, i64);
    let orders: Vec<OrderRow> = sqlx::query_as(
        "SELECT o.id, o.status, o.amount_nanos, o.refunded_nanos, o.disputed_nanos, \
                COALESCE(p.amount, 0), COALESCE(b.amount, 0), COALESCE(d.amount, 0) \
         FROM orders o \
         LEFT JOIN (SELECT reference, CAST(SUM(amount_nanos) AS BIGINT) AS amount FROM ledger \
                    WHERE kind = 'purchase' GROUP BY reference) p ON p.reference = o.id \
         LEFT JOIN (SELECT reference, CAST(SUM(amount_nanos) AS BIGINT) AS amount FROM ledger \
                    WHERE kind = 'refund' OR idempotency_key LIKE 'dispute-won:%' GROUP BY reference) b \
                ON b.reference = o.id \
         LEFT JOIN (SELECT order_id, CAST(SUM(amount_nanos) AS BIGINT) AS amount FROM disputes \
                    WHERE status IN ('open', 'lost') GROUP BY order_id) d ON d.order_id = o.id \
         ORDER BY o.id",
    )
    .fetch_all(pool)
    .await?;
    let mut found = Vec::new();
    for (id, status, amount, refunded, disputed, purchased, taken, open) in orders {
        let who = format!("order {id} ({status})");
        let paid = matches!(status.as_str(), "paid" | "refunded" | "disputed");
        let want = if paid { amount } else { 0 };
        if purchased != want {
            found.push(format!(
                "{who}: credited {purchased} in the ledger, expected {want}"
            ));
        }
        if -taken != refunded + disputed {
            found.push(format!("{who}: the ledger took back {} but the order says refunded {refunded} + disputed {disputed}", -taken));
        }
        if open != disputed {
            found.push(format!(
                "{who}: open and lost disputes sum to {open} but the order says {disputed}"
            ));
        }
        if refunded + disputed > amount {
            found.push(format!(
                "{who}: took back {} of {amount} credits",
                refunded + disputed
            ));
        }
    }
    push_all(&mut r.problems, found, "order mismatches");

    // The rollups agree with one another (the daily ones were checked against the ledger above).
    type Sums = (String, i64, i64, i64);
    let sums = |sql: &'static str| async move {
        sqlx::query_as::<_, Sums>(sql)
            .fetch_all(pool)
            .await
            .map(|v| {
                v.into_iter()
                    .map(|(k, a, b, c)| (k, (a, b, c)))
                    .collect::<std::collections::BTreeMap<_, _>>()
            })
    };
    let daily = sums(
        "SELECT org_id, CAST(SUM(requests) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT), \
                CAST(SUM(charge_nanos) AS BIGINT) FROM usage_daily GROUP BY org_id",
    )
    .await?;
    let others = [
        (
            "hourly rollup",
            sums(
                "SELECT org_id, CAST(SUM(requests) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT), \
                        CAST(SUM(charge_nanos) AS BIGINT) FROM usage_hourly GROUP BY org_id",
            )
            .await?,
        ),
        (
            "per-model rollup",
            sums(
                "SELECT scope, CAST(SUM(requests) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT), \
                        CAST(SUM(charge_nanos) AS BIGINT) FROM usage_dims \
                 WHERE dim = 'model' AND width = 86400000 AND scope <> '*' GROUP BY scope",
            )
            .await?,
        ),
        (
            "platform per-organisation rollup",
            sums(
                "SELECT value, CAST(SUM(requests) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT), \
                        CAST(SUM(charge_nanos) AS BIGINT) FROM usage_dims \
                 WHERE dim = 'org' AND width = 86400000 AND scope = '*' GROUP BY value",
            )
            .await?,
        ),
    ];
    let mut found = Vec::new();
    for (name, map) in &others {
        for org in daily.keys().chain(map.keys()) {
            let a = daily.get(org).copied().unwrap_or_default();
            let b = map.get(org).copied().unwrap_or_default();
            if a != b {
                found.push(format!("organisation {org}: the daily rollup has requests/cost/charge {a:?}, the {name} {b:?}"));
            }
        }
    }
    found.dedup();
    push_all(&mut r.problems, found, "rollup mismatches");

    let losses: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT kind, COUNT(*), CAST(SUM(cost_nanos) AS BIGINT), CAST(SUM(uncollected_nanos) AS BIGINT) \
         FROM operator_losses GROUP BY kind ORDER BY kind",
    )
    .fetch_all(pool)
    .await?;
    r.losses = losses
        .into_iter()
        .map(|(k, n, c, u)| (k, n, Nanos(c), Nanos(u)))
        .collect();
    Ok(r)
}
