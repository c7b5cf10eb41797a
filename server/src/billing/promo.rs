//! Promo codes: a platform admin creates a code worth an amount, usable a number of times until an
//! optional expiry; each organisation redeems a code at most once. The redemption, the use count and the
//! ledger grant commit together; the use count only grows while it is under the limit, so concurrent
//! redemptions never exceed it.

use crate::money::Nanos;
use crate::store::{is_unique_violation, now_ms, Store};

#[derive(sqlx::FromRow, Clone, Debug)]
pub struct PromoCode {
    pub code: String,
    pub amount_nanos: i64,
    pub max_uses: i64,
    pub uses: i64,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

fn normalise(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// Creates a code (a random one when `code` is blank); returns it.
pub async fn create(
    store: &Store,
    admin: &str,
    code: &str,
    amount: Nanos,
    max_uses: i64,
    expires_at: Option<i64>,
) -> Result<String, String> {
    let code = match normalise(code) {
        c if c.is_empty() => {
            format!("SY-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]).to_ascii_uppercase()
        }
        c => c,
    };
    if code.len() > 40
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("code: letters, digits, - and _ only, at most 40".into());
    }
    if amount.0 <= 0 {
        return Err("amount: more than zero".into());
    }
    if !(1..=1_000_000).contains(&max_uses) {
        return Err("uses: from 1 to 1000000".into());
    }
    let r = sqlx::query(
        "INSERT INTO promo_codes (code, amount_nanos, max_uses, expires_at, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&code)
    .bind(amount.0)
    .bind(max_uses)
    .bind(expires_at)
    .bind(admin)
    .bind(now_ms())
    .execute(&store.writer)
    .await;
    match r {
        Err(e) if is_unique_violation(&e) => Err(format!("code: {code} exists already")),
        Err(e) => Err(crate::web::dashboard::internal(e)),
        Ok(_) => {
            tracing::info!(by = %admin, code = %code, "promo code created");
            Ok(code)
        }
    }
}

pub async fn list(store: &Store) -> Result<Vec<PromoCode>, sqlx::Error> {
    sqlx::query_as(
        "SELECT code, amount_nanos, max_uses, uses, expires_at, created_at FROM promo_codes \
         ORDER BY created_at DESC LIMIT 200",
    )
    .fetch_all(&store.pool)
    .await
}

const NOT_VALID: &str = "this code is not valid, used up or expired";

/// Redeems a code for an organisation; returns the credits granted. Each organisation and each person
/// redeems a code once.
pub async fn redeem(
    store: &Store,
    org_id: &str,
    user_id: &str,
    code: &str,
) -> Result<Nanos, String> {
    let code = normalise(code);
    if code.is_empty() {
        return Err("code: enter the code".into());
    }
    let internal = crate::web::dashboard::internal;
    let now = now_ms();
    let mut tx = store.writer.begin().await.map_err(internal)?;
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT amount_nanos FROM promo_codes WHERE code = $1 AND uses < max_uses \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(&code)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await
    .map_err(internal)?;
    let Some((amount,)) = row else {
        return Err(NOT_VALID.into());
    };
    // Counted first: the update locks the code's row, so two redemptions of one code wait for each
    // other and the check below sees the other's row (organisations are free to make; people are not).
    let counted =
        sqlx::query("UPDATE promo_codes SET uses = uses + 1 WHERE code = $1 AND uses < max_uses")
            .bind(&code)
            .execute(&mut *tx)
            .await
            .map_err(internal)?
            .rows_affected()
            == 1;
    if !counted {
        return Err(NOT_VALID.into());
    }
    let (by_me,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM promo_redemptions WHERE code = $1 AND user_id = $2")
            .bind(&code)
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(internal)?;
    if by_me > 0 {
        return Err("you have redeemed this code already: each person redeems a code once".into());
    }
    let inserted = sqlx::query(
        "INSERT INTO promo_redemptions (code, org_id, user_id, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&code)
    .bind(org_id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err("this organisation has redeemed this code already".into())
        }
        Err(e) => return Err(internal(e)),
        Ok(_) => {}
    }
    super::ledger::post(
        &mut tx,
        org_id,
        Nanos(amount),
        "grant",
        &format!("promo:{code}:{org_id}"),
        Some(&format!("promo:{code}")),
        Some(&format!("promo code {code}")),
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(|e| {
        if is_unique_violation(&e) {
            "this organisation has redeemed this code already".to_string()
        } else {
            internal(e)
        }
    })?;
    tracing::info!(org = %org_id, by = %user_id, code = %code, "promo code redeemed");
    Ok(Nanos(amount))
}
