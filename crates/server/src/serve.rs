//! `fastcore-security serve`: the library's auth router over the built-in
//! users table, behind the HTTP hygiene layers a real deployment needs.
//!
//! [`app`] builds the router (tests use it in-process); [`serve`] is the
//! command: configuration, database, optional demo user, listener, and the
//! connections served within their limits until a graceful shutdown
//! ([`crate::connections`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::{Request, StatusCode, header};
use axum::{Router, middleware};
use fastcore_security::http::{metrics_router, openapi_router};
use fastcore_security::{
    AuthState, CookieConfig, CookieSameSite, Environment, PasswordHasher, Security, SecurityConfig,
    ValidationMode, auth_router, redact_url,
};
use rand::Rng as _;
use rand::distr::Alphanumeric;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::LatencyUnit;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};

use crate::cli::{PurgeInterval, ServeArgs};
use crate::connections::{fit_max_connections_to_fd_limit, serve_connections};
use crate::database::{Backend, DEFAULT_DATABASE_URL, Database, OpenOptions, sqlite_file};
use crate::problem::{DEFAULT_BODY_TIMEOUT, problem, problem_responses};
use crate::purge::spawn_background_purge;
use crate::users::{Authenticator, Users};

/// Largest request body the server reads. The auth endpoints refuse bodies
/// over 16 KiB themselves; this cap also covers any route added later.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request that takes longer than this is answered with 503, so a
/// saturated hashing pool cannot pin connections forever. (A client that
/// stalls its body gets 408 sooner: see [`DEFAULT_BODY_TIMEOUT`].)
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the user `--demo` creates on an empty database.
pub const DEMO_USERNAME: &str = "demo";

/// The server's router: the library's auth endpoints (`/auth/login`,
/// `/auth/refresh`, `/auth/logout`, `/auth/logout-all`, `/auth/logout-others`,
/// `/auth/sessions`, `/auth/me`, `/health`), the public keys
/// (`/.well-known/jwks.json`, empty unless the key file has RSA, EC or
/// Ed25519 keys), the OpenAPI description of all of them (`/openapi.json`)
/// and the Prometheus metrics (`/metrics`), with request tracing, a body
/// size limit, a body deadline ([`DEFAULT_BODY_TIMEOUT`]) and a request timeout.
///
/// Tracing records the method, the matched route, the client address, the
/// status and the latency, never headers, query strings or bodies: those carry tokens and
/// passwords. `Authorization` and `Cookie` are also marked sensitive, so any
/// layer that does print headers shows them redacted.
pub fn app(security: Security, users: Arc<Authenticator>) -> Router {
    app_with_body_timeout(security, users, DEFAULT_BODY_TIMEOUT)
}

/// [`app`], with a request body that takes longer than `body_timeout` to
/// arrive answered with 408.
///
/// Every error response is a problem+json body (see [`crate::problem`]),
/// including those of the layers here: 405 (with `Allow`), 413 over the
/// server's body limit, 408 for a stalled body, 503 for a request that takes
/// longer than [`REQUEST_TIMEOUT`].
pub fn app_with_body_timeout(
    security: Security,
    users: Arc<Authenticator>,
    body_timeout: Duration,
) -> Router {
    app_with_options(security, users, body_timeout, None)
}

/// [`app_with_body_timeout`], with the refresh cookie for browser apps
/// when `cookies` is given (see [`CookieConfig`]).
pub fn app_with_options(
    security: Security,
    users: Arc<Authenticator>,
    body_timeout: Duration,
    cookies: Option<CookieConfig>,
) -> Router {
    app_with_routes(security, users, body_timeout, cookies, Router::new())
}

/// [`app_with_options`], with `routes` (an application's own, or the
/// HTTP benchmark's) served beside the auth endpoints, behind the same
/// layers.
pub fn app_with_routes(
    security: Security,
    users: Arc<Authenticator>,
    body_timeout: Duration,
    cookies: Option<CookieConfig>,
    routes: Router,
) -> Router {
    let mut state = AuthState::new(security.clone(), users);
    if let Some(cookies) = cookies {
        state = state.with_cookies(cookies);
    }
    // Every auth route the server answers is in the description it serves.
    let spec = crate::openapi::spec();
    auth_router(state)
        .merge(openapi_router(&spec))
        .merge(metrics_router(security))
        .merge(routes)
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn_with_state(
            body_timeout,
            problem_responses,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Millis),
                ),
        )
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
}

/// Unknown routes get the same problem+json shape as every other error.
async fn not_found() -> axum::response::Response {
    problem(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The span of one request: method, route and client address. The route is
/// the matched pattern, not the raw URI: the URI's query string (and, for a
/// request to a route that does not exist, its path) is client input that
/// may hold a token. The client address (from [`ConnectInfo`], `-` when the
/// router is served without it) makes failed logins from one address easy
/// to spot; the username is never logged.
fn request_span(request: &Request<Body>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str);
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |ConnectInfo(addr)| addr.to_string());
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %route,
        client = %client
    )
}

/// Runs `fastcore-security serve` until Ctrl-C or SIGTERM.
pub async fn serve(
    database_url: &str,
    options: &OpenOptions,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let config = config_from_env(database_url, args)?;
    let cookies = cookie_config(args)?;
    let db = Database::open_with(database_url, options).await?;
    tracing::info!(
        database = %redact_url(database_url),
        backend = db.backend().name(),
        redis_prefix = (db.backend() == Backend::Redis).then_some(options.redis_prefix.as_str()),
        "database ready"
    );
    let security = db.security(config)?;
    let config = security.config();
    let keys = security.codec().keys();
    tracing::info!(
        algorithm = ?config.algorithm(),
        keys_file = config.keys_file().map(|p| p.display().to_string()),
        active_kid = keys.active().kid(),
        verifying_keys = keys.keys().len(),
        published_keys = security.jwks().keys.len(),
        access_token_ttl_s = config.access_token_ttl().as_secs(),
        refresh_token_ttl_s = config.refresh_token_ttl().as_secs(),
        audience = config.audience().unwrap_or("-"),
        issuer = config.issuer().unwrap_or("-"),
        development_secret = config.uses_generated_secret(),
        "security configured"
    );
    // The store's own throttle: instances sharing the database share it.
    tracing::info!(
        store = security.login_throttle().backend(),
        max_failures_per_account = config.login_max_failures_per_account(),
        max_failures_per_address = config.login_max_failures_per_address(),
        window_s = config.login_throttle_window().as_secs(),
        keyed = security.throttle_keys().is_keyed(),
        failure_floor_ms =
            u64::try_from(config.login_failure_floor().as_millis()).unwrap_or(u64::MAX),
        "login throttle"
    );
    tracing::info!(
        mode = config.validation_mode().as_str(),
        sync_interval_ms = (config.validation_mode() == ValidationMode::Synced)
            .then(|| config.sync_interval().as_millis()),
        "token validation"
    );
    let users = db.users();
    let authenticator = Arc::new(Authenticator::new(
        users.clone(),
        security.passwords().clone(),
    ));

    let listener = TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    if args.demo {
        ensure_demo_user(&users, security.passwords(), addr, database_url).await?;
    }
    // The unknown-user dummy hash, made now so the first such login costs
    // the same as every later one.
    security.passwords().warm_up().await?;
    let mut limits = args.connection_limits();
    limits.max_connections = fit_max_connections_to_fd_limit(limits.max_connections);
    tracing::info!(
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        body_timeout_s = args.body_timeout.as_secs_f64(),
        shutdown_timeout_s = limits.shutdown_timeout.as_secs_f64(),
        "connection limits"
    );
    let signal = shutdown_signal()?;
    let (stop_purge, purge_stopped) = watch::channel(false);
    let purge = match args.purge_interval {
        PurgeInterval(Some(interval)) => {
            tracing::info!(
                interval_s = interval.as_secs_f64(),
                batch = args.purge_batch,
                "purging expired token records in the background"
            );
            Some(spawn_background_purge(
                Arc::clone(security.store()),
                Arc::clone(security.login_throttle()),
                interval,
                args.purge_batch,
                purge_stopped,
            ))
        }
        PurgeInterval(None) => {
            tracing::info!("background purge is off (--purge-interval 0)");
            None
        }
    };
    let shutdown = async move {
        signal.await;
        let _ = stop_purge.send(true);
    };
    tracing::info!("listening on http://{addr}");
    let router = app_with_options(security, authenticator, args.body_timeout, cookies);
    serve_connections(listener, router, limits, shutdown).await;
    if let Some(purge) = purge {
        stop_background_purge(purge).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits briefly for the background purge to notice the stop (it abandons
/// a purge in progress), then aborts it.
async fn stop_background_purge(purge: tokio::task::JoinHandle<()>) {
    let abort = purge.abort_handle();
    if tokio::time::timeout(Duration::from_secs(2), purge)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// The security configuration from the environment (the seed's variable
/// names), with the login throttle flags of `args` over the environment's.
/// With `--demo`, a missing `JWT_SECRET_KEY` is replaced by a random
/// development secret. Demo mode is refused when the environment says
/// production (the library refuses the generated secret there; this also
/// refuses the demo user).
/// The refresh cookie `--refresh-cookie` asks for, checked at start-up.
pub fn cookie_config(args: &ServeArgs) -> anyhow::Result<Option<CookieConfig>> {
    if !args.refresh_cookie {
        if !args.allowed_origins.is_empty() {
            anyhow::bail!("--allowed-origin (FASTCORE_ALLOWED_ORIGINS) needs --refresh-cookie");
        }
        return Ok(None);
    }
    let same_site = match args.refresh_cookie_same_site.as_str() {
        "lax" => CookieSameSite::Lax,
        _ => CookieSameSite::Strict,
    };
    let cookies = CookieConfig::builder()
        .same_site(same_site)
        .allowed_origins(args.allowed_origins.iter().map(|o| o.trim().to_owned()))
        .build()?;
    tracing::info!(
        name = cookies.name(),
        path = cookies.path(),
        same_site = ?cookies.same_site(),
        allowed_origins = ?cookies.allowed_origins(),
        "refresh cookie on"
    );
    Ok(Some(cookies))
}

fn config_from_env(database_url: &str, args: &ServeArgs) -> anyhow::Result<SecurityConfig> {
    let demo = args.demo;
    let mut builder = SecurityConfig::builder_from_env()?;
    if let Some(max) = args.login_max_failures_per_account {
        builder = builder.login_max_failures_per_account(max);
    }
    if let Some(max) = args.login_max_failures_per_address {
        builder = builder.login_max_failures_per_address(max);
    }
    if let Some(window) = args.login_throttle_window {
        builder = builder.login_throttle_window(window);
    }
    if let Some(mode) = args.validation_mode {
        builder = builder.validation_mode(mode);
    }
    if let Some(interval) = args.sync_interval {
        builder = builder.sync_interval(interval);
    }
    let production =
        Environment::from_lookup(|name| std::env::var(name).ok()) == Environment::Production;
    if demo && production {
        anyhow::bail!(
            "--demo is not allowed when the environment is production ({} says so); \
             add users with `fastcore-security users add`",
            Environment::VARIABLES.join("/")
        );
    }
    let suggest_demo = !builder.has_secret() && !builder.has_keys() && !demo && !production;
    let config = builder
        .database_url(database_url)
        .generate_development_secret(demo)
        .build();
    match config {
        Ok(config) => Ok(config),
        Err(err) if suggest_demo => Err(anyhow::anyhow!(
            "{err} (or try it out with `fastcore-security serve --demo`, which uses a \
             throw-away development secret)"
        )),
        Err(err) => Err(err.into()),
    }
}

/// On an empty users table, creates the `demo` user with a random password
/// and prints the credentials once, on standard output (never through the
/// log, which may be shipped elsewhere). Only the hash is stored, so they
/// cannot be shown again: on a database that already has users, says on
/// standard output, where the credentials would have been, how to get back in.
async fn ensure_demo_user(
    users: &Users,
    hasher: &PasswordHasher,
    addr: SocketAddr,
    database_url: &str,
) -> anyhow::Result<()> {
    if users.count().await? > 0 {
        tracing::info!("--demo: the database already has users; not creating the demo user");
        out!("{}", existing_users_notice(database_url))?;
        return Ok(());
    }
    let password: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    let hash = hasher.hash(&password).await?;
    users.create(DEMO_USERNAME, &hash).await?;
    out!("{}", demo_banner(&local_url(addr), &password))?;
    Ok(())
}

/// The credentials `serve --demo` prints: the password once, alone on its
/// line (easy to select, and in no command line that shell history or a
/// terminal log would keep), and the commands to log in, which read it
/// from `$PW`.
fn demo_banner(url: &str, password: &str) -> String {
    let rule = "=".repeat(72);
    format!(
        "{rule}\n\
         Demo user created.\n\
         \n\
         \x20   username: {DEMO_USERNAME}\n\
         \x20   password (shown only this once, on the next line):\n\
         {password}\n\
         \n\
         Log in: put the password in PW (read -rs keeps it off the screen and out\n\
         of your shell history; paste it and press Enter), then:\n\
         \x20   read -rs PW\n\
         \x20   curl -s {url}/auth/login -d username={DEMO_USERNAME} --data-urlencode \"password=$PW\"\n\
         {rule}\n"
    )
}

/// What `serve --demo` prints instead of credentials when the database
/// already has users: the password shown the first time cannot be shown
/// again, so how to add a user or start over.
fn existing_users_notice(database_url: &str) -> String {
    let option = if database_url == DEFAULT_DATABASE_URL {
        String::new()
    } else {
        format!(" --database-url '{}'", redact_url(database_url))
    };
    let start_over = match sqlite_file(database_url) {
        Some(file) => format!(
            "    stop the server, delete {} (and its -wal and -shm files),\n\
             \x20   then run `fastcore-security serve --demo{option}` again.",
            file.display()
        ),
        None => "    restart the server on an empty database.".to_owned(),
    };
    let rule = "=".repeat(72);
    format!(
        "{rule}\n\
         --demo: the database already has users, so no demo user was created.\n\
         The demo password is shown only once, when the user is created.\n\
         \n\
         Lost it? Add a user of your own:\n\
         \x20   fastcore-security users add NAME{option}\n\
         (from a source checkout: cargo run --release -- users add NAME{option})\n\
         or start over with an empty database (this deletes every user and token):\n\
         {start_over}\n\
         {rule}\n"
    )
}

/// A URL a local client can reach `addr` on (`0.0.0.0` is not connectable).
fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Listens for Ctrl-C and SIGTERM; the returned future resolves on either,
/// and the server then stops accepting connections and finishes the
/// requests in flight (within `--shutdown-timeout`).
///
/// The handlers are installed here, before the server says it is listening:
/// a signal that arrives between "listening" and the first poll of a lazily
/// registered handler would otherwise kill the process the hard way.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutting down: finishing the requests in flight");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %err, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            tracing::info!("shutting down: finishing the requests in flight");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_url_replaces_unspecified_addresses() {
        let any: SocketAddr = "0.0.0.0:8000".parse().unwrap();
        assert_eq!(local_url(any), "http://127.0.0.1:8000");
        let any6: SocketAddr = "[::]:8000".parse().unwrap();
        assert_eq!(local_url(any6), "http://[::1]:8000");
        let lo: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(local_url(lo), "http://127.0.0.1:9");
    }

    #[test]
    fn the_demo_banner_shows_the_password_once_on_its_own_line() {
        let password = "Xq7vB2nR9kLm4pT8wZ3yA6cD";
        let banner = demo_banner("http://127.0.0.1:8000", password);
        assert_eq!(banner.matches(password).count(), 1, "{banner}");
        assert!(banner.lines().any(|line| line == password), "{banner}");
        let login = banner
            .lines()
            .find(|line| line.contains("curl"))
            .expect("a login command");
        assert!(
            login.contains("http://127.0.0.1:8000/auth/login"),
            "{login}"
        );
        assert!(login.contains("username=demo"), "{login}");
        assert!(login.contains("\"password=$PW\""), "{login}");
        assert!(banner.contains("    read -rs PW\n"), "{banner}");
    }

    #[test]
    fn the_existing_users_notice_says_how_to_get_back_in() {
        let notice = existing_users_notice(DEFAULT_DATABASE_URL);
        assert!(notice.contains("already has users"), "{notice}");
        assert!(
            notice.contains("    fastcore-security users add NAME\n"),
            "{notice}"
        );
        assert!(
            notice.contains("cargo run --release -- users add NAME)\n"),
            "{notice}"
        );
        assert!(notice.contains("delete fastcore-security.db"), "{notice}");

        let notice = existing_users_notice("sqlite:///srv/auth/users.db?mode=rwc");
        assert!(
            notice.contains("users add NAME --database-url 'sqlite:///srv/auth/users.db?mode=rwc'"),
            "{notice}"
        );
        assert!(
            notice.contains("delete /srv/auth/users.db (and"),
            "{notice}"
        );
        // Starting over must use the same database, not the default one.
        assert!(
            notice.contains(
                "`fastcore-security serve --demo --database-url 'sqlite:///srv/auth/users.db?mode=rwc'` again"
            ),
            "{notice}"
        );
        assert!(
            existing_users_notice(DEFAULT_DATABASE_URL)
                .contains("`fastcore-security serve --demo` again"),
        );
    }
}
