//! What every handler shares: the service and the few settings the edge needs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crm_domain::CustomerService;

use crate::config::{Config, CorsOrigins};

/// The state of the router: built once per cold start, cloned cheaply into every request.
#[derive(Clone)]
pub struct AppState {
    service: CustomerService,
    settings: Arc<Settings>,
}

#[derive(Clone)]
struct Settings {
    table_label: String,
    request_deadline: Duration,
    compat_list_cap: usize,
    cors_origins: CorsOrigins,
    stage_prefixes: bool,
    docs: bool,
    #[cfg(feature = "prometheus")]
    prometheus: Option<crate::metrics::PrometheusHandle>,
}

impl AppState {
    /// State over `service`, with the edge settings of `config` (deadline, CORS, the envelope's table
    /// name, the `/Customers` cap, the docs page). The service holds an idempotency key for at least twice the
    /// request deadline, so that a request that runs to its deadline keeps its key to the end.
    pub fn new(service: CustomerService, config: &Config) -> Self {
        let hold = service.key_hold().max(config.request_deadline() * 2);
        Self {
            service: service.with_key_hold(hold),
            settings: Arc::new(Settings {
                table_label: config.table_label().to_owned(),
                request_deadline: config.request_deadline(),
                compat_list_cap: config.compat_list_cap(),
                cors_origins: config.cors_origins().clone(),
                stage_prefixes: true,
                docs: config.docs(),
                #[cfg(feature = "prometheus")]
                prometheus: None,
            }),
        }
    }

    /// The same state for a router that serves its routes only at their own paths: no stage or
    /// base-path prefix is stripped (see [`router`](crate::router)).
    ///
    /// For an application that nests the router under a mount of its own and keeps rules of its
    /// own by path inside that mount: with prefixes on, `/crm/anything/customers` is served as
    /// `/crm/customers`, so a rule keyed on `/crm/anything/…` would not see what it expects.
    /// Behind API Gateway (REST APIs, named stages, custom domains) keep them on.
    #[must_use]
    pub fn without_stage_prefixes(mut self) -> Self {
        Arc::make_mut(&mut self.settings).stage_prefixes = false;
        self
    }

    /// The same state with `GET /metrics` serving `handle`'s Prometheus text (see
    /// [`crate::metrics`]). `crm-server` does this when `CRM_METRICS=prometheus`, after
    /// [`install_prometheus`](crate::metrics::install_prometheus).
    ///
    /// The route has no authentication of its own: the local server binds `127.0.0.1` unless
    /// `CRM_BIND` says otherwise, and a host application puts it behind its own layers, as it
    /// does the API (or serves its own recorder at a path of its own instead).
    #[cfg(feature = "prometheus")]
    #[must_use]
    pub fn with_prometheus(mut self, handle: crate::metrics::PrometheusHandle) -> Self {
        Arc::make_mut(&mut self.settings).prometheus = Some(handle);
        self
    }

    /// The handle `GET /metrics` renders, if any.
    #[cfg(feature = "prometheus")]
    pub fn prometheus(&self) -> Option<&crate::metrics::PrometheusHandle> {
        self.settings.prometheus.as_ref()
    }

    /// The customer service.
    pub fn service(&self) -> &CustomerService {
        &self.service
    }

    /// The only `tableName` the `DynamoDBManager` envelope accepts.
    pub fn table_label(&self) -> &str {
        &self.settings.table_label
    }

    /// How long one request may take.
    pub fn request_deadline(&self) -> Duration {
        self.settings.request_deadline
    }

    /// How many customers `GET /Customers` returns at most.
    pub fn compat_list_cap(&self) -> usize {
        self.settings.compat_list_cap
    }

    /// The origins CORS allows.
    pub fn cors_origins(&self) -> &CorsOrigins {
        &self.settings.cors_origins
    }

    /// Whether a stage or base-path prefix before a route is stripped (the default).
    pub fn stage_prefixes(&self) -> bool {
        self.settings.stage_prefixes
    }

    /// Whether the router serves the API docs page at `GET /docs` ([`Config::docs`]).
    pub fn docs(&self) -> bool {
        self.settings.docs
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("AppState");
        debug
            .field("table_label", &self.settings.table_label)
            .field("request_deadline", &self.settings.request_deadline)
            .field("compat_list_cap", &self.settings.compat_list_cap)
            .field("stage_prefixes", &self.settings.stage_prefixes)
            .field("docs", &self.settings.docs);
        #[cfg(feature = "prometheus")]
        debug.field("metrics_route", &self.settings.prometheus.is_some());
        debug.finish_non_exhaustive()
    }
}
