//! What the MySQL and PostgreSQL sinks share: retries with backoff, masked
//! URLs, commit statistics, and the text form of cell values used to compare
//! databases.
//!
//! Retries: a commit (or a connection attempt) that fails with a *transient*
//! error — the server is down, restarting, or dropped the connection — is
//! tried again after 1 s, 2 s, 4 s, … (at most 8 s apart) until the retry
//! budget (default 5 minutes) is spent; each retry logs one line to stderr.
//! Any other error (bad SQL, constraint violation, a value the column cannot
//! hold) is returned at once. The caller's transaction was rolled back, so a
//! retry re-applies the same changes; upserts and deletes by key are
//! idempotent, so even a retry after a COMMIT whose answer was lost leaves the
//! same state.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime};

use dataflows::{Diff, OutputRow};

use crate::tables::{ALL, SqlValue, encode};

/// Most rows bound to one statement (MySQL binds each value, so this bounds its
/// placeholders, under its 65,535 limit; PostgreSQL binds one array per column).
pub const BATCH_ROWS: usize = 512;

/// The changes of one commit to one table: keys to delete, then rows to upsert.
#[derive(Debug, Default)]
pub struct TableChanges {
    /// Key values (in key order) of rows that vanished or changed.
    pub deletes: Vec<Vec<SqlValue>>,
    /// Whole rows (data columns, in table order) that are new or changed.
    pub upserts: Vec<Vec<SqlValue>>,
}

/// Splits consolidated changes by table (indices of [`ALL`]): a negative diff
/// deletes the row's key, a positive one upserts the row.
pub fn group(changes: &[(OutputRow, Diff)]) -> Vec<TableChanges> {
    let mut tables: Vec<TableChanges> = ALL.iter().map(|_| TableChanges::default()).collect();
    for (row, diff) in changes {
        let (table, values) = encode(row);
        if *diff < 0 {
            let key = ALL[table].key.iter().map(|&k| values[k].clone()).collect();
            tables[table].deletes.push(key);
        } else {
            tables[table].upserts.push(values);
        }
    }
    tables
}

/// Statement sizes (rows) covering `n` rows: full batches of [`BATCH_ROWS`],
/// then the rest as descending powers of two, so that a sink prepares a small,
/// fixed set of statements however its commits are sized.
pub fn statement_sizes(n: usize) -> Vec<usize> {
    let mut sizes = vec![BATCH_ROWS; n / BATCH_ROWS];
    let rest = n % BATCH_ROWS;
    let mut bit = BATCH_ROWS.next_power_of_two();
    while bit > 0 {
        if rest & bit != 0 {
            sizes.push(bit);
        }
        bit >>= 1;
    }
    sizes
}

/// How long and how often a sink retries transient failures.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Total time retries may take before the error is returned.
    pub budget: Duration,
    /// The first delay; it doubles after every retry.
    pub first: Duration,
    /// The longest delay between two attempts.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { budget: Duration::from_secs(300), first: Duration::from_secs(1), max: Duration::from_secs(8) }
    }
}

/// A failed attempt: whether it is worth retrying, and why it failed.
#[derive(Debug)]
pub struct Failure {
    /// True for connection losses and server restarts.
    pub transient: bool,
    /// The error.
    pub error: anyhow::Error,
}

impl Failure {
    /// A failure that retrying cannot fix.
    pub fn fatal(error: impl Into<anyhow::Error>) -> Self {
        Failure { transient: false, error: error.into() }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `policy.budget` is spent.
/// `label` names the database in the log lines (`mysql`, `postgres`).
pub fn retrying<T>(
    label: &str,
    policy: &RetryPolicy,
    mut attempt: impl FnMut() -> Result<T, Failure>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let mut delay = policy.first;
    let mut retries = 0u32;
    loop {
        match attempt() {
            Ok(value) => {
                if retries > 0 {
                    tracing::info!(
                        db = label,
                        retries,
                        "{label} is back after {retries} retries ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(value);
            }
            Err(f) if f.transient && started.elapsed() + delay <= policy.budget => {
                tracing::warn!(
                    db = label,
                    retries,
                    "{label} unavailable ({}), retrying in {}",
                    one_line(&f.error),
                    human(delay)
                );
                std::thread::sleep(delay);
                delay = (delay * 2).min(policy.max);
                retries += 1;
            }
            Err(f) if f.transient => {
                return Err(f
                    .error
                    .context(format!("{label} unavailable for {:.0} s, giving up", started.elapsed().as_secs_f64())));
            }
            Err(f) => return Err(f.error),
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{:.1}s", d.as_secs_f64()) }
}

/// UTC milliseconds as a naive (UTC) date-time, as DATETIME / timestamp columns store them.
pub fn naive_utc(ms: i64) -> anyhow::Result<NaiveDateTime> {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.naive_utc())
        .ok_or_else(|| anyhow::anyhow!("timestamp {ms} ms is out of range"))
}

/// The text form of a timestamp cell, as SQLite stores it.
pub fn timestamp_cell(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// The text form of a bytes cell: the text when it is UTF-8 (as SQLite stores it), else `blob:[..]`.
pub fn bytes_cell(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => format!("blob:{b:?}"),
    }
}

/// Milliseconds since the epoch, now (the program's one wall clock, for the SQL writers' stamps).
pub use crate::wall_clock::now_millis;

/// Commit timings of one sink, printed when its input is complete if
/// `EDU_RTDW_SINK_STATS` is set (how the README's numbers were measured).
#[derive(Debug, Default)]
pub struct CommitStats {
    enabled: bool,
    micros: Vec<u64>,
    rows: u64,
}

impl CommitStats {
    /// Statistics that are kept only when `EDU_RTDW_SINK_STATS` is set.
    pub fn from_env() -> Self {
        CommitStats { enabled: std::env::var_os("EDU_RTDW_SINK_STATS").is_some(), ..Default::default() }
    }

    /// Records one commit of `rows` changed rows that took `took`.
    pub fn record(&mut self, rows: usize, took: Duration) {
        if self.enabled {
            self.micros.push(took.as_micros() as u64);
            self.rows += rows as u64;
        }
    }

    /// Prints one line about every commit so far (when enabled).
    pub fn report(&self, label: &str) {
        if !self.enabled || self.micros.is_empty() {
            return;
        }
        let mut sorted = self.micros.clone();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        let total: u64 = sorted.iter().sum();
        tracing::info!(
            sink = label,
            "sink {label}: {} commits, {} rows in {:.2} s of commits ({:.0} rows/s); commit latency median {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            sorted.len(),
            self.rows,
            total as f64 / 1e6,
            self.rows as f64 / (total as f64 / 1e6).max(1e-9),
            at(0.5),
            at(0.99),
            at(1.0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_sizes_cover_the_rows() {
        for n in [0, 1, 7, 511, 512, 513, 2000] {
            let sizes = statement_sizes(n);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|s| *s == BATCH_ROWS || (s.is_power_of_two() && *s < BATCH_ROWS)));
        }
    }

    #[test]
    fn transient_failures_are_retried_then_given_up() {
        let policy = RetryPolicy {
            budget: Duration::from_millis(50),
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
        };
        let mut n = 0;
        let ok = retrying("test", &policy, || {
            n += 1;
            if n < 3 { Err(Failure { transient: true, error: anyhow::anyhow!("down") }) } else { Ok(n) }
        });
        assert_eq!(ok.ok(), Some(3));
        let fatal: anyhow::Result<()> = retrying("test", &policy, || Err(Failure::fatal(anyhow::anyhow!("bad sql"))));
        assert_eq!(fatal.err().map(|e| e.to_string()), Some("bad sql".to_string()));
        let gave_up: anyhow::Result<()> =
            retrying("test", &policy, || Err(Failure { transient: true, error: anyhow::anyhow!("down") }));
        assert!(gave_up.is_err());
    }
}
