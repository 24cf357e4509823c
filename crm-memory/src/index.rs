//! The ordered indexes of the store and the walk that reads a page from them.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::Arc;

use crm_domain::Customer;
use crm_domain::listing::{created_key, first_name_key, name_key, updated_key};

/// The keys of one customer in every order, computed once when it is written.
///
/// Kept beside the customer so that the entries it left in the indexes are removed by the very
/// strings that were inserted (folding a name is not repeated, and could not drift), and so that a
/// name search can tell under which key it finds the customer without folding its names again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    pub(crate) created: String,
    pub(crate) updated: String,
    pub(crate) name: String,
    pub(crate) first_name: String,
}

impl Keys {
    pub(crate) fn of(customer: &Customer) -> Self {
        Self {
            created: created_key(customer),
            updated: updated_key(customer.updated_at(), customer.id()),
            name: name_key(customer),
            first_name: first_name_key(customer),
        }
    }

    /// The keys of `next`, a new version of `previous`, whose keys these are: the name keys are
    /// kept when the names are unchanged (most patches), which spares folding them again.
    pub(crate) fn of_next(&self, previous: &Customer, next: &Customer) -> Self {
        let same_names = previous.first_name() == next.first_name()
            && previous.last_name() == next.last_name()
            && previous.id() == next.id();
        if !same_names {
            return Self::of(next);
        }
        Self {
            created: created_key(next),
            updated: updated_key(next.updated_at(), next.id()),
            name: self.name.clone(),
            first_name: self.first_name.clone(),
        }
    }

    /// Every key, in the order of the fields.
    pub(crate) fn all(&self) -> [&String; 4] {
        [&self.created, &self.updated, &self.name, &self.first_name]
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

/// A customer as stored: shared by the map by id and by every index, so that a page reads the
/// customers straight from the index it walks, with no lookup by id per item.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) customer: Customer,
    pub(crate) keys: Keys,
}

impl Stored {
    pub(crate) fn new(customer: Customer) -> Arc<Self> {
        let keys = Keys::of(&customer);
        Arc::new(Self { customer, keys })
    }

    /// `customer`, the next version of this one.
    pub(crate) fn next(&self, customer: Customer) -> Arc<Self> {
        let keys = self.keys.of_next(&self.customer, &customer);
        Arc::new(Self { customer, keys })
    }
}

/// An ordered index: a key of `crm_domain::listing` → the customer it belongs to.
pub(crate) type Index = BTreeMap<String, Arc<Stored>>;

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
    pub(crate) fn add(&mut self, stored: &Arc<Stored>) {
        for (index, key) in self.each(&stored.keys) {
            index.insert(key.clone(), Arc::clone(stored));
        }
    }

    pub(crate) fn remove(&mut self, keys: &Keys) {
        for (index, key) in self.each(keys) {
            index.remove(key);
        }
    }

    /// Puts `new` in place of `old`, a former version of the same customer: an index whose key
    /// changed moves the entry, the others only point it at the new version.
    pub(crate) fn replace(&mut self, old: &Keys, new: &Arc<Stored>) {
        for ((index, old), key) in self.each(old).into_iter().zip(new.keys.all()) {
            if old == key {
                if let Some(entry) = index.get_mut(key) {
                    *entry = Arc::clone(new);
                }
            } else {
                index.remove(old);
                index.insert(key.clone(), Arc::clone(new));
            }
        }
    }

    fn each<'k>(&mut self, keys: &'k Keys) -> [(&mut Index, &'k String); 4] {
        let [created, updated, name, first_name] = keys.all();
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
) -> Box<dyn Iterator<Item = (&'a String, &'a Arc<Stored>)> + 'a> {
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
) -> impl Iterator<Item = (&'a String, &'a Arc<Stored>)> + use<'a> {
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
    A: Iterator<Item = (&'a String, V)>,
    B: Iterator<Item = (&'a String, V)>,
{
    type Item = (&'a String, V);

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
    entries: impl Iterator<Item = (&'a String, Option<T>)>,
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
