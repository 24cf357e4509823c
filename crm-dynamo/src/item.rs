//! Item shapes: how a customer and an email claim are written to the table.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{
    Address, AddressText, CountryCode, Customer, CustomerId, CustomerParts, Email, PersonName,
    Phone, RepositoryError, Timestamp, Version, listing,
};
use serde::{Deserialize, Serialize};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
const CUSTOMER_PREFIX: &str = "CUSTOMER#";
const EMAIL_PREFIX: &str = "EMAIL#";
const KEY_PREFIX: &str = "IDEMPOTENCY#";
pub(crate) const KIND_CUSTOMER: &str = "customer";
/// The kind of what a delete leaves of a customer: its id, version and time of deletion.
pub(crate) const KIND_DELETED: &str = "deleted";
/// The kind of an email claim.
pub(crate) const KIND_EMAIL: &str = "email";
/// The token of the operation that last wrote a customer item (see `repository::token`).
pub(crate) const WRITE_TOKEN: &str = "writeToken";
/// When DynamoDB's time to live removes an item (epoch seconds): set on tombstones only.
pub(crate) const EXPIRES_AT: &str = "expiresAt";
/// The listing shard of an item (see [`shard_of`]): the partition key of every listing index.
pub(crate) const SHARD: &str = "shard";
/// The sort key of `byCreated`: `crm_domain::listing::created_key`.
pub(crate) const CREATED_KEY: &str = "createdKey";
/// The sort key of `byUpdated`: `crm_domain::listing::updated_key`, on customers and tombstones.
pub(crate) const UPDATED_KEY: &str = "updatedKey";
/// The sort key of `byName`: `crm_domain::listing::name_key`.
pub(crate) const NAME_KEY: &str = "nameKey";
/// The sort key of `byFirstName`: `crm_domain::listing::first_name_key`.
pub(crate) const FIRST_NAME_KEY: &str = "firstNameKey";
/// How many shards each listing index is spread over, so that no index partition takes every
/// write. Changing it means rewriting every item's `shard` (the backfill does).
pub(crate) const SHARDS: u8 = 4;

/// The shard of a customer: the first byte of the SHA-256 of its id, modulo [`SHARDS`], as text.
pub(crate) fn shard_of(id: &CustomerId) -> String {
    use sha2::{Digest as _, Sha256};
    (Sha256::digest(id.as_str().as_bytes())[0] % SHARDS).to_string()
}

/// The attributes of a customer item that hold its data, which a delete removes: the fields, and
/// the order keys made of them (`nameKey` and `firstNameKey` hold the folded names, `createdKey`
/// the time of creation). A tombstone keeps `shard` and gets its own `updatedKey`, which hold no
/// customer data, so that the change feed finds it.
pub(crate) fn data_attributes() -> impl Iterator<Item = &'static str> {
    [
        "firstName",
        "lastName",
        "email",
        "emailKey",
        "phone",
        "createdAt",
        CREATED_KEY,
        NAME_KEY,
        FIRST_NAME_KEY,
    ]
    .into_iter()
    .chain(ADDRESS_ATTRIBUTES)
}

/// The listing keys of `customer`'s item, as (attribute, value): `shard`, `createdKey`,
/// `updatedKey`, `nameKey`, `firstNameKey`. Every write of a whole customer stamps them, and the
/// backfill compares stored items against them.
pub(crate) fn listing_keys(customer: &Customer) -> [(&'static str, String); 5] {
    [
        (SHARD, shard_of(customer.id())),
        (CREATED_KEY, listing::created_key(customer)),
        (
            UPDATED_KEY,
            listing::updated_key(customer.updated_at(), customer.id()),
        ),
        (NAME_KEY, listing::name_key(customer)),
        (FIRST_NAME_KEY, listing::first_name_key(customer)),
    ]
}

/// The name keys (`nameKey`, `firstNameKey`) of customer `id` named `first` `last`: what a patch
/// that sets a name writes with it.
pub(crate) fn name_keys(
    id: &CustomerId,
    first: &PersonName,
    last: &PersonName,
) -> [(&'static str, String); 2] {
    // The key functions take a customer, and read only its names and id (the unit test below
    // holds them to it): the other parts are placeholders.
    let at = Timestamp::from_unix_millis(0).unwrap_or_else(|_| Timestamp::now());
    let named = Customer::from_parts(CustomerParts {
        id: id.clone(),
        first_name: first.clone(),
        last_name: last.clone(),
        email: None,
        phone: None,
        address: None,
        created_at: at,
        updated_at: at,
        version: Version::FIRST,
    });
    [
        (NAME_KEY, listing::name_key(&named)),
        (FIRST_NAME_KEY, listing::first_name_key(&named)),
    ]
}

/// The listing keys of customer `id` changed (or deleted) at `updated_at` that hold no customer
/// data: its shard and its place in `byUpdated`, the change feed. All that a tombstone keeps.
pub(crate) fn feed_keys(id: &CustomerId, updated_at: Timestamp) -> [(&'static str, String); 2] {
    [
        (SHARD, shard_of(id)),
        (UPDATED_KEY, listing::updated_key(updated_at, id)),
    ]
}

/// The key of a customer item.
pub(crate) fn customer_pk(id: &CustomerId) -> String {
    format!("{CUSTOMER_PREFIX}{id}")
}

/// The key of the item that claims a normalized email for one customer: the SHA-256 of the email,
/// in hex. The claim only has to be unique per email, so it need not hold the address itself: the
/// one copy of an email stays on its customer's item, and a key printed anywhere (a backfill's
/// position) never carries an address.
pub(crate) fn email_pk(normalized_email: &str) -> String {
    digest_pk(EMAIL_PREFIX, normalized_email)
}

/// The key of the record of an idempotency key: its SHA-256, in hex, so that the client's text is
/// not stored.
pub(crate) fn key_pk(idempotency_key: &str) -> String {
    digest_pk(KEY_PREFIX, idempotency_key)
}

fn digest_pk(prefix: &str, text: &str) -> String {
    use sha2::{Digest as _, Sha256};
    use std::fmt::Write as _;
    let digest = Sha256::digest(text.as_bytes());
    let mut pk = String::with_capacity(prefix.len() + 2 * digest.len());
    pk.push_str(prefix);
    for byte in digest {
        let _ = write!(pk, "{byte:02x}");
    }
    pk
}

pub(crate) fn key(pk: String) -> Item {
    HashMap::from([(PK.to_owned(), AttributeValue::S(pk))])
}

/// True when `pk` is a key this repository writes: a backfill resumes only after one.
pub(crate) fn is_valid_pk(pk: &str) -> bool {
    if pk == crate::repository::CURSOR_KEY_PK {
        true
    } else if let Some(id) = pk.strip_prefix(CUSTOMER_PREFIX) {
        CustomerId::parse(id).is_ok()
    } else if let Some(digest) = pk
        .strip_prefix(EMAIL_PREFIX)
        .or_else(|| pk.strip_prefix(KEY_PREFIX))
    {
        digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    } else {
        false
    }
}

/// A customer as stored. The address is flattened into top-level attributes so that a merge patch
/// can set or remove each part in one `UpdateItem`, whether or not the customer has an address.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomerItem {
    pk: String,
    kind: String,
    id: CustomerId,
    #[serde(deserialize_with = "stored_name")]
    first_name: PersonName,
    #[serde(deserialize_with = "stored_name")]
    last_name: PersonName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<Email>,
    /// The normalized email: the key of the `byEmail` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address_line1: Option<AddressText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address_line2: Option<AddressText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address_city: Option<AddressText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address_region: Option<AddressText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address_postal_code: Option<AddressText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address_country: Option<CountryCode>,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: Version,
    // The listing keys: written with every customer, optional on the way back in, because items
    // written before the listing indexes existed lack them until the backfill runs (and reads
    // never need them: they are computed from the fields above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_name_key: Option<String>,
}

/// A stored name, read under the rules it was written by ([`PersonName::from_stored`]): a
/// customer an earlier version accepted stays readable.
fn stored_name<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<PersonName, D::Error> {
    let text = String::deserialize(deserializer)?;
    PersonName::from_stored(&text).map_err(|e| serde::de::Error::custom(e.message()))
}

/// Attribute names of the address parts, in the order of [`Address`]'s fields.
pub(crate) const ADDRESS_LINE1: &str = "addressLine1";
pub(crate) const ADDRESS_ATTRIBUTES: [&str; 6] = [
    ADDRESS_LINE1,
    "addressLine2",
    "addressCity",
    "addressRegion",
    "addressPostalCode",
    "addressCountry",
];

impl From<&Customer> for CustomerItem {
    fn from(customer: &Customer) -> Self {
        let [shard, created_key, updated_key, name_key, first_name_key] =
            listing_keys(customer).map(|(_, value)| Some(value));
        let CustomerParts {
            id,
            first_name,
            last_name,
            email,
            phone,
            address,
            created_at,
            updated_at,
            version,
        } = customer.clone().into_parts();
        let address = address.map(|a| {
            (
                Some(a.line1),
                a.line2,
                a.city,
                a.region,
                a.postal_code,
                a.country,
            )
        });
        let (
            address_line1,
            address_line2,
            address_city,
            address_region,
            address_postal_code,
            address_country,
        ) = address.unwrap_or_default();
        Self {
            pk: customer_pk(&id),
            kind: KIND_CUSTOMER.to_owned(),
            email_key: email.as_ref().map(Email::normalized),
            id,
            first_name,
            last_name,
            email,
            phone,
            address_line1,
            address_line2,
            address_city,
            address_region,
            address_postal_code,
            address_country,
            created_at,
            updated_at,
            version,
            shard,
            created_key,
            updated_key,
            name_key,
            first_name_key,
        }
    }
}

impl CustomerItem {
    fn into_customer(self) -> Customer {
        let address = self.address_line1.map(|line1| Address {
            line1,
            line2: self.address_line2,
            city: self.address_city,
            region: self.address_region,
            postal_code: self.address_postal_code,
            country: self.address_country,
        });
        Customer::from_parts(CustomerParts {
            id: self.id,
            first_name: self.first_name,
            last_name: self.last_name,
            email: self.email,
            phone: self.phone,
            address,
            created_at: self.created_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }
}

/// Why a stored item could not be read as a customer. It names no value: values are customer data.
#[derive(Debug, thiserror::Error)]
#[error("a stored customer item does not decode: {0}")]
pub(crate) struct CorruptItem(String);

/// The item of `customer`.
///
/// # Errors
/// Never for a valid customer; kept fallible because serialization is.
pub fn customer_item(customer: &Customer) -> Result<Item, RepositoryError> {
    serde_dynamo::to_item(CustomerItem::from(customer))
        .map_err(|e| RepositoryError::unexpected(CorruptItem(e.to_string())))
}

/// Reads a customer item back.
///
/// # Errors
/// [`RepositoryError::Unexpected`] when the item is not a customer this crate wrote.
pub fn customer_from_item(item: Item) -> Result<Customer, RepositoryError> {
    serde_dynamo::from_item::<_, CustomerItem>(item)
        .map(CustomerItem::into_customer)
        .map_err(|e| {
            // serde's messages may quote the value that failed; keep only the first words.
            let reason = e
                .to_string()
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned();
            RepositoryError::unexpected(CorruptItem(reason))
        })
}

/// The version attribute of a stored customer item, if readable.
pub(crate) fn item_version(item: &Item) -> Option<Version> {
    match item.get("version") {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .ok()
            .and_then(|n| Version::try_from(n).ok()),
        _ => None,
    }
}

/// The normalized email a stored customer item claims, if any.
pub(crate) fn item_email_key(item: &Item) -> Option<&str> {
    match item.get("emailKey") {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

/// True when `item` is a customer, not the tombstone of a deleted one.
pub(crate) fn is_live(item: &Item) -> bool {
    matches!(item.get(crate::stream::KIND_ATTRIBUTE), Some(AttributeValue::S(kind)) if kind == KIND_CUSTOMER)
}

/// True when the stored customer item has an address.
pub(crate) fn item_has_address(item: &Item) -> bool {
    item.contains_key(ADDRESS_LINE1)
}

/// The item that claims `normalized_email` for `id`.
pub(crate) fn claim_item(normalized_email: &str, id: &CustomerId) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(email_pk(normalized_email))),
        ("kind".to_owned(), AttributeValue::S(KIND_EMAIL.to_owned())),
        ("customerId".to_owned(), AttributeValue::S(id.to_string())),
    ])
}

/// The string value of an attribute.
pub(crate) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

/// The numeric value of a version.
pub(crate) fn n(version: Version) -> AttributeValue {
    AttributeValue::N(version.get().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Customer {
        let input = crm_domain::NewCustomer::from_json(&serde_json::json!({
            "id": "c1", "firstName": "Ada", "lastName": "Lovelace", "email": "Ada@Example.com",
            "address": {"line1": "1 Main St", "country": "GB"}
        }))
        .unwrap();
        Customer::create(input, CustomerId::generate(), Timestamp::now())
    }

    #[test]
    fn a_customer_round_trips_through_its_item() {
        let c = customer();
        let item = customer_item(&c).unwrap();
        assert_eq!(item.get("pk"), Some(&s("CUSTOMER#c1")));
        assert_eq!(item.get("emailKey"), Some(&s("ada@example.com")));
        assert_eq!(item.get("addressCountry"), Some(&s("GB")));
        assert_eq!(item.get("version"), Some(&AttributeValue::N("1".into())));
        assert!(!item.contains_key("address"));
        assert_eq!(customer_from_item(item).unwrap(), c);
    }

    #[test]
    fn a_customer_item_carries_its_listing_keys() {
        let c = customer();
        let item = customer_item(&c).unwrap();
        assert_eq!(item.get(SHARD), Some(&s(&shard_of(c.id()))));
        assert_eq!(item.get(CREATED_KEY), Some(&s(&listing::created_key(&c))));
        assert_eq!(
            item.get(UPDATED_KEY),
            Some(&s(&listing::updated_key(c.updated_at(), c.id())))
        );
        assert_eq!(item.get(NAME_KEY), Some(&s(&listing::name_key(&c))));
        assert_eq!(
            item.get(FIRST_NAME_KEY),
            Some(&s(&listing::first_name_key(&c)))
        );
    }

    #[test]
    fn the_name_keys_of_a_patch_are_those_of_the_customer_it_makes() {
        let c = customer();
        let keys = listing_keys(&c);
        assert_eq!(
            name_keys(c.id(), c.first_name(), c.last_name()),
            [keys[3].clone(), keys[4].clone()]
        );
    }

    #[test]
    fn an_item_written_before_the_listing_keys_still_reads() {
        let c = customer();
        let mut item = customer_item(&c).unwrap();
        for (attribute, _) in listing_keys(&c) {
            item.remove(attribute);
        }
        assert_eq!(customer_from_item(item).unwrap(), c);
    }

    #[test]
    fn a_delete_removes_the_keys_made_of_customer_data_and_keeps_the_feed_s() {
        let removed: Vec<&str> = data_attributes().collect();
        for attribute in [CREATED_KEY, NAME_KEY, FIRST_NAME_KEY, "firstName", "email"] {
            assert!(removed.contains(&attribute), "{attribute}");
        }
        for attribute in [SHARD, UPDATED_KEY, "updatedAt", "version", WRITE_TOKEN] {
            assert!(!removed.contains(&attribute), "{attribute}");
        }
        let id = CustomerId::parse("c1").unwrap();
        let at = Timestamp::parse("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(
            feed_keys(&id, at),
            [
                (SHARD, shard_of(&id)),
                (UPDATED_KEY, "2026-12-01T00:00:00.000Z#c1".to_owned())
            ]
        );
    }

    #[test]
    fn shards_spread_ids_over_every_shard() {
        let shards: std::collections::BTreeSet<String> = (0..100)
            .map(|i| shard_of(&CustomerId::parse(&format!("c{i}")).unwrap()))
            .collect();
        let all: std::collections::BTreeSet<String> = (0..SHARDS).map(|s| s.to_string()).collect();
        assert_eq!(shards, all);
    }

    #[test]
    fn an_email_claim_holds_no_address() {
        let claim = claim_item("ada@example.com", &CustomerId::parse("c1").unwrap());
        let pk = email_pk("ada@example.com");
        assert_eq!(claim.get("pk"), Some(&s(&pk)));
        // The SHA-256 of "ada@example.com".
        assert_eq!(
            pk,
            "EMAIL#b5fc85e55755f9e0d030a10ab4429b6b2944855f9a0d60077fe832becbc41d72"
        );
        assert!(!format!("{claim:?}").contains("ada@"));
    }

    #[test]
    fn a_name_an_earlier_version_stored_stays_readable() {
        let mut item = customer_item(&customer()).unwrap();
        // A bidirectional override: refused from clients since, accepted before.
        item.insert("firstName".into(), s("Ada\u{202E}"));
        let read = customer_from_item(item).unwrap();
        assert_eq!(read.first_name().as_str(), "Ada\u{202E}");
        assert!(PersonName::parse("Ada\u{202E}").is_err());
    }

    #[test]
    fn a_corrupt_item_is_an_error_that_quotes_no_value() {
        let mut item = customer_item(&customer()).unwrap();
        item.insert("email".into(), s("secret-not-an-email"));
        let err = customer_from_item(item).unwrap_err();
        let chain = format!("{err} {:?}", std::error::Error::source(&err));
        assert!(!chain.contains("secret"), "{chain}");
    }

    #[test]
    fn only_keys_this_repository_writes_are_valid_positions() {
        assert!(is_valid_pk("CUSTOMER#abc"));
        assert!(is_valid_pk(&email_pk("ada@example.com")));
        assert!(is_valid_pk(&key_pk("order-1")));
        for bad in [
            "CUSTOMER#",
            "CUSTOMER#a b",
            "EMAIL#ada@example.com",
            &email_pk("ada@example.com").to_uppercase(),
            &format!("{}0", email_pk("ada@example.com")),
            "EMAIL#zz",
            "x",
            "",
        ] {
            assert!(!is_valid_pk(bad), "{bad}");
        }
    }
}
