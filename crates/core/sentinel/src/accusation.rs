//! Accusations and self-proving evidence.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::MemberKey;

/// The signing namespace of accusations. Part of the protocol: changing it invalidates every
/// accusation.
pub const ACCUSATION_NAMESPACE: &[u8] = b"bulwark/sentinel/accusation/v1";

/// What a member is accused of. Each is evidence only the accuser saw (its own appraisal, its own
/// view of the leader's proposals, its own audit of the peer), so none convicts alone: see
/// [`crate::membership`] for how many distinct accusers it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grounds {
    /// The accuser's verifier appraised the member's evidence as contraindicated.
    Contraindicated,
    /// The member's appraisal lapsed: it did not answer the accuser's challenges in time.
    AppraisalLapsed,
    /// As leader, the member proposed blocks the accuser refused (a wrong root, a bad signature).
    RefusedProposals,
    /// The accuser saw two conflicting votes of the member for one view.
    ConflictingVotes,
    /// The engine recorded oracle faults of the member (outlying observations).
    OracleFaults,
    /// The member's configuration audit failed or is stale.
    AuditFailed,
    /// The member cast no vote for [`crate::Policy::silence_views`] views.
    Silence,
    /// The member asked the accuser for vault signature shares no finalized block authorizes
    /// (another destination, amount, output, fee or message), or sent it vault frames that do
    /// not check (a malformed package, nonces the accuser never published, a signed withdrawal
    /// or a signature share that does not verify).
    VaultRequests,
}

impl Grounds {
    /// Every kind, in code order.
    pub const ALL: [Grounds; 8] = [
        Grounds::Contraindicated,
        Grounds::AppraisalLapsed,
        Grounds::RefusedProposals,
        Grounds::ConflictingVotes,
        Grounds::OracleFaults,
        Grounds::AuditFailed,
        Grounds::Silence,
        Grounds::VaultRequests,
    ];

    /// The byte that stands for it in the signed message.
    pub fn code(self) -> u8 {
        match self {
            Grounds::Contraindicated => 1,
            Grounds::AppraisalLapsed => 2,
            Grounds::RefusedProposals => 3,
            Grounds::ConflictingVotes => 4,
            Grounds::OracleFaults => 5,
            Grounds::AuditFailed => 6,
            Grounds::Silence => 7,
            Grounds::VaultRequests => 8,
        }
    }

    /// The kind a [`Grounds::code`] stands for.
    pub fn from_code(code: u8) -> Option<Grounds> {
        Grounds::ALL.into_iter().find(|g| g.code() == code)
    }

    /// The [`crate::Policy`] field that holds its threshold.
    pub fn setting(self) -> &'static str {
        match self {
            Grounds::Contraindicated => "contraindicated",
            Grounds::AppraisalLapsed => "appraisal_lapsed",
            Grounds::RefusedProposals => "refused_proposals",
            Grounds::ConflictingVotes => "conflicting_votes",
            Grounds::OracleFaults => "oracle_faults",
            Grounds::AuditFailed => "audit_failed",
            Grounds::Silence => "silence",
            Grounds::VaultRequests => "vault_requests",
        }
    }
}

/// A member's signed statement that `accused` misbehaved on `grounds`, as seen at `at_ms` of
/// `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Accusation {
    /// Who accuses (its key signs).
    pub accuser: MemberKey,
    /// Who is accused.
    pub accused: MemberKey,
    /// Of what.
    pub grounds: Grounds,
    /// The epoch the accusation is for: it counts in no other.
    pub epoch: u64,
    /// The venue time (the engine clock of the newest block the accuser had, milliseconds) when
    /// it accused.
    pub at_ms: u64,
    /// Ed25519 signature (`R || s`) by `accuser` over [`Accusation::signed_message`].
    #[serde(with = "signature_hex")]
    pub signature: [u8; 64],
}

/// A signature did not verify, or a key is not a usable Ed25519 key (deliberately opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

impl Accusation {
    /// Signs an accusation with the accuser's node key.
    pub fn sign(
        key: &SigningKey,
        accused: MemberKey,
        grounds: Grounds,
        epoch: u64,
        at_ms: u64,
    ) -> Accusation {
        let mut accusation = Accusation {
            accuser: key.verifying_key().to_bytes(),
            accused,
            grounds,
            epoch,
            at_ms,
            signature: [0; 64],
        };
        accusation.signature = key.sign(&accusation.signed_message()).to_bytes();
        accusation
    }

    /// The bytes the accuser signs: the namespace, then accused, grounds, epoch and time. The
    /// accuser is the key that verifies.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(ACCUSATION_NAMESPACE.len() + 32 + 1 + 16);
        message.extend_from_slice(ACCUSATION_NAMESPACE);
        message.extend_from_slice(&self.accused);
        message.push(self.grounds.code());
        message.extend_from_slice(&self.epoch.to_le_bytes());
        message.extend_from_slice(&self.at_ms.to_le_bytes());
        message
    }

    /// Checks the signature under `accuser` (strict: no malleable signature, no weak key), the one
    /// rule every replica applies.
    pub fn verify(&self) -> Result<(), BadSignature> {
        verify_strict(&self.accuser, &self.signed_message(), &self.signature)
    }
}

/// The one rule for a member's signed statement (accusations here, oracle observations in the
/// engine): a usable, not small-order key, and a strict (non-malleable) Ed25519 signature.
pub fn verify_strict(
    key: &MemberKey,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), BadSignature> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| BadSignature)?;
    if key.is_weak() {
        return Err(BadSignature);
    }
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| BadSignature)
}

/// Evidence that convicts on its own: it carries the accused's own conflicting signatures, so
/// any replica can check it without trusting whoever reported it. The kinds live with the
/// statements they are about (the engine's oracle observations: `bulwark_engine`'s
/// `OracleEquivocation`), so this crate needs none of their formats.
pub trait SelfProof: Clone + std::fmt::Debug + PartialEq + Eq {
    /// The kind's name, kept in the convicted member's record.
    fn kind(&self) -> &'static str;

    /// Checks that the proof convicts `accused`.
    fn check(&self, accused: &MemberKey) -> Result<(), ProofError>;
}

/// Why a self-proof does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// A part was not signed by the accused.
    #[error("part of the proof was signed by {signer}, not by the accused")]
    NotTheAccused {
        /// Hex of the key that signed.
        signer: String,
    },
    /// A signature does not verify.
    #[error("a signature in the proof does not verify")]
    BadSignature,
    /// The statements do not conflict.
    #[error("no conflict: {0}")]
    NoConflict(&'static str),
}

mod signature_hex {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    #[test]
    fn an_accusation_verifies_only_as_signed() {
        let a = Accusation::sign(&key(1), [2; 32], Grounds::Silence, 3, 40);
        assert_eq!(a.verify(), Ok(()));
        let json = serde_json::to_string(&a).expect("json");
        assert_eq!(
            serde_json::from_str::<Accusation>(&json).expect("parses"),
            a
        );
        let changes: [fn(&mut Accusation); 6] = [
            |a| a.accused[0] ^= 1,
            |a| a.grounds = Grounds::AuditFailed,
            |a| a.epoch += 1,
            |a| a.at_ms += 1,
            |a| a.accuser = [3; 32],
            |a| a.signature[5] ^= 1,
        ];
        for change in changes {
            let mut forged = a;
            change(&mut forged);
            assert_eq!(forged.verify(), Err(BadSignature));
        }
        // A small-order "key" that anything would verify under is refused.
        let mut weak = a;
        weak.accuser = [0; 32];
        weak.accuser[0] = 1;
        assert_eq!(weak.verify(), Err(BadSignature));
    }
}
