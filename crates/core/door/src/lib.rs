//! The front door's translations, sans-IO (issue #15): what a trader's bytes mean to the
//! engine, and what the engine's answers look like to the trader. Every function here is pure,
//! so the gateway's connections (`bulwark-gateway`) only carry them out, and the fuzz targets
//! in `fuzz/` drive them without a network, a committee or a thread.
//!
//! - [`orders`]: FIX application messages (NewOrderSingle, OrderCancelReplaceRequest, ...) to
//!   the engine's commands, prices and sizes checked against the instrument, and execution
//!   reports back.
//! - [`jsonrpc`]: JSON-RPC 2.0 requests in the manner of Deribit, decoded and bounded before a
//!   connection acts on them, and the results and notifications it writes.
//! - [`marketdata`]: FIX MarketDataRequest read and checked; snapshots and incremental
//!   refreshes of the top of book built.

pub mod jsonrpc;
pub mod marketdata;
pub mod orders;
