//! Trading sessions: a trader's logon signature opens a session whose key the gateway holds; the
//! session trades and cancels for the account and nothing else; a replayed, stale, forged or
//! overlong grant opens nothing; the trader can revoke it; it ends at its expiry; it survives a
//! snapshot; armed with a heartbeat, a session silent past its bound has the account's orders
//! cancelled by the committee itself (a gateway killed outright). Every transaction goes through `verify_batch` first, as in a block.
#![allow(clippy::unwrap_used)]

mod common;

use bulwark_engine::codec::{verify_batch, SignedTx, VerifyError};
use bulwark_engine::command::{LimitOrder, SelfTradePrevention, SystemCommand, TimeInForce};
use bulwark_engine::session::{
    SESSIONS_MAX, SESSION_LIFETIME_MAX_MS, SILENCE_MAX_MS, SILENCE_MIN_MS,
};
use bulwark_engine::{
    AccountId, ClientCommand, Command, Engine, EngineConfig, Event, PayoutChain, RejectReason,
    SessionGrant, Side,
};
use common::BTC;
use ed25519_dalek::SigningKey;

const T: u64 = 1_796_567_400_000;
const TRADER: AccountId = AccountId(5);

fn trader_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn session_key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[100 + i; 32])
}

fn engine() -> Engine {
    let mut engine = Engine::new(EngineConfig::default());
    let mut out = Vec::new();
    engine.execute(
        T,
        &[
            Command::System(SystemCommand::OpenAccount {
                account: TRADER,
                public_key: trader_key().verifying_key().to_bytes(),
            }),
            Command::System(SystemCommand::Deposit {
                account: TRADER,
                amount: 1_000_000_000_000,
            }),
            common::index_cmd(60_000),
        ],
        &mut out,
    );
    engine
}

fn grant(logon_ms: u64, key: &SigningKey) -> SessionGrant {
    SessionGrant {
        key: key.verifying_key().to_bytes(),
        expires_ms: logon_ms + 3_600_000,
        logon_ms,
        logon_nonce: [logon_ms as u8; 16],
        sender: "TRADER5".into(),
        target: "BULWARK-DC1".into(),
    }
}

/// The gateway's transaction opening `grant` at `slot`, signed by the trader's logon signature
/// (what the trader signed at logon, taken as is).
fn open(slot: u8, grant: SessionGrant, signer: &SigningKey) -> SignedTx {
    use ed25519_dalek::Signer as _;
    let signature = signer.sign(&grant.payload(TRADER)).to_bytes();
    SignedTx {
        account: TRADER.session(slot).unwrap(),
        nonce: grant.logon_ms,
        command: ClientCommand::OpenSession(grant),
        signature,
    }
}

fn buy(client_order_id: u64) -> ClientCommand {
    ClientCommand::Limit(LimitOrder {
        instrument: BTC,
        side: Side::Buy,
        price: 590_000,
        qty: 1,
        tif: TimeInForce::Gtc,
        post_only: false,
        reduce_only: false,
        stp: SelfTradePrevention::default(),
        client_order_id,
    })
}

/// A session's heartbeat arming `within_ms` (0 disarms), signed by its key.
fn beat(id: AccountId, nonce: u64, within_ms: u32, key: &SigningKey) -> SignedTx {
    SignedTx::sign(
        id,
        nonce,
        ClientCommand::SessionHeartbeat { within_ms },
        key,
    )
}

/// Verifies `txs` against the engine's keys (as a block's check does), then executes them.
fn run(engine: &mut Engine, at: u64, txs: &[SignedTx]) -> Result<Vec<Event>, VerifyError> {
    verify_batch(txs, |id| engine.key_of(id))?;
    let commands: Vec<Command> = txs.iter().cloned().map(SignedTx::into_command).collect();
    let mut out = Vec::new();
    engine.execute(at, &commands, &mut out);
    Ok(out)
}

fn rejections(events: &[Event]) -> Vec<RejectReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Rejected { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_logon_signature_opens_a_session_that_trades_for_the_account_and_cannot_withdraw() {
    let mut engine = engine();
    let key = session_key(0);
    let g = grant(T, &key);
    let events = run(&mut engine, T + 5, &[open(3, g.clone(), &trader_key())]).unwrap();
    assert!(events.contains(&Event::SessionOpened {
        account: TRADER,
        slot: 3,
        expires_ms: g.expires_ms
    }));
    let id = TRADER.session(3).unwrap();
    assert_eq!(id.as_session(), Some((TRADER, 3)));
    assert_eq!(engine.key_of(id), Some(key.verifying_key().to_bytes()));
    assert_eq!(engine.next_nonce(id), T + 1);

    // The session's key signs an order: it rests for the account.
    let order = SignedTx::sign(id, T + 1, buy(11), &key);
    let events = run(&mut engine, T + 10, std::slice::from_ref(&order)).unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Accepted { account, client_order_id: 11, .. } if *account == TRADER)),
        "{events:?}"
    );
    // Replayed: stale; the account's own nonce is untouched.
    assert_eq!(
        rejections(&run(&mut engine, T + 11, &[order]).unwrap()),
        [RejectReason::StaleNonce]
    );
    assert_eq!(engine.account(TRADER).unwrap().nonce, 0);
    // Signed by the trader's key instead of the session's: not a valid signature.
    let wrong = SignedTx::sign(id, T + 2, buy(12), &trader_key());
    assert!(matches!(
        run(&mut engine, T + 12, &[wrong]),
        Err(VerifyError::BadSignatures(_))
    ));
    // A withdrawal or another grant through the session: out of scope, nothing moves.
    let cash = engine.account(TRADER).unwrap().cash;
    let withdraw = SignedTx::sign(
        id,
        T + 3,
        ClientCommand::Withdraw {
            amount: 1_000_000,
            destination: [2; 32],
            chain: PayoutChain::Ed25519,
        },
        &key,
    );
    let another = SignedTx::sign(
        id,
        T + 4,
        ClientCommand::OpenSession(grant(T + 20, &key)),
        &key,
    );
    // (Signed by the session key over an ordinary message: the verifier checks a grant under
    // the account's key over the logon payload, so it fails there.)
    assert!(run(&mut engine, T + 13, &[another]).is_err());
    assert_eq!(
        rejections(&run(&mut engine, T + 13, &[withdraw]).unwrap()),
        [RejectReason::OutsideSessionScope]
    );
    assert_eq!(engine.account(TRADER).unwrap().cash, cash);
    // Mass cancel through the session (cancel-on-disconnect), then the gateway closes it.
    let events = run(
        &mut engine,
        T + 14,
        &[
            SignedTx::sign(
                id,
                T + 5,
                ClientCommand::MassCancel { instrument: None },
                &key,
            ),
            SignedTx::sign(
                id,
                T + 6,
                ClientCommand::CloseSession {
                    slot: 3,
                    cancel_placed: false,
                },
                &key,
            ),
        ],
    )
    .unwrap();
    assert!(
        events.iter().any(|e| matches!(e, Event::Cancelled { .. })),
        "{events:?}"
    );
    assert!(events.contains(&Event::SessionClosed {
        account: TRADER,
        slot: 3,
        expired: false
    }));
    assert_eq!(engine.key_of(id), None);
    // Nothing signed by that key counts any more.
    assert!(matches!(
        run(
            &mut engine,
            T + 15,
            &[SignedTx::sign(id, T + 7, buy(13), &key)]
        ),
        Err(VerifyError::UnknownAccount(0))
    ));
}

#[test]
fn a_replayed_stale_forged_or_overlong_grant_opens_nothing() {
    let mut engine = engine();
    let key = session_key(1);
    // Signed by someone else: the verifier refuses it.
    assert!(matches!(
        run(&mut engine, T, &[open(0, grant(T, &key), &session_key(9))]),
        Err(VerifyError::BadSignatures(_))
    ));
    // The gateway edits the signed fields (the sender, the time): the signature fails.
    let mut edited = open(0, grant(T, &key), &trader_key());
    if let ClientCommand::OpenSession(g) = &mut edited.command {
        g.sender = "MALLORY".into();
    }
    assert!(run(&mut engine, T, &[edited]).is_err());
    // A node that sees the grant puts its own key in: the trader signed the session key, so the
    // signature fails.
    let mut swapped = open(0, grant(T, &key), &trader_key());
    if let ClientCommand::OpenSession(g) = &mut swapped.command {
        g.key = session_key(7).verifying_key().to_bytes();
    }
    assert!(matches!(
        run(&mut engine, T, &[swapped]),
        Err(VerifyError::BadSignatures(_))
    ));
    // The unsigned parts are the gateway's: slot, nonce, expiry. A lifetime beyond a day,
    // or an expiry already past, is refused by every replica.
    let mut long = grant(T, &key);
    long.expires_ms = T + SESSION_LIFETIME_MAX_MS + 1;
    let mut past = grant(T, &key);
    past.expires_ms = T;
    for g in [long, past] {
        let events = run(&mut engine, T, &[open(0, g, &trader_key())]).unwrap();
        assert_eq!(rejections(&events), [RejectReason::SessionRefused]);
    }
    // More than 10 s from the block's time either way: refused.
    for logon in [T - 10_001, T + 10_001] {
        let events = run(
            &mut engine,
            T,
            &[open(0, grant(logon, &key), &trader_key())],
        )
        .unwrap();
        assert_eq!(rejections(&events), [RejectReason::SessionRefused]);
    }
    // A good one opens; the same signature again, at another slot, does not (not newer).
    let g = grant(T, &key);
    let events = run(&mut engine, T, &[open(0, g.clone(), &trader_key())]).unwrap();
    assert!(rejections(&events).is_empty(), "{events:?}");
    let events = run(&mut engine, T + 1, &[open(1, g, &trader_key())]).unwrap();
    assert_eq!(rejections(&events), [RejectReason::SessionRefused]);
    // A taken slot, then the limit of sessions per account.
    let events = run(
        &mut engine,
        T + 2,
        &[open(0, grant(T + 1, &key), &trader_key())],
    )
    .unwrap();
    assert_eq!(rejections(&events), [RejectReason::TooManySessions]);
    for slot in 1..SESSIONS_MAX as u8 {
        let events = run(
            &mut engine,
            T + 10 + u64::from(slot),
            &[open(
                slot,
                grant(T + 10 + u64::from(slot), &key),
                &trader_key(),
            )],
        )
        .unwrap();
        assert!(rejections(&events).is_empty(), "{events:?}");
    }
    let events = run(
        &mut engine,
        T + 100,
        &[open(200, grant(T + 100, &key), &trader_key())],
    )
    .unwrap();
    assert_eq!(rejections(&events), [RejectReason::TooManySessions]);
    // An account cannot open a session under its own id, nor can an account be opened under a
    // session's id.
    use ed25519_dalek::Signer as _;
    let g = grant(T + 200, &key);
    let own = SignedTx {
        account: TRADER,
        nonce: 1,
        signature: trader_key().sign(&g.payload(TRADER)).to_bytes(),
        command: ClientCommand::OpenSession(g),
    };
    // Under the account's id the signature must be over the ordinary message: it fails.
    assert!(run(&mut engine, T + 200, &[own]).is_err());
    let own = SignedTx::sign(
        TRADER,
        1,
        ClientCommand::OpenSession(grant(T + 200, &key)),
        &trader_key(),
    );
    let events = run(&mut engine, T + 200, &[own]).unwrap();
    assert_eq!(rejections(&events), [RejectReason::OutsideSessionScope]);
    let mut out = Vec::new();
    engine.execute(
        T + 201,
        &[Command::System(SystemCommand::OpenAccount {
            account: TRADER.session(1).unwrap(),
            public_key: [7; 32],
        })],
        &mut out,
    );
    assert_eq!(rejections(&out), [RejectReason::ReservedAccountId]);
}

#[test]
fn the_trader_revokes_a_session_and_a_session_ends_at_its_expiry() {
    let mut engine = engine();
    let key = session_key(2);
    let mut g = grant(T, &key);
    g.expires_ms = T + 60_000;
    run(&mut engine, T, &[open(4, g, &trader_key())]).unwrap();
    run(
        &mut engine,
        T + 1,
        &[open(5, grant(T + 1, &key), &trader_key())],
    )
    .unwrap();
    // Revocation with the account's key.
    let events = run(
        &mut engine,
        T + 2,
        &[SignedTx::sign(
            TRADER,
            1,
            ClientCommand::CloseSession {
                slot: 5,
                cancel_placed: false,
            },
            &trader_key(),
        )],
    )
    .unwrap();
    assert!(events.contains(&Event::SessionClosed {
        account: TRADER,
        slot: 5,
        expired: false
    }));
    // A session closing another's slot: out of scope.
    let id = TRADER.session(4).unwrap();
    let events = run(
        &mut engine,
        T + 3,
        &[SignedTx::sign(
            id,
            T + 1,
            ClientCommand::CloseSession {
                slot: 6,
                cancel_placed: false,
            },
            &key,
        )],
    )
    .unwrap();
    assert_eq!(rejections(&events), [RejectReason::OutsideSessionScope]);
    // The snapshot keeps the session.
    let restored = Engine::restore(&engine.snapshot()).unwrap();
    assert_eq!(restored.state_root(), engine.state_root());
    assert_eq!(restored.key_of(id), Some(key.verifying_key().to_bytes()));
    // At its expiry it is gone: the order is refused and the slot freed.
    let events = run(
        &mut engine,
        T + 60_000,
        &[SignedTx::sign(id, T + 2, buy(1), &key)],
    )
    .unwrap();
    assert_eq!(rejections(&events), [RejectReason::NoSession]);
    assert!(events.contains(&Event::SessionClosed {
        account: TRADER,
        slot: 4,
        expired: true
    }));
    assert_eq!(engine.key_of(id), None);
}

#[test]
fn grants_round_trip_and_bad_comp_ids_are_typed_errors() {
    let g = grant(T, &session_key(3));
    let tx = open(7, g, &trader_key());
    assert_eq!(SignedTx::decode(&tx.encode()).unwrap(), tx);
    for bad in ["", "has space", "ÄÖ", &"x".repeat(33)] {
        let mut g = grant(T, &session_key(3));
        g.sender = bad.to_string();
        let bytes = open(7, g, &trader_key()).encode();
        assert!(SignedTx::decode(&bytes).is_err(), "{bad:?}");
    }
    // Every truncation is an error, never a panic.
    let bytes = tx.encode();
    for cut in 0..bytes.len() {
        assert!(SignedTx::decode(&bytes[..cut]).is_err());
    }
}

fn resting(engine: &Engine, account: AccountId) -> usize {
    engine.book(BTC).map_or(0, |b| b.orders_of(account).len())
}

/// Empty batches every second from `from` to `to` (block times), the events of all.
fn advance(engine: &mut Engine, from: u64, to: u64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        at = (at + 1_000).min(to);
        engine.execute(at, &[], &mut out);
    }
    out
}

#[test]
fn a_session_silent_past_its_heartbeat_has_its_orders_cancelled_by_the_committee() {
    let mut engine = engine();
    let key = session_key(3);
    run(&mut engine, T, &[open(2, grant(T, &key), &trader_key())]).unwrap();
    let id = TRADER.session(2).unwrap();
    let session_beat = |nonce: u64, within_ms: u32| beat(id, nonce, within_ms, &key);
    // Out of bounds, or under the account's own id: refused, nothing armed.
    for (nonce, within_ms) in [(T + 1, SILENCE_MIN_MS - 1), (T + 2, SILENCE_MAX_MS + 1)] {
        let events = run(&mut engine, T + 1, &[session_beat(nonce, within_ms)]).unwrap();
        assert_eq!(rejections(&events), [RejectReason::BadHeartbeat]);
    }
    let own = beat(TRADER, 1, 30_000, &trader_key());
    assert_eq!(
        rejections(&run(&mut engine, T + 1, &[own]).unwrap()),
        [RejectReason::BadHeartbeat]
    );
    // Armed at 30 s, with an order resting.
    let events = run(
        &mut engine,
        T + 1_000,
        &[
            session_beat(T + 3, 30_000),
            SignedTx::sign(id, T + 4, buy(21), &key),
        ],
    )
    .unwrap();
    assert!(rejections(&events).is_empty(), "{events:?}");
    assert_eq!(resting(&engine, TRADER), 1);
    // A heartbeat out of bounds is refused and leaves the armed bound as it was.
    let events = run(&mut engine, T + 2_000, &[session_beat(T + 5, 1)]).unwrap();
    assert_eq!(rejections(&events), [RejectReason::BadHeartbeat]);
    // An order at 20 s is heard: at 45 s (past the first bound) nothing happens.
    assert!(advance(&mut engine, T + 2_000, T + 20_000).is_empty());
    run(
        &mut engine,
        T + 20_000,
        &[SignedTx::sign(id, T + 6, buy(22), &key)],
    )
    .unwrap();
    let quiet = advance(&mut engine, T + 20_000, T + 45_000);
    assert!(quiet.is_empty(), "{quiet:?}");
    assert_eq!(engine.key_of(id), Some(key.verifying_key().to_bytes()));
    // The snapshot keeps the armed bound: a restored engine silences the session alike.
    let mut restored = Engine::restore(&engine.snapshot()).unwrap();
    // Silent from 20 s: at 50 s the committee cancels the session's orders and closes it.
    let out = advance(&mut engine, T + 45_000, T + 50_000);
    assert_eq!(
        out.first(),
        Some(&Event::SessionSilent {
            account: TRADER,
            slot: 2,
            within_ms: 30_000
        })
    );
    let cancelled = out
        .iter()
        .filter(|e| matches!(e, Event::Cancelled { .. }))
        .count();
    assert_eq!(cancelled, 2, "{out:?}");
    assert_eq!(
        out.last(),
        Some(&Event::SessionClosed {
            account: TRADER,
            slot: 2,
            expired: false
        })
    );
    assert_eq!(resting(&engine, TRADER), 0);
    assert_eq!(engine.key_of(id), None);
    let again = advance(&mut restored, T + 45_000, T + 50_000);
    assert_eq!(again, out);
    assert_eq!(restored.state_root(), engine.state_root());
    // Nothing signed by that key counts any more.
    assert!(matches!(
        run(&mut engine, T + 51_000, &[session_beat(T + 7, 30_000)]),
        Err(VerifyError::UnknownAccount(0))
    ));
}

/// A resting stop (sell if the price falls to 1).
fn stop(client_order_id: u64) -> ClientCommand {
    ClientCommand::Stop(bulwark_engine::command::StopOrder {
        instrument: BTC,
        side: Side::Sell,
        direction: bulwark_engine::command::StopDirection::Falls,
        trigger_price: 1,
        limit_price: None,
        qty: 1,
        reduce_only: false,
        client_order_id,
    })
}

/// The ids of the orders and stops cancelled in `events`, in order.
fn cancelled(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Cancelled { order_id, .. } | Event::StopCancelled { order_id, .. } => {
                Some(order_id.0)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn silence_cancels_only_the_silent_sessions_orders_and_a_leaders_clock_gains_little() {
    let mut engine = engine();
    let (k1, k2) = (session_key(6), session_key(7));
    run(&mut engine, T, &[open(1, grant(T, &k1), &trader_key())]).unwrap();
    let (s1, s2) = (TRADER.session(1).unwrap(), TRADER.session(2).unwrap());
    let stop = stop(40);
    run(
        &mut engine,
        T + 100,
        &[
            beat(s1, T + 1, 20_000, &k1),
            SignedTx::sign(s1, T + 2, buy(41), &k1),
            SignedTx::sign(s1, T + 3, stop.clone(), &k1),
            // The trader's own order.
            SignedTx::sign(TRADER, 1, buy(42), &trader_key()),
        ],
    )
    .unwrap();
    // The trader fails over: a second session (another gateway) rests an order and a stop.
    run(
        &mut engine,
        T + 900,
        &[open(2, grant(T + 900, &k2), &trader_key())],
    )
    .unwrap();
    let events = run(
        &mut engine,
        T + 1_000,
        &[
            SignedTx::sign(s2, T + 901, buy(43), &k2),
            SignedTx::sign(s2, T + 902, stop, &k2),
        ],
    )
    .unwrap();
    assert!(rejections(&events).is_empty(), "{events:?}");
    assert_eq!(resting(&engine, TRADER), 3);
    // At 10 s a leader stamps its block 10.2 s ahead, past the bound by block time: the
    // session clock moves by 1 s only, nothing falls silent, and the honest blocks after it
    // (their times behind the leader's) move it not at all.
    let mut out = advance(&mut engine, T + 1_000, T + 10_000);
    engine.execute(T + 20_200, &[], &mut out);
    for at in (11..=20).map(|s| T + s * 1_000) {
        engine.execute(at, &[], &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    assert!(engine.key_of(s1).is_some());
    // Session 1 falls silent: its order and stop go; the other session's and the trader's own
    // stay.
    let out = advance(&mut engine, T + 20_200, T + 40_000);
    assert!(out.contains(&Event::SessionSilent {
        account: TRADER,
        slot: 1,
        within_ms: 20_000
    }));
    assert_eq!(cancelled(&out).len(), 2, "{out:?}");
    assert_eq!(resting(&engine, TRADER), 2);
    assert_eq!(engine.key_of(s1), None);
    assert!(engine.key_of(s2).is_some());
}

#[test]
fn closing_a_session_with_cancel_placed_takes_only_what_that_session_placed() {
    let mut engine = engine();
    let (k1, k2) = (session_key(10), session_key(11));
    run(&mut engine, T, &[open(1, grant(T, &k1), &trader_key())]).unwrap();
    run(
        &mut engine,
        T + 1,
        &[open(2, grant(T + 1, &k2), &trader_key())],
    )
    .unwrap();
    let (s1, s2) = (TRADER.session(1).unwrap(), TRADER.session(2).unwrap());
    // Each session (two gateways, after a failover) rests an order and a stop; the trader
    // rests one with its own key.
    let events = run(
        &mut engine,
        T + 10,
        &[
            SignedTx::sign(s1, T + 2, buy(61), &k1),
            SignedTx::sign(s1, T + 3, stop(60), &k1),
            SignedTx::sign(s2, T + 2, buy(62), &k2),
            SignedTx::sign(s2, T + 3, stop(63), &k2),
            SignedTx::sign(TRADER, 1, buy(64), &trader_key()),
        ],
    )
    .unwrap();
    assert!(rejections(&events).is_empty(), "{events:?}");
    assert_eq!(resting(&engine, TRADER), 3);
    let close = |slot| ClientCommand::CloseSession {
        slot,
        cancel_placed: true,
    };
    // Gateway 1 loses its trader: one transaction cancels session 1's order and stop, then
    // closes it. Session 2's and the trader's own stay.
    let out = run(
        &mut engine,
        T + 20,
        &[SignedTx::sign(s1, T + 4, close(1), &k1)],
    )
    .unwrap();
    assert_eq!(cancelled(&out).len(), 2, "{out:?}");
    assert!(
        matches!(
            out.last(),
            Some(Event::SessionClosed {
                slot: 1,
                expired: false,
                ..
            })
        ),
        "{out:?}"
    );
    assert_eq!(resting(&engine, TRADER), 2);
    assert_eq!(engine.key_of(s1), None);
    assert!(engine.key_of(s2).is_some());
    // Closed is closed: a second close is refused and cancels nothing.
    let out = run(
        &mut engine,
        T + 30,
        &[SignedTx::sign(TRADER, 2, close(1), &trader_key())],
    )
    .unwrap();
    assert_eq!(rejections(&out), vec![RejectReason::NoSession]);
    assert!(cancelled(&out).is_empty(), "{out:?}");
    // The trader revokes session 2 the same way with its own key: its order and stop go, the
    // trader's own order stays.
    let out = run(
        &mut engine,
        T + 40,
        &[SignedTx::sign(TRADER, 3, close(2), &trader_key())],
    )
    .unwrap();
    assert_eq!(cancelled(&out).len(), 2, "{out:?}");
    assert_eq!(resting(&engine, TRADER), 1);
    assert_eq!(engine.key_of(s2), None);
    // An unarmed session whose gateway's close comes just after its expiry: the close finds it
    // expired (NoSession) and still cancels what it placed.
    let k3 = session_key(12);
    let mut short = grant(T + 50, &k3);
    short.expires_ms = T + 10_000;
    run(&mut engine, T + 50, &[open(3, short, &trader_key())]).unwrap();
    let s3 = TRADER.session(3).unwrap();
    run(
        &mut engine,
        T + 60,
        &[SignedTx::sign(s3, T + 51, buy(65), &k3)],
    )
    .unwrap();
    assert_eq!(resting(&engine, TRADER), 2);
    let out = run(
        &mut engine,
        T + 10_000,
        &[SignedTx::sign(s3, T + 52, close(3), &k3)],
    )
    .unwrap();
    assert_eq!(rejections(&out), vec![RejectReason::NoSession]);
    assert_eq!(cancelled(&out).len(), 1, "{out:?}");
    assert_eq!(resting(&engine, TRADER), 1);
}

#[test]
fn a_disarmed_or_closed_session_leaves_later_orders_alone() {
    let mut engine = engine();
    let (k1, k2) = (session_key(4), session_key(5));
    run(&mut engine, T, &[open(1, grant(T, &k1), &trader_key())]).unwrap();
    run(
        &mut engine,
        T + 1,
        &[open(2, grant(T + 1, &k2), &trader_key())],
    )
    .unwrap();
    let (s1, s2) = (TRADER.session(1).unwrap(), TRADER.session(2).unwrap());
    run(
        &mut engine,
        T + 10,
        &[
            beat(s1, T + 1, 20_000, &k1),
            beat(s2, T + 2, 20_000, &k2),
            // Session 1 disarms; session 2 closes itself (a gateway's logout).
            beat(s1, T + 2, 0, &k1),
            SignedTx::sign(
                s2,
                T + 3,
                ClientCommand::CloseSession {
                    slot: 2,
                    cancel_placed: false,
                },
                &k2,
            ),
            // The trader's own order, then one through session 1.
            SignedTx::sign(TRADER, 1, buy(31), &trader_key()),
            SignedTx::sign(s1, T + 3, buy(32), &k1),
        ],
    )
    .unwrap();
    assert_eq!(resting(&engine, TRADER), 2);
    let out = advance(&mut engine, T + 10, T + 60_000);
    assert!(
        !out.iter()
            .any(|e| matches!(e, Event::SessionSilent { .. } | Event::Cancelled { .. })),
        "{out:?}"
    );
    assert_eq!(resting(&engine, TRADER), 2);
    // The trader's revocation of an armed session takes its bound with it.
    run(
        &mut engine,
        T + 60_001,
        &[
            beat(s1, T + 4, 20_000, &k1),
            SignedTx::sign(
                TRADER,
                2,
                ClientCommand::CloseSession {
                    slot: 1,
                    cancel_placed: false,
                },
                &trader_key(),
            ),
        ],
    )
    .unwrap();
    let out = advance(&mut engine, T + 60_001, T + 120_000);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(resting(&engine, TRADER), 2);
}

#[test]
fn an_amended_order_stays_its_sessions_and_an_armed_session_ending_at_expiry_cancels_its_orders() {
    let mut engine = engine();
    let (k1, k2) = (session_key(8), session_key(9));
    let mut short = grant(T, &k1);
    short.expires_ms = T + 100_000;
    run(&mut engine, T, &[open(1, short, &trader_key())]).unwrap();
    let s1 = TRADER.session(1).unwrap();
    let events = run(
        &mut engine,
        T + 100,
        &[
            beat(s1, T + 1, 20_000, &k1),
            SignedTx::sign(s1, T + 2, buy(51), &k1),
        ],
    )
    .unwrap();
    let order_id = events
        .iter()
        .find_map(|e| match e {
            Event::Accepted { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .unwrap();
    // The trader amends it with its own key to another price (it loses its priority and is
    // placed again): it is still session 1's.
    let amend = ClientCommand::Amend {
        instrument: BTC,
        order_id,
        price: 589_000,
        qty: 1,
        expect_qty: Some(1),
    };
    let events = run(
        &mut engine,
        T + 200,
        &[SignedTx::sign(TRADER, 1, amend, &trader_key())],
    )
    .unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Amended {
                kept_priority: false,
                ..
            }
        )),
        "{events:?}"
    );
    let out = advance(&mut engine, T + 200, T + 30_000);
    assert!(
        out.iter()
            .any(|e| matches!(e, Event::Cancelled { order_id: o, .. } if *o == order_id)),
        "{out:?}"
    );
    assert_eq!(resting(&engine, TRADER), 0);

    // An armed session heard until its expiry: the transaction that finds it expired ends it,
    // and what it placed is cancelled.
    let mut long = grant(T + 30_000, &k2);
    long.expires_ms = T + 90_000;
    run(&mut engine, T + 30_000, &[open(2, long, &trader_key())]).unwrap();
    let s2 = TRADER.session(2).unwrap();
    run(
        &mut engine,
        T + 30_100,
        &[
            beat(s2, T + 30_001, 60_000, &k2),
            SignedTx::sign(s2, T + 30_002, buy(52), &k2),
        ],
    )
    .unwrap();
    let mut at = T + 30_100;
    let mut nonce = T + 30_003;
    while at < T + 90_000 {
        at += 1_000;
        let events = run(&mut engine, at, &[beat(s2, nonce, 60_000, &k2)]).unwrap();
        nonce += 1;
        if at < T + 90_000 {
            assert!(rejections(&events).is_empty(), "{events:?}");
        } else {
            assert_eq!(rejections(&events), [RejectReason::NoSession]);
            assert!(
                events.iter().any(|e| matches!(e, Event::Cancelled { .. })),
                "{events:?}"
            );
        }
    }
    assert_eq!(resting(&engine, TRADER), 0);
}
