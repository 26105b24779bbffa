//! The server's one database: the library's token records and the server's
//! users side by side, on the backend the URL's scheme names.
//!
//! | scheme | tokens | users |
//! | --- | --- | --- |
//! | `sqlite:` | `fastcore_tokens` | `users` |
//! | `postgres:`, `postgresql:` | `fastcore_tokens` | `fastcore_users` |
//! | `mysql:`, `mariadb:` | `fastcore_tokens` | `fastcore_users` |
//! | `redis:`, `rediss:` | keys under the prefix | keys under the prefix (`users:...`) |
//!
//! On the SQL backends both share the token store's connection pool. That
//! matters for `sqlite::memory:` (an in-memory database exists only inside
//! its one connection) and keeps the number of connections predictable.
//! Each SQL dialect has its own embedded migrations for the users table
//! (`migrations/<dialect>/`), recorded in [`MIGRATIONS_TABLE`].

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use fastcore_security::{
    MySqlTokenStore, PostgresTokenStore, RedisTokenStore, Security, SecurityConfig,
    SqliteTokenStore, TokenStore, redact_url,
};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::SqliteConnectOptions;

use crate::users::{RedisUsers, Users};

/// The server's own migrations (the users table), embedded in the binary,
/// one set per SQL dialect.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
static MYSQL_MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

/// How long a MySQL/MariaDB `migrate` waits for another instance's.
const MYSQL_MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(300);

/// The key prefix on Redis when none is given (the library's default).
pub const DEFAULT_REDIS_PREFIX: &str = RedisTokenStore::DEFAULT_PREFIX;

/// The table recording which of the server's migrations ran. It differs from
/// the library's `_fastcore_security_migrations` and from sqlx's default
/// `_sqlx_migrations`: each migrator only knows its own files and would
/// refuse to run next to a table listing migrations it has never seen.
pub const MIGRATIONS_TABLE: &str = "_fastcore_server_migrations";

/// The default database: a file next to where the server is started.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://fastcore-security.db";

/// SQLite's result code for "unable to open database file".
const SQLITE_CANTOPEN: &str = "14";

/// The file a `sqlite:` URL names, or `None` for an in-memory database or a
/// URL that does not parse (the library reports those itself).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// One clear line for a database that cannot be opened: the file, the
/// driver's own words once, and for "unable to open database file" what is
/// most likely wrong with the directory.
fn open_error(url: &str, err: fastcore_security::Error) -> anyhow::Error {
    let Some(file) = sqlite_file(url) else {
        return anyhow::Error::new(err).context("cannot open the database");
    };
    if file.as_os_str().is_empty() {
        return anyhow::anyhow!(
            "the database URL names no SQLite file: give one, for example {DEFAULT_DATABASE_URL}"
        );
    }
    if file.is_dir() {
        return anyhow::anyhow!(
            "cannot open the database file {}: it is a directory; name a file in it, for \
             example sqlite://{}",
            file.display(),
            file.join("fastcore-security.db").display()
        );
    }
    let mut root: &(dyn std::error::Error + 'static) = &err;
    let mut cant_open = false;
    loop {
        if let Some(sqlx::Error::Database(db)) = root.downcast_ref::<sqlx::Error>() {
            cant_open |= db.code().as_deref() == Some(SQLITE_CANTOPEN);
        }
        match root.source() {
            Some(next) => root = next,
            None => break,
        }
    }
    let cause = root.to_string();
    let cause = match cause.strip_prefix("(code: ") {
        Some(rest) => rest
            .split_once(") ")
            .map_or(cause.as_str(), |(_, text)| text),
        None => cause.as_str(),
    };
    let file_text = file.display();
    if !cant_open {
        return anyhow::anyhow!("cannot open the database file {file_text}: {cause}");
    }
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let hint = if dir.is_dir() {
        format!(
            "check that the directory {} and the file are writable",
            dir.display()
        )
    } else {
        format!("the directory {} does not exist: create it", dir.display())
    };
    anyhow::anyhow!(
        "cannot open the database file {file_text}: {cause} ({hint}, or choose another \
         file with --database-url or DATABASE_URL)"
    )
}

/// How to open a database, beyond its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// The key prefix on Redis (tokens and users); ignored by SQL backends.
    pub redis_prefix: String,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
        }
    }
}

/// The backends the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:`
    Sqlite,
    /// `postgres:` or `postgresql:`
    Postgres,
    /// `mysql:` or `mariadb:`
    MySql,
    /// `redis:` or `rediss:`
    Redis,
}

impl Backend {
    /// The backend a database URL names by its scheme.
    pub fn of_url(url: &str) -> anyhow::Result<Self> {
        let scheme = url
            .trim_start()
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::MySql),
            "redis" | "rediss" => Ok(Self::Redis),
            _ => anyhow::bail!(
                "the database URL (--database-url or DATABASE_URL) must start with sqlite:, \
                 postgres: (or postgresql:), mysql: (or mariadb:), or redis: (or rediss:), for \
                 example {DEFAULT_DATABASE_URL}; the server keeps its tokens and users there"
            ),
        }
    }

    /// A short name (`sqlite`, `postgres`, `mysql`, `redis`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
            Self::Redis => "redis",
        }
    }
}

/// An open, fully migrated database: the token store and the users.
#[derive(Clone)]
pub struct Database {
    backend: Backend,
    store: Arc<dyn TokenStore>,
    users: Users,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .field("users", &self.users)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens the database at `url` with the default [`OpenOptions`].
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        Self::open_with(url, &OpenOptions::default()).await
    }

    /// Opens the database at `url` (a SQLite file is created if missing)
    /// and brings both schemas up to date: the library's token table, then
    /// the users table. Several instances may do this at once: PostgreSQL
    /// and MySQL/MariaDB migrate under a database lock, and on SQLite an
    /// instance that loses the race to record a migration finds it applied.
    pub async fn open_with(url: &str, options: &OpenOptions) -> anyhow::Result<Self> {
        let backend = Backend::of_url(url)?;
        let (store, users): (Arc<dyn TokenStore>, Users) = match backend {
            Backend::Sqlite => {
                let store = SqliteTokenStore::connect(url)
                    .await
                    .map_err(|err| open_error(url, err))?;
                store
                    .migrate()
                    .await
                    .context("cannot migrate the token table")?;
                migrate_sqlite_users(store.pool())
                    .await
                    .map_err(|err| users_migration_error(url, err))?;
                let users = Users::sqlite(store.pool().clone());
                (Arc::new(store), users)
            }
            Backend::Postgres => {
                let store = PostgresTokenStore::connect(url)
                    .await
                    .map_err(|err| connect_error(url, err))?;
                store
                    .migrate()
                    .await
                    .context("cannot migrate the token table")?;
                migrate_postgres(store.pool())
                    .await
                    .map_err(|err| users_migration_error(url, err))?;
                let users = Users::postgres(store.pool().clone());
                (Arc::new(store), users)
            }
            Backend::MySql => {
                let store = MySqlTokenStore::connect(url)
                    .await
                    .map_err(|err| connect_error(url, err))?;
                store
                    .migrate()
                    .await
                    .context("cannot migrate the token table")?;
                migrate_mysql(store.pool())
                    .await
                    .map_err(|err| users_migration_error(url, err))?;
                let users = Users::mysql(store.pool().clone());
                (Arc::new(store), users)
            }
            Backend::Redis => {
                if options.redis_prefix.is_empty() {
                    anyhow::bail!("the Redis key prefix must not be empty");
                }
                // The token store first: it sets up TLS for rediss:// URLs.
                let store = RedisTokenStore::connect_with_prefix(url, &options.redis_prefix)
                    .await
                    .map_err(|err| connect_error(url, err))?;
                let users = RedisUsers::connect(url, &options.redis_prefix)
                    .await
                    .map_err(|err| connect_error(url, err))?;
                (Arc::new(store), Users::redis(users))
            }
        };
        Ok(Self {
            backend,
            store,
            users,
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The token store (the library's `TokenRepository` equivalent).
    pub fn token_store(&self) -> Arc<dyn TokenStore> {
        Arc::clone(&self.store)
    }

    /// The built-in users.
    pub fn users(&self) -> Users {
        self.users.clone()
    }

    /// A security handle signing with `config` and recording tokens here.
    pub fn security(&self, config: SecurityConfig) -> anyhow::Result<Security> {
        Ok(Security::new(config, self.token_store())?)
    }
}

/// A migrator for `embedded`'s files recording them in [`MIGRATIONS_TABLE`].
fn server_migrator(embedded: &Migrator) -> Migrator {
    let mut migrator = Migrator {
        migrations: embedded.migrations.clone(),
        ..Migrator::DEFAULT
    };
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

/// How often a SQLite migration that lost a race is run again.
const SQLITE_MIGRATION_RETRIES: u32 = 3;

// sqlx takes no lock around SQLite migrations: two processes (or pools)
// migrating one new file at once both apply the same migration, and the
// second fails on the migrations table's primary key. Its transaction was
// rolled back and the winner's committed, so running again finds the
// migration applied (and checks its checksum).

/// The server's users migrations on SQLite, again if they lost a race.
async fn migrate_sqlite_users(pool: &sqlx::SqlitePool) -> Result<(), MigrateError> {
    let (mut retries, mut busy) = (0, 0u64);
    loop {
        let migrated = async {
            let mut conn = pool.acquire().await?;
            server_migrator(&SQLITE_MIGRATOR)
                .run_direct(None, &mut *conn, false)
                .await
        };
        match migrated.await {
            Err(err) if retries < SQLITE_MIGRATION_RETRIES && is_unique_violation(&err) => {
                retries += 1;
                tracing::debug!("another process applied a users migration first; checking again");
            }
            // Another process migrating at the same moment: SQLite says
            // "database is locked" at once when two transactions would
            // deadlock. This one rolled back; wait a moment, run again.
            Err(err) if busy < 20 && is_sqlite_busy(&err) => {
                busy += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10 * busy)).await;
            }
            done => return done,
        }
    }
}

/// Whether SQLite's "busy" or "locked" (codes 5 and 6, with their
/// extended codes such as 517) is anywhere in `err`'s chain.
fn is_sqlite_busy(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(cause) = next {
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>()
            && db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| matches!(code & 0xff, 5 | 6))
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// Whether a unique constraint failed anywhere in `err`'s chain.
fn is_unique_violation(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(cause) = next {
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>()
            && db.is_unique_violation()
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// The users migrations on PostgreSQL; sqlx serialises them across
/// instances with an advisory lock.
///
/// (`run_direct` on a connection rather than `run` on the pool: `run` is
/// generic over `Acquire`, and its future is then not provably `Send`.)
async fn migrate_postgres(pool: &sqlx::PgPool) -> Result<(), MigrateError> {
    let mut conn = pool.acquire().await?;
    server_migrator(&POSTGRES_MIGRATOR)
        .run_direct(None, &mut *conn, false)
        .await
}

/// The users migrations on MySQL/MariaDB, under a named lock of the
/// server's own (as the library's token migrations do): sqlx's migration
/// lock asks for `GET_LOCK(name, -1)`, which MariaDB refuses without sqlx
/// noticing, so instances starting together would otherwise race.
async fn migrate_mysql(pool: &sqlx::MySqlPool) -> Result<(), MigrateError> {
    let mut conn = pool.acquire().await?;
    // The lock is the session's: closing the connection afterwards releases
    // it even if RELEASE_LOCK cannot run.
    conn.close_on_drop();
    // Named locks are server-wide: the name carries the database's.
    let locked: Option<i64> = sqlx::query_scalar(
        "SELECT GET_LOCK(CONCAT('fastcore_server_', MD5(COALESCE(DATABASE(), ''))), ?)",
    )
    .bind(MYSQL_MIGRATION_LOCK_WAIT.as_secs())
    .fetch_one(&mut *conn)
    .await?;
    if locked != Some(1) {
        return Err(MigrateError::Source(
            "another instance held the users migration lock for too long".into(),
        ));
    }
    let mut migrator = server_migrator(&MYSQL_MIGRATOR);
    migrator.set_locking(false);
    let migrated = migrator.run_direct(None, &mut *conn, false).await;
    let _ = sqlx::query(
        "SELECT RELEASE_LOCK(CONCAT('fastcore_server_', MD5(COALESCE(DATABASE(), ''))))",
    )
    .execute(&mut *conn)
    .await;
    migrated
}

/// The error for a users migration that failed.
fn users_migration_error(url: &str, err: MigrateError) -> anyhow::Error {
    match err {
        MigrateError::VersionMismatch(version) => {
            // Only a database made by a pre-release build (before usernames
            // got their normalized key) can hold a different version of a
            // migration this binary ships.
            let place = sqlite_file(url).map_or_else(
                || format!("the database {}", redact_url(url)),
                |f| f.display().to_string(),
            );
            anyhow::anyhow!(
                "cannot migrate the users table: {place} was created by a pre-release build \
                 whose users table (migration {version}) differs from this one; delete it \
                 and run again"
            )
        }
        err => anyhow::Error::new(err).context("cannot migrate the users table"),
    }
}

/// The error for a database server that cannot be reached: names it (with
/// its password hidden) and the driver's reason.
fn connect_error(url: &str, err: fastcore_security::Error) -> anyhow::Error {
    anyhow::Error::new(err).context(format!(
        "cannot open the database {} (is the server running and the URL right?)",
        redact_url(url)
    ))
}
