//! List: one page of customers, from a consistent `Scan` filtered to customers, topped up by
//! further Scans (at most 8) when email claims or DynamoDB's 1 MB cut leave it short.
//!
//! Each Scan has a `Limit`, so that no call reads the whole table. The cursor is the key of the
//! last customer returned, base64-wrapped; a cursor that does not decode to a key this repository
//! writes is refused before any request.

use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{Cursor, Customer, Page, PageLimit, RepositoryError};

use super::DynamoCustomerRepository;
use crate::error::classify;
use crate::item::{Item, KIND_CUSTOMER, PK, customer_from_item, customer_pk, is_valid_pk, key, s};

/// How many Scan calls one page may take when email claims or 1 MB cuts leave pages short.
const MAX_SCANS_PER_PAGE: usize = 8;

impl DynamoCustomerRepository {
    pub(super) async fn list_unbounded(
        &self,
        limit: PageLimit,
        cursor: Option<&Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        let mut start = match cursor {
            None => None,
            Some(cursor) => {
                let position = cursor.decode().ok_or(RepositoryError::InvalidCursor)?;
                if !is_valid_pk(&position) {
                    return Err(RepositoryError::InvalidCursor);
                }
                Some(position)
            }
        };
        let wanted = limit.get();
        let mut items = Vec::with_capacity(wanted);
        for _ in 0..MAX_SCANS_PER_PAGE {
            // Email claims are filtered out after the read, so ask for more than the page needs
            // and cut: the next page then starts after the last customer returned.
            let missing = wanted - items.len();
            let (found, last) = self.scan_page(missing * 2, start.take()).await?;
            let mut found = found.into_iter();
            for item in found.by_ref().take(missing) {
                items.push(customer_from_item(item)?);
            }
            let cut = found.next().is_some();
            if items.len() == wanted && (cut || last.is_some()) {
                let next = items.last().map(|c| Cursor::encode(&customer_pk(c.id())));
                return Ok(Page {
                    items,
                    next_cursor: next,
                });
            }
            match last {
                None => {
                    return Ok(Page {
                        items,
                        next_cursor: None,
                    });
                }
                Some(last) => start = Some(last),
            }
        }
        // The page stays short rather than making one request scan on and on.
        let next_cursor = start.map(|pk| Cursor::encode(&pk));
        Ok(Page { items, next_cursor })
    }

    /// One consistent Scan of at most `limit` items from after `start`, filtered to customers:
    /// the customers read and the key to go on from, if DynamoDB stopped before the end.
    async fn scan_page(
        &self,
        limit: usize,
        start: Option<String>,
    ) -> Result<(Vec<Item>, Option<String>), RepositoryError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .filter_expression("kind = :customer")
            .expression_attribute_values(":customer", s(KIND_CUSTOMER))
            .set_exclusive_start_key(start.map(key))
            .send()
            .await
            .map_err(|e| classify("Scan", &e))?;
        let last = output.last_evaluated_key.and_then(|k| match k.get(PK) {
            Some(AttributeValue::S(pk)) => Some(pk.clone()),
            _ => None,
        });
        Ok((output.items.unwrap_or_default(), last))
    }
}
