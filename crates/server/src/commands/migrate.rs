//! `fastcore-security migrate`: bring the database schema up to date without
//! starting the server, e.g. as a deployment step before a new version runs.

use fastcore_security::redact_url;

use crate::database::Database;

/// Opens the database, runs the library's and the server's migrations, exits.
pub async fn run(database_url: &str) -> anyhow::Result<()> {
    Database::open(database_url).await?;
    println!("database {} is up to date", redact_url(database_url));
    Ok(())
}
