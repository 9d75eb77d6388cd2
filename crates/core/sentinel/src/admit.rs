//! Members joining the committee: re-admission of a removed member and replacement of a
//! quarantined or removed one by a newcomer. Both are one transaction, [`Admit`], checked by
//! every replica by the one rule ([`crate::Membership::check_admit`]); the candidate joins at the
//! next epoch, as a player of the reshare.
//!
//! What an admission carries:
//! - [`Affirmation`]s by at least f+1 distinct admitted members, each a member's signed statement
//!   that its own verifier affirmed a fresh appraisal of the candidate's attestation evidence and
//!   that the candidate's newest signed audit report was clean, naming the digests of both. Like
//!   an accusation, each is what one member saw, so f colluding members cannot vouch a
//!   compromised node in: at least one affirmer is honest.
//! - For a replacement, [`Approval`]s by `quorum` distinct operators of the genesis file's
//!   operator set, each signing that this candidate takes this seat in this epoch.
//!
//! A re-admission needs no operator: a removed member that is clean again comes back on its
//! peers' appraisals alone, after the policy's hold time (hysteresis).

use ed25519_dalek::{Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use crate::accusation::{verify_strict, BadSignature};
use crate::MemberKey;

/// The signing namespace of affirmations. Changing it invalidates every affirmation.
pub const AFFIRMATION_NAMESPACE: &[u8] = b"bulwark/sentinel/affirmation/v1";
/// The signing namespace of operators' approvals. Changing it invalidates every approval.
pub const APPROVAL_NAMESPACE: &[u8] = b"bulwark/sentinel/operator-approval/v1";
/// Most operators a committee configures.
pub const OPERATORS_MAX: usize = 32;

/// An operator's Ed25519 public key.
pub type OperatorKey = [u8; 32];

/// A member's signed statement that `candidate` is fit to join: at `at_ms` of `epoch`, the
/// affirmer's own verifier held an affirming appraisal of it (SHA-256 `appraisal` of the signed
/// appraisal) and its newest signed audit report (SHA-256 `audit`) had no failure and was not
/// stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Affirmation {
    /// Who affirms (its key signs).
    pub affirmer: MemberKey,
    /// Who would join.
    pub candidate: MemberKey,
    /// The epoch it is for: it counts in no other.
    pub epoch: u64,
    /// Venue time of the statement, milliseconds.
    pub at_ms: u64,
    /// SHA-256 of the signed appraisal the affirmer's verifier made.
    #[serde(with = "hex32")]
    pub appraisal: [u8; 32],
    /// SHA-256 of the candidate's signed audit report the affirmer read.
    #[serde(with = "hex32")]
    pub audit: [u8; 32],
    /// Ed25519 signature by `affirmer` over [`Affirmation::signed_message`].
    #[serde(with = "hex64")]
    pub signature: [u8; 64],
}

impl Affirmation {
    /// Signs an affirmation with the affirmer's node key.
    pub fn sign(
        key: &SigningKey,
        candidate: MemberKey,
        epoch: u64,
        at_ms: u64,
        (appraisal, audit): ([u8; 32], [u8; 32]),
    ) -> Affirmation {
        let mut affirmation = Affirmation {
            affirmer: key.verifying_key().to_bytes(),
            candidate,
            epoch,
            at_ms,
            appraisal,
            audit,
            signature: [0; 64],
        };
        affirmation.signature = key.sign(&affirmation.signed_message()).to_bytes();
        affirmation
    }

    /// The bytes the affirmer signs: the namespace, candidate, epoch, time and both digests.
    pub fn signed_message(&self) -> Vec<u8> {
        [
            AFFIRMATION_NAMESPACE,
            &self.candidate,
            &self.epoch.to_le_bytes(),
            &self.at_ms.to_le_bytes(),
            &self.appraisal,
            &self.audit,
        ]
        .concat()
    }

    /// Checks the signature under `affirmer` (strict).
    pub fn verify(&self) -> Result<(), BadSignature> {
        verify_strict(&self.affirmer, &self.signed_message(), &self.signature)
    }
}

/// An operator's signed approval that `candidate` takes the seat of `replaces` in `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Approval {
    /// The operator's key (it signs).
    pub operator: OperatorKey,
    /// Ed25519 signature over [`Approval::signed_message`].
    #[serde(with = "hex64")]
    pub signature: [u8; 64],
}

impl Approval {
    /// The bytes an operator signs: the namespace, candidate, the seat it takes and the epoch.
    pub fn signed_message(candidate: &MemberKey, replaces: &MemberKey, epoch: u64) -> Vec<u8> {
        [
            APPROVAL_NAMESPACE,
            candidate,
            replaces,
            &epoch.to_le_bytes(),
        ]
        .concat()
    }

    /// Signs an approval with an operator's key.
    pub fn sign(
        key: &SigningKey,
        candidate: &MemberKey,
        replaces: &MemberKey,
        epoch: u64,
    ) -> Approval {
        Approval {
            operator: key.verifying_key().to_bytes(),
            signature: key
                .sign(&Approval::signed_message(candidate, replaces, epoch))
                .to_bytes(),
        }
    }

    /// Checks the signature under `operator` (strict).
    pub fn verify(
        &self,
        candidate: &MemberKey,
        replaces: &MemberKey,
        epoch: u64,
    ) -> Result<(), BadSignature> {
        verify_strict(
            &self.operator,
            &Approval::signed_message(candidate, replaces, epoch),
            &self.signature,
        )
    }
}

/// Which seat a candidate takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seat {
    /// A removed member comes back.
    Readmit,
    /// A newcomer takes the seat of a quarantined or removed member, approved by operators.
    Replace {
        /// The member whose seat it takes.
        replaces: MemberKey,
        /// At least the operator quorum of distinct operators' approvals.
        approvals: Vec<Approval>,
    },
}

/// The transaction that lets `candidate` join the committee at the next epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admit {
    /// Who joins.
    pub candidate: MemberKey,
    /// The epoch of the decision (it joins at the next).
    pub epoch: u64,
    /// f+1 distinct admitted members' affirmations of the candidate.
    pub affirmations: Vec<Affirmation>,
    /// Which seat.
    pub seat: Seat,
}

/// The operators that approve replacements: `quorum` of `keys`. Part of the committee's genesis
/// configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Operators {
    /// The operators' Ed25519 keys (hex in JSON); empty: replacements are refused.
    #[serde(with = "hex32_list")]
    pub keys: Vec<OperatorKey>,
    /// How many distinct operators must approve one replacement (M of N); at least 1, at most
    /// the number of keys, and more than half of them so that two disjoint groups of operators
    /// can never approve two candidates for one seat.
    pub quorum: usize,
}

/// An operator set that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorsError {
    /// More than [`OPERATORS_MAX`] keys, or a key twice, or a key that is no usable Ed25519 key.
    #[error("operators: {0}")]
    Keys(String),
    /// The quorum is 0, above the number of keys, or not a majority of them.
    #[error(
        "operators.quorum is {quorum} of {keys} keys: it must be a majority, at most all of them"
    )]
    Quorum {
        /// The configured quorum.
        quorum: usize,
        /// How many keys.
        keys: usize,
    },
}

impl Operators {
    /// Whether any operator is configured.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks the set: distinct usable keys, a majority quorum. An empty set with quorum 0 is
    /// valid (no replacements).
    pub fn validate(&self) -> Result<(), OperatorsError> {
        if self.keys.is_empty() {
            return if self.quorum == 0 {
                Ok(())
            } else {
                Err(OperatorsError::Quorum {
                    quorum: self.quorum,
                    keys: 0,
                })
            };
        }
        if self.keys.len() > OPERATORS_MAX {
            return Err(OperatorsError::Keys(format!(
                "{} keys, at most {OPERATORS_MAX}",
                self.keys.len()
            )));
        }
        let mut sorted = self.keys.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(OperatorsError::Keys("a key is listed twice".into()));
        }
        for key in &self.keys {
            let usable = ed25519_dalek::VerifyingKey::from_bytes(key)
                .map(|k| !k.is_weak())
                .unwrap_or(false);
            if !usable {
                return Err(OperatorsError::Keys(format!(
                    "{} is not a usable Ed25519 key",
                    hex::encode(key)
                )));
            }
        }
        let n = self.keys.len();
        if self.quorum == 0 || self.quorum > n || self.quorum * 2 <= n {
            return Err(OperatorsError::Quorum {
                quorum: self.quorum,
                keys: n,
            });
        }
        Ok(())
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

mod hex64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 64], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

mod hex32_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(keys: &[[u8; 32]], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(keys.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<[u8; 32]>, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        texts
            .iter()
            .map(|text| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(text, &mut out).map_err(serde::de::Error::custom)?;
                Ok(out)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    #[test]
    fn affirmations_and_approvals_verify_only_as_signed() {
        let a = Affirmation::sign(&key(1), [2; 32], 3, 40, ([4; 32], [5; 32]));
        assert_eq!(a.verify(), Ok(()));
        let json = serde_json::to_string(&a).expect("json");
        assert_eq!(
            serde_json::from_str::<Affirmation>(&json).expect("parses"),
            a
        );
        let changes: [fn(&mut Affirmation); 7] = [
            |a| a.candidate[0] ^= 1,
            |a| a.epoch += 1,
            |a| a.at_ms += 1,
            |a| a.appraisal[0] ^= 1,
            |a| a.audit[31] ^= 1,
            |a| a.affirmer = key(9).verifying_key().to_bytes(),
            |a| a.signature[5] ^= 1,
        ];
        for change in changes {
            let mut forged = a;
            change(&mut forged);
            assert_eq!(forged.verify(), Err(BadSignature));
        }
        let approval = Approval::sign(&key(7), &[2; 32], &[3; 32], 1);
        assert_eq!(approval.verify(&[2; 32], &[3; 32], 1), Ok(()));
        // Bound to the candidate, the seat and the epoch.
        assert!(approval.verify(&[9; 32], &[3; 32], 1).is_err());
        assert!(approval.verify(&[2; 32], &[9; 32], 1).is_err());
        assert!(approval.verify(&[2; 32], &[3; 32], 2).is_err());
    }

    #[test]
    fn an_operator_set_needs_a_majority_quorum_of_distinct_keys() {
        let keys: Vec<OperatorKey> = (1..=3).map(|i| key(i).verifying_key().to_bytes()).collect();
        let ops = |keys: Vec<OperatorKey>, quorum| Operators { keys, quorum };
        assert_eq!(Operators::default().validate(), Ok(()));
        assert_eq!(ops(keys.clone(), 2).validate(), Ok(()));
        assert_eq!(ops(keys.clone(), 3).validate(), Ok(()));
        for quorum in [0, 1, 4] {
            assert!(matches!(
                ops(keys.clone(), quorum).validate(),
                Err(OperatorsError::Quorum { .. })
            ));
        }
        // Two of four is not a majority: two disjoint pairs could approve two candidates.
        let mut four = keys.clone();
        four.push(key(4).verifying_key().to_bytes());
        assert!(ops(four.clone(), 2).validate().is_err());
        assert_eq!(ops(four, 3).validate(), Ok(()));
        let mut twice = keys.clone();
        twice.push(keys[0]);
        assert!(matches!(
            ops(twice, 3).validate(),
            Err(OperatorsError::Keys(_))
        ));
        let mut weak = keys;
        weak[0] = [0; 32];
        weak[0][0] = 1;
        assert!(matches!(
            ops(weak, 2).validate(),
            Err(OperatorsError::Keys(_))
        ));
        assert!(ops(vec![], 1).validate().is_err());
        let json = serde_json::to_string(&ops(vec![[7; 32]], 1)).expect("json");
        assert!(json.contains(&hex::encode([7; 32])), "{json}");
    }
}
