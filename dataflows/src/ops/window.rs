//! `tumbling`: event-time tumbling windows that are written only when final.
//!
//! Semantics (SPEC §3): records arrive as `(key, event_time, value, pos)`,
//! already stripped of late records by their source partition. Watermark updates
//! arrive as `(partition, watermark)`; every source partition announces
//! itself (with `i64::MIN`) at the first logical time, and an exhausted
//! partition announces `i64::MAX`. At each logical time, once all of that
//! time's records and watermark updates are in, the records are added to their
//! windows `[start, start + width)` and then every window whose end is at or
//! below the minimum watermark over all partitions is emitted, once, at that
//! logical time, and forgotten. Because both the records and the watermarks of
//! a logical time are deterministic functions of the input, so is the time at
//! which each window is emitted.
//!
//! A record can still find its window closed: a partition that went idle stops
//! holding the watermark back, and when it resumes, its records may be behind
//! windows that closed meanwhile (Flink drops these; SPEC §4 wants them kept).
//! Such a record is reported as [`WindowOut::Late`] with its position, at the
//! logical time it arrived, so the metric can turn it into a `late` dead letter.
//!
//! Memory is bounded by open windows: closed windows are dropped.

use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use foldhash::HashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::StreamVec;

use super::Stash;
use crate::{DeadLetter, Diff, Metric, Pos, Rejection, Time, Topic};

/// An aggregate maintained per window and key.
pub trait Aggregate: Default + 'static {
    /// The value each record contributes.
    type In: ExchangeData;
    /// What a final window reports.
    type Out: ExchangeData;
    /// Adds one record's value.
    fn add(&mut self, value: Self::In);
    /// The final result.
    fn finish(&self) -> Self::Out;
}

/// `COUNT(*)`.
#[derive(Default)]
pub struct Count(i64);

impl Aggregate for Count {
    type In = ();
    type Out = i64;
    fn add(&mut self, _: ()) { self.0 += 1; }
    fn finish(&self) -> i64 { self.0 }
}

/// `SUM(x)` and `COUNT(x)` (the average is their exact quotient).
#[derive(Default)]
pub struct SumCount { sum: i64, count: i64 }

impl Aggregate for SumCount {
    type In = i64;
    type Out = (i64, i64);
    fn add(&mut self, value: i64) {
        self.sum = self.sum.saturating_add(value);
        self.count += 1;
    }
    fn finish(&self) -> (i64, i64) { (self.sum, self.count) }
}

/// A final window: its start (ms), key and aggregate.
pub type Closed<K, O> = (i64, K, O);

/// What the window operator reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum WindowOut<K, O> {
    /// A final window.
    Closed(Closed<K, O>),
    /// A record whose window had already been emitted: where it was read.
    Late(Pos),
}

/// Splits the window operator's output into final windows and `late` dead
/// letters of `metric`, one per late record of `source` (a 2.5 sample feeds two
/// windows, so its position can come twice). Their `raw` is empty: the window
/// operator keeps positions, not messages; the position names the record.
#[allow(clippy::type_complexity)]
pub fn split_late<'s, K: ExchangeData, O: ExchangeData>(
    out: VecCollection<'s, Time, WindowOut<K, O>, Diff>,
    source: Topic,
    metric: Metric,
) -> (VecCollection<'s, Time, Closed<K, O>, Diff>, VecCollection<'s, Time, DeadLetter, Diff>) {
    let closed = out.clone().flat_map(|o| match o {
        WindowOut::Closed(c) => Some(c),
        WindowOut::Late(_) => None,
    });
    let late = out
        .flat_map(|o| match o {
            WindowOut::Late(pos) => Some(pos),
            WindowOut::Closed(_) => None,
        })
        .distinct()
        .map(move |pos| DeadLetter { source, pos, metric: Some(metric), reason: Rejection::Late.reason(), raw: Vec::new() });
    (closed, late)
}

/// Aggregates records into tumbling windows of `width` ms, emitting each window once it is final.
///
/// ```
/// use timely::dataflow::operators::ToStream;
/// use timely::dataflow::operators::capture::{Capture, Extract};
/// use dataflows::ops::window::{tumbling, Count, WindowOut};
/// use dataflows::Pos;
///
/// let at = |offset| Pos { partition: 0, offset };
/// let captured = timely::example(move |scope| {
///     let records = vec![('a', 1_000, (), at(0)), ('a', 59_999, (), at(1)), ('a', 60_000, (), at(2))];
///     let watermarks = vec![(0u32, i64::MIN), (0, i64::MAX)];
///     tumbling::<_, Count>(records.to_stream(scope), watermarks.to_stream(scope), 60_000, "Minute")
///         .inner
///         .capture()
/// });
/// let mut rows: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).map(|(d, _, r)| (d, r)).collect();
/// rows.sort();
/// assert_eq!(rows, vec![(WindowOut::Closed((0, 'a', 2)), 1), (WindowOut::Closed((60_000, 'a', 1)), 1)]);
/// ```
pub fn tumbling<'s, K, A>(
    records: StreamVec<'s, Time, (K, i64, A::In, Pos)>,
    watermarks: StreamVec<'s, Time, (u32, i64)>,
    width: i64,
    name: &str,
) -> VecCollection<'s, Time, WindowOut<K, A::Out>, Diff>
where
    K: ExchangeData + Hash + Hashable<Output = u64>,
    A: Aggregate,
{
    let pact = Exchange::new(|(k, _, _, _): &(K, i64, A::In, Pos)| k.hashed());
    records
        .binary_frontier::<_, CapacityContainerBuilder<Vec<(WindowOut<K, A::Out>, Time, Diff)>>, _, _, _, _>(
            watermarks.broadcast(),
            pact,
            Pipeline,
            name,
            |_cap, _info| {
                let mut records_by_time = Stash::new();
                let mut marks_by_time = Stash::new();
                // Open windows by start, then by key: few starts are open at once, so closing pops
                // whole starts and a record costs one small ordered lookup and one hash lookup.
                let mut open: BTreeMap<i64, HashMap<K, A>> = BTreeMap::new();
                let mut marks: HashMap<u32, i64> = HashMap::default();
                let mut closed_upto = i64::MIN;
                move |(input1, frontier1), (input2, frontier2), output| {
                    input1.for_each_stamp(|cap, data| {
                        if let Some(cap) = cap.retain_least(0) {
                            records_by_time.push(cap, data);
                        }
                    });
                    input2.for_each_stamp(|cap, data| {
                        if let Some(cap) = cap.retain_least(0) {
                            marks_by_time.push(cap, data);
                        }
                    });
                    // Process complete times in order: a time's records, then its watermarks.
                    loop {
                        let next = match (records_by_time.first_time(), marks_by_time.first_time()) {
                            (Some(a), Some(b)) => a.min(b),
                            (Some(a), None) | (None, Some(a)) => a,
                            (None, None) => break,
                        };
                        if frontier1.less_equal(&next) || frontier2.less_equal(&next) {
                            break;
                        }
                        if let Some((cap, batch)) = records_by_time.take(next) {
                            let mut late = output.session(&cap);
                            for (key, event_time, value, pos) in batch {
                                let start = event_time.div_euclid(width) * width;
                                // A window closes only when every partition's watermark passed it, and
                                // sources drop records behind their partition's watermark, so a record
                                // for a closed window cannot arrive from a live partition: only from one
                                // that went idle (SPEC §3) and resumed.
                                if start.saturating_add(width) <= closed_upto {
                                    late.give((WindowOut::Late(pos), *cap.time(), 1));
                                    continue;
                                }
                                open.entry(start).or_default().entry(key).or_default().add(value);
                            }
                        }
                        if let Some((cap, batch)) = marks_by_time.take(next) {
                            for (partition, mark) in batch {
                                marks.insert(partition, mark);
                            }
                            let watermark = marks.values().copied().min().unwrap_or(i64::MIN);
                            closed_upto = closed_upto.max(watermark);
                            let mut session = output.session(&cap);
                            while let Some(entry) = open.first_entry() {
                                if entry.key().saturating_add(width) > closed_upto {
                                    break;
                                }
                                let (start, keys) = entry.remove_entry();
                                for (key, agg) in keys {
                                    session.give((WindowOut::Closed((start, key, agg.finish())), *cap.time(), 1));
                                }
                            }
                        }
                    }
                }
            },
        )
        .as_collection()
}
