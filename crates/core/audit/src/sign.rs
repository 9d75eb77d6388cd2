//! Signed audit reports bound to the node's identity key.
//!
//! The signature is Ed25519 over `REPORT_NAMESPACE || canonical JSON of the report`. The report names
//! the node (hex of its Ed25519 public key) inside the signed bytes, so a signature cannot be moved to
//! another node's report. Changing the namespace is a breaking change.

use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};

use crate::report::Report;

/// The key types of the `ed25519-dalek` version this crate signs with, re-exported so callers (the
/// node, the sentinel, the fuzz targets) name the same version without depending on it themselves.
pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// Domain-separation tag prefixed to every signed report.
pub const REPORT_NAMESPACE: &[u8] = b"bulwark/audit/report/v1";

/// Largest signed report accepted for verification (bounds decoding of untrusted input).
pub const SIGNED_REPORT_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Largest JSON envelope [`SignedReport::decode`] accepts, checked before anything is parsed. A
/// report is canonical JSON (no raw control characters), so quoting it as a string at most doubles
/// it (`"` and `\` gain a backslash); the rest is the two hex fields and the keys.
pub const SIGNED_ENVELOPE_BYTES_MAX: usize = 2 * SIGNED_REPORT_BYTES_MAX + 4096;

/// Errors verifying a signed report. Deliberately coarse: they say what failed, not why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The envelope or report is not well formed (hex, lengths, JSON, size).
    #[error("signed report is malformed: {0}")]
    Malformed(&'static str),
    /// The report's `node` does not name the key that signed it.
    #[error("signed report names a different node than its signing key")]
    WrongNode,
    /// The signature does not verify.
    #[error("signed report signature does not verify")]
    BadSignature,
}

/// A report with its signature. `report` holds the exact canonical bytes that were signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReport {
    /// Canonical JSON of the [`Report`] (UTF-8).
    pub report: String,
    /// Hex Ed25519 public key of the node.
    pub node: String,
    /// Hex Ed25519 signature over `REPORT_NAMESPACE || report`.
    pub signature: String,
}

impl SignedReport {
    /// Decodes the JSON envelope a node publishes (`{"report", "node", "signature"}`), rejecting
    /// inputs over [`SIGNED_ENVELOPE_BYTES_MAX`] before parsing. Only the shape is checked: call
    /// [`verify_report`] before trusting anything in it.
    pub fn decode(bytes: &[u8]) -> Result<Self, SignError> {
        if bytes.len() > SIGNED_ENVELOPE_BYTES_MAX {
            return Err(SignError::Malformed("too large"));
        }
        serde_json::from_slice(bytes).map_err(|_| SignError::Malformed("envelope JSON"))
    }

    /// The JSON envelope [`SignedReport::decode`] reads.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope of three strings must serialize")
    }
}

/// Lowercase hex only, exactly `2 * N` digits: one spelling per value, so an envelope cannot be
/// re-spelled (`0A`, or `+a`, which `u8::from_str_radix` accepts) and still verify.
fn unhex<const N: usize>(s: &str) -> Result<[u8; N], SignError> {
    let bad = SignError::Malformed("bad hex");
    let digits = s.as_bytes();
    if digits.len() != 2 * N {
        return Err(bad);
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Ok(d - b'0'),
        b'a'..=b'f' => Ok(d - b'a' + 10),
        _ => Err(bad.clone()),
    };
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Ok(out)
}

/// Hex form of a node's public key, as it appears in [`Report::node`].
pub fn node_id(key: &VerifyingKey) -> String {
    hex::encode(key.as_bytes())
}

fn message(report_bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(REPORT_NAMESPACE.len() + report_bytes.len());
    m.extend_from_slice(REPORT_NAMESPACE);
    m.extend_from_slice(report_bytes);
    m
}

/// Binds `report` to the key's identity (sets `report.node`) and signs it.
pub fn sign_report(report: &mut Report, key: &SigningKey) -> SignedReport {
    let node = node_id(&key.verifying_key());
    report.node = Some(node.clone());
    let bytes = report.canonical_json();
    let signature = key.sign(&message(&bytes));
    SignedReport {
        report: String::from_utf8(bytes).expect("serde_json must produce UTF-8"),
        node,
        signature: hex::encode(signature.to_bytes()),
    }
}

/// Verifies a signed report (strict Ed25519) and returns the report it carries.
pub fn verify_report(signed: &SignedReport) -> Result<Report, SignError> {
    if signed.report.len() > SIGNED_REPORT_BYTES_MAX {
        return Err(SignError::Malformed("too large"));
    }
    let key = VerifyingKey::from_bytes(&unhex::<32>(&signed.node)?)
        .map_err(|_| SignError::Malformed("bad public key"))?;
    let sig = Signature::from_bytes(&unhex::<64>(&signed.signature)?);
    key.verify_strict(&message(signed.report.as_bytes()), &sig)
        .map_err(|_| SignError::BadSignature)?;
    let report: Report =
        serde_json::from_str(&signed.report).map_err(|_| SignError::Malformed("report JSON"))?;
    if report.node.as_deref() != Some(signed.node.as_str()) {
        return Err(SignError::WrongNode);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An empty report generated at 42 ms, signed with the key made from bytes 7: the key, the
    /// report as signed (its `node` set) and the envelope.
    fn signed_sample() -> (SigningKey, Report, SignedReport) {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let mut r = Report {
            version: 1,
            node: None,
            generated_at_ms: 42,
            policies: vec![],
        };
        let signed = sign_report(&mut r, &key);
        (key, r, signed)
    }

    #[test]
    fn sign_verify_and_tamper() {
        let (key, r, signed) = signed_sample();
        assert_eq!(verify_report(&signed).unwrap(), r);

        let mut t = signed.clone();
        t.report = t.report.replace("42", "43");
        assert_eq!(verify_report(&t), Err(SignError::BadSignature));

        let other = SigningKey::from_bytes(&[8u8; 32]);
        let mut moved = signed.clone();
        moved.node = node_id(&other.verifying_key());
        moved.signature = hex::encode(other.sign(&message(moved.report.as_bytes())).to_bytes());
        assert_eq!(verify_report(&moved), Err(SignError::WrongNode));

        let mut no_ns = signed;
        no_ns.signature = hex::encode(key.sign(no_ns.report.as_bytes()).to_bytes());
        assert_eq!(
            verify_report(&no_ns),
            Err(SignError::BadSignature),
            "namespace is required"
        );
    }

    /// Regression: `u8::from_str_radix` accepts a leading `+` (and upper case), so a signature
    /// re-spelled `+a` for `0a` still verified. Every accepted envelope must now be the one spelling
    /// `sign_report` produces.
    #[test]
    fn only_canonical_hex_verifies() {
        let (_, _, signed) = signed_sample();
        assert_eq!(unhex::<2>("0aff"), Ok([0x0a, 0xff]));
        for bad in ["+aff", "0AFF", "0a f", "0aff0", "0a\u{e9}"] {
            assert_eq!(
                unhex::<2>(bad),
                Err(SignError::Malformed("bad hex")),
                "{bad}"
            );
        }
        for field in [0, 1] {
            let mut t = signed.clone();
            let s = if field == 0 {
                &mut t.signature
            } else {
                &mut t.node
            };
            let Some(i) = (0..s.len()).step_by(2).find(|&i| s.as_bytes()[i] == b'0') else {
                continue;
            };
            s.replace_range(i..=i, "+");
            assert_eq!(verify_report(&t), Err(SignError::Malformed("bad hex")));
            let mut u = signed.clone();
            let s = if field == 0 {
                &mut u.signature
            } else {
                &mut u.node
            };
            *s = s.to_uppercase();
            assert!(verify_report(&u).is_err(), "upper case must not verify");
        }
        let envelope = signed.encode();
        assert_eq!(SignedReport::decode(&envelope), Ok(signed));
        assert_eq!(
            SignedReport::decode(b"{\"report\": 1}"),
            Err(SignError::Malformed("envelope JSON"))
        );
    }
}
