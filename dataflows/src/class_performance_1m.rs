//! 2.3 `class_performance_1m` — live-class performance per minute (seed: 场景二).
//!
//! Over the cleaned signals of 2.1: tumbling 1-minute windows on the event time
//! `messageTimeStamp` (`data.timestamp`), grouped by
//! `(userId BIGINT, roomId BIGINT as webserver_id, role TINYINT, event)`,
//! `event_count = COUNT(*)`. A window is written once, when final (SPEC §3:
//! every partition's watermark, `max event time − delay`, is at or past its
//! end); rows are only ever inserted.
//!
//! Dead letters, for this metric only (the record still flows through 2.1):
//! `userId`, `roomId` or `role` missing or not an integer (`role` must fit a
//! TINYINT), or a missing `timestamp` or one whose minute does not lie in the
//! years 1000–9999 (`bad_field:<name>`, [`crate::storable`]); a record behind its
//! partition's watermark when read (`late`), or too far ahead of its log time
//! (`future`).

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::Text;
use crate::ops::window::{Count, Mark, Window, WindowFact, storable_window};
use crate::ops::{SplitLate, Tumbling};
use crate::output::{ColumnType::*, Row, SqlValue, StampKind, Table};
use crate::student_signal_etl::{CleanSignal, ROLE, SignalEvent};
use crate::{DeadLetter, Diff, Metric, Rejection, Time, Timing, Topic};

/// Window width: one minute.
pub const WIDTH_MS: i64 = 60_000;
/// Default watermark delay (SPEC §3).
pub const DEFAULT_DELAY_MS: i64 = 5_000;

/// The grouping key of a window row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MinuteKey {
    /// `roomId` as BIGINT.
    pub webserver_id: i64,
    /// `userId` as BIGINT.
    pub user_id: i64,
    /// `role` as TINYINT.
    pub role: i8,
    /// The 2.1 rule.
    pub event: SignalEvent,
}

/// One row of `timeline_signal_analysis` (`end_time = start_time + 1 min`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MinuteRow {
    /// Window start, ms since the epoch (UTC).
    pub start_time: i64,
    /// The group.
    pub key: MinuteKey,
    /// `COUNT(*)`.
    pub event_count: i64,
}

impl MinuteRow {
    /// Window end, ms since the epoch (UTC).
    pub fn end_time(&self) -> i64 {
        self.start_time + WIDTH_MS
    }
}

/// [`ROLE`] as a number.
const ROLE_NUMBER: i8 = match i8::from_str_radix(ROLE, 10) {
    Ok(role) => role,
    Err(_) => panic!("2.1's ROLE is a number"),
};

fn integer(text: Option<&Text>, name: &'static str) -> Result<i64, Rejection> {
    text.and_then(|t| crate::json::parse_int(t)).ok_or(Rejection::BadField(name))
}

/// What a cleaned signal contributes: its group and event time.
///
/// `timing` is the source partition's verdict (SPEC §3); it is checked after the
/// fields, so a late record with a bad field reports the field.
pub fn fact(signal: &CleanSignal, timing: Timing) -> Result<(MinuteKey, i64), Rejection> {
    let user_id = integer(signal.user_id.as_ref(), "userId")?;
    let webserver_id = integer(signal.room_id.as_ref(), "roomId")?;
    let role = match signal.role.as_deref() {
        // What 2.1 keeps (`clean` sets it): no need to parse it again.
        Some(ROLE) => ROLE_NUMBER,
        _ => i8::try_from(integer(signal.role.as_ref(), "role")?).map_err(|_| Rejection::BadField("role"))?,
    };
    let event_time = signal.message_time_stamp.ok_or(Rejection::BadField("timestamp"))?;
    storable_window(event_time, WIDTH_MS).ok_or(Rejection::BadField("timestamp"))?;
    timing.check()?;
    Ok((MinuteKey { webserver_id, user_id, role, event: signal.event }, event_time))
}

/// Final per-minute counts, given the signals' facts and their topic's partition
/// watermarks; and a `late` dead letter for each signal that arrived, from a
/// partition that had been idle, after its minute had been written. The seed's query:
///
/// ```sql
/// SELECT TUMBLE_START(time_stamp, INTERVAL '1' MINUTE) AS start_time,
///        webserverId AS webserver_id, userId AS user_id, role, event, COUNT(event) AS event_count
/// FROM timeline_analysis_student_mashup_stream
/// GROUP BY TUMBLE(time_stamp, INTERVAL '1' MINUTE), userId, webserverId, role, event
/// ```
pub fn dataflow<'s>(
    facts: StreamVec<'s, Time, WindowFact<MinuteKey, ()>>,
    watermarks: StreamVec<'s, Time, (u32, Mark)>,
) -> (VecCollection<'s, Time, MinuteRow, Diff>, VecCollection<'s, Time, DeadLetter, Diff>) {
    let (minutes, late) = facts
        .tumbling::<Count>(watermarks, WIDTH_MS, Topic::Timeline, "ClassPerformance1m")
        .split_late(Topic::Timeline, Metric::ClassPerformance1m);
    let rows =
        minutes.map(|Window { start, key, aggregate }| MinuteRow { start_time: start, key, event_count: aggregate });
    (rows, late)
}

/// 2.3 `timeline_signal_analysis`.
impl Row for MinuteRow {
    const TABLE: Table = Table {
        name: "timeline_signal_analysis",
        columns: &[
            ("start_time", Timestamp),
            ("end_time", Timestamp),
            ("webserver_id", BigInt),
            ("user_id", BigInt),
            ("role", TinyInt),
            ("event", Text),
            ("event_count", BigInt),
        ],
        key: &[0, 2, 3, 4, 5],
        stamp: Some(("create_time", StampKind::Timestamp)),
    };

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Millis(self.start_time),
            SqlValue::Millis(self.end_time()),
            SqlValue::Int(self.key.webserver_id),
            SqlValue::Int(self.key.user_id),
            SqlValue::Int(i64::from(self.key.role)),
            SqlValue::Text(self.key.event.name().into()),
            SqlValue::Int(self.event_count),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_role_as_a_number() {
        assert_eq!(ROLE.parse::<i8>(), Ok(ROLE_NUMBER));
    }
}
