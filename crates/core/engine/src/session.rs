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
/// The shortest silence a [`ClientCommand::SessionHeartbeat`] may allow: twice the 10 s a
/// leader may put a block's time ahead of the replicas' clocks.
pub const SILENCE_MIN_MS: u32 = 20_000;
/// The longest silence a heartbeat may allow: five minutes.
pub const SILENCE_MAX_MS: u32 = 300_000;
/// Silence is counted on the session clock, which one batch moves by at most this much
/// (whatever its block time says) and never further than block time. A leader that stamps its
/// block 10 s ahead gains at most this with that block (the blocks after it see no time pass
/// until their clocks catch up); leaders that ramp their stamps up turn after turn gain at most
/// the 10 s block times may run ahead in all, which [`SILENCE_MIN_MS`] leaves room for. After a
/// committee stall the first blocks do not silence every session at once: the gateways'
/// heartbeats, held up by the stall too, get a few blocks to land.
pub const SESSION_CLOCK_STEP_MAX_MS: u64 = 1_000;
/// Sessions silenced in one batch at most; the rest wait for the next batches in due order.
pub const SILENCES_PER_BATCH_MAX: usize = 64;

/// An open session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionKey {
    /// The delegated Ed25519 key.
    pub key: [u8; 32],
    /// When it ends, Unix milliseconds.
    pub expires_ms: u64,
    /// The session's highest accepted nonce.
    pub nonce: u64,
    /// The committee's cancel on disconnect, when a heartbeat armed it.
    pub silence: Option<Silence>,
    /// The session's tag: its logon time, unique within the account (logons only increase).
    /// Orders and stops it places carry it ([`crate::book::Resting::session`]).
    pub tag: u64,
}

/// A session's armed silence bound ([`ClientCommand::SessionHeartbeat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// The bound, milliseconds.
    pub within_ms: u32,
    /// The session clock's time at which the session counts as silent
    /// ([`SESSION_CLOCK_STEP_MAX_MS`]).
    pub due_ms: u64,
}

/// The index of armed sessions by when they fall silent: (due, account, slot).
pub(crate) type Silences = std::collections::BTreeSet<(u64, AccountId, u8)>;

/// Takes a session that is going away out of the silence index.
fn unindex(silences: &mut Silences, account: AccountId, slot: u8, session: &SessionKey) {
    if let Some(s) = session.silence {
        silences.remove(&(s.due_ms, account, slot));
    }
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
            // Expired sessions make room; an armed one's orders go with it, whatever becomes
            // of this grant.
            let silences = &mut self.state.silences;
            let mut armed_tags = Vec::new();
            acct.sessions.retain(|slot, s| {
                let live = s.expires_ms > unix_now;
                if !live {
                    unindex(silences, account, *slot, s);
                    if s.silence.is_some() {
                        armed_tags.push(s.tag);
                    }
                }
                live
            });
            if !armed_tags.is_empty() {
                self.cancel_ended_sessions(account, &armed_tags, out);
            }
            let acct = self
                .state
                .accounts
                .get_mut(&account)
                .ok_or(RejectReason::UnknownAccount)?;
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
                    silence: None,
                    tag: grant.logon_ms,
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
            unindex(&mut self.state.silences, account, slot, session);
            // An armed session's cancel on disconnect holds at its expiry too, and so does a
            // close that asked for it (a gateway's cancel on disconnect arriving just late).
            let asked = matches!(
                cmd,
                ClientCommand::CloseSession {
                    cancel_placed: true,
                    ..
                }
            );
            let cancel = (session.silence.is_some() || asked).then_some(session.tag);
            acct.sessions.remove(&slot);
            out.push(Event::SessionClosed {
                account,
                slot,
                expired: true,
            });
            if let Some(tag) = cancel {
                self.cancel_ended_sessions(account, &[tag], out);
            }
            return Err(RejectReason::NoSession);
        }
        if nonce != 0 {
            if nonce <= session.nonce {
                return Err(RejectReason::StaleNonce);
            }
            session.nonce = nonce;
        }
        // The session is heard from: an armed bound starts again from now.
        let clock = self.state.session_clock_ms;
        if let Some(silence) = session.silence.as_mut() {
            self.state.silences.remove(&(silence.due_ms, account, slot));
            silence.due_ms = clock.saturating_add(u64::from(silence.within_ms));
            self.state.silences.insert((silence.due_ms, account, slot));
        }
        let tag = session.tag;
        match cmd {
            ClientCommand::SessionHeartbeat { within_ms } => {
                if *within_ms != 0 && !(SILENCE_MIN_MS..=SILENCE_MAX_MS).contains(within_ms) {
                    return Err(RejectReason::BadHeartbeat);
                }
                unindex(&mut self.state.silences, account, slot, session);
                session.silence = None;
                if *within_ms == 0 {
                    return Ok(());
                }
                let due_ms = clock.saturating_add(u64::from(*within_ms));
                session.silence = Some(Silence {
                    within_ms: *within_ms,
                    due_ms,
                });
                self.state.silences.insert((due_ms, account, slot));
                Ok(())
            }
            // A session closes itself the way the trader revokes it.
            ClientCommand::CloseSession {
                slot: own,
                cancel_placed,
            } if *own == slot => self.revoke_session(account, slot, *cancel_placed, out),
            // `trade` refuses what is out of a session's scope (withdrawals, grants, closing
            // another session's slot); what it places carries the session's tag.
            other => {
                self.acting_session = tag;
                let done = self.trade(account, other, out);
                self.acting_session = 0;
                done
            }
        }
    }

    /// The trader closes one of its sessions with its own key (revocation).
    pub(crate) fn revoke_session(
        &mut self,
        account: AccountId,
        slot: u8,
        cancel_placed: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let acct = self
            .state
            .accounts
            .get_mut(&account)
            .ok_or(RejectReason::UnknownAccount)?;
        let session = acct.sessions.remove(&slot).ok_or(RejectReason::NoSession)?;
        unindex(&mut self.state.silences, account, slot, &session);
        if cancel_placed {
            self.cancel_ended_sessions(account, &[session.tag], out);
        }
        out.push(Event::SessionClosed {
            account,
            slot,
            expired: false,
        });
        Ok(())
    }

    /// At the end of a batch: every armed session silent past its bound (at most
    /// [`SILENCES_PER_BATCH_MAX`]) has the orders and stops it placed cancelled and is closed.
    pub(crate) fn silence_sessions(&mut self, out: &mut Vec<Event>) {
        let clock = self.state.session_clock_ms;
        let unix_now = self
            .state
            .time_ms
            .saturating_add(self.config.venue_epoch_ms);
        let mut silenced = 0;
        while let Some(&(due_ms, account, slot)) = self.state.silences.first() {
            if due_ms > clock || silenced >= SILENCES_PER_BATCH_MAX {
                break;
            }
            silenced += 1;
            self.state.silences.pop_first();
            let Some(acct) = self.state.accounts.get_mut(&account) else {
                continue;
            };
            let armed = acct.sessions.get(&slot).and_then(|session| {
                let silence = session.silence.filter(|s| s.due_ms == due_ms)?;
                Some((silence, session.tag, session.expires_ms <= unix_now))
            });
            let Some((silence, tag, expired)) = armed else {
                continue;
            };
            acct.sessions.remove(&slot);
            out.push(Event::SessionSilent {
                account,
                slot,
                within_ms: silence.within_ms,
            });
            // Only what this session placed: another session of the account (a trader that
            // failed over to another gateway) keeps its orders, and its gateway is not left
            // reporting orders the committee cancelled.
            self.cancel_ended_sessions(account, &[tag], out);
            out.push(Event::SessionClosed {
                account,
                slot,
                expired,
            });
        }
    }

    /// Cancels what the ended armed sessions tagged `tags` placed (their cancel on disconnect).
    fn cancel_ended_sessions(&mut self, account: AccountId, tags: &[u64], out: &mut Vec<Event>) {
        for tag in tags {
            let reason = crate::event::CancelReason::MassCancel;
            self.cancel_placed_by(account, None, Some(*tag), reason, out);
        }
    }

    /// The silence index of `state`'s sessions (rebuilt when a snapshot is restored).
    pub(crate) fn silences_of(
        accounts: &std::collections::BTreeMap<AccountId, crate::account::Account>,
    ) -> Silences {
        accounts
            .iter()
            .flat_map(|(id, a)| {
                a.sessions
                    .iter()
                    .filter_map(move |(slot, s)| s.silence.map(|x| (x.due_ms, *id, *slot)))
            })
            .collect()
    }
}
