//! One behaviour suite for every [`TokenStore`] backend.
//!
//! The suite is written once, as plain async functions over
//! `Arc<dyn TokenStore>` (module `suite`). The `store_behaviour!` macro turns
//! the whole list into `#[tokio::test]`s for one backend, so adding a backend
//! (PostgreSQL, MySQL, Redis...) is one constructor in `backends` and one line
//! at the bottom of this file:
//!
//! ```ignore
//! #[cfg(feature = "postgres")]
//! store_behaviour!(postgres => backends::postgres());
//! ```
//!
//! Contract for a backend constructor: every call returns an *empty* store
//! that no other test uses (a fresh file, database or key prefix), because
//! tests run in parallel and some of them count what a purge removed.
//! A backend that needs a server returns `Option<Backend>` instead, `None`
//! when the server cannot be reached: the tests then pass, after one
//! `SKIPPED` line on stderr, except under `CI` where they fail (see
//! `tests/common/databases.rs`).
//!
//! Times are fixed Unix seconds (`NOW`), never the clock: the store only
//! compares the numbers it is given. (Redis also expires records by its own
//! clock, so `NOW` lies far in the future; `records_past_their_expiry` is
//! the one test about records the wall clock has expired.)

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use fastcore_security::{Rotation, SessionMeta, TokenRecord, TokenStore, TokenType};

/// "Now" for every test: 2096-10-02. Far ahead of the wall clock, because
/// Redis expires its records by the server's real clock: the suite's
/// "live" records must be in the real future too.
const NOW: i64 = 4_000_000_000;

/// A store under test, and whatever must live as long as it (a temp dir,
/// a test database that is dropped with it).
struct Backend {
    store: Arc<dyn TokenStore>,
    _guard: Option<Box<dyn std::any::Any + Send>>,
}

mod backends {
    use super::Backend;
    use std::sync::Arc;

    use fastcore_security::{MemoryTokenStore, SqliteTokenStore, connect_store};

    pub(super) async fn memory() -> Backend {
        Backend {
            store: Arc::new(MemoryTokenStore::new()),
            _guard: None,
        }
    }

    /// A SQLite file in a fresh temp dir, opened and migrated by `connect_store`
    /// (a pool of several connections, WAL mode).
    pub(super) async fn sqlite_file() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
        Backend {
            store: connect_store(&url).await.unwrap(),
            _guard: Some(Box::new(dir)),
        }
    }

    /// An in-memory SQLite database (one connection), opened and migrated
    /// through `SqliteTokenStore` itself.
    pub(super) async fn sqlite_in_memory() -> Backend {
        let store = SqliteTokenStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        Backend {
            store: Arc::new(store),
            _guard: None,
        }
    }

    /// A fresh schema on the test PostgreSQL server, migrated by
    /// `connect_store`; `None` skips the suite when the server is down.
    #[cfg(feature = "postgres")]
    pub(super) async fn postgres() -> Option<Backend> {
        let db = crate::common::databases::postgres().await?;
        Some(Backend {
            store: connect_store(db.url()).await.unwrap(),
            _guard: Some(Box::new(db)),
        })
    }

    /// A fresh database on the test MariaDB/MySQL server, migrated by
    /// `connect_store`; `None` skips the suite when the server is down.
    #[cfg(feature = "mysql")]
    pub(super) async fn mysql() -> Option<Backend> {
        let db = crate::common::databases::mysql().await?;
        Some(Backend {
            store: connect_store(db.url()).await.unwrap(),
            _guard: Some(Box::new(db)),
        })
    }

    /// The test Redis under a fresh key prefix, whose keys go with the
    /// guard; `None` skips the suite when the server is down.
    #[cfg(feature = "redis")]
    pub(super) async fn redis() -> Option<Backend> {
        let (store, prefix) = crate::common::redis_server::redis().await?;
        Some(Backend {
            store: Arc::new(store),
            _guard: Some(Box::new(prefix)),
        })
    }
}

/// Generates one `#[tokio::test]` per suite function for a backend.
///
/// `records_outlive_expiry` (default `true`) says whether the backend keeps
/// a record past its token's expiry until `purge_expired` deletes it (the
/// SQL stores), or drops it by itself (Redis: `false`). Only
/// `records_past_their_expiry` depends on it.
macro_rules! store_behaviour {
    ($backend:ident => $make:expr) => {
        store_behaviour!($backend => $make, records_outlive_expiry: true);
    };
    ($backend:ident => $make:expr, records_outlive_expiry: $outlive:expr) => {
        store_behaviour!(@tests $backend, $make, $outlive, [
            backend_answers_ping,
            insert_then_get_round_trips_every_field,
            duplicate_jti_is_an_error_and_keeps_the_first,
            concurrent_duplicate_inserts_let_exactly_one_win,
            revoke_one_is_idempotent_and_says_whether_it_changed,
            revoke_family_revokes_the_session_only,
            revoke_user_keeps_the_excepted_session,
            list_live_excludes_revoked_and_expired_oldest_first,
            purge_expired_works_in_batches_and_keeps_live_records,
            concurrent_inserts_and_revocations,
            unicode_and_long_user_ids,
            user_ids_match_exactly,
            unknown_ids_change_nothing,
            rotate_consumes_the_parent_and_records_the_child,
            rotate_refuses_what_is_not_a_live_refresh_token,
            concurrent_rotations_let_exactly_one_win,
            cut_off_user_revokes_earlier_tokens_with_one_write,
            cut_off_reaches_children_of_older_refresh_tokens,
        ]);
    };
    (@tests $backend:ident, $make:expr, $outlive:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    // A constructor returns a `Backend`, or an
                    // `Option<Backend>` that is `None` to skip.
                    let Some(backend) = Option::<Backend>::from($make.await) else {
                        return;
                    };
                    suite::$test(Arc::clone(&backend.store)).await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn records_past_their_expiry() {
                let Some(backend) = Option::<Backend>::from($make.await) else {
                    return;
                };
                suite::records_past_their_expiry(Arc::clone(&backend.store), $outlive).await;
            }
        }
    };
}

fn record(
    jti: &str,
    user: &str,
    family: Option<&str>,
    issued_at: i64,
    expires_at: i64,
) -> TokenRecord {
    TokenRecord {
        jti: jti.to_owned(),
        token_type: TokenType::Access,
        user_id: user.to_owned(),
        family_id: family.map(str::to_owned),
        issued_at,
        expires_at,
        revoked_at: None,
        consumed_at: None,
        replaced_by: None,
        session: None,
    }
}

/// A live record: issued a minute ago, expires in an hour.
fn live(jti: &str, user: &str, family: Option<&str>) -> TokenRecord {
    record(jti, user, family, NOW - 60, NOW + 3600)
}

async fn insert_all(store: &Arc<dyn TokenStore>, records: &[TokenRecord]) {
    for r in records {
        store.insert(r).await.unwrap();
    }
}

async fn revoked_at(store: &Arc<dyn TokenStore>, jti: &str) -> Option<i64> {
    store.get(jti).await.unwrap().unwrap().revoked_at
}

async fn live_jtis(store: &Arc<dyn TokenStore>, user: &str) -> Vec<String> {
    common::live_jtis(store.as_ref(), user, NOW).await
}

mod suite {
    use super::*;

    pub(super) async fn backend_answers_ping(store: Arc<dyn TokenStore>) {
        store.ping().await.unwrap();
        assert!(!store.backend().is_empty());
    }

    pub(super) async fn insert_then_get_round_trips_every_field(store: Arc<dyn TokenStore>) {
        let records = [
            TokenRecord {
                jti: "5c2a4f0e-0000-4000-8000-000000000001".into(),
                token_type: TokenType::Refresh,
                user_id: "42".into(),
                family_id: Some("family-ü-1".into()),
                issued_at: NOW,
                expires_at: 4_102_444_800,
                revoked_at: None,
                consumed_at: None,
                replaced_by: None,
                session: Some(SessionMeta {
                    started_at: NOW - 100,
                    user_agent: Some("Mozilla/5.0 (X11; Linux) ü".into()),
                    ip: Some("2001:db8::1".into()),
                }),
            },
            TokenRecord {
                jti: "j".repeat(200),
                token_type: TokenType::Access,
                user_id: "u".into(),
                family_id: None,
                issued_at: 0,
                expires_at: i64::MAX / 2,
                revoked_at: Some(NOW - 1),
                consumed_at: None,
                replaced_by: None,
                session: None,
            },
        ];
        insert_all(&store, &records).await;
        for r in &records {
            assert_eq!(store.get(&r.jti).await.unwrap().as_ref(), Some(r));
        }
        assert!(records[0].is_live(NOW));
        assert!(!records[1].is_live(NOW), "revoked");
    }

    pub(super) async fn duplicate_jti_is_an_error_and_keeps_the_first(store: Arc<dyn TokenStore>) {
        let first = live("dup", "alice", None);
        store.insert(&first).await.unwrap();
        let mut second = live("dup", "mallory", Some("f"));
        second.token_type = TokenType::Refresh;
        let err = store.insert(&second).await.unwrap_err();
        assert_eq!(err.operation(), "insert");
        assert_eq!(store.get("dup").await.unwrap(), Some(first));
        assert!(live_jtis(&store, "mallory").await.is_empty());
    }

    pub(super) async fn concurrent_duplicate_inserts_let_exactly_one_win(
        store: Arc<dyn TokenStore>,
    ) {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                store
                    .insert(&live("contested", &format!("user-{i}"), None))
                    .await
                    .is_ok()
            });
        }
        let wins = tasks.join_all().await.into_iter().filter(|ok| *ok).count();
        assert_eq!(wins, 1);
        let winner = store.get("contested").await.unwrap().unwrap();
        assert_eq!(live_jtis(&store, &winner.user_id).await, ["contested"]);
    }

    pub(super) async fn revoke_one_is_idempotent_and_says_whether_it_changed(
        store: Arc<dyn TokenStore>,
    ) {
        insert_all(
            &store,
            &[live("a", "u", Some("f")), live("b", "u", Some("f"))],
        )
        .await;
        assert!(store.revoke("a", NOW).await.unwrap());
        assert!(!store.revoke("a", NOW + 10).await.unwrap());
        assert_eq!(
            revoked_at(&store, "a").await,
            Some(NOW),
            "a second revoke keeps the first time"
        );
        assert_eq!(revoked_at(&store, "b").await, None, "only that token");
        assert_eq!(live_jtis(&store, "u").await, ["b"]);
    }

    pub(super) async fn revoke_family_revokes_the_session_only(store: Arc<dyn TokenStore>) {
        let mut already = live("a3", "u", Some("A"));
        already.revoked_at = Some(NOW - 5);
        insert_all(
            &store,
            &[
                live("a1", "u", Some("A")),
                live("a2", "v", Some("A")),
                already,
                live("b1", "u", Some("B")),
                live("n1", "u", None),
            ],
        )
        .await;
        assert_eq!(store.revoke_family("A", NOW).await.unwrap(), 2);
        assert_eq!(revoked_at(&store, "a1").await, Some(NOW));
        assert_eq!(revoked_at(&store, "a2").await, Some(NOW));
        assert_eq!(
            revoked_at(&store, "a3").await,
            Some(NOW - 5),
            "kept its time"
        );
        assert_eq!(revoked_at(&store, "b1").await, None);
        assert_eq!(revoked_at(&store, "n1").await, None);
        assert_eq!(store.revoke_family("A", NOW + 1).await.unwrap(), 0);
        assert_eq!(
            store.revoke_family("a", NOW).await.unwrap(),
            0,
            "case matters"
        );
    }

    pub(super) async fn revoke_user_keeps_the_excepted_session(store: Arc<dyn TokenStore>) {
        let mut already = live("old", "u", Some("B"));
        already.revoked_at = Some(NOW - 5);
        insert_all(
            &store,
            &[
                live("a1", "u", Some("A")),
                live("a2", "u", Some("A")),
                live("b1", "u", Some("B")),
                live("b2", "u", Some("B")),
                live("n1", "u", None),
                already,
                live("v1", "v", Some("A")),
            ],
        )
        .await;
        assert_eq!(store.revoke_user("u", Some("A"), NOW).await.unwrap(), 3);
        assert_eq!(live_jtis(&store, "u").await, ["a1", "a2"]);
        assert_eq!(
            live_jtis(&store, "v").await,
            ["v1"],
            "other users untouched"
        );
        assert_eq!(revoked_at(&store, "old").await, Some(NOW - 5));

        // An exception naming a session the user does not have keeps nothing.
        assert_eq!(store.revoke_user("u", Some("Z"), NOW).await.unwrap(), 2);
        assert!(live_jtis(&store, "u").await.is_empty());
        assert_eq!(store.revoke_user("u", None, NOW).await.unwrap(), 0);
        assert_eq!(store.revoke_user("v", None, NOW).await.unwrap(), 1);

        // Without an exception, tokens without a session go too.
        insert_all(&store, &[live("w1", "w", None), live("w2", "w", Some("A"))]).await;
        assert_eq!(store.revoke_user("w", None, NOW).await.unwrap(), 2);
        assert!(live_jtis(&store, "w").await.is_empty());
    }

    pub(super) async fn list_live_excludes_revoked_and_expired_oldest_first(
        store: Arc<dyn TokenStore>,
    ) {
        let mut revoked = record("revoked", "u", None, NOW - 500, NOW + 10);
        revoked.revoked_at = Some(NOW - 1);
        let mut refresh = record("r-newest", "u", Some("s"), NOW - 10, NOW + 86_400);
        refresh.token_type = TokenType::Refresh;
        // Inserted out of order on purpose.
        insert_all(
            &store,
            &[
                refresh.clone(),
                record("t-b", "u", None, NOW - 100, NOW + 10),
                record("expired", "u", None, NOW - 900, NOW - 1),
                record("at-now", "u", None, NOW - 900, NOW),
                record("t-a", "u", None, NOW - 100, NOW + 10),
                revoked,
                record("oldest", "u", None, NOW - 300, NOW + 1),
                record("other-user", "v", None, NOW - 1000, NOW + 10),
            ],
        )
        .await;
        let live = store.list_live("u", NOW).await.unwrap();
        let jtis: Vec<_> = live.iter().map(|r| r.jti.as_str()).collect();
        assert_eq!(jtis, ["oldest", "t-a", "t-b", "r-newest"]);
        assert_eq!(live[3], refresh, "records come back whole");
        // Later, fewer are live.
        assert_eq!(
            store
                .list_live("u", NOW + 10)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.jti)
                .collect::<Vec<_>>(),
            ["r-newest"]
        );
    }

    pub(super) async fn purge_expired_works_in_batches_and_keeps_live_records(
        store: Arc<dyn TokenStore>,
    ) {
        let mut records = Vec::new();
        for i in 0..25 {
            records.push(record(
                &format!("exp-{i:02}"),
                "u",
                None,
                NOW - 1000,
                NOW - 1 - i,
            ));
        }
        for i in 0..2 {
            let mut r = record(
                &format!("exp-rev-{i}"),
                "u",
                Some("f"),
                NOW - 1000,
                NOW - 50,
            );
            r.revoked_at = Some(NOW - 60);
            records.push(r);
        }
        let mut keep = vec![record("at-cutoff", "u", None, NOW - 1000, NOW)];
        for i in 0..5 {
            keep.push(live(&format!("live-{i}"), "u", None));
        }
        let mut revoked_live = live("revoked-live", "u", Some("f"));
        revoked_live.revoked_at = Some(NOW - 1);
        keep.push(revoked_live);
        insert_all(&store, &records).await;
        insert_all(&store, &keep).await;

        assert_eq!(store.purge_expired(NOW, 10).await.unwrap(), 10);
        assert_eq!(store.purge_expired(NOW, 10).await.unwrap(), 10);
        assert_eq!(store.purge_expired(NOW, 10).await.unwrap(), 7);
        assert_eq!(store.purge_expired(NOW, 10).await.unwrap(), 0);
        for r in &records {
            assert_eq!(store.get(&r.jti).await.unwrap(), None, "{}", r.jti);
        }
        for r in &keep {
            assert_eq!(store.get(&r.jti).await.unwrap().as_ref(), Some(r));
        }
        assert_eq!(
            store.purge_expired(NOW + 1, 100).await.unwrap(),
            1,
            "at-cutoff"
        );
    }

    pub(super) async fn concurrent_inserts_and_revocations(store: Arc<dyn TokenStore>) {
        const N: usize = 200;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let jti = format!("c-{i:03}");
                store
                    .insert(&record(
                        &jti,
                        "busy",
                        Some("s"),
                        NOW - i64::try_from(i).unwrap(),
                        NOW + 60,
                    ))
                    .await
                    .unwrap();
                // Read your own write, while others write.
                assert_eq!(store.get(&jti).await.unwrap().unwrap().user_id, "busy");
            });
        }
        tasks.join_all().await;
        let live = store.list_live("busy", NOW).await.unwrap();
        assert_eq!(live.len(), N);
        let distinct: HashSet<_> = live.iter().map(|r| r.jti.clone()).collect();
        assert_eq!(distinct.len(), N);
        assert_eq!(live[0].jti, format!("c-{:03}", N - 1), "oldest first");

        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..N {
            let store = Arc::clone(&store);
            tasks.spawn(async move { store.revoke(&format!("c-{i:03}"), NOW).await.unwrap() });
        }
        assert!(tasks.join_all().await.into_iter().all(|changed| changed));
        assert!(store.list_live("busy", NOW).await.unwrap().is_empty());
        assert_eq!(store.revoke_family("s", NOW).await.unwrap(), 0);
    }

    pub(super) async fn unicode_and_long_user_ids(store: Arc<dyn TokenStore>) {
        let long_ascii = "x".repeat(1000);
        let long_unicode = "é".repeat(500);
        assert_eq!(long_unicode.len(), 1000);
        let ids = [
            "用户-ünïcode-🙂".to_owned(),
            long_ascii.clone(),
            long_unicode.clone(),
            "'; DROP TABLE fastcore_tokens; --".to_owned(),
            "a%".to_owned(),
            "a_c".to_owned(),
            "abc".to_owned(),
        ];
        for (i, id) in ids.iter().enumerate() {
            store
                .insert(&live(&format!("id-{i}"), id, Some(id)))
                .await
                .unwrap();
        }
        for (i, id) in ids.iter().enumerate() {
            let got = store.get(&format!("id-{i}")).await.unwrap().unwrap();
            assert_eq!(&got.user_id, id);
            assert_eq!(got.family_id.as_deref(), Some(id.as_str()));
            assert_eq!(live_jtis(&store, id).await, [format!("id-{i}")]);
        }
        // No pattern matching: `a%` and `a_c` name themselves only.
        assert_eq!(store.revoke_user("a%", None, NOW).await.unwrap(), 1);
        assert_eq!(store.revoke_family("a_c", NOW).await.unwrap(), 1);
        assert_eq!(live_jtis(&store, "abc").await, ["id-6"]);
        assert_eq!(
            store.revoke_user(&long_unicode, None, NOW).await.unwrap(),
            1
        );
        assert_eq!(live_jtis(&store, &long_ascii).await, ["id-1"]);
        store.ping().await.unwrap();
    }

    pub(super) async fn user_ids_match_exactly(store: Arc<dyn TokenStore>) {
        // Some SQL collations fold case or ignore trailing spaces; user ids
        // are opaque strings and must not.
        let ids = ["alice", "Alice", "ALICE", "alice ", " alice", "alíce"];
        for (i, id) in ids.iter().enumerate() {
            store
                .insert(&live(&format!("x-{i}"), id, Some(id)))
                .await
                .unwrap();
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(live_jtis(&store, id).await, [format!("x-{i}")], "{id:?}");
        }
        assert_eq!(store.revoke_user("Alice", None, NOW).await.unwrap(), 1);
        assert_eq!(store.revoke_family("alice ", NOW).await.unwrap(), 1);
        assert_eq!(live_jtis(&store, "alice").await, ["x-0"]);
        assert!(
            store.get("X-0").await.unwrap().is_none(),
            "jti lookup is exact too"
        );
    }

    /// Records whose tokens expired by the wall clock, far beyond any
    /// grace period. They are never live anywhere; whether `get` still
    /// finds one until a purge depends on the backend.
    pub(super) async fn records_past_their_expiry(
        store: Arc<dyn TokenStore>,
        records_outlive_expiry: bool,
    ) {
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        let gone = record("gone", "u", Some("f"), now - 7200, now - 3600);
        let fresh = record("fresh", "u", Some("f"), now - 60, now + 3600);
        insert_all(&store, &[gone.clone(), fresh.clone()]).await;
        let live = store.list_live("u", now).await.unwrap();
        assert_eq!(live.as_slice(), std::slice::from_ref(&fresh));
        if records_outlive_expiry {
            assert_eq!(store.get("gone").await.unwrap(), Some(gone));
            assert_eq!(store.purge_expired(now, 10).await.unwrap(), 1);
        } else {
            assert_eq!(store.get("gone").await.unwrap(), None, "dropped by itself");
            assert_eq!(store.purge_expired(now, 10).await.unwrap(), 0);
        }
        assert_eq!(store.get("gone").await.unwrap(), None);
        assert_eq!(store.get("fresh").await.unwrap(), Some(fresh));
        assert_eq!(store.revoke_family("f", now).await.unwrap(), 1);
        assert_eq!(store.revoke_user("u", None, now).await.unwrap(), 0);
        assert!(store.list_live("u", now).await.unwrap().is_empty());
    }

    pub(super) async fn unknown_ids_change_nothing(store: Arc<dyn TokenStore>) {
        assert_eq!(store.get("nope").await.unwrap(), None);
        assert!(!store.revoke("nope", NOW).await.unwrap());
        assert_eq!(store.revoke_family("nope", NOW).await.unwrap(), 0);
        assert_eq!(store.revoke_user("nope", None, NOW).await.unwrap(), 0);
        assert!(store.list_live("nope", NOW).await.unwrap().is_empty());
        assert_eq!(store.purge_expired(NOW, 10).await.unwrap(), 0);
        store.insert(&live("known", "u", None)).await.unwrap();
        assert!(!store.revoke("nope", NOW).await.unwrap());
        assert_eq!(store.get("",).await.unwrap(), None);
        assert_eq!(live_jtis(&store, "u").await, ["known"]);
    }

    fn refresh(jti: &str, user: &str, family: &str) -> TokenRecord {
        let mut r = live(jti, user, Some(family));
        r.token_type = TokenType::Refresh;
        r.session = Some(SessionMeta {
            started_at: NOW - 60,
            user_agent: Some("agent".into()),
            ip: Some("127.0.0.1".into()),
        });
        r
    }

    pub(super) async fn rotate_consumes_the_parent_and_records_the_child(
        store: Arc<dyn TokenStore>,
    ) {
        store.insert(&refresh("p", "u", "F")).await.unwrap();
        let child = refresh("c", "u", "F");
        assert_eq!(
            store.rotate("p", &child, NOW).await.unwrap(),
            Rotation::Rotated
        );
        let parent = store.get("p").await.unwrap().unwrap();
        assert_eq!(parent.consumed_at, Some(NOW));
        assert_eq!(parent.replaced_by.as_deref(), Some("c"));
        assert_eq!(parent.revoked_at, None);
        assert!(!parent.is_live(NOW), "a consumed token is spent");
        assert_eq!(store.get("c").await.unwrap(), Some(child.clone()));
        assert_eq!(live_jtis(&store, "u").await, ["c"]);
        // Again with the spent parent: nothing changes, the answer says who
        // replaced it, and a second child is never recorded.
        assert_eq!(
            store
                .rotate("p", &refresh("c2", "u", "F"), NOW + 1)
                .await
                .unwrap(),
            Rotation::AlreadyConsumed {
                consumed_at: NOW,
                replaced_by: Some("c".into())
            }
        );
        assert_eq!(store.get("c2").await.unwrap(), None);
        // The family revocation reaches the child; the consumed parent then
        // reports NotLive (revoked wins over consumed).
        assert_eq!(store.revoke_family("F", NOW + 2).await.unwrap(), 2);
        assert_eq!(
            store
                .rotate("p", &refresh("c3", "u", "F"), NOW + 3)
                .await
                .unwrap(),
            Rotation::NotLive
        );
        assert_eq!(
            store
                .rotate("c", &refresh("c4", "u", "F"), NOW + 3)
                .await
                .unwrap(),
            Rotation::NotLive
        );
        assert_eq!(store.get("c4").await.unwrap(), None);
    }

    pub(super) async fn rotate_refuses_what_is_not_a_live_refresh_token(
        store: Arc<dyn TokenStore>,
    ) {
        // Unknown, an access token, revoked, expired: NotLive, no child.
        let access = live("a", "u", Some("F"));
        let revoked = refresh("r", "u", "G");
        let mut expired = refresh("e", "u", "H");
        expired.expires_at = NOW;
        insert_all(&store, &[access, revoked, expired]).await;
        store.revoke("r", NOW - 1).await.unwrap();
        for (n, parent) in ["unknown", "a", "r", "e"].into_iter().enumerate() {
            let child = refresh(&format!("child-{n}"), "u", "F");
            assert_eq!(
                store.rotate(parent, &child, NOW).await.unwrap(),
                Rotation::NotLive,
                "{parent}"
            );
            assert_eq!(store.get(&child.jti).await.unwrap(), None, "{parent}");
        }
        assert_eq!(store.get("a").await.unwrap().unwrap().consumed_at, None);
    }

    pub(super) async fn concurrent_rotations_let_exactly_one_win(store: Arc<dyn TokenStore>) {
        store.insert(&refresh("p", "u", "F")).await.unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let child = refresh(&format!("child-{i}"), "u", "F");
                    (i, store.rotate("p", &child, NOW).await.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (i, Rotation::Rotated) => winners.push(i),
                (
                    _,
                    Rotation::AlreadyConsumed {
                        consumed_at,
                        replaced_by,
                    },
                ) => {
                    losers.push((consumed_at, replaced_by));
                }
                (i, Rotation::NotLive) => panic!("rotation {i} found the parent not live"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one rotation wins");
        let winner = format!("child-{}", winners[0]);
        assert_eq!(losers.len(), 63);
        for (consumed_at, replaced_by) in losers {
            assert_eq!(consumed_at, NOW);
            assert_eq!(replaced_by.as_deref(), Some(winner.as_str()));
        }
        assert_eq!(live_jtis(&store, "u").await, std::slice::from_ref(&winner));
        for i in 0..64 {
            let jti = format!("child-{i}");
            assert_eq!(store.get(&jti).await.unwrap().is_some(), jti == winner);
        }
    }

    pub(super) async fn cut_off_user_revokes_earlier_tokens_with_one_write(
        store: Arc<dyn TokenStore>,
    ) {
        insert_all(
            &store,
            &[
                live("a", "u", Some("F")),
                refresh("b", "u", "G"),
                live("other", "v", None),
            ],
        )
        .await;
        store.revoke("a", NOW - 5).await.unwrap();
        store.cut_off_user("u", NOW).await.unwrap();
        // An earlier revocation keeps its time; the cut-off revoked the rest.
        assert_eq!(revoked_at(&store, "a").await, Some(NOW - 5));
        assert_eq!(revoked_at(&store, "b").await, Some(NOW));
        assert_eq!(
            revoked_at(&store, "other").await,
            None,
            "other users are untouched"
        );
        assert!(live_jtis(&store, "u").await.is_empty());
        assert_eq!(
            store
                .rotate("b", &refresh("b2", "u", "G"), NOW)
                .await
                .unwrap(),
            Rotation::NotLive
        );
        // Tokens issued after the cut-off live, also in the same second.
        insert_all(&store, &[live("new", "u", Some("N"))]).await;
        assert_eq!(revoked_at(&store, "new").await, None);
        assert_eq!(live_jtis(&store, "u").await, ["new"]);
        // A second cut-off revokes those too and re-dates nothing revoked.
        store.cut_off_user("u", NOW + 10).await.unwrap();
        assert_eq!(revoked_at(&store, "new").await, Some(NOW + 10));
        assert_eq!(revoked_at(&store, "a").await, Some(NOW - 5));
        assert!(live_jtis(&store, "u").await.is_empty());
        // What a cut-off revoked counts as revoked: revoking it again by
        // token, session or user changes nothing and keeps its time.
        insert_all(&store, &[live("late", "u", Some("L"))]).await;
        store.cut_off_user("u", NOW + 20).await.unwrap();
        assert!(!store.revoke("late", NOW + 30).await.unwrap());
        assert_eq!(store.revoke_family("L", NOW + 30).await.unwrap(), 0);
        assert_eq!(store.revoke_user("u", None, NOW + 30).await.unwrap(), 0);
        assert_eq!(
            store.revoke_user("u", Some("X"), NOW + 30).await.unwrap(),
            0
        );
        assert_eq!(revoked_at(&store, "late").await, Some(NOW + 20));
        // A user without tokens can be cut off (idempotent, no error).
        store.cut_off_user("nobody", NOW).await.unwrap();
        store.cut_off_user("nobody", NOW).await.unwrap();
    }

    pub(super) async fn cut_off_reaches_children_of_older_refresh_tokens(
        store: Arc<dyn TokenStore>,
    ) {
        // A rotation that races a cut-off: the child inherits the parent's
        // standing, so once the cut-off lands the child is revoked too,
        // whichever committed first.
        store.insert(&refresh("p", "u", "F")).await.unwrap();
        assert_eq!(
            store
                .rotate("p", &refresh("c", "u", "F"), NOW)
                .await
                .unwrap(),
            Rotation::Rotated
        );
        store.cut_off_user("u", NOW + 1).await.unwrap();
        assert_eq!(revoked_at(&store, "c").await, Some(NOW + 1));
        // Sessions started after the cut-off rotate normally.
        store.insert(&refresh("q", "u", "G")).await.unwrap();
        assert_eq!(
            store
                .rotate("q", &refresh("q2", "u", "G"), NOW + 2)
                .await
                .unwrap(),
            Rotation::Rotated
        );
        assert_eq!(live_jtis(&store, "u").await, ["q2"]);
    }
}

store_behaviour!(memory => backends::memory());
store_behaviour!(sqlite_file => backends::sqlite_file());
store_behaviour!(sqlite_in_memory => backends::sqlite_in_memory());
#[cfg(feature = "postgres")]
store_behaviour!(postgres => backends::postgres());
#[cfg(feature = "mysql")]
store_behaviour!(mysql => backends::mysql());
#[cfg(feature = "redis")]
store_behaviour!(redis => backends::redis(), records_outlive_expiry: false);
