//! The admin endpoint and the run options behind it (`--admin`, `--snapshot-*`).
//!
//! A tiny HTTP/1.1 server on std's `TcpListener` (one thread, one request per
//! connection) with three routes:
//!
//! * `GET /metrics`: the [`connectors::metrics`] registry in the Prometheus
//!   text format;
//! * `GET /snapshot/METRIC`: a header line `{"metric", "table", "upper",
//!   "complete", "rows"}` and then one JSON object per row, the contents of
//!   METRIC consistent at logical frontier `upper` (process 0 only: worker 0
//!   holds the contents);
//! * `GET /`: a short index.
//!
//! It binds a loopback address unless `--admin-bind-any` is given. In a
//! cluster, process `i` listens on the given port plus `i`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use differential_dataflow::VecCollection;
use serde_json::json;

use connectors::tables::ALL;
use dataflows::{Diff, OutputRow, Time};

use crate::cli::ClusterArgs;
use crate::snapshot::{maintain, metric_index, metric_name, metric_names, Contents, DumpOptions, Shared};

/// `run` options of the admin endpoint and of snapshots.
#[derive(Args, Debug, Clone)]
pub struct OpsArgs {
    /// Serve `/metrics` and snapshot queries on this address, e.g. 127.0.0.1:9898 (process i of a cluster: port + i).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Allow `--admin` on an address that is not loopback.
    #[arg(long)]
    pub admin_bind_any: bool,
    /// Keep serving `--admin` this many seconds after a bounded input is done.
    #[arg(long, default_value_t = 0)]
    pub admin_linger_s: u64,
    /// Write every metric's contents periodically as JSON lines to DIR/METRIC/TIME.jsonl.
    #[arg(long)]
    pub snapshot_dir: Option<PathBuf>,
    /// Interval between snapshot dumps (`500ms`, `10s`, `5m`, `1h`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub snapshot_every: Duration,
    /// Snapshot dumps kept per metric.
    #[arg(long, default_value_t = 5)]
    pub snapshot_keep: usize,
}

/// Parses `500ms`, `10s`, `5m`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("bad duration `{text}` (expected e.g. 500ms, 10s, 5m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("bad duration unit `{unit}` in `{text}` (ms, s, m or h)")),
    }
}

/// The admin endpoint and snapshot maintenance of one process.
#[derive(Clone)]
pub struct Ops {
    /// Snapshots are maintained (the same on every process, since every worker builds the operator).
    enabled: bool,
    /// The contents (process 0 only).
    shared: Option<Shared>,
    dump: Option<DumpOptions>,
    linger: Option<Duration>,
}

impl Ops {
    /// Starts the admin endpoint, if asked for, and prepares snapshot maintenance.
    pub fn start(args: &OpsArgs, cluster: &ClusterArgs) -> anyhow::Result<Ops> {
        let enabled = args.admin.is_some() || args.snapshot_dir.is_some();
        let shared = (enabled && cluster.process == 0).then(|| Arc::new(Mutex::new(Contents::default())));
        if let Some(addr) = args.admin {
            let addr = process_addr(addr, cluster.process)?;
            if !addr.ip().is_loopback() && !args.admin_bind_any {
                bail!("--admin {addr} is not a loopback address; add --admin-bind-any to serve it anyway");
            }
            serve(addr, shared.clone())?;
        }
        let dump = args.snapshot_dir.as_ref().map(|dir| DumpOptions {
            dir: dir.clone(),
            every: args.snapshot_every,
            keep: args.snapshot_keep,
        });
        let linger = args.admin.map(|_| Duration::from_secs(args.admin_linger_s));
        Ok(Ops { enabled, shared, dump, linger })
    }

    /// Builds the snapshot operator over `rows` in worker `index`'s dataflow (if snapshots are on).
    pub fn attach(&self, rows: &VecCollection<'_, Time, OutputRow, Diff>, index: usize) {
        if !self.enabled {
            return;
        }
        let shared = if index == 0 { self.shared.clone() } else { None };
        let dump = if index == 0 { self.dump.clone() } else { None };
        maintain(rows.clone(), shared, dump);
    }

    /// Keeps the process (and so the admin endpoint) alive for `--admin-linger-s`.
    pub fn linger(&self) {
        if let Some(d) = self.linger.filter(|d| !d.is_zero()) {
            std::thread::sleep(d);
        }
    }
}

/// The address of process `process`: the port plus the process index.
fn process_addr(mut addr: SocketAddr, process: usize) -> anyhow::Result<SocketAddr> {
    let port = u16::try_from(usize::from(addr.port()) + process)
        .context("--admin port plus the process index exceeds 65535")?;
    addr.set_port(port);
    Ok(addr)
}

/// Binds `addr` and serves it from a background thread.
fn serve(addr: SocketAddr, shared: Option<Shared>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot serve --admin on {addr}"))?;
    tracing::info!(%addr, snapshots = shared.is_some(), "admin endpoint listening");
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let peer = stream.peer_addr().ok();
            if let Err(e) = handle(stream, shared.as_ref()) {
                tracing::debug!(?peer, error = %e, "admin request failed");
            }
        }
    })?;
    Ok(())
}

/// Answers one request.
fn handle(mut stream: TcpStream, shared: Option<&Shared>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 0 && line.trim_end() != "" {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = route(path, shared);
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

type Response = (&'static str, &'static str, String);

fn route(path: &str, shared: Option<&Shared>) -> Response {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/metrics" {
        let mut text = connectors::metrics::render();
        text.push_str(&snapshot_sizes(shared));
        return ("200 OK", "text/plain; version=0.0.4", text);
    }
    if let Some(metric) = path.strip_prefix("/snapshot/") {
        return snapshot(metric, shared);
    }
    if path == "/" {
        return (
            "200 OK",
            "text/plain",
            format!("edu-rtdw admin\n/metrics\n/snapshot/METRIC (METRIC: {})\n", metric_names().join(", ")),
        );
    }
    ("404 Not Found", "text/plain", format!("no route {path}\n"))
}

/// Rows per metric in the maintained snapshot (the size of each metric's consolidated contents).
fn snapshot_sizes(shared: Option<&Shared>) -> String {
    let Some(contents) = shared.and_then(|s| s.lock().ok()) else { return String::new() };
    let mut text = String::from("# HELP edu_rtdw_snapshot_rows Rows per metric in the snapshot, consistent at edu_rtdw_snapshot_upper.\n# TYPE edu_rtdw_snapshot_rows gauge\n");
    for index in 0..ALL.len() {
        text.push_str(&format!(
            "edu_rtdw_snapshot_rows{{metric=\"{}\"}} {}\n",
            metric_name(index),
            contents.len(index)
        ));
    }
    text.push_str(&format!("# HELP edu_rtdw_snapshot_upper Logical frontier of the snapshot.\n# TYPE edu_rtdw_snapshot_upper gauge\nedu_rtdw_snapshot_upper {}\n", contents.upper));
    text
}

fn snapshot(metric: &str, shared: Option<&Shared>) -> Response {
    let Some(index) = metric_index(metric) else {
        return (
            "404 Not Found",
            "text/plain",
            format!("unknown metric `{metric}` (one of: {})\n", metric_names().join(", ")),
        );
    };
    let Some(shared) = shared else {
        return (
            "404 Not Found",
            "text/plain",
            "snapshots are served by process 0 of the cluster, with --admin or --snapshot-dir\n".into(),
        );
    };
    let Ok(contents) = shared.lock() else {
        return ("500 Internal Server Error", "text/plain", "snapshot state unavailable\n".into());
    };
    let rows = contents.rows(index);
    let header = json!({
        "metric": metric_name(index),
        "table": ALL[index].name,
        "upper": contents.upper,
        "complete": contents.complete,
        "rows": rows.len(),
    });
    let mut body = header.to_string();
    body.push('\n');
    for row in rows {
        body.push_str(&serde_json::Value::Object(row).to_string());
        body.push('\n');
    }
    ("200 OK", "application/x-ndjson", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn process_ports() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        assert_eq!(process_addr(addr, 2).expect("port").port(), 9002);
        let high: SocketAddr = "127.0.0.1:65535".parse().expect("addr");
        assert!(process_addr(high, 1).is_err());
    }
}
