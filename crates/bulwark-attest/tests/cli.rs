//! The `bulwark attest` commands end to end on files: keys, operator set, manifest create/sign/show,
//! dev evidence, verify (exit codes), and with swtpm: enroll, measure, quote, verify.

use bulwark_attest::cli::AttestCommand;
use bulwark_attest::{run, AttestArgs};
use clap::Parser;
use std::path::Path;
use std::process::ExitCode;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: AttestCommand,
}

fn attest(args: &[&str]) -> ExitCode {
    let cli = Cli::try_parse_from(std::iter::once("attest").chain(args.iter().copied()))
        .expect("arguments parse");
    run(AttestArgs {
        command: cli.command,
    })
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn keygen(dir: &Path, name: &str) -> String {
    assert_eq!(
        attest(&["keygen", "--out", &p(dir, name)]),
        ExitCode::SUCCESS
    );
    let secret = std::fs::read_to_string(dir.join(name)).expect("key written");
    let secret: [u8; 32] = hex::decode(secret.trim())
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&secret)
            .verifying_key()
            .to_bytes(),
    )
}

#[test]
fn policy_and_dev_evidence_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let op1 = keygen(d, "op1.key");
    let op2 = keygen(d, "op2.key");
    let dev = keygen(d, "dev.key");
    assert_eq!(
        attest(&[
            "policy",
            "operators",
            "--key",
            &op1,
            "--key",
            &op2,
            "--threshold",
            "2",
            "--out",
            &p(d, "ops.json")
        ]),
        ExitCode::SUCCESS
    );
    for (name, body) in [("bin", "binary"), ("cfg", "config"), ("pol", "policy")] {
        std::fs::write(d.join(name), body).expect("write");
    }
    let measurement =
        bulwark_attest::evidence::AppMeasurements::from_contents(b"binary", b"config", b"policy")
            .app_pcr_value();
    assert_eq!(
        attest(&[
            "policy",
            "create",
            "--role",
            "committee",
            "--release",
            "0.1.0",
            "--dev-signer",
            &dev,
            "--dev-measurement",
            &hex::encode(measurement),
            "--out",
            &p(d, "manifest.json"),
        ]),
        ExitCode::SUCCESS
    );
    let show = |at: &str| {
        attest(&[
            "policy",
            "show",
            "--policy",
            &p(d, "manifest.json"),
            "--operators",
            &p(d, "ops.json"),
            "--at",
            at,
        ])
    };
    assert_eq!(
        show(&format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis()
        )),
        ExitCode::from(1),
        "unsigned refused"
    );
    assert_eq!(
        attest(&[
            "policy",
            "sign",
            "--policy",
            &p(d, "manifest.json"),
            "--key",
            &p(d, "op1.key")
        ]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        attest(&[
            "policy",
            "sign",
            "--policy",
            &p(d, "manifest.json"),
            "--key",
            &p(d, "op2.key")
        ]),
        ExitCode::SUCCESS
    );

    let nonce = "ab".repeat(32);
    assert_eq!(
        attest(&[
            "dev-quote",
            "--key",
            &p(d, "dev.key"),
            "--nonce",
            &nonce,
            "--binary",
            &p(d, "bin"),
            "--config",
            &p(d, "cfg"),
            "--policy",
            &p(d, "pol"),
            "--out",
            &p(d, "evidence.json"),
        ]),
        ExitCode::SUCCESS
    );
    let (ev, mf, ops, ap) = (
        p(d, "evidence.json"),
        p(d, "manifest.json"),
        p(d, "ops.json"),
        p(d, "appraisal.json"),
    );
    let verify = |nonce: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--evidence",
            &ev,
            "--policy",
            &mf,
            "--operators",
            &ops,
            "--nonce",
            nonce,
            "--out",
            &ap,
        ];
        args.extend_from_slice(extra);
        attest(&args)
    };
    assert_eq!(
        verify(&nonce, &[]),
        ExitCode::SUCCESS,
        "dev evidence affirmed by a dev manifest"
    );
    assert!(std::fs::read_to_string(d.join("appraisal.json"))
        .expect("written")
        .contains("payload"));
    assert_eq!(
        verify(&"cd".repeat(32), &[]),
        ExitCode::from(1),
        "wrong nonce refused"
    );
    assert_eq!(
        verify(&nonce, &["--at", "2100-01-01T00:00:00Z"]),
        ExitCode::from(1),
        "expired manifest refused"
    );
    assert_eq!(verify("zz", &[]), ExitCode::from(2), "usage error");
}

#[cfg(feature = "tpm")]
#[test]
fn swtpm_cli_enroll_measure_quote_verify() {
    if !bulwark_attest::swtpm::installed() {
        println!(
            "SKIPPED: swtpm is not installed (apt-get install swtpm swtpm-tools); CI installs it"
        );
        return;
    }
    let soft = bulwark_attest::swtpm::SoftwareTpm::start().expect("swtpm");
    let tcti = soft.tcti();
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let op = keygen(d, "op.key");
    assert_eq!(
        attest(&[
            "policy",
            "operators",
            "--key",
            &op,
            "--threshold",
            "1",
            "--out",
            &p(d, "ops.json")
        ]),
        ExitCode::SUCCESS
    );
    for (name, body) in [("bin", "binary"), ("cfg", "config"), ("pol", "policy")] {
        std::fs::write(d.join(name), body).expect("write");
    }
    assert_eq!(
        attest(&[
            "enroll",
            "--tcti",
            &tcti,
            "--node-id",
            "n1",
            "--out",
            &p(d, "enroll.json")
        ]),
        ExitCode::SUCCESS
    );
    let measure = || {
        attest(&[
            "measure",
            "--tcti",
            &tcti,
            "--binary",
            &p(d, "bin"),
            "--config",
            &p(d, "cfg"),
            "--policy",
            &p(d, "pol"),
        ])
    };
    assert_eq!(measure(), ExitCode::SUCCESS);
    assert_eq!(
        attest(&[
            "policy",
            "create",
            "--role",
            "committee",
            "--release",
            "t",
            "--from-tcti",
            &tcti,
            "--out",
            &p(d, "m.json")
        ]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        attest(&[
            "policy",
            "sign",
            "--policy",
            &p(d, "m.json"),
            "--key",
            &p(d, "op.key")
        ]),
        ExitCode::SUCCESS
    );
    let nonce = "11".repeat(32);
    let quote = || {
        attest(&[
            "quote",
            "--tcti",
            &tcti,
            "--nonce",
            &nonce,
            "--out",
            &p(d, "q.json"),
        ])
    };
    let (q, m, ops, e) = (
        p(d, "q.json"),
        p(d, "m.json"),
        p(d, "ops.json"),
        p(d, "enroll.json"),
    );
    let verify = |enroll: bool| {
        let mut args = vec![
            "verify",
            "--evidence",
            &q,
            "--policy",
            &m,
            "--operators",
            &ops,
            "--nonce",
            &nonce,
        ];
        if enroll {
            args.extend_from_slice(&["--enrollment", &e]);
        }
        attest(&args)
    };
    assert_eq!(quote(), ExitCode::SUCCESS);
    assert_eq!(verify(true), ExitCode::SUCCESS, "honest quote affirmed");
    assert_eq!(
        verify(false),
        ExitCode::from(1),
        "AK without enrollment refused"
    );
    std::fs::write(d.join("bin"), "tampered binary").expect("write");
    assert_eq!(measure(), ExitCode::SUCCESS);
    assert_eq!(quote(), ExitCode::SUCCESS);
    assert_eq!(verify(true), ExitCode::from(1), "tampered binary refused");
}

#[test]
fn import_real_snp_sample_and_verify_at_its_date() {
    let samples = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/attestation-evidence");
    if !samples.is_dir() {
        println!(
            "SKIPPED: attestation samples not found at {}",
            samples.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let report = samples.join("report_milan.hex").display().to_string();
    let vcek = samples.join("vcek_milan.der").display().to_string();
    assert_eq!(
        attest(&[
            "import",
            "snp",
            "--report",
            &report,
            "--vcek",
            &vcek,
            "--out",
            &p(d, "e.json")
        ]),
        ExitCode::SUCCESS
    );
    let when = "2025-06-01T00:00:00Z";
    let at_ms = bulwark_attest::cli::parse_time_ms(when).expect("time");
    let hex_text = std::fs::read_to_string(samples.join("report_milan.hex")).expect("read");
    let claims = bulwark_attest::tee::snp::verify_snp_report(
        &hex::decode(hex_text.trim()).expect("hex"),
        &std::fs::read(samples.join("vcek_milan.der")).expect("read"),
        at_ms,
    )
    .expect("verifies");
    let op = keygen(d, "op.key");
    assert_eq!(
        attest(&[
            "policy",
            "operators",
            "--key",
            &op,
            "--threshold",
            "1",
            "--out",
            &p(d, "ops.json")
        ]),
        ExitCode::SUCCESS
    );
    let manifest = bulwark_attest::manifest::SignedManifest::unsigned(
        bulwark_attest::manifest::ReferenceManifest {
            role: "committee".into(),
            release: "sample".into(),
            issued_at_ms: at_ms - 1,
            expires_at_ms: at_ms + 60_000,
            tpm: None,
            snp: Some(bulwark_attest::manifest::SnpReference {
                measurements: vec![bulwark_attest::hexbytes::HexBytes(claims.measurement)],
                min_tcb: bulwark_attest::manifest::SnpTcb {
                    bootloader: 0,
                    tee: 0,
                    snp: 0,
                    microcode: 0,
                },
            }),
            tdx: None,
            dev: None,
        },
    );
    std::fs::write(
        d.join("m.json"),
        serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("write");
    assert_eq!(
        attest(&[
            "policy",
            "sign",
            "--policy",
            &p(d, "m.json"),
            "--key",
            &p(d, "op.key")
        ]),
        ExitCode::SUCCESS
    );
    // Everything verifies except freshness: the sample's report_data was not made for this nonce.
    assert_eq!(
        attest(&[
            "verify",
            "--evidence",
            &p(d, "e.json"),
            "--policy",
            &p(d, "m.json"),
            "--operators",
            &p(d, "ops.json"),
            "--nonce",
            &"00".repeat(32),
            "--at",
            when,
            "--out",
            &p(d, "a.json"),
        ]),
        ExitCode::from(1)
    );
    let signed: bulwark_attest::appraisal::SignedAppraisal =
        serde_json::from_slice(&std::fs::read(d.join("a.json")).expect("read")).expect("json");
    let appraisal: bulwark_attest::appraisal::Appraisal =
        serde_json::from_str(&signed.payload).expect("payload");
    let codes: Vec<&str> = appraisal.reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["qualifying-data-mismatch"]);
}
