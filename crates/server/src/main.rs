//! `fastcore-security`: parse the command line, set up logging, run the
//! command, and turn any failure into one line on standard error and exit
//! code 1 (no panic, no backtrace).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use fastcore_security_server::cli::{Cli, ParseError};
use fastcore_security_server::error_line;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    fastcore_security_server::memory::return_freed_blocks();
    let cli = match Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ParseError::CommandLine(err)) => err.exit(),
        // A bad environment variable is a configuration error: one line,
        // status 1, like the library's.
        Err(ParseError::Environment(message)) => {
            let _ = writeln!(std::io::stderr(), "error: {message}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(cli.command.default_log_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            return fail(&anyhow::Error::new(err).context("cannot start the async runtime"));
        }
    };
    match runtime.block_on(fastcore_security_server::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Logs go to standard error (standard output is for command results and the
/// demo credentials). `RUST_LOG` overrides the default level; an unreadable
/// `RUST_LOG` falls back to the default rather than silencing everything.
fn init_logging(default_level: &str) {
    // PostgreSQL reports harmless NOTICEs ("relation ... already exists,
    // skipping") on every migration check; keep them out of the default log.
    let from_env = EnvFilter::try_from_default_env();
    let unreadable = from_env.is_err() && std::env::var_os(EnvFilter::DEFAULT_ENV).is_some();
    let filter = from_env
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},sqlx::postgres::notice=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if unreadable {
        tracing::warn!("RUST_LOG is not a valid log filter; logging at the default level");
    }
}

/// The error and its causes on one line (see [`error_line`]). Never
/// panics: a standard error that cannot be written only loses the line.
/// Output closed by its reader (`| head -1`) is no news to anyone: exit
/// status 1 without a line, as a tool killed by SIGPIPE says nothing.
fn fail(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
    if !broken_pipe {
        let _ = writeln!(std::io::stderr(), "error: {}", error_line(err));
    }
    ExitCode::FAILURE
}
