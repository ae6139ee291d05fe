//! `edu-rtdw bench`: the in-memory throughput harness.
//!
//! The seeded sample (`connectors::sample::messages`, byte for byte what `gen`
//! writes) is generated once into memory, grouped by topic and partition, each
//! partition's values back to back in one buffer (as a source holds them). Each
//! run builds the full dataflow of all nine metrics (`dataflows::build`) over
//! the generic source pipeline of the file and Kafka sources
//! (`connectors::source`) reading the buffers ([`feed::MemoryLogs`]):
//! partitions round-robin over workers, logical time `offset / epoch_records`,
//! one epoch of every partition per activation, `+inf` watermark at the end,
//! at most `--max-inflight` epochs ahead of the last operator ([`pace`]); the
//! output rows are discarded (or written to SQLite with `--sqlite`).
//!
//! Reported per worker count: records/s (median of `--runs`), per-epoch
//! latency percentiles (hdrhistogram; from the moment a worker's source emits
//! the first record of an epoch to the moment the probe after the last
//! operator passes that epoch, so window rows count from the watermark that
//! closes them), and peak RSS (`VmHWM`, reset before each run). `--dedup-keys
//! N` adds a run of 2.7 over N distinct order ids and reports the resident
//! memory per live key. Everything is printed as text and as one JSON object
//! on the last line.

mod feed;
mod pace;

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Probe;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::probe::Handle as ProbeHandle;

use connectors::clock::Clock;
use connectors::fatal::Fatal;
use connectors::sample::{GenOptions, messages};
use connectors::sink::{SinkWriter, sink};
use connectors::source::{Epochs, SourceSettings, partitioned_source};
use connectors::sqlite::SqliteSink;
use dataflows::ingest::Delays;
use dataflows::{Time, Topic, build};

use feed::{Feed, MemoryLogs, Messages, Part};
use pace::{BenchPace, Waiting};

/// `edu-rtdw bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Sample size: about `scale × 10,000` records, generated in memory.
    #[arg(long, default_value_t = 30)]
    pub scale: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Partitions per topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Worker counts to measure, comma-separated.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    pub workers: Vec<usize>,
    /// Runs per configuration (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Records per partition per logical time (as `run --epoch-records`).
    #[arg(long, default_value_t = 4096)]
    pub epoch_records: u64,
    /// Most epochs a source may run ahead of the probe after the last operator.
    #[arg(long, default_value_t = 8)]
    pub max_inflight: u64,
    /// Also run each metric's topics alone.
    #[arg(long)]
    pub per_metric: bool,
    /// Also measure memory per live dedup key: 2.7 over this many distinct order ids (0: skip).
    #[arg(long, default_value_t = 0)]
    pub dedup_keys: u64,
    /// Write the rows to this SQLite file (a fresh file per run: PATH-<workers>-<run>) instead of discarding them.
    #[arg(long)]
    pub sqlite: Option<PathBuf>,
}

/// What one run measured.
struct RunResult {
    records: u64,
    seconds: f64,
    cpu: f64,
    latency: Histogram<u64>,
    peak_rss: u64,
    live_rss: Option<u64>,
    rows: u64,
}

/// `/proc/self/status` field in bytes (`VmHWM`, `VmRSS`).
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` 5), so each run reports its own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time of the whole process so far (user + system, every thread, those that ended
/// included), in seconds, to the microsecond (`getrusage`; `/proc/self/stat` counts in
/// 10 ms ticks, too coarse for the short per-metric runs). 0 if the call fails.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` fills the `rusage` it is pointed at (a valid, writable one here)
    // and reports failure by its return value; `rusage` is plain data, so the zeroed value
    // is a valid one to read even if it did not.
    let (ok, usage) = unsafe { (libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) == 0, usage.assume_init()) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    if ok { seconds(usage.ru_utime) + seconds(usage.ru_stime) } else { 0.0 }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// One run of the dataflow over `feed` with `workers` workers.
fn run_once(feed: &Feed, workers: usize, args: &BenchArgs, sqlite: Option<PathBuf>) -> anyhow::Result<RunResult> {
    let epoch_records = args.epoch_records.max(1);
    let max_inflight = args.max_inflight.max(1);
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?));
    let rows = Arc::new(Mutex::new(0u64));
    let live_rss = Arc::new(Mutex::new(None));
    let writer: Option<Box<dyn SinkWriter + Send>> = match &sqlite {
        Some(path) => Some(Box::new(SqliteSink::open(path)?)),
        None => None,
    };
    let writer = Arc::new(Mutex::new(writer));
    let feed_w = feed.clone();
    let (l2, r2, live2) = (Arc::clone(&latency), Arc::clone(&rows), Arc::clone(&live_rss));
    reset_peak();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let index = worker.index();
        let peers = worker.peers();
        let probe = ProbeHandle::<Time>::new();
        // The source does not spin while it waits (for the probe, or for the release): the
        // loop below wakes it when what it waits for happens.
        let waiting = Waiting::default();
        let mut local_rows = 0u64;
        let count = Rc::new(Cell::new(0u64));
        worker.dataflow::<Time, _, _>(|scope| {
            let pace = BenchPace { probe: probe.clone(), max_inflight, waiting: waiting.clone() };
            let logs = MemoryLogs::new(&feed_w, index, peers);
            let epochs = Epochs::Offsets(Arc::new(Clock::new(epoch_records)));
            let mut settings = SourceSettings::bounded("MemorySource", Delays::default(), epochs, Fatal::default());
            // One epoch of every partition per activation, as the file source with its default epoch size.
            settings.budget = usize::MAX;
            let inputs = partitioned_source(scope, logs, settings, pace);
            let rows = build(inputs).rows();
            let rows = rows.inner.probe_with(&probe);
            let count = Rc::clone(&count);
            rows.clone().sink(Pipeline, "Discard", move |(input, _)| {
                input.for_each(|_, data| count.set(count.get() + data.len() as u64));
            });
            let w = if index == 0 { writer.lock().expect("writer").take() } else { None };
            if sqlite.is_some() {
                use differential_dataflow::AsCollection;
                sink(
                    rows.as_collection(),
                    w,
                    dataflows::output::OutputSet::all(),
                    std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
                    "sqlite",
                    &Fatal::default(),
                );
            }
        });
        let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
        loop {
            let alive = worker.step_or_park(None);
            let now = Instant::now();
            let mut emitted = waiting.emitted.borrow_mut();
            while let Some(&(epoch, at)) = emitted.front() {
                if probe.less_equal(&epoch) {
                    break;
                }
                hist.saturating_record((now - at).as_micros() as u64);
                emitted.pop_front();
            }
            drop(emitted);
            if let Some(last) = waiting.hold.get() {
                // All input is in and the dataflow has passed every earlier time: the state is live and complete.
                if !waiting.release.get() && !probe.less_than(&last) {
                    if index == 0 {
                        *live2.lock().expect("rss") = Some(status_kb("VmRSS:"));
                    }
                    waiting.release.set(true);
                }
            }
            waiting.wake_if(&probe);
            if !alive {
                break;
            }
        }
        local_rows += count.get();
        l2.lock().expect("latency").add(&hist).expect("merge histograms");
        *r2.lock().expect("rows") += local_rows;
    })
    .map_err(|e| anyhow!("cannot start the cluster: {e}"))?;
    for g in guards.join() {
        g.map_err(|e| anyhow!(e))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let records = match &feed {
        Feed::Memory(parts, topics) => {
            parts.iter().filter(|p| topics.contains(&p.topic)).map(|p| p.values.len() as u64).sum()
        }
        Feed::Orders(n, _) => *n,
    };
    let latency = latency.lock().expect("latency").clone();
    let rows = *rows.lock().expect("rows");
    let live_rss = *live_rss.lock().expect("rss");
    Ok(RunResult { records, seconds, cpu, latency, peak_rss: status_kb("VmHWM:"), live_rss, rows })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What the runs of one worker count add up to.
struct Runs {
    workers: usize,
    rates: Vec<f64>,
    per_cpu: Vec<f64>,
    latency: Histogram<u64>,
    peak: u64,
    records: u64,
    rows: u64,
}

impl Runs {
    fn new(workers: usize) -> anyhow::Result<Self> {
        let latency = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
        Ok(Runs { workers, rates: Vec::new(), per_cpu: Vec::new(), latency, peak: 0, records: 0, rows: 0 })
    }

    fn add(&mut self, r: &RunResult) -> anyhow::Result<()> {
        self.rates.push(r.records as f64 / r.seconds);
        self.per_cpu.push(r.records as f64 / r.cpu.max(1e-6));
        self.latency.add(&r.latency)?;
        self.peak = self.peak.max(r.peak_rss);
        self.records = r.records;
        self.rows = r.rows;
        Ok(())
    }

    /// Prints the text line and returns the JSON object.
    fn report(&self, label: &str) -> Value {
        let (workers, records, rows) = (self.workers, self.records, self.rows);
        let rate = median(self.rates.clone());
        let rate_cpu = median(self.per_cpu.clone());
        let latency = &self.latency;
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{label:<34} -w {workers}: {rate:>10.0} records/s (median of {}; {rate_cpu:.0} records per CPU-second; {records} records, {rows} row updates) latency p50 {:.1} ms p99 {:.1} ms p99.9 {:.1} ms max {:.1} ms; peak RSS {:.0} MiB",
            self.rates.len(),
            ms(0.5),
            ms(0.99),
            ms(0.999),
            latency.max() as f64 / 1000.0,
            mib(self.peak)
        );
        json!({
            "workers": workers,
            "records": records,
            "row_updates": rows,
            "records_per_s": rate.round(),
            "records_per_cpu_s": rate_cpu.round(),
            "records_per_s_runs": self.rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
            "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": latency.max() as f64 / 1000.0, "epochs": latency.len()},
            "peak_rss_bytes": self.peak,
        })
    }
}

/// `runs` rounds over the worker counts, interleaved (round 1 with each count, then round 2, ...)
/// so that a machine whose speed drifts between minutes affects every count alike.
fn measure(feed: &Feed, workers: &[usize], args: &BenchArgs) -> anyhow::Result<Vec<Runs>> {
    let mut all = workers.iter().map(|&w| Runs::new(w)).collect::<anyhow::Result<Vec<_>>>()?;
    for run in 0..args.runs.max(1) {
        for runs in all.iter_mut() {
            let workers = runs.workers;
            let db = args.sqlite.as_ref().map(|p| {
                let path = PathBuf::from(format!("{}-{workers}-{run}", p.display()));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                path
            });
            runs.add(&run_once(feed, workers, args, db)?)?;
        }
    }
    Ok(all)
}

/// The median over rounds of 2-worker records/s divided by 1-worker records/s of the same round.
fn scaling(all: &[Runs]) -> Option<f64> {
    let one = all.iter().find(|r| r.workers == 1)?;
    let two = all.iter().find(|r| r.workers == 2)?;
    Some(median(two.rates.iter().zip(&one.rates).map(|(b, a)| b / a.max(1.0)).collect()))
}

/// The metric groups of `--per-metric`: label and the topics they read.
fn groups() -> Vec<(&'static str, Vec<Topic>)> {
    vec![
        ("2.1+2.3 timeline_client_topic", vec![Topic::Timeline]),
        ("2.2 channel_dim", vec![Topic::Channel]),
        ("2.4 offline_study_time", vec![Topic::Qos]),
        ("2.5 av_quality_30s", vec![Topic::Agora]),
        ("2.6 hourly_registrations (+2.2)", vec![Topic::Student, Topic::User, Topic::Channel]),
        ("2.7 daily_cc_confirmations", vec![Topic::Order]),
    ]
}

/// `edu-rtdw bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.workers.is_empty() || args.workers.contains(&0) {
        bail!("--workers needs positive worker counts");
    }
    // Measured first, in a fresh process, so that no freed memory of other runs is counted.
    let mut dedup = Value::Null;
    if args.dedup_keys > 0 {
        let n = args.dedup_keys;
        let single = BenchArgs { runs: 1, sqlite: None, ..args.clone() };
        let before = status_kb("VmRSS:");
        // First a quarter of the keys: the slope between the two runs excludes the fixed cost of
        // the runtime. In this order, because RSS never shrinks (the allocator keeps freed memory,
        // which the larger run then reuses).
        let small = run_once(&Feed::Orders(n / 4, args.partitions.max(1)), 1, &single, None)?;
        let small_live = small.live_rss.unwrap_or(small.peak_rss);
        let r = run_once(&Feed::Orders(n, args.partitions.max(1)), 1, &single, None)?;
        let live = r.live_rss.unwrap_or(r.peak_rss);
        let per_key_live = live.saturating_sub(before) as f64 / n as f64;
        let per_key_peak = r.peak_rss.saturating_sub(before) as f64 / n as f64;
        let marginal = live.saturating_sub(small_live) as f64 / (n - n / 4).max(1) as f64;
        println!(
            "dedup state (2.7, {n} distinct order ids, -w 1): {:.0} records/s; RSS {:.0} MiB before, {:.0} MiB with every key live, peak {:.0} MiB: {per_key_live:.0} bytes per live key ({per_key_peak:.0} at peak); {:.0} MiB live with {} keys: {marginal:.0} bytes per additional key",
            r.records as f64 / r.seconds,
            mib(before),
            mib(live),
            mib(r.peak_rss),
            mib(small_live),
            n / 4
        );
        dedup = json!({"metric": "daily_cc_confirmations", "keys": n, "records_per_s": (r.records as f64 / r.seconds).round(), "rss_before_bytes": before, "rss_live_bytes": live, "peak_rss_bytes": r.peak_rss, "bytes_per_live_key": per_key_live.round(), "bytes_per_key_at_peak": per_key_peak.round(), "bytes_per_additional_key": marginal.round()});
    }
    let generated = Instant::now();
    let opts = GenOptions { scale: args.scale, seed: args.seed, partitions: args.partitions };
    let mut by_part: std::collections::BTreeMap<(usize, u32), Messages> = Default::default();
    for m in messages(&opts) {
        let topic = Topic::from_name(m.topic).ok_or_else(|| anyhow!("unknown topic {}", m.topic))?;
        by_part.entry((topic as usize, m.partition)).or_default().push(&m.value);
    }
    let parts: Vec<Part> = by_part
        .into_iter()
        .map(|((t, partition), values)| Part { topic: Topic::ALL[t], partition, values: Arc::new(values) })
        .collect();
    let total: usize = parts.iter().map(|p| p.values.len()).sum();
    let bytes: usize = parts.iter().map(|p| p.values.bytes.len()).sum();
    println!(
        "edu-rtdw bench: {total} messages ({:.1} MiB of JSON) from gen --scale {} --seed {} --partitions {} in {:.1} s; epoch {} records/partition, {} runs each, sink {}",
        mib(bytes as u64),
        args.scale,
        args.seed,
        args.partitions,
        generated.elapsed().as_secs_f64(),
        args.epoch_records,
        args.runs,
        args.sqlite.as_ref().map_or("discarded".to_string(), |p| format!("SQLite {}", p.display()))
    );
    let parts = Arc::new(parts);
    let all = Feed::Memory(Arc::clone(&parts), Topic::ALL.to_vec());
    let runs = measure(&all, &args.workers, args)?;
    let full: Vec<Value> = runs.iter().map(|r| r.report("all nine metrics")).collect();
    let scaling = scaling(&runs);
    if let Some(s) = scaling {
        println!("2 workers / 1 worker: {s:.2}x (median over rounds of the ratio within a round; runs interleaved)");
    }
    let mut per_metric = Vec::new();
    if args.per_metric {
        for (label, topics) in groups() {
            let feed = Feed::Memory(Arc::clone(&parts), topics.clone());
            let by_workers: Vec<Value> = measure(&feed, &args.workers, args)?.iter().map(|r| r.report(label)).collect();
            per_metric.push(json!({"metric": label, "topics": topics.iter().map(|t| t.default_name()).collect::<Vec<_>>(), "runs": by_workers}));
        }
    }
    let report = json!({
        "bench": "in_memory_dataflow",
        "scale": args.scale,
        "seed": args.seed,
        "partitions": args.partitions,
        "messages": total,
        "json_bytes": bytes,
        "epoch_records": args.epoch_records,
        "max_inflight_epochs": args.max_inflight,
        "runs": args.runs,
        "sink": args.sqlite.as_ref().map_or("discarded".to_string(), |_| "sqlite".to_string()),
        "all_metrics": full,
        "w2_over_w1": scaling,
        "per_metric": per_metric,
        "dedup": dedup,
    });
    println!("{report}");
    Ok(())
}
