//! The in-memory revocation view of [synced validation](crate::ValidationMode::Synced),
//! and the background task that keeps it current from the store's
//! [`RevocationFeed`].
//!
//! The view answers a verified access token's claims with one of three
//! verdicts: revoked, live, or "ask the store". It says live only when all
//! of these hold:
//!
//! - it is *fresh*: its last successful read of the feed is younger than
//!   the staleness bound (`3 × sync_interval + 1 s`); otherwise, or while
//!   (re)loading after a lost feed, every request is checked in the store
//!   as in strict mode, so a stale view is never served;
//! - the `jti` is not among the revoked tokens it holds;
//! - the user has no cut-off after the token was issued, nor one too close
//!   to its `iat` to tell (see [`RevocationView::check`]);
//! - this instance has already seen the token's record in the store
//!   (its first use here is a strict check). A valid signature proves
//!   that *we* signed the token, not that it was recorded: tokens signed
//!   by [`Security::encode_jwt`](crate::Security::encode_jwt), by the
//!   Python service before their import, or whose record was lost with
//!   the store, have no record, and strict mode refuses them. Synced mode
//!   refuses them too, at the cost of one store read per token and
//!   instance.
//!
//! A revocation made through this instance is seen by it at once: the
//! [`ViewedStore`] wrapper reads the feed right after each revoking store
//! call, before the call returns (and if that read fails, the view goes
//! stale and the sync task reloads it).
//!
//! Memory is bounded by expiry: revoked and known entries are dropped once
//! their token would be refused as expired anyway (`exp` plus the largest
//! leeway), cut-offs are one entry per user, and the known-token cache has
//! a capacity beyond which tokens are simply checked in the store.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::task::AbortHandle;

use crate::error::StoreError;
use crate::throttle::LoginThrottle;
use crate::tokens::claims::Claims;
use crate::tokens::feed::{Revocation, RevocationBatch, RevocationFeed};
use crate::tokens::store::{Rotation, TokenRecord, TokenStore};

/// Entries are kept this long after their token's `exp`: the largest
/// leeway a configuration may allow, so no token the codec still accepts
/// loses its entry.
const EXPIRY_SLACK_SECS: i64 = 300;
/// How many tokens an instance remembers as seen in the store, at most.
const KNOWN_CAPACITY: usize = 1_000_000;
/// Wait between attempts to (re)load the view after a failure.
const RETRY_DELAY: Duration = Duration::from_millis(250);
/// How often expired entries are swept out.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// What the view says about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not revoked, and known to be on record.
    Live,
    /// Revoked (by itself, with its session, or by a cut-off).
    Revoked,
    /// The view cannot tell: check the store.
    AskStore,
}

#[derive(Debug, Default)]
struct Revoked {
    /// Revoked tokens: `jti` -> `exp`.
    tokens: HashMap<Box<str>, i64>,
    /// Per user, the latest cut-off (Unix seconds).
    cutoffs: HashMap<Box<str>, i64>,
    cursor: u64,
}

impl Revoked {
    fn apply(&mut self, revocations: Vec<Revocation>) {
        for revocation in revocations {
            match revocation {
                Revocation::Token { jti, expires_at } => {
                    self.tokens.insert(jti.into_boxed_str(), expires_at);
                }
                Revocation::UserCutOff { user_id, at } => {
                    let entry = self.cutoffs.entry(user_id.into_boxed_str()).or_insert(at);
                    *entry = (*entry).max(at);
                }
            }
        }
    }
}

/// A token seen on record in the store: its `exp` (for pruning) and a
/// fingerprint of the claims the store's record was checked against.
#[derive(Debug, Clone, Copy)]
struct Known {
    exp: i64,
    fingerprint: u64,
}

fn fingerprint(claims: &Claims) -> u64 {
    // SipHash with fixed keys: the inputs come from verified tokens only.
    let mut h = std::hash::DefaultHasher::new();
    claims.sub.hash(&mut h);
    claims.token_type.hash(&mut h);
    claims.exp.hash(&mut h);
    h.finish()
}

/// The view; shared by the [`Security`](crate::Security) clones, and
/// watched (weakly) by its sync task, which ends when the view is dropped.
pub(crate) struct RevocationView {
    revoked: RwLock<Revoked>,
    known: RwLock<HashMap<Box<str>, Known>>,
    /// Milliseconds since `epoch` until which the view counts as fresh.
    fresh_until_ms: AtomicU64,
    epoch: Instant,
    stale_after: Duration,
    /// Tokens issued within this many seconds of their user's cut-off are
    /// checked in the store.
    cutoff_margin: i64,
    task: std::sync::Mutex<Option<AbortHandle>>,
    /// The feed, for the catch-ups after local revocations.
    feed: OnceLock<(Arc<dyn RevocationFeed>, Duration)>,
    /// Set when a local catch-up failed: the sync task must reload.
    resync_requested: AtomicBool,
}

impl std::fmt::Debug for RevocationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationView")
            .field("fresh", &self.is_fresh())
            .finish_non_exhaustive()
    }
}

impl Drop for RevocationView {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl RevocationView {
    /// A view that is stale until its task has loaded a snapshot.
    ///
    /// `cutoff_margin` is the time, either side of a user's cut-off, within
    /// which a token's `iat` cannot tell whether the cut-off covers it (the
    /// store decides by its own cut-off generation, not by time): clock
    /// skew between instances plus the time an insert may take.
    pub(crate) fn new(sync_interval: Duration, cutoff_margin: Duration) -> Self {
        Self {
            revoked: RwLock::default(),
            known: RwLock::default(),
            fresh_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            stale_after: sync_interval.saturating_mul(3) + Duration::from_secs(1),
            cutoff_margin: i64::try_from(cutoff_margin.as_secs())
                .unwrap_or(i64::MAX)
                .saturating_add(1),
            task: std::sync::Mutex::new(None),
            feed: OnceLock::new(),
            resync_requested: AtomicBool::new(false),
        }
    }

    /// Starts the sync task on the current Tokio runtime.
    pub(crate) fn start(
        self: &Arc<Self>,
        feed: Arc<dyn RevocationFeed>,
        sync_interval: Duration,
        call_timeout: Duration,
    ) {
        let _ = self.feed.set((Arc::clone(&feed), call_timeout));
        let task = tokio::spawn(run(Arc::downgrade(self), feed, sync_interval, call_timeout));
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task.abort_handle());
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the view is current (its feed answered recently).
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh_until_ms.load(Ordering::Acquire) > self.elapsed_ms()
    }

    fn mark_fresh(&self) {
        let until = self
            .elapsed_ms()
            .saturating_add(u64::try_from(self.stale_after.as_millis()).unwrap_or(u64::MAX));
        self.fresh_until_ms.store(until, Ordering::Release);
    }

    fn mark_stale(&self) {
        self.fresh_until_ms.store(0, Ordering::Release);
    }

    /// The verdict on verified access-token claims. No allocation; two
    /// read locks and up to three hash lookups.
    pub(crate) fn check(&self, claims: &Claims) -> Verdict {
        if !self.is_fresh() {
            return Verdict::AskStore;
        }
        {
            let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
            if revoked.tokens.contains_key(claims.jti.as_str()) {
                return Verdict::Revoked;
            }
            if let Some(&at) = revoked.cutoffs.get(claims.sub.as_str()) {
                // The store revokes by generation: tokens inserted before
                // the cut-off committed. `iat` is a clock reading taken
                // before the insert, maybe on another machine: only far
                // from the cut-off does it tell.
                if claims.iat < at.saturating_sub(self.cutoff_margin) {
                    return Verdict::Revoked;
                }
                if claims.iat <= at.saturating_add(self.cutoff_margin) {
                    return Verdict::AskStore;
                }
            }
        }
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        match known.get(claims.jti.as_str()) {
            Some(k) if k.fingerprint == fingerprint(claims) => Verdict::Live,
            _ => Verdict::AskStore,
        }
    }

    /// Records that the store has a live record matching these claims.
    pub(crate) fn remember(&self, claims: &Claims) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.len() < KNOWN_CAPACITY || known.contains_key(claims.jti.as_str()) {
            known.insert(
                claims.jti.as_str().into(),
                Known {
                    exp: claims.exp,
                    fingerprint: fingerprint(claims),
                },
            );
        }
    }

    fn replace(&self, snapshot: RevocationBatch) {
        let mut fresh = Revoked {
            cursor: snapshot.cursor,
            ..Revoked::default()
        };
        fresh.apply(snapshot.revocations);
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    fn apply(&self, batch: RevocationBatch) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.apply(batch.revocations);
        revoked.cursor = revoked.cursor.max(batch.cursor);
    }

    fn cursor(&self) -> u64 {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .cursor
    }

    /// Drops the entries of tokens that have expired (with the slack).
    fn prune(&self, now: i64) {
        let horizon = now.saturating_sub(EXPIRY_SLACK_SECS);
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .tokens
            .retain(|_, exp| *exp >= horizon);
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, k| k.exp >= horizon);
    }

    /// Reads the feed now and applies what it brings; called after a
    /// revocation through this instance, so that the instance's next
    /// request sees it. If the read fails, the view goes stale (requests
    /// are checked in the store) until the sync task has reloaded it.
    pub(crate) async fn catch_up(&self) {
        let Some((feed, timeout)) = self.feed.get() else {
            return;
        };
        match bounded(*timeout, feed.changes_since(self.cursor())).await {
            Some(Some(batch)) => self.apply(batch),
            _ => {
                // Flag first, then stale: see `run`, which marks the view
                // fresh and then looks at the flag.
                self.resync_requested.store(true, Ordering::SeqCst);
                self.mark_stale();
            }
        }
    }

    /// Sizes, for tests and status: revoked tokens, cut-offs, known tokens.
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        let known = self.known.read().unwrap_or_else(|p| p.into_inner()).len();
        (revoked.tokens.len(), revoked.cutoffs.len(), known)
    }
}

async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, crate::error::StoreError>>,
) -> Option<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "revocation feed failed: validating in the store until it resyncs");
            None
        }
        Err(_) => {
            tracing::warn!("revocation feed timed out: validating in the store until it resyncs");
            None
        }
    }
}

/// The sync task: subscribe, load a snapshot, then follow the changes
/// (on each wake-up signal, and every `interval` at the latest); on any
/// failure or lost subscription, mark the view stale and start over.
async fn run(
    view: Weak<RevocationView>,
    feed: Arc<dyn RevocationFeed>,
    interval: Duration,
    timeout: Duration,
) {
    let mut last_prune = Instant::now();
    'resync: loop {
        {
            let Some(v) = view.upgrade() else { return };
            v.mark_stale();
        }
        // Subscribe before the snapshot: whatever commits after the
        // snapshot's cursor is read by the next catch-up.
        let Some(mut signals) = bounded(timeout, feed.subscribe()).await else {
            tokio::time::sleep(RETRY_DELAY).await;
            continue;
        };
        let Some(snapshot) = bounded(timeout, feed.snapshot(unix_now() - EXPIRY_SLACK_SECS)).await
        else {
            tokio::time::sleep(RETRY_DELAY).await;
            continue;
        };
        {
            let Some(v) = view.upgrade() else { return };
            v.replace(snapshot);
            v.mark_fresh();
            if v.resync_requested.swap(false, Ordering::SeqCst) {
                continue 'resync;
            }
            tracing::debug!("revocation view loaded");
        }
        loop {
            match signals.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        signal = rx.recv() => if signal.is_none() {
                            tracing::warn!("revocation feed subscription lost: validating in the store until it resyncs");
                            continue 'resync;
                        },
                        () = tokio::time::sleep(interval) => {}
                    }
                }
                None => tokio::time::sleep(interval).await,
            }
            let cursor = match view.upgrade() {
                Some(v) => v.cursor(),
                None => return,
            };
            match bounded(timeout, feed.changes_since(cursor)).await {
                Some(Some(batch)) => {
                    let Some(v) = view.upgrade() else { return };
                    v.apply(batch);
                    v.mark_fresh();
                    // A local catch-up failed (maybe after this read):
                    // reload. Checked after marking fresh, so a failure
                    // flagged later leaves the view stale by itself.
                    if v.resync_requested.swap(false, Ordering::SeqCst) {
                        continue 'resync;
                    }
                    if last_prune.elapsed() >= PRUNE_EVERY {
                        v.prune(unix_now());
                        last_prune = Instant::now();
                    }
                }
                Some(None) => {
                    tracing::info!("revocation feed trimmed past this instance: reloading");
                    continue 'resync;
                }
                None => {
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue 'resync;
                }
            }
        }
    }
}

/// The store of a [`Security`](crate::Security) in synced mode: every call
/// goes to the inner store, and each revoking call that succeeds is
/// followed by a [catch-up](RevocationView::catch_up) of the view, so a
/// revocation made through this instance is seen by it from its next
/// request on (others see it through the feed).
pub(crate) struct ViewedStore {
    inner: Arc<dyn TokenStore>,
    view: Arc<RevocationView>,
}

impl ViewedStore {
    pub(crate) fn new(inner: Arc<dyn TokenStore>, view: Arc<RevocationView>) -> Self {
        Self { inner, view }
    }

    async fn caught_up<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_ok() {
            self.view.catch_up().await;
        }
        result
    }
}

#[async_trait]
impl TokenStore for ViewedStore {
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
        let result = self.inner.revoke(jti, at).await;
        self.caught_up(result).await
    }

    async fn rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, StoreError> {
        self.inner.rotate(parent_jti, child, at).await
    }

    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        let result = self.inner.cut_off_user(user_id, at).await;
        self.caught_up(result).await
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        let result = self.inner.revoke_family(family_id, at).await;
        self.caught_up(result).await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        let result = self.inner.revoke_user(user_id, except_family, at).await;
        self.caught_up(result).await
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

    fn login_throttle(&self) -> Option<Arc<dyn LoginThrottle>> {
        self.inner.login_throttle()
    }

    fn revocation_feed(&self) -> Option<Arc<dyn RevocationFeed>> {
        self.inner.revocation_feed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::claims::TokenType;

    fn claims(jti: &str, sub: &str, iat: i64) -> Claims {
        Claims {
            sub: sub.into(),
            jti: jti.into(),
            token_type: TokenType::Access,
            exp: iat + 600,
            iat,
            nbf: None,
            aud: None,
            iss: None,
            sid: None,
            extra: serde_json::Map::new(),
        }
    }

    #[test]
    fn stale_views_ask_the_store_and_fresh_ones_answer() {
        let view = RevocationView::new(Duration::from_millis(100), Duration::from_secs(10));
        let c = claims("a", "u", 1_000);
        view.remember(&c);
        assert_eq!(view.check(&c), Verdict::AskStore, "never loaded: stale");
        view.replace(RevocationBatch::default());
        view.mark_fresh();
        assert_eq!(view.check(&c), Verdict::Live);
        view.apply(RevocationBatch {
            cursor: 1,
            revocations: vec![Revocation::Token {
                jti: "a".into(),
                expires_at: 1_600,
            }],
        });
        assert_eq!(view.check(&c), Verdict::Revoked);
        view.mark_stale();
        assert_eq!(view.check(&c), Verdict::AskStore);
    }

    #[test]
    fn unknown_tokens_and_changed_claims_ask_the_store() {
        let view = RevocationView::new(Duration::from_millis(100), Duration::from_secs(10));
        view.mark_fresh();
        let c = claims("a", "u", 1_000);
        assert_eq!(view.check(&c), Verdict::AskStore);
        view.remember(&c);
        let other = claims("a", "someone-else", 1_000);
        assert_eq!(view.check(&other), Verdict::AskStore);
    }

    #[test]
    fn cut_offs_revoke_older_tokens_and_send_close_ones_to_the_store() {
        let view = RevocationView::new(Duration::from_millis(100), Duration::from_secs(10));
        view.mark_fresh();
        view.apply(RevocationBatch {
            cursor: 1,
            revocations: vec![Revocation::UserCutOff {
                user_id: "u".into(),
                at: 10_000,
            }],
        });
        for (iat, verdict) in [
            (9_000, Verdict::Revoked),
            (9_995, Verdict::AskStore),
            (10_000, Verdict::AskStore),
            (10_005, Verdict::AskStore),
            (10_100, Verdict::Live),
        ] {
            let c = claims(&format!("t{iat}"), "u", iat);
            view.remember(&c);
            assert_eq!(view.check(&c), verdict, "iat {iat}");
        }
        // Another user is not affected.
        let c = claims("x", "v", 9_000);
        view.remember(&c);
        assert_eq!(view.check(&c), Verdict::Live);
    }

    #[test]
    fn pruning_drops_expired_entries_only() {
        let view = RevocationView::new(Duration::from_millis(100), Duration::from_secs(10));
        view.apply(RevocationBatch {
            cursor: 2,
            revocations: vec![
                Revocation::Token {
                    jti: "old".into(),
                    expires_at: 1_000,
                },
                Revocation::Token {
                    jti: "new".into(),
                    expires_at: 5_000,
                },
                Revocation::UserCutOff {
                    user_id: "u".into(),
                    at: 10,
                },
            ],
        });
        view.remember(&claims("k", "u", 0));
        view.prune(4_000);
        assert_eq!(view.sizes(), (1, 1, 0));
    }
}
