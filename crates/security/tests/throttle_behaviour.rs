//! One behaviour suite for every [`LoginThrottle`] backend: the memory
//! throttle, and the shared throttle of each token store
//! ([`TokenStore::login_throttle`]: SQLite, PostgreSQL, MySQL/MariaDB,
//! Redis), built the way `Security::new` gets it.
//!
//! Like `store_behaviour.rs`: the suite is plain async functions over
//! `Arc<dyn LoginThrottle>`, and `throttle_behaviour!` makes them
//! `#[tokio::test]`s for one backend. Each constructor returns an empty
//! throttle no other test uses (a fresh file, schema, database or key
//! prefix); a backend whose server cannot be reached is skipped, except
//! under `CI`, where the test fails.
//!
//! Times are fixed Unix seconds far ahead of the wall clock (`NOW`): the
//! backends compare the times they are given, so a window "passes" by
//! giving a later time, without waiting.
//!
//! At the end, the memory throttle's bound under a spray of 100,000
//! usernames, and the Redis key layout.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use fastcore_security::{LoginThrottle, ThrottleKey, ThrottleWindow};

/// "Now" for every test: 2096-10-02.
const NOW: i64 = 4_000_000_000;
/// The window most tests use.
const WINDOW: i64 = 900;

/// A throttle under test and whatever must live as long as it.
struct Backend {
    throttle: Arc<dyn LoginThrottle>,
    _guard: Option<Box<dyn std::any::Any + Send>>,
}

mod backends {
    use super::Backend;
    use std::sync::Arc;

    use fastcore_security::{MemoryLoginThrottle, SqliteTokenStore, TokenStore, connect_store};

    pub(super) async fn memory() -> Backend {
        Backend {
            throttle: Arc::new(MemoryLoginThrottle::new()),
            _guard: None,
        }
    }

    /// The throttle of a SQLite file store (a pool of several connections).
    pub(super) async fn sqlite_file() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
        let store = connect_store(&url).await.unwrap();
        Backend {
            throttle: store.login_throttle().unwrap(),
            _guard: Some(Box::new(dir)),
        }
    }

    /// The throttle of an in-memory SQLite store (one connection).
    pub(super) async fn sqlite_in_memory() -> Backend {
        let store = SqliteTokenStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        Backend {
            throttle: store.login_throttle().unwrap(),
            _guard: None,
        }
    }

    #[cfg(feature = "postgres")]
    pub(super) async fn postgres() -> Option<Backend> {
        let db = crate::common::databases::postgres().await?;
        let store = connect_store(db.url()).await.unwrap();
        Some(Backend {
            throttle: store.login_throttle().unwrap(),
            _guard: Some(Box::new(db)),
        })
    }

    #[cfg(feature = "mysql")]
    pub(super) async fn mysql() -> Option<Backend> {
        let db = crate::common::databases::mysql().await?;
        let store = connect_store(db.url()).await.unwrap();
        Some(Backend {
            throttle: store.login_throttle().unwrap(),
            _guard: Some(Box::new(db)),
        })
    }

    #[cfg(feature = "redis")]
    pub(super) async fn redis() -> Option<Backend> {
        let (store, prefix) = crate::common::redis_server::redis().await?;
        Some(Backend {
            throttle: store.login_throttle().unwrap(),
            _guard: Some(Box::new(prefix)),
        })
    }
}

/// One `#[tokio::test]` per suite function for a backend. `purges` says
/// whether the backend keeps ended windows until `purge_expired` deletes
/// them (memory and SQL) or drops them by itself (Redis: `false`).
macro_rules! throttle_behaviour {
    ($backend:ident => $make:expr, purges: $purges:expr) => {
        throttle_behaviour!(@tests $backend, $make, $purges, [
            a_first_hit_starts_a_window_and_later_hits_count_in_it,
            a_window_ends_and_counting_starts_over,
            keys_count_apart,
            undo_takes_back_one_attempt_of_the_same_window_only,
            reset_forgets_a_key,
            concurrent_hits_on_a_new_key_each_see_a_different_count,
            concurrent_hits_and_undos_balance,
            long_windows_and_large_times,
        ]);
    };
    (@tests $backend:ident, $make:expr, $purges:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(backend) = Option::<Backend>::from($make.await) else {
                        return;
                    };
                    suite::$test(Arc::clone(&backend.throttle)).await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn purge_deletes_ended_windows_only() {
                let Some(backend) = Option::<Backend>::from($make.await) else {
                    return;
                };
                suite::purge_deletes_ended_windows_only(Arc::clone(&backend.throttle), $purges)
                    .await;
            }
        }
    };
}

fn account(name: &str) -> ThrottleKey {
    ThrottleKey::account(name)
}

async fn hit(throttle: &Arc<dyn LoginThrottle>, key: &ThrottleKey, now: i64) -> ThrottleWindow {
    throttle.hit(key, WINDOW, now).await.unwrap()
}

mod suite {
    use super::*;

    pub(super) async fn a_first_hit_starts_a_window_and_later_hits_count_in_it(
        throttle: Arc<dyn LoginThrottle>,
    ) {
        assert!(!throttle.backend().is_empty());
        let key = account("ada");
        let first = hit(&throttle, &key, NOW).await;
        assert_eq!(
            first,
            ThrottleWindow {
                attempts: 1,
                ends_at: NOW + WINDOW
            }
        );
        assert_eq!(first.retry_after(NOW).as_secs(), 900);
        // Later hits count in the same window: its end does not move.
        for (i, now) in [NOW, NOW + 1, NOW + 450, NOW + WINDOW - 1]
            .into_iter()
            .enumerate()
        {
            let w = hit(&throttle, &key, now).await;
            assert_eq!(w.attempts, i as u64 + 2);
            assert_eq!(w.ends_at, NOW + WINDOW);
        }
        // A hit with another window length counts in the current window too.
        let w = throttle.hit(&key, 5, NOW + 10).await.unwrap();
        assert_eq!((w.attempts, w.ends_at), (6, NOW + WINDOW));
    }

    pub(super) async fn a_window_ends_and_counting_starts_over(throttle: Arc<dyn LoginThrottle>) {
        let key = account("ada");
        for _ in 0..7 {
            hit(&throttle, &key, NOW).await;
        }
        // At its end the window is over: a new one starts at the hit.
        let w = hit(&throttle, &key, NOW + WINDOW).await;
        assert_eq!(
            w,
            ThrottleWindow {
                attempts: 1,
                ends_at: NOW + 2 * WINDOW
            }
        );
        // Long after: again a new one, from that hit.
        let w = hit(&throttle, &key, NOW + 10 * WINDOW + 7).await;
        assert_eq!(
            w,
            ThrottleWindow {
                attempts: 1,
                ends_at: NOW + 11 * WINDOW + 7
            }
        );
    }

    pub(super) async fn keys_count_apart(throttle: Arc<dyn LoginThrottle>) {
        let ip = ThrottleKey::address("192.0.2.1".parse().unwrap());
        let other_ip = ThrottleKey::address("192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            hit(&throttle, &account("ada"), NOW).await;
        }
        hit(&throttle, &ip, NOW).await;
        assert_eq!(hit(&throttle, &account("bob"), NOW).await.attempts, 1);
        assert_eq!(hit(&throttle, &other_ip, NOW).await.attempts, 1);
        assert_eq!(hit(&throttle, &ip, NOW).await.attempts, 2);
        assert_eq!(hit(&throttle, &account("ada"), NOW).await.attempts, 4);
        // Names the login treats as one are one key.
        assert_eq!(hit(&throttle, &account("ADA"), NOW).await.attempts, 5);
        // A name with key-like characters is just another name.
        assert_eq!(hit(&throttle, &account("ada*"), NOW).await.attempts, 1);
        assert_eq!(hit(&throttle, &account("acct:ada"), NOW).await.attempts, 1);
    }

    pub(super) async fn undo_takes_back_one_attempt_of_the_same_window_only(
        throttle: Arc<dyn LoginThrottle>,
    ) {
        let key = account("ada");
        hit(&throttle, &key, NOW).await;
        hit(&throttle, &key, NOW).await;
        let third = hit(&throttle, &key, NOW).await;
        throttle.undo(&key, &third).await.unwrap();
        assert_eq!(hit(&throttle, &key, NOW).await.attempts, 3);

        // An attempt of a window that has ended is not taken from the next.
        let old = hit(&throttle, &key, NOW).await;
        let new = hit(&throttle, &key, NOW + WINDOW).await;
        assert_eq!(new.attempts, 1);
        throttle.undo(&key, &old).await.unwrap();
        assert_eq!(hit(&throttle, &key, NOW + WINDOW).await.attempts, 2);

        // Never below zero: more undos than hits leave a fresh count.
        let key = account("bob");
        let w = hit(&throttle, &key, NOW).await;
        for _ in 0..3 {
            throttle.undo(&key, &w).await.unwrap();
        }
        assert_eq!(hit(&throttle, &key, NOW).await.attempts, 1);

        // Undoing a key that has nothing changes nothing.
        throttle
            .undo(
                &account("nobody"),
                &ThrottleWindow {
                    attempts: 1,
                    ends_at: NOW + WINDOW,
                },
            )
            .await
            .unwrap();
        assert_eq!(hit(&throttle, &account("nobody"), NOW).await.attempts, 1);
    }

    pub(super) async fn reset_forgets_a_key(throttle: Arc<dyn LoginThrottle>) {
        let key = account("ada");
        let other = account("bob");
        for _ in 0..4 {
            hit(&throttle, &key, NOW).await;
        }
        hit(&throttle, &other, NOW).await;
        throttle.reset(&key).await.unwrap();
        // A new window from the next hit (not the old one's end).
        let w = hit(&throttle, &key, NOW + 100).await;
        assert_eq!((w.attempts, w.ends_at), (1, NOW + 100 + WINDOW));
        assert_eq!(hit(&throttle, &other, NOW).await.attempts, 2);
        // Resetting an unknown key is fine.
        throttle.reset(&account("nobody")).await.unwrap();
        throttle.reset(&account("nobody")).await.unwrap();
    }

    /// The property that lets concurrent logins not slip past a limit
    /// together: every hit sees its own count, also when they race to
    /// create the key.
    pub(super) async fn concurrent_hits_on_a_new_key_each_see_a_different_count(
        throttle: Arc<dyn LoginThrottle>,
    ) {
        const N: u64 = 40;
        let key = account("contended");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..N {
            let throttle = Arc::clone(&throttle);
            let key = key.clone();
            tasks.spawn(async move { throttle.hit(&key, WINDOW, NOW).await.unwrap() });
        }
        let mut counts = BTreeSet::new();
        while let Some(w) = tasks.join_next().await {
            let w = w.unwrap();
            assert_eq!(w.ends_at, NOW + WINDOW);
            counts.insert(w.attempts);
        }
        assert_eq!(counts, (1..=N).collect::<BTreeSet<_>>());
    }

    pub(super) async fn concurrent_hits_and_undos_balance(throttle: Arc<dyn LoginThrottle>) {
        const N: usize = 30;
        let key = account("busy");
        let first = hit(&throttle, &key, NOW).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let throttle = Arc::clone(&throttle);
            let key = key.clone();
            tasks.spawn(async move {
                let w = throttle.hit(&key, WINDOW, NOW).await.unwrap();
                // Every other attempt "succeeds" and is taken back.
                if i % 2 == 0 {
                    throttle.undo(&key, &w).await.unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        // The first hit plus the N/2 that stayed, plus this one.
        let w = hit(&throttle, &key, NOW).await;
        assert_eq!(w.attempts, 1 + N as u64 / 2 + 1);
        assert_eq!(w.ends_at, first.ends_at);
    }

    pub(super) async fn long_windows_and_large_times(throttle: Arc<dyn LoginThrottle>) {
        let key = account("ada");
        let day = 86_400;
        let w = throttle.hit(&key, day, NOW).await.unwrap();
        assert_eq!(w.ends_at, NOW + day);
        let w = throttle.hit(&key, day, NOW + day - 1).await.unwrap();
        assert_eq!((w.attempts, w.ends_at), (2, NOW + day));
        throttle.undo(&key, &w).await.unwrap();
        assert_eq!(throttle.hit(&key, day, NOW).await.unwrap().attempts, 2);
        // Past 2^32 seconds, and a window of one second.
        let later = 1 << 40;
        let w = throttle.hit(&key, 1, later).await.unwrap();
        assert_eq!((w.attempts, w.ends_at), (1, later + 1));
        assert_eq!(throttle.hit(&key, 1, later + 1).await.unwrap().attempts, 1);
    }

    pub(super) async fn purge_deletes_ended_windows_only(
        throttle: Arc<dyn LoginThrottle>,
        purges: bool,
    ) {
        for i in 0..5 {
            throttle
                .hit(&account(&format!("short{i}")), 10, NOW)
                .await
                .unwrap();
        }
        let long = account("long");
        throttle.hit(&long, 1000, NOW).await.unwrap();
        // Nothing has ended yet.
        assert_eq!(throttle.purge_expired(NOW + 9, 100).await.unwrap(), 0);
        let mut purged = 0;
        loop {
            let n = throttle.purge_expired(NOW + 10, 2).await.unwrap();
            assert!(n <= 2);
            purged += n;
            if n < 2 {
                break;
            }
        }
        assert_eq!(purged, if purges { 5 } else { 0 });
        assert_eq!(throttle.purge_expired(NOW + 10, 100).await.unwrap(), 0);
        // The live window is untouched; ended ones start over either way.
        assert_eq!(
            throttle.hit(&long, 1000, NOW + 10).await.unwrap().attempts,
            2
        );
        let w = throttle
            .hit(&account("short0"), 10, NOW + 10)
            .await
            .unwrap();
        assert_eq!((w.attempts, w.ends_at), (1, NOW + 20));
    }
}

throttle_behaviour!(memory => backends::memory(), purges: true);
throttle_behaviour!(sqlite_file => backends::sqlite_file(), purges: true);
throttle_behaviour!(sqlite_in_memory => backends::sqlite_in_memory(), purges: true);
#[cfg(feature = "postgres")]
throttle_behaviour!(postgres => backends::postgres(), purges: true);
#[cfg(feature = "mysql")]
throttle_behaviour!(mysql => backends::mysql(), purges: true);
#[cfg(feature = "redis")]
throttle_behaviour!(redis => backends::redis(), purges: false);

// ------------------------------------------------------- the memory bound

/// A spray of 100,000 distinct usernames keeps the memory throttle within
/// its capacity, and a key at its limit survives the spray.
#[tokio::test]
async fn the_memory_throttle_stays_bounded_under_a_spray_of_usernames() {
    use fastcore_security::MemoryLoginThrottle;

    const CAPACITY: usize = 5_000;
    let memory = Arc::new(MemoryLoginThrottle::with_capacity(CAPACITY));
    let throttle: Arc<dyn LoginThrottle> = memory.clone();
    let victim = account("victim");
    for _ in 0..5 {
        hit(&throttle, &victim, NOW).await;
    }
    let mut largest = 0;
    for i in 0..100_000 {
        hit(&throttle, &account(&format!("spray-{i}")), NOW).await;
        largest = largest.max(memory.len());
    }
    assert!(largest <= CAPACITY, "grew to {largest} keys");
    assert!(memory.len() > CAPACITY / 2, "{}", memory.len());
    // The throttled account kept its count through the spray.
    assert_eq!(hit(&throttle, &victim, NOW).await.attempts, 6);
}

/// The same through `Security::begin_login`, with the default capacity
/// (100,000 keys): failed logins for more distinct usernames than that
/// leave at most `DEFAULT_CAPACITY` keys behind.
#[tokio::test]
async fn a_security_handle_stays_bounded_under_a_spray_of_failed_logins() {
    use fastcore_security::MemoryLoginThrottle;

    let memory = Arc::new(MemoryLoginThrottle::new());
    let security = common::memory_security().with_login_throttle(memory.clone());
    for i in 0..130_000 {
        let attempt = security
            .begin_login(&format!("spray-{i}"), None)
            .await
            .unwrap();
        attempt.failed();
    }
    assert!(memory.len() <= MemoryLoginThrottle::DEFAULT_CAPACITY);
    assert!(memory.len() >= MemoryLoginThrottle::DEFAULT_CAPACITY / 2);
}

// --------------------------------------------------------- the Redis keys

/// Redis keys are the store's prefix, `thr:` and the hashed key: never
/// the name. They expire by themselves shortly after their window.
#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_keys_are_hashed_and_expire_after_their_window() {
    use std::time::{SystemTime, UNIX_EPOCH};

    use fastcore_security::TokenStore;

    let Some((store, prefix)) = common::redis_server::redis().await else {
        return;
    };
    let throttle = store.login_throttle().unwrap();
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let name = "ada*[secret]@example.com";
    let key = account(name);
    throttle.hit(&key, 30, now).await.unwrap();
    let keys = prefix.keys().unwrap();
    let expected = format!("{}thr:{}", prefix.prefix(), key.as_str());
    assert_eq!(keys, vec![expected.clone().into_bytes()]);
    assert!(!String::from_utf8_lossy(&keys[0]).contains("ada"));

    let client = ::redis::Client::open(common::redis_server::redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = ::redis::cmd("TTL")
        .arg(&expected)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!((1..=30 + 60).contains(&ttl), "TTL {ttl}");
    throttle.reset(&key).await.unwrap();
    assert!(prefix.keys().unwrap().is_empty());
}
