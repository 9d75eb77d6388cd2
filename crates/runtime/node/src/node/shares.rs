//! The node's share of each epoch's key, sealed by its keystore: `dkg.share` for the genesis
//! epoch (written by the genesis ceremony), `dkg.share.<epoch>.<attempt>` for every reshare
//! attempt that completed after it. Each is bound to the committee, this member, its epoch and
//! attempt, so a file copied from another member, committee, epoch or attempt does not open. The replica deletes the files of older epochs once the
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

    /// The file of `epoch`'s share from `attempt`.
    pub(super) fn path(dir: &Path, epoch: u64, attempt: u16) -> PathBuf {
        if epoch == 0 {
            dir.join(SHARE_FILE)
        } else {
            dir.join(format!("{SHARE_FILE}.{epoch}.{attempt}"))
        }
    }

    /// The (epoch, attempt) of every reshared share file in `dir` (genesis excluded).
    pub(super) fn reshared(dir: &Path) -> Vec<(u64, u16)> {
        let prefix = format!("{SHARE_FILE}.");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut found: Vec<(u64, u16)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let (epoch, attempt) = name.to_str()?.strip_prefix(&prefix)?.split_once('.')?;
                Some((epoch.parse().ok()?, attempt.parse().ok()?))
            })
            .filter(|(epoch, _)| *epoch > 0)
            .collect();
        found.sort_unstable();
        found
    }

    /// The keystore binding of a share: the genesis one is the committee and the member (as the
    /// genesis ceremony sealed it); later ones add the epoch and attempt.
    fn identity(&self, epoch: u64, attempt: u16) -> Vec<u8> {
        let mut identity = [&self.committee[..], &self.me.encode()[..]].concat();
        if epoch > 0 {
            identity.extend_from_slice(&epoch.to_be_bytes());
            identity.extend_from_slice(&attempt.to_be_bytes());
        }
        identity
    }
}

impl ShareStore for SealedShares {
    fn load(&self, epoch: u64, players: &Set<PublicKey>) -> Result<Vec<Completed>, String> {
        let attempts: Vec<u16> = if epoch == 0 {
            vec![0]
        } else {
            Self::reshared(&self.dir)
                .into_iter()
                .filter(|(e, _)| *e == epoch)
                .map(|(_, attempt)| attempt)
                .collect()
        };
        let mut out = Vec::new();
        for attempt in attempts {
            let path = Self::path(&self.dir, epoch, attempt);
            if !path.exists() {
                continue;
            }
            let identity = self.identity(epoch, attempt);
            let binding = keystore::Binding {
                role: keystore::SHARE_ROLE,
                identity: &identity,
            };
            let bytes = self
                .store
                .unseal(&path, &binding)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            out.push(
                Completed::decode(&bytes, players)
                    .map_err(|e| format!("{}: not this epoch's share: {e}", path.display()))?,
            );
        }
        Ok(out)
    }

    fn store(&mut self, epoch: u64, attempt: u16, completed: &Completed) -> Result<(), String> {
        let path = Self::path(&self.dir, epoch, attempt);
        let identity = self.identity(epoch, attempt);
        let binding = keystore::Binding {
            role: keystore::SHARE_ROLE,
            identity: &identity,
        };
        self.store
            .seal(&path, &binding, &completed.encode())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    fn prune(&mut self, epoch: u64) -> Result<(), String> {
        let mut old: Vec<(u64, u16)> = Self::reshared(&self.dir)
            .into_iter()
            .filter(|(e, _)| *e < epoch)
            .collect();
        if epoch > 0 {
            old.push((0, 0));
        }
        for (e, attempt) in old {
            let path = Self::path(&self.dir, e, attempt);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(format!("{}: {error}", path.display())),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
    use commonware_cryptography::bls12381::primitives::sharing::Mode;
    use commonware_cryptography::bls12381::primitives::variant::MinSig;
    use commonware_cryptography::{ed25519, Signer as _};
    use commonware_utils::N3f1;
    use rand_core::SeedableRng as _;

    /// A temporary directory removed when dropped.
    struct Dir(PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn shares_are_sealed_per_epoch_and_attempt_and_older_epochs_are_deleted() {
        let root = std::env::temp_dir().join(format!("bulwark-shares-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let dir = Dir(root);
        let keys: Vec<PublicKey> = (0..4u64)
            .map(|i| ed25519::PrivateKey::from_seed(i).public_key())
            .collect();
        let players = Set::try_from(keys.clone()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (output, shares) =
            deal::<MinSig, PublicKey, N3f1>(&mut rng, Mode::NonZeroCounter, players.clone())
                .unwrap();
        let me = keys[0].clone();
        let completed = Completed {
            output,
            share: shares.get_value(&me).unwrap().clone(),
            transcript: [0; 32],
        };
        let store = Arc::new(keystore::Keystore::from_key(
            [3; 32],
            keystore::Migration::Refuse,
        ));
        let mut sealed = SealedShares::new(dir.path(), store.clone(), [9; 32], me.clone());
        sealed.store(0, 0, &completed).unwrap();
        sealed.store(1, 0, &completed).unwrap();
        sealed.store(1, 2, &completed).unwrap();
        assert_eq!(sealed.load(1, &players).unwrap().len(), 2);
        assert_eq!(sealed.load(0, &players).unwrap(), vec![completed.clone()]);
        // Another member's binding does not open them.
        let other = SealedShares::new(dir.path(), store, [9; 32], keys[1].clone());
        assert!(other.load(1, &players).is_err());
        // A file moved to another attempt's name does not open either.
        std::fs::copy(
            SealedShares::path(dir.path(), 1, 2),
            SealedShares::path(dir.path(), 2, 0),
        )
        .unwrap();
        assert!(sealed.load(2, &players).is_err());
        std::fs::remove_file(SealedShares::path(dir.path(), 2, 0)).unwrap();
        sealed.prune(1).unwrap();
        assert!(
            !SealedShares::path(dir.path(), 0, 0).exists(),
            "genesis share deleted"
        );
        assert_eq!(sealed.load(1, &players).unwrap().len(), 2);
        sealed.prune(2).unwrap();
        assert!(sealed.load(1, &players).unwrap().is_empty());
        assert!(SealedShares::reshared(dir.path()).is_empty());
    }
}
