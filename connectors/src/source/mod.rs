//! The source pipeline: one generic operator reads every input.
//!
//! A connector says how to read its logs and nothing else: it implements
//! [`Logs`] (the partitions assigned to this worker, and each partition's next
//! messages in offset order). [`partitioned_source`] owns the rest, the same
//! for files, Kafka and the benchmark's memory: logical time, watermarks,
//! idleness, the end of bounded inputs, capabilities, activation, metrics and
//! errors. It is the split of Materialize's `SourceRender` (a generic
//! pipeline over small connector traits).
//!
//! Semantics, for each worker's partitions:
//! * **Time.** An [`Epochs`] strategy gives every position its logical time:
//!   offset epochs (the input [`crate::clock::Clock`], `offset / epoch_records`
//!   on a fresh input) or live epochs (closed every N ms, their cuts recorded
//!   before the frontier passes them). A record is never given a time below
//!   the operator's frontier (a partition that resumes after idleness joins
//!   at the frontier, the one timing-dependent case SPEC §3 allows).
//! * **One time per activation.** An activation reads only the messages whose
//!   time is the operator's current time: a message of a later time is
//!   refused and stays its partition's next message (the reader holds it). So
//!   nothing is buffered by time, and a reader's own queue (librdkafka's, a
//!   file's) is what holds the log back.
//! * **Watermarks** (SPEC §3, kept by [`dataflows::ingest::PartitionIngest`]):
//!   announced with the records that moved them, at the activation's time (so
//!   a window closes at the logical time of the record that closed it; the
//!   Kafka source used to announce them one logical time later); `+inf` once a
//!   bounded partition is exhausted (at the time of its end position); `Idle`
//!   once a partition that has nothing to read has been silent for the idle
//!   timeout.
//! * **Frontier.** The capability follows the least next time of the
//!   partitions that are neither idle nor exhausted; when every partition is
//!   idle, the most advanced source of the process (`high_epoch`); with live
//!   epochs, never past the open epoch.
//! * **Activation.** Readers wake the operator when messages arrive
//!   ([`Logs::wake_with`]); a timer wakes it for idleness and for closing live
//!   epochs. It reschedules itself at once only when it stopped at its budget
//!   or its frontier moved; it never polls an empty input in a loop.
//! * **Pacing.** A [`Pace`] may hold reading back and the release of the
//!   last capability: [`InFlight`] bounds the logical times in flight to the
//!   sinks' durable frontier (back-pressure, SPEC §5); the benchmark bounds
//!   them to its last operator.
//! * **Errors.** A read error goes to the job's [`Fatal`] slot; the operator
//!   drops its capability.

pub mod epochs;
mod operator;
pub mod pace;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use timely::scheduling::{Activator, SyncActivator};

use dataflows::ingest::Delays;
use dataflows::{Time, Topic};

pub use epochs::{Epochs, LiveEpochs};
pub use operator::partitioned_source;
pub use pace::{InFlight, InFlightWaker, Pending};

/// The name every worker's source registers its partitions' state under ([`dataflows::durable`]).
pub const STATE: &str = "Sources";

/// A source partition's state at a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartState {
    /// Its topic.
    pub topic: Topic,
    /// Its partition number.
    pub partition: u32,
    /// The next offset to read.
    pub next: u64,
    /// It was idle.
    pub idle: bool,
    /// Its end had been read and announced (a bounded input).
    pub done: bool,
    /// Its ingestion state (event-time clock, last mark).
    pub ingest: dataflows::ingest::IngestState,
}

/// Restored partitions by topic and partition number.
pub type RestoredParts = std::collections::BTreeMap<(Topic, u32), PartState>;

/// The restored partitions of every source: the checkpoint's time and each partition's
/// state; `None` without a restore (the one this worker thread was given, see
/// [`dataflows::durable::enable`]).
pub fn restored_parts() -> Option<(Time, RestoredParts)> {
    let (time, shards) = dataflows::durable::take::<Vec<PartState>>(STATE)?;
    Some((time, by_partition(shards)))
}

/// The partitions saved in `restored`, read directly (before any dataflow is built);
/// `None` when it has no source state or it does not decode.
pub fn parts_in(restored: &dataflows::durable::Restored) -> Option<RestoredParts> {
    restored.decode::<Vec<PartState>>(STATE)?.ok().map(by_partition)
}

fn by_partition(shards: Vec<Vec<PartState>>) -> RestoredParts {
    shards.into_iter().flatten().map(|p| ((p.topic, p.partition), p)).collect()
}

use crate::fatal::Fatal;

/// One message as a log holds it.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// Its offset in the partition (line number in file replay).
    pub offset: u64,
    /// Its key, if the log has keys.
    pub key: Option<&'a [u8]>,
    /// Its value: the JSON text of SPEC §1.
    pub value: &'a [u8],
    /// The log's own timestamp (Kafka's message timestamp, ms), if it has one.
    pub log_time: Option<i64>,
}

/// Where a partition stands after a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It stopped at the budget or at a refused message: more can be read now.
    More,
    /// Nothing to read now, and the reader has caught up with the log: the partition may go
    /// idle. The reader wakes the operator when messages arrive.
    Waiting,
    /// Nothing to read now, but the log may hold more than the reader has delivered (a Kafka
    /// client still fetching after start, or after a burst): the partition is not idle, since
    /// its records are on their way. The reader wakes the operator when messages arrive.
    Fetching,
    /// No message at or after its next position, ever (the end of a bounded input).
    Ended,
}

/// A connector's reader: the logs of the partitions assigned to one worker.
pub trait Logs: 'static {
    /// The partitions, in this worker's order: topic and partition number.
    fn partitions(&self) -> Vec<(Topic, u32)>;

    /// Hands partition `i`'s next messages, in offset order, to `deliver`, at most
    /// `budget` of them. When `deliver` returns `false` the message is refused: it is
    /// not consumed and stays the partition's next message, and the read stops.
    fn read<F: FnMut(Message<'_>) -> bool>(&mut self, i: usize, budget: usize, deliver: F) -> anyhow::Result<Status>;

    /// Called once when the operator is built, with what wakes it from any thread.
    /// Readers that always have data (files, memory) need not keep it.
    fn wake_with(&mut self, _waker: &SyncActivator) {}

    /// Called at the start of every activation (a client library's callbacks).
    fn service(&mut self) {}
}

/// Holds reading back: the benchmark bounds the logical times in flight with it.
pub trait Pace: 'static {
    /// Whether the source may read at `time` now. When it may not, the pace activates
    /// `activator` once it may.
    fn admit(&mut self, time: Time, activator: &Activator) -> bool;

    /// Whether the source may drop its last capability (at `time`) now that every
    /// partition is exhausted. When it may not, the pace activates `activator` later.
    fn release(&mut self, _time: Time, _activator: &Activator) -> bool {
        true
    }

    /// The first time the source may emit nothing at (a checkpoint's barrier), if any:
    /// it then neither reads at nor announces marks at such times.
    fn limit(&self) -> Option<Time> {
        None
    }

    /// The barrier time of a requested checkpoint, if one is pending: a source with nothing
    /// at its open live epoch may move that epoch up to it, so that a quiet live job
    /// reaches the checkpoint's cut.
    fn checkpoint_at(&self) -> Option<Time> {
        None
    }
}

/// No pacing: read whenever there is something to read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unpaced;

impl Pace for Unpaced {
    fn admit(&mut self, _time: Time, _activator: &Activator) -> bool {
        true
    }
}

/// What a process's sources share: their counters and the job's error slot.
#[derive(Clone, Debug, Default)]
pub struct SourceShared {
    /// Counts the messages read (the progress line and the summary).
    pub records_read: Arc<AtomicU64>,
    /// The most advanced next time of the process's sources.
    pub high_epoch: Arc<AtomicU64>,
    /// Where a read error goes.
    pub fatal: Fatal,
}

/// What the pipeline needs besides the reader.
pub struct SourceSettings {
    /// The operator's name.
    pub name: &'static str,
    /// Event-time delays of the windowed metrics.
    pub delays: Delays,
    /// How positions get their logical times.
    pub epochs: Epochs,
    /// A partition with nothing to read for this long stops holding back watermarks and
    /// the frontier (SPEC §3); `None`: never (bounded inputs).
    pub idle_timeout: Option<Duration>,
    /// Finish like an exhausted bounded input once every partition of this worker has been
    /// caught up with its log and silent for this long (benchmarks and tests).
    pub exit_when_idle: Option<Duration>,
    /// Messages read per activation at most, over all partitions.
    pub budget: usize,
    /// Counts the messages read (the progress line and the summary).
    pub records_read: Arc<AtomicU64>,
    /// The most advanced next time of the process's sources.
    pub high_epoch: Arc<AtomicU64>,
    /// Where a read error goes.
    pub fatal: Fatal,
}

impl SourceSettings {
    /// Settings for a bounded input read with offset epochs: never idle, 100,000 messages
    /// per activation.
    pub fn bounded(name: &'static str, delays: Delays, epochs: Epochs, fatal: Fatal) -> Self {
        SourceSettings {
            name,
            delays,
            epochs,
            idle_timeout: None,
            exit_when_idle: None,
            budget: 100_000,
            records_read: Arc::default(),
            high_epoch: Arc::default(),
            fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::time::Duration;

    use timely::dataflow::operators::Inspect;

    use dataflows::Topic;
    use dataflows::ingest::{Delays, Input};
    use dataflows::ops::window::Mark;

    use super::*;
    use crate::clock::Clock;

    /// Two empty timeline partitions: partition 0 has caught up with its log, partition 1's
    /// client is still fetching (it never says so in this test).
    struct OneFetching;

    impl Logs for OneFetching {
        fn partitions(&self) -> Vec<(Topic, u32)> {
            vec![(Topic::Timeline, 0), (Topic::Timeline, 1)]
        }

        fn read<F: FnMut(Message<'_>) -> bool>(&mut self, i: usize, _: usize, _: F) -> anyhow::Result<Status> {
            Ok(if i == 0 { Status::Waiting } else { Status::Fetching })
        }
    }

    /// SPEC §3 idleness is "no new records": a partition whose records are still being
    /// fetched never goes idle, however long the fetch takes; a caught-up one does.
    #[test]
    fn a_partition_still_fetching_never_goes_idle() {
        let idle = timely::execute_directly(|worker| {
            let mut settings = SourceSettings::bounded(
                "OneFetching",
                Delays::default(),
                Epochs::Offsets(Arc::new(Clock::new(1))),
                Fatal::default(),
            );
            settings.idle_timeout = Some(Duration::from_millis(1));
            let idle = Rc::new(RefCell::new(Vec::new()));
            let seen = Rc::clone(&idle);
            let dataflow = worker.next_dataflow_index();
            worker.dataflow::<Time, _, _>(|scope| {
                partitioned_source(scope, OneFetching, settings, Unpaced).inspect(move |input| {
                    if let Input::Watermark(_, partition, Mark::Idle(_)) = input {
                        seen.borrow_mut().push(*partition);
                    }
                });
            });
            // Three of the operator's idleness checks (it sleeps 50 ms between them).
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_millis(150) {
                worker.step_or_park(Some(Duration::from_millis(1)));
            }
            worker.drop_dataflow(dataflow);
            idle.take()
        });
        assert_eq!(idle, [0], "only the caught-up partition goes idle");
    }
}
