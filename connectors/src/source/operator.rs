//! The generic partitioned source operator (see the module docs of [`super`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilderSession;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};
use timely::scheduling::Activator;

use dataflows::Time;
use dataflows::ingest::{Input, PartitionIngest};

use super::epochs::Place;
use super::{Logs, Message, Pace, PartState, SourceSettings, Status};

type Output<'a> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<Input>>>;

/// How long a source with waiting partitions sleeps at most (idleness is checked then).
const MIN_WAKE: Duration = Duration::from_millis(50);

/// Reads `logs` (this worker's partitions) as a stream of [`Input`]s at logical times.
///
/// ```
/// use connectors::fatal::Fatal;
/// use connectors::source::{partitioned_source, Epochs, Logs, Message, SourceSettings, Status, Unpaced};
/// use connectors::clock::Clock;
/// use dataflows::ingest::{Delays, Input};
/// use dataflows::Topic;
/// use std::sync::Arc;
/// use timely::dataflow::operators::capture::{Capture, Extract};
///
/// /// Two messages of one user partition, then its end.
/// struct Two(u64);
/// impl Logs for Two {
///     fn partitions(&self) -> Vec<(Topic, u32)> {
///         vec![(Topic::User, 0)]
///     }
///     fn read<F: FnMut(Message<'_>) -> bool>(&mut self, _i: usize, _budget: usize, mut deliver: F) -> anyhow::Result<Status> {
///         while self.0 < 2 {
///             let msg = Message { offset: self.0, key: None, value: br#"{"id": "7"}"#, log_time: None };
///             if !deliver(msg) {
///                 return Ok(Status::More);
///             }
///             self.0 += 1;
///         }
///         Ok(Status::Ended)
///     }
/// }
///
/// let captured = timely::example(|scope| {
///     let epochs = Epochs::Offsets(Arc::new(Clock::new(1))); // one record per logical time
///     let settings = SourceSettings::bounded("Two", Delays::default(), epochs, Fatal::default());
///     partitioned_source(scope, Two(0), settings, Unpaced).capture()
/// });
/// let times: Vec<_> = captured.extract().into_iter().map(|(t, inputs)| (t, inputs.len())).collect();
/// assert_eq!(times, vec![(0, 1), (1, 1)]);
/// ```
pub fn partitioned_source<'s, L: Logs, P: Pace>(
    scope: Scope<'s, Time>,
    mut logs: L,
    settings: SourceSettings,
    mut pace: P,
) -> StreamVec<'s, Time, Input> {
    let mut parts: Vec<Part> = logs.partitions().into_iter().map(|(t, p)| Part::new(t, p, &settings)).collect();
    let restored = super::restored_parts();
    if let Some((_, saved)) = &restored {
        for part in &mut parts {
            if let Some(state) = saved.get(&(part.ingest.topic(), part.ingest.partition())) {
                part.restore(state);
            }
        }
    }
    // With checkpoints on, the partitions' state as of the last activation (module docs of
    // `dataflows::durable`): the job saves it only while the source is held at a barrier.
    let published: Rc<RefCell<Vec<PartState>>> = Rc::default();
    let saved = Rc::clone(&published);
    dataflows::durable::register(super::STATE, Box::new(move || dataflows::durable::encode(&*saved.borrow())));
    let publish = dataflows::durable::enabled().then_some(published);
    source::<_, CapacityContainerBuilder<Vec<Input>>, _, _>(scope, settings.name, move |mut cap, info| {
        // A restored source reads on after the checkpoint's time.
        if let Some((time, _)) = restored {
            cap.downgrade(&(time + 1));
        }
        let activator = scope.activator_for(Rc::clone(&info.address));
        logs.wake_with(&scope.worker().sync_activator_for(info.address.to_vec()));
        let stamps = crate::latency::enabled().then(crate::latency::Stamps::default);
        let mut source = Source { logs, parts, settings, cap: Some(cap), out: Vec::new(), stamps };
        source.publish(publish.as_deref());
        move |output| {
            source.activate(output, &activator, &mut pace);
            source.publish(publish.as_deref());
        }
    })
}

/// One partition being read.
struct Part {
    ingest: PartitionIngest,
    /// The next offset to read.
    next: u64,
    /// When it last delivered a message, or had one to deliver.
    last_seen: Instant,
    /// Its reader said it has nothing past `next`, ever.
    ended: bool,
    /// Its end has been announced: it no longer holds anything back.
    done: bool,
    idle: bool,
}

impl Part {
    fn new(topic: dataflows::Topic, partition: u32, settings: &SourceSettings) -> Self {
        Part {
            ingest: PartitionIngest::new(topic, partition, &settings.delays),
            next: 0,
            last_seen: Instant::now(),
            ended: false,
            done: false,
            idle: false,
        }
    }

    fn restore(&mut self, state: &PartState) {
        self.next = state.next;
        self.idle = state.idle;
        (self.done, self.ended) = (state.done, state.done);
        self.ingest.restore(state.ingest.clone());
    }

    fn state(&self) -> PartState {
        let (topic, partition) = (self.ingest.topic(), self.ingest.partition());
        PartState { topic, partition, next: self.next, idle: self.idle, done: self.done, ingest: self.ingest.state() }
    }

    fn place(&self) -> Place {
        (self.ingest.topic(), self.ingest.partition(), self.next)
    }
}

struct Source<L> {
    logs: L,
    parts: Vec<Part>,
    settings: SourceSettings,
    cap: Option<Capability<Time>>,
    out: Vec<Input>,
    stamps: Option<crate::latency::Stamps>,
}

/// What the reads of one activation found.
#[derive(Default)]
struct Reads {
    /// The budget ran out: read again at once.
    exhausted_budget: bool,
    /// A partition filled the open live epoch.
    full: bool,
    /// Some partition has something to read now or at a later time.
    ready: bool,
}

impl<L: Logs> Source<L> {
    /// Publishes the partitions' state for a checkpoint.
    fn publish(&self, to: Option<&RefCell<Vec<PartState>>>) {
        if let Some(to) = to {
            *to.borrow_mut() = self.parts.iter().map(Part::state).collect();
        }
    }

    fn activate(&mut self, output: &mut Output<'_>, activator: &Activator, pace: &mut impl Pace) {
        let Some(floor) = self.cap.as_ref().map(|c| *c.time()) else { return };
        if !pace.admit(floor, activator) {
            return;
        }
        self.logs.service();
        let now = Instant::now();
        let reads = match self.read_all(floor, now, output) {
            Ok(reads) => reads,
            Err(e) => return self.fail(format!("{e:#}")),
        };
        let places: Vec<Place> = self.parts.iter().map(Part::place).collect();
        let high_epoch = Arc::clone(&self.settings.high_epoch);
        let high_epoch = &*high_epoch;
        self.settings.epochs.after_reads(reads.full, now, &places, high_epoch);
        if let Some(cut) = pace.checkpoint_at() {
            self.settings.epochs.skip_to(cut, &places, high_epoch);
        }
        let min_next = self.announce_states(floor, now, pace.limit(), output);
        if let Some(s) = self.stamps.as_mut() {
            s.flush();
        }
        if self.parts.iter().all(|p| p.done) {
            if let Err(e) = self.settings.epochs.finish(&places, high_epoch) {
                return self.fail(format!("{e:#}"));
            }
            if pace.release(floor, activator) {
                self.cap = None;
            }
            return;
        }
        let target = self.settings.epochs.target(min_next, floor, high_epoch);
        if let Err(e) = self.settings.epochs.persist() {
            return self.fail(format!("{e:#}"));
        }
        if let Some(cap) = self.cap.as_mut() {
            cap.downgrade(&target);
        }
        if reads.exhausted_budget || (reads.ready && target > floor) {
            activator.activate();
        } else if let Some(wake) = self.wake_in(now) {
            activator.activate_after(wake);
        }
    }

    /// Reads every partition's messages at time `floor`, within the budget.
    fn read_all(&mut self, floor: Time, now: Instant, output: &mut Output<'_>) -> anyhow::Result<Reads> {
        let mut reads = Reads::default();
        let mut budget = self.settings.budget;
        let read_ms = if self.stamps.is_some() { crate::wall_clock::now_millis() } else { 0 };
        for i in 0..self.parts.len() {
            let part = &self.parts[i];
            if part.done {
                continue;
            }
            if part.ended {
                // Its end is announced once the frontier reaches its end position.
                reads.ready = true;
                continue;
            }
            if budget == 0 {
                reads.exhausted_budget = true;
                continue;
            }
            let (read, status, refused) = self.read_partition(i, floor, budget, read_ms)?;
            budget -= read;
            let part = &mut self.parts[i];
            match status {
                Status::Ended => part.ended = true,
                Status::More if !refused => reads.exhausted_budget = true,
                _ => {}
            }
            // Idleness counts from the last time the partition was caught up and silent.
            if read > 0 || refused || status != Status::Waiting {
                part.last_seen = now;
            }
            reads.ready |= refused || matches!(status, Status::More | Status::Ended);
            if read > 0 {
                part.idle = false;
            }
            reads.full |= self.settings.epochs.full(i, part.next);
            if !part.idle && !part.ended {
                // The watermark of what was read, with the records that moved it.
                self.out.extend(part.ingest.watermark_update());
            }
            self.settings.records_read.fetch_add(read as u64, Ordering::Relaxed);
            crate::metrics::observe_partition(part.ingest.topic(), part.ingest.partition(), read as u64, &self.out);
            if !self.out.is_empty() {
                self.settings.epochs.note_given(floor);
                if let Some(cap) = self.cap.as_ref() {
                    output.session(cap).give_iterator(self.out.drain(..));
                }
            }
        }
        Ok(reads)
    }

    /// Reads partition `i` at `floor`: how many messages, the reader's status, and whether
    /// a message was refused (its time is later).
    fn read_partition(
        &mut self,
        i: usize,
        floor: Time,
        budget: usize,
        read_ms: i64,
    ) -> anyhow::Result<(usize, Status, bool)> {
        let Source { logs, parts, settings, out, stamps, .. } = self;
        let part = &mut parts[i];
        let (topic, partition) = (part.ingest.topic(), part.ingest.partition());
        let epochs = &mut settings.epochs;
        let limit = epochs.limit(i, topic, partition, part.next, floor);
        let (mut read, mut refused) = (0, false);
        let status = logs.read(i, budget, |msg: Message<'_>| {
            if msg.offset >= limit || epochs.full(i, msg.offset) {
                refused = true;
                return false;
            }
            if part.idle {
                tracing::debug!(
                    topic = topic.default_name(),
                    partition,
                    offset = msg.offset,
                    "source partition resumed"
                );
                out.extend(part.ingest.watermark_resumed(floor));
                part.idle = false;
            }
            part.ingest.ingest_logged(msg.offset, msg.key, msg.value, msg.log_time, out);
            if let (Some(s), Some(ts)) = (stamps.as_mut(), msg.log_time) {
                s.note(floor, ts, read_ms);
            }
            epochs.note_read(i, msg.offset);
            part.next = msg.offset + 1;
            read += 1;
            true
        })?;
        Ok((read, status, refused))
    }

    /// Announces ends and idleness, and returns the least next time of the partitions
    /// that hold the frontier.
    fn announce_states(
        &mut self,
        floor: Time,
        now: Instant,
        limit: Option<Time>,
        output: &mut Output<'_>,
    ) -> Option<Time> {
        let idle_timeout = self.settings.idle_timeout;
        // `exit_when_idle`: every partition of this worker has been caught up and silent that long
        // (a restored run with nothing new to read finishes too).
        let all_idle = self
            .settings
            .exit_when_idle
            .is_some_and(|t| self.parts.iter().all(|p| p.done || now.duration_since(p.last_seen) >= t));
        let mut min_next: Option<Time> = None;
        let mut max_next = floor;
        for i in 0..self.parts.len() {
            let part = &mut self.parts[i];
            if part.done {
                continue;
            }
            let (topic, partition) = (part.ingest.topic(), part.ingest.partition());
            let next = self.settings.epochs.time(i, topic, partition, part.next, floor);
            let mark = if all_idle || (part.ended && next <= floor) {
                (part.done, part.ended) = (true, true);
                part.ingest.exhausted()
            } else if !part.idle
                && !part.ended
                && idle_timeout.is_some_and(|t| now.duration_since(part.last_seen) >= t)
                && limit.is_none_or(|l| next < l)
            {
                part.idle = true;
                tracing::debug!(
                    topic = topic.default_name(),
                    partition,
                    next_offset = part.next,
                    "source partition idle"
                );
                part.ingest.went_idle()
            } else {
                None
            };
            if !all_idle {
                max_next = max_next.max(next);
            }
            if !part.done && !part.idle {
                min_next = Some(min_next.map_or(next, |m| m.min(next)));
            }
            if let Some(mark) = mark {
                crate::metrics::observe_inputs(std::slice::from_ref(&mark));
                self.settings.epochs.note_given(next);
                if let Some(cap) = self.cap.as_ref() {
                    output.session(&cap.delayed(&next)).give(mark);
                }
            }
        }
        self.settings.high_epoch.fetch_max(max_next, Ordering::Relaxed);
        min_next
    }

    /// How long to sleep when nothing can be read now: until a waiting partition may go idle
    /// or the open live epoch must close.
    fn wake_in(&self, now: Instant) -> Option<Duration> {
        let idle = self.settings.idle_timeout.or(self.settings.exit_when_idle).map(|t| t.max(MIN_WAKE));
        match (idle, self.settings.epochs.close_in(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn fail(&mut self, message: String) {
        self.settings.fatal.report(message);
        self.cap = None;
    }
}
