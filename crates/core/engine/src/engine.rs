//! The engine: state, configuration, and the batch loop.
//!
//! [`Engine::execute`] applies a batch of commands at a caller-supplied time, then runs the
//! end-of-batch work in a fixed order: oracle staleness, marks, stop triggers, funding, option
//! expiry, liquidation, insurance-fund unwinding. Client order handling lives in `orders.rs`, stops
//! in `stops.rs`, marks and funding in `mark.rs`, expiry in `settle.rs`, liquidation in
//! `liquidation.rs`; all are `impl Engine` blocks over the same state.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::account::Account;
use crate::book::Book;
use crate::command::{AccountId, Command, OrderId, SystemCommand};
use crate::event::{Event, RejectReason};
use crate::instrument::{default_listing, Instrument, InstrumentError, Underlying};
use crate::margin::{standing, MarketView, NoMark, Standing};
use crate::oracle::{OracleConfig, OracleState, PRICE_MICROS_MAX};
use crate::stops::Stop;

/// The account id under which the insurance fund trades. No client account may take it.
pub const INSURANCE_FUND: AccountId = AccountId(u64::MAX);

/// Venue-wide parameters. They are part of the state root: changing one changes the venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Underlyings with an index price.
    pub underlyings: Vec<Underlying>,
    /// The listing; `instruments[i].id.0 == i`.
    pub instruments: Vec<Instrument>,
    /// Liquidation orders are limited to mark ± this many basis points.
    pub liquidation_band_bps: u32,
    /// Each liquidation step closes this share of the original position (basis points).
    pub liquidation_step_bps: u32,
    /// Time constant of the mark's basis EMA, milliseconds.
    pub basis_ema_ms: u64,
    /// The perpetual mark stays within this many basis points of the index.
    pub basis_band_bps: u32,
    /// Option expiry settles at the time-weighted index over this window, milliseconds.
    pub twap_window_ms: u64,
    /// Opening balance of the insurance fund, micros.
    pub insurance_fund_initial: i128,
    /// Most resting orders one account may have on one instrument.
    pub orders_per_account_max: u32,
    /// Most resting (untriggered) stops one account may have, over all instruments.
    #[serde(default = "stops_per_account_max_default")]
    pub stops_per_account_max: u32,
    /// The oracle committee and its guards; no members (the default) means unsigned index
    /// prices (the development path). See [`crate::oracle`].
    #[serde(default)]
    pub oracle: OracleConfig,
    /// The committee whose trust the sentinel keeps, and its policy; no members (the default)
    /// means no sentinel: quarantines are refused. See [`crate::sentinel`].
    #[serde(default)]
    pub sentinel: crate::sentinel::SentinelConfig,
    /// The venue's epoch, Unix milliseconds: the engine's time counts from it. A session
    /// grant's logon time (Unix milliseconds, what the trader signed) is compared with the
    /// block's time through it ([`crate::session`]).
    #[serde(default)]
    pub venue_epoch_ms: u64,
}

fn stops_per_account_max_default() -> u32 {
    50
}

impl Default for EngineConfig {
    fn default() -> Self {
        let (underlyings, instruments) = default_listing();
        EngineConfig {
            underlyings,
            instruments,
            liquidation_band_bps: 300,
            liquidation_step_bps: 2_500,
            basis_ema_ms: 60_000,
            basis_band_bps: 50,
            twap_window_ms: 30 * 60_000,
            insurance_fund_initial: 0,
            orders_per_account_max: 200,
            stops_per_account_max: stops_per_account_max_default(),
            oracle: OracleConfig::default(),
            sentinel: crate::sentinel::SentinelConfig::default(),
            venue_epoch_ms: 0,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// An instrument is malformed.
    #[error(transparent)]
    Instrument(#[from] InstrumentError),
    /// Ids must equal positions, underlyings must exist, limits must be positive.
    #[error("engine config: {0}")]
    Invalid(&'static str),
    /// The sentinel's committee or policy is unusable.
    #[error("engine config: sentinel: {0}")]
    Sentinel(bulwark_sentinel::Refusal),
}

impl EngineConfig {
    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, inst) in self.instruments.iter().enumerate() {
            let checked = inst.clone().validated()?;
            if checked.notional_per_tick_lot != inst.notional_per_tick_lot {
                return Err(ConfigError::Invalid(
                    "notional_per_tick_lot does not match tick × lot",
                ));
            }
            if inst.id.0 as usize != i {
                return Err(ConfigError::Invalid(
                    "instrument ids must equal their positions",
                ));
            }
            if usize::from(inst.underlying) >= self.underlyings.len() {
                return Err(ConfigError::Invalid(
                    "instrument names an unknown underlying",
                ));
            }
        }
        if self.liquidation_band_bps == 0
            || self.liquidation_step_bps == 0
            || self.liquidation_step_bps > 10_000
            || self.basis_ema_ms == 0
            || self.twap_window_ms == 0
            || self.orders_per_account_max == 0
            || self.stops_per_account_max == 0
            || self.insurance_fund_initial < 0
        {
            return Err(ConfigError::Invalid(
                "bands, steps, windows and limits must be positive",
            ));
        }
        self.oracle.validate().map_err(ConfigError::Invalid)?;
        self.sentinel.membership().map_err(ConfigError::Sentinel)?;
        Ok(())
    }
}

/// Per-instrument market state besides the book.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Market {
    pub book: Book,
    /// Perpetuals: EMA of (book mid − index), ticks.
    pub basis_ema: i64,
    /// Perpetuals: Σ premium samples (ppm) since the last funding.
    pub premium_sum_ppm: i128,
    /// Perpetuals: number of samples in `premium_sum_ppm`.
    pub premium_samples: i64,
    /// Perpetuals: when funding is next exchanged.
    pub next_funding_ms: u64,
    /// Options: volatility used for the current mark, ppm.
    pub vol_ppm: u32,
    /// Expired (options) — no more orders.
    pub closed: bool,
}

/// Per-underlying index state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct IndexState {
    /// (time, price) samples within the TWAP window, oldest first.
    pub samples: VecDeque<(u64, i64)>,
}

/// A withdrawal the engine debited: the authorization the vault's members sign against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    /// Whose.
    pub account: AccountId,
    /// Which of the vault's keys pays.
    pub chain: crate::command::PayoutChain,
    /// Where to (a valid key on `chain`).
    pub destination: [u8; 32],
    /// Micros, positive.
    pub amount: u64,
    /// Venue time it was debited (the vault's coordinator rotation counts from here).
    pub requested_ms: u64,
    /// The consensus key of the member that proposed the block debiting it: the vault's first
    /// signing coordinator. `None` when the batch came from no block (a single engine, tests).
    #[serde(default)]
    pub proposer: Option<[u8; 32]>,
}

/// Everything the state root covers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub time_ms: u64,
    pub next_order_id: u64,
    pub next_withdrawal_id: u64,
    pub accounts: BTreeMap<AccountId, Account>,
    pub insurance: Account,
    pub fee_pool: i128,
    pub net_deposits: i128,
    pub markets: Vec<Market>,
    pub marks: Vec<Option<i64>>,
    pub index: Vec<Option<i64>>,
    pub index_states: Vec<IndexState>,
    /// Oracle rounds, guards and fault evidence per underlying.
    pub oracle: OracleState,
    /// Resting stops by id (= placement sequence), the order in which they are evaluated.
    pub stops: BTreeMap<OrderId, Stop>,
    /// The committee's trust (the sentinel), when configured.
    pub membership: Option<bulwark_sentinel::Membership>,
    /// Chain outpoints credited by [`SystemCommand::ChainDeposit`]: each is credited once.
    pub credited_deposits: std::collections::BTreeSet<crate::deposit::Outpoint>,
    /// Every withdrawal the engine debited, by id: what the vault may sign (and nothing else).
    pub withdrawals: BTreeMap<u64, Withdrawal>,
    /// Accounts whose cash or positions changed since the last liquidation check (liquidation's
    /// own trades land here and are checked at the end of the next batch).
    pub touched: Vec<AccountId>,
    /// Armed sessions by when they fall silent (derived from the accounts' sessions, which the
    /// root covers; rebuilt on restore).
    #[serde(skip)]
    pub silences: crate::session::Silences,
    /// The session clock: block time, each batch moving it by at most
    /// [`crate::session::SESSION_CLOCK_STEP_MAX_MS`]; silence bounds are counted on it.
    pub session_clock_ms: u64,
    /// Whether any mark moved, or funding or settlement ran, in the current batch (transient).
    #[serde(skip)]
    pub marks_moved: bool,
}

impl State {
    /// Mutable access to an account or the insurance fund ([`INSURANCE_FUND`]).
    pub(crate) fn holder_mut(&mut self, id: AccountId) -> &mut Account {
        if id == INSURANCE_FUND {
            return &mut self.insurance;
        }
        self.accounts
            .get_mut(&id)
            .expect("a holder named by the engine must exist")
    }

    /// Every account, then the insurance fund.
    pub(crate) fn holders(&self) -> impl Iterator<Item = &Account> {
        self.accounts
            .values()
            .chain(std::iter::once(&self.insurance))
    }

    /// Ids of everyone holding a position in `instrument`, accounts in id order, then the fund.
    pub(crate) fn holders_of(&self, instrument: crate::command::InstrumentId) -> Vec<AccountId> {
        self.accounts
            .iter()
            .filter(|(_, a)| a.positions.contains_key(&instrument))
            .map(|(k, _)| *k)
            .chain(
                self.insurance
                    .positions
                    .contains_key(&instrument)
                    .then_some(INSURANCE_FUND),
            )
            .collect()
    }

    /// An account or the insurance fund.
    pub(crate) fn holder(&self, id: AccountId) -> Option<&Account> {
        if id == INSURANCE_FUND {
            return Some(&self.insurance);
        }
        self.accounts.get(&id)
    }
}

/// The derivatives engine. See the crate documentation.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) state: State,
    /// Reused buffer for what matching did (not state).
    pub(crate) scratch: Vec<crate::book::BookEvent>,
    /// The proposer of the block being executed (not state: set only inside
    /// [`Engine::execute_block`]).
    pub(crate) proposer: Option<[u8; 32]>,
    /// The tag of the trading session whose transaction (or stop) is being executed, 0 for
    /// none (not state: set only around it).
    pub(crate) acting_session: u64,
}

/// Totals for the conservation check, micros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Σ account cash (the insurance fund included).
    pub cash: i128,
    /// Σ perpetual entry cost (its negative is Σ unrealized profit at any common mark).
    pub perp_cost: i128,
    /// Fees collected.
    pub fee_pool: i128,
    /// Insurance fund cash (also inside `cash`).
    pub insurance_fund: i128,
    /// Deposits less withdrawals, plus the insurance fund's opening balance.
    pub net_deposits: i128,
}

impl Totals {
    /// Money is conserved: cash − perpetual cost + fees equals what came in.
    pub fn conserved(&self) -> bool {
        self.cash - self.perp_cost + self.fee_pool == self.net_deposits
    }
}

impl Engine {
    /// A fresh venue. Panics only if `config` fails [`EngineConfig::validate`]; call that first
    /// for configuration read from outside.
    pub fn new(config: EngineConfig) -> Self {
        config
            .validate()
            .expect("engine config must be validated before use");
        let n = config.instruments.len();
        let mut markets = vec![Market::default(); n];
        for (m, inst) in markets.iter_mut().zip(&config.instruments) {
            m.book = Book::new();
            match inst.kind {
                crate::instrument::InstrumentKind::Perpetual {
                    funding_interval_ms,
                    ..
                } => m.next_funding_ms = funding_interval_ms,
                crate::instrument::InstrumentKind::Option { vol_ppm, .. } => m.vol_ppm = vol_ppm,
            }
        }
        let state = State {
            time_ms: 0,
            next_order_id: 1,
            next_withdrawal_id: 1,
            accounts: BTreeMap::new(),
            insurance: Account {
                cash: config.insurance_fund_initial,
                ..Account::default()
            },
            fee_pool: 0,
            net_deposits: config.insurance_fund_initial,
            markets,
            marks: vec![None; n],
            index: vec![None; config.underlyings.len()],
            index_states: vec![IndexState::default(); config.underlyings.len()],
            oracle: OracleState::new(config.underlyings.len(), config.oracle.members.len()),
            stops: BTreeMap::new(),
            credited_deposits: std::collections::BTreeSet::new(),
            withdrawals: BTreeMap::new(),
            membership: config
                .sentinel
                .membership()
                .expect("the sentinel config was validated above"),
            touched: Vec::new(),
            silences: Default::default(),
            session_clock_ms: 0,
            marks_moved: false,
        };
        Engine {
            config,
            state,
            scratch: Vec::new(),
            proposer: None,
            acting_session: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The engine's time (the latest batch time), milliseconds.
    pub fn time_ms(&self) -> u64 {
        self.state.time_ms
    }

    /// [`Engine::execute`] for a block that `proposer` (its consensus key) proposed: the
    /// withdrawals it debits name the proposer, the vault's first signing coordinator.
    pub fn execute_block(
        &mut self,
        time_ms: u64,
        proposer: Option<[u8; 32]>,
        batch: &[Command],
        out: &mut Vec<Event>,
    ) {
        self.proposer = proposer;
        self.execute(time_ms, batch, out);
        self.proposer = None;
    }

    /// [`Engine::execute_block`] that also records, in `marks`, the length of `out` after each
    /// command of `batch` (so `out[marks[i - 1]..marks[i]]` is what command `i` did; what the end
    /// of the batch did follows the last mark).
    pub fn execute_block_marked(
        &mut self,
        time_ms: u64,
        proposer: Option<[u8; 32]>,
        batch: &[Command],
        out: &mut Vec<Event>,
        marks: &mut Vec<usize>,
    ) {
        self.proposer = proposer;
        self.execute_inner(time_ms, batch, out, Some(marks));
        self.proposer = None;
    }

    /// Executes one batch at `time_ms` (a time earlier than the engine's is treated as the
    /// engine's: time never runs backwards), appending events to `out`.
    pub fn execute(&mut self, time_ms: u64, batch: &[Command], out: &mut Vec<Event>) {
        self.execute_inner(time_ms, batch, out, None);
    }

    fn execute_inner(
        &mut self,
        time_ms: u64,
        batch: &[Command],
        out: &mut Vec<Event>,
        mut marks: Option<&mut Vec<usize>>,
    ) {
        let time_ms = time_ms.max(self.state.time_ms);
        let elapsed_ms = time_ms - self.state.time_ms;
        self.state.time_ms = time_ms;
        self.state.session_clock_ms = self
            .state
            .session_clock_ms
            .saturating_add(elapsed_ms.min(crate::session::SESSION_CLOCK_STEP_MAX_MS));
        for cmd in batch {
            match cmd {
                Command::Client {
                    account,
                    nonce,
                    command,
                } => self.client(*account, *nonce, command, out),
                Command::System(sys) => self.system(sys, out),
            }
            if let Some(marks) = marks.as_deref_mut() {
                marks.push(out.len());
            }
        }
        self.end_of_batch(elapsed_ms, out);
    }

    fn end_of_batch(&mut self, elapsed_ms: u64, out: &mut Vec<Event>) {
        self.lapse_joins(out);
        self.silence_sessions(out);
        self.check_oracle_staleness(out);
        self.update_marks(elapsed_ms);
        self.trigger_stops(out);
        self.exchange_funding(out);
        self.expire_options(out);
        self.liquidate(out);
        self.unwind_insurance(out);
        self.state.marks_moved = false;
        debug_assert!(self.totals().conserved(), "money must be conserved");
    }

    fn system(&mut self, cmd: &SystemCommand, out: &mut Vec<Event>) {
        let reject = |account, reason| Event::Rejected {
            account,
            client_order_id: 0,
            reason,
        };
        match cmd {
            SystemCommand::OpenAccount {
                account,
                public_key,
            } => {
                if self.state.accounts.contains_key(account) || *account == INSURANCE_FUND {
                    out.push(reject(Some(*account), RejectReason::AccountExists));
                    return;
                }
                if account.is_reserved() {
                    out.push(reject(Some(*account), RejectReason::ReservedAccountId));
                    return;
                }
                self.state.accounts.insert(
                    *account,
                    Account {
                        public_key: *public_key,
                        ..Account::default()
                    },
                );
                out.push(Event::AccountOpened { account: *account });
            }
            SystemCommand::Deposit { account, amount } => {
                if *amount <= 0 {
                    out.push(reject(Some(*account), RejectReason::InvalidAmount));
                    return;
                }
                let Some(acct) = self.state.accounts.get_mut(account) else {
                    out.push(reject(Some(*account), RejectReason::UnknownAccount));
                    return;
                };
                acct.cash += i128::from(*amount);
                self.state.net_deposits += i128::from(*amount);
                out.push(Event::Deposited {
                    account: *account,
                    amount: i128::from(*amount),
                    balance: acct.cash,
                });
            }
            SystemCommand::IndexPrice {
                underlying,
                price_micros,
            } => {
                let u = usize::from(*underlying);
                if self.config.oracle.enabled() {
                    // With a committee, only quorum-certified rounds move the index (invariant 4).
                    out.push(reject(None, RejectReason::UncertifiedIndexPrice));
                    return;
                }
                if u >= self.config.underlyings.len() {
                    out.push(reject(None, RejectReason::UnknownUnderlying));
                    return;
                }
                // Prices are bounded so that notional arithmetic cannot overflow.
                if *price_micros <= 0 || *price_micros > PRICE_MICROS_MAX {
                    out.push(reject(None, RejectReason::InvalidIndexPrice));
                    return;
                }
                self.set_index(u, *price_micros);
                out.push(Event::IndexUpdated {
                    underlying: *underlying,
                    price_micros: *price_micros,
                });
            }
            SystemCommand::OracleRound {
                underlying,
                round,
                observations,
            } => {
                if let Err(reason) = self.oracle_round(*underlying, *round, observations, out) {
                    out.push(reject(None, reason));
                }
            }
            SystemCommand::Quarantine(decision) => {
                let Some(membership) = self.state.membership.as_mut() else {
                    out.push(reject(None, RejectReason::SentinelNotConfigured));
                    return;
                };
                match membership.apply(decision, self.state.time_ms) {
                    Ok(()) => out.push(Event::Quarantined {
                        member: decision.member,
                        epoch: decision.epoch,
                    }),
                    Err(_) => out.push(reject(None, RejectReason::QuarantineRefused)),
                }
            }
            SystemCommand::NewEpoch {
                epoch,
                members,
                key,
            } => {
                let seats = self.oracle_roster();
                let Some(membership) = self.state.membership.as_mut() else {
                    out.push(reject(None, RejectReason::SentinelNotConfigured));
                    return;
                };
                let key = bulwark_sentinel::EpochKey { digest: *key };
                match membership.begin_epoch(*epoch, members, key) {
                    Ok(change) => {
                        self.oracle_seats_changed(&seats);
                        out.push(Event::EpochBegan {
                            epoch: change.epoch,
                            members: u16::try_from(change.members.len()).unwrap_or(u16::MAX),
                            removed: change.removed,
                            joined: change.joined,
                        })
                    }
                    Err(_) => out.push(reject(None, RejectReason::EpochRefused)),
                }
            }
            SystemCommand::ChainDeposit(certificate) => {
                if let Err(reason) = self.chain_deposit(certificate, out) {
                    out.push(reject(None, reason));
                }
            }
            SystemCommand::Admit(admit) => {
                let Some(membership) = self.state.membership.as_mut() else {
                    out.push(reject(None, RejectReason::SentinelNotConfigured));
                    return;
                };
                match membership.admit(admit, self.state.time_ms) {
                    Ok(()) => out.push(Event::Joining {
                        member: admit.candidate,
                        epoch: admit.epoch,
                        replaces: match &admit.seat {
                            bulwark_sentinel::Seat::Readmit => None,
                            bulwark_sentinel::Seat::Replace { replaces, .. } => Some(*replaces),
                        },
                    }),
                    Err(_) => out.push(reject(None, RejectReason::AdmitRefused)),
                }
            }
        }
    }

    /// Joins whose epoch change did not come in time lapse (the sentinel's rule, at the
    /// engine's time, so every replica agrees).
    fn lapse_joins(&mut self, out: &mut Vec<Event>) {
        if let Some(membership) = self.state.membership.as_mut() {
            for member in membership.lapse_joins(self.state.time_ms) {
                out.push(Event::JoinLapsed { member });
            }
        }
    }

    fn chain_deposit(
        &mut self,
        certificate: &crate::deposit::DepositCertificate,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let membership = self
            .state
            .membership
            .as_ref()
            .ok_or(RejectReason::SentinelNotConfigured)?;
        certificate
            .check_in(membership)
            .map_err(|_| RejectReason::DepositRefused)?;
        let deposit = certificate.deposit;
        if self.state.credited_deposits.contains(&deposit.outpoint()) {
            return Err(RejectReason::DepositAlreadyCredited);
        }
        if deposit.account == INSURANCE_FUND || !self.state.accounts.contains_key(&deposit.account)
        {
            return Err(RejectReason::UnknownAccount);
        }
        let amount = i128::from(deposit.amount);
        self.state.holder_mut(deposit.account).cash += amount;
        self.state.net_deposits += amount;
        self.state.credited_deposits.insert(deposit.outpoint());
        out.push(Event::ChainDepositCredited {
            account: deposit.account,
            amount: deposit.amount,
            chain: deposit.chain,
            txid: deposit.txid,
            output: deposit.output,
        });
        Ok(())
    }

    /// Whether the chain deposit at `outpoint` was credited.
    pub fn deposit_credited(&self, outpoint: &crate::deposit::Outpoint) -> bool {
        self.state.credited_deposits.contains(outpoint)
    }

    /// How many chain deposits were credited.
    pub fn deposits_credited(&self) -> usize {
        self.state.credited_deposits.len()
    }

    /// How many withdrawals the ledger recorded.
    pub fn withdrawals_recorded(&self) -> usize {
        self.state.withdrawals.len()
    }

    /// The withdrawal the ledger recorded under `id`, if any: the only thing the vault signs.
    pub fn withdrawal(&self, id: u64) -> Option<&Withdrawal> {
        self.state.withdrawals.get(&id)
    }

    /// Every recorded withdrawal with an id at or above `from`, in id order.
    pub fn withdrawals_from(&self, from: u64) -> impl Iterator<Item = (u64, &Withdrawal)> {
        self.state.withdrawals.range(from..).map(|(id, w)| (*id, w))
    }

    /// The committee's trust as the sentinel keeps it, when configured.
    pub fn membership(&self) -> Option<&bulwark_sentinel::Membership> {
        self.state.membership.as_ref()
    }

    /// The market view margin computations read.
    pub(crate) fn view(&self) -> MarketView<'_> {
        MarketView {
            instruments: &self.config.instruments,
            marks: &self.state.marks,
            index: &self.state.index,
        }
    }

    /// An account's standing at mark (resting orders not counted).
    pub fn standing(&self, account: AccountId) -> Option<Result<Standing, NoMark>> {
        let acct = self.state.accounts.get(&account)?;
        Some(standing(acct, self.view(), false, None))
    }

    /// An account, if it exists.
    pub fn account(&self, account: AccountId) -> Option<&Account> {
        self.state.accounts.get(&account)
    }

    /// All accounts in id order.
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        self.state.accounts.iter()
    }

    /// The insurance fund, held as an account (it can hold positions taken over in liquidation).
    pub fn insurance_fund(&self) -> &Account {
        &self.state.insurance
    }

    /// An instrument's book.
    pub fn book(&self, instrument: crate::command::InstrumentId) -> Option<&Book> {
        self.state
            .markets
            .get(instrument.0 as usize)
            .map(|m| &m.book)
    }

    /// An instrument's mark price in ticks, once known.
    pub fn mark(&self, instrument: crate::command::InstrumentId) -> Option<i64> {
        self.state
            .marks
            .get(instrument.0 as usize)
            .copied()
            .flatten()
    }

    /// The last certified oracle round of an underlying (0 before the first); `None` for an
    /// unknown underlying.
    pub fn oracle_last_round(&self, underlying: u16) -> Option<u64> {
        self.state
            .oracle
            .feeds
            .get(usize::from(underlying))
            .map(|feed| feed.last_round)
    }

    /// An underlying's index price in micros, once known.
    pub fn index_price(&self, underlying: u16) -> Option<i64> {
        self.state
            .index
            .get(usize::from(underlying))
            .copied()
            .flatten()
    }

    /// Open interest (total long lots) per instrument.
    pub fn open_interest(&self) -> Vec<i64> {
        let mut oi = vec![0i64; self.config.instruments.len()];
        for acct in self.state.holders() {
            for (id, p) in &acct.positions {
                if p.qty > 0 {
                    oi[id.0 as usize] += p.qty;
                }
            }
        }
        oi
    }

    /// Money totals for the conservation invariant.
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            cash: 0,
            perp_cost: 0,
            fee_pool: self.state.fee_pool,
            insurance_fund: self.state.insurance.cash,
            net_deposits: self.state.net_deposits,
        };
        for acct in self.state.holders() {
            t.cash += acct.cash;
            for (id, p) in &acct.positions {
                if self.config.instruments[id.0 as usize].is_perpetual() {
                    t.perp_cost += p.cost;
                }
            }
        }
        t
    }
}
