//! The DEVELOPMENT venue `bulwark up` runs: provisioning a committee on loopback (keys, node
//! configurations, genesis, the reference manifest, software TPMs), launching one
//! `bulwark node` process per member, the one load generator, and the monitor that prints the
//! status line and measures what the committee does. The benches drive committees through it
//! too.
//!
//! Start at [`run_committee`]. Everything here writes under the data directory it is given and
//! says DEVELOPMENT where it stands in for a production part.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod console;
mod error;
mod launch;
mod layout;
mod load;
mod monitor;
mod options;
mod provision;
mod single;

pub use error::CommitteeError;
pub use launch::{launch, run_committee, Launched};
pub use layout::{gateway_operator_address, operator_address, up_operator_address};
pub use options::{oracle_sources, CommitteeOptions, RunFigures};
pub use single::{run_single, SingleError, SingleOptions};
