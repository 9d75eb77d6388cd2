//! Trading sessions: a key the trader's logon delegates, held by a gateway, that may trade and
//! cancel for the account and do nothing else.
//!
//! Traders on FIX engines cannot sign every order, so the gateway signs a session's orders with a
//! per-session key. The trader authorizes that key only through its logon signature, which every
//! replica checks under the account's registered key:
//!
//! 1. The trader makes a fresh session key, signs [`logon_payload`] (the logon's time, a random
//!    nonce, its CompID, the gateway's CompID, the account and the session's public key) with its
//!    account key and logs on, handing the session key to the gateway over the (TLS) session.
//! 2. The gateway submits [`ClientCommand::OpenSession`] under the session's id
//!    ([`AccountId::session`], a slot it picks), with the trader's logon signature as the
//!    transaction's signature. The verifier checks it under the account's key over the logon
//!    payload ([`crate::codec::verify_batch`]), which names the session key.
//! 3. The engine opens the session if the logon is fresh (within [`LOGON_WINDOW_MS`] of the
//!    block's time), newer than every logon it took for the account (so a grant cannot be
//!    replayed), the expiry within [`SESSION_LIFETIME_MAX_MS`], the slot free and fewer than
//!    [`SESSIONS_MAX`] sessions open.
//! 4. Transactions under the session's id are signed by the session key, with the session's own
//!    increasing nonces (starting above the opening transaction's), and act for the account:
//!    orders, stops, cancels, amends, mass cancels and closing the session itself. A withdrawal,
//!    or opening another session, is refused ([`RejectReason::OutsideSessionScope`]).
//! 5. The session ends at its expiry, when the gateway closes it (logout, cancel-on-disconnect),
//!    or when the trader closes it with its account key (revocation), whichever comes first.
//!
//! The trader's signature covers the session's public key, so a node or leader that sees the
//! grant cannot open a session with a key of its own; it can copy the grant with another slot or
//! expiry (both unsigned, the expiry still at most a day after the logon), which opens a session
//! only the gateway's key can use. What a session can do is bounded by its scope and its
//! lifetime; it can never move funds out.

use serde::{Deserialize, Serialize};

use crate::command::{AccountId, ClientCommand, SessionGrant};
use crate::engine::Engine;
use crate::event::{Event, RejectReason};

/// What a trader's logon signature starts with (and its version).
pub const LOGON_CONTEXT: &str = "bulwark-logon/2";
/// How far a logon's time may be from the block's time.
pub const LOGON_WINDOW_MS: u64 = 10_000;
/// The longest a session may last: a day.
pub const SESSION_LIFETIME_MAX_MS: u64 = 24 * 3600 * 1000;
/// Sessions one account may have open at once.
pub const SESSIONS_MAX: usize = 8;
/// Bounds on a CompID in a grant.
pub const COMP_ID_BYTES_MAX: usize = 32;

/// An open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKey {
    /// The delegated Ed25519 key.
    pub key: [u8; 32],
    /// When it ends, Unix milliseconds.
    pub expires_ms: u64,
    /// The session's highest accepted nonce.
    pub nonce: u64,
}

/// Whether `text` may be a CompID in a grant: 1 to [`COMP_ID_BYTES_MAX`] printable ASCII bytes.
pub fn valid_comp_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= COMP_ID_BYTES_MAX
        && text.bytes().all(|b| b.is_ascii_graphic())
}

/// The bytes a trader signs to log on: `bulwark-logon/2`, the logon time in Unix milliseconds,
/// the nonce in lowercase hex, the sender's and the target's CompIDs, the account and the
/// session's public key in lowercase hex, joined by SOH (byte 1). The session key is in what the
/// trader signs, so nobody who sees the grant (a node, a leader) can put another key in it.
pub fn logon_payload(
    logon_ms: u64,
    nonce: &[u8; 16],
    sender: &str,
    target: &str,
    account: AccountId,
    session_key: &[u8; 32],
) -> Vec<u8> {
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    format!(
        "{LOGON_CONTEXT}\x01{logon_ms}\x01{}\x01{sender}\x01{target}\x01{}\x01{}",
        hex(nonce),
        account.0,
        hex(session_key)
    )
    .into_bytes()
}

impl SessionGrant {
    /// The payload the trader signed for `account`.
    pub fn payload(&self, account: AccountId) -> Vec<u8> {
        logon_payload(
            self.logon_ms,
            &self.logon_nonce,
            &self.sender,
            &self.target,
            account,
            &self.key,
        )
    }
}

impl Engine {
    /// The key that signs transactions under `id`: the account's registered key for its own id,
    /// the session's key for a session's id (`None` when there is none). The verifier checks the
    /// logon signature that opens a session under the account's id
    /// ([`crate::codec::verify_batch`]).
    pub fn key_of(&self, id: AccountId) -> Option<[u8; 32]> {
        match id.as_session() {
            None => self.account(id).map(|a| a.public_key),
            Some((account, slot)) => self
                .account(account)
                .and_then(|a| a.sessions.get(&slot))
                .map(|s| s.key),
        }
    }

    /// The smallest nonce a transaction under `id` may carry to be accepted.
    pub fn next_nonce(&self, id: AccountId) -> u64 {
        match id.as_session() {
            None => self.account(id).map_or(1, |a| a.nonce.saturating_add(1)),
            Some((account, slot)) => self
                .account(account)
                .and_then(|a| a.sessions.get(&slot))
                .map_or(1, |s| s.nonce.saturating_add(1)),
        }
    }

    /// Executes a transaction under a session's id.
    pub(crate) fn session_client(
        &mut self,
        account: AccountId,
        slot: u8,
        nonce: u64,
        cmd: &ClientCommand,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let now = self.state.time_ms;
        // The engine counts from the venue's epoch; logon times are Unix milliseconds.
        let unix_now = now.saturating_add(self.config.venue_epoch_ms);
        let acct = self
            .state
            .accounts
            .get_mut(&account)
            .ok_or(RejectReason::UnknownAccount)?;
        if let ClientCommand::OpenSession(grant) = cmd {
            // Expired sessions make room.
            acct.sessions.retain(|_, s| s.expires_ms > unix_now);
            let fresh = grant.logon_ms.abs_diff(unix_now) <= LOGON_WINDOW_MS;
            let lifetime_ok = grant.expires_ms > unix_now
                && grant.expires_ms <= grant.logon_ms.saturating_add(SESSION_LIFETIME_MAX_MS);
            if !fresh
                || grant.logon_ms <= acct.last_logon_ms
                || !lifetime_ok
                || !valid_comp_id(&grant.sender)
                || !valid_comp_id(&grant.target)
            {
                return Err(RejectReason::SessionRefused);
            }
            if acct.sessions.contains_key(&slot) || acct.sessions.len() >= SESSIONS_MAX {
                return Err(RejectReason::TooManySessions);
            }
            acct.last_logon_ms = grant.logon_ms;
            acct.sessions.insert(
                slot,
                SessionKey {
                    key: grant.key,
                    expires_ms: grant.expires_ms,
                    nonce,
                },
            );
            out.push(Event::SessionOpened {
                account,
                slot,
                expires_ms: grant.expires_ms,
            });
            return Ok(());
        }
        let Some(session) = acct.sessions.get_mut(&slot) else {
            return Err(RejectReason::NoSession);
        };
        if session.expires_ms <= unix_now {
            acct.sessions.remove(&slot);
            out.push(Event::SessionClosed {
                account,
                slot,
                expired: true,
            });
            return Err(RejectReason::NoSession);
        }
        if nonce != 0 {
            if nonce <= session.nonce {
                return Err(RejectReason::StaleNonce);
            }
            session.nonce = nonce;
        }
        match cmd {
            // A session closes itself the way the trader revokes it.
            ClientCommand::CloseSession { slot: own } if *own == slot => {
                self.revoke_session(account, slot, out)
            }
            // `trade` refuses what is out of a session's scope (withdrawals, grants, closing
            // another session's slot).
            other => self.trade(account, other, out),
        }
    }

    /// The trader closes one of its sessions with its own key (revocation).
    pub(crate) fn revoke_session(
        &mut self,
        account: AccountId,
        slot: u8,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let acct = self
            .state
            .accounts
            .get_mut(&account)
            .ok_or(RejectReason::UnknownAccount)?;
        acct.sessions.remove(&slot).ok_or(RejectReason::NoSession)?;
        out.push(Event::SessionClosed {
            account,
            slot,
            expired: false,
        });
        Ok(())
    }
}
