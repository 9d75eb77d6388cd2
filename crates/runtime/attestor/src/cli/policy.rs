//! `attest policy`: create, sign, show manifests and operator sets.

use super::*;

/// `policy create`: an unsigned manifest from PCR values (given, or read from a TPM) and, for
/// development only, dev signers and measurements.
#[allow(clippy::too_many_arguments)] // one per command-line option
fn create(
    role: String,
    release: String,
    valid_days: u64,
    pcrs: &[String],
    from_tcti: Option<String>,
    launch: [&[String]; 3],
    dev_signer: &[String],
    dev_measurement: &[String],
    out: &std::path::Path,
) -> CliResult {
    let [binaries, configs, policies] = launch.map(|values| {
        values
            .iter()
            .map(|v| hex32(v, "--launch-binary/--launch-config/--launch-policy").map(HexBytes))
            .collect::<Result<Vec<_>, _>>()
    });
    let launch = bulwark_attest::manifest::LaunchReference {
        binaries: binaries?,
        configs: configs?,
        policies: policies?,
    };
    let mut reference: BTreeMap<u8, Vec<Sha256Digest>> = BTreeMap::new();
    if let Some(tcti) = from_tcti {
        read_reference_pcrs(&tcti, &mut reference)?;
    }
    for entry in pcrs {
        let (index, value) = entry.split_once('=').ok_or_else(|| AttestCliError::Pcr {
            entry: entry.clone(),
            reason: "use INDEX=HEX",
        })?;
        let index: u8 = index.parse().map_err(|_| AttestCliError::Pcr {
            entry: entry.clone(),
            reason: "bad index",
        })?;
        reference
            .entry(index)
            .or_default()
            .push(HexBytes(hex32(value, "--pcr value")?));
    }
    let dev = if dev_signer.is_empty() {
        None
    } else {
        eprintln!("WARNING: this manifest accepts INSECURE development evidence; never use it in production");
        Some(DevReference {
            allow_insecure_dev_evidence: true,
            signer_keys: dev_signer
                .iter()
                .map(|k| hex32(k, "--dev-signer").map(HexBytes))
                .collect::<Result<_, _>>()?,
            app_measurements: dev_measurement
                .iter()
                .map(|m| hex32(m, "--dev-measurement").map(HexBytes))
                .collect::<Result<_, _>>()?,
        })
    };
    let now = now_ms();
    let manifest = ReferenceManifest {
        role,
        release,
        issued_at_ms: now,
        expires_at_ms: now.saturating_add(valid_days.saturating_mul(86_400_000)),
        tpm: (!reference.is_empty() || !launch.binaries.is_empty()).then_some(TpmReference {
            pcrs: reference,
            launch,
        }),
        snp: None,
        tdx: None,
        dev,
    };
    manifest.validate()?;
    write_json(out, &SignedManifest::unsigned(manifest))?;
    eprintln!(
        "unsigned manifest written to {}; sign it with `bulwark attest policy sign`",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn policy(command: PolicyCommand) -> CliResult {
    match command {
        PolicyCommand::Create {
            role,
            release,
            valid_days,
            pcrs,
            from_tcti,
            launch_binary,
            launch_config,
            launch_policy,
            dev_signer,
            dev_measurement,
            out,
        } => create(
            role,
            release,
            valid_days,
            &pcrs,
            from_tcti,
            [&launch_binary, &launch_config, &launch_policy],
            &dev_signer,
            &dev_measurement,
            &out,
        ),
        PolicyCommand::Sign { policy, key } => {
            let mut signed: SignedManifest = read_json(&policy)?;
            signed.manifest.validate()?;
            let key = read_secret_key(&key)?;
            signed.sign_with(&key);
            write_json(&policy, &signed)?;
            eprintln!(
                "signed by {}; {} signature(s) now",
                hex::encode(key.verifying_key().to_bytes()),
                signed.signatures.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Show {
            policy,
            operators,
            at,
        } => {
            let signed: SignedManifest = read_json(&policy)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&signed).expect("serializes")
            );
            let Some(operators) = operators else {
                return Ok(ExitCode::SUCCESS);
            };
            let operators: OperatorSet = read_json(&operators)?;
            let now = match at {
                Some(t) => parse_time_ms(&t)?,
                None => now_ms(),
            };
            match signed.verify(&operators, now) {
                Ok(_) => {
                    eprintln!(
                        "manifest acceptable: {} of {} operators required",
                        operators.threshold,
                        operators.keys.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("manifest refused: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        PolicyCommand::Operators {
            keys,
            threshold,
            out,
        } => {
            let keys = keys
                .iter()
                .map(|k| hex32(k, "--key").map(HexBytes))
                .collect::<Result<_, _>>()?;
            let set = OperatorSet::new(keys, threshold)?;
            write_json(&out, &set)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
