//! The vault's files in `<data_dir>/vault/`, sealed by a [`Sealer`], written atomically and
//! synced (file, then directory) before a call returns.
//!
//! | file | holds | bound to |
//! |---|---|---|
//! | `<chain>.<epoch>.share` | the member's [`KeyShare`] | chain, group key, member, epoch |
//! | `<chain>.<epoch>.nonces` | its unspent [`NonceBook`] | chain, group key, member, epoch |
//! | `<chain>.watermarks` | the withdrawals it released shares for | chain, group key, member |
//! | `<chain>.<epoch>.dkg-seed` | its key generation's randomness, until the shares are stored | chain, member, epoch |

use std::path::{Path, PathBuf};

use bulwark_vault::keygen::KeyShare;
use bulwark_vault::release::{VaultSuite, Watermarks};
use bulwark_vault::signing::NonceBook;
use bulwark_vault::{Chain, Member};

use crate::{Sealer, ShareBinding, StoreError};

/// Longest vault file read, bytes.
pub const FILE_BYTES_MAX: usize = 1 << 20;

/// One member's vault directory and the sealer that guards it.
pub struct VaultFiles<S: Sealer> {
    dir: PathBuf,
    sealer: S,
    member: Member,
}

fn file_error(path: &Path, reason: impl ToString) -> StoreError {
    StoreError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl<S: Sealer> VaultFiles<S> {
    /// The vault directory under `data_dir` (created 0700 if missing) for member `member`.
    pub fn open(data_dir: &Path, member: Member, sealer: S) -> Result<Self, StoreError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let dir = data_dir.join("vault");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| file_error(&dir, e))?;
        Ok(Self {
            dir,
            sealer,
            member,
        })
    }

    /// The sealer (to report which backend guards the vault).
    pub fn sealer(&self) -> &S {
        &self.sealer
    }

    fn path(&self, chain: Chain, epoch: Option<u64>, role: &str) -> PathBuf {
        match epoch {
            Some(epoch) => self.dir.join(format!("{}.{epoch}.{role}", chain.name())),
            None => self.dir.join(format!("{}.{role}", chain.name())),
        }
    }

    fn binding(&self, role: &'static str, chain: Chain, group_key: &[u8], epoch: u64) -> Vec<u8> {
        ShareBinding {
            role,
            chain,
            group_key: group_key.to_vec(),
            member: self.member,
            epoch,
        }
        .associated_data()
    }

    fn store(&mut self, path: &Path, ad: &[u8], plaintext: &[u8]) -> Result<(), StoreError> {
        let sealed = self.sealer.seal(ad, plaintext)?;
        write_private(path, &sealed)
    }

    fn load(
        &mut self,
        path: &Path,
        ad: &[u8],
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let sealed = read_private(path)?;
        self.sealer
            .open(ad, &sealed)
            .map_err(|_| StoreError::Open(path.display().to_string()))
            .map(Some)
    }

    /// Stores the member's share of epoch `epoch`.
    pub fn put_share<C: VaultSuite>(
        &mut self,
        epoch: u64,
        share: &KeyShare<C>,
    ) -> Result<(), StoreError> {
        if share.member() != self.member {
            return Err(StoreError::Content(
                "share".into(),
                format!(
                    "member {}'s share in member {}'s vault",
                    share.member(),
                    self.member
                ),
            ));
        }
        let path = self.path(C::CHAIN, Some(epoch), "share");
        let ad = self.binding("share", C::CHAIN, &share.group_key(), epoch);
        self.store(&path, &ad, &zeroize::Zeroizing::new(share.to_bytes()))
    }

    /// The member's share of epoch `epoch` for the key `group_key`, if stored.
    pub fn share<C: VaultSuite>(
        &mut self,
        epoch: u64,
        group_key: &[u8],
    ) -> Result<Option<KeyShare<C>>, StoreError> {
        let path = self.path(C::CHAIN, Some(epoch), "share");
        let ad = self.binding("share", C::CHAIN, group_key, epoch);
        let Some(bytes) = self.load(&path, &ad)? else {
            return Ok(None);
        };
        let share = KeyShare::<C>::from_bytes(&bytes)
            .map_err(|e| StoreError::Content(path.display().to_string(), e.to_string()))?;
        if share.member() != self.member || share.group_key() != group_key {
            return Err(StoreError::Content(
                path.display().to_string(),
                "another member's or key's share".into(),
            ));
        }
        Ok(Some(share))
    }

    /// Stores the randomness of this member's key generation for `chain` in `epoch` before its
    /// first message leaves, so that a member restarting mid-ceremony sends the same round-1
    /// package again (a new one would leave the members with different keys).
    pub fn put_dkg_seed(
        &mut self,
        chain: Chain,
        epoch: u64,
        seed: &[u8; 32],
    ) -> Result<(), StoreError> {
        let path = self.path(chain, Some(epoch), "dkg-seed");
        let ad = self.binding("dkg-seed", chain, &[], epoch);
        self.store(&path, &ad, seed)
    }

    /// The stored key-generation randomness for `chain` in `epoch`, if any.
    pub fn dkg_seed(&mut self, chain: Chain, epoch: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let path = self.path(chain, Some(epoch), "dkg-seed");
        let ad = self.binding("dkg-seed", chain, &[], epoch);
        match self.load(&path, &ad)? {
            None => Ok(None),
            Some(bytes) => <[u8; 32]>::try_from(&bytes[..]).map(Some).map_err(|_| {
                StoreError::Content(path.display().to_string(), "not 32 bytes".into())
            }),
        }
    }

    /// Deletes the key-generation randomness for `chain` in `epoch` (once the shares are stored).
    pub fn forget_dkg_seed(&mut self, chain: Chain, epoch: u64) -> Result<(), StoreError> {
        let path = self.path(chain, Some(epoch), "dkg-seed");
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_error(&path, e)),
        }
    }

    /// Stores the unspent nonces of epoch `epoch`. Call it after every
    /// [`NonceBook::spend`] and before the share made with those nonces leaves.
    pub fn put_nonces<C: VaultSuite>(
        &mut self,
        epoch: u64,
        group_key: &[u8],
        book: &NonceBook<C>,
    ) -> Result<(), StoreError> {
        let path = self.path(C::CHAIN, Some(epoch), "nonces");
        let ad = self.binding("nonces", C::CHAIN, group_key, epoch);
        self.store(&path, &ad, &zeroize::Zeroizing::new(book.to_bytes()))
    }

    /// The unspent nonces of epoch `epoch` (an empty book if none were stored).
    pub fn nonces<C: VaultSuite>(
        &mut self,
        epoch: u64,
        group_key: &[u8],
    ) -> Result<NonceBook<C>, StoreError> {
        let path = self.path(C::CHAIN, Some(epoch), "nonces");
        let ad = self.binding("nonces", C::CHAIN, group_key, epoch);
        match self.load(&path, &ad)? {
            None => Ok(NonceBook::default()),
            Some(bytes) => NonceBook::from_bytes(&bytes)
                .map_err(|e| StoreError::Content(path.display().to_string(), e.to_string())),
        }
    }

    /// Stores the watermarks of `chain`. Call it after [`Watermarks::mark`] and before any share
    /// for the withdrawal leaves.
    pub fn put_watermarks(
        &mut self,
        chain: Chain,
        group_key: &[u8],
        watermarks: &Watermarks,
    ) -> Result<(), StoreError> {
        let path = self.path(chain, None, "watermarks");
        let ad = self.binding("watermarks", chain, group_key, 0);
        let bytes = serde_json::to_vec(watermarks).expect("watermarks must serialize");
        self.store(&path, &ad, &bytes)
    }

    /// The watermarks of `chain` (none if never stored).
    pub fn watermarks(&mut self, chain: Chain, group_key: &[u8]) -> Result<Watermarks, StoreError> {
        let path = self.path(chain, None, "watermarks");
        let ad = self.binding("watermarks", chain, group_key, 0);
        match self.load(&path, &ad)? {
            None => Ok(Watermarks::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Content(path.display().to_string(), e.to_string())),
        }
    }

    /// Deletes `chain`'s shares and nonces of every epoch before `epoch` (after a refresh
    /// finished and the new shares are stored). Returns how many files it removed.
    pub fn prune_before(&mut self, chain: Chain, epoch: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        let entries = std::fs::read_dir(&self.dir).map_err(|e| file_error(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| file_error(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut parts = name.split('.');
            let (Some(c), Some(e), Some(role), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if c != chain.name() || !(role == "share" || role == "nonces") {
                continue;
            }
            if e.parse::<u64>().is_ok_and(|e| e < epoch) {
                std::fs::remove_file(entry.path()).map_err(|e| file_error(&entry.path(), e))?;
                removed += 1;
            }
        }
        sync_dir(&self.dir)?;
        Ok(removed)
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_error(dir, e))
}

/// Reads a private file: no symlink, not readable or writable by others, at most
/// [`FILE_BYTES_MAX`] bytes.
pub fn read_private(path: &Path) -> Result<Vec<u8>, StoreError> {
    use std::io::Read as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| file_error(path, e))?;
    let mode = file
        .metadata()
        .map_err(|e| file_error(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(file_error(
            path,
            format!(
                "mode {:o} lets other users read or write it; chmod 600",
                mode & 0o777
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, e))?;
    if bytes.len() > FILE_BYTES_MAX {
        return Err(file_error(
            path,
            format!("longer than {FILE_BYTES_MAX} bytes"),
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically, 0600, synced with its directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let name = path
        .file_name()
        .map_or_else(|| "vault".into(), |n| n.to_string_lossy().into_owned());
    let temporary = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)
        .map_err(|e| file_error(&temporary, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| file_error(path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    Ok(())
}
