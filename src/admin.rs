//! The admin endpoint and snapshot maintenance behind `run --admin` and
//! `--snapshot-*` (the flags are [`crate::cli::OpsArgs`]).
//!
//! An HTTP/1.1 server (hyper on a tokio current-thread runtime, on a thread of
//! its own) with three routes:
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
//!
//! Limits (a hostile or careless client never stalls the endpoint or the job):
//! a request head of at most [`MAX_HEAD_BYTES`] (a longer one is refused and
//! the connection closed: memory per connection stays bounded), read within
//! [`HEAD_TIMEOUT`] (a client sending a byte a second is dropped), at most
//! [`MAX_CONNECTIONS`] connections at once (more are answered `503` and
//! closed), each alive at most [`CONNECTION_LIFETIME`] (a client that never
//! reads its answer included); writes are asynchronous, so a slow reader holds
//! only its own connection. Answers are built on tokio's blocking pool, at
//! most [`BODIES_AT_ONCE`] at a time; a snapshot holds the contents' lock
//! only while its rows are copied out, not while they are serialised.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
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

/// A request head longer than this is refused.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The request head must have arrived within this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are answered `503` and closed.
const MAX_CONNECTIONS: usize = 256;
/// A connection is closed after this, answered or not.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Answers built at once (a snapshot copies a metric's rows).
const BODIES_AT_ONCE: usize = 2;

/// Binds `addr` and serves it from a background thread.
fn serve(addr: SocketAddr, shared: Option<Shared>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot serve --admin on {addr}"))?;
    listener.set_nonblocking(true).with_context(|| format!("cannot serve --admin on {addr}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(BODIES_AT_ONCE)
        .build()
        .context("cannot start the admin endpoint's runtime")?;
    tracing::info!(%addr, snapshots = shared.is_some(), "admin endpoint listening");
    std::thread::Builder::new().name("admin".into()).spawn(move || runtime.block_on(accept(listener, shared)))?;
    Ok(())
}

/// Accepts connections for ever, each served by a task of its own.
async fn accept(listener: TcpListener, shared: Option<Shared>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::warn!(error = %e, "admin endpoint stopped"),
    };
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let bodies = Arc::new(tokio::sync::Semaphore::new(BODIES_AT_ONCE));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "admin accept failed");
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let (shared, bodies) = (shared.clone(), Arc::clone(&bodies));
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request| answer(request, shared.clone(), Arc::clone(&bodies)));
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .max_buf_size(MAX_HEAD_BYTES)
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "admin connection failed"),
                Err(_) => tracing::debug!(%peer, "admin connection closed after its lifetime"),
                Ok(Ok(())) => {}
            }
            drop(permit);
        });
    }
}

/// Answers a connection over the limit with `503` and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = "too many admin connections\n";
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async { stream.write_all(format!("{head}{body}").as_bytes()).await };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// One request: `GET` (or `HEAD`) of a route, built on the blocking pool.
async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    shared: Option<Shared>,
    bodies: Arc<tokio::sync::Semaphore>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    let (status, content_type, body) = if !matches!(*request.method(), hyper::Method::GET | hyper::Method::HEAD) {
        (405, "text/plain", "only GET is served\n".to_string())
    } else {
        let path = request.uri().path().to_string();
        let _permit = bodies.acquire_owned().await;
        tokio::task::spawn_blocking(move || route(&path, shared.as_ref()))
            .await
            .unwrap_or_else(|_| (500, "text/plain", "the answer failed\n".to_string()))
    };
    let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    Ok(response)
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
    // The lock is held while the rows are copied out, not while they are serialised.
    let (rows, upper, complete) = match shared.lock() {
        Ok(contents) => (contents.rows(output), contents.upper, contents.complete),
        Err(_) => return (500, "text/plain", "snapshot state unavailable\n".into()),
    };
    let header = json!({
        "metric": output.name(),
        "table": output.table().name,
        "upper": upper,
        "complete": complete,
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
