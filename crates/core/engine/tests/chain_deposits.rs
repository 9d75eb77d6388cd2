//! A chain deposit is credited only with n − f current committee members' signatures over the
//! same observation, once per outpoint; every forged or short certificate is refused by the one
//! rule, in the engine as in a replica; the command round-trips through both encodings.

#![allow(clippy::unwrap_used)]

use bulwark_engine::codec::{decode_system_command, encode_system_command};
use bulwark_engine::command::{Command, SystemCommand};
use bulwark_engine::deposit::{
    CertificateError, DepositCertificate, MemberSignature, ObservedDeposit,
};
use bulwark_engine::sentinel::SentinelConfig;
use bulwark_engine::{AccountId, Engine, EngineConfig, Event, RejectReason};
use bulwark_sentinel::Policy;
use ed25519_dalek::{Signer as _, SigningKey};

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

fn id(i: u8) -> [u8; 32] {
    key(i).verifying_key().to_bytes()
}

fn deposit(output: u32, amount: i64) -> ObservedDeposit {
    ObservedDeposit {
        chain: 2,
        txid: [9; 32],
        output,
        account: AccountId(1),
        amount,
    }
}

fn certificate(deposit: ObservedDeposit, signers: &[u8]) -> DepositCertificate {
    let mut signatures: Vec<MemberSignature> = signers
        .iter()
        .map(|i| MemberSignature {
            member: id(*i),
            signature: key(*i).sign(&deposit.signed_message()).to_bytes(),
        })
        .collect();
    signatures.sort();
    DepositCertificate {
        deposit,
        signatures,
    }
}

fn engine(n: u8) -> Engine {
    let mut engine = Engine::new(EngineConfig {
        sentinel: SentinelConfig {
            members: (0..n).map(id).collect(),
            policy: Policy::default(),
            ..SentinelConfig::default()
        },
        ..EngineConfig::default()
    });
    let mut events = Vec::new();
    engine.execute(
        0,
        &[Command::System(SystemCommand::OpenAccount {
            account: AccountId(1),
            public_key: [0; 32],
        })],
        &mut events,
    );
    engine
}

fn apply(engine: &mut Engine, certificate: DepositCertificate) -> Vec<Event> {
    let mut events = Vec::new();
    engine.execute(
        1_000,
        &[Command::System(SystemCommand::ChainDeposit(Box::new(
            certificate,
        )))],
        &mut events,
    );
    events
}

fn refused(events: &[Event]) -> Option<RejectReason> {
    events.iter().find_map(|e| match e {
        Event::Rejected { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[test]
fn n_minus_f_members_credit_a_deposit_once_and_fewer_credit_nothing() {
    for n in [4u8, 7] {
        let mut engine = engine(n);
        let quorum = usize::from(n) - usize::from(n - 1) / 3;
        let signers: Vec<u8> = (0..n).collect();
        // One short of the quorum: refused, nothing credited.
        let short = certificate(deposit(0, 5_000_000), &signers[..quorum - 1]);
        assert_eq!(
            refused(&apply(&mut engine, short)),
            Some(RejectReason::DepositRefused)
        );
        assert_eq!(engine.account(AccountId(1)).map(|a| a.cash), Some(0));
        let good = certificate(deposit(0, 5_000_000), &signers[..quorum]);
        let events = apply(&mut engine, good.clone());
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::ChainDepositCredited {
                    amount: 5_000_000,
                    ..
                }
            )),
            "{events:?}"
        );
        assert_eq!(
            engine.account(AccountId(1)).map(|a| a.cash),
            Some(5_000_000)
        );
        assert!(engine.totals().conserved());
        // The same outpoint again, even with every member's signature: refused.
        let all = certificate(deposit(0, 5_000_000), &signers);
        assert_eq!(
            refused(&apply(&mut engine, all)),
            Some(RejectReason::DepositAlreadyCredited)
        );
        // The credited set is under the state root and survives a snapshot.
        let restored = Engine::restore(&engine.snapshot()).expect("restores");
        assert_eq!(restored.state_root(), engine.state_root());
        let mut restored = restored;
        assert_eq!(
            refused(&apply(&mut restored, good)),
            Some(RejectReason::DepositAlreadyCredited)
        );
    }
}

#[test]
fn every_forged_certificate_is_refused_by_the_one_rule() {
    let members: Vec<[u8; 32]> = (0..4).map(id).collect();
    let good = certificate(deposit(3, 70), &[0, 1, 2]);
    good.check(&members).unwrap();
    let check = |c: &DepositCertificate| c.check(&members).unwrap_err();
    let mut twice = good.clone();
    twice.signatures[1] = twice.signatures[0];
    assert!(matches!(check(&twice), CertificateError::Signers(_)));
    let mut unsorted = good.clone();
    unsorted.signatures.swap(0, 2);
    assert!(matches!(check(&unsorted), CertificateError::Signers(_)));
    let stranger = certificate(deposit(3, 70), &[0, 1, 9]);
    assert!(matches!(check(&stranger), CertificateError::NotAMember(_)));
    let mut inflated = good.clone();
    inflated.deposit.amount = 7_000;
    assert!(matches!(
        check(&inflated),
        CertificateError::BadSignature(_)
    ));
    let mut redirected = good.clone();
    redirected.deposit.account = AccountId(2);
    assert!(matches!(
        check(&redirected),
        CertificateError::BadSignature(_)
    ));
    let zero = certificate(deposit(3, 0), &[0, 1, 2]);
    assert!(matches!(check(&zero), CertificateError::Amount(0)));
    let mut many = good.clone();
    many.signatures = vec![good.signatures[0]; 5];
    assert!(matches!(check(&many), CertificateError::Signers(_)));
    // In the engine: refused alike; an unknown account; and no committee at all.
    let mut engine = engine(4);
    assert_eq!(
        refused(&apply(&mut engine, inflated)),
        Some(RejectReason::DepositRefused)
    );
    let nobody = DepositCertificate {
        deposit: ObservedDeposit {
            account: AccountId(77),
            ..good.deposit
        },
        ..certificate(
            ObservedDeposit {
                account: AccountId(77),
                ..good.deposit
            },
            &[0, 1, 2],
        )
    };
    assert_eq!(
        refused(&apply(&mut engine, nobody)),
        Some(RejectReason::UnknownAccount)
    );
    let mut bare = Engine::new(EngineConfig::default());
    assert_eq!(
        refused(&apply(&mut bare, good)),
        Some(RejectReason::SentinelNotConfigured)
    );
}

#[test]
fn the_command_round_trips_and_truncated_or_oversized_bytes_are_typed_errors() {
    let command = SystemCommand::ChainDeposit(Box::new(certificate(deposit(1, 42), &[0, 1, 2])));
    let bytes = encode_system_command(&command);
    assert_eq!(decode_system_command(&bytes).unwrap(), command);
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            decode_system_command(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let json = serde_json::to_string(&command).unwrap();
    assert!(json.contains("\"type\":\"chain_deposit\""), "{json}");
    assert_eq!(
        serde_json::from_str::<SystemCommand>(&json).unwrap(),
        command
    );
    // A signature count beyond any committee is refused before anything is read for it.
    let mut oversized = bytes.clone();
    let count_at = bytes.len() - 3 * 96 - 2;
    oversized[count_at..count_at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(decode_system_command(&oversized).is_err());
}
