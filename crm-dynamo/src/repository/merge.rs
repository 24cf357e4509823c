//! The k-way merge under every listing: one sorted `Query` stream per shard of an index (per shard
//! of two indexes for a name search), read in small chunks, concurrently, and merged by key.
//!
//! Each listing index is spread over [`SHARDS`] partitions so that no partition takes every write;
//! the price is that no single Query returns a listing in order. The merge restores the order
//! while reading little:
//!
//! - Every stream starts with a chunk of `limit / 4 + 1` items: together about one page.
//! - A stream is read again only when the merge cannot go on without it: its buffer is empty, it
//!   has more, and the key it has read up to comes before the smallest key waiting in another
//!   buffer. Its next chunk is what the page still needs plus one (the peek past the page), read
//!   from where DynamoDB stopped (`ExclusiveStartKey`). A stream that has dropped items during
//!   this page (see below) asks for that much more in the proportion it kept, up to a whole page
//!   plus one: it will likely drop as many again. All streams that block the merge are read in one
//!   round, concurrently.
//! - The smallest waiting key is emitted only when no stream may still hold a smaller one: each
//!   has a key waiting (none smaller: this one is the smallest), has ended, or has read up to it or
//!   beyond (an item it dropped, such as a tombstone, still tells how far it has read).
//! - One item past the page is peeked at: a page has a cursor only when something follows it.
//!
//! Without items dropped after the read, a stream is read again at most once per page: its second
//! chunk holds everything the page still needs and the peek. Dropped items (tombstones, expired
//! tombstones, customers a search finds under another key) and DynamoDB's 1 MB cut shorten
//! chunks, so a page may take more reads; [`QUERIES_PER_STREAM`] bounds them, after which the page
//! ends short, with a cursor at the point every stream has read up to. Only then may a page be
//! empty and still have a cursor.

use std::cmp::Ordering;
use std::collections::VecDeque;

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use crm_domain::{PageLimit, RepositoryError};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::DynamoCustomerRepository;
use crate::error::classify;
use crate::item::{Item, SHARD, SHARDS, s};

/// How many Queries a page may send, per stream merged: three for each on average. Enough for
/// every page whose streams drop nothing (which takes at most two per stream), and a bound on the
/// pages that drop many items.
const QUERIES_PER_STREAM: usize = 3;

/// Which keys of one shard a stream reads.
#[derive(Debug, Clone)]
pub(super) enum Range {
    /// Every key.
    All,
    /// The keys past this one in the listing's direction: `>`, or `<` when descending.
    After(String),
    /// The keys from this one on, itself included (ascending only).
    From(String),
    /// The keys that start with this text (ascending only).
    Prefix(String),
    /// The keys that start with a text and come after `after`, which has the same prefix:
    /// `BETWEEN after AND upper`, where `upper` is above every key with the prefix; the item at
    /// `after` itself is dropped (DynamoDB has no two-sided range with an open end).
    PrefixAfter {
        /// The key already listed.
        after: String,
        /// Above every key with the prefix.
        upper: String,
    },
}

/// One sorted source of the merge: one shard of one index, in a range of its sort key.
#[derive(Debug, Clone)]
pub(super) struct Source {
    /// The index.
    pub(super) index: &'static str,
    /// The index's sort key: the key the merge orders by and the cursor holds.
    pub(super) sort_key: &'static str,
    /// The shard (the index's partition key).
    pub(super) shard: String,
    /// The keys to read.
    pub(super) range: Range,
}

impl Source {
    /// One source per shard of `index`, each over `range`.
    pub(super) fn every_shard(
        index: &'static str,
        sort_key: &'static str,
        range: &Range,
    ) -> impl Iterator<Item = Self> {
        (0..SHARDS).map(move |shard| Self {
            index,
            sort_key,
            shard: shard.to_string(),
            range: range.clone(),
        })
    }
}

/// What the merge made of one page: the items with their keys, in order, and the key the next
/// page starts after, if anything may follow.
#[derive(Debug)]
pub(super) struct Merged<T> {
    pub(super) items: Vec<(String, T)>,
    pub(super) next: Option<String>,
}

/// A listing index answered an item without the key it is sorted by. Names the attribute only.
#[derive(Debug, thiserror::Error)]
#[error("an item of a listing index has no string `{0}`")]
struct MissingKey(&'static str);

/// The state of one stream during one page.
#[derive(Debug)]
struct Stream<T> {
    source: Source,
    /// Items read and kept, not yet emitted, in order.
    buffer: VecDeque<(String, T)>,
    /// The key of the last item read, kept or dropped: every key up to it has been seen. `None`
    /// before the first read.
    read_to: Option<String>,
    /// Where the next Query starts: DynamoDB's `LastEvaluatedKey`.
    resume: Option<Item>,
    /// How many items this page has read of this stream, and how many of them it dropped: a
    /// stream that drops items gets larger chunks.
    read: usize,
    dropped: usize,
    /// True once a Query came back without a `LastEvaluatedKey`.
    ended: bool,
}

impl<T> Stream<T> {
    fn new(source: Source) -> Self {
        Self {
            source,
            buffer: VecDeque::new(),
            read_to: None,
            resume: None,
            read: 0,
            dropped: 0,
            ended: false,
        }
    }

    /// True when nothing of this stream is waiting and it has more to read.
    fn pending(&self) -> bool {
        self.buffer.is_empty() && !self.ended
    }

    /// True when the merge cannot emit `key` before reading this stream: it may still hold a
    /// smaller key.
    fn blocks(&self, key: &str, direction: Direction) -> bool {
        self.pending()
            && self
                .read_to
                .as_deref()
                .is_none_or(|read| direction.cmp(read, key) == Ordering::Less)
    }

    /// Takes in one Query's answer: the items `decode` keeps go to the buffer, and the stream
    /// remembers how far it has read.
    fn absorb(
        &mut self,
        output: QueryOutput,
        decode: &impl Fn(&str, Item) -> Result<Option<T>, RepositoryError>,
    ) -> Result<(), RepositoryError> {
        let sort_key = self.source.sort_key;
        for item in output.items.unwrap_or_default() {
            self.read += 1;
            let key = string(&item, sort_key)?;
            if let Range::PrefixAfter { after, .. } = &self.source.range
                && key == *after
            {
                // Listed on the page before: not a drop that says anything of what follows.
                self.read -= 1;
                continue;
            }
            match decode(&key, item)? {
                Some(value) => self.buffer.push_back((key, value)),
                None => self.dropped += 1,
            }
        }
        match output.last_evaluated_key {
            Some(last) => {
                self.read_to = Some(string(&last, sort_key)?);
                self.resume = Some(last);
            }
            None => self.ended = true,
        }
        Ok(())
    }
}

fn string(item: &Item, attribute: &'static str) -> Result<String, RepositoryError> {
    match item.get(attribute) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(RepositoryError::unexpected(MissingKey(attribute))),
    }
}

/// The direction of a listing: which of two keys comes first.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    Ascending,
    Descending,
}

impl Direction {
    /// How `a` compares with `b` in listing order. DynamoDB orders string keys by their UTF-8
    /// bytes, as `str`'s `Ord` does.
    fn cmp(self, a: &str, b: &str) -> Ordering {
        match self {
            Self::Ascending => a.cmp(b),
            Self::Descending => b.cmp(a),
        }
    }
}

impl DynamoCustomerRepository {
    /// One page of at most `limit` items merged from `sources` in `direction`. `decode` turns an
    /// item, with its key, into what the page holds, or `None` to drop it (it still counts as
    /// read).
    pub(super) async fn merge_page<T>(
        &self,
        sources: Vec<Source>,
        direction: Direction,
        limit: PageLimit,
        decode: impl Fn(&str, Item) -> Result<Option<T>, RepositoryError>,
    ) -> Result<Merged<T>, RepositoryError> {
        let limit = limit.get();
        let mut streams: Vec<Stream<T>> = sources.into_iter().map(Stream::new).collect();
        let budget = streams.len() * QUERIES_PER_STREAM;
        let mut page: Vec<(String, T)> = Vec::with_capacity(limit);
        let mut sent = 0;
        loop {
            emit(&mut streams, &mut page, limit, direction);
            let full = page.len() == limit;
            if full && streams.iter().any(|s| !s.buffer.is_empty()) {
                // The peek: something follows the page.
                return Ok(Merged {
                    next: last_key(&page),
                    items: page,
                });
            }
            let head = smallest_head(&streams, direction).map(|(_, key)| key.to_owned());
            let blocking: Vec<usize> = streams
                .iter()
                .enumerate()
                .filter(|(_, s)| match (&head, full) {
                    // Nothing waits (the page is full, or every buffer ran dry): whatever has
                    // more must say whether anything follows.
                    (None, _) | (_, true) => s.pending(),
                    (Some(head), false) => s.blocks(head, direction),
                })
                .map(|(i, _)| i)
                .collect();
            if blocking.is_empty() {
                // Every stream has ended and every buffer is empty: the listing's last page.
                return Ok(Merged {
                    items: page,
                    next: None,
                });
            }
            if sent + blocking.len() > budget {
                let next = if full {
                    last_key(&page)
                } else {
                    frontier(&streams, direction).or_else(|| last_key(&page))
                };
                return Ok(Merged { items: page, next });
            }
            let needed = limit - page.len() + 1;
            let chunk = |stream: &Stream<T>| {
                // A stream still to read has no place to resume from (one that ended is never
                // read again).
                if stream.resume.is_none() {
                    limit / usize::from(SHARDS) + 1
                } else {
                    let kept = stream.read - stream.dropped;
                    if kept == 0 {
                        limit + 1
                    } else {
                        (needed * stream.read).div_ceil(kept).min(limit + 1)
                    }
                }
            };
            self.read_round(&mut streams, &blocking, chunk, direction, &decode)
                .await?;
            sent += blocking.len();
        }
    }

    /// Reads the next chunk of each stream in `which`, of `chunk(stream)` items, concurrently.
    async fn read_round<T>(
        &self,
        streams: &mut [Stream<T>],
        which: &[usize],
        chunk: impl Fn(&Stream<T>) -> usize,
        direction: Direction,
        decode: &impl Fn(&str, Item) -> Result<Option<T>, RepositoryError>,
    ) -> Result<(), RepositoryError> {
        // Spawned so that the shards are read in parallel; dropping the set (at the operation's
        // deadline) aborts whatever is still running. Each task stays in the caller's span, so
        // that an exported span of the Query is a child of the request's.
        let mut reads = JoinSet::new();
        for &i in which {
            let query = self.shard_query(&streams[i], chunk(&streams[i]), direction);
            reads.spawn(async move { (i, query.send().await) }.in_current_span());
        }
        while let Some(read) = reads.join_next().await {
            let absorbed = read
                .map_err(RepositoryError::unexpected)
                .and_then(|(i, output)| {
                    let output = output.map_err(|e| classify("Query", &e))?;
                    streams[i].absorb(output, decode)
                });
            if let Err(error) = absorbed {
                // The other reads are of no use now: stopped and gone before the error is
                // answered, so that none holds the request's span open past the answer (whose
                // spans are exported as it is posted).
                reads.shutdown().await;
                return Err(error);
            }
        }
        Ok(())
    }

    /// The next Query of `stream`: at most `chunk` items of its shard and range, in `direction`,
    /// from where the last one stopped. Eventually consistent, as every read of an index is.
    fn shard_query<T>(
        &self,
        stream: &Stream<T>,
        chunk: usize,
        direction: Direction,
    ) -> QueryFluentBuilder {
        let source = &stream.source;
        let descending = matches!(direction, Direction::Descending);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(source.index)
            .expression_attribute_names("#shard", SHARD)
            .expression_attribute_values(":shard", s(&source.shard))
            .scan_index_forward(!descending)
            .limit(i32::try_from(chunk).unwrap_or(i32::MAX))
            .set_exclusive_start_key(stream.resume.clone());
        let (range, values): (&str, Vec<(&str, &str)>) = match &source.range {
            Range::All => return query.key_condition_expression("#shard = :shard"),
            Range::After(after) if descending => ("#key < :after", vec![(":after", after)]),
            Range::After(after) => ("#key > :after", vec![(":after", after)]),
            Range::From(start) => ("#key >= :start", vec![(":start", start)]),
            Range::Prefix(prefix) => ("begins_with(#key, :prefix)", vec![(":prefix", prefix)]),
            Range::PrefixAfter { after, upper } => (
                "#key BETWEEN :after AND :upper",
                vec![(":after", after), (":upper", upper)],
            ),
        };
        values.into_iter().fold(
            query
                .key_condition_expression(format!("#shard = :shard AND {range}"))
                .expression_attribute_names("#key", source.sort_key),
            |query, (name, value)| query.expression_attribute_values(name, s(value)),
        )
    }
}

/// Moves items from the streams to the page, smallest first, while the smallest is known to be
/// the smallest (no stream may still hold a smaller key) and the page has room.
fn emit<T>(
    streams: &mut [Stream<T>],
    page: &mut Vec<(String, T)>,
    limit: usize,
    direction: Direction,
) {
    while page.len() < limit {
        let Some((i, key)) = smallest_head(streams, direction) else {
            return;
        };
        if streams.iter().any(|s| s.blocks(key, direction)) {
            return;
        }
        let Some((key, value)) = streams[i].buffer.pop_front() else {
            return;
        };
        // The same key in another stream is the same customer found twice (a search whose
        // text starts both its names, when they are equal): once is enough.
        for stream in streams.iter_mut() {
            while stream.buffer.front().is_some_and(|(k, _)| *k == key) {
                stream.buffer.pop_front();
                stream.dropped += 1;
            }
        }
        page.push((key, value));
    }
}

/// The stream whose waiting key comes first, with that key.
fn smallest_head<T>(streams: &[Stream<T>], direction: Direction) -> Option<(usize, &str)> {
    streams
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.buffer.front().map(|(key, _)| (i, key.as_str())))
        .min_by(|(_, a), (_, b)| direction.cmp(a, b))
}

/// The key every stream has been read up to, once the page stops short: the first of the
/// positions of the streams still to read. Every key before it was emitted or dropped, and every
/// waiting key comes after it (else it would have been emitted).
fn frontier<T>(streams: &[Stream<T>], direction: Direction) -> Option<String> {
    streams
        .iter()
        .filter(|s| s.pending())
        .filter_map(|s| s.read_to.as_deref())
        .min_by(|a, b| direction.cmp(a, b))
        .map(str::to_owned)
}

fn last_key<T>(page: &[(String, T)]) -> Option<String> {
    page.last().map(|(key, _)| key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        Source {
            index: "byX",
            sort_key: "k",
            shard: "0".to_owned(),
            range: Range::All,
        }
    }

    /// A stream that has read `keys` (all kept) and stopped at `read_to`, or ended.
    fn stream(keys: &[&str], read_to: Option<&str>) -> Stream<()> {
        let mut stream = Stream::new(source());
        stream.buffer = keys.iter().map(|k| ((*k).to_owned(), ())).collect();
        stream.read_to = read_to.map(str::to_owned);
        stream.ended = read_to.is_none();
        stream
    }

    fn keys(page: &[(String, ())]) -> Vec<&str> {
        page.iter().map(|(k, ())| k.as_str()).collect()
    }

    #[test]
    fn the_merge_emits_in_order_while_every_stream_is_known_past_the_key() {
        let mut streams = vec![
            stream(&["a", "d"], Some("d")),
            stream(&["b", "c"], None),
            // Read up to "c", all of it dropped: it holds nothing before "c".
            stream(&[], Some("c")),
        ];
        let mut page = Vec::new();
        emit(&mut streams, &mut page, 10, Direction::Ascending);
        // "d" waits: the third stream may hold something between "c" and "d".
        assert_eq!(keys(&page), ["a", "b", "c"]);
        assert!(streams[2].blocks("d", Direction::Ascending));
        assert_eq!(
            frontier(&streams, Direction::Ascending).as_deref(),
            Some("c")
        );
    }

    #[test]
    fn an_unread_stream_blocks_every_key() {
        let mut streams = vec![stream(&["a"], None), Stream::new(source())];
        let mut page = Vec::new();
        emit(&mut streams, &mut page, 10, Direction::Ascending);
        assert!(page.is_empty());
    }

    #[test]
    fn the_same_key_in_two_streams_is_emitted_once() {
        let mut streams = vec![stream(&["a", "b"], None), stream(&["b", "c"], None)];
        let mut page = Vec::new();
        emit(&mut streams, &mut page, 10, Direction::Ascending);
        assert_eq!(keys(&page), ["a", "b", "c"]);
    }

    #[test]
    fn a_descending_merge_emits_the_largest_first_and_stops_at_the_limit() {
        let mut streams = vec![stream(&["z", "m"], None), stream(&["y", "a"], Some("a"))];
        let mut page = Vec::new();
        emit(&mut streams, &mut page, 3, Direction::Descending);
        assert_eq!(keys(&page), ["z", "y", "m"]);
    }
}
