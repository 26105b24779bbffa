//! The users table on MySQL/MariaDB (`fastcore_users`, next to the
//! library's `fastcore_tokens`). Strings are stored as their UTF-8 bytes
//! (`VARBINARY`, see the migration), so they are bound and read as bytes.

use sqlx::mysql::MySqlRow;
use sqlx::{MySqlPool, Row as _};

use super::{Inserted, NewUser, User, unavailable};

/// `SELECT` of every column a [`User`] needs, up to the `WHERE`.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, is_active, password_hash, \
             DATE_FORMAT(created_at, '%Y-%m-%dT%H:%i:%sZ') AS created_at \
             FROM fastcore_users ",
            $rest
        )
    };
}

fn text(row: &MySqlRow, column: &'static str) -> Result<String, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(column)?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: e.into(),
    })
}

fn user_from_row(row: &MySqlRow) -> Result<User, sqlx::Error> {
    let is_active: i8 = row.try_get("is_active")?;
    Ok(User {
        id: text(row, "id")?,
        username: text(row, "username")?,
        is_active: is_active != 0,
        created_at: row.try_get("created_at")?,
        password_hash: text(row, "password_hash")?,
    })
}

pub(super) async fn insert(
    pool: &MySqlPool,
    new: &NewUser<'_>,
) -> fastcore_security::Result<Inserted> {
    let inserted = sqlx::query(
        "INSERT INTO fastcore_users \
         (id, username, username_key, password_hash, is_active, created_at) \
         VALUES (?, ?, ?, ?, 1, UTC_TIMESTAMP())",
    )
    .bind(new.id.as_bytes())
    .bind(new.username.as_bytes())
    .bind(new.username_key.as_bytes())
    .bind(new.password_hash.as_bytes())
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => Ok(Inserted::Created),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Inserted::Taken),
        Err(e) => Err(unavailable("users.create")(e)),
    }
}

async fn fetch_optional(
    pool: &MySqlPool,
    operation: &'static str,
    sql: &'static str,
    value: &str,
) -> fastcore_security::Result<Option<User>> {
    let row = sqlx::query(sql)
        .bind(value.as_bytes())
        .fetch_optional(pool)
        .await
        .map_err(unavailable(operation))?;
    row.as_ref()
        .map(user_from_row)
        .transpose()
        .map_err(unavailable(operation))
}

pub(super) async fn find_by_key(
    pool: &MySqlPool,
    key: &str,
) -> fastcore_security::Result<Option<User>> {
    fetch_optional(
        pool,
        "users.find_by_username",
        select!("WHERE username_key = ?"),
        key,
    )
    .await
}

pub(super) async fn find_by_id(
    pool: &MySqlPool,
    id: &str,
) -> fastcore_security::Result<Option<User>> {
    fetch_optional(pool, "users.find_by_id", select!("WHERE id = ?"), id).await
}

pub(super) async fn list(pool: &MySqlPool) -> fastcore_security::Result<Vec<User>> {
    let rows = sqlx::query(select!("ORDER BY fastcore_users.created_at, username"))
        .fetch_all(pool)
        .await
        .map_err(unavailable("users.list"))?;
    rows.iter()
        .map(user_from_row)
        .collect::<Result<_, _>>()
        .map_err(unavailable("users.list"))
}

pub(super) async fn count(pool: &MySqlPool) -> fastcore_security::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM fastcore_users")
        .fetch_one(pool)
        .await
        .map_err(unavailable("users.count"))
}

pub(super) async fn set_active(
    pool: &MySqlPool,
    key: &str,
    active: bool,
) -> fastcore_security::Result<()> {
    sqlx::query("UPDATE fastcore_users SET is_active = ? WHERE username_key = ?")
        .bind(i8::from(active))
        .bind(key.as_bytes())
        .execute(pool)
        .await
        .map_err(unavailable("users.set_active"))?;
    Ok(())
}

pub(super) async fn set_password_hash(
    pool: &MySqlPool,
    id: &str,
    hash: &str,
) -> fastcore_security::Result<()> {
    sqlx::query("UPDATE fastcore_users SET password_hash = ? WHERE id = ?")
        .bind(hash.as_bytes())
        .bind(id.as_bytes())
        .execute(pool)
        .await
        .map_err(unavailable("users.set_password_hash"))?;
    Ok(())
}
