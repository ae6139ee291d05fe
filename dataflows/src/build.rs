//! Wires the ingested input into all seven metrics.

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::{Map, Partition};
use timely::dataflow::StreamVec;

use crate::av_quality_30s::{self, AvRow};
use crate::channel_dim::{self, ChannelRow};
use crate::class_performance_1m::{self, MinuteRow};
use crate::daily_cc_confirmations::{self, StaffIndexRow};
use crate::hourly_registrations_by_level::{self, RegistrationRow};
use crate::ingest::Input;
use crate::offline_study_time::{self, StudyRow};
use crate::ops::inserts;
use crate::student_signal_etl::{self, SignalRow};
use crate::{DeadLetter, Diff, Time, Topic};

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

/// Where each kind of input goes, as a partition index.
fn route(input: &Input) -> u64 {
    match input {
        Input::Signal(..) => 0,
        Input::Minute(..) => 1,
        Input::Channel(..) => 2,
        Input::Play(..) => 3,
        Input::Av(..) => 4,
        Input::Student(..) => 5,
        Input::User(..) => 6,
        Input::Order(..) => 7,
        Input::Dead(..) => 8,
        Input::Watermark(Topic::Timeline, ..) => 9,
        Input::Watermark(..) => 10,
    }
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
    let mut parts = inputs.partition(11, |input| (route(&input), input)).into_iter();
    let mut next = move || parts.next().expect("eleven partitions");
    let signals = next().flat_map(|i| if let Input::Signal(p, c) = i { Some((p, c)) } else { None });
    let minutes = next().flat_map(|i| if let Input::Minute(k, t) = i { Some((k, t, ())) } else { None });
    let channels = next().flat_map(|i| if let Input::Channel(p, r) = i { Some((p, r)) } else { None });
    let plays = next().flat_map(|i| if let Input::Play(p, f) = i { Some((p, f)) } else { None });
    let av = next().flat_map(|i| if let Input::Av(k, t, v) = i { Some((k, t, v)) } else { None });
    let students = next().flat_map(|i| if let Input::Student(id, p, s) = i { Some((id, p, s)) } else { None });
    let users = next().flat_map(|i| if let Input::User(id, p, u) = i { Some((id, p, u)) } else { None });
    let orders = next().flat_map(|i| if let Input::Order(id, p, o) = i { Some((id, p, o)) } else { None });
    let dead = next().flat_map(|i| if let Input::Dead(d) = i { Some(d) } else { None });
    let timeline_marks = next().flat_map(|i| if let Input::Watermark(_, p, w) = i { Some((p, w)) } else { None });
    let agora_marks = next().flat_map(|i| if let Input::Watermark(_, p, w) = i { Some((p, w)) } else { None });

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
