//! The server's one SQLite database: the library's token table and the
//! server's users table live side by side in the same file.
//!
//! Both share a single connection pool. That matters for `sqlite::memory:`
//! (an in-memory database exists only inside its one connection) and keeps
//! the number of open file handles predictable for a file database.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;

use anyhow::Context as _;
use fastcore_security::{Security, SecurityConfig, SqliteTokenStore, TokenStore};
use sqlx::SqlitePool;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::SqliteConnectOptions;

use crate::users::SqliteUsers;

/// The server's own migrations (the users table), embedded in the binary.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

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

/// An open, fully migrated database.
#[derive(Debug, Clone)]
pub struct Database {
    store: SqliteTokenStore,
}

impl Database {
    /// Opens (creating it if missing) the SQLite database at `url` and brings
    /// both schemas up to date: the library's token table, then the users table.
    ///
    /// Only `sqlite:` URLs are accepted: the built-in users table is SQLite.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        if !url.trim_start().to_ascii_lowercase().starts_with("sqlite:") {
            anyhow::bail!(
                "DATABASE_URL must be a sqlite: URL (for example {DEFAULT_DATABASE_URL}); \
                 the server keeps its users in SQLite"
            );
        }
        let store = SqliteTokenStore::connect(url)
            .await
            .map_err(|err| open_error(url, err))?;
        store
            .migrate()
            .await
            .context("cannot migrate the token table")?;
        let mut migrator = Migrator {
            migrations: MIGRATOR.migrations.clone(),
            ..Migrator::DEFAULT
        };
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        match migrator.run(store.pool()).await {
            Ok(()) => {}
            Err(MigrateError::VersionMismatch(version)) => {
                // Only a database made by a pre-release build (before usernames
                // got their normalized key) can hold a different version of a
                // migration this binary ships.
                let file = sqlite_file(url)
                    .map_or_else(|| "the database".to_owned(), |f| f.display().to_string());
                anyhow::bail!(
                    "cannot migrate the users table: {file} was created by a pre-release build \
                     whose users table (migration {version}) differs from this one; delete it \
                     and run again"
                );
            }
            Err(err) => {
                return Err(anyhow::Error::new(err).context("cannot migrate the users table"));
            }
        }
        Ok(Self { store })
    }

    /// The connection pool both tables share.
    pub fn pool(&self) -> &SqlitePool {
        self.store.pool()
    }

    /// The token store (the library's `TokenRepository` equivalent).
    pub fn token_store(&self) -> Arc<dyn TokenStore> {
        Arc::new(self.store.clone())
    }

    /// The users table.
    pub fn users(&self) -> SqliteUsers {
        SqliteUsers::new(self.pool().clone())
    }

    /// A security handle signing with `config` and recording tokens here.
    pub fn security(&self, config: SecurityConfig) -> anyhow::Result<Security> {
        Ok(Security::new(config, self.token_store())?)
    }
}
