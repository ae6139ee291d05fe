//! Kafka in and out (SPEC §1, §2.1, §4, §5), over librdkafka.
//!
//! **Source.** Partitions are assigned to workers deterministically (the same
//! round-robin over the sorted (topic, partition) list as file replay) with
//! `assign`, never consumer-group rebalancing, and every partition is read
//! from offset 0: the program's state is rebuilt from the retained log, and
//! sinks skip what they already hold. A record gets its logical time from the
//! input [`Clock`] (`offset / epoch_records` on a fresh input), exactly as in
//! file replay, so a Kafka run and a file run of the same records produce the
//! same updates at the same times. The
//! operator is woken by librdkafka's non-empty callback through a timely
//! activator (it never polls an empty queue in a loop), and by a timer for
//! idleness.
//!
//! With `until_end`, each partition is read up to the high watermark seen at
//! start and then counts as exhausted (event-time watermark +∞), so the run
//! ends exactly like file replay. Without it, a partition with no new record
//! for `idle_timeout` stops holding back both the event-time watermark (SPEC
//! §3) and the logical-time frontier; a record that later arrives on it gets a
//! time no earlier than the source's current frontier. That is the one place
//! where timing can change a result, as SPEC §3 allows.
//!
//! **Sink.** Cleaned signals (2.1) go to the signals topic with the input's
//! key and dead letters to the DLQ topic (JSON value), through an idempotent
//! producer with `acks=all`. Every output record carries its source position
//! in headers (`edu-source`, `edu-partition`, `edu-offset`). After each flush
//! the sink records, in its SQLite state file and in one transaction, the
//! highest source offset written per source partition and the end offsets of
//! its output partitions. On restart it reads its output partitions from the
//! recorded end offsets to their ends, learns from the headers which source
//! positions were written after the last record (a crash between flush and
//! record), and skips every position already written: a crash never doubles
//! an output record, without broker transactions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

use dataflows::ingest::{Delays, Input, PartitionIngest};
use dataflows::{DeadLetter, Diff, OutputRow, Pos, Time, Topic};

use crate::clock::Clock;
use crate::sink::SinkWriter;

/// How to reach the brokers.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// librdkafka properties passed through as they are.
    pub properties: BTreeMap<String, String>,
    /// Consumer group id (used for offset commits only; partitions are assigned).
    pub group_id: String,
}

impl KafkaConfig {
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn consumer(&self) -> anyhow::Result<BaseConsumer<LogContext>> {
        let mut c = self.client_config();
        // tansu answers a fetch when `fetch.wait.max.ms` expires rather than when data arrives, so
        // librdkafka's 500 ms default adds up to half a second of latency (measured: p50 467 -> 131 ms).
        if !self.properties.contains_key("fetch.wait.max.ms") {
            c.set("fetch.wait.max.ms", "20");
        }
        c.set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        c.create_with_context(LogContext::default()).map_err(|e| anyhow!("cannot create Kafka consumer: {e}"))
    }

    /// An idempotent producer with `acks=all` whose messages never time out
    /// (`message.timeout.ms=0`): while the broker is away, flushes wait and retry.
    /// Those three override the properties; `linger.ms` is 5 unless the properties set it.
    pub fn producer(&self) -> anyhow::Result<BaseProducer<LogContext>> {
        self.producer_config()
            .create_with_context(LogContext::default())
            .map_err(|e| anyhow!("cannot create Kafka producer: {e}"))
    }

    /// The configuration of [`Self::producer`].
    fn producer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        if !self.properties.contains_key("linger.ms") {
            c.set("linger.ms", "5");
        }
        c.set("enable.idempotence", "true").set("acks", "all").set("message.timeout.ms", "0");
        c
    }
}

/// Logs librdkafka errors as one line each, at most one line per kind every 10 s,
/// and counts failed deliveries.
#[derive(Default)]
pub struct LogContext {
    last: Mutex<HashMap<String, Instant>>,
    failed_deliveries: AtomicU64,
}

impl ClientContext for LogContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let kind = format!("{error}");
        let Ok(mut last) = self.last.lock() else { return };
        let now = Instant::now();
        if last.get(&kind).is_none_or(|t| now.duration_since(*t) > Duration::from_secs(10)) {
            last.insert(kind, now);
            tracing::warn!("kafka: {error}: {reason} (retrying)");
        }
    }
}

impl ConsumerContext for LogContext {}
impl ProducerContext for LogContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed_deliveries.fetch_add(1, Ordering::Relaxed);
            self.error(e.clone(), "delivery failed");
        }
    }
}

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

/// The open live epoch of one source (see [`SourceOptions::epoch_ms`]).
struct Live {
    period: Duration,
    next_close: Instant,
    /// The open epoch: the time of every new record.
    epoch: Time,
    conn: rusqlite::Connection,
    /// Per partition: the first offset read in the open epoch.
    first: Vec<Option<u64>>,
    /// Whether any inputs were given at the open epoch, records or not. Watermark changes
    /// alone (a partition going idle) need the epoch to close too: when the whole input goes
    /// quiet, the idle partitions' marks are what closes the last windows (SPEC §3).
    given: bool,
    /// Per partition: positions from here on get live times (before: the recorded clock).
    open_start: Vec<u64>,
    epoch_records: u64,
    /// Cuts of closed epochs not yet recorded: `(topic, partition, start, base)`.
    cuts: Vec<(Topic, u32, u64, Time)>,
    /// Every partition's position at the last close: `(topic, partition, base, next offset)`.
    positions: Vec<(Topic, u32, Time, u64)>,
}

impl Live {
    /// Closes the open epoch and opens the next one; [`Live::persist`] must run before the
    /// frontier passes the closed epoch.
    fn close(&mut self, states: &[PartitionState], high_epoch: &AtomicU64) {
        let e = self.epoch;
        // The next epoch follows the process's most advanced source; the cuts must say exactly
        // where it starts (a replay may not put the next records at an earlier, committed time).
        let next = (e + 1).max(high_epoch.load(Ordering::Relaxed));
        high_epoch.fetch_max(next, Ordering::Relaxed);
        self.positions.clear();
        for (first, s) in self.first.iter_mut().zip(states) {
            let (topic, partition) = (s.ingest.topic(), s.ingest.partition());
            if let Some(f) = first.take() {
                self.cuts.push((topic, partition, f, e));
                self.cuts.push((topic, partition, s.next_offset, next));
            }
            self.positions.push((topic, partition, next, s.next_offset));
        }
        self.epoch = next;
        self.given = false;
        self.next_close = Instant::now() + self.period;
    }

    /// Records the closed epochs' cuts (one transaction); exits the process when it cannot.
    fn persist(&mut self) {
        if !self.cuts.is_empty() {
            if let Err(e) = Clock::record_cuts(&mut self.conn, &self.cuts) {
                eprintln!("edu-rtdw: kafka source: cannot record the live epochs' cuts: {e:#}");
                std::process::exit(1);
            }
            self.cuts.clear();
        }
        for (topic, partition, base, offset) in self.positions.drain(..) {
            crate::clock::note_live_cut(topic, partition, base, offset);
        }
    }

    /// Whether the open epoch holds records.
    fn open(&self) -> bool {
        self.first.iter().any(Option::is_some)
    }

    /// Whether the open epoch holds anything the frontier has to pass: records read in this
    /// activation (`open`, before they are given) or inputs already given.
    fn holds_inputs(&self) -> bool {
        self.given || self.open()
    }
}

struct PartitionState {
    ingest: PartitionIngest,
    next_offset: u64,
    end: Option<u64>,
    last_seen: Instant,
    idle: bool,
    done: bool,
}

/// Reads this worker's `partitions` as a stream of [`Input`]s.
///
/// `records_read` counts messages; `high_epoch` is shared by the process's
/// sources so that a worker whose partitions are all idle can let its
/// frontier follow the others.
pub fn kafka_source<'s>(
    scope: Scope<'s, Time>,
    cfg: &KafkaConfig,
    partitions: Vec<KafkaPartition>,
    opts: SourceOptions,
    records_read: Arc<AtomicU64>,
    high_epoch: Arc<AtomicU64>,
) -> anyhow::Result<StreamVec<'s, Time, Input>> {
    let mut consumer = cfg.consumer()?;
    let mut assignment = TopicPartitionList::new();
    let mut index: HashMap<(String, i32), usize> = HashMap::new();
    let mut states = Vec::new();
    for (i, p) in partitions.iter().enumerate() {
        assignment
            .add_partition_offset(&p.name, p.partition as i32, Offset::Beginning)
            .map_err(|e| anyhow!("cannot assign {}/{}: {e}", p.name, p.partition))?;
        index.insert((p.name.clone(), p.partition as i32), i);
        states.push(PartitionState {
            ingest: PartitionIngest::new(p.topic, p.partition, &opts.delays),
            next_offset: 0,
            end: p.end,
            last_seen: Instant::now(),
            idle: false,
            done: false,
        });
    }
    if !partitions.is_empty() {
        consumer.assign(&assignment).map_err(|e| anyhow!("cannot assign partitions: {e}"))?;
    }
    let clock = Arc::clone(&opts.clock);
    let idle_timeout = opts.idle_timeout;
    let mut live = match opts.epoch_ms {
        Some(ms) if partitions.iter().all(|p| p.end.is_none()) => {
            crate::clock::set_live();
            Some(Live {
                period: Duration::from_millis(ms.max(1)),
                next_close: Instant::now(),
                epoch: clock.max_base(),
                conn: Clock::open_cuts(&opts.state_path)?,
                first: vec![None; partitions.len()],
                given: false,
                open_start: partitions.iter().map(|p| clock.open_start(p.topic, p.partition)).collect(),
                epoch_records: clock.epoch_records(),
                cuts: Vec::new(),
                positions: Vec::new(),
            })
        }
        _ => None,
    };
    let exit_when_idle = opts.exit_when_idle;
    // When this worker last read a record (for `exit_when_idle`).
    let mut last_read: Option<Instant> = None;
    Ok(source::<_, CapacityContainerBuilder<Vec<Input>>, _, _>(scope, "KafkaSource", move |cap, info| {
        let activator = scope.activator_for(info.address.clone());
        let sync = scope.worker().sync_activator_for(info.address.to_vec());
        consumer.set_nonempty_callback(move || {
            let _ = sync.activate();
        });
        let mut cap = Some(cap);
        let mut by_time: BTreeMap<Time, Vec<Input>> = BTreeMap::new();
        let mut stamps = crate::latency::enabled().then(crate::latency::Stamps::default);
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let floor = *c.time();
            let now = Instant::now();
            // Drain what is there, within a budget, then yield.
            let mut budget = 100_000usize;
            let mut read_now = vec![0u64; states.len()];
            let read_ms = if stamps.is_some() { crate::latency::now_ms() } else { 0 };
            while budget > 0 {
                let Some(result) = consumer.poll(Duration::ZERO) else { break };
                budget -= 1;
                let Ok(msg) = result else { continue };
                let Some(&i) = index.get(&(msg.topic().to_string(), msg.partition())) else { continue };
                let state = &mut states[i];
                let offset = msg.offset().max(0) as u64;
                if offset < state.next_offset || state.done {
                    continue;
                }
                let time = match live.as_mut() {
                    Some(l) if offset >= l.open_start[i] => {
                        l.first[i].get_or_insert(offset);
                        l.epoch
                    }
                    _ => clock.time(state.ingest.topic(), state.ingest.partition(), offset),
                }
                .max(floor);
                let out = by_time.entry(time).or_default();
                if state.idle {
                    tracing::debug!(
                        topic = msg.topic(),
                        partition = msg.partition(),
                        offset,
                        "source partition resumed"
                    );
                    out.extend(state.ingest.watermark_resumed(time));
                    state.idle = false;
                }
                state.ingest.ingest_keyed(offset, msg.key(), msg.payload().unwrap_or_default(), out);
                if let (Some(s), Some(ts)) = (stamps.as_mut(), msg.timestamp().to_millis()) {
                    s.note(time, ts, read_ms);
                }
                state.next_offset = offset + 1;
                state.last_seen = now;
                records_read.fetch_add(1, Ordering::Relaxed);
                read_now[i] += 1;
                last_read = Some(now);
                // An epoch holds at most `epoch_records` positions of a partition.
                if let Some(l) = live.as_mut().filter(|l| l.first[i].is_some_and(|f| offset + 1 - f >= l.epoch_records))
                {
                    l.close(&states, &high_epoch);
                }
            }
            if let Some(l) = live.as_mut().filter(|l| l.holds_inputs() && now >= l.next_close) {
                l.close(&states, &high_epoch);
            }
            // Per partition: end of a bounded read, idleness, watermark updates.
            let mut min_next: Option<Time> = None;
            let mut max_next: Time = floor;
            // Not per partition: one that has not delivered its first record yet is not idle.
            let all_idle = exit_when_idle && last_read.is_some_and(|t| now.duration_since(t) >= idle_timeout);
            for (i, state) in states.iter_mut().enumerate().filter(|(_, s)| !s.done) {
                let next = match live.as_ref() {
                    Some(l) if state.next_offset >= l.open_start[i] => l.epoch,
                    _ => clock.time(state.ingest.topic(), state.ingest.partition(), state.next_offset),
                }
                .max(floor);
                if all_idle {
                    state.done = true;
                    by_time.entry(next).or_default().extend(state.ingest.exhausted());
                    continue;
                }
                max_next = max_next.max(next);
                if state.end.is_some_and(|end| state.next_offset >= end) {
                    state.done = true;
                    by_time.entry(next).or_default().extend(state.ingest.exhausted());
                    continue;
                }
                if !state.idle && state.end.is_none() && now.duration_since(state.last_seen) >= idle_timeout {
                    state.idle = true;
                    tracing::debug!(
                        topic = state.ingest.topic().default_name(),
                        partition = state.ingest.partition(),
                        next_offset = state.next_offset,
                        "source partition idle"
                    );
                    by_time.entry(next).or_default().extend(state.ingest.went_idle());
                    continue;
                }
                if state.idle {
                    continue;
                }
                by_time.entry(next).or_default().extend(state.ingest.watermark_update());
                min_next = Some(min_next.map_or(next, |m| m.min(next)));
            }
            high_epoch.fetch_max(max_next, Ordering::Relaxed);
            if let Some(s) = stamps.as_mut() {
                s.flush();
            }
            for (state, n) in states.iter().zip(read_now) {
                crate::metrics::add_records(state.ingest.topic(), state.ingest.partition(), n);
            }
            for (time, inputs) in std::mem::take(&mut by_time) {
                crate::metrics::observe_inputs(&inputs);
                if let Some(l) = live.as_mut().filter(|l| l.epoch == time && !inputs.is_empty()) {
                    l.given = true;
                }
                if !inputs.is_empty() {
                    output.session(&c.delayed(&time)).give_iterator(inputs.into_iter());
                }
            }
            if states.iter().all(|s| s.done) {
                if let Some(l) = live.as_mut() {
                    if l.open() {
                        l.close(&states, &high_epoch);
                    }
                    l.persist();
                }
                cap = None;
                return;
            }
            // Every live partition holds the frontier at its next record's time; idle ones do not.
            // With live epochs, the open epoch bounds it (partitions still replaying recorded times may hold it lower).
            let target = match live.as_ref() {
                Some(l) => min_next.map_or(l.epoch, |m| m.min(l.epoch)),
                None => min_next.unwrap_or_else(|| high_epoch.load(Ordering::Relaxed).max(floor)),
            };
            if let Some(l) = live.as_mut() {
                l.persist();
            }
            c.downgrade(&target);
            let mut wake = idle_timeout.max(Duration::from_millis(50));
            if let Some(l) = live.as_ref().filter(|l| l.holds_inputs()) {
                wake = wake.min(l.next_close.saturating_duration_since(now).max(Duration::from_millis(1)));
            }
            if budget == 0 {
                activator.activate();
            } else {
                activator.activate_after(wake);
            }
        }
    }))
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
        self.consumer.poll(Duration::ZERO);
    }
}

/// Header names carrying an output record's source position.
const H_SOURCE: &str = "edu-source";
const H_PARTITION: &str = "edu-partition";
const H_OFFSET: &str = "edu-offset";

/// The Kafka sink: cleaned signals and dead letters, exactly once per source position.
pub struct KafkaSink {
    producer: BaseProducer<LogContext>,
    signals_topic: String,
    dlq_topic: String,
    state: rusqlite::Connection,
    /// Highest source offset written, per (source topic, partition).
    written: HashMap<(String, u32), u64>,
    flush_timeout: Duration,
}

impl KafkaSink {
    /// Connects, and learns from the state file and the output topics what was already written.
    pub fn open(cfg: &KafkaConfig, signals_topic: &str, dlq_topic: &str, state_path: &Path) -> anyhow::Result<Self> {
        let state = rusqlite::Connection::open(state_path)
            .with_context(|| format!("cannot open Kafka sink state {}", state_path.display()))?;
        state.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS edu_rtdw_kafka_written (source TEXT, partition INTEGER, max_offset INTEGER, PRIMARY KEY (source, partition));
             CREATE TABLE IF NOT EXISTS edu_rtdw_kafka_outputs (topic TEXT, partition INTEGER, end_offset INTEGER, PRIMARY KEY (topic, partition));",
        )?;
        let mut written = HashMap::new();
        {
            let mut stmt = state.prepare("SELECT source, partition, max_offset FROM edu_rtdw_kafka_written")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
                let (s, p, o) = row?;
                written.insert((s, p as u32), o as u64);
            }
        }
        let mut outputs: HashMap<(String, i32), i64> = HashMap::new();
        {
            let mut stmt = state.prepare("SELECT topic, partition, end_offset FROM edu_rtdw_kafka_outputs")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
                let (t, p, o) = row?;
                outputs.insert((t, p as i32), o);
            }
        }
        let mut sink = KafkaSink {
            producer: cfg.producer()?,
            signals_topic: signals_topic.to_string(),
            dlq_topic: dlq_topic.to_string(),
            state,
            written,
            flush_timeout: Duration::from_secs(30),
        };
        for topic in [signals_topic, dlq_topic] {
            sink.read_back(cfg, topic, &outputs)?;
        }
        Ok(sink)
    }

    /// Reads `topic` from the recorded end offsets to its end, folding the headers into `written`.
    fn read_back(
        &mut self,
        cfg: &KafkaConfig,
        topic: &str,
        recorded: &HashMap<(String, i32), i64>,
    ) -> anyhow::Result<()> {
        let consumer = cfg.consumer()?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|e| anyhow!("cannot read metadata of output topic {topic}: {e}"))?;
        let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
        if partitions == 0 {
            bail!("output topic {topic} does not exist (create it, e.g. with scripts/kafka-up.sh)");
        }
        let mut tpl = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for p in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .map_err(|e| anyhow!("cannot read the end of {topic}/{p}: {e}"))?;
            let from = recorded.get(&(topic.to_string(), p)).copied().unwrap_or(0);
            if high > from {
                tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
                ends.insert(p, high);
            }
        }
        if ends.is_empty() {
            return Ok(());
        }
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ends.is_empty() {
            if Instant::now() > deadline {
                bail!("timed out reading back output topic {topic}");
            }
            let Some(result) = consumer.poll(Duration::from_millis(500)) else { continue };
            let msg = result.map_err(|e| anyhow!("reading back {topic}: {e}"))?;
            if let Some((source, partition, offset)) = position_of(&msg) {
                let e = self.written.entry((source, partition)).or_insert(offset);
                *e = (*e).max(offset);
            }
            if ends.get(&msg.partition()).is_some_and(|end| msg.offset() + 1 >= *end) {
                ends.remove(&msg.partition());
            }
        }
        Ok(())
    }

    fn already_written(&self, source: Topic, pos: Pos) -> bool {
        self.written.get(&(source.default_name().to_string(), pos.partition)).is_some_and(|max| pos.offset <= *max)
    }

    fn send(&self, topic: &str, key: Option<&[u8]>, value: &[u8], source: Topic, pos: Pos) -> anyhow::Result<()> {
        let headers = OwnedHeaders::new()
            .insert(Header { key: H_SOURCE, value: Some(source.default_name()) })
            .insert(Header { key: H_PARTITION, value: Some(&pos.partition.to_string()) })
            .insert(Header { key: H_OFFSET, value: Some(&pos.offset.to_string()) });
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(100));
                    record = r;
                }
                Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
            }
        }
    }

    fn record_progress(&mut self, touched: &HashMap<(String, u32), u64>) -> anyhow::Result<()> {
        let mut ends = Vec::new();
        for topic in [&self.signals_topic, &self.dlq_topic] {
            let md = self.producer.client().fetch_metadata(Some(topic), Duration::from_secs(30))?;
            let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
            for p in 0..partitions {
                let (_, high) = self.producer.client().fetch_watermarks(topic, p, Duration::from_secs(30))?;
                ends.push((topic.clone(), p, high));
            }
        }
        let tx = self.state.transaction()?;
        for ((source, partition), offset) in touched {
            tx.execute(
                "INSERT INTO edu_rtdw_kafka_written (source, partition, max_offset) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source, partition) DO UPDATE SET max_offset = MAX(max_offset, excluded.max_offset)",
                rusqlite::params![source, *partition as i64, *offset as i64],
            )?;
        }
        for (topic, p, high) in ends {
            tx.execute(
                "INSERT INTO edu_rtdw_kafka_outputs (topic, partition, end_offset) VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, partition) DO UPDATE SET end_offset = excluded.end_offset",
                rusqlite::params![topic, p as i64, high],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The source position in an output record's headers.
fn position_of<M: Message>(msg: &M) -> Option<(String, u32, u64)> {
    let headers = msg.headers()?;
    let mut source = None;
    let mut partition = None;
    let mut offset = None;
    for h in headers.iter() {
        let value = h.value.and_then(|v| std::str::from_utf8(v).ok());
        match h.key {
            H_SOURCE => source = value.map(str::to_string),
            H_PARTITION => partition = value.and_then(|v| v.parse().ok()),
            H_OFFSET => offset = value.and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    Some((source?, partition?, offset?))
}

/// The DLQ value: JSON with source, partition, offset, metric, reason and raw (lossy UTF-8).
pub fn dead_letter_json(d: &DeadLetter) -> Vec<u8> {
    serde_json::json!({
        "source": d.source.default_name(),
        "partition": d.pos.partition,
        "offset": d.pos.offset,
        "metric": crate::tables::dead_letter_metric(d),
        "reason": d.reason,
        "raw": String::from_utf8_lossy(&d.raw),
    })
    .to_string()
    .into_bytes()
}

/// The cleaned-signal value of SPEC §2.1, stamped with `time_stamp` (ms).
pub fn signal_json(s: &dataflows::student_signal_etl::CleanSignal, time_stamp: i64) -> Vec<u8> {
    serde_json::json!({
        "messageCreateTime": s.message_create_time,
        "timeStamp": time_stamp,
        "messageTimeStamp": s.message_time_stamp,
        "userId": s.user_id,
        "roomId": s.room_id,
        "role": s.role,
        "msgId": s.msg_id,
        "msgType": s.msg_type,
        "targetId": s.target_id,
        "targetType": s.target_type,
        "action": s.action,
        "subAction": s.sub_action,
        "pageIndex": s.page_index,
        "event": s.event.name(),
    })
    .to_string()
    .into_bytes()
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl SinkWriter for KafkaSink {
    fn committed_upper(&self) -> Time {
        // Exactly-once here is by source position, not by logical time.
        0
    }

    fn commit(&mut self, _upper: Time, _complete: bool, changes: &[(OutputRow, Diff)]) -> anyhow::Result<()> {
        let stamp = now_millis();
        let mut touched: HashMap<(String, u32), u64> = HashMap::new();
        let mut records: Vec<(Topic, Pos, &OutputRow)> = changes
            .iter()
            .filter(|(_, diff)| *diff > 0)
            .filter_map(|(row, _)| match row {
                OutputRow::Signal((pos, _)) => Some((Topic::Timeline, *pos, row)),
                OutputRow::Dead(d) => Some((d.source, d.pos, row)),
                _ => None,
            })
            .collect();
        records.sort_by_key(|(t, p, _)| (*t, *p));
        for (source, pos, row) in records {
            if self.already_written(source, pos) {
                continue;
            }
            match row {
                OutputRow::Signal((_, s)) => {
                    self.send(&self.signals_topic, s.key.as_deref(), &signal_json(s, stamp), source, pos)?
                }
                OutputRow::Dead(d) => self.send(&self.dlq_topic, None, &dead_letter_json(d), source, pos)?,
                _ => {}
            }
            let e = touched.entry((source.default_name().to_string(), pos.partition)).or_insert(pos.offset);
            *e = (*e).max(pos.offset);
        }
        if touched.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        while let Err(e) = self.producer.flush(self.flush_timeout) {
            if started.elapsed() > Duration::from_secs(600) {
                bail!("Kafka flush failed for 10 minutes: {e}");
            }
            tracing::warn!("kafka: flush not done yet ({e}); retrying");
        }
        // A failed delivery is never recorded as written: fail, and let the restart's read-back resend it.
        let failed = self.producer.context().failed_deliveries.swap(0, Ordering::Relaxed);
        if failed > 0 {
            bail!("{failed} Kafka deliveries failed; restart to resend them (nothing is recorded as written)");
        }
        self.record_progress(&touched)?;
        for (k, v) in touched {
            let e = self.written.entry(k).or_insert(v);
            *e = (*e).max(v);
        }
        Ok(())
    }
}

/// What [`produce_sample`] did.
#[derive(Clone, Copy, Debug)]
pub struct Produced {
    /// Records produced.
    pub sent: u64,
    /// With a rate: how far the sends fell behind their schedule at worst.
    pub max_behind: Duration,
}

/// Produces the generated sample into the source topics (`name_of` maps default to actual names).
///
/// `rate`: records per second, open loop: record `i` is due `i / rate` seconds
/// after the start and carries that *scheduled* time as its Kafka timestamp
/// (CreateTime), even when the send itself is late, so that latency measured
/// from the timestamp includes any queueing in the producer or the broker.
/// Without a rate, as fast as possible, stamped with the send time.
pub fn produce_sample(
    cfg: &KafkaConfig,
    opts: &crate::sample::GenOptions,
    name_of: impl Fn(&str) -> String,
    rate: Option<u64>,
) -> anyhow::Result<Produced> {
    let producer = cfg.producer()?;
    let started = Instant::now();
    let wall_start = crate::latency::now_ms();
    let mut sent = 0u64;
    let mut max_behind = Duration::ZERO;
    let names: HashMap<&str, String> = crate::sample::TOPICS.iter().map(|t| (*t, name_of(t))).collect();
    let rate = rate.filter(|r| *r > 0);
    for msg in crate::sample::messages(opts) {
        let topic = &names[msg.topic];
        let stamp = match rate {
            Some(rate) => {
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                let elapsed = started.elapsed();
                match due.checked_sub(elapsed) {
                    // Sleep only when at least 1 ms ahead: fewer syscalls, sends at most 1 ms early.
                    Some(wait) if wait >= Duration::from_millis(1) => std::thread::sleep(wait),
                    Some(_) => {}
                    None => max_behind = max_behind.max(elapsed - due),
                }
                wall_start + due.as_millis() as i64
            }
            None => crate::latency::now_ms(),
        };
        let mut record =
            BaseRecord::<[u8], [u8]>::to(topic).payload(&msg.value).partition(msg.partition as i32).timestamp(stamp);
        if !msg.key.is_empty() {
            record = record.key(&msg.key);
        }
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).map_err(|e| anyhow!("flush to Kafka failed: {e}"))?;
    Ok(Produced { sent, max_behind })
}

#[cfg(test)]
mod tests {
    use super::KafkaConfig;

    fn with(properties: &[(&str, &str)]) -> KafkaConfig {
        let properties = properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        KafkaConfig { brokers: "127.0.0.1:1".into(), properties, group_id: "g".into() }
    }

    #[test]
    fn the_producer_batches_as_told_but_stays_idempotent() {
        let default = with(&[]).producer_config();
        assert_eq!(default.get("linger.ms"), Some("5"));
        let told =
            with(&[("linger.ms", "100"), ("enable.idempotence", "false"), ("acks", "1"), ("batch.size", "65536")])
                .producer_config();
        assert_eq!(told.get("linger.ms"), Some("100"));
        assert_eq!(told.get("batch.size"), Some("65536"));
        assert_eq!(told.get("enable.idempotence"), Some("true"));
        assert_eq!(told.get("acks"), Some("all"));
        assert_eq!(told.get("message.timeout.ms"), Some("0"));
    }
}
