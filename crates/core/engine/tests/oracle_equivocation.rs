//! An oracle member that signs two different observations for one round convicts itself: the
//! sentinel quarantines it on that proof alone, whoever reports it, and no one can frame another
//! member with it.

use bulwark_engine::oracle::{Observation, OracleEquivocation, SignedObservation};
use bulwark_sentinel::accusation::ProofError;
use bulwark_sentinel::membership::{Evidence, Quarantine, Trust};
use bulwark_sentinel::{Membership, Policy, Refusal, SelfProof as _};
use ed25519_dalek::SigningKey;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

fn id(i: u8) -> [u8; 32] {
    key(i).verifying_key().to_bytes()
}

fn observation(price_micros: i64) -> Observation {
    Observation {
        feed: 0,
        round: 9,
        price_micros,
        confidence_micros: 10,
        time_ms: 1_000,
        sources: 3,
    }
}

fn signed(member: u8, observation: Observation) -> SignedObservation {
    SignedObservation::sign(observation, &key(member))
}

#[test]
fn two_signed_observations_for_one_round_convict_and_nothing_less_does() {
    let proof = OracleEquivocation {
        first: signed(3, observation(100)),
        second: signed(3, observation(101)),
    };
    assert_eq!(proof.check(&id(3)), Ok(()));
    assert!(matches!(
        proof.check(&id(2)),
        Err(ProofError::NotTheAccused { .. })
    ));
    let same = OracleEquivocation {
        first: proof.first,
        second: proof.first,
    };
    assert!(matches!(same.check(&id(3)), Err(ProofError::NoConflict(_))));
    let mut later = observation(101);
    later.round += 1;
    let rounds = OracleEquivocation {
        first: proof.first,
        second: signed(3, later),
    };
    assert!(matches!(
        rounds.check(&id(3)),
        Err(ProofError::NoConflict(_))
    ));
    // A reporter who edits an honest member's observation to fake a conflict breaks its signature.
    let mut edited = proof.first;
    edited.observation.price_micros = 555;
    let fake = OracleEquivocation {
        first: proof.first,
        second: edited,
    };
    assert_eq!(fake.check(&id(3)), Err(ProofError::BadSignature));
    // Another member's observation relabelled as the accused's.
    let mut relabelled = signed(2, observation(101));
    relabelled.node = id(3);
    let framed = OracleEquivocation {
        first: proof.first,
        second: relabelled,
    };
    assert_eq!(framed.check(&id(3)), Err(ProofError::BadSignature));
}

#[test]
fn the_sentinel_quarantines_an_equivocating_oracle_member_on_the_proof_alone() {
    for n in [4u8, 7] {
        let mut committee =
            Membership::new(0, (0..n).map(id).collect(), Policy::default()).expect("committee");
        let liar = n - 1;
        let decision = Quarantine {
            member: id(liar),
            epoch: 0,
            evidence: Evidence::SelfProof(Box::new(OracleEquivocation {
                first: signed(liar, observation(100)),
                second: signed(liar, observation(90)),
            })),
        };
        // The same proof does not convict an honest member.
        let framed = Quarantine {
            member: id(0),
            ..decision.clone()
        };
        assert!(matches!(
            committee.check(&framed, 1),
            Err(Refusal::Proof(ProofError::NotTheAccused { .. }))
        ));
        assert!(committee.apply(&decision, 1).is_ok());
        let change = committee.end_epoch();
        assert_eq!(change.removed, vec![id(liar)]);
        assert!(matches!(
            committee.trust(&id(liar)),
            Some(Trust::Removed { epoch: 1, .. })
        ));
    }
}

mod replicated {
    //! The decision as a system command: encoded, executed by the engine under the state root,
    //! refused without its evidence.

    use super::*;
    use bulwark_engine::codec::{decode_system_command, encode_system_command};
    use bulwark_engine::command::{Command, SystemCommand};
    use bulwark_engine::deposit::{DepositEquivocation, ObservedDeposit};
    use bulwark_engine::sentinel::{Decision, Proof, SentinelConfig};
    use bulwark_engine::{Engine, EngineConfig, Event, RejectReason};
    use bulwark_sentinel::{Accusation, Grounds};
    use ed25519_dalek::Signer as _;

    const NOW_MS: u64 = 50_000;

    fn engine(n: u8) -> Engine {
        Engine::new(EngineConfig {
            sentinel: SentinelConfig {
                members: (0..n).map(id).collect(),
                policy: Policy::default(),
                ..SentinelConfig::default()
            },
            ..EngineConfig::default()
        })
    }

    fn accused_by(accusers: &[u8], accused: u8) -> Decision {
        Quarantine {
            member: id(accused),
            epoch: 0,
            evidence: Evidence::Accusations(
                accusers
                    .iter()
                    .map(|i| {
                        Accusation::sign(
                            &key(*i),
                            id(accused),
                            Grounds::Contraindicated,
                            0,
                            NOW_MS - 1_000,
                        )
                    })
                    .collect(),
            ),
        }
    }

    fn run(engine: &mut Engine, decision: Decision) -> Vec<Event> {
        let mut events = Vec::new();
        let command = Command::System(SystemCommand::Quarantine(Box::new(decision)));
        engine.execute(NOW_MS, &[command], &mut events);
        events
    }

    #[test]
    fn every_replica_applies_f_plus_one_accusations_and_refuses_f() {
        for n in [4u8, 7] {
            let f = (n - 1) / 3;
            let mut replica = engine(n);
            let before = replica.state_root();
            // f colluders accuse an honest member: refused, and the root does not move but for
            // the clock.
            let colluders: Vec<u8> = (n - f..n).collect();
            let events = run(&mut replica, accused_by(&colluders, 0));
            assert!(events.contains(&Event::Rejected {
                account: None,
                client_order_id: 0,
                reason: RejectReason::QuarantineRefused
            }));
            assert!(matches!(
                replica.membership().and_then(|m| m.trust(&id(0))),
                Some(Trust::Admitted)
            ));
            let refused_root = replica.state_root();
            // f + 1 accuse the last member: quarantined, on every replica alike.
            let accusers: Vec<u8> = (0..=f).collect();
            let mut other = engine(n);
            run(&mut other, accused_by(&colluders, 0));
            assert_eq!(other.state_root(), refused_root);
            for r in [&mut replica, &mut other] {
                let events = run(r, accused_by(&accusers, n - 1));
                assert!(events.contains(&Event::Quarantined {
                    member: id(n - 1),
                    epoch: 0
                }));
            }
            assert_eq!(replica.state_root(), other.state_root());
            assert_ne!(replica.state_root(), before);
            // The trust state is under the root: a snapshot restores it.
            let restored = Engine::restore(&replica.snapshot()).expect("restores");
            assert_eq!(restored.state_root(), replica.state_root());
            assert!(matches!(
                restored.membership().and_then(|m| m.trust(&id(n - 1))),
                Some(Trust::Quarantined { .. })
            ));
        }
    }

    #[test]
    fn the_next_epoch_leaves_the_quarantined_member_out_and_nobody_else() {
        let n = 4u8;
        let mut replica = engine(n);
        run(&mut replica, accused_by(&[0, 1], n - 1));
        let new_epoch = |epoch: u64, members: Vec<[u8; 32]>| {
            Command::System(SystemCommand::NewEpoch {
                epoch,
                members,
                key: [9; 32],
            })
        };
        let left: Vec<[u8; 32]> = {
            let mut keys: Vec<[u8; 32]> = (0..n - 1).map(id).collect();
            keys.sort_unstable();
            keys
        };
        let mut everyone: Vec<[u8; 32]> = (0..n).map(id).collect();
        everyone.sort_unstable();
        for wrong in [
            new_epoch(1, everyone),
            new_epoch(2, left.clone()),
            new_epoch(1, left[..2].to_vec()),
        ] {
            let root = replica.state_root();
            let mut events = Vec::new();
            replica.execute(NOW_MS, &[wrong], &mut events);
            assert!(events.contains(&Event::Rejected {
                account: None,
                client_order_id: 0,
                reason: RejectReason::EpochRefused
            }));
            assert_eq!(replica.state_root(), root, "a refused change moves nothing");
        }
        let mut events = Vec::new();
        replica.execute(NOW_MS, &[new_epoch(1, left.clone())], &mut events);
        assert!(events.contains(&Event::EpochBegan {
            epoch: 1,
            members: 3,
            removed: vec![id(n - 1)],
            joined: vec![],
        }));
        let membership = replica.membership().expect("configured");
        assert_eq!(membership.epoch(), 1);
        assert_eq!(membership.members(), left.as_slice());
        assert_eq!(membership.key().map(|k| k.digest), Some([9; 32]));
        let restored = Engine::restore(&replica.snapshot()).expect("restores");
        assert_eq!(restored.state_root(), replica.state_root());
        let mut plain = Engine::new(EngineConfig::default());
        let mut events = Vec::new();
        plain.execute(NOW_MS, &[new_epoch(1, left)], &mut events);
        assert!(events.contains(&Event::Rejected {
            account: None,
            client_order_id: 0,
            reason: RejectReason::SentinelNotConfigured
        }));
    }

    #[test]
    fn without_a_sentinel_committee_a_quarantine_is_refused() {
        let mut plain = Engine::new(EngineConfig::default());
        let events = run(&mut plain, accused_by(&[0, 1], 3));
        assert!(events.contains(&Event::Rejected {
            account: None,
            client_order_id: 0,
            reason: RejectReason::SentinelNotConfigured
        }));
        assert!(plain.membership().is_none());
    }

    #[test]
    fn a_quarantine_encodes_canonically_and_garbage_is_a_typed_error() {
        let proof = Quarantine {
            member: id(3),
            epoch: 2,
            evidence: Evidence::SelfProof(Box::new(Proof::OracleEquivocation(
                OracleEquivocation {
                    first: signed(3, observation(100)),
                    second: signed(3, observation(90)),
                },
            ))),
        };
        let deposit = ObservedDeposit {
            chain: 1,
            txid: [4; 32],
            output: 0,
            account: bulwark_engine::AccountId(2),
            amount: 5_000,
        };
        let inflated = ObservedDeposit {
            amount: 500_000,
            ..deposit
        };
        let sign = |d: &ObservedDeposit| key(3).sign(&d.signed_message()).to_bytes();
        let deposit_proof = Quarantine {
            member: id(3),
            epoch: 2,
            evidence: Evidence::SelfProof(Box::new(Proof::DepositEquivocation(
                DepositEquivocation {
                    member: id(3),
                    first: deposit,
                    first_signature: sign(&deposit),
                    second: inflated,
                    second_signature: sign(&inflated),
                },
            ))),
        };
        for decision in [accused_by(&[0, 1, 2], 3), proof, deposit_proof] {
            let command = SystemCommand::Quarantine(Box::new(decision));
            // `bulwark engine run` reads it as JSON too (docs/engine-input.md).
            let json = serde_json::to_string(&command).expect("json");
            assert_eq!(
                serde_json::from_str::<SystemCommand>(&json).expect("parses"),
                command
            );
            let bytes = encode_system_command(&command);
            assert_eq!(decode_system_command(&bytes).expect("decodes"), command);
            for cut in 0..bytes.len() {
                assert!(
                    decode_system_command(&bytes[..cut]).is_err(),
                    "cut at {cut}"
                );
            }
            // Unknown evidence kind.
            let mut wrong = bytes.clone();
            wrong[1 + 1 + 32 + 8] = 9;
            assert!(decode_system_command(&wrong).is_err());
        }
        // More accusations than any decision needs.
        let crowd: Vec<u8> = (0..30).collect();
        let bytes =
            encode_system_command(&SystemCommand::Quarantine(Box::new(accused_by(&crowd, 40))));
        assert!(decode_system_command(&bytes).is_err());
    }
}
