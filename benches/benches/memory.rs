//! The in-memory repository at 10,000 and 1,000,000 customers: the point operations (get, get by
//! email, create, patch, delete) must cost the same at both sizes, and a page (in every order, deep
//! in a walk, of a name search, of the change feed) must cost by the page, not by the store.
//!
//! The store is [`crm_benches::store::store`]'s: names drawn from many languages, one customer in
//! ten patched after the import, one in a hundred deleted. The point operations here repeat one
//! customer; `memory-flat` (benches/src/bin/memory-flat.rs) measures them over customers spread
//! across the store, with the two sizes alternated in short rounds, which cancels the machine's
//! drift out of the ratio.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use crm_benches::store::{patched_at, store};
use crm_domain::{
    Cursor, Customer, CustomerId, CustomerPatch, CustomerRepository, Listing, NamePrefix, Page,
    PageLimit, RepositoryError, SortOrder, Timestamp,
};
use crm_memory::InMemoryCustomerRepository;
use serde_json::json;

const SIZES: [usize; 2] = [10_000, 1_000_000];

/// The store sizes to build: both when benchmarking, the small one when `cargo test` runs each
/// bench once to check that it works (building a million customers in a debug build takes a
/// minute and a half and proves nothing more).
fn sizes() -> &'static [usize] {
    if std::env::args().any(|arg| arg == "--bench") {
        &SIZES
    } else {
        &SIZES[..1]
    }
}

/// The text the name-search benches look for: first and last names start with it (Maria, Marta,
/// Martínez, Marković, …), some customers both ways.
const SEARCH: &str = "mar";

/// Fails the bench unless `page` is a full page of 25 with a next one: what each listing bench
/// measures.
fn full<T>(page: Result<Page<T>, RepositoryError>, what: &str) -> Option<Cursor> {
    match page {
        Ok(page) if page.items.len() == 25 && page.next_cursor.is_some() => page.next_cursor,
        Ok(page) => panic!(
            "{what}: {} items, next page {}",
            page.items.len(),
            page.next_cursor.is_some()
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// A store of the bench, with the customers it was filled with.
struct Filled {
    size: usize,
    repo: InMemoryCustomerRepository,
    customers: Vec<Customer>,
    /// Neither patched nor deleted by the import (`size / 2` is a multiple of 100).
    middle: Customer,
}

fn operations(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("memory repository");
    // Every size built first, so that each operation is measured at every size back to back: the
    // ratio of two sizes then compares two measurements a few seconds apart, not minutes, on a
    // machine whose speed drifts.
    let stores: Vec<Filled> = sizes()
        .iter()
        .map(|&size| {
            let (repo, customers) = store(size);
            let middle = customers[size / 2].clone();
            Filled {
                size,
                repo,
                customers,
                middle,
            }
        })
        .collect();
    reads(&mut group, &runtime, &stores);
    let all = Listing::default();
    for Filled {
        size,
        repo,
        customers,
        ..
    } in &stores
    {
        let size = *size;
        group.bench_with_input(
            BenchmarkId::new("list first page of 25", size),
            &(),
            |b, ()| {
                b.to_async(&runtime)
                    .iter(|| repo.list(&all, PageLimit::DEFAULT, None));
            },
        );
        let cursor = walked_to(&runtime, repo, &all, size / 200);
        group.bench_with_input(
            BenchmarkId::new("list a middle page of 25", size),
            &cursor,
            |b, cursor| {
                b.to_async(&runtime)
                    .iter(|| repo.list(&all, PageLimit::DEFAULT, Some(cursor)));
            },
        );
        listings(&mut group, &runtime, repo, customers, size);
    }
    // The writes last: they change the middle customer that the pages above start from.
    writes(&mut group, &runtime, &stores);
    group.finish();
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Get by id and by email, each at every size in turn.
fn reads(group: &mut Group<'_>, runtime: &tokio::runtime::Runtime, stores: &[Filled]) {
    for Filled {
        size, repo, middle, ..
    } in stores
    {
        group.bench_with_input(BenchmarkId::new("get", size), middle, |b, c| {
            b.to_async(runtime).iter(|| repo.get(black_box(c.id())));
        });
    }
    // The benches here repeat one customer, whose memory the processor keeps close: they
    // measure what the code does per operation. Spread over the store, each get also waits
    // for memory, which a store of a million customers no longer fits in the caches for.
    for Filled {
        size,
        repo,
        customers,
        ..
    } in stores
    {
        let spread: Vec<CustomerId> = (0..64)
            // Each ends in 50: never patched (…3) or deleted (…37) by the import.
            .map(|k| customers[k * size / 64 / 100 * 100 + 50].id().clone())
            .collect();
        let mut turn = 0;
        group.bench_with_input(
            BenchmarkId::new("get, 64 customers across the store in turn", size),
            &spread,
            |b, ids| {
                b.to_async(runtime).iter(|| {
                    turn = (turn + 1) % ids.len();
                    repo.get(black_box(&ids[turn]))
                });
            },
        );
    }
    for Filled {
        size, repo, middle, ..
    } in stores
    {
        let email = middle
            .email()
            .cloned()
            .unwrap_or_else(|| panic!("every field is filled"));
        group.bench_with_input(
            BenchmarkId::new("get by email", size),
            &email,
            |b, email| {
                b.to_async(runtime)
                    .iter(|| repo.find_by_email(black_box(email)));
            },
        );
    }
}

/// Patch, delete and re-create, create, delete: each at every size in turn.
fn writes(group: &mut Group<'_>, runtime: &tokio::runtime::Runtime, stores: &[Filled]) {
    // A patch that renames nobody, as nearly all are: the names, and so their keys, stay. Each a
    // millisecond after the one before, as a client's patches are: each moves the customer's
    // entry in the `updatedAt` order (to its end). At `Timestamp::now()`, hundreds of patches a
    // millisecond would share one time, and all but the first leave that order alone, which no
    // real patch does.
    let patch = CustomerPatch::from_json(&json!({"phone": "+441234567890"})).unwrap_or_default();
    let mut now = Timestamp::now();
    for Filled {
        size, repo, middle, ..
    } in stores
    {
        group.bench_with_input(BenchmarkId::new("patch a phone", size), middle, |b, c| {
            b.to_async(runtime).iter(|| {
                now = now.after(Duration::from_millis(1));
                repo.update(black_box(c.id()), &patch, None, now)
            });
        });
    }
    for Filled {
        size, repo, middle, ..
    } in stores
    {
        group.bench_with_input(
            BenchmarkId::new("delete and re-create", size),
            middle,
            |b, c| {
                b.to_async(runtime).iter(|| async {
                    let _ = repo.delete(black_box(c.id()), None).await;
                    repo.create(c).await
                });
            },
        );
    }
    for Filled {
        size, repo, middle, ..
    } in stores
    {
        half(group, runtime, repo, middle, *size, true);
    }
    for Filled {
        size, repo, middle, ..
    } in stores
    {
        half(group, runtime, repo, middle, *size, false);
    }
}

/// One half of "delete and re-create" timed alone, the other half done untimed so that the store
/// keeps its size: the create of a customer whose id has a tombstone, or its delete.
fn half(
    group: &mut Group<'_>,
    runtime: &tokio::runtime::Runtime,
    repo: &InMemoryCustomerRepository,
    middle: &Customer,
    size: usize,
    create: bool,
) {
    let name = if create { "create" } else { "delete" };
    group.bench_with_input(BenchmarkId::new(name, size), middle, |b, c| {
        b.to_async(runtime).iter_custom(|iters| async move {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                if create {
                    let _ = repo.delete(c.id(), None).await;
                }
                let start = Instant::now();
                let done = if create {
                    repo.create(black_box(c)).await
                } else {
                    repo.delete(black_box(c.id()), None).await
                };
                timed += start.elapsed();
                assert!(done.is_ok(), "{name}: {done:?}");
                if !create {
                    let _ = repo.create(c).await;
                }
            }
            timed
        });
    });
}

/// The cursor after `pages` pages of 100 of `listing`, walked from the start as a client would.
fn walked_to(
    runtime: &tokio::runtime::Runtime,
    repo: &InMemoryCustomerRepository,
    listing: &Listing,
    pages: usize,
) -> Cursor {
    runtime.block_on(async {
        let mut cursor = None;
        for _ in 0..=pages {
            let page = repo.list(listing, PageLimit::MAX, cursor.as_ref()).await;
            cursor = Some(full_or_more(page, pages));
        }
        cursor.unwrap_or_else(|| unreachable!("the loop runs at least once"))
    })
}

/// The next cursor of `page`, which must have one.
fn full_or_more(page: Result<Page<Customer>, RepositoryError>, pages: usize) -> Cursor {
    match page {
        Ok(Page {
            next_cursor: Some(cursor),
            ..
        }) => cursor,
        Ok(_) => panic!("the listing ends before {pages} pages"),
        Err(e) => panic!("{e}"),
    }
}

/// A page of 25 in every order, first and deep in the walk; a name search; the change feed.
fn listings(
    group: &mut Group<'_>,
    runtime: &tokio::runtime::Runtime,
    repo: &InMemoryCustomerRepository,
    customers: &[Customer],
    size: usize,
) {
    let middle = &customers[size / 2];
    for order in SortOrder::ALL {
        let listing = Listing::All(order);
        full(
            runtime.block_on(repo.list(&listing, PageLimit::DEFAULT, None)),
            order.as_str(),
        );
        group.bench_with_input(
            BenchmarkId::new(format!("page of 25 by {order}, first"), size),
            &listing,
            |b, listing| {
                b.to_async(runtime)
                    .iter(|| repo.list(listing, PageLimit::DEFAULT, None));
            },
        );
        // Half the walk behind it.
        let deep = walked_to(runtime, repo, &listing, size / 200);
        full(
            runtime.block_on(repo.list(&listing, PageLimit::DEFAULT, Some(&deep))),
            order.as_str(),
        );
        group.bench_with_input(
            BenchmarkId::new(format!("page of 25 by {order}, deep"), size),
            &listing,
            |b, listing| {
                b.to_async(runtime)
                    .iter(|| repo.list(listing, PageLimit::DEFAULT, Some(black_box(&deep))));
            },
        );
    }

    let search = Listing::Name(NamePrefix::parse(SEARCH).unwrap_or_else(|e| panic!("{e}")));
    full(
        runtime.block_on(repo.list(&search, PageLimit::DEFAULT, None)),
        SEARCH,
    );
    group.bench_with_input(
        BenchmarkId::new(format!("search {SEARCH}, first page of 25"), size),
        &search,
        |b, search| {
            b.to_async(runtime)
                .iter(|| repo.list(search, PageLimit::DEFAULT, None));
        },
    );
    // Deep in the matches (about one customer in seven matches): a third of the way in at
    // 1,000,000, two fifths at 10,000.
    let deep = walked_to(runtime, repo, &search, size / 2000);
    full(
        runtime.block_on(repo.list(&search, PageLimit::DEFAULT, Some(&deep))),
        SEARCH,
    );
    group.bench_with_input(
        BenchmarkId::new(format!("search {SEARCH}, deep page of 25"), size),
        &search,
        |b, search| {
            b.to_async(runtime)
                .iter(|| repo.list(search, PageLimit::DEFAULT, Some(black_box(&deep))));
        },
    );

    // From the middle of the creations: customers only, most of the feed still ahead.
    let since = middle.created_at();
    full(
        runtime.block_on(repo.changes(since, PageLimit::DEFAULT, None)),
        "changes",
    );
    group.bench_with_input(
        BenchmarkId::new("changes, page of 25 from the middle", size),
        &since,
        |b, since| {
            b.to_async(runtime)
                .iter(|| repo.changes(*since, PageLimit::DEFAULT, None));
        },
    );
    // From the last patch: past the customers, into the tombstones of the deletes.
    let since = patched_at(size);
    let page = runtime.block_on(repo.changes(since, PageLimit::DEFAULT, None));
    if let Ok(page) = &page {
        assert!(
            page.items
                .iter()
                .all(|c| matches!(c, crm_domain::Change::Deleted(_))),
            "tombstones only"
        );
    }
    full(page, "tombstones");
    group.bench_with_input(
        BenchmarkId::new("changes, page of 25 of tombstones", size),
        &since,
        |b, since| {
            b.to_async(runtime)
                .iter(|| repo.changes(*since, PageLimit::DEFAULT, None));
        },
    );
}

criterion_group!(benches, operations);
criterion_main!(benches);
