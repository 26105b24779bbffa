//! The `fastcore-security` binary as a library: the reference auth server
//! built on [`fastcore_security`] and its admin commands.
//!
//! `main.rs` only parses the command line, sets up logging and calls
//! [`run`]. Everything else lives here so the integration tests can build
//! the very same router ([`serve::app`]) and database ([`database::Database`])
//! in-process.

pub mod cli;
pub mod clock;
pub mod commands;
pub mod database;
pub mod password_input;
pub mod serve;
pub mod users;

use cli::{Cli, Command, TokenCommand, UsersCommand};
use database::Database;
use password_input::PasswordSource;

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url.as_str();
    match cli.command {
        Command::Serve(args) => serve::serve(url, &args).await,
        Command::Migrate => commands::migrate::run(url).await,
        Command::HashPassword(args) => {
            commands::hash_password::run(PasswordSource::choose(args.password_stdin)).await
        }
        Command::Users(command) => {
            let db = Database::open(url).await?;
            match command {
                UsersCommand::Add { username, password } => {
                    let source = PasswordSource::choose(password.password_stdin);
                    commands::users::add(&db, &username, source).await
                }
                UsersCommand::List => commands::users::list(&db).await,
                UsersCommand::Disable { username } => {
                    commands::users::disable(&db, &username).await
                }
                UsersCommand::Enable { username } => commands::users::enable(&db, &username).await,
            }
        }
        Command::Token(TokenCommand::Inspect { token }) => {
            commands::token::inspect(url, &token).await
        }
        Command::Token(TokenCommand::Revoke { jti, user }) => {
            let db = Database::open(url).await?;
            commands::token::revoke(&db, jti.as_deref(), user.as_deref()).await
        }
        Command::Token(TokenCommand::Purge) => {
            let db = Database::open(url).await?;
            commands::token::purge(&db).await
        }
    }
}
