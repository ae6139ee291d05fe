//! Issue 22 finding 7: the admin endpoint under hostile clients. A request head far over
//! the limit is refused without the job's memory following it; a client sending a byte a
//! second, 200 idle connections, or a client that never reads a large snapshot do not keep
//! `/metrics` from answering; over the connection limit a client gets a clear `503`;
//! a write method is refused.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{Job, edu_rtdw, free_port, spawn_logged};

/// The job, killed when dropped.
/// Starts a run of the sample with `--admin` on `port`, lingering; returns once it listens.
fn start(dir: &Path, port: u16) -> Job {
    let out = edu_rtdw(&["gen", "--out", "input", "--scale", "1", "--seed", "3"], dir);
    assert!(out.status.success());
    let admin = format!("127.0.0.1:{port}");
    let args =
        ["run", "--input-dir", "input", "--sqlite", "out.db", "-q", "--admin", &admin, "--admin-linger-s", "300"];
    let mut child = spawn_logged(&args, dir);
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    assert!(
        lines.by_ref().map_while(Result::ok).any(|l| l.contains("admin endpoint listening")),
        "the admin endpoint never listened"
    );
    std::thread::spawn(move || lines.for_each(drop));
    Job(child)
}

/// The status line and body of `request` sent on a fresh connection (reads to the close).
fn exchange(port: u16, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // A failure guard, not a performance bound: a hung endpoint fails the test instead of hanging it.
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let _ = stream.write_all(request);
    let mut text = Vec::new();
    let _ = stream.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

fn get(port: u16, path: &str) -> (String, String) {
    exchange(port, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
}

fn rss_kib(job: &Job) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", job.0.id())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn hostile_clients_do_not_stall_the_admin_endpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let job = start(tmp.path(), port);
    // Measure memory once the run is over (its snapshot complete) and only the endpoint is left.
    let complete = (0..600).any(|_| {
        let (_, body) = get(port, "/snapshot/dead_letters");
        let done = body.lines().next().is_some_and(|header| header.contains("\"complete\":true"));
        if !done {
            std::thread::sleep(Duration::from_millis(100));
        }
        done
    });
    assert!(complete, "the run did not complete");

    // A 64 MiB request line: refused once it passes the head limit, and memory does not follow.
    let before = rss_kib(&job);
    let mut huge = b"GET /".to_vec();
    huge.resize(64 << 20, b'a');
    let (status, _) = exchange(port, &huge);
    assert!(status.is_empty() || status.starts_with("HTTP/1.1 431") || status.starts_with("HTTP/1.1 400"), "{status}");
    let grown = rss_kib(&job).saturating_sub(before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB for a refused request");

    // A client that sends a byte now and then, 200 idle connections, and one that asks for
    // the largest snapshot and never reads it: /metrics still answers meanwhile.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET /met").expect("write");
    let idle: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect")).collect();
    let mut unread = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    unread.write_all(b"GET /snapshot/student_signal_etl HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let (status, body) = get(port, "/metrics");
    assert!(status.starts_with("HTTP/1.1 200") && body.contains("edu_rtdw_records_read_total"), "{status}");
    let (status, body) = get(port, "/snapshot/staff_index");
    assert!(status.starts_with("HTTP/1.1 200") && body.contains("\"metric\":\"daily_cc_confirmations\""), "{body}");

    // Over the connection limit: a clear 503, and the endpoint answers again once they close.
    let more: Vec<TcpStream> = (0..60).map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect")).collect();
    let (status, body) = get(port, "/metrics");
    assert!(status.starts_with("HTTP/1.1 503") && body.contains("too many admin connections"), "{status} {body}");
    drop((idle, more, slow, unread));
    let answered = (0..100).any(|_| {
        let ok = get(port, "/metrics").0.starts_with("HTTP/1.1 200");
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(answered, "the endpoint did not recover once the connections closed");

    // Writes are refused.
    let (status, _) =
        exchange(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 405"), "{status}");
}
