//! The seeded whole-committee simulator: n members running the production wiring
//! (`bulwark_consensus::committee::start_member`) on commonware's deterministic runtime and
//! simulated network, with crashes, restarts, partitions, splits, lossy links, oracle rounds and
//! the hostile members in [`hostile`]. The same seed always gives the same run.
//!
//! Start at [`Scenario`] (what to do to the committee), then [`run`] and [`check`] (the
//! invariants every run must hold). Tests call these directly; `bulwark sim --scenario NAME`
//! runs the [`named`] scenarios and prints a [`Report`]. The oracle-only scenarios (one engine
//! under market manipulations) live in `bulwark_oracle::scenario` and are listed here too.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admission;
mod check;
pub mod clients;
mod custody;
pub mod disk;
pub mod episode;
mod faults;
mod faulty;
pub mod forgery;
pub mod hostile;
mod launch_forgery;
mod mangle;
pub mod member_attacks;
pub mod nemesis;
mod run;
mod scenario;
#[cfg(feature = "recorded-samples")]
pub mod tee_admission;
mod world;

pub use check::{check, Summary, Violation};
pub use member_attacks::{run_member_attack, MemberReport, MEMBER_SCENARIOS};
pub use run::run;
pub use scenario::{Outcome, Scenario};
pub use world::DepositTally;

use commonware_utils::probability;
use serde::Serialize;

/// The committee scenarios `bulwark sim` runs by name, with what each does.
pub const COMMITTEE_SCENARIOS: &[(&str, &str)] = &[
    ("honest", "every member honest on perfect links, 30 heights"),
    ("crash", "member 3 crashes at height 15; the others go on"),
    (
        "crash-restart",
        "member 1 crashes at 12, restarts from its log and snapshot, catches up",
    ),
    ("lossy", "5 % of messages lost and member 1 crashed"),
    (
        "isolate",
        "member 2 cut off from everyone, then healed; it catches up",
    ),
    (
        "power-cut",
        "the whole committee loses power mid-round and restarts from disk",
    ),
    (
        "wrong-root",
        "member 0 proposes blocks with a wrong parent root",
    ),
    (
        "equivocator",
        "member 0 signs two proposals in every view it votes in",
    ),
    (
        "garbage-flood",
        "member 0 floods every channel with random bytes",
    ),
    (
        "split",
        "the committee split in two halves without quorum, then healed",
    ),
    (
        "oracle",
        "index prices only from oracle rounds 2f+1 members signed, one member lying",
    ),
    (
        "block-flood",
        "member 0 floods everyone with well-formed blocks nobody asked for",
    ),
    (
        "tampered-member",
        "member 0 runs a tampered binary; every other member's admission cuts it off",
    ),
    (
        "malleable-signatures",
        "client 1 adds a small-order point to R of every signature it makes",
    ),
    (
        "oracle-far-future",
        "member 1 signs oracle observations for rounds 2^63 and u64::MAX to occupy every pool",
    ),
    (
        "tampered-binary",
        "member 0 runs a tampered binary: every other member's appraisal contraindicates it, each accuses it, and f+1 accusations quarantine it",
    ),
    (
        "false-accusations",
        "f members accuse honest member 0 of a contraindicated appraisal: nothing happens",
    ),
    (
        "oracle-equivocation",
        "member 1 signs two different oracle observations every round, one per half of the committee; the sentinel quarantines it on its own signatures",
    ),
    (
        "equivocating-leader",
        "member 0 signs two conflicting votes in every view it votes in; every member that sees both accuses it, and f+1 accusations remove it at the next epoch",
    ),
    (
        "lying-oracle-member",
        "member 1 reports twice the price every oracle round; the engine records its oracle faults, every member accuses it, and f+1 accusations remove it",
    ),
    (
        "silent-member",
        "member n-1 goes silent (crashes for good); after the policy's silence_views without its votes every member accuses it, and it is removed",
    ),
    (
        "failed-audit",
        "member 2's signed configuration audit reports fail; every member that verifies them accuses it, and it is removed",
    ),
    (
        "forged-catch-up",
        "member 2's audits fail and it is removed; it then follows the log by certified catch-up, while member 1 (honest in consensus) answers its catch-up requests with forged records: every forgery is refused and recorded, and member 2 follows the log from the others",
    ),
    (
        "readmission",
        "member n-1 goes silent and is removed; it restarts, follows the log by certified catch-up, takes the ending epoch's public output from the members (member 1 sends a forged one, refused), and is re-admitted by f+1 members' affirmations: it signs again in the epoch after",
    ),
    (
        "compromised-data-center",
        "f members (one data center) run tampered binaries at once; all f are quarantined and removed at one epoch change, the rest keep trading",
    ),
    (
        "restart-in-reshare",
        "member 0 runs a tampered binary; honest member 1 crashes when the quarantine lands (mid-reshare), restarts, and crashes and restarts again in the new epoch",
    ),
    (
        "lying-chain-source",
        "f members' chain sources lie: they attest every real deposit at ten times its amount and a deposit that never happened in every chain block; only the real deposits are credited, each once and at its amount",
    ),
    (
        "equivocating-chain-source",
        "member 1 signs every real deposit twice, at its amount and at ten times it: its two signatures for one outpoint quarantine it on their own, it is removed at the next epoch, and deposits are credited once at their amount throughout",
    ),
    (
        "nemesis",
        "the nemesis: one seeded schedule of 12 steps, each one or two faults at once (isolation, one-way and flapping links, partitions, 40 % loss, 150 ± 120 ms delay, crashes, the whole committee crashed, a crashed member's disk damaged, one link's messages duplicated or reordered), held up to 4 s and healed, with the oracle committee certifying rounds throughout and every member's clock off the true time by up to ± 2 s; a cut-off member or a committee without quorum must not finalize meanwhile, and every member must be 3 heights further within 60 s of the last heal",
    ),
    (
        "replaying-proposer",
        "member 0 puts the transactions of the block it last committed into every block it proposes: the engine refuses them as stale nonces, and no member tells a client a second receipt",
    ),
    (
        "forged-log",
        "a node's disk hands bulwark verify forged logs with valid checksums: moved and forged certificates, another committee's key, a wrong root, a swapped block, an uncovered --until tail, an --until past the end",
    ),
];

/// The scenario `name` at `seed` with `n` members (4 or 7; any n = 3f + 1 works), or `None` for
/// an unknown name.
pub fn named(name: &str, seed: u64, n: usize) -> Option<Scenario> {
    let base = Scenario::new(seed, n);
    let scenario = match name {
        "honest" => Scenario {
            height_before: 30,
            ..base
        },
        "crash" => Scenario {
            height_before: 15,
            crash: Some(n - 1),
            height_after: 20,
            ..base
        },
        "crash-restart" => Scenario {
            height_before: 12,
            crash: Some(1),
            restart: true,
            height_after: 25,
            ..base
        },
        "lossy" => Scenario {
            height_before: 15,
            crash: Some(1),
            height_after: 15,
            success_rate: probability!(0.95),
            ..base
        },
        "isolate" => Scenario {
            isolate: Some(2),
            height_after: 40,
            ..base
        },
        "power-cut" => Scenario {
            height_before: 6 + seed % 7,
            power_cut: true,
            height_after: 10,
            ..base
        },
        "wrong-root" => Scenario {
            height_before: 25,
            byzantine: &[0],
            ..base
        },
        "equivocator" => Scenario {
            height_before: 20,
            equivocators: &[0],
            ..base
        },
        "garbage-flood" => Scenario {
            height_before: 20,
            garbage: &[0],
            ..base
        },
        "split" => Scenario {
            split: true,
            height_after: 15,
            ..base
        },
        "oracle" => Scenario {
            height_before: 250,
            byzantine: &[1],
            oracle: true,
            ..base
        },
        "block-flood" => Scenario {
            height_before: 30,
            block_flooders: &[0],
            ..base
        },
        "tampered-member" => Scenario {
            height_before: 30,
            admission: true,
            tampered: &[0],
            ..base
        },
        "malleable-signatures" => Scenario {
            height_before: 40,
            malleating_client: Some(1),
            ..base
        },
        "oracle-far-future" => Scenario {
            height_before: 600,
            far_future_oracle: &[1],
            oracle: true,
            ..base
        },
        "tampered-binary" => Scenario {
            expect_removal: true,
            height_after: 20,
            height_before: 60,
            admission: true,
            tampered: &[0],
            oracle: true,
            ..base
        },
        "false-accusations" => Scenario {
            height_before: 60,
            false_accusers: if n >= 7 { &[5, 6] } else { &[3] },
            oracle: true,
            ..base
        },
        "oracle-equivocation" => Scenario {
            expect_removal: true,
            height_after: 20,
            height_before: 120,
            equivocating_oracle: &[1],
            oracle: true,
            ..base
        },
        "equivocating-leader" => Scenario {
            height_before: 30,
            equivocators: &[0],
            oracle: true,
            expect_removal: true,
            height_after: 20,
            ..base
        },
        "lying-oracle-member" => Scenario {
            height_before: 30,
            lying_oracle: &[1],
            oracle: true,
            expect_removal: true,
            height_after: 20,
            ..base
        },
        "silent-member" => Scenario {
            height_before: 30,
            silent: Some(n - 1),
            oracle: true,
            expect_removal: true,
            height_after: 20,
            ..base
        },
        "failed-audit" => Scenario {
            height_before: 30,
            failed_audit: &[2],
            oracle: true,
            expect_removal: true,
            height_after: 20,
            ..base
        },
        "forged-catch-up" => Scenario {
            height_before: 30,
            failed_audit: &[2],
            forged_catch_up: &[1],
            oracle: true,
            expect_removal: true,
            height_after: 30,
            ..base
        },
        "readmission" => Scenario {
            height_before: 30,
            silent: Some(n - 1),
            readmit: Some(n - 1),
            forged_catch_up: &[1],
            oracle: true,
            expect_removal: true,
            height_after: 20,
            ..base
        },
        "compromised-data-center" => Scenario {
            height_before: 60,
            admission: true,
            tampered: if n >= 7 { &[0, 1] } else { &[0] },
            oracle: true,
            expect_removal: true,
            height_after: 20,
            ..base
        },
        "restart-in-reshare" => Scenario {
            height_before: 30,
            admission: true,
            tampered: &[0],
            oracle: true,
            expect_removal: true,
            restart_in_reshare: Some(1),
            height_after: 20,
            ..base
        },
        "equivocating-chain-source" => Scenario {
            height_before: 40,
            oracle: true,
            chain: true,
            equivocating_chain: &[1],
            expect_removal: true,
            height_after: 20,
            ..base
        },
        "lying-chain-source" => Scenario {
            height_before: 80,
            // The sentinel's committee (the oracle members) is the one deposits are certified by.
            oracle: true,
            chain: true,
            lying_chain: if n >= 7 { &[1, 2] } else { &[1] },
            ..base
        },
        "replaying-proposer" => Scenario {
            height_before: 40,
            replayers: &[0],
            ..base
        },
        "forged-log" => Scenario {
            height_before: 20,
            forged_logs: true,
            ..base
        },
        "nemesis" => Scenario {
            height_before: 10,
            nemesis: NEMESIS_STEPS,
            clock_skew_ms: NEMESIS_CLOCK_SKEW_MS,
            oracle: true,
            ..base
        },
        _ => return None,
    };
    Some(scenario)
}

/// How far off the true time each member's clock is in the `nemesis` scenario, at most
/// (milliseconds, either way; each member's offset comes from the seed).
///
/// Within what the venue tolerates between honest members: their clocks differ by at most
/// twice this (4 s), under the oracle pools' `FUTURE_ROUNDS` (5 one-second rounds) and the
/// blocks' `BLOCK_TIME_SKEW_MS_MAX` (10 s).
pub const NEMESIS_CLOCK_SKEW_MS: u64 = 2_000;
/// Steps of the `nemesis` scenario (and of each seed of `bulwark sim --nemesis`).
pub const NEMESIS_STEPS: u32 = 12;

/// The forged logs of a `forged-log` run.
#[derive(Debug, Clone, Serialize)]
pub struct ForgedLogs {
    /// Every forgery handed to the verifier.
    pub tried: Vec<&'static str>,
    /// Those it accepted (the attacker's win; must be empty).
    pub accepted: Vec<&'static str>,
}

/// One run's report, as `bulwark sim` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// What the scenario does (the attack, for a hostile one).
    pub attack: String,
    /// Its seed.
    pub seed: u64,
    /// Committee size.
    pub nodes: usize,
    /// Every invariant held.
    pub held: bool,
    /// Heights every live member finalized during the run (the least of them).
    pub height_progress: u64,
    /// What the run achieved, when it held.
    pub summary: Option<Summary>,
    /// The broken invariant, when it did not.
    pub violation: Option<String>,
    /// The members that played the attacker (wrong roots, equivocation, garbage).
    pub hostile: Vec<usize>,
    /// Fault records honest members hold against hostile ones.
    pub evidence_against_hostile: usize,
    /// Fault records honest members hold against honest ones (must be 0).
    pub false_evidence: usize,
    /// Proposals the members refused.
    pub refused: u64,
    /// Members the honest members' sentinels quarantined (replica indices).
    pub quarantined: Vec<usize>,
    /// Forged logs handed to the log verifier (`forged-log`), and those it accepted (must be
    /// none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forged_logs: Option<ForgedLogs>,
    /// The sentinel's episode (scenarios with a sentinel committee): who left at which epoch,
    /// how long it took, whether blocks kept finalizing, the identity before and after, and
    /// whether a removed member's old share still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<episode::Episode>,
    /// Chain deposits (scenarios with a chain), per member: outpoints credited, how many of
    /// them the chain really paid, made-up ones credited and micros beyond the chain's amounts
    /// (the last two must be 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deposits: Option<Vec<world::DepositTally>>,
    /// With the nemesis: the faults it injected and the recovery after the last heal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<nemesis::NemesisReport>,
    /// The command that replays this run.
    pub replay: String,
}

impl Report {
    /// The report of `outcome`, a run of `scenario` named `name`.
    pub fn new(name: &str, scenario: &Scenario, outcome: &Outcome) -> Report {
        let mut hostile: Vec<usize> = scenario
            .byzantine
            .iter()
            .chain(scenario.equivocators)
            .chain(scenario.garbage)
            .chain(scenario.block_flooders)
            .chain(scenario.far_future_oracle)
            .chain(scenario.equivocating_oracle)
            .chain(scenario.false_accusers)
            .chain(scenario.tampered)
            .chain(scenario.lying_oracle)
            .chain(scenario.failed_audit)
            .chain(scenario.lying_chain)
            .chain(scenario.equivocating_chain)
            .chain(scenario.forged_catch_up)
            .chain(scenario.replayers)
            .chain(scenario.silent.as_slice())
            .copied()
            .collect();
        hostile.sort_unstable();
        hostile.dedup();
        let mut against_hostile = 0;
        let mut false_evidence = 0;
        for (holder, row) in outcome.evidence.iter().enumerate() {
            if hostile.contains(&holder) {
                continue;
            }
            for (accused, count) in row.iter().enumerate() {
                if hostile.contains(&accused) {
                    against_hostile += count;
                } else {
                    false_evidence += count;
                }
            }
        }
        // A member an honest member's sentinel quarantined: who, and whether it was honest.
        let mut quarantined: Vec<usize> = Vec::new();
        for (holder, convicted) in outcome.quarantined.iter().enumerate() {
            if hostile.contains(&holder) || Some(holder) == outcome.crashed {
                continue;
            }
            for member in convicted {
                if !hostile.contains(member) {
                    false_evidence += 1;
                }
                if !quarantined.contains(member) {
                    quarantined.push(*member);
                }
            }
        }
        quarantined.sort_unstable();
        let checked = check(outcome);
        let height_progress = outcome
            .ledgers
            .iter()
            .enumerate()
            .filter(|(member, _)| Some(*member) != outcome.crashed && !hostile.contains(member))
            .map(|(_, ledger)| ledger.len() as u64)
            .min()
            .unwrap_or(0);
        // The sentinel's promises: a removal scenario removes exactly its culprits at one epoch
        // change, keeps the identity and voids the old shares; nobody honest is ever removed.
        let episode = &outcome.episode;
        let removed_honest = episode.removed.iter().any(|(m, _)| !hostile.contains(m));
        let episode_held = !removed_honest
            && (!scenario.expect_removal
                || (!episode.removed.is_empty()
                    && episode.identity_after.as_deref()
                        == Some(episode.identity_before.as_str())
                    && episode.old_share_verified_before == Some(true)
                    && episode.old_share_verifies_after == Some(false)));
        Report {
            scenario: name.to_string(),
            attack: COMMITTEE_SCENARIOS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or_else(String::new, |(_, what)| (*what).to_string()),
            height_progress,
            seed: scenario.seed,
            nodes: scenario.n,
            held: checked.is_ok() && false_evidence == 0 && episode_held,
            summary: checked.as_ref().ok().cloned(),
            violation: checked.err().map(|v| v.to_string()),
            hostile,
            evidence_against_hostile: against_hostile,
            false_evidence,
            refused: outcome.refused.iter().sum(),
            quarantined,
            forged_logs: (!outcome.forgeries.is_empty()).then(|| ForgedLogs {
                tried: outcome.forgeries.iter().map(|f| f.name).collect(),
                accepted: outcome
                    .forgeries
                    .iter()
                    .filter(|f| f.refused_with.is_none())
                    .map(|f| f.name)
                    .collect(),
            }),
            episode: scenario.oracle.then(|| outcome.episode.clone()),
            deposits: outcome.deposits.clone(),
            nemesis: outcome.nemesis.clone(),
            replay: format!(
                "bulwark sim --scenario {name} --seed {} --nodes {}",
                scenario.seed, scenario.n
            ),
        }
    }
}
