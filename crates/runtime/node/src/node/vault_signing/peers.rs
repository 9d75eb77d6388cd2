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
}

impl Peers {
    /// The genesis committee, in its order.
    pub(in crate::node) fn new(genesis: Vec<PublicKey>) -> Self {
        Self {
            genesis,
            newcomers: BTreeMap::new(),
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

    /// Learns the committed committee (raw 32-byte keys): returns its members' numbers. A
    /// newcomer whose number another member of the committee already has is left out (and said
    /// so: its operator must give it another key).
    pub(in crate::node) fn learn(&mut self, committee: &[[u8; 32]]) -> BTreeSet<Member> {
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
        numbers
    }
}
