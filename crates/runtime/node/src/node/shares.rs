//! The node's share of each epoch's key, sealed by its keystore: `dkg.share` for the genesis
//! epoch (written by the genesis ceremony), `dkg.share.<epoch>` for every reshare after it. Each
//! is bound to the committee, this member and its epoch, so a file copied from another member,
//! committee or epoch does not open. The replica deletes the files of older epochs once the
//! first block of a new epoch is final.

use super::{keystore, SHARE_FILE};
use bulwark_consensus::epoch::ShareStore;
use bulwark_consensus::replica::PublicKey;
use bulwark_custody::dkg::Completed;
use commonware_codec::Encode as _;
use commonware_utils::ordered::Set;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Shares sealed in files under the node's data directory.
pub(super) struct SealedShares {
    dir: PathBuf,
    store: Arc<keystore::Keystore>,
    committee: [u8; 32],
    me: PublicKey,
}

impl SealedShares {
    pub(super) fn new(
        dir: &Path,
        store: Arc<keystore::Keystore>,
        committee: [u8; 32],
        me: PublicKey,
    ) -> Self {
        SealedShares {
            dir: dir.to_path_buf(),
            store,
            committee,
            me,
        }
    }

    /// The file of `epoch`'s share.
    pub(super) fn path(dir: &Path, epoch: u64) -> PathBuf {
        if epoch == 0 {
            dir.join(SHARE_FILE)
        } else {
            dir.join(format!("{SHARE_FILE}.{epoch}"))
        }
    }

    /// The epochs after genesis that have a share file in `dir`.
    pub(super) fn reshared_epochs(dir: &Path) -> Vec<u64> {
        let prefix = format!("{SHARE_FILE}.");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut epochs: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()?
                    .strip_prefix(&prefix)?
                    .parse()
                    .ok()
            })
            .filter(|epoch| *epoch > 0)
            .collect();
        epochs.sort_unstable();
        epochs
    }

    /// The keystore binding of `epoch`'s share: the genesis one is the committee and the
    /// member (as the genesis ceremony sealed it); later ones add the epoch.
    fn identity(&self, epoch: u64) -> Vec<u8> {
        let mut identity = [&self.committee[..], &self.me.encode()[..]].concat();
        if epoch > 0 {
            identity.extend_from_slice(&epoch.to_be_bytes());
        }
        identity
    }
}

impl ShareStore for SealedShares {
    fn load(&self, epoch: u64, players: &Set<PublicKey>) -> Result<Option<Completed>, String> {
        let path = Self::path(&self.dir, epoch);
        if !path.exists() {
            return Ok(None);
        }
        let identity = self.identity(epoch);
        let binding = keystore::Binding {
            role: keystore::SHARE_ROLE,
            identity: &identity,
        };
        let bytes = self
            .store
            .unseal(&path, &binding)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Completed::decode(&bytes, players)
            .map(Some)
            .map_err(|e| format!("{}: not this epoch's share: {e}", path.display()))
    }

    fn store(&mut self, epoch: u64, completed: &Completed) -> Result<(), String> {
        let path = Self::path(&self.dir, epoch);
        let identity = self.identity(epoch);
        let binding = keystore::Binding {
            role: keystore::SHARE_ROLE,
            identity: &identity,
        };
        self.store
            .seal(&path, &binding, &completed.encode())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn prune(&mut self, epoch: u64) -> Result<(), String> {
        let mut old: Vec<u64> = Self::reshared_epochs(&self.dir)
            .into_iter()
            .filter(|e| *e < epoch)
            .collect();
        if epoch > 0 {
            old.push(0);
        }
        for e in old {
            let path = Self::path(&self.dir, e);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(format!("{}: {error}", path.display())),
            }
        }
        Ok(())
    }
}
