//! Helpers shared by the integration tests: run the real binary on a file
//! layout, and read tables back out of the SQLite file it wrote.

#![allow(dead_code)]

pub mod kafka;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The stamp columns that hold wall-clock times, per table: ignored when comparing runs.
pub const STAMPS: &[(&str, &str)] = &[
    ("timeline_analysis_student", "timeStamp"),
    ("timeline_signal_analysis", "create_time"),
    ("user_enter_classroom_take_time", "create_time"),
    ("user_av_record", "create_time"),
    ("staff_index", "update_time"),
    ("daily_uv_pv", "update_time"),
    ("top_teachers_daily", "update_time"),
    ("dead_letters", "create_time"),
];

/// Every output table.
pub const TABLES: &[&str] = &[
    "timeline_analysis_student",
    "channel_name_dictionary",
    "timeline_signal_analysis",
    "user_enter_classroom_take_time",
    "user_av_record",
    "registrations_hourly_level",
    "staff_index",
    "daily_uv_pv",
    "top_teachers_daily",
    "dead_letters",
];

/// How long one run of the binary may take before the tests kill it: a hang
/// (a stalled broker, a source that never ends) fails its test with the
/// command line instead of running the suite into CI's time limit.
/// `EDU_RTDW_TEST_TIMEOUT_S` overrides the default of 15 minutes.
pub fn run_limit() -> Duration {
    let secs = std::env::var("EDU_RTDW_TEST_TIMEOUT_S").ok().and_then(|s| s.parse().ok()).unwrap_or(900);
    Duration::from_secs(secs)
}

/// Waits for `child` (what `what` names) and returns its output; kills it and
/// panics if it runs longer than [`run_limit`].
pub fn wait_bounded(child: Child, what: &str) -> Output {
    wait_within(child, what, run_limit())
}

/// [`wait_bounded`] with an explicit limit. A watchdog thread waits on a
/// channel with a deadline, so nothing polls.
pub fn wait_within(child: Child, what: &str, limit: Duration) -> Output {
    let (done, finished) = mpsc::channel::<()>();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let timed_out = finished.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout);
        if timed_out {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        timed_out
    });
    let out = child.wait_with_output().expect("wait for edu-rtdw");
    let _ = done.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    assert!(!timed_out, "killed after {limit:?}: {what}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `edu-rtdw` with `args` and returns its output (bounded by [`run_limit`]).
pub fn edu_rtdw(args: &[&str], cwd: &Path) -> Output {
    edu_rtdw_within(args, cwd, run_limit())
}

/// [`edu_rtdw`] with an explicit limit.
pub fn edu_rtdw_within(args: &[&str], cwd: &Path, limit: Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run edu-rtdw");
    wait_within(child, &format!("edu-rtdw {}", args.join(" ")), limit)
}

/// Runs a file replay of `input` into `db` with `workers` workers; panics unless it exits 0.
pub fn replay(input: &Path, db: &Path, workers: usize) {
    let out = edu_rtdw(
        &[
            "run",
            "--input-dir",
            &input.display().to_string(),
            "--sqlite",
            &db.display().to_string(),
            "-w",
            &workers.to_string(),
            "-q",
        ],
        input.parent().unwrap_or(input),
    );
    assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Starts `edu-rtdw ARGS` in `dir` with its `info` log on a piped stderr (and a piped stdout).
pub fn spawn_logged<S: AsRef<std::ffi::OsStr>>(args: &[S], dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(args)
        .current_dir(dir)
        // EDU_RTDW_TEST_RUST_LOG adds to what tests read (e.g. "edu_rtdw=info,connectors=debug").
        .env("RUST_LOG", std::env::var("EDU_RTDW_TEST_RUST_LOG").unwrap_or_else(|_| "edu_rtdw=info".to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn edu-rtdw")
}

/// Runs `edu-rtdw ARGS` until its log has reported `n` complete checkpoints, then SIGKILLs
/// it; returns the time of the last one. Panics if the run ends first.
pub fn kill_after_checkpoints<S: AsRef<std::ffi::OsStr>>(args: &[S], dir: &Path, n: usize) -> u64 {
    use std::io::BufRead;
    let mut child = spawn_logged(args, dir);
    let stderr = child.stderr.take().expect("stderr");
    let (mut times, mut log) = (Vec::new(), Vec::new());
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.expect("log line");
        if let Some(time) = checkpoint_time(&line) {
            times.push(time);
            if times.len() == n {
                break;
            }
        }
        log.push(line);
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    assert_eq!(times.len(), n, "the run ended after {} checkpoints; its log:\n{}", times.len(), log.join("\n"));
    times[n - 1]
}

/// The time of a "checkpoint at T: …" log line.
pub fn checkpoint_time(line: &str) -> Option<u64> {
    let rest = &line[line.find("checkpoint at ")? + "checkpoint at ".len()..];
    rest.split(':').next()?.parse().ok()
}

/// A port that was free a moment ago (the next one is used too).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Runs `scripts/cluster.sh n w args…` in `dir`; panics unless it exits 0. Returns its stdout.
pub fn cluster_sh(dir: &Path, n: usize, w: usize, args: &[&str]) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args([n.to_string(), w.to_string()])
        .args(args)
        .env("EDU_RTDW", env!("CARGO_BIN_EXE_edu-rtdw"))
        .env("EDU_RTDW_CLUSTER_PORT", free_port().to_string())
        .current_dir(dir)
        .output()
        .expect("run cluster.sh");
    assert!(out.status.success(), "cluster failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `lines` as `<dir>/<topic>/<partition>.jsonl`.
pub fn write_partition(dir: &Path, topic: &str, partition: u32, lines: &[&[u8]]) -> PathBuf {
    let topic_dir = dir.join(topic);
    std::fs::create_dir_all(&topic_dir).expect("mkdir");
    let path = topic_dir.join(format!("{partition}.jsonl"));
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    std::fs::write(&path, bytes).expect("write partition");
    path
}

/// A SQLite cell as text (`NULL` for NULL, reals in `{:?}` form, blobs as `blob:[..]`).
pub fn cell(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef::*;
    match v {
        Null => "NULL".to_string(),
        Integer(i) => i.to_string(),
        Real(f) => format!("{f:?}"),
        Text(t) => String::from_utf8_lossy(t).into_owned(),
        Blob(b) => format!("blob:{b:?}"),
    }
}

/// The rows of `query`, each as its cells' text (`NULL` for NULL).
pub fn rows(db: &Path, query: &str) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let mut stmt = conn.prepare(query).expect("prepare");
    let n = stmt.column_count();

    stmt.query_map([], |r| (0..n).map(|i| r.get_ref(i).map(cell)).collect::<Result<Vec<_>, _>>())
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

/// Every table's contents without its stamp column, sorted, one line per row.
pub fn dump(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open db");
    let mut out = Vec::new();
    for table in TABLES {
        let stamp = STAMPS.iter().find(|(t, _)| t == table).map(|(_, c)| *c);
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).expect("prepare");
        let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let mut lines: Vec<String> = stmt
            .query_map([], |r| {
                let mut cells = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    if Some(name.as_str()) != stamp {
                        cells.push(cell(r.get_ref(i)?));
                    }
                }
                Ok(format!("{table}|{}", cells.join("|")))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        lines.sort();
        out.extend(lines);
    }
    out
}

/// A spawned binary, killed (and reaped) when dropped, however the test ends.
pub struct Job(pub Child);

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `table`'s rows (the given columns, cells as [`cell`] writes them, `|`-joined, sorted) and
/// the SQLite sink's committed upper, read in one transaction; `None` before the sink's
/// first commit.
pub fn sqlite_at(db: &Path, table: &str, columns: &[impl AsRef<str>]) -> Option<(u64, Vec<String>)> {
    let mut conn = rusqlite::Connection::open(db).ok()?;
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    let tx = conn.transaction().expect("begin");
    let upper: u64 = tx
        .query_row("SELECT upper FROM edu_rtdw_progress WHERE sink = 'sqlite'", [], |r| r.get::<_, i64>(0))
        .ok()?
        .try_into()
        .ok()?;
    let cols: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.as_ref())).collect();
    let mut stmt = tx.prepare(&format!("SELECT {} FROM \"{table}\"", cols.join(", "))).expect("prepare");
    let n = stmt.column_count();
    let mut lines: Vec<String> = stmt
        .query_map([], |r| (0..n).map(|i| r.get_ref(i).map(cell)).collect::<Result<Vec<_>, _>>().map(|c| c.join("|")))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    lines.sort();
    Some((upper, lines))
}

/// The columns of `table` in the SQLite file `db`, but its wall-clock stamp ([`STAMPS`]).
pub fn data_columns(db: &Path, table: &str) -> Vec<String> {
    rows(db, &format!("SELECT name FROM pragma_table_info('{table}')"))
        .into_iter()
        .map(|r| r[0].clone())
        .filter(|c| !STAMPS.iter().any(|(t, s)| *t == table && s == c))
        .collect()
}
