//! The sentinel's replicated state: the committee's trust, kept under the state root so that a
//! quarantine is decided, replayed and verified like every other input.
//!
//! The rules are `bulwark_sentinel`'s: [`crate::command::SystemCommand::Quarantine`] carries a
//! decision with its evidence, and the engine applies it only if
//! `bulwark_sentinel::Membership::check` accepts it at the engine's time. The self-proof the
//! engine knows is [`crate::oracle::OracleEquivocation`].

use serde::{Deserialize, Serialize};

use bulwark_sentinel::{Membership, Operators, Policy, Refusal};

/// A quarantine decision whose self-proofs are oracle equivocations.
pub type Decision = bulwark_sentinel::Quarantine<crate::oracle::OracleEquivocation>;

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
