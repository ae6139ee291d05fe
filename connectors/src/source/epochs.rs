//! Clock strategies: which logical time each position of a source gets.
//!
//! * [`Epochs::Offsets`]: the input [`Clock`] alone (`offset / epoch_records`
//!   on a fresh input): a function of the position, the same on every replay,
//!   for any number of workers.
//! * [`Epochs::Live`] (Kafka without `--until-end`, `--epoch-ms N`): offsets
//!   cannot drive a live job's time, because partitions fill at very different
//!   rates and the frontier follows the slowest one. Positions the clock has
//!   recorded keep their recorded times; every later position gets the open
//!   epoch, which closes every N ms (when it holds inputs) or as soon as a
//!   partition has read `epoch_records` in it. The cuts of closed epochs are
//!   recorded in the SQLite state file *before* the frontier passes them
//!   ([`Epochs::persist`]), so a replay after a crash gives every recorded
//!   position its original time (see [`crate::clock`]). So is the open epoch
//!   (the clock's live floor) whenever it moved, with records or without:
//!   a restart's first epoch is never one the sinks already committed.
//!
//! Either way a record is never given a time below the source's frontier.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use dataflows::{Time, Topic};

use crate::clock::Clock;

/// How a source's positions get their logical times.
pub enum Epochs {
    /// Times from offsets, by the input clock.
    Offsets(Arc<Clock>),
    /// Live epochs closed by the wall clock.
    Live(Box<LiveEpochs>),
}

/// A partition's place, for closing live epochs: topic, partition, next offset.
pub(crate) type Place = (Topic, u32, u64);

impl Epochs {
    /// The time of the record at `offset` of partition `i` (`topic`/`partition`), read while
    /// the source's frontier is at `floor`.
    pub(crate) fn time(&self, i: usize, topic: Topic, partition: u32, offset: u64, floor: Time) -> Time {
        let time = match self {
            Epochs::Offsets(clock) => clock.time(topic, partition, offset),
            Epochs::Live(live) if offset >= live.open_start[i] => live.epoch,
            Epochs::Live(live) => live.clock.time(topic, partition, offset),
        };
        time.max(floor)
    }

    /// The first offset at or after `next` of partition `i` whose time is later than `floor`
    /// (`u64::MAX`: none): what an activation at `floor` may read is below it. Times grow
    /// with offsets, so a galloping search finds it in a few dozen [`Epochs::time`] calls
    /// instead of one per record.
    pub(crate) fn limit(&self, i: usize, topic: Topic, partition: u32, next: u64, floor: Time) -> u64 {
        let later = |offset: u64| self.time(i, topic, partition, offset, floor) > floor;
        if later(next) {
            return next;
        }
        // Gallop: `low` is at `floor`, `high` is later (or past every offset there is).
        let (mut low, mut step) = (next, 1u64);
        let mut high = loop {
            let probe = low.saturating_add(step);
            if probe == u64::MAX {
                break u64::MAX;
            }
            if later(probe) {
                break probe;
            }
            low = probe;
            step = step.saturating_mul(2);
        };
        if high == u64::MAX {
            return u64::MAX;
        }
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if later(mid) {
                high = mid;
            } else {
                low = mid;
            }
        }
        high
    }

    /// Whether the record at `offset` of partition `i` must wait for the next live epoch:
    /// the open one already holds `epoch_records` of the partition's positions.
    pub(crate) fn full(&self, i: usize, offset: u64) -> bool {
        match self {
            Epochs::Offsets(_) => false,
            Epochs::Live(live) => live.first[i].is_some_and(|first| offset - first >= live.epoch_records),
        }
    }

    /// Notes that partition `i` read `offset`.
    pub(crate) fn note_read(&mut self, i: usize, offset: u64) {
        if let Epochs::Live(live) = self
            && offset >= live.open_start[i]
        {
            live.first[i].get_or_insert(offset);
        }
    }

    /// Notes that inputs (records or watermark changes) were given at `time`.
    pub(crate) fn note_given(&mut self, time: Time) {
        if let Epochs::Live(live) = self {
            live.given |= live.epoch == time;
        }
    }

    /// After the reads of an activation: closes the open live epoch when a partition filled
    /// it (`full`) or its period is over. `places` are every partition's positions.
    pub(crate) fn after_reads(&mut self, full: bool, now: Instant, places: &[Place], high_epoch: &AtomicU64) {
        if let Epochs::Live(live) = self
            && (full || (live.holds_inputs() && now >= live.next_close))
        {
            live.close(places, high_epoch);
        }
    }

    /// Moves an open live epoch that holds nothing up to `time` (a requested checkpoint's
    /// barrier), noting every partition's position there; nothing with offset epochs.
    pub(crate) fn skip_to(&mut self, time: Time, places: &[Place], high_epoch: &AtomicU64) {
        if let Epochs::Live(live) = self
            && !live.holds_inputs()
            && live.epoch < time
        {
            live.epoch = time;
            high_epoch.fetch_max(time, Ordering::Relaxed);
            live.positions = places.iter().map(|&(topic, partition, next)| (topic, partition, time, next)).collect();
        }
    }

    /// Where the frontier goes: `min_next`, the least next time of the partitions that
    /// hold it (`None`: none does), never below `floor`.
    pub(crate) fn target(&self, min_next: Option<Time>, floor: Time, high_epoch: &AtomicU64) -> Time {
        match self {
            Epochs::Offsets(_) => min_next.unwrap_or_else(|| high_epoch.load(Ordering::Relaxed).max(floor)),
            Epochs::Live(live) => min_next.map_or(live.epoch, |m| m.min(live.epoch)),
        }
    }

    /// Records the closed epochs' cuts; must run before the frontier passes them.
    pub(crate) fn persist(&mut self) -> anyhow::Result<()> {
        match self {
            Epochs::Offsets(_) => Ok(()),
            Epochs::Live(live) => live.persist(),
        }
    }

    /// Every partition is done: closes the open epoch if it holds records and records it.
    pub(crate) fn finish(&mut self, places: &[Place], high_epoch: &AtomicU64) -> anyhow::Result<()> {
        if let Epochs::Live(live) = self
            && live.holds_records()
        {
            live.close(places, high_epoch);
        }
        self.persist()
    }

    /// How long the source may sleep before an open live epoch must close.
    pub(crate) fn close_in(&self, now: Instant) -> Option<Duration> {
        match self {
            Epochs::Live(live) if live.holds_inputs() => {
                Some(live.next_close.saturating_duration_since(now).max(Duration::from_millis(1)))
            }
            _ => None,
        }
    }
}

/// The open live epoch of one source.
pub struct LiveEpochs {
    clock: Arc<Clock>,
    period: Duration,
    next_close: Instant,
    /// The open epoch: the time of every new record.
    epoch: Time,
    conn: rusqlite::Connection,
    /// Per partition: the first offset read in the open epoch.
    first: Vec<Option<u64>>,
    /// Whether any inputs were given at the open epoch, records or not. Watermark changes
    /// alone (a partition going idle) need the epoch to close too: when the whole input goes
    /// quiet, the idle partitions' marks are what closes the last windows (SPEC §3).
    given: bool,
    /// Per partition: positions from here on get live times (before: the recorded clock).
    open_start: Vec<u64>,
    epoch_records: u64,
    /// Cuts of closed epochs not yet recorded: `(topic, partition, start, base)`.
    cuts: Vec<(Topic, u32, u64, Time)>,
    /// The open epoch as last recorded (the clock's live floor).
    recorded_floor: Time,
    /// Every partition's position at the last close: `(topic, partition, base, next offset)`.
    positions: Vec<(Topic, u32, Time, u64)>,
}

impl LiveEpochs {
    /// Live epochs of `period_ms` over `partitions`, recording cuts in the state file at
    /// `state_path`; positions `clock` has recorded keep their times, and no new epoch is
    /// before `floor` (a restored checkpoint's next time) or the clock's live floor.
    pub fn open(
        clock: Arc<Clock>,
        period_ms: u64,
        state_path: &std::path::Path,
        partitions: &[(Topic, u32)],
        floor: Time,
    ) -> anyhow::Result<Self> {
        crate::clock::set_live();
        let conn = Clock::open_cuts(state_path).context("cannot open the live epochs' state")?;
        let epoch = clock.max_base().max(clock.live_floor()).max(floor);
        Ok(LiveEpochs {
            period: Duration::from_millis(period_ms.max(1)),
            next_close: Instant::now(),
            epoch,
            recorded_floor: clock.live_floor(),
            conn,
            first: vec![None; partitions.len()],
            given: false,
            open_start: partitions.iter().map(|(t, p)| clock.open_start(*t, *p)).collect(),
            epoch_records: clock.epoch_records(),
            cuts: Vec::new(),
            positions: Vec::new(),
            clock,
        })
    }

    /// Closes the open epoch and opens the next one; [`LiveEpochs::persist`] must run before
    /// the frontier passes the closed epoch.
    fn close(&mut self, places: &[Place], high_epoch: &AtomicU64) {
        let e = self.epoch;
        // The next epoch follows the process's most advanced source; the cuts must say exactly
        // where it starts (a replay may not put the next records at an earlier, committed time).
        let next = (e + 1).max(high_epoch.load(Ordering::Relaxed));
        high_epoch.fetch_max(next, Ordering::Relaxed);
        self.positions.clear();
        for (first, &(topic, partition, next_offset)) in self.first.iter_mut().zip(places) {
            if let Some(f) = first.take() {
                self.cuts.push((topic, partition, f, e));
                self.cuts.push((topic, partition, next_offset, next));
            }
            self.positions.push((topic, partition, next, next_offset));
        }
        self.epoch = next;
        self.given = false;
        self.next_close = Instant::now() + self.period;
    }

    /// Records the closed epochs' cuts and the open epoch (one transaction), when either changed.
    fn persist(&mut self) -> anyhow::Result<()> {
        if !self.cuts.is_empty() || self.epoch > self.recorded_floor {
            Clock::record_cuts(&mut self.conn, &self.cuts, self.epoch)
                .context("cannot record the live epochs' cuts")?;
            self.cuts.clear();
            self.recorded_floor = self.epoch;
        }
        for (topic, partition, base, offset) in self.positions.drain(..) {
            crate::clock::note_live_cut(topic, partition, base, offset);
        }
        Ok(())
    }

    /// Whether the open epoch holds records.
    fn holds_records(&self) -> bool {
        self.first.iter().any(Option::is_some)
    }

    /// Whether the open epoch holds anything the frontier has to pass: records read
    /// or inputs given.
    fn holds_inputs(&self) -> bool {
        self.given || self.holds_records()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock resumed after a bounded run that ended at offset 10 of the user partition
    /// (offsets 10.. start a new segment at time 3) and at offset 0 of the order partition.
    fn resumed_clock() -> Clock {
        let resume = Clock::new(4).resume_after(vec![(Topic::User, 0, 10), (Topic::Order, 0, 0)]);
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
        Clock::record(&conn, &resume).expect("record");
        Clock::load(&conn, 4).expect("load")
    }

    /// Chaos seed 1 (issue 22): a quiet job's epochs moved up to checkpoint barriers with
    /// nothing read, the sinks committed those times, the job was killed, and the records
    /// produced next got a time from before the quiet spell on restart: the sinks skipped them.
    #[test]
    fn a_restart_opens_after_epochs_that_passed_without_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.db");
        let parts = [(Topic::Qos, 0)];
        let open = || {
            let clock = Arc::new(Clock::load_path(&state, 100).expect("clock"));
            Epochs::Live(Box::new(LiveEpochs::open(clock, 20, &state, &parts, 0).expect("live epochs")))
        };
        let high = AtomicU64::new(0);
        let mut epochs = open();
        // Epoch 0 holds offsets 0..3 and closes; the open epoch then moves up to a barrier at 9.
        for offset in 0..3 {
            epochs.note_read(0, offset);
        }
        epochs.after_reads(true, Instant::now(), &[(Topic::Qos, 0, 3)], &high);
        epochs.skip_to(9, &[(Topic::Qos, 0, 3)], &high);
        epochs.persist().expect("persist");
        assert_eq!(epochs.target(None, 0, &high), 9, "the frontier may move to 9 now");
        // Restarted: the recorded positions keep their time, the next one comes after 8.
        let epochs = open();
        assert_eq!([2, 3].map(|offset| epochs.time(0, Topic::Qos, 0, offset, 0)), [0, 9]);
    }

    #[test]
    fn the_limit_is_the_first_later_offset_of_a_linear_scan() {
        for clock in [Clock::new(3), resumed_clock()] {
            let epochs = Epochs::Offsets(Arc::new(clock));
            for (topic, partition) in [(Topic::User, 0), (Topic::Order, 0), (Topic::Agora, 3)] {
                for floor in 0..12 {
                    for next in 0..40 {
                        let scan = (next..).find(|&o| epochs.time(0, topic, partition, o, floor) > floor);
                        let limit = epochs.limit(0, topic, partition, next, floor);
                        assert_eq!(Some(limit), scan, "{topic:?}/{partition} from {next} at {floor}");
                    }
                }
            }
        }
    }
}
