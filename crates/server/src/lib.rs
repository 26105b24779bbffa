//! The `fastcore-security` binary as a library: the reference auth server
//! built on [`fastcore_security`] and its admin commands.
//!
//! `main.rs` only parses the command line, sets up logging and calls
//! [`run`]. Everything else lives here so the integration tests can build
//! the very same router ([`serve::app`]) and database ([`database::Database`])
//! in-process.
#![deny(missing_docs)]

/// `println!` for a command's results, but a standard output that cannot
/// be written (closed by `| head -1`, a full disk) is an error for the
/// command to return, where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` likewise (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        write!(stdout, $($arg)*).and_then(|()| stdout.flush())
    }};
}

pub mod cli;
pub mod clock;
pub mod commands;
pub mod connections;
pub mod database;
pub mod memory;
pub mod openapi;
pub mod password_input;
pub mod problem;
pub mod purge;
pub mod serve;
pub mod users;

use cli::{Cli, Command, KeysCommand, TokenCommand, UsersCommand};
use database::Database;
use password_input::PasswordSource;

/// An error and its causes as one line, `outer: cause: root cause`, each
/// text said once. (`{:#}` would repeat a cause whose text an outer error
/// already includes, as sqlx's "error returned from database: (code: 14)
/// unable to open database file" does with its own source.)
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A value to show in an error: passwords in a URL hidden
/// ([`fastcore_security::redact_url`]), anything else as is.
pub fn redact_value(value: &str) -> String {
    fastcore_security::redact_url(value)
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let options = cli.open_options();
    let url = cli.database_url.as_str();
    match cli.command {
        Command::Serve(args) => serve::serve(url, &options, &args).await,
        Command::Migrate => commands::migrate::run(url, &options).await,
        Command::HashPassword(args) => {
            commands::hash_password::run(PasswordSource::choose(args.password_stdin)).await
        }
        Command::Users(command) => {
            let db = Database::open_with(url, &options).await?;
            match command {
                UsersCommand::Add { username, password } => {
                    let source = PasswordSource::choose(password.password_stdin);
                    commands::users::add(&db, &username, source).await
                }
                UsersCommand::List { json } => commands::users::list(&db, json).await,
                UsersCommand::Disable { username } => {
                    commands::users::disable(&db, &username).await
                }
                UsersCommand::Enable { username } => commands::users::enable(&db, &username).await,
                UsersCommand::Unlock { username } => commands::users::unlock(&db, &username).await,
            }
        }
        Command::Token(TokenCommand::Inspect { token, json }) => {
            commands::token::inspect(url, &options, &token, json).await
        }
        Command::Token(TokenCommand::Revoke { jti, user }) => {
            let db = Database::open_with(url, &options).await?;
            commands::token::revoke(&db, jti.as_deref(), user.as_deref()).await
        }
        Command::Token(TokenCommand::Purge { batch }) => {
            let db = Database::open_with(url, &options).await?;
            commands::token::purge(&db, batch).await
        }
        Command::Completions { shell } => {
            commands::completions::run(shell, &mut std::io::stdout().lock())
        }
        Command::Keys(command) => match command {
            KeysCommand::Generate {
                alg,
                kid,
                verify_only,
                file,
            } => commands::keys::generate(&file, alg, kid.as_deref(), verify_only).await,
            KeysCommand::Activate { kid, file } => commands::keys::activate(&file, &kid),
            KeysCommand::Retire { kid, file } => commands::keys::retire(&file, &kid),
            KeysCommand::List { file, json } => commands::keys::list(&file, json),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("(code: 14) unable to open database file")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error returned from database: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_already_quoted_by_its_wrapper_is_said_once() {
        let err = anyhow::Error::new(Outer(Inner)).context("cannot open the database");
        assert_eq!(
            error_line(&err),
            "cannot open the database: error returned from database: \
             (code: 14) unable to open database file"
        );
        let plain = anyhow::anyhow!("root").context("middle").context("top");
        assert_eq!(error_line(&plain), "top: middle: root");
    }
}
