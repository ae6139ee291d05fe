//! The progress line of a bounded run: records read, percent of this
//! process's input, records per second and elapsed time, on stderr.
//!
//! On a terminal the line is redrawn in place four times a second; otherwise
//! an `info` log event (target `edu_rtdw::progress`) is emitted every five
//! seconds, so logs stay readable.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dataflows::Topic;

use crate::cli::ClusterArgs;

/// The number of records this process reads: the partitions (in the order
/// the sources assign them round-robin to the cluster's workers) that fall to
/// this process's workers.
pub fn local_total(ends: &[(Topic, u32, u64)], cluster: &ClusterArgs) -> u64 {
    let workers = cluster.workers.max(1);
    let peers = workers * cluster.processes.max(1);
    ends.iter().enumerate().filter(|(i, _)| (i % peers) / workers == cluster.process).map(|(_, (_, _, n))| n).sum()
}

/// A running progress reporter; dropping it prints the last line and stops it.
pub struct Progress {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Starts reporting `read` against `total` records.
pub fn start(total: u64, read: Arc<AtomicU64>) -> Progress {
    let (tx, rx) = mpsc::channel::<()>();
    let tty = std::io::stderr().is_terminal();
    let every = if tty { Duration::from_millis(250) } else { Duration::from_secs(5) };
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
            report(tty, total, read.load(Ordering::Relaxed), started.elapsed());
        }
        if tty {
            report(tty, total, read.load(Ordering::Relaxed), started.elapsed());
            eprintln!();
        }
    });
    Progress { stop: Some(tx), thread: Some(thread) }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The progress text.
pub fn line(total: u64, read: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let percent = if total == 0 { 100.0 } else { 100.0 * read as f64 / total as f64 };
    format!(
        "edu-rtdw: {read}/{total} records ({percent:.1}%), {:.0} records/s, {secs:.1} s elapsed",
        read as f64 / secs.max(1e-9)
    )
}

fn report(tty: bool, total: u64, read: u64, elapsed: Duration) {
    if !tty {
        let secs = elapsed.as_secs_f64();
        let percent = if total == 0 { 100.0 } else { 100.0 * read as f64 / total as f64 };
        let rate = (read as f64 / secs.max(1e-9)).round() as u64;
        tracing::info!(
            read,
            total,
            percent = format_args!("{percent:.1}"),
            records_per_s = rate,
            elapsed_s = format_args!("{secs:.1}"),
            "progress"
        );
        return;
    }
    let text = line(total, read, elapsed);
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{text}");
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(workers: usize, processes: usize, process: usize) -> ClusterArgs {
        ClusterArgs { workers, processes, process, hostfile: None, connect_timeout_s: 1 }
    }

    #[test]
    fn shares_follow_the_round_robin() {
        let ends: Vec<(Topic, u32, u64)> = (0..6).map(|i| (Topic::User, i, 10 * (i as u64 + 1))).collect();
        // 2 processes × 2 workers: partitions 0,1,4,5 -> process 0; 2,3 -> process 1.
        assert_eq!(local_total(&ends, &cluster(2, 2, 0)), 10 + 20 + 50 + 60);
        assert_eq!(local_total(&ends, &cluster(2, 2, 1)), 30 + 40);
        assert_eq!(local_total(&ends, &cluster(1, 1, 0)), 210);
    }

    #[test]
    fn line_shows_percent_and_rate() {
        assert_eq!(
            line(200, 50, Duration::from_secs(2)),
            "edu-rtdw: 50/200 records (25.0%), 25 records/s, 2.0 s elapsed"
        );
    }
}
