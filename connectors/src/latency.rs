//! End-to-end latency accounting (`run --latency-report FILE`, issue 6).
//!
//! Latency of a record = wall time at which the last sink committed the
//! logical time that holds the record's effects − the record's Kafka
//! timestamp (CreateTime, which `gen --brokers --rate` sets to the record's
//! *scheduled* send time, so a slow pipeline cannot hide its queueing:
//! no coordinated omission). For windowed metrics this is the commit of the
//! transaction that includes the record, not the window's close.
//!
//! Sources note, per logical time, the timestamps of the records they assign
//! to it ([`Stamps`], flushed with one lock per source activation); every
//! sink reports each committed upper ([`committed`]); once all registered
//! sinks hold a time, its records are counted into one histogram with `now −
//! timestamp` (ms). Everything is per process (in a cluster, process 0 holds
//! the sinks and sees only its own sources' records). When the feature is
//! off (the default) sources skip it after one relaxed atomic load per
//! activation and sinks after one per commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use hdrhistogram::Histogram;

use dataflows::Time;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the accounting on (before the dataflow starts).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether the accounting is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Record timestamps per logical time: `time -> (timestamp ms -> count)`, and how long
/// records took to reach the source (`read − timestamp` ms -> count).
#[derive(Debug, Default)]
pub struct Stamps {
    by_time: BTreeMap<Time, HashMap<i64, u64>>,
    read: HashMap<i64, u64>,
}

impl Stamps {
    /// Notes one record with timestamp `ts_ms`, read at `read_ms`, at logical time `time`.
    pub fn note(&mut self, time: Time, ts_ms: i64, read_ms: i64) {
        *self.by_time.entry(time).or_default().entry(ts_ms).or_default() += 1;
        *self.read.entry(read_ms - ts_ms).or_default() += 1;
    }

    /// Hands everything noted so far to the process registry.
    pub fn flush(&mut self) {
        if self.by_time.is_empty() {
            return;
        }
        let mut r = registry();
        for (latency, n) in self.read.drain() {
            let _ = r.read.record_n(latency.clamp(0, 86_400_000) as u64, n);
        }
        for (time, stamps) in std::mem::take(&mut self.by_time) {
            let slot = r.pending.entry(time).or_default();
            for (ts, n) in stamps {
                *slot.entry(ts).or_default() += n;
            }
        }
    }
}

/// The process-wide state.
struct Registry {
    /// Records' timestamps per logical time not yet committed by every sink.
    pending: BTreeMap<Time, HashMap<i64, u64>>,
    /// The committed upper of every registered sink.
    sinks: Vec<Time>,
    /// Every time below this is counted.
    done: Time,
    /// Latency in ms (a zero latency is counted as 0).
    hist: Histogram<u64>,
    /// Time from the record's timestamp to its read by the source, ms.
    read: Histogram<u64>,
    /// Records whose timestamp lies after their commit (clock trouble), counted as 0 ms.
    negative: u64,
    /// Wall time of the first and the last commit that counted records (ms).
    first_commit_ms: Option<i64>,
    last_commit_ms: Option<i64>,
    /// Smallest and largest record timestamp counted.
    min_ts: Option<i64>,
    max_ts: Option<i64>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    let lock = R.get_or_init(|| {
        Mutex::new(Registry {
            pending: BTreeMap::new(),
            sinks: Vec::new(),
            done: 0,
            hist: Histogram::new_with_bounds(1, 86_400_000, 3).expect("valid histogram bounds"),
            read: Histogram::new_with_bounds(1, 86_400_000, 3).expect("valid histogram bounds"),
            negative: 0,
            first_commit_ms: None,
            last_commit_ms: None,
            min_ts: None,
            max_ts: None,
        })
    });
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a sink whose commits hold records back; returns its id for [`committed`].
pub fn register_sink(committed_upper: Time) -> usize {
    let mut r = registry();
    r.sinks.push(committed_upper);
    r.sinks.len() - 1
}

/// Sink `id` has committed every time below `upper`, now.
pub fn committed(id: usize, upper: Time) {
    committed_at(id, upper, crate::wall_clock::now_millis());
}

/// [`committed`] at wall time `now` (ms); for tests.
pub fn committed_at(id: usize, upper: Time, now: i64) {
    let mut r = registry();
    let Some(slot) = r.sinks.get_mut(id) else { return };
    *slot = (*slot).max(upper);
    let durable = r.sinks.iter().copied().min().unwrap_or(0);
    if durable <= r.done {
        return;
    }
    r.done = durable;
    let later = r.pending.split_off(&durable);
    let ready = std::mem::replace(&mut r.pending, later);
    let mut counted = false;
    for stamps in ready.into_values() {
        for (ts, n) in stamps {
            let latency = now - ts;
            if latency < 0 {
                r.negative += n;
            }
            let clamped = latency.clamp(0, 86_400_000) as u64;
            let _ = r.hist.record_n(clamped, n);
            r.min_ts = Some(r.min_ts.map_or(ts, |m| m.min(ts)));
            r.max_ts = Some(r.max_ts.map_or(ts, |m| m.max(ts)));
            counted = true;
        }
    }
    if counted {
        r.first_commit_ms.get_or_insert(now);
        r.last_commit_ms = Some(now);
    }
}

/// What the accounting measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Records counted (committed by every sink).
    pub records: u64,
    /// Records still waiting for a commit.
    pub pending: u64,
    /// Records whose timestamp was after their commit (counted as 0 ms).
    pub negative: u64,
    /// Latency percentiles and extremes, ms.
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub p99_ms: u64,
    pub p999_ms: u64,
    pub max_ms: u64,
    pub mean_ms: f64,
    /// Of which, from the timestamp to the read by the source (Kafka's share): p50, p99, p999, max.
    pub read_ms: [u64; 4],
    /// Wall time of the first and last commit that counted records, ms since the epoch.
    pub first_commit_ms: Option<i64>,
    pub last_commit_ms: Option<i64>,
    /// Smallest and largest record timestamp counted, ms since the epoch.
    pub min_ts_ms: Option<i64>,
    pub max_ts_ms: Option<i64>,
}

impl Report {
    /// Records per second from the first record's timestamp to the last commit.
    pub fn sustained_per_s(&self) -> Option<f64> {
        let span = self.last_commit_ms? - self.min_ts_ms?;
        (span > 0).then(|| self.records as f64 * 1000.0 / span as f64)
    }

    /// One JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "records": self.records,
            "pending": self.pending,
            "negative": self.negative,
            "latency_ms": {"p50": self.p50_ms, "p90": self.p90_ms, "p99": self.p99_ms, "p999": self.p999_ms, "max": self.max_ms, "mean": self.mean_ms},
            "read_latency_ms": {"p50": self.read_ms[0], "p99": self.read_ms[1], "p999": self.read_ms[2], "max": self.read_ms[3]},
            "first_commit_ms": self.first_commit_ms,
            "last_commit_ms": self.last_commit_ms,
            "min_ts_ms": self.min_ts_ms,
            "max_ts_ms": self.max_ts_ms,
            "sustained_records_per_s": self.sustained_per_s(),
        })
    }
}

/// The accounting so far.
pub fn report() -> Report {
    let r = registry();
    let h = &r.hist;
    let q = |p: f64| if h.is_empty() { 0 } else { h.value_at_quantile(p) };
    let rq = |p: f64| if r.read.is_empty() { 0 } else { r.read.value_at_quantile(p) };
    Report {
        records: h.len(),
        pending: r.pending.values().flat_map(|m| m.values()).sum(),
        negative: r.negative,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: if h.is_empty() { 0 } else { h.max() },
        mean_ms: if h.is_empty() { 0.0 } else { h.mean() },
        read_ms: [rq(0.5), rq(0.99), rq(0.999), if r.read.is_empty() { 0 } else { r.read.max() }],
        first_commit_ms: r.first_commit_ms,
        last_commit_ms: r.last_commit_ms,
        min_ts_ms: r.min_ts,
        max_ts_ms: r.max_ts,
    }
}

/// Renders the accounting for `/metrics` (nothing when it is off).
pub fn render(out: &mut String) {
    use std::fmt::Write as _;
    if !enabled() {
        return;
    }
    let r = report();
    let _ = writeln!(
        out,
        "# HELP edu_rtdw_e2e_latency_ms End-to-end latency (record timestamp to last sink commit), ms.\n# TYPE edu_rtdw_e2e_latency_ms summary"
    );
    for (q, v) in [("0.5", r.p50_ms), ("0.99", r.p99_ms), ("0.999", r.p999_ms)] {
        let _ = writeln!(out, "edu_rtdw_e2e_latency_ms{{quantile=\"{q}\"}} {v}");
    }
    let _ = writeln!(out, "edu_rtdw_e2e_latency_ms_count {}", r.records);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry is process-wide: this is the only test that touches it.
    #[test]
    fn records_are_counted_once_every_sink_committed_their_time() {
        let a = register_sink(0);
        let b = register_sink(0);
        let mut stamps = Stamps::default();
        // Times 0 and 1: three records at t0 = 1000 ms, two at 1100 ms (time 1), one at 1200 (time 2).
        for _ in 0..3 {
            stamps.note(0, 1_000, 1_050);
        }
        stamps.note(1, 1_100, 1_150);
        stamps.note(1, 1_100, 1_150);
        stamps.note(2, 1_200, 1_250);
        stamps.flush();
        assert_eq!(report().pending, 6);
        committed_at(a, 2, 1_300);
        assert_eq!(report().records, 0, "sink b has committed nothing yet");
        committed_at(b, 1, 1_400);
        let r = report();
        assert_eq!((r.records, r.pending), (3, 3), "time 0 is committed by both");
        assert_eq!(r.max_ms, 400);
        committed_at(b, 3, 1_500);
        assert_eq!((report().records, report().pending), (5, 1), "time 2 waits for sink a");
        committed_at(a, 3, 1_500);
        let r = report();
        assert_eq!((r.records, r.pending, r.negative), (6, 0, 0));
        // Latencies: 400 ×3, 400 ×2 (1500 − 1100), 300 ×1.
        assert_eq!(r.p50_ms, 400);
        assert_eq!(r.max_ms, 400);
        assert_eq!(r.first_commit_ms, Some(1_400));
        assert_eq!(r.last_commit_ms, Some(1_500));
        assert_eq!((r.min_ts_ms, r.max_ts_ms), (Some(1_000), Some(1_200)));
        assert_eq!(r.read_ms, [50, 50, 50, 50]);
        // A commit never counts a record twice, and a timestamp after the commit counts as 0.
        committed_at(a, 3, 1_600);
        assert_eq!(report().records, 6);
        stamps.note(3, 2_000, 2_000);
        stamps.flush();
        committed_at(a, 4, 1_700);
        committed_at(b, 4, 1_700);
        let r = report();
        assert_eq!((r.records, r.negative), (7, 1));
        assert!(r.sustained_per_s().is_some_and(|s| s > 0.0));
    }
}
