//! Freshness: single-use verifier nonces with a short time-to-live, and the qualifying data that binds a
//! nonce to the node's TLS key and the committee epoch.
//!
//! The [`NonceBook`] never reads a clock or draws randomness: the caller passes the time and 32 random
//! bytes in, so the book runs unchanged under a simulated clock.

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;

/// Namespace hashed into every qualifying data value. Changing it is a breaking change.
pub const QUALIFYING_DATA_NAMESPACE: &[u8] = b"bulwark/attest/qualifying-data/v1";

/// Default nonce time-to-live.
pub const NONCE_TTL_MS_DEFAULT: u64 = 30_000;
/// Default number of nonces a book tracks at once (outstanding plus recently used).
pub const NONCE_CAPACITY_DEFAULT: usize = 4_096;

/// A 32-byte verifier nonce.
pub type Nonce = [u8; 32];

/// Errors from the nonce book.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NonceError {
    /// The nonce was never issued by this verifier, or it expired so long ago that it was forgotten.
    #[error("nonce {nonce} was not issued by this verifier (or is long expired)")]
    Unknown {
        /// Hex of the nonce.
        nonce: String,
    },
    /// The nonce was already used once: the evidence is a replay.
    #[error("nonce {nonce} was already used: evidence replayed")]
    Replayed {
        /// Hex of the nonce.
        nonce: String,
    },
    /// The nonce's time-to-live passed before the evidence arrived.
    #[error("nonce {nonce} expired at {expires_at_ms} ms, evidence arrived at {now_ms} ms")]
    Expired {
        /// Hex of the nonce.
        nonce: String,
        /// End of validity, Unix milliseconds.
        expires_at_ms: u64,
        /// Arrival time, Unix milliseconds.
        now_ms: u64,
    },
    /// The book is full of live nonces; the caller is issuing faster than evidence arrives.
    #[error("nonce book full ({capacity} live nonces); retry after some expire")]
    Full {
        /// Capacity of the book.
        capacity: usize,
    },
    /// The caller supplied the same random bytes twice: its randomness source is broken.
    #[error("random bytes repeated an outstanding nonce: the randomness source is broken")]
    RepeatedRandomness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Issued,
    Used,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_at_ms: u64,
    state: State,
}

/// Outstanding and recently used nonces. Used nonces are remembered until their time-to-live ends, so a
/// replay inside that window is named as a replay; after it, it is refused as unknown.
#[derive(Debug)]
pub struct NonceBook {
    ttl_ms: u64,
    capacity: usize,
    entries: HashMap<Nonce, Entry>,
}

impl NonceBook {
    /// A book whose nonces live `ttl_ms` and which tracks at most `capacity` nonces.
    ///
    /// # Panics
    /// If `ttl_ms` or `capacity` is zero: a configuration error, not an operating one.
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        assert!(ttl_ms > 0, "nonce ttl must be positive");
        assert!(capacity > 0, "nonce book capacity must be positive");
        Self {
            ttl_ms,
            capacity,
            entries: HashMap::new(),
        }
    }

    /// Issues `random` (32 bytes from a CSPRNG, supplied by the caller) as a nonce valid until
    /// `now_ms + ttl`.
    pub fn issue(&mut self, now_ms: u64, random: [u8; 32]) -> Result<Nonce, NonceError> {
        if self.entries.len() >= self.capacity {
            self.prune(now_ms);
        }
        if self.entries.len() >= self.capacity {
            return Err(NonceError::Full {
                capacity: self.capacity,
            });
        }
        if self.entries.contains_key(&random) {
            return Err(NonceError::RepeatedRandomness);
        }
        self.entries.insert(
            random,
            Entry {
                expires_at_ms: now_ms.saturating_add(self.ttl_ms),
                state: State::Issued,
            },
        );
        Ok(random)
    }

    /// Marks `nonce` used. Succeeds once per issued nonce, and only before it expires.
    pub fn consume(&mut self, nonce: &Nonce, now_ms: u64) -> Result<(), NonceError> {
        let name = || hex::encode(nonce);
        let entry = self
            .entries
            .get_mut(nonce)
            .ok_or_else(|| NonceError::Unknown { nonce: name() })?;
        match entry.state {
            State::Used => Err(NonceError::Replayed { nonce: name() }),
            State::Issued if now_ms >= entry.expires_at_ms => Err(NonceError::Expired {
                nonce: name(),
                expires_at_ms: entry.expires_at_ms,
                now_ms,
            }),
            State::Issued => {
                entry.state = State::Used;
                Ok(())
            }
        }
    }

    /// Forgets nonces whose time-to-live ended.
    pub fn prune(&mut self, now_ms: u64) {
        self.entries.retain(|_, entry| entry.expires_at_ms > now_ms);
    }

    /// Nonces currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The TPM quote's qualifying data (and the dev attestor's `report_data`):
/// `SHA-256(QUALIFYING_DATA_NAMESPACE ‖ nonce ‖ SHA-256(node TLS public key) ‖ epoch as u64 big-endian)`.
///
/// Binding the TLS key hash means evidence obtained for one key cannot be presented on a connection
/// authenticated with another; binding the epoch means it cannot be carried into a later committee.
pub fn qualifying_data(nonce: &Nonce, node_key_sha256: &[u8; 32], epoch: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(QUALIFYING_DATA_NAMESPACE);
    hasher.update(nonce);
    hasher.update(node_key_sha256);
    hasher.update(epoch.to_be_bytes());
    hasher.finalize().into()
}

/// SHA-256 of a node's TLS public key (its DER SubjectPublicKeyInfo or raw key bytes, as the caller's
/// TLS layer defines it; both sides must hash the same bytes).
pub fn node_key_hash(tls_public_key: &[u8]) -> [u8; 32] {
    Sha256::digest(tls_public_key).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_with_ttl() {
        let mut book = NonceBook::new(100, 4);
        let n = book.issue(1_000, [1; 32]).expect("issued");
        assert_eq!(book.consume(&n, 1_050), Ok(()));
        assert!(matches!(
            book.consume(&n, 1_060),
            Err(NonceError::Replayed { .. })
        ));
        let m = book.issue(1_000, [2; 32]).expect("issued");
        assert!(matches!(
            book.consume(&m, 1_100),
            Err(NonceError::Expired { .. })
        ));
        assert!(matches!(
            book.consume(&[3; 32], 1_000),
            Err(NonceError::Unknown { .. })
        ));
        assert_eq!(
            book.issue(1_000, [1; 32]),
            Err(NonceError::RepeatedRandomness)
        );
    }

    #[test]
    fn bounded_and_pruned() {
        let mut book = NonceBook::new(100, 2);
        book.issue(0, [1; 32]).expect("issued");
        book.issue(0, [2; 32]).expect("issued");
        assert_eq!(
            book.issue(50, [3; 32]),
            Err(NonceError::Full { capacity: 2 })
        );
        assert!(book.issue(100, [3; 32]).is_ok(), "expired ones pruned");
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn qualifying_data_binds_every_input() {
        let base = qualifying_data(&[1; 32], &[2; 32], 3);
        assert_ne!(base, qualifying_data(&[9; 32], &[2; 32], 3));
        assert_ne!(base, qualifying_data(&[1; 32], &[9; 32], 3));
        assert_ne!(base, qualifying_data(&[1; 32], &[2; 32], 4));
    }
}
