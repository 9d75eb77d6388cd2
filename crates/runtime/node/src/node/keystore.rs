//! The keystore: the node's secrets (its node key and its DKG share) encrypted at rest
//! (XChaCha20-Poly1305) under one random 32-byte key.
//!
//! With `[admission] mode = "tpm"` that key is sealed by the TPM to PCRs 0–7 and 23 in
//! `keystore.sealed` (see `node::attest::open_keystore`): a node started from a tampered
//! binary, genesis or operator set cannot unseal it. Otherwise it is the DEVELOPMENT keystore:
//! the key lies in `keystore.key` beside the secrets, which protects against a copy of a secret
//! file alone and says so when used.
//!
//! File layout: `MAGIC | nonce [24] | ciphertext and tag`, with the file's label as associated
//! data. A file without the magic is a plain share from before the keystore; it is read and
//! rewritten encrypted.

use bulwark_custody::sealed::{SealError, SealKey};
use std::path::{Path, PathBuf};

pub use bulwark_custody::sealed::MAGIC;
/// Name of the key file in the data directory (DEVELOPMENT keystore).
pub const KEY_FILE: &str = "keystore.key";
/// Name of the TPM-sealed key file in the data directory (`mode = "tpm"`).
pub const SEALED_KEY_FILE: &str = "keystore.sealed";

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
    /// The encrypted file does not open with this key (damaged, or another key).
    #[error("{0}: does not decrypt with this node's keystore key (damaged or foreign)")]
    Decrypt(PathBuf),
}

fn file_error(path: &Path, reason: impl ToString) -> KeystoreError {
    KeystoreError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| file_error(&temporary, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| file_error(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| file_error(path, e))
}

/// The keystore of one data directory.
pub struct Keystore {
    key: SealKey,
}

impl Keystore {
    /// Opens the key in `data_dir`, creating a random one on first use.
    pub fn open(data_dir: &Path) -> Result<Keystore, KeystoreError> {
        let path = data_dir.join(KEY_FILE);
        let key: [u8; 32] = if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| file_error(&path, e))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| file_error(&path, "not a 32-byte key"))?
        } else {
            let key: [u8; 32] = rand::random();
            write_private(&path, &key)?;
            key
        };
        Ok(Keystore::from_key(key))
    }

    /// A keystore under `key` (unsealed from the TPM).
    pub fn from_key(key: [u8; 32]) -> Keystore {
        Keystore {
            key: SealKey::new(key),
        }
    }

    /// Encrypts `secret` into `path`, bound to `label`.
    pub fn seal(&self, path: &Path, label: &str, secret: &[u8]) -> Result<(), KeystoreError> {
        let sealed = self
            .key
            .seal(rand::random(), label, secret)
            .map_err(|e| file_error(path, e))?;
        write_private(path, &sealed)
    }

    /// Reads `path`: decrypts a sealed file; a plain file (no magic, from before the keystore)
    /// is returned as is and rewritten sealed.
    pub fn unseal(&self, path: &Path, label: &str) -> Result<Vec<u8>, KeystoreError> {
        let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
        match self.key.open(label, &bytes) {
            Ok(secret) => Ok(secret),
            Err(SealError::NotSealed) => {
                self.seal(path, label, &bytes)?;
                Ok(bytes)
            }
            Err(_) => Err(KeystoreError::Decrypt(path.to_path_buf())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seals_unseals_and_refuses_damage_and_foreign_keys() {
        let dir = std::env::temp_dir().join(format!("bulwark-keystore-{}", std::process::id()));
        let other = dir.join("other");
        std::fs::create_dir_all(&other).unwrap();
        let store = Keystore::open(&dir).unwrap();
        let file = dir.join("dkg.share");
        store.seal(&file, "dkg.share", b"secret share").unwrap();
        let on_disk = std::fs::read(&file).unwrap();
        assert!(on_disk.starts_with(MAGIC));
        assert!(!on_disk.windows(12).any(|w| w == b"secret share"));
        assert_eq!(store.unseal(&file, "dkg.share").unwrap(), b"secret share");
        // The same key file opens again.
        assert_eq!(
            Keystore::open(&dir)
                .unwrap()
                .unseal(&file, "dkg.share")
                .unwrap(),
            b"secret share"
        );
        // Another label, another key, or one flipped byte: refused.
        assert!(matches!(
            store.unseal(&file, "node.key"),
            Err(KeystoreError::Decrypt(_))
        ));
        let foreign = Keystore::open(&other).unwrap();
        assert!(matches!(
            foreign.unseal(&file, "dkg.share"),
            Err(KeystoreError::Decrypt(_))
        ));
        let mut damaged = on_disk.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        std::fs::write(&file, &damaged).unwrap();
        assert!(matches!(
            store.unseal(&file, "dkg.share"),
            Err(KeystoreError::Decrypt(_))
        ));
        // A plain file from before the keystore is read and rewritten sealed.
        std::fs::write(&file, b"old plain share").unwrap();
        assert_eq!(
            store.unseal(&file, "dkg.share").unwrap(),
            b"old plain share"
        );
        assert!(std::fs::read(&file).unwrap().starts_with(MAGIC));
        assert_eq!(
            store.unseal(&file, "dkg.share").unwrap(),
            b"old plain share"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
