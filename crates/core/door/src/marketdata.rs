//! FIX top-of-book market data: MarketDataRequest (V) read and checked, MarketDataSnapshot
//! FullRefresh (W), MarketDataIncrementalRefresh (X) and MarketDataRequestReject (Y) built.
//! Pure; the book is the one `quorum` nodes give alike (`ws::Books`, shared with the WebSocket
//! side).
//!
//! A request names an MDReqID (262, at most 64 bytes), SubscriptionRequestType (263: 0 a
//! snapshot, 1 a snapshot and then updates, 2 the end of a subscription), MarketDepth (264: 1,
//! the top of book, is what this gateway serves), MDUpdateType (265, with 263=1: 0 full
//! refreshes, 1 incremental), MDEntryTypes (269: 0 bid, 1 offer) and symbols (55).

use bulwark_api::answers::{InstrumentAnswer, Level};
use bulwark_fix::{Field, Message};

use crate::orders::price_text;

/// Longest MDReqID taken.
pub const REQ_ID_BYTES_MAX: usize = 64;
/// Symbols one request may name.
pub const SYMBOLS_MAX: usize = 8;

/// What a session asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A snapshot now (and updates, when `updates` is `Some`: true for incremental).
    Subscribe {
        /// MDReqID.
        id: String,
        /// The instruments, in the order named.
        instruments: Vec<InstrumentAnswer>,
        /// `None`: a snapshot only; `Some(incremental)`: then updates.
        updates: Option<bool>,
    },
    /// The end of subscription `id`.
    Unsubscribe {
        /// MDReqID.
        id: String,
    },
}

/// A refused request: MDReqRejReason (281) and Text (58).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// MDReqID, or "?" when it could not be read.
    pub id: String,
    /// MDReqRejReason: 0 unknown symbol, 4 unsupported SubscriptionRequestType, 5 unsupported
    /// MarketDepth, 6 unsupported MDUpdateType, 8 unsupported MDEntryType.
    pub reason: &'static str,
    /// Why.
    pub text: String,
}

impl Reject {
    /// The Y message's body.
    pub fn body(&self) -> Vec<Field> {
        vec![
            Field::new(262, self.id.as_str()),
            Field::new(281, self.reason),
            Field::new(58, self.text.as_str()),
        ]
    }
}

/// Reads a MarketDataRequest against the venue's instruments.
pub fn request(instruments: &[InstrumentAnswer], message: &Message) -> Result<Request, Reject> {
    let id = message
        .get_str(262)
        .filter(|s| !s.is_empty() && s.len() <= REQ_ID_BYTES_MAX)
        .map(str::to_string);
    let reject = |reason, text: &str| Reject {
        id: id.clone().unwrap_or_else(|| "?".into()),
        reason,
        text: text.into(),
    };
    let Some(id) = id.clone() else {
        return Err(reject("0", "MDReqID (262) must be 1 to 64 bytes"));
    };
    let updates = match message.get(263) {
        Some(b"0") => None,
        Some(b"1") => match message.get(265) {
            None | Some(b"0") => Some(false),
            Some(b"1") => Some(true),
            Some(_) => return Err(reject("6", "MDUpdateType (265) must be 0 or 1")),
        },
        Some(b"2") => return Ok(Request::Unsubscribe { id }),
        _ => {
            return Err(reject(
                "4",
                "SubscriptionRequestType (263) must be 0, 1 or 2",
            ))
        }
    };
    if message.get(264) != Some(b"1") {
        return Err(reject(
            "5",
            "MarketDepth (264) must be 1: this gateway serves the top of book",
        ));
    }
    let fields = |tag: u32| message.fields.iter().filter(move |f| f.tag == tag);
    if fields(269).next().is_none() || fields(269).any(|f| f.value != b"0" && f.value != b"1") {
        return Err(reject(
            "8",
            "MDEntryType (269) must be 0 (bid) or 1 (offer)",
        ));
    }
    let symbols: Vec<&[u8]> = fields(55).map(|f| f.value.as_slice()).collect();
    if symbols.is_empty() || symbols.len() > SYMBOLS_MAX {
        return Err(reject(
            "0",
            &format!("name 1 to {SYMBOLS_MAX} symbols (55)"),
        ));
    }
    let mut chosen: Vec<InstrumentAnswer> = Vec::new();
    for symbol in symbols {
        let Some(instrument) = instruments.iter().find(|i| i.symbol.as_bytes() == symbol) else {
            return Err(reject("0", "unknown symbol"));
        };
        if !chosen.iter().any(|c| c.id == instrument.id) {
            chosen.push(instrument.clone());
        }
    }
    Ok(Request::Subscribe {
        id,
        instruments: chosen,
        updates,
    })
}

/// The top of one book: its best bid and best offer.
pub type Top = (Option<Level>, Option<Level>);

fn entry(instrument: &InstrumentAnswer, kind: &str, level: Level) -> [Field; 3] {
    [
        Field::new(269, kind),
        Field::new(270, price_text(instrument, level.price)),
        Field::new(271, level.qty.to_string()),
    ]
}

/// A MarketDataSnapshotFullRefresh (W) body of one instrument's top of book.
pub fn snapshot(id: &str, instrument: &InstrumentAnswer, top: Top) -> Vec<Field> {
    let mut entries: Vec<Field> = Vec::new();
    for (kind, level) in [("0", top.0), ("1", top.1)] {
        if let Some(level) = level {
            entries.extend(entry(instrument, kind, level));
        }
    }
    let mut body = vec![
        Field::new(262, id),
        Field::new(55, instrument.symbol.as_str()),
        Field::new(268, (entries.len() / 3).to_string()),
    ];
    body.extend(entries);
    body
}

/// A MarketDataIncrementalRefresh (X) body from `before` to `now`, or `None` when the top did
/// not change: per side, New (279=0) where there was none, Change (1), or Delete (2).
pub fn incremental(
    id: &str,
    instrument: &InstrumentAnswer,
    before: Top,
    now: Top,
) -> Option<Vec<Field>> {
    let mut entries: Vec<Field> = Vec::new();
    let mut count = 0;
    for (kind, was, is) in [("0", before.0, now.0), ("1", before.1, now.1)] {
        let action = match (was, is) {
            (a, b) if a == b => continue,
            (None, Some(_)) => "0",
            (Some(_), Some(_)) => "1",
            (Some(_), None) => "2",
            (None, None) => continue,
        };
        count += 1;
        entries.push(Field::new(279, action));
        entries.push(Field::new(269, kind));
        entries.push(Field::new(55, instrument.symbol.as_str()));
        let level = is.or(was).unwrap_or_default();
        entries.push(Field::new(270, price_text(instrument, level.price)));
        if action != "2" {
            entries.push(Field::new(271, level.qty.to_string()));
        }
    }
    if count == 0 {
        return None;
    }
    let mut body = vec![Field::new(262, id), Field::new(268, count.to_string())];
    body.extend(entries);
    Some(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bulwark_fix::BeginString;

    use crate::orders::tests::btc;

    fn message(fields: &[(u32, &str)]) -> Message {
        let mut all = vec![Field::new(35, "V")];
        all.extend(fields.iter().map(|(t, v)| Field::new(*t, *v)));
        Message {
            begin: BeginString::Fix44,
            fields: all,
        }
    }

    #[test]
    fn requests_are_read_or_refused_with_the_fix_reason() {
        let i = [btc()];
        let good = [
            (262, "m1"),
            (263, "1"),
            (264, "1"),
            (265, "1"),
            (267, "2"),
            (269, "0"),
            (269, "1"),
            (146, "1"),
            (55, "BTC-PERP"),
        ];
        assert_eq!(
            request(&i, &message(&good)).unwrap(),
            Request::Subscribe {
                id: "m1".into(),
                instruments: vec![btc()],
                updates: Some(true)
            }
        );
        let reason = |fields: &[(u32, &str)]| request(&i, &message(fields)).unwrap_err().reason;
        assert_eq!(
            reason(&[
                (262, "m"),
                (263, "1"),
                (264, "5"),
                (269, "0"),
                (55, "BTC-PERP")
            ]),
            "5"
        );
        assert_eq!(
            reason(&[
                (262, "m"),
                (263, "0"),
                (264, "1"),
                (269, "2"),
                (55, "BTC-PERP")
            ]),
            "8"
        );
        assert_eq!(
            reason(&[
                (262, "m"),
                (263, "0"),
                (264, "1"),
                (269, "0"),
                (55, "ETH-PERP")
            ]),
            "0"
        );
        assert_eq!(
            reason(&[
                (262, "m"),
                (263, "9"),
                (264, "1"),
                (269, "0"),
                (55, "BTC-PERP")
            ]),
            "4"
        );
        assert_eq!(
            request(&i, &message(&[(262, "m"), (263, "2")])).unwrap(),
            Request::Unsubscribe { id: "m".into() }
        );
    }

    #[test]
    fn snapshots_and_increments_say_exactly_what_changed() {
        let i = btc();
        let bid = Level {
            price: 600_000,
            qty: 3,
        };
        let ask = Level {
            price: 600_010,
            qty: 1,
        };
        let w = snapshot("m", &i, (Some(bid), None));
        assert_eq!(w[2], Field::new(268, "1"));
        assert_eq!(w[4], Field::new(270, "60000"));
        assert_eq!(
            incremental("m", &i, (Some(bid), None), (Some(bid), None)),
            None
        );
        let x = incremental("m", &i, (Some(bid), None), (None, Some(ask))).unwrap();
        let actions: Vec<&[u8]> = x
            .iter()
            .filter(|f| f.tag == 279)
            .map(|f| f.value.as_slice())
            .collect();
        assert_eq!(actions, [b"2".as_slice(), b"0".as_slice()]);
    }
}
