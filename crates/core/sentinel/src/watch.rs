//! What one node does: count its own evidence until the policy says to accuse, and gather the
//! accusations of others until they carry a decision.
//!
//! Both are bounded by the committee: [`Watch`] keeps at most `threshold` times per (peer,
//! grounds), and [`AccusationPool`] at most one accusation per (accuser, accused), each checked by
//! [`Membership::check_accusation`] before it is stored, so an outsider's or a forged accusation
//! takes no memory.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::accusation::{Accusation, Grounds, SelfProof};
use crate::membership::{Evidence, Membership, Quarantine, Refusal};
use crate::policy::Policy;
use crate::MemberKey;

/// A node's own evidence against its peers, counted per kind until the policy's threshold.
#[derive(Debug, Clone)]
pub struct Watch {
    me: MemberKey,
    policy: Policy,
    epoch: u64,
    members: BTreeSet<MemberKey>,
    seen: BTreeMap<(MemberKey, Grounds), VecDeque<u64>>,
    accused: BTreeSet<(MemberKey, Grounds)>,
}

impl Watch {
    /// The watch of member `me` over `membership`'s committee.
    pub fn new(me: MemberKey, membership: &Membership) -> Self {
        Self {
            me,
            policy: membership.policy().clone(),
            epoch: membership.epoch(),
            members: membership.members().iter().copied().collect(),
            seen: BTreeMap::new(),
            accused: BTreeSet::new(),
        }
    }

    /// Records that this node saw `grounds` against `peer` at `now_ms`. Returns `true` when the
    /// count within the window reaches the policy's threshold for the first time this epoch: the
    /// node should now sign and send an [`Accusation`]. Evidence against itself or a non-member
    /// is ignored.
    pub fn observe(&mut self, peer: MemberKey, grounds: Grounds, now_ms: u64) -> bool {
        if peer == self.me || !self.members.contains(&peer) {
            return false;
        }
        if self.accused.contains(&(peer, grounds)) {
            return false;
        }
        let threshold = self.policy.threshold(grounds) as usize;
        let window = self.policy.window_ms;
        let times = self.seen.entry((peer, grounds)).or_default();
        while times
            .front()
            .is_some_and(|h| now_ms.saturating_sub(*h) > window)
        {
            times.pop_front();
        }
        times.push_back(now_ms);
        while times.len() > threshold {
            times.pop_front();
        }
        if times.len() >= threshold {
            self.accused.insert((peer, grounds));
            self.seen.remove(&(peer, grounds));
            return true;
        }
        false
    }

    /// Starts a new epoch: counts and accusations are per epoch.
    pub fn new_epoch(&mut self, membership: &Membership) {
        *self = Self::new(self.me, membership);
    }

    /// The epoch it counts for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Which members have cast no vote for [`Policy::silence_views`] views: each yields one
/// [`Grounds::Silence`] observation per silent stretch.
#[derive(Debug, Clone)]
pub struct Silence {
    views: u64,
    last_vote: BTreeMap<MemberKey, u64>,
    reported: BTreeSet<MemberKey>,
}

impl Silence {
    /// Starts counting for `membership`'s members at `view`.
    pub fn new(membership: &Membership, view: u64) -> Self {
        Self {
            views: membership.policy().silence_views,
            last_vote: membership.members().iter().map(|m| (*m, view)).collect(),
            reported: BTreeSet::new(),
        }
    }

    /// Starts counting at `view` for an epoch whose committee follows `previous`: a member that
    /// was not in `previous` (it joined at this epoch change: a re-admitted member or a
    /// newcomer, which still has to commit the change and start its consensus) is reported only
    /// after twice [`Policy::silence_views`]. Silence is each member's own observation, so this
    /// grace is not replicated state; a member that restarts gives none.
    pub fn after_change(membership: &Membership, view: u64, previous: &[MemberKey]) -> Self {
        let mut silence = Self::new(membership, view);
        let grace = view.saturating_add(silence.views);
        for (member, last) in silence.last_vote.iter_mut() {
            if !previous.contains(member) {
                *last = grace;
            }
        }
        silence
    }

    /// `member` voted in `view` (a vote of a non-member is ignored).
    pub fn voted(&mut self, member: &MemberKey, view: u64) {
        if let Some(last) = self.last_vote.get_mut(member) {
            *last = (*last).max(view);
            self.reported.remove(member);
        }
    }

    /// The members silent as of `view` that were not reported since their last vote.
    pub fn silent(&mut self, view: u64) -> Vec<MemberKey> {
        let mut silent = Vec::new();
        for (member, last) in &self.last_vote {
            if view.saturating_sub(*last) >= self.views && self.reported.insert(*member) {
                silent.push(*member);
            }
        }
        silent
    }
}

/// What an offered accusation or proof did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer<P> {
    /// Kept; not enough yet.
    Held {
        /// Distinct accusers of this member now held.
        accusers: usize,
    },
    /// Enough for a decision, which every replica will check again.
    Decides(Box<Quarantine<P>>),
}

/// Accusations from the committee, gathered per accused until f+1 distinct accusers agree.
#[derive(Debug, Clone, Default)]
pub struct AccusationPool {
    held: BTreeMap<MemberKey, BTreeMap<MemberKey, Accusation>>,
}

impl AccusationPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers an accusation at `now_ms`: checked by the one rule before it is stored, the
    /// accuser's latest kept. Returns the decision once f+1 distinct accusers are held for a
    /// member that may still be quarantined.
    pub fn offer<P: SelfProof>(
        &mut self,
        accusation: Accusation,
        membership: &Membership,
        now_ms: u64,
    ) -> Result<Offer<P>, Refusal> {
        membership.check_accusation(&accusation, now_ms)?;
        membership.check_target(&accusation.accused, accusation.epoch)?;
        let against = self.held.entry(accusation.accused).or_default();
        match against.get(&accusation.accuser) {
            Some(kept) if kept.at_ms >= accusation.at_ms => {}
            _ => {
                against.insert(accusation.accuser, accusation);
            }
        }
        self.decision(&accusation.accused, membership, now_ms)
    }

    /// Offers a self-proof: a decision at once if it convicts a member that may be quarantined.
    pub fn offer_proof<P: SelfProof>(
        &mut self,
        member: MemberKey,
        proof: P,
        membership: &Membership,
        now_ms: u64,
    ) -> Result<Offer<P>, Refusal> {
        let decision = Quarantine {
            member,
            epoch: membership.epoch(),
            evidence: Evidence::SelfProof(Box::new(proof)),
        };
        membership.check(&decision, now_ms)?;
        Ok(Offer::Decides(Box::new(decision)))
    }

    fn decision<P: SelfProof>(
        &mut self,
        accused: &MemberKey,
        membership: &Membership,
        now_ms: u64,
    ) -> Result<Offer<P>, Refusal> {
        self.prune(membership, now_ms);
        // f + 1 of them decide (the first by accuser key); more add nothing.
        let need = membership.f() + 1;
        let held: Vec<Accusation> = self
            .held
            .get(accused)
            .map(|a| a.values().take(need).copied().collect())
            .unwrap_or_default();
        if held.len() < need {
            return Ok(Offer::Held {
                accusers: held.len(),
            });
        }
        let decision = Quarantine {
            member: *accused,
            epoch: membership.epoch(),
            evidence: Evidence::Accusations(held),
        };
        membership.check(&decision, now_ms)?;
        Ok(Offer::Decides(Box::new(decision)))
    }

    /// Drops what no longer counts at `now_ms`: other epochs, stale accusations, accusers or
    /// accused no longer admitted.
    pub fn prune(&mut self, membership: &Membership, now_ms: u64) {
        for against in self.held.values_mut() {
            against.retain(|_, a| membership.check_accusation(a, now_ms).is_ok());
        }
        self.held.retain(|accused, against| {
            !against.is_empty() && membership.check_target(accused, membership.epoch()).is_ok()
        });
    }

    /// The members some held accusation names.
    pub fn accused(&self) -> impl Iterator<Item = &MemberKey> {
        self.held
            .iter()
            .filter(|(_, against)| !against.is_empty())
            .map(|(member, _)| member)
    }

    /// How many accusations are held.
    pub fn len(&self) -> usize {
        self.held.values().map(BTreeMap::len).sum()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{committee, id, key, DoubleSign};

    type Offered = Result<Offer<DoubleSign>, Refusal>;

    #[test]
    fn a_node_accuses_once_its_own_evidence_reaches_the_threshold_within_the_window() {
        let m = committee(4);
        let mut watch = Watch::new(id(0), &m);
        // Refused proposals: 3 within 600 times.
        assert!(!watch.observe(id(3), Grounds::RefusedProposals, 10));
        assert!(!watch.observe(id(3), Grounds::RefusedProposals, 400));
        // The first has aged out by the third: not yet.
        assert!(!watch.observe(id(3), Grounds::RefusedProposals, 700));
        assert!(watch.observe(id(3), Grounds::RefusedProposals, 710));
        // Once per epoch and grounds.
        assert!(!watch.observe(id(3), Grounds::RefusedProposals, 711));
        // A contraindicated appraisal is enough at once; never against itself or an outsider.
        assert!(watch.observe(id(2), Grounds::Contraindicated, 1));
        assert!(!watch.observe(id(0), Grounds::Contraindicated, 1));
        assert!(!watch.observe([9; 32], Grounds::Contraindicated, 1));
        watch.new_epoch(&m);
        assert!(watch.observe(id(2), Grounds::Contraindicated, 1));
    }

    #[test]
    fn a_member_without_votes_for_silence_views_is_reported_once_per_stretch() {
        let m = committee(4);
        let mut silence = Silence::new(&m, 100);
        for view in 101..=119 {
            for i in 0..3 {
                silence.voted(&id(i), view);
            }
            assert!(silence.silent(view).is_empty(), "view {view}");
        }
        assert_eq!(silence.silent(120), vec![id(3)]);
        assert!(silence.silent(121).is_empty());
        silence.voted(&id(3), 121);
        silence.voted(&[7; 32], 121);
        assert!(silence.silent(140).iter().all(|m| *m != id(3)));
        assert!(silence.silent(141).contains(&id(3)));
    }

    #[test]
    fn a_member_that_joined_at_the_change_gets_a_second_stretch_before_it_counts_as_silent() {
        let m = committee(4);
        // Member 3 joined at this epoch change; 0 to 2 were members before.
        let mut silence = Silence::after_change(&m, 100, &[id(0), id(1), id(2)]);
        // Nobody votes: the members that stayed are silent after one stretch, the newcomer not.
        let mut stayed = silence.silent(120);
        stayed.sort_unstable();
        let mut expected = vec![id(0), id(1), id(2)];
        expected.sort_unstable();
        assert_eq!(stayed, expected);
        assert!(silence.silent(139).is_empty());
        assert_eq!(silence.silent(140), vec![id(3)]);
        // Once it votes it is counted like everyone else.
        let mut silence = Silence::after_change(&m, 100, &[id(0), id(1), id(2)]);
        silence.voted(&id(3), 125);
        assert!(silence.silent(144).iter().all(|m| *m != id(3)));
        assert!(silence.silent(145).contains(&id(3)));
    }

    #[test]
    fn the_pool_decides_at_f_plus_one_distinct_accusers_and_stores_nothing_it_refused() {
        for n in [4u8, 7] {
            let m = committee(n);
            let f = m.f() as u8;
            let mut pool = AccusationPool::new();
            // Forged and outsiders' accusations take no room.
            let mut forged = Accusation::sign(&key(0), id(n - 1), Grounds::Silence, 0, 5);
            forged.signature[1] ^= 1;
            assert!(pool.offer::<DoubleSign>(forged, &m, 5).is_err());
            let outsider = Accusation::sign(&key(99), id(n - 1), Grounds::Silence, 0, 5);
            assert!(pool.offer::<DoubleSign>(outsider, &m, 5).is_err());
            assert!(pool.is_empty());
            for i in 0..f {
                let a = Accusation::sign(&key(i), id(n - 1), Grounds::Silence, 0, 5);
                let offered: Offered = pool.offer(a, &m, 5);
                assert_eq!(
                    offered,
                    Ok(Offer::Held {
                        accusers: usize::from(i) + 1
                    })
                );
                // The same accuser again does not count twice.
                let offered: Offered = pool.offer(a, &m, 5);
                assert_eq!(
                    offered,
                    Ok(Offer::Held {
                        accusers: usize::from(i) + 1
                    })
                );
            }
            let last = Accusation::sign(&key(f), id(n - 1), Grounds::Contraindicated, 0, 6);
            let Ok(Offer::Decides(decision)) = pool.offer::<DoubleSign>(last, &m, 6) else {
                panic!("f+1 accusers should decide at n = {n}");
            };
            let mut replica = m.clone();
            assert!(replica.apply(&decision, 7).is_ok());
            // Accusations age out of the pool.
            let mut pool = AccusationPool::new();
            let a = Accusation::sign(&key(0), id(n - 1), Grounds::Silence, 0, 5);
            assert!(pool.offer::<DoubleSign>(a, &m, 5).is_ok());
            pool.prune(&m, 700);
            assert!(pool.is_empty());
        }
    }
}
