//! A peer's bytes never cause a panic: every decoder a peer or client reaches is fed valid
//! encodings first (which must decode, or this test would prove nothing), then tens of thousands
//! of seeded mutations of them (bit flips, cut-offs, appended and overwritten bytes, pure noise).
//! A mutation may decode or be refused with an error; a panic fails the test.
#![allow(clippy::unwrap_used)]

use bulwark_api::wire::{
    decode_request, decode_response, encode_request, encode_response, ErrorCode, Frame, PeerAuth,
    PeerOp, Refused, Request, Response, SubmitOutcome, WireLimits,
};
use bulwark_consensus::block::Block;
use bulwark_custody::dkg::{Ceremony, Completed, To};
use bulwark_engine::codec::SignedTx;
use bulwark_engine::command::{LimitOrder, SelfTradePrevention, SystemCommand, TimeInForce};
use bulwark_engine::oracle::{Observation, SignedObservation};
use bulwark_engine::{AccountId, ClientCommand, InstrumentId, Side};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{ed25519, Signer as _};
use commonware_utils::{ordered::Set, TestRng, TryCollect as _};

/// Mutations per valid encoding.
const MUTATIONS: usize = 3_000;

/// A small deterministic generator (xorshift64*), so the mutations replay exactly.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// One mutation of `valid`.
    fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        match self.below(6) {
            0 if !bytes.is_empty() => {
                let at = self.below(bytes.len());
                bytes[at] ^= 1 << self.below(8);
            }
            1 => bytes.truncate(self.below(bytes.len() + 1)),
            2 => {
                let extra = self.below(64);
                bytes.extend((0..extra).map(|_| self.next() as u8));
            }
            3 if !bytes.is_empty() => {
                for _ in 0..=self.below(8) {
                    let at = self.below(bytes.len());
                    bytes[at] = self.next() as u8;
                }
            }
            4 if bytes.len() >= 4 => {
                // A length-like field set to something huge.
                let at = self.below(bytes.len() - 3);
                bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
            }
            _ => {
                let len = self.below(256);
                bytes = (0..len).map(|_| self.next() as u8).collect();
            }
        }
        bytes
    }
}

fn tx(nonce: u64) -> SignedTx {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    SignedTx::sign(
        AccountId(3),
        nonce,
        ClientCommand::Limit(LimitOrder {
            instrument: InstrumentId(0),
            side: Side::Buy,
            price: 600_000,
            qty: 2,
            tif: TimeInForce::Gtc,
            post_only: false,
            reduce_only: false,
            stp: SelfTradePrevention::CancelResting,
            client_order_id: nonce,
        }),
        &key,
    )
}

fn observation(round: u64, seed: u8) -> SignedObservation {
    SignedObservation::sign(
        Observation {
            feed: 0,
            round,
            price_micros: 60_000_000_000,
            confidence_micros: 5_000_000,
            sources: 3,
            time_ms: round * 1_000,
        },
        &ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    )
}

/// `op` as a committee peer signs it.
fn peer(op: PeerOp) -> Request {
    let key = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    Request::Peer {
        auth: PeerAuth::sign(&key, &[5; 32], 1_800_000_000_000, &op),
        op,
    }
}

#[test]
fn client_and_peer_frames_never_panic() {
    let limits = WireLimits::default();
    let requests = [
        Request::Submit(vec![tx(1), tx(2)]),
        Request::Status,
        Request::Account(AccountId(9)),
        Request::Book {
            instrument: InstrumentId(0),
            depth: 10,
        },
        peer(PeerOp::Attest { nonce: [3; 32] }),
        peer(PeerOp::AttestKey),
        peer(PeerOp::Activate {
            credential_blob: vec![1; 40],
            encrypted_secret: vec![2; 256],
        }),
    ];
    let responses = [
        Response::Submitted(SubmitOutcome {
            accepted: 1,
            duplicates: 0,
            refused: vec![Refused {
                index: 1,
                reason: "bad signature".into(),
            }],
        }),
        Response::Status(Box::new(bulwark_api::answers::NodeStatus {
            height: 3,
            ..Default::default()
        })),
        Response::Evidence(b"{\"kind\":\"tpm2-quote\"}".to_vec()),
        Response::AttestKey(vec![0, 35, 0, 11]),
        Response::Activated(vec![9; 32]),
        Response::Error {
            code: ErrorCode::Refused,
            message: "no".into(),
        },
    ];
    let mut noise = Noise(0x5eed_0001);
    // Frames without their length prefix: kind byte, then body.
    let body = |bytes: &[u8]| bytes[4..].to_vec();
    let to_frame = |bytes: &[u8]| Frame {
        kind: bytes.first().copied().unwrap_or(0),
        body: bytes.get(1..).unwrap_or_default().to_vec(),
    };
    let mut refused = 0usize;
    for request in &requests {
        let valid = body(&encode_request(request, &limits).unwrap());
        assert_eq!(
            decode_request(&to_frame(&valid), &limits).unwrap(),
            *request
        );
        for _ in 0..MUTATIONS {
            refused +=
                usize::from(decode_request(&to_frame(&noise.mutate(&valid)), &limits).is_err());
        }
    }
    for response in &responses {
        let valid = body(&encode_response(response, limits.frame_bytes_max).unwrap());
        assert_eq!(decode_response(&to_frame(&valid)).unwrap(), *response);
        for _ in 0..MUTATIONS {
            refused += usize::from(decode_response(&to_frame(&noise.mutate(&valid))).is_err());
        }
    }
    assert!(refused > 0, "mutations must be refused, not all accepted");
}

#[test]
fn blocks_observations_and_attestation_evidence_never_panic() {
    let block = Block {
        epoch: 0,
        height: 7,
        view: 9,
        time_ms: 12_000,
        parent: Digest([4; 32]),
        parent_root: [5; 32],
        rounds: vec![SystemCommand::OracleRound {
            underlying: 0,
            round: 12,
            observations: (1..=3).map(|seed| observation(12, seed)).collect(),
        }],
        txs: vec![tx(1), tx(2), tx(3)],
    };
    let valid = block.encode();
    assert_eq!(Block::decode(&valid).unwrap(), block);
    let mut noise = Noise(0x5eed_0002);
    let mut refused = 0usize;
    for _ in 0..MUTATIONS * 3 {
        let mutated = noise.mutate(&valid);
        refused += usize::from(Block::decode(&mutated).is_err());
        // The header reader (log replay below a snapshot) only bounds-checks; it never panics.
        let _ = Block::header(&mutated);
    }
    let valid = observation(5, 1).encode();
    assert!(SignedObservation::decode(&valid).unwrap().verify().is_ok());
    for _ in 0..MUTATIONS {
        if let Ok(decoded) = SignedObservation::decode(&noise.mutate(&valid)) {
            let _ = decoded.verify();
        }
    }
    // Attestation evidence as a peer sends it (JSON), as the admission loop parses it.
    let valid = serde_json::to_vec(&serde_json::json!({
        "tpm2-quote": {
            "node_key_sha256": "00".repeat(32),
            "epoch": 0,
            "ak_public": "0023000b",
            "attest": "ff544347",
            "signature": "0018",
            "pcrs": {"23": "11".repeat(32)}
        }
    }))
    .unwrap();
    for _ in 0..MUTATIONS {
        let _ = bulwark_attest::evidence::Evidence::from_json(&noise.mutate(&valid));
    }
    assert!(refused > 0, "mutated blocks must be refused");
}

#[test]
fn dkg_messages_never_panic() {
    let mut rng = TestRng::new(11);
    let mut secrets: Vec<ed25519::PrivateKey> =
        (0..4).map(ed25519::PrivateKey::from_seed).collect();
    secrets.sort_by_key(|s| s.public_key());
    let participants: Set<_> = secrets
        .iter()
        .map(|s| s.public_key())
        .try_collect()
        .unwrap();
    let namespace = b"bulwark/test/hostile-dkg";
    let mut sent = Vec::new();
    let mut ceremonies = Vec::new();
    for secret in &secrets {
        let (ceremony, out) =
            Ceremony::new(namespace, secret.clone(), participants.clone(), &mut rng).unwrap();
        sent.push(out);
        ceremonies.push(ceremony);
    }
    // Node 0's dealings as node 1 receives them: valid first, then mutated copies into a
    // fresh ceremony each time (so a mutation cannot be mistaken for a duplicate).
    let from = secrets[0].public_key();
    let valid: Vec<Vec<u8>> = sent[0]
        .iter()
        .filter(|m| match &m.to {
            To::All => true,
            To::One(to) => *to == secrets[1].public_key(),
        })
        .map(|m| m.bytes.clone())
        .collect();
    assert!(!valid.is_empty());
    for bytes in &valid {
        assert!(ceremonies[1].receive(&from, bytes).is_ok());
    }
    let mut noise = Noise(0x5eed_0003);
    let mut refused = 0usize;
    for round in 0..MUTATIONS / 10 {
        let (mut fresh, _) = Ceremony::new(
            namespace,
            secrets[1].clone(),
            participants.clone(),
            &mut TestRng::new(round as u64),
        )
        .unwrap();
        for bytes in &valid {
            refused += usize::from(fresh.receive(&from, &noise.mutate(bytes)).is_err());
        }
    }
    assert!(refused > 0);
    // A stored share file, damaged: refused, never a panic.
    for _ in 0..MUTATIONS {
        let _ = Completed::decode(&noise.mutate(&[0u8; 200]), &participants);
    }
}
