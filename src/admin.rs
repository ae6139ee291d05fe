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
//!   METRIC consistent at logical frontier `upper`, read from every worker's
//!   shard ([`crate::serving::peek`]; process 0 only: its worker 0 merges them);
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
//! most [`BODIES_AT_ONCE`] at a time; a snapshot costs the workers only the
//! time to read their shards, not the time to serialise it.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use dataflows::output::Output;
use dataflows::serve::Windows;

use crate::cli::{ClusterArgs, OpsArgs};
use crate::serving::peek::{DumpJob, Schedule, Serving};
use crate::serving::{AsOf, Reader};
use crate::snapshot::{DumpOptions, DumpWriter, metric_names, row_json, start_writer};

/// Where a bounded run writes its final snapshot when `--snapshot-dir` is not given (the
/// directory `edu-rtdw query` reads by default).
pub const DEFAULT_SNAPSHOT_DIR: &str = "snapshots";

/// The admin endpoint, SQL and snapshot dumps of one process.
pub struct Ops {
    /// Reads of the arrangements (`None`: serving is off, nothing is arranged).
    pub serving: Option<Arc<Serving>>,
    dumps: Mutex<Option<Sender<DumpJob>>>,
    writer: Option<DumpWriter>,
    every: Option<Duration>,
    linger: Duration,
    dump_busy: Arc<AtomicBool>,
    /// The history the arrangements keep for reads.
    pub windows: Windows,
}

impl Ops {
    /// Starts the admin endpoint, if asked for, and the snapshot writer. A `bounded` run
    /// that writes its tables (`!discard`) writes its final snapshot to
    /// [`DEFAULT_SNAPSHOT_DIR`] unless `--snapshot-dir` says where.
    pub fn start(args: &OpsArgs, cluster: &ClusterArgs, bounded: bool, discard: bool) -> anyhow::Result<Ops> {
        let default = bounded && !discard && !args.no_final_snapshot;
        let dir = args.snapshot_dir.clone().or_else(|| default.then(|| DEFAULT_SNAPSHOT_DIR.into()));
        let enabled = args.admin.is_some() || dir.is_some() || args.sql_listen.is_some();
        let serving = enabled.then(|| Serving::new(cluster.process));
        if let (Some(addr), Some(serving)) = (args.admin, &serving) {
            let addr = process_addr(addr, cluster.process)?;
            if !addr.ip().is_loopback() && !args.admin_bind_any {
                bail!("--admin {addr} is not a loopback address; add --admin-bind-any to serve it anyway");
            }
            serve(addr, Arc::clone(serving))?;
        }
        let dump_busy = Arc::new(AtomicBool::new(false));
        let every = args.snapshot_dir.as_ref().map(|_| args.snapshot_every);
        let (dumps, writer) = match dir.filter(|_| cluster.process == 0) {
            Some(dir) => {
                let opts = DumpOptions { dir, keep: args.snapshot_keep };
                let source = serving.clone();
                let wake = Box::new(move || source.iter().for_each(|s| s.wake()));
                let (dumps, writer) = start_writer(opts, Arc::clone(&dump_busy), wake)?;
                (Some(dumps), Some(writer))
            }
            None => (None, None),
        };
        let linger = Duration::from_secs(args.admin_linger_s);
        let windows = Windows { as_of: args.as_of_window, signals: args.signals_window, append: args.append_window };
        Ok(Ops { serving, dumps: Mutex::new(dumps), writer, every, linger, dump_busy, windows })
    }

    /// What worker `index`'s read source does besides reads.
    pub fn schedule(&self, index: usize) -> Schedule {
        let dumps = if index == 0 { self.dumps.lock().ok().and_then(|mut d| d.take()) } else { None };
        Schedule { dumps, every: self.every, linger: self.linger, dump_busy: Arc::clone(&self.dump_busy) }
    }

    /// Waits for the last dump to be written once the workers are gone; its error, if any.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.dumps.get_mut().map(Option::take).ok();
        match self.writer.take() {
            Some(writer) => writer.finish(),
            None => Ok(()),
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
fn serve(addr: SocketAddr, serving: Arc<Serving>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot serve --admin on {addr}"))?;
    listener.set_nonblocking(true).with_context(|| format!("cannot serve --admin on {addr}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(BODIES_AT_ONCE)
        .build()
        .context("cannot start the admin endpoint's runtime")?;
    tracing::info!(%addr, "admin endpoint listening");
    std::thread::Builder::new().name("admin".into()).spawn(move || runtime.block_on(accept(listener, serving)))?;
    Ok(())
}

/// Accepts connections for ever, each served by a task of its own.
async fn accept(listener: TcpListener, serving: Arc<Serving>) {
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
        let (serving, bodies) = (Arc::clone(&serving), Arc::clone(&bodies));
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request| answer(request, Arc::clone(&serving), Arc::clone(&bodies)));
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

/// A response body: a whole answer, or the dashboard's event stream.
type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

/// One request: `GET` (or `HEAD`) of a route, built on the blocking pool.
async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    serving: Arc<Serving>,
    bodies: Arc<tokio::sync::Semaphore>,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    use http_body_util::BodyExt;
    let is_get = matches!(*request.method(), hyper::Method::GET | hyper::Method::HEAD);
    if is_get && request.uri().path() == "/dashboard/events" {
        return Ok(events(serving, bodies));
    }
    let (status, content_type, body) = if !is_get {
        (405, "text/plain", "only GET is served\n".to_string())
    } else {
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let _permit = bodies.acquire_owned().await;
        tokio::task::spawn_blocking(move || route(&path, &query, &serving))
            .await
            .unwrap_or_else(|_| (500, "text/plain", "the answer failed\n".to_string()))
    };
    let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)).boxed());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    Ok(response)
}

/// The dashboard's server-sent events: the panels now, then again each time worker 0's
/// frontier moves (at most every 500 ms), a comment every 15 s otherwise; until the client
/// goes or the connection's lifetime ends.
fn events(serving: Arc<Serving>, bodies: Arc<tokio::sync::Semaphore>) -> hyper::Response<Body> {
    use http_body_util::BodyExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
    tokio::spawn(async move {
        let mut changes = serving.changes.subscribe();
        if tx.send(bytes::Bytes::from_static(b"retry: 1000\n\n")).await.is_err() {
            return;
        }
        loop {
            let Ok(permit) = Arc::clone(&bodies).acquire_owned().await else { return };
            let reader = Arc::clone(&serving);
            let built = tokio::task::spawn_blocking(move || crate::dashboard::event(&reader)).await;
            drop(permit);
            let Ok(event) = built else { return };
            if tx.send(bytes::Bytes::from(event)).await.is_err() {
                return;
            }
            loop {
                match tokio::time::timeout(Duration::from_secs(15), changes.changed()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) if tx.send(bytes::Bytes::from_static(b": keep-alive\n\n")).await.is_err() => return,
                    Err(_) => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let stream = EventStream(rx);
    let mut response = hyper::Response::new(stream.boxed());
    let headers = response.headers_mut();
    headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/event-stream"));
    headers.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-cache"));
    response
}

/// A body made of the chunks a task sends; it ends when the task drops its sender.
struct EventStream(tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for EventStream {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }
}

/// An answer: status code, content type and body.
type Response = (u16, &'static str, String);

fn route(path: &str, query: &str, serving: &Serving) -> Response {
    if path == "/metrics" {
        observe_snapshot_sizes(serving);
        return (200, "text/plain; version=0.0.4", connectors::metrics::render());
    }
    if let Some(metric) = path.strip_prefix("/snapshot/") {
        return snapshot(metric, query, serving);
    }
    if path == "/" {
        return (200, "text/html; charset=utf-8", crate::dashboard::page(serving));
    }
    if path == "/dashboard/panels" {
        return match crate::dashboard::fragment(serving) {
            Ok((_, _, html)) => (200, "text/html; charset=utf-8", html),
            Err(e) => (503, "text/plain", format!("{e}\n")),
        };
    }
    if path == "/index.txt" {
        return (
            200,
            "text/plain",
            format!(
                "edu-rtdw admin\n/ (dashboard)\n/metrics\n/snapshot/METRIC[?as_of=UPPER] (METRIC: {})\n",
                metric_names().join(", ")
            ),
        );
    }
    (404, "text/plain", format!("no route {path}\n"))
}

/// Hands the rows this process's shards hold per metric, and the newest frontier, to the registry.
fn observe_snapshot_sizes(serving: &Serving) {
    let rows = Output::ALL.map(|o| (o.name(), serving.rows[o.index()].load(Ordering::Relaxed).max(0) as usize));
    connectors::metrics::observe_snapshot(rows, serving.upper.load(Ordering::Relaxed));
}

fn snapshot(metric: &str, query: &str, serving: &Serving) -> Response {
    let Some(output) = Output::from_name(metric) else {
        return (404, "text/plain", format!("unknown metric `{metric}` (one of: {})\n", metric_names().join(", ")));
    };
    let as_of = match query.split('&').find_map(|kv| kv.strip_prefix("as_of=")) {
        None => AsOf::Latest,
        Some(n) => match n.parse() {
            Ok(upper) => AsOf::Upper(upper),
            Err(_) => return (400, "text/plain", format!("bad as_of `{n}`: expected a logical frontier\n")),
        },
    };
    let answer = match serving.read(&[output], as_of) {
        Ok(answer) => answer,
        Err(e) => return (404, "text/plain", format!("{e}\n")),
    };
    let rows: &[_] = answer.tables.first().map_or(&[], |(_, rows)| rows);
    let header = json!({
        "metric": output.name(),
        "table": output.table().name,
        "upper": answer.upper,
        "complete": answer.complete,
        "rows": rows.len(),
    });
    let mut body = header.to_string();
    body.push('\n');
    for row in rows {
        body.push_str(&serde_json::Value::Object(row_json(row)).to_string());
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
