//! The test helpers' own promise: a run that hangs is killed and fails its
//! test with the command it was running, instead of hanging the suite.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
#[should_panic(expected = "killed after 100ms: sleep 30")]
fn a_hung_run_is_killed_and_named() {
    let child =
        Command::new("sleep").arg("30").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn sleep");
    common::wait_within(child, "sleep 30", Duration::from_millis(100));
}

#[test]
fn a_run_within_its_limit_returns_its_output() {
    let child =
        Command::new("echo").arg("done").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn echo");
    let out = common::wait_within(child, "echo done", Duration::from_secs(60));
    assert!(out.status.success());
    assert_eq!(out.stdout, b"done\n");
}
