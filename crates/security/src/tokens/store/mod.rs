//! Where token records live: the seed's `TokenRepository`, as a trait.
//!
//! Every backend implements [`TokenStore`] and passes the same behaviour
//! tests. Times are Unix seconds; the store never sees a token string, only
//! its `jti` and metadata.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result, StoreError};
use crate::tokens::claims::TokenType;

mod memory;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "sqlite")]
mod sqlite;
mod timeout;

#[cfg(feature = "redis")]
pub use self::redis::RedisTokenStore;
pub use memory::MemoryTokenStore;
#[cfg(feature = "mysql")]
pub use mysql::MySqlTokenStore;
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
    /// When the token was revoked, if it was.
    pub revoked_at: Option<i64>,
}

impl TokenRecord {
    /// Whether the token may still be used at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
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

    /// The user's tokens that are neither revoked nor expired at `now`,
    /// oldest first.
    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError>;

    /// Deletes up to `batch` records that expired before `before`; returns
    /// how many were deleted. Call until it returns less than `batch`.
    /// A store whose records expire by themselves (Redis) has little left
    /// to delete: only records still within its grace period.
    async fn purge_expired(&self, before: i64, batch: u32) -> Result<u64, StoreError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
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
