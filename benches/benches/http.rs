//! One full request through the HTTP application, in process (no socket), over the memory store
//! holding 10,000 customers (`crm_http::api`, as the local server serves it): what the routes, validation, the service and the store cost together;
//! for a GET, also with the request log on (into a sink), for what making its line costs.

use std::hint::black_box;
use std::sync::Arc;

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use crm_benches::full_customer;
use crm_domain::{Customer, CustomerRepository, CustomerService};
use crm_http::{Api, AppState, Config};
use crm_memory::InMemoryCustomerRepository;
use http::Request;
use tower::ServiceExt as _;

fn api(runtime: &tokio::runtime::Runtime) -> (Api, Vec<Customer>) {
    let repository = Arc::new(InMemoryCustomerRepository::new());
    let customers: Vec<Customer> = (0..10_000).map(full_customer).collect();
    runtime.block_on(async {
        let report = repository.put_many(&customers).await;
        assert!(report.is_ok_and(|r| r.created == customers.len()));
    });
    let config =
        Config::from_vars(std::iter::empty::<(String, String)>()).unwrap_or_else(|e| panic!("{e}"));
    (
        crm_http::api(AppState::new(CustomerService::new(repository), &config)),
        customers,
    )
}

async fn send(api: &Api, request: Request<Body>) -> u16 {
    match api.clone().oneshot(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the body, as a client would.
            let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            status
        }
        Err(never) => match never {},
    }
}

fn requests(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let (api, customers) = api(&runtime);
    let id = customers[5_000].id().to_string();
    // A bench of the wrong answer would measure nothing: check each request once first.
    runtime.block_on(async {
        let get = Request::get(format!("/customers/{id}"))
            .body(Body::empty())
            .unwrap_or_default();
        let list = Request::get("/customers?limit=25")
            .body(Body::empty())
            .unwrap_or_default();
        assert_eq!((send(&api, get).await, send(&api, list).await), (200, 200));
    });
    let mut group = c.benchmark_group("http request in process");

    let get = |b: &mut criterion::Bencher<'_>| {
        b.to_async(&runtime).iter(|| {
            send(
                &api,
                Request::get(format!("/customers/{id}"))
                    .body(Body::empty())
                    .unwrap_or_default(),
            )
        });
    };
    group.bench_function("GET /customers/{id}", &get);
    let create =
        serde_json::json!({"firstName": "Ada", "lastName": "Lovelace", "phone": "+442071234567",
        "address": {"line1": "12 St James's Square", "city": "London", "country": "GB"}})
        .to_string();
    group.bench_function("POST /customers", |b| {
        b.to_async(&runtime).iter(|| {
            let request = Request::post("/customers")
                .header("content-type", "application/json")
                .body(Body::from(create.clone()))
                .unwrap_or_default();
            send(&api, black_box(request))
        });
    });
    let patch = r#"{"firstName": "Augusta", "address": {"city": null}}"#;
    runtime.block_on(async {
        let request = Request::patch(format!("/customers/{id}"))
            .header("content-type", "application/merge-patch+json")
            .body(Body::from(patch))
            .unwrap_or_default();
        assert_eq!(send(&api, request).await, 200);
        let request = Request::post("/customers")
            .header("content-type", "application/json")
            .body(Body::from(create.clone()))
            .unwrap_or_default();
        assert_eq!(send(&api, request).await, 201);
    });
    group.bench_function("PATCH /customers/{id}", |b| {
        b.to_async(&runtime).iter(|| {
            let request = Request::patch(format!("/customers/{id}"))
                .header("content-type", "application/merge-patch+json")
                .body(Body::from(patch))
                .unwrap_or_default();
            send(&api, request)
        });
    });
    group.bench_function("GET /customers?limit=25", |b| {
        b.to_async(&runtime).iter(|| {
            send(
                &api,
                Request::get("/customers?limit=25")
                    .body(Body::empty())
                    .unwrap_or_default(),
            )
        });
    });
    // Last, the GET with the servers' logs on at `info`, written into a sink: what the request's
    // span and its log line cost to make, without the write to stdout. (Last: the interest of the
    // log sites stays as this subscriber set it, so a bench after it would build spans and events
    // for nothing; rebuilt anyway.)
    tracing::subscriber::with_default(
        crm_http::telemetry::subscriber("info", std::io::sink),
        || group.bench_function("GET /customers/{id}, request log at info into a sink", &get),
    );
    tracing::callsite::rebuild_interest_cache();
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
