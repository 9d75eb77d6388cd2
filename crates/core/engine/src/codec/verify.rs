//! Signed transactions and their verification (single, batch, parallel).

use std::thread;

use ed25519_consensus::{batch, VerificationKey, VerificationKeyBytes};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::*;

/// Why a batch of signed transactions was refused. Indices are positions in the slice given to
/// the verifier (always 0 for [`SignedTx::verify`] and [`verify_one`]). The crypto failures are
/// deliberately opaque: they say which transaction, never why its signature failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Nonce 0 means "unchecked" and is reserved for trusted local input; a signed transaction
    /// from the network must carry a real nonce.
    #[error("transaction {0} has nonce 0, which only trusted local input may use")]
    ZeroNonce(usize),
    /// The acting account has no registered public key.
    #[error("transaction {0} names an account with no registered key")]
    UnknownAccount(usize),
    /// The account's registered key is not a point on the curve, or is a weak (small-order) key
    /// under which signatures could be forged.
    #[error("transaction {0}: the account's registered key is not a usable Ed25519 public key")]
    InvalidKey(usize),
    /// These signatures (ascending indices, at least one) do not verify.
    #[error("the signatures of transactions {0:?} do not verify")]
    BadSignatures(Vec<usize>),
}

/// A client's transaction as it arrives from the network: the engine [`Command::Client`] fields
/// and the client's Ed25519 signature over them (see the module docs for the signed message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// Acting account.
    pub account: AccountId,
    /// Strictly increasing per account; 0 is refused by every verifier.
    pub nonce: u64,
    /// The request.
    pub command: ClientCommand,
    /// Ed25519 signature (`R || s`) by the account's registered key.
    pub signature: [u8; 64],
}

impl SignedTx {
    /// Signs `command` for `account` at `nonce`. Signing nonce 0 is possible but gives a
    /// transaction that every verifier refuses.
    pub fn sign(
        account: AccountId,
        nonce: u64,
        command: ClientCommand,
        key: &SigningKey,
    ) -> SignedTx {
        let signature = key
            .sign(&signed_message(account, nonce, &command))
            .to_bytes();
        SignedTx {
            account,
            nonce,
            command,
            signature,
        }
    }

    /// Whose key must have signed this transaction: the acting id's, except that opening a
    /// session is signed by the account's key (the trader's logon signature).
    pub fn signer(&self) -> AccountId {
        match (&self.command, self.account.as_session()) {
            (ClientCommand::OpenSession(_), Some((owner, _))) => owner,
            _ => self.account,
        }
    }

    /// The exact bytes the signature covers: [`TX_NAMESPACE`] then the frame without signature.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.account, self.nonce, &self.command)
    }

    /// The canonical frame (at most [`FRAME_BYTES_MAX`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(self)
    }

    /// Decodes one canonical frame; the signature is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, CodecError> {
        decode_frame(bytes, FRAME_BYTES_MAX)
    }

    /// Verifies this transaction under `public_key`, exactly as [`verify_batch`] would as the
    /// only element of a batch (errors carry index 0).
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), VerifyError> {
        verify_one(self, |_| Some(*public_key))
    }

    /// The engine command, to be executed only after verification succeeded.
    pub fn into_command(self) -> Command {
        Command::Client {
            account: self.account,
            nonce: self.nonce,
            command: self.command,
        }
    }
}

/// Verifies one transaction: the same checks and the same result as [`verify_batch`] on a
/// one-element slice.
pub fn verify_one(
    tx: &SignedTx,
    keys: impl Fn(AccountId) -> Option<[u8; 32]>,
) -> Result<(), VerifyError> {
    verify_batch(std::slice::from_ref(tx), keys)
}

/// Verifies every transaction's signature under the key `keys` returns for its account.
///
/// The first refusal, in index order, of a nonce 0 ([`VerifyError::ZeroNonce`]), an account
/// without key ([`VerifyError::UnknownAccount`]) or an unusable key ([`VerifyError::InvalidKey`])
/// wins; otherwise every index whose signature fails is listed in
/// [`VerifyError::BadSignatures`].
///
/// Each run of [`VERIFY_CHUNK_TXS`] transactions is checked with one Ed25519 batch equation;
/// when that fails, each transaction of the run is checked alone to name the culprits. Both
/// follow ZIP-215 (`ed25519-consensus`): the equations are cofactored, so a signature passes a
/// batch if and only if it passes alone, and the result is the same however the transactions
/// are sliced, batched or spread over threads. (With a cofactorless batch equation, a key's
/// owner could add a small-order point to `R` and get a signature that passes some batches and
/// not others, so replicas checking different slices would disagree.)
pub fn verify_batch(
    txs: &[SignedTx],
    keys: impl Fn(AccountId) -> Option<[u8; 32]>,
) -> Result<(), VerifyError> {
    combine(check_run(txs, 0, &keys))
}

/// [`verify_batch`] with the chunks spread over up to `threads` threads (0 counts as 1); the
/// node calls it before handing commands to the engine.
///
/// This is the one place in the engine crate that spawns threads. It is still pure: it reads no
/// clock, does no I/O and uses no OS randomness, the chunk boundaries are the same as in
/// [`verify_batch`] whatever `threads` is, and the per-chunk outcomes are combined in index
/// order, so the result is identical to [`verify_batch`]'s for every thread count. If the OS
/// refuses a thread, that share of the work runs on the calling thread instead.
pub fn verify_batch_parallel<K>(
    txs: &[SignedTx],
    keys: K,
    threads: usize,
) -> Result<(), VerifyError>
where
    K: Fn(AccountId) -> Option<[u8; 32]> + Sync,
{
    let chunk_count = txs.len().div_ceil(VERIFY_CHUNK_TXS);
    let threads = threads.clamp(1, chunk_count.max(1));
    if threads == 1 {
        return verify_batch(txs, keys);
    }
    // Each thread gets a contiguous run of whole chunks, so chunk boundaries stay at multiples of
    // VERIFY_CHUNK_TXS from the start of `txs`.
    let run_txs = chunk_count
        .div_ceil(threads)
        .saturating_mul(VERIFY_CHUNK_TXS);
    let keys = &keys;
    let outcomes = thread::scope(|scope| {
        let pending: Vec<_> = txs
            .chunks(run_txs)
            .enumerate()
            .map(|(run, run_slice)| {
                let base = run * run_txs;
                thread::Builder::new()
                    .name("bulwark-verify".to_owned())
                    .spawn_scoped(scope, move || check_run(run_slice, base, keys))
                    .map_err(|_| (run_slice, base))
            })
            .collect();
        pending
            .into_iter()
            .flat_map(|spawned| match spawned {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err((run_slice, base)) => check_run(run_slice, base, keys),
            })
            .collect::<Vec<_>>()
    });
    combine(outcomes)
}

/// What checking one chunk found.
enum ChunkOutcome {
    /// A transaction refused before any signature work (the chunk's lowest such index).
    Refused(VerifyError),
    /// Indices (ascending, possibly none) whose signatures fail.
    Checked(Vec<usize>),
}

/// Checks `txs`, whose first element has index `base`, chunk by chunk; stops after a refusal,
/// since nothing later can change the combined result.
fn check_run<K>(txs: &[SignedTx], base: usize, keys: &K) -> Vec<ChunkOutcome>
where
    K: Fn(AccountId) -> Option<[u8; 32]>,
{
    let mut outcomes = Vec::with_capacity(txs.len().div_ceil(VERIFY_CHUNK_TXS));
    for (chunk_index, chunk) in txs.chunks(VERIFY_CHUNK_TXS).enumerate() {
        let outcome = check_chunk(chunk, base + chunk_index * VERIFY_CHUNK_TXS, keys);
        let refused = matches!(outcome, ChunkOutcome::Refused(_));
        outcomes.push(outcome);
        if refused {
            break;
        }
    }
    outcomes
}

fn check_chunk<K>(chunk: &[SignedTx], base: usize, keys: &K) -> ChunkOutcome
where
    K: Fn(AccountId) -> Option<[u8; 32]>,
{
    let mut verifying_keys = Vec::with_capacity(chunk.len());
    for (offset, tx) in chunk.iter().enumerate() {
        let index = base + offset;
        if tx.nonce == 0 {
            return ChunkOutcome::Refused(VerifyError::ZeroNonce(index));
        }
        // The account's key signs its own transactions and the logon that opens a session; a
        // session's key signs the rest of the session's.
        let Some(key_bytes) = keys(tx.signer()) else {
            return ChunkOutcome::Refused(VerifyError::UnknownAccount(index));
        };
        // A weak key would let anyone forge signatures that pass the batch equation.
        match VerifyingKey::from_bytes(&key_bytes) {
            Ok(key) if !key.is_weak() => verifying_keys.push(key),
            _ => return ChunkOutcome::Refused(VerifyError::InvalidKey(index)),
        }
    }
    let messages: Vec<Vec<u8>> = chunk.iter().map(SignedTx::signed_message).collect();
    let mut verifier = batch::Verifier::new();
    let mut transcript = blake3::Hasher::new_derive_key(BATCH_COEFFICIENTS_CONTEXT);
    for ((tx, key), message) in chunk.iter().zip(&verifying_keys).zip(&messages) {
        let signature = ed25519_consensus::Signature::from(tx.signature);
        verifier.queue((
            VerificationKeyBytes::from(key.to_bytes()),
            signature,
            message,
        ));
        transcript.update(&key.to_bytes());
        transcript.update(&tx.signature);
        transcript.update(&(message.len() as u64).to_le_bytes());
        transcript.update(message);
    }
    if verifier
        .verify(TranscriptRng(transcript.finalize_xof()))
        .is_ok()
    {
        return ChunkOutcome::Checked(Vec::new());
    }
    let bad = chunk
        .iter()
        .zip(&verifying_keys)
        .zip(&messages)
        .enumerate()
        .filter(|(_, ((tx, key), message))| {
            VerificationKey::try_from(key.to_bytes())
                .and_then(|key| {
                    key.verify(&ed25519_consensus::Signature::from(tx.signature), message)
                })
                .is_err()
        })
        .map(|(offset, _)| base + offset)
        .collect();
    ChunkOutcome::Checked(bad)
}

/// Domain of the batch equation's coefficients.
const BATCH_COEFFICIENTS_CONTEXT: &str = "bulwark 2026-12 client signature batch coefficients";

/// The random coefficients of a batch equation, drawn from a BLAKE3 transcript of every input
/// of the batch (each key, signature and message) instead of the OS: the result stays
/// deterministic and this crate free of OS randomness, while the coefficients stay
/// unpredictable to an attacker, who cannot change any input without changing all of them. A
/// forged batch then passes with probability about 2^-128 per attempt.
struct TranscriptRng(blake3::OutputReader);

impl rand_core_06::RngCore for TranscriptRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.0.fill(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core_06::CryptoRng for TranscriptRng {}

/// Combines chunk outcomes given in index order: the first refusal wins, else all bad indices.
fn combine(outcomes: Vec<ChunkOutcome>) -> Result<(), VerifyError> {
    let mut bad = Vec::new();
    for outcome in outcomes {
        match outcome {
            ChunkOutcome::Refused(error) => return Err(error),
            ChunkOutcome::Checked(indices) => bad.extend(indices),
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::BadSignatures(bad))
    }
}

fn signed_message(account: AccountId, nonce: u64, command: &ClientCommand) -> Vec<u8> {
    // Opening a session is signed by the trader's logon signature, over the logon's fields.
    if let (ClientCommand::OpenSession(grant), Some((owner, _))) = (command, account.as_session()) {
        return grant.payload(owner);
    }
    let mut message = Vec::with_capacity(TX_NAMESPACE.len() + 1 + 8 + 8 + CLIENT_COMMAND_BYTES_MAX);
    message.extend_from_slice(TX_NAMESPACE);
    message.push(FRAME_VERSION);
    account.put(&mut message);
    nonce.put(&mut message);
    command.put(&mut message);
    message
}
