//! Attack 1 of issue #12: a client who owns its key adds a small-order point to `R` of its own
//! signatures. Under a cofactorless batch equation such a signature passes some batches and not
//! others, so replicas that check different slices of a block (the mempool's share, the whole
//! block, a replay) disagree, honest leaders are refused and `bulwark verify` can reject a
//! finalized log. Under the one rule bulwark uses (ZIP-215) every verifier gives the same answer
//! for a transaction however the transactions around it are sliced.
#![allow(clippy::unwrap_used)]

use bulwark_engine::codec::{verify_batch, verify_batch_parallel, verify_one, SignedTx};
use bulwark_engine::command::{LimitOrder, SelfTradePrevention, TimeInForce};
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
use curve25519_dalek::constants::{ED25519_BASEPOINT_TABLE, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest as _, Sha512};

fn order(k: u64) -> ClientCommand {
    ClientCommand::Limit(LimitOrder {
        instrument: InstrumentId(0),
        side: if k.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        price: 600_000 + k as i64,
        qty: 1,
        tif: TimeInForce::Gtc,
        post_only: false,
        reduce_only: false,
        stp: SelfTradePrevention::CancelResting,
        client_order_id: k,
    })
}

/// The key owner's own signature of `tx`, with `torsion` (a point of order 1, 2, 4 or 8) added
/// to `R` and the challenge computed over that `R`: valid under the cofactored equation,
/// invalid under the cofactorless one unless the torsion point is the identity.
fn malleated(
    secret: Scalar,
    public: [u8; 32],
    mut tx: SignedTx,
    torsion: usize,
    k: u64,
) -> SignedTx {
    let nonce = Scalar::from_bytes_mod_order(*blake3::hash(&k.to_le_bytes()).as_bytes());
    let r = &nonce * ED25519_BASEPOINT_TABLE + EIGHT_TORSION[torsion];
    let r_bytes = r.compress().to_bytes();
    let challenge = Scalar::from_hash(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(public)
            .chain_update(tx.signed_message()),
    );
    let s = nonce + challenge * secret;
    tx.signature[..32].copy_from_slice(&r_bytes);
    tx.signature[32..].copy_from_slice(&s.to_bytes());
    tx
}

#[test]
fn a_signature_is_accepted_the_same_way_in_every_slice() {
    // The attacker's key: a secret scalar of its own choosing (not a weak key).
    let secret = Scalar::from_bytes_mod_order([7u8; 32]);
    let public = (&secret * ED25519_BASEPOINT_TABLE).compress().to_bytes();
    let honest_key = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let honest_public = honest_key.verifying_key().to_bytes();
    let keys = |account: AccountId| match account.0 {
        1 => Some(public),
        2 => Some(honest_public),
        _ => None,
    };
    // 48 transactions: every third one the attacker's, with a torsion point of each order.
    let txs: Vec<SignedTx> = (0..48u64)
        .map(|k| {
            if k % 3 == 0 {
                let unsigned = SignedTx {
                    account: AccountId(1),
                    nonce: k + 1,
                    command: order(k),
                    signature: [0; 64],
                };
                malleated(secret, public, unsigned, (k as usize / 3) % 8, k)
            } else {
                SignedTx::sign(AccountId(2), k + 1, order(k), &honest_key)
            }
        })
        .collect();
    let alone: Vec<bool> = txs.iter().map(|tx| verify_one(tx, keys).is_ok()).collect();
    // Every slicing a replica might check: the whole block, halves, the mempool's remainder
    // (every other transaction), windows of every size, and the parallel verifier.
    let mut slicings: Vec<Vec<Vec<usize>>> = vec![
        vec![(0..48).collect()],
        vec![(0..24).collect(), (24..48).collect()],
        vec![(0..48).step_by(2).collect(), (1..48).step_by(2).collect()],
    ];
    for size in [1, 2, 3, 5, 7, 16] {
        slicings.push(
            (0..48)
                .collect::<Vec<_>>()
                .chunks(size)
                .map(<[usize]>::to_vec)
                .collect(),
        );
    }
    for slicing in &slicings {
        for slice in slicing {
            let batch: Vec<SignedTx> = slice.iter().map(|&i| txs[i].clone()).collect();
            let refused: Vec<usize> = match verify_batch(&batch, keys) {
                Ok(()) => Vec::new(),
                Err(bulwark_engine::codec::VerifyError::BadSignatures(bad)) => bad,
                Err(other) => panic!("{other}"),
            };
            for (position, &index) in slice.iter().enumerate() {
                assert_eq!(
                    !refused.contains(&position),
                    alone[index],
                    "transaction {index} (torsion {}) is judged differently alone and in slice {slice:?}",
                    (index / 3) % 8
                );
            }
        }
    }
    assert_eq!(
        verify_batch_parallel(&txs, keys, 4).is_ok(),
        alone.iter().all(|ok| *ok)
    );
    // ZIP-215 accepts the owner's malleated signatures (the equation is cofactored); what
    // matters is that every verifier agrees. A forger without the key still gets nothing.
    assert!(alone.iter().all(|ok| *ok), "{alone:?}");
    let mut forged = txs[1].clone();
    forged.nonce += 1000;
    assert!(verify_one(&forged, keys).is_err());
}
