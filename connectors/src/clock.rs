//! The input clock: which logical time each input position gets.
//!
//! Semantics: a record at `offset` of partition `p` gets time
//! `base + (offset − start) / epoch_records`, where `(start, base)` is the last
//! segment of `p` with `start <= offset`. A fresh input has one segment per
//! partition, `(0, 0)`: time is `offset / epoch_records`, a function of the
//! position alone, so a replay produces the same updates at the same times for
//! any number of workers, and a sink that knows the times it committed can skip
//! exactly those.
//!
//! A bounded run (file replay, Kafka `--until-end`) ends inside an epoch. If
//! the log grows afterwards, the records after the end must not join that
//! epoch, whose effects are already committed: so when a bounded run commits
//! its end, it also records a new segment for every partition, starting at
//! the partition's end offset and at the time just after everything it
//! committed (`resume_base`; partitions that appear later start there too).
//! The segments are kept in the SQLite state file with the sink's progress, in
//! the same transaction, so every later run (and every replay of it after a
//! crash) assigns the same times.

use std::collections::BTreeMap;

use anyhow::Context;
use rusqlite::Connection;

use dataflows::{Time, Topic};

/// Position-to-time mapping of every input partition.
#[derive(Clone, Debug)]
pub struct Clock {
    epoch_records: u64,
    /// Per (topic, partition): segments `(start_offset, base_time)`, sorted by start.
    segments: BTreeMap<(Topic, u32), Vec<(u64, Time)>>,
    /// Base time of partitions with no segment of their own.
    default_base: Time,
}

/// A bounded run's end: the segments the next run starts with.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// `(topic, partition, start_offset, base)` to record: a new segment at every partition's
    /// end, and the implicit first segment of partitions that had none yet.
    pub segments: Vec<(Topic, u32, u64, Time)>,
    /// The first time after everything this run commits.
    pub base: Time,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS edu_rtdw_clock (topic TEXT, partition INTEGER, start_offset INTEGER, base INTEGER, PRIMARY KEY (topic, partition, start_offset));
CREATE TABLE IF NOT EXISTS edu_rtdw_clock_default (id INTEGER PRIMARY KEY CHECK (id = 0), base INTEGER NOT NULL);";

impl Clock {
    /// A fresh clock: time is `offset / epoch_records`.
    pub fn new(epoch_records: u64) -> Self {
        Clock { epoch_records: epoch_records.max(1), segments: BTreeMap::new(), default_base: 0 }
    }

    /// The clock recorded in the state file `conn` (a fresh one if none).
    pub fn load(conn: &Connection, epoch_records: u64) -> anyhow::Result<Self> {
        conn.execute_batch(SCHEMA).context("cannot create the clock tables")?;
        let mut clock = Clock::new(epoch_records);
        let mut stmt = conn.prepare("SELECT topic, partition, start_offset, base FROM edu_rtdw_clock ORDER BY topic, partition, start_offset")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)))?;
        for row in rows {
            let (topic, p, start, base) = row?;
            if let Some(topic) = Topic::from_name(&topic) {
                clock.segments.entry((topic, p as u32)).or_default().push((start as u64, base as Time));
            }
        }
        let default: Option<i64> = conn.query_row("SELECT base FROM edu_rtdw_clock_default WHERE id = 0", [], |r| r.get(0)).ok();
        clock.default_base = default.unwrap_or(0) as Time;
        Ok(clock)
    }

    /// The clock recorded in the SQLite state file at `path` (fresh if the file does not exist yet).
    pub fn load_path(path: &std::path::Path, epoch_records: u64) -> anyhow::Result<Self> {
        if !path.exists() {
            return Ok(Clock::new(epoch_records));
        }
        let conn = Connection::open(path).with_context(|| format!("cannot open SQLite state {}", path.display()))?;
        // In a local cluster, process 0 may be writing the same file right now.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Clock::load(&conn, epoch_records)
    }

    /// The logical time of the record at `offset` of `partition`.
    pub fn time(&self, topic: Topic, partition: u32, offset: u64) -> Time {
        let (start, base) = self
            .segments
            .get(&(topic, partition))
            .and_then(|s| s.iter().rev().find(|(start, _)| *start <= offset).copied())
            .unwrap_or((0, self.default_base));
        base + (offset - start) / self.epoch_records
    }

    /// The first offset of `partition` whose time is at least `time` (every offset below it is earlier).
    pub fn first_offset_at(&self, topic: Topic, partition: u32, time: Time) -> u64 {
        let default = [(0, self.default_base)];
        let segments = self.segments.get(&(topic, partition)).map_or(&default[..], Vec::as_slice);
        // The last segment starting at or before `time`; offsets before its start are earlier.
        match segments.iter().rev().find(|(_, base)| *base <= time) {
            Some((start, base)) => {
                let candidate = start + (time - base) * self.epoch_records;
                // Do not run past the next segment's start (its records are at least its base >= time).
                let next_start = segments.iter().find(|(s, _)| s > start).map(|(s, _)| *s);
                next_start.map_or(candidate, |n| candidate.min(n))
            }
            None => 0,
        }
    }

    /// Where the next run starts if this bounded run ends at `ends`.
    pub fn resume_after(&self, ends: Vec<(Topic, u32, u64)>) -> Resume {
        let last = ends.iter().filter(|(_, _, end)| *end > 0).map(|(t, p, end)| self.time(*t, *p, end - 1) + 1).max();
        let base = last.unwrap_or(self.default_base).max(self.default_base);
        let mut segments = Vec::new();
        for (topic, partition, end) in ends {
            // An empty partition starts directly at `base`; others keep their first segment.
            if end > 0 && !self.segments.contains_key(&(topic, partition)) {
                segments.push((topic, partition, 0, self.default_base));
            }
            segments.push((topic, partition, end, base));
        }
        Resume { segments, base }
    }

    /// Records `resume` in the state file (inside the caller's transaction).
    pub fn record(conn: &Connection, resume: &Resume) -> anyhow::Result<()> {
        conn.execute_batch(SCHEMA)?;
        for (topic, partition, start, base) in &resume.segments {
            conn.execute(
                "INSERT INTO edu_rtdw_clock (topic, partition, start_offset, base) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (topic, partition, start_offset) DO NOTHING",
                rusqlite::params![topic.default_name(), *partition as i64, *start as i64, *base as i64],
            )?;
        }
        conn.execute(
            "INSERT INTO edu_rtdw_clock_default (id, base) VALUES (0, ?1) ON CONFLICT (id) DO UPDATE SET base = excluded.base",
            [resume.base as i64],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_start_after_a_bounded_end() {
        let conn = Connection::open_in_memory().unwrap();
        let clock = Clock::load(&conn, 10).unwrap();
        assert_eq!(clock.time(Topic::Qos, 0, 25), 2);
        // The run ended at offsets 25 (qos/0) and 7 (user/1): last times 2 and 0, so the next base is 3.
        let resume = clock.resume_after(vec![(Topic::Qos, 0, 25), (Topic::User, 1, 7)]);
        assert_eq!(resume.base, 3);
        Clock::record(&conn, &resume).unwrap();
        let clock = Clock::load(&conn, 10).unwrap();
        assert_eq!(clock.time(Topic::Qos, 0, 24), 2, "committed positions keep their times");
        assert_eq!(clock.time(Topic::Qos, 0, 25), 3);
        assert_eq!(clock.time(Topic::Qos, 0, 35), 4);
        assert_eq!(clock.time(Topic::User, 1, 7), 3);
        assert_eq!(clock.time(Topic::Agora, 5, 0), 3, "new partitions start after the end too");
        assert_eq!(clock.first_offset_at(Topic::Qos, 0, 3), 25);
        assert_eq!(clock.first_offset_at(Topic::Qos, 0, 2), 20);
        assert_eq!(clock.first_offset_at(Topic::Qos, 0, 4), 35);
        let resume = clock.resume_after(vec![(Topic::Order, 0, 0)]);
        Clock::record(&conn, &resume).unwrap();
        let clock = Clock::load(&conn, 10).unwrap();
        assert_eq!(clock.time(Topic::Order, 0, 0), 3, "an empty partition's first record comes after the end");
        // Ending again at the same place changes nothing.
        let again = clock.resume_after(vec![(Topic::Qos, 0, 25), (Topic::User, 1, 7)]);
        assert_eq!(again.base, 3);
    }
}
