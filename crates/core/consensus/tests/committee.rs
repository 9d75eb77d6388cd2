//! Seeded simulation of the committee: n replicas running simplex (BLS12-381 threshold, shares
//! from an INSECURE trusted dealer) on commonware's deterministic runtime and simulated
//! network, ordering blocks of signed client transactions that every replica executes.
//!
//! Every scenario asserts DESIGN invariant 1 (same state root at every replica after every
//! finalized height), invariant 7 (money conserved after every block; also asserted inside the
//! replica) and that heights are executed in order, once each.
#![allow(clippy::unwrap_used)]

use bulwark_consensus::committee::{
    max_message_size, start_member, Channels, Member, MemberConfig, Timing, CHANNEL_BLOCKS,
    CHANNEL_CERTIFICATES, CHANNEL_REQUESTS, CHANNEL_RESOLVER, CHANNEL_VOTES, CONSENSUS_NAMESPACE,
};
use bulwark_consensus::evidence::{EvidenceLog, Kind};
use bulwark_consensus::genesis::{try_genesis, GenesisAccount};
use bulwark_consensus::log::LOG_BLOB;
use bulwark_consensus::mempool::{MempoolConfig, Origin, Refusal};
use bulwark_consensus::oracle_feed::{OraclePool, SharedPool, SyntheticFeed};
use bulwark_consensus::replica::{
    Committed, Config as ReplicaConfig, Fault, Ledger, Mempool, PublicKey, Scheme, SharedStats,
};
use bulwark_consensus::verify::verify_log;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::{LimitOrder, SelfTradePrevention, TimeInForce};
use bulwark_engine::oracle::OracleConfig;
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
use commonware_codec::Encode as _;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::{ed25519, Signer as _};
use commonware_p2p::simulated::{self, Link, Network};
use commonware_p2p::Recipients;
use commonware_runtime::{
    deterministic, Blob as _, Clock, IoBuf, Quota, Runner as _, Spawner, Storage as _, Supervisor,
};
use commonware_utils::{ordered::Set, probability, N3f1, NZUsize, Probability, NZU32};
use ed25519_dalek::SigningKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

const CLIENTS: u64 = 8;
const USD: i64 = 1_000_000;

/// What to do to the committee during a run.
#[derive(Clone, Copy)]
struct Scenario {
    seed: u64,
    n: usize,
    /// Every live replica reaches this height before the fault.
    height_before: u64,
    /// Crash this replica (abort all its tasks) once `height_before` is reached.
    crash: Option<usize>,
    /// Cut every link of this replica once `height_before` is reached, restore them after
    /// `height_after` more heights, and wait until it has caught up with the others.
    isolate: Option<usize>,
    /// These replicas propose blocks with a wrong parent root from the start.
    byzantine: &'static [usize],
    /// These members send only garbage on every channel.
    garbage: &'static [usize],
    /// These members run no replica and only equivocate: for every notarize or finalize vote
    /// they receive, they sign both that proposal and a random one for the same view.
    equivocators: &'static [usize],
    /// At `height_before`, split the committee in two halves (no quorum on either side) for 3
    /// virtual seconds, check that nothing finalizes, then heal.
    split: bool,
    /// Run the oracle committee: index prices only from rounds certified through blocks.
    oracle: bool,
    /// Restart the crashed replica from its own storage after `height_after`, and wait until
    /// it has caught up.
    restart: bool,
    /// Cut the power of the whole committee once `height_before` is reached (after a
    /// seed-chosen delay, so the cut falls anywhere within a round): every member's tasks are
    /// aborted mid-flight, then every member but `stays_down` restarts from its own storage.
    power_cut: bool,
    /// With `power_cut`, this member does not come back.
    stays_down: Option<usize>,
    /// The live replicas then reach `height_before + height_after`.
    height_after: u64,
    /// Probability that a message on a link is delivered.
    success_rate: Probability,
}

impl Scenario {
    /// `n` honest members on perfect links reaching height 10, no faults.
    fn new(seed: u64, n: usize) -> Self {
        Scenario {
            seed,
            n,
            height_before: 10,
            crash: None,
            isolate: None,
            byzantine: &[],
            garbage: &[],
            equivocators: &[],
            split: false,
            oracle: false,
            restart: false,
            power_cut: false,
            stays_down: None,
            height_after: 0,
            success_rate: probability!(1.0),
        }
    }
}

struct Outcome {
    ledgers: Vec<Vec<Committed>>,
    refused: Vec<u64>,
    crashed: Option<usize>,
    byzantine: &'static [usize],
    /// evidence[i][j]: fault records member i holds against member j.
    evidence: Vec<Vec<usize>>,
    /// oracle_faults[i][j]: oracle fault records member i holds against member j.
    oracle_faults: Vec<Vec<usize>>,
    /// Per member: last certified oracle round of BTC and its index.
    oracle: Vec<(u64, Option<i64>)>,
    /// Heights verified in each honest member's log.
    verified: Vec<u64>,
    virtual_ms: u128,
    /// Per member: the snapshot height it restored its engine from at its last start.
    restored: Vec<Option<u64>>,
}

fn client_key(account: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&account.to_le_bytes());
    seed[8..24].copy_from_slice(b"bulwark-spike-cl");
    SigningKey::from_bytes(&seed)
}

/// The k-th order of `account`: alternating sides around 60 000 USD, so they cross and fill.
fn order(account: u64, k: u64) -> SignedTx {
    let side = if (account + k).is_multiple_of(2) {
        Side::Buy
    } else {
        Side::Sell
    };
    let offset = i64::try_from((k * 7 + account * 3) % 21).unwrap() - 10;
    let command = ClientCommand::Limit(LimitOrder {
        instrument: InstrumentId(0),
        side,
        price: 600_000 + offset * 10,
        qty: 1 + i64::try_from(k % 4).unwrap(),
        tif: TimeInForce::Gtc,
        post_only: false,
        reduce_only: false,
        stp: SelfTradePrevention::CancelResting,
        client_order_id: k,
    });
    SignedTx::sign(AccountId(account), k + 1, command, &client_key(account))
}

/// A Byzantine member that sends random bytes of random lengths on every channel to everyone,
/// every 5 ms, and reads nothing.
fn flood_garbage<E, S, R>(context: E, channels: Channels<S, R>) -> Member
where
    E: Clock + Spawner + Supervisor + rand_core::Rng + Send + 'static,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    let Channels {
        votes,
        certificates,
        resolver,
        blocks,
        requests,
    } = channels;
    let mut senders = vec![votes.0, certificates.0, resolver.0, blocks.0, requests.0];
    let receivers = vec![votes.1, certificates.1, resolver.1, blocks.1, requests.1];
    let flood = context.child("flood").spawn(move |mut context| async move {
        loop {
            for sender in &mut senders {
                let len = (context.next_u32() % 600) as usize;
                let mut bytes = vec![0u8; len];
                context.fill_bytes(&mut bytes);
                sender.send(Recipients::All, IoBuf::from(bytes), false);
            }
            context.sleep(Duration::from_millis(5)).await;
        }
    });
    let drain = context.child("drain").spawn(move |_| async move {
        // Keep the receivers alive (so peers see an open channel) without reading them.
        let _receivers = receivers;
        futures_pending().await
    });
    Member {
        simplex: flood,
        replica: drain,
    }
}

/// A Byzantine member that equivocates: it answers every notarize or finalize vote it receives
/// with two votes of its own for that view, one for the received proposal and one for a random
/// payload.
fn equivocate<E, S, R>(context: E, scheme: Scheme, channels: Channels<S, R>) -> Member
where
    E: Clock + Spawner + Supervisor + rand_core::Rng + Send + 'static,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    use commonware_codec::{DecodeExt as _, Encode as _};
    use commonware_consensus::simplex::types::{Finalize, Notarize, Proposal, Vote};
    use commonware_cryptography::sha256::Digest;
    let Channels {
        votes: (mut sender, mut receiver),
        certificates,
        resolver,
        blocks,
        requests,
    } = channels;
    let others = (certificates, resolver, blocks, requests);
    let votes = context
        .child("equivocate")
        .spawn(move |mut context| async move {
            while let Ok((_, bytes)) = receiver.recv().await {
                let Ok(vote) = Vote::<Scheme, Digest>::decode(bytes) else {
                    continue;
                };
                let mut random = [0u8; 32];
                context.fill_bytes(&mut random);
                let (honest, forged) = match vote {
                    Vote::Notarize(notarize) => {
                        let p = notarize.proposal;
                        let forged = Proposal::new(p.round, p.parent, Digest(random));
                        (
                            Notarize::sign(&scheme, p).map(Vote::Notarize),
                            Notarize::sign(&scheme, forged).map(Vote::Notarize),
                        )
                    }
                    Vote::Finalize(finalize) => {
                        let p = finalize.proposal;
                        let forged = Proposal::new(p.round, p.parent, Digest(random));
                        (
                            Finalize::sign(&scheme, p).map(Vote::Finalize),
                            Finalize::sign(&scheme, forged).map(Vote::Finalize),
                        )
                    }
                    Vote::Nullify(_) => continue,
                };
                for vote in [forged, honest].into_iter().flatten() {
                    sender.send(Recipients::All, IoBuf::from(vote.encode().to_vec()), true);
                }
            }
        });
    let idle = context.child("idle").spawn(move |_| async move {
        let _others = others;
        futures_pending().await
    });
    Member {
        simplex: votes,
        replica: idle,
    }
}

async fn futures_pending() {
    std::future::pending::<()>().await
}

fn run(scenario: Scenario) -> Outcome {
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
                public_key: client_key(a).verifying_key().to_bytes(),
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
                        let tx = order(account, k);
                        for mempool in &mempools {
                            let keys =
                                |id: AccountId| Some(client_key(id.0).verifying_key().to_bytes());
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

/// Invariants 1 and 7, execution once per height in order, and that trading happened.
fn check(outcome: &Outcome) {
    for (index, ledger) in outcome.ledgers.iter().enumerate() {
        for (position, committed) in ledger.iter().enumerate() {
            assert_eq!(
                committed.height,
                position as u64 + 1,
                "replica {index} must execute heights in order, once each"
            );
            assert!(committed.conserved, "replica {index}: money not conserved");
        }
    }
    let longest = outcome
        .ledgers
        .iter()
        .max_by_key(|l| l.len())
        .unwrap()
        .clone();
    for (index, ledger) in outcome.ledgers.iter().enumerate() {
        for committed in ledger {
            let reference = &longest[committed.height as usize - 1];
            assert_eq!(
                (committed.digest, committed.root),
                (reference.digest, reference.root),
                "replica {index} diverged at height {}",
                committed.height
            );
        }
    }
    let txs: usize = longest.iter().map(|c| c.txs).sum();
    let fills: usize = longest.iter().map(|c| c.fills).sum();
    assert!(txs > 0, "client transactions must be finalized");
    for (position, heights) in outcome.verified.iter().enumerate() {
        assert!(
            *heights > 0,
            "honest member #{position}'s log must hold heights"
        );
    }
    assert!(fills > 0, "orders must match");
    eprintln!(
        "heights {} txs {txs} fills {fills} refused {:?} crashed {:?} byzantine {:?} virtual {} ms",
        longest.len(),
        outcome.refused,
        outcome.crashed,
        outcome.byzantine,
        outcome.virtual_ms
    );
}

#[test]
fn four_replicas_agree_on_every_root() {
    for seed in [1, 2, 3] {
        let outcome = run(Scenario {
            height_before: 30,
            ..Scenario::new(seed, 4)
        });
        check(&outcome);
        assert!(outcome.ledgers.iter().all(|l| l.len() >= 30));
    }
}

#[test]
fn live_with_one_replica_crashed() {
    for seed in [11, 12] {
        let outcome = run(Scenario {
            height_before: 15,
            crash: Some(3),
            height_after: 20,
            ..Scenario::new(seed, 4)
        });
        check(&outcome);
        let crashed_height = outcome.ledgers[3].len();
        for (index, ledger) in outcome.ledgers.iter().enumerate().take(3) {
            assert!(
                ledger.len() >= crashed_height + 15,
                "replica {index} must keep finalizing after the crash"
            );
        }
    }
}

#[test]
fn wrong_root_proposals_are_refused_and_the_chain_lives() {
    let outcome = run(Scenario {
        height_before: 25,
        byzantine: &[0],
        ..Scenario::new(21, 4)
    });
    check(&outcome);
    let honest_refusals: u64 = outcome.refused[1..].iter().sum();
    assert!(
        honest_refusals > 0,
        "honest replicas must refuse the wrong-root blocks"
    );
    for honest in 1..4 {
        assert!(
            outcome.evidence[honest][0] > 0,
            "member {honest} must record evidence against the wrong-root proposer"
        );
        for other in 1..4 {
            assert_eq!(
                outcome.evidence[honest][other], 0,
                "no evidence against honest members"
            );
        }
    }
}

#[test]
fn lossy_links_with_a_crash() {
    // 5% of messages lost on every link: lost blocks are fetched by digest, lost votes are
    // retried by simplex.
    for seed in [31, 32] {
        let outcome = run(Scenario {
            height_before: 15,
            crash: Some(1),
            height_after: 15,
            success_rate: probability!(0.95),
            ..Scenario::new(seed, 4)
        });
        check(&outcome);
    }
}

#[test]
fn isolated_replica_catches_up_after_healing() {
    // Replica 2 is cut off for 40 heights, then fetches the blocks it missed from its peers'
    // committed blocks and executes them in order; its roots must match everyone's.
    let outcome = run(Scenario {
        isolate: Some(2),
        height_after: 40,
        ..Scenario::new(41, 4)
    });
    check(&outcome);
    let longest = outcome.ledgers.iter().map(Vec::len).max().unwrap();
    assert!(outcome.ledgers[2].len() >= 50 && outcome.ledgers[2].len() + 5 >= longest);
}

/// How many seeds a sweep runs: `BULWARK_SIM_SEEDS`, default 6 (what CI runs).
fn sim_seeds() -> u64 {
    std::env::var("BULWARK_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// Seeds 1000.. through a crash (of a seed-chosen member at a seed-chosen height) and restart
/// on lossy links, 4 and 7 members, with a wrong-root proposer among the 7.
/// `BULWARK_SIM_SEEDS=N` runs N seeds (default 6, which CI runs); any failing seed reproduces
/// exactly.
#[test]
fn seed_sweep() {
    let count = sim_seeds();
    for seed in 1_000..1_000 + count {
        let n = if seed % 2 == 0 { 4 } else { 7 };
        eprintln!("seed {seed} n {n}");
        let outcome = run(Scenario {
            height_before: 4 + seed % 13,
            crash: Some(usize::try_from(seed % 3).unwrap() + 1),
            byzantine: if n == 7 { &[0] } else { &[] },
            restart: true,
            height_after: 10,
            success_rate: probability!(0.95),
            ..Scenario::new(seed, n)
        });
        check(&outcome);
    }
}

#[test]
fn crashed_replica_restarts_from_its_log_and_catches_up() {
    // Replica 1 is killed (all tasks aborted mid-flight) at height 12, the others finalize 25
    // more heights, then it restarts from its own storage: it replays its finalized log (the
    // ledger check inside the replica asserts every replayed height equals what it committed
    // before), fetches what it missed and executes each height once.
    let outcome = run(Scenario {
        height_before: 12,
        crash: Some(1),
        restart: true,
        height_after: 25,
        ..Scenario::new(61, 4)
    });
    check(&outcome);
    let longest = outcome.ledgers.iter().map(Vec::len).max().unwrap();
    assert!(outcome.ledgers[1].len() >= 37 && outcome.ledgers[1].len() + 5 >= longest);
    // It restored its engine from its newest snapshot (every 4 heights here) that the log
    // confirms, and replayed only the heights after it.
    let restored = outcome.restored[1].expect("the restart restores from a snapshot");
    assert!(
        restored >= 8 && restored.is_multiple_of(4),
        "restored from height {restored}"
    );
}

/// The whole committee loses power at a seed-chosen moment and restarts from its storage; in
/// half the seeds one member never comes back, so the others need every one of themselves.
/// Blocks that were notarized but not yet finalized at the cut must survive it: a leader has
/// to build on them, and nobody can if the block bytes died with the processes.
/// `BULWARK_SIM_SEEDS=N` runs N seeds (default 6).
#[test]
fn the_committee_survives_a_power_cut() {
    let count = sim_seeds();
    for seed in 2_000..2_000 + count {
        let stays_down = (seed % 2 == 1).then_some(usize::try_from(seed % 4).unwrap());
        eprintln!("seed {seed} stays down {stays_down:?}");
        let outcome = run(Scenario {
            height_before: 6 + seed % 7,
            power_cut: true,
            stays_down,
            height_after: 10,
            ..Scenario::new(seed, 4)
        });
        check(&outcome);
        for (member, restored) in outcome.restored.iter().enumerate() {
            if Some(member) != stays_down {
                assert!(
                    restored.is_some(),
                    "member {member} restored from a snapshot"
                );
            }
        }
    }
}

#[test]
fn seven_members_with_f_byzantine_proposers() {
    // f = 2 of 7 propose wrong roots on every turn; the 5 honest ones refuse those blocks and
    // keep finalizing on their own proposals.
    let outcome = run(Scenario {
        height_before: 20,
        byzantine: &[2, 5],
        ..Scenario::new(71, 7)
    });
    check(&outcome);
    assert!(outcome.refused.iter().sum::<u64>() > 0);
    for honest in [0, 1, 3, 4, 6] {
        assert!(outcome.evidence[honest][2] > 0 && outcome.evidence[honest][5] > 0);
    }
}

#[test]
fn an_equivocating_member_is_recorded_and_the_chain_lives() {
    let outcome = run(Scenario {
        height_before: 20,
        equivocators: &[0],
        ..Scenario::new(91, 4)
    });
    check(&outcome);
    for honest in 1..4 {
        assert!(
            outcome.evidence[honest][0] > 0,
            "member {honest} must record the equivocator's conflicting votes"
        );
        for other in 1..4 {
            assert_eq!(outcome.evidence[honest][other], 0);
        }
    }
}

#[test]
fn a_split_without_quorum_finalizes_nothing_and_heals() {
    for (seed, n) in [(101, 4), (102, 7)] {
        let outcome = run(Scenario {
            split: true,
            height_after: 15,
            ..Scenario::new(seed, n)
        });
        check(&outcome);
        assert!(outcome.ledgers.iter().all(|l| l.len() >= 25));
    }
}

#[test]
fn oracle_rounds_are_certified_through_blocks_and_one_liar_cannot_move_the_index() {
    let outcome = run(Scenario {
        height_before: 250,
        oracle: true,
        ..Scenario::new(111, 4)
    });
    check(&outcome);
    let rounds: Vec<u64> = outcome.oracle.iter().map(|(r, _)| *r).collect();
    assert!(
        rounds.iter().all(|r| *r >= 5),
        "rounds certified at every member: {rounds:?}"
    );
    // Member 1 lies (twice the price) in this run; the index must stay near the honest path.
    let outcome = run(Scenario {
        height_before: 250,
        byzantine: &[1],
        oracle: true,
        ..Scenario::new(112, 4)
    });
    check(&outcome);
    for (round, index) in &outcome.oracle {
        assert!(*round >= 5);
        let index = index.unwrap();
        assert!(
            (50_000 * USD..70_000 * USD).contains(&index),
            "one lying member moved the index to {index}"
        );
    }
    // Its deviation, round after round, is recorded as oracle fault evidence against it by
    // every member, and against nobody else.
    for member in 0..4 {
        assert!(
            outcome.oracle_faults[member][1] > 0,
            "member {member} must record the liar's oracle faults: {:?}",
            outcome.oracle_faults
        );
        for other in [0, 2, 3] {
            assert_eq!(outcome.oracle_faults[member][other], 0);
        }
    }
}

#[test]
fn a_member_flooding_garbage_does_not_stop_the_chain() {
    let outcome = run(Scenario {
        height_before: 20,
        garbage: &[3],
        ..Scenario::new(81, 4)
    });
    check(&outcome);
    assert!(outcome.ledgers[3].is_empty(), "the flooder runs no replica");
    for honest in 0..3 {
        assert!(
            outcome.evidence[honest][3] > 0,
            "member {honest} must record the flooder's garbage"
        );
    }
}

#[test]
fn a_seed_reproduces_exactly() {
    let scenario = Scenario {
        crash: Some(2),
        height_after: 10,
        success_rate: probability!(0.95),
        ..Scenario::new(51, 4)
    };
    let first = run(scenario);
    let second = run(scenario);
    check(&first);
    assert_eq!(
        first.ledgers, second.ledgers,
        "same seed, same blocks and roots"
    );
    assert_eq!(first.virtual_ms, second.virtual_ms);
}
