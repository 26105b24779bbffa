//! Where token records live: the seed's `TokenRepository`, as a trait.
//!
//! Every backend implements [`TokenStore`] and passes the same behaviour
//! tests. Times are Unix seconds; the store never sees a token string, only
//! its `jti` and metadata.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result, StoreError};
use crate::throttle::LoginThrottle;
use crate::tokens::claims::TokenType;
use crate::tokens::feed::RevocationFeed;

mod memory;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod timeout;

#[cfg(feature = "redis")]
pub use self::redis::RedisTokenStore;
pub use memory::MemoryTokenStore;
#[cfg(feature = "mysql")]
pub use mysql::MySqlTokenStore;
#[cfg(feature = "mysql")]
pub(crate) use mysql::retry_deadlocks;
#[cfg(feature = "postgres")]
pub use postgres::PostgresTokenStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteTokenStore;
pub(crate) use timeout::TimeoutStore;

/// The table that records which of this crate's migrations ran (in every
/// SQL backend); separate from the application's own `_sqlx_migrations`,
/// so both can share a database.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) const MIGRATIONS_TABLE: &str = "_fastcore_security_migrations";

/// One issued token, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's unique id (`jti` claim).
    pub jti: String,
    /// Access or refresh.
    pub token_type: TokenType,
    /// The user the token was issued to (`sub` claim).
    pub user_id: String,
    /// The login session the token belongs to (`sid` claim), if any.
    pub family_id: Option<String>,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry time; the record may be purged after it.
    pub expires_at: i64,
    /// When the token was revoked, if it was: by itself, with its session,
    /// or by a user-wide cut-off ([`TokenStore::cut_off_user`]).
    pub revoked_at: Option<i64>,
    /// Refresh tokens: when the token was exchanged for its successor
    /// ([`TokenStore::rotate`]). A consumed token is no longer live.
    pub consumed_at: Option<i64>,
    /// Refresh tokens: the `jti` of the refresh token that replaced it.
    pub replaced_by: Option<String>,
    /// Refresh tokens: the login session it carries, for session lists.
    pub session: Option<SessionMeta>,
}

/// What a session list shows about a login: when it started and the
/// client it came from, as the application gave them (never verified).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionMeta {
    /// When the login happened (Unix seconds).
    pub started_at: i64,
    /// The client's `User-Agent`, as given, at most [`MAX_USER_AGENT_BYTES`].
    pub user_agent: Option<String>,
    /// The client's address, as given, at most [`MAX_IP_BYTES`].
    pub ip: Option<String>,
}

/// Longest user agent a store keeps, in bytes; longer ones are cut.
pub const MAX_USER_AGENT_BYTES: usize = 512;
/// Longest client address a store keeps, in bytes; longer ones are cut.
pub const MAX_IP_BYTES: usize = 64;

impl TokenRecord {
    /// A record of a token issued at `issued_at` and expiring at
    /// `expires_at`, not revoked, not consumed, with no session metadata.
    pub fn new(
        jti: impl Into<String>,
        token_type: TokenType,
        user_id: impl Into<String>,
        family_id: Option<String>,
        issued_at: i64,
        expires_at: i64,
    ) -> Self {
        Self {
            jti: jti.into(),
            token_type,
            user_id: user_id.into(),
            family_id,
            issued_at,
            expires_at,
            revoked_at: None,
            consumed_at: None,
            replaced_by: None,
            session: None,
        }
    }

    /// Whether the token may still be used at `now`: not revoked, not
    /// consumed by a rotation, not expired.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.consumed_at.is_none() && self.expires_at > now
    }
}

/// What [`TokenStore::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The parent was live; it is now consumed and the child is recorded.
    /// Exactly one of any number of concurrent rotations of a parent wins.
    Rotated,
    /// The parent had been consumed already (a replay, or a concurrent
    /// refresh that lost the race): nothing changed.
    AlreadyConsumed {
        /// When the parent was consumed.
        consumed_at: i64,
        /// The child that replaced it.
        replaced_by: Option<String>,
    },
    /// The parent is unknown, not a refresh token, revoked (also by a
    /// session or user-wide revocation) or expired: nothing changed.
    NotLive,
}

/// Persistence of token records. Object safe: held as `Arc<dyn TokenStore>`.
///
/// Revocation operations are idempotent: revoking an already revoked or an
/// unknown token succeeds and changes nothing.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// A short name of the backend for status output (`sqlite`, `memory`...).
    fn backend(&self) -> &'static str;

    /// Records a newly issued token. A duplicate `jti` is an error.
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError>;

    /// The record of `jti`, if there is one.
    ///
    /// Once a record has expired it may be gone: the SQL stores keep it
    /// until [`purge_expired`](TokenStore::purge_expired) deletes it, but
    /// Redis drops it by itself a few minutes after `expires_at` (and does
    /// not keep a record inserted that long expired). So `None` for an
    /// expired token's `jti` is not an error.
    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Revokes one token; returns whether a live record changed.
    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, StoreError>;

    /// Exchanges the refresh token `parent_jti` for `child`, atomically: if
    /// the parent is a live refresh token, marks it consumed at `at` (with
    /// `replaced_by = child.jti`) and records `child` in the same step, so
    /// that of any number of concurrent calls exactly one returns
    /// [`Rotation::Rotated`] and only its child exists. The child inherits
    /// the parent's standing against [`cut_off_user`](TokenStore::cut_off_user):
    /// a cut-off made after the parent was issued also revokes the child.
    ///
    /// A parent that is revoked or expired gives [`Rotation::NotLive`] even
    /// if it was also consumed; a consumed one gives
    /// [`Rotation::AlreadyConsumed`]. The child is never recorded unless
    /// the rotation happened.
    async fn rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, StoreError>;

    /// Revokes every token of a login session; returns how many changed.
    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError>;

    /// Revokes every token of a user, except those of the session
    /// `except_family` (to keep the caller's own session); returns how many changed.
    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError>;

    /// Revokes every token issued to `user_id` so far, including those a
    /// concurrent rotation is about to issue from an older refresh token,
    /// with one write however many tokens the user has (a user-level
    /// "not before" cut-off). Tokens issued after it are not affected.
    /// [`get`](TokenStore::get) then reports the older tokens with
    /// `revoked_at = Some(at)` (unless they were revoked earlier).
    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError>;

    /// The user's tokens that are neither revoked, consumed nor expired at
    /// `now`, oldest first.
    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError>;

    /// Deletes up to `batch` records that expired before `before`; returns
    /// how many were deleted. Call until it returns less than `batch`.
    /// A store whose records expire by themselves (Redis) has little left
    /// to delete: only records still within its grace period.
    async fn purge_expired(&self, before: i64, batch: u32) -> Result<u64, StoreError>;

    /// Checks that the store answers, with a read of where the records
    /// live (the SQL stores read their tokens table), so that a server that
    /// answers but could not serve a request is not reported healthy.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The [`LoginThrottle`] that keeps its counts in this store, so that
    /// every instance sharing the store shares the login limits;
    /// [`Security::new`](crate::Security::new) uses it. `None` (the
    /// default, and the memory store's answer) means the store offers
    /// none, and each [`Security`](crate::Security) counts in a
    /// [`MemoryLoginThrottle`](crate::MemoryLoginThrottle) of its own.
    ///
    /// The built-in stores keep the counts next to the tokens:
    ///
    /// | store | where |
    /// | --- | --- |
    /// | SQLite, PostgreSQL, MySQL/MariaDB | the table `fastcore_login_throttle` (`throttle_key`, `attempts`, `window_ends_at`), created by the store's migrations; rows of ended windows are deleted by [`LoginThrottle::purge_expired`] (the server's background purge runs it) |
    /// | Redis | a hash `<prefix>thr:<key>` per key (`n`, `end`), which expires a minute after its window |
    ///
    /// Keys are [`ThrottleKey`](crate::ThrottleKey)s: hashes, never a
    /// username or an address.
    fn login_throttle(&self) -> Option<Arc<dyn LoginThrottle>> {
        None
    }

    /// The store's change feed of revocations, which
    /// [synced validation](crate::ValidationMode::Synced) follows to keep
    /// each instance's in-memory view current. `None` (the default) means
    /// the store has none, and synced mode refuses to start on it.
    ///
    /// A store that offers one must report every revocation it commits
    /// (by [`revoke`](TokenStore::revoke), [`revoke_family`](TokenStore::revoke_family),
    /// [`revoke_user`](TokenStore::revoke_user) and
    /// [`cut_off_user`](TokenStore::cut_off_user)) in its change sequence,
    /// written atomically with the revocation; see [`RevocationFeed`].
    fn revocation_feed(&self) -> Option<Arc<dyn RevocationFeed>> {
        None
    }
}

/// Why a rotation did not happen, from the parent's record as the store
/// sees it after its conditional update changed nothing (shared by the
/// stores whose rotation is "update, then look").
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]
pub(crate) fn classify_unrotated(parent: Option<TokenRecord>, at: i64) -> Rotation {
    match parent {
        Some(p)
            if p.token_type == TokenType::Refresh
                && p.revoked_at.is_none()
                && p.expires_at > at =>
        {
            match p.consumed_at {
                Some(consumed_at) => Rotation::AlreadyConsumed {
                    consumed_at,
                    replaced_by: p.replaced_by,
                },
                // Live and unconsumed, yet the update missed it: a
                // cut-off raced it. Either way it cannot be rotated now.
                None => Rotation::NotLive,
            }
        }
        _ => Rotation::NotLive,
    }
}

/// Opens the token store named by a URL and brings its schema up to date.
///
/// `sqlite://path.db` (created if missing), `sqlite::memory:`, or `memory:`
/// (a process-local store for tests); with their features,
/// `postgres://` (or `postgresql://`), `mysql://` (or `mariadb://`) and
/// `redis://` (or `rediss://` for TLS; keys under `fastcore:`).
/// Other schemes name a backend this build does not contain, and the error
/// says which feature is missing.
pub async fn connect_store(url: &str) -> Result<Arc<dyn TokenStore>> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    match scheme.as_str() {
        "memory" => Ok(Arc::new(MemoryTokenStore::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let store = SqliteTokenStore::connect(url).await?;
            store.migrate().await?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let store = PostgresTokenStore::connect(url).await?;
            store.migrate().await?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => {
            let store = MySqlTokenStore::connect(url).await?;
            store.migrate().await?;
            Ok(Arc::new(store))
        }
        // Redis has no schema to migrate.
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(Arc::new(RedisTokenStore::connect(url).await?)),
        other => Err(missing_backend(other)),
    }
}

/// The error for a URL whose backend is unknown or not compiled in.
fn missing_backend(scheme: &str) -> Error {
    let feature = match scheme {
        "sqlite" => Some("sqlite"),
        "postgres" | "postgresql" => Some("postgres"),
        "mysql" | "mariadb" => Some("mysql"),
        "redis" | "rediss" => Some("redis"),
        _ => None,
    };
    match feature {
        Some(feature) => Error::Config(format!(
            "DATABASE_URL uses the `{scheme}:` scheme but this build of fastcore-security \
             does not include the `{feature}` feature"
        )),
        None => Error::Config(
            "DATABASE_URL must start with sqlite: or memory: (postgres:, mysql: and redis: \
             need their features)"
                .into(),
        ),
    }
}
