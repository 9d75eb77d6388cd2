//! The vault's keys as this node holds them: loaded from its vault backend, or made by a FROST
//! key generation with every member over the p2p channel [`CHANNEL_VAULT`] (no dealer), for the
//! taproot and the Ed25519 key at once (`docs/vault.md`).
//!
//! Frames are `kind ‖ chain ‖ payload`: round 1 (broadcast), round 2 (to one member, over the
//! encrypted p2p), and a confirmation (`group key ‖ transcript`), where the transcript is BLAKE3
//! of every member's round-1 package in member order. FROST's key generation assumes everyone
//! saw the same round-1 packages; a member that sent different ones to different peers would
//! leave them with different keys, so a member stores its shares only once all n members
//! confirmed the same key and transcript for both chains. A mismatch stops the key generation
//! and says who disagreed. Every message is resent each second until then, and answered
//! afterwards for members that start late.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bulwark_consensus::replica::PublicKey;
use bulwark_vault::keygen::{Ceremony, KeyShare};
use bulwark_vault::release::VaultSuite;
use bulwark_vault::{threshold, Chain, Ed25519, Member, Taproot, VaultError};
use bulwark_vaultstore::{Backend, VaultFiles};
use commonware_macros::select;
use commonware_p2p::Recipients;
use commonware_runtime::{Clock, IoBuf, Spawner, Supervisor};
use commonware_utils::ordered::Set;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// p2p channel of the vault's key generation.
pub const CHANNEL_VAULT: u64 = 10;

/// The public record of the vault's keys in `<data_dir>/vault/keys.json`.
pub const KEYS_FILE: &str = "keys.json";

const ROUND1: u8 = 1;
const ROUND2: u8 = 2;
const CONFIRM: u8 = 3;

/// Largest frame on [`CHANNEL_VAULT`].
pub const FRAME_BYTES_MAX: usize = 2 + bulwark_vault::keygen::ROUND1_BYTES_MAX;

/// The vault's public keys, as `keys.json` holds them (public: anyone may read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultKeys {
    /// The epoch the shares belong to.
    pub epoch: u64,
    /// Members holding shares.
    pub members: u16,
    /// Signers needed.
    pub threshold: u16,
    /// The taproot group key (the BIP341 output key Q), compressed, hex.
    pub bitcoin: String,
    /// The taproot output key, x-only, hex: the vault's address is `OP_1 <this>`.
    pub bitcoin_xonly: String,
    /// The Ed25519 group key, hex.
    pub ed25519: String,
    /// The members holding shares of this epoch (absent in files written before refreshes ran:
    /// every member 1 ..= `members`).
    #[serde(default)]
    pub holders: Vec<Member>,
}

/// The public record of an epoch's shares, derived from the shares themselves.
pub(super) fn record(
    epoch: u64,
    bitcoin_share: &KeyShare<Taproot>,
    ed25519_share: &KeyShare<Ed25519>,
) -> VaultKeys {
    let bitcoin_key = bitcoin_share.group_key();
    VaultKeys {
        epoch,
        members: u16::try_from(bitcoin_share.holders().len()).unwrap_or(u16::MAX),
        threshold: bitcoin_share.threshold(),
        bitcoin: hex::encode(&bitcoin_key),
        bitcoin_xonly: hex::encode(&bitcoin_key[1..]),
        ed25519: hex::encode(ed25519_share.group_key()),
        holders: bitcoin_share.holders().into_iter().collect(),
    }
}

/// Stores both shares of `epoch` (sealed by the vault backend), then their public record in
/// `keys_path` (shares first: a stop in between leaves the older record, whose shares are still
/// there, or one the load rewrites from the shares).
pub(super) fn store_shares(
    files: &mut VaultFiles<Backend>,
    keys_path: &Path,
    epoch: u64,
    bitcoin: &KeyShare<Taproot>,
    ed25519: &KeyShare<Ed25519>,
) -> Result<VaultKeys, bulwark_vaultstore::StoreError> {
    files.put_share(epoch, bitcoin)?;
    files.put_share(epoch, ed25519)?;
    let keys = record(epoch, bitcoin, ed25519);
    let json = serde_json::to_vec_pretty(&keys).expect("the vault's keys must serialize");
    bulwark_vaultstore::files::write_private(keys_path, &json)?;
    Ok(keys)
}

/// Whether `keys` says exactly what the shares it names say.
fn check_record(
    keys: &VaultKeys,
    bitcoin_share: &KeyShare<Taproot>,
    ed25519_share: &KeyShare<Ed25519>,
) -> Result<(), String> {
    let mut derived = record(keys.epoch, bitcoin_share, ed25519_share);
    if keys.holders.is_empty() && derived.holders == (1..=derived.members).collect::<Vec<_>>() {
        // Written before the record named its holders: every member.
        derived.holders.clear();
    }
    if &derived != keys {
        return Err(format!(
            "does not match the shares it names (the shares say {derived:?})"
        ));
    }
    Ok(())
}

/// Whether two records name the same keys, epoch and threshold (their holders may differ).
fn same_keys(a: &VaultKeys, b: &VaultKeys) -> bool {
    (
        a.epoch,
        a.threshold,
        &a.bitcoin,
        &a.bitcoin_xonly,
        &a.ed25519,
    ) == (
        b.epoch,
        b.threshold,
        &b.bitcoin,
        &b.bitcoin_xonly,
        &b.ed25519,
    )
}

/// Why the vault's key generation stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultKeysError {
    /// The vault's files cannot be read or written.
    #[error("vault files: {0}")]
    Store(String),
    /// The ceremony cannot go on (a refused package ends it; the reason is typed).
    #[error("vault key generation: {0}")]
    Ceremony(String),
    /// Members computed different keys: someone sent different round-1 packages.
    #[error("vault key generation: member {member} confirmed another {chain} key or transcript than this node; a member sent different round-1 packages to different peers. No share was stored")]
    Disagreement {
        /// The member that disagreed.
        member: Member,
        /// Which key.
        chain: &'static str,
    },
    /// The p2p network stopped.
    #[error("the p2p network stopped")]
    Network,
}

/// One chain's ceremony with its transcript and the members' confirmations: the key generation
/// here, and the refresh at an epoch change (`vault_signing`).
pub(super) struct Run<C: VaultSuite> {
    ceremony: Ceremony<C>,
    round1: BTreeMap<Member, Vec<u8>>,
    pub(super) share: Option<KeyShare<C>>,
    confirmations: BTreeMap<Member, Vec<u8>>,
}

impl<C: VaultSuite> Run<C> {
    /// A refresh of `share` among `participants` (the members that stay): same group key, new
    /// shares. Returns the run and this member's round-1 frame.
    pub(super) fn start_refresh(
        share: KeyShare<C>,
        participants: &std::collections::BTreeSet<Member>,
        seed: [u8; 32],
    ) -> Result<(Self, Vec<u8>), VaultKeysError> {
        let me = share.member();
        let (run, first) = Self::begun(me, Ceremony::<C>::refresh(share, participants, seed))?;
        Ok((run, frame(ROUND1, C::CHAIN, &first)))
    }

    /// A run of a ceremony that has just sent `first` (its own round-1 package).
    fn begun(
        me: Member,
        started: Result<(Ceremony<C>, Vec<u8>), VaultError>,
    ) -> Result<(Self, Vec<u8>), VaultKeysError> {
        let (ceremony, first) = started.map_err(|e| VaultKeysError::Ceremony(e.to_string()))?;
        let mut round1 = BTreeMap::new();
        round1.insert(me, first.clone());
        Ok((
            Self {
                ceremony,
                round1,
                share: None,
                confirmations: BTreeMap::new(),
            },
            first,
        ))
    }

    /// Takes a peer's frame (`kind ‖ chain ‖ payload`, the chain already matched).
    pub(super) fn take_frame(
        &mut self,
        from: Member,
        frame_bytes: &[u8],
        out: &mut Vec<(Option<Member>, Vec<u8>)>,
    ) -> Result<(), VaultError> {
        if frame_bytes.len() < 2 || !(ROUND1..=CONFIRM).contains(&frame_bytes[0]) {
            return Err(VaultError::Malformed("vault ceremony frame"));
        }
        self.receive(from, frame_bytes[0], &frame_bytes[2..], out)
    }

    fn start(me: Member, n: u16, seed: [u8; 32]) -> Result<(Self, Vec<u8>), VaultKeysError> {
        let all = (1..=n).collect();
        Self::begun(
            me,
            Ceremony::<C>::dkg(me, &all, threshold(usize::from(n)), seed),
        )
    }

    /// `group key ‖ transcript`, once this member has its share.
    fn confirmation(&self) -> Option<Vec<u8>> {
        let share = self.share.as_ref()?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"bulwark/vault/dkg-transcript/v1");
        for (member, bytes) in &self.round1 {
            hasher.update(&member.to_be_bytes());
            hasher.update(&(bytes.len() as u32).to_be_bytes());
            hasher.update(bytes);
        }
        let mut out = share.group_key();
        out.extend_from_slice(hasher.finalize().as_bytes());
        Some(out)
    }

    fn receive(
        &mut self,
        from: Member,
        kind: u8,
        payload: &[u8],
        out: &mut Vec<(Option<Member>, Vec<u8>)>,
    ) -> Result<(), VaultError> {
        match kind {
            ROUND1 => {
                if let Some(round2) = self.ceremony.receive_round1(from, payload)? {
                    for (to, bytes) in round2 {
                        out.push((Some(to), frame(ROUND2, C::CHAIN, &bytes)));
                    }
                }
                self.round1.entry(from).or_insert_with(|| payload.to_vec());
            }
            ROUND2 => {
                if let Some(share) = self.ceremony.receive_round2(from, payload)? {
                    self.share = Some(share);
                    let confirmation = self.confirmation().expect("the share was just stored");
                    out.push((None, frame(CONFIRM, C::CHAIN, &confirmation)));
                }
            }
            _ => {
                if payload.len() > 128 {
                    return Err(VaultError::TooLong {
                        what: "confirmation",
                        len: payload.len(),
                        max: 128,
                    });
                }
                self.confirmations
                    .entry(from)
                    .or_insert_with(|| payload.to_vec());
            }
        }
        Ok(())
    }

    /// `Ok(true)` once every one of the `n` participants confirmed this member's key and
    /// transcript.
    pub(super) fn agreed(&self, me: Member, n: u16) -> Result<bool, VaultKeysError> {
        let Some(mine) = self.confirmation() else {
            return Ok(false);
        };
        for (member, theirs) in &self.confirmations {
            if *theirs != mine {
                return Err(VaultKeysError::Disagreement {
                    member: *member,
                    chain: C::CHAIN.name(),
                });
            }
        }
        Ok(self.confirmations.len() + 1 == usize::from(n) && !self.confirmations.contains_key(&me))
    }
}

fn frame(kind: u8, chain: Chain, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + payload.len());
    out.push(kind);
    out.push(chain.code());
    out.extend_from_slice(payload);
    out
}

pub(super) fn keys_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("vault").join(KEYS_FILE)
}

/// Loads this node's vault shares, or runs the key generation with every member and stores them
/// (epoch 0). Returns the vault's public keys and its files (for the signing); no keys for a
/// node that joined after genesis and was not repaired yet (it takes no part in the key
/// generation: its shares come by repair, `vault_signing`).
pub(super) async fn vault_keys<E, S, R>(
    context: E,
    data_dir: &Path,
    me: &PublicKey,
    participants: Set<PublicKey>,
    mut files: VaultFiles<Backend>,
    (mut sender, mut receiver): (S, R),
) -> Result<(Option<VaultKeys>, VaultFiles<Backend>), VaultKeysError>
where
    E: Clock + Spawner + Supervisor + Send + 'static,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    let store = |e: bulwark_vaultstore::StoreError| VaultKeysError::Store(e.to_string());
    let n = u16::try_from(participants.len()).unwrap_or(u16::MAX);
    let member_of = |key: &PublicKey| {
        participants
            .iter()
            .position(|p| p == key)
            .map(|i| (i + 1) as Member)
    };
    let path = keys_path(data_dir);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| VaultKeysError::Store(format!("{}: {e}", path.display())))?;
        let keys: VaultKeys = serde_json::from_str(&text)
            .map_err(|e| VaultKeysError::Store(format!("{}: {e}", path.display())))?;
        let bitcoin = hex::decode(&keys.bitcoin)
            .map_err(|_| VaultKeysError::Store("keys.json: bitcoin key is not hex".into()))?;
        let ed25519 = hex::decode(&keys.ed25519)
            .map_err(|_| VaultKeysError::Store("keys.json: ed25519 key is not hex".into()))?;
        // Both shares must open under the recorded keys (a keys.json swapped on disk does not),
        // and every field of the record must be what the opened shares say.
        let opened = (
            files
                .share::<Taproot>(keys.epoch, &bitcoin)
                .map_err(store)?,
            files
                .share::<Ed25519>(keys.epoch, &ed25519)
                .map_err(store)?,
        );
        let (Some(bitcoin_share), Some(ed25519_share)) = opened else {
            return Err(VaultKeysError::Store(format!(
                "{} names keys whose shares this node does not hold",
                path.display()
            )));
        };
        let keys = match check_record(&keys, &bitcoin_share, &ed25519_share) {
            Ok(()) => keys,
            // A node stopped while it added a repaired member writes the shares before the
            // record: the shares' holders are the truth; every key must still match.
            Err(_) if same_keys(&keys, &record(keys.epoch, &bitcoin_share, &ed25519_share)) => {
                let derived = record(keys.epoch, &bitcoin_share, &ed25519_share);
                warn!(recorded = ?keys.holders, shares = ?derived.holders, "keys.json names other vault holders than the shares (a stop while a repaired member was added): rewritten from the shares");
                let json =
                    serde_json::to_vec_pretty(&derived).expect("the vault's keys must serialize");
                bulwark_vaultstore::files::write_private(&path, &json).map_err(store)?;
                derived
            }
            Err(e) => return Err(VaultKeysError::Store(format!("{}: {e}", path.display()))),
        };
        info!(bitcoin = %keys.bitcoin_xonly, ed25519 = %keys.ed25519, "loaded the vault's key shares");
        return Ok((Some(keys), files));
    }
    let Some(me_number) = member_of(me) else {
        info!("this node joined after genesis: it holds no vault share until the members that do repair one for it");
        return Ok((None, files));
    };
    // The randomness is stored before the first message leaves: a member that restarts
    // mid-ceremony sends the same packages again instead of a second polynomial.
    let mut seed = |chain: Chain| -> Result<[u8; 32], VaultKeysError> {
        if let Some(seed) = files.dkg_seed(chain, 0).map_err(store)? {
            info!(
                chain = chain.name(),
                "resuming the vault key generation with its stored randomness"
            );
            return Ok(seed);
        }
        let seed: [u8; 32] = rand::random();
        files.put_dkg_seed(chain, 0, &seed).map_err(store)?;
        Ok(seed)
    };
    let (bitcoin_seed, ed25519_seed) = (seed(Chain::Bitcoin)?, seed(Chain::Ed25519)?);
    let (mut bitcoin, first_bitcoin) = Run::<Taproot>::start(me_number, n, bitcoin_seed)?;
    let (mut ed25519, first_ed25519) = Run::<Ed25519>::start(me_number, n, ed25519_seed)?;
    let mut sent: Vec<(Option<Member>, Vec<u8>)> = vec![
        (None, frame(ROUND1, Chain::Bitcoin, &first_bitcoin)),
        (None, frame(ROUND1, Chain::Ed25519, &first_ed25519)),
    ];
    let send = |sender: &mut S, to: &Option<Member>, bytes: &[u8]| {
        let recipients = match to {
            None => Recipients::All,
            Some(m) => match participants.iter().nth(usize::from(*m) - 1) {
                Some(peer) => Recipients::One(peer.clone()),
                None => return,
            },
        };
        sender.send(recipients, IoBuf::from(bytes.to_vec()), false);
    };
    let mut last_status = String::new();
    loop {
        for (to, bytes) in &sent {
            send(&mut sender, to, bytes);
        }
        let deadline = context.current() + Duration::from_secs(1);
        loop {
            select! {
                _ = context.sleep_until(deadline) => break,
                message = receiver.recv() => {
                    let Ok((peer, bytes)) = message else {
                        return Err(VaultKeysError::Network);
                    };
                    let Some(from) = member_of(&peer) else { continue };
                    let bytes = bytes.as_ref();
                    if bytes.len() < 2 || bytes.len() > FRAME_BYTES_MAX || !(ROUND1..=CONFIRM).contains(&bytes[0]) {
                        warn!(%peer, len = bytes.len(), "vault key generation: malformed frame refused");
                        continue;
                    }
                    let mut out = Vec::new();
                    let result = match bytes[1] {
                        1 => bitcoin.receive(from, bytes[0], &bytes[2..], &mut out),
                        2 => ed25519.receive(from, bytes[0], &bytes[2..], &mut out),
                        _ => {
                            warn!(%peer, "vault key generation: unknown chain refused");
                            continue;
                        }
                    };
                    match result {
                        Ok(()) => {
                            for (to, bytes) in &out {
                                send(&mut sender, to, bytes);
                            }
                            sent.extend(out);
                        }
                        // A round-2 package that arrives before this member finished round 1
                        // comes again (every member resends each second).
                        Err(error @ VaultError::OutOfOrder { .. }) => {
                            tracing::debug!(%peer, %error, "vault key generation: early message")
                        }
                        // Two different packages from one member, or one that does not match
                        // its commitments: this run cannot end well.
                        Err(error @ (VaultError::Conflicting { .. } | VaultError::Crypto(_))) => {
                            return Err(VaultKeysError::Ceremony(format!("member {from}: {error}")));
                        }
                        Err(error) => warn!(%peer, %error, "vault key generation: message refused"),
                    }
                },
            }
        }
        if bitcoin.agreed(me_number, n)? && ed25519.agreed(me_number, n)? {
            break;
        }
        let status = format!(
            "round 1 from {}/{n}, taproot key {}, ed25519 key {}, confirmed {}+{}",
            bitcoin.round1.len(),
            if bitcoin.share.is_some() {
                "made"
            } else {
                "pending"
            },
            if ed25519.share.is_some() {
                "made"
            } else {
                "pending"
            },
            bitcoin.confirmations.len(),
            ed25519.confirmations.len(),
        );
        if status != last_status {
            info!(%status, "vault key generation in progress");
            last_status = status;
        }
    }
    let bitcoin_share = bitcoin.share.take().expect("agreed: the share exists");
    let ed25519_share = ed25519.share.take().expect("agreed: the share exists");
    let keys = store_shares(&mut files, &path, 0, &bitcoin_share, &ed25519_share).map_err(store)?;
    debug_assert_eq!(keys.members, n);
    // The shares are stored: the randomness that made them is no longer needed.
    files.forget_dkg_seed(Chain::Bitcoin, 0).map_err(store)?;
    files.forget_dkg_seed(Chain::Ed25519, 0).map_err(store)?;
    info!(bitcoin = %keys.bitcoin_xonly, ed25519 = %keys.ed25519, threshold = keys.threshold, "vault key generation complete; shares sealed by the vault backend");
    // Members still in the ceremony may need our messages: answer any message with everything
    // we sent, at most once a second per peer, for the life of the node.
    context
        .child("vault_answer")
        .spawn(move |context| async move {
            let mut answered: BTreeMap<Member, std::time::SystemTime> = BTreeMap::new();
            while let Ok((peer, _)) = receiver.recv().await {
                let Some(from) = participants
                    .iter()
                    .position(|p| *p == peer)
                    .map(|i| (i + 1) as Member)
                else {
                    continue;
                };
                let now = context.current();
                let due = answered.get(&from).is_none_or(|at| {
                    now.duration_since(*at).unwrap_or(Duration::ZERO) >= Duration::from_secs(1)
                });
                if !due {
                    continue;
                }
                answered.insert(from, now);
                for (to, bytes) in &sent {
                    if to.is_none() || *to == Some(from) {
                        sender.send(
                            Recipients::One(peer.clone()),
                            IoBuf::from(bytes.clone()),
                            false,
                        );
                    }
                }
            }
        });
    Ok((Some(keys), files))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    type Outbox = Vec<(Option<Member>, Vec<u8>)>;

    #[test]
    fn honest_members_agree_and_an_equivocating_member_is_caught_before_anything_is_stored() {
        let n = 4;
        // Honest run: everyone delivers everything; all four agree.
        let mut runs = BTreeMap::new();
        let mut pending: Vec<(Member, Outbox)> = Vec::new();
        for m in 1..=n {
            let (run, first) = Run::<Ed25519>::start(m, n, [m as u8; 32]).unwrap();
            runs.insert(m, run);
            pending.push((m, vec![(None, frame(ROUND1, Chain::Ed25519, &first))]));
        }
        run_to_quiet(&mut runs, pending);
        for (m, run) in &runs {
            assert!(run.agreed(*m, n).unwrap(), "member {m} agreed");
        }

        // Member 4 runs two polynomials: members 1, 2 and 4 see one, member 3 the other (with
        // round-2 packages that match it). Member 3 ends with another key; the confirmations
        // show it to everyone before anyone stores a share.
        let mut runs = BTreeMap::new();
        let mut firsts = BTreeMap::new();
        for m in 1..=n {
            let (run, first) = Run::<Ed25519>::start(m, n, [10 + m as u8; 32]).unwrap();
            runs.insert(m, run);
            firsts.insert(m, first);
        }
        let (mut twin, twin_first) = Run::<Ed25519>::start(4, n, [99; 32]).unwrap();
        let mut pending: Vec<(Member, Outbox)> = Vec::new();
        let mut twin_round2 = Vec::new();
        for m in 1..=3 {
            pending.push((m, vec![(None, frame(ROUND1, Chain::Ed25519, &firsts[&m]))]));
            // The twin hears the honest members' round 1 too; its package for member 3 goes
            // out after the rest.
            let mut out = Vec::new();
            twin.receive(m, ROUND1, &firsts[&m], &mut out).unwrap();
            twin_round2.extend(out.into_iter().filter(|(to, _)| *to == Some(3)));
        }
        pending.push((
            4,
            vec![(Some(1), frame(ROUND1, Chain::Ed25519, &firsts[&4]))],
        ));
        pending.push((
            4,
            vec![(Some(2), frame(ROUND1, Chain::Ed25519, &firsts[&4]))],
        ));
        pending.push((
            4,
            vec![(Some(3), frame(ROUND1, Chain::Ed25519, &twin_first))],
        ));
        // Member 4's own round-2 package for member 3 would come from the other polynomial:
        // the equivocator withholds it (the twin's went instead).
        run_to_quiet_except(&mut runs, pending, |from, to| from == 4 && to == Some(3));
        run_to_quiet(&mut runs, vec![(4, twin_round2)]);
        let keys: std::collections::BTreeSet<Vec<u8>> = runs
            .values()
            .filter_map(|r| r.share.as_ref().map(|s| s.group_key()))
            .collect();
        assert_eq!(keys.len(), 2, "member 3 was led to another key");
        for (m, run) in &runs {
            assert!(
                matches!(run.agreed(*m, n), Err(VaultKeysError::Disagreement { .. })),
                "member {m} sees the disagreement"
            );
        }
    }

    fn run_to_quiet(runs: &mut BTreeMap<Member, Run<Ed25519>>, pending: Vec<(Member, Outbox)>) {
        run_to_quiet_except(runs, pending, |_, _| false);
    }

    /// Delivers until no member produces anything; `drop` filters (sender, recipient) frames
    /// the sender withholds.
    fn run_to_quiet_except(
        runs: &mut BTreeMap<Member, Run<Ed25519>>,
        mut pending: Vec<(Member, Outbox)>,
        drop: impl Fn(Member, Option<Member>) -> bool,
    ) {
        while let Some((from, frames)) = pending.pop() {
            for (to, bytes) in frames {
                if drop(from, to) && bytes[0] == ROUND2 {
                    continue;
                }
                let recipients: Vec<Member> = runs
                    .keys()
                    .copied()
                    .filter(|m| *m != from && to.is_none_or(|t| t == *m))
                    .collect();
                for member in recipients {
                    let run = runs.get_mut(&member).unwrap();
                    let mut out = Vec::new();
                    match run.receive(from, bytes[0], &bytes[2..], &mut out) {
                        Ok(()) => {}
                        Err(VaultError::OutOfOrder { .. }) => {
                            // Delivered again later, as the resend would.
                            pending.insert(0, (from, vec![(Some(member), bytes.clone())]));
                            continue;
                        }
                        Err(e) => panic!("member {member} refused {from}'s frame: {e}"),
                    }
                    if !out.is_empty() {
                        pending.push((member, out));
                    }
                }
            }
        }
    }

    #[test]
    fn a_member_restarting_mid_ceremony_with_its_stored_randomness_still_agrees() {
        let n = 4;
        let mut runs = BTreeMap::new();
        let mut firsts = BTreeMap::new();
        for m in 1..=n {
            let (run, first) = Run::<Ed25519>::start(m, n, [40 + m as u8; 32]).unwrap();
            runs.insert(m, run);
            firsts.insert(m, first);
        }
        // Member 2 sent its round 1, then crashed; it restarts from the stored seed.
        let (restarted, again) = Run::<Ed25519>::start(2, n, [42; 32]).unwrap();
        assert_eq!(
            again, firsts[&2],
            "the same randomness makes the same round-1 package"
        );
        runs.insert(2, restarted);
        let pending = (1..=n)
            .map(|m| (m, vec![(None, frame(ROUND1, Chain::Ed25519, &firsts[&m]))]))
            .collect();
        run_to_quiet(&mut runs, pending);
        for (m, run) in &runs {
            assert!(run.agreed(*m, n).unwrap(), "member {m} agreed");
        }
    }

    #[test]
    fn the_record_is_derived_from_the_shares_and_a_doctored_field_differs() {
        let bitcoin = bulwark_vault::keygen::local::dkg::<Taproot>(4, [5; 32]).unwrap();
        let ed25519 = bulwark_vault::keygen::local::dkg::<Ed25519>(4, [6; 32]).unwrap();
        let keys = record(0, &bitcoin[&2], &ed25519[&2]);
        assert_eq!(
            keys,
            record(0, &bitcoin[&3], &ed25519[&3]),
            "one record per sharing"
        );
        assert_eq!((keys.members, keys.threshold), (4, 3));
        assert_eq!(&keys.bitcoin[2..], keys.bitcoin_xonly);
        check_record(&keys, &bitcoin[&1], &ed25519[&1]).unwrap();
        let other = bulwark_vault::keygen::local::dkg::<Ed25519>(4, [7; 32]).unwrap();
        assert!(check_record(&keys, &bitcoin[&1], &other[&1]).is_err());
        let fewer = VaultKeys {
            holders: vec![1, 2],
            members: 2,
            ..keys.clone()
        };
        assert!(check_record(&fewer, &bitcoin[&1], &ed25519[&1]).is_err());
        assert!(same_keys(&fewer, &keys), "only the holders differ");
        for doctored in [
            VaultKeys {
                threshold: 1,
                ..keys.clone()
            },
            VaultKeys {
                members: 7,
                ..keys.clone()
            },
            VaultKeys {
                bitcoin_xonly: "02".repeat(32),
                ..keys.clone()
            },
        ] {
            let refused = check_record(&doctored, &bitcoin[&1], &ed25519[&1]).unwrap_err();
            assert!(refused.contains("does not match"), "{refused}");
            assert!(!same_keys(&doctored, &keys) || doctored.members != keys.members);
        }
    }

    #[test]
    fn keys_json_round_trips_and_refuses_unknown_fields() {
        let keys = VaultKeys {
            epoch: 0,
            members: 4,
            threshold: 3,
            bitcoin: "02".repeat(33),
            bitcoin_xonly: "02".repeat(32),
            ed25519: "03".repeat(32),
            holders: vec![1, 2, 4],
        };
        let text = serde_json::to_string(&keys).unwrap();
        assert_eq!(serde_json::from_str::<VaultKeys>(&text).unwrap(), keys);
        let extra = text.replacen('{', "{\"extra\":1,", 1);
        assert!(serde_json::from_str::<VaultKeys>(&extra).is_err());
    }
}
