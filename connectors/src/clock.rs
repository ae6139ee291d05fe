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
//!
//! **Live epochs** (Kafka without `--until-end`, `--epoch-ms N`): offsets
//! alone cannot drive a live job's time, because partitions fill at very
//! different rates and the frontier follows the slowest (a dictionary
//! partition with a few records holds every other partition's records back).
//! Instead the source closes an epoch every N ms (or when a partition has read
//! `epoch_records` in it), and records the cut *before* letting the frontier
//! pass it, as segments ([`Clock::record_cuts`]): `(first offset read in the
//! epoch, epoch)` and `(next offset, epoch + 1)` for every partition that had
//! records. A replay after a crash reads those segments and gives every
//! recorded position its original time; positions past a partition's last
//! segment (never committed: the frontier had not passed them) get new live
//! times. Each active partition adds about one row per epoch to the clock
//! table (pruning is left for later).
//!
//! Epochs also close, or move up to a checkpoint's barrier, with no record
//! read: a quiet input's frontier moves on and the sinks commit those times.
//! So with the cuts, the source records the *live floor*, its open epoch: no
//! position that has no recorded time yet may get a time below it (one row,
//! the largest any source recorded). A restart opens its first epoch at the
//! live floor, so records read after a quiet spell and a crash are never given
//! times the sinks have already committed (and would skip).

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
    /// Live epochs: the least time a position without a recorded time may get.
    live_floor: Time,
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
CREATE TABLE IF NOT EXISTS edu_rtdw_clock_default (id INTEGER PRIMARY KEY CHECK (id = 0), base INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS edu_rtdw_clock_live_floor (id INTEGER PRIMARY KEY CHECK (id = 0), base INTEGER NOT NULL);";

impl Clock {
    /// A fresh clock: time is `offset / epoch_records`.
    pub fn new(epoch_records: u64) -> Self {
        Clock { epoch_records: epoch_records.max(1), segments: BTreeMap::new(), default_base: 0, live_floor: 0 }
    }

    /// The clock recorded in the state file `conn` (a fresh one if none).
    pub fn load(conn: &Connection, epoch_records: u64) -> anyhow::Result<Self> {
        conn.execute_batch(SCHEMA).context("cannot create the clock tables")?;
        let mut clock = Clock::new(epoch_records);
        let mut stmt = conn.prepare(
            "SELECT topic, partition, start_offset, base FROM edu_rtdw_clock ORDER BY topic, partition, start_offset",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
        })?;
        for row in rows {
            let (topic, p, start, base) = row?;
            if let Some(topic) = Topic::from_name(&topic) {
                clock.segments.entry((topic, p as u32)).or_default().push((start as u64, base as Time));
            }
        }
        let default: Option<i64> =
            conn.query_row("SELECT base FROM edu_rtdw_clock_default WHERE id = 0", [], |r| r.get(0)).ok();
        clock.default_base = default.unwrap_or(0) as Time;
        let floor: Option<i64> =
            conn.query_row("SELECT base FROM edu_rtdw_clock_live_floor WHERE id = 0", [], |r| r.get(0)).ok();
        clock.live_floor = floor.unwrap_or(0) as Time;
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

    /// Records per partition per logical time.
    pub fn epoch_records(&self) -> u64 {
        self.epoch_records
    }

    /// The logical time of the record at `offset` of `partition`.
    pub fn time(&self, topic: Topic, partition: u32, offset: u64) -> Time {
        let segments = self.segments.get(&(topic, partition)).map_or(&[][..], Vec::as_slice);
        let i = segments.partition_point(|(start, _)| *start <= offset);
        let (start, base) = if i == 0 { (0, self.default_base) } else { segments[i - 1] };
        base + (offset - start) / self.epoch_records
    }

    /// The first offset of `partition` whose time is at least `time` (every offset below it is earlier).
    pub fn first_offset_at(&self, topic: Topic, partition: u32, time: Time) -> u64 {
        let default = [(0, self.default_base)];
        let segments = self.segments.get(&(topic, partition)).map_or(&default[..], Vec::as_slice);
        // Bases grow with starts. The last segment whose base is at or before `time`; offsets before its start are earlier.
        let i = segments.partition_point(|(_, base)| *base <= time);
        match i.checked_sub(1).map(|j| segments[j]) {
            Some((start, base)) => {
                let candidate = start + (time - base) * self.epoch_records;
                // Do not run past the next segment's start (its records are at least its base >= time).
                segments.get(i).map_or(candidate, |(next, _)| candidate.min(*next))
            }
            None => 0,
        }
    }

    /// Where positions of `partition` stop having a recorded time: the start of its last
    /// segment (0 without one). Live epochs give every position from there on a new time.
    pub fn open_start(&self, topic: Topic, partition: u32) -> u64 {
        self.segments.get(&(topic, partition)).and_then(|s| s.last()).map_or(0, |(start, _)| *start)
    }

    /// The largest time any recorded position can have, or that the next run starts at.
    pub fn max_base(&self) -> Time {
        self.segments.values().filter_map(|s| s.last()).map(|(_, base)| *base).max().unwrap_or(0).max(self.default_base)
    }

    /// The least time live epochs may give a position with no recorded time (see the module docs).
    pub fn live_floor(&self) -> Time {
        self.live_floor
    }

    /// Records live-epoch cuts `(topic, partition, start_offset, base)` and the live floor `floor`
    /// in one transaction; a cut at an already recorded start moves that segment to the later
    /// base (its positions were never committed at the earlier one: nothing was read there
    /// before this epoch). The recorded floor only grows.
    pub fn record_cuts(conn: &mut Connection, cuts: &[(Topic, u32, u64, Time)], floor: Time) -> anyhow::Result<()> {
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO edu_rtdw_clock_live_floor (id, base) VALUES (0, ?1)
             ON CONFLICT (id) DO UPDATE SET base = MAX(base, excluded.base)",
            [floor as i64],
        )?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO edu_rtdw_clock (topic, partition, start_offset, base) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (topic, partition, start_offset) DO UPDATE SET base = MAX(base, excluded.base)",
            )?;
            for (topic, partition, start, base) in cuts {
                stmt.execute(rusqlite::params![topic.default_name(), *partition as i64, *start as i64, *base as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Opens the state file at `path` for [`Clock::record_cuts`].
    pub fn open_cuts(path: &std::path::Path) -> anyhow::Result<Connection> {
        let conn = Connection::open(path).with_context(|| format!("cannot open SQLite state {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // WAL with synchronous=NORMAL: a commit survives the process being killed (not a power cut).
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        conn.execute_batch(SCHEMA).context("cannot create the clock tables")?;
        Ok(conn)
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

/// Live cuts of this process's sources, for acknowledging offsets: per partition,
/// `(base, offset)`: every position before `offset` has a time below `base`.
static LIVE_CUTS: std::sync::Mutex<BTreeMap<(Topic, u32), Cuts>> = std::sync::Mutex::new(BTreeMap::new());
/// One partition's live cuts, oldest first.
type Cuts = std::collections::VecDeque<(Time, u64)>;
/// Whether this process's Kafka sources run live epochs.
static LIVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A live source announces that it runs live epochs (before it reads anything).
pub fn set_live() {
    LIVE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this process's sources run live epochs.
pub fn is_live() -> bool {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// A live source has made durable that every position of `partition` before `offset` is below `base`.
pub fn note_live_cut(topic: Topic, partition: u32, base: Time, offset: u64) {
    let mut cuts = LIVE_CUTS.lock().unwrap_or_else(|e| e.into_inner());
    let q = cuts.entry((topic, partition)).or_default();
    if q.back().is_none_or(|(b, o)| base > *b && offset >= *o) {
        q.push_back((base, offset));
    }
}

/// The first position of `partition` that may be at `time` or later, by the live cuts
/// (conservative); `None` when this process has no cut at or below `time` for it.
pub fn live_first_offset_at(topic: Topic, partition: u32, time: Time) -> Option<u64> {
    let mut cuts = LIVE_CUTS.lock().unwrap_or_else(|e| e.into_inner());
    let q = cuts.get_mut(&(topic, partition))?;
    while q.len() > 1 && q[1].0 <= time {
        q.pop_front();
    }
    q.front().filter(|(base, _)| *base <= time).map(|(_, offset)| *offset)
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

    #[test]
    fn live_cuts_give_a_replay_the_recorded_times() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let clock = Clock::load(&conn, 100).unwrap();
        assert_eq!((clock.open_start(Topic::Qos, 0), clock.max_base()), (0, 0));
        // Epoch 0: qos/0 offsets 0..5. Epoch 1: nothing. Epoch 2: qos/0 offsets 5..7 and user/1 offsets 0..3.
        Clock::record_cuts(&mut conn, &[(Topic::Qos, 0, 0, 0), (Topic::Qos, 0, 5, 1)], 1).unwrap();
        Clock::record_cuts(
            &mut conn,
            &[(Topic::Qos, 0, 5, 2), (Topic::Qos, 0, 7, 3), (Topic::User, 1, 0, 2), (Topic::User, 1, 3, 3)],
            3,
        )
        .unwrap();
        let clock = Clock::load(&conn, 100).unwrap();
        assert_eq!([0, 4, 5, 6].map(|o| clock.time(Topic::Qos, 0, o)), [0, 0, 2, 2]);
        assert_eq!(clock.time(Topic::User, 1, 2), 2);
        // Positions past the last cut were never committed: they come after every recorded time.
        assert_eq!((clock.open_start(Topic::Qos, 0), clock.open_start(Topic::User, 1), clock.max_base()), (7, 3, 3));
        assert_eq!(clock.time(Topic::Qos, 0, 7), 3);
        assert_eq!([1, 2, 3].map(|t| clock.first_offset_at(Topic::Qos, 0, t)), [5, 5, 7]);
        // The live floor only grows.
        Clock::record_cuts(&mut conn, &[], 9).unwrap();
        Clock::record_cuts(&mut conn, &[], 4).unwrap();
        assert_eq!(Clock::load(&conn, 100).unwrap().live_floor(), 9);

        // The in-memory cuts behind offset acknowledgements never run ahead of a durable time.
        assert_eq!(live_first_offset_at(Topic::Agora, 99, 1), None);
        note_live_cut(Topic::Agora, 99, 1, 10);
        note_live_cut(Topic::Agora, 99, 2, 15);
        note_live_cut(Topic::Agora, 99, 2, 20);
        assert_eq!(live_first_offset_at(Topic::Agora, 99, 0), None);
        assert_eq!(live_first_offset_at(Topic::Agora, 99, 1), Some(10));
        assert_eq!(live_first_offset_at(Topic::Agora, 99, 5), Some(15));
    }
}
