//! 2.6 `hourly_registrations_by_level` — registrations per hour and level (seed: 场景四).
//!
//! Students (`uc_account-student`) and users (`uc_account-user`) are each
//! deduplicated by `id` with Flink LAST_VALUE semantics (per column, the last
//! non-NULL value in offset order). Student `t` joins user `u` on id; users are
//! kept when `u.status = 'NORMAL'`, `u.name` does not contain `测试`, does not
//! start with the literal `DM__` and does not contain `test` (case-sensitive),
//! and `u.register_date_time` parses as `yyyy-MM-dd HH:mm:ss`. As in SQL, a
//! NULL `name` or `status` fails these conditions. The channel level comes
//! from 2.2 on `ch.rowkey = MD5(t.channel_id)`: `ch.level` if it is one of
//! `A, B, C, D`, else `other` (also when the student has no channel or no
//! channel row exists). `leads = COUNT(DISTINCT t.id)` per
//! `(reg_date = yyyyMMddHH, level)`, served as `registrations_hourly_level`
//! with `uk = reg_date || level`; a count reaching zero deletes the row.
//!
//! Unlike the seed's lookup join, everything here is a differential join over
//! the current state: a later change of a channel's level or of a user's status
//! or name re-attributes past registrations.
//!
//! How it is computed: both logs are folded into one state per id that holds
//! the id's student and user records side by side ([`Account`]). That is the
//! inner join on id, without arranging either log, and it gives at most one
//! registration per id, so `COUNT(DISTINCT t.id)` is the number of
//! registrations in the group. A registration counts as `other`
//! until a channel row matches it; since 2.2 keeps one row per rowkey, at most
//! one does, and the match moves the registration to the row's level (a left
//! join without an antijoin). Counts use `count_total` (logical time is totally
//! ordered), which keeps no arrangement of its output.
//!
//! Dead letters: a record without `id` (`bad_field:id`) or with a field that is
//! not text (`bad_field:<name>`); it does not take part in the deduplication.

use differential_dataflow::VecCollection;
use differential_dataflow::operators::CountTotal;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::vec::Map;

use crate::Text;
use crate::channel_dim::rowkey;
use crate::ops::FoldByKey;
use crate::output::{ColumnType::*, Row, SqlValue, Table};
use crate::timefmt::{hour_number, parse_datetime};
use crate::topics::{LastValue, Student, User};
use crate::{Diff, Pos, Rejection, Time};

/// One row of `registrations_hourly_level`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegistrationRow {
    /// `yyyyMMddHH` of the registration.
    pub reg_date: i64,
    /// `A`–`D` or `other`.
    pub level: Text,
    /// Distinct students registered in that hour at that level.
    pub leads: i64,
}

impl RegistrationRow {
    /// The primary key, `reg_date || level`.
    pub fn uk(&self) -> String {
        format!("{}{}", self.reg_date, self.level)
    }
}

/// Checks a student record; `Ok(id)` when it can be folded.
pub fn check_student(s: &Student) -> Result<Text, Rejection> {
    let id = s.id.require("id")?.clone();
    s.channel_id.read("channel_id")?;
    s.update_time.read("update_time")?;
    Ok(id)
}

/// Checks a user record; `Ok(id)` when it can be folded.
pub fn check_user(u: &User) -> Result<Text, Rejection> {
    let id = u.id.require("id")?.clone();
    u.name.read("name")?;
    u.register_date_time.read("register_date_time")?;
    u.status.read("status")?;
    Ok(id)
}

/// The name conditions of the seed: not `%测试%`, not `DM\_\_%`, not `%test%`.
pub fn name_allowed(name: &str) -> bool {
    !name.contains("测试") && !name.starts_with("DM__") && !name.contains("test")
}

/// The registration hour of a user that counts, if it counts.
pub fn registration_hour(u: &User) -> Option<i64> {
    let normal = u.status.as_str() == Some("NORMAL");
    let named = u.name.as_str().is_some_and(name_allowed);
    let registered = parse_datetime(u.register_date_time.as_str()?)?;
    (normal && named).then(|| hour_number(&registered))
}

/// `A`–`D` as is, anything else as `other`.
pub fn normalize_level(level: Option<&str>) -> &'static str {
    match level {
        Some("A") => "A",
        Some("B") => "B",
        Some("C") => "C",
        Some("D") => "D",
        _ => "other",
    }
}

/// One id's student and user records, each folded with LAST_VALUE semantics: the join of
/// the two logs on id, kept as one state per id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Account {
    /// The id's student record, once one was read.
    pub student: Option<Student>,
    /// The id's user record, once one was read.
    pub user: Option<User>,
}

impl Account {
    /// Folds a later record of the same id into this one, side by side.
    pub fn merge_last(&mut self, later: Account) {
        fn merge<R: LastValue>(current: &mut Option<R>, later: Option<R>) {
            match (current.as_mut(), later) {
                (Some(current), Some(later)) => current.merge_last(later),
                (None, later @ Some(_)) => *current = later,
                (_, None) => {}
            }
        }
        merge(&mut self.student, later.student);
        merge(&mut self.user, later.user);
    }

    /// The registration this account counts as, if it counts: the rowkey of the student's
    /// channel (if any) and the user's registration hour.
    pub fn registration(&self) -> Option<(Option<Text>, i64)> {
        let (student, user) = (self.student.as_ref()?, self.user.as_ref()?);
        let hour = registration_hour(user)?;
        Some((student.channel_id.val().map(|c| Text::from(rowkey(c))), hour))
    }
}

/// Hourly registrations per level, from the student and user logs (keyed by id)
/// and the channel dimension `(rowkey, level)` of 2.2. The seed's query, over the
/// LAST_VALUE views of both logs (a differential join here, not a lookup join):
///
/// ```sql
/// SELECT date_format(register_date_time, 'yyyyMMddHH') AS reg_date,
///        CASE WHEN level IN ('A', 'B', 'C', 'D') THEN level ELSE 'other' END AS level,
///        COUNT(DISTINCT t.id) AS leads
/// FROM student_da_src_view t
/// LEFT JOIN user_da_in_view u ON u.id = t.id
/// LEFT JOIN channel_da ch ON ch.rowkey = MD5(t.channel_id)
/// WHERE u.name NOT LIKE '%测试%' AND u.name NOT LIKE 'DM\_\_%' AND u.name NOT LIKE '%test%'
///   AND u.status = 'NORMAL'
/// GROUP BY reg_date, level
/// ```
pub fn dataflow<'s>(
    students: StreamVec<'s, Time, (Text, Pos, Student)>,
    users: StreamVec<'s, Time, (Text, Pos, User)>,
    channel_levels: VecCollection<'s, Time, (Text, Option<Text>), Diff>,
) -> VecCollection<'s, Time, RegistrationRow, Diff> {
    // Both logs folded into one state per id (the two sides never touch each other's half,
    // so the order between a student and a user record does not matter): the inner join on
    // id without arranging either side. One registration per id at most.
    let students = students.map(|(id, pos, student)| (id, pos, Account { student: Some(student), user: None }));
    let users = users.map(|(id, pos, user)| (id, pos, Account { student: None, user: Some(user) }));
    let registered = students
        .concat(users)
        .fold_by_key("AccountLastValue", Account::merge_last)
        .flat_map(|(_, account)| account.registration());

    // Every registration counts as `other` unless its channel has a row, which moves it to that
    // row's level (the seed's left join). 2.2 keeps one row per rowkey, so a registration matches
    // at most once and the move is exact: no antijoin, which would arrange the registrations again.
    // Only the hour matters from here: ids are counted, not listed.
    let as_other = registered.clone().map(|(_, hour)| (hour, "other"));
    let matched = registered
        .flat_map(|(channel, hour)| channel.map(|key| (key, hour)))
        .join_map(channel_levels, |_, hour, level| (*hour, normalize_level(level.as_deref())));
    let moved_from_other = matched.clone().map(|(hour, _)| (hour, "other")).negate();

    // Still one row per id, so COUNT(DISTINCT t.id) is the number of rows.
    as_other
        .concat(matched)
        .concat(moved_from_other)
        .map(|(hour, level)| (hour, Text::from(level)))
        .count_total()
        .map(|((reg_date, level), leads)| RegistrationRow { reg_date, level, leads: leads as i64 })
}

/// 2.6 `registrations_hourly_level`.
impl Row for RegistrationRow {
    const TABLE: Table = Table {
        name: "registrations_hourly_level",
        columns: &[("uk", Text), ("reg_date", BigInt), ("level", Text), ("leads", BigInt)],
        key: &[0],
        stamp: None,
    };

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(self.uk()),
            SqlValue::Int(self.reg_date),
            SqlValue::Text(self.level.to_string()),
            SqlValue::Int(self.leads),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filters() {
        assert!(!name_allowed("DM__x"));
        assert!(name_allowed("DM_a"));
        assert!(name_allowed("Test"));
        assert!(!name_allowed("a test"));
        assert!(!name_allowed("张测试"));
    }

    #[test]
    fn levels() {
        assert_eq!(normalize_level(Some("A")), "A");
        assert_eq!(normalize_level(Some("E")), "other");
        assert_eq!(normalize_level(Some("a")), "other");
        assert_eq!(normalize_level(None), "other");
    }

    #[test]
    fn an_account_folds_each_side_by_last_value_and_counts_once_both_are_there() {
        let student = |raw: &str| Account { student: Some(Student::parse(raw.as_bytes()).unwrap()), user: None };
        let user = |raw: &str| Account { student: None, user: Some(User::parse(raw.as_bytes()).unwrap()) };
        let mut account =
            user(r#"{"id":"1","name":"Ann","status":"NORMAL","register_date_time":"2025-12-02 08:30:00"}"#);
        assert_eq!(account.registration(), None, "no student yet");
        account.merge_last(student(r#"{"id":"1","channel_id":"c1"}"#));
        assert_eq!(account.registration(), Some((Some(Text::from(rowkey("c1"))), 2025120208)));
        // A NULL keeps the older value on its own side; the other side is untouched.
        account.merge_last(student(r#"{"id":"1","channel_id":null,"update_time":"x"}"#));
        account.merge_last(user(r#"{"id":"1","name":null,"register_date_time":"2025-12-02 09:00:00"}"#));
        assert_eq!(account.registration(), Some((Some(Text::from(rowkey("c1"))), 2025120209)));
        account.merge_last(user(r#"{"id":"1","status":"FROZEN"}"#));
        assert_eq!(account.registration(), None, "no longer NORMAL");
    }

    #[test]
    fn hours() {
        let u = User::parse(br#"{"id":"1","name":"Ann","status":"NORMAL","register_date_time":"2025-12-02 08:30:00"}"#)
            .unwrap();
        assert_eq!(registration_hour(&u), Some(2025120208));
        let nameless =
            User::parse(br#"{"id":"1","status":"NORMAL","register_date_time":"2025-12-02 08:30:00"}"#).unwrap();
        assert_eq!(registration_hour(&nameless), None);
        let unparsed =
            User::parse(br#"{"id":"1","name":"Ann","status":"NORMAL","register_date_time":"2025/12/02"}"#).unwrap();
        assert_eq!(registration_hour(&unparsed), None);
    }
}
