//! Signing a withdrawal between members: the messages, the coordinator's side of a round, and
//! the record of a signed withdrawal that every member checks by one rule.
//!
//! A round has two network round trips. The coordinator asks every member for nonce
//! commitments ([`Message::Commit`], with the transaction the round signs); a member whose own
//! ledger shows the withdrawal checks the transaction by the one rule and its watermarks
//! ([`crate::release::pledge`]), marks it, takes nonces out of its precomputed
//! [`crate::signing::NonceBook`] for this round alone, and answers with their commitments
//! ([`Message::Commitments`]) while it syncs the mark and the spent nonces. With t answers (its
//! own among them) the coordinator builds one signing package per message and sends each chosen
//! signer a [`crate::release::SignRequest`] ([`Message::Sign`]); a signer answers only through
//! [`crate::release::prepare_pledged`], for the transaction and the nonces it committed to in
//! that round, and only once its synced write is done ([`Message::Shares`], or
//! [`Message::Refused`]). The synced write thus travels with the first round trip instead of
//! adding to the second. The coordinator checks and combines the shares, checks the signature
//! by the same rule as everyone ([`SignedWithdrawal::check`]), and sends the record to all
//! ([`Message::Signed`]).
//!
//! A round that fails (a bad share, a chosen signer's refusal, a chosen signer's silence) is not
//! repaired: the coordinator starts another with a new round number, without the members that
//! failed it, and fresh nonces.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::round1::SigningCommitments;
use frost_core::round2::SignatureShare;
use frost_core::SigningPackage;
use serde::{Deserialize, Serialize};

use crate::keygen::KeyShare;
use crate::release::{
    messages, Authorization, BitcoinBody, BitcoinPolicy, Refusal, SignRequest, VaultSuite,
};
use crate::signing::{aggregate, decode_share, package};
use crate::taproot;
use crate::{Chain, Member, VaultError};

/// Largest signing frame between members.
pub const FRAME_BYTES_MAX: usize = 64 * 1024;

/// Longest refusal reason carried back to a coordinator, in characters.
pub const REASON_CHARS_MAX: usize = 160;

/// Largest serialized nonce commitment (the Ed25519 and secp256k1 suites' are well under it).
pub const COMMITMENT_BYTES_MAX: usize = 256;

/// A signing frame between members (postcard-encoded, at most [`FRAME_BYTES_MAX`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Coordinator to all: commit `count` nonces for this withdrawal's round.
    Commit {
        /// The shares' epoch the coordinator signs with (members with another epoch's shares
        /// do not answer).
        epoch: u64,
        /// Which key.
        chain: Chain,
        /// Which withdrawal.
        withdrawal: u64,
        /// The coordinator's round number (replies name it).
        round: u64,
        /// Messages to sign (Bitcoin: inputs; Ed25519: 1).
        count: u8,
        /// Bitcoin: the unsigned transaction the round signs (a member checks it and marks it
        /// before it commits nonces); `None` for Ed25519.
        bitcoin: Option<BitcoinBody>,
    },
    /// Member to coordinator: one published commitment per message, each under its slot.
    Commitments {
        /// Which key.
        chain: Chain,
        /// Which withdrawal.
        withdrawal: u64,
        /// The round it answers.
        round: u64,
        /// (slot, serialized commitments), one per message.
        slots: Vec<(u64, Vec<u8>)>,
    },
    /// Coordinator to a chosen signer.
    Sign {
        /// The round.
        round: u64,
        /// What to sign.
        request: SignRequest,
    },
    /// Signer to coordinator: one serialized share per package.
    Shares {
        /// Which key.
        chain: Chain,
        /// Which withdrawal.
        withdrawal: u64,
        /// The round it answers.
        round: u64,
        /// The shares.
        shares: Vec<Vec<u8>>,
    },
    /// Signer to coordinator: no share, and why (the coordinator starts another round).
    Refused {
        /// Which key.
        chain: Chain,
        /// Which withdrawal.
        withdrawal: u64,
        /// The round it answers.
        round: u64,
        /// Why, cut to [`REASON_CHARS_MAX`].
        reason: String,
    },
    /// Coordinator to all: the signed withdrawal.
    Signed(SignedWithdrawal),
    /// A member measuring the round trip to a peer on this channel (the latency bound of a
    /// signing round is two of them).
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// The answer to a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// A frame of the refresh into `epoch` among the members that stay (`kind ‖ chain ‖
    /// payload`, the key generation's frames).
    Refresh {
        /// The epoch the new shares belong to.
        epoch: u64,
        /// The ceremony frame.
        frame: Vec<u8>,
    },
    /// A member holding shares of `epoch`'s sharing, every few seconds: who holds that sharing.
    /// A member of the committee left out of it learns so from f + 1 of these and asks for a
    /// repair; a holder learns from the repaired member's that it holds a share now.
    Holding {
        /// The shares' epoch.
        epoch: u64,
        /// The members holding that sharing, ascending.
        holders: Vec<Member>,
        /// The sender's proofs of possession, one per key in chain order
        /// (`crate::repair::prove_holding`).
        proofs: Vec<Vec<u8>>,
    },
    /// A holder passing on another member's proofs of possession once it added that member
    /// to its package, so that a member showing its proofs to only some holders ends up in
    /// every honest holder's package.
    Vouch {
        /// The sharing's epoch.
        epoch: u64,
        /// The member the proofs are for.
        member: Member,
        /// Its proofs, one per key in chain order.
        proofs: Vec<Vec<u8>>,
    },
    /// A member without a share of `epoch`'s sharing asks each of `helpers` (t holders) to
    /// repair it (`crate::repair`); `nonce` names this attempt.
    RepairAsk {
        /// The sharing's epoch.
        epoch: u64,
        /// The helpers, ascending.
        helpers: Vec<Member>,
        /// The attempt (every delta and sigma names it, so two attempts never mix).
        nonce: u64,
    },
    /// Helper to helper: its delta for `newcomer` (repair step 1).
    RepairDelta {
        /// The sharing's epoch.
        epoch: u64,
        /// Which key.
        chain: Chain,
        /// Who is repaired.
        newcomer: Member,
        /// The helpers, ascending.
        helpers: Vec<Member>,
        /// The attempt.
        nonce: u64,
        /// The delta (one scalar).
        delta: Vec<u8>,
    },
    /// Helper to newcomer: its sigma and the sharing's public package (repair step 2).
    RepairSigma {
        /// The sharing's epoch.
        epoch: u64,
        /// Which key.
        chain: Chain,
        /// The helpers, ascending.
        helpers: Vec<Member>,
        /// The attempt.
        nonce: u64,
        /// The sigma (one scalar).
        sigma: Vec<u8>,
        /// The sharing's public key package.
        public: Vec<u8>,
    },
}

impl Message {
    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a signing message must serialize")
    }

    /// Decodes a peer's frame, bounded; trailing bytes are refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, VaultError> {
        if bytes.len() > FRAME_BYTES_MAX {
            return Err(VaultError::TooLong {
                what: "signing frame",
                len: bytes.len(),
                max: FRAME_BYTES_MAX,
            });
        }
        let (message, rest): (Message, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|_| VaultError::Malformed("signing frame"))?;
        if !rest.is_empty() {
            return Err(VaultError::Malformed("signing frame (trailing bytes)"));
        }
        Ok(message)
    }
}

/// Cuts a refusal's text to [`REASON_CHARS_MAX`] characters.
pub fn reason(refusal: &Refusal) -> String {
    refusal.to_string().chars().take(REASON_CHARS_MAX).collect()
}

/// A withdrawal the vault signed: what a member stores and shows, checked by
/// [`SignedWithdrawal::check`] before it is believed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedWithdrawal {
    /// The ledger's withdrawal id.
    pub withdrawal: u64,
    /// Which key signed.
    pub chain: Chain,
    /// Bitcoin: the signed transaction (every input's key-path witness), consensus-encoded.
    pub tx: Option<Vec<u8>>,
    /// Bitcoin: the value of each output the transaction spends (the sighash commits to them).
    pub prevout_sats: Vec<u64>,
    /// One 64-byte signature per message (Bitcoin: per input, BIP340; Ed25519: one).
    pub signatures: Vec<Vec<u8>>,
}

impl SignedWithdrawal {
    /// The one rule: the record pays exactly what `authorization` says (the same check a
    /// member makes before it releases a share) and every signature verifies under the vault's
    /// key with the standard verifier (libsecp256k1's BIP340 under the taproot output key;
    /// `ed25519-dalek`'s strict verification). Returns the signed messages.
    pub fn check(
        &self,
        authorization: &Authorization,
        ed25519_key: &[u8; 32],
        policy: &BitcoinPolicy,
    ) -> Result<Vec<Vec<u8>>, Refusal> {
        let id = self.withdrawal;
        let bad = |what: &'static str| Refusal::Package {
            withdrawal: id,
            reason: VaultError::Malformed(what),
        };
        if authorization.withdrawal != id || authorization.chain != self.chain {
            return Err(Refusal::NotAuthorized(id));
        }
        match self.chain {
            Chain::Ed25519 => {
                let (None, [signature]) = (&self.tx, self.signatures.as_slice()) else {
                    return Err(bad(
                        "signed Ed25519 withdrawal (one signature, no transaction)",
                    ));
                };
                let (_, messages) = messages(id, Chain::Ed25519, None, authorization, None)?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(ed25519_key)
                    .map_err(|_| bad("the vault's Ed25519 key"))?;
                let signature = ed25519_dalek::Signature::from_slice(signature)
                    .map_err(|_| bad("Ed25519 signature"))?;
                key.verify_strict(&messages[0], &signature)
                    .map_err(|_| bad("Ed25519 signature (does not verify)"))?;
                Ok(messages)
            }
            Chain::Bitcoin => {
                let tx = self.tx.as_ref().ok_or(bad("signed Bitcoin withdrawal"))?;
                let mut tx = taproot::decode(tx).map_err(|reason| Refusal::Transaction {
                    withdrawal: id,
                    reason,
                })?;
                if self.signatures.len() != tx.input.len() {
                    return Err(bad("signatures (one per input)"));
                }
                for (input, signature) in tx.input.iter_mut().zip(&self.signatures) {
                    let witness: Vec<&[u8]> = input.witness.iter().collect();
                    if witness != [signature.as_slice()] {
                        return Err(bad("witness (one 64-byte signature per input)"));
                    }
                    input.witness = bitcoin::Witness::new();
                }
                let body = BitcoinBody {
                    tx: bitcoin::consensus::serialize(&tx),
                    prevout_sats: self.prevout_sats.clone(),
                };
                let (_, messages) =
                    messages(id, Chain::Bitcoin, Some(&body), authorization, Some(policy))?;
                let secp = bitcoin::secp256k1::Secp256k1::verification_only();
                let key = bitcoin::secp256k1::XOnlyPublicKey::from_slice(&policy.vault_key)
                    .map_err(|_| bad("the vault's output key"))?;
                for (message, signature) in messages.iter().zip(&self.signatures) {
                    let signature = bitcoin::secp256k1::schnorr::Signature::from_slice(signature)
                        .map_err(|_| bad("BIP340 signature"))?;
                    let digest = bitcoin::secp256k1::Message::from_digest_slice(message)
                        .map_err(|_| bad("sighash"))?;
                    secp.verify_schnorr(&signature, &digest, &key)
                        .map_err(|_| bad("BIP340 signature (does not verify)"))?;
                }
                Ok(messages)
            }
        }
    }

    /// Bitcoin: the signed transaction's id, hex, as explorers show it.
    pub fn txid(&self) -> Option<String> {
        let tx = taproot::decode(self.tx.as_deref()?).ok()?;
        Some(tx.compute_txid().to_string())
    }
}

/// The coordinator's side of one signing round for one withdrawal.
pub struct Coordinator<C: VaultSuite> {
    round: u64,
    epoch: u64,
    authorization: Authorization,
    body: Option<BitcoinBody>,
    messages: Vec<Vec<u8>>,
    threshold: usize,
    holders: BTreeSet<Member>,
    commitments: BTreeMap<Member, Vec<(u64, SigningCommitments<C>)>>,
    chosen: Option<(BTreeSet<Member>, Vec<SigningPackage<C>>)>,
    shares: BTreeMap<Member, Vec<SignatureShare<C>>>,
    /// Members that failed this round (refused, or sent a share that does not combine).
    failed: BTreeSet<Member>,
}

/// What a coordinator does next with a reply.
#[derive(Debug)]
pub enum Step {
    /// Nothing yet.
    Wait,
    /// Send each chosen signer its request.
    Send(BTreeMap<Member, Message>),
    /// The signatures, each checked; the round is over.
    Done(Vec<[u8; 64]>),
}

impl<C: VaultSuite> Coordinator<C> {
    /// A round for `authorization`. For Bitcoin, `body` is the unsigned transaction the
    /// coordinator built; it is checked by the rule every member applies, so a coordinator never
    /// asks for what an honest member refuses.
    pub fn new(
        round: u64,
        epoch: u64,
        authorization: Authorization,
        body: Option<BitcoinBody>,
        policy: Option<&BitcoinPolicy>,
        share: &KeyShare<C>,
    ) -> Result<Self, Refusal> {
        let (_, messages) = messages(
            authorization.withdrawal,
            C::CHAIN,
            body.as_ref(),
            &authorization,
            policy,
        )?;
        Ok(Self {
            round,
            epoch,
            authorization,
            body,
            messages,
            threshold: usize::from(share.threshold()),
            holders: share.holders(),
            commitments: BTreeMap::new(),
            chosen: None,
            shares: BTreeMap::new(),
            failed: BTreeSet::new(),
        })
    }

    /// The round number.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The first frame, to every member (itself included).
    pub fn commit_request(&self) -> Message {
        Message::Commit {
            epoch: self.epoch,
            chain: C::CHAIN,
            withdrawal: self.authorization.withdrawal,
            round: self.round,
            count: u8::try_from(self.messages.len()).expect("at most 16 inputs"),
            bitcoin: self.body.clone(),
        }
    }

    /// Members that failed this round.
    pub fn failed(&self) -> &BTreeSet<Member> {
        &self.failed
    }

    /// The signers chosen, once t members committed.
    pub fn chosen(&self) -> Option<&BTreeSet<Member>> {
        self.chosen.as_ref().map(|(signers, _)| signers)
    }

    /// A member's commitments. With t members' (first come), returns the requests to send.
    pub fn on_commitments(
        &mut self,
        from: Member,
        slots: &[(u64, Vec<u8>)],
    ) -> Result<Step, VaultError> {
        if !self.holders.contains(&from) {
            return Err(VaultError::NotAParticipant(from));
        }
        if self.chosen.is_some() || self.commitments.contains_key(&from) {
            return Ok(Step::Wait);
        }
        if slots.len() != self.messages.len() {
            return Err(VaultError::Malformed("commitments (one per message)"));
        }
        let mut decoded = Vec::with_capacity(slots.len());
        for (slot, bytes) in slots {
            if bytes.len() > COMMITMENT_BYTES_MAX {
                return Err(VaultError::TooLong {
                    what: "nonce commitment",
                    len: bytes.len(),
                    max: COMMITMENT_BYTES_MAX,
                });
            }
            let commitment = SigningCommitments::<C>::deserialize(bytes)
                .map_err(|_| VaultError::Malformed("nonce commitment"))?;
            decoded.push((*slot, commitment));
        }
        self.commitments.insert(from, decoded);
        if self.commitments.len() < self.threshold {
            return Ok(Step::Wait);
        }
        let signers: BTreeSet<Member> = self.commitments.keys().copied().collect();
        let mut packages = Vec::with_capacity(self.messages.len());
        let mut per_signer: BTreeMap<Member, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
        for (index, message) in self.messages.iter().enumerate() {
            let mut by_member = BTreeMap::new();
            for (member, list) in &self.commitments {
                by_member.insert(*member, list[index].1);
            }
            let signing = package::<C>(&by_member, message)?;
            let bytes = signing
                .serialize()
                .map_err(|_| VaultError::Malformed("signing package"))?;
            for (member, list) in &self.commitments {
                per_signer
                    .entry(*member)
                    .or_default()
                    .push((list[index].0, bytes.clone()));
            }
            packages.push(signing);
        }
        self.chosen = Some((signers, packages));
        Ok(Step::Send(
            per_signer
                .into_iter()
                .map(|(member, packages)| {
                    (
                        member,
                        Message::Sign {
                            round: self.round,
                            request: SignRequest {
                                withdrawal: self.authorization.withdrawal,
                                chain: C::CHAIN,
                                bitcoin: self.body.clone(),
                                packages,
                            },
                        },
                    )
                })
                .collect(),
        ))
    }

    /// A chosen signer's shares. With every chosen signer's, combines and checks them; a share
    /// that does not combine fails the round (`Err`, and the member is in [`Self::failed`]).
    pub fn on_shares(
        &mut self,
        from: Member,
        shares: &[Vec<u8>],
        share: &KeyShare<C>,
    ) -> Result<Step, VaultError> {
        let Some((signers, packages)) = &self.chosen else {
            return Ok(Step::Wait);
        };
        if !signers.contains(&from) || self.shares.contains_key(&from) {
            return Ok(Step::Wait);
        }
        if shares.len() != packages.len() {
            self.failed.insert(from);
            return Err(VaultError::Malformed("shares (one per package)"));
        }
        let decoded = shares
            .iter()
            .map(|bytes| decode_share::<C>(bytes))
            .collect::<Result<Vec<_>, _>>()
            .inspect_err(|_| {
                self.failed.insert(from);
            })?;
        self.shares.insert(from, decoded);
        if self.shares.len() < signers.len() {
            return Ok(Step::Wait);
        }
        let mut signatures = Vec::with_capacity(packages.len());
        for (index, signing) in packages.iter().enumerate() {
            let by_member: BTreeMap<Member, SignatureShare<C>> = self
                .shares
                .iter()
                .map(|(member, list)| (*member, list[index]))
                .collect();
            let signature = match aggregate(signing, &by_member, &share.public) {
                Ok(signature) => signature,
                Err(error) => {
                    // Find who: each share is checked alone against its signer's key.
                    for (member, list) in &self.shares {
                        let verifying = share
                            .public
                            .verifying_shares()
                            .get(&crate::keygen::identifier::<C>(*member)?)
                            .copied();
                        let ok = verifying.is_some_and(|verifying| {
                            frost_core::verify_signature_share(
                                crate::keygen::identifier::<C>(*member).expect("checked"),
                                &verifying,
                                &list[index],
                                signing,
                                share.public.verifying_key(),
                            )
                            .is_ok()
                        });
                        if !ok {
                            self.failed.insert(*member);
                        }
                    }
                    return Err(error);
                }
            };
            let bytes: [u8; 64] = signature
                .serialize()
                .map_err(|_| VaultError::Crypto("signature encoding"))?
                .try_into()
                .map_err(|_| VaultError::Crypto("signature length"))?;
            signatures.push(bytes);
        }
        Ok(Step::Done(signatures))
    }

    /// A signer's refusal: the round cannot finish with it.
    /// Returns whether it counts: only a chosen signer's refusal fails the round (anyone else's
    /// is noise a Byzantine member could send to stall rounds).
    pub fn on_refused(&mut self, from: Member) -> bool {
        let chosen = self
            .chosen
            .as_ref()
            .is_some_and(|(signers, _)| signers.contains(&from));
        if chosen {
            self.failed.insert(from);
        }
        chosen
    }

    /// The chosen signers whose shares have not come (at a timeout: they fail the round).
    pub fn silent(&self) -> BTreeSet<Member> {
        self.chosen
            .as_ref()
            .map_or_else(BTreeSet::new, |(signers, _)| {
                signers
                    .iter()
                    .filter(|m| !self.shares.contains_key(m))
                    .copied()
                    .collect()
            })
    }

    /// The record of the finished round.
    pub fn record(&self, signatures: &[[u8; 64]]) -> SignedWithdrawal {
        let tx = self.body.as_ref().map(|body| {
            let unsigned = taproot::decode(&body.tx).expect("checked when the round began");
            bitcoin::consensus::serialize(&taproot::finalize(unsigned, signatures))
        });
        SignedWithdrawal {
            withdrawal: self.authorization.withdrawal,
            chain: C::CHAIN,
            tx,
            prevout_sats: self
                .body
                .as_ref()
                .map(|b| b.prevout_sats.clone())
                .unwrap_or_default(),
            signatures: signatures.iter().map(|s| s.to_vec()).collect(),
        }
    }
}

/// The ledger's withdrawal as the vault's authorization. `units_per_micro` converts the
/// engine's micros to the chain's smallest unit (`None` when the product overflows).
pub fn authorization(
    withdrawal: u64,
    recorded: &bulwark_engine::Withdrawal,
    units_per_micro: u64,
) -> Option<Authorization> {
    Some(Authorization {
        withdrawal,
        chain: match recorded.chain {
            bulwark_engine::PayoutChain::Bitcoin => Chain::Bitcoin,
            bulwark_engine::PayoutChain::Ed25519 => Chain::Ed25519,
        },
        destination: recorded.destination,
        amount: recorded.amount.checked_mul(units_per_micro)?,
    })
}
