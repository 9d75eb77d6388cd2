//! The node's answers to clients: submissions into the mempool (then gossiped to peers), and
//! status, account and book queries against the committed state.

use crate::server::{Handler, Refusal};
use bulwark_api::answers::{
    AccountAnswer, BookAnswer, Level, NodeStatus, OpenOrder, PositionAnswer, SnapshotStatus,
    StandingAnswer, StopAnswer,
};
use bulwark_api::stats::percentile;
use bulwark_api::wire::SubmitOutcome;
use bulwark_consensus::mempool::{Keys, Mempool, Origin};
use bulwark_consensus::replica::{Ledger, SharedStats};
use bulwark_engine::codec::SignedTx;
use bulwark_engine::{AccountId, Engine, InstrumentId};
use commonware_utils::channel::mpsc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Account keys and nonces from a committed engine.
pub(crate) struct EngineKeys(pub(crate) Arc<Engine>);

/// `samples` in ascending order, for [`percentile`].
fn sorted(samples: &std::collections::VecDeque<f64>) -> Vec<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

impl Keys for EngineKeys {
    fn public_key(&self, account: AccountId) -> Option<[u8; 32]> {
        self.0.key_of(account)
    }

    fn next_nonce(&self, account: AccountId) -> u64 {
        self.0.next_nonce(account)
    }
}

pub(crate) struct Endpoint {
    pub(crate) name: String,
    pub(crate) data_center: String,
    pub(crate) identity: Arc<Mutex<String>>,
    pub(crate) attestation: Option<Arc<crate::node::attest::Attestation>>,
    pub(crate) admission: crate::node::attest::AdmissionStatus,
    /// Each underlying's venue sources (null with the synthetic feed).
    pub(crate) oracle_sources: Arc<Mutex<serde_json::Value>>,
    pub(crate) mempool: Mempool,
    pub(crate) view: Arc<Mutex<bulwark_consensus::replica::CommittedView>>,
    pub(crate) stats: SharedStats,
    pub(crate) ledger: Ledger,
    pub(crate) receipts: Arc<crate::node::receipts::ReceiptLog>,
    pub(crate) refused: Arc<AtomicU64>,
    pub(crate) evidence: bulwark_consensus::evidence::EvidenceLog,
    pub(crate) sentinel: bulwark_consensus::sentinel_feed::SharedSentinel,
    pub(crate) gossip: mpsc::UnboundedSender<Vec<SignedTx>>,
    /// This node's newest signed audit report of its own machine.
    pub(crate) own_report: crate::node::audit::OwnReport,
    /// What this node saw of each peer's appraisal and audit report (empty without admission).
    pub(crate) fitness: crate::node::audit::Fitness,
    /// The node key: it signs affirmations.
    pub(crate) signing_key: ed25519_dalek::SigningKey,
    /// How old a peer's audit report may be and still affirm it.
    pub(crate) report_ttl_ms: u64,
    /// Affirm and admit requests served, across all connections (each costs a signature or
    /// the sentinel rule's checks).
    pub(crate) operator_budget: Mutex<OperatorBudget>,
    /// The vault's keys and signed withdrawals as this node holds them.
    pub(crate) vault: crate::node::vault_signing::SharedStatus,
}

/// A token bucket over the affirm and admit requests of every client together.
pub(crate) struct OperatorBudget {
    tokens: f64,
    refilled: std::time::Instant,
}

/// Affirm and admit requests per second, sustained, from all clients together.
const OPERATOR_REQUESTS_PER_S: f64 = 20.0;
/// ... and at once.
const OPERATOR_REQUESTS_BURST: f64 = 40.0;

impl OperatorBudget {
    pub(crate) fn new() -> Self {
        OperatorBudget {
            tokens: OPERATOR_REQUESTS_BURST,
            refilled: std::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens =
            (self.tokens + elapsed * OPERATOR_REQUESTS_PER_S).min(OPERATOR_REQUESTS_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Endpoint {
    /// Each member's trust as the status shows it.
    fn members(&self, engine: &Engine) -> std::collections::BTreeMap<String, String> {
        use bulwark_sentinel::Trust;
        let Some(membership) = engine.membership() else {
            return Default::default();
        };
        let suspected = self
            .sentinel
            .lock()
            .expect("the sentinel lock must not be poisoned")
            .suspected();
        membership
            .records()
            .map(|(key, trust)| {
                let state = match trust {
                    Trust::Admitted if suspected.contains(key) => "suspected",
                    Trust::Admitted => "admitted",
                    Trust::Quarantined { .. } => "quarantined",
                    Trust::Removed { .. } => "removed",
                    Trust::Joining { .. } => "joining",
                };
                (hex::encode(&key[..8]), state.to_string())
            })
            .collect()
    }

    /// Takes one affirm or admit request from the shared budget.
    fn operator_request(&self) -> Result<(), Refusal> {
        if self
            .operator_budget
            .lock()
            .expect("the operator budget lock must not be poisoned")
            .take()
        {
            Ok(())
        } else {
            Err(Refusal::Busy)
        }
    }

    pub(crate) fn engine(&self) -> Arc<Engine> {
        self.committed().engine
    }

    /// The committed engine with its height, taken together.
    fn committed(&self) -> bulwark_consensus::replica::CommittedView {
        self.view
            .lock()
            .expect("the view lock must not be poisoned")
            .clone()
    }
}

impl Handler for Endpoint {
    fn submit(&self, txs: Vec<SignedTx>) -> SubmitOutcome {
        let keys = EngineKeys(self.engine());
        let outcome = self.mempool.insert_batch(
            txs.clone(),
            &keys,
            Origin::Client {
                arrived: std::time::SystemTime::now(),
            },
        );
        let refused: std::collections::HashSet<usize> =
            outcome.refused.iter().map(|(index, _)| *index).collect();
        let forward: Vec<SignedTx> = txs
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !refused.contains(index))
            .map(|(_, tx)| tx)
            .collect();
        if !forward.is_empty() {
            // The receiver lives as long as the node; a closed channel means it is stopping.
            let _ = self.gossip.send(forward);
        }
        outcome.into()
    }

    fn status(&self) -> NodeStatus {
        let vault = self
            .vault
            .lock()
            .expect("the vault status lock must not be poisoned");
        let (rounds, round_trips) = (sorted(&vault.round_ms), sorted(&vault.rtt_ms));
        let (shares, syncs) = (sorted(&vault.share_ms), sorted(&vault.sync_ms));
        let (height, root, certified) = {
            let ledger = self
                .ledger
                .lock()
                .expect("the ledger lock must not be poisoned");
            ledger.last().map_or((0, String::new(), false), |c| {
                (c.height, hex::encode(c.root), c.certified)
            })
        };
        // Copy what is needed under the lock (the replica takes it once per height).
        let (mut latencies, mut oracle_latencies, finalized, oracle_rounds, snapshots) = {
            let stats = self
                .stats
                .lock()
                .expect("the stats lock must not be poisoned");
            (
                stats.latencies_ms.iter().copied().collect::<Vec<u32>>(),
                stats
                    .oracle_latencies_ms
                    .iter()
                    .copied()
                    .collect::<Vec<u32>>(),
                (stats.finalized_txs, stats.finalized_rejected),
                stats.oracle_rounds,
                SnapshotStatus {
                    restored_from: stats.restored_snapshot,
                    last_written: stats.last_snapshot,
                },
            )
        };
        latencies.sort_unstable();
        oracle_latencies.sort_unstable();
        let engine = self.engine();
        let underlyings = u16::try_from(engine.config().underlyings.len()).unwrap_or(u16::MAX);
        NodeStatus {
            name: self.name.clone(),
            data_center: self.data_center.clone(),
            identity: self
                .identity
                .lock()
                .expect("the identity lock must not be poisoned")
                .clone(),
            admission: self
                .admission
                .lock()
                .expect("the admission status lock must not be poisoned")
                .clone(),
            height,
            root,
            last_height_certified: certified,
            finalized_txs: finalized.0,
            finalized_rejected: finalized.1,
            mempool: self.mempool.len(),
            refused_blocks: self.refused.load(Ordering::Relaxed),
            fault_evidence: self.evidence.counts(),
            latency_samples: latencies.len(),
            latency_p50_ms: percentile(&latencies, 50),
            latency_p99_ms: percentile(&latencies, 99),
            index_micros: (0..underlyings).map(|u| engine.index_price(u)).collect(),
            oracle_rounds: (0..underlyings)
                .map(|u| engine.oracle_last_round(u))
                .collect(),
            oracle_rounds_finalized: oracle_rounds,
            oracle_latency_p50_ms: percentile(&oracle_latencies, 50),
            oracle_latency_p99_ms: percentile(&oracle_latencies, 99),
            oracle_sources: self
                .oracle_sources
                .lock()
                .expect("the oracle status lock must not be poisoned")
                .clone(),
            snapshots,
            epoch: engine.membership().map_or(0, |m| m.epoch()),
            members: self.members(&engine),
            deposits_credited: engine.deposits_credited() as u64,
            withdrawals_requested: engine.withdrawals_recorded() as u64,
            withdrawals_signed: vault.signed.len() as u64,
            vault_rounds: vault.round_ms.len() as u64,
            vault_round_p50_ms: percentile(&rounds, 50),
            vault_round_p99_ms: percentile(&rounds, 99),
            vault_rtt_p50_ms: percentile(&round_trips, 50),
            instruments: engine
                .config()
                .instruments
                .iter()
                .map(|i| bulwark_api::answers::InstrumentAnswer {
                    id: i.id.0,
                    symbol: i.symbol.clone(),
                    tick_size_micros: i.tick_size_micros,
                    lot_size_nanos: i.lot_size_nanos,
                })
                .collect(),
            vault_share_p50_ms: percentile(&shares, 50),
            vault_sync_p50_ms: percentile(&syncs, 50),
        }
    }

    fn attest(&self, nonce: [u8; 32]) -> Result<Vec<u8>, Refusal> {
        match &self.attestation {
            Some(attestation) => Ok(attestation.evidence(nonce)?),
            None => Err(Refusal::AttestationOff),
        }
    }

    fn attest_key(&self) -> Result<Vec<u8>, Refusal> {
        match &self.attestation {
            Some(attestation) => Ok(attestation.attest_key()?),
            None => Err(Refusal::AttestationOff),
        }
    }

    fn activate(
        &self,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Vec<u8>, Refusal> {
        match &self.attestation {
            Some(attestation) => Ok(attestation.activate(credential_blob, encrypted_secret)?),
            None => Err(Refusal::AttestationOff),
        }
    }

    fn audit_report(&self) -> Result<Vec<u8>, Refusal> {
        self.own_report
            .lock()
            .expect("the audit report lock must not be poisoned")
            .as_ref()
            .map(|signed| signed.encode())
            .ok_or(Refusal::NoAudit)
    }

    fn affirm(&self, candidate: [u8; 32]) -> Result<bulwark_sentinel::Affirmation, Refusal> {
        use crate::node::audit::{affirm, AffirmRefusal};
        self.operator_request()?;
        if self.attestation.is_none() {
            return Err(AffirmRefusal::AdmissionOff.into());
        }
        let fitness = self
            .fitness
            .lock()
            .expect("the fitness lock must not be poisoned")
            .get(&candidate)
            .cloned();
        let engine = self.engine();
        let affirmation = affirm(
            &engine,
            &self.signing_key,
            candidate,
            fitness.as_ref(),
            (crate::node::attest::now_ms(), self.report_ttl_ms),
        )?;
        tracing::info!(candidate = %hex::encode(&candidate[..8]), epoch = affirmation.epoch, "affirmed a removed member for re-admission");
        Ok(affirmation)
    }

    fn admit(&self, admit: bulwark_sentinel::Admit) -> Result<(), Refusal> {
        use bulwark_consensus::sentinel_feed::{check_admit, AdmitOffer};
        self.operator_request()?;
        let engine = self.engine();
        let candidate = hex::encode(&admit.candidate[..8]);
        // The rule's signature checks run before the sentinel's lock (which the proposer
        // takes) is taken, once.
        let offered = check_admit(&engine, admit).and_then(|checked| {
            if checked.dropped() > 0 {
                tracing::info!(
                    %candidate,
                    dropped = checked.dropped(),
                    "dropped affirmations that do not count at this node's state"
                );
            }
            self.sentinel
                .lock()
                .expect("the sentinel lock must not be poisoned")
                .hold_admit(&engine, checked)
        });
        match offered {
            Ok(()) => {
                tracing::info!(%candidate, "admission held for this node's proposals");
                Ok(())
            }
            Err(AdmitOffer::Refused(refusal)) => Err(Refusal::Admit(refusal.to_string())),
            Err(AdmitOffer::Full) => Err(Refusal::Admit(
                "this node holds as many admissions as it may; try again after one is decided"
                    .into(),
            )),
        }
    }

    fn account(&self, account: AccountId) -> Result<AccountAnswer, Refusal> {
        let bulwark_consensus::replica::CommittedView { height, engine } = self.committed();
        let Some(state) = engine.account(account) else {
            return Err(Refusal::UnknownAccount { account });
        };
        let positions = state
            .positions
            .iter()
            .map(|(instrument, position)| PositionAnswer {
                instrument: instrument.0,
                qty: position.qty,
                cost_micros: position.cost.to_string(),
            })
            .collect();
        let open_orders = state
            .open
            .keys()
            .filter_map(|instrument| engine.book(*instrument).map(|book| (instrument, book)))
            .flat_map(|(instrument, book)| {
                book.orders_of(account)
                    .into_iter()
                    .map(move |order| OpenOrder {
                        instrument: instrument.0,
                        order_id: order.id.0,
                        side: order.side,
                        price: order.price,
                        qty: order.qty,
                    })
            })
            .collect();
        // Stops are few per account (capped); the map is scanned.
        let stops = engine
            .stops()
            .filter(|(_, stop)| stop.owner == account)
            .map(|(id, stop)| StopAnswer {
                order_id: id.0,
                instrument: stop.order.instrument.0,
                side: stop.order.side,
                direction: stop.order.direction,
                trigger_price: stop.order.trigger_price,
                limit_price: stop.order.limit_price,
                qty: stop.order.qty,
                reduce_only: stop.order.reduce_only,
                held_by: stop.held_by,
            })
            .collect();
        let (standing, standing_error) = match engine.standing(account) {
            Some(Ok(standing)) => (
                Some(StandingAnswer {
                    equity_micros: standing.equity.to_string(),
                    unrealized_micros: standing.unrealized.to_string(),
                    initial_micros: standing.initial.to_string(),
                    maintenance_micros: standing.maintenance.to_string(),
                }),
                None,
            ),
            Some(Err(error)) => (None, Some(format!("{error:?}"))),
            None => (None, Some("unknown".into())),
        };
        Ok(AccountAnswer {
            height,
            account: account.0,
            nonce: state.nonce,
            public_key: hex::encode(state.public_key),
            cash_micros: state.cash.to_string(),
            positions,
            open_orders,
            stops,
            standing,
            standing_error,
        })
    }

    fn receipts(
        &self,
        height: u64,
        index: u32,
        wait_ms: u32,
    ) -> Result<bulwark_api::answers::ReceiptsAnswer, Refusal> {
        Ok(self.receipts.since(
            height,
            index,
            std::time::Duration::from_millis(u64::from(wait_ms)),
        ))
    }

    fn withdrawals(&self, from: u64) -> Result<bulwark_api::answers::WithdrawalsAnswer, Refusal> {
        use bulwark_api::answers::{VaultKeysAnswer, WithdrawalAnswer, WITHDRAWALS_PER_ANSWER};
        let engine = self.engine();
        let vault = self
            .vault
            .lock()
            .expect("the vault status lock must not be poisoned");
        let keys = vault.keys.as_ref();
        let mut withdrawals = Vec::new();
        let mut next = None;
        // A page fits a frame: at most this many bytes of signed transactions and signatures
        // (hex), besides the count bound.
        let mut budget = 256 * 1024usize;
        for (id, recorded) in engine.withdrawals_from(from) {
            let size = vault.signed.get(&id).map_or(0, |(record, messages)| {
                2 * (record.tx.as_ref().map_or(0, Vec::len)
                    + 64 * record.signatures.len()
                    + 32 * messages.len())
            }) + 512;
            if withdrawals.len() == WITHDRAWALS_PER_ANSWER
                || (size > budget && !withdrawals.is_empty())
            {
                next = Some(id);
                break;
            }
            budget = budget.saturating_sub(size);
            let mut answer = WithdrawalAnswer {
                id,
                account: recorded.account.0,
                chain: recorded.chain.name().into(),
                destination: hex::encode(recorded.destination),
                amount_micros: recorded.amount.to_string(),
                state: if vault.signing.contains(&id) {
                    "signing"
                } else {
                    "requested"
                }
                .into(),
                proposer: recorded.proposer.map(hex::encode),
                ..Default::default()
            };
            if let Some((record, messages)) = vault.signed.get(&id) {
                answer.state = "signed".into();
                answer.messages = messages.iter().map(hex::encode).collect();
                answer.signatures = record.signatures.iter().map(hex::encode).collect();
                answer.txid = record.txid();
                answer.tx_hex = record.tx.as_ref().map(hex::encode);
                answer.prevout_sats = record.prevout_sats.clone();
                answer.public_key = keys.map(|k| match recorded.chain {
                    bulwark_engine::PayoutChain::Bitcoin => k.bitcoin_xonly.clone(),
                    bulwark_engine::PayoutChain::Ed25519 => k.ed25519.clone(),
                });
                answer.output_key = keys
                    .filter(|_| recorded.chain == bulwark_engine::PayoutChain::Bitcoin)
                    .map(|k| k.bitcoin_xonly.clone());
            }
            withdrawals.push(answer);
        }
        Ok(bulwark_api::answers::WithdrawalsAnswer {
            vault: keys.map(|k| VaultKeysAnswer {
                bitcoin: k.bitcoin.clone(),
                bitcoin_xonly: k.bitcoin_xonly.clone(),
                ed25519: k.ed25519.clone(),
                threshold: k.threshold,
                members: k.members,
            }),
            withdrawals,
            next,
        })
    }

    fn book(&self, instrument: InstrumentId, depth: usize) -> Result<BookAnswer, Refusal> {
        let bulwark_consensus::replica::CommittedView { height, engine } = self.committed();
        let Some(book) = engine.book(instrument) else {
            return Err(Refusal::UnknownInstrument { instrument });
        };
        let (bids, asks) = book.depth(depth);
        let levels = |levels: Vec<(i64, i64)>| {
            levels
                .into_iter()
                .map(|(price, qty)| Level { price, qty })
                .collect()
        };
        Ok(BookAnswer {
            height,
            instrument: instrument.0,
            bids: levels(bids),
            asks: levels(asks),
            resting_orders: book.len(),
            mark_ticks: engine.mark(instrument),
        })
    }
}
