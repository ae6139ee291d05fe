//! Serving (issue 20, SPEC §6): snapshots read from the sharded arrangements.
//!
//! A bounded run leaves its final snapshot where `query` looks by default, and it
//! equals the SQLite sink (an independent path: the sink consolidates its own batches
//! on worker 0) at the same logical frontier, with one worker or three; reads of the
//! cleaned signals (2.1) see only the signals of the last `--signals-window` times,
//! which the sink's own table holds among all the others, and with `--append-window` so
//! do the closed windows of 2.3 and 2.5 and the dead letters.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};

use common::{data_columns, edu_rtdw, rows};

/// A JSON cell as the SQLite helper `common::cell` writes it.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{:?}", n.as_f64().unwrap_or_default()),
        // Bytes that are not UTF-8 (a dead letter's raw message) are a JSON array of bytes.
        Value::Array(bytes) => {
            format!("blob:{:?}", bytes.iter().map(|b| b.as_u64().unwrap_or(256) as u8).collect::<Vec<u8>>())
        }
        other => other.to_string(),
    }
}

/// `edu-rtdw query METRIC --format json` in `dir` (the default snapshot directory): upper and
/// rows, each row as `col=value` cells of `columns` joined by `|`, sorted.
fn query(dir: &Path, metric: &str, columns: &[&str]) -> (u64, Vec<String>) {
    let q = edu_rtdw(&["query", metric, "--format", "json"], dir);
    assert!(q.status.success(), "query {metric}: {}", String::from_utf8_lossy(&q.stderr));
    let doc: Value = serde_json::from_slice(&q.stdout).expect("query json");
    let rows: Vec<Map<String, Value>> =
        doc["rows"].as_array().expect("rows").iter().filter_map(|r| r.as_object().cloned()).collect();
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| format!("{c}={}", r.get(*c).map_or("NULL".into(), text)))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    lines.sort();
    (doc["upper"].as_u64().expect("upper"), lines)
}

/// `table`'s rows in the SQLite file, in the same form as [`query`] for `columns`.
fn sqlite(db: &Path, table: &str, columns: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let mut lines: Vec<String> = rows(db, &format!("SELECT {} FROM \"{table}\"", quoted.join(", ")))
        .into_iter()
        .map(|cells| columns.iter().zip(cells).map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join("|"))
        .collect();
    lines.sort();
    lines
}

/// `got == want`, reporting the sizes and the first difference only (tables are long).
fn same(got: &[String], want: &[String], what: &str) {
    if got != want {
        let first = got.iter().zip(want).find(|(g, w)| g != w);
        panic!("{what}: {} rows read, {} in the SQLite sink; first difference: {first:?}", got.len(), want.len());
    }
}

fn gen_input(dir: &Path) {
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "1", "--seed", "11", "--partitions", "2"], dir);
    assert!(out.status.success(), "gen failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn run(dir: &Path, extra: &[&str]) {
    let args: Vec<&str> = ["run", "--input-dir", "input", "--sqlite", "out.db", "-q", "--epoch-records", "100"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let out = edu_rtdw(&args, dir);
    assert!(out.status.success(), "run {extra:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A new user's flow: a bounded run with no snapshot flags, then `query METRIC`.
#[test]
fn query_after_a_bounded_run_equals_the_sqlite_sink() {
    for workers in ["1", "3"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        gen_input(tmp.path());
        run(tmp.path(), &["-w", workers]);
        let db = tmp.path().join("out.db");
        let upper: u64 =
            rows(&db, "SELECT upper FROM edu_rtdw_progress WHERE sink = 'sqlite'")[0][0].parse().expect("upper");
        for (metric, table) in [
            ("hourly_registrations_by_level", "registrations_hourly_level"),
            ("class_performance_1m", "timeline_signal_analysis"),
            ("daily_cc_confirmations", "staff_index"),
            ("offline_study_time", "user_enter_classroom_take_time"),
            ("top_teachers_daily", "top_teachers_daily"),
            ("dead_letters", "dead_letters"),
        ] {
            let columns = data_columns(&db, table);
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            let want = sqlite(&db, table, &columns);
            let (got_upper, got) = query(tmp.path(), metric, &columns);
            assert_eq!(got_upper, upper, "-w {workers} {metric}: the snapshot's frontier is the sink's");
            assert!(!want.is_empty(), "{table} is empty: the input does not test it");
            same(&got, &want, &format!("-w {workers} {metric}"));
        }
    }
}

/// Reads of `metric` with `--FLAG 1000000` list every row of the sink's `table`; with
/// windows of 2, a quarter, a half and three quarters of the run's logical times, nested parts of them
/// (the rows of the last N times), at least one non-empty and smaller than the whole.
fn reads_keep_a_recent_window(flag: &str, metric: &str, table: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    gen_input(tmp.path());
    let db = tmp.path().join("out.db");
    let read_with = |window: &str| {
        let _ = std::fs::remove_dir_all(tmp.path().join("snapshots"));
        let _ = std::fs::remove_file(&db);
        run(tmp.path(), &[flag, window]);
        let columns = data_columns(&db, table);
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        let (upper, read) = query(tmp.path(), metric, &columns);
        (upper, read, sqlite(&db, table, &columns))
    };
    let (upper, whole, all) = read_with("1000000");
    assert!(upper > 4, "the input spans several logical times ({upper})");
    same(&whole, &all, &format!("{metric}: a window longer than the input keeps every row"));
    let all: BTreeSet<String> = all.into_iter().collect();
    let mut wider = all.clone();
    let mut sizes = Vec::new();
    for window in [upper * 3 / 4, upper / 2, upper / 4, 2] {
        let (_, read, _) = read_with(&window.to_string());
        let read: BTreeSet<String> = read.into_iter().collect();
        assert!(read.is_subset(&wider), "{metric}: the last {window} times are among the rows of a wider window");
        sizes.push((window, read.len()));
        wider = read;
    }
    assert!(sizes.iter().any(|&(_, n)| n > 0 && n < all.len()), "{metric}: {sizes:?} of {} rows", all.len());
}

/// Reads of 2.1 see the signals of the last `--signals-window` logical times only.
#[test]
fn signal_reads_keep_a_recent_window() {
    reads_keep_a_recent_window("--signals-window", "student_signal_etl", "timeline_analysis_student");
}

/// `--append-window` does the same for the closed windows of 2.3 and 2.5 and the dead letters.
#[test]
fn append_window_keeps_recent_windows_and_dead_letters() {
    for (metric, table) in [
        ("class_performance_1m", "timeline_signal_analysis"),
        ("av_quality_30s", "user_av_record"),
        ("dead_letters", "dead_letters"),
    ] {
        reads_keep_a_recent_window("--append-window", metric, table);
    }
}

#[test]
fn no_final_snapshot_writes_none() {
    let tmp = tempfile::tempdir().expect("tempdir");
    gen_input(tmp.path());
    run(tmp.path(), &["--no-final-snapshot"]);
    assert!(!tmp.path().join("snapshots").exists());
    let q = edu_rtdw(&["query", "channel_dim"], tmp.path());
    assert!(!q.status.success());
    assert!(String::from_utf8_lossy(&q.stderr).contains("no snapshot of channel_dim"), "{q:?}");
}
