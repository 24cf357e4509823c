//! The layers of [`super::wrap`] as `tower` services with futures of their own.
//!
//! axum's `from_fn` is the short way to write a layer, but each call boxes the layer's future and
//! clones the boxed service behind it, and every `Router::layer` boxes the route again: the layers
//! this module replaced (with tower-http's panic catcher) cost a GET by id 26 of its 71 allocations. These services call
//! the next one directly and wrap its future in a named one, so the whole stack around the router
//! is one type, boxed once (by [`crate::router`]'s `Router`, or by [`crate::api`]).

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::instrument::Instrumented;

use super::{PlatformContext, REQUEST_ID};
use crate::error::ApiError;

/// The route template of the request, filled in by [`RecordRoute`] once the router has matched
/// (the template's own shared string: no copy).
#[derive(Clone, Default)]
pub(super) struct RouteSlot(Arc<OnceLock<MatchedPath>>);

impl RouteSlot {
    /// The template, once a route matched.
    fn template(&self) -> Option<&str> {
        self.0.get().map(MatchedPath::as_str)
    }
}

/// Copies the matched route template into the request's [`RouteSlot`]: a layer on the routes
/// themselves, where axum's `MatchedPath` exists.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RecordRouteLayer;

impl<S> Layer<S> for RecordRouteLayer {
    type Service = RecordRoute<S>;

    fn layer(&self, inner: S) -> RecordRoute<S> {
        RecordRoute { inner }
    }
}

/// The service of [`RecordRouteLayer`].
#[derive(Clone, Debug)]
pub(crate) struct RecordRoute<S> {
    inner: S,
}

impl<S: Service<Request>> Service<Request> for RecordRoute<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> S::Future {
        if let (Some(slot), Some(path)) = (
            request.extensions().get::<RouteSlot>(),
            request.extensions().get::<MatchedPath>(),
        ) {
            let _ = slot.0.set(path.clone());
        }
        self.inner.call(request)
    }
}

/// The panic catcher and the deadline: a panic while the request is served becomes a 500
/// problem (the panic hook has logged where it happened, never its message); a request not
/// answered in time becomes a 503 problem with `Retry-After`.
#[derive(Clone, Copy, Debug)]
pub(super) struct GuardLayer {
    /// The configured deadline, shortened by a platform's ([`PlatformContext::time_limit`]).
    pub(super) deadline: Duration,
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            deadline: self.deadline,
        }
    }
}

/// The service of [`GuardLayer`].
#[derive(Clone, Debug)]
pub(super) struct Guard<S> {
    inner: S,
    deadline: Duration,
}

impl<S> Service<Request> for Guard<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Guarded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let limit = request
            .extensions()
            .get::<PlatformContext>()
            .map_or(self.deadline, |context| context.time_limit(self.deadline));
        let inner = catch_unwind(AssertUnwindSafe(|| self.inner.call(request)))
            .ok()
            .map(|future| tokio::time::timeout(limit, future));
        Guarded { inner, limit }
    }
}

pin_project! {
    /// The future of [`Guard`]: the router's, under the deadline, each poll under the catcher.
    pub(super) struct Guarded<F> {
        // `None`: the call itself panicked, or the answer is given.
        #[pin]
        inner: Option<tokio::time::Timeout<F>>,
        limit: Duration,
    }
}

impl<F> Future for Guarded<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // `None` once answered too, which no caller polls again.
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Ok(ApiError::Panicked.into_response()));
        };
        let response = match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(Ok(response)))) => response,
            Ok(Poll::Ready(Ok(Err(never)))) => match never {},
            Ok(Poll::Ready(Err(_elapsed))) => {
                ApiError::DeadlineExceeded(*this.limit).into_response()
            }
            Err(_panic) => ApiError::Panicked.into_response(),
        };
        // The router's future is dropped now, as an awaited timeout drops it, before the log line:
        // what it holds (a store's connection, say) is given back at once, and a future that
        // panicked is never polled again. Its drop may panic too, which changes nothing here.
        let _ = catch_unwind(AssertUnwindSafe(|| this.inner.set(None)));
        Poll::Ready(Ok(response))
    }
}

/// The request log line and metrics, outermost: see [`super::wrap`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RequestLogLayer;

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;

    fn layer(&self, inner: S) -> RequestLog<S> {
        RequestLog { inner }
    }
}

/// The service of [`RequestLogLayer`].
#[derive(Clone, Debug)]
pub(super) struct RequestLog<S> {
    inner: S,
}

impl<S, B> Service<Request> for RequestLog<S>
where
    S: Service<Request, Response = http::Response<B>>,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = super::request_id(&request);
        let trace_id = super::trace_id(&request);
        let method = request.method().clone();
        let slot = RouteSlot::default();
        request.extensions_mut().insert(slot.clone());
        // Fields as `&str`, not `%`: a string is recorded as it is, where `Display` goes through
        // `core::fmt` into a new `String` first.
        let span = tracing::info_span!(
            target: super::TARGET,
            "request",
            request_id = request_id.as_str(),
            trace_id = trace_id.as_deref()
        );
        // With spans exported (the feature `otel` and an endpoint; one atomic load otherwise), the
        // span continues the caller's trace, and keeps a handle to record the outcome on.
        #[cfg(feature = "otel")]
        let exported = crate::otel::enabled().then(|| {
            crate::otel::adopt(&span, super::remote_parent(&request));
            span.clone()
        });
        // The call runs in the span too: what the layers under this one do before their first
        // await is part of the request.
        let inner = span.in_scope(|| self.inner.call(request)).instrument(span);
        Logged {
            inner,
            done: Some(Done {
                started,
                request_id,
                trace_id,
                method,
                slot,
                #[cfg(feature = "otel")]
                exported,
            }),
        }
    }
}

/// What the log line needs once the response is there.
struct Done {
    started: Instant,
    request_id: String,
    trace_id: Option<String>,
    method: Method,
    slot: RouteSlot,
    #[cfg(feature = "otel")]
    exported: Option<tracing::Span>,
}

pin_project! {
    /// The future of [`RequestLog`].
    pub(super) struct Logged<F> {
        #[pin]
        inner: Instrumented<F>,
        done: Option<Done>,
    }
}

impl<F, B, E> Future for Logged<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let mut response = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
        };
        if let Some(done) = this.done.take() {
            done.log(&mut response);
        }
        Poll::Ready(Ok(response))
    }
}

impl Done {
    /// Records the request's metrics, writes its log line and names its id in the response.
    fn log<B>(self, response: &mut http::Response<B>) {
        let elapsed = self.started.elapsed();
        let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let template = self.slot.template();
        let route = template.unwrap_or(crate::metrics::UNMATCHED_ROUTE);
        let status = response.status().as_u16();
        crate::metrics::record_request(route, &self.method, status, elapsed);
        #[cfg(feature = "otel")]
        if let Some(span) = &self.exported {
            crate::otel::answered(span, &self.method, template, status);
        }
        // Outside the span: the line names its request id itself, and inside it the JSON formatter
        // would repeat the id in a `span` object, a quarter of the line (222 instead of 298 bytes per
        // line in benches/load.sh; CloudWatch bills logs by the byte). Events inside the request keep
        // the span, and so the request id.
        tracing::info!(
            target: super::TARGET,
            request_id = self.request_id.as_str(),
            trace_id = self.trace_id.as_deref(),
            method = self.method.as_str(),
            route,
            status,
            latency_ms,
            "request"
        );
        // The id's own buffer becomes the header's: no copy.
        if let Ok(value) = HeaderValue::from_maybe_shared(axum::body::Bytes::from(self.request_id))
        {
            response.headers_mut().insert(REQUEST_ID, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use axum::body::Body;
    use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
    use http::{Request, StatusCode};
    use tower::{ServiceBuilder, ServiceExt as _};

    use super::*;
    use crate::config::CorsOrigins;

    /// The layers around `inner` as [`super::super::wrap`] puts them, with CORS for any origin and a
    /// deadline of 50 ms; the answer to a GET from an origin.
    async fn answer<S>(inner: S) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let stack = ServiceBuilder::new()
            .layer(RequestLogLayer)
            .option_layer(super::super::cors_layer(&CorsOrigins::Any))
            .layer(GuardLayer {
                deadline: Duration::from_millis(50),
            })
            .service(inner);
        let request = Request::get("/customers/ada")
            .header(ORIGIN, "https://app.example.com")
            .body(Body::empty())
            .unwrap();
        stack.oneshot(request).await.unwrap()
    }

    /// A router that panics in `call`, before any future exists.
    fn panics_in_call(_: Request<Body>) -> std::future::Ready<Result<Response, Infallible>> {
        panic!("in call");
    }

    fn never_answers(_: Request<Body>) -> impl Future<Output = Result<Response, Infallible>> {
        std::future::pending()
    }

    fn assert_answered_for_the_browser(response: &Response, status: StatusCode) {
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(response.headers().contains_key(super::super::REQUEST_ID));
    }

    #[tokio::test]
    async fn a_panic_in_the_call_itself_is_a_500_with_cors_and_the_request_id() {
        let response = answer(tower::service_fn(panics_in_call)).await;
        assert_answered_for_the_browser(&response, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_panic_while_polled_is_a_500_with_cors_and_the_request_id() {
        let response = answer(tower::service_fn(|_: Request<Body>| async {
            panic!("while polled");
        }))
        .await;
        assert_answered_for_the_browser(&response, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_a_503_with_cors_and_the_request_id() {
        let response = answer(tower::service_fn(never_answers)).await;
        assert_answered_for_the_browser(&response, StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(http::header::RETRY_AFTER));
    }

    /// Counts its drops.
    struct Tracked(Arc<std::sync::atomic::AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_router_s_future_is_dropped_as_soon_as_the_answer_is_given() {
        let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let held = Arc::clone(&dropped);
        let inner = tower::service_fn(move |_: Request<Body>| {
            let tracked = Tracked(Arc::clone(&held));
            async move {
                let _tracked = tracked;
                std::future::pending::<Result<Response, Infallible>>().await
            }
        });
        let mut guarded = std::pin::pin!(
            Guard {
                inner,
                deadline: Duration::from_millis(20),
            }
            .call(Request::get("/").body(Body::empty()).unwrap())
        );
        let response = std::future::poll_fn(|cx| guarded.as_mut().poll(cx)).await;
        assert_eq!(response.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        // The `Guarded` future itself is still alive here.
        assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
