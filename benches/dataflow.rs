//! In-memory dataflow throughput: `cargo bench --bench dataflow [-- ARGS]`.
//!
//! Runs `edu-rtdw bench` (see `src/bench.rs`) from the release binary: the
//! seeded sample generated into memory as raw JSON, pushed through all nine
//! metrics with sinks discarded, with 1 and 2 workers, per metric, and the
//! memory per live dedup key. Extra arguments are passed through
//! (e.g. `-- --scale 100 --runs 5 --per-metric --dedup-keys 1000000`).
//! Prints the harness's text report and its JSON object (last line).

use std::process::Command;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.is_empty() {
        args = ["--scale", "30", "--runs", "5", "--per-metric", "--dedup-keys", "1000000"].map(String::from).to_vec();
    }
    let status =
        Command::new(env!("CARGO_BIN_EXE_edu-rtdw")).arg("bench").args(&args).status().expect("run edu-rtdw bench");
    assert!(status.success(), "edu-rtdw bench failed");
}
