//! The local server: the API on a TCP listener until Ctrl-C or SIGTERM.
//!
//! Connections are served by hyper's HTTP/1 server directly rather than through `axum::serve`,
//! for two things it does not do ([`Connections`]): a timer, without which hyper has no header
//! read timeout, and a bound on a stop. A client that opens a connection and never finishes its
//! request head (a slow-headers attack, or a client that died mid-request), or one that never
//! reads its answers, would otherwise hold the connection, its task and its file descriptor for
//! ever, and a stop would wait for it for ever too.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceExt as _};

/// How the local server treats its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connections {
    idle_timeout: Duration,
    stop_grace: Duration,
}

impl Connections {
    /// How long a connection may go without a complete request head by default: longer than the
    /// idle timeout of the proxies that keep connections to a server open (an Application Load
    /// Balancer's is 60 s), which must be the ones to close an idle connection, or a request they
    /// send just as the server closes it fails.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);

    /// `idle_timeout`: how long a connection may go without a complete request head, kept alive
    /// between requests or in the middle of sending one; past it the connection is closed.
    /// `stop_grace`: how long a stop lets a connection finish the request under way (write its
    /// answer to a client that reads it); past it the connection is closed.
    pub fn new(idle_timeout: Duration, stop_grace: Duration) -> Self {
        Self {
            idle_timeout,
            stop_grace,
        }
    }

    /// `CRM_IDLE_TIMEOUT_MS`, and a grace of the request deadline and a second more.
    pub fn from_config(config: &crate::Config) -> Self {
        Self::new(
            config.idle_timeout(),
            config.request_deadline() + Duration::from_secs(1),
        )
    }
}

impl Default for Connections {
    /// [`Self::DEFAULT_IDLE_TIMEOUT`], and the default request deadline and a second more.
    fn default() -> Self {
        Self::from_config(&crate::Config::default())
    }
}

/// Serves `api` on `listener` until Ctrl-C or SIGTERM, with the [`Connections`] defaults; see
/// [`serve_with`].
///
/// # Errors
/// As [`serve_with`].
pub async fn serve<S>(listener: TcpListener, api: S) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    serve_with(listener, api, Connections::default()).await
}

/// Serves `api` on `listener` until Ctrl-C or SIGTERM; requests in flight then finish before
/// this returns, each within `connections`' stop grace. `api` is [`crate::api`]'s service, or any
/// `Router` (an application that nests [`crate::router`] in its own).
///
/// # Errors
/// None today: a failed accept (out of file descriptors, say) is waited out, not returned. The
/// `Result` is kept for the errors a listener may yet report.
pub async fn serve_with<S>(
    listener: TcpListener,
    api: S,
    connections: Connections,
) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(connections.idle_timeout);
    let grace = connections.stop_grace;
    // Every connection holds a receiver; the sender learns when the last one is dropped.
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                wait_out(&error).await;
                continue;
            }
        };
        let api = api.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            api.clone().oneshot(request.map(Body::new))
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                // An error is the client's: gone, a malformed or slow request head.
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|stop| *stop) => {}
            }
            // Finish the request under way, if any, then close; within the grace, since a client
            // that does not read its answer would hold the write for ever.
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(grace, connection).await;
            drop(stop);
        });
    }
    drop(listener);
    stopping.send_replace(true);
    drop(stop);
    stopping.closed().await;
    Ok(())
}

/// After a failed accept: nothing for an error of the one connection (it reset before it was
/// accepted), else a second, as the failure (no file descriptor left, no memory) may last.
async fn wait_out(error: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::warn!(error = %error, "cannot accept a connection; trying again in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Binds `address`, with an error that names it.
///
/// # Errors
/// When the address cannot be bound (in use, not local, not permitted).
pub async fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {address}: {e}")))
}

/// Resolves on Ctrl-C or SIGTERM (Ctrl-C only off Unix): what stops [`serve`], and what a command
/// line that must stop cleanly can wait on too.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
