//! Configuration: a TOML file (`--config`) overridden by flags.
//!
//! Each settings section is declared once, as one struct that both the TOML
//! file (serde) and `run`'s flags (clap) fill: a field is a key of its section
//! and, unless it is `#[arg(skip)]` (file only), the flag of the same name;
//! its clap default is the default of both. A flag given on the command line
//! (or through its environment variable, e.g. `EDU_RTDW_MYSQL_URL`) overrides
//! the file's key ([`Settings::overridden_by`]); every other key keeps the
//! file's value.
//!
//! Every key is optional; see `edu-rtdw.sample.toml` for all of them. Routing
//! (which table goes to which sink) defaults to the seed's layout when the
//! servers are configured: 2.3, 2.4, 2.5, 2.7, 2.8, 2.9 to MySQL, 2.2 and 2.6 to
//! PostgreSQL; every table not routed elsewhere goes to the SQLite file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use dataflows::ingest::Delays;
use dataflows::output::{Output, OutputSet};

/// The whole configuration: the file's sections, which are also `run`'s flags, and the routes.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where input comes from and how it is clocked.
    #[command(flatten)]
    pub input: InputSettings,
    /// Kafka input and outputs.
    #[command(flatten)]
    pub kafka: KafkaSettings,
    /// Event-time settings.
    #[command(flatten)]
    pub delays: DelaySettings,
    /// Metric parameters.
    #[command(flatten)]
    pub metrics: MetricSettings,
    /// Sink locations.
    #[command(flatten)]
    pub sinks: SinkSettings,
    /// Checkpoints of the metrics' state.
    #[command(flatten)]
    pub checkpoints: CheckpointSettings,
    /// SQL serving (`--sql-listen`).
    #[command(flatten)]
    pub serving: ServingSettings,
    /// Per metric (or `dead_letters`): the sinks it goes to (`sqlite`, `mysql`, `postgres`, `kafka`).
    #[arg(skip)]
    pub routes: BTreeMap<String, Vec<String>>,
}

/// `[input]`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputSettings {
    /// File replay input: `<dir>/<topic>/<partition>.jsonl`. Default without Kafka: `sample-data`, generated if missing.
    #[arg(long)]
    pub input_dir: Option<PathBuf>,
    /// Records per partition per logical time (larger: more throughput, coarser commits).
    #[arg(long, default_value_t = 4096)]
    pub epoch_records: u64,
    /// Kafka without --until-end: close a logical time every N ms (live epochs, recorded in the SQLite state file).
    #[arg(long)]
    pub epoch_ms: Option<u64>,
    /// Back-pressure: sources read at most this many logical times ahead of the slowest sink's committed upper.
    #[arg(long, default_value_t = 16)]
    pub max_inflight: u64,
    /// A message value longer than this many bytes is a `too_large` dead letter (default 1 MiB, as Kafka's).
    #[arg(long, value_name = "BYTES", default_value_t = Delays::default().max_message_bytes)]
    pub max_message_bytes: usize,
}

/// `[kafka]`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Kafka bootstrap servers (`host:port,...`); Kafka is the input when set.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Consumer group id (offsets are committed under it; partitions are assigned, not balanced).
    #[arg(skip = String::from("edu-rtdw"))]
    pub group_id: String,
    /// Source topic names, by their default name.
    #[arg(skip)]
    pub topics: BTreeMap<String, String>,
    /// Kafka: prefix added to every default topic name (sources and outputs), e.g. for tests.
    #[arg(long, default_value = "")]
    pub topic_prefix: String,
    /// Topic of the cleaned signals (2.1).
    #[arg(skip = String::from("timeline_analysis_student"))]
    pub signals_topic: String,
    /// Dead-letter topic.
    #[arg(skip = String::from("edu_rtdw_dlq"))]
    pub dlq_topic: String,
    /// Kafka: read up to the high watermarks seen at start, then finish like file replay.
    #[arg(long)]
    pub until_end: bool,
    /// Kafka: a partition silent this long stops holding the watermark back (ms).
    #[arg(long, default_value_t = 30_000)]
    pub idle_timeout_ms: u64,
    /// Kafka: finish like --until-end once a worker's partitions have been caught up and silent for the idle timeout.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// librdkafka properties passed through (`security.protocol`, `sasl.*`, `ssl.*`, ...).
    #[arg(skip)]
    pub properties: BTreeMap<String, String>,
}

/// `[delays]`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DelaySettings {
    /// Watermark delay of class_performance_1m, ms.
    #[arg(long = "class-performance-delay-ms", value_name = "MS", default_value_t = Delays::default().class_performance_ms)]
    pub class_performance_ms: i64,
    /// Watermark delay of av_quality_30s, ms.
    #[arg(long = "av-quality-delay-ms", value_name = "MS", default_value_t = Delays::default().av_quality_ms)]
    pub av_quality_ms: i64,
    /// A windowed record whose event time is more than this ahead of its Kafka timestamp is `future`, ms.
    #[arg(long = "max-future-ms", value_name = "MS", default_value_t = Delays::default().max_future_ms)]
    pub max_future_ms: i64,
}

/// `[metrics]`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricSettings {
    /// top_teachers_daily: teachers kept per day.
    #[arg(long = "top-n", value_name = "N", default_value_t = dataflows::top_teachers_daily::DEFAULT_TOP_N)]
    pub top_n: usize,
}

/// `[sinks]`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// SQLite file receiving every table not routed elsewhere.
    #[arg(long, default_value = "edu_rtdw.db")]
    pub sqlite: PathBuf,
    /// MySQL URL, e.g. mysql://edu:edu@127.0.0.1:3306/edu_rtdw (or EDU_RTDW_MYSQL_URL).
    #[arg(long, env = "EDU_RTDW_MYSQL_URL", hide_env_values = true)]
    pub mysql: Option<String>,
    /// PostgreSQL URL, e.g. postgres://edu:edu@127.0.0.1:5432/edu_rtdw (or EDU_RTDW_POSTGRES_URL).
    #[arg(long, env = "EDU_RTDW_POSTGRES_URL", hide_env_values = true)]
    pub postgres: Option<String>,
    /// How long a MySQL/PostgreSQL commit retries a lost connection before the job fails (seconds).
    #[arg(skip = 300_u64)]
    pub retry_s: u64,
    /// `none`: discard every output (no SQLite file, no state), to compare the dataflow with
    /// other engines' blackhole sinks on the same input.
    #[arg(long, value_parser = ["none"])]
    pub sink: Option<String>,
}

/// `[checkpoints]`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSettings {
    /// Checkpoint directory (shared by every process of a cluster). Default: next to the SQLite file, `<sqlite stem>.checkpoints`.
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Interval between checkpoints (`500ms`, `30s`, `5m`; a bare number is seconds); `0s`: none.
    #[arg(long, default_value = "30s")]
    pub checkpoint_every: String,
    /// Complete checkpoints kept.
    #[arg(long, default_value_t = 3)]
    pub checkpoints_kept: usize,
}

/// `[serving]`: the SQL endpoint's password and limits (`--sql-listen` turns it on).
#[derive(Clone, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServingSettings {
    /// The password SQL clients authenticate with (md5); the environment variable
    /// EDU_RTDW_SQL_PASSWORD overrides it. No flag: a password never goes on a command line.
    #[arg(skip)]
    pub sql_password: Option<String>,
    /// A SQL statement running longer is interrupted (`500ms`, `10s`, `1m`; a bare number is seconds).
    #[arg(long, default_value = "10s")]
    pub sql_statement_timeout: String,
    /// A SQL result with more rows is an error (not truncated).
    #[arg(long, default_value_t = 100_000)]
    pub sql_max_rows: usize,
    /// SQL clients served at once; more are refused.
    #[arg(long, default_value_t = 64)]
    pub sql_max_connections: usize,
}

/// The environment variable that overrides `[serving] sql_password`.
pub const SQL_PASSWORD_ENV: &str = "EDU_RTDW_SQL_PASSWORD";

impl ServingSettings {
    /// The SQL password: `EDU_RTDW_SQL_PASSWORD` if set and not empty, else the file's.
    pub fn password(&self) -> Option<String> {
        std::env::var(SQL_PASSWORD_ENV).ok().filter(|p| !p.is_empty()).or_else(|| self.sql_password.clone())
    }

    /// The statement timeout.
    pub fn statement_timeout(&self) -> anyhow::Result<std::time::Duration> {
        let timeout = crate::cli::parse_duration(&self.sql_statement_timeout)
            .map_err(|e| anyhow::anyhow!("sql_statement_timeout: {e}"))?;
        if timeout.is_zero() {
            bail!("sql_statement_timeout = {} is out of range: expected more than 0s", self.sql_statement_timeout);
        }
        Ok(timeout)
    }
}

/// Never prints the password.
impl std::fmt::Debug for ServingSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingSettings")
            .field("sql_password", &self.sql_password.as_ref().map(|_| "(set)"))
            .field("sql_statement_timeout", &self.sql_statement_timeout)
            .field("sql_max_rows", &self.sql_max_rows)
            .field("sql_max_connections", &self.sql_max_connections)
            .finish()
    }
}

impl CheckpointSettings {
    /// The interval, `None` when checkpoints are off.
    pub fn every(&self) -> anyhow::Result<Option<std::time::Duration>> {
        let every =
            crate::cli::parse_duration(&self.checkpoint_every).map_err(|e| anyhow::anyhow!("checkpoint_every: {e}"))?;
        Ok((!every.is_zero()).then_some(every))
    }

    /// The directory: the given one, or the SQLite file's with the extension `checkpoints`.
    pub fn dir(&self, sqlite: &Path) -> PathBuf {
        self.checkpoint_dir.clone().unwrap_or_else(|| sqlite.with_extension("checkpoints"))
    }
}

impl SinkSettings {
    /// Whether every output is discarded (`--sink none`).
    pub fn discard(&self) -> bool {
        self.sink.as_deref() == Some("none")
    }
}

/// A section's defaults are its clap defaults (environment variables ignored): one declaration for both.
macro_rules! clap_default {
    ($($section:ty),*) => {$(
        impl Default for $section {
            fn default() -> Self {
                clap_defaults()
            }
        }
    )*};
}
clap_default!(
    InputSettings,
    KafkaSettings,
    DelaySettings,
    MetricSettings,
    SinkSettings,
    CheckpointSettings,
    ServingSettings
);

/// `T` as clap fills it from no arguments and no environment.
fn clap_defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
    let matches = command.get_matches_from(["defaults"]);
    T::from_arg_matches(&matches).expect("every setting has a default or is optional")
}

/// The ids of the flags given on the command line or through their environment variable.
#[derive(Debug, Clone, Default)]
pub struct Given(BTreeSet<String>);

impl Given {
    /// The flags `matches` did not fill with their default.
    pub fn of(matches: &ArgMatches) -> Given {
        let given = |id: &&clap::Id| {
            matches!(matches.value_source(id.as_str()), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
        };
        Given(matches.ids().filter(given).map(|id| id.to_string()).collect())
    }
}

/// `file` with every field named in `given` taken from `flags` instead (a flag's id is its field's name).
fn overlay<T: Serialize + DeserializeOwned>(file: &T, flags: &T, given: &Given) -> anyhow::Result<T> {
    let (serde_json::Value::Object(mut merged), serde_json::Value::Object(over)) =
        (serde_json::to_value(file)?, serde_json::to_value(flags)?)
    else {
        bail!("a settings section is not a struct");
    };
    merged.extend(over.into_iter().filter(|(key, _)| given.0.contains(key)));
    Ok(serde_json::from_value(serde_json::Value::Object(merged))?)
}

/// A kind of sink a table can be routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SinkKind {
    /// The SQLite file.
    Sqlite,
    /// MySQL / MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
    /// Kafka topics (2.1 cleaned signals and dead letters only).
    Kafka,
}

impl SinkKind {
    fn parse(name: &str) -> Option<SinkKind> {
        match name {
            "sqlite" => Some(SinkKind::Sqlite),
            "mysql" => Some(SinkKind::Mysql),
            "postgres" => Some(SinkKind::Postgres),
            "kafka" => Some(SinkKind::Kafka),
            _ => None,
        }
    }
}

/// The route names of the outputs, in [`Output::ALL`] order.
pub fn route_names() -> Vec<&'static str> {
    Output::ALL.iter().map(|o| o.name()).collect()
}

impl Settings {
    /// These settings (the file's) with every `given` flag of `flags` taking precedence.
    /// The result is checked as a whole ([`Settings::check_ranges`]).
    pub fn overridden_by(self, flags: &Settings, given: &Given) -> anyhow::Result<Settings> {
        let settings = Settings {
            input: overlay(&self.input, &flags.input, given)?,
            kafka: overlay(&self.kafka, &flags.kafka, given)?,
            delays: overlay(&self.delays, &flags.delays, given)?,
            metrics: overlay(&self.metrics, &flags.metrics, given)?,
            sinks: overlay(&self.sinks, &flags.sinks, given)?,
            checkpoints: overlay(&self.checkpoints, &flags.checkpoints, given)?,
            serving: overlay(&self.serving, &flags.serving, given)?,
            routes: self.routes,
        };
        settings.check_ranges()?;
        Ok(settings)
    }

    /// Refuses, at start and in one line, a numeric setting outside what the job can run
    /// with: a negative delay, a zero epoch or interval (a division by zero or a busy
    /// loop), or one so large that nothing would ever close (more than a week of delay or
    /// idleness, an epoch of more than an hour or 2^30 records). `max_future_ms` has no upper
    /// bound: a huge value turns the check off.
    pub fn check_ranges(&self) -> anyhow::Result<()> {
        const WEEK_MS: i128 = 7 * 86_400_000;
        let (input, kafka, delays) = (&self.input, &self.kafka, &self.delays);
        let mut checks: Vec<(&str, i128, i128, i128)> = vec![
            ("epoch_records", input.epoch_records.into(), 1, 1 << 30),
            ("max_inflight", input.max_inflight.into(), 1, 1 << 20),
            ("max_message_bytes", input.max_message_bytes as i128, 1, i32::MAX.into()),
            ("idle_timeout_ms", kafka.idle_timeout_ms.into(), 1, WEEK_MS),
            ("class_performance_delay_ms", delays.class_performance_ms.into(), 0, WEEK_MS),
            ("av_quality_delay_ms", delays.av_quality_ms.into(), 0, WEEK_MS),
            // A huge value turns the check off (tests do): only a negative one is absurd.
            ("max_future_ms", delays.max_future_ms.into(), 0, i64::MAX.into()),
            ("top_n", self.metrics.top_n as i128, 1, 1000),
            ("checkpoints_kept", self.checkpoints.checkpoints_kept as i128, 1, 1000),
            ("sql_max_rows", self.serving.sql_max_rows as i128, 1, 1 << 30),
            ("sql_max_connections", self.serving.sql_max_connections as i128, 1, 10_000),
        ];
        self.checkpoints.every()?;
        self.serving.statement_timeout()?;
        if let Some(ms) = input.epoch_ms {
            checks.push(("epoch_ms", ms.into(), 1, 3_600_000));
        }
        for (name, value, low, high) in checks {
            if !(low..=high).contains(&value) {
                bail!("{name} = {value} is out of range: expected {low} to {high}");
            }
        }
        Ok(())
    }

    /// Reads the TOML file at `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Settings> {
        let Some(path) = path else { return Ok(Settings::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        let settings: Settings =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("bad config {}: {}", path.display(), e.message()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let names = route_names();
        for (route, sinks) in &self.routes {
            if !names.contains(&route.as_str()) {
                bail!("unknown route `{route}` (expected one of: {})", names.join(", "));
            }
            for sink in sinks {
                if SinkKind::parse(sink).is_none() {
                    bail!("unknown sink `{sink}` in route `{route}` (expected sqlite, mysql, postgres or kafka)");
                }
            }
        }
        for topic in self.kafka.topics.keys() {
            if dataflows::Topic::from_name(topic).is_none() {
                bail!("unknown source topic `{topic}` in [kafka.topics]");
            }
        }
        Ok(())
    }

    /// Which sinks each output goes to, in [`Output::ALL`] order.
    pub fn routes(&self) -> Vec<(Output, Vec<SinkKind>)> {
        Output::ALL
            .into_iter()
            .map(|output| match self.routes.get(output.name()) {
                Some(sinks) => (output, sinks.iter().filter_map(|s| SinkKind::parse(s)).collect()),
                None => (output, self.default_route(output)),
            })
            .collect()
    }

    /// The outputs routed to sinks of `kind`.
    pub fn outputs_of(&self, kind: SinkKind) -> OutputSet {
        self.routes().into_iter().filter(|(_, sinks)| sinks.contains(&kind)).map(|(output, _)| output).collect()
    }

    fn default_route(&self, output: Output) -> Vec<SinkKind> {
        use Output::*;
        let mut sinks = Vec::new();
        match output {
            ClassPerformance1m | OfflineStudyTime | AvQuality30s | DailyCcConfirmations | DailyUvPv
            | TopTeachersDaily
                if self.sinks.mysql.is_some() =>
            {
                sinks.push(SinkKind::Mysql)
            }
            ChannelDim | HourlyRegistrationsByLevel if self.sinks.postgres.is_some() => sinks.push(SinkKind::Postgres),
            _ => sinks.push(SinkKind::Sqlite),
        }
        if self.kafka.brokers.is_some() && matches!(output, StudentSignalEtl | DeadLetters) {
            sinks.push(SinkKind::Kafka);
        }
        sinks
    }

    /// The Kafka topic name of a source topic.
    pub fn topic_name(&self, topic: dataflows::Topic) -> String {
        let name = self.kafka.topics.get(topic.default_name()).map_or(topic.default_name(), String::as_str);
        format!("{}{name}", self.kafka.topic_prefix)
    }

    /// The Kafka topic names of the outputs: cleaned signals and dead letters.
    pub fn output_topics(&self) -> (String, String) {
        let p = &self.kafka.topic_prefix;
        (format!("{p}{}", self.kafka.signals_topic), format!("{p}{}", self.kafka.dlq_topic))
    }

    /// How to reach Kafka, if it is configured.
    pub fn kafka_config(&self) -> Option<connectors::kafka::KafkaConfig> {
        let brokers = self.kafka.brokers.clone()?;
        Some(connectors::kafka::KafkaConfig {
            brokers,
            properties: self.kafka.properties.clone(),
            group_id: self.kafka.group_id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_config_parses_and_routes_like_the_seed() {
        let text = include_str!("../edu-rtdw.sample.toml");
        let s: Settings = toml::from_str(text).expect("sample config");
        s.validate().expect("valid");
        let routes = s.routes();
        assert_eq!(routes[2], (Output::ClassPerformance1m, vec![SinkKind::Mysql]));
        assert_eq!(routes[1], (Output::ChannelDim, vec![SinkKind::Postgres]));
        assert_eq!(routes[0], (Output::StudentSignalEtl, vec![SinkKind::Sqlite, SinkKind::Kafka]));
    }

    #[test]
    fn defaults_send_everything_to_sqlite() {
        assert!(Settings::default().routes().iter().all(|(_, r)| r == &vec![SinkKind::Sqlite]));
    }

    /// `run`'s settings flags parsed from `argv`, and which were given.
    fn parse_flags(argv: &[&str]) -> (Settings, Given) {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            settings: Settings,
        }
        use clap::CommandFactory;
        let matches = Flags::command().get_matches_from(std::iter::once("edu-rtdw").chain(argv.iter().copied()));
        (Flags::from_arg_matches(&matches).expect("flags").settings, Given::of(&matches))
    }

    #[test]
    fn flags_override_the_file_key_by_key() -> anyhow::Result<()> {
        let file: Settings = toml::from_str(
            "[input]\nepoch_records = 100\nepoch_ms = 20\n[kafka]\nuntil_end = true\nidle_timeout_ms = 5\n\
             group_id = \"g\"\ntopic_prefix = \"p_\"\n[sinks]\nsqlite = \"a.db\"\nretry_s = 9\n",
        )?;
        let (flags, given) =
            parse_flags(&["--epoch-records", "4096", "--sqlite", "b.db", "--class-performance-delay-ms", "7"]);
        let s = file.overridden_by(&flags, &given)?;
        assert_eq!(s.input.epoch_records, 4096, "a given flag wins even when it equals the default");
        assert_eq!(s.input.epoch_ms, Some(20));
        assert!(s.kafka.until_end, "an absent boolean flag keeps the file's true");
        assert_eq!((s.kafka.idle_timeout_ms, s.kafka.group_id.as_str(), s.kafka.topic_prefix.as_str()), (5, "g", "p_"));
        assert_eq!((s.sinks.sqlite, s.sinks.retry_s), (PathBuf::from("b.db"), 9));
        assert_eq!((s.delays.class_performance_ms, s.delays.av_quality_ms), (7, Delays::default().av_quality_ms));
        let (flags, given) = parse_flags(&["--until-end", "--topic-prefix", "t_", "--idle-timeout-ms", "30000"]);
        let s = Settings::default().overridden_by(&flags, &given)?;
        assert!(s.kafka.until_end);
        assert_eq!((s.kafka.topic_prefix.as_str(), s.kafka.idle_timeout_ms), ("t_", 30_000));
        Ok(())
    }

    #[test]
    fn defaults_are_the_flag_defaults() {
        let s = Settings::default();
        assert_eq!((s.input.input_dir, s.input.epoch_records, s.input.epoch_ms), (None, 4096, None));
        let k = &s.kafka;
        assert_eq!(
            (k.group_id.as_str(), k.signals_topic.as_str(), k.dlq_topic.as_str()),
            ("edu-rtdw", "timeline_analysis_student", "edu_rtdw_dlq")
        );
        assert_eq!(
            (k.idle_timeout_ms, k.until_end, k.exit_when_idle, k.topic_prefix.as_str()),
            (30_000, false, false, "")
        );
        assert_eq!((s.sinks.sqlite.as_path(), s.sinks.retry_s), (Path::new("edu_rtdw.db"), 300));
        let d = Delays::default();
        assert_eq!((s.delays.class_performance_ms, s.delays.av_quality_ms), (d.class_performance_ms, d.av_quality_ms));
    }

    #[test]
    fn record_limits_come_from_the_file_or_the_flags() -> anyhow::Result<()> {
        let d = Delays::default();
        let s = Settings::default();
        assert_eq!((s.input.max_message_bytes, s.delays.max_future_ms), (1_048_576, 600_000));
        assert_eq!((d.max_message_bytes, d.max_future_ms), (1_048_576, 600_000));
        let file: Settings = toml::from_str("[input]\nmax_message_bytes = 10\n[delays]\nmax_future_ms = 5\n")?;
        assert_eq!((file.input.max_message_bytes, file.delays.max_future_ms), (10, 5));
        let (flags, given) = parse_flags(&["--max-message-bytes", "20", "--max-future-ms", "7"]);
        let s = file.overridden_by(&flags, &given)?;
        assert_eq!((s.input.max_message_bytes, s.delays.max_future_ms), (20, 7));
        Ok(())
    }

    #[test]
    fn serving_comes_from_the_file_and_the_flags() -> anyhow::Result<()> {
        let s = Settings::default();
        assert_eq!((s.serving.sql_max_rows, s.serving.sql_max_connections), (100_000, 64));
        assert_eq!(s.serving.statement_timeout()?, std::time::Duration::from_secs(10));
        let file: Settings =
            toml::from_str("[serving]\nsql_password = \"pw\"\nsql_statement_timeout = \"2s\"\nsql_max_rows = 10\n")?;
        let (flags, given) = parse_flags(&["--sql-max-connections", "3"]);
        let s = file.overridden_by(&flags, &given)?;
        assert_eq!((s.serving.sql_max_rows, s.serving.sql_max_connections), (10, 3));
        assert_eq!(s.serving.statement_timeout()?, std::time::Duration::from_secs(2));
        assert_eq!(s.serving.sql_password.as_deref(), Some("pw"));
        assert!(!format!("{s:?}").contains("pw\""), "the password is never printed");
        let (flags, given) = parse_flags(&["--sql-statement-timeout", "0s"]);
        assert!(Settings::default().overridden_by(&flags, &given).is_err());
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Settings>("[sinks]\nmysqll = \"x\"").is_err());
        let s: Settings = toml::from_str("[routes]\nnope = [\"sqlite\"]").expect("parses");
        assert!(s.validate().is_err());
    }

    /// Issue 22 finding 8: negative or absurd delays, epoch sizes and intervals are refused at
    /// start with a line naming the setting, from the flags and from the file alike.
    #[test]
    fn settings_out_of_range_are_refused_by_name() -> anyhow::Result<()> {
        let refused = |flags: &[&str]| {
            let (flags, given) = parse_flags(flags);
            Settings::default().overridden_by(&flags, &given).err().map(|e| e.to_string())
        };
        let cases = [
            (&["--class-performance-delay-ms=-1"][..], "class_performance_delay_ms = -1"),
            (&["--av-quality-delay-ms=-60000"][..], "av_quality_delay_ms = -60000"),
            (&["--av-quality-delay-ms", "9223372036854775807"][..], "av_quality_delay_ms = 9223372036854775807"),
            (&["--epoch-records", "0"][..], "epoch_records = 0"),
            (&["--epoch-ms", "0"][..], "epoch_ms = 0"),
            (&["--max-inflight", "0"][..], "max_inflight = 0"),
            (&["--max-message-bytes", "0"][..], "max_message_bytes = 0"),
            (&["--idle-timeout-ms", "0"][..], "idle_timeout_ms = 0"),
            (&["--max-future-ms=-5"][..], "max_future_ms = -5"),
        ];
        for (flags, want) in cases {
            let error = refused(flags).unwrap_or_default();
            assert!(error.starts_with(want) && error.contains("out of range"), "{flags:?}: {error:?}");
        }
        assert_eq!(refused(&["--epoch-ms", "100", "--class-performance-delay-ms", "0"]), None);
        let file: Settings = toml::from_str("[input]\nepoch_records = 0\n")?;
        let (flags, given) = parse_flags(&[]);
        assert!(file.overridden_by(&flags, &given).is_err(), "the file's values are checked too");
        Ok(())
    }
}
