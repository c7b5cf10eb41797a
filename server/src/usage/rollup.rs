//! Keeping the rollups: called in the transaction that records generations, with exactly the generations
//! recorded now (a generation settled twice is recorded once, so it is counted once).

use crate::billing::Generation;
use crate::store::{is_sqlite, placeholders};
use sqlx::{Any, Transaction};
use std::collections::BTreeMap;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// One rollup row's sums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    pub requests: i64,
    pub errors: i64,
    pub cancelled: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_nanos: i64,
    pub charge_nanos: i64,
    pub latency_ms_sum: i64,
    pub ttft_ms_sum: i64,
    pub ttft_count: i64,
}

impl Sums {
    /// What one generation adds.
    pub fn of(g: &Generation) -> Sums {
        Sums {
            requests: 1,
            errors: is_error(g.status) as i64,
            cancelled: g.cancelled as i64,
            prompt_tokens: g.prompt_tokens as i64,
            completion_tokens: g.completion_tokens as i64,
            cache_read_tokens: g.cache_read_tokens as i64,
            cache_write_tokens: g.cache_write_tokens as i64,
            reasoning_tokens: g.reasoning_tokens as i64,
            cost_nanos: g.cost.0,
            charge_nanos: g.charge.0,
            latency_ms_sum: g.latency_ms,
            ttft_ms_sum: g.ttft_ms.unwrap_or(0),
            ttft_count: g.ttft_ms.is_some() as i64,
        }
    }

    pub fn add(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.cancelled += o.cancelled;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.cost_nanos += o.cost_nanos;
        self.charge_nanos += o.charge_nanos;
        self.latency_ms_sum += o.latency_ms_sum;
        self.ttft_ms_sum += o.ttft_ms_sum;
        self.ttft_count += o.ttft_count;
    }

    fn values(&self) -> [i64; 13] {
        [
            self.requests,
            self.errors,
            self.cancelled,
            self.prompt_tokens,
            self.completion_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cost_nanos,
            self.charge_nanos,
            self.latency_ms_sum,
            self.ttft_ms_sum,
            self.ttft_count,
        ]
    }
}

/// A request counts as an error when it was neither answered nor cancelled by its client.
pub fn is_error(status: u16) -> bool {
    status != 200 && status != 499
}

pub const SUM_COLUMNS: [&str; 13] = [
    "requests",
    "errors",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "charge_nanos",
    "latency_ms_sum",
    "ttft_ms_sum",
    "ttft_count",
];

/// The detailed rollups' key columns, in the order of the primary key.
const DETAIL_KEY: [&str; 6] = [
    "org_id",
    "bucket",
    "key_id",
    "model_slug",
    "provider_slug",
    "endpoint_id",
];

/// (bucket, org, key, model, provider, endpoint); ordered, so every writer touches rows in the same order.
type RowKey<'a> = (i64, &'a str, &'a str, &'a str, &'a str, &'a str);

/// Rows per statement: 19 values each stays far below SQLite's 32,766 bound parameters.
const CHUNK: usize = 400;

/// Adds generations to the hourly and daily rollups.
pub async fn add(
    tx: &mut Transaction<'static, Any>,
    gens: &[&Generation],
) -> Result<(), sqlx::Error> {
    if gens.is_empty() {
        return Ok(());
    }
    for (table, width) in [("usage_hourly", HOUR_MS), ("usage_daily", DAY_MS)] {
        let mut rows: BTreeMap<RowKey<'_>, Sums> = BTreeMap::new();
        for g in gens {
            let key = (
                g.created_at - g.created_at.rem_euclid(width),
                g.org_id.as_str(),
                g.key_id.as_str(),
                g.model_slug.as_str(),
                g.provider_slug.as_deref().unwrap_or(""),
                g.endpoint_id.as_deref().unwrap_or(""),
            );
            rows.entry(key).or_default().add(&Sums::of(g));
        }
        let rows: Vec<_> = rows
            .into_iter()
            .map(|((bucket, org, key, model, provider, endpoint), sums)| {
                let k = vec![
                    Val::S(org),
                    Val::I(bucket),
                    Val::S(key),
                    Val::S(model),
                    Val::S(provider),
                    Val::S(endpoint),
                ];
                (k, sums)
            })
            .collect();
        for chunk in rows.chunks(CHUNK) {
            upsert_sums(tx, table, &DETAIL_KEY, chunk).await?;
        }
    }
    // One dimension at a time: per organisation by model and key; the platform by model, provider, org.
    let mut dims: BTreeMap<DimKey<'_>, Sums> = BTreeMap::new();
    for g in gens {
        let sums = Sums::of(g);
        let provider = g.provider_slug.as_deref().unwrap_or("");
        for width in [HOUR_MS, DAY_MS] {
            let bucket = g.created_at - g.created_at.rem_euclid(width);
            for (scope, dim, value) in [
                (g.org_id.as_str(), "model", g.model_slug.as_str()),
                (g.org_id.as_str(), "key", g.key_id.as_str()),
                ("*", "model", g.model_slug.as_str()),
                ("*", "provider", provider),
                ("*", "org", g.org_id.as_str()),
            ] {
                dims.entry((scope, dim, width, bucket, value))
                    .or_default()
                    .add(&sums);
            }
        }
    }
    let dims: Vec<_> = dims
        .into_iter()
        .map(|((scope, dim, width, bucket, value), sums)| {
            let k = vec![
                Val::S(scope),
                Val::S(dim),
                Val::I(width),
                Val::I(bucket),
                Val::S(value),
            ];
            (k, sums)
        })
        .collect();
    for chunk in dims.chunks(CHUNK) {
        upsert_sums(
            tx,
            "usage_dims",
            &["scope", "dim", "width", "bucket", "value"],
            chunk,
        )
        .await?;
    }
    Ok(())
}

/// (scope, dim, width, bucket, value).
type DimKey<'a> = (&'a str, &'a str, i64, i64, &'a str);

/// A key column's value.
#[derive(Clone, Copy)]
enum Val<'a> {
    I(i64),
    S(&'a str),
}

/// Adds sums to `table`'s rows (keyed by `key_cols`), inserting the rows that are new.
async fn upsert_sums(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    key_cols: &[&str],
    rows: &[(Vec<Val<'_>>, Sums)],
) -> Result<(), sqlx::Error> {
    let sets: Vec<String> = SUM_COLUMNS
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}, {}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {}",
        key_cols.join(", "),
        SUM_COLUMNS.join(", "),
        placeholders(
            is_sqlite(tx),
            rows.len(),
            key_cols.len() + SUM_COLUMNS.len(),
            1
        ),
        key_cols.join(", "),
        sets.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for (key, sums) in rows {
        for v in key {
            q = match *v {
                Val::I(i) => q.bind(i),
                Val::S(s) => q.bind(s),
            };
        }
        for v in sums.values() {
            q = q.bind(v);
        }
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

/// Keeps the prompts and answers of the generations that carry them (their organisation logs prompts).
pub async fn keep_content(
    tx: &mut Transaction<'static, Any>,
    gens: &[&Generation],
) -> Result<(), sqlx::Error> {
    let with: Vec<(&Generation, &crate::billing::Content)> = gens
        .iter()
        .filter_map(|g| g.content.as_deref().map(|c| (*g, c)))
        .collect();
    for chunk in with.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO generation_content (generation_id, org_id, request, response, created_at) VALUES {} \
             ON CONFLICT (generation_id) DO NOTHING",
            placeholders(is_sqlite(tx), chunk.len(), 5, 1)
        );
        let mut q = sqlx::query(&sql);
        for (g, c) in chunk {
            q = q
                .bind(&g.id)
                .bind(&g.org_id)
                .bind(&c.request)
                .bind(&c.response)
                .bind(g.created_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
