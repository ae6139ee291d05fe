//! Operator state that checkpoints save and restores feed back (SPEC §5 "Durable state").
//!
//! Contract. Every stateful operator of the metrics (the per-key folds, the
//! distinct sets, the open windows, the sources' partitions) keeps its state
//! behind a handle it [`register`]s under a name unique in the dataflow, when
//! the dataflow is built on a worker where checkpoints are [`enable`]d. At a
//! checkpoint the job stops its sources at a logical time `T`, lets every
//! operator finish every time up to `T` and none after it, and calls
//! [`save_all`]: each registered state is encoded (bincode) as it stands after
//! exactly the times up to `T`. That is the copy; the job writes it to disk in
//! the background while the dataflow goes on.
//!
//! On a restore, the job hands [`enable`] the saved sections of *every* shard
//! (every worker of the run that wrote the checkpoint, whatever its number of
//! workers). An operator that finds its name among them ([`take`]) keeps the
//! entries whose key it owns in this run ([`owned`]: the worker that timely's
//! `Exchange` routes the key's hash to), so a checkpoint taken with one
//! `-w`/`-n` restores under any other. An operator whose state is the source
//! of a differential collection (a fold's `(key, state)`, a distinct set)
//! re-emits its restored state as insertions at `T`; every differential
//! operator downstream (joins, counts, the top-N reduce) rebuilds its
//! arrangements from those, so its state is exact without being saved. Sinks
//! already hold every time up to `T` and skip those updates.
//!
//! Why save operator state rather than differential's arrangements: the state
//! that depends on the history is exactly what these operators hold (one value
//! per key, one entry per distinct record, the open windows); every
//! arrangement is a function of it. Saving it is one pass over a hash map per
//! operator, restoring it is one insertion per entry, and nothing grows with
//! the number of records read.
//!
//! With checkpoints off (the default, and every test that does not ask for
//! them) nothing registers and operators pay nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Time;

/// Encodes a registered state as it stands now.
pub type Saver = Box<dyn Fn() -> Result<Vec<u8>, String>>;

/// What a checkpoint gives back to a new run: its time, and per state name the encoded
/// state of every shard that had one.
#[derive(Debug, Default)]
pub struct Restored {
    /// The checkpoint's logical time `T`: restored collections are re-emitted at `T`.
    pub time: Time,
    /// Per state name: one encoded state per shard of the checkpoint.
    pub sections: BTreeMap<String, Vec<Vec<u8>>>,
}

#[derive(Default)]
struct Registry {
    enabled: bool,
    savers: Vec<(String, Saver)>,
    restored: Option<Arc<Restored>>,
    failure: Option<String>,
}

std::thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// Turns registration on for the dataflows this worker thread builds next, with the state
/// to restore (if any). Forgets whatever was registered before.
pub fn enable(restored: Option<Arc<Restored>>) {
    REGISTRY.with(|r| *r.borrow_mut() = Registry { enabled: true, restored, ..Registry::default() });
}

/// Turns registration off and drops every registered handle (and the restored state).
pub fn disable() {
    REGISTRY.with(|r| *r.borrow_mut() = Registry::default());
}

/// Whether operators built now register their state.
pub fn enabled() -> bool {
    REGISTRY.with(|r| r.borrow().enabled)
}

/// Registers the state named `name` (unique within the dataflow); `save` encodes it as it
/// stands when called. Does nothing unless [`enable`]d.
pub fn register(name: &str, save: Saver) {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if !r.enabled {
            return;
        }
        if r.savers.iter().any(|(n, _)| n == name) {
            r.failure.get_or_insert_with(|| format!("two stateful operators are named {name}"));
            return;
        }
        r.savers.push((name.to_string(), save));
    });
}

/// Every registered state, encoded now, by name.
pub fn save_all() -> Result<Vec<(String, Vec<u8>)>, String> {
    REGISTRY.with(|r| r.borrow().savers.iter().map(|(name, save)| Ok((name.clone(), save()?))).collect())
}

/// The restored state named `name`: the checkpoint's time and each shard's state, decoded
/// as `S`; `None` without a restore or a state of that name. A state that does not decode
/// is reported ([`failure`]) and restores as nothing.
pub fn take<S: DeserializeOwned>(name: &str) -> Option<(Time, Vec<S>)> {
    let restored = REGISTRY.with(|r| r.borrow().restored.clone())?;
    match restored.decode(name)? {
        Ok(states) => Some((restored.time, states)),
        Err(e) => {
            fail(e);
            None
        }
    }
}

/// The restored state named `name` as each shard saved it (bytes a [`Saver`] returned, in
/// its own format): the checkpoint's time and one section per shard; `None` without a
/// restore or a state of that name.
pub fn take_raw(name: &str) -> Option<(Time, Vec<Vec<u8>>)> {
    let restored = REGISTRY.with(|r| r.borrow().restored.clone())?;
    Some((restored.time, restored.sections.get(name)?.clone()))
}

impl Restored {
    /// The state named `name` of each shard, decoded as `S`; `None` when no shard has one.
    pub fn decode<S: DeserializeOwned>(&self, name: &str) -> Option<Result<Vec<S>, String>> {
        let shards = self.sections.get(name)?;
        let decoded = shards.iter().map(|shard| bincode::deserialize(shard)).collect::<Result<Vec<S>, _>>();
        Some(decoded.map_err(|e| format!("checkpoint state {name} does not decode: {e}")))
    }
}

/// The time of the checkpoint being restored, if any.
pub fn restored_time() -> Option<Time> {
    REGISTRY.with(|r| r.borrow().restored.as_ref().map(|r| r.time))
}

/// Records that restoring failed (the first failure is kept).
pub fn fail(message: String) {
    REGISTRY.with(|r| {
        r.borrow_mut().failure.get_or_insert(message);
    });
}

/// Why restoring or registering failed on this thread, if it did.
pub fn failure() -> Option<String> {
    REGISTRY.with(|r| r.borrow().failure.clone())
}

/// Whether the worker `index` of `peers` owns a key of this hash: where timely's `Exchange`
/// sends it (`hash & (peers - 1)` for a power of two, else `hash % peers`: the same).
///
/// ```
/// use dataflows::durable::owned;
/// assert!(owned(7, 1, 2) && !owned(7, 0, 2) && owned(7, 1, 3) && owned(7, 0, 1));
/// ```
pub fn owned(hash: u64, index: usize, peers: usize) -> bool {
    hash % peers.max(1) as u64 == index as u64
}

/// Encodes `state` for a [`Saver`].
pub fn encode<S: Serialize + ?Sized>(state: &S) -> Result<Vec<u8>, String> {
    bincode::serialize(state).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_register_only_when_enabled_and_decode_per_shard() {
        disable();
        register("off", Box::new(|| encode(&1u8)));
        assert!(save_all().unwrap().is_empty());
        let sections =
            BTreeMap::from([("fold".to_string(), vec![encode(&vec![1u32]).unwrap(), encode(&vec![2u32]).unwrap()])]);
        enable(Some(Arc::new(Restored { time: 9, sections })));
        register("a", Box::new(|| encode(&5u64)));
        register("a", Box::new(|| encode(&6u64)));
        assert_eq!(failure().as_deref(), Some("two stateful operators are named a"));
        assert_eq!(save_all().unwrap(), vec![("a".to_string(), encode(&5u64).unwrap())]);
        assert_eq!(take::<Vec<u32>>("fold"), Some((9, vec![vec![1], vec![2]])));
        assert_eq!(take::<Vec<u32>>("none"), None);
        disable();
        assert_eq!(take::<Vec<u32>>("fold"), None);
    }
}
