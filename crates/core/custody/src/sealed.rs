//! The sealed envelope a node's secrets (its node key, its DKG share) are stored in:
//! `MAGIC | nonce [24] | XChaCha20-Poly1305 ciphertext and tag`. The associated data is a
//! [`Binding`]: the secret's role and the identity it belongs to (the committee, and for a share
//! the member), so a file sealed for one role, one committee or one member does not open as
//! another, even under the same key.
//!
//! Version 1 envelopes (the role's label alone as associated data) and plain files are not
//! opened by [`SealKey::open`]; [`SealKey::open_v1`] reads a version 1 envelope for an explicit
//! migration only.
//!
//! Pure: the caller reads and writes the bytes and supplies the nonce.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

/// Leading bytes of a sealed envelope (version 2: bound to role and identity).
pub const MAGIC: &[u8] = b"bulwark/keystore/v2\n";
/// Leading bytes of a version 1 envelope (bound to a label only), read for migration.
pub const MAGIC_V1: &[u8] = b"bulwark/keystore/v1\n";
/// Bytes of the nonce that follows the magic.
pub const NONCE_BYTES: usize = 24;
/// Longest role name.
pub const ROLE_MAX: usize = 64;

/// Why an envelope does not open. Opaque on purpose: it says nothing about the key or the
/// plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The bytes start with neither magic (a plain file, not an envelope).
    #[error("not a sealed envelope (no magic)")]
    NotSealed,
    /// A version 1 envelope: bound to a label only, readable for migration only.
    #[error("a version 1 envelope (bound to a label only); migrate it")]
    Legacy,
    /// Too short, damaged, sealed under another key, or for another role or identity.
    #[error("does not open with this key, role and identity (damaged or foreign)")]
    Open,
    /// The cipher refused to encrypt, or the role is empty or too long.
    #[error("encryption failed")]
    Seal,
}

/// What a sealed secret is bound to: its role (`node.key`, `dkg.share`) and the identity it
/// belongs to. Both go into the associated data, length-prefixed so that no two bindings
/// encode alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The secret's role (1 to [`ROLE_MAX`] bytes).
    pub role: &'a str,
    /// Who the secret belongs to, in the caller's encoding.
    pub identity: &'a [u8],
}

impl Binding<'_> {
    fn associated_data(&self) -> Result<Vec<u8>, SealError> {
        if self.role.is_empty() || self.role.len() > ROLE_MAX {
            return Err(SealError::Seal);
        }
        let mut aad = Vec::with_capacity(MAGIC.len() + 1 + self.role.len() + self.identity.len());
        aad.extend_from_slice(MAGIC);
        aad.push(self.role.len() as u8);
        aad.extend_from_slice(self.role.as_bytes());
        aad.extend_from_slice(self.identity);
        Ok(aad)
    }
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

    /// Seals `secret` for `binding` under a fresh `nonce` (never reuse one under the same key).
    pub fn seal(
        &self,
        nonce: [u8; NONCE_BYTES],
        binding: &Binding<'_>,
        secret: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        let aad = binding.associated_data()?;
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens an envelope sealed for `binding`. A version 1 envelope is [`SealError::Legacy`]
    /// and a plain file [`SealError::NotSealed`]: neither is returned.
    pub fn open(&self, binding: &Binding<'_>, bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Err(if bytes.starts_with(MAGIC_V1) {
                SealError::Legacy
            } else {
                SealError::NotSealed
            });
        };
        self.decrypt(&binding.associated_data()?, rest)
    }

    /// Opens a version 1 envelope sealed for `label` (for an explicit migration only).
    pub fn open_v1(&self, label: &str, bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = bytes.strip_prefix(MAGIC_V1).ok_or(SealError::NotSealed)?;
        self.decrypt(label.as_bytes(), rest)
    }

    fn decrypt(&self, aad: &[u8], rest: &[u8]) -> Result<Vec<u8>, SealError> {
        if rest.len() < NONCE_BYTES {
            return Err(SealError::Open);
        }
        let (nonce, sealed) = rest.split_at(NONCE_BYTES);
        let nonce = <[u8; NONCE_BYTES]>::try_from(nonce).map_err(|_| SealError::Open)?;
        self.cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad })
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SHARE: Binding<'static> = Binding {
        role: "dkg.share",
        identity: b"committee-a/member-1",
    };

    #[test]
    fn opens_its_own_and_refuses_roles_identities_keys_and_damage() {
        let key = SealKey::new([7; 32]);
        let sealed = key.seal([1; NONCE_BYTES], &SHARE, b"share").unwrap();
        assert!(sealed.starts_with(MAGIC));
        assert!(!sealed.windows(5).any(|w| w == b"share"));
        assert_eq!(key.open(&SHARE, &sealed).unwrap(), b"share");
        let other_role = Binding {
            role: "node.key",
            ..SHARE
        };
        assert_eq!(key.open(&other_role, &sealed), Err(SealError::Open));
        for identity in [&b"committee-b/member-1"[..], b"committee-a/member-2", b""] {
            let other = Binding { identity, ..SHARE };
            assert_eq!(key.open(&other, &sealed), Err(SealError::Open));
        }
        // Role and identity are length-prefixed: moving bytes between them changes the binding.
        let shifted = Binding {
            role: "dkg.sharec",
            identity: b"ommittee-a/member-1",
        };
        assert_eq!(key.open(&shifted, &sealed), Err(SealError::Open));
        assert_eq!(
            SealKey::new([8; 32]).open(&SHARE, &sealed),
            Err(SealError::Open)
        );
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(key.open(&SHARE, &damaged), Err(SealError::Open));
        assert_eq!(key.open(&SHARE, b"plain"), Err(SealError::NotSealed));
        assert_eq!(
            key.open(&SHARE, &sealed[..MAGIC.len() + 3]),
            Err(SealError::Open)
        );
        let empty_role = Binding { role: "", ..SHARE };
        assert_eq!(
            key.seal([2; NONCE_BYTES], &empty_role, b"x"),
            Err(SealError::Seal)
        );
    }

    #[test]
    fn a_version_1_envelope_opens_only_for_migration() {
        // A version 1 envelope, as the previous release wrote it: the label as associated data.
        let key = SealKey::new([7; 32]);
        let cipher = XChaCha20Poly1305::new(&Key::from([7; 32]));
        let nonce = [3; NONCE_BYTES];
        let body = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: b"old share",
                    aad: b"dkg.share",
                },
            )
            .unwrap();
        let v1 = [MAGIC_V1, &nonce, &body].concat();
        assert_eq!(key.open(&SHARE, &v1), Err(SealError::Legacy));
        assert_eq!(key.open_v1("dkg.share", &v1).unwrap(), b"old share");
        assert_eq!(key.open_v1("node.key", &v1), Err(SealError::Open));
        assert_eq!(
            key.open_v1("dkg.share", b"plain"),
            Err(SealError::NotSealed)
        );
    }
}
