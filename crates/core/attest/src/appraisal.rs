//! The appraisal result: an EAR-like JSON document signed by the verifier.
//!
//! The signature covers [`APPRAISAL_NAMESPACE`] (length-prefixed) followed by the exact bytes of the
//! `payload` string, JWS-style: relying parties verify the bytes they received and only then parse
//! them, so no JSON canonicalisation is needed. See the crate README for the format.

use crate::canonical::signing_message;
use crate::hexbytes::{HexBytes, Sha256Digest};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Namespace of appraisal signatures. Changing it is a breaking change.
pub const APPRAISAL_NAMESPACE: &[u8] = b"bulwark/attest/appraisal/v1";
/// The `profile` every appraisal names.
pub const APPRAISAL_PROFILE: &str = "tag:bulwark.dev,2026:attest/appraisal/v1";
/// Default appraisal time-to-live.
pub const APPRAISAL_TTL_MS_DEFAULT: u64 = 60_000;
/// Largest signed appraisal accepted, in bytes.
pub const APPRAISAL_LEN_MAX: usize = 64 * 1024;

/// Trust tier, ordered from best to worst (as EAR's affirming / warning / contraindicated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Evidence matches the reference values.
    Affirming,
    /// Evidence matches, with something the operator should look at (e.g. a reboot).
    Warning,
    /// Evidence does not match or could not be trusted: the node must not be admitted.
    Contraindicated,
}

/// One reason behind the status. Reasons at `affirming` are informational.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// The status this reason alone implies.
    pub status: Status,
    /// Stable machine-readable code, e.g. `pcr-mismatch`.
    pub code: String,
    /// Human-readable detail naming the values involved.
    pub detail: String,
}

/// What the verifier learnt about the node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Role of the manifest appraised against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Release of the manifest appraised against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Quoted sha256-bank PCR values (TPM evidence).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pcrs: BTreeMap<u8, Sha256Digest>,
    /// TPM name of the attestation key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ak_name: Option<String>,
    /// TPM reset count at the quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_count: Option<u32>,
    /// TPM restart count at the quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
    /// TPM clock (ms) at the quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_clock_ms: Option<u64>,
    /// TPM firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<u64>,
    /// Application measurement (dev evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_measurement: Option<Sha256Digest>,
    /// TEE product (`milan`, `genoa`, `turin`, `tdx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee_product: Option<String>,
    /// SEV-SNP launch measurement or TDX MRTD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee_measurement: Option<crate::hexbytes::Measurement48>,
    /// TEE TCB as reported (SNP components, or TDX TEE TCB SVN hex and Intel's TCB status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee_tcb: Option<String>,
    /// True when the evidence had no hardware root of trust.
    pub insecure_dev: bool,
}

/// The appraisal payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appraisal {
    /// Always [`APPRAISAL_PROFILE`].
    pub profile: String,
    /// Overall status: the worst status among the reasons.
    pub status: Status,
    /// Evidence kind appraised (`tpm2-quote`, `dev-insecure`).
    pub evidence_kind: String,
    /// Why; empty only when nothing at all was noteworthy.
    pub reasons: Vec<Reason>,
    /// What was learnt.
    pub claims: Claims,
    /// Node identifier supplied by the caller.
    pub node_id: String,
    /// SHA-256 of the TLS public key this appraisal binds.
    pub node_key_sha256: Sha256Digest,
    /// Epoch the appraisal binds.
    pub epoch: u64,
    /// The verifier nonce that made the evidence fresh.
    pub nonce: HexBytes<32>,
    /// Issue time, Unix milliseconds.
    pub issued_at_ms: u64,
    /// End of validity (exclusive), Unix milliseconds.
    pub expires_at_ms: u64,
    /// The verifier's Ed25519 public key.
    pub verifier: HexBytes<32>,
}

/// Errors checking a signed appraisal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppraisalError {
    /// Larger than [`APPRAISAL_LEN_MAX`].
    #[error("appraisal is too long")]
    TooLong,
    /// Signed by another verifier than expected.
    #[error("appraisal signed by {found}, expected verifier {expected}")]
    WrongVerifier {
        /// Expected verifier key.
        expected: String,
        /// Key named in the document.
        found: String,
    },
    /// The signature does not verify.
    #[error("appraisal signature does not verify")]
    BadSignature,
    /// The payload is not an appraisal.
    #[error("appraisal payload malformed: {0}")]
    Malformed(String),
    /// The appraisal's time-to-live has passed.
    #[error("appraisal expired at {expires_at_ms} ms, now {now_ms} ms: re-attest")]
    Expired {
        /// End of validity.
        expires_at_ms: u64,
        /// Now.
        now_ms: u64,
    },
}

/// A signed appraisal as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedAppraisal {
    /// The verifier's public key (also inside the payload).
    pub verifier: HexBytes<32>,
    /// Compact JSON of an [`Appraisal`]; the signature covers exactly these bytes.
    pub payload: String,
    /// Ed25519 signature over the namespace-prefixed payload.
    pub signature: HexBytes<64>,
}

impl Appraisal {
    /// Adds a reason at `status`; the overall status is computed from the reasons when signing.
    pub(crate) fn push_reason(&mut self, status: Status, code: &str, detail: String) {
        self.reasons.push(Reason {
            status,
            code: code.to_owned(),
            detail,
        });
    }

    /// Adds a contraindicating reason: the node must not be admitted.
    pub(crate) fn refuse(&mut self, code: &str, detail: String) {
        self.push_reason(Status::Contraindicated, code, detail);
    }

    /// Signs this appraisal. `self.verifier` is overwritten with `key`'s public key.
    pub fn sign(mut self, key: &SigningKey) -> SignedAppraisal {
        self.verifier = HexBytes(key.verifying_key().to_bytes());
        let payload = serde_json::to_string(&self).expect("appraisals always serialize");
        let signature = key.sign(&signing_message(APPRAISAL_NAMESPACE, payload.as_bytes()));
        SignedAppraisal {
            verifier: self.verifier,
            payload,
            signature: HexBytes(signature.to_bytes()),
        }
    }
}

impl SignedAppraisal {
    /// Verifies the signature under `verifier`, parses the payload and checks it is current at `now_ms`.
    /// A contraindicated appraisal verifies fine: callers must look at its status.
    pub fn verify(
        &self,
        verifier: &VerifyingKey,
        now_ms: u64,
    ) -> Result<Appraisal, AppraisalError> {
        if self.payload.len() > APPRAISAL_LEN_MAX {
            return Err(AppraisalError::TooLong);
        }
        let expected = HexBytes(verifier.to_bytes());
        if self.verifier != expected {
            return Err(AppraisalError::WrongVerifier {
                expected: expected.to_hex(),
                found: self.verifier.to_hex(),
            });
        }
        verifier
            .verify_strict(
                &signing_message(APPRAISAL_NAMESPACE, self.payload.as_bytes()),
                &Signature::from_bytes(self.signature.as_bytes()),
            )
            .map_err(|_| AppraisalError::BadSignature)?;
        let appraisal: Appraisal = serde_json::from_str(&self.payload)
            .map_err(|error| AppraisalError::Malformed(error.to_string()))?;
        if appraisal.verifier != expected {
            return Err(AppraisalError::Malformed(
                "payload names another verifier".into(),
            ));
        }
        if now_ms >= appraisal.expires_at_ms {
            return Err(AppraisalError::Expired {
                expires_at_ms: appraisal.expires_at_ms,
                now_ms,
            });
        }
        Ok(appraisal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appraisal() -> Appraisal {
        Appraisal {
            profile: APPRAISAL_PROFILE.into(),
            status: Status::Affirming,
            evidence_kind: "tpm2-quote".into(),
            reasons: vec![],
            claims: Claims::default(),
            node_id: "n1".into(),
            node_key_sha256: HexBytes([1; 32]),
            epoch: 1,
            nonce: HexBytes([2; 32]),
            issued_at_ms: 1_000,
            expires_at_ms: 61_000,
            verifier: HexBytes([0; 32]),
        }
    }

    #[test]
    fn sign_verify_expire_tamper() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let signed = appraisal().sign(&key);
        let back = signed.verify(&key.verifying_key(), 2_000).expect("valid");
        assert_eq!(back.status, Status::Affirming);
        assert!(matches!(
            signed.verify(&key.verifying_key(), 61_000),
            Err(AppraisalError::Expired { .. })
        ));
        let mut tampered = signed.clone();
        tampered.payload = tampered.payload.replace("affirming", "warning");
        assert_eq!(
            tampered.verify(&key.verifying_key(), 2_000),
            Err(AppraisalError::BadSignature)
        );
        let other = SigningKey::from_bytes(&[6; 32]);
        assert!(matches!(
            signed.verify(&other.verifying_key(), 2_000),
            Err(AppraisalError::WrongVerifier { .. })
        ));
    }

    #[test]
    fn status_orders_worst_last() {
        assert!(Status::Affirming < Status::Warning);
        assert!(Status::Warning < Status::Contraindicated);
    }
}
