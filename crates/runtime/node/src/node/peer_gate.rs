//! The gate in front of the node's TPM on its client endpoint: only a committee peer (or a
//! listed candidate, all of them on one shared budget), with a
//! signature over this node, the time and the operation, at a bounded rate, reaches the
//! attestation, attestation-key, activation and audit-report handlers. Anyone else could keep the TPM busy
//! (starving the node's own admission answers) or use credential activation as a decryption
//! oracle.
//!
//! The checks, cheapest first and in an order in which no check spends a member's budget on a
//! stranger's bytes: member, time, signature, replay, rate.

use bulwark_api::wire::{peer_target, PeerAuth, PeerOp};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

/// Most a request's time may differ from this node's clock.
pub const CLOCK_SKEW_MS: u64 = 30_000;
/// Operations a peer may have served per second, sustained. Admission needs one quote per
/// interval (at least 500 ms) per appraiser, and enrollment two operations, once.
pub const PEER_OPS_PER_SECOND: f64 = 4.0;
/// Operations a peer may have served at once, after a pause.
pub const PEER_OPS_BURST: f64 = 8.0;
/// Signatures remembered per peer to refuse replays inside the time window (more than the
/// rate lets through in it).
const SEEN_PER_PEER: usize = 512;

/// Why a peer operation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateRefusal {
    /// The signer is not another member of this committee.
    #[error("{0} operations are served to committee peers only")]
    NotAPeer(&'static str),
    /// The request's time is too far from this node's clock.
    #[error(
        "the request is stamped {skew_ms} ms from this node's clock (at most {CLOCK_SKEW_MS} ms)"
    )]
    Stale {
        /// How far off, milliseconds.
        skew_ms: u64,
    },
    /// The signature does not verify for this node, time and operation.
    #[error(transparent)]
    Signature(#[from] bulwark_api::wire::PeerAuthError),
    /// The same signed request was already served.
    #[error("a replayed peer request")]
    Replayed,
    /// The peer asks faster than admission needs.
    #[error("peer rate limited: at most {PEER_OPS_PER_SECOND} TPM operations per second")]
    RateLimited,
}

struct Budget {
    tokens: f64,
    refilled: Instant,
    seen: VecDeque<[u8; 64]>,
    seen_set: HashSet<[u8; 64]>,
}

/// Which peers may use this node's TPM, and how much they have used.
pub struct PeerGate {
    /// What requests to this node are signed for ([`peer_target`] of committee and node).
    target: [u8; 32],
    members: HashSet<[u8; 32]>,
    /// Candidate peers (outside the genesis committee): admitted like members, but all of them
    /// together spend one budget, so listed candidates cannot crowd out the members' requests.
    candidates: HashSet<[u8; 32]>,
    budgets: Mutex<HashMap<[u8; 32], Budget>>,
}

/// The budget key all candidates share (no ed25519 key is all ones).
const CANDIDATES_BUDGET: [u8; 32] = [0xff; 32];

impl PeerGate {
    /// A gate for node `me` of `committee` admitting `members` (this node among them or not: it
    /// never serves itself).
    pub fn new(
        me: [u8; 32],
        committee: &[u8; 32],
        members: impl IntoIterator<Item = [u8; 32]>,
    ) -> PeerGate {
        PeerGate {
            target: peer_target(committee, &me),
            members: members.into_iter().filter(|m| *m != me).collect(),
            candidates: HashSet::new(),
            budgets: Mutex::new(HashMap::new()),
        }
    }

    /// Also admits `candidates` (peers outside the genesis committee), all of them together on
    /// one peer's budget.
    pub fn with_candidates(mut self, candidates: impl IntoIterator<Item = [u8; 32]>) -> PeerGate {
        self.candidates = candidates
            .into_iter()
            .filter(|c| !self.members.contains(c) && *c != CANDIDATES_BUDGET)
            .collect();
        self
    }

    /// Admits `op` under `auth` at `now_ms` (this node's clock) and `now` (its monotonic
    /// clock), or says why not. An admitted request has spent one operation of its peer's
    /// budget.
    pub fn admit(
        &self,
        auth: &PeerAuth,
        op: &PeerOp,
        now_ms: u64,
        now: Instant,
    ) -> Result<(), GateRefusal> {
        let candidate = self.candidates.contains(&auth.peer);
        if !self.members.contains(&auth.peer) && !candidate {
            return Err(GateRefusal::NotAPeer(op.name()));
        }
        let skew_ms = now_ms.abs_diff(auth.at_ms);
        if skew_ms > CLOCK_SKEW_MS {
            return Err(GateRefusal::Stale { skew_ms });
        }
        auth.verify(&self.target, op)?;
        let mut budgets = self
            .budgets
            .lock()
            .expect("the peer gate lock must not be poisoned");
        let spender = if candidate {
            CANDIDATES_BUDGET
        } else {
            auth.peer
        };
        let budget = budgets.entry(spender).or_insert_with(|| Budget {
            tokens: PEER_OPS_BURST,
            refilled: now,
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
        });
        if budget.seen_set.contains(&auth.signature) {
            return Err(GateRefusal::Replayed);
        }
        let elapsed = now.saturating_duration_since(budget.refilled).as_secs_f64();
        budget.tokens = (budget.tokens + elapsed * PEER_OPS_PER_SECOND).min(PEER_OPS_BURST);
        budget.refilled = now;
        if budget.tokens < 1.0 {
            return Err(GateRefusal::RateLimited);
        }
        budget.tokens -= 1.0;
        if budget.seen.len() >= SEEN_PER_PEER {
            if let Some(oldest) = budget.seen.pop_front() {
                budget.seen_set.remove(&oldest);
            }
        }
        budget.seen.push_back(auth.signature);
        budget.seen_set.insert(auth.signature);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ed25519_dalek::SigningKey;
    use std::time::Duration;

    const NOW: u64 = 1_800_000_000_000;
    const COMMITTEE: [u8; 32] = [77; 32];

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    /// What requests to member `i` of [`COMMITTEE`] are signed for.
    fn target(i: u8) -> [u8; 32] {
        peer_target(&COMMITTEE, &key(i).verifying_key().to_bytes())
    }

    fn gate() -> PeerGate {
        PeerGate::new(
            key(0).verifying_key().to_bytes(),
            &COMMITTEE,
            (0..4).map(|i| key(i).verifying_key().to_bytes()),
        )
    }

    #[test]
    fn strangers_forgers_stale_and_replayed_requests_are_refused() {
        let gate = gate();
        let me = target(0);
        let start = Instant::now();
        let op = PeerOp::Attest { nonce: [1; 32] };
        // A member asks: served.
        let good = PeerAuth::sign(&key(1), &me, NOW, &op);
        assert_eq!(gate.admit(&good, &op, NOW, start), Ok(()));
        // The same request again: a replay.
        assert_eq!(
            gate.admit(&good, &op, NOW + 5, start),
            Err(GateRefusal::Replayed)
        );
        // A stranger, and this node itself: not peers.
        let stranger = PeerAuth::sign(&key(9), &me, NOW, &op);
        assert!(matches!(
            gate.admit(&stranger, &op, NOW, start),
            Err(GateRefusal::NotAPeer("attest"))
        ));
        let itself = PeerAuth::sign(&key(0), &me, NOW, &op);
        assert!(matches!(
            gate.admit(&itself, &op, NOW, start),
            Err(GateRefusal::NotAPeer(_))
        ));
        // A stranger claiming a member's key without its secret: the signature fails.
        let forged = PeerAuth {
            peer: key(2).verifying_key().to_bytes(),
            ..stranger
        };
        assert!(matches!(
            gate.admit(&forged, &op, NOW, start),
            Err(GateRefusal::Signature(_))
        ));
        // A member's request meant for another node, or for another operation.
        let elsewhere = PeerAuth::sign(&key(1), &target(3), NOW, &op);
        assert!(matches!(
            gate.admit(&elsewhere, &op, NOW, start),
            Err(GateRefusal::Signature(_))
        ));
        // The same node key in another committee: its requests do not verify here.
        let other_committee = peer_target(&[78; 32], &key(0).verifying_key().to_bytes());
        let replayed = PeerAuth::sign(&key(1), &other_committee, NOW + 2, &op);
        assert!(matches!(
            gate.admit(&replayed, &op, NOW, start),
            Err(GateRefusal::Signature(_))
        ));
        let fresh = PeerAuth::sign(&key(1), &me, NOW + 1, &op);
        let activate = PeerOp::Activate {
            credential_blob: vec![1],
            encrypted_secret: vec![2],
        };
        assert!(matches!(
            gate.admit(&fresh, &activate, NOW, start),
            Err(GateRefusal::Signature(_))
        ));
        // Out of the time window, either way.
        let old = PeerAuth::sign(&key(1), &me, NOW - CLOCK_SKEW_MS - 1, &op);
        assert!(matches!(
            gate.admit(&old, &op, NOW, start),
            Err(GateRefusal::Stale { .. })
        ));
        let ahead = PeerAuth::sign(&key(1), &me, NOW + CLOCK_SKEW_MS + 1, &op);
        assert!(matches!(
            gate.admit(&ahead, &op, NOW, start),
            Err(GateRefusal::Stale { .. })
        ));
    }

    #[test]
    fn a_member_is_held_to_its_rate_and_forgeries_do_not_spend_it() {
        let gate = gate();
        let me = target(0);
        let start = Instant::now();
        let op = |i: u64| PeerOp::Attest {
            nonce: [i as u8; 32],
        };
        // Forgeries in the member's name first: they spend nothing.
        for i in 0..100 {
            let forged = PeerAuth {
                peer: key(1).verifying_key().to_bytes(),
                ..PeerAuth::sign(&key(9), &me, NOW, &op(i))
            };
            assert!(gate.admit(&forged, &op(i), NOW, start).is_err());
        }
        let ask = |i: u64, at: Instant| {
            let auth = PeerAuth::sign(&key(1), &me, NOW + i, &op(i));
            gate.admit(&auth, &op(i), NOW + i, at)
        };
        let served = (0..20).filter(|&i| ask(i, start).is_ok()).count();
        assert_eq!(served as f64, PEER_OPS_BURST);
        assert_eq!(ask(20, start), Err(GateRefusal::RateLimited));
        // Another member is not held back by the first.
        let other = PeerAuth::sign(&key(2), &me, NOW, &op(0));
        assert_eq!(gate.admit(&other, &op(0), NOW, start), Ok(()));
        // A second later the first has earned PEER_OPS_PER_SECOND more.
        let later = start + Duration::from_secs(1);
        let served = (21..40).filter(|&i| ask(i, later).is_ok()).count();
        assert_eq!(served as f64, PEER_OPS_PER_SECOND);
    }

    /// Listed candidates are admitted, but all of them together spend one peer's budget: a
    /// crowd of hostile candidates cannot keep the TPM from the members.
    #[test]
    fn candidates_share_one_budget_and_do_not_spend_the_members() {
        let gate = gate().with_candidates((10..13).map(|i| key(i).verifying_key().to_bytes()));
        let me = target(0);
        let start = Instant::now();
        let ask = |who: u8, i: u64| {
            let op = PeerOp::Attest {
                nonce: [i as u8; 32],
            };
            let auth = PeerAuth::sign(&key(who), &me, NOW + i, &op);
            gate.admit(&auth, &op, NOW + i, start)
        };
        let served = (0..30)
            .filter(|&i| ask(10 + (i % 3) as u8, i).is_ok())
            .count();
        assert_eq!(
            served as f64, PEER_OPS_BURST,
            "three candidates, one budget"
        );
        assert_eq!(ask(12, 31), Err(GateRefusal::RateLimited));
        assert_eq!(ask(1, 32), Ok(()), "a member keeps its own budget");
        assert_eq!(
            ask(20, 33),
            Err(GateRefusal::NotAPeer("attest")),
            "an unlisted key is no candidate"
        );
    }
}
