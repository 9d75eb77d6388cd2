//! The simulated committee: identities and shares from an INSECURE trusted dealer (a real
//! committee runs the DKG), the genesis, the simulated network, every member's shared state,
//! and the clients and oracle feeds that drive it.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use crate::hostile::{equivocate, far_future_observations, flood_blocks, flood_garbage, malleate};
use crate::mangle::{MangleSlot, Mangled};
use crate::scenario::Scenario;
use bulwark_consensus::catchup::CHANNEL_CATCHUP;
use bulwark_consensus::committee::{
    max_message_size, start_member, Channels, Member, MemberConfig, Timing, CHANNEL_ACCUSATIONS,
    CHANNEL_BLOCKS, CHANNEL_CERTIFICATES, CHANNEL_REQUESTS, CHANNEL_RESOLVER, CHANNEL_VOTES,
    CONSENSUS_NAMESPACE,
};
use bulwark_consensus::epoch::{MemoryShares, ShareStore as _, CHANNEL_RESHARE};
use bulwark_consensus::evidence::{EvidenceLog, Kind};
use bulwark_consensus::genesis::{try_genesis_with, GenesisAccount};
use bulwark_consensus::mempool::{MempoolConfig, Origin, Refusal};
use bulwark_consensus::oracle_feed::{round_at, OraclePool, SharedPool, SyntheticFeed, ROUND_MS};
use bulwark_consensus::replica::CommittedView;
use bulwark_consensus::replica::{
    Config as ReplicaConfig, Fault, Ledger, Mempool, PublicKey, Scheme, SharedStats,
};
use bulwark_consensus::sentinel_feed::{SentinelFeed, SharedSentinel};
use bulwark_custody::dkg::Completed;
use bulwark_engine::oracle::OracleConfig;
use bulwark_engine::{AccountId, Engine};
use bulwark_oracle::proposer::Dropped;
use bulwark_testkit::flow::MAKERS;
use bulwark_testkit::{client_key, signed_flow_order};
use commonware_codec::Encode as _;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::{deal, Output};
use commonware_cryptography::bls12381::primitives::group::Share;
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::bls12381::primitives::variant::MinSig;
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{ed25519, Signer as _};
use commonware_p2p::simulated::{self, Link, Network};
use commonware_runtime::{deterministic, Clock, Quota, Spawner, Supervisor};
use commonware_utils::ordered::{Map, Set};
use commonware_utils::{N3f1, NZUsize, NZU32};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// Funded client accounts (1..=CLIENTS) trading the one order flow (`bulwark_testkit::flow`):
/// its market makers and four takers.
const CLIENTS: u64 = MAKERS + 4;
/// One US dollar in micros.
pub(crate) const USD: i64 = 1_000_000;
/// The seed of the simulated clients' DEVELOPMENT keys.
const CLIENT_SEED: u64 = 0x5151;
/// The tracked clients' accounts ([`crate::clients`]), after the flow's.
pub(crate) const TRACKED_ACCOUNTS: std::ops::RangeInclusive<u64> =
    CLIENTS + 1..=CLIENTS + crate::clients::TRACKED;

/// A tracked client's transaction: a taker's order of the flow, signed with its DEVELOPMENT key.
fn tracked_tx(account: u64, nonce: u64) -> bulwark_engine::codec::SignedTx {
    signed_flow_order(CLIENT_SEED, account, nonce, nonce, 600_000)
}

/// Everything one run holds.
pub(crate) struct World {
    pub(crate) context: deterministic::Context,
    pub(crate) scenario: Scenario,
    /// Members by index, in the participant set's order.
    pub(crate) by_index: Vec<PublicKey>,
    /// Members' keys in seed order (how oracle fault evidence names them).
    pub(crate) member_keys: Vec<PublicKey>,
    oracle_keys: Vec<ed25519_dalek::SigningKey>,
    participants: Set<PublicKey>,
    pub(crate) output: Output<MinSig, PublicKey>,
    shares: Map<PublicKey, Share>,
    /// Per member (replica order): its p2p key, which it deals reshares with.
    signers: Vec<ed25519::PrivateKey>,
    /// Per member (replica order): its share of each epoch's key, surviving its restarts.
    pub(crate) key_shares: Vec<MemoryShares>,
    pub(crate) genesis: (Engine, Digest),
    pub(crate) venue_epoch_ms: u64,
    pub(crate) network: simulated::Oracle<PublicKey, deterministic::Context>,
    pub(crate) link: Link,
    pools: Vec<SharedPool>,
    /// Per member (replica order): its sentinel, signing with its node (oracle) key.
    pub(crate) sentinels: Vec<SharedSentinel>,
    /// Per member (replica order): the chain deposit attestations it gathered.
    pub(crate) deposits: Vec<bulwark_consensus::deposit_feed::SharedDeposits>,
    pub(crate) views: Vec<Arc<Mutex<CommittedView>>>,
    /// What the simulated chain really paid, and the outpoints liars made up.
    chain_truth: Arc<Mutex<ChainTruth>>,
    /// Per member: its pool of pending transactions (a restart through [`World::forget`]
    /// gives it an empty one; the clients always offer to the current ones).
    mempools: Arc<Mutex<Vec<Mempool>>>,
    pub(crate) ledgers: Vec<Ledger>,
    /// Per member: whether it is up (started and not stopped since); the tracked clients
    /// send only to members that are up.
    pub(crate) up: Arc<Mutex<Vec<bool>>>,
    /// Per member: every receipt it told ([`crate::clients::Told`]), for the checkers.
    pub(crate) told: Vec<crate::clients::SharedTold>,
    /// Per member: the receipts its endpoint serves (emptied at each start, as a node's).
    served: Vec<crate::clients::SharedServed>,
    /// Set at the end of a run: the tracked clients send nothing new.
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// The tracked clients, each with what it was told.
    clients: Arc<Mutex<Vec<crate::clients::Client>>>,
    /// Per member: heights it committed, then lost with a damaged disk (taken off its ledger
    /// by [`World::damage`]); it commits them again, and the checkers compare both commits.
    pub(crate) superseded: Vec<Vec<bulwark_consensus::replica::Committed>>,
    /// Per member: what its receiving ends mangle (see [`crate::mangle`]).
    pub(crate) mangles: Vec<MangleSlot>,
    /// Messages the members' receiving ends duplicated or held back, over the run.
    pub(crate) mangled: Arc<AtomicU64>,
    /// Per member: the switch that fails its replica's partitions while it runs (see
    /// [`crate::faulty`]).
    pub(crate) disks: Vec<Arc<crate::faulty::DiskSwitch>>,
    /// Per member: how far ahead of the true time its clock was at the start (negative:
    /// behind), ms.
    pub(crate) skews_ms: Vec<i64>,
    /// Per member: how far ahead of the true time its clock is now (the nemesis steps it), ms;
    /// its context ([`crate::faulty::Faulty`]) and its oracle observer read it.
    pub(crate) clocks: Vec<Arc<std::sync::atomic::AtomicI64>>,
    pub(crate) refused: Vec<Arc<AtomicU64>>,
    pub(crate) evidence: Vec<EvidenceLog>,
    pub(crate) stats: Vec<SharedStats>,
    pub(crate) members: Vec<Member>,
}

/// Venue time between two blocks of the simulated chain in the sim, milliseconds.
const SIM_CHAIN_BLOCK_MS: u64 = 1_000;

/// What the simulated chain really paid (outpoint → amount), and the outpoints liars made up.
#[derive(Debug, Default)]
struct ChainTruth {
    real: std::collections::BTreeMap<bulwark_engine::deposit::Outpoint, i64>,
    fake: std::collections::BTreeSet<bulwark_engine::deposit::Outpoint>,
}

/// What one member's committed state credited of the chain's deposits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DepositTally {
    /// Outpoints credited.
    pub credited: u64,
    /// Real deposits (the chain paid them) among those.
    pub real: u64,
    /// Outpoints a liar made up that were credited (must be 0).
    pub fake: u64,
    /// Micros credited beyond what the chain paid for the credited outpoints (must be 0).
    pub excess_micros: i128,
}

/// The genesis oracle committee: with `scenario.oracle`, every member signs observations with
/// its node key (as `bulwark up` sets it up, so fault evidence names its p2p identity) and the
/// index moves only by rounds certified through consensus.
fn oracle_config(scenario: &Scenario, oracle_keys: &[ed25519_dalek::SigningKey]) -> OracleConfig {
    if !scenario.oracle {
        return OracleConfig::default();
    }
    OracleConfig {
        members: oracle_keys
            .iter()
            .map(|k| k.verifying_key().to_bytes())
            .collect(),
        f: u32::try_from((scenario.n - 1) / 3).unwrap(),
        // A short streak, so that a run of a few virtual seconds completes one.
        fault_rounds: 4,
        ..OracleConfig::default()
    }
}

/// Each member's clock skew (ms ahead of the true time, negative behind), drawn from the seed
/// within ± `scenario.clock_skew_ms`.
fn clock_skews(scenario: &Scenario) -> Vec<i64> {
    let bound = i64::try_from(scenario.clock_skew_ms).unwrap();
    // The nemesis's own generator, on a stream of its own: one draw per member.
    let mut draw = crate::nemesis::Draw(scenario.seed ^ 0x636c_6f63_6b73_6b77);
    (0..scenario.n)
        .map(|_| i64::try_from(draw.below(2 * bound.unsigned_abs() + 1)).unwrap() - bound)
        .collect()
}

impl World {
    /// Deals the keys, builds the genesis and the network (every link up), and starts every
    /// member, its oracle feed and the clients.
    pub(crate) async fn new(mut context: deterministic::Context, scenario: Scenario) -> World {
        let n = scenario.n;
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
        let accounts: Vec<GenesisAccount> = (1..=*TRACKED_ACCOUNTS.end())
            .map(|a| GenesisAccount {
                account: AccountId(a),
                public_key: client_key(CLIENT_SEED, a).verifying_key().to_bytes(),
                deposit_micros: 1_000_000 * USD,
            })
            .collect();
        let oracle_keys: Vec<ed25519_dalek::SigningKey> = keys
            .iter()
            .map(|k| {
                ed25519_dalek::SigningKey::from_bytes(&k.encode().as_ref().try_into().unwrap())
            })
            .collect();
        let oracle_config = oracle_config(&scenario, &oracle_keys);
        let genesis = try_genesis_with(
            &accounts,
            &[60_000 * USD, 3_000 * USD],
            oracle_config.clone(),
            // Silence after 20 views, so a short run sees it (the default waits longer; the
            // nemesis's held faults would otherwise remove honest members); a re-admission
            // scenario comes back without the hold.
            (
                bulwark_sentinel::Policy {
                    silence_views: if scenario.nemesis > 0 {
                        bulwark_sentinel::Policy::default().silence_views
                    } else {
                        20
                    },
                    readmit_hold_ms: if scenario.readmit.is_some() {
                        0
                    } else {
                        bulwark_sentinel::Policy::default().readmit_hold_ms
                    },
                    ..bulwark_sentinel::Policy::default()
                },
                bulwark_sentinel::Operators::default(),
            ),
        )
        .unwrap();
        let venue_epoch_ms = unix_ms(&context);
        let (network, link) = Self::network(&context, &scenario, &by_index).await;
        let signers: Vec<ed25519::PrivateKey> = by_index
            .iter()
            .map(|p| keys.iter().find(|k| k.public_key() == *p).unwrap().clone())
            .collect();
        let key_shares: Vec<MemoryShares> = by_index
            .iter()
            .map(|p| {
                let mut store = MemoryShares::default();
                let completed = Completed {
                    output: output.clone(),
                    share: shares.get_value(p).unwrap().clone(),
                    transcript: [0; 32],
                };
                store.store(0, 0, &completed).unwrap();
                store
            })
            .collect();
        let mut world = World {
            signers,
            key_shares,
            sentinels: Vec::new(),
            chain_truth: Arc::default(),
            deposits: (0..n)
                .map(|_| {
                    Arc::new(Mutex::new(
                        bulwark_consensus::deposit_feed::DepositFeed::new(&genesis.0),
                    ))
                })
                .collect(),
            member_keys: keys.iter().map(|k| k.public_key()).collect(),
            pools: (0..n)
                .map(|_| Arc::new(Mutex::new(OraclePool::new(oracle_config.clone(), 2))))
                .collect(),
            views: (0..n)
                .map(|_| Arc::new(Mutex::new(CommittedView::genesis(genesis.0.clone()))))
                .collect(),
            mempools: Arc::new(Mutex::new(
                (0..n)
                    .map(|_| Mempool::new(MempoolConfig::default()))
                    .collect(),
            )),
            ledgers: (0..n).map(|_| Arc::new(Mutex::new(Vec::new()))).collect(),
            up: Arc::new(Mutex::new(vec![false; n])),
            told: (0..n)
                .map(|_| crate::clients::SharedTold::default())
                .collect(),
            served: (0..n)
                .map(|_| crate::clients::SharedServed::default())
                .collect(),
            draining: Arc::default(),
            clients: Arc::new(Mutex::new(
                TRACKED_ACCOUNTS
                    .enumerate()
                    .map(|(i, account)| crate::clients::Client::new(i, account, n))
                    .collect(),
            )),
            superseded: vec![Vec::new(); n],
            mangles: (0..n).map(|_| MangleSlot::default()).collect(),
            mangled: Arc::default(),
            disks: (0..n).map(|_| Arc::default()).collect(),
            skews_ms: clock_skews(&scenario),
            clocks: clock_skews(&scenario)
                .into_iter()
                .map(|skew| Arc::new(std::sync::atomic::AtomicI64::new(skew)))
                .collect(),
            refused: (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect(),
            evidence: (0..n).map(|_| EvidenceLog::default()).collect(),
            stats: (0..n).map(|_| SharedStats::default()).collect(),
            members: Vec::new(),
            context,
            scenario,
            by_index,
            oracle_keys,
            participants,
            output,
            shares,
            genesis,
            venue_epoch_ms,
            network,
            link,
        };
        world.sentinels = (0..n)
            .map(|replica| {
                let key = world.node_signing_key(replica).clone();
                Arc::new(Mutex::new(SentinelFeed::new(key)))
            })
            .collect();
        // Register every member's channels before any engine starts (the simulated network
        // drops messages on channels not yet registered).
        for index in 0..n {
            let member = world.launch(index, 0).await;
            world.members.push(member);
        }
        world.spawn_oracle_feeds();
        world.spawn_chain_watchers();
        world.spawn_clients();
        world.spawn_tracked_clients();
        world
    }

    /// The simulated network with every link up: channels 0 votes, 1 certificates, 2 resolver,
    /// 3 blocks, 4 block requests.
    async fn network(
        context: &deterministic::Context,
        scenario: &Scenario,
        by_index: &[PublicKey],
    ) -> (simulated::Oracle<PublicKey, deterministic::Context>, Link) {
        let n = scenario.n;
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: max_message_size(u32::try_from(n).unwrap()),
                max_peers_per_set: NZUsize!(n),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            by_index.to_vec(),
        )
        .await;
        network.start();
        let link = Link {
            latency: Duration::from_millis(10),
            jitter: Duration::from_millis(3),
            success_rate: scenario.success_rate,
        };
        for a in by_index {
            for b in by_index {
                if a != b {
                    oracle
                        .add_link(a.clone(), b.clone(), link.clone())
                        .await
                        .unwrap();
                }
            }
        }
        (oracle, link)
    }

    /// Member `index`'s replica configuration.
    fn replica_config(&self, index: usize) -> ReplicaConfig {
        ReplicaConfig {
            genesis: self.genesis.clone(),
            // Its clock reads the true time plus its skew (its context's clock, see
            // `crate::faulty`).
            venue_epoch_ms: self.venue_epoch_ms,
            mempool: self.mempools.lock().unwrap()[index].clone(),
            ledger: self.ledgers[index].clone(),
            refused: self.refused[index].clone(),
            block_txs_max: 256,
            verify_threads: 1,
            mailbox_size: 1024,
            fault: if self.scenario.byzantine.contains(&index) {
                Fault::WrongRoot
            } else if self.scenario.forged_catch_up.contains(&index) {
                Fault::ForgedCatchUp
            } else if self.scenario.replayers.contains(&index) {
                Fault::ReplayTxs
            } else {
                Fault::None
            },
            oracle: self.scenario.oracle.then(|| self.pools[index].clone()),
            sentinel: Some(self.sentinels[index].clone()),
            deposits: Some(self.deposits[index].clone()),
            stats: self.stats[index].clone(),
            evidence: self.evidence[index].clone(),
            participants: self.by_index.clone(),
            signer: self.signers[index].clone(),
            shares: Arc::new(Mutex::new(self.key_shares[index].clone())),
            epoch_partition: format!("node-{index}-epochs"),
            view: self.views[index].clone(),
            log_partition: format!("node-{index}-finalized"),
            held_partition: format!("node-{index}-held"),
            snapshot_partition: format!("node-{index}-snapshots"),
            // Often, so that restarts in the simulation restore from snapshots.
            snapshot_every: 4,
            ledger_kept: usize::MAX,
            receipts: Some(crate::clients::sink(
                self.told[index].clone(),
                self.served[index].clone(),
                TRACKED_ACCOUNTS,
            )),
            identity: Some(*self.output.public().public()),
        }
    }

    /// Starts (or restarts, on the same storage) member `index`: registers its channels,
    /// replays its finalized log, starts simplex and the replica; or plays the hostile member
    /// the scenario makes it.
    pub(crate) async fn launch(&self, index: usize, boot: usize) -> Member {
        // A starting node serves no receipt yet (it keeps them in memory).
        self.served[index].lock().unwrap().clear();
        let control = self.network.control(self.by_index[index].clone());
        let node = self
            .context
            .child("node")
            .with_attribute("index", index)
            .with_attribute("boot", boot);
        let share = self
            .shares
            .get_value(&self.by_index[index])
            .expect("every participant must have a share")
            .clone();
        let scheme = Scheme::signer(
            CONSENSUS_NAMESPACE,
            self.participants.clone(),
            self.output.public().clone(),
            share,
        )
        .expect("a participant's share must give a signer");
        let quota = Quota::per_second(NZU32!(10_000));
        let channels = Channels {
            votes: control.register(CHANNEL_VOTES, quota).await.unwrap(),
            certificates: control.register(CHANNEL_CERTIFICATES, quota).await.unwrap(),
            resolver: control.register(CHANNEL_RESOLVER, quota).await.unwrap(),
            blocks: control.register(CHANNEL_BLOCKS, quota).await.unwrap(),
            requests: control.register(CHANNEL_REQUESTS, quota).await.unwrap(),
            reshare: control.register(CHANNEL_RESHARE, quota).await.unwrap(),
            accusations: control.register(CHANNEL_ACCUSATIONS, quota).await.unwrap(),
            catchup: control.register(CHANNEL_CATCHUP, quota).await.unwrap(),
        };
        if self.scenario.garbage.contains(&index) {
            return flood_garbage(node, channels);
        }
        if self.scenario.equivocators.contains(&index) {
            return equivocate(node, scheme, channels);
        }
        if self.scenario.block_flooders.contains(&index) {
            return flood_blocks(node, channels);
        }
        // An honest member's receiving ends mangle what the nemesis tells them to.
        let mangled = |(sender, receiver)| {
            let context = self.context.child("mangle");
            (
                sender,
                Mangled::new(
                    receiver,
                    self.mangles[index].clone(),
                    self.mangled.clone(),
                    context,
                ),
            )
        };
        let channels = Channels {
            votes: mangled(channels.votes),
            certificates: mangled(channels.certificates),
            resolver: mangled(channels.resolver),
            blocks: mangled(channels.blocks),
            requests: mangled(channels.requests),
            reshare: mangled(channels.reshare),
            accusations: mangled(channels.accusations),
            catchup: mangled(channels.catchup),
        };
        let config = MemberConfig {
            replica: self.replica_config(index),
            partition_prefix: format!("node-{index}"),
            timing: Timing::default(),
        };
        // Its replica's own partitions fail when the nemesis fails its disk.
        let replica = &config.replica;
        let partitions = vec![
            replica.log_partition.clone(),
            replica.held_partition.clone(),
            replica.snapshot_partition.clone(),
            replica.epoch_partition.clone(),
        ];
        let node = crate::faulty::Faulty::new(
            node,
            self.disks[index].clone(),
            self.clocks[index].clone(),
            partitions,
        );
        let member = start_member(node, config, control.clone(), channels)
            .await
            .expect("the member's log must open");
        // Its endpoint answers from now on (a hostile member's never does).
        self.up.lock().unwrap()[index] = true;
        member
    }

    /// Oracle feeds: every virtual second each member observes and offers its signed
    /// observation to every member's pool (a stand-in for the oracle gossip channel), at the
    /// receiver's round. Scenario indices name replicas (`by_index`); the oracle keys are in
    /// seed order, so each is mapped to its replica first. A member in `scenario.byzantine`
    /// reports twice the price; one in
    /// `scenario.far_future_oracle` also sends [`far_future_observations`]. A receiver that
    /// drops an observation as implausible records evidence against the sender, as the node's
    /// gossip receiver does.
    /// With `scenario.chain`: every member mines the same simulated chain (seeded from the
    /// genesis digest, one block per [`SIM_CHAIN_BLOCK_MS`] of venue time, paying the clients) and
    /// hands its signed attestations to every member's deposit feed, as the node's gossip does.
    /// A member in `lying_chain` attests each real deposit at ten times its amount and one made
    /// up deposit per chain block; one in `equivocating_chain` attests each real deposit both at
    /// its amount and at ten times it.
    fn spawn_chain_watchers(&self) {
        if !self.scenario.chain {
            return;
        }
        let seed = u64::from_be_bytes(self.genesis.1.as_ref()[..8].try_into().unwrap());
        for replica in 0..self.scenario.n {
            let key = self.node_signing_key(replica).clone();
            let lying = self.scenario.lying_chain.contains(&replica);
            let equivocating = self.scenario.equivocating_chain.contains(&replica);
            let feeds = self.deposits.clone();
            let truth = self.chain_truth.clone();
            let view = self.views[replica].clone();
            let venue_epoch_ms = self.venue_epoch_ms;
            let mut chain = bulwark_vault::deposit::SimulatedChain::new(
                bulwark_vault::Chain::Bitcoin,
                seed,
                (1..=CLIENTS).collect(),
            );
            self.context
                .child("chain")
                .spawn(move |context| async move {
                    use bulwark_vault::deposit::{Attestation, ChainSource as _};
                    let mut mined = 0u64;
                    loop {
                        context.sleep(Duration::from_millis(500)).await;
                        let target = (unix_ms(&context) - venue_epoch_ms) / SIM_CHAIN_BLOCK_MS;
                        let from = mined;
                        while mined < target {
                            chain.mine();
                            mined += 1;
                        }
                        if mined == from {
                            continue;
                        }
                        let (deposits, _) = chain.deposits(from).unwrap();
                        let engine = view.lock().unwrap().engine.clone();
                        let mut attestations = Vec::new();
                        for deposit in deposits {
                            truth
                                .lock()
                                .unwrap()
                                .real
                                .insert(deposit.outpoint(), deposit.amount);
                            if engine.deposit_credited(&deposit.outpoint()) {
                                continue;
                            }
                            if lying {
                                let inflated = bulwark_engine::deposit::ObservedDeposit {
                                    amount: deposit.amount * 10,
                                    ..deposit
                                };
                                // Every liar makes up the same deposit: they collude.
                                let mut made_up = deposit;
                                made_up.txid[0] ^= 0xff;
                                truth.lock().unwrap().fake.insert(made_up.outpoint());
                                attestations.push(Attestation::sign(&key, inflated));
                                attestations.push(Attestation::sign(&key, made_up));
                            } else if equivocating {
                                let inflated = bulwark_engine::deposit::ObservedDeposit {
                                    amount: deposit.amount * 10,
                                    ..deposit
                                };
                                attestations.push(Attestation::sign(&key, deposit));
                                attestations.push(Attestation::sign(&key, inflated));
                            } else {
                                attestations.push(Attestation::sign(&key, deposit));
                            }
                        }
                        for feed in &feeds {
                            let mut feed = feed.lock().unwrap();
                            for attestation in &attestations {
                                let _ = feed.offer(*attestation);
                            }
                        }
                    }
                });
        }
    }

    /// Per member: what its committed state credited of the chain's deposits.
    pub(crate) fn deposit_tallies(&self) -> Vec<DepositTally> {
        let truth = self.chain_truth.lock().unwrap();
        let opening = self.genesis.0.totals().net_deposits;
        self.views
            .iter()
            .map(|view| {
                let engine = view.lock().unwrap().engine.clone();
                let credited_real: Vec<i64> = truth
                    .real
                    .iter()
                    .filter(|(o, _)| engine.deposit_credited(o))
                    .map(|(_, amount)| *amount)
                    .collect();
                let fake = truth
                    .fake
                    .iter()
                    .filter(|o| engine.deposit_credited(o))
                    .count() as u64;
                let paid: i128 = credited_real.iter().map(|a| i128::from(*a)).sum();
                DepositTally {
                    credited: engine.deposits_credited() as u64,
                    real: credited_real.len() as u64,
                    fake,
                    excess_micros: engine.totals().net_deposits - opening - paid,
                }
            })
            .collect()
    }

    fn spawn_oracle_feeds(&self) {
        if !self.scenario.oracle {
            return;
        }
        for (index, key) in self.oracle_keys.iter().enumerate() {
            let pools = self.pools.clone();
            let evidence = self.evidence.clone();
            // The oracle key is the seed-order key; the member's p2p identity names it.
            let sender = self.member_keys[index].clone();
            let replica = self.by_index.iter().position(|p| *p == sender);
            let lying = replica.is_some_and(|r| {
                self.scenario.byzantine.contains(&r) || self.scenario.lying_oracle.contains(&r)
            });
            let hostile = replica.is_some_and(|r| self.scenario.far_future_oracle.contains(&r));
            let equivocating =
                replica.is_some_and(|r| self.scenario.equivocating_oracle.contains(&r));
            let mut feed = SyntheticFeed::new(&[60_000 * USD, 3_000 * USD], 5, key.clone());
            let liar = bulwark_oracle::node::OracleNode::new(
                bulwark_oracle::node::NodeConfig::equal(3),
                key.clone(),
            );
            let venue_epoch_ms = self.venue_epoch_ms;
            // The observer stamps by its clock; each receiver judges by its own.
            let clocks = self.clocks.clone();
            let skew_of = move |r: usize| clocks[r].load(std::sync::atomic::Ordering::SeqCst);
            self.context
                .child("oracle")
                .spawn(move |context| async move {
                    let mut last_round: Option<u64> = None;
                    loop {
                        let true_now = unix_ms(&context);
                        let now = true_now.saturating_add_signed(replica.map_or(0, &skew_of));
                        if now < venue_epoch_ms {
                            // A clock behind the venue's start: nothing to observe before it.
                            context
                                .sleep(Duration::from_millis(venue_epoch_ms - now))
                                .await;
                            continue;
                        }
                        let venue_ms = now - venue_epoch_ms;
                        let round = round_at(now, venue_epoch_ms);
                        // Rounds only go forwards, as the node's observer has it: a clock
                        // stepped back must not make it sign a round again (two observations
                        // for one round are an equivocation).
                        if last_round.is_some_and(|last| round <= last) {
                            context
                                .sleep(Duration::from_millis(ROUND_MS - venue_ms % ROUND_MS))
                                .await;
                            continue;
                        }
                        last_round = Some(round);
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
                        if hostile {
                            let honest = observations.clone();
                            observations.extend(far_future_observations(&liar, &honest));
                        }
                        // The second version of each observation, for the odd half of the pools.
                        let other: Vec<_> = observations
                            .iter()
                            .map(|o| {
                                let mut second = o.observation;
                                second.price_micros += 1;
                                liar.sign(second)
                            })
                            .collect();
                        for (receiver, (pool, log)) in pools.iter().zip(&evidence).enumerate() {
                            let sent = if equivocating && receiver % 2 == 1 {
                                &other
                            } else {
                                &observations
                            };
                            let at = round_at(
                                true_now.saturating_add_signed(skew_of(receiver)),
                                venue_epoch_ms,
                            );
                            for observation in sent {
                                let dropped = pool.lock().unwrap().offer(*observation, at);
                                if let Err(Dropped::Implausible { round, .. }) = dropped {
                                    log.record(
                                        Kind::ImplausibleOracleRound,
                                        &sender,
                                        round,
                                        "oracle observation far ahead of the clock",
                                    );
                                }
                            }
                        }
                        context
                            .sleep(Duration::from_millis(ROUND_MS - venue_ms % ROUND_MS))
                            .await;
                    }
                });
        }
    }

    /// Replica `replica`'s node (oracle and sentinel) signing key: the oracle keys are in seed
    /// order, replicas in participant order.
    pub(crate) fn node_signing_key(&self, replica: usize) -> &ed25519_dalek::SigningKey {
        let seed_index = self
            .member_keys
            .iter()
            .position(|k| *k == self.by_index[replica])
            .expect("every participant has a key");
        &self.oracle_keys[seed_index]
    }

    /// Replica `replica`'s share of the genesis key.
    pub(crate) fn share_of(&self, replica: usize) -> Share {
        self.shares
            .get_value(&self.by_index[replica])
            .expect("every participant has a share")
            .clone()
    }

    /// Replica `replica`'s node (oracle and sentinel) key.
    pub(crate) fn node_key(&self, replica: usize) -> [u8; 32] {
        self.node_signing_key(replica).verifying_key().to_bytes()
    }

    /// Replica `accuser` signs an accusation against `accused` regardless of any evidence and
    /// sends it to everyone.
    pub(crate) fn accuse_falsely(&self, accuser: usize, accused: usize) {
        let engine = self.views[accuser].lock().unwrap().engine.clone();
        let epoch = engine.membership().map_or(0, |m| m.epoch());
        let accusation = bulwark_sentinel::Accusation::sign(
            self.node_signing_key(accuser),
            self.node_key(accused),
            bulwark_sentinel::Grounds::Contraindicated,
            epoch,
            engine.time_ms(),
        );
        self.spread(accusation);
    }

    /// Hands `accusation` to every member's sentinel.
    pub(crate) fn spread(&self, accusation: bulwark_sentinel::Accusation) {
        for (sentinel, view) in self.sentinels.iter().zip(&self.views) {
            let engine = view.lock().unwrap().engine.clone();
            let _ = sentinel.lock().unwrap().offer(&engine, accusation);
        }
    }

    /// The replica indices whose oracle (and sentinel) key is among `keys`.
    pub(crate) fn replicas_of(&self, keys: &[[u8; 32]]) -> Vec<usize> {
        let mut replicas: Vec<usize> = self
            .oracle_keys
            .iter()
            .enumerate()
            .filter(|(_, key)| keys.contains(&key.verifying_key().to_bytes()))
            .filter_map(|(index, _)| {
                self.by_index
                    .iter()
                    .position(|p| *p == self.member_keys[index])
            })
            .collect();
        replicas.sort_unstable();
        replicas
    }

    /// Clients: every 50 ms each account signs its next order and submits it to every replica
    /// (a stand-in for the submission endpoint and mempool gossip).
    fn spawn_clients(&self) {
        let mempools = self.mempools.clone();
        let malleating = self.scenario.malleating_client;
        self.context
            .child("clients")
            .spawn(move |context| async move {
                let mut k = 0u64;
                loop {
                    for account in 1..=CLIENTS {
                        let mut tx = signed_flow_order(CLIENT_SEED, account, k, k + 1, 600_000);
                        if malleating == Some(account) {
                            let key = client_key(CLIENT_SEED, account);
                            tx = malleate(&key, tx, (k % 7 + 1) as usize);
                        }
                        let current = mempools.lock().unwrap().clone();
                        for mempool in &current {
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

    /// Tracked clients ([`crate::clients`]): every 50 ms each takes one step.
    fn spawn_tracked_clients(&self) {
        let line = crate::clients::Line {
            mempools: self.mempools.clone(),
            up: self.up.clone(),
            served: self.served.clone(),
            views: self.views.clone(),
            draining: self.draining.clone(),
            sign: tracked_tx,
        };
        let clients = self.clients.clone();
        self.context
            .child("tracked_clients")
            .spawn(move |context| async move {
                loop {
                    let now = unix_ms(&context);
                    for client in clients.lock().unwrap().iter_mut() {
                        client.tick(&line, now);
                    }
                    context.sleep(Duration::from_millis(50)).await;
                }
            });
    }

    /// Stops member `index` as a crash does: its tasks aborted mid-flight, its endpoint gone.
    pub(crate) fn stop(&self, index: usize) {
        self.members[index].abort();
        self.up.lock().unwrap()[index] = false;
    }

    /// The end of a run for the tracked clients: they send nothing new, and this waits (at
    /// most [`crate::clients::DRAIN`]) until every transaction they have in flight has its
    /// verdict.
    pub(crate) async fn drain_clients(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let start = self.context.current();
        while self
            .clients
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.pending_nonce().is_some())
        {
            let waited = self
                .context
                .current()
                .duration_since(start)
                .unwrap_or_default();
            if waited > crate::clients::DRAIN {
                break;
            }
            self.context.sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the tracked clients were told, and every member's receipts.
    pub(crate) fn clients_outcome(&self) -> crate::clients::Clients {
        let clients = self.clients.lock().unwrap();
        crate::clients::Clients {
            histories: clients.iter().map(|c| c.history().clone()).collect(),
            told: self
                .told
                .iter()
                .map(|t| t.lock().unwrap().clone())
                .collect(),
            undecided: clients
                .iter()
                .filter_map(|c| c.pending_nonce().map(|nonce| (c.history().account, nonce)))
                .collect(),
        }
    }

    /// Drops what member `member` (stopped) held only in memory, as a restarted node does:
    /// its pending transactions, oracle observations, sentinel feed (its pending accusations
    /// and affirmations) and chain deposit attestations. What a node keeps on disk stays (its
    /// log, snapshots, held blocks, epoch boundaries and key shares), and so does what the
    /// checkers read (its ledger, evidence log and counters).
    pub(crate) fn forget(&mut self, member: usize) {
        self.mempools.lock().unwrap()[member] = Mempool::new(MempoolConfig::default());
        *self.pools[member].lock().unwrap() =
            OraclePool::new(oracle_config(&self.scenario, &self.oracle_keys), 2);
        let key = self.node_signing_key(member).clone();
        *self.sentinels[member].lock().unwrap() = SentinelFeed::new(key);
        *self.deposits[member].lock().unwrap() =
            bulwark_consensus::deposit_feed::DepositFeed::new(&self.genesis.0);
    }

    /// Member `index`'s newest committed height.
    pub(crate) fn height(&self, index: usize) -> u64 {
        self.ledgers[index]
            .lock()
            .unwrap()
            .last()
            .map_or(0, |c| c.height)
    }

    /// The member that committed the most heights (the last of them on a tie).
    pub(crate) fn newest(&self) -> usize {
        (0..self.scenario.n)
            .max_by_key(|&i| self.height(i))
            .unwrap_or(0)
    }

    /// Every member's newest committed height.
    pub(crate) fn heights(&self) -> Vec<u64> {
        (0..self.scenario.n).map(|i| self.height(i)).collect()
    }

    /// The members the committee removed (as the most advanced member's state says): they
    /// left at an epoch change (they follow the log by certified catch-up, taking no part in
    /// consensus).
    pub(crate) fn removed(&self) -> Vec<usize> {
        let engine = self.views[self.newest()].lock().unwrap().engine.clone();
        let Some(membership) = engine.membership() else {
            return Vec::new();
        };
        let removed: Vec<[u8; 32]> = membership
            .records()
            .filter(|(_, trust)| matches!(trust, bulwark_sentinel::Trust::Removed { .. }))
            .map(|(key, _)| *key)
            .collect();
        self.replicas_of(&removed)
    }

    /// Brings removed member `member` back (issue #13): it has restarted and follows the log by
    /// certified catch-up; once its state is in the epoch without it, every other member's
    /// sentinel is handed one `admit` carrying f+1 members' signed affirmations (f of the
    /// genesis seats), and the run waits until `member` signs in the epoch after.
    pub(crate) async fn readmit(&self, member: usize) {
        use bulwark_sentinel::{Admit, Affirmation, Seat};
        use sha2::Digest as _;
        let mut polls = 0u64;
        // Following: its committed state reached the epoch that removed it.
        loop {
            let top = self.views[self.newest()].lock().unwrap().engine.clone();
            let mine = self.views[member].lock().unwrap().engine.clone();
            let epoch = |engine: &Engine| engine.membership().map_or(0, |m| m.epoch());
            if epoch(&mine) >= epoch(&top) && epoch(&top) > 0 {
                break;
            }
            self.context.sleep(Duration::from_millis(100)).await;
            polls += 1;
            assert!(
                polls < 1_200,
                "removed member {member} did not follow the log into the new epoch: heights {:?}",
                self.heights()
            );
        }
        let engine = self.views[self.newest()].lock().unwrap().engine.clone();
        let membership = engine.membership().expect("a sentinel committee");
        let epoch = membership.epoch();
        let candidate: [u8; 32] = self.by_index[member]
            .encode()
            .as_ref()
            .try_into()
            .expect("an ed25519 key is 32 bytes");
        let needed = (self.scenario.n - 1) / 3 + 1;
        let affirmers: Vec<usize> = (0..self.scenario.n)
            .filter(|&i| i != member)
            .take(needed)
            .collect();
        // What an affirmer's verifier and audit reader would hold: digests of its own appraisal
        // and of the candidate's clean report (the simulator has no attested candidate).
        let digest = |what: &str| -> [u8; 32] {
            sha2::Sha256::digest(format!("{what} of member {member}").as_bytes()).into()
        };
        // Signed at the venue time every member's state has reached (a statement from a
        // member's future is refused).
        let at_ms = (0..self.scenario.n)
            .map(|i| self.views[i].lock().unwrap().engine.time_ms())
            .min()
            .unwrap_or(0);
        let affirmations = affirmers
            .iter()
            .map(|&a| {
                Affirmation::sign(
                    self.node_signing_key(a),
                    candidate,
                    epoch,
                    at_ms,
                    (digest("appraisal"), digest("audit")),
                )
            })
            .collect();
        let admit = Admit {
            candidate,
            epoch,
            affirmations,
            seat: Seat::Readmit,
        };
        let mut offered = 0;
        for other in (0..self.scenario.n).filter(|&i| i != member) {
            let view = self.views[other].lock().unwrap().engine.clone();
            match self.sentinels[other]
                .lock()
                .unwrap()
                .offer_admit(&view, admit.clone())
            {
                Ok(()) => offered += 1,
                Err(error) => eprintln!("member {other} refused the admission: {error:?}"),
            }
        }
        assert!(offered > 0, "no member took the admission of {member}");
        polls = 0;
        loop {
            let status = *self.members[member].epoch.lock().unwrap();
            if status.epoch > epoch && status.participating {
                break;
            }
            self.context.sleep(Duration::from_millis(100)).await;
            polls += 1;
            assert!(
                polls < 1_200,
                "re-admitted member {member} does not sign in epoch {}: its status {status:?}, heights {:?}",
                epoch + 1,
                self.heights()
            );
        }
    }

    /// Waits until every removed member is within 5 heights of the committee, keeps following
    /// for 10 virtual seconds (asking every peer in turn), and is within 5 heights again: each
    /// follows the log by certified catch-up (two virtual minutes without getting there is a
    /// stall).
    pub(crate) async fn wait_for_followers(&self) {
        let removed = self.removed();
        for round in 0..2 {
            if round == 1 {
                self.context.sleep(Duration::from_secs(10)).await;
            }
            let mut polls = 0u64;
            while removed
                .iter()
                .any(|&i| self.height(i) + 5 < self.heights().into_iter().max().unwrap_or(0))
            {
                self.context.sleep(Duration::from_millis(100)).await;
                polls += 1;
                assert!(
                    polls < 1_200,
                    "removed members {removed:?} did not follow the log: heights {:?}",
                    self.heights()
                );
            }
        }
    }

    /// Waits until every member in `live` that the committee has not removed reached `target`.
    /// Two virtual minutes without reaching it is a stall, not slowness.
    pub(crate) async fn wait_for(&self, target: u64, live: &[usize]) {
        let mut polls = 0u64;
        while live
            .iter()
            .any(|&i| self.height(i) < target && !self.removed().contains(&i))
        {
            self.context.sleep(Duration::from_millis(100)).await;
            polls += 1;
            assert!(
                polls < 1_200,
                "members {live:?} did not reach height {target}: heights {:?}",
                self.heights()
            );
        }
    }
}

impl World {
    /// Waits until some member's committed state quarantined someone.
    pub(crate) async fn wait_for_quarantine(&self) {
        let mut polls = 0u64;
        loop {
            let quarantined = self.views.iter().any(|view| {
                view.lock()
                    .unwrap()
                    .engine
                    .membership()
                    .is_some_and(|m| m.quarantined() > 0 || m.epoch() > 0)
            });
            if quarantined {
                return;
            }
            self.context.sleep(Duration::from_millis(50)).await;
            polls += 1;
            assert!(
                polls < 2_400,
                "nobody was quarantined: heights {:?}",
                self.heights()
            );
        }
    }

    /// Waits until the committee removed someone at an epoch change. Two virtual minutes
    /// without it is a failure of the sentinel or the reshare.
    pub(crate) async fn wait_for_removal(&self) {
        let mut polls = 0u64;
        while self.removed().is_empty() {
            self.context.sleep(Duration::from_millis(100)).await;
            polls += 1;
            assert!(
                polls < 1_200,
                "nobody was removed: heights {:?}, quarantined {:?}",
                self.heights(),
                self.views
                    .iter()
                    .map(|v| v
                        .lock()
                        .unwrap()
                        .engine
                        .membership()
                        .map(|m| m.quarantined()))
                    .collect::<Vec<_>>()
            );
        }
    }
}

/// Milliseconds since the Unix epoch by the simulation's virtual clock.
pub(crate) fn unix_ms(context: &impl Clock) -> u64 {
    u64::try_from(
        context
            .current()
            .duration_since(UNIX_EPOCH)
            .expect("the virtual clock never reads before the Unix epoch")
            .as_millis(),
    )
    .expect("virtual milliseconds fit in u64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_skews_stay_within_the_bound_and_follow_the_seed() {
        let scenario = |seed| Scenario {
            clock_skew_ms: 2_000,
            ..Scenario::new(seed, 7)
        };
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let skews = clock_skews(&scenario(seed));
            assert_eq!(skews.len(), 7);
            assert!(skews.iter().all(|s| s.abs() <= 2_000), "{skews:?}");
            assert_eq!(skews, clock_skews(&scenario(seed)));
            seen.extend(skews.iter().map(|s| s.signum()));
        }
        // Ahead and behind both happen.
        assert!(seen.contains(&1) && seen.contains(&-1), "{seen:?}");
        assert_eq!(clock_skews(&Scenario::new(3, 4)), vec![0; 4]);
    }
}
