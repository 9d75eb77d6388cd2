//! Capture replay and per-venue quote state.
//!
//! [`Replay`] is pure: it turns capture lines into `(receive time ms, message)` pairs and counts
//! the lines it refused. [`Pace`] says when each message is due at the recorded pace or
//! accelerated; the caller owns the clock. Reading capture files is `bulwark-venues`' job
//! (`read_capture`).
//! [`VenueQuote`] folds a venue's messages into the quote an oracle node reads.

use crate::binance::{parse_line, AdapterError, VenueMessage};
use crate::node::SourceQuote;

/// Turns capture lines into timed messages.
#[derive(Debug, Default, Clone)]
pub struct Replay {
    /// Lines refused so far, by the adapter or for lacking any time.
    pub refused: u64,
    /// Lines of unsupported message types so far (skipped, not refused).
    pub unsupported: u64,
    last_ms: u64,
}

impl Replay {
    /// A fresh replayer.
    pub fn new() -> Self {
        Replay::default()
    }

    /// One line: `Some((time_ms, message))`, or `None` (counted) when the line is refused or of
    /// an unsupported type. The time is the receive-time prefix when present, else the venue's
    /// event time; it never runs backwards (a late line takes the previous time).
    pub fn line(&mut self, line: &str) -> Option<(u64, VenueMessage)> {
        match parse_line(line) {
            Ok((received_ns, message)) => {
                let time_ms = match received_ns {
                    Some(ns) => ns / 1_000_000,
                    None => match event_time_ms(&message) {
                        Some(ms) => ms,
                        None => {
                            self.refused += 1;
                            return None;
                        }
                    },
                };
                self.last_ms = self.last_ms.max(time_ms);
                Some((self.last_ms, message))
            }
            Err(AdapterError::Unsupported) => {
                self.unsupported += 1;
                None
            }
            Err(_) => {
                self.refused += 1;
                None
            }
        }
    }
}

/// Replay pacing: when (on the caller's clock, relative to the start of the replay) a message
/// recorded at `capture_ms` is due. `speed` 1 is the recorded pace, 10 ten times faster; 0
/// means as fast as possible (everything is due at once). The caller sleeps or schedules; this
/// type reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Capture time of the first message, ms.
    pub start_capture_ms: u64,
    /// Speed-up factor (0: no pacing).
    pub speed: u32,
}

impl Pace {
    /// Milliseconds after the replay's start at which the message is due.
    pub fn due_ms(&self, capture_ms: u64) -> u64 {
        match self.speed {
            0 => 0,
            s => capture_ms.saturating_sub(self.start_capture_ms) / u64::from(s),
        }
    }
}

fn event_time_ms(message: &VenueMessage) -> Option<u64> {
    match message {
        VenueMessage::BookTicker { event_time_ms, .. } => *event_time_ms,
        VenueMessage::Depth { event_time_ms, .. } | VenueMessage::Trade { event_time_ms, .. } => {
            Some(*event_time_ms)
        }
        _ => None,
    }
}

/// What an oracle node knows about one venue: best bid and ask, last trade, when it last heard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VenueQuote {
    /// Best bid and ask, micros.
    pub bid_ask: Option<(i64, i64)>,
    /// Last trade price, micros.
    pub last_trade: Option<i64>,
    /// When the venue last sent a price, ms.
    pub updated_ms: u64,
}

impl VenueQuote {
    /// Folds in one message received at `time_ms`. Depth diffs do not move the quote (without a
    /// snapshot they cannot form a book; the best bid and offer come from `bookTicker`).
    pub fn apply(&mut self, time_ms: u64, message: &VenueMessage) {
        match message {
            VenueMessage::BookTicker {
                bid_micros,
                ask_micros,
                ..
            } if *bid_micros > 0 && ask_micros >= bid_micros => {
                self.bid_ask = Some((*bid_micros, *ask_micros));
                self.updated_ms = time_ms;
            }
            VenueMessage::Trade { price_micros, .. } if *price_micros > 0 => {
                self.last_trade = Some(*price_micros);
                self.updated_ms = time_ms;
            }
            _ => {}
        }
    }

    /// The source quote: the mid and half-spread when the venue quotes both sides, else the last
    /// trade with no spread.
    pub fn source(&self) -> Option<SourceQuote> {
        let (price_micros, half_spread_micros) = match (self.bid_ask, self.last_trade) {
            (Some((bid, ask)), _) => (
                i64::try_from((i128::from(bid) + i128::from(ask)) / 2).ok()?,
                (ask - bid) / 2,
            ),
            (None, Some(last)) => (last, 0),
            (None, None) => return None,
        };
        Some(SourceQuote {
            price_micros,
            half_spread_micros,
            time_ms: self.updated_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keeps_time_monotonic_and_counts_refusals() {
        let mut r = Replay::new();
        let a = r.line(r#"2000000 {"e":"trade","E":1,"p":"10","q":"1","m":true}"#);
        assert_eq!(a.map(|x| x.0), Some(2));
        let b = r.line(r#"1000000 {"e":"trade","E":1,"p":"11","q":"1","m":true}"#);
        assert_eq!(b.map(|x| x.0), Some(2));
        assert!(r.line("garbage").is_none());
        assert!(r.line(r#"{"e":"aggTrade"}"#).is_none());
        assert_eq!((r.refused, r.unsupported), (1, 1));
    }

    #[test]
    fn pace_scales_capture_time() {
        let pace = Pace {
            start_capture_ms: 1_000,
            speed: 10,
        };
        assert_eq!(pace.due_ms(11_000), 1_000);
        assert_eq!(pace.due_ms(500), 0);
        assert_eq!(Pace { speed: 0, ..pace }.due_ms(99_000), 0);
    }

    #[test]
    fn venue_quote_prefers_the_book() {
        let mut q = VenueQuote::default();
        assert_eq!(q.source(), None);
        q.apply(
            5,
            &VenueMessage::Trade {
                event_time_ms: 5,
                price_micros: 100,
                qty_nanos: 1,
                buyer_is_maker: true,
            },
        );
        assert_eq!(q.source().map(|s| s.price_micros), Some(100));
        q.apply(
            7,
            &VenueMessage::BookTicker {
                update_id: 1,
                bid_micros: 98,
                bid_qty_nanos: 1,
                ask_micros: 104,
                ask_qty_nanos: 1,
                event_time_ms: None,
            },
        );
        let s = q.source().expect("quote");
        assert_eq!(
            (s.price_micros, s.half_spread_micros, s.time_ms),
            (101, 3, 7)
        );
    }
}
