//! Serving the router over TCP with the connection limits `axum::serve`
//! lacks: with it, a client that sent half a request head and stopped, or
//! kept an idle keep-alive connection, held a connection (and a file
//! descriptor) forever, a few hundred of them made the server stop
//! accepting, and one of them kept graceful shutdown waiting forever.
//!
//! [`serve_connections`] runs HTTP/1.1 (hyper; HTTP/2 is not offered) on
//! each accepted connection and closes it when it overstays:
//!
//! - **header timeout**: a request's head (request line and headers) must be
//!   complete this long after the connection was accepted, or after its
//!   first byte when it follows an earlier request on the same connection;
//! - **idle timeout**: a keep-alive connection may wait this long after a
//!   response for the first byte of the next request;
//! - **max connections**: at most this many connections are served at once;
//!   beyond that, new ones wait in the listen backlog until one closes
//!   (`serve` first fits the cap to the open-file limit:
//!   [`fit_max_connections_to_fd_limit`]);
//! - **shutdown timeout**: on shutdown the listener closes at once, idle
//!   connections and ones with a half-received request head are closed, the
//!   requests in progress get this long to finish, and whatever is still
//!   open after that is dropped.
//!
//! Request bodies and handlers have their own limits inside the router
//! (see [`crate::serve::app`]). Each request carries axum's
//! [`ConnectInfo<SocketAddr>`] with the client's address.
//!
//! A request hyper cannot parse (a head over its buffer or with too many
//! headers: 431; a URI too long: 414; anything malformed: 400) never
//! reaches the router; hyper answers it with an empty body and closes the
//! connection. The stream each connection is served over swaps that answer,
//! as hyper writes it, for a problem+json one with the same status
//! ([`crate::problem::parse_error_response`]), so every error the server
//! sends has the same shape.

use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::problem::parse_error_response;

/// How long a client may take to send a request head (see the module docs).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a keep-alive connection may wait for its next request. Longer
/// than the 60 s idle timeout common to reverse proxies and load balancers,
/// so that they, not this server, close their pooled connections first.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// How many connections are served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// How long shutdown waits for the requests in progress.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to pause after an accept error that is not about one
/// connection (such as running out of file descriptors), so the loop does
/// not spin.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// At most one "connection limit reached" warning per this long.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// File descriptors kept for everything but client connections: standard
/// streams, the listener, the runtime's own, and the SQLite pool (up to 8
/// connections with a database, a WAL and a shared-memory file each).
pub const RESERVED_FDS: usize = 64;

/// How many of `requested` connections an open-file limit of `fd_limit`
/// leaves room for, after [`RESERVED_FDS`] (at least half the limit, at
/// least one).
pub fn connections_within_fd_limit(requested: usize, fd_limit: u64) -> usize {
    let limit = usize::try_from(fd_limit).unwrap_or(usize::MAX);
    let room = limit.saturating_sub(RESERVED_FDS).max(limit / 2).max(1);
    requested.min(room)
}

/// Makes room for `max_connections` in the process's open-file limit: raises
/// the soft limit as far as needed (up to the hard limit, as Go's runtime
/// does at start), and if that is not enough, lowers the connection cap to
/// fit, with a warning. Otherwise, past the limit, accept fails with "Too
/// many open files" while the cap has not been reached. Returns the cap to use.
pub fn fit_max_connections_to_fd_limit(max_connections: usize) -> usize {
    #[cfg(unix)]
    {
        let wanted = max_connections.saturating_add(RESERVED_FDS);
        match rlimit::increase_nofile_limit(u64::try_from(wanted).unwrap_or(u64::MAX)) {
            Ok(fd_limit) => {
                let fitted = connections_within_fd_limit(max_connections, fd_limit);
                if fitted < max_connections {
                    tracing::warn!(
                        requested = max_connections,
                        open_file_limit = fd_limit,
                        using = fitted,
                        "--max-connections is more than the open-file limit allows; raise the \
                         limit (ulimit -n, or LimitNOFILE= under systemd) to serve more"
                    );
                }
                fitted
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read or raise the open-file limit");
                max_connections
            }
        }
    }
    #[cfg(not(unix))]
    {
        max_connections
    }
}

/// The limits [`serve_connections`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed for a request head.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections served at once (at least 1).
    pub max_connections: usize,
    /// Time shutdown waits for the requests in progress.
    pub shutdown_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// Serves `router` on the connections `listener` accepts, within `limits`,
/// until `shutdown` resolves; then shuts down as the module docs describe
/// and returns once every connection is closed.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let max_connections = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut warned_full: Option<Instant> = None;

    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if warned_full.is_none_or(|at| at.elapsed() >= FULL_WARNING_INTERVAL) {
                    tracing::warn!(
                        max_connections,
                        "connection limit reached: new connections wait until one closes \
                         (see serve --max-connections)"
                    );
                    warned_full = Some(Instant::now());
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, client)) => {
                connections.spawn(serve_connection(
                    stream,
                    client,
                    router.clone(),
                    limits,
                    stopping.clone(),
                    permit,
                ));
            }
            Err(err) if is_per_connection_error(&err) => {}
            Err(err) => {
                tracing::error!(error = %err, "cannot accept connections; retrying shortly");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_RETRY) => {}
                }
            }
        }
        while let Some(done) = connections.try_join_next() {
            report_panic(done);
        }
    }

    drop(listener);
    // Receivers may all be gone already; nothing to tell then.
    let _ = stop.send(true);
    if !connections.is_empty() {
        tracing::info!(
            open = connections.len(),
            timeout_s = limits.shutdown_timeout.as_secs_f64(),
            "waiting for the requests in progress"
        );
    }
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while let Some(done) = connections.join_next().await {
            report_panic(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            timeout_s = limits.shutdown_timeout.as_secs_f64(),
            "closing the connections still open after the shutdown timeout"
        );
        connections.shutdown().await;
    }
}

/// Accept errors about one connection (it was reset before it was
/// accepted); anything else is about the listener or the process.
fn is_per_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn report_panic(done: Result<(), tokio::task::JoinError>) {
    if matches!(done, Err(err) if err.is_panic()) {
        tracing::error!("a connection task panicked");
    }
}

/// Where a connection is in its life, and when it is closed if it stays
/// there. Shared by the stream (which sees bytes arrive) and the service
/// (which sees requests start and end) through a watch channel, which the
/// connection's watchdog follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request is being handled; the connection is closed at `deadline`
    /// unless a request head is complete by then.
    Waiting {
        deadline: Instant,
        /// Whether any byte of the next request has arrived.
        started: bool,
        /// What the deadline is about.
        limit: Limit,
    },
    /// A request head is in and the router is handling it.
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    /// The header timeout.
    Headers,
    /// The idle timeout.
    Idle,
}

impl Limit {
    fn reason(self) -> &'static str {
        match self {
            Limit::Headers => "the request headers did not arrive in time",
            Limit::Idle => "the keep-alive connection was idle too long",
        }
    }
}

/// The sending side of a connection's [`Phase`].
struct Activity {
    phase: watch::Sender<Phase>,
    limits: ConnectionLimits,
}

impl Activity {
    fn new(limits: ConnectionLimits) -> (Arc<Self>, watch::Receiver<Phase>) {
        let (phase, watching) = watch::channel(Phase::Waiting {
            deadline: Instant::now() + limits.header_timeout,
            started: false,
            limit: Limit::Headers,
        });
        (Arc::new(Self { phase, limits }), watching)
    }

    /// Bytes arrived. The first byte after a response starts the header
    /// timeout; on a new connection it runs from the accept already.
    fn bytes_read(&self) {
        let header_timeout = self.limits.header_timeout;
        self.phase.send_if_modified(|phase| match *phase {
            Phase::Waiting {
                started: false,
                limit: Limit::Idle,
                ..
            } => {
                *phase = Phase::Waiting {
                    deadline: Instant::now() + header_timeout,
                    started: true,
                    limit: Limit::Headers,
                };
                true
            }
            Phase::Waiting {
                started: false,
                deadline,
                limit: Limit::Headers,
            } => {
                *phase = Phase::Waiting {
                    deadline,
                    started: true,
                    limit: Limit::Headers,
                };
                true
            }
            Phase::Waiting { started: true, .. } | Phase::Busy => false,
        });
    }

    /// A request head is complete: no deadline here while it is handled.
    fn request_started(self: &Arc<Self>) -> RequestInProgress {
        self.phase.send_replace(Phase::Busy);
        RequestInProgress(Arc::clone(self))
    }
}

/// Marks the connection busy while alive; when dropped (the router has
/// answered, or the connection is gone), starts the idle timeout.
struct RequestInProgress(Arc<Activity>);

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        let idle_timeout = self.0.limits.idle_timeout;
        self.0.phase.send_replace(Phase::Waiting {
            deadline: Instant::now() + idle_timeout,
            started: false,
            limit: Limit::Idle,
        });
    }
}

/// Resolves, with the reason, when the connection must be closed now: a
/// deadline of [`Phase::Waiting`] passed, or shutdown began while a request
/// head was half received (a request that never arrived; idle connections
/// are closed by hyper's graceful shutdown, and requests in progress finish).
async fn watchdog(
    mut phase: watch::Receiver<Phase>,
    mut stopping: watch::Receiver<bool>,
) -> &'static str {
    loop {
        let current = *phase.borrow_and_update();
        let stop = *stopping.borrow_and_update();
        let deadline = match current {
            Phase::Waiting { started: true, .. } if stop => {
                return "shutting down: the request head was incomplete";
            }
            Phase::Waiting {
                deadline, limit, ..
            } => {
                if Instant::now() >= deadline {
                    return limit.reason();
                }
                Some(deadline)
            }
            Phase::Busy => None,
        };
        tokio::select! {
            () = sleep_until(deadline) => {}
            changed = phase.changed() => {
                if changed.is_err() {
                    // The connection is gone; its task ends without us.
                    std::future::pending::<()>().await;
                }
            }
            changed = stopping.changed(), if !stop => {
                if changed.is_err() {
                    // The server dropped the signal only after the deadline.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Serves one connection until the client or hyper closes it, or the
/// watchdog does. The permit frees the connection's slot when this ends.
async fn serve_connection(
    stream: TcpStream,
    client: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // Small responses go out at once rather than after a delayed ACK; a
    // failure only costs latency.
    let _ = stream.set_nodelay(true);
    let (activity, phase) = Activity::new(limits);
    let io = TokioIo::new(WatchedStream {
        inner: stream,
        activity: Arc::clone(&activity),
        replacement: None,
    });
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_progress = activity.request_started();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(client));
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(in_progress);
            response
        }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        // The watchdog enforces the header timeout, counted as the module
        // docs say (hyper's own would also count the idle wait between
        // requests, making the idle timeout at most the header timeout).
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut connection = pin!(connection);
    let mut watchdog = pin!(watchdog(phase, stopping.clone()));
    let mut graceful = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%client, error = %err, "connection closed with an error");
                }
                return;
            }
            reason = &mut watchdog => {
                tracing::debug!(%client, reason, "closing the connection");
                return;
            }
            _ = stopping.wait_for(|stop| *stop), if !graceful => {
                // Closes the connection if idle, or after the response in progress.
                connection.as_mut().graceful_shutdown();
                graceful = true;
            }
        }
    }
}

/// A TCP stream that tells its [`Activity`] when bytes arrive, and gives
/// hyper's own answer to a request it could not parse (an empty 400, 414
/// or 431) a problem body on its way out ([`parse_error_response`]).
struct WatchedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// The problem response written instead of hyper's answer, and how
    /// much of it has gone out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl WatchedStream {
    /// Takes `written` (hyper's whole buffer) in place of the socket when
    /// it is one of hyper's parse error answers: the problem response
    /// goes out instead, on the next writes and flushes.
    fn replaces(&mut self, written: &[u8]) -> bool {
        if self.replacement.is_some() {
            return false;
        }
        match parse_error_response(written) {
            Some(response) => {
                let status = written.get(9..12).map(String::from_utf8_lossy);
                tracing::debug!(
                    status = status.as_deref().unwrap_or("?"),
                    "answering a request that could not be parsed"
                );
                self.replacement = Some((response, 0));
                true
            }
            None => false,
        }
    }

    /// Writes out what is left of the replacement, if any.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.replacement {
            if *sent == bytes.len() {
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replaces(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut written = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (written.next(), written.next())
            && self.replaces(only)
        {
            return Poll::Ready(Ok(only.len()));
        }
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            ..ConnectionLimits::default()
        }
    }

    #[test]
    fn the_cap_leaves_room_for_the_reserved_descriptors() {
        assert_eq!(connections_within_fd_limit(4096, 1_048_576), 4096);
        assert_eq!(connections_within_fd_limit(4096, 4160), 4096);
        assert_eq!(connections_within_fd_limit(4096, 1024), 960);
        assert_eq!(connections_within_fd_limit(4096, 256), 192);
        assert_eq!(connections_within_fd_limit(4096, 100), 50);
        assert_eq!(connections_within_fd_limit(4096, 1), 1);
        assert_eq!(connections_within_fd_limit(10, u64::MAX), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_gets_the_header_timeout_from_accept() {
        let (activity, phase) = Activity::new(limits());
        let start = Instant::now();
        let (_stop, stopping) = watch::channel(false);
        let watching = tokio::spawn(watchdog(phase, stopping));
        tokio::time::sleep(Duration::from_secs(5)).await;
        // A first byte does not restart the clock.
        activity.bytes_read();
        let reason = watching.await.unwrap();
        assert_eq!(reason, Limit::Headers.reason());
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_response_the_idle_timeout_runs_until_the_next_byte() {
        let (activity, phase) = Activity::new(limits());
        let (_stop, stopping) = watch::channel(false);
        let watching = tokio::spawn(watchdog(phase, stopping));
        let request = activity.request_started();
        // However long the handler takes, no deadline applies.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(!watching.is_finished());
        drop(request);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let first_byte = Instant::now();
        activity.bytes_read();
        let reason = watching.await.unwrap();
        assert_eq!(reason, Limit::Headers.reason());
        assert_eq!(first_byte.elapsed(), Duration::from_secs(10));

        let (activity, phase) = Activity::new(limits());
        let (_stop, stopping) = watch::channel(false);
        drop(activity.request_started());
        let idle_since = Instant::now();
        let reason = watchdog(phase, stopping).await;
        assert_eq!(reason, Limit::Idle.reason());
        assert_eq!(idle_since.elapsed(), Duration::from_secs(75));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_a_half_received_head_at_once_but_not_a_request_in_progress() {
        let (activity, phase) = Activity::new(limits());
        let (stop, stopping) = watch::channel(false);
        let watching = tokio::spawn(watchdog(phase, stopping));
        let request = activity.request_started();
        stop.send(true).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!watching.is_finished(), "the request in progress finishes");
        drop(request);
        activity.bytes_read();
        let started = Instant::now();
        let reason = watching.await.unwrap();
        assert!(reason.starts_with("shutting down"), "{reason}");
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
