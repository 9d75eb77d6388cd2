//! The venue's genesis state (height 0), identical at every replica.

use crate::block::genesis_digest;
use bulwark_engine::command::SystemCommand;
use bulwark_engine::engine::ConfigError;
use bulwark_engine::oracle::OracleConfig;
use bulwark_engine::{AccountId, Command, Engine, EngineConfig, Event};
use commonware_cryptography::sha256::Digest;

/// Why a genesis is refused ([`try_genesis`]).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenesisError {
    /// The genesis lists more underlyings than the engine has index slots for.
    #[error("{listed} underlyings listed; at most 16")]
    TooManyUnderlyings {
        /// How many it lists.
        listed: usize,
    },
    /// The engine configuration the genesis builds does not validate.
    #[error("engine configuration: {0}")]
    Config(#[from] ConfigError),
    /// The engine rejected a command of the genesis batch (a duplicate account, a bad
    /// deposit or index price).
    #[error("the engine refused part of it: {0:?}")]
    Refused(Box<Event>),
    /// The genesis state does not conserve money (a bug in the batch or the engine).
    #[error("it does not conserve money")]
    NotConserved,
}

/// A client account opened at genesis.
#[derive(Debug, Clone)]
pub struct GenesisAccount {
    /// Its id.
    pub account: AccountId,
    /// Its Ed25519 public key (signs its transactions).
    pub public_key: [u8; 32],
    /// Collateral credited at genesis, micros.
    pub deposit_micros: i64,
}

/// Builds the genesis engine: the default listing, the accounts, and a starting index price per
/// underlying (micros). Returns the engine and the genesis digest simplex starts from.
///
/// Panics if the genesis batch is refused; see [`try_genesis`] for configuration from files.
pub fn genesis(accounts: &[GenesisAccount], index_micros: &[i64]) -> (Engine, Digest) {
    match try_genesis(accounts, index_micros, OracleConfig::default()) {
        Ok(genesis) => genesis,
        Err(reason) => panic!("the genesis batch must be accepted: {reason}"),
    }
}

/// [`genesis`], returning why the engine refuses the genesis batch instead of panicking, with
/// an oracle committee: when `oracle` has members, index prices come only from certified
/// rounds, so `index_micros` is not applied (the venue opens with the first round).
pub fn try_genesis(
    accounts: &[GenesisAccount],
    index_micros: &[i64],
    oracle: OracleConfig,
) -> Result<(Engine, Digest), GenesisError> {
    try_genesis_with(
        accounts,
        index_micros,
        oracle,
        (
            bulwark_sentinel::Policy::default(),
            bulwark_sentinel::Operators::default(),
        ),
    )
}

/// [`try_genesis`] with the sentinel's `policy` (the genesis file's `sentinel` section) and the
/// `operators` that approve replacements (its `operators` section).
pub fn try_genesis_with(
    accounts: &[GenesisAccount],
    index_micros: &[i64],
    oracle: OracleConfig,
    sentinel: (bulwark_sentinel::Policy, bulwark_sentinel::Operators),
) -> Result<(Engine, Digest), GenesisError> {
    try_genesis_at(accounts, index_micros, oracle, sentinel, 0)
}

/// [`try_genesis_with`] for a venue whose epoch is `venue_epoch_ms` (Unix milliseconds; the
/// genesis file's `venue_epoch_ms`), which the engine needs to compare a trader's logon time
/// with its own.
pub fn try_genesis_at(
    accounts: &[GenesisAccount],
    index_micros: &[i64],
    oracle: OracleConfig,
    (policy, operators): (bulwark_sentinel::Policy, bulwark_sentinel::Operators),
    venue_epoch_ms: u64,
) -> Result<(Engine, Digest), GenesisError> {
    if index_micros.len() > 16 {
        return Err(GenesisError::TooManyUnderlyings {
            listed: index_micros.len(),
        });
    }
    let with_oracle = oracle.enabled();
    // The sentinel watches the same committee: an oracle member that equivocates is convicted by
    // its own signatures (`docs/sentinel.md`).
    let sentinel = bulwark_engine::sentinel::SentinelConfig {
        members: oracle.members.clone(),
        policy,
        operators,
    };
    let config = EngineConfig {
        oracle,
        sentinel,
        venue_epoch_ms,
        ..EngineConfig::default()
    };
    config.validate()?;
    let mut engine = Engine::new(config);
    let mut batch = Vec::new();
    for (underlying, price_micros) in index_micros.iter().enumerate().filter(|_| !with_oracle) {
        batch.push(Command::System(SystemCommand::IndexPrice {
            underlying: underlying as u16,
            price_micros: *price_micros,
        }));
    }
    for account in accounts {
        batch.push(Command::System(SystemCommand::OpenAccount {
            account: account.account,
            public_key: account.public_key,
        }));
        batch.push(Command::System(SystemCommand::Deposit {
            account: account.account,
            amount: account.deposit_micros,
        }));
    }
    let mut events = Vec::new();
    engine.execute(0, &batch, &mut events);
    if let Some(rejected) = events
        .iter()
        .find(|event| matches!(event, Event::Rejected { .. }))
    {
        return Err(GenesisError::Refused(Box::new(rejected.clone())));
    }
    if !engine.totals().conserved() {
        return Err(GenesisError::NotConserved);
    }
    let digest = genesis_digest(&engine.state_root());
    Ok((engine, digest))
}
