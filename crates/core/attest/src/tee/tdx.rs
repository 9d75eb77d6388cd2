//! Intel TDX quotes, verified to Intel's SGX root CA with `dcap-qvl` (pure Rust, RustCrypto backend).
//!
//! The caller supplies the DCAP collateral (PCK CRL, TCB info, QE identity with their chains and
//! signatures) and the time; `dcap-qvl` checks the PCK chain to Intel's root, the QE report, the quote
//! signature, and the platform TCB against the TCB info valid at that time.

/// Largest quote accepted, in bytes.
pub const TDX_QUOTE_LEN_MAX: usize = 16 * 1024;
/// Largest collateral document accepted, in bytes.
pub const TDX_COLLATERAL_LEN_MAX: usize = 256 * 1024;

/// Errors verifying a TDX quote.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TdxError {
    /// Quote or collateral exceeds its bound.
    #[error("TDX {what} is {len} bytes, at most {max}")]
    TooLong {
        /// Quote or collateral.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The collateral JSON does not parse.
    #[error("TDX collateral malformed: {0}")]
    Collateral(String),
    /// `dcap-qvl` refused the quote (chain, signature, TCB, or expired collateral).
    #[error("TDX quote refused: {0}")]
    Verification(String),
    /// The quote's outer structure is inconsistent (lengths, types, trailing bytes).
    #[error("TDX quote structure invalid: {0}")]
    Structure(&'static str),
    /// The certificate chain embedded in the quote is not in canonical PEM form. The chain is not
    /// covered by the quote signature, so bulwark refuses any encoding variation of it.
    #[error("TDX quote's embedded certificate chain is not canonical PEM: {0}")]
    NonCanonicalChain(&'static str),
    /// The quote verified but carries an SGX enclave report, not a TD report.
    #[error("quote is an SGX enclave quote, not a TDX quote")]
    NotTdx,
}

/// What a verified TDX quote says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxClaims {
    /// Intel's TCB status for the platform, e.g. `UpToDate`, `SWHardeningNeeded`, `OutOfDate`.
    pub tcb_status: String,
    /// Intel security advisories that apply.
    pub advisory_ids: Vec<String>,
    /// TEE TCB SVN.
    pub tee_tcb_svn: [u8; 16],
    /// MRTD: measurement of the TD's initial contents.
    pub mr_td: [u8; 48],
    /// Runtime measurement registers 0..=3.
    pub rtmrs: [[u8; 48]; 4],
    /// TD attributes (bit 0: debug).
    pub td_attributes: [u8; 8],
    /// Report data (bulwark: qualifying data then 32 zero bytes).
    pub report_data: [u8; 64],
}

/// Verifies a TDX quote against its collateral (the JSON form of `dcap_qvl::QuoteCollateralV3`) at
/// `now_ms`.
pub fn verify_tdx_quote(
    quote: &[u8],
    collateral_json: &[u8],
    now_ms: u64,
) -> Result<TdxClaims, TdxError> {
    if quote.len() > TDX_QUOTE_LEN_MAX {
        return Err(TdxError::TooLong {
            what: "quote",
            len: quote.len(),
            max: TDX_QUOTE_LEN_MAX,
        });
    }
    if collateral_json.len() > TDX_COLLATERAL_LEN_MAX {
        return Err(TdxError::TooLong {
            what: "collateral",
            len: collateral_json.len(),
            max: TDX_COLLATERAL_LEN_MAX,
        });
    }
    let quote_chain = chain_certificates(check_structure(quote)?)?;
    check_collateral(collateral_json, &quote_chain)?;
    let collateral: dcap_qvl::QuoteCollateralV3 =
        serde_json::from_slice(collateral_json).map_err(|e| TdxError::Collateral(e.to_string()))?;
    let report = dcap_qvl::verify::rustcrypto::verify(quote, &collateral, now_ms / 1_000)
        .map_err(|e| TdxError::Verification(format!("{e:#}")))?;
    let td = match &report.report {
        dcap_qvl::quote::Report::TD10(td) => *td,
        dcap_qvl::quote::Report::TD15(td) => td.base,
        dcap_qvl::quote::Report::TD15Ex(td) => td.base.base,
        dcap_qvl::quote::Report::SgxEnclave(_) => return Err(TdxError::NotTdx),
    };
    Ok(TdxClaims {
        tcb_status: report.status.clone(),
        advisory_ids: report.advisory_ids.clone(),
        tee_tcb_svn: td.tee_tcb_svn,
        mr_td: td.mr_td,
        rtmrs: [td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3],
        td_attributes: td.td_attributes,
        report_data: td.report_data,
    })
}

const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----";
const HEADER_LEN: usize = 48;
const ECDSA_WITH_SHA256: x509_cert::spki::ObjectIdentifier =
    x509_cert::spki::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const TEE_TYPE_TDX: u32 = 0x81;
const CERT_TYPE_QE_REPORT: u16 = 6;
const CERT_TYPE_PCK_CHAIN: u16 = 5;
const BODY_LEN_MAX: usize = 4_096;

fn le_u16(bytes: &[u8], at: usize) -> Result<u16, TdxError> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(TdxError::Structure("truncated"))
}

fn le_u32(bytes: &[u8], at: usize) -> Result<u32, TdxError> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(TdxError::Structure("truncated"))
}

fn to_usize(value: u32) -> usize {
    usize::try_from(value).expect("u32 fits usize on supported targets")
}

/// Walks the quote's outer structure (header, body, signature data, QE certification data, PCK chain)
/// and requires every length and type to agree exactly, with only zero bytes after the end. Returns the
/// PEM chain. `dcap-qvl` is lenient about some of these fields; bulwark wants every byte of evidence to
/// matter.
fn check_structure(quote: &[u8]) -> Result<&[u8], TdxError> {
    let version = le_u16(quote, 0)?;
    let tee_type = le_u32(quote, 4)?;
    if tee_type != TEE_TYPE_TDX {
        return Err(TdxError::NotTdx);
    }
    let signature_at = match version {
        4 => HEADER_LEN + 584,
        5 => {
            let body_len = to_usize(le_u32(quote, HEADER_LEN + 2)?);
            if body_len > BODY_LEN_MAX {
                return Err(TdxError::Structure("body too long"));
            }
            HEADER_LEN + 6 + body_len
        }
        _ => return Err(TdxError::Structure("quote version is not 4 or 5")),
    };
    let signature_len = to_usize(le_u32(quote, signature_at)?);
    let start = signature_at + 4;
    let end = start
        .checked_add(signature_len)
        .filter(|end| *end <= quote.len())
        .ok_or(TdxError::Structure("signature data longer than the quote"))?;
    if quote[end..].iter().any(|b| *b != 0) {
        return Err(TdxError::Structure(
            "non-zero bytes after the signature data",
        ));
    }
    // ECDSA signature (64) and attestation key (64), then the QE certification data.
    if le_u16(quote, start + 128)? != CERT_TYPE_QE_REPORT {
        return Err(TdxError::Structure(
            "certification data is not QE report data (6)",
        ));
    }
    let qe_len = to_usize(le_u32(quote, start + 130)?);
    if start + 134 + qe_len != end {
        return Err(TdxError::Structure(
            "QE certification data length disagrees",
        ));
    }
    // QE report (384) and its signature (64), then the QE authentication data.
    let auth_at = start + 134 + 384 + 64;
    let auth_len = usize::from(le_u16(quote, auth_at)?);
    let chain_at = auth_at + 2 + auth_len;
    if le_u16(quote, chain_at)? != CERT_TYPE_PCK_CHAIN {
        return Err(TdxError::Structure(
            "inner certification data is not a PCK chain (5)",
        ));
    }
    let chain_len = to_usize(le_u32(quote, chain_at + 2)?);
    if chain_at + 6 + chain_len != end {
        return Err(TdxError::Structure("PCK chain length disagrees"));
    }
    Ok(&quote[chain_at + 6..end])
}

/// The PCK chain travels as PEM text. Its leaf and intermediate are checked by `dcap-qvl`, but its
/// encoding is not, and the root copy in it is not used at all. So: the text must be exactly BEGIN line,
/// base64 lines (strict: canonical padding bits), END line, repeated, then only NULs; and every
/// certificate must verify under the next one's key, the last under its own — so no byte of the chain
/// can change without detection.
fn chain_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, TdxError> {
    use base64::Engine as _;
    let text_len = pem.iter().position(|b| *b == 0).unwrap_or(pem.len());
    if pem[text_len..].iter().any(|b| *b != 0) {
        return Err(TdxError::NonCanonicalChain("bytes after the NUL padding"));
    }
    let body = pem[..text_len]
        .strip_suffix(b"\n")
        .ok_or(TdxError::NonCanonicalChain("missing final line break"))?;
    let mut lines = body.split(|b| *b == b'\n');
    let mut certificates = Vec::new();
    while let Some(begin) = lines.next() {
        if begin != PEM_BEGIN {
            return Err(TdxError::NonCanonicalChain(
                "expected a BEGIN CERTIFICATE line",
            ));
        }
        let mut encoded = Vec::new();
        loop {
            let line = lines
                .next()
                .ok_or(TdxError::NonCanonicalChain("certificate without END line"))?;
            if line == PEM_END {
                break;
            }
            if line.is_empty() || line.len() > 64 {
                return Err(TdxError::NonCanonicalChain("base64 line length"));
            }
            encoded.extend_from_slice(line);
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .map_err(|_| TdxError::NonCanonicalChain("invalid or non-canonical base64"))?;
        certificates.push(der);
        if certificates.len() > 8 {
            return Err(TdxError::NonCanonicalChain("more than 8 certificates"));
        }
    }
    for (i, der) in certificates.iter().enumerate() {
        let issuer = certificates.get(i + 1).unwrap_or(der);
        verify_p256_certificate(der, issuer)?;
    }
    Ok(certificates)
}

/// SHA-256 of Intel's SGX/TDX root CA certificate (DER): the one root every chain in the
/// collateral must end at (dcap-qvl trusts the same root but keeps it private).
const INTEL_ROOT_SHA256: &str = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

/// The collateral as bulwark accepts it: exactly dcap-qvl's `QuoteCollateralV3` fields, no
/// others (in particular no `pck_certificate_chain`, which would replace the quote's own chain).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictCollateral {
    pck_crl_issuer_chain: String,
    root_ca_crl: String,
    pck_crl: String,
    tcb_info_issuer_chain: String,
    #[allow(dead_code)]
    tcb_info: String,
    tcb_info_signature: String,
    qe_identity_issuer_chain: String,
    #[allow(dead_code)]
    qe_identity: String,
    qe_identity_signature: String,
}

/// The parts of the collateral dcap-qvl does not read or reads leniently, held to the same
/// standard as the quote: every issuer chain canonical, verifying link by link and ending at
/// Intel's root; the PCK CRL's issuer chain exactly the quote's PCK chain above its leaf; every
/// hex field lowercase; no field besides dcap-qvl's. So no byte of the collateral can change
/// without the evidence being refused.
fn check_collateral(json: &[u8], quote_chain: &[Vec<u8>]) -> Result<(), TdxError> {
    use sha2::Digest as _;
    let bad = |what: String| TdxError::Collateral(what);
    let collateral: StrictCollateral =
        serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    for (name, value) in [
        ("root_ca_crl", &collateral.root_ca_crl),
        ("pck_crl", &collateral.pck_crl),
        ("tcb_info_signature", &collateral.tcb_info_signature),
        ("qe_identity_signature", &collateral.qe_identity_signature),
    ] {
        if value.len() % 2 != 0
            || !value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad(format!("{name} is not lowercase hex")));
        }
    }
    for (name, chain) in [
        ("pck_crl_issuer_chain", &collateral.pck_crl_issuer_chain),
        ("tcb_info_issuer_chain", &collateral.tcb_info_issuer_chain),
        (
            "qe_identity_issuer_chain",
            &collateral.qe_identity_issuer_chain,
        ),
    ] {
        let certificates =
            chain_certificates(chain.as_bytes()).map_err(|e| bad(format!("{name}: {e}")))?;
        let root = certificates
            .last()
            .ok_or_else(|| bad(format!("{name} is empty")))?;
        if hex::encode(sha2::Sha256::digest(root)) != INTEL_ROOT_SHA256 {
            return Err(bad(format!("{name} does not end at Intel's root CA")));
        }
        if name == "pck_crl_issuer_chain" && quote_chain.get(1..) != Some(&certificates[..]) {
            return Err(bad(
                "pck_crl_issuer_chain is not the quote's PCK chain above its leaf".into(),
            ));
        }
    }
    Ok(())
}

/// Checks that `der` is an ECDSA-P256-SHA256 certificate signed by the key in `issuer_der`.
fn verify_p256_certificate(der: &[u8], issuer_der: &[u8]) -> Result<(), TdxError> {
    use p256::ecdsa::signature::Verifier as _;
    use x509_cert::der::{Decode as _, Encode as _};
    let bad = |_| TdxError::NonCanonicalChain("certificate does not parse or verify");
    let certificate = x509_cert::Certificate::from_der(der).map_err(bad)?;
    let issuer = x509_cert::Certificate::from_der(issuer_der).map_err(bad)?;
    // The outer algorithm is not covered by the signature: it must repeat the signed one exactly.
    if certificate.signature_algorithm != certificate.tbs_certificate.signature
        || certificate.signature_algorithm.oid != ECDSA_WITH_SHA256
    {
        return Err(TdxError::NonCanonicalChain(
            "signature algorithm is not ecdsa-with-SHA256 in both places",
        ));
    }
    let key_bits = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
        .ok_or(TdxError::NonCanonicalChain("issuer key is not whole bytes"))?;
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
        .map_err(|_| TdxError::NonCanonicalChain("issuer key is not P-256"))?;
    let signature_bits = certificate
        .signature
        .as_bytes()
        .ok_or(TdxError::NonCanonicalChain("signature is not whole bytes"))?;
    let signature = p256::ecdsa::DerSignature::from_bytes(signature_bits)
        .map_err(|_| TdxError::NonCanonicalChain("signature is not DER ECDSA"))?;
    let tbs = certificate.tbs_certificate.to_der().map_err(bad)?;
    key.verify(&tbs, &signature)
        .map_err(|_| TdxError::NonCanonicalChain("certificate signature does not verify"))
}
