//! The commit loop shared by the MySQL and PostgreSQL sinks.
//!
//! A [`Server`] knows its own SQL: how to connect, and how to write one
//! commit (deletes by key, upserts, the sink's progress row) as one
//! transaction. [`ServerSink`] does the rest, the same for both: it groups a
//! commit's changes by table ([`crate::sql::group`]), retries transient
//! failures with backoff ([`crate::sql::retrying`]), reconnecting when an
//! attempt lost its connection (the rolled-back transaction is applied again;
//! upserts and deletes by key make even a retry after a lost COMMIT answer
//! harmless), remembers the committed upper, and keeps the commit statistics.

use std::time::{Duration, Instant};

use anyhow::Context;

use dataflows::{Diff, OutputRow, Time};

use crate::secrets::mask;
use crate::sink::SinkWriter;
use crate::sql::{CommitStats, Failure, RetryPolicy, TableChanges, group, retrying};

/// What a database server's sink does its own way.
pub trait Server {
    /// A connection, with whatever the server prepared on it.
    type Conn;
    /// How log lines name the database (`mysql`, `postgres`).
    const LABEL: &'static str;
    /// How error messages name it (`MySQL`, `PostgreSQL`).
    const NAME: &'static str;

    /// Opens a new connection (after the last one was lost).
    fn connect(&mut self) -> Result<Self::Conn, Failure>;

    /// Writes `tables` and the progress row of `sink` (`upper`, `complete`) in one transaction.
    fn transaction(
        &mut self,
        conn: &mut Self::Conn,
        sink: &str,
        upper: Time,
        complete: bool,
        tables: &[TableChanges],
    ) -> Result<(), Failure>;
}

/// A database server receiving some of the output tables.
pub struct ServerSink<S: Server> {
    server: S,
    url: String,
    sink: String,
    conn: Option<S::Conn>,
    committed: Time,
    retry: RetryPolicy,
    stats: CommitStats,
}

impl<S: Server> ServerSink<S> {
    /// A sink named `sink` at `url` over an open `conn`, which holds everything below `committed`.
    pub(crate) fn new(server: S, url: &str, sink: &str, conn: S::Conn, committed: Time) -> Self {
        ServerSink {
            server,
            url: url.to_string(),
            sink: sink.to_string(),
            conn: Some(conn),
            committed,
            retry: RetryPolicy::default(),
            stats: CommitStats::from_env(),
        }
    }

    /// Retries connection losses for at most `budget` in total per commit (default 5 minutes).
    pub fn with_retry_budget(mut self, budget: Duration) -> Self {
        self.retry.budget = budget;
        self
    }

    /// One attempt at the whole transaction, reconnecting first when the last attempt lost the connection.
    fn attempt(&mut self, upper: Time, complete: bool, tables: &[TableChanges]) -> Result<(), Failure> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.server.connect()?,
        };
        let result = self.server.transaction(&mut conn, &self.sink, upper, complete, tables);
        if result.as_ref().is_err_and(|f| f.transient) {
            return result; // drop the connection: the next attempt reconnects
        }
        self.conn = Some(conn);
        result
    }
}

impl<S: Server> SinkWriter for ServerSink<S> {
    fn committed_upper(&self) -> Time {
        self.committed
    }

    fn commit(&mut self, upper: Time, complete: bool, changes: &[(OutputRow, Diff)]) -> anyhow::Result<()> {
        let started = Instant::now();
        let tables = group(changes);
        let retry = self.retry;
        retrying(S::LABEL, &retry, || self.attempt(upper, complete, &tables))
            .with_context(|| format!("{} sink {} at {}", S::NAME, self.sink, mask(&self.url)))?;
        self.committed = upper;
        self.stats.record(changes.len(), started.elapsed());
        if complete {
            self.stats.report(S::LABEL);
        }
        Ok(())
    }
}
