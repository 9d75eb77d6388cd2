//! Wiring one committee member: one simplex (BLS12-381 threshold) per epoch in front of a
//! [`Replica`], over
//! whatever p2p network and runtime the caller brings. The seeded simulation (deterministic
//! runtime, simulated network) and the production node (tokio, authenticated p2p) both start
//! members through [`start_member`], so the tests exercise the production wiring.

use crate::epoch::EpochStart;
use crate::log::LogError;
use crate::replica::{Config as ReplicaConfig, Epochs, Mailbox, PublicKey, Replica, Scheme};
use commonware_consensus::simplex::config::{Config, Floor, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::{max_payload_size, Engine};
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::Sha256;
use commonware_macros::select;
use commonware_p2p::utils::mux::{prefixed, Muxer};
use commonware_p2p::{Blocker, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, Supervisor};
use commonware_utils::{NZDuration, NZUsize, NZU16};
use rand_core::CryptoRng;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

/// Consensus signing namespace. Changing it is a breaking change.
pub const CONSENSUS_NAMESPACE: &[u8] = b"bulwark/node/consensus/v1";

/// p2p channel of simplex votes.
pub const CHANNEL_VOTES: u64 = 0;
/// p2p channel of simplex certificates.
pub const CHANNEL_CERTIFICATES: u64 = 1;
/// p2p channel of simplex's resolver (fetching certificates of missed views).
pub const CHANNEL_RESOLVER: u64 = 2;
/// p2p channel of whole blocks (broadcasts and answers to requests).
pub const CHANNEL_BLOCKS: u64 = 3;
/// p2p channel of block requests by digest.
pub const CHANNEL_REQUESTS: u64 = 4;
/// p2p channel of the sentinel's accusations (channel 8 carries reshares, see
/// [`crate::epoch::CHANNEL_RESHARE`]; 5 to 7, 10 and 11 are the node's; 12 carries catch-up, see
/// [`crate::catchup::CHANNEL_CATCHUP`]).
pub const CHANNEL_ACCUSATIONS: u64 = 9;

/// Lower-case hex of a member's p2p public key, as configs, evidence and logs name it.
pub fn public_key_hex(key: &PublicKey) -> String {
    use commonware_codec::Encode as _;
    hex::encode(key.encode())
}

/// The largest p2p message any channel carries for a committee of `n`: simplex's messages on
/// their per-epoch subchannel, a block, or a catch-up answer (a block with its certificate).
pub fn max_message_size(n: u32) -> u32 {
    commonware_p2p::max_message_size(&[
        prefixed(max_payload_size::<Scheme, Digest>(n)),
        crate::block::BLOCK_BYTES_MAX,
        crate::catchup::FRAME_BYTES_MAX,
    ])
}

/// One member's eight channels, each a (sender, receiver) pair.
pub struct Channels<S, R> {
    /// [`CHANNEL_VOTES`].
    pub votes: (S, R),
    /// [`CHANNEL_CERTIFICATES`].
    pub certificates: (S, R),
    /// [`CHANNEL_RESOLVER`].
    pub resolver: (S, R),
    /// [`CHANNEL_BLOCKS`].
    pub blocks: (S, R),
    /// [`CHANNEL_REQUESTS`].
    pub requests: (S, R),
    /// [`crate::epoch::CHANNEL_RESHARE`].
    pub reshare: (S, R),
    /// [`CHANNEL_ACCUSATIONS`].
    pub accusations: (S, R),
    /// [`crate::catchup::CHANNEL_CATCHUP`].
    pub catchup: (S, R),
}

/// How long the previous epoch's consensus keeps running after the next epoch started, for a
/// member that has not committed the boundary block yet (it re-proposes that block meanwhile).
pub const OLD_EPOCH_GRACE: Duration = Duration::from_secs(60);

/// Consensus timing. The defaults suit a committee on one continent.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long to wait for a leader's proposal before voting to skip the view.
    pub leader_timeout: Duration,
    /// How long to wait for a notarized proposal to be certified.
    pub certification_timeout: Duration,
    /// How often to rebroadcast votes in a stalled view.
    pub timeout_retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            leader_timeout: Duration::from_secs(1),
            certification_timeout: Duration::from_secs(2),
            timeout_retry: Duration::from_millis(500),
        }
    }
}

/// What a member's orchestrator shows: the epoch its consensus runs in, and whether it signs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EpochStatus {
    /// The newest epoch this member entered.
    pub epoch: u64,
    /// Whether it runs that epoch's consensus (false: it left the committee or holds no share).
    pub participating: bool,
}

/// Shared epoch status.
pub type SharedEpoch = Arc<Mutex<EpochStatus>>;

/// The running member: the orchestrator (which runs each epoch's simplex) and the replica actor.
pub struct Member {
    /// The orchestrator's task; the simplex engines and channel muxers are its children.
    pub simplex: Handle<()>,
    /// The replica actor's task.
    pub replica: Handle<()>,
    /// The epoch the member is in.
    pub epoch: SharedEpoch,
}

impl Member {
    /// Stops both tasks at once (an unclean stop, like a crash).
    pub fn abort(&self) {
        self.simplex.abort();
        self.replica.abort();
    }
}

/// Everything one member needs besides its runtime, network and channels.
pub struct MemberConfig {
    /// The replica's configuration (its share store gives each epoch's signer).
    pub replica: ReplicaConfig,
    /// Prefix of this member's storage partitions: unique per member on a shared storage
    /// (the simulation), the same across restarts of one member.
    pub partition_prefix: String,
    /// Consensus timing.
    pub timing: Timing,
}

/// Starts one member: replays its finalized log, then runs each epoch's simplex over
/// `channels` (votes, certificates and resolver are muxed by epoch, so a message of one
/// epoch never reaches another epoch's engine, which would block its sender).
pub async fn start_member<E, B, S, R>(
    context: E,
    config: MemberConfig,
    blocker: B,
    channels: Channels<S, R>,
) -> Result<Member, LogError>
where
    E: Clock + Spawner + Supervisor + Storage + Metrics + CryptoRng + Send + 'static,
    B: Blocker<PublicKey = PublicKey>,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let MemberConfig {
        replica,
        partition_prefix,
        timing,
    } = config;
    let (actor, mailbox, epochs) = Replica::init(context.child("replica"), replica).await?;
    let Channels {
        votes,
        certificates,
        resolver,
        blocks,
        requests,
        reshare,
        accusations,
        catchup,
    } = channels;
    let replica = actor.start(blocks, requests, reshare, accusations, catchup);
    let epoch = SharedEpoch::default();
    let status = epoch.clone();
    let simplex = context
        .child("orchestrator")
        .spawn(move |context| async move {
            let orchestrator = Orchestrator {
                mailbox,
                blocker,
                timing,
                partition_prefix,
                status,
            };
            orchestrator
                .run(context, epochs, [votes, certificates, resolver])
                .await;
        });
    Ok(Member {
        simplex,
        replica,
        epoch,
    })
}

/// Runs each epoch's simplex engine in turn. The engine of the epoch before stays up until the
/// next change, so a member that has not committed the boundary yet can still finish the old
/// epoch (its certificates come from that engine's resolver).
struct Orchestrator<B> {
    mailbox: Mailbox,
    blocker: B,
    timing: Timing,
    partition_prefix: String,
    status: SharedEpoch,
}

impl<B: Blocker<PublicKey = PublicKey>> Orchestrator<B> {
    async fn run<E, S, R>(mut self, context: E, epochs: Epochs, channels: [(S, R); 3])
    where
        E: Clock + Spawner + Supervisor + Storage + Metrics + CryptoRng + Send + 'static,
        S: Sender<PublicKey = PublicKey>,
        R: Receiver<PublicKey = PublicKey>,
    {
        let Epochs { current, mut next } = epochs;
        let mut handles = Vec::with_capacity(3);
        for (name, (sender, receiver)) in ["votes_mux", "certificates_mux", "resolver_mux"]
            .into_iter()
            .zip(channels)
        {
            let (muxer, handle) = Muxer::new(context.child(name), sender, receiver);
            muxer.start();
            handles.push(handle);
        }
        let mut running: Vec<Handle<()>> = Vec::new();
        // When the previous epoch's engine stops: it only re-proposes the boundary block by then.
        let mut retire_at: Option<std::time::SystemTime> = None;
        let mut start = current;
        loop {
            let engine = self.start_epoch(&context, &mut handles, &start).await;
            *self
                .status
                .lock()
                .expect("the epoch status lock must not be poisoned") = EpochStatus {
                epoch: start.epoch,
                participating: engine.is_some(),
            };
            if let Some(engine) = engine {
                running.push(engine);
            }
            // The current epoch's engine and, for a while, the one before it.
            while running.len() > 2 {
                running.remove(0).abort();
            }
            if running.len() == 2 {
                retire_at = Some(context.current() + OLD_EPOCH_GRACE);
            }
            loop {
                // Nothing to retire: wake up now and then anyway.
                let wake = retire_at.unwrap_or_else(|| context.current() + OLD_EPOCH_GRACE);
                select! {
                    _ = context.sleep_until(wake) => {
                        if running.len() == 2 {
                            running.remove(0).abort();
                            info!("stopped the previous epoch's consensus");
                        }
                        retire_at = None;
                    },
                    epoch = next.recv() => {
                        match epoch {
                            Some(epoch) => {
                                start = epoch;
                                break;
                            }
                            None => return,
                        }
                    },
                }
            }
        }
    }

    /// Starts `start`'s simplex engine on its subchannels; `None` when this member does not
    /// sign in that epoch.
    async fn start_epoch<E, S>(
        &mut self,
        context: &E,
        handles: &mut [commonware_p2p::utils::mux::MuxHandle<S>],
        start: &EpochStart,
    ) -> Option<Handle<()>>
    where
        E: Clock + Spawner + Supervisor + Storage + Metrics + CryptoRng + Send + 'static,
        S: Sender<PublicKey = PublicKey>,
    {
        let epoch = start.epoch;
        let Some(keys) = &start.keys else {
            info!(
                epoch,
                "not a signer in this epoch; its consensus runs without this member"
            );
            return None;
        };
        let scheme = Scheme::signer(
            CONSENSUS_NAMESPACE,
            start.participants.clone(),
            keys.polynomial().clone(),
            keys.share.clone(),
        );
        let Some(scheme) = scheme else {
            warn!(
                epoch,
                "this member's share does not fit the epoch's committee"
            );
            return None;
        };
        let mut subchannels = Vec::with_capacity(3);
        for handle in handles.iter_mut() {
            match handle.register(epoch).await {
                Ok(pair) => subchannels.push(pair),
                Err(error) => {
                    warn!(epoch, %error, "cannot open the epoch's subchannel");
                    return None;
                }
            }
        }
        let mailbox = self
            .mailbox
            .for_epoch(epoch, start.participants.iter().cloned().collect());
        let timing = self.timing;
        let engine = Engine::new(
            context.child("simplex").with_attribute("epoch", epoch),
            Config {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                blocker: self.blocker.clone(),
                automaton: mailbox.clone(),
                relay: mailbox.clone(),
                reporter: mailbox,
                track_historical_votes: false,
                strategy: Sequential,
                partition: format!("{}-simplex-epoch-{epoch}", self.partition_prefix),
                mailbox_size: NZUsize!(1024),
                epoch: Epoch::new(epoch),
                floor: Floor::Genesis(start.boundary),
                replay_buffer: NZUsize!(1024 * 1024),
                write_buffer: NZUsize!(1024 * 1024),
                page_cache: CacheRef::new(NZU16!(16_384), NZUsize!(10_000)),
                leader_timeout: timing.leader_timeout,
                certification_timeout: timing.certification_timeout,
                timeout_retry: timing.timeout_retry,
                view_retention: ViewDelta::new(10),
                skip: SkipPolicy::Enabled {
                    timeout: timing.certification_timeout * 5 / 2,
                    budget: SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(Duration::from_secs(1)),
                fetch_retry_delay: Duration::from_millis(100),
                forward: ForwardPolicy::Disabled,
            },
        );
        let mut subchannels = subchannels.into_iter();
        let (votes, certificates, resolver) =
            match (subchannels.next(), subchannels.next(), subchannels.next()) {
                (Some(v), Some(c), Some(r)) => (v, c, r),
                _ => return None,
            };
        info!(
            epoch,
            participants = start.participants.len(),
            "consensus of the epoch started"
        );
        Some(engine.start(votes, certificates, resolver))
    }
}
