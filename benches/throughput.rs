//! End-to-end file-replay throughput: `cargo bench --bench throughput [-- SCALE RUNS]`.
//!
//! Generates the seeded sample (default scale 30, about 300,000 records) once,
//! then replays it through the release binary into a fresh SQLite file, `RUNS`
//! times (default 5) with 1 and with 2 workers, and reports the median
//! records/s of each and their ratio, as text and as one JSON object. This
//! measures the whole job as a user runs it (parsing, all nine metrics, the
//! SQLite sink); the in-memory per-metric harness is the benchmark issue's.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn edu_rtdw(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edu-rtdw")).args(args).current_dir(cwd).output().expect("run edu-rtdw")
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let scale: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5).max(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let generated = edu_rtdw(&["gen", "--out", "input", "--scale", &scale.to_string()], tmp.path());
    assert!(generated.status.success(), "gen failed");
    let records: f64 = String::from_utf8_lossy(&generated.stdout)
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("record count");

    let mut medians = Vec::new();
    for workers in [1, 2] {
        let rates: Vec<f64> = (0..runs)
            .map(|run| {
                let db = format!("w{workers}-{run}.db");
                let started = Instant::now();
                let out = edu_rtdw(
                    &["run", "--input-dir", "input", "--sqlite", &db, "-q", "-w", &workers.to_string()],
                    tmp.path(),
                );
                assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
                records / started.elapsed().as_secs_f64()
            })
            .collect();
        let m = median(rates);
        println!("file replay -> SQLite, -w {workers}: median {m:.0} records/s over {runs} runs ({records} records)");
        medians.push(m);
    }
    println!(
        "{{\"bench\":\"file_replay_sqlite\",\"records\":{records},\"runs\":{runs},\"w1_records_per_s\":{:.0},\"w2_records_per_s\":{:.0},\"w2_over_w1\":{:.3}}}",
        medians[0],
        medians[1],
        medians[1] / medians[0]
    );
}
