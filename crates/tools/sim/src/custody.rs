//! The vault's member-level attacks (issue #14): a Byzantine coordinator (the block proposer,
//! member 0) against the other members' release check, and a removed member against the refresh.
//!
//! The ledger is the real engine: clients' `withdraw` commands execute, and each
//! `WithdrawalRequested` event is the authorization a finalized block carries. The members hold
//! FROST shares from a seeded key generation (`bulwark_vault::keygen::local`), their own nonce
//! books and watermarks, and answer only through `bulwark_vault::release::prepare`. Requests are
//! handed over in-process and no blocks are finalized here (`height_progress` is null); the
//! signing between node processes (`bulwark-node`'s `vault_signing`) is tested by the process
//! tests. Every signature the attacker obtains is
//! checked with libsecp256k1 (BIP340 under the vault's output key), not with FROST.
//!
//! Units: the simulated chain pays the withdrawal's micros as sats, one to one.

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::hashes::Hash as _;
use bitcoin::{Amount, OutPoint, Txid};
use bulwark_engine::command::SystemCommand;
use bulwark_engine::{AccountId, ClientCommand, Command, Engine, EngineConfig, Event};
use bulwark_vault::keygen::{local, KeyShare};
use bulwark_vault::release::{
    prepare, Authorization, BitcoinBody, BitcoinPolicy, Holdings, Refusal, SignRequest, Watermarks,
};
use bulwark_vault::signing::{aggregate, decode_share, package, NonceBook};
use bulwark_vault::taproot::{self, Utxo};
use bulwark_vault::{repair, Chain, Member, Taproot};
use frost_core::round1::SigningCommitments;

type Outcome = (Vec<String>, Vec<String>, usize);

/// A forged request: what it is, the withdrawal it names, the transaction, its prevouts' sats,
/// and the messages to sign if not the transaction's own sighashes.
type Forgery = (
    &'static str,
    u64,
    bitcoin::Transaction,
    Vec<u64>,
    Option<Vec<Vec<u8>>>,
);

/// One honest member: its share, nonces (with the commitments it published) and watermarks.
struct Signer {
    share: KeyShare<Taproot>,
    book: NonceBook<Taproot>,
    published: Vec<(u64, SigningCommitments<Taproot>)>,
    next: usize,
    marks: Watermarks,
    /// Requests it refused, as evidence against the coordinator.
    evidence: Vec<String>,
}

struct Vault {
    signers: BTreeMap<Member, Signer>,
    policy: BitcoinPolicy,
    utxos: Vec<Utxo>,
    ledger: BTreeMap<u64, Authorization>,
}

fn seed_bytes(seed: u64, label: u8) -> [u8; 32] {
    let mut out = [label; 32];
    out[..8].copy_from_slice(&seed.to_le_bytes());
    out
}

/// A valid x-only key (a P2TR destination) derived from `label`.
fn destination(label: u8) -> [u8; 32] {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let key = bitcoin::secp256k1::Keypair::from_seckey_slice(&secp, &[label; 32])
        .expect("a fixed non-zero scalar is a key");
    key.x_only_public_key().0.serialize()
}

fn signers_of(shares: BTreeMap<Member, KeyShare<Taproot>>, seed: u64) -> BTreeMap<Member, Signer> {
    shares
        .into_iter()
        .map(|(m, share)| {
            let mut book = NonceBook::default();
            let published = book.precompute(&share, 16, seed_bytes(seed ^ u64::from(m), 7));
            (
                m,
                Signer {
                    share,
                    book,
                    published,
                    next: 0,
                    marks: Watermarks::default(),
                    evidence: Vec::new(),
                },
            )
        })
        .collect()
}

/// The engine executes two clients' withdrawals; the ledger is its `WithdrawalRequested` events.
fn ledger(destinations: &[[u8; 32]]) -> BTreeMap<u64, Authorization> {
    let mut engine = Engine::new(EngineConfig::default());
    let mut batch = vec![Command::System(SystemCommand::IndexPrice {
        underlying: 0,
        price_micros: 60_000_000_000,
    })];
    for (i, _) in destinations.iter().enumerate() {
        let account = AccountId(i as u64 + 1);
        batch.push(Command::System(SystemCommand::OpenAccount {
            account,
            public_key: [0; 32],
        }));
        batch.push(Command::System(SystemCommand::Deposit {
            account,
            amount: 1_000_000,
        }));
    }
    for (i, to) in destinations.iter().enumerate() {
        batch.push(Command::Client {
            account: AccountId(i as u64 + 1),
            nonce: 1,
            command: ClientCommand::Withdraw {
                amount: 50_000 + i as i64,
                destination: *to,
                chain: bulwark_engine::PayoutChain::Bitcoin,
            },
        });
    }
    let mut events = Vec::new();
    engine.execute(0, &batch, &mut events);
    events
        .iter()
        .filter_map(|event| match event {
            Event::WithdrawalRequested {
                withdrawal_id,
                amount,
                destination,
                ..
            } => Some((
                *withdrawal_id,
                Authorization {
                    withdrawal: *withdrawal_id,
                    chain: Chain::Bitcoin,
                    destination: *destination,
                    amount: u64::try_from(*amount).expect("a withdrawal is positive"),
                },
            )),
            _ => None,
        })
        .collect()
}

fn vault(seed: u64, n: usize) -> Vault {
    let shares = local::dkg::<Taproot>(n as u16, seed_bytes(seed, 1)).expect("an honest ceremony");
    let key = shares.values().next().expect("members").group_key();
    let policy = BitcoinPolicy {
        vault_key: key[1..33].try_into().expect("a 33-byte key"),
        fee_min_sats: 100,
        fee_rate_min_sat_vb: 2,
        fee_max_sats: 2_000,
    };
    let utxos = (0..4u8)
        .map(|i| Utxo {
            outpoint: OutPoint::new(Txid::from_byte_array([i + 1; 32]), u32::from(i)),
            value: Amount::from_sat(400_000),
        })
        .collect();
    Vault {
        signers: signers_of(shares, seed),
        policy,
        utxos,
        ledger: ledger(&[destination(0x51), destination(0x52)]),
    }
}

/// The coordinator's request for `tx` (or a forged one) from `signers`, each with its next
/// published nonce slot per input.
fn request(
    vault: &mut Vault,
    signers: &[Member],
    withdrawal: u64,
    tx: &bitcoin::Transaction,
    prevout_sats: &[u64],
    messages: &[Vec<u8>],
) -> (BTreeMap<Member, SignRequest>, Vec<Vec<u8>>) {
    let mut per_signer: BTreeMap<Member, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    let mut packages = Vec::new();
    for message in messages {
        let mut commitments = BTreeMap::new();
        for m in signers {
            let signer = vault.signers.get_mut(m).expect("a member");
            let (slot, commitment) = signer.published[signer.next];
            signer.next += 1;
            commitments.insert(*m, commitment);
            per_signer.entry(*m).or_default().push((slot, Vec::new()));
        }
        let bytes = package::<Taproot>(&commitments, message)
            .expect("members")
            .serialize()
            .expect("encodes");
        for m in signers {
            per_signer
                .get_mut(m)
                .expect("inserted")
                .last_mut()
                .expect("pushed")
                .1 = bytes.clone();
        }
        packages.push(bytes);
    }
    let body = BitcoinBody {
        tx: bitcoin::consensus::serialize(tx),
        prevout_sats: prevout_sats.to_vec(),
    };
    (
        per_signer
            .into_iter()
            .map(|(m, packages)| {
                (
                    m,
                    SignRequest {
                        withdrawal,
                        chain: Chain::Bitcoin,
                        bitcoin: Some(body.clone()),
                        packages,
                    },
                )
            })
            .collect(),
        packages,
    )
}

/// Every signer answers; returns the BIP340 signatures (one per input) if t shares came back,
/// each verified by libsecp256k1 under the vault's output key, and the refusals.
/// The coordinator asks `signers` to sign `messages` for withdrawal `id` with `tx`: the
/// members' answers, combined and checked ([`request`], then [`ask`]).
fn sign(
    vault: &mut Vault,
    signers: &[Member],
    id: u64,
    tx: &bitcoin::Transaction,
    prevout_sats: &[u64],
    messages: &[Vec<u8>],
) -> (Option<Vec<[u8; 64]>>, Vec<Refusal>) {
    let (requests, packages) = request(vault, signers, id, tx, prevout_sats, messages);
    ask(vault, &requests, &packages, messages)
}

fn ask(
    vault: &mut Vault,
    requests: &BTreeMap<Member, SignRequest>,
    packages: &[Vec<u8>],
    messages: &[Vec<u8>],
) -> (Option<Vec<[u8; 64]>>, Vec<Refusal>) {
    let mut shares: Vec<BTreeMap<Member, _>> = vec![BTreeMap::new(); messages.len()];
    let mut refusals = Vec::new();
    for (m, request) in requests {
        let authorization = vault.ledger.get(&request.withdrawal).copied();
        let policy = vault.policy;
        let signer = vault.signers.get_mut(m).expect("a member");
        let holdings = Holdings {
            share: &signer.share,
            book: &signer.book,
            watermarks: &signer.marks,
        };
        match prepare::<Taproot>(request, authorization.as_ref(), &holdings, Some(&policy)) {
            Err(refusal) => {
                if refusal.is_evidence() {
                    signer.evidence.push(refusal.to_string());
                }
                refusals.push(refusal);
            }
            Ok(prepared) => {
                // The watermark and the spent nonces are what a node syncs before the share
                // leaves.
                assert!(signer
                    .marks
                    .mark(request.chain, request.withdrawal, prepared.transaction));
                let nonces: Vec<_> = prepared
                    .slots()
                    .iter()
                    .map(|slot| {
                        signer
                            .book
                            .spend(*slot)
                            .expect("a published slot is unspent")
                    })
                    .collect();
                let out = prepared
                    .sign(&nonces, &signer.share)
                    .expect("a checked package signs");
                for (i, bytes) in out.iter().enumerate() {
                    shares[i].insert(*m, decode_share::<Taproot>(bytes).expect("decodes"));
                }
            }
        }
    }
    let public = &vault.signers.values().next().expect("members").share.public;
    let mut signatures = Vec::new();
    for ((package_bytes, message), shares) in packages.iter().zip(messages).zip(&shares) {
        let signing =
            bulwark_vault::signing::decode_package::<Taproot>(package_bytes).expect("ours");
        let Ok(signature) = aggregate(&signing, shares, public) else {
            return (None, refusals);
        };
        let bytes: [u8; 64] = signature
            .serialize()
            .expect("encodes")
            .try_into()
            .expect("64 bytes");
        if !bip340(&bytes, message, &vault.policy.vault_key) {
            return (None, refusals);
        }
        signatures.push(bytes);
    }
    (Some(signatures), refusals)
}

fn bip340(signature: &[u8; 64], message: &[u8], xonly: &[u8; 32]) -> bool {
    use bitcoin::secp256k1::{schnorr, Message, Secp256k1, XOnlyPublicKey};
    let secp = Secp256k1::verification_only();
    let (Ok(signature), Ok(key), Ok(message)) = (
        schnorr::Signature::from_slice(signature),
        XOnlyPublicKey::from_slice(xonly),
        Message::from_digest_slice(message),
    ) else {
        return false;
    };
    secp.verify_schnorr(&signature, &message, &key).is_ok()
}

fn sighashes(
    tx: &bitcoin::Transaction,
    prevout_sats: &[u64],
    vault_key: &[u8; 32],
) -> Vec<Vec<u8>> {
    let script = taproot::vault_script(vault_key).expect("the group key is a point");
    let prevouts: Vec<bitcoin::TxOut> = prevout_sats
        .iter()
        .map(|sats| bitcoin::TxOut {
            value: Amount::from_sat(*sats),
            script_pubkey: script.clone(),
        })
        .collect();
    (0..tx.input.len())
        .map(|i| {
            taproot::sighash(tx, &prevouts, i)
                .expect("in range")
                .to_vec()
        })
        .collect()
}

/// The honest transaction for `authorization`, spending `utxos`.
fn honest_tx(
    vault: &Vault,
    authorization: &Authorization,
    utxos: &[Utxo],
) -> (bitcoin::Transaction, Vec<u64>) {
    let script = taproot::vault_script(&vault.policy.vault_key).expect("a point");
    let (tx, prevouts) = taproot::build(
        utxos,
        &script,
        &authorization.destination,
        Amount::from_sat(authorization.amount),
        Amount::from_sat(1_000),
    )
    .expect("the vault holds enough");
    (tx, prevouts.iter().map(|p| p.value.to_sat()).collect())
}

fn quorum(vault: &Vault) -> Vec<Member> {
    let t = usize::from(
        vault
            .signers
            .values()
            .next()
            .expect("members")
            .share
            .threshold(),
    );
    vault.signers.keys().copied().take(t).collect()
}

fn all(vault: &Vault) -> Vec<Member> {
    vault.signers.keys().copied().collect()
}

/// A Byzantine coordinator asks for one authorized withdrawal three times: again with fresh
/// nonces (answered: a retry signs the same txid, which the chain accepts once), and once more
/// with another transaction for the same withdrawal (a second payout: refused by every member).
/// Neither is evidence: an honest coordinator may retry, and may not know the first
/// transaction.
pub(crate) fn double_withdrawal(seed: u64, n: usize) -> Outcome {
    let mut vault = vault(seed, n);
    let (mut achieved, mut refused) = (Vec::new(), Vec::new());
    let authorization = *vault.ledger.values().next().expect("a withdrawal");
    let id = authorization.withdrawal;
    let (tx, sats) = honest_tx(&vault, &authorization, &vault.utxos[..2]);
    let messages = sighashes(&tx, &sats, &vault.policy.vault_key);
    let signers = all(&vault);
    let (first, _) = sign(&mut vault, &signers, id, &tx, &sats, &messages);
    let txid = tx.compute_txid();
    if first.is_none() {
        achieved.push("the honest first request was not signed (the check proves nothing)".into());
    }
    let (other_tx, other_sats) = honest_tx(&vault, &authorization, &vault.utxos[2..]);
    let other_messages = sighashes(&other_tx, &other_sats, &vault.policy.vault_key);
    // The same transaction again with fresh nonces: a second signature of one txid.
    match sign(&mut vault, &signers, id, &tx, &sats, &messages) {
        (Some(_), _) => refused.push(format!(
            "the same transaction with fresh nonces: signed again, for the same txid {txid} \
             (its inputs can be spent once: no second payout)"
        )),
        (None, refusals) => achieved.push(format!(
            "an honest retry of the same transaction was not answered: {refusals:?}"
        )),
    }
    {
        let what = "another transaction for the same withdrawal (other inputs: a second payout)";
        let (signature, refusals) = sign(
            &mut vault,
            &signers,
            id,
            &other_tx,
            &other_sats,
            &other_messages,
        );
        if signature.is_some() {
            achieved.push(format!("withdrawal {id} signed twice: {what}"));
        } else if refusals.iter().all(|r| *r == Refusal::AlreadySigned(id))
            && refusals.len() == signers.len()
        {
            refused.push(format!("{what}: every member refused ({})", refusals[0]));
        } else {
            achieved.push(format!("{what}: refused for other reasons: {refusals:?}"));
        }
    }
    let evidence: usize = vault.signers.values().map(|s| s.evidence.len()).sum();
    (achieved, refused, evidence)
}

/// A Byzantine coordinator asks for what no finalized block authorized: an unknown withdrawal,
/// another destination, another amount, an extra output, a burnt fee, and another withdrawal's
/// message, a transaction locked far into the future. No share leaves; every refusal but the
/// unknown withdrawal (a member's ledger may lag) is evidence. An honest request afterwards is
/// signed.
pub(crate) fn forged_withdrawal(seed: u64, n: usize) -> Outcome {
    let mut vault = vault(seed, n);
    let (mut achieved, mut refused) = (Vec::new(), Vec::new());
    let mut ids = vault.ledger.keys().copied();
    let (first, second) = (ids.next().expect("two"), ids.next().expect("two"));
    let authorization = vault.ledger[&first];
    let utxos = vault.utxos[..2].to_vec();
    let attacker = destination(0x66);
    let mut forgeries: Vec<Forgery> = Vec::new();
    let unknown = Authorization {
        withdrawal: 999,
        ..authorization
    };
    let (tx, sats) = honest_tx(&vault, &unknown, &utxos);
    forgeries.push((
        "withdrawal 999, which no block authorized",
        999,
        tx,
        sats,
        None,
    ));
    let (tx, sats) = honest_tx(
        &vault,
        &Authorization {
            destination: attacker,
            ..authorization
        },
        &utxos,
    );
    forgeries.push(("the attacker's destination", first, tx, sats, None));
    let (tx, sats) = honest_tx(
        &vault,
        &Authorization {
            amount: authorization.amount * 10,
            ..authorization
        },
        &utxos,
    );
    forgeries.push(("ten times the amount", first, tx, sats, None));
    let (mut tx, sats) = honest_tx(&vault, &authorization, &utxos);
    tx.output[1].script_pubkey = taproot::destination_script(&attacker).expect("a key");
    forgeries.push(("the change paid to the attacker", first, tx, sats, None));
    let (mut tx, sats) = honest_tx(&vault, &authorization, &utxos);
    tx.output.truncate(1);
    forgeries.push(("the change burnt as fee", first, tx, sats, None));
    let (tx, sats) = honest_tx(&vault, &authorization, &utxos);
    let (other_tx, other_sats) = honest_tx(&vault, &vault.ledger[&second].clone(), &utxos);
    let swapped = sighashes(&other_tx, &other_sats, &vault.policy.vault_key);
    forgeries.push((
        "withdrawal 2's sighash under withdrawal 1's transaction",
        first,
        tx,
        sats,
        Some(swapped),
    ));
    let (mut tx, sats) = honest_tx(&vault, &authorization, &utxos);
    tx.lock_time = bitcoin::absolute::LockTime::from_height(5_000_000 - 1).expect("a height");
    forgeries.push((
        "a transaction locked far into the future",
        first,
        tx,
        sats,
        None,
    ));
    let signers = all(&vault);
    for (what, id, tx, sats, messages) in forgeries {
        let messages = messages.unwrap_or_else(|| sighashes(&tx, &sats, &vault.policy.vault_key));
        let (signature, refusals) = sign(&mut vault, &signers, id, &tx, &sats, &messages);
        if signature.is_some() || refusals.len() != signers.len() {
            achieved.push(format!(
                "{what}: {} of {} members released a share",
                signers.len() - refusals.len(),
                signers.len()
            ));
        } else {
            refused.push(format!("{what}: {}", refusals[0]));
        }
    }
    let evidence: BTreeSet<usize> = vault.signers.values().map(|s| s.evidence.len()).collect();
    if evidence != BTreeSet::from([6]) {
        achieved.push(format!(
            "evidence per member {evidence:?}, 6 expected (7 forgeries, one unauthorized)"
        ));
    }
    match quarantined_for_forging(&vault, seed) {
        Ok(accusers) => refused.push(format!(
            "staying in the committee: {accusers} members accused the forger, and the quarantine every replica checks took it out"
        )),
        Err(why) => achieved.push(format!("the forger stays in the committee: {why}")),
    }
    // The honest request for the same withdrawal still signs: nothing was marked by forgeries.
    let before: usize = vault.signers.values().map(|s| s.evidence.len()).sum();
    let (tx, sats) = honest_tx(&vault, &authorization, &utxos);
    let messages = sighashes(&tx, &sats, &vault.policy.vault_key);
    let quorum = quorum(&vault);
    let (signature, _) = sign(&mut vault, &quorum, first, &tx, &sats, &messages);
    let after: usize = vault.signers.values().map(|s| s.evidence.len()).sum();
    if signature.is_none() {
        achieved.push("the honest request after the forgeries was not signed".into());
    }
    (achieved, refused, after - before)
}

/// The evidence goes to the sentinel: the forging coordinator is committee member 1, and each
/// other member turns its `vault_request` evidence records into observations of the grounds the
/// replica gives that kind, accusing once its policy's threshold is reached. The f+1 (or more)
/// signed accusations make a quarantine decision that the sentinel's own check accepts. Returns
/// how many members accused.
fn quarantined_for_forging(vault: &Vault, seed: u64) -> Result<usize, String> {
    use bulwark_consensus::evidence::Kind;
    use bulwark_sentinel::{Accusation, Membership, Policy, Quarantine, Trust, Watch};
    let keys: BTreeMap<Member, ed25519_dalek::SigningKey> = vault
        .signers
        .keys()
        .map(|m| {
            let label = 0x70u8.wrapping_add(*m as u8);
            (
                *m,
                ed25519_dalek::SigningKey::from_bytes(&seed_bytes(seed, label)),
            )
        })
        .collect();
    let public = |m: &Member| keys[m].verifying_key().to_bytes();
    let committee: Vec<[u8; 32]> = keys.keys().map(public).collect();
    let mut membership =
        Membership::new(0, committee, Policy::default()).map_err(|e| e.to_string())?;
    let forger = vault.signers.keys().next().copied().ok_or("no members")?;
    let grounds = Kind::VaultRequest
        .grounds()
        .ok_or("vault_request evidence is grounds for nothing")?;
    let now_ms = 60_000;
    let mut accusations = Vec::new();
    for (m, signer) in &vault.signers {
        if *m == forger {
            continue;
        }
        let mut watch = Watch::new(public(m), &membership);
        for (i, _) in signer.evidence.iter().enumerate() {
            if watch.observe(public(&forger), grounds, now_ms + i as u64) {
                accusations.push(Accusation::sign(
                    &keys[m],
                    public(&forger),
                    grounds,
                    0,
                    now_ms + i as u64,
                ));
            }
        }
    }
    let accusers = accusations.len();
    let decision: bulwark_engine::sentinel::Decision = Quarantine {
        member: public(&forger),
        epoch: 0,
        evidence: bulwark_sentinel::membership::Evidence::Accusations(accusations),
    };
    membership
        .apply(&decision, now_ms + 100)
        .map_err(|e| format!("{accusers} accusations: {e}"))?;
    match membership.trust(&public(&forger)) {
        Some(Trust::Quarantined { .. }) => Ok(accusers),
        other => Err(format!("its trust is {other:?}")),
    }
}

/// Member n-1 is removed: the others refresh. Its old share with new ones does not sign, it
/// cannot take part in a signing of the new sharing, and the new sharing signs to the same
/// address. A replacement is repaired by t of them (a lying helper leaves it with nothing) and
/// signs with t - 1 of them.
pub(crate) fn custody_member_removed(seed: u64, n: usize) -> Outcome {
    let mut vault = vault(seed, n);
    let (mut achieved, mut refused) = (Vec::new(), Vec::new());
    let removed = n as Member;
    let old: BTreeMap<Member, KeyShare<Taproot>> = vault
        .signers
        .iter()
        .map(|(m, s)| (*m, s.share.clone()))
        .collect();
    let keep: BTreeSet<Member> = (1..removed).collect();
    let fresh = local::refresh(&old, &keep, seed_bytes(seed, 9)).expect("an honest refresh");
    let authorization = *vault.ledger.values().next().expect("a withdrawal");
    let (tx, sats) = honest_tx(&vault, &authorization, &vault.utxos[..2]);
    let messages = sighashes(&tx, &sats, &vault.policy.vault_key);
    // The removed member's old share with t-1 new ones.
    let mut mixed = signers_of(fresh.clone(), seed);
    mixed.insert(
        removed,
        signers_of(BTreeMap::from([(removed, old[&removed].clone())]), seed)
            .remove(&removed)
            .expect("one"),
    );
    let t = usize::from(fresh.values().next().expect("members").threshold());
    let mut signers: Vec<Member> = keep.iter().copied().take(t - 1).collect();
    signers.push(removed);
    let mut commitments = BTreeMap::new();
    for m in &signers {
        commitments.insert(*m, mixed[m].published[0].1);
    }
    let signing = package::<Taproot>(&commitments, &messages[0]).expect("members");
    let mut shares = BTreeMap::new();
    for m in &signers {
        let signer = mixed.get_mut(m).expect("a member");
        let nonces = signer.book.spend(signer.published[0].0).expect("unspent");
        // FROST's raw round 2, bypassing the vault's own refusal to sign next to a non-holder.
        shares.insert(
            *m,
            frost_core::round2::sign(&signing, &nonces, &signer.share.key).expect("raw round 2"),
        );
    }
    let new_public = &fresh.values().next().expect("members").public;
    match aggregate(&signing, &shares, new_public) {
        Ok(signature) => {
            let bytes: [u8; 64] = signature.serialize().expect("encodes").try_into().expect("64");
            if bip340(&bytes, &messages[0], &vault.policy.vault_key) {
                achieved.push("the removed member's old share signed with the new ones".into());
            } else {
                refused.push("old share + new shares: the signature does not verify under the vault's key".into());
            }
        }
        Err(error) => refused.push(format!("old share + new shares: {error} (its share matches no verifying share of the new sharing)")),
    }
    // A member of the new sharing refuses a package that names the removed member.
    let honest = keep.iter().next().copied().expect("members");
    let signer = mixed.get_mut(&honest).expect("a member");
    let nonces = signer.book.spend(signer.published[1].0).expect("unspent");
    let mut commitments = BTreeMap::new();
    commitments.insert(honest, signer.published[1].1);
    for m in &signers {
        if *m != honest {
            commitments.insert(*m, mixed[m].published[1].1);
        }
    }
    let signing = package::<Taproot>(&commitments, &messages[0]).expect("members");
    match bulwark_vault::signing::sign(&signing, &nonces, &mixed[&honest].share) {
        Ok(_) => achieved.push("a member signed next to the removed member".into()),
        Err(error) => refused.push(format!("a package naming the removed member: {error}")),
    }
    // The new sharing signs a spend to the same output key.
    vault.signers = signers_of(fresh, seed ^ 0xfeed);
    let quorum = quorum(&vault);
    if let (None, refusals) = sign(
        &mut vault,
        &quorum,
        authorization.withdrawal,
        &tx,
        &sats,
        &messages,
    ) {
        achieved.push(format!(
            "the members left could not sign under the unchanged output key: {refusals:?}"
        ));
    }
    // A replacement takes the seat (a vault number of its own): t of the members left repair
    // its share. A helper lying about one delta leaves it with nothing; the honest repair gives
    // it a share that signs with t - 1 of them to the same output key.
    let holders: BTreeMap<Member, KeyShare<Taproot>> = vault
        .signers
        .iter()
        .map(|(m, s)| (*m, s.share.clone()))
        .collect();
    let newcomer = bulwark_vault::newcomer_number(&seed_bytes(seed, 10));
    let helpers: BTreeSet<Member> = keep.iter().copied().take(t).collect();
    let mut received: BTreeMap<Member, BTreeMap<Member, Vec<u8>>> = BTreeMap::new();
    for (i, helper) in helpers.iter().enumerate() {
        let deltas = repair::deltas(
            &holders[helper],
            &helpers,
            newcomer,
            seed_bytes(seed, 20 + i as u8),
        )
        .expect("a holder's deltas");
        for (to, delta) in deltas {
            received.entry(to).or_default().insert(*helper, delta);
        }
    }
    let liar = *helpers.iter().last().expect("helpers");
    let lie =
        repair::deltas(&holders[&liar], &helpers, newcomer, seed_bytes(seed, 40)).expect("deltas");
    let first = *helpers.iter().next().expect("helpers");
    received
        .get_mut(&first)
        .expect("a helper")
        .insert(liar, lie[&first].clone());
    let sigmas: BTreeMap<Member, Vec<u8>> = helpers
        .iter()
        .map(|h| {
            let sigma = repair::sigma::<Taproot>(&helpers, &received[h]).expect("a sigma");
            (*h, sigma)
        })
        .collect();
    match repair::repaired(newcomer, &helpers, &sigmas, &holders[&first].public) {
        Ok(_) => achieved.push("a repair with a lying helper gave the newcomer a share".into()),
        Err(error) => refused.push(format!("a repair with a lying helper: {error}")),
    }
    match repair::local(&holders, &helpers, newcomer, seed_bytes(seed, 11)) {
        Err(error) => achieved.push(format!("the honest repair failed: {error}")),
        Ok(share) => {
            let mut with_newcomer = BTreeMap::new();
            for (m, holder) in &holders {
                with_newcomer.insert(
                    *m,
                    repair::with_holder(holder, newcomer).expect("a holder adds it"),
                );
            }
            with_newcomer.insert(newcomer, share);
            vault.signers = signers_of(with_newcomer, seed ^ 0xbeef);
            let mut quorum: Vec<Member> = keep.iter().copied().take(t - 1).collect();
            quorum.push(newcomer);
            if let (None, refusals) = sign(
                &mut vault,
                &quorum,
                authorization.withdrawal,
                &tx,
                &sats,
                &messages,
            ) {
                achieved.push(format!(
                    "the repaired newcomer could not sign with t - 1 holders: {refusals:?}"
                ));
            }
        }
    }
    (achieved, refused, 0)
}
