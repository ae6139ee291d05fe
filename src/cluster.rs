//! Multi-process start-up: a bounded wait for the cluster's peers.
//!
//! Timely connects the processes of a cluster before it starts any worker, and
//! retries forever (printing a line a second) while a peer is unreachable. A
//! [`Watchdog`] armed before `timely::execute` and disarmed once it returns
//! turns that into one clear line on stderr and exit code 1 after
//! `--connect-timeout-s` seconds.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::cli::ClusterArgs;

/// Ends the process unless disarmed (dropped) in time.
pub struct Watchdog {
    _disarm: Sender<()>,
}

/// Arms a watchdog for a multi-process cluster; `None` for a single process.
pub fn watchdog(cluster: &ClusterArgs) -> Option<Watchdog> {
    if cluster.processes <= 1 {
        return None;
    }
    let timeout = Duration::from_secs(cluster.connect_timeout_s.max(1));
    let message = unreachable_message(cluster);
    let (process, processes) = (cluster.process, cluster.processes);
    tracing::debug!(process, processes, timeout_s = timeout.as_secs(), "connecting to the cluster's peers");
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Disarmed: the sender was dropped (timely connected), so the wait ends early.
        if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
            // Fatal: one plain line, like every error that ends the process (not a log, so RUST_LOG cannot hide it).
            eprintln!("{message} within {}s", timeout.as_secs());
            std::process::exit(1);
        }
        tracing::info!(process, processes, "connected to the cluster's peers");
    });
    Some(Watchdog { _disarm: tx })
}

/// The one line printed when the peers cannot be reached.
fn unreachable_message(cluster: &ClusterArgs) -> String {
    let hosts = match &cluster.hostfile {
        Some(h) => format!("host file {}", h.display()),
        None => format!("localhost:2101..{}", 2101 + cluster.processes - 1),
    };
    format!("edu-rtdw: process {} of {} cannot reach its cluster peers ({hosts})", cluster.process, cluster.processes)
}
