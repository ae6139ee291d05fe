//! edu-rtdw dataflows: the nine metrics of SPEC §2 as differential collections.
//!
//! One module per metric holds both the per-record extraction (what a record
//! contributes, or why it is a dead letter) and the dataflow that maintains the
//! metric. Sources call [`ingest::PartitionIngest`] for every message of a
//! partition, in offset order; [`build`] wires the resulting stream of
//! [`ingest::Input`] into all nine metrics and returns their collections.
//!
//! Logical time ([`Time`]) is a deterministic function of input positions (see
//! the connectors' sources), so a replay of the same input produces the same
//! updates at the same times, whatever the number of workers.

pub mod durable;
pub mod ingest;
pub mod json;
pub mod ops;
pub mod output;
pub mod serve;
pub mod storable;
pub mod timefmt;
pub mod topics;

pub mod av_quality_30s;
pub mod channel_dim;
pub mod class_performance_1m;
pub mod daily_cc_confirmations;
pub mod daily_uv_pv;
pub mod hourly_registrations_by_level;
pub mod offline_study_time;
pub mod student_signal_etl;
pub mod top_teachers_daily;

mod build;
pub use build::{Outputs, build, build_with};
pub use output::{Metric, OutputRow};

use serde::{Deserialize, Serialize};

pub use topics::Topic;

/// Text values of records and rows: short strings (ids, enum-like values,
/// timestamps) are stored inline, without a heap allocation.
pub type Text = compact_str::CompactString;

/// Logical time of the dataflow: a deterministic function of input offsets.
pub type Time = u64;
/// Multiplicity of an update.
pub type Diff = isize;

/// A message's place in its topic: partition and offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pos {
    /// Partition number within the topic.
    pub partition: u32,
    /// Offset within the partition (line number in file replay).
    pub offset: u64,
}

/// A rejected input record (SPEC §4): one per record and metric that rejects it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Source topic.
    pub source: Topic,
    /// Where the record was read.
    pub pos: Pos,
    /// The metric that rejected it; `None` when no metric could read it (`not_json`, `not_object`).
    pub metric: Option<Metric>,
    /// `not_json`, `not_object`, `bad_field:<name>`, `late`, `future` or `too_large`.
    pub reason: String,
    /// The message value as read.
    pub raw: Vec<u8>,
}

/// Why one metric does not count a record it would otherwise count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A field the metric needs is NULL where required, or unreadable as its type.
    BadField(&'static str),
    /// The record's event time is behind its partition's watermark (SPEC §3).
    Late,
    /// The record's event time is too far ahead of its log time (SPEC §3, clock poison).
    Future,
}

impl Rejection {
    /// The dead-letter reason text.
    pub fn reason(self) -> String {
        match self {
            Rejection::BadField(name) => format!("bad_field:{name}"),
            Rejection::Late => "late".to_string(),
            Rejection::Future => "future".to_string(),
        }
    }
}

/// How a record's event time stood against its partition's clock when it was read
/// (SPEC §3): what a windowed metric that would count the record does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// At or past the watermark, and not too far ahead of its log time: counted.
    OnTime,
    /// Behind the watermark: a `late` dead letter.
    Late,
    /// More than `max_future` ahead of its log time: a `future` dead letter.
    Future,
}

impl Timing {
    /// `Ok` for a record on time, else why it is not counted.
    pub fn check(self) -> Result<(), Rejection> {
        match self {
            Timing::OnTime => Ok(()),
            Timing::Late => Err(Rejection::Late),
            Timing::Future => Err(Rejection::Future),
        }
    }
}

impl From<&'static str> for Rejection {
    fn from(field: &'static str) -> Self {
        Rejection::BadField(field)
    }
}
