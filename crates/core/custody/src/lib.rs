//! Custody of bulwark's keys.
//!
//! Sans-IO: nothing here opens a file, reads a clock or draws OS randomness; randomness is
//! passed in. Start at [`dkg`] (the genesis ceremony every member runs over the authenticated
//! p2p), then [`sealed`] (the envelope a node's secrets are stored in) and [`secret`] (the
//! wrapper every secret lives in while in memory).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dkg;
pub mod sealed;
pub mod secret;

pub use secret::Secret;
