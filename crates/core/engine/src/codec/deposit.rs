//! The canonical encoding of a chain deposit.
//!
//! [`SystemCommand::ChainDeposit`](crate::command::SystemCommand::ChainDeposit) (tag `7`) is the
//! deposit (chain `u8`, txid 32 bytes, output `u32`, account `u64`, amount `i64`), then a `u16`
//! count of at most [`CERTIFICATE_SIGNATURES_MAX`] signatures (member key 32 bytes, signature 64
//! bytes each).

use super::{CodecError, Reader, Wire};
use crate::deposit::{
    DepositCertificate, MemberSignature, ObservedDeposit, CERTIFICATE_SIGNATURES_MAX,
};

/// Encoded deposit: chain, txid, output, account, amount.
const DEPOSIT_BYTES: usize = 1 + 32 + 4 + 8 + 8;
/// Encoded member signature.
const SIGNATURE_BYTES: usize = 32 + 64;
/// The largest certificate body (tag included).
pub(super) const CERTIFICATE_BYTES_MAX: usize =
    1 + DEPOSIT_BYTES + 2 + CERTIFICATE_SIGNATURES_MAX * SIGNATURE_BYTES;

impl Wire for MemberSignature {
    fn put(&self, out: &mut Vec<u8>) {
        self.member.put(out);
        self.signature.put(out);
    }
    fn take(reader: &mut Reader<'_>) -> Result<Self, CodecError> {
        Ok(MemberSignature {
            member: Wire::take(reader)?,
            signature: Wire::take(reader)?,
        })
    }
}

/// chain, txid, output, account, amount.
pub(super) fn put_deposit(deposit: &ObservedDeposit, out: &mut Vec<u8>) {
    out.push(deposit.chain);
    deposit.txid.put(out);
    deposit.output.put(out);
    deposit.account.put(out);
    deposit.amount.put(out);
}

pub(super) fn take_deposit(reader: &mut Reader<'_>) -> Result<ObservedDeposit, CodecError> {
    Ok(ObservedDeposit {
        chain: reader.u8()?,
        txid: Wire::take(reader)?,
        output: Wire::take(reader)?,
        account: Wire::take(reader)?,
        amount: Wire::take(reader)?,
    })
}

pub(super) fn put_certificate(certificate: &DepositCertificate, out: &mut Vec<u8>) {
    put_deposit(&certificate.deposit, out);
    // More than the bound encodes to bytes no decoder accepts.
    u16::try_from(certificate.signatures.len())
        .unwrap_or(u16::MAX)
        .put(out);
    for signature in &certificate.signatures {
        signature.put(out);
    }
}

pub(super) fn take_certificate(reader: &mut Reader<'_>) -> Result<DepositCertificate, CodecError> {
    let deposit = take_deposit(reader)?;
    let signatures = super::take_counted(reader, CERTIFICATE_SIGNATURES_MAX, SIGNATURE_BYTES)?;
    Ok(DepositCertificate {
        deposit,
        signatures,
    })
}
