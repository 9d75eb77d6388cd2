//! Attack 3 of #12: a cut-off must remove the peer from every tracked set at once and last until
//! a fresh affirming appraisal readmits it. Three members on commonware's `lookup` network,
//! configured exactly as a node configures it (`bulwark_node::node::p2p`), on the deterministic
//! runtime: member 1 keeps sending to member 0, which cuts it off the two ways admission does
//! (its appraisal lapsed: it leaves the tracked set; contraindicated: blocked as well) and then
//! goes through many more admission changes and past the block's expiry.
#![allow(clippy::unwrap_used)]

use bulwark_node::node::p2p::{config, P2pSettings};
use commonware_cryptography::{ed25519, Signer as _};
use commonware_p2p::authenticated::lookup;
use commonware_p2p::{
    Address, AddressableManager as _, Blocker as _, Receiver as _, Recipients, Sender as _,
};
use commonware_runtime::Supervisor as _;
use commonware_runtime::{deterministic, Clock as _, IoBuf, Quota, Runner as _, Spawner as _};
use commonware_utils::ordered::Map;
use commonware_utils::{NZUsize, NZU32};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const BLOCK: Duration = Duration::from_secs(1);
const MEMBERS: usize = 3;

/// Milliseconds since the runtime started, when each message from member 1 arrived at member 0.
type Arrivals = Arc<Mutex<Vec<u64>>>;

#[test]
fn a_cut_off_peer_stays_out_until_readmitted() {
    deterministic::Runner::seeded(7).start(|context| async move {
        let keys: Vec<ed25519::PrivateKey> = (0..MEMBERS as u64)
            .map(ed25519::PrivateKey::from_seed)
            .collect();
        let addresses: Vec<SocketAddr> = (0..MEMBERS)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 7_400 + i as u16)))
            .collect();
        let set = |members: &[usize]| -> Map<ed25519::PublicKey, Address> {
            members
                .iter()
                .map(|&i| (keys[i].public_key(), Address::Symmetric(addresses[i])))
                .collect::<Vec<_>>()
                .try_into()
                .unwrap()
        };
        let start = context.current();
        let since = move |now: SystemTime| now.duration_since(start).unwrap().as_millis() as u64;
        let arrivals: Arrivals = Arc::new(Mutex::new(Vec::new()));
        let mut oracles = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let settings = P2pSettings {
                signer: key.clone(),
                listen: addresses[i],
                loopback: true,
                members: NZUsize!(MEMBERS),
                max_message_size: 1 << 16,
                block_duration: BLOCK,
            };
            let member = context.child("member").with_attribute("index", i);
            let (mut network, mut oracle) =
                lookup::Network::new(member.child("p2p"), config(&settings, b"cut-off-test"));
            let (mut sender, mut receiver) = network.register(0, Quota::per_second(NZU32!(1_000)));
            network.start();
            let _ = oracle.track(0, set(&[0, 1, 2]));
            let to = keys[0].public_key();
            let from_one = keys[1].public_key();
            match i {
                0 => {
                    let arrivals = arrivals.clone();
                    member.child("receive").spawn(move |context| async move {
                        while let Ok((peer, _)) = receiver.recv().await {
                            if peer == from_one {
                                arrivals.lock().unwrap().push(since(context.current()));
                            }
                        }
                    });
                }
                _ => {
                    member.child("send").spawn(move |context| async move {
                        loop {
                            sender.send(Recipients::One(to.clone()), IoBuf::from(vec![1u8]), false);
                            context.sleep(Duration::from_millis(50)).await;
                        }
                    });
                }
            }
            oracles.push(oracle);
        }
        let mut zero = oracles.swap_remove(0);
        let heard_between = |from: u64, to: u64| {
            arrivals
                .lock()
                .unwrap()
                .iter()
                .filter(|&&at| at >= from && at < to)
                .count()
        };
        let mut set_id = 1;
        let mut track = |oracle: &mut lookup::Oracle<ed25519::PublicKey>, members: &[usize]| {
            let _ = oracle.track(set_id, set(members));
            set_id += 1;
        };

        // Connected: member 0 hears member 1.
        context.sleep(Duration::from_secs(5)).await;
        assert!(heard_between(0, 5_000) > 10, "member 1 never got through");

        // 1. Member 1's appraisal lapses: it leaves the tracked set, without a block. The
        //    connection goes at once, and stays gone through three more admission changes.
        let lapsed = since(context.current());
        track(&mut zero, &[0, 2]);
        for _ in 0..3 {
            context.sleep(Duration::from_secs(2)).await;
            track(&mut zero, &[0, 2]);
        }
        context.sleep(Duration::from_secs(2)).await;
        let now = since(context.current());
        assert_eq!(
            heard_between(lapsed + 200, now),
            0,
            "a lapsed peer must be cut off at once, not after three more admission changes"
        );

        // Readmitted by a fresh affirming appraisal: back in.
        let readmitted = since(context.current());
        track(&mut zero, &[0, 1, 2]);
        context.sleep(Duration::from_secs(5)).await;
        assert!(heard_between(readmitted, readmitted + 5_000) > 10);

        // 2. Contraindicated: blocked and out of the set. It stays out far past the block's
        //    expiry and through many admission changes.
        let cut = since(context.current());
        let _ = zero.block(keys[1].public_key());
        track(&mut zero, &[0, 2]);
        for _ in 0..10 {
            context.sleep(BLOCK * 2).await;
            track(&mut zero, &[0, 2]);
        }
        let now = since(context.current());
        assert_eq!(
            heard_between(cut + 200, now),
            0,
            "a contraindicated peer must stay out after its block expires"
        );

        // Readmitted again: the short block never outlasts the fresh appraisal.
        let readmitted = since(context.current());
        track(&mut zero, &[0, 1, 2]);
        context.sleep(Duration::from_secs(5)).await;
        assert!(heard_between(readmitted, readmitted + 5_000) > 10);
        drop(oracles);
    });
}
