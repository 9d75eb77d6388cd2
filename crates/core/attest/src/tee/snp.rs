//! AMD SEV-SNP attestation reports, verified to AMD's roots in pure Rust.
//!
//! Chain: the ARK and ASK built into the `sev` crate (Milan, Genoa, Turin; AMD publishes them) → the
//! VCEK certificate supplied with the report (RSA-PSS-SHA384 signatures, checked by `sev` with its
//! `crypto_nossl` backend) → the report, signed with ECDSA P-384/SHA-384. The report signature is
//! checked here over the exact received bytes `[0, 0x2a0)`, not over a re-encoding, so no byte of the
//! signed part can change without detection; the signature's reserved bytes must be zero.
//! Certificate validity is checked against the caller's time.

use sev::certs::snp::{builtin, ca, Certificate, Chain, Verifiable as _};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser as _;

/// Size of an attestation report (`ATTESTATION_REPORT`).
pub const SNP_REPORT_LEN: usize = 0x4a0;
/// Largest VCEK certificate accepted, in bytes.
pub const VCEK_LEN_MAX: usize = 8 * 1024;
const SIGNED_LEN: usize = 0x2a0;

/// A built-in AMD certificate loader.
type CertificateSource = fn() -> std::io::Result<Certificate>;
const POLICY_DEBUG_BIT: u64 = 1 << 19;

/// Errors verifying an SNP report. The variants name the failing link.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnpError {
    /// The report is not 1184 bytes.
    #[error("SEV-SNP report is {0} bytes, expected 1184")]
    Length(usize),
    /// The report does not decode (version or CPU unsupported).
    #[error("SEV-SNP report malformed: {0}")]
    Malformed(String),
    /// The report names a signature algorithm other than ECDSA P-384 with SHA-384.
    #[error("SEV-SNP report signature algorithm {0} is not ECDSA P-384/SHA-384 (1)")]
    SignatureAlgorithm(u32),
    /// The VCEK certificate does not parse.
    #[error("VCEK certificate invalid: {0}")]
    Vcek(String),
    /// The VCEK does not chain to any built-in AMD root (Milan, Genoa, Turin).
    #[error("VCEK does not chain to an AMD root (ARK → ASK → VCEK)")]
    Chain,
    /// A certificate in the chain is not valid at the appraisal time.
    #[error("{which} certificate not valid at {now_s} s (valid {not_before_s}..{not_after_s})")]
    CertificateTime {
        /// ARK, ASK or VCEK.
        which: &'static str,
        /// Appraisal time, Unix seconds.
        now_s: u64,
        /// Start of validity.
        not_before_s: u64,
        /// End of validity.
        not_after_s: u64,
    },
    /// The report signature does not verify under the VCEK.
    #[error("SEV-SNP report signature does not verify under the VCEK")]
    Signature,
}

/// TCB version components (SVNs) of an SNP platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpTcbValues {
    /// PSP boot loader SVN.
    pub bootloader: u8,
    /// PSP OS SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Microcode patch level.
    pub microcode: u8,
}

/// What a verified report says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpClaims {
    /// Product whose AMD root signed the chain.
    pub product: &'static str,
    /// Report format version.
    pub version: u32,
    /// Launch measurement.
    pub measurement: [u8; 48],
    /// Guest-supplied report data (bulwark: qualifying data then 32 zero bytes).
    pub report_data: [u8; 64],
    /// TCB the report was signed at.
    pub reported_tcb: SnpTcbValues,
    /// Guest policy bits.
    pub policy: u64,
    /// True when the guest policy allows debugging (the host can read guest memory).
    pub debug_allowed: bool,
    /// VMPL of the requesting guest code.
    pub vmpl: u32,
}

fn validity(cert: &Certificate) -> (u64, u64) {
    let x509: x509_cert::Certificate = cert.clone().into();
    let v = &x509.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs(),
        v.not_after.to_unix_duration().as_secs(),
    )
}

fn check_time(which: &'static str, cert: &Certificate, now_s: u64) -> Result<(), SnpError> {
    let (not_before_s, not_after_s) = validity(cert);
    if now_s < not_before_s || now_s > not_after_s {
        return Err(SnpError::CertificateTime {
            which,
            now_s,
            not_before_s,
            not_after_s,
        });
    }
    Ok(())
}

fn scalar(le: &[u8]) -> Result<[u8; 48], SnpError> {
    // 72-byte little-endian field; a P-384 scalar uses the low 48 bytes.
    if le[48..].iter().any(|b| *b != 0) {
        return Err(SnpError::Signature);
    }
    let mut be = [0u8; 48];
    for (i, byte) in le[..48].iter().enumerate() {
        be[47 - i] = *byte;
    }
    Ok(be)
}

/// Verifies `report` (1184 bytes) with its VCEK certificate (DER) at `now_ms`.
pub fn verify_snp_report(
    report: &[u8],
    vcek_der: &[u8],
    now_ms: u64,
) -> Result<SnpClaims, SnpError> {
    if report.len() != SNP_REPORT_LEN {
        return Err(SnpError::Length(report.len()));
    }
    if vcek_der.len() > VCEK_LEN_MAX {
        return Err(SnpError::Vcek("longer than 8 KiB".into()));
    }
    let parsed =
        AttestationReport::from_bytes(report).map_err(|e| SnpError::Malformed(e.to_string()))?;
    if parsed.sig_algo != 1 {
        return Err(SnpError::SignatureAlgorithm(parsed.sig_algo));
    }
    let vcek = Certificate::from_der(vcek_der).map_err(|e| SnpError::Vcek(e.to_string()))?;
    let roots: [(&'static str, CertificateSource, CertificateSource); 3] = [
        ("milan", builtin::milan::ark, builtin::milan::ask),
        ("genoa", builtin::genoa::ark, builtin::genoa::ask),
        ("turin", builtin::turin::ark, builtin::turin::ask),
    ];
    let mut verified = None;
    for (product, ark, ask) in roots {
        let (Ok(ark), Ok(ask)) = (ark(), ask()) else {
            continue;
        };
        let chain = Chain {
            ca: ca::Chain { ark, ask },
            vek: vcek.clone(),
        };
        if (&chain).verify().is_ok() {
            verified = Some((product, chain));
            break;
        }
    }
    let (product, chain) = verified.ok_or(SnpError::Chain)?;
    let now_s = now_ms / 1_000;
    check_time("ARK", &chain.ca.ark, now_s)?;
    check_time("ASK", &chain.ca.ask, now_s)?;
    check_time("VCEK", &chain.vek, now_s)?;

    let signature = &report[SIGNED_LEN..];
    if signature[144..].iter().any(|b| *b != 0) {
        return Err(SnpError::Signature);
    }
    let r = scalar(&signature[..72])?;
    let s = scalar(&signature[72..144])?;
    let signature = p384::ecdsa::Signature::from_scalars(r, s).map_err(|_| SnpError::Signature)?;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(vcek.public_key_sec1())
        .map_err(|_| SnpError::Vcek("public key is not a P-384 point".into()))?;
    use p384::ecdsa::signature::Verifier as _;
    key.verify(&report[..SIGNED_LEN], &signature)
        .map_err(|_| SnpError::Signature)?;

    let mut policy_bytes = [0u8; 8];
    policy_bytes.copy_from_slice(&report[0x08..0x10]);
    let policy = u64::from_le_bytes(policy_bytes);
    let tcb = parsed.reported_tcb;
    Ok(SnpClaims {
        product,
        version: parsed.version,
        measurement: parsed.measurement,
        report_data: parsed.report_data,
        reported_tcb: SnpTcbValues {
            bootloader: tcb.bootloader,
            tee: tcb.tee,
            snp: tcb.snp,
            microcode: tcb.microcode,
        },
        policy,
        debug_allowed: policy & POLICY_DEBUG_BIT != 0,
        vmpl: parsed.vmpl,
    })
}
