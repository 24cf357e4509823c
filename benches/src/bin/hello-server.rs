//! `hello-server`: the machine's reference ceiling for the load harness (`benches/load.sh`).
//!
//! A bare hyper 1.x HTTP/1.1 server that answers `200 hello` to every request, with nothing between
//! the socket and the answer. It is served the way `axum::serve` serves `crm-server`, so that the two
//! differ only by what the customers API does per request: the same multi-threaded tokio runtime
//! (`#[tokio::main]`, one worker per core), one task per connection, hyper-util's connection builder
//! over `TokioExecutor`, keep-alive on.
//!
//! `hello-server [ADDRESS]` listens on `ADDRESS` (default `127.0.0.1:3001`) until killed.

use std::convert::Infallible;
use std::process::ExitCode;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;

const BODY: &[u8] = b"hello";

#[tokio::main]
async fn main() -> ExitCode {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    match serve(&address).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hello-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(address: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    announce(&listener.local_addr()?.to_string());
    loop {
        // A transient accept error (EMFILE, a connection reset before accept) must not stop the
        // server; axum::serve does the same.
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|_request: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(BODY))))
            });
            // A client that goes away mid-request is not an error of the server.
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[expect(
    clippy::print_stdout,
    reason = "the one start-up line the harness waits for"
)]
fn announce(address: &str) {
    println!("hello-server listening on http://{address}");
}
