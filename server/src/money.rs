//! Money: integer nano-USD amounts, per-million-token prices and markup, with exact decimal parsing and
//! formatting. No floating point is used for any computation; `usd_json` only renders a finished amount.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// Nano-USD per USD.
pub const NANOS_PER_USD: i64 = 1_000_000_000;
/// Markup is held in parts per million of the cost (10 % = 100_000).
pub const PPM: i128 = 1_000_000;
const TOKENS_PER_MTOK: i128 = 1_000_000;

/// An amount of money in nano-USD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub i64);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// Parses a non-negative decimal USD string with at most 9 decimal places ("12.50", "0.000001").
    pub fn parse_usd(s: &str) -> Result<Nanos, MoneyError> {
        parse_decimal(s, 9).map(Nanos)
    }

    /// Exact decimal USD text, trailing zeros trimmed ("12.5", "0.000000001", "-3").
    pub fn to_usd_string(self) -> String {
        format_scaled(self.0 as i128, 9)
    }

    /// For people: "$25.00", "$0.000001", "-$3.50" — at least cents, every digit there is.
    pub fn dollars(self) -> String {
        let s = Nanos(self.0.abs()).to_usd_string();
        let (i, f) = s.split_once('.').unwrap_or((&s, ""));
        let sign = if self.0 < 0 { "-" } else { "" };
        format!("{sign}${i}.{f:0<2}")
    }

    /// The amount as a JSON number whose text is the exact decimal value.
    ///
    /// The conversion goes through the decimal text: an f64 parsed from a decimal with at most 15
    /// significant digits prints back as the same digits, so the number on the wire is the amount.
    pub fn usd_json(self) -> serde_json::Value {
        if self.0 % NANOS_PER_USD == 0 {
            return serde_json::Value::from(self.0 / NANOS_PER_USD);
        }
        let v: f64 = self.to_usd_string().parse().unwrap_or(0.0);
        serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.to_usd_string())
    }
}

/// A price in nano-USD per million tokens (0.50 USD/M = 500_000_000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MtokPrice(pub i64);

impl MtokPrice {
    pub fn parse_usd(s: &str) -> Result<MtokPrice, MoneyError> {
        parse_decimal(s, 9).map(MtokPrice)
    }

    /// From USD per token as OpenRouter writes it ("0.0000025" → $2.50 per million), exactly.
    pub fn from_per_token_usd(s: &str) -> Result<MtokPrice, MoneyError> {
        // USD/token x 1e6 tokens x 1e9 nanos: the decimal scaled by 10^15.
        parse_decimal(s, 15).map(MtokPrice)
    }

    /// USD per million tokens as an exact decimal string ("0.5").
    pub fn to_usd_string(self) -> String {
        format_scaled(self.0 as i128, 9)
    }
}

impl serde::Serialize for MtokPrice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_usd_string())
    }
}

impl<'de> Deserialize<'de> for MtokPrice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MtokPrice::parse_usd(&s).map_err(serde::de::Error::custom)
    }
}

/// Markup over provider cost in parts per million (10 % = 100_000). May be negative down to -100 %.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Markup(pub i64);

impl Markup {
    /// Parses a percent string with at most 4 decimal places ("10", "5.5", "0").
    pub fn parse_percent(s: &str) -> Result<Markup, MoneyError> {
        let ppm = parse_decimal(s, 4)?;
        Ok(Markup(ppm))
    }

    pub fn to_percent_string(self) -> String {
        format_scaled(self.0 as i128, 4)
    }
}

impl serde::Serialize for Markup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_percent_string())
    }
}

impl<'de> Deserialize<'de> for Markup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Markup::parse_percent(&s).map_err(serde::de::Error::custom)
    }
}

/// The tokens of one answer. `cache_read` and `cache_write` are the parts of `prompt` read from and
/// written to the provider's prompt cache (OpenAI's `prompt_tokens_details.cached_tokens`); `audio` the
/// part of `prompt` that was audio (`prompt_tokens_details.audio_tokens`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub audio: u64,
}

impl Tokens {
    pub fn new(prompt: u64, completion: u64) -> Tokens {
        Tokens {
            prompt,
            completion,
            ..Tokens::default()
        }
    }
}

/// What one request costs at one endpoint's prices, captured when it is admitted so that a price change
/// never alters a request already in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pricing {
    pub input: MtokPrice,
    pub output: MtokPrice,
    /// Cached prompt tokens read / written, when the endpoint prices them apart from input.
    pub cache_read: Option<MtokPrice>,
    pub cache_write: Option<MtokPrice>,
    /// A fixed cost per request (with the endpoint's web-search price when the request searches).
    pub request: Nanos,
    /// Audio prompt tokens, when the endpoint prices them apart from text.
    pub audio_input: Option<MtokPrice>,
    /// The service tier's multiplier on everything the provider charges, in ppm (`PPM`: list price).
    pub tier_ppm: i64,
    pub markup: Markup,
    /// An explicit sale price per million tokens (input, output): tenants pay this instead of
    /// cost x (1 + markup) for those tokens (cache and per-request prices keep cost x (1 + markup)).
    pub sale: Option<(MtokPrice, MtokPrice)>,
    /// The organisation's multiplier on everything it is charged, in ppm (`PPM`: list price).
    pub org_ppm: i64,
}

/// Money scaled by 10^6 (nano-USD x tokens-per-Mtok), before division.
struct Parts {
    /// Prompt tokens at the input price and completion tokens at the output price.
    tokens: i128,
    /// Cache reads and writes at their own prices, and the per-request price.
    extras: i128,
    /// The same tokens at the sale price, when there is one.
    sale: Option<i128>,
}

impl Pricing {
    /// A simple input/output price with a markup, as most endpoints have.
    pub fn simple(input: MtokPrice, output: MtokPrice, markup: Markup) -> Pricing {
        Pricing {
            input,
            output,
            cache_read: None,
            cache_write: None,
            request: Nanos::ZERO,
            audio_input: None,
            tier_ppm: PPM as i64,
            markup,
            sale: None,
            org_ppm: PPM as i64,
        }
    }

    fn parts(&self, t: Tokens) -> Parts {
        // Cached tokens without a price of their own are ordinary prompt tokens.
        let read = if self.cache_read.is_some() {
            t.cache_read.min(t.prompt)
        } else {
            0
        };
        let write = if self.cache_write.is_some() {
            t.cache_write.min(t.prompt - read)
        } else {
            0
        };
        let audio = if self.audio_input.is_some() {
            t.audio.min(t.prompt - read - write)
        } else {
            0
        };
        let plain = (t.prompt - read - write - audio) as i128;
        let completion = t.completion as i128;
        let extras = read as i128 * self.cache_read.map_or(0, |p| p.0 as i128)
            + write as i128 * self.cache_write.map_or(0, |p| p.0 as i128)
            + audio as i128 * self.audio_input.map_or(0, |p| p.0 as i128)
            + self.request.0 as i128 * TOKENS_PER_MTOK;
        Parts {
            tokens: plain * self.input.0 as i128 + completion * self.output.0 as i128,
            extras,
            sale: self
                .sale
                .map(|(i, o)| plain * i.0 as i128 + completion * o.0 as i128),
        }
    }

    /// Provider cost (at the service tier's price), rounded up once to a whole nano-USD.
    pub fn cost(&self, t: Tokens) -> Nanos {
        let p = self.parts(t);
        let num = (p.tokens + p.extras).saturating_mul(self.tier_ppm as i128);
        Nanos(clamp_i64(div_ceil(num, TOKENS_PER_MTOK * PPM)))
    }

    /// What the tenant is charged: cost x (1 + markup) (the sale price for the tokens it covers), times
    /// the service tier's and the organisation's multipliers; computed exactly and rounded up once.
    pub fn charge(&self, t: Tokens) -> Nanos {
        let p = self.parts(t);
        let marked = PPM + self.markup.0 as i128;
        let list = match p.sale {
            Some(sale) => sale * PPM + p.extras * marked,
            None => (p.tokens + p.extras) * marked,
        };
        let num = list
            .saturating_mul(self.org_ppm as i128)
            .saturating_mul(self.tier_ppm as i128);
        Nanos(clamp_i64(
            div_ceil(num, TOKENS_PER_MTOK * PPM * PPM * PPM).max(0),
        ))
    }

    /// The most a request with this many prompt and completion tokens can be charged, however much of
    /// the prompt the provider's cache turns out to read or write, or turns out to be audio (the
    /// charge is linear in each part, so its maximum is at one of these corners).
    pub fn charge_bound(&self, prompt: u64, completion: u64) -> Nanos {
        corners(prompt, completion)
            .into_iter()
            .map(|t| self.charge(t))
            .max()
            .unwrap_or(Nanos::ZERO)
    }

    /// The most the provider can bill for so many prompt and completion tokens (the counterpart of
    /// `charge_bound` at cost).
    pub fn cost_bound(&self, prompt: u64, completion: u64) -> Nanos {
        corners(prompt, completion)
            .into_iter()
            .map(|t| self.cost(t))
            .max()
            .unwrap_or(Nanos::ZERO)
    }

    /// The tenant's price per input and output token, as OpenRouter shows them.
    pub fn sale_per_token_usd(&self) -> (String, String) {
        match self.sale {
            Some((i, o)) => (
                Self::per_token_usd(i, Markup(0)),
                Self::per_token_usd(o, Markup(0)),
            ),
            None => (
                Self::per_token_usd(self.input, self.markup),
                Self::per_token_usd(self.output, self.markup),
            ),
        }
    }

    /// The tenant's price per cached token read and written (OpenRouter's `input_cache_read` /
    /// `input_cache_write`), when the endpoint prices them.
    pub fn cache_per_token_usd(&self) -> (Option<String>, Option<String>) {
        let f = |p: Option<MtokPrice>| p.map(|p| Self::per_token_usd(p, self.markup));
        (f(self.cache_read), f(self.cache_write))
    }

    /// The tenant's price per request, exact decimal USD.
    pub fn request_usd(&self) -> String {
        format_scaled(self.request.0 as i128 * (PPM + self.markup.0 as i128), 15)
    }

    /// The tenant's price per million input and output tokens, exact decimal USD.
    pub fn sale_per_mtok_usd(&self) -> (String, String) {
        match self.sale {
            Some((i, o)) => (i.to_usd_string(), o.to_usd_string()),
            None => (
                Self::per_mtok_usd(self.input, self.markup),
                Self::per_mtok_usd(self.output, self.markup),
            ),
        }
    }

    /// The platform's margin on a typical request (one input and one output token weigh as their
    /// prices), in basis points of the sale price: "what share of what tenants pay is kept".
    pub fn margin_bp(&self) -> Option<i64> {
        let cost = self.input.0 as i128 + self.output.0 as i128;
        let sale = match self.sale {
            Some((i, o)) => (i.0 as i128 + o.0 as i128) * PPM,
            None => cost * (PPM + self.markup.0 as i128),
        };
        if sale <= 0 {
            return None;
        }
        Some(((sale - cost * PPM) * 10_000 / sale) as i64)
    }

    /// Sale price per token as OpenRouter shows it: an exact decimal string of USD per token.
    pub fn per_token_usd(price: MtokPrice, markup: Markup) -> String {
        // nanos/Mtok x (1e6 + ppm) / 1e6  -> nanos/Mtok after markup (scaled by 1e6)
        // USD/token = that / 1e6 tokens / 1e9 nanos; keep everything as an integer scaled by 1e21.
        let scaled = price.0 as i128 * (PPM + markup.0 as i128);
        format_scaled(scaled, 21)
    }

    /// Sale price per million tokens after markup, as exact decimal USD.
    pub fn per_mtok_usd(price: MtokPrice, markup: Markup) -> String {
        let scaled = price.0 as i128 * (PPM + markup.0 as i128);
        format_scaled(scaled, 15)
    }
}

/// A prompt all plain, all read from the cache, all written to it, all audio.
fn corners(prompt: u64, completion: u64) -> [Tokens; 4] {
    let all = |cache_read, cache_write, audio| Tokens {
        prompt,
        completion,
        cache_read,
        cache_write,
        audio,
    };
    [
        all(0, 0, 0),
        all(prompt, 0, 0),
        all(0, prompt, 0),
        all(0, 0, prompt),
    ]
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 {
        q + 1
    } else {
        q
    }
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("expected a decimal number like \"12.50\", got {0:?}")]
    NotDecimal(String),
    #[error("{0:?} has more than {1} decimal places")]
    TooPrecise(String, u32),
    #[error("{0:?} must not be negative")]
    Negative(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses a non-negative decimal into an integer scaled by 10^places.
fn parse_decimal(s: &str, places: u32) -> Result<i64, MoneyError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(MoneyError::Negative(s.to_string()));
    }
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || !digits(int)
        || !digits(frac)
        || (t.contains('.') && frac.is_empty())
    {
        return Err(MoneyError::NotDecimal(s.to_string()));
    }
    if frac.len() as u32 > places {
        return Err(MoneyError::TooPrecise(s.to_string(), places));
    }
    let scale = 10i128.pow(places);
    let int_v: i128 = if int.is_empty() {
        0
    } else {
        int.parse::<i128>()
            .map_err(|_| MoneyError::TooLarge(s.to_string()))?
    };
    let frac_v: i128 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i128>()
            .map_err(|_| MoneyError::NotDecimal(s.to_string()))?
            * 10i128.pow(places - frac.len() as u32)
    };
    let v = int_v
        .checked_mul(scale)
        .and_then(|x| x.checked_add(frac_v))
        .ok_or_else(|| MoneyError::TooLarge(s.to_string()))?;
    i64::try_from(v).map_err(|_| MoneyError::TooLarge(s.to_string()))
}

/// Formats an integer scaled by 10^places as an exact decimal, trailing zeros trimmed.
fn format_scaled(v: i128, places: u32) -> String {
    let neg = v < 0;
    let a = v.unsigned_abs();
    let scale = 10u128.pow(places);
    let int = a / scale;
    let frac = a % scale;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&int.to_string());
    if frac != 0 {
        let f = format!("{:0width$}", frac, width = places as usize);
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_usd_exactly() {
        assert_eq!(Nanos(25_000_000_000).dollars(), "$25.00");
        assert_eq!(Nanos(21_100_000_000).dollars(), "$21.10");
        assert_eq!(Nanos(1_000).dollars(), "$0.000001");
        assert_eq!(Nanos(-3_500_000_000).dollars(), "-$3.50");
        assert_eq!(Nanos::parse_usd("12.50"), Ok(Nanos(12_500_000_000)));
        assert_eq!(Nanos::parse_usd("0.000000001"), Ok(Nanos(1)));
        assert_eq!(Nanos::parse_usd(".5"), Ok(Nanos(500_000_000)));
        assert_eq!(Nanos(12_500_000_000).to_usd_string(), "12.5");
        assert_eq!(Nanos(-1).to_usd_string(), "-0.000000001");
        assert_eq!(Nanos(0).to_usd_string(), "0");
        for bad in [
            "",
            ".",
            "1.",
            "abc",
            "1e5",
            "1.2.3",
            " 1 2",
            "-1",
            "0.0000000001",
            "99999999999999999999",
        ] {
            assert!(Nanos::parse_usd(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn charge_rounds_up_once() {
        let p = Pricing::simple(
            MtokPrice(500_000_000),
            MtokPrice(1_500_000_000),
            Markup(100_000),
        );
        // 1 prompt token at $0.50/M = 500 nanos; x1.1 = 550
        assert_eq!(p.charge(Tokens::new(1, 0)), Nanos(550));
        assert_eq!(p.cost(Tokens::new(1, 0)), Nanos(500));
        // 3 tokens at $0.000001/M (1 nano per Mtok) = 3e-6 nanos -> rounds up to 1 once, not per token
        let tiny = Pricing::simple(MtokPrice(1), MtokPrice(1), Markup(0));
        assert_eq!(tiny.charge(Tokens::new(3, 3)), Nanos(1));
        // 1000 prompt + 500 completion: 500_000 + 750_000 = 1_250_000 nanos; x1.1 = 1_375_000
        assert_eq!(p.charge(Tokens::new(1000, 500)), Nanos(1_375_000));
    }

    #[test]
    fn cache_request_sale_and_org_prices_combine_exactly() {
        let m = |usd: &str| MtokPrice::parse_usd(usd).expect("valid");
        let p = Pricing {
            cache_read: Some(m("0.3")),
            cache_write: Some(m("3.75")),
            request: Nanos(2_000),
            ..Pricing::simple(m("3"), m("15"), Markup(100_000))
        };
        let t = Tokens {
            prompt: 10_000,
            completion: 1_000,
            cache_read: 6_000,
            cache_write: 2_000,
            audio: 0,
        };
        // cost: 2000 x 3 + 6000 x 0.3 + 2000 x 3.75 + 1000 x 15 (USD/M) = 6000+1800+7500+15000 = 30300 e-6 USD
        //       = 30_300_000 nanos (+ 2000 per request)
        assert_eq!(p.cost(t), Nanos(30_302_000));
        assert_eq!(p.charge(t), Nanos(33_332_200));
        // A cache without its own price is read at the input price.
        let plain = Pricing::simple(m("3"), m("15"), Markup(0));
        assert_eq!(plain.cost(t), plain.cost(Tokens::new(10_000, 1_000)));
        // The sale price covers input and output; cached tokens keep cost x markup.
        let sale = Pricing {
            sale: Some((m("5"), m("20"))),
            ..p
        };
        // 2000 x 5 + 1000 x 20 = 30_000_000; extras (1800+7500) e-6 USD + 2000 nanos = 9_302_000 x 1.1
        assert_eq!(sale.charge(t), Nanos(30_000_000 + 10_232_200));
        // An organisation at 90 %: one rounding, on the whole.
        let org = Pricing {
            org_ppm: 900_000,
            ..p
        };
        assert_eq!(org.charge(t), Nanos(29_998_980));
        // The bound covers a prompt written to the cache (dearer than input) as well as read from it.
        assert_eq!(
            p.charge_bound(1_000_000, 0),
            p.charge(Tokens {
                prompt: 1_000_000,
                completion: 0,
                cache_read: 0,
                cache_write: 1_000_000,
                audio: 0,
            })
        );
    }

    #[test]
    fn audio_and_service_tiers_are_priced() {
        let m = |usd: &str| MtokPrice::parse_usd(usd).expect("valid");
        let p = Pricing {
            audio_input: Some(m("40")),
            ..Pricing::simple(m("2.5"), m("10"), Markup(0))
        };
        let t = Tokens {
            audio: 1_000,
            ..Tokens::new(3_000, 100)
        };
        // 2000 x 2.5 + 1000 x 40 + 100 x 10 = 5000 + 40000 + 1000 = 46_000 e-6 USD
        assert_eq!(p.cost(t), Nanos(46_000_000));
        // Audio above the prompt counts as much as the prompt, no more.
        let over = Tokens {
            audio: 9_999,
            ..Tokens::new(1_000, 0)
        };
        assert_eq!(p.cost(over), Nanos(40_000_000));
        // The bound takes the whole prompt as audio when audio is dearest.
        assert_eq!(p.charge_bound(1_000, 0), Nanos(40_000_000));
        // Flex at half price halves cost and charge alike, rounded once.
        let flex = Pricing {
            tier_ppm: 500_000,
            markup: Markup(100_000),
            ..p
        };
        assert_eq!(flex.cost(t), Nanos(23_000_000));
        assert_eq!(flex.charge(t), Nanos(25_300_000));
        let odd = Pricing {
            tier_ppm: 333_333,
            ..Pricing::simple(MtokPrice(1), MtokPrice(1), Markup(0))
        };
        assert_eq!(odd.charge(Tokens::new(3, 0)), Nanos(1));
    }

    #[test]
    fn per_token_price_strings_are_exact() {
        let m = Markup::parse_percent("10").expect("valid");
        assert_eq!(
            Pricing::per_token_usd(MtokPrice::parse_usd("0.50").expect("valid"), m),
            "0.00000055"
        );
        assert_eq!(Pricing::per_token_usd(MtokPrice(0), m), "0");
        assert_eq!(
            Pricing::per_mtok_usd(MtokPrice::parse_usd("1.50").expect("valid"), m),
            "1.65"
        );
        assert_eq!(Markup::parse_percent("5.5"), Ok(Markup(55_000)));
    }

    #[test]
    fn json_number_text_is_the_decimal() {
        for n in [
            1i64,
            550,
            1_375_000,
            12_500_000_000,
            123_456_789_012,
            999_999_999,
        ] {
            let text = Nanos(n).usd_json().to_string();
            let back: f64 = text.parse().expect("number");
            assert_eq!(
                Nanos::parse_usd(&format!("{back:.9}")),
                Ok(Nanos(n)),
                "{text}"
            );
        }
    }
}
