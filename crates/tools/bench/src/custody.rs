//! `bulwark bench custody`: the vault's FROST keys, in one process.
//!
//! Figures (one JSON line each):
//! - `dkg_ms` at n = 4 and 7, for the taproot and the Ed25519 key: the whole ceremony's compute
//!   (every member's rounds), no peer;
//! - `refresh_ms` at n = 4 and 7 (one member left out), no peer;
//! - `sign_us` for one taproot withdrawal input: the t signers' checks (transaction decode,
//!   outputs, fee, sighash), round 2 and the aggregation, against one BIP340 signature by a single
//!   libsecp256k1 key over the same sighash (the cost of splitting the key);
//! - `signatures_per_s` at saturation on this machine, against the single key's;
//! - `signing_latency_ms` through the network against its bound (two round trips plus the FROST
//!   compute): **not measured** — the vault's signing over the p2p is not built yet; the line
//!   carries nulls and stderr says so;
//! - `deposit_check_us` at n = 4, 7 and 31: the one rule every replica applies to a chain deposit
//!   in a block (`DepositCertificate::check_in`: committee, standing, order, n − f signatures),
//!   against n − f strict Ed25519 verifications of the same message (what the rule cannot avoid).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use bitcoin::hashes::Hash as _;
use bulwark_vault::keygen::{local, KeyShare};
use bulwark_vault::release::{
    prepare, Authorization, BitcoinBody, BitcoinPolicy, Holdings, SignRequest, Watermarks,
};
use bulwark_vault::signing::{aggregate, decode_share, package, NonceBook};
use bulwark_vault::taproot::{self, Utxo};
use bulwark_vault::{threshold, Chain, Ed25519, Member, Taproot};
use frost_core::Ciphersuite;

use crate::report::{emit, figure};

const BENCH: &str = "custody";

fn best_ms<T>(runs: usize, mut f: impl FnMut() -> T) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(f());
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    best
}

fn dkg<C: Ciphersuite>(n: u16, seed: u8) -> BTreeMap<Member, KeyShare<C>> {
    local::dkg(n, [seed; 32]).expect("an honest local ceremony completes")
}

/// Runs the bench; exits 0 when every measured figure was printed.
pub fn run_bench() -> ExitCode {
    for n in [4u16, 7] {
        let ms = best_ms(3, || dkg::<Taproot>(n, 1));
        emit(BENCH, &format!("dkg_ms_taproot_n{n}"), ms, "ms", None);
        let ms = best_ms(3, || dkg::<Ed25519>(n, 2));
        emit(BENCH, &format!("dkg_ms_ed25519_n{n}"), ms, "ms", None);
        let shares = dkg::<Taproot>(n, 3);
        let keep = (1..n).collect();
        let ms = best_ms(3, || {
            local::refresh(&shares, &keep, [4; 32]).expect("an honest refresh completes")
        });
        emit(BENCH, &format!("refresh_ms_taproot_n{n}"), ms, "ms", None);
    }
    let (frost_us, single_us) = signing();
    emit(
        BENCH,
        "sign_us_taproot_n4",
        frost_us,
        "us",
        Some(("libsecp256k1 single-key BIP340 sign", single_us)),
    );
    emit(
        BENCH,
        "signatures_per_s_taproot_n4",
        1e6 / frost_us,
        "signatures/s",
        Some(("libsecp256k1 single-key BIP340 sign", 1e6 / single_us)),
    );
    eprintln!("bench custody: signing_latency_ms not measured: the vault's signing over the p2p (coordinator = block proposer) is not built yet");
    figure(
        BENCH,
        "signing_latency_ms",
        None,
        "ms",
        Some("two network round trips + FROST compute"),
        None,
    );
    for n in [4u8, 7, 31] {
        let (check_us, verify_us) = deposit_check(n);
        emit(
            BENCH,
            &format!("deposit_check_us_n{n}"),
            check_us,
            "us",
            Some(("n - f strict Ed25519 verifications", verify_us)),
        );
    }
    ExitCode::SUCCESS
}

/// Microseconds for the replica's check of one deposit certificate signed by n − f of n members,
/// and for n − f bare strict verifications of the same message (best of 200).
fn deposit_check(n: u8) -> (f64, f64) {
    use bulwark_engine::deposit::{DepositCertificate, MemberSignature, ObservedDeposit};
    use ed25519_dalek::Signer as _;
    let keys: Vec<ed25519_dalek::SigningKey> = (0..n)
        .map(|i| ed25519_dalek::SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let members: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let engine = bulwark_engine::Engine::new(bulwark_engine::EngineConfig {
        sentinel: bulwark_engine::sentinel::SentinelConfig {
            members: members.clone(),
            ..Default::default()
        },
        ..Default::default()
    });
    let membership = engine
        .membership()
        .expect("a sentinel committee was configured");
    let deposit = ObservedDeposit {
        chain: 1,
        txid: [7; 32],
        output: 0,
        account: bulwark_engine::AccountId(1),
        amount: 1_000_000,
    };
    let message = deposit.signed_message();
    let quorum = bulwark_engine::deposit::quorum(usize::from(n));
    let mut signatures: Vec<MemberSignature> = keys[..quorum]
        .iter()
        .map(|k| MemberSignature {
            member: k.verifying_key().to_bytes(),
            signature: k.sign(&message).to_bytes(),
        })
        .collect();
    signatures.sort();
    let certificate = DepositCertificate {
        deposit,
        signatures,
    };
    let check_us = best_ms(200, || certificate.check_in(membership).expect("valid")) * 1e3;
    let verify_us = best_ms(200, || {
        certificate.signatures.iter().all(|s| {
            ed25519_dalek::VerifyingKey::from_bytes(&s.member)
                .and_then(|key| {
                    key.verify_strict(
                        &message,
                        &ed25519_dalek::Signature::from_bytes(&s.signature),
                    )
                })
                .is_ok()
        })
    }) * 1e3;
    (check_us, verify_us)
}

/// Microseconds per taproot input signed by t = 3 of 4 (checks, round 2, aggregation), and per
/// single-key signature.
fn signing() -> (f64, f64) {
    let shares = dkg::<Taproot>(4, 5);
    let t = usize::from(threshold(4));
    let signers: Vec<Member> = (1..=t as Member).collect();
    let vault_key: [u8; 32] = shares[&1].group_key()[1..33]
        .try_into()
        .expect("a 33-byte key");
    let policy = BitcoinPolicy {
        vault_key,
        fee_min_sats: 100,
        fee_rate_min_sat_vb: 2,
        fee_max_sats: 10_000,
    };
    let vault = taproot::vault_script(&vault_key).expect("a point");
    let secp = secp256k1::Secp256k1::new();
    let single = secp256k1::Keypair::from_seckey_slice(&secp, &[0x42; 32]).expect("a key");
    let destination = single.x_only_public_key().0.serialize();
    let utxo = Utxo {
        outpoint: bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0),
        value: bitcoin::Amount::from_sat(1_000_000),
    };
    let rounds = 200u64;
    let mut books: BTreeMap<Member, NonceBook<Taproot>> = BTreeMap::new();
    let mut published: BTreeMap<
        Member,
        Vec<(u64, frost_core::round1::SigningCommitments<Taproot>)>,
    > = BTreeMap::new();
    for m in &signers {
        let mut book = NonceBook::default();
        published.insert(
            *m,
            book.precompute(&shares[m], rounds as usize, [*m as u8; 32]),
        );
        books.insert(*m, book);
    }
    let mut marks: BTreeMap<Member, Watermarks> = BTreeMap::new();
    let mut frost_total = 0.0;
    let mut single_total = 0.0;
    for id in 0..rounds {
        let amount = bitcoin::Amount::from_sat(10_000 + id);
        let (tx, prevouts) = taproot::build(
            &[utxo],
            &vault,
            &destination,
            amount,
            bitcoin::Amount::from_sat(500),
        )
        .expect("funded");
        let sighash = taproot::sighash(&tx, &prevouts, 0).expect("sighash");
        let authorization = Authorization {
            withdrawal: id,
            chain: Chain::Bitcoin,
            destination,
            amount: amount.to_sat(),
        };
        let commitments = signers
            .iter()
            .map(|m| (*m, published[m][id as usize].1))
            .collect();
        let signing_package = package::<Taproot>(&commitments, &sighash).expect("members");
        let package_bytes = signing_package.serialize().expect("encodes");
        let body = BitcoinBody {
            tx: bitcoin::consensus::serialize(&tx),
            prevout_sats: vec![utxo.value.to_sat()],
        };
        let start = Instant::now();
        let mut sig_shares = BTreeMap::new();
        for m in &signers {
            let request = SignRequest {
                withdrawal: id,
                chain: Chain::Bitcoin,
                bitcoin: Some(body.clone()),
                packages: vec![(published[m][id as usize].0, package_bytes.clone())],
            };
            let marks = marks.entry(*m).or_default();
            let holdings = Holdings {
                share: &shares[m],
                book: &books[m],
                watermarks: marks,
            };
            let prepared =
                prepare::<Taproot>(&request, Some(&authorization), &holdings, Some(&policy))
                    .expect("authorized");
            assert!(marks.mark(Chain::Bitcoin, id, prepared.transaction));
            let book = books.get_mut(m).expect("a book");
            let nonces: Vec<_> = prepared
                .slots()
                .iter()
                .map(|s| book.spend(*s).expect("unspent"))
                .collect();
            let out = prepared.sign(&nonces, &shares[m]).expect("signs");
            sig_shares.insert(*m, decode_share::<Taproot>(&out[0]).expect("decodes"));
        }
        let signature =
            aggregate(&signing_package, &sig_shares, &shares[&1].public).expect("aggregates");
        frost_total += start.elapsed().as_secs_f64();
        std::hint::black_box(signature);
        let message = secp256k1::Message::from_digest(sighash);
        let start = Instant::now();
        let single_signature = secp.sign_schnorr_no_aux_rand(&message, &single);
        single_total += start.elapsed().as_secs_f64();
        std::hint::black_box(single_signature);
    }
    (
        frost_total * 1e6 / rounds as f64,
        single_total * 1e6 / rounds as f64,
    )
}
