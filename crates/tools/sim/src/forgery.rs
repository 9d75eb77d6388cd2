//! The hostile log: what a node (or whoever holds its disk) hands `bulwark verify` to pass off
//! a history the committee never finalized. Each forgery is built from an honest member's
//! finalized log with every record's checksum recomputed, so the log's own integrity check
//! passes and only the certificate, chain and root checks can catch it.
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use bulwark_consensus::block::Block;
use bulwark_consensus::log::{Reader, Record, LOG_BLOB};
use bulwark_consensus::verify::{verify_log, Identity, VerifyError};
use bulwark_engine::Engine;
use commonware_cryptography::sha256::Digest;
use commonware_runtime::{deterministic, Blob as _, Storage as _, Supervisor as _};

/// One forgery and what `verify_log` made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgery {
    /// What was forged.
    pub name: &'static str,
    /// The error that refused it, or `None` when it was accepted (a broken promise).
    pub refused_with: Option<String>,
}

/// The forgeries tried against the honest log in `partition`.
pub(crate) async fn try_forgeries(
    context: &deterministic::Context,
    partition: &str,
    genesis: &(Engine, Digest),
    identity: Identity,
    other_committee: Identity,
) -> Vec<Forgery> {
    let records = read_all(context, partition).await;
    assert!(records.len() >= 6, "the forgeries need a log of 6 heights");
    let last = records.len() - 1;
    let middle = records.len() / 2;
    let certified: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].certificate.is_some())
        .collect();
    let last_certified = *certified.last().unwrap();
    let mut out = Vec::new();

    // 1. A certificate moved from another height: it certifies another block.
    let mut moved = records.clone();
    let donor = certified
        .iter()
        .rev()
        .find(|&&i| i != last_certified)
        .copied()
        .unwrap();
    moved[last_certified].certificate = records[donor].certificate.clone();
    out.push(
        forgery(
            context,
            "certificate-from-another-height",
            &moved,
            genesis,
            identity,
            None,
        )
        .await,
    );

    // 2. A forged certificate: one byte of its signature changed.
    let mut forged = records.clone();
    let mut certificate = forged[last_certified].certificate.clone().unwrap();
    let end = certificate.len() - 1;
    certificate[end - 7] ^= 0x01;
    forged[last_certified].certificate = Some(certificate);
    out.push(
        forgery(
            context,
            "forged-certificate-signature",
            &forged,
            genesis,
            identity,
            None,
        )
        .await,
    );

    // 3. The honest log checked against another committee's group key: exactly what a log
    //    certified by another committee looks like to a verifier holding the venue's key.
    let mut result = verify(context, partition, genesis, other_committee, None).await;
    out.push(Forgery {
        name: "certificates-under-another-committee-key",
        refused_with: result.take(),
    });

    // 4. A wrong state root in the middle, the record's checksum recomputed.
    let mut rooted = records.clone();
    let mut block = Block::decode(&rooted[middle].block).unwrap();
    block.parent_root[0] ^= 0x01;
    rooted[middle].block = block.encode();
    out.push(
        forgery(
            context,
            "wrong-root-recomputed-checksum",
            &rooted,
            genesis,
            identity,
            None,
        )
        .await,
    );

    // 5. The tail's certificates removed, and `--until` pointed inside it.
    let mut bare = records.clone();
    for record in &mut bare[middle..] {
        record.certificate = None;
    }
    let until = Some(bare[last].height - 1);
    out.push(
        forgery(
            context,
            "uncovered-tail-with-until",
            &bare,
            genesis,
            identity,
            until,
        )
        .await,
    );

    // 6. A block in the middle swapped for one the committee never finalized (its
    //    transactions removed), checksum recomputed; the blocks after it left as they were.
    let mut swapped = records.clone();
    let mut block = Block::decode(&swapped[middle].block).unwrap();
    block.txs.clear();
    block.time_ms += 1;
    swapped[middle].block = block.encode();
    out.push(
        forgery(
            context,
            "block-never-finalized",
            &swapped,
            genesis,
            identity,
            None,
        )
        .await,
    );

    // 7. `--until` past the end of the honest log: it must not answer for heights it lacks.
    let beyond = Some(records[last].height + 10);
    out.push(Forgery {
        name: "until-past-the-end",
        refused_with: verify(context, partition, genesis, identity, beyond).await,
    });
    out
}

async fn read_all(context: &deterministic::Context, partition: &str) -> Vec<Record> {
    let (blob, size) = context.open(partition, LOG_BLOB).await.unwrap();
    let mut reader = Reader::new(&blob, size);
    let mut records = Vec::new();
    while let Some(record) = reader.next().await.unwrap() {
        records.push(record);
    }
    records
}

/// Writes `records` as a fresh log (checksums recomputed) and verifies it.
async fn forgery(
    context: &deterministic::Context,
    name: &'static str,
    records: &[Record],
    genesis: &(Engine, Digest),
    identity: Identity,
    until: Option<u64>,
) -> Forgery {
    let partition = format!("forged-{name}");
    let (blob, _) = context.open(&partition, LOG_BLOB).await.unwrap();
    let bytes: Vec<u8> = records.iter().flat_map(Record::encode).collect();
    blob.write_at(0, bytes, commonware_runtime::WriteOptions::SYNC)
        .await
        .unwrap();
    drop(blob);
    Forgery {
        name,
        refused_with: verify(context, &partition, genesis, identity, until).await,
    }
}

/// `None` when the log verifies, else the error.
async fn verify(
    context: &deterministic::Context,
    partition: &str,
    genesis: &(Engine, Digest),
    identity: Identity,
    until: Option<u64>,
) -> Option<String> {
    let context = context.child("forgery");
    let mut rng = context.child("rng");
    let result: Result<_, VerifyError> = verify_log(
        &context,
        partition,
        genesis.clone(),
        identity,
        &mut rng,
        until,
        |_| {},
    )
    .await;
    result.err().map(|e| e.to_string())
}
