//! bulwark's derivatives engine: a deterministic state machine with no I/O, no clock and no OS
//! randomness.
//!
//! The engine takes batches of [`command::Command`]s stamped with a time supplied by the caller
//! and returns typed [`event::Event`]s. Identical inputs give identical events and an identical
//! [`Engine::state_root`](engine::Engine::state_root) on every platform: all money and prices are
//! integers, and the few floating-point computations (option marks) use pure-Rust `libm` and never
//! decide a fill.
//!
//! Start reading at [`engine::Engine::execute`].

pub mod account;
pub mod book;
pub mod codec;
pub mod command;
pub mod deposit;
pub mod engine;
pub mod event;
pub mod instrument;
pub mod liquidation;
pub mod margin;
pub mod mark;
pub mod oracle;
pub mod orders;
pub mod pricing;
pub mod sentinel;
pub mod session;
pub mod settle;
pub mod snapshot;
pub mod stops;

pub use command::{
    AccountId, ClientCommand, Command, InstrumentId, OrderId, PayoutChain, SessionGrant, Side,
    StopDirection, StopOrder,
};
pub use engine::{Engine, EngineConfig, Withdrawal};
pub use event::{Event, RejectReason};
