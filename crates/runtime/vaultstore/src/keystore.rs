//! The keystore backends: XChaCha20-Poly1305 under the node's keystore key
//! (`bulwark_custody::sealed`), the same key that seals the node key and the consensus share.
//!
//! Where that key lives decides what the backend is worth: in `mode = "tpm"` it is sealed by the
//! TPM to the measured launch (PCRs 0–7 and the launch PCR), so a tampered binary, genesis or
//! operator set cannot open the vault's files ([`BackendKind::Tpm`]); otherwise it is a file beside
//! the secrets, which is for development only ([`BackendKind::File`]) and the node says so.

use bulwark_custody::sealed::{Binding, SealKey};
use tracing::warn;

use crate::{BackendKind, Sealer, StoreError};

/// The role every vault file is sealed under in the keystore (the file's own binding is the
/// identity).
pub const VAULT_ROLE: &str = "vault";

/// A sealer over the node's keystore key.
pub struct KeystoreSealer {
    key: SealKey,
    kind: BackendKind,
}

impl KeystoreSealer {
    /// A sealer under the keystore key the TPM unsealed.
    pub fn tpm(key: [u8; 32]) -> Self {
        Self {
            key: SealKey::new(key),
            kind: BackendKind::Tpm,
        }
    }

    /// The DEVELOPMENT sealer: the keystore key lies in a file. Says so.
    pub fn development(key: [u8; 32]) -> Self {
        warn!("DEVELOPMENT vault backend: the vault's key shares are sealed under the keystore key file beside them, not by an HSM or a TPM (production refuses it)");
        Self {
            key: SealKey::new(key),
            kind: BackendKind::File,
        }
    }
}

impl Sealer for KeystoreSealer {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn seal(&mut self, associated_data: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let binding = Binding {
            role: VAULT_ROLE,
            identity: associated_data,
        };
        self.key
            .seal(rand::random(), &binding, plaintext)
            .map_err(|e| StoreError::Content("vault file".into(), e.to_string()))
    }

    fn open(
        &mut self,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let binding = Binding {
            role: VAULT_ROLE,
            identity: associated_data,
        };
        self.key
            .open(&binding, sealed)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| StoreError::Open("keystore-sealed file".into()))
    }
}
