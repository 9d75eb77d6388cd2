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
