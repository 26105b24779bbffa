//! One password check at a time per account, in this process.
//!
//! The failure floor (`Security::delay_failed_login`) makes one failed
//! login take the same time whatever its cause. A burst of concurrent
//! wrong passwords for one account is another matter: their checks queue
//! on the hashing pool, and for an account with a slow stored hash (a
//! legacy bcrypt one) the queue outlasts the floor while the same burst
//! for an unknown user does not. So the attempts of one account take
//! turns: an attempt admitted by the throttle waits for its account's
//! turn, and a failure keeps the turn until its answer is due (see
//! `Security::fail_login`). Each failure then holds its turn for exactly
//! the floor, and a burst is answered at one floor, two floors, ...
//! whatever the account, known or not, and whatever its hash costs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use super::ThrottleKey;

/// The turn locks by account key. An entry lives only while an attempt of
/// its key holds or waits for the turn, so the map is bounded by the
/// requests in progress.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    keys: Mutex<HashMap<ThrottleKey, Entry>>,
}

#[derive(Debug)]
struct Entry {
    /// Fair (first come, first served): a waiting attempt cannot be
    /// overtaken for good.
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Attempts holding or waiting for the lock.
    users: usize,
}

/// An account's turn: held until dropped.
#[derive(Debug)]
pub(crate) struct Turn {
    // Fields drop in this order: the lock is released before the ticket
    // can remove the entry, so no second lock is made while it is held.
    _guard: OwnedMutexGuard<()>,
    started: Instant,
    _ticket: Ticket,
}

impl Turn {
    /// When the turn began: what the failure floor counts from.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }
}

/// A claim on an entry, taken before waiting for its lock so that an
/// attempt dropped while it waits (the client hung up) leaves no entry
/// behind.
#[derive(Debug)]
struct Ticket {
    turns: Arc<Turns>,
    key: ThrottleKey,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut keys = self.turns.lock();
        if let Some(entry) = keys.get_mut(&self.key) {
            entry.users = entry.users.saturating_sub(1);
            if entry.users == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

impl Turns {
    fn lock(&self) -> MutexGuard<'_, HashMap<ThrottleKey, Entry>> {
        // A poisoned lock only means a panic elsewhere mid-update of a
        // plain map; it is still usable.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for `key`'s turn.
    pub(crate) async fn take(self: &Arc<Self>, key: ThrottleKey) -> Turn {
        let lock = {
            let mut keys = self.lock();
            let entry = keys.entry(key.clone()).or_insert_with(|| Entry {
                lock: Arc::default(),
                users: 0,
            });
            entry.users += 1;
            Arc::clone(&entry.lock)
        };
        let ticket = Ticket {
            turns: Arc::clone(self),
            key,
        };
        let guard = lock.lock_owned().await;
        Turn {
            _guard: guard,
            started: Instant::now(),
            _ticket: ticket,
        }
    }

    /// Keys with an entry (tests: the map must empty).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_turn_per_key_at_a_time_and_no_entry_left_behind() {
        let turns = Arc::new(Turns::default());
        let ada = ThrottleKey::account("ada");
        let first = turns.take(ada.clone()).await;
        // Another key is not held up.
        let other = turns.take(ThrottleKey::account("grace")).await;
        drop(other);
        // The same key waits until the first turn ends.
        let waiting = tokio::spawn({
            let turns = Arc::clone(&turns);
            let ada = ada.clone();
            async move { turns.take(ada).await.started() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a second turn began during the first"
        );
        let released = Instant::now();
        drop(first);
        let second_started = waiting.await.expect("the waiting task panicked");
        assert!(second_started >= released);
        assert_eq!(turns.len(), 0);
    }

    #[tokio::test]
    async fn an_attempt_dropped_while_it_waits_leaves_no_entry() {
        let turns = Arc::new(Turns::default());
        let ada = ThrottleKey::account("ada");
        let held = turns.take(ada.clone()).await;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), turns.take(ada.clone())).await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(turns.len(), 0);
    }
}
