//! The proposer's side of a round: keep the valid signed observations of a feed and round, and
//! form the engine's [`SystemCommand::OracleRound`] once `2f + 1` distinct members signed.
//!
//! Until the committee (consensus) exists, an in-process proposer plays this part in the
//! scenarios; in the node it is the block proposer's job, and every replica runs
//! [`verify_oracle_round_in`] under the parent state's seats on the proposal before executing
//! it.

use bulwark_engine::command::SystemCommand;
use bulwark_engine::oracle::{
    verify_oracle_round_in, OracleRoster, OracleRoundError, SignedObservation, PRICE_MICROS_MAX,
};

/// Why an observation was left out of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dropped {
    /// For another feed or round.
    #[error("observation for another feed or round")]
    WrongRound,
    /// Not signed by a member.
    #[error("signer is not a committee member")]
    NotMember,
    /// The member already has an observation in the round (the first one is kept).
    #[error("member already observed this round")]
    Duplicate,
    /// The member signed a different observation for a round it already observed: the two are
    /// kept aside as self-proving evidence (`OracleEquivocation`), the first stays in the round.
    #[error("member signed a different observation for this round (equivocation)")]
    Equivocation,
    /// Price, confidence or source count out of range.
    #[error("value out of range")]
    OutOfRange,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The round lies further ahead of the receiver's clock than any honest member's clock can
    /// be: a member that signs it is trying to occupy the pool (evidence against the sender).
    #[error("round {round} is {ahead} rounds ahead of the clock")]
    Implausible {
        /// The round it claims.
        round: u64,
        /// How far past the receiver's current round it is.
        ahead: u64,
    },
}

/// The checks an observation must pass wherever it is kept, before anything about it is
/// stored: a seat holder of `roster` signed it, its values are in range, and the signature
/// verifies. Returns the signer's seat.
pub fn check_observation(
    roster: &OracleRoster,
    observation: &SignedObservation,
) -> Result<usize, Dropped> {
    let o = &observation.observation;
    let member = roster
        .seat_of(&observation.node)
        .ok_or(Dropped::NotMember)?;
    if o.price_micros <= 0
        || o.price_micros > PRICE_MICROS_MAX
        || o.confidence_micros < 0
        || o.confidence_micros > o.price_micros
        || o.sources == 0
    {
        return Err(Dropped::OutOfRange);
    }
    observation.verify().map_err(|_| Dropped::BadSignature)?;
    Ok(member)
}

/// Keeps the valid observations of one feed and round, at most one per member.
#[derive(Debug, Clone)]
pub struct RoundBuilder {
    underlying: u16,
    round: u64,
    kept: Vec<(usize, SignedObservation)>,
}

impl RoundBuilder {
    /// An empty round.
    pub fn new(underlying: u16, round: u64) -> Self {
        RoundBuilder {
            underlying,
            round,
            kept: Vec::new(),
        }
    }

    /// Offers one observation; returns why it was dropped, if it was.
    pub fn offer(
        &mut self,
        roster: &OracleRoster,
        observation: SignedObservation,
    ) -> Result<(), Dropped> {
        let o = &observation.observation;
        if o.feed != self.underlying || o.round != self.round {
            return Err(Dropped::WrongRound);
        }
        if roster
            .seat_of(&observation.node)
            .is_some_and(|member| self.kept.iter().any(|(m, _)| *m == member))
        {
            return Err(Dropped::Duplicate);
        }
        let member = check_observation(roster, &observation)?;
        self.insert_checked(member, observation)
    }

    /// Keeps an observation of this feed and round that already passed [`check_observation`]
    /// as member `member`'s, unless that member already has one here.
    pub fn insert_checked(
        &mut self,
        member: usize,
        observation: SignedObservation,
    ) -> Result<(), Dropped> {
        let o = &observation.observation;
        if o.feed != self.underlying || o.round != self.round {
            return Err(Dropped::WrongRound);
        }
        if self.kept.iter().any(|(m, _)| *m == member) {
            return Err(Dropped::Duplicate);
        }
        self.kept.push((member, observation));
        Ok(())
    }

    /// The observation kept for the member signing with `node`, if any.
    pub fn kept_by(&self, node: &[u8; 32]) -> Option<&SignedObservation> {
        self.kept
            .iter()
            .find(|(_, o)| o.node == *node)
            .map(|(_, o)| o)
    }

    /// Keeps only the observations whose signers hold a seat of `roster`, each under its seat
    /// there (after the seats changed at an epoch change).
    pub fn reseat(&mut self, roster: &OracleRoster) {
        self.kept
            .retain_mut(|(seat, o)| match roster.seat_of(&o.node) {
                Some(now) => {
                    *seat = now;
                    true
                }
                None => false,
            });
    }

    /// Distinct members kept so far.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The engine command, in committee order, once the quorum is met; checked with
    /// [`verify_oracle_round_in`] under `roster` as every replica would.
    pub fn finish(mut self, roster: &OracleRoster) -> Result<SystemCommand, OracleRoundError> {
        self.kept.sort_by_key(|(m, _)| *m);
        let observations: Vec<SignedObservation> = self.kept.into_iter().map(|(_, o)| o).collect();
        verify_oracle_round_in(roster, self.underlying, self.round, &observations)?;
        Ok(SystemCommand::OracleRound {
            underlying: self.underlying,
            round: self.round,
            observations,
        })
    }
}
