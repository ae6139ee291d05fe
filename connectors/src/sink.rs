//! The transactional sink operator shared by every table sink.
//!
//! Semantics: all output rows are routed to worker 0 of the cluster, so each
//! sink is written once per cluster, not once per process. Whenever the input
//! frontier advances, the updates at the times it passed are consolidated
//! (a retraction and an insertion of the same row cancel) and handed, as one
//! commit together with the new frontier, to the sink's writer thread: a
//! commit holds exactly the complete logical times below it (SPEC §5
//! "consistent"). The writer records that frontier with the data, in the same
//! transaction; on a restart the operator skips updates at times the writer
//! already holds, and because logical times are a deterministic function of
//! input positions, the replayed updates are exactly the ones that were
//! committed before.
//!
//! The [`SinkWriter`] runs on a thread of its own, fed in commit order through
//! a channel, so the dataflow goes on while the previous commit is written.
//! What the channel holds is bounded by the sources' back-pressure (at most
//! `max_inflight` logical times past the committed upper, see
//! [`crate::source::InFlight`]). The operator holds a capability at the
//! committed upper on its (empty) output stream, which is how the sources see
//! it, and holds it until the final commit is durable, so the job never ends
//! before its last commit.
//!
//! A writer error is fatal: it goes to the job's [`Fatal`] slot (the job ends
//! with that one line and a non-zero exit) and the writer stops; the failed
//! transaction leaves the sink as of its last commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};

use differential_dataflow::VecCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::scheduling::SyncActivator;

use dataflows::output::OutputSet;
use dataflows::{Diff, OutputRow, Time};

use crate::fatal::Fatal;

/// A durable destination for output rows.
pub trait SinkWriter {
    /// The frontier of what is durable: every update at a time below it is committed.
    fn committed_upper(&self) -> Time;

    /// Applies `changes` (consolidated, non-zero) and records `upper` atomically;
    /// `complete` says the input has ended (every time below `upper` is final).
    fn commit(&mut self, upper: Time, complete: bool, changes: &[(OutputRow, Diff)]) -> anyhow::Result<()>;
}

/// One commit for the writer thread.
struct Commit {
    upper: Time,
    complete: bool,
    changes: Vec<(OutputRow, Diff)>,
}

/// What the writer thread reports back to the operator.
struct Committed {
    /// The committed upper (also in the job's `durable`).
    upper: Arc<AtomicU64>,
    /// The final commit is durable (or the writer failed): nothing is left to hold back.
    finished: Arc<AtomicBool>,
}

/// Writes the rows of the `outputs` through `writer` on worker 0 (every other worker
/// passes `None`), on a thread of its own.
///
/// After each commit, `durable` holds the committed upper (for acknowledging sources).
/// A failed commit goes to `fatal`.
///
/// Returns the sink's durable frontier as an (empty) stream: its frontier, seen by every
/// worker of the cluster through timely's progress tracking, is the committed upper, so
/// sources can bound the logical times in flight to the slowest sink (back-pressure,
/// SPEC §5) by probing it.
pub fn sink<'s>(
    rows: VecCollection<'s, Time, OutputRow, Diff>,
    writer: Option<Box<dyn SinkWriter + Send>>,
    outputs: OutputSet,
    durable: Arc<AtomicU64>,
    name: &str,
    fatal: &Fatal,
) -> StreamVec<'s, Time, ()> {
    let skip_below = writer.as_ref().map_or(0, |w| w.committed_upper());
    if writer.is_some() {
        durable.store(skip_below, Ordering::Release);
    }
    let latency_id = (writer.is_some() && crate::latency::enabled()).then(|| crate::latency::register_sink(skip_below));
    let mut pending: Vec<(OutputRow, Time, Diff)> = Vec::new();
    let mut last_upper = Some(0);
    let mut max_time: Time = 0;
    let sink_name = name.to_string();
    let fatal = fatal.clone();
    let mut row_counter = crate::metrics::RowCounter::default();
    let rows = rows.filter(move |row| outputs.contains(row.output())).inner;
    let scope = rows.scope();
    rows.unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Exchange::new(|_| 0), name, move |cap, info| {
        let waker = scope.worker().sync_activator_for(info.address.to_vec());
        // The writer thread, and the capability held at its committed upper (the others hold nothing back).
        let mut feed: Option<(Sender<Commit>, Committed)> = writer.map(|w| {
            let committed = Committed { upper: Arc::clone(&durable), finished: Arc::default() };
            let thread = WriterThread {
                writer: w,
                name: sink_name.clone(),
                durable: Arc::clone(&committed.upper),
                finished: Arc::clone(&committed.finished),
                fatal: fatal.clone(),
                latency_id,
                waker: waker.clone(),
            };
            (thread.spawn(), committed)
        });
        let mut held = feed.as_ref().map(|_| cap.delayed(&skip_below));
        move |(input, frontier), _output| {
            input.for_each(|_cap, data| {
                for (row, time, diff) in data.drain(..) {
                    max_time = max_time.max(time);
                    row_counter.add(&row, time, diff);
                    if time >= skip_below {
                        pending.push((row, time, diff));
                    }
                }
            });
            // What the writer has made durable since: the sources may read on.
            if let (Some(cap), Some((_, committed))) = (held.as_mut(), feed.as_ref()) {
                if committed.finished.load(Ordering::Acquire) {
                    held = None;
                } else {
                    let upper = committed.upper.load(Ordering::Acquire);
                    cap.downgrade(&upper.max(*cap.time()));
                }
            }
            let upper = frontier.frontier().first().copied();
            if upper == last_upper {
                return;
            }
            last_upper = upper;
            row_counter.flush(&sink_name, upper);
            let Some((sender, _)) = feed.as_ref() else { return };
            let ready = |t: &Time| upper.is_none_or(|u| *t < u);
            let (ready_now, later): (Vec<_>, Vec<_>) =
                std::mem::take(&mut pending).into_iter().partition(|(_, t, _)| ready(t));
            pending = later;
            if upper.is_some_and(|u| u <= skip_below) {
                return;
            }
            let commit = Commit {
                upper: upper.unwrap_or(max_time + 1).max(skip_below),
                complete: upper.is_none(),
                changes: final_states(ready_now),
            };
            if sender.send(commit).is_err() {
                // The writer stopped; its error is in the fatal slot (a writer that stopped
                // without one is reported here, so that the job never waits on it).
                if !fatal.is_raised() {
                    fatal.report(format!("sink {sink_name} stopped without an error"));
                }
                feed = None;
                held = None;
                pending.clear();
            }
        }
    })
}

/// The writer thread of one sink: commits in order, reports what is durable.
struct WriterThread {
    writer: Box<dyn SinkWriter + Send>,
    name: String,
    durable: Arc<AtomicU64>,
    finished: Arc<AtomicBool>,
    fatal: Fatal,
    latency_id: Option<usize>,
    waker: SyncActivator,
}

impl WriterThread {
    /// Starts the thread; commits sent to the returned channel are written in order.
    fn spawn(mut self) -> Sender<Commit> {
        let (sender, commits) = channel::<Commit>();
        let name = format!("edu-rtdw-sink-{}", self.name);
        let (fatal, sink) = (self.fatal.clone(), self.name.clone());
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            // A panic in a writer (a driver's, or ours) must end the job like an error does:
            // otherwise the operator keeps holding the sink's frontier and the job hangs.
            let wrote = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for commit in commits {
                    if !self.write(commit) {
                        break;
                    }
                }
            }));
            if let Err(panic) = wrote {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                self.fatal.report(format!("sink {} writer panicked: {what}", self.name));
                self.finish();
            }
        });
        if let Err(e) = spawned {
            fatal.report(format!("sink {sink} cannot start its writer thread: {e}"));
        }
        sender
    }

    /// Writes one commit; false when the sink is done (its final commit, or an error).
    fn write(&mut self, commit: Commit) -> bool {
        let started = std::time::Instant::now();
        let (upper, complete) = (commit.upper, commit.complete);
        if let Err(e) = self.writer.commit(upper, complete, &commit.changes) {
            self.fatal.report(format!("sink {} failed: {e:#}", self.name));
            self.finish();
            return false;
        }
        self.durable.store(upper, Ordering::Release);
        if let Some(id) = self.latency_id {
            // The last commit (empty frontier) holds every time there is.
            crate::latency::committed(id, if complete { Time::MAX } else { upper });
        }
        let took = started.elapsed();
        tracing::debug!(sink = %self.name, upper, complete, rows = commit.changes.len(), latency_ms = took.as_secs_f64() * 1e3, "sink commit");
        crate::metrics::observe_commit(&self.name, took, upper);
        if complete {
            self.finish();
            return false;
        }
        self.wake();
        true
    }

    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        // The operator may be gone already (the job ended): nothing to wake then.
        let _ = self.waker.activate();
    }
}

/// The state of every row touched by `updates`: `+1` if present at the end, `-1` if not.
///
/// A row's updates are first consolidated per logical time: a collection's updates at one
/// time need not be (a join emits `+x` and `-x` at the same time for a row that never
/// exists when both of its inputs change at that time), and a row whose updates cancel at
/// every time is not touched at all. A row's presence before its first remaining update
/// is read off that update (a retraction means it was there), so the result does not
/// depend on what the sink held: a row retracted and re-inserted is written again, a row
/// inserted and retracted is deleted. Because a key holds at most one row at any time, the
/// row of a key that is present at the end is always among the touched rows, so "delete
/// every absent row's key, then upsert every present row" leaves each touched key exactly
/// as the collection has it. (Without the per-time consolidation, a transient pair read
/// retraction first made a row that never was look present: two rows upserted for one
/// key, which PostgreSQL refuses and the other sinks resolve arbitrarily.)
pub fn final_states(mut updates: Vec<(OutputRow, Time, Diff)>) -> Vec<(OutputRow, Diff)> {
    updates.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut out: Vec<(OutputRow, Diff)> = Vec::new();
    let mut updates = updates.into_iter().peekable();
    while let Some((row, first_time, first_diff)) = updates.next() {
        // Per time: (time, sum); the first non-zero sum tells whether the row was there.
        let (mut was_present, mut total) = (None, 0);
        let (mut time, mut sum) = (first_time, first_diff);
        loop {
            let next = updates.next_if(|(r, _, _)| *r == row);
            if let Some((_, t, d)) = &next
                && *t == time
            {
                sum += d;
                continue;
            }
            if sum != 0 {
                was_present.get_or_insert(sum < 0);
                total += sum;
            }
            match next {
                Some((_, t, d)) => (time, sum) = (t, d),
                None => break,
            }
        }
        if let Some(was_present) = was_present {
            let count = total + Diff::from(was_present);
            out.push((row, if count > 0 { 1 } else { -1 }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::daily_cc_confirmations::StaffIndexRow;

    fn staff(count: i64) -> OutputRow {
        OutputRow::Staff(StaffIndexRow { cc_id: 1, attribution_time: "2025-12-02".into(), cc_index: count })
    }

    #[test]
    fn touched_rows_are_written_by_their_final_state() {
        // 5 -> 6 at time 1, 6 -> 5 at time 2: 5 is rewritten, 6 is deleted (then 5 upserted).
        let got = final_states(vec![(staff(5), 1, -1), (staff(6), 1, 1), (staff(6), 2, -1), (staff(5), 2, 1)]);
        assert_eq!(got, vec![(staff(5), 1), (staff(6), -1)]);
        // A plain change and a plain delete.
        assert_eq!(final_states(vec![(staff(5), 1, -1), (staff(7), 1, 1)]), vec![(staff(5), -1), (staff(7), 1)]);
        assert_eq!(final_states(vec![(staff(5), 3, -1)]), vec![(staff(5), -1)]);
    }

    /// A join whose two inputs change at one time emits a transient `+x −x` pair for a row
    /// that never exists; in either order it leaves the row untouched, and the key's real
    /// row alone is upserted (before, retraction first read as "was there": two upserts).
    #[test]
    fn a_transient_pair_at_one_time_touches_nothing() {
        for pair in [[(staff(6), 1, 1), (staff(6), 1, -1)], [(staff(6), 1, -1), (staff(6), 1, 1)]] {
            let mut updates = pair.to_vec();
            updates.extend([(staff(5), 1, -1), (staff(7), 1, 1)]);
            assert_eq!(final_states(updates), vec![(staff(5), -1), (staff(7), 1)]);
        }
        // Cancelling at one time, then really inserted later: it was absent before.
        let got = final_states(vec![(staff(6), 1, -1), (staff(6), 1, 1), (staff(6), 2, 1)]);
        assert_eq!(got, vec![(staff(6), 1)]);
    }
}
