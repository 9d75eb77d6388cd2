//! The venue sources an oracle member observes for real, behind `bulwark_oracle::source`'s pure
//! configuration and feed state: live Binance-format WebSocket adapters (tokio-tungstenite over
//! rustls 0.23 with the aws-lc-rs provider, post-quantum key exchange preferred) and the
//! real-time capture player, plus the bounded capture-file reader.
//!
//! Start at [`spawn_sources`]: one task or thread per configured venue, read through
//! [`Sources::quotes`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod capture;
mod files;
mod live;
mod sources;

pub use capture::CaptureSource;
pub use files::{read_capture, shared_data_dir, CaptureLines};
pub use live::{LiveOptions, LiveWebSocket};
pub use sources::{spawn_sources, spawn_sources_with_clock, Sources, SystemClock};
