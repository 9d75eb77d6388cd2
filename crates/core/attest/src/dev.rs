//! The development attestor: INSECURE, software-signed measurements for laptops and CI.
//!
//! It proves nothing about hardware: anyone holding the dev key can claim any measurement. A verifier
//! accepts its evidence only when the reference manifest carries a `dev` section with
//! `allow_insecure_dev_evidence: true` and lists the dev signer key; production manifests have none.

use crate::canonical::{signing_message, Encoder};
use crate::evidence::AppMeasurements;
use crate::hexbytes::{HexBytes, Sha256Digest};
use crate::nonce::{qualifying_data, Nonce};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Namespace of dev evidence signatures. Changing it is a breaking change.
pub const DEV_EVIDENCE_NAMESPACE: &[u8] = b"bulwark/attest/dev-evidence/v1";

/// The label every piece of dev evidence carries, checked by the verifier.
pub const INSECURE_LABEL: &str =
    "INSECURE DEVELOPMENT ATTESTATION: software-signed, no hardware root of trust";

/// Errors checking dev evidence.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DevError {
    /// The `insecure` label is missing or altered.
    #[error("dev evidence does not carry the insecure label")]
    MissingLabel,
    /// The signature does not verify.
    #[error("dev evidence signature does not verify")]
    BadSignature,
    /// The signer key is not a valid Ed25519 key.
    #[error("dev evidence signer is not an Ed25519 key")]
    BadSigner,
}

/// Software-signed measurements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevEvidence {
    /// Always [`INSECURE_LABEL`].
    pub insecure: String,
    /// The dev attestor's Ed25519 public key.
    pub signer: HexBytes<32>,
    /// SHA-256 of the node's TLS public key.
    pub node_key_sha256: Sha256Digest,
    /// Epoch.
    pub epoch: u64,
    /// Qualifying data computed from the verifier's nonce, key hash and epoch.
    pub qualifying_data: Sha256Digest,
    /// What was measured.
    pub measurements: AppMeasurements,
    /// Signature over [`DEV_EVIDENCE_NAMESPACE`]-prefixed canonical bytes.
    pub signature: HexBytes<64>,
}

impl DevEvidence {
    fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.str(&self.insecure)
            .bytes(self.signer.as_bytes())
            .bytes(self.node_key_sha256.as_bytes())
            .u64(self.epoch)
            .bytes(self.qualifying_data.as_bytes())
            .bytes(self.measurements.binary.as_bytes())
            .bytes(self.measurements.config.as_bytes())
            .bytes(self.measurements.policy.as_bytes());
        signing_message(DEV_EVIDENCE_NAMESPACE, &e.finish())
    }

    /// Checks the label and the signature (not whether the signer or measurements are allowed: that is
    /// the appraisal's job).
    pub fn verify_signature(&self) -> Result<(), DevError> {
        if self.insecure != INSECURE_LABEL {
            return Err(DevError::MissingLabel);
        }
        let key =
            VerifyingKey::from_bytes(self.signer.as_bytes()).map_err(|_| DevError::BadSigner)?;
        key.verify_strict(
            &self.canonical_bytes(),
            &Signature::from_bytes(self.signature.as_bytes()),
        )
        .map_err(|_| DevError::BadSignature)
    }
}

/// A development attestor holding a software key. Sans-IO: the caller supplies the key and the
/// measurements.
pub struct DevAttestor {
    key: SigningKey,
}

impl std::fmt::Debug for DevAttestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAttestor")
            .field("public", &hex::encode(self.key.verifying_key().to_bytes()))
            .finish_non_exhaustive()
    }
}

impl DevAttestor {
    /// An attestor with the given 32-byte Ed25519 secret.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(secret),
        }
    }

    /// The public key a dev manifest must list.
    pub fn public_key(&self) -> HexBytes<32> {
        HexBytes(self.key.verifying_key().to_bytes())
    }

    /// Produces labelled, signed dev evidence for the verifier's `nonce`.
    pub fn attest(
        &self,
        nonce: &Nonce,
        node_key_sha256: &[u8; 32],
        epoch: u64,
        measurements: AppMeasurements,
    ) -> DevEvidence {
        let mut evidence = DevEvidence {
            insecure: INSECURE_LABEL.to_owned(),
            signer: self.public_key(),
            node_key_sha256: HexBytes(*node_key_sha256),
            epoch,
            qualifying_data: HexBytes(qualifying_data(nonce, node_key_sha256, epoch)),
            measurements,
            signature: HexBytes([0; 64]),
        };
        evidence.signature = HexBytes(self.key.sign(&evidence.canonical_bytes()).to_bytes());
        evidence
    }
}
