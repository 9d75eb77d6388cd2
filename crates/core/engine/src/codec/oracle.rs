//! The canonical encoding of oracle observations and rounds, and the observation's signed message.
//!
//! An [`Observation`] is feed `u16`, round `u64`, price `i64`, confidence `i64`, time `u64`,
//! sources `u8`. A [`SignedObservation`] is the node's 32-byte key, the observation, and the
//! 64-byte signature. [`SystemCommand::OracleRound`](crate::command::SystemCommand::OracleRound)
//! (tag `4`) is underlying `u16`, round `u64`, a `u16` count of at most
//! [`ORACLE_ROUND_OBSERVATIONS_MAX`], then that many signed observations.

use super::{decode_frame, encode_frame, CodecError, Reader, Wire, FRAME_BYTES_MAX, FRAME_VERSION};
use crate::oracle::{
    Observation, SignedObservation, OBSERVATION_NAMESPACE, ORACLE_ROUND_OBSERVATIONS_MAX,
};

/// Encoded observation: feed, round, price, confidence, time, sources.
pub(super) const OBSERVATION_BYTES: usize = 2 + 8 + 8 + 8 + 8 + 1;
/// Encoded signed observation: key, observation, signature.
pub(super) const SIGNED_OBSERVATION_BYTES: usize = 32 + OBSERVATION_BYTES + 64;
/// The largest oracle-round system command body (tag included).
pub(super) const ORACLE_ROUND_BYTES_MAX: usize =
    1 + 2 + 8 + 2 + ORACLE_ROUND_OBSERVATIONS_MAX * SIGNED_OBSERVATION_BYTES;
/// A signed observation's own frame (version byte included) fits the client frame bound.
const SIGNED_OBSERVATION_FRAME_BYTES: usize = 1 + SIGNED_OBSERVATION_BYTES;
const _: () = assert!(SIGNED_OBSERVATION_FRAME_BYTES <= FRAME_BYTES_MAX);

impl Observation {
    /// The exact bytes a node signs: [`OBSERVATION_NAMESPACE`], [`FRAME_VERSION`], then the
    /// canonical observation.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut message = Vec::with_capacity(OBSERVATION_NAMESPACE.len() + 1 + OBSERVATION_BYTES);
        message.extend_from_slice(OBSERVATION_NAMESPACE);
        message.push(FRAME_VERSION);
        self.put(&mut message);
        message
    }
}

impl SignedObservation {
    /// The canonical frame (version byte and the signed observation), as a node sends it to the
    /// proposer.
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(self)
    }

    /// Decodes one canonical frame; the signature is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<SignedObservation, CodecError> {
        decode_frame(bytes, FRAME_BYTES_MAX)
    }
}

impl Wire for Observation {
    fn put(&self, out: &mut Vec<u8>) {
        self.feed.put(out);
        self.round.put(out);
        self.price_micros.put(out);
        self.confidence_micros.put(out);
        self.time_ms.put(out);
        out.push(self.sources);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Observation {
            feed: Wire::take(reader)?,
            round: Wire::take(reader)?,
            price_micros: Wire::take(reader)?,
            confidence_micros: Wire::take(reader)?,
            time_ms: Wire::take(reader)?,
            sources: reader.u8()?,
        })
    }
}

impl Wire for SignedObservation {
    fn put(&self, out: &mut Vec<u8>) {
        self.node.put(out);
        self.observation.put(out);
        self.signature.put(out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(SignedObservation {
            node: Wire::take(reader)?,
            observation: Wire::take(reader)?,
            signature: Wire::take(reader)?,
        })
    }
}

/// Writes a `u16` count and the observations. A round longer than
/// [`ORACLE_ROUND_OBSERVATIONS_MAX`] (which the engine refuses anyway) encodes to bytes that no
/// decoder accepts.
pub(super) fn put_observations(observations: &[SignedObservation], out: &mut Vec<u8>) {
    u16::try_from(observations.len())
        .unwrap_or(u16::MAX)
        .put(out);
    for o in observations {
        o.put(out);
    }
}

/// Reads what [`put_observations`] wrote; the count is checked against the bound and against
/// the remaining bytes before anything is allocated.
pub(super) fn take_observations(
    reader: &mut Reader<'_>,
) -> Result<Vec<SignedObservation>, CodecError> {
    super::take_counted(
        reader,
        ORACLE_ROUND_OBSERVATIONS_MAX,
        SIGNED_OBSERVATION_BYTES,
    )
}
