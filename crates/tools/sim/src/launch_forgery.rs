//! Attack 4 of issue #12 in the simulator: a member whose launcher measured a tampered binary
//! tries to pass as honest. Each member has a modelled TPM (the PC-client PCR rules, simplified:
//! PCRs 0–15 reset only with the platform, 16 and 23 from software, 17–22 only from the
//! dynamic-launch localities; a
//! P-256 attestation key that signs real `TPMS_ATTEST` quotes; a sealed secret that opens only
//! while the PCRs hold one of its sealed sets), and every other member appraises its quotes with
//! the production verifier against an operator-signed manifest. The swtpm test
//! `swtpm_a_tampered_binary_cannot_forge_its_measured_launch` plays the same attacker against a
//! real TPM; here it plays at committee scale, on every seed.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use bulwark_attest::evidence::{AppMeasurements, Evidence, TpmEvidence};
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::launch::{launch_events, predicted, LaunchEvent, LAUNCH_PCR};
use bulwark_attest::manifest::{
    LaunchReference, OperatorSet, ReferenceManifest, SignedManifest, TpmReference,
};
use bulwark_attest::nonce::{node_key_hash, qualifying_data};
use bulwark_attest::tpm::{
    pcr_digest, ClockInfo, PcrSelection, PublicKey, QuoteAttest, TpmPublic, TpmSignature,
    AK_ATTRIBUTES, BOOT_PCRS, TPM_ALG_ECDSA, TPM_ALG_NULL, TPM_ALG_SHA256,
};
use bulwark_attest::verifier::{AppraisalRequest, EnrolledAk, Verifier, VerifierConfig};
use p256::ecdsa::signature::Signer as _;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

const NOW_MS: u64 = 1_800_000_000_000;

/// A TPM as the PC-client profile defines its PCRs, with a software attestation key.
struct ModelTpm {
    pcrs: [[u8; 32]; 24],
    locality: u8,
    ak: p256::ecdsa::SigningKey,
    ak_public: Vec<u8>,
    clock: ClockInfo,
}

impl ModelTpm {
    fn new(seed: u64, member: usize) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("bulwark sim 2026-12 model TPM AK");
        hasher.update(&seed.to_le_bytes());
        hasher.update(&(member as u64).to_le_bytes());
        // A hash is a valid P-256 scalar with overwhelming probability; retry on the rest.
        let mut reader = hasher.finalize_xof();
        let ak = loop {
            let mut bytes = [0u8; 32];
            reader.fill(&mut bytes);
            if let Ok(key) = p256::ecdsa::SigningKey::from_bytes(&bytes.into()) {
                break key;
            }
        };
        let point = ak.verifying_key().to_encoded_point(false);
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        x.copy_from_slice(point.x().unwrap());
        y.copy_from_slice(point.y().unwrap());
        let ak_public = TpmPublic::encode(
            AK_ATTRIBUTES,
            &[],
            (TPM_ALG_NULL, 0, 0),
            (TPM_ALG_ECDSA, TPM_ALG_SHA256),
            &PublicKey::EccP256 { x, y },
        );
        let mut pcrs = [[0u8; 32]; 24];
        // The platform's measured boot: the same firmware on every member.
        for index in BOOT_PCRS {
            pcrs[index as usize] = *blake3::hash(&[index]).as_bytes();
        }
        Self {
            pcrs,
            locality: 0,
            ak,
            ak_public,
            clock: ClockInfo {
                clock: 1_000,
                reset_count: 1,
                restart_count: 0,
                safe: true,
            },
        }
    }

    /// TPM2_PCR_Reset under the PC-client rules.
    fn reset(&mut self, index: u8) -> Result<(), &'static str> {
        let allowed = match index {
            16 | 23 => true,
            17..=22 => self.locality >= 3,
            _ => false,
        };
        if !allowed {
            return Err("TPM_RC_LOCALITY: this PCR is not resettable from this locality");
        }
        self.pcrs[index as usize] = [0; 32];
        Ok(())
    }

    fn extend(&mut self, index: u8, digest: &[u8; 32]) {
        let mut hasher = Sha256::new();
        hasher.update(self.pcrs[index as usize]);
        hasher.update(digest);
        self.pcrs[index as usize] = hasher.finalize().into();
    }

    fn selected(&self) -> BTreeMap<u8, [u8; 32]> {
        let mut set: BTreeMap<u8, [u8; 32]> = BOOT_PCRS
            .iter()
            .map(|i| (*i, self.pcrs[*i as usize]))
            .collect();
        set.insert(LAUNCH_PCR, self.pcrs[LAUNCH_PCR as usize]);
        set
    }

    /// TPM2_Quote of PCRs 0–7 and the launch PCR; the node sends `log` with it.
    fn quote(&mut self, extra: [u8; 32], key_hash: [u8; 32], log: &[LaunchEvent]) -> Evidence {
        self.clock.clock += 1_000;
        let pcrs = self.selected();
        let attest = QuoteAttest {
            qualified_signer: vec![0, 0x0b, 0xaa],
            extra_data: extra.to_vec(),
            clock_info: self.clock,
            firmware_version: 1,
            pcr_selection: vec![PcrSelection {
                hash_alg: TPM_ALG_SHA256,
                pcrs: pcrs.keys().copied().collect(),
            }],
            pcr_digest: pcr_digest(&pcrs).to_vec(),
        }
        .to_bytes();
        let signature: p256::ecdsa::Signature = self.ak.sign(&attest);
        let bytes = signature.to_bytes();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Evidence::Tpm2Quote(TpmEvidence {
            node_key_sha256: HexBytes(key_hash),
            epoch: 0,
            ak_public: self.ak_public.clone(),
            attest,
            signature: TpmSignature::Ecdsa { r, s }.to_bytes(),
            pcrs: pcrs.iter().map(|(i, v)| (*i, HexBytes(*v))).collect(),
            launch_log: log.to_vec(),
        })
    }

    /// A PolicyOR of PolicyPCRs: the PCR digests it opens under.
    fn seal(&self, log: &[LaunchEvent], measured: &AppMeasurements) -> BTreeSet<[u8; 32]> {
        predicted(log, measured, 8)
            .into_iter()
            .map(|value| {
                let mut set = self.selected();
                set.insert(LAUNCH_PCR, value);
                pcr_digest(&set)
            })
            .collect()
    }

    fn unseal(&self, sealed: &BTreeSet<[u8; 32]>) -> bool {
        sealed.contains(&pcr_digest(&self.selected()))
    }
}

fn honest() -> AppMeasurements {
    AppMeasurements::from_contents(b"bulwark node", b"genesis.json", b"operators.json")
}

fn tampered() -> AppMeasurements {
    AppMeasurements::from_contents(
        b"bulwark node, with a backdoor",
        b"genesis.json",
        b"operators.json",
    )
}

/// Whether `appraisal` refused the member; its reason codes are counted into `codes` when it did.
fn refused_with(
    appraisal: &bulwark_attest::appraisal::Appraisal,
    codes: &mut BTreeMap<String, usize>,
) -> bool {
    let refused = appraisal.status == bulwark_attest::appraisal::Status::Contraindicated;
    if refused {
        for reason in &appraisal.reasons {
            *codes.entry(reason.code.clone()).or_default() += 1;
        }
    }
    refused
}

/// Member `appraiser`'s verifier, with every other member's AK enrolled.
fn verifier(
    seed: u64,
    appraiser: usize,
    tpms: &[ModelTpm],
    operator: &ed25519_dalek::SigningKey,
) -> Verifier {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8] = appraiser as u8;
    let mut verifier = Verifier::new(
        ed25519_dalek::SigningKey::from_bytes(&key),
        OperatorSet::new(vec![HexBytes(operator.verifying_key().to_bytes())], 1).unwrap(),
        VerifierConfig::default(),
    );
    for (member, tpm) in tpms.iter().enumerate() {
        verifier
            .restore_enrollment(EnrolledAk {
                node_id: format!("member-{member}"),
                ek_public: tpm.ak_public.clone(),
                ak_public: tpm.ak_public.clone(),
                enrolled_at_ms: NOW_MS,
            })
            .unwrap();
    }
    verifier
}

/// Runs the scenario: `(achieved, refused, false_evidence)`.
pub(crate) fn forged_launch(seed: u64, n: usize) -> (Vec<String>, Vec<String>, usize) {
    let operator = ed25519_dalek::SigningKey::from_bytes(
        blake3::hash(&[b"sim operator".as_slice(), &seed.to_le_bytes()].concat()).as_bytes(),
    );
    let mut tpms: Vec<ModelTpm> = (0..n).map(|i| ModelTpm::new(seed, i)).collect();
    let boot = tpms[0].selected();
    let m = honest();
    let mut manifest = SignedManifest::unsigned(ReferenceManifest {
        role: "committee".into(),
        release: "sim".into(),
        issued_at_ms: NOW_MS - 1,
        expires_at_ms: NOW_MS + 3_600_000,
        tpm: Some(TpmReference {
            pcrs: boot
                .iter()
                .filter(|(i, _)| **i != LAUNCH_PCR)
                .map(|(i, v)| (*i, vec![HexBytes(*v)]))
                .collect(),
            launch: LaunchReference::allowing([&m]),
        }),
        snp: None,
        tdx: None,
        dev: None,
    });
    manifest.sign_with(&operator);

    // Every member is launched honestly once and seals its secret; the attacker (the last
    // member) is then launched again by its launcher, now from a tampered binary.
    let attacker = n - 1;
    let honest_log = launch_events(&m).to_vec();
    let mut logs: Vec<Vec<LaunchEvent>> = Vec::new();
    for tpm in &mut tpms {
        for event in &honest_log {
            tpm.extend(LAUNCH_PCR, &event.digest.0);
        }
        logs.push(honest_log.clone());
    }
    let sealed = tpms[attacker].seal(&honest_log, &m);
    for event in launch_events(&tampered()) {
        tpms[attacker].extend(LAUNCH_PCR, &event.digest.0);
        logs[attacker].push(event);
    }

    let mut achieved = Vec::new();
    let mut refused = Vec::new();
    // Before each sequence of one to three honest extensions the attacker tries to reset the
    // launch PCR from every locality; after it, it tries to unseal and answers every member's
    // challenge with forged logs.
    let mut resets_refused = 0;
    let digests = honest_log.iter().map(|e| e.digest.0).collect::<Vec<_>>();
    let sequences = bulwark_testkit::extension_sequences(&digests, 3);
    let mut verifiers: Vec<Verifier> = (0..n)
        .map(|i| verifier(seed, i, &tpms, &operator))
        .collect();
    let mut unseals_refused = 0;
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut challenge = 0u64;
    let mut appraise = |verifiers: &mut Vec<Verifier>,
                        tpm: &mut ModelTpm,
                        appraiser: usize,
                        member: usize,
                        log: &[LaunchEvent]| {
        challenge += 1;
        let mut random = [0u8; 32];
        random[..8].copy_from_slice(&challenge.to_le_bytes());
        random[8..16].copy_from_slice(&seed.to_le_bytes());
        let verifier = &mut verifiers[appraiser];
        let nonce = verifier.issue_nonce(NOW_MS, random).unwrap();
        let key_hash = node_key_hash(format!("member-{member} key").as_bytes());
        let evidence = tpm.quote(qualifying_data(&nonce, &key_hash, 0), key_hash, log);
        verifier
            .appraise(
                &AppraisalRequest {
                    node_id: &format!("member-{member}"),
                    node_key_sha256: key_hash,
                    epoch: 0,
                    nonce,
                    evidence: &evidence,
                    manifest: &manifest,
                },
                NOW_MS + 1,
            )
            .verify(&verifier.public_key(), NOW_MS + 1)
            .unwrap()
    };
    // As launched: its truthful log names the tampered binary.
    for appraiser in (0..n).filter(|i| *i != attacker) {
        let log = logs[attacker].clone();
        let a = appraise(
            &mut verifiers,
            &mut tpms[attacker],
            appraiser,
            attacker,
            &log,
        );
        if !refused_with(&a, &mut codes) {
            achieved.push(format!(
                "member {appraiser} admitted the tampered member as launched"
            ));
        }
    }
    for (tried, sequence) in sequences.iter().enumerate() {
        for locality in 0..=4 {
            tpms[attacker].locality = locality;
            match tpms[attacker].reset(LAUNCH_PCR) {
                Ok(()) => {
                    achieved.push(format!(
                        "reset PCR {LAUNCH_PCR} from locality {locality} before sequence {tried}"
                    ));
                    break;
                }
                Err(_) => resets_refused += 1,
            }
        }
        tpms[attacker].locality = 0;
        for digest in sequence {
            tpms[attacker].extend(LAUNCH_PCR, digest);
            // The truthful log of what it did (the kind the honest event of that digest has).
            let kind = honest_log
                .iter()
                .find(|e| e.digest.0 == *digest)
                .unwrap()
                .kind;
            logs[attacker].push(LaunchEvent {
                kind,
                digest: HexBytes(*digest),
            });
        }
        if tpms[attacker].unseal(&sealed) {
            achieved.push(format!("sequence {tried} unsealed the member's secret"));
        } else {
            unseals_refused += 1;
        }
        // The forged logs: the honest launch alone and twice; and the truthful log.
        let twice: Vec<_> = honest_log.iter().chain(&honest_log).copied().collect();
        for claimed in [honest_log.clone(), twice, logs[attacker].clone()] {
            for appraiser in (0..n).filter(|i| *i != attacker) {
                let a = appraise(
                    &mut verifiers,
                    &mut tpms[attacker],
                    appraiser,
                    attacker,
                    &claimed,
                );
                if !refused_with(&a, &mut codes) {
                    achieved.push(format!(
                        "member {appraiser} admitted the tampered member after sequence {tried}"
                    ));
                }
            }
        }
    }
    refused.insert(
        0,
        format!(
            "{resets_refused} resets of PCR {LAUNCH_PCR} (localities 0-4, before each of {} sequences): TPM_RC_LOCALITY",
            sequences.len()
        ),
    );
    refused.push(format!(
        "{unseals_refused} unseals after {} extension sequences: no honest PCR value",
        sequences.len()
    ));
    refused.push(format!(
        "forged quotes refused: {}",
        codes
            .iter()
            .map(|(code, count)| format!("{code} ×{count}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // The honest members answer every other member and are admitted: no false evidence.
    let mut false_evidence = 0;
    for member in (0..n).filter(|i| *i != attacker) {
        for appraiser in (0..n).filter(|i| *i != member) {
            let log = logs[member].clone();
            let a = appraise(&mut verifiers, &mut tpms[member], appraiser, member, &log);
            if a.status == bulwark_attest::appraisal::Status::Contraindicated {
                false_evidence += 1;
            }
        }
    }
    (achieved, refused, false_evidence)
}
