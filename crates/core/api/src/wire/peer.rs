//! The requests only a committee peer may make of a node's client endpoint: attestation
//! evidence, the TPM attestation key, credential activation and the newest signed audit report. Each one keeps the node's TPM
//! busy, and activation answers with what the TPM decrypted, so each is signed by the asking
//! peer's node key ([`PeerAuth`]) over the node it is meant for, the time and the operation.
//! The node checks the signature, that the signer is a member, the time and the rate before it
//! touches its TPM (`bulwark-node`'s peer gate).

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

/// Bytes of an encoded [`PeerAuth`]: the peer's key, the time, the signature.
pub const PEER_AUTH_BYTES: usize = 32 + 8 + 64;
/// Domain separation of the signed message.
const DOMAIN: &[u8] = b"bulwark/api/peer-request/v1";

/// What a peer request is addressed to: one node (its node key) of one committee (the digest of
/// its members' keys). A signature for one node, or for the same node key in another committee
/// (a staging and a production committee, say), does not verify at another.
pub fn peer_target(committee: &[u8; 32], node: &[u8; 32]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("bulwark peer request target v1");
    hasher.update(committee);
    hasher.update(node);
    *hasher.finalize().as_bytes()
}

/// One operation a committee peer asks of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOp {
    /// Attestation evidence over the verifier's nonce.
    Attest {
        /// The verifier's single-use nonce.
        nonce: [u8; 32],
    },
    /// The node's TPM attestation key (public area), to start enrolling it.
    AttestKey,
    /// Credential activation: the node's TPM recovers a credential the verifier wrapped to the
    /// node's endorsement key for its attestation key, proving both live in one TPM.
    Activate {
        /// `TPM2B_ID_OBJECT` contents.
        credential_blob: Vec<u8>,
        /// `TPM2B_ENCRYPTED_SECRET` contents.
        encrypted_secret: Vec<u8>,
    },
    /// The node's newest signed audit report of its own machine (the audit agent's snapshot):
    /// what a peer reads before it affirms the node for re-admission, and sentinel evidence
    /// when a check failed. Peers only: a report describes the machine's configuration.
    AuditReport,
}

impl PeerOp {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            PeerOp::Attest { .. } => "attest",
            PeerOp::AttestKey => "attest-key",
            PeerOp::Activate { .. } => "activate",
            PeerOp::AuditReport => "audit-report",
        }
    }
}

/// Why a [`PeerAuth`] does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerAuthError {
    /// The claimed key is not an ed25519 public key.
    #[error("the requesting key is not an ed25519 public key")]
    BadKey,
    /// The signature does not verify for this node, time and operation.
    #[error("the peer signature does not verify (another node, time or operation)")]
    BadSignature,
}

/// A committee peer's signature over one request to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAuth {
    /// The asking peer's node key (ed25519).
    pub peer: [u8; 32],
    /// When it asked, Unix milliseconds of its clock.
    pub at_ms: u64,
    /// Its signature over [`DOMAIN`], the target, the peer, the time and the operation.
    pub signature: [u8; 64],
}

impl PeerAuth {
    /// Signs `op` for `target` ([`peer_target`] of the committee and the node), at `at_ms`.
    pub fn sign(key: &SigningKey, target: &[u8; 32], at_ms: u64, op: &PeerOp) -> PeerAuth {
        let peer = key.verifying_key().to_bytes();
        let signature = key.sign(&message(target, &peer, at_ms, op)).to_bytes();
        PeerAuth {
            peer,
            at_ms,
            signature,
        }
    }

    /// Checks the signature for `op` sent to `target` ([`peer_target`]). Says nothing of
    /// whether the peer is a member or the time is current: the caller checks those.
    pub fn verify(&self, target: &[u8; 32], op: &PeerOp) -> Result<(), PeerAuthError> {
        let key = VerifyingKey::from_bytes(&self.peer).map_err(|_| PeerAuthError::BadKey)?;
        key.verify_strict(
            &message(target, &self.peer, self.at_ms, op),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| PeerAuthError::BadSignature)
    }

    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.peer);
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        out.extend_from_slice(&self.signature);
    }

    pub(super) fn decode(bytes: &[u8; PEER_AUTH_BYTES]) -> PeerAuth {
        let mut peer = [0u8; 32];
        peer.copy_from_slice(&bytes[..32]);
        let mut at = [0u8; 8];
        at.copy_from_slice(&bytes[32..40]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[40..]);
        PeerAuth {
            peer,
            at_ms: u64::from_be_bytes(at),
            signature,
        }
    }
}

/// The op's kind byte and body, as the wire carries them after the [`PeerAuth`].
pub(super) fn op_body(op: &PeerOp) -> Result<(u8, Vec<u8>), super::WireError> {
    Ok(match op {
        PeerOp::Attest { nonce } => (super::KIND_ATTEST, nonce.to_vec()),
        PeerOp::AttestKey => (super::KIND_ATTEST_KEY, Vec::new()),
        PeerOp::AuditReport => (super::KIND_AUDIT_REPORT, Vec::new()),
        PeerOp::Activate {
            credential_blob,
            encrypted_secret,
        } => {
            let mut body = Vec::with_capacity(4 + credential_blob.len() + encrypted_secret.len());
            for part in [credential_blob, encrypted_secret] {
                let len =
                    u16::try_from(part.len()).map_err(|_| super::WireError::FrameTooLarge {
                        len: part.len(),
                        max: usize::from(u16::MAX),
                    })?;
                body.extend_from_slice(&len.to_be_bytes());
                body.extend_from_slice(part);
            }
            (super::KIND_ACTIVATE, body)
        }
    })
}

fn message(target: &[u8; 32], peer: &[u8; 32], at_ms: u64, op: &PeerOp) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + 32 + 32 + 8 + 1 + 64);
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(target);
    out.extend_from_slice(peer);
    out.extend_from_slice(&at_ms.to_be_bytes());
    // An op too large to encode cannot be sent either; sign its name so the message is total.
    match op_body(op) {
        Ok((kind, body)) => {
            out.push(kind);
            out.extend_from_slice(&body);
        }
        Err(_) => out.extend_from_slice(op.name().as_bytes()),
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_signature_holds_for_its_node_time_and_operation_only() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let (node_a, node_b) = ([1; 32], [2; 32]);
        let op = PeerOp::Attest { nonce: [7; 32] };
        let auth = PeerAuth::sign(&key, &node_a, 1_000, &op);
        assert_eq!(auth.verify(&node_a, &op), Ok(()));
        assert_eq!(
            auth.verify(&node_b, &op),
            Err(PeerAuthError::BadSignature),
            "replayed to another node"
        );
        assert_eq!(
            auth.verify(&node_a, &PeerOp::Attest { nonce: [8; 32] }),
            Err(PeerAuthError::BadSignature)
        );
        assert_eq!(
            auth.verify(&node_a, &PeerOp::AttestKey),
            Err(PeerAuthError::BadSignature)
        );
        let later = PeerAuth {
            at_ms: 2_000,
            ..auth.clone()
        };
        assert_eq!(later.verify(&node_a, &op), Err(PeerAuthError::BadSignature));
        let impostor = PeerAuth {
            peer: SigningKey::from_bytes(&[6; 32]).verifying_key().to_bytes(),
            ..auth.clone()
        };
        assert_eq!(
            impostor.verify(&node_a, &op),
            Err(PeerAuthError::BadSignature)
        );
        let mut bytes = Vec::new();
        auth.encode_into(&mut bytes);
        let array = <[u8; PEER_AUTH_BYTES]>::try_from(bytes.as_slice()).unwrap();
        assert_eq!(PeerAuth::decode(&array), auth);
    }
}
