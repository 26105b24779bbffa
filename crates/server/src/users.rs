//! The built-in users table, and its [`UserDirectory`] implementation so
//! the library's [`PasswordAuthenticator`] can log users in against it.
//!
//! The table is deliberately small (id, username, password hash, active flag,
//! creation time): the server is a reference and a demo, not an identity
//! provider. Applications with their own user model implement the library's
//! traits on that model instead.

use async_trait::async_trait;
use fastcore_security::{PasswordAuthenticator, StoreError, UserDirectory};
use serde::Serialize;
use sqlx::SqlitePool;

/// Password login against the users table: the library's
/// [`PasswordAuthenticator`] (constant work for unknown users, hash upgrades)
/// over [`SqliteUsers`].
pub type Authenticator = PasswordAuthenticator<SqliteUsers>;

/// Longest username accepted, in bytes (the login endpoint refuses longer ones).
pub const MAX_USERNAME_BYTES: usize = 320;

/// One row of the users table.
///
/// Serializes (for `GET /auth/me`) as `id`, `username`, `is_active` and
/// `created_at`; the password hash is never serialized and `Debug` hides it.
#[derive(Clone, Serialize, sqlx::FromRow)]
pub struct User {
    /// A random UUID, written into tokens as `sub`.
    pub id: String,
    /// The login name (compared case-insensitively).
    pub username: String,
    /// Whether the user may log in and use tokens.
    pub is_active: bool,
    /// When the user was created, RFC 3339 UTC.
    pub created_at: String,
    #[serde(skip)]
    password_hash: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_active", &self.is_active)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl User {
    /// The stored password hash (argon2id PHC string, or an older bcrypt hash).
    pub fn password_hash(&self) -> &str {
        &self.password_hash
    }
}

/// Checks a new username: 1 to [`MAX_USERNAME_BYTES`] bytes, no surrounding
/// whitespace and no control characters (they make names that look alike
/// and break the `users list` table).
pub fn validate_username(username: &str) -> anyhow::Result<()> {
    if username.is_empty() {
        anyhow::bail!("the username must not be empty");
    }
    if username.len() > MAX_USERNAME_BYTES {
        anyhow::bail!("the username must be at most {MAX_USERNAME_BYTES} bytes long");
    }
    if username.trim() != username {
        anyhow::bail!("the username must not start or end with whitespace");
    }
    if username.chars().any(char::is_control) {
        anyhow::bail!("the username must not contain control characters");
    }
    Ok(())
}

/// The users table on SQLite. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct SqliteUsers {
    pool: SqlitePool,
}

/// A failed query is reported as an unavailable store: the login endpoint
/// then answers 503 (retry later), never 401 (which would look like a wrong
/// password) nor a 500 carrying SQL.
fn unavailable(operation: &'static str) -> impl FnOnce(sqlx::Error) -> fastcore_security::Error {
    move |e| StoreError::new(operation, e).into()
}

impl SqliteUsers {
    /// Users stored through `pool` (which must be migrated; see
    /// [`Database::open`](crate::database::Database::open)).
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Creates an active user with an already computed password hash.
    /// Fails with a clear message if the username is taken (in any case).
    pub async fn create(&self, username: &str, password_hash: &str) -> anyhow::Result<User> {
        validate_username(username)?;
        let id = uuid::Uuid::new_v4().to_string();
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, password_hash, is_active) VALUES (?, ?, ?, 1)",
        )
        .bind(&id)
        .bind(username)
        .bind(password_hash)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                anyhow::bail!("a user named {username:?} already exists");
            }
            Err(e) => return Err(anyhow::Error::new(e).context("cannot create the user")),
        }
        self.find_by_id(&id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the new user vanished right after it was created"))
    }

    /// Every user, oldest first.
    pub async fn list(&self) -> fastcore_security::Result<Vec<User>> {
        sqlx::query_as::<_, User>(
            "SELECT id, username, is_active, created_at, password_hash \
             FROM users ORDER BY created_at, username",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("users.list"))
    }

    /// How many users exist.
    pub async fn count(&self) -> fastcore_security::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable("users.count"))
    }

    /// The user with this login name (case-insensitive).
    pub async fn find_by_username(
        &self,
        username: &str,
    ) -> fastcore_security::Result<Option<User>> {
        sqlx::query_as::<_, User>(
            "SELECT id, username, is_active, created_at, password_hash \
             FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("users.find_by_username"))
    }

    /// The user with this id.
    pub async fn find_by_id(&self, id: &str) -> fastcore_security::Result<Option<User>> {
        sqlx::query_as::<_, User>(
            "SELECT id, username, is_active, created_at, password_hash \
             FROM users WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("users.find_by_id"))
    }

    /// Enables or disables a user by name; returns the updated user, or
    /// `None` if there is no such user.
    pub async fn set_active(
        &self,
        username: &str,
        active: bool,
    ) -> fastcore_security::Result<Option<User>> {
        sqlx::query("UPDATE users SET is_active = ? WHERE username = ?")
            .bind(active)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(unavailable("users.set_active"))?;
        self.find_by_username(username).await
    }

    /// Replaces a user's password hash.
    pub async fn set_password_hash(&self, id: &str, hash: &str) -> fastcore_security::Result<()> {
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(unavailable("users.set_password_hash"))?;
        Ok(())
    }
}

#[async_trait]
impl UserDirectory for SqliteUsers {
    type User = User;

    async fn find_by_username(&self, username: &str) -> fastcore_security::Result<Option<User>> {
        SqliteUsers::find_by_username(self, username).await
    }

    async fn find_by_id(&self, user_id: &str) -> fastcore_security::Result<Option<User>> {
        SqliteUsers::find_by_id(self, user_id).await
    }

    fn user_id(&self, user: &User) -> String {
        user.id.clone()
    }

    fn password_hash(&self, user: &User) -> String {
        user.password_hash.clone()
    }

    fn is_active(&self, user: &User) -> bool {
        user.is_active
    }

    /// Called by the library after a successful login with an outdated hash
    /// (bcrypt from the Python service, or weaker argon2 parameters).
    async fn update_password_hash(
        &self,
        user: &User,
        new_hash: &str,
    ) -> fastcore_security::Result<()> {
        self.set_password_hash(&user.id, new_hash).await?;
        tracing::info!(user_id = %user.id, "upgraded a stored password hash");
        Ok(())
    }
}
