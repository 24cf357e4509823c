//! Requests in flight across an outage, against a server that answers only when a test lets it.
//!
//! A crash test takes the server down at a quiet moment: it starts an outage, waits for
//! [`FaultProxy::idle`], then kills the server. These tests hold a request inside a stand-in
//! server (no DynamoDB needed) to prove the two promises that makes safe: `idle` waits for every
//! request the server is working on, even one whose client gave up, and the reply of such a
//! request, arriving during the outage, is lost rather than answered.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fault_proxy::FaultProxy;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};

/// A server that reports each request it receives, then answers it once a permit is released.
struct HeldServer {
    address: SocketAddr,
    received: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
}

async fn held_server() -> HeldServer {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    let (tell, received) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let permits = Arc::clone(&release);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (tell, permits) = (tell.clone(), Arc::clone(&permits));
            let service = hyper::service::service_fn(move |_: Request<Incoming>| {
                let (tell, permits) = (tell.clone(), Arc::clone(&permits));
                async move {
                    tell.send(()).unwrap();
                    permits.acquire().await.unwrap().forget();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    HeldServer {
        address,
        received,
        release,
    }
}

/// Sends one `PutItem`-like request through the proxy on a connection of its own.
async fn send(proxy: &FaultProxy) -> Result<Response<Incoming>, hyper::Error> {
    let stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post("/")
        .header("host", "dynamodb")
        .header("x-amz-target", "DynamoDB_20120810.PutItem")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    sender.send_request(request).await
}

/// Whether `idle` resolves within a moment. A "no" is asserted only while the server holds a
/// request, where no slowness of the machine can turn it into a false pass; a "yes" only when
/// nothing was ever sent, where `idle` resolves on its first poll.
async fn idle_now(proxy: &FaultProxy) -> bool {
    tokio::time::timeout(Duration::from_millis(200), proxy.idle())
        .await
        .is_ok()
}

#[tokio::test]
async fn an_outage_loses_the_reply_of_a_request_the_server_is_working_on() {
    let mut server = held_server().await;
    let proxy = FaultProxy::start(server.address).await.unwrap();
    assert!(idle_now(&proxy).await, "nothing is in flight yet");

    let client = tokio::spawn({
        let proxy = proxy.clone();
        async move { send(&proxy).await }
    });
    server.received.recv().await.unwrap();
    proxy.set_outage(true);
    assert!(
        !idle_now(&proxy).await,
        "idle while the server works on a request"
    );
    let refused = send(&proxy).await;
    assert!(refused.is_err(), "a new request is refused: {refused:?}");

    server.release.add_permits(1);
    proxy.idle().await;
    let lost = client.await.unwrap();
    assert!(
        lost.is_err(),
        "the reply arrived during the outage and is lost: {lost:?}"
    );
    let stats = proxy.stats();
    assert_eq!(stats.forwarded, 1, "{stats:?}");
    assert_eq!(stats.faults_of("outage-reply"), 1, "{stats:?}");
    assert_eq!(stats.faults_of("outage"), 1, "{stats:?}");

    proxy.set_outage(false);
    let answered = tokio::spawn({
        let proxy = proxy.clone();
        async move { send(&proxy).await }
    });
    server.received.recv().await.unwrap();
    server.release.add_permits(1);
    let answered = answered.await.unwrap().expect("answered after the outage");
    assert_eq!(answered.status(), 200);
    assert_eq!(
        answered.into_body().collect().await.unwrap().to_bytes(),
        "{}"
    );
}

#[tokio::test]
async fn a_request_stays_in_flight_until_the_server_answers_even_when_its_client_gave_up() {
    let mut server = held_server().await;
    let proxy = FaultProxy::start(server.address).await.unwrap();

    let client = tokio::spawn({
        let proxy = proxy.clone();
        async move { send(&proxy).await }
    });
    server.received.recv().await.unwrap();
    // The client gives up, as the SDK does when its attempt times out: its connection closes.
    client.abort();
    assert!(client.await.unwrap_err().is_cancelled());
    assert!(
        !idle_now(&proxy).await,
        "idle while the server still works on the abandoned request"
    );

    server.release.add_permits(1);
    proxy.idle().await;
    assert_eq!(proxy.stats().forwarded, 1);
}
