//! Command-line interface (clap derive), including timely's `-w -n -p -h`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{Given, Settings};

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
    /// With -n > 1: give up (exit 1) when the peers are not all connected after this many seconds.
    #[arg(long, global = true, default_value_t = 60)]
    pub connect_timeout_s: u64,
}

impl ClusterArgs {
    /// The same flags as timely's own argument list.
    pub fn timely_args(&self) -> Vec<String> {
        let mut args = vec![
            "-w".to_string(),
            self.workers.to_string(),
            "-n".to_string(),
            self.processes.to_string(),
            "-p".to_string(),
            self.process.to_string(),
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
#[allow(clippy::large_enum_variant)] // parsed once; boxing would only obscure the clap derive
pub enum Command {
    /// Run the job: read the input, maintain every metric, write the sinks.
    Run(RunArgs),
    /// Generate seeded sample data in the file layout.
    Gen(GenArgs),
    /// Create the output and progress tables in MySQL and/or PostgreSQL (safe to run twice).
    InitDb(InitDbArgs),
    /// In-memory throughput harness: all nine metrics over pre-generated raw JSON.
    Bench(crate::bench::BenchArgs),
    /// Print a metric's rows at one logical time, from a running job (--admin) or the latest snapshot dump.
    Query(crate::query::QueryArgs),
    /// A live demo, no servers: a built-in generator in real time through every metric into
    /// SQLite, with the dashboard on (prints its URL).
    Demo(DemoArgs),
}

/// `edu-rtdw demo`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Records per second, over all seven topics.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seed of the generated workload (its times follow the wall clock).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Partitions per topic.
    #[arg(long, default_value_t = 2)]
    pub partitions: u32,
    /// Stop after this many records (default: run until interrupted).
    #[arg(long)]
    pub records: Option<u64>,
    /// The dashboard (the admin endpoint): http://ADDR/.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub admin: SocketAddr,
    /// Also serve SQL (PostgreSQL wire protocol) here.
    #[arg(long)]
    pub sql_listen: Option<SocketAddr>,
    /// The SQLite file, replaced at start (the demo's logical times begin anew every run).
    #[arg(long, default_value = "demo.db")]
    pub sqlite: PathBuf,
}

/// `edu-rtdw init-db`. Flags override the config file.
#[derive(Args, Debug, Clone)]
pub struct InitDbArgs {
    /// TOML configuration file (its `[sinks]` URLs are used).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// MySQL URL (or EDU_RTDW_MYSQL_URL).
    #[arg(long, env = "EDU_RTDW_MYSQL_URL", hide_env_values = true)]
    pub mysql: Option<String>,
    /// PostgreSQL URL (or EDU_RTDW_POSTGRES_URL).
    #[arg(long, env = "EDU_RTDW_POSTGRES_URL", hide_env_values = true)]
    pub postgres: Option<String>,
}

/// `edu-rtdw run`. Flags override the config file.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// TOML configuration file (see edu-rtdw.sample.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The settings that are also keys of the file (`--epoch-records` is `[input] epoch_records`, ...).
    #[command(flatten)]
    pub settings: Settings,
    /// Write end-to-end latency (Kafka timestamp to commit by every sink) as JSON to FILE, every second and at the end.
    #[arg(long)]
    pub latency_report: Option<PathBuf>,
    /// Do not print the summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Admin endpoint and snapshot options.
    #[command(flatten)]
    pub ops: OpsArgs,
    /// Which of `settings` were given as flags or environment variables (and so override the file).
    #[arg(skip)]
    pub given: Given,
}

impl RunArgs {
    /// `edu-rtdw run` with no flags (environment variables still apply).
    pub fn defaults() -> Self {
        #[derive(Parser)]
        struct RunOnly {
            #[command(flatten)]
            run: RunArgs,
        }
        let matches = RunOnly::command().get_matches_from(["edu-rtdw"]);
        let mut run = RunOnly::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()).run;
        run.given = Given::of(&matches);
        run
    }
}

/// Parses the command line (exiting with clap's message on a bad one), noting which `run`
/// settings were given.
pub fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
    if let (Some(Command::Run(run)), Some(("run", sub))) = (&mut cli.command, matches.subcommand()) {
        run.given = Given::of(sub);
    }
    cli
}

/// `run` options of the admin endpoint and of snapshots (served by `admin.rs`).
#[derive(Args, Debug, Clone)]
pub struct OpsArgs {
    /// Serve `/metrics` and snapshot queries on this address, e.g. 127.0.0.1:9898 (process i of a cluster: port + i).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Allow `--admin` on an address that is not loopback.
    #[arg(long)]
    pub admin_bind_any: bool,
    /// Keep serving `--admin` this many seconds after a bounded input is done.
    #[arg(long, default_value_t = 0)]
    pub admin_linger_s: u64,
    /// Write every metric's contents periodically as JSON lines to DIR/METRIC/TIME.jsonl.
    #[arg(long)]
    pub snapshot_dir: Option<PathBuf>,
    /// Interval between snapshot dumps (`500ms`, `10s`, `5m`, `1h`, `1h 30m`; a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub snapshot_every: Duration,
    /// Snapshot dumps kept per metric.
    #[arg(long, default_value_t = 5)]
    pub snapshot_keep: usize,
    /// Do not write the final snapshot of a bounded run (by default it goes to ./snapshots,
    /// where `edu-rtdw query` looks, unless --snapshot-dir says where).
    #[arg(long)]
    pub no_final_snapshot: bool,
    /// Logical frontiers below the newest that reads may still ask for (`AS OF`).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub as_of_window: u64,
    /// Logical times of cleaned signals (2.1) kept for reads: a read sees the signals of the
    /// last N times only (the sinks keep them all).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub signals_window: u64,
    /// Logical times the closed windows of 2.3 and 2.5 and the dead letters stay readable
    /// (default: all of them; the sinks keep them all). Bounds a long live job's memory.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub append_window: Option<u64>,
    /// Serve SQL over the PostgreSQL wire protocol on this address, e.g. 127.0.0.1:6875
    /// (`psql -h 127.0.0.1 -p 6875`); password and limits in the config file's [serving].
    #[arg(long, value_name = "ADDR")]
    pub sql_listen: Option<SocketAddr>,
    /// Allow `--sql-listen` on an address that is not loopback (a password is required then).
    #[arg(long)]
    pub sql_bind_any: bool,
}

/// A duration in `humantime`'s notation (`500ms`, `10s`, `5m`, `1h`, `2h 30m`, `1d`); a bare
/// number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("bad duration `{text}`: {e} (expected e.g. 500ms, 10s, 5m)"))
}

/// `edu-rtdw gen`.
#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// Output directory (file layout); required unless --brokers is given.
    #[arg(long, required_unless_present = "brokers")]
    pub out: Option<PathBuf>,
    /// About `scale × 10,000` records (100 ≈ 1 million).
    #[arg(long, default_value_t = 10)]
    pub scale: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Partitions per topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Produce into Kafka at these brokers instead of writing files (topics must exist).
    #[arg(long)]
    pub brokers: Option<String>,
    /// With --brokers: records per second (open loop); as fast as possible when omitted.
    #[arg(long)]
    pub rate: Option<u64>,
    /// With --brokers: prefix added to every topic name.
    #[arg(long, default_value = "")]
    pub topic_prefix: String,
    /// With --brokers: a librdkafka producer property, `KEY=VALUE` (repeatable), e.g.
    /// `linger.ms=100` to batch as a Kafka Streams application does. Idempotence, `acks=all`
    /// and the delivery timeout stay as they are; `linger.ms` defaults to 5.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_properties: Vec<(String, String)>,
}

/// `KEY=VALUE`, both non-empty after trimming.
fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration(" 3 "), Ok(Duration::from_secs(3)));
        // humantime also reads days and compound durations.
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn properties_are_key_equals_value() {
        assert_eq!(parse_property("linger.ms=100"), Ok(("linger.ms".to_string(), "100".to_string())));
        assert_eq!(parse_property(" a = b=c "), Ok(("a".to_string(), "b=c".to_string())));
        for bad in ["linger.ms", "=100", "linger.ms=", " = "] {
            assert!(parse_property(bad).is_err(), "{bad}");
        }
    }
}
