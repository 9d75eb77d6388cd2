//! The actor loop: messages from simplex, blocks and block requests from peers, fetching
//! what is missing.

use super::*;

impl<E: Clock + Spawner + Supervisor + Storage + CryptoRng> Replica<E> {
    pub(super) async fn run<S, R, RS, RR, XS, XR>(
        mut self,
        (mut sender, mut receiver): (S, R),
        (mut request_sender, mut request_receiver): (RS, RR),
        (mut reshare_sender, mut reshare_receiver): (XS, XR),
        (mut accusation_sender, mut accusation_receiver): (XS, XR),
        (mut catchup_sender, mut catchup_receiver): (XS, XR),
    ) where
        S: Sender<PublicKey = PublicKey>,
        R: Receiver<PublicKey = PublicKey>,
        RS: Sender<PublicKey = PublicKey>,
        RR: Receiver<PublicKey = PublicKey>,
        XS: Sender<PublicKey = PublicKey>,
        XR: Receiver<PublicKey = PublicKey>,
    {
        // A restart in the middle of a due reshare starts it again (the committed state says
        // whether one is due).
        self.start_reshare_if_due();
        let mut next_fetch = self.context.current() + FETCH_RETRY;
        loop {
            let fetch_timer = self.context.sleep_until(next_fetch);
            select! {
                _ = fetch_timer => {
                    next_fetch = self.context.current() + FETCH_RETRY;
                },
                request = request_receiver.recv() => {
                    let Ok((peer, bytes)) = request else {
                        debug!("request channel closed; replica stops");
                        return;
                    };
                    self.answer_request(peer, bytes.as_ref(), &mut sender).await;
                },
                message = self.mailbox.recv() => {
                    let Some(message) = message else {
                        debug!("simplex dropped the mailbox; replica stops");
                        return;
                    };
                    self.handle(message, &mut sender);
                },
                event = self.events.recv() => {
                    let Some(event) = event else {
                        return;
                    };
                    self.handle(event, &mut sender);
                },
                received = receiver.recv() => {
                    let Ok((peer, bytes)) = received else {
                        debug!("block channel closed; replica stops");
                        return;
                    };
                    self.receive_block(&peer, bytes.as_ref());
                },
                received = accusation_receiver.recv() => {
                    let Ok((peer, bytes)) = received else {
                        debug!("accusation channel closed; replica stops");
                        return;
                    };
                    self.receive_accusation(&peer, bytes.as_ref());
                },
                received = catchup_receiver.recv() => {
                    let Ok((peer, bytes)) = received else {
                        debug!("catch-up channel closed; replica stops");
                        return;
                    };
                    self.receive_catchup(peer, bytes.as_ref(), &mut catchup_sender).await;
                },
                received = reshare_receiver.recv() => {
                    let Ok((peer, bytes)) = received else {
                        debug!("reshare channel closed; replica stops");
                        return;
                    };
                    self.receive_reshare(&peer, bytes.as_ref());
                },
            }
            if let Err(error) = self.progress().await {
                // The disk failed under a finalized height. Going on would serve, sign and
                // build on a committed state the disk does not hold: this member stops (its
                // consensus stops with it, when the epochs channel this actor holds closes)
                // and comes back from what it synced.
                error!(%error, height = self.committed_height + 1, "cannot persist a finalized height; this member stops");
                self.config
                    .stats
                    .lock()
                    .expect("the stats lock must not be poisoned")
                    .halted = Some(format!(
                    "cannot persist finalized height {}: {error}",
                    self.committed_height + 1
                ));
                return;
            }
            self.request_missing(&mut request_sender);
            let now = self.context.current();
            // The sentinel's inputs are read on the fetch timer's cadence, not per message.
            if now >= self.next_watch {
                self.next_watch = now + FETCH_RETRY;
                self.watch();
                self.ask_catchup(&mut catchup_sender);
            }
            let resend = now >= self.next_resend;
            if resend {
                self.next_resend = now + crate::epoch::RESEND_EVERY;
            }
            self.send_reshare(&mut reshare_sender, resend);
            self.send_accusations(&mut accusation_sender, resend);
        }
    }

    /// Hands a reshare message to the attempt it is addressed to; anything else is dropped (an
    /// honest peer sends it again every [`crate::epoch::RESEND_EVERY`]).
    fn receive_reshare(&mut self, peer: &PublicKey, bytes: &[u8]) {
        let Some(reshare) = self
            .reshares
            .iter_mut()
            .chain(self.finishing.iter_mut())
            .find(|r| r.takes(bytes))
        else {
            return;
        };
        let was_complete = reshare.completed().is_some();
        match reshare.receive(peer, bytes, &self.config.shares) {
            Ok(new) => self.reshare_due |= new > 0,
            Err(crate::epoch::ReshareRefusal::OtherReshare(_)) => {}
            Err(crate::epoch::ReshareRefusal::Ceremony(
                bulwark_custody::dkg::DkgError::Duplicate { .. }
                | bulwark_custody::dkg::DkgError::Concluded,
            )) => {}
            Err(error) => {
                self.config.evidence.record(
                    Kind::MalformedReshare,
                    peer,
                    reshare.epoch(),
                    error.to_string(),
                );
            }
        }
        let late = !was_complete
            && reshare.completed().is_some()
            && reshare.epoch() == epoch_of(&self.committed);
        if late && self.keys.is_none() {
            // The epoch began before this member's reshare completed: it can sign now.
            self.announce_epoch();
        }
    }

    /// Sends the reshares' new messages now, and all of them every
    /// [`crate::epoch::RESEND_EVERY`] until the epoch changes.
    fn send_reshare<XS: Sender<PublicKey = PublicKey>>(&mut self, sender: &mut XS, resend: bool) {
        if !self.reshare_due && !resend {
            return;
        }
        self.reshare_due = false;
        let me = self.config.signer.public_key();
        for reshare in self.reshares.iter().chain(&self.finishing) {
            for (recipients, frame) in reshare.outbox(&me) {
                sender.send(recipients, IoBuf::from(frame), false);
            }
        }
    }

    /// Asks every peer for missing blocks not requested within [`FETCH_RETRY`] (one digest per
    /// message, at most [`FETCH_DIGESTS_MAX`] at a time).
    pub(super) fn request_missing<RS: Sender<PublicKey = PublicKey>>(
        &mut self,
        request_sender: &mut RS,
    ) {
        let now = self.context.current();
        let missing = &self.missing;
        self.requested.retain(|digest, _| missing.contains(digest));
        let mut sent = 0;
        for digest in &self.missing {
            if sent == FETCH_DIGESTS_MAX {
                break;
            }
            let due = self
                .requested
                .get(digest)
                .is_none_or(|at| now.duration_since(*at).unwrap_or(Duration::ZERO) >= FETCH_RETRY);
            if due {
                request_sender.send(Recipients::All, IoBuf::from(digest.0.to_vec()), false);
                self.requested.insert(*digest, now);
                sent += 1;
            }
        }
    }

    /// Answers a peer's request for a block we hold; anything else is ignored.
    pub(super) async fn answer_request<S: Sender<PublicKey = PublicKey>>(
        &mut self,
        peer: PublicKey,
        request: &[u8],
        sender: &mut S,
    ) {
        let Ok(digest) = <[u8; 32]>::try_from(request) else {
            self.config.evidence.record(
                Kind::MalformedRequest,
                &peer,
                0,
                format!("{} bytes", request.len()),
            );
            return;
        };
        let digest = Digest(digest);
        if let Some((_, bytes)) = self.blocks.get(&digest) {
            sender.send(Recipients::One(peer), IoBuf::from(bytes.clone()), false);
            return;
        }
        let Some(&offset) = self.archive.get(&digest) else {
            return;
        };
        match self.log.read_at_offset(offset).await {
            Ok(Some(record)) => {
                sender.send(Recipients::One(peer), IoBuf::from(record.block), false);
            }
            Ok(None) => warn!(?digest, offset, "archived block is past the end of the log"),
            Err(error) => warn!(?digest, %error, "cannot read an archived block"),
        }
    }

    pub(super) fn now_ms(&self) -> u64 {
        let since_unix = self
            .context
            .current()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        u64::try_from(since_unix.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(self.config.venue_epoch_ms)
    }

    pub(super) fn handle<S: Sender<PublicKey = PublicKey>>(
        &mut self,
        message: Message,
        sender: &mut S,
    ) {
        match message {
            Message::Propose { context, response } => {
                self.pending_proposals.push((context, response));
            }
            Message::Verify {
                context,
                digest,
                response,
            } => self.pending_verifies.push((context, digest, response)),
            Message::Broadcast { digest, recipients } => {
                let Some((_, bytes)) = self.blocks.get(&digest) else {
                    warn!(?digest, "asked to broadcast a block we do not hold");
                    return;
                };
                let sent = sender.send(recipients, IoBuf::from(bytes.clone()), false);
                debug!(?digest, peers = sent.len(), "broadcast block");
            }
            Message::Finalized {
                digest,
                certificate,
            } => {
                if !self.archive.contains_key(&digest) {
                    self.certificates.insert(digest, certificate);
                    self.finalized_pending.push(digest);
                }
            }
        }
    }

    pub(super) fn receive_block(&mut self, peer: &PublicKey, bytes: &[u8]) {
        // Stored by digest only: a block becomes relevant when simplex asks about its digest,
        // so a peer cannot make us adopt anything by sending it.
        match Block::decode(bytes) {
            Ok(block) => {
                // Bounded: nothing at or below the committed height, nothing far ahead of it.
                if block.height <= self.committed_height
                    || block.height > self.committed_height + BLOCKS_AHEAD_MAX
                {
                    return;
                }
                let digest = Block::digest_of(bytes);
                if self.blocks.contains_key(&digest) {
                    return;
                }
                let solicited =
                    self.missing.contains(&digest) || self.requested.contains_key(&digest);
                if !solicited {
                    self.make_room_for(peer);
                    self.unsolicited
                        .entry(peer.clone())
                        .or_default()
                        .push_back(digest);
                }
                self.blocks.insert(digest, (block, bytes.to_vec()));
                self.record_store_size();
            }
            Err(error) => {
                // Evidence for the sentinel later; today only logged.
                self.config
                    .evidence
                    .record(Kind::MalformedBlock, peer, 0, error.to_string());
            }
        }
    }

    /// Keeps `peer` under [`UNSOLICITED_BLOCKS_PER_PEER`] unsolicited blocks in the store by
    /// dropping its oldest blocks not yet executed (a block that was executed is in use: a vote
    /// or a child may stand on it). Its list holds only blocks still stored: this is the one
    /// place besides `prune` (which cleans the lists) that removes a block.
    fn make_room_for(&mut self, peer: &PublicKey) {
        let Some(digests) = self.unsolicited.get_mut(peer) else {
            return;
        };
        let mut dropped = 0u64;
        while digests.len() >= UNSOLICITED_BLOCKS_PER_PEER {
            let Some(position) = digests
                .iter()
                .position(|digest| !self.speculative.contains_key(digest))
            else {
                break;
            };
            if let Some(digest) = digests.remove(position) {
                self.blocks.remove(&digest);
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.config
                .stats
                .lock()
                .expect("the stats lock must not be poisoned")
                .blocks_dropped += dropped;
        }
    }

    /// Retries everything waiting on data, until nothing changes. An error: the disk failed
    /// under a finalized height (the caller stops the replica).
    pub(super) async fn progress(&mut self) -> Result<(), LogError> {
        // Rebuilt from what still waits, so abandoned requests stop being fetched.
        self.missing.clear();
        self.answer_proposals().await;
        self.answer_verifies().await;
        self.commit_finalized().await
    }
}
