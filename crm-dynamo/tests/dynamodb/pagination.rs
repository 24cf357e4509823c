//! Listing stays correct when DynamoDB cuts a Scan at 1 MB.
//!
//! The repository asks each Scan for at most twice a page (200 items), which customers of the
//! largest size the domain allows (~5 KB) barely fill to 1 MB; so that DynamoDB's cut is what ends
//! every Scan here, an interceptor raises each Scan's `Limit` to 1,000 on its way out and records
//! what DynamoDB answered. The test then checks that Scans really came back cut (fewer items than
//! asked, with a `LastEvaluatedKey`) and that walks with several page sizes still see every customer
//! exactly once.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::scan::{ScanInput, ScanOutput};
use crm_domain::{
    Cursor, Customer, CustomerId, CustomerRepository, NewCustomer, PageLimit, Timestamp,
};
use crm_dynamo::DynamoCustomerRepository;
use serde_json::json;

use crate::support;

/// A customer as large as validation allows: every text at its limit, in 4-byte characters.
fn large_customer(i: usize) -> Customer {
    let text = |n: usize| "𝔸".repeat(n);
    let input = NewCustomer::from_json(&json!({
        "id": format!("large-{i:04}"),
        "firstName": text(100), "lastName": text(100), "phone": "+123456789012345",
        "address": {"line1": text(200), "line2": text(200), "city": text(200),
                    "region": text(200), "postalCode": text(200), "country": "DE"}
    }))
    .unwrap();
    Customer::create(input, CustomerId::generate(), Timestamp::now())
}

/// The `Limit` every Scan is sent with.
const RAISED_LIMIT: i32 = 1000;

/// Raises every Scan's `Limit` and records `(items returned, had a LastEvaluatedKey)` per Scan.
#[derive(Debug, Clone, Default)]
struct CutScans(Arc<Mutex<Vec<(i32, bool)>>>);

impl Intercept for CutScans {
    fn name(&self) -> &'static str {
        "CutScans"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(scan) = context.input_mut().downcast_mut::<ScanInput>() {
            scan.limit = Some(RAISED_LIMIT);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Ok(output)) = context.output_or_error()
            && let Some(scan) = output.downcast_ref::<ScanOutput>()
        {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((scan.count(), scan.last_evaluated_key().is_some()));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_walk_over_pages_cut_at_one_megabyte_sees_every_customer_once() {
    let settings = support::settings();
    let plain = support::repository_with(settings.clone()).await;
    let customers: Vec<Customer> = (0..400).map(large_customer).collect();
    let report = plain.put_many(&customers).await.unwrap();
    assert_eq!(report.created, 400);

    let scans = CutScans::default();
    let config = settings
        .sdk_config()
        .await
        .to_builder()
        .interceptor(scans.clone())
        .build();
    let repo = DynamoCustomerRepository::from_client(
        aws_sdk_dynamodb::Client::from_conf(config),
        plain.table_name(),
    );

    let expected: HashSet<CustomerId> = customers.iter().map(|c| c.id().clone()).collect();
    for size in [100, 37] {
        let mut seen = HashSet::new();
        let mut cursor: Option<Cursor> = None;
        for page in 0.. {
            assert!(page <= 400, "the walk with pages of {size} does not end");
            let page = repo
                .list(PageLimit::new(size).unwrap(), cursor.as_ref())
                .await
                .unwrap();
            for c in page.items {
                assert!(seen.insert(c.id().clone()), "seen twice");
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, expected, "page size {size}");
    }

    let scans = scans.0.lock().unwrap().clone();
    let cut = scans
        .iter()
        .filter(|(count, more)| *count < RAISED_LIMIT && *more)
        .count();
    // The table holds fewer items than the raised Limit, so a Scan that stopped with more to read
    // was cut by DynamoDB's 1 MB rule.
    assert!(
        cut >= 3,
        "expected Scans cut at 1 MB, got (items, more) = {scans:?}"
    );
}
