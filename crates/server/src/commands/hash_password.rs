//! `fastcore-security hash-password`: the argon2id hash of a password, for
//! seeding users in another system or checking the hashing policy (the
//! `PASSWORD_*` variables, as `serve` reads them).

use fastcore_security::{PasswordHasher, PasswordPolicy};
use secrecy::ExposeSecret as _;

use crate::password_input::{PasswordSource, read_password};

/// Reads a password (prompt or stdin) and prints its argon2id PHC string.
/// The password must pass the same rules as `users add`'s.
pub async fn run(source: PasswordSource) -> anyhow::Result<()> {
    // The policy (PASSWORD_* variables) is checked before the password is asked for.
    let hasher = PasswordHasher::new(PasswordPolicy::from_env()?)?;
    let password = tokio::task::spawn_blocking(move || read_password(source)).await??;
    let hash = hasher.hash(password.expose_secret()).await?;
    outln!("{hash}")?;
    Ok(())
}
