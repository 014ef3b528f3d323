//! The API's listener: the accept loop and the limits that hold at the door, before any request
//! reaches the router.
//!
//! - **Header-read timeout**: a client must send a request's head (request line and headers)
//!   within this time of connecting or of the previous answer, or the connection is closed. It
//!   closes idle keep-alive connections as well as slow-header ("slowloris") ones.
//! - **Idle timeout**: a connection on which no byte moved in either direction for this long is
//!   closed, whatever it was doing (a client that stopped reading an answer, say).
//! - **Connection cap**: at most `max_connections` client connections are served at once; past
//!   it a new connection is answered `503 connections_exhausted` (problem+json) and closed, and a
//!   warning is logged at most once per [`REFUSAL_LOG_INTERVAL`]. Accept errors (such as running
//!   out of file descriptors) are logged the same way and never spin the loop.
//! - **Head size**: hyper reads at most [`HEAD_BUFFER_BYTES`] of a request head and 100 header
//!   lines; a longer head is answered with hyper's bare `431` and the connection closed. Heads
//!   within that buffer but above the API's own limits are answered as problem+json by
//!   [`crate::limits`].
//!
//! Shutdown is graceful: the listener closes, every connection finishes the request it is
//! answering (idle ones close at once), and the server waits for them at most [`DRAIN_TIMEOUT`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The largest request head hyper buffers (and the most a connection's read buffer grows to):
/// the memory a connection can pin is bounded by it.
pub const HEAD_BUFFER_BYTES: usize = 64 * 1024;

/// The most often a full connection table or an accept error is logged.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long a shutdown waits for open connections to finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection cap when none is configured and the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// File descriptors kept for everything but client connections (store pool, delivery
/// connections, files) when the cap is derived from the open-file limit.
const RESERVED_FDS: u64 = 1024;

/// Refused connections answered at once; past this many, a refused connection is closed
/// without an answer (each answer holds its descriptor for up to [`REFUSAL_LINGER`]).
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// How long a refused connection is kept to deliver its `503` before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// The status and problem code of the answer to a connection past the cap.
pub const REFUSAL_PROBLEM: (StatusCode, &str) =
    (StatusCode::SERVICE_UNAVAILABLE, "connections_exhausted");

/// The answer to a connection past the cap ([`REFUSAL_PROBLEM`] as problem+json).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 201\r\n\
\r\n\
{\"type\":\"https://hookline.dev/problems/connections_exhausted\",\"title\":\"Service Unavailable\",\"status\":503,\"code\":\"connections_exhausted\",\"detail\":\"the server has too many open connections; retry later\"}";

/// The listen backlog asked for: connections the kernel completes before the server accepts
/// them (capped by `net.core.somaxconn` on Linux). A burst of connections larger than the
/// backlog sees some of them dropped by the kernel and retried by the client.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` for [`serve`], with address reuse and a backlog of [`LISTEN_BACKLOG`].
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The limits of the accept loop.
#[derive(Debug, Clone)]
pub struct DoorConfig {
    /// Time allowed for a request head, from the connection's opening or the previous answer.
    pub header_read_timeout: Duration,
    /// A connection with no byte moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// Most client connections at once.
    pub max_connections: usize,
}

/// The connection cap that fits the process's open-file limit: [`DEFAULT_MAX_CONNECTIONS`], or
/// the soft limit less a reserve for the store, deliveries and files when that is lower. The
/// soft limit is first raised to the hard one (as far as the system allows).
pub fn default_max_connections() -> usize {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        if let Ok(raised) = rlimit::increase_nofile_limit(u64::MAX) {
            tracing::debug!(limit = raised, "open-file limit");
        }
        if let Ok((soft, _)) = Resource::NOFILE.get() {
            let usable = soft.saturating_sub(RESERVED_FDS).max(soft / 2).max(16);
            return usize::try_from(usable)
                .unwrap_or(usize::MAX)
                .min(DEFAULT_MAX_CONNECTIONS);
        }
    }
    DEFAULT_MAX_CONNECTIONS
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains (see the module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: DoorConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(HEAD_BUFFER_BYTES)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let max = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT));
    let mut refused_log = Throttle::default();
    let mut accept_log = Throttle::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, or another resource: wait a little for connections
                // to close rather than spin.
                if let Some(suppressed) = accept_log.tick() {
                    tracing::warn!(error = %e, suppressed, "accept error");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Some(suppressed) = refused_log.tick() {
                tracing::warn!(
                    max_connections = max,
                    refused_since_last_warning = suppressed,
                    "connection limit reached: refusing new connections (see --max-connections)"
                );
            }
            metrics::counter!("hookline_connections_refused_total").increment(1);
            refuse(stream, &refusals);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let app = app.clone();
        let shutdown = shutdown.clone();
        let idle = config.idle_timeout;
        tokio::spawn(async move {
            connection(stream, &builder, app, idle, shutdown).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back means every connection closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = max - permits.available_permits(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    Ok(())
}

/// Serves one connection until it ends, times out idle, or finishes after a shutdown.
async fn connection(
    stream: TcpStream,
    builder: &http1::Builder,
    app: Router,
    idle: Duration,
    shutdown: CancellationToken,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let conn = builder.serve_connection(io, TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(activity.last() + idle) => {
                if activity.last() + idle <= Instant::now() {
                    tracing::debug!(?idle, "closing a connection idle for the idle timeout");
                    return;
                }
            }
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers a connection past the cap with [`REFUSAL`] and closes it, without holding up the
/// accept loop; when too many refusals are in flight already, closes it at once.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(slot) = refusals.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = stream;
        let answer = async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            // Read what the client sent until it closes, so that closing does not reset the
            // connection before the client has read the answer.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
        drop(slot);
    });
}

/// Errors of one connection that `accept` reports and that say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Lets a repeated warning through at most once per [`REFUSAL_LOG_INTERVAL`], counting the
/// ones held back.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// `Some(held back since the last one)` when the warning may be logged now.
    fn tick(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < REFUSAL_LOG_INTERVAL => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// When bytes last moved on a connection.
#[derive(Debug, Clone)]
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A stream that records when bytes move.
#[derive(Debug)]
struct Watched<T> {
    inner: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_problem_document_of_the_length_it_says() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], REFUSAL_PROBLEM.1);
        assert_eq!(v["status"], REFUSAL_PROBLEM.0.as_u16());
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    }

    #[test]
    fn the_throttle_lets_one_warning_through_per_interval() {
        let mut t = Throttle::default();
        assert_eq!(t.tick(), Some(0));
        assert_eq!(t.tick(), None);
        assert_eq!(t.tick(), None);
        t.last = Some(Instant::now() - REFUSAL_LOG_INTERVAL);
        assert_eq!(t.tick(), Some(2));
    }
}
