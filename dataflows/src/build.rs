//! Wires the ingested input into all nine metrics.

use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::operate::FrontierInterest;

use crate::av_quality_30s::{self, AvKey, AvRow};
use crate::channel_dim::{self, ChannelRow};
use crate::class_performance_1m::{self, MinuteKey, MinuteRow};
use crate::daily_cc_confirmations::{self, OrderId, OrderState, StaffIndexRow};
use crate::daily_uv_pv::{self, UvPvRow, Visit};
use crate::hourly_registrations_by_level::{self, RegistrationRow};
use crate::ingest::Input;
use crate::offline_study_time::{self, PlayFact, StudyRow};
use crate::ops::Inserts;
use crate::ops::window::{Mark, WindowFact};
use crate::student_signal_etl::{self, SignalRow};
use crate::top_teachers_daily::{self, TopTeacherRow};
use crate::topics::{Student, User};
use crate::{DeadLetter, Diff, OutputRow, Pos, Text, Time, Topic};

/// Every metric's collection, plus the dead letters.
pub struct Outputs<'s> {
    /// 2.1 `timeline_analysis_student`.
    pub student_signal_etl: VecCollection<'s, Time, SignalRow, Diff>,
    /// 2.2 `channel_name_dictionary`.
    pub channel_dim: VecCollection<'s, Time, ChannelRow, Diff>,
    /// 2.3 `timeline_signal_analysis`.
    pub class_performance_1m: VecCollection<'s, Time, MinuteRow, Diff>,
    /// 2.4 `user_enter_classroom_take_time`.
    pub offline_study_time: VecCollection<'s, Time, StudyRow, Diff>,
    /// 2.5 `user_av_record`.
    pub av_quality_30s: VecCollection<'s, Time, AvRow, Diff>,
    /// 2.6 `registrations_hourly_level`.
    pub hourly_registrations_by_level: VecCollection<'s, Time, RegistrationRow, Diff>,
    /// 2.7 `staff_index`.
    pub daily_cc_confirmations: VecCollection<'s, Time, StaffIndexRow, Diff>,
    /// 2.8 `daily_uv_pv`.
    pub daily_uv_pv: VecCollection<'s, Time, UvPvRow, Diff>,
    /// 2.9 `top_teachers_daily`.
    pub top_teachers_daily: VecCollection<'s, Time, TopTeacherRow, Diff>,
    /// `dead_letters`.
    pub dead_letters: VecCollection<'s, Time, DeadLetter, Diff>,
}

impl<'s> Outputs<'s> {
    /// All outputs as one collection of rows.
    pub fn rows(self) -> VecCollection<'s, Time, OutputRow, Diff> {
        self.student_signal_etl
            .map(OutputRow::Signal)
            .concat(self.channel_dim.map(|c| OutputRow::Channel(Box::new(c))))
            .concat(self.class_performance_1m.map(OutputRow::Minute))
            .concat(self.offline_study_time.map(OutputRow::Study))
            .concat(self.av_quality_30s.map(OutputRow::Av))
            .concat(self.hourly_registrations_by_level.map(OutputRow::Registration))
            .concat(self.daily_cc_confirmations.map(OutputRow::Staff))
            .concat(self.daily_uv_pv.map(OutputRow::UvPv))
            .concat(self.top_teachers_daily.map(OutputRow::TopTeacher))
            .concat(self.dead_letters.map(OutputRow::Dead))
    }
}

/// The ingested input, split by kind into one stream per consumer.
struct Split<'s> {
    signals: StreamVec<'s, Time, SignalRow>,
    minutes: StreamVec<'s, Time, WindowFact<MinuteKey, ()>>,
    channels: StreamVec<'s, Time, (Pos, ChannelRow)>,
    plays: StreamVec<'s, Time, (Pos, PlayFact)>,
    av: StreamVec<'s, Time, WindowFact<AvKey, i64>>,
    students: StreamVec<'s, Time, (Text, Pos, Student)>,
    users: StreamVec<'s, Time, (Text, Pos, User)>,
    orders: StreamVec<'s, Time, (OrderId, Pos, OrderState)>,
    visits: StreamVec<'s, Time, Visit>,
    dead: StreamVec<'s, Time, DeadLetter>,
    timeline_marks: StreamVec<'s, Time, (u32, Mark)>,
    agora_marks: StreamVec<'s, Time, (u32, Mark)>,
}

/// Splits the input by kind in one pass, moving each record once into its
/// typed output (timely's `partition` followed by a `flat_map` per kind would
/// copy every record twice and sort it through a map).
fn split(inputs: StreamVec<'_, Time, Input>) -> Split<'_> {
    let mut builder = OperatorBuilder::new("SplitInput".to_owned(), inputs.scope());
    let mut input = builder.new_input(inputs, Pipeline);
    builder.set_notify_for(0, FrontierInterest::Never);
    let (mut signals, signal_stream) = typed_output(&mut builder);
    let (mut minutes, minute_stream) = typed_output(&mut builder);
    let (mut channels, channel_stream) = typed_output(&mut builder);
    let (mut plays, play_stream) = typed_output(&mut builder);
    let (mut av, av_stream) = typed_output(&mut builder);
    let (mut students, student_stream) = typed_output(&mut builder);
    let (mut users, user_stream) = typed_output(&mut builder);
    let (mut orders, order_stream) = typed_output(&mut builder);
    let (mut visits, visit_stream) = typed_output(&mut builder);
    let (mut dead, dead_stream) = typed_output(&mut builder);
    let (mut timeline_marks, timeline_mark_stream) = typed_output(&mut builder);
    let (mut agora_marks, agora_mark_stream) = typed_output(&mut builder);
    builder.build(move |_| {
        move |_frontiers| {
            let (mut signals, mut minutes, mut channels, mut plays) =
                (signals.activate(), minutes.activate(), channels.activate(), plays.activate());
            let (mut av, mut students, mut users, mut orders) =
                (av.activate(), students.activate(), users.activate(), orders.activate());
            let (mut visits, mut dead, mut timeline_marks, mut agora_marks) =
                (visits.activate(), dead.activate(), timeline_marks.activate(), agora_marks.activate());
            input.for_each_stamp(|cap, data| {
                let (mut signals, mut minutes, mut channels, mut plays) =
                    (signals.session(&cap), minutes.session(&cap), channels.session(&cap), plays.session(&cap));
                let (mut av, mut students, mut users, mut orders) =
                    (av.session(&cap), students.session(&cap), users.session(&cap), orders.session(&cap));
                let (mut visits, mut dead, mut timeline_marks, mut agora_marks) =
                    (visits.session(&cap), dead.session(&cap), timeline_marks.session(&cap), agora_marks.session(&cap));
                for input in data.flat_map(|batch| batch.drain(..)) {
                    match input {
                        Input::Signal(pos, clean) => signals.give((pos, clean)),
                        Input::Minute(key, event_time, origin) => {
                            minutes.give(WindowFact { key, event_time, value: (), origin })
                        }
                        Input::Channel(pos, row) => channels.give((pos, *row)),
                        Input::Play(pos, fact) => plays.give((pos, fact)),
                        Input::Av(key, event_time, value, origin) => {
                            av.give(WindowFact { key, event_time, value, origin })
                        }
                        Input::Student(id, pos, s) => students.give((id, pos, s)),
                        Input::User(id, pos, u) => users.give((id, pos, u)),
                        Input::Order(id, pos, o) => orders.give((id, pos, o)),
                        Input::Visit(v) => visits.give(*v),
                        Input::Dead(d) => dead.give(d),
                        Input::Watermark(Topic::Timeline, partition, mark) => timeline_marks.give((partition, mark)),
                        Input::Watermark(_, partition, mark) => agora_marks.give((partition, mark)),
                    }
                }
            });
        }
    });
    Split {
        signals: signal_stream,
        minutes: minute_stream,
        channels: channel_stream,
        plays: play_stream,
        av: av_stream,
        students: student_stream,
        users: user_stream,
        orders: order_stream,
        visits: visit_stream,
        dead: dead_stream,
        timeline_marks: timeline_mark_stream,
        agora_marks: agora_mark_stream,
    }
}

/// One more output of `builder`, for records of type `D` in vectors.
type TypedOutput<D> = OutputBuilder<Time, CapacityContainerBuilder<Vec<D>>>;

fn typed_output<'s, D: Clone + 'static>(
    builder: &mut OperatorBuilder<'s, Time>,
) -> (TypedOutput<D>, StreamVec<'s, Time, D>) {
    let (output, stream) = builder.new_output();
    (OutputBuilder::from(output), stream)
}

/// Builds all nine metrics over the ingested input of every source, with 2.9's default
/// `top_n` ([`build_with`] sets it).
///
/// ```
/// use timely::dataflow::operators::ToStream;
/// use timely::dataflow::operators::capture::{Capture, Extract};
/// use dataflows::ingest::{Delays, PartitionIngest};
/// use dataflows::{build, OutputRow, Topic};
///
/// let captured = timely::example(|scope| {
///     let mut users = PartitionIngest::new(Topic::User, 0, &Delays::default());
///     let mut inputs = Vec::new();
///     users.ingest(0, br#"{"id": "1", "name": "Ann"}"#, &mut inputs);
///     users.ingest(1, b"not json", &mut inputs);
///     build(inputs.to_stream(scope)).rows().inner.capture()
/// });
/// let rows: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).collect();
/// assert!(matches!(&rows[..], [(OutputRow::Dead(d), 0, 1)] if d.reason == "not_json"));
/// ```
pub fn build<'s>(inputs: StreamVec<'s, Time, Input>) -> Outputs<'s> {
    build_with(inputs, top_teachers_daily::DEFAULT_TOP_N)
}

/// [`build`] keeping the `top_n` most followed teachers per day in 2.9.
pub fn build_with<'s>(inputs: StreamVec<'s, Time, Input>, top_n: usize) -> Outputs<'s> {
    let Split {
        signals,
        minutes,
        channels,
        plays,
        av,
        students,
        users,
        orders,
        visits,
        dead,
        timeline_marks,
        agora_marks,
    } = split(inputs);
    let channel_dim = channel_dim::dataflow(channels);
    let (class_performance_1m, late_signals) = class_performance_1m::dataflow(minutes, timeline_marks);
    let (av_quality_30s, late_samples) = av_quality_30s::dataflow(av, agora_marks);
    Outputs {
        student_signal_etl: student_signal_etl::dataflow(signals),
        class_performance_1m,
        offline_study_time: offline_study_time::dataflow(plays),
        av_quality_30s,
        hourly_registrations_by_level: hourly_registrations_by_level::dataflow(
            students,
            users,
            channel_dim::levels(channel_dim.clone()),
        ),
        daily_cc_confirmations: daily_cc_confirmations::dataflow(orders),
        daily_uv_pv: daily_uv_pv::dataflow(visits.clone()),
        top_teachers_daily: top_teachers_daily::dataflow(visits, top_n),
        channel_dim,
        dead_letters: dead.inserts().concat(late_signals).concat(late_samples),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use timely::dataflow::InputHandle;
    use timely::dataflow::operators::Input as _;
    use timely::dataflow::operators::capture::{Capture, Extract};

    use super::*;
    use crate::ingest::{Delays, PartitionIngest};
    use crate::{Metric, Pos};

    fn signal_at(ts: i64) -> Vec<u8> {
        format!(r#"{{"data":{{"userid":"7","roomId":"9","timestamp":{ts},"role":"2","msgid":"305","msg":{{"msgtype":"116","msg_data":{{"target_type":"shape","action":"move"}}}}}}}}"#).into_bytes()
    }

    /// Runs `build` over `batches[t]` at logical time `t`; returns every output update.
    fn run(batches: Vec<Vec<Input>>) -> Vec<(OutputRow, Time, Diff)> {
        let (send, recv) = mpsc::channel();
        timely::execute_directly(move |worker| {
            let mut input = InputHandle::<Time, CapacityContainerBuilder<Vec<Input>>>::new();
            worker.dataflow::<Time, _, _>(|scope| build(scope.input_from(&mut input)).rows().inner.capture_into(send));
            for (time, batch) in batches.into_iter().enumerate() {
                input.advance_to(time as Time);
                for record in batch {
                    input.send(record);
                }
            }
        });
        recv.extract().into_iter().flat_map(|(_, updates)| updates).collect()
    }

    #[test]
    fn when_every_partition_is_idle_windows_close_up_to_the_most_advanced_one() {
        let (mut p0, mut p1) = (
            PartitionIngest::new(Topic::Timeline, 0, &Delays::default()),
            PartitionIngest::new(Topic::Timeline, 1, &Delays::default()),
        );
        // Time 0: p0 reads 100 s, p1 reads 300 s, then both go idle: the watermark is the larger
        // W_p (295 s), so minute [60 s, 120 s) closes and [300 s, 360 s) stays open.
        let mut first = Vec::new();
        p0.ingest(0, &signal_at(100_000), &mut first);
        p1.ingest(0, &signal_at(300_000), &mut first);
        first.extend(p0.went_idle());
        first.extend(p1.went_idle());
        // Time 1: p0 resumes (W_p = 95 s) with a signal at 100.5 s: not late for its partition,
        // but its minute was already written. p1 resumes at 300.5 s: its minute is still open.
        let mut second = Vec::new();
        second.extend(p0.watermark_resumed(1));
        p0.ingest(1, &signal_at(100_500), &mut second);
        second.extend(p1.watermark_resumed(1));
        p1.ingest(1, &signal_at(300_500), &mut second);
        // Time 2: p1 is exhausted, p0 reads 400 s: minute 300 s closes (with both of p1's signals).
        let mut third = Vec::new();
        p0.ingest(2, &signal_at(400_000), &mut third);
        third.extend(p0.watermark_update());
        third.extend(p1.exhausted());
        let out = run(vec![first, second, third]);

        let minutes: Vec<_> =
            out.iter()
                .filter_map(|(r, t, d)| {
                    if let OutputRow::Minute(m) = r { Some((m.start_time, m.event_count, *t, *d)) } else { None }
                })
                .collect();
        assert_eq!(
            minutes,
            vec![(60_000, 1, 0, 1), (300_000, 2, 2, 1)],
            "each minute written once, when it closed, and not changed"
        );
        let dead: Vec<_> = out
            .iter()
            .filter_map(|(r, t, d)| if let OutputRow::Dead(x) = r { Some((x.clone(), *t, *d)) } else { None })
            .collect();
        let expected = DeadLetter {
            source: Topic::Timeline,
            pos: Pos { partition: 0, offset: 1 },
            metric: Some(Metric::ClassPerformance1m),
            reason: "late".to_string(),
            raw: signal_at(100_500),
        };
        assert_eq!(dead, vec![(expected, 1, 1)]);
        assert_eq!(
            out.iter().filter(|(r, _, _)| matches!(r, OutputRow::Signal(_))).count(),
            5,
            "2.1 keeps every signal"
        );
    }

    /// With the window operator running between the source's logical times (as in a job),
    /// a resumed partition's late record keeps its message, and once the partition has
    /// caught up its records carry positions only.
    #[test]
    fn a_resumed_partition_carries_messages_only_until_it_caught_up_with_the_windows() {
        use timely::dataflow::operators::Probe;
        let (send, recv) = mpsc::channel();
        let sent = timely::execute_directly(move |worker| {
            let mut input = InputHandle::<Time, CapacityContainerBuilder<Vec<Input>>>::new();
            let probe = worker.dataflow::<Time, _, _>(|scope| {
                let rows = build(scope.input_from(&mut input)).rows().inner;
                rows.clone().capture_into(send);
                rows.probe().0
            });
            let (mut p0, mut p1) = (
                PartitionIngest::new(Topic::Timeline, 0, &Delays::default()),
                PartitionIngest::new(Topic::Timeline, 1, &Delays::default()),
            );
            let mut sent = Vec::new();
            for time in 0..4u64 {
                let mut batch = Vec::new();
                match time {
                    // p0 reads 100 s and goes idle; p1 runs ahead to 300 s: minutes up to 295 s close.
                    0 => {
                        p0.ingest(0, &signal_at(100_000), &mut batch);
                        batch.extend(p0.went_idle());
                        p1.ingest(0, &signal_at(300_000), &mut batch);
                        batch.extend(p1.watermark_update());
                    }
                    // p0 resumes (W_p = 95 s): 100.5 s is not late for it, but its minute was written.
                    1 => {
                        batch.extend(p0.watermark_resumed(1));
                        p0.ingest(1, &signal_at(100_500), &mut batch);
                        batch.extend(p0.watermark_update());
                    }
                    // p0 jumps to 400 s (W_p becomes 395 s), then has caught up with the 295 s.
                    _ => {
                        p0.ingest(time, &signal_at(400_000 + time as i64), &mut batch);
                        batch.extend(p0.watermark_update());
                    }
                }
                sent.extend(batch.iter().filter_map(|i| {
                    if let Input::Minute(_, _, o) = i { Some((o.pos.offset, o.raw.is_some())) } else { None }
                }));
                for record in batch {
                    input.send(record);
                }
                input.advance_to(time + 1);
                worker.step_while(|| probe.less_than(&(time + 1)));
            }
            sent
        });
        assert_eq!(
            sent,
            vec![(0, false), (0, false), (1, true), (2, true), (3, false)],
            "(offset, carries its message) of each 2.3 fact"
        );
        let out: Vec<_> = recv.extract().into_iter().flat_map(|(_, updates)| updates).collect();
        let dead: Vec<_> = out
            .iter()
            .filter_map(
                |(r, t, d)| if let OutputRow::Dead(x) = r { Some((x.pos, x.raw.clone(), *t, *d)) } else { None },
            )
            .collect();
        assert_eq!(dead, vec![(Pos { partition: 0, offset: 1 }, signal_at(100_500), 1, 1)]);
    }

    #[test]
    fn a_late_sample_feeding_two_windows_is_one_dead_letter() {
        let sample = |ts: i64| {
            format!(r#"{{"user_type":"student","event":"e","agora_audioState":{{"lost":1,"uid":3}},"agora_videoState":{{"fr":2,"uid":4}},"messageCreateTime":{ts}}}"#).into_bytes()
        };
        let (mut p0, mut p1) = (
            PartitionIngest::new(Topic::Agora, 0, &Delays::default()),
            PartitionIngest::new(Topic::Agora, 1, &Delays::default()),
        );
        // Time 0: p0 at 100 s goes idle; p1 at 200 s (W_p = 140 s) closes [90 s, 120 s).
        let mut first = Vec::new();
        p0.ingest(0, &sample(100_000), &mut first);
        first.extend(p0.went_idle());
        p1.ingest(0, &sample(200_000), &mut first);
        first.extend(p1.watermark_update());
        // Time 1: p0 resumes (W_p = 40 s) with a sample at 95 s, for both closed windows.
        let mut second = Vec::new();
        second.extend(p0.watermark_resumed(1));
        p0.ingest(1, &sample(95_000), &mut second);
        let out = run(vec![first, second]);
        let av = out.iter().filter(|(r, _, _)| matches!(r, OutputRow::Av(_))).count();
        assert_eq!(av, 2, "audio and video windows of the first sample");
        let dead: Vec<_> = out
            .iter()
            .filter_map(|(r, t, d)| {
                if let OutputRow::Dead(x) = r {
                    Some((x.pos.offset, x.metric, x.reason.clone(), x.raw.clone(), *t, *d))
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(dead, vec![(1, Some(Metric::AvQuality30s), "late".to_string(), sample(95_000), 1, 1)]);
    }
}
