//! `run --sink none` (issue 21): every output is discarded, nothing is written (no SQLite file,
//! no state), and the run reads and counts the whole input like any other run.

mod common;

use common::edu_rtdw;

#[test]
fn sink_none_reads_everything_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "1", "--seed", "3", "--partitions", "2"], tmp.path());
    assert!(out.status.success(), "gen failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: usize = walk(&tmp.path().join("input"))
        .iter()
        .map(|f| std::fs::read(f).expect("read").iter().filter(|b| **b == b'\n').count())
        .sum();

    let out = edu_rtdw(&["run", "--input-dir", "input", "--sink", "none", "-w", "2"], tmp.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with(&format!("edu-rtdw: {lines} records in ")), "{stdout}");
    assert!(!stdout.contains("SQLite"), "{stdout}");
    let written: Vec<_> = std::fs::read_dir(tmp.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(written, vec![std::ffi::OsString::from("input")], "nothing but the input is there");

    let bad = edu_rtdw(&["run", "--input-dir", "input", "--sink", "nowhere"], tmp.path());
    assert!(!bad.status.success());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("ls") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
