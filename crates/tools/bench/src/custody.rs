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
//! - `signing_latency_ms`: the p50 of the signing rounds a 4-node committee of `bulwark node`
//!   processes on loopback ran for the load generator's withdrawals (a coordinator's commit
//!   request to its checked signature: two network round trips, every signer's checks, the
//!   synced watermark and nonce files, round 2, aggregation), against its bound: two round trips
//!   on the signing channel between the same busy processes (`p2p_rtt_ms`, the members' pings,
//!   p50; beside it the raw loopback TCP round trip, `loopback_rtt_ms`) plus the FROST compute
//!   of one round (`sign_us_taproot_n4`, t signers and the aggregation, one after another). A
//!   signer's synced write (made at the commit request, while its commitments travel) is in the
//!   round and not in the bound; `disk_sync_ms` says what one sync costs on this disk, and
//!   `signer_share_ms` / `signer_sync_ms` what a signer took in the committee to release its
//!   share once asked, and its synced write (p50 of the slowest signer);
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
    let rtt_ms = loopback_rtt_ms();
    emit(BENCH, "loopback_rtt_ms", rtt_ms, "ms", None);
    let sync_ms = disk_sync_ms();
    emit(BENCH, "disk_sync_ms", sync_ms, "ms", None);
    let figures = committee_rounds();
    let rounds = figures.as_ref().and_then(|f| f.vault_rounds);
    let p2p_rtt = figures.as_ref().and_then(|f| f.vault_rtt_ms);
    let share = figures.as_ref().and_then(|f| f.vault_share_ms);
    if let Some((share_ms, sync_ms)) = share {
        // Where a round's time goes at the signers: the synced write is in the round, not in
        // the bound.
        emit(BENCH, "signer_share_ms", share_ms, "ms", None);
        emit(BENCH, "signer_sync_ms", sync_ms, "ms", None);
    }
    if let Some(p2p_rtt) = p2p_rtt {
        emit(
            BENCH,
            "p2p_rtt_ms",
            p2p_rtt,
            "ms",
            Some(("raw loopback TCP round trip", rtt_ms)),
        );
    }
    // The network part of the bound is the committee's own round trip on the signing channel
    // when it was measured, else the raw TCP one.
    let bound_ms = 2.0 * p2p_rtt.unwrap_or(rtt_ms) + frost_us / 1e3;
    match rounds {
        Some((rounds, p50, p99)) => {
            eprintln!("bench custody: {rounds} signing rounds at the busiest coordinator; p99 {p99:.1} ms");
            emit(
                BENCH,
                "signing_latency_ms",
                p50,
                "ms",
                Some(("two p2p round trips + FROST compute", bound_ms)),
            );
            emit(BENCH, "signing_latency_p99_ms", p99, "ms", None);
        }
        None => {
            eprintln!("bench custody: the committee signed no withdrawal; signing_latency_ms not measured");
            figure(
                BENCH,
                "signing_latency_ms",
                None,
                "ms",
                Some("two p2p round trips + FROST compute"),
                Some(bound_ms),
            );
        }
    }
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

/// Median milliseconds of a 256-byte ping-pong over a loopback TCP connection (200 exchanges).
fn loopback_rtt_ms() -> f64 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("bound");
    let echo = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("the bench connects");
        stream.set_nodelay(true).expect("nodelay");
        let mut buffer = [0u8; 256];
        while stream.read_exact(&mut buffer).is_ok() {
            if stream.write_all(&buffer).is_err() {
                break;
            }
        }
    });
    let mut stream = std::net::TcpStream::connect(address).expect("the echo listens");
    stream.set_nodelay(true).expect("nodelay");
    let mut buffer = [7u8; 256];
    let mut samples = Vec::with_capacity(200);
    for _ in 0..200 {
        let start = Instant::now();
        stream.write_all(&buffer).expect("writes");
        stream.read_exact(&mut buffer).expect("reads");
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    drop(stream);
    let _ = echo.join();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Median milliseconds to write a small file as the vault's files are written (temporary file,
/// sync, rename, directory sync), 50 times.
fn disk_sync_ms() -> f64 {
    let dir = std::env::temp_dir().join(format!("bulwark-bench-sync-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("watermarks");
    let mut samples = Vec::with_capacity(50);
    for i in 0..50u32 {
        let start = Instant::now();
        if bulwark_vaultstore::files::write_private(&path, &i.to_be_bytes().repeat(64)).is_err() {
            break;
        }
        samples.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let _ = std::fs::remove_dir_all(&dir);
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs a 4-node committee for 60 s with the load generator's withdrawals (one every 2 s, both
/// keys) and returns its figures: the busiest coordinator's rounds (count, p50 ms, p99 ms), its
/// p50 round trip to its peers on the signing channel, the slowest signer's share time.
fn committee_rounds() -> Option<bulwark_devnet::RunFigures> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let data = std::env::temp_dir().join(format!("bulwark-bench-custody-{}", std::process::id()));
    let options = bulwark_devnet::CommitteeOptions {
        data: data.clone(),
        nodes: 4,
        candidates: 0,
        duration: Some(std::time::Duration::from_secs(60)),
        rate: 500,
        seed: 1,
        fresh: true,
        base_port: 18_700,
        status: true,
        admission_interval_ms: 1_000,
        tpm: false,
        oracle: None,
        tamper: None,
    };
    eprintln!("bench custody: 4 node processes on loopback for 60 s, 500 orders/s and a withdrawal every 2 s");
    let result = bulwark_devnet::run_committee(&options, Arc::new(AtomicBool::new(false)));
    let _ = std::fs::remove_dir_all(&data);
    match result {
        Ok(figures) => {
            eprintln!(
                "bench custody: {} of {} withdrawals signed",
                figures.withdrawals_signed, figures.withdrawals_requested
            );
            Some(figures)
        }
        Err(error) => {
            eprintln!("bench custody: {error}");
            None
        }
    }
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
