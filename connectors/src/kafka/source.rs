//! The Kafka source reader (SPEC §1): this worker's partitions, each on its
//! own librdkafka queue, for the generic source pipeline ([`crate::source`]).
//!
//! Partitions are assigned to workers deterministically (the same round-robin
//! over the sorted (topic, partition) list as file replay) with `assign`,
//! never consumer-group rebalancing, and every partition is read from offset
//! 0: the program's state is rebuilt from the retained log, and sinks skip
//! what they already hold. Each partition's messages are split onto a queue
//! of its own, so the pipeline reads exactly the partitions whose logical time
//! has come and librdkafka's per-partition buffering (not ours) holds the
//! rest back. The operator is woken by the queues' non-empty callbacks through
//! a timely activator (it never polls an empty queue in a loop), and by a
//! timer for idleness.
//!
//! With `until_end`, each partition is read up to the high watermark seen at
//! start and then ends (event-time watermark +∞), so the run ends exactly
//! like file replay. Without it, the pipeline's idleness and live epochs
//! apply ([`SourceOptions`]).
//!
//! [`OffsetCommitter`] commits the consumer group's offsets once every sink
//! holds the records before them: for lag monitoring only.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::{Scope, StreamVec};
use timely::scheduling::SyncActivator;

use dataflows::ingest::{Delays, Input};
use dataflows::{Time, Topic};

use super::{KafkaConfig, LogContext};
use crate::clock::Clock;
use crate::source::{
    Epochs, LiveEpochs, Logs, Message, Pace, SourceSettings, SourceShared, Status, partitioned_source,
};

/// One source partition: its topic, Kafka topic name and number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KafkaPartition {
    /// The source topic.
    pub topic: Topic,
    /// Its name in Kafka.
    pub name: String,
    /// The partition number.
    pub partition: u32,
    /// With `--until-end`: the high watermark seen at start, where reading stops.
    pub end: Option<u64>,
}

/// Lists the partitions of the source topics, waiting up to `wait` for the brokers.
pub fn discover(cfg: &KafkaConfig, names: &[(Topic, String)], wait: Duration) -> anyhow::Result<Vec<KafkaPartition>> {
    let consumer = cfg.consumer()?;
    let started = Instant::now();
    let mut out = Vec::new();
    for (topic, name) in names {
        let partitions = loop {
            match consumer.fetch_metadata(Some(name), Duration::from_secs(5)) {
                Ok(md) => {
                    let n =
                        md.topics().first().map_or(0, |t| if t.error().is_some() { 0 } else { t.partitions().len() });
                    if n > 0 || started.elapsed() > wait {
                        break n;
                    }
                }
                Err(e) if started.elapsed() > wait => bail!("Kafka brokers {} unreachable: {e}", cfg.brokers),
                Err(e) => tracing::warn!(brokers = %cfg.brokers, "kafka: waiting for brokers ({e})"),
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        out.extend((0..partitions as u32).map(|partition| KafkaPartition {
            topic: *topic,
            name: name.clone(),
            partition,
            end: None,
        }));
    }
    out.sort();
    Ok(out)
}

/// Sets every partition's `end` to its current high watermark (for `--until-end`).
pub fn fetch_ends(cfg: &KafkaConfig, partitions: &mut [KafkaPartition]) -> anyhow::Result<()> {
    let consumer = cfg.consumer()?;
    for p in partitions.iter_mut() {
        let (_, high) = consumer
            .fetch_watermarks(&p.name, p.partition as i32, Duration::from_secs(30))
            .map_err(|e| anyhow!("cannot read the end of {}/{}: {e}", p.name, p.partition))?;
        p.end = Some(high.max(0) as u64);
    }
    Ok(())
}

/// Fails with one line naming the first partition whose log no longer holds the offset the
/// job must read from (`start(topic, partition)`: a restored checkpoint's position, else 0),
/// because retention or `kafka-delete-records` removed it and no checkpoint covers the gap.
pub fn check_retained(
    cfg: &KafkaConfig,
    partitions: &[KafkaPartition],
    start: impl Fn(Topic, u32) -> u64,
) -> anyhow::Result<()> {
    let consumer = cfg.consumer()?;
    for p in partitions {
        let (low, _) = start_of(&consumer, p)?;
        let (low, needed) = (low.max(0) as u64, start(p.topic, p.partition));
        if low > needed {
            bail!(
                "{}/{} starts at offset {low}, but the job must read it from offset {needed}: offsets {needed}..{low} \
                 were deleted and no checkpoint covers them (restore a checkpoint taken after offset {low}, or \
                 rebuild with a fresh state)",
                p.name,
                p.partition
            );
        }
    }
    Ok(())
}

/// A partition's low and high watermarks. A broker that has just restarted answers
/// `NotLeaderForPartition` or `LeaderNotAvailable` until its partitions have their leaders
/// again: those are retried for up to 60 s (every 200 ms); any other error is the answer.
fn start_of(consumer: &BaseConsumer<LogContext>, p: &KafkaPartition) -> anyhow::Result<(i64, i64)> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.fetch_watermarks(&p.name, p.partition as i32, Duration::from_secs(30)) {
            Ok(marks) => return Ok(marks),
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::NotLeaderForPartition | RDKafkaErrorCode::LeaderNotAvailable,
            )) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => bail!("cannot read the start of {}/{}: {e}", p.name, p.partition),
        }
    }
}

/// Options of the Kafka source.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Event-time delays.
    pub delays: Delays,
    /// Position-to-time mapping.
    pub clock: Arc<Clock>,
    /// A partition silent this long stops holding back watermarks and the frontier.
    pub idle_timeout: Duration,
    /// Live epochs (without `until_end`): close a logical time every this many ms, or when a
    /// partition has read `epoch_records` in it, recording the cut in `state_path` (see
    /// [`crate::clock`]). `None`: times from offsets alone.
    pub epoch_ms: Option<u64>,
    /// The SQLite state file holding the input clock.
    pub state_path: std::path::PathBuf,
    /// Finish like an exhausted bounded input once this worker has read something and then
    /// nothing for `idle_timeout` (for benchmarks and tests).
    pub exit_when_idle: bool,
}

/// This worker's Kafka partitions, read from offset 0 on one queue each.
pub struct KafkaLogs {
    consumer: Arc<BaseConsumer<LogContext>>,
    partitions: Vec<KafkaPartition>,
    queues: Vec<PartitionQueue<LogContext>>,
    /// Per partition: messages polled but not consumed yet, oldest first (a refused message,
    /// or one the consumer's own queue delivered before its partition was split off).
    held: Vec<VecDeque<OwnedMessage>>,
    /// Per partition: the next offset to deliver (a message below it is a redelivery).
    next: Vec<u64>,
    /// Per partition: whether the client reported the end of the log (`PartitionEOF`) after
    /// the last message it delivered. Until then the partition is fetching, never idle: at
    /// start, a client that is slow to fetch a partition's backlog must not let the other
    /// partitions close windows that the backlog's records belong to.
    at_end: Vec<bool>,
    index: HashMap<(String, i32), usize>,
}

impl KafkaLogs {
    /// Assigns `partitions` from `start(topic, partition)` (0: their beginning) and splits each
    /// onto its own queue.
    pub fn open(
        cfg: &KafkaConfig,
        partitions: Vec<KafkaPartition>,
        start: impl Fn(Topic, u32) -> u64,
    ) -> anyhow::Result<Self> {
        // Ends are reported bounded or not: a bounded read ends past them, a live one may go
        // idle only at one.
        let consumer = Arc::new(cfg.consumer_with_eof(true)?);
        let mut assignment = TopicPartitionList::new();
        let mut index = HashMap::new();
        for (i, p) in partitions.iter().enumerate() {
            assignment
                .add_partition_offset(
                    &p.name,
                    p.partition as i32,
                    match start(p.topic, p.partition) {
                        0 => Offset::Beginning,
                        n => Offset::Offset(n as i64),
                    },
                )
                .map_err(|e| anyhow!("cannot assign {}/{}: {e}", p.name, p.partition))?;
            index.insert((p.name.clone(), p.partition as i32), i);
        }
        if !partitions.is_empty() {
            consumer.assign(&assignment).map_err(|e| anyhow!("cannot assign partitions: {e}"))?;
        }
        let queues = partitions
            .iter()
            .map(|p| {
                consumer
                    .split_partition_queue(&p.name, p.partition as i32)
                    .ok_or_else(|| anyhow!("cannot read {}/{} on a queue of its own", p.name, p.partition))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let n = partitions.len();
        let next = partitions.iter().map(|p| start(p.topic, p.partition)).collect();
        Ok(KafkaLogs {
            consumer,
            partitions,
            queues,
            held: vec![VecDeque::new(); n],
            next,
            at_end: vec![false; n],
            index,
        })
    }
}

impl KafkaLogs {
    /// The consumer's position in partition `i`: the offset it fetches next.
    fn position(&self, i: usize) -> u64 {
        let p = &self.partitions[i];
        let position = self
            .consumer
            .position()
            .ok()
            .and_then(|tpl| tpl.find_partition(&p.name, p.partition as i32).and_then(|e| e.offset().to_raw()));
        position.map_or(0, |o| o.max(0) as u64)
    }
}

/// A Kafka message as the pipeline reads it.
fn message_of<M: rdkafka::message::Message>(msg: &M) -> Message<'_> {
    Message {
        offset: msg.offset().max(0) as u64,
        key: msg.key(),
        value: msg.payload().unwrap_or_default(),
        log_time: msg.timestamp().to_millis(),
    }
}

impl Logs for KafkaLogs {
    fn partitions(&self) -> Vec<(Topic, u32)> {
        self.partitions.iter().map(|p| (p.topic, p.partition)).collect()
    }

    fn read<F: FnMut(Message<'_>) -> bool>(
        &mut self,
        i: usize,
        budget: usize,
        mut deliver: F,
    ) -> anyhow::Result<Status> {
        let end = self.partitions[i].end;
        let mut polled = 0;
        while polled < budget {
            if end.is_some_and(|end| self.next[i] >= end) {
                return Ok(Status::Ended);
            }
            polled += 1;
            if let Some(msg) = self.held[i].front() {
                let offset = msg.offset().max(0) as u64;
                if offset >= self.next[i] && !deliver(message_of(msg)) {
                    return Ok(Status::More);
                }
                self.next[i] = self.next[i].max(offset + 1);
                self.held[i].pop_front();
                continue;
            }
            let msg = match self.queues[i].poll(Duration::ZERO) {
                None if self.at_end[i] => return Ok(Status::Waiting),
                None => return Ok(Status::Fetching),
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    // At the end: skip what is never delivered (commit markers, aborted records).
                    self.next[i] = self.next[i].max(self.position(i));
                    self.at_end[i] = true;
                    continue;
                }
                // Transient client errors are logged by the context; librdkafka retries.
                Some(Err(_)) => continue,
                Some(Ok(msg)) => msg,
            };
            super::config::brokers_answered();
            let offset = msg.offset().max(0) as u64;
            if offset < self.next[i] {
                continue;
            }
            self.at_end[i] = false;
            if !deliver(message_of(&msg)) {
                self.held[i].push_back(msg.detach());
                return Ok(Status::More);
            }
            self.next[i] = offset + 1;
        }
        Ok(Status::More)
    }

    fn wake_with(&mut self, waker: &SyncActivator) {
        for queue in &mut self.queues {
            let waker = waker.clone();
            queue.set_nonempty_callback(move || {
                let _ = waker.activate();
            });
        }
    }

    /// Serves the consumer's callbacks; a message its own queue still delivers (fetched
    /// before its partition was split off, so older than anything on the partition's queue)
    /// is kept for its partition.
    fn service(&mut self) {
        while let Some(result) = self.consumer.poll(Duration::ZERO) {
            let Ok(msg) = result else { continue };
            if let Some(&i) = self.index.get(&(msg.topic().to_string(), msg.partition())) {
                self.held[i].push_back(msg.detach());
            }
        }
    }
}

/// Reads this worker's `partitions` as a stream of [`Input`]s.
///
/// `shared.records_read` counts messages; `shared.high_epoch` is shared by the
/// process's sources so that a worker whose partitions are all idle can let its
/// frontier follow the others. A read error, or live-epoch cuts that cannot be
/// recorded, go to `shared.fatal`; `pace` may hold reading back (see
/// [`crate::source::InFlight`]).
pub fn kafka_source<'s>(
    scope: Scope<'s, Time>,
    cfg: &KafkaConfig,
    partitions: Vec<KafkaPartition>,
    opts: SourceOptions,
    shared: SourceShared,
    pace: impl Pace,
) -> anyhow::Result<StreamVec<'s, Time, Input>> {
    let SourceShared { records_read, high_epoch, fatal } = shared;
    let places: Vec<(Topic, u32)> = partitions.iter().map(|p| (p.topic, p.partition)).collect();
    let bounded = partitions.iter().any(|p| p.end.is_some());
    // A restored run reads on from the checkpoint's positions, at times after it.
    let restored = crate::source::restored_parts();
    let floor = restored.as_ref().map_or(0, |(time, _)| time + 1);
    high_epoch.fetch_max(floor, std::sync::atomic::Ordering::Relaxed);
    let epochs = match opts.epoch_ms {
        Some(ms) if !bounded => {
            Epochs::Live(Box::new(LiveEpochs::open(Arc::clone(&opts.clock), ms, &opts.state_path, &places, floor)?))
        }
        _ => Epochs::Offsets(Arc::clone(&opts.clock)),
    };
    let start =
        |topic, partition| restored.as_ref().and_then(|(_, s)| s.get(&(topic, partition))).map_or(0, |s| s.next);
    let logs = KafkaLogs::open(cfg, partitions, start)?;
    let settings = SourceSettings {
        name: "KafkaSource",
        delays: opts.delays,
        epochs,
        // A bounded partition reads to its end; only live ones go idle.
        idle_timeout: (!bounded).then_some(opts.idle_timeout),
        exit_when_idle: opts.exit_when_idle.then_some(opts.idle_timeout),
        budget: 100_000,
        records_read,
        high_epoch,
        fatal,
    };
    Ok(partitioned_source(scope, logs, settings, pace))
}

/// Commits the consumer group's offsets once every sink holds the records before them.
///
/// The group's committed offsets are what monitoring reads as consumer lag; the
/// program itself rebuilds its state from offset 0 and resumes each sink from
/// the sink's own progress, so these commits only ever trail the sinks.
pub struct OffsetCommitter {
    consumer: BaseConsumer<LogContext>,
    partitions: Vec<KafkaPartition>,
    clock: Arc<Clock>,
    committed: Time,
}

impl OffsetCommitter {
    /// A committer for the group of `cfg` over `partitions`.
    pub fn new(cfg: &KafkaConfig, partitions: Vec<KafkaPartition>, clock: Arc<Clock>) -> anyhow::Result<Self> {
        Ok(OffsetCommitter { consumer: cfg.consumer()?, partitions, clock, committed: 0 })
    }

    /// Acknowledges every record at a time below `durable` (the least upper over all sinks).
    pub fn acknowledge(&mut self, durable: Time) {
        // Serve the consumer's events (commit results, errors) as they come, not in a burst later.
        while self.consumer.poll(Duration::ZERO).is_some() {}
        if durable <= self.committed {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for p in &self.partitions {
            // Live epochs: only what this process's sources have cut (never an offset past a durable time).
            let first = match crate::clock::is_live() {
                true => crate::clock::live_first_offset_at(p.topic, p.partition, durable),
                false => Some(self.clock.first_offset_at(p.topic, p.partition, durable)),
            };
            let Some(mut offset) = first else { continue };
            if let Some(end) = p.end {
                offset = offset.min(end);
            }
            if tpl.add_partition_offset(&p.name, p.partition as i32, Offset::Offset(offset as i64)).is_err() {
                return;
            }
        }
        match self.consumer.commit(&tpl, rdkafka::consumer::CommitMode::Async) {
            Ok(()) => self.committed = durable,
            Err(e) => tracing::warn!(durable, "kafka: cannot commit group offsets yet ({e})"),
        }
    }
}
