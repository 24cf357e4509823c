//! The repository contract suite, run against DynamoDB Local, each test on a table of its own.

use std::sync::Arc;

use crm_domain::CustomerRepository;

use crate::support;

crm_domain::repository_contract_tests!(|| async {
    Arc::new(support::fresh_repository().await) as Arc<dyn CustomerRepository>
});
