//! Per-partition ingestion: from a message value to what each metric gets.
//!
//! A source owns each of its partitions' [`PartitionIngest`] and feeds it every
//! message in offset order. A message over `max_message_bytes` is one `too_large`
//! dead letter keeping its first [`TOO_LARGE_RAW_BYTES`] (SPEC §4). Any other is
//! parsed once (SPEC §1); the partition keeps its event-time watermark
//! `W_p = max event time so far − delay` (SPEC §3: every record whose event-time
//! field parses counts, before any business filter, except one more than
//! `max_future` ahead of its log time, which is `future` for the metrics that would
//! count it, and one outside the storable years 1000–9999, which they reject as a
//! `bad_field`), decides lateness against the watermark as it was before the
//! record, and runs each metric's extraction. The result is a list of
//! [`Input`]s: facts for the metrics, and a [`DeadLetter`] for every record and
//! metric that rejects it (SPEC §4). Nothing here depends on other partitions
//! or on timing, so the verdicts are the same on every replay.
//!
//! One exception that changes no verdict: a partition of a windowed topic that
//! resumes after idleness attaches each record's message to its window facts
//! ([`Origin::raw`]) until the window operator on this worker shows that the
//! partition has caught up ([`crate::ops::window`] gives the argument), so that a
//! record found late at the window becomes a dead letter with its `raw`.

use serde::{Deserialize, Serialize};

use crate::Text;
use crate::av_quality_30s::{self, AvKey};
use crate::channel_dim::{self, ChannelRow};
use crate::class_performance_1m::{self, MinuteKey};
use crate::daily_cc_confirmations::{self, OrderId, OrderState};
use crate::daily_uv_pv::{self, Visit};
use crate::hourly_registrations_by_level::{check_student, check_user};
use crate::json::{Reject, Scratch};
use crate::offline_study_time::{self, PlayFact};
use crate::ops::window::{self, Mark, Origin};
use crate::storable;
use crate::student_signal_etl::{self, CleanSignal};
use crate::topics::{Agora, Channel, Order, Qos, Signal, Student, Topic, User};
use crate::{DeadLetter, Metric, Pos, Rejection, Time, Timing};

/// Default of [`Delays::max_future_ms`]: 10 minutes (SPEC §3).
pub const DEFAULT_MAX_FUTURE_MS: i64 = 600_000;
/// Default of [`Delays::max_message_bytes`]: 1 MiB, Kafka's default `message.max.bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// How much of a `too_large` message its dead letter keeps as `raw` (SPEC §4).
pub const TOO_LARGE_RAW_BYTES: usize = 4096;

/// Settings of per-partition ingestion: the event-time settings of the windowed metrics
/// (SPEC §3) and the largest message read (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delays {
    /// Watermark delay of `class_performance_1m` (ms).
    pub class_performance_ms: i64,
    /// Watermark delay of `av_quality_30s` (ms).
    pub av_quality_ms: i64,
    /// How far a record's event time may be ahead of its log time (ms) before it is `future`.
    pub max_future_ms: i64,
    /// A longer message value is a `too_large` dead letter.
    pub max_message_bytes: usize,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            class_performance_ms: class_performance_1m::DEFAULT_DELAY_MS,
            av_quality_ms: av_quality_30s::DEFAULT_DELAY_MS,
            max_future_ms: DEFAULT_MAX_FUTURE_MS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// What a message contributes, tagged by where it goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Input {
    /// 2.1: a cleaned signal.
    Signal(Pos, Box<CleanSignal>),
    /// 2.3: a per-minute fact at an event time, and where its record was read.
    Minute(MinuteKey, i64, Origin),
    /// 2.2 (and 2.6): a dictionary row.
    Channel(Pos, Box<ChannelRow>),
    /// 2.4: a playback fact.
    Play(Pos, PlayFact),
    /// 2.5: a quality fact: key, event time, value, and where its record was read.
    Av(AvKey, i64, i64, Origin),
    /// 2.6: a student record, by id.
    Student(Text, Pos, Student),
    /// 2.6: a user record, by id.
    User(Text, Pos, User),
    /// 2.7: an order record's state, by id.
    Order(OrderId, Pos, OrderState),
    /// 2.8 (and, live, 2.9): a visit.
    Visit(Box<Visit>),
    /// A rejected record.
    Dead(DeadLetter),
    /// A partition's watermark for a windowed topic: topic, partition, `W_p` (or idle).
    Watermark(Topic, u32, Mark),
}

/// The event-time clock of one partition.
#[derive(Clone, Debug)]
struct EventClock {
    delay: i64,
    max_future: i64,
    max_event_time: Option<i64>,
}

impl EventClock {
    fn watermark(&self) -> i64 {
        self.max_event_time.map_or(i64::MIN, |m| m.saturating_sub(self.delay))
    }

    /// Counts one event time read at `log_time` (if the log has one); returns how it stood
    /// against the watermark before it. A `future` time, and one that is no storable
    /// timestamp (which the metrics reject as a bad field), do not move the watermark.
    fn observe(&mut self, event_time: i64, log_time: Option<i64>) -> Timing {
        if !storable::timestamp(event_time) {
            return Timing::OnTime;
        }
        if log_time.and_then(|l| l.checked_add(self.max_future)).is_some_and(|limit| event_time > limit) {
            return Timing::Future;
        }
        let late = event_time < self.watermark();
        self.max_event_time = Some(self.max_event_time.map_or(event_time, |m| m.max(event_time)));
        if late { Timing::Late } else { Timing::OnTime }
    }
}

/// What a partition's ingestion carries from message to message (checkpoints save it):
/// its event-time clock, its last announced mark, and whether it is catching up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestState {
    /// The largest event time counted (windowed topics).
    pub max_event_time: Option<i64>,
    /// The mark last announced.
    pub announced: Option<Mark>,
    /// The logical time the partition resumed at, while its records may still be late.
    pub catching_up: Option<Time>,
}

/// The ingestion state of one source partition.
#[derive(Clone, Debug)]
pub struct PartitionIngest {
    topic: Topic,
    partition: u32,
    clock: Option<EventClock>,
    announced: Option<Mark>,
    /// The logical time at which this partition resumed after idleness, while its
    /// records may still be late at the window (they carry their message meanwhile).
    catching_up: Option<Time>,
    /// A longer message is `too_large`.
    max_message_bytes: usize,
    /// Reading buffers kept from message to message.
    scratch: Scratch,
}

impl PartitionIngest {
    /// A partition of `topic`; windowed topics get an event-time clock.
    pub fn new(topic: Topic, partition: u32, delays: &Delays) -> Self {
        let delay = match topic {
            Topic::Timeline => Some(delays.class_performance_ms),
            Topic::Agora => Some(delays.av_quality_ms),
            _ => None,
        };
        PartitionIngest {
            topic,
            partition,
            clock: delay.map(|delay| EventClock { delay, max_future: delays.max_future_ms, max_event_time: None }),
            announced: None,
            catching_up: None,
            max_message_bytes: delays.max_message_bytes,
            scratch: Scratch::default(),
        }
    }

    /// Its state, for a checkpoint.
    pub fn state(&self) -> IngestState {
        IngestState {
            max_event_time: self.clock.as_ref().and_then(|c| c.max_event_time),
            announced: self.announced,
            catching_up: self.catching_up,
        }
    }

    /// Takes up a state saved by [`Self::state`].
    pub fn restore(&mut self, state: IngestState) {
        if let Some(clock) = self.clock.as_mut() {
            clock.max_event_time = state.max_event_time;
        }
        self.announced = state.announced;
        self.catching_up = state.catching_up;
    }

    /// The topic this partition belongs to.
    pub fn topic(&self) -> Topic {
        self.topic
    }

    /// The partition number.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The watermark as an [`Input`], if it changed since it was last announced
    /// (the first call always announces a windowed partition).
    pub fn watermark_update(&mut self) -> Option<Input> {
        let mark = self.clock.as_ref()?.watermark();
        self.announce(Mark::At(mark))
    }

    /// A partition that went idle (SPEC §3) stops holding the watermark back.
    pub fn went_idle(&mut self) -> Option<Input> {
        let mark = self.clock.as_ref()?.watermark();
        self.announce(Mark::Idle(mark))
    }

    /// An idle partition that receives records again, at logical time `at`, holds the
    /// watermark at `W_p` again. Until it has caught up with the windows that closed
    /// meanwhile, its window facts carry their messages.
    pub fn watermark_resumed(&mut self, at: Time) -> Option<Input> {
        self.announced = None;
        let mark = self.watermark_update();
        if mark.is_some() {
            self.catching_up = Some(at);
        }
        mark
    }

    /// Where a windowed record was read; with its message while the partition catches up.
    /// Call before the record moves the watermark.
    fn origin(&mut self, pos: Pos, raw: &[u8]) -> Origin {
        let Some(since) = self.catching_up else { return Origin::at(pos) };
        let watermark = self.clock.as_ref().map_or(i64::MIN, EventClock::watermark);
        match window::published(self.topic) {
            Some((processed, closed_upto)) if processed >= since && watermark >= closed_upto => {
                self.catching_up = None;
                Origin::at(pos)
            }
            _ => Origin { pos, raw: Some(raw.into()) },
        }
    }

    /// The end of a bounded partition: its watermark becomes +infinity.
    pub fn exhausted(&mut self) -> Option<Input> {
        self.clock.as_ref()?;
        self.announce(Mark::At(i64::MAX))
    }

    fn announce(&mut self, mark: Mark) -> Option<Input> {
        if self.announced == Some(mark) {
            return None;
        }
        self.announced = Some(mark);
        Some(Input::Watermark(self.topic, self.partition, mark))
    }

    /// Ingests the message at `offset`, appending what it contributes to `out`.
    pub fn ingest(&mut self, offset: u64, raw: &[u8], out: &mut Vec<Input>) {
        self.ingest_keyed(offset, None, raw, out)
    }

    /// Ingests the message at `offset` with its Kafka key (carried to the 2.1 output).
    pub fn ingest_keyed(&mut self, offset: u64, key: Option<&[u8]>, raw: &[u8], out: &mut Vec<Input>) {
        self.ingest_logged(offset, key, raw, None, out)
    }

    /// Ingests the message at `offset` with its Kafka key and its log time (the Kafka
    /// message timestamp, ms), against which event times are checked (SPEC §3 `future`).
    pub fn ingest_logged(
        &mut self,
        offset: u64,
        key: Option<&[u8]>,
        raw: &[u8],
        log_time: Option<i64>,
        out: &mut Vec<Input>,
    ) {
        let pos = Pos { partition: self.partition, offset };
        if raw.len() > self.max_message_bytes {
            let kept = raw[..TOO_LARGE_RAW_BYTES.min(raw.len())].to_vec();
            let reason = "too_large".to_string();
            out.push(Input::Dead(DeadLetter { source: self.topic, pos, metric: None, reason, raw: kept }));
            return;
        }
        let mut emit = Emit { out, source: self.topic, pos, raw };
        let parsed = match self.topic {
            // 2.1 drops a signal whose role, msgId or msgType is not its constant before it
            // looks at any text (`student_signal_etl::clean`), and 2.3 reads only what 2.1 keeps.
            Topic::Timeline => {
                Signal::parse_gated_with(raw, &mut self.scratch).map(|s| self.signal(&mut emit, key, log_time, s))
            }
            Topic::Channel => Channel::parse_with(raw, &mut self.scratch).map(|c| {
                emit.verdict(Metric::ChannelDim, channel_dim::row(&c).map(|row| Input::Channel(pos, Box::new(row))))
            }),
            Topic::Qos => Qos::parse_with(raw, &mut self.scratch).map(|q| {
                emit.verdict(
                    Metric::OfflineStudyTime,
                    offline_study_time::fact(&q).map(|f| f.map(|f| Input::Play(pos, f))),
                );
                emit.verdict(Metric::DailyUvPv, daily_uv_pv::recorded_visit(&q).map(|v| Input::Visit(Box::new(v))));
            }),
            Topic::Agora => Agora::parse_with(raw, &mut self.scratch).map(|a| self.agora(&mut emit, log_time, a)),
            Topic::Student => Student::parse_with(raw, &mut self.scratch).map(|s| {
                emit.verdict(Metric::HourlyRegistrationsByLevel, check_student(&s).map(|id| Input::Student(id, pos, s)))
            }),
            Topic::User => User::parse_with(raw, &mut self.scratch).map(|u| {
                emit.verdict(Metric::HourlyRegistrationsByLevel, check_user(&u).map(|id| Input::User(id, pos, u)))
            }),
            Topic::Order => Order::parse_with(raw, &mut self.scratch).map(|o| {
                let order = daily_cc_confirmations::check(&o)
                    .map(|id| Input::Order(OrderId::new(&id), pos, OrderState::of(&o)));
                emit.verdict(Metric::DailyCcConfirmations, order)
            }),
        };
        if let Err(reject) = parsed {
            emit.dead(None, reject_reason(reject));
        }
    }

    /// 2.1 and 2.3 from one signal.
    fn signal(&mut self, emit: &mut Emit<'_, '_>, key: Option<&[u8]>, log_time: Option<i64>, s: Signal) {
        let origin = self.origin(emit.pos, emit.raw);
        let timing = self.observe(s.timestamp.val().copied(), log_time);
        let visit = daily_uv_pv::live_visit(&s).map(|v| Input::Visit(Box::new(v)));
        match student_signal_etl::clean(s) {
            Err(r) => emit.reject(Metric::StudentSignalEtl, r),
            Ok(None) => {}
            Ok(Some(mut clean)) => {
                let minute = class_performance_1m::fact(&clean, timing)
                    .map(|(key, event_time)| Input::Minute(key, event_time, origin));
                match student_signal_etl::check_storable(&clean) {
                    Ok(()) => {
                        clean.key = key.map(<[u8]>::to_vec);
                        emit.input(Input::Signal(emit.pos, Box::new(clean)));
                    }
                    Err(r) => emit.reject(Metric::StudentSignalEtl, r),
                }
                emit.verdict(Metric::ClassPerformance1m, minute);
            }
        }
        emit.verdict(Metric::DailyUvPv, visit);
    }

    /// 2.5 from one quality sample.
    fn agora(&mut self, emit: &mut Emit<'_, '_>, log_time: Option<i64>, a: Agora) {
        let origin = self.origin(emit.pos, emit.raw);
        let timing = self.observe(a.message_create_time.val().copied(), log_time);
        match av_quality_30s::facts(&a, timing) {
            Err(r) => emit.reject(Metric::AvQuality30s, r),
            Ok((facts, event_time)) => {
                for (key, value) in facts.into_iter().flatten() {
                    emit.input(Input::Av(key, event_time, value, origin.clone()));
                }
            }
        }
    }

    fn observe(&mut self, event_time: Option<i64>, log_time: Option<i64>) -> Timing {
        match (self.clock.as_mut(), event_time) {
            (Some(clock), Some(t)) => clock.observe(t, log_time),
            _ => Timing::OnTime,
        }
    }
}

/// Where one message's contributions go: facts as they are, and a dead letter
/// (SPEC §4) for every metric that rejects the record, in the order given.
struct Emit<'o, 'r> {
    out: &'o mut Vec<Input>,
    source: Topic,
    pos: Pos,
    raw: &'r [u8],
}

impl Emit<'_, '_> {
    fn input(&mut self, input: Input) {
        self.out.push(input);
    }

    fn dead(&mut self, metric: Option<Metric>, reason: String) {
        let Emit { source, pos, raw, .. } = *self;
        self.out.push(Input::Dead(DeadLetter { source, pos, metric, reason, raw: raw.to_vec() }));
    }

    fn reject(&mut self, metric: Metric, rejection: Rejection) {
        self.dead(Some(metric), rejection.reason());
    }

    /// A metric's single verdict on the record: a fact, nothing, or a rejection.
    fn verdict(&mut self, metric: Metric, verdict: Result<impl Into<Option<Input>>, Rejection>) {
        match verdict {
            Ok(input) => self.out.extend(input.into()),
            Err(r) => self.reject(metric, r),
        }
    }
}

fn reject_reason(reject: Reject) -> String {
    reject.reason().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal_at(ts: i64) -> Vec<u8> {
        format!(r#"{{"data":{{"userid":"7","roomId":"9","timestamp":{ts},"role":"2","msgid":"305","msg":{{"msgtype":"116","msg_data":{{"target_type":"shape","action":"move"}}}}}}}}"#).into_bytes()
    }

    fn reasons(out: &[Input]) -> Vec<String> {
        out.iter().filter_map(|i| if let Input::Dead(d) = i { Some(d.reason.clone()) } else { None }).collect()
    }

    #[test]
    fn lateness_is_strictly_below_the_watermark() {
        let mut p = PartitionIngest::new(Topic::Timeline, 0, &Delays::default());
        let mut out = Vec::new();
        p.ingest(0, &signal_at(100_000), &mut out);
        // W_p = 100_000 - 5_000 = 95_000: exactly at W_p is not late, one ms below is.
        p.ingest(1, &signal_at(95_000), &mut out);
        assert_eq!(reasons(&out), Vec::<String>::new());
        p.ingest(2, &signal_at(94_999), &mut out);
        assert_eq!(reasons(&out), vec!["late".to_string()]);
        // The late record still flows through 2.1.
        assert_eq!(out.iter().filter(|i| matches!(i, Input::Signal(..))).count(), 3);
        assert_eq!(out.iter().filter(|i| matches!(i, Input::Minute(..))).count(), 2);
    }

    #[test]
    fn filtered_records_move_the_watermark() {
        let mut p = PartitionIngest::new(Topic::Timeline, 0, &Delays::default());
        let mut out = Vec::new();
        p.ingest(0, br#"{"data":{"userid":"8","timestamp":200000,"role":"1"}}"#, &mut out);
        assert!(
            matches!(out.as_slice(), [Input::Visit(v)] if v.role == daily_uv_pv::Role::Teacher),
            "2.8 only: {out:?}"
        );
        assert_eq!(p.watermark_update(), Some(Input::Watermark(Topic::Timeline, 0, Mark::At(195_000))));
        assert_eq!(p.watermark_update(), None);
        p.ingest(1, &signal_at(100_000), &mut out);
        assert_eq!(reasons(&out), vec!["late".to_string()]);
    }

    /// The messages carried by the 2.3 facts in `out`, in order (`None`: position only).
    fn carried(out: &[Input]) -> Vec<Option<Vec<u8>>> {
        out.iter()
            .filter_map(
                |i| if let Input::Minute(_, _, o) = i { Some(o.raw.as_deref().map(<[u8]>::to_vec)) } else { None },
            )
            .collect()
    }

    #[test]
    fn a_resumed_partition_carries_messages_until_the_windows_show_it_caught_up() {
        // This test thread's "window operator" is played by `publish`.
        window::publish(Topic::Timeline, None);
        let mut p = PartitionIngest::new(Topic::Timeline, 0, &Delays::default());
        let mut out = Vec::new();
        p.ingest(0, &signal_at(100_000), &mut out);
        assert!(p.went_idle().is_some());
        assert_eq!(carried(&out), vec![None], "a partition that never idled carries nothing");

        // Resumed at logical time 3 with W_p = 95 s, while windows closed up to 200 s meanwhile.
        assert_eq!(p.watermark_resumed(3), Some(Input::Watermark(Topic::Timeline, 0, Mark::At(95_000))));
        let mut out = Vec::new();
        p.ingest(1, &signal_at(100_500), &mut out); // nothing published yet
        window::publish(Topic::Timeline, Some((2, 200_000)));
        p.ingest(2, &signal_at(101_000), &mut out); // published, but before the resume time
        window::publish(Topic::Timeline, Some((3, 200_000)));
        p.ingest(3, &signal_at(206_000), &mut out); // W_p (95.5 s) still below 200 s
        p.ingest(4, &signal_at(207_000), &mut out); // W_p = 201 s >= 200 s: caught up
        window::publish(Topic::Timeline, Some((4, 300_000)));
        p.ingest(5, &signal_at(207_500), &mut out); // stays caught up
        let raw = |ts| Some(signal_at(ts));
        assert_eq!(carried(&out), vec![raw(100_500), raw(101_000), raw(206_000), None, None]);

        // Idle and resumed again: carrying starts over.
        p.went_idle();
        p.watermark_resumed(9);
        p.ingest(6, &signal_at(208_000), &mut out);
        assert_eq!(carried(&out).last(), Some(&raw(208_000)));
        window::publish(Topic::Timeline, None);
    }

    fn agora_at(ts: i64) -> Vec<u8> {
        format!(r#"{{"user_type":"student","event":"e","agora_audioState":{{"lost":1}},"messageCreateTime":{ts}}}"#)
            .into_bytes()
    }

    #[test]
    fn a_message_over_the_limit_is_too_large_with_its_first_4_kib() {
        let delays = Delays { max_message_bytes: 5000, ..Delays::default() };
        let mut p = PartitionIngest::new(Topic::Agora, 2, &delays);
        let mut out = Vec::new();
        let mut big = agora_at(1_000);
        big.resize(5001, b' '); // valid JSON, one byte over
        p.ingest(0, &big, &mut out);
        let Some(Input::Dead(d)) = out.first() else { panic!("{out:?}") };
        assert_eq!((out.len(), d.metric, d.reason.as_str(), &d.raw[..]), (1, None, "too_large", &big[..4096]));
        assert_eq!(p.watermark_update(), Some(Input::Watermark(Topic::Agora, 2, Mark::At(i64::MIN))), "not counted");
        big.truncate(5000); // at the limit: read
        let mut out = Vec::new();
        p.ingest(1, &big, &mut out);
        assert!(matches!(out.as_slice(), [Input::Av(..)]), "{out:?}");
    }

    #[test]
    fn a_record_too_far_ahead_of_its_log_time_is_future_and_keeps_the_watermark() {
        let mut p = PartitionIngest::new(Topic::Timeline, 0, &Delays::default());
        let (log, mut out) = (1_000_000, Vec::new());
        p.ingest_logged(0, None, &signal_at(log + 600_000), Some(log), &mut out); // exactly max_future ahead
        p.ingest_logged(1, None, &signal_at(log + 600_001), Some(log), &mut out); // one ms more: future

        // A teacher: 2.3 would not count it, so it is no `future` dead letter (2.8, with no
        // window, counts it on its own day).
        p.ingest_logged(2, None, br#"{"data":{"userid":"8","timestamp":99000000000,"role":"1"}}"#, Some(log), &mut out);
        assert_eq!(reasons(&out), vec!["future".to_string()]);
        assert_eq!(p.watermark_update(), Some(Input::Watermark(Topic::Timeline, 0, Mark::At(log + 595_000))));
        // Still flows through 2.1 (which has no event time), like a late record.
        assert_eq!(out.iter().filter(|i| matches!(i, Input::Signal(..))).count(), 2);
        p.ingest_logged(3, None, &signal_at(log + 595_000), Some(log), &mut out);
        p.ingest(4, &signal_at(log + 700_000), &mut out); // no log time: no check
        assert_eq!(reasons(&out), vec!["future".to_string()]);

        let mut p = PartitionIngest::new(Topic::Agora, 0, &Delays { max_future_ms: 0, ..Delays::default() });
        let mut out = Vec::new();
        p.ingest_logged(0, None, &agora_at(5), Some(4), &mut out);
        p.ingest_logged(1, None, &agora_at(4), Some(4), &mut out);
        p.ingest_logged(2, None, &agora_at(i64::MAX), Some(i64::MAX), &mut out); // bad field before timing
        assert_eq!(reasons(&out), vec!["future".to_string(), "bad_field:messageCreateTime".to_string()]);
    }

    #[test]
    fn event_times_without_a_storable_window_are_bad_fields_and_keep_the_watermark() {
        let mut p = PartitionIngest::new(Topic::Timeline, 0, &Delays::default());
        let mut out = Vec::new();
        for (offset, ts) in [(0, 100_000), (1, i64::MAX), (2, i64::MIN), (3, -30_610_224_000_001), (4, 96_000)] {
            p.ingest(offset, &signal_at(ts), &mut out);
        }
        // Each of the three: a bad field of 2.3 (no storable window) and of 2.8 (no storable day).
        let dead: Vec<(Option<Metric>, String)> = out
            .iter()
            .filter_map(|i| if let Input::Dead(d) = i { Some((d.metric, d.reason.clone())) } else { None })
            .collect();
        let pair = [
            (Some(Metric::ClassPerformance1m), "bad_field:timestamp".to_string()),
            (Some(Metric::DailyUvPv), "bad_field:timestamp".to_string()),
        ];
        assert_eq!(dead, [pair.clone(), pair.clone(), pair].concat());
        assert_eq!(p.watermark_update(), Some(Input::Watermark(Topic::Timeline, 0, Mark::At(95_000))));
    }

    #[test]
    fn a_signal_text_with_nul_is_a_dead_letter_of_2_1_and_still_counts_in_2_3() {
        let mut p = PartitionIngest::new(Topic::Timeline, 0, &Delays::default());
        let mut out = Vec::new();
        let raw = String::from_utf8(signal_at(100_000))
            .unwrap()
            .replace(r#""action":"move""#, r#""action":"move","page_index":"1\u0000""#);
        p.ingest(0, raw.as_bytes(), &mut out);
        assert_eq!(reasons(&out), vec!["bad_field:pageIndex".to_string()]);
        assert!(matches!(out.as_slice(), [Input::Dead(_), Input::Minute(..), Input::Visit(_)]), "{out:?}");
    }

    #[test]
    fn garbage_reasons() {
        let mut p = PartitionIngest::new(Topic::Qos, 3, &Delays::default());
        let mut out = Vec::new();
        for raw in [&b"{\"user_id\": 1"[..], b"[1]", b"", b"\xff\xfe", b"{\"user_id\": \"abc\"}"] {
            p.ingest(0, raw, &mut out);
        }
        // The last: 2.4 names its user, 2.8 its time first.
        let want = ["not_json", "not_object", "not_json", "not_json", "bad_field:user_id", "bad_field:event_time"];
        assert_eq!(reasons(&out), want);
        assert_eq!(p.watermark_update(), None);
    }
}
