//! The usage side of the dashboard: what the server sends the overview, the activity log and the admin
//! analytics, and the pieces the pages share (ranges, money, the stacked bar chart).

use serde::{Deserialize, Serialize};

/// The ranges the charts offer, with their buckets: the last 24 hours and 7 days by hour, the last 30
/// days and the last year by UTC day.
pub const RANGES: &[(&str, &str)] = &[
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("1y", "Last year"),
];

/// A chart: one bar per bucket, stacked by series; several measures of the same bars.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    /// Each bucket's label ("Nov 21 14:00" or "Nov 21").
    pub labels: Vec<String>,
    /// What the bars can measure: (key, label, is money in nano-USD).
    pub measures: Vec<(String, String, bool)>,
    /// Largest first; the last may be "Other".
    pub series: Vec<Series>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// values[measure][bucket].
    pub values: Vec<Vec<i64>>,
}

impl Chart {
    /// A measure's stack height per bucket.
    pub fn totals(&self, measure: usize) -> Vec<i64> {
        let mut out = vec![0i64; self.labels.len()];
        for s in &self.series {
            if let Some(v) = s.values.get(measure) {
                for (o, x) in out.iter_mut().zip(v) {
                    *o += x;
                }
            }
        }
        out
    }
}

/// Spend, requests and tokens over a period ("Today", "7 days", …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodTotals {
    pub label: String,
    pub spend_nanos: i64,
    pub requests: i64,
    pub tokens: i64,
}

/// A line of a "top …" table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopRow {
    pub name: String,
    pub spend_nanos: i64,
    pub requests: i64,
    pub tokens: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overview {
    pub org_name: String,
    /// Exact decimal USD.
    pub balance_usd: String,
    /// True for owners and admins (the whole organisation); members see their own keys.
    pub whole_org: bool,
    pub periods: Vec<PeriodTotals>,
    pub range: String,
    pub group: String,
    pub chart: Chart,
    pub top_models: Vec<TopRow>,
    pub top_keys: Vec<TopRow>,
}

/// The activity log's filters, as the page and the CSV link send them (any may be left out).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityFilter {
    /// "1h", "24h", "7d", "30d", "all" (blank: 7d).
    pub range: String,
    pub model: String,
    /// An API key's id.
    pub key: String,
    /// A member's user id.
    pub member: String,
    /// "", "ok", "error" or "cancelled".
    pub status: String,
    /// Paging: the last row seen ("<created_at>.<id>"); blank for the newest.
    pub before: String,
}

impl ActivityFilter {
    /// The query string for links (paging and the CSV export).
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("range", &self.range),
            ("model", &self.model),
            ("key", &self.key),
            ("member", &self.member),
            ("status", &self.status),
            ("before", &self.before),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", urlencode(v)));
            }
        }
        parts.join("&")
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRow {
    pub id: String,
    pub time: String,
    pub model: String,
    pub provider: String,
    pub key: String,
    pub member: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    pub reasoning_tokens: i64,
    /// What the organisation was charged, nano-USD.
    pub charge_nanos: i64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    /// Output tokens per second, one decimal ("42.5"); blank when it cannot be told.
    pub tokens_per_sec: String,
    pub status: i64,
    pub finish_reason: String,
    pub streamed: bool,
    pub cancelled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub label: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityPage {
    pub whole_org: bool,
    pub rows: Vec<ActivityRow>,
    /// The cursor of the next (older) page, when there is one.
    pub next: Option<String>,
    /// Requests matching the filters in the range (from the rollups).
    pub matching: i64,
    pub models: Vec<String>,
    pub keys: Vec<Choice>,
    pub members: Vec<Choice>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    pub provider: String,
    pub status: i64,
    pub error_type: String,
    pub message: String,
    pub latency_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationDetail {
    pub row: ActivityRow,
    pub upstream_model: String,
    pub upstream_id: String,
    pub native_finish_reason: String,
    pub error: String,
    pub cost_nanos_shown: bool,
    pub cache_write_tokens: i64,
    pub usage_estimated: bool,
    pub attempts: Vec<AttemptView>,
    /// Whether the organisation logs prompts (else `prompt`/`answer` are empty and the page says why).
    pub logging: bool,
    pub prompt: Option<String>,
    pub answer: Option<String>,
}

/// A line of an analytics table (by model, provider or organisation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyRow {
    pub name: String,
    pub requests: i64,
    pub errors: i64,
    pub revenue_nanos: i64,
    pub cost_nanos: i64,
    /// Mean latency and time to first token, ms (0 when nothing was measured).
    pub mean_latency_ms: i64,
    pub mean_ttft_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analytics {
    pub range: String,
    pub group: String,
    pub revenue_nanos: i64,
    pub cost_nanos: i64,
    pub requests: i64,
    pub errors: i64,
    pub chart: Chart,
    pub by_model: Vec<MoneyRow>,
    pub by_provider: Vec<MoneyRow>,
    pub by_org: Vec<MoneyRow>,
    pub purchases_nanos: i64,
    pub purchases: i64,
    pub refunds_nanos: i64,
    pub refunds: i64,
    /// The sum of every positive balance: credit the platform owes its tenants.
    pub liability_nanos: i64,
    pub orgs_in_credit: i64,
    /// What providers billed that no tenant was charged for, per provider and kind.
    pub losses: Vec<LossRow>,
    pub loss_cost_nanos: i64,
    pub uncollected_nanos: i64,
}

/// Operator losses of one kind at one provider over the period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossRow {
    pub provider: String,
    /// `over_hold`, `abandoned`, `hold_released` or `instance_died`.
    pub kind: String,
    pub count: i64,
    /// The provider cost at stake (an abandoned attempt's worst case).
    pub cost_nanos: i64,
    /// What tenants would have been charged for it.
    pub uncollected_nanos: i64,
}

/// Money for the dashboards: cents from a cent up ("$1,234.57", rounded half up), finer below
/// ("$0.000412"), "$0" for nothing. Exact values go in titles and CSVs.
pub fn usd(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n == 0 {
        return "$0".into();
    }
    if n >= 10_000_000 {
        let cents = (n + 5_000_000) / 10_000_000;
        return format!("{sign}${}.{:02}", crate::grouped(cents / 100), cents % 100);
    }
    // Below a cent: six decimals, trailing zeros dropped (at least one significant digit shown).
    let micro = n.div_ceil(1_000);
    let s = format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000);
    format!("{sign}${}", s.trim_end_matches('0'))
}

/// 1234567 → "1.2M", 45200 → "45.2K", 999 → "999".
pub fn compact(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let a = n.unsigned_abs();
    let (div, suffix) = match a {
        0..=9_999 => return format!("{sign}{}", crate::grouped(a)),
        10_000..=999_999 => (1_000, "K"),
        1_000_000..=999_999_999 => (1_000_000, "M"),
        _ => (1_000_000_000, "B"),
    };
    let tenths = (a * 10 + div / 2) / div;
    let s = format!("{}.{}", tenths / 10, tenths % 10);
    format!("{sign}{}{suffix}", s.trim_end_matches(".0"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn money_and_counts_read_well() {
        assert_eq!(super::usd(0), "$0");
        assert_eq!(super::usd(1_234_567_000_000), "$1,234.57");
        assert_eq!(super::usd(10_000_000), "$0.01");
        assert_eq!(super::usd(412_000), "$0.000412");
        assert_eq!(super::usd(1), "$0.000001");
        assert_eq!(super::usd(-2_500_000_000), "-$2.50");
        assert_eq!(super::compact(999), "999");
        assert_eq!(super::compact(9_999), "9,999");
        assert_eq!(super::compact(45_200), "45.2K");
        assert_eq!(super::compact(1_234_567), "1.2M");
        assert_eq!(super::compact(120_000), "120K");
    }
}
