//! Taking checkpoints in a running job (SPEC §5 "Durable state").
//!
//! **Agreeing on `T`.** Worker 0 owns a *barrier*: a timely input whose
//! frontier every worker of every process sees through a probe, and below
//! which every source must stay (a source neither reads at nor announces
//! anything at or past the barrier, see `InFlight::with_barrier`). Normally
//! worker 0 keeps the barrier `max_inflight + 1` logical times ahead of what
//! the dataflow has processed, where back-pressure already holds the sources,
//! so it holds nothing back. To checkpoint, worker 0 stops advancing it at its
//! current time `H` and broadcasts `H` on it: `T = H − 1`.
//!
//! **A consistent cut.** Once the dataflow's processed frontier reaches `H`
//! (seen by every worker through the probe on the output rows), every
//! operator has finished every time up to `T` and none after it (nothing
//! after it exists yet), so each worker copies its registered state
//! ([`dataflows::durable::save_all`]) and advances its *copied* input to
//! `H + 1`. When worker 0 sees all of them copied, it releases the barrier: the
//! ingestion pause is only the drain to `H` plus the in-memory copy. Each
//! worker writes its shard from the copy on a thread of its own and then
//! advances its *durable* input; when every shard is durable and every sink
//! has committed past `T` (so that a restore never needs an update at or
//! before `T` from the log), worker 0 writes the manifest, which makes the
//! checkpoint complete, and prunes old ones.
//!
//! A partition of a bounded input that had ended at `T` is restored as ended;
//! if its log has grown since, the job does not restore (see `job.rs`): it
//! rebuilds from the log as without checkpoints, so appended records are
//! never skipped.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Input as _, Inspect, Probe};
use timely::worker::Worker;

use connectors::checkpoint::{self, FORMAT_VERSION, ShardBody};
use connectors::source::Pending;
use dataflows::{Time, durable};

/// Where and how often a job checkpoints.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The checkpoint directory (shared by every process of a cluster).
    pub dir: PathBuf,
    /// The interval between checkpoints.
    pub every: Duration,
    /// Complete checkpoints kept.
    pub keep: usize,
    /// The input's identity, recorded in each manifest.
    pub input: Vec<(String, String)>,
}

type Handle<D> = InputHandle<Time, CapacityContainerBuilder<Vec<D>>>;

/// What worker 0 is doing about the next checkpoint.
enum Lead {
    /// Keeping the barrier ahead until the next checkpoint is due.
    Running,
    /// The barrier is held at `H` since the instant given.
    Held(Time, Instant),
    /// Every worker copied its state for `H`; waiting for the shards and the sinks.
    Completing(Time, Instant, Duration),
}

/// One worker's part in checkpointing.
pub struct Checkpoints {
    plan: Arc<Plan>,
    index: usize,
    peers: usize,
    /// Worker 0's barrier (`None` on the others, and once the job is done).
    barrier: Option<Handle<Time>>,
    barrier_probe: ProbeHandle<Time>,
    /// Barrier times broadcast by worker 0, not yet copied here.
    requested: Pending,
    copied: Option<Handle<()>>,
    copied_probe: ProbeHandle<Time>,
    durable: Option<Handle<()>>,
    durable_probe: ProbeHandle<Time>,
    /// This worker's shard being written: its `H`, and the writer's answer.
    writing: Option<(Time, Receiver<Result<u64, String>>)>,
    lead: Lead,
    last: Instant,
    /// Checkpoints stopped for this run (an input ended, or a write failed).
    stopped: bool,
    /// The barrier never goes below this (a restored run's first time).
    floor: Time,
}

impl Checkpoints {
    /// Builds the barrier and acknowledgement inputs (a small dataflow of their own) on
    /// `worker`; a restored run starts after `restored` (its checkpoint's time).
    pub fn build(worker: &mut Worker, plan: Arc<Plan>, restored: Option<Time>) -> Self {
        let (index, peers) = (worker.index(), worker.peers());
        let (mut barrier, mut copied, mut durable) = (Handle::new(), Handle::new(), Handle::new());
        let (barrier_probe, copied_probe, durable_probe) = (ProbeHandle::new(), ProbeHandle::new(), ProbeHandle::new());
        let requested = Pending::default();
        let seen = Rc::clone(&requested);
        worker.dataflow::<Time, _, _>(|scope| {
            scope
                .input_from(&mut barrier)
                .broadcast()
                .inspect(move |h: &Time| seen.borrow_mut().push(*h))
                .probe_with(&barrier_probe);
            scope.input_from(&mut copied).probe_with(&copied_probe);
            scope.input_from(&mut durable).probe_with(&durable_probe);
        });
        let floor = restored.map_or(0, |t| t + 1);
        let mut checkpoints = Checkpoints {
            plan,
            index,
            peers,
            barrier: (index == 0).then_some(barrier),
            barrier_probe,
            requested,
            copied: Some(copied),
            copied_probe,
            durable: Some(durable),
            durable_probe,
            writing: None,
            lead: Lead::Running,
            last: Instant::now(),
            stopped: false,
            floor,
        };
        if let Some(copied) = checkpoints.copied.as_mut() {
            copied.advance_to(floor);
        }
        if let Some(durable) = checkpoints.durable.as_mut() {
            durable.advance_to(floor);
        }
        checkpoints
    }

    /// What the sources must stay below (for their pace).
    pub fn barrier(&self) -> ProbeHandle<Time> {
        self.barrier_probe.clone()
    }

    /// The requested checkpoints not yet taken on this worker (for the sources' pace).
    pub fn pending(&self) -> Pending {
        Rc::clone(&self.requested)
    }

    /// How long the worker loop may park at most.
    pub fn tick(&self) -> Duration {
        self.plan.every.clamp(Duration::from_millis(1), Duration::from_millis(50))
    }

    /// One turn of the worker loop: `processed` is the probe on every output row, `committed`
    /// what every sink has made durable (worker 0), `max_inflight` the sources' back-pressure.
    pub fn step(&mut self, processed: &ProbeHandle<Time>, committed: Time, max_inflight: u64) -> Result<(), String> {
        if processed.done() {
            // The input is done: nothing more to checkpoint; let the small dataflow finish.
            self.barrier = None;
            self.copied = None;
            if self.writing.is_none() {
                self.durable = None;
            }
        }
        self.copy_when_cut(processed);
        self.finish_shard();
        if self.index == 0 {
            self.lead(processed, committed, max_inflight)?;
        }
        Ok(())
    }

    /// Copies this worker's state once the dataflow has processed every time before the
    /// requested barrier, and starts writing its shard.
    fn copy_when_cut(&mut self, processed: &ProbeHandle<Time>) {
        let Some(&h) = self.requested.borrow().first() else { return };
        if self.writing.is_some() || processed.less_than(&h) {
            return;
        }
        self.requested.borrow_mut().remove(0);
        tracing::debug!(worker = self.index, barrier = h, "checkpoint: copying state");
        let (send, receive) = channel();
        match durable::save_all() {
            Ok(sections) => {
                let body =
                    ShardBody { version: FORMAT_VERSION, time: h - 1, worker: self.index, peers: self.peers, sections };
                let dir = self.plan.dir.clone();
                std::thread::spawn(move || {
                    let _ = send.send(checkpoint::write_shard(&dir, &body).map_err(|e| format!("{e:#}")));
                });
            }
            Err(e) => {
                let _ = send.send(Err(e));
            }
        }
        self.writing = Some((h, receive));
        if let Some(copied) = self.copied.as_mut() {
            copied.advance_to(h + 1);
        }
    }

    /// Acknowledges this worker's shard once its writer is done (a failed one too: worker 0
    /// then finds it missing and stops checkpointing).
    fn finish_shard(&mut self) {
        let Some((h, receive)) = self.writing.as_ref() else { return };
        let outcome = match receive.try_recv() {
            Ok(outcome) => outcome,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => Err("the shard writer stopped".to_string()),
        };
        if let Err(e) = outcome {
            tracing::warn!("checkpoint at {}: worker {} saved no shard: {e}", h - 1, self.index);
        }
        if let Some(durable) = self.durable.as_mut() {
            durable.advance_to(h + 1);
        }
        self.writing = None;
    }

    /// Worker 0: keeps the barrier ahead, holds it when a checkpoint is due, and completes
    /// the checkpoint once every shard is durable and every sink has committed past it.
    fn lead(&mut self, processed: &ProbeHandle<Time>, committed: Time, max_inflight: u64) -> Result<(), String> {
        match self.lead {
            Lead::Running => {
                self.advance_barrier(processed, max_inflight);
                let due = !self.stopped && self.last.elapsed() >= self.plan.every;
                if let (true, Some(barrier)) = (due, self.barrier.as_mut()) {
                    let h = *barrier.time();
                    if h > self.floor {
                        barrier.send(h);
                        barrier.flush();
                        tracing::debug!(barrier = h, "checkpoint: sources held");
                        self.lead = Lead::Held(h, Instant::now());
                    }
                }
            }
            Lead::Held(h, since) => {
                if !self.copied_probe.less_than(&(h + 1)) {
                    tracing::debug!(barrier = h, "checkpoint: every worker copied its state");
                    self.lead = Lead::Completing(h, since, since.elapsed());
                    self.advance_barrier(processed, max_inflight);
                }
            }
            Lead::Completing(h, since, pause) => {
                self.advance_barrier(processed, max_inflight);
                if self.durable_probe.less_than(&(h + 1)) || committed < h {
                    return Ok(());
                }
                self.complete(h - 1, since, pause);
                self.lead = Lead::Running;
                self.last = Instant::now();
            }
        }
        Ok(())
    }

    fn advance_barrier(&mut self, processed: &ProbeHandle<Time>, max_inflight: u64) {
        let Some(barrier) = self.barrier.as_mut() else { return };
        let done = processed.with_frontier(|f| f.first().copied());
        let Some(done) = done else { return };
        let ahead = done.max(self.floor).saturating_add(max_inflight.saturating_add(1));
        if ahead > *barrier.time() {
            barrier.advance_to(ahead);
        }
    }

    /// Writes the manifest of the checkpoint at `time` and prunes old checkpoints.
    fn complete(&mut self, time: Time, since: Instant, pause: Duration) {
        let plan = &self.plan;
        match checkpoint::write_manifest(&plan.dir, time, self.peers, plan.input.clone()) {
            Ok(bytes) => {
                let total = since.elapsed();
                connectors::metrics::observe_checkpoint(time, bytes, total, pause);
                tracing::info!(
                    "checkpoint at {time}: {bytes} bytes in {} ms (sources held {} ms)",
                    total.as_millis(),
                    pause.as_millis()
                );
                if let Err(e) = checkpoint::retain(&plan.dir, plan.keep) {
                    tracing::warn!("cannot prune old checkpoints: {e:#}");
                }
            }
            Err(e) => {
                tracing::info!("checkpoints stop for this run: the checkpoint at {time} is incomplete ({e:#})");
                self.stopped = true;
            }
        }
    }
}
