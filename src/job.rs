//! The job: settings, cluster launch, sources, sinks, and the summary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use connectors::clock::{Clock, Resume};
use connectors::fatal::Fatal;
use connectors::files::{PartitionFile, assigned, count_lines, discover, file_source};
use connectors::identity::InputIdentity;
use connectors::kafka::{self, KafkaConfig, KafkaPartition, KafkaSink, OffsetCommitter, SourceOptions, kafka_source};
use connectors::sample::live::{LiveFeed, LiveOptions, live_source};
use connectors::sample::{GenOptions, write_files};
use connectors::sink::{SinkWriter, sink};
use connectors::source::{InFlight, SourceShared};
use connectors::sqlite::SqliteSink;
use dataflows::durable::Restored;
use dataflows::ingest::Delays;
use dataflows::output::OutputSet;
use dataflows::{Time, build_with};
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::vec::ToStream;
use timely::dataflow::operators::{Exchange, Inspect, Probe};

use crate::checkpoint::Plan;
use crate::cli::{Cli, ClusterArgs, Command, DemoArgs, GenArgs, InitDbArgs, RunArgs};
use crate::config::{Settings, SinkKind};
use crate::serving::peek::WorkerServing;

/// Where sample data goes when `run` is given no input.
const SAMPLE_DIR: &str = "sample-data";

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Gen(args)) => generate(&args),
        Some(Command::InitDb(args)) => init_db(&args),
        Some(Command::Bench(args)) => crate::bench::run(&args),
        Some(Command::Query(args)) => crate::query::run(&args),
        Some(Command::Run(args)) => run(&cli.cluster, &args, None),
        Some(Command::Demo(args)) => demo(&cli.cluster, &args),
        None => run(&cli.cluster, &RunArgs::defaults(), None),
    }
}

fn generate(args: &GenArgs) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let opts = GenOptions { scale: args.scale, seed: args.seed, partitions: args.partitions };
    if let Some(brokers) = &args.brokers {
        let properties = args.kafka_properties.iter().cloned().collect();
        let cfg = KafkaConfig { brokers: brokers.clone(), properties, group_id: "edu-rtdw-gen".to_string() };
        let started = Instant::now();
        let produced = kafka::produce_sample(&cfg, &opts, |t| format!("{}{t}", args.topic_prefix), args.rate)?;
        let (sent, secs) = (produced.sent, started.elapsed().as_secs_f64());
        write!(
            stdout,
            "{sent:>10}  records produced to {brokers} in {secs:.2} s ({:.0} records/s)",
            sent as f64 / secs.max(1e-9)
        )?;
        match args.rate {
            Some(_) => {
                writeln!(stdout, "; at most {} ms behind the open-loop schedule", produced.max_behind.as_millis())?
            }
            None => writeln!(stdout)?,
        }
        return Ok(());
    }
    let out = args.out.as_ref().context("--out DIR or --brokers HOST:PORT is required")?;
    let report = write_files(out, &opts)?;
    for (topic, n) in &report.per_topic {
        writeln!(stdout, "{n:>10}  {topic}")?;
    }
    writeln!(stdout, "{:>10}  records in {}", report.total, out.display())?;
    Ok(())
}

fn timely_config(cluster: &ClusterArgs) -> anyhow::Result<timely::Config> {
    if cluster.process >= cluster.processes.max(1) {
        bail!("-p {} is out of range for -n {}", cluster.process, cluster.processes);
    }
    timely::Config::from_args(cluster.timely_args().into_iter()).map_err(|e| anyhow!("bad cluster flags: {e}"))
}

/// The configuration file overridden by flags.
fn settings(args: &RunArgs) -> anyhow::Result<Settings> {
    Settings::load(args.config.as_deref())?.overridden_by(&args.settings, &args.given)
}

/// The input directory, generating the sample when none was given and none exists.
fn input_dir(settings: &Settings) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &settings.input.input_dir {
        return Ok(dir.clone());
    }
    let dir = PathBuf::from(SAMPLE_DIR);
    if !dir.is_dir() {
        let opts = GenOptions::default();
        writeln!(
            std::io::stdout(),
            "generating sample data (scale {}, seed {}) into {}/",
            opts.scale,
            opts.seed,
            dir.display()
        )?;
        write_files(&dir, &opts)?;
    }
    Ok(dir)
}

/// Every sink some table is routed to, with its table mask (the same on every worker).
fn sink_masks(settings: &Settings) -> Vec<(SinkKind, OutputSet)> {
    [SinkKind::Sqlite, SinkKind::Mysql, SinkKind::Postgres, SinkKind::Kafka]
        .into_iter()
        .map(|kind| (kind, settings.outputs_of(kind)))
        // The SQLite file also keeps the input clock, so it is always opened.
        .filter(|(kind, outputs)| *kind == SinkKind::Sqlite || !outputs.is_empty())
        .collect()
}

/// Opens the writers of `sinks` (on process 0 only: the sinks live on worker 0).
///
/// `resume`: where the next run's clock starts, for a bounded input; the SQLite
/// sink records it with its final commit.
fn open_sinks(
    settings: &Settings,
    sinks: &[(SinkKind, OutputSet)],
    resume: Option<Resume>,
) -> anyhow::Result<Vec<Box<dyn SinkWriter + Send>>> {
    let mut writers: Vec<Box<dyn SinkWriter + Send>> = Vec::new();
    for (kind, _) in sinks {
        let writer: Box<dyn SinkWriter + Send> = match kind {
            SinkKind::Sqlite => {
                let mut sqlite = SqliteSink::open(&settings.sinks.sqlite)?;
                if let Some(resume) = resume.clone() {
                    sqlite.set_resume(resume);
                }
                Box::new(sqlite)
            }
            SinkKind::Kafka => {
                let cfg =
                    settings.kafka_config().context("a table is routed to kafka but no brokers are configured")?;
                let (signals, dlq) = settings.output_topics();
                let prefix = &settings.kafka.topic_prefix;
                let outputs = kafka::KafkaOutputs { signals, dlq, progress: format!("{prefix}edu_rtdw_progress") };
                // One transactional id per sink and job: the group id and the topic prefix.
                Box::new(KafkaSink::open(&cfg, outputs, &format!("{prefix}kafka"))?)
            }
            SinkKind::Mysql => Box::new(open_mysql(settings)?),
            SinkKind::Postgres => Box::new(open_postgres(settings)?),
        };
        writers.push(writer);
    }
    Ok(writers)
}

/// `edu-rtdw init-db`: creates the tables in every configured SQL server.
fn init_db(args: &InitDbArgs) -> anyhow::Result<()> {
    let mut s = Settings::load(args.config.as_deref())?;
    s.sinks.mysql = args.mysql.clone().or(s.sinks.mysql);
    s.sinks.postgres = args.postgres.clone().or(s.sinks.postgres);
    if s.sinks.mysql.is_none() && s.sinks.postgres.is_none() {
        bail!("nothing to initialize: give --mysql URL and/or --postgres URL (or [sinks] in --config)");
    }
    if let Some(url) = &s.sinks.mysql {
        connectors::mysql::init(url)?;
        writeln!(std::io::stdout(), "MySQL {}: tables ready", connectors::secrets::mask(url))?;
    }
    if let Some(url) = &s.sinks.postgres {
        connectors::postgres::init(url)?;
        writeln!(std::io::stdout(), "PostgreSQL {}: tables ready", connectors::secrets::mask(url))?;
    }
    Ok(())
}

/// Creates the MySQL tables if needed and opens the `mysql` sink.
fn open_mysql(settings: &Settings) -> anyhow::Result<connectors::mysql::MysqlSink> {
    let url = settings
        .sinks
        .mysql
        .as_deref()
        .context("a table is routed to mysql but no MySQL URL is configured (--mysql)")?;
    connectors::mysql::init(url)?;
    let retry = std::time::Duration::from_secs(settings.sinks.retry_s);
    Ok(connectors::mysql::MysqlSink::open(url, "mysql")?.with_retry_budget(retry))
}

/// Creates the PostgreSQL tables if needed and opens the `postgres` sink.
fn open_postgres(settings: &Settings) -> anyhow::Result<connectors::postgres::PostgresSink> {
    let url = settings
        .sinks
        .postgres
        .as_deref()
        .context("a table is routed to postgres but no PostgreSQL URL is configured (--postgres)")?;
    connectors::postgres::init(url)?;
    let retry = std::time::Duration::from_secs(settings.sinks.retry_s);
    Ok(connectors::postgres::PostgresSink::open(url, "postgres")?.with_retry_budget(retry))
}

/// Where the job reads from.
#[derive(Clone)]
enum Input {
    /// File replay.
    Files(Vec<PartitionFile>),
    /// Kafka: the brokers, every source partition, and the source options.
    Kafka(KafkaConfig, Vec<KafkaPartition>, SourceOptions),
    /// The demo's live generator and the source options.
    Live(Arc<LiveFeed>, SourceOptions),
}

/// Every input partition's end offset: `(topic, partition, end)`.
type Ends = Vec<(dataflows::Topic, u32, u64)>;

/// Kafka when brokers are configured and no input directory is given, else file replay.
///
/// Also returns, for a bounded input, every partition's end offset.
fn input(
    settings: &Settings,
    clock: &Arc<Clock>,
    live: Option<&Arc<LiveFeed>>,
) -> anyhow::Result<(Input, Option<Ends>)> {
    if let Some(feed) = live {
        let opts = SourceOptions {
            delays: delays(settings),
            clock: Arc::clone(clock),
            idle_timeout: std::time::Duration::from_millis(settings.kafka.idle_timeout_ms),
            epoch_ms: settings.input.epoch_ms,
            state_path: settings.sinks.sqlite.clone(),
            exit_when_idle: false,
        };
        return Ok((Input::Live(Arc::clone(feed), opts), None));
    }
    if let (Some(cfg), None) = (settings.kafka_config(), &settings.input.input_dir) {
        let names: Vec<_> = dataflows::Topic::ALL.iter().map(|t| (*t, settings.topic_name(*t))).collect();
        let mut partitions = kafka::discover(&cfg, &names, std::time::Duration::from_secs(60))?;
        if partitions.is_empty() {
            bail!("none of the source topics exist on {} (create them, e.g. with scripts/kafka-up.sh)", cfg.brokers);
        }
        let mut ends = None;
        if settings.kafka.until_end {
            kafka::fetch_ends(&cfg, &mut partitions)?;
            ends = Some(partitions.iter().map(|p| (p.topic, p.partition, p.end.unwrap_or(0))).collect());
        }
        let opts = SourceOptions {
            delays: delays(settings),
            clock: Arc::clone(clock),
            idle_timeout: std::time::Duration::from_millis(settings.kafka.idle_timeout_ms),
            epoch_ms: settings.input.epoch_ms,
            // With --sink none nothing is durable, so live epochs record their cuts in memory.
            state_path: if settings.sinks.discard() { ":memory:".into() } else { settings.sinks.sqlite.clone() },
            exit_when_idle: settings.kafka.exit_when_idle,
        };
        return Ok((Input::Kafka(cfg, partitions, opts), ends));
    }
    let dir = input_dir(settings)?;
    let files = discover(&dir)?;
    if files.is_empty() {
        bail!("no partition files (<topic>/<partition>.jsonl) under {}", dir.display());
    }
    let ends =
        files.iter().map(|f| Ok((f.topic, f.partition, count_lines(&f.path)?))).collect::<anyhow::Result<Vec<_>>>()?;
    Ok((Input::Files(files), Some(ends)))
}

/// What determines the logical times of `input` (recorded in, and checked against, the state file).
fn identity(settings: &Settings, input: &Input) -> InputIdentity {
    let mut sources: std::collections::BTreeMap<String, u32> = Default::default();
    let kind = match input {
        Input::Files(files) => {
            for f in files {
                let n = sources.entry(f.topic.default_name().to_string()).or_default();
                *n = (*n).max(f.partition + 1);
            }
            "files"
        }
        Input::Kafka(_, partitions, _) => {
            for p in partitions {
                let n = sources.entry(p.name.clone()).or_default();
                *n = (*n).max(p.partition + 1);
            }
            "kafka"
        }
        Input::Live(feed, _) => {
            for (topic, partition) in feed.partitions() {
                let n = sources.entry(topic.default_name().to_string()).or_default();
                *n = (*n).max(partition + 1);
            }
            "live"
        }
    };
    InputIdentity::new(settings.input.epoch_records, kind, sources)
}

fn delays(settings: &Settings) -> Delays {
    Delays {
        class_performance_ms: settings.delays.class_performance_ms,
        av_quality_ms: settings.delays.av_quality_ms,
        max_future_ms: settings.delays.max_future_ms,
        max_message_bytes: settings.input.max_message_bytes,
    }
}

/// `edu-rtdw demo`: a fresh SQLite file, the live generator as input (live epochs of
/// 500 ms, no checkpoints: the generator keeps no log to restore from), the dashboard on.
fn demo(cluster: &ClusterArgs, args: &DemoArgs) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", args.sqlite.display()));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                bail!("cannot replace {}: {e}", path.display())
            }
            _ => {}
        }
    }
    let mut job = RunArgs::defaults();
    job.ops.admin = Some(args.admin);
    job.ops.sql_listen = args.sql_listen;
    // 60 s of frontiers stay readable (`query --as-of`, the dashboard's test).
    job.ops.as_of_window = 120;
    job.quiet = true;
    let feed = LiveFeed::start(LiveOptions {
        rate: args.rate,
        seed: args.seed,
        partitions: args.partitions,
        max_records: args.records,
    })?;
    let demo = Demo { feed, sqlite: args.sqlite.clone() };
    let mut out = std::io::stdout().lock();
    writeln!(out, "edu-rtdw demo: dashboard at http://{}/ ({} records/s; Ctrl-C stops it)", args.admin, args.rate)?;
    if let Some(sql) = args.sql_listen {
        writeln!(out, "edu-rtdw demo: SQL at psql -h {} -p {}", sql.ip(), sql.port())?;
    }
    out.flush()?;
    drop(out);
    run(cluster, &job, Some(demo))
}

/// What the demo changes in a run.
struct Demo {
    feed: Arc<LiveFeed>,
    sqlite: PathBuf,
}

fn run(cluster: &ClusterArgs, args: &RunArgs, demo: Option<Demo>) -> anyhow::Result<()> {
    let config = timely_config(cluster)?;
    let mut settings = settings(args)?;
    if let Some(demo) = &demo {
        settings.sinks.sqlite = demo.sqlite.clone();
        settings.input.epoch_ms = Some(500);
        settings.checkpoints.checkpoint_every = "0s".into();
    }
    let live = demo.as_ref().map(|d| &d.feed);
    let discard = settings.sinks.discard();
    let clock = match discard {
        true => Arc::new(Clock::new(settings.input.epoch_records)),
        false => Arc::new(Clock::load_path(&settings.sinks.sqlite, settings.input.epoch_records)?),
    };
    let (input, ends) = input(&settings, &clock, live)?;
    let identity = identity(&settings, &input);
    if !discard && cluster.process == 0 {
        identity.check(&settings.sinks.sqlite)?;
    }
    let (plan, mut restored) = checkpoints(&settings, &identity, cluster)?;
    let mut parts = restored.as_deref().and_then(connectors::source::parts_in).unwrap_or_default();
    if let (Some(r), Some(ends)) = (&restored, &ends)
        && let Some(grown) = grown_since(&parts, ends)
    {
        tracing::warn!("{grown}: not restoring checkpoint {}, rebuilding from the log", r.time);
        (restored, parts) = (None, Default::default());
    }
    if let (Input::Kafka(cfg, partitions, _), true) = (&input, cluster.process == 0) {
        kafka::check_retained(cfg, partitions, |t, p| parts.get(&(t, p)).map_or(0, |s| s.next))?;
    }
    let progress_total = ends.as_ref().filter(|_| !args.quiet).map(|e| crate::progress::local_total(e, cluster));
    let bounded = ends.is_some();
    let resume = ends.map(|ends| clock.resume_after(ends));
    // The sinks live on worker 0, which is in process 0; open them first so that bad settings fail fast.
    let sinks = if discard { Vec::new() } else { sink_masks(&settings) };
    let writers = if cluster.process == 0 { open_sinks(&settings, &sinks, resume)? } else { Vec::new() };
    if let Some(restored) = &restored {
        check_sinks_hold(&writers, &sinks, restored.time)?;
    }
    let writers = Arc::new(Mutex::new(Some(writers)));
    let delays = delays(&settings);
    let latency_reporter = args.latency_report.as_deref().map(crate::latency_report::start);
    // Records read by this process's sources (the progress line), and by the whole cluster (the summary).
    let records_read = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&records_read);
    let cluster_records = Arc::new(AtomicU64::new(0));
    let cluster_total = Arc::clone(&cluster_records);
    let workers = cluster.workers.max(1);
    let high_epoch = Arc::new(AtomicU64::new(0));
    let max_inflight = settings.input.max_inflight;
    let top_n = settings.metrics.top_n;
    let fatal = Fatal::default();
    let started = Instant::now();

    let ops = crate::admin::Ops::start(&args.ops, cluster, bounded, discard)?;
    let serving = ops.serving.clone();
    if let (Some(reader), 0) = (&serving, cluster.process)
        && let Some(sql) = crate::serving::sql::options(&args.ops, &settings.serving)?
    {
        crate::serving::sql::start(sql, Arc::clone(reader) as Arc<dyn crate::serving::Reader>)?;
    }
    let windows = ops.windows;
    // Worker 0 asks for the dumps; every other worker only answers reads.
    let (first_schedule, other_schedule) = (Arc::new(Mutex::new(Some(ops.schedule(0)))), ops.schedule(1));
    let progress = progress_total.map(|total| crate::progress::start(total, Arc::clone(&records_read)));
    let watchdog = crate::cluster::watchdog(cluster);
    let guards = timely::execute(config, move |worker| -> Result<(), String> {
        let index = worker.index();
        let peers = worker.peers();
        fatal.register_worker();
        // Every worker builds the same sink operators; only worker 0 holds the writers.
        let mut writers =
            if index == 0 { writers.lock().map_err(|e| e.to_string())?.take().unwrap_or_default() } else { Vec::new() };
        let process_records = Arc::clone(&counter);
        let counter = Arc::clone(&counter);
        let durables: Vec<Arc<AtomicU64>> = sinks.iter().map(|_| Arc::new(AtomicU64::new(0))).collect();
        // Back-pressure: the sources read at most `max_inflight` logical times past the slowest sink.
        let committed = ProbeHandle::<Time>::new();
        let (pace, waker) = InFlight::new(committed.clone(), max_inflight);
        // Checkpoints: operators register their state (and take up the restored one) as they are built.
        let mut checkpoints = plan.as_ref().map(|plan| {
            dataflows::durable::enable(restored.clone());
            crate::checkpoint::Checkpoints::build(worker, Arc::clone(plan), restored.as_ref().map(|r| r.time))
        });
        let (pace, waker) = match &checkpoints {
            Some(c) => pace.with_barrier(c.barrier(), c.pending(), waker),
            None => (pace, waker),
        };
        let processed = ProbeHandle::<Time>::new();
        let arranged = worker.dataflow::<Time, _, _>(|scope| -> Result<_, String> {
            let inputs = match &input {
                Input::Files(files) => file_source(
                    scope,
                    assigned(files, index, peers),
                    delays,
                    Arc::clone(&clock),
                    counter,
                    fatal.clone(),
                    pace,
                ),
                Input::Kafka(cfg, partitions, opts) => kafka_source(
                    scope,
                    cfg,
                    assigned(partitions, index, peers),
                    opts.clone(),
                    SourceShared { records_read: counter, high_epoch: Arc::clone(&high_epoch), fatal: fatal.clone() },
                    pace,
                ),
                Input::Live(feed, opts) => live_source(
                    scope,
                    feed,
                    assigned(&feed.partitions(), index, peers),
                    opts.clone(),
                    SourceShared { records_read: counter, high_epoch: Arc::clone(&high_epoch), fatal: fatal.clone() },
                    pace,
                ),
            }
            .map_err(|e| format!("{e:#}"))?;
            let rows = build_with(inputs, top_n).rows();
            rows.inner.clone().probe_with(&processed);
            let arranged = serving.as_ref().map(|s| crate::serving::peek::arrange(rows.clone(), windows, s));
            let mut writers = writers.drain(..);
            for ((kind, outputs), durable) in sinks.iter().zip(&durables) {
                let writer = writers.next();
                let name = format!("{kind:?}").to_lowercase();
                sink(rows.clone(), writer, *outputs, Arc::clone(durable), &name, &fatal).probe_with(&committed);
            }
            Ok(arranged)
        })?;
        let mut serving = match (arranged, &serving) {
            (Some(arranged), Some(serving)) => {
                let first = if index == 0 { first_schedule.lock().map_err(|e| e.to_string())?.take() } else { None };
                let schedule = first.unwrap_or_else(|| other_schedule.clone());
                Some(WorkerServing::build(worker, arranged, Arc::clone(serving), schedule))
            }
            _ => None,
        };
        if let Some(failure) = dataflows::durable::failure() {
            return Err(format!("cannot restore the checkpoint: {failure}"));
        }
        // Worker 0 holds the sinks: it acknowledges Kafka offsets once every sink has committed them.
        let mut committer = match (&input, index) {
            (Input::Kafka(cfg, partitions, opts), 0) => Some(
                OffsetCommitter::new(cfg, partitions.clone(), Arc::clone(&opts.clock)).map_err(|e| format!("{e:#}"))?,
            ),
            _ => None,
        };
        let durable = || durables.iter().map(|d| d.load(Ordering::Acquire)).min().unwrap_or(0);
        let mut tick = committer.as_ref().map(|_| std::time::Duration::from_millis(200));
        if let Some(c) = &checkpoints {
            tick = Some(tick.map_or(c.tick(), |t| t.min(c.tick())));
        }
        while worker.step_or_park(tick) {
            if fatal.is_raised() {
                return Err(fatal.raised().unwrap_or_default());
            }
            if let Some(c) = checkpoints.as_mut() {
                c.step(&processed, durable(), max_inflight)?;
            }
            if let Some(s) = serving.as_mut() {
                s.step();
            }
            waker.wake_if();
            if let Some(c) = committer.as_mut() {
                c.acknowledge(durable());
            }
        }
        if let Some(message) = fatal.raised() {
            return Err(message);
        }
        if let Some(c) = committer.as_mut() {
            c.acknowledge(durable());
        }
        // Every source in the cluster has ended: the first worker of each process sends its process's
        // count to worker 0, through one more (tiny) dataflow that every worker builds.
        let local = (index % workers == 0).then(|| process_records.load(Ordering::Relaxed));
        let total = Arc::clone(&cluster_total);
        worker.dataflow::<Time, _, _>(move |scope| {
            local.to_stream(scope).exchange(|_| 0).inspect(move |n: &u64| {
                total.fetch_add(*n, Ordering::Relaxed);
            });
        });
        while worker.step_or_park(None) {}
        dataflows::durable::disable();
        Ok(())
    })
    .map_err(|e| anyhow!("cannot start the cluster: {e}"))?;
    drop(watchdog);
    let joined: anyhow::Result<()> =
        guards.join().into_iter().try_for_each(|result| result.map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e)));
    // The final snapshot is written before the run reports success (or its error instead).
    let dumped = ops.finish();
    joined?;
    dumped?;
    let elapsed = started.elapsed();
    drop(progress);
    drop(latency_reporter);
    if !args.quiet && cluster.process == 0 {
        let db = (!discard).then_some(settings.sinks.sqlite.as_path());
        summarize(db, cluster_records.load(Ordering::Relaxed), elapsed.as_secs_f64())?;
    }
    Ok(())
}

/// How a run checkpoints, and what it restores.
type PlanAndRestore = (Option<Arc<Plan>>, Option<Arc<Restored>>);

/// The checkpoint plan (`None`: off, or nothing durable to checkpoint against) and the
/// newest complete checkpoint to restore, if any.
fn checkpoints(settings: &Settings, identity: &InputIdentity, cluster: &ClusterArgs) -> anyhow::Result<PlanAndRestore> {
    let Some(every) = settings.checkpoints.every()?.filter(|_| !settings.sinks.discard()) else {
        return Ok((None, None));
    };
    let dir = settings.checkpoints.dir(&settings.sinks.sqlite);
    let input = identity.entries();
    let restored = connectors::checkpoint::load_newest(&dir, &input, |warning| {
        if cluster.process == 0 {
            tracing::warn!("{warning}");
            let _ = writeln!(std::io::stderr(), "edu-rtdw: {warning}");
        }
    })?;
    if let Some(r) = &restored {
        tracing::info!("restoring the checkpoint at {} from {}", r.time, dir.display());
    }
    let plan = Plan { dir, every, keep: settings.checkpoints.checkpoints_kept, input };
    Ok((Some(Arc::new(plan)), restored))
}

/// The first partition that had ended at the checkpoint and whose log has grown since.
fn grown_since(parts: &connectors::source::RestoredParts, ends: &Ends) -> Option<String> {
    ends.iter().find_map(|(topic, partition, end)| {
        let part = parts.get(&(*topic, *partition)).filter(|p| p.done && p.next < *end)?;
        Some(format!(
            "{}/{partition} has grown from {} to {end} records since it ended",
            topic.default_name(),
            part.next
        ))
    })
}

/// Refuses a restore at `time` when a sink holds no commit at all (its database was
/// reset, or it was added to the routes since): the log before the checkpoint is not read
/// again, so the sink could never get those rows. A checkpoint is complete only once every
/// sink has committed past `time`, but a sink's *stored* upper may trail that: the Kafka
/// sink skips writing its progress for commits without rows (at most one second of them),
/// and those times hold nothing it would have to write again.
fn check_sinks_hold(
    writers: &[Box<dyn SinkWriter + Send>],
    sinks: &[(SinkKind, OutputSet)],
    time: Time,
) -> anyhow::Result<()> {
    for (writer, (kind, _)) in writers.iter().zip(sinks) {
        if writer.committed_upper() == 0 {
            bail!(
                "the {kind:?} sink holds no commit, and the checkpoint to restore is at {time}: the log before it \
                 is not read again; remove the checkpoint directory to rebuild everything"
            );
        }
    }
    Ok(())
}

/// Prints the end-of-run summary on stdout: `records` read by the whole cluster, and what
/// the SQLite file `db` holds (none with `--sink none`).
fn summarize(db: Option<&Path>, records: u64, seconds: f64) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "edu-rtdw: {records} records in {seconds:.2} s ({:.0} records/s)",
        records as f64 / seconds.max(1e-9)
    )?;
    let Some(db) = db.filter(|db| db.exists()) else { return Ok(()) };
    let sink = SqliteSink::open(db).with_context(|| format!("cannot reopen {}", db.display()))?;
    writeln!(out, "SQLite {}:", db.display())?;
    for (table, rows) in sink.table_counts()? {
        writeln!(out, "{rows:>10}  {table}")?;
    }
    for (reason, n) in sink.dead_letter_reasons()? {
        writeln!(out, "{n:>10}  dead letters: {reason}")?;
    }
    out.flush()?;
    Ok(())
}
