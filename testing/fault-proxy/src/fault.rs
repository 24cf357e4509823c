//! What to inject, and the decision for one request: one-shot faults first, then the policy.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// DynamoDB's write operations: what [`Policy::writes`] faults by default.
pub const WRITE_OPERATIONS: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];

/// One fault, applied to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Forward the request, receive DynamoDB's reply, then hold it for this long before
    /// answering: when the SDK's attempt timeout is shorter, the client sees a timeout for a
    /// write DynamoDB applied.
    DelayReply(Duration),
    /// Forward the request, receive the reply (so DynamoDB applied it), then close the client's
    /// connection without answering.
    DropReply,
    /// Close the client's connection without forwarding: DynamoDB never sees the request.
    Reset,
}

impl Fault {
    /// Its name in [`Stats::faults`]: `"delay-reply"`, `"drop-reply"` or `"reset"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::DelayReply(_) => "delay-reply",
            Self::DropReply => "drop-reply",
            Self::Reset => "reset",
        }
    }
}

/// Random faults: which operations, how often, which kinds, from which seed.
///
/// The same policy (same seed) on the same sequence of requests injects the same faults: the
/// generator is a seeded `SplitMix64` and draws only for requests the policy covers.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    operations: Vec<String>,
    probability: f64,
    kinds: Vec<Fault>,
    seed: u64,
}

impl Policy {
    /// No random faults (one-shot faults from [`FaultProxy::inject_next`] still apply).
    ///
    /// [`FaultProxy::inject_next`]: crate::FaultProxy::inject_next
    pub fn none() -> Self {
        Self::writes(0.0, 0)
    }

    /// Faults each write ([`WRITE_OPERATIONS`]) with `probability` (clamped to `0..=1`; NaN is
    /// 0), half of them [`Fault::DropReply`] (applied, reply lost) and half [`Fault::Reset`]
    /// (never applied), from `seed`.
    pub fn writes(probability: f64, seed: u64) -> Self {
        let probability = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        Self {
            operations: WRITE_OPERATIONS.iter().map(|&o| o.to_owned()).collect(),
            probability,
            kinds: vec![Fault::DropReply, Fault::Reset],
            seed,
        }
    }

    /// The same policy on these operations instead (names as in `x-amz-target`, e.g. `"Query"`).
    #[must_use]
    pub fn with_operations(mut self, operations: &[&str]) -> Self {
        self.operations = operations.iter().map(|&o| o.to_owned()).collect();
        self
    }

    /// The same policy choosing uniformly among `kinds`: list a kind twice to weigh it double; a
    /// [`Fault::DelayReply`] carries its own delay. An empty list injects nothing.
    #[must_use]
    pub fn with_kinds(mut self, kinds: &[Fault]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::none()
    }
}

/// What a proxy did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests forwarded to DynamoDB that it answered (faulted or not).
    pub forwarded: u64,
    /// Faults injected, by kind: [`Fault::name`], `"outage"` for requests refused during
    /// [`FaultProxy::set_outage`](crate::FaultProxy::set_outage), or `"outage-reply"` for replies
    /// lost to an outage that began while the server worked on their request.
    pub faults: BTreeMap<String, u64>,
    /// Faults injected (outage refusals and lost replies included), by operation (e.g.
    /// `"PutItem"`).
    pub by_operation: BTreeMap<String, u64>,
}

impl Stats {
    /// Faults of this kind so far (0 if none).
    pub fn faults_of(&self, kind: &str) -> u64 {
        self.faults.get(kind).copied().unwrap_or(0)
    }

    /// Faults on this operation so far (0 if none).
    pub fn faults_on(&self, operation: &str) -> u64 {
        self.by_operation.get(operation).copied().unwrap_or(0)
    }
}

/// The decision state shared by a proxy's connections.
#[derive(Debug, Default)]
pub(crate) struct Injector {
    policy: Policy,
    rng: SplitMix64,
    queue: VecDeque<(String, Fault)>,
    outage: bool,
    /// Requests forwarded whose reply has not arrived yet.
    in_flight: u64,
    stats: Stats,
}

impl Injector {
    pub(crate) fn set_policy(&mut self, policy: Policy) {
        self.rng = SplitMix64::new(policy.seed);
        self.policy = policy;
    }

    pub(crate) fn inject_next(&mut self, operation: &str, fault: Fault) {
        self.queue.push_back((operation.to_owned(), fault));
    }

    pub(crate) fn set_outage(&mut self, down: bool) {
        self.outage = down;
    }

    /// Starts an outage only while a request is in flight; whether it did.
    pub(crate) fn set_outage_while_busy(&mut self) -> bool {
        if self.in_flight > 0 {
            self.outage = true;
        }
        self.outage && self.in_flight > 0
    }

    /// Whether a reply ready to be answered must be lost to an outage (counted as
    /// `"outage-reply"`): one held back by [`Fault::DelayReply`] while an outage began.
    pub(crate) fn lost_to_outage(&mut self, operation: &str) -> bool {
        if self.outage {
            self.count("outage-reply", operation);
        }
        self.outage
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats.clone()
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// The fault for the next request of `operation`, counted; an outage refusal is a `Reset`.
    /// A request not reset is counted in flight until [`Self::reply_arrived`] or
    /// [`Self::abandoned`].
    pub(crate) fn decide(&mut self, operation: &str) -> Option<Fault> {
        let decision = if self.outage {
            Some((Fault::Reset, "outage"))
        } else if let Some(fault) = self.take_queued(operation) {
            Some((fault, fault.name()))
        } else {
            self.draw(operation).map(|fault| (fault, fault.name()))
        };
        if let Some((_, kind)) = decision {
            self.count(kind, operation);
        }
        let fault = decision.map(|(fault, _)| fault);
        if fault != Some(Fault::Reset) {
            self.in_flight += 1;
        }
        fault
    }

    /// The reply of a request in flight arrived: counted as forwarded. Returns `true` when it
    /// must be lost to an outage that began while the server worked on it (counted as
    /// `"outage-reply"`).
    pub(crate) fn reply_arrived(&mut self, operation: &str) -> bool {
        debug_assert!(self.in_flight > 0, "a reply of a request not in flight");
        self.in_flight = self.in_flight.saturating_sub(1);
        self.stats.forwarded += 1;
        self.lost_to_outage(operation)
    }

    /// A request in flight ended without a reply (its client went away, the server was
    /// unreachable).
    pub(crate) fn abandoned(&mut self) {
        debug_assert!(self.in_flight > 0, "a request abandoned twice");
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn count(&mut self, kind: &str, operation: &str) {
        *self.stats.faults.entry(kind.to_owned()).or_default() += 1;
        *self
            .stats
            .by_operation
            .entry(operation.to_owned())
            .or_default() += 1;
    }

    fn take_queued(&mut self, operation: &str) -> Option<Fault> {
        let index = self.queue.iter().position(|(o, _)| o == operation)?;
        self.queue.remove(index).map(|(_, fault)| fault)
    }

    fn draw(&mut self, operation: &str) -> Option<Fault> {
        let policy = &self.policy;
        if policy.probability <= 0.0
            || policy.kinds.is_empty()
            || !policy.operations.iter().any(|o| o == operation)
        {
            return None;
        }
        if self.rng.next_f64() >= policy.probability {
            return None;
        }
        self.rng.pick(&policy.kinds).copied()
    }
}

/// `SplitMix64` (Steele, Lea, Flood 2014): a tiny seeded generator, good enough to pick faults
/// and test operations, and reproducible: the same seed gives the same sequence on every
/// platform. Not for anything secret. Public so that tests driving the proxy draw their own
/// choices the same replayable way, without a `rand` dependency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose sequence is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    #[expect(
        clippy::cast_precision_loss,
        reason = "53 bits fit an f64's mantissa exactly"
    )]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// In `0..bound` (by remainder: the bias, below `bound / 2^64`, does not matter here); 0 when
    /// `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64().checked_rem(bound).unwrap_or(0)
    }

    /// One of `items`, each as likely; `None` when there are none.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let index = usize::try_from(self.below(items.len() as u64)).ok()?;
        items.get(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(injector: &mut Injector, operation: &str, n: usize) -> Vec<Option<Fault>> {
        (0..n).map(|_| injector.decide(operation)).collect()
    }

    fn with_policy(policy: Policy) -> Injector {
        let mut injector = Injector::default();
        injector.set_policy(policy);
        injector
    }

    #[test]
    fn the_same_seed_replays_the_same_faults_and_another_seed_does_not() {
        let policy = Policy::writes(0.5, 42);
        let first = decisions(&mut with_policy(policy.clone()), "PutItem", 200);
        let again = decisions(&mut with_policy(policy), "PutItem", 200);
        let other = decisions(&mut with_policy(Policy::writes(0.5, 43)), "PutItem", 200);
        assert_eq!(first, again);
        assert_ne!(first, other);
        let faults = first.iter().flatten().count();
        assert!(
            (60..=140).contains(&faults),
            "{faults} faults of 200 at p = 0.5"
        );
        assert!(first.contains(&Some(Fault::DropReply)) && first.contains(&Some(Fault::Reset)));
    }

    #[test]
    fn setting_a_policy_again_restarts_its_sequence() {
        let mut injector = with_policy(Policy::writes(0.5, 7));
        let first = decisions(&mut injector, "UpdateItem", 50);
        injector.set_policy(Policy::writes(0.5, 7));
        assert_eq!(decisions(&mut injector, "UpdateItem", 50), first);
    }

    #[test]
    fn a_policy_covers_only_its_operations_and_reads_do_not_shift_its_sequence() {
        let mut plain = with_policy(Policy::writes(0.5, 9));
        let mut mixed = with_policy(Policy::writes(0.5, 9));
        let mut interleaved = Vec::new();
        for _ in 0..50 {
            assert_eq!(mixed.decide("GetItem"), None);
            assert_eq!(mixed.decide("Query"), None);
            interleaved.push(mixed.decide("DeleteItem"));
        }
        assert_eq!(decisions(&mut plain, "DeleteItem", 50), interleaved);
        assert_eq!(mixed.stats().faults_on("GetItem"), 0);
    }

    #[test]
    fn probabilities_zero_and_one_and_out_of_range_values() {
        let always = Policy::writes(1.0, 1).with_kinds(&[Fault::Reset]);
        assert!(
            decisions(&mut with_policy(always), "PutItem", 100)
                .iter()
                .all(|d| *d == Some(Fault::Reset))
        );
        for p in [0.0, -3.0, f64::NAN] {
            assert!(
                decisions(&mut with_policy(Policy::writes(p, 1)), "PutItem", 100)
                    .iter()
                    .all(Option::is_none)
            );
        }
        let clamped = Policy::writes(7.0, 1).with_kinds(&[Fault::DropReply]);
        assert!(
            decisions(&mut with_policy(clamped), "PutItem", 100)
                .iter()
                .all(Option::is_some)
        );
        let no_kinds = Policy::writes(1.0, 1).with_kinds(&[]);
        assert_eq!(with_policy(no_kinds).decide("PutItem"), None);
    }

    #[test]
    fn one_shot_faults_are_fifo_per_operation_consumed_once_and_beat_the_policy() {
        let delay = Fault::DelayReply(Duration::from_secs(2));
        let mut injector = with_policy(Policy::writes(1.0, 5).with_kinds(&[Fault::Reset]));
        injector.inject_next("PutItem", Fault::DropReply);
        injector.inject_next("GetItem", delay);
        injector.inject_next("PutItem", delay);
        assert_eq!(injector.decide("PutItem"), Some(Fault::DropReply));
        assert_eq!(injector.decide("PutItem"), Some(delay));
        assert_eq!(
            injector.decide("PutItem"),
            Some(Fault::Reset),
            "the policy again"
        );
        assert_eq!(injector.decide("GetItem"), Some(delay));
        assert_eq!(injector.decide("GetItem"), None);

        let stats = injector.stats();
        assert_eq!(stats.faults_of("drop-reply"), 1);
        assert_eq!(stats.faults_of("delay-reply"), 2);
        assert_eq!(stats.faults_of("reset"), 1);
        assert_eq!(stats.faults_on("PutItem"), 3);
        assert_eq!(stats.faults_on("GetItem"), 1);
    }

    #[test]
    fn splitmix64_matches_the_reference_and_stays_in_bounds() {
        // The first outputs for seed 1234567 of the reference implementation (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(1_234_567);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            first,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
        let mut rng = SplitMix64::new(3);
        for _ in 0..1_000 {
            assert!(rng.below(6) < 6);
            assert!((0.0..1.0).contains(&rng.next_f64()));
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.pick::<u8>(&[]), None);
        let items = [1, 2, 3];
        let picked: std::collections::BTreeSet<_> =
            (0..100).filter_map(|_| rng.pick(&items)).collect();
        assert_eq!(picked.len(), 3, "every item comes up");
    }

    #[test]
    fn every_request_forwarded_is_in_flight_until_its_reply_or_its_end_and_refusals_never_are() {
        let delay = Fault::DelayReply(Duration::from_secs(1));
        let mut injector = with_policy(Policy::writes(1.0, 3).with_kinds(&[Fault::DropReply]));
        injector.inject_next("PutItem", delay);
        injector.inject_next("PutItem", Fault::Reset);
        assert_eq!(injector.decide("PutItem"), Some(delay));
        assert_eq!(injector.decide("PutItem"), Some(Fault::Reset));
        assert_eq!(injector.decide("PutItem"), Some(Fault::DropReply));
        assert_eq!(injector.decide("GetItem"), None);
        assert_eq!(
            injector.in_flight(),
            3,
            "the delayed, the dropped and the read"
        );

        assert!(!injector.reply_arrived("PutItem"), "no outage: answered");
        injector.abandoned();
        assert_eq!(injector.in_flight(), 1);
        assert!(injector.set_outage_while_busy());
        assert_eq!(injector.decide("GetItem"), Some(Fault::Reset));
        assert_eq!(
            injector.in_flight(),
            1,
            "an outage refusal is never in flight"
        );
        assert!(
            injector.reply_arrived("GetItem"),
            "its reply is lost to the outage"
        );
        assert_eq!(injector.in_flight(), 0);
        assert!(injector.lost_to_outage("PutItem"), "a delayed reply too");

        injector.set_outage(false);
        assert!(
            !injector.set_outage_while_busy(),
            "nothing in flight: no outage"
        );
        assert_eq!(injector.decide("GetItem"), None);
        let stats = injector.stats();
        assert_eq!(stats.forwarded, 2);
        assert_eq!(stats.faults_of("outage-reply"), 2);
        assert_eq!(stats.faults_of("outage"), 1);
    }

    #[test]
    fn an_outage_refuses_everything_and_keeps_the_queue() {
        let mut injector = Injector::default();
        injector.inject_next("PutItem", Fault::DropReply);
        injector.set_outage(true);
        assert_eq!(injector.decide("GetItem"), Some(Fault::Reset));
        assert_eq!(injector.decide("PutItem"), Some(Fault::Reset));
        injector.set_outage(false);
        assert_eq!(injector.decide("PutItem"), Some(Fault::DropReply));
        assert_eq!(injector.stats().faults_of("outage"), 2);
        assert_eq!(injector.stats().faults_of("reset"), 0);
    }
}
