//! DEVELOPMENT keys and the one order flow, shared by the simulator, `bulwark up`'s devnet, the
//! benches and the tests, so that every tool derives the same key for the same account and
//! trades the same way ([`flow`]); [`swtpm`], a private software TPM for the TPM tests,
//! `up --tpm` and `bench attest`; [`extension_sequences`], what a launch forger tries; and
//! [`crl`], certificate revocation lists signed by test keys, for the SEV-SNP revocation tests;
//! [`softhsm`], a throw-away SoftHSM2 token for the PKCS#11 tests; [`metrics`], an operator
//! port scraped and parsed by the reference OpenMetrics parser; [`browser`], headless Chromium
//! for the console page.
//!
//! Nothing here is secret: every key is derived from public inputs. Production never uses it;
//! the core and runtime crates take it only as a dev-dependency.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod browser;
pub mod crl;
pub mod fix;
pub mod flow;
pub mod metrics;
pub mod python;
pub mod softhsm;
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

/// Every sequence of one to `longest` of `digests` (repeats allowed), each prefix before its
/// extensions: what an attacker who knows the honest launch digests can extend a PCR with
/// (the swtpm forgery test and the simulator's `forged-launch` try them all).
pub fn extension_sequences(digests: &[[u8; 32]], longest: usize) -> Vec<Vec<[u8; 32]>> {
    fn grow(
        prefix: &mut Vec<[u8; 32]>,
        digests: &[[u8; 32]],
        longest: usize,
        out: &mut Vec<Vec<[u8; 32]>>,
    ) {
        for digest in digests {
            prefix.push(*digest);
            out.push(prefix.clone());
            if prefix.len() < longest {
                grow(prefix, digests, longest, out);
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    grow(&mut Vec::new(), digests, longest, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_sequences_are_every_sequence_up_to_the_length() {
        let sequences = extension_sequences(&[[1; 32], [2; 32], [3; 32]], 3);
        assert_eq!(sequences.len(), 3 + 9 + 27);
        assert_eq!(
            sequences[..3],
            [vec![[1; 32]], vec![[1; 32]; 2], vec![[1; 32]; 3]]
        );
        let distinct: std::collections::BTreeSet<_> = sequences.iter().collect();
        assert_eq!(distinct.len(), sequences.len());
    }

    #[test]
    fn keys_differ_by_seed_and_account() {
        assert_ne!(client_key(1, 1).to_bytes(), client_key(2, 1).to_bytes());
        assert_ne!(client_key(1, 1).to_bytes(), client_key(1, 2).to_bytes());
        assert_eq!(client_key(1, 1).to_bytes(), client_key(1, 1).to_bytes());
    }
}
