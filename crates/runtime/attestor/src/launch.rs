//! A node's own TPM, as the node uses it at run time: measured launch into the application PCR,
//! quotes over a verifier's nonce, the AK's side of credential activation, and sealing a secret
//! to the measured state.
//!
//! This module compiles with or without the `tpm` feature so that callers need no feature of
//! their own: without it, [`NodeTpm::open`] fails with [`LaunchError::NotBuilt`], which says how
//! to get a build that has it.
//!
//! Measured launch: at start the node resets [`APP_PCR`] and extends it with the SHA-256 of its
//! binary, its configuration and its policy ([`AppMeasurements`]), so the PCR holds
//! [`AppMeasurements::app_pcr_value`]. When the configuration or policy changes on a running node,
//! [`NodeTpm::extend`] adds the new digest too: the PCR then holds a value no manifest lists, and
//! the next quote is contraindicated. [`NodeTpm::measure_launch`] serves a launcher (or a node
//! measuring itself); a production deployment should have the measurement made before the
//! binary runs (IMA or the launcher).

use bulwark_attest::evidence::{AppMeasurements, TpmEvidence};
#[cfg(feature = "tpm")]
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::tpm::{CredentialChallenge, APP_PCR, BOOT_PCRS};
use serde::{Deserialize, Serialize};

/// Why the node's TPM cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// This build has no TPM support.
    #[error("this build has no TPM support: rebuild with the `tpm` feature of bulwark-attestor (`--features bulwark-attestor/tpm`; needs Debian libtss2-dev, pkg-config, clang)")]
    NotBuilt,
    /// The TPM refused or failed an operation.
    #[error("TPM: {0}")]
    Device(String),
    /// A sealed secret does not unseal: the PCRs differ from sealing time, or another TPM.
    #[error("the sealed secret does not unseal: the measured state (boot PCRs, binary, config or policy) differs from when it was sealed, or this is another TPM ({0})")]
    Unseal(String),
}

/// A secret sealed by [`NodeTpm::seal`]; safe to store on disk (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBlob {
    /// Format tag, `bulwark/tpm-sealed/v1`.
    pub format: String,
    /// `TPM2B_PRIVATE` contents.
    #[serde(with = "bulwark_attest::hexbytes::vec")]
    pub private: Vec<u8>,
    /// Marshalled `TPMT_PUBLIC` of the sealed object.
    #[serde(with = "bulwark_attest::hexbytes::vec")]
    pub public: Vec<u8>,
    /// The sha256-bank PCRs the policy covers.
    pub pcrs: Vec<u8>,
}

/// The format tag of [`SealedBlob`].
pub const SEALED_FORMAT: &str = "bulwark/tpm-sealed/v1";

/// The PCRs secrets are sealed to and quotes cover: boot PCRs 0–7 and [`APP_PCR`].
pub fn measured_pcrs() -> Vec<u8> {
    let mut pcrs = BOOT_PCRS.to_vec();
    pcrs.push(APP_PCR);
    pcrs
}

/// The node's TPM.
pub struct NodeTpm {
    #[cfg(feature = "tpm")]
    device: crate::device::TpmDevice,
}

impl std::fmt::Debug for NodeTpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTpm").finish_non_exhaustive()
    }
}

/// True when this build can talk to a TPM.
pub const fn available() -> bool {
    cfg!(feature = "tpm")
}

#[cfg(feature = "tpm")]
fn device_error(error: crate::device::DeviceError) -> LaunchError {
    LaunchError::Device(error.to_string())
}

#[cfg(feature = "tpm")]
impl NodeTpm {
    /// Connects through a TCTI such as `swtpm:host=127.0.0.1,port=2321` or `device:/dev/tpmrm0`.
    pub fn open(tcti: &str) -> Result<Self, LaunchError> {
        let device = crate::device::TpmDevice::open(tcti).map_err(|e| {
            LaunchError::Device(format!(
                "{e}; is the TPM (or swtpm) running and the TCTI right?"
            ))
        })?;
        Ok(NodeTpm { device })
    }

    /// Measured launch: resets [`APP_PCR`] and extends binary, config and policy in that order.
    pub fn measure_launch(&mut self, measurements: &AppMeasurements) -> Result<(), LaunchError> {
        self.device.reset_pcr(APP_PCR).map_err(device_error)?;
        self.extend(&[
            measurements.binary.0,
            measurements.config.0,
            measurements.policy.0,
        ])
    }

    /// Extends [`APP_PCR`] with `digests` (a measured change, or a launcher's measurement).
    pub fn extend(&mut self, digests: &[[u8; 32]]) -> Result<(), LaunchError> {
        self.device
            .extend_pcr(APP_PCR, digests)
            .map_err(device_error)
    }

    /// The current values of [`measured_pcrs`].
    pub fn read_pcrs(&mut self) -> Result<std::collections::BTreeMap<u8, [u8; 32]>, LaunchError> {
        self.device
            .read_pcrs(&measured_pcrs())
            .map_err(device_error)
    }

    /// Marshalled `TPMT_PUBLIC` of the endorsement key (for the operators' EK inventory).
    pub fn ek_public(&mut self) -> Result<Vec<u8>, LaunchError> {
        self.device.ek_public().map_err(device_error)
    }

    /// The manufacturer's DER certificate of the RSA EK, from NV (checked against the trusted
    /// EK CAs with [`bulwark_attest::tpm::verify_ek_certificate`]).
    pub fn ek_certificate(&mut self) -> Result<Vec<u8>, LaunchError> {
        self.device
            .ek_certificate(bulwark_attest::tpm::EK_CERT_NV_RSA)
            .map_err(device_error)
    }

    /// Marshalled `TPMT_PUBLIC` of the attestation key.
    pub fn ak_public(&mut self) -> Result<Vec<u8>, LaunchError> {
        self.device.ak_public().map_err(device_error)
    }

    /// The AK's side of credential activation: recovers a verifier's credential.
    pub fn activate(
        &mut self,
        challenge: &CredentialChallenge,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, LaunchError> {
        self.device
            .activate_credential(challenge)
            .map_err(device_error)
    }

    /// A quote of [`measured_pcrs`] binding `qualifying_data`
    /// ([`bulwark_attest::nonce::qualifying_data`] of the verifier's nonce, the node key hash and epoch).
    pub fn evidence(
        &mut self,
        qualifying_data: &[u8; 32],
        node_key_sha256: [u8; 32],
        epoch: u64,
    ) -> Result<TpmEvidence, LaunchError> {
        let quote = self
            .device
            .quote_pcrs(qualifying_data, &measured_pcrs())
            .map_err(device_error)?;
        Ok(TpmEvidence {
            node_key_sha256: HexBytes(node_key_sha256),
            epoch,
            ak_public: self.ak_public()?,
            attest: quote.attest,
            signature: quote.signature,
            pcrs: quote
                .pcrs
                .iter()
                .map(|(index, value)| (*index, HexBytes(*value)))
                .collect(),
        })
    }

    /// Seals `secret` (at most 128 bytes) to the current values of [`measured_pcrs`].
    pub fn seal(&mut self, secret: &[u8]) -> Result<SealedBlob, LaunchError> {
        let sealed = self
            .device
            .seal(secret, &measured_pcrs())
            .map_err(device_error)?;
        Ok(SealedBlob {
            format: SEALED_FORMAT.into(),
            private: sealed.private,
            public: sealed.public,
            pcrs: sealed.pcrs,
        })
    }

    /// Unseals a [`SealedBlob`]; fails with [`LaunchError::Unseal`] when a covered PCR changed.
    pub fn unseal(
        &mut self,
        blob: &SealedBlob,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, LaunchError> {
        if blob.format != SEALED_FORMAT {
            return Err(LaunchError::Unseal(format!(
                "unknown sealed format {:?}",
                blob.format
            )));
        }
        let sealed = crate::device::SealedSecret {
            private: blob.private.clone(),
            public: blob.public.clone(),
            pcrs: blob.pcrs.clone(),
        };
        self.device
            .unseal(&sealed)
            .map_err(|e| LaunchError::Unseal(e.to_string()))
    }
}

#[cfg(not(feature = "tpm"))]
#[allow(clippy::unused_self, missing_docs)]
impl NodeTpm {
    /// Always [`LaunchError::NotBuilt`] in this build.
    pub fn open(_tcti: &str) -> Result<Self, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn measure_launch(&mut self, _: &AppMeasurements) -> Result<(), LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn extend(&mut self, _: &[[u8; 32]]) -> Result<(), LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn read_pcrs(&mut self) -> Result<std::collections::BTreeMap<u8, [u8; 32]>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn ek_public(&mut self) -> Result<Vec<u8>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn ek_certificate(&mut self) -> Result<Vec<u8>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn ak_public(&mut self) -> Result<Vec<u8>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn activate(
        &mut self,
        _: &CredentialChallenge,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn evidence(
        &mut self,
        _: &[u8; 32],
        _: [u8; 32],
        _: u64,
    ) -> Result<TpmEvidence, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn seal(&mut self, _: &[u8]) -> Result<SealedBlob, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn unseal(&mut self, _: &SealedBlob) -> Result<zeroize::Zeroizing<Vec<u8>>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
}
