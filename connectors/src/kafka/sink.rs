//! The Kafka sink (SPEC §2.1, §4, §5): cleaned signals and dead letters,
//! exactly once, in Kafka transactions.
//!
//! Each [`SinkWriter::commit`] (the changes of complete logical times) is one
//! Kafka transaction holding the new cleaned signals (to the signals topic,
//! with the input's key), the new dead letters (to the DLQ topic, JSON) and a
//! progress record: the sink's committed upper, keyed by its transactional id,
//! on a compacted progress topic, as Materialize's Kafka sinks do. A
//! `read_committed` consumer therefore sees every output record exactly once,
//! and whole logical times only. Every record also carries its source position
//! in headers (`edu-source`, `edu-partition`, `edu-offset`), so a user can
//! trace it back to its input.
//!
//! Restart: the producer's `init_transactions` fences any earlier incarnation
//! with the same transactional id (a zombie after `kill -9`) and aborts its
//! open transaction; the sink then reads its last progress record (with
//! `read_committed`) and reports that upper as committed, and the sink
//! operator skips the updates below it. Logical times are a deterministic
//! function of input positions, so the replay writes exactly what was not
//! committed before.
//!
//! The transactional id is `<group id>.<sink name>`: one per sink and cluster
//! (the sink runs on worker 0 only). A commit that fails with an abortable
//! error (a broker outage that outlived the transaction) is aborted and sent
//! again; a fatal one (fenced by a newer incarnation) stops the job.

use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use dataflows::output::{Row, SqlValue};
use dataflows::student_signal_etl::SignalRow;
use dataflows::{DeadLetter, Diff, OutputRow, Pos, Time, Topic};

use super::{KafkaConfig, LogContext};
use crate::sink::SinkWriter;

/// Header names carrying an output record's source position.
const H_SOURCE: &str = "edu-source";
const H_PARTITION: &str = "edu-partition";
const H_OFFSET: &str = "edu-offset";

/// How long a transaction operation may block before it is retried or given up.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a commit keeps retrying a broker that is away.
const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
/// A commit with no records writes its progress at most this often (and always at the end).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Where the output topics are.
#[derive(Clone, Debug)]
pub struct KafkaOutputs {
    /// 2.1 cleaned signals.
    pub signals: String,
    /// Dead letters.
    pub dlq: String,
    /// The sinks' progress (compacted; created when missing).
    pub progress: String,
}

/// A progress record's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Progress {
    /// Every update at a time below it is in the output topics.
    upper: Time,
    /// The input has ended.
    complete: bool,
}

/// The Kafka sink: cleaned signals and dead letters, one transaction per commit.
pub struct KafkaSink {
    producer: BaseProducer<LogContext>,
    outputs: KafkaOutputs,
    /// The transactional id, also the progress record's key.
    id: String,
    committed: Time,
    last_progress: Option<Instant>,
}

impl KafkaSink {
    /// Connects as sink `name` of the cluster of `cfg` (fencing an earlier incarnation), and
    /// reads what it already committed from the progress topic.
    pub fn open(cfg: &KafkaConfig, outputs: KafkaOutputs, name: &str) -> anyhow::Result<Self> {
        super::admin::ensure_compacted_topic(cfg, &outputs.progress)?;
        let id = format!("{}.{name}", cfg.group_id);
        let producer = cfg.transactional_producer(&id)?;
        producer
            .init_transactions(TXN_TIMEOUT)
            .map_err(|e| anyhow!("Kafka sink {id}: cannot start transactions at {}: {e}", cfg.brokers))?;
        let committed = read_progress(cfg, &outputs.progress, &id)?.map_or(0, |p| p.upper);
        Ok(KafkaSink { producer, outputs, id, committed, last_progress: None })
    }

    fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        position: Option<(Topic, Pos)>,
    ) -> anyhow::Result<()> {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
        if let Some((source, pos)) = position {
            record = record.headers(
                OwnedHeaders::new()
                    .insert(Header { key: H_SOURCE, value: Some(source.default_name()) })
                    .insert(Header { key: H_PARTITION, value: Some(&pos.partition.to_string()) })
                    .insert(Header { key: H_OFFSET, value: Some(&pos.offset.to_string()) }),
            );
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(100));
                    record = r;
                }
                Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
            }
        }
    }

    /// Sends `records` and the progress record in one transaction and commits it.
    fn transaction(&self, records: &[&OutputRow], progress: &Progress, stamp: i64) -> Result<(), KafkaError> {
        self.producer.begin_transaction()?;
        let sent: anyhow::Result<()> = records.iter().try_for_each(|row| match row {
            OutputRow::Signal(signal) => {
                let position = Some((Topic::Timeline, signal.0));
                self.send(&self.outputs.signals, signal.1.key.as_deref(), &signal_json(signal, stamp), position)
            }
            OutputRow::Dead(d) => self.send(&self.outputs.dlq, None, &dead_letter_json(d), Some((d.source, d.pos))),
            _ => Ok(()),
        });
        let value = serde_json::to_vec(progress).unwrap_or_default();
        let sent = sent.and_then(|()| self.send(&self.outputs.progress, Some(self.id.as_bytes()), &value, None));
        if let Err(e) = sent {
            tracing::warn!(sink = %self.id, "kafka: {e:#}; aborting the transaction");
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail));
        }
        self.producer.commit_transaction(TXN_TIMEOUT)
    }

    /// Commits `records` and `progress`, retrying what the broker lets us retry.
    fn commit_records(&self, records: &[&OutputRow], progress: &Progress, stamp: i64) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let error = match self.transaction(records, progress, stamp) {
                Ok(()) => {
                    super::config::brokers_answered();
                    return Ok(());
                }
                Err(e) => e,
            };
            let txn = match &error {
                KafkaError::Transaction(t) => Some(t),
                _ => None,
            };
            if txn.is_some_and(|t| t.is_fatal()) {
                bail!("Kafka sink {}: {error} (another incarnation of this sink fenced it?)", self.id);
            }
            if started.elapsed() > GIVE_UP_AFTER {
                bail!("Kafka sink {}: cannot commit for {} s: {error}", self.id, GIVE_UP_AFTER.as_secs());
            }
            tracing::warn!(sink = %self.id, "kafka: transaction not committed ({error}); retrying");
            if txn.is_some_and(|t| t.is_retriable() && !t.txn_requires_abort()) {
                // The commit itself may go through on a retry; a retried commit is idempotent.
                if self.producer.commit_transaction(TXN_TIMEOUT).is_ok() {
                    super::config::brokers_answered();
                    return Ok(());
                }
            }
            if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
                tracing::warn!(sink = %self.id, "kafka: cannot abort the transaction yet ({e})");
            }
        }
    }
}

/// The last progress record of sink `id` on `topic`, read committed.
fn read_progress(cfg: &KafkaConfig, topic: &str, id: &str) -> anyhow::Result<Option<Progress>> {
    let mut c = cfg.client_config();
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    let consumer: rdkafka::consumer::BaseConsumer =
        c.create().map_err(|e| anyhow!("cannot create a Kafka consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl).map_err(|e| anyhow!("cannot read the progress topic {topic}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = None;
    loop {
        if Instant::now() > deadline {
            bail!("timed out reading the progress topic {topic}");
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(last),
            Some(Err(e)) => tracing::warn!("kafka: reading the progress topic {topic}: {e}"),
            Some(Ok(msg)) if msg.key() == Some(id.as_bytes()) => {
                let value = msg.payload().unwrap_or_default();
                let progress: Progress = serde_json::from_slice(value)
                    .with_context(|| format!("unreadable progress record of sink {id} in {topic}"))?;
                last = Some(progress);
            }
            Some(Ok(_)) => {}
        }
    }
}

/// A row as the flat JSON object of a Kafka output value: its table's columns by name
/// (timestamps as ms, bytes as lossy UTF-8), without the columns in `drop`, and with the
/// table's stamp column set to `stamp` (ms) when given.
pub fn row_json<R: Row>(row: &R, drop: &[&str], stamp: Option<i64>) -> Vec<u8> {
    use serde_json::Value;
    let mut object = serde_json::Map::new();
    for ((name, _), value) in R::TABLE.columns.iter().zip(row.values()) {
        if drop.contains(name) {
            continue;
        }
        let value = match value {
            SqlValue::Null => Value::Null,
            SqlValue::Int(i) | SqlValue::Millis(i) => Value::from(i),
            SqlValue::Double(d) => Value::from(d),
            SqlValue::Text(t) => Value::String(t),
            SqlValue::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        };
        object.insert(name.to_string(), value);
    }
    if let (Some((name, _)), Some(ms)) = (R::TABLE.stamp, stamp) {
        object.insert(name.to_string(), Value::from(ms));
    }
    Value::Object(object).to_string().into_bytes()
}

/// The DLQ value: JSON with source, partition, offset, metric, reason and raw (lossy UTF-8).
pub fn dead_letter_json(d: &DeadLetter) -> Vec<u8> {
    row_json(d, &[], None)
}

/// The cleaned-signal value of SPEC §2.1, stamped with `time_stamp` (ms); its source position
/// travels in the headers.
pub fn signal_json(row: &SignalRow, time_stamp: i64) -> Vec<u8> {
    row_json(row, &["src_partition", "src_offset"], Some(time_stamp))
}

impl SinkWriter for KafkaSink {
    fn committed_upper(&self) -> Time {
        self.committed
    }

    fn commit(&mut self, upper: Time, complete: bool, changes: &[(OutputRow, Diff)]) -> anyhow::Result<()> {
        // Signals and dead letters are only ever inserted.
        let mut records: Vec<&OutputRow> = changes
            .iter()
            .filter(|(row, diff)| *diff > 0 && matches!(row, OutputRow::Signal(_) | OutputRow::Dead(_)))
            .map(|(row, _)| row)
            .collect();
        let quiet = self.last_progress.is_some_and(|t| t.elapsed() < PROGRESS_EVERY);
        if records.is_empty() && !complete && quiet {
            return Ok(());
        }
        records.sort_by_key(|row| match row {
            OutputRow::Dead(d) => (d.source, d.pos),
            OutputRow::Signal(s) => (Topic::Timeline, s.0),
            _ => (Topic::Timeline, Pos { partition: 0, offset: 0 }),
        });
        self.commit_records(&records, &Progress { upper, complete }, crate::wall_clock::now_millis())?;
        self.committed = upper;
        self.last_progress = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dataflows::student_signal_etl::{CleanSignal, SignalEvent};
    use dataflows::{DeadLetter, Metric, Pos, Topic};
    use serde_json::json;

    use super::{dead_letter_json, signal_json};

    fn parse(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("JSON")
    }

    #[test]
    fn a_signal_value_has_the_fields_of_spec_2_1() {
        let signal = CleanSignal {
            message_create_time: Some("2025-12-01 10:00:00".into()),
            message_time_stamp: Some(1_764_583_200_000),
            user_id: Some("7".into()),
            room_id: Some("305".into()),
            role: Some("2".into()),
            msg_id: Some("305".into()),
            msg_type: Some("116".into()),
            target_id: None,
            target_type: Some("shape".into()),
            action: Some("move".into()),
            sub_action: None,
            page_index: Some("3".into()),
            event: SignalEvent::MoveImage,
            key: Some(b"k".to_vec()),
        };
        let value = parse(&signal_json(&(Pos { partition: 1, offset: 9 }, Box::new(signal)), 42));
        let expected = json!({
            "messageCreateTime": "2025-12-01 10:00:00", "timeStamp": 42, "messageTimeStamp": 1_764_583_200_000_i64,
            "userId": "7", "roomId": "305", "role": "2", "msgId": "305", "msgType": "116", "targetId": null,
            "targetType": "shape", "action": "move", "subAction": null, "pageIndex": "3", "event": "MOVE_IMAGE",
        });
        assert_eq!(value, expected);
    }

    #[test]
    fn a_dead_letter_value_keeps_raw_as_lossy_text() {
        let dead = DeadLetter {
            source: Topic::Agora,
            pos: Pos { partition: 2, offset: 5 },
            metric: Some(Metric::AvQuality30s),
            reason: "bad_field:event".into(),
            raw: b"{\xff}".to_vec(),
        };
        let expected = json!({
            "source": "agora_record", "partition": 2, "offset": 5, "metric": "av_quality_30s",
            "reason": "bad_field:event", "raw": "{\u{fffd}}",
        });
        assert_eq!(parse(&dead_letter_json(&dead)), expected);
        let unread = DeadLetter { metric: None, reason: "not_json".into(), ..dead };
        assert_eq!(parse(&dead_letter_json(&unread))["metric"], "*");
    }
}
