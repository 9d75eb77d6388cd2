//! What the engine reports. A rejected command yields one [`Event::Rejected`] with a typed
//! [`RejectReason`] and changes no state (beyond consuming a client's nonce, so that a signed
//! request can never be replayed later).

use serde::{Deserialize, Serialize};

use crate::command::{AccountId, InstrumentId, OrderId, Side, StopDirection};
use crate::oracle::{FaultEvidence, GuardKind};

/// Why a command was refused. A rejected command changes no state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectReason {
    /// The account does not exist.
    UnknownAccount,
    /// The account already exists.
    AccountExists,
    /// The instrument does not exist.
    UnknownInstrument,
    /// The underlying does not exist.
    UnknownUnderlying,
    /// The order does not exist or belongs to another account.
    UnknownOrder,
    /// The nonce is not above the account's last accepted nonce (a replay).
    StaleNonce,
    /// Size is zero, negative, above the instrument's maximum, or the price is not positive.
    InvalidSize,
    /// Price is zero or negative.
    InvalidPrice,
    /// Amount is zero or negative.
    InvalidAmount,
    /// The limit price is outside the band around the mark price.
    OutsideBand,
    /// No mark price exists yet for the instrument (no index price received).
    NoMarkPrice,
    /// A post-only order would have traded on arrival.
    PostOnlyWouldTrade,
    /// A fill-or-kill order could not be filled completely.
    FillOrKillUnfilled,
    /// A reduce-only order would not reduce the position.
    ReduceOnlyWouldIncrease,
    /// The order would leave the account below initial margin.
    InsufficientMargin,
    /// The withdrawal exceeds the withdrawable balance (unrealized profit never counts).
    InsufficientFunds,
    /// The option has expired or the instrument is halted.
    InstrumentClosed,
    /// Arithmetic on the request would overflow.
    Overflow,
    /// The account is being liquidated; only cancels are accepted.
    AccountInLiquidation,
    /// The index price is not positive or moved by an impossible amount.
    InvalidIndexPrice,
    /// The account already has the most resting orders allowed on this instrument.
    TooManyOrders,
    /// An unsigned index price while an oracle committee is configured.
    UncertifiedIndexPrice,
    /// An oracle round while no committee is configured.
    OracleNotConfigured,
    /// A quarantine while no sentinel committee is configured.
    SentinelNotConfigured,
    /// A quarantine whose evidence or target the sentinel's rule refuses (fewer than f+1
    /// accusers, a stale or forged accusation, a proof against someone else, the limit reached).
    QuarantineRefused,
    /// An epoch change for another epoch or another committee than the trust state leaves.
    EpochRefused,
    /// An admission the sentinel's rule refuses (fewer than f+1 affirmers, no operator quorum,
    /// no vacant seat, the candidate's standing, the re-admission hold).
    AdmitRefused,
    /// A chain deposit whose certificate the one rule refuses (fewer than n − f members, a
    /// stranger, a forged signature, a non-positive amount).
    DepositRefused,
    /// A chain deposit at an outpoint that was credited already.
    DepositAlreadyCredited,
    /// An oracle round with more observations than allowed.
    OracleTooManyObservations,
    /// An oracle round not above the last certified one, or an observation for another feed or
    /// round.
    OracleWrongRound,
    /// An observation signed by a key that is not a current committee member.
    OracleNotMember,
    /// Two observations by the same member in one round.
    OracleDuplicateSigner,
    /// An observation's price, confidence, source count or time is out of range.
    OracleValueOutOfRange,
    /// Fewer than 2f+1 distinct members signed.
    OracleQuorumNotMet,
    /// An observation's signature does not verify.
    OracleBadSignature,
    /// An oracle guard is open on the instrument's underlying: only cancels, size reductions and
    /// reduce-only orders are accepted, and withdrawals by accounts with a position there wait.
    OracleGuardOpen,
    /// The account already has the most resting stops allowed
    /// ([`crate::EngineConfig::stops_per_account_max`]).
    TooManyStops,
    /// A withdrawal's destination is not a key its chain can pay.
    InvalidDestination,
    /// A session grant that is stale, not newer than the account's last logon, with a lifetime
    /// out of bounds or malformed CompIDs.
    SessionRefused,
    /// The session's slot is taken, or the account has the most sessions allowed.
    TooManySessions,
    /// No open session at that slot (never opened, closed or expired).
    NoSession,
    /// A session may trade and cancel, not withdraw or open sessions; an account opens a
    /// session only under the session's id.
    OutsideSessionScope,
    /// An account id reserved for sessions.
    ReservedAccountId,
    /// An amend whose expected remaining size is not the order's (it filled meanwhile).
    AmendStale,
    /// A session heartbeat outside a session, or with a silence bound out of range.
    BadHeartbeat,
}

/// Why an order left the book without filling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The owner asked.
    Requested,
    /// Mass cancel.
    MassCancel,
    /// Unfilled remainder of an immediate-or-cancel or market order.
    ImmediateRemainder,
    /// Self-trade prevention.
    SelfTrade,
    /// Cancelled by liquidation of the owner's account.
    Liquidation,
    /// The instrument expired.
    Expiry,
    /// A reduce-only order no longer reduces the position.
    ReduceOnly,
    /// The remainder would have traded outside the price band.
    OutsideBand,
}

/// Who took over a position that the book could not absorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiquidationVia {
    /// Immediate-or-cancel orders on the book within the liquidation band.
    Book,
    /// The insurance fund took the position over at the bankruptcy price.
    InsuranceFund,
    /// Auto-deleveraging: opposite positions ranked by profit × leverage closed at the bankruptcy
    /// price.
    AutoDeleverage,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An account was opened.
    AccountOpened {
        /// The account.
        account: AccountId,
    },
    /// Collateral credited.
    Deposited {
        /// Whose.
        account: AccountId,
        /// Micros.
        amount: i128,
        /// Cash balance after.
        balance: i128,
    },
    /// A trading session was opened for an account (see [`crate::session`]).
    SessionOpened {
        /// Whose.
        account: AccountId,
        /// Its slot: it acts under `account.session(slot)`.
        slot: u8,
        /// When it ends.
        expires_ms: u64,
    },
    /// A session ended: closed by the gateway or the trader, or found expired.
    SessionClosed {
        /// Whose.
        account: AccountId,
        /// Its slot.
        slot: u8,
        /// It had expired.
        expired: bool,
    },
    /// A withdrawal was debited and awaits custody's signature.
    WithdrawalRequested {
        /// Sequence number of the withdrawal (custody signs each once).
        withdrawal_id: u64,
        /// Whose.
        account: AccountId,
        /// Micros.
        amount: i128,
        /// Where to.
        destination: [u8; 32],
        /// Which of the vault's keys pays.
        chain: crate::command::PayoutChain,
    },
    /// A command was refused.
    Rejected {
        /// Whose, when known.
        account: Option<AccountId>,
        /// The client's reference, when the command had one.
        client_order_id: u64,
        /// Why.
        reason: RejectReason,
    },
    /// An order was accepted (it may fill at once, rest, or both).
    Accepted {
        /// The engine's id for it.
        order_id: OrderId,
        /// Whose.
        account: AccountId,
        /// Where.
        instrument: InstrumentId,
        /// The client's reference.
        client_order_id: u64,
        /// Side.
        side: Side,
        /// Limit price in ticks.
        price: i64,
        /// Size in lots (after any reduce-only cap).
        qty: i64,
    },
    /// A trade.
    Fill {
        /// Where.
        instrument: InstrumentId,
        /// The resting order.
        maker_order: OrderId,
        /// The incoming order.
        taker_order: OrderId,
        /// The resting order's owner.
        maker: AccountId,
        /// The incoming order's owner.
        taker: AccountId,
        /// The incoming order's side.
        taker_side: Side,
        /// Price in ticks (the resting order's).
        price: i64,
        /// Lots.
        qty: i64,
        /// Fee the maker paid, micros.
        maker_fee: i128,
        /// Fee the taker paid, micros.
        taker_fee: i128,
    },
    /// An order left the book or its remainder was dropped.
    Cancelled {
        /// Which.
        order_id: OrderId,
        /// Whose.
        account: AccountId,
        /// Where.
        instrument: InstrumentId,
        /// Lots that did not fill.
        remaining: i64,
        /// Why.
        reason: CancelReason,
    },
    /// A resting order was changed.
    Amended {
        /// Which.
        order_id: OrderId,
        /// New price in ticks.
        price: i64,
        /// New remaining lots.
        qty: i64,
        /// Whether it kept its place in the queue.
        kept_priority: bool,
    },
    /// A new index price was applied.
    IndexUpdated {
        /// Which underlying.
        underlying: u16,
        /// Micros per unit.
        price_micros: i64,
    },
    /// A stop order was accepted and rests until its trigger.
    StopPlaced {
        /// The engine's id for it; the order placed on trigger keeps it.
        order_id: OrderId,
        /// Whose.
        account: AccountId,
        /// Where.
        instrument: InstrumentId,
        /// The client's reference.
        client_order_id: u64,
        /// Side of the order placed on trigger.
        side: Side,
        /// Which way the mark must cross.
        direction: StopDirection,
        /// Trigger price in ticks (against the mark).
        trigger_price: i64,
        /// `None` for a stop-market; the limit in ticks for a stop-limit.
        limit_price: Option<i64>,
        /// Size in lots.
        qty: i64,
        /// Whether the order placed on trigger is reduce-only.
        reduce_only: bool,
    },
    /// The mark crossed a stop's trigger while an oracle guard was open on its underlying: the
    /// stop keeps resting and is evaluated again once every guard has closed.
    StopHeld {
        /// Which stop.
        order_id: OrderId,
        /// Where.
        instrument: InstrumentId,
        /// The first open guard (in [`GuardKind`] order).
        guard: GuardKind,
        /// The mark that crossed, ticks.
        mark: i64,
    },
    /// A stop's trigger was crossed; the order it becomes follows ([`Event::Accepted`] and what
    /// matching did, or [`Event::StopRejected`]).
    StopTriggered {
        /// Which stop (and the id of the order it becomes).
        order_id: OrderId,
        /// Whose.
        account: AccountId,
        /// Where.
        instrument: InstrumentId,
        /// The mark that crossed, ticks.
        mark: i64,
        /// The trigger price, ticks.
        trigger_price: i64,
    },
    /// A triggered stop's order was refused by the ordinary order checks (margin, reduce-only,
    /// band, ...). The stop is gone.
    StopRejected {
        /// Which stop.
        order_id: OrderId,
        /// Whose.
        account: AccountId,
        /// Where.
        instrument: InstrumentId,
        /// The client's reference.
        client_order_id: u64,
        /// Why the order was refused.
        reason: RejectReason,
    },
    /// A resting stop was removed before its trigger.
    StopCancelled {
        /// Which stop.
        order_id: OrderId,
        /// Whose.
        account: AccountId,
        /// Where.
        instrument: InstrumentId,
        /// Why (requested, mass cancel, liquidation, expiry).
        reason: CancelReason,
    },
    /// A perpetual's scheduled funding was skipped because an oracle guard was open on its
    /// underlying (see [`crate::mark`]): nothing is exchanged for the interval.
    FundingPaused {
        /// Which perpetual.
        instrument: InstrumentId,
        /// The first open guard (in [`GuardKind`] order).
        guard: GuardKind,
        /// The scheduled funding time that was skipped, engine milliseconds.
        funding_ms: u64,
    },
    /// Funding was exchanged on a perpetual.
    Funding {
        /// Which perpetual.
        instrument: InstrumentId,
        /// Rate for the interval in parts per million; positive means longs pay shorts.
        rate_ppm: i64,
        /// Total paid by the paying side, micros.
        paid: i128,
    },
    /// Part of a liquidation.
    Liquidation {
        /// The account being liquidated.
        account: AccountId,
        /// Where.
        instrument: InstrumentId,
        /// Lots closed by this step (signed: negative reduced a long).
        qty: i64,
        /// Price in ticks.
        price: i64,
        /// How.
        via: LiquidationVia,
        /// Why: the account's equity at the certified mark, micros.
        equity: i128,
        /// Why: its maintenance requirement at that mark, micros.
        maintenance: i128,
    },
    /// An auto-deleveraged counterparty's position was reduced.
    Deleveraged {
        /// The counterparty.
        account: AccountId,
        /// Where.
        instrument: InstrumentId,
        /// Lots closed (signed change of its position).
        qty: i64,
        /// Price in ticks.
        price: i64,
    },
    /// An oracle round was certified (followed by [`Event::IndexUpdated`]).
    OracleCertified {
        /// Which underlying.
        underlying: u16,
        /// The round.
        round: u64,
        /// The median of the observations, micros.
        aggregate_micros: i64,
        /// Its confidence half-width, micros.
        confidence_micros: i64,
        /// Distinct member signatures counted.
        signers: u32,
        /// The index applied after the per-round clamp, micros.
        index_micros: i64,
    },
    /// An oracle guard opened: liquidations and risk-increasing orders on the underlying pause.
    OracleGuardOpened {
        /// Which underlying.
        underlying: u16,
        /// Which guard.
        guard: GuardKind,
        /// The value that tripped it (units per [`GuardKind`]).
        observed: i64,
        /// The limit.
        limit: i64,
    },
    /// An oracle guard closed by rule after enough healthy rounds.
    OracleGuardClosed {
        /// Which underlying.
        underlying: u16,
        /// Which guard.
        guard: GuardKind,
        /// When it had opened, engine milliseconds.
        opened_ms: u64,
    },
    /// The sentinel quarantined a committee member: it leaves at the next epoch.
    Quarantined {
        /// The member's key.
        member: [u8; 32],
        /// The epoch of the decision.
        epoch: u64,
    },
    /// A chain deposit was credited to an account on n − f members' observation.
    ChainDepositCredited {
        /// Whose.
        account: AccountId,
        /// Micros.
        amount: i64,
        /// Which chain.
        chain: u8,
        /// The transaction.
        txid: [u8; 32],
        /// Its output.
        output: u32,
    },
    /// A new epoch began: the quarantined members are removed, the rest carry on with the
    /// reshared key.
    EpochBegan {
        /// The epoch that began.
        epoch: u64,
        /// Its members.
        members: u16,
        /// Who left the committee.
        removed: Vec<[u8; 32]>,
        /// Who joined it.
        joined: Vec<[u8; 32]>,
    },
    /// A candidate was admitted: it joins the committee at the next epoch.
    Joining {
        /// Its key.
        member: [u8; 32],
        /// The epoch of the decision.
        epoch: u64,
        /// For a replacement, whose seat it takes.
        replaces: Option<[u8; 32]>,
    },
    /// A join lapsed: the epoch change did not come within the policy's `join_lapse_ms`.
    JoinLapsed {
        /// The candidate's key.
        member: [u8; 32],
    },
    /// A member's observations deviated from the aggregate for too many consecutive rounds.
    OracleFault {
        /// The evidence (also kept in the engine state for the sentinel).
        evidence: FaultEvidence,
    },
    /// An option expired and positions were cash-settled at the index TWAP.
    Settled {
        /// Which option.
        instrument: InstrumentId,
        /// Settlement index price, micros (time-weighted average).
        settlement_price_micros: i64,
        /// Total intrinsic value paid by shorts to longs, micros.
        paid: i128,
    },
    /// A session armed with [`crate::ClientCommand::SessionHeartbeat`] was silent past its
    /// bound: the account's resting orders and stops are cancelled (the events follow) and the
    /// session is closed.
    SessionSilent {
        /// Whose.
        account: AccountId,
        /// Its slot.
        slot: u8,
        /// The bound it was armed with, milliseconds.
        within_ms: u32,
    },
}
