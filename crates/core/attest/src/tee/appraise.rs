//! Appraisal of SEV-SNP and TDX evidence against a manifest's `snp` / `tdx` sections.
//!
//! Every check runs and adds its reason, so a refused report lists everything that is wrong, except
//! that nothing is learnt from a report whose chain or signature failed.

use super::snp::{verify_snp_report, SnpError};
use super::tdx::verify_tdx_quote;
use crate::appraisal::{Appraisal, Status};
use crate::evidence::{SnpEvidence, TdxEvidence};
use crate::hexbytes::HexBytes;
use crate::manifest::ReferenceManifest;

/// The 64 bytes a report must carry: the qualifying data followed by 32 zero bytes.
pub(crate) fn expected_report_data(qualifying: &[u8; 32]) -> [u8; 64] {
    let mut expected = [0u8; 64];
    expected[..32].copy_from_slice(qualifying);
    expected
}

fn check_report_data(out: &mut Appraisal, report_data: &[u8; 64], expected: &[u8; 64]) {
    if report_data != expected {
        out.refuse(
            "qualifying-data-mismatch",
            format!(
                "report_data {} is not the expected {} (the qualifying data followed by zeros): wrong nonce, node key or epoch",
                hex::encode(report_data),
                hex::encode(expected)
            ),
        );
    }
}

fn list(values: &[HexBytes<48>]) -> String {
    values
        .iter()
        .map(|v| v.to_hex())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// `recorded_sample`: TEST ONLY (the `recorded-samples` switch is on); a sample recorded
/// elsewhere has no CRL of its date, so a missing CRL is a warning instead of a refusal.
pub(crate) fn appraise_snp(
    manifest: &ReferenceManifest,
    evidence: &SnpEvidence,
    expected: &[u8; 64],
    now_ms: u64,
    recorded_sample: bool,
    out: &mut Appraisal,
) {
    let Some(reference) = &manifest.snp else {
        return out.refuse(
            "no-snp-reference",
            "the manifest has no SEV-SNP reference values".into(),
        );
    };
    let crl = (!evidence.crl.is_empty()).then_some(&evidence.crl[..]);
    let claims = match verify_snp_report(&evidence.report, &evidence.vcek, crl, now_ms) {
        Ok(claims) => claims,
        Err(error @ SnpError::Revoked { .. }) => {
            return out.refuse("snp-revoked", error.to_string())
        }
        Err(error @ SnpError::Crl(_)) => return out.refuse("snp-crl-refused", error.to_string()),
        Err(error) => return out.refuse("snp-verification-failed", error.to_string()),
    };
    if claims.crl.is_none() {
        const DETAIL: &str = "the evidence carries no AMD CRL, so a revoked ASK or VCEK would pass (the node's [admission] crl_file)";
        if recorded_sample {
            out.push_reason(
                Status::Warning,
                "snp-crl-not-checked",
                format!("TEST ONLY (recorded sample): {DETAIL}"),
            );
        } else {
            out.refuse("snp-crl-missing", DETAIL.into());
        }
    }
    if claims.vmpl != 0 {
        // Under a paravisor (SVSM), a guest at a less privileged VMPL can ask for reports over
        // data of its choosing: only VMPL 0, the guest's most privileged level, speaks for the VM.
        out.refuse(
            "snp-vmpl-not-zero",
            format!(
                "the report was requested at VMPL {}; only VMPL 0 speaks for the VM",
                claims.vmpl
            ),
        );
    }
    let tcb = claims.reported_tcb;
    out.claims.tee_product = Some(claims.product.to_owned());
    out.claims.tee_measurement = Some(HexBytes(claims.measurement));
    out.claims.tee_tcb = Some(format!(
        "bootloader={} tee={} snp={} microcode={}",
        tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
    ));
    if claims.debug_allowed {
        out.refuse(
            "snp-debug-allowed",
            "guest policy allows debugging: the host can read guest memory".into(),
        );
    }
    if !reference
        .measurements
        .iter()
        .any(|m| m.0 == claims.measurement)
    {
        out.refuse(
            "snp-measurement-mismatch",
            format!(
                "launch measurement {} but the manifest allows {}",
                hex::encode(claims.measurement),
                list(&reference.measurements)
            ),
        );
    }
    let min = reference.min_tcb;
    for (name, found, required) in [
        ("bootloader", tcb.bootloader, min.bootloader),
        ("tee", tcb.tee, min.tee),
        ("snp", tcb.snp, min.snp),
        ("microcode", tcb.microcode, min.microcode),
    ] {
        if found < required {
            out.refuse(
                "snp-tcb-too-low",
                format!("certified TCB {name} SVN {found} (the VCEK's, equal to the report's) is below the minimum {required}"),
            );
        }
    }
    check_report_data(out, &claims.report_data, expected);
}

pub(crate) fn appraise_tdx(
    manifest: &ReferenceManifest,
    evidence: &TdxEvidence,
    expected: &[u8; 64],
    now_ms: u64,
    out: &mut Appraisal,
) {
    let Some(reference) = &manifest.tdx else {
        return out.refuse(
            "no-tdx-reference",
            "the manifest has no TDX reference values".into(),
        );
    };
    let collateral =
        serde_json::to_vec(&evidence.collateral).expect("a JSON value always serializes");
    let claims = match verify_tdx_quote(&evidence.quote, &collateral, now_ms) {
        Ok(claims) => claims,
        Err(error) => return out.refuse("tdx-verification-failed", error.to_string()),
    };
    out.claims.tee_product = Some("tdx".into());
    out.claims.tee_measurement = Some(HexBytes(claims.mr_td));
    out.claims.tee_tcb = Some(format!(
        "tee_tcb_svn={} status={}",
        hex::encode(claims.tee_tcb_svn),
        claims.tcb_status
    ));
    match claims.tcb_status.as_str() {
        "UpToDate" => {}
        "SWHardeningNeeded" | "ConfigurationNeeded" | "ConfigurationAndSWHardeningNeeded" => out
            .push_reason(
                Status::Warning,
                "tdx-tcb-status",
                format!(
                    "Intel TCB status {} (advisories: {})",
                    claims.tcb_status,
                    claims.advisory_ids.join(", ")
                ),
            ),
        other => out.refuse(
            "tdx-tcb-status",
            format!(
                "Intel TCB status {other} (advisories: {})",
                claims.advisory_ids.join(", ")
            ),
        ),
    }
    if claims.td_attributes[0] & 1 != 0 {
        out.refuse(
            "tdx-debug",
            "TD attributes have DEBUG set: the host can read TD memory".into(),
        );
    }
    if !reference.mrtd.iter().any(|m| m.0 == claims.mr_td) {
        out.refuse(
            "tdx-mrtd-mismatch",
            format!(
                "MRTD {} but the manifest allows {}",
                hex::encode(claims.mr_td),
                list(&reference.mrtd)
            ),
        );
    }
    for (index, allowed) in &reference.rtmrs {
        let found = claims.rtmrs[usize::from(*index)];
        if !allowed.iter().any(|m| m.0 == found) {
            out.refuse(
                "tdx-rtmr-mismatch",
                format!(
                    "RTMR{index} holds {} but the manifest allows {}",
                    hex::encode(found),
                    list(allowed)
                ),
            );
        }
    }
    for (i, (found, required)) in claims
        .tee_tcb_svn
        .iter()
        .zip(reference.min_tee_tcb_svn.0.iter())
        .enumerate()
    {
        if found < required {
            out.refuse(
                "tdx-tcb-too-low",
                format!("TEE TCB SVN component {i} is {found}, below the minimum {required}"),
            );
        }
    }
    check_report_data(out, &claims.report_data, expected);
}
