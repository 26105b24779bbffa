//! What the SQL token stores (SQLite, PostgreSQL, MySQL/MariaDB) have in
//! common beyond their dialects: the query of a record and the decoding of
//! its row, the retry of a transaction the server rolled back, and the pool
//! of a database server. Statements whose text differs by dialect stay in
//! each backend.

use std::str::FromStr;
#[cfg(any(feature = "postgres", feature = "mysql"))]
use std::time::Duration;

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{SessionMeta, TokenRecord};
#[cfg(any(feature = "postgres", feature = "mysql"))]
use crate::error::StoreError;
use crate::tokens::claims::TokenType;

/// A query over the records with the user's cut-off folded into
/// `revoked_at` (see the migration `..._rotation_and_cutoffs`), followed by
/// the given SQL (a `WHERE`...). A macro so the query stays a `&'static str`.
macro_rules! select_record {
    ($($tail:literal),+ $(,)?) => {
        concat!(
            "SELECT t.jti, t.token_type, t.user_id, t.family_id, t.issued_at, \
             t.expires_at, t.consumed_at, t.replaced_by, t.session_started_at, t.user_agent, \
             t.ip, COALESCE(t.revoked_at, \
             CASE WHEN c.generation > t.generation THEN c.revoked_at END) AS revoked_at \
             FROM fastcore_tokens t \
             LEFT JOIN fastcore_user_cutoffs c ON c.user_id = t.user_id ",
            $($tail),+
        )
    };
}

/// The end of a `WHERE` of an UPDATE of `fastcore_tokens`: the row is not
/// revoked by its user's cut-off already. What a cut-off revoked counts as
/// revoked: revoking it again changes nothing and keeps the cut-off's time.
macro_rules! not_cut_off {
    () => {
        " AND generation >= COALESCE((SELECT c.generation FROM fastcore_user_cutoffs c \
         WHERE c.user_id = fastcore_tokens.user_id), 0)"
    };
}

pub(super) use {not_cut_off, select_record};

/// Decodes a row of [`select_record!`] into a record. The ids and the
/// session's client fields are read as `T` and made strings by `text`
/// (given the column's name): the backends store them differently (TEXT in
/// SQLite and PostgreSQL, UTF-8 bytes in MySQL). The client fields are read
/// only for a row with a session, as `SessionMeta` has them only then.
pub(super) fn record_from_row<'r, R, T>(
    row: &'r R,
    text: fn(&'static str, T) -> Result<String, sqlx::Error>,
) -> Result<TokenRecord, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let required = |column: &'static str| text(column, row.try_get(column)?);
    let optional = |column: &'static str| {
        row.try_get::<Option<T>, _>(column)?
            .map(|value| text(column, value))
            .transpose()
    };
    let token_type: String = row.try_get("token_type")?;
    let started_at: Option<i64> = row.try_get("session_started_at")?;
    Ok(TokenRecord {
        jti: required("jti")?,
        token_type: TokenType::from_str(&token_type).map_err(|_| sqlx::Error::ColumnDecode {
            index: "token_type".into(),
            source: "unknown token type".into(),
        })?,
        user_id: required("user_id")?,
        family_id: optional("family_id")?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        consumed_at: row.try_get("consumed_at")?,
        replaced_by: optional("replaced_by")?,
        session: match started_at {
            Some(started_at) => Some(SessionMeta {
                started_at,
                user_agent: optional("user_agent")?,
                ip: optional("ip")?,
            }),
            None => None,
        },
    })
}

/// The `text` of [`record_from_row`] for a backend that stores strings as
/// text: the value as it is.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) fn as_text(_column: &'static str, value: String) -> Result<String, sqlx::Error> {
    Ok(value)
}

/// Runs `attempt` again, up to `retries` times and after a pause that
/// grows by 5 ms each time, while it fails with an error that `transient`
/// says the server rolled the whole transaction back for (a deadlock, a
/// serialisation failure): running it again is exact.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(super) async fn retry<T, F, Fut>(
    retries: u32,
    transient: fn(&sqlx::Error) -> bool,
    mut attempt: F,
) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut retried = 0;
    loop {
        match attempt().await {
            Err(e) if retried < retries && transient(&e) => {
                retried += 1;
                tokio::time::sleep(Duration::from_millis(5 * u64::from(retried))).await;
            }
            done => return done,
        }
    }
}

/// The pool on a database server (PostgreSQL, MySQL), after one direct
/// connection that proves the server answers: the pool would retry a
/// refused or misconfigured connection until its timeout and then report
/// only "pool timed out", hiding the driver's reason.
///
/// Fails if the server does not answer within 5 seconds. The pool
/// reconnects by itself after an outage. Its connections log no SQL, not
/// even slow statements at `warn`: the log says what happened, never our
/// queries.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(super) async fn server_pool<DB: sqlx::Database>(
    options: <DB::Connection as sqlx::Connection>::Options,
) -> Result<sqlx::Pool<DB>, StoreError> {
    let options = sqlx::ConnectOptions::disable_statement_logging(options);
    let pool = sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(10)
        .min_connections(0)
        // Below MySQL's default wait_timeout (8 h), so the pool closes idle
        // connections before the server drops them.
        .idle_timeout(Duration::from_secs(600))
        .max_lifetime(Duration::from_secs(1800))
        // An outage must surface as a StoreError quickly (a 503), not
        // as a request that hangs; the ping before each use drops
        // connections the server closed, so the pool heals by itself.
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(true)
        .connect_lazy_with(options.clone());
    let first = tokio::time::timeout(
        Duration::from_secs(5),
        <DB::Connection as sqlx::Connection>::connect_with(&options),
    )
    .await
    .map_err(|_| StoreError::new("connect", "the server did not answer within 5 s"))?
    .map_err(|e| match e {
        // The server's own words and code, without what PostgreSQL's errors
        // append (the line of its C source that raised them: noise to an
        // operator).
        sqlx::Error::Database(db) => StoreError::new(
            "connect",
            match db.code() {
                Some(code) => format!("error returned from database: {} ({code})", db.message()),
                None => format!("error returned from database: {}", db.message()),
            },
        ),
        e => StoreError::new("connect", e),
    })?;
    let _ = sqlx::Connection::close(first).await;
    Ok(pool)
}
