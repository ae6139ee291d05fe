//! The MySQL / MariaDB sink.
//!
//! Tables: [`init`] creates every table of [`ALL`] (`CREATE TABLE IF NOT
//! EXISTS`, so it is safe to run twice) with its primary key, plus
//! `edu_rtdw_progress (sink PK, upper, complete, updated_at)`. Types: text
//! key columns VARCHAR(255) (VARCHAR(191) in a key with three text columns,
//! to stay under InnoDB's 3,072-byte key limit), other text TEXT, BIGINT, INT,
//! TINYINT, DOUBLE, DATETIME(3) holding UTC, raw bytes MEDIUMBLOB; utf8mb4
//! with a binary collation (NO PAD on MariaDB) so keys compare exactly as in
//! the dataflow.
//!
//! Commits: each [`SinkWriter::commit`] is one transaction: batched deletes
//! (`DELETE … WHERE (k = ? AND …) OR …`) of the keys of rows that vanished or
//! changed, batched multi-row upserts (`INSERT … ON DUPLICATE KEY UPDATE`) of
//! new rows, and the sink's progress row (`upper` = the logical-time frontier
//! below which everything is in the tables). A restart resumes from that
//! frontier. Every statement is prepared with placeholders; identifiers come
//! from the static table list only.
//!
//! Outages: a commit that fails with a connection error reconnects and
//! retries with backoff (see [`crate::sql`]); since the transaction rolled
//! back, the retry applies the same changes. `open` does not retry: a bad URL,
//! wrong password or unreachable server is an error at start-up.

use std::collections::HashMap;
use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Opts, OptsBuilder, TxOpts, Value};
use anyhow::Context;
use chrono::{Datelike, Timelike};

use dataflows::Time;

use crate::secrets::mask;
use crate::server_sink::{Server, ServerSink};
use crate::sql::{self, Failure, TableChanges, statement_sizes};
use crate::tables::{ALL, ColumnType, SqlValue, StampKind, Table};

/// The progress table: one row per sink.
const PROGRESS: &str = "edu_rtdw_progress";

/// A MySQL database receiving some of the output tables.
pub type MysqlSink = ServerSink<Mysql>;

/// MySQL's own SQL for [`ServerSink`]: its connection options and the statements it prepared.
pub struct Mysql {
    opts: Opts,
    statements: HashMap<(usize, usize, bool), String>,
}

fn quoted(name: &str) -> String {
    format!("`{name}`")
}

fn parse_url(url: &str) -> anyhow::Result<Opts> {
    let opts = Opts::from_url(url).map_err(|e| anyhow::anyhow!("bad MySQL URL {}: {e}", mask(url)))?;
    let builder = OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(Duration::from_secs(10)))
        .read_timeout(Some(Duration::from_secs(300)))
        .write_timeout(Some(Duration::from_secs(300)))
        .stmt_cache_size(Some(256))
        .init(vec![
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
            "SET SESSION time_zone = '+00:00'",
        ]);
    Ok(builder.into())
}

fn connect(opts: &Opts, url: &str) -> anyhow::Result<Conn> {
    Conn::new(opts.clone()).map_err(|e| anyhow::anyhow!("cannot connect to MySQL at {}: {e}", mask(url)))
}

/// True for errors a reconnect may fix: connection loss, server shutdown or restart, deadlocks.
fn transient(e: &::mysql::Error) -> bool {
    use ::mysql::DriverError as D;
    match e {
        ::mysql::Error::IoError(_) | ::mysql::Error::CodecError(_) => true,
        ::mysql::Error::DriverError(d) => matches!(
            d,
            D::ConnectTimeout
                | D::CouldNotConnect(_)
                | D::PacketOutOfSync
                | D::UnexpectedPacket
                | D::Timeout
                | D::SetupError
        ),
        // too many connections, shutdown in progress, lock wait timeout, deadlock,
        // server gone / lost (client codes), connection killed, idle disconnect.
        ::mysql::Error::MySqlError(m) => matches!(m.code, 1040 | 1053 | 1205 | 1213 | 2006 | 2013 | 1927 | 4031),
        _ => false,
    }
}

fn failure(e: ::mysql::Error) -> Failure {
    Failure { transient: transient(&e), error: e.into() }
}

// The VARCHAR lengths below are the dataflow's (`dataflows::storable`).
const _: () = assert!(dataflows::storable::KEY_TEXT_CHARS == 255 && dataflows::storable::WIDE_KEY_TEXT_CHARS == 191);

fn column_type(t: &Table, column: usize) -> &'static str {
    let (_, ty) = t.columns[column];
    let in_key = t.key.contains(&column);
    match ty {
        ColumnType::Text if in_key => match dataflows::storable::key_text_chars(t) {
            dataflows::storable::WIDE_KEY_TEXT_CHARS => "VARCHAR(191)",
            _ => "VARCHAR(255)",
        },
        ColumnType::Text => "TEXT",
        ColumnType::BigInt => "BIGINT",
        ColumnType::Int => "INT",
        ColumnType::TinyInt => "TINYINT",
        ColumnType::Double => "DOUBLE",
        ColumnType::Timestamp => "DATETIME(3)",
        ColumnType::Bytes => "MEDIUMBLOB",
    }
}

fn create_sql(t: &Table, collation: &str) -> String {
    let mut cols: Vec<String> =
        (0..t.columns.len()).map(|i| format!("{} {}", quoted(t.columns[i].0), column_type(t, i))).collect();
    if let Some((stamp, kind)) = t.stamp {
        cols.push(format!("{} {}", quoted(stamp), if kind == StampKind::Millis { "BIGINT" } else { "DATETIME(3)" }));
    }
    let key: Vec<String> = t.key.iter().map(|&k| quoted(t.columns[k].0)).collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({})) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
        quoted(t.name),
        cols.join(", "),
        key.join(", ")
    )
}

fn all_names(t: &Table) -> Vec<&'static str> {
    t.columns.iter().map(|(n, _)| *n).chain(t.stamp.map(|(n, _)| n)).collect()
}

fn upsert_sql(t: &Table, rows: usize) -> String {
    let names = all_names(t);
    let cols: Vec<String> = names.iter().map(|n| quoted(n)).collect();
    let tuple = format!("({})", vec!["?"; names.len()].join(", "));
    let mut updates: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| !t.key.contains(i))
        .map(|(_, n)| format!("{0} = VALUES({0})", quoted(n)))
        .collect();
    if updates.is_empty() {
        let k = quoted(t.columns[t.key[0]].0);
        updates.push(format!("{k} = {k}"));
    }
    format!(
        "INSERT INTO {} ({}) VALUES {} ON DUPLICATE KEY UPDATE {}",
        quoted(t.name),
        cols.join(", "),
        vec![tuple; rows].join(", "),
        updates.join(", ")
    )
}

fn delete_sql(t: &Table, rows: usize) -> String {
    let conds: Vec<String> = t.key.iter().map(|&k| format!("{} = ?", quoted(t.columns[k].0))).collect();
    let one = format!("({})", conds.join(" AND "));
    format!("DELETE FROM {} WHERE {}", quoted(t.name), vec![one; rows].join(" OR "))
}

fn value(v: &SqlValue) -> anyhow::Result<Value> {
    Ok(match v {
        SqlValue::Null => Value::NULL,
        SqlValue::Int(i) => Value::Int(*i),
        SqlValue::Double(d) => Value::Double(*d),
        SqlValue::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        SqlValue::Bytes(b) => Value::Bytes(b.clone()),
        SqlValue::Millis(ms) => datetime(*ms)?,
    })
}

fn datetime(ms: i64) -> anyhow::Result<Value> {
    let t = sql::naive_utc(ms)?;
    let year = u16::try_from(t.year()).map_err(|_| anyhow::anyhow!("timestamp {ms} ms is out of DATETIME range"))?;
    Ok(Value::Date(
        year,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        t.nanosecond() / 1000,
    ))
}

/// Creates every output table and the progress table in the database at `url`; safe to run twice.
pub fn init(url: &str) -> anyhow::Result<()> {
    let opts = parse_url(url)?;
    let mut conn = connect(&opts, url)?;
    let version: String = conn.query_first("SELECT VERSION()")?.unwrap_or_default();
    let collation = if version.contains("MariaDB") { "utf8mb4_nopad_bin" } else { "utf8mb4_bin" };
    for t in ALL.iter() {
        conn.query_drop(create_sql(t, collation)).with_context(|| format!("cannot create MySQL table {}", t.name))?;
    }
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {PROGRESS} (sink VARCHAR(64) NOT NULL PRIMARY KEY, `upper` BIGINT NOT NULL, complete BOOLEAN NOT NULL, updated_at DATETIME(3)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}"
    ))
    .context("cannot create MySQL table edu_rtdw_progress")?;
    Ok(())
}

impl MysqlSink {
    /// Connects to `url` and reads what sink `sink` already committed (run [`init`] first).
    pub fn open(url: &str, sink: &str) -> anyhow::Result<Self> {
        let opts = parse_url(url)?;
        let mut conn = connect(&opts, url)?;
        let upper: Option<i64> =
            conn.exec_first(format!("SELECT `upper` FROM {PROGRESS} WHERE sink = ?"), (sink,)).with_context(|| {
                format!("cannot read the progress of sink {sink} in MySQL at {} (run `edu-rtdw init-db`)", mask(url))
            })?;
        Ok(ServerSink::new(
            Mysql { opts, statements: HashMap::new() },
            url,
            sink,
            conn,
            upper.unwrap_or(0).max(0) as Time,
        ))
    }

    /// Every row of `table` (data columns, stamp excluded) as text cells, sorted (for comparisons).
    pub fn read_rows(url: &str, table: &Table) -> anyhow::Result<Vec<Vec<String>>> {
        let opts = parse_url(url)?;
        let mut conn = connect(&opts, url)?;
        let cols: Vec<String> = table.columns.iter().map(|(n, _)| quoted(n)).collect();
        let rows: Vec<::mysql::Row> =
            conn.exec(format!("SELECT {} FROM {}", cols.join(", "), quoted(table.name)), ())?;
        let mut out: Vec<Vec<String>> =
            rows.iter().map(|r| (0..r.len()).map(|i| cell(r.as_ref(i))).collect()).collect();
        out.sort();
        Ok(out)
    }
}

impl Server for Mysql {
    type Conn = Conn;
    const LABEL: &'static str = "mysql";
    const NAME: &'static str = "MySQL";

    fn connect(&mut self) -> Result<Conn, Failure> {
        Conn::new(self.opts.clone()).map_err(failure)
    }

    fn transaction(
        &mut self,
        conn: &mut Conn,
        sink: &str,
        upper: Time,
        complete: bool,
        tables: &[TableChanges],
    ) -> Result<(), Failure> {
        let stamp = sql::now_millis();
        let mut tx = conn.start_transaction(TxOpts::default()).map_err(failure)?;
        for (table, changes) in tables.iter().enumerate() {
            self.write(&mut tx, table, &changes.deletes, true, stamp)?;
        }
        for (table, changes) in tables.iter().enumerate() {
            self.write(&mut tx, table, &changes.upserts, false, stamp)?;
        }
        let progress = format!(
            "INSERT INTO {PROGRESS} (sink, `upper`, complete, updated_at) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE `upper` = VALUES(`upper`), complete = VALUES(complete), updated_at = VALUES(updated_at)"
        );
        let params = vec![
            Value::from(sink),
            Value::Int(upper as i64),
            Value::from(complete),
            datetime(stamp).map_err(Failure::fatal)?,
        ];
        tx.exec_drop(progress, params).map_err(failure)?;
        tx.commit().map_err(failure)
    }
}

impl Mysql {
    fn statement(&mut self, table: usize, rows: usize, delete: bool) -> String {
        self.statements
            .entry((table, rows, delete))
            .or_insert_with(|| if delete { delete_sql(&ALL[table], rows) } else { upsert_sql(&ALL[table], rows) })
            .clone()
    }

    /// Deletes (by key) or upserts `rows` of `table` in statements of [`statement_sizes`].
    fn write(
        &mut self,
        tx: &mut ::mysql::Transaction<'_>,
        table: usize,
        rows: &[Vec<SqlValue>],
        delete: bool,
        stamp: i64,
    ) -> Result<(), Failure> {
        let stamp_value = match ALL[table].stamp {
            Some((_, StampKind::Millis)) if !delete => Some(Value::Int(stamp)),
            Some((_, StampKind::Timestamp)) if !delete => Some(datetime(stamp).map_err(Failure::fatal)?),
            _ => None,
        };
        let mut start = 0;
        for size in statement_sizes(rows.len()) {
            let mut params = Vec::with_capacity(size * (ALL[table].columns.len() + 1));
            for row in &rows[start..start + size] {
                for v in row {
                    params.push(value(v).map_err(Failure::fatal)?);
                }
                params.extend(stamp_value.clone());
            }
            let statement = self.statement(table, size, delete);
            tx.exec_drop(statement, params).map_err(failure)?;
            start += size;
        }
        Ok(())
    }
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::NULL) => "NULL".to_string(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::UInt(u)) => u.to_string(),
        Some(Value::Double(d)) => format!("{d:?}"),
        Some(Value::Float(f)) => format!("{:?}", f64::from(*f)),
        Some(Value::Bytes(b)) => sql::bytes_cell(b),
        Some(Value::Date(y, mo, d, h, mi, s, us)) => {
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:03}", us / 1000)
        }
        Some(Value::Time(..)) => "TIME".to_string(),
    }
}
