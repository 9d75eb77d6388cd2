//! The sealed envelope a node's secrets (its node key, its DKG share) are stored in:
//! `MAGIC | nonce [24] | XChaCha20-Poly1305 ciphertext and tag`, with the secret's label as
//! associated data, so a file sealed for one label does not open as another.
//!
//! Pure: the caller reads and writes the bytes and supplies the nonce.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// Leading bytes of a sealed envelope.
pub const MAGIC: &[u8] = b"bulwark/keystore/v1\n";
/// Bytes of the nonce that follows the magic.
pub const NONCE_BYTES: usize = 24;

/// Why an envelope does not open. Opaque on purpose: it says nothing about the key or the
/// plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The bytes do not start with [`MAGIC`] (not an envelope).
    #[error("not a sealed envelope (no magic)")]
    NotSealed,
    /// Too short, damaged, sealed under another key, or for another label.
    #[error("does not open with this key and label (damaged or foreign)")]
    Open,
    /// The cipher refused to encrypt (cannot happen for in-memory sizes).
    #[error("encryption failed")]
    Seal,
}

/// A 32-byte envelope key. The cipher holding it zeroizes it on drop.
pub struct SealKey {
    cipher: XChaCha20Poly1305,
}

impl SealKey {
    /// The envelope key `key`.
    pub fn new(key: [u8; 32]) -> SealKey {
        SealKey {
            cipher: XChaCha20Poly1305::new(&Key::from(key)),
        }
    }

    /// Seals `secret` for `label` under a fresh `nonce` (never reuse one under the same key).
    pub fn seal(
        &self,
        nonce: [u8; NONCE_BYTES],
        label: &str,
        secret: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: label.as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens an envelope sealed for `label`.
    pub fn open(&self, label: &str, bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(SealError::NotSealed)?;
        if rest.len() < NONCE_BYTES {
            return Err(SealError::Open);
        }
        let (nonce, sealed) = rest.split_at(NONCE_BYTES);
        let nonce = <[u8; NONCE_BYTES]>::try_from(nonce).map_err(|_| SealError::Open)?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: label.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn opens_its_own_and_refuses_labels_keys_and_damage() {
        let key = SealKey::new([7; 32]);
        let sealed = key.seal([1; NONCE_BYTES], "dkg.share", b"share").unwrap();
        assert!(sealed.starts_with(MAGIC));
        assert!(!sealed.windows(5).any(|w| w == b"share"));
        assert_eq!(key.open("dkg.share", &sealed).unwrap(), b"share");
        assert_eq!(key.open("node.key", &sealed), Err(SealError::Open));
        assert_eq!(
            SealKey::new([8; 32]).open("dkg.share", &sealed),
            Err(SealError::Open)
        );
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(key.open("dkg.share", &damaged), Err(SealError::Open));
        assert_eq!(key.open("dkg.share", b"plain"), Err(SealError::NotSealed));
        assert_eq!(
            key.open("dkg.share", &sealed[..MAGIC.len() + 3]),
            Err(SealError::Open)
        );
    }
}
