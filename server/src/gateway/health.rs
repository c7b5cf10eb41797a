//! What this instance has seen of each endpoint and key, for routing:
//!
//! - **Circuit breaker** per endpoint: after `BREAKER_CONSECUTIVE` failures in a row (connection errors,
//!   timeouts, 5xx, invalid responses), or when at least half of the last minute's requests (and at least
//!   `BREAKER_MIN_REQUESTS`) failed, the endpoint is taken out of rotation for a cool-down. Then one request
//!   probes it (half open): success closes the breaker, failure opens it again for twice as long (up to
//!   five minutes). An open endpoint is still tried last, after every healthy one.
//! - **Resting keys**: a key answered with 429 rests for its `Retry-After` (or `DEFAULT_REST` when none).
//! - **Speed**: moving averages of latency and throughput per endpoint, for `sort: latency | throughput`.
//!
//! It is per instance and in memory: each instance learns on its own within a few requests.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BREAKER_CONSECUTIVE: u32 = 3;
pub const BREAKER_MIN_REQUESTS: usize = 6;
const WINDOW: Duration = Duration::from_secs(60);
const WINDOW_MAX: usize = 64;
const MAX_COOLDOWN: Duration = Duration::from_secs(300);
pub const DEFAULT_REST: Duration = Duration::from_secs(10);
const MAX_REST: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    Closed,
    /// Out of rotation until the instant; then one probe.
    Open {
        until: Instant,
        cooldown: Duration,
    },
    /// One probe is out (since the instant).
    Probing {
        since: Instant,
        cooldown: Duration,
    },
}

#[derive(Debug)]
struct EndpointHealth {
    breaker: Breaker,
    recent: VecDeque<(Instant, bool)>,
    consecutive_failures: u32,
    latency_ms: Option<f64>,
    tokens_per_s: Option<f64>,
}

impl Default for EndpointHealth {
    fn default() -> Self {
        EndpointHealth {
            breaker: Breaker::Closed,
            recent: VecDeque::new(),
            consecutive_failures: 0,
            latency_ms: None,
            tokens_per_s: None,
        }
    }
}

/// Whether an endpoint may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Healthy,
    /// The breaker's cool-down is over: this request is the probe.
    Probe,
    /// Out of rotation: only tried after every other endpoint.
    Open,
}

pub struct Health {
    cooldown: Duration,
    endpoints: Mutex<HashMap<String, EndpointHealth>>,
    resting: Mutex<HashMap<String, Instant>>,
    /// Breakers not closed, and keys resting: while both are zero (the usual case) the hot path
    /// answers without taking a lock.
    not_closed: AtomicUsize,
    rests: AtomicUsize,
}

impl EndpointHealth {
    fn set(&mut self, b: Breaker, not_closed: &AtomicUsize) {
        match (self.breaker == Breaker::Closed, b == Breaker::Closed) {
            (true, false) => {
                not_closed.fetch_add(1, Ordering::Relaxed);
            }
            (false, true) => {
                not_closed.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
        self.breaker = b;
    }
}

/// The entry for `key`, allocating its name only the first time.
fn entry<'a, V: Default>(map: &'a mut HashMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}

impl Health {
    pub fn new(cooldown: Duration) -> Health {
        Health {
            cooldown,
            endpoints: Mutex::new(HashMap::new()),
            resting: Mutex::new(HashMap::new()),
            not_closed: AtomicUsize::new(0),
            rests: AtomicUsize::new(0),
        }
    }

    /// Whether `endpoint` is in rotation; hands out the probe when its cool-down is over.
    pub fn gate(&self, endpoint: &str, probe_timeout: Duration) -> Gate {
        if self.not_closed.load(Ordering::Relaxed) == 0 {
            return Gate::Healthy;
        }
        let mut eps = self.endpoints.lock();
        let Some(h) = eps.get_mut(endpoint) else {
            return Gate::Healthy;
        };
        let now = Instant::now();
        match h.breaker {
            Breaker::Closed => Gate::Healthy,
            Breaker::Open { until, cooldown } if now >= until => {
                h.breaker = Breaker::Probing {
                    since: now,
                    cooldown,
                };
                Gate::Probe
            }
            // A probe that never reported (its request was dropped) is replaced.
            Breaker::Probing { since, cooldown } if now.duration_since(since) > probe_timeout => {
                h.breaker = Breaker::Probing {
                    since: now,
                    cooldown,
                };
                Gate::Probe
            }
            _ => Gate::Open,
        }
    }

    /// The breaker's state (for the admin view and tests).
    pub fn breaker(&self, endpoint: &str) -> Breaker {
        self.endpoints
            .lock()
            .get(endpoint)
            .map_or(Breaker::Closed, |h| h.breaker)
    }

    /// Records an attempt's outcome. `ok` is false only for failures that say something about the
    /// endpoint (see `UpstreamFailure::counts_against_health`).
    pub fn record(&self, endpoint: &str, ok: bool) {
        let now = Instant::now();
        let mut eps = self.endpoints.lock();
        let h = entry(&mut eps, endpoint);
        h.recent.push_back((now, ok));
        while h.recent.len() > WINDOW_MAX
            || h.recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            h.recent.pop_front();
        }
        if ok {
            h.consecutive_failures = 0;
            if h.breaker != Breaker::Closed {
                tracing::info!(endpoint, "circuit closed: the endpoint answered again");
                h.set(Breaker::Closed, &self.not_closed);
                h.recent.clear();
            }
            return;
        }
        h.consecutive_failures += 1;
        match h.breaker {
            Breaker::Probing { cooldown, .. } => {
                let cooldown = (cooldown * 2).min(MAX_COOLDOWN);
                tracing::warn!(
                    endpoint,
                    cooldown_ms = cooldown.as_millis() as u64,
                    "circuit stays open: the probe failed"
                );
                h.set(
                    Breaker::Open {
                        until: now + cooldown,
                        cooldown,
                    },
                    &self.not_closed,
                );
            }
            Breaker::Closed => {
                let failed = h.recent.iter().filter(|(_, ok)| !ok).count();
                let trip = h.consecutive_failures >= BREAKER_CONSECUTIVE
                    || (h.recent.len() >= BREAKER_MIN_REQUESTS && failed * 2 >= h.recent.len());
                if trip {
                    tracing::warn!(
                        endpoint,
                        failures = failed,
                        window = h.recent.len(),
                        cooldown_ms = self.cooldown.as_millis() as u64,
                        "circuit opened: the endpoint is out of rotation"
                    );
                    h.set(
                        Breaker::Open {
                            until: now + self.cooldown,
                            cooldown: self.cooldown,
                        },
                        &self.not_closed,
                    );
                }
            }
            Breaker::Open { .. } => {}
        }
    }

    /// Folds a served request's speed into the endpoint's averages.
    pub fn record_speed(&self, endpoint: &str, latency_ms: u64, tokens_per_s: Option<f64>) {
        let mut eps = self.endpoints.lock();
        let h = entry(&mut eps, endpoint);
        let ewma = |old: Option<f64>, new: f64| Some(old.map_or(new, |o| o * 0.8 + new * 0.2));
        h.latency_ms = ewma(h.latency_ms, latency_ms as f64);
        if let Some(t) = tokens_per_s.filter(|t| t.is_finite() && *t > 0.0) {
            h.tokens_per_s = ewma(h.tokens_per_s, t);
        }
    }

    /// (mean latency ms, mean tokens/s) as far as seen.
    pub fn speed(&self, endpoint: &str) -> (Option<f64>, Option<f64>) {
        self.endpoints
            .lock()
            .get(endpoint)
            .map_or((None, None), |h| (h.latency_ms, h.tokens_per_s))
    }

    /// Rests a key after a rate limit, for `retry_after` seconds or the default.
    pub fn rest(&self, credential: &str, retry_after: Option<u64>) {
        let d = retry_after
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_REST)
            .min(MAX_REST);
        if d.is_zero() {
            return;
        }
        let until = Instant::now() + d;
        tracing::info!(
            credential,
            rest_s = d.as_secs(),
            "provider key rate limited; resting it"
        );
        let mut r = self.resting.lock();
        r.retain(|_, t| *t > Instant::now());
        r.insert(credential.to_string(), until);
        self.rests.store(r.len(), Ordering::Relaxed);
    }

    /// Seconds until the key may be used again; `None` when it may now.
    pub fn resting(&self, credential: &str) -> Option<u64> {
        if self.rests.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let r = self.resting.lock();
        let until = *r.get(credential)?;
        let now = Instant::now();
        (until > now).then(|| (until - now).as_secs_f64().ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_open_the_breaker_and_a_probe_closes_it() {
        let h = Health::new(Duration::from_millis(40));
        let t = Duration::from_secs(5);
        assert_eq!(h.gate("e", t), Gate::Healthy);
        h.record("e", false);
        h.record("e", false);
        assert_eq!(h.gate("e", t), Gate::Healthy, "two failures are not enough");
        h.record("e", false);
        assert_eq!(h.gate("e", t), Gate::Open);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            h.gate("e", t),
            Gate::Probe,
            "after the cool-down, one probe"
        );
        assert_eq!(h.gate("e", t), Gate::Open, "and only one");
        h.record("e", false);
        match h.breaker("e") {
            Breaker::Open { cooldown, .. } => assert_eq!(cooldown, Duration::from_millis(80)),
            b => panic!("a failed probe reopens for twice as long: {b:?}"),
        }
        std::thread::sleep(Duration::from_millis(90));
        assert_eq!(h.gate("e", t), Gate::Probe);
        h.record("e", true);
        assert_eq!(h.gate("e", t), Gate::Healthy);
        assert_eq!(h.breaker("e"), Breaker::Closed);
    }

    #[test]
    fn a_high_error_rate_opens_it_too() {
        let h = Health::new(Duration::from_secs(10));
        for i in 0..6 {
            h.record("e", i % 2 == 0);
        }
        assert_eq!(h.gate("e", Duration::from_secs(5)), Gate::Open);
        let h = Health::new(Duration::from_secs(10));
        for i in 0..6 {
            h.record("e", i % 3 != 0);
        }
        assert_eq!(h.gate("e", Duration::from_secs(5)), Gate::Healthy);
    }

    #[test]
    fn keys_rest_for_their_retry_after() {
        let h = Health::new(Duration::from_secs(10));
        assert_eq!(h.resting("k"), None);
        h.rest("k", Some(2));
        assert_eq!(h.resting("k"), Some(2));
        h.rest("z", Some(0));
        assert_eq!(h.resting("z"), None);
        h.rest("d", None);
        assert_eq!(h.resting("d"), Some(DEFAULT_REST.as_secs()));
    }
}
