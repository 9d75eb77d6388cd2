//! The pure checks a replica runs on a block before voting for it, and its execution.
//!
//! Everything here is deterministic: the same parent state and block give the same answer at
//! every honest replica (but for the clock bound on the block's time, see
//! [`BLOCK_TIME_SKEW_MS_MAX`]).

use crate::block::{Block, BlockError};
use bulwark_engine::codec::{verify_batch_parallel, SignedTx, VerifyError};
use bulwark_engine::command::SystemCommand;
use bulwark_engine::oracle::verify_oracle_round_in;
use bulwark_engine::snapshot::StateRoot;
use bulwark_engine::{Command, Engine, Event};
use bulwark_sentinel::Membership;

/// A proposer may stamp a block at most this far ahead of a verifier's clock.
pub const BLOCK_TIME_SKEW_MS_MAX: u64 = 10_000;

/// Why this replica refuses a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The bytes are not a block.
    #[error("malformed block: {0}")]
    Malformed(BlockError),
    /// It does not extend the parent consensus named, or was not proposed for this view.
    #[error("block does not match its consensus context")]
    Context,
    /// Its height is not the parent's plus one.
    #[error("block height {got} should be {want}")]
    Height {
        /// Height the block has.
        got: u64,
        /// Height it should have.
        want: u64,
    },
    /// Its time is before the parent's or too far ahead of ours.
    #[error("block time {0} ms is out of bounds")]
    Time(u64),
    /// Its claimed parent root differs from our execution of the parent.
    #[error("claimed parent root differs from this replica's execution")]
    Root,
    /// A client signature does not verify.
    #[error("client transactions refused: {0}")]
    Signatures(VerifyError),
    /// An oracle round is not certified by 2f+1 members, repeats an underlying, or is not
    /// newer than the last certified round.
    #[error("oracle round refused: {0}")]
    Oracle(String),
    /// A quarantine the sentinel's rule refuses (checked in order against the parent's trust
    /// state), or one without a sentinel committee.
    #[error("quarantine refused: {0}")]
    Quarantine(String),
    /// The block names another epoch than its parent's state is in (a block after an epoch
    /// change in the old epoch's consensus, or a forged epoch).
    #[error("block of epoch {got} on a parent in epoch {want}")]
    Epoch {
        /// The block's epoch.
        got: u64,
        /// The parent state's.
        want: u64,
    },
    /// An epoch change the sentinel's rule refuses, or one without a sentinel committee.
    #[error("epoch change refused: {0}")]
    NewEpoch(String),
    /// A chain deposit whose certificate the one rule refuses, that was credited already (or
    /// twice in the block), that pays an account that does not exist, or one without a
    /// sentinel committee.
    #[error("chain deposit refused: {0}")]
    Deposit(String),
    /// An admission the sentinel's rule refuses (checked in order against the trust state the
    /// block's earlier commands leave), or one without a sentinel committee.
    #[error("admission refused: {0}")]
    Admit(String),
}

/// The epoch an engine state is in: the sentinel's, or 0 without a sentinel committee.
pub fn epoch_of(engine: &Engine) -> u64 {
    engine.membership().map_or(0, |m| m.epoch())
}

/// The state after a block, with what the replica needs from its execution.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The engine after the block.
    pub engine: Engine,
    /// Its state root.
    pub root: StateRoot,
    /// Fills the block produced.
    pub fills: usize,
    /// Oracle fault evidence the block's certified rounds completed (a member deviating from
    /// the aggregate for too many rounds), for the sentinel.
    pub oracle_faults: Vec<bulwark_engine::oracle::FaultEvidence>,
    /// What each client transaction did.
    pub receipts: Vec<Receipt>,
    /// The block's refusals (client commands the engine refused: they stay in the block and
    /// count as finalized, but did nothing) and liquidations, counted for the status figures.
    pub tally: Tally,
}

/// What a block's events count for the operator's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Client commands the engine refused, by reason.
    pub rejected: std::collections::BTreeMap<bulwark_engine::RejectReason, u64>,
    /// Liquidation steps, by how each closed the position.
    pub liquidation_steps: std::collections::BTreeMap<bulwark_engine::event::LiquidationVia, u64>,
}

impl Tally {
    /// Counts the refusals of client commands and the liquidation steps among `events`.
    pub fn of(events: &[Event]) -> Self {
        let mut tally = Self::default();
        for event in events {
            match event {
                Event::Rejected {
                    account: Some(_),
                    reason,
                    ..
                } => *tally.rejected.entry(*reason).or_default() += 1,
                Event::Liquidation { via, .. } => {
                    *tally.liquidation_steps.entry(*via).or_default() += 1
                }
                _ => {}
            }
        }
        tally
    }

    /// Client commands refused, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Tally) {
        for (reason, n) in &other.rejected {
            *self.rejected.entry(*reason).or_default() += n;
        }
        for (via, n) in &other.liquidation_steps {
            *self.liquidation_steps.entry(*via).or_default() += n;
        }
    }
}

/// The state a block builds on.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    /// The engine after the parent block.
    pub engine: &'a Engine,
    /// Its state root.
    pub root: &'a StateRoot,
    /// The parent's height.
    pub height: u64,
    /// The parent's engine time.
    pub time_ms: u64,
}

/// Checks `block` against the state after its parent;
/// on success returns the state after it. Pure: the same inputs give the same answer at every
/// honest replica (but for `now_ms`, which only bounds how far ahead a proposer may stamp).
///
/// `verified(tx)` answers whether this replica already checked exactly this transaction's
/// signature (it sits in its mempool); only the others are verified here.
pub fn check_and_execute(
    parent: Parent<'_>,
    block: &Block,
    now_ms: u64,
    verify_threads: usize,
    verified: &dyn Fn(&[SignedTx]) -> Vec<bool>,
) -> Result<Executed, Refusal> {
    let Parent {
        engine: parent,
        root: parent_root,
        height: parent_height,
        time_ms: parent_time_ms,
    } = parent;
    if block.height != parent_height + 1 {
        return Err(Refusal::Height {
            got: block.height,
            want: parent_height + 1,
        });
    }
    if block.time_ms < parent_time_ms || block.time_ms > now_ms + BLOCK_TIME_SKEW_MS_MAX {
        return Err(Refusal::Time(block.time_ms));
    }
    if block.parent_root != *parent_root {
        return Err(Refusal::Root);
    }
    let epoch = epoch_of(parent);
    if block.epoch != epoch {
        return Err(Refusal::Epoch {
            got: block.epoch,
            want: epoch,
        });
    }
    let mut seen = Vec::new();
    let mut deposits = Vec::new();
    // The parent's trust state, copied only when the block carries a sentinel command.
    let mut membership = None;
    // Who holds the oracle seats: only an epoch change moves them, and it comes last.
    let roster = parent.oracle_roster();
    let last = block.rounds.len().saturating_sub(1);
    for (at, round) in block.rounds.iter().enumerate() {
        if let SystemCommand::Quarantine(decision) = round {
            trust_state(&mut membership, parent, Refusal::Quarantine)?
                .apply(decision, block.time_ms)
                .map_err(|e| Refusal::Quarantine(e.to_string()))?;
            continue;
        }
        if let SystemCommand::NewEpoch {
            epoch,
            members,
            key,
        } = round
        {
            if at != last {
                // Everything after it would run in the next epoch, under the old epoch's votes.
                return Err(Refusal::NewEpoch(
                    "an epoch change must be the block's last system command".into(),
                ));
            }
            trust_state(&mut membership, parent, Refusal::NewEpoch)?
                .begin_epoch(*epoch, members, bulwark_sentinel::EpochKey { digest: *key })
                .map_err(|e| Refusal::NewEpoch(e.to_string()))?;
            continue;
        }
        if let SystemCommand::Admit(admit) = round {
            trust_state(&mut membership, parent, Refusal::Admit)?
                .admit(admit, block.time_ms)
                .map_err(|e| Refusal::Admit(e.to_string()))?;
            continue;
        }
        if let SystemCommand::ChainDeposit(certificate) = round {
            if deposits.len() >= crate::deposit_feed::BLOCK_DEPOSITS_MAX {
                return Err(Refusal::Deposit(format!(
                    "more than {} chain deposits in one block",
                    crate::deposit_feed::BLOCK_DEPOSITS_MAX
                )));
            }
            // Against the trust state the block's earlier commands leave, as the engine applies it.
            let trust = membership.as_ref().or(parent.membership());
            check_deposit(parent, trust, certificate, &deposits)?;
            deposits.push(certificate.deposit.outpoint());
            continue;
        }
        let SystemCommand::OracleRound {
            underlying,
            round,
            observations,
        } = round
        else {
            return Err(Refusal::Oracle(
                "not a system command a block carries (an oracle round, a quarantine, an admission, an epoch change or a chain deposit)".into(),
            ));
        };
        if seen.contains(underlying) {
            return Err(Refusal::Oracle(format!("underlying {underlying} twice")));
        }
        seen.push(*underlying);
        let last = parent
            .oracle_last_round(*underlying)
            .ok_or_else(|| Refusal::Oracle(format!("unknown underlying {underlying}")))?;
        if *round <= last {
            return Err(Refusal::Oracle(format!(
                "round {round} of underlying {underlying} is not after {last}"
            )));
        }
        verify_oracle_round_in(&roster, *underlying, *round, observations)
            .map_err(|e| Refusal::Oracle(e.to_string()))?;
    }
    let known = verified(&block.txs);
    let unchecked: Vec<SignedTx> = block
        .txs
        .iter()
        .zip(known.iter().copied().chain(std::iter::repeat(false)))
        .filter(|(_, known)| !known)
        .map(|(tx, _)| tx.clone())
        .collect();
    verify_batch_parallel(&unchecked, |account| parent.key_of(account), verify_threads)
        .map_err(Refusal::Signatures)?;
    let mut engine = parent.clone();
    let mut events = Vec::new();
    let receipts = execute_with_receipts(&mut engine, block, &mut events);
    let fills = events
        .iter()
        .filter(|event| matches!(event, Event::Fill { .. }))
        .count();
    let tally = Tally::of(&events);
    let oracle_faults = events
        .iter()
        .filter_map(|event| match event {
            Event::OracleFault { evidence } => Some(*evidence),
            _ => None,
        })
        .collect();
    let root = engine.state_root();
    Ok(Executed {
        engine,
        root,
        fills,
        oracle_faults,
        receipts,
        tally,
    })
}

/// A chain deposit in a block: the certificate passes the one rule against the trust state the
/// block's earlier commands leave (the epoch's members, every signer in good standing: a member
/// quarantined earlier in the block no longer counts, as when the engine applies it; an epoch
/// change is the block's last command), the outpoint was not credited before or earlier in the
/// block, and the account exists. The engine applies the same rule when it executes the block.
fn check_deposit(
    parent: &Engine,
    membership: Option<&Membership>,
    certificate: &bulwark_engine::deposit::DepositCertificate,
    earlier: &[bulwark_engine::deposit::Outpoint],
) -> Result<(), Refusal> {
    let membership =
        membership.ok_or_else(|| Refusal::Deposit("no sentinel committee is configured".into()))?;
    certificate
        .check_in(membership)
        .map_err(|e| Refusal::Deposit(e.to_string()))?;
    let deposit = &certificate.deposit;
    let outpoint = deposit.outpoint();
    if parent.deposit_credited(&outpoint) || earlier.contains(&outpoint) {
        return Err(Refusal::Deposit(format!(
            "output {} of {} was credited already",
            deposit.output,
            hex::encode(&deposit.txid[..8])
        )));
    }
    if parent.account(deposit.account).is_none() {
        return Err(Refusal::Deposit(format!(
            "account {} does not exist",
            deposit.account.0
        )));
    }
    Ok(())
}

/// The trust state a block's sentinel commands apply to in turn: the parent's, copied into
/// `slot` the first time; `refusal` names the command when no sentinel committee is configured.
fn trust_state<'a>(
    slot: &'a mut Option<Membership>,
    parent: &Engine,
    refusal: fn(String) -> Refusal,
) -> Result<&'a mut Membership, Refusal> {
    match slot {
        Some(trust) => Ok(trust),
        None => Ok(slot.insert(
            parent
                .membership()
                .cloned()
                .ok_or_else(|| refusal("no sentinel committee is configured".into()))?,
        )),
    }
}

/// The member that proposed `block` on `parent`: the leader consensus elects for the block's
/// (epoch, view) among the parent state's committee, in participant-index order, with the very
/// elector the committee runs. `None` without a sentinel committee.
pub fn proposer(parent: &Engine, block: &Block) -> Option<[u8; 32]> {
    use commonware_consensus::simplex::elector::{Config, Elector as _, RoundRobin};
    use commonware_consensus::types::{Epoch, Round, View};
    use commonware_cryptography::Sha256;
    let membership = parent.membership()?;
    let participants = crate::epoch::committee_of(membership.members());
    if participants.is_empty() {
        return None;
    }
    let elector = <RoundRobin<Sha256> as Config<crate::replica::Scheme>>::build(
        RoundRobin::default(),
        &participants,
    );
    let leader = elector.elect(
        Round::new(Epoch::new(block.epoch), View::new(block.view)),
        (),
    );
    let key = participants.get(usize::try_from(leader.get()).ok()?)?;
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(key.as_ref());
    Some(bytes)
}

/// What one client transaction of a finalized block did: its events (refused with a reason,
/// accepted with the order's id, fills, cancels, a session opened, ...); or, under
/// [`BLOCK_RECEIPT_ACCOUNT`], what the block's oracle rounds and its end did (stops
/// triggered, liquidations, silenced sessions).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The block's height.
    pub height: u64,
    /// The acting id (an account's or a session's).
    pub account: bulwark_engine::AccountId,
    /// The transaction's nonce.
    pub nonce: u64,
    /// What it did.
    pub events: Vec<Event>,
}

impl Receipt {
    /// Whether this is a transaction's lone stale-nonce refusal. That is either a replay (a
    /// transaction whose (account, nonce) an earlier one used, put into a later block) or a
    /// nonce the account skipped (a higher one executed first; the engine lets nonces jump).
    /// A replay says nothing new of its key, and a receipt already told for that key must
    /// stand: whoever serves receipts withholds a stale-nonce refusal for a key it already
    /// told (the node's receipt log does), so a proposer that replays a finalized transaction
    /// cannot make an accepted order look refused. A skipped nonce's refusal is its only
    /// verdict, and is told.
    pub fn is_stale_refusal(&self) -> bool {
        self.account != BLOCK_RECEIPT_ACCOUNT
            && matches!(
                self.events.as_slice(),
                [Event::Rejected {
                    reason: bulwark_engine::RejectReason::StaleNonce,
                    ..
                }]
            )
    }
}

/// The acting id of a block's own receipt (see [`execute_with_receipts`]): the insurance
/// fund's id, `u64::MAX`, under which no transaction acts.
pub const BLOCK_RECEIPT_ACCOUNT: bulwark_engine::AccountId = bulwark_engine::AccountId(u64::MAX);

/// [`execute`], and each client transaction's [`Receipt`], in block order. When the block's
/// oracle rounds or its end (stops triggered by a new mark, liquidations, sessions silenced)
/// did something, one more receipt follows the transactions': the block's own, under
/// [`BLOCK_RECEIPT_ACCOUNT`] with nonce 0 (no transaction in a block has nonce 0), so a
/// maker filled by a liquidation or a triggered stop learns of it like any other fill.
pub fn execute_with_receipts(
    engine: &mut Engine,
    block: &Block,
    events: &mut Vec<Event>,
) -> Vec<Receipt> {
    let mut marks = Vec::with_capacity(block.rounds.len() + block.txs.len());
    let before = events.len();
    execute_inner(engine, block, events, Some(&mut marks));
    // The rounds come first: the first transaction's events start where the last round's end.
    let rounds_end = match block.rounds.len() {
        0 => before,
        rounds => marks.get(rounds - 1).copied().unwrap_or(before),
    };
    let mut from = rounds_end;
    let mut receipts: Vec<Receipt> = block
        .txs
        .iter()
        .zip(marks.iter().skip(block.rounds.len()))
        .map(|(tx, &to)| {
            let receipt = Receipt {
                height: block.height,
                account: tx.account,
                nonce: tx.nonce,
                events: events.get(from..to).unwrap_or_default().to_vec(),
            };
            from = to;
            receipt
        })
        .collect();
    // What no transaction did: the rounds' events and the end of the batch's.
    let own: Vec<Event> = events
        .get(before..rounds_end)
        .unwrap_or_default()
        .iter()
        .chain(events.get(from..).unwrap_or_default())
        .cloned()
        .collect();
    if !own.is_empty() {
        receipts.push(Receipt {
            height: block.height,
            account: BLOCK_RECEIPT_ACCOUNT,
            nonce: 0,
            events: own,
        });
    }
    receipts
}

/// Executes `block` on `engine`, appending the events to `events`.
pub fn execute(engine: &mut Engine, block: &Block, events: &mut Vec<Event>) {
    execute_inner(engine, block, events, None);
}

fn execute_inner(
    engine: &mut Engine,
    block: &Block,
    events: &mut Vec<Event>,
    marks: Option<&mut Vec<usize>>,
) {
    let commands: Vec<Command> = block
        .rounds
        .iter()
        .cloned()
        .map(Command::System)
        .chain(block.txs.iter().cloned().map(SignedTx::into_command))
        .collect();
    // Only the withdrawals a block debits name its proposer: the committee's keys are decoded
    // for a block that has a withdrawal request, not for every block.
    let proposer = block
        .txs
        .iter()
        .any(|tx| matches!(tx.command, bulwark_engine::ClientCommand::Withdraw { .. }))
        .then(|| proposer(engine, block))
        .flatten();
    match marks {
        Some(marks) => {
            engine.execute_block_marked(block.time_ms, proposer, &commands, events, marks);
        }
        None => engine.execute_block(block.time_ms, proposer, &commands, events),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{genesis, GenesisAccount};
    use bulwark_engine::command::{LimitOrder, SelfTradePrevention, TimeInForce};
    use bulwark_engine::snapshot::StateRoot;
    use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
    use commonware_cryptography::sha256::Digest;
    use ed25519_dalek::SigningKey;

    #[test]
    fn the_tally_counts_client_refusals_by_reason_and_liquidation_steps_by_kind() {
        use bulwark_engine::event::LiquidationVia;
        use bulwark_engine::RejectReason;
        let refused = |account, reason| Event::Rejected {
            account,
            client_order_id: 0,
            reason,
        };
        let step = |via| Event::Liquidation {
            account: AccountId(1),
            instrument: InstrumentId(0),
            qty: 1,
            price: 1,
            via,
            equity: 0,
            maintenance: 0,
        };
        let events = [
            refused(Some(AccountId(1)), RejectReason::StaleNonce),
            refused(Some(AccountId(2)), RejectReason::StaleNonce),
            refused(Some(AccountId(2)), RejectReason::InsufficientMargin),
            // A system command's refusal (no account) is not a client's.
            refused(None, RejectReason::OracleQuorumNotMet),
            step(LiquidationVia::Book),
            step(LiquidationVia::InsuranceFund),
            step(LiquidationVia::Book),
        ];
        let mut tally = Tally::of(&events);
        assert_eq!(tally.rejected_total(), 3);
        assert_eq!(tally.rejected[&RejectReason::StaleNonce], 2);
        assert_eq!(tally.liquidation_steps[&LiquidationVia::Book], 2);
        tally.add(&Tally::of(&events[..1]));
        assert_eq!(tally.rejected_total(), 4);
    }

    /// Only a transaction's lone stale-nonce refusal counts: not another refusal, not a stale
    /// nonce among other events, not the block's own receipt.
    #[test]
    fn a_stale_refusal_is_a_lone_stale_nonce_refusal_of_a_transaction() {
        use bulwark_engine::RejectReason;
        let refused = |reason| Event::Rejected {
            account: Some(AccountId(1)),
            client_order_id: 7,
            reason,
        };
        let receipt = |account, events| Receipt {
            height: 3,
            account,
            nonce: 2,
            events,
        };
        let stale = refused(RejectReason::StaleNonce);
        assert!(receipt(AccountId(1), vec![stale.clone()]).is_stale_refusal());
        assert!(!receipt(
            AccountId(1),
            vec![refused(RejectReason::InsufficientMargin)]
        )
        .is_stale_refusal());
        assert!(!receipt(AccountId(1), Vec::new()).is_stale_refusal());
        assert!(!receipt(AccountId(1), vec![stale.clone(), stale.clone()]).is_stale_refusal());
        assert!(!receipt(BLOCK_RECEIPT_ACCOUNT, vec![stale]).is_stale_refusal());
    }

    fn at_genesis<'a>(engine: &'a Engine, root: &'a StateRoot) -> Parent<'a> {
        Parent {
            engine,
            root,
            height: 0,
            time_ms: 0,
        }
    }

    fn none(txs: &[SignedTx]) -> Vec<bool> {
        vec![false; txs.len()]
    }

    fn setup() -> (Engine, Digest, SigningKey) {
        let key = SigningKey::from_bytes(&[7; 32]);
        let (engine, digest) = genesis(
            &[GenesisAccount {
                account: AccountId(1),
                public_key: key.verifying_key().to_bytes(),
                deposit_micros: 1_000_000_000_000,
            }],
            &[60_000_000_000],
        );
        (engine, digest, key)
    }

    fn buy(key: &SigningKey) -> SignedTx {
        SignedTx::sign(
            AccountId(1),
            1,
            ClientCommand::Limit(LimitOrder {
                instrument: InstrumentId(0),
                side: Side::Buy,
                price: 600_000,
                qty: 1,
                tif: TimeInForce::Gtc,
                post_only: false,
                reduce_only: false,
                stp: SelfTradePrevention::CancelResting,
                client_order_id: 1,
            }),
            key,
        )
    }

    fn block(parent: Digest, parent_root: StateRoot, txs: Vec<SignedTx>) -> Block {
        Block {
            epoch: 0,
            height: 1,
            view: 1,
            time_ms: 5,
            parent,
            parent_root,
            rounds: Vec::new(),
            txs,
        }
    }

    /// `block` checked and executed on the genesis `engine`; it must pass.
    fn honest(engine: &Engine, block: &Block) -> Executed {
        check_and_execute(at_genesis(engine, &engine.state_root()), block, 5, 1, &none)
            .expect("honest block")
    }

    #[test]
    fn honest_block_executes() {
        let (engine, digest, key) = setup();
        let good = block(digest, engine.state_root(), vec![buy(&key)]);
        let after = check_and_execute(
            at_genesis(&engine, &engine.state_root()),
            &good,
            5,
            1,
            &none,
        )
        .expect("honest block")
        .engine;
        assert_ne!(after.state_root(), engine.state_root());
    }

    #[test]
    fn each_transaction_gets_the_receipt_of_what_it_did() {
        let (engine, digest, key) = setup();
        let mut again = buy(&key);
        again.nonce = 2;
        if let ClientCommand::Limit(order) = &mut again.command {
            order.qty = 0;
            order.client_order_id = 2;
        }
        let again = SignedTx::sign(again.account, again.nonce, again.command, &key);
        let good = block(digest, engine.state_root(), vec![buy(&key), again]);
        let executed = honest(&engine, &good);
        let receipts = executed.receipts;
        assert_eq!(receipts.len(), 2);
        assert_eq!((receipts[0].height, receipts[0].nonce), (1, 1));
        assert!(matches!(
            receipts[0].events.as_slice(),
            [Event::Accepted {
                client_order_id: 1,
                ..
            }]
        ));
        assert!(matches!(
            receipts[1].events.as_slice(),
            [Event::Rejected {
                client_order_id: 2,
                reason: bulwark_engine::RejectReason::InvalidSize,
                ..
            }]
        ));
    }

    #[test]
    fn what_no_transaction_did_is_in_the_blocks_own_receipt_after_the_transactions() {
        let (engine, digest, key) = setup();
        // A sell stop whose trigger the mark has already passed fires at the end of the batch,
        // outside its transaction.
        let stop = SignedTx::sign(
            AccountId(1),
            1,
            ClientCommand::Stop(bulwark_engine::command::StopOrder {
                instrument: InstrumentId(0),
                side: Side::Sell,
                direction: bulwark_engine::command::StopDirection::Falls,
                trigger_price: 900_000,
                limit_price: None,
                qty: 1,
                reduce_only: false,
                client_order_id: 3,
            }),
            &key,
        );
        let good = block(digest, engine.state_root(), vec![stop]);
        let executed = honest(&engine, &good);
        let receipts = executed.receipts;
        assert_eq!(receipts.len(), 2, "{receipts:?}");
        assert!(matches!(
            receipts[0].events.as_slice(),
            [Event::StopPlaced { .. }]
        ));
        let own = &receipts[1];
        assert_eq!(
            (own.account, own.nonce, own.height),
            (BLOCK_RECEIPT_ACCOUNT, 0, 1)
        );
        assert!(
            own.events
                .iter()
                .any(|e| matches!(e, Event::StopTriggered { .. })),
            "{own:?}"
        );
        // A block where nothing happens outside its transactions has no receipt of its own.
        let quiet = block(digest, engine.state_root(), vec![buy(&key)]);
        let executed = honest(&engine, &quiet);
        assert_eq!(executed.receipts.len(), 1, "{:?}", executed.receipts);
    }

    #[test]
    fn wrong_parent_root_is_refused() {
        let (engine, digest, key) = setup();
        let mut root = engine.state_root();
        root[31] ^= 0x80;
        let bad = block(digest, root, vec![buy(&key)]);
        assert_eq!(
            check_and_execute(at_genesis(&engine, &engine.state_root()), &bad, 5, 1, &none)
                .map(|e| e.engine)
                .err(),
            Some(Refusal::Root)
        );
    }

    #[test]
    fn forged_signature_is_refused() {
        let (engine, digest, key) = setup();
        let mut tx = buy(&key);
        tx.signature[0] ^= 1;
        let bad = block(digest, engine.state_root(), vec![tx]);
        assert!(matches!(
            check_and_execute(at_genesis(&engine, &engine.state_root()), &bad, 5, 1, &none)
                .map(|e| e.engine),
            Err(Refusal::Signatures(_))
        ));
    }

    #[test]
    fn wrong_height_and_time_are_refused() {
        let (engine, digest, _) = setup();
        let mut bad = block(digest, engine.state_root(), Vec::new());
        bad.height = 2;
        assert!(matches!(
            check_and_execute(at_genesis(&engine, &engine.state_root()), &bad, 5, 1, &none)
                .map(|e| e.engine),
            Err(Refusal::Height { got: 2, want: 1 })
        ));
        bad.height = 1;
        bad.time_ms = 5 + BLOCK_TIME_SKEW_MS_MAX + 1;
        assert!(matches!(
            check_and_execute(at_genesis(&engine, &engine.state_root()), &bad, 5, 1, &none)
                .map(|e| e.engine),
            Err(Refusal::Time(_))
        ));
    }

    /// A block whose quarantine the sentinel's rule refuses is refused as a whole (its proposer
    /// is at fault), checked in order against the parent's trust state; one that passes
    /// quarantines the member.
    /// Four committee keys and the oracle committee they form (the sentinel's too).
    fn committee() -> (Vec<SigningKey>, bulwark_engine::oracle::OracleConfig) {
        let members: Vec<SigningKey> = (0..4)
            .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
            .collect();
        let oracle = bulwark_engine::oracle::OracleConfig {
            members: members
                .iter()
                .map(|k| k.verifying_key().to_bytes())
                .collect(),
            f: 1,
            ..Default::default()
        };
        (members, oracle)
    }

    /// The quarantine of `members[3]` in epoch 0 on the silence accusations of `by` (at 4 ms).
    fn quarantine_of_member_3(members: &[SigningKey], by: &[usize]) -> SystemCommand {
        use bulwark_sentinel::membership::{Evidence, Quarantine};
        use bulwark_sentinel::{Accusation, Grounds};
        let accused = members[3].verifying_key().to_bytes();
        SystemCommand::Quarantine(Box::new(Quarantine {
            member: accused,
            epoch: 0,
            evidence: Evidence::Accusations(
                by.iter()
                    .map(|i| Accusation::sign(&members[*i], accused, Grounds::Silence, 0, 4))
                    .collect(),
            ),
        }))
    }

    #[test]
    fn a_quarantine_is_checked_before_the_block_is_accepted() {
        let (members, oracle) = committee();
        let (engine, digest) =
            crate::genesis::try_genesis(&[], &[60_000_000_000], oracle).expect("genesis");
        let accused = members[3].verifying_key().to_bytes();
        let decision = |by: &[usize]| quarantine_of_member_3(&members, by);
        let root = engine.state_root();
        let parent = || at_genesis(&engine, &root);
        let mut short = block(digest, engine.state_root(), Vec::new());
        short.rounds = vec![decision(&[0])];
        assert!(matches!(
            check_and_execute(parent(), &short, 5, 1, &none).map(|e| e.engine),
            Err(Refusal::Quarantine(_))
        ));
        // Twice in one block: the second finds the member quarantined already.
        let mut twice = block(digest, engine.state_root(), Vec::new());
        twice.rounds = vec![decision(&[0, 1]), decision(&[1, 2])];
        assert!(matches!(
            check_and_execute(parent(), &twice, 5, 1, &none).map(|e| e.engine),
            Err(Refusal::Quarantine(_))
        ));
        let mut good = block(digest, engine.state_root(), Vec::new());
        good.rounds = vec![decision(&[0, 1])];
        let after = check_and_execute(parent(), &good, 5, 1, &none)
            .expect("f + 1 accusers")
            .engine;
        assert!(matches!(
            after.membership().and_then(|m| m.trust(&accused)),
            Some(bulwark_sentinel::Trust::Quarantined { .. })
        ));
        // Without a sentinel committee no quarantine passes.
        let (plain, plain_digest, _) = setup();
        let mut none_configured = block(plain_digest, plain.state_root(), Vec::new());
        none_configured.rounds = vec![decision(&[0, 1])];
        assert!(matches!(
            check_and_execute(
                at_genesis(&plain, &plain.state_root()),
                &none_configured,
                5,
                1,
                &none
            )
            .map(|e| e.engine),
            Err(Refusal::Quarantine(_))
        ));
    }

    /// An admission in a block passes the sentinel's rule against the trust state the block's
    /// earlier commands leave, or the whole block is refused: a replacement needs its seat
    /// vacated first (a quarantine earlier in the block will do), f+1 affirmations and the
    /// operators' quorum.
    #[test]
    fn an_admission_is_checked_in_order_before_the_block_is_accepted() {
        use bulwark_sentinel::{Admit, Affirmation, Approval, Operators, Seat};
        let (members, oracle) = committee();
        let operators: Vec<SigningKey> = (0..3)
            .map(|i| SigningKey::from_bytes(&[50 + i; 32]))
            .collect();
        let (engine, digest) = crate::genesis::try_genesis_with(
            &[],
            &[60_000_000_000],
            oracle,
            (
                bulwark_sentinel::Policy::default(),
                Operators {
                    keys: operators
                        .iter()
                        .map(|k| k.verifying_key().to_bytes())
                        .collect(),
                    quorum: 2,
                },
            ),
        )
        .expect("genesis");
        let newcomer = SigningKey::from_bytes(&[90; 32]).verifying_key().to_bytes();
        let seat = members[3].verifying_key().to_bytes();
        let admit = |affirmers: &[usize], approvers: &[usize]| {
            SystemCommand::Admit(Box::new(Admit {
                candidate: newcomer,
                epoch: 0,
                affirmations: affirmers
                    .iter()
                    .map(|i| Affirmation::sign(&members[*i], newcomer, 0, 4, ([1; 32], [2; 32])))
                    .collect(),
                seat: Seat::Replace {
                    replaces: seat,
                    approvals: approvers
                        .iter()
                        .map(|i| Approval::sign(&operators[*i], &newcomer, &seat, 0))
                        .collect(),
                },
            }))
        };
        let root = engine.state_root();
        let parent = || at_genesis(&engine, &root);
        let with = |rounds: Vec<SystemCommand>| {
            let mut b = block(digest, root, Vec::new());
            b.rounds = rounds;
            check_and_execute(parent(), &b, 5, 1, &none).map(|e| e.engine)
        };
        let quarantine = || quarantine_of_member_3(&members, &[0, 1]);
        // The seat is not vacant yet: the admission before the quarantine is refused.
        assert!(matches!(
            with(vec![admit(&[0, 1], &[0, 1]), quarantine()]),
            Err(Refusal::Admit(_))
        ));
        // One affirmation is fewer than f + 1; one operator is not the quorum.
        assert!(matches!(
            with(vec![quarantine(), admit(&[0], &[0, 1])]),
            Err(Refusal::Admit(_))
        ));
        assert!(matches!(
            with(vec![quarantine(), admit(&[0, 1], &[2])]),
            Err(Refusal::Admit(_))
        ));
        let after = with(vec![quarantine(), admit(&[0, 1], &[0, 2])]).expect("admitted");
        let trust = after.membership().expect("configured");
        assert!(matches!(
            trust.trust(&newcomer),
            Some(bulwark_sentinel::Trust::Joining { .. })
        ));
        assert!(trust.next_members().contains(&newcomer));
        assert!(!trust.next_members().contains(&seat));
    }

    /// A chain deposit in a block must carry n - f current members' signatures over one
    /// observation, be new (not credited, not twice in the block) and pay an account that
    /// exists; anything else refuses the whole block. One that passes is credited once.
    #[test]
    fn a_chain_deposit_is_checked_before_the_block_is_accepted() {
        use bulwark_engine::deposit::{DepositCertificate, MemberSignature, ObservedDeposit};
        use ed25519_dalek::Signer as _;
        let (members, oracle) = committee();
        let account = GenesisAccount {
            account: AccountId(1),
            public_key: [7; 32],
            deposit_micros: 1_000_000,
        };
        let (engine, digest) =
            crate::genesis::try_genesis(&[account], &[60_000_000_000], oracle).expect("genesis");
        let observed = |output: u32, account: u64| ObservedDeposit {
            chain: 1,
            txid: [3; 32],
            output,
            account: AccountId(account),
            amount: 2_500_000,
        };
        let certify = |deposit: ObservedDeposit, by: &[usize]| {
            let mut signatures: Vec<MemberSignature> = by
                .iter()
                .map(|i| MemberSignature {
                    member: members[*i].verifying_key().to_bytes(),
                    signature: members[*i].sign(&deposit.signed_message()).to_bytes(),
                })
                .collect();
            signatures.sort();
            SystemCommand::ChainDeposit(Box::new(DepositCertificate {
                deposit,
                signatures,
            }))
        };
        let root = engine.state_root();
        let parent = || at_genesis(&engine, &root);
        let with = |rounds: Vec<SystemCommand>| {
            let mut b = block(digest, engine.state_root(), Vec::new());
            b.rounds = rounds;
            b
        };
        let refused = |rounds: Vec<SystemCommand>| {
            matches!(
                check_and_execute(parent(), &with(rounds), 5, 1, &none).map(|e| e.engine),
                Err(Refusal::Deposit(_))
            )
        };
        assert!(
            refused(vec![certify(observed(0, 1), &[0, 1])]),
            "f + 1 is short"
        );
        assert!(
            refused(vec![certify(observed(0, 1), &[0, 1, 1])]),
            "a member twice"
        );
        assert!(
            refused(vec![certify(observed(0, 77), &[0, 1, 2])]),
            "no such account"
        );
        assert!(
            refused(vec![
                certify(observed(0, 1), &[0, 1, 2]),
                certify(observed(0, 1), &[1, 2, 3]),
            ]),
            "one outpoint twice in a block"
        );
        let SystemCommand::ChainDeposit(mut forged) = certify(observed(0, 1), &[0, 1, 2]) else {
            unreachable!()
        };
        forged.deposit.amount *= 100;
        assert!(
            refused(vec![SystemCommand::ChainDeposit(forged)]),
            "inflated"
        );
        let after = check_and_execute(
            parent(),
            &with(vec![certify(observed(0, 1), &[0, 1, 2])]),
            5,
            1,
            &none,
        )
        .expect("n - f members")
        .engine;
        assert!(after.deposit_credited(&observed(0, 1).outpoint()));
        assert_eq!(
            after.account(AccountId(1)).map(|a| a.cash),
            Some(3_500_000i128),
            "credited once, on top of the genesis deposit"
        );
        // A member quarantined earlier in the same block no longer counts towards the quorum.
        let quarantine = quarantine_of_member_3(&members, &[0, 1]);
        assert!(
            refused(vec![
                quarantine.clone(),
                certify(observed(0, 1), &[0, 1, 3])
            ]),
            "a quarantined signer"
        );
        assert!(check_and_execute(
            parent(),
            &with(vec![quarantine, certify(observed(0, 1), &[0, 1, 2])]),
            5,
            1,
            &none
        )
        .is_ok());
        // On top of that state the same outpoint is refused.
        let after_root = after.state_root();
        let mut again = block(digest, after_root, Vec::new());
        again.rounds = vec![certify(observed(0, 1), &[1, 2, 3])];
        assert!(matches!(
            check_and_execute(at_genesis(&after, &after_root), &again, 5, 1, &none)
                .map(|e| e.engine),
            Err(Refusal::Deposit(_))
        ));
    }
}
