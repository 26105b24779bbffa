//! The users table on PostgreSQL (`fastcore_users`, next to the library's
//! `fastcore_tokens`, in the connection's `search_path`).

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use super::{Inserted, NewUser, User, unavailable};

/// `SELECT` of every column a [`User`] needs, up to the `WHERE`.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, is_active, password_hash, \
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             AS created_at FROM fastcore_users ",
            $rest
        )
    };
}

fn user_from_row(row: &PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        password_hash: row.try_get("password_hash")?,
    })
}

pub(super) async fn insert(
    pool: &PgPool,
    new: &NewUser<'_>,
) -> fastcore_security::Result<Inserted> {
    let inserted = sqlx::query(
        "INSERT INTO fastcore_users (id, username, username_key, password_hash, is_active) \
         VALUES ($1, $2, $3, $4, TRUE)",
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
    pool: &PgPool,
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
    pool: &PgPool,
    key: &str,
) -> fastcore_security::Result<Option<User>> {
    fetch_optional(
        pool,
        "users.find_by_username",
        select!("WHERE username_key = $1"),
        key,
    )
    .await
}

pub(super) async fn find_by_id(pool: &PgPool, id: &str) -> fastcore_security::Result<Option<User>> {
    fetch_optional(pool, "users.find_by_id", select!("WHERE id = $1"), id).await
}

pub(super) async fn list(pool: &PgPool) -> fastcore_security::Result<Vec<User>> {
    let rows = sqlx::query(select!("ORDER BY fastcore_users.created_at, username"))
        .fetch_all(pool)
        .await
        .map_err(unavailable("users.list"))?;
    rows.iter()
        .map(user_from_row)
        .collect::<Result<_, _>>()
        .map_err(unavailable("users.list"))
}

pub(super) async fn count(pool: &PgPool) -> fastcore_security::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM fastcore_users")
        .fetch_one(pool)
        .await
        .map_err(unavailable("users.count"))
}

pub(super) async fn set_active(
    pool: &PgPool,
    key: &str,
    active: bool,
) -> fastcore_security::Result<()> {
    sqlx::query("UPDATE fastcore_users SET is_active = $1 WHERE username_key = $2")
        .bind(active)
        .bind(key)
        .execute(pool)
        .await
        .map_err(unavailable("users.set_active"))?;
    Ok(())
}

pub(super) async fn set_password_hash(
    pool: &PgPool,
    id: &str,
    hash: &str,
) -> fastcore_security::Result<()> {
    sqlx::query("UPDATE fastcore_users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(id)
        .execute(pool)
        .await
        .map_err(unavailable("users.set_password_hash"))?;
    Ok(())
}
