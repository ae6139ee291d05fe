//! Snapshot dumps: every metric's contents at one logical frontier, as JSON lines.
//!
//! The rows come from a read of the sharded arrangements ([`crate::serving::peek`]), the
//! same state the sinks commit at `upper` (`edu_rtdw_progress.upper`). With
//! `--snapshot-dir` they are written periodically to `DIR/METRIC/UPPER.jsonl` (to a
//! temporary name, fsynced, then renamed; the last N kept), and once more at the end of a
//! bounded input, where `upper` is the last time plus one, as the sinks record it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

use anyhow::Context;
use serde_json::{Map, Value};

use dataflows::output::{Output, SqlValue};
use dataflows::{OutputRow, Time};

use crate::serving::Answer;
use crate::serving::peek::DumpJob;

/// Every output's name, for error messages.
pub fn metric_names() -> Vec<&'static str> {
    Output::ALL.iter().map(|o| o.name()).collect()
}

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
    /// How many dumps to keep per metric.
    pub keep: usize,
}

/// Starts the dump writer: it writes each [`DumpJob`] it is sent, one at a time, and after
/// each clears `busy` and calls `wake` (the source that asks for dumps waits for it). A
/// periodic dump that fails is logged (the next one is tried at the next interval); a table
/// of the final dump that fails is kept as the writer's error, which [`DumpWriter::finish`]
/// returns, so the run exits non-zero instead of ending without it (the writer goes on
/// clearing `busy`, so the job still ends).
pub fn start_writer(
    opts: DumpOptions,
    busy: Arc<AtomicBool>,
    wake: Box<dyn Fn() + Send>,
) -> anyhow::Result<(Sender<DumpJob>, DumpWriter)> {
    let (jobs, queue) = std::sync::mpsc::channel::<DumpJob>();
    let thread = std::thread::Builder::new().name("dumps".into()).spawn(move || {
        let mut failed: Option<anyhow::Error> = None;
        for (answer, last) in queue {
            let written = if last && failed.is_some() { Ok(answer.upper) } else { write_dump(&answer, &opts) };
            busy.store(false, Ordering::Release);
            wake();
            match written {
                Ok(upper) => tracing::debug!(dir = %opts.dir.display(), upper, "snapshot dumped"),
                Err(e) if last => {
                    failed = Some(e.context(format!("cannot write the final snapshot to {}", opts.dir.display())));
                }
                Err(e) => tracing::error!(dir = %opts.dir.display(), "cannot write snapshot: {e:#}"),
            }
        }
        failed.map_or(Ok(()), Err)
    })?;
    Ok((jobs, DumpWriter { thread }))
}

/// The dump writer's thread.
pub struct DumpWriter {
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl DumpWriter {
    /// Waits for every dump sent to be written (every sender must be gone); the final
    /// dump's error, if any.
    pub fn finish(self) -> anyhow::Result<()> {
        self.thread.join().map_err(|_| anyhow::anyhow!("the snapshot writer failed"))?
    }
}

/// Writes every table of `answer` to `DIR/METRIC/UPPER.jsonl` and prunes old dumps; returns UPPER.
fn write_dump(answer: &Answer, opts: &DumpOptions) -> anyhow::Result<Time> {
    for (output, rows) in &answer.tables {
        let dir = opts.dir.join(output.name());
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = dir.join(format!(".{}.jsonl.tmp", answer.upper));
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        for row in rows {
            write_row(&mut out, row)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, dir.join(format!("{}.jsonl", answer.upper)))?;
        prune(&dir, opts.keep)?;
    }
    Ok(answer.upper)
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
