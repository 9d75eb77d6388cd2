//! `TPMS_ATTEST` for quotes (TPM 2.0 Part 2, §10.12).

use super::wire::Reader;
use super::{TpmError, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE};

/// `sizeof(TPMU_NAME)`: a name is at most a u16 algorithm plus a 64-byte digest.
const NAME_MAX: usize = 2 + 64;
/// `sizeof(TPMU_HA)`: the largest digest.
const DIGEST_MAX: usize = 64;
/// `HASH_COUNT` bound on PCR selections (one per bank).
const PCR_SELECTIONS_MAX: u32 = 16;
/// `PCR_SELECT_MAX` for a 32-PCR TPM (bytes of bitmap).
const PCR_SELECT_MAX: u8 = 4;
/// Largest `TPMS_ATTEST` bulwark parses.
pub(crate) const ATTEST_LEN_MAX: usize = 1_024;

/// `TPMS_CLOCK_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since its clock was last set.
    pub clock: u64,
    /// TPM resets (reboots) since the TPM was provisioned.
    pub reset_count: u32,
    /// TPM restarts (hibernate/resume) since the last reset.
    pub restart_count: u32,
    /// False when the clock may have been reported lower than before (e.g. after an unorderly shutdown).
    pub safe: bool,
}

/// One `TPMS_PCR_SELECTION`: a bank and the PCR indices selected in it, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrSelection {
    /// Hash algorithm of the bank.
    pub hash_alg: u16,
    /// Selected PCR indices, ascending.
    pub pcrs: Vec<u8>,
}

/// A parsed quote attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteAttest {
    /// `qualifiedSigner`: the qualified name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// `extraData`: the qualifying data the caller passed to TPM2_Quote.
    pub extra_data: Vec<u8>,
    /// `clockInfo`.
    pub clock_info: ClockInfo,
    /// `firmwareVersion`.
    pub firmware_version: u64,
    /// `pcrSelect`, in the order the TPM hashed the PCRs.
    pub pcr_selection: Vec<PcrSelection>,
    /// `pcrDigest`.
    pub pcr_digest: Vec<u8>,
}

impl QuoteAttest {
    /// Parses a marshalled `TPMS_ATTEST` (the bytes a TPM signs) that must be a quote.
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        if bytes.len() > ATTEST_LEN_MAX {
            return Err(TpmError::FieldTooLong {
                field: "TPMS_ATTEST",
                len: bytes.len(),
                max: ATTEST_LEN_MAX,
            });
        }
        let mut r = Reader::new(bytes, "TPMS_ATTEST");
        let magic = r.u32("magic")?;
        if magic != TPM_GENERATED_VALUE {
            return Err(TpmError::BadMagic { found: magic });
        }
        let kind = r.u16("type")?;
        if kind != TPM_ST_ATTEST_QUOTE {
            return Err(TpmError::NotAQuote { found: kind });
        }
        let qualified_signer = r.tpm2b(NAME_MAX, "qualifiedSigner")?.to_vec();
        let extra_data = r.tpm2b(DIGEST_MAX, "extraData")?.to_vec();
        let clock_info = ClockInfo {
            clock: r.u64("clockInfo.clock")?,
            reset_count: r.u32("clockInfo.resetCount")?,
            restart_count: r.u32("clockInfo.restartCount")?,
            safe: r.u8("clockInfo.safe")? != 0,
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let count = r.u32("pcrSelect.count")?;
        if count > PCR_SELECTIONS_MAX {
            return Err(TpmError::FieldTooLong {
                field: "pcrSelect.count",
                len: count as usize,
                max: PCR_SELECTIONS_MAX as usize,
            });
        }
        let mut pcr_selection = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let hash_alg = r.u16("pcrSelections.hash")?;
            let size = r.u8("pcrSelections.sizeofSelect")?;
            if size > PCR_SELECT_MAX {
                return Err(TpmError::FieldTooLong {
                    field: "pcrSelections.sizeofSelect",
                    len: usize::from(size),
                    max: usize::from(PCR_SELECT_MAX),
                });
            }
            let bitmap = r.take(usize::from(size), "pcrSelections.pcrSelect")?;
            let mut pcrs = Vec::new();
            for (byte_index, byte) in bitmap.iter().enumerate() {
                for bit in 0..8u8 {
                    if byte & (1 << bit) != 0 {
                        let index = u8::try_from(byte_index * 8).expect("at most 4 bytes") + bit;
                        pcrs.push(index);
                    }
                }
            }
            pcr_selection.push(PcrSelection { hash_alg, pcrs });
        }
        let pcr_digest = r.tpm2b(DIGEST_MAX, "pcrDigest")?.to_vec();
        r.finish()?;
        Ok(Self {
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            pcr_selection,
            pcr_digest,
        })
    }

    /// Marshals a quote attestation (for tests and simulators; a real one comes from the TPM).
    pub fn to_bytes(&self) -> Vec<u8> {
        use super::wire::put_tpm2b;
        let mut out = Vec::new();
        out.extend_from_slice(&TPM_GENERATED_VALUE.to_be_bytes());
        out.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        put_tpm2b(&mut out, &self.qualified_signer);
        put_tpm2b(&mut out, &self.extra_data);
        out.extend_from_slice(&self.clock_info.clock.to_be_bytes());
        out.extend_from_slice(&self.clock_info.reset_count.to_be_bytes());
        out.extend_from_slice(&self.clock_info.restart_count.to_be_bytes());
        out.push(u8::from(self.clock_info.safe));
        out.extend_from_slice(&self.firmware_version.to_be_bytes());
        let count = u32::try_from(self.pcr_selection.len()).expect("few PCR banks");
        out.extend_from_slice(&count.to_be_bytes());
        for selection in &self.pcr_selection {
            out.extend_from_slice(&selection.hash_alg.to_be_bytes());
            let mut bitmap = [0u8; 3];
            for pcr in &selection.pcrs {
                bitmap[usize::from(pcr / 8)] |= 1 << (pcr % 8);
            }
            out.push(3);
            out.extend_from_slice(&bitmap);
        }
        put_tpm2b(&mut out, &self.pcr_digest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::TPM_ALG_SHA256;

    fn sample() -> QuoteAttest {
        QuoteAttest {
            qualified_signer: vec![0, 0x0b, 1, 2, 3],
            extra_data: vec![9; 32],
            clock_info: ClockInfo {
                clock: 10,
                reset_count: 2,
                restart_count: 1,
                safe: true,
            },
            firmware_version: 7,
            pcr_selection: vec![PcrSelection {
                hash_alg: TPM_ALG_SHA256,
                pcrs: vec![0, 1, 7, 23],
            }],
            pcr_digest: vec![5; 32],
        }
    }

    #[test]
    fn round_trip() {
        let bytes = sample().to_bytes();
        assert_eq!(QuoteAttest::parse(&bytes), Ok(sample()));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample().to_bytes();
        for len in 0..bytes.len() {
            assert!(QuoteAttest::parse(&bytes[..len]).is_err(), "len {len}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            QuoteAttest::parse(&long),
            Err(TpmError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn magic_type_and_bounds_checked() {
        let mut bytes = sample().to_bytes();
        bytes[0] ^= 1;
        assert!(matches!(
            QuoteAttest::parse(&bytes),
            Err(TpmError::BadMagic { .. })
        ));
        let mut bytes = sample().to_bytes();
        bytes[5] = 0x17;
        assert!(matches!(
            QuoteAttest::parse(&bytes),
            Err(TpmError::NotAQuote { .. })
        ));
        let mut bytes = sample().to_bytes();
        bytes[6] = 0xff; // qualifiedSigner size high byte
        assert!(matches!(
            QuoteAttest::parse(&bytes),
            Err(TpmError::FieldTooLong { .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic sweep standing in for the fuzz target: mutate each byte of a valid
        // attestation through every value.
        let bytes = sample().to_bytes();
        for i in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut mutated = bytes.clone();
                mutated[i] = v;
                let _ = QuoteAttest::parse(&mutated);
            }
        }
    }
}
