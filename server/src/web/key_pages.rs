//! The server's side of the API keys page: scoped by the signed-in person's organisation and role
//! (members see and change their own keys; admins and owners all of the organisation's).

use super::dashboard::internal;
use crate::accounts::orgs::Actor;
use crate::keys::{self, KeyRecord, KeyRules, KeyScope, LimitReset};
use crate::money::Nanos;
use crate::store::{now_ms, Store};
use switchyard_app::keys::{KeyView, NewKeyForm};

pub fn scope(actor: &Actor) -> KeyScope<'_> {
    KeyScope {
        org_id: &actor.org_id,
        creator: (!actor.role.manages()).then_some(actor.user_id.as_str()),
    }
}

/// Charges per key today and this month (UTC), from the request log: hash -> (today, month).
async fn period_usage(
    store: &Store,
    org_id: &str,
) -> Result<std::collections::HashMap<String, (i64, i64)>, String> {
    let now = now_ms();
    let today = LimitReset::Daily.period_start(now);
    let month = LimitReset::Monthly.period_start(now);
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT k.hash, CAST(COALESCE(SUM(CASE WHEN g.created_at >= $2 THEN g.charge_nanos ELSE 0 END), 0) AS BIGINT), \
                CAST(COALESCE(SUM(g.charge_nanos), 0) AS BIGINT) \
         FROM generations g JOIN api_keys k ON k.id = g.key_id \
         WHERE g.org_id = $1 AND g.created_at >= $3 GROUP BY k.hash",
    )
    .bind(org_id)
    .bind(today)
    .bind(month)
    .fetch_all(&store.pool)
    .await
    .map_err(internal)?;
    Ok(rows.into_iter().map(|(h, d, m)| (h, (d, m))).collect())
}

pub fn view(k: KeyRecord, periods: (i64, i64)) -> KeyView {
    let status = if k.disabled != 0 {
        "disabled"
    } else if k.expires_at.is_some_and(|e| e <= now_ms()) {
        "expired"
    } else {
        "active"
    };
    KeyView {
        remaining_usd: k.limit_remaining().map(Nanos::to_usd_string),
        hash: k.hash,
        name: k.name,
        prefix: k.prefix,
        created_by: k.created_by_email,
        created: super::day(k.created_at),
        last_used: k.last_used_at.map(super::minute),
        usage_usd: Nanos(k.usage_nanos).to_usd_string(),
        usage_today_usd: Nanos(periods.0).to_usd_string(),
        usage_month_usd: Nanos(periods.1).to_usd_string(),
        limit_usd: k.limit_nanos.map(|l| Nanos(l).to_usd_string()),
        limit_reset: k.limit_reset,
        expires: k.expires_at.map(super::day),
        models: k.allowed_models.and_then(|m| serde_json::from_str(&m).ok()),
        rpm: k.rpm_limit,
        concurrency: k.concurrency_limit,
        status: status.into(),
        routing: super::org_pages::routing_view(k.provider_prefs.as_deref()),
    }
}

/// Checks the create form field by field; the message names the field to fix.
pub async fn parse_form(
    store: &Store,
    f: &NewKeyForm,
) -> Result<(String, Option<Nanos>, Option<i64>, KeyRules), String> {
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("name: give the key a name of 1 to 100 characters".into());
    }
    let limit = match f.limit_usd.trim().trim_start_matches('$') {
        "" => None,
        v => Some(Nanos::parse_usd(v).map_err(|e| format!("credit limit: {e}"))?),
    };
    let limit_reset = match f.limit_reset.trim() {
        "" => None,
        v => Some(LimitReset::parse(v).ok_or("limit resets: choose daily, weekly or monthly")?),
    };
    if limit_reset.is_some() && limit.is_none() {
        return Err("limit resets: a reset needs a credit limit".into());
    }
    let expires_at = match f.expires.trim() {
        "" => None,
        v => {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            let d = time::Date::parse(v, &fmt)
                .map_err(|_| "expires on: use a date like 2027-01-31".to_string())?;
            let ms = d.midnight().assume_utc().unix_timestamp() * 1000;
            if ms <= now_ms() {
                return Err("expires on: choose a day in the future".into());
            }
            Some(ms)
        }
    };
    let models = match f.models.trim() {
        "" => None,
        v => {
            let mut out = Vec::new();
            for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let known: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM models WHERE slug = $1 AND enabled = 1")
                        .bind(m)
                        .fetch_optional(&store.pool)
                        .await
                        .map_err(internal)?;
                if known.is_none() {
                    return Err(format!("only these models: {m:?} is not in the catalog"));
                }
                out.push(m.to_string());
            }
            Some(out)
        }
    };
    let rpm = match f.rpm.trim() {
        "" => None,
        v => Some(
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or("requests per minute: a whole number from 1 to 1000000")?,
        ),
    };
    let concurrency = match f.concurrency.trim() {
        "" => None,
        v => Some(
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=100_000).contains(n))
                .ok_or("requests at a time: a whole number from 1 to 100000")?,
        ),
    };
    let provider = super::org_pages::routing_prefs(store, &f.routing)
        .await
        .map_err(|e| format!("routing: {e}"))?;
    Ok((
        name.to_string(),
        limit,
        expires_at,
        KeyRules {
            limit_reset,
            allowed_models: models,
            requests_per_minute: rpm,
            max_concurrent: concurrency,
            provider,
        },
    ))
}

pub async fn list(store: &Store, actor: &Actor) -> Result<Vec<KeyView>, String> {
    let records = keys::list_records(store, scope(actor))
        .await
        .map_err(internal)?;
    let periods = period_usage(store, &actor.org_id).await?;
    Ok(records
        .into_iter()
        .map(|k| {
            let p = periods.get(&k.hash).copied().unwrap_or((0, 0));
            view(k, p)
        })
        .collect())
}

pub async fn create(store: &Store, actor: &Actor, form: NewKeyForm) -> Result<String, String> {
    let (name, limit, expires_at, rules) = parse_form(store, &form).await?;
    let k = keys::create_key_with(store, &actor.org_id, &name, limit, expires_at, &rules)
        .await
        .map_err(internal)?;
    sqlx::query("UPDATE api_keys SET created_by = $1 WHERE id = $2")
        .bind(&actor.user_id)
        .bind(&k.id)
        .execute(&store.writer)
        .await
        .map_err(internal)?;
    tracing::info!(org = %actor.org_id, by = %actor.user_id, key = %k.id, "API key created in the dashboard");
    Ok(k.secret)
}

/// Replaces a key's name, limit, reset, expiry, allow-list and RPM with the form's (a blank field
/// removes that rule). The gateway sees the change within the key cache's TTL.
pub async fn update(
    store: &Store,
    actor: &Actor,
    hash: &str,
    form: NewKeyForm,
) -> Result<(), String> {
    let (name, limit, expires_at, mut rules) = parse_form(store, &form).await?;
    // Routing the form does not show (set over the management API) is kept.
    let current = keys::find_record(store, scope(actor), hash)
        .await
        .map_err(internal)?
        .ok_or("no such key")?;
    rules.provider = keep_unshown(current.provider_prefs.as_deref(), rules.provider);
    let edit = keys::KeyEdit {
        name,
        limit,
        expires_at,
        disabled: None,
        rules,
    };
    if keys::update_key(store, scope(actor), hash, &edit)
        .await
        .map_err(internal)?
    {
        tracing::info!(org = %actor.org_id, by = %actor.user_id, key = %hash, "API key edited in the dashboard");
        Ok(())
    } else {
        Err("no such key".into())
    }
}

/// The form's routing with whatever else the stored routing had (`only`, `max_price`,
/// `require_parameters`: the form shows none of them, so saving it must not drop them).
fn keep_unshown(stored: Option<&str>, form: Option<String>) -> Option<String> {
    const SHOWN: [&str; 5] = [
        "order",
        "ignore",
        "sort",
        "data_collection",
        "allow_fallbacks",
    ];
    let parse = |s: Option<&str>| {
        s.and_then(|s| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).ok())
            .unwrap_or_default()
    };
    let mut out = parse(stored);
    out.retain(|k, _| !SHOWN.contains(&k.as_str()));
    out.extend(parse(form.as_deref()));
    (!out.is_empty()).then(|| serde_json::Value::Object(out).to_string())
}

pub async fn set_disabled(
    store: &Store,
    actor: &Actor,
    hash: &str,
    disabled: bool,
) -> Result<(), String> {
    if keys::set_disabled(store, scope(actor), hash, disabled)
        .await
        .map_err(internal)?
    {
        Ok(())
    } else {
        Err("no such key".into())
    }
}

pub async fn delete(store: &Store, actor: &Actor, hash: &str) -> Result<(), String> {
    if keys::revoke_by_hash(store, scope(actor), hash)
        .await
        .map_err(internal)?
    {
        tracing::info!(org = %actor.org_id, by = %actor.user_id, key = %hash, "API key deleted in the dashboard");
        Ok(())
    } else {
        Err("no such key".into())
    }
}

fn managers_only(actor: &Actor) -> Result<(), String> {
    if actor.role.manages() {
        Ok(())
    } else {
        Err("only the organisation's owners and admins manage management keys".into())
    }
}

/// The organisation's management keys; `None` for members (they are for owners and admins).
pub async fn list_management(store: &Store, actor: &Actor) -> Result<Option<Vec<KeyView>>, String> {
    if !actor.role.manages() {
        return Ok(None);
    }
    Ok(Some(
        keys::list_management_records(store, &actor.org_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|k| view(k, (0, 0)))
            .collect(),
    ))
}

/// A management key: it manages the organisation's API keys over `/api/v1/keys` and cannot call models.
pub async fn create_management(store: &Store, actor: &Actor, name: &str) -> Result<String, String> {
    managers_only(actor)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("name: give the key a name of 1 to 100 characters".into());
    }
    let k = keys::create_management_key(store, &actor.org_id, name)
        .await
        .map_err(internal)?;
    sqlx::query("UPDATE api_keys SET created_by = $1 WHERE id = $2")
        .bind(&actor.user_id)
        .bind(&k.id)
        .execute(&store.writer)
        .await
        .map_err(internal)?;
    tracing::info!(org = %actor.org_id, by = %actor.user_id, key = %k.id, "management key created in the dashboard");
    Ok(k.secret)
}

pub async fn delete_management(store: &Store, actor: &Actor, hash: &str) -> Result<(), String> {
    managers_only(actor)?;
    if keys::revoke_management_key(store, &actor.org_id, hash)
        .await
        .map_err(internal)?
    {
        tracing::info!(org = %actor.org_id, by = %actor.user_id, key = %hash, "management key deleted in the dashboard");
        Ok(())
    } else {
        Err("no such key".into())
    }
}
