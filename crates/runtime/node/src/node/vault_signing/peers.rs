//! Who is who on the signing channel: the vault number of each peer (`bulwark_vault::Member`).
//! Genesis members are 1 ..= n in the genesis order; a member that joined later has the number
//! its key gives (`bulwark_vault::newcomer_number`), learnt from the committed committee.

use std::collections::{BTreeMap, BTreeSet};

use bulwark_consensus::replica::PublicKey;
use bulwark_vault::Member;
use commonware_codec::DecodeExt as _;
use tracing::error;

/// The members the vault can hear from and send to.
pub(in crate::node) struct Peers {
    genesis: Vec<PublicKey>,
    /// Members of the committed committee that were not in the genesis committee.
    newcomers: BTreeMap<Member, PublicKey>,
    /// The committed committee's numbers, and the epoch they were learnt for (a committee
    /// changes only with its epoch).
    learnt: Option<(u64, BTreeSet<Member>)>,
}

impl Peers {
    /// The genesis committee, in its order.
    pub(in crate::node) fn new(genesis: Vec<PublicKey>) -> Self {
        Self {
            genesis,
            newcomers: BTreeMap::new(),
            learnt: None,
        }
    }

    /// The number a key has (whether or not it is a member now).
    pub(in crate::node) fn number(&self, key: &PublicKey) -> Member {
        match self.genesis.iter().position(|p| p == key) {
            Some(i) => (i + 1) as Member,
            None => bulwark_vault::newcomer_number(key.as_ref()),
        }
    }

    /// The number of a peer this member listens to: a genesis member or a newcomer of the
    /// committed committee.
    pub(in crate::node) fn member_of(&self, key: &PublicKey) -> Option<Member> {
        let number = self.number(key);
        let known = usize::from(number) <= self.genesis.len()
            || self.newcomers.get(&number).is_some_and(|k| k == key);
        known.then_some(number)
    }

    /// The genesis committee's size (the committee never grows past it).
    pub(in crate::node) fn seats(&self) -> usize {
        self.genesis.len()
    }

    /// The key of member `member`.
    pub(in crate::node) fn key(&self, member: Member) -> Option<&PublicKey> {
        self.genesis
            .get(usize::from(member).wrapping_sub(1))
            .or_else(|| self.newcomers.get(&member))
    }

    /// Every member's number but `me`.
    pub(in crate::node) fn others(&self, me: Member) -> Vec<Member> {
        (1..=self.genesis.len() as Member)
            .chain(self.newcomers.keys().copied())
            .filter(|m| *m != me)
            .collect()
    }

    /// Learns the committed committee of `epoch` (raw 32-byte keys), once per epoch: returns its
    /// members' numbers. A newcomer whose number another member of the committee already has is
    /// left out (and said so: its operator must give it another key).
    pub(in crate::node) fn learn(
        &mut self,
        epoch: u64,
        committee: &[[u8; 32]],
    ) -> BTreeSet<Member> {
        if let Some((learnt, numbers)) = &self.learnt {
            if *learnt == epoch {
                return numbers.clone();
            }
        }
        let mut numbers = BTreeSet::new();
        let mut newcomers: BTreeMap<Member, Vec<PublicKey>> = BTreeMap::new();
        for raw in committee {
            let Ok(key) = PublicKey::decode(raw.to_vec()) else {
                continue;
            };
            let number = self.number(&key);
            if usize::from(number) <= self.genesis.len() {
                numbers.insert(number);
            } else {
                newcomers.entry(number).or_default().push(key);
            }
        }
        // Two newcomers on one number: neither is heard or repaired (neither can take the
        // other's place by sorting first).
        self.newcomers = BTreeMap::new();
        for (number, keys) in newcomers {
            match keys.as_slice() {
                [key] => {
                    self.newcomers.insert(number, key.clone());
                    numbers.insert(number);
                }
                _ => {
                    for key in &keys {
                        error!(member = %hex::encode(key.as_ref()), number, "two members of the committee have one vault number: neither holds a vault share (give one of them another key)");
                    }
                }
            }
        }
        self.learnt = Some((epoch, numbers.clone()));
        numbers
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use commonware_cryptography::Signer as _;

    fn key(seed: u64) -> PublicKey {
        commonware_cryptography::ed25519::PrivateKey::from_seed(seed).public_key()
    }

    fn raw(key: &PublicKey) -> [u8; 32] {
        key.as_ref().try_into().unwrap()
    }

    #[test]
    fn newcomers_are_numbered_by_key_and_two_on_one_number_are_both_left_out() {
        let genesis: Vec<PublicKey> = (0..4).map(key).collect();
        let mut peers = Peers::new(genesis.clone());
        // Two keys on one vault number (found by trying keys).
        let mut seen: BTreeMap<Member, u64> = BTreeMap::new();
        let (a, b) = (100..100_000u64)
            .find_map(|seed| {
                let number = bulwark_vault::newcomer_number(key(seed).as_ref());
                seen.insert(number, seed)
                    .map(|other| (key(other), key(seed)))
            })
            .unwrap();
        let single = key(7);
        let committee = [raw(&genesis[0]), raw(&genesis[2]), raw(&single)];
        let numbers = peers.learn(1, &committee);
        let own = bulwark_vault::newcomer_number(single.as_ref());
        assert_eq!(numbers, BTreeSet::from([1, 3, own]));
        assert!(own >= bulwark_vault::NEWCOMER_FIRST);
        assert_eq!(peers.member_of(&single), Some(own));
        assert_eq!(peers.key(own), Some(&single));
        assert_eq!(
            peers.member_of(&genesis[1]),
            Some(2),
            "genesis members keep theirs"
        );
        assert_eq!(peers.member_of(&a), None, "not in the committee: not heard");
        // Both colliding newcomers are left out, neither takes the number by sorting first.
        let numbers = peers.learn(2, &[raw(&genesis[0]), raw(&a), raw(&b)]);
        assert_eq!(numbers, BTreeSet::from([1]));
        assert_eq!((peers.member_of(&a), peers.member_of(&b)), (None, None));
        assert_eq!(peers.member_of(&single), None, "it left the committee");
        // A committee is learnt once per epoch.
        assert_eq!(peers.learn(2, &committee), BTreeSet::from([1]));
    }
}
