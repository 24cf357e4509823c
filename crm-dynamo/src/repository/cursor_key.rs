//! The key that seals listing cursors, kept in the table itself so that every process serving
//! the table (every Lambda sandbox, the command line) seals and opens cursors alike.
//!
//! It is one item, `pk = "SETTINGS#cursor-key"`, `kind = "setting"`, `secret` = 32 random bytes,
//! written once by the first process that needs it (a `PutItem` conditioned on the item being
//! absent; a process that loses that race reads the winner's) and read once per process after
//! that: one consistent `GetItem` on the first listing of a cold start. It is not a customer, so
//! no listing index, change event or backfill sees it. To replace the key, delete the item and
//! restart every process (a deploy): a running process keeps the key it read, so until then
//! processes would disagree. Cursors handed out before stop opening (clients start their walk
//! again); nothing else changes.
//!
//! The key keeps names out of URLs, gateway logs and browser histories; whoever can read the
//! table can read the key, and the customers too.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{CursorKey, RepositoryError};

use super::DynamoCustomerRepository;
use crate::error::classify;
use crate::item::{Item, PK, key, s};

/// The key of the item that holds the cursor key.
pub(crate) const CURSOR_KEY_PK: &str = "SETTINGS#cursor-key";
const SECRET: &str = "secret";

/// The cursor key held by an item, if it holds one.
#[derive(Debug, thiserror::Error)]
#[error("the table's cursor key item does not hold 32 bytes")]
struct MalformedCursorKey;

impl DynamoCustomerRepository {
    /// The table's cursor key: read (or made) on first use, then kept for the process.
    pub(super) async fn cursor_key(&self) -> Result<&CursorKey, RepositoryError> {
        self.cursor_key
            .get_or_try_init(|| self.load_cursor_key())
            .await
    }

    async fn load_cursor_key(&self) -> Result<CursorKey, RepositoryError> {
        if let Some(key) = self.read_cursor_key().await? {
            return Ok(key);
        }
        let made = CursorKey::generate();
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(CURSOR_KEY_PK))
            .item("kind", s("setting"))
            .item(
                SECRET,
                AttributeValue::B(Blob::new(made.to_bytes().to_vec())),
            )
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match written {
            Ok(_) => Ok(made),
            // Another process made it first: use theirs.
            Err(SdkError::ServiceError(failure))
                if failure.err().is_conditional_check_failed_exception() =>
            {
                self.read_cursor_key()
                    .await?
                    .ok_or_else(|| RepositoryError::unexpected(MalformedCursorKey))
            }
            Err(e) => Err(classify("PutItem", &e)),
        }
    }

    async fn read_cursor_key(&self) -> Result<Option<CursorKey>, RepositoryError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(CURSOR_KEY_PK.to_owned())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("GetItem", &e))?;
        output.item.as_ref().map(secret_of).transpose()
    }
}

fn secret_of(item: &Item) -> Result<CursorKey, RepositoryError> {
    match item.get(SECRET) {
        Some(AttributeValue::B(blob)) => <[u8; CursorKey::LEN]>::try_from(blob.as_ref())
            .map(CursorKey::from_bytes)
            .map_err(|_| RepositoryError::unexpected(MalformedCursorKey)),
        _ => Err(RepositoryError::unexpected(MalformedCursorKey)),
    }
}
