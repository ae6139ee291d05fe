//! The MySQL and PostgreSQL sinks against real servers (started by
//! `scripts/db-up.sh`; these tests start nothing and fail when the servers do
//! not answer): every table equals the SQLite result of the same input, a
//! wrong password is a one-line error, a server stopped in the middle of a
//! run loses nothing, and runs killed with SIGKILL (on file and on Kafka input)
//! end like an uninterrupted one. The Kafka-input test also needs the broker
//! of `scripts/kafka-up.sh`.
//!
//! Each test writes into its own database (`edu_rtdw_t_*`, dropped and created
//! afresh), so the tests are independent and re-runnable. They hold one lock
//! because the outage tests stop the servers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::servers::{
    Server, assert_same, committed_upper, fresh_database, only, route_all_to, route_all_to_every_sink,
    route_all_to_sqlite, script, server_result, servers,
};
use common::{dump, edu_rtdw};
use connectors::tables::ALL;

fn generate(dir: &Path, scale: u64) -> PathBuf {
    let input = dir.join(format!("input-{scale}"));
    let out =
        edu_rtdw(&["gen", "--out", &input.display().to_string(), "--scale", &scale.to_string(), "--seed", "5"], dir);
    assert!(out.status.success(), "gen failed: {}", String::from_utf8_lossy(&out.stderr));
    input
}

/// The SQLite result of `input`, one `table|cells` line per row (stamps left out).
fn sqlite_result(dir: &Path, input: &Path, extra: &[&str]) -> Vec<String> {
    let db = dir.join("reference.db");
    let mut args = vec![
        "run",
        "--input-dir",
        input.to_str().expect("utf-8 path"),
        "--sqlite",
        db.to_str().expect("utf-8 path"),
        "-q",
    ];
    args.extend_from_slice(extra);
    let out = edu_rtdw(&args, dir);
    assert!(out.status.success(), "SQLite run failed: {}", String::from_utf8_lossy(&out.stderr));
    dump(&db)
}

/// Runs `input` with every table routed to `server` (into database `db`) and compares with SQLite.
fn every_table_equals_sqlite(server: Server, db: &str) {
    let _lock = servers();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 2);
    let expected = sqlite_result(tmp.path(), &input, &[]);
    let url = fresh_database(server, db);
    let config = route_all_to(tmp.path(), server);
    let flag = format!("--{}", server.name());
    let side = tmp.path().join("side.db");
    let args = [
        "run",
        "--input-dir",
        input.to_str().expect("utf-8"),
        "--sqlite",
        side.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        &flag,
        &url,
        "-q",
    ];
    let out = edu_rtdw(&args, tmp.path());
    assert!(out.status.success(), "{} run failed: {}", server.name(), String::from_utf8_lossy(&out.stderr));
    let all: Vec<usize> = (0..ALL.len()).collect();
    let actual = server_result(server, &url, &all);
    assert!(expected.len() > 1000, "the input should produce rows in every table, got {}", expected.len());
    assert_same(server.name(), &expected, &actual);
    // Running again on a complete database changes nothing (its progress says it is all there).
    let out = edu_rtdw(&args, tmp.path());
    assert!(out.status.success(), "second {} run failed: {}", server.name(), String::from_utf8_lossy(&out.stderr));
    assert_same(&format!("{} after a second run", server.name()), &expected, &server_result(server, &url, &all));
}

#[test]
fn every_table_in_mysql_equals_sqlite() {
    every_table_equals_sqlite(Server::Mysql, "edu_rtdw_t_equal");
}

#[test]
fn every_table_in_postgres_equals_sqlite() {
    every_table_equals_sqlite(Server::Postgres, "edu_rtdw_t_equal");
}

#[test]
fn default_routes_split_the_metrics_like_the_seed() {
    let _lock = servers();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 2);
    let expected = sqlite_result(tmp.path(), &input, &[]);
    let mysql = fresh_database(Server::Mysql, "edu_rtdw_t_routes");
    let postgres = fresh_database(Server::Postgres, "edu_rtdw_t_routes");
    let side = tmp.path().join("side.db");
    // No tables yet: `run` creates them (init) before opening the sinks.
    let out = edu_rtdw(
        &[
            "run",
            "--input-dir",
            input.to_str().expect("utf-8"),
            "--sqlite",
            side.to_str().expect("utf-8"),
            "--mysql",
            &mysql,
            "--postgres",
            &postgres,
            "-q",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
    // Indices into `ALL` (SPEC order): 2.1 .. 2.9 are 0 .. 8, the dead letters 9.
    let (in_mysql, in_postgres, in_sqlite) = ([2, 3, 4, 6, 7, 8], [1, 5], [0, 9]);
    assert_same(
        "mysql (2.3, 2.4, 2.5, 2.7, 2.8, 2.9)",
        &only(&expected, &in_mysql),
        &server_result(Server::Mysql, &mysql, &in_mysql),
    );
    assert_same(
        "postgres (2.2, 2.6)",
        &only(&expected, &in_postgres),
        &server_result(Server::Postgres, &postgres, &in_postgres),
    );
    assert_same("sqlite (2.1, dead letters)", &only(&expected, &in_sqlite), &only(&dump(&side), &in_sqlite));
    assert!(server_result(Server::Mysql, &mysql, &[1, 5]).is_empty(), "2.2 and 2.6 must not be in MySQL");
    // init-db on existing tables is a no-op.
    let out = edu_rtdw(&["init-db", "--mysql", &mysql, "--postgres", &postgres], tmp.path());
    assert!(out.status.success(), "init-db failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_same("mysql after init-db", &only(&expected, &in_mysql), &server_result(Server::Mysql, &mysql, &in_mysql));
}

#[test]
fn a_wrong_password_is_a_one_line_error() {
    let _lock = servers();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 1);
    for (flag, url) in [
        ("--mysql", "mysql://edu:wrong-secret@127.0.0.1:3306/edu_rtdw"),
        ("--postgres", "postgres://edu:wrong-secret@127.0.0.1:5432/edu_rtdw"),
        ("--mysql", "mysql://edu:wrong-secret@127.0.0.1:1/edu_rtdw"),
        ("--postgres", "not a url"),
    ] {
        let out = edu_rtdw(
            &["run", "--input-dir", input.to_str().expect("utf-8"), "--sqlite", "x.db", flag, url, "-q"],
            tmp.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag} {url}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{flag} {url}: one line expected, got {stderr}");
        assert!(stderr.starts_with("edu-rtdw: "), "{stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("wrong-secret"), "{stderr}");
    }
}

/// Stops `server` for a few seconds in the middle of a run: the run retries, finishes, and loses nothing.
fn survives_an_outage(server: Server) {
    let _lock = servers();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 30);
    let expected = sqlite_result(tmp.path(), &input, &["--epoch-records", "64"]);
    let url = fresh_database(server, "edu_rtdw_t_outage");
    let config = route_all_to(tmp.path(), server);
    let side = tmp.path().join("side.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args([
            "run",
            "--input-dir",
            input.to_str().expect("utf-8"),
            "--sqlite",
            side.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            &format!("--{}", server.name()),
            &url,
            "--epoch-records",
            "64",
            "-q",
        ])
        .current_dir(tmp.path())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn edu-rtdw");
    // Wait until the run has committed something, then take the server away for a few seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    while committed_upper(server, &url) == 0 {
        assert!(Instant::now() < deadline, "the run committed nothing within 60 s");
        assert!(child.try_wait().expect("wait").is_none(), "the run ended before the outage: make the input larger");
        std::thread::sleep(Duration::from_millis(50));
    }
    script("db-down.sh", &["--force", server.name()]);
    std::thread::sleep(Duration::from_secs(3));
    script("db-up.sh", &[server.name()]);
    let out = common::wait_bounded(child, "the run across the outage");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the run failed across the outage: {stderr}");
    assert!(stderr.contains("unavailable") && stderr.contains("retrying in"), "the run never saw the outage: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let all: Vec<usize> = (0..ALL.len()).collect();
    assert_same(&format!("{} after an outage", server.name()), &expected, &server_result(server, &url, &all));
}

#[test]
fn a_mysql_outage_mid_run_loses_nothing() {
    survives_an_outage(Server::Mysql);
}

#[test]
fn a_postgres_outage_mid_run_loses_nothing() {
    survives_an_outage(Server::Postgres);
}

/// SPEC §5 exactly-once effect: a run killed with SIGKILL at five points and
/// restarted each time ends with every table, in SQLite, MySQL and
/// PostgreSQL, equal to an uninterrupted run; and no sink's committed frontier
/// ever goes back while it recovers. On file input, independent of the broker.
#[test]
fn kill_9_then_restart_equals_an_uninterrupted_run_in_every_sink() {
    let _lock = servers();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 10);
    let input = input.to_str().expect("utf-8").to_string();
    let crashes = Crashes {
        input: &["--input-dir", &input],
        database: "edu_rtdw_t_crash",
        kills: 5,
        kill_after: (200, 1200),
        kafka_outputs: None,
        extra: &[],
    };
    crashes.then_compare(tmp.path());
}

/// The same on Kafka input (`--until-end`, from the broker of `scripts/kafka-up.sh`), killed
/// at eight points, with the Kafka outputs as a fourth sink: besides every table, a
/// `read_committed` consumer of the output topics sees each cleaned signal and dead letter of
/// the uninterrupted run exactly once, and the Kafka sink's committed frontier (its progress
/// records) never goes back either.
#[test]
fn kill_9_on_kafka_input_then_restart_equals_an_uninterrupted_run_in_every_sink() {
    let _lock = servers();
    let _broker = common::kafka::lock();
    let prefix = common::kafka::topics("sqlcrash", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    common::kafka::gen_to_kafka(tmp.path(), &prefix, 3, 41, 2);
    let input = ["--brokers", common::kafka::BROKERS, "--topic-prefix", &prefix, "--until-end"];
    let crashes = Crashes {
        input: &input,
        database: "edu_rtdw_t_kcrash",
        kills: 8,
        kill_after: (1500, 5000),
        kafka_outputs: Some(&prefix),
        extra: &[],
    };
    crashes.then_compare(tmp.path());
}

/// SPEC §5 durable state: the same on Kafka input with a checkpoint every second, killed at
/// ten points (some while a checkpoint is being written); restarts restore the newest
/// checkpoint and read on from its positions, and every sink still ends like an
/// uninterrupted run without checkpoints.
#[test]
fn kill_9_on_kafka_input_with_checkpoints_then_restart_equals_an_uninterrupted_run() {
    let _lock = servers();
    let _broker = common::kafka::lock();
    let prefix = common::kafka::topics("ckptcrash", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    common::kafka::gen_to_kafka(tmp.path(), &prefix, 3, 43, 2);
    let input = ["--brokers", common::kafka::BROKERS, "--topic-prefix", &prefix, "--until-end"];
    let crashes = Crashes {
        input: &input,
        database: "edu_rtdw_t_ckcrash",
        kills: 10,
        kill_after: (1500, 4000),
        kafka_outputs: Some(&prefix),
        extra: &["--checkpoint-every", "1s"],
    };
    crashes.then_compare(tmp.path());
}

/// A crash test: runs `edu-rtdw run INPUT…` into SQLite, MySQL and PostgreSQL (and Kafka),
/// SIGKILLs it `kills` times, lets a last run finish, and compares with an uninterrupted run.
struct Crashes<'a> {
    /// The input flags.
    input: &'a [&'a str],
    /// The MySQL and PostgreSQL databases' name.
    database: &'a str,
    /// How many runs are killed (runs that finish before their kill point do not count).
    kills: u32,
    /// A run is killed after `kill_after.0 + rand % kill_after.1` ms (seeded).
    kill_after: (u64, u64),
    /// The topic prefix of the Kafka outputs, when they are a sink too.
    kafka_outputs: Option<&'a str>,
    /// More flags of the crashed runs.
    extra: &'a [&'a str],
}

impl Crashes<'_> {
    /// The `run` arguments into SQLite file `db`: every sink with `config`, SQLite only without.
    fn args(&self, db: &str, config: &Path, mysql: &str, postgres: &str, every_sink: bool) -> Vec<String> {
        let mut args: Vec<String> = ["run"].iter().chain(self.input).map(|s| s.to_string()).collect();
        args.extend(["--sqlite", db, "-q", "--epoch-records", "64", "-w", "2"].iter().map(|s| s.to_string()));
        args.extend(["--config".to_string(), config.display().to_string()]);
        if every_sink {
            args.extend(self.extra.iter().map(|s| s.to_string()));
            args.extend(["--mysql", mysql, "--postgres", postgres].iter().map(|s| s.to_string()));
        }
        args
    }

    /// Every sink's committed frontier: MySQL, PostgreSQL and (when a sink) Kafka.
    fn committed_uppers(&self, mysql: &str, postgres: &str) -> [i64; 3] {
        let kafka = self.kafka_outputs.map_or(0, common::kafka::committed_upper);
        [committed_upper(Server::Mysql, mysql), committed_upper(Server::Postgres, postgres), kafka]
    }

    /// Kills, restarts, finishes, and compares every sink with the uninterrupted SQLite-only
    /// run (checking after each kill that no committed frontier went back).
    fn then_compare(&self, dir: &Path) {
        let mysql = fresh_database(Server::Mysql, self.database);
        let postgres = fresh_database(Server::Postgres, self.database);
        let every_sink = route_all_to_every_sink(dir, self.kafka_outputs.is_some());
        let sqlite_only = route_all_to_sqlite(dir);
        let crashed = self.args("crashed.db", &every_sink, &mysql, &postgres, true);

        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut kills = 0;
        let mut attempts = 0;
        let mut last_upper = [0; 3];
        while kills < self.kills {
            attempts += 1;
            assert!(attempts < 10 * self.kills, "the run always finished before the kill point");
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut child = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
                .args(&crashed)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            std::thread::sleep(Duration::from_millis(self.kill_after.0 + rng % self.kill_after.1));
            if child.try_wait().expect("try_wait").is_some() {
                continue;
            }
            child.kill().expect("SIGKILL");
            child.wait().expect("wait");
            kills += 1;
            let upper = self.committed_uppers(&mysql, &postgres);
            assert!(
                upper.iter().zip(&last_upper).all(|(now, before)| now >= before),
                "a committed frontier (MySQL, PostgreSQL, Kafka) went back: {last_upper:?} -> {upper:?}"
            );
            last_upper = upper;
        }
        // The kills must hit runs that were committing, not only starting up.
        let sinks = if self.kafka_outputs.is_some() { 3 } else { 2 };
        assert!(
            last_upper[..sinks].iter().all(|&upper| upper > 0),
            "no kill came after a commit of every sink ({last_upper:?}): make the kill points later"
        );
        let out = edu_rtdw(&crashed.iter().map(String::as_str).collect::<Vec<_>>(), dir);
        assert!(out.status.success(), "final run failed: {}", String::from_utf8_lossy(&out.stderr));
        let clean = self.args("clean.db", &sqlite_only, &mysql, &postgres, false);
        let out = edu_rtdw(&clean.iter().map(String::as_str).collect::<Vec<_>>(), dir);
        assert!(out.status.success(), "uninterrupted run failed: {}", String::from_utf8_lossy(&out.stderr));

        let all: Vec<usize> = (0..ALL.len()).collect();
        let expected = dump(&dir.join("clean.db"));
        assert_same("SQLite after kills", &expected, &dump(&dir.join("crashed.db")));
        assert_same("MySQL after kills", &expected, &server_result(Server::Mysql, &mysql, &all));
        assert_same("PostgreSQL after kills", &expected, &server_result(Server::Postgres, &postgres, &all));
        if let Some(prefix) = self.kafka_outputs {
            common::kafka::assert_outputs_match(prefix, &dir.join("clean.db"));
        }
    }
}

/// SPEC §4: values no sink can store (a NUL in text, a timestamp outside the years
/// 1000–9999, a key text longer than its VARCHAR) are dead letters decided in the dataflow,
/// so a run routed to the server commits: its tables equal SQLite's, dead letters included.
fn unstorable_values_become_dead_letters(server: Server, db: &str) {
    let _lock = servers();
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("input");
    let write = |topic: &str, lines: &[String]| {
        std::fs::create_dir_all(input.join(topic)).expect("mkdir");
        std::fs::write(input.join(topic).join("0.jsonl"), lines.join("\n") + "\n").expect("write");
    };
    let t0: i64 = 1_704_067_200_000;
    let signal = |ts: i64, page: &str| {
        format!(
            r#"{{"createTime":"c","data":{{"userid":"7","roomId":"9","timestamp":{ts},"role":"2","msgid":"305","msg":{{"msgtype":"116","msg_data":{{"target_type":"shape","action":"move","page_index":"{page}"}}}}}}}}"#
        )
    };
    write(
        "timeline_client_topic",
        &[signal(t0, "1"), signal(t0 + 1, r"1\u0000"), signal(i64::MAX, "1"), signal(i64::MIN, "1")],
    );
    write(
        "blink_stg_activity__channel_name_dictionary_da",
        &[r#"{"id":"c1","chinese_name":"一\u0000"}"#.to_string(), r#"{"id":"c2","level":"A"}"#.to_string()],
    );
    let qos = |room: &str, event_time: i64, data_time: i64, sub: &str| {
        format!(
            r#"{{"user_id":5,"classroom_id":"{room}","user_type":"student","event_time":{event_time},"sub_event":"{sub}","extra":{{"data_time":{data_time}}}}}"#
        )
    };
    write(
        "qos_log",
        &[
            qos("r", t0, t0, "PPT_PLAY"),
            qos("r", i64::MAX, t0 - 1, "PPT_PLAY"),
            qos("r", t0, i64::MIN, "PPT_PLAY"),
            qos(r"r\u0000", t0, t0 - 2, "PPT_PLAY"),
            qos(&"r".repeat(256), t0, t0 - 2, "PPT_PLAY"),
            qos("r", t0, t0 + 5, "PPT_SUCCESS"),
        ],
    );
    let agora = |room: &str, event: &str, ts: i64| {
        format!(
            r#"{{"classroom_id":"{room}","user_type":"student","user_id":1,"event":"{event}","agora_audioState":{{"lost":1}},"messageCreateTime":{ts}}}"#
        )
    };
    write(
        "agora_record",
        &[agora("c", "E", t0), agora("c", r"E\u0000", t0), agora(&"c".repeat(192), "E", t0), agora("c", "E", i64::MAX)],
    );
    let expected = sqlite_result(tmp.path(), &input, &[]);
    let dead: Vec<&String> = expected.iter().filter(|l| l.starts_with("dead_letters|")).collect();
    // 11, and 3 of 2.8 (no storable day): qos 1 (event_time) and signals 2 and 3 (timestamp).
    assert_eq!(dead.len(), 14, "every unstorable value is a dead letter: {dead:#?}");
    let url = fresh_database(server, db);
    let config = route_all_to(tmp.path(), server);
    let flag = format!("--{}", server.name());
    let side = tmp.path().join("side.db");
    let args = [
        "run",
        "--input-dir",
        input.to_str().expect("utf-8"),
        "--sqlite",
        side.to_str().expect("utf-8"),
        "--config",
        config.to_str().expect("utf-8"),
        &flag,
        &url,
        "-q",
    ];
    let out = edu_rtdw(&args, tmp.path());
    assert!(out.status.success(), "{} run failed: {}", server.name(), String::from_utf8_lossy(&out.stderr));
    let all: Vec<usize> = (0..ALL.len()).collect();
    assert_same(server.name(), &expected, &server_result(server, &url, &all));
}

#[test]
fn unstorable_values_become_dead_letters_in_mysql() {
    unstorable_values_become_dead_letters(Server::Mysql, "edu_rtdw_t_unstorable");
}

#[test]
fn unstorable_values_become_dead_letters_in_postgres() {
    unstorable_values_become_dead_letters(Server::Postgres, "edu_rtdw_t_unstorable");
}
