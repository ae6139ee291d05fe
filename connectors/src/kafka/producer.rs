//! `edu-rtdw gen --brokers`: the seeded sample produced into the source topics.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer};

use super::KafkaConfig;

/// What [`produce_sample`] did.
#[derive(Clone, Copy, Debug)]
pub struct Produced {
    /// Records produced.
    pub sent: u64,
    /// With a rate: how far the sends fell behind their schedule at worst.
    pub max_behind: Duration,
}

/// Produces the generated sample into the source topics (`name_of` maps default to actual names).
///
/// `rate`: records per second, open loop: record `i` is due `i / rate` seconds
/// after the start and carries that *scheduled* time as its Kafka timestamp
/// (CreateTime), even when the send itself is late, so that latency measured
/// from the timestamp includes any queueing in the producer or the broker.
/// Without a rate, as fast as possible, stamped with the send time.
pub fn produce_sample(
    cfg: &KafkaConfig,
    opts: &crate::sample::GenOptions,
    name_of: impl Fn(&str) -> String,
    rate: Option<u64>,
) -> anyhow::Result<Produced> {
    let producer = cfg.producer()?;
    let started = Instant::now();
    let wall_start = crate::wall_clock::now_millis();
    let mut sent = 0u64;
    let mut max_behind = Duration::ZERO;
    let names: HashMap<&str, String> = crate::sample::TOPICS.iter().map(|t| (*t, name_of(t))).collect();
    let rate = rate.filter(|r| *r > 0);
    for msg in crate::sample::messages(opts) {
        let topic = &names[msg.topic];
        let stamp = match rate {
            Some(rate) => {
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                let elapsed = started.elapsed();
                match due.checked_sub(elapsed) {
                    // Sleep only when at least 1 ms ahead: fewer syscalls, sends at most 1 ms early.
                    Some(wait) if wait >= Duration::from_millis(1) => std::thread::sleep(wait),
                    Some(_) => {}
                    None => max_behind = max_behind.max(elapsed - due),
                }
                wall_start + due.as_millis() as i64
            }
            None => crate::wall_clock::now_millis(),
        };
        let mut record =
            BaseRecord::<[u8], [u8]>::to(topic).payload(&msg.value).partition(msg.partition as i32).timestamp(stamp);
        if !msg.key.is_empty() {
            record = record.key(&msg.key);
        }
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(50));
                    record = r;
                }
                Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).map_err(|e| anyhow!("flush to Kafka failed: {e}"))?;
    Ok(Produced { sent, max_behind })
}
