//! Kafka in and out (SPEC §1, §2.1, §4, §5), over librdkafka.
//!
//! * [`config`]: brokers, properties and the clients made from them.
//! * [`source`]: this worker's partitions as a [`crate::source::Logs`] reader
//!   (one queue per partition), partition discovery, the consumer group's
//!   offset commits.
//! * [`sink`]: cleaned signals and dead letters, exactly once, in Kafka transactions.
//! * [`admin`]: the sinks' progress topic, created when missing.
//! * [`producer`]: the sample generator's producer.

pub mod admin;
pub mod config;
pub mod producer;
pub mod sink;
pub mod source;

pub use config::{KafkaConfig, LogContext};
pub use producer::{Produced, produce_sample};
pub use sink::{KafkaOutputs, KafkaSink, dead_letter_json, row_json, signal_json};
pub use source::{
    KafkaLogs, KafkaPartition, OffsetCommitter, SourceOptions, check_retained, discover, fetch_ends, kafka_source,
};
