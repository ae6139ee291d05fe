//! Cluster mode (SPEC §5, §6): two processes of two workers on loopback,
//! started by `scripts/cluster.sh`, write exactly the tables of a `-w 1` run,
//! on file input and on Kafka input (`--until-end`, the broker of
//! `scripts/kafka-up.sh`), and their snapshot dumps agree with `-w 1`'s at
//! every logical time both wrote; a process that cannot reach its peers says
//! so in one line and exits non-zero.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::kafka::{BROKERS, gen_to_kafka, lock, topics};
use common::{TABLES, cluster_sh, dump, edu_rtdw, free_port};

fn run_args<'a>(input: &'a str, db: &'a str, snaps: &'a str) -> Vec<&'a str> {
    vec![
        "--input-dir",
        input,
        "--sqlite",
        db,
        "--epoch-records",
        "150",
        "--snapshot-dir",
        snaps,
        "--snapshot-every",
        "0s",
        "--snapshot-keep",
        "1000",
        "-q",
    ]
}

/// Every dump file under `dir`, as (metric/time, contents).
fn dumps(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for metric in std::fs::read_dir(dir).expect("list dumps") {
        let metric = metric.expect("entry").path();
        for file in std::fs::read_dir(&metric).expect("list metric") {
            let file = file.expect("entry").path();
            let name = format!(
                "{}/{}",
                metric.file_name().and_then(|n| n.to_str()).unwrap_or(""),
                file.file_name().and_then(|n| n.to_str()).unwrap_or("")
            );
            out.push((name, std::fs::read(&file).expect("read dump")));
        }
    }
    out.sort();
    out
}

#[test]
fn two_processes_of_two_workers_match_one_worker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "1", "--seed", "5", "--partitions", "3"], tmp.path());
    assert!(out.status.success(), "gen failed: {}", String::from_utf8_lossy(&out.stderr));
    // The generator's own count (its last line: `N  records in input`).
    let generated = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
        .expect("gen count");

    let mut args = vec!["run"];
    args.extend(run_args("input", "w1.db", "snaps1"));
    let single = edu_rtdw(&args, tmp.path());
    assert!(single.status.success(), "-w 1 failed: {}", String::from_utf8_lossy(&single.stderr));

    // With the summary: process 0 prints it, counting the records read by both processes.
    let with_summary: Vec<&str> = run_args("input", "c.db", "snaps2").into_iter().filter(|a| *a != "-q").collect();
    let stdout = cluster_sh(tmp.path(), 2, 2, &with_summary);
    let summaries: Vec<&str> = stdout.lines().filter(|l| l.starts_with("edu-rtdw: ")).collect();
    assert_eq!(summaries.len(), 1, "one summary expected:\n{stdout}");
    assert!(
        summaries[0].starts_with(&format!("edu-rtdw: {generated} records in ")),
        "the summary does not count the whole cluster's {generated} records: {}",
        summaries[0]
    );

    let (a, b) = (dump(&tmp.path().join("w1.db")), dump(&tmp.path().join("c.db")));
    for table in TABLES {
        assert!(a.iter().any(|l| l.starts_with(&format!("{table}|"))), "table {table} is empty");
    }
    assert_eq!(a, b, "2 processes × 2 workers differ from -w 1");

    // Dumps at the same logical time are byte for byte the same, whoever computed them.
    let (d1, d2) = (dumps(&tmp.path().join("snaps1")), dumps(&tmp.path().join("snaps2")));
    let common: Vec<_> = d1.iter().filter(|(name, _)| d2.iter().any(|(n, _)| n == name)).collect();
    assert!(
        common.len() >= 8,
        "no logical time dumped by both runs: {:?} / {:?}",
        d1.iter().map(|d| &d.0).collect::<Vec<_>>(),
        d2.iter().map(|d| &d.0).collect::<Vec<_>>()
    );
    for (name, contents) in common {
        let other = &d2.iter().find(|(n, _)| n == name).expect("common").1;
        assert!(contents == other, "dump {name} differs between -w 1 and the cluster");
    }
}

#[test]
fn an_unreachable_peer_is_one_line_and_exit_1() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(tmp.path().join("hosts"), format!("127.0.0.1:{port}\n127.0.0.1:{}\n", port + 1)).expect("hosts");
    common::write_partition(&tmp.path().join("input"), "qos_log", 0, &[b"{}"]);
    let started = Instant::now();
    // Process 1 connects to process 0, which never starts.
    let out = edu_rtdw(
        &[
            "-n",
            "2",
            "-p",
            "1",
            "-h",
            "hosts",
            "--connect-timeout-s",
            "2",
            "run",
            "--input-dir",
            "input",
            "--sqlite",
            "p1.db",
            "-q",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("process 1 of 2 cannot reach its cluster peers"), "{stderr}");
}

#[test]
fn kafka_input_through_two_processes_matches_one_worker() {
    let _broker = lock();
    let tmp = tempfile::tempdir().expect("tempdir");
    let prefix = topics("cluster", 3);
    gen_to_kafka(tmp.path(), &prefix, 1, 9, 3);
    // Tables only: the Kafka outputs stay off, so the two runs do not share output topics.
    std::fs::write(
        tmp.path().join("cfg.toml"),
        "[routes]\nstudent_signal_etl = [\"sqlite\"]\ndead_letters = [\"sqlite\"]\n",
    )
    .expect("config");
    let args = |db: &'static str| -> Vec<String> {
        [
            "--config",
            "cfg.toml",
            "--brokers",
            BROKERS,
            "--topic-prefix",
            &prefix,
            "--until-end",
            "--epoch-records",
            "150",
            "--sqlite",
            db,
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut single = vec!["run".to_string()];
    single.extend(args("w1.db"));
    let refs: Vec<&str> = single.iter().map(String::as_str).collect();
    let out = edu_rtdw(&refs, tmp.path());
    assert!(out.status.success(), "-w 1 failed: {}", String::from_utf8_lossy(&out.stderr));
    let cluster = args("c.db");
    cluster_sh(tmp.path(), 2, 2, &cluster.iter().map(String::as_str).collect::<Vec<_>>());

    let (a, b) = (dump(&tmp.path().join("w1.db")), dump(&tmp.path().join("c.db")));
    for table in TABLES {
        assert!(a.iter().any(|l| l.starts_with(&format!("{table}|"))), "table {table} is empty");
    }
    assert_eq!(a, b, "Kafka input: 2 processes × 2 workers differ from -w 1");
}
