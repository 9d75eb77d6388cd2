//! Members joining at the next epoch through the engine: a newcomer takes a removed member's
//! seat on f+1 affirmations and an operator quorum, every replica agrees, a refused admission
//! moves nothing, a join that does not come lapses, and the whole trust state survives a
//! snapshot.

mod common;

use bulwark_engine::command::{Command, SystemCommand};
use bulwark_engine::event::{Event, RejectReason};
use bulwark_engine::{Engine, EngineConfig};
use bulwark_sentinel::membership::Trust;
use bulwark_sentinel::Policy;
use common::sentinel::{id, replacement, sorted, system};

const NOW_MS: u64 = 50_000;

/// Members 0..4, three operators of whom two approve.
fn engine() -> Engine {
    Engine::new(EngineConfig {
        sentinel: common::sentinel::config(),
        ..EngineConfig::default()
    })
}

/// Member 3 convicted by members 0 and 1 and removed at epoch 1.
fn remove_member_3(engine: &mut Engine) {
    common::sentinel::remove_member_3(engine, NOW_MS);
}

const REFUSED: Event = Event::Rejected {
    account: None,
    client_order_id: 0,
    reason: RejectReason::AdmitRefused,
};

#[test]
fn a_newcomer_joins_at_the_next_epoch_on_every_replica_alike() {
    let mut a = engine();
    let mut b = engine();
    for replica in [&mut a, &mut b] {
        remove_member_3(replica);
        // One operator is not the quorum: refused.
        let events = system(replica, NOW_MS + 1, replacement(9, &[0, 1], &[1], NOW_MS));
        assert!(events.contains(&REFUSED), "{events:?}");
        let events = system(
            replica,
            NOW_MS + 2,
            replacement(9, &[0, 1], &[0, 2], NOW_MS),
        );
        assert!(
            events.contains(&Event::Joining {
                member: id(9),
                epoch: 1,
                replaces: Some(id(3))
            }),
            "{events:?}"
        );
    }
    assert_eq!(a.state_root(), b.state_root());
    let restored = Engine::restore(&a.snapshot()).expect("restores");
    assert_eq!(restored.state_root(), a.state_root());
    assert!(matches!(
        restored.membership().and_then(|m| m.trust(&id(9))),
        Some(Trust::Joining { .. })
    ));
    // The next epoch must name the newcomer: without it the change is refused.
    let without = system(
        &mut a,
        NOW_MS + 3,
        SystemCommand::NewEpoch {
            epoch: 2,
            members: sorted((0..3).map(id).collect()),
            key: [8; 32],
        },
    );
    assert!(without.contains(&Event::Rejected {
        account: None,
        client_order_id: 0,
        reason: RejectReason::EpochRefused
    }));
    let mut next: Vec<[u8; 32]> = (0..3).map(id).collect();
    next.push(id(9));
    let events = system(
        &mut a,
        NOW_MS + 3,
        SystemCommand::NewEpoch {
            epoch: 2,
            members: sorted(next),
            key: [8; 32],
        },
    );
    assert!(events.contains(&Event::EpochBegan {
        epoch: 2,
        members: 4,
        removed: vec![],
        joined: vec![id(9)],
    }));
    let membership = a.membership().expect("configured");
    assert!(membership.is_admitted(&id(9)));
    assert!(!membership.is_admitted(&id(3)));
}

#[test]
fn a_join_whose_epoch_change_does_not_come_lapses() {
    let mut replica = engine();
    remove_member_3(&mut replica);
    system(
        &mut replica,
        NOW_MS,
        replacement(9, &[0, 1], &[0, 1], NOW_MS),
    );
    let lapse = Policy::default().join_lapse_ms;
    let events = system(
        &mut replica,
        NOW_MS + lapse - 1,
        SystemCommand::OpenAccount {
            account: bulwark_engine::AccountId(5),
            public_key: id(5),
        },
    );
    assert!(!events.iter().any(|e| matches!(e, Event::JoinLapsed { .. })));
    let events = system(
        &mut replica,
        NOW_MS + lapse,
        SystemCommand::OpenAccount {
            account: bulwark_engine::AccountId(6),
            public_key: id(6),
        },
    );
    assert!(
        events.contains(&Event::JoinLapsed { member: id(9) }),
        "{events:?}"
    );
    let membership = replica.membership().expect("configured");
    assert!(!membership.change_due());
    assert_eq!(membership.trust(&id(9)), None);
}

#[test]
fn an_admission_is_json_and_wire_alike_and_refused_without_a_committee() {
    let command = Command::System(replacement(9, &[0, 1], &[0, 1], NOW_MS));
    let json = serde_json::to_string(&command).expect("json");
    assert!(json.contains(r#""type":"admit""#), "{json}");
    assert_eq!(
        serde_json::from_str::<Command>(&json).expect("parses"),
        command
    );
    let bytes = bulwark_engine::codec::encode_command(&command);
    assert_eq!(
        bulwark_engine::codec::decode_command(&bytes).expect("decodes"),
        command
    );
    let mut plain = Engine::new(EngineConfig::default());
    let Command::System(admit) = command else {
        unreachable!()
    };
    let events = system(&mut plain, NOW_MS, admit);
    assert!(events.contains(&Event::Rejected {
        account: None,
        client_order_id: 0,
        reason: RejectReason::SentinelNotConfigured
    }));
}
