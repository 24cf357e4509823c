//! What one client knows of its own customers, and the judgement of every answer against it.
//!
//! Each client of the harness owns its customers (ids and emails no other client uses) and sends
//! one request at a time, so its model is exact: before each operation it knows what the store
//! holds, hence what the one right answer is. An answer that differs is a misreported outcome. A
//! 503 is the one answer that says "unknown": the model then reads the customer (once the store
//! has settled) and accepts either the state before the operation or the state after it, nothing
//! else.

use std::collections::BTreeMap;

/// What the store holds for one id, as far as its client knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A customer, at this version, with this first name and email.
    Present(Known),
    /// Deleted, or a create that was never applied.
    Absent,
}

/// The parts of a customer the harness checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Known {
    pub(crate) version: u64,
    pub(crate) first_name: String,
    pub(crate) email: Option<String>,
}

/// One client's customers, and what went wrong so far.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// Every id the client used, with what the store holds for it.
    pub(crate) slots: BTreeMap<String, Slot>,
    /// The last names of creates without id whose answer was unknown: the customer may exist,
    /// once at most. The final check settles them.
    pub(crate) unsure_creates: Vec<String>,
    /// Every answer that differed from the model, described.
    pub(crate) misreported: Vec<String>,
}

impl Model {
    /// The present customers, with their ids.
    pub(crate) fn present(&self) -> impl Iterator<Item = (&String, &Known)> {
        self.slots.iter().filter_map(|(id, slot)| match slot {
            Slot::Present(known) => Some((id, known)),
            Slot::Absent => None,
        })
    }

    /// The ids whose customers were deleted.
    pub(crate) fn absent(&self) -> impl Iterator<Item = &String> {
        self.slots
            .iter()
            .filter(|(_, slot)| **slot == Slot::Absent)
            .map(|(id, _)| id)
    }

    /// Records a misreported outcome.
    pub(crate) fn misreport(&mut self, what: String) {
        self.misreported.push(what);
    }
}
