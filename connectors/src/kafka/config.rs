//! How edu-rtdw talks to Kafka: broker settings and the clients made from them.
//!
//! [`KafkaConfig`] holds the brokers, the user's librdkafka properties (passed
//! through as they are) and the consumer group; it makes every consumer and
//! producer of the program, forcing what correctness needs (no auto-commit,
//! reading from the earliest offset; an idempotent producer with `acks=all`
//! that never drops a message) and defaulting what latency needs.
//! [`LogContext`] turns librdkafka's error callbacks into rate-limited log
//! lines; brokers going away are one line for the whole process (every client
//! of the job sees the same outage), and their answering again is another
//! ([`brokers_answered`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// How to reach the brokers.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// librdkafka properties passed through as they are.
    pub properties: BTreeMap<String, String>,
    /// Consumer group id (used for offset commits only; partitions are assigned).
    pub group_id: String,
}

impl KafkaConfig {
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// A consumer of the group that commits nothing by itself and reads committed records only.
    pub(crate) fn consumer(&self) -> anyhow::Result<BaseConsumer<LogContext>> {
        self.consumer_with_eof(false)
    }

    /// [`Self::consumer`], reporting each partition's end when `eof` (a bounded read: the last
    /// offsets of a transactional log are commit markers that are never delivered).
    pub(crate) fn consumer_with_eof(&self, eof: bool) -> anyhow::Result<BaseConsumer<LogContext>> {
        let mut c = self.client_config();
        c.set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", if eof { "true" } else { "false" })
            .set("auto.offset.reset", "earliest")
            // A transactional upstream's aborted records are never read (nor open ones, until they commit).
            .set("isolation.level", "read_committed");
        c.create_with_context(LogContext::default()).map_err(|e| anyhow!("cannot create Kafka consumer: {e}"))
    }

    /// An idempotent producer with `acks=all` whose messages never time out
    /// (`message.timeout.ms=0`): while the broker is away, flushes wait and retry.
    /// Those three override the properties; `linger.ms` is 5 unless the properties set it.
    pub fn producer(&self) -> anyhow::Result<BaseProducer<LogContext>> {
        self.producer_config()
            .create_with_context(LogContext::default())
            .map_err(|e| anyhow!("cannot create Kafka producer: {e}"))
    }

    /// A transactional producer with id `transactional_id` (idempotent, `acks=all`): each
    /// commit of a sink is one Kafka transaction. `transaction.timeout.ms` is 60 s unless the
    /// properties set it, and messages wait for as long as their transaction may.
    pub fn transactional_producer(&self, transactional_id: &str) -> anyhow::Result<BaseProducer<LogContext>> {
        let mut c = self.producer_config();
        let timeout = self.properties.get("transaction.timeout.ms").map_or("60000", String::as_str).to_string();
        c.set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", &timeout)
            .set("message.timeout.ms", &timeout);
        c.create_with_context(LogContext::default()).map_err(|e| anyhow!("cannot create Kafka producer: {e}"))
    }

    /// The configuration of [`Self::producer`].
    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut c = self.client_config();
        if !self.properties.contains_key("linger.ms") {
            c.set("linger.ms", "5");
        }
        c.set("enable.idempotence", "true").set("acks", "all").set("message.timeout.ms", "0");
        c
    }
}

/// Logs librdkafka errors as one line each, at most one line per kind every 10 s,
/// and counts failed deliveries. Errors that say the brokers cannot be reached are
/// [`brokers_away`] instead.
#[derive(Default)]
pub struct LogContext {
    last: Mutex<HashMap<String, Instant>>,
    pub(crate) failed_deliveries: AtomicU64,
}

impl ClientContext for LogContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // The end of a partition (reported to the sources, which read it from their queues)
        // is no error, whichever queue it reaches.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        if unreachable(&error) {
            // "0/1 brokers are down" (a client's count while it connects or closes) is no outage.
            if !reason.starts_with("0/") {
                brokers_away(&error, reason);
            }
            return;
        }
        let kind = format!("{error}");
        let Ok(mut last) = self.last.lock() else { return };
        let now = Instant::now();
        if last.get(&kind).is_none_or(|t| now.duration_since(*t) > Duration::from_secs(10)) {
            last.insert(kind, now);
            tracing::warn!("kafka: {error}: {reason} (retrying)");
        }
    }
}

impl ConsumerContext for LogContext {}
impl ProducerContext for LogContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed_deliveries.fetch_add(1, Ordering::Relaxed);
            self.error(e.clone(), "delivery failed");
        }
    }
}

/// Whether `error` says that the brokers cannot be reached (connection refused or lost,
/// name not resolved, every broker down).
fn unreachable(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::Resolve)
    )
}

/// The brokers are away (process-wide: every client of the job reports the same outage).
static AWAY: AtomicBool = AtomicBool::new(false);
/// Since when they are away, or (when they are not) when they last answered again.
static SINCE: Mutex<Option<Instant>> = Mutex::new(None);
/// How long after an outage ends its errors are still taken for late reports of it: a
/// client reports an error when it is next polled, and some (the group's committer) are
/// polled only when the sinks commit again.
const LATE_REPORTS: Duration = Duration::from_secs(10);

/// Logs the first error of an outage as one warning; the rest, from every client, go to
/// `debug` until [`brokers_answered`] (and for [`LATE_REPORTS`] after it). librdkafka
/// reconnects by itself meanwhile.
fn brokers_away(error: &KafkaError, reason: &str) {
    let Ok(mut since) = SINCE.lock() else { return };
    let late = since.is_some_and(|t| t.elapsed() < LATE_REPORTS);
    if AWAY.load(Ordering::Acquire) || late {
        tracing::debug!("kafka: {error}: {reason}");
        return;
    }
    AWAY.store(true, Ordering::Release);
    *since = Some(Instant::now());
    tracing::warn!("kafka: brokers unreachable ({error}: {reason}); waiting for them to answer again");
}

/// Called when a broker has answered (a record read, a transaction committed): ends an
/// outage logged by [`LogContext`] with one `info` line. A relaxed load when there is none.
pub fn brokers_answered() {
    if !AWAY.load(Ordering::Relaxed) {
        return;
    }
    let Ok(mut since) = SINCE.lock() else { return };
    if !AWAY.swap(false, Ordering::AcqRel) {
        return;
    }
    let away = since.map_or(0.0, |t| t.elapsed().as_secs_f64());
    *since = Some(Instant::now());
    tracing::info!("kafka: brokers answer again after {away:.1} s unreachable");
}

#[cfg(test)]
mod tests {
    use super::KafkaConfig;

    fn with(properties: &[(&str, &str)]) -> KafkaConfig {
        let properties = properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        KafkaConfig { brokers: "127.0.0.1:1".into(), properties, group_id: "g".into() }
    }

    #[test]
    fn the_producer_batches_as_told_but_stays_idempotent() {
        let default = with(&[]).producer_config();
        assert_eq!(default.get("linger.ms"), Some("5"));
        let told =
            with(&[("linger.ms", "100"), ("enable.idempotence", "false"), ("acks", "1"), ("batch.size", "65536")])
                .producer_config();
        assert_eq!(told.get("linger.ms"), Some("100"));
        assert_eq!(told.get("batch.size"), Some("65536"));
        assert_eq!(told.get("enable.idempotence"), Some("true"));
        assert_eq!(told.get("acks"), Some("all"));
        assert_eq!(told.get("message.timeout.ms"), Some("0"));
    }
}
