//! The node's long-running tasks: mempool gossip, oracle observation and intake, and the
//! status line with the evidence file.

use super::keystore::{read_private, write_private, KeystoreError};
use super::startup::{Channel, Prepared, Shared};
use super::{endpoint, NodeError, EVIDENCE_FILE};
use bulwark_consensus::evidence::Kind;
use bulwark_consensus::mempool::Origin;
use bulwark_consensus::oracle_feed::{round_at, SharedPool, SyntheticFeed, ROUND_MS};
use bulwark_engine::codec::{decode_batch, encode_batch, SignedTx};
use bulwark_engine::oracle::SignedObservation;
use bulwark_oracle::proposer::Dropped;
use commonware_codec::Encode as _;
use commonware_p2p::{Receiver as _, Recipients, Sender as _};
use commonware_runtime::tokio::Context;
use commonware_runtime::{Clock, IoBuf, Spawner as _, Supervisor as _};
use commonware_utils::channel::mpsc;
use std::time::Duration;
use tracing::{info, warn};

/// Where this member's oracle observations come from.
enum Feed {
    Synthetic(Box<SyntheticFeed>),
    Sourced(super::oracle_sources::SourcedFeed),
}

/// Mempool gossip: transactions accepted from clients go to every peer; batches from peers go
/// into the mempool (malformed ones are evidence against the sender).
pub(super) fn spawn_gossip(
    context: &Context,
    shared: &Shared,
    (mut gossip_out, mut gossip_in): Channel,
    mut queue: mpsc::UnboundedReceiver<Vec<SignedTx>>,
) {
    context.child("gossip_out").spawn(move |_| async move {
        while let Some(txs) = queue.recv().await {
            for chunk in txs.chunks(bulwark_consensus::block::BLOCK_TXS_MAX) {
                if let Ok(bytes) = encode_batch(chunk) {
                    gossip_out.send(Recipients::All, IoBuf::from(bytes), false);
                }
            }
        }
    });
    let shared = shared.clone();
    context.child("gossip_in").spawn(move |_| async move {
        while let Ok((peer, bytes)) = gossip_in.recv().await {
            match decode_batch(bytes.as_ref(), bulwark_consensus::block::BLOCK_TXS_MAX) {
                Ok(txs) => {
                    let engine = shared
                        .view
                        .lock()
                        .expect("the view lock must not be poisoned")
                        .engine
                        .clone();
                    let keys = endpoint::EngineKeys(engine);
                    shared.mempool.insert_batch(txs, &keys, Origin::Peer);
                }
                Err(error) => {
                    shared
                        .evidence
                        .record(Kind::MalformedGossip, &peer, 0, error.to_string())
                }
            }
        }
    });
}

/// This member's price source: the configured venues, or the DEVELOPMENT synthetic path.
fn feed(prepared: &Prepared) -> Result<Feed, NodeError> {
    let signing_key = ed25519_dalek::SigningKey::from_bytes(&prepared.seed);
    let config = &prepared.config;
    if config.oracle.is_empty() {
        warn!("oracle source: SYNTHETIC development price path (seeded from the genesis), not a real market");
        let seed = u64::from_le_bytes(prepared.genesis.1 .0[..8].try_into().unwrap_or([0; 8]));
        return Ok(Feed::Synthetic(Box::new(SyntheticFeed::new(
            &prepared.genesis_file.index_micros,
            seed,
            signing_key,
        ))));
    }
    let feeds: Vec<(u16, bulwark_oracle::source::SourcesConfig)> = config
        .oracle
        .iter()
        .map(|f| (f.underlying, f.sources.clone()))
        .collect();
    for (underlying, sources) in &feeds {
        info!(
            underlying,
            source = sources.source.as_str(),
            venues = ?sources.venues.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            "oracle sources"
        );
    }
    let missing: Vec<usize> = (0..prepared.underlyings)
        .filter(|u| !feeds.iter().any(|(f, _)| usize::from(*f) == *u))
        .collect();
    if !missing.is_empty() {
        warn!(
            ?missing,
            "no oracle sources for these underlyings: this member does not observe them"
        );
    }
    let sourced = super::oracle_sources::SourcedFeed::start(
        &feeds,
        &tokio::runtime::Handle::current(),
        &signing_key,
        prepared.genesis_file.venue_epoch_ms,
    )
    .map_err(|e| NodeError::Oracle(e.to_string()))?;
    Ok(Feed::Sourced(sourced))
}

/// Oracle: observe every round, gossip the signed observation, and pool everyone's for the
/// proposer. Observations that do not decode or verify are evidence against the sender; one
/// for another round, or a repeat, is normal gossip and dropped quietly.
pub(super) fn spawn_oracle(
    context: &Context,
    prepared: &Prepared,
    shared: &Shared,
    (oracle_out, oracle_in): Channel,
) -> Result<(), NodeError> {
    let Some(pool) = shared.oracle_pool.clone() else {
        warn!("no oracle committee in the genesis: the index stays at its genesis value");
        return Ok(());
    };
    let venue_epoch_ms = prepared.genesis_file.venue_epoch_ms;
    if prepared.observes {
        let feed = feed(prepared)?;
        let sources_status = shared.oracle_sources.clone();
        let observe_pool = pool.clone();
        let round_file = prepared.config.data_dir.join(ORACLE_ROUND_FILE);
        context.child("oracle_feed").spawn(move |context| {
            observe(
                context,
                feed,
                observe_pool,
                oracle_out,
                venue_epoch_ms,
                sources_status,
                round_file,
            )
        });
    } else {
        info!("not an oracle member: this node observes no prices (it checks the certified rounds in blocks)");
    }
    let evidence = shared.evidence.clone();
    context.child("oracle_in").spawn(move |context| async move {
        let mut oracle_in = oracle_in;
        while let Ok((peer, bytes)) = oracle_in.recv().await {
            let now_round = round_at(unix_ms(&context), venue_epoch_ms);
            let mut own = false;
            let offered = match SignedObservation::decode(bytes.as_ref()) {
                Ok(observation) => {
                    own = peer.encode()[..] == observation.node[..];
                    pool.lock()
                        .expect("the oracle pool lock must not be poisoned")
                        .offer(observation, now_round)
                        .map_err(|dropped| (Some(dropped), dropped.to_string()))
                }
                Err(error) => Err((None, error.to_string())),
            };
            match offered {
                // An equivocation is kept by the pool as the signer's own proof (the relaying
                // peer is not at fault).
                Ok(())
                | Err((
                    Some(Dropped::WrongRound | Dropped::Duplicate | Dropped::Equivocation),
                    _,
                )) => {}
                // A peer's own observation without a seat: it may be a newcomer whose epoch this
                // node has not committed yet, or a removed member that has not noticed. Dropped
                // quietly (nothing was stored, no signature checked). Members relay no one's
                // observations, so one signed by another key is evidence below.
                Err((Some(Dropped::NotMember), _)) if own => {}
                Err((Some(Dropped::Implausible { round, .. }), reason)) => evidence.record(
                    Kind::ImplausibleOracleRound,
                    &peer,
                    round,
                    format!("oracle observation: {reason}"),
                ),
                Err((_, reason)) => evidence.record(
                    Kind::MalformedGossip,
                    &peer,
                    0,
                    format!("oracle observation: {reason}"),
                ),
            }
        }
    });
    Ok(())
}

/// Milliseconds since the Unix epoch by the runtime's clock.
pub(super) fn unix_ms(context: &Context) -> u64 {
    context
        .current()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Every round: this member's observations into its own pool and to every peer.
async fn observe(
    context: Context,
    mut feed: Feed,
    pool: SharedPool,
    mut oracle_out: commonware_p2p::authenticated::lookup::Sender<
        bulwark_consensus::replica::PublicKey,
        Context,
    >,
    venue_epoch_ms: u64,
    sources_status: std::sync::Arc<std::sync::Mutex<serde_json::Value>>,
    round_file: std::path::PathBuf,
) {
    // A second, different observation for one round is an equivocation the sentinel convicts
    // on (`docs/sentinel.md`), so rounds only go forwards, also across restarts and clock
    // steps: the round in progress at start is skipped (this member may have signed it
    // before a restart), and so is every round up to the last one it signed, which it
    // records on disk before each observation leaves it.
    let mut last_round = round_at(unix_ms(&context), venue_epoch_ms);
    match signed_round(&round_file) {
        Ok(Some(signed)) if signed > last_round => {
            warn!(
                signed,
                now = last_round,
                "this member signed oracle rounds ahead of its clock before (a clock stepped back?): it observes again after round {signed}"
            );
            last_round = signed;
        }
        Ok(_) => {}
        Err(error) => {
            warn!(path = %round_file.display(), %error, "cannot read the last signed oracle round; only the round in progress is skipped")
        }
    }
    loop {
        let now_ms = unix_ms(&context);
        let venue_ms = now_ms.saturating_sub(venue_epoch_ms);
        let round = round_at(now_ms, venue_epoch_ms);
        if round > last_round {
            last_round = round;
            if let Err(error) = remember_signed_round(&round_file, round) {
                // Unrecorded, a restart after a clock step back could sign it again: skip it.
                warn!(round, path = %round_file.display(), %error, "cannot record the oracle round; not observing it");
                let next = (round + 1) * ROUND_MS - venue_ms;
                context.sleep(Duration::from_millis(next.max(1))).await;
                continue;
            }
            let observations = match &mut feed {
                Feed::Synthetic(feed) => feed.observe(round, venue_ms),
                Feed::Sourced(feed) => {
                    *sources_status
                        .lock()
                        .expect("the oracle status lock must not be poisoned") = feed.status();
                    feed.observe(round, now_ms)
                }
            };
            for observation in observations {
                let bytes = observation.encode();
                let kept = pool
                    .lock()
                    .expect("the oracle pool lock must not be poisoned")
                    .offer(observation, round);
                // Without a seat (a candidate not yet admitted, or a member removed), this
                // node's observations count nowhere: it keeps observing, and sends none.
                if kept != Err(Dropped::NotMember) {
                    oracle_out.send(Recipients::All, IoBuf::from(bytes), false);
                }
            }
        }
        let next = (round + 1) * ROUND_MS - venue_ms;
        context.sleep(Duration::from_millis(next.max(1))).await;
    }
}

/// File in the data directory that holds the last oracle round this member signed.
pub(super) const ORACLE_ROUND_FILE: &str = "oracle-round";

/// The last oracle round recorded in `path` (`None`: no file yet), read as the node reads its
/// other files in the data directory (`keystore::read_private`: bounded, no symlink).
fn signed_round(path: &std::path::Path) -> Result<Option<u64>, KeystoreError> {
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let bytes = read_private(path)?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| KeystoreError::File {
            path: path.to_path_buf(),
            reason: "not a round number".into(),
        })
}

/// Records `round` in `path` durably (`keystore::write_private`: a fresh temporary file synced,
/// renamed over it, the directory synced).
fn remember_signed_round(path: &std::path::Path, round: u64) -> Result<(), KeystoreError> {
    write_private(path, round.to_string().as_bytes())
}

/// Every 5 s until the process is stopped: new fault evidence appended to `evidence.jsonl` in
/// the data directory (for the sentinel), and a status line in the log.
pub(super) async fn report_status(context: &Context, prepared: &Prepared, shared: &Shared) {
    let evidence_path = prepared.config.data_dir.join(EVIDENCE_FILE);
    let mut evidence_written = 0u64;
    loop {
        context.sleep(Duration::from_secs(5)).await;
        let total = shared.evidence.total();
        if total > evidence_written {
            let recent = shared.evidence.recent();
            let fresh = (total - evidence_written).min(recent.len() as u64) as usize;
            let mut lines = String::new();
            for record in &recent[recent.len() - fresh..] {
                if let Ok(line) = serde_json::to_string(record) {
                    lines.push_str(&line);
                    lines.push('\n');
                }
            }
            use std::io::Write as _;
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&evidence_path)
                .and_then(|mut file| file.write_all(lines.as_bytes()));
            if let Err(error) = written {
                warn!(path = %evidence_path.display(), %error, "cannot append fault evidence");
            }
            evidence_written = total;
        }
        let height = shared
            .ledger
            .lock()
            .expect("the ledger lock must not be poisoned")
            .last()
            .map_or(0, |c| c.height);
        info!(name = %prepared.config.name, height, mempool = shared.mempool.len(), "status");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The last signed oracle round survives in its file; no file is no round, and a damaged
    /// one is an error (the observer then skips only the round in progress, and says so).
    #[test]
    fn the_last_signed_oracle_round_is_kept_on_disk() {
        let dir = std::env::temp_dir().join(format!("bulwark-oracle-round-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(ORACLE_ROUND_FILE);
        let _ = std::fs::remove_file(&path);
        assert_eq!(signed_round(&path).unwrap(), None);
        remember_signed_round(&path, 41).unwrap();
        remember_signed_round(&path, 42).unwrap();
        assert_eq!(signed_round(&path).unwrap(), Some(42));
        write_private(&path, b"forty-three").unwrap();
        assert!(
            matches!(signed_round(&path), Err(KeystoreError::File { reason, .. }) if reason == "not a round number")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
