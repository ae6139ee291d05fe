//! File replay (SPEC §1, §6): `<dir>/<topic>/<partition>.jsonl`, one message
//! value per line, line number = offset.
//!
//! Partitions are listed in a fixed order and spread round-robin over the
//! cluster's workers ([`assigned`]); [`FileLogs`] reads each worker's share
//! line by line for the generic source pipeline ([`crate::source`]), which
//! gives them the times of the input [`Clock`] (`offset / epoch_records` on a
//! fresh input): times depend only on input positions, never on workers,
//! batching or timing. Files never go idle; the end of a file is the end of
//! its partition (watermark +infinity, SPEC §3), so at the end of the input
//! all windows close.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::{Context, bail};
use timely::dataflow::{Scope, StreamVec};

use dataflows::ingest::{Delays, Input};
use dataflows::{Time, Topic};

use crate::clock::Clock;
use crate::fatal::Fatal;
use crate::source::{Epochs, Logs, Message, Pace, SourceSettings, Status, partitioned_source};

/// One partition file of the layout.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartitionFile {
    /// Its topic.
    pub topic: Topic,
    /// Its partition number.
    pub partition: u32,
    /// Its path.
    pub path: PathBuf,
}

/// Lists the partition files under `dir`, in topic then partition order.
///
/// Topic directories that are missing are skipped; files not ending in `.jsonl` and
/// unknown directories are ignored. A `.jsonl` file whose name is no canonical partition
/// number (`01.jsonl` or `+1.jsonl` beside `1.jsonl`) is an error: read as partition 1 it
/// would overwrite that partition's rows.
pub fn discover(dir: &Path) -> anyhow::Result<Vec<PartitionFile>> {
    if !dir.is_dir() {
        bail!("input directory {} does not exist", dir.display());
    }
    let mut files = Vec::new();
    for topic in Topic::ALL {
        let topic_dir = dir.join(topic.default_name());
        if !topic_dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&topic_dir).with_context(|| format!("cannot list {}", topic_dir.display()))? {
            let path = entry?.path();
            let Some(stem) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".jsonl")) else {
                continue;
            };
            let Some(partition) = partition_number(stem) else {
                bail!(
                    "unclear partition file name {}: name partition files 0.jsonl, 1.jsonl, ... (no sign, no leading zero)",
                    path.display()
                );
            };
            files.push(PartitionFile { topic, partition, path });
        }
    }
    files.sort();
    Ok(files)
}

/// The partition number a file stem names: canonical decimal digits only.
///
/// ```
/// use connectors::files::partition_number;
/// assert_eq!(partition_number("0"), Some(0));
/// assert_eq!(partition_number("12"), Some(12));
/// assert_eq!(partition_number("01"), None);
/// assert_eq!(partition_number("+1"), None);
/// assert_eq!(partition_number(""), None);
/// ```
pub fn partition_number(stem: &str) -> Option<u32> {
    let canonical = stem.bytes().all(|b| b.is_ascii_digit()) && (stem == "0" || !stem.starts_with('0'));
    canonical.then(|| stem.parse().ok()).flatten()
}

/// The number of messages (lines) of a partition file, as the source counts them. Reads
/// the file in 256 KiB blocks: memory does not grow with the file.
pub fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut block = vec![0u8; 256 << 10];
    let (mut newlines, mut last) = (0u64, b'\n');
    loop {
        let n = match file.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        newlines += block[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = block[n - 1];
    }
    Ok(newlines + u64::from(last != b'\n'))
}

/// The share of `partitions` (in their sorted order) that worker `index` of `peers` reads.
pub fn assigned<P: Clone>(partitions: &[P], index: usize, peers: usize) -> Vec<P> {
    partitions.iter().enumerate().filter(|(i, _)| i % peers == index).map(|(_, p)| p.clone()).collect()
}

/// The partition files of one worker, read line by line.
pub struct FileLogs {
    files: Vec<PartitionFile>,
    readers: Vec<LineReader>,
}

/// One partition file being read.
struct LineReader {
    lines: BufReader<File>,
    next: u64,
    line: Vec<u8>,
    /// `line` holds message `next`, read but refused.
    held: bool,
}

impl FileLogs {
    /// Opens `files` (this worker's share), each at the line `start(topic, partition)`.
    pub fn open(files: Vec<PartitionFile>, start: impl Fn(Topic, u32) -> u64) -> anyhow::Result<Self> {
        let readers =
            files.iter().map(|f| LineReader::open(f, start(f.topic, f.partition))).collect::<anyhow::Result<_>>()?;
        Ok(FileLogs { files, readers })
    }
}

impl LineReader {
    /// The file at line `start`: the lines before it are skipped unread (scanned for their
    /// ends, not parsed or counted as read).
    fn open(file: &PartitionFile, start: u64) -> anyhow::Result<Self> {
        let f = File::open(&file.path).with_context(|| format!("cannot open {}", file.path.display()))?;
        let mut lines = BufReader::with_capacity(1 << 16, f);
        let mut skipped = 0;
        while skipped < start {
            let buf = lines.fill_buf().with_context(|| format!("cannot read {}", file.path.display()))?;
            if buf.is_empty() {
                bail!(
                    "{} has {skipped} lines, but the checkpoint read it up to line {start}: the input is not the one checkpointed",
                    file.path.display()
                );
            }
            let (used, found) = match memchr_n(buf, start - skipped) {
                Some(end) => (end + 1, start - skipped),
                None => (buf.len(), buf.iter().filter(|&&b| b == b'\n').count() as u64),
            };
            skipped += found;
            lines.consume(used);
        }
        Ok(LineReader { lines, next: start, line: Vec::new(), held: false })
    }

    /// Makes `line` hold message `next`; false at the end of the file.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.held {
            return Ok(true);
        }
        self.line.clear();
        if self.lines.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(false);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        self.held = true;
        Ok(true)
    }
}

/// The index of the `n`-th newline of `buf` (`n >= 1`), if it has that many.
fn memchr_n(buf: &[u8], n: u64) -> Option<usize> {
    buf.iter().enumerate().filter(|&(_, &b)| b == b'\n').nth(n.checked_sub(1)? as usize).map(|(i, _)| i)
}

impl Logs for FileLogs {
    fn partitions(&self) -> Vec<(Topic, u32)> {
        self.files.iter().map(|f| (f.topic, f.partition)).collect()
    }

    fn read<F: FnMut(Message<'_>) -> bool>(
        &mut self,
        i: usize,
        budget: usize,
        mut deliver: F,
    ) -> anyhow::Result<Status> {
        let reader = &mut self.readers[i];
        for _ in 0..budget {
            let filled = reader.fill().with_context(|| {
                let file = &self.files[i];
                format!("cannot read partition {} of {}", file.partition, file.topic.default_name())
            })?;
            if !filled {
                return Ok(Status::Ended);
            }
            if !deliver(Message { offset: reader.next, key: None, value: &reader.line, log_time: None }) {
                return Ok(Status::More);
            }
            reader.held = false;
            reader.next += 1;
        }
        Ok(Status::More)
    }
}

/// Reads `files` (this worker's share) as a stream of [`Input`]s at the times of `clock`.
///
/// `records_read` counts the messages read; `pace` may hold reading back (see
/// [`crate::source::InFlight`]). An I/O error while reading goes to `fatal`.
pub fn file_source<'s>(
    scope: Scope<'s, Time>,
    files: Vec<PartitionFile>,
    delays: Delays,
    clock: Arc<Clock>,
    records_read: Arc<AtomicU64>,
    fatal: Fatal,
    pace: impl Pace,
) -> anyhow::Result<StreamVec<'s, Time, Input>> {
    let restored = crate::source::restored_parts();
    let start =
        |topic, partition| restored.as_ref().and_then(|(_, s)| s.get(&(topic, partition))).map_or(0, |s| s.next);
    let logs = FileLogs::open(files, start)?;
    let mut settings = SourceSettings::bounded("FileSource", delays, Epochs::Offsets(clock), fatal);
    settings.records_read = records_read;
    Ok(partitioned_source(scope, logs, settings, pace))
}
