//! Fault evidence: what a replica saw a named peer do wrong, for the sentinel to act on.
//!
//! Each record names the peer by its p2p public key. What is *provable* to a third party differs
//! by kind: a refused block is reproducible by anyone holding the parent state and the block
//! (re-execute and compare); malformed messages are only this replica's word; conflicting
//! threshold votes are reported by simplex unverified and are not attributable (another
//! 2f+1 could forge a partial), so they are marked as such.

use crate::replica::PublicKey;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Records kept in memory (the oldest are dropped first; counts stay exact).
pub const EVIDENCE_KEPT: usize = 4_096;

/// What the peer did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// As leader it proposed a block this replica refused (wrong root, bad signatures, bad
    /// height or time, or a block that does not match its consensus context).
    RefusedProposal,
    /// It sent bytes on the block channel that are not a block.
    MalformedBlock,
    /// It sent a malformed block request.
    MalformedRequest,
    /// It gossiped bytes that are not a transaction batch.
    MalformedGossip,
    /// simplex reported two notarize votes for different proposals in one view (unverified).
    ConflictingNotarize,
    /// simplex reported two finalize votes for different proposals in one view (unverified).
    ConflictingFinalize,
    /// simplex reported a nullify and a finalize in one view (unverified).
    NullifyFinalize,
    /// Its attestation evidence was appraised contraindicated (the detail is the signed
    /// appraisal, verifiable against this node's verifier key).
    Contraindicated,
    /// As an oracle member its signed observations sat beyond the deviation bound from the
    /// certified aggregate for too many consecutive rounds (the detail is the engine's fault
    /// evidence with the member's signed observation; `view` is the block height).
    OracleFault,
    /// It sent an oracle observation for a round far ahead of this node's clock
    /// (`oracle_feed::FUTURE_ROUNDS`): an attempt to occupy the oracle pool. The detail names
    /// the round; the observation was dropped before anything was stored.
    ImplausibleOracleRound,
    /// It sent a reshare message the running reshare refused (malformed, a dealing that does not
    /// match its commitment, a forged log, a message outside its role); `view` is the epoch the
    /// reshare is into.
    MalformedReshare,
    /// It sent bytes on the accusation channel that are not an accusation, or an accusation it
    /// signed whose signature does not verify.
    MalformedAccusation,
    /// Its appraisal lapsed: it did not answer this node's attestation challenges in time.
    AppraisalLapsed,
    /// Its configuration audit failed or went stale (the detail is the signed report).
    AuditFailed,
    /// It sent a chain deposit attestation that is not one, is not its own, does not verify,
    /// or contradicts one it signed for the same outpoint (the detail names both amounts).
    DepositAttestation,
    /// It sent bytes on the catch-up channel that are not a frame, a record (of a height this
    /// replica asked it for) whose block does not decode or whose certificate does not certify
    /// the block under the group key, or a public output that is not the committed one
    /// ([`crate::catchup`]). Answers nobody asked for are dropped unread, not recorded.
    MalformedCatchUp,
    /// It asked this member for a vault signature share that the ledger does not authorize, or
    /// sent a signed withdrawal that does not check (another destination, amount, output, fee
    /// or message, a malformed package, nonces this member never published). The detail is
    /// the member's refusal.
    VaultRequest,
}

impl Kind {
    /// The kind's snake-case name, as it is serialized.
    pub fn name(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => name,
            _ => format!("{self:?}"),
        }
    }

    /// What a kind of evidence is grounds for, if anything (the sentinel counts it against the
    /// peer). Malformed bytes are not: they may come from anyone on the path, and the transport
    /// already drops them.
    pub fn grounds(&self) -> Option<bulwark_sentinel::Grounds> {
        use bulwark_sentinel::Grounds;
        match self {
            Kind::RefusedProposal => Some(Grounds::RefusedProposals),
            Kind::ConflictingNotarize | Kind::ConflictingFinalize | Kind::NullifyFinalize => {
                Some(Grounds::ConflictingVotes)
            }
            Kind::Contraindicated => Some(Grounds::Contraindicated),
            Kind::OracleFault => Some(Grounds::OracleFaults),
            Kind::AppraisalLapsed => Some(Grounds::AppraisalLapsed),
            Kind::AuditFailed => Some(Grounds::AuditFailed),
            // Requests over the authenticated p2p that no honest member sends: each member that
            // received one counts it; f+1 accusers quarantine the sender.
            Kind::VaultRequest => Some(Grounds::VaultRequests),
            Kind::MalformedBlock
            | Kind::MalformedRequest
            | Kind::MalformedGossip
            | Kind::ImplausibleOracleRound
            | Kind::MalformedReshare
            | Kind::MalformedAccusation
            | Kind::DepositAttestation
            | Kind::MalformedCatchUp => None,
        }
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    /// What happened.
    pub kind: Kind,
    /// The peer's public key, hex.
    pub peer: String,
    /// The consensus view (or 0 when not tied to one).
    pub view: u64,
    /// Details (the refusal, the decode error).
    pub detail: String,
}

#[derive(Debug, Default)]
struct Inner {
    recent: VecDeque<Evidence>,
    counts: BTreeMap<String, u64>,
    by_kind: BTreeMap<String, u64>,
    total: u64,
}

/// The shared, bounded evidence record of one replica.
#[derive(Debug, Clone, Default)]
pub struct EvidenceLog {
    inner: Arc<Mutex<Inner>>,
}

impl EvidenceLog {
    /// Records one fault of `peer`.
    pub fn record(&self, kind: Kind, peer: &PublicKey, view: u64, detail: impl Into<String>) {
        let evidence = Evidence {
            kind,
            peer: crate::committee::public_key_hex(peer),
            view,
            detail: detail.into(),
        };
        tracing::warn!(peer = %evidence.peer, kind = ?evidence.kind, view, detail = %evidence.detail, "fault evidence");
        let mut inner = self
            .inner
            .lock()
            .expect("the evidence lock must not be poisoned");
        *inner.counts.entry(evidence.peer.clone()).or_default() += 1;
        *inner.by_kind.entry(evidence.kind.name()).or_default() += 1;
        inner.total += 1;
        if inner.recent.len() == EVIDENCE_KEPT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(evidence);
    }

    /// The records after the first `seen` since start that are still held, and the new count
    /// to pass next time: a reader that keeps up sees every record once.
    pub fn since(&self, seen: u64) -> (Vec<Evidence>, u64) {
        let inner = self
            .inner
            .lock()
            .expect("the evidence lock must not be poisoned");
        let new = usize::try_from(inner.total.saturating_sub(seen)).unwrap_or(usize::MAX);
        let skip = inner.recent.len().saturating_sub(new);
        (
            inner.recent.iter().skip(skip).cloned().collect(),
            inner.total,
        )
    }

    /// Records since start, per peer (hex key).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.inner
            .lock()
            .expect("the evidence lock must not be poisoned")
            .counts
            .clone()
    }

    /// Records since start, per kind (snake case, e.g. `refused_proposal`).
    pub fn counts_by_kind(&self) -> BTreeMap<String, u64> {
        self.inner
            .lock()
            .expect("the evidence lock must not be poisoned")
            .by_kind
            .clone()
    }

    /// All records since start.
    pub fn total(&self) -> u64 {
        self.inner
            .lock()
            .expect("the evidence lock must not be poisoned")
            .total
    }

    /// The most recent records, oldest first.
    pub fn recent(&self) -> Vec<Evidence> {
        self.inner
            .lock()
            .expect("the evidence lock must not be poisoned")
            .recent
            .iter()
            .cloned()
            .collect()
    }

    /// The newest `newest` records still held, each with its number since start (the first
    /// record is 1), oldest first.
    pub fn numbered(&self, newest: usize) -> Vec<(u64, Evidence)> {
        let inner = self
            .inner
            .lock()
            .expect("the evidence lock must not be poisoned");
        let first = inner.total - inner.recent.len() as u64 + 1;
        let skip = inner.recent.len().saturating_sub(newest);
        inner
            .recent
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, e)| (first + i as u64, e.clone()))
            .collect()
    }

    /// Record number `id` since start, if still held.
    pub fn numbered_record(&self, id: u64) -> Option<Evidence> {
        let inner = self
            .inner
            .lock()
            .expect("the evidence lock must not be poisoned");
        let first = inner.total - inner.recent.len() as u64 + 1;
        let at = usize::try_from(id.checked_sub(first)?).ok()?;
        inner.recent.get(at).cloned()
    }

    /// Records of `kind` against `peer` still held.
    pub fn against(&self, peer: &PublicKey, kind: &Kind) -> usize {
        let peer = crate::committee::public_key_hex(peer);
        self.inner
            .lock()
            .expect("the evidence lock must not be poisoned")
            .recent
            .iter()
            .filter(|e| e.peer == peer && e.kind == *kind)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{ed25519, Signer as _};

    #[test]
    fn records_are_counted_per_peer_and_per_kind() {
        let log = EvidenceLog::default();
        let a = ed25519::PrivateKey::from_seed(1).public_key();
        let b = ed25519::PrivateKey::from_seed(2).public_key();
        log.record(Kind::RefusedProposal, &a, 3, "bad root");
        log.record(Kind::RefusedProposal, &b, 4, "bad root");
        log.record(Kind::VaultRequest, &a, 0, "unauthorized");
        assert_eq!(
            log.counts_by_kind(),
            BTreeMap::from([
                ("refused_proposal".to_string(), 2),
                ("vault_request".to_string(), 1)
            ])
        );
        assert_eq!(log.counts().len(), 2);
        assert_eq!(log.total(), 3);
        let numbered = log.numbered(2);
        assert_eq!(numbered.len(), 2);
        assert_eq!(numbered[0].0, 2);
        assert_eq!(numbered[1].1.kind, Kind::VaultRequest);
        assert_eq!(log.numbered_record(1).map(|e| e.view), Some(3));
        assert_eq!(log.numbered_record(0), None);
        assert_eq!(log.numbered_record(4), None);
    }
}
