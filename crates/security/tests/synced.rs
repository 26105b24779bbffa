//! Synced validation across instances: two `Security` handles ("A" and
//! "B", as two processes would be) over one store, B in synced mode.
//!
//! Every revocation kind made through A is seen by B within a deadline;
//! a lost feed sends B back to the store until it has resynced; tokens
//! that were never recorded are refused as in strict mode. The suite runs
//! on every backend with a feed (the `synced!` macro at the bottom);
//! PostgreSQL, MariaDB and Redis run when their servers answer (always
//! under `CI`). Tests wait for an outcome with a generous deadline and
//! never assert timings.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fastcore_security::{
    Error, InvalidTokenReason, RevocationBatch, RevocationFeed, Rotation, Security, StoreError,
    TokenRecord, TokenStore, TokenType, ValidationMode, get_security_status,
};
use tokio::sync::mpsc;

use common::{claims_for, config_builder, encode_and_record};

/// How long a test waits for an instance to see a change.
const DEADLINE: Duration = Duration::from_secs(5);

/// Two handles on one store's data (for the SQL and Redis stores, two
/// connections pools, as two processes have), and what must outlive them.
struct Pair {
    a: Arc<dyn TokenStore>,
    b: Arc<dyn TokenStore>,
    _guard: Option<Box<dyn std::any::Any + Send>>,
}

mod backends {
    use super::Pair;
    use std::sync::Arc;

    use fastcore_security::{MemoryTokenStore, TokenStore, connect_store};

    pub(super) async fn memory() -> Pair {
        let store: Arc<dyn TokenStore> = Arc::new(MemoryTokenStore::new());
        Pair {
            a: Arc::clone(&store),
            b: store,
            _guard: None,
        }
    }

    pub(super) async fn sqlite() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tokens.db").display());
        Pair {
            a: connect_store(&url).await.unwrap(),
            b: connect_store(&url).await.unwrap(),
            _guard: Some(Box::new(dir)),
        }
    }

    #[cfg(feature = "postgres")]
    pub(super) async fn postgres() -> Option<Pair> {
        let db = crate::common::databases::postgres().await?;
        Some(Pair {
            a: connect_store(db.url()).await.unwrap(),
            b: connect_store(db.url()).await.unwrap(),
            _guard: Some(Box::new(db)),
        })
    }

    #[cfg(feature = "mysql")]
    pub(super) async fn mysql() -> Option<Pair> {
        let db = crate::common::databases::mysql().await?;
        Some(Pair {
            a: connect_store(db.url()).await.unwrap(),
            b: connect_store(db.url()).await.unwrap(),
            _guard: Some(Box::new(db)),
        })
    }

    #[cfg(feature = "redis")]
    pub(super) async fn redis() -> Option<Pair> {
        let (a, prefix) = crate::common::redis_server::redis().await?;
        let b = fastcore_security::RedisTokenStore::connect_with_prefix(
            &crate::common::redis_server::redis_url(),
            prefix.prefix(),
        )
        .await
        .unwrap();
        Some(Pair {
            a: Arc::new(a),
            b: Arc::new(b),
            _guard: Some(Box::new(prefix)),
        })
    }
}

/// A store whose revocation feed a test can cut: while cut, every feed
/// call fails and every subscription is closed, as when the connection
/// that carries the feed is lost. Everything else goes to the real store.
struct CuttableStore {
    inner: Arc<dyn TokenStore>,
    cut: Arc<AtomicBool>,
}

struct CuttableFeed {
    inner: Arc<dyn RevocationFeed>,
    cut: Arc<AtomicBool>,
}

fn lost() -> StoreError {
    StoreError::new("feed", std::io::Error::other("feed connection lost (test)"))
}

#[async_trait]
impl RevocationFeed for CuttableFeed {
    async fn snapshot(&self, expiring_after: i64) -> Result<RevocationBatch, StoreError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(lost());
        }
        self.inner.snapshot(expiring_after).await
    }

    async fn changes_since(&self, cursor: u64) -> Result<Option<RevocationBatch>, StoreError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(lost());
        }
        self.inner.changes_since(cursor).await
    }

    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<()>>, StoreError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(lost());
        }
        let Some(mut upstream) = self.inner.subscribe().await? else {
            return Ok(None);
        };
        // Forward signals until the feed is cut, then close.
        let (tx, rx) = mpsc::channel(1);
        let cut = Arc::clone(&self.cut);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    signal = upstream.recv() => match signal {
                        Some(()) => { let _ = tx.try_send(()); }
                        None => return,
                    },
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                if cut.load(Ordering::SeqCst) || tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Some(rx))
    }
}

#[async_trait]
impl TokenStore for CuttableStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.inner.insert(record).await
    }
    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.get(jti).await
    }
    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, StoreError> {
        self.inner.revoke(jti, at).await
    }
    async fn rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, StoreError> {
        self.inner.rotate(parent_jti, child, at).await
    }
    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        self.inner.revoke_family(family_id, at).await
    }
    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        self.inner.revoke_user(user_id, except_family, at).await
    }
    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        self.inner.cut_off_user(user_id, at).await
    }
    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.list_live(user_id, now).await
    }
    async fn purge_expired(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        self.inner.purge_expired(before, batch).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn revocation_feed(&self) -> Option<Arc<dyn RevocationFeed>> {
        Some(Arc::new(CuttableFeed {
            inner: self.inner.revocation_feed()?,
            cut: Arc::clone(&self.cut),
        }))
    }
}

fn strict(store: Arc<dyn TokenStore>) -> Security {
    Security::new(config_builder().build().unwrap(), store).unwrap()
}

fn synced(store: Arc<dyn TokenStore>) -> Security {
    let config = config_builder()
        .validation_mode(ValidationMode::Synced)
        .sync_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    Security::new(config, store).unwrap()
}

/// Waits until `security`'s revocation view is current.
async fn until_synced(security: &Security) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while security.revocation_view_synced() != Some(true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the revocation view did not load within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `security` with `token` until it is refused as revoked; fails
/// after the deadline. Any other error than a revocation fails at once.
async fn until_revoked(security: &Security, token: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match security
            .validate_token(token, Some(TokenType::Access))
            .await
        {
            Err(Error::RevokedToken) => return,
            Ok(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "the revocation was not seen within {DEADLINE:?}"
            ),
            Err(other) => panic!("expected a revocation, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Validates on B until it answers from its view (known token), so that a
/// later refusal shows the view (or its fallback) changed its answer.
async fn accepted(security: &Security, token: &str) {
    for _ in 0..2 {
        security
            .validate_token(token, Some(TokenType::Access))
            .await
            .unwrap();
    }
}

mod suite {
    use super::*;

    pub(super) async fn revoking_one_token_on_a_is_seen_on_b(pair: Pair) {
        let (a, b) = (strict(pair.a), synced(pair.b));
        until_synced(&b).await;
        let pair_ = a.create_token_pair("ada", None).await.unwrap();
        let other = a.create_token_pair("ada", None).await.unwrap();
        accepted(&b, &pair_.access_token).await;
        accepted(&b, &other.access_token).await;
        a.revoke_token(&pair_.access_token).await.unwrap();
        until_revoked(&b, &pair_.access_token).await;
        // Only that token.
        accepted(&b, &other.access_token).await;
        // Revoked before B ever saw it: refused at first sight too.
        let fresh = a.create_token_pair("ada", None).await.unwrap();
        a.revoke_token(&fresh.access_token).await.unwrap();
        until_revoked(&b, &fresh.access_token).await;
    }

    pub(super) async fn ending_a_session_on_a_is_seen_on_b(pair: Pair) {
        let (a, b) = (strict(pair.a), synced(pair.b));
        until_synced(&b).await;
        let login = a.create_token_pair("ada", None).await.unwrap();
        let kept = a.create_token_pair("ada", None).await.unwrap();
        accepted(&b, &login.access_token).await;
        accepted(&b, &kept.access_token).await;
        // Logging out with the refresh token ends the access token too.
        a.logout(&login.refresh_token).await.unwrap();
        until_revoked(&b, &login.access_token).await;
        accepted(&b, &kept.access_token).await;
        // "Log out other devices" through A: B sees every other session end.
        let third = a.create_token_pair("ada", None).await.unwrap();
        accepted(&b, &third.access_token).await;
        let keep = a.decode_token(&kept.access_token).unwrap().sid.unwrap();
        a.revoke_other_sessions("ada", &keep).await.unwrap();
        until_revoked(&b, &third.access_token).await;
        accepted(&b, &kept.access_token).await;
    }

    pub(super) async fn logging_out_everywhere_on_a_is_seen_on_b(pair: Pair) {
        let (a, b) = (strict(pair.a), synced(pair.b));
        until_synced(&b).await;
        // Issued an hour ago: far before the cut-off, so B's view decides
        // from the cut-off alone.
        let old = claims_for(&a, "ada", TokenType::Access, 600);
        let old = encode_and_record(&a, &old).await;
        // Issued just now: too close to the cut-off for `iat` to tell, so
        // B asks the store.
        let recent = a.create_token_pair("ada", None).await.unwrap();
        let someone_else = a.create_token_pair("grace", None).await.unwrap();
        accepted(&b, &old).await;
        accepted(&b, &recent.access_token).await;
        accepted(&b, &someone_else.access_token).await;
        a.revoke_all_user_tokens("ada").await.unwrap();
        until_revoked(&b, &old).await;
        until_revoked(&b, &recent.access_token).await;
        accepted(&b, &someone_else.access_token).await;
        // A login after the cut-off works on B.
        let after = a.create_token_pair("ada", None).await.unwrap();
        accepted(&b, &after.access_token).await;
    }

    pub(super) async fn refresh_reuse_detected_on_a_is_seen_on_b(pair: Pair) {
        let config = config_builder()
            .refresh_reuse_grace(Duration::ZERO)
            .build()
            .unwrap();
        let a = Security::new(config, pair.a).unwrap();
        let b = synced(pair.b);
        until_synced(&b).await;
        let login = a.create_token_pair("ada", None).await.unwrap();
        let rotated = a.refresh_access_token(&login.refresh_token).await.unwrap();
        accepted(&b, &login.access_token).await;
        accepted(&b, &rotated.access_token).await;
        // The spent refresh token again: theft; the whole session ends.
        let reuse = a.refresh_access_token(&login.refresh_token).await;
        assert!(matches!(reuse, Err(Error::RefreshTokenReused)), "{reuse:?}");
        until_revoked(&b, &login.access_token).await;
        until_revoked(&b, &rotated.access_token).await;
    }

    pub(super) async fn tokens_never_recorded_are_refused_as_in_strict_mode(pair: Pair) {
        let (a, b) = (strict(pair.a), synced(pair.b));
        until_synced(&b).await;
        // Signed with our key but never recorded (encode_jwt records nothing).
        let claims = claims_for(&a, "ada", TokenType::Access, 600);
        let unrecorded = a.encode_jwt(&claims).unwrap();
        for security in [&a, &b] {
            for _ in 0..2 {
                let err = security
                    .validate_token(&unrecorded, Some(TokenType::Access))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(err, Error::InvalidToken(InvalidTokenReason::UnknownToken)),
                    "{err:?}"
                );
            }
        }
        // A spent refresh token is refused by validate_token on B too
        // (refresh tokens are always checked in the store).
        let login = a.create_token_pair("ada", None).await.unwrap();
        a.refresh_access_token(&login.refresh_token).await.unwrap();
        let err = b
            .validate_token(&login.refresh_token, Some(TokenType::Refresh))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RevokedToken), "{err:?}");
    }

    pub(super) async fn a_lost_feed_falls_back_to_the_store_until_resynced(pair: Pair) {
        let cut = Arc::new(AtomicBool::new(false));
        let b_store = Arc::new(CuttableStore {
            inner: pair.b,
            cut: Arc::clone(&cut),
        });
        let (a, b) = (strict(pair.a), synced(b_store));
        until_synced(&b).await;
        let status = get_security_status(Some(&b)).await;
        assert_eq!(status.validation_mode, Some("synced"));
        assert_eq!(status.revocation_view, Some("synced"));

        let login = a.create_token_pair("ada", None).await.unwrap();
        let other = a.create_token_pair("ada", None).await.unwrap();
        accepted(&b, &login.access_token).await;
        accepted(&b, &other.access_token).await;

        cut.store(true, Ordering::SeqCst);
        // The feed cannot carry this: only a store check can refuse it.
        a.logout(&login.access_token).await.unwrap();
        until_revoked(&b, &login.access_token).await;
        let status = get_security_status(Some(&b)).await;
        assert_eq!(status.revocation_view, Some("resyncing"));
        assert!(status.healthy(), "the store answers: still healthy");
        // Everything else still works, from the store.
        accepted(&b, &other.access_token).await;
        a.revoke_all_user_tokens("ada").await.unwrap();
        until_revoked(&b, &other.access_token).await;

        // Back: B resubscribes and reloads; what it missed is in the view.
        cut.store(false, Ordering::SeqCst);
        until_synced(&b).await;
        let status = get_security_status(Some(&b)).await;
        assert_eq!(status.revocation_view, Some("synced"));
        for token in [&login.access_token, &other.access_token] {
            let err = b.validate_token(token, Some(TokenType::Access)).await;
            assert!(matches!(err, Err(Error::RevokedToken)), "{err:?}");
        }
        let after = a.create_token_pair("ada", None).await.unwrap();
        accepted(&b, &after.access_token).await;
    }

    /// A revocation made through the synced instance itself takes effect
    /// on its very next request, without waiting for the feed (the sync
    /// interval here is a minute).
    pub(super) async fn revocations_through_an_instance_are_seen_by_it_at_once(pair: Pair) {
        let config = config_builder()
            .validation_mode(ValidationMode::Synced)
            .sync_interval(Duration::from_secs(60))
            .build()
            .unwrap();
        let b = Security::new(config, pair.b).unwrap();
        until_synced(&b).await;
        let refused = |token: String| {
            let b = b.clone();
            async move {
                let err = b.validate_token(&token, Some(TokenType::Access)).await;
                assert!(matches!(err, Err(Error::RevokedToken)), "{err:?}");
            }
        };
        let one = b.create_token_pair("ada", None).await.unwrap();
        let two = b.create_token_pair("ada", None).await.unwrap();
        let old = claims_for(&b, "ada", TokenType::Access, 600);
        let old = encode_and_record(&b, &old).await;
        for token in [&one.access_token, &two.access_token, &old] {
            accepted(&b, token).await;
        }
        b.revoke_token(&one.access_token).await.unwrap();
        refused(one.access_token.clone()).await;
        b.logout(&two.refresh_token).await.unwrap();
        refused(two.access_token.clone()).await;
        b.revoke_all_user_tokens("ada").await.unwrap();
        refused(old).await;
    }

    /// The view's memory is bounded by expiry: neither a snapshot nor a
    /// catch-up hands over a revoked token that has expired (beyond the
    /// largest leeway), so an instance only ever holds the revocations
    /// of tokens that could still be accepted.
    pub(super) async fn the_feed_leaves_out_expired_revocations(pair: Pair) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let feed = pair.b.revocation_feed().expect("a store with a feed");
        let start = feed.snapshot(now - 300).await.unwrap().cursor;
        let record = |jti: &str, exp: i64| {
            TokenRecord::new(jti, TokenType::Access, "ada", None, now - 3_600, exp)
        };
        // Expired an hour ago (the Redis store does not even keep it) and
        // live for ten minutes.
        pair.a
            .insert(&record("expired", now - 3_600))
            .await
            .unwrap();
        pair.a.insert(&record("live", now + 600)).await.unwrap();
        pair.a.revoke("expired", now).await.unwrap();
        pair.a.revoke("live", now).await.unwrap();
        let jtis = |batch: &RevocationBatch| -> Vec<String> {
            batch
                .revocations
                .iter()
                .filter_map(|r| match r {
                    fastcore_security::Revocation::Token { jti, .. } => Some(jti.clone()),
                    fastcore_security::Revocation::UserCutOff { .. } => None,
                })
                .collect()
        };
        let snapshot = feed.snapshot(now - 300).await.unwrap();
        assert_eq!(jtis(&snapshot), ["live"]);
        assert!(snapshot.cursor > start, "the revocation moved the cursor");
        let changes = feed.changes_since(start).await.unwrap().unwrap();
        assert_eq!(jtis(&changes), ["live"]);
        assert_eq!(changes.cursor, snapshot.cursor);
        // Nothing new: the same cursor, nothing to apply.
        let none = feed.changes_since(changes.cursor).await.unwrap().unwrap();
        assert!(none.revocations.is_empty());
        assert_eq!(none.cursor, changes.cursor);
    }
}

macro_rules! synced {
    ($backend:ident => $make:expr) => {
        synced!(@tests $backend, $make, [
            revoking_one_token_on_a_is_seen_on_b,
            ending_a_session_on_a_is_seen_on_b,
            logging_out_everywhere_on_a_is_seen_on_b,
            refresh_reuse_detected_on_a_is_seen_on_b,
            tokens_never_recorded_are_refused_as_in_strict_mode,
            a_lost_feed_falls_back_to_the_store_until_resynced,
            the_feed_leaves_out_expired_revocations,
            revocations_through_an_instance_are_seen_by_it_at_once,
        ]);
    };
    (@tests $backend:ident, $make:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(pair) = Option::<Pair>::from($make.await) else {
                        return;
                    };
                    suite::$test(pair).await;
                }
            )*
        }
    };
}

synced!(memory => backends::memory());
synced!(sqlite => backends::sqlite());
#[cfg(feature = "postgres")]
synced!(postgres => backends::postgres());
#[cfg(feature = "mysql")]
synced!(mysql => backends::mysql());
#[cfg(feature = "redis")]
synced!(redis => backends::redis());

/// Synced mode refuses a store without a feed, and needs a runtime.
#[test]
fn synced_mode_needs_a_feed_and_a_runtime() {
    let store = Arc::new(fastcore_security::MemoryTokenStore::new());
    let config = config_builder()
        .validation_mode(ValidationMode::Synced)
        .build()
        .unwrap();
    // Outside a runtime: a configuration error, not a panic.
    let err = Security::new(config, store).unwrap_err();
    assert!(err.to_string().contains("runtime"), "{err}");
}

#[tokio::test]
async fn a_store_without_a_feed_cannot_run_synced() {
    struct Plain;
    #[async_trait]
    impl TokenStore for Plain {
        fn backend(&self) -> &'static str {
            "plain"
        }
        async fn insert(&self, _: &TokenRecord) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get(&self, _: &str) -> Result<Option<TokenRecord>, StoreError> {
            Ok(None)
        }
        async fn revoke(&self, _: &str, _: i64) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn rotate(&self, _: &str, _: &TokenRecord, _: i64) -> Result<Rotation, StoreError> {
            Ok(Rotation::NotLive)
        }
        async fn revoke_family(&self, _: &str, _: i64) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn revoke_user(&self, _: &str, _: Option<&str>, _: i64) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn cut_off_user(&self, _: &str, _: i64) -> Result<(), StoreError> {
            Ok(())
        }
        async fn list_live(&self, _: &str, _: i64) -> Result<Vec<TokenRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn purge_expired(&self, _: i64, _: u32) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }
    let config = config_builder()
        .validation_mode(ValidationMode::Synced)
        .build()
        .unwrap();
    let err = Security::new(config, Arc::new(Plain)).unwrap_err();
    assert!(err.to_string().contains("revocation feed"), "{err}");
    // Strict mode is fine on it.
    let _ = strict(Arc::new(Plain));
}

/// PostgreSQL signals revocations on a channel of the schema's own: the
/// instances of a deployment in another schema of the same database are not
/// woken by them (they used to share one channel per database).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schemas_signal_on_channels_of_their_own() {
    let (Some(ours), Some(theirs)) = (
        common::databases::postgres().await,
        common::databases::postgres().await,
    ) else {
        return;
    };
    let store = fastcore_security::connect_store(ours.url()).await.unwrap();
    let neighbour = fastcore_security::connect_store(theirs.url())
        .await
        .unwrap();
    let subscribe = |store: &Arc<dyn TokenStore>| {
        let feed = store.revocation_feed().unwrap();
        async move { feed.subscribe().await.unwrap().unwrap() }
    };
    let mut own = subscribe(&store).await;
    let mut foreign = subscribe(&neighbour).await;

    let security = strict(store);
    let pair = security.create_token_pair("ada", None).await.unwrap();
    security.revoke_token(&pair.access_token).await.unwrap();

    tokio::time::timeout(DEADLINE, own.recv())
        .await
        .expect("the revocation did not wake its own schema's subscriber")
        .expect("the subscription was lost");
    // Both would have been signalled by the same NOTIFY; give a stray one
    // time to arrive all the same.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        matches!(foreign.try_recv(), Err(mpsc::error::TryRecvError::Empty)),
        "a revocation in one schema woke the subscriber of another"
    );
}
