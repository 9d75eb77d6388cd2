//! The simulated market of the scenarios: a seeded true price, three venues quoting around it,
//! and the faults a scenario injects into what the oracle nodes see.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::node::SourceQuote;
use crate::synthetic::{Synthetic, SyntheticParams};

/// Venues in the simulated market.
pub const VENUES: usize = 3;
/// Market time step, ms.
pub const TICK_MS: u64 = 100;
/// Fixed basis of each venue against the true price, bps.
const VENUE_BASIS_BPS: [i64; VENUES] = [-2, 0, 3];

/// Which scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `f` nodes report 20 % low for a minute.
    OracleCollusion,
    /// One venue quotes 30 % high for 20 s.
    VenueSpike,
    /// Every venue stops for 30 s while the true price falls 6 %.
    FeedBlackout,
    /// Every venue falls 8 % over a minute (a real move).
    GenuineCrash,
}

impl Kind {
    /// The scenario's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::OracleCollusion => "oracle-collusion",
            Kind::VenueSpike => "venue-spike",
            Kind::FeedBlackout => "feed-blackout",
            Kind::GenuineCrash => "genuine-crash",
        }
    }

    /// The scenario named `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        [
            Kind::OracleCollusion,
            Kind::VenueSpike,
            Kind::FeedBlackout,
            Kind::GenuineCrash,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    /// The fault window, ms (start inclusive, end exclusive).
    pub fn window_ms(self) -> (u64, u64) {
        match self {
            Kind::OracleCollusion | Kind::GenuineCrash => (60_000, 120_000),
            Kind::VenueSpike => (60_000, 80_000),
            Kind::FeedBlackout => (60_000, 90_000),
        }
    }

    /// The real (not injected) move of the true price at `t_ms`, as a factor in ppm.
    fn real_move_ppm(self, t_ms: u64) -> i64 {
        let (start, end) = self.window_ms();
        let fall_ppm = match self {
            Kind::GenuineCrash => 80_000,
            Kind::FeedBlackout => 60_000,
            Kind::OracleCollusion | Kind::VenueSpike => return 1_000_000,
        };
        let progress = t_ms.clamp(start, end) - start;
        1_000_000
            - fall_ppm * i64::try_from(progress).unwrap_or(0)
                / i64::try_from(end - start).unwrap_or(1)
    }
}

/// The precomputed market of one scenario run.
#[derive(Debug, Clone)]
pub struct Market {
    kind: Kind,
    /// Venue prices per tick, micros.
    venue: Vec<[i64; VENUES]>,
}

impl Market {
    /// The market for `kind` over `duration_ms`, from `seed`.
    pub fn new(kind: Kind, seed: u64, duration_ms: u64) -> Market {
        let ticks = usize::try_from(duration_ms / TICK_MS + 1).unwrap_or(0);
        let mut truth = Synthetic::new(SyntheticParams::default(), seed);
        let mut noise = ChaCha8Rng::seed_from_u64(seed ^ 0x006e_6f69_7365);
        let mut venue = Vec::with_capacity(ticks);
        for k in 0..ticks {
            let t_ms = k as u64 * TICK_MS;
            let base = if k == 0 {
                truth.price_micros()
            } else {
                truth.step(TICK_MS)
            };
            let real = i128::from(base) * i128::from(kind.real_move_ppm(t_ms)) / 1_000_000;
            let mut row = [0i64; VENUES];
            for (v, slot) in row.iter_mut().enumerate() {
                // ±1 bp of venue noise, in tenths of a bp.
                let jitter = i128::from((noise.next_u64() % 21) as i64 - 10);
                let bps_tenths = i128::from(VENUE_BASIS_BPS[v]) * 10 + jitter;
                let price = real + real * bps_tenths / 100_000;
                *slot = i64::try_from(price).unwrap_or(i64::MAX).max(1);
            }
            venue.push(row);
        }
        Market { kind, venue }
    }

    /// What a node with `delay_ticks` of feed latency sees of each venue at `t_ms`; with
    /// `faulted`, the scenario's venue faults apply (the spike, the blackout).
    pub fn quotes(
        &self,
        t_ms: u64,
        delay_ticks: u64,
        faulted: bool,
    ) -> [Option<SourceQuote>; VENUES] {
        let mut k = (t_ms / TICK_MS).saturating_sub(delay_ticks);
        let (start, end) = self.kind.window_ms();
        if faulted && self.kind == Kind::FeedBlackout && (start..end).contains(&(k * TICK_MS)) {
            // Nothing arrives during the blackout: the last quotes are those from before it.
            k = (start / TICK_MS).saturating_sub(1);
        }
        let k = usize::try_from(k)
            .unwrap_or(usize::MAX)
            .min(self.venue.len() - 1);
        let time_ms = k as u64 * TICK_MS;
        let mut out = [None; VENUES];
        for (v, slot) in out.iter_mut().enumerate() {
            let mut price = self.venue[k][v];
            if faulted && self.kind == Kind::VenueSpike && v == 1 && (start..end).contains(&time_ms)
            {
                price = price + price * 3 / 10;
            }
            *slot = Some(SourceQuote {
                price_micros: price,
                // Half a basis point of half-spread.
                half_spread_micros: price / 20_000,
                time_ms,
            });
        }
        out
    }
}

/// A node's 32-byte signing seed, derived from the scenario seed.
pub fn node_seed(seed: u64, node: usize) -> [u8; 32] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ node as u64);
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    out
}
