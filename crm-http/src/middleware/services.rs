//! The layers of [`super::wrap`] as `tower` services with futures of their own.
//!
//! axum's `from_fn` is the short way to write a layer, but each call boxes the layer's future and
//! clones the boxed service behind it, and every `Router::layer` boxes the route again: the three
//! layers this module replaced cost a GET by id 26 of its 71 allocations. These services call
//! the next one directly and wrap its future in a named one, so the whole stack around the router
//! is one type that the outer router boxes once.

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
        // `None`: the call itself panicked.
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
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Ok(ApiError::Panicked.into_response()));
        };
        // A panicking future is not polled again: the answer is ready once it has panicked.
        let response = match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(Ok(response)))) => response,
            Ok(Poll::Ready(Ok(Err(never)))) => match never {},
            Ok(Poll::Ready(Err(_elapsed))) => {
                ApiError::DeadlineExceeded(*this.limit).into_response()
            }
            Err(_panic) => ApiError::Panicked.into_response(),
        };
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
