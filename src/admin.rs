//! The admin endpoint and snapshot maintenance behind `run --admin` and
//! `--snapshot-*` (the flags are [`crate::cli::OpsArgs`]).
//!
//! An HTTP/1.1 server (`tiny_http`, answered by one thread) with three routes:
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

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use differential_dataflow::VecCollection;
use serde_json::json;

use dataflows::output::Output;
use dataflows::{Diff, OutputRow, Time};

use connectors::fatal::Fatal;

use crate::cli::{ClusterArgs, OpsArgs};
use crate::snapshot::{maintain, metric_names, Contents, DumpOptions, Shared};

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
    pub fn attach(&self, rows: &VecCollection<'_, Time, OutputRow, Diff>, index: usize, fatal: &Fatal) {
        if !self.enabled {
            return;
        }
        let shared = if index == 0 { self.shared.clone() } else { None };
        let dump = if index == 0 { self.dump.clone() } else { None };
        maintain(rows.clone(), shared, dump, fatal.clone());
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
    let server =
        tiny_http::Server::from_listener(listener, None).map_err(|e| anyhow!("cannot serve --admin on {addr}: {e}"))?;
    tracing::info!(%addr, snapshots = shared.is_some(), "admin endpoint listening");
    std::thread::Builder::new().name("admin".into()).spawn(move || {
        for request in server.incoming_requests() {
            let peer = request.remote_addr().copied();
            let (status, content_type, body) = route(request.url(), shared.as_ref());
            // Always a Content-Length, never chunked: simple clients read the body up to the close.
            let mut response =
                tiny_http::Response::from_string(body).with_status_code(status).with_chunked_threshold(usize::MAX);
            if let Ok(header) = tiny_http::Header::from_bytes("Content-Type", content_type) {
                response.add_header(header);
            }
            if let Err(e) = request.respond(response) {
                tracing::debug!(?peer, error = %e, "admin request failed");
            }
        }
    })?;
    Ok(())
}

/// An answer: status code, content type and body.
type Response = (u16, &'static str, String);

fn route(path: &str, shared: Option<&Shared>) -> Response {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/metrics" {
        observe_snapshot_sizes(shared);
        return (200, "text/plain; version=0.0.4", connectors::metrics::render());
    }
    if let Some(metric) = path.strip_prefix("/snapshot/") {
        return snapshot(metric, shared);
    }
    if path == "/" {
        return (
            200,
            "text/plain",
            format!("edu-rtdw admin\n/metrics\n/snapshot/METRIC (METRIC: {})\n", metric_names().join(", ")),
        );
    }
    (404, "text/plain", format!("no route {path}\n"))
}

/// Hands the size of each metric's consolidated contents, and their frontier, to the registry.
fn observe_snapshot_sizes(shared: Option<&Shared>) {
    let Some(contents) = shared.and_then(|s| s.lock().ok()) else { return };
    connectors::metrics::observe_snapshot(Output::ALL.map(|o| (o.name(), contents.len(o))), contents.upper);
}

fn snapshot(metric: &str, shared: Option<&Shared>) -> Response {
    let Some(output) = Output::from_name(metric) else {
        return (404, "text/plain", format!("unknown metric `{metric}` (one of: {})\n", metric_names().join(", ")));
    };
    let Some(shared) = shared else {
        return (
            404,
            "text/plain",
            "snapshots are served by process 0 of the cluster, with --admin or --snapshot-dir\n".into(),
        );
    };
    let Ok(contents) = shared.lock() else {
        return (500, "text/plain", "snapshot state unavailable\n".into());
    };
    let rows = contents.rows(output);
    let header = json!({
        "metric": output.name(),
        "table": output.table().name,
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
    (200, "application/x-ndjson", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ports() {
        let addr: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        assert_eq!(process_addr(addr, 2).expect("port").port(), 9002);
        let high: SocketAddr = "127.0.0.1:65535".parse().expect("addr");
        assert!(process_addr(high, 1).is_err());
    }
}
