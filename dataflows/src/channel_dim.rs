//! 2.2 `channel_dim` — channel level dictionary (seed: 学生注册考试等级日志 ETL).
//!
//! Per channel `id`, the latest record (last in offset order) replaces the
//! previous one as a whole, and is served as `channel_name_dictionary` keyed by
//! `rowkey = lower-case hex MD5 of id`. The same collection is the channel
//! dimension of 2.6 (through [`levels`]).
//!
//! Dead letters: a record without `id` cannot be keyed (`bad_field:id`); a
//! field that is present but not text (an object or array), or a text that a sink
//! cannot store ([`crate::storable::text`]: a NUL, or over 64 KiB), rejects the
//! record (`bad_field:<name>`).

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;

use crate::Text;
use crate::json::Field;
use crate::ops::FoldByKey;
use crate::output::{ColumnType::*, Row, SqlValue, Table};
use crate::storable::checked_text;
use crate::topics::Channel;
use crate::{Diff, Pos, Rejection, Time};

/// One row of `channel_name_dictionary`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChannelRow {
    /// MD5 of `id`, lower-case hex (primary key).
    pub rowkey: Text,
    /// The channel id.
    pub id: Text,
    /// The latest record's other columns, in table order:
    /// `chinese_name, english_name, level, pid, create_time, update_time, dept_id`.
    pub chinese_name: Option<Text>,
    /// See `chinese_name`.
    pub english_name: Option<Text>,
    /// The channel's level (`A`–`D` matter to 2.6).
    pub level: Option<Text>,
    /// See `chinese_name`.
    pub pid: Option<Text>,
    /// See `chinese_name`.
    pub create_time: Option<Text>,
    /// See `chinese_name`.
    pub update_time: Option<Text>,
    /// See `chinese_name`.
    pub dept_id: Option<Text>,
}

/// The lower-case hex MD5 of a text (the dictionary's rowkey).
///
/// ```
/// assert_eq!(dataflows::channel_dim::rowkey("c1"), "a9f7e97965d6cf799a529102a973b8b9");
/// ```
pub fn rowkey(id: &str) -> String {
    // Hex by hand: `format!("{:x}")` went through the formatting machinery (~4.7k instructions
    // a call; 2.6 computes one per student record).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = md5::compute(id.as_bytes());
    let mut hex = String::with_capacity(32);
    for byte in digest.0 {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

/// Reads one dictionary record into its row.
pub fn row(c: &Channel) -> Result<ChannelRow, Rejection> {
    let id = c.id.require("id")?;
    checked_text(Some(id), "id")?;
    let text = |field: &Field<Text>, name| -> Result<Option<Text>, Rejection> {
        let value = field.read(name)?;
        checked_text(value, name)?;
        Ok(value.cloned())
    };
    Ok(ChannelRow {
        rowkey: Text::from(rowkey(id)),
        id: id.clone(),
        chinese_name: text(&c.chinese_name, "chinese_name")?,
        english_name: text(&c.english_name, "english_name")?,
        level: text(&c.level, "level")?,
        pid: text(&c.pid, "pid")?,
        create_time: text(&c.create_time, "create_time")?,
        update_time: text(&c.update_time, "update_time")?,
        dept_id: text(&c.dept_id, "dept_id")?,
    })
}

/// The dictionary: the latest row per rowkey (the seed's `SELECT MD5(id) AS rowkey, id, ..
/// FROM blink_stg_activity__channel_name_dictionary_da`, upserted by rowkey).
pub fn dataflow<'s>(rows: StreamVec<'s, Time, (Pos, ChannelRow)>) -> VecCollection<'s, Time, ChannelRow, Diff> {
    use timely::dataflow::operators::vec::Map;
    rows.map(|(pos, row)| (row.rowkey.clone(), pos, row))
        .fold_by_key("ChannelLatest", |latest, later| *latest = later)
        .map(|(_, row)| row)
}

/// The dimension as 2.6 joins it: `(rowkey, level)`.
pub fn levels<'s>(
    dictionary: VecCollection<'s, Time, ChannelRow, Diff>,
) -> VecCollection<'s, Time, (Text, Option<Text>), Diff> {
    dictionary.map(|row| (row.rowkey, row.level))
}

/// 2.2 `channel_name_dictionary`.
impl Row for ChannelRow {
    const TABLE: Table = Table {
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

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(self.rowkey.to_string()),
            SqlValue::Text(self.id.to_string()),
            SqlValue::text(&self.chinese_name),
            SqlValue::text(&self.english_name),
            SqlValue::text(&self.level),
            SqlValue::text(&self.pid),
            SqlValue::text(&self.create_time),
            SqlValue::text(&self.update_time),
            SqlValue::text(&self.dept_id),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_rowkey_and_missing_id() {
        let c = Channel::parse(br#"{"id": 17, "level": "A"}"#).unwrap();
        let r = row(&c).unwrap();
        assert_eq!(r.id, "17");
        assert_eq!(r.rowkey, "70efdf2ec9b086079795c442636b55fb");
        assert_eq!(row(&Channel::parse(br#"{"level": "A"}"#).unwrap()), Err(Rejection::BadField("id")));
        assert_eq!(row(&Channel::parse(br#"{"id": "1", "pid": [1]}"#).unwrap()), Err(Rejection::BadField("pid")));
    }

    #[test]
    fn texts_a_sink_cannot_store_are_bad_fields() {
        let read = |raw: &[u8]| row(&Channel::parse(raw).unwrap());
        assert_eq!(read(br#"{"id": "1\u0000"}"#), Err(Rejection::BadField("id")));
        assert_eq!(read(br#"{"id": "1", "dept_id": "a\u0000b"}"#), Err(Rejection::BadField("dept_id")));
        let long = format!(r#"{{"id": "1", "chinese_name": "{}"}}"#, "x".repeat(65_536));
        assert_eq!(read(long.as_bytes()), Err(Rejection::BadField("chinese_name")));
        assert!(read(br#"{"id": "1", "chinese_name": "\u4e00"}"#).is_ok());
    }
}
