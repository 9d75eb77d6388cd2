//! The verifier: enrolls attestation keys by credential activation, issues nonces, and appraises
//! evidence against signed manifests into signed appraisals.
//!
//! Sans-IO: every call takes the time (`now_ms`) and, where needed, randomness from the caller; the
//! verifier's state (nonces, enrolled keys, last TPM counters per node) lives in memory and is bounded.

use crate::appraisal::{Appraisal, Claims, SignedAppraisal, Status, APPRAISAL_PROFILE};
use crate::dev::DevEvidence;
use crate::evidence::{Evidence, TpmEvidence};
use crate::hexbytes::HexBytes;
use crate::launch::{self, LAUNCH_PCR};
use crate::manifest::{OperatorSet, ReferenceManifest, SignedManifest, TpmReference};
use crate::nonce::{qualifying_data, Nonce, NonceBook, NonceError};
use crate::tpm::{self, ClockInfo, CredentialChallenge, TpmError, TpmPublic};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use subtle_eq::constant_time_eq;

/// Most nodes a verifier tracks (enrolled keys, pending activations, counter history).
pub const NODES_MAX: usize = 4_096;
/// Most distinct verified manifests remembered (the set is cleared when full).
pub const VERIFIED_MANIFESTS_MAX: usize = 64;
/// Longest node identifier, in bytes.
pub const NODE_ID_LEN_MAX: usize = 128;

/// Errors of enrollment and verifier setup (appraisal failures are contraindicated appraisals, not
/// errors).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifierError {
    /// A TPM structure was malformed or unsupported.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// No credential challenge is pending for this node.
    #[error("no enrollment pending for node {node_id}: call begin_enrollment first")]
    NoPendingEnrollment {
        /// Node.
        node_id: String,
    },
    /// The node returned the wrong credential: its AK is not in the TPM holding that EK.
    #[error(
        "credential activation failed for node {node_id}: the AK is not resident in the EK's TPM"
    )]
    ActivationFailed {
        /// Node.
        node_id: String,
    },
    /// Too many nodes tracked.
    #[error("verifier already tracks {NODES_MAX} nodes")]
    TooManyNodes,
    /// The node identifier is empty or too long.
    #[error("node id must be 1 to {NODE_ID_LEN_MAX} bytes")]
    BadNodeId,
    /// The enrollment's pending challenge expired.
    #[error("enrollment challenge for node {node_id} expired; start again")]
    EnrollmentExpired {
        /// Node.
        node_id: String,
    },
}

/// An attestation key bound to an EK by credential activation. Serializable so an operator can record
/// enrollments made at provisioning (`bulwark attest enroll`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolledAk {
    /// Node identifier.
    pub node_id: String,
    /// Marshalled `TPMT_PUBLIC` of the EK the AK was bound to.
    #[serde(with = "crate::hexbytes::vec")]
    pub ek_public: Vec<u8>,
    /// Marshalled `TPMT_PUBLIC` of the AK.
    #[serde(with = "crate::hexbytes::vec")]
    pub ak_public: Vec<u8>,
    /// Enrollment time, Unix milliseconds.
    pub enrolled_at_ms: u64,
}

struct Pending {
    enrolled: EnrolledAk,
    credential: zeroize::Zeroizing<[u8; 32]>,
    expires_at_ms: u64,
}

/// Verifier settings.
#[derive(Clone, Copy, Debug)]
pub struct VerifierConfig {
    /// Nonce time-to-live.
    pub nonce_ttl_ms: u64,
    /// Nonce book capacity.
    pub nonce_capacity: usize,
    /// Appraisal time-to-live.
    pub appraisal_ttl_ms: u64,
    /// How long a credential challenge stays answerable.
    pub enrollment_ttl_ms: u64,
    /// Whether DEVELOPMENT evidence may be appraised at all. Default false: it is refused
    /// whatever the manifest says. Only a verifier that is itself a development node, with
    /// every member on loopback, sets it; a TPM node never does.
    pub accept_dev_evidence: bool,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            nonce_ttl_ms: crate::nonce::NONCE_TTL_MS_DEFAULT,
            nonce_capacity: crate::nonce::NONCE_CAPACITY_DEFAULT,
            appraisal_ttl_ms: crate::appraisal::APPRAISAL_TTL_MS_DEFAULT,
            enrollment_ttl_ms: 60_000,
            accept_dev_evidence: false,
        }
    }
}

/// What the verifier knows about the connection the evidence arrived on. The key hash and epoch come
/// from the verifier's own view (the TLS session, the committee state), never from the evidence.
#[derive(Clone, Debug)]
pub struct AppraisalRequest<'a> {
    /// Node identifier.
    pub node_id: &'a str,
    /// SHA-256 of the TLS public key the node authenticated with.
    pub node_key_sha256: [u8; 32],
    /// Current epoch.
    pub epoch: u64,
    /// The nonce this verifier issued for this request.
    pub nonce: Nonce,
    /// The evidence.
    pub evidence: &'a Evidence,
    /// The reference manifest for the node's role and release.
    pub manifest: &'a SignedManifest,
}

/// The verifier state machine.
pub struct Verifier {
    key: SigningKey,
    operators: OperatorSet,
    config: VerifierConfig,
    nonces: NonceBook,
    pending: HashMap<String, Pending>,
    enrolled: HashMap<String, EnrolledAk>,
    last_clock: HashMap<String, ClockInfo>,
    verified_manifests: HashSet<[u8; 32]>,
    /// TEST ONLY (feature `recorded-samples`): the report data SEV-SNP and TDX evidence must
    /// carry instead of the qualifying data. Never set in a build without that feature.
    recorded_report_data: Option<[u8; 64]>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("public", &hex::encode(self.key.verifying_key().to_bytes()))
            .field("enrolled", &self.enrolled.len())
            .finish_non_exhaustive()
    }
}

mod subtle_eq {
    /// Constant-time equality for secrets of equal, public length.
    pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn check_node_id(node_id: &str) -> Result<(), VerifierError> {
    if node_id.is_empty() || node_id.len() > NODE_ID_LEN_MAX {
        return Err(VerifierError::BadNodeId);
    }
    Ok(())
}

impl Verifier {
    /// A verifier signing appraisals with `key` and trusting manifests signed by `operators`.
    ///
    /// # Panics
    /// If `config.nonce_ttl_ms` or `config.nonce_capacity` is zero (see [`NonceBook::new`]): a
    /// configuration error, not an operating one.
    pub fn new(key: SigningKey, operators: OperatorSet, config: VerifierConfig) -> Self {
        Self {
            key,
            operators,
            config,
            nonces: NonceBook::new(config.nonce_ttl_ms, config.nonce_capacity),
            pending: HashMap::new(),
            enrolled: HashMap::new(),
            last_clock: HashMap::new(),
            verified_manifests: HashSet::new(),
            recorded_report_data: None,
        }
    }

    /// The key relying parties check appraisals with.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Issues a nonce from 32 caller-supplied random bytes.
    pub fn issue_nonce(&mut self, now_ms: u64, random: [u8; 32]) -> Result<Nonce, NonceError> {
        self.nonces.issue(now_ms, random)
    }

    /// Starts enrolling `ak_public` for `node_id`: checks it is an attestation key, and wraps a random
    /// credential (from `rng`) to `ek_public` bound to the AK's name.
    ///
    /// `ek_public` must come from a trusted source — the operator's inventory, or an EK certificate
    /// validated against the TPM vendor's CA by the caller. This crate does not validate EK
    /// certificates.
    pub fn begin_enrollment(
        &mut self,
        node_id: &str,
        ek_public: &[u8],
        ak_public: &[u8],
        now_ms: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<CredentialChallenge, VerifierError> {
        check_node_id(node_id)?;
        let ek = TpmPublic::parse(ek_public)?;
        let ak = TpmPublic::parse(ak_public)?;
        ak.check_attestation_key()?;
        self.pending.retain(|_, p| p.expires_at_ms > now_ms);
        if self.pending.len() >= NODES_MAX && !self.pending.contains_key(node_id) {
            return Err(VerifierError::TooManyNodes);
        }
        let mut credential = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(credential.as_mut());
        let challenge = tpm::make_credential(&ek, &ak.name(), credential.as_ref(), rng)?;
        self.pending.insert(
            node_id.to_owned(),
            Pending {
                enrolled: EnrolledAk {
                    node_id: node_id.to_owned(),
                    ek_public: ek_public.to_vec(),
                    ak_public: ak_public.to_vec(),
                    enrolled_at_ms: now_ms,
                },
                credential,
                expires_at_ms: now_ms.saturating_add(self.config.enrollment_ttl_ms),
            },
        );
        Ok(challenge)
    }

    /// Completes enrollment with the credential the node's TPM recovered. Only then is the AK trusted.
    pub fn finish_enrollment(
        &mut self,
        node_id: &str,
        activated_credential: &[u8],
        now_ms: u64,
    ) -> Result<EnrolledAk, VerifierError> {
        let pending =
            self.pending
                .remove(node_id)
                .ok_or_else(|| VerifierError::NoPendingEnrollment {
                    node_id: node_id.to_owned(),
                })?;
        if now_ms >= pending.expires_at_ms {
            return Err(VerifierError::EnrollmentExpired {
                node_id: node_id.to_owned(),
            });
        }
        if !constant_time_eq(pending.credential.as_ref(), activated_credential) {
            return Err(VerifierError::ActivationFailed {
                node_id: node_id.to_owned(),
            });
        }
        let mut enrolled = pending.enrolled;
        enrolled.enrolled_at_ms = now_ms;
        self.insert_enrolled(enrolled.clone())?;
        Ok(enrolled)
    }

    /// Restores an enrollment recorded earlier (e.g. by `bulwark attest enroll` at provisioning). The
    /// caller vouches that it came from a completed credential activation.
    pub fn restore_enrollment(&mut self, enrolled: EnrolledAk) -> Result<(), VerifierError> {
        check_node_id(&enrolled.node_id)?;
        TpmPublic::parse(&enrolled.ek_public)?;
        TpmPublic::parse(&enrolled.ak_public)?.check_attestation_key()?;
        self.insert_enrolled(enrolled)
    }

    fn insert_enrolled(&mut self, enrolled: EnrolledAk) -> Result<(), VerifierError> {
        if self.enrolled.len() >= NODES_MAX && !self.enrolled.contains_key(&enrolled.node_id) {
            return Err(VerifierError::TooManyNodes);
        }
        self.enrolled.insert(enrolled.node_id.clone(), enrolled);
        Ok(())
    }

    /// Appraises evidence at `now_ms` and signs the result. Never fails: anything wrong yields a
    /// contraindicated appraisal whose reasons say what and why.
    pub fn appraise(&mut self, request: &AppraisalRequest<'_>, now_ms: u64) -> SignedAppraisal {
        let mut appraisal = Appraisal {
            profile: APPRAISAL_PROFILE.to_owned(),
            status: Status::Affirming,
            evidence_kind: request.evidence.kind().to_owned(),
            reasons: Vec::new(),
            claims: Claims::default(),
            node_id: request.node_id.to_owned(),
            node_key_sha256: HexBytes(request.node_key_sha256),
            epoch: request.epoch,
            nonce: HexBytes(request.nonce),
            issued_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(self.config.appraisal_ttl_ms),
            verifier: HexBytes(self.key.verifying_key().to_bytes()),
        };
        self.appraise_into(request, now_ms, &mut appraisal);
        appraisal.status = appraisal
            .reasons
            .iter()
            .map(|r| r.status)
            .max()
            .unwrap_or(Status::Affirming);
        appraisal.sign(&self.key)
    }

    fn appraise_into(&mut self, request: &AppraisalRequest<'_>, now_ms: u64, out: &mut Appraisal) {
        if check_node_id(request.node_id).is_err() {
            return out.refuse("bad-node-id", "node id empty or too long".into());
        }
        // Signature checks are skipped for a manifest (same content, same signatures) that already
        // verified under this verifier's operator set; time and content are checked every time.
        let fingerprint = request.manifest.fingerprint();
        let checked = if self.verified_manifests.contains(&fingerprint) {
            request.manifest.check_validity(now_ms)
        } else {
            let result = request.manifest.verify(&self.operators, now_ms);
            if result.is_ok() {
                if self.verified_manifests.len() >= VERIFIED_MANIFESTS_MAX {
                    self.verified_manifests.clear();
                }
                self.verified_manifests.insert(fingerprint);
            }
            result
        };
        let manifest = match checked {
            Ok(manifest) => manifest,
            Err(error) => return out.refuse("manifest-refused", error.to_string()),
        };
        out.claims.role = Some(manifest.role.clone());
        out.claims.release = Some(manifest.release.clone());
        if let Err(error) = self.nonces.consume(&request.nonce, now_ms) {
            let code = match error {
                NonceError::Replayed { .. } => "nonce-replayed",
                NonceError::Expired { .. } => "nonce-expired",
                _ => "nonce-unknown",
            };
            return out.refuse(code, error.to_string());
        }
        let expected = qualifying_data(&request.nonce, &request.node_key_sha256, request.epoch);
        let report_data = match self.recorded_report_data {
            Some(recorded)
                if matches!(request.evidence, Evidence::SevSnp(_) | Evidence::Tdx(_)) =>
            {
                out.push_reason(
                    Status::Warning,
                    "recorded-sample-report-data",
                    "TEST ONLY: the report data is compared with a recorded sample's own, not with this nonce; a build with the recorded-samples feature is never production".into(),
                );
                recorded
            }
            _ => crate::tee::appraise::expected_report_data(&expected),
        };
        match request.evidence {
            Evidence::Tpm2Quote(tpm) => self.appraise_tpm(request, manifest, tpm, &expected, out),
            Evidence::SevSnp(snp) => {
                let recorded_sample = self.recorded_report_data.is_some();
                crate::tee::appraise::appraise_snp(
                    manifest,
                    snp,
                    &report_data,
                    now_ms,
                    recorded_sample,
                    out,
                );
            }
            Evidence::Tdx(tdx) => {
                crate::tee::appraise::appraise_tdx(manifest, tdx, &report_data, now_ms, out);
            }
            Evidence::DevInsecure(_) if !self.config.accept_dev_evidence => out.refuse(
                "dev-evidence-not-accepted",
                "insecure development evidence refused: this verifier does not accept it (only a development node on loopback does)".into(),
            ),
            Evidence::DevInsecure(dev) => appraise_dev(manifest, dev, &expected, out),
        }
    }

    fn appraise_tpm(
        &mut self,
        request: &AppraisalRequest<'_>,
        manifest: &ReferenceManifest,
        evidence: &TpmEvidence,
        expected: &[u8; 32],
        out: &mut Appraisal,
    ) {
        let Some(reference) = &manifest.tpm else {
            return out.refuse(
                "no-tpm-reference",
                "the manifest has no TPM reference values".into(),
            );
        };
        let Some(enrolled) = self.enrolled.get(request.node_id) else {
            return out.refuse(
                "ak-not-enrolled",
                format!(
                    "node {} has no attestation key bound to an EK by credential activation",
                    request.node_id
                ),
            );
        };
        if enrolled.ak_public != evidence.ak_public {
            return out.refuse(
                "foreign-ak",
                format!(
                    "quote signed by an attestation key that is not the one enrolled for node {}",
                    request.node_id
                ),
            );
        }
        let ak = match TpmPublic::parse(&evidence.ak_public) {
            Ok(ak) => ak,
            Err(error) => return out.refuse("ak-malformed", error.to_string()),
        };
        let pcrs: BTreeMap<u8, [u8; 32]> = evidence.pcrs.iter().map(|(i, d)| (*i, d.0)).collect();
        let verified =
            match tpm::verify_quote(&evidence.attest, &evidence.signature, &ak, &pcrs, expected) {
                Ok(verified) => verified,
                Err(error) => {
                    let code = match error {
                        TpmError::QualifyingDataMismatch { .. } => "qualifying-data-mismatch",
                        TpmError::BadSignature => "quote-signature-invalid",
                        TpmError::PcrDigestMismatch { .. } | TpmError::PcrSetMismatch { .. } => {
                            "pcr-digest-mismatch"
                        }
                        _ => "quote-malformed",
                    };
                    return out.refuse(code, error.to_string());
                }
            };
        let clock = verified.attest.clock_info;
        out.claims.pcrs = evidence.pcrs.clone();
        out.claims.ak_name = Some(hex::encode(ak.name()));
        out.claims.reset_count = Some(clock.reset_count);
        out.claims.restart_count = Some(clock.restart_count);
        out.claims.tpm_clock_ms = Some(clock.clock);
        out.claims.firmware_version = Some(verified.attest.firmware_version);

        for (index, allowed) in &reference.pcrs {
            match verified.pcrs.get(index) {
                None => out.refuse(
                    "pcr-not-quoted",
                    format!("PCR {index} is in the manifest but was not quoted"),
                ),
                Some(value) if !allowed.iter().any(|a| a.0 == *value) => out.refuse(
                    "pcr-mismatch",
                    format!(
                        "PCR {index} holds {} but the manifest allows {}",
                        hex::encode(value),
                        allowed
                            .iter()
                            .map(|a| a.to_hex())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ),
                Some(_) => {}
            }
        }

        appraise_launch(reference, evidence, &verified.pcrs, out);

        if let Some(previous) = self.last_clock.get(request.node_id).copied() {
            compare_clock(previous, clock, out);
        }
        if !clock.safe {
            out.push_reason(
                Status::Warning,
                "tpm-clock-unsafe",
                "the TPM reports its clock may have gone backwards (safe = NO)".into(),
            );
        }
        // Only a quote that verified moves the history; the bound holds because only enrolled nodes
        // (at most NODES_MAX) get here.
        self.last_clock.insert(request.node_id.to_owned(), clock);
    }
}

/// Replays the launch log against the quoted [`LAUNCH_PCR`] and checks every event against the
/// manifest. The log is the node's claim; the signed PCR value is what makes it evidence.
fn appraise_launch(
    reference: &TpmReference,
    evidence: &TpmEvidence,
    quoted: &BTreeMap<u8, [u8; 32]>,
    out: &mut Appraisal,
) {
    let Some(value) = quoted.get(&LAUNCH_PCR) else {
        return out.refuse(
            "launch-pcr-not-quoted",
            format!("the quote does not cover the launch PCR {LAUNCH_PCR}"),
        );
    };
    let current = match launch::check_shape(&evidence.launch_log) {
        Ok(current) => current,
        Err(error) => return out.refuse("launch-log-malformed", error.to_string()),
    };
    let replayed = launch::replay(&evidence.launch_log);
    if replayed != *value {
        return out.refuse(
            "launch-log-mismatch",
            format!(
                "the launch log's {} events replay to {} but the quoted PCR {LAUNCH_PCR} holds {}: the log hides or invents a measurement",
                evidence.launch_log.len(),
                hex::encode(replayed),
                hex::encode(value)
            ),
        );
    }
    out.claims.app_measurement = Some(HexBytes(current.app_pcr_value()));
    let mut refused = evidence
        .launch_log
        .iter()
        .enumerate()
        .filter(|(_, event)| !reference.launch.allowed(event.kind).contains(&event.digest));
    if let Some((index, event)) = refused.next() {
        out.refuse(
            "launch-event-not-allowed",
            format!(
                "launch event {index} measured {:?} {} which the manifest does not allow ({} such events in all)",
                event.kind,
                event.digest,
                1 + refused.count()
            ),
        );
    }
}

/// Compares a quote's TPM clock with the node's previous one: backwards is refused (a TPM
/// replaced, rolled back, or a replayed quote); a reboot or TPM restart is a warning.
fn compare_clock(previous: ClockInfo, clock: ClockInfo, out: &mut Appraisal) {
    let backwards = (clock.reset_count, clock.restart_count)
        < (previous.reset_count, previous.restart_count)
        || ((clock.reset_count, clock.restart_count)
            == (previous.reset_count, previous.restart_count)
            && clock.clock < previous.clock);
    if backwards {
        out.refuse(
            "tpm-counters-backwards",
            format!(
                "TPM reset/restart/clock went backwards: was {}/{}/{} ms, now {}/{}/{} ms (TPM replaced, rolled back, or quote replayed)",
                previous.reset_count,
                previous.restart_count,
                previous.clock,
                clock.reset_count,
                clock.restart_count,
                clock.clock
            ),
        );
    } else if clock.reset_count > previous.reset_count {
        out.push_reason(
            Status::Warning,
            "tpm-reset",
            format!(
                "the node rebooted since its last appraisal (reset count {} → {})",
                previous.reset_count, clock.reset_count
            ),
        );
    } else if clock.restart_count > previous.restart_count {
        out.push_reason(
            Status::Warning,
            "tpm-restart",
            format!(
                "the TPM restarted since the last appraisal (restart count {} → {})",
                previous.restart_count, clock.restart_count
            ),
        );
    }
}

fn appraise_dev(
    manifest: &ReferenceManifest,
    evidence: &DevEvidence,
    expected: &[u8; 32],
    out: &mut Appraisal,
) {
    out.claims.insecure_dev = true;
    let Some(reference) = manifest
        .dev
        .as_ref()
        .filter(|d| d.allow_insecure_dev_evidence)
    else {
        return out.refuse(
            "dev-evidence-not-allowed",
            "insecure development evidence refused: the manifest does not allow it".into(),
        );
    };
    if !reference.signer_keys.contains(&evidence.signer) {
        return out.refuse(
            "dev-signer-unknown",
            format!(
                "dev attestor key {} is not listed in the manifest",
                evidence.signer
            ),
        );
    }
    if let Err(error) = evidence.verify_signature() {
        return out.refuse("dev-signature-invalid", error.to_string());
    }
    if evidence.qualifying_data.0 != *expected {
        return out.refuse(
            "qualifying-data-mismatch",
            format!(
                "dev evidence qualifying data {} does not match expected {}: wrong nonce, node key or epoch",
                evidence.qualifying_data,
                hex::encode(expected)
            ),
        );
    }
    let value = HexBytes(evidence.measurements.app_pcr_value());
    out.claims.app_measurement = Some(value);
    if !reference.app_measurements.contains(&value) {
        return out.refuse(
            "app-measurement-mismatch",
            format!(
                "application measurement {value} (binary {}, config {}, policy {}) is not one the manifest allows",
                evidence.measurements.binary, evidence.measurements.config, evidence.measurements.policy
            ),
        );
    }
    out.push_reason(
        Status::Affirming,
        "insecure-dev-evidence",
        "INSECURE: accepted software-signed development evidence because the manifest allows it; no hardware root of trust".into(),
    );
}

#[cfg(feature = "recorded-samples")]
impl Verifier {
    /// TEST ONLY: SEV-SNP and TDX evidence is held to `report_data` (a recorded sample's own)
    /// instead of the qualifying data of the nonce, so that real samples recorded elsewhere can
    /// be appraised end to end by this verifier. Each such appraisal says so in a warning. The
    /// method exists only with the `recorded-samples` feature, which only the test command turns
    /// on; `None` restores the real rule.
    pub fn expect_recorded_report_data(&mut self, report_data: Option<[u8; 64]>) {
        self.recorded_report_data = report_data;
    }
}
