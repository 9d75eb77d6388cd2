//! Unit tests of the codec and of signature verification.
#![allow(clippy::unwrap_used)]

use super::*;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn limit(tif: TimeInForce, stp: SelfTradePrevention, side: Side) -> ClientCommand {
    ClientCommand::Limit(LimitOrder {
        instrument: InstrumentId(7),
        side,
        price: -12_345,
        qty: 10,
        tif,
        post_only: true,
        reduce_only: false,
        stp,
        client_order_id: u64::MAX,
    })
}

fn client_commands() -> Vec<ClientCommand> {
    vec![
        limit(
            TimeInForce::Gtc,
            SelfTradePrevention::CancelResting,
            Side::Buy,
        ),
        limit(
            TimeInForce::Ioc,
            SelfTradePrevention::CancelIncoming,
            Side::Sell,
        ),
        limit(TimeInForce::Fok, SelfTradePrevention::CancelBoth, Side::Buy),
        ClientCommand::Market {
            instrument: InstrumentId(u32::MAX),
            side: Side::Sell,
            qty: i64::MAX,
            reduce_only: true,
            client_order_id: 3,
        },
        ClientCommand::Cancel {
            instrument: InstrumentId(1),
            order_id: OrderId(99),
        },
        ClientCommand::Amend {
            instrument: InstrumentId(2),
            order_id: OrderId(5),
            price: i64::MIN,
            qty: 1,
            expect_qty: None,
        },
        ClientCommand::Amend {
            instrument: InstrumentId(2),
            order_id: OrderId(5),
            price: 7,
            qty: i64::MAX,
            expect_qty: Some(i64::MIN),
        },
        ClientCommand::MassCancel { instrument: None },
        ClientCommand::MassCancel {
            instrument: Some(InstrumentId(4)),
        },
        ClientCommand::Withdraw {
            amount: i64::MIN,
            destination: [0xab; 32],
            chain: crate::command::PayoutChain::Ed25519,
        },
        ClientCommand::Stop(stop(Some(-5))),
        ClientCommand::Stop(StopOrder {
            direction: StopDirection::Rises,
            side: Side::Buy,
            ..stop(None)
        }),
        // The largest: a grant with CompIDs at their bound.
        ClientCommand::OpenSession(crate::command::SessionGrant {
            key: [0x11; 32],
            expires_ms: u64::MAX,
            logon_ms: 1,
            logon_nonce: [0x22; 16],
            sender: "S".repeat(crate::session::COMP_ID_BYTES_MAX),
            target: "T".repeat(crate::session::COMP_ID_BYTES_MAX),
        }),
        ClientCommand::CloseSession {
            slot: 255,
            cancel_placed: false,
        },
        ClientCommand::CloseSession {
            slot: 0,
            cancel_placed: true,
        },
        ClientCommand::SessionHeartbeat { within_ms: 0 },
        ClientCommand::SessionHeartbeat {
            within_ms: u32::MAX,
        },
    ]
}

fn stop(limit_price: Option<i64>) -> StopOrder {
    StopOrder {
        instrument: InstrumentId(3),
        side: Side::Sell,
        direction: StopDirection::Falls,
        trigger_price: 590_000,
        limit_price,
        qty: 12,
        reduce_only: true,
        client_order_id: 77,
    }
}

fn system_commands() -> Vec<SystemCommand> {
    vec![
        SystemCommand::OpenAccount {
            account: AccountId(1),
            public_key: key(1).verifying_key().to_bytes(),
        },
        SystemCommand::Deposit {
            account: AccountId(u64::MAX),
            amount: i64::MAX,
        },
        SystemCommand::IndexPrice {
            underlying: u16::MAX,
            price_micros: 65_000_000_000,
        },
    ]
}

/// An admission of `key(9)`, affirmed by `key(1)` and `key(2)`: a replacement of `key(3)`
/// approved by operator `key(7)`, or a re-admission.
fn admit(replace: bool) -> bulwark_sentinel::Admit {
    use bulwark_sentinel::{Admit, Affirmation, Approval, Seat};
    let candidate = key(9).verifying_key().to_bytes();
    let replaces = key(3).verifying_key().to_bytes();
    Admit {
        candidate,
        epoch: 4,
        affirmations: [1, 2]
            .iter()
            .map(|i| Affirmation::sign(&key(*i), candidate, 4, 77, ([5; 32], [6; 32])))
            .collect(),
        seat: if replace {
            Seat::Replace {
                replaces,
                approvals: vec![Approval::sign(&key(7), &candidate, &replaces, 4)],
            }
        } else {
            Seat::Readmit
        },
    }
}

#[test]
fn an_admission_round_trips_and_every_damaged_form_is_a_typed_error() {
    for replace in [true, false] {
        let command = SystemCommand::Admit(Box::new(admit(replace)));
        let bytes = encode_system_command(&command);
        assert_eq!(decode_system_command(&bytes).unwrap(), command);
        for len in 0..bytes.len() {
            assert!(matches!(
                decode_system_command(&bytes[..len]),
                Err(CodecError::Truncated { .. } | CodecError::CountExceedsInput { .. })
            ));
        }
    }
    let bytes = encode_system_command(&SystemCommand::Admit(Box::new(admit(false))));
    // The seat tag is the last byte of a re-admission.
    let mut seat = bytes.clone();
    *seat.last_mut().unwrap() = 2;
    assert_eq!(
        decode_system_command(&seat),
        Err(CodecError::UnknownTag {
            what: "admission seat",
            tag: 2
        })
    );
    // The affirmation count follows version, tag, candidate and epoch.
    let mut count = bytes;
    count[1 + 1 + 32 + 8..1 + 1 + 32 + 8 + 2].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        decode_system_command(&count),
        Err(CodecError::CountTooLarge { .. })
    ));
}

fn commands() -> Vec<Command> {
    let client = client_commands()
        .into_iter()
        .enumerate()
        .map(|(i, command)| Command::Client {
            account: AccountId(i as u64),
            nonce: i as u64 * 1000,
            command,
        });
    client
        .chain(system_commands().into_iter().map(Command::System))
        .collect()
}

fn signed(seed: u8, nonce: u64, command: ClientCommand) -> SignedTx {
    SignedTx::sign(AccountId(u64::from(seed)), nonce, command, &key(seed))
}

/// Accounts 0..=255 are keyed by `key(account)`.
fn keys(account: AccountId) -> Option<[u8; 32]> {
    let seed = u8::try_from(account.0).ok()?;
    Some(key(seed).verifying_key().to_bytes())
}

fn txs(count: usize) -> Vec<SignedTx> {
    let commands = client_commands();
    (0..count)
        .map(|i| {
            let command = commands[i % commands.len()].clone();
            signed((i % 5) as u8, i as u64 + 1, command)
        })
        .collect()
}

#[test]
fn every_variant_round_trips_canonically() {
    for command in client_commands() {
        let bytes = encode_client_command(&command);
        assert_eq!(decode_client_command(&bytes).unwrap(), command);
        assert_eq!(
            encode_client_command(&decode_client_command(&bytes).unwrap()),
            bytes
        );
    }
    for command in system_commands() {
        let bytes = encode_system_command(&command);
        assert_eq!(decode_system_command(&bytes).unwrap(), command);
        assert_eq!(
            encode_system_command(&decode_system_command(&bytes).unwrap()),
            bytes
        );
    }
    for command in commands() {
        let bytes = encode_command(&command);
        assert_eq!(decode_command(&bytes).unwrap(), command);
        assert_eq!(encode_command(&decode_command(&bytes).unwrap()), bytes);
    }
    for tx in txs(12) {
        let bytes = tx.encode();
        assert_eq!(SignedTx::decode(&bytes).unwrap(), tx);
        assert_eq!(SignedTx::decode(&bytes).unwrap().encode(), bytes);
    }
    let batch = txs(12);
    let bytes = encode_batch(&batch).unwrap();
    assert_eq!(decode_batch(&bytes, 12).unwrap(), batch);
    assert_eq!(
        decode_batch(&encode_batch(&[]).unwrap(), 0).unwrap(),
        vec![]
    );
}

#[test]
fn layout_is_pinned() {
    let bytes = encode_command(&Command::Client {
        account: AccountId(0x0102),
        nonce: 3,
        command: ClientCommand::Cancel {
            instrument: InstrumentId(4),
            order_id: OrderId(5),
        },
    });
    let expected: &[u8] = &[
        0x01, // version
        0x01, // Command::Client
        0x02, 0x01, 0, 0, 0, 0, 0, 0, // account
        3, 0, 0, 0, 0, 0, 0, 0,    // nonce
        0x03, // ClientCommand::Cancel
        4, 0, 0, 0, // instrument
        5, 0, 0, 0, 0, 0, 0, 0, // order id
    ];
    assert_eq!(bytes, expected);
}

#[test]
fn stop_layout_is_pinned_and_bad_bytes_are_typed_errors() {
    let bytes = encode_client_command(&ClientCommand::Stop(stop(Some(600_000))));
    let expected: &[u8] = &[
        0x01, // version
        0x07, // ClientCommand::Stop
        3, 0, 0, 0, // instrument
        1, // side: sell
        1, // direction: falls
        0xb0, 0x00, 0x09, 0, 0, 0, 0, 0, // trigger price 590 000
        1, 0xc0, 0x27, 0x09, 0, 0, 0, 0, 0, // limit price: present, 600 000
        12, 0, 0, 0, 0, 0, 0, 0, // qty
        1, // reduce only
        77, 0, 0, 0, 0, 0, 0, 0, // client order id
    ];
    assert_eq!(bytes, expected);
    assert_eq!(
        decode_client_command(&bytes).unwrap(),
        ClientCommand::Stop(stop(Some(600_000)))
    );
    for cut in 0..bytes.len() {
        assert!(matches!(
            decode_client_command(&bytes[..cut]),
            Err(CodecError::Truncated { .. })
        ));
    }
    let mut bad = bytes.clone();
    bad[7] = 2;
    assert_eq!(
        decode_client_command(&bad),
        Err(CodecError::UnknownTag {
            what: "stop direction",
            tag: 2
        })
    );
    let mut bad = bytes.clone();
    bad[16] = 7;
    assert_eq!(
        decode_client_command(&bad),
        Err(CodecError::NonCanonical(
            "an option presence byte must be 0 or 1"
        ))
    );
    let mut bad = bytes.clone();
    bad[33] = 9;
    assert_eq!(
        decode_client_command(&bad),
        Err(CodecError::NonCanonical("a bool must be 0 or 1"))
    );
    // Clearing the presence flag shifts every later field by 8 bytes: the limit is read as the
    // size, and the size's low byte (12) lands on the reduce-only flag.
    let mut absent = bytes.clone();
    absent[16] = 0;
    assert_eq!(
        decode_client_command(&absent),
        Err(CodecError::NonCanonical("a bool must be 0 or 1"))
    );
    let mut garbage = bytes;
    garbage[1] = 0x0d;
    assert_eq!(
        decode_client_command(&garbage),
        Err(CodecError::UnknownTag {
            what: "client command",
            tag: 0x0d
        })
    );
}

#[test]
fn size_bounds_match_the_encodings() {
    let sizes: Vec<usize> = client_commands()
        .iter()
        .map(|c| encode_client_command(c).len() - 1)
        .collect();
    assert_eq!(sizes.iter().min(), Some(&CLIENT_COMMAND_BYTES_MIN));
    assert_eq!(sizes.iter().max(), Some(&CLIENT_COMMAND_BYTES_MAX));
    let tx = signed(1, 1, ClientCommand::MassCancel { instrument: None });
    assert_eq!(tx.encode().len() - 1, SIGNED_TX_BODY_BYTES_MIN);
    for tx in txs(9) {
        assert!(tx.encode().len() <= SIGNED_TX_FRAME_BYTES_MAX);
    }
}

#[test]
fn every_prefix_is_truncated() {
    for command in commands() {
        let bytes = encode_command(&command);
        for len in 0..bytes.len() {
            let error = decode_command(&bytes[..len]).unwrap_err();
            assert!(
                matches!(error, CodecError::Truncated { at, needed } if at <= len && at + needed > len),
                "{len}: {error}"
            );
        }
    }
    assert_eq!(
        SignedTx::decode(&[]),
        Err(CodecError::Truncated { needed: 1, at: 0 })
    );
}

#[test]
fn every_framing_error_is_reachable() {
    let cancel = encode_client_command(&ClientCommand::Cancel {
        instrument: InstrumentId(1),
        order_id: OrderId(2),
    });

    let mut bad_version = cancel.clone();
    bad_version[0] = 0x02;
    assert_eq!(
        decode_client_command(&bad_version),
        Err(CodecError::BadVersion { found: 0x02 })
    );

    let mut bad_tag = cancel.clone();
    bad_tag[1] = 0x7f;
    assert_eq!(
        decode_client_command(&bad_tag),
        Err(CodecError::UnknownTag {
            what: "client command",
            tag: 0x7f
        })
    );
    assert!(matches!(
        decode_command(&[FRAME_VERSION, 0]),
        Err(CodecError::UnknownTag {
            what: "command",
            tag: 0
        })
    ));
    assert!(matches!(
        decode_system_command(&[FRAME_VERSION, 9]),
        Err(CodecError::UnknownTag {
            what: "system command",
            tag: 9
        })
    ));

    let mut trailing = cancel.clone();
    trailing.push(0);
    assert_eq!(
        decode_client_command(&trailing),
        Err(CodecError::TrailingBytes {
            count: 1,
            at: cancel.len()
        })
    );

    let long = vec![FRAME_VERSION; FRAME_BYTES_MAX + 1];
    assert_eq!(
        decode_client_command(&long),
        Err(CodecError::TooLong {
            len: FRAME_BYTES_MAX + 1,
            max: FRAME_BYTES_MAX
        })
    );
    let longer = vec![FRAME_VERSION; COMMAND_FRAME_BYTES_MAX + 1];
    assert_eq!(
        decode_command(&longer),
        Err(CodecError::TooLong {
            len: COMMAND_FRAME_BYTES_MAX + 1,
            max: COMMAND_FRAME_BYTES_MAX
        })
    );
}

#[test]
fn every_field_error_is_reachable() {
    let market = encode_client_command(&ClientCommand::Market {
        instrument: InstrumentId(1),
        side: Side::Buy,
        qty: 1,
        reduce_only: false,
        client_order_id: 0,
    });
    let mut bad_side = market.clone();
    bad_side[6] = 2; // version, tag, 4-byte instrument, then the side
    assert_eq!(
        decode_client_command(&bad_side),
        Err(CodecError::UnknownTag {
            what: "side",
            tag: 2
        })
    );
    let mut bad_bool = market.clone();
    bad_bool[15] = 2; // side, 8-byte qty, then reduce_only
    assert_eq!(
        decode_client_command(&bad_bool),
        Err(CodecError::NonCanonical("a bool must be 0 or 1"))
    );
    assert_eq!(
        decode_client_command(&[FRAME_VERSION, 5, 2]),
        Err(CodecError::NonCanonical(
            "an option presence byte must be 0 or 1"
        ))
    );
    let mut bad_tif = encode_client_command(&limit(
        TimeInForce::Gtc,
        SelfTradePrevention::CancelBoth,
        Side::Buy,
    ));
    bad_tif[23] = 3; // version, tag, instrument 4, side 1, price 8, qty 8, then tif
    assert!(matches!(
        decode_client_command(&bad_tif),
        Err(CodecError::UnknownTag {
            what: "time in force",
            tag: 3
        })
    ));
    bad_tif[23] = 0;
    bad_tif[26] = 3; // post_only, reduce_only, then stp
    assert!(matches!(
        decode_client_command(&bad_tif),
        Err(CodecError::UnknownTag {
            what: "self-trade prevention",
            tag: 3
        })
    ));
}

#[test]
fn every_batch_error_is_reachable() {
    let batch = encode_batch(&txs(3)).unwrap();
    assert_eq!(
        decode_batch(&batch, 2),
        Err(CodecError::CountTooLarge { count: 3, max: 2 })
    );
    let mut lying = batch[..5].to_vec();
    lying[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_batch(&lying, usize::MAX),
        Err(CodecError::CountExceedsInput { count, available: 0, .. }) if count == u32::MAX as usize
    ));
    let mut batch_trailing = batch.clone();
    batch_trailing.push(0);
    assert!(matches!(
        decode_batch(&batch_trailing, 3),
        Err(CodecError::TrailingBytes { count: 1, .. })
    ));
    assert!(matches!(
        decode_batch(&batch[..batch.len() - 1], 3),
        Err(CodecError::Truncated { .. })
    ));
}

#[test]
fn signatures_verify_and_convert() {
    let tx = signed(3, 7, client_commands()[0].clone());
    assert_eq!(tx.verify(&key(3).verifying_key().to_bytes()), Ok(()));
    assert_eq!(verify_one(&tx, keys), Ok(()));
    assert_eq!(
        tx.verify(&key(4).verifying_key().to_bytes()),
        Err(VerifyError::BadSignatures(vec![0]))
    );
    assert_eq!(
        tx.clone().into_command(),
        Command::Client {
            account: AccountId(3),
            nonce: 7,
            command: tx.command.clone(),
        }
    );
    assert!(tx.signed_message().starts_with(TX_NAMESPACE));
}

#[test]
fn a_signature_covers_exactly_its_transaction() {
    let commands = client_commands();
    let tx = signed(2, 1, commands[0].clone());
    let public_key = key(2).verifying_key().to_bytes();
    for other in &commands[1..] {
        let moved = SignedTx {
            command: other.clone(),
            ..tx.clone()
        };
        assert!(moved.verify(&public_key).is_err());
    }
    let renonced = SignedTx {
        nonce: 2,
        ..tx.clone()
    };
    assert!(renonced.verify(&public_key).is_err());

    // The same bytes signed without the namespace must not verify.
    let message = tx.signed_message();
    let bare = key(2).sign(&message[TX_NAMESPACE.len()..]).to_bytes();
    let undomained = SignedTx {
        signature: bare,
        ..tx.clone()
    };
    assert_eq!(
        undomained.verify(&public_key),
        Err(VerifyError::BadSignatures(vec![0]))
    );
}

#[test]
fn a_bad_signature_is_named_in_sequential_and_parallel_verification() {
    let mut batch = txs(200);
    assert_eq!(verify_batch(&batch, keys), Ok(()));
    batch[3].signature[0] ^= 1;
    batch[130].signature[40] ^= 1; // another chunk; breaks s
    batch[131].nonce += 1;
    let expected = Err(VerifyError::BadSignatures(vec![3, 130, 131]));
    assert_eq!(verify_batch(&batch, keys), expected);
    for threads in 0..6 {
        assert_eq!(verify_batch_parallel(&batch, keys, threads), expected);
    }
}

#[test]
fn zero_nonce_unknown_account_and_invalid_key_are_refused() {
    let mut batch = txs(150);
    batch[140].signature[0] ^= 1;
    batch[100] = signed(1, 0, client_commands()[2].clone());
    assert_eq!(verify_batch(&batch, keys), Err(VerifyError::ZeroNonce(100)));
    assert_eq!(
        verify_batch_parallel(&batch, keys, 3),
        Err(VerifyError::ZeroNonce(100))
    );
    batch[90].account = AccountId(1_000);
    assert_eq!(
        verify_batch_parallel(&batch, keys, 2),
        Err(VerifyError::UnknownAccount(90))
    );
    assert_eq!(
        batch[100].verify(&key(1).verifying_key().to_bytes()),
        Err(VerifyError::ZeroNonce(0))
    );

    let tx = signed(1, 1, client_commands()[0].clone());
    // The identity point: a weak key under which anyone could sign.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(tx.verify(&identity), Err(VerifyError::InvalidKey(0)));
    let not_a_point = (2u8..)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
        .unwrap();
    assert_eq!(tx.verify(&not_a_point), Err(VerifyError::InvalidKey(0)));
}

#[test]
fn errors_read_well() {
    let error = CodecError::BadVersion { found: 2 };
    assert_eq!(
        error.to_string(),
        "frame version 0x02 is not supported (this node speaks 0x01)"
    );
    assert_eq!(
        VerifyError::BadSignatures(vec![1, 4]).to_string(),
        "the signatures of transactions [1, 4] do not verify"
    );
}
