//! The PostgreSQL sink.
//!
//! Tables: [`init`] creates every table of [`ALL`] (`CREATE TABLE IF NOT
//! EXISTS`, so it is safe to run twice) with its primary key, plus
//! `edu_rtdw_progress (sink PK, upper, complete, updated_at)`. Types: text,
//! bigint, integer, smallint, double precision, `timestamp(3)` (without time
//! zone, holding UTC) and bytea for raw bytes. Column names are quoted, so
//! they keep their SPEC spelling (`"messageCreateTime"`).
//!
//! Commits: each [`SinkWriter::commit`] is one transaction: per table, one
//! `DELETE … USING unnest($1::bigint[], …)` of the keys of rows that vanished
//! or changed, one `INSERT … SELECT * FROM unnest(…) ON CONFLICT (key) DO
//! UPDATE` of the new rows (each column bound as one array, so a batch is a
//! single prepared statement whatever its size), and the sink's progress row
//! (`upper` = the logical-time frontier below which everything is in the
//! tables). A restart resumes from that frontier. All SQL is prepared with
//! parameters; identifiers come from the static table list only.
//!
//! Outages: a commit that fails with a connection error reconnects and
//! retries with backoff (see [`crate::sql`]); since the transaction rolled
//! back, the retry applies the same changes. `open` does not retry: a bad URL,
//! wrong password or unreachable server is an error at start-up.

use std::time::Duration;

use ::postgres::types::ToSql;
use ::postgres::{Client, Config, NoTls, Statement};
use anyhow::Context;
use chrono::NaiveDateTime;

use dataflows::Time;

use crate::secrets::mask;
use crate::server_sink::{Server, ServerSink};
use crate::sql::{self, Failure, TableChanges};
use crate::tables::{ALL, ColumnType, SqlValue, StampKind, Table};

/// The progress table: one row per sink.
const PROGRESS: &str = "edu_rtdw_progress";

/// Rows bound in one statement (each column is one array parameter).
const PG_BATCH_ROWS: usize = 8192;

/// A PostgreSQL database receiving some of the output tables.
pub type PostgresSink = ServerSink<Postgres>;

/// PostgreSQL's own SQL for [`ServerSink`]: its connection settings.
pub struct Postgres {
    config: Config,
}

/// A connection with every statement of the sink prepared.
pub struct Prepared {
    client: Client,
    upserts: Vec<Statement>,
    deletes: Vec<Statement>,
    progress: Statement,
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

fn parse_url(url: &str) -> anyhow::Result<Config> {
    let mut config: Config = url.parse().map_err(|e| anyhow::anyhow!("bad PostgreSQL URL {}: {e}", mask(url)))?;
    config.connect_timeout(Duration::from_secs(10));
    Ok(config)
}

fn connect(config: &Config, url: &str) -> anyhow::Result<Client> {
    config
        .connect(NoTls)
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL at {}: {}", mask(url), error_text(&e)))
}

/// The error with its source (the `postgres` crate's own Display omits the server's message).
fn error_text(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// True for errors a reconnect may fix: connection loss, server shutdown or restart, deadlocks.
fn transient(e: &::postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(state) = e.code() {
        let code = state.code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01");
    }
    // No SQLSTATE: an I/O error (refused, reset) or a client-side one (types, which are fatal).
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn failure(e: ::postgres::Error) -> Failure {
    Failure { transient: transient(&e), error: anyhow::anyhow!(error_text(&e)) }
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::BigInt => "bigint",
        ColumnType::Int => "integer",
        ColumnType::TinyInt => "smallint",
        ColumnType::Double => "double precision",
        ColumnType::Timestamp => "timestamp(3)",
        ColumnType::Bytes => "bytea",
    }
}

fn array_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Timestamp => "timestamp",
        other => sql_type(other),
    }
}

fn stamp_type(kind: StampKind) -> &'static str {
    match kind {
        StampKind::Millis => "bigint",
        StampKind::Timestamp => "timestamp(3)",
    }
}

fn create_sql(t: &Table) -> String {
    let mut cols: Vec<String> = t.columns.iter().map(|(n, ty)| format!("{} {}", quoted(n), sql_type(*ty))).collect();
    if let Some((stamp, kind)) = t.stamp {
        cols.push(format!("{} {}", quoted(stamp), stamp_type(kind)));
    }
    let key: Vec<String> = t.key.iter().map(|&k| quoted(t.columns[k].0)).collect();
    format!("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))", quoted(t.name), cols.join(", "), key.join(", "))
}

fn upsert_sql(t: &Table) -> String {
    let mut names: Vec<String> = t.columns.iter().map(|(n, _)| quoted(n)).collect();
    let arrays: Vec<String> =
        t.columns.iter().enumerate().map(|(i, (_, ty))| format!("${}::{}[]", i + 1, array_type(*ty))).collect();
    let mut select = "u.*".to_string();
    if let Some((stamp, kind)) = t.stamp {
        names.push(quoted(stamp));
        select = format!("u.*, ${}::{}", t.columns.len() + 1, stamp_type(kind));
    }
    let key: Vec<String> = t.key.iter().map(|&k| quoted(t.columns[k].0)).collect();
    let updates: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| !t.key.contains(i))
        .map(|(_, n)| format!("{n} = EXCLUDED.{n}"))
        .collect();
    let action = if updates.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", updates.join(", ")) };
    format!(
        "INSERT INTO {} ({}) SELECT {select} FROM unnest({}) AS u ON CONFLICT ({}) DO {action}",
        quoted(t.name),
        names.join(", "),
        arrays.join(", "),
        key.join(", ")
    )
}

fn delete_sql(t: &Table) -> String {
    let arrays: Vec<String> =
        t.key.iter().enumerate().map(|(i, &k)| format!("${}::{}[]", i + 1, array_type(t.columns[k].1))).collect();
    let aliases: Vec<String> = (0..t.key.len()).map(|i| format!("k{i}")).collect();
    let conds: Vec<String> =
        t.key.iter().enumerate().map(|(i, &k)| format!("t.{} = d.k{i}", quoted(t.columns[k].0))).collect();
    format!(
        "DELETE FROM {} AS t USING unnest({}) AS d({}) WHERE {}",
        quoted(t.name),
        arrays.join(", "),
        aliases.join(", "),
        conds.join(" AND ")
    )
}

fn progress_sql() -> String {
    format!(
        "INSERT INTO {PROGRESS} (sink, upper, complete, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sink) DO UPDATE SET upper = EXCLUDED.upper, complete = EXCLUDED.complete, updated_at = EXCLUDED.updated_at"
    )
}

/// One column of a batch, as the typed array bound to its parameter.
enum Column {
    Text(Vec<Option<String>>),
    BigInt(Vec<Option<i64>>),
    Int(Vec<Option<i32>>),
    SmallInt(Vec<Option<i16>>),
    Double(Vec<Option<f64>>),
    Timestamp(Vec<Option<NaiveDateTime>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Column {
    fn new(ty: ColumnType, rows: usize) -> Column {
        match ty {
            ColumnType::Text => Column::Text(Vec::with_capacity(rows)),
            ColumnType::BigInt => Column::BigInt(Vec::with_capacity(rows)),
            ColumnType::Int => Column::Int(Vec::with_capacity(rows)),
            ColumnType::TinyInt => Column::SmallInt(Vec::with_capacity(rows)),
            ColumnType::Double => Column::Double(Vec::with_capacity(rows)),
            ColumnType::Timestamp => Column::Timestamp(Vec::with_capacity(rows)),
            ColumnType::Bytes => Column::Bytes(Vec::with_capacity(rows)),
        }
    }

    fn push(&mut self, v: &SqlValue) -> anyhow::Result<()> {
        let null = matches!(v, SqlValue::Null);
        match (self, v) {
            (Column::Text(c), SqlValue::Text(s)) => c.push(Some(s.clone())),
            (Column::BigInt(c), SqlValue::Int(i)) => c.push(Some(*i)),
            (Column::Int(c), SqlValue::Int(i)) => c.push(Some(i32::try_from(*i)?)),
            (Column::SmallInt(c), SqlValue::Int(i)) => c.push(Some(i16::try_from(*i)?)),
            (Column::Double(c), SqlValue::Double(d)) => c.push(Some(*d)),
            (Column::Timestamp(c), SqlValue::Millis(ms)) => c.push(Some(sql::naive_utc(*ms)?)),
            (Column::Bytes(c), SqlValue::Bytes(b)) => c.push(Some(b.clone())),
            (Column::Text(c), _) if null => c.push(None),
            (Column::BigInt(c), _) if null => c.push(None),
            (Column::Int(c), _) if null => c.push(None),
            (Column::SmallInt(c), _) if null => c.push(None),
            (Column::Double(c), _) if null => c.push(None),
            (Column::Timestamp(c), _) if null => c.push(None),
            (Column::Bytes(c), _) if null => c.push(None),
            (_, v) => anyhow::bail!("value {v:?} does not fit its column"),
        }
        Ok(())
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Column::Text(c) => c,
            Column::BigInt(c) => c,
            Column::Int(c) => c,
            Column::SmallInt(c) => c,
            Column::Double(c) => c,
            Column::Timestamp(c) => c,
            Column::Bytes(c) => c,
        }
    }
}

/// The columns `which` (indices into the table's columns) of `rows`, as arrays.
fn columns(t: &Table, which: &[usize], rows: &[Vec<SqlValue>], key_only: bool) -> anyhow::Result<Vec<Column>> {
    let mut cols: Vec<Column> = which.iter().map(|&c| Column::new(t.columns[c].1, rows.len())).collect();
    for row in rows {
        for (i, col) in cols.iter_mut().enumerate() {
            // Delete rows hold only the key values, in key order.
            let v = if key_only { &row[i] } else { &row[which[i]] };
            col.push(v).with_context(|| format!("{}.{}", t.name, t.columns[which[i]].0))?;
        }
    }
    Ok(cols)
}

/// Creates every output table and the progress table in the database at `url`; safe to run twice.
pub fn init(url: &str) -> anyhow::Result<()> {
    let config = parse_url(url)?;
    let mut client = connect(&config, url)?;
    for t in ALL.iter() {
        client
            .batch_execute(&create_sql(t))
            .map_err(|e| anyhow::anyhow!("cannot create PostgreSQL table {}: {}", t.name, error_text(&e)))?;
    }
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {PROGRESS} (sink text PRIMARY KEY, upper bigint NOT NULL, complete boolean NOT NULL, updated_at timestamp(3))"
        ))
        .map_err(|e| anyhow::anyhow!("cannot create PostgreSQL table {PROGRESS}: {}", error_text(&e)))?;
    Ok(())
}

impl Prepared {
    fn new(mut client: Client) -> Result<Prepared, ::postgres::Error> {
        let upserts = ALL.iter().map(|t| client.prepare(&upsert_sql(t))).collect::<Result<_, _>>()?;
        let deletes = ALL.iter().map(|t| client.prepare(&delete_sql(t))).collect::<Result<_, _>>()?;
        let progress = client.prepare(&progress_sql())?;
        Ok(Prepared { client, upserts, deletes, progress })
    }
}

impl PostgresSink {
    /// Connects to `url` and reads what sink `sink` already committed (run [`init`] first).
    pub fn open(url: &str, sink: &str) -> anyhow::Result<Self> {
        let config = parse_url(url)?;
        let mut client = connect(&config, url)?;
        let context = || {
            format!("cannot read the progress of sink {sink} in PostgreSQL at {} (run `edu-rtdw init-db`)", mask(url))
        };
        let row = client
            .query_opt(&format!("SELECT upper FROM {PROGRESS} WHERE sink = $1"), &[&sink])
            .map_err(|e| anyhow::anyhow!(error_text(&e)))
            .with_context(context)?;
        let upper: Option<i64> = row.map(|r| r.try_get(0)).transpose().with_context(context)?;
        let prepared =
            Prepared::new(client).map_err(|e| anyhow::anyhow!("cannot prepare statements: {}", error_text(&e)))?;
        Ok(ServerSink::new(Postgres { config }, url, sink, prepared, upper.unwrap_or(0).max(0) as Time))
    }

    /// Every row of `table` (data columns, stamp excluded) as text cells, sorted (for comparisons).
    pub fn read_rows(url: &str, table: &Table) -> anyhow::Result<Vec<Vec<String>>> {
        let config = parse_url(url)?;
        let mut client = connect(&config, url)?;
        let cols: Vec<String> = table.columns.iter().map(|(n, _)| quoted(n)).collect();
        let rows = client
            .query(&format!("SELECT {} FROM {}", cols.join(", "), quoted(table.name)), &[])
            .map_err(|e| anyhow::anyhow!(error_text(&e)))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let cells = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| cell(row, i, *ty))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(cells);
        }
        out.sort();
        Ok(out)
    }
}

fn cell(row: &::postgres::Row, i: usize, ty: ColumnType) -> Result<String, ::postgres::Error> {
    fn text<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
        v.map_or_else(|| "NULL".to_string(), f)
    }
    Ok(match ty {
        ColumnType::Text => text(row.try_get::<_, Option<String>>(i)?, |s| s),
        ColumnType::BigInt => text(row.try_get::<_, Option<i64>>(i)?, |v| v.to_string()),
        ColumnType::Int => text(row.try_get::<_, Option<i32>>(i)?, |v| v.to_string()),
        ColumnType::TinyInt => text(row.try_get::<_, Option<i16>>(i)?, |v| v.to_string()),
        ColumnType::Double => text(row.try_get::<_, Option<f64>>(i)?, |v| format!("{v:?}")),
        ColumnType::Timestamp => text(row.try_get::<_, Option<NaiveDateTime>>(i)?, |t| sql::timestamp_cell(&t)),
        ColumnType::Bytes => text(row.try_get::<_, Option<Vec<u8>>>(i)?, |b| sql::bytes_cell(&b)),
    })
}

impl Server for Postgres {
    type Conn = Prepared;
    const LABEL: &'static str = "postgres";
    const NAME: &'static str = "PostgreSQL";

    fn connect(&mut self) -> Result<Prepared, Failure> {
        Prepared::new(self.config.connect(NoTls).map_err(failure)?).map_err(failure)
    }

    fn transaction(
        &mut self,
        conn: &mut Prepared,
        sink: &str,
        upper: Time,
        complete: bool,
        tables: &[TableChanges],
    ) -> Result<(), Failure> {
        let stamp = sql::now_millis();
        let stamp_time = sql::naive_utc(stamp).map_err(Failure::fatal)?;
        let mut tx = conn.client.transaction().map_err(failure)?;
        for (table, changes) in tables.iter().enumerate() {
            let t = &ALL[table];
            for rows in changes.deletes.chunks(PG_BATCH_ROWS) {
                let cols = columns(t, t.key, rows, true).map_err(Failure::fatal)?;
                let params: Vec<&(dyn ToSql + Sync)> = cols.iter().map(Column::param).collect();
                tx.execute(&conn.deletes[table], &params).map_err(failure)?;
            }
        }
        for (table, changes) in tables.iter().enumerate() {
            let t = &ALL[table];
            let all: Vec<usize> = (0..t.columns.len()).collect();
            for rows in changes.upserts.chunks(PG_BATCH_ROWS) {
                let cols = columns(t, &all, rows, false).map_err(Failure::fatal)?;
                let mut params: Vec<&(dyn ToSql + Sync)> = cols.iter().map(Column::param).collect();
                match t.stamp {
                    Some((_, StampKind::Millis)) => params.push(&stamp),
                    Some((_, StampKind::Timestamp)) => params.push(&stamp_time),
                    None => {}
                }
                tx.execute(&conn.upserts[table], &params).map_err(failure)?;
            }
        }
        let upper = upper as i64;
        tx.execute(&conn.progress, &[&sink, &upper, &complete, &stamp_time]).map_err(failure)?;
        tx.commit().map_err(failure)
    }
}
