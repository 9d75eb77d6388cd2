//! The authenticated FIX Logon: a trader proves its account key by an Ed25519 signature over the
//! logon's own fields, in the manner of Binance's FIX API.
//!
//! A Logon (35=A) to bulwark carries, besides EncryptMethod (98=0) and HeartBtInt (108):
//! - Username (553): the account number, decimal;
//! - [`TAG_LOGON_NONCE`] (25001, user-defined): 16 random bytes as 32 lowercase hex digits, new
//!   for every logon;
//! - [`TAG_SESSION_SEED`] (25002, user-defined): the secret seed of a fresh Ed25519 session key
//!   the trader made for this session, 64 lowercase hex digits (the gateway signs the session's
//!   orders with it; redacted in logs);
//! - RawDataLength (95) = 128 and RawData (96): the signature, 64 bytes as 128 lowercase hex
//!   digits, over the engine's logon payload ([`bulwark_engine::session::logon_payload`]):
//!   `bulwark-logon/2`, SendingTime (52) in Unix milliseconds, the nonce in hex, SenderCompID
//!   (49), TargetCompID (56), the account and the session's public key in hex, joined by SOH.
//!
//! CompIDs are 1 to 32 printable ASCII bytes. SendingTime must be within the session's window of
//! the gateway's clock. The gateway checks the signature with `verify_strict` under the
//! account's registered key; the committee checks it again when the gateway opens the trading
//! session it authorizes (`bulwark_engine::session`), and refuses a logon not newer than the
//! account's last one, so a captured logon cannot be used again.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::Message;

/// SenderCompID.
pub const TAG_SENDER_COMP_ID: u32 = 49;
/// TargetCompID.
pub const TAG_TARGET_COMP_ID: u32 = 56;
/// MsgSeqNum.
pub const TAG_MSG_SEQ_NUM: u32 = 34;
/// SendingTime.
pub const TAG_SENDING_TIME: u32 = 52;
/// HeartBtInt.
pub const TAG_HEART_BT_INT: u32 = 108;
/// EncryptMethod.
pub const TAG_ENCRYPT_METHOD: u32 = 98;
/// ResetSeqNumFlag.
pub const TAG_RESET_SEQ_NUM_FLAG: u32 = 141;
/// Username: the account number.
pub const TAG_USERNAME: u32 = 553;
/// RawDataLength.
pub const TAG_RAW_DATA_LENGTH: u32 = 95;
/// RawData: the logon signature in hex.
pub const TAG_RAW_DATA: u32 = 96;
/// The logon nonce (a user-defined tag).
pub const TAG_LOGON_NONCE: u32 = 25001;
/// The session key's secret seed the trader hands the gateway (a user-defined tag; redacted in
/// logs).
pub const TAG_SESSION_SEED: u32 = 25002;
/// What the signed payload starts with (and its version).
pub const LOGON_CONTEXT: &str = "bulwark-fix-logon/1";

/// Why a Logon is refused. The text goes to the trader in the Logout, so it says what to fix
/// without saying whether the account exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogonError {
    /// A field the logon needs is missing or malformed.
    #[error("logon field {0} is missing or malformed")]
    Field(u32),
    /// EncryptMethod other than 0 (none: TLS protects the link).
    #[error("EncryptMethod (98) must be 0")]
    EncryptMethod,
    /// HeartBtInt outside the gateway's bounds.
    #[error("HeartBtInt (108) must be within {min}..={max} seconds")]
    HeartBtInt {
        /// Smallest allowed.
        min: u32,
        /// Largest allowed.
        max: u32,
    },
    /// SendingTime too far from the gateway's clock.
    #[error("SendingTime is more than {0} ms from the gateway's clock")]
    Stale(u64),
    /// The nonce was used within the window.
    #[error("the logon nonce was used already")]
    Replayed,
    /// The account has no usable key, or the signature does not verify under it.
    #[error("the logon signature does not verify under the account's key")]
    Signature,
    /// The gateway is not taking this logon now (load, kill switch); try later.
    #[error("logon refused: {0}")]
    Refused(String),
}

/// The fields of a Logon that identify and authenticate the trader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogonRequest {
    /// SenderCompID.
    pub sender: String,
    /// TargetCompID.
    pub target: String,
    /// SendingTime as sent.
    pub sending_time: String,
    /// SendingTime in Unix milliseconds (what the payload signs).
    pub sending_time_ms: u64,
    /// The account (Username).
    pub account: u64,
    /// The nonce.
    pub nonce: [u8; 16],
    /// The session key the trader made for this session (the gateway holds it).
    pub session_seed: [u8; 32],
    /// The signature.
    pub signature: [u8; 64],
    /// HeartBtInt, seconds.
    pub heartbeat_s: u32,
    /// ResetSeqNumFlag=Y: both sides restart at 1.
    pub reset: bool,
    /// The logon's MsgSeqNum.
    pub msg_seq_num: u64,
}

/// The bytes a trader signs to log on (the engine's logon payload).
pub fn logon_payload(
    sending_time_ms: u64,
    nonce: &[u8; 16],
    sender: &str,
    target: &str,
    account: u64,
    session_key: &[u8; 32],
) -> Vec<u8> {
    bulwark_engine::session::logon_payload(
        sending_time_ms,
        nonce,
        sender,
        target,
        bulwark_engine::AccountId(account),
        session_key,
    )
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

fn unhex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// A decimal without a leading zero or sign, at most 18 digits.
pub(crate) fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 18 || bytes[0] == b'0' && bytes.len() > 1 {
        return None;
    }
    bytes.iter().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

impl LogonRequest {
    /// Reads the logon fields of `message` (a 35=A). Bounds on HeartBtInt are the caller's
    /// ([`crate::session::Config`]).
    pub fn from_message(message: &Message) -> Result<LogonRequest, LogonError> {
        let text = |tag: u32| -> Result<&str, LogonError> {
            message
                .get_str(tag)
                .filter(|t| t.len() <= 32 && bulwark_engine::session::valid_comp_id(t))
                .ok_or(LogonError::Field(tag))
        };
        let number = |tag: u32| -> Result<u64, LogonError> {
            message
                .get(tag)
                .and_then(parse_u64)
                .ok_or(LogonError::Field(tag))
        };
        if message.get(TAG_ENCRYPT_METHOD) != Some(b"0") {
            return Err(LogonError::EncryptMethod);
        }
        let sending_time = text(TAG_SENDING_TIME)?;
        let sending_time_ms = crate::time::parse_utc_timestamp(sending_time.as_bytes())
            .ok_or(LogonError::Field(TAG_SENDING_TIME))?;
        let nonce = message
            .get(TAG_LOGON_NONCE)
            .and_then(unhex::<16>)
            .ok_or(LogonError::Field(TAG_LOGON_NONCE))?;
        let session_seed = message
            .get(TAG_SESSION_SEED)
            .and_then(unhex::<32>)
            .ok_or(LogonError::Field(TAG_SESSION_SEED))?;
        let signature = message
            .get(TAG_RAW_DATA)
            .and_then(unhex::<64>)
            .ok_or(LogonError::Field(TAG_RAW_DATA))?;
        let heartbeat_s = u32::try_from(number(TAG_HEART_BT_INT)?)
            .map_err(|_| LogonError::Field(TAG_HEART_BT_INT))?;
        let reset = match message.get(TAG_RESET_SEQ_NUM_FLAG) {
            None | Some(b"N") => false,
            Some(b"Y") => true,
            Some(_) => return Err(LogonError::Field(TAG_RESET_SEQ_NUM_FLAG)),
        };
        Ok(LogonRequest {
            sender: text(TAG_SENDER_COMP_ID)?.to_string(),
            target: text(TAG_TARGET_COMP_ID)?.to_string(),
            sending_time: sending_time.to_string(),
            sending_time_ms,
            account: number(TAG_USERNAME)?,
            nonce,
            session_seed,
            signature,
            heartbeat_s,
            reset,
            msg_seq_num: number(TAG_MSG_SEQ_NUM)?,
        })
    }

    /// The session's public key (from the seed the trader handed over).
    pub fn session_key(&self) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(&self.session_seed)
            .verifying_key()
            .to_bytes()
    }

    /// The bytes the trader signed.
    pub fn payload(&self) -> Vec<u8> {
        logon_payload(
            self.sending_time_ms,
            &self.nonce,
            &self.sender,
            &self.target,
            self.account,
            &self.session_key(),
        )
    }

    /// Checks the signature under the account's registered key (strict: no weak key, no
    /// malleable signature).
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), LogonError> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| LogonError::Signature)?;
        if key.is_weak() {
            return Err(LogonError::Signature);
        }
        key.verify_strict(&self.payload(), &Signature::from_bytes(&self.signature))
            .map_err(|_| LogonError::Signature)
    }
}

/// The logon fields a trader adds to its Logon: Username, the nonce, the session key's seed,
/// RawDataLength and RawData (for clients written in Rust and for tests; the docs show the same
/// in Python).
pub fn logon_fields(
    key: &ed25519_dalek::SigningKey,
    sending_time: &str,
    nonce: &[u8; 16],
    sender: &str,
    target: &str,
    account: u64,
) -> Vec<crate::Field> {
    use ed25519_dalek::Signer as _;
    let sending_time_ms = crate::time::parse_utc_timestamp(sending_time.as_bytes()).unwrap_or(0);
    // A session key per logon, derived here from the nonce so tests are reproducible; a trader
    // draws a random one.
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(nonce);
    seed[16..].copy_from_slice(&key.to_bytes()[..16]);
    let session = ed25519_dalek::SigningKey::from_bytes(&seed);
    let signature = key.sign(&logon_payload(
        sending_time_ms,
        nonce,
        sender,
        target,
        account,
        &session.verifying_key().to_bytes(),
    ));
    let signature = hex_lower(&signature.to_bytes());
    vec![
        crate::Field::new(TAG_USERNAME, account.to_string()),
        crate::Field::new(TAG_LOGON_NONCE, hex_lower(nonce)),
        crate::Field::new(TAG_SESSION_SEED, hex_lower(&seed)),
        crate::Field::new(TAG_RAW_DATA_LENGTH, signature.len().to_string()),
        crate::Field::new(TAG_RAW_DATA, signature),
    ]
}
