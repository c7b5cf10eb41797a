//! The application state every handler shares: one `Arc`, cheap to clone.

use crate::billing::CreditGate;
use crate::catalog::CatalogHandle;
use crate::config::Config;
use crate::crypto::Cipher;
use crate::keys::KeyCache;
use crate::store::Store;
use std::{ops::Deref, sync::Arc};

pub struct Inner {
    pub cfg: Config,
    pub store: Store,
    pub cipher: Cipher,
    pub catalog: CatalogHandle,
    pub keys: KeyCache,
    pub gate: CreditGate,
    pub http: reqwest::Client,
    /// Set when shutdown's grace period is over: streams still running end (and settle) at once.
    pub cut_streams: tokio::sync::watch::Sender<bool>,
    pub rpm: crate::keys::RpmLimiter,
    /// Requests in flight per key (keys with a concurrency limit).
    pub in_flight: Arc<crate::keys::InFlight>,
    /// Circuit breakers, resting provider keys and endpoint speeds, as this instance has seen them.
    pub health: crate::gateway::health::Health,
    /// Endpoint uptime and latency for public pages, refreshed in the background.
    pub endpoint_health: Arc<crate::catalog::health::Shared>,
    /// Sends emails (or keeps them in the dev outbox).
    pub mailer: crate::mail::Mailer,
    /// Where people reach the dashboard, for links in emails (no trailing slash).
    pub public_url: String,
    /// Stripe, when card payments are set up.
    pub stripe: Option<stripe::Client>,
    /// Purchase limits and fee.
    pub terms: crate::billing::purchases::Terms,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
