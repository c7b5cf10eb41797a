//! The web UI: server-side rendering of the Leptos `app`, its server functions, the built wasm/JS
//! bundle (`SWITCHYARD_SITE_DIR/pkg`) and the stylesheet compiled into the binary.

pub mod admin_pages;
pub mod billing_pages;
pub mod dashboard;
pub mod key_pages;
pub mod org_pages;
pub mod sessions;
pub mod throttle;
pub mod usage_pages;

use crate::state::AppState;
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use std::sync::Arc;
use switchyard_app::account::backend::{ClientAddr, DashboardHandle};
use switchyard_app::{shell, App, CatalogSource, ModelCard, PublicCatalog};
use tower_http::services::ServeDir;
use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};

struct LiveCatalog(AppState);

impl PublicCatalog for LiveCatalog {
    fn model_cards(&self) -> Vec<ModelCard> {
        crate::catalog::public_cards(&self.0.catalog.get())
    }

    fn model_detail<'a>(
        &'a self,
        slug: &'a str,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Option<switchyard_app::models::ModelDetail>>
                + Send
                + 'a,
        >,
    > {
        Box::pin(async move {
            let c = self.0.catalog.get();
            let base = format!("{}/api/v1", self.0.public_url);
            crate::catalog::public_detail(&c, &self.0.endpoint_health.get(), &base, slug)
        })
    }
}

const CSS: &str = include_str!("../../../assets/switchyard.css");
const FAVICON: &str = include_str!("../../../assets/favicon.svg");

pub fn router(state: AppState) -> Router {
    let options = LeptosOptions::builder()
        .output_name("switchyard")
        .site_root(state.cfg.site_dir.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .build();
    let source = CatalogSource(Arc::new(LiveCatalog(state.clone())));
    let accounts = DashboardHandle(Arc::new(dashboard::Accounts::new(state.clone())));
    let ctx = move || {
        provide_context(source.clone());
        provide_context(accounts.clone());
    };
    let sessions = SessionManagerLayer::new(sessions::DbSessionStore::new(state.store.clone()))
        .with_name("sy_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        // Secure whenever the platform is reached over https.
        .with_secure(
            state.cfg.secure_cookies
                || state
                    .cfg
                    .public_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://")),
        )
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));
    let sweeper = sessions::DbSessionStore::new(state.store.clone());
    tokio::spawn(async move {
        use tower_sessions::ExpiredDeletion;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            if let Err(e) = sweeper.delete_expired().await {
                tracing::warn!(error = %e, "sweeping expired sessions failed");
            }
        }
    });
    let routes = generate_route_list(App);
    let fn_ctx = ctx.clone();
    let pkg = state.cfg.site_dir.join("pkg");
    if !pkg.join("switchyard.js").exists() {
        tracing::warn!(
            site_dir = %state.cfg.site_dir.display(),
            "the UI bundle (pkg/switchyard.js) is missing: pages render but do not become interactive; \
             build it with deploy/run-local.sh or point SWITCHYARD_SITE_DIR at a built site"
        );
    }
    Router::new()
        .route(
            "/_app/{*fn_name}",
            post(move |req: Request<Body>| {
                let c = fn_ctx.clone();
                async move { handle_server_fns_with_context(c, req).await }
            }),
        )
        .leptos_routes_with_context(&options, routes, ctx, {
            let o = options.clone();
            move || shell(o.clone())
        })
        .route(
            "/activity.csv",
            get(usage_pages::activity_csv).with_state(state.clone()),
        )
        .route(
            "/usage/daily.csv",
            get(usage_pages::daily_csv).with_state(state.clone()),
        )
        .route("/billing/receipts/{id}", {
            let st = state.clone();
            get(move |session, path| billing_pages::receipt(st.clone(), session, path))
        })
        .route(
            "/assets/switchyard.css",
            get(|| async { asset(CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/favicon.svg",
            get(|| async { asset(FAVICON, "image/svg+xml") }),
        )
        .nest_service(
            "/pkg",
            ServeDir::new(pkg).precompressed_br().precompressed_gzip(),
        )
        .with_state(options)
        .layer(sessions)
        .layer(axum::middleware::from_fn(same_origin_only))
        .layer(axum::middleware::from_fn_with_state(state, client_addr))
}

/// CSRF defence for the dashboard: a state-changing request must come from a page of this site. Browsers
/// say where a request comes from (`Sec-Fetch-Site`, `Origin`); a cross-site form or script is refused.
async fn same_origin_only(req: Request<Body>, next: axum::middleware::Next) -> Response {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let h = req.headers();
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    let same_origin = match (site, origin) {
        (Some(s), _) => s == "same-origin" || s == "none",
        (None, Some(o)) => {
            host.is_some_and(|host| o.split("://").nth(1).is_some_and(|rest| rest == host))
        }
        (None, None) => false,
    };
    if same_origin {
        next.run(req).await
    } else {
        tracing::warn!(path = %req.uri().path(), ?site, ?origin, "refused a cross-site request to the dashboard");
        (
            StatusCode::FORBIDDEN,
            "cross-site requests to the dashboard are refused",
        )
            .into_response()
    }
}

/// Puts the client's address where server functions can read it (attempt limits): the peer's, or behind
/// a trusted proxy the address it forwarded for (see [`throttle::client_ip`]).
async fn client_addr(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request<Body>,
    next: axum::middleware::Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let addr = peer.map_or_else(String::new, |peer| {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        throttle::client_key(throttle::client_ip(
            peer,
            &forwarded,
            &state.cfg.trusted_proxies,
        ))
    });
    req.extensions_mut().insert(ClientAddr(addr));
    next.run(req).await
}

/// A moment as the pages show a day: `2026-11-21` (UTC).
pub fn day(ms: i64) -> String {
    crate::gateway::info::rfc3339(ms)
        .get(..10)
        .unwrap_or_default()
        .to_string()
}

/// A moment as the pages show it to the minute: `2026-11-21 10:17 UTC`.
pub fn minute(ms: i64) -> String {
    let t = crate::gateway::info::rfc3339(ms);
    format!(
        "{} {} UTC",
        t.get(..10).unwrap_or_default(),
        t.get(11..16).unwrap_or_default()
    )
}

/// A moment to the second: `2026-11-21 10:17:05` (UTC).
pub fn second(ms: i64) -> String {
    let t = crate::gateway::info::rfc3339(ms);
    format!(
        "{} {}",
        t.get(..10).unwrap_or_default(),
        t.get(11..19).unwrap_or_default()
    )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
