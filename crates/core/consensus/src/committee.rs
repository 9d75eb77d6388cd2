//! Wiring one committee member: simplex (BLS12-381 threshold) in front of a [`Replica`], over
//! whatever p2p network and runtime the caller brings. The seeded simulation (deterministic
//! runtime, simulated network) and the production node (tokio, authenticated p2p) both start
//! members through [`start_member`], so the tests exercise the production wiring.

use crate::log::LogError;
use crate::replica::{Config as ReplicaConfig, PublicKey, Replica, Scheme};
use commonware_consensus::simplex::config::{Config, Floor, ForwardPolicy, SkipBudget, SkipPolicy};
use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::{max_payload_size, Engine};
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::Sha256;
use commonware_p2p::{Blocker, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_runtime::{Clock, Handle, Metrics, Spawner, Storage, Supervisor};
use commonware_utils::{NZDuration, NZUsize, NZU16};
use rand_core::CryptoRng;
use std::time::Duration;

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

/// Lower-case hex of a member's p2p public key, as configs, evidence and logs name it.
pub fn public_key_hex(key: &PublicKey) -> String {
    use commonware_codec::Encode as _;
    hex::encode(key.encode())
}

/// The largest p2p message any channel carries for a committee of `n`.
pub fn max_message_size(n: u32) -> u32 {
    commonware_p2p::max_message_size(&[
        max_payload_size::<Scheme, Digest>(n),
        crate::block::BLOCK_BYTES_MAX,
    ])
}

/// One member's five channels, each a (sender, receiver) pair.
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
}

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

/// The running member: simplex and the replica actor.
pub struct Member {
    /// The simplex engine's task.
    pub simplex: Handle<()>,
    /// The replica actor's task.
    pub replica: Handle<()>,
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
    /// This member's consensus signer (its threshold share) for the committee.
    pub scheme: Scheme,
    /// The replica's configuration.
    pub replica: ReplicaConfig,
    /// The genesis digest simplex starts from.
    pub genesis_digest: Digest,
    /// Prefix of this member's storage partitions: unique per member on a shared storage
    /// (the simulation), the same across restarts of one member.
    pub partition_prefix: String,
    /// Consensus timing.
    pub timing: Timing,
}

/// Starts one member: replays its finalized log, then runs simplex over `channels`.
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
        scheme,
        replica,
        genesis_digest,
        partition_prefix,
        timing,
    } = config;
    let (actor, mailbox) = Replica::init(context.child("replica"), replica).await?;
    let engine = Engine::new(
        context.child("simplex"),
        Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: mailbox.clone(),
            relay: mailbox.clone(),
            reporter: mailbox,
            track_historical_votes: false,
            strategy: Sequential,
            partition: format!("{partition_prefix}-simplex-epoch-0"),
            mailbox_size: NZUsize!(1024),
            epoch: Epoch::zero(),
            floor: Floor::Genesis(genesis_digest),
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
    let simplex = engine.start(channels.votes, channels.certificates, channels.resolver);
    let replica = actor.start(channels.blocks, channels.requests);
    Ok(Member { simplex, replica })
}
