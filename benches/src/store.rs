//! The memory store the memory benches measure (`benches/memory.rs`, `memory-flat`): customers with
//! names drawn deterministically from many languages (accents, particles, hyphens), so that the name
//! order and name search see a realistic spread; one in ten patched after the import, so that the
//! `updatedAt` order differs from the `createdAt` one, and one in a hundred deleted, so that the
//! change feed holds tombstones.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crm_domain::{Customer, CustomerId, CustomerPatch, CustomerRepository, NewCustomer, Timestamp};
use crm_memory::InMemoryCustomerRepository;
use serde_json::json;

use crate::full_customer_json;

const FIRST_NAMES: [&str; 48] = [
    "Ada",
    "Adéla",
    "Ahmed",
    "Aiko",
    "Alejandro",
    "Amara",
    "Anna",
    "Ana María",
    "Björn",
    "Chloé",
    "Chen",
    "Dmitri",
    "Elif",
    "Émile",
    "Fatima",
    "François",
    "Giulia",
    "Hannah",
    "Hiroshi",
    "Ingrid",
    "Isabel",
    "Jae-won",
    "James",
    "José",
    "Kwame",
    "Łukasz",
    "Maria",
    "Marek",
    "Martin",
    "Marta",
    "Mary Ann",
    "Mohammed",
    "Nadia",
    "Nguyễn Văn",
    "Olga",
    "Oluwaseun",
    "Priya",
    "Rafael",
    "Renée",
    "Sakura",
    "Siobhán",
    "Søren",
    "Thabo",
    "Valentina",
    "Wei",
    "Yusuf",
    "Zoë",
    "Zsófia",
];

const LAST_NAMES: [&str; 64] = [
    "Abara",
    "Andersson",
    "Bauer",
    "Byrne",
    "Castillo",
    "Chen",
    "Costa",
    "da Silva",
    "De La Cruz",
    "Dubois",
    "Dvořák",
    "Eriksen",
    "Fernández",
    "Fischer",
    "García",
    "Gonzalez",
    "Gruber",
    "Haddad",
    "Hansen",
    "Hernández",
    "Horvath",
    "Ivanova",
    "Jansen",
    "Jiménez",
    "Kim",
    "Kowalski",
    "Kuznetsov",
    "Larsen",
    "Lefèvre",
    "Lindqvist",
    "López",
    "Lovelace",
    "Marković",
    "Marsh",
    "Martínez",
    "Mendes",
    "Moreau",
    "Müller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "O'Brien",
    "Okafor",
    "Olsen",
    "Papadopoulos",
    "Patel",
    "Petrov",
    "Rossi",
    "Russo",
    "Sato",
    "Schmidt",
    "Silva",
    "Smith",
    "Smith-Jones",
    "Suzuki",
    "Tanaka",
    "Van der Berg",
    "Wagner",
    "Wang",
    "Weber",
    "Williams",
    "Yamamoto",
    "Zhang",
    "Żółkowski",
];

/// A well-spread, deterministic number below 1,000,003 for `i` and `salt` (splitmix64).
pub fn spread(i: usize, salt: u64) -> usize {
    let mut z = (i as u64).wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    usize::try_from((z ^ (z >> 31)) % 1_000_003).unwrap_or_default()
}

/// The time `text` (RFC 3339) names.
///
/// # Panics
/// When `text` is not a time.
pub fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Customer `i`: every field filled, a varied name, created `i` seconds into 2026.
///
/// # Panics
/// Never: the input is valid.
pub fn customer(i: usize) -> Customer {
    let mut input = full_customer_json(i);
    input["firstName"] = json!(FIRST_NAMES[spread(i, 1) % FIRST_NAMES.len()]);
    // One in eight has a double last name: more distinct names, and keys where one last name is
    // the first word of another.
    let last = LAST_NAMES[spread(i, 2) % LAST_NAMES.len()];
    input["lastName"] = if spread(i, 3).is_multiple_of(8) {
        json!(format!(
            "{last} {}",
            LAST_NAMES[spread(i, 4) % LAST_NAMES.len()]
        ))
    } else {
        json!(last)
    };
    let input = NewCustomer::from_json(&input).unwrap_or_else(|e| panic!("{e}"));
    let created = at("2026-01-01T00:00:00Z").after(Duration::from_secs(i as u64));
    Customer::create(input, CustomerId::generate(), created)
}

/// Whether the import patches customer `i` (one in ten).
pub fn is_patched(i: usize) -> bool {
    i % 10 == 3
}

/// Whether the import deletes customer `i` (one in a hundred).
pub fn is_deleted(i: usize) -> bool {
    i % 100 == 37
}

/// The time the import patches customer `i` at: after every creation.
pub fn patched_at(i: usize) -> Timestamp {
    at("2026-06-01T00:00:00Z").after(Duration::from_millis(i as u64))
}

/// What `future` returns, polled once: for the memory store, whose futures never wait (it takes
/// no lock across an `.await`), without a runtime's cost in what is measured.
///
/// # Panics
/// When `future` is not ready at its first poll.
pub fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the memory store's futures are ready at once"),
    }
}

/// A store of `size` customers ([`customer`] `0..size`), one in ten patched ([`is_patched`]) and
/// one in a hundred deleted ([`is_deleted`]), with the customers it was filled with.
pub fn store(size: usize) -> (InMemoryCustomerRepository, Vec<Customer>) {
    let repo = InMemoryCustomerRepository::new();
    let customers: Vec<Customer> = (0..size).map(customer).collect();
    let patch = CustomerPatch::from_json(&json!({"phone": "+14155550100"})).unwrap_or_default();
    for chunk in customers.chunks(10_000) {
        let _ = ready(repo.put_many(chunk));
    }
    for (i, c) in customers.iter().enumerate() {
        if is_patched(i) {
            let _ = ready(repo.update(c.id(), &patch, None, patched_at(i)));
        } else if is_deleted(i) {
            let _ = ready(repo.delete(c.id(), None));
        }
    }
    (repo, customers)
}
