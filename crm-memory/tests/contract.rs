//! The repository contract suite, and its change-event cases read through the store's
//! subscription, run against the in-memory repository.

use std::sync::Arc;

use async_trait::async_trait;
use crm_domain::CustomerRepository;
use crm_domain::events::CustomerEvent;
use crm_domain::testkit::{EventLog, TOMBSTONE_RETENTION};
use crm_memory::{InMemoryCustomerRepository, Subscription};

fn store() -> InMemoryCustomerRepository {
    InMemoryCustomerRepository::new().with_tombstone_retention(TOMBSTONE_RETENTION)
}

crm_domain::repository_contract_tests!(|| async {
    Arc::new(store()) as Arc<dyn CustomerRepository>
});

/// The events of a memory store, as its subscription hands them out: every write has sent its
/// event before it answers, so what is queued is all there is.
struct Subscribed(Subscription);

#[async_trait]
impl EventLog for Subscribed {
    async fn take(&mut self) -> Vec<CustomerEvent> {
        self.0.drain()
    }
}

mod events {
    use super::*;

    crm_domain::event_contract_tests!(|| async {
        let store = store();
        let log = Subscribed(store.subscribe());
        (
            Arc::new(store) as Arc<dyn CustomerRepository>,
            Box::new(log) as Box<dyn EventLog>,
        )
    });
}
