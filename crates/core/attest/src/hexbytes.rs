//! Fixed-size byte strings that travel as lowercase hex in JSON documents.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A fixed-size byte string written as hex in JSON (`HexBytes<32>` is a SHA-256 digest, `HexBytes<48>` a
/// SEV-SNP or TDX measurement). Parsing rejects any other length.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

/// Why a hex string is not a [`HexBytes`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// Not hex digits (or an odd count of them).
    #[error("not hex: {0}")]
    NotHex(#[source] hex::FromHexError),
    /// Hex, but of the wrong length.
    #[error("expected {expected} bytes, found {found}")]
    Length {
        /// Bytes the type holds.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
}

/// A SHA-256 digest.
pub type Sha256Digest = HexBytes<32>;

/// A 48-byte measurement (SEV-SNP launch digest, TDX MRTD or RTMR).
pub type Measurement48 = HexBytes<48>;

impl<const N: usize> HexBytes<N> {
    /// Parses exactly `2 * N` hex digits.
    pub fn from_hex(text: &str) -> Result<Self, HexError> {
        let bytes = hex::decode(text.trim()).map_err(HexError::NotHex)?;
        let array: [u8; N] = bytes
            .try_into()
            .map_err(|bytes: Vec<u8>| HexError::Length {
                expected: N,
                found: bytes.len(),
            })?;
        Ok(Self(array))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> fmt::Display for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde helper for variable-length byte strings as hex (`#[serde(with = "crate::hexbytes::vec")]`).
pub mod vec {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes bytes as lowercase hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    /// Reads hex into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text.trim()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_wrong_length() {
        let digest = Sha256Digest::from_hex(&"ab".repeat(32)).expect("64 hex digits");
        let json = serde_json::to_string(&digest).expect("serializes");
        let back: Sha256Digest = serde_json::from_str(&json).expect("parses");
        assert_eq!(digest, back);
        assert!(Sha256Digest::from_hex("abcd").is_err());
        assert!(Sha256Digest::from_hex(&"zz".repeat(32)).is_err());
    }
}
