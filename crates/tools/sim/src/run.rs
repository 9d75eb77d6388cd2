//! One seeded run of the whole committee: start it, inject the scenario's faults, check that
//! the live members go on, then verify every honest member's log.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use crate::forgery::{try_forgeries, Forgery};
use crate::scenario::{Outcome, Scenario};
use crate::world::World;
use bulwark_consensus::evidence::Kind;
use bulwark_consensus::log::LOG_BLOB;
use bulwark_consensus::replica::PublicKey;
use bulwark_consensus::verify::verify_log;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_runtime::{deterministic, Blob as _, Clock, Runner as _, Storage as _, Supervisor};
use commonware_utils::ordered::Set;
use commonware_utils::N3f1;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Runs `scenario` on commonware's deterministic runtime and simulated network. The same
/// scenario (seed included) always gives the same outcome.
pub fn run(scenario: Scenario) -> Outcome {
    // With skewed clocks, the true time starts far enough past the Unix epoch that no clock
    // reads before it.
    let config = deterministic::Config::new()
        .with_seed(scenario.seed)
        .with_start_time(
            std::time::UNIX_EPOCH + Duration::from_millis(scenario.clock_skew_ms.saturating_mul(2)),
        )
        .with_timeout(Some(Duration::from_secs(600)));
    let runner = deterministic::Runner::new(config);
    runner.start(|context| async move {
        let mut world = World::new(context, scenario).await;
        let episode = world.watch_episode();
        let honest: Vec<usize> = (0..scenario.n)
            .filter(|i| {
                !scenario.garbage.contains(i)
                    && !scenario.block_flooders.contains(i)
                    && !scenario.equivocators.contains(i)
                    && !scenario.tampered.contains(i)
            })
            .collect();
        if scenario.admission {
            world.admit().await;
        }
        for accuser in scenario.false_accusers {
            // A hostile member signs its accusation whatever its own evidence says.
            world.accuse_falsely(*accuser, 0);
        }
        world.wait_for(scenario.height_before, &honest).await;
        if let Some(silent) = scenario.silent {
            world.stop(silent);
        }
        for _ in 0..2 {
            world.audit_round();
        }
        if let Some(member) = scenario.restart_in_reshare {
            // Mid-reshare: it deals the same polynomial again after its restart.
            world.wait_for_quarantine().await;
            world.stop(member);
            world.context.sleep(Duration::from_secs(1)).await;
            world.members[member] = world.launch(member, 1).await;
        }
        if scenario.expect_removal {
            world.wait_for_removal().await;
        }
        if let Some(member) = scenario.readmit {
            // Removed: it comes back from its own storage and follows the log.
            world.members[member] = world.launch(member, 1).await;
            world.readmit(member).await;
        }
        if let Some(member) = scenario.restart_in_reshare {
            // In the new epoch: it resumes there from its own storage (boundary and share).
            world.context.sleep(Duration::from_millis(500)).await;
            world.stop(member);
            world.context.sleep(Duration::from_millis(500)).await;
            world.members[member] = world.launch(member, 2).await;
        }
        inject(&mut world, &honest).await;
        if !scenario.forged_catch_up.is_empty() {
            world.wait_for_followers().await;
        }
        let nemesis = match scenario.nemesis {
            0 => None,
            steps => Some(world.nemesis(steps).await),
        };
        // The tracked clients stop sending and get what they have in flight decided.
        world.drain_clients().await;
        let episode = world.close_episode(&episode);
        let (verified, forgeries) = verify_logs(&mut world, &honest).await;
        let mut outcome = outcome(&world, verified, forgeries, episode);
        outcome.nemesis = nemesis;
        outcome
    })
}

/// The scenario's faults, in order, each followed by a check that the live members go on.
async fn inject(world: &mut World, honest: &[usize]) {
    let scenario = world.scenario;
    let mut live = honest.to_vec();
    if scenario.split {
        world.split().await;
    }
    if let Some(isolated) = scenario.isolate {
        world.isolate(isolated, false).await;
        live.retain(|&i| i != isolated);
    }
    if scenario.power_cut {
        live.retain(|&i| Some(i) != scenario.stays_down);
        world.power_cut(&live).await;
    }
    if let Some(crash) = scenario.crash {
        world.stop(crash);
        live.retain(|&i| i != crash);
    }
    let start = world.height(live[0]);
    world
        .wait_for(
            start.max(scenario.height_before) + scenario.height_after,
            &live,
        )
        .await;
    if let Some(isolated) = scenario.isolate {
        world.isolate(isolated, true).await;
        let target = world.height(live[0]);
        world.wait_for(target, honest).await;
    }
    if let (Some(crashed), true) = (scenario.crash, scenario.restart) {
        world.restart(crashed).await;
        let target = world.height(live[0]) + 5;
        world.wait_for(target, honest).await;
    }
}

/// Stops every member, then checks that each honest member's finalized log verifies from
/// genesis against the group key alone, and (without a crash) that one flipped byte makes it
/// fail. Returns the heights each log verified.
async fn verify_logs(world: &mut World, honest: &[usize]) -> (Vec<u64>, Vec<Forgery>) {
    let identity = *world.output.public().public();
    for index in 0..world.members.len() {
        world.stop(index);
    }
    // Let the aborted tasks drop (and close their logs).
    let context = world.context.child("logs");
    context.sleep(Duration::from_millis(10)).await;
    let genesis = world.genesis.clone();
    let verify = |partition: String| {
        let context = context.child("verify");
        let genesis = genesis.clone();
        async move {
            let mut rng = context.child("rng");
            verify_log(
                &context,
                &partition,
                genesis,
                identity,
                &mut rng,
                None,
                |_| {},
            )
            .await
        }
    };
    let mut verified = Vec::new();
    for &index in honest {
        let summary = verify(format!("node-{index}-finalized"))
            .await
            .unwrap_or_else(|e| panic!("member {index}'s log must verify: {e}"));
        verified.push(summary.heights);
    }
    let forgeries = if world.scenario.forged_logs {
        let (other, _) = deal::<MinSig, PublicKey, N3f1>(
            &mut context.child("other_committee"),
            Mode::NonZeroCounter,
            Set::try_from(world.by_index.clone()).unwrap(),
        )
        .unwrap();
        try_forgeries(
            &context,
            &format!("node-{}-finalized", honest[0]),
            &world.genesis,
            identity,
            *other.public().public(),
        )
        .await
    } else {
        Vec::new()
    };
    if world.scenario.crash.is_none() {
        let partition = format!("node-{}-finalized", honest[0]);
        let (blob, size) = context.open(&partition, LOG_BLOB).await.unwrap();
        let at = size / 2;
        let byte = blob
            .read_at(at, 1, Default::default())
            .await
            .unwrap()
            .coalesce();
        blob.write_at(
            at,
            vec![byte.as_ref()[0] ^ 0x01],
            commonware_runtime::WriteOptions::SYNC,
        )
        .await
        .unwrap();
        drop(blob);
        assert!(
            verify(partition).await.is_err(),
            "a flipped byte must fail verification"
        );
    }
    (verified, forgeries)
}

/// What the run produced.
fn outcome(
    world: &World,
    verified: Vec<u64>,
    forgeries: Vec<Forgery>,
    episode: crate::episode::Episode,
) -> Outcome {
    const FAULTS: [Kind; 8] = [
        Kind::RefusedProposal,
        Kind::MalformedBlock,
        Kind::MalformedRequest,
        Kind::MalformedCatchUp,
        Kind::ConflictingNotarize,
        Kind::ConflictingFinalize,
        Kind::ImplausibleOracleRound,
        Kind::Contraindicated,
    ];
    let virtual_ms = crate::world::unix_ms(&world.context);
    Outcome {
        ledgers: world
            .ledgers
            .iter()
            .map(|l| l.lock().unwrap().clone())
            .collect(),
        superseded: world.superseded.clone(),
        refused: world
            .refused
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect(),
        crashed: world.scenario.crash,
        byzantine: world.scenario.byzantine,
        tampered: world.scenario.tampered,
        oracle_faults: world
            .evidence
            .iter()
            .map(|log| {
                world
                    .by_index
                    .iter()
                    .map(|peer| log.against(peer, &Kind::OracleFault))
                    .collect()
            })
            .collect(),
        evidence: world
            .evidence
            .iter()
            .map(|log| {
                world
                    .by_index
                    .iter()
                    .map(|peer| FAULTS.iter().map(|kind| log.against(peer, kind)).sum())
                    .collect()
            })
            .collect(),
        verified,
        forgeries,
        episode,
        deposits: world.scenario.chain.then(|| world.deposit_tallies()),
        epochs: world
            .members
            .iter()
            .map(|m| {
                let status = *m.epoch.lock().unwrap();
                (status.epoch, status.participating)
            })
            .collect(),
        oracle: world
            .views
            .iter()
            .map(|view| {
                let engine = view.lock().unwrap().engine.clone();
                (
                    engine.oracle_last_round(0).unwrap_or(0),
                    engine.index_price(0),
                )
            })
            .collect(),
        block_store: world
            .stats
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                (s.blocks_held, s.blocks_dropped)
            })
            .collect(),
        quarantined: world
            .views
            .iter()
            .map(|view| {
                let engine = view.lock().unwrap().engine.clone();
                let convicted: Vec<[u8; 32]> = engine
                    .membership()
                    .map(|m| {
                        m.records()
                            .map(|(key, _)| *key)
                            .filter(|key| !m.is_admitted(key))
                            .collect()
                    })
                    .unwrap_or_default();
                world.replicas_of(&convicted)
            })
            .collect(),
        oracle_clock_round: world
            .scenario
            .oracle
            .then(|| bulwark_consensus::oracle_feed::round_at(virtual_ms, world.venue_epoch_ms)),
        virtual_ms: u128::from(virtual_ms),
        restored: world
            .stats
            .iter()
            .map(|s| s.lock().unwrap().restored_snapshot)
            .collect(),
        nemesis: None,
        clients: world.clients_outcome(),
    }
}
