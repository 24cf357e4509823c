//! The local server: the API on a TCP listener until Ctrl-C or SIGTERM.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use axum::ServiceExt as _;
use axum::extract::Request;
use axum::response::Response;
use tokio::net::TcpListener;
use tower::Service;

/// Serves `api` on `listener` until Ctrl-C or SIGTERM; requests in flight then finish before
/// this returns. `api` is [`crate::api`]'s service, or any `Router` (an application that nests
/// [`crate::router`] in its own).
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve<S>(listener: TcpListener, api: S) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    axum::serve(listener, api.into_make_service())
        .with_graceful_shutdown(shutdown_signal())
        .await
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
