//! How the benchmark paces its sources: at most `--max-inflight` logical
//! times between a source and the probe after the last operator, and the last
//! time held until the worker has measured the live state.
//!
//! The source does not spin while it waits: it leaves its activator with the
//! [`BenchPace`], and the worker loop wakes it when what it waits for happens
//! ([`Waiting::wake_if`]).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::scheduling::Activator;

use connectors::source::Pace;
use dataflows::Time;

/// What a worker's source waits for before it is scheduled again.
#[derive(Clone, Copy)]
enum Wait {
    /// The probe to pass this time (at most `--max-inflight` epochs in flight).
    Probe(Time),
    /// The worker loop to have measured the live state.
    Release,
}

/// What the worker loop and a worker's source share.
#[derive(Clone, Default)]
pub(super) struct Waiting {
    /// What the source waits for, if anything.
    wait: Rc<Cell<Option<Wait>>>,
    /// The source's activator.
    activator: Rc<RefCell<Option<Activator>>>,
    /// Per-epoch instants at which the source started reading it.
    pub(super) emitted: Rc<RefCell<VecDeque<(Time, Instant)>>>,
    /// The last time, held once every partition is done.
    pub(super) hold: Rc<Cell<Option<Time>>>,
    /// Set by the worker loop: the source may finish.
    pub(super) release: Rc<Cell<bool>>,
}

impl Waiting {
    /// Wakes the source if what it waits for has happened (`probe` passed its time, or the
    /// release was given).
    pub(super) fn wake_if(&self, probe: &ProbeHandle<Time>) {
        let wake = match self.wait.get() {
            Some(Wait::Probe(time)) => !probe.less_than(&time),
            Some(Wait::Release) => self.release.get(),
            None => false,
        };
        if wake {
            self.wait.set(None);
            if let Some(activator) = self.activator.borrow().as_ref() {
                activator.activate();
            }
        }
    }
}

/// The bench's [`Pace`].
pub(super) struct BenchPace {
    pub(super) probe: ProbeHandle<Time>,
    pub(super) max_inflight: u64,
    pub(super) waiting: Waiting,
}

impl Pace for BenchPace {
    fn admit(&mut self, time: Time, activator: &Activator) -> bool {
        let w = &self.waiting;
        w.activator.borrow_mut().get_or_insert_with(|| activator.clone());
        if time >= self.max_inflight && self.probe.less_than(&(time - self.max_inflight)) {
            w.wait.set(Some(Wait::Probe(time - self.max_inflight)));
            return false;
        }
        let mut emitted = w.emitted.borrow_mut();
        if emitted.back().is_none_or(|(t, _)| *t < time) {
            emitted.push_back((time, Instant::now()));
        }
        true
    }

    fn release(&mut self, time: Time, _activator: &Activator) -> bool {
        let w = &self.waiting;
        if w.hold.get().is_none() {
            w.hold.set(Some(time));
        }
        if w.release.get() {
            return true;
        }
        w.wait.set(Some(Wait::Release));
        false
    }
}
