//! The server's side of the usage pages that are plain downloads: the activity log and the daily totals
//! as CSV, for the signed-in person's organisation (members: their own keys).

use crate::accounts::orgs::Actor;
use crate::state::AppState;
use axum::{
    extract::{Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use switchyard_app::account::backend::{Who, ORG_KEY, SIGNED_IN_AT_KEY, USER_KEY};
use switchyard_app::usage::ActivityFilter;

/// Who the session belongs to, acting in its organisation; None when signed out (or no longer a member).
pub async fn session_actor(state: &AppState, session: &tower_sessions::Session) -> Option<Actor> {
    let user_id: String = session.get(USER_KEY).await.ok().flatten()?;
    let who = Who {
        user_id,
        org_id: session.get(ORG_KEY).await.ok().flatten(),
        signed_in_at: session
            .get(SIGNED_IN_AT_KEY)
            .await
            .ok()
            .flatten()
            .unwrap_or(0),
    };
    super::dashboard::resolve(&state.store, &who).await.ok()
}

fn csv(name: &str, body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn problem(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// `GET /activity.csv?range=…&model=…&key=…&member=…&status=…`: every matching row, newest first.
pub async fn activity_csv(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    Query(f): Query<ActivityFilter>,
) -> Response {
    let Some(actor) = session_actor(&state, &session).await else {
        return Redirect::to("/signin?next=/activity").into_response();
    };
    let now = crate::store::now_ms();
    match crate::usage::activity_csv(&state.store, &actor, &f, now).await {
        Ok(body) => csv(&format!("activity-{}.csv", super::day(now)), body),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize)]
pub struct DayRange {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// `GET /usage/daily.csv?from=YYYY-MM-DD&to=YYYY-MM-DD` (both included; default: the last 30 days).
pub async fn daily_csv(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    Query(r): Query<DayRange>,
) -> Response {
    let Some(actor) = session_actor(&state, &session).await else {
        return Redirect::to("/signin?next=/activity").into_response();
    };
    let now = crate::store::now_ms();
    let today = now - now.rem_euclid(crate::usage::DAY_MS);
    let day = |s: &str, default: i64, name: &str| {
        if s.trim().is_empty() {
            Ok(default)
        } else {
            crate::usage::parse_day(s)
                .ok_or_else(|| format!("`{name}` must be a date like 2026-11-21, not {s:?}"))
        }
    };
    let (from, to) = match (
        day(&r.from, today - 29 * crate::usage::DAY_MS, "from"),
        day(&r.to, today, "to"),
    ) {
        (Ok(f), Ok(t)) if f <= t => (f, t),
        (Ok(_), Ok(_)) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "`from` must not be after `to`".into(),
            )
        }
        (Err(e), _) | (_, Err(e)) => return problem(StatusCode::BAD_REQUEST, e),
    };
    match crate::usage::daily_csv(&state.store, &actor, from, to).await {
        Ok(body) => csv(
            &format!("usage-daily-{}-to-{}.csv", super::day(from), super::day(to)),
            body,
        ),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
