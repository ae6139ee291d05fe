//! The output tables of SPEC §2 and §4, described once for every SQL sink.
//!
//! A [`Table`] lists its columns with portable types and which of them form the
//! primary key; [`encode`] turns an [`OutputRow`] into its table and column
//! values (in the same order). The `stamp` column of a table (`create_time`,
//! `update_time` or `timeStamp`) is not part of the row: sinks fill it with the
//! wall-clock time of the write, so the collections themselves stay
//! deterministic.

use dataflows::timefmt::millis_text;
use dataflows::{DeadLetter, OutputRow};

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
}

use ColumnType::*;

/// 2.1 `timeline_analysis_student`, keyed by source position.
pub const SIGNALS: Table = Table {
    name: "timeline_analysis_student",
    columns: &[
        ("src_partition", BigInt),
        ("src_offset", BigInt),
        ("messageCreateTime", Text),
        ("messageTimeStamp", BigInt),
        ("userId", Text),
        ("roomId", Text),
        ("role", Text),
        ("msgId", Text),
        ("msgType", Text),
        ("targetId", Text),
        ("targetType", Text),
        ("action", Text),
        ("subAction", Text),
        ("pageIndex", Text),
        ("event", Text),
    ],
    key: &[0, 1],
    stamp: Some(("timeStamp", StampKind::Millis)),
};

/// 2.2 `channel_name_dictionary`.
pub const CHANNELS: Table = Table {
    name: "channel_name_dictionary",
    columns: &[
        ("rowkey", Text),
        ("id", Text),
        ("chinese_name", Text),
        ("english_name", Text),
        ("level", Text),
        ("pid", Text),
        ("create_time", Text),
        ("update_time", Text),
        ("dept_id", Text),
    ],
    key: &[0],
    stamp: None,
};

/// 2.3 `timeline_signal_analysis`.
pub const MINUTES: Table = Table {
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

/// 2.4 `user_enter_classroom_take_time`.
pub const STUDY: Table = Table {
    name: "user_enter_classroom_take_time",
    columns: &[
        ("user_id", BigInt),
        ("classroom_id", Text),
        ("user_type", Text),
        ("spend_time", BigInt),
        ("event_time", Timestamp),
        ("success_time", BigInt),
    ],
    key: &[0, 1, 5],
    stamp: Some(("create_time", StampKind::Timestamp)),
};

/// 2.5 `user_av_record`.
pub const AV: Table = Table {
    name: "user_av_record",
    columns: &[
        ("start_time", Timestamp),
        ("end_time", Timestamp),
        ("user_id", BigInt),
        ("web_server_id", BigInt),
        ("classroom_id", Text),
        ("user_type", Text),
        ("extra_uid", BigInt),
        ("event", Text),
        ("event_sum", BigInt),
        ("event_avg", Double),
        ("event_count", BigInt),
    ],
    key: &[0, 1, 2, 3, 4, 5, 6, 7],
    stamp: Some(("create_time", StampKind::Timestamp)),
};

/// 2.6 `registrations_hourly_level`.
pub const REGISTRATIONS: Table = Table {
    name: "registrations_hourly_level",
    columns: &[("uk", Text), ("reg_date", BigInt), ("level", Text), ("leads", BigInt)],
    key: &[0],
    stamp: None,
};

/// 2.7 `staff_index`.
pub const STAFF: Table = Table {
    name: "staff_index",
    columns: &[("cc_id", BigInt), ("cc_index", BigInt), ("type", Int), ("attribution_time", Text)],
    key: &[0, 2, 3],
    stamp: Some(("update_time", StampKind::Timestamp)),
};

/// SPEC §4 `dead_letters`.
pub const DEAD_LETTERS: Table = Table {
    name: "dead_letters",
    columns: &[
        ("source", Text),
        ("partition", BigInt),
        ("offset", BigInt),
        ("metric", Text),
        ("reason", Text),
        ("raw", Bytes),
    ],
    key: &[0, 1, 2, 3],
    stamp: Some(("create_time", StampKind::Timestamp)),
};

/// Every output table, in SPEC order; [`encode`] returns indices into this.
pub const ALL: [Table; 8] = [SIGNALS, CHANNELS, MINUTES, STUDY, AV, REGISTRATIONS, STAFF, DEAD_LETTERS];

fn text(v: &Option<dataflows::Text>) -> SqlValue {
    v.as_ref().map_or(SqlValue::Null, |s| SqlValue::Text(s.to_string()))
}

fn int(v: Option<i64>) -> SqlValue {
    v.map_or(SqlValue::Null, SqlValue::Int)
}

/// The metric name written in `dead_letters.metric`; `*` when no metric could read the record.
pub fn dead_letter_metric(d: &DeadLetter) -> &'static str {
    d.metric.map_or("*", |m| m.name())
}

/// A row's table, as an index into [`ALL`].
pub fn table_index(row: &OutputRow) -> usize {
    match row {
        OutputRow::Signal(_) => 0,
        OutputRow::Channel(_) => 1,
        OutputRow::Minute(_) => 2,
        OutputRow::Study(_) => 3,
        OutputRow::Av(_) => 4,
        OutputRow::Registration(_) => 5,
        OutputRow::Staff(_) => 6,
        OutputRow::Dead(_) => 7,
    }
}

/// A row's table (index into [`ALL`]) and its column values in table order.
pub fn encode(row: &OutputRow) -> (usize, Vec<SqlValue>) {
    use SqlValue::{Double as D, Int as I, Millis as M, Text as T};
    match row {
        OutputRow::Signal((pos, s)) => (
            0,
            vec![
                I(i64::from(pos.partition)),
                I(pos.offset as i64),
                text(&s.message_create_time),
                int(s.message_time_stamp),
                text(&s.user_id),
                text(&s.room_id),
                text(&s.role),
                text(&s.msg_id),
                text(&s.msg_type),
                text(&s.target_id),
                text(&s.target_type),
                text(&s.action),
                text(&s.sub_action),
                text(&s.page_index),
                T(s.event.name().into()),
            ],
        ),
        OutputRow::Channel(c) => (
            1,
            vec![
                T(c.rowkey.to_string()),
                T(c.id.to_string()),
                text(&c.chinese_name),
                text(&c.english_name),
                text(&c.level),
                text(&c.pid),
                text(&c.create_time),
                text(&c.update_time),
                text(&c.dept_id),
            ],
        ),
        OutputRow::Minute(m) => (
            2,
            vec![
                M(m.start_time),
                M(m.end_time()),
                I(m.key.webserver_id),
                I(m.key.user_id),
                I(i64::from(m.key.role)),
                T(m.key.event.name().into()),
                I(m.event_count),
            ],
        ),
        OutputRow::Study(s) => (
            3,
            vec![
                I(s.user_id),
                T(s.classroom_id.to_string()),
                text(&s.user_type),
                I(s.spend_time),
                s.event_time.map_or(SqlValue::Null, M),
                I(s.success_time),
            ],
        ),
        OutputRow::Av(a) => (
            4,
            vec![
                M(a.start_time),
                M(a.end_time()),
                I(a.key.user_id),
                I(a.key.web_server_id),
                T(a.key.classroom_id.to_string()),
                T(a.key.user_type.to_string()),
                I(a.key.extra_uid),
                T(a.key.event.to_string()),
                I(a.event_sum),
                D(a.event_avg()),
                I(a.event_count),
            ],
        ),
        OutputRow::Registration(r) => (5, vec![T(r.uk()), I(r.reg_date), T(r.level.to_string()), I(r.leads)]),
        OutputRow::Staff(s) => (6, vec![I(s.cc_id), I(s.cc_index), I(1), T(s.attribution_time.to_string())]),
        OutputRow::Dead(d) => (
            7,
            vec![
                T(d.source.default_name().into()),
                I(i64::from(d.pos.partition)),
                I(d.pos.offset as i64),
                T(dead_letter_metric(d).into()),
                T(d.reason.to_string()),
                SqlValue::Bytes(d.raw.clone()),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_point_at_columns() {
        for table in ALL {
            assert!(table.key.iter().all(|&k| k < table.columns.len()), "{}", table.name);
        }
    }
}
