//! A small process-wide registry of operational metrics, rendered in the
//! Prometheus text format by the admin endpoint (`/metrics`).
//!
//! Sources report what they ingested ([`observe_partition`]: records read,
//! dead letters by reason, event-time watermarks), and the sink operator
//! reports commit latencies ([`observe_commit`]) and the net number of rows
//! per table it has seen complete ([`RowCounter`]). Everything is counted per
//! process: in a cluster each process exports its own share (its sources),
//! and process 0, which holds the sinks, exports the sink metrics.
//!
//! Updates take one short mutex lock per partition and epoch (sources) or per
//! commit (sinks), never per record.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dataflows::ingest::Input;
use dataflows::ops::window::Mark;
use dataflows::{Diff, OutputRow, Time, Topic};

use crate::tables::{table_index, ALL};

/// Upper bounds (seconds) of the commit latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// One sink's commit latency histogram.
#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Per bucket of [`LATENCY_BUCKETS`] (not cumulative), plus the overflow bucket.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = LATENCY_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// Everything the registry holds.
#[derive(Debug, Default)]
struct State {
    /// Records read per (topic, partition).
    records: BTreeMap<(&'static str, u32), u64>,
    /// Dead letters per (source, reason).
    dead: BTreeMap<(&'static str, String), u64>,
    /// The last announced watermark per (topic, partition), ms (`i64::MAX`: exhausted or idle).
    watermarks: BTreeMap<(&'static str, u32), i64>,
    /// Commit latency per sink.
    commits: BTreeMap<String, Histogram>,
    /// Net output rows per (sink, table).
    rows: BTreeMap<(String, &'static str), i64>,
    /// The last committed upper per sink.
    committed: BTreeMap<String, Time>,
}

fn state() -> MutexGuard<'static, State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    let lock = STATE.get_or_init(|| Mutex::new(State::default()));
    // A panic elsewhere while holding the lock leaves counters that are still usable.
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records that a source read `records` messages of `topic`/`partition` and produced `inputs`
/// (whose dead letters and watermarks are counted).
pub fn observe_partition(topic: Topic, partition: u32, records: u64, inputs: &[Input]) {
    add_records(topic, partition, records);
    observe_inputs(inputs);
}

/// Records that a source read `records` messages of `topic`/`partition`.
pub fn add_records(topic: Topic, partition: u32, records: u64) {
    if records > 0 {
        *state().records.entry((topic.default_name(), partition)).or_default() += records;
    }
}

/// Counts the dead letters and notes the watermarks among a source's `inputs`.
pub fn observe_inputs(inputs: &[Input]) {
    if !inputs.iter().any(|i| matches!(i, Input::Dead(_) | Input::Watermark(..))) {
        return;
    }
    let mut s = state();
    for input in inputs {
        match input {
            Input::Dead(d) => *s.dead.entry((d.source.default_name(), d.reason.clone())).or_default() += 1,
            Input::Watermark(t, p, mark) => {
                // The gauge shows an idle partition as +Inf, like an exhausted one: it holds nothing back.
                let w = match mark {
                    Mark::At(w) => *w,
                    Mark::Idle(_) => i64::MAX,
                };
                tracing::debug!(
                    topic = t.default_name(),
                    partition = *p,
                    watermark_ms = w,
                    idle = matches!(mark, Mark::Idle(_)),
                    "watermark announced (i64::MAX: exhausted)"
                );
                s.watermarks.insert((t.default_name(), *p), w);
            }
            _ => {}
        }
    }
}

/// Records one commit of sink `sink` that took `elapsed` and made `upper` durable.
pub fn observe_commit(sink: &str, elapsed: Duration, upper: Time) {
    let mut s = state();
    s.commits.entry(sink.to_string()).or_default().observe(elapsed.as_secs_f64());
    s.committed.insert(sink.to_string(), upper);
}

/// Counts a sink's output rows per table as their logical times complete.
#[derive(Debug, Default)]
pub struct RowCounter {
    /// Net row changes per time, per table.
    by_time: BTreeMap<Time, [i64; ALL.len()]>,
}

impl RowCounter {
    /// Notes one update.
    pub fn add(&mut self, row: &OutputRow, time: Time, diff: Diff) {
        self.by_time.entry(time).or_insert([0; ALL.len()])[table_index(row)] += diff as i64;
    }

    /// Adds every change at a time before `upper` (all of them when `None`) to sink `sink`'s row counts.
    pub fn flush(&mut self, sink: &str, upper: Option<Time>) {
        let later = match upper {
            Some(u) => self.by_time.split_off(&u),
            None => BTreeMap::new(),
        };
        let done = std::mem::replace(&mut self.by_time, later);
        if done.is_empty() {
            return;
        }
        let mut s = state();
        for changes in done.values() {
            for (table, n) in ALL.iter().zip(changes) {
                *s.rows.entry((sink.to_string(), table.name)).or_default() += n;
            }
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn render_sources(s: &State, out: &mut String) {
    header(out, "edu_rtdw_records_read_total", "counter", "Messages read per source partition.");
    for ((topic, p), n) in &s.records {
        let _ = writeln!(out, "edu_rtdw_records_read_total{{source=\"{topic}\",partition=\"{p}\"}} {n}");
    }
    header(out, "edu_rtdw_dead_letters_total", "counter", "Dead letters per source and reason.");
    for ((source, reason), n) in &s.dead {
        let _ = writeln!(out, "edu_rtdw_dead_letters_total{{source=\"{source}\",reason=\"{}\"}} {n}", label(reason));
    }
    header(
        out,
        "edu_rtdw_watermark_ms",
        "gauge",
        "Event-time watermark per source partition, ms since the epoch (+Inf: exhausted or idle).",
    );
    for ((topic, p), w) in &s.watermarks {
        let v = if *w == i64::MAX { "+Inf".to_string() } else { w.to_string() };
        let _ = writeln!(out, "edu_rtdw_watermark_ms{{source=\"{topic}\",partition=\"{p}\"}} {v}");
    }
    header(
        out,
        "edu_rtdw_watermark_lag_seconds",
        "gauge",
        "Wall-clock time minus the watermark, per live source partition.",
    );
    let now = now_millis();
    for ((topic, p), w) in s.watermarks.iter().filter(|(_, w)| **w != i64::MAX && **w != i64::MIN) {
        let lag = (now.saturating_sub(*w)) as f64 / 1000.0;
        let _ = writeln!(out, "edu_rtdw_watermark_lag_seconds{{source=\"{topic}\",partition=\"{p}\"}} {lag:.3}");
    }
}

fn render_sinks(s: &State, out: &mut String) {
    header(out, "edu_rtdw_sink_commit_seconds", "histogram", "Sink commit latency.");
    for (sink, h) in &s.commits {
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
            cumulative += n;
            let _ = writeln!(out, "edu_rtdw_sink_commit_seconds_bucket{{sink=\"{sink}\",le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "edu_rtdw_sink_commit_seconds_bucket{{sink=\"{sink}\",le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "edu_rtdw_sink_commit_seconds_sum{{sink=\"{sink}\"}} {:.6}", h.sum);
        let _ = writeln!(out, "edu_rtdw_sink_commit_seconds_count{{sink=\"{sink}\"}} {}", h.count);
    }
    header(out, "edu_rtdw_sink_committed_upper", "gauge", "Logical-time frontier each sink has committed.");
    for (sink, upper) in &s.committed {
        let _ = writeln!(out, "edu_rtdw_sink_committed_upper{{sink=\"{sink}\"}} {upper}");
    }
    header(out, "edu_rtdw_output_rows", "gauge", "Rows per output table as of the sink's completed logical times.");
    for ((sink, table), n) in &s.rows {
        let _ = writeln!(out, "edu_rtdw_output_rows{{sink=\"{sink}\",table=\"{table}\"}} {n}");
    }
}

/// The whole registry in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let s = state();
    let mut out = String::new();
    render_sources(&s, &mut out);
    render_sinks(&s, &mut out);
    drop(s);
    crate::latency::render(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        observe_commit("test_sink", Duration::from_millis(3), 4);
        observe_commit("test_sink", Duration::from_secs(20), 5);
        let text = render();
        assert!(text.contains("edu_rtdw_sink_commit_seconds_bucket{sink=\"test_sink\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("edu_rtdw_sink_commit_seconds_bucket{sink=\"test_sink\",le=\"10\"} 1"), "{text}");
        assert!(text.contains("edu_rtdw_sink_commit_seconds_bucket{sink=\"test_sink\",le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("edu_rtdw_sink_committed_upper{sink=\"test_sink\"} 5"), "{text}");
    }

    #[test]
    fn watermarks_and_their_lag() {
        let an_hour_ago = now_millis() - 3_600_000;
        observe_inputs(&[
            Input::Watermark(Topic::Agora, 97, Mark::At(an_hour_ago)),
            Input::Watermark(Topic::Agora, 98, Mark::At(i64::MAX)),
        ]);
        let text = render();
        assert!(
            text.contains(&format!("edu_rtdw_watermark_ms{{source=\"agora_record\",partition=\"97\"}} {an_hour_ago}")),
            "{text}"
        );
        assert!(text.contains("edu_rtdw_watermark_ms{source=\"agora_record\",partition=\"98\"} +Inf"), "{text}");
        let lag = text
            .lines()
            .find_map(|l| l.strip_prefix("edu_rtdw_watermark_lag_seconds{source=\"agora_record\",partition=\"97\"} "))
            .expect("lag");
        let lag: f64 = lag.parse().expect("number");
        assert!((3600.0..3660.0).contains(&lag), "{lag}");
        assert!(
            !text.contains("edu_rtdw_watermark_lag_seconds{source=\"agora_record\",partition=\"98\"}"),
            "no lag for an exhausted partition"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
