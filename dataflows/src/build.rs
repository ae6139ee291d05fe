//! Wires the ingested input into all seven metrics.

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::progress::operate::FrontierInterest;
use timely::dataflow::StreamVec;

use crate::av_quality_30s::{self, AvKey, AvRow};
use crate::channel_dim::{self, ChannelRow};
use crate::class_performance_1m::{self, MinuteKey, MinuteRow};
use crate::daily_cc_confirmations::{self, OrderId, OrderState, StaffIndexRow};
use crate::hourly_registrations_by_level::{self, RegistrationRow};
use crate::ingest::Input;
use crate::offline_study_time::{self, PlayFact, StudyRow};
use crate::ops::inserts;
use crate::student_signal_etl::{self, SignalRow};
use crate::topics::{Student, User};
use crate::{DeadLetter, Diff, Pos, Text, Time, Topic};

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
    /// `dead_letters`.
    pub dead_letters: VecCollection<'s, Time, DeadLetter, Diff>,
}

/// A row of any output table, for sinks that take them all.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OutputRow {
    /// 2.1.
    Signal(SignalRow),
    /// 2.2.
    Channel(ChannelRow),
    /// 2.3.
    Minute(MinuteRow),
    /// 2.4.
    Study(StudyRow),
    /// 2.5.
    Av(AvRow),
    /// 2.6.
    Registration(RegistrationRow),
    /// 2.7.
    Staff(StaffIndexRow),
    /// A dead letter.
    Dead(DeadLetter),
}

impl<'s> Outputs<'s> {
    /// All outputs as one collection of rows.
    pub fn rows(self) -> VecCollection<'s, Time, OutputRow, Diff> {
        self.student_signal_etl
            .map(OutputRow::Signal)
            .concat(self.channel_dim.map(OutputRow::Channel))
            .concat(self.class_performance_1m.map(OutputRow::Minute))
            .concat(self.offline_study_time.map(OutputRow::Study))
            .concat(self.av_quality_30s.map(OutputRow::Av))
            .concat(self.hourly_registrations_by_level.map(OutputRow::Registration))
            .concat(self.daily_cc_confirmations.map(OutputRow::Staff))
            .concat(self.dead_letters.map(OutputRow::Dead))
    }
}

/// The ingested input, split by kind into one stream per consumer.
struct Split<'s> {
    signals: StreamVec<'s, Time, SignalRow>,
    minutes: StreamVec<'s, Time, (MinuteKey, i64, ())>,
    channels: StreamVec<'s, Time, (Pos, ChannelRow)>,
    plays: StreamVec<'s, Time, (Pos, PlayFact)>,
    av: StreamVec<'s, Time, (AvKey, i64, i64)>,
    students: StreamVec<'s, Time, (Text, Pos, Student)>,
    users: StreamVec<'s, Time, (Text, Pos, User)>,
    orders: StreamVec<'s, Time, (OrderId, Pos, OrderState)>,
    dead: StreamVec<'s, Time, DeadLetter>,
    timeline_marks: StreamVec<'s, Time, (u32, i64)>,
    agora_marks: StreamVec<'s, Time, (u32, i64)>,
}

/// Splits the input by kind in one pass, moving each record once into its
/// typed output (timely's `partition` followed by a `flat_map` per kind would
/// copy every record twice and sort it through a map).
fn split(inputs: StreamVec<'_, Time, Input>) -> Split<'_> {
    let mut builder = OperatorBuilder::new("SplitInput".to_owned(), inputs.scope());
    let mut input = builder.new_input(inputs, Pipeline);
    builder.set_notify_for(0, FrontierInterest::Never);
    macro_rules! outputs {
        ($($name:ident),*) => {
            $( let ($name, stream) = builder.new_output(); let $name = OutputBuilder::<_, CapacityContainerBuilder<Vec<_>>>::from($name); let $name = ($name, stream); )*
        };
    }
    outputs!(signals, minutes, channels, plays, av, students, users, orders, dead, timeline_marks, agora_marks);
    let streams = Split {
        signals: signals.1, minutes: minutes.1, channels: channels.1, plays: plays.1, av: av.1, students: students.1,
        users: users.1, orders: orders.1, dead: dead.1, timeline_marks: timeline_marks.1, agora_marks: agora_marks.1,
    };
    let (mut o_signals, mut o_minutes, mut o_channels, mut o_plays, mut o_av, mut o_students) = (signals.0, minutes.0, channels.0, plays.0, av.0, students.0);
    let (mut o_users, mut o_orders, mut o_dead, mut o_timeline, mut o_agora) = (users.0, orders.0, dead.0, timeline_marks.0, agora_marks.0);
    builder.build(move |_| {
        move |_frontiers| {
            let (mut h_signals, mut h_minutes, mut h_channels, mut h_plays) = (o_signals.activate(), o_minutes.activate(), o_channels.activate(), o_plays.activate());
            let (mut h_av, mut h_students, mut h_users, mut h_orders) = (o_av.activate(), o_students.activate(), o_users.activate(), o_orders.activate());
            let (mut h_dead, mut h_timeline, mut h_agora) = (o_dead.activate(), o_timeline.activate(), o_agora.activate());
            input.for_each_stamp(|cap, data| {
                let (mut signals, mut minutes, mut channels, mut plays) = (h_signals.session(&cap), h_minutes.session(&cap), h_channels.session(&cap), h_plays.session(&cap));
                let (mut av, mut students, mut users, mut orders) = (h_av.session(&cap), h_students.session(&cap), h_users.session(&cap), h_orders.session(&cap));
                let (mut dead, mut timeline, mut agora) = (h_dead.session(&cap), h_timeline.session(&cap), h_agora.session(&cap));
                for input in data.flat_map(|batch| batch.drain(..)) {
                    match input {
                        Input::Signal(pos, clean) => signals.give((pos, clean)),
                        Input::Minute(key, time) => minutes.give((key, time, ())),
                        Input::Channel(pos, row) => channels.give((pos, row)),
                        Input::Play(pos, fact) => plays.give((pos, fact)),
                        Input::Av(key, time, value) => av.give((key, time, value)),
                        Input::Student(id, pos, s) => students.give((id, pos, s)),
                        Input::User(id, pos, u) => users.give((id, pos, u)),
                        Input::Order(id, pos, o) => orders.give((id, pos, o)),
                        Input::Dead(d) => dead.give(d),
                        Input::Watermark(Topic::Timeline, partition, mark) => timeline.give((partition, mark)),
                        Input::Watermark(_, partition, mark) => agora.give((partition, mark)),
                    }
                }
            });
        }
    });
    streams
}

/// Builds all seven metrics over the ingested input of every source.
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
    let Split { signals, minutes, channels, plays, av, students, users, orders, dead, timeline_marks, agora_marks } = split(inputs);
    let channel_dim = channel_dim::dataflow(channels);
    Outputs {
        student_signal_etl: student_signal_etl::dataflow(signals),
        class_performance_1m: class_performance_1m::dataflow(minutes, timeline_marks),
        offline_study_time: offline_study_time::dataflow(plays),
        av_quality_30s: av_quality_30s::dataflow(av, agora_marks),
        hourly_registrations_by_level: hourly_registrations_by_level::dataflow(students, users, channel_dim::levels(channel_dim.clone())),
        daily_cc_confirmations: daily_cc_confirmations::dataflow(orders),
        channel_dim,
        dead_letters: inserts(dead),
    }
}
