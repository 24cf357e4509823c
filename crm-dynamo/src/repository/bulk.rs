//! The bulk import: the customers in chunks of 50, one `TransactWriteItems` per chunk (plus
//! retries), each customer written only if absent and with its email claimed. Each item is
//! [`customer_item`]'s, listing keys included, as a create writes it.
//!
//! A transaction is all or nothing, so a customer whose condition fails (the id or the email is
//! taken) cancels its whole chunk: it is reported rejected and the rest of the chunk is sent again.
//! Each chunk is bounded by the deadline on its own, so an import of thousands takes as long as it
//! takes, but no chunk hangs.
//!
//! When the store stops answering (a chunk runs out of retries or time), the import stops there
//! and says so: the chunks before it are written, their refusals reported, and every customer of
//! the chunk under way and of the chunks after it is `unconfirmed` (the chunk under way may or may
//! not have been applied). Nothing is lost by importing them again: a customer already written
//! comes back refused as `AlreadyExists`, never written twice.

use std::collections::HashMap;

use crm_domain::{BulkRejection, BulkReport, Customer, RepositoryError, batch_repeats};

use super::DynamoCustomerRepository;
use super::create::{ID_FREE, id_free_values};
use super::retry::{Attempt, Attempts, retry_races};
use super::transaction::cancelled_unexpectedly;
use crate::error::ItemOutcome;
use crate::item::{claim_item, customer_item};

/// Customers per bulk transaction: each takes two actions (customer, email claim) of the 100 a
/// transaction may hold.
const BULK_CHUNK: usize = 50;

impl DynamoCustomerRepository {
    pub(super) async fn put_many_unbounded(
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
        let mut unconfirmed: Vec<usize> = Vec::new();
        let mut chunks = pending.chunks(BULK_CHUNK);
        for chunk in chunks.by_ref() {
            let mut import = ChunkImport {
                repository: self,
                remaining: chunk.to_vec(),
                token: uuid::Uuid::now_v7().to_string(),
                rejected: &mut rejected,
            };
            match self
                .within("bulk import", retry_races("bulk import", &mut import))
                .await
            {
                Ok(written) => created += written,
                Err(RepositoryError::Unavailable { .. }) => {
                    // Maybe applied, maybe not: the customers of this chunk not refused yet.
                    unconfirmed.extend(import.remaining.iter().map(|(index, _)| *index));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        unconfirmed.extend(chunks.flatten().map(|(index, _)| *index));
        rejected.sort_by_key(|(index, _)| *index);
        let id = |index: usize| customers[index].id().clone();
        Ok(BulkReport {
            created,
            rejected: rejected
                .into_iter()
                .map(|(index, reason)| (id(index), reason))
                .collect(),
            unconfirmed: unconfirmed.into_iter().map(id).collect(),
        })
    }
}

/// A chunk on its way in. Each attempt starts where the last one left off: with the customers not
/// yet refused, and with the token of the request that last carried them.
struct ChunkImport<'a> {
    repository: &'a DynamoCustomerRepository,
    /// The customers still to write, with their index in the import.
    remaining: Vec<(usize, &'a Customer)>,
    /// One token per set of customers: a retry after a lost answer (a timeout) must not be
    /// applied twice, or the customers it wrote would come back as conflicts with themselves.
    token: String,
    /// The customers refused so far, by index in the import.
    rejected: &'a mut Vec<(usize, BulkRejection)>,
}

// On a borrow, so that the import can read where the chunk stopped after an error.
impl Attempts<usize> for &mut ChunkImport<'_> {
    async fn attempt(&mut self) -> Result<Attempt<usize>, RepositoryError> {
        // Dropping refused customers is progress, not a lost race: the rest go again at once,
        // within the same attempt.
        while !self.remaining.is_empty() {
            let mut actions = Vec::new();
            // For each action, the position in `remaining` of its customer and whether it is the
            // claim.
            let mut owners = Vec::new();
            for (position, (_, customer)) in self.remaining.iter().enumerate() {
                actions.push(self.repository.put(
                    customer_item(customer)?,
                    ID_FREE,
                    Some(id_free_values()),
                )?);
                owners.push((position, false));
                if let Some(email) = customer.email() {
                    actions.push(self.repository.put(
                        claim_item(&email.normalized(), customer.id()),
                        "attribute_not_exists(#pk)",
                        None,
                    )?);
                    owners.push((position, true));
                }
            }
            let reasons = match self
                .repository
                .transact_idempotent(actions, Some(&self.token))
                .await
            {
                Ok(None) => return Ok(Attempt::Done(self.remaining.len())),
                Ok(Some(reasons)) => reasons,
                // Maybe applied, maybe not: sent again with the same token, so at most once.
                Err(error @ RepositoryError::Unavailable { .. }) => {
                    return Ok(Attempt::Unavailable(error));
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
                // The same customers again, but DynamoDB answered (it refused): a new request.
                self.token = uuid::Uuid::now_v7().to_string();
                return Ok(Attempt::Retry);
            }
            let mut kept = Vec::new();
            for (position, entry) in std::mem::take(&mut self.remaining).into_iter().enumerate() {
                match failed.get(&position) {
                    Some(reason) => self.rejected.push((entry.0, *reason)),
                    None => kept.push(entry),
                }
            }
            self.remaining = kept;
            self.token = uuid::Uuid::now_v7().to_string();
        }
        Ok(Attempt::Done(0))
    }
}
