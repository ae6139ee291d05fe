//! [`Checkpointed`]: a collection whose accumulated contents survive a restore.
//!
//! Semantics: the output equals the input, update for update; the operator also
//! keeps the input's accumulation (`record → multiplicity`, zero entries
//! dropped) and registers it with [`crate::durable`] under its name. On a
//! restore it emits the saved accumulation (the entries this worker owns, by
//! the record's hash) as updates at the checkpoint's time, so that a
//! collection built from per-batch updates (2.8's page views, counted per
//! batch and never held by any operator upstream) comes back whole.
//!
//! Memory is one entry per distinct record of the collection: use it only on
//! collections bounded by their keys.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::rc::Rc;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use foldhash::HashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::{Diff, Time, durable};

/// Extension trait for [`Checkpointed::checkpointed`].
pub trait Checkpointed<'s, D> {
    /// The same collection, its accumulation saved by checkpoints under `name` (module docs).
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use differential_dataflow::AsCollection;
    /// use dataflows::ops::Checkpointed;
    ///
    /// let captured = timely::example(|scope| {
    ///     vec![('a', 0, 2), ('a', 0, -2), ('b', 0, 1)].to_stream(scope).as_collection().checkpointed("Ab").inner.capture()
    /// });
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
    /// updates.sort();
    /// assert_eq!(updates, vec![('a', 0, -2), ('a', 0, 2), ('b', 0, 1)]);
    /// ```
    fn checkpointed(self, name: &str) -> VecCollection<'s, Time, D, Diff>;
}

impl<'s, D> Checkpointed<'s, D> for VecCollection<'s, Time, D, Diff>
where
    D: ExchangeData + Hash + Hashable<Output = u64>,
{
    fn checkpointed(self, name: &str) -> VecCollection<'s, Time, D, Diff> {
        let scope = self.inner.scope();
        let state_name = name.to_string();
        self.inner
            .unary::<CapacityContainerBuilder<Vec<(D, Time, Diff)>>, _, _, _>(Pipeline, name, move |cap, info| {
                let sums: Rc<RefCell<HashMap<D, Diff>>> = Rc::default();
                let mut restore = durable::take::<HashMap<D, Diff>>(&state_name).map(|(time, shards)| {
                    scope.activator_for(Rc::clone(&info.address)).activate();
                    let (index, peers) = (scope.index(), scope.peers());
                    let owned = shards.into_iter().flatten().filter(|(d, _)| durable::owned(d.hashed(), index, peers));
                    (cap.delayed(&time), owned.collect::<Vec<_>>())
                });
                let saved = Rc::clone(&sums);
                durable::register(&state_name, Box::new(move || durable::encode(&*saved.borrow())));
                let keep = durable::enabled();
                move |input, output| {
                    let mut sums = sums.borrow_mut();
                    if let Some((cap, entries)) = restore.take() {
                        let time = *cap.time();
                        output.session(&cap).give_iterator(entries.iter().map(|(d, n)| (d.clone(), time, *n)));
                        for (d, n) in entries {
                            add(&mut sums, d, n);
                        }
                    }
                    input.for_each_stamp(|cap, data| {
                        let mut session = output.session(&cap);
                        for batch in data {
                            if keep {
                                for (d, _, n) in batch.iter() {
                                    add(&mut sums, d.clone(), *n);
                                }
                            }
                            session.give_container(batch);
                        }
                    });
                }
            })
            .as_collection()
    }
}

fn add<D: Hash + Eq>(sums: &mut HashMap<D, Diff>, d: D, n: Diff) {
    match sums.entry(d) {
        Entry::Occupied(mut sum) => {
            *sum.get_mut() += n;
            // Only the accumulation matters: a record back at zero is no state.
            if *sum.get() == 0 {
                sum.remove();
            }
        }
        Entry::Vacant(sum) if n != 0 => {
            sum.insert(n);
        }
        Entry::Vacant(_) => {}
    }
}
