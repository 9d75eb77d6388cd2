//! Instruments: linear perpetual futures and European cash-settled options, all settled in a USD
//! stable coin.
//!
//! Units used throughout the engine:
//! - money is in **micros** (10⁻⁶ USD), `i128`;
//! - an underlying's index price is in micros per one unit of the underlying, `i64`;
//! - an order price is in **ticks** of the instrument (`tick_size` micros per unit), `i64`;
//! - a size is in **lots** of the instrument (`lot_size_nanos` 10⁻⁹ units of underlying), `i64`.
//!
//! The notional of `q` lots at `p` ticks is `p × q × notional_per_tick_lot` micros, exactly: an
//! instrument whose tick and lot do not give an integer `notional_per_tick_lot` is refused.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::command::InstrumentId;

/// Which side of an option contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionRight {
    /// The right to buy at the strike.
    Call,
    /// The right to sell at the strike.
    Put,
}

/// One tier of a perpetual's initial-margin schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginTier {
    /// This tier applies to position notional up to and including this many micros.
    pub notional_max_micros: i128,
    /// Initial margin rate in basis points (100 bps = 1 % = 100× maximum leverage).
    /// Maintenance is half of it.
    pub initial_bps: u32,
}

/// What kind of contract an instrument is. (Externally tagged: snapshots use a non-self-describing
/// format that cannot read internally tagged enums.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstrumentKind {
    /// A linear perpetual future.
    Perpetual {
        /// Initial margin tiers by position notional, ascending; the last tier covers the rest.
        tiers: Vec<MarginTier>,
        /// Funding is exchanged every this many milliseconds.
        funding_interval_ms: u64,
        /// Clamp on the funding rate per interval, in parts per million.
        funding_rate_max_ppm: i64,
    },
    /// A European cash-settled option on the underlying's index.
    Option {
        /// Call or put.
        right: OptionRight,
        /// Strike in micros per unit of underlying.
        strike_micros: i64,
        /// Expiry time in milliseconds since the venue's epoch.
        expiry_ms: u64,
        /// Volatility used for the mark when the book gives none, in parts per million (0.6 = 600000).
        vol_ppm: u32,
    },
}

/// A listed instrument's static parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instrument {
    /// Dense identifier, equal to its position in the engine's instrument list.
    pub id: InstrumentId,
    /// Human-readable symbol such as `BTC-PERP`.
    pub symbol: String,
    /// Index of the underlying in the engine's underlying list.
    pub underlying: u16,
    /// Perpetual or option, with its kind-specific parameters.
    pub kind: InstrumentKind,
    /// Price of one tick, in micros per unit of underlying.
    pub tick_size_micros: i64,
    /// Size of one lot, in 10⁻⁹ units of underlying.
    pub lot_size_nanos: i64,
    /// Fills must be within this many basis points of the mark price.
    pub band_bps: u32,
    /// Minimum band half-width in ticks (protects cheap options whose bps band is below a tick).
    pub band_ticks_min: i64,
    /// Largest order size in lots.
    pub order_lots_max: i64,
    /// Maker fee in parts per million of notional (never negative: fees are conserved in a pool).
    pub maker_fee_ppm: u32,
    /// Taker fee in parts per million of notional.
    pub taker_fee_ppm: u32,
    /// Derived: micros of notional per tick per lot. Computed by [`Instrument::validated`].
    pub notional_per_tick_lot: i128,
}

/// Why an instrument definition was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstrumentError {
    /// tick × lot must be a whole number of micros.
    #[error("instrument {0}: tick size × lot size is not a whole number of micros")]
    InexactNotional(String),
    /// A size, tick, band or tier parameter is zero, negative or out of order.
    #[error("instrument {symbol}: {what}")]
    BadParameter {
        /// Which instrument.
        symbol: String,
        /// What is wrong.
        what: &'static str,
    },
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;

impl Instrument {
    /// Checks the parameters and fills in the derived fields.
    pub fn validated(mut self) -> Result<Self, InstrumentError> {
        let bad = |what| InstrumentError::BadParameter {
            symbol: self.symbol.clone(),
            what,
        };
        if self.tick_size_micros <= 0 || self.lot_size_nanos <= 0 {
            return Err(bad("tick and lot size must be positive"));
        }
        if self.order_lots_max <= 0 || self.band_ticks_min < 0 || self.band_bps == 0 {
            return Err(bad("order size limit and band must be positive"));
        }
        if self.maker_fee_ppm > 100_000 || self.taker_fee_ppm > 100_000 {
            return Err(bad("fees above 10 % are refused"));
        }
        match &self.kind {
            InstrumentKind::Perpetual {
                tiers,
                funding_interval_ms,
                funding_rate_max_ppm,
            } => {
                if tiers.is_empty() || *funding_interval_ms == 0 || *funding_rate_max_ppm < 0 {
                    return Err(bad(
                        "perpetual needs tiers, a funding interval and a rate cap",
                    ));
                }
                let ascending = tiers.windows(2).all(|w| {
                    w[0].notional_max_micros < w[1].notional_max_micros
                        && w[0].initial_bps <= w[1].initial_bps
                });
                if !ascending
                    || tiers
                        .iter()
                        .any(|t| t.initial_bps == 0 || t.initial_bps > 10_000)
                {
                    return Err(bad("margin tiers must ascend with rates in 1..=10000 bps"));
                }
            }
            InstrumentKind::Option {
                strike_micros,
                vol_ppm,
                ..
            } => {
                if *strike_micros <= 0 || *vol_ppm == 0 {
                    return Err(bad("option needs a positive strike and volatility"));
                }
            }
        }
        let product = i128::from(self.tick_size_micros) * i128::from(self.lot_size_nanos);
        if product % NANOS_PER_UNIT != 0 {
            return Err(InstrumentError::InexactNotional(self.symbol));
        }
        self.notional_per_tick_lot = product / NANOS_PER_UNIT;
        Ok(self)
    }

    /// True for perpetual futures.
    pub fn is_perpetual(&self) -> bool {
        matches!(self.kind, InstrumentKind::Perpetual { .. })
    }

    /// Converts an index price in micros to this instrument's ticks, rounding to nearest.
    pub fn micros_to_ticks(&self, micros: i64) -> i64 {
        let t = self.tick_size_micros;
        (micros + t / 2).div_euclid(t)
    }
}

/// A tradable underlying with an index price (BTC, ETH).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Underlying {
    /// Name such as `BTC`.
    pub name: String,
}

fn perp(id: u32, symbol: &str, underlying: u16, tick: i64, lot_nanos: i64) -> Instrument {
    Instrument {
        id: InstrumentId(id),
        symbol: symbol.to_owned(),
        underlying,
        kind: InstrumentKind::Perpetual {
            tiers: vec![
                MarginTier {
                    notional_max_micros: 1_000_000 * 1_000_000,
                    initial_bps: 200,
                },
                MarginTier {
                    notional_max_micros: 5_000_000 * 1_000_000,
                    initial_bps: 500,
                },
                MarginTier {
                    notional_max_micros: 20_000_000 * 1_000_000,
                    initial_bps: 1_000,
                },
                MarginTier {
                    notional_max_micros: i128::MAX,
                    initial_bps: 2_000,
                },
            ],
            funding_interval_ms: 8 * 3_600_000,
            funding_rate_max_ppm: 3_750,
        },
        tick_size_micros: tick,
        lot_size_nanos: lot_nanos,
        band_bps: 500,
        band_ticks_min: 1,
        order_lots_max: 1_000_000,
        maker_fee_ppm: 100,
        taker_fee_ppm: 400,
        notional_per_tick_lot: 0,
    }
}

fn option(
    id: u32,
    underlying: (u16, &str),
    right: OptionRight,
    strike_usd: i64,
    expiry_ms: u64,
) -> Instrument {
    let letter = match right {
        OptionRight::Call => 'C',
        OptionRight::Put => 'P',
    };
    let day = expiry_ms / 86_400_000;
    Instrument {
        id: InstrumentId(id),
        symbol: format!("{}-D{day}-{strike_usd}-{letter}", underlying.1),
        underlying: underlying.0,
        kind: InstrumentKind::Option {
            right,
            strike_micros: strike_usd * 1_000_000,
            expiry_ms,
            vol_ppm: 600_000,
        },
        // 1 USD premium tick, 0.01 BTC lot → 10 000 micros per tick-lot.
        tick_size_micros: 1_000_000,
        lot_size_nanos: 10_000_000,
        band_bps: 5_000,
        band_ticks_min: 5,
        order_lots_max: 100_000,
        maker_fee_ppm: 200,
        taker_fee_ppm: 300,
        notional_per_tick_lot: 0,
    }
}

/// The default listing: BTC-PERP and ETH-PERP, and BTC calls and puts at three strikes and two
/// expiries (7 and 30 days after the venue's epoch).
pub fn default_listing() -> (Vec<Underlying>, Vec<Instrument>) {
    let underlyings = vec![
        Underlying { name: "BTC".into() },
        Underlying { name: "ETH".into() },
    ];
    // BTC-PERP: tick 0.1 USD, lot 0.001 BTC. ETH-PERP: tick 0.01 USD, lot 0.01 ETH.
    let mut instruments = vec![
        perp(0, "BTC-PERP", 0, 100_000, 1_000_000),
        perp(1, "ETH-PERP", 1, 10_000, 10_000_000),
    ];
    let mut id = 2;
    for expiry_days in [7u64, 30] {
        for strike in [55_000, 60_000, 65_000] {
            for right in [OptionRight::Call, OptionRight::Put] {
                instruments.push(option(
                    id,
                    (0, "BTC"),
                    right,
                    strike,
                    expiry_days * 86_400_000,
                ));
                id += 1;
            }
        }
    }
    let instruments = instruments
        .into_iter()
        .map(|i| i.validated().expect("the default listing must be valid"))
        .collect();
    (underlyings, instruments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listing_has_exact_notionals() {
        let (_, list) = default_listing();
        assert_eq!(list[0].notional_per_tick_lot, 100);
        assert_eq!(list[1].notional_per_tick_lot, 100);
        assert_eq!(list[2].notional_per_tick_lot, 10_000);
        for (i, inst) in list.iter().enumerate() {
            assert_eq!(inst.id.0 as usize, i);
        }
    }

    #[test]
    fn inexact_notional_is_refused() {
        let mut i = perp(0, "X", 0, 3, 7);
        i.lot_size_nanos = 7;
        assert!(matches!(
            i.validated(),
            Err(InstrumentError::InexactNotional(_))
        ));
    }
}
