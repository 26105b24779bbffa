//! The process-local login throttle: a bounded map of windows.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{LoginThrottle, ThrottleKey, ThrottleWindow};
use crate::error::StoreError;

/// A [`LoginThrottle`] in this process's memory, for a single instance (or
/// a store that offers no shared throttle). Counts are not shared with
/// other processes and do not survive a restart.
///
/// Memory is bounded: at most [`capacity`](Self::with_capacity) keys
/// (by default [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY), some 10 MB),
/// however many distinct usernames a spray tries. When a new key finds the
/// map full, windows that have ended are dropped first; if that frees too
/// little, the keys with the fewest attempts go (down to three quarters
/// of the capacity, so the work is paid once per many inserts). A key at
/// its limit thus outlives any number of keys with fewer attempts: to
/// push it out, a spray has to bring a whole map's worth of keys to as
/// many attempts, which the per-address limit makes costly.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use fastcore_security::{LoginThrottle, MemoryLoginThrottle, ThrottleKey};
///
/// let throttle = MemoryLoginThrottle::with_capacity(1000);
/// let key = ThrottleKey::account("ada");
/// let first = throttle.hit(&key, 900, 1_000).await.unwrap();
/// assert_eq!((first.attempts, first.ends_at), (1, 1_900));
/// assert_eq!(throttle.hit(&key, 900, 1_010).await.unwrap().attempts, 2);
/// // The window ended: counting starts over.
/// assert_eq!(throttle.hit(&key, 900, 1_900).await.unwrap().attempts, 1);
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryLoginThrottle {
    capacity: usize,
    windows: Mutex<HashMap<ThrottleKey, ThrottleWindow>>,
}

impl Default for MemoryLoginThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLoginThrottle {
    /// How many keys [`new`](Self::new) keeps at most.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A throttle keeping at most [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) keys.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A throttle keeping at most `capacity` keys (at least 16).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(16),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How many keys it holds now.
    pub fn len(&self) -> usize {
        self.with(|windows| windows.len())
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<ThrottleKey, ThrottleWindow>) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of
        // a plain map; it is still consistent.
        let mut guard = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Makes room for one more key: drops ended windows, then, if the map
    /// is still over three quarters full, the keys with the fewest
    /// attempts (those whose windows end soonest first, among equals).
    fn make_room(&self, windows: &mut HashMap<ThrottleKey, ThrottleWindow>, now: i64) {
        windows.retain(|_, w| w.ends_at > now);
        let target = self.capacity / 4 * 3;
        if windows.len() <= target {
            return;
        }
        let mut ranked: Vec<(u64, i64, ThrottleKey)> = windows
            .iter()
            .map(|(k, w)| (w.attempts, w.ends_at, k.clone()))
            .collect();
        let excess = ranked.len() - target;
        ranked.select_nth_unstable_by(excess - 1, |a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, key) in ranked.into_iter().take(excess) {
            windows.remove(&key);
        }
    }
}

#[async_trait]
impl LoginThrottle for MemoryLoginThrottle {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn hit(
        &self,
        key: &ThrottleKey,
        window_secs: i64,
        now: i64,
    ) -> Result<ThrottleWindow, StoreError> {
        Ok(self.with(|windows| {
            if let Some(w) = windows.get_mut(key) {
                if w.ends_at > now {
                    w.attempts += 1;
                } else {
                    *w = ThrottleWindow {
                        attempts: 1,
                        ends_at: now.saturating_add(window_secs),
                    };
                }
                return *w;
            }
            if windows.len() >= self.capacity {
                self.make_room(windows, now);
            }
            let w = ThrottleWindow {
                attempts: 1,
                ends_at: now.saturating_add(window_secs),
            };
            windows.insert(key.clone(), w);
            w
        }))
    }

    async fn undo(&self, key: &ThrottleKey, window: &ThrottleWindow) -> Result<(), StoreError> {
        self.with(|windows| {
            if let Some(w) = windows.get_mut(key)
                && w.ends_at == window.ends_at
                && w.attempts > 0
            {
                w.attempts -= 1;
                if w.attempts == 0 {
                    windows.remove(key);
                }
            }
        });
        Ok(())
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.with(|windows| windows.remove(key));
        Ok(())
    }

    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError> {
        Ok(self.with(|windows| {
            let ended: Vec<ThrottleKey> = windows
                .iter()
                .filter(|(_, w)| w.ends_at <= now)
                .map(|(k, _)| k.clone())
                .take(usize::try_from(batch).unwrap_or(usize::MAX))
                .collect();
            for key in &ended {
                windows.remove(key);
            }
            ended.len() as u64
        }))
    }
}
