//! Attempt limits for the dashboard's sign-in, sign-up, password-reset, invitation and promo flows, and
//! the client address they are counted against.
//!
//! The address is the TCP peer's, unless the peer is one of the configured trusted proxies
//! (`SWITCHYARD_TRUSTED_PROXIES`): then it is the rightmost address of `X-Forwarded-For` that is not a
//! trusted proxy (each proxy appends the peer it saw, so everything left of that was written by the
//! client and proves nothing). IPv6 clients are counted by their /64, which one subscriber usually holds
//! whole.
//!
//! Identifiers are hashed with a per-process key before they are kept, so an identifier of any size costs
//! the same few bytes and nobody can aim collisions; buckets idle long enough to be full again are
//! evicted, and each kind of limit tracks at most [`MAX_TRACKED`] identifiers, so memory stays bounded
//! whatever arrives.

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;
use std::{
    collections::HashMap,
    hash::BuildHasher,
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

/// The most identifiers one kind of limit tracks at once. Past it, idle buckets are evicted; if every
/// bucket is active (a flood from that many addresses within the minute) the kind starts afresh, which
/// bounds memory at the price of forgetting, for a moment, who was near their limit.
pub const MAX_TRACKED: usize = 50_000;

/// Checks between sweeps of idle buckets.
const SWEEP_EVERY: u64 = 4_096;

type Limiter = DefaultKeyedRateLimiter<u64>;

/// Per-identifier limits of so many attempts a minute (a burst of that many, then one every
/// 60/limit seconds).
pub struct Throttle {
    hasher: std::hash::RandomState,
    kinds: parking_lot::Mutex<HashMap<(&'static str, u32), Arc<Limiter>>>,
    checks: AtomicU64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            hasher: std::hash::RandomState::new(),
            kinds: parking_lot::Mutex::new(HashMap::new()),
            checks: AtomicU64::new(0),
        }
    }
}

impl Throttle {
    /// Counts an attempt of `kind` by `id`; `Err(seconds to wait)` past `per_minute`.
    pub fn check(&self, kind: &'static str, id: &str, per_minute: u32) -> Result<(), u64> {
        let limiter = self.limiter(kind, per_minute);
        let key = self.hasher.hash_one(id);
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(SWEEP_EVERY) || limiter.len() >= MAX_TRACKED {
            limiter.retain_recent();
            if limiter.len() >= MAX_TRACKED {
                tracing::warn!(
                    kind,
                    tracked = limiter.len(),
                    "attempt limits: every tracked identifier is active; starting this kind afresh to bound memory"
                );
                *self
                    .kinds
                    .lock()
                    .get_mut(&(kind, per_minute))
                    .expect("made above") = Arc::new(Self::make(per_minute));
                return self.check(kind, id, per_minute);
            }
            limiter.shrink_to_fit();
        }
        limiter.check_key(&key).map_err(|not_until| {
            let now = governor::clock::DefaultClock::default().now();
            not_until.wait_time_from(now).as_secs().max(1)
        })
    }

    /// Identifiers tracked, over every kind (what the limits hold in memory).
    pub fn tracked(&self) -> usize {
        self.kinds.lock().values().map(|l| l.len()).sum()
    }

    fn limiter(&self, kind: &'static str, per_minute: u32) -> Arc<Limiter> {
        self.kinds
            .lock()
            .entry((kind, per_minute))
            .or_insert_with(|| Arc::new(Self::make(per_minute)))
            .clone()
    }

    fn make(per_minute: u32) -> Limiter {
        Limiter::keyed(Quota::per_minute(
            NonZeroU32::new(per_minute.max(1)).expect("at least 1"),
        ))
    }
}

/// The client's address for limits: see the module's description.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Written by the client (every proxy to its right is trusted and writes addresses): it
            // proves nothing, and the last trusted hop stands for it.
            return peer;
        };
        if !is_trusted(&ip) {
            return ip;
        }
    }
    peer
}

/// The key a client is counted under: an IPv4 address, or an IPv6 /64.
pub fn client_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    None
}

/// Parses `SWITCHYARD_TRUSTED_PROXIES`: CIDRs or single addresses, separated by commas or spaces.
pub fn parse_trusted(text: &str) -> Result<Vec<IpNet>, String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("{s:?} is not an address or a CIDR (e.g. 10.0.0.0/8, 127.0.0.1)")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn limits_each_identifier_and_says_how_long_to_wait() {
        let t = Throttle::default();
        for _ in 0..3 {
            assert!(t.check("signin", "a", 3).is_ok());
        }
        let wait = t.check("signin", "a", 3).expect_err("fourth at once");
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(t.check("signin", "b", 3).is_ok(), "per identifier");
        assert!(t.check("reset", "a", 3).is_ok(), "per kind");
    }

    #[test]
    fn memory_stays_bounded_under_huge_unique_identifiers() {
        let t = Throttle::default();
        let big = "x".repeat(64 * 1024);
        for i in 0..(MAX_TRACKED * 2 + 10) {
            // Megabytes of identifiers in all; each kept as one hash.
            let id = if i % 1000 == 0 {
                format!("{big}{i}")
            } else {
                format!("client-{i}")
            };
            let _ = t.check("signin", &id, 20);
        }
        assert!(t.tracked() <= MAX_TRACKED, "{}", t.tracked());
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted = parse_trusted("10.0.0.0/8, 127.0.0.1").expect("parse");
        // A forged header from an untrusted peer is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["1.1.1.1"], &trusted),
            ip("203.0.113.9")
        );
        // Behind a trusted proxy: the rightmost untrusted hop, whatever the client wrote left of it.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &["6.6.6.6, 198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(
                ip("10.1.2.3"),
                &["198.51.100.7", "10.9.9.9, 10.1.1.1"],
                &trusted
            ),
            ip("198.51.100.7"),
            "several headers and a chain of trusted proxies"
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &["[2001:db8::5]:443"], &trusted),
            ip("2001:db8::5")
        );
        // Garbage only a client could have written: the proxy stands for it.
        assert_eq!(
            client_ip(ip("127.0.0.1"), &["not-an-ip"], &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), &[], &trusted), ip("127.0.0.1"));
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("").expect("empty").is_empty());
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            client_key(ip("2001:db8:1:2:bbbb::9")),
            client_key(ip("2001:db8:1:2::7"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(client_key(ip("192.0.2.1")), "192.0.2.1");
    }
}
