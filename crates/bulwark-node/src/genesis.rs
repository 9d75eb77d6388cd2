//! The venue's genesis state (height 0), identical at every replica.

use crate::block::genesis_digest;
use bulwark_engine::command::SystemCommand;
use bulwark_engine::{AccountId, Command, Engine, EngineConfig, Event};
use commonware_cryptography::sha256::Digest;

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
/// Panics if the genesis batch is refused: genesis is configuration, and a refused genesis is
/// a configuration error the operator must fix before starting.
pub fn genesis(accounts: &[GenesisAccount], index_micros: &[i64]) -> (Engine, Digest) {
    let mut engine = Engine::new(EngineConfig::default());
    let mut batch = Vec::new();
    for (underlying, price_micros) in index_micros.iter().enumerate() {
        batch.push(Command::System(SystemCommand::IndexPrice {
            underlying: u16::try_from(underlying).expect("genesis must list few underlyings"),
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
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, Event::Rejected { .. })),
        "the genesis batch must be accepted: {events:?}"
    );
    assert!(engine.totals().conserved(), "genesis must conserve money");
    let digest = genesis_digest(&engine.state_root());
    (engine, digest)
}
