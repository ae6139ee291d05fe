//! The transactional sink operator shared by every table sink.
//!
//! Semantics: all output rows are routed to worker 0 of the cluster, so each
//! sink is written once per cluster, not once per process. Whenever the input
//! frontier advances, the updates at the times it passed are consolidated
//! (a retraction and an insertion of the same row cancel) and handed to the
//! [`SinkWriter`] as one commit, together with the new frontier: a commit
//! holds exactly the complete logical times below it (SPEC §5 "consistent").
//! The writer records that frontier with the data, in the same transaction;
//! on a restart the operator skips updates at times the writer already holds,
//! and because logical times are a deterministic function of input positions,
//! the replayed updates are exactly the ones that were committed before.
//!
//! A writer error is fatal: it is reported in one line and the process exits
//! non-zero; the failed transaction leaves the sink as of its last commit.

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::VecCollection;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use dataflows::{Diff, OutputRow, Time};

use crate::tables::table_index;

/// A durable destination for output rows.
pub trait SinkWriter {
    /// The frontier of what is durable: every update at a time below it is committed.
    fn committed_upper(&self) -> Time;

    /// Applies `changes` (consolidated, non-zero) and records `upper` atomically;
    /// `complete` says the input has ended (every time below `upper` is final).
    fn commit(&mut self, upper: Time, complete: bool, changes: &[(OutputRow, Diff)]) -> anyhow::Result<()>;
}

/// Writes the rows of the tables in `tables` (a mask over [`crate::tables::ALL`])
/// through `writer` on worker 0 (every other worker passes `None`).
pub fn sink<'s>(rows: VecCollection<'s, Time, OutputRow, Diff>, writer: Option<Box<dyn SinkWriter>>, tables: Vec<bool>, name: &str) {
    let mut writer = writer;
    let skip_below = writer.as_ref().map_or(0, |w| w.committed_upper());
    let mut pending: Vec<(OutputRow, Time, Diff)> = Vec::new();
    let mut last_upper = Some(0);
    let mut max_time: Time = 0;
    let sink_name = name.to_string();
    rows.filter(move |row| tables[table_index(row)]).inner.sink(Exchange::new(|_| 0), name, move |(input, frontier)| {
        input.for_each(|_cap, data| {
            for (row, time, diff) in data.drain(..) {
                max_time = max_time.max(time);
                if time >= skip_below {
                    pending.push((row, time, diff));
                }
            }
        });
        let upper = frontier.frontier().first().copied();
        if upper == last_upper {
            return;
        }
        last_upper = upper;
        let Some(writer) = writer.as_mut() else { return };
        let ready = |t: &Time| upper.is_none_or(|u| *t < u);
        let (ready_now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut pending).into_iter().partition(|(_, t, _)| ready(t));
        pending = later;
        let mut changes: Vec<(OutputRow, Diff)> = ready_now.into_iter().map(|(row, _, diff)| (row, diff)).collect();
        consolidate(&mut changes);
        if upper.is_some_and(|u| u <= skip_below) {
            return;
        }
        let durable = upper.unwrap_or(max_time + 1).max(skip_below);
        if let Err(e) = writer.commit(durable, upper.is_none(), &changes) {
            eprintln!("edu-rtdw: sink {sink_name} failed: {e:#}");
            std::process::exit(1);
        }
    });
}
