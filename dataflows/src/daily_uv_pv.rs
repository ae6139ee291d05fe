//! 2.8 `daily_uv_pv` — daily unique users and page views (seed: 说明, 日uv/pv).
//!
//! Semantics (SPEC §2.8). Every record of two topics is a [`Visit`]: area
//! `live` for `timeline_client_topic` (user `data.userid`, time
//! `data.timestamp`, role `2` → `student`, `1` → `teacher`, anything else or
//! NULL → `other`) and area `recorded` for `qos_log` (user `user_id` as text,
//! time `event_time`, role `user_type` when it is `student` or `teacher`, else
//! `other`), whatever its msgid or sub_event. Per `(stat_date, area, role)`,
//! with `stat_date` the UTC `yyyy-MM-dd` of the time: `pv = COUNT(*)`,
//! `uv = COUNT(DISTINCT user)`. No window and no lateness: a record of an old
//! day updates that day's row, at the logical time it is read.
//!
//! Dead letters (metric `daily_uv_pv`), the time field named first: a time that
//! is NULL or unreadable, or outside the years 1000–9999 (no `stat_date` a sink
//! can store), is `bad_field:timestamp` (live) or `bad_field:event_time`
//! (recorded); then a user that is NULL or unreadable, or a text no sink can
//! store (2.9 writes it as `teacher_id`), is `bad_field:userId` or
//! `bad_field:user_id`. Such a record still feeds the other metrics.
//!
//! Worked example (SPEC cases, by hand): live records of day 2025-12-01 from
//! users `7` (role `2`), `7` (role `2`), `8` (role `1`), `9` (role `x`) and a
//! recorded record of user `7` (`student`) give the rows
//! `(2025-12-01, live, student, uv 1, pv 2)`, `(2025-12-01, live, teacher, 1, 1)`,
//! `(2025-12-01, live, other, 1, 1)` and `(2025-12-01, recorded, student, 1, 1)`.
//!
//! Dataflow: `pv` is [`CountTotal`] of the visits' keys (counted per batch first:
//! [`CountedInserts`]); `uv` is the count of
//! the distinct `(key, user)` pairs ([`DistinctInserts`]: a hash set per worker,
//! since visits are only ever inserted); a join by key pairs them into one row.
//! Memory grows with the distinct users per day, not with the records.

use differential_dataflow::VecCollection;
use differential_dataflow::operators::CountTotal;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::Map;

use crate::ops::{Checkpointed, CountedInserts, DistinctInserts};
use crate::output::{ColumnType::*, Row, SqlValue, StampKind, Table};
use crate::timefmt::date_text;
use crate::topics::{Qos, Signal};
use crate::{Diff, Rejection, Text, Time, storable};

/// Which product a visit belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Area {
    /// Live classes (`timeline_client_topic`).
    Live,
    /// Recorded courses (`qos_log`).
    Recorded,
}

impl Area {
    /// The `area` column's value.
    pub fn name(self) -> &'static str {
        match self {
            Area::Live => "live",
            Area::Recorded => "recorded",
        }
    }
}

/// Who made a visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A student.
    Student,
    /// A teacher.
    Teacher,
    /// Any other role, or none.
    Other,
}

impl Role {
    /// The `role` column's value.
    pub fn name(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Other => "other",
        }
    }
}

/// What one record contributes to 2.8 (and, live, to 2.9).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Visit {
    /// The UTC day of the record's time, in days from the Common Era.
    pub day: i32,
    /// Live or recorded.
    pub area: Area,
    /// The visitor's role.
    pub role: Role,
    /// The visitor.
    pub user: Text,
    /// The room (`data.roomId`, live records only), when it is readable.
    pub room: Option<Text>,
}

/// Days from 0001-01-01 (day 1 of the Common Era) to 1970-01-01.
const UNIX_EPOCH_DAY_FROM_CE: i64 = 719_163;

/// The UTC day of `ms`, days from the Common Era, if a sink can store it.
///
/// ```
/// use chrono::Datelike;
/// let ms = 1_704_067_200_000 + 86_399_999; // 2024-01-01 23:59:59.999
/// let day = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().num_days_from_ce();
/// assert_eq!(dataflows::daily_uv_pv::day_of(ms, "t"), Ok(day));
/// assert_eq!(dataflows::daily_uv_pv::day_of(-1, "t"), Ok(day - 19_724), "1969-12-31");
/// ```
pub fn day_of(ms: i64, field: &'static str) -> Result<i32, Rejection> {
    if !storable::timestamp(ms) {
        return Err(Rejection::BadField(field));
    }
    // In range: the years 1000 to 9999 are well within i32 days.
    Ok((ms.div_euclid(86_400_000) + UNIX_EPOCH_DAY_FROM_CE) as i32)
}

/// A visitor's id, if a sink can store it.
fn user_of(user: Text, field: &'static str) -> Result<Text, Rejection> {
    if storable::text(&user) { Ok(user) } else { Err(Rejection::BadField(field)) }
}

/// The visit of a live signal (any msgid, any role).
///
/// ```
/// use dataflows::daily_uv_pv::{live_visit, Role};
/// use dataflows::topics::Signal;
/// use dataflows::Rejection;
/// let signal = |raw: &str| Signal::parse(raw.as_bytes()).unwrap();
/// let v = live_visit(&signal(r#"{"data": {"userid": 8, "timestamp": 0, "role": "1", "roomId": "r"}}"#)).unwrap();
/// assert_eq!((v.role, v.user.as_str(), v.room.as_deref()), (Role::Teacher, "8", Some("r")));
/// let nothing = live_visit(&signal(r#"{"data": {"userid": 8}}"#));
/// assert_eq!(nothing, Err(Rejection::BadField("timestamp")), "the time is named first");
/// ```
pub fn live_visit(s: &Signal) -> Result<Visit, Rejection> {
    let day = day_of(*s.timestamp.require("timestamp")?, "timestamp")?;
    let user = user_of(s.user_id.require("userId")?.clone(), "userId")?;
    let role = match s.role.val() {
        Some(Some(0)) => Role::Student,
        Some(Some(1)) => Role::Teacher,
        _ => Role::Other,
    };
    Ok(Visit { day, area: Area::Live, role, user, room: s.room_id.val().cloned() })
}

/// The visit of a playback log record (any sub_event).
pub fn recorded_visit(q: &Qos) -> Result<Visit, Rejection> {
    let day = day_of(*q.event_time.require("event_time")?, "event_time")?;
    let user = Text::from(itoa::Buffer::new().format(*q.user_id.require("user_id")?));
    let role = match q.user_type.as_str() {
        Some("student") => Role::Student,
        Some("teacher") => Role::Teacher,
        _ => Role::Other,
    };
    Ok(Visit { day, area: Area::Recorded, role, user, room: None })
}

/// One row of `daily_uv_pv`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UvPvRow {
    /// Key: the day, in days from the Common Era (`stat_date` as `yyyy-MM-dd`).
    pub day: i32,
    /// Key: the area.
    pub area: Area,
    /// Key: the role.
    pub role: Role,
    /// Distinct users.
    pub uv: i64,
    /// Records.
    pub pv: i64,
}

/// The `yyyy-MM-dd` of a day in days from the Common Era.
pub fn stat_date(day: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(day).map_or_else(String::new, date_text)
}

/// Daily UV and PV per area and role, from every visit.
pub fn dataflow<'s>(visits: StreamVec<'s, Time, Visit>) -> VecCollection<'s, Time, UvPvRow, Diff> {
    let keyed = visits.map(|v| ((v.day, v.area, v.role), v.user));
    let pv = keyed.clone().map(|(key, _)| key).counted_inserts().checkpointed("PageViews").count_total();
    let uv = keyed.distinct_inserts("DistinctDailyUsers").map(|(key, _)| key).count_total();
    pv.join_map(uv, |&(day, area, role), &pv, &uv| UvPvRow { day, area, role, uv: uv as i64, pv: pv as i64 })
}

/// 2.8 `daily_uv_pv`.
impl Row for UvPvRow {
    const TABLE: Table = Table {
        name: "daily_uv_pv",
        columns: &[("stat_date", Text), ("area", Text), ("role", Text), ("uv", BigInt), ("pv", BigInt)],
        key: &[0, 1, 2],
        stamp: Some(("update_time", StampKind::Timestamp)),
    };

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(stat_date(self.day)),
            SqlValue::Text(self.area.name().into()),
            SqlValue::Text(self.role.name().into()),
            SqlValue::Int(self.uv),
            SqlValue::Int(self.pv),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_visits_name_the_time_first_and_map_roles() {
        let qos = |raw: &str| Qos::parse(raw.as_bytes()).unwrap();
        let v = recorded_visit(&qos(r#"{"user_id": "12", "event_time": 86400000, "user_type": "teacher"}"#)).unwrap();
        assert_eq!((stat_date(v.day), v.role, v.user.as_str()), ("1970-01-02".to_string(), Role::Teacher, "12"));
        let v = recorded_visit(&qos(r#"{"user_id": 12, "event_time": 0, "user_type": "parent"}"#)).unwrap();
        assert_eq!(v.role, Role::Other);
        assert_eq!(recorded_visit(&qos(r#"{"user_id": "abc"}"#)), Err(Rejection::BadField("event_time")));
        assert_eq!(recorded_visit(&qos(r#"{"user_id": "abc", "event_time": 0}"#)), Err(Rejection::BadField("user_id")));
        let far = qos(r#"{"user_id": 1, "event_time": 9223372036854775807}"#);
        assert_eq!(recorded_visit(&far), Err(Rejection::BadField("event_time")));
    }
}
