//! The FIX 4.4 session layer of an acceptor, sans-IO: one [`Session`] per connection, fed the
//! bytes the connection read and the time, answering with [`Output`]s the caller carries out in
//! order (write bytes, check a logon, hand an application message on, persist the sequence
//! numbers, close).
//!
//! What it does:
//! - **Logon first.** The first message must be a Logon within [`Config::logon_deadline_ms`]
//!   (then the caller has [`Config::authenticate_wait_ms`] to answer it),
//!   under [`Limits::BEFORE_LOGON`]; anything else closes the connection without a word. The
//!   logon's fields are read and bounded here ([`LogonRequest`]: TargetCompID must be ours,
//!   HeartBtInt within bounds, SendingTime within the window); the signature and the nonce are
//!   the caller's to check ([`Output::Authenticate`], then [`Session::accept_logon`] with the
//!   sender's persisted sequence numbers, or [`Session::refuse_logon`]), so that the costly part
//!   can run on a budget on other threads. Bytes that arrive meanwhile wait, bounded.
//! - **Sequence numbers.** A message above the expected number is held back and one
//!   ResendRequest asks for the gap (BeginSeqNo = expected, EndSeqNo = 0); below it, a message
//!   that is not a PossDup ends the session with a Logout (FIX cannot tell what was lost); a
//!   PossDup below it is ignored. SequenceReset in gap-fill mode moves the expected number on,
//!   in reset mode it sets it (never backwards). [`Output::Persist`] comes before any message
//!   that uses a new outgoing number, so a restarted gateway never reuses one.
//! - **Resend.** A ResendRequest is answered from the journal of sent application messages
//!   (the last [`Config::resend_kept`]), each resent with PossDupFlag and OrigSendingTime;
//!   administrative messages and whatever the journal no longer holds are covered by
//!   SequenceReset-GapFill.
//! - **Liveness.** A Heartbeat after HeartBtInt of silence on our side; a TestRequest after
//!   HeartBtInt + 20 % of silence on theirs, and the session ends if that goes unanswered for
//!   another HeartBtInt.
//! - **Checks on every message**: the header (SenderCompID and TargetCompID of this session,
//!   MsgSeqNum, SendingTime within the window), repeated tags (only a market data request's
//!   repeating groups may repeat tags), the fields each supported type needs (session-level
//!   Reject with RefTagID and the FIX reason code), PossDup without OrigSendingTime; an
//!   application type we do not serve gets a BusinessMessageReject. A Logon on a logged-on
//!   session ends it.
//! - **Logout** either way, with a deadline for the answer.
//!
//! The caller owns the socket, the clock, the persisted sequence numbers per SenderCompID, and
//! what to do on close (cancel-on-disconnect is the gateway's, on [`Output::Close`]).

use std::collections::{BTreeSet, VecDeque};

use crate::logon::{
    parse_u64, LogonError, LogonRequest, TAG_HEART_BT_INT, TAG_MSG_SEQ_NUM, TAG_RESET_SEQ_NUM_FLAG,
    TAG_SENDER_COMP_ID, TAG_SENDING_TIME, TAG_TARGET_COMP_ID,
};
use crate::time::{format_utc_timestamp, parse_utc_timestamp};
use crate::{decode, encode, BeginString, Decoded, Field, FixError, Limits, Message, TAG_MSG_TYPE};

/// PossDupFlag.
pub const TAG_POSS_DUP_FLAG: u32 = 43;
/// OrigSendingTime.
pub const TAG_ORIG_SENDING_TIME: u32 = 122;
/// TestReqID.
pub const TAG_TEST_REQ_ID: u32 = 112;
/// BeginSeqNo.
pub const TAG_BEGIN_SEQ_NO: u32 = 7;
/// EndSeqNo.
pub const TAG_END_SEQ_NO: u32 = 16;
/// NewSeqNo.
pub const TAG_NEW_SEQ_NO: u32 = 36;
/// GapFillFlag.
pub const TAG_GAP_FILL_FLAG: u32 = 123;
/// Text.
pub const TAG_TEXT: u32 = 58;
/// RefSeqNum.
pub const TAG_REF_SEQ_NUM: u32 = 45;
/// RefTagID.
pub const TAG_REF_TAG_ID: u32 = 371;
/// Bytes of application messages a session resends per [`RESEND_WINDOW_MS`]; past it, a
/// ResendRequest is answered with a gap fill only (a counterparty asking again and again for
/// the whole journal cannot make the gateway send gigabytes).
pub const RESEND_BYTES_PER_WINDOW: usize = 8 * 1024 * 1024;
/// The window of [`RESEND_BYTES_PER_WINDOW`].
pub const RESEND_WINDOW_MS: u64 = 10_000;
/// RefMsgType.
pub const TAG_REF_MSG_TYPE: u32 = 372;
/// SessionRejectReason.
pub const TAG_SESSION_REJECT_REASON: u32 = 373;
/// BusinessRejectReason.
pub const TAG_BUSINESS_REJECT_REASON: u32 = 380;

/// SessionRejectReason codes of FIX 4.4 used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// 1: Required tag missing.
    RequiredTagMissing = 1,
    /// 5: Value is incorrect (out of range) for this tag.
    ValueIncorrect = 5,
    /// 6: Incorrect data format for value.
    IncorrectDataFormat = 6,
    /// 9: CompID problem.
    CompIdProblem = 9,
    /// 10: SendingTime accuracy problem.
    SendingTimeAccuracy = 10,
    /// 11: Invalid MsgType.
    InvalidMsgType = 11,
    /// 13: Tag appears more than once.
    TagAppearsMoreThanOnce = 13,
}

/// The application messages the gateway serves, with the fields each needs (FIX 4.4).
pub const APPLICATION_TYPES: &[(&str, &[u32])] = &[
    // NewOrderSingle: ClOrdID, Symbol, Side, TransactTime, OrderQty, OrdType.
    ("D", &[11, 55, 54, 60, 38, 40]),
    // OrderCancelRequest: OrigClOrdID, ClOrdID, Symbol, Side, TransactTime.
    ("F", &[41, 11, 55, 54, 60]),
    // OrderCancelReplaceRequest: OrigClOrdID, ClOrdID, Symbol, Side, TransactTime, OrderQty,
    // OrdType.
    ("G", &[41, 11, 55, 54, 60, 38, 40]),
    // OrderStatusRequest: ClOrdID, Symbol, Side.
    ("H", &[11, 55, 54]),
    // OrderMassCancelRequest: ClOrdID, MassCancelRequestType, TransactTime.
    ("q", &[11, 530, 60]),
    // MarketDataRequest: MDReqID, SubscriptionRequestType, MarketDepth, NoMDEntryTypes,
    // NoRelatedSym.
    ("V", &[262, 263, 264, 267, 146]),
];

/// Most bytes of field values the resend journal keeps (whatever `resend_kept` says): a
/// counterparty cannot grow it with long echoed values.
pub const JOURNAL_BYTES_MAX: usize = 4 << 20;

/// Tags a MarketDataRequest may repeat (its MDEntryType and instrument groups).
const REPEATABLE_IN_V: &[u32] = &[269, 55, 48, 22, 65, 207, 460, 167];

/// Administrative message types, with the fields each needs.
const ADMIN_TYPES: &[(&str, &[u32])] = &[
    ("0", &[]),
    ("1", &[TAG_TEST_REQ_ID]),
    ("2", &[TAG_BEGIN_SEQ_NO, TAG_END_SEQ_NO]),
    ("3", &[TAG_REF_SEQ_NUM]),
    ("4", &[TAG_NEW_SEQ_NO]),
    ("5", &[]),
    ("A", &[]),
];

/// A session's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our CompID: the TargetCompID traders log on to.
    pub comp_id: String,
    /// From the connection's start to a Logon received.
    pub logon_deadline_ms: u64,
    /// From a well-formed Logon to the caller's answer ([`Session::accept_logon`] or
    /// [`Session::refuse_logon`]): the signature check and, in the gateway, the committee
    /// opening the trading session (a view change can take seconds).
    pub authenticate_wait_ms: u64,
    /// How far SendingTime may be from our clock.
    pub sending_time_window_ms: u64,
    /// Smallest HeartBtInt accepted, seconds.
    pub heartbeat_s_min: u32,
    /// Largest HeartBtInt accepted, seconds.
    pub heartbeat_s_max: u32,
    /// Sent application messages kept for resend.
    pub resend_kept: usize,
    /// How long we wait for the answer to our Logout.
    pub logout_wait_ms: u64,
}

impl Config {
    /// The defaults: a 2 s logon deadline, a 10 s SendingTime window, HeartBtInt 1 to 120 s,
    /// 4 096 messages kept for resend, 2 s for a Logout's answer.
    pub fn new(comp_id: impl Into<String>) -> Config {
        Config {
            comp_id: comp_id.into(),
            logon_deadline_ms: 2_000,
            authenticate_wait_ms: 10_000,
            sending_time_window_ms: 10_000,
            heartbeat_s_min: 1,
            heartbeat_s_max: 120,
            resend_kept: 4096,
            logout_wait_ms: 2_000,
        }
    }
}

/// A session's sequence numbers: the next we expect and the next we send. Persisted per
/// SenderCompID by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqNums {
    /// The next MsgSeqNum expected from the counterparty.
    pub next_in: u64,
    /// The next MsgSeqNum we send.
    pub next_out: u64,
}

impl Default for SeqNums {
    fn default() -> Self {
        SeqNums {
            next_in: 1,
            next_out: 1,
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Close {
    /// Bytes that are not FIX (the codec's error).
    #[error("malformed input: {0}")]
    Malformed(FixError),
    /// No logged-on session within the deadline.
    #[error("no logon within the deadline")]
    LogonTimeout,
    /// The first message was not a Logon.
    #[error("the first message was not a Logon")]
    NotLogon,
    /// The Logon was refused.
    #[error("logon refused: {0}")]
    LogonRefused(LogonError),
    /// More bytes arrived while the logon was being checked than a session may send.
    #[error("too many bytes before the logon was answered")]
    Flooded,
    /// The counterparty went silent.
    #[error("no answer to a TestRequest within HeartBtInt")]
    HeartbeatTimeout,
    /// An orderly Logout (either side).
    #[error("logged out")]
    LoggedOut,
    /// Our Logout went unanswered.
    #[error("no answer to our Logout")]
    LogoutTimeout,
    /// A MsgSeqNum lower than expected, not a PossDup.
    #[error("MsgSeqNum {got} is lower than the expected {expected}")]
    SeqTooLow {
        /// What came.
        got: u64,
        /// What was expected.
        expected: u64,
    },
    /// A breach FIX answers with a Logout (CompID, SendingTime, MsgSeqNum missing, a second
    /// Logon).
    #[error("{0}")]
    Protocol(String),
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Check the logon's signature under the account's key and its nonce, then call
    /// [`Session::accept_logon`] or [`Session::refuse_logon`].
    Authenticate(LogonRequest),
    /// An application message, in sequence, with the fields its type needs.
    Application(Message),
    /// Store these sequence numbers for the session's SenderCompID (durably, before the bytes
    /// that follow are written).
    Persist(SeqNums),
    /// The session is over: close the connection (after the writes before this).
    Close(Close),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    AwaitingLogon {
        deadline_ms: u64,
    },
    Authenticating {
        deadline_ms: u64,
        logon: Box<LogonRequest>,
    },
    Active,
    LoggingOut {
        deadline_ms: u64,
    },
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    seq: u64,
    sending_time: String,
    body: Vec<Field>,
}

/// One FIX session at the acceptor.
#[derive(Debug)]
pub struct Session {
    config: Config,
    state: State,
    buf: Vec<u8>,
    sender: String,
    account: u64,
    heartbeat_ms: u64,
    seq: SeqNums,
    persisted: SeqNums,
    last_sent_ms: u64,
    last_received_ms: u64,
    test_request: Option<u64>,
    test_requests_sent: u64,
    journal: VecDeque<Sent>,
    /// Bytes of values in the journal (each field counted with 8 bytes of overhead).
    journal_bytes: usize,
    resend_target: Option<u64>,
    /// The resend budget's window start and the bytes resent in it.
    resent: (u64, usize),
}

impl Session {
    /// A new connection at `now_ms`.
    pub fn new(config: Config, now_ms: u64) -> Session {
        let deadline_ms = now_ms.saturating_add(config.logon_deadline_ms);
        Session {
            config,
            state: State::AwaitingLogon { deadline_ms },
            buf: Vec::new(),
            sender: String::new(),
            account: 0,
            heartbeat_ms: 0,
            seq: SeqNums::default(),
            persisted: SeqNums::default(),
            last_sent_ms: now_ms,
            last_received_ms: now_ms,
            test_request: None,
            test_requests_sent: 0,
            journal: VecDeque::new(),
            journal_bytes: 0,
            resend_target: None,
            resent: (0, 0),
        }
    }

    /// Whether the session is logged on (application messages may flow).
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The counterparty's SenderCompID (empty before logon).
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// The logged-on account (0 before logon).
    pub fn account(&self) -> u64 {
        self.account
    }

    /// The current sequence numbers.
    pub fn seq(&self) -> SeqNums {
        self.seq
    }

    /// The limits the next message is decoded under.
    pub fn limits(&self) -> Limits {
        match self.state {
            State::AwaitingLogon { .. } | State::Authenticating { .. } => Limits::BEFORE_LOGON,
            _ => Limits::SESSION,
        }
    }

    /// Bytes the connection read at `now_ms`.
    pub fn receive(&mut self, now_ms: u64, bytes: &[u8], out: &mut Vec<Output>) {
        if self.state == State::Closed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        if matches!(self.state, State::Authenticating { .. })
            && self.buf.len() > Limits::SESSION.message_bytes_max
        {
            self.close(Close::Flooded, out);
            return;
        }
        self.process(now_ms, out);
        self.persist(out);
    }

    /// Timers: the logon deadline, heartbeats, test requests, the logout deadline.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        match self.state {
            State::AwaitingLogon { deadline_ms } | State::Authenticating { deadline_ms, .. }
                if now_ms >= deadline_ms =>
            {
                self.close(Close::LogonTimeout, out);
            }
            State::LoggingOut { deadline_ms } if now_ms >= deadline_ms => {
                self.close(Close::LogoutTimeout, out);
            }
            State::Active => {
                let hb = self.heartbeat_ms;
                if let Some(sent) = self.test_request {
                    if now_ms.saturating_sub(sent) >= hb {
                        self.logout_and_close(
                            now_ms,
                            "no answer to TestRequest",
                            Close::HeartbeatTimeout,
                            out,
                        );
                        return;
                    }
                } else if now_ms.saturating_sub(self.last_received_ms) >= hb + hb / 5 {
                    self.test_requests_sent += 1;
                    let id = format!("TEST-{}", self.test_requests_sent);
                    self.send_admin(now_ms, "1", vec![Field::new(TAG_TEST_REQ_ID, id)], out);
                    self.test_request = Some(now_ms);
                }
                if now_ms.saturating_sub(self.last_sent_ms) >= hb {
                    self.send_admin(now_ms, "0", Vec::new(), out);
                }
            }
            _ => {}
        }
        self.persist(out);
    }

    /// The caller found the logon good: `stored` are the sequence numbers persisted for its
    /// SenderCompID (the default for a new one). Answers the Logon and goes on with any bytes
    /// that waited.
    pub fn accept_logon(&mut self, now_ms: u64, stored: SeqNums, out: &mut Vec<Output>) {
        let State::Authenticating { logon, .. } = &self.state else {
            return;
        };
        let logon = LogonRequest::clone(logon);
        self.sender = logon.sender.clone();
        self.account = logon.account;
        self.heartbeat_ms = u64::from(logon.heartbeat_s) * 1000;
        self.seq = if logon.reset {
            SeqNums::default()
        } else {
            stored
        };
        // The stored numbers are what the caller holds already.
        self.persisted = stored;
        self.state = State::Active;
        let mut reply = vec![
            Field::new(crate::logon::TAG_ENCRYPT_METHOD, "0"),
            Field::new(TAG_HEART_BT_INT, logon.heartbeat_s.to_string()),
        ];
        if logon.reset {
            reply.push(Field::new(TAG_RESET_SEQ_NUM_FLAG, "Y"));
        }
        self.send_admin(now_ms, "A", reply, out);
        self.last_received_ms = now_ms;
        if logon.reset && logon.msg_seq_num != 1 {
            self.logout_and_close(
                now_ms,
                "ResetSeqNumFlag=Y needs MsgSeqNum 1",
                Close::Protocol("a reset logon's MsgSeqNum was not 1".into()),
                out,
            );
            return;
        }
        match self.sequence(now_ms, logon.msg_seq_num, false, out) {
            Sequenced::InOrder => self.seq.next_in += 1,
            Sequenced::Ahead | Sequenced::Ignore => {}
            Sequenced::Closed => return,
        }
        self.process(now_ms, out);
        self.persist(out);
    }

    /// The caller refused the logon: a Logout that says why, and the end.
    pub fn refuse_logon(&mut self, now_ms: u64, error: LogonError, out: &mut Vec<Output>) {
        let State::Authenticating { logon, .. } = &self.state else {
            return;
        };
        let (sender, target) = (logon.sender.clone(), logon.target.clone());
        self.refuse_before_logon(now_ms, &sender, &target, error, out);
    }

    /// Sends an application message (ExecutionReport, OrderCancelReject, ...): `body` without
    /// the header, which is added here. Refused unless logged on.
    pub fn send(
        &mut self,
        now_ms: u64,
        msg_type: &str,
        body: Vec<Field>,
        out: &mut Vec<Output>,
    ) -> Result<(), SendError> {
        if self.state != State::Active {
            return Err(SendError::NotLoggedOn);
        }
        let mut fields = Vec::with_capacity(body.len() + 1);
        fields.push(Field::new(TAG_MSG_TYPE, msg_type));
        fields.extend(body);
        // Refuse what the codec would refuse before it takes a sequence number.
        encode(BeginString::Fix44, &fields).map_err(SendError::Encode)?;
        fields.remove(0);
        let seq = self.seq.next_out;
        let sending_time = format_utc_timestamp(now_ms);
        self.journal.push_back(Sent {
            seq,
            sending_time: sending_time.clone(),
            body: {
                let mut stored = vec![Field::new(TAG_MSG_TYPE, msg_type)];
                stored.extend(fields.iter().cloned());
                stored
            },
        });
        self.journal_bytes += sent_bytes(self.journal.back());
        while self.journal.len() > self.config.resend_kept || self.journal_bytes > JOURNAL_BYTES_MAX
        {
            let dropped = self.journal.pop_front();
            self.journal_bytes -= sent_bytes(dropped.as_ref());
        }
        self.send_at(now_ms, msg_type, fields, seq, None, out);
        self.seq.next_out += 1;
        Ok(())
    }

    /// Starts a Logout (shutdown, kill switch): the session ends on the answer or after
    /// [`Config::logout_wait_ms`].
    pub fn logout(&mut self, now_ms: u64, text: &str, out: &mut Vec<Output>) {
        if self.state != State::Active {
            if !matches!(self.state, State::Closed | State::LoggingOut { .. }) {
                self.close(Close::LoggedOut, out);
            }
            return;
        }
        self.send_admin(now_ms, "5", vec![Field::new(TAG_TEXT, text)], out);
        self.state = State::LoggingOut {
            deadline_ms: now_ms.saturating_add(self.config.logout_wait_ms),
        };
        self.persist(out);
    }

    fn process(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        loop {
            if !matches!(
                self.state,
                State::AwaitingLogon { .. } | State::Active | State::LoggingOut { .. }
            ) {
                return;
            }
            match decode(&self.buf, &self.limits()) {
                Ok(Decoded::Incomplete) => return,
                Err(error) => {
                    self.close(Close::Malformed(error), out);
                    return;
                }
                Ok(Decoded::Message(message, used)) => {
                    self.buf.drain(..used);
                    self.last_received_ms = now_ms;
                    self.test_request = None;
                    if matches!(self.state, State::AwaitingLogon { .. }) {
                        self.on_logon(now_ms, &message, out);
                    } else {
                        self.on_message(now_ms, message, out);
                    }
                }
            }
        }
    }

    fn on_logon(&mut self, now_ms: u64, message: &Message, out: &mut Vec<Output>) {
        let State::AwaitingLogon { .. } = self.state else {
            return;
        };
        if message.msg_type() != b"A" {
            self.close(Close::NotLogon, out);
            return;
        }
        let sender = message
            .get_str(TAG_SENDER_COMP_ID)
            .unwrap_or("")
            .to_string();
        let target = message
            .get_str(TAG_TARGET_COMP_ID)
            .unwrap_or("")
            .to_string();
        let logon = match LogonRequest::from_message(message) {
            Ok(logon) => logon,
            Err(error) => {
                self.refuse_before_logon(now_ms, &sender, &target, error, out);
                return;
            }
        };
        if logon.target != self.config.comp_id {
            let error = LogonError::Field(TAG_TARGET_COMP_ID);
            self.refuse_before_logon(now_ms, &sender, &target, error, out);
            return;
        }
        let (min, max) = (self.config.heartbeat_s_min, self.config.heartbeat_s_max);
        if !(min..=max).contains(&logon.heartbeat_s) {
            let error = LogonError::HeartBtInt { min, max };
            self.refuse_before_logon(now_ms, &sender, &target, error, out);
            return;
        }
        let window = self.config.sending_time_window_ms;
        if logon.sending_time_ms.abs_diff(now_ms) > window {
            let error = LogonError::Stale(window);
            self.refuse_before_logon(now_ms, &sender, &target, error, out);
            return;
        }
        self.state = State::Authenticating {
            deadline_ms: now_ms.saturating_add(self.config.authenticate_wait_ms),
            logon: Box::new(logon.clone()),
        };
        out.push(Output::Authenticate(logon));
    }

    /// A Logout to a counterparty that never logged on: sequence number 1 (nothing of a
    /// session's numbers is touched), the reason as text, the end.
    fn refuse_before_logon(
        &mut self,
        now_ms: u64,
        sender: &str,
        target: &str,
        error: LogonError,
        out: &mut Vec<Output>,
    ) {
        let printable =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
        if printable(sender) && printable(target) {
            let fields = [
                Field::new(TAG_MSG_TYPE, "5"),
                Field::new(TAG_SENDER_COMP_ID, target),
                Field::new(TAG_TARGET_COMP_ID, sender),
                Field::new(TAG_MSG_SEQ_NUM, "1"),
                Field::new(TAG_SENDING_TIME, format_utc_timestamp(now_ms)),
                Field::new(TAG_TEXT, error.to_string()),
            ];
            if let Ok(bytes) = encode(BeginString::Fix44, &fields) {
                out.push(Output::Send(bytes));
            }
        }
        self.close(Close::LogonRefused(error), out);
    }

    fn on_message(&mut self, now_ms: u64, message: Message, out: &mut Vec<Output>) {
        let msg_type = String::from_utf8_lossy(message.msg_type()).into_owned();
        let Some(seq) = message
            .get(TAG_MSG_SEQ_NUM)
            .and_then(parse_u64)
            .filter(|s| *s > 0)
        else {
            self.logout_and_close(
                now_ms,
                "MsgSeqNum missing or invalid",
                Close::Protocol("MsgSeqNum (34) missing or invalid".into()),
                out,
            );
            return;
        };
        // The header: this session's CompIDs, a SendingTime near our clock.
        if message.get_str(TAG_SENDER_COMP_ID) != Some(self.sender.as_str())
            || message.get_str(TAG_TARGET_COMP_ID) != Some(self.config.comp_id.as_str())
        {
            self.reject(
                now_ms,
                (seq, &msg_type),
                RejectReason::CompIdProblem,
                None,
                "CompID problem",
                out,
            );
            self.logout_and_close(
                now_ms,
                "CompID problem",
                Close::Protocol("SenderCompID or TargetCompID of another session".into()),
                out,
            );
            return;
        }
        let Some(sending_time) = message.get(TAG_SENDING_TIME).and_then(parse_utc_timestamp) else {
            self.reject(
                now_ms,
                (seq, &msg_type),
                RejectReason::RequiredTagMissing,
                Some(TAG_SENDING_TIME),
                "SendingTime missing or malformed",
                out,
            );
            if seq == self.seq.next_in {
                self.seq.next_in += 1;
            }
            return;
        };
        let poss_dup = message.get(TAG_POSS_DUP_FLAG) == Some(b"Y");
        // A resent message carries its first SendingTime in OrigSendingTime; only fresh ones
        // must be near our clock.
        if !poss_dup && sending_time.abs_diff(now_ms) > self.config.sending_time_window_ms {
            self.reject(
                now_ms,
                (seq, &msg_type),
                RejectReason::SendingTimeAccuracy,
                Some(TAG_SENDING_TIME),
                "SendingTime accuracy problem",
                out,
            );
            self.logout_and_close(
                now_ms,
                "SendingTime accuracy problem",
                Close::Protocol("SendingTime outside the window".into()),
                out,
            );
            return;
        }
        // SequenceReset in reset mode ignores MsgSeqNum.
        if msg_type == "4" && message.get(TAG_GAP_FILL_FLAG) != Some(b"Y") {
            self.on_sequence_reset(now_ms, seq, &message, out);
            return;
        }
        match self.sequence(now_ms, seq, poss_dup, out) {
            Sequenced::InOrder => {}
            Sequenced::Ignore | Sequenced::Closed => return,
            Sequenced::Ahead => {
                // FIX lets a counterparty's ResendRequest and Logout through a gap.
                match msg_type.as_str() {
                    "2" => self.on_resend_request(now_ms, seq, &message, out),
                    "5" => self.on_logout(now_ms, out),
                    _ => {}
                }
                return;
            }
        }
        // In order from here: the message takes its number whatever becomes of it.
        self.seq.next_in = seq + 1;
        if self
            .resend_target
            .is_some_and(|target| self.seq.next_in > target)
        {
            self.resend_target = None;
        }
        if poss_dup && message.get(TAG_ORIG_SENDING_TIME).is_none() {
            self.reject(
                now_ms,
                (seq, &msg_type),
                RejectReason::RequiredTagMissing,
                Some(TAG_ORIG_SENDING_TIME),
                "PossDupFlag=Y without OrigSendingTime",
                out,
            );
            return;
        }
        let required = ADMIN_TYPES
            .iter()
            .chain(APPLICATION_TYPES)
            .find(|(t, _)| *t == msg_type)
            .map(|(_, required)| *required);
        let Some(required) = required else {
            if msg_type.len() <= 2 && msg_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
                self.business_reject(now_ms, seq, &msg_type, 3, "unsupported message type", out);
            } else {
                self.reject(
                    now_ms,
                    (seq, &msg_type),
                    RejectReason::InvalidMsgType,
                    None,
                    "invalid MsgType",
                    out,
                );
            }
            return;
        };
        if let Some(tag) = repeated_tag(&message, &msg_type) {
            self.reject(
                now_ms,
                (seq, &msg_type),
                RejectReason::TagAppearsMoreThanOnce,
                Some(tag),
                "tag appears more than once",
                out,
            );
            return;
        }
        if let Some(&tag) = required.iter().find(|tag| message.get(**tag).is_none()) {
            self.reject(
                now_ms,
                (seq, &msg_type),
                RejectReason::RequiredTagMissing,
                Some(tag),
                "required tag missing",
                out,
            );
            return;
        }
        match msg_type.as_str() {
            "0" | "3" => {}
            "1" => {
                let id = message.get(TAG_TEST_REQ_ID).unwrap_or_default().to_vec();
                self.send_admin(now_ms, "0", vec![Field::new(TAG_TEST_REQ_ID, id)], out);
            }
            "2" => self.on_resend_request(now_ms, seq, &message, out),
            "4" => self.on_sequence_reset(now_ms, seq, &message, out),
            "5" => self.on_logout(now_ms, out),
            "A" => self.logout_and_close(
                now_ms,
                "already logged on",
                Close::Protocol("a second Logon on a logged-on session".into()),
                out,
            ),
            // After our Logout nothing more is taken (the number is, the message is not).
            _ if self.state == State::Active => out.push(Output::Application(message)),
            _ => {}
        }
    }

    /// Where `seq` stands against the expected number.
    fn sequence(
        &mut self,
        now_ms: u64,
        seq: u64,
        poss_dup: bool,
        out: &mut Vec<Output>,
    ) -> Sequenced {
        let expected = self.seq.next_in;
        if seq == expected {
            return Sequenced::InOrder;
        }
        if seq < expected {
            if poss_dup {
                return Sequenced::Ignore;
            }
            let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
            self.logout_and_close(now_ms, &text, Close::SeqTooLow { got: seq, expected }, out);
            return Sequenced::Closed;
        }
        // A gap: one ResendRequest until it is filled.
        if self.resend_target.is_none() {
            self.send_admin(
                now_ms,
                "2",
                vec![
                    Field::new(TAG_BEGIN_SEQ_NO, expected.to_string()),
                    Field::new(TAG_END_SEQ_NO, "0"),
                ],
                out,
            );
        }
        self.resend_target = Some(self.resend_target.unwrap_or(0).max(seq));
        Sequenced::Ahead
    }

    /// SequenceReset: in gap-fill mode its own number was taken already (next_in = seq + 1); in
    /// reset mode its number does not count. Either way the expected number never goes back.
    fn on_sequence_reset(
        &mut self,
        now_ms: u64,
        seq: u64,
        message: &Message,
        out: &mut Vec<Output>,
    ) {
        let Some(new_seq) = message.get(TAG_NEW_SEQ_NO).and_then(parse_u64) else {
            self.reject(
                now_ms,
                (seq, "4"),
                RejectReason::RequiredTagMissing,
                Some(TAG_NEW_SEQ_NO),
                "NewSeqNo missing or malformed",
                out,
            );
            return;
        };
        if new_seq < self.seq.next_in {
            self.reject(
                now_ms,
                (seq, "4"),
                RejectReason::ValueIncorrect,
                Some(TAG_NEW_SEQ_NO),
                "NewSeqNo would move MsgSeqNum backwards",
                out,
            );
            return;
        }
        self.seq.next_in = new_seq;
        if self
            .resend_target
            .is_some_and(|target| self.seq.next_in > target)
        {
            self.resend_target = None;
        }
    }

    fn on_resend_request(
        &mut self,
        now_ms: u64,
        seq: u64,
        message: &Message,
        out: &mut Vec<Output>,
    ) {
        let begin = message.get(TAG_BEGIN_SEQ_NO).and_then(parse_u64);
        let end = message.get(TAG_END_SEQ_NO).and_then(parse_u64);
        let last = self.seq.next_out - 1;
        let (Some(begin), Some(end)) = (begin, end) else {
            self.reject(
                now_ms,
                (seq, "2"),
                RejectReason::IncorrectDataFormat,
                Some(TAG_BEGIN_SEQ_NO),
                "BeginSeqNo or EndSeqNo malformed",
                out,
            );
            return;
        };
        let end = if end == 0 || end > last { last } else { end };
        if begin == 0 || begin > end {
            self.reject(
                now_ms,
                (seq, "2"),
                RejectReason::ValueIncorrect,
                Some(TAG_BEGIN_SEQ_NO),
                "nothing sent in that range",
                out,
            );
            return;
        }
        let resend: Vec<Sent> = self
            .journal
            .iter()
            .filter(|sent| (begin..=end).contains(&sent.seq))
            .cloned()
            .collect();
        if now_ms.saturating_sub(self.resent.0) >= RESEND_WINDOW_MS {
            self.resent = (now_ms, 0);
        }
        let mut next = begin;
        for sent in resend {
            let bytes: usize = sent.body.iter().map(|f| f.value.len() + 8).sum();
            if self.resent.1 + bytes > RESEND_BYTES_PER_WINDOW {
                // Over the budget: the rest is gap-filled, not resent.
                break;
            }
            self.resent.1 += bytes;
            if sent.seq > next {
                self.gap_fill(now_ms, next, sent.seq, out);
            }
            let mut body = sent.body;
            let msg_type = String::from_utf8_lossy(&body.remove(0).value).into_owned();
            self.send_at(
                now_ms,
                &msg_type,
                body,
                sent.seq,
                Some(&sent.sending_time),
                out,
            );
            next = sent.seq + 1;
        }
        if next <= end {
            self.gap_fill(now_ms, next, end + 1, out);
        }
    }

    fn on_logout(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        if self.state == State::Active {
            self.send_admin(now_ms, "5", Vec::new(), out);
        }
        self.close(Close::LoggedOut, out);
    }

    fn gap_fill(&mut self, now_ms: u64, from: u64, to: u64, out: &mut Vec<Output>) {
        let sending_time = format_utc_timestamp(now_ms);
        let body = vec![
            Field::new(TAG_GAP_FILL_FLAG, "Y"),
            Field::new(TAG_NEW_SEQ_NO, to.to_string()),
        ];
        self.send_at(now_ms, "4", body, from, Some(&sending_time), out);
    }

    /// A session-level Reject of the message (`ref_seq`, `ref_msg_type`).
    fn reject(
        &mut self,
        now_ms: u64,
        (ref_seq, ref_msg_type): (u64, &str),
        reason: RejectReason,
        ref_tag: Option<u32>,
        text: &str,
        out: &mut Vec<Output>,
    ) {
        let mut body = vec![Field::new(TAG_REF_SEQ_NUM, ref_seq.to_string())];
        if let Some(tag) = ref_tag {
            body.push(Field::new(TAG_REF_TAG_ID, tag.to_string()));
        }
        if !ref_msg_type.is_empty() && ref_msg_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            body.push(Field::new(TAG_REF_MSG_TYPE, ref_msg_type));
        }
        body.push(Field::new(
            TAG_SESSION_REJECT_REASON,
            (reason as u32).to_string(),
        ));
        body.push(Field::new(TAG_TEXT, text));
        self.send_admin(now_ms, "3", body, out);
    }

    fn business_reject(
        &mut self,
        now_ms: u64,
        ref_seq: u64,
        ref_msg_type: &str,
        reason: u32,
        text: &str,
        out: &mut Vec<Output>,
    ) {
        let body = vec![
            Field::new(TAG_REF_SEQ_NUM, ref_seq.to_string()),
            Field::new(TAG_REF_MSG_TYPE, ref_msg_type),
            Field::new(TAG_BUSINESS_REJECT_REASON, reason.to_string()),
            Field::new(TAG_TEXT, text),
        ];
        // An application message: journaled and resent like the others.
        let _ = self.send(now_ms, "j", body, out);
    }

    fn logout_and_close(&mut self, now_ms: u64, text: &str, reason: Close, out: &mut Vec<Output>) {
        if matches!(self.state, State::Active | State::LoggingOut { .. }) {
            self.send_admin(now_ms, "5", vec![Field::new(TAG_TEXT, text)], out);
        }
        self.close(reason, out);
    }

    /// An administrative message: a new number, not journaled (a resend gap-fills it).
    fn send_admin(&mut self, now_ms: u64, msg_type: &str, body: Vec<Field>, out: &mut Vec<Output>) {
        let seq = self.seq.next_out;
        self.send_at(now_ms, msg_type, body, seq, None, out);
        self.seq.next_out += 1;
    }

    /// Writes a message at `seq`; `resent` is the first SendingTime of a message sent again.
    fn send_at(
        &mut self,
        now_ms: u64,
        msg_type: &str,
        body: Vec<Field>,
        seq: u64,
        resent: Option<&str>,
        out: &mut Vec<Output>,
    ) {
        let mut fields = Vec::with_capacity(body.len() + 7);
        fields.push(Field::new(TAG_MSG_TYPE, msg_type));
        fields.push(Field::new(TAG_SENDER_COMP_ID, self.config.comp_id.as_str()));
        fields.push(Field::new(TAG_TARGET_COMP_ID, self.sender.as_str()));
        fields.push(Field::new(TAG_MSG_SEQ_NUM, seq.to_string()));
        if resent.is_some() {
            fields.push(Field::new(TAG_POSS_DUP_FLAG, "Y"));
        }
        fields.push(Field::new(TAG_SENDING_TIME, format_utc_timestamp(now_ms)));
        if let Some(original) = resent {
            fields.push(Field::new(TAG_ORIG_SENDING_TIME, original));
        }
        fields.extend(body);
        // A new number is persisted before the message that uses it goes out.
        if resent.is_none() {
            let mut after = self.seq;
            after.next_out = after.next_out.max(seq + 1);
            if after != self.persisted {
                out.push(Output::Persist(after));
                self.persisted = after;
            }
        }
        match encode(BeginString::Fix44, &fields) {
            Ok(bytes) => {
                out.push(Output::Send(bytes));
                self.last_sent_ms = now_ms;
            }
            // Every value here is ours and checked at `send`; a failure is a bug, not input.
            Err(error) => {
                self.state = State::Closed;
                out.push(Output::Close(Close::Malformed(error)));
            }
        }
    }

    fn persist(&mut self, out: &mut Vec<Output>) {
        if matches!(
            self.state,
            State::AwaitingLogon { .. } | State::Authenticating { .. }
        ) {
            return;
        }
        if self.seq != self.persisted {
            out.push(Output::Persist(self.seq));
            self.persisted = self.seq;
        }
    }

    fn close(&mut self, reason: Close, out: &mut Vec<Output>) {
        self.persist(out);
        self.state = State::Closed;
        self.buf = Vec::new();
        out.push(Output::Close(reason));
    }
}

fn sent_bytes(sent: Option<&Sent>) -> usize {
    sent.map_or(0, |sent| sent.body.iter().map(|f| f.value.len() + 8).sum())
}

enum Sequenced {
    InOrder,
    Ahead,
    Ignore,
    Closed,
}

/// Why [`Session::send`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is not logged on.
    #[error("the session is not logged on")]
    NotLoggedOn,
    /// A field the codec refuses.
    #[error("cannot encode: {0}")]
    Encode(FixError),
}

/// The first tag `message` repeats that its type may not repeat.
fn repeated_tag(message: &Message, msg_type: &str) -> Option<u32> {
    let mut seen = BTreeSet::new();
    message
        .fields
        .iter()
        .map(|f| f.tag)
        .filter(|tag| !(msg_type == "V" && REPEATABLE_IN_V.contains(tag)))
        .find(|tag| !seen.insert(*tag))
}
