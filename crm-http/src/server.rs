//! The local server: the router on a TCP listener until Ctrl-C or SIGTERM.

use std::io;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

/// Serves `router` on `listener` until Ctrl-C or SIGTERM; requests in flight then finish before
/// this returns.
///
/// # Errors
/// When accepting connections fails for good.
pub async fn serve(listener: TcpListener, router: Router) -> io::Result<()> {
    axum::serve(listener, router)
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
