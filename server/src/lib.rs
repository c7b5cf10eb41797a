//! Switchyard: a self-hosted, multi-tenant LLM API marketplace. `Application::build` wires configuration,
//! storage, the catalog snapshot, billing and the HTTP routers; `main.rs` only parses the command line.
// The fake Stripe's objects are large `json!` literals.
#![recursion_limit = "256"]

pub mod accounts;
pub mod billing;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod devstripe;
pub mod devupstream;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod mail;
pub mod money;
pub mod providers;
pub mod state;
pub mod store;
pub mod usage;
pub mod web;

use crate::config::Config;
use crate::state::{AppState, Inner};
use crate::store::Store;
use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use serde_json::json;
use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;

/// Installs the TLS crypto provider (ring) once per process.
pub fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    writer: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Opens (and migrates) the database, loads the catalog and binds `cfg.addr` (port 0 picks one).
    pub async fn build(cfg: Config) -> anyhow::Result<Application> {
        let store = Store::open(cfg.database_url.expose(), cfg.db_max_connections).await?;
        Self::build_with_store(cfg, store).await
    }

    pub async fn build_with_store(cfg: Config, store: Store) -> anyhow::Result<Application> {
        init_tls();
        let cipher = crypto::Cipher::from_config(&cfg)?;
        catalog::bind_credentials(&store, &cipher).await?;
        let catalog = catalog::CatalogHandle::new(catalog::load(&store, &cipher).await?);
        let (gate, writer) = billing::CreditGate::start(
            store.clone(),
            Config::ms(cfg.instance_stale_ms),
            &cfg.journal_dir,
            Config::ms(cfg.admission_timeout_ms.max(1)),
        )
        .await?;
        // Provider calls never follow redirects: the key and the prompt go to the configured origin only.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Config::ms(cfg.upstream_connect_timeout_ms))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()?;
        let listener = TcpListener::bind(cfg.addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} ({e}); set SWITCHYARD_ADDR to a free address",
                cfg.addr
            )
        })?;
        let keys = keys::KeyCache::new(Config::ms(cfg.key_cache_ttl_ms));
        let breaker_cooldown = Config::ms(cfg.breaker_cooldown_ms);
        let mailer = mail::Mailer::from_config(&cfg, store.clone())?;
        let public_url = match &cfg.public_url {
            Some(u) => u.clone(),
            None => format!(
                "http://{}",
                listener.local_addr().map_err(anyhow::Error::from)?
            ),
        };
        let stripe = billing::purchases::stripe_client(&cfg)?;
        let terms = billing::purchases::Terms::from_config(&cfg)?;
        let state = AppState(Arc::new(Inner {
            stripe,
            terms,
            mailer,
            public_url,
            cfg,
            store,
            cipher,
            catalog,
            keys,
            gate,
            http,
            cut_streams: tokio::sync::watch::channel(false).0,
            rpm: keys::RpmLimiter::default(),
            in_flight: Arc::default(),
            health: gateway::health::Health::new(breaker_cooldown),
            endpoint_health: Arc::default(),
        }));
        Ok(Application {
            listener,
            state,
            writer,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then drains: no new connections, in-flight requests and
    /// streams finish (for at most the configured grace), pending settlements are committed.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            state,
            writer,
        } = self;
        let router = router(state.clone());
        let refresher = tokio::spawn(refresh_catalog(state.clone()));
        let alerts = tokio::spawn(billing::alerts::run(state.clone()));
        let topups = tokio::spawn(billing::topup::run(state.clone()));
        let pruner = tokio::spawn(usage::prune_every_hour(state.clone()));
        let health = tokio::spawn(catalog::health::refresh_every(
            state.store.clone(),
            state.endpoint_health.clone(),
            Config::ms(state.cfg.health_refresh_ms.max(100)),
        ));
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
        };
        // Streams are many small writes: without TCP_NODELAY, Nagle + delayed ACKs stall them ~40 ms.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let mut server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(signal)
            .await
        });
        let grace = Config::ms(state.cfg.shutdown_grace_ms);
        tokio::select! {
            r = &mut server => {
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "server error");
                }
            }
            _ = async {
                let _ = stop_rx.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; ending the remaining streams (billed for what they produced)");
                // Streams end themselves with an error chunk and settle; connections then close.
                let _ = state.cut_streams.send(true);
                if tokio::time::timeout(Duration::from_secs(5), &mut server).await.is_err() {
                    server.abort();
                }
            }
        }
        refresher.abort();
        alerts.abort();
        topups.abort();
        pruner.abort();
        health.abort();
        // Streams whose clients left are read for a moment more and settled from a task: let them finish.
        tokio::time::sleep(gateway::stream::DRAIN + Duration::from_millis(50)).await;
        state.gate.close(&state.store).await;
        drop(writer);
        state.store.close().await;
        tracing::info!("stopped; all usage recorded");
        Ok(())
    }
}

/// Every route: the API, health, and the web UI.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/webhooks/stripe",
            axum::routing::post(billing::purchases::webhook),
        )
        .merge(gateway::router())
        .with_state(state.clone())
        .merge(web::router(state))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
}

/// The span of a request: method and path, never the query (it carries sign-in, invitation and reset
/// tokens: `/verify?token=…`) nor headers (keys, cookies).
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path(), version = ?req.version())
}

async fn health(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    if state.store.ping().await {
        (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok"})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "degraded", "database": "unreachable"})),
        )
    }
}

/// Picks up catalog changes made by other processes (`switchyard catalog apply`, other instances).
async fn refresh_catalog(state: AppState) {
    let every = Config::ms(state.cfg.catalog_refresh_ms.max(100));
    loop {
        tokio::time::sleep(every).await;
        match state.catalog.refresh(&state.store, &state.cipher).await {
            Ok(true) => tracing::info!(version = state.catalog.get().version, "catalog reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "catalog refresh failed; keeping the current snapshot")
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn request_logs_keep_the_path_and_drop_query_tokens() {
        let out = Captured::default();
        let w = out.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            let req = axum::http::Request::builder()
                .uri("/verify?token=s3cr3tT0ken")
                .header("authorization", "Bearer sk-sy-secret")
                .body(())
                .expect("request");
            let span = super::request_span(&req);
            let _in = span.enter();
            tracing::debug!("handled");
        });
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        assert!(text.contains("/verify"), "{text}");
        assert!(
            !text.contains("s3cr3tT0ken") && !text.contains("sk-sy-secret"),
            "{text}"
        );
    }
}
