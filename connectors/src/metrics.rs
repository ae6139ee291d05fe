//! The process-wide registry of operational metrics (on the `prometheus`
//! crate), rendered in the Prometheus text format by the admin endpoint
//! (`/metrics`).
//!
//! Sources report what they ingested ([`observe_partition`]: records read,
//! dead letters by reason, event-time watermarks), and the sink operator
//! reports commit latencies ([`observe_commit`]) and the net number of rows
//! per table it has seen complete ([`RowCounter`]); the admin endpoint adds
//! its snapshot sizes ([`observe_snapshot`]). Everything is counted per
//! process: in a cluster each process exports its own share (its sources),
//! and process 0, which holds the sinks, exports the sink metrics.
//!
//! Updates look their series up once per partition and batch (sources) or
//! per commit (sinks), never per record, except one lookup per dead letter;
//! a lookup of an existing series takes a shared read lock and allocates
//! nothing.
//!
//! The text is written here rather than by `prometheus::TextEncoder`, which
//! sorts labels by name (`partition` before `source`) and prints an infinite
//! gauge as `inf`: the text keeps each family's label order and prints an
//! exhausted or idle watermark as `+Inf`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::proto::{Metric, MetricFamily, MetricType};
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

use dataflows::ingest::Input;
use dataflows::ops::window::Mark;
use dataflows::{Diff, OutputRow, Time, Topic};

use crate::tables::{ALL, table_index};

/// Upper bounds (seconds) of the commit latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Every family of the registry, in the order `/metrics` lists them.
struct Registry {
    /// Messages read per (source, partition).
    records: IntCounterVec,
    /// Dead letters per (source, reason).
    dead: IntCounterVec,
    /// The last announced watermark per (source, partition), ms (+Inf: exhausted or idle).
    watermarks: GaugeVec,
    /// Wall clock minus the watermark per live (source, partition), set when rendering.
    lag: GaugeVec,
    /// Commit latency per sink.
    commits: HistogramVec,
    /// The last committed upper per sink.
    committed: IntGaugeVec,
    /// Net output rows per (sink, table).
    rows: IntGaugeVec,
    /// Rows per metric in the admin endpoint's snapshot.
    snapshot_rows: IntGaugeVec,
    /// The snapshot's logical frontier (no labels).
    snapshot_upper: IntGaugeVec,
    /// Whether the admin endpoint maintains a snapshot (its two families are listed only then).
    snapshots: AtomicBool,
    /// The last complete checkpoint: `time`, `bytes`, `seconds` (freeze to manifest) and
    /// `pause_seconds` (sources held).
    checkpoint: IntGaugeVec,
    checkpoint_seconds: GaugeVec,
}

/// Builds a family; its name, help and labels are constants of this module.
fn family<T>(made: prometheus::Result<T>) -> T {
    made.expect("a valid metric family")
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let opts = Opts::new;
        let commits = HistogramOpts::new("edu_rtdw_sink_commit_seconds", "Sink commit latency.")
            .buckets(LATENCY_BUCKETS.to_vec());
        Registry {
            records: family(IntCounterVec::new(
                opts("edu_rtdw_records_read_total", "Messages read per source partition."),
                &["source", "partition"],
            )),
            dead: family(IntCounterVec::new(
                opts("edu_rtdw_dead_letters_total", "Dead letters per source and reason."),
                &["source", "reason"],
            )),
            watermarks: family(GaugeVec::new(
                opts(
                    "edu_rtdw_watermark_ms",
                    "Event-time watermark per source partition, ms since the epoch (+Inf: exhausted or idle).",
                ),
                &["source", "partition"],
            )),
            lag: family(GaugeVec::new(
                opts(
                    "edu_rtdw_watermark_lag_seconds",
                    "Wall-clock time minus the watermark, per live source partition.",
                ),
                &["source", "partition"],
            )),
            commits: family(HistogramVec::new(commits, &["sink"])),
            committed: family(IntGaugeVec::new(
                opts("edu_rtdw_sink_committed_upper", "Logical-time frontier each sink has committed."),
                &["sink"],
            )),
            rows: family(IntGaugeVec::new(
                opts("edu_rtdw_output_rows", "Rows per output table as of the sink's completed logical times."),
                &["sink", "table"],
            )),
            snapshot_rows: family(IntGaugeVec::new(
                opts(
                    "edu_rtdw_snapshot_rows",
                    "Rows per metric in the snapshot, consistent at edu_rtdw_snapshot_upper.",
                ),
                &["metric"],
            )),
            snapshot_upper: family(IntGaugeVec::new(
                opts("edu_rtdw_snapshot_upper", "Logical frontier of the snapshot."),
                &[],
            )),
            snapshots: AtomicBool::new(false),
            checkpoint: family(IntGaugeVec::new(
                opts("edu_rtdw_checkpoint", "The last complete checkpoint: its logical time and its size in bytes."),
                &["field"],
            )),
            checkpoint_seconds: family(GaugeVec::new(
                opts(
                    "edu_rtdw_checkpoint_seconds",
                    "The last complete checkpoint: from holding the sources to its manifest (total), and how long \
                     the sources were held (pause).",
                ),
                &["phase"],
            )),
        }
    })
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
        let mut p = itoa::Buffer::new();
        registry().records.with_label_values(&[topic.default_name(), p.format(partition)]).inc_by(records);
    }
}

/// Counts the dead letters and notes the watermarks among a source's `inputs`.
pub fn observe_inputs(inputs: &[Input]) {
    if !inputs.iter().any(|i| matches!(i, Input::Dead(_) | Input::Watermark(..))) {
        return;
    }
    let r = registry();
    for input in inputs {
        match input {
            Input::Dead(d) => r.dead.with_label_values(&[d.source.default_name(), d.reason.as_str()]).inc(),
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
                let value = if w == i64::MAX { f64::INFINITY } else { w as f64 };
                let mut partition = itoa::Buffer::new();
                r.watermarks.with_label_values(&[t.default_name(), partition.format(*p)]).set(value);
            }
            _ => {}
        }
    }
}

/// Records one commit of sink `sink` that took `elapsed` and made `upper` durable.
pub fn observe_commit(sink: &str, elapsed: Duration, upper: Time) {
    let r = registry();
    r.commits.with_label_values(&[sink]).observe(elapsed.as_secs_f64());
    r.committed.with_label_values(&[sink]).set(i64::try_from(upper).unwrap_or(i64::MAX));
}

/// Sets the admin endpoint's snapshot sizes: `(metric, rows)` and the snapshot's frontier `upper`.
pub fn observe_snapshot<'a>(rows: impl IntoIterator<Item = (&'a str, usize)>, upper: Time) {
    let r = registry();
    for (metric, n) in rows {
        r.snapshot_rows.with_label_values(&[metric]).set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    r.snapshot_upper.with_label_values::<&str>(&[]).set(i64::try_from(upper).unwrap_or(i64::MAX));
    r.snapshots.store(true, Ordering::Relaxed);
}

/// Records a complete checkpoint at `time` of `bytes`, written in `total`, during which the
/// sources were held for `pause`.
pub fn observe_checkpoint(time: Time, bytes: u64, total: Duration, pause: Duration) {
    let r = registry();
    r.checkpoint.with_label_values(&["time"]).set(i64::try_from(time).unwrap_or(i64::MAX));
    r.checkpoint.with_label_values(&["bytes"]).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    r.checkpoint_seconds.with_label_values(&["total"]).set(total.as_secs_f64());
    r.checkpoint_seconds.with_label_values(&["pause"]).set(pause.as_secs_f64());
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
        let mut totals = [0i64; ALL.len()];
        for changes in done.values() {
            for (total, n) in totals.iter_mut().zip(changes) {
                *total += n;
            }
        }
        let rows = &registry().rows;
        for (table, n) in ALL.iter().zip(totals) {
            rows.with_label_values(&[sink, table.name]).add(n);
        }
    }
}

/// Sets the lag gauges from the watermarks, now: live partitions only (neither +Inf nor the initial minimum).
fn update_lag(r: &Registry) {
    r.lag.reset();
    let now = crate::wall_clock::now_millis();
    for family in r.watermarks.collect() {
        for m in family.get_metric() {
            let w = m.get_gauge().get_value();
            if w.is_finite() && w != i64::MIN as f64 {
                let labels = ["source", "partition"].map(|n| label_value(m, n));
                r.lag.with_label_values(&labels).set(now.saturating_sub(w as i64) as f64 / 1000.0);
            }
        }
    }
}

/// The value of `m`'s label `name` (empty if it has none).
fn label_value<'m>(m: &'m Metric, name: &str) -> &'m str {
    m.get_label().iter().find(|l| l.name() == name).map_or("", |l| l.value())
}

/// A sample value: `+Inf`/`-Inf`, an integer without a fraction, else the shortest decimal.
fn value(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 9.3e18 {
        return (v as i64).to_string();
    }
    v.to_string()
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `{a="x",b="y"}` in the order of `names`, plus `extra` last (a histogram's `le`); empty without labels.
fn labels(m: &Metric, names: &[String], extra: Option<(&str, &str)>) -> String {
    let mut pairs: Vec<String> = names.iter().map(|n| format!("{n}=\"{}\"", label(label_value(m, n)))).collect();
    pairs.extend(extra.map(|(n, v)| format!("{n}=\"{v}\"")));
    if pairs.is_empty() { String::new() } else { format!("{{{}}}", pairs.join(",")) }
}

/// Writes one family: its `# HELP` and `# TYPE` lines, then its series sorted by label values.
fn write_family(out: &mut String, collector: &impl Collector) {
    for family in collector.collect() {
        let names: Vec<String> = collector.desc().first().map(|d| d.variable_labels.clone()).unwrap_or_default();
        write_series(out, &family, &names);
    }
}

fn write_series(out: &mut String, family: &MetricFamily, names: &[String]) {
    let name = family.name();
    let kind = match family.get_field_type() {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        _ => "untyped",
    };
    let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", family.help());
    let mut series: Vec<(String, &Metric)> = family.get_metric().iter().map(|m| (labels(m, names, None), m)).collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    for (text, m) in series {
        match family.get_field_type() {
            MetricType::COUNTER => {
                let _ = writeln!(out, "{name}{text} {}", value(m.get_counter().get_value()));
            }
            MetricType::HISTOGRAM => {
                let h = m.get_histogram();
                for b in h.get_bucket() {
                    let le = labels(m, names, Some(("le", &b.upper_bound().to_string())));
                    let _ = writeln!(out, "{name}_bucket{le} {}", b.cumulative_count());
                }
                let inf = labels(m, names, Some(("le", "+Inf")));
                let _ = writeln!(out, "{name}_bucket{inf} {}", h.get_sample_count());
                let _ = writeln!(out, "{name}_sum{text} {}", value(h.get_sample_sum()));
                let _ = writeln!(out, "{name}_count{text} {}", h.get_sample_count());
            }
            _ => {
                let _ = writeln!(out, "{name}{text} {}", value(m.get_gauge().get_value()));
            }
        }
    }
}

/// The whole registry in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let r = registry();
    update_lag(r);
    let mut out = String::new();
    write_family(&mut out, &r.records);
    write_family(&mut out, &r.dead);
    write_family(&mut out, &r.watermarks);
    write_family(&mut out, &r.lag);
    write_family(&mut out, &r.commits);
    write_family(&mut out, &r.committed);
    write_family(&mut out, &r.rows);
    if r.snapshots.load(Ordering::Relaxed) {
        write_family(&mut out, &r.snapshot_rows);
        write_family(&mut out, &r.snapshot_upper);
    }
    write_family(&mut out, &r.checkpoint);
    write_family(&mut out, &r.checkpoint_seconds);
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
        let an_hour_ago = crate::wall_clock::now_millis() - 3_600_000;
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
