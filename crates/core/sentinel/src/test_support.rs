//! What the tests share: member keys, a committee, and a self-proof (two values the accused
//! signed for one slot).

use crate::accusation::{ProofError, SelfProof};
use crate::{MemberKey, Membership, Policy};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};

/// Two values `signer` signed for `slot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DoubleSign {
    pub(crate) signer: MemberKey,
    pub(crate) slot: u64,
    pub(crate) values: [(u8, [u8; 64]); 2],
}

fn message(slot: u64, value: u8) -> Vec<u8> {
    [
        b"test/double-sign".as_slice(),
        &slot.to_le_bytes(),
        &[value],
    ]
    .concat()
}

impl DoubleSign {
    pub(crate) fn by(key: &SigningKey, slot: u64, values: [u8; 2]) -> Self {
        Self {
            signer: key.verifying_key().to_bytes(),
            slot,
            values: values.map(|v| (v, key.sign(&message(slot, v)).to_bytes())),
        }
    }
}

impl SelfProof for DoubleSign {
    fn kind(&self) -> &'static str {
        "double-sign"
    }

    fn check(&self, accused: &MemberKey) -> Result<(), ProofError> {
        if &self.signer != accused {
            return Err(ProofError::NotTheAccused {
                signer: hex::encode(self.signer),
            });
        }
        if self.values[0].0 == self.values[1].0 {
            return Err(ProofError::NoConflict("the same value twice"));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(accused)
            .map_err(|_| ProofError::BadSignature)?;
        for (value, signature) in &self.values {
            key.verify(
                &message(self.slot, *value),
                &ed25519_dalek::Signature::from_bytes(signature),
            )
            .map_err(|_| ProofError::BadSignature)?;
        }
        Ok(())
    }
}

/// Member `i`'s key.
pub(crate) fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

/// Member `i`'s identity.
pub(crate) fn id(i: u8) -> MemberKey {
    key(i).verifying_key().to_bytes()
}

/// Members 0..n at epoch 0 under the default policy with a 600 ms window (the tests' times are
/// small numbers).
pub(crate) fn committee(n: u8) -> Membership {
    let policy = Policy {
        window_ms: 600,
        // The tests count views from here.
        silence_views: 20,
        ..Policy::default()
    };
    Membership::new(0, (0..n).map(id).collect(), policy).expect("committee")
}
