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

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use foldhash::HashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
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

/// Each distinct record of an append-only stream, once, at the first logical time it
/// appears: `distinct` of [`inserts`], kept in a hash set instead of an arrangement.
///
/// Times are processed in order, once the input frontier has passed them, so a record
/// seen at two times counts at the earlier one (as `distinct` would have it); duplicates
/// within one time give one output. Records are exchanged by their hash, so equal records
/// meet on one worker. Memory is one entry per distinct record.
///
/// ```
/// use timely::dataflow::operators::ToStream;
/// use timely::dataflow::operators::capture::{Capture, Extract};
///
/// let captured = timely::example(|scope| {
///     dataflows::ops::distinct_inserts(vec!['a', 'b', 'a'].to_stream(scope), "Distinct").inner.capture()
/// });
/// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
/// updates.sort();
/// assert_eq!(updates, vec![('a', 0, 1), ('b', 0, 1)]);
/// ```
pub fn distinct_inserts<'s, D>(stream: StreamVec<'s, Time, D>, name: &str) -> VecCollection<'s, Time, D, Diff>
where
    D: ExchangeData + Hash + Hashable<Output = u64>,
{
    let pact = Exchange::new(|d: &D| d.hashed());
    stream
        .unary_frontier::<CapacityContainerBuilder<Vec<(D, Time, Diff)>>, _, _, _>(pact, name, |_cap, _info| {
            let mut stash = Stash::new();
            let mut seen: HashMap<D, ()> = HashMap::default();
            move |(input, frontier), output| {
                input.for_each_stamp(|cap, data| {
                    if let Some(cap) = cap.retain_least(0) {
                        stash.push(cap, data);
                    }
                });
                while let Some((cap, mut batch)) = stash.pop_complete(&[frontier]) {
                    let time = *cap.time();
                    let mut session = output.session(&cap);
                    for record in batch.drain(..) {
                        if let Entry::Vacant(first) = seen.entry(record) {
                            session.give((first.key().clone(), time, 1));
                            first.insert(());
                        }
                    }
                    stash.recycle(batch);
                }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::mpsc;

    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::operators::capture::{Capture, Extract};
    use timely::dataflow::operators::{Concat, Input as _};
    use timely::dataflow::InputHandle;

    use super::{distinct_inserts, inserts};
    use crate::{Diff, Time};

    /// Net updates per `(record, time)`.
    type Net = BTreeMap<(u8, Time), Diff>;
    type Captured = mpsc::Receiver<timely::dataflow::operators::capture::Event<Time, Vec<(u8, Time, Diff)>>>;

    /// The net updates of a captured collection.
    fn net(captured: Captured) -> Net {
        let mut net = BTreeMap::new();
        for (record, time, diff) in captured.extract().into_iter().flat_map(|(_, updates)| updates) {
            *net.entry((record, time)).or_default() += diff;
        }
        net.retain(|_, diff| *diff != 0);
        net
    }

    /// Feeds `late` (at logical times below `early`'s) through a second input that lags
    /// behind, so records reach the operator out of time order; returns the net output of
    /// `distinct_inserts` and of differential's `distinct` over the same inserts.
    fn both(early: Vec<(Time, u8)>, late: Vec<(Time, u8)>) -> (Net, Net) {
        let (ours, theirs) = (mpsc::channel(), mpsc::channel());
        let (ours_send, theirs_send) = (ours.0, theirs.0);
        timely::execute_directly(move |worker| {
            let mut first = InputHandle::<Time, CapacityContainerBuilder<Vec<u8>>>::new();
            let mut second = InputHandle::<Time, CapacityContainerBuilder<Vec<u8>>>::new();
            worker.dataflow::<Time, _, _>(|scope| {
                let records = scope.input_from(&mut first).concat(scope.input_from(&mut second));
                distinct_inserts(records.clone(), "Ours").inner.capture_into(ours_send);
                inserts(records).distinct().inner.capture_into(theirs_send);
            });
            for (time, record) in early {
                first.advance_to(time);
                first.send(record);
            }
            first.close();
            worker.step();
            for (time, record) in late {
                second.advance_to(time);
                second.send(record);
            }
        });
        (net(ours.1), net(theirs.1))
    }

    #[test]
    fn a_record_counts_once_at_its_earliest_time_even_when_that_arrives_last() {
        let (ours, theirs) = both(vec![(3, b'a'), (3, b'a'), (5, b'b')], vec![(1, b'a'), (4, b'b'), (4, b'c')]);
        assert_eq!(ours, BTreeMap::from([((b'a', 1), 1), ((b'b', 4), 1), ((b'c', 4), 1)]));
        assert_eq!(ours, theirs);
    }

    #[test]
    fn agrees_with_distinct_on_seeded_inputs() {
        // A small linear congruential generator: deterministic, no dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |below: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        for _ in 0..40 {
            let mut stream = |n| {
                let mut time = 0;
                (0..n)
                    .map(|_| {
                        time += next(3);
                        (time, next(12) as u8)
                    })
                    .collect::<Vec<_>>()
            };
            let (early, late) = (stream(30), stream(30));
            let (ours, theirs) = both(early, late);
            assert_eq!(ours, theirs);
        }
    }
}
