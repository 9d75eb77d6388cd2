//! One seeded run of the whole committee.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use bulwark_consensus::committee::{
    max_message_size, start_member, Channels, MemberConfig, Timing, CHANNEL_BLOCKS,
    CHANNEL_CERTIFICATES, CHANNEL_REQUESTS, CHANNEL_RESOLVER, CHANNEL_VOTES, CONSENSUS_NAMESPACE,
};
use bulwark_consensus::evidence::{EvidenceLog, Kind};
use bulwark_consensus::genesis::{try_genesis, GenesisAccount};
use bulwark_consensus::log::LOG_BLOB;
use bulwark_consensus::mempool::{MempoolConfig, Origin, Refusal};
use bulwark_consensus::oracle_feed::{OraclePool, SharedPool, SyntheticFeed};
use bulwark_consensus::replica::{
    Config as ReplicaConfig, Fault, Ledger, Mempool, PublicKey, Scheme, SharedStats,
};
use bulwark_consensus::verify::verify_log;
use bulwark_engine::oracle::OracleConfig;
use bulwark_engine::AccountId;
use commonware_codec::Encode as _;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::{ed25519, Signer as _};
use commonware_p2p::simulated::{self, Link, Network};
use commonware_runtime::{
    deterministic, Blob as _, Clock, Quota, Runner as _, Spawner, Storage as _, Supervisor,
};
use commonware_utils::{ordered::Set, N3f1, NZUsize, NZU32};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use crate::hostile::{equivocate, flood_garbage};
use crate::scenario::{Outcome, Scenario};
use bulwark_testkit::{client_key, signed_crossing_order};

/// Funded client accounts (1..=CLIENTS), each submitting crossing orders.
const CLIENTS: u64 = 8;
/// One US dollar in micros.
const USD: i64 = 1_000_000;
/// The seed of the simulated clients' DEVELOPMENT keys.
const CLIENT_SEED: u64 = 0x5151;

/// Runs `scenario` on commonware's deterministic runtime and simulated network. The same
/// scenario (seed included) always gives the same outcome.
pub fn run(scenario: Scenario) -> Outcome {
    let config = deterministic::Config::new()
        .with_seed(scenario.seed)
        .with_timeout(Some(Duration::from_secs(600)));
    let runner = deterministic::Runner::new(config);
    runner.start(|mut context| async move {
        let n = scenario.n;
        // Identities and the INSECURE trusted dealer (a real committee runs the DKG).
        let keys: Vec<ed25519::PrivateKey> =
            (0..n as u64).map(ed25519::PrivateKey::from_seed).collect();
        let participants =
            Set::try_from(keys.iter().map(|k| k.public_key()).collect::<Vec<_>>()).unwrap();
        let (output, shares) = deal::<MinSig, PublicKey, N3f1>(
            &mut context,
            Mode::NonZeroCounter,
            participants.clone(),
        )
        .expect("dealing to a non-empty committee must succeed");
        let by_index: Vec<PublicKey> = participants.iter().cloned().collect();

        // Genesis: funded client accounts and an index price.
        let accounts: Vec<GenesisAccount> = (1..=CLIENTS)
            .map(|a| GenesisAccount {
                account: AccountId(a),
                public_key: client_key(CLIENT_SEED, a).verifying_key().to_bytes(),
                deposit_micros: 1_000_000 * USD,
            })
            .collect();
        // With `scenario.oracle`, every member signs oracle observations with its own key and
        // the index moves only by rounds certified through consensus.
        // Each member signs observations with its node key, as `bulwark up` sets it up, so
        // oracle fault evidence names the member's p2p identity.
        let oracle_keys: Vec<ed25519_dalek::SigningKey> = keys
            .iter()
            .map(|k| {
                ed25519_dalek::SigningKey::from_bytes(&k.encode().as_ref().try_into().unwrap())
            })
            .collect();
        let member_keys: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let oracle_config = if scenario.oracle {
            OracleConfig {
                members: oracle_keys
                    .iter()
                    .map(|k| k.verifying_key().to_bytes())
                    .collect(),
                f: u32::try_from((n - 1) / 3).unwrap(),
                // A short streak, so that a run of a few virtual seconds completes one.
                fault_rounds: 4,
                ..OracleConfig::default()
            }
        } else {
            OracleConfig::default()
        };
        let (genesis_engine, genesis_digest) = try_genesis(
            &accounts,
            &[60_000 * USD, 3_000 * USD],
            oracle_config.clone(),
        )
        .unwrap();
        let pools: Vec<SharedPool> = (0..n)
            .map(|_| Arc::new(Mutex::new(OraclePool::new(oracle_config.clone(), 2))))
            .collect();
        let views: Vec<Arc<Mutex<Arc<bulwark_engine::Engine>>>> = (0..n)
            .map(|_| Arc::new(Mutex::new(Arc::new(genesis_engine.clone()))))
            .collect();
        let venue_epoch_ms = u64::try_from(
            context
                .current()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();

        // Simulated network, channels 0 votes, 1 certificates, 2 resolver, 3 blocks,
        // 4 block requests.
        let max_size = max_message_size(u32::try_from(n).unwrap());
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size,
                max_peers_per_set: NZUsize!(n),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            by_index.clone(),
        )
        .await;
        network.start();
        let link = Link {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(3),
            success_rate: scenario.success_rate,
        };
        for a in &by_index {
            for b in &by_index {
                if a != b {
                    oracle
                        .add_link(a.clone(), b.clone(), link.clone())
                        .await
                        .unwrap();
                }
            }
        }

        let quota = Quota::per_second(NZU32!(10_000));
        let mempools: Vec<Mempool> = (0..n)
            .map(|_| Mempool::new(MempoolConfig::default()))
            .collect();
        let ledgers: Vec<Ledger> = (0..n).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
        let refused: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let evidence: Vec<EvidenceLog> = (0..n).map(|_| EvidenceLog::default()).collect();
        let stats: Vec<SharedStats> = (0..n).map(|_| SharedStats::default()).collect();
        // Starts (or restarts, on the same storage) member `index`: registers its channels,
        // replays its finalized log, starts simplex and the replica.
        let launch = |index: usize, boot: usize| {
            let control = oracle.control(by_index[index].clone());
            let node = context
                .child("node")
                .with_attribute("index", index)
                .with_attribute("boot", boot);
            let share = shares
                .get_value(&by_index[index])
                .expect("every participant must have a share")
                .clone();
            let scheme = Scheme::signer(
                CONSENSUS_NAMESPACE,
                participants.clone(),
                output.public().clone(),
                share,
            )
            .expect("a participant's share must give a signer");
            let replica = ReplicaConfig {
                genesis: (genesis_engine.clone(), genesis_digest),
                venue_epoch_ms,
                mempool: mempools[index].clone(),
                ledger: ledgers[index].clone(),
                refused: refused[index].clone(),
                block_txs_max: 256,
                verify_threads: 1,
                mailbox_size: 1024,
                fault: if scenario.byzantine.contains(&index) {
                    Fault::WrongRoot
                } else {
                    Fault::None
                },
                oracle: scenario.oracle.then(|| pools[index].clone()),
                stats: stats[index].clone(),
                evidence: evidence[index].clone(),
                participants: by_index.clone(),
                view: views[index].clone(),
                log_partition: format!("node-{index}-finalized"),
                held_partition: format!("node-{index}-held"),
                snapshot_partition: format!("node-{index}-snapshots"),
                // Often, so that restarts in the simulation restore from snapshots.
                snapshot_every: 4,
                ledger_kept: usize::MAX,
            };
            async move {
                let channels = Channels {
                    votes: control.register(CHANNEL_VOTES, quota).await.unwrap(),
                    certificates: control.register(CHANNEL_CERTIFICATES, quota).await.unwrap(),
                    resolver: control.register(CHANNEL_RESOLVER, quota).await.unwrap(),
                    blocks: control.register(CHANNEL_BLOCKS, quota).await.unwrap(),
                    requests: control.register(CHANNEL_REQUESTS, quota).await.unwrap(),
                };
                if scenario.garbage.contains(&index) {
                    return flood_garbage(node, channels);
                }
                if scenario.equivocators.contains(&index) {
                    return equivocate(node, scheme, channels);
                }
                let config = MemberConfig {
                    scheme,
                    replica,
                    genesis_digest,
                    partition_prefix: format!("node-{index}"),
                    timing: Timing::default(),
                };
                start_member(node, config, control.clone(), channels)
                    .await
                    .expect("the member's log must open")
            }
        };
        // Register every member's channels before any engine starts (the simulated network
        // drops messages on channels not yet registered).
        let mut members = Vec::new();
        for index in 0..n {
            members.push(launch(index, 0).await);
        }

        // Oracle feeds: every virtual second each member observes and offers its signed
        // observation to every member's pool (a stand-in for the oracle gossip channel). A
        // member in `scenario.byzantine` reports twice the price.
        if scenario.oracle {
            for (index, key) in oracle_keys.iter().enumerate() {
                let pools = pools.clone();
                let lying = scenario.byzantine.contains(&index);
                let mut feed = SyntheticFeed::new(&[60_000 * USD, 3_000 * USD], 5, key.clone());
                let liar = bulwark_oracle::node::OracleNode::new(
                    bulwark_oracle::node::NodeConfig::equal(3),
                    key.clone(),
                );
                context.child("oracle").spawn(move |context| async move {
                    loop {
                        let now = u64::try_from(
                            context
                                .current()
                                .duration_since(UNIX_EPOCH)
                                .unwrap()
                                .as_millis(),
                        )
                        .unwrap();
                        let venue_ms = now - venue_epoch_ms;
                        let round = venue_ms / 1_000;
                        let mut observations = feed.observe(round, venue_ms);
                        if lying {
                            observations = observations
                                .into_iter()
                                .map(|o| {
                                    let mut forged = o.observation;
                                    forged.price_micros *= 2;
                                    forged.confidence_micros *= 2;
                                    liar.sign(forged)
                                })
                                .collect();
                        }
                        for pool in &pools {
                            for observation in &observations {
                                let _ = pool.lock().unwrap().offer(*observation);
                            }
                        }
                        context
                            .sleep(Duration::from_millis(1_000 - venue_ms % 1_000))
                            .await;
                    }
                });
            }
        }

        // Clients: every 50 ms each account signs its next order and submits it to every
        // replica (a stand-in for the submission endpoint and mempool gossip).
        {
            let mempools = mempools.clone();
            context.child("clients").spawn(move |context| async move {
                let mut k = 0u64;
                loop {
                    for account in 1..=CLIENTS {
                        let tx = signed_crossing_order(CLIENT_SEED, account, k, 600_000);
                        for mempool in &mempools {
                            let keys = |id: AccountId| {
                                Some(client_key(CLIENT_SEED, id.0).verifying_key().to_bytes())
                            };
                            let outcome =
                                mempool.insert_batch(vec![tx.clone()], &keys, Origin::Peer);
                            // A crashed member's pool is not drained, so it fills up: only its
                            // bounds may refuse a well-formed transaction.
                            assert!(
                                outcome.refused.iter().all(|(_, why)| matches!(
                                    why,
                                    Refusal::AccountFull | Refusal::PoolFull
                                )),
                                "{:?}",
                                outcome.refused
                            );
                        }
                    }
                    k += 1;
                    context.sleep(Duration::from_millis(50)).await;
                }
            });
        }

        let height = |ledger: &Ledger| ledger.lock().unwrap().last().map_or(0, |c| c.height);
        let wait_for = |target: u64, live: Vec<usize>| {
            let ledgers = ledgers.clone();
            let context = context.child("waiter");
            async move {
                let mut polls = 0u64;
                while live.iter().any(|&i| height(&ledgers[i]) < target) {
                    context.sleep(Duration::from_millis(100)).await;
                    polls += 1;
                    // Two virtual minutes without reaching the target is a stall, not slowness.
                    assert!(
                        polls < 1_200,
                        "members {live:?} did not reach height {target}: heights {:?}",
                        ledgers.iter().map(height).collect::<Vec<_>>()
                    );
                    if std::env::var_os("SPIKE_TRACE").is_some() && polls.is_multiple_of(10) {
                        let heights: Vec<u64> = ledgers.iter().map(height).collect();
                        eprintln!("t={}ms heights={heights:?}", polls * 100);
                    }
                }
            }
        };
        let honest: Vec<usize> = (0..n)
            .filter(|i| !scenario.garbage.contains(i) && !scenario.equivocators.contains(i))
            .collect();
        wait_for(scenario.height_before, honest.clone()).await;
        let mut live = honest.clone();
        if scenario.split {
            let half = n / 2;
            let cut = |a: usize, b: usize| (a < half) != (b < half);
            for a in 0..n {
                for b in 0..n {
                    if a != b && cut(a, b) {
                        oracle
                            .remove_link(by_index[a].clone(), by_index[b].clone())
                            .await
                            .unwrap();
                    }
                }
            }
            let at_split: Vec<u64> = ledgers.iter().map(height).collect();
            context.sleep(Duration::from_secs(3)).await;
            for (index, ledger) in ledgers.iter().enumerate() {
                assert!(
                    height(ledger) <= at_split[index] + 1,
                    "member {index} finalized without a quorum"
                );
            }
            for a in 0..n {
                for b in 0..n {
                    if a != b && cut(a, b) {
                        oracle
                            .add_link(by_index[a].clone(), by_index[b].clone(), link.clone())
                            .await
                            .unwrap();
                    }
                }
            }
        }
        if let Some(isolated) = scenario.isolate {
            for (i, peer) in by_index.iter().enumerate() {
                if i != isolated {
                    oracle
                        .remove_link(by_index[isolated].clone(), peer.clone())
                        .await
                        .unwrap();
                    oracle
                        .remove_link(peer.clone(), by_index[isolated].clone())
                        .await
                        .unwrap();
                }
            }
            live.retain(|&i| i != isolated);
        }
        if scenario.power_cut {
            context
                .sleep(Duration::from_millis(scenario.seed * 37 % 250))
                .await;
            for member in &members {
                member.abort();
            }
            // Let the aborted tasks drop (and release their storage).
            context.sleep(Duration::from_millis(10)).await;
            let at_cut = ledgers.iter().map(height).max().unwrap_or(0);
            live.retain(|&i| Some(i) != scenario.stays_down);
            for &index in &live {
                members[index] = launch(index, 1).await;
            }
            eprintln!("power cut at height {at_cut}; members {live:?} restart");
            wait_for(at_cut + scenario.height_after, live.clone()).await;
        }
        if let Some(crash) = scenario.crash {
            members[crash].abort();
            live.retain(|&i| i != crash);
        }
        let start = height(&ledgers[live[0]]);
        wait_for(
            start.max(scenario.height_before) + scenario.height_after,
            live.clone(),
        )
        .await;
        if let Some(isolated) = scenario.isolate {
            let behind = height(&ledgers[isolated]);
            for (i, peer) in by_index.iter().enumerate() {
                if i != isolated {
                    oracle
                        .add_link(by_index[isolated].clone(), peer.clone(), link.clone())
                        .await
                        .unwrap();
                    oracle
                        .add_link(peer.clone(), by_index[isolated].clone(), link.clone())
                        .await
                        .unwrap();
                }
            }
            let target = height(&ledgers[live[0]]);
            eprintln!("replica {isolated} rejoins at height {behind}, others at {target}");
            wait_for(target, honest.clone()).await;
        }
        if let (Some(crashed), true) = (scenario.crash, scenario.restart) {
            let behind = height(&ledgers[crashed]);
            members[crashed] = launch(crashed, 1).await;
            let target = height(&ledgers[live[0]]) + 5;
            eprintln!("replica {crashed} restarts at height {behind}, others at {target}");
            wait_for(target, honest.clone()).await;
        }

        // Every member's finalized log must verify from genesis against the group key alone,
        // and must stop verifying when one byte in it is flipped.
        let identity = *output.public().public();
        for member in &members {
            member.abort();
        }
        // Let the aborted tasks drop (and close their logs).
        context.sleep(Duration::from_millis(10)).await;
        let mut verified = Vec::new();
        for &index in &honest {
            let partition = format!("node-{index}-finalized");
            let summary = verify_log(
                &context,
                &partition,
                (genesis_engine.clone(), genesis_digest),
                identity,
                &mut context.child("verify"),
                None,
                |_| {},
            )
            .await
            .unwrap_or_else(|e| panic!("member {index}'s log must verify: {e}"));
            verified.push(summary.heights);
        }
        if scenario.crash.is_none() {
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
            let flipped = verify_log(
                &context,
                &partition,
                (genesis_engine.clone(), genesis_digest),
                identity,
                &mut context.child("verify"),
                None,
                |_| {},
            )
            .await;
            assert!(flipped.is_err(), "a flipped byte must fail verification");
        }
        let virtual_ms = context
            .current()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        Outcome {
            ledgers: ledgers.iter().map(|l| l.lock().unwrap().clone()).collect(),
            refused: refused.iter().map(|r| r.load(Ordering::Relaxed)).collect(),
            crashed: scenario.crash,
            byzantine: scenario.byzantine,
            oracle_faults: evidence
                .iter()
                .map(|log| {
                    member_keys
                        .iter()
                        .map(|peer| log.against(peer, &Kind::OracleFault))
                        .collect()
                })
                .collect(),
            evidence: evidence
                .iter()
                .map(|log| {
                    by_index
                        .iter()
                        .map(|peer| {
                            [
                                Kind::RefusedProposal,
                                Kind::MalformedBlock,
                                Kind::MalformedRequest,
                                Kind::ConflictingNotarize,
                                Kind::ConflictingFinalize,
                            ]
                            .iter()
                            .map(|kind| log.against(peer, kind))
                            .sum::<usize>()
                        })
                        .collect()
                })
                .collect(),
            verified,
            oracle: views
                .iter()
                .map(|view| {
                    let engine = view.lock().unwrap().clone();
                    (
                        engine.oracle_last_round(0).unwrap_or(0),
                        engine.index_price(0),
                    )
                })
                .collect(),
            virtual_ms,
            restored: stats
                .iter()
                .map(|s| s.lock().unwrap().restored_snapshot)
                .collect(),
        }
    })
}
