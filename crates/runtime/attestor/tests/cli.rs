//! The `bulwark attest` commands end to end on files: keys, operator set, manifest create/sign/show,
//! dev evidence, verify (exit codes), and with swtpm: enroll, measure, quote, verify.

use bulwark_attestor::cli::AttestCommand;
use bulwark_attestor::{run, AttestArgs};
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

/// `policy operators` with these public keys and threshold into `ops.json`; must succeed.
fn write_operators(dir: &Path, keys: &[&str], threshold: &str) {
    let mut args = vec!["policy", "operators"];
    for key in keys {
        args.extend_from_slice(&["--key", key]);
    }
    let out = p(dir, "ops.json");
    args.extend_from_slice(&["--threshold", threshold, "--out", &out]);
    assert_eq!(attest(&args), ExitCode::SUCCESS);
}

/// `policy sign` of the manifest file `manifest` with the secret key file `key`; must succeed.
fn sign_manifest(dir: &Path, manifest: &str, key: &str) {
    assert_eq!(
        attest(&[
            "policy",
            "sign",
            "--policy",
            &p(dir, manifest),
            "--key",
            &p(dir, key)
        ]),
        ExitCode::SUCCESS
    );
}

/// `verify` of the evidence file `evidence` against the manifest file `manifest` and `ops.json` for
/// `nonce`, followed by `extra` arguments.
fn verify_files(
    dir: &Path,
    evidence: &str,
    manifest: &str,
    nonce: &str,
    extra: &[&str],
) -> ExitCode {
    let (ev, mf, ops) = (p(dir, evidence), p(dir, manifest), p(dir, "ops.json"));
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
    ];
    args.extend_from_slice(extra);
    attest(&args)
}

/// `--binary`, `--config` and `--policy` naming the files [`write_app_files`] writes.
fn app_file_args(dir: &Path) -> Vec<String> {
    vec![
        "--binary".into(),
        p(dir, "bin"),
        "--config".into(),
        p(dir, "cfg"),
        "--policy".into(),
        p(dir, "pol"),
    ]
}

/// Writes the node binary, config and policy files `bin`, `cfg` and `pol`.
fn write_app_files(dir: &Path) {
    for (name, body) in [("bin", "binary"), ("cfg", "config"), ("pol", "policy")] {
        std::fs::write(dir.join(name), body).expect("write");
    }
}

#[test]
fn policy_and_dev_evidence_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let op1 = keygen(d, "op1.key");
    let op2 = keygen(d, "op2.key");
    let dev = keygen(d, "dev.key");
    write_operators(d, &[&op1, &op2], "2");
    write_app_files(d);
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
    sign_manifest(d, "manifest.json", "op1.key");
    sign_manifest(d, "manifest.json", "op2.key");

    let nonce = "ab".repeat(32);
    let (key, evidence) = (p(d, "dev.key"), p(d, "evidence.json"));
    let files = app_file_args(d);
    let mut args = vec![
        "dev-quote",
        "--key",
        &key,
        "--nonce",
        &nonce,
        "--out",
        &evidence,
    ];
    args.extend(files.iter().map(String::as_str));
    assert_eq!(attest(&args), ExitCode::SUCCESS);
    let ap = p(d, "appraisal.json");
    assert_eq!(
        verify_files(d, "evidence.json", "manifest.json", &nonce, &["--out", &ap]),
        ExitCode::from(1),
        "dev evidence refused without --accept-dev-evidence, whatever the manifest allows"
    );
    let verify = |nonce: &str, extra: &[&str]| {
        let mut args = vec!["--out", &ap, "--accept-dev-evidence"];
        args.extend_from_slice(extra);
        verify_files(d, "evidence.json", "manifest.json", nonce, &args)
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
    if !bulwark_testkit::swtpm::installed() {
        println!(
            "SKIPPED: swtpm is not installed (apt-get install swtpm swtpm-tools); CI installs it"
        );
        return;
    }
    let soft = bulwark_testkit::swtpm::SoftwareTpm::start().expect("swtpm");
    let tcti = soft.tcti();
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let op = keygen(d, "op.key");
    write_operators(d, &[&op], "1");
    write_app_files(d);
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
    let files = app_file_args(d);
    let log = p(d, "launch.log");
    let measure = || {
        let mut args = vec!["measure", "--tcti", &tcti, "--log", &log];
        args.extend(files.iter().map(String::as_str));
        attest(&args)
    };
    assert_eq!(measure(), ExitCode::SUCCESS);
    let honest =
        bulwark_attest::evidence::AppMeasurements::from_contents(b"binary", b"config", b"policy");
    let (binary, config, policy) = (
        honest.binary.to_hex(),
        honest.config.to_hex(),
        honest.policy.to_hex(),
    );
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
            "--launch-binary",
            &binary,
            "--launch-config",
            &config,
            "--launch-policy",
            &policy,
            "--out",
            &p(d, "m.json")
        ]),
        ExitCode::SUCCESS
    );
    // A TPM section without the launch lists is refused, naming what is missing.
    assert_ne!(
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
            &p(d, "no-launch.json")
        ]),
        ExitCode::SUCCESS
    );
    sign_manifest(d, "m.json", "op.key");
    let nonce = "11".repeat(32);
    let quote = || {
        attest(&[
            "quote",
            "--tcti",
            &tcti,
            "--log",
            &log,
            "--nonce",
            &nonce,
            "--out",
            &p(d, "q.json"),
        ])
    };
    let e = p(d, "enroll.json");
    let verify = |enroll: bool| {
        let extra: &[&str] = if enroll { &["--enrollment", &e] } else { &[] };
        verify_files(d, "q.json", "m.json", &nonce, extra)
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
        .join("../../../../shared/data/attestation-evidence");
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
    let at_ms = bulwark_attest::time::parse_time_ms(when).expect("time");
    let hex_text = std::fs::read_to_string(samples.join("report_milan.hex")).expect("read");
    let claims = bulwark_attest::tee::snp::verify_snp_report(
        &hex::decode(hex_text.trim()).expect("hex"),
        &std::fs::read(samples.join("vcek_milan.der")).expect("read"),
        None,
        at_ms,
    )
    .expect("verifies");
    let op = keygen(d, "op.key");
    write_operators(d, &[&op], "1");
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
    sign_manifest(d, "m.json", "op.key");
    // Everything verifies except freshness (the sample's report_data was not made for this
    // nonce) and revocation: the sample comes with no AMD CRL.
    assert_eq!(
        verify_files(
            d,
            "e.json",
            "m.json",
            &"00".repeat(32),
            &["--at", when, "--out", &p(d, "a.json")]
        ),
        ExitCode::from(1)
    );
    let signed: bulwark_attest::appraisal::SignedAppraisal =
        serde_json::from_slice(&std::fs::read(d.join("a.json")).expect("read")).expect("json");
    let appraisal: bulwark_attest::appraisal::Appraisal =
        serde_json::from_str(&signed.payload).expect("payload");
    let codes: Vec<&str> = appraisal.reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["snp-crl-missing", "qualifying-data-mismatch"]);
}

#[cfg(feature = "tpm")]
#[test]
fn swtpm_cli_ek_reads_the_inventory_entry_and_checks_its_certificate() {
    if !bulwark_testkit::swtpm::installed() {
        println!(
            "SKIPPED: swtpm is not installed (apt-get install swtpm swtpm-tools); CI installs it"
        );
        return;
    }
    let soft = bulwark_testkit::swtpm::SoftwareTpm::start().expect("swtpm");
    let other = bulwark_testkit::swtpm::SoftwareTpm::start().expect("swtpm");
    let tcti = soft.tcti();
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    std::fs::write(d.join("ca.pem"), soft.ek_ca_pem().expect("CA")).expect("writes");
    std::fs::write(d.join("other-ca.pem"), other.ek_ca_pem().expect("CA")).expect("writes");
    std::fs::write(d.join("junk.pem"), "not a certificate").expect("writes");
    let ek = |ca: Option<&str>| {
        let mut args = vec!["ek".to_string(), "--tcti".into(), tcti.clone()];
        if let Some(ca) = ca {
            args.extend(["--ca".into(), p(d, ca)]);
        }
        attest(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_eq!(
        ek(Some("ca.pem")),
        ExitCode::SUCCESS,
        "its manufacturer's CA"
    );
    assert_eq!(ek(None), ExitCode::SUCCESS, "unchecked, with a warning");
    assert_ne!(ek(Some("other-ca.pem")), ExitCode::SUCCESS, "another CA");
    assert_ne!(ek(Some("junk.pem")), ExitCode::SUCCESS, "not PEM");
    assert_ne!(ek(Some("missing.pem")), ExitCode::SUCCESS, "no file");
}
