//! `bulwark bench attest`: quotes appraised per second, against peers run in the same process.
//!
//! Prints one JSON line per comparison:
//! `{"bench","metric","value","unit","peer","peer_value","ratio"}`.
//! - peer `tpm2_checkquote`: the tpm2-tools checker (what Keylime's verifier ran per quote), one process
//!   per quote, checking only signature and nonce — less work than a full appraisal; reported as
//!   run and again with its process start-up (`tpm2_checkquote --version`) subtracted;
//! - peer `p256_verify_bound` (or `ed25519_verify_bound` for dev evidence): bare signature verifications
//!   per second on this machine, an upper bound no appraisal can beat.

use bulwark_attest::appraisal::Status;
use bulwark_attest::evidence::{AppMeasurements, Evidence};
use bulwark_attest::hexbytes::HexBytes;
use bulwark_attest::manifest::{OperatorSet, ReferenceManifest, SignedManifest};
use bulwark_attest::verifier::{AppraisalRequest, Verifier, VerifierConfig};
use ed25519_dalek::SigningKey;
use std::time::Instant;

const NOW_MS: u64 = 1_800_000_000_000;

struct Line<'a> {
    metric: &'a str,
    value: f64,
    unit: &'a str,
    peer: &'a str,
    peer_value: f64,
}

fn print(line: &Line<'_>) {
    crate::report::emit(
        "attest",
        line.metric,
        line.value,
        line.unit,
        Some((line.peer, line.peer_value)),
    );
}

fn operators() -> (SigningKey, SigningKey, OperatorSet) {
    let keys: Vec<SigningKey> = (11..14u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let set = OperatorSet::new(
        keys.iter()
            .map(|k| HexBytes(k.verifying_key().to_bytes()))
            .collect(),
        2,
    )
    .expect("three distinct keys make a valid 2-of-3 set");
    (keys[0].clone(), keys[2].clone(), set)
}

fn sign_manifest(manifest: ReferenceManifest) -> SignedManifest {
    let (a, b, _) = operators();
    let mut signed = SignedManifest::unsigned(manifest);
    signed.sign_with(&a);
    signed.sign_with(&b);
    signed
}

fn new_verifier() -> Verifier {
    Verifier::new(
        SigningKey::from_bytes(&[20; 32]),
        operators().2,
        VerifierConfig {
            nonce_capacity: 100_000,
            // The dev-evidence fallback appraises development evidence.
            accept_dev_evidence: true,
            ..VerifierConfig::default()
        },
    )
}

/// Appraises every `(nonce, evidence)` and returns appraisals per second; panics if one is not
/// affirming (the bench would be measuring the wrong path).
fn appraise_all(
    verifier: &mut Verifier,
    node_id: &str,
    key_hash: [u8; 32],
    manifest: &SignedManifest,
    batch: &[([u8; 32], Evidence)],
) -> f64 {
    let start = Instant::now();
    let mut signed_all = Vec::with_capacity(batch.len());
    for (nonce, evidence) in batch {
        signed_all.push(verifier.appraise(
            &AppraisalRequest {
                node_id,
                node_key_sha256: key_hash,
                epoch: 1,
                nonce: *nonce,
                evidence,
                manifest,
            },
            NOW_MS + 1,
        ));
    }
    let rate = batch.len() as f64 / start.elapsed().as_secs_f64();
    // Checked after the clock stopped: relying-party verification is not the verifier's cost.
    for signed in signed_all {
        let appraisal = signed
            .verify(&verifier.public_key(), NOW_MS + 1)
            .expect("bench appraisals must verify");
        assert!(
            appraisal.status != Status::Contraindicated,
            "bench evidence must appraise: {:?}",
            appraisal.reasons
        );
    }
    rate
}

/// Runs `bulwark bench attest`, printing JSON lines on stdout and notes on stderr.
pub fn run_bench() {
    #[cfg(feature = "tpm")]
    {
        if bulwark_testkit::swtpm::installed() {
            match tpm_bench() {
                Ok(()) => return,
                Err(error) => eprintln!(
                    "bench attest: swtpm bench failed ({error}); falling back to dev evidence"
                ),
            }
        } else {
            eprintln!("bench attest: swtpm not installed; measuring on INSECURE dev evidence instead of TPM quotes");
        }
    }
    #[cfg(not(feature = "tpm"))]
    eprintln!("bench attest: built without the `tpm` feature (--features bulwark-bench/tpm); measuring on INSECURE dev evidence instead of TPM quotes");
    dev_bench();
}

fn dev_bench() {
    let attestor = bulwark_attest::dev::DevAttestor::from_secret(&[14; 32]);
    let measurements = AppMeasurements::from_contents(b"binary", b"config", b"policy");
    let manifest = sign_manifest(ReferenceManifest {
        role: "bench".into(),
        release: "bench".into(),
        issued_at_ms: NOW_MS - 1,
        expires_at_ms: NOW_MS + 3_600_000,
        tpm: None,
        snp: None,
        tdx: None,
        dev: Some(bulwark_attest::manifest::DevReference {
            allow_insecure_dev_evidence: true,
            signer_keys: vec![attestor.public_key()],
            app_measurements: vec![HexBytes(measurements.app_pcr_value())],
        }),
    });
    let mut verifier = new_verifier();
    let key_hash = [15; 32];
    let mut batch = Vec::new();
    for i in 0..2_000u32 {
        let mut random = [0u8; 32];
        random[..4].copy_from_slice(&i.to_be_bytes());
        let nonce = verifier.issue_nonce(NOW_MS, random).expect("bench nonce");
        batch.push((
            nonce,
            Evidence::DevInsecure(attestor.attest(&nonce, &key_hash, 1, measurements)),
        ));
    }
    let rate = appraise_all(&mut verifier, "dev", key_hash, &manifest, &batch);
    let Evidence::DevInsecure(sample) = &batch[0].1 else {
        unreachable!("the batch holds dev evidence only")
    };
    let start = Instant::now();
    let rounds = 2_000u32;
    for _ in 0..rounds {
        sample
            .verify_signature()
            .expect("bench dev evidence verifies");
    }
    let bound = f64::from(rounds) / start.elapsed().as_secs_f64();
    print(&Line {
        metric: "dev_evidence_appraised_per_s",
        value: rate,
        unit: "appraisals/s",
        peer: "ed25519_verify_bound",
        peer_value: bound,
    });
}

/// Why the swtpm figures (or their `tpm2_checkquote` peer) could not be measured.
#[cfg(feature = "tpm")]
#[derive(Debug, thiserror::Error)]
enum TpmBenchError {
    /// The software TPM does not start.
    #[error(transparent)]
    Swtpm(#[from] bulwark_testkit::swtpm::SwtpmError),
    /// The software TPM refused an operation.
    #[error(transparent)]
    Device(#[from] bulwark_attestor::device::DeviceError),
    /// The verifier refused the AK enrollment.
    #[error(transparent)]
    Verifier(#[from] bulwark_attest::verifier::VerifierError),
    /// A quote's AK or signature does not parse or verify.
    #[error(transparent)]
    Tpm(#[from] bulwark_attest::tpm::TpmError),
    /// The AK does not fit a `TPM2B_PUBLIC`.
    #[error("AK too long")]
    AkTooLong,
    /// The batch holds other evidence than TPM quotes.
    #[error("not a TPM quote")]
    NotQuote,
    /// The `tpm2_checkquote` inputs cannot be written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// `tpm2_checkquote` is not installed or does not run.
    #[error("tpm2_checkquote not runnable ({0}); install tpm2-tools")]
    CheckquoteMissing(#[source] std::io::Error),
    /// `tpm2_checkquote` refused a quote the appraisal accepted.
    #[error("tpm2_checkquote refused a valid quote: {stderr}")]
    CheckquoteRefused {
        /// What it printed.
        stderr: String,
    },
}

#[cfg(feature = "tpm")]
fn tpm_bench() -> Result<(), TpmBenchError> {
    use bulwark_attest::launch::{launch_events, LAUNCH_PCR};
    use bulwark_attest::tpm::BOOT_PCRS;
    use bulwark_attestor::device::TpmDevice;
    use rand_core::OsRng;

    let soft = bulwark_testkit::swtpm::SoftwareTpm::start()?;
    let mut device = TpmDevice::open(&soft.tcti())?;
    let mut verifier = new_verifier();
    let ek = device.ek_public()?;
    let ak = device.ak_public()?;
    let challenge = verifier.begin_enrollment("bench", &ek, &ak, NOW_MS, &mut OsRng)?;
    let credential = device.activate_credential(&challenge)?;
    verifier.finish_enrollment("bench", &credential, NOW_MS)?;
    let m = AppMeasurements::from_contents(b"binary", b"config", b"policy");
    let log = launch_events(&m);
    device.extend_pcr(LAUNCH_PCR, &log.map(|e| e.digest.0))?;
    let reference = device.read_pcrs(&BOOT_PCRS)?;
    let manifest = sign_manifest(ReferenceManifest {
        role: "bench".into(),
        release: "bench".into(),
        issued_at_ms: NOW_MS - 1,
        expires_at_ms: NOW_MS + 3_600_000,
        tpm: Some(bulwark_attest::manifest::TpmReference {
            pcrs: reference
                .iter()
                .map(|(i, v)| (*i, vec![HexBytes(*v)]))
                .collect(),
            launch: bulwark_attest::manifest::LaunchReference::allowing([&m]),
        }),
        snp: None,
        tdx: None,
        dev: None,
    });
    let key_hash = [15; 32];
    let quotes = 64u32;
    let mut batch = Vec::new();
    let quoting = Instant::now();
    for i in 0..quotes {
        let mut random = [0u8; 32];
        random[..4].copy_from_slice(&i.to_be_bytes());
        let nonce = verifier.issue_nonce(NOW_MS, random).expect("bench nonce");
        let qd = bulwark_attest::nonce::qualifying_data(&nonce, &key_hash, 1);
        let quote = device.quote(&qd)?;
        batch.push((
            nonce,
            Evidence::Tpm2Quote(bulwark_attest::evidence::TpmEvidence {
                node_key_sha256: HexBytes(key_hash),
                epoch: 1,
                ak_public: ak.clone(),
                attest: quote.attest,
                signature: quote.signature,
                pcrs: quote.pcrs.iter().map(|(i, v)| (*i, HexBytes(*v))).collect(),
                launch_log: log.to_vec(),
            }),
        ));
    }
    eprintln!(
        "bench attest: {quotes} real swtpm quotes taken at {:.1} quotes/s (TPM side, not compared)",
        f64::from(quotes) / quoting.elapsed().as_secs_f64()
    );
    let rate = appraise_all(&mut verifier, "bench", key_hash, &manifest, &batch);

    let Evidence::Tpm2Quote(sample) = &batch[0].1 else {
        unreachable!("the batch holds TPM evidence only")
    };
    let ak_public = bulwark_attest::tpm::TpmPublic::parse(&ak)?;
    let signature = bulwark_attest::tpm::TpmSignature::parse(&sample.signature)?;
    let rounds = 2_000u32;
    let start = Instant::now();
    for _ in 0..rounds {
        signature.verify(&ak_public.key, &sample.attest)?;
    }
    let bound = f64::from(rounds) / start.elapsed().as_secs_f64();
    print(&Line {
        metric: "tpm_quotes_appraised_per_s",
        value: rate,
        unit: "quotes/s",
        peer: "p256_verify_bound",
        peer_value: bound,
    });
    // The worst log a peer may send (LAUNCH_EVENTS_MAX events), replayed, shaped and checked
    // against the manifest's lists, as the verifier does, against one quote signature.
    let full: Vec<_> = log
        .iter()
        .cycle()
        .take(bulwark_attest::launch::LAUNCH_EVENTS_MAX / 3 * 3)
        .copied()
        .collect();
    let reference = bulwark_attest::manifest::LaunchReference::allowing([&m]);
    let rounds = 200u32;
    let start = Instant::now();
    for _ in 0..rounds {
        let shaped = bulwark_attest::launch::check_shape(std::hint::black_box(&full)).is_ok();
        let value = bulwark_attest::launch::replay(&full);
        let listed = full
            .iter()
            .all(|e| reference.allowed(e.kind).contains(&e.digest));
        std::hint::black_box((shaped, value, listed));
    }
    let full_rate = f64::from(rounds) / start.elapsed().as_secs_f64();
    print(&Line {
        metric: "full_launch_log_checks_per_s",
        value: full_rate,
        unit: "logs/s (1 023 events each)",
        peer: "p256_verify_bound",
        peer_value: bound,
    });
    match checkquote_rate(&ak, &batch, &key_hash) {
        Ok((with_startup, without_startup)) => {
            print(&Line {
                metric: "tpm_quotes_appraised_per_s",
                value: rate,
                unit: "quotes/s",
                peer: "tpm2_checkquote, one process per quote (start-up included)",
                peer_value: with_startup,
            });
            match without_startup {
                Some(peer) => print(&Line {
                    metric: "tpm_quotes_appraised_per_s",
                    value: rate,
                    unit: "quotes/s",
                    peer: "tpm2_checkquote per quote, its process start-up (tpm2_checkquote --version) subtracted",
                    peer_value: peer,
                }),
                None => eprintln!("bench attest: tpm2_checkquote's work per quote is below its start-up noise; only the figure with start-up is reported"),
            }
        }
        Err(error) => eprintln!("bench attest: tpm2_checkquote peer not run: {error}"),
    }
    Ok(())
}

/// Runs `tpm2_checkquote` (signature + nonce only) on up to 16 of the quotes; returns quotes/s
/// as run (one process per quote), and with the process's own start-up (the mean time of
/// `tpm2_checkquote --version`, measured in the same run) subtracted from each, when what
/// remains is positive.
#[cfg(feature = "tpm")]
fn checkquote_rate(
    ak: &[u8],
    batch: &[([u8; 32], Evidence)],
    key_hash: &[u8; 32],
) -> Result<(f64, Option<f64>), TpmBenchError> {
    let dir = std::env::temp_dir().join(format!("bulwark-checkquote-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let mut tpm2b = u16::try_from(ak.len())
            .map_err(|_| TpmBenchError::AkTooLong)?
            .to_be_bytes()
            .to_vec();
        tpm2b.extend_from_slice(ak);
        std::fs::write(dir.join("ak.pub"), &tpm2b)?;
        let sample: Vec<_> = batch.iter().take(16).collect();
        let mut jobs = Vec::new();
        for (i, (nonce, evidence)) in sample.iter().enumerate() {
            let Evidence::Tpm2Quote(q) = evidence else {
                return Err(TpmBenchError::NotQuote);
            };
            let msg = dir.join(format!("{i}.msg"));
            let sig = dir.join(format!("{i}.sig"));
            std::fs::write(&msg, &q.attest)?;
            std::fs::write(&sig, &q.signature)?;
            jobs.push((
                msg,
                sig,
                hex::encode(bulwark_attest::nonce::qualifying_data(nonce, key_hash, 1)),
            ));
        }
        let start = Instant::now();
        for (msg, sig, qd) in &jobs {
            let output = std::process::Command::new("tpm2_checkquote")
                .arg("-u")
                .arg(dir.join("ak.pub"))
                .arg("-m")
                .arg(msg)
                .arg("-s")
                .arg(sig)
                .arg("-g")
                .arg("sha256")
                .arg("-q")
                .arg(qd)
                .output()
                .map_err(TpmBenchError::CheckquoteMissing)?;
            if !output.status.success() {
                return Err(TpmBenchError::CheckquoteRefused {
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                });
            }
        }
        let per_quote = start.elapsed().as_secs_f64() / jobs.len() as f64;
        let start = Instant::now();
        for _ in 0..jobs.len() {
            std::process::Command::new("tpm2_checkquote")
                .arg("--version")
                .output()
                .map_err(TpmBenchError::CheckquoteMissing)?;
        }
        let startup = start.elapsed().as_secs_f64() / jobs.len() as f64;
        let work = per_quote - startup;
        Ok((1.0 / per_quote, (work > 0.0).then(|| 1.0 / work)))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
