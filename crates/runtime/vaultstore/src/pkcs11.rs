//! The PKCS#11 backend: AES-256-GCM under a key that never leaves the token.
//!
//! The node opens the token's module (the vendor's library; `libsofthsm2.so` in tests), finds the
//! token by label, logs in as the user with the PIN from a file only its owner can read, and
//! finds the AES key by label. A key that is missing is generated inside the token
//! (`CKA_TOKEN`, `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`); a key that exists but could leave the
//! token (extractable, or not sensitive) is refused, so a key planted by someone who kept a copy
//! is never used. The IV comes from the token's generator; a sealed file is
//! `MAGIC ‖ IV (12) ‖ ciphertext ‖ tag (16)`.

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use tracing::info;

use crate::{BackendKind, Sealer, StoreError};

/// The first bytes of a file sealed by this backend.
pub const MAGIC: &[u8; 8] = b"BWVHSM01";
const IV_BYTES: usize = 12;
const TAG_BITS: u64 = 128;
/// Largest sealed record this backend seals or opens, bytes (a region of the largest
/// two-region file: the watermarks at their bound fit).
pub const SEALED_BYTES_MAX: usize = crate::files::TWO_REGION_FILE_MAX / 2;

/// Where the token is and how to reach it (the node config's `[vault.pkcs11]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (the vendor's shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// A file holding the user PIN (one line), readable by its owner alone.
    pub pin_file: PathBuf,
    /// The label of the AES key that seals this member's vault files.
    pub key_label: String,
}

/// A logged-in session on the token with the sealing key found (or made).
pub struct Pkcs11Sealer {
    // The context must outlive the session; dropping the session first logs out.
    session: Session,
    key: ObjectHandle,
    _context: Pkcs11,
}

fn error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Pkcs11(format!("{what}: {e}"))
}

impl Pkcs11Sealer {
    /// Opens the token and finds or generates the key (see the module docs).
    pub fn open(config: &Pkcs11Config) -> Result<Self, StoreError> {
        let pin = read_pin(&config.pin_file)?;
        let context = Pkcs11::new(&config.module)
            .map_err(|e| error(&format!("loading {}", config.module.display()), e))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => return Err(error("C_Initialize", e)),
        }
        let slots = context
            .get_slots_with_token()
            .map_err(|e| error("listing slots", e))?;
        let mut found = None;
        for slot in slots {
            let token = context
                .get_token_info(slot)
                .map_err(|e| error("reading a token", e))?;
            if token.label().trim_end() == config.token_label {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| {
            StoreError::Pkcs11(format!(
                "no token labelled {:?} in {}",
                config.token_label,
                config.module.display()
            ))
        })?;
        let session = context
            .open_rw_session(slot)
            .map_err(|e| error("opening a session", e))?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            // Login state is per application and token: another session of this process
            // logged in already.
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => return Err(error("logging in (wrong PIN?)", e)),
        }
        let key = find_or_generate(&session, &config.key_label)?;
        Ok(Self {
            session,
            key,
            _context: context,
        })
    }
}

fn read_pin(path: &Path) -> Result<String, StoreError> {
    let bytes = crate::files::read_private(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| StoreError::Pkcs11(format!("{}: the PIN is not text", path.display())))?;
    let pin = text.trim().to_string();
    if pin.is_empty() || pin.len() > 256 {
        return Err(StoreError::Pkcs11(format!(
            "{}: the PIN must be 1 ..= 256 characters on one line",
            path.display()
        )));
    }
    Ok(pin)
}

fn find_or_generate(session: &Session, label: &str) -> Result<ObjectHandle, StoreError> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let found = session
        .find_objects(&template)
        .map_err(|e| error("finding the key", e))?;
    match found.as_slice() {
        [] => {
            let template = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let key = session
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(|e| error("generating the AES key in the token", e))?;
            info!(
                label,
                "generated the vault's sealing key inside the PKCS#11 token"
            );
            Ok(key)
        }
        [key] => {
            check_key(session, *key, label)?;
            Ok(*key)
        }
        _ => Err(StoreError::Pkcs11(format!(
            "{} secret keys are labelled {label:?}: refusing to choose",
            found.len()
        ))),
    }
}

/// Refuses a key that could exist outside the token: it must be an AES token key that is
/// sensitive and not extractable now, has always been so (CKA_ALWAYS_SENSITIVE,
/// CKA_NEVER_EXTRACTABLE), and was generated inside the token (CKA_LOCAL): an imported key, even
/// marked sensitive on import, was somewhere else first.
fn check_key(session: &Session, key: ObjectHandle, label: &str) -> Result<(), StoreError> {
    let attributes = session
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Local,
                AttributeType::KeyType,
                AttributeType::ValueLen,
                AttributeType::Token,
            ],
        )
        .map_err(|e| error("reading the key's attributes", e))?;
    let mut sensitive = false;
    let mut extractable = true;
    let mut always_sensitive = false;
    let mut never_extractable = false;
    let mut local = false;
    let mut aes = false;
    let mut aes_256 = false;
    let mut token = false;
    for attribute in attributes {
        match attribute {
            Attribute::Sensitive(v) => sensitive = v,
            Attribute::Extractable(v) => extractable = v,
            Attribute::AlwaysSensitive(v) => always_sensitive = v,
            Attribute::NeverExtractable(v) => never_extractable = v,
            Attribute::Local(v) => local = v,
            Attribute::KeyType(t) => aes = t == KeyType::AES,
            Attribute::ValueLen(len) => aes_256 = u64::from(len) == 32,
            Attribute::Token(v) => token = v,
            _ => {}
        }
    }
    if !(sensitive
        && !extractable
        && always_sensitive
        && never_extractable
        && local
        && aes
        && aes_256
        && token)
    {
        return Err(StoreError::Pkcs11(format!(
            "the key labelled {label:?} is not an AES token key generated in the token and \
             always sensitive and non-extractable (sensitive = {sensitive}, extractable = \
             {extractable}, always sensitive = {always_sensitive}, never extractable = \
             {never_extractable}, local = {local}, AES = {aes}, 32 bytes = {aes_256}, token = \
             {token}): it could exist outside the HSM, or is not AES-256, so it is not used"
        )));
    }
    Ok(())
}

impl Sealer for Pkcs11Sealer {
    fn kind(&self) -> BackendKind {
        BackendKind::Pkcs11
    }

    fn seal(&mut self, associated_data: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        // Nothing is sealed that `open` would refuse to read back (fail before a share leaves,
        // not at the next start).
        if MAGIC.len() + IV_BYTES + plaintext.len() + 16 > SEALED_BYTES_MAX {
            return Err(StoreError::Content(
                "PKCS#11-sealed record".into(),
                format!("longer than {SEALED_BYTES_MAX} bytes sealed"),
            ));
        }
        let mut iv = [0u8; IV_BYTES];
        self.session
            .generate_random_slice(&mut iv)
            .map_err(|e| error("drawing an IV from the token", e))?;
        let mut iv_param = iv;
        let params = GcmParams::new(&mut iv_param, associated_data, TAG_BITS.into())
            .map_err(|e| error("GCM parameters", e))?;
        let sealed = self
            .session
            .encrypt(&Mechanism::AesGcm(params), self.key, plaintext)
            .map_err(|e| error("encrypting in the token", e))?;
        let mut out = Vec::with_capacity(MAGIC.len() + IV_BYTES + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(
        &mut self,
        associated_data: &[u8],
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        let refuse = || StoreError::Open("PKCS#11-sealed file".into());
        if sealed.len() > SEALED_BYTES_MAX
            || sealed.len() < MAGIC.len() + IV_BYTES + 16
            || &sealed[..MAGIC.len()] != MAGIC
        {
            return Err(refuse());
        }
        let mut iv: [u8; IV_BYTES] = sealed[MAGIC.len()..MAGIC.len() + IV_BYTES]
            .try_into()
            .map_err(|_| refuse())?;
        let params = GcmParams::new(&mut iv, associated_data, TAG_BITS.into())
            .map_err(|e| error("GCM parameters", e))?;
        self.session
            .decrypt(
                &Mechanism::AesGcm(params),
                self.key,
                &sealed[MAGIC.len() + IV_BYTES..],
            )
            .map(zeroize::Zeroizing::new)
            .map_err(|e| match e {
                // The session, the device or the key failing is an error of its own, not "does
                // not open": a reader that falls back to an older record on "does not open"
                // must not do so on it. (SoftHSM2 reports a wrong GCM tag as a general
                // error, so that one stays "does not open".)
                cryptoki::error::Error::Pkcs11(
                    rv @ (cryptoki::error::RvError::SessionHandleInvalid
                    | cryptoki::error::RvError::SessionClosed
                    | cryptoki::error::RvError::DeviceError
                    | cryptoki::error::RvError::DeviceRemoved
                    | cryptoki::error::RvError::DeviceMemory
                    | cryptoki::error::RvError::HostMemory
                    | cryptoki::error::RvError::TokenNotPresent
                    | cryptoki::error::RvError::UserNotLoggedIn
                    | cryptoki::error::RvError::KeyHandleInvalid
                    | cryptoki::error::RvError::FunctionCanceled
                    | cryptoki::error::RvError::OperationActive
                    | cryptoki::error::RvError::CryptokiNotInitialized),
                    function,
                ) => error(
                    "decrypting in the token",
                    cryptoki::error::Error::Pkcs11(rv, function),
                ),
                _ => refuse(),
            })
    }
}
