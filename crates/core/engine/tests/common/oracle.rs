//! A four-member oracle committee (f = 1) in front of one engine, shared by the tests that need
//! certified rounds and open guards.

use bulwark_engine::command::SystemCommand;
use bulwark_engine::oracle::{Observation, OracleConfig, SignedObservation};
use bulwark_engine::{Command, Engine, EngineConfig, Event, RejectReason};
use ed25519_dalek::SigningKey;

/// 60 000 USD in micros: 600 000 ticks of BTC-PERP.
pub const P: i64 = 60_000_000_000;

pub struct Setup {
    pub keys: Vec<SigningKey>,
    pub config: OracleConfig,
    pub engine: Engine,
}

pub fn setup() -> Setup {
    setup_with(|_| {})
}

/// A committee engine whose configuration `configure` may adjust (the committee is set after).
pub fn setup_with(configure: impl FnOnce(&mut EngineConfig)) -> Setup {
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]))
        .collect();
    let config = OracleConfig {
        members: keys.iter().map(|k| k.verifying_key().to_bytes()).collect(),
        f: 1,
        ..OracleConfig::default()
    };
    let mut engine_config = EngineConfig {
        oracle: config.clone(),
        ..EngineConfig::default()
    };
    configure(&mut engine_config);
    let config = engine_config.oracle.clone();
    let engine = Engine::new(engine_config);
    Setup {
        keys,
        config,
        engine,
    }
}

pub fn obs(key: &SigningKey, round: u64, price: i64, time_ms: u64) -> SignedObservation {
    SignedObservation::sign(
        Observation {
            feed: 0,
            round,
            price_micros: price,
            confidence_micros: price / 10_000,
            time_ms,
            sources: 3,
        },
        key,
    )
}

pub fn round_cmd(round: u64, observations: Vec<SignedObservation>) -> Command {
    Command::System(SystemCommand::OracleRound {
        underlying: 0,
        round,
        observations,
    })
}

impl Setup {
    pub fn all(&self, round: u64, prices: [i64; 4], t: u64) -> Command {
        let o = self
            .keys
            .iter()
            .zip(prices)
            .map(|(k, p)| obs(k, round, p, t))
            .collect();
        round_cmd(round, o)
    }

    pub fn run(&mut self, t: u64, batch: Vec<Command>) -> Vec<Event> {
        let mut out = Vec::new();
        self.engine.execute(t, &batch, &mut out);
        out
    }

    pub fn refused(&mut self, t: u64, cmd: Command) -> RejectReason {
        self.run(t, vec![]);
        let root = self.engine.state_root();
        let out = self.run(t, vec![cmd]);
        assert_eq!(
            self.engine.state_root(),
            root,
            "a refused round changes no state"
        );
        match out.as_slice() {
            [Event::Rejected { reason, .. }] => *reason,
            other => panic!("expected one rejection, got {other:?}"),
        }
    }
}
