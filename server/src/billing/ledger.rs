//! The ledger: append-only balance changes with unique idempotency keys, and the org projection
//! (`credits_nanos`, `usage_nanos`, `reserved_nanos`) kept in the same transaction as each entry.

use crate::money::Nanos;
use crate::store::{new_id, now_ms, Store};
use anyhow::bail;

/// Grants credits to an org. Applying the same idempotency key twice grants once; returns whether this
/// call granted.
pub async fn grant(
    store: &Store,
    org_id: &str,
    amount: Nanos,
    idempotency_key: &str,
    note: Option<&str>,
) -> anyhow::Result<bool> {
    if amount.0 <= 0 {
        bail!("--usd must be more than zero");
    }
    let mut tx = store.writer.begin().await?;
    let r = sqlx::query(
        "INSERT INTO ledger (id, org_id, amount_nanos, kind, idempotency_key, note, created_at) \
         VALUES ($1, $2, $3, 'grant', $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(new_id())
    .bind(org_id)
    .bind(amount.0)
    .bind(idempotency_key)
    .bind(note)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() == 1 {
        sqlx::query("UPDATE orgs SET credits_nanos = credits_nanos + $1 WHERE id = $2")
            .bind(amount.0)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(r.rows_affected() == 1)
}

/// Appends one entry (not usage) in the caller's transaction and moves the balance with it. The same
/// idempotency key twice posts once; returns whether this call posted.
pub async fn post(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org_id: &str,
    amount: Nanos,
    kind: &str,
    idempotency_key: &str,
    reference: Option<&str>,
    note: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO ledger (id, org_id, amount_nanos, kind, idempotency_key, reference, note, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(new_id())
    .bind(org_id)
    .bind(amount.0)
    .bind(kind)
    .bind(idempotency_key)
    .bind(reference)
    .bind(note)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    if r.rows_affected() == 1 {
        sqlx::query("UPDATE orgs SET credits_nanos = credits_nanos + $1 WHERE id = $2")
            .bind(amount.0)
            .bind(org_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(r.rows_affected() == 1)
}

/// An org's money, as the projection holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    pub credits: Nanos,
    pub usage: Nanos,
    pub reserved: Nanos,
}

impl Balance {
    pub fn balance(&self) -> Nanos {
        Nanos(self.credits.0 - self.usage.0)
    }
}

pub async fn balance(store: &Store, org_id: &str) -> Result<Option<Balance>, sqlx::Error> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT credits_nanos, usage_nanos, reserved_nanos FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&store.pool)
            .await?;
    Ok(row.map(|(c, u, r)| Balance {
        credits: Nanos(c),
        usage: Nanos(u),
        reserved: Nanos(r),
    }))
}

/// Checks the ledger invariants for one org: the projection equals the ledger and the open holds.
/// Returns a description of every mismatch (empty when consistent).
pub async fn audit(store: &Store, org_id: &str) -> Result<Vec<String>, sqlx::Error> {
    let (sum, credits, usage): (i64, i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN kind <> 'usage' THEN amount_nanos ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(CASE WHEN kind = 'usage' THEN -amount_nanos ELSE 0 END), 0) AS BIGINT) \
         FROM ledger WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_one(&store.pool)
    .await?;
    let (held,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount_nanos), 0) AS BIGINT) FROM holds WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_one(&store.pool)
    .await?;
    // The request log may be pruned; its rollups keep every generation's charge.
    let (charged,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(charge_nanos), 0) AS BIGINT) FROM usage_daily WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_one(&store.pool)
    .await?;
    let mut problems = Vec::new();
    if let Some(b) = balance(store, org_id).await? {
        if b.balance().0 != sum {
            problems.push(format!("balance {} != sum(ledger) {}", b.balance().0, sum));
        }
        if b.credits.0 != credits || b.usage.0 != usage {
            problems.push(format!(
                "projection credits/usage {}/{} != ledger {}/{}",
                b.credits.0, b.usage.0, credits, usage
            ));
        }
        if b.reserved.0 != held {
            problems.push(format!("reserved {} != sum(holds) {}", b.reserved.0, held));
        }
        if charged != usage {
            problems.push(format!(
                "sum(generation charges, from the rollups) {charged} != usage in ledger {usage}"
            ));
        }
    } else {
        problems.push(format!("no org {org_id}"));
    }
    Ok(problems)
}
