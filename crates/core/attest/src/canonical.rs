//! The canonical byte encoding that signatures cover.
//!
//! JSON is how documents travel; signatures never cover JSON text (key order, whitespace and number
//! spelling vary between encoders). Each signed structure is instead written field by field, in a fixed
//! order, with this encoder: integers big-endian at fixed width, byte strings and text prefixed by a u32
//! length, optional values by a 0/1 byte, sequences by a u32 count. Two equal structures always encode
//! to the same bytes and no two different ones collide.

/// Appends canonical fields to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn bool(&mut self, value: bool) -> &mut Self {
        self.u8(u8::from(value))
    }

    /// A length-prefixed byte string.
    pub(crate) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.count(value.len());
        self.bytes.extend_from_slice(value);
        self
    }

    pub(crate) fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// A sequence or byte-string length. Documents are bounded far below 4 GiB before they are encoded.
    pub(crate) fn count(&mut self, len: usize) -> &mut Self {
        let len = u32::try_from(len).expect("canonical documents must be bounded below 4 GiB");
        self.u32(len)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// The message an Ed25519 signature covers: the namespace (length-prefixed) then the canonical body, so
/// a signature made under one namespace can never verify under another.
pub(crate) fn signing_message(namespace: &[u8], body: &[u8]) -> Vec<u8> {
    let mut encoder = Encoder::new();
    encoder.bytes(namespace);
    let mut message = encoder.finish();
    message.extend_from_slice(body);
    message
}
