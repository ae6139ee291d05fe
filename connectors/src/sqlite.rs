//! The embedded SQLite sink (SPEC §6): every table of SPEC §2 plus
//! `timeline_analysis_student` and `dead_letters` in one file.
//!
//! Each commit is one transaction: deletes of rows that vanished, upserts
//! (`INSERT … ON CONFLICT DO UPDATE`) of rows that are new or changed, and the
//! sink's progress row in `edu_rtdw_progress`, so a reader never sees half of
//! a logical time and a restart knows what is already durable. Writing the
//! same state twice changes nothing but the wall-clock stamp columns.
//! Timestamps are TEXT `YYYY-MM-DD HH:MM:SS.SSS` in UTC.

use std::path::Path;

use anyhow::Context;
use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use dataflows::{Diff, OutputRow, Time};

use crate::clock::{Clock, Resume};
use crate::sink::SinkWriter;
use crate::tables::{ALL, ColumnType, SqlValue, StampKind, Table, encode};

/// The progress table: one row per sink.
const PROGRESS: &str = "edu_rtdw_progress";

/// A SQLite database holding every output table.
pub struct SqliteSink {
    conn: Connection,
    upserts: Vec<String>,
    deletes: Vec<String>,
    committed: Time,
    resume: Option<Resume>,
}

fn sql_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Text | ColumnType::Timestamp => "TEXT",
        ColumnType::BigInt | ColumnType::Int | ColumnType::TinyInt => "INTEGER",
        ColumnType::Double => "REAL",
        ColumnType::Bytes => "BLOB",
    }
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

fn create_sql(t: &Table) -> String {
    let mut cols: Vec<String> = t.columns.iter().map(|(n, ty)| format!("{} {}", quoted(n), sql_type(*ty))).collect();
    if let Some((stamp, kind)) = t.stamp {
        cols.push(format!("{} {}", quoted(stamp), if kind == StampKind::Millis { "INTEGER" } else { "TEXT" }));
    }
    let key: Vec<String> = t.key.iter().map(|&k| quoted(t.columns[k].0)).collect();
    format!("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))", quoted(t.name), cols.join(", "), key.join(", "))
}

fn upsert_sql(t: &Table) -> String {
    let mut names: Vec<&str> = t.columns.iter().map(|(n, _)| *n).collect();
    names.extend(t.stamp.map(|(n, _)| n));
    let cols: Vec<String> = names.iter().map(|n| quoted(n)).collect();
    let marks = vec!["?"; names.len()].join(", ");
    let key: Vec<String> = t.key.iter().map(|&k| quoted(t.columns[k].0)).collect();
    let updates: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| !t.key.contains(i))
        .map(|(_, n)| format!("{0} = excluded.{0}", quoted(n)))
        .collect();
    let action = if updates.is_empty() { "NOTHING".to_string() } else { format!("UPDATE SET {}", updates.join(", ")) };
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO {}",
        quoted(t.name),
        cols.join(", "),
        marks,
        key.join(", "),
        action
    )
}

fn delete_sql(t: &Table) -> String {
    let conds: Vec<String> = t.key.iter().map(|&k| format!("{} = ?", quoted(t.columns[k].0))).collect();
    format!("DELETE FROM {} WHERE {}", quoted(t.name), conds.join(" AND "))
}

fn bind(v: &SqlValue) -> ToSqlOutput<'_> {
    ToSqlOutput::Owned(match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(i) => Value::Integer(*i),
        SqlValue::Double(d) => Value::Real(*d),
        SqlValue::Text(s) => Value::Text(s.clone()),
        SqlValue::Millis(ms) => Value::Text(SqlValue::timestamp_text(*ms)),
        // Raw bytes are stored as text when they are UTF-8, as a BLOB otherwise: nothing is lost.
        SqlValue::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Blob(b.clone()),
        },
    })
}

impl SqliteSink {
    /// Opens (or creates) the database at `path` and its tables.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(path).with_context(|| format!("cannot open SQLite database {}", path.display()))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .with_context(|| format!("cannot use SQLite database {}", path.display()))?;
        for t in ALL.iter() {
            conn.execute(&create_sql(t), []).with_context(|| format!("cannot create table {}", t.name))?;
        }
        conn.execute(&format!("CREATE TABLE IF NOT EXISTS {PROGRESS} (sink TEXT PRIMARY KEY, upper INTEGER NOT NULL, complete INTEGER NOT NULL, updated_at TEXT)"), [])?;
        let committed: Option<i64> = conn
            .query_row(&format!("SELECT upper FROM {PROGRESS} WHERE sink = 'sqlite'"), [], |r| r.get(0))
            .optional()?;
        Ok(SqliteSink {
            conn,
            upserts: ALL.iter().map(upsert_sql).collect(),
            deletes: ALL.iter().map(delete_sql).collect(),
            committed: committed.map_or(0, |c| c.max(0) as Time),
            resume: None,
        })
    }

    /// When this run's input ends, record where the next run's clock starts (in the final commit).
    pub fn set_resume(&mut self, resume: Resume) {
        self.resume = Some(resume);
    }

    /// The input clock recorded in this file.
    pub fn clock(&self, epoch_records: u64) -> anyhow::Result<Clock> {
        Clock::load(&self.conn, epoch_records)
    }

    /// Row counts of every output table.
    pub fn table_counts(&self) -> anyhow::Result<Vec<(&'static str, u64)>> {
        ALL.iter()
            .map(|t| {
                let n: i64 =
                    self.conn.query_row(&format!("SELECT COUNT(*) FROM {}", quoted(t.name)), [], |r| r.get(0))?;
                Ok((t.name, n as u64))
            })
            .collect()
    }

    /// Dead letters per reason.
    pub fn dead_letter_reasons(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let mut stmt =
            self.conn.prepare("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason ORDER BY reason")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl SinkWriter for SqliteSink {
    fn committed_upper(&self) -> Time {
        self.committed
    }

    fn commit(&mut self, upper: Time, complete: bool, changes: &[(OutputRow, Diff)]) -> anyhow::Result<()> {
        let stamp = crate::wall_clock::now_millis();
        let stamp_text = SqlValue::timestamp_text(stamp);
        let tx = self.conn.transaction()?;
        let encoded: Vec<(usize, Vec<SqlValue>, Diff)> = changes
            .iter()
            .map(|(row, diff)| {
                let (table, values) = encode(row);
                (table, values, *diff)
            })
            .collect();
        // Deletes first: a row replaced within this commit is retracted and re-inserted under its key.
        for (table, values, _) in encoded.iter().filter(|(_, _, d)| *d < 0) {
            let key: Vec<ToSqlOutput> = ALL[*table].key.iter().map(|&k| bind(&values[k])).collect();
            tx.prepare_cached(&self.deletes[*table])?.execute(params_from_iter(key))?;
        }
        for (table, values, _) in encoded.iter().filter(|(_, _, d)| *d > 0) {
            let mut params: Vec<ToSqlOutput> = values.iter().map(bind).collect();
            if let Some((_, kind)) = ALL[*table].stamp {
                params.push(match kind {
                    StampKind::Millis => ToSqlOutput::Owned(Value::Integer(stamp)),
                    StampKind::Timestamp => {
                        ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(stamp_text.as_bytes()))
                    }
                });
            }
            tx.prepare_cached(&self.upserts[*table])?.execute(params_from_iter(params))?;
        }
        tx.execute(
            &format!("INSERT INTO {PROGRESS} (sink, upper, complete, updated_at) VALUES ('sqlite', ?1, ?2, ?3) ON CONFLICT (sink) DO UPDATE SET upper = excluded.upper, complete = excluded.complete, updated_at = excluded.updated_at"),
            rusqlite::params![upper as i64, complete, stamp_text],
        )?;
        if let (true, Some(resume)) = (complete, &self.resume) {
            Clock::record(&tx, resume)?;
        }
        tx.commit()?;
        self.committed = upper;
        Ok(())
    }
}
