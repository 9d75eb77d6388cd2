//! `attest quote`, `measure` and `enroll`: the commands that talk to a TPM.

use super::*;

#[cfg(feature = "tpm")]
fn open_tpm(tcti: &str) -> Result<crate::device::TpmDevice, AttestCliError> {
    crate::device::TpmDevice::open(tcti).map_err(AttestCliError::TpmOpen)
}

#[cfg(feature = "tpm")]
pub(super) fn quote(args: QuoteArgs) -> CliResult {
    let nonce = hex32(&args.nonce, "--nonce")?;
    let key_hash = default_key_hash(args.binding.node_key_sha256.as_deref())?;
    let log = crate::launch::read_log(&args.log)?;
    let mut device = open_tpm(&args.tcti)?;
    let qd = bulwark_attest::nonce::qualifying_data(&nonce, &key_hash, args.binding.epoch);
    let quote = device.quote(&qd)?;
    let evidence = Evidence::Tpm2Quote(bulwark_attest::evidence::TpmEvidence {
        node_key_sha256: HexBytes(key_hash),
        epoch: args.binding.epoch,
        ak_public: device.ak_public()?,
        attest: quote.attest,
        signature: quote.signature,
        pcrs: quote.pcrs.iter().map(|(i, v)| (*i, HexBytes(*v))).collect(),
        launch_log: log,
    });
    write_json(&args.out, &evidence)?;
    eprintln!(
        "quote of PCRs 0-7 and {} with the launch log written to {}",
        bulwark_attest::launch::LAUNCH_PCR,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "tpm")]
pub(super) fn measure(args: MeasureArgs) -> CliResult {
    let m = args.files.measurements()?;
    let mut tpm = crate::launch::NodeTpm::open(&args.tcti)?;
    let log = tpm.launch(&args.log, &m)?;
    let value = bulwark_attest::launch::replay(&log);
    println!("{}", hex::encode(value));
    eprintln!(
        "launch {} since the platform reset measured into PCR {} and {}: binary {}, config {}, policy {}",
        log.len() / 3,
        bulwark_attest::launch::LAUNCH_PCR,
        args.log.display(),
        m.binary,
        m.config,
        m.policy
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "tpm")]
pub(super) fn enroll(args: EnrollArgs) -> CliResult {
    let mut device = open_tpm(&args.tcti)?;
    let ek = device.ek_public()?;
    let ak = device.ak_public()?;
    // Both halves run here: this records a trust-on-first-use enrollment that the operator vouches for.
    // Enrollment never looks at manifests, so this throw-away verifier gets a placeholder operator set
    // made from its own one-off key.
    let key = ephemeral_key();
    let operators = OperatorSet::new(vec![HexBytes(key.verifying_key().to_bytes())], 1)?;
    let mut verifier = Verifier::new(key, operators, VerifierConfig::default());
    let now = now_ms();
    let challenge = verifier.begin_enrollment(&args.node_id, &ek, &ak, now, &mut OsRng)?;
    let credential = device.activate_credential(&challenge)?;
    let enrolled = verifier.finish_enrollment(&args.node_id, &credential, now)?;
    write_json(&args.out, &enrolled)?;
    eprintln!(
        "AK bound to EK by credential activation; enrollment written to {}. The EK itself is trusted on first use: check its certificate with `bulwark attest ek --ca`.",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "tpm")]
pub(super) fn ek(args: EkArgs) -> CliResult {
    // The trusted CAs first: a bad file is reported before the TPM is touched.
    let anchors = match &args.ca {
        Some(path) => {
            let text =
                String::from_utf8(read(path)?).map_err(|_| bad_file(path, "is not UTF-8 PEM"))?;
            Some(
                bulwark_attest::tpm::EkAnchors::from_pem(&text).map_err(|source| {
                    AttestCliError::EkAnchors {
                        path: path.clone(),
                        source,
                    }
                })?,
            )
        }
        None => None,
    };
    let mut device = open_tpm(&args.tcti)?;
    let ek = device.ek_public()?;
    let certificate = device.ek_certificate(bulwark_attest::tpm::EK_CERT_NV_RSA)?;
    let issuer = match &anchors {
        Some(anchors) => {
            let public = bulwark_attest::tpm::TpmPublic::parse(&ek)?;
            let at = now_ms() / 1_000;
            let issuer =
                bulwark_attest::tpm::verify_ek_certificate(&certificate, &public, anchors, at)
                    .map_err(AttestCliError::EkRefused)?;
            eprintln!("EK certificate verified: issued by {issuer}, certifies this EK");
            Some(issuer)
        }
        None => {
            eprintln!(
                "warning: EK certificate NOT checked (no --ca); check it before listing this TPM"
            );
            None
        }
    };
    let out = serde_json::json!({
        "tpm_ek": hex::encode(&ek),
        "tpm_ek_cert": hex::encode(&certificate),
        "issuer": issuer,
    });
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "tpm"))]
fn no_tpm() -> CliResult {
    Err(AttestCliError::NoTpmSupport)
}
#[cfg(not(feature = "tpm"))]
pub(super) fn quote(_: QuoteArgs) -> CliResult {
    no_tpm()
}
#[cfg(not(feature = "tpm"))]
pub(super) fn measure(_: MeasureArgs) -> CliResult {
    no_tpm()
}
#[cfg(not(feature = "tpm"))]
pub(super) fn enroll(_: EnrollArgs) -> CliResult {
    no_tpm()
}
#[cfg(not(feature = "tpm"))]
pub(super) fn ek(_: EkArgs) -> CliResult {
    no_tpm()
}

#[cfg(feature = "tpm")]
pub(super) fn read_reference_pcrs(
    tcti: &str,
    reference: &mut BTreeMap<u8, Vec<Sha256Digest>>,
) -> Result<(), AttestCliError> {
    let mut device = open_tpm(tcti)?;
    for (index, value) in device.read_pcrs(&bulwark_attest::tpm::BOOT_PCRS)? {
        reference.entry(index).or_default().push(HexBytes(value));
    }
    Ok(())
}

#[cfg(not(feature = "tpm"))]
pub(super) fn read_reference_pcrs(
    _: &str,
    _: &mut BTreeMap<u8, Vec<Sha256Digest>>,
) -> Result<(), AttestCliError> {
    no_tpm().map(|_| ())
}
