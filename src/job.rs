//! The job: cluster launch, file replay into the SQLite sink, and the summary.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use connectors::files::{assigned, discover, file_source};
use connectors::sample::{write_files, GenOptions};
use connectors::sink::{sink, SinkWriter};
use connectors::sqlite::SqliteSink;
use dataflows::ingest::Delays;
use dataflows::{build, Time};

use crate::cli::{Cli, ClusterArgs, Command, GenArgs, RunArgs};

/// Where sample data goes when `run` is given no input.
const SAMPLE_DIR: &str = "sample-data";

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Gen(args)) => generate(&args),
        Some(Command::Run(args)) => run(&cli.cluster, &args),
        None => run(&cli.cluster, &RunArgs::default()),
    }
}

fn generate(args: &GenArgs) -> anyhow::Result<()> {
    let opts = GenOptions { scale: args.scale, seed: args.seed, partitions: args.partitions };
    let report = write_files(&args.out, &opts)?;
    for (topic, n) in &report.per_topic {
        println!("{n:>10}  {topic}");
    }
    println!("{:>10}  records in {}", report.total, args.out.display());
    Ok(())
}

fn timely_config(cluster: &ClusterArgs) -> anyhow::Result<timely::Config> {
    if cluster.process >= cluster.processes.max(1) {
        bail!("-p {} is out of range for -n {}", cluster.process, cluster.processes);
    }
    timely::Config::from_args(cluster.timely_args().into_iter()).map_err(|e| anyhow!("bad cluster flags: {e}"))
}

/// The input directory, generating the sample when none was given and none exists.
fn input_dir(args: &RunArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.input_dir {
        return Ok(dir.clone());
    }
    let dir = PathBuf::from(SAMPLE_DIR);
    if !dir.is_dir() {
        let opts = GenOptions::default();
        println!("generating sample data (scale {}, seed {}) into {}/", opts.scale, opts.seed, dir.display());
        write_files(&dir, &opts)?;
    }
    Ok(dir)
}

fn run(cluster: &ClusterArgs, args: &RunArgs) -> anyhow::Result<()> {
    let config = timely_config(cluster)?;
    let dir = input_dir(args)?;
    let files = discover(&dir)?;
    if files.is_empty() {
        bail!("no partition files (<topic>/<partition>.jsonl) under {}", dir.display());
    }
    // The sink lives on worker 0, which is in process 0; open it first so that a bad path fails fast.
    let writer: Option<Box<dyn SinkWriter + Send>> = if cluster.process == 0 {
        Some(Box::new(SqliteSink::open(&args.sqlite)?))
    } else {
        None
    };
    let writer = Arc::new(Mutex::new(writer));
    let delays = Delays { class_performance_ms: args.class_performance_delay_ms, av_quality_ms: args.av_quality_delay_ms };
    let epoch_records = args.epoch_records;
    let records_read = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&records_read);
    let started = Instant::now();

    let guards = timely::execute(config, move |worker| -> Result<(), String> {
        let index = worker.index();
        let mine = assigned(&files, index, worker.peers());
        let writer = if index == 0 { writer.lock().map_err(|e| e.to_string())?.take() } else { None };
        let counter = Arc::clone(&counter);
        worker.dataflow::<Time, _, _>(|scope| -> Result<(), String> {
            let inputs = file_source(scope, mine, delays, epoch_records, counter).map_err(|e| format!("{e:#}"))?;
            let writer = writer.map(|w| w as Box<dyn SinkWriter>);
            sink(build(inputs).rows(), writer, "sqlite");
            Ok(())
        })?;
        while worker.step_or_park(None) {}
        Ok(())
    })
    .map_err(|e| anyhow!("cannot start the cluster: {e}"))?;
    for result in guards.join() {
        result.map_err(|e| anyhow!(e))?.map_err(|e| anyhow!(e))?;
    }
    let elapsed = started.elapsed();
    if !args.quiet && cluster.process == 0 {
        summarize(&args.sqlite, records_read.load(Ordering::Relaxed), elapsed.as_secs_f64())?;
    }
    Ok(())
}

fn summarize(db: &Path, records: u64, seconds: f64) -> anyhow::Result<()> {
    let sink = SqliteSink::open(db).with_context(|| format!("cannot reopen {}", db.display()))?;
    println!("edu-rtdw: {records} records in {seconds:.2} s ({:.0} records/s) -> {}", records as f64 / seconds.max(1e-9), db.display());
    for (table, rows) in sink.table_counts()? {
        println!("{rows:>10}  {table}");
    }
    for (reason, n) in sink.dead_letter_reasons()? {
        println!("{n:>10}  dead letters: {reason}");
    }
    Ok(())
}
