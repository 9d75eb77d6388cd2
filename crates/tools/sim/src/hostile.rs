//! The simulator's hostile members, shared by every scenario: a member that floods every
//! channel with garbage, one that equivocates on every vote, the observations of an oracle
//! member that tries to occupy the pools with far-future rounds, and a client that malleates its
//! own signatures, and a member flooding well-formed blocks nobody asked for. Later issues add
//! more here.

use bulwark_consensus::committee::{Channels, Member};
use bulwark_consensus::replica::{PublicKey, Scheme};
use commonware_p2p::Recipients;
use commonware_runtime::{Clock, Handle, IoBuf, Spawner, Supervisor};
use std::time::Duration;

/// A Byzantine member that sends random bytes of random lengths on every channel to everyone,
/// every 5 ms, and reads nothing.
pub fn flood_garbage<E, S, R>(context: E, channels: Channels<S, R>) -> Member
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
        reshare,
        accusations,
        catchup,
    } = channels;
    let mut senders = vec![
        votes.0,
        certificates.0,
        resolver.0,
        blocks.0,
        requests.0,
        reshare.0,
        accusations.0,
        catchup.0,
    ];
    let receivers = vec![
        votes.1,
        certificates.1,
        resolver.1,
        blocks.1,
        requests.1,
        reshare.1,
        accusations.1,
        catchup.1,
    ];
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
    let drain = hold_open(&context, "drain", receivers);
    Member {
        simplex: flood,
        replica: drain,
        epoch: Default::default(),
    }
}

/// A Byzantine member that equivocates: it answers every notarize or finalize vote it receives
/// with two votes of its own for that view, one for the received proposal and one for a random
/// payload.
pub fn equivocate<E, S, R>(context: E, scheme: Scheme, channels: Channels<S, R>) -> Member
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
        reshare,
        accusations,
        catchup,
    } = channels;
    let others = (
        certificates,
        resolver,
        blocks,
        requests,
        reshare,
        (accusations, catchup),
    );
    let votes = context
        .child("equivocate")
        .spawn(move |mut context| async move {
            while let Ok((_, bytes)) = receiver.recv().await {
                // Votes travel on their epoch's subchannel: answer on the same one.
                let raw = bytes.as_ref().to_vec();
                let Ok((_, payload)) = commonware_p2p::utils::mux::parse(bytes) else {
                    continue;
                };
                let prefix = raw[..raw.len() - payload.len()].to_vec();
                let Ok(vote) = Vote::<Scheme, Digest>::decode(payload) else {
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
                    let mut framed = prefix.clone();
                    framed.extend_from_slice(&vote.encode());
                    sender.send(Recipients::All, IoBuf::from(framed), true);
                }
            }
        });
    let idle = hold_open(&context, "idle", others);
    Member {
        simplex: votes,
        replica: idle,
        epoch: Default::default(),
    }
}

/// A Byzantine member that, every 2 ms, sends everyone a well-formed block nobody asked for:
/// a random height within [`bulwark_consensus::replica::BLOCKS_AHEAD_MAX`] of genesis, a
/// random parent and root, no transactions. Each has its own digest, so a store without a
/// per-peer bound keeps every one of them. It runs no replica.
pub fn flood_blocks<E, S, R>(context: E, channels: Channels<S, R>) -> Member
where
    E: Clock + Spawner + Supervisor + rand_core::Rng + Send + 'static,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    use bulwark_consensus::block::Block;
    let Channels {
        votes,
        certificates,
        resolver,
        blocks: (mut sender, blocks_in),
        requests,
        reshare,
        accusations,
        catchup,
    } = channels;
    let flood = context.child("flood").spawn(move |mut context| async move {
        loop {
            let mut parent = [0u8; 32];
            let mut parent_root = [0u8; 32];
            context.fill_bytes(&mut parent);
            context.fill_bytes(&mut parent_root);
            let block = Block {
                epoch: 0,
                height: 1 + u64::from(context.next_u32()) % 1_000,
                view: u64::from(context.next_u32()),
                time_ms: 0,
                parent: commonware_cryptography::sha256::Digest(parent),
                parent_root,
                rounds: Vec::new(),
                txs: Vec::new(),
            };
            sender.send(Recipients::All, IoBuf::from(block.encode()), false);
            context.sleep(Duration::from_millis(2)).await;
        }
    });
    let drain = hold_open(
        &context,
        "drain",
        (
            votes,
            certificates,
            resolver,
            blocks_in,
            requests,
            (reshare, accusations, catchup),
        ),
    );
    Member {
        simplex: flood,
        replica: drain,
        epoch: Default::default(),
    }
}

/// A task that keeps `channels` alive (so peers see them open) without ever reading them.
fn hold_open<E, T>(context: &E, name: &'static str, channels: T) -> Handle<()>
where
    E: Spawner + Supervisor,
    T: Send + 'static,
{
    context.child(name).spawn(move |_| async move {
        let _channels = channels;
        std::future::pending::<()>().await
    })
}

/// What a member trying to occupy the oracle pools sends besides its honest observations:
/// each of them moved to rounds 2^63, u64::MAX - 1 and u64::MAX, validly signed by its own key,
/// and once more with a zeroed signature.
pub fn far_future_observations(
    signer: &bulwark_oracle::node::OracleNode,
    honest: &[bulwark_engine::oracle::SignedObservation],
) -> Vec<bulwark_engine::oracle::SignedObservation> {
    let mut out = Vec::new();
    for observation in honest {
        for round in [1u64 << 63, u64::MAX - 1, u64::MAX] {
            let mut forged = observation.observation;
            forged.round = round;
            let signed = signer.sign(forged);
            let mut unsigned = signed;
            unsigned.signature = [0; 64];
            out.extend([signed, unsigned]);
        }
    }
    out
}

/// A hostile client's transaction: `tx` signed again by its owner `key`, with the torsion point
/// `EIGHT_TORSION[torsion]` (order 1, 2, 4 or 8) added to `R` and the challenge computed over
/// that `R`. It satisfies the cofactored verification equation and, unless the point is the
/// identity, not the cofactorless one, so a cofactorless batch accepts it in some batches only.
pub fn malleate(
    key: &ed25519_dalek::SigningKey,
    mut tx: bulwark_engine::codec::SignedTx,
    torsion: usize,
) -> bulwark_engine::codec::SignedTx {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_TABLE, EIGHT_TORSION};
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest as _, Sha512};
    let secret = Scalar::from_bytes_mod_order(key.to_scalar().to_bytes());
    let public = key.verifying_key().to_bytes();
    let message = tx.signed_message();
    let nonce = Scalar::from_hash(
        Sha512::new()
            .chain_update(tx.signature)
            .chain_update(&message),
    );
    let r = (&nonce * ED25519_BASEPOINT_TABLE + EIGHT_TORSION[torsion % 8])
        .compress()
        .to_bytes();
    let challenge = Scalar::from_hash(
        Sha512::new()
            .chain_update(r)
            .chain_update(public)
            .chain_update(&message),
    );
    let s = nonce + challenge * secret;
    tx.signature[..32].copy_from_slice(&r);
    tx.signature[32..].copy_from_slice(&s.to_bytes());
    tx
}
