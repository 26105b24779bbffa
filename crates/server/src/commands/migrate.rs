//! `fastcore-security migrate`: bring the database schema up to date without
//! starting the server, e.g. as a deployment step before a new version runs.

use fastcore_security::redact_url;

use crate::database::{Backend, Database, OpenOptions};

/// Opens the database, runs the library's and the server's migrations, exits.
/// (Redis has no schema: there it checks that the server answers.)
pub async fn run(database_url: &str, options: &OpenOptions) -> anyhow::Result<()> {
    let db = Database::open_with(database_url, options).await?;
    match db.backend() {
        Backend::Redis => outln!(
            "database {} answers (Redis keeps no schema: nothing to migrate)",
            redact_url(database_url)
        )?,
        _ => outln!("database {} is up to date", redact_url(database_url))?,
    }
    Ok(())
}
