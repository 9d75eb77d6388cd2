//! Framing: the length prefix, reading and writing whole frames. The only I/O of the protocol,
//! over any `Read`/`Write`.

use std::io::{self, Read, Write};

use super::{WireError, LENGTH_PREFIX_BYTES};

/// One frame as read: its kind and body, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The kind byte.
    pub kind: u8,
    /// The body (length field minus one bytes).
    pub body: Vec<u8>,
}

impl Frame {
    /// The frame as bytes on the wire (length prefix included). Refuses a frame whose length
    /// field would exceed `frame_bytes_max`.
    pub fn to_bytes(&self, frame_bytes_max: usize) -> Result<Vec<u8>, WireError> {
        let len = self.body.len().saturating_add(1);
        let len_field = u32::try_from(len)
            .ok()
            .filter(|_| len <= frame_bytes_max)
            .ok_or(WireError::FrameTooLarge {
                len,
                max: frame_bytes_max,
            })?;
        let mut out = Vec::with_capacity(LENGTH_PREFIX_BYTES + len);
        out.extend_from_slice(&len_field.to_be_bytes());
        out.push(self.kind);
        out.extend_from_slice(&self.body);
        Ok(out)
    }
}

/// Checks a length prefix: the frame's length (kind byte and body) if acceptable.
pub fn frame_len(
    prefix: [u8; LENGTH_PREFIX_BYTES],
    frame_bytes_max: usize,
) -> Result<usize, WireError> {
    // u32 -> usize cannot fail on the targets we build for; saturating keeps the check honest.
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > frame_bytes_max {
        return Err(WireError::FrameTooLarge {
            len,
            max: frame_bytes_max,
        });
    }
    if len == 0 {
        return Err(WireError::EmptyFrame);
    }
    Ok(len)
}

/// Reads one frame. The length is checked against `frame_bytes_max` before anything is
/// allocated, and the body buffer grows only as bytes actually arrive, so a peer that announces
/// a large frame and sends nothing costs no memory.
///
/// [`WireError::Closed`] means a clean end between frames. [`WireError::EmptyFrame`] leaves the
/// stream in step; every other error leaves it mid-frame.
pub fn read_frame(reader: &mut impl Read, frame_bytes_max: usize) -> Result<Frame, WireError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    match read_full(reader, &mut prefix)? {
        0 => return Err(WireError::Closed),
        LENGTH_PREFIX_BYTES => {}
        got => {
            return Err(WireError::Truncated {
                needed: LENGTH_PREFIX_BYTES,
                got,
            })
        }
    }
    let len = frame_len(prefix, frame_bytes_max)?;
    let mut bytes = Vec::new();
    // `take` bounds the read to this frame; read_to_end grows the buffer as data arrives.
    let got = Read::take(&mut *reader, len as u64).read_to_end(&mut bytes)?;
    if got < len {
        return Err(WireError::Truncated { needed: len, got });
    }
    let (kind, body) = bytes.split_first().ok_or(WireError::EmptyFrame)?;
    Ok(Frame {
        kind: *kind,
        body: body.to_vec(),
    })
}

/// Writes one frame (prefix, kind, body) and flushes.
pub fn write_frame(writer: &mut impl Write, bytes: &[u8]) -> Result<(), WireError> {
    writer.write_all(bytes)?;
    writer.flush()?;
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}
