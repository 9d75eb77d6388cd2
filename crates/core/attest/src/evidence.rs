//! Evidence as it travels from a node to a verifier (JSON), and the application measurement.

use crate::dev::DevEvidence;
use crate::hexbytes::Sha256Digest;
use crate::launch::{LaunchEvent, LAUNCH_EVENTS_MAX};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// Largest evidence document accepted, in bytes.
pub const EVIDENCE_LEN_MAX: usize = 256 * 1024;
/// Most PCR values one piece of evidence may report.
pub const PCR_VALUES_MAX: usize = 24;

/// Errors decoding evidence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The document exceeds [`EVIDENCE_LEN_MAX`].
    #[error("evidence is {len} bytes, at most {EVIDENCE_LEN_MAX} accepted")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The document is not evidence JSON.
    #[error("evidence is not valid JSON evidence: {0}")]
    Json(#[from] serde_json::Error),
    /// Too many launch events.
    #[error("evidence carries {count} launch events, at most {LAUNCH_EVENTS_MAX}")]
    TooManyEvents {
        /// Count carried.
        count: usize,
    },
    /// Too many PCR values.
    #[error("evidence reports {count} PCR values, at most {PCR_VALUES_MAX}")]
    TooManyPcrs {
        /// Count reported.
        count: usize,
    },
}

/// TPM 2.0 quote evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmEvidence {
    /// SHA-256 of the node's TLS public key the node claims (the verifier uses the key it saw itself).
    pub node_key_sha256: Sha256Digest,
    /// Epoch the node claims.
    pub epoch: u64,
    /// Marshalled `TPMT_PUBLIC` of the attestation key.
    #[serde(with = "crate::hexbytes::vec")]
    pub ak_public: Vec<u8>,
    /// Marshalled `TPMS_ATTEST` the TPM signed.
    #[serde(with = "crate::hexbytes::vec")]
    pub attest: Vec<u8>,
    /// Marshalled `TPMT_SIGNATURE`.
    #[serde(with = "crate::hexbytes::vec")]
    pub signature: Vec<u8>,
    /// sha256-bank PCR values at the time of the quote.
    pub pcrs: BTreeMap<u8, Sha256Digest>,
    /// The launcher's log of what it extended into [`crate::launch::LAUNCH_PCR`]; the verifier
    /// replays it against the quoted value.
    pub launch_log: Vec<LaunchEvent>,
}

/// AMD SEV-SNP evidence: the report, the VCEK certificate that signed it and AMD's CRL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpEvidence {
    /// The 1184-byte attestation report; `report_data` = qualifying data ‖ 32 zero bytes.
    #[serde(with = "crate::hexbytes::vec")]
    pub report: Vec<u8>,
    /// The VCEK certificate, DER.
    #[serde(with = "crate::hexbytes::vec")]
    pub vcek: Vec<u8>,
    /// AMD's current CRL for the product, DER, signed by its ARK; empty when the node sent none
    /// (which the appraisal refuses).
    #[serde(
        default,
        with = "crate::hexbytes::vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub crl: Vec<u8>,
}

/// Intel TDX evidence: the quote and its DCAP collateral.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxEvidence {
    /// The quote; the TD report's `report_data` = qualifying data ‖ 32 zero bytes.
    #[serde(with = "crate::hexbytes::vec")]
    pub quote: Vec<u8>,
    /// DCAP collateral in the JSON form of `dcap_qvl::QuoteCollateralV3`.
    pub collateral: serde_json::Value,
}

/// Evidence of any supported kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "kebab-case")]
pub enum Evidence {
    /// A TPM 2.0 quote.
    Tpm2Quote(TpmEvidence),
    /// An AMD SEV-SNP report.
    SevSnp(SnpEvidence),
    /// An Intel TDX quote.
    Tdx(TdxEvidence),
    /// Insecure development evidence (software-signed, no hardware root of trust).
    DevInsecure(DevEvidence),
}

impl Evidence {
    /// Decodes bounded JSON evidence.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EvidenceError> {
        if bytes.len() > EVIDENCE_LEN_MAX {
            return Err(EvidenceError::TooLong { len: bytes.len() });
        }
        let evidence: Self = serde_json::from_slice(bytes)?;
        if let Self::Tpm2Quote(tpm) = &evidence {
            if tpm.pcrs.len() > PCR_VALUES_MAX {
                return Err(EvidenceError::TooManyPcrs {
                    count: tpm.pcrs.len(),
                });
            }
            if tpm.launch_log.len() > LAUNCH_EVENTS_MAX {
                return Err(EvidenceError::TooManyEvents {
                    count: tpm.launch_log.len(),
                });
            }
        }
        Ok(evidence)
    }

    /// The kind as written in JSON and in appraisals.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tpm2Quote(_) => "tpm2-quote",
            Self::SevSnp(_) => "sev-snp",
            Self::Tdx(_) => "tdx",
            Self::DevInsecure(_) => "dev-insecure",
        }
    }
}

/// The three digests a launch measures: into [`crate::launch::LAUNCH_PCR`] (TPM, one event each)
/// or into development evidence (as [`AppMeasurements::app_pcr_value`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppMeasurements {
    /// SHA-256 of the node binary.
    pub binary: Sha256Digest,
    /// SHA-256 of the node's config file.
    pub config: Sha256Digest,
    /// SHA-256 of the policy (signed manifest or audit policy) the node runs.
    pub policy: Sha256Digest,
}

impl AppMeasurements {
    /// The value a PCR holds after it starts at zero and is extended with binary, config and
    /// policy in that order (`PCR := SHA-256(PCR ‖ digest)`): the one value that names all three,
    /// which development manifests list.
    pub fn app_pcr_value(&self) -> [u8; 32] {
        let mut pcr = [0u8; 32];
        for digest in [self.binary, self.config, self.policy] {
            let mut hasher = Sha256::new();
            hasher.update(pcr);
            hasher.update(digest.as_bytes());
            pcr = hasher.finalize().into();
        }
        pcr
    }

    /// Hashes the three inputs.
    pub fn from_contents(binary: &[u8], config: &[u8], policy: &[u8]) -> Self {
        let h = |bytes: &[u8]| crate::hexbytes::HexBytes(Sha256::digest(bytes).into());
        Self {
            binary: h(binary),
            config: h(config),
            policy: h(policy),
        }
    }
}
