//! The server's side of the organisation page: its members and open invitations, scoped by the actor.

use super::dashboard::internal;
use crate::accounts::orgs::{self, Actor};
use crate::store::now_ms;
use serde_json::{json, Map, Value};
use switchyard_app::orgs::{InvitationRow, MemberView, OrgPageData, RoutingDefaults};

/// How long logged prompts are kept when the organisation did not say.
pub const DEFAULT_PROMPT_RETENTION_DAYS: i64 = 30;

/// Turns prompt logging on or off and sets its retention (1 to 365 days); owners and admins only.
pub async fn set_prompt_logging(
    state: &crate::state::AppState,
    actor: &Actor,
    on: bool,
    retention_days: &str,
) -> Result<String, String> {
    if !actor.role.manages() {
        return Err("only the organisation's owners and admins can change prompt logging".into());
    }
    let days: i64 = match retention_days.trim() {
        "" => DEFAULT_PROMPT_RETENTION_DAYS,
        d => d
            .parse()
            .ok()
            .filter(|n| (1..=365).contains(n))
            .ok_or_else(|| format!("Keep prompts for 1 to 365 days, not {d:?}"))?,
    };
    sqlx::query("UPDATE orgs SET prompt_logging = $1, log_retention_days = $2 WHERE id = $3")
        .bind(on as i64)
        .bind(days)
        .bind(&actor.org_id)
        .execute(&state.store.writer)
        .await
        .map_err(internal)?;
    // Keys carry the setting; read them again so it applies from the next request on this instance
    // (others within the key cache's few seconds).
    state.keys.forget_all();
    tracing::info!(org = %actor.org_id, user = %actor.user_id, on, days, "prompt logging changed");
    Ok(if on {
        format!(
            "Prompt logging is on: prompts and answers of new requests are kept for {days} days"
        )
    } else {
        "Prompt logging is off: new requests keep no prompts or answers".into()
    })
}

/// Sets the organisation's default routing (the `provider` object its requests get when they do not
/// say); owners and admins only. Providers are named by slug and must exist.
pub async fn set_routing_defaults(
    state: &crate::state::AppState,
    actor: &Actor,
    d: &RoutingDefaults,
) -> Result<String, String> {
    if !actor.role.manages() {
        return Err("only the organisation's owners and admins can change routing".into());
    }
    let stored = routing_prefs(&state.store, d).await?;
    sqlx::query("UPDATE orgs SET provider_prefs = $1 WHERE id = $2")
        .bind(&stored)
        .bind(&actor.org_id)
        .execute(&state.store.writer)
        .await
        .map_err(internal)?;
    state.keys.forget_all();
    tracing::info!(org = %actor.org_id, user = %actor.user_id, prefs = ?stored, "routing defaults changed");
    Ok(match stored {
        Some(_) => {
            "Routing defaults saved: they apply to requests that do not say otherwise".into()
        }
        None => "Routing defaults cleared: requests use the platform's default routing".into(),
    })
}

/// The routing form as a stored `provider` object (None when it asks for nothing); providers are named
/// by slug or name and must exist. Used for organisations and for keys.
pub async fn routing_prefs(
    store: &crate::store::Store,
    d: &RoutingDefaults,
) -> Result<Option<String>, String> {
    let known: Vec<(String, String)> =
        sqlx::query_as("SELECT slug, name FROM providers ORDER BY slug")
            .fetch_all(&store.pool)
            .await
            .map_err(internal)?;
    let list = |field: &str, text: &str| -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let found = known
                .iter()
                .find(|(slug, n)| slug.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    format!(
                        "{field}: no provider called {name:?}; the providers are {}",
                        known
                            .iter()
                            .map(|(s, _)| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            out.push(found.0.clone());
        }
        Ok(out)
    };
    let order = list("Try first", &d.order)?;
    let ignore = list("Never use", &d.ignore)?;
    let mut prefs = Map::new();
    if !order.is_empty() {
        prefs.insert("order".into(), json!(order));
        if d.only_ordered {
            prefs.insert("allow_fallbacks".into(), json!(false));
        }
    } else if d.only_ordered {
        return Err("List the providers to try first to use only them".into());
    }
    if !ignore.is_empty() {
        prefs.insert("ignore".into(), json!(ignore));
    }
    if !d.sort.trim().is_empty() {
        prefs.insert("sort".into(), json!(d.sort.trim()));
    }
    if d.deny_data_collection {
        prefs.insert("data_collection".into(), json!("deny"));
    }
    let prefs = Value::Object(prefs);
    crate::gateway::route::parse_prefs(&prefs).map_err(|e| e.message)?;
    Ok((prefs != json!({})).then(|| prefs.to_string()))
}

/// The stored defaults as the form shows them.
pub fn routing_view(stored: Option<&str>) -> RoutingDefaults {
    let v: Value = stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let join = |k: &str| {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    RoutingDefaults {
        order: join("order"),
        ignore: join("ignore"),
        sort: v["sort"].as_str().unwrap_or_default().to_string(),
        deny_data_collection: v["data_collection"] == "deny",
        only_ordered: v["allow_fallbacks"] == false,
    }
}

pub async fn page(store: &crate::store::Store, actor: &Actor) -> Result<OrgPageData, String> {
    let (name,): (String,) = sqlx::query_as("SELECT name FROM orgs WHERE id = $1")
        .bind(&actor.org_id)
        .fetch_one(&store.pool)
        .await
        .map_err(internal)?;
    let members = orgs::members(store, &actor.org_id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|m| MemberView {
            is_you: m.user_id == actor.user_id,
            user_id: m.user_id,
            email: m.email,
            role: m.role,
            joined: super::day(m.joined_at),
        })
        .collect();
    // Who was invited, by whom, is for the people who manage the organisation.
    let invitations = if actor.role.manages() {
        let now = now_ms();
        orgs::open_invitations(store, &actor.org_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|i| InvitationRow {
                id: i.id,
                email: i.email,
                role: i.role,
                invited_by: i.invited_by,
                expires: super::day(i.expires_at),
                expired: i.expires_at <= now,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (logging, retention, prefs): (i64, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT prompt_logging, log_retention_days, provider_prefs FROM orgs WHERE id = $1",
    )
    .bind(&actor.org_id)
    .fetch_one(&store.pool)
    .await
    .map_err(internal)?;
    let providers: Vec<(String, String)> =
        sqlx::query_as("SELECT slug, name FROM providers WHERE enabled = 1 ORDER BY slug")
            .fetch_all(&store.pool)
            .await
            .map_err(internal)?;
    Ok(OrgPageData {
        routing: routing_view(prefs.as_deref()),
        providers,
        prompt_logging: logging != 0,
        log_retention_days: retention.unwrap_or(DEFAULT_PROMPT_RETENTION_DAYS),
        org_id: actor.org_id.clone(),
        name,
        role: actor.role.as_str().into(),
        members,
        invitations,
    })
}
