//! Unit tests of the wire protocol: round trips and every malformed-input path.
#![allow(clippy::unwrap_used)]

use super::*;
use bulwark_engine::ClientCommand;
use ed25519_dalek::SigningKey;

fn tx(nonce: u64) -> SignedTx {
    SignedTx::sign(
        AccountId(7),
        nonce,
        ClientCommand::MassCancel { instrument: None },
        &SigningKey::from_bytes(&[7; 32]),
    )
}

fn limits() -> WireLimits {
    WireLimits::default()
}

/// Encodes, reads back through `read_frame`, decodes.
fn request_round_trip(request: &Request) -> Request {
    let bytes = encode_request(request, &limits()).unwrap();
    let frame = read_frame(&mut bytes.as_slice(), FRAME_BYTES_MAX).unwrap();
    decode_request(&frame, &limits()).unwrap()
}

fn response_round_trip(response: &Response) -> Response {
    let bytes = encode_response(response, FRAME_BYTES_MAX).unwrap();
    let frame = read_frame(&mut bytes.as_slice(), FRAME_BYTES_MAX).unwrap();
    decode_response(&frame).unwrap()
}

fn frame(kind: u8, body: &[u8]) -> Frame {
    Frame {
        kind,
        body: body.to_vec(),
    }
}

/// `op`, signed by a peer for node `[1; 32]`.
fn peer(op: PeerOp) -> Request {
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    Request::Peer {
        auth: PeerAuth::sign(&key, &[1; 32], 1_800_000_000_000, &op),
        op,
    }
}

fn affirmation() -> bulwark_sentinel::Affirmation {
    let key = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    bulwark_sentinel::Affirmation::sign(&key, [4; 32], 2, 1_800_000_000_000, ([5; 32], [6; 32]))
}

fn admit() -> bulwark_sentinel::Admit {
    bulwark_sentinel::Admit {
        candidate: [4; 32],
        epoch: 2,
        affirmations: vec![affirmation()],
        seat: bulwark_sentinel::Seat::Readmit,
    }
}

#[test]
fn requests_round_trip() {
    for request in [
        Request::Submit(vec![tx(1), tx(2), tx(3)]),
        Request::Submit(Vec::new()),
        Request::Status,
        Request::Account(AccountId(u64::MAX)),
        Request::Book {
            instrument: InstrumentId(3),
            depth: 20,
        },
        peer(PeerOp::Attest { nonce: [7; 32] }),
        peer(PeerOp::AttestKey),
        peer(PeerOp::Activate {
            credential_blob: vec![1, 2, 3],
            encrypted_secret: vec![9; 256],
        }),
        peer(PeerOp::Activate {
            credential_blob: Vec::new(),
            encrypted_secret: Vec::new(),
        }),
        peer(PeerOp::AuditReport),
        Request::Affirm { candidate: [4; 32] },
        Request::Admit(Box::new(admit())),
        Request::Withdrawals { from: 17 },
    ] {
        assert_eq!(request_round_trip(&request), request);
    }
}

#[test]
fn responses_round_trip() {
    for response in [
        Response::Submitted(SubmitOutcome {
            accepted: 3,
            duplicates: 1,
            refused: vec![
                Refused {
                    index: 2,
                    reason: "bad signature".into(),
                },
                Refused {
                    index: 9,
                    reason: String::new(),
                },
            ],
        }),
        Response::Submitted(SubmitOutcome::default()),
        Response::Status(Box::new(crate::answers::NodeStatus {
            height: 12,
            name: "n1".into(),
            ..Default::default()
        })),
        Response::Account(Box::new(crate::answers::AccountAnswer {
            height: 7,
            account: 3,
            cash_micros: "-5".into(),
            ..Default::default()
        })),
        Response::Book(crate::answers::BookAnswer {
            height: 7,
            bids: vec![crate::answers::Level { price: 100, qty: 2 }],
            ..Default::default()
        }),
        Response::Evidence(b"{}".to_vec()),
        Response::AttestKey(vec![0, 0x23, 1]),
        Response::Activated(vec![5; 32]),
        Response::AuditReport(b"{\"report\":\"{}\"}".to_vec()),
        Response::Affirmed(affirmation()),
        Response::AdmitHeld,
        Response::Withdrawals(Box::new(crate::answers::WithdrawalsAnswer {
            withdrawals: vec![crate::answers::WithdrawalAnswer {
                id: 3,
                chain: "ed25519".into(),
                state: "signed".into(),
                signatures: vec!["ab".repeat(64)],
                ..Default::default()
            }],
            next: Some(4),
            ..Default::default()
        })),
        Response::Error {
            code: ErrorCode::RateLimited,
            message: "rate limited".into(),
        },
        Response::Error {
            code: ErrorCode::Other(999),
            message: "née".into(),
        },
    ] {
        assert_eq!(response_round_trip(&response), response);
    }
}

#[test]
fn long_texts_are_cut_at_character_boundaries() {
    let reason = "é".repeat(REASON_BYTES_MAX); // 2 bytes each
    let response = Response::Submitted(SubmitOutcome {
        accepted: 0,
        duplicates: 0,
        refused: vec![Refused { index: 0, reason }],
    });
    let Response::Submitted(outcome) = response_round_trip(&response) else {
        panic!("wrong kind");
    };
    assert_eq!(outcome.refused[0].reason.len(), REASON_BYTES_MAX);
    let bytes = encode_error(ErrorCode::Internal, &"x".repeat(5000));
    let frame = read_frame(&mut bytes.as_slice(), FRAME_BYTES_MAX).unwrap();
    let Response::Error { message, .. } = decode_response(&frame).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!(message.len(), ERROR_MESSAGE_BYTES_MAX);
}

#[test]
fn read_frame_reports_clean_close_and_truncation() {
    assert!(matches!(
        read_frame(&mut [].as_slice(), 100),
        Err(WireError::Closed)
    ));
    assert!(matches!(
        read_frame(&mut [0, 0].as_slice(), 100),
        Err(WireError::Truncated { needed: 4, got: 2 })
    ));
    assert!(matches!(
        read_frame(&mut [0, 0, 0, 5, 1, 2].as_slice(), 100),
        Err(WireError::Truncated { needed: 5, got: 2 })
    ));
    assert!(matches!(
        read_frame(&mut [0, 0, 0, 0].as_slice(), 100),
        Err(WireError::EmptyFrame)
    ));
}

#[test]
fn read_frame_refuses_oversize_before_reading_the_body() {
    // Announces 4 GiB and sends nothing more: refused from the prefix alone.
    let mut input = [0xff, 0xff, 0xff, 0xff].as_slice();
    assert!(matches!(
        read_frame(&mut input, FRAME_BYTES_MAX),
        Err(WireError::FrameTooLarge {
            len: 0xffff_ffff,
            max: FRAME_BYTES_MAX
        })
    ));
    let bytes = Frame {
        kind: 1,
        body: vec![0; 100],
    }
    .to_bytes(1000)
    .unwrap();
    assert!(matches!(
        read_frame(&mut bytes.as_slice(), 100),
        Err(WireError::FrameTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        Frame {
            kind: 1,
            body: vec![0; 100]
        }
        .to_bytes(100),
        Err(WireError::FrameTooLarge { len: 101, max: 100 })
    ));
}

#[test]
fn read_frame_reads_exactly_one_frame() {
    let mut bytes = encode_request(&Request::Status, &limits()).unwrap();
    bytes.extend(encode_request(&Request::Account(AccountId(1)), &limits()).unwrap());
    let mut input = bytes.as_slice();
    assert_eq!(
        read_frame(&mut input, 100).unwrap(),
        frame(KIND_STATUS, &[])
    );
    assert_eq!(
        decode_request(&read_frame(&mut input, 100).unwrap(), &limits()).unwrap(),
        Request::Account(AccountId(1))
    );
    assert!(matches!(
        read_frame(&mut input, 100),
        Err(WireError::Closed)
    ));
}

#[test]
fn unknown_kinds_are_refused() {
    assert!(matches!(
        decode_request(&frame(0x42, &[]), &limits()),
        Err(WireError::UnknownKind(0x42))
    ));
    // A response kind is not a request, and the other way round.
    assert!(matches!(
        decode_request(&frame(KIND_ERROR, &[0, 1]), &limits()),
        Err(WireError::UnknownKind(KIND_ERROR))
    ));
    assert!(matches!(
        decode_response(&frame(KIND_SUBMIT, &[])),
        Err(WireError::UnknownKind(KIND_SUBMIT))
    ));
}

#[test]
fn bad_request_bodies_are_refused() {
    let bad = |kind, body: &[u8]| decode_request(&frame(kind, body), &limits()).unwrap_err();
    assert!(matches!(bad(KIND_STATUS, &[0]), WireError::BadBody { .. }));
    assert!(matches!(
        bad(KIND_ACCOUNT, &[0; 7]),
        WireError::BadBody { .. }
    ));
    assert!(matches!(
        bad(KIND_ACCOUNT, &[0; 9]),
        WireError::BadBody { .. }
    ));
    assert!(matches!(bad(KIND_BOOK, &[0; 4]), WireError::BadBody { .. }));
    // Peer requests: the authentication first, then the operation's body.
    let auth = [0u8; PEER_AUTH_BYTES];
    let with_auth = |rest: &[u8]| [&auth[..], rest].concat();
    assert!(matches!(
        bad(KIND_ATTEST, &with_auth(&[0; 31])),
        WireError::BadBody { .. }
    ));
    assert!(matches!(
        bad(KIND_ATTEST, &[0; 32]),
        WireError::BadBody { .. }
    ));
    assert!(matches!(
        bad(KIND_ATTEST_KEY, &with_auth(&[1])),
        WireError::BadBody { .. }
    ));
    assert!(matches!(
        bad(KIND_ATTEST_KEY, &auth[..PEER_AUTH_BYTES - 1]),
        WireError::BadBody { .. }
    ));
    // Activate: a length that runs past the body, a missing second part, trailing bytes.
    for body in [&[0, 5, 1][..], &[0, 1, 1], &[0, 1, 1, 0, 0, 9]] {
        assert!(matches!(
            bad(KIND_ACTIVATE, &with_auth(body)),
            WireError::BadBody { .. }
        ));
    }
    // An activate part longer than u16::MAX cannot be encoded.
    assert!(encode_request(
        &peer(PeerOp::Activate {
            credential_blob: vec![0; 70_000],
            encrypted_secret: Vec::new(),
        }),
        &limits()
    )
    .is_err());
    assert!(matches!(
        bad(KIND_AUDIT_REPORT, &with_auth(&[0])),
        WireError::BadBody { .. }
    ));
    // Affirm: exactly a 32-byte key; admit: JSON of an admission, nothing else.
    for body in [&[0; 31][..], &[0; 33]] {
        assert!(matches!(bad(KIND_AFFIRM, body), WireError::BadBody { .. }));
    }
    for body in [&b"{not json"[..], b"{}", b"[]", b"{\"candidate\":1}"] {
        assert!(matches!(bad(KIND_ADMIT, body), WireError::Json(_)));
    }
    let mut deep = vec![0; 4];
    deep.extend_from_slice(&(BOOK_DEPTH_MAX + 1).to_be_bytes());
    assert!(matches!(
        bad(KIND_BOOK, &deep),
        WireError::DepthTooLarge { .. }
    ));
}

#[test]
fn garbage_batches_are_refused() {
    let bad = |body: &[u8]| decode_request(&frame(KIND_SUBMIT, body), &limits()).unwrap_err();
    // Empty, wrong version, truncated transaction, trailing bytes.
    assert!(matches!(
        bad(&[]),
        WireError::Batch(CodecError::Truncated { .. })
    ));
    assert!(matches!(
        bad(&[9, 0, 0, 0, 0]),
        WireError::Batch(CodecError::BadVersion { found: 9 })
    ));
    let good = encode_batch(&[tx(1)]).unwrap();
    assert!(matches!(bad(&good[..good.len() - 1]), WireError::Batch(_)));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        bad(&trailing),
        WireError::Batch(CodecError::TrailingBytes { .. })
    ));
    // A count over the limit is refused before the transactions are looked at.
    let mut many = vec![1];
    many.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(bad(&many), WireError::TooManyTxs { .. }));
    // A count within the limit but larger than the bytes present.
    let mut short = vec![1];
    short.extend_from_slice(&100u32.to_le_bytes());
    assert!(matches!(
        bad(&short),
        WireError::Batch(CodecError::CountExceedsInput { .. })
    ));
    // Random bytes never panic.
    let mut seed = 0x1234_5678_u32;
    for len in 0..300 {
        let body: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as u8
            })
            .collect();
        let _ = decode_request(&frame(KIND_SUBMIT, &body), &limits());
        let _ = decode_response(&frame(KIND_SUBMITTED, &body));
        let _ = decode_response(&frame(KIND_ERROR, &body));
    }
}

#[test]
fn too_many_txs_are_refused_at_both_ends() {
    let tight = WireLimits {
        submit_txs_max: 2,
        ..limits()
    };
    let txs = vec![tx(1), tx(2), tx(3)];
    assert!(matches!(
        encode_request(&Request::Submit(txs.clone()), &tight),
        Err(WireError::TooManyTxs { count: 3, max: 2 })
    ));
    let bytes = encode_request(&Request::Submit(txs), &limits()).unwrap();
    let frame = read_frame(&mut bytes.as_slice(), FRAME_BYTES_MAX).unwrap();
    assert!(matches!(
        decode_request(&frame, &tight),
        Err(WireError::TooManyTxs { count: 3, max: 2 })
    ));
}

#[test]
fn a_full_submit_of_the_largest_transactions_fits_the_default_frame() {
    let largest = SignedTx {
        account: AccountId(u64::MAX),
        nonce: u64::MAX,
        command: ClientCommand::Withdraw {
            amount: i64::MAX,
            destination: [0xff; 32],
            chain: bulwark_engine::PayoutChain::Ed25519,
        },
        signature: [0xff; 64],
    };
    let txs = vec![largest; SUBMIT_TXS_MAX];
    let bytes = encode_submit(&txs, &limits()).unwrap();
    assert!(bytes.len() <= FRAME_BYTES_MAX + LENGTH_PREFIX_BYTES);
    let frame = read_frame(&mut bytes.as_slice(), FRAME_BYTES_MAX).unwrap();
    assert_eq!(
        decode_request(&frame, &limits()).unwrap(),
        Request::Submit(txs)
    );
}

#[test]
fn bad_response_bodies_are_refused() {
    // A refusal count far beyond the bytes present.
    let mut body = vec![0; 8];
    body.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode_response(&frame(KIND_SUBMITTED, &body)),
        Err(WireError::BadBody { .. })
    ));
    // A reason that is not UTF-8.
    let mut body = vec![0; 8];
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0xff]);
    assert!(matches!(
        decode_response(&frame(KIND_SUBMITTED, &body)),
        Err(WireError::NotUtf8(_))
    ));
    assert!(matches!(
        decode_response(&frame(KIND_STATUS_REPLY, b"{not json")),
        Err(WireError::Json(_))
    ));
    assert!(matches!(
        decode_response(&frame(KIND_ERROR, &[0])),
        Err(WireError::BadBody { .. })
    ));
    assert!(matches!(
        decode_response(&frame(KIND_AFFIRMED, b"{\"affirmer\":\"zz\"}")),
        Err(WireError::Json(_))
    ));
    assert!(matches!(
        decode_response(&frame(KIND_ADMIT_HELD, &[1])),
        Err(WireError::BadBody { .. })
    ));
}
