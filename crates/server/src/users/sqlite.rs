//! The users table on SQLite (`users`, next to the library's tokens).

use sqlx::sqlite::SqliteRow;
use sqlx::{Row as _, SqlitePool};

use super::{Inserted, NewUser, User, unavailable};

/// `SELECT` of every column a [`User`] needs, up to the `WHERE`.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, is_active, created_at, password_hash FROM users ",
            $rest
        )
    };
}

fn user_from_row(row: &SqliteRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        password_hash: row.try_get("password_hash")?,
    })
}

pub(super) async fn insert(
    pool: &SqlitePool,
    new: &NewUser<'_>,
) -> fastcore_security::Result<Inserted> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, username, username_key, password_hash, is_active, created_at) \
         VALUES (?, ?, ?, ?, 1, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
    )
    .bind(&new.id)
    .bind(new.username)
    .bind(new.username_key)
    .bind(new.password_hash)
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => Ok(Inserted::Created),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(Inserted::Taken),
        Err(e) => Err(unavailable("users.create")(e)),
    }
}

async fn fetch_optional(
    pool: &SqlitePool,
    operation: &'static str,
    sql: &'static str,
    value: &str,
) -> fastcore_security::Result<Option<User>> {
    let row = sqlx::query(sql)
        .bind(value)
        .fetch_optional(pool)
        .await
        .map_err(unavailable(operation))?;
    row.as_ref()
        .map(user_from_row)
        .transpose()
        .map_err(unavailable(operation))
}

pub(super) async fn find_by_key(
    pool: &SqlitePool,
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
    pool: &SqlitePool,
    id: &str,
) -> fastcore_security::Result<Option<User>> {
    fetch_optional(pool, "users.find_by_id", select!("WHERE id = ?"), id).await
}

pub(super) async fn list(pool: &SqlitePool) -> fastcore_security::Result<Vec<User>> {
    let rows = sqlx::query(select!("ORDER BY created_at, username"))
        .fetch_all(pool)
        .await
        .map_err(unavailable("users.list"))?;
    rows.iter()
        .map(user_from_row)
        .collect::<Result<_, _>>()
        .map_err(unavailable("users.list"))
}

pub(super) async fn count(pool: &SqlitePool) -> fastcore_security::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await
        .map_err(unavailable("users.count"))
}

pub(super) async fn set_active(
    pool: &SqlitePool,
    key: &str,
    active: bool,
) -> fastcore_security::Result<()> {
    sqlx::query("UPDATE users SET is_active = ? WHERE username_key = ?")
        .bind(active)
        .bind(key)
        .execute(pool)
        .await
        .map_err(unavailable("users.set_active"))?;
    Ok(())
}

pub(super) async fn set_password_hash(
    pool: &SqlitePool,
    id: &str,
    hash: &str,
) -> fastcore_security::Result<()> {
    sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(id)
        .execute(pool)
        .await
        .map_err(unavailable("users.set_password_hash"))?;
    Ok(())
}
