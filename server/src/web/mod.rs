//! The web UI: server-side rendering of the Leptos `app`, its server functions, the built wasm/JS
//! bundle (`SWITCHYARD_SITE_DIR/pkg`) and the stylesheet compiled into the binary.

pub mod sessions;

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
use switchyard_app::{shell, App, CatalogSource, ModelCard, PublicCatalog};
use tower_http::services::ServeDir;

struct LiveCatalog(AppState);

impl PublicCatalog for LiveCatalog {
    fn model_cards(&self) -> Vec<ModelCard> {
        crate::catalog::public_cards(&self.0.catalog.get())
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
    let ctx = move || provide_context(source.clone());
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
