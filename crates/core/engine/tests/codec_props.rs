//! Property tests of the public codec API: every value round-trips to identical bytes, and no
//! input, random or a mutation of a valid encoding, makes a decoder panic or accept a
//! non-canonical encoding.

use bulwark_engine::codec::{
    decode_batch, decode_client_command, decode_command, decode_system_command, encode_batch,
    encode_client_command, encode_command, encode_system_command, SignedTx, FRAME_BYTES_MAX,
};
use bulwark_engine::command::{
    AccountId, ClientCommand, Command, InstrumentId, LimitOrder, OrderId, SelfTradePrevention,
    Side, StopDirection, StopOrder, SystemCommand, TimeInForce,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn tif() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![
        Just(TimeInForce::Gtc),
        Just(TimeInForce::Ioc),
        Just(TimeInForce::Fok)
    ]
}

fn stp() -> impl Strategy<Value = SelfTradePrevention> {
    prop_oneof![
        Just(SelfTradePrevention::CancelResting),
        Just(SelfTradePrevention::CancelIncoming),
        Just(SelfTradePrevention::CancelBoth)
    ]
}

fn limit_order() -> impl Strategy<Value = LimitOrder> {
    (
        any::<u32>(),
        side(),
        any::<i64>(),
        any::<i64>(),
        tif(),
        any::<bool>(),
        any::<bool>(),
        stp(),
        any::<u64>(),
    )
        .prop_map(
            |(instrument, side, price, qty, tif, post_only, reduce_only, stp, client_order_id)| {
                LimitOrder {
                    instrument: InstrumentId(instrument),
                    side,
                    price,
                    qty,
                    tif,
                    post_only,
                    reduce_only,
                    stp,
                    client_order_id,
                }
            },
        )
}

fn client_command() -> impl Strategy<Value = ClientCommand> {
    prop_oneof![
        limit_order().prop_map(ClientCommand::Limit),
        (
            any::<u32>(),
            side(),
            any::<i64>(),
            any::<bool>(),
            any::<u64>()
        )
            .prop_map(|(instrument, side, qty, reduce_only, client_order_id)| {
                ClientCommand::Market {
                    instrument: InstrumentId(instrument),
                    side,
                    qty,
                    reduce_only,
                    client_order_id,
                }
            }),
        (any::<u32>(), any::<u64>()).prop_map(|(instrument, order_id)| ClientCommand::Cancel {
            instrument: InstrumentId(instrument),
            order_id: OrderId(order_id),
        }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
            proptest::option::of(any::<i64>())
        )
            .prop_map(|(instrument, order_id, price, qty, expect_qty)| {
                ClientCommand::Amend {
                    instrument: InstrumentId(instrument),
                    order_id: OrderId(order_id),
                    price,
                    qty,
                    expect_qty,
                }
            }),
        any::<u32>().prop_map(|within_ms| ClientCommand::SessionHeartbeat { within_ms }),
        proptest::option::of(any::<u32>()).prop_map(|instrument| ClientCommand::MassCancel {
            instrument: instrument.map(InstrumentId),
        }),
        (any::<i64>(), any::<[u8; 32]>(), any::<bool>()).prop_map(
            |(amount, destination, ed25519)| ClientCommand::Withdraw {
                amount,
                destination,
                chain: if ed25519 {
                    bulwark_engine::PayoutChain::Ed25519
                } else {
                    bulwark_engine::PayoutChain::Bitcoin
                },
            }
        ),
        (
            (any::<u32>(), side(), any::<bool>(), any::<i64>()),
            (
                proptest::option::of(any::<i64>()),
                any::<i64>(),
                any::<bool>(),
                any::<u64>()
            )
        )
            .prop_map(
                |(
                    (instrument, side, rises, trigger_price),
                    (limit_price, qty, reduce_only, client_order_id),
                )| {
                    ClientCommand::Stop(StopOrder {
                        instrument: InstrumentId(instrument),
                        side,
                        direction: if rises {
                            StopDirection::Rises
                        } else {
                            StopDirection::Falls
                        },
                        trigger_price,
                        limit_price,
                        qty,
                        reduce_only,
                        client_order_id,
                    })
                }
            ),
    ]
}

fn system_command() -> impl Strategy<Value = SystemCommand> {
    prop_oneof![
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(account, public_key)| {
            SystemCommand::OpenAccount {
                account: AccountId(account),
                public_key,
            }
        }),
        (any::<u64>(), any::<i64>()).prop_map(|(account, amount)| SystemCommand::Deposit {
            account: AccountId(account),
            amount,
        }),
        (any::<u16>(), any::<i64>()).prop_map(|(underlying, price_micros)| {
            SystemCommand::IndexPrice {
                underlying,
                price_micros,
            }
        }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), client_command()).prop_map(|(account, nonce, command)| {
            Command::Client {
                account: AccountId(account),
                nonce,
                command,
            }
        }),
        system_command().prop_map(Command::System),
    ]
}

/// A transaction with an arbitrary (not necessarily valid) signature.
fn signed_tx() -> impl Strategy<Value = SignedTx> {
    (
        any::<u64>(),
        any::<u64>(),
        client_command(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(account, nonce, command, r, s)| {
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&r);
            signature[32..].copy_from_slice(&s);
            SignedTx {
                account: AccountId(account),
                nonce,
                command,
                signature,
            }
        })
}

/// Decodes `bytes` with every decoder; whatever decodes must re-encode to exactly `bytes`.
fn assert_decoders_are_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(value) = decode_command(bytes) {
        prop_assert_eq!(encode_command(&value), bytes);
    }
    if let Ok(value) = decode_client_command(bytes) {
        prop_assert_eq!(encode_client_command(&value), bytes);
    }
    if let Ok(value) = decode_system_command(bytes) {
        prop_assert_eq!(encode_system_command(&value), bytes);
    }
    if let Ok(value) = SignedTx::decode(bytes) {
        prop_assert!(bytes.len() <= FRAME_BYTES_MAX);
        prop_assert_eq!(value.encode(), bytes);
    }
    if let Ok(txs) = decode_batch(bytes, 8) {
        prop_assert!(txs.len() <= 8);
        prop_assert_eq!(
            encode_batch(&txs).expect("a short batch must encode"),
            bytes
        );
    }
    Ok(())
}

/// A valid encoding with one byte changed, a cut, or an insertion.
fn mutate(mut bytes: Vec<u8>, kind: u8, position: usize, byte: u8) -> Vec<u8> {
    let position = position % (bytes.len() + 1);
    match kind % 3 {
        0 if position < bytes.len() => bytes[position] = byte,
        1 => bytes.truncate(position),
        _ => bytes.insert(position, byte),
    }
    bytes
}

proptest! {
    #[test]
    fn commands_round_trip(value in command()) {
        let bytes = encode_command(&value);
        prop_assert!(bytes.len() <= FRAME_BYTES_MAX);
        prop_assert_eq!(decode_command(&bytes), Ok(value));
    }

    #[test]
    fn client_and_system_commands_round_trip(client in client_command(), system in system_command()) {
        prop_assert_eq!(decode_client_command(&encode_client_command(&client)), Ok(client));
        prop_assert_eq!(decode_system_command(&encode_system_command(&system)), Ok(system));
    }

    #[test]
    fn signed_txs_and_batches_round_trip(txs in proptest::collection::vec(signed_tx(), 0..12)) {
        for tx in &txs {
            prop_assert_eq!(SignedTx::decode(&tx.encode()), Ok(tx.clone()));
        }
        let bytes = encode_batch(&txs).expect("a short batch must encode");
        prop_assert_eq!(decode_batch(&bytes, txs.len()), Ok(txs));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        assert_decoders_are_canonical(&bytes)?;
    }

    #[test]
    fn mutated_encodings_never_panic(
        value in command(),
        tx in signed_tx(),
        kind in any::<u8>(),
        position in any::<usize>(),
        byte in any::<u8>(),
    ) {
        assert_decoders_are_canonical(&mutate(encode_command(&value), kind, position, byte))?;
        assert_decoders_are_canonical(&mutate(tx.encode(), kind, position, byte))?;
        let batch = encode_batch(&[tx.clone(), tx]).expect("a short batch must encode");
        assert_decoders_are_canonical(&mutate(batch, kind, position, byte))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn signing_then_verifying_succeeds_only_for_the_signed_bytes(
        seed in any::<[u8; 32]>(),
        account in any::<u64>(),
        nonce in 1..u64::MAX,
        command in client_command(),
        flip in 0..64usize,
    ) {
        let key = SigningKey::from_bytes(&seed);
        let public_key = key.verifying_key().to_bytes();
        let tx = SignedTx::sign(AccountId(account), nonce, command, &key);
        prop_assert_eq!(tx.verify(&public_key), Ok(()));
        let decoded = SignedTx::decode(&tx.encode()).expect("an encoded transaction must decode");
        prop_assert_eq!(decoded.verify(&public_key), Ok(()));
        let mut forged = tx;
        forged.signature[flip] ^= 0x01;
        prop_assert!(forged.verify(&public_key).is_err());
    }
}
