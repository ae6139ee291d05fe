//! Issue 22, findings 6 and 8: memory that does not follow the input's size, and input
//! layouts that are refused rather than silently merged.

mod common;

use std::process::{Command, Stdio};

use common::{edu_rtdw, write_partition};

/// SPEC §1's layout names partition `n` `n.jsonl`. `01.jsonl` or `+1.jsonl` beside
/// `1.jsonl` used to be read as partition 1 too, their rows overwriting each other's:
/// now the run refuses to start, in one line naming the file.
#[test]
fn unclear_partition_file_names_are_refused() {
    for unclear in ["01", "+1"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let input = tmp.path().join("input");
        write_partition(&input, "uc_account-user", 1, &[br#"{"id": "1"}"#]);
        let dir = input.join("uc_account-user");
        std::fs::write(dir.join(format!("{unclear}.jsonl")), "{\"id\": \"2\"}\n").expect("write");
        let out = edu_rtdw(&["run", "--input-dir", "input", "--sqlite", "out.db", "-q"], tmp.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{unclear}.jsonl: {stderr}");
        assert!(
            stderr.contains(&format!("unclear partition file name input/uc_account-user/{unclear}.jsonl")),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!tmp.path().join("out.db").exists(), "nothing is written");
    }
}

/// The peak resident set of the finished child `pid`, in KiB (`wait4` reaps it).
fn reap_peak_rss_kib(pid: u32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills; `pid` is our own unreaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid as libc::pid_t, "wait4");
    (status, usage.ru_maxrss)
}

/// Finding 6: the progress total read each partition file whole, so peak RSS followed the
/// largest file (a 1.39 GB file gave 1.34 GB). A 128 MiB partition of 2,048 records (each
/// one id's user record padded by an unread 64 KiB field) is now counted in blocks and read
/// line by line: the run stays well below the file's size.
#[test]
#[allow(clippy::zombie_processes, reason = "the child is reaped by wait4, which reports its peak RSS")]
fn memory_does_not_follow_the_size_of_a_partition_file() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("input").join("uc_account-user");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // Written line by line: the child's peak RSS counts the test process's pages as they
    // were when it was spawned, so the test must not hold the file in memory itself.
    let file = dir.join("0.jsonl");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
    let pad = "x".repeat(64 << 10);
    for _ in 0..2048 {
        writeln!(out, r#"{{"id": "1", "name": "n", "status": "NORMAL", "pad": "{pad}"}}"#).expect("write");
    }
    out.into_inner().expect("flush").sync_all().expect("sync");
    let file_mib = std::fs::metadata(&file).expect("size").len() >> 20;
    assert!(file_mib >= 128, "{file_mib} MiB");
    let child = Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(["run", "--input-dir", "input", "--sink", "none", "--epoch-records", "64", "-q"])
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run edu-rtdw");
    let (status, peak_kib) = reap_peak_rss_kib(child.id());
    assert_eq!(status, 0, "exit status");
    let peak_mib = peak_kib >> 10;
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB for a {file_mib} MiB partition file");
}

/// Finding 8: a final snapshot dump that cannot be written made no difference to the exit
/// status. Now the run fails, in one line naming the directory (the SQLite file is still
/// complete: the sinks committed before the final dump).
#[test]
fn a_failed_final_snapshot_dump_fails_the_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_partition(&tmp.path().join("input"), "uc_account-user", 0, &[br#"{"id": "1"}"#]);
    // A file where the dump directory should be: nothing can be created under it.
    std::fs::write(tmp.path().join("dumps"), "not a directory").expect("write");
    let out = edu_rtdw(
        &["run", "--input-dir", "input", "--sqlite", "out.db", "-q", "--snapshot-dir", "dumps/here"],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write the final snapshot to dumps/here"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
