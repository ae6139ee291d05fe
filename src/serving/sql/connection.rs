//! One client connection: its SQLite session, run on tokio's blocking pool within the
//! statement timeout, and what `Describe` told the client.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use futures::{Sink, SinkExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::Format;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::FieldInfo;
use pgwire::api::stmt::NoopQueryParser;
use pgwire::api::{ClientInfo, METADATA_USER, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use rusqlite::InterruptHandle;
use rusqlite::types::Value;

use dataflows::Time;

use super::engine::{self, Outcome, Rows, Session, SqlError};
use super::frame::lock;
use super::rewrite::{self, Kind, Statement};
use super::{DESCRIBED_KEPT, Shared, wire};

/// An error for the client.
pub fn client_error(e: SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), e.code.into(), e.message)))
}

/// The handlers of one connection.
pub struct Handlers(pub Arc<Connection>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.0)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.0)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.0)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(DefaultCancelHandler::new(Arc::clone(&self.0.shared.cancels)))
    }
}

/// One client connection: its SQLite session (opened at its first statement).
pub struct Connection {
    /// What every connection shares.
    pub shared: Arc<Shared>,
    /// Over the connection limit: refused at startup.
    pub refused: AtomicBool,
    /// The SQLite session, opened by the first statement.
    pub session: Arc<Mutex<Option<Session>>>,
    /// Interrupts the session's running statement (set when the session opens).
    pub interrupt: Arc<OnceLock<InterruptHandle>>,
    /// What `Describe` answered.
    pub described: Mutex<Described>,
    /// Keeps prepared statements' text as is.
    pub parser: Arc<NoopQueryParser>,
}

/// What `Describe` told the client, for the `Execute` that follows.
#[derive(Default)]
pub struct Described {
    /// The column types each statement text was described with.
    types: HashMap<String, Vec<Type>>,
    /// The result of the last statement run to be described: text, parameters, rows.
    result: Option<(String, Vec<Value>, Rows)>,
}

/// A result ready for the wire.
pub enum Encoded {
    /// A result: its row description, its rows and the frontier it read at.
    Rows { fields: Arc<Vec<FieldInfo>>, rows: Vec<DataRow>, upper: Option<Time> },
    /// A command's tag.
    Command(&'static str),
}

impl Connection {
    /// A connection before startup.
    pub fn new(shared: Arc<Shared>) -> Connection {
        Connection {
            shared,
            refused: false.into(),
            session: Arc::default(),
            interrupt: Arc::default(),
            described: Mutex::default(),
            parser: Arc::new(NoopQueryParser::new()),
        }
    }

    /// Runs `job` on the session, on the blocking pool, within the statement timeout.
    pub async fn blocking<T, F>(&self, user: String, job: F) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Session) -> Result<T, SqlError> + Send + 'static,
    {
        let _turn = self.shared.statements.acquire().await.map_err(|_| SqlError::new("57P01", "shutting down"))?;
        let (session, interrupt, shared) =
            (Arc::clone(&self.session), Arc::clone(&self.interrupt), Arc::clone(&self.shared));
        let mut task = tokio::task::spawn_blocking(move || {
            let mut session = lock(&session);
            if session.is_none() {
                let opened = Session::open(Arc::clone(&shared.reader), &user, shared.max_rows)?;
                let _ = interrupt.set(opened.interrupt_handle());
                *session = Some(opened);
            }
            session.as_mut().map_or_else(|| Err(SqlError::new("XX000", "no session")), job)
        });
        let mut on_drop = InterruptOnDrop(Some(Arc::clone(&self.interrupt)));
        let timeout = self.shared.statement_timeout;
        let joined = match tokio::time::timeout(timeout, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                if let Some(handle) = self.interrupt.get() {
                    handle.interrupt();
                }
                match task.await {
                    Ok(Ok(done)) => Ok(Ok(done)),
                    _ => Ok(Err(SqlError::new(
                        "57014",
                        format!("statement timeout ({})", humantime::format_duration(timeout)),
                    ))),
                }
            }
        };
        on_drop.0 = None;
        joined.unwrap_or_else(|_| Err(SqlError::new("XX000", "the statement failed")))
    }

    /// Runs one statement and encodes its result.
    pub async fn run(
        &self,
        user: String,
        statement: Statement,
        parameters: Vec<Value>,
        format: Format,
    ) -> Result<Encoded, SqlError> {
        let types = self.types_of(&statement.sql);
        self.blocking(user, move |s| encode(s.run(&statement, &parameters)?, types, &format)).await
    }

    /// The column types `sql` was described with, if it was.
    pub fn types_of(&self, sql: &str) -> Option<Vec<Type>> {
        lock(&self.described).types.get(sql).cloned()
    }

    /// Remembers what `sql` was described with (and the result, if it ran).
    pub fn remember(&self, sql: &str, types: Vec<Type>, result: Option<(Vec<Value>, Rows)>) {
        let mut described = lock(&self.described);
        if described.types.len() >= DESCRIBED_KEPT {
            described.types.clear();
        }
        described.types.insert(sql.to_string(), types);
        described.result = result.map(|(parameters, rows)| (sql.to_string(), parameters, rows));
    }

    /// The result kept from describing `sql` with `parameters`, if that is the last described.
    pub fn take_described(&self, sql: &str, parameters: &[Value]) -> Option<Rows> {
        let mut described = lock(&self.described);
        match described.result.take() {
            Some((s, p, rows)) if s == sql && p == parameters => Some(rows),
            _ => None,
        }
    }

    /// Describes `sql` (running it when `parameters` are known or there are none).
    pub async fn describe(
        &self,
        user: String,
        sql: &str,
        parameters: Option<Vec<Value>>,
    ) -> Result<(usize, Vec<engine::Column>, Vec<Type>, Option<Time>), SqlError> {
        let statement = single(sql)?;
        let (description, ran) = self
            .blocking(user, move |s| {
                let description = s.describe(&statement)?;
                let runnable = !matches!(statement.kind, Kind::Ignored(_));
                let parameters = parameters.or_else(|| (description.parameters == 0).then(Vec::new));
                let ran = match parameters {
                    Some(p) if runnable => match s.run(&statement, &p)? {
                        Outcome::Rows(rows) => Some((p, rows)),
                        Outcome::Command(_) => None,
                    },
                    _ => None,
                };
                Ok((description, ran))
            })
            .await?;
        let known = self.types_of(sql);
        let types = match (&ran, known) {
            (_, Some(types)) if types.len() == description.columns.len() => types,
            (Some((_, rows)), _) => wire::result_types(&rows.columns, &rows.rows),
            (None, _) => wire::described_types(&description.columns),
        };
        let upper = ran.as_ref().and_then(|(_, rows)| rows.upper);
        self.remember(sql, types.clone(), ran);
        Ok((description.parameters, description.columns, types, upper))
    }
}

/// Interrupts the running statement if the future waiting for it is dropped (the client left).
pub struct InterruptOnDrop(Option<Arc<OnceLock<InterruptHandle>>>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.as_ref().and_then(|h| h.get()) {
            handle.interrupt();
        }
    }
}

/// An outcome encoded in `format`, its columns typed `types` when given (and matching).
pub fn encode(outcome: Outcome, types: Option<Vec<Type>>, format: &Format) -> Result<Encoded, SqlError> {
    let rows = match outcome {
        Outcome::Command(tag) => return Ok(Encoded::Command(tag)),
        Outcome::Rows(rows) => rows,
    };
    let types = types
        .filter(|t| t.len() == rows.columns.len())
        .unwrap_or_else(|| wire::result_types(&rows.columns, &rows.rows));
    let fields = Arc::new(wire::fields(&rows.columns, &types, format));
    let data = wire::encode(rows.rows, &fields)?;
    Ok(Encoded::Rows { fields, rows: data, upper: rows.upper })
}

/// The one statement of a prepared statement's text.
pub fn single(sql: &str) -> Result<Statement, SqlError> {
    let mut statements = rewrite::statements(sql).map_err(|m| SqlError::new("42601", m))?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        0 => Err(SqlError::new("42601", "empty statement")),
        _ => Err(SqlError::new("42601", "cannot insert multiple commands into a prepared statement")),
    }
}

/// The connected user's name.
pub fn user_of<C: ClientInfo>(client: &C) -> String {
    client.metadata().get(METADATA_USER).cloned().unwrap_or_default()
}

/// Sends the frontier notice of an answer that read one.
pub async fn notice<C>(client: &mut C, upper: Option<Time>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let Some(upper) = upper else { return Ok(()) };
    let message = format!("consistent at logical upper {upper} (every update at a time below it)");
    let notice = ErrorInfo::new("NOTICE".into(), "00000".into(), message);
    client.feed(PgWireBackendMessage::NoticeResponse(notice.into())).await?;
    Ok(())
}
