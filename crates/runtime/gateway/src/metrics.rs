//! The gateway's operator port: its Prometheus metrics (`docs/metrics.md`), read at each scrape
//! from the counters every connection and the committee side keep.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bulwark_console::{label, Pages, Scrape, View};

use crate::acceptor::Shared;

/// The operator port's pages of a gateway.
pub(crate) struct GatewayPages {
    pub(crate) shared: Arc<Shared>,
}

impl Pages for GatewayPages {
    fn title(&self) -> String {
        format!("gateway {}", self.shared.config.comp_id)
    }

    fn metrics(&self) -> String {
        let shared = &self.shared;
        let c = &shared.counters;
        let u = &shared.upstream.counters;
        let read = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let mut scrape = Scrape::new();
        scrape.gauge(
            "gateway_connections",
            "Client connections open (FIX and WebSocket)",
            None,
            shared.live.load(Ordering::Acquire) as f64,
        );
        scrape.gauge(
            "gateway_connections_preauth",
            "Client connections not yet logged on",
            None,
            shared.preauth.load(Ordering::Acquire) as f64,
        );
        // A connection thread that panicked holding the lock leaves the set as it was; the
        // count is still right to show.
        let sessions = shared
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        scrape.gauge(
            "gateway_sessions",
            "Trading sessions logged on now",
            None,
            sessions as f64,
        );
        scrape.counter(
            "gateway_logons",
            "Sessions logged on since start",
            read(&c.logons),
        );
        // Each layer of the scrubbing, outermost first (docs/gateway.md).
        let layers = [
            ("accept", read(&c.refused_at_accept)),
            ("preauth", read(&c.refused_preauth)),
            ("tls_handshake_budget", read(&c.handshakes_over_budget)),
            ("before_logon", read(&c.closed_before_logon)),
            ("logon_budget", read(&c.logons_over_budget)),
            ("logon_address_budget", read(&c.logons_over_address_budget)),
            ("logon_signature", read(&c.logons_bad_signature)),
            ("order_credits", read(&c.orders_throttled)),
            ("query_credits", read(&c.queries_throttled)),
            ("kill_switch", read(&c.orders_killed)),
            ("committee_refused", read(&u.refused)),
            ("committee_expired", read(&u.expired)),
        ];
        scrape.counters(
            "gateway_refusals",
            "Connections, logons, orders and transactions refused, by the layer that refused them",
            layers
                .into_iter()
                .map(|(layer, n)| (label("layer", layer), n))
                .collect(),
        );
        scrape.counter(
            "gateway_shed",
            "Order copies shed from a node's queue (a standing or full queue; cancels never)",
            read(&u.shed),
        );
        scrape.counter(
            "gateway_cancels",
            "Cancels sent to the committee (never refused for credit)",
            read(&c.cancels),
        );
        scrape.counter(
            "gateway_execution_reports",
            "Execution reports sent for outcomes a quorum of nodes reported finalized",
            read(&c.reports),
        );
        scrape.gauge(
            "gateway_waiting",
            "Transactions submitted to the committee and waiting for their verdict",
            None,
            shared.upstream.waiting() as f64,
        );
        scrape.render()
    }

    /// A gateway is not a committee member and sees no trust state: its page shows its title
    /// only (the committee's console is a node's or `bulwark up`'s).
    fn view(&self) -> View {
        View {
            title: format!(
                "{} (a gateway: see a node's or bulwark up's console for the committee)",
                self.title()
            ),
            time_ms: crate::acceptor::now_ms(),
            ..View::default()
        }
    }

    fn evidence(&self, _id: u64) -> Option<String> {
        None
    }
}
