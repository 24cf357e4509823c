//! Finding customers: the orders a listing comes in, name search, the change feed, and the keys
//! every store sorts by.
//!
//! Both stores order by the same keys, built here, so that a listing is the same sequence on
//! either and a cursor means the same position:
//!
//! | order | key | ties |
//! | --- | --- | --- |
//! | [`SortOrder::CreatedAt`] (and its reverse) | `createdAt` | id |
//! | [`SortOrder::UpdatedAt`] and [the change feed](Change) | `updatedAt` | id |
//! | [`SortOrder::Name`] | the [folded](fold) text `last first` | id |
//!
//! Names compare as the folded text `last first`: last names first, and word by word, so `Smith`
//! comes before `Smithe` and `Smith-Jones`, and `Mary` before `Mary Ann`. Where one last name is
//! the first word of another (`De` and `De La Cruz`), the words of the first name take part in the
//! comparison as if they continued the last name; this is what lets one index answer a search for
//! `last first` as well as for the last name alone.
//!
//! A [name search](NamePrefix) finds the customers whose folded `last first` or `first last`
//! starts with the folded text. Its results are ordered by the name as it matched: a customer
//! found by last name sorts by `last first`, one found by first name by `first last`, and one found
//! both ways by the smaller of the two, once. A store answers that order from two sorted indexes
//! at a cost bounded by the page size; sorting first-name matches by last name would mean reading
//! all of them.
//!
//! ```
//! use crm_domain::listing::fold;
//!
//! assert_eq!(fold("Émile"), fold("emile"));
//! assert_eq!(fold("ZOË"), fold("Zoe"));
//! assert_eq!(fold("Ｓｍｉｔｈ"), fold("smith")); // full width
//! assert_eq!(fold("Straße"), fold("STRASSE"));
//! assert_eq!(fold("ΟΔΥΣΣΕΥΣ"), fold("Οδυσσεύς"));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use unicode_normalization::UnicodeNormalization as _;

use crate::customer::Customer;
use crate::fields::{CustomerId, InvalidValue, Timestamp, Version};
use crate::page::{Cursor, CursorKey};

/// Folds a name for comparison: case-, accent- and width-insensitive.
///
/// The text is decomposed (NFKD, which also maps full- and half-width forms to their usual ones),
/// its combining diacritical marks are dropped (`é` → `e`, `ö` → `o`, `й` → `и`), it is lower-cased
/// with the few full case foldings that lower-casing misses (`ß` → `ss`, final `ς` → `σ`), and runs
/// of white space become one space; characters that render as nothing (soft hyphens, zero-width
/// joiners, variation selectors) are dropped. Marks that are letters' vowels or voicing
/// (Devanagari, Thai, Japanese kana) are kept: they are not accents.
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    let mut space = false;
    for c in text
        .nfkd()
        .filter(|c| !is_diacritic(*c) && !crate::fields::is_default_ignorable(*c))
    {
        if c.is_whitespace() {
            space = !folded.is_empty();
            continue;
        }
        if space {
            folded.push(' ');
            space = false;
        }
        match c {
            'ß' | 'ẞ' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            // A noncharacter never reaches a key: the upper bound of a prefix range relies on it.
            c if is_noncharacter(c) => {}
            c => folded.extend(c.to_lowercase()),
        }
    }
    // `to_lowercase` may decompose again (İ → i + U+0307): drop what that brings back.
    if folded.chars().any(is_diacritic) {
        folded.retain(|c| !is_diacritic(c));
    }
    folded
}

/// The combining diacritical marks that [`fold`] drops.
fn is_diacritic(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

fn is_noncharacter(c: char) -> bool {
    let c = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SortOrder {
    /// Oldest first (`createdAt`): the default.
    #[default]
    CreatedAt,
    /// Newest first (`-createdAt`).
    CreatedAtDescending,
    /// By name (`name`): see the [module docs](self).
    Name,
    /// Least recently changed first (`updatedAt`).
    UpdatedAt,
}

impl SortOrder {
    /// Every order, in the spelling clients use.
    pub const ALL: [Self; 4] = [
        Self::CreatedAt,
        Self::CreatedAtDescending,
        Self::Name,
        Self::UpdatedAt,
    ];

    /// The order's name as clients write it: `createdAt`, `-createdAt`, `name`, `updatedAt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "createdAt",
            Self::CreatedAtDescending => "-createdAt",
            Self::Name => "name",
            Self::UpdatedAt => "updatedAt",
        }
    }

    /// The orders as a sentence, for error messages: "createdAt, -createdAt, name or updatedAt".
    pub fn supported() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|o| o.as_str()).collect();
        format!(
            "{} or {}",
            names[..names.len() - 1].join(", "),
            names[names.len() - 1]
        )
    }

    /// The key of `customer` in this order.
    pub fn key(self, customer: &Customer) -> String {
        match self {
            Self::CreatedAt | Self::CreatedAtDescending => {
                time_key(customer.created_at(), customer.id())
            }
            Self::Name => name_key(customer),
            Self::UpdatedAt => time_key(customer.updated_at(), customer.id()),
        }
    }

    /// True when the listing runs from the largest key down.
    pub fn descending(self) -> bool {
        self == Self::CreatedAtDescending
    }
}

impl fmt::Display for SortOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SortOrder {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|order| order.as_str() == s)
            .ok_or_else(|| InvalidValue::new(format!("must be {}", Self::supported())))
    }
}

/// The text of a name search: 1–100 characters after trimming, kept [folded](fold).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamePrefix(String);

impl NamePrefix {
    /// The longest search text, in characters after trimming.
    pub const MAX_CHARS: usize = 100;

    /// A search text.
    ///
    /// # Errors
    /// When the trimmed text is empty, longer than 100 characters, or folds to nothing (only
    /// accents or invisible characters).
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let trimmed = text.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(InvalidValue::new("must not be empty"));
        }
        if chars > Self::MAX_CHARS {
            return Err(InvalidValue::new(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidValue::new("must not contain control characters"));
        }
        let mut folded = fold(trimmed);
        if folded.is_empty() {
            return Err(InvalidValue::new("must contain a letter or digit"));
        }
        // Keys hold at most NAME_KEY_BYTES of each folded name; a longer text is cut the same way,
        // which can only widen what it finds, never miss a customer it names.
        folded.truncate(floor_char_boundary(&folded, NAME_KEY_BYTES));
        Ok(Self(folded))
    }

    /// The folded text: the prefix keys are matched against.
    pub fn folded(&self) -> &str {
        &self.0
    }

    /// The key under which a name search finds `customer`, if it finds it at all: the smaller of
    /// its [`name_key`] and [`first_name_key`] among those that start with this text.
    pub fn key_of(&self, customer: &Customer) -> Option<String> {
        [name_key(customer), first_name_key(customer)]
            .into_iter()
            .filter(|key| key.starts_with(&self.0))
            .min()
    }

    /// The least string greater than every key that starts with this text (keys hold no
    /// noncharacter), so that a store can read the keys with this prefix as a range.
    pub fn upper_bound(&self) -> String {
        format!("{}\u{10FFFF}", self.0)
    }
}

/// What a listing holds and in which order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Listing {
    /// Every customer, in an order.
    All(SortOrder),
    /// The customers whose name starts with a text, ordered as the [module docs](self) say.
    Name(NamePrefix),
}

impl Default for Listing {
    fn default() -> Self {
        Self::All(SortOrder::default())
    }
}

impl Listing {
    /// The scope a cursor of this listing is bound to.
    fn scope(&self) -> String {
        match self {
            Self::All(order) => order.as_str().to_owned(),
            // A short digest binds the cursor to its search text without spelling the text twice.
            Self::Name(prefix) => format!("search.{}", short_digest(prefix.folded())),
        }
    }

    /// The key of `customer` in this listing, `None` when the listing does not hold it.
    pub fn key(&self, customer: &Customer) -> Option<String> {
        match self {
            Self::All(order) => Some(order.key(customer)),
            Self::Name(prefix) => prefix.key_of(customer),
        }
    }

    /// The cursor, sealed with `seal`, of a page of this listing whose last item has `key`.
    pub fn cursor(&self, seal: &CursorKey, key: &str) -> Cursor {
        seal.seal(&format!("{}|{key}", self.scope()))
    }

    /// The key a cursor of this listing, sealed with `seal`, points after.
    ///
    /// # Errors
    /// When the cursor does not open with `seal`, was made for another listing (another order,
    /// another search text) or does not hold a key of this listing's shape.
    pub fn position(&self, seal: &CursorKey, cursor: &Cursor) -> Result<String, InvalidCursor> {
        let key = scoped(seal, cursor, &self.scope())?;
        let valid = match self {
            Self::All(
                SortOrder::CreatedAt | SortOrder::CreatedAtDescending | SortOrder::UpdatedAt,
            ) => is_time_key(&key),
            Self::All(SortOrder::Name) => is_name_key(&key),
            Self::Name(prefix) => is_name_key(&key) && key.starts_with(prefix.folded()),
        };
        if valid { Ok(key) } else { Err(InvalidCursor) }
    }
}

/// The change feed's cursors: bound to the feed, holding an [`updated_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeFeed;

impl ChangeFeed {
    const SCOPE: &'static str = "changes";

    /// The cursor, sealed with `seal`, of a page whose last change has `key`.
    pub fn cursor(seal: &CursorKey, key: &str) -> Cursor {
        seal.seal(&format!("{}|{key}", Self::SCOPE))
    }

    /// The key a cursor of the change feed, sealed with `seal`, points after.
    ///
    /// # Errors
    /// When the cursor does not open with `seal`, was made for a listing, or holds no
    /// [`updated_key`].
    pub fn position(seal: &CursorKey, cursor: &Cursor) -> Result<String, InvalidCursor> {
        let key = scoped(seal, cursor, Self::SCOPE)?;
        if is_time_key(&key) {
            Ok(key)
        } else {
            Err(InvalidCursor)
        }
    }

    /// The smallest key of the changes at or after `since`.
    pub fn start(since: Timestamp) -> String {
        // '#' sorts before every character of an id, so this is below every key at `since`.
        format!("{}#", time_text(since))
    }
}

/// A cursor that does not belong to the listing it came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor does not belong to this listing")]
pub struct InvalidCursor;

fn scoped(seal: &CursorKey, cursor: &Cursor, scope: &str) -> Result<String, InvalidCursor> {
    let position = seal.open(cursor).ok_or(InvalidCursor)?;
    let (found, key) = position.split_once('|').ok_or(InvalidCursor)?;
    if found == scope && key.len() <= MAX_KEY_BYTES {
        Ok(key.to_owned())
    } else {
        Err(InvalidCursor)
    }
}

/// More than any key holds: two folded names of 100 characters (each may fold to more, `ß` to
/// `ss`, a ligature to letters, up to 4 bytes each) and an id.
const MAX_KEY_BYTES: usize = 2 * NAME_KEY_BYTES + 2 + CustomerId::MAX_LEN;

/// The most a key holds of one folded name. A name of 100 characters folds to far more in a few
/// scripts (`ﷺ` to 18 letters), and DynamoDB keys of an index hold at most 1,024 bytes; names that
/// long compare by their first 300 bytes, then by id.
pub const NAME_KEY_BYTES: usize = 300;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

fn capped(mut folded: String) -> String {
    folded.truncate(floor_char_boundary(&folded, NAME_KEY_BYTES));
    folded
}

/// The longest position a cursor carries: a scope and a key.
#[cfg(test)]
pub(crate) const MAX_POSITION_BYTES: usize = MAX_KEY_BYTES + "search.|".len() + 12;

/// The key of a customer (or of its tombstone) in the `updatedAt` order and the change feed.
pub fn updated_key(updated_at: Timestamp, id: &CustomerId) -> String {
    time_key(updated_at, id)
}

/// The key of `customer` in the `createdAt` order.
pub fn created_key(customer: &Customer) -> String {
    time_key(customer.created_at(), customer.id())
}

/// The key of `customer` in the name order: its folded `last first`, then its id.
pub fn name_key(customer: &Customer) -> String {
    names_key(
        customer.last_name().as_str(),
        customer.first_name().as_str(),
        customer.id(),
    )
}

/// The key under which a name search finds `customer` by its first name: its folded
/// `first last`, then its id.
pub fn first_name_key(customer: &Customer) -> String {
    names_key(
        customer.first_name().as_str(),
        customer.last_name().as_str(),
        customer.id(),
    )
}

/// The separator before the id of a name key: below every character a folded name holds, so that
/// `mary` sorts before `mary ann` whatever their ids.
const ID_SEPARATOR: char = '\u{1}';

fn names_key(first: &str, second: &str, id: &CustomerId) -> String {
    format!(
        "{} {}{ID_SEPARATOR}{id}",
        capped(fold(first)),
        capped(fold(second))
    )
}

fn is_name_key(key: &str) -> bool {
    key.rsplit_once(ID_SEPARATOR)
        .is_some_and(|(names, id)| !names.is_empty() && CustomerId::parse(id).is_ok())
}

/// `<RFC 3339 time, always 24 characters>#<id>`: sorts by time, then id.
fn time_key(at: Timestamp, id: &CustomerId) -> String {
    format!("{}#{id}", time_text(at))
}

fn time_text(at: Timestamp) -> String {
    // Display writes four-digit years and three fraction digits: fixed width, so text order is
    // time order.
    at.to_string()
}

fn is_time_key(key: &str) -> bool {
    key.split_once('#').is_some_and(|(at, id)| {
        at.len() == 24
            && Timestamp::parse(at).is_ok_and(|t| time_text(t) == at)
            && CustomerId::parse(id).is_ok()
    })
}

fn short_digest(text: &str) -> String {
    use sha2::{Digest as _, Sha256};
    use std::fmt::Write as _;
    Sha256::digest(text.as_bytes())[..6]
        .iter()
        .fold(String::with_capacity(12), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// What a delete leaves of a customer for the change feed: its id, the version the delete gave it
/// and when. No field of the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The id of the deleted customer.
    pub id: CustomerId,
    /// The customer's version after the delete: one more than its last.
    pub version: Version,
    /// When it was deleted.
    pub deleted_at: Timestamp,
}

impl Serialize for Tombstone {
    /// `{"id", "deleted": true, "version", "updatedAt"}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut out = serializer.serialize_struct("Tombstone", 4)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("deleted", &true)?;
        out.serialize_field("version", &self.version)?;
        out.serialize_field("updatedAt", &self.deleted_at)?;
        out.end()
    }
}

/// One entry of the change feed: a customer as it is now, or the tombstone of a deleted one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Change {
    /// A customer created or changed at or after the feed's start.
    Customer(Customer),
    /// A customer deleted at or after the feed's start.
    Deleted(Tombstone),
}

impl Change {
    /// The id of the customer.
    pub fn id(&self) -> &CustomerId {
        match self {
            Self::Customer(c) => c.id(),
            Self::Deleted(t) => &t.id,
        }
    }

    /// The version the change produced.
    pub fn version(&self) -> Version {
        match self {
            Self::Customer(c) => c.version(),
            Self::Deleted(t) => t.version,
        }
    }

    /// When the change happened.
    pub fn updated_at(&self) -> Timestamp {
        match self {
            Self::Customer(c) => c.updated_at(),
            Self::Deleted(t) => t.deleted_at,
        }
    }

    /// The change's key in the feed: [`updated_key`] of its time and id.
    pub fn key(&self) -> String {
        updated_key(self.updated_at(), self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewCustomer;

    fn customer(id: &str, first: &str, last: &str) -> Customer {
        let input = NewCustomer::from_json(
            &serde_json::json!({"id": id, "firstName": first, "lastName": last}),
        )
        .unwrap();
        Customer::create(input, CustomerId::parse(id).unwrap(), Timestamp::now())
    }

    #[test]
    fn folding_ignores_case_accents_and_width_in_many_scripts() {
        for (a, b) in [
            ("Émile", "emile"),
            ("ZOË", "zoe"),
            ("Ｌｏｖｅｌａｃｅ", "lovelace"),
            ("ｶﾀｶﾅ", "カタカナ"),
            ("Straße", "strasse"),
            ("ΣΩΚΡΆΤΗΣ", "σωκρατης"),
            ("Οδυσσεύς", "οδυσσευσ"),
            ("Ёлка", "елка"),
            ("İstanbul", "istanbul"),
            ("  Mary \t Ann ", "mary ann"),
            ("Łukasz", "łukasz"),
        ] {
            assert_eq!(fold(a), fold(b), "{a} / {b}");
        }
        // Not accents: vowels of Devanagari, voicing of kana.
        assert_ne!(fold("कि"), fold("क"));
        assert_ne!(fold("ガ"), fold("カ"));
    }

    #[test]
    fn names_order_by_last_name_then_first_then_id() {
        let mut customers = [
            customer("c5", "Ann", "Smith-Jones"),
            customer("c4", "Zed", "Smithe"),
            customer("c3", "Mary Ann", "Smith"),
            customer("c2", "Mary", "Smith"),
            customer("c1", "Mary", "SMITH"),
            customer("c0", "émile", "Zola"),
        ];
        customers.sort_by_key(name_key);
        let ids: Vec<&str> = customers.iter().map(|c| c.id().as_str()).collect();
        assert_eq!(ids, ["c1", "c2", "c3", "c5", "c4", "c0"]);
    }

    #[test]
    fn a_search_finds_either_name_and_both_full_names() {
        let ada = customer("c1", "Ada", "Lovelace");
        for text in ["ada", "ADA L", "love", "Lovelace Ad", "ada lovelace"] {
            assert!(
                NamePrefix::parse(text).unwrap().key_of(&ada).is_some(),
                "{text}"
            );
        }
        for text in ["lace", "ada x", "lovelace b"] {
            assert!(
                NamePrefix::parse(text).unwrap().key_of(&ada).is_none(),
                "{text}"
            );
        }
        let anna = customer("c2", "Anna", "Anna");
        assert_eq!(
            NamePrefix::parse("ann").unwrap().key_of(&anna),
            Some(name_key(&anna))
        );
    }

    #[test]
    fn search_texts_are_one_to_a_hundred_characters_after_trimming() {
        assert!(NamePrefix::parse(&"a".repeat(100)).is_ok());
        for bad in ["", "   ", &"a".repeat(101), "\u{301}", "a\u{7}"] {
            assert!(NamePrefix::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_cursor_is_bound_to_its_listing() {
        let seal = CursorKey::generate();
        let ada = customer("c1", "Ada", "Lovelace");
        let by_name = Listing::All(SortOrder::Name);
        let cursor = by_name.cursor(&seal, &name_key(&ada));
        assert_eq!(by_name.position(&seal, &cursor), Ok(name_key(&ada)));
        assert!(by_name.position(&CursorKey::generate(), &cursor).is_err());
        let created = Listing::All(SortOrder::CreatedAt);
        assert!(created.position(&seal, &cursor).is_err());
        assert!(ChangeFeed::position(&seal, &cursor).is_err());
        let search = Listing::Name(NamePrefix::parse("love").unwrap());
        let found = search.cursor(&seal, &name_key(&ada));
        assert!(search.position(&seal, &found).is_ok());
        let other_search = Listing::Name(NamePrefix::parse("ada").unwrap());
        assert!(other_search.position(&seal, &found).is_err());
        let cursor = created.cursor(&seal, &created_key(&ada));
        assert!(created.position(&seal, &cursor).is_ok());
        let newest_first = Listing::All(SortOrder::CreatedAtDescending);
        assert!(newest_first.position(&seal, &cursor).is_err());
        let feed = ChangeFeed::cursor(&seal, &created_key(&ada));
        assert!(ChangeFeed::position(&seal, &feed).is_ok());
        assert!(created.position(&seal, &feed).is_err());
        for forged in [
            "createdAt|x",
            "createdAt|2026-01-01T00:00:00Z#c1",
            "name|nobody",
        ] {
            assert!(
                created.position(&seal, &seal.seal(forged)).is_err(),
                "{forged}"
            );
        }
    }

    #[test]
    fn names_that_fold_long_make_keys_dynamodb_can_hold() {
        // U+FDFA folds to 18 letters, U+337F to 4.
        let long = customer("c1", &"\u{FDFA}".repeat(100), &"\u{337F}".repeat(100));
        for key in [name_key(&long), first_name_key(&long)] {
            assert!(
                key.len() <= MAX_KEY_BYTES && key.len() <= 1024,
                "{}",
                key.len()
            );
            assert!(is_name_key(&key));
        }
        for text in [&"\u{337F}".repeat(100), &"\u{FDFA}".repeat(100)] {
            let prefix = NamePrefix::parse(text).unwrap();
            assert!(prefix.folded().len() <= NAME_KEY_BYTES);
            assert!(
                prefix.key_of(&long).is_some(),
                "a long name is found by itself"
            );
            assert!(prefix.upper_bound().len() <= 1024);
        }
        let seal = CursorKey::generate();
        let search = Listing::Name(NamePrefix::parse(&"\u{FDFA}".repeat(100)).unwrap());
        let cursor = search.cursor(&seal, &first_name_key(&long));
        assert!(Cursor::parse(cursor.as_str()).is_ok());
        assert_eq!(search.position(&seal, &cursor), Ok(first_name_key(&long)));
    }

    #[test]
    fn characters_that_render_as_nothing_do_not_count() {
        assert_eq!(fold("Ada\u{AD}"), "ada");
        assert_eq!(fold("Lo\u{200D}ve\u{FE0F}lace"), "lovelace");
    }

    #[test]
    fn a_prefix_range_holds_every_key_with_the_prefix() {
        let prefix = NamePrefix::parse("zo").unwrap();
        let zoe = customer("c1", "Zoë", "Zzz");
        let key = first_name_key(&zoe);
        assert!(key.starts_with(prefix.folded()));
        assert!(key < prefix.upper_bound());
    }

    #[test]
    fn a_tombstone_says_deleted_and_holds_no_field() {
        let tombstone = Tombstone {
            id: CustomerId::parse("c1").unwrap(),
            version: Version::FIRST.next(),
            deleted_at: Timestamp::parse("2026-12-01T00:00:00Z").unwrap(),
        };
        assert_eq!(
            serde_json::to_value(Change::Deleted(tombstone)).unwrap(),
            serde_json::json!({"id": "c1", "deleted": true, "version": 2,
                "updatedAt": "2026-12-01T00:00:00.000Z"})
        );
    }
}
