//! The genesis key of the committee as this node holds it: loaded from the keystore, or made
//! by the DKG ceremony (`bulwark_custody::dkg`) with every member over the p2p channel and then
//! sealed into the keystore.

use super::{keystore, NodeError, DKG_NAMESPACE, SHARE_FILE};
use bulwark_consensus::replica::PublicKey;
use bulwark_custody::dkg::{Ceremony, Completed, To};
use commonware_codec::Encode as _;
use commonware_cryptography::{ed25519, Signer as _};
use commonware_macros::select;
use commonware_p2p::Recipients;
use commonware_runtime::{Clock, IoBuf, Spawner, Supervisor};
use commonware_utils::ordered::Set;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Loads this node's DKG output, or runs the genesis ceremony with every member and saves it.
/// `None` when the committee has reshared since (a later epoch's share is stored and the genesis
/// share was deleted): the replica takes the current epoch's share itself.
pub(super) async fn genesis_key<E, S, R>(
    mut context: E,
    data_dir: &Path,
    key: ed25519::PrivateKey,
    participants: Set<PublicKey>,
    (mut sender, mut receiver): (S, R),
    store: Arc<keystore::Keystore>,
    committee: [u8; 32],
) -> Result<Option<Completed>, NodeError>
where
    E: Clock + Spawner + Supervisor + rand_core::CryptoRng + Send + 'static,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    let path = data_dir.join(SHARE_FILE);
    // The share is bound to this committee and to this member.
    let identity = [&committee[..], &key.public_key().encode()[..]].concat();
    let binding = keystore::Binding {
        role: keystore::SHARE_ROLE,
        identity: &identity,
    };
    let keystore_error = |e: keystore::KeystoreError| NodeError::File {
        path: path.clone(),
        reason: e.to_string(),
    };
    if !path.exists() && !super::shares::SealedShares::reshared(data_dir).is_empty() {
        info!("the committee has reshared since genesis; the genesis share is gone by design");
        return Ok(None);
    }
    if path.exists() {
        let bytes = store.unseal(&path, &binding).map_err(keystore_error)?;
        let completed = Completed::decode(&bytes, &participants).map_err(|e| NodeError::File {
            path: path.clone(),
            reason: format!("not this committee's DKG share: {e}"),
        })?;
        // Peers still in the ceremony may need our messages: we can no longer send them, so a
        // member that lost its share file is out until the committee reshares (not yet built).
        info!("loaded the genesis DKG share");
        return Ok(Some(completed));
    }
    let (mut ceremony, first) = Ceremony::new(DKG_NAMESPACE, key, participants, &mut context)
        .map_err(|e| NodeError::Dkg(e.to_string()))?;
    // Everything we sent, resent every second until the end: peers that connect late still
    // get it, and the ceremony ignores duplicates.
    let mut sent = first;
    let mut last_status = String::new();
    let completed = loop {
        for message in &sent {
            let recipients = match &message.to {
                To::All => Recipients::All,
                To::One(peer) => Recipients::One(peer.clone()),
            };
            sender.send(recipients, IoBuf::from(message.bytes.clone()), false);
        }
        let deadline = context.current() + Duration::from_secs(1);
        loop {
            select! {
                _ = context.sleep_until(deadline) => break,
                message = receiver.recv() => {
                    let Ok((peer, bytes)) = message else {
                        return Err(NodeError::Dkg("the p2p network stopped".into()));
                    };
                    match ceremony.receive(&peer, bytes.as_ref()) {
                        Ok(out) => sent.extend(out),
                        // Resends are normal (every member repeats itself until the end).
                        Err(error @ bulwark_custody::dkg::DkgError::Duplicate { .. }) => {
                            tracing::debug!(%peer, %error, "DKG message repeated")
                        }
                        Err(error) => warn!(%peer, %error, "DKG message refused"),
                    }
                },
            }
        }
        if let Some(completed) = ceremony.completed() {
            break completed.clone();
        }
        let status = ceremony.status().to_string();
        if status != last_status {
            info!(%status, "genesis DKG in progress");
            last_status = status;
        }
    };
    // Peers still in the ceremony may need our messages: keep answering any DKG message
    // with everything we sent, at most once a second per peer, for the life of the node.
    context
        .child("dkg_answer")
        .spawn(move |context| async move {
            let mut answered: std::collections::HashMap<PublicKey, std::time::SystemTime> =
                std::collections::HashMap::new();
            while let Ok((peer, _)) = receiver.recv().await {
                let now = context.current();
                let due = answered.get(&peer).is_none_or(|at| {
                    now.duration_since(*at).unwrap_or(Duration::ZERO) >= Duration::from_secs(1)
                });
                if !due {
                    continue;
                }
                answered.insert(peer.clone(), now);
                for message in &sent {
                    let wanted = match &message.to {
                        To::All => true,
                        To::One(to) => *to == peer,
                    };
                    if wanted {
                        sender.send(
                            Recipients::One(peer.clone()),
                            IoBuf::from(message.bytes.clone()),
                            false,
                        );
                    }
                }
            }
        });
    store
        .seal(&path, &binding, &completed.encode())
        .map_err(keystore_error)?;
    info!("genesis DKG complete; share saved (encrypted by the keystore)");
    Ok(Some(completed))
}
