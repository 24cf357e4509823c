//! The proxy: accepts connections, forwards requests, injects the decided faults.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::fault::{Fault, Injector, Policy, Stats};

/// A fault-injecting HTTP/1 proxy in front of DynamoDB (Local).
///
/// Clones share one proxy. It stops, closing its listener and every connection, on
/// [`shutdown`](Self::shutdown) or when the last clone is dropped. It must be started, and
/// live, inside a Tokio runtime.
#[derive(Clone, Debug)]
pub struct FaultProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    address: SocketAddr,
    shared: Arc<Shared>,
    /// `true`, or dropped with the last handle, stops every task of the proxy.
    stop: watch::Sender<bool>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    injector: Mutex<Injector>,
    /// Woken whenever a request in flight ends.
    settled: Notify,
}

impl Shared {
    fn injector(&self) -> MutexGuard<'_, Injector> {
        // The state stays consistent even if a holder panicked: every update is one statement.
        self.injector.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` (a free port) and forwards to `upstream` (e.g. `127.0.0.1:8000`).
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            upstream,
            injector: Mutex::new(Injector::default()),
            settled: Notify::new(),
        });
        tokio::spawn(accept(listener, Arc::clone(&shared), stopped));
        Ok(Self {
            inner: Arc::new(Inner {
                address,
                shared,
                stop,
            }),
        })
    }

    /// The URL to give the SDK as its endpoint: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.inner.address)
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.address
    }

    /// Random faults from now on, replacing the previous policy and restarting the random
    /// sequence from the policy's seed; [`Policy::none`] turns them off.
    pub fn set_policy(&self, policy: Policy) {
        self.inner.shared.injector().set_policy(policy);
    }

    /// A one-shot fault for the next request whose operation is `operation` (e.g. `"PutItem"`,
    /// as in `x-amz-target`). Queued in order, each consumed by one request; it takes precedence
    /// over the policy.
    pub fn inject_next(&self, operation: &str, fault: Fault) {
        self.inner.shared.injector().inject_next(operation, fault);
    }

    /// While `down`, every request, on new and open connections alike, is refused as if the
    /// server were down: its connection is closed without forwarding (counted as `"outage"`).
    /// A request forwarded before the outage began still completes on the server, but its reply,
    /// arriving during the outage, is lost (counted as `"outage-reply"`). Queued one-shot faults
    /// wait until the outage ends.
    pub fn set_outage(&self, down: bool) {
        self.inner.shared.injector().set_outage(down);
    }

    /// Starts an outage as [`set_outage(true)`](Self::set_outage) does, but only at a moment
    /// when the server is working on a request, whose reply is then lost; whether it did. A crash
    /// test calls it until it does, so that every crash costs at least one client a reply.
    pub fn set_outage_while_busy(&self) -> bool {
        self.inner.shared.injector().set_outage_while_busy()
    }

    /// Resolves once no forwarded request awaits its reply. During an outage no new request is
    /// let through (those let through just before it may still be on their way, and are waited
    /// for), so this is then the quiet moment to crash the server for real: everything that
    /// reached it has finished there (a transaction whole, as DynamoDB commits it), and its
    /// client has seen a lost reply, not an answer.
    pub async fn idle(&self) {
        let shared = &self.inner.shared;
        loop {
            // Created before the check, so a request ending in between still wakes it.
            let settled = shared.settled.notified();
            if shared.injector().in_flight() == 0 {
                return;
            }
            settled.await;
        }
    }

    /// Faults injected so far, by kind and by operation, and requests forwarded.
    pub fn stats(&self) -> Stats {
        self.inner.shared.injector().stats()
    }

    /// Stops the proxy now: the listener and every connection close, for all clones.
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
    }
}

/// Resolves once the proxy is stopped (or its last handle dropped).
async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone: stopped as well.
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            () = stopped(stop.clone()) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                tokio::spawn(serve(client, Arc::clone(&shared), stop.clone()));
            }
            // Out of file descriptors and the like: let it pass rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The upstream connection of one client connection, `None` until first used.
type Upstream = Arc<Mutex<Option<SendRequest<Full<Bytes>>>>>;

async fn serve(client: TcpStream, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let _ = client.set_nodelay(true);
    let upstream = Upstream::default();
    let service = hyper::service::service_fn(move |request| {
        forward(Arc::clone(&shared), Arc::clone(&upstream), request)
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(client), service);
    tokio::select! {
        // An error is the client going away, or a fault closing the connection on purpose.
        _ = connection => {}
        () = stopped(stop) => {}
    }
}

/// Why the proxy closes a client's connection instead of answering; hyper only logs it.
#[derive(Debug)]
struct Closed(&'static str);

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection closed by the fault proxy: {}", self.0)
    }
}

impl std::error::Error for Closed {}

/// One request: decide its fault, forward it unless reset, then answer, late, or not at all.
async fn forward(
    shared: Arc<Shared>,
    upstream: Upstream,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Closed> {
    let operation = operation(request.headers()).to_owned();
    let fault = shared.injector().decide(&operation);
    if fault == Some(Fault::Reset) {
        return Err(Closed("reset before forwarding"));
    }
    let in_flight = InFlight {
        shared: Arc::clone(&shared),
        operation: operation.clone(),
        ended: false,
    };

    let (mut head, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| Closed("client body"))?
        .to_bytes();
    remove_hop_by_hop(&mut head.headers);
    let request = Request::from_parts(head, Full::new(body));
    // The exchange runs on its own, so that a client giving up (its attempt timeout) does not
    // cut it short: the request stays in flight until the server has answered it.
    let exchange = tokio::spawn(async move {
        let reply = exchange(&in_flight.shared, &upstream, request).await?;
        if in_flight.reply_arrived() {
            return Err(Closed("reply lost to the outage"));
        }
        Ok(reply)
    });
    let (mut head, body) = exchange
        .await
        .map_err(|_| Closed("exchange task failed"))??;

    match fault {
        Some(Fault::DropReply) => return Err(Closed("reply dropped")),
        // The client has usually given up meanwhile: the write then fails and ends the
        // connection, which nobody needs to hear about.
        Some(Fault::DelayReply(delay)) => {
            tokio::time::sleep(delay).await;
            if shared.injector().lost_to_outage(&operation) {
                return Err(Closed("reply lost to the outage"));
            }
        }
        Some(Fault::Reset) | None => {}
    }
    remove_hop_by_hop(&mut head.headers);
    Ok(Response::from_parts(head, Full::new(body)))
}

/// Sends `request` on the client connection's upstream connection (or a new one) and reads the
/// whole reply.
async fn exchange(
    shared: &Shared,
    upstream: &Upstream,
    request: Request<Full<Bytes>>,
) -> Result<(hyper::http::response::Parts, Bytes), Closed> {
    // The connection of the previous request, if it is still open; else a new one.
    let cached = upstream
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let mut sender = match cached {
        Some(sender) => sender,
        None => connect(shared.upstream).await?,
    };
    if sender.ready().await.is_err() {
        sender = connect(shared.upstream).await?;
    }
    let reply = match sender.try_send_request(request).await {
        Ok(reply) => reply,
        // DynamoDB Local closed the idle connection before the request went out (hyper hands
        // the request back only then): resend it on a new connection, nothing was forwarded.
        Err(mut error) => {
            let request = error
                .take_message()
                .ok_or(Closed("upstream request failed"))?;
            sender = connect(shared.upstream).await?;
            sender
                .send_request(request)
                .await
                .map_err(|_| Closed("upstream request failed"))?
        }
    };
    let (head, body) = reply.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| Closed("upstream body"))?
        .to_bytes();
    // Only a connection that completed an exchange is reused.
    *upstream.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
    Ok((head, body))
}

/// A request counted in flight until its reply arrives or it is given up.
struct InFlight {
    shared: Arc<Shared>,
    operation: String,
    ended: bool,
}

impl InFlight {
    /// The reply arrived: `true` when an outage began meanwhile and the reply must be lost.
    fn reply_arrived(mut self) -> bool {
        self.ended = true;
        let lost = self.shared.injector().reply_arrived(&self.operation);
        self.shared.settled.notify_waiters();
        lost
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.ended {
            self.shared.injector().abandoned();
            self.shared.settled.notify_waiters();
        }
    }
}

/// The operation named by `x-amz-target: DynamoDB_20120810.<Operation>`; `""` without one.
fn operation(headers: &HeaderMap) -> &str {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    target
        .rsplit_once('.')
        .map_or(target, |(_, operation)| operation)
}

/// Headers about one connection, or about a body framing the proxy redoes (it forwards whole
/// bodies, with the length hyper sets).
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::EXPECT,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// A new upstream connection, ready for a request.
async fn connect(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Closed> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|_| Closed("upstream unreachable"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Closed("upstream handshake"))?;
    // Ends when the connection closes, or when the sender is dropped with the client's.
    tokio::spawn(connection);
    sender
        .ready()
        .await
        .map_err(|_| Closed("upstream not ready"))?;
    Ok(sender)
}
