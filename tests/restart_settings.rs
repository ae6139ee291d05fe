//! Issue 22, finding 1: a restart with other settings never silently skips input. The state
//! file records what determines logical time; a run with a different `--epoch-records` (or
//! another input) is refused in one line naming the difference, and the same settings go on.

mod common;

use common::{dump, edu_rtdw};

#[test]
fn a_restart_with_another_epoch_size_is_refused_and_the_same_one_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "1", "--seed", "5", "--partitions", "2"], tmp.path());
    assert!(out.status.success(), "gen failed: {}", String::from_utf8_lossy(&out.stderr));
    let run = |db: &str, extra: &[&str]| {
        let mut args = vec!["run", "--input-dir", "input", "--sqlite", db, "-q"];
        args.extend_from_slice(extra);
        edu_rtdw(&args, tmp.path())
    };
    let first = run("out.db", &["--epoch-records", "256"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let before = dump(&tmp.path().join("out.db"));

    let other = run("out.db", &[]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("epoch_records 256") && stderr.contains("4096"), "{stderr}");
    assert_eq!(dump(&tmp.path().join("out.db")), before, "the refused run changed nothing");

    let same = run("out.db", &["--epoch-records", "256"]);
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stderr));
    assert_eq!(dump(&tmp.path().join("out.db")), before, "a replay with the same settings changes nothing");
}
