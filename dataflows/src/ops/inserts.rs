//! Append-only streams as collections: [`Inserts`] (`SELECT * FROM log`),
//! [`CountedInserts`] (the same, equal records of a batch as one counted update) and
//! [`DistinctInserts`] (`SELECT DISTINCT * FROM log`).
//!
//! Every input of this warehouse is an append-only log, so a record, once read,
//! is inserted and never retracted: both operators only insert, at the logical
//! time the record arrived (the distinct one, at the earliest time a record
//! appears), and keep no arrangement. The distinct set is durable
//! ([`crate::durable`]): saved under the operator's name, re-emitted at the
//! checkpoint's time on a restore.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::rc::Rc;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use foldhash::HashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;

use super::stash::Stash;
use crate::{Diff, Time, durable};

/// Extension trait for [`Inserts::inserts`], on an append-only stream.
pub trait Inserts<'s, D> {
    /// An append-only stream as a collection: each record inserted once, at the time it arrived.
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use dataflows::ops::Inserts;
    ///
    /// let captured = timely::example(|scope| vec!['a', 'b'].to_stream(scope).inserts().inner.capture());
    /// let updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
    /// assert_eq!(updates, vec![('a', 0, 1), ('b', 0, 1)]);
    /// ```
    fn inserts(self) -> VecCollection<'s, Time, D, Diff>;
}

impl<'s, D: Clone + 'static> Inserts<'s, D> for StreamVec<'s, Time, D> {
    #[inline]
    fn inserts(self) -> VecCollection<'s, Time, D, Diff> {
        self.unary::<CapacityContainerBuilder<Vec<(D, Time, Diff)>>, _, _, _>(Pipeline, "Inserts", |_cap, _info| {
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
}

/// Extension trait for [`CountedInserts::counted_inserts`], on an append-only stream.
pub trait CountedInserts<'s, D> {
    /// [`Inserts::inserts`] with the equal records of each batch merged into one update
    /// whose multiplicity is their count: the same collection, in far fewer updates when
    /// many records share few values (2.8 counts every record by day, area and role).
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use dataflows::ops::CountedInserts;
    ///
    /// let captured = timely::example(|scope| vec!['a', 'b', 'a'].to_stream(scope).counted_inserts().inner.capture());
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
    /// updates.sort();
    /// assert_eq!(updates, vec![('a', 0, 2), ('b', 0, 1)]);
    /// ```
    fn counted_inserts(self) -> VecCollection<'s, Time, D, Diff>;
}

impl<'s, D: Clone + Eq + Hash + 'static> CountedInserts<'s, D> for StreamVec<'s, Time, D> {
    fn counted_inserts(self) -> VecCollection<'s, Time, D, Diff> {
        self.unary::<CapacityContainerBuilder<Vec<(D, Time, Diff)>>, _, _, _>(
            Pipeline,
            "CountedInserts",
            |_cap, _info| {
                let mut counts: HashMap<D, Diff> = HashMap::default();
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        if let Some(&time) = cap.least() {
                            for batch in data {
                                for d in batch.drain(..) {
                                    *counts.entry(d).or_default() += 1;
                                }
                            }
                            output.session(&cap).give_iterator(counts.drain().map(|(d, n)| (d, time, n)));
                        }
                    });
                }
            },
        )
        .as_collection()
    }
}

/// Extension trait for [`DistinctInserts::distinct_inserts`], on an append-only stream.
pub trait DistinctInserts<'s, D> {
    /// Each distinct record of an append-only stream, once, at the first logical time it
    /// appears: `distinct` of [`Inserts::inserts`], kept in a hash set instead of an arrangement.
    ///
    /// Times are processed in order, once the input frontier has passed them, so a record
    /// seen at two times counts at the earlier one (as `distinct` would have it); duplicates
    /// within one time give one output. Records are exchanged by their hash, so equal records
    /// meet on one worker. Memory is one entry per distinct record.
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use dataflows::ops::DistinctInserts;
    ///
    /// let captured = timely::example(|scope| {
    ///     vec!['a', 'b', 'a'].to_stream(scope).distinct_inserts("Distinct").inner.capture()
    /// });
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
    /// updates.sort();
    /// assert_eq!(updates, vec![('a', 0, 1), ('b', 0, 1)]);
    /// ```
    fn distinct_inserts(self, name: &str) -> VecCollection<'s, Time, D, Diff>;
}

impl<'s, D> DistinctInserts<'s, D> for StreamVec<'s, Time, D>
where
    D: ExchangeData + Hash + Hashable<Output = u64>,
{
    #[inline]
    fn distinct_inserts(self, name: &str) -> VecCollection<'s, Time, D, Diff> {
        let pact = Exchange::new(|d: &D| d.hashed());
        let scope = self.scope();
        let state_name = name.to_string();
        self.unary_frontier::<CapacityContainerBuilder<Vec<(D, Time, Diff)>>, _, _, _>(pact, name, move |cap, info| {
            let mut stash = Stash::new();
            let seen: Rc<RefCell<HashMap<D, ()>>> = Rc::default();
            let saved = Rc::clone(&seen);
            durable::register(&state_name, Box::new(move || durable::encode(&*saved.borrow())));
            // A restored set is emitted at the checkpoint's time, on the first activation.
            let mut restore = durable::take::<HashMap<D, ()>>(&state_name).map(|(time, shards)| {
                scope.activator_for(Rc::clone(&info.address)).activate();
                let (index, peers) = (scope.index(), scope.peers());
                let owned = shards.into_iter().flatten().filter(|(d, _)| durable::owned(d.hashed(), index, peers));
                (cap.delayed(&time), owned.map(|(d, _)| d).collect::<Vec<D>>())
            });
            move |(input, frontier), output| {
                let mut seen = seen.borrow_mut();
                if let Some((cap, records)) = restore.take() {
                    let time = *cap.time();
                    output.session(&cap).give_iterator(records.iter().map(|d| (d.clone(), time, 1)));
                    seen.extend(records.into_iter().map(|d| (d, ())));
                }
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
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::mpsc;

    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::InputHandle;
    use timely::dataflow::operators::capture::{Capture, Extract};
    use timely::dataflow::operators::{Concat, Input as _};

    use super::{DistinctInserts, Inserts};
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
                records.clone().distinct_inserts("Ours").inner.capture_into(ours_send);
                records.inserts().distinct().inner.capture_into(theirs_send);
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
