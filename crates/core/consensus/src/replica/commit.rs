//! Committing finalized heights: once each, in order, into the durable log, with snapshots
//! and pruning.

use super::*;

impl<E: Clock + Spawner + Supervisor + Storage + CryptoRng> Replica<E> {
    /// Executes finalized blocks in height order on the committed engine, once per height.
    pub(super) async fn commit_finalized(&mut self) -> Result<(), LogError> {
        let pending = std::mem::take(&mut self.finalized_pending);
        for digest in pending {
            // Collect the chain from the committed tip up to `digest`.
            if self.archive.contains_key(&digest) || digest == self.committed_digest {
                continue;
            }
            let mut chain = Vec::new();
            let mut cursor = digest;
            let mut complete = true;
            let mut stale = false;
            while cursor != self.committed_digest {
                // A catch-up block counts once a finalized descendant links to it.
                if let Some(linked) = self.catchup_buffer.remove(&cursor) {
                    self.blocks.entry(cursor).or_insert(linked);
                }
                let Some((block, _)) = self.blocks.get(&cursor) else {
                    self.missing.insert(cursor);
                    complete = false;
                    break;
                };
                if block.height <= self.committed_height {
                    assert!(
                        chain.is_empty(),
                        "finalized blocks must extend the committed chain (safety)"
                    );
                    stale = true;
                    break;
                }
                chain.push(cursor);
                cursor = block.parent;
            }
            if stale || chain.is_empty() {
                // Already committed (finalizations of ancestors can arrive after descendants').
                continue;
            }
            if !complete {
                // Pruned blocks are below the committed height, so a missing block here is one
                // not received yet; a real node fetches it (marshal's backfill).
                self.finalized_pending.push(digest);
                continue;
            }
            match self.lookup_final(digest) {
                Lookup::Ready => {}
                Lookup::Missing(absent) => {
                    self.missing.insert(absent);
                    self.finalized_pending.push(digest);
                    continue;
                }
                Lookup::Invalid(refusal) => {
                    panic!("a finalized block must pass this replica's checks ({refusal}): the state diverged")
                }
            }
            for digest in chain.into_iter().rev() {
                self.commit(digest).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn commit(&mut self, digest: Digest) -> Result<(), LogError> {
        let (block, bytes) = &self.blocks[&digest];
        let certificate = self.certificates.remove(&digest);
        let certified = certificate.is_some();
        let before = epoch_of(&self.committed);
        let after = epoch_of(&self.speculative[&digest].engine);
        if after != before {
            // Before the log: a restart that finds the block in the log finds its epoch's start.
            save_boundary(&self.context, &self.config.epoch_partition, after, &digest).await?;
        }
        let offset = self.log.offset_of_next();
        self.log
            .append(&Record {
                height: block.height,
                block: bytes.clone(),
                certificate,
            })
            .await?;
        self.archive.insert(digest, offset);
        self.offsets.push((offset, certified));
        assert_eq!(
            block.height,
            self.committed_height + 1,
            "finalized blocks must be executed in height order, once per height"
        );
        assert_eq!(
            block.parent_root, self.committed_root,
            "a finalized block's parent root must equal the committed root"
        );
        // The block was executed (once) when it was checked; committing adopts that state.
        let speculative = &self.speculative[&digest];
        self.committed = speculative.engine.clone();
        self.committed_root = speculative.root;
        let root = speculative.root;
        let fills = speculative.fills;
        // Oracle faults the committed block completed: the deviating member, with its own
        // signed observation, recorded for the sentinel (the same evidence is in the engine
        // state under the root, derived from the signed rounds in the block log).
        for fault in &speculative.oracle_faults {
            match PublicKey::decode(fault.node.to_vec()) {
                Ok(member) => self.config.evidence.record(
                    Kind::OracleFault,
                    &member,
                    block.height,
                    serde_json::to_string(fault).unwrap_or_default(),
                ),
                Err(_) => warn!("oracle fault evidence names a key that is not ed25519"),
            }
        }
        tell(&self.config, block.height, &speculative.receipts);
        let conserved = self.committed.totals().conserved();
        assert!(conserved, "money must be conserved after every block");
        self.record_finalized(block, &speculative.tally);
        *self
            .config
            .view
            .lock()
            .expect("the view lock must not be poisoned") = super::CommittedView {
            height: block.height,
            engine: self.committed.clone(),
        };
        {
            let mut ledger = self
                .config
                .ledger
                .lock()
                .expect("the ledger lock must not be poisoned");
            ledger.push(Committed {
                height: block.height,
                digest,
                root,
                txs: block.txs.len(),
                fills,
                conserved,
                certified,
            });
            let excess = ledger.len().saturating_sub(self.config.ledger_kept);
            ledger.drain(..excess);
        }
        let block_epoch = block.epoch;
        self.committed_height = block.height;
        self.committed_digest = digest;
        if after != before {
            self.begin_epoch(digest);
        }
        if block_epoch > self.pruned_below {
            // The first block of the new epoch is final: older shares can only do harm now.
            let pruned = self
                .config
                .shares
                .lock()
                .expect("the share store lock must not be poisoned")
                .prune(block_epoch);
            // The epoch's first block is final: its members hold their shares.
            self.finishing.clear();
            match pruned {
                Ok(()) => {
                    info!(epoch = block_epoch, "deleted the shares of older epochs");
                    self.pruned_below = block_epoch;
                }
                Err(error) => warn!(%error, "cannot delete the shares of older epochs"),
            }
        }
        self.start_reshare_if_due();
        self.prune();
        if let Err(error) = self
            .held
            .release(&self.context, self.committed_height)
            .await
        {
            // Only space is lost: the segments are removed on a later release or restart.
            warn!(%error, "cannot remove held blocks below the committed height");
        }
        self.snapshot_if_due().await;
        Ok(())
    }

    /// The committed block `boundary` began a new epoch: keeps the reshares into it answering
    /// peers, takes this member's share and announces the epoch to the orchestrator.
    fn begin_epoch(&mut self, boundary: Digest) {
        self.epoch_boundary = boundary;
        self.finishing = std::mem::take(&mut self.reshares);
        self.announce_epoch();
    }

    /// Announces the current epoch to the orchestrator, with this member's share of its agreed
    /// key when it holds one.
    pub(super) fn announce_epoch(&mut self) {
        let epoch = epoch_of(&self.committed);
        let participants = restore::participants_of(&self.config, &self.committed);
        self.keys = restore::shares_of(&self.config, &self.committed, &participants);
        let member = participants
            .position(&self.config.signer.public_key())
            .is_some();
        info!(
            epoch,
            members = participants.len(),
            member,
            signs = self.keys.is_some(),
            "a new epoch began"
        );
        let _ = self.epochs.send(EpochStart {
            epoch,
            boundary: self.epoch_boundary,
            participants,
            keys: self.keys.clone(),
        });
    }

    /// Keeps the reshare into the next epoch going while the committed trust state says one is
    /// due (someone is quarantined) and this member stays: the attempt the committed venue time
    /// calls for (every member computes the same one), plus the earlier attempts that completed
    /// here. Drops what no longer fits.
    pub(super) fn start_reshare_if_due(&mut self) {
        let Some(membership) = self.committed.membership() else {
            return;
        };
        let Some(since) = membership.change_due_since() else {
            self.reshares.clear();
            self.output_wanted = None;
            return;
        };
        let epoch = membership.epoch() + 1;
        let players = crate::epoch::committee_of(&membership.next_members());
        let dealers = crate::epoch::committee_of(&membership.staying());
        let attempt = crate::epoch::attempt_at(since, self.committed.time_ms());
        self.reshares.retain(|r| {
            r.is_for(epoch, &players) && (r.attempt() == attempt || r.completed().is_some())
        });
        // Bounded: the current attempt and the three newest completed ones.
        while self.reshares.len() > 4 {
            self.reshares.remove(0);
        }
        if self.reshares.iter().any(|r| r.attempt() == attempt) {
            return;
        }
        let me = self.config.signer.public_key();
        if players.position(&me).is_none() {
            self.output_wanted = None;
            if dealers.position(&me).is_some() {
                info!(epoch, "this member leaves the committee at the next epoch");
            }
            return;
        }
        let signer = self.config.signer.clone();
        let started = if dealers.position(&me).is_none() {
            // A joining candidate (it follows the log by certified catch-up) plays with only the
            // ending epoch's public output, which it asks the members for.
            let current = membership.epoch();
            let previous = match &self.joining_output {
                Some((output_epoch, output)) if *output_epoch == current => output.clone(),
                _ => {
                    if self.output_wanted.as_ref().map(|c| c.epoch()) != Some(current) {
                        info!(
                            epoch,
                            "this node joins at the next epoch: asking the members for the ending epoch's public output"
                        );
                        self.output_wanted = Some(crate::catchup::OutputCollector::new(current));
                    }
                    return;
                }
            };
            Reshare::join(epoch, attempt, previous, signer, dealers, players)
        } else {
            let Some(keys) = &self.keys else {
                warn!(epoch, "this member holds no share of the current key and cannot deal; the reshare waits for it");
                return;
            };
            Reshare::start(epoch, attempt, keys, signer, dealers, players)
        };
        match started {
            Ok(reshare) => {
                self.reshares.push(reshare);
                self.reshare_due = true;
            }
            Err(error) => warn!(epoch, attempt, %error, "cannot start or join the reshare"),
        }
    }

    /// Updates the mempool (drops the block's transactions and the stale ones) and the status
    /// figures (finalized count, submit-to-finalized and oracle latencies) for a committed
    /// `block`.
    fn record_finalized(&self, block: &Block, tally: &crate::check::Tally) {
        let keys: Vec<TxKey> = block.txs.iter().map(TxKey::of).collect();
        let outcome = self.config.mempool.commit(&keys, self.context.current());
        let committed = &self.committed;
        self.config
            .mempool
            .remove_stale(block.txs.iter().map(|tx| tx.account), |account| {
                // A session's id stands for its account: its nonces are the session's.
                let owner = account.as_session().map_or(account, |(owner, _)| owner);
                committed
                    .account(owner)
                    .map(|_| committed.next_nonce(account))
            });
        let mut stats = self
            .config
            .stats
            .lock()
            .expect("the stats lock must not be poisoned");
        stats.finalized_txs += block.txs.len() as u64;
        stats.finalized_rejected += tally.rejected_total();
        stats.tally.add(tally);
        let now_ms = u64::try_from(
            self.context
                .current()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        if let Some(pool) = &self.config.oracle {
            let mut pool = pool
                .lock()
                .expect("the oracle pool lock must not be poisoned");
            pool.note_certified(&block.rounds);
            if pool.follow(&self.committed) {
                info!(
                    seats_held = self.committed.oracle_roster().held(),
                    "oracle seats changed with the committee: observations are kept from the new holders"
                );
            }
        }
        if let Some(sentinel) = &self.config.sentinel {
            sentinel
                .lock()
                .expect("the sentinel lock must not be poisoned")
                .prune(&self.committed);
        }
        if let Some(deposits) = &self.config.deposits {
            deposits
                .lock()
                .expect("the deposit feed lock must not be poisoned")
                .committed(&self.committed);
        }
        for round in &block.rounds {
            if let SystemCommand::OracleRound { round, .. } = round {
                let observed =
                    self.config.venue_epoch_ms + round.saturating_mul(crate::oracle_feed::ROUND_MS);
                stats.oracle_rounds += 1;
                stats
                    .oracle_latency
                    .observe_us(now_ms.saturating_sub(observed).saturating_mul(1_000));
                if stats.oracle_latencies_ms.len() == LATENCIES_KEPT {
                    stats.oracle_latencies_ms.pop_front();
                }
                stats
                    .oracle_latencies_ms
                    .push_back(u32::try_from(now_ms.saturating_sub(observed)).unwrap_or(u32::MAX));
            }
        }
        for latency in outcome.latencies {
            stats
                .submit_latency
                .observe_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
            if stats.latencies_ms.len() == LATENCIES_KEPT {
                stats.latencies_ms.pop_front();
            }
            stats
                .latencies_ms
                .push_back(u32::try_from(latency.as_millis()).unwrap_or(u32::MAX));
        }
    }

    /// Writes an engine snapshot when the committed height is a multiple of `snapshot_every`.
    async fn snapshot_if_due(&self) {
        let every = self.config.snapshot_every;
        if every > 0 && self.committed_height.is_multiple_of(every) {
            let height = self.committed_height;
            match snapshots::save(
                &self.context,
                &self.config.snapshot_partition,
                height,
                &self.committed,
            )
            .await
            {
                Ok(()) => {
                    self.config
                        .stats
                        .lock()
                        .expect("the stats lock must not be poisoned")
                        .last_snapshot = Some(height);
                }
                // Only restart time is lost: the log still replays from an older snapshot.
                Err(error) => warn!(height, %error, "cannot write an engine snapshot"),
            }
        }
    }

    /// Forgets blocks and states that can no longer matter: everything below the committed
    /// height, and the committed height's losing forks.
    pub(super) fn prune(&mut self) {
        let height = self.committed_height;
        let keep = self.committed_digest;
        self.speculative
            .retain(|digest, state| state.height > height || *digest == keep);
        self.blocks
            .retain(|digest, (block, _)| block.height > height || *digest == keep);
        self.certificates.retain(|digest, _| {
            self.blocks.contains_key(digest) || self.finalized_pending.contains(digest)
        });
        self.invalid
            .retain(|_, invalid_height| *invalid_height > height);
        self.catchup_buffer
            .retain(|_, (block, _)| block.height > height);
        let buffer = &self.catchup_buffer;
        self.catchup_order
            .retain(|digest| buffer.contains_key(digest));
        let blocks = &self.blocks;
        self.unsolicited.retain(|_, digests| {
            digests.retain(|digest| blocks.contains_key(digest));
            !digests.is_empty()
        });
        self.record_store_size();
    }

    /// The store's sizes into the shared status figures.
    pub(super) fn record_store_size(&self) {
        let mut stats = self
            .config
            .stats
            .lock()
            .expect("the stats lock must not be poisoned");
        stats.blocks_held = self.blocks.len();
        stats.invalid_held = self.invalid.len();
    }
}

/// Tells the receipt sink a committed height's receipts.
pub(super) fn tell(config: &Config, height: u64, receipts: &[crate::check::Receipt]) {
    if let Some(sink) = &config.receipts {
        sink(height, receipts);
    }
}

pub(super) fn count_fills(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|event| matches!(event, Event::Fill { .. }))
        .count()
}
