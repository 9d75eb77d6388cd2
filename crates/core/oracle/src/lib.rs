//! bulwark's oracle nodes, without I/O in the core.
//!
//! - [`binance`]: Binance WebSocket message adapters (`bookTicker`, `depthUpdate`, `trade`, bare
//!   or in combined-stream wrappers, optionally prefixed by a receive time), bounded and typed.
//! - [`replay`]: a pure capture replayer and per-venue quote state (the file reader is
//!   `bulwark_venues::read_capture`).
//! - [`source`]: the venue sources' config, per-venue quote state and status (pure); the sources
//!   that run (live WebSocket adapter, real-time capture player) are the runtime crate
//!   `bulwark-venues`.
//! - [`synthetic`]: a seeded geometric Brownian motion with jumps (the default source).
//! - [`node`]: one node's observation: weighted median over fresh sources, outlier clamp,
//!   confidence, Ed25519 signature under `b"bulwark/oracle/observation/v1"`.
//! - [`proposer`]: collect valid signed observations and form the engine's `OracleRound`.
//! - [`scenario`]: seeded manipulation and crash scenarios against one engine.
//!
//! The signed observation, its canonical encoding, the round rules, aggregation and guards live
//! in the engine crate (`bulwark_engine::oracle`), because the replicated state machine applies
//! them; this crate re-exports what a node needs.

#![forbid(unsafe_code)]

pub mod binance;
pub mod node;
pub mod proposer;
pub mod replay;
pub mod scenario;
pub mod source;
pub mod synthetic;

pub use bulwark_engine::oracle::{
    verify_oracle_round, Observation, OracleConfig, OracleRoundError, SignedObservation,
    OBSERVATION_NAMESPACE,
};
