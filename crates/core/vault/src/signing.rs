//! Signing in two rounds, with round-1 nonces made ahead of time and each used once.
//!
//! A member precomputes a batch of nonce pairs ([`NonceBook::precompute`]) and publishes their
//! commitments, each under a slot number. The coordinator (the block's proposer) picks t
//! members, one published commitment of each, and sends the [`SigningPackage`] with the
//! withdrawal. A member signs with the nonces of its slot only after [`NonceBook::spend`] took
//! them out and the caller persisted the book without them: a nonce that was ever handed to
//! [`sign`] is gone from disk before the share leaves, so a restart (or a coordinator that asks
//! again) can never make a member sign twice with one nonce.

use std::collections::BTreeMap;

use bitcoin::hashes::{sha256, Hash as _, HashEngine as _};
pub use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::SignatureShare;
use frost_core::{Ciphersuite, Identifier, Signature, SigningPackage};
use rand_chacha06::ChaCha20Rng;
use rand_core06::SeedableRng;

use crate::keygen::{identifier, KeyShare};
use crate::{Member, VaultError};

/// Most unspent nonce slots a member keeps per key.
pub const NONCES_MAX: usize = 1024;

/// Largest signing package a member decodes (t commitments of 66 bytes, a message), bytes.
pub const SIGNING_PACKAGE_BYTES_MAX: usize = 16 * 1024;

/// The domain of a nonce slot's randomness. Part of the format.
const NONCE_DOMAIN: &[u8] = b"bulwark/vault/nonce/v1";

/// Largest signature share, bytes.
pub const SHARE_BYTES_MAX: usize = 128;

/// A member's unspent round-1 nonces for one key, by slot. Secret: the caller seals the
/// serialized book like any share.
pub struct NonceBook<C: Ciphersuite> {
    next_slot: u64,
    unspent: BTreeMap<u64, SigningNonces<C>>,
}

impl<C: Ciphersuite> Default for NonceBook<C> {
    fn default() -> Self {
        Self {
            next_slot: 0,
            unspent: BTreeMap::new(),
        }
    }
}

impl<C: Ciphersuite> NonceBook<C> {
    /// How many nonce pairs are left.
    pub fn unspent(&self) -> usize {
        self.unspent.len()
    }

    /// Makes up to `count` new nonce pairs for `share` (never beyond [`NONCES_MAX`] unspent) and
    /// returns their slots and commitments, to publish. Slots are never reused within a book (a
    /// new epoch's book, for the new share, starts again at 0). `seed` is fresh randomness (the node's OS generator). Each slot's generator is
    /// seeded with SHA-256(domain ‖ seed ‖ group key ‖ slot), and FROST mixes the secret share
    /// into every nonce: two slots never share a nonce even if a caller passed one seed twice.
    /// What a per-slot derivation cannot stop is a book rolled back on disk (a restored older
    /// file hands out slots whose nonces were used) together with a repeated seed; see
    /// `docs/vault.md`.
    pub fn precompute(
        &mut self,
        share: &KeyShare<C>,
        count: usize,
        seed: [u8; 32],
    ) -> Vec<(u64, SigningCommitments<C>)> {
        let group_key = share.group_key();
        let room = NONCES_MAX.saturating_sub(self.unspent.len());
        let mut published = Vec::new();
        for _ in 0..count.min(room) {
            let slot = self.next_slot;
            let Some(next) = slot.checked_add(1) else {
                break;
            };
            let mut engine = sha256::Hash::engine();
            engine.input(NONCE_DOMAIN);
            engine.input(&seed);
            engine.input(&group_key);
            engine.input(&slot.to_be_bytes());
            let mut rng = ChaCha20Rng::from_seed(sha256::Hash::from_engine(engine).to_byte_array());
            let (nonces, commitments) =
                frost_core::round1::commit(share.key.signing_share(), &mut rng);
            self.next_slot = next;
            self.unspent.insert(slot, nonces);
            published.push((slot, commitments));
        }
        published
    }

    /// The commitments of unspent slot `slot` (what this member published for it).
    pub fn slots(&self) -> impl Iterator<Item = u64> + '_ {
        self.unspent.keys().copied()
    }

    /// The commitments published for an unspent slot.
    pub fn commitments(&self, slot: u64) -> Option<&SigningCommitments<C>> {
        self.unspent.get(&slot).map(|nonces| nonces.commitments())
    }

    /// Takes slot `slot`'s nonces out of the book. The caller persists the book *before* it
    /// calls [`sign`] with them; a slot that is gone (spent, or never made) is refused.
    pub fn spend(&mut self, slot: u64) -> Result<SigningNonces<C>, SpendError> {
        self.unspent.remove(&slot).ok_or(SpendError { slot })
    }

    /// Drops every nonce (after a refresh: the commitments were made with the old share).
    pub fn clear(&mut self) {
        self.unspent.clear();
    }

    /// Serializes the book (secret).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.next_slot.to_be_bytes());
        out.extend_from_slice(&(self.unspent.len() as u32).to_be_bytes());
        for (slot, nonces) in &self.unspent {
            let bytes = nonces
                .serialize()
                .expect("nonces made by precompute must serialize");
            out.extend_from_slice(&slot.to_be_bytes());
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Reads [`NonceBook::to_bytes`] back (from the member's own sealed storage).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
        let bad = VaultError::Malformed("nonce book");
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8], VaultError> {
            if rest.len() < n {
                return Err(VaultError::Malformed("nonce book"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let next_slot = u64::from_be_bytes(take(8)?.try_into().map_err(|_| bad.clone())?);
        let count = u32::from_be_bytes(take(4)?.try_into().map_err(|_| bad.clone())?) as usize;
        if count > NONCES_MAX {
            return Err(bad);
        }
        let mut unspent = BTreeMap::new();
        for _ in 0..count {
            let slot = u64::from_be_bytes(take(8)?.try_into().map_err(|_| bad.clone())?);
            let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| bad.clone())?) as usize;
            let nonces = SigningNonces::<C>::deserialize(take(len)?).map_err(|_| bad.clone())?;
            if slot >= next_slot || unspent.insert(slot, nonces).is_some() {
                return Err(bad);
            }
        }
        if !rest.is_empty() {
            return Err(bad);
        }
        Ok(Self { next_slot, unspent })
    }
}

/// A nonce slot that is not in the book: spent already, or never made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nonce slot {slot} is spent or was never made: a nonce is used once")]
pub struct SpendError {
    /// The slot asked for.
    pub slot: u64,
}

/// The coordinator's package: the message and one commitment per chosen signer.
pub fn package<C: Ciphersuite>(
    commitments: &BTreeMap<Member, SigningCommitments<C>>,
    message: &[u8],
) -> Result<SigningPackage<C>, VaultError> {
    let mut by_id = BTreeMap::new();
    for (member, commitment) in commitments {
        by_id.insert(identifier::<C>(*member)?, *commitment);
    }
    Ok(SigningPackage::new(by_id, message))
}

/// Decodes a coordinator's package, bounded.
pub fn decode_package<C: Ciphersuite>(bytes: &[u8]) -> Result<SigningPackage<C>, VaultError> {
    if bytes.len() > SIGNING_PACKAGE_BYTES_MAX {
        return Err(VaultError::TooLong {
            what: "signing package",
            len: bytes.len(),
            max: SIGNING_PACKAGE_BYTES_MAX,
        });
    }
    SigningPackage::deserialize(bytes).map_err(|_| VaultError::Malformed("signing package"))
}

/// Round 2: this member's signature share over `package` with the nonces of its slot. The
/// package must name this member with exactly those nonces' commitments, and at least t signers
/// of the sharing. Only [`crate::release::Prepared::sign`] calls this in production, after the
/// withdrawal's checks and the watermark.
pub fn sign<C: Ciphersuite>(
    package: &SigningPackage<C>,
    nonces: &SigningNonces<C>,
    share: &KeyShare<C>,
) -> Result<SignatureShare<C>, VaultError> {
    let mine = package
        .signing_commitment(share.key.identifier())
        .ok_or(VaultError::NotAParticipant(share.member()))?;
    if &mine != nonces.commitments() {
        return Err(VaultError::Crypto(
            "round 2 (the package names other nonces)",
        ));
    }
    check_signers(package, share)?;
    frost_core::round2::sign(package, nonces, &share.key).map_err(|_| VaultError::Crypto("round 2"))
}

/// The package names at least t signers, each holding a share of this member's sharing.
pub(crate) fn check_signers<C: Ciphersuite>(
    package: &SigningPackage<C>,
    share: &KeyShare<C>,
) -> Result<(), VaultError> {
    let signers = package.signing_commitments();
    if signers.len() < usize::from(share.threshold()) {
        return Err(VaultError::Committee {
            n: signers.len(),
            t: usize::from(share.threshold()),
            reason: "fewer signers than the threshold",
        });
    }
    let holders = share.public.verifying_shares();
    if signers
        .keys()
        .any(|id: &Identifier<C>| !holders.contains_key(id))
    {
        return Err(VaultError::Committee {
            n: signers.len(),
            t: usize::from(share.threshold()),
            reason: "a signer the package names holds no share of this sharing",
        });
    }
    Ok(())
}

/// The coordinator's last step: checks every share against its signer's verifying share and
/// combines them. A bad share fails the whole aggregation; the coordinator then starts a new
/// round with other signers and fresh nonces.
pub fn aggregate<C: Ciphersuite>(
    package: &SigningPackage<C>,
    shares: &BTreeMap<Member, SignatureShare<C>>,
    public: &frost_core::keys::PublicKeyPackage<C>,
) -> Result<Signature<C>, VaultError> {
    let mut by_id = BTreeMap::new();
    for (member, share) in shares {
        by_id.insert(identifier::<C>(*member)?, *share);
    }
    frost_core::aggregate(package, &by_id, public).map_err(|_| VaultError::Crypto("aggregation"))
}

/// Decodes a signer's share, bounded.
pub fn decode_share<C: Ciphersuite>(bytes: &[u8]) -> Result<SignatureShare<C>, VaultError> {
    if bytes.len() > SHARE_BYTES_MAX {
        return Err(VaultError::TooLong {
            what: "signature share",
            len: bytes.len(),
            max: SHARE_BYTES_MAX,
        });
    }
    SignatureShare::deserialize(bytes).map_err(|_| VaultError::Malformed("signature share"))
}
