//! The vault's keys end to end among in-memory members: DKG without a dealer, signing a real
//! taproot spend and an Ed25519 withdrawal (checked with libsecp256k1 and ed25519-dalek, not with
//! FROST), refresh without a removed member, and every refusal a hostile coordinator or
//! participant meets.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::hashes::Hash as _;
use bitcoin::{Amount, OutPoint, Txid};
use bulwark_vault::keygen::{Ceremony, KeyShare};
use bulwark_vault::release::{
    ed25519_message, prepare, Authorization, BitcoinBody, BitcoinPolicy, Holdings, Mark, Refusal,
    SignRequest, VaultSuite, Watermarks, ATTEMPTS_MAX, WATERMARKS_MAX,
};
use bulwark_vault::signing::{aggregate, decode_share, package, NonceBook};
use bulwark_vault::taproot::{self, TxRefusal, Utxo};
use bulwark_vault::{threshold, Chain, Ed25519, Member, Taproot, VaultError};
use frost_core::round1::SigningCommitments;
use frost_core::Ciphersuite;

/// Per member: its nonce book and the commitments it published (slot, commitment).
type Books<C> = BTreeMap<Member, (NonceBook<C>, Vec<(u64, SigningCommitments<C>)>)>;

fn seed(member: Member, label: u8) -> [u8; 32] {
    let mut seed = [label; 32];
    seed[..2].copy_from_slice(&member.to_be_bytes());
    seed
}

fn members(n: u16) -> BTreeSet<Member> {
    (1..=n).collect()
}

fn run<C: Ciphersuite>(
    starts: BTreeMap<Member, (Ceremony<C>, Vec<u8>)>,
) -> BTreeMap<Member, KeyShare<C>> {
    bulwark_vault::keygen::local::run(starts).expect("every message is honest")
}

fn dkg<C: Ciphersuite>(n: u16, label: u8) -> BTreeMap<Member, KeyShare<C>> {
    let all = members(n);
    let t = threshold(usize::from(n));
    run(all
        .iter()
        .map(|m| {
            (
                *m,
                Ceremony::<C>::dkg(*m, &all, t, seed(*m, label)).expect("start"),
            )
        })
        .collect())
}

fn refresh<C: Ciphersuite>(
    shares: &BTreeMap<Member, KeyShare<C>>,
    keep: &BTreeSet<Member>,
    label: u8,
) -> BTreeMap<Member, KeyShare<C>> {
    run(keep
        .iter()
        .map(|m| {
            (
                *m,
                Ceremony::refresh(shares[m].clone(), keep, seed(*m, label)).expect("start"),
            )
        })
        .collect())
}

/// Each member's nonce book with a few published commitments.
fn books<C: Ciphersuite>(shares: &BTreeMap<Member, KeyShare<C>>) -> Books<C> {
    shares
        .iter()
        .map(|(m, share)| {
            let mut book = NonceBook::default();
            let published = book.precompute(share, 16, seed(*m, 77));
            (*m, (book, published))
        })
        .collect()
}

fn xonly(share: &KeyShare<Taproot>) -> [u8; 32] {
    share.group_key()[1..33].try_into().expect("33-byte key")
}

struct Taprooted {
    tx: bitcoin::Transaction,
    prevouts: Vec<bitcoin::TxOut>,
    authorization: Authorization,
    policy: BitcoinPolicy,
}

impl Taprooted {
    /// The unsigned transaction as a sign request carries it.
    fn body(&self) -> BitcoinBody {
        BitcoinBody {
            tx: bitcoin::consensus::serialize(&self.tx),
            prevout_sats: self.prevouts.iter().map(|p| p.value.to_sat()).collect(),
        }
    }

    /// Each input's BIP341 sighash: the messages a round signs.
    fn sighashes(&self) -> Vec<Vec<u8>> {
        (0..self.tx.input.len())
            .map(|i| {
                taproot::sighash(&self.tx, &self.prevouts, i)
                    .expect("sighash")
                    .to_vec()
            })
            .collect()
    }
}

fn withdrawal(shares: &BTreeMap<Member, KeyShare<Taproot>>, id: u64) -> Taprooted {
    let any = shares.values().next().expect("a share");
    let policy = BitcoinPolicy {
        vault_key: xonly(any),
        fee_min_sats: 200,
        fee_rate_min_sat_vb: 2,
        fee_max_sats: 5_000,
    };
    let vault = taproot::vault_script(&policy.vault_key).expect("the group key is a point");
    // A destination that is a real x-only key (a libsecp256k1 key pair's).
    let secp = secp256k1::Secp256k1::new();
    let destination_key = secp256k1::Keypair::from_seckey_slice(&secp, &[0x42; 32]).expect("key");
    let destination = destination_key.x_only_public_key().0.serialize();
    let utxos = [
        Utxo {
            outpoint: OutPoint::new(Txid::from_byte_array([1; 32]), 0),
            value: Amount::from_sat(60_000),
        },
        Utxo {
            outpoint: OutPoint::new(Txid::from_byte_array([2; 32]), 3),
            value: Amount::from_sat(50_000),
        },
    ];
    let amount = Amount::from_sat(100_000);
    let (tx, prevouts) = taproot::build(
        &utxos,
        &vault,
        &destination,
        amount,
        Amount::from_sat(1_000),
    )
    .expect("the vault holds enough");
    Taprooted {
        tx,
        prevouts,
        authorization: Authorization {
            withdrawal: id,
            chain: Chain::Bitcoin,
            destination,
            amount: amount.to_sat(),
        },
        policy,
    }
}

/// The coordinator's request for `signers`, one package per message, with the next published
/// slot of each signer (`slot_index` into its published list).
fn request<C: VaultSuite>(
    books: &Books<C>,
    signers: &[Member],
    slot_index: usize,
    id: u64,
    bitcoin: Option<BitcoinBody>,
    messages: &[Vec<u8>],
) -> BTreeMap<Member, SignRequest> {
    let mut per_signer: BTreeMap<Member, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    for (i, message) in messages.iter().enumerate() {
        let mut commitments = BTreeMap::new();
        for signer in signers {
            let (slot, commitment) = books[signer].1[slot_index + i];
            commitments.insert(*signer, commitment);
            per_signer
                .entry(*signer)
                .or_default()
                .push((slot, Vec::new()));
        }
        let bytes = package::<C>(&commitments, message)
            .expect("members")
            .serialize()
            .expect("encodes");
        for signer in signers {
            per_signer.get_mut(signer).expect("inserted")[i].1 = bytes.clone();
        }
    }
    per_signer
        .into_iter()
        .map(|(m, packages)| {
            (
                m,
                SignRequest {
                    withdrawal: id,
                    chain: C::CHAIN,
                    bitcoin: bitcoin.clone(),
                    packages,
                },
            )
        })
        .collect()
}

/// Every signer checks, marks, spends and signs; the coordinator aggregates per message.
fn sign_all<C: VaultSuite>(
    shares: &BTreeMap<Member, KeyShare<C>>,
    books: &mut Books<C>,
    watermarks: &mut BTreeMap<Member, Watermarks>,
    requests: &BTreeMap<Member, SignRequest>,
    authorization: &Authorization,
    policy: Option<&BitcoinPolicy>,
) -> Result<Vec<frost_core::Signature<C>>, Refusal> {
    let mut per_message: Vec<BTreeMap<Member, frost_core::round2::SignatureShare<C>>> = Vec::new();
    let mut packages = Vec::new();
    for (member, request) in requests {
        let marks = watermarks.entry(*member).or_default();
        let holdings = Holdings {
            share: &shares[member],
            book: &books[member].0,
            watermarks: marks,
        };
        let prepared = prepare::<C>(request, Some(authorization), &holdings, policy)?;
        assert!(marks.mark(request.chain, request.withdrawal, prepared.transaction));
        let book = &mut books.get_mut(member).expect("a book").0;
        let nonces: Vec<_> = prepared
            .slots()
            .iter()
            .map(|slot| book.spend(*slot).expect("an unspent slot"))
            .collect();
        let out = prepared.sign(&nonces, &shares[member]).expect("signs");
        per_message.resize_with(out.len(), BTreeMap::new);
        for (i, bytes) in out.iter().enumerate() {
            per_message[i].insert(*member, decode_share::<C>(bytes).expect("decodes"));
        }
        packages = prepared.packages.into_iter().map(|(_, p)| p).collect();
    }
    let public = &shares[requests.keys().next().expect("a signer")].public;
    Ok(packages
        .iter()
        .zip(&per_message)
        .map(|(package, shares)| aggregate(package, shares, public).expect("aggregates"))
        .collect())
}

/// `signers` sign `authorization`'s Ed25519 message; ed25519-dalek's strict check accepts the
/// signature under the group key. Returns the key and the signature.
fn ed25519_signed(
    shares: &BTreeMap<Member, KeyShare<Ed25519>>,
    signers: &[Member],
    authorization: &Authorization,
) -> (ed25519_dalek::VerifyingKey, ed25519_dalek::Signature) {
    let message = ed25519_message(authorization);
    let mut books = books(shares);
    let id = authorization.withdrawal;
    let requests = request(&books, signers, 0, id, None, std::slice::from_ref(&message));
    let signatures = sign_all(
        shares,
        &mut books,
        &mut BTreeMap::new(),
        &requests,
        authorization,
        None,
    )
    .expect("authorized");
    let any = shares.values().next().expect("a share");
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&any.group_key().try_into().expect("32 bytes"))
            .expect("a point");
    let signature =
        ed25519_dalek::Signature::from_slice(&signatures[0].serialize().expect("encodes"))
            .expect("64 bytes");
    key.verify_strict(&message, &signature)
        .expect("ed25519-dalek accepts the threshold signature");
    (key, signature)
}

fn bip340_verifies(signature: &[u8], message: &[u8], xonly: &[u8; 32]) -> bool {
    let secp = secp256k1::Secp256k1::verification_only();
    let Ok(signature) = secp256k1::schnorr::Signature::from_slice(signature) else {
        return false;
    };
    let Ok(key) = secp256k1::XOnlyPublicKey::from_slice(xonly) else {
        return false;
    };
    let Ok(message) = secp256k1::Message::from_digest_slice(message) else {
        return false;
    };
    secp.verify_schnorr(&signature, &message, &key).is_ok()
}

#[test]
fn any_t_members_sign_a_real_taproot_spend_that_libsecp256k1_accepts() {
    for n in [4u16, 7] {
        let shares = dkg::<Taproot>(n, 1);
        assert_eq!(shares.len(), usize::from(n));
        let keys: BTreeSet<_> = shares.values().map(|s| s.group_key()).collect();
        assert_eq!(keys.len(), 1, "every member holds a share of one key");
        let t = usize::from(threshold(usize::from(n)));
        let w = withdrawal(&shares, 9);
        let body = w.body();
        let messages = w.sighashes();
        // The last t members, then the first t: any t suffice.
        for (round, signers) in [
            ((n as usize - t + 1)..=n as usize)
                .map(|m| m as Member)
                .collect::<Vec<_>>(),
            (1..=t).map(|m| m as Member).collect(),
        ]
        .into_iter()
        .enumerate()
        {
            let mut books = books(&shares);
            let mut marks = BTreeMap::new();
            let requests = request(
                &books,
                &signers,
                0,
                9 + round as u64,
                Some(body.clone()),
                &messages,
            );
            let mut authorization = w.authorization;
            authorization.withdrawal = 9 + round as u64;
            let signatures = sign_all(
                &shares,
                &mut books,
                &mut marks,
                &requests,
                &authorization,
                Some(&w.policy),
            )
            .expect("authorized");
            let signatures: Vec<[u8; 64]> = signatures
                .iter()
                .map(|s| {
                    s.serialize()
                        .expect("encodes")
                        .try_into()
                        .expect("64 bytes")
                })
                .collect();
            for (i, signature) in signatures.iter().enumerate() {
                assert!(
                    bip340_verifies(signature, &messages[i], &w.policy.vault_key),
                    "n = {n}: input {i}'s BIP340 signature verifies under the output key"
                );
                let mut other = messages[i].clone();
                other[0] ^= 1;
                assert!(!bip340_verifies(signature, &other, &w.policy.vault_key));
            }
            let signed = taproot::finalize(w.tx.clone(), &signatures);
            assert!(signed.input.iter().all(|input| input.witness.len() == 1));
            assert_eq!(signed.output[0].value, Amount::from_sat(100_000));
            assert_eq!(
                signed.output[0].script_pubkey,
                taproot::destination_script(&w.authorization.destination).expect("key")
            );
        }
    }
}

#[test]
fn an_ed25519_withdrawal_signed_by_t_members_passes_verify_strict() {
    for n in [4u16, 7] {
        let shares = dkg::<Ed25519>(n, 2);
        let t = usize::from(threshold(usize::from(n)));
        let authorization = Authorization {
            withdrawal: 3,
            chain: Chain::Ed25519,
            destination: [5; 32],
            amount: 1_000_000,
        };
        let signers: Vec<Member> = (1..=t as Member).collect();
        let (key, signature) = ed25519_signed(&shares, &signers, &authorization);
        assert!(key.verify_strict(b"another message", &signature).is_err());
    }
}

#[test]
fn after_a_refresh_without_member_four_old_shares_no_longer_combine() {
    let shares = dkg::<Ed25519>(4, 3);
    let keep: BTreeSet<Member> = [1, 2, 3].into();
    let fresh = refresh(&shares, &keep, 4);
    assert_eq!(fresh.len(), 3);
    for (m, share) in &fresh {
        assert_eq!(
            share.group_key(),
            shares[m].group_key(),
            "the group key stays"
        );
        assert_ne!(
            share.key.signing_share(),
            shares[m].key.signing_share(),
            "every share moves"
        );
        assert!(
            !share.holders().contains(&4),
            "member 4 holds nothing in the new sharing"
        );
    }
    let authorization = Authorization {
        withdrawal: 1,
        chain: Chain::Ed25519,
        destination: [6; 32],
        amount: 7,
    };
    let message = ed25519_message(&authorization);
    // The three that stay sign with their new shares.
    let mut new_books = books(&fresh);
    let requests = request(
        &new_books,
        &[1, 2, 3],
        0,
        1,
        None,
        std::slice::from_ref(&message),
    );
    sign_all(
        &fresh,
        &mut new_books,
        &mut BTreeMap::new(),
        &requests,
        &authorization,
        None,
    )
    .expect("the new sharing signs");
    // Member 4's old share with two new ones: the shares do not combine, under the new public
    // package or the old one.
    let mut mixed: BTreeMap<Member, KeyShare<Ed25519>> = BTreeMap::new();
    mixed.insert(1, fresh[&1].clone());
    mixed.insert(2, fresh[&2].clone());
    mixed.insert(4, shares[&4].clone());
    let mut mixed_books = books(&mixed);
    let mut commitments = BTreeMap::new();
    for m in [1, 2, 4] {
        commitments.insert(m, mixed_books[&m].1[0].1);
    }
    let signing = package::<Ed25519>(&commitments, &message).expect("members");
    let mut sig_shares = BTreeMap::new();
    for m in [1u16, 2, 4] {
        let slot = mixed_books[&m].1[0].0;
        let nonces = mixed_books
            .get_mut(&m)
            .expect("book")
            .0
            .spend(slot)
            .expect("slot");
        // The vault's own `sign` already refuses a package naming member 4 under the new
        // sharing; FROST's raw round 2 shows the shares are useless even when made.
        let refused = bulwark_vault::signing::sign(&signing, &nonces, &mixed[&m]);
        assert!(
            matches!(refused, Err(VaultError::Committee { .. })) || m == 4,
            "member {m}: {refused:?}"
        );
        let share =
            frost_core::round2::sign(&signing, &nonces, &mixed[&m].key).expect("raw round 2");
        sig_shares.insert(m, share);
    }
    assert!(matches!(
        aggregate(&signing, &sig_shares, &fresh[&1].public),
        Err(VaultError::Crypto(_))
    ));
    assert!(matches!(
        aggregate(&signing, &sig_shares, &shares[&1].public),
        Err(VaultError::Crypto(_))
    ));
    // And a member left out cannot take part in a refresh of the new sharing.
    assert!(matches!(
        Ceremony::refresh(fresh[&1].clone(), &members(4), seed(1, 5)),
        Err(VaultError::NotAParticipant(4))
    ));
}

#[test]
fn a_withdrawal_is_signed_once_and_only_as_authorized() {
    let shares = dkg::<Taproot>(4, 6);
    let w = withdrawal(&shares, 21);
    let body = w.body();
    let messages = w.sighashes();
    let mut books = books(&shares);
    let mut marks = BTreeMap::new();
    let requests = request(&books, &[1, 2, 3], 0, 21, Some(body.clone()), &messages);
    sign_all(
        &shares,
        &mut books,
        &mut marks,
        &requests,
        &w.authorization,
        Some(&w.policy),
    )
    .expect("first time");
    // A retry of the same transaction with other signers and fresh nonces (a signer of the
    // first round sent a bad share, say) is answered: it signs the same txid, which the chain
    // accepts once.
    let retry = request(&books, &[2, 3, 4], 2, 21, Some(body.clone()), &messages);
    let again = sign_all(
        &shares,
        &mut books,
        &mut marks,
        &retry,
        &w.authorization,
        Some(&w.policy),
    )
    .expect("a retry of the same transaction");
    for (signature, message) in again.iter().zip(&messages) {
        let bytes = signature.serialize().expect("encodes");
        assert!(bip340_verifies(&bytes, message, &w.policy.vault_key));
    }
    // Another transaction for the same withdrawal (other inputs: a second payout) is refused by
    // every member that signed the first, and that is not evidence (an honest coordinator may
    // not know the first transaction); nothing is marked or spent by the refusal.
    let other_utxos = [Utxo {
        outpoint: OutPoint::new(Txid::from_byte_array([9; 32]), 1),
        value: Amount::from_sat(200_000),
    }];
    let vault_script = taproot::vault_script(&w.policy.vault_key).expect("a point");
    let (other_tx, other_prevouts) = taproot::build(
        &other_utxos,
        &vault_script,
        &w.authorization.destination,
        Amount::from_sat(w.authorization.amount),
        Amount::from_sat(1_000),
    )
    .expect("enough");
    let other_messages = vec![taproot::sighash(&other_tx, &other_prevouts, 0)
        .expect("sighash")
        .to_vec()];
    let other_body = BitcoinBody {
        tx: bitcoin::consensus::serialize(&other_tx),
        prevout_sats: vec![200_000],
    };
    let second = request(&books, &[1, 2, 3], 4, 21, Some(other_body), &other_messages);
    for (m, req) in &second {
        let holdings = Holdings {
            share: &shares[m],
            book: &books[m].0,
            watermarks: &marks[m],
        };
        let refusal = prepare::<Taproot>(req, Some(&w.authorization), &holdings, Some(&w.policy))
            .err()
            .expect("refused");
        assert_eq!(refusal, Refusal::AlreadySigned(21));
        assert!(!refusal.is_evidence());
    }
    assert_eq!(books[&1].0.unspent(), 16 - 2, "a refusal spends nothing");
    let fresh_marks = Watermarks::default();
    let check = |req: &SignRequest, auth: Option<&Authorization>| {
        let holdings = Holdings {
            share: &shares[&1],
            book: &books[&1].0,
            watermarks: &fresh_marks,
        };
        prepare::<Taproot>(req, auth, &holdings, Some(&w.policy)).err()
    };
    let base = &request(&books, &[1, 2, 3], 6, 21, Some(body.clone()), &messages)[&1];
    // Not authorized by any finalized block.
    assert_eq!(check(base, None), Some(Refusal::NotAuthorized(21)));
    let mut other_id = w.authorization;
    other_id.withdrawal = 22;
    assert_eq!(
        check(base, Some(&other_id)),
        Some(Refusal::NotAuthorized(21))
    );
    // The ledger authorized another destination, or another amount.
    for (field, authorization) in [
        ("destination", {
            let mut a = w.authorization;
            a.destination = secp_xonly(0x43);
            a
        }),
        ("amount", {
            let mut a = w.authorization;
            a.amount += 1;
            a
        }),
    ] {
        assert!(
            matches!(
                check(base, Some(&authorization)),
                Some(Refusal::Transaction {
                    reason: TxRefusal::Destination { .. },
                    ..
                })
            ),
            "{field}"
        );
    }
    // The transaction pays a stranger too, or burns the vault in fees.
    let mut stranger = w.tx.clone();
    stranger.output[1].script_pubkey = taproot::destination_script(&secp_xonly(0x44)).expect("key");
    let mut burn = w.tx.clone();
    burn.output.truncate(1);
    // Or leaves change below dust (the chain would not relay it).
    let mut dust = w.tx.clone();
    dust.output[1].value = bitcoin::Amount::from_sat(taproot::DUST_SATS - 1);
    for (tx, expected) in [(stranger, "stranger"), (burn, "fee"), (dust, "dust")] {
        let mut req = base.clone();
        req.bitcoin = Some(BitcoinBody {
            tx: bitcoin::consensus::serialize(&tx),
            prevout_sats: body.prevout_sats.clone(),
        });
        let refusal = check(&req, Some(&w.authorization)).expect("refused");
        let reason = match refusal {
            Refusal::Transaction { reason, .. } => reason,
            other => panic!("{expected}: {other:?}"),
        };
        match expected {
            "stranger" => assert_eq!(reason, TxRefusal::Stranger(1)),
            "dust" => assert_eq!(reason, TxRefusal::Dust(1)),
            _ => assert!(matches!(reason, TxRefusal::Fee { .. }), "{reason:?}"),
        }
    }
    // A package that signs something other than the member's own sighash.
    let mut swapped = messages.clone();
    swapped.swap(0, 1);
    let req = &request(&books, &[1, 2, 3], 8, 21, Some(body.clone()), &swapped)[&1];
    assert_eq!(
        check(req, Some(&w.authorization)),
        Some(Refusal::Message {
            withdrawal: 21,
            index: 0
        })
    );
    // Garbage in every field is a typed refusal, never a panic.
    let mut garbage = base.clone();
    garbage.bitcoin = Some(BitcoinBody {
        tx: vec![0xff; 100],
        prevout_sats: vec![1],
    });
    assert!(matches!(
        check(&garbage, Some(&w.authorization)),
        Some(Refusal::Transaction {
            reason: TxRefusal::Malformed(_),
            ..
        })
    ));
    let mut garbage = base.clone();
    garbage.packages[0].1 = vec![7; 50];
    assert!(matches!(
        check(&garbage, Some(&w.authorization)),
        Some(Refusal::Package { .. })
    ));
    let mut garbage = base.clone();
    garbage.packages[0].1 = vec![7; 20_000];
    assert!(matches!(
        check(&garbage, Some(&w.authorization)),
        Some(Refusal::Package {
            reason: VaultError::TooLong { .. },
            ..
        })
    ));
    let mut wrong_chain = base.clone();
    wrong_chain.chain = Chain::Ed25519;
    assert!(matches!(
        check(&wrong_chain, Some(&w.authorization)),
        Some(Refusal::WrongChain { .. })
    ));
    assert!(!Refusal::NotAuthorized(1).is_evidence(), "a member may lag");
    // A transaction not in build's form would never confirm, or wait, and hold the withdrawal.
    let forms: Vec<(&str, bitcoin::Transaction)> = vec![
        ("version", {
            let mut tx = w.tx.clone();
            tx.version = bitcoin::transaction::Version::ONE;
            tx
        }),
        ("lock time", {
            let mut tx = w.tx.clone();
            tx.lock_time = bitcoin::absolute::LockTime::from_height(900_000).expect("a height");
            tx
        }),
        ("sequence", {
            let mut tx = w.tx.clone();
            tx.input[1].sequence = bitcoin::Sequence::from_height(10);
            tx
        }),
        ("script", {
            let mut tx = w.tx.clone();
            tx.input[0].script_sig = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
            tx
        }),
        ("twice", {
            let mut tx = w.tx.clone();
            tx.input[1].previous_output = tx.input[0].previous_output;
            tx
        }),
    ];
    for (what, tx) in forms {
        let mut req = base.clone();
        req.bitcoin = Some(BitcoinBody {
            tx: bitcoin::consensus::serialize(&tx),
            prevout_sats: body.prevout_sats.clone(),
        });
        let refusal = check(&req, Some(&w.authorization)).expect("refused");
        assert!(
            matches!(
                refusal,
                Refusal::Transaction {
                    reason: TxRefusal::Form(_),
                    ..
                }
            ),
            "{what}: {refusal:?}"
        );
        assert!(refusal.is_evidence(), "{what}");
    }
    // A fee below the floor (the change takes all but 100 sats).
    let mut cheap = w.tx.clone();
    cheap.output[1].value = Amount::from_sat(cheap.output[1].value.to_sat() + 900);
    let mut req = base.clone();
    req.bitcoin = Some(BitcoinBody {
        tx: bitcoin::consensus::serialize(&cheap),
        prevout_sats: body.prevout_sats.clone(),
    });
    assert!(matches!(
        check(&req, Some(&w.authorization)),
        Some(Refusal::Transaction {
            reason: TxRefusal::Fee { fee_sats: 100, .. },
            ..
        })
    ));
    // The floor also scales with the signed transaction's size: at 10 sat/vB the honest
    // transaction's 1 000 sats are too little (two inputs, two outputs: about 212 vB).
    let vsize = taproot::signed_vsize(&w.tx);
    assert!((200..230).contains(&vsize), "{vsize}");
    let strict = BitcoinPolicy {
        fee_rate_min_sat_vb: 10,
        ..w.policy
    };
    let holdings = Holdings {
        share: &shares[&1],
        book: &books[&1].0,
        watermarks: &fresh_marks,
    };
    assert!(matches!(
        prepare::<Taproot>(base, Some(&w.authorization), &holdings, Some(&strict)).err(),
        Some(Refusal::Transaction {
            reason: TxRefusal::Fee {
                fee_sats: 1_000,
                ..
            },
            ..
        })
    ));
}

#[test]
fn a_package_must_name_the_members_published_nonces_and_t_holders() {
    let shares = dkg::<Ed25519>(4, 30);
    let books = books(&shares);
    let authorization = Authorization {
        withdrawal: 5,
        chain: Chain::Ed25519,
        destination: [7; 32],
        amount: 1_000,
    };
    let message = ed25519_message(&authorization);
    let marks = Watermarks::default();
    let holdings = Holdings {
        share: &shares[&1],
        book: &books[&1].0,
        watermarks: &marks,
    };
    let ask = |req: &SignRequest| prepare::<Ed25519>(req, Some(&authorization), &holdings, None);
    let honest = request(
        &books,
        &[1, 2, 3],
        0,
        5,
        None,
        std::slice::from_ref(&message),
    );
    let prepared = ask(&honest[&1]).expect("honest");
    // An Ed25519 withdrawal is signed once: the message is the same for every attempt, so a
    // retry would be a second valid signature.
    let mut signed = Watermarks::default();
    assert!(signed.mark(Chain::Ed25519, 5, prepared.transaction));
    let after = Holdings {
        share: &shares[&1],
        book: &books[&1].0,
        watermarks: &signed,
    };
    let retry = request(
        &books,
        &[1, 2, 3],
        1,
        5,
        None,
        std::slice::from_ref(&message),
    );
    assert_eq!(
        prepare::<Ed25519>(&retry[&1], Some(&authorization), &after, None).err(),
        Some(Refusal::AlreadySigned(5))
    );
    // Member 1's slot 0 with member 1's commitment of slot 1 in the package.
    let mut commitments = BTreeMap::new();
    commitments.insert(1, books[&1].1[1].1);
    commitments.insert(2, books[&2].1[0].1);
    commitments.insert(3, books[&3].1[0].1);
    let swapped = package::<Ed25519>(&commitments, &message)
        .expect("members")
        .serialize()
        .expect("encodes");
    let mut req = honest[&1].clone();
    req.packages[0].1 = swapped;
    let refusal = ask(&req).err().expect("refused");
    assert!(
        matches!(refusal, Refusal::Package { .. }) && refusal.is_evidence(),
        "{refusal:?}"
    );
    // Fewer than t signers, and a signer that holds no share of this sharing.
    for signers in [vec![1, 2], vec![1, 2, 9]] {
        let mut commitments = BTreeMap::new();
        for m in &signers {
            let published = books.get(m).unwrap_or(&books[&4]).1[0].1;
            commitments.insert(*m, published);
        }
        let mut req = honest[&1].clone();
        req.packages[0].1 = package::<Ed25519>(&commitments, &message)
            .expect("members")
            .serialize()
            .expect("encodes");
        assert!(
            matches!(
                ask(&req),
                Err(Refusal::Package {
                    reason: VaultError::Committee { .. },
                    ..
                })
            ),
            "{signers:?}"
        );
    }
    // A slot that is spent (or never made): refused, and not evidence.
    let mut req = honest[&1].clone();
    req.packages[0].0 = 999;
    let refusal = ask(&req).err().expect("refused");
    assert_eq!(
        refusal,
        Refusal::Nonce {
            withdrawal: 5,
            slot: 999
        }
    );
    assert!(!refusal.is_evidence());
}

#[test]
fn watermarks_bind_a_withdrawal_to_one_transaction_and_stay_bounded() {
    let mut marks = Watermarks::default();
    assert_eq!(marks.status(Chain::Bitcoin, 3, &[1; 32]), Mark::New);
    assert!(marks.mark(Chain::Bitcoin, 3, [1; 32]));
    assert_eq!(marks.status(Chain::Bitcoin, 3, &[1; 32]), Mark::Same);
    assert!(marks.mark(Chain::Bitcoin, 3, [1; 32]), "a retry");
    assert!(
        !marks.mark(Chain::Bitcoin, 3, [2; 32]),
        "another transaction"
    );
    assert_eq!(marks.status(Chain::Ed25519, 3, &[2; 32]), Mark::New);
    let json = serde_json::to_string(&marks).expect("serializes");
    let back: Watermarks = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, marks);
    let twice = json.replace(
        "]]",
        &format!("],[\"bitcoin\",3,\"{}\",1]]", "02".repeat(32)),
    );
    assert!(
        serde_json::from_str::<Watermarks>(&twice).is_err(),
        "{twice}"
    );
    let other = json.replace(
        "]]",
        &format!("],[\"bitcoin\",4,\"{}\",1]]", "02".repeat(32)),
    );
    assert!(
        serde_json::from_str::<Watermarks>(&other).is_ok(),
        "{other}"
    );
    let zero = json.replace(",2]]", ",0]]");
    assert_ne!(zero, json);
    assert!(serde_json::from_str::<Watermarks>(&zero).is_err(), "{zero}");
    // A transaction is answered at most ATTEMPTS_MAX times in all.
    let mut retried = Watermarks::default();
    for _ in 0..ATTEMPTS_MAX {
        assert!(retried.mark(Chain::Bitcoin, 9, [5; 32]));
    }
    assert_eq!(retried.status(Chain::Bitcoin, 9, &[5; 32]), Mark::Exhausted);
    assert!(!retried.mark(Chain::Bitcoin, 9, [5; 32]));
    // A node binds at commit requests (binding again counts nothing) and counts releases: the
    // binding and ATTEMPTS_MAX - 1 releases.
    let mut bound = Watermarks::default();
    for _ in 0..3 * ATTEMPTS_MAX {
        assert!(bound.bind(Chain::Bitcoin, 9, [5; 32]));
    }
    assert!(
        !bound.bind(Chain::Bitcoin, 9, [6; 32]),
        "another transaction"
    );
    for _ in 1..ATTEMPTS_MAX {
        assert_eq!(bound.status(Chain::Bitcoin, 9, &[5; 32]), Mark::Same);
        bound.count_release(Chain::Bitcoin, 9);
    }
    assert_eq!(bound.status(Chain::Bitcoin, 9, &[5; 32]), Mark::Exhausted);
    assert!(!bound.bind(Chain::Bitcoin, 9, [5; 32]));
    bound.count_release(Chain::Bitcoin, 9);
    let json = serde_json::to_string(&bound).expect("serializes");
    let read: Watermarks = serde_json::from_str(&json).expect("the count stays in range");
    assert_eq!(read, bound, "the count stays in range");
    // Past the bound the oldest half folds into a floor that never goes down.
    for id in 0..=WATERMARKS_MAX as u64 + 10 {
        assert!(marks.mark(Chain::Ed25519, 100_000 + id, [3; 32]));
    }
    assert_eq!(marks.status(Chain::Ed25519, 100_000, &[3; 32]), Mark::Other);
    assert_eq!(
        marks.status(Chain::Bitcoin, 3, &[1; 32]),
        Mark::Same,
        "per chain"
    );
    let last = 100_000 + WATERMARKS_MAX as u64 + 10;
    assert_eq!(marks.status(Chain::Ed25519, last, &[3; 32]), Mark::Same);
    assert!(
        serde_json::to_vec(&marks).expect("serializes").len() < 2 * 1024 * 1024,
        "the sealed file stays small"
    );
}

fn secp_xonly(byte: u8) -> [u8; 32] {
    let secp = secp256k1::Secp256k1::new();
    secp256k1::Keypair::from_seckey_slice(&secp, &[byte; 32])
        .expect("key")
        .x_only_public_key()
        .0
        .serialize()
}

#[test]
fn a_nonce_is_spent_once_and_the_book_survives_a_restart() {
    let shares = dkg::<Ed25519>(4, 8);
    let mut book = NonceBook::default();
    let published = book.precompute(&shares[&1], 5, seed(1, 9));
    assert_eq!(published.len(), 5);
    let slot = published[2].0;
    let bytes = book.to_bytes();
    book.spend(slot).expect("unspent");
    assert!(book.spend(slot).is_err(), "a slot is spent once");
    // The book on disk before the spend still has it; the caller persists after spending.
    let mut restored = NonceBook::<Ed25519>::from_bytes(&bytes).expect("round trip");
    assert_eq!(restored.unspent(), 5);
    restored.spend(slot).expect("it was unspent on disk");
    let after = NonceBook::<Ed25519>::from_bytes(&restored.to_bytes()).expect("round trip");
    assert_eq!(after.unspent(), 4);
    // New slots never reuse a number, even after the book was cleared.
    let mut cleared = after;
    cleared.clear();
    let next = cleared.precompute(&shares[&1], 1, seed(1, 10));
    assert!(next[0].0 > published.last().expect("five").0);
    for garbage in [&[][..], &[0xff; 13][..], &bytes[..bytes.len() - 1]] {
        assert!(NonceBook::<Ed25519>::from_bytes(garbage).is_err());
    }
    let share = KeyShare::<Ed25519>::from_bytes(&shares[&2].to_bytes()).expect("round trip");
    assert_eq!(share, shares[&2]);
    let mut mixed = shares[&2].to_bytes();
    let other = shares[&3].to_bytes();
    let len = u32::from_be_bytes(mixed[..4].try_into().expect("4")) as usize;
    mixed.truncate(4 + len);
    mixed.extend_from_slice(&other[4 + len..]);
    assert!(
        KeyShare::<Ed25519>::from_bytes(&mixed).is_ok(),
        "same public half"
    );
    let foreign = dkg::<Ed25519>(4, 11);
    let mut mismatched = shares[&2].to_bytes()[..4 + len].to_vec();
    mismatched.extend_from_slice(&foreign[&2].to_bytes()[4 + len..]);
    assert!(KeyShare::<Ed25519>::from_bytes(&mismatched).is_err());
}

#[test]
fn a_hostile_participant_cannot_break_or_bend_the_ceremony() {
    let all = members(4);
    let t = threshold(4);
    let (mut one, _) = Ceremony::<Taproot>::dkg(1, &all, t, seed(1, 12)).expect("start");
    let (_, two) = Ceremony::<Taproot>::dkg(2, &all, t, seed(2, 12)).expect("start");
    let (_, two_again) = Ceremony::<Taproot>::dkg(2, &all, t, seed(2, 13)).expect("start");
    assert!(matches!(
        one.receive_round1(9, &two),
        Err(VaultError::NotAParticipant(9))
    ));
    assert!(matches!(
        one.receive_round1(1, &two),
        Err(VaultError::NotAParticipant(1))
    ));
    assert!(matches!(
        one.receive_round1(3, &[1, 2, 3]),
        Err(VaultError::Malformed(_))
    ));
    assert!(matches!(
        one.receive_round1(3, &vec![0; 10_000]),
        Err(VaultError::TooLong { .. })
    ));
    assert_eq!(one.receive_round1(2, &two).expect("valid"), None);
    assert_eq!(one.receive_round1(2, &two).expect("a resend"), None);
    assert!(matches!(
        one.receive_round1(2, &two_again),
        Err(VaultError::Conflicting {
            member: 2,
            round: 1
        })
    ));
    assert!(matches!(
        one.receive_round2(2, &[0; 40]),
        Err(VaultError::OutOfOrder { round: 2, .. })
    ));
    assert_eq!(one.waiting_for(), vec![3, 4]);
    // A round-2 package meant for another member does not match its sender's commitment.
    let mut starts: BTreeMap<Member, (Ceremony<Ed25519>, Vec<u8>)> = all
        .iter()
        .map(|m| (*m, Ceremony::dkg(*m, &all, t, seed(*m, 14)).expect("start")))
        .collect();
    let round1: Vec<(Member, Vec<u8>)> = starts.iter().map(|(m, (_, b))| (*m, b.clone())).collect();
    let mut round2: BTreeMap<(Member, Member), Vec<u8>> = BTreeMap::new();
    for (from, bytes) in &round1 {
        for (to, (ceremony, _)) in starts.iter_mut() {
            if to != from {
                if let Some(out) = ceremony.receive_round1(*from, bytes).expect("round 1") {
                    for (dest, package) in out {
                        round2.insert((*to, dest), package);
                    }
                }
            }
        }
    }
    let victim = &mut starts.get_mut(&1).expect("member 1").0;
    victim
        .receive_round2(2, &round2[&(2, 1)])
        .expect("honest package");
    victim
        .receive_round2(3, &round2[&(3, 1)])
        .expect("honest package");
    // Member 4 sends member 1 the package it made for member 2.
    assert!(matches!(
        victim.receive_round2(4, &round2[&(4, 2)]),
        Err(VaultError::Crypto(_))
    ));
    // Committees that cannot hold a vault are refused before anything is drawn.
    for (members, t) in [
        (members(1), 2),
        (members(4), 1),
        (members(4), 5),
        (members(65), 40),
    ] {
        assert!(matches!(
            Ceremony::<Ed25519>::dkg(1, &members, t, [0; 32]),
            Err(VaultError::Committee { .. })
        ));
    }
    assert!(matches!(
        Ceremony::<Ed25519>::dkg(9, &members(4), 3, [0; 32]),
        Err(VaultError::NotAParticipant(9))
    ));
}

#[test]
fn the_threshold_is_n_minus_f() {
    assert_eq!(threshold(4), 3);
    assert_eq!(threshold(7), 5);
    assert_eq!(threshold(10), 7);
    assert_eq!(threshold(3), 3);
}

#[test]
fn a_refreshed_taproot_sharing_still_spends_to_the_same_output_key() {
    let shares = dkg::<Taproot>(4, 15);
    let keep: BTreeSet<Member> = [1, 2, 4].into();
    let fresh = refresh(&shares, &keep, 16);
    let w = withdrawal(&fresh, 30);
    assert_eq!(
        w.policy.vault_key,
        xonly(&shares[&1]),
        "the vault's address stays"
    );
    let body = w.body();
    let messages = w.sighashes();
    let mut books = books(&fresh);
    let requests = request(&books, &[1, 2, 4], 0, 30, Some(body), &messages);
    let signatures = sign_all(
        &fresh,
        &mut books,
        &mut BTreeMap::new(),
        &requests,
        &w.authorization,
        Some(&w.policy),
    )
    .expect("authorized");
    for (i, signature) in signatures.iter().enumerate() {
        assert!(bip340_verifies(
            &signature.serialize().expect("encodes"),
            &messages[i],
            &w.policy.vault_key
        ));
    }
}

/// Issue #14's repair: after the others refreshed without member 4, member 4 (re-admitted, or a
/// replacement in its seat) gets a share of the new sharing from t helpers. Its share signs with
/// two others (checked with libsecp256k1 and ed25519-dalek), its old share stays useless, and a
/// helper that lies about a delta or the public package leaves it with nothing.
#[test]
fn a_member_left_out_of_a_refresh_is_repaired_by_t_helpers_and_signs_with_the_new_sharing() {
    use bulwark_vault::repair;
    for n in [4u16, 7] {
        let t = threshold(usize::from(n));
        let keep: BTreeSet<Member> = (1..n).collect();
        let helpers: BTreeSet<Member> = (1..=t).collect();
        // At n = 4 member 4 comes back; at n = 7 a replacement with a number of its own.
        let newcomer = if n == 4 {
            n
        } else {
            bulwark_vault::newcomer_number(&[7; 32])
        };
        assert!(n == 4 || newcomer >= bulwark_vault::NEWCOMER_FIRST);
        // Taproot: repaired, then a real spend signed by the newcomer and t − 1 others.
        let old = dkg::<Taproot>(n, 20);
        let mut fresh = refresh(&old, &keep, 21);
        let share = repair::local(&fresh, &helpers, newcomer, [22; 32]).expect("repaired");
        assert_eq!(share.member(), newcomer);
        assert_eq!(
            KeyShare::<Taproot>::from_bytes(&share.to_bytes()).expect("reads back"),
            share
        );
        assert_eq!(
            share.group_key(),
            old[&1].group_key(),
            "the group key stays"
        );
        assert_ne!(share.key.signing_share(), old[&n].key.signing_share());
        assert!(share.holders().contains(&newcomer));
        for m in &keep {
            let updated = repair::with_holder(&fresh[m], newcomer).expect("a holder adds it");
            assert_eq!(
                updated.public, share.public,
                "every holder's package matches the newcomer's"
            );
            fresh.insert(*m, updated);
        }
        fresh.insert(newcomer, share);
        let w = withdrawal(&fresh, 40);
        let body = w.body();
        let messages = w.sighashes();
        let signers: Vec<Member> = (n - t + 1..n).chain([newcomer]).collect();
        let mut taproot_books = books(&fresh);
        let requests = request(&taproot_books, &signers, 0, 40, Some(body), &messages);
        let signatures = sign_all(
            &fresh,
            &mut taproot_books,
            &mut BTreeMap::new(),
            &requests,
            &w.authorization,
            Some(&w.policy),
        )
        .expect("the repaired member signs");
        for (signature, message) in signatures.iter().zip(&messages) {
            assert!(bip340_verifies(
                &signature.serialize().expect("encodes"),
                message,
                &w.policy.vault_key
            ));
        }

        // Ed25519: the same, and the lies.
        let old = dkg::<Ed25519>(n, 23);
        let mut fresh = refresh(&old, &keep, 24);
        let share = repair::local(&fresh, &helpers, newcomer, [25; 32]).expect("repaired");
        let one = helpers.iter().next().copied().expect("a helper");
        // A helper sends a wrong delta: the newcomer's share is not the sharing's; refused.
        let mut sigmas = BTreeMap::new();
        for h in &helpers {
            let mut deltas = BTreeMap::new();
            for g in &helpers {
                let mut seed = [26; 32];
                seed[0] = *g as u8;
                let from_g = repair::deltas(&fresh[g], &helpers, newcomer, seed).expect("deltas");
                deltas.insert(*g, from_g[h].clone());
            }
            if *h == one {
                let liar = *helpers.iter().last().expect("a helper");
                deltas.insert(
                    liar,
                    repair::deltas(&fresh[&liar], &helpers, newcomer, [27; 32]).expect("deltas")
                        [&liar]
                        .clone(),
                );
            }
            sigmas.insert(
                *h,
                repair::sigma::<Ed25519>(&helpers, &deltas).expect("sigma"),
            );
        }
        assert_eq!(
            repair::repaired(newcomer, &helpers, &sigmas, &fresh[&1].public),
            Err(VaultError::Crypto(
                "repair (the share is not the sharing's)"
            ))
        );
        // A package of another sharing (the old one) does not pass either.
        let honest = repair::local(&fresh, &helpers, newcomer, [28; 32]).expect("repaired");
        assert_eq!(
            honest.key, share.key,
            "every honest run gives the same share"
        );
        let mut sigmas = BTreeMap::new();
        let mut received: BTreeMap<Member, BTreeMap<Member, Vec<u8>>> = BTreeMap::new();
        for g in &helpers {
            for (to, d) in repair::deltas(&fresh[g], &helpers, newcomer, [29; 32]).expect("deltas")
            {
                received.entry(to).or_default().insert(*g, d);
            }
        }
        for h in &helpers {
            sigmas.insert(
                *h,
                repair::sigma::<Ed25519>(&helpers, &received[h]).expect("sigma"),
            );
        }
        assert!(repair::repaired(newcomer, &helpers, &sigmas, &old[&1].public).is_err());
        let mut short = sigmas.clone();
        short.remove(&one);
        assert!(matches!(
            repair::repaired(newcomer, &helpers, &short, &fresh[&1].public),
            Err(VaultError::Malformed(_))
        ));
        // Who may help: exactly t holders of the sharing, not the newcomer.
        let too_few: BTreeSet<Member> = helpers.iter().skip(1).copied().collect();
        assert!(repair::check_helpers(&fresh[&1], &too_few, newcomer).is_err());
        let with_newcomer: BTreeSet<Member> = too_few.iter().copied().chain([newcomer]).collect();
        assert!(repair::check_helpers(&fresh[&1], &with_newcomer, newcomer).is_err());
        let mut with_stranger = too_few.clone();
        with_stranger.insert(60);
        assert!(matches!(
            repair::check_helpers(&fresh[&1], &with_stranger, newcomer),
            Err(VaultError::NotAParticipant(60))
        ));
        assert!(repair::decode_public::<Ed25519>(&[0u8; 3]).is_err());
        assert_eq!(
            repair::decode_public::<Ed25519>(&fresh[&1].public.serialize().expect("encodes"))
                .expect("decodes"),
            fresh[&1].public
        );
        // Signed by the newcomer and t − 1 holders; ed25519-dalek's strict check accepts it.
        for m in &keep {
            fresh.insert(*m, repair::with_holder(&fresh[m], newcomer).expect("adds"));
        }
        fresh.insert(newcomer, share);
        let authorization = Authorization {
            withdrawal: 41,
            chain: Chain::Ed25519,
            destination: [8; 32],
            amount: 50_000,
        };
        let signers: Vec<Member> = (n - t + 1..n).chain([newcomer]).collect();
        ed25519_signed(&fresh, &signers, &authorization);
    }
}

#[test]
fn member_numbers_read_back_from_identifiers_and_newcomers_get_numbers_of_their_own() {
    fn reads_back<C: Ciphersuite>() {
        for m in [1u16, 2, 64, 255, 256, 1024, 40_000, u16::MAX] {
            let id = bulwark_vault::keygen::identifier::<C>(m).expect("a number");
            assert_eq!(bulwark_vault::keygen::member_number(&id), Some(m));
        }
        let derived = frost_core::Identifier::<C>::derive(b"not a number").expect("derives");
        assert_eq!(bulwark_vault::keygen::member_number(&derived), None);
    }
    reads_back::<Taproot>();
    reads_back::<Ed25519>();
    let numbers: BTreeSet<Member> = (0..64u8)
        .map(|i| bulwark_vault::newcomer_number(&[i; 32]))
        .collect();
    assert!(numbers
        .iter()
        .all(|m| *m >= bulwark_vault::NEWCOMER_FIRST && *m < u16::MAX));
    assert!(numbers.len() >= 60, "spread: {numbers:?}");
    assert_eq!(
        bulwark_vault::newcomer_number(&[9; 32]),
        bulwark_vault::newcomer_number(&[9; 32]),
        "a key's number never changes"
    );
}

/// A repaired member proves it holds its share before any holder adds it: the proof checks
/// against the verifying share the holders interpolate, and a member without the share (or a
/// proof for another epoch or member) does not pass.
#[test]
fn a_repaired_member_proves_possession_and_a_pretender_cannot() {
    use bulwark_vault::repair;
    fn run<C: VaultSuite>(label: u8) {
        let shares = dkg::<C>(4, label);
        let keep: BTreeSet<Member> = [1, 2, 3].into();
        let fresh = refresh(&shares, &keep, label + 1);
        let newcomer = bulwark_vault::newcomer_number(&[label; 32]);
        let repaired = repair::local(&fresh, &keep, newcomer, [label; 32]).expect("repaired");
        let proof = repair::prove_holding(&repaired, 5, [1; 32]).expect("proves");
        let holders_package = &fresh[&1].public;
        repair::check_holding(holders_package, 5, newcomer, &proof).expect("checks");
        assert!(repair::check_holding(holders_package, 6, newcomer, &proof).is_err());
        assert!(repair::check_holding(holders_package, 5, newcomer + 1, &proof).is_err());
        // Member 4's old share (left out of the refresh) proves nothing for the new sharing.
        let stale = repair::prove_holding(&shares[&4], 5, [2; 32]).expect("proves");
        assert!(repair::check_holding(holders_package, 5, 4, &stale).is_err());
        // A holder's own proof checks too (its verifying share is in the package).
        let own = repair::prove_holding(&fresh[&2], 5, [3; 32]).expect("proves");
        repair::check_holding(holders_package, 5, 2, &own).expect("checks");
        assert!(repair::check_holding(holders_package, 5, 2, &[0u8; 200]).is_err());
        assert!(repair::check_holding(holders_package, 5, 2, &[7u8; 64]).is_err());
    }
    run::<Taproot>(30);
    run::<Ed25519>(40);
}

#[test]
fn spent_nonce_slots_ride_with_the_watermarks_and_older_files_still_read() {
    let mut marks = Watermarks::default();
    assert!(marks.mark(Chain::Ed25519, 1, [1; 32]));
    marks.note_spent(3, [7, 9]);
    marks.note_spent(4, [1]);
    assert_eq!(marks.spent(3).collect::<Vec<_>>(), vec![7, 9]);
    let text = serde_json::to_string(&marks).expect("serializes");
    let back: Watermarks = serde_json::from_str(&text).expect("reads back");
    assert_eq!(back, marks);
    marks.forget_spent_through(3);
    assert_eq!(marks.spent(3).count(), 0);
    assert_eq!(marks.spent(4).collect::<Vec<_>>(), vec![1]);
    // A file written before spent slots were recorded reads as none spent.
    let mut old: serde_json::Value = serde_json::from_str(&text).expect("json");
    old.as_object_mut().expect("an object").remove("spent");
    let read: Watermarks = serde_json::from_value(old).expect("an older file reads");
    assert_eq!(read.spent_count(), 0);
    assert!(read.is_marked(Chain::Ed25519, 1));
}
