//! `attest quote`, `measure` and `enroll`: the commands that talk to a TPM.

use super::*;

#[cfg(feature = "tpm")]
fn open_tpm(tcti: &str) -> Result<crate::tpm::device::TpmDevice, String> {
    crate::tpm::device::TpmDevice::open(tcti)
        .map_err(|e| format!("{e}; is the TPM (or swtpm) running and the TCTI right?"))
}

#[cfg(feature = "tpm")]
pub(super) fn quote(args: QuoteArgs) -> CliResult {
    let nonce = hex32(&args.nonce, "--nonce")?;
    let key_hash = default_key_hash(args.binding.node_key_sha256.as_deref())?;
    let mut device = open_tpm(&args.tcti)?;
    let qd = crate::nonce::qualifying_data(&nonce, &key_hash, args.binding.epoch);
    let quote = device.quote(&qd).map_err(|e| e.to_string())?;
    let evidence = Evidence::Tpm2Quote(crate::evidence::TpmEvidence {
        node_key_sha256: HexBytes(key_hash),
        epoch: args.binding.epoch,
        ak_public: device.ak_public().map_err(|e| e.to_string())?,
        attest: quote.attest,
        signature: quote.signature,
        pcrs: quote.pcrs.iter().map(|(i, v)| (*i, HexBytes(*v))).collect(),
    });
    write_json(&args.out, &evidence)?;
    eprintln!("quote of PCRs 0-7 and 23 written to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "tpm")]
pub(super) fn measure(args: MeasureArgs) -> CliResult {
    let m = args.files.measurements()?;
    let mut device = open_tpm(&args.tcti)?;
    let app = crate::tpm::APP_PCR;
    device.reset_pcr(app).map_err(|e| e.to_string())?;
    device
        .extend_pcr(app, &[m.binary.0, m.config.0, m.policy.0])
        .map_err(|e| e.to_string())?;
    println!("{}", hex::encode(m.app_pcr_value()));
    eprintln!(
        "PCR {app} reset and extended with binary {}, config {}, policy {}",
        m.binary, m.config, m.policy
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "tpm")]
pub(super) fn enroll(args: EnrollArgs) -> CliResult {
    let mut device = open_tpm(&args.tcti)?;
    let ek = device.ek_public().map_err(|e| e.to_string())?;
    let ak = device.ak_public().map_err(|e| e.to_string())?;
    // Both halves run here: this records a trust-on-first-use enrollment that the operator vouches for.
    // Enrollment never looks at manifests, so this throw-away verifier gets a placeholder operator set
    // made from its own one-off key.
    let key = ephemeral_key();
    let operators = OperatorSet::new(vec![HexBytes(key.verifying_key().to_bytes())], 1)
        .map_err(|e| e.to_string())?;
    let mut verifier = Verifier::new(key, operators, VerifierConfig::default());
    let now = now_ms();
    let challenge = verifier
        .begin_enrollment(&args.node_id, &ek, &ak, now, &mut OsRng)
        .map_err(|e| e.to_string())?;
    let credential = device
        .activate_credential(&challenge)
        .map_err(|e| e.to_string())?;
    let enrolled = verifier
        .finish_enrollment(&args.node_id, &credential, now)
        .map_err(|e| e.to_string())?;
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
            let text = String::from_utf8(read(path)?)
                .map_err(|_| format!("{}: not UTF-8 PEM", path.display()))?;
            Some(
                crate::tpm::EkAnchors::from_pem(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let mut device = open_tpm(&args.tcti)?;
    let ek = device.ek_public().map_err(|e| e.to_string())?;
    let certificate = device
        .ek_certificate(crate::tpm::EK_CERT_NV_RSA)
        .map_err(|e| e.to_string())?;
    let issuer = match &anchors {
        Some(anchors) => {
            let public = crate::tpm::TpmPublic::parse(&ek).map_err(|e| e.to_string())?;
            let at = now_ms() / 1_000;
            let issuer = crate::tpm::verify_ek_certificate(&certificate, &public, anchors, at)
                .map_err(|e| format!("this TPM's EK certificate is not accepted: {e}"))?;
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
    Err("this build has no TPM support: rebuild with the `tpm` feature of bulwark-attest (needs Debian libtss2-dev, pkg-config, clang)".into())
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
) -> Result<(), String> {
    let mut device = open_tpm(tcti)?;
    let mut indices = crate::tpm::BOOT_PCRS.to_vec();
    indices.push(crate::tpm::APP_PCR);
    for (index, value) in device.read_pcrs(&indices).map_err(|e| e.to_string())? {
        reference.entry(index).or_default().push(HexBytes(value));
    }
    Ok(())
}

#[cfg(not(feature = "tpm"))]
pub(super) fn read_reference_pcrs(
    _: &str,
    _: &mut BTreeMap<u8, Vec<Sha256Digest>>,
) -> Result<(), String> {
    no_tpm().map(|_| ())
}
