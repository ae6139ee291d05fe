//! Command-line interface (clap derive), including timely's `-w -n -p -h`.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Real-time data warehouse for an online school, on Timely and Differential Dataflow.
#[derive(Parser, Debug)]
#[command(name = "edu-rtdw", version, disable_help_flag = true)]
pub struct Cli {
    /// Print help (`-h` is timely's host file flag).
    #[arg(long, action = ArgAction::Help, global = true)]
    help: Option<bool>,
    /// Timely cluster flags.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// What to do; `run` with its defaults when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Timely's cluster flags, exactly as timely defines them.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Worker threads per process.
    #[arg(short = 'w', long = "threads", global = true, default_value_t = 1)]
    pub workers: usize,
    /// Number of processes.
    #[arg(short = 'n', long = "processes", global = true, default_value_t = 1)]
    pub processes: usize,
    /// This process's index.
    #[arg(short = 'p', long = "process", global = true, default_value_t = 0)]
    pub process: usize,
    /// Host file: one `host:port` line per process.
    #[arg(short = 'h', long = "hostfile", global = true)]
    pub hostfile: Option<PathBuf>,
}

impl ClusterArgs {
    /// The same flags as timely's own argument list.
    pub fn timely_args(&self) -> Vec<String> {
        let mut args = vec![
            "-w".to_string(), self.workers.to_string(),
            "-n".to_string(), self.processes.to_string(),
            "-p".to_string(), self.process.to_string(),
        ];
        if let Some(h) = &self.hostfile {
            args.push("-h".to_string());
            args.push(h.display().to_string());
        }
        args
    }
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the job: read the input, maintain every metric, write the sinks.
    Run(RunArgs),
    /// Generate seeded sample data in the file layout.
    Gen(GenArgs),
}

/// `edu-rtdw run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// File replay input: `<dir>/<topic>/<partition>.jsonl`. Default: `sample-data`, generated if missing.
    #[arg(long)]
    pub input_dir: Option<PathBuf>,
    /// SQLite file receiving every table.
    #[arg(long, default_value = "edu_rtdw.db")]
    pub sqlite: PathBuf,
    /// Records per partition per logical time (larger: more throughput, coarser commits).
    #[arg(long, default_value_t = 4096)]
    pub epoch_records: u64,
    /// Watermark delay of class_performance_1m, ms.
    #[arg(long, default_value_t = dataflows::class_performance_1m::DEFAULT_DELAY_MS)]
    pub class_performance_delay_ms: i64,
    /// Watermark delay of av_quality_30s, ms.
    #[arg(long, default_value_t = dataflows::av_quality_30s::DEFAULT_DELAY_MS)]
    pub av_quality_delay_ms: i64,
    /// Do not print the summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl Default for RunArgs {
    /// The defaults of `edu-rtdw run` with no flags.
    fn default() -> Self {
        #[derive(Parser)]
        struct RunOnly {
            #[command(flatten)]
            run: RunArgs,
        }
        RunOnly::parse_from(["edu-rtdw"]).run
    }
}

/// `edu-rtdw gen`.
#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// About `scale × 10,000` records (100 ≈ 1 million).
    #[arg(long, default_value_t = 10)]
    pub scale: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Partitions per topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
}
