//! The node's p2p network configuration: commonware's `lookup` network (fixed addresses,
//! authenticated and encrypted; only peers in the tracked set may connect), set so that a
//! cut-off lasts.
//!
//! commonware keeps the last `tracked_peer_sets` sets a node tracked and lets any peer in any
//! of them connect, and a blocked peer back once `block_duration` has passed. With its defaults
//! (4 sets) a peer whose appraisal lapsed stayed connected until three more admission changes,
//! and a contraindicated peer, which admission blocked, could come back when its block expired
//! (1 h, or 4 h in `recommended`). Here the node tracks exactly one set, the members with a
//! current affirming appraisal: replacing it tears down every connection to a peer no longer in
//! it at once, and a peer outside it cannot connect at all. Admission cuts a peer off by the set
//! alone, so the cut-off lasts exactly until a fresh affirming appraisal readmits it; commonware's
//! own blocks (a peer misbehaving on the wire, as simplex reports it) keep their default length.

use commonware_cryptography::ed25519;
use commonware_cryptography::ChaCha20Poly1305;
use commonware_p2p::authenticated::lookup;
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::NZUsize;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

/// The handshake every member uses (SAKE authentication, CUPS encryption).
pub type Handshake = Cups<Sake<ed25519::PrivateKey>, ChaCha20Poly1305>;

/// Peer sets the node keeps: one, the current admitted set.
pub const TRACKED_PEER_SETS: usize = 1;

/// Where and how a node's p2p network runs.
#[derive(Debug, Clone)]
pub struct P2pSettings {
    /// The node's key (its p2p identity).
    pub signer: ed25519::PrivateKey,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Allow private and loopback addresses (a committee on one host).
    pub loopback: bool,
    /// Committee size: the most peers in a set.
    pub members: NonZeroUsize,
    /// The largest message.
    pub max_message_size: u32,
}

/// The `lookup` configuration of a node.
pub fn config(settings: &P2pSettings, namespace: &[u8]) -> lookup::Config<Handshake> {
    let handshake = Cups::new(
        Sake {
            signer: settings.signer.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    // `local` allows private and loopback peer addresses; `recommended` refuses them.
    let base = if settings.loopback {
        lookup::Config::local
    } else {
        lookup::Config::recommended
    };
    let mut config = base(
        handshake,
        namespace,
        settings.listen,
        settings.members,
        settings.max_message_size,
        NZUsize!(1024),
    );
    config.tracked_peer_sets = NZUsize!(TRACKED_PEER_SETS);
    config
}
