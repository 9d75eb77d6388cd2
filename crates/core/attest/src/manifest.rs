//! Reference-value manifests: what a node of one role and release is allowed to measure, signed by an
//! M-of-N set of operator keys.
//!
//! A manifest is refused unless at least `threshold` distinct operators of the configured
//! [`OperatorSet`] signed its canonical encoding under [`MANIFEST_NAMESPACE`], no signature comes from a
//! key outside that set, and the appraisal time lies inside `[issued_at_ms, expires_at_ms)`.

use crate::canonical::{signing_message, Encoder};
use crate::hexbytes::{HexBytes, Measurement48, Sha256Digest};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Namespace every manifest signature covers. Changing it is a breaking change.
pub const MANIFEST_NAMESPACE: &[u8] = b"bulwark/attest/manifest/v1";

/// At most this many operator signatures are looked at on one manifest.
pub const SIGNATURES_MAX: usize = 32;
/// At most this many operators in an [`OperatorSet`].
pub const OPERATORS_MAX: usize = 32;
/// At most this many allowed values per PCR, measurement list or key list.
pub const ALLOWED_VALUES_MAX: usize = 64;
/// Longest role or release name, in bytes.
pub const NAME_LEN_MAX: usize = 128;
/// Highest PCR index (PCRs 0..=23 on a PC-client TPM).
pub const PCR_INDEX_MAX: u8 = 23;

/// Errors refusing a manifest or an operator set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest carries no signature at all.
    #[error("manifest is unsigned: it needs signatures from {required} operators")]
    Unsigned {
        /// Signatures the operator set requires.
        required: usize,
    },
    /// A signature names a key that is not one of the operators; the whole manifest is refused.
    #[error("manifest signed by {key}, which is not an operator key")]
    SignerNotOperator {
        /// Hex of the foreign public key.
        key: String,
    },
    /// An operator's signature does not verify over this manifest.
    #[error("signature by operator {key} does not verify: the manifest was altered or signed under another namespace")]
    BadSignature {
        /// Hex of the operator public key.
        key: String,
    },
    /// The same operator signed twice.
    #[error("operator {key} signed more than once")]
    DuplicateSigner {
        /// Hex of the operator public key.
        key: String,
    },
    /// Fewer distinct operators signed than the threshold requires.
    #[error("manifest is under-signed: {valid} valid operator signatures, {required} required")]
    UnderSigned {
        /// Distinct valid operator signatures.
        valid: usize,
        /// Threshold.
        required: usize,
    },
    /// The manifest's validity ended before the appraisal time.
    #[error("manifest expired at {expires_at_ms} ms, appraisal time is {now_ms} ms")]
    Expired {
        /// End of validity, Unix milliseconds.
        expires_at_ms: u64,
        /// Appraisal time, Unix milliseconds.
        now_ms: u64,
    },
    /// The manifest is not valid yet.
    #[error("manifest is valid only from {issued_at_ms} ms, appraisal time is {now_ms} ms")]
    NotYetValid {
        /// Start of validity, Unix milliseconds.
        issued_at_ms: u64,
        /// Appraisal time, Unix milliseconds.
        now_ms: u64,
    },
    /// The manifest's content breaks a bound or a rule.
    #[error("manifest is malformed: {0}")]
    Malformed(String),
    /// The operator set itself is unusable.
    #[error("operator set is invalid: {0}")]
    InvalidOperatorSet(String),
}

/// The N operator keys and the number M of them that must sign a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSet {
    /// Ed25519 public keys of the operators.
    pub keys: Vec<HexBytes<32>>,
    /// How many distinct operators must sign (M).
    pub threshold: usize,
}

impl OperatorSet {
    /// Checks `1 <= threshold <= keys.len() <= OPERATORS_MAX`, no duplicate keys, every key a valid
    /// Ed25519 point.
    pub fn new(keys: Vec<HexBytes<32>>, threshold: usize) -> Result<Self, ManifestError> {
        let set = Self { keys, threshold };
        set.validate()?;
        Ok(set)
    }

    /// See [`OperatorSet::new`]; call it on sets read from a file.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.keys.is_empty() || self.keys.len() > OPERATORS_MAX {
            return Err(ManifestError::InvalidOperatorSet(format!(
                "{} keys; need 1 to {OPERATORS_MAX}",
                self.keys.len()
            )));
        }
        if self.threshold == 0 || self.threshold > self.keys.len() {
            return Err(ManifestError::InvalidOperatorSet(format!(
                "threshold {} with {} keys",
                self.threshold,
                self.keys.len()
            )));
        }
        let distinct: BTreeSet<_> = self.keys.iter().collect();
        if distinct.len() != self.keys.len() {
            return Err(ManifestError::InvalidOperatorSet("duplicate key".into()));
        }
        for key in &self.keys {
            VerifyingKey::from_bytes(key.as_bytes()).map_err(|_| {
                ManifestError::InvalidOperatorSet(format!("{key} is not an Ed25519 public key"))
            })?;
        }
        Ok(())
    }
}

/// Reference values for the sha256 PCR bank of a TPM 2.0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmReference {
    /// PCR index → the digests that PCR may hold (the boot PCRs). Every PCR listed must be quoted;
    /// a PCR not listed is not appraised. [`crate::launch::LAUNCH_PCR`] may not be listed: it is
    /// appraised by replaying the launch log against `launch`.
    pub pcrs: BTreeMap<u8, Vec<Sha256Digest>>,
    /// What a launch may measure into [`crate::launch::LAUNCH_PCR`].
    pub launch: LaunchReference,
}

/// The digests each kind of launch event may carry. Every event of a node's launch log must be
/// listed here for its kind, so a tampered binary, even one launched after an honest one, shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchReference {
    /// Allowed node binaries.
    pub binaries: Vec<Sha256Digest>,
    /// Allowed configurations (genesis files).
    pub configs: Vec<Sha256Digest>,
    /// Allowed policies (operator sets or manifests).
    pub policies: Vec<Sha256Digest>,
}

impl LaunchReference {
    /// The lists that allow exactly the launches of `measured` (each digest once).
    pub fn allowing<'a>(
        measured: impl IntoIterator<Item = &'a crate::evidence::AppMeasurements>,
    ) -> Self {
        let mut reference = LaunchReference {
            binaries: Vec::new(),
            configs: Vec::new(),
            policies: Vec::new(),
        };
        for m in measured {
            for (list, digest) in [
                (&mut reference.binaries, m.binary),
                (&mut reference.configs, m.config),
                (&mut reference.policies, m.policy),
            ] {
                if !list.contains(&digest) {
                    list.push(digest);
                }
            }
        }
        reference
    }

    /// The allowed digests for `kind`.
    pub fn allowed(&self, kind: crate::launch::EventKind) -> &[Sha256Digest] {
        match kind {
            crate::launch::EventKind::Binary => &self.binaries,
            crate::launch::EventKind::Config => &self.configs,
            crate::launch::EventKind::Policy => &self.policies,
        }
    }
}

/// AMD SEV-SNP reference values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpReference {
    /// Allowed launch measurements.
    pub measurements: Vec<Measurement48>,
    /// Minimum reported TCB, compared component by component.
    pub min_tcb: SnpTcb,
}

/// The four SEV-SNP TCB components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpTcb {
    /// Boot loader SVN.
    pub bootloader: u8,
    /// PSP OS (TEE) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Microcode patch level.
    pub microcode: u8,
}

/// Intel TDX reference values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxReference {
    /// Allowed MRTD values (the TD's initial contents).
    pub mrtd: Vec<Measurement48>,
    /// RTMR index (0..=3) → allowed values; an index not listed is not appraised.
    pub rtmrs: BTreeMap<u8, Vec<Measurement48>>,
    /// Minimum TEE TCB SVN, compared byte by byte.
    pub min_tee_tcb_svn: HexBytes<16>,
}

/// Acceptance of the insecure development attestor. Present only in manifests for laptops and CI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevReference {
    /// Must be `true`; spelled out so that nobody enables dev evidence by accident.
    pub allow_insecure_dev_evidence: bool,
    /// Ed25519 keys of development attestors whose evidence is accepted.
    pub signer_keys: Vec<HexBytes<32>>,
    /// Allowed application measurements (the value the application PCR would hold).
    pub app_measurements: Vec<Sha256Digest>,
}

/// Reference values for one node role and release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceManifest {
    /// Node role, e.g. `committee`.
    pub role: String,
    /// Release, e.g. `0.1.0`.
    pub release: String,
    /// Start of validity, Unix milliseconds.
    pub issued_at_ms: u64,
    /// End of validity (exclusive), Unix milliseconds.
    pub expires_at_ms: u64,
    /// TPM PCR reference values.
    #[serde(default)]
    pub tpm: Option<TpmReference>,
    /// SEV-SNP reference values.
    #[serde(default)]
    pub snp: Option<SnpReference>,
    /// TDX reference values.
    #[serde(default)]
    pub tdx: Option<TdxReference>,
    /// Development-attestor acceptance; absent in production manifests.
    #[serde(default)]
    pub dev: Option<DevReference>,
}

fn bounded<T>(what: &str, values: &[T]) -> Result<(), ManifestError> {
    if values.is_empty() || values.len() > ALLOWED_VALUES_MAX {
        return Err(ManifestError::Malformed(format!(
            "{what}: {} values, need 1 to {ALLOWED_VALUES_MAX}",
            values.len()
        )));
    }
    Ok(())
}

impl ReferenceManifest {
    /// Checks bounds and rules that do not depend on signatures or time.
    pub fn validate(&self) -> Result<(), ManifestError> {
        for (what, name) in [("role", &self.role), ("release", &self.release)] {
            if name.is_empty() || name.len() > NAME_LEN_MAX {
                return Err(ManifestError::Malformed(format!(
                    "{what} must be 1 to {NAME_LEN_MAX} bytes"
                )));
            }
        }
        if self.expires_at_ms <= self.issued_at_ms {
            return Err(ManifestError::Malformed(
                "expires_at_ms must be after issued_at_ms".into(),
            ));
        }
        if self.tpm.is_none() && self.snp.is_none() && self.tdx.is_none() && self.dev.is_none() {
            return Err(ManifestError::Malformed(
                "no reference values for any evidence kind".into(),
            ));
        }
        if let Some(tpm) = &self.tpm {
            if tpm.pcrs.is_empty() {
                return Err(ManifestError::Malformed("tpm.pcrs is empty".into()));
            }
            for (index, allowed) in &tpm.pcrs {
                if *index > PCR_INDEX_MAX {
                    return Err(ManifestError::Malformed(format!("PCR index {index} > 23")));
                }
                if *index == crate::launch::LAUNCH_PCR {
                    return Err(ManifestError::Malformed(format!(
                        "tpm.pcrs lists PCR {index}, the launch PCR: it is appraised by replaying the launch log against tpm.launch"
                    )));
                }
                bounded(&format!("tpm.pcrs[{index}]"), allowed)?;
            }
            bounded("tpm.launch.binaries", &tpm.launch.binaries)?;
            bounded("tpm.launch.configs", &tpm.launch.configs)?;
            bounded("tpm.launch.policies", &tpm.launch.policies)?;
        }
        if let Some(snp) = &self.snp {
            bounded("snp.measurements", &snp.measurements)?;
        }
        if let Some(tdx) = &self.tdx {
            bounded("tdx.mrtd", &tdx.mrtd)?;
            for (index, allowed) in &tdx.rtmrs {
                if *index > 3 {
                    return Err(ManifestError::Malformed(format!("RTMR index {index} > 3")));
                }
                bounded(&format!("tdx.rtmrs[{index}]"), allowed)?;
            }
        }
        if let Some(dev) = &self.dev {
            if !dev.allow_insecure_dev_evidence {
                return Err(ManifestError::Malformed(
                    "dev section present but allow_insecure_dev_evidence is false".into(),
                ));
            }
            bounded("dev.signer_keys", &dev.signer_keys)?;
            bounded("dev.app_measurements", &dev.app_measurements)?;
        }
        Ok(())
    }

    /// The canonical encoding signatures cover: fields in declaration order, big-endian fixed-width
    /// integers, u32-length-prefixed bytes and text, u32 counts, 0/1 for absent/present sections.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.str(&self.role)
            .str(&self.release)
            .u64(self.issued_at_ms)
            .u64(self.expires_at_ms);
        match &self.tpm {
            None => {
                e.u8(0);
            }
            Some(tpm) => {
                e.u8(1).count(tpm.pcrs.len());
                for (index, allowed) in &tpm.pcrs {
                    e.u8(*index).count(allowed.len());
                    for digest in allowed {
                        e.bytes(digest.as_bytes());
                    }
                }
                for list in [
                    &tpm.launch.binaries,
                    &tpm.launch.configs,
                    &tpm.launch.policies,
                ] {
                    e.count(list.len());
                    for digest in list {
                        e.bytes(digest.as_bytes());
                    }
                }
            }
        }
        match &self.snp {
            None => {
                e.u8(0);
            }
            Some(snp) => {
                e.u8(1).count(snp.measurements.len());
                for m in &snp.measurements {
                    e.bytes(m.as_bytes());
                }
                let tcb = snp.min_tcb;
                e.u8(tcb.bootloader)
                    .u8(tcb.tee)
                    .u8(tcb.snp)
                    .u8(tcb.microcode);
            }
        }
        match &self.tdx {
            None => {
                e.u8(0);
            }
            Some(tdx) => {
                e.u8(1).count(tdx.mrtd.len());
                for m in &tdx.mrtd {
                    e.bytes(m.as_bytes());
                }
                e.count(tdx.rtmrs.len());
                for (index, allowed) in &tdx.rtmrs {
                    e.u8(*index).count(allowed.len());
                    for m in allowed {
                        e.bytes(m.as_bytes());
                    }
                }
                e.bytes(tdx.min_tee_tcb_svn.as_bytes());
            }
        }
        match &self.dev {
            None => {
                e.u8(0);
            }
            Some(dev) => {
                e.u8(1).bool(dev.allow_insecure_dev_evidence);
                e.count(dev.signer_keys.len());
                for key in &dev.signer_keys {
                    e.bytes(key.as_bytes());
                }
                e.count(dev.app_measurements.len());
                for m in &dev.app_measurements {
                    e.bytes(m.as_bytes());
                }
            }
        }
        e.finish()
    }

    fn signing_message(&self) -> Vec<u8> {
        signing_message(MANIFEST_NAMESPACE, &self.canonical_bytes())
    }
}

/// One operator's signature over a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSignature {
    /// The operator's Ed25519 public key.
    pub operator: HexBytes<32>,
    /// Ed25519 signature over `MANIFEST_NAMESPACE`-prefixed canonical bytes.
    pub signature: HexBytes<64>,
}

/// A manifest with its operator signatures: the file format of `bulwark attest policy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    /// The reference values.
    pub manifest: ReferenceManifest,
    /// Operator signatures, any order.
    #[serde(default)]
    pub signatures: Vec<OperatorSignature>,
}

impl SignedManifest {
    /// Wraps a manifest with no signatures yet.
    pub fn unsigned(manifest: ReferenceManifest) -> Self {
        Self {
            manifest,
            signatures: Vec::new(),
        }
    }

    /// Adds (or replaces) `key`'s signature.
    pub fn sign_with(&mut self, key: &SigningKey) {
        let operator = HexBytes(key.verifying_key().to_bytes());
        let signature = key.sign(&self.manifest.signing_message());
        self.signatures.retain(|s| s.operator != operator);
        self.signatures.push(OperatorSignature {
            operator,
            signature: HexBytes(signature.to_bytes()),
        });
    }

    /// Verifies signatures against `operators`, then validity at `now_ms`, then content bounds.
    /// Returns the manifest only when all hold.
    pub fn verify(
        &self,
        operators: &OperatorSet,
        now_ms: u64,
    ) -> Result<&ReferenceManifest, ManifestError> {
        operators.validate()?;
        if self.signatures.is_empty() {
            return Err(ManifestError::Unsigned {
                required: operators.threshold,
            });
        }
        if self.signatures.len() > SIGNATURES_MAX {
            return Err(ManifestError::Malformed(format!(
                "{} signatures, at most {SIGNATURES_MAX}",
                self.signatures.len()
            )));
        }
        let message = self.manifest.signing_message();
        let mut signers = BTreeSet::new();
        for entry in &self.signatures {
            if !operators.keys.contains(&entry.operator) {
                return Err(ManifestError::SignerNotOperator {
                    key: entry.operator.to_hex(),
                });
            }
            if !signers.insert(entry.operator) {
                return Err(ManifestError::DuplicateSigner {
                    key: entry.operator.to_hex(),
                });
            }
            let key = VerifyingKey::from_bytes(entry.operator.as_bytes())
                .expect("operator keys must be valid points: OperatorSet::validate checked them");
            let signature = Signature::from_bytes(entry.signature.as_bytes());
            key.verify_strict(&message, &signature)
                .map_err(|_| ManifestError::BadSignature {
                    key: entry.operator.to_hex(),
                })?;
        }
        if signers.len() < operators.threshold {
            return Err(ManifestError::UnderSigned {
                valid: signers.len(),
                required: operators.threshold,
            });
        }
        self.check_validity(now_ms)
    }

    /// The time and content checks of [`SignedManifest::verify`] without the signature checks: for a
    /// manifest whose [`SignedManifest::fingerprint`] already verified under the same operator set.
    pub fn check_validity(&self, now_ms: u64) -> Result<&ReferenceManifest, ManifestError> {
        if now_ms < self.manifest.issued_at_ms {
            return Err(ManifestError::NotYetValid {
                issued_at_ms: self.manifest.issued_at_ms,
                now_ms,
            });
        }
        if now_ms >= self.manifest.expires_at_ms {
            return Err(ManifestError::Expired {
                expires_at_ms: self.manifest.expires_at_ms,
                now_ms,
            });
        }
        self.manifest.validate()?;
        Ok(&self.manifest)
    }

    /// SHA-256 over the canonical manifest and every signature, in order: equal fingerprints mean the
    /// same manifest with the same signatures.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.manifest.signing_message());
        hasher.update((self.signatures.len() as u64).to_be_bytes());
        for entry in &self.signatures {
            hasher.update(entry.operator.as_bytes());
            hasher.update(entry.signature.as_bytes());
        }
        hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn operators(n: u8, threshold: usize) -> OperatorSet {
        OperatorSet::new(
            (1..=n)
                .map(|i| HexBytes(key(i).verifying_key().to_bytes()))
                .collect(),
            threshold,
        )
        .expect("valid set")
    }

    fn launch() -> LaunchReference {
        LaunchReference {
            binaries: vec![HexBytes([1; 32])],
            configs: vec![HexBytes([2; 32])],
            policies: vec![HexBytes([3; 32])],
        }
    }

    fn manifest() -> ReferenceManifest {
        ReferenceManifest {
            role: "committee".into(),
            release: "0.1.0".into(),
            issued_at_ms: 1_000,
            expires_at_ms: 2_000,
            tpm: Some(TpmReference {
                pcrs: BTreeMap::from([(0, vec![HexBytes([7; 32])])]),
                launch: launch(),
            }),
            snp: None,
            tdx: None,
            dev: None,
        }
    }

    #[test]
    fn two_of_three_accepts_and_refuses() {
        let ops = operators(3, 2);
        let mut signed = SignedManifest::unsigned(manifest());
        assert_eq!(
            signed.verify(&ops, 1_500),
            Err(ManifestError::Unsigned { required: 2 })
        );
        signed.sign_with(&key(1));
        assert_eq!(
            signed.verify(&ops, 1_500),
            Err(ManifestError::UnderSigned {
                valid: 1,
                required: 2
            })
        );
        signed.sign_with(&key(1));
        assert_eq!(signed.signatures.len(), 1, "re-signing replaces");
        signed.sign_with(&key(3));
        assert!(signed.verify(&ops, 1_500).is_ok());
        assert!(matches!(
            signed.verify(&ops, 2_000),
            Err(ManifestError::Expired { .. })
        ));
        assert!(matches!(
            signed.verify(&ops, 999),
            Err(ManifestError::NotYetValid { .. })
        ));
    }

    #[test]
    fn foreign_signer_and_tampering_refused() {
        let ops = operators(3, 2);
        let mut signed = SignedManifest::unsigned(manifest());
        signed.sign_with(&key(1));
        signed.sign_with(&key(2));
        let mut foreign = signed.clone();
        foreign.sign_with(&key(9));
        assert!(matches!(
            foreign.verify(&ops, 1_500),
            Err(ManifestError::SignerNotOperator { .. })
        ));
        let mut tampered = signed.clone();
        tampered.manifest.expires_at_ms = 9_999;
        assert!(matches!(
            tampered.verify(&ops, 1_500),
            Err(ManifestError::BadSignature { .. })
        ));
        let mut duplicated = signed.clone();
        duplicated.signatures.push(signed.signatures[0].clone());
        assert!(matches!(
            duplicated.verify(&ops, 1_500),
            Err(ManifestError::DuplicateSigner { .. })
        ));
    }

    #[test]
    fn signature_under_other_namespace_refused() {
        let ops = operators(1, 1);
        let body = manifest().canonical_bytes();
        let wrong = key(1).sign(&signing_message(b"bulwark/attest/appraisal/v1", &body));
        let signed = SignedManifest {
            manifest: manifest(),
            signatures: vec![OperatorSignature {
                operator: HexBytes(key(1).verifying_key().to_bytes()),
                signature: HexBytes(wrong.to_bytes()),
            }],
        };
        assert!(matches!(
            signed.verify(&ops, 1_500),
            Err(ManifestError::BadSignature { .. })
        ));
    }

    #[test]
    fn canonical_bytes_differ_when_any_field_differs() {
        let a = manifest();
        let mut b = manifest();
        b.tpm = Some(TpmReference {
            pcrs: BTreeMap::from([(1, vec![HexBytes([7; 32])])]),
            launch: launch(),
        });
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
        let mut c = manifest();
        if let Some(tpm) = &mut c.tpm {
            tpm.launch.policies.push(HexBytes([4; 32]));
        }
        assert_ne!(a.canonical_bytes(), c.canonical_bytes());
        let json = serde_json::to_string(&a).expect("serializes");
        let back: ReferenceManifest = serde_json::from_str(&json).expect("parses");
        assert_eq!(a.canonical_bytes(), back.canonical_bytes());
    }

    #[test]
    fn the_launch_pcr_is_never_a_fixed_reference_and_launch_lists_are_bounded() {
        let mut m = manifest();
        if let Some(tpm) = &mut m.tpm {
            tpm.pcrs
                .insert(crate::launch::LAUNCH_PCR, vec![HexBytes([7; 32])]);
        }
        assert!(
            matches!(m.validate(), Err(ManifestError::Malformed(why)) if why.contains("launch PCR"))
        );
        let mut m = manifest();
        if let Some(tpm) = &mut m.tpm {
            tpm.launch.binaries.clear();
        }
        assert!(
            matches!(m.validate(), Err(ManifestError::Malformed(why)) if why.contains("binaries"))
        );
        assert!(manifest().validate().is_ok());
    }

    #[test]
    fn operator_set_bounds() {
        assert!(OperatorSet::new(vec![], 1).is_err());
        let one = vec![HexBytes(key(1).verifying_key().to_bytes())];
        assert!(OperatorSet::new(one.clone(), 2).is_err());
        assert!(OperatorSet::new(one.clone(), 0).is_err());
        assert!(OperatorSet::new([one.clone(), one].concat(), 1).is_err());
    }
}
