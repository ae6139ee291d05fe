//! One client connection's SQL engine: an in-memory SQLite database over the outputs.
//!
//! A [`Session`] is opened per connection with the output tables as virtual tables
//! ([`super::vtab`]), the catalog ([`super::catalog`]) and `PRAGMA query_only`, and then
//! runs one [`Statement`] at a time: session commands are acknowledged, `SHOW` answered,
//! anything SQLite does not report read-only is refused, as is every statement kind but
//! queries (an authorizer denies whatever else might slip through: `ATTACH`, `PRAGMA`, ...).
//! A query reads its tables at one frontier ([`super::frame::Frame`]) and fails, rather
//! than being cut short, when it has more than `max_rows` rows.

use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::Value;
use rusqlite::vtab::read_only_module;
use rusqlite::{Connection, ErrorCode, InterruptHandle};

use dataflows::Time;

use super::catalog;
use super::frame::{Frame, SharedFrame, lock};
use super::functions::setting;
use super::rewrite::{Kind, Statement};
use super::vtab::OutputTable;
use crate::serving::Reader;

/// The longest value (text or blob) a statement may build, in bytes.
const MAX_VALUE_BYTES: i32 = 64 << 20;
/// The longest statement text, in bytes (rewriting may lengthen a text a little).
const MAX_SQL_BYTES: i32 = 2 * super::rewrite::MAX_TEXT_BYTES as i32;

/// An error for the client: SQLSTATE and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlError {
    /// The SQLSTATE code.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl SqlError {
    /// An error with SQLSTATE `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> SqlError {
        SqlError { code, message: message.into() }
    }
}

/// A result column: its name and its declared SQLite type, if any.
#[derive(Clone, Debug)]
pub struct Column {
    /// The column name.
    pub name: String,
    /// Its declared type (`INTEGER`, `TEXT`, ...), when it is a table or view column.
    pub decl: Option<String>,
}

/// A query's result.
#[derive(Debug)]
pub struct Rows {
    /// The columns.
    pub columns: Vec<Column>,
    /// The rows, each one value per column.
    pub rows: Vec<Vec<Value>>,
    /// The frontier the statement read at (none when it read no table).
    pub upper: Option<Time>,
}

/// What a statement did.
#[derive(Debug)]
pub enum Outcome {
    /// A result.
    Rows(Rows),
    /// A command done (or ignored); its tag.
    Command(&'static str),
}

/// A statement described before running: its parameter count and its columns.
#[derive(Debug)]
pub struct Description {
    /// `$n` parameters (the highest `n`).
    pub parameters: usize,
    /// The result columns (none for a command).
    pub columns: Vec<Column>,
}

/// One connection's database.
pub struct Session {
    conn: Connection,
    frame: SharedFrame,
    max_rows: usize,
}

impl Session {
    /// A database over `reader`'s outputs for user `user`.
    pub fn open(reader: Arc<dyn Reader>, user: &str, max_rows: usize) -> Result<Session, SqlError> {
        let failed = |e: rusqlite::Error| SqlError::new("XX000", format!("cannot open the SQL session: {e}"));
        let conn = Connection::open_in_memory().map_err(failed)?;
        conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES).map_err(failed)?;
        conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES).map_err(failed)?;
        let frame: SharedFrame = Arc::new(Mutex::new(Frame::new(reader)));
        conn.create_module("edu_rtdw", read_only_module::<OutputTable>(), Some(Arc::clone(&frame))).map_err(failed)?;
        catalog::install(&conn, &frame, user).map_err(failed)?;
        conn.execute_batch("PRAGMA query_only = 1").map_err(failed)?;
        conn.authorizer(Some(authorize));
        Ok(Session { conn, frame, max_rows })
    }

    /// A handle that interrupts the running statement from another thread.
    pub fn interrupt_handle(&self) -> InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    /// Runs `statement` with `parameters` (`$1` is the first).
    pub fn run(&mut self, statement: &Statement, parameters: &[Value]) -> Result<Outcome, SqlError> {
        match &statement.kind {
            Kind::Ignored(tag) => Ok(Outcome::Command(tag)),
            Kind::Show(name) => show(name).map(Outcome::Rows),
            Kind::Refused(word) => Err(refused(word)),
            Kind::Query => self.query(statement, parameters).map(Outcome::Rows),
        }
    }

    /// What `statement` takes and returns, without running it.
    pub fn describe(&mut self, statement: &Statement) -> Result<Description, SqlError> {
        match &statement.kind {
            Kind::Ignored(_) => Ok(Description { parameters: 0, columns: Vec::new() }),
            Kind::Show(name) => Ok(Description { parameters: 0, columns: vec![show_column(name)] }),
            Kind::Refused(word) => Err(refused(word)),
            Kind::Query => {
                let prepared = self.prepare(&statement.sql)?;
                let parameters = parameter_numbers(&prepared)?.into_iter().max().unwrap_or(0);
                Ok(Description { parameters, columns: columns(&prepared) })
            }
        }
    }

    /// A read-only statement prepared.
    fn prepare(&self, sql: &str) -> Result<rusqlite::Statement<'_>, SqlError> {
        let prepared = self.conn.prepare(sql).map_err(sql_error)?;
        if !prepared.readonly() {
            return Err(refused(first_word(sql)));
        }
        Ok(prepared)
    }

    /// Runs a query, reading its tables at one frontier.
    fn query(&mut self, statement: &Statement, parameters: &[Value]) -> Result<Rows, SqlError> {
        let mut prepared = self.prepare(&statement.sql)?;
        for (i, n) in parameter_numbers(&prepared)?.into_iter().enumerate() {
            let value =
                parameters.get(n - 1).ok_or_else(|| SqlError::new("08P01", format!("no value for parameter ${n}")))?;
            prepared.raw_bind_parameter(i + 1, value).map_err(sql_error)?;
        }
        let columns = columns(&prepared);
        lock(&self.frame).begin(statement.as_of);
        let rows = collect(&mut prepared, columns.len(), self.max_rows);
        let upper = lock(&self.frame).end();
        Ok(Rows { columns, rows: rows?, upper })
    }
}

/// Lets a query read and call functions; denies everything else.
fn authorize(context: AuthContext<'_>) -> Authorization {
    match context.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Function { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        _ => Authorization::Deny,
    }
}

/// The `$n` number of each SQLite parameter, in SQLite's order (`?` counts by position).
fn parameter_numbers(prepared: &rusqlite::Statement<'_>) -> Result<Vec<usize>, SqlError> {
    (1..=prepared.parameter_count())
        .map(|i| match prepared.parameter_name(i) {
            None => Ok(i),
            Some(name) => name
                .strip_prefix('$')
                .or_else(|| name.strip_prefix('?'))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| SqlError::new("42P02", format!("parameter {name} is not supported: use $1, $2, ..."))),
        })
        .collect()
}

/// The result columns of a prepared statement.
fn columns(prepared: &rusqlite::Statement<'_>) -> Vec<Column> {
    prepared
        .columns()
        .iter()
        .map(|c| Column { name: column_name(c.name()), decl: c.decl_type().map(str::to_string) })
        .collect()
}

/// A column's name as PostgreSQL gives it: an unnamed call `f(...)` is `f`.
fn column_name(name: &str) -> String {
    let call = name.split_once('(').filter(|(f, _)| {
        name.ends_with(')') && !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    });
    match call {
        Some((f, _)) => f.rsplit('.').next().unwrap_or(f).to_ascii_lowercase(),
        None => name.to_string(),
    }
}

/// Every row of a running statement, or an error past `max_rows`.
fn collect(prepared: &mut rusqlite::Statement<'_>, width: usize, max_rows: usize) -> Result<Vec<Vec<Value>>, SqlError> {
    let mut rows = prepared.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        if out.len() == max_rows {
            return Err(SqlError::new(
                "54000",
                format!(
                    "the result has more than {max_rows} rows, the limit ([serving] sql_max_rows): \
                     add a LIMIT or a narrower WHERE"
                ),
            ));
        }
        let values: Result<Vec<Value>, _> = (0..width).map(|i| row.get::<_, Value>(i)).collect();
        out.push(values.map_err(sql_error)?);
    }
    Ok(out)
}

/// `SHOW name`.
fn show(name: &str) -> Result<Rows, SqlError> {
    let value = setting(name)
        .ok_or_else(|| SqlError::new("42704", format!("unrecognized configuration parameter \"{name}\"")))?;
    Ok(Rows { columns: vec![show_column(name)], rows: vec![vec![Value::Text(value)]], upper: None })
}

fn show_column(name: &str) -> Column {
    Column { name: name.to_string(), decl: Some("TEXT".into()) }
}

/// The refusal of a statement that is not a read-only query.
fn refused(word: &str) -> SqlError {
    let what = if word.is_empty() { "this statement".to_string() } else { word.to_ascii_uppercase() };
    SqlError::new("25006", format!("edu-rtdw serves read-only SQL: {what} is not allowed"))
}

fn first_word(sql: &str) -> &str {
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_')).find(|w| !w.is_empty()).unwrap_or_default()
}

/// A SQLite error for the client, with the nearest SQLSTATE.
fn sql_error(e: rusqlite::Error) -> SqlError {
    if e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) {
        return SqlError::new("57014", "canceling statement: interrupted");
    }
    let message = match &e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        e => e.to_string(),
    };
    let code = [
        ("no such table", "42P01"),
        ("no such column", "42703"),
        ("no such function", "42883"),
        ("wrong number of arguments", "42883"),
        ("syntax error", "42601"),
        ("incomplete input", "42601"),
        ("not authorized", "42501"),
    ]
    .iter()
    .find(|(text, _)| message.contains(text))
    .map_or("XX000", |(_, code)| code);
    SqlError::new(code, message)
}
