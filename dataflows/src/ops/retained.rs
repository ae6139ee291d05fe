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

/// Updates held for a checkpoint, by their own time: each time's `(record, diff)` pairs
/// encoded (bincode) one after another as they arrive, so that holding them costs their
/// encoded size (about half the records') and a checkpoint copies bytes instead of
/// encoding every record while the sources are held.
type Held = BTreeMap<Time, Vec<u8>>;

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
                    let held: Rc<RefCell<Held>> = Rc::default();
                    let mut restore = durable::take_raw(&state_name).map(|(time, shards)| {
                        scope.activator_for(Rc::clone(&info.address)).activate();
                        let (index, peers) = (scope.index(), scope.peers());
                        let kept = |t: Time, d: &D| {
                            retention.is_none_or(|n| t.saturating_add(n) > time)
                                && durable::owned(d.hashed(), index, peers)
                        };
                        let mut owned = Vec::new();
                        for shard in &shards {
                            if let Err(e) = decode(shard, kept, &mut owned) {
                                durable::fail(format!("checkpoint state {state_name} does not decode: {e}"));
                            }
                        }
                        (cap.delayed(&time), owned)
                    });
                    let saved = Rc::clone(&held);
                    durable::register(&state_name, Box::new(move || Ok(encode(&saved.borrow()))));
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
                                hold(&mut held, t, &d, n);
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
                                        hold(&mut held, *t, d, *n);
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

/// Appends `(d, n)` to the updates held at `t`.
fn hold<D: serde::Serialize>(held: &mut Held, t: Time, d: &D, n: Diff) {
    if let Err(e) = bincode::serialize_into(held.entry(t).or_default(), &(d, n)) {
        durable::fail(format!("a served row does not encode for checkpoints: {e}"));
    }
}

/// The checkpoint section of `held`: per time, `time` and the length of its bytes (u64,
/// little-endian), then the bytes.
fn encode(held: &Held) -> Vec<u8> {
    let mut out = Vec::with_capacity(held.values().map(|b| b.len() + 16).sum());
    for (t, bytes) in held {
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Decodes a section written by [`encode`], appending the updates `keep` accepts to `out`.
fn decode<D: serde::de::DeserializeOwned>(
    mut section: &[u8],
    keep: impl Fn(Time, &D) -> bool,
    out: &mut Vec<(Time, D, Diff)>,
) -> Result<(), String> {
    let word = |s: &mut &[u8]| -> Result<u64, String> {
        let (head, rest) = s.split_at_checked(8).ok_or("truncated")?;
        *s = rest;
        Ok(u64::from_le_bytes(head.try_into().map_err(|_| "truncated")?))
    };
    while !section.is_empty() {
        let t = word(&mut section)?;
        let len = usize::try_from(word(&mut section)?).map_err(|e| e.to_string())?;
        let (mut bytes, rest) = section.split_at_checked(len).ok_or("truncated")?;
        section = rest;
        while !bytes.is_empty() {
            let (d, n): (D, Diff) = bincode::deserialize_from(&mut bytes).map_err(|e| e.to_string())?;
            if keep(t, &d) {
                out.push((t, d, n));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_updates_decode_as_held_and_a_truncated_section_is_an_error() {
        let mut held = Held::new();
        hold(&mut held, 3, &"a".to_string(), 1);
        hold(&mut held, 7, &"c".to_string(), -1);
        hold(&mut held, 3, &"b".to_string(), 2);
        let section = encode(&held);
        let mut all = Vec::new();
        decode::<String>(&section, |_, _| true, &mut all).expect("decode");
        assert_eq!(all, vec![(3, "a".to_string(), 1), (3, "b".to_string(), 2), (7, "c".to_string(), -1)]);
        let mut some = Vec::new();
        decode::<String>(&section, |t, d| t == 3 && d == "b", &mut some).expect("decode");
        assert_eq!(some, vec![(3, "b".to_string(), 2)]);
        assert!(decode::<String>(&section[..section.len() - 1], |_, _| true, &mut Vec::new()).is_err());
    }
}
