//! The keystore: the node's secrets (its node key and its DKG share) encrypted and
//! authenticated at rest (XChaCha20-Poly1305) under one random 32-byte key, each bound to its
//! role and to the identity it belongs to (`bulwark_custody::sealed::Binding`): the committee
//! for the node key, the committee and the member for the share. A file copied from another
//! role, committee or member does not open.
//!
//! With `[admission] mode = "tpm"` that key is sealed by the TPM to PCRs 0–7 and the launch
//! PCR 15 in `keystore.sealed` (see `node::attest::open_keystore`): a node its launcher started
//! from a tampered binary, genesis or operator set cannot unseal it. Otherwise it is the DEVELOPMENT keystore:
//! the key lies in `keystore.key` beside the secrets, which protects against a copy of a secret
//! file alone and says so when used.
//!
//! A plain file (the node key as provisioned) or a version 1 envelope (bound to its label only)
//! is refused, except by the explicit migration `bulwark node --config FILE --migrate-secrets`,
//! which seals it in place and logs every file it converts. Even then only the node key may be
//! plain (a plain DKG share is refused: the node always wrote its share sealed); a version 1
//! envelope opens only under this node's own key. Every secret file must be readable
//! by its owner alone ([`read_private`]).

use bulwark_custody::sealed::{SealError, SealKey};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use tracing::warn;

pub use bulwark_custody::sealed::{Binding, MAGIC};
/// Name of the key file in the data directory (DEVELOPMENT keystore).
pub const KEY_FILE: &str = "keystore.key";
/// Name of the TPM-sealed key file in the data directory (`mode = "tpm"`).
pub const SEALED_KEY_FILE: &str = "keystore.sealed";
/// The node key's role.
pub const NODE_KEY_ROLE: &str = "node.key";
/// The DKG share's role.
pub const SHARE_ROLE: &str = "dkg.share";
/// The longest secret file read (a node key, a DKG share, the keystore key, a sealed blob are
/// all far shorter): whoever can write the disk cannot make the node read without bound.
pub const SECRET_BYTES_MAX: usize = 1 << 20;
/// How a node is told to migrate plain and version 1 secret files.
pub const MIGRATE_FLAG: &str = "--migrate-secrets";

/// Why a secret cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// A file cannot be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The encrypted file does not open with this key, role and identity (damaged, another
    /// node's, another committee's or another role's).
    #[error("{path}: does not decrypt with this node's keystore key for this role and committee (damaged, swapped or foreign)", path = .0.display())]
    Decrypt(PathBuf),
    /// A plain (unencrypted) secret file, refused outside a migration.
    #[error("{path}: not sealed by the keystore (a plain secret file); refusing it. To seal a provisioned file, run the node once with {MIGRATE_FLAG}", path = .0.display())]
    Plaintext(PathBuf),
    /// A version 1 envelope (bound to its label only), refused outside a migration.
    #[error("{path}: sealed by an older keystore (bound to its label only); refusing it. To re-seal it bound to this committee, run the node once with {MIGRATE_FLAG}", path = .0.display())]
    Legacy(PathBuf),
    /// A secret file, or the directory that holds it, is open to other users.
    #[error("{path}: mode {mode:o} lets other users {what}; a secret must be 0600 in a directory only its owner can write (chmod 600 / chmod 700)")]
    Exposed {
        /// The file or directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// What others can do.
        what: &'static str,
    },
}

fn file_error(path: &Path, reason: impl ToString) -> KeystoreError {
    KeystoreError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Opens a secret file for reading without following a symlink, and refuses it when the opened
/// file (not whatever the path names a moment later) is not a regular file, others can read or
/// write it, or others can write its directory (they could swap it).
fn open_private(path: &Path) -> Result<std::fs::File, KeystoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            file_error(
                path,
                format!("{e} (a secret must be a regular file, not a symlink)"),
            )
        })?;
    let metadata = file.metadata().map_err(|e| file_error(path, e))?;
    if !metadata.is_file() {
        return Err(file_error(path, "not a regular file"));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeystoreError::Exposed {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
            what: "read or write it",
        });
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir_mode = std::fs::metadata(dir)
        .map_err(|e| file_error(dir, e))?
        .permissions()
        .mode();
    if dir_mode & 0o022 != 0 {
        return Err(KeystoreError::Exposed {
            path: dir.to_path_buf(),
            mode: dir_mode & 0o7777,
            what: "replace the secrets in it",
        });
    }
    Ok(file)
}

/// Reads a secret file, refusing a symlink, a file others can read or write, or one whose
/// directory others can write: the checks run on the opened file, which is the one read. Every
/// secret the node reads goes through here.
pub fn read_private(path: &Path) -> Result<Vec<u8>, KeystoreError> {
    use std::io::Read as _;
    let file = open_private(path)?;
    let mut bytes = Vec::new();
    file.take(SECRET_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| file_error(path, e))?;
    if bytes.len() > SECRET_BYTES_MAX {
        return Err(file_error(
            path,
            format!("longer than {SECRET_BYTES_MAX} bytes: not a secret this node wrote"),
        ));
    }
    Ok(bytes)
}

/// Creates `dir` (and missing parents) readable by its owner alone (0700).
pub fn create_private_dir(dir: &Path) -> Result<(), KeystoreError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| file_error(dir, e))
}

/// Writes `bytes` to `path` atomically, 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // A fresh name each time, created new and never through a link: a file or link planted at
    // the temporary name cannot receive the secret.
    let name = path
        .file_name()
        .map_or_else(|| "secret".into(), |n| n.to_string_lossy().into_owned());
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
    // The rename is durable only once the directory is synced: a member that voted for an epoch
    // change must still hold that epoch's share after a power cut.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| file_error(dir, e))?;
    }
    Ok(())
}

/// Whether plain and version 1 secret files are sealed in place (the explicit migration) or
/// refused (every other start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// Refuse them (the default).
    Refuse,
    /// Seal them in place, logging each file.
    Seal,
}

/// The keystore of one data directory.
pub struct Keystore {
    key: SealKey,
    // The same key, for the vault's sealer (`vault_sealer`).
    raw: zeroize::Zeroizing<[u8; 32]>,
    migration: Migration,
}

impl Keystore {
    /// Opens the DEVELOPMENT key in `data_dir`, creating a random one on first use.
    pub fn open(data_dir: &Path, migration: Migration) -> Result<Keystore, KeystoreError> {
        let path = data_dir.join(KEY_FILE);
        let key: [u8; 32] = if path.exists() {
            let bytes = read_private(&path)?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| file_error(&path, "not a 32-byte key"))?
        } else {
            let key: [u8; 32] = rand::random();
            write_private(&path, &key)?;
            key
        };
        Ok(Keystore::from_key(key, migration))
    }

    /// A keystore under `key` (unsealed from the TPM).
    pub fn from_key(key: [u8; 32], migration: Migration) -> Keystore {
        Keystore {
            key: SealKey::new(key),
            raw: zeroize::Zeroizing::new(key),
            migration,
        }
    }

    /// A sealer for the vault's files under this keystore's key: the TPM backend when the key
    /// is sealed by the TPM, else the DEVELOPMENT one (which says so).
    pub fn vault_sealer(
        &self,
        sealed_by_tpm: bool,
    ) -> bulwark_vaultstore::keystore::KeystoreSealer {
        if sealed_by_tpm {
            bulwark_vaultstore::keystore::KeystoreSealer::tpm(*self.raw)
        } else {
            bulwark_vaultstore::keystore::KeystoreSealer::development(*self.raw)
        }
    }

    /// Encrypts `secret` into `path`, bound to `binding`.
    pub fn seal(
        &self,
        path: &Path,
        binding: &Binding<'_>,
        secret: &[u8],
    ) -> Result<(), KeystoreError> {
        let sealed = self
            .key
            .seal(rand::random(), binding, secret)
            .map_err(|e| file_error(path, e))?;
        write_private(path, &sealed)
    }

    /// Reads ([`read_private`]) and opens `path`, sealed for `binding`. A plain file or a
    /// version 1 envelope is refused, or, during the migration, sealed in place and returned.
    pub fn unseal(&self, path: &Path, binding: &Binding<'_>) -> Result<Vec<u8>, KeystoreError> {
        let bytes = read_private(path)?;
        let (secret, was) = match self.key.open(binding, &bytes) {
            Ok(secret) => return Ok(secret),
            // Only the node key is ever provisioned as a plain file; the node writes its share
            // sealed itself, so a plain share is refused even during the migration.
            Err(SealError::NotSealed)
                if self.migration == Migration::Seal && binding.role == NODE_KEY_ROLE =>
            {
                (bytes, "plain")
            }
            Err(SealError::NotSealed) => return Err(KeystoreError::Plaintext(path.into())),
            Err(SealError::Legacy) if self.migration == Migration::Seal => {
                let secret = self
                    .key
                    .open_v1(binding.role, &bytes)
                    .map_err(|_| KeystoreError::Decrypt(path.into()))?;
                (secret, "version 1")
            }
            Err(SealError::Legacy) => return Err(KeystoreError::Legacy(path.into())),
            Err(_) => return Err(KeystoreError::Decrypt(path.into())),
        };
        self.seal(path, binding, &secret)?;
        warn!(
            file = %path.display(),
            role = binding.role,
            was,
            "MIGRATION: secret file sealed in place, bound to this committee (asked for by {MIGRATE_FLAG})"
        );
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SHARE: Binding<'static> = Binding {
        role: SHARE_ROLE,
        identity: b"committee-a/member-1",
    };

    fn private_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bulwark-keystore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_private_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn seals_unseals_and_refuses_damage_swaps_and_foreign_keys() {
        let dir = private_dir("seal");
        let other = dir.join("other");
        create_private_dir(&other).unwrap();
        let store = Keystore::open(&dir, Migration::Refuse).unwrap();
        let file = dir.join("dkg.share");
        store.seal(&file, &SHARE, b"secret share").unwrap();
        let on_disk = std::fs::read(&file).unwrap();
        assert!(on_disk.starts_with(MAGIC));
        assert!(!on_disk.windows(12).any(|w| w == b"secret share"));
        assert_eq!(store.unseal(&file, &SHARE).unwrap(), b"secret share");
        // The same key file opens again.
        let again = Keystore::open(&dir, Migration::Refuse).unwrap();
        assert_eq!(again.unseal(&file, &SHARE).unwrap(), b"secret share");
        // Another role, another member, another key, or one flipped byte: refused.
        let as_node_key = Binding {
            role: NODE_KEY_ROLE,
            ..SHARE
        };
        let other_member = Binding {
            identity: b"committee-a/member-2",
            ..SHARE
        };
        for binding in [&as_node_key, &other_member] {
            assert!(matches!(
                store.unseal(&file, binding),
                Err(KeystoreError::Decrypt(_))
            ));
        }
        let foreign = Keystore::open(&other, Migration::Refuse).unwrap();
        assert!(matches!(
            foreign.unseal(&file, &SHARE),
            Err(KeystoreError::Decrypt(_))
        ));
        let mut damaged = on_disk.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        write_private(&file, &damaged).unwrap();
        assert!(matches!(
            store.unseal(&file, &SHARE),
            Err(KeystoreError::Decrypt(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_swapped_plain_file_is_refused_and_only_the_migration_seals_it() {
        let dir = private_dir("plain");
        let file = dir.join("node.key");
        let binding = Binding {
            role: NODE_KEY_ROLE,
            identity: b"committee-a",
        };
        // The attacker who can write the directory puts in a key of their own, in plain.
        write_private(&file, b"attacker's key").unwrap();
        let store = Keystore::open(&dir, Migration::Refuse).unwrap();
        let refused = store.unseal(&file, &binding).unwrap_err();
        assert!(matches!(refused, KeystoreError::Plaintext(_)), "{refused}");
        assert!(refused.to_string().contains(MIGRATE_FLAG));
        assert_eq!(std::fs::read(&file).unwrap(), b"attacker's key");
        // The explicit migration seals it in place; after that it opens without it.
        let migrating = Keystore::open(&dir, Migration::Seal).unwrap();
        assert_eq!(
            migrating.unseal(&file, &binding).unwrap(),
            b"attacker's key"
        );
        assert!(std::fs::read(&file).unwrap().starts_with(MAGIC));
        assert_eq!(store.unseal(&file, &binding).unwrap(), b"attacker's key");
        // A plain share is refused even during the migration.
        let share = dir.join("dkg.share");
        write_private(&share, b"planted share").unwrap();
        assert!(matches!(
            migrating.unseal(&share, &SHARE),
            Err(KeystoreError::Plaintext(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn secrets_others_can_read_or_replace_are_refused() {
        let dir = private_dir("modes");
        let file = dir.join("node.key");
        let binding = Binding {
            role: NODE_KEY_ROLE,
            identity: b"committee-a",
        };
        let store = Keystore::open(&dir, Migration::Refuse).unwrap();
        store.seal(&file, &binding, b"seed").unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = store.unseal(&file, &binding).unwrap_err();
        assert!(
            matches!(error, KeystoreError::Exposed { mode: 0o644, .. }),
            "{error}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = store.unseal(&file, &binding).unwrap_err();
        assert!(
            matches!(error, KeystoreError::Exposed { mode: 0o777, .. }),
            "{error}"
        );
        // A secret longer than any the node writes is refused before it is read whole.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        write_private(&file, &vec![0u8; SECRET_BYTES_MAX + 1]).unwrap();
        let error = store.unseal(&file, &binding).unwrap_err();
        assert!(error.to_string().contains("longer than"), "{error}");
        // The keystore's own key file is checked the same way.
        std::fs::set_permissions(dir.join(KEY_FILE), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        assert!(matches!(
            Keystore::open(&dir, Migration::Refuse),
            Err(KeystoreError::Exposed { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
