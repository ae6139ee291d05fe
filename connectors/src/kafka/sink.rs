//! The Kafka sink (SPEC §2.1, §4): cleaned signals and dead letters, exactly
//! once per source position.
//!
//! Cleaned signals go to the signals topic with the input's key and dead
//! letters to the DLQ topic (JSON value), through an idempotent producer with
//! `acks=all`. Every output record carries its source position in headers
//! (`edu-source`, `edu-partition`, `edu-offset`). After each flush the sink
//! records, in its SQLite state file and in one transaction, the highest
//! source offset written per source partition and the end offsets of its
//! output partitions. On restart it reads its output partitions from the
//! recorded end offsets to their ends, learns from the headers which source
//! positions were written after the last record (a crash between flush and
//! record), and skips every position already written: a crash never doubles
//! an output record, without broker transactions.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use dataflows::output::{Row, SqlValue};
use dataflows::student_signal_etl::SignalRow;
use dataflows::{DeadLetter, Diff, OutputRow, Pos, Time, Topic};

use super::{KafkaConfig, LogContext};
use crate::sink::SinkWriter;

/// Header names carrying an output record's source position.
const H_SOURCE: &str = "edu-source";
const H_PARTITION: &str = "edu-partition";
const H_OFFSET: &str = "edu-offset";

/// The Kafka sink: cleaned signals and dead letters, exactly once per source position.
pub struct KafkaSink {
    producer: BaseProducer<LogContext>,
    signals_topic: String,
    dlq_topic: String,
    state: rusqlite::Connection,
    /// Highest source offset written, per (source topic, partition).
    written: HashMap<(String, u32), u64>,
    flush_timeout: Duration,
}

impl KafkaSink {
    /// Connects, and learns from the state file and the output topics what was already written.
    pub fn open(cfg: &KafkaConfig, signals_topic: &str, dlq_topic: &str, state_path: &Path) -> anyhow::Result<Self> {
        let state = rusqlite::Connection::open(state_path)
            .with_context(|| format!("cannot open Kafka sink state {}", state_path.display()))?;
        state.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS edu_rtdw_kafka_written (source TEXT, partition INTEGER, max_offset INTEGER, PRIMARY KEY (source, partition));
             CREATE TABLE IF NOT EXISTS edu_rtdw_kafka_outputs (topic TEXT, partition INTEGER, end_offset INTEGER, PRIMARY KEY (topic, partition));",
        )?;
        let mut written = HashMap::new();
        {
            let mut stmt = state.prepare("SELECT source, partition, max_offset FROM edu_rtdw_kafka_written")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
                let (s, p, o) = row?;
                written.insert((s, p as u32), o as u64);
            }
        }
        let mut outputs: HashMap<(String, i32), i64> = HashMap::new();
        {
            let mut stmt = state.prepare("SELECT topic, partition, end_offset FROM edu_rtdw_kafka_outputs")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
                let (t, p, o) = row?;
                outputs.insert((t, p as i32), o);
            }
        }
        let mut sink = KafkaSink {
            producer: cfg.producer()?,
            signals_topic: signals_topic.to_string(),
            dlq_topic: dlq_topic.to_string(),
            state,
            written,
            flush_timeout: Duration::from_secs(30),
        };
        for topic in [signals_topic, dlq_topic] {
            sink.read_back(cfg, topic, &outputs)?;
        }
        Ok(sink)
    }

    /// Reads `topic` from the recorded end offsets to its end, folding the headers into `written`.
    fn read_back(
        &mut self,
        cfg: &KafkaConfig,
        topic: &str,
        recorded: &HashMap<(String, i32), i64>,
    ) -> anyhow::Result<()> {
        let consumer = cfg.consumer()?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .map_err(|e| anyhow!("cannot read metadata of output topic {topic}: {e}"))?;
        let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
        if partitions == 0 {
            bail!("output topic {topic} does not exist (create it, e.g. with scripts/kafka-up.sh)");
        }
        let mut tpl = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for p in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .map_err(|e| anyhow!("cannot read the end of {topic}/{p}: {e}"))?;
            let from = recorded.get(&(topic.to_string(), p)).copied().unwrap_or(0);
            if high > from {
                tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
                ends.insert(p, high);
            }
        }
        if ends.is_empty() {
            return Ok(());
        }
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ends.is_empty() {
            if Instant::now() > deadline {
                bail!("timed out reading back output topic {topic}");
            }
            let Some(result) = consumer.poll(Duration::from_millis(500)) else { continue };
            let msg = result.map_err(|e| anyhow!("reading back {topic}: {e}"))?;
            if let Some((source, partition, offset)) = position_of(&msg) {
                let e = self.written.entry((source, partition)).or_insert(offset);
                *e = (*e).max(offset);
            }
            if ends.get(&msg.partition()).is_some_and(|end| msg.offset() + 1 >= *end) {
                ends.remove(&msg.partition());
            }
        }
        Ok(())
    }

    fn already_written(&self, source: Topic, pos: Pos) -> bool {
        self.written.get(&(source.default_name().to_string(), pos.partition)).is_some_and(|max| pos.offset <= *max)
    }

    fn send(&self, topic: &str, key: Option<&[u8]>, value: &[u8], source: Topic, pos: Pos) -> anyhow::Result<()> {
        let headers = OwnedHeaders::new()
            .insert(Header { key: H_SOURCE, value: Some(source.default_name()) })
            .insert(Header { key: H_PARTITION, value: Some(&pos.partition.to_string()) })
            .insert(Header { key: H_OFFSET, value: Some(&pos.offset.to_string()) });
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        let mut record = record;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    self.producer.poll(Duration::from_millis(100));
                    record = r;
                }
                Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
            }
        }
    }

    fn record_progress(&mut self, touched: &HashMap<(String, u32), u64>) -> anyhow::Result<()> {
        let mut ends = Vec::new();
        for topic in [&self.signals_topic, &self.dlq_topic] {
            let md = self.producer.client().fetch_metadata(Some(topic), Duration::from_secs(30))?;
            let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
            for p in 0..partitions {
                let (_, high) = self.producer.client().fetch_watermarks(topic, p, Duration::from_secs(30))?;
                ends.push((topic.clone(), p, high));
            }
        }
        let tx = self.state.transaction()?;
        for ((source, partition), offset) in touched {
            tx.execute(
                "INSERT INTO edu_rtdw_kafka_written (source, partition, max_offset) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source, partition) DO UPDATE SET max_offset = MAX(max_offset, excluded.max_offset)",
                rusqlite::params![source, *partition as i64, *offset as i64],
            )?;
        }
        for (topic, p, high) in ends {
            tx.execute(
                "INSERT INTO edu_rtdw_kafka_outputs (topic, partition, end_offset) VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, partition) DO UPDATE SET end_offset = excluded.end_offset",
                rusqlite::params![topic, p as i64, high],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The source position in an output record's headers.
fn position_of<M: Message>(msg: &M) -> Option<(String, u32, u64)> {
    let headers = msg.headers()?;
    let mut source = None;
    let mut partition = None;
    let mut offset = None;
    for h in headers.iter() {
        let value = h.value.and_then(|v| std::str::from_utf8(v).ok());
        match h.key {
            H_SOURCE => source = value.map(str::to_string),
            H_PARTITION => partition = value.and_then(|v| v.parse().ok()),
            H_OFFSET => offset = value.and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    Some((source?, partition?, offset?))
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

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl SinkWriter for KafkaSink {
    fn committed_upper(&self) -> Time {
        // Exactly-once here is by source position, not by logical time.
        0
    }

    fn commit(&mut self, _upper: Time, _complete: bool, changes: &[(OutputRow, Diff)]) -> anyhow::Result<()> {
        let stamp = now_millis();
        let mut touched: HashMap<(String, u32), u64> = HashMap::new();
        let mut records: Vec<(Topic, Pos, &OutputRow)> = changes
            .iter()
            .filter(|(_, diff)| *diff > 0)
            .filter_map(|(row, _)| match row {
                OutputRow::Signal((pos, _)) => Some((Topic::Timeline, *pos, row)),
                OutputRow::Dead(d) => Some((d.source, d.pos, row)),
                _ => None,
            })
            .collect();
        records.sort_by_key(|(t, p, _)| (*t, *p));
        for (source, pos, row) in records {
            if self.already_written(source, pos) {
                continue;
            }
            match row {
                OutputRow::Signal(signal) => {
                    let key = signal.1.key.as_deref();
                    self.send(&self.signals_topic, key, &signal_json(signal, stamp), source, pos)?
                }
                OutputRow::Dead(d) => self.send(&self.dlq_topic, None, &dead_letter_json(d), source, pos)?,
                _ => {}
            }
            let e = touched.entry((source.default_name().to_string(), pos.partition)).or_insert(pos.offset);
            *e = (*e).max(pos.offset);
        }
        if touched.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        while let Err(e) = self.producer.flush(self.flush_timeout) {
            if started.elapsed() > Duration::from_secs(600) {
                bail!("Kafka flush failed for 10 minutes: {e}");
            }
            tracing::warn!("kafka: flush not done yet ({e}); retrying");
        }
        // A failed delivery is never recorded as written: fail, and let the restart's read-back resend it.
        let failed = self.producer.context().failed_deliveries.swap(0, Ordering::Relaxed);
        if failed > 0 {
            bail!("{failed} Kafka deliveries failed; restart to resend them (nothing is recorded as written)");
        }
        self.record_progress(&touched)?;
        for (k, v) in touched {
            let e = self.written.entry(k).or_insert(v);
            *e = (*e).max(v);
        }
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
