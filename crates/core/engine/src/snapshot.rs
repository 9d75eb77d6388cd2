//! Snapshots and the state root.
//!
//! A snapshot is `MAGIC ‖ version ‖ postcard(config, state)`: the configuration and every piece of
//! replicated state in a fixed order (maps are ordered; the books' id indexes are rebuilt, not
//! stored). The state root is BLAKE3 over [`STATE_NAMESPACE`] followed by the snapshot, so two
//! engines have the same root exactly when their snapshots are byte-identical, and a restored
//! engine has the root it was saved with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::command::{AccountId, InstrumentId, Side};
use crate::engine::{Engine, EngineConfig, State};

/// Domain tag of the state root. Changing it is a breaking change.
pub const STATE_NAMESPACE: &[u8] = b"bulwark/engine/state/v1";
const MAGIC: &[u8; 6] = b"BWSNAP";
/// Version 3 added resting stops (and each account's stop count); version 4 the sentinel's
/// committee trust; version 5 the epoch's key commitment in it; version 6 the credited chain
/// deposits; version 7 the seats, operators and joining candidates of the trust state; version 8
/// the recorded withdrawals; version 9 each withdrawal's proposer and each account's trading
/// sessions and last logon time; version 10 each session's armed silence bound.
const VERSION: u8 = 10;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    config: &'a EngineConfig,
    state: &'a State,
}

#[derive(Deserialize)]
struct SnapshotOwned {
    config: EngineConfig,
    state: State,
}

/// Why a snapshot could not be restored.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not a bulwark engine snapshot.
    #[error("not a bulwark engine snapshot (bad magic)")]
    BadMagic,
    /// Written by another format version.
    #[error("snapshot format version {0} is not supported (this build reads {VERSION})")]
    Version(u8),
    /// The bytes do not decode.
    #[error("snapshot does not decode: {0}")]
    Decode(String),
    /// The configuration inside is invalid.
    #[error("snapshot configuration is invalid: {0}")]
    Config(#[from] crate::engine::ConfigError),
    /// The state contradicts itself.
    #[error("snapshot state is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// A 32-byte state root.
pub type StateRoot = [u8; 32];

/// The state root of an engine whose [`Engine::snapshot`] is `snapshot`, without restoring it.
pub fn root_of(snapshot: &[u8]) -> StateRoot {
    let mut h = blake3::Hasher::new();
    h.update(STATE_NAMESPACE);
    h.update(snapshot);
    *h.finalize().as_bytes()
}

impl Engine {
    /// The canonical bytes of the whole replicated state.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 << 12);
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        let body = postcard::to_allocvec(&SnapshotRef {
            config: &self.config,
            state: &self.state,
        })
        .expect("the engine state must serialize");
        bytes.extend_from_slice(&body);
        bytes
    }

    /// The state root: BLAKE3 of the namespace and the snapshot.
    pub fn state_root(&self) -> StateRoot {
        root_of(&self.snapshot())
    }

    /// Restores an engine from [`Engine::snapshot`] bytes, checking that they are consistent.
    pub fn restore(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(SnapshotError::BadMagic)?;
        let (&version, body) = rest.split_first().ok_or(SnapshotError::BadMagic)?;
        if version != VERSION {
            return Err(SnapshotError::Version(version));
        }
        let (snap, tail): (SnapshotOwned, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        if !tail.is_empty() {
            return Err(SnapshotError::Decode("trailing bytes".into()));
        }
        snap.config.validate()?;
        let SnapshotOwned { config, mut state } = snap;
        let n = config.instruments.len();
        if state.markets.len() != n
            || state.marks.len() != n
            || state.index.len() != config.underlyings.len()
            || state.index_states.len() != config.underlyings.len()
            || state.oracle.feeds.len() != config.underlyings.len()
            || state.oracle.faults.len() > crate::oracle::FAULT_RECORDS_MAX
            || state
                .oracle
                .feeds
                .iter()
                .any(|f| f.deviant_rounds.len() != config.oracle.members.len())
        {
            return Err(SnapshotError::Inconsistent(
                "sizes do not match the listing",
            ));
        }
        let members = state.membership.as_ref().map(|m| m.records().count());
        if members.is_some() != config.sentinel.enabled()
            || members.is_some_and(|count| count < config.sentinel.members.len())
        {
            return Err(SnapshotError::Inconsistent(
                "the sentinel's committee does not match the configuration",
            ));
        }
        for m in &mut state.markets {
            m.book.rebuild_index();
        }
        state.silences = Engine::silences_of(&state.accounts);
        check_open_orders(&state)?;
        check_stops(&state)?;
        if state.withdrawals.iter().any(|(id, w)| {
            *id == 0
                || *id >= state.next_withdrawal_id
                || w.amount == 0
                || w.amount > i64::MAX as u64
                || !w.chain.valid_destination(&w.destination)
        }) {
            return Err(SnapshotError::Inconsistent(
                "a recorded withdrawal is out of range",
            ));
        }
        check_money(&config, &state)?;
        Ok(Engine {
            config,
            state,
            scratch: Vec::new(),
            proposer: None,
            acting_session: 0,
        })
    }
}

/// Every position must name a listed instrument, and money must be conserved: the totals
/// [`Engine::totals`] adds up, in its order, without overflowing (damaged bytes can hold any
/// number), and cash − perpetual cost + fees equal what came in.
fn check_money(config: &EngineConfig, state: &State) -> Result<(), SnapshotError> {
    let overflow = || SnapshotError::Inconsistent("the money totals overflow");
    let (mut cash, mut perp_cost) = (0i128, 0i128);
    for account in state.holders() {
        cash = cash.checked_add(account.cash).ok_or_else(overflow)?;
        for (id, position) in &account.positions {
            let instrument =
                config
                    .instruments
                    .get(id.0 as usize)
                    .ok_or(SnapshotError::Inconsistent(
                        "a position names no instrument",
                    ))?;
            if instrument.is_perpetual() {
                perp_cost = perp_cost.checked_add(position.cost).ok_or_else(overflow)?;
            }
        }
    }
    let left = cash
        .checked_sub(perp_cost)
        .and_then(|v| v.checked_add(state.fee_pool))
        .ok_or_else(overflow)?;
    if left != state.net_deposits {
        return Err(SnapshotError::Inconsistent("money is not conserved"));
    }
    Ok(())
}

/// Every account's open-order totals must equal what rests in the books.
fn check_open_orders(state: &State) -> Result<(), SnapshotError> {
    let mut seen: BTreeMap<(AccountId, InstrumentId), (i64, i64, i128, u32)> = BTreeMap::new();
    for (i, m) in state.markets.iter().enumerate() {
        let inst = InstrumentId(u32::try_from(i).expect("listing size fits u32"));
        for r in m.book.orders() {
            if state.holder(r.owner).is_none() {
                return Err(SnapshotError::Inconsistent(
                    "an order belongs to no account",
                ));
            }
            let overflow = || SnapshotError::Inconsistent("open order totals overflow");
            let e = seen.entry((r.owner, inst)).or_default();
            match r.side {
                Side::Buy => {
                    e.0 = e.0.checked_add(r.qty).ok_or_else(overflow)?;
                    e.2 =
                        e.2.checked_add(i128::from(r.price) * i128::from(r.qty))
                            .ok_or_else(overflow)?;
                }
                Side::Sell => e.1 = e.1.checked_add(r.qty).ok_or_else(overflow)?,
            }
            e.3 = e.3.checked_add(1).ok_or_else(overflow)?;
        }
    }
    let holders = state
        .accounts
        .iter()
        .map(|(k, a)| (*k, a))
        .chain(std::iter::once((
            crate::engine::INSURANCE_FUND,
            &state.insurance,
        )));
    let mut recorded = 0usize;
    for (id, a) in holders {
        for (inst, o) in &a.open {
            recorded += 1;
            let want = seen.get(&(id, *inst)).copied().unwrap_or_default();
            if (o.buy_qty, o.sell_qty, o.buy_ticks_lots, o.count) != want {
                return Err(SnapshotError::Inconsistent(
                    "open orders do not match the books",
                ));
            }
        }
    }
    if recorded != seen.len() {
        return Err(SnapshotError::Inconsistent(
            "resting orders missing from accounts",
        ));
    }
    Ok(())
}

/// Every stop must belong to an account, name a listed instrument, carry an id already issued and
/// not resting in a book, and every account's stop count must equal its resting stops.
fn check_stops(state: &State) -> Result<(), SnapshotError> {
    let mut counts: BTreeMap<AccountId, u32> = BTreeMap::new();
    for (id, stop) in &state.stops {
        let market = state
            .markets
            .get(stop.order.instrument.0 as usize)
            .ok_or(SnapshotError::Inconsistent("a stop names no instrument"))?;
        if !state.accounts.contains_key(&stop.owner) {
            return Err(SnapshotError::Inconsistent("a stop belongs to no account"));
        }
        if id.0 >= state.next_order_id || market.book.order(*id).is_some() {
            return Err(SnapshotError::Inconsistent(
                "a stop's id is unissued or also rests in a book",
            ));
        }
        let count = counts.entry(stop.owner).or_default();
        *count = count.saturating_add(1);
    }
    let recorded = state
        .accounts
        .iter()
        .map(|(k, a)| (*k, a.stops))
        .chain(std::iter::once((
            crate::engine::INSURANCE_FUND,
            state.insurance.stops,
        )));
    for (id, n) in recorded {
        if counts.get(&id).copied().unwrap_or(0) != n {
            return Err(SnapshotError::Inconsistent(
                "stop counts do not match the resting stops",
            ));
        }
    }
    Ok(())
}
