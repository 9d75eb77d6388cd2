//! The load generator of `bulwark up`: the one order flow (`bulwark_testkit::flow`, market
//! makers and takers with DEVELOPMENT keys), spread over the nodes' client endpoints, trading
//! around the certified index. Like a client gateway, it sends only to nodes that keep up: a
//! node whose endpoint does not answer, or whose committed height is more than [`LAG_MAX`]
//! behind the most advanced node (a removed or cut-off member, a node catching up), gets no
//! orders until it is back; its accounts' orders go to the next node that keeps up (nonces may
//! skip, which the engine allows: a nonce must only grow).

use crate::layout::*;
use bulwark_engine::codec::SignedTx;
use bulwark_engine::AccountId;
use bulwark_node::client::Client;
use bulwark_testkit::{client_key, flow_order};
use ed25519_dalek::SigningKey;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Heights a node may be behind the most advanced one and still be sent orders.
pub(crate) const LAG_MAX: u64 = 50;

/// Which endpoints keep up, from each one's committed height (`None`: did not answer). When
/// none does, all are used.
pub(crate) fn keeping_up(heights: &[Option<u64>]) -> Vec<bool> {
    let top = heights.iter().flatten().copied().max().unwrap_or(0);
    let up: Vec<bool> = heights
        .iter()
        .map(|h| h.is_some_and(|h| h + LAG_MAX >= top))
        .collect();
    if up.iter().any(|u| *u) {
        up
    } else {
        vec![true; heights.len()]
    }
}

/// The endpoint `preferred`, or the next one after it that keeps up.
pub(crate) fn route(preferred: usize, up: &[bool]) -> usize {
    (0..up.len())
        .map(|step| (preferred + step) % up.len())
        .find(|i| up[*i])
        .unwrap_or(preferred)
}

/// How often the load generator asks for a withdrawal.
const WITHDRAW_EVERY: Duration = Duration::from_secs(2);

/// The `count`th withdrawal: 0.25 USD to a key derived from the seed, odd ones on Bitcoin (an
/// x-only key), even ones on the Ed25519 key.
fn withdrawal(seed: u64, count: u64) -> bulwark_engine::ClientCommand {
    let chain = if count % 2 == 1 {
        bulwark_engine::PayoutChain::Bitcoin
    } else {
        bulwark_engine::PayoutChain::Ed25519
    };
    let mut destination = match chain {
        bulwark_engine::PayoutChain::Ed25519 => {
            client_key(seed ^ 0x5157, count).verifying_key().to_bytes()
        }
        bulwark_engine::PayoutChain::Bitcoin => {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_be_bytes());
            bytes[8..16].copy_from_slice(&count.to_be_bytes());
            bytes[16] = 0x42;
            bytes
        }
    };
    // About half of all x values are on the curve: try the next until one is.
    while !chain.valid_destination(&destination) {
        destination[31] = destination[31].wrapping_add(1);
    }
    bulwark_engine::ClientCommand::Withdraw {
        amount: 250_000,
        destination,
        chain,
    }
}

pub(crate) fn load_generator(
    endpoints: &[SocketAddr],
    seed: u64,
    rate: u64,
    submitted: &AtomicU64,
    stop: &AtomicBool,
) {
    let accounts: Vec<u64> = (1..=MAKERS + TAKERS).collect();
    let keys: Vec<SigningKey> = accounts.iter().map(|a| client_key(seed, *a)).collect();
    let mut clients: Vec<Option<Client>> = endpoints.iter().map(|_| None).collect();
    // Continue each account's nonces from the committed state (a resumed venue).
    let mut nonces: Vec<u64> = accounts
        .iter()
        .map(|account| {
            Client::connect(endpoints[0], Duration::from_secs(1))
                .ok()
                .and_then(|mut c| c.account(AccountId(*account)).ok())
                .map(|v| v.nonce)
                .unwrap_or(0)
                + 1_000
        })
        .collect();
    let tick = Duration::from_millis(20);
    let per_tick = (rate / 50).max(1);
    let mut k = 0u64;
    let mut next = Instant::now();
    // Trade around the committee's certified BTC index (it drifts with the synthetic path or a
    // real feed), read once a second; 60 000 USD until one is known.
    let mut mid_ticks = MID_TICKS;
    let mut mid_read = Instant::now() - Duration::from_secs(1);
    let mut up = vec![true; endpoints.len()];
    // A withdrawal every few seconds, alternating the vault's two keys.
    let mut withdrawn = Instant::now();
    let mut withdrawals = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if mid_read.elapsed() >= Duration::from_secs(1) {
            mid_read = Instant::now();
            let heights: Vec<Option<u64>> = endpoints
                .iter()
                .map(|endpoint| {
                    Client::connect(*endpoint, Duration::from_millis(300))
                        .ok()
                        .and_then(|mut c| c.status().ok())
                        .map(|s| s.height)
                })
                .collect();
            up = keeping_up(&heights);
            if let Some(index) = Client::connect(endpoints[0], Duration::from_millis(300))
                .ok()
                .and_then(|mut c| c.status().ok())
                .and_then(|s| s.index_micros.first().copied().flatten())
            {
                mid_ticks = (index / TICK_MICROS).max(100);
            }
        }
        let mut batches: Vec<Vec<SignedTx>> = endpoints.iter().map(|_| Vec::new()).collect();
        for _ in 0..per_tick {
            let slot = (k % accounts.len() as u64) as usize;
            let account = accounts[slot];
            nonces[slot] += 1;
            let command = if withdrawn.elapsed() >= WITHDRAW_EVERY {
                withdrawn = Instant::now();
                withdrawals += 1;
                withdrawal(seed, withdrawals)
            } else {
                flow_order(account, k, mid_ticks)
            };
            let tx = SignedTx::sign(AccountId(account), nonces[slot], command, &keys[slot]);
            batches[route((account as usize) % endpoints.len(), &up)].push(tx);
            k += 1;
        }
        for (index, batch) in batches.iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            if clients[index].is_none() {
                clients[index] = Client::connect(endpoints[index], Duration::from_millis(300)).ok();
            }
            if let Some(client) = clients[index].as_mut() {
                match client.submit(batch) {
                    Ok(outcome) => {
                        submitted.fetch_add(u64::from(outcome.accepted), Ordering::Relaxed);
                    }
                    Err(_) => clients[index] = None,
                }
            }
        }
        next += tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_go_only_to_nodes_that_keep_up() {
        // Node 3 was removed (its height froze); node 1 does not answer.
        let heights = [Some(1_000), None, Some(990), Some(400)];
        let up = keeping_up(&heights);
        assert_eq!(up, vec![true, false, true, false]);
        assert_eq!(route(0, &up), 0);
        assert_eq!(route(1, &up), 2);
        assert_eq!(route(3, &up), 0);
        // Exactly LAG_MAX behind still keeps up; one more does not.
        assert_eq!(
            keeping_up(&[Some(100), Some(100 - LAG_MAX), Some(99 - LAG_MAX)]),
            vec![true, true, false]
        );
        // Nobody answers: send everywhere, as before the first status.
        assert_eq!(keeping_up(&[None, None]), vec![true, true]);
        assert_eq!(route(1, &[true, true]), 1);
    }
}
