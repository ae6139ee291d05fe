//! The throughput harness (`edu-rtdw bench`) under its tightest throttle: one
//! epoch in flight and tiny epochs, so that each worker's source waits for the
//! probe after every epoch and is woken by the worker loop (it parks instead of
//! spinning). A lost wake-up would hang the run, which the time limit turns into
//! a failure naming the command.

mod common;

use std::path::Path;
use std::time::Duration;

/// Runs `edu-rtdw` with `args` in `dir` (bounded), panicking unless it exits 0.
fn run(args: &[&str], dir: &Path) -> String {
    let out = common::edu_rtdw_within(args, dir, Duration::from_secs(300));
    assert!(out.status.success(), "edu-rtdw {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_throttled_bench_finishes_every_epoch_of_every_run() {
    const EPOCH: u64 = 16;
    let tmp = tempfile::tempdir().expect("tempdir");
    // The same sample as the bench's (scale 1, seed 42, 4 partitions), written as files:
    // the longest partition fixes how many epochs a one-worker source emits.
    run(&["gen", "--out", "in", "--scale", "1", "--seed", "42", "--partitions", "4"], tmp.path());
    let mut lines = Vec::new();
    for topic in std::fs::read_dir(tmp.path().join("in")).expect("gen output") {
        for part in std::fs::read_dir(topic.expect("topic").path()).expect("topic dir") {
            let bytes = std::fs::read(part.expect("partition").path()).expect("partition file");
            lines.push(bytes.iter().filter(|&&b| b == b'\n').count() as u64);
        }
    }
    let epochs_per_run = lines.iter().max().expect("partitions").div_ceil(EPOCH);

    let stdout = run(
        &[
            "bench",
            "--scale",
            "1",
            "--seed",
            "42",
            "--partitions",
            "4",
            "--runs",
            "2",
            "--workers",
            "1,2",
            "--max-inflight",
            "1",
            "--epoch-records",
            "16",
        ],
        tmp.path(),
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("the last line is JSON");
    assert_eq!(report["messages"].as_u64(), Some(lines.iter().sum()), "one message per line written by gen");
    let runs = report["all_metrics"].as_array().expect("all_metrics");
    let workers: Vec<u64> = runs.iter().map(|r| r["workers"].as_u64().expect("workers")).collect();
    assert_eq!(workers, vec![1, 2]);
    // One worker: every epoch of both runs passed the probe (the latency histogram has one
    // entry per epoch the source emitted and saw complete).
    assert_eq!(runs[0]["latency_ms"]["epochs"].as_u64(), Some(2 * epochs_per_run), "{}", runs[0]);
    for run in runs {
        assert_eq!(run["records_per_s_runs"].as_array().map(Vec::len), Some(2), "both runs finished: {run}");
        assert!(run["row_updates"].as_u64() > Some(0), "{run}");
    }
}
