//! 2.9 `top_teachers_daily` — the day's most followed live teachers (seed: 说明, topN热门授课教师).
//!
//! Semantics (SPEC §2.9), over the live [`Visit`]s that 2.8 counts whose role
//! is `teacher` or `student` and whose `data.roomId` is readable: teacher `T`
//! teaches room `R` on day `D` when `T` sent a signal in `R` on `D`; student
//! `S` attends `R` on `D` the same way. `students(T, D)` is the number of
//! distinct students attending any room `T` taught on `D`, `rooms(T, D)` the
//! number of rooms `T` taught on `D`. Per day, the teachers with
//! `students >= 1`, ranked by `students` descending, then `teacher_id`
//! ascending in byte order, keep ranks `1..=top_n`. Table
//! `top_teachers_daily (stat_date, rank, teacher_id, students, rooms,
//! update_time)`, key `(stat_date, rank)`: when counts change the ranks are
//! rewritten, so the table always equals this query over the input read so far.
//!
//! Tie-breaks and edge cases, as the definition gives them:
//! * teachers with equal `students` are ranked by `teacher_id` bytes (`"10"`
//!   before `"9"`); the teacher at rank `top_n` is the last one kept, and a
//!   tie across that boundary keeps the smaller id;
//! * a user who teaches one room and attends another is both a teacher and a
//!   student; one who attends a room they also teach counts as one of their
//!   own students (the definition has no exception);
//! * a student who attends two of `T`'s rooms counts once; a room `T` taught
//!   with no student adds to `rooms` but not to `students`; a teacher whose
//!   rooms had no student that day is not ranked;
//! * a late record of an old day updates that day's ranks (no window);
//! * a record with no room counts for 2.8 only.
//!
//! Worked example (by hand): on one day teacher `a` teaches rooms `r1` and
//! `r2`, teacher `b` teaches `r3`; students `s1`, `s2` attend `r1`, `s2` also
//! attends `r2`, `s3` attends `r3`. Then `students(a) = 2` (`s1`, `s2` once),
//! `rooms(a) = 2`, `students(b) = 1`, `rooms(b) = 1`: rank 1 is `a`, rank 2 is
//! `b`. With `top_n = 1` only `a` is written; a later signal of `s4` in `r3`
//! ties `b` with `a` at 2 students and `a` keeps rank 1 (`"a" < "b"`).
//!
//! Dataflow: the distinct `(day, room, teacher)` and `(day, room, student)`
//! facts (hash sets: visits are only inserted), joined by `(day, room)` into
//! `(day, teacher, student)` pairs, made distinct and counted; the rooms are
//! counted from the teacher facts; a `reduce` per day ranks the teachers.
//! Memory grows with the distinct teachers, students and rooms per day.

use differential_dataflow::VecCollection;
use differential_dataflow::operators::CountTotal;
use serde::{Deserialize, Serialize};
use timely::dataflow::StreamVec;
use timely::dataflow::operators::vec::{Filter, Map};

use crate::daily_uv_pv::{Area, Role, Visit, stat_date};
use crate::ops::DistinctInserts;
use crate::output::{ColumnType::*, Row, SqlValue, StampKind, Table};
use crate::{Diff, Text, Time};

/// Default of how many teachers are kept per day.
pub const DEFAULT_TOP_N: usize = 10;

/// One row of `top_teachers_daily`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopTeacherRow {
    /// Key: the day, in days from the Common Era (`stat_date` as `yyyy-MM-dd`).
    pub day: i32,
    /// Key: 1 for the most followed teacher.
    pub rank: i64,
    /// The teacher.
    pub teacher_id: Text,
    /// Distinct students attending the teacher's rooms that day.
    pub students: i64,
    /// Rooms the teacher taught that day.
    pub rooms: i64,
}

/// Ranks one day's teachers, given as `(teacher, (students, rooms))` in teacher order:
/// students descending, then teacher id ascending, the first `top_n`.
///
/// ```
/// use dataflows::top_teachers_daily::rank;
/// let day = [("a".into(), (2, 1)), ("b".into(), (3, 1)), ("c".into(), (2, 5))];
/// let ranked = rank(day.iter().map(|(t, c)| (t, *c)), 2);
/// assert_eq!(ranked, [(1, "b".into(), 3, 1), (2, "a".into(), 2, 1)]);
/// ```
pub fn rank<'a>(teachers: impl Iterator<Item = (&'a Text, (i64, i64))>, top_n: usize) -> Vec<(i64, Text, i64, i64)> {
    let mut all: Vec<(&Text, i64, i64)> = teachers.map(|(t, (students, rooms))| (t, students, rooms)).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes())));
    all.into_iter()
        .take(top_n)
        .enumerate()
        .map(|(i, (teacher, students, rooms))| (i as i64 + 1, teacher.clone(), students, rooms))
        .collect()
}

/// The day's top `top_n` teachers, from the live visits.
pub fn dataflow<'s>(visits: StreamVec<'s, Time, Visit>, top_n: usize) -> VecCollection<'s, Time, TopTeacherRow, Diff> {
    let in_rooms = visits
        .filter(|v| v.area == Area::Live && v.role != Role::Other && v.room.is_some())
        .map(|v| (v.role, v.day, v.room.unwrap_or_default(), v.user));
    let teaches = in_rooms
        .clone()
        .filter(|(role, ..)| *role == Role::Teacher)
        .map(|(_, day, room, teacher)| (day, room, teacher))
        .distinct_inserts("DistinctTeaching");
    let attends = in_rooms
        .filter(|(role, ..)| *role == Role::Student)
        .map(|(_, day, room, student)| ((day, room), student))
        .distinct_inserts("DistinctAttending");
    let students = teaches
        .clone()
        .map(|(day, room, teacher)| ((day, room), teacher))
        .join_map(attends, |(day, _room), teacher, student| ((*day, teacher.clone()), student.clone()))
        .distinct()
        .map(|(day_teacher, _student)| day_teacher)
        .count_total();
    let rooms = teaches.map(|(day, _room, teacher)| (day, teacher)).count_total();
    students
        .join_map(rooms, |(day, teacher), students, rooms| (*day, (teacher.clone(), (*students as i64, *rooms as i64))))
        .reduce(move |_day, teachers, output| {
            let ranked = rank(teachers.iter().map(|(value, _)| (&value.0, value.1)), top_n);
            output.extend(ranked.into_iter().map(|row| (row, 1)));
        })
        .map(|(day, (rank, teacher_id, students, rooms))| TopTeacherRow { day, rank, teacher_id, students, rooms })
}

/// 2.9 `top_teachers_daily`.
impl Row for TopTeacherRow {
    const TABLE: Table = Table {
        name: "top_teachers_daily",
        columns: &[
            ("stat_date", Text),
            ("rank", BigInt),
            ("teacher_id", Text),
            ("students", BigInt),
            ("rooms", BigInt),
        ],
        key: &[0, 1],
        stamp: Some(("update_time", StampKind::Timestamp)),
    };

    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::Text(stat_date(self.day)),
            SqlValue::Int(self.rank),
            SqlValue::Text(self.teacher_id.to_string()),
            SqlValue::Int(self.students),
            SqlValue::Int(self.rooms),
        ]
    }
}
