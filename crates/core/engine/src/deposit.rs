//! Chain deposits: credited only with a certificate of n − f committee members that observed the
//! same deposit (issue #14).
//!
//! A member's node key signs `DEPOSIT_NAMESPACE ‖ chain ‖ txid ‖ output ‖ account ‖ amount`
//! ([`ObservedDeposit::signed_message`]) for each deposit its own chain source shows;
//! `bulwark_vault::deposit::DepositPool` gathers those signatures into a [`DepositCertificate`].
//! [`SystemCommand::ChainDeposit`](crate::command::SystemCommand::ChainDeposit) carries one, and
//! [`DepositCertificate::check`] is the one rule every replica applies, against the current
//! epoch's members of the sentinel's committee. Each outpoint is credited once (the credited set
//! is under the state root).

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::command::AccountId;

/// The signing namespace of deposit attestations. Part of the protocol.
pub const DEPOSIT_NAMESPACE: &[u8] = b"bulwark/vault/deposit/v1";

/// Most signatures a certificate carries (the largest committee).
pub const CERTIFICATE_SIGNATURES_MAX: usize = bulwark_sentinel::membership::MEMBERS_MAX;

/// Where a deposit is on its chain: chain code, transaction, output.
pub type Outpoint = (u8, [u8; 32], u32);

/// A payment to the vault, as a member's chain source reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObservedDeposit {
    /// Which chain (`bulwark_vault::Chain::code`: 1 Bitcoin, 2 the Ed25519 chain).
    pub chain: u8,
    /// The transaction.
    pub txid: [u8; 32],
    /// The output of that transaction that pays the vault.
    pub output: u32,
    /// The venue account it credits (from the deposit address it paid).
    pub account: AccountId,
    /// Amount credited, micros (1 ..= i64::MAX).
    pub amount: i64,
}

impl ObservedDeposit {
    /// Where it is.
    pub fn outpoint(&self) -> Outpoint {
        (self.chain, self.txid, self.output)
    }

    /// namespace ‖ chain ‖ txid ‖ output ‖ account ‖ amount (big-endian).
    pub fn signed_message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(DEPOSIT_NAMESPACE.len() + 1 + 32 + 4 + 16);
        m.extend_from_slice(DEPOSIT_NAMESPACE);
        m.push(self.chain);
        m.extend_from_slice(&self.txid);
        m.extend_from_slice(&self.output.to_be_bytes());
        m.extend_from_slice(&self.account.0.to_be_bytes());
        m.extend_from_slice(&self.amount.to_be_bytes());
        m
    }

    /// Whether `signature` by `member` (an Ed25519 key) over this deposit verifies (strictly).
    pub fn verifies(&self, member: &[u8; 32], signature: &[u8; 64]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(member) else {
            return false;
        };
        key.verify_strict(&self.signed_message(), &Signature::from_bytes(signature))
            .is_ok()
    }
}

/// Two different deposits one member signed for the same outpoint. What an outpoint pays, and
/// to which account, is fixed by the chain (the transaction commits to its outputs), so an honest
/// member signs exactly one deposit per outpoint: this convicts on its own
/// (`bulwark_sentinel::SelfProof`), whoever reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositEquivocation {
    /// The member that signed both.
    pub member: [u8; 32],
    /// One deposit.
    pub first: ObservedDeposit,
    /// Its signature.
    #[serde(with = "hex64")]
    pub first_signature: [u8; 64],
    /// Another deposit at the same outpoint.
    pub second: ObservedDeposit,
    /// Its signature.
    #[serde(with = "hex64")]
    pub second_signature: [u8; 64],
}

impl bulwark_sentinel::SelfProof for DepositEquivocation {
    fn kind(&self) -> &'static str {
        "deposit-equivocation"
    }

    fn check(&self, accused: &[u8; 32]) -> Result<(), bulwark_sentinel::accusation::ProofError> {
        use bulwark_sentinel::accusation::ProofError;
        if &self.member != accused {
            return Err(ProofError::NotTheAccused {
                signer: hex::encode(self.member),
            });
        }
        if self.first.outpoint() != self.second.outpoint() {
            return Err(ProofError::NoConflict("deposits at different outpoints"));
        }
        if self.first == self.second {
            return Err(ProofError::NoConflict("the same deposit twice"));
        }
        for (deposit, signature) in [
            (&self.first, &self.first_signature),
            (&self.second, &self.second_signature),
        ] {
            bulwark_sentinel::verify_strict(accused, &deposit.signed_message(), signature)
                .map_err(|_| ProofError::BadSignature)?;
        }
        Ok(())
    }
}

/// One member's signature in a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberSignature {
    /// The member's Ed25519 node key.
    pub member: [u8; 32],
    /// Its signature over the deposit.
    #[serde(with = "hex64")]
    pub signature: [u8; 64],
}

/// n − f members' signatures over one deposit: what a block carries to credit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositCertificate {
    /// The deposit.
    pub deposit: ObservedDeposit,
    /// The members' signatures, sorted by member, distinct.
    pub signatures: Vec<MemberSignature>,
}

/// Why a certificate is refused. Every replica refuses the same certificate for the same reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// A signer is not a member of the current committee.
    #[error("{0} is not a member")]
    NotAMember(String),
    /// A signature does not verify.
    #[error("the signature of {0} does not verify")]
    BadSignature(String),
    /// Members unsorted or repeated, more signatures than members, or fewer than n − f.
    #[error("{0}")]
    Signers(String),
    /// The amount is not within 1 ..= i64::MAX.
    #[error("amount {0} is not positive")]
    Amount(i64),
}

/// n − f for a committee of n (f = ⌊(n − 1) / 3⌋).
pub fn quorum(n: usize) -> usize {
    n - n.saturating_sub(1) / 3
}

impl DepositCertificate {
    /// The one check: at least n − f distinct members of `members` signed this deposit, each
    /// signature valid, sorted and distinct, no more signatures than members, a positive amount.
    pub fn check(&self, members: &[[u8; 32]]) -> Result<(), CertificateError> {
        if self.deposit.amount <= 0 {
            return Err(CertificateError::Amount(self.deposit.amount));
        }
        if self.signatures.len() > members.len().min(CERTIFICATE_SIGNATURES_MAX) {
            return Err(CertificateError::Signers(format!(
                "{} signatures for {} members",
                self.signatures.len(),
                members.len()
            )));
        }
        if !self
            .signatures
            .windows(2)
            .all(|w| w[0].member < w[1].member)
        {
            return Err(CertificateError::Signers(
                "members not sorted and distinct".into(),
            ));
        }
        for MemberSignature { member, signature } in &self.signatures {
            let short = hex::encode(&member[..8]);
            if !members.contains(member) {
                return Err(CertificateError::NotAMember(short));
            }
            if !self.deposit.verifies(member, signature) {
                return Err(CertificateError::BadSignature(short));
            }
        }
        let need = quorum(members.len());
        if self.signatures.len() < need {
            return Err(CertificateError::Signers(format!(
                "{} members signed, {need} needed (n - f)",
                self.signatures.len()
            )));
        }
        Ok(())
    }
}

impl DepositCertificate {
    /// The rule a replica applies: [`DepositCertificate::check`] against the epoch's members,
    /// and every signer in good standing (a quarantined member no longer counts; the quorum
    /// stays n − f of the whole epoch committee).
    pub fn check_in(
        &self,
        membership: &bulwark_sentinel::Membership,
    ) -> Result<(), CertificateError> {
        if let Some(signer) = self
            .signatures
            .iter()
            .find(|s| !membership.is_admitted(&s.member))
        {
            if membership.members().contains(&signer.member) {
                return Err(CertificateError::NotAMember(format!(
                    "{} (quarantined)",
                    hex::encode(&signer.member[..8])
                )));
            }
        }
        self.check(membership.members())
    }
}

pub(crate) mod hex64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("expected 64 bytes"))
    }
}
