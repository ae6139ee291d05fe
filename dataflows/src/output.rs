//! The outputs: the nine metric tables of SPEC §2 and the dead letters of §4.
//!
//! [`Output`] names each output once (its CLI/snapshot name, its table); every
//! row type declares its table beside its metric by implementing [`Row`]: the
//! table name, the columns (name and portable [`ColumnType`]) in order, the
//! primary key, the wall-clock stamp column, and the values of a row in that
//! same order. Every encoder (SQLite, MySQL, PostgreSQL, the Kafka JSON
//! values, snapshots and `query`) reads these declarations and nothing else,
//! so a column is written down in one place.
//!
//! The stamp column of a table (`create_time`, `update_time` or `timeStamp`)
//! is not part of the row: sinks fill it with the wall-clock time of the
//! write, so the collections themselves stay deterministic.
//!
//! ```
//! use dataflows::output::{Output, OutputSet};
//!
//! assert_eq!(Output::from_name("staff_index"), Some(Output::DailyCcConfirmations));
//! assert_eq!(Output::DailyCcConfirmations.table().name, "staff_index");
//! let mut set = OutputSet::default();
//! set.insert(Output::DeadLetters);
//! assert!(set.contains(Output::DeadLetters) && !set.contains(Output::ChannelDim));
//! ```

use serde::{Deserialize, Serialize};

use crate::DeadLetter;
use crate::timefmt::millis_text;
use crate::{av_quality_30s, channel_dim, class_performance_1m, daily_cc_confirmations, daily_uv_pv};
use crate::{hourly_registrations_by_level, offline_study_time, student_signal_etl, top_teachers_daily};

/// A column's portable type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (VARCHAR).
    Text,
    /// 64-bit integer.
    BigInt,
    /// 32-bit integer.
    Int,
    /// 8-bit integer.
    TinyInt,
    /// IEEE double.
    Double,
    /// A UTC timestamp with milliseconds.
    Timestamp,
    /// Bytes (possibly invalid UTF-8).
    Bytes,
}

/// How a table's stamp column is filled at write time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StampKind {
    /// A timestamp column (`create_time`, `update_time`).
    Timestamp,
    /// Milliseconds since the epoch as BIGINT (`timeStamp`).
    Millis,
}

/// An output table.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// The table name.
    pub name: &'static str,
    /// Data columns, in order: name and type.
    pub columns: &'static [(&'static str, ColumnType)],
    /// Indices into `columns` of the primary key.
    pub key: &'static [usize],
    /// The wall-clock column, if any.
    pub stamp: Option<(&'static str, StampKind)>,
}

/// A value bound to a statement parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Text.
    Text(String),
    /// A timestamp, ms since the epoch (UTC).
    Millis(i64),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl SqlValue {
    /// Text for SQL sinks that store timestamps as text (SQLite).
    pub fn timestamp_text(ms: i64) -> String {
        millis_text(ms)
    }

    /// A nullable text value.
    pub fn text(v: &Option<crate::Text>) -> SqlValue {
        v.as_ref().map_or(SqlValue::Null, |s| SqlValue::Text(s.to_string()))
    }

    /// A nullable integer value.
    pub fn int(v: Option<i64>) -> SqlValue {
        v.map_or(SqlValue::Null, SqlValue::Int)
    }
}

/// A row type of one output: its table, and its values in the table's column order.
pub trait Row {
    /// The table its rows go to.
    const TABLE: Table;

    /// The row's values, one per column of [`Row::TABLE`], in order.
    fn values(&self) -> Vec<SqlValue>;
}

/// The registry of outputs: one line per metric (its `Metric` and `Output` variant, its
/// name, its `OutputRow` variant and row type); the dead letters come last. It defines
/// [`Metric`], [`Output`] and [`OutputRow`] with everything that maps between them, so a
/// new metric is one line here beside its own module (and its wiring in `build.rs`).
macro_rules! registry {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal => $row_variant:ident($row:ty), )*) => {
        /// The metrics of SPEC §2, by their CLI names.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Metric {
            $( $(#[$doc])* $variant, )*
        }

        impl Metric {
            /// Every metric in SPEC order.
            pub const ALL: [Metric; [$(Metric::$variant),*].len()] = [$(Metric::$variant),*];

            /// The metric's name as used by the CLI, config, snapshots and tests.
            pub fn name(self) -> &'static str {
                match self { $( Metric::$variant => $name, )* }
            }

            /// The metric called `name`.
            pub fn from_name(name: &str) -> Option<Metric> {
                Metric::ALL.into_iter().find(|m| m.name() == name)
            }
        }

        /// The outputs: every metric's table, then the dead letters (SPEC §4).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Output {
            $( $(#[$doc])* $variant, )*
            /// SPEC §4 `dead_letters`.
            DeadLetters,
        }

        impl Output {
            /// Every output, in SPEC order.
            pub const ALL: [Output; Metric::ALL.len() + 1] = [$(Output::$variant,)* Output::DeadLetters];

            /// The metric it is, if it is one.
            pub fn metric(self) -> Option<Metric> {
                match self { $( Output::$variant => Some(Metric::$variant), )* Output::DeadLetters => None }
            }

            /// The output of `metric`.
            pub fn of(metric: Metric) -> Output {
                match metric { $( Metric::$variant => Output::$variant, )* }
            }

            /// Its table.
            pub const fn table(self) -> &'static Table {
                match self {
                    $( Output::$variant => &<$row as Row>::TABLE, )*
                    Output::DeadLetters => &<DeadLetter as Row>::TABLE,
                }
            }
        }

        /// A row of any output, for sinks that take them all.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum OutputRow {
            $( $(#[$doc])* $row_variant($row), )*
            /// A dead letter.
            Dead(DeadLetter),
        }

        impl OutputRow {
            /// The output this row belongs to.
            pub fn output(&self) -> Output {
                match self {
                    $( OutputRow::$row_variant(_) => Output::$variant, )*
                    OutputRow::Dead(_) => Output::DeadLetters,
                }
            }

            /// Its values, in its table's column order.
            pub fn values(&self) -> Vec<SqlValue> {
                match self { $( OutputRow::$row_variant(r) => r.values(), )* OutputRow::Dead(r) => r.values() }
            }
        }
    };
}

registry! {
    /// 2.1 classroom signal cleaning (`timeline_analysis_student`).
    StudentSignalEtl = "student_signal_etl" => Signal(student_signal_etl::SignalRow),
    /// 2.2 channel level dictionary (`channel_name_dictionary`).
    ChannelDim = "channel_dim" => Channel(Box<channel_dim::ChannelRow>),
    /// 2.3 live-class performance per minute (`timeline_signal_analysis`).
    ClassPerformance1m = "class_performance_1m" => Minute(class_performance_1m::MinuteRow),
    /// 2.4 recorded-course study time (`user_enter_classroom_take_time`).
    OfflineStudyTime = "offline_study_time" => Study(offline_study_time::StudyRow),
    /// 2.5 live audio/video quality per 30 s (`user_av_record`).
    AvQuality30s = "av_quality_30s" => Av(av_quality_30s::AvRow),
    /// 2.6 registrations per hour and level (`registrations_hourly_level`).
    HourlyRegistrationsByLevel = "hourly_registrations_by_level" => Registration(hourly_registrations_by_level::RegistrationRow),
    /// 2.7 daily course-consultant follow-ups (`staff_index`).
    DailyCcConfirmations = "daily_cc_confirmations" => Staff(daily_cc_confirmations::StaffIndexRow),
    /// 2.8 daily unique users and page views (`daily_uv_pv`).
    DailyUvPv = "daily_uv_pv" => UvPv(daily_uv_pv::UvPvRow),
    /// 2.9 the day's most followed live teachers (`top_teachers_daily`).
    TopTeachersDaily = "top_teachers_daily" => TopTeacher(top_teachers_daily::TopTeacherRow),
}

impl Output {
    /// Its name in the CLI, config, snapshots and queries: the metric name, or `dead_letters`.
    pub fn name(self) -> &'static str {
        self.metric().map_or("dead_letters", Metric::name)
    }

    /// The output called `name`: its output name or its table name.
    pub fn from_name(name: &str) -> Option<Output> {
        Output::ALL.into_iter().find(|o| o.name() == name || o.table().name == name)
    }

    /// Its place in [`Output::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A boxed row is stored like the row.
impl<R: Row> Row for Box<R> {
    const TABLE: Table = R::TABLE;

    fn values(&self) -> Vec<SqlValue> {
        (**self).values()
    }
}

/// A set of outputs (which tables a sink receives).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputSet(u16);

impl OutputSet {
    /// Every output.
    pub fn all() -> Self {
        OutputSet((1 << Output::ALL.len()) - 1)
    }

    /// Adds `output`.
    pub fn insert(&mut self, output: Output) {
        self.0 |= 1 << output.index();
    }

    /// Whether `output` is in the set.
    pub fn contains(self, output: Output) -> bool {
        self.0 & (1 << output.index()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Its outputs, in SPEC order.
    pub fn iter(self) -> impl Iterator<Item = Output> {
        Output::ALL.into_iter().filter(move |o| self.contains(*o))
    }
}

impl FromIterator<Output> for OutputSet {
    fn from_iter<I: IntoIterator<Item = Output>>(outputs: I) -> Self {
        let mut set = OutputSet::default();
        outputs.into_iter().for_each(|o| set.insert(o));
        set
    }
}

/// The metric name written in `dead_letters.metric`; `*` when no metric could read the record.
pub fn dead_letter_metric(d: &DeadLetter) -> &'static str {
    d.metric.map_or("*", |m| m.name())
}

impl Row for DeadLetter {
    const TABLE: Table = Table {
        name: "dead_letters",
        columns: &[
            ("source", ColumnType::Text),
            ("partition", ColumnType::BigInt),
            ("offset", ColumnType::BigInt),
            ("metric", ColumnType::Text),
            ("reason", ColumnType::Text),
            ("raw", ColumnType::Bytes),
        ],
        key: &[0, 1, 2, 3],
        stamp: Some(("create_time", StampKind::Timestamp)),
    };

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(self.source.default_name().into()),
            SqlValue::Int(i64::from(self.pos.partition)),
            SqlValue::Int(self.pos.offset as i64),
            SqlValue::Text(dead_letter_metric(self).into()),
            SqlValue::Text(self.reason.to_string()),
            SqlValue::Bytes(self.raw.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_point_at_columns_and_names_are_unique() {
        for output in Output::ALL {
            let table = output.table();
            assert!(table.key.iter().all(|&k| k < table.columns.len()), "{}", table.name);
            assert_eq!(Output::from_name(output.name()), Some(output));
            assert_eq!(Output::from_name(table.name), Some(output));
        }
        assert_eq!(Output::from_name("nope"), None);
    }

    #[test]
    fn sets_hold_what_was_inserted() {
        let set: OutputSet = [Output::ChannelDim, Output::DeadLetters].into_iter().collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Output::ChannelDim, Output::DeadLetters]);
        assert_eq!(OutputSet::all().iter().count(), 10);
        assert!(OutputSet::default().is_empty());
    }
}
