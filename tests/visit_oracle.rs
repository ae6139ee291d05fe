//! 2.8 `daily_uv_pv` and 2.9 `top_teachers_daily` against an independent
//! computation: the seeded sample (sloppy encodings, garbage and all) is read
//! here with `serde_json` and SPEC §1's rules written out plainly, the two
//! metrics are computed with sets and a sort straight from SPEC §2.8–2.9, and
//! the tables of a file replay must equal them, with 1 and 2 workers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use common::{edu_rtdw, replay, rows};

/// The value at `path`, following objects and strings that hold JSON objects (SPEC §1).
fn at(v: &Value, path: &[&str]) -> Option<Value> {
    let mut cur = v.clone();
    for key in path {
        if let Value::String(s) = &cur {
            cur = serde_json::from_str(s).ok()?;
        }
        cur = cur.as_object()?.get(*key)?.clone();
    }
    Some(cur)
}

/// Why a field cannot be read: NULL or unreadable alike, for these metrics.
type Read<T> = Option<T>;

/// A scalar as text: strings as they are, integers in decimal; `""` and `null` are NULL.
fn text(v: Option<&Value>) -> Read<String> {
    match v? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer from a number or a string holding one; `""` and `null` are NULL.
fn int(v: Option<&Value>) -> Read<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `yyyy-MM-dd` (UTC) of `ms`, for the years 1000 to 9999.
fn day(ms: i64) -> Option<String> {
    let d = chrono::DateTime::from_timestamp_millis(ms)?.date_naive();
    let year = chrono::Datelike::year(&d);
    (1000..=9999).contains(&year).then(|| d.format("%Y-%m-%d").to_string())
}

struct Visit {
    day: String,
    area: &'static str,
    role: &'static str,
    user: String,
    room: Option<String>,
}

fn visits(input: &Path) -> Vec<Visit> {
    let mut out = Vec::new();
    for (topic, area) in [("timeline_client_topic", "live"), ("qos_log", "recorded")] {
        let Ok(dir) = std::fs::read_dir(input.join(topic)) else { continue };
        for file in dir {
            let bytes = std::fs::read(file.expect("entry").path()).expect("read partition");
            for line in bytes.split(|b| *b == b'\n') {
                let Ok(v) = serde_json::from_slice::<Value>(line) else { continue };
                if !v.is_object() {
                    continue;
                }
                let get = |path: &[&str]| at(&v, path);
                let (time, user, role, room) = if area == "live" {
                    let role = match text(get(&["data", "role"]).as_ref()).as_deref() {
                        Some("2") => "student",
                        Some("1") => "teacher",
                        _ => "other",
                    };
                    let room = text(get(&["data", "roomId"]).as_ref());
                    (int(get(&["data", "timestamp"]).as_ref()), text(get(&["data", "userid"]).as_ref()), role, room)
                } else {
                    let role = match text(get(&["user_type"]).as_ref()).as_deref() {
                        Some("student") => "student",
                        Some("teacher") => "teacher",
                        _ => "other",
                    };
                    (
                        int(get(&["event_time"]).as_ref()),
                        int(get(&["user_id"]).as_ref()).map(|u| u.to_string()),
                        role,
                        None,
                    )
                };
                let (Some(day), Some(user)) = (time.and_then(day), user) else { continue };
                out.push(Visit { day, area, role, user, room });
            }
        }
    }
    out
}

/// SPEC §2.8: `(stat_date, area, role, uv, pv)`.
fn uv_pv(visits: &[Visit]) -> Vec<Vec<String>> {
    let mut groups: BTreeMap<(&str, &str, &str), (BTreeSet<&str>, u64)> = BTreeMap::new();
    for v in visits {
        let g = groups.entry((&v.day, v.area, v.role)).or_default();
        g.0.insert(&v.user);
        g.1 += 1;
    }
    groups
        .into_iter()
        .map(|((d, a, r), (users, pv))| vec![d.into(), a.into(), r.into(), users.len().to_string(), pv.to_string()])
        .collect()
}

/// SPEC §2.9: `(stat_date, rank, teacher_id, students, rooms)`, ranks `1..=top_n` per day.
fn top_teachers(visits: &[Visit], top_n: usize) -> Vec<Vec<String>> {
    // (day, room) -> teachers, students.
    type People<'a> = (BTreeSet<&'a str>, BTreeSet<&'a str>);
    let mut rooms: BTreeMap<(&str, &str), People> = BTreeMap::new();
    for v in visits.iter().filter(|v| v.area == "live" && v.role != "other") {
        let Some(room) = &v.room else { continue };
        let r = rooms.entry((&v.day, room)).or_default();
        if v.role == "teacher" { &mut r.0 } else { &mut r.1 }.insert(&v.user);
    }
    // (day, teacher) -> students, rooms.
    let mut teachers: BTreeMap<(&str, &str), (BTreeSet<&str>, u64)> = BTreeMap::new();
    for ((day, _room), (taught_by, attended_by)) in &rooms {
        for t in taught_by {
            let e = teachers.entry((day, t)).or_default();
            e.0.extend(attended_by.iter().copied());
            e.1 += 1;
        }
    }
    let mut by_day: BTreeMap<&str, Vec<(usize, &str, u64)>> = BTreeMap::new();
    for ((day, t), (students, n_rooms)) in &teachers {
        if !students.is_empty() {
            by_day.entry(day).or_default().push((students.len(), t, *n_rooms));
        }
    }
    let mut out = Vec::new();
    for (day, mut ts) in by_day {
        ts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.as_bytes().cmp(b.1.as_bytes())));
        for (i, (students, t, n_rooms)) in ts.into_iter().take(top_n).enumerate() {
            out.push(vec![day.into(), (i + 1).to_string(), t.into(), students.to_string(), n_rooms.to_string()]);
        }
    }
    out
}

#[test]
fn uv_pv_and_top_teachers_equal_an_independent_computation_of_the_sample() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "2", "--seed", "5", "--partitions", "3"], tmp.path());
    assert!(out.status.success(), "gen: {}", String::from_utf8_lossy(&out.stderr));
    let input = tmp.path().join("input");
    let visits = visits(&input);
    let (want_uv, want_top) = (uv_pv(&visits), top_teachers(&visits, 10));
    assert!(want_uv.len() >= 4 && want_top.len() >= 10, "the sample exercises both: {want_uv:?} {want_top:?}");
    for workers in [1, 2] {
        let db = tmp.path().join(format!("w{workers}.db"));
        replay(&input, &db, workers);
        let got_uv = rows(&db, "SELECT stat_date, area, role, uv, pv FROM daily_uv_pv ORDER BY stat_date, area, role");
        assert_eq!(got_uv, want_uv, "daily_uv_pv, -w {workers}");
        let got_top = rows(
            &db,
            "SELECT stat_date, rank, teacher_id, students, rooms FROM top_teachers_daily ORDER BY stat_date, rank",
        );
        assert_eq!(got_top, want_top, "top_teachers_daily, -w {workers}");
    }
}
