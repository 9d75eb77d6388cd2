//! Every `bulwark bench ...` figure, and the one JSON line they all print
//! ([`report::emit`]): `{"bench","metric","value","unit","peer","peer_value","ratio"}`, with the
//! peer or bound measured in the same run.
//!
//! Start at [`report`]. [`engine`] compares the matching core with lobster, [`restart`] a
//! replica's start from a snapshot with a full replay, [`committee`] runs committees of node
//! processes through `bulwark-devnet`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attest;
pub mod audit;
pub mod committee;
pub mod connections;
pub mod custody;
pub mod engine;
pub mod gateway;
pub mod gateway_load;
pub mod oracle;
pub mod report;
pub mod restart;
pub mod sentinel;
pub mod sim;
