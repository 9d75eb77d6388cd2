//! The result of a successful ceremony, and its encoding in the keystore.

use super::*;

/// The result of a successful ceremony: everything a node needs to sign as part of the committee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The primitive's public output: the group polynomial, the participants, the dealers used.
    pub output: Output<MinSig, PublicKey>,
    /// This node's private share of the group key. Its `Debug` is redacted.
    pub share: Share,
    /// Digest of the dealer logs every participant echoed; equal on every node.
    pub transcript: [u8; 32],
}

impl Completed {
    /// The group public polynomial: its constant term is the committee's public key, and it verifies
    /// each participant's partial signatures. This is the `polynomial` of simplex's
    /// `bls12381_threshold` `Scheme::signer`.
    pub fn polynomial(&self) -> &Sharing<MinSig> {
        self.output.public()
    }

    /// Serializes for persisting to disk. The encoding contains the private share: store it as a
    /// secret.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(
            1 + self.transcript.len() + self.output.encode_size() + self.share.encode_size(),
        );
        COMPLETED_FORMAT.write(&mut bytes);
        self.transcript.write(&mut bytes);
        self.output.write(&mut bytes);
        self.share.write(&mut bytes);
        bytes
    }

    /// Parses what [`Completed::encode`] wrote and checks it against the committee: the players
    /// must be exactly `participants`, the polynomial must fit `n` participants at the `N3f1`
    /// quorum, and the share must match the polynomial. A result that passes is accepted by
    /// `Scheme::signer` without panicking.
    pub fn decode(bytes: &[u8], participants: &Set<PublicKey>) -> Result<Self, DkgError> {
        let max_participants = participant_count(participants)?;
        let malformed = |source| DkgError::CompletedMalformed { source };
        let mut buf = Copying(bytes);
        let format = u8::read(&mut buf).map_err(malformed)?;
        if format != COMPLETED_FORMAT {
            return Err(malformed(CodecError::InvalidEnum(format)));
        }
        let transcript = <[u8; 32]>::read(&mut buf).map_err(malformed)?;
        let output =
            Output::<MinSig, PublicKey>::read_cfg(&mut buf, &(max_participants, ModeVersion::v0()))
                .map_err(malformed)?;
        let share = Share::read(&mut buf).map_err(malformed)?;
        if !buf.0.is_empty() {
            return Err(malformed(CodecError::ExtraData(buf.0.len())));
        }

        let inconsistent = |reason| Err(DkgError::CompletedInconsistent { reason });
        if output.players() != participants {
            return inconsistent("players differ from the participants");
        }
        if output
            .dealers()
            .iter()
            .any(|d| participants.position(d).is_none())
        {
            return inconsistent("a dealer is not a participant");
        }
        if !output.revealed().is_empty() {
            return inconsistent("genesis never reveals shares, but some are marked revealed");
        }
        let polynomial = output.public();
        if polynomial.total() != max_participants {
            return inconsistent("polynomial participant count differs from the committee size");
        }
        if polynomial.required() != output.quorum::<N3f1>() {
            return inconsistent("polynomial threshold differs from the committee quorum");
        }
        match polynomial.partial_public(share.index) {
            Ok(expected) if expected == share.public::<MinSig>() => {}
            _ => return inconsistent("share does not match the polynomial"),
        }
        Ok(Self {
            output,
            share,
            transcript,
        })
    }
}
