//! Why the ceremony refused a message, failed to start, or ended without a key.

use super::*;

/// Why the ceremony refused a message, failed to start, or ended without a key.
///
/// Errors about a single message leave the ceremony unchanged; the caller may log them and go on.
/// [`DkgError::Disagreement`] and [`DkgError::Finalize`] end the ceremony for good.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DkgError {
    /// This node's key is not in the participant set it was given.
    #[error("this node ({me}) is not in the participant set; check the committee configuration")]
    NotParticipant {
        /// This node's key.
        me: Box<PublicKey>,
    },
    /// The primitive refused the round setup, e.g. an empty participant set.
    #[error("cannot set up the ceremony: {reason}")]
    Setup {
        /// The primitive's explanation.
        reason: String,
    },
    /// The ceremony already completed; late messages are no longer needed.
    #[error("the ceremony has already completed")]
    Concluded,
    /// The transport delivered a message this node sent itself.
    #[error("message claims to come from this node itself")]
    FromSelf,
    /// The sender is not a participant.
    #[error("message from {from}, who is not a participant")]
    UnknownSender {
        /// The sender.
        from: Box<PublicKey>,
    },
    /// A participant sent a message its role in this round does not send (a dealing from a
    /// newcomer, an ack to a node that does not deal).
    #[error("{kind:?} from {from}, whose role in this round does not send it")]
    NotInRole {
        /// The sender.
        from: Box<PublicKey>,
        /// What it sent.
        kind: Kind,
    },
    /// The message is longer than any well-formed message for this committee.
    #[error("message of {len} bytes from {from} exceeds the {max} byte limit")]
    Oversized {
        /// The sender.
        from: Box<PublicKey>,
        /// The message length.
        len: usize,
        /// The largest well-formed message.
        max: usize,
    },
    /// The bytes do not decode as a ceremony message (truncated, unknown kind, trailing data...).
    #[error("malformed message from {from}: {source}")]
    Malformed {
        /// The sender.
        from: Box<PublicKey>,
        /// The decoder's explanation.
        source: CodecError,
    },
    /// The sender already sent a message of this kind, which was accepted.
    #[error("duplicate {kind:?} from {from}")]
    Duplicate {
        /// The sender.
        from: Box<PublicKey>,
        /// The kind of message repeated.
        kind: Kind,
    },
    /// A dealing does not check against its commitment, or its commitment has the wrong degree.
    #[error("invalid dealing from {from}: {source}")]
    InvalidDealing {
        /// The dealer.
        from: Box<PublicKey>,
        /// The primitive's explanation.
        source: DealerMessageError,
    },
    /// An ack does not verify for this node's dealing.
    #[error("invalid ack from {from}: {source}")]
    InvalidAck {
        /// The player.
        from: Box<PublicKey>,
        /// The primitive's explanation.
        source: PlayerAckError,
    },
    /// A dealer log's signature does not verify for this round.
    #[error("dealer log from {from} has an invalid signature")]
    InvalidLogSignature {
        /// The sender.
        from: Box<PublicKey>,
    },
    /// A dealer log signed by one participant was sent by another.
    #[error("dealer log signed by {signer} was sent by {from}; dealers must send their own logs")]
    WrongSender {
        /// The sender.
        from: Box<PublicKey>,
        /// The dealer that signed the log.
        signer: Box<PublicKey>,
    },
    /// A dealer log lacks an ack from some participant (it reveals shares or omits its results).
    #[error("dealer log from {from} lacks acks from every participant")]
    IncompleteLog {
        /// The dealer.
        from: Box<PublicKey>,
    },
    /// A participant echoed a different set of logs than this node holds. The ceremony is over;
    /// rerun it, and investigate `peer` (or this node) for equivocation.
    #[error(
        "echo from {peer} disagrees: ours {}, theirs {}",
        hex::encode(ours),
        hex::encode(theirs)
    )]
    Disagreement {
        /// The participant whose echo differs.
        peer: Box<PublicKey>,
        /// This node's digest of the logs.
        ours: [u8; 32],
        /// The digest `peer` echoed.
        theirs: [u8; 32],
    },
    /// All participants agreed on the logs, but they do not yield a key for this node.
    #[error("the agreed dealer logs do not produce a key: {reason}")]
    Finalize {
        /// The primitive's explanation.
        reason: String,
    },
    /// A persisted [`Completed`] does not decode.
    #[error("persisted ceremony result is malformed: {source}")]
    CompletedMalformed {
        /// The decoder's explanation.
        source: CodecError,
    },
    /// A persisted [`Completed`] decodes but does not fit the committee it is loaded for.
    #[error("persisted ceremony result is inconsistent: {reason}")]
    CompletedInconsistent {
        /// Which check failed.
        reason: &'static str,
    },
}
