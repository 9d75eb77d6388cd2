//! DEVELOPMENT keys and order builders, shared by the simulator, `bulwark up`'s devnet, the
//! benches and the tests, so that every tool derives the same key for the same account; and
//! [`swtpm`], a private software TPM for the TPM tests, `up --tpm` and `bench attest`.
//!
//! Nothing here is secret: every key is derived from public inputs. Production never uses it;
//! the core and runtime crates take it only as a dev-dependency.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod swtpm;

use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::{LimitOrder, SelfTradePrevention, TimeInForce};
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
use ed25519_dalek::SigningKey;

/// Domain of the DEVELOPMENT client-key derivation. Changing it changes every dev venue's keys.
pub const CLIENT_KEY_DOMAIN: &[u8] = b"bulwark/dev/client-key/v1";

/// The DEVELOPMENT signing key of `account` in a venue seeded with `seed` (`bulwark up --seed`,
/// the simulator, the benches): BLAKE3 of the domain, the seed and the account.
pub fn client_key(seed: u64, account: u64) -> SigningKey {
    let mut hasher = blake3::Hasher::new();
    hasher.update(CLIENT_KEY_DOMAIN);
    hasher.update(&seed.to_le_bytes());
    hasher.update(&account.to_le_bytes());
    SigningKey::from_bytes(hasher.finalize().as_bytes())
}

/// A GTC limit order on instrument 0 whose side alternates with `account + k` and whose price
/// lies within ±10 ticks × 10 of `mid_ticks`, so orders of different accounts cross and fill.
/// `k` is also the client order id.
pub fn crossing_order(account: u64, k: u64, mid_ticks: i64) -> ClientCommand {
    let side = if (account + k).is_multiple_of(2) {
        Side::Buy
    } else {
        Side::Sell
    };
    let offset = ((k * 7 + account * 3) % 21) as i64 - 10;
    ClientCommand::Limit(LimitOrder {
        instrument: InstrumentId(0),
        side,
        price: mid_ticks + offset * 10,
        qty: 1 + (k % 4) as i64,
        tif: TimeInForce::Gtc,
        post_only: false,
        reduce_only: false,
        stp: SelfTradePrevention::CancelResting,
        client_order_id: k,
    })
}

/// [`crossing_order`] signed by `account`'s DEVELOPMENT key under `seed`, with nonce `k + 1`.
pub fn signed_crossing_order(seed: u64, account: u64, k: u64, mid_ticks: i64) -> SignedTx {
    SignedTx::sign(
        AccountId(account),
        k + 1,
        crossing_order(account, k, mid_ticks),
        &client_key(seed, account),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_seed_and_account_and_orders_cross() {
        assert_ne!(client_key(1, 1).to_bytes(), client_key(2, 1).to_bytes());
        assert_ne!(client_key(1, 1).to_bytes(), client_key(1, 2).to_bytes());
        assert_eq!(client_key(1, 1).to_bytes(), client_key(1, 1).to_bytes());
        let side = |c: ClientCommand| match c {
            ClientCommand::Limit(order) => order.side,
            _ => unreachable!("crossing orders are limits"),
        };
        assert_ne!(
            side(crossing_order(1, 0, 600_000)),
            side(crossing_order(2, 0, 600_000))
        );
        let tx = signed_crossing_order(1, 3, 4, 600_000);
        assert!(tx
            .verify(&client_key(1, 3).verifying_key().to_bytes())
            .is_ok());
    }
}
