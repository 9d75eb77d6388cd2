//! The nemesis (issue #16): one long seeded schedule that mixes network faults, crashes,
//! whole-committee power cuts, damaged disks ([`crate::disk`]) and duplicated or reordered
//! messages on one link ([`crate::mangle`]) over a running committee, then heals everything
//! and measures how long the committee takes to make progress again. A restarted member comes
//! back with what it synced to disk and nothing it held only in memory. The faults of one
//! step are combined into one link table (a cut wins over a slow or lossy link), and each step
//! checks what its faults must prevent (a cut-off member, or a committee without quorum anywhere, finalizing). The
//! checkers of [`crate::check`] then run over the whole run as over any other (one block and one
//! root per height everywhere, money conserved, every height executed once and in order, every
//! log verifying from genesis, every height a damaged disk lost committed again to the same
//! block and root), and a recovery slower than [`RECOVERY_BOUND`] or a breach is a
//! violation of its own.
//!
//! Every choice comes from the scenario's seed, so a failing seed replays exactly:
//! `bulwark sim --scenario nemesis --seed SEED --nodes N`.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use crate::disk::DiskDamage;
use crate::mangle::Mangle;
use crate::world::World;
use commonware_p2p::simulated::{self, Link};
use commonware_runtime::Clock as _;
use commonware_utils::probability;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long, after the last fault healed, every member may take to finalize
/// [`RECOVERY_HEIGHTS`] more heights.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(60);
/// How many heights past the highest one at the heal every member must reach.
pub const RECOVERY_HEIGHTS: u64 = 3;

/// One kind of fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Every link of one member cut, both ways.
    Isolate,
    /// One direction of one link cut (a hears b, b does not hear a).
    OneWay,
    /// One link cut and restored several times in quick succession.
    Flap,
    /// The committee split in two random groups.
    Partition,
    /// Every link drops messages (40 % lost).
    Loss,
    /// Every link slow and jittery (150 ms ± 120 ms). The simulated network keeps each
    /// sender → receiver pair in order, so messages of different senders arrive shuffled.
    Delay,
    /// One member's tasks aborted mid-flight; it restarts from its own storage, with what a
    /// node holds in memory emptied ([`World::forget`]).
    Crash,
    /// Every member's tasks aborted at once (a power cut): all restart from their own
    /// storage. The simulated disk keeps only what each member synced (every open reads synced
    /// contents), and a restarted member starts with what a node holds in memory emptied
    /// ([`World::forget`]).
    CrashAll,
    /// One member crashed and its synced storage damaged before it restarts
    /// ([`DiskDamage`]): the end of its log lost, a byte of its log or of its newest snapshot
    /// flipped. It must cut the log at the damage, restore from an older snapshot or genesis,
    /// fetch the lost heights again and commit them to the same blocks and roots.
    Damage,
    /// Every message on one link (one sender to one receiver, all channels) delivered twice.
    Duplicate,
    /// Every message on one link held back and delivered after the next message the receiver
    /// gets (of any sender, this one's included), so one link's messages arrive out of order.
    Reorder,
    /// One running member's disk fails for the step ([`crate::faulty`]): every write to its
    /// replica's partitions lands torn, every sync, resize and read fails. It must not vote
    /// for what it cannot keep, and a finalized height it cannot persist stops it (a
    /// fail-stop); once the disk is healed it is restarted and comes back from what it synced.
    /// Drawn from its own generator, beside the step's other faults (so adding it left every
    /// seed's other faults as they were).
    DiskFailure,
    /// One running member's clock stepped to a new offset within the scenario's skew bound,
    /// forwards or backwards, and left there (an operator or a time daemon stepping it). Its
    /// blocks' and oracle rounds' time and its consensus's timers follow it. Drawn from its own
    /// generator, like [`FaultKind::DiskFailure`].
    ClockStep,
}

impl FaultKind {
    const ALL: [FaultKind; 11] = [
        FaultKind::Isolate,
        FaultKind::OneWay,
        FaultKind::Flap,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::Delay,
        FaultKind::Crash,
        FaultKind::CrashAll,
        FaultKind::Damage,
        FaultKind::Duplicate,
        FaultKind::Reorder,
    ];
}

/// What the nemesis did and how the committee came back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NemesisReport {
    /// Steps run (each one or two faults at once, held, then healed).
    pub steps: u32,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Virtual milliseconds from the last heal until every member was
    /// [`RECOVERY_HEIGHTS`] past the highest height at the heal (`None`: not within
    /// [`RECOVERY_BOUND`]).
    pub recovery_ms: Option<u64>,
    /// Every member's height at the end.
    pub heights: Vec<u64>,
    /// What a fault should have prevented and did not (a member cut off, or a committee
    /// without quorum anywhere, finalizing); must be empty.
    pub breaches: Vec<String>,
    /// Disk damage done, by kind (see [`FaultKind::Damage`]).
    pub disk_damage: BTreeMap<DiskDamage, u64>,
    /// Committed heights members lost with their damaged disks, fetched and committed again.
    pub heights_lost: u64,
    /// Per member: how far ahead of the true time its clock ran (negative: behind), ms.
    pub clock_skews_ms: Vec<i64>,
    /// Messages that members' receiving ends really duplicated or held back.
    pub mangled_messages: u64,
    /// Disk operations the failed disks refused (see [`FaultKind::DiskFailure`]).
    pub disk_ops_refused: u64,
    /// Members that stopped themselves on a failed disk (and were restarted).
    pub fail_stops: u64,
    /// Per member: its clock's offset at the end (after the steps), ms.
    pub clock_ends_ms: Vec<i64>,
}

/// The schedule's own generator (SplitMix64): the nemesis draws from it, never from the
/// runtime's, so adding a fault kind does not reshuffle the network's own randomness.
pub(crate) struct Draw(pub(crate) u64);

impl Draw {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A duration between `min` and `max` milliseconds.
    fn millis(&mut self, min: u64, max: u64) -> Duration {
        Duration::from_millis(min + self.below(max - min + 1))
    }

    /// Two different members of `n`.
    fn pair(&mut self, n: usize) -> (usize, usize) {
        let a = self.below(n as u64) as usize;
        let b = (a + 1 + self.below(n as u64 - 1) as usize) % n;
        (a, b)
    }
}

/// One step's links: for each ordered pair (from, to), the link it has, or `None` (cut).
type Links = Vec<Vec<Option<Link>>>;

impl World {
    /// Sets the link `from` → `to` to `link`, or removes it (`None`); whatever it was before.
    async fn relink(&self, from: usize, to: usize, link: Option<Link>) {
        let (a, b) = (self.by_index[from].clone(), self.by_index[to].clone());
        match self.network.remove_link(a.clone(), b.clone()).await {
            // Absent already is fine (cut by this step's table); anything else is a setup bug.
            Ok(()) | Err(simulated::Error::LinkMissing) => {}
            Err(error) => panic!("the simulated network did not cut {from} -> {to}: {error}"),
        }
        if let Some(link) = link {
            self.network.add_link(a, b, link).await.unwrap();
        }
    }

    /// Every link of the committee as `links` says.
    async fn apply(&self, links: &Links) {
        for (a, row) in links.iter().enumerate() {
            for (b, link) in row.iter().enumerate() {
                if a != b {
                    self.relink(a, b, link.clone()).await;
                }
            }
        }
    }

    /// Runs the nemesis for `steps` steps, heals, and measures the recovery.
    pub(crate) async fn nemesis(&mut self, steps: u32) -> NemesisReport {
        let n = self.scenario.n;
        assert!((2..=63).contains(&n), "the nemesis needs 2 to 63 members");
        let quorum = n - (n - 1) / 3;
        let mut draw = Draw(self.scenario.seed ^ 0x6e65_6d65_7369_7321);
        let mut disk_draw = Draw(self.scenario.seed ^ 0x6469_736b_6661_696c);
        let mut clock_draw = Draw(self.scenario.seed ^ 0x636c_6f63_6b73_7465);
        let skew_bound = i64::try_from(self.scenario.clock_skew_ms).unwrap_or(i64::MAX / 4);
        let mut report = NemesisReport {
            steps,
            clock_skews_ms: self.skews_ms.clone(),
            ..NemesisReport::default()
        };
        // Boot labels of restarts (above those the scenarios' own restarts use).
        let mut boots = vec![100usize; n];
        let normal: Links = vec![vec![Some(self.link.clone()); n]; n];
        for step in 0..steps {
            // One fault, or two at once (a crash under a partition, a flap under loss, ...).
            let count = 1 + usize::from(draw.below(3) == 0);
            let mut kinds: Vec<FaultKind> = (0..count)
                .map(|_| FaultKind::ALL[draw.below(FaultKind::ALL.len() as u64) as usize])
                .collect();
            kinds.sort_unstable();
            kinds.dedup();
            let hold = draw.millis(300, 4_000);
            // This step's link table: qualities first, then cuts (a cut wins).
            let mut links = normal.clone();
            for kind in &kinds {
                let (latency, jitter, success_rate) = match kind {
                    FaultKind::Loss => (None, None, Some(probability!(0.6))),
                    FaultKind::Delay => (
                        Some(Duration::from_millis(150)),
                        Some(Duration::from_millis(120)),
                        None,
                    ),
                    _ => continue,
                };
                for link in links.iter_mut().flatten().flatten() {
                    link.latency = latency.unwrap_or(link.latency);
                    link.jitter = jitter.unwrap_or(link.jitter);
                    link.success_rate = success_rate.unwrap_or(link.success_rate);
                }
            }
            let mut crashed = Vec::new();
            let mut damaged = Vec::new();
            let mut mangled = Vec::new();
            let mut flaps = Vec::new();
            let mut isolated = Vec::new();
            // Whether no side of the cuts holds a quorum (nothing may finalize meanwhile).
            let mut quorumless = false;
            for kind in &kinds {
                *report.faults.entry(*kind).or_default() += 1;
                match kind {
                    FaultKind::Isolate => {
                        let member = draw.below(n as u64) as usize;
                        for other in (0..n).filter(|o| *o != member) {
                            links[member][other] = None;
                            links[other][member] = None;
                        }
                        isolated.push(member);
                    }
                    FaultKind::OneWay => {
                        let (a, b) = draw.pair(n);
                        links[a][b] = None;
                    }
                    FaultKind::Flap => flaps.push(draw.pair(n)),
                    FaultKind::Partition => {
                        // A random non-trivial split: member i goes left when its bit is set.
                        let mask = 1 + draw.below((1u64 << n) - 2);
                        for (a, row) in links.iter_mut().enumerate() {
                            for (b, link) in row.iter_mut().enumerate() {
                                if (mask >> a & 1) != (mask >> b & 1) {
                                    *link = None;
                                }
                            }
                        }
                        let left = mask.count_ones() as usize;
                        quorumless |= left < quorum && n - left < quorum;
                    }
                    // Drawn on its own below, not from this step's kinds.
                    FaultKind::Loss
                    | FaultKind::Delay
                    | FaultKind::DiskFailure
                    | FaultKind::ClockStep => {}
                    FaultKind::Crash => {
                        let member = draw.below(n as u64) as usize;
                        if !crashed.contains(&member) {
                            self.stop(member);
                            crashed.push(member);
                        }
                    }
                    FaultKind::Damage => {
                        let member = draw.below(n as u64) as usize;
                        if !crashed.contains(&member) {
                            self.stop(member);
                            crashed.push(member);
                        }
                        damaged.push((member, DiskDamage::pick(draw.next()), draw.next()));
                    }
                    FaultKind::Duplicate | FaultKind::Reorder => {
                        let (from, to) = draw.pair(n);
                        let mangle = if *kind == FaultKind::Duplicate {
                            Mangle::Duplicate
                        } else {
                            Mangle::Reorder
                        };
                        *self.mangles[to].lock().unwrap() =
                            Some((self.by_index[from].clone(), mangle));
                        mangled.push(to);
                    }
                    FaultKind::CrashAll => {
                        // Anywhere within a round.
                        self.context.sleep(draw.millis(0, 250)).await;
                        for member in 0..n {
                            if !crashed.contains(&member) {
                                self.stop(member);
                                crashed.push(member);
                            }
                        }
                    }
                }
            }
            // A disk failing under a running member, in one step of three (not under one this
            // step crashed: drawn all the same, so the draws stay a function of the seed).
            let failed_disk = (disk_draw.below(3) == 0)
                .then(|| disk_draw.below(n as u64) as usize)
                .filter(|member| !crashed.contains(member));
            if let Some(member) = failed_disk {
                *report.faults.entry(FaultKind::DiskFailure).or_default() += 1;
                self.disks[member].fail();
            }
            // A clock stepped, in one step of four (with a skew bound to stay within).
            if clock_draw.below(4) == 0 && skew_bound > 0 {
                let member = clock_draw.below(n as u64) as usize;
                let offset =
                    clock_draw.below(2 * skew_bound.unsigned_abs() + 1) as i64 - skew_bound;
                *report.faults.entry(FaultKind::ClockStep).or_default() += 1;
                self.clocks[member].store(offset, std::sync::atomic::Ordering::SeqCst);
            }
            self.apply(&links).await;
            let before = self.heights();
            // Hold the faults; a flapping link goes between cut and what the table gives it.
            let until = self.context.current() + hold;
            for (a, b) in &flaps {
                for _ in 0..2 + draw.below(5) {
                    self.relink(*a, *b, None).await;
                    self.relink(*b, *a, None).await;
                    self.context.sleep(draw.millis(50, 400)).await;
                    self.relink(*a, *b, links[*a][*b].clone()).await;
                    self.relink(*b, *a, links[*b][*a].clone()).await;
                    self.context.sleep(draw.millis(50, 400)).await;
                }
            }
            let now = self.context.current();
            if until > now {
                self.context
                    .sleep(until.duration_since(now).unwrap_or_default())
                    .await;
            }
            // What the faults must have prevented: a member cut off from everyone, or a
            // committee with no quorum on any side, finalizes nothing past the committee's
            // highest height before the cut and the one in flight (a lagging member may still
            // catch up to heights already finalized).
            let after = self.heights();
            let highest = before.iter().copied().max().unwrap_or(0);
            for (member, reached) in after.iter().enumerate() {
                let cut_off = isolated.contains(&member) || quorumless;
                if cut_off && *reached > highest + 1 {
                    report.breaches.push(format!(
                        "step {step} ({kinds:?}): member {member} reached height {reached}, past {highest} + 1, with no quorum reachable"
                    ));
                }
            }
            // Heal: every link back to normal, every crashed member restarted from its disk, a
            // failed disk working again, and a member that stopped itself on it restarted.
            self.apply(&normal).await;
            if let Some(member) = failed_disk {
                self.disks[member].heal();
                let halted = self.stats[member].lock().unwrap().halted.take();
                if halted.is_some() && !crashed.contains(&member) {
                    report.fail_stops += 1;
                    self.stop(member);
                    crashed.push(member);
                }
            }
            for member in mangled {
                *self.mangles[member].lock().unwrap() = None;
            }
            // Let the aborted tasks drop (and release their storage) before restarting.
            self.context.sleep(Duration::from_millis(10)).await;
            for (member, damage, at) in damaged {
                *report.disk_damage.entry(damage).or_default() += 1;
                report.heights_lost += self.damage(member, damage, at).await;
            }
            crashed.sort_unstable();
            for member in crashed {
                // As a restarted node: what it held only in memory is gone.
                self.forget(member);
                self.members[member] = self.launch(member, boots[member]).await;
                boots[member] += 1;
            }
            // A breather of random length between steps: sometimes the next fault lands on a
            // committee still catching up. The recovery is measured from the last heal.
            if step + 1 < steps {
                self.context.sleep(draw.millis(0, 1_500)).await;
            }
        }
        report.recovery_ms = self.recovery().await;
        report.mangled_messages = self.mangled.load(std::sync::atomic::Ordering::Relaxed);
        report.disk_ops_refused = self.disks.iter().map(|d| d.refused()).sum();
        report.clock_ends_ms = self
            .clocks
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::SeqCst))
            .collect();
        report.heights = self.heights();
        report
    }

    /// Virtual milliseconds until every member the committee has not removed is
    /// [`RECOVERY_HEIGHTS`] past the highest height now and, with the oracle committee, its
    /// certified rounds are within [`crate::check::ORACLE_LAG_ROUNDS`] of the clock again;
    /// `None` past [`RECOVERY_BOUND`].
    async fn recovery(&self) -> Option<u64> {
        let start = self.context.current();
        let target = self.heights().into_iter().max().unwrap_or(0) + RECOVERY_HEIGHTS;
        let members: Vec<usize> = (0..self.scenario.n).collect();
        loop {
            let removed = self.removed();
            let clock_round = bulwark_consensus::oracle_feed::round_at(
                crate::world::unix_ms(&self.context),
                self.venue_epoch_ms,
            );
            let behind = members.iter().filter(|i| !removed.contains(i)).any(|&i| {
                let oracle_behind = self.scenario.oracle && {
                    let view = self.views[i].lock().unwrap();
                    view.engine.oracle_last_round(0).unwrap_or(0) + crate::check::ORACLE_LAG_ROUNDS
                        < clock_round
                };
                self.height(i) < target || oracle_behind
            });
            let elapsed = self
                .context
                .current()
                .duration_since(start)
                .unwrap_or_default();
            if !behind {
                return Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
            }
            if elapsed > RECOVERY_BOUND {
                return None;
            }
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What `bulwark sim --nemesis` reports for a sweep of seeds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sweep {
    /// Committee size.
    pub nodes: usize,
    /// The first seed.
    pub first_seed: u64,
    /// Seeds run.
    pub seeds_run: u64,
    /// Nemesis steps per seed.
    pub steps_per_seed: u32,
    /// Each member's clock was off the true time by at most this much, either way (ms).
    pub clock_skew_bound_ms: u64,
    /// Simulated milliseconds over all seeds.
    pub simulated_ms: u64,
    /// Faults injected over all seeds, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Disk damage done over all seeds, by kind.
    pub disk_damage: BTreeMap<DiskDamage, u64>,
    /// Committed heights lost with damaged disks over all seeds (each fetched and committed
    /// again, to the same block and root).
    pub heights_lost: u64,
    /// Disk operations the failed disks refused, over all seeds.
    pub disk_ops_refused: u64,
    /// Members that stopped themselves on a failed disk and were restarted, over all seeds.
    pub fail_stops: u64,
    /// Messages really duplicated or held back over all seeds.
    pub mangled_messages: u64,
    /// What the tracked clients sent, were told and read over all seeds
    /// ([`crate::clients`]): every accepted transaction was finalized, every read agreed
    /// with the receipts.
    pub clients: crate::clients::ClientTally,
    /// Broken invariants, by checker (`panic`: the run itself failed; `false_evidence`: an
    /// honest member was accused or quarantined). All must be zero.
    pub violations: BTreeMap<&'static str, u64>,
    /// The slowest recovery after the last heal, virtual milliseconds (of the seeds that
    /// recovered).
    pub worst_recovery_ms: u64,
    /// Seeds that did not recover within [`RECOVERY_BOUND`] (also counted as `no_recovery`).
    pub unrecovered: u64,
    /// The commands that replay the failing seeds (the first 20).
    pub failed: Vec<String>,
}

impl Sweep {
    /// Whether every seed held every invariant.
    pub fn held(&self) -> bool {
        self.violations.values().all(|v| *v == 0)
    }
}

/// Runs the `nemesis` scenario for `seeds` seeds from `first_seed` with `n` members; `seen` is
/// told of each seed's report (or `None` when the run itself panicked) as it ends.
pub fn sweep(
    first_seed: u64,
    seeds: u64,
    n: usize,
    mut seen: impl FnMut(u64, Option<&crate::Report>),
) -> Sweep {
    let mut sweep = Sweep {
        nodes: n,
        first_seed,
        steps_per_seed: crate::NEMESIS_STEPS,
        clock_skew_bound_ms: crate::NEMESIS_CLOCK_SKEW_MS,
        ..Sweep::default()
    };
    for seed in first_seed..first_seed.saturating_add(seeds) {
        let scenario = crate::named("nemesis", seed, n).unwrap();
        let replay = format!("bulwark sim --scenario nemesis --seed {seed} --nodes {n}");
        sweep.seeds_run += 1;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::run(scenario)));
        let Ok(outcome) = run else {
            *sweep.violations.entry("panic").or_default() += 1;
            if sweep.failed.len() < 20 {
                sweep.failed.push(replay);
            }
            seen(seed, None);
            continue;
        };
        let report = crate::Report::new("nemesis", &scenario, &outcome);
        sweep.simulated_ms += u64::try_from(outcome.virtual_ms).unwrap_or(u64::MAX);
        sweep.clients.add(&outcome.clients.tally());
        if let Some(nemesis) = &outcome.nemesis {
            for (kind, count) in &nemesis.faults {
                *sweep.faults.entry(*kind).or_default() += count;
            }
            for (damage, count) in &nemesis.disk_damage {
                *sweep.disk_damage.entry(*damage).or_default() += count;
            }
            sweep.heights_lost += nemesis.heights_lost;
            sweep.disk_ops_refused += nemesis.disk_ops_refused;
            sweep.fail_stops += nemesis.fail_stops;
            sweep.mangled_messages += nemesis.mangled_messages;
            match nemesis.recovery_ms {
                Some(ms) => sweep.worst_recovery_ms = sweep.worst_recovery_ms.max(ms),
                None => sweep.unrecovered += 1,
            }
        }
        if !report.held {
            let checker = match crate::check(&outcome) {
                Err(violation) => violation.checker(),
                Ok(_) if report.false_evidence > 0 => "false_evidence",
                Ok(_) => "episode",
            };
            *sweep.violations.entry(checker).or_default() += 1;
            if sweep.failed.len() < 20 {
                sweep.failed.push(replay);
            }
        }
        seen(seed, Some(&report));
    }
    sweep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_a_function_of_the_seed_and_picks_distinct_pairs() {
        let take = |seed| {
            let mut draw = Draw(seed);
            (0..64).map(|_| draw.next()).collect::<Vec<_>>()
        };
        assert_eq!(take(7), take(7));
        assert_ne!(take(7), take(8));
        let mut draw = Draw(1);
        for n in [2usize, 4, 7, 10] {
            for _ in 0..1_000 {
                let (a, b) = draw.pair(n);
                assert!(a < n && b < n && a != b);
            }
        }
        for _ in 0..1_000 {
            let d = draw.millis(300, 4_000);
            assert!(d >= Duration::from_millis(300) && d <= Duration::from_millis(4_000));
        }
    }
}
