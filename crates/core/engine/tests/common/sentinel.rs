//! A four-member committee (keys 0..4) whose sentinel has three operators, two of whom approve
//! replacements: the members, removals and admissions the trust-state tests share.

use bulwark_engine::command::{Command, SystemCommand};
use bulwark_engine::sentinel::{Decision, SentinelConfig};
use bulwark_engine::{Engine, Event};
use bulwark_sentinel::membership::{Evidence, Quarantine};
use bulwark_sentinel::{
    Accusation, Admit, Affirmation, Approval, Grounds, Operators, Policy, Seat,
};
use ed25519_dalek::SigningKey;

/// Member (or candidate) `i`'s key; members 0..4 are the committee, and the same keys as
/// [`super::oracle::setup`]'s oracle members.
pub fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

pub fn id(i: u8) -> [u8; 32] {
    key(i).verifying_key().to_bytes()
}

pub fn operator(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[200 + i; 32])
}

/// Members 0..4, the default policy, three operators of whom two approve.
pub fn config() -> SentinelConfig {
    SentinelConfig {
        members: (0..4).map(id).collect(),
        policy: Policy::default(),
        operators: Operators {
            keys: (0..3)
                .map(|i| operator(i).verifying_key().to_bytes())
                .collect(),
            quorum: 2,
        },
    }
}

pub fn system(engine: &mut Engine, at_ms: u64, command: SystemCommand) -> Vec<Event> {
    let mut events = Vec::new();
    engine.execute(at_ms, &[Command::System(command)], &mut events);
    events
}

pub fn sorted(mut keys: Vec<[u8; 32]>) -> Vec<[u8; 32]> {
    keys.sort_unstable();
    keys
}

/// Member `member` convicted by members 0 and 1 in `epoch` at `at_ms`, and the epoch change to
/// `epoch + 1` with the members `next`.
pub fn remove(engine: &mut Engine, member: u8, epoch: u64, next: &[u8], at_ms: u64) {
    let decision: Decision = Quarantine {
        member: id(member),
        epoch,
        evidence: Evidence::Accusations(
            [0, 1]
                .iter()
                .map(|i| {
                    Accusation::sign(&key(*i), id(member), Grounds::Silence, epoch, at_ms - 10)
                })
                .collect(),
        ),
    };
    let events = system(engine, at_ms, SystemCommand::Quarantine(Box::new(decision)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Quarantined { .. })),
        "{events:?}"
    );
    new_epoch(engine, epoch + 1, next, at_ms);
}

/// Member 3 convicted by members 0 and 1 at `at_ms`, removed at epoch 1.
pub fn remove_member_3(engine: &mut Engine, at_ms: u64) {
    remove(engine, 3, 0, &[0, 1, 2], at_ms);
}

/// The epoch change to `epoch` with the members `members`, which must begin.
pub fn new_epoch(engine: &mut Engine, epoch: u64, members: &[u8], at_ms: u64) {
    let events = system(
        engine,
        at_ms,
        SystemCommand::NewEpoch {
            epoch,
            members: sorted(members.iter().map(|i| id(*i)).collect()),
            key: [epoch as u8; 32],
        },
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::EpochBegan { epoch: e, .. } if *e == epoch)),
        "{events:?}"
    );
}

/// `candidate`'s admission in epoch 1 into member 3's seat, affirmed by `affirmers` at `at_ms`
/// and approved by `operators`.
pub fn replacement(candidate: u8, affirmers: &[u8], operators: &[u8], at_ms: u64) -> SystemCommand {
    let candidate_key = id(candidate);
    SystemCommand::Admit(Box::new(Admit {
        candidate: candidate_key,
        epoch: 1,
        affirmations: affirmers
            .iter()
            .map(|i| Affirmation::sign(&key(*i), candidate_key, 1, at_ms, ([1; 32], [2; 32])))
            .collect(),
        seat: Seat::Replace {
            replaces: id(3),
            approvals: operators
                .iter()
                .map(|i| Approval::sign(&operator(*i), &candidate_key, &id(3), 1))
                .collect(),
        },
    }))
}
