#![allow(clippy::unwrap_used)]

use super::*;
use commonware_cryptography::bls12381::primitives::ops::{self, threshold};
use commonware_math::algebra::Random;
use commonware_utils::{ordered::Quorum, TestRng, TryCollect};
use rand_core::Rng;

const NAMESPACE: &[u8] = b"bulwark/test/dkg/genesis";

/// An in-memory committee: every node's ceremony and the messages in flight between them.
struct Net {
    keys: Vec<PublicKey>,
    participants: Set<PublicKey>,
    /// Every node's identity secret, in key order (for the reshare that follows).
    secrets: Vec<ed25519::PrivateKey>,
    nodes: Vec<Ceremony>,
    /// (from, to, bytes), in send order.
    queue: Vec<(usize, usize, Vec<u8>)>,
}

impl Net {
    fn new(n: usize, seed: u64) -> Self {
        let mut rng = TestRng::new(seed);
        let mut secrets: Vec<_> = (0..n)
            .map(|_| ed25519::PrivateKey::random(&mut rng))
            .collect();
        secrets.sort_by_key(|s| s.public_key());
        let participants: Set<PublicKey> = secrets
            .iter()
            .map(|s| s.public_key())
            .try_collect()
            .expect("keys are distinct");
        let mut net = Self {
            keys: participants.iter().cloned().collect(),
            participants: participants.clone(),
            secrets: secrets.clone(),
            nodes: Vec::new(),
            queue: Vec::new(),
        };
        for (i, secret) in secrets.into_iter().enumerate() {
            let (node, out) =
                Ceremony::new(NAMESPACE, secret, participants.clone(), &mut rng).unwrap();
            let expected = if n == 1 {
                Stage::Completed
            } else {
                Stage::Dealing
            };
            assert_eq!(node.status().stage, expected);
            net.nodes.push(node);
            net.route(i, out);
        }
        net
    }

    fn route(&mut self, from: usize, out: Vec<Outgoing>) {
        for message in out {
            match message.to {
                To::All => {
                    for to in (0..self.keys.len()).filter(|to| *to != from) {
                        self.queue.push((from, to, message.bytes.clone()));
                    }
                }
                To::One(key) => {
                    let to = self.keys.iter().position(|k| *k == key).unwrap();
                    assert_ne!(to, from, "a node never sends to itself");
                    self.queue.push((from, to, message.bytes));
                }
            }
        }
    }

    fn deliver(&mut self, at: usize) -> Result<(), DkgError> {
        let (from, to, bytes) = self.queue.remove(at);
        let out = self.nodes[to].receive(&self.keys[from], &bytes)?;
        self.route(to, out);
        Ok(())
    }

    fn run(&mut self) {
        while !self.queue.is_empty() {
            self.deliver(0).unwrap();
        }
    }

    /// The reshare into `epoch` after this (completed) net: members `keep` deal and stay,
    /// `newcomers` fresh members join as players only.
    fn reshare(&self, epoch: u64, keep: &[usize], newcomers: usize, seed: u64) -> Net {
        let mut rng = TestRng::new(seed);
        let previous = self.completed()[0].output.clone();
        let mut secrets: Vec<ed25519::PrivateKey> =
            keep.iter().map(|i| self.secrets[*i].clone()).collect();
        secrets.extend((0..newcomers).map(|_| ed25519::PrivateKey::random(&mut rng)));
        secrets.sort_by_key(|s| s.public_key());
        let dealers: Set<PublicKey> = keep
            .iter()
            .map(|i| self.keys[*i].clone())
            .try_collect()
            .unwrap();
        let players: Set<PublicKey> = secrets
            .iter()
            .map(|s| s.public_key())
            .try_collect()
            .unwrap();
        let mut net = Net {
            keys: players.iter().cloned().collect(),
            participants: players.clone(),
            secrets: secrets.clone(),
            nodes: Vec::new(),
            queue: Vec::new(),
        };
        for (i, secret) in secrets.into_iter().enumerate() {
            let old = self.keys.iter().position(|k| *k == secret.public_key());
            let share = old.map(|old| self.completed()[old].share.clone());
            let (node, out) = Ceremony::reshare(
                NAMESPACE,
                epoch,
                previous.clone(),
                share,
                secret,
                dealers.clone(),
                players.clone(),
                &mut rng,
            )
            .unwrap();
            net.nodes.push(node);
            net.route(i, out);
        }
        net
    }

    fn run_shuffled(&mut self, rng: &mut TestRng) {
        while !self.queue.is_empty() {
            let at = (rng.next_u64() % self.queue.len() as u64) as usize;
            self.deliver(at).unwrap();
        }
    }

    /// Removes the first queued message of `kind` from `from` to `to`.
    fn take(&mut self, kind: Kind, from: usize, to: usize) -> Vec<u8> {
        let at = self
            .queue
            .iter()
            .position(|(f, t, b)| *f == from && *t == to && b[0] == kind as u8)
            .unwrap();
        self.queue.remove(at).2
    }

    fn completed(&self) -> Vec<&Completed> {
        self.nodes.iter().map(|n| n.completed().unwrap()).collect()
    }
}

/// Every node holds the same group key, and its shares really threshold-sign under it.
fn assert_working_key(net: &Net) {
    let done = net.completed();
    let first = done[0];
    let n = net.keys.len();
    let group = first.polynomial();
    assert_eq!(group.total().get() as usize, n);
    assert_eq!(group.required(), net.participants.quorum::<N3f1>());
    for (i, c) in done.iter().enumerate() {
        assert_eq!(c.output, first.output);
        assert_eq!(c.transcript, first.transcript);
        assert_eq!(c.output.players(), &net.participants);
        assert_eq!(c.share.index.get() as usize, i);
        assert_eq!(
            group.partial_public(c.share.index).unwrap(),
            c.share.public::<MinSig>()
        );
    }

    let message = b"bulwark genesis block";
    let partials: Vec<_> = done
        .iter()
        .map(|c| threshold::sign_message::<MinSig>(&c.share, NAMESPACE, message))
        .collect();
    for partial in &partials {
        threshold::verify_message::<MinSig>(group, NAMESPACE, message, partial).unwrap();
    }
    let t = group.required() as usize;
    let low = threshold::recover::<MinSig, _>(group, &partials[..t], &Sequential).unwrap();
    let high = threshold::recover::<MinSig, _>(group, &partials[n - t..], &Sequential).unwrap();
    assert_eq!(low, high, "any quorum recovers the same signature");
    ops::verify_message::<MinSig>(group.public(), NAMESPACE, message, &low).unwrap();
    assert!(ops::verify_message::<MinSig>(group.public(), NAMESPACE, b"other", &low).is_err());
    assert!(
        threshold::recover::<MinSig, _>(group, &partials[..t - 1], &Sequential).is_err(),
        "fewer than a quorum of partials must not recover"
    );
}

#[test]
fn committees_of_four_and_seven_agree_on_a_working_key() {
    for n in [4, 7] {
        let mut net = Net::new(n, n as u64);
        net.run();
        assert_working_key(&net);
        for node in &net.nodes {
            assert_eq!(node.status().stage, Stage::Completed);
        }
        assert!(matches!(
            net.nodes[0].receive(&net.keys[1], &[Kind::Echo as u8]),
            Err(DkgError::Concluded)
        ));
    }
}

#[test]
fn committee_of_one_completes_alone() {
    let net = Net::new(1, 5);
    assert!(net.queue.is_empty());
    assert_working_key(&net);
}

#[test]
fn not_a_participant_is_refused_at_start() {
    let mut rng = TestRng::new(1003);
    let net = Net::new(4, 3);
    let outsider = ed25519::PrivateKey::random(&mut rng);
    let result = Ceremony::new(NAMESPACE, outsider, net.participants.clone(), &mut rng);
    assert!(matches!(result, Err(DkgError::NotParticipant { .. })));
}

#[test]
fn refused_messages_change_nothing_and_honest_ones_still_complete() {
    let mut rng = TestRng::new(77);
    let mut net = Net::new(4, 11);
    let honest = net.take(Kind::Dealing, 1, 0);
    let before = net.nodes[0].status();
    let peer = net.keys[1].clone();

    let stranger = ed25519::PrivateKey::random(&mut rng).public_key();
    let err = net.nodes[0].receive(&stranger, &honest).unwrap_err();
    assert!(matches!(err, DkgError::UnknownSender { .. }), "{err}");
    let me = net.keys[0].clone();
    let err = net.nodes[0].receive(&me, &honest).unwrap_err();
    assert!(matches!(err, DkgError::FromSelf), "{err}");

    let mut garbage: Vec<Vec<u8>> = vec![vec![], vec![9], vec![Kind::Echo as u8, 1, 2]];
    garbage.push(honest[..honest.len() - 1].to_vec());
    garbage.push(honest[..1].to_vec());
    garbage.push([honest.as_slice(), &[0]].concat());
    for bytes in &garbage {
        let err = net.nodes[0].receive(&peer, bytes).unwrap_err();
        assert!(matches!(err, DkgError::Malformed { .. }), "{err}");
    }
    let huge = vec![0u8; net.nodes[0].max_message_bytes + 1];
    let err = net.nodes[0].receive(&peer, &huge).unwrap_err();
    assert!(matches!(err, DkgError::Oversized { .. }), "{err}");

    // The private share is the last field (a big-endian scalar); nudge it by one.
    let mut tampered = honest.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let err = net.nodes[0].receive(&peer, &tampered).unwrap_err();
    assert!(
        matches!(
            err,
            DkgError::InvalidDealing {
                source: DealerMessageError::InvalidDealerShare,
                ..
            }
        ),
        "{err}"
    );
    // An ack for node 0's dealing, but signed by node 2, is not node 1's ack.
    let to_two = net
        .queue
        .iter()
        .position(|(f, t, b)| (*f, *t, b[0]) == (0, 2, Kind::Dealing as u8))
        .unwrap();
    net.deliver(to_two).unwrap();
    let foreign_ack = net.take(Kind::Ack, 2, 0);
    let err = net.nodes[0].receive(&peer, &foreign_ack).unwrap_err();
    assert!(matches!(err, DkgError::InvalidAck { .. }), "{err}");
    assert_eq!(
        net.nodes[0].status(),
        before,
        "refusals must not change state"
    );

    net.queue.insert(0, (2, 0, foreign_ack));
    net.queue.insert(0, (1, 0, honest));
    let mut checked_wrong_sender = false;
    let mut checked_bad_log_signature = false;
    while !net.queue.is_empty() {
        let (from, to, bytes) = net.queue.remove(0);
        let out = net.nodes[to].receive(&net.keys[from], &bytes).unwrap();
        net.route(to, out);

        // Every accepted message is refused the second time.
        let before = net.nodes[to].status();
        let err = net.nodes[to].receive(&net.keys[from], &bytes).unwrap_err();
        assert!(
            matches!(err, DkgError::Duplicate { .. } | DkgError::Concluded),
            "{err}"
        );
        assert_eq!(net.nodes[to].status(), before);

        if bytes[0] != Kind::Log as u8 {
            continue;
        }
        // Relay `from`'s log to a node, claiming a third participant sent it.
        let relay = (0..4)
            .flat_map(|x| (0..4).map(move |s| (x, s)))
            .find(|&(x, s)| {
                x != from
                    && s != from
                    && s != x
                    && !net.nodes[x].logs.contains_key(&net.keys[s])
                    && net.nodes[x].completed().is_none()
            });
        if let Some((x, s)) = relay.filter(|_| !checked_wrong_sender) {
            let before = net.nodes[x].status();
            let err = net.nodes[x].receive(&net.keys[s], &bytes).unwrap_err();
            assert!(
                matches!(&err, DkgError::WrongSender { from: f, signer }
                        if **f == net.keys[s] && **signer == net.keys[from]),
                "{err}"
            );
            assert_eq!(net.nodes[x].status(), before);
            checked_wrong_sender = true;
        }
        // The log ends with the dealer's signature; corrupt its last byte.
        let lacking = (0..4).find(|&x| {
            x != from
                && !net.nodes[x].logs.contains_key(&net.keys[from])
                && net.nodes[x].completed().is_none()
        });
        if let Some(x) = lacking.filter(|_| !checked_bad_log_signature) {
            let before = net.nodes[x].status();
            let mut forged = bytes.clone();
            *forged.last_mut().unwrap() ^= 0x40;
            let err = net.nodes[x].receive(&net.keys[from], &forged).unwrap_err();
            assert!(matches!(err, DkgError::InvalidLogSignature { .. }), "{err}");
            assert_eq!(net.nodes[x].status(), before);
            checked_bad_log_signature = true;
        }
    }
    assert!(checked_wrong_sender && checked_bad_log_signature);
    assert_working_key(&net);
}

#[test]
fn log_with_reveals_is_refused() {
    let mut net = Net::new(4, 12);
    // Node 1's dealer signs early, before any peer acked: its log reveals (or omits) shares.
    let early = net.nodes[1].dealer.take().unwrap().finalize::<N3f1>();
    let bytes = Message::Log(early).encode().to_vec();
    let before = net.nodes[0].status();
    let err = net.nodes[0].receive(&net.keys[1], &bytes).unwrap_err();
    assert!(matches!(err, DkgError::IncompleteLog { .. }), "{err}");
    assert_eq!(net.nodes[0].status(), before);
}

#[test]
fn differing_echo_aborts_with_disagreement() {
    let mut net = Net::new(4, 21);
    let mut reported = None;
    let mut forged_digest = None;
    while !net.queue.is_empty() {
        let (from, to, mut bytes) = net.queue.remove(0);
        if bytes[0] == Kind::Echo as u8 && from == 1 && to == 0 {
            bytes[1] ^= 0xff;
            forged_digest = Some(<[u8; 32]>::try_from(&bytes[1..]).unwrap());
        }
        match net.nodes[to].receive(&net.keys[from], &bytes) {
            Ok(out) => net.route(to, out),
            Err(err) => {
                assert_eq!(to, 0, "only node 0 sees the forged echo: {err}");
                reported.get_or_insert(err);
            }
        }
    }
    let Some(DkgError::Disagreement { peer, ours, theirs }) = reported else {
        panic!("node 0 must report a disagreement, got {reported:?}");
    };
    assert_eq!(*peer, net.keys[1]);
    assert_eq!(Some(theirs), forged_digest);
    assert_eq!(net.nodes[0].status().stage, Stage::Aborted);
    assert!(net.nodes[0].completed().is_none());
    let again = net.nodes[0].receive(&net.keys[2], &[Kind::Echo as u8]);
    assert!(matches!(again, Err(DkgError::Disagreement { .. })));

    // Whoever did complete holds the one key node 0 also digested; nobody holds another.
    let done: Vec<_> = net.nodes.iter().filter_map(Ceremony::completed).collect();
    assert!(!done.is_empty());
    for c in &done {
        assert_eq!(c.transcript, ours);
        assert_eq!(c.output, done[0].output);
    }
}

#[test]
fn shuffled_delivery_completes_with_the_same_result() {
    for (n, seed) in [(4, 31), (4, 32), (4, 33), (7, 34)] {
        let mut fifo = Net::new(n, seed);
        fifo.run();
        let mut shuffled = Net::new(n, seed);
        shuffled.run_shuffled(&mut TestRng::new(seed + 1000));
        assert_working_key(&shuffled);
        // Delivery order changes nothing the ceremony outputs; only the rngs do.
        for (a, b) in fifo.completed().iter().zip(shuffled.completed()) {
            assert_eq!(*a, b);
        }
    }
}

#[test]
fn completed_round_trips_and_refuses_corruption() {
    let mut net = Net::new(4, 41);
    net.run();
    let done = net.completed();
    let bytes = done[2].encode();
    let decoded = Completed::decode(&bytes, &net.participants).unwrap();
    assert_eq!(&decoded, done[2]);

    for len in 0..bytes.len() {
        let err = Completed::decode(&bytes[..len], &net.participants).unwrap_err();
        assert!(
            matches!(err, DkgError::CompletedMalformed { .. }),
            "{len}: {err}"
        );
    }
    let longer = [bytes.as_slice(), &[0]].concat();
    let err = Completed::decode(&longer, &net.participants).unwrap_err();
    assert!(matches!(err, DkgError::CompletedMalformed { .. }), "{err}");
    let mut version = bytes.clone();
    version[0] = COMPLETED_FORMAT + 1;
    let err = Completed::decode(&version, &net.participants).unwrap_err();
    assert!(matches!(err, DkgError::CompletedMalformed { .. }), "{err}");

    // Another committee's participants do not match.
    let other = Net::new(4, 42);
    let err = Completed::decode(&bytes, &other.participants).unwrap_err();
    assert!(
        matches!(err, DkgError::CompletedInconsistent { .. }),
        "{err}"
    );

    // A share that is not this index's evaluation of the polynomial.
    let mismatched = Completed {
        share: Share::new(done[2].share.index, done[3].share.private.clone()),
        ..done[2].clone()
    };
    let err = Completed::decode(&mismatched.encode(), &net.participants).unwrap_err();
    assert!(
        matches!(err, DkgError::CompletedInconsistent { .. }),
        "{err}"
    );
}

/// A partial signature by `share` over a test message verifies under `group`.
fn signs_for(share: &Share, group: &Sharing<MinSig>) -> bool {
    let message = b"bulwark epoch block";
    let partial = threshold::sign_message::<MinSig>(share, NAMESPACE, message);
    share.index.get() < group.total().get()
        && threshold::verify_message::<MinSig>(group, NAMESPACE, message, &partial).is_ok()
}

#[test]
fn a_reshare_keeps_the_group_key_and_no_old_share_signs_for_the_new_committee() {
    for n in [4usize, 7] {
        let mut genesis = Net::new(n, 40 + n as u64);
        genesis.run();
        let f = (n - 1) / 3;
        // The last f members are removed; the others deal and stay.
        let keep: Vec<usize> = (0..n - f).collect();
        let mut epoch1 = genesis.reshare(1, &keep, 0, 7);
        epoch1.run();
        assert_working_key(&epoch1);
        let before = genesis.completed()[0].polynomial().public();
        let after = epoch1.completed()[0].polynomial().public();
        assert_eq!(
            before, after,
            "the venue's identity is the same across the reshare"
        );
        assert_eq!(epoch1.completed()[0].output.players().len(), n - f);
        for (i, old) in genesis.completed().iter().enumerate() {
            assert!(
                !signs_for(&old.share, epoch1.completed()[0].polynomial()),
                "member {i}'s genesis share still signs for epoch 1 (n = {n})"
            );
        }
        // The reshare result persists and reloads against the new committee only.
        let done = epoch1.completed()[0];
        assert_eq!(
            Completed::decode(&done.encode(), &epoch1.participants).unwrap(),
            *done
        );
        assert!(Completed::decode(&done.encode(), &genesis.participants).is_err());
    }
}

#[test]
fn a_newcomer_joins_with_a_share_of_the_same_key_and_cannot_deal() {
    let mut genesis = Net::new(4, 60);
    genesis.run();
    // Member 3 leaves, a newcomer takes its place.
    let mut epoch1 = genesis.reshare(1, &[0, 1, 2], 1, 8);
    let newcomer = (0..4)
        .find(|i| !genesis.keys.contains(&epoch1.keys[*i]))
        .unwrap();
    let dealer = (0..4).find(|i| *i != newcomer).unwrap();
    let other = (0..4).find(|i| *i != newcomer && *i != dealer).unwrap();
    // A dealing passed off as the newcomer's is refused by role, and changes nothing.
    let dealing = epoch1.take(Kind::Dealing, dealer, other);
    let from = epoch1.keys[newcomer].clone();
    assert!(matches!(
        epoch1.nodes[other].receive(&from, &dealing),
        Err(DkgError::NotInRole { .. })
    ));
    let out = epoch1.nodes[other]
        .receive(&epoch1.keys[dealer], &dealing)
        .unwrap();
    epoch1.route(other, out);
    epoch1.run();
    assert_working_key(&epoch1);
    assert_eq!(
        genesis.completed()[0].polynomial().public(),
        epoch1.completed()[0].polynomial().public()
    );
    assert_eq!(epoch1.nodes[newcomer].status().dealers, 3);
}

#[test]
fn a_reshare_needs_a_quorum_of_continuing_dealers_and_a_later_epoch() {
    let mut genesis = Net::new(4, 61);
    genesis.run();
    let mut rng = TestRng::new(62);
    let previous = genesis.completed()[0].output.clone();
    let set = |members: &[usize]| -> Set<PublicKey> {
        members
            .iter()
            .map(|i| genesis.keys[*i].clone())
            .try_collect()
            .unwrap()
    };
    let start = |epoch, dealers: &[usize], players: &[usize], rng: &mut TestRng| {
        Ceremony::reshare(
            NAMESPACE,
            epoch,
            previous.clone(),
            Some(genesis.completed()[0].share.clone()),
            genesis.secrets[0].clone(),
            set(dealers),
            set(players),
            rng,
        )
        .map(|_| ())
    };
    // Two dealers of four are fewer than the quorum of three.
    assert!(matches!(
        start(1, &[0, 1], &[0, 1, 2], &mut rng),
        Err(DkgError::Setup { .. })
    ));
    // A dealer that leaves; epoch 0 again.
    assert!(matches!(
        start(1, &[0, 1, 3], &[0, 1, 2], &mut rng),
        Err(DkgError::Setup { .. })
    ));
    assert!(matches!(
        start(0, &[0, 1, 2], &[0, 1, 2], &mut rng),
        Err(DkgError::Setup { .. })
    ));
    assert!(start(1, &[0, 1, 2], &[0, 1, 2], &mut rng).is_ok());
}
