//! Chain deposits at the node: this member watches its chain source, signs an attestation for
//! every deposit it sees and gossips it on [`CHANNEL_DEPOSITS`]; peers' attestations go into the
//! shared deposit feed (checked before anything is stored), and the proposer takes the
//! certificates n − f members completed (`bulwark_consensus::deposit_feed`).
//!
//! The chain source of a DEVELOPMENT committee is the vault's deterministic simulated chain:
//! every member mines the same blocks from the genesis digest, one every [`CHAIN_BLOCK_MS`] of
//! venue time, paying the genesis accounts. A production node has no chain watcher yet: it
//! attests nothing (and says so at start), and still checks and executes the deposits its peers'
//! blocks carry.

use std::collections::BTreeMap;
use std::time::Duration;

use bulwark_consensus::evidence::Kind;
use bulwark_engine::deposit::Outpoint;
use bulwark_vault::deposit::{Attestation, ChainSource as _, PoolError, SimulatedChain};
use bulwark_vault::Chain;
use commonware_p2p::{Receiver as _, Recipients, Sender as _};
use commonware_runtime::tokio::Context;
use commonware_runtime::{Clock, IoBuf, Spawner as _, Supervisor as _};
use tracing::{info, warn};

use super::startup::{Channel, Prepared, Shared};
use super::tasks::unix_ms;

/// p2p channel of chain deposit attestations.
pub const CHANNEL_DEPOSITS: u64 = 11;

/// Venue time between two blocks of the DEVELOPMENT simulated chain, milliseconds.
pub const CHAIN_BLOCK_MS: u64 = 5_000;

/// How often the watcher looks at its chain and resends its uncredited attestations (a peer
/// that was not connected yet gets them then).
const TICK: Duration = Duration::from_secs(1);
/// Resend every this many ticks.
const RESEND_TICKS: u64 = 5;
/// Most deposits read from the chain that wait for room among this member's open attestations
/// (the pool holds at most `DepositFeed::per_member_max` of a member's); beyond it the oldest
/// wait is dropped with a warning.
const BACKLOG_MAX: usize = 65_536;

/// The DEVELOPMENT simulated chain's seed (from the genesis digest), the accounts it pays and
/// the venue's epoch (its blocks follow venue time).
pub(super) fn dev_chain(prepared: &Prepared) -> (u64, Vec<u64>, u64) {
    let digest = prepared.genesis.1;
    let seed = u64::from_be_bytes(
        digest.as_ref()[..8]
            .try_into()
            .expect("a digest has 8 bytes"),
    );
    let accounts = prepared
        .genesis_file
        .accounts
        .iter()
        .map(|a| a.account)
        .collect();
    (seed, accounts, prepared.genesis_file.venue_epoch_ms)
}

/// Starts the watcher (development only) and the intake of peers' attestations.
pub(super) fn spawn_deposits(
    context: &Context,
    prepared: &Prepared,
    shared: &Shared,
    (out, mut incoming): Channel,
) {
    if shared
        .view
        .lock()
        .expect("the view lock must not be poisoned")
        .engine
        .membership()
        .is_none()
    {
        warn!("no sentinel committee in the genesis: chain deposits cannot be certified");
        return;
    }
    if prepared.config.development {
        let (seed, accounts, _) = dev_chain(prepared);
        warn!(
            every_ms = CHAIN_BLOCK_MS,
            "chain source: DEVELOPMENT simulated chain (seeded from the genesis), not a real chain"
        );
        let chain = SimulatedChain::new(Chain::Bitcoin, seed, accounts);
        let key = ed25519_dalek::SigningKey::from_bytes(&prepared.seed);
        let venue_epoch_ms = prepared.genesis_file.venue_epoch_ms;
        let shared = shared.clone();
        context
            .child("deposit_watch")
            .spawn(move |context| watch(context, chain, key, shared, out, venue_epoch_ms));
    } else {
        info!("no chain watcher is built for production nodes yet: this member attests no deposits (it checks and executes the ones its peers' blocks carry)");
    }
    let feed = shared.deposits.clone();
    let evidence = shared.evidence.clone();
    context.child("deposit_in").spawn(move |_| async move {
        while let Ok((peer, bytes)) = incoming.recv().await {
            let offered = Attestation::decode(bytes.as_ref()).and_then(|attestation| {
                if attestation.member.as_slice() != peer.as_ref() {
                    // Members send their own attestations only: a relayed or borrowed one is
                    // not this peer's to send.
                    return Err(PoolError::NotAMember("not the sender's own".into()));
                }
                feed.lock()
                    .expect("the deposit feed lock must not be poisoned")
                    .offer(attestation)
            });
            match offered {
                // Credited already, or the pool is full for now: nothing wrong with the sender.
                Ok(()) | Err(PoolError::Credited | PoolError::Full(_)) => {}
                Err(error) => evidence.record(
                    Kind::DepositAttestation,
                    &peer,
                    0,
                    format!("deposit attestation: {error}"),
                ),
            }
        }
    });
}

/// Every tick: mine the simulated chain up to venue time, attest what is new and not credited,
/// and now and then resend what is still uncredited.
async fn watch(
    context: Context,
    mut chain: SimulatedChain,
    key: ed25519_dalek::SigningKey,
    shared: Shared,
    mut out: commonware_p2p::authenticated::lookup::Sender<
        bulwark_consensus::replica::PublicKey,
        Context,
    >,
    venue_epoch_ms: u64,
) {
    let mut mined = 0u64;
    let mut mine: BTreeMap<Outpoint, Attestation> = BTreeMap::new();
    // Deposits read from the chain and not attested yet, in chain order.
    let mut backlog: std::collections::VecDeque<bulwark_engine::deposit::ObservedDeposit> =
        std::collections::VecDeque::new();
    let mut ticks = 0u64;
    let me = key.verifying_key().to_bytes();
    loop {
        context.sleep(TICK).await;
        ticks += 1;
        let venue_ms = unix_ms(&context).saturating_sub(venue_epoch_ms);
        let target = venue_ms / CHAIN_BLOCK_MS;
        let from = mined;
        while mined < target {
            chain.mine();
            mined += 1;
        }
        let engine = shared
            .view
            .lock()
            .expect("the view lock must not be poisoned")
            .engine
            .clone();
        if mined > from {
            match chain.deposits(from) {
                Ok((deposits, _tip)) => backlog.extend(deposits),
                Err(error) => {
                    // Read these blocks again next time.
                    mined = from;
                    warn!(%error, "the chain source failed; trying again");
                }
            }
            if backlog.len() > BACKLOG_MAX {
                let dropped = backlog.len() - BACKLOG_MAX;
                backlog.drain(..dropped);
                warn!(
                    dropped,
                    "the deposit backlog is full: the oldest deposits are not attested"
                );
            }
        }
        // Only a member of the current committee attests: a removed member's or a candidate's
        // attestation would count for nothing and only fill its peers' pools.
        if !engine.membership().is_some_and(|m| m.is_admitted(&me)) {
            mine.clear();
            continue;
        }
        mine.retain(|outpoint, _| !engine.deposit_credited(outpoint));
        let room = shared
            .deposits
            .lock()
            .expect("the deposit feed lock must not be poisoned")
            .per_member_max();
        let mut fresh = Vec::new();
        while mine.len() < room {
            let Some(deposit) = backlog.pop_front() else {
                break;
            };
            let outpoint = deposit.outpoint();
            if engine.deposit_credited(&outpoint) || mine.contains_key(&outpoint) {
                continue;
            }
            if engine.account(deposit.account).is_none() {
                // The engine cannot credit it: no deposit address maps to it.
                warn!(
                    account = deposit.account.0,
                    "a deposit to an account that does not exist is not attested"
                );
                continue;
            }
            let attestation = Attestation::sign(&key, deposit);
            mine.insert(outpoint, attestation);
            fresh.push(attestation);
        }
        let send: Vec<Attestation> = if ticks.is_multiple_of(RESEND_TICKS) {
            mine.values().copied().collect()
        } else {
            fresh
        };
        for attestation in send {
            // This member's own attestation passes its own pool's checks.
            let _ = shared
                .deposits
                .lock()
                .expect("the deposit feed lock must not be poisoned")
                .offer(attestation);
            out.send(Recipients::All, IoBuf::from(attestation.encode()), false);
        }
    }
}
