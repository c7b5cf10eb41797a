//! Usage as people read it: the tenant overview (spend, tokens and requests over time), the activity log
//! (the raw request log, filtered and paged), its CSV exports, OpenRouter's `/activity`, and the platform
//! admin's analytics. Charts and totals read the rollups (`usage_hourly`, `usage_daily`), never the raw
//! log; the activity log reads the raw log through its indexes, a page at a time.

pub mod rollup;
pub mod seed;
pub mod timings;

use crate::accounts::orgs::Actor;
use crate::store::Store;
pub use rollup::{DAY_MS, HOUR_MS};
use sqlx::any::AnyRow;
use sqlx::{Any, FromRow};
use std::collections::HashMap;
use switchyard_app::usage::{
    ActivityFilter, ActivityPage, ActivityRow, Analytics, AttemptView, Chart, Choice,
    GenerationDetail, MoneyRow, Overview, PeriodTotals, Series, TopRow,
};

/// Series drawn separately in a chart; the rest are summed as "Other".
const TOP_SERIES: usize = 6;
/// Rows per page of the activity log.
pub const PAGE_ROWS: usize = 50;

/// A chart's time window: which rollup, how wide a bucket, the first bucket and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub table: &'static str,
    pub width: i64,
    pub start: i64,
    pub buckets: usize,
}

/// "24h" and "7d" by hour, "30d" and "1y" by UTC day; each ends with the bucket holding `now`.
pub fn window(range: &str, now: i64) -> Window {
    let (table, width, buckets) = match range {
        "24h" => ("usage_hourly", HOUR_MS, 24),
        "7d" => ("usage_hourly", HOUR_MS, 168),
        "1y" => ("usage_daily", DAY_MS, 365),
        _ => ("usage_daily", DAY_MS, 30),
    };
    let last = now - now.rem_euclid(width);
    Window {
        table,
        width,
        start: last - (buckets as i64 - 1) * width,
        buckets,
    }
}

/// A bound value of a query assembled from filters.
#[derive(Clone, Debug)]
enum Arg {
    S(String),
    I(i64),
}

/// SQL with `$n` placeholders numbered as values are added.
#[derive(Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
        }
    }
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    fn s(&mut self, v: &str) -> &mut Self {
        self.args.push(Arg::S(v.to_string()));
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }
    fn i(&mut self, v: i64) -> &mut Self {
        self.args.push(Arg::I(v));
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }
    /// ` AND key_id IN (…)`, or nothing when every key is in scope.
    fn keys(&mut self, column: &str, keys: Option<&[String]>) -> &mut Self {
        if let Some(keys) = keys {
            if keys.is_empty() {
                self.push(" AND 1 = 0");
                return self;
            }
            self.push(&format!(" AND {column} IN ("));
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    self.push(",");
                }
                self.s(k);
            }
            self.push(")");
        }
        self
    }
    async fn fetch<O>(&self, store: &Store) -> Result<Vec<O>, sqlx::Error>
    where
        O: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        let mut q = sqlx::query_as::<Any, O>(&self.text);
        for a in &self.args {
            q = match a {
                Arg::S(s) => q.bind(s.clone()),
                Arg::I(i) => q.bind(*i),
            };
        }
        q.fetch_all(&store.pool).await
    }
}

fn internal(e: impl std::fmt::Display) -> String {
    tracing::error!(error = %e, "usage query failed");
    "something went wrong on our side; try again in a moment".into()
}

/// What part of an organisation's usage someone may see: all of it (owners and admins) or their own keys.
pub struct Scope {
    pub org_id: String,
    pub keys: Option<Vec<String>>,
    pub whole_org: bool,
}

/// An organisation's keys (also revoked ones): id → (name, creator's user id).
struct KeyInfo {
    names: HashMap<String, String>,
    creators: HashMap<String, Option<String>>,
    emails: HashMap<String, String>,
}

async fn key_info(store: &Store, org_id: &str) -> Result<KeyInfo, sqlx::Error> {
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, name, prefix, created_by FROM api_keys WHERE org_id = $1 ORDER BY created_at",
    )
    .bind(org_id)
    .fetch_all(&store.pool)
    .await?;
    let emails: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT u.id, u.email FROM users u \
         WHERE u.id IN (SELECT created_by FROM api_keys WHERE org_id = $1) \
            OR u.id IN (SELECT user_id FROM memberships WHERE org_id = $1)",
    )
    .bind(org_id)
    .fetch_all(&store.pool)
    .await?;
    let mut names = HashMap::new();
    let mut creators = HashMap::new();
    for (id, name, prefix, by) in rows {
        names.insert(id.clone(), format!("{name} ({prefix})"));
        creators.insert(id, by);
    }
    Ok(KeyInfo {
        names,
        creators,
        emails: emails.into_iter().collect(),
    })
}

impl KeyInfo {
    fn key(&self, id: &str) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| "deleted key".into())
    }
    fn member(&self, key_id: &str) -> String {
        match self.creators.get(key_id) {
            Some(Some(u)) => self
                .emails
                .get(u)
                .cloned()
                .unwrap_or_else(|| "former member".into()),
            _ => "management API".into(),
        }
    }
}

pub async fn scope(store: &Store, actor: &Actor) -> Result<Scope, String> {
    let whole_org = actor.role.manages();
    let keys = if whole_org {
        None
    } else {
        let ids: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM api_keys WHERE org_id = $1 AND created_by = $2")
                .bind(&actor.org_id)
                .bind(&actor.user_id)
                .fetch_all(&store.pool)
                .await
                .map_err(internal)?;
        Some(ids.into_iter().map(|(i,)| i).collect())
    };
    Ok(Scope {
        org_id: actor.org_id.clone(),
        keys,
        whole_org,
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// "Nov 21 14:00" (hourly) or "Nov 21" (daily), UTC.
pub fn bucket_label(ms: i64, hourly: bool) -> String {
    let t = crate::gateway::info::rfc3339(ms);
    let month = t
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .copied()
        .unwrap_or("?");
    let day = t.get(8..10).unwrap_or("").trim_start_matches('0');
    if hourly {
        format!("{month} {day} {}", t.get(11..16).unwrap_or(""))
    } else {
        format!("{month} {day}")
    }
}

/// Builds a stacked chart from (bucket, dimension, measures…) rows: the largest series by the first
/// measure (then the second) drawn apart, the rest summed as "Other".
fn chart(
    w: &Window,
    measures: &[(&str, &str, bool)],
    rows: Vec<(i64, String, Vec<i64>)>,
    name: impl Fn(&str) -> String,
) -> Chart {
    let m = measures.len();
    let mut by_dim: HashMap<String, Vec<Vec<i64>>> = HashMap::new();
    for (bucket, dim, vals) in rows {
        let idx = ((bucket - w.start) / w.width) as usize;
        if bucket < w.start || idx >= w.buckets {
            continue;
        }
        let series = by_dim
            .entry(name(&dim))
            .or_insert_with(|| vec![vec![0; w.buckets]; m]);
        for (k, v) in vals.iter().enumerate().take(m) {
            series[k][idx] += v;
        }
    }
    let mut all: Vec<(String, Vec<Vec<i64>>)> = by_dim.into_iter().collect();
    let total = |v: &Vec<Vec<i64>>, k: usize| v.get(k).map_or(0, |x| x.iter().sum::<i64>());
    all.sort_by(|a, b| {
        (total(&b.1, 0), total(&b.1, m.saturating_sub(1)), &a.0).cmp(&(
            total(&a.1, 0),
            total(&a.1, m.saturating_sub(1)),
            &b.0,
        ))
    });
    let mut series: Vec<Series> = Vec::new();
    let mut other: Option<Vec<Vec<i64>>> = None;
    for (i, (name, values)) in all.into_iter().enumerate() {
        if i < TOP_SERIES {
            series.push(Series { name, values });
        } else {
            let o = other.get_or_insert_with(|| vec![vec![0; w.buckets]; m]);
            for (k, row) in values.iter().enumerate() {
                for (b, v) in row.iter().enumerate() {
                    o[k][b] += v;
                }
            }
        }
    }
    if let Some(values) = other {
        series.push(Series {
            name: "Other".into(),
            values,
        });
    }
    let hourly = w.width == HOUR_MS;
    Chart {
        labels: (0..w.buckets)
            .map(|i| bucket_label(w.start + i as i64 * w.width, hourly))
            .collect(),
        measures: measures
            .iter()
            .map(|(k, l, money)| (k.to_string(), l.to_string(), *money))
            .collect(),
        series,
    }
}

fn utc_day_start(now: i64) -> i64 {
    now - now.rem_euclid(DAY_MS)
}

/// Where an organisation's usage along one dimension ("model" or "key") is read: the per-dimension rollup
/// for the whole organisation, or the detailed rollup restricted to a member's keys. Returns the
/// `FROM … WHERE …` (numbered from $1) and the dimension's column.
fn org_source(scope: &Scope, dim: &str, width: i64, start: i64) -> (Sql, &'static str) {
    match scope.keys.as_deref() {
        None => {
            let mut q = Sql::new(" FROM usage_dims WHERE scope = ");
            q.s(&scope.org_id)
                .push(" AND dim = ")
                .s(dim)
                .push(" AND width = ")
                .i(width)
                .push(" AND bucket >= ")
                .i(start);
            (q, "value")
        }
        Some(keys) => {
            let table = if width == HOUR_MS {
                "usage_hourly"
            } else {
                "usage_daily"
            };
            let mut q = Sql::new(&format!(" FROM {table} WHERE org_id = "));
            q.s(&scope.org_id).push(" AND bucket >= ").i(start);
            q.keys("key_id", Some(keys));
            (
                q,
                if dim == "model" {
                    "model_slug"
                } else {
                    "key_id"
                },
            )
        }
    }
}

/// `select` followed by a source (whose placeholders start at $1) and `tail`.
fn with_source(select: &str, src: Sql, tail: &str) -> Sql {
    Sql {
        text: format!("{select}{}{tail}", src.text),
        args: src.args,
    }
}

/// The tenant overview: balance, spend today / 7 / 30 days, a chart over `range` stacked by `group`
/// ("model", "key" or "member") and the top models and keys of that range.
pub async fn overview(
    store: &Store,
    actor: &Actor,
    range: &str,
    group: &str,
    now: i64,
) -> Result<Overview, String> {
    let scope = scope(store, actor).await?;
    let (org_name, credits, used): (String, i64, i64) =
        sqlx::query_as("SELECT name, credits_nanos, usage_nanos FROM orgs WHERE id = $1")
            .bind(&scope.org_id)
            .fetch_one(&store.pool)
            .await
            .map_err(internal)?;
    let today = utc_day_start(now);
    let mut select = String::from("SELECT ");
    for (i, from) in [today, today - 6 * DAY_MS, today - 29 * DAY_MS]
        .iter()
        .enumerate()
    {
        if i > 0 {
            select.push_str(", ");
        }
        for (j, col) in [
            "charge_nanos",
            "requests",
            "prompt_tokens + completion_tokens",
        ]
        .iter()
        .enumerate()
        {
            if j > 0 {
                select.push_str(", ");
            }
            select.push_str(&format!(
                "CAST(COALESCE(SUM(CASE WHEN bucket >= {from} THEN {col} ELSE 0 END), 0) AS BIGINT)"
            ));
        }
    }
    let (src, _) = org_source(&scope, "model", DAY_MS, today - 29 * DAY_MS);
    type Nine = (i64, i64, i64, i64, i64, i64, i64, i64, i64);
    let t: Vec<Nine> = with_source(&select, src, "")
        .fetch(store)
        .await
        .map_err(internal)?;
    let t = t.first().copied().unwrap_or_default();
    let periods = vec![
        PeriodTotals {
            label: "Today".into(),
            spend_nanos: t.0,
            requests: t.1,
            tokens: t.2,
        },
        PeriodTotals {
            label: "7 days".into(),
            spend_nanos: t.3,
            requests: t.4,
            tokens: t.5,
        },
        PeriodTotals {
            label: "30 days".into(),
            spend_nanos: t.6,
            requests: t.7,
            tokens: t.8,
        },
    ];

    let w = window(range, now);
    let info = key_info(store, &scope.org_id).await.map_err(internal)?;
    let dim = if group == "model" { "model" } else { "key" };
    let (src, col) = org_source(&scope, dim, w.width, w.start);
    let rows: Vec<(i64, String, i64, i64, i64)> = with_source(
        &format!(
            "SELECT bucket, {col}, CAST(SUM(charge_nanos) AS BIGINT), \
             CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT), CAST(SUM(requests) AS BIGINT)"
        ),
        src,
        &format!(" GROUP BY bucket, {col}"),
    )
    .fetch(store)
    .await
    .map_err(internal)?;
    let rows: Vec<(i64, String, Vec<i64>)> = rows
        .into_iter()
        .map(|(b, d, s, t, r)| (b, d, vec![s, t, r]))
        .collect();
    let measures = [
        ("spend", "Spend", true),
        ("tokens", "Tokens", false),
        ("requests", "Requests", false),
    ];
    let chart = match group {
        "model" => chart(&w, &measures, rows, |m| m.to_string()),
        "member" => chart(&w, &measures, rows, |k| info.member(k)),
        _ => chart(&w, &measures, rows, |k| info.key(k)),
    };

    let top = |dim: &str| {
        let (src, col) = org_source(&scope, dim, w.width, w.start);
        with_source(
            &format!(
                "SELECT {col}, CAST(SUM(charge_nanos) AS BIGINT), CAST(SUM(requests) AS BIGINT), \
                 CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT)"
            ),
            src,
            &format!(" GROUP BY {col} ORDER BY 2 DESC, 3 DESC, 1 LIMIT 10"),
        )
    };
    let top_models: Vec<(String, i64, i64, i64)> =
        top("model").fetch(store).await.map_err(internal)?;
    let top_keys: Vec<(String, i64, i64, i64)> = top("key").fetch(store).await.map_err(internal)?;
    let row = |name: String, (_, s, r, t): (String, i64, i64, i64)| TopRow {
        name,
        spend_nanos: s,
        requests: r,
        tokens: t,
    };
    Ok(Overview {
        org_name,
        balance_usd: crate::money::Nanos(credits - used).to_usd_string(),
        whole_org: scope.whole_org,
        periods,
        range: range.to_string(),
        group: group.to_string(),
        chart,
        top_models: top_models
            .into_iter()
            .map(|r| row(r.0.clone(), r))
            .collect(),
        top_keys: top_keys
            .into_iter()
            .map(|r| row(info.key(&r.0), r))
            .collect(),
    })
}

/// The start of an activity range ("1h", "24h", "7d", "30d"; "all": everything).
/// "7d" and "30d" are whole UTC days (today and the 6 or 29 before), so their counts come from the daily
/// rollup; "1h" and "24h" count from the hourly one.
fn activity_since(range: &str, now: i64) -> Option<i64> {
    match range {
        "1h" => Some(now - HOUR_MS),
        "24h" => Some(now - DAY_MS),
        "30d" => Some(utc_day_start(now) - 29 * DAY_MS),
        "all" => None,
        _ => Some(utc_day_start(now) - 6 * DAY_MS),
    }
}

/// The model, key and member filters and the viewer's own keys, on columns named with `prefix`.
fn narrow(q: &mut Sql, scope: &Scope, f: &ActivityFilter, info: &KeyInfo, prefix: &str) {
    if !f.model.is_empty() {
        q.push(&format!(" AND {prefix}model_slug = ")).s(&f.model);
    }
    if !f.key.is_empty() {
        q.push(&format!(" AND {prefix}key_id = ")).s(&f.key);
    }
    let key_col = format!("{prefix}key_id");
    if !f.member.is_empty() {
        let theirs: Vec<String> = info
            .creators
            .iter()
            .filter(|(_, by)| by.as_deref() == Some(f.member.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        q.keys(&key_col, Some(&theirs));
    }
    q.keys(&key_col, scope.keys.as_deref());
}

/// `WHERE …` of the activity log for a filter (without the paging cursor).
fn activity_where(scope: &Scope, f: &ActivityFilter, info: &KeyInfo, now: i64) -> Sql {
    let mut q = Sql::new(" WHERE g.org_id = ");
    q.s(&scope.org_id);
    if let Some(since) = activity_since(&f.range, now) {
        q.push(" AND g.created_at >= ").i(since);
    }
    narrow(&mut q, scope, f, info, "g.");
    match f.status.as_str() {
        "ok" => {
            q.push(" AND g.status = 200");
        }
        "cancelled" => {
            q.push(" AND g.status = 499");
        }
        "error" => {
            q.push(" AND g.status NOT IN (200, 499)");
        }
        _ => {}
    }
    q
}

type GenRow = (
    String,
    i64,
    String,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    i64,
    Option<String>,
    i64,
    i64,
);

const GEN_SELECT: &str = "SELECT g.id, g.created_at, g.model_slug, g.provider_slug, g.key_id, g.prompt_tokens, \
     g.completion_tokens, g.cache_read_tokens, g.reasoning_tokens, g.charge_nanos, g.latency_ms, g.ttft_ms, \
     g.status, g.finish_reason, g.streamed, g.cancelled FROM generations g";

fn activity_row(r: GenRow, info: &KeyInfo) -> ActivityRow {
    let (
        id,
        at,
        model,
        provider,
        key,
        p,
        c,
        cached,
        reasoning,
        charge,
        latency,
        ttft,
        status,
        finish,
        streamed,
        cancelled,
    ) = r;
    // Output tokens per second of generating: after the first token when streamed, else the whole call.
    let gen_ms = match ttft {
        Some(t) if streamed != 0 && latency > t => latency - t,
        _ => latency,
    };
    let tps = if c > 0 && gen_ms > 0 {
        let tenths = c * 10_000 / gen_ms;
        format!("{}.{}", tenths / 10, tenths % 10)
    } else {
        String::new()
    };
    ActivityRow {
        time: crate::web::second(at),
        member: info.member(&key),
        key: info.key(&key),
        id,
        model,
        provider: provider.unwrap_or_default(),
        prompt_tokens: p,
        completion_tokens: c,
        cached_tokens: cached,
        reasoning_tokens: reasoning,
        charge_nanos: charge,
        latency_ms: latency,
        ttft_ms: ttft,
        tokens_per_sec: tps,
        status,
        finish_reason: finish.unwrap_or_default(),
        streamed: streamed != 0,
        cancelled: cancelled != 0,
    }
}

/// Up to `limit` rows of the log matching a filter, newest first, after the cursor `(created_at, id)`.
async fn log_page(
    store: &Store,
    scope: &Scope,
    f: &ActivityFilter,
    info: &KeyInfo,
    now: i64,
    after: Option<&(i64, String)>,
    limit: usize,
) -> Result<Vec<GenRow>, sqlx::Error> {
    let w = activity_where(scope, f, info, now);
    let mut q = Sql {
        text: format!("{GEN_SELECT}{}", w.text),
        args: w.args,
    };
    if let Some((at, id)) = after {
        q.push(" AND (g.created_at, g.id) < (")
            .i(*at)
            .push(", ")
            .s(id)
            .push(")");
    }
    q.push(&format!(
        " ORDER BY g.created_at DESC, g.id DESC LIMIT {limit}"
    ));
    q.fetch(store).await
}

/// Requests matching a filter over a whole-bucket range, counted from the hourly rollup.
async fn matching(
    store: &Store,
    scope: &Scope,
    f: &ActivityFilter,
    info: &KeyInfo,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let col = match f.status.as_str() {
        "ok" => "requests - errors - cancelled",
        "error" => "errors",
        "cancelled" => "cancelled",
        _ => "requests",
    };
    // Whole days from the daily rollup; the last hour or day from the hourly one (whose first hour counts
    // whole).
    let (table, width) = match f.range.as_str() {
        "1h" | "24h" => ("usage_hourly", HOUR_MS),
        _ => ("usage_daily", DAY_MS),
    };
    let mut q = Sql::new(&format!(
        "SELECT CAST(COALESCE(SUM({col}), 0) AS BIGINT) FROM {table} WHERE org_id = "
    ));
    q.s(&scope.org_id);
    if let Some(since) = activity_since(&f.range, now) {
        q.push(" AND bucket >= ").i(since - since.rem_euclid(width));
    }
    narrow(&mut q, scope, f, info, "");
    let n: Vec<(i64,)> = q.fetch(store).await?;
    Ok(n.first().map_or(0, |r| r.0))
}

/// A page of the activity log, newest first, after the cursor in `f.before`.
pub async fn activity(
    store: &Store,
    actor: &Actor,
    f: &ActivityFilter,
    now: i64,
) -> Result<ActivityPage, String> {
    let scope = scope(store, actor).await?;
    let info = key_info(store, &scope.org_id).await.map_err(internal)?;
    let cursor = f
        .before
        .split_once('.')
        .and_then(|(a, i)| Some((a.parse::<i64>().ok()?, i.to_string())));
    let mut rows = log_page(store, &scope, f, &info, now, cursor.as_ref(), PAGE_ROWS + 1)
        .await
        .map_err(internal)?;
    let next = if rows.len() > PAGE_ROWS {
        rows.truncate(PAGE_ROWS);
        rows.last().map(|r| format!("{}.{}", r.1, r.0))
    } else {
        None
    };
    let matching = matching(store, &scope, f, &info, now)
        .await
        .map_err(internal)?;
    let mut models: Vec<(String,)> = {
        let (src, col) = org_source(&scope, "model", DAY_MS, 0);
        with_source(&format!("SELECT DISTINCT {col}"), src, "")
            .fetch(store)
            .await
            .map_err(internal)?
    };
    models.sort();
    let mut keys: Vec<Choice> = info
        .names
        .iter()
        .filter(|(id, _)| scope.keys.as_ref().is_none_or(|k| k.contains(id)))
        .map(|(id, label)| Choice {
            id: id.clone(),
            label: label.clone(),
        })
        .collect();
    keys.sort_by(|a, b| a.label.cmp(&b.label));
    let mut members: Vec<Choice> = if scope.whole_org {
        info.emails
            .iter()
            .map(|(id, email)| Choice {
                id: id.clone(),
                label: email.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    members.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(ActivityPage {
        whole_org: scope.whole_org,
        rows: rows.into_iter().map(|r| activity_row(r, &info)).collect(),
        next,
        matching,
        models: models.into_iter().map(|(m,)| m).collect(),
        keys,
        members,
    })
}

/// One generation of the organisation, with its routing attempts and (when logged) its prompt and answer.
pub async fn generation(
    store: &Store,
    actor: &Actor,
    id: &str,
) -> Result<GenerationDetail, String> {
    let scope = scope(store, actor).await?;
    let info = key_info(store, &scope.org_id).await.map_err(internal)?;
    let mut q = Sql::new(GEN_SELECT);
    q.push(" WHERE g.org_id = ")
        .s(&scope.org_id)
        .push(" AND g.id = ")
        .s(id);
    q.keys("g.key_id", scope.keys.as_deref());
    let row: Vec<GenRow> = q.fetch(store).await.map_err(internal)?;
    let Some(row) = row.into_iter().next() else {
        return Err("no such request in this organisation's log (it may have been pruned)".into());
    };
    type Extra = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
        i64,
    );
    let (upstream_model, upstream_id, native, error, attempts, cache_write, estimated): Extra =
        sqlx::query_as(
            "SELECT upstream_model, upstream_id, native_finish_reason, error, attempts, cache_write_tokens, \
             usage_estimated FROM generations WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&store.pool)
        .await
        .map_err(internal)?;
    let (logging,): (i64,) = sqlx::query_as("SELECT prompt_logging FROM orgs WHERE id = $1")
        .bind(&scope.org_id)
        .fetch_one(&store.pool)
        .await
        .map_err(internal)?;
    let content: Option<(String, String)> = sqlx::query_as(
        "SELECT request, response FROM generation_content WHERE generation_id = $1 AND org_id = $2",
    )
    .bind(id)
    .bind(&scope.org_id)
    .fetch_optional(&store.pool)
    .await
    .map_err(internal)?;
    let attempts: Vec<serde_json::Value> = serde_json::from_str(&attempts).unwrap_or_default();
    let text = |v: &serde_json::Value, k: &str| {
        v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string()
    };
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_i64()).unwrap_or(0);
    Ok(GenerationDetail {
        row: activity_row(row, &info),
        upstream_model: upstream_model.unwrap_or_default(),
        upstream_id: upstream_id.unwrap_or_default(),
        native_finish_reason: native.unwrap_or_default(),
        error: error.unwrap_or_default(),
        cost_nanos_shown: false,
        cache_write_tokens: cache_write,
        usage_estimated: estimated != 0,
        attempts: attempts
            .iter()
            .map(|a| AttemptView {
                provider: text(a, "provider"),
                status: num(a, "status"),
                error_type: text(a, "error_type"),
                message: text(a, "message"),
                latency_ms: num(a, "latency_ms"),
            })
            .collect(),
        logging: logging != 0,
        prompt: content.as_ref().map(|c| c.0.clone()),
        answer: content.map(|c| c.1),
    })
}

/// Quotes a CSV field when it needs it (RFC 4180); a leading `=+-@`, tab or carriage return is
/// neutralised against spreadsheet formula injection (OWASP's list: spreadsheets strip a leading tab or
/// CR and read what follows as a formula).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && s.parse::<f64>().is_err() {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The activity log matching a filter as CSV (every row, not one page), newest first; money exact.
pub async fn activity_csv(
    store: &Store,
    actor: &Actor,
    f: &ActivityFilter,
    now: i64,
) -> Result<String, String> {
    let scope = scope(store, actor).await?;
    let info = key_info(store, &scope.org_id).await.map_err(internal)?;
    let mut out = String::from(
        "id,time_utc,model,provider,key,member,prompt_tokens,completion_tokens,cached_tokens,reasoning_tokens,\
         charge_usd,latency_ms,ttft_ms,tokens_per_second,status,finish_reason,streamed,cancelled\n",
    );
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let rows = log_page(store, &scope, f, &info, now, cursor.as_ref(), 5000)
            .await
            .map_err(internal)?;
        let done = rows.len() < 5000;
        cursor = rows.last().map(|r| (r.1, r.0.clone()));
        for r in rows {
            let a = activity_row(r, &info);
            let line = [
                a.id,
                a.time,
                a.model,
                a.provider,
                a.key,
                a.member,
                a.prompt_tokens.to_string(),
                a.completion_tokens.to_string(),
                a.cached_tokens.to_string(),
                a.reasoning_tokens.to_string(),
                crate::money::Nanos(a.charge_nanos).to_usd_string(),
                a.latency_ms.to_string(),
                a.ttft_ms.map(|t| t.to_string()).unwrap_or_default(),
                a.tokens_per_sec,
                a.status.to_string(),
                a.finish_reason,
                a.streamed.to_string(),
                a.cancelled.to_string(),
            ]
            .iter()
            .map(|s| csv_field(s))
            .collect::<Vec<_>>()
            .join(",");
            out.push_str(&line);
            out.push('\n');
        }
        if done {
            break;
        }
    }
    Ok(out)
}

/// Parses `YYYY-MM-DD` as the start of that UTC day (Unix ms).
pub fn parse_day(s: &str) -> Option<i64> {
    let d = time::Date::parse(
        s.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Daily totals per model from `from` to `to` (inclusive UTC days) as CSV, from the daily rollup.
pub async fn daily_csv(store: &Store, actor: &Actor, from: i64, to: i64) -> Result<String, String> {
    let scope = scope(store, actor).await?;
    let (mut src, col) = org_source(&scope, "model", DAY_MS, from);
    src.push(" AND bucket <= ").i(to);
    let q = with_source(
        &format!(
            "SELECT bucket, {col}, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
             CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT), CAST(SUM(cache_read_tokens) AS BIGINT), \
             CAST(SUM(reasoning_tokens) AS BIGINT), CAST(SUM(charge_nanos) AS BIGINT)"
        ),
        src,
        &format!(" GROUP BY bucket, {col} ORDER BY bucket, {col}"),
    );
    type R = (i64, String, i64, i64, i64, i64, i64, i64, i64);
    let rows: Vec<R> = q.fetch(store).await.map_err(internal)?;
    let mut out = String::from(
        "date,model,requests,errors,prompt_tokens,completion_tokens,cached_tokens,reasoning_tokens,charge_usd\n",
    );
    let mut days: HashMap<i64, String> = HashMap::new();
    for (b, m, r, e, p, c, cr, rs, ch) in rows {
        let day = days.entry(b).or_insert_with(|| crate::web::day(b));
        out.push_str(&format!(
            "{day},{},{r},{e},{p},{c},{cr},{rs},{}\n",
            csv_field(&m),
            crate::money::Nanos(ch).to_usd_string()
        ));
    }
    Ok(out)
}

/// OpenRouter's `GET /api/v1/activity`: per UTC day, model and endpoint, the last 30 completed days
/// (or one of them), optionally one key's.
pub async fn openrouter_activity(
    store: &Store,
    org_id: &str,
    date: Option<i64>,
    key_id: Option<&str>,
    now: i64,
) -> Result<serde_json::Value, sqlx::Error> {
    let today = utc_day_start(now);
    let mut q = Sql::new(
        "SELECT u.bucket, u.model_slug, u.endpoint_id, u.provider_slug, CAST(SUM(u.charge_nanos) AS BIGINT), \
         CAST(SUM(u.requests) AS BIGINT), CAST(SUM(u.prompt_tokens) AS BIGINT), CAST(SUM(u.completion_tokens) AS BIGINT), \
         CAST(SUM(u.reasoning_tokens) AS BIGINT), MAX(p.name) FROM usage_daily u \
         LEFT JOIN providers p ON p.slug = u.provider_slug WHERE u.org_id = ",
    );
    q.s(org_id);
    match date {
        Some(d) => {
            q.push(" AND u.bucket = ").i(d);
        }
        None => {
            q.push(" AND u.bucket >= ")
                .i(today - 30 * DAY_MS)
                .push(" AND u.bucket < ")
                .i(today);
        }
    }
    if let Some(k) = key_id {
        q.push(" AND u.key_id = ").s(k);
    }
    q.push(" GROUP BY u.bucket, u.model_slug, u.endpoint_id, u.provider_slug ORDER BY u.bucket DESC, u.model_slug");
    type R = (
        i64,
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        Option<String>,
    );
    let rows: Vec<R> = q.fetch(store).await?;
    let data: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(b, model, ep, provider, usage, req, p, c, r, pname)| {
            serde_json::json!({
                "date": crate::web::day(b),
                "model": model,
                "model_permaslug": model,
                "endpoint_id": ep,
                "provider_name": pname.unwrap_or(provider),
                "usage": crate::money::Nanos(usage).usd_json(),
                "byok_usage_inference": 0,
                "requests": req,
                "prompt_tokens": p,
                "completion_tokens": c,
                "reasoning_tokens": r,
            })
        })
        .collect();
    Ok(serde_json::json!({ "data": data }))
}

/// The platform admin's analytics over a range: revenue (what tenants were charged), provider cost and
/// margin over time stacked by `group` ("model", "provider", "org"), per model / provider / organisation
/// tables, purchases and refunds of the range, and the liability (every positive balance).
pub async fn analytics(
    store: &Store,
    range: &str,
    group: &str,
    now: i64,
) -> Result<Analytics, String> {
    let w = window(range, now);
    let dim = match group {
        "provider" => "provider",
        "org" => "org",
        _ => "model",
    };
    // The platform's rollup along one dimension over the window.
    let platform = |dim: &str| {
        let mut q = Sql::new(" FROM usage_dims WHERE scope = '*' AND dim = ");
        q.s(dim)
            .push(" AND width = ")
            .i(w.width)
            .push(" AND bucket >= ")
            .i(w.start);
        q
    };
    let org_names: HashMap<String, String> =
        sqlx::query_as::<_, (String, String)>("SELECT id, name FROM orgs")
            .fetch_all(&store.pool)
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
    let org_name = |id: &str| org_names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let provider_name = |p: &str| {
        if p.is_empty() {
            "(no provider answered)".to_string()
        } else {
            p.to_string()
        }
    };

    let rows: Vec<(i64, String, i64, i64, i64)> = with_source(
        "SELECT bucket, value, CAST(SUM(charge_nanos) AS BIGINT), CAST(SUM(cost_nanos) AS BIGINT), \
         CAST(SUM(requests) AS BIGINT)",
        platform(dim),
        " GROUP BY bucket, value",
    )
    .fetch(store)
    .await
    .map_err(internal)?;
    let rows: Vec<(i64, String, Vec<i64>)> = rows
        .into_iter()
        .map(|(b, d, rev, cost, req)| (b, d, vec![rev, cost, rev - cost, req]))
        .collect();
    let measures = [
        ("revenue", "Revenue", true),
        ("cost", "Provider cost", true),
        ("margin", "Margin", true),
        ("requests", "Requests", false),
    ];
    let chart = match group {
        "org" => chart(&w, &measures, rows, |o| org_name(o)),
        "provider" => chart(&w, &measures, rows, |p| provider_name(p)),
        _ => chart(&w, &measures, rows, |m| m.to_string()),
    };

    let table = |dim: &str| {
        with_source(
            "SELECT value, CAST(SUM(requests) AS BIGINT), CAST(SUM(errors) AS BIGINT), CAST(SUM(charge_nanos) AS BIGINT), \
             CAST(SUM(cost_nanos) AS BIGINT), CAST(SUM(latency_ms_sum) AS BIGINT), CAST(SUM(ttft_ms_sum) AS BIGINT), \
             CAST(SUM(ttft_count) AS BIGINT)",
            platform(dim),
            " GROUP BY value ORDER BY 4 DESC, 2 DESC, 1",
        )
    };
    type T = (String, i64, i64, i64, i64, i64, i64, i64);
    let to_rows = |rows: Vec<T>, name: &dyn Fn(&str) -> String| -> Vec<MoneyRow> {
        rows.into_iter()
            .map(|(d, req, err, rev, cost, lat, ttft, ttft_n)| MoneyRow {
                name: name(&d),
                requests: req,
                errors: err,
                revenue_nanos: rev,
                cost_nanos: cost,
                mean_latency_ms: if req > 0 { lat / req } else { 0 },
                mean_ttft_ms: if ttft_n > 0 { ttft / ttft_n } else { 0 },
            })
            .collect()
    };
    let by_model = to_rows(
        table("model").fetch(store).await.map_err(internal)?,
        &|m: &str| m.to_string(),
    );
    let by_provider = to_rows(
        table("provider").fetch(store).await.map_err(internal)?,
        &provider_name,
    );
    let by_org = to_rows(
        table("org").fetch(store).await.map_err(internal)?,
        &org_name,
    );

    let (revenue, cost, requests, errors) = by_model.iter().fold((0, 0, 0, 0), |a, r| {
        (
            a.0 + r.revenue_nanos,
            a.1 + r.cost_nanos,
            a.2 + r.requests,
            a.3 + r.errors,
        )
    });
    let money: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT kind, CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT), COUNT(*) FROM ledger \
         WHERE kind IN ('purchase', 'refund') AND created_at >= $1 GROUP BY kind",
    )
    .bind(w.start)
    .fetch_all(&store.pool)
    .await
    .map_err(internal)?;
    let kind = |k: &str| {
        money
            .iter()
            .find(|m| m.0 == k)
            .map_or((0, 0), |m| (m.1, m.2))
    };
    let (liability, in_credit): (i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(credits_nanos - usage_nanos), 0) AS BIGINT), COUNT(*) FROM orgs \
         WHERE credits_nanos - usage_nanos > 0",
    )
    .fetch_one(&store.pool)
    .await
    .map_err(internal)?;
    let losses = crate::billing::losses_since(store, w.start)
        .await
        .map_err(internal)?;
    let losses: Vec<switchyard_app::usage::LossRow> = losses
        .into_iter()
        .map(
            |(p, kind, count, cost, uncollected)| switchyard_app::usage::LossRow {
                provider: if p.is_empty() {
                    "(no provider recorded)".into()
                } else {
                    p
                },
                kind,
                count,
                cost_nanos: cost,
                uncollected_nanos: uncollected,
            },
        )
        .collect();
    Ok(Analytics {
        range: range.to_string(),
        group: group.to_string(),
        revenue_nanos: revenue,
        cost_nanos: cost,
        requests,
        errors,
        chart,
        by_model,
        by_provider,
        by_org,
        purchases_nanos: kind("purchase").0,
        purchases: kind("purchase").1,
        refunds_nanos: -kind("refund").0,
        refunds: kind("refund").1,
        liability_nanos: liability,
        orgs_in_credit: in_credit,
        loss_cost_nanos: losses.iter().map(|l| l.cost_nanos).sum(),
        uncollected_nanos: losses.iter().map(|l| l.uncollected_nanos).sum(),
        losses,
    })
}

/// Deletes request-log rows older than `days` days (the rollups keep their sums), in slices so a large
/// prune never holds the database for long; and logged prompts past each organisation's retention.
/// Returns (generations, prompts) deleted.
pub async fn prune(store: &Store, days: Option<u32>, now: i64) -> Result<(u64, u64), sqlx::Error> {
    let mut gens = 0u64;
    if let Some(days) = days.filter(|d| *d > 0) {
        let cutoff = now - days as i64 * DAY_MS;
        loop {
            let n = sqlx::query(
                "DELETE FROM generations WHERE id IN \
                 (SELECT id FROM generations WHERE created_at < $1 ORDER BY created_at LIMIT 5000)",
            )
            .bind(cutoff)
            .execute(&store.writer)
            .await?
            .rows_affected();
            gens += n;
            if n < 5000 {
                break;
            }
        }
        sqlx::query("DELETE FROM generation_content WHERE created_at < $1")
            .bind(cutoff)
            .execute(&store.writer)
            .await?;
    }
    let prompts = sqlx::query(
        "DELETE FROM generation_content WHERE created_at < $1 - 86400000 * \
         (SELECT COALESCE(o.log_retention_days, 30) FROM orgs o WHERE o.id = generation_content.org_id)",
    )
    .bind(now)
    .execute(&store.writer)
    .await?
    .rows_affected();
    Ok((gens, prompts))
}

/// Prunes the request log (per `log_retention_days`) and expired logged prompts, once an hour.
pub async fn prune_every_hour(state: crate::state::AppState) {
    loop {
        let days = Some(state.cfg.log_retention_days).filter(|d| *d > 0);
        match prune(&state.store, days, crate::store::now_ms()).await {
            Ok((0, 0)) => {}
            Ok((gens, prompts)) => {
                tracing::info!(generations = gens, prompts, "pruned the request log")
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning the request log failed; trying again in an hour")
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_end_with_the_current_bucket() {
        let now = 1_763_700_000_000; // 2025-11-21 04:40 UTC
        let w = super::window("24h", now);
        assert_eq!(w.buckets, 24);
        assert_eq!(w.start + 23 * w.width, now - now % w.width);
        let w = super::window("1y", now);
        assert_eq!((w.table, w.buckets), ("usage_daily", 365));
        assert_eq!(super::bucket_label(1_763_697_600_000, true), "Nov 21 04:00");
        assert_eq!(super::bucket_label(1_763_700_000_000, false), "Nov 21");
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(super::csv_field("-12"), "-12");
        assert_eq!(super::csv_field("\t=1+2"), "'\t=1+2");
        assert_eq!(super::csv_field("\r=1+2"), "\"'\r=1+2\"");
    }

    #[test]
    fn days_parse_as_utc_midnight() {
        assert_eq!(super::parse_day("2025-11-21"), Some(1_763_683_200_000));
        assert_eq!(super::parse_day("21/11/2025"), None);
    }
}
