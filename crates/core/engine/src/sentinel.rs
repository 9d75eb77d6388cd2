//! The sentinel's replicated state: the committee's trust, kept under the state root so that a
//! quarantine is decided, replayed and verified like every other input.
//!
//! The rules are `bulwark_sentinel`'s: [`crate::command::SystemCommand::Quarantine`] carries a
//! decision with its evidence, and the engine applies it only if
//! `bulwark_sentinel::Membership::check` accepts it at the engine's time. The self-proofs the
//! engine knows are [`Proof`]s: an oracle member's two observations for one round, and a
//! member's two deposits for one outpoint.

use serde::{Deserialize, Serialize};

use bulwark_sentinel::{Membership, Operators, Policy, Refusal};

/// Evidence that convicts a member on its own signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proof {
    /// Two observations it signed for one feed and round.
    OracleEquivocation(crate::oracle::OracleEquivocation),
    /// Two deposits it signed for one outpoint.
    DepositEquivocation(crate::deposit::DepositEquivocation),
}

impl bulwark_sentinel::SelfProof for Proof {
    fn kind(&self) -> &'static str {
        match self {
            Proof::OracleEquivocation(proof) => proof.kind(),
            Proof::DepositEquivocation(proof) => proof.kind(),
        }
    }

    fn check(&self, accused: &[u8; 32]) -> Result<(), bulwark_sentinel::accusation::ProofError> {
        match self {
            Proof::OracleEquivocation(proof) => proof.check(accused),
            Proof::DepositEquivocation(proof) => proof.check(accused),
        }
    }
}

/// A quarantine decision whose self-proofs are the engine's [`Proof`]s.
pub type Decision = bulwark_sentinel::Quarantine<Proof>;

/// The sentinel's committee and policy. Part of [`crate::EngineConfig`], so part of the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentinelConfig {
    /// The committee members' Ed25519 keys (the keys their accusations are signed with);
    /// empty: no sentinel.
    pub members: Vec<[u8; 32]>,
    /// When accusations count (see `docs/sentinel.md`).
    pub policy: Policy,
    /// Who approves replacements (M of N); empty: no replacement can be approved.
    pub operators: Operators,
}

impl SentinelConfig {
    /// Whether a committee is configured.
    pub fn enabled(&self) -> bool {
        !self.members.is_empty()
    }

    /// The genesis trust state (epoch 0, everyone admitted), or `None` without a committee.
    pub fn membership(&self) -> Result<Option<Membership>, Refusal> {
        if !self.enabled() {
            return Ok(None);
        }
        Membership::new(0, self.members.clone(), self.policy.clone())?
            .with_operators(self.operators.clone())
            .map(Some)
    }
}
