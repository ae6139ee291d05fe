//! Back-pressure (SPEC §5): at most `max_inflight` logical times between a
//! source and the sinks' durable frontier.
//!
//! Every sink exposes its committed upper as the frontier of a stream
//! ([`crate::sink::sink`]); the job probes all of them with one probe, whose
//! frontier is the least committed upper over the cluster's sinks (timely's
//! progress tracking carries it to every worker of every process). A source
//! may read at time `t` only while `t < durable + max_inflight`; otherwise it
//! leaves its activator and waits, without polling, and the worker loop wakes
//! it ([`InFlightWaker::wake_if`]) once the probe has moved. So when a sink
//! falls behind or stalls, reading stops, and what is in flight (the sinks'
//! pending updates, the operators' open times) stays bounded by
//! `max_inflight` logical times of input; reading resumes when the sink
//! catches up.
//!
//! ```
//! use connectors::source::{InFlight, Pace};
//! use timely::dataflow::operators::probe::Handle as ProbeHandle;
//!
//! // A probe that nothing feeds is at time 0 until its dataflow is built.
//! let (pace, _waker) = InFlight::new(ProbeHandle::<u64>::new(), 4);
//! # let _ = pace;
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::scheduling::Activator;

use dataflows::Time;

use super::Pace;

/// What the source and the worker loop share: the time the source waits for, and its activator.
#[derive(Clone, Default)]
struct Waiting {
    until: Rc<Cell<Option<Time>>>,
    /// The time the source waits for the checkpoint barrier to pass.
    barrier_at: Rc<Cell<Option<Time>>>,
    activator: Rc<RefCell<Option<Activator>>>,
}

/// The source's side: admits a time while the probe is at most `max_inflight` behind it.
pub struct InFlight {
    probe: ProbeHandle<Time>,
    max_inflight: u64,
    waiting: Waiting,
    barrier: Option<ProbeHandle<Time>>,
    pending: Pending,
}

/// The barrier times of requested checkpoints not yet taken on this worker (the job's
/// checkpoints fill and drain it).
pub type Pending = Rc<RefCell<Vec<Time>>>;

/// The worker loop's side: wakes the source once what it waits for has happened.
#[derive(Clone)]
pub struct InFlightWaker {
    probe: ProbeHandle<Time>,
    waiting: Waiting,
    barrier: Option<ProbeHandle<Time>>,
    pending: Pending,
    /// The pending checkpoint the source was last woken for.
    woken_for: Cell<Option<Time>>,
}

impl InFlight {
    /// A pace bounded by `probe` (the sinks' durable frontier) and its waker for the worker loop.
    pub fn new(probe: ProbeHandle<Time>, max_inflight: u64) -> (Self, InFlightWaker) {
        let waiting = Waiting::default();
        let pending = Pending::default();
        let waker = InFlightWaker {
            probe: probe.clone(),
            waiting: waiting.clone(),
            barrier: None,
            pending: Rc::clone(&pending),
            woken_for: Cell::new(None),
        };
        (InFlight { probe, max_inflight: max_inflight.max(1), waiting, barrier: None, pending }, waker)
    }

    /// The same pace, also holding the source below the frontier of `barrier` (checkpoints:
    /// the source neither reads nor announces anything at or past it); `pending` holds the
    /// barrier times of requested checkpoints, which a quiet source may jump its live epoch
    /// to, and the waker wakes the source for each.
    pub fn with_barrier(
        self,
        barrier: ProbeHandle<Time>,
        pending: Pending,
        waker: InFlightWaker,
    ) -> (Self, InFlightWaker) {
        let waker = InFlightWaker { barrier: Some(barrier.clone()), pending: Rc::clone(&pending), ..waker };
        (InFlight { barrier: Some(barrier), pending, ..self }, waker)
    }
}

impl Pace for InFlight {
    fn admit(&mut self, time: Time, activator: &Activator) -> bool {
        self.waiting.activator.borrow_mut().get_or_insert_with(|| activator.clone());
        if self.barrier.as_ref().is_some_and(|b| b.less_equal(&time)) {
            self.waiting.barrier_at.set(Some(time));
            return false;
        }
        let Some(behind) = time.checked_sub(self.max_inflight) else { return true };
        if self.probe.less_than(&behind) {
            self.waiting.until.set(Some(behind));
            return false;
        }
        true
    }

    fn limit(&self) -> Option<Time> {
        self.barrier.as_ref().and_then(|b| b.with_frontier(|f| f.first().copied()))
    }

    fn checkpoint_at(&self) -> Option<Time> {
        self.pending.borrow().first().copied()
    }
}

impl InFlightWaker {
    /// Wakes the source if it waits and the probe has reached what it waits for.
    pub fn wake_if(&self) {
        let pending = self.pending.borrow().first().copied();
        if pending.is_some() && pending != self.woken_for.get() {
            // A requested checkpoint: a quiet source must move its frontier to it.
            self.woken_for.set(pending);
            if let Some(activator) = self.waiting.activator.borrow().as_ref() {
                activator.activate();
            }
        }
        if let (Some(at), Some(barrier)) = (self.waiting.barrier_at.get(), self.barrier.as_ref())
            && !barrier.less_equal(&at)
        {
            self.waiting.barrier_at.set(None);
            if let Some(activator) = self.waiting.activator.borrow().as_ref() {
                activator.activate();
            }
        }
        let Some(until) = self.waiting.until.get() else { return };
        if !self.probe.less_than(&until) {
            self.waiting.until.set(None);
            if let Some(activator) = self.waiting.activator.borrow().as_ref() {
                activator.activate();
            }
        }
    }

    /// Whether the source waits for the sinks.
    pub fn is_waiting(&self) -> bool {
        self.waiting.until.get().is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::operators::generic::Operator;

    use dataflows::Topic;
    use dataflows::ingest::Delays;

    use super::*;
    use crate::clock::Clock;
    use crate::fatal::Fatal;
    use crate::source::{Epochs, Logs, Message, SourceSettings, Status, partitioned_source};

    /// `n` messages of one user partition.
    struct Numbers {
        next: u64,
        n: u64,
    }

    impl Logs for Numbers {
        fn partitions(&self) -> Vec<(Topic, u32)> {
            vec![(Topic::User, 0)]
        }

        fn read<F: FnMut(Message<'_>) -> bool>(
            &mut self,
            _: usize,
            budget: usize,
            mut deliver: F,
        ) -> anyhow::Result<Status> {
            for _ in 0..budget {
                if self.next == self.n {
                    return Ok(Status::Ended);
                }
                if !deliver(Message { offset: self.next, key: None, value: b"{}", log_time: None }) {
                    return Ok(Status::More);
                }
                self.next += 1;
            }
            Ok(Status::More)
        }
    }

    /// A source of 100 records, one per logical time, paced by a stand-in sink that holds its
    /// committed upper at 0 while `stalled`: the source reads times 0..=2 (max_inflight 2) and
    /// waits, without spinning; once the sink commits again, it reads everything.
    #[test]
    fn a_stalled_sink_stops_the_source_and_its_commit_resumes_it() {
        timely::execute_directly(|worker| {
            let committed = ProbeHandle::<Time>::new();
            let (pace, waker) = InFlight::new(committed.clone(), 2);
            let stalled = Rc::new(Cell::new(true));
            let sink_activator: Rc<RefCell<Option<Activator>>> = Rc::default();
            let settings = SourceSettings::bounded(
                "Numbers",
                Delays::default(),
                Epochs::Offsets(Arc::new(Clock::new(1))),
                Fatal::default(),
            );
            let read = Arc::clone(&settings.records_read);
            let (stalled_s, activator_s) = (Rc::clone(&stalled), Rc::clone(&sink_activator));
            worker.dataflow::<Time, _, _>(|scope| {
                let inputs = partitioned_source(scope, Numbers { next: 0, n: 100 }, settings, pace);
                inputs
                    .unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "Sink", move |cap, info| {
                        *activator_s.borrow_mut() = Some(scope.activator_for(info.address));
                        let mut held = Some(cap);
                        move |(input, frontier), _| {
                            input.for_each(|_, _| {});
                            if stalled_s.get() {
                                return;
                            }
                            match frontier.frontier().first() {
                                Some(upper) => held.as_mut().into_iter().for_each(|c| c.downgrade(upper)),
                                None => held = None,
                            }
                        }
                    })
                    .probe_with(&committed);
            });
            for _ in 0..200 {
                worker.step();
                waker.wake_if();
            }
            assert_eq!(read.load(Ordering::Relaxed), 3, "times 0, 1 and 2 are read, then the source waits");
            assert!(waker.is_waiting());
            stalled.set(false);
            if let Some(a) = sink_activator.borrow().as_ref() {
                a.activate();
            }
            while worker.step() {
                waker.wake_if();
            }
            assert_eq!(read.load(Ordering::Relaxed), 100);
        });
    }
}
