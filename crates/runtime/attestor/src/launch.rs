//! A node's own TPM, as the node and its launcher use it at run time: measured launch into the
//! launch PCR with its event log, quotes over a verifier's nonce, the AK's side of credential
//! activation, and sealing a secret to the measured state.
//!
//! This module compiles with or without the `tpm` feature so that callers need no feature of
//! their own: without it, [`NodeTpm::open`] fails with [`LaunchError::NotBuilt`], which says how
//! to get a build that has it.
//!
//! Measured launch: before the node runs, its launcher ([`NodeTpm::launch`], `bulwark attest
//! measure`) appends the SHA-256 of the node's binary, configuration and policy to the launch log
//! and extends [`LAUNCH_PCR`] with them. That PCR resets only with the platform, so a binary that
//! was measured can only extend it further: it can never make the PCR hold what an honest launch
//! leaves, and a verifier replaying the log refuses every digest its manifest does not list (see
//! [`bulwark_attest::launch`]). A node does not measure itself: a tampered binary would simply
//! measure the honest digests. When the configuration or policy changes on a running node,
//! [`NodeTpm::extend_logged`] measures the new digest too, and the next quote shows it.
//!
//! The launcher is the root of this chain, and nothing attests it yet: extending [`LAUNCH_PCR`]
//! is open to every process that can reach the TPM, so a tampered binary that is never measured
//! (started without the launcher, or before it after a reboot) can extend the honest digests
//! itself. Closing that needs the kernel to measure every executable (IMA, PCR 10) and the
//! verifier to appraise that log too; it is not built.

use bulwark_attest::evidence::{AppMeasurements, TpmEvidence};
#[cfg(feature = "tpm")]
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::launch::{self, LaunchEvent, LogError, LAUNCH_EVENTS_MAX, LAUNCH_PCR};
use bulwark_attest::tpm::{CredentialChallenge, BOOT_PCRS};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How many launch-PCR values a sealed secret opens under (TPM2_PolicyOR takes at most 8): the
/// node seals again at every start, so this bounds only launches in a row that die before they
/// open the keystore.
pub const SEAL_LAUNCHES_AHEAD: usize = 8;

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
    /// The launch log cannot be read, written or trusted.
    #[error("launch log {path}: {reason}")]
    Log {
        /// The log file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn log_error(path: &Path, reason: impl std::fmt::Display) -> LaunchError {
    LaunchError::Log {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads a launch log file; a missing file is an empty log.
pub fn read_log(path: &Path) -> Result<Vec<LaunchEvent>, LaunchError> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(log_error(path, e)),
    };
    // Each line is well under 200 bytes; a file far larger than a full log is refused, and
    // never read past that bound.
    let bound = LAUNCH_EVENTS_MAX * 256;
    let mut text = Vec::new();
    file.take(bound as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| log_error(path, e))?;
    if text.len() > bound {
        return Err(log_error(
            path,
            LogError::TooLong {
                count: LAUNCH_EVENTS_MAX + 1,
            },
        ));
    }
    let text = String::from_utf8(text).map_err(|_| log_error(path, "not UTF-8"))?;
    launch::parse_log(&text).map_err(|e| log_error(path, e))
}

/// Replaces the log file with `events`, atomically (a temporary file, synced, then renamed).
pub fn write_log(path: &Path, events: &[LaunchEvent]) -> Result<(), LaunchError> {
    use std::io::Write as _;
    let text: String = events.iter().map(launch::log_line).collect();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| log_error(path, "not a file path"))?
        .to_string_lossy();
    let temporary = dir.join(format!(
        ".{name}.{:016x}",
        rand_core::RngCore::next_u64(&mut rand_core::OsRng)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(|e| log_error(path, e))
}

/// The launch log's lock (`<log>.lock`), held exclusively until dropped, so that a launcher and
/// a running node never rewrite the log at the same time.
#[derive(Debug)]
pub struct LogLock {
    _file: std::fs::File,
}

/// Takes the lock of the launch log at `log_path`, waiting for whoever holds it.
pub fn lock_log(log_path: &Path) -> Result<LogLock, LaunchError> {
    let mut name = log_path.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| log_error(&path, e))?;
    file.lock().map_err(|e| log_error(&path, e))?;
    Ok(LogLock { _file: file })
}

/// The events of `log` that [`LAUNCH_PCR`]'s value `pcr` accounts for. A launcher writes the log
/// before it extends, so a launcher that died between the two leaves events the PCR never saw:
/// the longest prefix that replays to `pcr` is kept. After a platform reset (`pcr` zero) that is
/// the empty prefix. `None` when no prefix replays to `pcr`: the log was lost or altered, and only
/// a platform reset starts a log the PCR agrees with again.
pub fn reconcile(log: &[LaunchEvent], pcr: &[u8; 32]) -> Option<usize> {
    let mut value = [0u8; 32];
    let mut best = (value == *pcr).then_some(0);
    for (index, event) in log.iter().enumerate() {
        value = launch::replay_from(value, std::iter::once(event));
        if value == *pcr {
            best = Some(index + 1);
        }
    }
    best
}

/// A secret sealed by [`NodeTpm::seal_for_launches`]; safe to store on disk (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBlob {
    /// Format tag, [`SEALED_FORMAT`].
    pub format: String,
    /// `TPM2B_PRIVATE` contents.
    #[serde(with = "bulwark_attest::hexbytes::vec")]
    pub private: Vec<u8>,
    /// Marshalled `TPMT_PUBLIC` of the sealed object.
    #[serde(with = "bulwark_attest::hexbytes::vec")]
    pub public: Vec<u8>,
    /// The sha256-bank PCRs the policy covers.
    pub pcrs: Vec<u8>,
    /// The PolicyPCR digests the object's PolicyOR joins (one per launch it may open after).
    pub branches: Vec<bulwark_attest::hexbytes::Sha256Digest>,
}

#[cfg(feature = "tpm")]
impl SealedBlob {
    /// The blob as the device unseals it.
    pub fn sealed_secret(&self) -> crate::device::SealedSecret {
        crate::device::SealedSecret {
            private: self.private.clone(),
            public: self.public.clone(),
            pcrs: self.pcrs.clone(),
            branches: self.branches.iter().map(|b| b.0).collect(),
        }
    }
}

/// The format tag of [`SealedBlob`].
pub const SEALED_FORMAT: &str = "bulwark/tpm-sealed/v2";
/// The tag of blobs sealed to the resettable PCR 23 by earlier releases, refused by name.
pub const SEALED_FORMAT_V1: &str = "bulwark/tpm-sealed/v1";

/// How many launches after a platform reset a sealed secret still opens under: a node that
/// fails once before it opens its keystore (and is restarted) still opens it after a reboot.
pub const SEAL_LAUNCHES_AFTER_REBOOT: usize = 2;

/// The values of [`LAUNCH_PCR`] a secret sealed now by a node measured as `measured` opens
/// under: the PCR as `log` leaves it and after more launches of the same node, and after a
/// platform reset and [`SEAL_LAUNCHES_AFTER_REBOOT`] launches of it at most (a reboot); at most
/// [`SEAL_LAUNCHES_AHEAD`] values in all.
pub fn sealed_launch_values(log: &[LaunchEvent], measured: &AppMeasurements) -> Vec<[u8; 32]> {
    let rebooted = launch::predicted(&[], measured, SEAL_LAUNCHES_AFTER_REBOOT + 1);
    let mut values = launch::predicted(
        log,
        measured,
        SEAL_LAUNCHES_AHEAD - SEAL_LAUNCHES_AFTER_REBOOT,
    );
    // `rebooted[0]` is the empty log's value: no launch at all, never sealed to.
    for value in &rebooted[1..] {
        if !values.contains(value) {
            values.push(*value);
        }
    }
    values
}

/// The PCRs secrets are sealed to and quotes cover: boot PCRs 0–7 and [`LAUNCH_PCR`].
pub fn measured_pcrs() -> Vec<u8> {
    let mut pcrs = BOOT_PCRS.to_vec();
    pcrs.push(LAUNCH_PCR);
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

    /// The launcher's measurement of a node about to start: brings the log at `log_path` in line
    /// with [`LAUNCH_PCR`] (see [`reconcile`]), appends binary, config and policy, and extends the
    /// PCR with them. Returns the log as it now stands. Refuses when the log cannot be reconciled
    /// or is full: both need a platform reset.
    pub fn launch(
        &mut self,
        log_path: &Path,
        measurements: &AppMeasurements,
    ) -> Result<Vec<LaunchEvent>, LaunchError> {
        let _lock = lock_log(log_path)?;
        let mut log = self.current_log_locked(log_path)?;
        let events = launch::launch_events(measurements);
        if log.len() + events.len() > LAUNCH_EVENTS_MAX {
            return Err(log_error(
                log_path,
                format!("{} launches since the platform reset fill the log ({LAUNCH_EVENTS_MAX} events): reboot the host", log.len() / 3),
            ));
        }
        self.extend_logged_locked(log_path, &mut log, &events)?;
        Ok(log)
    }

    /// The log at `log_path`, cut to what [`LAUNCH_PCR`] accounts for (and rewritten so if it
    /// held more). Refuses a log the PCR does not agree with.
    pub fn current_log(&mut self, log_path: &Path) -> Result<Vec<LaunchEvent>, LaunchError> {
        let _lock = lock_log(log_path)?;
        self.current_log_locked(log_path)
    }

    fn current_log_locked(&mut self, log_path: &Path) -> Result<Vec<LaunchEvent>, LaunchError> {
        let mut log = read_log(log_path)?;
        let pcr = self.launch_pcr()?;
        let Some(kept) = reconcile(&log, &pcr) else {
            return Err(log_error(
                log_path,
                format!(
                    "its {} events do not replay to PCR {LAUNCH_PCR} ({}): the log was lost or altered, or something else extended the PCR; peers will refuse this node until the host reboots and the launcher measures it first",
                    log.len(),
                    hex::encode(pcr)
                ),
            ));
        };
        // A launcher that died between its extends leaves a launch the PCR saw only in part;
        // its remaining events are in the log (written first), so they are extended now and
        // the launch is whole again.
        let mut kept = kept;
        if let Some(start) = log[..kept]
            .iter()
            .rposition(|e| e.kind == launch::EventKind::Binary)
        {
            if kept < start + 3 && log.len() >= start + 3 {
                let missing: Vec<[u8; 32]> =
                    log[kept..start + 3].iter().map(|e| e.digest.0).collect();
                self.device
                    .extend_pcr(LAUNCH_PCR, &missing)
                    .map_err(device_error)?;
                kept = start + 3;
            }
        }
        if kept < log.len() {
            log.truncate(kept);
            write_log(log_path, &log)?;
        }
        Ok(log)
    }

    /// Appends `events` to the log file (written first, so a crash leaves events the PCR never
    /// saw, which [`NodeTpm::current_log`] drops or completes) and extends [`LAUNCH_PCR`] with
    /// them; `log` changes only when both succeeded. Refuses when the file no longer holds `log`
    /// (another launch happened since): the caller's view of what was measured is stale.
    pub fn extend_logged(
        &mut self,
        log_path: &Path,
        log: &mut Vec<LaunchEvent>,
        events: &[LaunchEvent],
    ) -> Result<(), LaunchError> {
        let _lock = lock_log(log_path)?;
        if read_log(log_path)? != *log {
            return Err(log_error(
                log_path,
                "the launch log changed under this node (another launch since it started): restart it through its launcher",
            ));
        }
        self.extend_logged_locked(log_path, log, events)
    }

    fn extend_logged_locked(
        &mut self,
        log_path: &Path,
        log: &mut Vec<LaunchEvent>,
        events: &[LaunchEvent],
    ) -> Result<(), LaunchError> {
        if log.len() + events.len() > LAUNCH_EVENTS_MAX {
            return Err(log_error(
                log_path,
                "the launch log is full: reboot the host",
            ));
        }
        // `log` changes only once the file and the PCR both hold the events.
        let mut extended = log.clone();
        extended.extend_from_slice(events);
        write_log(log_path, &extended)?;
        let digests: Vec<[u8; 32]> = events.iter().map(|e| e.digest.0).collect();
        self.device
            .extend_pcr(LAUNCH_PCR, &digests)
            .map_err(device_error)?;
        *log = extended;
        Ok(())
    }

    /// The value of [`LAUNCH_PCR`] now.
    pub fn launch_pcr(&mut self) -> Result<[u8; 32], LaunchError> {
        self.device
            .read_pcrs(&[LAUNCH_PCR])
            .map_err(device_error)?
            .get(&LAUNCH_PCR)
            .copied()
            .ok_or_else(|| LaunchError::Device("the launch PCR was not read".into()))
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
    /// ([`bulwark_attest::nonce::qualifying_data`] of the verifier's nonce, the node key hash and
    /// epoch), carrying `log`, the launch log the quoted [`LAUNCH_PCR`] should replay to.
    pub fn evidence(
        &mut self,
        qualifying_data: &[u8; 32],
        node_key_sha256: [u8; 32],
        epoch: u64,
        log: &[LaunchEvent],
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
            launch_log: log.to_vec(),
        })
    }

    /// Seals `secret` (at most 128 bytes) to the boot PCRs as they are now and to the values of
    /// [`LAUNCH_PCR`] in [`sealed_launch_values`]: this node, restarted by its launcher (or after
    /// a reboot), opens it; any other binary, config or policy measured in between closes it
    /// until the platform resets.
    pub fn seal_for_launches(
        &mut self,
        secret: &[u8],
        log: &[LaunchEvent],
        measured: &AppMeasurements,
    ) -> Result<SealedBlob, LaunchError> {
        let boot = self.device.read_pcrs(&BOOT_PCRS).map_err(device_error)?;
        let allowed: Vec<_> = sealed_launch_values(log, measured)
            .into_iter()
            .map(|value| {
                let mut set = boot.clone();
                set.insert(LAUNCH_PCR, value);
                set
            })
            .collect();
        let sealed = self
            .device
            .seal_to(secret, &allowed)
            .map_err(device_error)?;
        Ok(SealedBlob {
            format: SEALED_FORMAT.into(),
            private: sealed.private,
            public: sealed.public,
            pcrs: sealed.pcrs,
            branches: sealed.branches.into_iter().map(HexBytes).collect(),
        })
    }

    /// Unseals a [`SealedBlob`]; fails with [`LaunchError::Unseal`] when a covered PCR changed.
    pub fn unseal(
        &mut self,
        blob: &SealedBlob,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, LaunchError> {
        if blob.format == SEALED_FORMAT_V1 {
            return Err(LaunchError::Unseal(
                "sealed by an earlier release to the resettable PCR 23, which no longer holds the launch measurement; provision this node again".into(),
            ));
        }
        if blob.format != SEALED_FORMAT {
            return Err(LaunchError::Unseal(format!(
                "unknown sealed format {:?}",
                blob.format
            )));
        }
        self.device
            .unseal(&blob.sealed_secret())
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
    pub fn launch(
        &mut self,
        _: &Path,
        _: &AppMeasurements,
    ) -> Result<Vec<LaunchEvent>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn current_log(&mut self, _: &Path) -> Result<Vec<LaunchEvent>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn extend_logged(
        &mut self,
        _: &Path,
        _: &mut Vec<LaunchEvent>,
        _: &[LaunchEvent],
    ) -> Result<(), LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn launch_pcr(&mut self) -> Result<[u8; 32], LaunchError> {
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
        _: &[LaunchEvent],
    ) -> Result<TpmEvidence, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn seal_for_launches(
        &mut self,
        _: &[u8],
        _: &[LaunchEvent],
        _: &AppMeasurements,
    ) -> Result<SealedBlob, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
    pub fn unseal(&mut self, _: &SealedBlob) -> Result<zeroize::Zeroizing<Vec<u8>>, LaunchError> {
        Err(LaunchError::NotBuilt)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bulwark_attest::launch::{launch_events, replay};

    #[test]
    fn reconcile_keeps_what_the_pcr_saw_and_refuses_a_log_it_did_not() {
        let a = launch_events(&AppMeasurements::from_contents(b"a", b"c", b"p"));
        let two: Vec<_> = a.iter().chain(a.iter()).copied().collect();
        // Fresh platform: an old log is dropped whole.
        assert_eq!(reconcile(&two, &[0; 32]), Some(0));
        // A launcher died after writing its events but before extending.
        assert_eq!(reconcile(&two, &replay(&a)), Some(3));
        assert_eq!(reconcile(&two, &replay(&two)), Some(6));
        // Something extended the PCR that the log does not hold.
        assert_eq!(reconcile(&a, &[7; 32]), None);
    }

    #[test]
    fn a_sealed_secret_covers_the_launches_ahead_and_a_reboot() {
        let m = AppMeasurements::from_contents(b"a", b"c", b"p");
        let a = launch_events(&m);
        let one = sealed_launch_values(&a, &m);
        assert_eq!(
            one.len(),
            SEAL_LAUNCHES_AHEAD - SEAL_LAUNCHES_AFTER_REBOOT,
            "one launch: the values after a reboot are among the first"
        );
        assert_eq!(one[0], replay(&a));
        let two: Vec<_> = a.iter().chain(a.iter()).copied().collect();
        assert_eq!(one[1], replay(&two));
        let five: Vec<_> = a.iter().cycle().take(15).copied().collect();
        let values = sealed_launch_values(&five, &m);
        assert_eq!(values.len(), SEAL_LAUNCHES_AHEAD);
        assert_eq!(values[0], replay(&five));
        // A reboot, then one or two launches (the first failed before the keystore).
        assert_eq!(values[SEAL_LAUNCHES_AHEAD - 2], replay(&a));
        assert_eq!(values[SEAL_LAUNCHES_AHEAD - 1], replay(&two));
        // Never the empty log: a PCR no launcher extended opens nothing.
        assert!(!values.contains(&[0; 32]));
    }

    #[test]
    fn the_log_lock_is_exclusive_until_dropped() {
        let dir = std::env::temp_dir().join(format!("bulwark-log-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("launch.log");
        let lock = lock_log(&path).unwrap();
        let other = std::fs::File::options()
            .write(true)
            .open(dir.join("launch.log.lock"))
            .unwrap();
        assert!(other.try_lock().is_err(), "held by the first lock");
        drop(lock);
        assert!(other.try_lock().is_ok(), "free once dropped");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_files_are_written_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("bulwark-launch-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("launch.log");
        assert!(read_log(&path).unwrap().is_empty());
        let a = launch_events(&AppMeasurements::from_contents(b"a", b"c", b"p"));
        write_log(&path, &a).unwrap();
        assert_eq!(read_log(&path).unwrap(), a.to_vec());
        std::fs::write(&path, "not an event\n").unwrap();
        assert!(matches!(read_log(&path), Err(LaunchError::Log { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
