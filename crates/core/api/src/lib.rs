//! The typed protocol between bulwark clients and nodes.
//!
//! Start at [`wire`]: the frame format, every request and response, and their pure encoders and
//! decoders with explicit bounds. The only I/O is moving whole frames over any `Read`/`Write`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod answers;
pub mod stats;
pub mod wire;
