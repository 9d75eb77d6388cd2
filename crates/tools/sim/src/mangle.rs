//! Duplication and reordering on one link (issue #16). The simulated network keeps every
//! sender → receiver pair in order and delivers each message once; a real network (or a
//! hostile relay) does neither. Every honest member's receiving ends are wrapped in
//! [`Mangled`], which does nothing until the nemesis names one sender and a [`Mangle`] in the
//! member's [`MangleSlot`]: from then on every message of that sender is delivered twice, or
//! held back and delivered after the next message of any sender (or after [`HOLD`]).
#![allow(clippy::unwrap_used)] // a broken simulation setup is a programmer error: crash, with the seed.

use bulwark_consensus::replica::PublicKey;
use commonware_macros::select;
use commonware_p2p::{Message, Receiver};
use commonware_runtime::{deterministic, Clock as _};
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Longest a held-back message waits for a later one to overtake it.
pub const HOLD: Duration = Duration::from_millis(200);

/// What happens to the messages of the named sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mangle {
    /// Each is delivered twice in a row.
    Duplicate,
    /// Each is held back until the next message arrives (or [`HOLD`] passes), and delivered
    /// after it.
    Reorder,
}

/// One member's mangling (it outlives the member's restarts): the sender, and what happens to
/// its messages; `None` leaves every message alone.
pub(crate) type MangleSlot = Arc<Mutex<Option<(PublicKey, Mangle)>>>;

/// A receiving end that mangles as its [`MangleSlot`] says. Cancel-safe as the wrapped one
/// is: every message taken from it is kept in `self` until it is returned.
pub(crate) struct Mangled<R> {
    inner: R,
    slot: MangleSlot,
    context: deterministic::Context,
    /// Counts the messages this end duplicated or held back (shared by a member's ends).
    mangled: Arc<AtomicU64>,
    /// Messages owed before anything new: a duplicate, or a held one that was overtaken.
    owed: VecDeque<Message<PublicKey>>,
    /// A message held back for a later one to overtake, and when it is released regardless.
    held: Option<(Message<PublicKey>, SystemTime)>,
}

impl<R: std::fmt::Debug> std::fmt::Debug for Mangled<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mangled")
            .field("inner", &self.inner)
            .field("slot", &self.slot)
            .field("owed", &self.owed.len())
            .field("held", &self.held.is_some())
            .field("mangled", &self.mangled)
            .finish_non_exhaustive()
    }
}

impl<R> Mangled<R> {
    pub(crate) fn new(
        inner: R,
        slot: MangleSlot,
        mangled: Arc<AtomicU64>,
        context: deterministic::Context,
    ) -> Self {
        Mangled {
            inner,
            slot,
            context,
            owed: VecDeque::new(),
            held: None,
            mangled,
        }
    }
}

impl<R: Receiver<PublicKey = PublicKey>> Receiver for Mangled<R> {
    type Error = R::Error;
    type PublicKey = PublicKey;

    async fn recv(&mut self) -> Result<Message<PublicKey>, R::Error> {
        if let Some(message) = self.owed.pop_front() {
            return Ok(message);
        }
        loop {
            // The release time is kept in `self`, so a consumer that drops this future and
            // calls again does not start the hold over.
            let message = if let Some((_, release)) = &self.held {
                let release = *release;
                select! {
                    received = self.inner.recv() => received?,
                    _ = self.context.sleep_until(release) => {
                        return Ok(self.held.take().unwrap().0);
                    },
                }
            } else {
                self.inner.recv().await?
            };
            let mangle = self
                .slot
                .lock()
                .unwrap()
                .as_ref()
                .filter(|(from, _)| *from == message.0)
                .map(|(_, mangle)| *mangle);
            if mangle == Some(Mangle::Reorder) && self.held.is_none() {
                self.mangled.fetch_add(1, Ordering::Relaxed);
                self.held = Some((message, self.context.current() + HOLD));
                continue;
            }
            if let Some((held, _)) = self.held.take() {
                self.owed.push_back(held);
            }
            if mangle == Some(Mangle::Duplicate) {
                self.mangled.fetch_add(1, Ordering::Relaxed);
                self.owed.push_back(message.clone());
            }
            return Ok(message);
        }
    }

    fn capacity(&self) -> NonZeroUsize {
        self.inner.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{ed25519, Signer as _};
    use commonware_p2p::simulated::{self, Link, Network};
    use commonware_p2p::{Recipients, Sender as _};
    use commonware_runtime::{Quota, Runner as _, Supervisor as _};
    use commonware_utils::{probability, NZUsize, NZU32};

    /// Sends one-byte messages 0..count from a to b over the simulated network (5 ms apart),
    /// b's end mangling a's messages as `mangle` says; what b receives until 2 s of silence.
    fn deliveries(mangle: Option<Mangle>, count: u8) -> (Vec<u8>, u64) {
        deterministic::Runner::seeded(1).start(|context| async move {
            let a = ed25519::PrivateKey::from_seed(0).public_key();
            let b = ed25519::PrivateKey::from_seed(1).public_key();
            let (network, oracle) = Network::new_with_peers(
                context.child("network"),
                simulated::Config {
                    max_size: 1024,
                    max_peers_per_set: NZUsize!(2),
                    disconnect_on_block: true,
                    tracked_peer_sets: NZUsize!(1),
                },
                vec![a.clone(), b.clone()],
            )
            .await;
            network.start();
            let link = Link {
                latency: Duration::from_millis(10),
                jitter: Duration::ZERO,
                success_rate: probability!(1.0),
            };
            oracle.add_link(a.clone(), b.clone(), link).await.unwrap();
            let quota = Quota::per_second(NZU32!(1_000));
            let (mut sender, _) = oracle.control(a.clone()).register(0, quota).await.unwrap();
            let (_, receiver) = oracle.control(b.clone()).register(0, quota).await.unwrap();
            let slot = MangleSlot::default();
            *slot.lock().unwrap() = mangle.map(|m| (a.clone(), m));
            let counted = Arc::new(AtomicU64::new(0));
            let mut receiver =
                Mangled::new(receiver, slot, counted.clone(), context.child("mangle"));
            for i in 0..count {
                sender.send(Recipients::One(b.clone()), vec![i], false);
                context.sleep(Duration::from_millis(5)).await;
            }
            let mut got = Vec::new();
            loop {
                select! {
                    received = receiver.recv() => got.push(received.unwrap().1.as_ref()[0]),
                    _ = context.sleep(Duration::from_secs(2)) => break,
                }
            }
            (got, counted.load(Ordering::Relaxed))
        })
    }

    #[test]
    fn left_alone_every_message_arrives_once_in_order() {
        assert_eq!(deliveries(None, 5), (vec![0, 1, 2, 3, 4], 0));
    }

    #[test]
    fn duplicated_every_message_arrives_twice() {
        assert_eq!(
            deliveries(Some(Mangle::Duplicate), 5),
            (vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4], 5)
        );
    }

    #[test]
    fn reordered_each_held_message_is_overtaken_and_the_last_released_after_the_hold() {
        // Held: 0, 2 and 4 (1 and 3 overtook a held one and were delivered at once).
        assert_eq!(
            deliveries(Some(Mangle::Reorder), 5),
            (vec![1, 0, 3, 2, 4], 3)
        );
    }
}
