//! `Stripe-Signature` headers: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.payload">[,v1=…][,v0=…]`.
//! Verification accepts any `v1` signature made with any configured secret (two during a rotation),
//! compares in constant time and refuses timestamps outside the tolerance. Signing is for the fake.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's default tolerance: a signed payload older (or newer) than this is refused.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("missing or malformed Stripe-Signature header")]
    Malformed,
    #[error("the signature's timestamp is outside the {TOLERANCE_SECS} s tolerance")]
    Stale,
    #[error("no v1 signature matches a configured webhook secret")]
    Mismatch,
    #[error("no webhook secret is configured (SWITCHYARD_STRIPE_WEBHOOK_SECRET)")]
    NoSecret,
}

fn mac(secret: &str, t: i64, payload: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    m
}

/// Checks a header against the raw body.
pub fn verify(
    payload: &[u8],
    header: &str,
    secrets: &[String],
    now_secs: i64,
) -> Result<(), SigError> {
    if secrets.is_empty() {
        return Err(SigError::NoSecret);
    }
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SigError::Malformed)?;
        match k {
            "t" => t = Some(v.parse::<i64>().map_err(|_| SigError::Malformed)?),
            "v1" => v1.push(hex::decode(v).map_err(|_| SigError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SigError::Malformed)?;
    if v1.is_empty() {
        return Err(SigError::Malformed);
    }
    // Checked: `t` comes from outside and may be anything an i64 holds.
    if now_secs
        .checked_sub(t)
        .and_then(i64::checked_abs)
        .is_none_or(|d| d > TOLERANCE_SECS)
    {
        return Err(SigError::Stale);
    }
    for secret in secrets {
        for sig in &v1 {
            // verify_slice compares in constant time.
            if mac(secret, t, payload).verify_slice(sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SigError::Mismatch)
}

/// The header Stripe would send for this payload at time `t`.
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let sig = hex::encode(mac(secret, t, payload).finalize().into_bytes());
    format!("t={t},v1={sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_signed_payload_verifies_and_a_changed_one_does_not() {
        let body = br#"{"id":"evt_1"}"#;
        let h = sign(body, "whsec_a", NOW);
        assert_eq!(verify(body, &h, &secrets(&["whsec_a"]), NOW), Ok(()));
        assert_eq!(
            verify(br#"{"id":"evt_2"}"#, &h, &secrets(&["whsec_a"]), NOW),
            Err(SigError::Mismatch)
        );
        assert_eq!(
            verify(body, &h, &secrets(&["whsec_b"]), NOW),
            Err(SigError::Mismatch)
        );
    }

    #[test]
    fn every_v1_and_every_secret_is_tried() {
        let body = b"{}";
        let good = sign(body, "whsec_new", NOW);
        let sig = good.split_once(",v1=").expect("v1").1;
        // A header with a stale signature first, the good one second, and a v0 Stripe may add.
        let h = format!("t={NOW},v1={},v1={sig},v0=abc", "00".repeat(32));
        assert_eq!(
            verify(body, &h, &secrets(&["whsec_old", "whsec_new"]), NOW),
            Ok(())
        );
    }

    #[test]
    fn stale_malformed_and_unconfigured_are_refused() {
        let body = b"{}";
        let h = sign(body, "s", NOW - TOLERANCE_SECS - 1);
        assert_eq!(
            verify(body, &h, &secrets(&["s"]), NOW),
            Err(SigError::Stale)
        );
        let h = sign(body, "s", NOW + TOLERANCE_SECS + 1);
        assert_eq!(
            verify(body, &h, &secrets(&["s"]), NOW),
            Err(SigError::Stale)
        );
        // Timestamps at the ends of i64 are stale, not an overflow.
        for t in [i64::MIN, i64::MAX, -1] {
            let h = format!("t={t},v1={}", "00".repeat(32));
            assert_eq!(
                verify(body, &h, &secrets(&["s"]), NOW),
                Err(SigError::Stale),
                "{t}"
            );
        }
        for bad in [
            "",
            "t=abc,v1=00",
            "v1=00",
            &format!("t={NOW}"),
            &format!("t={NOW},v1=zz"),
        ] {
            assert_eq!(
                verify(body, bad, &secrets(&["s"]), NOW),
                Err(SigError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(body, &sign(body, "s", NOW), &[], NOW),
            Err(SigError::NoSecret)
        );
    }
}
