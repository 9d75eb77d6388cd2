//! Speculative execution: a block's post-state forked from its parent's, answers to
//! simplex's verify and propose, and the blocks held on disk before a vote.

use super::*;

impl<E: Clock + Spawner + Supervisor + Storage + CryptoRng> Replica<E> {
    /// Makes the post-state of `digest` known if its block and every ancestor back to a known
    /// state are present, checking each on the way.
    pub(super) fn lookup(&mut self, digest: Digest) -> Lookup {
        self.lookup_as(digest, false)
    }

    /// [`Replica::lookup`] for a block the committee finalized (a certificate covers it): its
    /// time is not held against this replica's clock (a replica whose clock runs slow must
    /// still commit what the committee finalized), and an earlier refusal of it here is not
    /// taken on trust but checked again.
    pub(super) fn lookup_final(&mut self, digest: Digest) -> Lookup {
        self.lookup_as(digest, true)
    }

    fn lookup_as(&mut self, digest: Digest, finalized: bool) -> Lookup {
        let mut chain = Vec::new();
        let mut cursor = digest;
        loop {
            if !finalized && self.invalid.contains_key(&cursor) {
                return Lookup::Invalid(Refusal::Root);
            }
            if self.speculative.contains_key(&cursor) {
                break;
            }
            let Some((block, _)) = self.blocks.get(&cursor) else {
                return Lookup::Missing(cursor);
            };
            if block.height <= self.committed_height {
                // Below the committed height only the committed chain matters, and this is not it.
                return Lookup::Invalid(Refusal::Height {
                    got: block.height,
                    want: self.committed_height + 1,
                });
            }
            chain.push(cursor);
            cursor = block.parent;
        }
        // Far enough ahead that no finalized block's time is refused, yet no overflow when the
        // check adds its skew.
        let now_ms = if finalized {
            u64::MAX / 2
        } else {
            self.now_ms()
        };
        for digest in chain.into_iter().rev() {
            let (block, _) = &self.blocks[&digest];
            let parent = &self.speculative[&block.parent];
            let mempool = &self.config.mempool;
            let on = Parent {
                engine: &parent.engine,
                root: &parent.root,
                height: parent.height,
                time_ms: parent.time_ms,
            };
            let started = self.context.current();
            let checked =
                check_and_execute(on, block, now_ms, self.config.verify_threads, &|txs| {
                    mempool.holds(txs)
                });
            // Only checks that passed: a hostile peer's refused blocks do not shape the figure.
            if checked.is_ok() {
                self.observe_since(started, |stats| &mut stats.block_check);
            }
            match checked {
                Ok(executed) => {
                    let height = block.height;
                    let time_ms = block.time_ms;
                    self.speculative.insert(
                        digest,
                        Speculative {
                            height,
                            time_ms,
                            engine: Arc::new(executed.engine),
                            root: executed.root,
                            fills: executed.fills,
                            oracle_faults: executed.oracle_faults,
                            receipts: executed.receipts,
                            tally: executed.tally,
                        },
                    );
                }
                Err(refusal) => {
                    self.invalid.insert(digest, block.height);
                    self.config.refused.fetch_add(1, Ordering::Relaxed);
                    warn!(?digest, %refusal, "refused block");
                    return Lookup::Invalid(refusal);
                }
            }
        }
        Lookup::Ready
    }

    /// Counts the time since `started` (the runtime's clock: 0 under the simulator) in the
    /// histogram `pick` chooses. Only a status figure: nothing replicated depends on it.
    pub(super) fn observe_since(
        &self,
        started: std::time::SystemTime,
        pick: impl FnOnce(&mut super::Stats) -> &mut bulwark_api::stats::LatencyHistogram,
    ) {
        let took = self
            .context
            .current()
            .duration_since(started)
            .unwrap_or_default();
        pick(
            &mut self
                .config
                .stats
                .lock()
                .expect("the stats lock must not be poisoned"),
        )
        .observe_us(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    }

    /// Writes `digests` and their uncommitted ancestors to the held blocks (synced). False
    /// when the disk failed: the replica then must not vouch for them.
    ///
    /// Ancestors are written before their descendants: a crash during the append keeps a
    /// prefix of the records, so a surviving block never lacks a parent that `hold` would then
    /// skip as already held.
    pub(super) async fn hold(&mut self, digests: &[Digest]) -> bool {
        let mut entries = Vec::new();
        for digest in digests {
            let mut chain = Vec::new();
            let mut cursor = *digest;
            while cursor != self.committed_digest && !self.held.holds(&cursor) {
                let Some((block, bytes)) = self.blocks.get(&cursor) else {
                    break;
                };
                if block.height <= self.committed_height {
                    break;
                }
                chain.push(Entry {
                    digest: cursor,
                    height: block.height,
                    bytes,
                });
                cursor = block.parent;
            }
            entries.extend(chain.into_iter().rev());
        }
        match self.held.keep(&self.context, &entries).await {
            Ok(()) => true,
            Err(error) => {
                warn!(%error, "cannot keep blocks on disk; not vouching for them");
                false
            }
        }
    }

    pub(super) async fn answer_verifies(&mut self) {
        let pending = std::mem::take(&mut self.pending_verifies);
        // Verified blocks are written to disk (one sync for all) before any vote for them.
        let mut verified = Vec::new();
        for (context, digest, response) in pending {
            if response.is_closed() {
                continue;
            }
            let Some((block, _)) = self.blocks.get(&digest) else {
                self.missing.insert(digest);
                self.pending_verifies.push((context, digest, response));
                continue;
            };
            let view = context.round.view().get();
            if digest == context.parent.1 {
                // A re-proposal: valid only of the block that ended this epoch, so that a
                // boundary notarized but not finalized in its own view still finalizes.
                let epoch = context.round.epoch().get();
                let ends_epoch = block.epoch == epoch
                    && self
                        .speculative
                        .get(&digest)
                        .is_some_and(|state| epoch_of(&state.engine) > epoch);
                match (ends_epoch, self.lookup(digest)) {
                    (_, Lookup::Missing(absent)) => {
                        self.missing.insert(absent);
                        self.pending_verifies.push((context, digest, response));
                    }
                    (true, Lookup::Ready) => verified.push((digest, response)),
                    _ => {
                        self.config.evidence.record(
                            Kind::RefusedProposal,
                            &context.leader,
                            view,
                            "re-proposed a block that does not end the epoch",
                        );
                        response.send_lossy(false);
                    }
                }
                continue;
            }
            if block.parent != context.parent.1
                || block.view != view
                || block.epoch != context.round.epoch().get()
            {
                self.config.evidence.record(
                    Kind::RefusedProposal,
                    &context.leader,
                    view,
                    "block does not match its consensus context",
                );
                response.send_lossy(false);
                continue;
            }
            match self.lookup(digest) {
                Lookup::Ready => match self.epoch_change_vote(&digest) {
                    EpochVote::Yes => verified.push((digest, response)),
                    EpochVote::Wait => self.pending_verifies.push((context, digest, response)),
                },
                Lookup::Invalid(refusal) => {
                    if self.invalid.contains_key(&digest) {
                        self.config.evidence.record(
                            Kind::RefusedProposal,
                            &context.leader,
                            view,
                            refusal.to_string(),
                        );
                    }
                    response.send_lossy(false);
                }
                Lookup::Missing(absent) => {
                    self.missing.insert(absent);
                    self.pending_verifies.push((context, digest, response));
                }
            }
        }
        if verified.is_empty() {
            return;
        }
        let digests: Vec<Digest> = verified.iter().map(|(digest, _)| *digest).collect();
        // On a disk failure the answers are dropped, not `false`: simplex then treats the
        // proposals as ignored, not as invalid (the leader did nothing wrong).
        if self.hold(&digests).await {
            for (_, response) in verified {
                response.send_lossy(true);
            }
        }
    }

    pub(super) async fn answer_proposals(&mut self) {
        let pending = std::mem::take(&mut self.pending_proposals);
        for (context, response) in pending {
            if response.is_closed() {
                continue;
            }
            let parent_digest = context.parent.1;
            match self.lookup(parent_digest) {
                Lookup::Ready => {}
                Lookup::Missing(absent) => {
                    self.missing.insert(absent);
                    self.pending_proposals.push((context, response));
                    continue;
                }
                // Simplex asked us to build on a parent we refuse; decline by dropping.
                Lookup::Invalid(_) => continue,
            }
            // The parent ended this consensus instance's epoch: nothing may follow it here (the
            // next epoch's instance builds on it). Propose it again instead, so that it finalizes
            // even if its own view only notarized it.
            let epoch = context.round.epoch().get();
            if epoch_of(&self.speculative[&parent_digest].engine) != epoch {
                let ends_epoch = self
                    .blocks
                    .get(&parent_digest)
                    .is_some_and(|(block, _)| block.epoch == epoch)
                    || parent_digest == self.committed_digest;
                if ends_epoch {
                    response.send_lossy(parent_digest);
                }
                continue;
            }
            let block = self.build(&context);
            let bytes = block.encode();
            let digest = Block::digest_of(&bytes);
            self.blocks.insert(digest, (block, bytes));
            if self.config.fault == Fault::None {
                // Our own proposal must verify: execute it now so children can build on it.
                if !matches!(self.lookup(digest), Lookup::Ready) {
                    panic!("a replica's own proposal must pass its own checks");
                }
            }
            // On disk before simplex sends it: a proposal is this replica's vote for it.
            if self.hold(&[digest]).await {
                response.send_lossy(digest);
            }
        }
    }

    /// Whether this member may vote for the checked block `digest` as far as epoch changes
    /// go: a block without one, yes; one with an epoch change, only when this member's own
    /// reshare into that epoch, for those members, completed with the same key digest and its
    /// share is stored. Until then the vote waits.
    pub(super) fn epoch_change_vote(&self, digest: &Digest) -> EpochVote {
        let Some((block, _)) = self.blocks.get(digest) else {
            return EpochVote::Wait;
        };
        for round in &block.rounds {
            let SystemCommand::NewEpoch {
                epoch,
                members,
                key,
            } = round
            else {
                continue;
            };
            let players = crate::epoch::committee_of(members);
            let held = players.len() == members.len()
                && self.reshares.iter().any(|r| {
                    r.is_for(*epoch, &players)
                        && r.completed().is_some_and(|c| key_digest(&c.output) == *key)
                });
            if !held {
                return EpochVote::Wait;
            }
        }
        EpochVote::Yes
    }

    /// The newest completed reshare attempt, whose key this member proposes.
    fn newest_completed(&self) -> Option<&Reshare> {
        self.reshares
            .iter()
            .filter(|r| r.completed().is_some())
            .max_by_key(|r| r.attempt())
    }

    pub(super) fn build(&self, context: &ConsensusContext) -> Block {
        let parent_digest = context.parent.1;
        let parent = &self.speculative[&parent_digest];
        // Transactions already in uncommitted ancestors must not be proposed again.
        let mut included = HashSet::new();
        let mut cursor = parent_digest;
        while cursor != self.committed_digest {
            let Some((block, _)) = self.blocks.get(&cursor) else {
                break;
            };
            included.extend(block.txs.iter().map(TxKey::of));
            cursor = block.parent;
        }
        // Nor those whose nonce the parent state has used: the engine would refuse them as
        // replays (a pool can take a transaction again after it was finalized, e.g. at a member
        // that was behind or restored a snapshot). Those the committed state has used can never
        // be executed and leave the pool.
        let mut stale = Vec::new();
        let committed = &self.committed;
        let mut txs: Vec<SignedTx> = self.config.mempool.take(self.config.block_txs_max, |tx| {
            let key = TxKey::of(tx);
            if included.contains(&key) {
                return true;
            }
            if tx.nonce >= parent.engine.next_nonce(tx.account) {
                return false;
            }
            if tx.nonce < committed.next_nonce(tx.account) {
                stale.push(key);
            }
            true
        });
        if !stale.is_empty() {
            self.config.mempool.remove(&stale);
        }
        if self.config.fault == Fault::ReplayTxs {
            // The committed block's transactions again, which every replica must execute as
            // refused replays (whose refusals the receipt servers withhold).
            if let Some((committed_block, _)) = self.blocks.get(&self.committed_digest) {
                let room = self.config.block_txs_max.saturating_sub(txs.len());
                txs.extend(committed_block.txs.iter().take(room).cloned());
            }
        }
        let mut parent_root = parent.root;
        if self.config.fault == Fault::WrongRoot {
            parent_root[0] ^= 1;
        }
        let time_ms = self.now_ms().max(parent.time_ms);
        let mut rounds = match &self.config.oracle {
            Some(pool) => pool
                .lock()
                .expect("the oracle pool lock must not be poisoned")
                .certified(&parent.engine),
            None => Vec::new(),
        };
        // Quarantines from every source, applied in turn to one copy of the parent's trust state
        // so that the block carries none the check would refuse.
        if let Some(mut next) = parent.engine.membership().cloned() {
            if let Some(pool) = &self.config.oracle {
                rounds.extend(
                    pool.lock()
                        .expect("the oracle pool lock must not be poisoned")
                        .propose_into(&mut next, time_ms),
                );
            }
            if let Some(deposits) = &self.config.deposits {
                rounds.extend(
                    deposits
                        .lock()
                        .expect("the deposit feed lock must not be poisoned")
                        .propose_into(&mut next, time_ms),
                );
            }
            if let Some(sentinel) = &self.config.sentinel {
                rounds.extend(
                    sentinel
                        .lock()
                        .expect("the sentinel lock must not be poisoned")
                        .propose_into(&mut next, time_ms),
                );
            }
            // Certified chain deposits not credited in the parent or an uncommitted ancestor
            // (the parent's speculative engine has executed those), checked against the trust
            // state the block's quarantines leave, as every replica checks them.
            if let Some(deposits) = &self.config.deposits {
                let room = crate::block::BLOCK_ROUNDS_MAX
                    .saturating_sub(1)
                    .saturating_sub(rounds.len());
                let mut proposed = deposits
                    .lock()
                    .expect("the deposit feed lock must not be poisoned")
                    .propose(&parent.engine, &next);
                proposed.truncate(room);
                rounds.extend(proposed);
            }
        }
        rounds.truncate(crate::block::BLOCK_ROUNDS_MAX - 1);
        // The trust state the block's quarantines leave.
        let after = parent.engine.membership().cloned().map(|mut next| {
            for round in &rounds {
                if let SystemCommand::Quarantine(decision) = round {
                    let _ = next.apply(decision, time_ms);
                }
            }
            next
        });
        // The epoch change, once this member's reshare completed, for the trust state the
        // block's quarantines leave (a quarantine in this very block changes the next committee,
        // and the reshare for the old one no longer fits).
        let mut changes_epoch = false;
        if let (Some(next), Some(reshare)) = (after.clone(), self.newest_completed()) {
            if let Some(completed) = reshare.completed() {
                let members: Vec<[u8; 32]> = next.next_members();
                let fits = next.check_epoch(reshare.epoch(), &members).is_ok()
                    && members.len() == reshare.players().len()
                    && reshare
                        .players()
                        .iter()
                        .all(|p| members.iter().any(|m| m.as_slice() == p.as_ref()));
                if fits {
                    rounds.push(SystemCommand::NewEpoch {
                        epoch: reshare.epoch(),
                        members,
                        key: key_digest(&completed.output),
                    });
                    changes_epoch = true;
                }
            }
        }
        // Admissions go only into a block that does not change the epoch: a join changes the
        // next committee, so it would void the reshare that is ready.
        if let (false, Some(mut next), Some(sentinel)) =
            (changes_epoch, after, &self.config.sentinel)
        {
            let admissions = sentinel
                .lock()
                .expect("the sentinel lock must not be poisoned")
                .propose_admissions_into(&mut next, time_ms);
            let room = (crate::block::BLOCK_ROUNDS_MAX - 1).saturating_sub(rounds.len());
            rounds.extend(admissions.into_iter().take(room));
        }
        let block = Block {
            epoch: epoch_of(&parent.engine),
            height: parent.height + 1,
            view: context.round.view().get(),
            time_ms,
            parent: parent_digest,
            parent_root,
            rounds,
            txs,
        };
        // The ledger names the leader consensus elected as the block's proposer (the vault's
        // first coordinator): every block this member builds checks that the two agree.
        let named = crate::check::proposer(&parent.engine, &block);
        if named.is_some_and(|key| key.as_slice() != context.leader.as_ref()) {
            tracing::error!(
                view = block.view,
                "the ledger's proposer for this block is not the leader consensus elected"
            );
            debug_assert!(false, "check::proposer disagrees with the elected leader");
        }
        block
    }
}
