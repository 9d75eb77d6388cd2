//! AMD SEV-SNP attestation reports, verified to AMD's roots in pure Rust.
//!
//! Chain: the ARK and ASK built into the `sev` crate (Milan, Genoa, Turin; AMD publishes them) → the
//! VCEK certificate supplied with the report (RSA-PSS-SHA384 signatures, checked by `sev` with its
//! `crypto_nossl` backend) → the report, signed with ECDSA P-384/SHA-384. The report signature is
//! checked here over the exact received bytes `[0, 0x2a0)`, not over a re-encoding, so no byte of the
//! signed part can change without detection; the signature's reserved bytes must be zero.
//! Certificate validity is checked against the caller's time.
//!
//! The VCEK is bound to the report ([`vcek_binding`]): AMD issues a VCEK for one chip at one TCB,
//! and says which in its extensions (1.3.6.1.4.1.3704.1.3.x: the SVNs; .1.4: the chip's hwID). The
//! report's `REPORTED_TCB` must be exactly the TCB the VCEK certifies, the chip's current TCB must be
//! at least that, and `CHIP_ID` must be the VCEK's hwID: otherwise a VCEK issued for a chip at an
//! old, vulnerable TCB (or for another chip) could vouch for the report. A report that masks its
//! chip ID (zeros, which no hwID matches), sets MASK_CHIP_KEY or is signed by another key than a
//! VCEK (a VLEK) is refused. The VCEK must be canonical
//! DER whose outer signature algorithm equals the one it signed (`sev` checks only the algorithm's
//! identifier).
//!
//! Revocation ([`check_crl`]): the evidence carries AMD's CRL for the product (from KDS,
//! `/vcek/v1/{product}/crl`), which the ARK signs with RSA-PSS-SHA384. It must be issued by the ARK
//! the chain ends in, verify under its key, be canonical DER, be current at the appraisal time
//! (`thisUpdate` ≤ now ≤ `nextUpdate`) and carry no critical extension bulwark does not know; the
//! ASK's and the VCEK's serial numbers must not be on it. A node chooses which current CRL it
//! sends, so a revocation takes effect at the latest when the CRL before it expires.

use sev::certs::snp::{builtin, ca, Certificate, Chain, Verifiable as _};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser as _;

/// Size of an attestation report (`ATTESTATION_REPORT`).
pub const SNP_REPORT_LEN: usize = 0x4a0;
/// Largest VCEK certificate accepted, in bytes.
pub const VCEK_LEN_MAX: usize = 8 * 1024;
/// Largest CRL accepted, in bytes (AMD's lists a handful of ASKs and is about 1 KiB).
pub const CRL_LEN_MAX: usize = 64 * 1024;
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
    /// The VCEK was issued for another TCB or another chip than the report's, or its AMD
    /// extensions are missing, repeated or malformed.
    #[error("VCEK not bound to this report: {0}")]
    Binding(String),
    /// The CRL is malformed, not issued or signed by the chain's ARK, not current, or carries a
    /// critical extension bulwark does not know.
    #[error("AMD CRL refused: {0}")]
    Crl(String),
    /// The CRL lists a certificate of the chain.
    #[error("the {which} (serial {serial}) is revoked on AMD's CRL since {revoked_s} s")]
    Revoked {
        /// ASK or VCEK.
        which: &'static str,
        /// Its serial number, hex.
        serial: String,
        /// Revocation date, Unix seconds.
        revoked_s: u64,
    },
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
    /// TCB the report was signed at: the report's `REPORTED_TCB`, which equals the TCB its VCEK
    /// certifies.
    pub reported_tcb: SnpTcbValues,
    /// The chip's ID, which equals the VCEK's hwID.
    pub chip_id: [u8; 64],
    /// Guest policy bits.
    pub policy: u64,
    /// True when the guest policy allows debugging (the host can read guest memory).
    pub debug_allowed: bool,
    /// VMPL of the requesting guest code.
    pub vmpl: u32,
    /// The CRL that was checked, or `None` when the evidence carried none.
    pub crl: Option<CrlStatus>,
}

/// What a checked CRL said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlStatus {
    /// `thisUpdate`, Unix seconds.
    pub this_update_s: u64,
    /// `nextUpdate`, Unix seconds.
    pub next_update_s: u64,
    /// How many certificates it revokes.
    pub entries: usize,
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

/// Verifies `report` (1184 bytes) with its VCEK certificate (DER) and, when given, AMD's CRL
/// for the product (DER) at `now_ms`. Whether a missing CRL is acceptable is the caller's rule
/// (the appraisal refuses it).
pub fn verify_snp_report(
    report: &[u8],
    vcek_der: &[u8],
    crl_der: Option<&[u8]>,
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
    let x509: x509_cert::Certificate = vcek.clone().into();
    check_canonical(&x509, vcek_der)?;
    let binding = vcek_binding(&x509, product)?;
    let now_s = now_ms / 1_000;
    check_time("ARK", &chain.ca.ark, now_s)?;
    check_time("ASK", &chain.ca.ask, now_s)?;
    check_time("VCEK", &chain.vek, now_s)?;
    let crl = match crl_der {
        Some(crl_der) => {
            let ark: x509_cert::Certificate = chain.ca.ark.clone().into();
            let ask: x509_cert::Certificate = chain.ca.ask.clone().into();
            let key = rsa_key(&ark)?;
            Some(check_crl(
                crl_der,
                &ark.tbs_certificate.subject,
                &key,
                &[
                    ("ASK", &ask.tbs_certificate.serial_number),
                    ("VCEK", &x509.tbs_certificate.serial_number),
                ],
                now_s,
            )?)
        }
        None => None,
    };

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
    check_binding(report, &binding)?;

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
        chip_id: report_array(report, CHIP_ID_AT),
        policy,
        debug_allowed: policy & POLICY_DEBUG_BIT != 0,
        vmpl: parsed.vmpl,
        crl,
    })
}

/// The subject of AMD's built-in ARK for `product` (`milan`, `genoa`, `turin`): the issuer its
/// CRL must name.
pub fn ark_subject(product: &str) -> Option<x509_cert::name::Name> {
    let ark = match product {
        "milan" => builtin::milan::ark(),
        "genoa" => builtin::genoa::ark(),
        "turin" => builtin::turin::ark(),
        _ => return None,
    }
    .ok()?;
    Some(x509_cert::Certificate::from(ark).tbs_certificate.subject)
}

fn rsa_key(ark: &x509_cert::Certificate) -> Result<rsa::RsaPublicKey, SnpError> {
    use x509_cert::der::referenced::OwnedToRef as _;
    rsa::RsaPublicKey::try_from(ark.tbs_certificate.subject_public_key_info.owned_to_ref())
        .map_err(|e| SnpError::Crl(format!("the ARK's key is not RSA: {e}")))
}

/// RSASSA-PSS, the only signature AMD's ARK makes.
const RSA_PSS: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");

/// Checks a CRL issued by `issuer` under RSA-PSS-SHA384 `key` at `now_s` and refuses when it lists
/// one of `chain`'s serial numbers (named by the first of each pair).
pub fn check_crl(
    crl_der: &[u8],
    issuer: &x509_cert::name::Name,
    key: &rsa::RsaPublicKey,
    chain: &[(&'static str, &x509_cert::serial_number::SerialNumber)],
    now_s: u64,
) -> Result<CrlStatus, SnpError> {
    use rsa::signature::Verifier as _;
    use x509_cert::der::{Decode as _, Encode as _};
    let bad = |what: String| SnpError::Crl(what);
    if crl_der.len() > CRL_LEN_MAX {
        return Err(bad(format!(
            "{} bytes, more than {CRL_LEN_MAX}",
            crl_der.len()
        )));
    }
    let crl = x509_cert::crl::CertificateList::from_der(crl_der)
        .map_err(|e| bad(format!("not a DER CRL: {e}")))?;
    if crl.to_der().ok().as_deref() != Some(crl_der) {
        return Err(bad("not canonical DER".into()));
    }
    let tbs = &crl.tbs_cert_list;
    if crl.signature_algorithm != tbs.signature || crl.signature_algorithm.oid != RSA_PSS {
        return Err(bad(format!(
            "signature algorithm {} (outer) / {} (signed): AMD signs with RSASSA-PSS",
            crl.signature_algorithm.oid, tbs.signature.oid
        )));
    }
    if &tbs.issuer != issuer {
        return Err(bad(format!(
            "issued by {} but the chain's ARK is {issuer}",
            tbs.issuer
        )));
    }
    let signed = tbs
        .to_der()
        .map_err(|e| bad(format!("does not re-encode: {e}")))?;
    let signature = crl
        .signature
        .as_bytes()
        .and_then(|bytes| rsa::pss::Signature::try_from(bytes).ok())
        .ok_or_else(|| bad("signature is not a whole RSA signature".into()))?;
    rsa::pss::VerifyingKey::<sha2::Sha384>::new(key.clone())
        .verify(&signed, &signature)
        .map_err(|_| bad("signature does not verify under the ARK's key".into()))?;
    let this_update_s = tbs.this_update.to_unix_duration().as_secs();
    let next_update_s = tbs
        .next_update
        .ok_or_else(|| bad("no nextUpdate: its freshness is unknown".into()))?
        .to_unix_duration()
        .as_secs();
    if now_s < this_update_s || now_s > next_update_s {
        return Err(bad(format!(
            "not current at {now_s} s (valid {this_update_s}..{next_update_s})"
        )));
    }
    let critical = |extensions: &Option<x509_cert::ext::Extensions>| {
        extensions
            .iter()
            .flatten()
            .find(|e| e.critical)
            .map(|e| e.extn_id.to_string())
    };
    if let Some(oid) = critical(&tbs.crl_extensions) {
        return Err(bad(format!("unknown critical extension {oid}")));
    }
    let revoked = tbs.revoked_certificates.as_deref().unwrap_or_default();
    for entry in revoked {
        if let Some(oid) = critical(&entry.crl_entry_extensions) {
            return Err(bad(format!(
                "entry {} has an unknown critical extension {oid}",
                hex::encode(entry.serial_number.as_bytes())
            )));
        }
        if let Some((which, serial)) = chain.iter().find(|(_, s)| **s == entry.serial_number) {
            return Err(SnpError::Revoked {
                which,
                serial: hex::encode(serial.as_bytes()),
                revoked_s: entry.revocation_date.to_unix_duration().as_secs(),
            });
        }
    }
    Ok(CrlStatus {
        this_update_s,
        next_update_s,
        entries: revoked.len(),
    })
}

/// Offsets in the report (AMD SEV-SNP ABI, `ATTESTATION_REPORT`).
const CURRENT_TCB_AT: usize = 0x38;
const KEY_INFO_AT: usize = 0x48;
const REPORTED_TCB_AT: usize = 0x180;
const CHIP_ID_AT: usize = 0x1a0;
/// The AMD VCEK extensions' arc: 1.3.6.1.4.1.3704.1.
const AMD_ARC: &str = "1.3.6.1.4.1.3704.1.";

fn report_array<const N: usize>(report: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&report[at..at + N]);
    out
}

/// What a VCEK certifies: the TCB, in the report's byte layout for its product, and the hwID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcekBinding {
    /// The certified TCB as the report lays out `REPORTED_TCB`.
    pub tcb: [u8; 8],
    /// The chip's hwID (64 bytes; 8 on Turin).
    pub hw_id: Vec<u8>,
}

/// The VCEK must be the canonical encoding of what was parsed, and its outer signature algorithm
/// (not covered by its signature) must equal the one inside what was signed.
fn check_canonical(x509: &x509_cert::Certificate, der_bytes: &[u8]) -> Result<(), SnpError> {
    use x509_cert::der::Encode as _;
    if x509.signature_algorithm != x509.tbs_certificate.signature {
        return Err(SnpError::Vcek(
            "outer signature algorithm differs from the signed one".into(),
        ));
    }
    if x509.signature.unused_bits() != 0 {
        return Err(SnpError::Vcek(
            "signature bit string has unused bits".into(),
        ));
    }
    let encoded = x509
        .to_der()
        .map_err(|e| SnpError::Vcek(format!("does not re-encode: {e}")))?;
    if encoded != der_bytes {
        return Err(SnpError::Vcek("not canonical DER".into()));
    }
    Ok(())
}

/// Reads the TCB and hwID a VCEK certifies from its AMD extensions. Every extension must be
/// AMD's, none repeated, and every SVN the product's layout needs present.
pub fn vcek_binding(x509: &x509_cert::Certificate, product: &str) -> Result<VcekBinding, SnpError> {
    use x509_cert::der::Decode as _;
    let bad = |what: String| SnpError::Binding(what);
    let mut svns: std::collections::BTreeMap<u32, u8> = std::collections::BTreeMap::new();
    let mut hw_id = None;
    let mut seen = std::collections::BTreeSet::new();
    for extension in x509.tbs_certificate.extensions.iter().flatten() {
        let oid = extension.extn_id.to_string();
        if !seen.insert(oid.clone()) {
            return Err(bad(format!("extension {oid} repeated")));
        }
        let Some(rest) = oid.strip_prefix(AMD_ARC) else {
            return Err(bad(format!("unexpected extension {oid}")));
        };
        let value = extension.extn_value.as_bytes();
        match rest {
            // structVersion, productName: not bound to the report.
            "1" | "2" => {}
            "4" => hw_id = Some(value.to_vec()),
            _ => {
                let Some(component) = rest
                    .strip_prefix("3.")
                    .and_then(|c| c.parse::<u32>().ok())
                    .filter(|c| (1..=9).contains(c))
                else {
                    return Err(bad(format!("unexpected AMD extension {oid} (a VLEK?)")));
                };
                let svn = u8::from_der(value)
                    .map_err(|e| bad(format!("SVN {oid} is not a small INTEGER: {e}")))?;
                svns.insert(component, svn);
            }
        }
    }
    let svn = |component: u32, name: &str| {
        svns.get(&component).copied().ok_or_else(|| {
            bad(format!(
                "the VCEK has no {name} SVN (1.3.6.1.4.1.3704.1.3.{component})"
            ))
        })
    };
    let tcb = if product == "turin" {
        [
            svn(9, "FMC")?,
            svn(1, "boot loader")?,
            svn(2, "TEE")?,
            svn(3, "SNP")?,
            0,
            0,
            0,
            svn(8, "microcode")?,
        ]
    } else {
        [
            svn(1, "boot loader")?,
            svn(2, "TEE")?,
            svn(4, "reserved 4").unwrap_or(0),
            svn(5, "reserved 5").unwrap_or(0),
            svn(6, "reserved 6").unwrap_or(0),
            svn(7, "reserved 7").unwrap_or(0),
            svn(3, "SNP")?,
            svn(8, "microcode")?,
        ]
    };
    let hw_id = hw_id.ok_or_else(|| bad("the VCEK has no hwID (1.3.6.1.4.1.3704.1.4)".into()))?;
    let expected_len = if product == "turin" { 8 } else { 64 };
    if hw_id.len() != expected_len {
        return Err(bad(format!(
            "hwID is {} bytes, {product} VCEKs carry {expected_len}",
            hw_id.len()
        )));
    }
    Ok(VcekBinding { tcb, hw_id })
}

/// The report is the one the VCEK speaks for: signed by a VCEK (not a VLEK), at exactly the TCB
/// it certifies, on the chip it names, which runs at least that TCB now.
fn check_binding(report: &[u8], binding: &VcekBinding) -> Result<(), SnpError> {
    let bad = |what: String| SnpError::Binding(what);
    let key_info = u32::from_le_bytes(report_array(report, KEY_INFO_AT));
    let signing_key = (key_info >> 2) & 0b111;
    if signing_key != 0 {
        return Err(bad(format!(
            "the report is signed by key {signing_key} (0 = VCEK); only VCEK-signed reports are accepted"
        )));
    }
    // MASK_CHIP_KEY: the report is not signed with the chip's key at all. (A report that
    // masks its chip ID shows zeros there, which no VCEK's hwID matches below.)
    if key_info & 0b10 != 0 {
        return Err(bad(
            "the report sets MASK_CHIP_KEY: it is not signed with the chip's key".into(),
        ));
    }
    let reported: [u8; 8] = report_array(report, REPORTED_TCB_AT);
    if reported != binding.tcb {
        return Err(bad(format!(
            "REPORTED_TCB {} but the VCEK certifies TCB {}",
            hex::encode(reported),
            hex::encode(binding.tcb)
        )));
    }
    let current: [u8; 8] = report_array(report, CURRENT_TCB_AT);
    if current
        .iter()
        .zip(&binding.tcb)
        .any(|(now, certified)| now < certified)
    {
        return Err(bad(format!(
            "the chip's current TCB {} is below the TCB {} its VCEK certifies",
            hex::encode(current),
            hex::encode(binding.tcb)
        )));
    }
    let chip_id: [u8; 64] = report_array(report, CHIP_ID_AT);
    if chip_id[..binding.hw_id.len()] != binding.hw_id[..]
        || chip_id[binding.hw_id.len()..].iter().any(|b| *b != 0) && binding.hw_id.len() < 64
    {
        return Err(bad(format!(
            "CHIP_ID {} but the VCEK was issued for chip {}",
            hex::encode(chip_id),
            hex::encode(&binding.hw_id)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCB: [u8; 8] = [3, 0, 0, 0, 0, 0, 8, 0x73];

    fn report(reported: [u8; 8], current: [u8; 8], chip: [u8; 64], key_info: u32) -> Vec<u8> {
        let mut r = vec![0u8; SNP_REPORT_LEN];
        r[CURRENT_TCB_AT..CURRENT_TCB_AT + 8].copy_from_slice(&current);
        r[KEY_INFO_AT..KEY_INFO_AT + 4].copy_from_slice(&key_info.to_le_bytes());
        r[REPORTED_TCB_AT..REPORTED_TCB_AT + 8].copy_from_slice(&reported);
        r[CHIP_ID_AT..CHIP_ID_AT + 64].copy_from_slice(&chip);
        r
    }

    fn binding() -> VcekBinding {
        VcekBinding {
            tcb: TCB,
            hw_id: vec![7; 64],
        }
    }

    #[test]
    fn a_report_binds_only_to_the_vcek_of_its_chip_and_tcb() {
        let ok = report(TCB, TCB, [7; 64], 0);
        assert_eq!(check_binding(&ok, &binding()), Ok(()));
        // The chip moved on (newer microcode) since the VCEK's TCB: still bound.
        let mut newer = TCB;
        newer[7] = 0xce;
        assert_eq!(
            check_binding(&report(TCB, newer, [7; 64], 0), &binding()),
            Ok(())
        );
        let refusals = [
            // A report at an older TCB than the VCEK's (or a VCEK for an older TCB).
            report([3, 0, 0, 0, 0, 0, 7, 0x73], TCB, [7; 64], 0),
            report([2, 0, 0, 0, 0, 0, 8, 0x73], TCB, [7; 64], 0),
            // A chip running below the TCB its VCEK certifies.
            report(TCB, [3, 0, 0, 0, 0, 0, 8, 0x72], [7; 64], 0),
            // Another chip.
            report(TCB, TCB, [8; 64], 0),
            // Chip ID masked (zeros); MASK_CHIP_KEY; signed by a VLEK (key 1) or no key (7).
            report(TCB, TCB, [0; 64], 0),
            report(TCB, TCB, [0; 64], 0b10),
            report(TCB, TCB, [7; 64], 1 << 2),
            report(TCB, TCB, [7; 64], 7 << 2),
        ];
        for (i, bad) in refusals.iter().enumerate() {
            assert!(
                matches!(check_binding(bad, &binding()), Err(SnpError::Binding(_))),
                "refusal {i} accepted"
            );
        }
        // Turin: an 8-byte hwID, the rest of CHIP_ID zero.
        let turin = VcekBinding {
            tcb: TCB,
            hw_id: vec![9; 8],
        };
        let mut chip = [0u8; 64];
        chip[..8].copy_from_slice(&[9; 8]);
        assert_eq!(check_binding(&report(TCB, TCB, chip, 0), &turin), Ok(()));
        chip[20] = 1;
        assert!(check_binding(&report(TCB, TCB, chip, 0), &turin).is_err());
    }
}
