//! The typed answers a node gives to status, account and book queries. They travel as JSON in
//! the [`crate::wire`] frames (`0x82`–`0x84`), so every field name here is part of the protocol:
//! renaming one is a breaking change. Money that may exceed 2⁵³ travels as a decimal string.

use bulwark_engine::command::StopDirection;
use bulwark_engine::oracle::GuardKind;
use bulwark_engine::Side;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's status: who it is, how far it got, how it sees its peers and the oracle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's configured name.
    pub name: String,
    /// Its data center.
    pub data_center: String,
    /// The committee's identity (group public key, hex); empty until the genesis DKG is done.
    pub identity: String,
    /// Attested admission per peer (`data-center/key-prefix`), or `None` when admission is off.
    pub admission: Option<BTreeMap<String, PeerAdmission>>,
    /// Newest committed height (0 before the first block).
    pub height: u64,
    /// State root after that height, hex (empty before the first block).
    pub root: String,
    /// Whether that height's finalization certificate is in the log.
    pub last_height_certified: bool,
    /// Client transactions finalized since start (accepted or refused by the engine).
    pub finalized_txs: u64,
    /// Of those, the ones the engine refused when it executed them.
    #[serde(default)]
    pub finalized_rejected: u64,
    /// Transactions waiting in the mempool.
    pub mempool: usize,
    /// Proposals this node refused.
    pub refused_blocks: u64,
    /// Fault evidence recorded since start, per peer (hex key).
    pub fault_evidence: BTreeMap<String, u64>,
    /// Submit-to-finalized samples kept for the percentiles below.
    pub latency_samples: usize,
    /// Submit-to-finalized p50 of this node's own submissions, ms.
    pub latency_p50_ms: Option<u32>,
    /// Submit-to-finalized p99, ms.
    pub latency_p99_ms: Option<u32>,
    /// Certified index per underlying, micros (`None`: never certified).
    pub index_micros: Vec<Option<i64>>,
    /// Last certified oracle round per underlying.
    pub oracle_rounds: Vec<Option<u64>>,
    /// Oracle rounds finalized since start.
    pub oracle_rounds_finalized: u64,
    /// Observation-to-finalized p50 of oracle rounds, ms.
    pub oracle_latency_p50_ms: Option<u32>,
    /// Observation-to-finalized p99, ms.
    pub oracle_latency_p99_ms: Option<u32>,
    /// Each underlying's venue sources and their counters (null with the synthetic feed); the
    /// shape is the oracle crate's `Sources::status`.
    pub oracle_sources: serde_json::Value,
    /// Engine snapshots.
    pub snapshots: SnapshotStatus,
    /// The committee epoch of the newest committed state (0 until the first epoch change).
    #[serde(default)]
    pub epoch: u64,
    /// Each committee member and former member (hex key prefix, 16 digits) and its trust:
    /// `admitted`, `suspected` (this node holds accusations against it), `quarantined` (leaves at
    /// the next epoch) or `removed` (left at an epoch change). Empty without a sentinel committee.
    #[serde(default)]
    pub members: BTreeMap<String, String>,
    /// Chain deposits credited in the newest committed state (each certified by n − f members).
    #[serde(default)]
    pub deposits_credited: u64,
    /// Withdrawals the newest committed state recorded.
    #[serde(default)]
    pub withdrawals_requested: u64,
    /// Withdrawals this node holds a checked vault signature for.
    #[serde(default)]
    pub withdrawals_signed: u64,
    /// Signing rounds this node coordinated to a signature (its newest 256): how many, and the
    /// p50 and p99 from its commit request to the checked signature, ms.
    #[serde(default)]
    pub vault_rounds: u64,
    /// See `vault_rounds`.
    #[serde(default)]
    pub vault_round_p50_ms: Option<f64>,
    /// See `vault_rounds`.
    #[serde(default)]
    pub vault_round_p99_ms: Option<f64>,
    /// The p50 round trip to the other members on the vault's signing channel (a ping every
    /// 2 s), ms: the network part of a signing round's bound.
    #[serde(default)]
    pub vault_rtt_p50_ms: Option<f64>,
    /// The p50 time this node took to release a signature share once asked (its checks, the
    /// synced watermark and nonce files, round 2), ms; and of that, the synced writes.
    #[serde(default)]
    pub vault_share_p50_ms: Option<f64>,
    /// See `vault_share_p50_ms`.
    #[serde(default)]
    pub vault_sync_p50_ms: Option<f64>,
    /// The venue's instruments (what a gateway maps symbols, prices and sizes with).
    #[serde(default)]
    pub instruments: Vec<InstrumentAnswer>,
}

/// One instrument of the venue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentAnswer {
    /// Its id.
    pub id: u32,
    /// Its symbol, such as `BTC-PERP`.
    pub symbol: String,
    /// Price of one tick, micros.
    pub tick_size_micros: i64,
    /// Size of one lot, 10⁻⁹ units of the underlying.
    pub lot_size_nanos: i64,
}

/// How a node sees one peer's attested admission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAdmission {
    /// Whether the peer may connect now (a current affirming or warning appraisal).
    pub admitted: bool,
    /// The last appraisal's status (`affirming`, `warning`, `contraindicated`), if any.
    pub status: Option<String>,
    /// The reasons behind it.
    pub reasons: Vec<String>,
    /// Whether the peer is cut off (a contraindicated appraisal).
    pub cut_off: bool,
    /// When it was cut off, Unix ms.
    pub cut_off_at_ms: Option<u64>,
    /// Appraisals made of it since start.
    pub appraisals: u64,
    /// When the last appraisal of it was made, Unix ms (whatever its outcome).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_appraisal_at_ms: Option<u64>,
    /// Whether its TPM attestation key is enrolled (TPM mode).
    pub ak_enrolled: bool,
}

/// Engine snapshots of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// The snapshot height the engine was restored from at start, if any.
    pub restored_from: Option<u64>,
    /// The newest snapshot written since start.
    pub last_written: Option<u64>,
}

/// Most withdrawals in one [`WithdrawalsAnswer`].
pub const WITHDRAWALS_PER_ANSWER: usize = 256;

/// Most receipts in one [`ReceiptsAnswer`].
pub const RECEIPTS_PER_ANSWER: usize = 1024;
/// Longest a receipts request may wait for a new block, milliseconds.
pub const RECEIPTS_WAIT_MS_MAX: u32 = 1000;

/// What one client transaction of a finalized block did, or (acting id `u64::MAX`, nonce 0,
/// after the transactions') a piece of what the block itself did: fills of liquidations and
/// triggered stops, cancels of silenced sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptAnswer {
    /// The block's height.
    pub height: u64,
    /// Its position among the block's receipts.
    pub index: u32,
    /// The acting id (an account's, or a session's; `u64::MAX` for the block's own).
    pub account: u64,
    /// The transaction's nonce (0 for the block's own).
    pub nonce: u64,
    /// What it did (the engine's events a gateway reports on; others are left out).
    pub events: Vec<ReceiptEvent>,
}

/// One of a transaction's (or a block's own) engine events, in the terms a gateway reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptEvent {
    /// An order was accepted.
    Accepted {
        /// The engine's id for it.
        order_id: u64,
        /// The instrument.
        instrument: u32,
        /// Side.
        side: Side,
        /// Limit price, ticks (0 for market).
        price: i64,
        /// Lots.
        qty: i64,
        /// The client's reference.
        client_order_id: u64,
    },
    /// The transaction was refused.
    Rejected {
        /// Why.
        reason: bulwark_engine::RejectReason,
    },
    /// A trade.
    Fill {
        /// The resting order.
        maker_order: u64,
        /// The incoming order.
        taker_order: u64,
        /// Price, ticks.
        price: i64,
        /// Lots.
        qty: i64,
        /// The instrument (each fill says its own: a block's own receipt holds fills of
        /// several instruments; `None` from a node that does not say).
        #[serde(default)]
        instrument: Option<u32>,
        /// The incoming order's side (`None` from a node that does not say).
        #[serde(default)]
        taker_side: Option<Side>,
    },
    /// An order left the book without filling.
    Cancelled {
        /// Which.
        order_id: u64,
        /// Lots that were left.
        remaining: i64,
        /// Why.
        reason: bulwark_engine::event::CancelReason,
    },
    /// A resting order was changed (amended, or replaced in FIX's words).
    Amended {
        /// Which.
        order_id: u64,
        /// New price, ticks.
        price: i64,
        /// New remaining lots.
        qty: i64,
        /// Whether it kept its place in the queue.
        kept_priority: bool,
    },
    /// A trading session was opened.
    SessionOpened {
        /// Its slot.
        slot: u8,
        /// When it ends, Unix milliseconds.
        expires_ms: u64,
    },
    /// A trading session ended.
    SessionClosed {
        /// Its slot.
        slot: u8,
        /// It had expired.
        expired: bool,
    },
}

impl ReceiptEvent {
    /// The gateway's view of an engine event; `None` for events a gateway does not report.
    pub fn of(event: &bulwark_engine::Event) -> Option<ReceiptEvent> {
        use bulwark_engine::Event;
        Some(match event {
            Event::Accepted {
                order_id,
                instrument,
                client_order_id,
                side,
                price,
                qty,
                ..
            } => ReceiptEvent::Accepted {
                order_id: order_id.0,
                instrument: instrument.0,
                side: *side,
                price: *price,
                qty: *qty,
                client_order_id: *client_order_id,
            },
            Event::Rejected { reason, .. } => ReceiptEvent::Rejected { reason: *reason },
            Event::Fill {
                instrument,
                maker_order,
                taker_order,
                taker_side,
                price,
                qty,
                ..
            } => ReceiptEvent::Fill {
                maker_order: maker_order.0,
                taker_order: taker_order.0,
                price: *price,
                qty: *qty,
                instrument: Some(instrument.0),
                taker_side: Some(*taker_side),
            },
            Event::Cancelled {
                order_id,
                remaining,
                reason,
                ..
            } => ReceiptEvent::Cancelled {
                order_id: order_id.0,
                remaining: *remaining,
                reason: *reason,
            },
            Event::Amended {
                order_id,
                price,
                qty,
                kept_priority,
            } => ReceiptEvent::Amended {
                order_id: order_id.0,
                price: *price,
                qty: *qty,
                kept_priority: *kept_priority,
            },
            Event::SessionOpened {
                slot, expires_ms, ..
            } => ReceiptEvent::SessionOpened {
                slot: *slot,
                expires_ms: *expires_ms,
            },
            Event::SessionClosed { slot, expired, .. } => ReceiptEvent::SessionClosed {
                slot: *slot,
                expired: *expired,
            },
            _ => return None,
        })
    }
}

/// Receipts of finalized blocks from a cursor on, as one node saw them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptsAnswer {
    /// The node's finalized height.
    pub height: u64,
    /// The oldest height whose receipts the node still holds (0 when none).
    pub oldest: u64,
    /// Receipts in (height, index) order, at most [`RECEIPTS_PER_ANSWER`].
    pub receipts: Vec<ReceiptAnswer>,
    /// The cursor to ask from next: (height, index).
    pub next: (u64, u32),
}

/// The ledger's withdrawals and what the vault did with them, as one node saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalsAnswer {
    /// The vault's public keys, once this node holds its shares.
    pub vault: Option<VaultKeysAnswer>,
    /// Withdrawals in id order.
    pub withdrawals: Vec<WithdrawalAnswer>,
    /// The id to ask from for the next page, when there is more.
    pub next: Option<u64>,
}

/// The vault's public keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultKeysAnswer {
    /// The taproot group key (the BIP341 output key Q), compressed, hex.
    pub bitcoin: String,
    /// The taproot output key, x-only, hex: the vault's address is `OP_1 <this>`.
    pub bitcoin_xonly: String,
    /// The Ed25519 group key, hex.
    pub ed25519: String,
    /// Signers needed.
    pub threshold: u16,
    /// Members holding shares.
    pub members: u16,
}

/// One withdrawal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawalAnswer {
    /// The ledger's id.
    pub id: u64,
    /// Whose.
    pub account: u64,
    /// `bitcoin` or `ed25519`.
    pub chain: String,
    /// Where to, hex (x-only key, or Ed25519 key).
    pub destination: String,
    /// Micros debited (decimal string).
    pub amount_micros: String,
    /// `requested` (debited, not signed), `signing` (this node released a share or coordinates
    /// a round) or `signed`.
    pub state: String,
    /// The consensus key (hex) of the member that proposed the block debiting it: the vault's
    /// first signing coordinator.
    #[serde(default)]
    pub proposer: Option<String>,
    /// The group's public key that signed (x-only for taproot), hex, once signed.
    pub public_key: Option<String>,
    /// Bitcoin: the output key the transaction spends from (the vault's), hex, once signed.
    pub output_key: Option<String>,
    /// The signed messages, hex: per input the BIP341 sighash, or the Ed25519 message.
    pub messages: Vec<String>,
    /// The signatures, hex (64 bytes each).
    pub signatures: Vec<String>,
    /// Bitcoin: the signed transaction's id.
    pub txid: Option<String>,
    /// Bitcoin: the raw signed transaction, hex.
    pub tx_hex: Option<String>,
    /// Bitcoin: the value in sats of each output the transaction spends (the sighash commits
    /// to them), in input order.
    #[serde(default)]
    pub prevout_sats: Vec<u64>,
}

/// One account's committed state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountAnswer {
    /// The committed height this answer reflects (0 from a node that does not say). A
    /// reader that already saw height h counts only answers at h or above.
    #[serde(default)]
    pub height: u64,
    /// The account id.
    pub account: u64,
    /// Its last accepted nonce (the next transaction needs a higher one).
    pub nonce: u64,
    /// Its registered Ed25519 key, hex (what its transactions and logons are checked under).
    #[serde(default)]
    pub public_key: String,
    /// Cash, micros (decimal string: it may exceed 2⁵³).
    pub cash_micros: String,
    /// Open positions.
    pub positions: Vec<PositionAnswer>,
    /// Resting orders.
    pub open_orders: Vec<OpenOrder>,
    /// Resting stops.
    pub stops: Vec<StopAnswer>,
    /// Margin standing at the committed marks, when it can be computed.
    pub standing: Option<StandingAnswer>,
    /// Why the standing cannot be computed, when it cannot.
    pub standing_error: Option<String>,
}

/// One position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionAnswer {
    /// The instrument.
    pub instrument: u32,
    /// Signed lots: positive long, negative short.
    pub qty: i64,
    /// Signed entry value, micros (decimal string).
    pub cost_micros: String,
}

/// One resting order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrder {
    /// The instrument.
    pub instrument: u32,
    /// The order's id (cancel it by this).
    pub order_id: u64,
    /// Buy or sell.
    pub side: Side,
    /// Price, ticks.
    pub price: i64,
    /// Remaining lots.
    pub qty: i64,
}

/// One resting stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAnswer {
    /// The stop's id (cancel it by this).
    pub order_id: u64,
    /// The instrument.
    pub instrument: u32,
    /// The side of the order placed on trigger.
    pub side: Side,
    /// Which way the mark must move.
    pub direction: StopDirection,
    /// Trigger price, ticks.
    pub trigger_price: i64,
    /// Limit price of the order placed on trigger (`None`: a market order).
    pub limit_price: Option<i64>,
    /// Lots.
    pub qty: i64,
    /// The order placed on trigger may only reduce the position.
    pub reduce_only: bool,
    /// The oracle guard holding it back, if one is open.
    pub held_by: Option<GuardKind>,
}

/// Margin standing, micros as decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingAnswer {
    /// Cash plus unrealized profit plus option value.
    pub equity_micros: String,
    /// The unrealized part.
    pub unrealized_micros: String,
    /// Initial requirement.
    pub initial_micros: String,
    /// Maintenance requirement.
    pub maintenance_micros: String,
}

/// The top of one book.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookAnswer {
    /// The committed height this answer reflects (0 from a node that does not say).
    #[serde(default)]
    pub height: u64,
    /// The instrument.
    pub instrument: u32,
    /// Bid levels, best first.
    pub bids: Vec<Level>,
    /// Ask levels, best first.
    pub asks: Vec<Level>,
    /// Resting orders on the book.
    pub resting_orders: usize,
    /// The instrument's mark, ticks.
    pub mark_ticks: Option<i64>,
}

/// One price level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// Price, ticks.
    pub price: i64,
    /// Lots resting at that price.
    pub qty: i64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_round_trip_through_json() {
        let status = NodeStatus {
            name: "n0".into(),
            height: 7,
            admission: Some(BTreeMap::from([(
                "dc-1/abcd".to_string(),
                PeerAdmission {
                    admitted: true,
                    status: Some("affirming".into()),
                    ..PeerAdmission::default()
                },
            )])),
            index_micros: vec![Some(60_000_000_000), None],
            ..NodeStatus::default()
        };
        let text = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<NodeStatus>(&text).unwrap(), status);
        let account = AccountAnswer {
            height: 7,
            account: 3,
            open_orders: vec![OpenOrder {
                instrument: 0,
                order_id: 9,
                side: Side::Buy,
                price: 600_000,
                qty: 2,
            }],
            ..AccountAnswer::default()
        };
        let text = serde_json::to_string(&account).unwrap();
        assert!(text.contains("\"side\":\"buy\""), "{text}");
        assert_eq!(
            serde_json::from_str::<AccountAnswer>(&text).unwrap(),
            account
        );
    }
}
