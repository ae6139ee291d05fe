//! [`Retained`]: an insert-only collection as reads see it, kept for a number of logical
//! times and restored exactly by checkpoints.
//!
//! Semantics: the output is the input plus, with a retention of `n` logical times, every
//! update again negated at `t + n` (its own time `t` plus `n`): a read as of frontier `U`
//! sees the records inserted at `U - n ..= U - 1`. Without a retention (`None`) the output
//! is the input.
//!
//! With checkpoints enabled the operator keeps every update that a read after its input
//! frontier may still see (`t + n` at or after the frontier; every update without a
//! retention), with its own time, and registers them with [`crate::durable`]. A restore at
//! `T` emits the saved updates this worker owns (by the record's hash) at `T`, and their
//! retractions at their *original* `t + n`, so that every read after `T` sees what an
//! uninterrupted run would: re-inserting them at `T` and retracting at `T + n` would keep
//! them `T - t` times too long. Updates already retracted by `T + 1` (`t + n <= T`) are not
//! restored.
//!
//! Memory: without checkpoints, nothing (the retractions are sent at once, at their future
//! times). With checkpoints, a second copy of what reads see: bounded by the retention, or
//! growing with the input without one.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::{Operator, OutputBuilderSession};

use crate::{Diff, Time, durable};

/// Updates held for a checkpoint, by their own time.
type Held<D> = BTreeMap<Time, Vec<(D, Diff)>>;

/// The operator's output.
type Output<'a, D> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<(D, Time, Diff)>>>;

/// Extension trait for [`Retained::retained`].
pub trait Retained<'s, D> {
    /// The collection as reads see it: each update retracted again `retention` logical times
    /// after its own (`None`: never), what is held saved by checkpoints under `name`
    /// (module docs).
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use differential_dataflow::AsCollection;
    /// use dataflows::ops::Retained;
    ///
    /// let captured = timely::example(|scope| {
    ///     vec![('a', 0, 1), ('b', 2, 1)].to_stream(scope).as_collection().retained("Ab", Some(3)).inner.capture()
    /// });
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
    /// updates.sort_by_key(|&(d, t, n)| (t, d, n));
    /// assert_eq!(updates, vec![('a', 0, 1), ('b', 2, 1), ('a', 3, -1), ('b', 5, -1)]);
    /// ```
    fn retained(self, name: &str, retention: Option<Time>) -> VecCollection<'s, Time, D, Diff>;
}

impl<'s, D> Retained<'s, D> for VecCollection<'s, Time, D, Diff>
where
    D: ExchangeData + Hashable<Output = u64>,
{
    fn retained(self, name: &str, retention: Option<Time>) -> VecCollection<'s, Time, D, Diff> {
        let scope = self.inner.scope();
        let state_name = name.to_string();
        self.inner
            .unary_frontier::<CapacityContainerBuilder<Vec<(D, Time, Diff)>>, _, _, _>(
                Pipeline,
                name,
                move |cap, info| {
                    let held: Rc<RefCell<Held<D>>> = Rc::default();
                    let mut restore = durable::take::<Vec<(Time, D, Diff)>>(&state_name).map(|(time, shards)| {
                        scope.activator_for(Rc::clone(&info.address)).activate();
                        let (index, peers) = (scope.index(), scope.peers());
                        let owned = shards
                            .into_iter()
                            .flatten()
                            .filter(|(t, d, _)| {
                                retention.is_none_or(|n| t.saturating_add(n) > time)
                                    && durable::owned(d.hashed(), index, peers)
                            })
                            .collect::<Vec<_>>();
                        (cap.delayed(&time), owned)
                    });
                    let saved = Rc::clone(&held);
                    durable::register(
                        &state_name,
                        Box::new(move || {
                            let held = saved.borrow();
                            let updates: Vec<(Time, &D, Diff)> =
                                held.iter().flat_map(|(t, ds)| ds.iter().map(move |(d, n)| (*t, d, *n))).collect();
                            durable::encode(&updates)
                        }),
                    );
                    let keep = durable::enabled();
                    move |(input, frontier), output| {
                        let mut held = held.borrow_mut();
                        if let Some((cap, updates)) = restore.take() {
                            let time = *cap.time();
                            output.session(&cap).give_iterator(updates.iter().map(|(_, d, n)| (d.clone(), time, *n)));
                            let mut retractions = Vec::new();
                            for (t, d, n) in updates {
                                if let Some(r) = retention {
                                    retractions.push((d.clone(), t.saturating_add(r), -n));
                                }
                                held.entry(t).or_default().push((d, n));
                            }
                            give_at_their_times(|t| cap.delayed(t), retractions, output);
                        }
                        input.for_each_stamp(|cap, data| {
                            for batch in data {
                                let mut retractions = Vec::new();
                                for (d, t, n) in batch.iter() {
                                    if let Some(r) = retention {
                                        retractions.push((d.clone(), t.saturating_add(r), -*n));
                                    }
                                    if keep {
                                        held.entry(*t).or_default().push((d.clone(), *n));
                                    }
                                }
                                output.session(&cap).give_container(batch);
                                give_at_their_times(|t| cap.delayed(t, 0), retractions, output);
                            }
                        });
                        // Forget what no read at or after the frontier sees any more.
                        if let (Some(r), Some(&f)) = (retention, frontier.frontier().first()) {
                            while let Some(entry) = held.first_entry() {
                                if entry.key().saturating_add(r) >= f {
                                    break;
                                }
                                entry.remove();
                            }
                        }
                    }
                },
            )
            .as_collection()
    }
}

/// Sends `updates` in runs of one time each, with capabilities from `delayed` (at times at
/// or after the one held).
fn give_at_their_times<D: Clone + 'static>(
    delayed: impl Fn(&Time) -> Capability<Time>,
    mut updates: Vec<(D, Time, Diff)>,
    output: &mut Output<'_, D>,
) {
    updates.sort_by_key(|(_, t, _)| *t);
    let mut rest = &updates[..];
    while let Some((_, t, _)) = rest.first() {
        let run = rest.iter().take_while(|(_, u, _)| u == t).count();
        output.session(&delayed(t)).give_iterator(rest[..run].iter().cloned());
        rest = &rest[run..];
    }
}
