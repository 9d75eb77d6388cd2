//! Certified catch-up at the replica (see [`crate::catchup`]): asking peers for records by
//! height when nothing commits, answering their requests from the log, and taking a record only
//! on a certificate of the group key.

use super::*;
use crate::catchup::{
    check_record, Frame, Take, ANSWER_BYTES_MAX, ANSWER_GAP, BUFFER_MAX, TAIL_SCAN_MAX,
};

/// Entries of the answered-peers map kept before old ones are dropped.
const ANSWERED_KEPT: usize = 64;

impl<E: Clock + Spawner + Supervisor + Storage + CryptoRng> Replica<E> {
    /// Sends the catch-up request the follower says is due, to the one peer it names.
    pub(super) fn ask_catchup<XS: Sender<PublicKey = PublicKey>>(&mut self, sender: &mut XS) {
        if self.catchup_verifier.is_none() {
            return;
        }
        let me = self.config.signer.public_key();
        // The current committee first, then the genesis one (a member removed since still
        // holds the log up to its removal).
        let members: Vec<PublicKey> = restore::participants_of(&self.config, &self.committed)
            .iter()
            .filter(|peer| **peer != me)
            .cloned()
            .collect();
        let now = self.context.current();
        if let Some(epoch) = self.output_wanted.as_ref().map(|c| c.epoch()) {
            if now >= self.next_output_ask {
                self.next_output_ask = now + crate::catchup::ASK_EVERY;
                let frame = Frame::OutputRequest { epoch };
                sender.send(
                    Recipients::Some(members.clone()),
                    IoBuf::from(frame.encode()),
                    false,
                );
            }
        }
        let mut peers = members;
        for peer in &self.config.participants {
            if *peer != me && !peers.contains(peer) {
                peers.push(peer.clone());
            }
        }
        if let Some((peer, frame)) = self.follower.poll(self.committed_height, now, &peers) {
            debug!(
                height = self.committed_height,
                peer = %crate::committee::public_key_hex(&peer),
                "nothing committed for a while: asking a peer for certified records"
            );
            sender.send(Recipients::One(peer), IoBuf::from(frame.encode()), false);
        }
    }

    /// Handles one catch-up frame from `peer`.
    pub(super) async fn receive_catchup<XS: Sender<PublicKey = PublicKey>>(
        &mut self,
        peer: PublicKey,
        bytes: &[u8],
        sender: &mut XS,
    ) {
        match Frame::decode(bytes) {
            Ok(Frame::Request { from, count }) => {
                self.answer_catchup(peer, from, count, sender).await;
            }
            Ok(Frame::Answer(record)) => self.take_catchup(&peer, record),
            Ok(Frame::OutputRequest { epoch }) => self.answer_output(peer, epoch, sender),
            Ok(Frame::Output { epoch, output }) => self.take_output(&peer, epoch, &output),
            Err(error) => {
                self.config
                    .evidence
                    .record(Kind::MalformedCatchUp, &peer, 0, error.to_string());
            }
        }
    }

    /// Sends `peer` the records of `from .. from + count` this replica committed, one frame
    /// each, at most once per [`ANSWER_GAP`] per peer and [`ANSWER_BYTES_MAX`] per answer; when
    /// none of them is certified, also the first certified record after them (within
    /// [`TAIL_SCAN_MAX`] heights).
    async fn answer_catchup<XS: Sender<PublicKey = PublicKey>>(
        &mut self,
        peer: PublicKey,
        from: u64,
        count: u16,
        sender: &mut XS,
    ) {
        if !gap_allows(&mut self.answered, &peer, self.context.current()) {
            return;
        }
        let last = from
            .saturating_add(u64::from(count) - 1)
            .min(self.committed_height);
        if from > last {
            return;
        }
        let certified_at = |offsets: &[(u64, bool)], height: u64| {
            usize::try_from(height - 1)
                .ok()
                .and_then(|index| offsets.get(index))
                .is_some_and(|(_, certified)| *certified)
        };
        let mut heights: Vec<u64> = (from..=last).collect();
        if !heights.iter().any(|h| certified_at(&self.offsets, *h)) {
            let end = last
                .saturating_add(TAIL_SCAN_MAX)
                .min(self.committed_height);
            if let Some(tail) = (last + 1..=end).find(|h| certified_at(&self.offsets, *h)) {
                heights.push(tail);
            }
        }
        let mut previous_certificate = None;
        let mut sent_bytes = 0usize;
        for height in heights {
            let Some(&(offset, _)) = usize::try_from(height - 1)
                .ok()
                .and_then(|index| self.offsets.get(index))
            else {
                return;
            };
            let record = match self.log.read_at_offset(offset).await {
                Ok(Some(record)) if record.height == height => record,
                Ok(_) => {
                    warn!(
                        height,
                        offset, "the log holds no record of a committed height"
                    );
                    return;
                }
                Err(error) => {
                    warn!(height, %error, "cannot read a committed height for a peer");
                    return;
                }
            };
            let record = if self.config.fault == Fault::ForgedCatchUp {
                let certificate = record.certificate.clone();
                let forged = forge(record, previous_certificate.take());
                previous_certificate = certificate;
                forged
            } else {
                record
            };
            let frame = Frame::Answer(record).encode();
            sent_bytes += frame.len();
            if sent_bytes > ANSWER_BYTES_MAX {
                return;
            }
            sender.send(Recipients::One(peer.clone()), IoBuf::from(frame), false);
        }
    }

    /// Takes one record of an answer: only from the peer asked, for a height asked, and only on
    /// a certificate of the group key (a record without one waits in the catch-up buffer until a
    /// certified descendant links it).
    fn take_catchup(&mut self, peer: &PublicKey, record: Record) {
        let height = record.height;
        // A late answer to an earlier request, one nobody asked for, or a second record for a
        // height: dropped unread (an honest peer answering slowly is not accused).
        let take = self.follower.take(peer, height);
        if take == Take::No
            || (take == Take::Tail && record.certificate.is_none())
            || height <= self.committed_height
            || height > self.committed_height + BLOCKS_AHEAD_MAX
        {
            return;
        }
        let Some(verifier) = self.catchup_verifier.as_ref() else {
            return;
        };
        let with_certificate = record.certificate.is_some();
        let started = self.context.current();
        let checked = check_record(record, verifier, &mut self.context);
        // Only records that passed: a hostile peer's forgeries do not shape the figure.
        if with_certificate && checked.is_ok() {
            self.observe_since(started, |stats| &mut stats.certificate_check);
        }
        let checked = match checked {
            Ok(checked) => checked,
            Err(refusal) => {
                self.config.evidence.record(
                    Kind::MalformedCatchUp,
                    peer,
                    height,
                    refusal.to_string(),
                );
                return;
            }
        };
        let digest = checked.digest;
        let Some(certificate) = checked.certificate else {
            // Only a block: bounded, oldest dropped first, never in the block store unless a
            // finalized descendant links it (`commit_finalized`).
            if self.blocks.contains_key(&digest) || self.catchup_buffer.contains_key(&digest) {
                return;
            }
            while self.catchup_order.len() >= BUFFER_MAX {
                if let Some(oldest) = self.catchup_order.pop_front() {
                    self.catchup_buffer.remove(&oldest);
                }
            }
            self.catchup_buffer
                .insert(digest, (checked.block, checked.bytes));
            self.catchup_order.push_back(digest);
            return;
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = self.blocks.entry(digest) {
            slot.insert((checked.block, checked.bytes));
            self.record_store_size();
        }
        if !self.archive.contains_key(&digest) && !self.finalized_pending.contains(&digest) {
            self.certificates.insert(digest, certificate);
            self.finalized_pending.push(digest);
        }
    }
}

impl<E: Clock + Spawner + Supervisor + Storage + CryptoRng> Replica<E> {
    /// Sends `peer` this member's public output of `epoch` when it is the epoch its log is in
    /// and it holds a share of it; at most once per [`ANSWER_GAP`] per peer.
    fn answer_output<XS: Sender<PublicKey = PublicKey>>(
        &mut self,
        peer: PublicKey,
        epoch: u64,
        sender: &mut XS,
    ) {
        let Some(keys) = &self.keys else {
            return;
        };
        if epoch != epoch_of(&self.committed) {
            return;
        }
        if !gap_allows(&mut self.answered_outputs, &peer, self.context.current()) {
            return;
        }
        let mut output = keys.output.encode().to_vec();
        if self.config.fault == Fault::ForgedCatchUp {
            if let Some(last) = output.last_mut() {
                *last ^= 0x01;
            }
        }
        let frame = Frame::Output { epoch, output };
        sender.send(Recipients::One(peer), IoBuf::from(frame.encode()), false);
    }

    /// Takes a member's copy of the output this joining candidate waits for; once accepted,
    /// the candidate joins the reshare.
    fn take_output(&mut self, peer: &PublicKey, epoch: u64, bytes: &[u8]) {
        let Some(collector) = self.output_wanted.as_mut() else {
            return;
        };
        // A late copy (another epoch by now) is dropped unread.
        if collector.epoch() != epoch || epoch != epoch_of(&self.committed) {
            return;
        }
        let (Some(identity), Some(membership)) =
            (self.config.identity.as_ref(), self.committed.membership())
        else {
            return;
        };
        let members = restore::participants_of(&self.config, &self.committed);
        let digest = membership.key().map(|key| key.digest);
        match collector.offer(peer, bytes, &members, identity, digest) {
            Ok(Some(output)) => {
                info!(
                    epoch,
                    "took the ending epoch's public output: joining the reshare"
                );
                self.joining_output = Some((epoch, output));
                self.output_wanted = None;
                self.start_reshare_if_due();
            }
            Ok(None) => {}
            Err(refusal) => self.config.evidence.record(
                Kind::MalformedCatchUp,
                peer,
                epoch,
                format!("public output: {refusal}"),
            ),
        }
    }
}

/// Whether `peer` may be answered at `now` (its last answer in `answered` is at least
/// [`ANSWER_GAP`] old); if so, records this answer. Entries older than the gap are dropped
/// once the map holds [`ANSWERED_KEPT`] peers.
fn gap_allows(
    answered: &mut HashMap<PublicKey, SystemTime>,
    peer: &PublicKey,
    now: SystemTime,
) -> bool {
    if answered.get(peer).is_some_and(|at| now < *at + ANSWER_GAP) {
        return false;
    }
    if answered.len() >= ANSWERED_KEPT {
        answered.retain(|_, at| now < *at + ANSWER_GAP);
    }
    answered.insert(peer.clone(), now);
    true
}

/// What a [`Fault::ForgedCatchUp`] member sends instead of `record`: by height, its
/// certificate with the last byte flipped, its block with the last byte flipped, or the
/// certificate of the record before it.
fn forge(mut record: Record, previous_certificate: Option<Vec<u8>>) -> Record {
    match record.height % 3 {
        0 => {
            if let Some(last) = record.certificate.as_mut().and_then(|c| c.last_mut()) {
                *last ^= 0x01;
            }
        }
        1 => {
            if let Some(last) = record.block.last_mut() {
                *last ^= 0x01;
            }
        }
        _ => {
            if previous_certificate.is_some() {
                record.certificate = previous_certificate;
            }
        }
    }
    record
}
