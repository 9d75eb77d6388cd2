//! The handle simplex holds (automaton, relay and reporter in one) and the messages it sends
//! the actor.

use super::*;

pub(super) enum Message {
    Propose {
        context: ConsensusContext,
        response: oneshot::Sender<Digest>,
    },
    Verify {
        context: ConsensusContext,
        digest: Digest,
        response: oneshot::Sender<bool>,
    },
    Broadcast {
        digest: Digest,
        recipients: Recipients<PublicKey>,
    },
    Finalized {
        digest: Digest,
        certificate: Vec<u8>,
    },
}

/// The handle simplex holds: automaton, relay and reporter in one.
#[derive(Clone)]
pub struct Mailbox {
    pub(super) sender: mpsc::Sender<Message>,
    /// Broadcasts and finalizations must not be lost and the trait calls are synchronous, so
    /// they go through an unbounded queue. It is bounded in practice by simplex itself (one
    /// broadcast per own proposal, one finalization per view); a real node replaces this with
    /// an overflow policy that coalesces finalizations (only the highest matters).
    pub(super) events: mpsc::UnboundedSender<Message>,
    pub(super) evidence: EvidenceLog,
    pub(super) participants: Arc<Vec<PublicKey>>,
    /// Every reported vote, for the sentinel's silence check.
    pub(super) votes: SharedVotes,
    /// The epoch of the simplex instance this handle serves.
    pub(super) epoch: u64,
}

impl Mailbox {
    /// A handle for `epoch`'s simplex: reported votes name their signer among `participants`.
    pub fn for_epoch(&self, epoch: u64, participants: Vec<PublicKey>) -> Mailbox {
        Mailbox {
            participants: Arc::new(participants),
            epoch,
            ..self.clone()
        }
    }

    fn record_vote(&self, signer: u32, view: u64) {
        if let Some(member) = self.participants.get(signer as usize) {
            self.votes
                .lock()
                .expect("the votes lock must not be poisoned")
                .voted(self.epoch, member, view);
        }
    }

    pub(super) fn record_vote_fault(&self, kind: Kind, signer: u32, view: u64) {
        // Threshold votes are not attributable to a third party; the signer index is what
        // simplex reports, unverified.
        if let Some(peer) = self.participants.get(signer as usize) {
            self.evidence.record(
                kind,
                peer,
                view,
                "reported by simplex, unverified (threshold vote)",
            );
        }
    }

    pub(super) fn post(&self, message: Message) -> Feedback {
        match self.events.send(message) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}

impl Automaton for Mailbox {
    type Context = ConsensusContext;
    type Digest = Digest;

    async fn propose(&mut self, context: Self::Context) -> oneshot::Receiver<Digest> {
        let (response, receiver) = oneshot::channel();
        // A failed send drops `response`, which simplex reads as "no proposal".
        let _ = self
            .sender
            .send(Message::Propose { context, response })
            .await;
        receiver
    }

    async fn verify(&mut self, context: Self::Context, digest: Digest) -> oneshot::Receiver<bool> {
        let (response, receiver) = oneshot::channel();
        let _ = self
            .sender
            .send(Message::Verify {
                context,
                digest,
                response,
            })
            .await;
        receiver
    }
}

/// Every block is fully checked before the vote, so certification adds nothing: the trait's
/// defaults (no pipelined handoff, certify = true) are what we want.
impl CertifiableAutomaton for Mailbox {}

impl Relay for Mailbox {
    type Digest = Digest;
    type PublicKey = PublicKey;
    type Plan = Plan<PublicKey>;

    fn broadcast(&mut self, digest: Digest, plan: Plan<PublicKey>) -> Feedback {
        let recipients = match plan {
            Plan::Prepare { .. } | Plan::Propose { .. } => Recipients::All,
            Plan::Forward { recipients, .. } => recipients,
        };
        self.post(Message::Broadcast { digest, recipients })
    }
}

impl Reporter for Mailbox {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match activity {
            Activity::Finalization(finalization) => self.post(Message::Finalized {
                digest: finalization.proposal.payload,
                certificate: finalization.encode().to_vec(),
            }),
            Activity::Notarize(vote) => {
                self.record_vote(vote.signer().get(), vote.view().get());
                Feedback::Ok
            }
            Activity::Finalize(vote) => {
                self.record_vote(vote.signer().get(), vote.view().get());
                Feedback::Ok
            }
            Activity::Nullify(vote) => {
                self.record_vote(vote.signer().get(), vote.view().get());
                Feedback::Ok
            }
            Activity::ConflictingNotarize(fault) => {
                self.record_vote_fault(
                    Kind::ConflictingNotarize,
                    fault.signer().get(),
                    fault.view().get(),
                );
                Feedback::Ok
            }
            Activity::ConflictingFinalize(fault) => {
                self.record_vote_fault(
                    Kind::ConflictingFinalize,
                    fault.signer().get(),
                    fault.view().get(),
                );
                Feedback::Ok
            }
            Activity::NullifyFinalize(fault) => {
                self.record_vote_fault(
                    Kind::NullifyFinalize,
                    fault.signer().get(),
                    fault.view().get(),
                );
                Feedback::Ok
            }
            _ => Feedback::Ok,
        }
    }
}
