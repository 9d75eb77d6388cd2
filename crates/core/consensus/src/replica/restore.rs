//! Start-up: restore the committed engine from the newest snapshot the log confirms (or
//! genesis), replay the log after it, reload held blocks.

use super::*;

impl<E: Clock + Spawner + Supervisor + Storage + CryptoRng> Replica<E> {
    /// Opens the finalized log, rebuilds the committed engine by replaying it, and returns the
    /// actor with the mailbox to hand simplex (as automaton, relay and reporter).
    pub async fn init(context: E, config: Config) -> Result<(Self, Mailbox, Epochs), LogError> {
        let (sender, mailbox) = mpsc::channel(config.mailbox_size);
        let (events_sender, events) = mpsc::unbounded_channel();
        let (genesis, genesis_digest) = config.genesis.clone();
        let evidence = config.evidence.clone();
        let participants = Arc::new(config.participants.clone());
        let votes = SharedVotes::default();
        let Replayed {
            log,
            engine: committed,
            root: committed_root,
            digest: committed_digest,
            archive,
            offsets,
            executed: replayed,
            receipts,
        } = restore(&context, &config, &genesis, genesis_digest).await?;
        let committed_height = log.height();
        // What this replica vouched for before it stopped: it must still be able to produce
        // those blocks (a leader may have to build on one of them).
        let (held, held_blocks) =
            Held::open(&context, &config.held_partition, committed_height).await?;
        if !held_blocks.is_empty() {
            debug!(blocks = held_blocks.len(), "reloaded held blocks");
        }
        let blocks: HashMap<Digest, (Block, Vec<u8>)> = held_blocks
            .into_iter()
            .filter(|(_, block, _)| block.height <= committed_height + BLOCKS_AHEAD_MAX)
            .map(|(digest, block, bytes)| (digest, (block, bytes)))
            .collect();
        record_replayed(&config, replayed);
        // The replayed heights' receipts, told again: a sink that outlived the replica (the
        // node's endpoint does not) must find them the same as when they were first told.
        for (height, told) in &receipts {
            super::commit::tell(&config, *height, told);
        }
        if committed_height > 0 {
            debug!(height = committed_height, "replayed the finalized log");
        }
        let committed = Arc::new(committed);
        // The oracle pool keeps observations from the restored state's seat holders at once,
        // not the genesis ones until the first commit.
        if let Some(pool) = &config.oracle {
            pool.lock()
                .expect("the oracle pool lock must not be poisoned")
                .follow(&committed);
        }
        let current = current_epoch(&context, &config, &committed, genesis_digest).await?;
        let (epochs, next) = mpsc::unbounded_channel();
        *config
            .view
            .lock()
            .expect("the view lock must not be poisoned") = super::CommittedView {
            height: committed_height,
            engine: committed.clone(),
        };
        let mut speculative = HashMap::new();
        speculative.insert(
            committed_digest,
            Speculative {
                height: committed_height,
                time_ms: committed.time_ms(),
                engine: committed.clone(),
                root: committed_root,
                fills: 0,
                oracle_faults: Vec::new(),
                receipts: Vec::new(),
                tally: Default::default(),
            },
        );
        let started = context.current();
        let catchup_verifier = config.identity.map(crate::verify::certificate_verifier);
        let replica = Replica {
            context,
            config,
            mailbox,
            events,
            blocks,
            speculative,
            invalid: HashMap::new(),
            unsolicited: HashMap::new(),
            pending_verifies: Vec::new(),
            pending_proposals: Vec::new(),
            finalized_pending: Vec::new(),
            certificates: HashMap::new(),
            committed,
            committed_root,
            committed_height,
            committed_digest,
            missing: HashSet::new(),
            requested: HashMap::new(),
            archive,
            offsets,
            catchup_buffer: HashMap::new(),
            catchup_order: std::collections::VecDeque::new(),
            follower: crate::catchup::Follower::new(committed_height, started),
            catchup_verifier,
            answered: HashMap::new(),
            answered_outputs: HashMap::new(),
            output_wanted: None,
            next_output_ask: UNIX_EPOCH,
            joining_output: None,
            log,
            held,
            keys: current.keys.clone(),
            reshares: Vec::new(),
            finishing: Vec::new(),
            epoch_boundary: current.boundary,
            next_resend: UNIX_EPOCH,
            next_watch: UNIX_EPOCH,
            reshare_due: false,
            epochs,
            pruned_below: 0,
            watcher: watch::Watcher::default(),
            votes: votes.clone(),
        };
        Ok((
            replica,
            Mailbox {
                sender,
                events: events_sender,
                evidence,
                participants,
                votes,
                epoch: current.epoch,
            },
            Epochs { current, next },
        ))
    }
}

/// The committee of `engine`'s epoch in participant-index order: the sentinel's members, or the
/// configured genesis committee without a sentinel committee.
pub(super) fn participants_of(config: &Config, engine: &Engine) -> Set<PublicKey> {
    match engine.membership() {
        Some(membership) => crate::epoch::committee_of(membership.members()),
        None => Set::from_iter_dedup(config.participants.iter().cloned()),
    }
}

/// This member's share of `epoch`, when it holds one that fits the key the committee agreed on.
pub(super) fn shares_of(
    config: &Config,
    engine: &Engine,
    participants: &Set<PublicKey>,
) -> Option<Completed> {
    let me = config.signer.public_key();
    participants.position(&me)?;
    let epoch = epoch_of(engine);
    let loaded = config
        .shares
        .lock()
        .expect("the share store lock must not be poisoned")
        .load(epoch, participants);
    let agreed = engine.membership().and_then(|m| m.key()).map(|k| k.digest);
    match loaded {
        Ok(stored) => {
            // The attempt whose key the committee agreed on (genesis: the one share).
            let found = stored
                .into_iter()
                .find(|c| agreed.is_none_or(|digest| digest == key_digest(&c.output)));
            if found.is_none() {
                warn!(
                    epoch,
                    "no share of this epoch's agreed key is stored; this member cannot sign"
                );
            }
            found
        }
        Err(error) => {
            warn!(epoch, %error, "the stored share does not load; this member cannot sign");
            None
        }
    }
}

/// The epoch the committed state is in, with its boundary, participants and this member's share.
async fn current_epoch<E: Storage>(
    context: &E,
    config: &Config,
    committed: &Engine,
    genesis_digest: Digest,
) -> Result<EpochStart, LogError> {
    let epoch = epoch_of(committed);
    let boundary = if epoch == 0 {
        genesis_digest
    } else {
        load_boundary(context, &config.epoch_partition, epoch)
            .await?
            .ok_or_else(|| LogError::Replay {
                height: 0,
                reason: format!(
                    "the block that began epoch {epoch} is not recorded in partition {}",
                    config.epoch_partition
                )
                .into(),
            })?
    };
    let participants = participants_of(config, committed);
    let keys = shares_of(config, committed, &participants);
    Ok(EpochStart {
        epoch,
        boundary,
        participants,
        keys,
    })
}

/// Restores the committed engine from the newest snapshot the log confirms (a snapshot is usable
/// when the log goes past it and the next logged block names its root), or from genesis, and
/// replays the log after it.
pub(super) async fn restore<E: Clock + Spawner + Supervisor + Storage>(
    context: &E,
    config: &Config,
    genesis: &Engine,
    genesis_digest: Digest,
) -> Result<Replayed<E::Blob>, LogError> {
    let mut candidates = snapshots::heights(context, &config.snapshot_partition)
        .await?
        .into_iter();
    loop {
        // The next candidate that restores: a damaged one, or one the storage cannot read, is
        // skipped with a warning (only restart time is lost). None left: genesis.
        let mut from = None;
        for height in candidates.by_ref() {
            match snapshots::load(context, &config.snapshot_partition, height).await {
                Ok(Some(restored)) => {
                    from = Some(restored);
                    break;
                }
                Ok(None) => {}
                Err(error) => warn!(height, %error, "snapshot not readable; skipped"),
            }
        }
        let base = from.as_ref().map(|r: &snapshots::Restored| r.height);
        match replay(
            context,
            &config.log_partition,
            genesis,
            genesis_digest,
            from,
            config.receipts.is_some(),
        )
        .await
        {
            Ok(replay) => {
                if let Some(height) = base {
                    info!(
                        snapshot = height,
                        replayed = replay.executed.len(),
                        "restored the engine from a snapshot and replayed the log after it"
                    );
                    config
                        .stats
                        .lock()
                        .expect("the stats lock must not be poisoned")
                        .restored_snapshot = Some(height);
                }
                return Ok(replay);
            }
            Err(Replay::Unusable(why)) => {
                warn!(
                    snapshot = base,
                    "snapshot not used ({why}); trying an older one, or genesis"
                );
            }
            // After a snapshot, a replay error may be the snapshot's (a state that does not
            // replay as the log says): fall back. From genesis it is the log's own.
            Err(Replay::Log(error)) if base.is_some() => {
                warn!(
                    snapshot = base,
                    %error,
                    "the log does not replay from this snapshot; trying an older one, or genesis"
                );
            }
            Err(Replay::Log(error)) => return Err(error),
        }
    }
}

/// Adds the heights a replay executed to the ledger. The ledger outlives restarts in tests: a
/// replayed height must match what was recorded when it was first committed (nothing lost,
/// nothing executed twice).
pub(super) fn record_replayed(config: &Config, replayed: Vec<Committed>) {
    let mut ledger = config
        .ledger
        .lock()
        .expect("the ledger lock must not be poisoned");
    for entry in replayed {
        match ledger.binary_search_by_key(&entry.height, |c| c.height) {
            Ok(at) => assert_eq!(
                (ledger[at].digest, ledger[at].root),
                (entry.digest, entry.root),
                "replaying the log must reproduce every committed height"
            ),
            Err(_) => ledger.push(entry),
        }
    }
    let excess = ledger.len().saturating_sub(config.ledger_kept);
    ledger.drain(..excess);
}

/// Why a replay from a snapshot did not work.
pub(super) enum Replay {
    /// The snapshot does not fit the log (the log ends before it goes past it, or the next
    /// block names another root): replay from an older snapshot or from genesis.
    Unusable(&'static str),
    /// The log itself cannot be read or does not replay.
    Log(LogError),
}

/// Why the replay refused a logged block (returned through [`LogError::Replay`]).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// The logged block does not decode.
    #[error(transparent)]
    Block(#[from] crate::block::BlockError),
    /// The block's height or parent digest does not follow the block logged before it.
    #[error("the block does not extend the log before it")]
    DoesNotExtend,
    /// The first block after the snapshot names another parent root than the snapshot's.
    #[error("the snapshot does not fit the log")]
    SnapshotDoesNotFit,
    /// The block's parent root is not the root of the state replayed so far.
    #[error("the block's parent root differs from the replayed state")]
    ParentRoot,
}

/// What a replay rebuilt.
pub(super) struct Replayed<B: commonware_runtime::Blob> {
    /// The open log, positioned after its last intact record.
    log: Log<B>,
    /// The committed engine and its state root.
    engine: Engine,
    root: StateRoot,
    /// The digest of the last logged block (the genesis digest for an empty log).
    digest: Digest,
    /// Where each logged block starts in the log.
    archive: HashMap<Digest, u64>,
    /// Where each height starts in the log, and whether it is certified (index: height - 1).
    offsets: Vec<(u64, bool)>,
    /// The heights executed (those after the snapshot, or all).
    executed: Vec<Committed>,
    /// Their receipts, by height (the newest [`REPLAYED_RECEIPTS_MAX`]'s worth).
    receipts: std::collections::VecDeque<(u64, Vec<crate::check::Receipt>)>,
}

/// Opens the finalized log and rebuilds the committed engine: from `from` (a snapshot, whose
/// heights are read for their links and offsets only) or from genesis; with `keep_receipts`,
/// the executed heights' receipts too.
pub(super) async fn replay<S: Storage>(
    storage: &S,
    partition: &str,
    genesis: &Engine,
    genesis_digest: Digest,
    from: Option<snapshots::Restored>,
    keep_receipts: bool,
) -> Result<Replayed<S::Blob>, Replay> {
    let base = from.as_ref().map_or(0, |r| r.height);
    let mut snapshot = from;
    let mut committed = genesis.clone();
    // The root after the last executed height, carried from one height to the next (each
    // root costs a serialization of the whole state).
    let mut root = genesis.state_root();
    let mut committed_digest = genesis_digest;
    let mut archive = HashMap::new();
    let mut offsets = Vec::new();
    let mut offset = 0u64;
    let mut replayed = Vec::new();
    let mut unusable = None;
    let mut receipts = std::collections::VecDeque::new();
    let mut receipts_count = 0usize;
    let opened = Log::open(storage, partition, |record| {
        let (height, parent, _) = Block::header(&record.block)?;
        if height != record.height || parent != committed_digest {
            return Err(Refusal::DoesNotExtend);
        }
        let digest = Block::digest_of(&record.block);
        archive.insert(digest, offset);
        offsets.push((offset, record.certificate.is_some()));
        offset += record.encoded_len() as u64;
        committed_digest = digest;
        if height <= base {
            // Covered by the snapshot: checked and executed when it was first committed;
            // only its links are read.
            return Ok(());
        }
        let block = Block::decode(&record.block)?;
        if let Some(restored) = snapshot.take() {
            if block.parent_root != restored.root {
                unusable = Some("the next logged block names another parent root");
                return Err(Refusal::SnapshotDoesNotFit);
            }
            committed = restored.engine;
            root = restored.root;
        }
        if block.parent_root != root {
            return Err(Refusal::ParentRoot);
        }
        let mut events = Vec::new();
        if keep_receipts {
            let told = execute_with_receipts(&mut committed, &block, &mut events);
            receipts_count += told.len();
            receipts.push_back((block.height, told));
            while receipts_count > REPLAYED_RECEIPTS_MAX {
                let Some((_, dropped)) = receipts.pop_front() else {
                    break;
                };
                receipts_count -= dropped.len();
            }
        } else {
            execute(&mut committed, &block, &mut events);
        }
        root = committed.state_root();
        replayed.push(Committed {
            height: block.height,
            digest,
            root,
            txs: block.txs.len(),
            fills: count_fills(&events),
            conserved: committed.totals().conserved(),
            certified: record.certificate.is_some(),
        });
        Ok(())
    })
    .await;
    if let Some(why) = unusable {
        return Err(Replay::Unusable(why));
    }
    let log = opened.map_err(Replay::Log)?;
    if snapshot.is_some() {
        // Nothing after the snapshot was logged (or the log was cut shorter): its root is
        // not confirmed by any logged block.
        return Err(Replay::Unusable("the log does not go past it"));
    }
    Ok(Replayed {
        log,
        engine: committed,
        root,
        digest: committed_digest,
        archive,
        offsets,
        executed: replayed,
        receipts,
    })
}
