//! The checkers every run goes through: DESIGN invariants 1 and 7, execution of every height
//! once and in order, a log at every honest member, and that trading happened at all.

use crate::scenario::Outcome;
use serde::Serialize;

/// What a run that holds every invariant achieved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Finalized heights at the member that got furthest.
    pub heights: u64,
    /// Client transactions in those heights.
    pub txs: u64,
    /// Fills in those heights.
    pub fills: u64,
    /// Simulated milliseconds.
    pub virtual_ms: u64,
    /// Chain deposits credited at the member that credited most (0 without chain deposits).
    pub deposits_credited: u64,
    /// What the tracked clients sent, were told and read ([`crate::clients`]).
    pub clients: crate::clients::ClientTally,
}

/// An invariant a run broke. Any of these is a bug; the seed reproduces it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A member executed a height out of order or twice.
    #[error("member {member} executed height {height} at position {position}: heights must run in order, once each")]
    Order {
        /// The member.
        member: usize,
        /// The height it executed.
        height: u64,
        /// Where in its ledger (1-based) it did.
        position: u64,
    },
    /// Money was created or destroyed by a block (invariant 7).
    #[error("member {member}: money not conserved at height {height}")]
    Conservation {
        /// The member.
        member: usize,
        /// The height.
        height: u64,
    },
    /// Two members hold different blocks or roots at one height (invariant 1).
    #[error("member {member} diverged at height {height}")]
    Divergence {
        /// The member that differs from the longest ledger.
        member: usize,
        /// The height.
        height: u64,
    },
    /// An honest member's durable log holds no height.
    #[error("honest member {member}'s log holds no height")]
    EmptyLog {
        /// The member.
        member: usize,
    },
    /// No member finalized anything.
    #[error("nothing was finalized")]
    NothingFinalized,
    /// The oracle committee ran, but a live member's certified rounds fell behind the clock.
    #[error("member {member}'s last certified oracle round is {round}, the clock is in round {clock_round}: certification stalled")]
    OracleStalled {
        /// The member.
        member: usize,
        /// Its last certified BTC round.
        round: u64,
        /// The round by the clock at the end of the run.
        clock_round: u64,
    },
    /// The log verifier accepted a forged log.
    #[error("the log verifier accepted a forged log: {name}")]
    ForgedLogAccepted {
        /// The forgery.
        name: &'static str,
    },
    /// A member's committed state credited a deposit the chain did not pay, or more than it
    /// paid.
    #[error("member {member} credited {fake} made-up deposits and {excess_micros} micros beyond what the chain paid")]
    DepositForged {
        /// The member.
        member: usize,
        /// Made-up outpoints credited.
        fake: u64,
        /// Micros beyond the chain's amounts.
        excess_micros: i128,
    },
    /// Chain deposits ran, but a live member credited none of the chain's real deposits.
    #[error("member {member} credited no real chain deposit")]
    DepositsStalled {
        /// The member.
        member: usize,
    },
    /// A fault did not hold: a member finalized where no quorum could be reached.
    #[error("a fault did not hold: {what}")]
    Breach {
        /// What happened.
        what: String,
    },
    /// After the nemesis healed every fault, some member did not make progress in time.
    #[error("no recovery within {bound_s} s of the last heal: heights {heights:?}")]
    NoRecovery {
        /// The bound, virtual seconds.
        bound_s: u64,
        /// Every member's height at the end.
        heights: Vec<u64>,
    },
    /// A tracked client was told its transaction was accepted, and no member ever told its
    /// receipt (neither executed nor refused in a finalized block).
    #[error("account {account}'s transaction {nonce} was accepted and never finalized")]
    AckLost {
        /// The client's account.
        account: u64,
        /// The transaction's nonce.
        nonce: u64,
    },
    /// A tracked client still had no verdict on its transaction when the end of the run had
    /// waited [`crate::clients::DRAIN`] for it.
    #[error("account {account}'s transaction {nonce} had no verdict at the end of the run")]
    Undecided {
        /// The client's account.
        account: u64,
        /// The transaction's nonce.
        nonce: u64,
    },
    /// A tracked client was told its transaction was refused, and it was finalized.
    #[error("account {account}'s transaction {nonce} was refused, and then finalized at height {height}")]
    RefusedExecuted {
        /// The client's account.
        account: u64,
        /// The transaction's nonce.
        nonce: u64,
        /// Where it was finalized.
        height: u64,
    },
    /// A member told one transaction's receipt twice, at another height or with another
    /// outcome.
    #[error("member {member} told account {account}'s transaction {nonce} at height {first}, then differently at height {again}")]
    ReceiptChanged {
        /// The member.
        member: usize,
        /// The acting account.
        account: u64,
        /// The transaction's nonce.
        nonce: u64,
        /// Where it told it first.
        first: u64,
        /// Where it told it again.
        again: u64,
    },
    /// A member's receipt of a transaction differs from another member's.
    #[error("member {member}'s receipt of account {account}'s transaction {nonce} differs from another member's")]
    ReceiptDisagrees {
        /// The member.
        member: usize,
        /// The acting account.
        account: u64,
        /// The transaction's nonce.
        nonce: u64,
    },
    /// A tracked client's read does not agree with the receipts: at that height the account's
    /// next nonce is one past the highest nonce finalized at or below it.
    #[error("account {account} read next nonce {next_nonce} at member {member}, height {height}; the receipts say {expected}")]
    ReadInconsistent {
        /// The client's account.
        account: u64,
        /// The member it read from.
        member: usize,
        /// The height of the read.
        height: u64,
        /// The next nonce the read gave.
        next_nonce: u64,
        /// The next nonce the receipts give at that height.
        expected: u64,
    },
    /// No tracked client got a single receipt: the client checkers had nothing to check.
    #[error("the tracked clients got no receipt ({accepted} transactions accepted)")]
    ClientsIdle {
        /// Transactions an endpoint accepted.
        accepted: u64,
    },
    /// Client transactions were finalized but none matched (or none were finalized).
    #[error("no trading: {txs} client transactions finalized, {fills} fills")]
    NoTrading {
        /// Client transactions finalized.
        txs: u64,
        /// Fills.
        fills: u64,
    },
}

impl Violation {
    /// The checker that found it, in a word (for counts by checker).
    pub fn checker(&self) -> &'static str {
        match self {
            Violation::Order { .. } => "order",
            Violation::Conservation { .. } => "conservation",
            Violation::Divergence { .. } => "divergence",
            Violation::EmptyLog { .. } => "empty_log",
            Violation::NothingFinalized => "nothing_finalized",
            Violation::OracleStalled { .. } => "oracle_stalled",
            Violation::ForgedLogAccepted { .. } => "forged_log_accepted",
            Violation::DepositForged { .. } => "deposit_forged",
            Violation::DepositsStalled { .. } => "deposits_stalled",
            Violation::NoRecovery { .. } => "no_recovery",
            Violation::Breach { .. } => "breach",
            Violation::AckLost { .. } => "ack_lost",
            Violation::Undecided { .. } => "undecided",
            Violation::RefusedExecuted { .. } => "refused_executed",
            Violation::ReceiptChanged { .. } => "receipt_changed",
            Violation::ReceiptDisagrees { .. } => "receipt_disagrees",
            Violation::ReadInconsistent { .. } => "read_inconsistent",
            Violation::ClientsIdle { .. } => "clients_idle",
            Violation::NoTrading { .. } => "no_trading",
        }
    }
}

/// How many rounds a member's last certified oracle round may trail the clock at the end of a
/// run: a round is observed in its second, gossiped, put in the next block and finalized.
pub const ORACLE_LAG_ROUNDS: u64 = 5;

/// Checks every invariant on `outcome`.
pub fn check(outcome: &Outcome) -> Result<Summary, Violation> {
    for (member, ledger) in outcome.ledgers.iter().enumerate() {
        for (position, committed) in ledger.iter().enumerate() {
            let position = position as u64 + 1;
            if committed.height != position {
                return Err(Violation::Order {
                    member,
                    height: committed.height,
                    position,
                });
            }
            if !committed.conserved {
                return Err(Violation::Conservation {
                    member,
                    height: committed.height,
                });
            }
        }
    }
    let longest = outcome
        .ledgers
        .iter()
        .max_by_key(|l| l.len())
        .ok_or(Violation::NothingFinalized)?;
    for (member, ledger) in outcome.ledgers.iter().enumerate() {
        for committed in ledger {
            // Heights were checked to run 1..=len, so the longest ledger holds this one.
            let reference = &longest[committed.height as usize - 1];
            if (committed.digest, committed.root) != (reference.digest, reference.root) {
                return Err(Violation::Divergence {
                    member,
                    height: committed.height,
                });
            }
        }
    }
    // A height a member lost with its damaged disk and committed again: both commits, and
    // everyone else's, name one block and one root.
    for (member, lost) in outcome.superseded.iter().enumerate() {
        for committed in lost {
            let same = longest
                .get(committed.height as usize - 1)
                .is_some_and(|r| (r.digest, r.root) == (committed.digest, committed.root));
            if !same {
                return Err(Violation::Divergence {
                    member,
                    height: committed.height,
                });
            }
        }
    }
    for (member, heights) in outcome.verified.iter().enumerate() {
        if *heights == 0 {
            return Err(Violation::EmptyLog { member });
        }
    }
    if let Some(accepted) = outcome.forgeries.iter().find(|f| f.refused_with.is_none()) {
        return Err(Violation::ForgedLogAccepted {
            name: accepted.name,
        });
    }
    if let Some(clock_round) = outcome.oracle_clock_round {
        for (member, (round, _)) in outcome.oracle.iter().enumerate() {
            // A cut-off member sees no block, so its certified rounds stop with its links; a
            // removed one follows the chain no more.
            let cut_off = outcome.tampered.contains(&member)
                || outcome.episode.removed.iter().any(|(m, _)| *m == member);
            if Some(member) != outcome.crashed
                && !cut_off
                && round + ORACLE_LAG_ROUNDS < clock_round
            {
                return Err(Violation::OracleStalled {
                    member,
                    round: *round,
                    clock_round,
                });
            }
        }
    }
    if let Some(tallies) = &outcome.deposits {
        for (member, tally) in tallies.iter().enumerate() {
            if tally.fake > 0 || tally.excess_micros != 0 || tally.credited != tally.real {
                return Err(Violation::DepositForged {
                    member,
                    fake: tally.fake,
                    excess_micros: tally.excess_micros,
                });
            }
            if Some(member) != outcome.crashed && tally.real == 0 {
                return Err(Violation::DepositsStalled { member });
            }
        }
    }
    if let Some(nemesis) = &outcome.nemesis {
        if let Some(breach) = nemesis.breaches.first() {
            return Err(Violation::Breach {
                what: breach.clone(),
            });
        }
        if nemesis.recovery_ms.is_none() {
            return Err(Violation::NoRecovery {
                bound_s: crate::nemesis::RECOVERY_BOUND.as_secs(),
                heights: nemesis.heights.clone(),
            });
        }
    }
    crate::clients::check(&outcome.clients)?;
    let tally = outcome.clients.tally();
    if tally.decided == 0 {
        return Err(Violation::ClientsIdle {
            accepted: tally.accepted,
        });
    }
    let txs = longest.iter().map(|c| c.txs as u64).sum();
    let fills = longest.iter().map(|c| c.fills as u64).sum();
    if txs == 0 || fills == 0 {
        return Err(Violation::NoTrading { txs, fills });
    }
    Ok(Summary {
        heights: longest.len() as u64,
        txs,
        fills,
        virtual_ms: outcome.virtual_ms as u64,
        deposits_credited: outcome
            .deposits
            .iter()
            .flatten()
            .map(|t| t.credited)
            .max()
            .unwrap_or(0),
        clients: tally,
    })
}
