//! Where the vault's key shares live.
//!
//! A member's FROST share ([`bulwark_vault::keygen::KeyShare`]), its unspent nonces and its
//! withdrawal watermarks are files in `<data_dir>/vault/`, each sealed by one [`Sealer`] with the
//! share's identity as associated data ([`ShareBinding`]): a file copied from another member,
//! epoch, chain or group key does not open. Three sealers, chosen in the node's config:
//! - [`pkcs11::Pkcs11Sealer`]: AES-256-GCM under a key generated inside a PKCS#11 token
//!   (sensitive, not extractable: it never leaves the HSM); tested against SoftHSM2;
//! - the node's keystore in `mode = "tpm"` (its key sealed by the TPM to the measured launch);
//! - the node's keystore in development mode (its key in a file beside the secrets): for
//!   development only, and the node says so when it starts.
//!
//! Every write is synced (file and directory) before [`VaultFiles`] returns: the caller marks a
//! watermark or spends a nonce, stores, and only then lets a signature share leave.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod conformance;
pub mod files;
pub mod keystore;
pub mod pkcs11;

pub use files::VaultFiles;

use bulwark_vault::{Chain, Member};

/// The namespace every sealed vault file binds. Part of the format.
pub const BINDING_NAMESPACE: &[u8] = b"bulwark/vault/sealed/v1";

/// What a sealed vault file belongs to: its associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareBinding {
    /// What the file holds: `share`, `nonces` or `watermarks`.
    pub role: &'static str,
    /// Which key.
    pub chain: Chain,
    /// The group key (serialized by the ciphersuite).
    pub group_key: Vec<u8>,
    /// The member's number in the vault committee.
    pub member: Member,
    /// The epoch the sharing belongs to.
    pub epoch: u64,
}

impl ShareBinding {
    /// The associated data: namespace ‖ role ‖ chain ‖ group key ‖ member ‖ epoch, each
    /// length-prefixed where variable.
    pub fn associated_data(&self) -> Vec<u8> {
        let mut ad = Vec::with_capacity(BINDING_NAMESPACE.len() + 64 + self.group_key.len());
        ad.extend_from_slice(BINDING_NAMESPACE);
        ad.push(self.role.len() as u8);
        ad.extend_from_slice(self.role.as_bytes());
        ad.push(self.chain.code());
        ad.push(self.group_key.len() as u8);
        ad.extend_from_slice(&self.group_key);
        ad.extend_from_slice(&self.member.to_be_bytes());
        ad.extend_from_slice(&self.epoch.to_be_bytes());
        ad
    }
}

/// Which backend seals the vault's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// A PKCS#11 HSM.
    Pkcs11,
    /// The node's keystore, its key sealed by the TPM.
    Tpm,
    /// The node's keystore with its key in a file: DEVELOPMENT only.
    File,
}

impl BackendKind {
    /// The name configs and status use.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Pkcs11 => "pkcs11",
            BackendKind::Tpm => "tpm",
            BackendKind::File => "file",
        }
    }
}

/// Seals and opens a vault file's bytes with associated data. Implementations keep their key
/// out of reach of the disk: inside the HSM, or sealed by the TPM.
pub trait Sealer {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Encrypts and authenticates `plaintext` bound to `associated_data`.
    fn seal(&mut self, associated_data: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Opens what [`Sealer::seal`] produced with the same associated data; anything else
    /// (another binding, a flipped bit, another key) is [`StoreError::Open`].
    fn open(
        &mut self,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError>;
}

/// The backend a node chose, as one type.
pub enum Backend {
    /// [`pkcs11::Pkcs11Sealer`].
    Pkcs11(Box<pkcs11::Pkcs11Sealer>),
    /// [`keystore::KeystoreSealer`] (TPM-sealed or DEVELOPMENT).
    Keystore(keystore::KeystoreSealer),
}

impl Sealer for Backend {
    fn kind(&self) -> BackendKind {
        match self {
            Backend::Pkcs11(s) => s.kind(),
            Backend::Keystore(s) => s.kind(),
        }
    }

    fn seal(&mut self, associated_data: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        match self {
            Backend::Pkcs11(s) => s.seal(associated_data, plaintext),
            Backend::Keystore(s) => s.seal(associated_data, plaintext),
        }
    }

    fn open(
        &mut self,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        match self {
            Backend::Pkcs11(s) => s.open(associated_data, sealed),
            Backend::Keystore(s) => s.open(associated_data, sealed),
        }
    }
}

/// Why a vault file cannot be stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file cannot be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A sealed file does not open: damaged, another member's, epoch's, chain's or key's, or
    /// sealed by another token key.
    #[error("{0}: does not open with this backend for this share (damaged, swapped or foreign)")]
    Open(String),
    /// The file opened but its content is not what it claims to be.
    #[error("{0}: {1}")]
    Content(String, String),
    /// The PKCS#11 module, token, PIN or key is unusable.
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
}
