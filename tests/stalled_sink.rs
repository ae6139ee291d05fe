//! Back-pressure (SPEC §5) against the real servers: MariaDB stopped with SIGSTOP
//! for 60 s in the middle of a Kafka run (`--until-end`, from the broker of
//! `scripts/kafka-up.sh`; MariaDB and PostgreSQL from `scripts/db-up.sh`), then
//! SIGCONT.
//!
//! While the sink is stalled the sources pause: records read stop growing, well
//! before the end of the input, and the job's RSS stays below a bound derived
//! from the in-flight limit (`--max-inflight` logical times of `--epoch-records`
//! per partition). After SIGCONT the run ends by itself and every table in
//! MariaDB equals a file replay of the same records.
//!
//! This test is alone in its binary: stopping MariaDB would stall the other SQL
//! tests, and test binaries run one after another.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ::mysql::prelude::Queryable;
use common::{dump, edu_rtdw};
use connectors::mysql::MysqlSink;
use connectors::tables::ALL;

const MYSQL_ADMIN: &str = "mysql://edu:edu@127.0.0.1:3306/edu_rtdw";
const STALL: Duration = Duration::from_secs(60);
const PARTITIONS: u32 = 2;
const EPOCH_RECORDS: u64 = 64;
const MAX_INFLIGHT: u64 = 4;
/// What one in-flight record may cost in memory, all copies included (its message,
/// the parsed record, its share of batches and state): generous, the messages of
/// the sample are under 1 KiB.
const BYTES_PER_INFLIGHT_RECORD: u64 = 16 << 10;

/// MariaDB's server process stopped with SIGSTOP; SIGCONT when dropped, so a failed
/// assertion never leaves the server stopped.
struct Stopped(i32);

impl Stopped {
    fn mariadb() -> Stopped {
        let out = Command::new("pgrep").args(["-x", "mariadbd"]).output().expect("pgrep");
        let pid: i32 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("no mariadbd process: run scripts/db-up.sh first");
        signal(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: i32, sig: &str) {
    let status = Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET /metrics` on the admin endpoint; `None` while it is not up.
fn metrics(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// The sum of a counter's series (`name{...} value` lines).
fn total(body: &str, name: &str) -> u64 {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn records_read(port: u16) -> Option<u64> {
    metrics(port).map(|m| total(&m, "edu_rtdw_records_read_total"))
}

/// Resident set size of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    kib << 10
}

fn fresh_mysql(name: &str) -> String {
    let mut conn =
        ::mysql::Conn::new(::mysql::Opts::from_url(MYSQL_ADMIN).expect("mysql url")).expect("connect to MariaDB");
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`")).expect("drop database");
    conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")).expect("create database");
    format!("mysql://edu:edu@127.0.0.1:3306/{name}")
}

/// The committed frontier of the MySQL sink (0 before its first commit).
fn mysql_upper(url: &str) -> i64 {
    ::mysql::Conn::new(::mysql::Opts::from_url(url).expect("url"))
        .ok()
        .and_then(|mut c| {
            c.exec_first::<i64, _, _>("SELECT `upper` FROM edu_rtdw_progress WHERE sink = 'mysql'", ()).ok().flatten()
        })
        .unwrap_or(0)
}

/// A config routing every table to MySQL.
fn route_all_to_mysql(dir: &Path) -> PathBuf {
    let mut text = String::from("[routes]\n");
    for output in dataflows::output::Output::ALL {
        text.push_str(&format!("{} = [\"mysql\"]\n", output.name()));
    }
    let path = dir.join("mysql.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Every table of the MySQL database, as `dump` prints SQLite's.
fn mysql_rows(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    for table in ALL.iter() {
        let rows = MysqlSink::read_rows(url, table).unwrap_or_else(|e| panic!("read {}: {e:#}", table.name));
        let mut lines: Vec<String> =
            rows.into_iter().map(|cells| format!("{}|{}", table.name, cells.join("|"))).collect();
        lines.sort();
        out.extend(lines);
    }
    out
}

/// Polls `what` every 100 ms until it holds, for at most `limit`.
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_stalled_mysql_pauses_the_sources_with_bounded_memory_and_loses_nothing() {
    let _broker = common::kafka::lock();
    let prefix = common::kafka::topics("stall", PARTITIONS);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (scale, seed) = (3, 47);
    common::kafka::gen_to_kafka(tmp.path(), &prefix, scale, seed, PARTITIONS);
    let files = tmp.path().join("files");
    let out = edu_rtdw(
        &["gen", "--out", files.to_str().expect("utf-8"), "--scale", &scale.to_string(), "--seed", &seed.to_string()]
            .into_iter()
            .chain(["--partitions", &PARTITIONS.to_string()])
            .collect::<Vec<_>>(),
        tmp.path(),
    );
    assert!(out.status.success(), "gen --out failed: {}", String::from_utf8_lossy(&out.stderr));
    let produced: u64 = walk_lines(&files);
    let epoch = EPOCH_RECORDS.to_string();
    let expected = {
        let db = tmp.path().join("expected.db");
        let out = edu_rtdw(
            &["run", "--input-dir", files.to_str().expect("utf-8"), "--sqlite", db.to_str().expect("utf-8"), "-q"]
                .into_iter()
                .chain(["--epoch-records", &epoch])
                .collect::<Vec<_>>(),
            tmp.path(),
        );
        assert!(out.status.success(), "file replay failed: {}", String::from_utf8_lossy(&out.stderr));
        dump(&db)
    };

    let url = fresh_mysql("edu_rtdw_t_stall");
    let config = route_all_to_mysql(tmp.path());
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let inflight = MAX_INFLIGHT.to_string();
    let mut args = vec!["run", "--brokers", common::kafka::BROKERS, "--topic-prefix", &prefix, "--until-end"];
    args.extend(["--sqlite", "state.db", "--config", config.to_str().expect("utf-8"), "--mysql", &url, "-q"]);
    args.extend(["--epoch-records", &epoch, "--max-inflight", &inflight, "--admin", &admin]);
    let job = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(&args)
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    let pid = job.id();

    // In the middle: once MySQL holds a commit, and with most of the input still unread.
    wait_for("a first MySQL commit", Duration::from_secs(120), || mysql_upper(&url) > 0);
    let stopped = Stopped::mariadb();
    let rss_at_stop = rss(pid);
    let since = Instant::now();
    // The sources pause: records read stays the same for 5 s in a row.
    let mut last = (records_read(port).unwrap_or(0), Instant::now());
    wait_for("the sources pausing", STALL, || {
        let now = records_read(port).unwrap_or(0);
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() >= Duration::from_secs(5)
    });
    let paused_at = last.0;
    let mut peak = rss_at_stop;
    while since.elapsed() < STALL {
        let now = records_read(port).expect("the admin endpoint answers while MySQL is stalled");
        assert_eq!(now, paused_at, "records were read while the sink was stalled");
        peak = peak.max(rss(pid));
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(stopped);

    let topics = connectors::sample::TOPICS.len() as u64;
    let inflight_records = (MAX_INFLIGHT + 2) * EPOCH_RECORDS * u64::from(PARTITIONS) * topics;
    let bound = rss_at_stop + inflight_records * BYTES_PER_INFLIGHT_RECORD;
    assert!(paused_at < produced, "the stall came too late: all {produced} records were read");
    assert!(peak <= bound, "RSS {peak} B over the bound {bound} B ({rss_at_stop} B at the stall)");

    let out = common::wait_within(job, "the run after SIGCONT", Duration::from_secs(600));
    assert!(out.status.success(), "the run failed after the stall: {}", String::from_utf8_lossy(&out.stderr));
    let actual = mysql_rows(&url);
    assert!(expected.len() > 1000, "the input should produce rows in every table");
    if expected != actual {
        let missing: Vec<_> = expected.iter().filter(|l| !actual.contains(l)).take(5).collect();
        let extra: Vec<_> = actual.iter().filter(|l| !expected.contains(l)).take(5).collect();
        panic!("after the stall: missing {missing:#?}, unexpected {extra:#?}");
    }
    eprintln!(
        "paused at {paused_at} of {produced} records; RSS {rss_at_stop} B at the stall, peak {peak} B, bound {bound} B"
    );
}

/// The number of lines of every file under `dir` (one record per line).
fn walk_lines(dir: &Path) -> u64 {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            n += walk_lines(&path);
        } else {
            n += std::fs::read(&path).expect("read").iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }
    n
}
