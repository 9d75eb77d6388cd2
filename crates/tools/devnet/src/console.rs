//! `bulwark up`'s own operator port: the console page of the whole committee and its metrics.
//!
//! The monitor writes each node's status here every second. The committee's trust (sentinel
//! states, appraisals, audits, evidence) comes from the most advanced reachable node's own view
//! (its operator port's `/view.json`); each member's height and whether it answers come from
//! `up`'s own polls, so a node that is down shows as down even in the view of another.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_api::answers::NodeStatus;
use bulwark_console::{label, MemberView, Pages, Scrape, View};

/// What the monitor saw last.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Per node: its status, or `None` when it did not answer.
    pub(crate) statuses: Vec<Option<NodeStatus>>,
    /// Heights two or more nodes reported, whose roots were compared.
    pub(crate) roots_compared: u64,
    /// Whether every compared root agreed.
    pub(crate) roots_agree: bool,
}

/// Shared between the monitor and the operator port.
pub(crate) type SharedObserved = Arc<Mutex<Observed>>;

/// How long `up` waits for a node's view.
const FETCH_TIMEOUT: Duration = Duration::from_millis(800);

/// The pages `up` serves.
pub(crate) struct UpPages {
    pub(crate) observed: SharedObserved,
    pub(crate) submitted: Arc<AtomicU64>,
    /// Per node: its key (hex), data center and operator port.
    pub(crate) nodes: Vec<(String, String, SocketAddr)>,
    /// The node whose view is shown (its evidence records are the ones linked); kept while it
    /// answers and keeps up, so that the timeline compares one node's views.
    pub(crate) source: AtomicUsize,
    /// The last view a node gave, shown (marked) while none answers.
    pub(crate) last: Mutex<Option<View>>,
}

/// How far behind the most advanced node the shown node may fall before another is chosen.
const SOURCE_LAG_MAX: u64 = 50;

impl UpPages {
    fn statuses(&self) -> Vec<Option<NodeStatus>> {
        self.observed
            .lock()
            .expect("the observed lock must not be poisoned")
            .statuses
            .clone()
    }
}

impl Pages for UpPages {
    fn title(&self) -> String {
        format!(
            "bulwark up: {} nodes on loopback (DEVELOPMENT)",
            self.nodes.len()
        )
    }

    fn metrics(&self) -> String {
        let (statuses, compared, agree) = {
            let observed = self
                .observed
                .lock()
                .expect("the observed lock must not be poisoned");
            (
                observed.statuses.clone(),
                observed.roots_compared,
                observed.roots_agree,
            )
        };
        let mut scrape = Scrape::new();
        let up = statuses.iter().filter(|s| s.is_some()).count();
        scrape.gauges(
            "up_nodes",
            "Nodes of the committee that answered up's last status poll, and those that did not",
            None,
            vec![
                (label("state", "answering"), up as f64),
                (label("state", "down"), (statuses.len() - up) as f64),
            ],
        );
        scrape.gauges(
            "up_node_height",
            "Each node's finalized height as up polled it (absent while down)",
            None,
            statuses
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    s.as_ref()
                        .map(|s| (label("node", format!("node-{i}")), s.height as f64))
                })
                .collect(),
        );
        scrape.gauge(
            "up_roots_compared",
            "Heights two or more nodes reported, whose state roots up compared",
            None,
            compared as f64,
        );
        scrape.gauge(
            "up_roots_agree",
            "1 while every compared state root agrees",
            None,
            f64::from(u8::from(agree)),
        );
        scrape.counter(
            "up_orders_submitted",
            "Orders the load generator submitted",
            self.submitted.load(Ordering::Relaxed),
        );
        scrape.render()
    }

    fn view(&self) -> View {
        let statuses = self.statuses();
        let highest = statuses.iter().flatten().map(|s| s.height).max();
        let current = self.source.load(Ordering::Relaxed);
        let keeps_up = |i: usize| {
            statuses.get(i).cloned().flatten().is_some_and(|s| {
                highest.is_some_and(|h| s.height.saturating_add(SOURCE_LAG_MAX) >= h)
            })
        };
        // The shown node stays while it keeps up; otherwise the most advanced (lowest index
        // among equals) takes over.
        let chosen = if keeps_up(current) {
            Some(current)
        } else {
            statuses
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_ref().map(|s| (std::cmp::Reverse(s.height), i)))
                .min()
                .map(|(_, i)| i)
        };
        let fetched = chosen.and_then(|i| {
            let text =
                bulwark_console::http::get(self.nodes[i].2, "/view.json", FETCH_TIMEOUT).ok()?;
            let view: View = serde_json::from_str(&text).ok()?;
            Some((i, view))
        });
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (mut view, note) = match fetched {
            Some((i, view)) => {
                self.source.store(i, Ordering::Relaxed);
                *last = Some(view.clone());
                (view, format!("trust as node-{i} sees it"))
            }
            // No node gave a view: the last one stays (the timeline then sees no change),
            // marked as old.
            None => match last.clone() {
                Some(view) => (
                    view,
                    format!(
                        "node-{} did not answer: its last view",
                        self.source.load(Ordering::Relaxed)
                    ),
                ),
                None => (
                    View {
                        members: self
                            .nodes
                            .iter()
                            .map(|(key, data_center, _)| MemberView {
                                key: key.clone(),
                                data_center: data_center.clone(),
                                sentinel: "unknown".into(),
                                ..MemberView::default()
                            })
                            .collect(),
                        ..View::default()
                    },
                    "no node has answered yet".into(),
                ),
            },
        };
        drop(last);
        view.title = format!("{} · {note}", self.title());
        view.time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        for member in &mut view.members {
            if let Some(i) = self.nodes.iter().position(|(key, _, _)| *key == member.key) {
                let status = statuses.get(i).cloned().flatten();
                member.height = status.as_ref().map(|s| s.height);
                member.reachable = Some(status.is_some());
            }
        }
        view.height = highest.unwrap_or(view.height);
        // The load's finalized rate and latency as node 0 saw them (the status line's).
        if let Some(Some(first)) = statuses.first() {
            view.orders_finalized = first.finalized_txs;
            view.latency_p50_ms = first.latency_p50_ms;
            view.latency_p99_ms = first.latency_p99_ms;
        }
        // up draws its own timeline from these views (the node's is the node's).
        view.events.clear();
        view.activity.clear();
        view
    }

    fn evidence(&self, id: u64) -> Option<String> {
        let (_, _, operator) = self.nodes.get(self.source.load(Ordering::Relaxed))?;
        bulwark_console::http::get(*operator, &format!("/evidence/{id}"), FETCH_TIMEOUT).ok()
    }
}
