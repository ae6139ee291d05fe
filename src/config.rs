//! Configuration: a TOML file (`--config`) overridden by flags.
//!
//! Every key is optional; see `edu-rtdw.sample.toml` for all of them. Routing
//! (which table goes to which sink) defaults to the seed's layout when the
//! servers are configured: 2.3, 2.4, 2.5, 2.7 to MySQL, 2.2 and 2.6 to
//! PostgreSQL; every table not routed elsewhere goes to the SQLite file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

use connectors::tables::ALL;

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where input comes from and how it is clocked.
    pub input: InputSettings,
    /// Kafka input and outputs.
    pub kafka: KafkaSettings,
    /// Event-time settings.
    pub delays: DelaySettings,
    /// Sink locations.
    pub sinks: SinkSettings,
    /// Per metric (or `dead_letters`): the sinks it goes to (`sqlite`, `mysql`, `postgres`, `kafka`).
    pub routes: BTreeMap<String, Vec<String>>,
}

/// `[input]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InputSettings {
    /// File replay directory.
    pub input_dir: Option<PathBuf>,
    /// Records per partition per logical time.
    pub epoch_records: u64,
    /// Kafka without `until_end`: close a logical time every this many ms (live epochs).
    pub epoch_ms: Option<u64>,
}

impl Default for InputSettings {
    fn default() -> Self {
        InputSettings { input_dir: None, epoch_records: 4096, epoch_ms: None }
    }
}

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers (`host:port,...`); Kafka is used when set.
    pub brokers: Option<String>,
    /// Consumer group id (offsets are committed under it; partitions are assigned, not balanced).
    pub group_id: String,
    /// Source topic names, by their default name.
    pub topics: BTreeMap<String, String>,
    /// Prefix added to every topic name, sources and outputs alike.
    pub topic_prefix: String,
    /// Topic of the cleaned signals (2.1).
    pub signals_topic: String,
    /// Dead-letter topic.
    pub dlq_topic: String,
    /// Read every partition up to its high watermark at start, then finish like file replay.
    pub until_end: bool,
    /// A partition with no new records for this long stops holding the watermark back (ms).
    pub idle_timeout_ms: u64,
    /// Finish (like `until_end`) once a worker has read something and then nothing for `idle_timeout_ms`.
    pub exit_when_idle: bool,
    /// librdkafka properties passed through (`security.protocol`, `sasl.*`, `ssl.*`, ...).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: None,
            group_id: "edu-rtdw".to_string(),
            topics: BTreeMap::new(),
            topic_prefix: String::new(),
            signals_topic: "timeline_analysis_student".to_string(),
            dlq_topic: "edu_rtdw_dlq".to_string(),
            until_end: false,
            idle_timeout_ms: 30_000,
            exit_when_idle: false,
            properties: BTreeMap::new(),
        }
    }
}

/// `[delays]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DelaySettings {
    /// Watermark delay of class_performance_1m (ms).
    pub class_performance_ms: i64,
    /// Watermark delay of av_quality_30s (ms).
    pub av_quality_ms: i64,
}

impl Default for DelaySettings {
    fn default() -> Self {
        let d = dataflows::ingest::Delays::default();
        DelaySettings { class_performance_ms: d.class_performance_ms, av_quality_ms: d.av_quality_ms }
    }
}

/// `[sinks]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// SQLite file.
    pub sqlite: PathBuf,
    /// MySQL URL (`mysql://user:password@host:port/db`).
    pub mysql: Option<String>,
    /// PostgreSQL URL (`postgres://user:password@host:port/db`).
    pub postgres: Option<String>,
    /// How long a MySQL/PostgreSQL commit retries a lost connection before the job fails (seconds).
    pub retry_s: u64,
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings { sqlite: PathBuf::from("edu_rtdw.db"), mysql: None, postgres: None, retry_s: 300 }
    }
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

/// The route names of the output tables, in `tables::ALL` order.
pub fn route_names() -> Vec<&'static str> {
    dataflows::Metric::ALL.iter().map(|m| m.name()).chain(["dead_letters"]).collect()
}

impl Settings {
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

    /// Which sinks each output table (in `tables::ALL` order) goes to.
    pub fn routes(&self) -> Vec<Vec<SinkKind>> {
        route_names()
            .into_iter()
            .zip(ALL.iter())
            .map(|(route, table)| match self.routes.get(route) {
                Some(sinks) => sinks.iter().filter_map(|s| SinkKind::parse(s)).collect(),
                None => self.default_route(route, table.name),
            })
            .collect()
    }

    fn default_route(&self, route: &str, _table: &str) -> Vec<SinkKind> {
        use dataflows::Metric::*;
        let metric = dataflows::Metric::from_name(route);
        let mut sinks = Vec::new();
        match metric {
            Some(ClassPerformance1m | OfflineStudyTime | AvQuality30s | DailyCcConfirmations)
                if self.sinks.mysql.is_some() =>
            {
                sinks.push(SinkKind::Mysql)
            }
            Some(ChannelDim | HourlyRegistrationsByLevel) if self.sinks.postgres.is_some() => {
                sinks.push(SinkKind::Postgres)
            }
            _ => sinks.push(SinkKind::Sqlite),
        }
        if self.kafka.brokers.is_some() && matches!(metric, Some(StudentSignalEtl) | None) {
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
        assert_eq!(routes[2], vec![SinkKind::Mysql]);
        assert_eq!(routes[1], vec![SinkKind::Postgres]);
        assert_eq!(routes[0], vec![SinkKind::Sqlite, SinkKind::Kafka]);
    }

    #[test]
    fn defaults_send_everything_to_sqlite() {
        assert!(Settings::default().routes().iter().all(|r| r == &vec![SinkKind::Sqlite]));
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Settings>("[sinks]\nmysqll = \"x\"").is_err());
        let s: Settings = toml::from_str("[routes]\nnope = [\"sqlite\"]").expect("parses");
        assert!(s.validate().is_err());
    }
}
