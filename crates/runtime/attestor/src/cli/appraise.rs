//! `attest dev-quote`, `verify` and `import`: producing and appraising evidence files.

use super::*;

pub(super) fn dev_quote(args: DevQuoteArgs) -> CliResult {
    let nonce = hex32(&args.nonce, "--nonce")?;
    let key_hash = default_key_hash(args.binding.node_key_sha256.as_deref())?;
    let key = read_secret_key(&args.key)?;
    let attestor = DevAttestor::from_secret(&zeroize::Zeroizing::new(key.to_bytes()));
    let m = args.files.measurements()?;
    let evidence = Evidence::DevInsecure(attestor.attest(&nonce, &key_hash, args.binding.epoch, m));
    write_json(&args.out, &evidence)?;
    eprintln!("WARNING: INSECURE development evidence written to {}: software-signed, no hardware root of trust; only a manifest that explicitly allows dev evidence accepts it", args.out.display());
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(args: VerifyArgs) -> CliResult {
    let nonce: Nonce = hex32(&args.nonce, "--nonce")?;
    let evidence =
        Evidence::from_json(&read(&args.evidence)?).map_err(|source| AttestCliError::Evidence {
            path: args.evidence.clone(),
            source,
        })?;
    let manifest: SignedManifest = read_json(&args.policy)?;
    let operators: OperatorSet = read_json(&args.operators)?;
    let now = match &args.at {
        Some(text) => parse_time_ms(text)?,
        None => now_ms(),
    };
    let (claimed_key, claimed_epoch) = match &evidence {
        Evidence::Tpm2Quote(t) => (t.node_key_sha256.0, t.epoch),
        Evidence::DevInsecure(d) => (d.node_key_sha256.0, d.epoch),
        // SNP and TDX reports carry only the qualifying data; the key hash and epoch must be given.
        Evidence::SevSnp(_) | Evidence::Tdx(_) => (bulwark_attest::nonce::node_key_hash(&[]), 0),
    };
    let key_hash = match &args.node_key_sha256 {
        Some(text) => hex32(text, "--node-key-sha256")?,
        None => {
            eprintln!("note: binding the node key hash the evidence claims ({}); the relying party must compare it with the TLS key it sees", hex::encode(claimed_key));
            claimed_key
        }
    };
    let key = match &args.verifier_key {
        Some(path) => read_secret_key(path)?,
        None => {
            eprintln!("note: no --verifier-key; the appraisal is signed with a one-off key");
            ephemeral_key()
        }
    };
    let config = VerifierConfig {
        accept_dev_evidence: args.accept_dev_evidence,
        ..VerifierConfig::default()
    };
    let mut verifier = Verifier::new(key, operators, config);
    let node_id = match &args.enrollment {
        Some(path) => {
            let enrolled: EnrolledAk = read_json(path)?;
            let id = enrolled.node_id.clone();
            verifier.restore_enrollment(enrolled)?;
            id
        }
        None => "node".to_owned(),
    };
    // The nonce given on the command line was issued by whoever asked for the quote; enter it as fresh.
    verifier.issue_nonce(now, nonce)?;
    let signed = verifier.appraise(
        &AppraisalRequest {
            node_id: &node_id,
            node_key_sha256: key_hash,
            epoch: args.epoch.unwrap_or(claimed_epoch),
            nonce,
            evidence: &evidence,
            manifest: &manifest,
        },
        now,
    );
    let appraisal = signed
        .verify(&verifier.public_key(), now)
        .map_err(AttestCliError::OwnAppraisal)?;
    if let Some(out) = &args.out {
        write_json(out, &signed)?;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&appraisal).expect("serializes")
    );
    if appraisal.claims.insecure_dev {
        eprintln!("WARNING: INSECURE development evidence (no hardware root of trust)");
    }
    match appraisal.status {
        Status::Affirming => Ok(ExitCode::SUCCESS),
        status => {
            eprintln!("appraisal is {status:?}:");
            for reason in &appraisal.reasons {
                eprintln!("  [{}] {}", reason.code, reason.detail);
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub(super) fn import(command: ImportCommand) -> CliResult {
    let (evidence, out) = match command {
        ImportCommand::Snp {
            report,
            vcek,
            crl,
            out,
        } => {
            let mut bytes = read(&report)?;
            if bytes.len() != bulwark_attest::tee::snp::SNP_REPORT_LEN {
                const NEITHER: &str = "is neither a 1184-byte report nor hex";
                let text = String::from_utf8(bytes).map_err(|_| bad_file(&report, NEITHER))?;
                bytes = hex::decode(text.trim()).map_err(|_| bad_file(&report, NEITHER))?;
            }
            let evidence = Evidence::SevSnp(bulwark_attest::evidence::SnpEvidence {
                report: bytes,
                vcek: read(&vcek)?,
                crl: match &crl {
                    Some(crl) => read(crl)?,
                    None => {
                        eprintln!(
                            "warning: no --crl: peers refuse SEV-SNP evidence without AMD's CRL"
                        );
                        Vec::new()
                    }
                },
            });
            (evidence, out)
        }
        ImportCommand::Tdx {
            quote,
            collateral,
            out,
        } => {
            let evidence = Evidence::Tdx(bulwark_attest::evidence::TdxEvidence {
                quote: read(&quote)?,
                collateral: read_json(&collateral)?,
            });
            (evidence, out)
        }
    };
    write_json(&out, &evidence)?;
    eprintln!("evidence written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
