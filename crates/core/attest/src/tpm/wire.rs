//! Bounded big-endian reader and writer for TPM 2.0 structures (TPM 2.0 Part 2, "Structures").
//!
//! Every length read from the wire is checked against the structure's maximum before anything is
//! sliced; nothing is allocated from an untrusted length.

use super::TpmError;

/// Reads TPM marshalled data, never past its end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    structure: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], structure: &'static str) -> Self {
        Self {
            bytes,
            offset: 0,
            structure,
        }
    }

    pub(crate) fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], TpmError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(TpmError::Truncated {
                structure: self.structure,
                field,
                offset: self.offset,
            })?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, TpmError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, TpmError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, TpmError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, TpmError> {
        let b = self.take(8, field)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(b);
        Ok(u64::from_be_bytes(array))
    }

    /// A TPM2B: u16 size then that many bytes, refused when the size exceeds `max`.
    pub(crate) fn tpm2b(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], TpmError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(TpmError::FieldTooLong { field, len, max });
        }
        self.take(len, field)
    }

    /// Refuses trailing bytes after a complete structure.
    pub(crate) fn finish(self) -> Result<(), TpmError> {
        let extra = self.bytes.len() - self.offset;
        if extra != 0 {
            return Err(TpmError::TrailingBytes {
                structure: self.structure,
                extra,
            });
        }
        Ok(())
    }
}

/// Appends a TPM2B (u16 size then bytes). Callers pass buffers far below 64 KiB.
pub(crate) fn put_tpm2b(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("TPM2B buffers must be shorter than 64 KiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}
