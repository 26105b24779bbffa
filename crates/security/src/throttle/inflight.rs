//! The attempts this process has admitted and not yet decided, per
//! throttle key, so that an attempt refused while some are in flight can
//! wait for their verdicts instead of guessing how long they take.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::ThrottleKey;

/// Admitted, undecided attempts by key. An entry lives only while an
/// attempt of its key is in flight or someone waits on it, so the map is
/// bounded by the requests in progress.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    keys: Mutex<HashMap<ThrottleKey, Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// Attempts of this key admitted here and not yet decided.
    admitted: usize,
    /// How many of them have been decided so far (tells a waiter whether
    /// it missed one).
    decisions: u64,
    /// Woken at every decision.
    decided: Arc<Notify>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<ThrottleKey, Slot>> {
        // A poisoned lock only means a panic elsewhere mid-update of a
        // plain map of counters; it is still usable.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An attempt of `key` was admitted: its password is being checked.
    pub(crate) fn admit(&self, key: &ThrottleKey) {
        self.lock()
            .entry(key.clone())
            .or_insert_with(|| Slot {
                admitted: 0,
                decisions: 0,
                decided: Arc::new(Notify::new()),
            })
            .admitted += 1;
    }

    /// An admitted attempt of `key` was decided (or dropped): its count
    /// is final. Wakes whoever waits on the key.
    pub(crate) fn decide(&self, key: &ThrottleKey) {
        let mut keys = self.lock();
        if let Some(slot) = keys.get_mut(key) {
            slot.admitted = slot.admitted.saturating_sub(1);
            slot.decisions += 1;
            slot.decided.notify_waiters();
            if slot.admitted == 0 && Arc::strong_count(&slot.decided) == 1 {
                keys.remove(key);
            }
        }
    }

    /// When attempts of `key` are in flight here, a way to wait for the
    /// next of their verdicts; `None` when there are none.
    pub(crate) fn watch(self: &Arc<Self>, key: &ThrottleKey) -> Option<Watch> {
        let keys = self.lock();
        let slot = keys.get(key).filter(|slot| slot.admitted > 0)?;
        Some(Watch {
            inflight: Arc::clone(self),
            key: key.clone(),
            decided: Arc::clone(&slot.decided),
            seen: slot.decisions,
        })
    }

    fn decisions(&self, key: &ThrottleKey) -> Option<u64> {
        self.lock().get(key).map(|slot| slot.decisions)
    }
}

/// Waits for an attempt in flight to be decided; see [`InFlight::watch`].
pub(crate) struct Watch {
    inflight: Arc<InFlight>,
    key: ThrottleKey,
    decided: Arc<Notify>,
    seen: u64,
}

impl Watch {
    /// Returns when one of the attempts in flight at [`InFlight::watch`]
    /// (or a later one) has been decided, or after `limit`.
    pub(crate) async fn decided_within(&self, limit: Duration) {
        let mut notified = pin!(self.decided.notified());
        notified.as_mut().enable();
        if self.inflight.decisions(&self.key) != Some(self.seen) {
            return; // decided before we listened
        }
        let _ = tokio::time::timeout(limit, notified).await;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut keys = self.inflight.lock();
        // Ours and the map's: nobody else holds the slot.
        if keys
            .get(&self.key)
            .is_some_and(|slot| slot.admitted == 0 && Arc::strong_count(&slot.decided) <= 2)
        {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_live_only_while_attempts_are_in_flight_or_watched() {
        let inflight = Arc::new(InFlight::default());
        let key = ThrottleKey::account("ada");
        assert!(inflight.watch(&key).is_none());
        inflight.admit(&key);
        inflight.admit(&key);
        let watch = inflight.watch(&key).unwrap();
        inflight.decide(&key);
        // Decided after the watch began: no waiting at all.
        watch.decided_within(Duration::from_secs(3600)).await;
        inflight.decide(&key);
        assert!(inflight.watch(&key).is_none());
        assert_eq!(inflight.lock().len(), 1, "kept while watched");
        drop(watch);
        assert!(inflight.lock().is_empty());
        // A stray decision (an attempt admitted by another handle) is harmless.
        inflight.decide(&key);
        assert!(inflight.lock().is_empty());
    }

    #[tokio::test]
    async fn a_waiter_wakes_at_the_next_decision() {
        let inflight = Arc::new(InFlight::default());
        let key = ThrottleKey::address("192.0.2.1".parse().unwrap());
        inflight.admit(&key);
        let watch = inflight.watch(&key).unwrap();
        let deciding = Arc::clone(&inflight);
        let decider_key = key.clone();
        let decider = tokio::spawn(async move {
            tokio::task::yield_now().await;
            deciding.decide(&decider_key);
        });
        watch.decided_within(Duration::from_secs(3600)).await;
        decider.await.unwrap();
        drop(watch);
        assert!(inflight.lock().is_empty());
    }
}
