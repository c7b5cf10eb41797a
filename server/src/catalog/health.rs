//! How each endpoint is doing, from the request log: requests, error rate, latency and time-to-first-
//! token percentiles, and uptime (the share of attempts that succeeded, not counting errors the client
//! caused) over recent windows. Every upstream attempt counts for its endpoint, including the ones a
//! request fell back from.
//!
//! Computed from the last day of `generations` (newest `MAX_ROWS`). Public pages and the endpoints API
//! read a [`Snapshot`] refreshed in the background (`SWITCHYARD_HEALTH_REFRESH_MS`), so no anonymous
//! request reads the request log; the admin page computes its own.

use crate::store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const MINUTE: i64 = 60_000;
const MAX_ROWS: i64 = 100_000;

/// One endpoint over one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// Upstream attempts.
    pub requests: u64,
    /// Attempts that failed for the provider's reasons (5xx, 429, timeouts, bad keys, broken streams).
    pub errors: u64,
    /// Attempts refused because of the client's request (400, 404, 413, 422).
    pub client_errors: u64,
    /// Whole-request latency and time to first token of the requests it served, in ms.
    pub latency: Vec<i64>,
    pub ttft: Vec<i64>,
}

impl Health {
    /// Success share excluding client errors, in basis points; `None` without traffic.
    pub fn uptime_bp(&self) -> Option<i64> {
        let counted = self.requests - self.client_errors;
        (counted > 0).then(|| ((counted - self.errors) * 10_000 / counted) as i64)
    }

    /// Errors per attempt (client errors left out), in basis points.
    pub fn error_bp(&self) -> Option<i64> {
        self.uptime_bp().map(|u| 10_000 - u)
    }

    /// The `p`th percentile (nearest rank) of a sorted list.
    pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
        if sorted.is_empty() {
            return None;
        }
        let rank = (sorted.len() * p as usize).div_ceil(100).max(1);
        sorted.get(rank - 1).copied()
    }
}

/// The windows public pages and the endpoints API show: 5 minutes, 30 minutes and a day.
pub const PUBLIC_WINDOWS: [i64; 3] = [5 * MINUTE, 30 * MINUTE, 1440 * MINUTE];

/// Endpoint health over [`PUBLIC_WINDOWS`], as of `taken_at` (0: not taken yet).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub taken_at: i64,
    maps: Vec<BTreeMap<String, Health>>,
}

impl Snapshot {
    /// The health of endpoint `ep` over `window` (one of [`PUBLIC_WINDOWS`]).
    pub fn get(&self, window: i64, ep: &str) -> Option<&Health> {
        let w = PUBLIC_WINDOWS.iter().position(|x| *x == window)?;
        self.maps.get(w)?.get(ep)
    }
}

/// The snapshot public readers share; swapped whole by [`refresh`].
#[derive(Default)]
pub struct Shared(arc_swap::ArcSwap<Snapshot>);

impl Shared {
    pub fn get(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }
}

/// Takes a new snapshot now.
pub async fn refresh(store: &Store, shared: &Shared) -> Result<(), sqlx::Error> {
    let now = crate::store::now_ms();
    let maps = compute(store, now, &PUBLIC_WINDOWS).await?;
    shared.0.store(Arc::new(Snapshot {
        taken_at: now,
        maps,
    }));
    Ok(())
}

/// Refreshes the snapshot every `every`, from now until the task is stopped.
pub async fn refresh_every(store: Store, shared: Arc<Shared>, every: std::time::Duration) {
    loop {
        if let Err(e) = refresh(&store, &shared).await {
            tracing::warn!(error = %e, "endpoint health refresh failed; public pages keep the last snapshot");
        }
        tokio::time::sleep(every).await;
    }
}

fn is_client_error(status: u64) -> bool {
    matches!(status, 400 | 404 | 413 | 422)
}

/// Health per endpoint id for each window (ms), measured back from `now`.
pub async fn compute(
    store: &Store,
    now: i64,
    windows: &[i64],
) -> Result<Vec<BTreeMap<String, Health>>, sqlx::Error> {
    let longest = windows.iter().copied().max().unwrap_or(0);
    type Row = (i64, Option<String>, i64, Option<i64>, i64, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT created_at, endpoint_id, latency_ms, ttft_ms, status, attempts FROM generations \
         WHERE created_at > $1 ORDER BY created_at DESC LIMIT $2",
    )
    .bind(now - longest)
    .bind(MAX_ROWS)
    .fetch_all(&store.pool)
    .await?;
    let mut out: Vec<BTreeMap<String, Health>> = vec![BTreeMap::new(); windows.len()];
    for (at, served_by, latency, ttft, status, attempts) in rows {
        let attempts: Vec<serde_json::Value> = serde_json::from_str(&attempts).unwrap_or_default();
        for (w, window) in windows.iter().enumerate() {
            if at <= now - window {
                continue;
            }
            let map = &mut out[w];
            for a in &attempts {
                let Some(ep) = a["endpoint_id"].as_str() else {
                    continue;
                };
                let h = map.entry(ep.to_string()).or_default();
                h.requests += 1;
                let s = a["status"].as_u64().unwrap_or(0);
                if is_client_error(s) {
                    h.client_errors += 1;
                } else if s != 200 {
                    h.errors += 1;
                }
            }
            if let (Some(ep), true) = (&served_by, status == 200) {
                let h = map.entry(ep.clone()).or_default();
                h.latency.push(latency);
                if let Some(t) = ttft {
                    h.ttft.push(t);
                }
            }
        }
    }
    for map in &mut out {
        for h in map.values_mut() {
            h.latency.sort_unstable();
            h.ttft.sort_unstable();
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn percentiles_and_uptime() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(Health::percentile(&v, 50), Some(50));
        assert_eq!(Health::percentile(&v, 99), Some(99));
        assert_eq!(Health::percentile(&[7], 95), Some(7));
        assert_eq!(Health::percentile(&[], 50), None);
        let h = Health {
            requests: 10,
            errors: 2,
            client_errors: 2,
            ..Health::default()
        };
        assert_eq!(h.uptime_bp(), Some(7_500));
        assert_eq!(h.error_bp(), Some(2_500));
        assert_eq!(Health::default().uptime_bp(), None);
    }
}
