//! [`Tumbling`]: event-time tumbling windows that are written only when final.
//!
//! Semantics (SPEC §3): records arrive as [`WindowFact`]s (key, event time, value, origin),
//! already stripped of late records by their source partition. Watermark updates
//! arrive as `(partition, Mark)`; every source partition announces
//! itself (with `Mark::At(i64::MIN)`) at the first logical time, an exhausted
//! partition announces `Mark::At(i64::MAX)`, and an idle one `Mark::Idle(W_p)`. At
//! each logical time, once all of that time's records and watermark updates
//! are in, the records are added to their windows `[start, start + width)` and
//! then every window whose end is at or below the watermark is emitted, once,
//! at that logical time, and forgotten.
//!
//! The watermark is the minimum of the last `W_p` of the partitions that are
//! not idle (SPEC §3: idle partitions excepted). When every partition is idle
//! it is the *largest* of their last `W_p`: a quiet input closes the windows
//! that its most advanced partition has passed, as Flink does when all its
//! inputs are idle; it does not close every future window (taking the minimum
//! over no partition as +infinity would, and every record after a quiet spell
//! would then be late). Windows never reopen: the watermark that closed them
//! only grows. Because both the records and the watermarks of
//! a logical time are deterministic functions of the input, so is the time at
//! which each window is emitted.
//!
//! A record can still find its window closed: a partition that went idle stops
//! holding the watermark back, and when it resumes, its records may be behind
//! windows that closed meanwhile (Flink drops these; SPEC §4 wants them kept).
//! Such a record is reported as [`WindowOut::Late`] with its [`Origin`], at the
//! logical time it arrived, so the metric can turn it into a `late` dead letter.
//!
//! **Raw messages of late records.** A record carries its message (`Origin::raw`)
//! only while it could still be late: a partition carries raw from the moment it
//! resumes after idleness until it has caught up (see
//! [`crate::ingest::PartitionIngest`]). To know when, the operator publishes, per
//! worker thread, how far it has closed ([`published`]): after processing
//! logical time `t`, `(t, closed_upto)`. The argument that this is enough: once the
//! operator has processed the partition's resume time, the partition's own
//! watermark is part of the minimum again, so windows close later only up to
//! its watermark, and a record that is not late for its partition
//! (`event_time >= W_p`) finds its window open. So once `W_p` reaches the
//! published `closed_upto` (of a time at or after the resume), nothing from the
//! partition can be late here, and carrying stops. Every instance of the
//! operator sees the same records' times and the same watermarks, so the
//! instance on the source's own worker speaks for all of them (timely runs all
//! of a worker's operators, its sources included, on the worker's thread; a
//! source that sees nothing published keeps carrying, which is always safe).
//!
//! Memory is bounded by open windows: closed windows are dropped.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::rc::Rc;

use differential_dataflow::operators::ThresholdTotal;
use differential_dataflow::{AsCollection, ExchangeData, Hashable, VecCollection};
use foldhash::HashMap;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::stash::Stash;
use crate::{DeadLetter, Diff, Metric, Pos, Rejection, Time, Topic, durable};

/// A source partition's watermark announcement (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum Mark {
    /// `W_p`: the partition sends no more records for windows ending at or below it
    /// (`i64::MAX`: the partition is exhausted).
    At(i64),
    /// The partition went idle at `W_p`: it holds no window back until it announces `At`
    /// again, and its `W_p` counts only when every partition is idle (module docs).
    Idle(i64),
}

impl Mark {
    /// The partition's `W_p`, idle or not.
    pub fn w_p(self) -> i64 {
        match self {
            Mark::At(w) | Mark::Idle(w) => w,
        }
    }
}

/// The watermark over every partition's last mark (module docs): the least `W_p` of the
/// partitions that are not idle, or when all are idle, the largest.
///
/// ```
/// use dataflows::ops::window::{watermark, Mark};
/// assert_eq!(watermark([Mark::Idle(95), Mark::At(295), Mark::At(400)]), 295);
/// assert_eq!(watermark([Mark::Idle(95), Mark::Idle(295)]), 295);
/// assert_eq!(watermark([]), i64::MIN);
/// ```
pub fn watermark(marks: impl IntoIterator<Item = Mark> + Clone) -> i64 {
    let active = marks.clone().into_iter().filter_map(|m| if let Mark::At(w) = m { Some(w) } else { None }).min();
    active.unwrap_or_else(|| marks.into_iter().map(Mark::w_p).max().unwrap_or(i64::MIN))
}

/// The start of the tumbling window of `width` ms holding `event_time`, if that window's
/// start and end are both storable timestamps ([`crate::storable::timestamp`]); computed
/// with checked arithmetic, so no event time gives a window that wraps around.
///
/// ```
/// use dataflows::ops::window::storable_window;
/// assert_eq!(storable_window(61_000, 60_000), Some(60_000));
/// assert_eq!(storable_window(-1, 60_000), Some(-60_000));
/// assert_eq!(storable_window(i64::MAX, 60_000), None);
/// assert_eq!(storable_window(253_402_300_740_000, 60_000), None); // ends in the year 10000
/// ```
pub fn storable_window(event_time: i64, width: i64) -> Option<i64> {
    let start = event_time.checked_sub(event_time.checked_rem_euclid(width)?)?;
    let end = start.checked_add(width)?;
    (crate::storable::timestamp(start) && crate::storable::timestamp(end)).then_some(start)
}

/// Where a windowed record was read, and its message while it could still be late.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// The record's source position.
    pub pos: Pos,
    /// The record's message, carried only while it may be late (then a dead letter's `raw`).
    pub raw: Option<Box<[u8]>>,
}

impl Origin {
    /// A record that cannot be late at the window: its position alone.
    pub fn at(pos: Pos) -> Self {
        Origin { pos, raw: None }
    }
}

/// What one record contributes to a windowed metric: a row of the `FROM` of
/// `GROUP BY TUMBLE(event_time, width), key`, with the value its aggregate takes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct WindowFact<K, V> {
    /// The grouping key (window aside).
    pub key: K,
    /// The event time (ms since the epoch), which picks the window.
    pub event_time: i64,
    /// What the record adds to its window's aggregate (`()` for `COUNT(*)`).
    pub value: V,
    /// Where the record was read (and its message, while it could be late).
    pub origin: Origin,
}

std::thread_local! {
    /// Per windowed topic: the last logical time this worker's window operator processed,
    /// and how far its windows had closed then.
    static PUBLISHED: std::cell::RefCell<Vec<(Topic, Time, i64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How far this worker thread's window operator over `topic` has closed: `(t, closed_upto)`
/// after it processed logical time `t`; `None` before it processed any time.
pub fn published(topic: Topic) -> Option<(Time, i64)> {
    PUBLISHED.with(|p| p.borrow().iter().find(|(t, _, _)| *t == topic).map(|&(_, time, closed)| (time, closed)))
}

/// Sets (or, with `None`, forgets) what [`published`] answers for `topic` on this thread.
pub(crate) fn publish(topic: Topic, progress: Option<(Time, i64)>) {
    PUBLISHED.with(|p| {
        let mut p = p.borrow_mut();
        p.retain(|(t, _, _)| *t != topic);
        if let Some((time, closed)) = progress {
            p.push((topic, time, closed));
        }
    });
}

/// An aggregate maintained per window and key.
pub trait Aggregate: Default + Serialize + DeserializeOwned + 'static {
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
#[derive(Default, Serialize, Deserialize)]
pub struct Count(i64);

impl Aggregate for Count {
    type In = ();
    type Out = i64;
    fn add(&mut self, _: ()) {
        self.0 += 1;
    }
    fn finish(&self) -> i64 {
        self.0
    }
}

/// `SUM(x)` and `COUNT(x)` (the average is their exact quotient).
#[derive(Default, Serialize, Deserialize)]
pub struct SumCount {
    sum: i64,
    count: i64,
}

impl Aggregate for SumCount {
    type In = i64;
    type Out = (i64, i64);
    fn add(&mut self, value: i64) {
        self.sum = self.sum.saturating_add(value);
        self.count += 1;
    }
    fn finish(&self) -> (i64, i64) {
        (self.sum, self.count)
    }
}

/// A final window: `TUMBLE_START`, the group and the aggregate of one output row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Window<K, O> {
    /// The window's start (ms since the epoch); it ends `width` later.
    pub start: i64,
    /// The group.
    pub key: K,
    /// The aggregate's final result.
    pub aggregate: O,
}

/// What the window operator reports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub enum WindowOut<K, O> {
    /// A final window.
    Closed(Window<K, O>),
    /// A record whose window had already been emitted: where it was read (and its message).
    Late(Origin),
}

/// The parts of a window operator's output: final windows, and `late` dead letters.
pub type FinalAndLate<'s, K, O> =
    (VecCollection<'s, Time, Window<K, O>, Diff>, VecCollection<'s, Time, DeadLetter, Diff>);

/// Extension trait for [`SplitLate::split_late`], on what [`Tumbling::tumbling`] reports.
pub trait SplitLate<'s, K, O> {
    /// Splits the window operator's output into final windows and `late` dead
    /// letters of `metric`, one per late record of `source` (a 2.5 sample feeds two
    /// windows, so its origin can come twice). Their `raw` is the record's message,
    /// which sources carry while a record may be late (module docs).
    ///
    /// ```
    /// use differential_dataflow::AsCollection;
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use dataflows::ops::window::{Origin, Window, WindowOut};
    /// use dataflows::ops::SplitLate;
    /// use dataflows::{Metric, Pos, Topic};
    ///
    /// let (windows, late) = timely::example(|scope| {
    ///     let late = Origin { pos: Pos { partition: 0, offset: 7 }, raw: Some(b"{}".to_vec().into()) };
    ///     let out = vec![
    ///         (WindowOut::Closed(Window { start: 0, key: 'a', aggregate: 2 }), 0, 1),
    ///         (WindowOut::Late(late.clone()), 0, 1),
    ///         (WindowOut::Late(late), 0, 1),
    ///     ];
    ///     let (windows, late) = out.to_stream(scope).as_collection().split_late(Topic::Agora, Metric::AvQuality30s);
    ///     (windows.inner.capture(), late.inner.capture())
    /// });
    /// let windows: Vec<_> = windows.extract().into_iter().flat_map(|(_, u)| u).collect();
    /// assert_eq!(windows, vec![(Window { start: 0, key: 'a', aggregate: 2i64 }, 0, 1)]);
    /// let late: Vec<_> = late.extract().into_iter().flat_map(|(_, u)| u).collect();
    /// assert!(matches!(&late[..], [(d, 0, 1)] if d.reason == "late" && d.pos.offset == 7 && d.raw == b"{}"));
    /// ```
    fn split_late(self, source: Topic, metric: Metric) -> FinalAndLate<'s, K, O>;
}

impl<'s, K: ExchangeData, O: ExchangeData> SplitLate<'s, K, O> for VecCollection<'s, Time, WindowOut<K, O>, Diff> {
    #[inline]
    fn split_late(self, source: Topic, metric: Metric) -> FinalAndLate<'s, K, O> {
        let closed = self.clone().flat_map(|o| match o {
            WindowOut::Closed(c) => Some(c),
            WindowOut::Late(_) => None,
        });
        let late = self
            .flat_map(|o| match o {
                WindowOut::Late(origin) => Some(origin),
                WindowOut::Closed(_) => None,
            })
            .distinct_total()
            .map(move |Origin { pos, raw }| DeadLetter {
                source,
                pos,
                metric: Some(metric),
                reason: Rejection::Late.reason(),
                raw: raw.map(Vec::from).unwrap_or_default(),
            });
        (closed, late)
    }
}

/// What a window operator keeps between logical times (and checkpoints save).
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize + Hash + Eq, A: Serialize",
    deserialize = "K: DeserializeOwned + Hash + Eq, A: DeserializeOwned"
))]
struct WindowState<K, A> {
    /// Open windows by start, then by key: few starts are open at once, so closing pops
    /// whole starts and a record costs one small ordered lookup and one hash lookup.
    open: BTreeMap<i64, HashMap<K, A>>,
    /// Per partition: its last mark (the same on every worker: marks are broadcast).
    marks: HashMap<u32, Mark>,
    /// Windows ending at or below it have been emitted.
    closed_upto: i64,
}

impl<K, A> Default for WindowState<K, A> {
    fn default() -> Self {
        WindowState { open: BTreeMap::new(), marks: HashMap::default(), closed_upto: i64::MIN }
    }
}

impl<K: Hash + Eq, A> WindowState<K, A> {
    /// Takes the open windows of the keys this worker owns from every saved shard, and the
    /// marks of the first (every worker had the same).
    fn restore(&mut self, shards: Vec<Self>, owned: impl Fn(&K) -> bool) {
        for (i, shard) in shards.into_iter().enumerate() {
            if i == 0 {
                (self.marks, self.closed_upto) = (shard.marks, shard.closed_upto);
            }
            for (start, keys) in shard.open {
                let window = self.open.entry(start).or_default();
                window.extend(keys.into_iter().filter(|(k, _)| owned(k)));
            }
        }
        self.open.retain(|_, keys| !keys.is_empty());
    }
}

/// Extension trait for [`Tumbling::tumbling`], on a stream of [`WindowFact`]s.
pub trait Tumbling<'s, K, V> {
    /// Aggregates records into tumbling windows of `width` ms, emitting each window once it
    /// is final: `SELECT TUMBLE_START(..), key, A(value) .. GROUP BY TUMBLE(event_time, width), key`.
    ///
    /// `watermarks` are the source partitions' announcements (module docs); `topic` is the
    /// records' source topic: the operator publishes its progress under it ([`published`]).
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use dataflows::ops::window::{Count, Mark, Origin, Window, WindowFact, WindowOut};
    /// use dataflows::ops::Tumbling;
    /// use dataflows::{Pos, Topic};
    ///
    /// let fact = |event_time, offset| WindowFact {
    ///     key: 'a',
    ///     event_time,
    ///     value: (),
    ///     origin: Origin::at(Pos { partition: 0, offset }),
    /// };
    /// let captured = timely::example(move |scope| {
    ///     let records = vec![fact(1_000, 0), fact(59_999, 1), fact(60_000, 2)];
    ///     let watermarks = vec![(0u32, Mark::At(i64::MIN)), (0, Mark::At(i64::MAX))];
    ///     records
    ///         .to_stream(scope)
    ///         .tumbling::<Count>(watermarks.to_stream(scope), 60_000, Topic::Timeline, "Minute")
    ///         .inner
    ///         .capture()
    /// });
    /// let mut rows: Vec<_> = captured.extract().into_iter().flat_map(|(_, u)| u).map(|(d, _, r)| (d, r)).collect();
    /// rows.sort();
    /// let window = |start, aggregate| WindowOut::Closed(Window { start, key: 'a', aggregate });
    /// assert_eq!(rows, vec![(window(0, 2), 1), (window(60_000, 1), 1)]);
    /// ```
    fn tumbling<A: Aggregate<In = V>>(
        self,
        watermarks: StreamVec<'s, Time, (u32, Mark)>,
        width: i64,
        topic: Topic,
        name: &str,
    ) -> VecCollection<'s, Time, WindowOut<K, A::Out>, Diff>;
}

impl<'s, K, V> Tumbling<'s, K, V> for StreamVec<'s, Time, WindowFact<K, V>>
where
    K: ExchangeData + Hash + Hashable<Output = u64>,
    V: ExchangeData,
{
    #[inline]
    fn tumbling<A: Aggregate<In = V>>(
        self,
        watermarks: StreamVec<'s, Time, (u32, Mark)>,
        width: i64,
        topic: Topic,
        name: &str,
    ) -> VecCollection<'s, Time, WindowOut<K, A::Out>, Diff> {
        let pact = Exchange::new(|fact: &WindowFact<K, V>| fact.key.hashed());
        let scope = self.scope();
        let state_name = name.to_string();
        self.binary_frontier::<_, CapacityContainerBuilder<Vec<(WindowOut<K, A::Out>, Time, Diff)>>, _, _, _, _>(
            watermarks.broadcast(),
            pact,
            Pipeline,
            name,
            move |_cap, _info| {
                publish(topic, None);
                let mut records_by_time = Stash::new();
                let mut marks_by_time = Stash::new();
                let state: Rc<RefCell<WindowState<K, A>>> = Rc::default();
                if let Some((time, restored)) = durable::take::<WindowState<K, A>>(&state_name) {
                    let mut state = state.borrow_mut();
                    state.restore(restored, |key| durable::owned(key.hashed(), scope.index(), scope.peers()));
                    publish(topic, Some((time, state.closed_upto)));
                }
                let saved = Rc::clone(&state);
                durable::register(&state_name, Box::new(move || durable::encode(&*saved.borrow())));
                // Keys in the window closed last: a new window's map starts at that size, which
                // spares it most of its regrowth (rehashing was ~0.75 % of a worker's instructions).
                let mut last_keys = 0;
                move |(input1, frontier1), (input2, frontier2), output| {
                    let mut state = state.borrow_mut();
                    let WindowState { open, marks, closed_upto } = &mut *state;
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
                        if let Some((cap, mut batch)) = records_by_time.take(next) {
                            let mut late = output.session(&cap);
                            for WindowFact { key, event_time, value, origin } in batch.drain(..) {
                                // Sources only pass event times with a storable window (`storable_window`);
                                // saturating keeps any other in range.
                                let start = event_time.saturating_sub(event_time.rem_euclid(width));
                                // A window closes only when every partition's watermark passed it, and
                                // sources drop records behind their partition's watermark, so a record
                                // for a closed window cannot arrive from a live partition: only from one
                                // that went idle (SPEC §3) and resumed.
                                if start.saturating_add(width) <= *closed_upto {
                                    late.give((WindowOut::Late(origin), *cap.time(), 1));
                                    continue;
                                }
                                open.entry(start)
                                    .or_insert_with(|| HashMap::with_capacity_and_hasher(last_keys, Default::default()))
                                    .entry(key)
                                    .or_default()
                                    .add(value);
                            }
                            records_by_time.recycle(batch);
                        }
                        if let Some((cap, batch)) = marks_by_time.take(next) {
                            marks.extend(batch);
                            let watermark = watermark(marks.values().copied());
                            *closed_upto = (*closed_upto).max(watermark);
                            let mut session = output.session(&cap);
                            while let Some(entry) = open.first_entry() {
                                if entry.key().saturating_add(width) > *closed_upto {
                                    break;
                                }
                                let (start, keys) = entry.remove_entry();
                                last_keys = keys.len();
                                for (key, agg) in keys {
                                    let window = Window { start, key, aggregate: agg.finish() };
                                    session.give((WindowOut::Closed(window), *cap.time(), 1));
                                }
                            }
                        }
                        publish(topic, Some((next, *closed_upto)));
                    }
                }
            },
        )
        .as_collection()
    }
}
