//! Benchmarks. Each prints one JSON line per figure in the shape
//! `{"bench","metric","value","unit","peer","peer_value","ratio"}`; peers and bounds are measured
//! in the same run.

pub mod engine;
pub mod report;
pub mod restart;
