//! Encryption of secrets at rest (provider credentials): AES-256-GCM with a random nonce per value,
//! stored as `v2:` base64(nonce || ciphertext). Each value is bound to where it belongs (its row's
//! context is the associated data): a ciphertext copied to another provider's row does not decrypt. Values
//! written before binding (plain base64, no `v2:`) are read only by [`Cipher::decrypt_unbound`], to bind
//! them at start. The key comes from config or from a key file made on first start.

use aes_gcm::{
    aead::{Aead, Payload},
    Aes256Gcm, KeyInit, Nonce,
};
use anyhow::{bail, Context};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use rand::RngCore;

use crate::config::Config;

#[derive(Clone)]
pub struct Cipher(Aes256Gcm);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    pub fn from_key_b64(b64: &str) -> anyhow::Result<Cipher> {
        let key = B64
            .decode(b64.trim())
            .context("SWITCHYARD_SECRET_KEY must be base64")?;
        if key.len() != 32 {
            bail!("SWITCHYARD_SECRET_KEY must be 32 bytes of base64 (got {} bytes); make one with `openssl rand -base64 32`", key.len());
        }
        Ok(Cipher(Aes256Gcm::new_from_slice(&key).context("AES key")?))
    }

    /// The configured key, or the key file (created with a fresh random key when missing).
    pub fn from_config(cfg: &Config) -> anyhow::Result<Cipher> {
        if let Some(k) = &cfg.secret_key {
            return Self::from_key_b64(k.expose());
        }
        let path = &cfg.secret_key_file;
        if let Ok(text) = std::fs::read_to_string(path) {
            return Self::from_key_b64(&text)
                .with_context(|| format!("reading key file {}", path.display()));
        }
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_private(path, &B64.encode(key))
            .with_context(|| format!("writing key file {}", path.display()))?;
        tracing::warn!(path = %path.display(), "created a new secret key file; back it up, or set SWITCHYARD_SECRET_KEY in production");
        Ok(Cipher(Aes256Gcm::new_from_slice(&key).context("AES key")?))
    }

    /// Encrypts `plain` for `context` (where it will be stored, e.g. `provider_credentials:<provider id>`).
    pub fn encrypt(&self, plain: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption cannot fail for in-memory data");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{BOUND}{}", B64.encode(out))
    }

    /// Decrypts a value stored for `context`; a value moved from elsewhere, or not bound, is refused.
    pub fn decrypt(&self, stored: &str, context: &str) -> anyhow::Result<String> {
        let Some(b64) = stored.strip_prefix(BOUND) else {
            bail!("stored secret is not bound to its row (written by an older version; restart to bind it)");
        };
        self.open(b64, context.as_bytes())
    }

    /// Whether a stored value predates binding.
    pub fn is_unbound(stored: &str) -> bool {
        !stored.starts_with(BOUND)
    }

    /// Decrypts a value written before binding (only to bind it: see `catalog::bind_credentials`).
    pub fn decrypt_unbound(&self, stored: &str) -> anyhow::Result<String> {
        self.open(stored, b"")
    }

    fn open(&self, b64: &str, aad: &[u8]) -> anyhow::Result<String> {
        let raw = B64.decode(b64).context("stored secret is not base64")?;
        if raw.len() < 12 {
            bail!("stored secret is too short");
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| {
                anyhow::anyhow!("cannot decrypt a stored secret: was SWITCHYARD_SECRET_KEY changed, or the value moved from another row?")
            })?;
        String::from_utf8(plain).context("stored secret is not UTF-8")
    }
}

/// The prefix of values bound to their context.
const BOUND: &str = "v2:";

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_wrong_key() {
        let a = Cipher::from_key_b64(&B64.encode([7u8; 32])).expect("key");
        let b = Cipher::from_key_b64(&B64.encode([8u8; 32])).expect("key");
        let enc = a.encrypt("sk-upstream-secret", "p:1");
        assert!(!enc.contains("sk-upstream"));
        assert_ne!(
            enc,
            a.encrypt("sk-upstream-secret", "p:1"),
            "nonce must differ"
        );
        assert_eq!(
            a.decrypt(&enc, "p:1").expect("decrypt"),
            "sk-upstream-secret"
        );
        assert!(b.decrypt(&enc, "p:1").is_err());
        assert!(Cipher::from_key_b64("c2hvcnQ=").is_err());
    }

    #[test]
    fn values_are_bound_to_their_context() {
        let a = Cipher::from_key_b64(&B64.encode([7u8; 32])).expect("key");
        let enc = a.encrypt("sk-upstream-secret", "provider_credentials:A");
        assert!(a.decrypt(&enc, "provider_credentials:B").is_err(), "moved");
        // An unbound value (as written before binding) is read only on purpose.
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct =
            a.0.encrypt(Nonce::from_slice(&nonce), b"old-secret".as_slice())
                .expect("enc");
        let legacy = B64.encode([nonce.to_vec(), ct].concat());
        assert!(Cipher::is_unbound(&legacy) && !Cipher::is_unbound(&enc));
        assert!(a.decrypt(&legacy, "").is_err());
        assert_eq!(a.decrypt_unbound(&legacy).expect("legacy"), "old-secret");
        assert!(a.decrypt_unbound(&enc).is_err());
    }
}
