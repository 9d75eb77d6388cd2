//! Quote verification: qualifying data, AK signature, PCR digest.

use super::attest::QuoteAttest;
use super::public::TpmPublic;
use super::signature::TpmSignature;
use super::{TpmError, TPM_ALG_SHA256};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// A quote whose signature, qualifying data and PCR digest all checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// The parsed attestation.
    pub attest: QuoteAttest,
    /// sha256-bank PCR values, now known to be the ones the TPM quoted.
    pub pcrs: BTreeMap<u8, [u8; 32]>,
}

/// SHA-256 over the PCR values in selection order (ascending index), as TPM2_Quote computes pcrDigest.
pub fn pcr_digest(pcrs: &BTreeMap<u8, [u8; 32]>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for value in pcrs.values() {
        hasher.update(value);
    }
    hasher.finalize().into()
}

/// Verifies a quote in this order, stopping at the first failure:
/// 1. `attest` parses as a `TPMS_ATTEST` quote (bounded);
/// 2. its extraData equals `expected_qualifying_data` — checked before the signature so that a wrong
///    nonce, key or epoch is reported as such rather than as a bad signature;
/// 3. `signature` verifies over `attest` under `ak`;
/// 4. the quote selects exactly the sha256-bank PCRs in `pcrs`, and `pcrs` hash to its pcrDigest.
///
/// `ak` must already be trusted (bound to an EK by credential activation); this function does not
/// decide that.
pub fn verify_quote(
    attest: &[u8],
    signature: &[u8],
    ak: &TpmPublic,
    pcrs: &BTreeMap<u8, [u8; 32]>,
    expected_qualifying_data: &[u8; 32],
) -> Result<VerifiedQuote, TpmError> {
    let parsed = QuoteAttest::parse(attest)?;
    if parsed.extra_data != expected_qualifying_data {
        return Err(TpmError::QualifyingDataMismatch {
            expected: hex::encode(expected_qualifying_data),
            found: hex::encode(&parsed.extra_data),
        });
    }
    TpmSignature::parse(signature)?.verify(&ak.key, attest)?;
    let mut quoted = Vec::new();
    for selection in &parsed.pcr_selection {
        if selection.pcrs.is_empty() {
            continue;
        }
        if selection.hash_alg != TPM_ALG_SHA256 {
            return Err(TpmError::Unsupported {
                what: "PCR bank",
                value: selection.hash_alg,
            });
        }
        quoted.extend_from_slice(&selection.pcrs);
    }
    let reported: Vec<u8> = pcrs.keys().copied().collect();
    if quoted != reported {
        return Err(TpmError::PcrSetMismatch { quoted, reported });
    }
    let computed = pcr_digest(pcrs);
    if parsed.pcr_digest != computed {
        return Err(TpmError::PcrDigestMismatch {
            computed: hex::encode(computed),
            quoted: hex::encode(&parsed.pcr_digest),
        });
    }
    Ok(VerifiedQuote {
        attest: parsed,
        pcrs: pcrs.clone(),
    })
}
