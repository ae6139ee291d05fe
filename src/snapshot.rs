//! Snapshots: every metric's current contents at one logical time.
//!
//! [`maintain`] routes all output rows to worker 0 (like the sinks) and keeps
//! the consolidated contents of every table in memory. Whenever the input
//! frontier advances to `upper`, every update at a time below `upper` is
//! applied at once, so the contents are always exactly those of the
//! collection as of the complete logical times below `upper`, across all
//! workers and processes: the same state the sinks commit at `upper`
//! (`edu_rtdw_progress.upper`). The admin endpoint serves it, and with
//! `--snapshot-dir` it is written periodically as JSON lines to
//! `DIR/METRIC/UPPER.jsonl` (to a temporary name, then renamed; the last N kept).
//!
//! At the end of a bounded input, `upper` is the last time plus one, as the sinks record it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use connectors::fatal::Fatal;
use differential_dataflow::VecCollection;
use serde_json::{Map, Value};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use dataflows::output::{Output, SqlValue};
use dataflows::{Diff, OutputRow, Time};

/// Every output's name, for error messages.
pub fn metric_names() -> Vec<&'static str> {
    Output::ALL.iter().map(|o| o.name()).collect()
}

/// The consolidated contents of every table, as of the times below `upper`.
#[derive(Clone, Debug, Default)]
pub struct Contents {
    /// Every update at a time below this is applied.
    pub upper: Time,
    /// The input has ended: the contents are final.
    pub complete: bool,
    /// Per table: rows and their multiplicities (always 1 for a well-formed collection).
    tables: Vec<HashMap<OutputRow, Diff>>,
}

impl Contents {
    fn apply(&mut self, updates: Vec<(OutputRow, Time, Diff)>) {
        if self.tables.is_empty() {
            self.tables = Output::ALL.iter().map(|_| HashMap::new()).collect();
        }
        for (row, _, diff) in updates {
            let table = &mut self.tables[row.output().index()];
            match table.get_mut(&row) {
                Some(count) => {
                    *count += diff;
                    if *count == 0 {
                        table.remove(&row);
                    }
                }
                None => {
                    table.insert(row, diff);
                }
            }
        }
    }

    /// The rows of `output`, sorted.
    fn sorted(&self, output: Output) -> Vec<&OutputRow> {
        let Some(table) = self.tables.get(output.index()) else { return Vec::new() };
        let mut rows: Vec<&OutputRow> = table.keys().collect();
        rows.sort_unstable();
        rows
    }

    /// The rows of `output` as JSON objects (stamp columns are not part of a row), sorted.
    pub fn rows(&self, output: Output) -> Vec<Map<String, Value>> {
        self.sorted(output).into_iter().map(row_json).collect()
    }

    /// The number of rows of `output`.
    pub fn len(&self, output: Output) -> usize {
        self.tables.get(output.index()).map_or(0, HashMap::len)
    }
}

/// Shared between worker 0 (writer) and the admin endpoint (reader).
pub type Shared = Arc<Mutex<Contents>>;

fn value_json(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(i) => Value::from(i),
        SqlValue::Double(d) => Value::from(d),
        SqlValue::Text(s) => Value::String(s),
        SqlValue::Millis(ms) => Value::String(SqlValue::timestamp_text(ms)),
        SqlValue::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => Value::String(s),
            Err(e) => Value::from(e.into_bytes()),
        },
    }
}

/// A row as a JSON object keyed by column name, as the SQLite sink stores it.
pub fn row_json(row: &OutputRow) -> Map<String, Value> {
    let columns = row.output().table().columns;
    columns.iter().zip(row.values()).map(|((name, _), v)| (name.to_string(), value_json(v))).collect()
}

/// Writes `row` as one line of JSON, its columns in table order.
pub fn write_row(out: &mut impl Write, row: &OutputRow) -> anyhow::Result<()> {
    out.write_all(b"{")?;
    for (i, ((name, _), v)) in row.output().table().columns.iter().zip(row.values()).enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, name)?;
        out.write_all(b":")?;
        serde_json::to_writer(&mut *out, &value_json(v))?;
    }
    out.write_all(b"}\n")?;
    Ok(())
}

/// Where and how often the contents are dumped.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    /// The dump directory.
    pub dir: PathBuf,
    /// The interval between dumps (one more at the end of a bounded input).
    pub every: Duration,
    /// How many dumps to keep per metric.
    pub keep: usize,
}

/// Keeps `shared` (worker 0 only; `None` elsewhere) up to date with `rows`, dumping it per `dump`.
/// A periodic dump that fails is logged and tried again at the next interval; a final dump
/// that fails goes to `fatal`, so the run exits non-zero instead of ending without it.
pub fn maintain<'s>(
    rows: VecCollection<'s, dataflows::Time, OutputRow, Diff>,
    shared: Option<Shared>,
    dump: Option<DumpOptions>,
    fatal: Fatal,
) {
    let mut pending: Vec<(OutputRow, Time, Diff)> = Vec::new();
    let mut last_upper = Some(0);
    let mut max_time: Time = 0;
    let mut last_dump = Instant::now();
    let mut writer = Writer::default();
    rows.inner.sink(Exchange::new(|_| 0), "Snapshot", move |(input, frontier)| {
        input.for_each(|_cap, data| {
            for (row, time, diff) in data.drain(..) {
                max_time = max_time.max(time);
                pending.push((row, time, diff));
            }
        });
        let upper = frontier.frontier().first().copied();
        if upper == last_upper {
            return;
        }
        last_upper = upper;
        let Some(shared) = shared.as_ref() else { return };
        let (ready, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut pending).into_iter().partition(|(_, t, _)| upper.is_none_or(|u| *t < u));
        pending = later;
        let Ok(mut contents) = shared.lock() else { return };
        contents.apply(ready);
        contents.upper = upper.unwrap_or(max_time + 1);
        contents.complete = upper.is_none();
        let Some(d) = dump.as_ref() else { return };
        if contents.complete {
            // The final dump is written before the job ends.
            writer.finish();
            if let Err(e) = write_dump(&contents, d) {
                fatal.report(format!("cannot write the final snapshot to {}: {e:#}", d.dir.display()));
            }
        } else if last_dump.elapsed() >= d.every && writer.idle() {
            writer.spawn(contents.clone(), d.clone());
            last_dump = Instant::now();
        }
    });
}

/// Writes periodic dumps in the background, one at a time, so the dataflow does not wait for the disk.
#[derive(Default)]
struct Writer {
    running: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    /// No dump is being written.
    fn idle(&mut self) -> bool {
        if self.running.as_ref().is_some_and(|t| t.is_finished()) {
            self.finish();
        }
        self.running.is_none()
    }

    fn spawn(&mut self, contents: Contents, opts: DumpOptions) {
        self.running = Some(std::thread::spawn(move || report(write_dump(&contents, &opts), &opts)));
    }

    /// Waits for the dump being written, if any.
    fn finish(&mut self) {
        if let Some(t) = self.running.take() {
            let _ = t.join();
        }
    }
}

fn report(result: anyhow::Result<Time>, opts: &DumpOptions) {
    match result {
        Ok(upper) => tracing::debug!(dir = %opts.dir.display(), upper, "snapshot dumped"),
        Err(e) => tracing::error!(dir = %opts.dir.display(), "cannot write snapshot: {e:#}"),
    }
}

/// Writes every metric's contents to `DIR/METRIC/UPPER.jsonl` and prunes old dumps; returns UPPER.
fn write_dump(contents: &Contents, opts: &DumpOptions) -> anyhow::Result<Time> {
    for output in Output::ALL {
        let dir = opts.dir.join(output.name());
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = dir.join(format!(".{}.jsonl.tmp", contents.upper));
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        for row in contents.sorted(output) {
            write_row(&mut out, row)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, dir.join(format!("{}.jsonl", contents.upper)))?;
        prune(&dir, opts.keep)?;
    }
    Ok(contents.upper)
}

/// The dumps in `dir` by logical time, oldest first.
pub fn dumps(dir: &Path) -> anyhow::Result<Vec<(Time, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let time = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<Time>().ok());
        if let Some(time) = time {
            found.push((time, path));
        }
    }
    found.sort();
    Ok(found)
}

fn prune(dir: &Path, keep: usize) -> anyhow::Result<()> {
    let all = dumps(dir)?;
    let excess = all.len().saturating_sub(keep.max(1));
    for (_, path) in &all[..excess] {
        std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::daily_cc_confirmations::StaffIndexRow;

    fn staff(count: i64) -> OutputRow {
        OutputRow::Staff(StaffIndexRow { cc_id: 1, attribution_time: "2025-12-02".into(), cc_index: count })
    }

    #[test]
    fn retractions_remove_rows() {
        let mut c = Contents::default();
        c.apply(vec![(staff(5), 0, 1)]);
        c.apply(vec![(staff(5), 1, -1), (staff(6), 1, 1)]);
        let rows = c.rows(Output::DailyCcConfirmations);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["cc_index"], Value::from(6));
        assert_eq!(c.len(Output::DailyCcConfirmations), 1);
    }
}
