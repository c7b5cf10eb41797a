//! How long each dashboard query takes on this database (`switchyard usage timings`): every page's data
//! as the pages ask for it, run a few times, median and slowest reported.

use crate::accounts::orgs::Actor;
use crate::accounts::Role;
use crate::store::{now_ms, Store};
use anyhow::Context;
use std::time::Instant;
use switchyard_app::usage::ActivityFilter;

pub struct Timing {
    pub name: String,
    pub median_ms: f64,
    pub max_ms: f64,
    /// What the query returned (rows or buckets), to show it did real work.
    pub size: usize,
}

/// The organisation with the most generations, or the one named.
async fn busiest(store: &Store, org: Option<&str>) -> anyhow::Result<(String, String)> {
    let row: Option<(String, String)> = match org {
        Some(name) => {
            sqlx::query_as("SELECT id, name FROM orgs WHERE name = $1")
                .bind(name)
                .fetch_optional(&store.pool)
                .await?
        }
        None => {
            sqlx::query_as(
                "SELECT o.id, o.name FROM orgs o JOIN usage_daily u ON u.org_id = o.id \
             GROUP BY o.id, o.name ORDER BY SUM(u.requests) DESC LIMIT 1",
            )
            .fetch_optional(&store.pool)
            .await?
        }
    };
    row.context("no organisation with usage; seed some with `switchyard usage seed N`")
}

pub async fn run(
    store: &Store,
    org: Option<&str>,
    runs: usize,
) -> anyhow::Result<(String, i64, Vec<Timing>)> {
    let (org_id, org_name) = busiest(store, org).await?;
    let (log_rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM generations")
        .fetch_one(&store.pool)
        .await?;
    let actor = Actor {
        user_id: String::new(),
        org_id: org_id.clone(),
        role: Role::Owner,
    };
    let now = now_ms();
    let first = super::activity(store, &actor, &ActivityFilter::default(), now)
        .await
        .map_err(anyhow::Error::msg)?;
    let model = first
        .rows
        .first()
        .map(|r| r.model.clone())
        .unwrap_or_default();
    let key = first.keys.first().map(|k| k.id.clone()).unwrap_or_default();
    let gen_id = first.rows.first().map(|r| r.id.clone()).unwrap_or_default();
    let next = first.next.clone().unwrap_or_default();
    let mut out = Vec::new();
    macro_rules! time {
        ($name:expr, $e:expr, $size:expr) => {{
            let mut ms = Vec::with_capacity(runs);
            let mut size = 0usize;
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let r = $e.await.map_err(|e| anyhow::anyhow!("{}: {e}", $name))?;
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                size = $size(&r);
            }
            ms.sort_by(|a, b| a.total_cmp(b));
            out.push(Timing {
                name: $name.to_string(),
                median_ms: ms[ms.len() / 2],
                max_ms: ms[ms.len() - 1],
                size,
            });
        }};
    }
    use switchyard_app::usage::{ActivityPage, Analytics, Overview};
    let buckets = |o: &Overview| o.chart.labels.len() * o.chart.series.len().max(1);
    for (range, group) in [
        ("24h", "model"),
        ("7d", "key"),
        ("30d", "member"),
        ("1y", "model"),
    ] {
        time!(
            format!("overview {range} by {group}"),
            super::overview(store, &actor, range, group, now),
            buckets
        );
    }
    let rows = |p: &ActivityPage| p.rows.len();
    let f = |range: &str, model: &str, key: &str, status: &str, before: &str| ActivityFilter {
        range: range.into(),
        model: model.into(),
        key: key.into(),
        status: status.into(),
        before: before.into(),
        ..Default::default()
    };
    time!(
        "activity, newest page",
        super::activity(store, &actor, &f("7d", "", "", "", ""), now),
        rows
    );
    time!(
        "activity, second page",
        super::activity(store, &actor, &f("7d", "", "", "", &next), now),
        rows
    );
    time!(
        "activity, one model, 30 days",
        super::activity(store, &actor, &f("30d", &model, "", "", ""), now),
        rows
    );
    time!(
        "activity, one key, all time",
        super::activity(store, &actor, &f("all", "", &key, "", ""), now),
        rows
    );
    time!(
        "activity, errors only, 30 days",
        super::activity(store, &actor, &f("30d", "", "", "error", ""), now),
        rows
    );
    time!(
        "activity, cancelled, one model, all",
        super::activity(store, &actor, &f("all", &model, "", "cancelled", ""), now),
        rows
    );
    time!(
        "generation detail",
        super::generation(store, &actor, &gen_id),
        |g: &switchyard_app::usage::GenerationDetail| g.attempts.len()
    );
    let today = now - now.rem_euclid(super::DAY_MS);
    time!(
        "daily totals CSV, 1 year",
        super::daily_csv(store, &actor, today - 364 * super::DAY_MS, today),
        |s: &String| s.lines().count()
    );
    time!(
        "GET /api/v1/activity",
        super::openrouter_activity(store, &org_id, None, None, now),
        |v: &serde_json::Value| v["data"].as_array().map_or(0, |a| a.len())
    );
    let an = |a: &Analytics| a.chart.labels.len() + a.by_model.len() + a.by_org.len();
    for (range, group) in [
        ("24h", "model"),
        ("7d", "provider"),
        ("30d", "org"),
        ("1y", "model"),
    ] {
        time!(
            format!("admin analytics {range} by {group}"),
            super::analytics(store, range, group, now),
            an
        );
    }
    Ok((org_name, log_rows, out))
}
