//! Kafka in and out on the real broker started by `scripts/kafka-up.sh`
//! (Apache Kafka on 127.0.0.1:9092). Every test uses its own topic prefix, so tests
//! are independent and can be re-run against the same broker.
//!
//! * the same generated records through Kafka (`--until-end`) and through
//!   file replay give identical tables;
//! * the cleaned-signal topic holds exactly one record per kept signal, with
//!   the input's key, and the DLQ topic exactly the dead letters;
//! * a second run over a grown log resumes: nothing lost, nothing doubled;
//! * `kill -9` at several points of a live run, then a restart, ends like file
//!   replay (the bounded-run kill test, with every SQL sink and the Kafka
//!   outputs at once, is in `tests/sql_sinks.rs`);
//! * the broker stopped for 30 s in the middle of a live run and started again:
//!   the job logs the outage in a few lines, waits, resumes, and loses and
//!   doubles nothing, in the tables and in the output topics;
//! * a partition that goes idle and resumes behind windows closed meanwhile
//!   gives `late` dead letters that carry the record's message.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{
    BROKERS, append_layout, assert_outputs_match, consume_all, gen_to_files, gen_to_kafka, lock, topics,
};
use common::{dump, edu_rtdw, rows};
use rdkafka::config::ClientConfig;

fn kafka_args<'a>(prefix: &'a str, db: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--brokers", BROKERS, "--topic-prefix", prefix, "--until-end", "--sqlite", db, "-q"];
    args.extend_from_slice(extra);
    args
}

fn run_ok(dir: &Path, args: &[&str]) {
    let out = edu_rtdw(args, dir);
    assert!(out.status.success(), "edu-rtdw {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Starts `edu-rtdw ARGS` and SIGKILLs it after `min_ms + rand % span_ms`, five times (runs that
/// finish before their kill point do not count).
fn kill_9_five_times(dir: &Path, args: &[&str], seed: u64, min_ms: u64, span_ms: u64) {
    let mut rng = seed;
    let mut kills = 0;
    while kills < 5 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(min_ms + rng % span_ms);
        let mut child = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(delay);
        if child.try_wait().expect("try_wait").is_some() {
            // It finished before the kill point: the input is too small for this delay; kill earlier next time.
            continue;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        kills += 1;
    }
}

#[test]
fn kafka_until_end_equals_file_replay_and_outputs_are_exact() {
    let _broker = lock();
    let prefix = topics("eq", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    gen_to_kafka(tmp.path(), &prefix, 1, 3, 2);
    gen_to_files(tmp.path(), "files", 1, 3, 2);
    run_ok(tmp.path(), &kafka_args(&prefix, "kafka.db", &["-w", "2"]));
    run_ok(tmp.path(), &["run", "--input-dir", "files", "--sqlite", "files.db", "-q"]);
    let kafka = dump(&tmp.path().join("kafka.db"));
    assert!(kafka.iter().any(|l| l.starts_with("user_av_record|")), "no windows");
    assert_eq!(kafka, dump(&tmp.path().join("files.db")), "Kafka and file replay differ");
    assert_outputs_match(&prefix, &tmp.path().join("kafka.db"));

    // The output key is the input's key, and the value is the flat record of SPEC §2.1.
    let inputs: BTreeMap<(i32, i64), Option<Vec<u8>>> =
        consume_all(&format!("{prefix}timeline_client_topic")).into_iter().map(|(p, o, k, _, _)| ((p, o), k)).collect();
    let signals = consume_all(&format!("{prefix}timeline_analysis_student"));
    assert!(!signals.is_empty());
    for (_, _, key, value, h) in &signals {
        let at = (h["edu-partition"].parse::<i32>().expect("p"), h["edu-offset"].parse::<i64>().expect("o"));
        assert_eq!(key, &inputs[&at], "key of the signal at {at:?}");
        let v: serde_json::Value = serde_json::from_slice(value).expect("JSON value");
        for field in [
            "messageCreateTime",
            "timeStamp",
            "messageTimeStamp",
            "userId",
            "roomId",
            "role",
            "msgId",
            "msgType",
            "targetId",
            "targetType",
            "action",
            "subAction",
            "pageIndex",
            "event",
        ] {
            assert!(v.get(field).is_some(), "field {field} missing in {v}");
        }
        assert_eq!(v["msgId"], "305");
    }
    let dlq = consume_all(&format!("{prefix}edu_rtdw_dlq"));
    assert!(dlq.iter().any(|(_, _, _, v, _)| String::from_utf8_lossy(v).contains("not_json")), "no garbage in the DLQ");
}

#[test]
fn a_second_run_over_a_grown_log_resumes_without_loss_or_duplicates() {
    let _broker = lock();
    let prefix = topics("grow", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    gen_to_kafka(tmp.path(), &prefix, 1, 21, 2);
    run_ok(tmp.path(), &kafka_args(&prefix, "kafka.db", &[]));
    gen_to_kafka(tmp.path(), &prefix, 1, 22, 2);
    run_ok(tmp.path(), &kafka_args(&prefix, "kafka.db", &["-w", "2"]));

    // The same two batches, appended partition by partition, replayed from files in one go.
    gen_to_files(tmp.path(), "a", 1, 21, 2);
    gen_to_files(tmp.path(), "b", 1, 22, 2);
    append_layout(tmp.path(), "a", "b");
    run_ok(tmp.path(), &["run", "--input-dir", "a", "--sqlite", "files.db", "-q"]);
    assert_eq!(
        dump(&tmp.path().join("kafka.db")),
        dump(&tmp.path().join("files.db")),
        "resumed run differs from one run over everything"
    );
    assert_outputs_match(&prefix, &tmp.path().join("kafka.db"));
}

#[test]
fn live_epochs_equal_file_replay_and_the_latency_report_counts_every_record() {
    let _broker = lock();
    let prefix = topics("live", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let live = [
        "run",
        "--brokers",
        BROKERS,
        "--topic-prefix",
        &prefix,
        "--sqlite",
        "live.db",
        "-q",
        "--epoch-ms",
        "50",
        "--exit-when-idle",
        "--idle-timeout-ms",
        "10000",
        "--latency-report",
        "latency.json",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(live)
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn run");
    let report = tmp.path().join("latency.json");
    let started = Instant::now();
    while !report.exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Open loop at 5,000 records/s while the job consumes.
    let out = edu_rtdw(
        &[
            "gen",
            "--brokers",
            BROKERS,
            "--topic-prefix",
            &prefix,
            "--scale",
            "1",
            "--seed",
            "5",
            "--partitions",
            "2",
            "--rate",
            "5000",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "gen --rate failed: {}", String::from_utf8_lossy(&out.stderr));
    let produced: u64 =
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().and_then(|n| n.parse().ok()).expect("count");
    assert!(common::wait_bounded(child, "the live run").status.success(), "live run failed");

    gen_to_files(tmp.path(), "files", 1, 5, 2);
    run_ok(tmp.path(), &["run", "--input-dir", "files", "--sqlite", "files.db", "-q"]);
    let live_db = tmp.path().join("live.db");
    let (live_rows, file_rows) = (dump(&live_db), dump(&tmp.path().join("files.db")));
    let only_live: Vec<_> = live_rows.iter().filter(|r| !file_rows.contains(r)).collect();
    let only_files: Vec<_> = file_rows.iter().filter(|r| !live_rows.contains(r)).collect();
    assert!(
        only_live.is_empty() && only_files.is_empty(),
        "live epochs and file replay differ: only live {only_live:?}; only file replay {only_files:?}"
    );
    let cuts = rows(&live_db, "SELECT COUNT(*) FROM edu_rtdw_clock");
    assert!(cuts[0][0].parse::<u64>().expect("n") > 2, "no live cuts recorded");

    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("JSON");
    assert_eq!(r["final"], true);
    assert_eq!(r["records"].as_u64(), Some(produced), "{r}");
    assert_eq!((r["pending"].as_u64(), r["negative"].as_u64()), (Some(0), Some(0)), "{r}");
    let p50 = r["latency_ms"]["p50"].as_u64().expect("p50");
    assert!(p50 <= r["latency_ms"]["max"].as_u64().expect("max"), "{r}");

    // A replay over the same log reads the recorded cuts: every time is already committed, nothing changes.
    run_ok(tmp.path(), &kafka_args(&prefix, "live.db", &[]));
    assert_eq!(dump(&live_db), dump(&tmp.path().join("files.db")), "a replay over the live cuts changed the tables");
}

#[test]
fn live_epochs_survive_kill_9_exactly() {
    let _broker = lock();
    let prefix = topics("livecrash", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    gen_to_kafka(tmp.path(), &prefix, 4, 33, 2);
    // Short live epochs over two workers: many cuts and commits for the kills to land between.
    let args = [
        "run",
        "--brokers",
        BROKERS,
        "--topic-prefix",
        &prefix,
        "--sqlite",
        "crashed.db",
        "-q",
        "-w",
        "2",
        "--epoch-ms",
        "20",
        "--exit-when-idle",
        "--idle-timeout-ms",
        "10000",
    ];
    kill_9_five_times(tmp.path(), &args, 0x2545_f491_4f6c_dd1d, 300, 1500);
    run_ok(tmp.path(), &args);
    // The reference is file replay of the same records (fewer broker reads). The Kafka outputs
    // are exact by source position, as without live epochs.
    gen_to_files(tmp.path(), "files", 4, 33, 2);
    run_ok(tmp.path(), &["run", "--input-dir", "files", "--sqlite", "files.db", "-q"]);
    assert_eq!(
        dump(&tmp.path().join("crashed.db")),
        dump(&tmp.path().join("files.db")),
        "killed and restarted live run differs"
    );
}

/// A live run that never ends by itself: killed when the test ends, passed or failed.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first row of `query` on `db` once there is one, polling every 50 ms for at most 60 s.
/// A database or table that does not exist yet counts as no row.
fn first_row_within_a_minute(db: &Path, query: &str, what: &str) -> Vec<String> {
    let started = Instant::now();
    loop {
        let found = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()
            .and_then(|conn| {
                let mut stmt = conn.prepare(query).ok()?;
                let n = stmt.column_count();
                stmt.query_row([], |r| (0..n).map(|i| r.get_ref(i).map(common::cell)).collect::<Result<Vec<_>, _>>())
                    .ok()
            });
        if let Some(row) = found {
            return row;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no {what} after 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SPEC §3/§4 with real idle partitions: partition 0 of the timeline topic goes quiet at
/// 100 s, partition 1 at 300 s; once both are idle, windows close up to the larger watermark
/// (295 s): minute 60 s is written, minute 300 s stays open. Partition 0 then resumes with a
/// signal at 100.5 s: not late for its own watermark (95 s), but its minute was written, so
/// it is a `late` dead letter of 2.3, and it keeps its message.
#[test]
fn a_partition_resuming_behind_closed_windows_gives_late_dead_letters_with_their_message() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let _broker = lock();
    let prefix = topics("resume", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let topic = format!("{prefix}timeline_client_topic");
    let signal = |ts: i64| {
        format!(
            r#"{{"data":{{"userid":"7","roomId":"9","timestamp":{ts},"role":"2","msgid":"305","msg":{{"msgtype":"116","msg_data":{{"target_type":"shape","action":"move"}}}}}}}}"#
        )
    };
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", BROKERS).create().expect("producer");
    let produce = |partition: i32, value: &str| {
        producer.send(BaseRecord::<(), str>::to(&topic).partition(partition).payload(value)).expect("send");
        producer.flush(Duration::from_secs(30)).expect("flush");
    };
    produce(0, &signal(100_000));
    produce(1, &signal(300_000));

    let args = [
        "run",
        "--brokers",
        BROKERS,
        "--topic-prefix",
        &prefix,
        "--sqlite",
        "resume.db",
        "-q",
        "--epoch-ms",
        "50",
        "--idle-timeout-ms",
        "500",
    ];
    let live_run = KilledOnDrop(
        Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
            .args(args)
            .current_dir(tmp.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn run"),
    );
    let db = tmp.path().join("resume.db");
    // Minute 60 s written: both partitions went idle (with live epochs, an epoch that holds
    // only the idle partitions' marks must close too).
    first_row_within_a_minute(&db, "SELECT event_count FROM timeline_signal_analysis", "closed minute");
    let resumed = signal(100_500);
    produce(0, &resumed);
    let dead = first_row_within_a_minute(
        &db,
        "SELECT source, \"partition\", \"offset\", metric, reason, CAST(raw AS TEXT) FROM dead_letters",
        "late dead letter",
    );
    drop(live_run);
    assert_eq!(dead, ["timeline_client_topic", "0", "1", "class_performance_1m", "late", resumed.as_str()]);
    let minutes = rows(&db, "SELECT event_count FROM timeline_signal_analysis");
    assert_eq!(minutes, [["1"]], "minute 60 s once, unchanged by the late record; minute 300 s still open");
}

/// SPEC §5: the source reads `read_committed`. A transactional upstream writes three records to
/// the user topic in a transaction it aborts, then two in one it commits (the partition then
/// ends with a commit marker, an offset no consumer is ever given). A bounded run counts exactly
/// the two committed records (two `not_json` dead letters at their own offsets) and ends.
#[test]
fn aborted_upstream_records_are_never_counted_and_a_bounded_run_ends_past_markers() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let _broker = lock();
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = topics("aborted", 1);
    let topic = format!("{prefix}uc_account-user");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("transactional.id", format!("{prefix}upstream"))
        .create()
        .expect("producer");
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).expect("init transactions");
    let transaction = |lines: &[&str], commit: bool| {
        producer.begin_transaction().expect("begin");
        for line in lines {
            producer.send(BaseRecord::<[u8], [u8]>::to(&topic).payload(line.as_bytes()).partition(0)).expect("send");
        }
        if commit {
            producer.commit_transaction(timeout).expect("commit");
        } else {
            producer.flush(timeout).expect("flush");
            producer.abort_transaction(timeout).expect("abort");
        }
    };
    transaction(&["aborted 1", "aborted 2", "aborted 3"], false);
    transaction(&["committed 1", "committed 2"], true);
    run_ok(tmp.path(), &kafka_args(&prefix, "out.db", &[]));
    let dead = rows(&tmp.path().join("out.db"), "SELECT \"offset\", reason, raw FROM dead_letters ORDER BY \"offset\"");
    // Offsets 0-2: aborted records, 3: the abort marker, 4-5: the committed records, 6: the commit marker.
    let want = vec![
        vec!["4".to_string(), "not_json".to_string(), "committed 1".to_string()],
        vec!["5".to_string(), "not_json".to_string(), "committed 2".to_string()],
    ];
    assert_eq!(dead, want);
}

/// SPEC §3 clock poison: a record whose event time is more than `max_future` (10 min) ahead
/// of its Kafka timestamp is a `future` dead letter for the windowed metric that would count
/// it, and does not move its partition's watermark, so the records after it are not late.
#[test]
fn records_far_ahead_of_their_log_time_are_future_and_poison_no_watermark() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let _broker = lock();
    let prefix = topics("future", 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", BROKERS).create().expect("producer");
    let produce = |topic: &str, log_time: i64, value: &str| {
        let topic = format!("{prefix}{topic}");
        producer.send(BaseRecord::<(), str>::to(&topic).partition(0).timestamp(log_time).payload(value)).expect("send");
    };
    let signal = |ts: i64, role: &str| {
        format!(
            r#"{{"data":{{"userid":"7","roomId":"9","timestamp":{ts},"role":"{role}","msgid":"305","msg":{{"msgtype":"116","msg_data":{{"target_type":"shape","action":"move"}}}}}}}}"#
        )
    };
    let agora = |ts: i64| {
        format!(
            r#"{{"classroom_id":"c1","user_type":"student","user_id":1,"agora_channel_id":100,"event":"E","agora_videoState":{{"fr":1,"uid":11}},"messageCreateTime":{ts}}}"#
        )
    };
    // Log times ten minutes ago, on a minute boundary (recent, so retention keeps them).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let t = now / 60_000 * 60_000 - 600_000;
    let year_3000 = 32_503_680_000_000;
    produce("timeline_client_topic", t, &signal(t, "2")); // 0 counts
    produce("timeline_client_topic", t + 1000, &signal(year_3000, "2")); // 1 future
    produce("timeline_client_topic", t + 1000, &signal(year_3000, "1")); // 2 teacher: filtered, W unmoved
    produce("timeline_client_topic", t + 2000, &signal(t + 600_000 + 2000, "2")); // 3 exactly 10 min ahead: counts
    produce("timeline_client_topic", t + 2000, &signal(t + 2000, "2")); // 4 W = t + 597 s: late
    produce("agora_record", t, &agora(t)); // 0 counts
    produce("agora_record", t, &agora(year_3000)); // 1 future
    produce("agora_record", t + 1000, &agora(t + 1000)); // 2 counts: W = t − 60 s
    producer.flush(Duration::from_secs(30)).expect("flush");

    run_ok(tmp.path(), &kafka_args(&prefix, "out.db", &[]));
    let db = tmp.path().join("out.db");
    let dead = rows(&db, "SELECT source, \"offset\", metric, reason FROM dead_letters ORDER BY source, \"offset\"");
    let row = |source: &str, offset: &str, metric: &str, reason: &str| {
        vec![source.to_string(), offset.to_string(), metric.to_string(), reason.to_string()]
    };
    assert_eq!(
        dead,
        vec![
            row("agora_record", "1", "av_quality_30s", "future"),
            row("timeline_client_topic", "1", "class_performance_1m", "future"),
            row("timeline_client_topic", "4", "class_performance_1m", "late"),
        ]
    );
    // 2.3: offset 0 in minute t, offset 3 in minute t + 10 min; 2.1 keeps every student's signal.
    let minutes = rows(&db, "SELECT event_count FROM timeline_signal_analysis ORDER BY start_time");
    assert_eq!(minutes, [["1"], ["1"]]);
    let signals = rows(&db, "SELECT src_offset FROM timeline_analysis_student ORDER BY src_offset");
    assert_eq!(signals, [["0"], ["1"], ["3"], ["4"]]);
    // 2.5: offsets 0 and 2 in the window of t.
    assert_eq!(rows(&db, "SELECT event_sum, event_count FROM user_av_record"), [["2", "2"]]);

    // Configurable: with 1,000 years of slack nothing is future, and offset 1 pushes W so far
    // that 3 and 4 are late (the poison this rule prevents).
    run_ok(tmp.path(), &kafka_args(&prefix, "slack.db", &["--max-future-ms", "31536000000000"]));
    let db = tmp.path().join("slack.db");
    let reasons = rows(&db, "SELECT source, \"offset\", reason FROM dead_letters ORDER BY source, \"offset\"");
    let row = |source: &str, offset: &str| vec![source.to_string(), offset.to_string(), "late".to_string()];
    assert_eq!(
        reasons,
        vec![row("agora_record", "2"), row("timeline_client_topic", "3"), row("timeline_client_topic", "4")]
    );
}

/// How long the broker stays down in the outage test.
const OUTAGE: Duration = Duration::from_secs(30);

/// The broker stopped for 30 s in the middle of a live run and started again with its data:
/// the run logs the outage in a few lines (not one per retry), waits, resumes, and
/// ends with the tables of a file replay of the same records, and each output record exactly
/// once. The generator produces at a fixed rate across the outage (its idempotent producer
/// waits too). The idle timeout (60 s) is longer than the broker is away, so no partition
/// goes idle, and the run does not end, because of the outage.
#[test]
fn a_broker_outage_mid_run_is_waited_out_with_nothing_lost_or_doubled() {
    let _broker = lock();
    let prefix = topics("outage", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut live = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args([
            "run",
            "--brokers",
            BROKERS,
            "--topic-prefix",
            &prefix,
            "--sqlite",
            "live.db",
            "-q",
            "--epoch-ms",
            "50",
            "--exit-when-idle",
            "--idle-timeout-ms",
            "60000",
        ])
        .current_dir(tmp.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    let stderr = live.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let lines: Vec<String> = std::io::BufReader::new(stderr).lines().map_while(Result::ok).collect();
        lines
    });
    // Not killed on a failure: a run left behind ends by itself after its idle timeout.
    let rate = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(["gen", "--brokers", BROKERS, "--topic-prefix", &prefix, "--scale", "1", "--seed", "7"])
        .args(["--partitions", "2", "--rate", "1000"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gen");

    // In the middle: once the run has committed some signals, and while records still come.
    let db = tmp.path().join("live.db");
    first_row_within_a_minute(&db, "SELECT 1 FROM timeline_analysis_student", "committed signal");
    let outage = common::kafka::BrokerOutage::begin();
    let stopped = Instant::now();
    std::thread::sleep(OUTAGE);
    outage.end();
    let away = stopped.elapsed();

    let out = common::wait_bounded(rate, "gen --rate across the outage");
    assert!(out.status.success(), "gen --rate failed: {}", String::from_utf8_lossy(&out.stderr));
    let status = common::wait_within(live, "the live run across the outage", Duration::from_secs(600)).status;
    let log = log.join().expect("stderr reader");
    let text = log.join("\n");
    assert!(status.success(), "the live run failed across the outage:\n{text}");
    // Not a flood: the brokers going away is one warning for the whole process (from whichever
    // client reports it first), their answering again one info line; besides, at most a few
    // warnings (a transaction retried; a connection closed after the minute of idleness that
    // ends the run). Which client reports the outage, and when, depends on when librdkafka's
    // events are served, so the test bounds the lines rather than pinning them.
    let count = |what: &str| log.iter().filter(|l| l.contains(what)).count();
    assert!(count("brokers unreachable") <= 2, "{text}");
    let warnings = count(" WARN ");
    assert!(warnings <= 4, "{warnings} warning lines for one outage of {away:?}:\n{text}");
    assert!(!text.contains("panicked"), "{text}");

    gen_to_files(tmp.path(), "files", 1, 7, 2);
    run_ok(tmp.path(), &["run", "--input-dir", "files", "--sqlite", "files.db", "-q"]);
    let files = tmp.path().join("files.db");
    let (live_rows, file_rows) = (dump(&db), dump(&files));
    let only_live: Vec<_> = live_rows.iter().filter(|r| !file_rows.contains(r)).take(5).collect();
    let only_files: Vec<_> = file_rows.iter().filter(|r| !live_rows.contains(r)).take(5).collect();
    assert!(
        only_live.is_empty() && only_files.is_empty(),
        "the run across the outage and file replay differ: only live {only_live:?}; only file replay {only_files:?}"
    );
    assert_outputs_match(&prefix, &files);
    eprintln!("broker away {away:?}; the run's log:\n{text}");
}

/// SPEC §5 durable state and retention: a live run is killed after checkpoints; the log of
/// every source partition before the newest checkpoint's position is deleted with Kafka's
/// `kafka-delete-records`; a start without that checkpoint is refused in one line naming the
/// partition and offsets; more input is produced; the restored run reads on from the
/// checkpoint, and its tables equal a file replay of all the input, deleted part included.
#[test]
fn the_log_before_a_checkpoint_may_be_deleted() {
    let _broker = lock();
    let prefix = topics("retain", 2);
    let tmp = tempfile::tempdir().expect("tempdir");
    gen_to_kafka(tmp.path(), &prefix, 2, 61, 2);
    let live = |db: &'static str| -> Vec<String> {
        let args = [
            "run",
            "--brokers",
            BROKERS,
            "--topic-prefix",
            &prefix,
            "--sqlite",
            db,
            "-q",
            "-w",
            "2",
            "--epoch-ms",
            "20",
            "--exit-when-idle",
            "--idle-timeout-ms",
            "8000",
            "--checkpoint-every",
            "200ms",
        ];
        args.iter().map(|s| s.to_string()).collect()
    };
    common::kill_after_checkpoints(&live("live.db"), tmp.path(), 3);
    let positions = newest_checkpoint_positions(&tmp.path().join("live.checkpoints"));
    assert!(positions.iter().any(|(_, _, next)| *next > 0), "the checkpoint read nothing: {positions:?}");
    delete_records(tmp.path(), &prefix, &positions);

    let out = edu_rtdw(&live("fresh.db").iter().map(String::as_str).collect::<Vec<_>>(), tmp.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("were deleted and no checkpoint covers them"), "{stderr}");
    // The line names a partition and the offsets that are gone: `NAME/P starts at offset N, … from offset 0`.
    let named = positions.iter().any(|(topic, partition, next)| {
        stderr.contains(&format!(
            "{prefix}{topic}/{partition} starts at offset {next}, but the job must read it from offset 0"
        ))
    });
    assert!(named, "{stderr}");

    gen_to_kafka(tmp.path(), &prefix, 2, 62, 2);
    run_ok(tmp.path(), &live("live.db").iter().map(String::as_str).collect::<Vec<_>>());
    gen_to_files(tmp.path(), "a", 2, 61, 2);
    gen_to_files(tmp.path(), "b", 2, 62, 2);
    append_layout(tmp.path(), "a", "b");
    run_ok(tmp.path(), &["run", "--input-dir", "a", "--sqlite", "files.db", "-q"]);
    assert_eq!(dump(&tmp.path().join("live.db")), dump(&tmp.path().join("files.db")), "restored run differs");
}

/// `(topic, partition, next offset)` of every source partition in the newest checkpoint.
fn newest_checkpoint_positions(dir: &Path) -> Vec<(String, u32, u64)> {
    let newest = std::fs::read_dir(dir)
        .expect("list checkpoints")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("MANIFEST").exists())
        .max()
        .expect("a complete checkpoint");
    let text = std::fs::read_to_string(newest.join("MANIFEST")).expect("manifest");
    let manifest: connectors::checkpoint::Manifest =
        serde_json::from_str(text.lines().next().expect("line")).expect("manifest json");
    let restored = connectors::checkpoint::load_newest(dir, &manifest.input, |w| panic!("{w}"))
        .expect("load")
        .expect("a checkpoint");
    let parts = connectors::source::parts_in(&restored).expect("sources");
    parts.values().map(|p| (p.topic.default_name().to_string(), p.partition, p.next)).collect()
}

/// Deletes every partition's records below its `next` offset with `kafka-delete-records`.
fn delete_records(dir: &Path, prefix: &str, positions: &[(String, u32, u64)]) {
    let partitions: Vec<String> = positions
        .iter()
        .filter(|(_, _, next)| *next > 0)
        .map(|(topic, p, next)| format!(r#"{{"topic":"{prefix}{topic}","partition":{p},"offset":{next}}}"#))
        .collect();
    let json = dir.join("delete.json");
    std::fs::write(&json, format!(r#"{{"version":1,"partitions":[{}]}}"#, partitions.join(","))).expect("write");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-tool.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["delete-records", "--bootstrap-server", BROKERS, "--offset-json-file"])
        .arg(&json)
        .output()
        .expect("run kafka-delete-records");
    assert!(out.status.success(), "kafka-delete-records failed: {}", String::from_utf8_lossy(&out.stderr));
}
