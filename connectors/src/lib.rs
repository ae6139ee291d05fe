//! edu-rtdw connectors: where the metrics' input comes from and where their
//! tables go.
//!
//! * [`checkpoint`]: checkpoint files (shards, manifests, the newest complete one).
//! * [`clock`]: which logical time each input position gets.
//! * [`files`]: file replay of the Kafka layout `<dir>/<topic>/<partition>.jsonl`.
//! * [`tables`]: the output tables of SPEC §2 as portable column lists.
//! * [`kafka`]: Kafka source (assigned partitions) and the signals/DLQ sink.
//! * [`sink`]: the transactional sink operator (one writer per cluster).
//! * [`latency`]: end-to-end latency accounting (record timestamp to commit).
//! * [`metrics`]: the process-wide registry behind the admin `/metrics` endpoint.
//! * [`sqlite`]: the embedded SQLite sink.
//! * [`mysql`], [`postgres`]: the MySQL / PostgreSQL sinks ([`sql`]: what they share).
//! * [`sample`]: the seeded sample-data generator behind `edu-rtdw gen`.
//! * [`wall_clock`]: the program's one `now_millis`.

pub mod checkpoint;
pub mod clock;
pub mod fatal;
pub mod files;
pub mod identity;
pub mod kafka;
pub mod latency;
pub mod metrics;
pub mod mysql;
pub mod postgres;
pub mod sample;
pub mod secrets;
pub mod server_sink;
pub mod sink;
pub mod source;
pub mod sql;
pub mod sqlite;
pub mod tables;
pub mod wall_clock;
