//! Durable state (SPEC §5): checkpoints on file input, checked against runs without
//! them. A run killed with SIGKILL at seeded random points (checkpoints every 100 ms, so
//! some kills land while one is being written) and restarted each time from its newest
//! checkpoint ends with the tables of an uninterrupted run; a checkpoint taken with
//! `-w 2` restores under `-w 1`, `-w 3` and two processes of two workers; a restore
//! reads no record at or before the checkpoint's time; a truncated newest checkpoint
//! falls back to the previous one, and one of another format version is refused; the
//! final snapshot of a restored run (served from the arrangements) equals an uninterrupted
//! run's.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{cluster_sh, dump, edu_rtdw, kill_after_checkpoints, spawn_logged};

const EPOCH: u64 = 64;

fn generate(dir: &Path, scale: u64) -> PathBuf {
    let input = dir.join("input");
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", &scale.to_string(), "--seed", "11"], dir);
    assert!(out.status.success(), "gen failed: {}", String::from_utf8_lossy(&out.stderr));
    input
}

/// `run` over `input` into `db`, checkpointing every 100 ms (`0s`: never), plus `extra`.
fn run_args(input: &Path, db: &str, every: &str, extra: &[&str]) -> Vec<String> {
    let input = input.display().to_string();
    let mut args: Vec<String> =
        ["run", "--input-dir", &input, "--sqlite", db, "--epoch-records", "64", "--checkpoint-every", every]
            .iter()
            .map(|s| s.to_string())
            .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The tables of an uninterrupted run without checkpoints.
fn uninterrupted(dir: &Path, input: &Path) -> Vec<String> {
    let args = run_args(input, "clean.db", "0s", &["-q"]);
    let out = edu_rtdw(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir);
    assert!(out.status.success(), "uninterrupted run failed: {}", String::from_utf8_lossy(&out.stderr));
    dump(&dir.join("clean.db"))
}

/// Copies the SQLite file and the checkpoints of the crashed run into the directory `to`.
fn copy_state(dir: &Path, to: &str) -> PathBuf {
    let to = dir.join(to);
    std::fs::create_dir_all(to.join("crashed.checkpoints")).expect("mkdir");
    // The SQLite file with its write-ahead log.
    for file in std::fs::read_dir(dir).expect("list") {
        let file = file.expect("entry").path();
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if name.starts_with("crashed.db") {
            std::fs::copy(&file, to.join(&name)).expect("copy db");
        }
    }
    for ckpt in std::fs::read_dir(dir.join("crashed.checkpoints")).expect("list") {
        let ckpt = ckpt.expect("entry").path();
        let target = to.join("crashed.checkpoints").join(ckpt.file_name().expect("name"));
        std::fs::create_dir_all(&target).expect("mkdir");
        for file in std::fs::read_dir(&ckpt).expect("list") {
            let file = file.expect("entry").path();
            std::fs::copy(&file, target.join(file.file_name().expect("name"))).expect("copy");
        }
    }
    to
}

fn records_read(stdout: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().find(|l| l.starts_with("edu-rtdw: ")).expect("summary line");
    line["edu-rtdw: ".len()..].split(' ').next().and_then(|n| n.parse().ok()).expect("records read")
}

/// Lines per partition file of `input`.
fn partition_lengths(input: &Path) -> Vec<u64> {
    let mut lengths = Vec::new();
    for topic in std::fs::read_dir(input).expect("list") {
        for file in std::fs::read_dir(topic.expect("topic").path()).expect("list") {
            let text = std::fs::read(file.expect("file").path()).expect("read");
            lengths.push(text.iter().filter(|&&b| b == b'\n').count() as u64);
        }
    }
    lengths
}

#[test]
fn kill_9_at_random_points_with_checkpoints_then_restart_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 8);
    let crashed = run_args(&input, "crashed.db", "100ms", &["-w", "2", "-q"]);
    let (mut rng, mut kills, mut attempts, mut restored) = (0x9e37_79b9_7f4a_7c15u64, 0, 0, 0);
    while kills < 10 {
        attempts += 1;
        assert!(attempts < 40, "the run always finished before the kill point");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = spawn_logged(&crashed, tmp.path());
        let log = std::thread::spawn({
            let stderr = child.stderr.take().expect("stderr");
            move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(300 + rng % 1200));
        let finished = child.try_wait().expect("try_wait").is_some();
        if !finished {
            child.kill().expect("SIGKILL");
            kills += 1;
        }
        child.wait().expect("wait");
        let log = log.join().expect("log reader");
        restored += log.iter().filter(|l| l.contains("restoring the checkpoint at")).count();
        if finished {
            // A run that finished leaves nothing to recover: start the input again.
            std::fs::remove_file(tmp.path().join("crashed.db")).expect("rm db");
            std::fs::remove_dir_all(tmp.path().join("crashed.checkpoints")).ok();
        }
    }
    assert!(restored >= 3, "only {restored} restarts restored a checkpoint: make the kill points later");
    let out = spawn_logged(&crashed, tmp.path()).wait_with_output().expect("final run");
    assert!(out.status.success(), "final run failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(dump(&tmp.path().join("crashed.db")), uninterrupted(tmp.path(), &input));
}

#[test]
fn a_checkpoint_of_two_workers_restores_under_other_worker_and_process_counts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 8);
    let first = run_args(&input, "crashed.db", "100ms", &["-w", "2", "-q"]);
    let time = kill_after_checkpoints(&first, tmp.path(), 2);
    let expected = uninterrupted(tmp.path(), &input);
    // Restores must not checkpoint again before they end (each starts from the same one).
    for (name, cluster) in [("w1", &["-w", "1"][..]), ("w3", &["-w", "3"][..])] {
        let dir = copy_state(tmp.path(), name);
        let args = run_args(&input, "crashed.db", "1h", cluster);
        let out = spawn_logged(&args, &dir).wait_with_output().expect("restore");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "restore with {cluster:?} failed: {log}");
        assert!(log.contains(&format!("restoring the checkpoint at {time}")), "{cluster:?}: {log}");
        assert_eq!(dump(&dir.join("crashed.db")), expected, "restored with {cluster:?}");
    }
    let dir = copy_state(tmp.path(), "n2w2");
    let args = run_args(&input, "crashed.db", "1h", &["-q"]);
    cluster_sh(&dir, 2, 2, &args[1..].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(dump(&dir.join("crashed.db")), expected, "restored with 2 processes of 2 workers");
}

#[test]
fn a_restore_reads_no_record_before_its_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 8);
    let first = run_args(&input, "crashed.db", "100ms", &["-w", "2", "-q"]);
    let time = kill_after_checkpoints(&first, tmp.path(), 1);
    let out =
        spawn_logged(&run_args(&input, "crashed.db", "1h", &["-w", "2"]), tmp.path()).wait_with_output().expect("run");
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stderr));
    // Offset epochs: partition offsets below (T + 1) × epoch_records are at or before T.
    let after: u64 = partition_lengths(&input).iter().map(|n| n.saturating_sub((time + 1) * EPOCH)).sum();
    assert_eq!(records_read(&out.stdout), after, "records read after restoring the checkpoint at {time}");
    assert_eq!(dump(&tmp.path().join("crashed.db")), uninterrupted(tmp.path(), &input));
}

/// Every metric's newest dump in the snapshot directory `dir`: `(metric, upper, contents)`.
fn final_snapshots(dir: &Path) -> Vec<(String, u64, String)> {
    let mut found = Vec::new();
    for metric in std::fs::read_dir(dir).expect("list snapshots") {
        let metric = metric.expect("entry").path();
        let newest = std::fs::read_dir(&metric)
            .expect("list dumps")
            .filter_map(|f| f.ok()?.path().file_stem()?.to_str()?.parse::<u64>().ok())
            .max()
            .expect("a dump");
        let contents = std::fs::read_to_string(metric.join(format!("{newest}.jsonl"))).expect("read dump");
        found.push((metric.file_name().expect("name").to_string_lossy().into_owned(), newest, contents));
    }
    found.sort();
    found
}

/// Serving after a restore: the insert-only outputs (2.1, the closed windows of 2.3 and
/// 2.5, the dead letters) are held by no operator upstream, so what reads see of them is
/// saved with the checkpoint and restored with each row's own time. The final snapshot of a
/// restored run equals an uninterrupted run's, with every row kept and with windows (whose
/// rows must be retracted at their original times, not the restore's). Before, 2.3 lost
/// 55 % of its rows and 2.5 all of them.
#[test]
fn the_final_snapshot_of_a_restored_run_equals_an_uninterrupted_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 8);
    for (name, windows) in [
        ("whole", &["--signals-window", "1000000"][..]),
        ("windows", &["--append-window", "20", "--signals-window", "20"][..]),
    ] {
        let snapshots = |run: &str| format!("{name}-{run}.snapshots");
        let with = |db: &str, every: &str, run: &str| {
            let snapshot_dir = snapshots(run);
            let extra: Vec<&str> =
                windows.iter().copied().chain(["-w", "2", "-q", "--snapshot-dir", &snapshot_dir]).collect();
            run_args(&input, db, every, &extra)
        };
        let clean = with(&format!("{name}-clean.db"), "0s", "clean");
        let out = edu_rtdw(&clean.iter().map(String::as_str).collect::<Vec<_>>(), tmp.path());
        assert!(out.status.success(), "{name}: uninterrupted run failed: {}", String::from_utf8_lossy(&out.stderr));
        let db = format!("{name}-crashed.db");
        let time = kill_after_checkpoints(&with(&db, "100ms", "crashed"), tmp.path(), 2);
        let out = spawn_logged(&with(&db, "1h", "restored"), tmp.path()).wait_with_output().expect("restore");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && log.contains(&format!("restoring the checkpoint at {time}")), "{name}: {log}");
        let (want, got) = (
            final_snapshots(&tmp.path().join(snapshots("clean"))),
            final_snapshots(&tmp.path().join(snapshots("restored"))),
        );
        assert_eq!(want.len(), got.len(), "{name}: metrics dumped");
        for ((metric, upper, rows), (_, got_upper, got_rows)) in want.iter().zip(&got) {
            assert_eq!(upper, got_upper, "{name} {metric}: final frontier");
            let (want_n, got_n) = (rows.lines().count(), got_rows.lines().count());
            assert!(
                rows == got_rows,
                "{name} {metric}: {got_n} rows served after the restore at {time}, {want_n} without it"
            );
        }
    }
}

#[test]
fn a_truncated_newest_checkpoint_falls_back_and_another_format_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 8);
    let first = run_args(&input, "crashed.db", "100ms", &["-q"]);
    let newest = kill_after_checkpoints(&first, tmp.path(), 2);
    let checkpoints = tmp.path().join("crashed.checkpoints");
    let newest_dir = checkpoints.join(format!("ckpt-{newest:020}"));
    let shard = newest_dir.join("shard-00000.bin");
    let bytes = std::fs::read(&shard).expect("read shard");
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).expect("truncate");
    let older: Vec<u64> = std::fs::read_dir(&checkpoints)
        .expect("list")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("ckpt-")?.parse().ok())
        .filter(|t| *t < newest)
        .collect();
    let previous = *older.iter().max().expect("an older checkpoint");

    let mut version = copy_state(tmp.path(), "version");
    version.push("crashed.checkpoints");
    let out = spawn_logged(&run_args(&input, "crashed.db", "1h", &["-q"]), tmp.path()).wait_with_output().expect("run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fallback run failed: {log}");
    assert!(log.contains(&format!("ckpt-{newest:020} is damaged")), "{log}");
    assert!(log.contains(&format!("restoring the checkpoint at {previous}")), "{log}");
    assert_eq!(dump(&tmp.path().join("crashed.db")), uninterrupted(tmp.path(), &input));

    // Another format version: a clear error, not a silent rebuild.
    let manifest = version.join(format!("ckpt-{previous:020}")).join("MANIFEST");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let line = text.lines().next().expect("line").replace("\"format_version\":1,", "\"format_version\":2,");
    std::fs::write(&manifest, format!("{line}\ncrc32 {:08x}\n", crc32fast::hash(line.as_bytes()))).expect("write");
    let dir = version.parent().expect("dir");
    let out = spawn_logged(&run_args(&input, "crashed.db", "1h", &["-q"]), dir).wait_with_output().expect("run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(log.contains("has format version 2, and this build reads version 1"), "{log}");
}

/// A sink that holds no commit (its database was reset) cannot get the history before a
/// checkpoint, which is never read again: the restore is refused in one line.
#[test]
fn a_reset_sink_refuses_the_restore() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = generate(tmp.path(), 8);
    let first = run_args(&input, "crashed.db", "100ms", &["-q"]);
    let time = kill_after_checkpoints(&first, tmp.path(), 1);
    for file in std::fs::read_dir(tmp.path()).expect("list") {
        let file = file.expect("entry").path();
        if file.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("crashed.db")) {
            std::fs::remove_file(&file).expect("rm");
        }
    }
    let out = spawn_logged(&run_args(&input, "crashed.db", "1h", &["-q"]), tmp.path()).wait_with_output().expect("run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains(&format!("the Sqlite sink holds no commit, and the checkpoint to restore is at {time}")),
        "{log}"
    );
}
