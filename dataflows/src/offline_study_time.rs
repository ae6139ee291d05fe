//! 2.4 `offline_study_time` — recorded-course study time (seed: 学生离线课程学习时长).
//!
//! For each `qos_log` record `b` with `sub_event='PPT_SUCCESS'`, let `a` be the
//! record of the same `(user_id, classroom_id)` with the smallest
//! `extra.data_time` (any sub_event; ties broken by the smaller `event_time`,
//! then `user_type`, NULL first). If `a.data_time < b.data_time`, one row:
//! `spend_time = b.data_time − a.data_time`, `event_time = a.event_time`,
//! `user_type = a.user_type`, `success_time = b.data_time`, keyed by
//! `(user_id, classroom_id, success_time)`.
//!
//! The first play per key is a [`FoldByKey::fold_by_key`] minimum, so an earlier play that
//! arrives late replaces it and every row of that key is updated (retracted and
//! re-inserted), never duplicated. Successes are deduplicated by key and
//! `success_time`, so two successes at the same instant give one row (the log
//! is append-only, so [`DistinctInserts::distinct_inserts`] does this with a hash set instead of
//! an arrangement). State is one play per key plus the distinct successes,
//! which are the output rows.
//!
//! Records with a NULL `user_id`, `classroom_id` or `extra.data_time` never
//! match and are filtered out. Dead letters (`bad_field:<name>`): any of the
//! fields read present but unreadable; an `extra.data_time` beyond ±[`MAX_DATA_TIME`],
//! so that `spend_time`, a difference of two, cannot overflow; an `event_time`
//! outside the years 1000–9999, or a `classroom_id` or `user_type` that a sink
//! cannot store ([`crate::storable`]).

use differential_dataflow::VecCollection;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::{Filter, Map};

use crate::Text;
use crate::ops::{DistinctInserts, FoldByKey};
use crate::output::{ColumnType::*, Row, SqlValue, StampKind, Table};
use crate::storable::{self, key_text, key_text_chars};
use crate::topics::Qos;
use crate::{Diff, Pos, Rejection, Time};

/// `(user_id, classroom_id)`.
pub type StudyKey = (i64, Text);

/// A play as the tie-break orders it: `data_time`, then `event_time`, then `user_type`, NULL first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Play {
    /// `extra.data_time` (ms).
    pub data_time: i64,
    /// `event_time` (ms).
    pub event_time: Option<i64>,
    /// `user_type`.
    pub user_type: Option<Text>,
}

/// What one log record contributes: its key, its play, and whether it is a success.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PlayFact {
    /// `(user_id, classroom_id)`.
    pub key: StudyKey,
    /// The record as a candidate first play.
    pub play: Play,
    /// `sub_event = 'PPT_SUCCESS'`.
    pub success: bool,
}

/// One row of `user_enter_classroom_take_time`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StudyRow {
    /// Key: `user_id`.
    pub user_id: i64,
    /// Key: `classroom_id`.
    pub classroom_id: Text,
    /// Key: `b.data_time` (ms).
    pub success_time: i64,
    /// `a.user_type`.
    pub user_type: Option<Text>,
    /// `b.data_time − a.data_time` (ms).
    pub spend_time: i64,
    /// `a.event_time` (ms; written as a timestamp).
    pub event_time: Option<i64>,
}

/// The largest `extra.data_time` magnitude read: the difference of two such times fits
/// a BIGINT (`i64::MAX / 2` is about 146 million years of milliseconds).
pub const MAX_DATA_TIME: i64 = i64::MAX / 2;

/// The most characters of `classroom_id`, a key column ([`crate::storable`]).
const KEY_CHARS: usize = key_text_chars(&<StudyRow as Row>::TABLE);

/// Reads one log record; `Ok(None)` when a key or time is NULL (it can never match).
pub fn fact(q: &Qos) -> Result<Option<PlayFact>, Rejection> {
    let user_id = q.user_id.read("user_id")?.copied();
    let classroom_id = q.classroom_id.read("classroom_id")?.cloned();
    let data_time = q.data_time.read("extra.data_time")?.copied();
    let event_time = q.event_time.read("event_time")?.copied();
    let user_type = q.user_type.read("user_type")?.cloned();
    let success = q.sub_event.read("sub_event")?.map(Text::as_str) == Some("PPT_SUCCESS");
    q.ppt_index.read("extra.msg.pptIndex")?;
    let (Some(user_id), Some(classroom_id), Some(data_time)) = (user_id, classroom_id, data_time) else {
        return Ok(None);
    };
    // What a row would store (only records that can match write anything).
    if !key_text(&classroom_id, KEY_CHARS) {
        return Err(Rejection::BadField("classroom_id"));
    }
    if !(-MAX_DATA_TIME..=MAX_DATA_TIME).contains(&data_time) {
        return Err(Rejection::BadField("extra.data_time"));
    }
    if event_time.is_some_and(|t| !storable::timestamp(t)) {
        return Err(Rejection::BadField("event_time"));
    }
    storable::checked_text(user_type.as_ref(), "user_type")?;
    Ok(Some(PlayFact { key: (user_id, classroom_id), play: Play { data_time, event_time, user_type }, success }))
}

/// The study-time rows, given every log record's fact (in position order per key).
/// The seed's self-join, with `a` narrowed to the first play of its key (module docs):
///
/// ```sql
/// SELECT a.userId, a.classroomId, a.userType, b.extraDataTime - a.extraDataTime, TO_TIMESTAMP(a.eventTime)
/// FROM qos_log_kafka a
/// JOIN (SELECT * FROM qos_log_kafka WHERE subEvent = 'PPT_SUCCESS') b
///   ON a.userId = b.userId AND a.classroomId = b.classroomId
/// WHERE a.extraDataTime < b.extraDataTime
/// ```
pub fn dataflow<'s>(facts: StreamVec<'s, Time, (Pos, PlayFact)>) -> VecCollection<'s, Time, StudyRow, Diff> {
    // a: the first play per (user_id, classroom_id).
    let first_play = facts.clone().map(|(pos, f)| (f.key, pos, f.play)).fold_by_key("FirstPlay", |first, play| {
        if play < *first {
            *first = play;
        }
    });
    // b: each distinct success time per key.
    let successes =
        facts.filter(|(_, f)| f.success).map(|(_, f)| (f.key, f.play.data_time)).distinct_inserts("DistinctSuccesses");
    first_play.join(successes).flat_map(|((user_id, classroom_id), (a, success_time))| {
        // `fact` bounds both times by `MAX_DATA_TIME`, so the difference always fits.
        let spend_time = success_time.checked_sub(a.data_time).filter(|_| a.data_time < success_time)?;
        Some(StudyRow {
            user_id,
            classroom_id,
            success_time,
            user_type: a.user_type,
            spend_time,
            event_time: a.event_time,
        })
    })
}

/// 2.4 `user_enter_classroom_take_time`.
impl Row for StudyRow {
    const TABLE: Table = Table {
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

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Int(self.user_id),
            SqlValue::Text(self.classroom_id.to_string()),
            SqlValue::text(&self.user_type),
            SqlValue::Int(self.spend_time),
            self.event_time.map_or(SqlValue::Null, SqlValue::Millis),
            SqlValue::Int(self.success_time),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tie_break_order() {
        let p = |d, e: Option<i64>, u: Option<&str>| Play { data_time: d, event_time: e, user_type: u.map(Text::from) };
        assert!(p(1, Some(9), Some("b")) < p(2, None, None));
        assert!(p(1, Some(1), Some("b")) < p(1, Some(2), None));
        assert!(p(1, None, Some("b")) < p(1, Some(0), None));
        assert!(p(1, Some(1), None) < p(1, Some(1), Some("a")));
    }

    /// The same success read twice (at two positions and logical times) is one row, not a
    /// row with multiplicity two (which a keyed sink would not show).
    #[test]
    fn a_success_read_twice_is_one_row() {
        use std::collections::BTreeMap;
        use timely::container::CapacityContainerBuilder;
        use timely::dataflow::InputHandle;
        use timely::dataflow::operators::Input;
        use timely::dataflow::operators::capture::{Capture, Extract};

        let read = |raw: &str| fact(&Qos::parse(raw.as_bytes()).unwrap()).unwrap().unwrap();
        let play = read(r#"{"user_id":5,"classroom_id":"r","sub_event":"PPT_PLAY","extra":{"data_time":10}}"#);
        let success = read(r#"{"user_id":5,"classroom_id":"r","sub_event":"PPT_SUCCESS","extra":{"data_time":20}}"#);
        let at = |offset| Pos { partition: 0, offset };
        let batches = vec![vec![(at(0), play), (at(1), success.clone())], vec![(at(2), success)]];
        let (send, recv) = std::sync::mpsc::channel();
        timely::execute_directly(move |worker| {
            let mut input = InputHandle::<Time, CapacityContainerBuilder<Vec<(Pos, PlayFact)>>>::new();
            worker.dataflow::<Time, _, _>(|scope| dataflow(scope.input_from(&mut input)).inner.capture_into(send));
            for (time, batch) in batches.into_iter().enumerate() {
                input.advance_to(time as Time);
                for record in batch {
                    input.send(record);
                }
            }
        });
        let mut net: BTreeMap<(i64, i64), Diff> = BTreeMap::new();
        for (row, _, diff) in recv.extract().into_iter().flat_map(|(_, updates)| updates) {
            *net.entry((row.success_time, row.spend_time)).or_default() += diff;
        }
        assert_eq!(net, BTreeMap::from([((20, 10), 1)]));
    }

    #[test]
    fn what_a_row_cannot_store_is_a_bad_field() {
        let read = |raw: String| fact(&Qos::parse(raw.as_bytes()).unwrap());
        let play = |room: &str, event_time: i64, data_time: i64| {
            read(format!(
                r#"{{"user_id":5,"classroom_id":"{room}","event_time":{event_time},"extra":{{"data_time":{data_time}}}}}"#
            ))
        };
        let bad = |name| Err(Rejection::BadField(name));
        assert_eq!(play("r", 0, i64::MIN), bad("extra.data_time"));
        assert_eq!(play("r", 0, MAX_DATA_TIME + 1), bad("extra.data_time"));
        assert!(play("r", 0, -MAX_DATA_TIME).is_ok() && play("r", 0, MAX_DATA_TIME).is_ok());
        assert_eq!(play("r", i64::MAX, 0), bad("event_time"));
        assert_eq!(play("r", 253_402_300_800_000, 0), bad("event_time"));
        assert!(play("r", 253_402_300_799_999, 0).is_ok());
        assert_eq!(play("r\\u0000", 0, 0), bad("classroom_id"));
        assert_eq!(play(&"é".repeat(256), 0, 0), bad("classroom_id"));
        assert!(play(&"é".repeat(255), 0, 0).is_ok());
        // A record that can never match stores nothing: filtered, not a dead letter.
        assert_eq!(
            read(r#"{"classroom_id":"r","event_time":9223372036854775807,"extra":{"data_time":1}}"#.into()),
            Ok(None)
        );
    }

    #[test]
    fn reading_facts() {
        let f = fact(
            &Qos::parse(
                br#"{"user_id":"5","classroom_id":"r","sub_event":"PPT_SUCCESS","extra":"{\"data_time\":20}"}"#,
            )
            .unwrap(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(f.key, (5, crate::Text::from("r")));
        assert!(f.success);
        assert_eq!(fact(&Qos::parse(br#"{"user_id":"5","extra":{"data_time":20}}"#).unwrap()), Ok(None));
        assert_eq!(
            fact(&Qos::parse(br#"{"user_id":"x","extra":{"data_time":20}}"#).unwrap()),
            Err(Rejection::BadField("user_id"))
        );
    }
}
