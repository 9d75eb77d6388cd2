#!/usr/bin/env python3
"""Generate golden vectors for bulwark-engine's European option pricing from QuantLib.

Each vector prices one European option with QuantLib's AnalyticEuropeanEngine on a
BlackScholesProcess: flat continuously compounded risk-free rate, zero dividend yield, flat
volatility, all on Actual/365 Fixed. Expiry is a whole number of days after the evaluation
date, so time to expiry is exactly `days / 365.0` as QuantLib computes it; both `days` and
that `years` are stored.

Units match bulwark_engine::pricing::Greeks: vega per 1.00 of vol, rho per 1.00 of rate,
theta per year of calendar time (QuantLib's `theta()`, which is already per year; its
`thetaPerDay()` is that divided by 365 and is not used).

Usage (from the repository root):
    pip install QuantLib
    python3 scripts/gen_option_vectors.py > crates/core/engine/tests/vectors/options_quantlib.json

The output is deterministic for a given QuantLib version.
"""

import json
import sys

import QuantLib as ql

COMMAND = (
    "python3 scripts/gen_option_vectors.py > "
    "crates/core/engine/tests/vectors/options_quantlib.json"
)

# Strike as a multiple of spot: deep and near in/out of the money, and at the money.
MONEYNESS = [0.6, 0.9, 1.0, 1.1, 1.5]
# (days to expiry, volatility): short and long expiries, low and high vols.
EXPIRIES_VOLS = [(1, 0.8), (7, 0.6), (30, 0.25), (91, 0.05), (365, 0.45), (1095, 1.5)]
# Cycled through so that every right, moneyness and expiry meets several of each.
SPOTS = [100.0, 64250.5, 0.3421]
RATES = [0.0, 0.03, 0.1, -0.01, 0.05]


def price(right, spot, strike, days, vol, rate):
    today = ql.Date(15, ql.January, 2026)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    risk_free = ql.YieldTermStructureHandle(
        ql.FlatForward(today, rate, day_count, ql.Continuous)
    )
    volatility = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), vol, day_count)
    )
    process = ql.BlackScholesProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)), risk_free, volatility
    )
    option_type = ql.Option.Call if right == "call" else ql.Option.Put
    option = ql.EuropeanOption(
        ql.PlainVanillaPayoff(option_type, strike),
        ql.EuropeanExercise(today + days),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    years = day_count.yearFraction(today, today + days)
    assert years == days / 365.0, (years, days)
    return {
        "right": right,
        "spot": spot,
        "strike": strike,
        "days": days,
        "years": years,
        "vol": vol,
        "rate": rate,
        "price": option.NPV(),
        "delta": option.delta(),
        "gamma": option.gamma(),
        "vega": option.vega(),
        "theta": option.theta(),
        "rho": option.rho(),
    }


def main():
    vectors = []
    n = 0
    for right in ("call", "put"):
        for moneyness in MONEYNESS:
            for days, vol in EXPIRIES_VOLS:
                spot = SPOTS[n % len(SPOTS)]
                rate = RATES[n % len(RATES)]
                # Round the strike to 6 significant digits so the input is short in JSON.
                strike = float(f"{spot * moneyness:.6g}")
                vectors.append(price(right, spot, strike, days, vol, rate))
                n += 1
    document = {
        "source": f"QuantLib {ql.__version__} (Python package QuantLib=={ql.__version__}), "
        "AnalyticEuropeanEngine on BlackScholesProcess",
        "command": COMMAND,
        "conventions": {
            "model": "Black-Scholes-Merton, no dividends; European exercise",
            "rate": "flat, continuously compounded, per year",
            "years": "Actual/365 Fixed: days / 365",
            "vega": "per 1.00 of volatility",
            "theta": "per year of calendar time (QuantLib theta(), = -dPrice/dYears)",
            "rho": "per 1.00 of rate",
        },
        "vectors": vectors,
    }
    json.dump(document, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
