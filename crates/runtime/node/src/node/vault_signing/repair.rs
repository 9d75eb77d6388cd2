//! Repair between processes (`bulwark_vault::repair`): a member of the committee left out of
//! the current sharing (re-admitted after the others refreshed without it) gets its share of
//! that sharing from t holders, and the holders add it to their packages.
//!
//! - Every member holding the current shares says so each [`HOLDING_EVERY`]
//!   ([`Message::Holding`]: the epoch and the holders).
//! - A member in the committed committee whose shares are not that sharing's learns it is left
//!   out from f + 1 such messages that do not name it (one of them is honest), stops any
//!   refresh of its own, and asks t of the members that say they hold the sharing
//!   ([`Message::RepairAsk`], a fresh nonce per attempt, another set after [`ATTEMPT`]).
//! - Each helper checks the request against its own committed state (the asker is in the
//!   committee; the helpers are t holders, itself among them) and sends its deltas
//!   ([`Message::RepairDelta`]); once it holds one from every helper it sends the newcomer its
//!   sigma and the public package ([`Message::RepairSigma`]).
//! - The newcomer keeps the result only if every helper sent the same package and the share is
//!   the one the holders' verifying shares interpolate to at its number; a lie by a helper
//!   costs an attempt, never a wrong share. It installs the share and says it holds it; each
//!   holder then adds its verifying share (computed from public values alone).
//!
//! Every map here is bounded by the committee (one entry per member).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime};

use bulwark_vault::keygen::KeyShare;
use bulwark_vault::release::VaultSuite;
use bulwark_vault::repair;
use bulwark_vault::round::Message;
use bulwark_vault::{Chain, Ed25519, Member, Taproot, MEMBERS_MAX};
use tracing::{info, warn};

use bulwark_consensus::replica::PublicKey;
use commonware_macros::select;
use commonware_p2p::Recipients;
use commonware_runtime::{Clock, IoBuf};

use super::super::vault_keys::VaultKeys;
use super::{Signer, SigningError};

/// How often a holder says it holds the current sharing.
pub(super) const HOLDING_EVERY: Duration = Duration::from_secs(2);

/// How long a newcomer waits for an attempt before it asks other helpers.
const ATTEMPT: Duration = Duration::from_secs(5);

/// A peer's holding is forgotten after this long without a new one.
const HOLDING_KEPT: Duration = Duration::from_secs(10);

/// A helper starts a new attempt for one newcomer at most this often.
const HELP_EVERY: Duration = Duration::from_secs(2);

/// A helper forgets an attempt after this long.
const HELP_KEPT: Duration = Duration::from_secs(30);

/// The repair state of one member.
#[derive(Default)]
pub(super) struct Repair {
    /// The committed committee and its epoch, as last seen.
    pub(super) seen: Option<(u64, BTreeSet<Member>)>,
    /// Each peer's newest holding: (epoch, holders, when).
    holding: BTreeMap<Member, (u64, BTreeSet<Member>, SystemTime)>,
    last_holding: Option<SystemTime>,
    /// As the member left out: the attempt under way.
    asking: Option<Asking>,
    attempts: u64,
    /// As a helper: the newest attempt per newcomer.
    helping: BTreeMap<Member, Helping>,
    /// Deltas that came before the newcomer's ask, per newcomer (at most [`EARLY_KEPT`]).
    early: BTreeMap<Member, VecDeque<Early>>,
}

/// A delta kept until the newcomer's ask arrives.
struct Early {
    nonce: u64,
    helpers: BTreeSet<Member>,
    from: Member,
    chain: Chain,
    delta: Vec<u8>,
}

/// Early deltas kept per newcomer.
const EARLY_KEPT: usize = 2 * bulwark_vault::MEMBERS_MAX;

/// Each helper's (sigma, public package) for one key.
type Sigmas = BTreeMap<Member, (Vec<u8>, Vec<u8>)>;

struct Asking {
    epoch: u64,
    helpers: BTreeSet<Member>,
    nonce: u64,
    at: SystemTime,
    /// Per chain: each helper's (sigma, public package).
    got: BTreeMap<Chain, Sigmas>,
    bitcoin: Option<KeyShare<Taproot>>,
    ed25519: Option<KeyShare<Ed25519>>,
}

struct Helping {
    helpers: BTreeSet<Member>,
    nonce: u64,
    at: SystemTime,
    deltas: BTreeMap<Chain, BTreeMap<Member, Vec<u8>>>,
    sent: BTreeSet<Chain>,
}

type Out = Vec<(Option<Member>, Message)>;

fn elapsed(now: SystemTime, since: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or(Duration::ZERO)
}

/// A helper's sigma as it arrived.
pub(super) struct Sigma {
    pub(super) epoch: u64,
    pub(super) chain: Chain,
    pub(super) helpers: Vec<Member>,
    pub(super) nonce: u64,
    pub(super) sigma: Vec<u8>,
    pub(super) public: Vec<u8>,
}

/// Both shares of a finished repair, checked.
pub(super) struct Repaired {
    pub(super) epoch: u64,
    pub(super) helpers: BTreeSet<Member>,
    pub(super) bitcoin: KeyShare<Taproot>,
    pub(super) ed25519: KeyShare<Ed25519>,
}

impl Repair {
    /// Takes a peer's holding (not this member's own); whether it was taken.
    pub(super) fn observe(
        &mut self,
        me: Member,
        from: Member,
        epoch: u64,
        holders: Vec<Member>,
        now: SystemTime,
    ) -> bool {
        let holders: BTreeSet<Member> = holders.into_iter().collect();
        if from == me || holders.len() > MEMBERS_MAX || !holders.contains(&from) {
            return false;
        }
        self.holding.insert(from, (epoch, holders, now));
        true
    }

    /// Starts helping `newcomer` on its ask, taking the deltas that came before it.
    fn start_helping(
        &mut self,
        newcomer: Member,
        helpers: &BTreeSet<Member>,
        nonce: u64,
        now: SystemTime,
    ) {
        let mut entry = Helping {
            helpers: helpers.clone(),
            nonce,
            at: now,
            deltas: BTreeMap::new(),
            sent: BTreeSet::new(),
        };
        for early in self.early.remove(&newcomer).unwrap_or_default() {
            if early.nonce == nonce && early.helpers == *helpers {
                entry
                    .deltas
                    .entry(early.chain)
                    .or_default()
                    .entry(early.from)
                    .or_insert(early.delta);
            }
        }
        self.helping.insert(newcomer, entry);
    }

    /// Keeps a delta that came before the newcomer's ask (the oldest goes first).
    fn keep_early(&mut self, newcomer: Member, early: Early) {
        let kept = self.early.entry(newcomer).or_default();
        if kept.len() >= EARLY_KEPT {
            kept.pop_front();
        }
        kept.push_back(early);
    }

    /// Forgets old holdings and attempts.
    pub(super) fn expire(&mut self, committee: &BTreeSet<Member>, now: SystemTime) {
        self.early
            .retain(|newcomer, _| committee.contains(newcomer));
        self.holding
            .retain(|_, (_, _, at)| elapsed(now, *at) < HOLDING_KEPT);
        self.helping
            .retain(|newcomer, h| committee.contains(newcomer) && elapsed(now, h.at) < HELP_KEPT);
    }

    /// Whether f + 1 members of the committee hold `epoch`'s sharing without `me` (one of
    /// them is honest, so `me` was left out); f counts the genesis `seats`, so a committee
    /// made smaller does not lower the bar.
    pub(super) fn left_out(
        &self,
        me: Member,
        epoch: u64,
        committee: &BTreeSet<Member>,
        seats: usize,
    ) -> bool {
        if !committee.contains(&me) {
            return false;
        }
        let f = seats.saturating_sub(1) / 3;
        let without_me = self
            .holding
            .iter()
            .filter(|(m, (e, holders, _))| {
                *e == epoch && committee.contains(m) && !holders.contains(&me)
            })
            .count();
        without_me > f
    }

    /// Starts an attempt when none runs (or the last one is over): t of the members that say
    /// they hold `epoch`'s sharing, another t at each attempt, a fresh nonce.
    pub(super) fn ask(
        &mut self,
        me: Member,
        t: usize,
        epoch: u64,
        committee: &BTreeSet<Member>,
        now: SystemTime,
    ) -> Out {
        let mut out = Vec::new();
        let holding: Vec<Member> = self
            .holding
            .iter()
            .filter(|(m, (e, _, _))| **m != me && *e == epoch && committee.contains(m))
            .map(|(m, _)| *m)
            .collect();
        if holding.len() < t || t == 0 {
            return out;
        }
        if self
            .asking
            .as_ref()
            .is_some_and(|a| a.epoch == epoch && elapsed(now, a.at) < ATTEMPT)
        {
            return out;
        }
        let start = (self.attempts as usize) % holding.len();
        self.attempts += 1;
        let helpers: BTreeSet<Member> = holding
            .iter()
            .cycle()
            .skip(start)
            .take(t)
            .copied()
            .collect();
        let nonce: u64 = rand::random();
        info!(
            epoch,
            ?helpers,
            "asking for a repair of this member's vault shares"
        );
        let list: Vec<Member> = helpers.iter().copied().collect();
        for helper in &helpers {
            out.push((
                Some(*helper),
                Message::RepairAsk {
                    epoch,
                    helpers: list.clone(),
                    nonce,
                },
            ));
        }
        self.asking = Some(Asking {
            epoch,
            helpers,
            nonce,
            at: now,
            got: BTreeMap::new(),
            bitcoin: None,
            ed25519: None,
        });
        out
    }

    /// A helper's sigma for the attempt under way; both shares once every helper's are in and
    /// check.
    pub(super) fn on_sigma(
        &mut self,
        me: Member,
        from: Member,
        sigma: Sigma,
        now: SystemTime,
    ) -> Option<Repaired> {
        let asking = self.asking.as_mut()?;
        let helpers: BTreeSet<Member> = sigma.helpers.into_iter().collect();
        if asking.epoch != sigma.epoch
            || asking.nonce != sigma.nonce
            || asking.helpers != helpers
            || !helpers.contains(&from)
            || sigma.sigma.len() > repair::SCALAR_BYTES_MAX
            || sigma.public.len() > repair::PUBLIC_BYTES_MAX
        {
            return None;
        }
        let got = asking.got.entry(sigma.chain).or_default();
        if got.contains_key(&from) {
            return None;
        }
        got.insert(from, (sigma.sigma, sigma.public));
        if got.len() == helpers.len() {
            self.combine(me, sigma.chain, now);
        }
        let asking = self.asking.as_ref()?;
        if asking.bitcoin.is_none() || asking.ed25519.is_none() {
            return None;
        }
        let asking = self.asking.take()?;
        Some(Repaired {
            epoch: asking.epoch,
            helpers: asking.helpers,
            bitcoin: asking.bitcoin?,
            ed25519: asking.ed25519?,
        })
    }

    /// The share of `chain` from every helper's sigma, if they sent one package; a failure ends
    /// the attempt (the next starts at once, with other helpers where there are others).
    fn combine(&mut self, me: Member, chain: Chain, now: SystemTime) {
        let Some(asking) = self.asking.as_mut() else {
            return;
        };
        let Some(got) = asking.got.get(&chain) else {
            return;
        };
        let packages: BTreeSet<&Vec<u8>> = got.values().map(|(_, public)| public).collect();
        let sigmas: BTreeMap<Member, Vec<u8>> =
            got.iter().map(|(m, (s, _))| (*m, s.clone())).collect();
        let result = match (packages.len(), packages.first()) {
            (1, Some(public)) => match chain {
                Chain::Bitcoin => repaired::<Taproot>(me, &asking.helpers, &sigmas, public)
                    .map(|share| asking.bitcoin = Some(share)),
                Chain::Ed25519 => repaired::<Ed25519>(me, &asking.helpers, &sigmas, public)
                    .map(|share| asking.ed25519 = Some(share)),
            },
            _ => Err("the helpers sent different public packages".to_string()),
        };
        if let Err(reason) = result {
            warn!(helpers = ?asking.helpers, chain = chain.name(), %reason, "the repair failed; asking again");
            asking.at = now.checked_sub(ATTEMPT).unwrap_or(SystemTime::UNIX_EPOCH);
            asking.got.clear();
            asking.bitcoin = None;
            asking.ed25519 = None;
        }
    }
}

impl Signer {
    /// Whether this member signs with the sharing of the committed epoch.
    fn current(&self) -> bool {
        !self.void
            && self.refresh.is_none()
            && self
                .repair
                .seen
                .as_ref()
                .is_some_and(|(epoch, _)| *epoch == self.epoch)
    }

    fn in_committee(&self, member: Member) -> bool {
        self.repair
            .seen
            .as_ref()
            .is_some_and(|(_, committee)| committee.contains(&member))
    }

    /// Each tick: says what it holds, finds out whether it was left out, asks for a repair.
    /// `seen` is the committed epoch and committee (`None` before the sentinel's membership).
    pub(super) fn tick_repair(
        &mut self,
        seen: Option<(u64, BTreeSet<Member>)>,
        now: SystemTime,
    ) -> Out {
        let mut out = Vec::new();
        self.repair.seen = seen;
        let Some((epoch, committee)) = self.repair.seen.clone() else {
            return out;
        };
        self.repair.expire(&committee, now);
        if self.current() {
            self.repair.asking = None;
            if self
                .repair
                .last_holding
                .is_none_or(|at| elapsed(now, at) >= HOLDING_EVERY)
            {
                self.repair.last_holding = Some(now);
                out.push((
                    None,
                    Message::Holding {
                        epoch,
                        holders: self.holders(),
                        proofs: self.proofs(),
                    },
                ));
            }
            return out;
        }
        if !committee.contains(&self.me) {
            self.repair.asking = None;
            return out;
        }
        if !self
            .repair
            .left_out(self.me, epoch, &committee, self.peers.seats())
        {
            return out;
        }
        if !self.void {
            warn!(epoch, "the committee refreshed the vault's shares without this member: its shares are void; it asks for a repair");
            self.void = true;
            self.refresh = None;
            self.running = None;
        }
        let t = usize::from(self.bitcoin.share.threshold());
        out.extend(self.repair.ask(self.me, t, epoch, &committee, now));
        out
    }

    /// A repair frame from `from`.
    pub(super) fn repair_message(
        &mut self,
        from: Member,
        message: Message,
        now: SystemTime,
    ) -> Result<Out, SigningError> {
        let mut out = Vec::new();
        match message {
            Message::Holding {
                epoch,
                holders,
                proofs,
            } => {
                if !self.repair.observe(self.me, from, epoch, holders, now) {
                    return Ok(out);
                }
                // A member that holds this sharing and is not in this holder's package was
                // repaired: on its proofs, its verifying share joins the package, and the
                // proofs go on to every member.
                out.extend(self.vouched(from, epoch, proofs)?);
            }
            Message::Vouch {
                epoch,
                member,
                proofs,
            } if member != self.me => {
                out.extend(self.vouched(member, epoch, proofs)?);
            }
            Message::RepairAsk {
                epoch,
                helpers,
                nonce,
            } => {
                let Some(helpers) = self.may_help(epoch, from, &helpers) else {
                    return Ok(out);
                };
                // Only the newcomer's own ask starts an attempt, at most one per HELP_EVERY.
                let fresh = match self.repair.helping.get(&from) {
                    Some(h) if h.nonce == nonce => false,
                    Some(h) => elapsed(now, h.at) >= HELP_EVERY,
                    None => true,
                };
                if !fresh {
                    return Ok(out);
                }
                self.repair.start_helping(from, &helpers, nonce, now);
                let list: Vec<Member> = helpers.iter().copied().collect();
                let made = (
                    repair::deltas(&self.bitcoin.share, &helpers, from, rand::random()),
                    repair::deltas(&self.ed25519.share, &helpers, from, rand::random()),
                );
                let (Ok(bitcoin), Ok(ed25519)) = made else {
                    warn!(newcomer = from, "cannot make repair deltas");
                    return Ok(out);
                };
                for (chain, deltas) in [(Chain::Bitcoin, bitcoin), (Chain::Ed25519, ed25519)] {
                    for (to, delta) in deltas {
                        if to == self.me {
                            if let Some(entry) = self.repair.helping.get_mut(&from) {
                                entry.deltas.entry(chain).or_default().insert(to, delta);
                            }
                        } else {
                            out.push((
                                Some(to),
                                Message::RepairDelta {
                                    epoch,
                                    chain,
                                    newcomer: from,
                                    helpers: list.clone(),
                                    nonce,
                                    delta,
                                },
                            ));
                        }
                    }
                }
                out.extend(self.sigmas(epoch, from));
            }
            Message::RepairDelta {
                epoch,
                chain,
                newcomer,
                helpers,
                nonce,
                delta,
            } => {
                let Some(helpers) = self.may_help(epoch, newcomer, &helpers) else {
                    return Ok(out);
                };
                if !helpers.contains(&from) || delta.len() > repair::SCALAR_BYTES_MAX {
                    return Ok(out);
                }
                match self.repair.helping.get_mut(&newcomer) {
                    Some(entry) if entry.nonce == nonce => {
                        if entry.helpers != helpers {
                            return Ok(out);
                        }
                        entry
                            .deltas
                            .entry(chain)
                            .or_default()
                            .entry(from)
                            .or_insert(delta);
                    }
                    // Before the newcomer's ask reached this helper: kept aside (a few per
                    // newcomer) until it does.
                    _ => self.repair.keep_early(
                        newcomer,
                        Early {
                            nonce,
                            helpers,
                            from,
                            chain,
                            delta,
                        },
                    ),
                }
                out.extend(self.sigmas(epoch, newcomer));
            }
            Message::RepairSigma {
                epoch,
                chain,
                helpers,
                nonce,
                sigma,
                public,
            } => {
                let sigma = Sigma {
                    epoch,
                    chain,
                    helpers,
                    nonce,
                    sigma,
                    public,
                };
                if let Some(done) = self.repair.on_sigma(self.me, from, sigma, now) {
                    out.extend(self.finish_repair(done)?);
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// The helpers named in a request, if this member may help repair `newcomer` with them.
    fn may_help(
        &self,
        epoch: u64,
        newcomer: Member,
        helpers: &[Member],
    ) -> Option<BTreeSet<Member>> {
        if !self.current() || epoch != self.epoch || newcomer == self.me {
            return None;
        }
        if !self.in_committee(newcomer) || helpers.len() > MEMBERS_MAX {
            return None;
        }
        let set: BTreeSet<Member> = helpers.iter().copied().collect();
        if set.len() != helpers.len() || !set.contains(&self.me) {
            return None;
        }
        let checked = repair::check_helpers(&self.bitcoin.share, &set, newcomer)
            .and_then(|()| repair::check_helpers(&self.ed25519.share, &set, newcomer));
        checked.ok().map(|()| set)
    }

    /// The sigmas this helper can send `newcomer` now: for each key once every helper's delta
    /// (its own included) is in.
    fn sigmas(&mut self, epoch: u64, newcomer: Member) -> Out {
        let mut out = Vec::new();
        let bitcoin_public = self.bitcoin.share.public.serialize().ok();
        let ed25519_public = self.ed25519.share.public.serialize().ok();
        let Some(entry) = self.repair.helping.get_mut(&newcomer) else {
            return out;
        };
        for chain in Chain::ALL {
            let Some(deltas) = entry.deltas.get(&chain) else {
                continue;
            };
            if entry.sent.contains(&chain) || deltas.len() != entry.helpers.len() {
                continue;
            }
            let (sigma, public) = match chain {
                Chain::Bitcoin => (
                    repair::sigma::<Taproot>(&entry.helpers, deltas),
                    bitcoin_public.clone(),
                ),
                Chain::Ed25519 => (
                    repair::sigma::<Ed25519>(&entry.helpers, deltas),
                    ed25519_public.clone(),
                ),
            };
            let (Ok(sigma), Some(public)) = (sigma, public) else {
                warn!(
                    newcomer,
                    chain = chain.name(),
                    "a repair delta does not decode; this attempt ends here"
                );
                entry.sent.insert(chain);
                continue;
            };
            entry.sent.insert(chain);
            out.push((
                Some(newcomer),
                Message::RepairSigma {
                    epoch,
                    chain,
                    helpers: entry.helpers.iter().copied().collect(),
                    nonce: entry.nonce,
                    sigma,
                    public,
                },
            ));
        }
        out
    }

    /// Installs the repaired shares; says so to every member.
    fn finish_repair(&mut self, done: Repaired) -> Result<Out, SigningError> {
        let keys = self.install(done.epoch, done.bitcoin, done.ed25519)?;
        info!(epoch = done.epoch, helpers = ?done.helpers, holders = ?keys.holders, "vault shares repaired: this member holds the committee's sharing again; its old shares are deleted");
        self.repair.last_holding = Some(SystemTime::now());
        Ok(vec![(
            None,
            Message::Holding {
                epoch: done.epoch,
                holders: keys.holders,
                proofs: self.proofs(),
            },
        )])
    }

    /// This member's proofs of possession of its current shares, in chain order.
    fn proofs(&self) -> Vec<Vec<u8>> {
        [
            repair::prove_holding(&self.bitcoin.share, self.epoch, rand::random()),
            repair::prove_holding(&self.ed25519.share, self.epoch, rand::random()),
        ]
        .into_iter()
        .filter_map(Result::ok)
        .collect()
    }

    /// `member` shows proofs that it holds this sharing: a member of the committee not yet in
    /// this holder's packages is added, and the proofs go on to every member (once, when it is
    /// added).
    fn vouched(
        &mut self,
        member: Member,
        epoch: u64,
        proofs: Vec<Vec<u8>>,
    ) -> Result<Out, SigningError> {
        let known = self.bitcoin.share.holders().contains(&member)
            && self.ed25519.share.holders().contains(&member);
        if !self.current() || epoch != self.epoch || known || !self.in_committee(member) {
            return Ok(Vec::new());
        }
        let [bitcoin, ed25519] = proofs.as_slice() else {
            return Ok(Vec::new());
        };
        let checked = repair::check_holding(&self.bitcoin.share.public, epoch, member, bitcoin)
            .and_then(|()| {
                repair::check_holding(&self.ed25519.share.public, epoch, member, ed25519)
            });
        if let Err(error) = checked {
            warn!(member, %error, "a member claims a vault share its proof does not show; not added");
            return Ok(Vec::new());
        }
        self.add_holder(member)?;
        Ok(vec![(
            None,
            Message::Vouch {
                epoch,
                member,
                proofs,
            },
        )])
    }

    /// Adds repaired `member`'s verifying share to this holder's packages and record.
    fn add_holder(&mut self, member: Member) -> Result<(), SigningError> {
        let store = |e: bulwark_vaultstore::StoreError| SigningError::Store(e.to_string());
        let (Ok(bitcoin), Ok(ed25519)) = (
            repair::with_holder(&self.bitcoin.share, member),
            repair::with_holder(&self.ed25519.share, member),
        ) else {
            return Ok(());
        };
        let keys = super::super::vault_keys::store_shares(
            &mut self.files,
            &self.keys_path,
            self.epoch,
            &bitcoin,
            &ed25519,
        )
        .map_err(store)?;
        self.bitcoin.share = bitcoin;
        self.ed25519.share = ed25519;
        info!(epoch = self.epoch, member, holders = ?keys.holders, "a repaired member holds the vault's sharing again");
        self.keys = keys.clone();
        self.status
            .lock()
            .expect("the vault status lock must not be poisoned")
            .keys = Some(keys);
        Ok(())
    }
}

/// A node that joined after genesis and holds no share: waits until the committed committee
/// has it, learns from f + 1 holders that it holds nothing of their sharing, asks t of them for
/// a repair (again with other helpers until one checks), stores both shares sealed by its
/// vault backend and their record, and returns the record. Answers pings meanwhile.
pub(super) async fn await_repair<E, S, R>(
    context: &E,
    setup: &mut super::Setup,
    sender: &mut S,
    receiver: &mut R,
) -> Result<VaultKeys, SigningError>
where
    E: Clock,
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
{
    let genesis: Vec<PublicKey> = setup.participants.iter().cloned().collect();
    let seats = genesis.len();
    let t = usize::from(bulwark_vault::threshold(seats));
    let mut peers = super::peers::Peers::new(genesis);
    let me = peers.number(&setup.me);
    let mut repair = Repair::default();
    let mut said = None;
    info!(member = me, "vault: waiting to join the committee; the members that hold the vault's shares will repair one for this node");
    loop {
        let deadline = context.current() + super::TICK;
        let mut out: Out = Vec::new();
        select! {
            _ = context.sleep_until(deadline) => {
                let now = context.current();
                let engine = setup.view.lock().expect("the view lock must not be poisoned").engine.clone();
                let Some(membership) = engine.membership() else { continue };
                let epoch = membership.epoch();
                let committee = peers.learn(epoch, membership.members());
                repair.expire(&committee, now);
                let state = (epoch, committee.contains(&me));
                if said != Some(state) {
                    said = Some(state);
                    if state.1 {
                        info!(epoch, "vault: this node is in the committee; asking the holders for a repair");
                    }
                }
                if repair.left_out(me, epoch, &committee, seats) {
                    out = repair.ask(me, t, epoch, &committee, now);
                }
            },
            message = receiver.recv() => {
                let Ok((peer, bytes)) = message else {
                    return Err(SigningError::Network);
                };
                let Some(from) = peers.member_of(&peer) else { continue };
                let now = context.current();
                match Message::decode(bytes.as_ref()) {
                    Ok(Message::Holding { epoch, holders, .. }) => {
                        repair.observe(me, from, epoch, holders, now);
                    }
                    Ok(Message::Ping { nonce }) => out.push((Some(from), Message::Pong { nonce })),
                    Ok(Message::RepairSigma { epoch, chain, helpers, nonce, sigma, public }) => {
                        let sigma = Sigma { epoch, chain, helpers, nonce, sigma, public };
                        if let Some(done) = repair.on_sigma(me, from, sigma, now) {
                            return store_repaired(setup, done);
                        }
                    }
                    _ => {}
                }
            },
        }
        for (to, message) in out {
            if let Some(peer) = to.and_then(|to| peers.key(to)) {
                sender.send(
                    Recipients::One(peer.clone()),
                    IoBuf::from(message.encode()),
                    false,
                );
            }
        }
    }
}

/// Stores a newcomer's repaired shares and their record.
fn store_repaired(setup: &mut super::Setup, done: Repaired) -> Result<VaultKeys, SigningError> {
    let path = super::super::vault_keys::keys_path(&setup.data_dir);
    let keys = super::super::vault_keys::store_shares(
        &mut setup.files,
        &path,
        done.epoch,
        &done.bitcoin,
        &done.ed25519,
    )
    .map_err(|e| SigningError::Store(e.to_string()))?;
    info!(epoch = done.epoch, helpers = ?done.helpers, bitcoin = %keys.bitcoin_xonly, ed25519 = %keys.ed25519, "vault shares repaired: this node holds a share of the committee's vault keys");
    Ok(keys)
}

fn repaired<C: VaultSuite>(
    me: Member,
    helpers: &BTreeSet<Member>,
    sigmas: &BTreeMap<Member, Vec<u8>>,
    public: &[u8],
) -> Result<KeyShare<C>, String> {
    let public = repair::decode_public::<C>(public).map_err(|e| e.to_string())?;
    repair::repaired::<C>(me, helpers, sigmas, &public).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::VecDeque;

    use super::super::tests::{deliver_tampered as deliver, evidence, ledger, members};
    use super::*;
    use bulwark_vault::keygen::local;

    type Frames = VecDeque<(Member, Option<Member>, Message)>;

    fn tick(members: &mut [Signer], seen: &(u64, BTreeSet<Member>), now: SystemTime) -> Frames {
        let mut frames = VecDeque::new();
        for member in members.iter_mut() {
            let me = member.me;
            for (to, message) in member.tick_repair(Some(seen.clone()), now) {
                frames.push_back((me, to, message));
            }
        }
        frames
    }

    /// Issue #14's repair between members: members 1-3 refreshed into epoch 1 without member 4
    /// (re-admitted in the same epoch). Member 4 learns it was left out from the others'
    /// holdings (one false holding does not move it), asks the three, survives a helper that
    /// lies about its sigma, and ends with a share of the epoch-1 sharing that signs a withdrawal
    /// together with two of them, checked by the one rule (ed25519-dalek strict).
    #[test]
    fn a_member_left_out_of_a_refresh_is_repaired_and_signs_with_the_committee() {
        let dir = std::env::temp_dir().join(format!("bulwark-vault-repair-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let destination = *ed25519_dalek::SigningKey::from_bytes(&[9; 32])
            .verifying_key()
            .as_bytes();
        let engine = ledger(destination);
        let mut members = members(&dir);
        // The same sharings `members` made, refreshed among 1-3 into epoch 1.
        let keep: BTreeSet<Member> = [1, 2, 3].into();
        let bitcoin =
            local::refresh(&local::dkg::<Taproot>(4, [1; 32]).unwrap(), &keep, [3; 32]).unwrap();
        let ed25519 =
            local::refresh(&local::dkg::<Ed25519>(4, [2; 32]).unwrap(), &keep, [4; 32]).unwrap();
        for m in keep.iter().copied() {
            members[usize::from(m) - 1]
                .install(1, bitcoin[&m].clone(), ed25519[&m].clone())
                .unwrap();
        }
        let seen = (1u64, BTreeSet::from([1, 2, 3, 4]));
        let mut now = SystemTime::now();

        // One member's holding without member 4 (f = 1) does not make it give up its shares.
        let mut frames = tick(&mut members, &seen, now);
        let from_one: Frames = frames.iter().filter(|f| f.0 == 1).cloned().collect();
        assert_eq!(from_one.len(), 1, "{frames:?}");
        deliver(&mut members, &engine, from_one, now, |_, _, m| Some(m));
        assert!(members[3].tick_repair(Some(seen.clone()), now).is_empty());
        assert!(!members[3].void, "one holding is not enough");

        // All three holdings: member 4 asks; member 3 lies about its sigma the first time.
        frames.retain(|f| f.0 != 1);
        deliver(&mut members, &engine, frames, now, |_, _, m| Some(m));
        let asks = tick(&mut members, &seen, now);
        assert!(members[3].void);
        assert_eq!(
            asks.iter()
                .filter(|f| matches!(f.2, Message::RepairAsk { .. }))
                .count(),
            3,
            "{asks:?}"
        );
        let mut lied = false;
        deliver(
            &mut members,
            &engine,
            asks,
            now,
            |from, _, message| match message {
                Message::RepairSigma {
                    epoch,
                    chain,
                    helpers,
                    nonce,
                    mut sigma,
                    public,
                } if from == 3 && !lied => {
                    lied = true;
                    sigma[0] ^= 1;
                    Some(Message::RepairSigma {
                        epoch,
                        chain,
                        helpers,
                        nonce,
                        sigma,
                        public,
                    })
                }
                other => Some(other),
            },
        );
        assert!(lied);
        assert!(members[3].void, "a lying helper leaves it with nothing");
        assert_eq!(members[3].epoch, 0);

        // Member 4 claims to hold the sharing with proofs made by its old shares: nobody adds it.
        let pretence = Message::Holding {
            epoch: 1,
            holders: vec![1, 2, 3, 4],
            proofs: vec![
                repair::prove_holding(&members[3].bitcoin.share, 1, [5; 32]).unwrap(),
                repair::prove_holding(&members[3].ed25519.share, 1, [6; 32]).unwrap(),
            ],
        };
        deliver(
            &mut members,
            &engine,
            VecDeque::from([(4, None, pretence)]),
            now,
            |_, _, m| Some(m),
        );
        for member in &members[..3] {
            assert_eq!(member.keys.holders, vec![1, 2, 3], "no share, no holder");
        }
        // Member 2 tries to crowd out the newcomer's next ask at member 1 with deltas of an
        // attempt of its own making: they wait aside and block nothing.
        let poison = (1..=3u64).map(|nonce| {
            (
                2,
                Some(1),
                Message::RepairDelta {
                    epoch: 1,
                    chain: Chain::Ed25519,
                    newcomer: 4,
                    helpers: vec![1, 2, 3],
                    nonce,
                    delta: vec![9; 32],
                },
            )
        });
        deliver(&mut members, &engine, poison.collect(), now, |_, _, m| {
            Some(m)
        });
        // The next attempt (fresh nonce) repairs it. It shows its proofs to member 1 only;
        // member 1 adds it and vouches for it to the others, which add it too.
        now += ATTEMPT;
        let again = tick(&mut members, &seen, now);
        deliver(&mut members, &engine, again, now, |from, to, m| {
            let shown_to_others = from == 4 && to != 1 && matches!(m, Message::Holding { .. });
            (!shown_to_others).then_some(m)
        });
        assert!(!members[3].void);
        assert_eq!(members[3].epoch, 1);
        for member in &members {
            assert_eq!(
                member.keys.holders,
                vec![1, 2, 3, 4],
                "member {}",
                member.me
            );
            assert_eq!(member.keys.epoch, 1);
            assert!(evidence(member).is_empty(), "{:?}", evidence(member));
        }
        assert_eq!(
            members[3].ed25519.share.public, members[0].ed25519.share.public,
            "one package"
        );
        assert_eq!(
            members[3].bitcoin.share.group_key(),
            bitcoin[&1].group_key()
        );

        // Withdrawal 1 with member 1 silent: members 2, 3 and 4 sign it (member 2 coordinates).
        let commit = members[1].start_round(&engine, now).unwrap();
        deliver(
            &mut members,
            &engine,
            VecDeque::from([(2, None, commit)]),
            now,
            |from, to, m| (from != 1 && to != 1).then_some(m),
        );
        for m in [2usize, 3, 4] {
            let status = members[m - 1].status.lock().unwrap();
            let (record, _) = status
                .signed
                .get(&1)
                .unwrap_or_else(|| panic!("member {m} holds the signed withdrawal"));
            assert_eq!(record.chain, Chain::Ed25519);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
