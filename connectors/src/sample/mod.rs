//! Seeded, deterministic sample data for `edu-rtdw gen`.
//!
//! Generates all seven source topics of SPEC §1 (classroom signalling, the
//! channel dictionary, recorded-course playback, live audio/video quality,
//! student accounts, user registrations and course-consultant orders) so that
//! a new user sees every metric of SPEC §2 produce rows without any servers.
//! The data is deliberately sloppy in every way §1 allows (nested objects as
//! JSON strings, scalars as strings or numbers, NULL as `""`/`null`/missing,
//! unknown fields), carries about 0.5 % garbage lines (dead letters, §4) and
//! about 0.2 % late events on the windowed inputs (§3), and contains later
//! updates of the same ids (LAST_VALUE semantics of 2.6 and 2.7).
//!
//! Everything is drawn from one `ChaCha8Rng` seeded with the options' seed, so
//! the same options always give byte-identical output. Records of one id are
//! keyed by that id and land in one partition (FNV-1a of the key).
//!
//! [`live`] makes the same workload endlessly in real time (event times from
//! the wall clock) for `edu-rtdw demo`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use generator::Generator;

mod generator;
pub mod live;
#[cfg(test)]
mod live_tests;
mod sloppy;
#[cfg(test)]
mod tests;

/// The seven source topics of SPEC §1, in their default names.
pub const TOPICS: [&str; 7] = [
    "timeline_client_topic",
    "blink_stg_activity__channel_name_dictionary_da",
    "qos_log",
    "agora_record",
    "uc_account-student",
    "uc_account-user",
    "data_pack_order_info",
];

pub(super) const TIMELINE: usize = 0;
pub(super) const CHANNEL: usize = 1;
pub(super) const QOS: usize = 2;
pub(super) const AGORA: usize = 3;
pub(super) const STUDENT: usize = 4;
pub(super) const USER: usize = 5;
pub(super) const ORDER: usize = 6;

/// First event time: 2025-12-02 08:00:00 UTC, in ms since the epoch.
pub(super) const START_MS: i64 = 1_764_662_400_000;
/// Global clock advance per generated record.
pub(super) const TICK_MS: i64 = 10;
pub(super) const DAY_MS: i64 = 86_400_000;
/// The live feed's mix of topics and its population: those of `gen --scale 10`.
pub(super) const LIVE_SCALE: u64 = 10;
/// The live feed creates this many distinct orders at most, then only updates them (the
/// generator keeps 16 bytes per order).
pub(super) const LIVE_MAX_ORDERS: u64 = 1_000_000;
/// The live feed creates this many distinct users and students at most, then only updates them.
pub(super) const LIVE_MAX_PEOPLE: u64 = 1_000_000;
/// Share of garbage lines (dead letters) over all topics.
pub(super) const GARBAGE_P: f64 = 0.005;
/// Share of late events on `timeline_client_topic` and `agora_record`.
pub(super) const LATE_P: f64 = 0.002;
/// Chance that a nested object is sent as a string holding JSON.
pub(super) const STRINGIFY_P: f64 = 0.3;
/// Chance of an unknown extra field on an object.
pub(super) const EXTRA_FIELD_P: f64 = 0.05;
/// Event-time jitter (±) of timeline signals: spread below the 5 s delay.
pub(super) const TIMELINE_JITTER_MS: i64 = 2_000;
/// Event-time jitter (±) of agora records: spread below the 60 s delay.
pub(super) const AGORA_JITTER_MS: i64 = 25_000;

pub(super) const PEOPLE_BASE: i64 = 100_000;
pub(super) const TEACHER_BASE: i64 = 900_000;
pub(super) const ROOM_BASE: i64 = 50_000;
pub(super) const RECORDED_ROOM_BASE: i64 = 80_000;
pub(super) const AGORA_CHANNEL_BASE: i64 = 700_000;
pub(super) const ORDER_BASE: i64 = 3_000_000;
pub(super) const CC_BASE: i64 = 4_000;
pub(super) const CC_COUNT: i64 = 40;
pub(super) const STUDENTS_PER_ROOM: i64 = 6;

pub(super) type Obj = Map<String, Value>;
pub(super) type Rand = ChaCha8Rng;

/// Options of `edu-rtdw gen`.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Total records ≈ scale × 10,000.
    pub scale: u64,
    /// Seed of the one random generator; same options → same bytes.
    pub seed: u64,
    /// Partitions per topic (0 is treated as 1).
    pub partitions: u32,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { scale: 10, seed: 42, partitions: 4 }
    }
}

/// One generated message: topic name, partition, key bytes (the id it is
/// keyed by) and the value line (no newline; may be invalid UTF-8 for
/// garbage lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub topic: &'static str,
    pub partition: u32,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Counts written by [`write_files`], per topic (in [`TOPICS`] order) and in total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenReport {
    pub per_topic: Vec<(&'static str, u64)>,
    pub total: u64,
}

/// Every message in production order (deterministic for given options).
/// Streams: memory does not grow with the scale beyond per-id order state.
pub fn messages(opts: &GenOptions) -> impl Iterator<Item = Message> + use<> {
    Generator::new(opts)
}

/// Writes `<out>/<topic>/<partition>.jsonl` for every topic and partition
/// (files may be empty), one message value per line.
pub fn write_files(out: &Path, opts: &GenOptions) -> anyhow::Result<GenReport> {
    let parts = opts.partitions.max(1);
    let mut writers = Vec::with_capacity(TOPICS.len());
    for topic in TOPICS {
        let dir = out.join(topic);
        fs::create_dir_all(&dir)?;
        let mut files = Vec::with_capacity(parts as usize);
        for p in 0..parts {
            files.push(BufWriter::new(File::create(dir.join(format!("{p}.jsonl")))?));
        }
        writers.push(files);
    }
    let mut counts = [0u64; 7];
    for msg in messages(opts) {
        let t = topic_index(msg.topic);
        let w = &mut writers[t][msg.partition as usize];
        w.write_all(&msg.value)?;
        w.write_all(b"\n")?;
        counts[t] += 1;
    }
    for files in &mut writers {
        for w in files {
            w.flush()?;
        }
    }
    Ok(GenReport { per_topic: TOPICS.iter().copied().zip(counts).collect(), total: counts.iter().sum() })
}

pub(super) fn topic_index(topic: &str) -> usize {
    TOPICS.iter().position(|t| *t == topic).unwrap_or(0)
}

/// Partition of a key: FNV-1a 64 of the key bytes modulo the partitions.
pub(super) fn partition_of(key: &[u8], partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

// ---------------------------------------------------------------------------
// Volumes
// ---------------------------------------------------------------------------

/// Record counts per topic, in [`TOPICS`] order.
pub(super) fn topic_counts(scale: u64) -> [u64; 7] {
    let (channels_new, channel_updates) = channel_volume(scale);
    [5_000 * scale, channels_new + channel_updates, 1_500 * scale, 2_000 * scale, 400 * scale, 400 * scale, 600 * scale]
}

/// Distinct channels (at most 300) and updates of existing channels.
pub(super) fn channel_volume(scale: u64) -> (u64, u64) {
    let new = (80 * scale).min(300);
    (new, new / 5)
}

/// 85 % of the account and order records are creations, the rest updates.
pub(super) fn new_share(total: u64) -> u64 {
    total * 85 / 100
}

/// Decides whether an upsert-style topic creates a new id now, so that the
/// creations are spread over the whole run and end exactly with it.
pub(super) fn next_is_new(rng: &mut Rand, remaining: u64, created: u64, total_new: u64) -> bool {
    let new_left = total_new.saturating_sub(created);
    created == 0 || (new_left > 0 && rng.random_range(0..remaining.max(1)) < new_left)
}
