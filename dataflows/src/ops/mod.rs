//! Generic stateful operators shared by the metrics.
//!
//! Inputs of this warehouse are append-only logs, so the state a metric needs
//! is bounded by its keys, not by its records: [`fold::fold_by_key`] keeps one
//! value per key (latest record, per-column LAST_VALUE, first play) and
//! [`window::tumbling`] keeps only open event-time windows. Both turn their
//! state changes into differential updates, so everything downstream is an
//! ordinary differential collection.

pub mod fold;
pub mod window;

use std::collections::BTreeMap;

use differential_dataflow::{AsCollection, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use timely::dataflow::operators::Capability;
use timely::progress::frontier::MutableAntichain;

use crate::{Diff, Time};

/// An append-only stream as a collection: each record inserted once, at the time it arrived.
///
/// ```
/// use timely::dataflow::operators::ToStream;
/// use timely::dataflow::operators::capture::{Capture, Extract};
///
/// let captured = timely::example(|scope| {
///     dataflows::ops::inserts(vec!['a', 'b'].to_stream(scope)).inner.capture()
/// });
/// let updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
/// assert_eq!(updates, vec![('a', 0, 1), ('b', 0, 1)]);
/// ```
pub fn inserts<'s, D: Clone + 'static>(stream: StreamVec<'s, Time, D>) -> VecCollection<'s, Time, D, Diff> {
    stream
        .unary::<CapacityContainerBuilder<Vec<(D, Time, Diff)>>, _, _, _>(Pipeline, "Inserts", |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    if let Some(&time) = cap.least() {
                        let mut session = output.session(&cap);
                        for batch in data {
                            session.give_iterator(batch.drain(..).map(|d| (d, time, 1)));
                        }
                    }
                });
            }
        })
        .as_collection()
}

/// Records stashed per logical time, each with a capability to emit at that time.
///
/// Operators here process a time only once their input frontier has passed it,
/// so that all of a time's records are seen together, in a deterministic order.
pub(crate) struct Stash<D> {
    pending: BTreeMap<Time, (Capability<Time>, Vec<D>)>,
    /// A drained buffer given back ([`Self::recycle`]), for the next new time: a time's
    /// records then land in a buffer already grown to about their number.
    spare: Vec<D>,
}

impl<D> Stash<D> {
    pub(crate) fn new() -> Self {
        Stash { pending: BTreeMap::new(), spare: Vec::new() }
    }

    /// Gives back a buffer that [`Self::take`] or [`Self::pop_complete`] returned, once
    /// drained, so that the next time's records do not grow a new one from empty.
    pub(crate) fn recycle(&mut self, mut buffer: Vec<D>) {
        buffer.clear();
        if buffer.capacity() > self.spare.capacity() {
            self.spare = buffer;
        }
    }

    /// Adds the records of `containers`, received under `cap`, leaving the containers empty
    /// but with their capacity, so that timely can recycle them. (Taking the containers whole
    /// saved instructions but was no faster in interleaved runs; keeping buffers recyclable
    /// is the safer default.) One reservation per container.
    pub(crate) fn push<'c>(&mut self, cap: Capability<Time>, containers: impl IntoIterator<Item = &'c mut Vec<D>>)
    where
        D: 'c,
    {
        let spare = &mut self.spare;
        let (_, stashed) = self.pending.entry(*cap.time()).or_insert_with(|| (cap, std::mem::take(spare)));
        for container in containers {
            stashed.append(container);
        }
    }

    /// The earliest stashed time.
    pub(crate) fn first_time(&self) -> Option<Time> {
        self.pending.first_key_value().map(|(t, _)| *t)
    }

    /// Removes and returns the records of exactly `time`, if any.
    pub(crate) fn take(&mut self, time: Time) -> Option<(Capability<Time>, Vec<D>)> {
        self.pending.remove(&time)
    }

    /// Removes and returns the earliest time that no frontier can still produce.
    pub(crate) fn pop_complete(&mut self, frontiers: &[&MutableAntichain<Time>]) -> Option<(Capability<Time>, Vec<D>)> {
        let (&time, _) = self.pending.first_key_value()?;
        if frontiers.iter().any(|f| f.less_equal(&time)) {
            return None;
        }
        self.pending.pop_first().map(|(_, v)| v)
    }
}
