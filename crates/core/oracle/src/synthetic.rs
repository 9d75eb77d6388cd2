//! A seeded synthetic price: geometric Brownian motion with Poisson jumps (Merton), the embedded
//! default source for `bulwark up`. ChaCha8 from a `u64` seed and pure-Rust `libm`, so the same
//! seed gives the same path on every platform.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const YEAR_MS: f64 = 365.0 * 86_400_000.0;

/// Parameters of the process (annualised where a rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticParams {
    /// Starting price, micros.
    pub start_micros: i64,
    /// Drift per year.
    pub drift: f64,
    /// Volatility per square-root year.
    pub volatility: f64,
    /// Expected jumps per year.
    pub jumps_per_year: f64,
    /// Standard deviation of a jump's log size.
    pub jump_sigma: f64,
}

impl Default for SyntheticParams {
    /// BTC-like: 60 000 USD, 60 % volatility, about one 0.5 % jump per ten minutes.
    fn default() -> Self {
        SyntheticParams {
            start_micros: 60_000_000_000,
            drift: 0.0,
            volatility: 0.6,
            jumps_per_year: 365.0 * 144.0,
            jump_sigma: 0.005,
        }
    }
}

/// The process state.
#[derive(Debug, Clone)]
pub struct Synthetic {
    params: SyntheticParams,
    rng: ChaCha8Rng,
    log_price: f64,
    spare_normal: Option<f64>,
}

impl Synthetic {
    /// A process seeded with `seed`.
    pub fn new(params: SyntheticParams, seed: u64) -> Self {
        Synthetic {
            params,
            rng: ChaCha8Rng::seed_from_u64(seed),
            log_price: libm::log(params.start_micros.max(1) as f64),
            spare_normal: None,
        }
    }

    /// Advances by `dt_ms` and returns the new price in micros (at least 1).
    pub fn step(&mut self, dt_ms: u64) -> i64 {
        let dt = dt_ms as f64 / YEAR_MS;
        let p = self.params;
        let diffusion = p.volatility * libm::sqrt(dt) * self.normal();
        let drift = (p.drift - 0.5 * p.volatility * p.volatility) * dt;
        let mut jump = 0.0;
        if self.uniform() < p.jumps_per_year * dt {
            jump = p.jump_sigma * self.normal();
        }
        self.log_price += drift + diffusion + jump;
        self.price_micros()
    }

    /// The current price, micros.
    pub fn price_micros(&self) -> i64 {
        let price = libm::round(libm::exp(self.log_price));
        if (1.0..1e15).contains(&price) {
            price as i64
        } else {
            1
        }
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal (Box–Muller with `libm`).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare_normal = Some(r * libm::sin(theta));
        r * libm::cos(theta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_path() {
        let mut a = Synthetic::new(SyntheticParams::default(), 7);
        let mut b = Synthetic::new(SyntheticParams::default(), 7);
        let pa: Vec<i64> = (0..1_000).map(|_| a.step(100)).collect();
        let pb: Vec<i64> = (0..1_000).map(|_| b.step(100)).collect();
        assert_eq!(pa, pb);
        let mut c = Synthetic::new(SyntheticParams::default(), 8);
        assert_ne!(pa[999], c.step(100_000));
        // 100 s at 60 % volatility: well within ±5 %.
        let last = pa[999] as f64 / 60e9;
        assert!((0.95..1.05).contains(&last), "{last}");
    }
}
