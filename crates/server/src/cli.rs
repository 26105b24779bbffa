//! The command line: one binary, `fastcore-security`, that serves the auth
//! endpoints and administers the database they run on.
//!
//! Nothing secret is ever taken as an argument (arguments show up in `ps`
//! and shell history): passwords come from a prompt or standard input, the
//! signing secret from `JWT_SECRET_KEY` (or the key file named by
//! `JWT_KEYS_FILE`). `token inspect` accepts `-` to read the token from
//! standard input for the same reason.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;
use fastcore_security::{Algorithm, CookieConfig, ValidationMode};

use crate::connections::ConnectionLimits;
use crate::database::{DEFAULT_DATABASE_URL, DEFAULT_REDIS_PREFIX, OpenOptions};
use crate::purge::DEFAULT_PURGE_BATCH;

/// Stateful JWT auth server and admin tool for fastcore-security.
///
/// Configuration comes from the environment (every variable is listed
/// below); a flag of the same setting overrides its variable.
#[derive(Debug, Parser)]
#[command(
    name = "fastcore-security",
    version,
    about,
    long_about,
    after_help = top_after_short_help(),
    after_long_help = top_after_long_help()
)]
pub struct Cli {
    /// The database holding tokens and users: sqlite://FILE (created if
    /// missing), postgres://USER:PASS@HOST/DB, mysql://... (or mariadb://),
    /// or redis://HOST:PORT/N. Migrated on first use.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,

    /// With a redis:// URL, the prefix of every key (tokens and users);
    /// give each deployment sharing one Redis its own.
    #[arg(
        long,
        global = true,
        env = "FASTCORE_REDIS_PREFIX",
        default_value = DEFAULT_REDIS_PREFIX,
        value_name = "PREFIX",
        value_parser = parse_redis_prefix
    )]
    pub redis_prefix: String,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level `--help`'s examples and exit codes (the server README
/// lists the same codes).
const TOP_AFTER_HELP: &str = "\
Examples:
  fastcore-security serve --demo                 try it out on ./fastcore-security.db
  JWT_SECRET_KEY=... fastcore-security serve     serve with your own secret
  fastcore-security users add ada                create a user (password prompted)
  fastcore-security token inspect -              decode a token pasted on stdin
  fastcore-security completions bash > /etc/bash_completion.d/fastcore-security

Exit codes:
  0  success (for `token inspect`: the token was decoded, whether or not it is valid)
  1  the command failed: one line on standard error says why
  2  the command line is wrong (unknown command or option, missing argument, bad flag value)";

/// Every environment variable the binary and the library read, as the
/// top-level `--help` lists them (a test checks the list against the
/// sources).
pub const ENVIRONMENT_HELP: &str = "\
Environment variables (a flag of the same setting overrides its variable):
 Signing and tokens:
  JWT_SECRET_KEY                   HMAC secret (required unless JWT_KEYS_FILE or serve --demo)
  JWT_ALGORITHM                    HS256 (default), HS384 or HS512, for JWT_SECRET_KEY
  JWT_KEYS_FILE                    key file from `keys generate`, instead of JWT_SECRET_KEY
  JWT_ACCESS_TOKEN_EXPIRE_MINUTES  access token lifetime (default 30)
  JWT_REFRESH_TOKEN_EXPIRE_DAYS    refresh token lifetime (default 7)
  JWT_SESSION_MAX_LIFETIME_DAYS    a session ends this long after login (default 30)
  JWT_REFRESH_REUSE_GRACE_SECONDS  a spent refresh token back this soon is no theft (0-60, default 5)
  JWT_AUDIENCE, JWT_ISSUER         aud and iss of new tokens (iss is required on incoming ones)
  JWT_ALLOWED_AUDIENCES            comma-separated aud values accepted (default JWT_AUDIENCE)
  JWT_LEEWAY_SECONDS               clock skew allowed on exp/nbf (0-300, default 5)
  JWT_VALIDATION_MODE              strict (default) or synced (serve --validation-mode)
  JWT_SYNC_INTERVAL_MS             synced mode's feed interval, 10-60000 ms (serve --sync-interval)
 Storage:
  DATABASE_URL                     the database (--database-url)
  FASTCORE_REDIS_PREFIX            key prefix on Redis (--redis-prefix)
  FASTCORE_PURGE_INTERVAL_SECONDS  background purge interval, 0 = off (serve --purge-interval)
 Logins and passwords:
  LOGIN_MAX_FAILURES_PER_ACCOUNT   failed logins per account and window (default 5; 0 = off)
  LOGIN_MAX_FAILURES_PER_ADDRESS   failed logins per address and window (default 20; 0 = off)
  LOGIN_THROTTLE_WINDOW_SECONDS    the throttle window, 1-86400 (default 900)
  LOGIN_THROTTLE_SECRET            keys the throttle's hashes of names and addresses
                                   (32+ bytes; default: derived from JWT_SECRET_KEY)
  LOGIN_FAILURE_FLOOR_MS           least time a failed login takes, 0-10000 (default 500)
  PASSWORD_ARGON2_MEMORY_KIB       argon2id memory of new hashes (19456-262144, default 19456)
  PASSWORD_ARGON2_ITERATIONS       argon2id iterations (2-16, default 2)
  PASSWORD_ARGON2_PARALLELISM      argon2id lanes (1-16, default 1)
  PASSWORD_MAX_BYTES               longest password accepted (64-65536, default 1024)
 Browser apps (serve):
  FASTCORE_REFRESH_COOKIE          true: the refresh token in an HttpOnly cookie (--refresh-cookie)
  FASTCORE_REFRESH_COOKIE_SAME_SITE  strict (default) or lax (--refresh-cookie-same-site)
  FASTCORE_ALLOWED_ORIGINS         comma-separated origins that may also use it (--allowed-origin)
 Other:
  FASTCORE_ENV, APP_ENV, ENVIRONMENT  `production` refuses serve --demo and generated secrets
  RUST_LOG                         log level (default info for serve, warn otherwise)";

/// The top-level `--help`'s text after the options: the environment
/// variables, then [`TOP_AFTER_HELP`].
fn top_after_long_help() -> String {
    format!("{ENVIRONMENT_HELP}\n\n{TOP_AFTER_HELP}")
}

/// The top-level `-h`'s: [`TOP_AFTER_HELP`], and where the variables are.
fn top_after_short_help() -> String {
    format!("{TOP_AFTER_HELP}\n\nThe environment variables: see --help.")
}

/// Why the command line could not be parsed.
#[derive(Debug)]
pub enum ParseError {
    /// The command line itself is wrong (or asks for help or the
    /// version): clap's own error, printed and exited with by
    /// [`clap::Error::exit`] (status 2 for a usage error).
    CommandLine(clap::Error),
    /// An option's environment variable holds a value the option refuses:
    /// a configuration error naming the variable (exit status 1, like the
    /// library's own configuration errors).
    Environment(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::CommandLine(err) => write!(f, "{err}"),
            ParseError::Environment(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ParseError {}

impl Cli {
    /// Parses `args` (the program name first) like [`clap::Parser::try_parse_from`],
    /// except that a bad value that came from an option's environment
    /// variable rather than from the command line is reported under the
    /// variable's name ("FASTCORE_PURGE_INTERVAL_SECONDS has an invalid
    /// value ..."), not the flag's: the flag was never typed.
    pub fn parse_args<I, T>(args: I) -> Result<Self, ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        Self::try_parse_from(&args).map_err(|err| match env_source_of(&err, &args) {
            Some(variable) => ParseError::Environment(env_error_message(&err, &variable)),
            None => ParseError::CommandLine(err),
        })
    }

    /// How to open the database, beyond its URL.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            redis_prefix: self.redis_prefix.clone(),
        }
    }
}

/// The environment variable a clap value error came from: the error is
/// about an option that has one, and the option is not on the command
/// line (clap reads the variable only then).
fn env_source_of(err: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        err.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue | ErrorKind::InvalidUtf8
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build(); // an option's display needs the built command
    let arg = find_arg(&command, shown)?;
    let variable = arg.get_env()?.to_string_lossy().into_owned();
    let mut spellings: Vec<String> = arg
        .get_long_and_visible_aliases()
        .into_iter()
        .flatten()
        .map(|long| format!("--{long}"))
        .collect();
    spellings.extend(arg.get_short().map(|short| format!("-{short}")));
    let typed = args.iter().skip(1).any(|word| {
        let word = word.to_string_lossy();
        spellings
            .iter()
            .any(|flag| word == flag.as_str() || word.starts_with(&format!("{flag}=")))
    });
    (!typed).then_some(variable)
}

/// The option (of the command or any subcommand) clap shows as `shown`
/// (`--purge-interval <DURATION>`), if it has an environment variable.
fn find_arg<'a>(command: &'a clap::Command, shown: &str) -> Option<&'a clap::Arg> {
    command
        .get_arguments()
        .find(|arg| arg.get_env().is_some() && arg.to_string() == shown)
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|sub| find_arg(sub, shown))
        })
}

/// "configuration error: VARIABLE has an invalid value "...": why".
fn env_error_message(err: &clap::Error, variable: &str) -> String {
    use clap::error::{ContextKind, ContextValue};
    let value = match err.get(ContextKind::InvalidValue) {
        // A database URL may hold a password: never echo one.
        Some(ContextValue::String(value)) => format!(" {:?}", crate::redact_value(value)),
        _ => String::new(),
    };
    let why = match (
        std::error::Error::source(err),
        err.get(ContextKind::ValidValue),
    ) {
        (Some(source), _) => format!(": {source}"),
        (None, Some(ContextValue::Strings(valid))) => {
            format!(": expected one of {}", valid.join(", "))
        }
        _ => String::new(),
    };
    format!("configuration error: {variable} has an invalid value{value}{why}")
}

fn parse_redis_prefix(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the prefix must not be empty (the default is fastcore:)".into());
    }
    Ok(text.to_owned())
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the auth server (login, refresh, logout, sessions, me, JWKS,
    /// health, /openapi.json, /metrics).
    #[command(after_help = "\
Examples:
  fastcore-security serve --demo
  JWT_SECRET_KEY=$(openssl rand -base64 48) fastcore-security serve --bind 0.0.0.0:8000
  fastcore-security serve --database-url postgres://auth@db/auth --purge-interval 0

Routes: POST /auth/login, /auth/refresh, /auth/logout, /auth/logout-all,
/auth/logout-others; GET /auth/sessions, DELETE /auth/sessions/{id}; GET /auth/me,
/.well-known/jwks.json, /health, /openapi.json (the OpenAPI 3.1 description),
/metrics (Prometheus; expose it to your monitoring network only).

Exits 0 after a clean shutdown (Ctrl-C, SIGTERM), 1 if it cannot start.")]
    Serve(ServeArgs),
    /// Create or update the database tables, then exit.
    #[command(after_help = "\
Examples:
  fastcore-security migrate
  fastcore-security migrate --database-url mysql://root@127.0.0.1/auth

Exits 0 when the schema is current, 1 if the database cannot be reached or migrated.")]
    Migrate,
    /// Manage the built-in users.
    #[command(
        subcommand,
        after_help = "\
Examples:
  fastcore-security users add ada
  fastcore-security users list --json
  fastcore-security users disable ada"
    )]
    Users(UsersCommand),
    /// Hash a password (argon2id) read from a prompt or standard input.
    #[command(after_help = "\
Examples:
  fastcore-security hash-password
  printf '%s\\n' \"$PASSWORD\" | fastcore-security hash-password --password-stdin

Follows the PASSWORD_* policy variables. Exits 0 and prints the PHC hash, 1 for a
refused password.")]
    HashPassword(PasswordArgs),
    /// Inspect and revoke tokens.
    #[command(
        subcommand,
        after_help = "\
Examples:
  fastcore-security token inspect - --json
  fastcore-security token revoke --user ada
  fastcore-security token purge"
    )]
    Token(TokenCommand),
    /// Manage the signing keys in a key file (JWT_KEYS_FILE): generate,
    /// rotate, retire, list.
    #[command(
        subcommand,
        after_help = "\
Examples:
  fastcore-security keys generate --alg ES256
  fastcore-security keys list --json
  fastcore-security keys retire --kid OLD-KID"
    )]
    Keys(KeysCommand),
    /// Print a shell completion script for bash, zsh, fish, elvish or
    /// PowerShell on standard output.
    #[command(after_help = "\
Examples:
  fastcore-security completions bash > ~/.local/share/bash-completion/completions/fastcore-security
  fastcore-security completions zsh > \"${fpath[1]}/_fastcore-security\"
  fastcore-security completions fish > ~/.config/fish/completions/fastcore-security.fish

Exits 0; 2 for an unknown shell.")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one; the log says
    /// which): an IP address (`[::1]:8000` for IPv6) or a host name, and a port.
    #[arg(long, default_value = "127.0.0.1:8000", value_name = "ADDR:PORT",
          value_parser = parse_bind)]
    pub bind: String,

    /// Try-it-out mode: without JWT_SECRET_KEY, use a random development
    /// secret; on an empty database, create user `demo` and print its
    /// password once. Refused when APP_ENV/FASTCORE_ENV/ENVIRONMENT is production.
    #[arg(long)]
    pub demo: bool,

    /// How long a client may take to send a request body once its headers
    /// are in; a slower one gets 408. `10s`, `500ms`, `2m`; a bare number is seconds.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// How long a client may take to send a request's headers, from the
    /// accept (or, on a kept-alive connection, from the request's first
    /// byte); a slower one is disconnected.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// How long a kept-alive connection may wait for its next request
    /// before it is closed.
    #[arg(long, default_value = "75s", value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// How many connections are served at once; more wait until one closes.
    /// The open-file limit is raised to fit (up to its hard limit), or
    /// else this is lowered to what it allows.
    #[arg(long, default_value_t = 4096, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// On Ctrl-C or SIGTERM, how long the requests in progress get to
    /// finish before the remaining connections are dropped and the server exits.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// How often to delete the records of expired tokens in the background
    /// (at start, then at this interval): `1h`, `30m`, `90s`, a bare number
    /// of seconds; `0` turns it off (e.g. on all but one instance, or when
    /// a cron job runs `token purge`).
    #[arg(
        long,
        env = "FASTCORE_PURGE_INTERVAL_SECONDS",
        default_value = "1h",
        value_name = "DURATION",
        value_parser = parse_purge_interval
    )]
    pub purge_interval: PurgeInterval,

    /// Records deleted per statement by the background purge.
    #[arg(long, default_value_t = DEFAULT_PURGE_BATCH, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub purge_batch: u32,

    // The three login throttle options have no clap `env`: the library
    // reads LOGIN_* itself (`SecurityConfig::builder_from_env`), with one
    // parser and errors that name the variable; a flag overrides it.
    /// Failed logins one account may have per login throttle window;
    /// after them, logins to that account (from any address, with any
    /// password) get 429 until the window ends. A successful login clears
    /// the count. 0 turns the limit off. Overrides
    /// LOGIN_MAX_FAILURES_PER_ACCOUNT. [default: 5]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub login_max_failures_per_account: Option<u32>,

    /// Failed logins one client address (an IPv6 /64) may have per login
    /// throttle window, over all accounts; after them, its logins get 429
    /// until the window ends. The server sees the peer address: behind a
    /// reverse proxy every client has the proxy's, so raise this or turn
    /// it off (0) there. Overrides LOGIN_MAX_FAILURES_PER_ADDRESS. [default: 20]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub login_max_failures_per_address: Option<u32>,

    /// The login throttle window, from an account's or address's first
    /// counted failure: `15m`, `1h`, `90s`, a bare number of seconds; from
    /// 1s to 24h. Overrides LOGIN_THROTTLE_WINDOW_SECONDS (whole seconds).
    /// [default: 15m]
    #[arg(long, value_name = "DURATION", value_parser = parse_throttle_window)]
    pub login_throttle_window: Option<Duration>,

    /// How access tokens are checked after their signature: `strict` reads
    /// the token's record on every request; `synced` answers from an
    /// in-memory view of the revocations that the database's change feed
    /// keeps current (PostgreSQL LISTEN/NOTIFY, Redis pub/sub, polling on
    /// SQLite and MySQL), falling back to strict checks whenever the feed
    /// is lost. See the README's "Validation modes". [default: strict]
    #[arg(long, env = "JWT_VALIDATION_MODE", value_name = "MODE",
          value_parser = parse_validation_mode)]
    pub validation_mode: Option<ValidationMode>,

    /// Synced mode: how often the change feed is read besides its signals
    /// (SQLite and MySQL have none: it is their propagation delay), from
    /// 10ms to 60s; also `JWT_SYNC_INTERVAL_MS` (whole milliseconds).
    /// [default: 250ms]
    #[arg(long, value_name = "DURATION", value_parser = parse_sync_interval)]
    pub sync_interval: Option<Duration>,

    /// Browser apps: login and refresh put the refresh token in an
    /// HttpOnly, Secure cookie (`__Secure-fastcore_refresh`, Path=/auth)
    /// instead of the JSON body; /auth/refresh and /auth/logout accept it
    /// from the cookie, for requests from the server's own origin (or an
    /// --allowed-origin). Clients that send the refresh token in the body
    /// keep getting it in the body. `true`/`false` in the environment.
    #[arg(long, env = "FASTCORE_REFRESH_COOKIE")]
    pub refresh_cookie: bool,

    /// The refresh cookie's SameSite: `strict` or `lax`.
    #[arg(long, env = "FASTCORE_REFRESH_COOKIE_SAME_SITE", value_name = "strict|lax",
          default_value = "strict", value_parser = ["strict", "lax"])]
    pub refresh_cookie_same_site: String,

    /// An origin (`https://app.example.com`) whose pages may use the
    /// refresh cookie although they are not the server's own origin; one
    /// per flag, or comma-separated in the environment.
    #[arg(
        long = "allowed-origin",
        env = "FASTCORE_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ',',
        value_parser = parse_allowed_origin
    )]
    pub allowed_origins: Vec<String>,
}

/// Parses `--validation-mode` (`strict` or `synced`, in any case). The
/// error names neither the flag nor `JWT_VALIDATION_MODE`: clap (or
/// [`Cli::parse_args`], for the variable) says which one was given.
pub fn parse_validation_mode(text: &str) -> Result<ValidationMode, String> {
    text.parse()
        .map_err(|_| "expected strict or synced".to_owned())
}

/// Parses `--sync-interval`: a duration like [`parse_duration`]'s, from
/// 10ms to 60s (the range the library accepts).
pub fn parse_sync_interval(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_units(text.trim(), false)?;
    if duration < Duration::from_millis(10) || duration > Duration::from_secs(60) {
        return Err("the sync interval must be from 10ms to 60s".into());
    }
    Ok(duration)
}

/// Parses `--bind`: `ADDR:PORT`, where ADDR is an IP address (IPv6 in
/// brackets) or a host name (resolved when the server starts) and PORT a
/// number up to 65535 (0 picks a free one).
pub fn parse_bind(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(text.to_owned());
    }
    let expected =
        || format!("{text:?} is not an ADDR:PORT like 127.0.0.1:8000, 0.0.0.0:8000 or [::1]:8000");
    let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !host_ok || port.parse::<u16>().is_err() {
        return Err(expected());
    }
    Ok(text.to_owned())
}

/// Parses one `--allowed-origin` (or one comma-separated item of
/// `FASTCORE_ALLOWED_ORIGINS`) with the library's own check, so a bad one
/// is reported under the name it was given as.
pub fn parse_allowed_origin(text: &str) -> Result<String, String> {
    let origin = text.trim();
    match CookieConfig::builder().allowed_origins([origin]).build() {
        Ok(_) => Ok(origin.to_owned()),
        Err(fastcore_security::Error::Config(why)) => Err(why),
        Err(err) => Err(err.to_string()),
    }
}

/// Parses `--login-throttle-window`: a duration like [`parse_duration`]'s,
/// which may also be in hours, in whole seconds from 1s to a day.
pub fn parse_throttle_window(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_units(text.trim(), true)?;
    if duration < Duration::from_secs(1) || duration > Duration::from_secs(86_400) {
        return Err("the login throttle window must be from 1s to 24h".into());
    }
    if duration.subsec_nanos() != 0 {
        return Err("the login throttle window must be whole seconds".into());
    }
    Ok(duration)
}

/// `--purge-interval`: off, or how long between two purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeInterval(pub Option<Duration>);

/// Parses `--purge-interval`: `0` (off), or a duration like
/// [`parse_duration`]'s, which may also be in hours (`1h`), up to a week.
pub fn parse_purge_interval(text: &str) -> Result<PurgeInterval, String> {
    let duration = parse_duration_units(text.trim(), true)?;
    if duration.is_zero() {
        return Ok(PurgeInterval(None));
    }
    if duration < Duration::from_secs(1) {
        return Err("the purge interval must be at least 1s (or 0 to turn it off)".into());
    }
    if duration > Duration::from_secs(7 * 86_400) {
        return Err("the purge interval must be at most a week (168h)".into());
    }
    Ok(PurgeInterval(Some(duration)))
}

impl ServeArgs {
    /// The connection limits these options ask for.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds (`10`), which
/// must be more than zero and at most a day.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_units(text.trim(), false)?;
    if duration.is_zero() {
        return Err("the duration must be more than zero".into());
    }
    if duration > Duration::from_secs(86_400) {
        return Err("the duration must be at most a day".into());
    }
    Ok(duration)
}

/// `10s`, `500ms`, `2m`, a bare number of seconds, and with `hours` also
/// `1h`: the duration, unchecked.
fn parse_duration_units(text: &str, hours: bool) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s, 500ms or 2m"))?;
    let duration = match unit.trim() {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" if hours => Duration::from_secs(number.saturating_mul(3600)),
        _ if hours => {
            return Err(format!(
                "{text:?} has an unknown unit (use ms, s, m or h, as in 90s, 30m or 1h)"
            ));
        }
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (use ms, s or m, as in 10s, 500ms or 2m)"
            ));
        }
    };
    Ok(duration)
}

/// How a password is read.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input instead of
    /// prompting (implied when standard input is not a terminal).
    #[arg(long)]
    pub password_stdin: bool,
}

/// `users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is prompted for (twice) or read from stdin.
    #[command(after_help = "\
Examples:
  fastcore-security users add ada
  printf '%s\\n' \"$PASSWORD\" | fastcore-security users add ada --password-stdin

Exits 0 when the user is created; 1 if the name is taken (in any case or Unicode
form) or the password is refused.")]
    Add {
        /// The login name.
        username: String,
        /// How to read the password.
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List the users: id, username, active, created (never a password hash).
    #[command(after_help = "\
Examples:
  fastcore-security users list
  fastcore-security users list --json | jq -r '.[] | select(.is_active) | .username'

With --json: an array of {\"id\", \"username\", \"is_active\", \"created_at\"}.")]
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop a user from logging in, and revoke all of their tokens.
    #[command(after_help = "\
Example:
  fastcore-security users disable ada

Exits 1 for an unknown user.")]
    Disable {
        /// The login name.
        username: String,
    },
    /// Let a disabled user log in again.
    #[command(after_help = "\
Example:
  fastcore-security users enable ada

Exits 1 for an unknown user.")]
    Enable {
        /// The login name.
        username: String,
    },
    /// Forget a user's failed logins, so a throttled account can log in
    /// again before its window ends.
    #[command(after_help = "\
Example:
  JWT_SECRET_KEY=... fastcore-security users unlock ada

The throttle counts under keyed hashes of the names, so this needs the secret
the server runs with: its JWT_SECRET_KEY, or its LOGIN_THROTTLE_SECRET (with a
key file). Prints the key it cleared, which is how the log names the account
(throttle_key=...). The client address's own count is left alone. Exits 1 for
an unknown user or a missing secret.")]
    Unlock {
        /// The login name.
        username: String,
    },
}

/// `token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Decode a token's header and claims WITHOUT trusting them; with
    /// JWT_SECRET_KEY set, also check the signature and the store record.
    #[command(after_help = "\
Examples:
  pbpaste | fastcore-security token inspect -
  JWT_SECRET_KEY=... fastcore-security token inspect - --json < token.txt

With --json: {\"verified\": false, \"header\", \"claims\", \"verification\"}, where
verification is null without a key, else {\"signature_valid\", \"signature_error\",
\"store_record\", \"accepted\", \"refusal\"}. The token itself is never printed.

Exits 0 once the token is decoded, valid or not; 1 if it is not a JWT.")]
    Inspect {
        /// The token, or `-` to read it from standard input (keeps it out of
        /// shell history).
        token: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one token by its id (jti), or every token of a user.
    #[command(after_help = "\
Examples:
  fastcore-security token revoke 0b6d5f2e-3c1a-4f0e-9d1b-7a2c9e4f8a10
  fastcore-security token revoke --user ada

Exits 1 for an unknown jti or user, or when given a whole token instead of its id.")]
    #[command(group(clap::ArgGroup::new("target").required(true).args(["jti", "user"])))]
    Revoke {
        /// The token's id (its `jti` claim).
        jti: Option<String>,
        /// Revoke every token of this user (user id or username) instead.
        #[arg(long, value_name = "USER_ID")]
        user: Option<String>,
    },
    /// Delete the records of expired tokens, in batches (a progress bar on
    /// a terminal, plain lines otherwise).
    #[command(after_help = "\
Examples:
  fastcore-security token purge
  fastcore-security token purge --batch 200     # shorter locks on a busy database")]
    Purge {
        /// Records deleted per statement (smaller batches hold locks for less).
        #[arg(long, default_value_t = DEFAULT_PURGE_BATCH, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch: u32,
    },
}

/// The key file `keys generate` writes and the server reads: JWT_KEYS_FILE,
/// or `keys.json` in the current directory.
pub const DEFAULT_KEYS_FILE: &str = "keys.json";

/// `keys ...`
///
/// The key file holds private keys: it is written with mode 0600, and
/// these commands never print key material. A running server reads the
/// file at start-up only: restart it after a change.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new signing key into the key file (created if missing).
    #[command(after_help = "\
Examples:
  fastcore-security keys generate                       # ES256 into ./keys.json
  fastcore-security keys generate --alg EdDSA --file /etc/auth/keys.json
  fastcore-security keys generate --verify-only         # publish first, activate later")]
    /// It becomes the active key, and the key that was active only
    /// verifies from now on (rotation): its tokens stay valid until they
    /// expire or it is retired.
    Generate {
        /// The algorithm: ES256 (default), ES384, EdDSA, RS256, RS384,
        /// RS512, PS256, PS384, PS512 (RSA keys are 3072 bits), or HS256,
        /// HS384, HS512 (a random shared secret, never published).
        #[arg(long, default_value = "ES256", value_parser = parse_key_algorithm)]
        alg: Algorithm,
        /// The key id written into tokens' headers (default: today's date
        /// and a random suffix, e.g. 2026-12-03-k7q2x9).
        #[arg(long, value_name = "KID")]
        kid: Option<String>,
        /// Add the key as "verify" only, without making it active; activate
        /// it later with `keys activate`. With several instances sharing the
        /// file, this lets every instance know the key before any signs with it.
        #[arg(long)]
        verify_only: bool,
        /// The key file.
        #[arg(long = "out", visible_alias = "file", env = "JWT_KEYS_FILE",
              default_value = DEFAULT_KEYS_FILE, value_name = "PATH")]
        file: PathBuf,
    },
    /// Make a key the active (signing) key; the key that was active only
    /// verifies from now on.
    #[command(after_help = "\
Example:
  fastcore-security keys activate --kid 2026-12-03-k7q2x9

Exits 1 for an unknown or retired kid.")]
    Activate {
        /// The key to activate.
        #[arg(long, value_name = "KID")]
        kid: String,
        /// The key file.
        #[arg(long, env = "JWT_KEYS_FILE", default_value = DEFAULT_KEYS_FILE, value_name = "PATH")]
        file: PathBuf,
    },
    /// Retire a key: tokens it signed are refused from the next start. The
    /// active key cannot be retired (generate or activate another first).
    #[command(after_help = "\
Example:
  fastcore-security keys retire --kid 2026-06-01-a1b2c3

Exits 1 for an unknown kid or the active key.")]
    Retire {
        /// The key to retire.
        #[arg(long, value_name = "KID")]
        kid: String,
        /// The key file.
        #[arg(long, env = "JWT_KEYS_FILE", default_value = DEFAULT_KEYS_FILE, value_name = "PATH")]
        file: PathBuf,
    },
    /// List the keys: kid, algorithm, status, creation time (never the keys).
    #[command(after_help = "\
Examples:
  fastcore-security keys list
  fastcore-security keys list --json | jq -r '.[] | select(.status == \"active\") | .kid'

With --json: an array of {\"kid\", \"alg\", \"status\", \"created_at\", \"kind\"}.")]
    List {
        /// The key file.
        #[arg(long, env = "JWT_KEYS_FILE", default_value = DEFAULT_KEYS_FILE, value_name = "PATH")]
        file: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Parses a JOSE algorithm name (`ES256`, `EdDSA`...), in any case.
pub fn parse_key_algorithm(text: &str) -> Result<Algorithm, String> {
    Ok(match text.trim().to_ascii_uppercase().as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EDDSA" => Algorithm::EdDSA,
        _ => {
            return Err(format!(
                "{text:?} is not a supported algorithm (ES256, ES384, EdDSA, RS256, RS384, \
                 RS512, PS256, PS384, PS512, HS256, HS384, HS512)"
            ));
        }
    })
}

impl Command {
    /// The log level when RUST_LOG is not set: `info` for the server, `warn`
    /// for admin commands, whose own output goes to standard output.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve(_) => "info",
            _ => "warn",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn revoke_needs_exactly_one_target() {
        assert!(Cli::try_parse_from(["fastcore-security", "token", "revoke"]).is_err());
        assert!(
            Cli::try_parse_from(["fastcore-security", "token", "revoke", "j", "--user", "u"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["fastcore-security", "token", "revoke", "j"]).is_ok());
        assert!(
            Cli::try_parse_from(["fastcore-security", "token", "revoke", "--user", "u"]).is_ok()
        );
    }

    #[test]
    fn serve_defaults_are_the_documented_limits() {
        let cli = Cli::try_parse_from(["fastcore-security", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve parses as serve");
        };
        assert_eq!(args.connection_limits(), ConnectionLimits::default());
        assert_eq!(args.body_timeout, crate::problem::DEFAULT_BODY_TIMEOUT);
        assert!(
            Cli::try_parse_from(["fastcore-security", "serve", "--max-connections", "0"]).is_err()
        );
    }

    #[test]
    fn purge_intervals_are_off_at_zero_and_may_be_in_hours() {
        let every = |secs| Ok(PurgeInterval(Some(Duration::from_secs(secs))));
        assert_eq!(parse_purge_interval("0"), Ok(PurgeInterval(None)));
        assert_eq!(parse_purge_interval("0s"), Ok(PurgeInterval(None)));
        assert_eq!(parse_purge_interval("1h"), every(3600));
        assert_eq!(parse_purge_interval("30m"), every(1800));
        assert_eq!(parse_purge_interval("90"), every(90));
        assert_eq!(parse_purge_interval("168h"), every(7 * 86_400));
        for bad in ["", "500ms", "169h", "1d", "-1", "one"] {
            assert!(parse_purge_interval(bad).is_err(), "{bad:?}");
        }
        // Hours are for the purge interval only.
        assert!(parse_duration("1h").is_err());

        let cli = Cli::try_parse_from(["fastcore-security", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve parses as serve");
        };
        assert_eq!(args.purge_interval, every(3600).unwrap());
        assert_eq!(args.purge_batch, DEFAULT_PURGE_BATCH);
        let cli =
            Cli::try_parse_from(["fastcore-security", "token", "purge", "--batch", "7"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Token(TokenCommand::Purge { batch: 7 })
        ));
        assert!(
            Cli::try_parse_from(["fastcore-security", "token", "purge", "--batch", "0"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["fastcore-security", "--redis-prefix", "", "migrate"]).is_err()
        );
    }

    #[test]
    fn validation_mode_flags_parse() {
        let serve = |extra: &[&str]| {
            let args = ["fastcore-security", "serve"].iter().chain(extra);
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Serve(args) => args,
                _ => panic!("serve parses as serve"),
            })
        };
        let args = serve(&["--validation-mode", "synced", "--sync-interval", "50ms"]).unwrap();
        assert_eq!(args.validation_mode, Some(ValidationMode::Synced));
        assert_eq!(args.sync_interval, Some(Duration::from_millis(50)));
        let args = serve(&["--validation-mode", "STRICT"]).unwrap();
        assert_eq!(args.validation_mode, Some(ValidationMode::Strict));
        assert!(serve(&["--validation-mode", "lazy"]).is_err());
        for bad in ["0", "1ms", "9ms", "61s", "2m"] {
            assert!(serve(&["--sync-interval", bad]).is_err(), "{bad}");
        }
        for good in ["10ms", "60s", "1m"] {
            assert!(serve(&["--sync-interval", good]).is_ok(), "{good}");
        }
    }

    #[test]
    fn bind_addresses_are_checked_before_the_server_starts() {
        for good in [
            "127.0.0.1:8000",
            "0.0.0.0:0",
            "[::1]:8000",
            "localhost:8000",
            "auth.internal:443",
        ] {
            assert_eq!(parse_bind(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "nonsense",
            "",
            ":8000",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:65536",
            "127.0.0.1:-1",
            "::1:8000x",
            "a b:80",
        ] {
            assert!(parse_bind(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn login_throttle_flags_are_optional_and_bounded() {
        let serve = |extra: &[&str]| {
            let args = ["fastcore-security", "serve"].iter().chain(extra);
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Serve(args) => args,
                _ => panic!("serve parses as serve"),
            })
        };
        // Unset, the library's defaults (or its environment variables) apply.
        let args = serve(&[]).unwrap();
        assert_eq!(args.login_max_failures_per_account, None);
        assert_eq!(args.login_max_failures_per_address, None);
        assert_eq!(args.login_throttle_window, None);
        let args = serve(&[
            "--login-max-failures-per-account",
            "0",
            "--login-max-failures-per-address",
            "50",
            "--login-throttle-window",
            "1h",
        ])
        .unwrap();
        assert_eq!(args.login_max_failures_per_account, Some(0));
        assert_eq!(args.login_max_failures_per_address, Some(50));
        assert_eq!(args.login_throttle_window, Some(Duration::from_secs(3600)));
        for bad in [
            ["--login-max-failures-per-account", "-1"],
            ["--login-max-failures-per-address", "1000001"],
            ["--login-throttle-window", "0"],
            ["--login-throttle-window", "1500ms"],
            ["--login-throttle-window", "25h"],
        ] {
            assert!(serve(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_throttle_window("900"), Ok(Duration::from_secs(900)));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 3 s "), Ok(Duration::from_secs(3)));
        for bad in [
            "", "s", "0", "0ms", "-1", "1.5s", "10h", "ten", "2d", "1441m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_commands_default_to_es256_and_keys_json() {
        let cli = Cli::try_parse_from(["fastcore-security", "keys", "generate"]).unwrap();
        let Command::Keys(KeysCommand::Generate {
            alg,
            kid,
            verify_only,
            file,
        }) = cli.command
        else {
            panic!("keys generate parses as keys generate");
        };
        assert_eq!(alg, Algorithm::ES256);
        assert_eq!(kid, None);
        assert!(!verify_only);
        assert_eq!(file, PathBuf::from(DEFAULT_KEYS_FILE));
        let cli = Cli::try_parse_from([
            "fastcore-security",
            "keys",
            "generate",
            "--alg",
            "eddsa",
            "--kid",
            "k1",
            "--file",
            "x.json",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Keys(KeysCommand::Generate {
                alg: Algorithm::EdDSA,
                ..
            })
        ));
        for bad in [
            vec!["keys", "generate", "--alg", "none"],
            vec!["keys", "retire"],
            vec!["keys", "activate"],
        ] {
            let args = std::iter::once("fastcore-security").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_never_arguments() {
        assert!(
            Cli::try_parse_from(["fastcore-security", "users", "add", "ada", "hunter2hunter2"])
                .is_err()
        );
    }
}
