//! Binance WebSocket messages: `bookTicker`, `depthUpdate` and `trade`, bare or inside a
//! combined-stream wrapper `{"stream": …, "data": …}`, one JSON message per line, optionally
//! prefixed by a receive timestamp in nanoseconds and a space (the capture format). The REST
//! depth snapshot (`{"lastUpdateId": …}`) that captures interleave is recognised too.
//!
//! Prices become integer micros and quantities integer nanos, parsed from the decimal strings
//! exactly (no floating point); a digit beyond that precision that is not zero is refused.
//! Every failure is a typed [`AdapterError`]; nothing here panics on input.

use serde_json::Value;

/// The longest line accepted, bytes (the captures' longest is about 64 KiB).
pub const LINE_BYTES_MAX: usize = 256 * 1024;

/// Most price levels accepted per side of one depth message.
pub const DEPTH_LEVELS_MAX: usize = 5_000;

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The line is longer than [`LINE_BYTES_MAX`]; it was not parsed.
    #[error("line of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The receive-time prefix is not a decimal integer of nanoseconds.
    #[error("the receive-time prefix is not an integer number of nanoseconds")]
    BadTimestamp,
    /// The message is not JSON (the parser's message, which names the position).
    #[error("not JSON: {0}")]
    Json(String),
    /// A field the message type needs is missing or has the wrong JSON type.
    #[error("field `{0}` is missing or has the wrong type")]
    MissingField(&'static str),
    /// A decimal string is malformed, too precise, or too large.
    #[error("field `{0}` is not a decimal number in range")]
    BadNumber(&'static str),
    /// A depth message has more levels than [`DEPTH_LEVELS_MAX`].
    #[error("depth message with {0} levels on one side exceeds the limit")]
    TooManyLevels(usize),
    /// A well-formed message of a type this adapter does not read (e.g. `aggTrade`).
    #[error("unsupported message type")]
    Unsupported,
}

/// One price level: price micros, quantity nanos (0 removes the level in a diff).
pub type Level = (i64, i64);

/// A parsed venue message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VenueMessage {
    /// Best bid and offer.
    BookTicker {
        /// Order-book update id.
        update_id: u64,
        /// Best bid, micros.
        bid_micros: i64,
        /// Best bid size, nanos.
        bid_qty_nanos: i64,
        /// Best ask, micros.
        ask_micros: i64,
        /// Best ask size, nanos.
        ask_qty_nanos: i64,
        /// Venue event time, ms (absent on spot).
        event_time_ms: Option<u64>,
    },
    /// An incremental depth update (a diff: it needs a snapshot to form a book).
    Depth {
        /// Venue event time, ms.
        event_time_ms: u64,
        /// First update id in the event.
        first_update_id: u64,
        /// Final update id in the event.
        final_update_id: u64,
        /// Changed bid levels.
        bids: Vec<Level>,
        /// Changed ask levels.
        asks: Vec<Level>,
    },
    /// A REST depth snapshot.
    Snapshot {
        /// The last update id it includes.
        last_update_id: u64,
        /// Bid levels.
        bids: Vec<Level>,
        /// Ask levels.
        asks: Vec<Level>,
    },
    /// A trade.
    Trade {
        /// Venue event time, ms.
        event_time_ms: u64,
        /// Price, micros.
        price_micros: i64,
        /// Quantity, nanos.
        qty_nanos: i64,
        /// Whether the buyer was the maker (the aggressor sold).
        buyer_is_maker: bool,
    },
}

/// Splits a capture line into its optional receive time (ns) and the JSON text.
pub fn split_line(line: &str) -> Result<(Option<u64>, &str), AdapterError> {
    if line.len() > LINE_BYTES_MAX {
        return Err(AdapterError::TooLong {
            len: line.len(),
            max: LINE_BYTES_MAX,
        });
    }
    let line = line.trim_end_matches(['\r', '\n']);
    match line.split_once(' ') {
        Some((prefix, rest)) if !prefix.starts_with('{') => {
            let ns = prefix.parse().map_err(|_| AdapterError::BadTimestamp)?;
            Ok((Some(ns), rest))
        }
        _ => Ok((None, line)),
    }
}

/// Parses one line: the optional receive time (ns) and the message.
pub fn parse_line(line: &str) -> Result<(Option<u64>, VenueMessage), AdapterError> {
    let (time, json) = split_line(line)?;
    Ok((time, parse_message(json)?))
}

/// Parses one JSON message (bare or in a combined-stream wrapper).
pub fn parse_message(json: &str) -> Result<VenueMessage, AdapterError> {
    if json.len() > LINE_BYTES_MAX {
        return Err(AdapterError::TooLong {
            len: json.len(),
            max: LINE_BYTES_MAX,
        });
    }
    let value: Value = serde_json::from_str(json).map_err(|e| AdapterError::Json(e.to_string()))?;
    let msg = match value.get("data") {
        Some(data) if value.get("stream").is_some() => data,
        _ => &value,
    };
    if msg.get("lastUpdateId").is_some() {
        return Ok(VenueMessage::Snapshot {
            last_update_id: uint(msg, "lastUpdateId")?,
            bids: levels(msg, "bids")?,
            asks: levels(msg, "asks")?,
        });
    }
    let kind = msg.get("e").and_then(Value::as_str);
    // Spot bookTicker messages carry no "e"; they are recognised by their fields.
    let is_ticker = kind == Some("bookTicker")
        || (kind.is_none() && msg.get("b").is_some_and(Value::is_string) && msg.get("a").is_some());
    if is_ticker {
        return Ok(VenueMessage::BookTicker {
            update_id: uint(msg, "u")?,
            bid_micros: decimal(msg, "b", 6)?,
            bid_qty_nanos: decimal(msg, "B", 9)?,
            ask_micros: decimal(msg, "a", 6)?,
            ask_qty_nanos: decimal(msg, "A", 9)?,
            event_time_ms: msg.get("E").and_then(Value::as_u64),
        });
    }
    match kind {
        Some("depthUpdate") => Ok(VenueMessage::Depth {
            event_time_ms: uint(msg, "E")?,
            first_update_id: uint(msg, "U")?,
            final_update_id: uint(msg, "u")?,
            bids: levels(msg, "b")?,
            asks: levels(msg, "a")?,
        }),
        Some("trade") => Ok(VenueMessage::Trade {
            event_time_ms: uint(msg, "E")?,
            price_micros: decimal(msg, "p", 6)?,
            qty_nanos: decimal(msg, "q", 9)?,
            buyer_is_maker: msg
                .get("m")
                .and_then(Value::as_bool)
                .ok_or(AdapterError::MissingField("m"))?,
        }),
        _ => Err(AdapterError::Unsupported),
    }
}

fn uint(msg: &Value, field: &'static str) -> Result<u64, AdapterError> {
    msg.get(field)
        .and_then(Value::as_u64)
        .ok_or(AdapterError::MissingField(field))
}

fn decimal(msg: &Value, field: &'static str, scale: u32) -> Result<i64, AdapterError> {
    let text = msg
        .get(field)
        .and_then(Value::as_str)
        .ok_or(AdapterError::MissingField(field))?;
    parse_fixed(text, scale).ok_or(AdapterError::BadNumber(field))
}

fn levels(msg: &Value, field: &'static str) -> Result<Vec<Level>, AdapterError> {
    let list = msg
        .get(field)
        .and_then(Value::as_array)
        .ok_or(AdapterError::MissingField(field))?;
    if list.len() > DEPTH_LEVELS_MAX {
        return Err(AdapterError::TooManyLevels(list.len()));
    }
    list.iter()
        .map(|level| {
            let pair = level.as_array().filter(|p| p.len() == 2);
            let pair = pair.ok_or(AdapterError::MissingField(field))?;
            let price = pair[0].as_str().and_then(|t| parse_fixed(t, 6));
            let qty = pair[1].as_str().and_then(|t| parse_fixed(t, 9));
            match (price, qty) {
                (Some(p), Some(q)) => Ok((p, q)),
                _ => Err(AdapterError::BadNumber(field)),
            }
        })
        .collect()
}

/// Parses a non-negative decimal string into an integer scaled by 10^`scale`, exactly: digits
/// beyond the scale must be zeros. `None` for anything else (signs, exponents, overflow).
pub fn parse_fixed(text: &str, scale: u32) -> Option<i64> {
    if text.is_empty() || text.len() > 40 {
        return None;
    }
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale_len = scale as usize;
    let (kept, dropped) = frac.split_at(frac.len().min(scale_len));
    if dropped.bytes().any(|b| b != b'0') {
        return None;
    }
    let mut value: i64 = 0;
    for b in whole.bytes().chain(kept.bytes()) {
        value = value.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    for _ in kept.len()..scale_len {
        value = value.checked_mul(10)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_fixed("61837.63000000", 6), Some(61_837_630_000));
        assert_eq!(parse_fixed("1001", 9), Some(1_001_000_000_000));
        assert_eq!(parse_fixed("0.00000001", 9), Some(10));
        assert_eq!(parse_fixed("0.0000000001", 9), None);
        assert_eq!(parse_fixed("-1", 6), None);
        assert_eq!(parse_fixed("1e5", 6), None);
        assert_eq!(parse_fixed("99999999999999999999", 6), None);
        assert_eq!(parse_fixed(".5", 6), None);
    }

    #[test]
    fn capture_lines_parse() {
        let ticker = r#"1723161254087891268 {"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
        let (t, m) = parse_line(ticker).expect("parses");
        assert_eq!(t, Some(1_723_161_254_087_891_268));
        assert!(matches!(
            m,
            VenueMessage::BookTicker {
                bid_micros: 61_837_630_000,
                ask_micros: 61_837_640_000,
                event_time_ms: None,
                ..
            }
        ));
        let trade = r#"{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}"#;
        assert_eq!(
            parse_line(trade).expect("parses"),
            (
                None,
                VenueMessage::Trade {
                    event_time_ms: 1_723_161_256_322,
                    price_micros: 61_800_300_000,
                    qty_nanos: 6_000_000,
                    buyer_is_maker: false
                }
            )
        );
        let depth = r#"1 {"stream":"x","data":{"e":"depthUpdate","E":5,"s":"B","U":1,"u":2,"b":[["1.5","0"]],"a":[]}}"#;
        assert!(matches!(
            parse_line(depth),
            Ok((Some(1), VenueMessage::Depth { .. }))
        ));
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert_eq!(parse_line("abc {}"), Err(AdapterError::BadTimestamp));
        assert!(matches!(parse_line("1 {"), Err(AdapterError::Json(_))));
        assert_eq!(
            parse_line(r#"{"e":"aggTrade"}"#),
            Err(AdapterError::Unsupported)
        );
        assert_eq!(
            parse_line(r#"{"e":"trade","E":1,"p":"x","q":"1","m":true}"#),
            Err(AdapterError::BadNumber("p"))
        );
        let long = "9".repeat(LINE_BYTES_MAX + 1);
        assert!(matches!(
            parse_line(&long),
            Err(AdapterError::TooLong { .. })
        ));
        for cut in 0..60 {
            let line = r#"1 {"e":"depthUpdate","E":5,"U":1,"u":2,"b":[["1.5","0"]],"a":[]}"#;
            let _ = parse_line(&line[..cut]);
        }
    }
}
