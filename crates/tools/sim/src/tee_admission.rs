//! Attack 8 of issue #12 in the simulator: members admitted by SEV-SNP and TDX evidence. No SEV
//! or TDX hardware is here, so each member replays a real recorded sample (the public samples in
//! `../shared/data/attestation-evidence`, read from there at run time, never copied into the
//! project) and every other member appraises it through the production admission
//! (`bulwark_consensus::admission::Admission`, the node's own) and verifier, to the vendors'
//! roots, at the samples' date. A recorded sample was not made over our nonce, so the verifier
//! holds it to the sample's own report data instead: the TEST-ONLY switch
//! `Verifier::expect_recorded_report_data`, which exists only with the `recorded-samples`
//! feature that the test command alone turns on. The attacker, member n-1, replays its sample
//! with one byte flipped at a seeded position anywhere in it (report, VCEK, quote or
//! collateral; which sample it replays depends on the seed too); it must stay out, and every
//! honest member must be admitted.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use bulwark_attest::evidence::{Evidence, SnpEvidence};
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::manifest::{
    OperatorSet, ReferenceManifest, SignedManifest, SnpReference, SnpTcb, TdxReference,
};
use bulwark_attest::tee::snp::{verify_snp_report, SnpClaims};
use bulwark_attest::tee::tdx::{verify_tdx_quote, TdxClaims};
use bulwark_consensus::admission::Admission;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The appraisal time: the TDX collateral's date (2025-06-19T11:00:00Z), inside the SEV-SNP
/// VCEKs' validity too.
pub const SAMPLES_AT_MS: u64 = 1_750_330_800_000;

/// Where the recorded samples are: `BULWARK_ATTESTATION_SAMPLES`, or the shared data beside the
/// repository this was built from.
pub fn samples_dir() -> PathBuf {
    std::env::var_os("BULWARK_ATTESTATION_SAMPLES").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../../shared/data/attestation-evidence")
        },
        PathBuf::from,
    )
}

/// One recorded piece of evidence: its parts as files hold them, and what it verified to.
struct Sample {
    name: &'static str,
    /// SNP: report, VCEK DER. TDX: quote, collateral JSON text.
    parts: [Vec<u8>; 2],
    claims: Claims,
}

enum Claims {
    Snp(SnpClaims),
    Tdx(TdxClaims),
}

impl Sample {
    fn report_data(&self) -> [u8; 64] {
        match &self.claims {
            Claims::Snp(c) => c.report_data,
            Claims::Tdx(c) => c.report_data,
        }
    }
}

impl Sample {
    /// The evidence JSON a member sends, with the byte at `flip` (over both parts) inverted.
    fn evidence(&self, flip: Option<usize>) -> Vec<u8> {
        self.evidence_with_crl(flip, Vec::new())
    }

    /// As [`Self::evidence`], an SEV-SNP sample carrying `crl` (a recorded sample has no AMD CRL
    /// of its date; the test switch lets that pass with a warning).
    fn evidence_with_crl(&self, flip: Option<usize>, crl: Vec<u8>) -> Vec<u8> {
        let mut parts = self.parts.clone();
        if let Some(at) = flip {
            let (part, at) = if at < parts[0].len() {
                (0, at)
            } else {
                (1, at - parts[0].len())
            };
            parts[part][at] ^= 0x01;
        }
        match self.claims {
            Claims::Snp(_) => serde_json::to_vec(&Evidence::SevSnp(SnpEvidence {
                report: parts[0].clone(),
                vcek: parts[1].clone(),
                crl,
            }))
            .unwrap(),
            // The collateral travels as the JSON text itself, so a flipped byte in it reaches the
            // verifier as it is (or as JSON that no longer parses).
            Claims::Tdx(_) => {
                let mut json = format!(
                    "{{\"kind\":\"tdx\",\"body\":{{\"quote\":\"{}\",\"collateral\":",
                    hex::encode(&parts[0])
                )
                .into_bytes();
                json.extend_from_slice(&parts[1]);
                json.extend_from_slice(b"}}");
                json
            }
        }
    }

    fn len(&self) -> usize {
        self.parts[0].len() + self.parts[1].len()
    }
}

fn read(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, String> {
    std::fs::read(dir.join(name)).map_err(|e| format!("{}: {e}", dir.join(name).display()))
}

/// The three recorded samples, verified once to read their reference values.
fn load() -> Result<Vec<Sample>, String> {
    let dir = samples_dir();
    let milan = hex::decode(
        String::from_utf8(read(&dir, "report_milan.hex")?)
            .map_err(|e| e.to_string())?
            .trim(),
    )
    .map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for (name, report, vcek) in [
        ("snp-milan", milan, read(&dir, "vcek_milan.der")?),
        (
            "snp-trustee",
            read(&dir, "trustee-snp-report.bin")?,
            read(&dir, "trustee-snp-vcek.der")?,
        ),
    ] {
        let claims = verify_snp_report(&report, &vcek, None, SAMPLES_AT_MS)
            .map_err(|e| format!("{name} does not verify at its date: {e}"))?;
        samples.push(Sample {
            name,
            parts: [report, vcek],
            claims: Claims::Snp(claims),
        });
    }
    let quote = read(&dir, "tdx_quote")?;
    let collateral = read(&dir, "tdx_quote_collateral.json")?;
    let claims = verify_tdx_quote(&quote, &collateral, SAMPLES_AT_MS)
        .map_err(|e| format!("the TDX sample does not verify at its date: {e}"))?;
    samples.push(Sample {
        name: "tdx",
        parts: [quote, collateral],
        claims: Claims::Tdx(claims),
    });
    Ok(samples)
}

/// The operators' manifest: the samples' measurements and TCBs (from their claims), as
/// known-good values.
fn manifest(samples: &[Sample], operator: &ed25519_dalek::SigningKey) -> SignedManifest {
    let mut snp = SnpReference {
        measurements: Vec::new(),
        min_tcb: SnpTcb {
            bootloader: u8::MAX,
            tee: u8::MAX,
            snp: u8::MAX,
            microcode: u8::MAX,
        },
    };
    let mut tdx = None;
    for sample in samples {
        match &sample.claims {
            Claims::Snp(c) => {
                snp.measurements.push(HexBytes(c.measurement));
                let t = &mut snp.min_tcb;
                t.bootloader = t.bootloader.min(c.reported_tcb.bootloader);
                t.tee = t.tee.min(c.reported_tcb.tee);
                t.snp = t.snp.min(c.reported_tcb.snp);
                t.microcode = t.microcode.min(c.reported_tcb.microcode);
            }
            Claims::Tdx(c) => {
                tdx = Some(TdxReference {
                    mrtd: vec![HexBytes(c.mr_td)],
                    rtmrs: BTreeMap::from([(0, vec![HexBytes(c.rtmrs[0])])]),
                    min_tee_tcb_svn: HexBytes(c.tee_tcb_svn),
                });
            }
        }
    }
    let mut signed = SignedManifest::unsigned(ReferenceManifest {
        role: "committee".into(),
        release: "sim-tee".into(),
        issued_at_ms: SAMPLES_AT_MS - 60_000,
        expires_at_ms: SAMPLES_AT_MS + 3_600_000,
        tpm: None,
        snp: Some(snp),
        tdx,
        dev: None,
    });
    signed.sign_with(operator);
    signed
}

/// Runs the scenario: `(achieved, refused, false_evidence)`, or why it cannot run.
pub(crate) fn tee_admission(
    seed: u64,
    n: usize,
) -> Result<(Vec<String>, Vec<String>, usize), String> {
    let samples = load().map_err(|e| {
        format!("the recorded SEV-SNP/TDX samples are not readable ({e}); set BULWARK_ATTESTATION_SAMPLES")
    })?;
    let key = |role: &str, i: u64| {
        ed25519_dalek::SigningKey::from_bytes(
            blake3::hash(&[role.as_bytes(), &seed.to_le_bytes(), &i.to_le_bytes()].concat())
                .as_bytes(),
        )
    };
    let operator = key("operator", 0);
    let operators =
        OperatorSet::new(vec![HexBytes(operator.verifying_key().to_bytes())], 1).unwrap();
    let manifest = manifest(&samples, &operator);
    // Member i replays sample (i + seed) mod 3; the attacker flips one seeded byte of its own.
    let attacker = n - 1;
    let sample_of = |member: usize| &samples[(member + seed as usize) % samples.len()];
    let flip = {
        let hash = blake3::hash(&[b"flip".as_slice(), &seed.to_le_bytes()].concat());
        let at = u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap());
        (at % sample_of(attacker).len() as u64) as usize
    };
    let mut achieved = Vec::new();
    let mut refused = Vec::new();
    let mut false_evidence = 0;
    for appraiser in 0..n {
        if appraiser == attacker {
            continue;
        }
        let peers: Vec<(usize, String, Vec<u8>)> = (0..n)
            .filter(|j| *j != appraiser)
            .map(|j| {
                (
                    j,
                    format!("member-{j}"),
                    key("node", j as u64).verifying_key().to_bytes().to_vec(),
                )
            })
            .collect();
        let mut admission = Admission::new(
            key("verifier", appraiser as u64),
            operators.clone(),
            manifest.clone(),
            (0, 60_000),
            false,
            peers.clone(),
        );
        for (peer, _, _) in &peers {
            let sample = sample_of(*peer);
            // A recorded sample cannot answer the nonce: the switch below stands in for it.
            admission
                .challenge(
                    peer,
                    SAMPLES_AT_MS,
                    *blake3::hash(&[seed as u8, appraiser as u8, *peer as u8]).as_bytes(),
                )
                .unwrap();
            admission.expect_recorded_report_data(Some(sample.report_data()));
            let bytes = sample.evidence((*peer == attacker).then_some(flip));
            admission.evidence(peer, &bytes, SAMPLES_AT_MS);
        }
        let admitted = admission.admitted(SAMPLES_AT_MS);
        if appraiser == 0 {
            // Without the switch the real rule holds: a recorded sample answers no nonce of
            // ours, so replaying even an honest member's own sample is refused.
            admission.expect_recorded_report_data(None);
            let honest = peers[0].0;
            admission
                .challenge(&honest, SAMPLES_AT_MS, [0xee; 32])
                .unwrap();
            admission.evidence(&honest, &sample_of(honest).evidence(None), SAMPLES_AT_MS);
            let state = admission
                .states()
                .find(|(p, _, _)| **p == honest)
                .unwrap()
                .2;
            if admission.admitted(SAMPLES_AT_MS).contains(&honest) {
                achieved.push(format!(
                    "without the test switch, member 0 admitted a replay of {}",
                    sample_of(honest).name
                ));
            } else {
                refused.push(format!(
                    "without the test switch: member 0 refused a replay of {} ({})",
                    sample_of(honest).name,
                    state.last_reasons.join(", ")
                ));
            }
            // With the switch on again, an honest SEV-SNP member's sample with an AMD CRL the
            // ARK never signed (under its real name) is refused: revocation is not skippable.
            if let Some(&(member, _, _)) = peers
                .iter()
                .find(|(j, _, _)| *j != attacker && matches!(sample_of(*j).claims, Claims::Snp(_)))
            {
                let sample = sample_of(member);
                let Claims::Snp(claims) = &sample.claims else {
                    unreachable!("found by its claims")
                };
                admission.expect_recorded_report_data(Some(sample.report_data()));
                admission
                    .challenge(&member, SAMPLES_AT_MS, [0xcc; 32])
                    .unwrap();
                let forged = forged_crl(claims.product);
                admission.evidence(
                    &member,
                    &sample.evidence_with_crl(None, forged),
                    SAMPLES_AT_MS,
                );
                let reasons = admission
                    .states()
                    .find(|(p, _, _)| **p == member)
                    .unwrap()
                    .2
                    .last_reasons
                    .join(", ");
                if admission.admitted(SAMPLES_AT_MS).contains(&member) {
                    achieved.push(format!(
                        "member 0 admitted {} with an AMD CRL the ARK did not sign",
                        sample.name
                    ));
                } else {
                    refused.push(format!(
                        "member 0 refused {} with a forged AMD CRL ({reasons})",
                        sample.name
                    ));
                }
            }
        }
        for (peer, name, state) in admission.states() {
            if *peer == attacker {
                if admitted.contains(peer) {
                    achieved.push(format!(
                        "member {appraiser} admitted {name} replaying {} with byte {flip} flipped",
                        sample_of(*peer).name
                    ));
                } else {
                    refused.push(format!(
                        "member {appraiser}: {name} ({} with byte {flip} of {} flipped) cut off: {}",
                        sample_of(*peer).name,
                        sample_of(*peer).len(),
                        state.last_reasons.join(", ")
                    ));
                }
            } else if !admitted.contains(peer) {
                false_evidence += 1;
                achieved.push(format!(
                    "member {appraiser} refused honest {name} ({}): {}",
                    sample_of(*peer).name,
                    state.last_reasons.join(", ")
                ));
            }
        }
    }
    Ok((achieved, refused, false_evidence))
}

/// A current CRL under the real ARK's name for `product`, signed by a test key, not AMD's.
fn forged_crl(product: &str) -> Vec<u8> {
    let issuer = bulwark_attest::tee::snp::ark_subject(product).expect("a built-in ARK");
    bulwark_testkit::crl::TestCrl::current(issuer, SAMPLES_AT_MS / 1_000).der()
}
