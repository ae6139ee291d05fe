//! File replay (SPEC §1, §6): `<dir>/<topic>/<partition>.jsonl`, one message
//! value per line, line number = offset.
//!
//! Partitions are listed in a fixed order and spread round-robin over the
//! cluster's workers; each worker reads its partitions in offset order.
//! Logical time is `offset / epoch_records`: every partition's records of one
//! epoch share a time, so times depend only on input positions (never on
//! workers, batching or timing) and a replay produces the same updates at the
//! same times. The source reads one epoch of all its partitions per
//! activation, then downgrades its capability and schedules itself again: it
//! never polls an idle input. An exhausted partition announces watermark
//! +infinity (SPEC §3), so at the end of the input all windows close.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

use dataflows::ingest::{Delays, Input, PartitionIngest};
use dataflows::{Time, Topic};

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
/// Topic directories that are missing are skipped; files not named
/// `<number>.jsonl` and unknown directories are ignored.
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
            let partition = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(partition) = partition {
                files.push(PartitionFile { topic, partition, path });
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The share of `partitions` (in their sorted order) that worker `index` of `peers` reads.
pub fn assigned<P: Clone>(partitions: &[P], index: usize, peers: usize) -> Vec<P> {
    partitions.iter().enumerate().filter(|(i, _)| i % peers == index).map(|(_, p)| p.clone()).collect()
}

/// A partition being read.
struct Reader {
    ingest: PartitionIngest,
    lines: BufReader<File>,
    next_offset: u64,
    done: bool,
    line: Vec<u8>,
}

impl Reader {
    fn open(file: &PartitionFile, delays: &Delays) -> anyhow::Result<Self> {
        let f = File::open(&file.path).with_context(|| format!("cannot open {}", file.path.display()))?;
        Ok(Reader {
            ingest: PartitionIngest::new(file.topic, file.partition, delays),
            lines: BufReader::with_capacity(1 << 16, f),
            next_offset: 0,
            done: false,
            line: Vec::new(),
        })
    }

    /// Reads and ingests lines up to (excluding) offset `end`.
    fn read_until(&mut self, end: u64, out: &mut Vec<Input>) -> std::io::Result<u64> {
        let mut read = 0;
        while !self.done && self.next_offset < end {
            self.line.clear();
            if self.lines.read_until(b'\n', &mut self.line)? == 0 {
                self.done = true;
                out.extend(self.ingest.exhausted());
                break;
            }
            if self.line.last() == Some(&b'\n') {
                self.line.pop();
            }
            self.ingest.ingest(self.next_offset, &self.line, out);
            self.next_offset += 1;
            read += 1;
        }
        if !self.done {
            out.extend(self.ingest.watermark_update());
        }
        Ok(read)
    }
}

/// Reads `files` (this worker's share) as a stream of [`Input`]s at epoch times.
///
/// `records_read` counts the messages read. An I/O error while reading is
/// reported in one line and ends the process with a non-zero exit.
pub fn file_source<'s>(
    scope: Scope<'s, Time>,
    files: Vec<PartitionFile>,
    delays: Delays,
    epoch_records: u64,
    records_read: Arc<AtomicU64>,
) -> anyhow::Result<StreamVec<'s, Time, Input>> {
    let mut readers = files.iter().map(|f| Reader::open(f, &delays)).collect::<anyhow::Result<Vec<_>>>()?;
    let epoch_records = epoch_records.max(1);
    Ok(source::<_, CapacityContainerBuilder<Vec<Input>>, _, _>(scope, "FileSource", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut out = Vec::new();
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let epoch = *c.time();
            let end = (epoch + 1).saturating_mul(epoch_records);
            for reader in readers.iter_mut() {
                match reader.read_until(end, &mut out) {
                    Ok(n) => {
                        records_read.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("edu-rtdw: cannot read partition {} of {}: {e}", reader.ingest.partition(), reader.ingest.topic().default_name());
                        std::process::exit(1);
                    }
                }
                if !out.is_empty() {
                    output.session(&*c).give_iterator(out.drain(..));
                }
            }
            if readers.iter().all(|r| r.done) {
                cap = None;
            } else {
                c.downgrade(&(epoch + 1));
                activator.activate();
            }
        }
    }))
}
