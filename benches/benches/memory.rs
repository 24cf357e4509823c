//! The in-memory repository at 10,000 and 1,000,000 customers: get, patch and delete must cost the
//! same at both sizes, and a page of 25 must cost by the page, not by the store.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crm_benches::full_customer;
use crm_domain::{Customer, CustomerPatch, CustomerRepository, PageLimit, Timestamp};
use crm_memory::InMemoryCustomerRepository;
use serde_json::json;

const SIZES: [usize; 2] = [10_000, 1_000_000];

fn store(
    size: usize,
    runtime: &tokio::runtime::Runtime,
) -> (InMemoryCustomerRepository, Vec<Customer>) {
    let repo = InMemoryCustomerRepository::new();
    let customers: Vec<Customer> = (0..size).map(full_customer).collect();
    runtime.block_on(async {
        for chunk in customers.chunks(10_000) {
            let _ = repo.put_many(chunk).await;
        }
    });
    (repo, customers)
}

fn operations(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("memory repository");
    let patch = CustomerPatch::from_json(&json!({"firstName": "Augusta"})).unwrap_or_default();
    for size in SIZES {
        let (repo, customers) = store(size, &runtime);
        let middle = customers[size / 2].clone();
        group.bench_with_input(BenchmarkId::new("get", size), &middle, |b, c| {
            b.to_async(&runtime).iter(|| repo.get(black_box(c.id())));
        });
        group.bench_with_input(BenchmarkId::new("patch", size), &middle, |b, c| {
            b.to_async(&runtime)
                .iter(|| repo.update(black_box(c.id()), &patch, None, Timestamp::now()));
        });
        group.bench_with_input(
            BenchmarkId::new("delete and re-create", size),
            &middle,
            |b, c| {
                b.to_async(&runtime).iter(|| async {
                    let _ = repo.delete(black_box(c.id()), None).await;
                    repo.create(c).await
                });
            },
        );
        group.bench_with_input(
            BenchmarkId::new("list first page of 25", size),
            &(),
            |b, ()| {
                b.to_async(&runtime)
                    .iter(|| repo.list(PageLimit::DEFAULT, None));
            },
        );
        let cursor = runtime.block_on(async {
            let mut page = repo.list(PageLimit::MAX, None).await.ok()?;
            for _ in 0..(size / 200) {
                page = repo
                    .list(PageLimit::MAX, page.next_cursor.as_ref())
                    .await
                    .ok()?;
            }
            page.next_cursor
        });
        group.bench_with_input(
            BenchmarkId::new("list a middle page of 25", size),
            &cursor,
            |b, cursor| {
                b.to_async(&runtime)
                    .iter(|| repo.list(PageLimit::DEFAULT, cursor.as_ref()));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, operations);
criterion_main!(benches);
