//! [`FoldByKey`]: one value per key, folded from an append-only keyed log.
//!
//! Semantics: the input is a stream of `(key, position, value)` records. At
//! every logical time, once all of that time's records are in, each key's
//! records are applied in position order (partition, then offset) with
//! `fold(&mut state, value)`; the first record of a key becomes its state as
//! is. The output collection holds exactly one `(key, state)` per key seen,
//! updated by a retraction of the old state and an insertion of the new one
//! whenever the state changes. Ties cannot occur within one log: positions are
//! unique there. A stream that merges two logs (2.6's students and users) can
//! hold two records of one key at one position, in either order; its fold must
//! not depend on their order (2.6's fold puts them into separate halves of its state).
//!
//! Memory is one state per key (never per record), which is what makes the
//! LAST_VALUE deduplications of SPEC §2.6/2.7 bounded by distinct ids.
//!
//! Durable ([`crate::durable`]): the per-key states are saved under the operator's
//! name; a restored state is emitted, as insertions, at the checkpoint's time.

use std::cell::RefCell;
use std::hash::Hash;
use std::rc::Rc;

use foldhash::HashMap;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::stash::Stash;
use crate::{Diff, Pos, Time, durable};

/// Extension trait for [`FoldByKey::fold_by_key`], on a keyed append-only log of
/// `(key, position, value)` records.
pub trait FoldByKey<'s, K, V> {
    /// Folds each key's records, in position order, into one value per key (module docs).
    ///
    /// `SELECT key, fold(value) FROM log GROUP BY key`, where the fold sees the key's
    /// values in log order: `|state, later| *state = later` is the latest record,
    /// a per-column merge is LAST_VALUE, a minimum is the first play.
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use dataflows::{ops::FoldByKey, Pos};
    ///
    /// let captured = timely::example(|scope| {
    ///     let at = |offset| Pos { partition: 0, offset };
    ///     let records = vec![('k', at(1), 5), ('k', at(0), 7), ('j', at(2), 1)];
    ///     // Keep the larger value per key.
    ///     records.to_stream(scope).fold_by_key("Max", |s: &mut i32, v| *s = (*s).max(v)).inner.capture()
    /// });
    /// let mut updates: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
    /// updates.sort();
    /// assert_eq!(updates, vec![(('j', 1), 0, 1), (('k', 7), 0, 1)]);
    /// ```
    fn fold_by_key<F>(self, name: &str, fold: F) -> VecCollection<'s, Time, (K, V), Diff>
    where
        F: FnMut(&mut V, V) + 'static;
}

impl<'s, K, V> FoldByKey<'s, K, V> for StreamVec<'s, Time, (K, Pos, V)>
where
    K: ExchangeData + Hash + Hashable<Output = u64>,
    V: ExchangeData,
{
    #[inline]
    fn fold_by_key<F>(self, name: &str, mut fold: F) -> VecCollection<'s, Time, (K, V), Diff>
    where
        F: FnMut(&mut V, V) + 'static,
    {
        let pact = Exchange::new(|(k, _, _): &(K, Pos, V)| k.hashed());
        let scope = self.scope();
        let name = name.to_string();
        self.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<((K, V), Time, Diff)>>, _, _, _>(
            pact,
            &name.clone(),
            move |cap, info| {
                let mut stash = Stash::new();
                let state: Rc<RefCell<HashMap<K, V>>> = Rc::default();
                let saved = Rc::clone(&state);
                durable::register(&name, Box::new(move || durable::encode(&*saved.borrow())));
                // A restored state is emitted at the checkpoint's time, on the first activation.
                let mut restore = restored::<K, V>(&name, scope.index(), scope.peers()).map(|(time, entries)| {
                    scope.activator_for(Rc::clone(&info.address)).activate();
                    (cap.delayed(&time), entries)
                });
                move |(input, frontier), output| {
                    let mut state = state.borrow_mut();
                    if let Some((cap, entries)) = restore.take() {
                        let time = *cap.time();
                        let mut session = output.session(&cap);
                        for (key, value) in entries {
                            session.give(((key.clone(), value.clone()), time, 1));
                            state.insert(key, value);
                        }
                    }
                    input.for_each_stamp(|cap, data| {
                        if let Some(cap) = cap.retain_least(0) {
                            stash.push(cap, data);
                        }
                    });
                    while let Some((cap, mut batch)) = stash.pop_complete(&[frontier]) {
                        group_by_key(&mut batch);
                        let time = *cap.time();
                        let mut session = output.session(&cap);
                        let mut records = batch.drain(..).peekable();
                        while let Some((key, _, first)) = records.next() {
                            // One clone of the old state (to compare and retract) and one of the new (to emit).
                            match state.get_mut(&key) {
                                Some(current) => {
                                    let mut new = current.clone();
                                    fold(&mut new, first);
                                    while let Some((_, _, v)) = records.next_if(|(k, _, _)| *k == key) {
                                        fold(&mut new, v);
                                    }
                                    if *current == new {
                                        continue;
                                    }
                                    let old = std::mem::replace(current, new.clone());
                                    session.give(((key.clone(), old), time, -1));
                                    session.give(((key, new), time, 1));
                                }
                                None => {
                                    let mut new = first;
                                    while let Some((_, _, v)) = records.next_if(|(k, _, _)| *k == key) {
                                        fold(&mut new, v);
                                    }
                                    session.give(((key.clone(), new.clone()), time, 1));
                                    state.insert(key, new);
                                }
                            }
                        }
                        drop(records);
                        stash.recycle(batch);
                    }
                }
            },
        )
        .as_collection()
    }
}

/// The restored `(key, state)` entries of the fold `name` that worker `index` of `peers` owns.
fn restored<K, V>(name: &str, index: usize, peers: usize) -> Option<(Time, Vec<(K, V)>)>
where
    K: ExchangeData + Hash + Hashable<Output = u64>,
    V: ExchangeData,
{
    let (time, shards) = durable::take::<HashMap<K, V>>(name)?;
    let owned = shards.into_iter().flatten().filter(|(k, _)| durable::owned(k.hashed(), index, peers));
    Some((time, owned.collect()))
}

/// Orders a batch so that each key's records are together and in position order:
/// by the key's hash, then position. Sorting integers is much cheaper than comparing
/// keys (strings, mostly) and moving whole records at every step of a sort; the
/// records move once, in a final permutation.
///
/// Two distinct keys with one 64-bit hash (improbable) would interleave. That is
/// still correct in [`FoldByKey::fold_by_key`]: each key's records stay in position order, so
/// its runs are folded one after the other into its state, and the intermediate
/// states they emit and retract at the same time cancel out.
fn group_by_key<K: Hashable<Output = u64>, V>(batch: &mut [(K, Pos, V)]) {
    // (hash, position) is unique (a position is one input record), so an unstable
    // sort orders the batch exactly as a stable one would.
    batch.sort_by_cached_key(|(key, pos, _)| (key.hashed(), *pos));
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::hash::{Hash, Hasher};

    use timely::dataflow::operators::ToStream;
    use timely::dataflow::operators::capture::{Capture, Extract};

    use super::FoldByKey;
    use crate::Pos;

    /// A key whose every value hashes alike: distinct keys collide.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
    struct Clash(char);

    impl Hash for Clash {
        fn hash<H: Hasher>(&self, _: &mut H) {}
    }

    #[test]
    fn colliding_keys_still_fold_in_position_order() {
        let at = |offset| Pos { partition: 0, offset };
        let records = vec![
            (Clash('a'), at(3), "3".to_string()),
            (Clash('b'), at(1), "1".to_string()),
            (Clash('a'), at(0), "0".to_string()),
            (Clash('b'), at(2), "2".to_string()),
            (Clash('a'), at(5), "5".to_string()),
        ];
        let captured = timely::example(move |scope| {
            records.to_stream(scope).fold_by_key("Concat", |s: &mut String, v: String| s.push_str(&v)).inner.capture()
        });
        let mut net: BTreeMap<(Clash, String), crate::Diff> = BTreeMap::new();
        for (_, updates) in captured.extract() {
            for (row, _, diff) in updates {
                *net.entry(row).or_default() += diff;
            }
        }
        net.retain(|_, diff| *diff != 0);
        // Each key's values in offset order: a at 0, 3, 5; b at 1, 2.
        let expected = BTreeMap::from([((Clash('a'), "035".to_string()), 1), ((Clash('b'), "12".to_string()), 1)]);
        assert_eq!(net, expected);
    }
}
