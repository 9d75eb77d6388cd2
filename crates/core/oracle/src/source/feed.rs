//! The pure state of one running venue: its quote, what it has counted, and when to retry.
//! No I/O and no clock: every call is handed the time.

use serde::Serialize;

use crate::binance::{parse_message, AdapterError, VenueMessage};
use crate::node::SourceQuote;
use crate::replay::VenueQuote;

/// Longest error text kept in a status, bytes.
pub const ERROR_BYTES_MAX: usize = 256;

/// Where a running source reads the time (ms). Production uses the system's Unix time; tests
/// and simulations inject their own.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds on this clock.
    fn now_ms(&self) -> u64;
}

/// What a source has counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedCounters {
    /// Messages parsed (whether or not they moved the quote).
    pub messages: u64,
    /// Messages refused: not JSON, bad fields, too long, binary frames, bad UTF-8.
    pub malformed: u64,
    /// Well-formed messages of types the adapter does not read (e.g. subscription replies).
    pub unsupported: u64,
    /// Connections opened (live) or passes started (capture).
    pub connections: u64,
    /// Connection attempts that failed and connections that ended with an error.
    pub failures: u64,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Parsed and folded into the quote (a depth diff is folded as a no-op).
    Applied,
    /// Well-formed but of a type the adapter does not read; counted, skipped.
    Unsupported,
    /// Refused; counted.
    Malformed(AdapterError),
}

/// One venue's running state: its quote and counters, whether it is connected, and the last
/// error. A source task owns the writes (behind a lock); readers take copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VenueFeed {
    quote: VenueQuote,
    counters: FeedCounters,
    connected: bool,
    last_message_ms: Option<u64>,
    last_error: Option<String>,
    capture_ms: Option<u64>,
}

impl VenueFeed {
    /// A venue that has heard nothing.
    pub fn new() -> Self {
        VenueFeed::default()
    }

    /// One JSON text message (no receive-time prefix) received at `now_ms`.
    pub fn apply_text(&mut self, now_ms: u64, text: &str) -> Outcome {
        self.last_message_ms = Some(now_ms);
        match parse_message(text) {
            Ok(message) => {
                self.apply_message(now_ms, &message);
                Outcome::Applied
            }
            Err(AdapterError::Unsupported) => {
                self.counters.unsupported += 1;
                Outcome::Unsupported
            }
            Err(e) => {
                self.counters.malformed += 1;
                Outcome::Malformed(e)
            }
        }
    }

    /// One parsed message applied at `now_ms` (the quote takes this time, not the venue's).
    pub fn apply_message(&mut self, now_ms: u64, message: &VenueMessage) {
        self.last_message_ms = Some(now_ms);
        self.counters.messages += 1;
        self.quote.apply(now_ms, message);
    }

    /// A replayed capture message recorded at `capture_ms`, applied at `now_ms`.
    pub fn apply_replayed(&mut self, now_ms: u64, capture_ms: u64, message: &VenueMessage) {
        self.capture_ms = Some(capture_ms);
        self.apply_message(now_ms, message);
    }

    /// Counts lines a capture replayer refused or skipped since the last call.
    pub fn count_refused(&mut self, malformed: u64, unsupported: u64) {
        self.counters.malformed += malformed;
        self.counters.unsupported += unsupported;
    }

    /// A message refused before parsing (a binary frame, an oversized message) at `now_ms`.
    pub fn refuse(&mut self, now_ms: u64) {
        self.last_message_ms = Some(now_ms);
        self.counters.malformed += 1;
    }

    /// A connection opened (or a capture pass started).
    pub fn opened(&mut self) {
        self.connected = true;
        self.counters.connections += 1;
    }

    /// The connection closed (or the capture pass ended); `error` says why when it was not a
    /// clean close. The quote is kept: it turns stale by the node's rule, not here.
    pub fn closed(&mut self, error: Option<&str>) {
        self.connected = false;
        if let Some(error) = error {
            self.fail(error);
        }
    }

    /// A connection attempt failed (or a capture could not be read).
    pub fn fail(&mut self, error: &str) {
        self.counters.failures += 1;
        let mut end = error.len().min(ERROR_BYTES_MAX);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        self.last_error = Some(error[..end].to_owned());
    }

    /// The latest quote.
    pub fn quote(&self) -> Option<SourceQuote> {
        self.quote.source()
    }

    /// The counters.
    pub fn counters(&self) -> FeedCounters {
        self.counters
    }

    /// Whether a connection is open (or a capture is playing).
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The status of venue `name` of kind `kind` at `now_ms`.
    pub fn status(&self, name: &str, kind: &'static str, now_ms: u64) -> VenueStatus {
        let quote = self.quote();
        VenueStatus {
            name: name.to_owned(),
            kind,
            connected: self.connected,
            messages: self.counters.messages,
            malformed: self.counters.malformed,
            unsupported: self.counters.unsupported,
            reconnects: self.counters.connections.saturating_sub(1),
            failures: self.counters.failures,
            last_message_age_ms: self.last_message_ms.map(|t| now_ms.saturating_sub(t)),
            quote_age_ms: quote.map(|q| now_ms.saturating_sub(q.time_ms)),
            price_micros: quote.map(|q| q.price_micros),
            capture_ms: self.capture_ms,
            last_error: self.last_error.clone(),
        }
    }
}

/// What a venue source reports (serialized into `Sources::status` under feature `live`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VenueStatus {
    /// The venue's configured name.
    pub name: String,
    /// `"live"` or `"capture"`.
    pub kind: &'static str,
    /// Whether its connection is open (live) or its capture is playing.
    pub connected: bool,
    /// Messages parsed.
    pub messages: u64,
    /// Messages refused.
    pub malformed: u64,
    /// Messages of types not read.
    pub unsupported: u64,
    /// Connections opened after the first (live) or passes after the first (capture).
    pub reconnects: u64,
    /// Failed connection attempts and connections that ended with an error.
    pub failures: u64,
    /// Time since any message arrived, ms (`None`: never).
    pub last_message_age_ms: Option<u64>,
    /// Age of the quote, ms (`None`: no quote yet).
    pub quote_age_ms: Option<u64>,
    /// The quote's price, micros.
    pub price_micros: Option<i64>,
    /// Capture time of the last replayed message, ms (capture only).
    pub capture_ms: Option<u64>,
    /// The last error, at most [`ERROR_BYTES_MAX`] bytes.
    pub last_error: Option<String>,
}

/// Capped exponential reconnect delays: `initial_ms`, then doubling up to `max_ms`; back to
/// `initial_ms` after [`Backoff::reset`] (a connection that delivered messages). No jitter:
/// each node reconnects to its venue on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    next_ms: u64,
}

impl Backoff {
    /// Delays from `initial_ms` (at least 1) up to `max_ms` (at least `initial_ms`).
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        let initial_ms = initial_ms.max(1);
        Backoff {
            initial_ms,
            max_ms: max_ms.max(initial_ms),
            next_ms: initial_ms,
        }
    }

    /// The delay before the next attempt, ms; the one after it doubles, capped.
    pub fn next_delay_ms(&mut self) -> u64 {
        let delay = self.next_ms;
        self.next_ms = delay.saturating_mul(2).min(self.max_ms);
        delay
    }

    /// Starts over at the initial delay.
    pub fn reset(&mut self) {
        self.next_ms = self.initial_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKER: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"100.00","B":"1","a":"100.04","A":"2"}}"#;
    const TRADE: &str = r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"99.5","q":"0.1","m":true}"#;

    #[test]
    fn messages_fold_into_the_quote_at_the_local_time() {
        let mut feed = VenueFeed::new();
        assert_eq!(feed.quote(), None);
        assert_eq!(feed.apply_text(50, TRADE), Outcome::Applied);
        assert_eq!(
            feed.quote().map(|q| (q.price_micros, q.time_ms)),
            Some((99_500_000, 50))
        );
        assert_eq!(feed.apply_text(60, TICKER), Outcome::Applied);
        let q = feed.quote().expect("quote");
        assert_eq!(
            (q.price_micros, q.half_spread_micros, q.time_ms),
            (100_020_000, 20_000, 60)
        );
        // A later trade does not replace the book's mid.
        feed.apply_text(70, TRADE);
        assert_eq!(feed.quote().map(|q| q.price_micros), Some(100_020_000));
    }

    #[test]
    fn bad_bytes_are_counted_never_applied() {
        let mut feed = VenueFeed::new();
        feed.apply_text(1, TICKER);
        for bad in [
            "",
            "{",
            r#"{"e":"trade","E":1,"p":"-1","q":"1","m":true}"#,
            "\u{0}",
        ] {
            assert!(
                matches!(feed.apply_text(2, bad), Outcome::Malformed(_)),
                "{bad:?}"
            );
        }
        assert_eq!(
            feed.apply_text(3, r#"{"result":null,"id":1}"#),
            Outcome::Unsupported
        );
        feed.refuse(4);
        let c = feed.counters();
        assert_eq!((c.messages, c.malformed, c.unsupported), (1, 5, 1));
        assert_eq!(feed.quote().map(|q| q.time_ms), Some(1));
        let s = feed.status("binance", "live", 10);
        assert_eq!((s.last_message_age_ms, s.quote_age_ms), (Some(6), Some(9)));
    }

    #[test]
    fn status_counts_reconnects_and_keeps_a_bounded_error() {
        let mut feed = VenueFeed::new();
        let s = feed.status("v", "live", 0);
        assert_eq!(
            (s.connected, s.reconnects, s.last_message_age_ms),
            (false, 0, None)
        );
        feed.opened();
        feed.closed(Some(&"é".repeat(ERROR_BYTES_MAX)));
        feed.fail("refused");
        feed.opened();
        let s = feed.status("v", "live", 0);
        assert_eq!((s.connected, s.reconnects, s.failures), (true, 1, 2));
        assert_eq!(s.last_error.as_deref(), Some("refused"));
        feed.closed(Some(&"é".repeat(ERROR_BYTES_MAX)));
        let kept = feed.status("v", "live", 0).last_error.expect("error");
        assert!(kept.len() <= ERROR_BYTES_MAX && kept.starts_with('é'));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(100, 1_000);
        let delays: Vec<u64> = (0..6).map(|_| b.next_delay_ms()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
        b.reset();
        assert_eq!(b.next_delay_ms(), 100);
        let mut odd = Backoff::new(0, 0);
        assert_eq!((odd.next_delay_ms(), odd.next_delay_ms()), (1, 1));
    }
}
