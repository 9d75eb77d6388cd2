//! The faults a scenario injects into a running committee, and the checks made while they
//! last.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use crate::world::World;
use commonware_runtime::Clock as _;
use std::time::Duration;

impl World {
    /// Removes (`up = false`) or restores every link between `a` and `b`, both ways.
    pub(crate) async fn set_link(&self, a: usize, b: usize, up: bool) {
        for (from, to) in [(a, b), (b, a)] {
            let (from, to) = (self.by_index[from].clone(), self.by_index[to].clone());
            if up {
                self.network
                    .add_link(from, to, self.link.clone())
                    .await
                    .unwrap();
            } else {
                self.network.remove_link(from, to).await.unwrap();
            }
        }
    }

    /// Splits the committee in two halves (no quorum on either side) for 3 virtual seconds,
    /// checks that nothing finalizes meanwhile, then heals.
    pub(crate) async fn split(&self) {
        let n = self.scenario.n;
        let half = n / 2;
        let across: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
            .filter(|(a, b)| (*a < half) != (*b < half))
            .collect();
        for &(a, b) in &across {
            self.set_link(a, b, false).await;
        }
        let at_split = self.heights();
        self.context.sleep(Duration::from_secs(3)).await;
        for (index, before) in at_split.iter().enumerate() {
            assert!(
                self.height(index) <= before + 1,
                "member {index} finalized without a quorum"
            );
        }
        for &(a, b) in &across {
            self.set_link(a, b, true).await;
        }
    }

    /// Cuts (`up = false`) or restores every link of member `isolated`.
    pub(crate) async fn isolate(&self, isolated: usize, up: bool) {
        for other in 0..self.scenario.n {
            if other != isolated {
                self.set_link(isolated, other, up).await;
            }
        }
    }

    /// Cuts the power of the whole committee after a seed-chosen delay (so the cut falls
    /// anywhere within a round): every member's tasks are aborted mid-flight, then every
    /// member in `live` restarts from its own storage and they reach `height_after` more.
    pub(crate) async fn power_cut(&mut self, live: &[usize]) {
        let delay_ms = self.scenario.seed * 37 % 250;
        self.context.sleep(Duration::from_millis(delay_ms)).await;
        for index in 0..self.members.len() {
            self.stop(index);
        }
        // Let the aborted tasks drop (and release their storage).
        self.context.sleep(Duration::from_millis(10)).await;
        let at_cut = self.heights().into_iter().max().unwrap_or(0);
        for &index in live {
            self.members[index] = self.launch(index, 1).await;
        }
        self.wait_for(at_cut + self.scenario.height_after, live)
            .await;
    }

    /// Restarts member `index` from its own storage (its log and snapshots).
    pub(crate) async fn restart(&mut self, index: usize) {
        self.members[index] = self.launch(index, 1).await;
    }
}
