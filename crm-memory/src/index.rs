//! The ordered indexes of the store and the walk that reads a page from them.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::iter::Peekable;
use std::ops::{Bound, Deref};
use std::sync::{Arc, PoisonError, RwLock};

use crm_domain::Customer;
use crm_domain::listing::{created_key, first_name_key, name_key, updated_key};

/// How many leading bytes of a key are kept inline, as [`HEAD_WORDS`] big-endian words.
const HEAD_BYTES: usize = 32;
const HEAD_WORDS: usize = HEAD_BYTES / 8;

/// A key of an ordered index (a key of `crm_domain::listing`), in the form the B-trees compare
/// fast.
///
/// The text is shared: one allocation, referenced by the customer's [`Keys`] and by its index
/// entry, so an entry costs no copy of its key and a patch keeps the keys that did not change.
/// Its first 32 bytes are also held inline, zero-padded, as four big-endian words (the head):
/// comparing two keys compares the heads as integers, in the B-tree node itself, and reads the
/// texts only when the heads are equal. A time key's head is its whole time to the millisecond
/// (the first 24 bytes); a name key's, its folded names and most often enough of the id to tell
/// customers of the same name apart. So a descent of a B-tree by a `Key` (an insert or a
/// removal) compares integers at every level, rather than following a pointer to a string on the
/// heap and calling `memcmp` for each key it passes: the two or three levels more that a tree of
/// 1,000,000 keys has than one of 10,000 cost few instructions (and no wait for a key's text; the
/// nodes themselves still have to come from memory). (A page's descent to its cursor compares
/// the cursor's `&str` with the texts, once per page.)
///
/// The order is the order of the texts: a zero-padded prefix orders as the texts do whenever the
/// heads differ (the first byte that differs is a byte of both texts, or the end of the shorter,
/// which is then a prefix of the other), and equal heads defer to the texts. So a key borrows as
/// its text ([`Borrow<str>`]), and a page's range of keys starts at the `&str` of a cursor.
#[derive(Clone)]
pub(crate) struct Key {
    head: [u64; HEAD_WORDS],
    text: Arc<str>,
}

impl Key {
    pub(crate) fn new(text: &str) -> Self {
        let mut bytes = [0; HEAD_BYTES];
        let len = text.len().min(HEAD_BYTES);
        bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        let (words, _) = bytes.as_chunks::<8>();
        let mut head = [0; HEAD_WORDS];
        for (word, chunk) in head.iter_mut().zip(words) {
            *word = u64::from_be_bytes(*chunk);
        }
        Self {
            head,
            text: Arc::from(text),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.head.cmp(&other.head).then_with(|| {
            // The same text (an entry removed by the key it was inserted with) is not read.
            if Arc::ptr_eq(&self.text, &other.text) {
                Ordering::Equal
            } else {
                self.text.cmp(&other.text)
            }
        })
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.text
    }
}

impl Deref for Key {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

/// The keys of one customer in the orders a patch seldom changes, computed once when it is
/// written: creation and the two name orders (its `updatedAt` key is its [`Record`]'s).
///
/// Kept beside the customer so that the entries it left in the indexes are removed by the very
/// keys that were inserted (folding a name is not repeated, and could not drift), and so that a
/// name search can tell under which key it finds the customer without folding its names again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    pub(crate) created: Key,
    pub(crate) name: Key,
    pub(crate) first_name: Key,
}

impl Keys {
    fn of(customer: &Customer) -> Self {
        Self {
            created: Key::new(&created_key(customer)),
            name: Key::new(&name_key(customer)),
            first_name: Key::new(&first_name_key(customer)),
        }
    }

    /// Whether these keys, those of `previous`, are also the keys of `next`, a new version of it.
    fn fit(previous: &Customer, next: &Customer) -> bool {
        previous.id() == next.id()
            && previous.created_at() == next.created_at()
            && previous.first_name() == next.first_name()
            && previous.last_name() == next.last_name()
    }

    /// The keys of `next`, a new version of `previous`, whose keys these are: a key whose inputs
    /// did not change is kept, shared (the creation key, on a rename), which spares making it
    /// again and lets [`Indexes::replace`] leave its entry where it is.
    fn of_next(&self, previous: &Customer, next: &Customer) -> Self {
        let same_id = previous.id() == next.id();
        let same_names = same_id
            && previous.first_name() == next.first_name()
            && previous.last_name() == next.last_name();
        let kept_or = |same: bool, kept: &Key, make: fn(&Customer) -> String| {
            if same {
                kept.clone()
            } else {
                Key::new(&make(next))
            }
        };
        Self {
            created: kept_or(
                same_id && previous.created_at() == next.created_at(),
                &self.created,
                created_key,
            ),
            name: kept_or(same_names, &self.name, name_key),
            first_name: kept_or(same_names, &self.first_name, first_name_key),
        }
    }

    /// The key under which a search for `prefix` (folded) finds the customer: the smaller of its
    /// two name keys among those that start with `prefix`. The same answer as
    /// [`NamePrefix::key_of`](crm_domain::NamePrefix::key_of), from the stored keys.
    pub(crate) fn found_by(&self, prefix: &str) -> Option<&str> {
        [self.name.as_str(), self.first_name.as_str()]
            .into_iter()
            .filter(|key| key.starts_with(prefix))
            .min()
    }
}

/// A customer as stored: shared by the map by id and by its four index entries, so that a page
/// reads the customers straight from the index it walks, with no lookup by id per item.
///
/// The customer is held in a lock of its own so that a patch that keeps these keys (one that
/// renames nobody: nearly all) puts the new version in place, where every entry already points,
/// rather than descending the indexes to point each entry at a new value. The lock is never
/// contended: every access goes through the store's state, under the store's own lock, which
/// already keeps writers apart from readers, and no `Stored` leaves the store (pages, events and
/// the feed get the `Customer`). It is there for the type system (interior mutability through a
/// shared value), at the cost of two uncontended atomic operations per read besides the clone of
/// the customer's reference count.
#[derive(Debug)]
pub(crate) struct Stored {
    current: RwLock<Customer>,
    pub(crate) keys: Keys,
}

impl Stored {
    fn new(customer: Customer) -> Arc<Self> {
        Arc::new(Self {
            keys: Keys::of(&customer),
            current: RwLock::new(customer),
        })
    }

    /// The customer as it is now (a shared value: a reference count, not a copy).
    pub(crate) fn customer(&self) -> Customer {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `next`, the version after `previous` (this one), current in place when its keys are
    /// these; otherwise the same customer stored anew, with the keys it keeps shared.
    fn next(self: &Arc<Self>, previous: &Customer, next: Customer) -> Arc<Self> {
        if Keys::fit(previous, &next) {
            // Assigning does not panic: a poisoned lock holds a whole customer all the same.
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
            Arc::clone(self)
        } else {
            Arc::new(Self {
                keys: self.keys.of_next(previous, &next),
                current: RwLock::new(next),
            })
        }
    }
}

/// A customer in the map by id: where it is stored, and its key in the `updatedAt` order, which
/// every patch changes and only the store's writers read.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) stored: Arc<Stored>,
    pub(crate) updated: Key,
}

impl Record {
    pub(crate) fn new(customer: Customer) -> Self {
        Self {
            updated: Key::new(&updated_key(customer.updated_at(), customer.id())),
            stored: Stored::new(customer),
        }
    }

    /// `next`, the version after `previous` (this record's): a new record, its entries changed in
    /// `indexes` where its keys changed, or the same stored value with the new version in place.
    pub(crate) fn next(&self, previous: &Customer, next: Customer, indexes: &mut Indexes) -> Self {
        let updated = if previous.id() == next.id() && previous.updated_at() == next.updated_at() {
            self.updated.clone()
        } else {
            Key::new(&updated_key(next.updated_at(), next.id()))
        };
        let record = Self {
            stored: self.stored.next(previous, next),
            updated,
        };
        indexes.replace(self, &record);
        record
    }

    /// Every key, with its index: created, updated, name, first name.
    fn keys(&self) -> [&Key; 4] {
        let keys = &self.stored.keys;
        [&keys.created, &self.updated, &keys.name, &keys.first_name]
    }
}

/// An ordered index: a key of `crm_domain::listing` → the customer it belongs to.
pub(crate) type Index = BTreeMap<Key, Arc<Stored>>;

/// The orders of the customers.
#[derive(Debug, Default)]
pub(crate) struct Indexes {
    /// [`created_key`]: the `createdAt` orders.
    pub(crate) created: Index,
    /// [`updated_key`] of the customers: the `updatedAt` order and half of the change feed.
    pub(crate) updated: Index,
    /// [`name_key`]: the name order and name search by last name.
    pub(crate) name: Index,
    /// [`first_name_key`]: name search by first name.
    pub(crate) first_name: Index,
}

impl Indexes {
    pub(crate) fn add(&mut self, record: &Record) {
        for (index, key) in self.each(record) {
            index.insert(key.clone(), Arc::clone(&record.stored));
        }
    }

    pub(crate) fn remove(&mut self, record: &Record) {
        for (index, key) in self.each(record) {
            index.remove(key);
        }
    }

    /// Puts `new` in place of `old`, a former version of the same customer: an index whose key
    /// changed moves the entry; one whose key did not is left alone when the stored value is the
    /// same (the new version was put in place), or points the entry at the new value.
    fn replace(&mut self, old: &Record, new: &Record) {
        let same = Arc::ptr_eq(&old.stored, &new.stored);
        for ((index, old), key) in self.each(old).into_iter().zip(new.keys()) {
            if old != key {
                index.remove(old);
                index.insert(key.clone(), Arc::clone(&new.stored));
            } else if !same && let Some(entry) = index.get_mut(key) {
                *entry = Arc::clone(&new.stored);
            }
        }
    }

    fn each<'k>(&mut self, record: &'k Record) -> [(&mut Index, &'k Key); 4] {
        let [created, updated, name, first_name] = record.keys();
        [
            (&mut self.created, created),
            (&mut self.updated, updated),
            (&mut self.name, name),
            (&mut self.first_name, first_name),
        ]
    }
}

/// The entries of `index` after `after` (from the start when `None`), in ascending key order, or in
/// descending order before `after` when `descending`.
pub(crate) fn from<'a>(
    index: &'a Index,
    after: Option<&str>,
    descending: bool,
) -> Box<dyn Iterator<Item = (&'a Key, &'a Arc<Stored>)> + 'a> {
    let after = after.map_or(Bound::Unbounded, Bound::Excluded);
    if descending {
        Box::new(index.range::<str, _>((Bound::Unbounded, after)).rev())
    } else {
        Box::new(index.range::<str, _>((after, Bound::Unbounded)))
    }
}

/// The entries of `index` with keys in `(start, end)`; nothing when the range is empty or
/// inverted (a forged cursor may point past the end), where `BTreeMap::range` would panic.
pub(crate) fn between<'a>(
    index: &'a Index,
    start: Bound<&str>,
    end: &str,
) -> impl Iterator<Item = (&'a Key, &'a Arc<Stored>)> + use<'a> {
    let open = match start {
        Bound::Included(key) | Bound::Excluded(key) => key < end,
        Bound::Unbounded => true,
    };
    open.then(|| index.range::<str, _>((start, Bound::Excluded(end))))
        .into_iter()
        .flatten()
}

/// Two ascending walks merged into one ascending walk; an entry whose key both hold is yielded once,
/// from the first (equal keys belong to the same customer: every key ends with its id).
pub(crate) struct Merged<A: Iterator, B: Iterator> {
    first: Peekable<A>,
    second: Peekable<B>,
}

pub(crate) fn merged<A: Iterator, B: Iterator>(first: A, second: B) -> Merged<A, B> {
    Merged {
        first: first.peekable(),
        second: second.peekable(),
    }
}

impl<'a, V, A, B> Iterator for Merged<A, B>
where
    A: Iterator<Item = (&'a Key, V)>,
    B: Iterator<Item = (&'a Key, V)>,
{
    type Item = (&'a Key, V);

    fn next(&mut self) -> Option<Self::Item> {
        let from_first = match (self.first.peek(), self.second.peek()) {
            (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => {
                    self.second.next();
                    true
                }
            },
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_first {
            self.first.next()
        } else {
            self.second.next()
        }
    }
}

/// How many entries a page may pass over without taking them (name-search entries of customers
/// found under their other key, tombstones expiring while the feed is read) before it ends early.
///
/// Such entries are rare in any one stretch of an index, but names can be correlated: were every
/// customer matched by a search under both keys, all the larger keys would come after the last
/// match and the last page would read them all. Past this many, a page stops with what it has and a
/// cursor at the entry it reached, so that every call stays bounded; the walk as a whole still
/// returns every customer once, in order.
pub(crate) const SKIP_BUDGET: usize = 1_000;

/// What a walk gathered: at most a page of items, and the key to continue after when more follow.
pub(crate) struct Walked<'a, T> {
    pub(crate) items: Vec<T>,
    pub(crate) next: Option<&'a str>,
}

/// Reads a page of at most `limit` items from `entries`: each is its key and `Some(item)` to take,
/// `None` to pass over. One more item is looked for to decide whether a next page exists.
pub(crate) fn walk<'a, T>(
    entries: impl Iterator<Item = (&'a Key, Option<T>)>,
    limit: usize,
) -> Walked<'a, T> {
    let mut items = Vec::with_capacity(limit);
    let mut last = None;
    let mut skipped = 0;
    for (key, item) in entries {
        match item {
            Some(_) if items.len() == limit => return Walked { items, next: last },
            Some(item) => {
                items.push(item);
                last = Some(key.as_str());
            }
            None => {
                skipped += 1;
                if skipped > SKIP_BUDGET {
                    return Walked {
                        items,
                        next: Some(key.as_str()),
                    };
                }
            }
        }
    }
    Walked { items, next: None }
}
