//! The benchmark's input: the seeded sample in memory, read as source logs.
//!
//! [`MemoryLogs`] is the in-memory reader of the generic source pipeline
//! (`connectors::source`): the bench's source is the file and Kafka sources'
//! own pipeline over message buffers that are already in memory, so the
//! benchmark measures exactly what production runs minus the I/O.

use std::sync::Arc;

use connectors::source::{Logs, Message, Status};
use dataflows::Topic;

/// One partition's messages, in offset order.
pub(super) struct Part {
    pub(super) topic: Topic,
    pub(super) partition: u32,
    pub(super) values: Arc<Messages>,
}

/// A partition's message values back to back in one buffer, as a source holds them
/// (a file's read buffer, a Kafka fetch), not one allocation per message: reading
/// them walks memory in order, as the file and Kafka sources do.
#[derive(Default)]
pub(super) struct Messages {
    pub(super) bytes: Vec<u8>,
    /// Where each message ends in `bytes`.
    ends: Vec<usize>,
}

impl Messages {
    pub(super) fn push(&mut self, value: &[u8]) {
        self.bytes.extend_from_slice(value);
        self.ends.push(self.bytes.len());
    }

    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Message `i` (`i < len`).
    pub(super) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// Where a source gets its messages from.
#[derive(Clone)]
pub(super) enum Feed {
    /// Pre-generated messages (shared by every run).
    Memory(Arc<Vec<Part>>, Vec<Topic>),
    /// `n` distinct synthetic orders, formatted on the fly (dedup memory).
    Orders(u64, u32),
}

/// The `i`-th of the synthetic orders (distinct ids) of the dedup-memory run.
fn synthetic_order(i: u64) -> Vec<u8> {
    let status = if i.is_multiple_of(4) { 4 } else { 3 };
    format!(
        r#"{{"apply_refund_date":null,"cc_id":{},"confirm_date_time":"2025-11-{:02} {:02}:{:02}:{:02}","create_time":"2025-12-02 08:00:00","id":"{}","leads_id":{},"order_create_time":"2025-11-27 01:48:48","order_id":"SO{:08}","status":{status},"student_id":"{}","update_time":"2025-12-02 08:00:00"}}"#,
        4000 + i % 40,
        1 + i % 28,
        i % 24,
        i % 60,
        (i / 60) % 60,
        3_000_000 + i,
        5_000_000 + i,
        10_000 + i,
        100_000 + i % 50_000,
    )
    .into_bytes()
}

/// One worker's share of a [`Feed`] (partitions round-robin over the workers).
pub(super) struct MemoryLogs {
    parts: Vec<MemoryPart>,
}

struct MemoryPart {
    topic: Topic,
    partition: u32,
    /// Its messages; `None`: synthetic orders formatted on the fly.
    values: Option<Arc<Messages>>,
    len: u64,
    next: u64,
    /// Synthetic order `next * stride + partition` is this partition's message `next`.
    stride: u64,
    scratch: Vec<u8>,
}

impl MemoryLogs {
    /// Worker `index` of `peers`'s share of `feed`.
    pub(super) fn new(feed: &Feed, index: usize, peers: usize) -> Self {
        let parts = match feed {
            Feed::Memory(all, topics) => all
                .iter()
                .filter(|p| topics.contains(&p.topic))
                .enumerate()
                .filter(|(i, _)| i % peers == index)
                .map(|(_, p)| MemoryPart {
                    topic: p.topic,
                    partition: p.partition,
                    values: Some(Arc::clone(&p.values)),
                    len: p.values.len() as u64,
                    next: 0,
                    stride: 1,
                    scratch: Vec::new(),
                })
                .collect(),
            Feed::Orders(n, partitions) => (0..*partitions)
                .filter(|p| *p as usize % peers == index)
                .map(|p| MemoryPart {
                    topic: Topic::Order,
                    partition: p,
                    values: None,
                    len: n / u64::from(*partitions) + u64::from(u64::from(p) < n % u64::from(*partitions)),
                    next: 0,
                    stride: u64::from(*partitions),
                    scratch: Vec::new(),
                })
                .collect(),
        };
        MemoryLogs { parts }
    }
}

impl Logs for MemoryLogs {
    fn partitions(&self) -> Vec<(Topic, u32)> {
        self.parts.iter().map(|p| (p.topic, p.partition)).collect()
    }

    fn read<F: FnMut(Message<'_>) -> bool>(
        &mut self,
        i: usize,
        budget: usize,
        mut deliver: F,
    ) -> anyhow::Result<Status> {
        let part = &mut self.parts[i];
        for _ in 0..budget {
            if part.next >= part.len {
                return Ok(Status::Ended);
            }
            let value = match &part.values {
                Some(values) => values.get(part.next as usize),
                None => {
                    part.scratch = synthetic_order(part.next * part.stride + u64::from(part.partition));
                    &part.scratch
                }
            };
            if !deliver(Message { offset: part.next, key: None, value, log_time: None }) {
                return Ok(Status::More);
            }
            part.next += 1;
        }
        Ok(Status::More)
    }
}
