//! Observability and snapshots (SPEC §4 counts, §6 snapshots): `/metrics`
//! holds the counters derived by hand from a known input, and a snapshot
//! (`query --admin` against the running job, and the dump files) equals the
//! SQLite contents at the same logical time, for a windowed metric (2.3) and
//! a retracting one (2.7): at the end of a file replay, and at three
//! intermediate times of an unbounded Kafka run (the broker of
//! `scripts/kafka-up.sh`), between which windows close and counts are
//! retracted.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use common::kafka::{BROKERS, lock, topics};
use common::{Job, edu_rtdw, rows, sqlite_at, write_partition};

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
        let header =
            header.and_then(|h| serde_json::from_str::<Value>(&h).ok()).filter(|h| h["complete"] == json!(true));
        let committed =
            get(port, "/metrics").and_then(|m| sample(&m, r#"edu_rtdw_sink_committed_upper{sink="sqlite"}"#));
        if let (Some(h), Some(c)) = (header, committed)
            && h["upper"].as_u64().map(|u| u.to_string()) == Some(c)
        {
            return;
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
        signal(T0, "7", "9", "2"),          // 0: window T0; W = T0 - 5 s
        signal(T0 + 59_999, "7", "9", "2"), // 1: window T0; W = T0 + 54_999
        signal(T0 + 54_998, "8", "9", "2"), // 2: < W: late
        signal(m1 + 30_000, "1", "9", "1"), // 3: teacher: filtered (no row, no dead letter); W = m1 + 25_000
        no_user,                            // 4: bad_field:userId
        signal(m1 + 27_000, "8", "9", "2"), // 5: window m1
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
    let expect =
        |series: &str, value: &str| assert_eq!(sample(&body, series).as_deref(), Some(value), "{series} in\n{body}");

    // 6 signals and 3 quality records read.
    expect(r#"edu_rtdw_records_read_total{source="timeline_client_topic",partition="0"}"#, "6");
    expect(r#"edu_rtdw_records_read_total{source="qos_log",partition="1"}"#, "3");
    // Record 2 is late, record 4 has no userid (2.3 and 2.8 read it); qos: 2 not_json, 1 not_object.
    expect(r#"edu_rtdw_dead_letters_total{source="timeline_client_topic",reason="late"}"#, "1");
    expect(r#"edu_rtdw_dead_letters_total{source="timeline_client_topic",reason="bad_field:userId"}"#, "2");
    expect(r#"edu_rtdw_dead_letters_total{source="qos_log",reason="not_json"}"#, "2");
    expect(r#"edu_rtdw_dead_letters_total{source="qos_log",reason="not_object"}"#, "1");
    // Both timeline partitions ended: watermark +infinity, so no lag is exported.
    expect(r#"edu_rtdw_watermark_ms{source="timeline_client_topic",partition="0"}"#, "+Inf");
    assert!(!body.contains("edu_rtdw_watermark_lag_seconds{"), "{body}");
    // 2.1: every signal but the teacher's (5); 2.3: user 7 [T0) = 2, user 8 [m1) = 1; 6 dead
    // letters. 2.8: one day, live students (7, 8) and the live teacher (1): 2 rows; 2.9: teacher
    // 1 in room 9 with students 7 and 8: 1 row.
    expect(r#"edu_rtdw_output_rows{sink="sqlite",table="timeline_analysis_student"}"#, "5");
    expect(r#"edu_rtdw_output_rows{sink="sqlite",table="timeline_signal_analysis"}"#, "2");
    expect(r#"edu_rtdw_output_rows{sink="sqlite",table="dead_letters"}"#, "6");
    expect(r#"edu_rtdw_output_rows{sink="sqlite",table="daily_uv_pv"}"#, "2");
    expect(r#"edu_rtdw_output_rows{sink="sqlite",table="top_teachers_daily"}"#, "1");
    expect(r#"edu_rtdw_snapshot_rows{metric="class_performance_1m"}"#, "2");
    // At least one commit was timed, and its count matches the +Inf bucket.
    let count = sample(&body, r#"edu_rtdw_sink_commit_seconds_count{sink="sqlite"}"#).expect("commit count");
    assert!(count.parse::<u64>().expect("number") >= 1);
    expect(r#"edu_rtdw_sink_commit_seconds_bucket{sink="sqlite",le="+Inf"}"#, &count);
    // The SQLite file agrees with the row gauges.
    assert_eq!(
        rows(&tmp.path().join("out.db"), "SELECT COUNT(*) FROM timeline_signal_analysis"),
        vec![vec!["2".to_string()]]
    );
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
    let mut lines: Vec<String> =
        rows(db, &format!("SELECT {} FROM \"{table}\"", cols.join(", "))).into_iter().map(|r| r.join("|")).collect();
    lines.sort();
    lines
}

/// JSON rows as the same lines.
fn json_lines(rows: &[Map<String, Value>], columns: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| columns.iter().map(|c| r.get(*c).map_or("NULL".into(), cell)).collect::<Vec<_>>().join("|"))
        .collect();
    lines.sort();
    lines
}

fn parse_jsonl(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<Map<String, Value>>(l).expect("row"))
        .collect()
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
    let _job = start(
        tmp.path(),
        &["--admin", &admin, "--epoch-records", "200", "--snapshot-dir", "snaps", "--snapshot-every", "0s"],
    );
    wait_complete(port);
    let db = tmp.path().join("out.db");
    let upper = rows(&db, "SELECT upper, complete FROM edu_rtdw_progress WHERE sink = 'sqlite'");
    assert_eq!(upper[0][1], "1", "the SQLite sink is complete");
    let upper: u64 = upper[0][0].parse().expect("upper");

    // 2.3 (windowed, append-only) and 2.7 (counts that are retracted and re-inserted).
    for (metric, table, columns) in [
        ("class_performance_1m", "timeline_signal_analysis", MINUTES),
        ("daily_cc_confirmations", "staff_index", STAFF),
    ] {
        let want = sqlite_lines(&db, table, columns);
        assert!(!want.is_empty(), "{table} is empty");

        // A live query against the running job.
        let q = edu_rtdw(&["query", metric, "--admin", &admin, "--format", "json"], tmp.path());
        assert!(q.status.success(), "query failed: {}", String::from_utf8_lossy(&q.stderr));
        let doc: Value = serde_json::from_slice(&q.stdout).expect("query json");
        assert_eq!(doc["upper"], json!(upper), "{metric}: query at another logical time");
        let got: Vec<Map<String, Value>> =
            doc["rows"].as_array().expect("rows").iter().filter_map(|r| r.as_object().cloned()).collect();
        assert_eq!(json_lines(&got, columns), want, "{metric}: query differs from SQLite");

        // The latest dump file: named by the same logical time, same rows.
        let dump = tmp.path().join("snaps").join(metric).join(format!("{upper}.jsonl"));
        let text = std::fs::read_to_string(&dump).unwrap_or_else(|e| panic!("{}: {e}", dump.display()));
        assert_eq!(json_lines(&parse_jsonl(&text), columns), want, "{metric}: dump differs from SQLite");

        // `query` without --admin reads that dump; --where filters it.
        let first = want[0].split('|').next().unwrap_or_default().to_string();
        let filter = format!("{}={first}", columns[0]);
        let q =
            edu_rtdw(&["query", metric, "--snapshot-dir", "snaps", "--format", "json", "--where", &filter], tmp.path());
        assert!(q.status.success(), "query failed: {}", String::from_utf8_lossy(&q.stderr));
        let doc: Value = serde_json::from_slice(&q.stdout).expect("query json");
        let got: Vec<Map<String, Value>> =
            doc["rows"].as_array().expect("rows").iter().filter_map(|r| r.as_object().cloned()).collect();
        let filtered: Vec<String> =
            want.iter().filter(|l| l.split('|').next() == Some(first.as_str())).cloned().collect();
        assert_eq!(json_lines(&got, columns), filtered, "{metric}: --where {filter}");
    }
    // Every dump kept (5 by default) parses.
    for entry in std::fs::read_dir(tmp.path().join("snaps/daily_cc_confirmations")).expect("dumps") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let _ = parse_jsonl(&text);
    }
}

/// `edu-rtdw query METRIC --admin ADDR --format json`: the snapshot's upper and rows (as lines).
fn live_query(dir: &Path, admin: &str, metric: &str, columns: &[&str]) -> Option<(u64, Vec<String>)> {
    let q = edu_rtdw(&["query", metric, "--admin", admin, "--format", "json"], dir);
    if !q.status.success() {
        return None;
    }
    let doc: Value = serde_json::from_slice(&q.stdout).expect("query json");
    let rows: Vec<Map<String, Value>> =
        doc["rows"].as_array().expect("rows").iter().filter_map(|r| r.as_object().cloned()).collect();
    Some((doc["upper"].as_u64().expect("upper"), json_lines(&rows, columns)))
}

/// The sum of every `edu_rtdw_records_read_total` series.
fn records_read(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("edu_rtdw_records_read_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A metric, its table, its columns, and the projection (column indexes) checked against expected rows.
type Checked<'a> = (&'a str, &'a str, &'a [&'a str], &'a [usize]);

/// Waits until the job has read `produced` records and the SQLite sink and the live `query` are
/// both at logical time `upper`; then checks, per metric, that the query's rows equal SQLite's,
/// and that their projection equals `want` (sorted `|`-joined lines).
fn compare_at(dir: &Path, port: u16, produced: u64, upper: u64, checks: &[(Checked<'_>, Vec<&str>)]) {
    let admin = format!("127.0.0.1:{port}");
    let db = dir.join("out.db");
    let started = Instant::now();
    let deadline = Duration::from_secs(90);
    loop {
        let body = get(port, "/metrics").unwrap_or_default();
        if records_read(&body) == produced {
            break;
        }
        assert!(started.elapsed() < deadline, "the job did not read {produced} records:\n{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for ((metric, table, columns, projection), want) in checks {
        loop {
            let sink = sqlite_at(&db, table, columns);
            let live = live_query(dir, &admin, metric, columns);
            if let (Some((sink_upper, in_sink)), Some((live_upper, got))) = (sink, live) {
                assert!(
                    sink_upper <= upper && live_upper <= upper,
                    "{metric}: past logical time {upper}: sink {sink_upper}, query {live_upper}"
                );
                if sink_upper == upper && live_upper == upper {
                    assert_eq!(got, in_sink, "{metric}: the live query differs from SQLite at logical time {upper}");
                    let mut projected: Vec<String> = in_sink
                        .iter()
                        .map(|l| l.split('|').collect::<Vec<_>>())
                        .map(|c| projection.iter().map(|i| c[*i]).collect::<Vec<_>>().join("|"))
                        .collect();
                    projected.sort();
                    let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
                    want.sort();
                    assert_eq!(projected, want, "{metric} at logical time {upper}");
                    break;
                }
            }
            assert!(
                started.elapsed() < deadline,
                "{metric}: the sink and the query never both reached logical time {upper}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A confirmed (`status` 3) or other order.
fn order(id: &str, cc: i64, status: &str, confirmed: &str) -> Value {
    json!({"id": id, "cc_id": cc, "status": status, "confirm_date_time": confirmed})
}

/// `query` during an unbounded Kafka run answers at the sink's committed logical time with the
/// sink's rows, at three intermediate times, for 2.3 (windows) and 2.7 (counts retracted).
///
/// Every source topic has one partition, `--epoch-records 1` makes a record's logical time its
/// offset, and no partition goes idle, so once each partition holds `10 k` records the frontier
/// (the least next offset) is exactly `10 k`. A window closes at the logical time of the
/// record that moved the watermark past its end; that record is the last of its phase on the
/// signals partition (time `10 k − 1`), so the window's rows commit with its own phase.
#[test]
fn live_query_equals_the_sink_at_intermediate_times() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    const PHASE: usize = 10;
    let _broker = lock();
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = topics("live", 1);
    std::fs::write(
        tmp.path().join("cfg.toml"),
        "[kafka]\nidle_timeout_ms = 600000\n[routes]\nstudent_signal_etl = [\"sqlite\"]\ndead_letters = [\"sqlite\"]\n",
    )
    .expect("config");
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let _job = Job(Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args([
            "run",
            "--config",
            "cfg.toml",
            "--brokers",
            BROKERS,
            "--topic-prefix",
            &prefix,
            "--sqlite",
            "out.db",
            "-q",
        ])
        .args(["--epoch-records", "1", "--admin", &admin])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn edu-rtdw"));

    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", BROKERS).create().expect("producer");
    let mut produced = 0u64;
    // One phase: `records` per topic (padded in front with unparseable lines to PHASE records).
    let mut phase = |records: &[(&str, Vec<Value>)]| {
        for topic in connectors::sample::TOPICS {
            let mine: Vec<String> =
                records.iter().filter(|(t, _)| *t == topic).flat_map(|(_, v)| v.iter().map(Value::to_string)).collect();
            assert!(mine.len() <= PHASE);
            let lines = std::iter::repeat_n("not json".to_string(), PHASE - mine.len()).chain(mine);
            let name = format!("{prefix}{topic}");
            for line in lines {
                producer
                    .send(BaseRecord::<[u8], [u8]>::to(&name).payload(line.as_bytes()).partition(0))
                    .map_err(|(e, _)| e)
                    .expect("produce");
                produced += 1;
            }
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        produced
    };
    let minute = |m: i64, s: i64| T0 + m * MINUTE + s * 1000;
    let metrics: [Checked<'_>; 2] = [
        ("class_performance_1m", "timeline_signal_analysis", MINUTES, &[0, 3, 6]),
        ("daily_cc_confirmations", "staff_index", STAFF, &[0, 1, 2, 3]),
    ];
    let (windows, staff) = (metrics[0], metrics[1]);
    const ORDERS: &str = "data_pack_order_info";

    // Phase 1: window 00:00 (user 7 twice, user 8 once), closed by a teacher's signal at 00:01:10
    // (watermark 00:01:05) that is the partition's last record; three confirmations.
    let n = phase(&[
        (
            SIGNALS,
            vec![
                signal(minute(0, 1), "7", "9", "2"),
                signal(minute(0, 2), "7", "9", "2"),
                signal(minute(0, 3), "8", "9", "2"),
                signal(minute(1, 10), "1", "9", "1"),
            ],
        ),
        (
            ORDERS,
            vec![
                order("1", 5, "3", "2025-12-01 10:00:00"),
                order("2", 5, "3", "2025-12-01 11:00:00"),
                order("3", 6, "3", "2025-12-01 12:00:00"),
            ],
        ),
    ]);
    let day1 = vec!["5|2|1|2025-12-01", "6|1|1|2025-12-01"];
    let first_window = vec!["2024-01-01 00:00:00.000|7|2", "2024-01-01 00:00:00.000|8|1"];
    // The window closed at logical time 9, below the frontier 10: committed.
    compare_at(tmp.path(), port, n, 10, &[(windows, first_window.clone()), (staff, day1.clone())]);

    // Phase 2: window 00:02 (users 7 and 9), closed the same way at 00:03:10.
    let n = phase(&[(
        SIGNALS,
        vec![
            signal(minute(2, 1), "7", "9", "2"),
            signal(minute(2, 2), "9", "9", "2"),
            signal(minute(3, 10), "1", "9", "1"),
        ],
    )]);
    let mut both_windows = first_window;
    both_windows.extend(["2024-01-01 00:02:00.000|7|1", "2024-01-01 00:02:00.000|9|1"]);
    compare_at(tmp.path(), port, n, 20, &[(windows, both_windows.clone()), (staff, day1)]);

    // Phase 3: order 2 is no longer confirmed (cc 5: 2 -> 1), order 3 neither (cc 6's row is
    // deleted), order 4 is a new confirmation.
    let n = phase(&[(
        ORDERS,
        vec![
            order("2", 5, "1", "2025-12-01 11:00:00"),
            order("3", 6, "4", "2025-12-01 12:00:00"),
            order("4", 7, "3", "2025-12-02 09:00:00"),
        ],
    )]);
    compare_at(
        tmp.path(),
        port,
        n,
        30,
        &[(windows, both_windows), (staff, vec!["5|1|1|2025-12-01", "7|1|1|2025-12-02"])],
    );
}

/// `edu-rtdw run … | head -1` with `head` gone: the summary's write into the closed pipe ends the
/// program quietly (exit 0, nothing on stderr), instead of a panic.
#[test]
fn a_closed_stdout_pipe_ends_the_summary_quietly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_partition(&tmp.path().join("input"), SIGNALS, 0, &[signal(T0, "7", "9", "2").to_string().as_bytes()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(["run", "--input-dir", "input", "--sqlite", "out.db"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn edu-rtdw");
    // Close the read end before the job can have finished (it writes the summary at its end).
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
