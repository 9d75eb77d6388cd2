//! Key generation without a dealer, and the refresh that moves the shares on.
//!
//! One [`Ceremony`] per member and run, in two rounds over the authenticated p2p (the caller
//! carries the bytes and vouches for who sent them):
//! 1. every participant broadcasts its round-1 package (commitments and a proof of knowledge);
//! 2. once it holds every other participant's round-1 package, it sends each of them a private
//!    round-2 package (its polynomial evaluated at their number);
//! 3. once it holds every round-2 package, it has its [`KeyShare`].
//!
//! A [`Ceremony::dkg`] creates a new key (for the Bitcoin key, the BIP341 tweak towards an
//! unspendable script path is applied to the group key at the end, so no member can slip a
//! script path in). A [`Ceremony::refresh`] runs the same rounds over polynomials with a zero
//! constant term among the members that stay: the group key stays, every share changes, and a
//! member left out holds a share that no longer combines with anyone's.
//!
//! Every message is bounded before it is decoded and attributed to the sender the caller names;
//! a second, different message from one sender is refused.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::dkg::{self, round1, round2};
use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::{Ciphersuite, Identifier};
use rand_chacha06::ChaCha20Rng;
use rand_core06::SeedableRng;

use crate::{Member, VaultError, MEMBERS_MAX};

/// Largest round-1 package (commitments of a polynomial of degree < 64 plus a proof), bytes.
pub const ROUND1_BYTES_MAX: usize = 8 + MEMBERS_MAX * 33 + 128;
/// Largest round-2 package (one scalar and a header), bytes.
pub const ROUND2_BYTES_MAX: usize = 128;

/// Private round-2 packages to send: (recipient, bytes).
pub type Outgoing = Vec<(Member, Vec<u8>)>;

/// A member's share of a vault key, with the public half every member holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyShare<C: Ciphersuite> {
    /// The member's secret share and its verifying share.
    pub key: KeyPackage<C>,
    /// The group key and every participant's verifying share.
    pub public: PublicKeyPackage<C>,
}

impl<C: Ciphersuite> KeyShare<C> {
    /// The member's number.
    pub fn member(&self) -> Member {
        member_of(self.key.identifier())
    }

    /// The group's verifying key, serialized by the ciphersuite (33-byte compressed point for the
    /// taproot key: x-only is bytes 1..33; 32 bytes for Ed25519).
    pub fn group_key(&self) -> Vec<u8> {
        self.public
            .verifying_key()
            .serialize()
            .expect("a group key produced by key generation must serialize")
    }

    /// The members that hold a share of this sharing.
    pub fn holders(&self) -> BTreeSet<Member> {
        self.public
            .verifying_shares()
            .keys()
            .map(member_of)
            .collect()
    }

    /// The threshold.
    pub fn threshold(&self) -> u16 {
        *self.key.min_signers()
    }

    /// The share as bytes for a keystore backend (secret: the caller seals them).
    pub fn to_bytes(&self) -> Vec<u8> {
        let key = self
            .key
            .serialize()
            .expect("a key package produced by key generation must serialize");
        let public = self
            .public
            .serialize()
            .expect("a public key package produced by key generation must serialize");
        let mut out = Vec::with_capacity(8 + key.len() + public.len());
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(&key);
        out.extend_from_slice(&public);
        out
    }

    /// Reads [`KeyShare::to_bytes`] back, checking that the two halves belong together.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultError> {
        const MAX: usize = 16 * 1024;
        if bytes.len() > MAX {
            return Err(VaultError::TooLong {
                what: "key share",
                len: bytes.len(),
                max: MAX,
            });
        }
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(VaultError::Malformed("key share"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            return Err(VaultError::Malformed("key share"));
        }
        let key = KeyPackage::<C>::deserialize(&rest[..len])
            .map_err(|_| VaultError::Malformed("key share"))?;
        let public = PublicKeyPackage::<C>::deserialize(&rest[len..])
            .map_err(|_| VaultError::Malformed("key share"))?;
        if public.verifying_key() != key.verifying_key()
            || public.verifying_shares().get(key.identifier()) != Some(key.verifying_share())
        {
            return Err(VaultError::Malformed("key share (halves disagree)"));
        }
        // Every holder must be a member number (the rest of the crate relies on it), and the
        // threshold must fit the holders.
        if public
            .verifying_shares()
            .keys()
            .any(|id| try_member_of(id).is_none())
        {
            return Err(VaultError::Malformed(
                "key share (a holder is not a member number)",
            ));
        }
        let t = usize::from(*key.min_signers());
        if t < 2 || t > public.verifying_shares().len() {
            return Err(VaultError::Malformed(
                "key share (the threshold does not fit the holders)",
            ));
        }
        Ok(Self { key, public })
    }
}

/// The FROST identifier of member `member` (1 ..= 65535).
pub fn identifier<C: Ciphersuite>(member: Member) -> Result<Identifier<C>, VaultError> {
    Identifier::try_from(member).map_err(|_| VaultError::NotAParticipant(member))
}

fn member_of<C: Ciphersuite>(id: &Identifier<C>) -> Member {
    try_member_of(id).expect("every identifier in a vault sharing must come from a member number")
}

fn try_member_of<C: Ciphersuite>(id: &Identifier<C>) -> Option<Member> {
    member_number(id)
}

/// The member number an identifier was made from, if it was made from one (1 ..= 65535).
pub fn member_number<C: Ciphersuite>(id: &Identifier<C>) -> Option<Member> {
    // The scalar is the number, little- or big-endian depending on the suite: read both ways
    // where the rest is zero, and keep the reading that makes the same identifier.
    let bytes = id.serialize();
    let n = bytes.len();
    if n < 2 {
        return None;
    }
    let little = bytes[2..]
        .iter()
        .all(|b| *b == 0)
        .then(|| u16::from_le_bytes([bytes[0], bytes[1]]));
    let big = bytes[..n - 2]
        .iter()
        .all(|b| *b == 0)
        .then(|| u16::from_be_bytes([bytes[n - 2], bytes[n - 1]]));
    [little, big]
        .into_iter()
        .flatten()
        .find(|m| *m != 0 && Identifier::<C>::try_from(*m).ok().as_ref() == Some(id))
}

enum Kind<C: Ciphersuite> {
    Dkg,
    Refresh(Box<KeyShare<C>>),
}

enum State<C: Ciphersuite> {
    Round1(round1::SecretPackage<C>),
    Round2(round2::SecretPackage<C>),
    Done,
}

/// One member's side of a key generation or refresh.
pub struct Ceremony<C: Ciphersuite> {
    me: Member,
    participants: BTreeSet<Member>,
    kind: Kind<C>,
    state: State<C>,
    round1: BTreeMap<Member, (Vec<u8>, round1::Package<C>)>,
    round2: BTreeMap<Member, (Vec<u8>, round2::Package<C>)>,
    own_round1: Vec<u8>,
}

fn check_committee(participants: &BTreeSet<Member>, t: u16) -> Result<(), VaultError> {
    let n = participants.len();
    let refuse = |reason| {
        Err(VaultError::Committee {
            n,
            t: usize::from(t),
            reason,
        })
    };
    if n < 2 {
        return refuse("a vault needs at least two members");
    }
    if n > MEMBERS_MAX {
        return refuse("more members than the vault supports");
    }
    if participants.contains(&0) {
        return refuse("member numbers start at 1");
    }
    if t < 2 || usize::from(t) > n {
        return refuse("the threshold must be 2 ..= n");
    }
    Ok(())
}

impl<C: Ciphersuite> Ceremony<C> {
    /// Starts a key generation among `participants` with threshold `t`, as member `me`.
    /// Returns the ceremony and the round-1 package to broadcast. `seed` is 32 bytes of fresh
    /// randomness from the caller (the node's OS generator; the simulator's seeded one).
    pub fn dkg(
        me: Member,
        participants: &BTreeSet<Member>,
        t: u16,
        seed: [u8; 32],
    ) -> Result<(Self, Vec<u8>), VaultError> {
        check_committee(participants, t)?;
        if !participants.contains(&me) {
            return Err(VaultError::NotAParticipant(me));
        }
        let rng = ChaCha20Rng::from_seed(seed);
        let (secret, package) =
            dkg::part1::<C, _>(identifier(me)?, participants.len() as u16, t, rng)
                .map_err(|_| VaultError::Crypto("DKG part 1"))?;
        Self::begin(me, participants, Kind::Dkg, secret, package)
    }

    /// Starts a refresh of `share` among `participants` (the members that keep a share; any
    /// holder left out is removed). The threshold stays the sharing's.
    pub fn refresh(
        share: KeyShare<C>,
        participants: &BTreeSet<Member>,
        seed: [u8; 32],
    ) -> Result<(Self, Vec<u8>), VaultError> {
        let t = share.threshold();
        check_committee(participants, t)?;
        let me = share.member();
        if !participants.contains(&me) {
            return Err(VaultError::NotAParticipant(me));
        }
        let holders = share.holders();
        if let Some(stranger) = participants.iter().find(|m| !holders.contains(m)) {
            // A refresh cannot give a share to someone who had none: that is a repair.
            return Err(VaultError::NotAParticipant(*stranger));
        }
        let rng = ChaCha20Rng::from_seed(seed);
        let (secret, package) = frost_core::keys::refresh::refresh_dkg_part1::<C, _>(
            identifier(me)?,
            participants.len() as u16,
            t,
            rng,
        )
        .map_err(|_| VaultError::Crypto("refresh part 1"))?;
        Self::begin(
            me,
            participants,
            Kind::Refresh(Box::new(share)),
            secret,
            package,
        )
    }

    fn begin(
        me: Member,
        participants: &BTreeSet<Member>,
        kind: Kind<C>,
        secret: round1::SecretPackage<C>,
        package: round1::Package<C>,
    ) -> Result<(Self, Vec<u8>), VaultError> {
        let own_round1 = package
            .serialize()
            .map_err(|_| VaultError::Crypto("round 1 encoding"))?;
        let ceremony = Self {
            me,
            participants: participants.clone(),
            kind,
            state: State::Round1(secret),
            round1: BTreeMap::new(),
            round2: BTreeMap::new(),
            own_round1: own_round1.clone(),
        };
        Ok((ceremony, own_round1))
    }

    /// This member's round-1 package again (to resend to a peer that missed it).
    pub fn round1_package(&self) -> &[u8] {
        &self.own_round1
    }

    /// Who has not sent its round-1 (or, after that, round-2) package yet.
    pub fn waiting_for(&self) -> Vec<Member> {
        let have = match self.state {
            State::Round1(_) => &self.round1.keys().copied().collect::<BTreeSet<_>>(),
            State::Round2(_) => &self.round2.keys().copied().collect::<BTreeSet<_>>(),
            State::Done => return Vec::new(),
        };
        self.participants
            .iter()
            .filter(|m| **m != self.me && !have.contains(m))
            .copied()
            .collect()
    }

    fn check_sender(&self, from: Member) -> Result<(), VaultError> {
        if from == self.me || !self.participants.contains(&from) {
            return Err(VaultError::NotAParticipant(from));
        }
        Ok(())
    }

    /// Takes `from`'s round-1 package. When it was the last one missing, returns the private
    /// round-2 packages to send, one per other participant.
    pub fn receive_round1(
        &mut self,
        from: Member,
        bytes: &[u8],
    ) -> Result<Option<Outgoing>, VaultError> {
        self.check_sender(from)?;
        if bytes.len() > ROUND1_BYTES_MAX {
            return Err(VaultError::TooLong {
                what: "round-1 package",
                len: bytes.len(),
                max: ROUND1_BYTES_MAX,
            });
        }
        if let Some((seen, _)) = self.round1.get(&from) {
            return if seen == bytes {
                Ok(None)
            } else {
                Err(VaultError::Conflicting {
                    member: from,
                    round: 1,
                })
            };
        }
        if !matches!(self.state, State::Round1(_)) {
            return Err(VaultError::OutOfOrder {
                round: 1,
                state: self.state_name(),
            });
        }
        let package = round1::Package::<C>::deserialize(bytes)
            .map_err(|_| VaultError::Malformed("round-1 package"))?;
        self.round1.insert(from, (bytes.to_vec(), package));
        if self.round1.len() + 1 < self.participants.len() {
            return Ok(None);
        }
        let State::Round1(secret) = std::mem::replace(&mut self.state, State::Done) else {
            unreachable!("checked above: the ceremony is in round 1");
        };
        let packages = self.round1_by_identifier()?;
        let result = match self.kind {
            Kind::Dkg => dkg::part2(secret, &packages),
            Kind::Refresh(_) => frost_core::keys::refresh::refresh_dkg_part2(secret, &packages),
        };
        let (secret, outgoing) = match result {
            Ok(done) => done,
            Err(_) => {
                // A proof of knowledge did not verify: nobody can tell whose from here, so the
                // ceremony is over and the caller starts a new run.
                return Err(VaultError::Crypto("round 1 (a proof of knowledge)"));
            }
        };
        self.state = State::Round2(secret);
        let mut out = Vec::with_capacity(outgoing.len());
        for (id, package) in outgoing {
            let bytes = package
                .serialize()
                .map_err(|_| VaultError::Crypto("round 2 encoding"))?;
            out.push((member_of(&id), bytes));
        }
        Ok(Some(out))
    }

    /// Takes `from`'s private round-2 package. When it was the last one missing, returns this
    /// member's new share.
    pub fn receive_round2(
        &mut self,
        from: Member,
        bytes: &[u8],
    ) -> Result<Option<KeyShare<C>>, VaultError> {
        self.check_sender(from)?;
        if bytes.len() > ROUND2_BYTES_MAX {
            return Err(VaultError::TooLong {
                what: "round-2 package",
                len: bytes.len(),
                max: ROUND2_BYTES_MAX,
            });
        }
        if let Some((seen, _)) = self.round2.get(&from) {
            return if seen == bytes {
                Ok(None)
            } else {
                Err(VaultError::Conflicting {
                    member: from,
                    round: 2,
                })
            };
        }
        if !matches!(self.state, State::Round2(_)) {
            return Err(VaultError::OutOfOrder {
                round: 2,
                state: self.state_name(),
            });
        }
        let package = round2::Package::<C>::deserialize(bytes)
            .map_err(|_| VaultError::Malformed("round-2 package"))?;
        self.round2.insert(from, (bytes.to_vec(), package));
        if self.round2.len() + 1 < self.participants.len() {
            return Ok(None);
        }
        let State::Round2(secret) = std::mem::replace(&mut self.state, State::Done) else {
            unreachable!("checked above: the ceremony is in round 2");
        };
        let round1 = self.round1_by_identifier()?;
        let mut round2 = BTreeMap::new();
        for (member, (_, package)) in &self.round2 {
            round2.insert(identifier::<C>(*member)?, package.clone());
        }
        let (key, public) = match &self.kind {
            Kind::Dkg => dkg::part3(&secret, &round1, &round2)
                .map_err(|_| VaultError::Crypto("DKG part 3 (a share does not match)"))?,
            Kind::Refresh(old) => frost_core::keys::refresh::refresh_dkg_shares(
                &secret,
                &round1,
                &round2,
                old.public.clone(),
                old.key.clone(),
            )
            .map_err(|_| VaultError::Crypto("refresh (a share does not match)"))?,
        };
        // A refresh's public package keeps only the members that took part.
        let public = restrict(public, &self.participants)?;
        Ok(Some(KeyShare { key, public }))
    }

    fn round1_by_identifier(
        &self,
    ) -> Result<BTreeMap<Identifier<C>, round1::Package<C>>, VaultError> {
        let mut packages = BTreeMap::new();
        for (member, (_, package)) in &self.round1 {
            packages.insert(identifier::<C>(*member)?, package.clone());
        }
        Ok(packages)
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Round1(_) => "in round 1",
            State::Round2(_) => "in round 2",
            State::Done => "over",
        }
    }
}

/// The public package with only `members`' verifying shares.
fn restrict<C: Ciphersuite>(
    public: PublicKeyPackage<C>,
    members: &BTreeSet<Member>,
) -> Result<PublicKeyPackage<C>, VaultError> {
    let mut shares = BTreeMap::new();
    for (id, share) in public.verifying_shares() {
        if members.contains(&member_of(id)) {
            shares.insert(*id, *share);
        }
    }
    Ok(PublicKeyPackage::new(
        shares,
        *public.verifying_key(),
        public.min_signers(),
    ))
}

/// Runs whole ceremonies in one process, every message delivered at once: for the simulator,
/// the benches and tests (the node runs [`Ceremony`] over the p2p). Seeds are derived from
/// `seed` and the member, so a run is reproducible.
pub mod local {
    use super::*;

    fn member_seed(seed: [u8; 32], member: Member) -> [u8; 32] {
        let mut out = seed;
        for (i, byte) in member.to_be_bytes().iter().enumerate() {
            out[30 + i] ^= byte;
        }
        out
    }

    /// Delivers every round of the started ceremonies and returns each member's share.
    pub fn run<C: Ciphersuite>(
        starts: BTreeMap<Member, (Ceremony<C>, Vec<u8>)>,
    ) -> Result<BTreeMap<Member, KeyShare<C>>, VaultError> {
        let mut ceremonies = BTreeMap::new();
        let mut round1 = Vec::new();
        for (member, (ceremony, bytes)) in starts {
            round1.push((member, bytes));
            ceremonies.insert(member, ceremony);
        }
        let mut round2 = Vec::new();
        for (from, bytes) in &round1 {
            for (to, ceremony) in ceremonies.iter_mut() {
                if to != from {
                    if let Some(out) = ceremony.receive_round1(*from, bytes)? {
                        round2.extend(out.into_iter().map(|(dest, b)| (*to, dest, b)));
                    }
                }
            }
        }
        let mut shares = BTreeMap::new();
        for (from, to, bytes) in round2 {
            let ceremony = ceremonies
                .get_mut(&to)
                .ok_or(VaultError::NotAParticipant(to))?;
            if let Some(share) = ceremony.receive_round2(from, &bytes)? {
                shares.insert(to, share);
            }
        }
        Ok(shares)
    }

    /// A key generation among members 1 ..= `n` with threshold [`crate::threshold`]`(n)`.
    pub fn dkg<C: Ciphersuite>(
        n: u16,
        seed: [u8; 32],
    ) -> Result<BTreeMap<Member, KeyShare<C>>, VaultError> {
        let all: BTreeSet<Member> = (1..=n).collect();
        let t = crate::threshold(usize::from(n));
        let mut starts = BTreeMap::new();
        for m in &all {
            starts.insert(*m, Ceremony::<C>::dkg(*m, &all, t, member_seed(seed, *m))?);
        }
        run(starts)
    }

    /// A refresh of `shares` among `keep`.
    pub fn refresh<C: Ciphersuite>(
        shares: &BTreeMap<Member, KeyShare<C>>,
        keep: &BTreeSet<Member>,
        seed: [u8; 32],
    ) -> Result<BTreeMap<Member, KeyShare<C>>, VaultError> {
        let mut starts = BTreeMap::new();
        for m in keep {
            let share = shares.get(m).ok_or(VaultError::NotAParticipant(*m))?;
            starts.insert(
                *m,
                Ceremony::refresh(share.clone(), keep, member_seed(seed, *m))?,
            );
        }
        run(starts)
    }
}
