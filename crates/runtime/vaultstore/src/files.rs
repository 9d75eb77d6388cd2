//! The vault's files in `<data_dir>/vault/`, sealed by a [`Sealer`], written atomically and
//! synced (file, then directory) before a call returns.
//!
//! | file | holds | bound to |
//! |---|---|---|
//! | `<chain>.<epoch>.share` | the member's [`KeyShare`] | chain, group key, member, epoch |
//! | `<chain>.<epoch>.nonces` | its unspent [`NonceBook`] | chain, group key, member, epoch |
//! | `<chain>.watermarks` | the withdrawals it released shares for, and the nonce slots spent since the book was written | chain, group key, member |
//! | `<chain>.<epoch>.dkg-seed` | its key generation's randomness, until the shares are stored | chain, member, epoch |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bulwark_vault::keygen::KeyShare;
use bulwark_vault::release::{VaultSuite, Watermarks};
use bulwark_vault::signing::NonceBook;
use bulwark_vault::{Chain, Member};

use crate::{Sealer, ShareBinding, StoreError};

/// Longest vault file read, bytes.
pub const FILE_BYTES_MAX: usize = 1 << 20;

/// The watermarks file is written before every share, so it is not replaced (a new file, its
/// sync, a rename and the directory's sync) but rewritten in place with one data sync: two
/// regions, each write going to the one not holding the newest record, which carries a sequence
/// number under the seal. A write torn by a stop leaves the other region, the state before it
/// (no share left on the torn one). Layout: magic (8) ‖ region length (8, big-endian) ‖ two
/// regions of `len (4) ‖ sealed (seq ‖ plaintext)`, zero-padded, the header padded to 4 KiB so
/// that no disk sector holds parts of both regions.
const TWO_REGION_MAGIC: [u8; 8] = *b"bwvault2";
/// Bytes before the first region.
pub const TWO_REGION_HEADER: usize = 4096;
/// Longest two-region file, bytes (the watermarks of both chains at their bound fit).
pub const TWO_REGION_FILE_MAX: usize = 16 << 20;

/// Where the newest record of a two-region file is.
#[derive(Debug, Clone, Copy)]
struct Regions {
    seq: u64,
    region: usize,
    region_len: usize,
}

/// One member's vault directory and the sealer that guards it.
pub struct VaultFiles<S: Sealer> {
    dir: PathBuf,
    sealer: S,
    member: Member,
    regions: BTreeMap<PathBuf, Regions>,
    /// Two-region files whose last read skipped a region that did not open.
    torn: std::collections::BTreeSet<PathBuf>,
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
            regions: BTreeMap::new(),
            torn: std::collections::BTreeSet::new(),
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

    /// Writes a two-region file (see [`TWO_REGION_MAGIC`]): in place, one data sync, when the
    /// record fits its region; else a new file (atomically, as [`write_private`]).
    fn store_in_place(
        &mut self,
        path: &Path,
        ad: &[u8],
        plaintext: &[u8],
    ) -> Result<(), StoreError> {
        use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
        if !self.regions.contains_key(path) && path.exists() {
            // Learn where the newest record is (an older single-record file converts below).
            self.load_in_place(path, ad)?;
        }
        let known = self.regions.get(path).copied();
        let seq = known.map_or(1, |r| r.seq + 1);
        let mut body = zeroize::Zeroizing::new(Vec::with_capacity(8 + plaintext.len()));
        body.extend_from_slice(&seq.to_be_bytes());
        body.extend_from_slice(plaintext);
        let sealed = self.sealer.seal(ad, &body)?;
        let mut record = Vec::with_capacity(4 + sealed.len());
        record.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
        record.extend_from_slice(&sealed);
        if let Some(known) = known.filter(|r| record.len() <= r.region_len) {
            let region = 1 - known.region;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| file_error(path, e))?;
            let offset = (TWO_REGION_HEADER + region * known.region_len) as u64;
            file.write_all_at(&record, offset)
                .and_then(|()| file.sync_data())
                .map_err(|e| file_error(path, e))?;
            self.regions.insert(
                path.to_path_buf(),
                Regions {
                    seq,
                    region,
                    region_len: known.region_len,
                },
            );
            return Ok(());
        }
        // A new file, regions twice the record (64 KiB at least), every byte written (no
        // sparse blocks: an overwrite later needs no metadata).
        let region_len = (record.len() * 2).max(64 * 1024).next_power_of_two();
        let total = TWO_REGION_HEADER + 2 * region_len;
        if total > TWO_REGION_FILE_MAX {
            return Err(file_error(
                path,
                format!("{total} bytes would exceed {TWO_REGION_FILE_MAX}"),
            ));
        }
        let mut bytes = vec![0u8; total];
        bytes[..8].copy_from_slice(&TWO_REGION_MAGIC);
        bytes[8..16].copy_from_slice(&(region_len as u64).to_be_bytes());
        bytes[TWO_REGION_HEADER..TWO_REGION_HEADER + record.len()].copy_from_slice(&record);
        write_private(path, &bytes)?;
        self.regions.insert(
            path.to_path_buf(),
            Regions {
                seq,
                region: 0,
                region_len,
            },
        );
        Ok(())
    }

    /// Reads a two-region file's newest record that opens (or an older single-record file).
    fn load_in_place(
        &mut self,
        path: &Path,
        ad: &[u8],
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let bytes = read_private_bounded(path, TWO_REGION_FILE_MAX)?;
        if bytes.len() < TWO_REGION_HEADER || bytes[..8] != TWO_REGION_MAGIC {
            // Written before the two regions: one sealed record; the next write converts it.
            self.regions.remove(path);
            return self.open_single(path, ad, &bytes);
        }
        let bad = |what: &str| StoreError::Content(path.display().to_string(), what.into());
        let region_len = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        if region_len < 8
            || bytes.len() != TWO_REGION_HEADER + 2 * region_len.min(TWO_REGION_FILE_MAX)
        {
            return Err(bad("two-region file of the wrong length"));
        }
        let mut newest: Option<(u64, usize, zeroize::Zeroizing<Vec<u8>>)> = None;
        self.torn.remove(path);
        for region in 0..2 {
            let start = TWO_REGION_HEADER + region * region_len;
            let area = &bytes[start..start + region_len];
            let len = u32::from_be_bytes(area[..4].try_into().expect("4 bytes")) as usize;
            if len == 0 || len > region_len - 4 {
                continue;
            }
            // A region that does not open was torn by a stop mid-write (or damaged): the other
            // one holds the state before that write. The caller learns of it
            // ([`VaultFiles::take_torn`]). Any other failure (the HSM's session) is an error.
            let opened = match self.sealer.open(ad, &area[4..4 + len]) {
                Ok(opened) => opened,
                Err(StoreError::Open(_)) => {
                    self.torn.insert(path.to_path_buf());
                    continue;
                }
                Err(other) => return Err(other),
            };
            if opened.len() < 8 {
                continue;
            }
            let seq = u64::from_be_bytes(opened[..8].try_into().expect("8 bytes"));
            if newest.as_ref().is_none_or(|(s, _, _)| seq > *s) {
                newest = Some((seq, region, zeroize::Zeroizing::new(opened[8..].to_vec())));
            }
        }
        let Some((seq, region, body)) = newest else {
            return Err(StoreError::Open(path.display().to_string()));
        };
        self.regions.insert(
            path.to_path_buf(),
            Regions {
                seq,
                region,
                region_len,
            },
        );
        Ok(Some(body))
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
        self.open_single(path, ad, &sealed)
    }

    /// Opens the one sealed record read from `path`.
    fn open_single(
        &mut self,
        path: &Path,
        ad: &[u8],
        sealed: &[u8],
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        self.sealer
            .open(ad, sealed)
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
        self.store_in_place(&path, &ad, &bytes)
    }

    /// Whether the last read of `chain`'s watermarks skipped a record that did not open (a write
    /// torn by a stop, or damage): the state read may be older than the newest write, so what
    /// that write recorded (spent nonce slots) is unknown. Asking clears it.
    pub fn take_torn(&mut self, chain: Chain) -> bool {
        let path = self.path(chain, None, "watermarks");
        self.torn.remove(&path)
    }

    /// The watermarks of `chain` (none if never stored).
    pub fn watermarks(&mut self, chain: Chain, group_key: &[u8]) -> Result<Watermarks, StoreError> {
        let path = self.path(chain, None, "watermarks");
        let ad = self.binding("watermarks", chain, group_key, 0);
        match self.load_in_place(&path, &ad)? {
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
    read_private_bounded(path, FILE_BYTES_MAX)
}

/// [`read_private`] with another bound.
fn read_private_bounded(path: &Path, max: usize) -> Result<Vec<u8>, StoreError> {
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
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, e))?;
    if bytes.len() > max {
        return Err(file_error(path, format!("longer than {max} bytes")));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::keystore::KeystoreSealer;

    #[test]
    fn a_single_record_watermarks_file_reads_and_converts_and_a_bad_header_is_an_error() {
        let dir = std::env::temp_dir().join(format!(
            "bulwark-two-region-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let mut files = VaultFiles::open(&dir, 1, KeystoreSealer::development([3; 32])).unwrap();
        let key = [2u8; 33];
        let mut marks = Watermarks::default();
        assert!(marks.mark(Chain::Bitcoin, 7, [1; 32]));
        // The format before the two regions: one sealed record.
        let path = files.path(Chain::Bitcoin, None, "watermarks");
        let ad = files.binding("watermarks", Chain::Bitcoin, &key, 0);
        files
            .store(&path, &ad, &serde_json::to_vec(&marks).unwrap())
            .unwrap();
        assert_eq!(files.watermarks(Chain::Bitcoin, &key).unwrap(), marks);
        assert!(marks.mark(Chain::Bitcoin, 8, [1; 32]));
        files.put_watermarks(Chain::Bitcoin, &key, &marks).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..8], &TWO_REGION_MAGIC);
        assert_eq!(files.watermarks(Chain::Bitcoin, &key).unwrap(), marks);
        // Hostile headers: typed errors, no panic.
        for region_len in [0u64, 3, 1 << 40, u64::MAX] {
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[8..16].copy_from_slice(&region_len.to_be_bytes());
            std::fs::write(&path, &bytes).unwrap();
            assert!(files.watermarks(Chain::Bitcoin, &key).is_err());
        }
        let mut bytes = TWO_REGION_MAGIC.to_vec();
        bytes.extend_from_slice(&16u64.to_be_bytes());
        bytes.extend_from_slice(&[0xff; 32]);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            files.watermarks(Chain::Bitcoin, &key),
            Err(StoreError::Open(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
