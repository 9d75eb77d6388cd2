//! FIX application messages to the engine's commands, and the engine's events back to FIX
//! execution reports. Pure functions; the connection carries them out.
//!
//! Prices: FIX Price (44) is a decimal in the quote currency; it must be a whole number of the
//! instrument's ticks. Sizes: OrderQty (38) is a whole number of lots. Symbol (55) is the
//! engine's symbol (`BTC-PERP`). TimeInForce (59): 0 or 1 rest (GTC), 3 IOC, 4 FOK; ExecInst
//! (18) `6` is post-only. OrdType (40): 1 market, 2 limit.

use bulwark_api::answers::{InstrumentAnswer, ReceiptEvent};
use bulwark_engine::command::{LimitOrder, SelfTradePrevention, TimeInForce};
use bulwark_engine::{ClientCommand, InstrumentId, Side};
use bulwark_fix::{Field, Message};

/// Why a FIX order cannot become a command: the text of the reject, and the FIX OrdRejReason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// OrdRejReason (103): 1 unknown symbol, 11 unsupported order characteristic, 99 other.
    pub code: u32,
    /// Text (58).
    pub text: String,
}

fn refuse(code: u32, text: impl Into<String>) -> Refusal {
    Refusal {
        code,
        text: text.into(),
    }
}

/// The instrument a Symbol names.
pub fn instrument<'a>(
    instruments: &'a [InstrumentAnswer],
    message: &Message,
) -> Result<&'a InstrumentAnswer, Refusal> {
    let symbol = message.get_str(55).unwrap_or("");
    instruments
        .iter()
        .find(|i| i.symbol == symbol)
        .ok_or_else(|| refuse(1, format!("unknown symbol {symbol:?}")))
}

/// Side (54).
pub fn side(message: &Message) -> Result<Side, Refusal> {
    match message.get(54) {
        Some(b"1") => Ok(Side::Buy),
        Some(b"2") => Ok(Side::Sell),
        _ => Err(refuse(11, "Side must be 1 (buy) or 2 (sell)")),
    }
}

/// A decimal with at most 9 fractional digits, times 10^9 (so micros are exact).
fn nanos(text: &str) -> Option<i128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || whole.len() > 18 || fraction.len() > 9 {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i128 = whole.parse().ok()?;
    let mut frac: i128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    for _ in fraction.len()..9 {
        frac *= 10;
    }
    Some(whole * 1_000_000_000 + frac)
}

/// Price (44) in ticks of `instrument`.
pub fn ticks(instrument: &InstrumentAnswer, text: &str) -> Result<i64, Refusal> {
    let nanos =
        nanos(text).ok_or_else(|| refuse(99, format!("Price {text:?} is not a decimal")))?;
    let tick_nanos = i128::from(instrument.tick_size_micros) * 1000;
    if tick_nanos <= 0 || nanos == 0 || nanos % tick_nanos != 0 {
        return Err(refuse(
            99,
            format!(
                "Price {text} is not a positive multiple of the tick ({} micros)",
                instrument.tick_size_micros
            ),
        ));
    }
    i64::try_from(nanos / tick_nanos).map_err(|_| refuse(99, "Price too large"))
}

/// A price in ticks as FIX Price text.
pub fn price_text(instrument: &InstrumentAnswer, ticks: i64) -> String {
    let micros = i128::from(ticks) * i128::from(instrument.tick_size_micros);
    let whole = micros / 1_000_000;
    let fraction = (micros % 1_000_000).abs();
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{fraction:06}")
            .trim_end_matches('0')
            .to_string()
    }
}

/// OrderQty (38) in lots.
pub fn lots(text: &str) -> Result<i64, Refusal> {
    let nanos =
        nanos(text).ok_or_else(|| refuse(99, format!("OrderQty {text:?} is not a decimal")))?;
    if nanos <= 0 || nanos % 1_000_000_000 != 0 {
        return Err(refuse(
            99,
            "OrderQty must be a positive whole number of lots",
        ));
    }
    i64::try_from(nanos / 1_000_000_000).map_err(|_| refuse(99, "OrderQty too large"))
}

/// A NewOrderSingle (35=D) as a command; `client_order_id` is the engine's reference (the
/// transaction's nonce).
pub fn new_order(
    instruments: &[InstrumentAnswer],
    message: &Message,
    client_order_id: u64,
) -> Result<(InstrumentId, ClientCommand), Refusal> {
    let instrument = instrument(instruments, message)?;
    let side = side(message)?;
    let qty = lots(message.get_str(38).unwrap_or(""))?;
    let post_only = message
        .get_str(18)
        .is_some_and(|inst| inst.split(' ').any(|i| i == "6"));
    let id = InstrumentId(instrument.id);
    match message.get(40) {
        Some(b"1") => Ok((
            id,
            ClientCommand::Market {
                instrument: id,
                side,
                qty,
                reduce_only: false,
                client_order_id,
            },
        )),
        Some(b"2") => {
            let price = ticks(instrument, message.get_str(44).unwrap_or(""))?;
            let tif = match message.get(59) {
                None | Some(b"0") | Some(b"1") => TimeInForce::Gtc,
                Some(b"3") => TimeInForce::Ioc,
                Some(b"4") => TimeInForce::Fok,
                Some(_) => return Err(refuse(11, "TimeInForce must be 0, 1, 3 or 4")),
            };
            Ok((
                id,
                ClientCommand::Limit(LimitOrder {
                    instrument: id,
                    side,
                    price,
                    qty,
                    tif,
                    post_only,
                    reduce_only: false,
                    stp: SelfTradePrevention::default(),
                    client_order_id,
                }),
            ))
        }
        _ => Err(refuse(11, "OrdType must be 1 (market) or 2 (limit)")),
    }
}

/// An OrderCancelReplaceRequest (35=G) of a resting limit order that has `filled` lots filled:
/// the new price in ticks and the new OrderQty, and the remaining lots the engine's amend
/// takes (OrderQty less what is filled). Side and symbol must stay; a price change or a
/// larger size loses time priority, a smaller size at the same price keeps it.
pub fn replace(order: &OrderState, message: &Message) -> Result<(i64, i64, i64), Refusal> {
    if message.get(40).is_some_and(|t| t != b"2") {
        return Err(refuse(11, "only a limit order (OrdType 2) can be replaced"));
    }
    if message
        .get_str(55)
        .is_some_and(|s| s != order.instrument.symbol)
    {
        return Err(refuse(99, "the symbol of an order cannot change"));
    }
    if side(message).is_ok_and(|s| s != order.side) {
        return Err(refuse(99, "the side of an order cannot change"));
    }
    let price = ticks(&order.instrument, message.get_str(44).unwrap_or(""))?;
    let qty = lots(message.get_str(38).unwrap_or(""))?;
    let remaining = qty - order.filled;
    if remaining <= 0 {
        return Err(refuse(
            99,
            "OrderQty must exceed the quantity already filled",
        ));
    }
    Ok((price, qty, remaining))
}

/// What a session remembers of one of its orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    /// ClOrdID.
    pub cl_ord_id: String,
    /// The engine's id, once accepted.
    pub order_id: Option<u64>,
    /// The instrument.
    pub instrument: InstrumentAnswer,
    /// Side.
    pub side: Side,
    /// Lots ordered.
    pub qty: i64,
    /// Lots filled.
    pub filled: i64,
    /// Ticks × lots filled (for the average price).
    pub filled_value: i128,
    /// Limit price in ticks (0 for market).
    pub price: i64,
    /// OrdStatus (39) now.
    pub status: &'static str,
}

/// What one event of a new order's outcome did to the order ([`OrderState::apply`]): the
/// same for every protocol; each session renders it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The engine accepted it: it has an id now (OrdStatus New).
    Accepted {
        /// The engine's id.
        order_id: u64,
    },
    /// It filled `qty` lots at `price` ticks as the taker, against `maker_order`.
    Filled {
        /// The resting order it filled against.
        maker_order: u64,
        /// Price, ticks.
        price: i64,
        /// Lots.
        qty: i64,
    },
    /// What was left of it was cancelled (an IOC's remainder, self-trade prevention, ...).
    Cancelled {
        /// Why.
        reason: bulwark_engine::event::CancelReason,
    },
    /// The engine refused the transaction.
    Rejected {
        /// Why.
        reason: bulwark_engine::RejectReason,
    },
}

impl OrderState {
    /// Applies one event of this new order's finalized outcome: its id, its fills as the
    /// taker, its remainder's cancel or the transaction's refusal update the order (status,
    /// filled size and value); `None` for an event that is not about it (another order's
    /// fill or cancel, a session's events).
    pub fn apply(&mut self, event: &ReceiptEvent) -> Option<Applied> {
        match event {
            ReceiptEvent::Accepted { order_id, .. } => {
                self.order_id = Some(*order_id);
                self.status = "0";
                Some(Applied::Accepted {
                    order_id: *order_id,
                })
            }
            ReceiptEvent::Fill {
                maker_order,
                taker_order,
                price,
                qty,
                ..
            } if Some(*taker_order) == self.order_id => {
                self.filled = self.filled.saturating_add(*qty);
                self.filled_value += i128::from(*price) * i128::from(*qty);
                self.status = if self.filled >= self.qty { "2" } else { "1" };
                Some(Applied::Filled {
                    maker_order: *maker_order,
                    price: *price,
                    qty: *qty,
                })
            }
            ReceiptEvent::Cancelled {
                order_id, reason, ..
            } if Some(*order_id) == self.order_id => {
                self.status = "4";
                Some(Applied::Cancelled { reason: *reason })
            }
            ReceiptEvent::Rejected { reason } => {
                self.status = "8";
                Some(Applied::Rejected { reason: *reason })
            }
            _ => None,
        }
    }

    /// The fields of an ExecutionReport (35=8) for this order: ExecType `exec_type`, with the
    /// last fill when there is one.
    pub fn report(
        &self,
        exec_id: String,
        exec_type: &str,
        last: Option<(i64, i64)>,
        text: Option<&str>,
    ) -> Vec<Field> {
        let side = match self.side {
            Side::Buy => "1",
            Side::Sell => "2",
        };
        let avg = if self.filled > 0 {
            price_text(
                &self.instrument,
                i64::try_from(self.filled_value / i128::from(self.filled)).unwrap_or(0),
            )
        } else {
            "0".into()
        };
        let leaves = if matches!(self.status, "2" | "4" | "8" | "C") {
            0
        } else {
            self.qty - self.filled
        };
        let mut fields = vec![
            Field::new(
                37,
                self.order_id
                    .map_or_else(|| "NONE".to_string(), |id| id.to_string()),
            ),
            Field::new(11, self.cl_ord_id.as_str()),
            Field::new(17, exec_id),
            Field::new(150, exec_type),
            Field::new(39, self.status),
            Field::new(55, self.instrument.symbol.as_str()),
            Field::new(54, side),
            Field::new(38, self.qty.to_string()),
        ];
        if self.price > 0 {
            fields.push(Field::new(44, price_text(&self.instrument, self.price)));
        }
        if let Some((price, qty)) = last {
            fields.push(Field::new(31, price_text(&self.instrument, price)));
            fields.push(Field::new(32, qty.to_string()));
        }
        fields.push(Field::new(151, leaves.to_string()));
        fields.push(Field::new(14, self.filled.to_string()));
        fields.push(Field::new(6, avg));
        if let Some(text) = text {
            fields.push(Field::new(58, text));
        }
        fields
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// BTC-PERP as the default listing has it (for the gateway's unit tests).
    pub(crate) fn btc() -> InstrumentAnswer {
        InstrumentAnswer {
            id: 0,
            symbol: "BTC-PERP".into(),
            tick_size_micros: 100_000,
            lot_size_nanos: 1_000_000,
        }
    }

    #[test]
    fn prices_and_sizes_map_exactly_or_are_refused() {
        let i = btc();
        assert_eq!(ticks(&i, "60000"), Ok(600_000));
        assert_eq!(ticks(&i, "60000.1"), Ok(600_001));
        assert_eq!(price_text(&i, 600_001), "60000.1");
        assert_eq!(price_text(&i, 600_000), "60000");
        for bad in [
            "60000.05",
            "0",
            "-1",
            "1e5",
            "",
            "abc",
            "1.0000000001",
            "99999999999999999999",
        ] {
            assert!(ticks(&i, bad).is_err(), "{bad}");
        }
        assert_eq!(lots("3"), Ok(3));
        assert_eq!(lots("3.0"), Ok(3));
        for bad in ["0", "1.5", "-2", ""] {
            assert!(lots(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_new_orders_outcome_applies_only_its_own_events() {
        let mut order = OrderState {
            cl_ord_id: "c1".into(),
            order_id: None,
            instrument: btc(),
            side: Side::Buy,
            qty: 5,
            filled: 0,
            filled_value: 0,
            price: 600_000,
            status: "A",
        };
        let fill = |maker_order, taker_order, price, qty| ReceiptEvent::Fill {
            maker_order,
            taker_order,
            price,
            qty,
            instrument: Some(0),
            taker_side: Some(Side::Buy),
        };
        // Before it has an id, no fill or cancel is its own.
        assert_eq!(order.apply(&fill(1, 7, 600_000, 1)), None);
        let accepted = ReceiptEvent::Accepted {
            order_id: 7,
            instrument: 0,
            side: Side::Buy,
            price: 600_000,
            qty: 5,
            client_order_id: 0,
        };
        assert_eq!(
            order.apply(&accepted),
            Some(Applied::Accepted { order_id: 7 })
        );
        assert_eq!((order.order_id, order.status), (Some(7), "0"));
        // Another order's fill (this one the maker) is not a taker fill of this order.
        assert_eq!(order.apply(&fill(7, 8, 600_000, 1)), None);
        assert_eq!(
            order.apply(&fill(3, 7, 599_990, 2)),
            Some(Applied::Filled {
                maker_order: 3,
                price: 599_990,
                qty: 2
            })
        );
        assert_eq!(
            (order.filled, order.filled_value, order.status),
            (2, 1_199_980, "1")
        );
        let cancelled = |order_id| ReceiptEvent::Cancelled {
            order_id,
            remaining: 3,
            reason: bulwark_engine::event::CancelReason::Requested,
        };
        assert_eq!(order.apply(&cancelled(9)), None);
        assert_eq!(
            order.apply(&cancelled(7)),
            Some(Applied::Cancelled {
                reason: bulwark_engine::event::CancelReason::Requested
            })
        );
        assert_eq!(order.status, "4");
        // Filled in full: status 2. A refusal is the transaction's, whatever the order.
        let mut full = OrderState {
            order_id: Some(7),
            status: "0",
            ..order.clone()
        };
        full.filled = 0;
        full.filled_value = 0;
        full.apply(&fill(3, 7, 600_000, 5));
        assert_eq!(full.status, "2");
        let rejected = ReceiptEvent::Rejected {
            reason: bulwark_engine::RejectReason::UnknownAccount,
        };
        assert_eq!(
            order.apply(&rejected),
            Some(Applied::Rejected {
                reason: bulwark_engine::RejectReason::UnknownAccount
            })
        );
        assert_eq!(order.status, "8");
    }
}
