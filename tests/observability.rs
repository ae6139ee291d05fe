//! Observability and snapshots (SPEC §4 counts, §6 snapshots): `/metrics`
//! holds the counters derived by hand from a known input, and a snapshot
//! (`query --admin` against the running job, and the dump files) equals the
//! SQLite contents at the same logical time, for a windowed metric (2.3) and
//! a retracting one (2.7).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use common::{edu_rtdw, rows, write_partition};

const SIGNALS: &str = "timeline_client_topic";
/// 2024-01-01 00:00:00.000 UTC in ms.
const T0: i64 = 1_704_067_200_000;
const MINUTE: i64 = 60_000;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A classroom signal (msgid 305, msgtype 116) moving a shape, at event time `ts`.
fn signal(ts: i64, user: &str, room: &str, role: &str) -> Value {
    json!({
        "createTime": "2024-01-01 08:00:00",
        "data": {
            "userid": user, "roomId": room, "timestamp": ts, "role": role, "msgid": "305",
            "msg": {"msgtype": "116", "msg_data": {"target_id": "t", "target_type": "shape", "action": "move", "sub_action": "x", "page_index": "1"}}
        }
    })
}

/// The job, killed when dropped.
struct Job(Child);

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, extra: &[&str]) -> Job {
    let child = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(["run", "--input-dir", "input", "--sqlite", "out.db", "-q", "--admin-linger-s", "120"])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn edu-rtdw");
    Job(child)
}

/// `GET path` on the admin endpoint: the body, or `None` while it is not up.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Waits until the job's snapshot is complete (its input is done and every time is applied)
/// and the SQLite sink has committed the same logical time.
fn wait_complete(port: u16) {
    let started = Instant::now();
    loop {
        let header = get(port, "/snapshot/dead_letters").and_then(|b| b.lines().next().map(str::to_string));
        let header = header.and_then(|h| serde_json::from_str::<Value>(&h).ok()).filter(|h| h["complete"] == json!(true));
        let committed = get(port, "/metrics").and_then(|m| sample(&m, r#"edu_rtdw_sink_committed_upper{sink="sqlite"}"#));
        if let (Some(h), Some(c)) = (header, committed) {
            if h["upper"].as_u64().map(|u| u.to_string()) == Some(c) {
                return;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the job did not complete");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the sample `name{labels}` in a Prometheus text body.
fn sample(body: &str, series: &str) -> Option<String> {
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(str::to_string))
}

#[test]
fn metrics_endpoint_counts_a_known_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("input");
    let m1 = T0 + MINUTE;
    let mut no_user = signal(m1 + 26_000, "7", "9", "2");
    no_user["data"].as_object_mut().expect("object").remove("userid");
    let lines: Vec<String> = [
        signal(T0, "7", "9", "2"),              // 0: window T0; W = T0 - 5 s
        signal(T0 + 59_999, "7", "9", "2"),     // 1: window T0; W = T0 + 54_999
        signal(T0 + 54_998, "8", "9", "2"),     // 2: < W: late
        signal(m1 + 30_000, "1", "9", "1"),     // 3: teacher: filtered (no row, no dead letter); W = m1 + 25_000
        no_user,                                // 4: bad_field:userId
        signal(m1 + 27_000, "8", "9", "2"),     // 5: window m1
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    write_partition(&input, SIGNALS, 0, &refs);
    write_partition(&input, "qos_log", 1, &[b"{\"user_id\": 1", b"[1]", b"not json"]);

    let port = free_port();
    let _job = start(tmp.path(), &["--admin", &format!("127.0.0.1:{port}")]);
    wait_complete(port);
    let body = get(port, "/metrics").expect("/metrics");
    let expect = |series: &str, value: &str| assert_eq!(sample(&body, series).as_deref(), Some(value), "{series} in\n{body}");

    // 6 signals and 3 quality records read.
    expect(r#"edu_rtdw_records_read_total{source="timeline_client_topic",partition="0"}"#, "6");
    expect(r#"edu_rtdw_records_read_total{source="qos_log",partition="1"}"#, "3");
    // Record 2 is late, record 4 has no userid (2.3 reads it); qos: 2 not_json, 1 not_object.
    expect(r#"edu_rtdw_dead_letters_total{source="timeline_client_topic",reason="late"}"#, "1");
    expect(r#"edu_rtdw_dead_letters_total{source="timeline_client_topic",reason="bad_field:userId"}"#, "1");
    expect(r#"edu_rtdw_dead_letters_total{source="qos_log",reason="not_json"}"#, "2");
    expect(r#"edu_rtdw_dead_letters_total{source="qos_log",reason="not_object"}"#, "1");
    // Both timeline partitions ended: watermark +infinity, so no lag is exported.
    expect(r#"edu_rtdw_watermark_ms{source="timeline_client_topic",partition="0"}"#, "+Inf");
    assert!(!body.contains("edu_rtdw_watermark_lag_seconds{"), "{body}");
    // 2.1: every signal but the teacher's (5); 2.3: user 7 [T0) = 2, user 8 [m1) = 1; 5 dead letters.
    expect(r#"edu_rtdw_output_rows{sink="sqlite",table="timeline_analysis_student"}"#, "5");
    expect(r#"edu_rtdw_output_rows{sink="sqlite",table="timeline_signal_analysis"}"#, "2");
    expect(r#"edu_rtdw_output_rows{sink="sqlite",table="dead_letters"}"#, "5");
    expect(r#"edu_rtdw_snapshot_rows{metric="class_performance_1m"}"#, "2");
    // At least one commit was timed, and its count matches the +Inf bucket.
    let count = sample(&body, r#"edu_rtdw_sink_commit_seconds_count{sink="sqlite"}"#).expect("commit count");
    assert!(count.parse::<u64>().expect("number") >= 1);
    expect(r#"edu_rtdw_sink_commit_seconds_bucket{sink="sqlite",le="+Inf"}"#, &count);
    // The SQLite file agrees with the row gauges.
    assert_eq!(rows(&tmp.path().join("out.db"), "SELECT COUNT(*) FROM timeline_signal_analysis"), vec![vec!["2".to_string()]]);
}

/// A JSON cell as `tests/common` renders a SQLite cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{:?}", n.as_f64().unwrap_or_default()),
        other => other.to_string(),
    }
}

/// `table`'s rows in SQLite (the given columns, `|`-joined, sorted).
fn sqlite_lines(db: &Path, table: &str, columns: &[&str]) -> Vec<String> {
    let cols: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    let mut lines: Vec<String> = rows(db, &format!("SELECT {} FROM \"{table}\"", cols.join(", "))).into_iter().map(|r| r.join("|")).collect();
    lines.sort();
    lines
}

/// JSON rows as the same lines.
fn json_lines(rows: &[Map<String, Value>], columns: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = rows.iter().map(|r| columns.iter().map(|c| r.get(*c).map_or("NULL".into(), cell)).collect::<Vec<_>>().join("|")).collect();
    lines.sort();
    lines
}

fn parse_jsonl(text: &str) -> Vec<Map<String, Value>> {
    text.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str::<Map<String, Value>>(l).expect("row")).collect()
}

const MINUTES: &[&str] = &["start_time", "end_time", "webserver_id", "user_id", "role", "event", "event_count"];
const STAFF: &[&str] = &["cc_id", "cc_index", "type", "attribution_time"];

#[test]
fn snapshots_equal_sqlite_at_the_same_logical_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "1", "--seed", "3", "--partitions", "2"], tmp.path());
    assert!(out.status.success(), "gen failed: {}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let _job = start(tmp.path(), &["--admin", &admin, "--epoch-records", "200", "--snapshot-dir", "snaps", "--snapshot-every", "0s"]);
    wait_complete(port);
    let db = tmp.path().join("out.db");
    let upper = rows(&db, "SELECT upper, complete FROM edu_rtdw_progress WHERE sink = 'sqlite'");
    assert_eq!(upper[0][1], "1", "the SQLite sink is complete");
    let upper: u64 = upper[0][0].parse().expect("upper");

    // 2.3 (windowed, append-only) and 2.7 (counts that are retracted and re-inserted).
    for (metric, table, columns) in [("class_performance_1m", "timeline_signal_analysis", MINUTES), ("daily_cc_confirmations", "staff_index", STAFF)] {
        let want = sqlite_lines(&db, table, columns);
        assert!(!want.is_empty(), "{table} is empty");

        // A live query against the running job.
        let q = edu_rtdw(&["query", metric, "--admin", &admin, "--format", "json"], tmp.path());
        assert!(q.status.success(), "query failed: {}", String::from_utf8_lossy(&q.stderr));
        let doc: Value = serde_json::from_slice(&q.stdout).expect("query json");
        assert_eq!(doc["upper"], json!(upper), "{metric}: query at another logical time");
        let got: Vec<Map<String, Value>> = doc["rows"].as_array().expect("rows").iter().filter_map(|r| r.as_object().cloned()).collect();
        assert_eq!(json_lines(&got, columns), want, "{metric}: query differs from SQLite");

        // The latest dump file: named by the same logical time, same rows.
        let dump = tmp.path().join("snaps").join(metric).join(format!("{upper}.jsonl"));
        let text = std::fs::read_to_string(&dump).unwrap_or_else(|e| panic!("{}: {e}", dump.display()));
        assert_eq!(json_lines(&parse_jsonl(&text), columns), want, "{metric}: dump differs from SQLite");

        // `query` without --admin reads that dump; --where filters it.
        let first = want[0].split('|').next().unwrap_or_default().to_string();
        let filter = format!("{}={first}", columns[0]);
        let q = edu_rtdw(&["query", metric, "--snapshot-dir", "snaps", "--format", "json", "--where", &filter], tmp.path());
        assert!(q.status.success(), "query failed: {}", String::from_utf8_lossy(&q.stderr));
        let doc: Value = serde_json::from_slice(&q.stdout).expect("query json");
        let got: Vec<Map<String, Value>> = doc["rows"].as_array().expect("rows").iter().filter_map(|r| r.as_object().cloned()).collect();
        let filtered: Vec<String> = want.iter().filter(|l| l.split('|').next() == Some(first.as_str())).cloned().collect();
        assert_eq!(json_lines(&got, columns), filtered, "{metric}: --where {filter}");
    }
    // Every dump kept (5 by default) parses.
    for entry in std::fs::read_dir(tmp.path().join("snaps/daily_cc_confirmations")).expect("dumps") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = parse_jsonl(&text);
    }
}
