//! [`Stash`]: records held per logical time until the input frontier has passed it.
//!
//! The operators here process a time only once it is complete, so that all of a
//! time's records are seen together and in a deterministic order; the stash keeps
//! them meanwhile, under a capability to emit at that time, and hands back the
//! earliest complete time first.

use std::collections::BTreeMap;

use timely::dataflow::operators::Capability;
use timely::progress::frontier::MutableAntichain;

use crate::Time;

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
