//! SQL over the PostgreSQL wire protocol (`run --sql-listen ADDR`): `psql`, Grafana's
//! PostgreSQL data source or any PostgreSQL driver query the metrics' live contents.
//!
//! The contract:
//!
//! * **Consistent**: each statement reads every table it uses at one logical frontier
//!   `upper` (every update at a time below it, none after). Its first read takes the
//!   latest frontier (or the statement's trailing `AS OF N`, Materialize's syntax, which
//!   the reader refuses when it no longer holds `N`); its other reads take that same
//!   frontier. Each answer that read data is preceded by a notice `consistent at logical
//!   upper N (every update at a time below it)`, and `edu_upper()` returns `N` inside the
//!   statement. Two statements, even in one query text, may see different frontiers.
//! * **Read-only**: only queries run (`SELECT`, `WITH`, `VALUES`, `EXPLAIN`); `SET`,
//!   `BEGIN`, `COMMIT`, `ROLLBACK`, `RESET`, `DISCARD`, `DEALLOCATE` are acknowledged and
//!   ignored, `SHOW` answers a few settings; anything else is refused (`edu-rtdw serves
//!   read-only SQL: INSERT is not allowed`).
//! * **The dialect is SQLite's** (an in-memory SQLite per connection, [`engine`]) with the
//!   PostgreSQL forms catalog queries use rewritten ([`rewrite`]). Tables are named by
//!   output table (`staff_index`), views by metric (`daily_cc_confirmations`), in schema
//!   `public`; `pg_catalog` and `information_schema` describe them ([`catalog`]).
//! * **Limits**: each statement runs within `statement_timeout` (then it is interrupted:
//!   `statement timeout (10s)`), returns at most `max_rows` rows (more is an error, not a
//!   truncation), and at most [`STATEMENTS_AT_ONCE`] statements run at once (on tokio's
//!   blocking pool; the others wait their turn). At most `max_connections` clients are
//!   served; more are refused with SQLSTATE 53300. A bad statement is an error for its
//!   client only, which can go on with the next.
//! * **Access**: without a password, loopback addresses only (and every client is
//!   trusted); with one, every client authenticates with it (md5, any user name). No TLS.
//!   A cancel request (`psql`'s Ctrl-C) interrupts the connection's running statement, as
//!   does the client going away.
//!
//! Both the simple query protocol (`psql`) and the extended one (drivers; `$1`-style
//! parameters of the common scalar types) are served. Describing a statement without
//! parameters runs it (the answer is kept for the `Execute` that follows), so drivers
//! learn the true types of computed columns.

mod auth;
mod catalog;
mod connection;
mod engine;
mod frame;
mod functions;
mod lex;
mod protocol;
mod rewrite;
#[cfg(test)]
mod tests;
mod vtab;
mod wire;

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use pgwire::api::ConnectionManager;
use pgwire::api::auth::md5pass::Md5PasswordAuth;
use pgwire::api::auth::{AuthDriver, DefaultServerParameterProvider};
use tokio::sync::Semaphore;

use self::auth::PasswordSource;
use self::connection::{Connection, Handlers};
use crate::cli::OpsArgs;
use crate::config::{SQL_PASSWORD_ENV, ServingSettings};
use crate::serving::Reader;

/// Statements run at once; more wait for a turn.
pub const STATEMENTS_AT_ONCE: usize = 4;
/// Connections over the limit answered (with an error) at once; more are closed unanswered.
const REFUSALS_AT_ONCE: usize = 16;
/// A refused connection is closed after this, answered or not.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Statement texts whose described column types are remembered, per connection.
const DESCRIBED_KEPT: usize = 256;

/// How the SQL endpoint serves.
#[derive(Clone)]
pub struct SqlOptions {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The password every client must give (md5); `None`: loopback only, no authentication.
    pub password: Option<String>,
    /// A statement running longer is interrupted.
    pub statement_timeout: Duration,
    /// A result with more rows is an error.
    pub max_rows: usize,
    /// Clients served at once; more are refused.
    pub max_connections: usize,
}

impl fmt::Debug for SqlOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlOptions")
            .field("listen", &self.listen)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("statement_timeout", &self.statement_timeout)
            .field("max_rows", &self.max_rows)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The endpoint's options from `run`'s flags and the `[serving]` settings; `None` without
/// `--sql-listen`. Off loopback it needs both a password and `--sql-bind-any`.
pub fn options(ops: &OpsArgs, serving: &ServingSettings) -> anyhow::Result<Option<SqlOptions>> {
    let Some(listen) = ops.sql_listen else { return Ok(None) };
    let password = serving.password();
    if !listen.ip().is_loopback() {
        if password.is_none() {
            bail!("{}", exposed(listen));
        }
        if !ops.sql_bind_any {
            bail!("--sql-listen {listen} is not loopback: add --sql-bind-any to serve it anyway");
        }
    }
    Ok(Some(SqlOptions {
        listen,
        password,
        statement_timeout: serving.statement_timeout()?,
        max_rows: serving.sql_max_rows,
        max_connections: serving.sql_max_connections,
    }))
}

/// Why a non-loopback address without a password is refused.
fn exposed(listen: SocketAddr) -> String {
    format!(
        "--sql-listen {listen} is not loopback: set a password ([serving] sql_password in the config file or \
         {SQL_PASSWORD_ENV}) and --sql-bind-any"
    )
}

/// Binds `opts.listen`, then serves SQL over `reader` from a thread of its own.
pub fn start(opts: SqlOptions, reader: Arc<dyn Reader>) -> anyhow::Result<()> {
    serve(opts, reader).map(|_| ())
}

/// [`start`], returning the address bound (its port when `listen` asked for port 0).
pub fn serve(opts: SqlOptions, reader: Arc<dyn Reader>) -> anyhow::Result<SocketAddr> {
    let listen = opts.listen;
    if !listen.ip().is_loopback() && opts.password.is_none() {
        bail!("{}", exposed(listen));
    }
    if opts.max_connections == 0 || opts.max_rows == 0 || opts.statement_timeout.is_zero() {
        bail!("the SQL endpoint needs sql_max_connections, sql_max_rows and sql_statement_timeout above 0");
    }
    let listener = TcpListener::bind(listen).map_err(|e| anyhow!("cannot serve SQL on {listen}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| anyhow!("cannot serve SQL on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| anyhow!("cannot serve SQL on {listen}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .max_blocking_threads(STATEMENTS_AT_ONCE)
        .build()
        .context("cannot start the SQL endpoint's runtime")?;
    let auth = if opts.password.is_some() { "md5" } else { "none (loopback)" };
    tracing::info!(%addr, auth, "SQL endpoint listening");
    let shared = Arc::new(Shared::new(opts, reader));
    std::thread::Builder::new()
        .name("sql".into())
        .spawn(move || runtime.block_on(accept(listener, shared)))
        .context("cannot start the SQL endpoint's thread")?;
    Ok(addr)
}

/// What every connection shares.
struct Shared {
    reader: Arc<dyn Reader>,
    statement_timeout: Duration,
    max_rows: usize,
    max_connections: usize,
    md5: Option<Md5PasswordAuth<PasswordSource>>,
    driver: AuthDriver<Arc<DefaultServerParameterProvider>>,
    /// The running statements by connection, for cancel requests (`psql`'s Ctrl-C).
    cancels: Arc<ConnectionManager>,
    statements: Semaphore,
}

impl Shared {
    fn new(opts: SqlOptions, reader: Arc<dyn Reader>) -> Shared {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = functions::SERVER_VERSION.to_string();
        parameters.default_transaction_read_only = true;
        parameters.is_superuser = false;
        parameters.time_zone = "UTC".to_string();
        let cancels = Arc::new(ConnectionManager::new());
        Shared {
            reader,
            statement_timeout: opts.statement_timeout,
            max_rows: opts.max_rows,
            max_connections: opts.max_connections,
            md5: opts.password.map(|p| Md5PasswordAuth::new(Arc::new(PasswordSource(p.into())))),
            driver: AuthDriver::new(Arc::new(parameters)).with_connection_manager(Arc::clone(&cancels)),
            cancels,
            statements: Semaphore::new(STATEMENTS_AT_ONCE),
        }
    }
}

/// Accepts connections for ever, each served by a task of its own.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::warn!(error = %e, "SQL endpoint stopped"),
    };
    let connections = Arc::new(Semaphore::new(shared.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "SQL accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handlers = Handlers(Arc::new(Connection::new(Arc::clone(&shared))));
        if let Ok(permit) = Arc::clone(&connections).try_acquire_owned() {
            tokio::spawn(async move {
                if let Err(e) = pgwire::tokio::process_socket(stream, None, handlers).await {
                    tracing::debug!(%peer, error = %e, "SQL connection failed");
                }
                drop(permit);
            });
        } else if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
            handlers.0.refused.store(true, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(REFUSAL_TIMEOUT, pgwire::tokio::process_socket(stream, None, handlers)).await;
                drop(permit);
            });
        }
    }
}
