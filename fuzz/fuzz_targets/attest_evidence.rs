//! The decoders a candidate's attestation evidence reaches before anything is trusted: the
//! evidence JSON, the TPM's marshalled structures (TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE),
//! the measured-launch log, an SEV-SNP report with its VCEK certificate, and a TDX quote with its
//! collateral. The first byte picks the decoder. Nothing may panic; evidence taken must
//! serialize and decode to itself again. (The signatures cannot verify: the fuzzer holds no
//! key; what is checked is that no byte sequence crashes or hangs the parsers.)

#![no_main]

use bulwark_attest::evidence::Evidence;
use bulwark_attest::launch::parse_log;
use bulwark_attest::tee::snp::{verify_snp_report, SNP_REPORT_LEN};
use bulwark_attest::tee::tdx::verify_tdx_quote;
use bulwark_attest::tpm::{QuoteAttest, TpmPublic, TpmSignature};
use libfuzzer_sys::fuzz_target;

/// 2026-12-01, as Unix milliseconds: a fixed "now" for the freshness checks.
const NOW_MS: u64 = 1_796_083_200_000;

fuzz_target!(|input: &[u8]| {
    let Some((&which, bytes)) = input.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(evidence) = Evidence::from_json(bytes) {
                let json = serde_json::to_vec(&evidence).expect("taken evidence serializes");
                if let Ok(again) = Evidence::from_json(&json) {
                    assert_eq!(again, evidence, "evidence must decode to itself again");
                }
            }
        }
        1 => {
            let _ = TpmPublic::parse(bytes);
            let _ = QuoteAttest::parse(bytes);
            let _ = TpmSignature::parse(bytes);
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                let _ = parse_log(text);
            }
        }
        3 => {
            // A report-sized head, the rest as the VCEK certificate and, after a 0xFF, a CRL.
            let (report, rest) = bytes.split_at(bytes.len().min(SNP_REPORT_LEN));
            let mut parts = rest.splitn(2, |b| *b == 0xFF);
            let vcek = parts.next().unwrap_or_default();
            let crl = parts.next();
            let _ = verify_snp_report(report, vcek, crl, NOW_MS);
        }
        _ => {
            let mut parts = bytes.splitn(2, |b| *b == 0xFF);
            let quote = parts.next().unwrap_or_default();
            let collateral = parts.next().unwrap_or_default();
            let _ = verify_tdx_quote(quote, collateral, NOW_MS);
        }
    }
});
