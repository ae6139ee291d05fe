//! edu-rtdw connectors: where the metrics' input comes from and where their
//! tables go.
//!
//! * [`files`]: file replay of the Kafka layout `<dir>/<topic>/<partition>.jsonl`.
//! * [`tables`]: the output tables of SPEC §2 as portable column lists.
//! * [`sink`]: the transactional sink operator (one writer per cluster).
//! * [`sqlite`]: the embedded SQLite sink.
//! * [`sample`]: the seeded sample-data generator behind `edu-rtdw gen`.

pub mod files;
pub mod sample;
pub mod sink;
pub mod sqlite;
pub mod tables;
