//! Serving: every output arranged where it is computed, and read at one logical frontier.
//!
//! [`arrange_outputs`] arranges each output's collection by row (`arrange_by_self`): the
//! rows are sharded across all workers of all processes by their hash, and each worker's
//! [`OutputTraces`] holds its shard's trace of every output. There is no other copy: the
//! sinks consolidate their own batches and nothing is gathered on worker 0.
//!
//! Semantics of a read ([`OutputTraces::read`]): the rows of an output *as of frontier
//! `upper`* are those whose updates at times below `upper` sum to a positive count (a row
//! with count `n > 1`, which a well-formed output never has, is listed once). A shard can
//! be read at `upper` once its trace's own upper has passed `upper - 1` (every batch below
//! `upper` is in the trace), and as long as the trace's logical compaction frontier `F`
//! satisfies `F < upper` (times below `F` were advanced to `F`, which stays below `upper`).
//! [`OutputTraces::advance`] keeps `F` at `upper - as_of_window` of the trace's current
//! upper, so the last `as_of_window` frontiers stay readable and nothing older is kept.
//!
//! The cleaned signals of 2.1 are one row per record read: kept whole, they would grow with
//! the input. Each signal is therefore retracted again `signals_window` logical times after
//! its own time (a sliding window, [`Retained`]), so the trace holds only the
//! signals of the last `signals_window` times: a read at `upper` lists the signals at times
//! `upper - signals_window ..= upper - 1`. The other insert-only outputs (the closed windows
//! of 2.3 and 2.5, and the dead letters) also grow with the input, more slowly: they are
//! kept whole unless an `append` window is given, in which case each of their rows is
//! retracted the same way, `append` logical times after its own (a read lists the rows
//! emitted at `upper - append ..= upper - 1`). Every other output is an upsert table,
//! bounded by its keys, and kept whole. No operator upstream holds the insert-only rows, so
//! with checkpoints [`Retained`] saves what reads see of them, each row with its own time,
//! and a restore brings back exactly that (the upsert tables come back from the folds and
//! sets that checkpoints restore upstream).
//!
//! At the end of a bounded input every trace's upper is empty; the frontier a final read
//! uses is then the last time plus one, as the sinks record it: [`final_upper`] computes
//! the greatest time of any output row across all workers and hands it to worker 0.

use std::cell::Cell;
use std::rc::Rc;

use differential_dataflow::VecCollection;
use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::TraceReader;
use differential_dataflow::trace::cursor::{Cursor, cursor_list};
use differential_dataflow::trace::implementations::KeySpine;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::progress::Antichain;

use crate::ops::Retained;
use crate::output::Output;
use crate::{Diff, OutputRow, Time};

/// One output's shard on one worker.
pub type OutputTrace = TraceAgent<KeySpine<OutputRow, Time, Diff>>;

/// Every output's trace on one worker, indexed by [`Output::index`].
pub struct OutputTraces {
    traces: Vec<OutputTrace>,
    /// Frontiers kept readable below the current upper.
    as_of_window: Time,
    /// The logical compaction frontier last set.
    compacted: Time,
}

/// How much history the arrangements keep.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    /// Frontiers below the current one that stay readable (`AS OF`); at least 1.
    pub as_of: Time,
    /// Logical times of cleaned signals (2.1) kept for reads.
    pub signals: Time,
    /// Logical times of the other insert-only outputs (2.3, 2.5, dead letters) kept for
    /// reads (`None`: all of them).
    pub append: Option<Time>,
}

impl Windows {
    /// How many logical times the rows of `output` stay readable after their own (`None`:
    /// for ever).
    pub fn retention(&self, output: Output) -> Option<Time> {
        match output {
            Output::StudentSignalEtl => Some(self.signals.max(1)),
            other if insert_only(other) => self.append.map(|n| n.max(1)),
            _ => None,
        }
    }
}

/// Whether rows of `output` are only ever inserted (one per signal read, per closed window
/// of 2.3 or 2.5, per dead letter): no operator upstream holds them, so serving keeps them
/// itself and checkpoints save what it keeps ([`Retained`]). Every other output is an
/// upsert table whose rows the folds and sets upstream restore.
pub fn insert_only(output: Output) -> bool {
    matches!(output, Output::StudentSignalEtl | Output::ClassPerformance1m | Output::AvQuality30s | Output::DeadLetters)
}

/// Arranges every output of `rows` for reads (module docs); `rows` is every output's rows.
///
/// ```
/// use differential_dataflow::input::Input;
/// use dataflows::OutputRow;
/// use dataflows::daily_cc_confirmations::StaffIndexRow;
/// use dataflows::output::Output;
/// use dataflows::serve::{Windows, arrange_outputs};
///
/// let rows = timely::execute_directly(|worker| {
///     let (mut input, mut traces) = worker.dataflow::<u64, _, _>(|scope| {
///         let (input, rows) = scope.new_collection::<OutputRow, isize>();
///         (input, arrange_outputs(rows, Windows { as_of: 4, signals: 10, append: None }))
///     });
///     let staff = |n| OutputRow::Staff(StaffIndexRow { cc_id: 7, attribution_time: "2025-12-02".into(), cc_index: n });
///     input.insert(staff(1));
///     input.advance_to(1);
///     input.remove(staff(1));
///     input.insert(staff(2));
///     input.advance_to(2);
///     input.flush();
///     while traces.upper() != Some(2) {
///         worker.step();
///     }
///     (traces.read(Output::DailyCcConfirmations, 1), traces.read(Output::DailyCcConfirmations, 2))
/// });
/// assert_eq!(rows.0.len(), 1);
/// assert_eq!(rows.1.len(), 1);
/// assert_ne!(rows.0, rows.1, "as of 1: cc_index 1; as of 2: cc_index 2");
/// ```
pub fn arrange_outputs(rows: VecCollection<'_, Time, OutputRow, Diff>, windows: Windows) -> OutputTraces {
    let traces = Output::ALL
        .into_iter()
        .map(|output| {
            let mine = rows.clone().filter(move |row| row.output() == output);
            let kept = if insert_only(output) {
                mine.retained(&format!("Serve {}", output.name()), windows.retention(output))
            } else {
                mine
            };
            kept.arrange_by_self_named(&format!("Serve {}", output.name())).trace
        })
        .collect();
    OutputTraces { traces, as_of_window: windows.as_of.max(1), compacted: 0 }
}

impl OutputTraces {
    /// The frontier every trace of this worker has passed (`None`: the input has ended and
    /// every trace is complete).
    pub fn upper(&mut self) -> Option<Time> {
        let mut upper = Antichain::new();
        let mut least: Option<Time> = None;
        for trace in &mut self.traces {
            trace.read_upper(&mut upper);
            if let Some(&t) = upper.elements().first() {
                least = Some(least.map_or(t, |l| l.min(t)));
            }
        }
        least
    }

    /// The oldest frontier a read may still ask for (module docs: `F + 1`).
    pub fn oldest(&self) -> Time {
        self.compacted + 1
    }

    /// Whether this worker's traces can answer a read at `upper` now.
    pub fn readable(&mut self, upper: Time) -> bool {
        self.upper().is_none_or(|u| u >= upper)
    }

    /// Lets the traces forget what no read may ask for any more: logical compaction to
    /// `as_of_window` frontiers below the current upper, physical compaction to the upper.
    /// Returns that upper ([`OutputTraces::upper`]).
    pub fn advance(&mut self) -> Option<Time> {
        let upper = self.upper()?;
        let compacted = upper.saturating_sub(self.as_of_window);
        if compacted <= self.compacted {
            return Some(upper);
        }
        self.compacted = compacted;
        for trace in &mut self.traces {
            trace.set_logical_compaction(Antichain::from_elem(compacted).borrow());
            trace.set_physical_compaction(Antichain::from_elem(upper).borrow());
        }
        Some(upper)
    }

    /// This worker's rows of `output` as of `upper` (module docs), sorted. The caller checks
    /// [`OutputTraces::readable`] and `upper >= oldest()` first.
    pub fn read(&mut self, output: Output, upper: Time) -> Vec<OutputRow> {
        let trace = &mut self.traces[output.index()];
        let mut through = Antichain::new();
        trace.read_upper(&mut through);
        let Some(spans) = trace.spans_through(through.borrow()) else { return Vec::new() };
        let (mut cursor, storage) = cursor_list(spans.into_iter().filter_map(|s| s.inner).collect());
        let mut rows = Vec::new();
        while cursor.key_valid(&storage) {
            let mut count: Diff = 0;
            while cursor.val_valid(&storage) {
                cursor.map_times(&storage, |t, d| {
                    if *t < upper {
                        count += *d;
                    }
                });
                cursor.step_val(&storage);
            }
            if count > 0 {
                rows.push(cursor.key(&storage).clone());
            }
            cursor.step_key(&storage);
        }
        rows
    }
}

/// The last time of any row of `rows` plus one, across all workers, set on worker 0 once
/// every worker's input has ended (module docs); elsewhere it stays `None`.
pub fn final_upper(rows: VecCollection<'_, Time, OutputRow, Diff>) -> Rc<Cell<Option<Time>>> {
    let result: Rc<Cell<Option<Time>>> = Rc::default();
    let found = Rc::clone(&result);
    let maxima = rows.inner.unary_frontier::<CapacityContainerBuilder<Vec<Time>>, _, _, _>(
        Pipeline,
        "Last time",
        |cap, _info| {
            let mut cap = Some(cap);
            let mut max: Option<Time> = None;
            move |(input, frontier), output| {
                input.for_each_stamp(|_cap, data| {
                    for batch in data {
                        for (_, t, _) in batch.iter() {
                            max = Some(max.map_or(*t, |m| m.max(*t)));
                        }
                    }
                });
                if frontier.is_empty()
                    && let Some(cap) = cap.take()
                {
                    output.session(&cap).give(max.map_or(0, |m| m + 1));
                }
            }
        },
    );
    let mut greatest: Time = 0;
    maxima.sink(Exchange::new(|_| 0), "Final upper", move |(input, frontier)| {
        input.for_each(|_cap, data| {
            for upper in data.drain(..) {
                greatest = greatest.max(upper);
            }
        });
        if frontier.frontier().is_empty() {
            found.set(Some(greatest));
        }
    });
    result
}
