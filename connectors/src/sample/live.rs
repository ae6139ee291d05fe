//! The live generator behind `edu-rtdw demo`: the sample workload made in real
//! time and read by the normal source pipeline, with no servers.
//!
//! # Contract
//!
//! * **What.** The records of `edu-rtdw gen --scale 10`, endlessly: all seven
//!   topics of SPEC §1, mixed in `gen`'s proportions (timeline signals 50.3 %,
//!   agora records 20.1 %, qos playbacks 15.1 %, orders 6.0 %, users and students
//!   4.0 % each, channels 0.4 %), over `gen`'s population (40 live rooms, 3,400
//!   people in them, 300 channels, 40 consultants). Users, students and orders are
//!   created with `gen`'s share (85 % of their records; channels 5 in 6) up to
//!   1,000,000 distinct ids each (300 channels), later records update them. The
//!   values are `gen`'s, as sloppy as SPEC §1 allows, keyed by id (FNV-1a of the
//!   key picks the partition, as `gen --brokers` does).
//! * **Rate.** [`LiveOptions::rate`] records per second over all topics, on a
//!   schedule from the monotonic clock that starts when the first worker claims its
//!   partitions. The generator thread makes a batch every 25 ms (later at rates
//!   under 40/s: when the next record is due) and sleeps in between; it never spins.
//!   A batch holds at most 100 ms of the schedule (and 50,000 records): a generator
//!   slower than the rate skips the rest rather than falling behind the wall clock
//!   (counted by [`LiveFeed::skipped`]; [`LiveFeed::produced`] over time is the rate
//!   achieved; about 400,000 records/s is this generator's limit on one core).
//! * **Event times.** The records of a batch made at wall time `w` get clock times
//!   spread over (the previous batch's `w`, `w`], so a record's clock is the wall
//!   clock when it was due, at most one batch (plus the time to make it) behind.
//!   Around that clock, as in `gen`: `data.timestamp` of timeline signals ± 2 s,
//!   `messageCreateTime` of agora records ± 25 s, qos `event_time` + 0–1 s, the
//!   `update_time`/`create_time` of accounts and orders at it. A qos playback's
//!   `extra.data_time` follows its session's own clock (2–60 s per play, so it runs
//!   minutes ahead of the wall clock, no event time of SPEC §3). Dates that lie
//!   before the run are relative to the feed's start: registrations within the 3
//!   days, confirmations within the 4 days before it, channel creations 30 days.
//!   Each message's log time (Kafka's CreateTime: the `future` check and latency)
//!   is its clock.
//! * **Bad records.** As in `gen`: about 0.5 % of all records are garbage lines
//!   (truncated JSON, arrays, bare scalars, empty lines, invalid UTF-8, a required
//!   field of the wrong type) and about 0.2 % of timeline and agora records are
//!   late (their event time 2–10 minutes behind their partition's latest): both
//!   become dead letters (SPEC §4).
//! * **Determinism.** The record sequence is seeded: the same seed and partitions
//!   give every partition the same records in the same order (topics, keys, values
//!   of the same length), which differ only in their time fields, because those
//!   follow the wall clock. Which of them a run makes also depends on timing when
//!   the generator skips (above).
//! * **Offsets.** Each partition's records are numbered from 0 in the order made.
//!   With [`LiveOptions::max_records`], the generator stops after that many records
//!   and every partition, once read to its end, ends (watermark +∞), so the job
//!   finishes like file replay; without, it runs until the [`LiveFeed`] is dropped
//!   (the last `Arc`: the caller's and every worker's source).
//! * **Memory and back-pressure.** Records wait in one queue per partition until a
//!   worker reads them. The pipeline's back-pressure ([`crate::source::InFlight`])
//!   holds the sources, and so the queues, when the sinks are slow; the generator
//!   then pauses (skipping its schedule) while the partitions being read hold
//!   10 s × rate unread records (at least 10,000, at most 500,000, about 300 bytes
//!   each), so memory stays bounded whatever the pipeline's speed.
//! * **Workers and processes.** One feed per process ([`LiveFeed::start`]), shared
//!   by its workers, each claiming its share of [`LiveFeed::partitions`] (a
//!   partition claimed twice is an error). Spread them over the cluster's workers
//!   globally (`crate::files::assigned(&feed.partitions(), worker_index, peers)`):
//!   each process then generates the whole workload and its workers read their
//!   partitions of it; a partition no worker of the process reads keeps only its
//!   newest records (its share of the bound above).
//! * **Restarts.** Not supported: the feed keeps no log to replay, so
//!   [`live_source`] refuses to restore a checkpoint, and refuses a clock that holds
//!   positions of an earlier run (their times would be those of other records).
//!   Run the demo with a fresh state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use timely::dataflow::{Scope, StreamVec};
use timely::scheduling::SyncActivator;

use dataflows::ingest::Input;
use dataflows::{Time, Topic};

use super::generator::Generator;
use super::topic_index;
use crate::kafka::SourceOptions;
use crate::source::{
    Epochs, LiveEpochs, Logs, Message, Pace, SourceSettings, SourceShared, Status, partitioned_source,
};

/// The generator makes a batch this often (at most).
const PERIOD: Duration = Duration::from_millis(25);
/// A batch holds at most this much of the schedule, and this many records.
const MAX_BATCH: Duration = Duration::from_millis(100);
const MAX_BATCH_RECORDS: u64 = 50_000;
/// The partitions being read hold at most `rate ×` this many seconds of unread records
/// (within [`MIN_BUFFER`, `MAX_BUFFER`]) before the generator pauses.
const BUFFER_SECONDS: f64 = 10.0;
const MIN_BUFFER: u64 = 10_000;
const MAX_BUFFER: u64 = 500_000;
/// A partition no worker reads keeps at least this many of its newest records.
const MIN_UNCLAIMED: usize = 1_000;

/// Options of the live feed.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Records per second over all topics (> 0).
    pub rate: f64,
    /// Seed of the record sequence.
    pub seed: u64,
    /// Partitions per topic (0 is treated as 1).
    pub partitions: u32,
    /// Stop after this many records; every partition then ends once read. `None`: endless.
    pub max_records: Option<u64>,
}

/// One message waiting to be read.
struct Entry {
    /// The key, then the value.
    bytes: Box<[u8]>,
    key_len: usize,
    /// Its clock (ms): the log time.
    log_time: i64,
}

/// One partition's unread messages.
#[derive(Default)]
struct Queue {
    /// The offset of `entries.front()`, or of the next message when empty.
    base: u64,
    entries: VecDeque<Entry>,
    /// A worker of this process reads it.
    claimed: bool,
}

/// What the generator thread and the readers wait on.
#[derive(Default)]
struct Control {
    /// A worker has claimed partitions: the schedule starts.
    claimed: bool,
    /// The feed is dropped: the thread stops.
    stop: bool,
    /// Batches made: counted under this lock, so that a waiter never misses one.
    batches: u64,
}

/// The state shared by the generator thread and the readers.
struct Shared {
    partitions: u32,
    /// Per partition, in [`LiveFeed::partitions`] order (topic-major).
    queues: Vec<Mutex<Queue>>,
    wakers: Mutex<Vec<SyncActivator>>,
    control: Mutex<Control>,
    changed: Condvar,
    produced: AtomicU64,
    skipped: AtomicU64,
    /// Messages in claimed queues.
    buffered: AtomicU64,
    /// The generator made its last message (`max_records`); set after its last push.
    finished: AtomicBool,
    /// The generator thread panicked.
    failed: AtomicBool,
    /// Unread messages of the claimed partitions at which the generator pauses.
    cap: u64,
    /// Messages kept per unclaimed partition.
    unclaimed_cap: usize,
}

/// The live generator of one process: a thread making the sample workload in real time
/// into one queue per partition, read by [`live_source`] (see the module docs).
///
/// Dropping it (the last `Arc`) stops the thread.
pub struct LiveFeed {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LiveFeed {
    /// Starts the generator thread; it makes its first records once a worker has claimed
    /// partitions (built its [`live_source`]).
    pub fn start(opts: LiveOptions) -> anyhow::Result<Arc<LiveFeed>> {
        let cap = (opts.rate * BUFFER_SECONDS).clamp(MIN_BUFFER as f64, MAX_BUFFER as f64) as u64;
        Self::start_with_cap(opts, cap)
    }

    /// [`LiveFeed::start`] pausing at `cap` unread messages of the claimed partitions.
    pub(super) fn start_with_cap(opts: LiveOptions, cap: u64) -> anyhow::Result<Arc<LiveFeed>> {
        if !(opts.rate.is_finite() && opts.rate > 0.0) {
            bail!("the live generator's rate must be a positive number of records per second, not {}", opts.rate);
        }
        let partitions = opts.partitions.max(1);
        let n = Topic::ALL.len() * partitions as usize;
        let shared = Arc::new(Shared {
            partitions,
            queues: (0..n).map(|_| Mutex::default()).collect(),
            wakers: Mutex::default(),
            control: Mutex::default(),
            changed: Condvar::new(),
            produced: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            finished: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            cap,
            unclaimed_cap: (cap as usize / n).max(MIN_UNCLAIMED),
        });
        let thread = std::thread::Builder::new()
            .name("live-generator".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || generate(&shared, &opts)
            })
            .context("cannot start the live generator thread")?;
        Ok(Arc::new(LiveFeed { shared, thread: Some(thread) }))
    }

    /// Every (topic, partition) of the workload: the seven topics × the partitions, sorted.
    pub fn partitions(&self) -> Vec<(Topic, u32)> {
        Topic::ALL.iter().flat_map(|t| (0..self.shared.partitions).map(move |p| (*t, p))).collect()
    }

    /// Records made so far (including those of partitions no worker of this process reads).
    pub fn produced(&self) -> u64 {
        self.shared.produced.load(Ordering::Relaxed)
    }

    /// Records of the schedule never made: the generator was slower than the rate, or
    /// paused because the readers were behind.
    pub fn skipped(&self) -> u64 {
        self.shared.skipped.load(Ordering::Relaxed)
    }

    /// Records made and not read yet, in the partitions being read.
    pub fn buffered(&self) -> u64 {
        self.shared.buffered.load(Ordering::Relaxed)
    }

    /// Blocks until `done(produced, skipped)` holds after a batch, or `timeout` passed (then
    /// false).
    #[cfg(test)]
    pub(super) fn wait_for(&self, timeout: Duration, done: impl Fn(u64, u64) -> bool) -> bool {
        let control = lock(&self.shared.control);
        let waited = self
            .shared
            .changed
            .wait_timeout_while(control, timeout, |_| !done(self.produced(), self.skipped()))
            .unwrap_or_else(|e| e.into_inner());
        !waited.1.timed_out()
    }

    /// Whether the generator made its last record (`max_records`).
    pub fn finished(&self) -> bool {
        self.shared.finished.load(Ordering::Acquire)
    }

    fn slot(&self, topic: Topic, partition: u32) -> anyhow::Result<usize> {
        if partition >= self.shared.partitions {
            bail!(
                "live generator: no partition {partition} of {} (it has {})",
                topic.default_name(),
                self.shared.partitions
            );
        }
        Ok(topic_index(topic.default_name()) * self.shared.partitions as usize + partition as usize)
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        lock(&self.shared.control).stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks the feed failed if the generator thread panics, so that readers fail instead of
/// waiting forever.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Release);
            self.0.wake();
        }
    }
}

impl Shared {
    /// Wakes every reader (dropping those whose worker is gone) and every waiter.
    fn wake(&self) {
        lock(&self.wakers).retain(|w| w.activate().is_ok());
        lock(&self.control).batches += 1;
        self.changed.notify_all();
    }

    /// Appends a batch's messages of queue `q`.
    fn push(&self, q: usize, batch: &mut Vec<Entry>) {
        let mut queue = lock(&self.queues[q]);
        if queue.claimed {
            self.buffered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        queue.entries.extend(batch.drain(..));
        self.trim(&mut queue);
    }

    /// An unclaimed queue keeps only its newest messages.
    fn trim(&self, queue: &mut Queue) {
        if !queue.claimed && queue.entries.len() > self.unclaimed_cap {
            let excess = queue.entries.len() - self.unclaimed_cap;
            queue.entries.drain(..excess);
            queue.base += excess as u64;
        }
    }
}

/// The generator thread: batches on the schedule until `max_records` or the feed is dropped.
fn generate(shared: &Shared, opts: &LiveOptions) {
    let _guard = PanicGuard(shared);
    {
        let control = lock(&shared.control);
        let control = shared.changed.wait_while(control, |c| !c.claimed && !c.stop).unwrap_or_else(|e| e.into_inner());
        if control.stop {
            return;
        }
    }
    let parts = shared.partitions;
    let rate = opts.rate;
    let limit = opts.max_records.unwrap_or(u64::MAX);
    let max_batch = ((rate * MAX_BATCH.as_secs_f64()).ceil() as u64).clamp(1, MAX_BATCH_RECORDS);
    let started = Instant::now();
    let mut prev_wall = crate::wall_clock::now_millis();
    let mut generator = Generator::live(opts.seed, parts, prev_wall);
    let mut batches: Vec<Vec<Entry>> = (0..shared.queues.len()).map(|_| Vec::new()).collect();
    // Records of the schedule made or skipped, and made.
    let (mut scheduled, mut made) = (0u64, 0u64);
    while made < limit {
        let tick = Instant::now();
        let due = (tick.duration_since(started).as_secs_f64() * rate) as u64;
        if due > scheduled {
            let wall = crate::wall_clock::now_millis().max(prev_wall);
            let wanted = (due - scheduled).min(limit - made);
            let full = shared.buffered.load(Ordering::Relaxed) >= shared.cap;
            let n = if full { 0 } else { wanted.min(max_batch) };
            for j in 0..n {
                let clock = prev_wall + ((j + 1) as i64 * (wall - prev_wall)) / n as i64;
                let Some(msg) = generator.next_at(clock) else { break };
                let q = topic_index(msg.topic) * parts as usize + msg.partition as usize;
                let key_len = msg.key.len();
                let mut bytes = msg.key;
                bytes.extend_from_slice(&msg.value);
                batches[q].push(Entry { bytes: bytes.into_boxed_slice(), key_len, log_time: clock });
            }
            for (q, batch) in batches.iter_mut().enumerate() {
                if !batch.is_empty() {
                    shared.push(q, batch);
                }
            }
            made += n;
            scheduled = due;
            prev_wall = wall;
            shared.produced.fetch_add(n, Ordering::Relaxed);
            shared.skipped.fetch_add(wanted - n, Ordering::Relaxed);
            if made >= limit {
                shared.finished.store(true, Ordering::Release);
            }
            shared.wake();
            if made >= limit {
                break;
            }
        }
        // Sleep until the next batch: one period on, and not before its first record is due.
        let next_due = started + Duration::from_secs_f64((scheduled + 1) as f64 / rate);
        let wait = (tick + PERIOD).max(next_due).saturating_duration_since(Instant::now());
        let control = lock(&shared.control);
        let (control, _) =
            shared.changed.wait_timeout_while(control, wait, |c| !c.stop).unwrap_or_else(|e| e.into_inner());
        if control.stop {
            return;
        }
    }
    if limit == 0 {
        shared.finished.store(true, Ordering::Release);
        shared.wake();
    }
}

/// The live partitions read by one worker: the messages of its claimed queues.
pub struct LiveLogs {
    feed: Arc<LiveFeed>,
    partitions: Vec<(Topic, u32)>,
    /// Per partition: its queue in the feed.
    slots: Vec<usize>,
    /// Per partition: messages taken from its queue, not delivered yet (a refused one first).
    held: Vec<VecDeque<Entry>>,
    /// Per partition: the offset of `held`'s front.
    next: Vec<u64>,
}

impl LiveLogs {
    /// Claims `partitions` of `feed` for this worker; fails for a partition the feed does
    /// not have or one already claimed. A partition's offsets count from 0 at its first
    /// message, or, when claimed late, at its oldest message kept.
    pub fn open(feed: &Arc<LiveFeed>, partitions: Vec<(Topic, u32)>) -> anyhow::Result<Self> {
        let mut logs = LiveLogs {
            feed: Arc::clone(feed),
            partitions: Vec::new(),
            slots: Vec::new(),
            held: Vec::new(),
            next: Vec::new(),
        };
        let shared = &feed.shared;
        for (topic, partition) in partitions {
            let slot = feed.slot(topic, partition)?;
            let offset = {
                let mut queue = lock(&shared.queues[slot]);
                if queue.claimed {
                    bail!("live generator: {}/{partition} is read by two workers", topic.default_name());
                }
                queue.claimed = true;
                shared.buffered.fetch_add(queue.entries.len() as u64, Ordering::Relaxed);
                queue.base
            };
            logs.partitions.push((topic, partition));
            logs.slots.push(slot);
            logs.held.push(VecDeque::new());
            logs.next.push(offset);
        }
        lock(&shared.control).claimed = true;
        shared.changed.notify_all();
        Ok(logs)
    }

    /// Moves up to `max` messages of partition `i`'s queue to `held`; how many.
    fn take(&mut self, i: usize, max: usize) -> usize {
        let shared = &self.feed.shared;
        let mut queue = lock(&shared.queues[self.slots[i]]);
        let n = max.min(queue.entries.len());
        self.held[i].extend(queue.entries.drain(..n));
        queue.base += n as u64;
        shared.buffered.fetch_sub(n as u64, Ordering::Relaxed);
        n
    }
}

impl Drop for LiveLogs {
    /// Gives the partitions up: their queues keep only their newest messages from now on.
    fn drop(&mut self) {
        let shared = &self.feed.shared;
        for &slot in &self.slots {
            let mut queue = lock(&shared.queues[slot]);
            queue.claimed = false;
            shared.buffered.fetch_sub(queue.entries.len() as u64, Ordering::Relaxed);
            shared.trim(&mut queue);
        }
    }
}

impl Logs for LiveLogs {
    fn partitions(&self) -> Vec<(Topic, u32)> {
        self.partitions.clone()
    }

    fn read<F: FnMut(Message<'_>) -> bool>(
        &mut self,
        i: usize,
        budget: usize,
        mut deliver: F,
    ) -> anyhow::Result<Status> {
        let mut read = 0;
        loop {
            if self.held[i].is_empty() {
                if read >= budget {
                    return Ok(Status::More);
                }
                if self.feed.shared.failed.load(Ordering::Acquire) {
                    bail!("the live generator thread failed");
                }
                // Read before looking at the queue: once set, the queue holds every message.
                let finished = self.feed.finished();
                if self.take(i, budget - read) == 0 {
                    return Ok(if finished { Status::Ended } else { Status::Waiting });
                }
            }
            while let Some(entry) = self.held[i].front() {
                if read >= budget {
                    return Ok(Status::More);
                }
                let (key, value) = entry.bytes.split_at(entry.key_len);
                let msg = Message {
                    offset: self.next[i],
                    key: (!key.is_empty()).then_some(key),
                    value,
                    log_time: Some(entry.log_time),
                };
                if !deliver(msg) {
                    return Ok(Status::More);
                }
                self.held[i].pop_front();
                self.next[i] += 1;
                read += 1;
            }
        }
    }

    fn wake_with(&mut self, waker: &SyncActivator) {
        lock(&self.feed.shared.wakers).push(waker.clone());
    }
}

/// Reads this worker's `partitions` of `feed` as a stream of [`Input`]s, as
/// [`crate::kafka::kafka_source`] reads Kafka: live epochs of `opts.epoch_ms` (required)
/// recorded in `opts.state_path`, idleness after `opts.idle_timeout`. `partitions` are
/// this worker's share of [`LiveFeed::partitions`] over the whole cluster
/// ([`crate::files::assigned`]).
///
/// Fails when a checkpoint is being restored or `opts.clock` holds positions of an
/// earlier run (the feed keeps no log to replay: run the demo with a fresh state), and
/// for partitions the feed does not have or another worker claimed.
pub fn live_source<'s>(
    scope: Scope<'s, Time>,
    feed: &Arc<LiveFeed>,
    partitions: Vec<(Topic, u32)>,
    opts: SourceOptions,
    shared: SourceShared,
    pace: impl Pace,
) -> anyhow::Result<StreamVec<'s, Time, Input>> {
    let Some(epoch_ms) = opts.epoch_ms else {
        bail!("the live generator's source needs live epochs (an epoch period in ms)");
    };
    if crate::source::restored_parts().is_some() {
        bail!("the live generator keeps no log to replay: a checkpoint cannot be restored (run with a fresh state)");
    }
    if opts.clock.max_base() > 0 {
        bail!(
            "the state file {} holds input positions of an earlier run, which the live generator cannot replay \
             (run with a fresh state)",
            opts.state_path.display()
        );
    }
    let SourceShared { records_read, high_epoch, fatal } = shared;
    let epochs =
        Epochs::Live(Box::new(LiveEpochs::open(Arc::clone(&opts.clock), epoch_ms, &opts.state_path, &partitions, 0)?));
    let logs = LiveLogs::open(feed, partitions)?;
    let settings = SourceSettings {
        name: "LiveSource",
        delays: opts.delays,
        epochs,
        idle_timeout: Some(opts.idle_timeout),
        exit_when_idle: opts.exit_when_idle.then_some(opts.idle_timeout),
        budget: 100_000,
        records_read,
        high_epoch,
        fatal,
    };
    Ok(partitioned_source(scope, logs, settings, pace))
}
