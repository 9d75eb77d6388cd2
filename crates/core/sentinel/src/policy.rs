//! The sentinel's thresholds: configuration with safe defaults, validated before use.

use serde::{Deserialize, Serialize};

use crate::accusation::Grounds;

/// Largest accusation window, milliseconds (a day): bounds what a pool keeps.
pub const WINDOW_MAX: u64 = 86_400_000;

/// When a node accuses, and when accusations count. Part of the committee's configuration, so
/// every replica applies the same numbers. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// An accusation counts for this many milliseconds of venue time (the engine's clock) after
    /// the time it names, and not before it: older ones are stale, and f+1 of them must be recent
    /// together.
    pub window_ms: u64,
    /// How many times a node must see each kind of evidence against one peer within the window
    /// before it accuses that peer. Kinds a node sees once by accident (a refused proposal after a
    /// clock step, a lapsed appraisal after a restart) need more than one.
    pub contraindicated: u32,
    /// See [`Policy::contraindicated`].
    pub appraisal_lapsed: u32,
    /// See [`Policy::contraindicated`].
    pub refused_proposals: u32,
    /// See [`Policy::contraindicated`].
    pub conflicting_votes: u32,
    /// See [`Policy::contraindicated`].
    pub oracle_faults: u32,
    /// See [`Policy::contraindicated`].
    pub audit_failed: u32,
    /// A member that cast no vote for this many consecutive views is silent (one observation of
    /// [`Grounds::Silence`]); [`Policy::silence`] such observations make an accusation.
    pub silence_views: u64,
    /// See [`Policy::contraindicated`].
    pub silence: u32,
    /// See [`Policy::contraindicated`]. An honest member never sends what this counts (its
    /// requests follow the ledger every member reads), but a member records at most two a
    /// second per peer.
    pub vault_requests: u32,
    /// Most members quarantined at once; never more than f (liveness first), which is also the
    /// default (`None`).
    pub max_quarantined: Option<usize>,
    /// Fewest members the committee keeps: a quarantine that would leave fewer is refused.
    pub min_members: usize,
    /// A removed member may be re-admitted only this many milliseconds of venue time after the
    /// decision that convicted it (hysteresis: a member flapping between clean and caught does
    /// not flap in and out of the committee).
    pub readmit_hold_ms: u64,
    /// A join (re-admission or replacement) lapses when the epoch change has not come this many
    /// milliseconds of venue time after it was decided: a candidate that never shows up would
    /// otherwise stall the reshare, which is unanimous among its players. Between
    /// [`JOIN_LAPSE_MIN`] and [`WINDOW_MAX`].
    pub join_lapse_ms: u64,
}

/// Shortest [`Policy::join_lapse_ms`]: a candidate needs at least a few reshare attempts.
pub const JOIN_LAPSE_MIN: u64 = 30_000;

impl Default for Policy {
    fn default() -> Self {
        Self {
            window_ms: 600_000,
            contraindicated: 1,
            appraisal_lapsed: 3,
            refused_proposals: 3,
            conflicting_votes: 1,
            oracle_faults: 1,
            audit_failed: 2,
            // Minutes of a busy committee: a member restarting (an upgrade, a reboot) must not
            // look silent; one gone for good still does.
            silence_views: 600,
            silence: 1,
            vault_requests: 2,
            max_quarantined: None,
            min_members: 3,
            readmit_hold_ms: 3_600_000,
            // Six reshare attempts of 20 s.
            join_lapse_ms: 120_000,
        }
    }
}

/// A policy that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The window is 0 or above [`WINDOW_MAX`].
    #[error("window_ms is {0}: it must be 1..={WINDOW_MAX}")]
    Window(u64),
    /// A threshold is 0: the node would accuse on no evidence at all.
    #[error("{0} is 0: a node must see evidence at least once before it accuses")]
    ZeroThreshold(&'static str),
    /// `silence_views` is 0.
    #[error("silence_views is 0: every member would be silent")]
    ZeroSilence,
    /// `min_members` below 3: a committee of 1 or 2 cannot agree with anyone absent.
    #[error("min_members is {0}: at least 3")]
    MinMembers(usize),
    /// `readmit_hold_ms` above a day.
    #[error("readmit_hold_ms is {0}: at most {WINDOW_MAX}")]
    ReadmitHold(u64),
    /// `join_lapse_ms` outside its bounds.
    #[error("join_lapse_ms is {0}: it must be {JOIN_LAPSE_MIN}..={WINDOW_MAX}")]
    JoinLapse(u64),
}

impl Policy {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.window_ms == 0 || self.window_ms > WINDOW_MAX {
            return Err(PolicyError::Window(self.window_ms));
        }
        for grounds in Grounds::ALL {
            if self.threshold(grounds) == 0 {
                return Err(PolicyError::ZeroThreshold(grounds.setting()));
            }
        }
        if self.silence_views == 0 {
            return Err(PolicyError::ZeroSilence);
        }
        if self.min_members < 3 {
            return Err(PolicyError::MinMembers(self.min_members));
        }
        if self.readmit_hold_ms > WINDOW_MAX {
            return Err(PolicyError::ReadmitHold(self.readmit_hold_ms));
        }
        if !(JOIN_LAPSE_MIN..=WINDOW_MAX).contains(&self.join_lapse_ms) {
            return Err(PolicyError::JoinLapse(self.join_lapse_ms));
        }
        Ok(())
    }

    /// How many observations of `grounds` against one peer make a node accuse it.
    pub fn threshold(&self, grounds: Grounds) -> u32 {
        match grounds {
            Grounds::Contraindicated => self.contraindicated,
            Grounds::AppraisalLapsed => self.appraisal_lapsed,
            Grounds::RefusedProposals => self.refused_proposals,
            Grounds::ConflictingVotes => self.conflicting_votes,
            Grounds::OracleFaults => self.oracle_faults,
            Grounds::AuditFailed => self.audit_failed,
            Grounds::Silence => self.silence,
            Grounds::VaultRequests => self.vault_requests,
        }
    }

    /// Most members quarantined at once in a committee of `n`: the configured cap, never above f.
    pub fn quarantine_limit(&self, n: usize) -> usize {
        let f = crate::faults_tolerated(n);
        self.max_quarantined.map_or(f, |cap| cap.min(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_every_unsafe_setting_is_refused_by_name() {
        assert_eq!(Policy::default().validate(), Ok(()));
        let zero = Policy {
            refused_proposals: 0,
            ..Policy::default()
        };
        assert_eq!(
            zero.validate(),
            Err(PolicyError::ZeroThreshold("refused_proposals"))
        );
        for (policy, error) in [
            (
                Policy {
                    window_ms: 0,
                    ..Policy::default()
                },
                PolicyError::Window(0),
            ),
            (
                Policy {
                    window_ms: WINDOW_MAX + 1,
                    ..Policy::default()
                },
                PolicyError::Window(WINDOW_MAX + 1),
            ),
            (
                Policy {
                    silence_views: 0,
                    ..Policy::default()
                },
                PolicyError::ZeroSilence,
            ),
            (
                Policy {
                    min_members: 2,
                    ..Policy::default()
                },
                PolicyError::MinMembers(2),
            ),
            (
                Policy {
                    readmit_hold_ms: WINDOW_MAX + 1,
                    ..Policy::default()
                },
                PolicyError::ReadmitHold(WINDOW_MAX + 1),
            ),
            (
                Policy {
                    join_lapse_ms: 1_000,
                    ..Policy::default()
                },
                PolicyError::JoinLapse(1_000),
            ),
        ] {
            assert_eq!(policy.validate(), Err(error));
        }
    }

    #[test]
    fn no_setting_quarantines_more_than_f() {
        let p = Policy::default();
        assert_eq!(p.quarantine_limit(4), 1);
        assert_eq!(p.quarantine_limit(7), 2);
        let wide = Policy {
            max_quarantined: Some(10),
            ..Policy::default()
        };
        assert_eq!(wide.quarantine_limit(7), 2);
        let narrow = Policy {
            max_quarantined: Some(1),
            ..Policy::default()
        };
        assert_eq!(narrow.quarantine_limit(7), 1);
    }

    #[test]
    fn a_policy_file_with_an_unknown_field_is_refused() {
        assert!(serde_json::from_str::<Policy>(r#"{"window_ms": 10}"#).is_ok());
        assert!(serde_json::from_str::<Policy>(r#"{"windw_heights": 10}"#).is_err());
    }
}
