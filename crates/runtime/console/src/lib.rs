//! The operator port (issue #17): what the venue's operators read, never what they change.
//!
//! - [`http`]: a small read-only HTTP/1.1 server, bound to loopback unless the configuration
//!   says otherwise, bounded in connections, head size and time.
//! - [`exposition`]: one scrape's metrics in the OpenMetrics text format (`prometheus-client`),
//!   built from the same snapshot the part's status line shows.
//! - [`view`]: what the console page shows (the committee, its trust, the index, activity) and
//!   the timeline of security events drawn from consecutive views.
//!
//! A node, a gateway and `bulwark up` each implement [`Pages`] over their own figures, and
//! configure the port with an `[operator]` section ([`OperatorConfig`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod exposition;
pub mod http;
pub mod view;

pub use config::OperatorConfig;
pub use exposition::{label, Labels, Scrape, OPENMETRICS_CONTENT_TYPE};
pub use http::{Limits, OperatorServer, Pages};
pub use prometheus_client::registry::Unit;
pub use view::{EvidenceView, IndexView, MemberView, View};
