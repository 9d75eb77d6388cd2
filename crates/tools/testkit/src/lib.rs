//! DEVELOPMENT keys and the one order flow, shared by the simulator, `bulwark up`'s devnet, the
//! benches and the tests, so that every tool derives the same key for the same account and
//! trades the same way ([`flow`]); and [`swtpm`], a private software TPM for the TPM tests,
//! `up --tpm` and `bench attest`.
//!
//! Nothing here is secret: every key is derived from public inputs. Production never uses it;
//! the core and runtime crates take it only as a dev-dependency.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod flow;
pub mod swtpm;

pub use flow::{flow_order, signed_flow_order};

use ed25519_dalek::SigningKey;

/// Domain of the DEVELOPMENT client-key derivation. Changing it changes every dev venue's keys.
pub const CLIENT_KEY_DOMAIN: &[u8] = b"bulwark/dev/client-key/v1";

/// The DEVELOPMENT signing key of `account` in a venue seeded with `seed` (`bulwark up --seed`,
/// the simulator, the benches): BLAKE3 of the domain, the seed and the account.
pub fn client_key(seed: u64, account: u64) -> SigningKey {
    let mut hasher = blake3::Hasher::new();
    hasher.update(CLIENT_KEY_DOMAIN);
    hasher.update(&seed.to_le_bytes());
    hasher.update(&account.to_le_bytes());
    SigningKey::from_bytes(hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_seed_and_account() {
        assert_ne!(client_key(1, 1).to_bytes(), client_key(2, 1).to_bytes());
        assert_ne!(client_key(1, 1).to_bytes(), client_key(1, 2).to_bytes());
        assert_eq!(client_key(1, 1).to_bytes(), client_key(1, 1).to_bytes());
    }
}
