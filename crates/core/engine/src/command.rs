//! The transactions the engine executes.
//!
//! A [`Command`] is either a client's request, already authenticated by the caller (the node checks
//! the client's Ed25519 signature with [`crate::codec::verify_batch`] before the engine sees it), or
//! a system input that only the committee produces (deposits credited by custody, certified index
//! prices). The JSON form (used by `bulwark engine run`) is documented in `docs/engine-input.md`.

use serde::{Deserialize, Serialize};

/// A trading account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub u64);

/// Bit 62 of an [`AccountId`] marks a trading session's id (bit 63 stays clear: the insurance
/// fund is `u64::MAX`): `SESSION_FLAG | slot << 48 | account` for an account below 2^48.
pub const SESSION_FLAG: u64 = 1 << 62;
/// Accounts that may open sessions are below this.
pub const SESSION_ACCOUNT_LIMIT: u64 = 1 << 48;

impl AccountId {
    /// The id under which session `slot` of this account acts, when the account may have
    /// sessions (below [`SESSION_ACCOUNT_LIMIT`]).
    pub fn session(self, slot: u8) -> Option<AccountId> {
        (self.0 < SESSION_ACCOUNT_LIMIT)
            .then(|| AccountId(SESSION_FLAG | u64::from(slot) << 48 | self.0))
    }

    /// The account and slot of a session id; `None` for an account's own id.
    pub fn as_session(self) -> Option<(AccountId, u8)> {
        let high = self.0 >> 56;
        if high != SESSION_FLAG >> 56 {
            return None;
        }
        let slot = ((self.0 >> 48) & 0xff) as u8;
        Some((AccountId(self.0 & (SESSION_ACCOUNT_LIMIT - 1)), slot))
    }

    /// Whether an account may be opened under this id (session ids are reserved).
    pub fn is_reserved(self) -> bool {
        self.0 & SESSION_FLAG != 0 && self.0 != u64::MAX
    }
}

/// A trader's authorization of a trading session: the fields of its logon (FIX Logon or the
/// JSON-RPC `public/auth`) that it signed with the account's key, and the delegated key the
/// gateway holds for the session. The transaction that carries it acts under the session's id
/// ([`AccountId::session`]) and its signature is the trader's logon signature over
/// [`crate::session::logon_payload`], checked under the account's registered key. See
/// [`crate::session`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionGrant {
    /// The session's Ed25519 key (held by the gateway; signs the session's transactions).
    pub key: [u8; 32],
    /// When the session ends by itself, Unix milliseconds (at most a day after the logon).
    pub expires_ms: u64,
    /// The logon's time, Unix milliseconds (FIX SendingTime).
    pub logon_ms: u64,
    /// The logon's random nonce.
    pub logon_nonce: [u8; 16],
    /// Who logged on (FIX SenderCompID): 1 to 32 printable ASCII bytes.
    pub sender: String,
    /// Where (FIX TargetCompID, the gateway): 1 to 32 printable ASCII bytes.
    pub target: String,
}

/// An instrument, by its position in the engine's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstrumentId(pub u32);

/// An order, numbered by the engine in acceptance order (unique for the venue's life).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub u64);

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Bid.
    Buy,
    /// Ask.
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// +1 for buys, −1 for sells.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
}

/// How long an order may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till cancelled: the remainder rests.
    #[default]
    Gtc,
    /// Immediate or cancel: the remainder is cancelled.
    Ioc,
    /// Fill or kill: fills completely at once or not at all.
    Fok,
}

/// What happens when an order would trade with a resting order of the same account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    /// Cancel the resting order and keep matching (the default).
    #[default]
    CancelResting,
    /// Cancel the incoming order's remainder.
    CancelIncoming,
    /// Cancel both.
    CancelBoth,
}

/// A new limit order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOrder {
    /// Where.
    pub instrument: InstrumentId,
    /// Buy or sell.
    pub side: Side,
    /// Limit price in ticks.
    pub price: i64,
    /// Size in lots.
    pub qty: i64,
    /// Lifetime.
    #[serde(default)]
    pub tif: TimeInForce,
    /// Refuse the order if any part of it would trade on arrival.
    #[serde(default)]
    pub post_only: bool,
    /// Only ever shrink the position; the size is capped at the position.
    #[serde(default)]
    pub reduce_only: bool,
    /// Self-trade prevention mode.
    #[serde(default)]
    pub stp: SelfTradePrevention,
    /// The client's own reference, echoed in events.
    #[serde(default)]
    pub client_order_id: u64,
}

/// Which way the mark must move for a stop to trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopDirection {
    /// Trigger once the instrument's mark is at or above the trigger price.
    Rises,
    /// Trigger once the instrument's mark is at or below the trigger price.
    Falls,
}

/// A stop order: held off the book until the instrument's mark price (the price liquidation
/// risk is measured at) crosses `trigger_price`, then placed as an ordinary order. See
/// [`crate::stops`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopOrder {
    /// Where.
    pub instrument: InstrumentId,
    /// The side of the order placed on trigger.
    pub side: Side,
    /// Trigger when the mark rises to or falls to the trigger price.
    pub direction: StopDirection,
    /// Trigger price in ticks, compared with the instrument's mark.
    pub trigger_price: i64,
    /// `None`: a stop-market (becomes a market order). `Some(price)`: a stop-limit (becomes a
    /// good-till-cancelled limit order at this price in ticks).
    #[serde(default)]
    pub limit_price: Option<i64>,
    /// Size in lots.
    pub qty: i64,
    /// The order placed on trigger is reduce-only (checked against the position at trigger time).
    #[serde(default)]
    pub reduce_only: bool,
    /// The client's own reference, echoed in events.
    #[serde(default)]
    pub client_order_id: u64,
}

/// A request from a client, executed for one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientCommand {
    /// Place a limit order.
    Limit(LimitOrder),
    /// A market order: immediate-or-cancel, limited to the instrument's band around the mark.
    Market {
        /// Where.
        instrument: InstrumentId,
        /// Buy or sell.
        side: Side,
        /// Size in lots.
        qty: i64,
        /// Only ever shrink the position.
        #[serde(default)]
        reduce_only: bool,
        /// The client's own reference.
        #[serde(default)]
        client_order_id: u64,
    },
    /// Place a stop order (held until its trigger; see [`crate::stops`]).
    Stop(StopOrder),
    /// Cancel one resting order or resting stop (stops are numbered from the same sequence).
    Cancel {
        /// Where the order rests.
        instrument: InstrumentId,
        /// Which order.
        order_id: OrderId,
    },
    /// Change a resting order. A smaller size at the same price keeps time priority; a price change
    /// or a larger size loses it.
    Amend {
        /// Where the order rests.
        instrument: InstrumentId,
        /// Which order.
        order_id: OrderId,
        /// New limit price in ticks.
        price: i64,
        /// New remaining size in lots.
        qty: i64,
        /// The remaining size the sender last saw: when given, the amend is refused
        /// ([`crate::RejectReason::AmendStale`]) unless the order still rests with exactly
        /// these lots, so a fill between the sender's look and the amend cannot leave more
        /// resting than the trader asked for (the sender reads again and recomputes).
        #[serde(default)]
        expect_qty: Option<i64>,
    },
    /// Cancel every resting order and resting stop of the account, on one instrument or on all.
    MassCancel {
        /// `None` for all instruments.
        #[serde(default)]
        instrument: Option<InstrumentId>,
    },
    /// Ask custody to pay out collateral; the engine debits at once, records the withdrawal
    /// (the vault signs only what the ledger records) and emits a withdrawal event.
    Withdraw {
        /// Amount in micros.
        amount: i64,
        /// Destination: an x-only secp256k1 key (a P2TR output) for Bitcoin, an Ed25519 public
        /// key for the Ed25519 chain. Anything that is not a valid key on its chain is refused.
        destination: [u8; 32],
        /// Which of the vault's keys pays (JSON default: `bitcoin`).
        #[serde(default)]
        chain: PayoutChain,
    },
    /// Open a trading session (under a session id, signed by the trader's logon signature).
    OpenSession(SessionGrant),
    /// End a session: under the session's own id (`slot` must be its own), or under the
    /// account's id for any of its sessions (revocation by the trader).
    CloseSession {
        /// Which session.
        slot: u8,
        /// Also cancel the orders and stops this session placed (and only those), first: a
        /// gateway's cancel on disconnect, which leaves what the trader placed through its
        /// other sessions (another gateway, after a failover) resting.
        #[serde(default)]
        cancel_placed: bool,
    },
    /// Under a session's id only: the committee's own cancel on disconnect. Unless another
    /// transaction under the session is executed within `within_ms` of the session clock, the
    /// orders and stops the session placed are cancelled and the session is closed, so a gateway
    /// that dies outright (kill -9, power, a cut link) leaves nothing resting behind it. Every
    /// transaction under the session re-arms it; `within_ms` 0 disarms it; otherwise it lies in
    /// [`crate::session::SILENCE_MIN_MS`] ..= [`crate::session::SILENCE_MAX_MS`].
    SessionHeartbeat {
        /// How long the session may be silent, milliseconds of block time.
        within_ms: u32,
    },
}

/// The smallest withdrawal, micros (0.01 USD): smaller ones are refused (`invalid_amount`).
pub const WITHDRAWAL_MIN_MICROS: i64 = 10_000;

/// Which of the vault's keys pays a withdrawal.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PayoutChain {
    /// The taproot key: a BIP341 key-path spend to a P2TR output.
    #[default]
    Bitcoin,
    /// The Ed25519 key.
    Ed25519,
}

impl PayoutChain {
    /// Its one-byte code in the binary codec (the vault uses the same codes).
    pub fn code(self) -> u8 {
        match self {
            PayoutChain::Bitcoin => 1,
            PayoutChain::Ed25519 => 2,
        }
    }

    /// The chain of a code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(PayoutChain::Bitcoin),
            2 => Some(PayoutChain::Ed25519),
            _ => None,
        }
    }

    /// Its lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            PayoutChain::Bitcoin => "bitcoin",
            PayoutChain::Ed25519 => "ed25519",
        }
    }

    /// Whether `destination` is a key this chain can pay: an x-only point on secp256k1 (BIP340),
    /// or an Ed25519 point that is not of small order.
    pub fn valid_destination(self, destination: &[u8; 32]) -> bool {
        match self {
            PayoutChain::Bitcoin => secp256k1::XOnlyPublicKey::from_slice(destination).is_ok(),
            PayoutChain::Ed25519 => {
                ed25519_dalek::VerifyingKey::from_bytes(destination).is_ok_and(|key| !key.is_weak())
            }
        }
    }
}

impl ClientCommand {
    /// Every `type` tag a client command has in JSON.
    pub const TYPES: &'static [&'static str] = &[
        "limit",
        "market",
        "stop",
        "cancel",
        "amend",
        "mass_cancel",
        "withdraw",
    ];
}

/// An input only the committee produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SystemCommand {
    /// Create an account bound to a client's Ed25519 public key.
    OpenAccount {
        /// The new account.
        account: AccountId,
        /// Its signing key.
        public_key: [u8; 32],
    },
    /// Credit collateral that custody has received.
    Deposit {
        /// Whose.
        account: AccountId,
        /// Amount in micros.
        amount: i64,
    },
    /// A certified index price for an underlying.
    IndexPrice {
        /// Index into the underlying list.
        underlying: u16,
        /// Micros per unit of underlying.
        price_micros: i64,
    },
    /// One certified oracle round for an underlying: the members' signed observations, which
    /// count only with `2f + 1` distinct valid member signatures (see [`crate::oracle`]). Refused
    /// when no committee is configured.
    OracleRound {
        /// Index into the underlying list (the observations' feed).
        underlying: u16,
        /// Round number, above the underlying's last certified round.
        round: u64,
        /// At most [`crate::oracle::ORACLE_ROUND_OBSERVATIONS_MAX`] signed observations.
        observations: Vec<crate::oracle::SignedObservation>,
    },
    /// The sentinel's decision to quarantine a committee member, with the evidence every replica
    /// checks by the one rule (`bulwark_sentinel::Membership::check`). Refused when no sentinel
    /// committee is configured.
    Quarantine(Box<crate::sentinel::Decision>),
    /// The committee's move to the next epoch: its members are the current ones without the
    /// quarantined ones (`bulwark_sentinel::Membership::check_epoch`), and `key` is the digest of
    /// the reshared threshold key that every player compared with its own reshare before voting.
    /// Refused when no sentinel committee is configured.
    NewEpoch {
        /// The epoch that begins: the current one plus one.
        epoch: u64,
        /// Its members' keys, sorted.
        members: Vec<[u8; 32]>,
        /// Digest of the reshare's public output (the sharing and its players).
        key: [u8; 32],
    },
    /// A deposit on a chain, credited only with n − f current committee members' signatures
    /// over the same observation ([`crate::deposit::DepositCertificate::check`]), once per
    /// outpoint. Refused when no sentinel committee is configured.
    ChainDeposit(Box<crate::deposit::DepositCertificate>),
    /// A candidate joins the committee at the next epoch: a removed member re-admitted, or a
    /// newcomer taking a vacant seat on an operator quorum's approval, both on f+1 distinct
    /// admitted members' affirmations (`bulwark_sentinel::Membership::check_admit`). Refused
    /// when no sentinel committee is configured.
    Admit(Box<bulwark_sentinel::Admit>),
}

impl SystemCommand {
    /// Every `type` tag a system command has in JSON.
    pub const TYPES: &'static [&'static str] = &[
        "open_account",
        "deposit",
        "index_price",
        "oracle_round",
        "quarantine",
        "new_epoch",
        "chain_deposit",
        "admit",
    ];
}

/// One transaction in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// A client's request.
    Client {
        /// Acting account.
        account: AccountId,
        /// Strictly increasing per account; replays are refused. 0 means "not checked" and is
        /// accepted only from trusted local input (`bulwark engine run`).
        #[serde(default)]
        nonce: u64,
        /// The request.
        #[serde(flatten)]
        command: ClientCommand,
    },
    /// A committee input.
    System(SystemCommand),
}
