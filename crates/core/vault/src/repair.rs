//! Repair: a member of the committee that holds no share of the current sharing (a replacement,
//! or a member re-admitted after the others refreshed without it) gets one from t holders,
//! without any of them learning it and without the group key changing (FROST's repairable
//! threshold scheme, `frost_core::keys::repairable`).
//!
//! Three steps, over the authenticated and encrypted p2p:
//! 1. the newcomer names t holders, the helpers; each helper splits λ·share (λ its Lagrange
//!    coefficient at the newcomer's number over the helpers) into t random deltas, one per
//!    helper ([`deltas`]);
//! 2. each helper adds the t deltas it received into a sigma and sends it to the newcomer with
//!    the sharing's public package ([`sigma`]);
//! 3. the newcomer adds the t sigmas: its share ([`repaired`]). It keeps the share only if its
//!    verifying share is the one the holders' verifying shares interpolate to at its number
//!    ([`expected_verifying_share`]), and only if every helper sent the same public package
//!    (at least one helper is honest, t > f), so a helper that lies about a delta, a sigma or
//!    the package makes the repair fail and never leaves the newcomer with a wrong share.
//!
//! Once the newcomer says it is repaired, every holder adds the newcomer's verifying share
//! (interpolated from public values alone) to its own package ([`with_holder`]).

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::repairable::{
    repair_share_part1, repair_share_part2, repair_share_part3, Delta, Sigma,
};
use frost_core::keys::{PublicKeyPackage, VerifyingShare};
use frost_core::{compute_lagrange_coefficient, Ciphersuite, Group};
use rand_chacha06::ChaCha20Rng;
use rand_core06::SeedableRng;

use crate::keygen::{identifier, member_number, KeyShare};
use crate::release::VaultSuite;
use crate::{Member, VaultError, MEMBERS_MAX};

/// Largest delta or sigma (one scalar), bytes.
pub const SCALAR_BYTES_MAX: usize = 64;
/// Largest public package a helper sends (every holder's verifying share and the group key).
pub const PUBLIC_BYTES_MAX: usize = 16 + (MEMBERS_MAX + 1) * (33 + 33);

/// Checks that `helpers` may repair `newcomer`'s share of `share`'s sharing: exactly t holders,
/// the newcomer not among them, every number a member number.
pub fn check_helpers<C: Ciphersuite>(
    share: &KeyShare<C>,
    helpers: &BTreeSet<Member>,
    newcomer: Member,
) -> Result<(), VaultError> {
    let t = usize::from(share.threshold());
    let refuse = |reason| {
        Err(VaultError::Committee {
            n: helpers.len(),
            t,
            reason,
        })
    };
    if newcomer == 0 {
        return Err(VaultError::NotAParticipant(newcomer));
    }
    if helpers.len() != t {
        return refuse("a repair needs exactly t helpers");
    }
    if helpers.contains(&newcomer) {
        return refuse("a newcomer cannot help repair its own share");
    }
    let holders = share.holders();
    if let Some(stranger) = helpers.iter().find(|h| !holders.contains(h)) {
        return Err(VaultError::NotAParticipant(*stranger));
    }
    Ok(())
}

/// Step 1, at helper `share.member()`: the delta for each helper (itself included). `seed` is
/// fresh randomness from the caller.
pub fn deltas<C: Ciphersuite>(
    share: &KeyShare<C>,
    helpers: &BTreeSet<Member>,
    newcomer: Member,
    seed: [u8; 32],
) -> Result<BTreeMap<Member, Vec<u8>>, VaultError> {
    check_helpers(share, helpers, newcomer)?;
    if !helpers.contains(&share.member()) {
        return Err(VaultError::NotAParticipant(share.member()));
    }
    let ids = helpers
        .iter()
        .map(|h| identifier::<C>(*h))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = ChaCha20Rng::from_seed(seed);
    let out = repair_share_part1(&ids, &share.key, &mut rng, identifier::<C>(newcomer)?)
        .map_err(|_| VaultError::Crypto("repair step 1"))?;
    let mut deltas = BTreeMap::new();
    for helper in helpers {
        let delta = out
            .get(&identifier::<C>(*helper)?)
            .ok_or(VaultError::Crypto("repair step 1"))?;
        deltas.insert(*helper, delta.serialize());
    }
    Ok(deltas)
}

/// Step 2, at a helper: its sigma from the delta every helper sent it (its own included).
pub fn sigma<C: Ciphersuite>(
    helpers: &BTreeSet<Member>,
    deltas: &BTreeMap<Member, Vec<u8>>,
) -> Result<Vec<u8>, VaultError> {
    if deltas.keys().copied().collect::<BTreeSet<_>>() != *helpers {
        return Err(VaultError::Malformed(
            "repair deltas (one from every helper)",
        ));
    }
    let decoded = deltas
        .values()
        .map(|bytes| {
            decode_scalar(bytes, "repair delta").and_then(|b| {
                Delta::<C>::deserialize(b).map_err(|_| VaultError::Malformed("repair delta"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(repair_share_part2(&decoded).serialize())
}

fn decode_scalar<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a [u8], VaultError> {
    if bytes.len() > SCALAR_BYTES_MAX {
        return Err(VaultError::TooLong {
            what,
            len: bytes.len(),
            max: SCALAR_BYTES_MAX,
        });
    }
    Ok(bytes)
}

/// Decodes a helper's public package, bounded, checked the way a stored share's is.
pub fn decode_public<C: Ciphersuite>(bytes: &[u8]) -> Result<PublicKeyPackage<C>, VaultError> {
    if bytes.len() > PUBLIC_BYTES_MAX {
        return Err(VaultError::TooLong {
            what: "public key package",
            len: bytes.len(),
            max: PUBLIC_BYTES_MAX,
        });
    }
    let public = PublicKeyPackage::<C>::deserialize(bytes)
        .map_err(|_| VaultError::Malformed("public key package"))?;
    let holders = public.verifying_shares().len();
    let t = public
        .min_signers()
        .ok_or(VaultError::Malformed("public key package (no threshold)"))?;
    if t < 2 || usize::from(t) > holders || holders > MEMBERS_MAX {
        return Err(VaultError::Malformed(
            "public key package (the threshold does not fit the holders)",
        ));
    }
    for id in public.verifying_shares().keys() {
        if member_number(id).is_none() {
            return Err(VaultError::Malformed(
                "public key package (a holder is not a member number)",
            ));
        }
    }
    Ok(public)
}

/// The verifying share the sharing gives member `member`, interpolated from t holders'
/// verifying shares (public values only).
pub fn expected_verifying_share<C: Ciphersuite>(
    public: &PublicKeyPackage<C>,
    member: Member,
) -> Result<VerifyingShare<C>, VaultError> {
    let id = identifier::<C>(member)?;
    if let Some(share) = public.verifying_shares().get(&id) {
        return Ok(*share);
    }
    let t = usize::from(
        public
            .min_signers()
            .ok_or(VaultError::Malformed("public key package (no threshold)"))?,
    );
    let points: BTreeSet<_> = public.verifying_shares().keys().take(t).copied().collect();
    if points.len() < t {
        return Err(VaultError::Malformed(
            "public key package (fewer holders than the threshold)",
        ));
    }
    let mut sum = <C::Group as Group>::identity();
    for x in &points {
        let lambda = compute_lagrange_coefficient::<C>(&points, Some(id), *x)
            .map_err(|_| VaultError::Crypto("interpolation"))?;
        sum = sum + public.verifying_shares()[x].to_element() * lambda;
    }
    Ok(VerifyingShare::new(sum))
}

/// `share` with `member`'s interpolated verifying share added to its public package: what a
/// holder keeps once `member` was repaired.
pub fn with_holder<C: Ciphersuite>(
    share: &KeyShare<C>,
    member: Member,
) -> Result<KeyShare<C>, VaultError> {
    let public = add_holder(&share.public, member)?;
    Ok(KeyShare {
        key: share.key.clone(),
        public,
    })
}

fn add_holder<C: Ciphersuite>(
    public: &PublicKeyPackage<C>,
    member: Member,
) -> Result<PublicKeyPackage<C>, VaultError> {
    let expected = expected_verifying_share(public, member)?;
    let mut shares = public.verifying_shares().clone();
    if shares.len() >= MEMBERS_MAX && !shares.contains_key(&identifier::<C>(member)?) {
        return Err(VaultError::Committee {
            n: shares.len() + 1,
            t: usize::from(public.min_signers().unwrap_or(0)),
            reason: "more members than the vault supports",
        });
    }
    shares.insert(identifier::<C>(member)?, expected);
    Ok(PublicKeyPackage::new(
        shares,
        *public.verifying_key(),
        public.min_signers(),
    ))
}

/// Step 3, at the newcomer: its share from every helper's sigma and the public package they
/// all sent. Refused unless the share is the one the sharing gives `newcomer`.
pub fn repaired<C: Ciphersuite>(
    newcomer: Member,
    helpers: &BTreeSet<Member>,
    sigmas: &BTreeMap<Member, Vec<u8>>,
    public: &PublicKeyPackage<C>,
) -> Result<KeyShare<C>, VaultError> {
    if sigmas.keys().copied().collect::<BTreeSet<_>>() != *helpers {
        return Err(VaultError::Malformed(
            "repair sigmas (one from every helper)",
        ));
    }
    let holders: BTreeSet<Member> = public
        .verifying_shares()
        .keys()
        .filter_map(member_number)
        .collect();
    if helpers.len() != usize::from(public.min_signers().unwrap_or(0))
        || !helpers.is_subset(&holders)
    {
        return Err(VaultError::Malformed(
            "repair helpers (t holders of the sharing)",
        ));
    }
    let decoded = sigmas
        .values()
        .map(|bytes| {
            decode_scalar(bytes, "repair sigma").and_then(|b| {
                Sigma::<C>::deserialize(b).map_err(|_| VaultError::Malformed("repair sigma"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key = repair_share_part3(&decoded, identifier::<C>(newcomer)?, public)
        .map_err(|_| VaultError::Crypto("repair step 3"))?;
    if *key.verifying_share() != expected_verifying_share(public, newcomer)? {
        return Err(VaultError::Crypto(
            "repair (the share is not the sharing's)",
        ));
    }
    Ok(KeyShare {
        key,
        public: add_holder(public, newcomer)?,
    })
}

/// Runs a whole repair in one process (tests, the simulator, the benches).
pub fn local<C: Ciphersuite>(
    shares: &BTreeMap<Member, KeyShare<C>>,
    helpers: &BTreeSet<Member>,
    newcomer: Member,
    seed: [u8; 32],
) -> Result<KeyShare<C>, VaultError> {
    let mut received: BTreeMap<Member, BTreeMap<Member, Vec<u8>>> = BTreeMap::new();
    for helper in helpers {
        let share = shares
            .get(helper)
            .ok_or(VaultError::NotAParticipant(*helper))?;
        let mut member_seed = seed;
        member_seed[..2].copy_from_slice(&helper.to_be_bytes());
        for (to, delta) in deltas(share, helpers, newcomer, member_seed)? {
            received.entry(to).or_default().insert(*helper, delta);
        }
    }
    let mut sigmas = BTreeMap::new();
    for helper in helpers {
        let mine = received.remove(helper).unwrap_or_default();
        sigmas.insert(*helper, sigma::<C>(helpers, &mine)?);
    }
    let public = &shares
        .get(
            helpers
                .iter()
                .next()
                .ok_or(VaultError::NotAParticipant(0))?,
        )
        .ok_or(VaultError::NotAParticipant(0))?
        .public;
    repaired(newcomer, helpers, &sigmas, public)
}

/// What a holder's proof of possession signs: its number, the sharing's epoch and the key.
fn holding_message<C: VaultSuite>(epoch: u64, member: Member, group_key: &[u8]) -> Vec<u8> {
    let mut message = b"bulwark/vault/holding/v1".to_vec();
    message.push(C::CHAIN.code());
    message.extend_from_slice(&epoch.to_be_bytes());
    message.extend_from_slice(&member.to_be_bytes());
    message.extend_from_slice(group_key);
    message
}

/// Largest proof of possession (one Schnorr signature), bytes.
pub const PROOF_BYTES_MAX: usize = 128;

/// A proof that this member holds its share of `epoch`'s sharing: a Schnorr signature with the
/// share itself, which only its verifying share checks. A holder adds a repaired member to its
/// package only on this proof, so a member that claims a share it does not hold is not added.
pub fn prove_holding<C: VaultSuite>(
    share: &KeyShare<C>,
    epoch: u64,
    seed: [u8; 32],
) -> Result<Vec<u8>, VaultError> {
    let key = frost_core::SigningKey::<C>::from_scalar(share.key.signing_share().to_scalar())
        .map_err(|_| VaultError::Crypto("proof of possession"))?;
    let message = holding_message::<C>(epoch, share.member(), &share.group_key());
    key.sign(ChaCha20Rng::from_seed(seed), &message)
        .serialize()
        .map_err(|_| VaultError::Crypto("proof of possession"))
}

/// Checks `member`'s proof of possession against the verifying share `public` gives it.
pub fn check_holding<C: VaultSuite>(
    public: &PublicKeyPackage<C>,
    epoch: u64,
    member: Member,
    proof: &[u8],
) -> Result<(), VaultError> {
    if proof.len() > PROOF_BYTES_MAX {
        return Err(VaultError::TooLong {
            what: "proof of possession",
            len: proof.len(),
            max: PROOF_BYTES_MAX,
        });
    }
    let signature = frost_core::Signature::<C>::deserialize(proof)
        .map_err(|_| VaultError::Malformed("proof of possession"))?;
    let verifying = expected_verifying_share(public, member)?;
    let key = frost_core::VerifyingKey::<C>::new(verifying.to_element());
    let group_key = public
        .verifying_key()
        .serialize()
        .map_err(|_| VaultError::Malformed("public key package"))?;
    key.verify(&holding_message::<C>(epoch, member, &group_key), &signature)
        .map_err(|_| VaultError::Crypto("proof of possession"))
}
