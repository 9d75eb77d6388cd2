//! What a seeded run does to the committee, and what it produced.

use bulwark_consensus::replica::Committed;
use commonware_utils::{probability, Probability};

/// What to do to the committee during a run.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Seed of the deterministic runtime (network, scheduling, keys).
    pub seed: u64,
    /// Committee size, n = 3f + 1.
    pub n: usize,
    /// Every live replica reaches this height before the fault.
    pub height_before: u64,
    /// Crash this replica (abort all its tasks) once `height_before` is reached.
    pub crash: Option<usize>,
    /// Cut every link of this replica once `height_before` is reached, restore them after
    /// `height_after` more heights, and wait until it has caught up with the others.
    pub isolate: Option<usize>,
    /// These replicas propose blocks with a wrong parent root from the start and, with
    /// `oracle`, sign observations of twice the price.
    pub byzantine: &'static [usize],
    /// These members send only garbage on every channel.
    pub garbage: &'static [usize],
    /// These members run no replica and flood everyone with well-formed blocks nobody asked for
    /// ([`crate::hostile::flood_blocks`]).
    pub block_flooders: &'static [usize],
    /// These members run no replica and only equivocate: for every notarize or finalize vote
    /// they receive, they sign both that proposal and a random one for the same view.
    pub equivocators: &'static [usize],
    /// At `height_before`, split the committee in two halves (no quorum on either side) for 3
    /// virtual seconds, check that nothing finalizes, then heal.
    pub split: bool,
    /// Run the oracle committee: index prices only from rounds certified through blocks.
    pub oracle: bool,
    /// With `oracle`, these members (otherwise honest) also sign observations for rounds far
    /// ahead of the clock (2^63, u64::MAX - 1, u64::MAX) and send unsigned ones, trying to
    /// occupy every member's oracle pool.
    pub far_future_oracle: &'static [usize],
    /// With `oracle`, these members sign two different observations every round, one for each
    /// half of the committee: the sentinel convicts them on their own signatures.
    pub equivocating_oracle: &'static [usize],
    /// These members (otherwise honest) accuse member 0, who is honest, of a contraindicated
    /// appraisal at the start: fewer than f+1 accusers must achieve nothing.
    pub false_accusers: &'static [usize],
    /// Attested admission (DEVELOPMENT evidence): at the start every member appraises every
    /// other's evidence against a signed manifest and cuts off the contraindicated ones.
    pub admission: bool,
    /// With `admission`, these members run a tampered binary: their evidence measures it.
    pub tampered: &'static [usize],
    /// This client account signs every order with a torsion point in `R`
    /// ([`crate::hostile::malleate`]).
    pub malleating_client: Option<u64>,
    /// Restart the crashed replica from its own storage after `height_after`, and wait until
    /// it has caught up.
    pub restart: bool,
    /// Cut the power of the whole committee once `height_before` is reached (after a
    /// seed-chosen delay, so the cut falls anywhere within a round): every member's tasks are
    /// aborted mid-flight, then every member but `stays_down` restarts from its own storage.
    pub power_cut: bool,
    /// With `power_cut`, this member does not come back.
    pub stays_down: Option<usize>,
    /// The live replicas then reach `height_before + height_after`.
    pub height_after: u64,
    /// Probability that a message on a link is delivered.
    pub success_rate: Probability,
    /// At the end, hand the log verifier forgeries of an honest member's log
    /// ([`crate::forgery`]): each must be refused.
    pub forged_logs: bool,
    /// Members whose oracle observations report twice the price (their replicas are honest).
    pub lying_oracle: &'static [usize],
    /// Members whose configuration audit fails: each sends every member its signed report,
    /// twice, after `height_before`.
    pub failed_audit: &'static [usize],
    /// A member that goes silent (crashes, never restarts) once `height_before` is reached.
    pub silent: Option<usize>,
    /// An honest member that crashes when the quarantine lands (mid-reshare) and restarts a
    /// second later, then crashes and restarts once more after the epoch change.
    pub restart_in_reshare: Option<usize>,
    /// The sentinel must remove someone: after `height_before`, the run waits for an epoch
    /// change that removes a member, then `height_after` more heights.
    pub expect_removal: bool,
    /// Chain deposits: every member watches the DEVELOPMENT simulated chain and attests what it
    /// sees; the proposer puts certified deposits in blocks.
    pub chain: bool,
    /// Members whose chain source lies: they attest every real deposit with ten times its
    /// amount, and a deposit that never happened in every chain block.
    pub lying_chain: &'static [usize],
    /// Members that equivocate on deposits: they attest every real deposit twice, once at its
    /// amount and once at ten times it (two signatures for one outpoint convict them).
    pub equivocating_chain: &'static [usize],
    /// Members honest in consensus that answer every catch-up request with forged records
    /// (`Fault::ForgedCatchUp`): a follower must refuse each and follow the log from the others.
    pub forged_catch_up: &'static [usize],
    /// Members honest otherwise that put the transactions of the block they last committed
    /// into every block they propose (`Fault::ReplayTxs`): the engine refuses them as stale
    /// nonces, and no member may tell a client a second receipt for them.
    pub replayers: &'static [usize],
    /// With `silent` naming the same member: once the committee removed it, it restarts,
    /// follows the log by certified catch-up, and is re-admitted by an `admit` carrying f+1
    /// members' affirmations; the run waits until it signs in the next epoch.
    pub readmit: Option<usize>,
    /// After the scenario's own faults, this many steps of the nemesis ([`crate::nemesis`]):
    /// one or two faults at once (isolation, one-way and flapping links, partitions, loss,
    /// delay, crashes, the whole committee crashed), held, healed; then the recovery is
    /// measured (the `nemesis` scenario also runs the oracle committee and skews every clock).
    /// With it, the
    /// sentinel's silence bound is the production default, so a held fault is not a removal.
    pub nemesis: u32,
    /// Each member's clock is off the true time by a seeded amount within ± this many
    /// milliseconds (0: every clock true). It stamps its blocks and its oracle observations,
    /// and judges others', by its own clock.
    pub clock_skew_ms: u64,
}

impl Scenario {
    /// `n` honest members on perfect links reaching height 10, no faults.
    pub fn new(seed: u64, n: usize) -> Self {
        Scenario {
            seed,
            n,
            height_before: 10,
            crash: None,
            isolate: None,
            byzantine: &[],
            garbage: &[],
            block_flooders: &[],
            equivocators: &[],
            split: false,
            oracle: false,
            far_future_oracle: &[],
            equivocating_oracle: &[],
            false_accusers: &[],
            malleating_client: None,
            admission: false,
            tampered: &[],
            restart: false,
            power_cut: false,
            stays_down: None,
            height_after: 0,
            success_rate: probability!(1.0),
            forged_logs: false,
            expect_removal: false,
            lying_oracle: &[],
            failed_audit: &[],
            silent: None,
            restart_in_reshare: None,
            chain: false,
            lying_chain: &[],
            equivocating_chain: &[],
            forged_catch_up: &[],
            replayers: &[],
            readmit: None,
            nemesis: 0,
            clock_skew_ms: 0,
        }
    }
}

/// What a run produced, for [`crate::check`] and the callers' own assertions.
#[derive(Debug)]
pub struct Outcome {
    /// Per member: every height it committed, in order.
    pub ledgers: Vec<Vec<Committed>>,
    /// Per member: heights it committed and then lost with its damaged disk (the nemesis's
    /// [`crate::disk::DiskDamage`]); it committed each again, to the same block and root.
    pub superseded: Vec<Vec<Committed>>,
    /// Per member: proposals it refused.
    pub refused: Vec<u64>,
    /// The member crashed during the run, if any.
    pub crashed: Option<usize>,
    /// The members that proposed wrong roots.
    pub byzantine: &'static [usize],
    /// The members that ran a tampered binary (cut off by the others' admission).
    pub tampered: &'static [usize],
    /// evidence[i][j]: fault records member i holds against member j.
    pub evidence: Vec<Vec<usize>>,
    /// oracle_faults[i][j]: oracle fault records member i holds against member j (both replica
    /// indices, as everywhere in a scenario).
    pub oracle_faults: Vec<Vec<usize>>,
    /// Per member: last certified oracle round of BTC and its index.
    pub oracle: Vec<(u64, Option<i64>)>,
    /// Per member: blocks in its store at the end, and unsolicited blocks it dropped.
    pub block_store: Vec<(usize, u64)>,
    /// When the oracle committee ran: the round the virtual clock was in at the end.
    pub oracle_clock_round: Option<u64>,
    /// Per member: the members its engine's sentinel quarantined (replica indices).
    pub quarantined: Vec<Vec<usize>>,
    /// Heights verified in each honest member's log.
    pub verified: Vec<u64>,
    /// Simulated milliseconds the run took.
    pub virtual_ms: u128,
    /// Per member: the snapshot height it restored its engine from at its last start.
    pub restored: Vec<Option<u64>>,
    /// The forged logs handed to the verifier, and what it made of each.
    pub forgeries: Vec<crate::forgery::Forgery>,
    /// The sentinel's episode: evidence, quarantine, removal, and what the reshare left.
    pub episode: crate::episode::Episode,
    /// With [`Scenario::chain`], per member: what its committed state credited.
    pub deposits: Option<Vec<crate::world::DepositTally>>,
    /// Per member at the end: the epoch its consensus is in, and whether it signs in it.
    pub epochs: Vec<(u64, bool)>,
    /// With [`Scenario::nemesis`]: what it did and how the committee came back.
    pub nemesis: Option<crate::nemesis::NemesisReport>,
    /// What the tracked clients were told, and every member's receipts
    /// ([`crate::clients`]).
    pub clients: crate::clients::Clients,
}
