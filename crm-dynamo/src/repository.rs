//! `DynamoCustomerRepository`: the port implemented with conditional writes and transactions.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use crm_domain::{
    AddressPatch, BulkRejection, BulkReport, Cursor, Customer, CustomerId, CustomerPatch,
    CustomerRepository, Email, Page, PageLimit, Patch, RepositoryError, Timestamp, Version,
    batch_repeats,
};

use crate::error::{DynamoFailure, ItemOutcome, RETRY_AFTER, classify};
use crate::item::{
    ADDRESS_ATTRIBUTES, ADDRESS_LINE1, Item, KIND_CUSTOMER, PK, claim_item, customer_from_item,
    customer_item, customer_pk, email_pk, is_valid_pk, item_email_key, item_has_address,
    item_version, key, n, s,
};
use crate::settings::{DynamoSettings, SettingsError};
use crate::table::EMAIL_INDEX;

/// How many times an operation that lost a race (a transaction conflict, a customer changed
/// between read and write) is tried before the store is reported unavailable.
const MAX_ATTEMPTS: u32 = 8;

/// How many Scan calls one page may take when email claims or 1 MB cuts leave pages short.
const MAX_SCANS_PER_PAGE: usize = 8;

/// Customers per bulk transaction: each takes two actions (customer, email claim) of the 100 a
/// transaction may hold.
const BULK_CHUNK: usize = 50;

/// The deadline of one repository operation when the caller sets none.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);

/// Customers in one DynamoDB table; see the [crate docs](crate) for the layout.
#[derive(Debug, Clone)]
pub struct DynamoCustomerRepository {
    client: Client,
    table: String,
    /// The most one operation may take, all its requests and retries included (for a bulk import:
    /// each chunk of it).
    deadline: Duration,
}

impl DynamoCustomerRepository {
    /// A repository on the table of `settings`, with an SDK client built from them. No request is
    /// made: build it once per process (per Lambda cold start) and share it.
    ///
    /// # Errors
    /// None today; the signature keeps room for settings that can only be checked when connecting.
    pub async fn connect(settings: &DynamoSettings) -> Result<Self, SettingsError> {
        let config = settings.sdk_config().await;
        Ok(
            Self::from_client(Client::from_conf(config), settings.table_name())
                .with_deadline(settings.operation_timeout()),
        )
    }

    /// A repository on `table` through an SDK client the caller configured, with a deadline of 3 s
    /// per operation. The caller's client should carry the timeouts and retry rules of
    /// [`DynamoSettings::sdk_config`], which [`connect`](Self::connect) uses.
    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            deadline: DEFAULT_DEADLINE,
        }
    }

    /// The same repository with another deadline for one operation, every request and retry
    /// included; past it the operation is [`Unavailable`](RepositoryError::Unavailable).
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Runs one operation within the deadline. The SDK's own timeouts bound each request; this
    /// bounds the whole, which may take several requests (races retried, pages topped up).
    async fn within<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, RepositoryError> {
        tokio::time::timeout(self.deadline, work)
            .await
            .unwrap_or_else(|_| {
                Err(RepositoryError::Unavailable {
                    retry_after: Some(RETRY_AFTER),
                    source: Box::new(DynamoFailure::new(
                        operation,
                        "gave up at the operation deadline",
                        None,
                    )),
                })
            })
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates this repository's table with [`TABLE`](crate::TABLE)'s layout (local use and tests).
    ///
    /// # Errors
    /// When DynamoDB refuses (the table exists, the endpoint is down).
    pub async fn create_table(&self) -> Result<(), RepositoryError> {
        crate::TABLE.create(&self.client, &self.table).await
    }

    /// Opens a connection to the endpoint (TLS and TCP set-up) so that the first request does not
    /// pay for it. A failure is ignored: the first real request reports it.
    pub async fn warm_up(&self) {
        let _ = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(&warm_up_id()))))
            .send()
            .await;
    }

    async fn get_item(&self, id: &CustomerId) -> Result<Option<Item>, RepositoryError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        Ok(output.item)
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Option<HashMap<String, AttributeValue>>,
    ) -> Result<TransactWriteItem, RepositoryError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#pk", PK)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(RepositoryError::unexpected)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_claim(
        &self,
        normalized_email: &str,
        id: &CustomerId,
    ) -> Result<TransactWriteItem, RepositoryError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(email_pk(normalized_email))))
            .condition_expression("customerId = :id")
            .expression_attribute_values(":id", s(id.as_str()))
            .build()
            .map_err(RepositoryError::unexpected)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Sends a transaction; `Ok(None)` when it committed, `Ok(Some(reasons))` when DynamoDB
    /// cancelled it, with one outcome (and the old item, when asked for) per action.
    async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<(ItemOutcome, Option<Item>)>>, RepositoryError> {
        self.transact_idempotent(actions, None).await
    }

    /// [`transact`](Self::transact) with a client request token: DynamoDB applies a transaction
    /// sent again with the same token (within ten minutes) at most once, and answers it as it
    /// answered the first.
    async fn transact_idempotent(
        &self,
        actions: Vec<TransactWriteItem>,
        token: Option<&str>,
    ) -> Result<Option<Vec<(ItemOutcome, Option<Item>)>>, RepositoryError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .set_client_request_token(token.map(str::to_owned))
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(failure))
                if matches!(
                    failure.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                let TransactWriteItemsError::TransactionCanceledException(cancelled) =
                    failure.into_err()
                else {
                    return Err(RepositoryError::unexpected(DynamoFailure::new(
                        "TransactWriteItems",
                        "cancelled without reasons",
                        None,
                    )));
                };
                Ok(Some(
                    cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|r| (ItemOutcome::from_code(r.code()), r.item().cloned()))
                        .collect(),
                ))
            }
            Err(e) => Err(classify("TransactWriteItems", &e)),
        }
    }

    async fn create_without_email(&self, customer: &Customer) -> Result<(), RepositoryError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(customer_item(customer)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(RepositoryError::AlreadyExists),
            Err(e) => Err(classify("PutItem", &e)),
        }
    }

    async fn create_with_email(
        &self,
        customer: &Customer,
        email: &Email,
    ) -> Result<(), RepositoryError> {
        for attempt in 0..MAX_ATTEMPTS {
            let actions = vec![
                self.put(customer_item(customer)?, "attribute_not_exists(#pk)", None)?,
                self.put(
                    claim_item(&email.normalized(), customer.id()),
                    "attribute_not_exists(#pk)",
                    None,
                )?,
            ];
            let Some(reasons) = self.transact(actions).await? else {
                return Ok(());
            };
            match outcomes(&reasons).as_slice() {
                [ItemOutcome::ConditionFailed, _] => return Err(RepositoryError::AlreadyExists),
                [_, ItemOutcome::ConditionFailed] => return Err(RepositoryError::EmailTaken),
                o if o.contains(&ItemOutcome::Retry) => backoff(attempt).await,
                _ => return Err(cancelled_unexpectedly("create")),
            }
        }
        Err(contended("create"))
    }

    /// A patch that leaves the email alone: one `UpdateItem` that sets and removes the patched
    /// attributes, bumps the version and returns the new item.
    async fn update_in_place(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        let mut update = UpdateExpression::default();
        update.add_version_bump(now);
        if let Some(name) = &patch.first_name {
            update.set("firstName", s(name.as_str()));
        }
        if let Some(name) = &patch.last_name {
            update.set("lastName", s(name.as_str()));
        }
        update.patch("phone", &patch.phone, |p| s(p.as_str()));
        let needs_address = match &patch.address {
            Patch::Keep => false,
            Patch::Clear => {
                for attribute in ADDRESS_ATTRIBUTES {
                    update.remove(attribute);
                }
                false
            }
            Patch::Set(address) => update.address(address),
        };
        let mut condition = String::from("attribute_exists(#pk)");
        update.names.insert("#pk".to_owned(), PK.to_owned());
        if let Some(version) = expected {
            condition.push_str(" AND #version = :expected");
            update.values.insert(":expected".to_owned(), n(version));
        }
        if needs_address {
            condition.push_str(" AND attribute_exists(#addressLine1)");
            update
                .names
                .insert("#addressLine1".to_owned(), ADDRESS_LINE1.to_owned());
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .update_expression(update.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => customer_from_item(output.attributes.unwrap_or_default()),
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                let old = match failure.into_err() {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e) => e.item,
                    _ => None,
                };
                Err(explain_failed_condition(
                    old.as_ref(),
                    expected,
                    needs_address,
                ))
            }
            Err(e) => Err(classify("UpdateItem", &e)),
        }
    }

    /// A patch that sets or clears the email: the uniqueness claims must change in the same atomic
    /// step as the customer, and DynamoDB transactions return no item, so the customer is read
    /// first and written whole, on the condition that its version has not moved since.
    async fn update_with_claims(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        for attempt in 0..MAX_ATTEMPTS {
            let item = self.get_item(id).await?.ok_or(RepositoryError::NotFound)?;
            let current = customer_from_item(item)?;
            if let Some(version) = expected
                && version != current.version()
            {
                return Err(RepositoryError::VersionConflict {
                    current: current.version(),
                });
            }
            let next = current
                .patched(patch, now)
                .map_err(RepositoryError::InvalidPatch)?;
            let old_email = current.email().map(Email::normalized);
            let new_email = next.email().map(Email::normalized);
            let values = HashMap::from([(":seen".to_owned(), n(current.version()))]);
            let mut actions = vec![self.put(
                customer_item(&next)?,
                "attribute_exists(#pk) AND version = :seen",
                Some(values),
            )?];
            if old_email != new_email {
                if let Some(new) = &new_email {
                    actions.push(self.put(
                        claim_item(new, id),
                        "attribute_not_exists(#pk)",
                        None,
                    )?);
                }
                if let Some(old) = &old_email {
                    actions.push(self.delete_claim(old, id)?);
                }
            }
            let Some(reasons) = self.transact(actions).await? else {
                return Ok(next);
            };
            let outcomes = outcomes(&reasons);
            match outcomes.first() {
                Some(ItemOutcome::ConditionFailed) => {
                    // The customer changed or went away after it was read.
                    let old = reasons.first().and_then(|(_, item)| item.as_ref());
                    match (old.and_then(item_version), expected) {
                        (None, _) => return Err(RepositoryError::NotFound),
                        (Some(current), Some(_)) => {
                            return Err(RepositoryError::VersionConflict { current });
                        }
                        (Some(_), None) => {}
                    }
                }
                _ if new_email.is_some()
                    && outcomes.get(1) == Some(&ItemOutcome::ConditionFailed) =>
                {
                    return Err(RepositoryError::EmailTaken);
                }
                _ if outcomes.contains(&ItemOutcome::Retry) => backoff(attempt).await,
                _ => return Err(cancelled_unexpectedly("update")),
            }
        }
        Err(contended("update"))
    }

    /// Deletes a customer that has an email: the customer and its claim go in one transaction.
    async fn delete_with_claim(
        &self,
        id: &CustomerId,
        seen: Version,
        normalized_email: &str,
    ) -> Result<ClaimedDelete, RepositoryError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(id))))
            .condition_expression("version = :seen")
            .expression_attribute_values(":seen", n(seen))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(RepositoryError::unexpected)?;
        let actions = vec![
            TransactWriteItem::builder().delete(delete).build(),
            self.delete_claim(normalized_email, id)?,
        ];
        let Some(reasons) = self.transact(actions).await? else {
            return Ok(ClaimedDelete::Done);
        };
        match outcomes(&reasons).as_slice() {
            [ItemOutcome::ConditionFailed, _] => {
                let old = reasons.first().and_then(|(_, item)| item.as_ref());
                Ok(old
                    .and_then(item_version)
                    .map_or(ClaimedDelete::Gone, ClaimedDelete::Moved))
            }
            o if o.contains(&ItemOutcome::Retry) => Ok(ClaimedDelete::Retry),
            _ => Err(cancelled_unexpectedly("delete")),
        }
    }

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

    /// Writes one chunk of a bulk import as transactions, dropping the customers whose conditions
    /// fail and retrying the rest; returns how many were written.
    async fn put_chunk(
        &self,
        chunk: &[(usize, &Customer)],
        rejected: &mut Vec<(usize, BulkRejection)>,
    ) -> Result<usize, RepositoryError> {
        let mut remaining: Vec<(usize, &Customer)> = chunk.to_vec();
        let mut attempt = 0;
        // One token per set of customers: a retry after a lost answer (a timeout) must not be
        // applied twice, or the customers it wrote would come back as conflicts with themselves.
        let mut token = uuid::Uuid::now_v7().to_string();
        while !remaining.is_empty() {
            let mut actions = Vec::new();
            // For each action, the position in `remaining` of its customer and whether it is the claim.
            let mut owners = Vec::new();
            for (position, (_, customer)) in remaining.iter().enumerate() {
                actions.push(self.put(
                    customer_item(customer)?,
                    "attribute_not_exists(#pk)",
                    None,
                )?);
                owners.push((position, false));
                if let Some(email) = customer.email() {
                    actions.push(self.put(
                        claim_item(&email.normalized(), customer.id()),
                        "attribute_not_exists(#pk)",
                        None,
                    )?);
                    owners.push((position, true));
                }
            }
            let reasons = match self.transact_idempotent(actions, Some(&token)).await {
                Ok(None) => return Ok(remaining.len()),
                Ok(Some(reasons)) => reasons,
                Err(RepositoryError::Unavailable { .. }) if attempt + 1 < MAX_ATTEMPTS => {
                    backoff(attempt).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut failed: HashMap<usize, BulkRejection> = HashMap::new();
            for ((position, is_claim), (outcome, _)) in owners.iter().zip(&reasons) {
                if *outcome == ItemOutcome::ConditionFailed {
                    let reason = if *is_claim {
                        BulkRejection::EmailTaken
                    } else {
                        BulkRejection::AlreadyExists
                    };
                    failed
                        .entry(*position)
                        .and_modify(|r| {
                            if reason == BulkRejection::AlreadyExists {
                                *r = reason;
                            }
                        })
                        .or_insert(reason);
                }
            }
            if failed.is_empty() {
                if !reasons.iter().any(|(o, _)| *o == ItemOutcome::Retry) {
                    return Err(cancelled_unexpectedly("bulk import"));
                }
                if attempt + 1 >= MAX_ATTEMPTS {
                    return Err(contended("bulk import"));
                }
                backoff(attempt).await;
                attempt += 1;
                // The same customers again, but DynamoDB answered (it refused): a new request.
                token = uuid::Uuid::now_v7().to_string();
                continue;
            }
            let mut kept = Vec::new();
            for (position, entry) in remaining.into_iter().enumerate() {
                match failed.get(&position) {
                    Some(reason) => rejected.push((entry.0, *reason)),
                    None => kept.push(entry),
                }
            }
            remaining = kept;
            token = uuid::Uuid::now_v7().to_string();
        }
        Ok(0)
    }
}

/// The operations of the port, each unbounded in time; the trait impl puts each within the deadline.
impl DynamoCustomerRepository {
    async fn create_unbounded(&self, customer: &Customer) -> Result<(), RepositoryError> {
        match customer.email() {
            None => self.create_without_email(customer).await,
            Some(email) => self.create_with_email(customer, email).await,
        }
    }

    async fn get_unbounded(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
        self.get_item(id).await?.map(customer_from_item).transpose()
    }

    async fn find_by_email_unbounded(
        &self,
        email: &Email,
    ) -> Result<Option<Customer>, RepositoryError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(EMAIL_INDEX)
            .key_condition_expression("emailKey = :email")
            .expression_attribute_values(":email", s(&email.normalized()))
            .limit(1)
            .send()
            .await
            .map_err(|e| classify("Query", &e))?;
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(customer_from_item)
            .transpose()
    }

    async fn update_unbounded(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        if patch.email.is_keep() {
            self.update_in_place(id, patch, expected, now).await
        } else {
            self.update_with_claims(id, patch, expected, now).await
        }
    }

    async fn delete_unbounded(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        for attempt in 0..MAX_ATTEMPTS {
            // First try: a customer without an email goes in one conditional delete. When the
            // condition fails, DynamoDB hands back the item, which says why.
            let mut condition =
                String::from("attribute_exists(#pk) AND attribute_not_exists(emailKey)");
            let mut values = None;
            if let Some(version) = expected {
                condition.push_str(" AND version = :expected");
                values = Some(HashMap::from([(":expected".to_owned(), n(version))]));
            }
            let request = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(customer_pk(id))))
                .condition_expression(condition)
                .expression_attribute_names("#pk", PK)
                .set_expression_attribute_values(values)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            let old = match request.send().await {
                Ok(_) => return Ok(()),
                Err(SdkError::ServiceError(failure))
                    if failure.err().is_conditional_check_failed_exception() =>
                {
                    match failure.into_err() {
                        aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(e) => e.item,
                        _ => None,
                    }
                }
                Err(e) => return Err(classify("DeleteItem", &e)),
            };
            let Some(old) = old else {
                return Err(RepositoryError::NotFound);
            };
            let current = item_version(&old).ok_or_else(|| cancelled_unexpectedly("delete"))?;
            if let Some(version) = expected
                && version != current
            {
                return Err(RepositoryError::VersionConflict { current });
            }
            let Some(email) = item_email_key(&old) else {
                // The email went away between the two looks; start again.
                continue;
            };
            match self.delete_with_claim(id, current, email).await? {
                ClaimedDelete::Done => return Ok(()),
                ClaimedDelete::Gone => return Err(RepositoryError::NotFound),
                ClaimedDelete::Moved(current) if expected.is_some() => {
                    return Err(RepositoryError::VersionConflict { current });
                }
                // Changed by another writer since the first look: look again.
                ClaimedDelete::Moved(_) => {}
                ClaimedDelete::Retry => backoff(attempt).await,
            }
        }
        Err(contended("delete"))
    }

    async fn list_unbounded(
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

    async fn put_many_unbounded(
        &self,
        customers: &[Customer],
    ) -> Result<BulkReport, RepositoryError> {
        let repeats = batch_repeats(customers);
        let mut rejected: Vec<(usize, BulkRejection)> = Vec::new();
        let mut pending = Vec::new();
        for (index, (customer, repeat)) in customers.iter().zip(repeats).enumerate() {
            match repeat {
                Some(reason) => rejected.push((index, reason)),
                None => pending.push((index, customer)),
            }
        }
        let mut created = 0;
        for chunk in pending.chunks(BULK_CHUNK) {
            created += self
                .within("bulk import", self.put_chunk(chunk, &mut rejected))
                .await?;
        }
        rejected.sort_by_key(|(index, _)| *index);
        Ok(BulkReport {
            created,
            rejected: rejected
                .into_iter()
                .map(|(index, reason)| (customers[index].id().clone(), reason))
                .collect(),
        })
    }
}

#[async_trait]
impl CustomerRepository for DynamoCustomerRepository {
    async fn create(&self, customer: &Customer) -> Result<(), RepositoryError> {
        self.within("create", self.create_unbounded(customer)).await
    }

    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, RepositoryError> {
        self.within("get", self.get_unbounded(id)).await
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, RepositoryError> {
        self.within("find by email", self.find_by_email_unbounded(email))
            .await
    }

    async fn update(
        &self,
        id: &CustomerId,
        patch: &CustomerPatch,
        expected: Option<Version>,
        now: Timestamp,
    ) -> Result<Customer, RepositoryError> {
        self.within("update", self.update_unbounded(id, patch, expected, now))
            .await
    }

    async fn delete(
        &self,
        id: &CustomerId,
        expected: Option<Version>,
    ) -> Result<(), RepositoryError> {
        self.within("delete", self.delete_unbounded(id, expected))
            .await
    }

    async fn list<'c>(
        &self,
        limit: PageLimit,
        cursor: Option<&'c Cursor>,
    ) -> Result<Page<Customer>, RepositoryError> {
        self.within("list", self.list_unbounded(limit, cursor))
            .await
    }

    /// Bulk imports are bounded per chunk of 50 customers, not as a whole: an import of thousands
    /// takes as long as it takes, but no chunk hangs.
    async fn put_many(&self, customers: &[Customer]) -> Result<BulkReport, RepositoryError> {
        self.put_many_unbounded(customers).await
    }
}

/// What the transaction of a customer-with-email delete came to.
enum ClaimedDelete {
    /// The customer and its claim are gone.
    Done,
    /// The customer was already gone.
    Gone,
    /// The customer is at another version than the one seen.
    Moved(Version),
    /// Another writer was on the items, or the store throttled.
    Retry,
}

/// An update expression under construction: attribute names go through `#name` placeholders
/// (several customer attributes are DynamoDB reserved words) and values through `:name`.
#[derive(Default)]
struct UpdateExpression {
    sets: Vec<String>,
    removes: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl UpdateExpression {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let name = self.name(attribute);
        self.values.insert(format!(":{attribute}"), value);
        self.sets.push(format!("{name} = :{attribute}"));
    }

    fn remove(&mut self, attribute: &str) {
        let name = self.name(attribute);
        self.removes.push(name);
    }

    fn patch<T>(
        &mut self,
        attribute: &str,
        patch: &Patch<T>,
        value: impl Fn(&T) -> AttributeValue,
    ) {
        match patch {
            Patch::Keep => {}
            Patch::Clear => self.remove(attribute),
            Patch::Set(v) => self.set(attribute, value(v)),
        }
    }

    fn add_version_bump(&mut self, now: Timestamp) {
        let version = self.name("version");
        self.values
            .insert(":one".to_owned(), AttributeValue::N("1".to_owned()));
        self.sets.push(format!("{version} = {version} + :one"));
        self.set("updatedAt", s(&now.to_string()));
    }

    /// Adds an address merge; true when the customer must already have an address (no `line1`).
    fn address(&mut self, patch: &AddressPatch) -> bool {
        let [line1, line2, city, region, postal_code, country] = ADDRESS_ATTRIBUTES;
        if let Some(text) = &patch.line1 {
            self.set(line1, s(text.as_str()));
        }
        self.patch(line2, &patch.line2, |t| s(t.as_str()));
        self.patch(city, &patch.city, |t| s(t.as_str()));
        self.patch(region, &patch.region, |t| s(t.as_str()));
        self.patch(postal_code, &patch.postal_code, |t| s(t.as_str()));
        self.patch(country, &patch.country, |c| s(c.as_str()));
        patch.line1.is_none()
    }

    fn expression(&self) -> String {
        let mut expression = format!("SET {}", self.sets.join(", "));
        if !self.removes.is_empty() {
            expression.push_str(" REMOVE ");
            expression.push_str(&self.removes.join(", "));
        }
        expression
    }
}

fn is_condition_failure<R>(
    error: &SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, R>,
) -> bool {
    matches!(error, SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception())
}

fn outcomes(reasons: &[(ItemOutcome, Option<Item>)]) -> Vec<ItemOutcome> {
    reasons.iter().map(|(outcome, _)| *outcome).collect()
}

/// Why a conditional `UpdateItem` failed, from the old item DynamoDB returned.
fn explain_failed_condition(
    old: Option<&Item>,
    expected: Option<Version>,
    needs_address: bool,
) -> RepositoryError {
    let Some(old) = old else {
        return RepositoryError::NotFound;
    };
    let current = item_version(old);
    match (current, expected) {
        (Some(current), Some(expected)) if current != expected => {
            RepositoryError::VersionConflict { current }
        }
        _ if needs_address && !item_has_address(old) => {
            RepositoryError::InvalidPatch(AddressPatch::line1_required())
        }
        _ => cancelled_unexpectedly("update"),
    }
}

fn cancelled_unexpectedly(operation: &'static str) -> RepositoryError {
    RepositoryError::unexpected(DynamoFailure::new(
        operation,
        "a condition failed that the repository cannot explain",
        None,
    ))
}

fn contended(operation: &'static str) -> RepositoryError {
    RepositoryError::Unavailable {
        retry_after: Some(RETRY_AFTER),
        source: Box::new(DynamoFailure::new(
            operation,
            "too many concurrent writers on the same items",
            None,
        )),
    }
}

/// Waits before another attempt: exponential from 5 ms, capped at 200 ms, with jitter so that
/// racing writers spread out.
async fn backoff(attempt: u32) {
    let base = 5u64.saturating_mul(1 << attempt.min(6)).min(200);
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default(),
    ) % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// The id the warm-up reads. Any id does: the read only opens the connection, and its answer is
/// dropped.
fn warm_up_id() -> CustomerId {
    CustomerId::parse("__warm-up__").unwrap_or_else(|_| CustomerId::generate())
}
