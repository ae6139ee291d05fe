//! File replay (SPEC §1, §6): `<dir>/<topic>/<partition>.jsonl`, one message
//! value per line, line number = offset.
//!
//! Partitions are listed in a fixed order and spread round-robin over the
//! cluster's workers; each worker reads its partitions in offset order.
//! Logical time comes from the input [`Clock`] (`offset / epoch_records` on a
//! fresh input): every partition's records of one epoch share a time, so times
//! depend only on input positions (never on workers, batching or timing) and a
//! replay produces the same updates at the same times. The source reads one epoch of all its partitions per
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

use crate::clock::Clock;

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

/// The number of messages (lines) of a partition file, as the source counts them.
pub fn count_lines(path: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let newlines = bytes.iter().filter(|b| **b == b'\n').count() as u64;
    Ok(newlines + u64::from(bytes.last().is_some_and(|b| *b != b'\n')))
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

    /// Reads and ingests the lines whose time is at most `epoch`.
    fn read_epoch(&mut self, clock: &Clock, epoch: Time, out: &mut Vec<Input>) -> std::io::Result<u64> {
        let mut read = 0;
        let (topic, partition) = (self.ingest.topic(), self.ingest.partition());
        while !self.done && clock.time(topic, partition, self.next_offset) <= epoch {
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
    clock: Arc<Clock>,
    records_read: Arc<AtomicU64>,
) -> anyhow::Result<StreamVec<'s, Time, Input>> {
    let mut readers = files.iter().map(|f| Reader::open(f, &delays)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(source::<_, CapacityContainerBuilder<Vec<Input>>, _, _>(scope, "FileSource", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut out = Vec::new();
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let epoch = *c.time();
            for reader in readers.iter_mut() {
                match reader.read_epoch(&clock, epoch, &mut out) {
                    Ok(n) => {
                        records_read.fetch_add(n, Ordering::Relaxed);
                        crate::metrics::observe_partition(reader.ingest.topic(), reader.ingest.partition(), n, &out);
                    }
                    Err(e) => {
                        // Fatal: one plain line like every error that ends the process (RUST_LOG cannot hide it).
                        eprintln!(
                            "edu-rtdw: cannot read partition {} of {}: {e}",
                            reader.ingest.partition(),
                            reader.ingest.topic().default_name()
                        );
                        std::process::exit(1);
                    }
                }
                if !out.is_empty() {
                    output.session(&*c).give_iterator(out.drain(..));
                }
            }
            // The next time any partition has a record at.
            let next = readers
                .iter()
                .filter(|r| !r.done)
                .map(|r| clock.time(r.ingest.topic(), r.ingest.partition(), r.next_offset))
                .min();
            match next {
                None => cap = None,
                Some(next) => {
                    c.downgrade(&next.max(epoch + 1));
                    activator.activate();
                }
            }
        }
    }))
}
