//! `fastcore-security users add|list|disable|enable|unlock`: the built-in users.

use fastcore_security::{PasswordHasher, PasswordPolicy, Security, SecurityConfig, ValidationMode};
use secrecy::ExposeSecret as _;

use crate::clock;
use crate::database::Database;
use crate::password_input::{PasswordSource, read_password};
use crate::users::{User, already_exists, validate_username};

pub use crate::password_input::MIN_PASSWORD_CHARS;

/// Creates a user. The username is checked (and its availability, in any
/// case or Unicode form) before the password is asked for, so nobody types
/// a password for nothing.
pub async fn add(db: &Database, username: &str, source: PasswordSource) -> anyhow::Result<()> {
    validate_username(username)?;
    let users = db.users();
    if let Some(existing) = users.find_by_username(username).await? {
        return Err(already_exists(username, &existing.username));
    }
    // The policy (PASSWORD_* variables) is checked before the password is asked for.
    let hasher = PasswordHasher::new(PasswordPolicy::from_env()?)?;
    let password = tokio::task::spawn_blocking(move || read_password(source)).await??;
    let hash = hasher.hash(password.expose_secret()).await?;
    let user = users.create(username, &hash).await?;
    outln!("created user {:?} with id {}", user.username, user.id)?;
    Ok(())
}

/// Prints the users as a table: id, username, active, created.
/// With `json`, prints a JSON array of `{id, username, is_active,
/// created_at}` instead (empty when there are no users).
pub async fn list(db: &Database, json: bool) -> anyhow::Result<()> {
    let users = db.users().list().await?;
    if json {
        // `User` serializes without its password hash.
        outln!("{}", serde_json::to_string_pretty(&users)?)?;
        return Ok(());
    }
    if users.is_empty() {
        outln!("no users yet; add one with `fastcore-security users add <USERNAME>`")?;
        return Ok(());
    }
    out!("{}", format_table(&users))?;
    Ok(())
}

fn format_table(users: &[User]) -> String {
    let header = ["ID", "USERNAME", "ACTIVE", "CREATED"];
    let rows: Vec<[String; 4]> = users
        .iter()
        .map(|u| {
            [
                u.id.clone(),
                u.username.clone(),
                if u.is_active { "yes" } else { "no" }.to_owned(),
                u.created_at.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3]]));
    }
    out
}

/// Disables a user and revokes every token they hold: a disabled user's
/// access tokens already fail on routes that load the user, but a refresh
/// token would otherwise keep minting access tokens for routes that only
/// check the token.
pub async fn disable(db: &Database, username: &str) -> anyhow::Result<()> {
    let user = db
        .users()
        .set_active(username, false)
        .await?
        .ok_or_else(|| no_such_user(username))?;
    let store = db.token_store();
    let revoked = store.revoke_user(&user.id, None, clock::now()).await?;
    // The count above is for the operator; the cut-off also catches a
    // refresh that was rotating one of those tokens at this moment.
    store.cut_off_user(&user.id, clock::now()).await?;
    outln!(
        "disabled user {:?}; revoked {revoked} token(s)",
        user.username
    )?;
    Ok(())
}

/// Lets a disabled user log in again (their old tokens stay revoked).
pub async fn enable(db: &Database, username: &str) -> anyhow::Result<()> {
    let user = db
        .users()
        .set_active(username, true)
        .await?
        .ok_or_else(|| no_such_user(username))?;
    outln!("enabled user {:?}", user.username)?;
    Ok(())
}

/// Forgets the failed logins counted against `username`'s account, under
/// the keys the server computes from the same secrets (see the command's
/// help), and prints that key.
pub async fn unlock(db: &Database, username: &str) -> anyhow::Result<()> {
    let user = db
        .users()
        .find_by_username(username)
        .await?
        .ok_or_else(|| no_such_user(username))?;
    let config = SecurityConfig::builder_from_env()?
        // Nothing to validate here: no revocation view to keep.
        .validation_mode(ValidationMode::Strict)
        .build()
        .map_err(|err| {
            anyhow::anyhow!(
                "{err}; `users unlock` needs the secret the server runs with \
                 (JWT_SECRET_KEY, or LOGIN_THROTTLE_SECRET with a key file): the login \
                 throttle's keys are derived from it"
            )
        })?;
    let security = Security::new(config, db.token_store())?;
    // The name the login counts under: the stored one, which the login's
    // own normalisation maps every accepted spelling to.
    security.clear_login_failures(&user.username).await?;
    outln!(
        "cleared the failed logins of {:?} (throttle_key={})",
        user.username,
        security.throttle_keys().account(&user.username)
    )?;
    Ok(())
}

fn no_such_user(username: &str) -> anyhow::Error {
    anyhow::anyhow!("no user named {username:?}; see `fastcore-security users list`")
}
