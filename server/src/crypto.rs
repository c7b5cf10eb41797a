//! Encryption of secrets at rest (provider credentials): AES-256-GCM with a random nonce per value,
//! stored as base64(nonce || ciphertext). The key comes from config or from a key file made on first start.

use aes_gcm::{aead::Aead, Aes256Gcm, KeyInit, Nonce};
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

    pub fn encrypt(&self, plain: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .0
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .expect("AES-GCM encryption cannot fail for in-memory data");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    pub fn decrypt(&self, stored: &str) -> anyhow::Result<String> {
        let raw = B64.decode(stored).context("stored secret is not base64")?;
        if raw.len() < 12 {
            bail!("stored secret is too short");
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = self.0.decrypt(Nonce::from_slice(nonce), ct).map_err(|_| {
            anyhow::anyhow!("cannot decrypt a stored secret: was SWITCHYARD_SECRET_KEY changed?")
        })?;
        String::from_utf8(plain).context("stored secret is not UTF-8")
    }
}

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
        let enc = a.encrypt("sk-upstream-secret");
        assert!(!enc.contains("sk-upstream"));
        assert_ne!(enc, a.encrypt("sk-upstream-secret"), "nonce must differ");
        assert_eq!(a.decrypt(&enc).expect("decrypt"), "sk-upstream-secret");
        assert!(b.decrypt(&enc).is_err());
        assert!(Cipher::from_key_b64("c2hvcnQ=").is_err());
    }
}
