//! A whole signing round between members, as the node runs it, with frames encoded and decoded:
//! the coordinator's [`Coordinator`], each member answering only through `release::prepare`,
//! and the record checked by the one rule (libsecp256k1 BIP340, ed25519-dalek strict).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bitcoin::hashes::Hash as _;
use bitcoin::{Amount, OutPoint, Txid};
use bulwark_vault::keygen::{local, KeyShare};
use bulwark_vault::release::VaultSuite;
use bulwark_vault::release::{
    prepare, Authorization, BitcoinBody, BitcoinPolicy, Holdings, Watermarks,
};
use bulwark_vault::round::{Coordinator, Message, SignedWithdrawal, Step};
use bulwark_vault::signing::NonceBook;
use bulwark_vault::taproot::{self, Utxo};
use bulwark_vault::{Chain, Ed25519, Member, Taproot, VaultError};

struct Signer<C: VaultSuite> {
    share: KeyShare<C>,
    book: NonceBook<C>,
    marks: Watermarks,
    /// Byzantine: answers with a share of another message.
    corrupt: bool,
}

fn signers<C: VaultSuite>(n: u16, seed: u8) -> BTreeMap<Member, Signer<C>> {
    local::dkg::<C>(n, [seed; 32])
        .unwrap()
        .into_iter()
        .map(|(m, share)| {
            let mut book = NonceBook::default();
            book.precompute(&share, 8, [seed ^ m as u8; 32]);
            (
                m,
                Signer {
                    share,
                    book,
                    marks: Watermarks::default(),
                    corrupt: false,
                },
            )
        })
        .collect()
}

/// A member's answer to a frame, encoded, as the node gives it.
fn answer<C: VaultSuite>(
    signer: &mut Signer<C>,
    frame: &[u8],
    authorization: &Authorization,
    policy: Option<&BitcoinPolicy>,
) -> Option<Vec<u8>> {
    match Message::decode(frame).unwrap() {
        Message::Commit {
            chain,
            withdrawal,
            round,
            count,
            ..
        } => {
            let slots = (0..u64::MAX)
                .filter_map(|slot| {
                    signer
                        .book
                        .commitments(slot)
                        .map(|c| (slot, c.serialize().unwrap()))
                })
                .take(usize::from(count))
                .collect();
            Some(
                Message::Commitments {
                    chain,
                    withdrawal,
                    round,
                    slots,
                }
                .encode(),
            )
        }
        Message::Sign { round, request } => {
            let holdings = Holdings {
                share: &signer.share,
                book: &signer.book,
                watermarks: &signer.marks,
            };
            let prepared = prepare::<C>(&request, Some(authorization), &holdings, policy).unwrap();
            assert!(signer
                .marks
                .mark(request.chain, request.withdrawal, prepared.transaction));
            let nonces: Vec<_> = prepared
                .slots()
                .iter()
                .map(|s| signer.book.spend(*s).unwrap())
                .collect();
            let mut shares = prepared.sign(&nonces, &signer.share).unwrap();
            if signer.corrupt {
                shares[0][5] ^= 1;
            }
            Some(
                Message::Shares {
                    chain: request.chain,
                    withdrawal: request.withdrawal,
                    round,
                    shares,
                }
                .encode(),
            )
        }
        _ => None,
    }
}

/// Runs one round; returns the record or the members that failed it.
fn run<C: VaultSuite>(
    members: &mut BTreeMap<Member, Signer<C>>,
    coordinator_member: Member,
    authorization: Authorization,
    body: Option<BitcoinBody>,
    policy: Option<&BitcoinPolicy>,
    round: u64,
) -> Result<SignedWithdrawal, Vec<Member>> {
    let share = members[&coordinator_member].share.clone();
    let mut coordinator =
        Coordinator::<C>::new(round, 0, authorization, body, policy, &share).unwrap();
    let commit = coordinator.commit_request().encode();
    let mut requests = BTreeMap::new();
    for (m, signer) in members.iter_mut() {
        let reply = answer(signer, &commit, &authorization, policy).unwrap();
        let Message::Commitments { slots, .. } = Message::decode(&reply).unwrap() else {
            panic!("commitments")
        };
        if let Step::Send(out) = coordinator.on_commitments(*m, &slots).unwrap() {
            requests = out;
        }
    }
    assert_eq!(
        requests.len(),
        usize::from(share.threshold()),
        "t signers chosen"
    );
    for (m, request) in requests {
        let reply = answer(
            members.get_mut(&m).unwrap(),
            &request.encode(),
            &authorization,
            policy,
        )
        .unwrap();
        let Message::Shares { shares, .. } = Message::decode(&reply).unwrap() else {
            panic!("shares")
        };
        match coordinator.on_shares(m, &shares, &share) {
            Ok(Step::Done(signatures)) => return Ok(coordinator.record(&signatures)),
            Ok(_) => {}
            Err(VaultError::Crypto(_)) => {
                return Err(coordinator.failed().iter().copied().collect())
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the round neither finished nor failed")
}

#[test]
fn a_taproot_withdrawal_is_signed_in_one_round_and_the_record_checks_under_the_output_key() {
    let mut members = signers::<Taproot>(4, 3);
    let key = members[&1].share.group_key();
    let policy = BitcoinPolicy {
        vault_key: key[1..33].try_into().unwrap(),
        fee_min_sats: 200,
        fee_rate_min_sat_vb: 1,
        fee_max_sats: 5_000,
    };
    let destination = {
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let kp = bitcoin::secp256k1::Keypair::from_seckey_slice(&secp, &[9; 32]).unwrap();
        kp.x_only_public_key().0.serialize()
    };
    let authorization = Authorization {
        withdrawal: 7,
        chain: Chain::Bitcoin,
        destination,
        amount: 70_000,
    };
    let utxos = [Utxo {
        outpoint: OutPoint::new(Txid::from_byte_array([4; 32]), 1),
        value: Amount::from_sat(100_000),
    }];
    let vault = taproot::vault_script(&policy.vault_key).unwrap();
    let (tx, _) = taproot::build(
        &utxos,
        &vault,
        &destination,
        Amount::from_sat(70_000),
        Amount::from_sat(500),
    )
    .unwrap();
    let body = BitcoinBody {
        tx: bitcoin::consensus::serialize(&tx),
        prevout_sats: vec![100_000],
    };
    let record = run(&mut members, 2, authorization, Some(body), Some(&policy), 1).unwrap();
    let ed25519_key = [0u8; 32];
    let messages = record.check(&authorization, &ed25519_key, &policy).unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(record.txid().unwrap(), tx.compute_txid().to_string());
    // Through the frame codec and back, the record still checks.
    let frame = Message::Signed(record.clone()).encode();
    let Message::Signed(again) = Message::decode(&frame).unwrap() else {
        panic!()
    };
    again.check(&authorization, &ed25519_key, &policy).unwrap();

    // A record for another amount, another id, or with a signature bit flipped does not check.
    let other = Authorization {
        amount: 70_001,
        ..authorization
    };
    assert!(record.check(&other, &ed25519_key, &policy).is_err());
    let other = Authorization {
        withdrawal: 8,
        ..authorization
    };
    assert!(record.check(&other, &ed25519_key, &policy).is_err());
    let mut flipped = record.clone();
    flipped.signatures[0][10] ^= 1;
    assert!(flipped
        .check(&authorization, &ed25519_key, &policy)
        .is_err());
}

#[test]
fn an_ed25519_withdrawal_is_signed_and_a_corrupt_share_names_its_signer() {
    let mut members = signers::<Ed25519>(4, 5);
    let key: [u8; 32] = members[&1].share.group_key().try_into().unwrap();
    let policy = BitcoinPolicy {
        vault_key: [0; 32],
        fee_min_sats: 0,
        fee_rate_min_sat_vb: 0,
        fee_max_sats: 0,
    };
    let authorization = Authorization {
        withdrawal: 3,
        chain: Chain::Ed25519,
        destination: ed25519_dalek::SigningKey::from_bytes(&[8; 32])
            .verifying_key()
            .to_bytes(),
        amount: 12_345,
    };
    // Member 2 corrupts its share: the round fails and names member 2 alone.
    members.get_mut(&2).unwrap().corrupt = true;
    let failed = run(&mut members, 1, authorization, None, None, 1).unwrap_err();
    assert_eq!(failed, vec![2]);
    // The Ed25519 watermark allows one signing per withdrawal: the others marked it, so the
    // next honest attempt for the same withdrawal is another id here.
    members.get_mut(&2).unwrap().corrupt = false;
    let next = Authorization {
        withdrawal: 4,
        ..authorization
    };
    let record = run(&mut members, 3, next, None, None, 2).unwrap();
    record.check(&next, &key, &policy).unwrap();
    let message = bulwark_vault::release::ed25519_message(&next);
    let signature = ed25519_dalek::Signature::from_slice(&record.signatures[0]).unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .unwrap()
        .verify_strict(&message, &signature)
        .unwrap();
}

#[test]
fn frames_are_bounded_and_garbage_is_a_typed_error() {
    assert!(matches!(
        Message::decode(&vec![0u8; bulwark_vault::round::FRAME_BYTES_MAX + 1]),
        Err(VaultError::TooLong { .. })
    ));
    assert!(matches!(
        Message::decode(&[0xff, 0xff, 0xff]),
        Err(VaultError::Malformed(_))
    ));
    let mut frame = Message::Commit {
        epoch: 0,
        chain: Chain::Bitcoin,
        withdrawal: 1,
        round: 2,
        count: 1,
        bitcoin: None,
    }
    .encode();
    frame.push(0);
    assert!(matches!(
        Message::decode(&frame),
        Err(VaultError::Malformed(_))
    ));
}
