//! The canonical encoding of the sentinel's quarantine decision.
//!
//! [`SystemCommand::Quarantine`](crate::command::SystemCommand::Quarantine) (tag `5`) is the
//! member's key, the epoch `u64`, then the evidence: `0`, a `u16` count of at most
//! [`ACCUSATIONS_MAX`] and that many accusations (accuser, accused, grounds code `u8`, epoch,
//! time, signature), `1` and an oracle equivocation (two signed observations), or `2` and a
//! deposit equivocation (the member's key, then twice a deposit and its signature).
//!
//! [`SystemCommand::NewEpoch`](crate::command::SystemCommand::NewEpoch) (tag `6`) is the epoch
//! `u64`, a `u16` count of at most [`MEMBERS_MAX`] member keys, the keys, then the 32-byte key
//! digest.
//!
//! [`SystemCommand::Admit`](crate::command::SystemCommand::Admit) (tag `8`) is the candidate's
//! key, the epoch `u64`, a `u16` count of at most [`ACCUSATIONS_MAX`] affirmations (affirmer,
//! candidate, epoch, time, appraisal digest, audit digest, signature), then the seat: `0` for a
//! re-admission, or `1`, the replaced member's key, a `u16` count of at most [`OPERATORS_MAX`]
//! approvals (operator key, signature).

use bulwark_sentinel::admit::OPERATORS_MAX;
use bulwark_sentinel::membership::{Evidence, ACCUSATIONS_MAX, MEMBERS_MAX};
use bulwark_sentinel::{Accusation, Admit, Affirmation, Approval, Grounds, Seat};

use super::{CodecError, Reader, Wire};
use crate::command::SystemCommand;
use crate::oracle::{OracleEquivocation, SignedObservation};
use crate::sentinel::{Decision, Proof};

/// Encoded accusation: accuser, accused, grounds, epoch, time, signature.
pub(super) const ACCUSATION_BYTES: usize = 32 + 32 + 1 + 8 + 8 + 64;
/// The largest quarantine body (tag included): the accusations, which outweigh a proof.
pub(super) const QUARANTINE_BYTES_MAX: usize =
    1 + 32 + 8 + 1 + 2 + ACCUSATIONS_MAX * ACCUSATION_BYTES;

/// Encoded affirmation: affirmer, candidate, epoch, time, two digests, signature.
const AFFIRMATION_BYTES: usize = 32 + 32 + 8 + 8 + 32 + 32 + 64;
/// Encoded approval: operator, signature.
const APPROVAL_BYTES: usize = 32 + 64;
/// The largest admission body (tag included): f+1 affirmations of the largest committee and
/// every operator's approval.
pub(super) const ADMIT_BYTES_MAX: usize = 1
    + 32
    + 8
    + 2
    + ACCUSATIONS_MAX * AFFIRMATION_BYTES
    + 1
    + 32
    + 2
    + OPERATORS_MAX * APPROVAL_BYTES;

/// The largest epoch change body (tag included).
pub(super) const NEW_EPOCH_BYTES_MAX: usize = 1 + 8 + 2 + MEMBERS_MAX * 32 + 32;

pub(super) fn put_new_epoch(epoch: u64, members: &[[u8; 32]], key: &[u8; 32], out: &mut Vec<u8>) {
    epoch.put(out);
    // More than the bound encodes to bytes no decoder accepts.
    u16::try_from(members.len()).unwrap_or(u16::MAX).put(out);
    for member in members {
        member.put(out);
    }
    key.put(out);
}

pub(super) fn take_new_epoch(reader: &mut Reader<'_>) -> Result<SystemCommand, CodecError> {
    let epoch = Wire::take(reader)?;
    let members = super::take_counted(reader, MEMBERS_MAX, 32)?;
    let key = Wire::take(reader)?;
    Ok(SystemCommand::NewEpoch {
        epoch,
        members,
        key,
    })
}

impl Wire for Accusation {
    fn put(&self, out: &mut Vec<u8>) {
        self.accuser.put(out);
        self.accused.put(out);
        out.push(self.grounds.code());
        self.epoch.put(out);
        self.at_ms.put(out);
        self.signature.put(out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        let accuser = Wire::take(reader)?;
        let accused = Wire::take(reader)?;
        let code = reader.u8()?;
        let grounds = Grounds::from_code(code).ok_or(CodecError::UnknownTag {
            what: "accusation grounds",
            tag: code,
        })?;
        Ok(Accusation {
            accuser,
            accused,
            grounds,
            epoch: Wire::take(reader)?,
            at_ms: Wire::take(reader)?,
            signature: Wire::take(reader)?,
        })
    }
}

impl Wire for Decision {
    fn put(&self, out: &mut Vec<u8>) {
        self.member.put(out);
        self.epoch.put(out);
        match &self.evidence {
            Evidence::Accusations(accusations) => {
                out.push(0);
                // Longer than the bound (which no decision needs) encodes to bytes no decoder
                // accepts.
                u16::try_from(accusations.len())
                    .unwrap_or(u16::MAX)
                    .put(out);
                for accusation in accusations {
                    accusation.put(out);
                }
            }
            Evidence::SelfProof(proof) => match proof.as_ref() {
                Proof::OracleEquivocation(proof) => {
                    out.push(1);
                    proof.first.put(out);
                    proof.second.put(out);
                }
                Proof::DepositEquivocation(proof) => {
                    out.push(2);
                    proof.member.put(out);
                    super::deposit::put_deposit(&proof.first, out);
                    proof.first_signature.put(out);
                    super::deposit::put_deposit(&proof.second, out);
                    proof.second_signature.put(out);
                }
            },
        }
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        let member = Wire::take(reader)?;
        let epoch = Wire::take(reader)?;
        let evidence = match reader.u8()? {
            0 => Evidence::Accusations(super::take_counted(
                reader,
                ACCUSATIONS_MAX,
                ACCUSATION_BYTES,
            )?),
            1 => Evidence::SelfProof(Box::new(Proof::OracleEquivocation(OracleEquivocation {
                first: SignedObservation::take(reader)?,
                second: SignedObservation::take(reader)?,
            }))),
            2 => Evidence::SelfProof(Box::new(Proof::DepositEquivocation(
                crate::deposit::DepositEquivocation {
                    member: Wire::take(reader)?,
                    first: super::deposit::take_deposit(reader)?,
                    first_signature: Wire::take(reader)?,
                    second: super::deposit::take_deposit(reader)?,
                    second_signature: Wire::take(reader)?,
                },
            ))),
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "quarantine evidence",
                    tag,
                })
            }
        };
        Ok(Decision {
            member,
            epoch,
            evidence,
        })
    }
}

impl Wire for Affirmation {
    fn put(&self, out: &mut Vec<u8>) {
        self.affirmer.put(out);
        self.candidate.put(out);
        self.epoch.put(out);
        self.at_ms.put(out);
        self.appraisal.put(out);
        self.audit.put(out);
        self.signature.put(out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Affirmation {
            affirmer: Wire::take(reader)?,
            candidate: Wire::take(reader)?,
            epoch: Wire::take(reader)?,
            at_ms: Wire::take(reader)?,
            appraisal: Wire::take(reader)?,
            audit: Wire::take(reader)?,
            signature: Wire::take(reader)?,
        })
    }
}

impl Wire for Approval {
    fn put(&self, out: &mut Vec<u8>) {
        self.operator.put(out);
        self.signature.put(out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(Approval {
            operator: Wire::take(reader)?,
            signature: Wire::take(reader)?,
        })
    }
}

/// A count above its bound (which no admission needs) encodes to bytes no decoder accepts.
fn put_count(len: usize, out: &mut Vec<u8>) {
    u16::try_from(len).unwrap_or(u16::MAX).put(out);
}

impl Wire for Admit {
    fn put(&self, out: &mut Vec<u8>) {
        self.candidate.put(out);
        self.epoch.put(out);
        put_count(self.affirmations.len(), out);
        for affirmation in &self.affirmations {
            affirmation.put(out);
        }
        match &self.seat {
            Seat::Readmit => out.push(0),
            Seat::Replace {
                replaces,
                approvals,
            } => {
                out.push(1);
                replaces.put(out);
                put_count(approvals.len(), out);
                for approval in approvals {
                    approval.put(out);
                }
            }
        }
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        let candidate = Wire::take(reader)?;
        let epoch = Wire::take(reader)?;
        let affirmations = super::take_counted(reader, ACCUSATIONS_MAX, AFFIRMATION_BYTES)?;
        let seat = match reader.u8()? {
            0 => Seat::Readmit,
            1 => Seat::Replace {
                replaces: Wire::take(reader)?,
                approvals: super::take_counted(reader, OPERATORS_MAX, APPROVAL_BYTES)?,
            },
            tag => {
                return Err(CodecError::UnknownTag {
                    what: "admission seat",
                    tag,
                })
            }
        };
        Ok(Admit {
            candidate,
            epoch,
            affirmations,
            seat,
        })
    }
}
