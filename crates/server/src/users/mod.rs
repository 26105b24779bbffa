//! The built-in users, and their [`UserDirectory`] implementation so the
//! library's [`PasswordAuthenticator`] can log users in against them.
//!
//! A user is deliberately small (id, username, password hash, active flag,
//! creation time): the server is a reference and a demo, not an identity
//! provider. Applications with their own user model implement the library's
//! traits on that model instead.
//!
//! The users live next to the tokens, on whichever backend the database URL
//! names ([`Users`] dispatches to one module per backend): a table `users`
//! on SQLite, `fastcore_users` on PostgreSQL and MySQL/MariaDB (a shared
//! database may already have a `users` table of the application's), and
//! hashes under the key prefix on Redis.
//!
//! Names that look the same are the same user. A username is stored as
//! given, in Unicode NFKC form ([`display_username`]); uniqueness and login
//! use [`username_key`] (NFKC, then lowercase), so `Zoë`, `ZOË` and `Zoe`
//! followed by a combining diaeresis are one name, and any of them logs in.

use std::time::Duration;

use async_trait::async_trait;
use fastcore_security::{PasswordAuthenticator, StoreError, UserDirectory};
use serde::Serialize;
use unicode_normalization::UnicodeNormalization as _;

mod mysql;
mod postgres;
mod redis;
mod sqlite;

pub use self::redis::RedisUsers;

/// Password login against the built-in users: the library's
/// [`PasswordAuthenticator`] (constant work for unknown users, hash upgrades)
/// over [`Users`].
pub type Authenticator = PasswordAuthenticator<Users>;

/// How long one users query may take before it counts as an outage (the
/// library's default deadline for token store calls): a database that
/// accepts connections but does not answer gets a 503, not a hung request.
pub const QUERY_DEADLINE: Duration = Duration::from_secs(5);

/// Longest username accepted, in bytes of its stored (NFKC) form (the login
/// endpoint refuses longer ones).
pub const MAX_USERNAME_BYTES: usize = 320;

/// One built-in user.
///
/// Serializes (for `GET /auth/me`) as `id`, `username`, `is_active` and
/// `created_at`; the password hash is never serialized and `Debug` hides it.
#[derive(Clone, Serialize)]
pub struct User {
    /// A random UUID, written into tokens as `sub`.
    pub id: String,
    /// The login name as created, in NFKC form. Logins match it regardless
    /// of case and Unicode normalization form (see [`username_key`]).
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

/// The form a new username is stored and shown in: Unicode NFKC of what was
/// given (so a decomposed `e` + U+0308 is stored as `ë`, and compatibility
/// forms such as full-width letters as their plain equivalents).
pub fn display_username(given: &str) -> String {
    given.nfkc().collect()
}

/// The key usernames are unique by and looked up with: NFKC, then Unicode
/// lowercase (then NFKC again, since lowercasing can leave a string that
/// is not normalized, which keeps the key stable). Two names with the same
/// key are the same user.
pub fn username_key(name: &str) -> String {
    let lower = name.nfkc().collect::<String>().to_lowercase();
    lower.nfkc().collect()
}

/// Characters that show nothing (zero-width spaces and joiners, the soft
/// hyphen, bidirectional controls, the byte-order mark): `ada` with one of
/// them inside looks exactly like `ada`.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Checks a new username and returns the form it is stored in
/// ([`display_username`]). The stored form must be 1 to
/// [`MAX_USERNAME_BYTES`] bytes, with no surrounding whitespace and no
/// control or invisible characters (they make names that look alike and
/// break the `users list` table).
pub fn normalize_username(given: &str) -> anyhow::Result<String> {
    let username = display_username(given);
    if username.is_empty() {
        anyhow::bail!("the username must not be empty");
    }
    if username.len() > MAX_USERNAME_BYTES {
        anyhow::bail!(
            "the username must be at most {MAX_USERNAME_BYTES} bytes long (in Unicode NFKC form)"
        );
    }
    if username.trim() != username {
        anyhow::bail!("the username must not start or end with whitespace");
    }
    if username.chars().any(char::is_control) {
        anyhow::bail!("the username must not contain control characters");
    }
    if username.chars().any(is_invisible) {
        anyhow::bail!("the username must not contain invisible characters");
    }
    Ok(username)
}

/// Checks a new username (see [`normalize_username`]).
pub fn validate_username(username: &str) -> anyhow::Result<()> {
    normalize_username(username).map(drop)
}

/// The error for a name that is taken: says which existing name it
/// collides with when that one is written differently.
pub fn already_exists(given: &str, existing: &str) -> anyhow::Error {
    if display_username(given) == existing {
        anyhow::anyhow!("a user named {existing:?} already exists")
    } else {
        anyhow::anyhow!(
            "a user named {given:?} already exists as {existing:?} (names that differ only \
             in case or Unicode form are the same user)"
        )
    }
}

/// The built-in users on one backend. Cheap to clone (a pool or connection
/// handle).
#[derive(Debug, Clone)]
pub struct Users {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Redis(RedisUsers),
}

/// What an insert found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inserted {
    Created,
    /// The username key is taken.
    Taken,
}

/// A failed query is reported as an unavailable store: the login endpoint
/// then answers 503 (retry later), never 401 (which would look like a wrong
/// password) nor a 500 carrying SQL.
fn unavailable<E>(operation: &'static str) -> impl FnOnce(E) -> fastcore_security::Error
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    move |e| StoreError::new(operation, e).into()
}

/// Runs one users operation within [`QUERY_DEADLINE`].
async fn within_deadline<T>(
    operation: &'static str,
    work: impl Future<Output = fastcore_security::Result<T>>,
) -> fastcore_security::Result<T> {
    match tokio::time::timeout(QUERY_DEADLINE, work).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::new(
            operation,
            format!("no answer within {} s", QUERY_DEADLINE.as_secs()),
        )
        .into()),
    }
}

impl Users {
    /// Users in the SQLite database of `pool` (migrated; see
    /// [`Database::open`](crate::database::Database::open)).
    pub fn sqlite(pool: sqlx::SqlitePool) -> Self {
        Self {
            backend: Backend::Sqlite(pool),
        }
    }

    /// Users in the PostgreSQL database of `pool` (migrated).
    pub fn postgres(pool: sqlx::PgPool) -> Self {
        Self {
            backend: Backend::Postgres(pool),
        }
    }

    /// Users in the MySQL/MariaDB database of `pool` (migrated).
    pub fn mysql(pool: sqlx::MySqlPool) -> Self {
        Self {
            backend: Backend::MySql(pool),
        }
    }

    /// Users on Redis.
    pub fn redis(users: RedisUsers) -> Self {
        Self {
            backend: Backend::Redis(users),
        }
    }

    /// Creates an active user with an already computed password hash.
    /// Fails with a clear message if the username is taken (in any case or
    /// Unicode form); two concurrent creations of one name make one user.
    pub async fn create(&self, username: &str, password_hash: &str) -> anyhow::Result<User> {
        let display = normalize_username(username)?;
        let key = username_key(&display);
        if key.len() > MAX_USERNAME_KEY_BYTES {
            anyhow::bail!("the username is too long once lowercased");
        }
        if password_hash.len() > MAX_PASSWORD_HASH_BYTES {
            anyhow::bail!("the password hash is longer than {MAX_PASSWORD_HASH_BYTES} bytes");
        }
        let new = NewUser {
            id: uuid::Uuid::new_v4().to_string(),
            username: &display,
            username_key: &key,
            password_hash,
        };
        let inserted = within_deadline("users.create", async {
            match &self.backend {
                Backend::Sqlite(pool) => sqlite::insert(pool, &new).await,
                Backend::Postgres(pool) => postgres::insert(pool, &new).await,
                Backend::MySql(pool) => mysql::insert(pool, &new).await,
                Backend::Redis(users) => users.insert(&new).await,
            }
        })
        .await
        .map_err(|e| anyhow::Error::new(e).context("cannot create the user"))?;
        if inserted == Inserted::Taken {
            let existing = self.find_by_username(&display).await?;
            let existing = existing.map_or(display, |u| u.username);
            return Err(already_exists(username, &existing));
        }
        self.find_by_id(&new.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the new user vanished right after it was created"))
    }

    /// Every user, oldest first (then by name).
    pub async fn list(&self) -> fastcore_security::Result<Vec<User>> {
        within_deadline("users.list", async {
            match &self.backend {
                Backend::Sqlite(pool) => sqlite::list(pool).await,
                Backend::Postgres(pool) => postgres::list(pool).await,
                Backend::MySql(pool) => mysql::list(pool).await,
                Backend::Redis(users) => users.list().await,
            }
        })
        .await
    }

    /// How many users exist.
    pub async fn count(&self) -> fastcore_security::Result<i64> {
        within_deadline("users.count", async {
            match &self.backend {
                Backend::Sqlite(pool) => sqlite::count(pool).await,
                Backend::Postgres(pool) => postgres::count(pool).await,
                Backend::MySql(pool) => mysql::count(pool).await,
                Backend::Redis(users) => users.count().await,
            }
        })
        .await
    }

    /// The user with this login name, in any case or Unicode normalization
    /// form (matched by [`username_key`]).
    pub async fn find_by_username(
        &self,
        username: &str,
    ) -> fastcore_security::Result<Option<User>> {
        let key = username_key(username);
        // No stored name holds a NUL (control characters are refused), and
        // PostgreSQL cannot even take one as a parameter: such a login is
        // an unknown user, not an outage.
        if key.contains('\0') || key.len() > MAX_USERNAME_KEY_BYTES {
            return Ok(None);
        }
        within_deadline("users.find_by_username", async {
            match &self.backend {
                Backend::Sqlite(pool) => sqlite::find_by_key(pool, &key).await,
                Backend::Postgres(pool) => postgres::find_by_key(pool, &key).await,
                Backend::MySql(pool) => mysql::find_by_key(pool, &key).await,
                Backend::Redis(users) => users.find_by_key(&key).await,
            }
        })
        .await
    }

    /// The user with this id.
    pub async fn find_by_id(&self, id: &str) -> fastcore_security::Result<Option<User>> {
        // Ids are uuids: one with a NUL (which PostgreSQL refuses as a
        // parameter) names nobody.
        if id.contains('\0') {
            return Ok(None);
        }
        within_deadline("users.find_by_id", async {
            match &self.backend {
                Backend::Sqlite(pool) => sqlite::find_by_id(pool, id).await,
                Backend::Postgres(pool) => postgres::find_by_id(pool, id).await,
                Backend::MySql(pool) => mysql::find_by_id(pool, id).await,
                Backend::Redis(users) => users.find_by_id(id).await,
            }
        })
        .await
    }

    /// Enables or disables a user by name (in any case or Unicode form);
    /// returns the updated user, or `None` if there is no such user.
    pub async fn set_active(
        &self,
        username: &str,
        active: bool,
    ) -> fastcore_security::Result<Option<User>> {
        let key = username_key(username);
        if key.contains('\0') || key.len() > MAX_USERNAME_KEY_BYTES {
            return Ok(None);
        }
        within_deadline("users.set_active", async {
            match &self.backend {
                Backend::Sqlite(pool) => sqlite::set_active(pool, &key, active).await,
                Backend::Postgres(pool) => postgres::set_active(pool, &key, active).await,
                Backend::MySql(pool) => mysql::set_active(pool, &key, active).await,
                Backend::Redis(users) => users.set_active(&key, active).await,
            }
        })
        .await?;
        self.find_by_username(username).await
    }

    /// Replaces a user's password hash.
    pub async fn set_password_hash(&self, id: &str, hash: &str) -> fastcore_security::Result<()> {
        if hash.len() > MAX_PASSWORD_HASH_BYTES {
            // Never truncated (as a lax MySQL would): the old hash stays.
            return Err(StoreError::new(
                "users.set_password_hash",
                format!("the hash is longer than {MAX_PASSWORD_HASH_BYTES} bytes"),
            )
            .into());
        }
        within_deadline("users.set_password_hash", async {
            match &self.backend {
                Backend::Sqlite(pool) => sqlite::set_password_hash(pool, id, hash).await,
                Backend::Postgres(pool) => postgres::set_password_hash(pool, id, hash).await,
                Backend::MySql(pool) => mysql::set_password_hash(pool, id, hash).await,
                Backend::Redis(users) => users.set_password_hash(id, hash).await,
            }
        })
        .await
    }
}

/// Longest [`username_key`] stored: lowercasing can lengthen a name of
/// [`MAX_USERNAME_BYTES`] a little (the MySQL column holds 1024 bytes).
pub const MAX_USERNAME_KEY_BYTES: usize = 1024;

/// Longest password hash stored (an argon2id PHC string is about 100 bytes).
pub const MAX_PASSWORD_HASH_BYTES: usize = 1024;

/// A user about to be inserted.
struct NewUser<'a> {
    id: String,
    username: &'a str,
    username_key: &'a str,
    password_hash: &'a str,
}

#[async_trait]
impl UserDirectory for Users {
    type User = User;

    async fn find_by_username(&self, username: &str) -> fastcore_security::Result<Option<User>> {
        Users::find_by_username(self, username).await
    }

    async fn find_by_id(&self, user_id: &str) -> fastcore_security::Result<Option<User>> {
        Users::find_by_id(self, user_id).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_the_same_have_the_same_key() {
        let composed = "Zo\u{00EB}";
        let decomposed = "Zoe\u{0308}";
        let upper = "ZO\u{00CB}";
        let upper_decomposed = "ZOE\u{0308}";
        let full_width = "\u{FF3A}o\u{00EB}";
        for name in [composed, decomposed, upper, upper_decomposed, full_width] {
            assert_eq!(username_key(name), "zo\u{00EB}", "{name:?}");
        }
        assert_ne!(username_key("zoe"), username_key(composed));
        assert_eq!(display_username(decomposed), composed);
        assert_eq!(display_username(upper_decomposed), upper);
        // Lowercasing can leave a string that is not NFKC; the key is.
        let key = username_key("\u{0130}stanbul");
        assert_eq!(username_key(&key), key);
    }

    #[test]
    fn the_length_cap_applies_to_the_stored_form() {
        assert!(normalize_username(&"a".repeat(MAX_USERNAME_BYTES)).is_ok());
        assert!(normalize_username(&"a".repeat(MAX_USERNAME_BYTES + 1)).is_err());
        // U+FDFA is 3 bytes that NFKC expands to 33.
        let expanding = "\u{FDFA}".repeat(10);
        assert!(expanding.len() <= MAX_USERNAME_BYTES);
        assert!(normalize_username(&expanding).is_err());
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        for bad in [
            "ad\u{200B}a",
            "\u{FEFF}ada",
            "ada\u{202E}",
            "a\u{00AD}da",
            "ad\u{7}a",
        ] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
        // NFKC turns a no-break space into a space, which is then refused at the ends.
        assert!(normalize_username("ada\u{00A0}").is_err());
        assert_eq!(normalize_username("Ada Lovelace").unwrap(), "Ada Lovelace");
        assert_eq!(normalize_username("\u{C5}sa").unwrap(), "\u{C5}sa");
    }
}
