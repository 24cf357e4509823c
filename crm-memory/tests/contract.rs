//! The repository contract suite, run against the in-memory repository.

use std::sync::Arc;

use crm_domain::CustomerRepository;
use crm_domain::testkit::TOMBSTONE_RETENTION;
use crm_memory::InMemoryCustomerRepository;

crm_domain::repository_contract_tests!(|| async {
    Arc::new(InMemoryCustomerRepository::new().with_tombstone_retention(TOMBSTONE_RETENTION))
        as Arc<dyn CustomerRepository>
});
