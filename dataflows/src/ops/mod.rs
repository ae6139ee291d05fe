//! Generic stateful operators shared by the metrics, as extension traits, so that a
//! metric's dataflow reads like the SQL it replaces.
//!
//! Inputs of this warehouse are append-only logs, so the state a metric needs
//! is bounded by its keys, not by its records: [`FoldByKey::fold_by_key`] keeps
//! one value per key (latest record, per-column LAST_VALUE, first play) and
//! [`Tumbling::tumbling`] keeps only open event-time windows. Both turn their
//! state changes into differential updates, so everything downstream is an
//! ordinary differential collection. [`Inserts::inserts`] and
//! [`DistinctInserts::distinct_inserts`] turn an append-only stream into a
//! collection (all of it, or each distinct record once), and
//! [`SplitLate::split_late`] parts a window operator's output into final windows
//! and `late` dead letters.
//!
//! | SQL | operator |
//! |---|---|
//! | `SELECT * FROM log` | [`Inserts::inserts`] |
//! | `SELECT DISTINCT * FROM log` | [`DistinctInserts::distinct_inserts`] |
//! | `SELECT key, LAST_VALUE(..) FROM log GROUP BY key` (any fold) | [`FoldByKey::fold_by_key`] |
//! | `GROUP BY TUMBLE(event_time, width), key` | [`Tumbling::tumbling`], then [`SplitLate::split_late`] |
//!
//! The traits are thin wrappers: each method builds the same operator its free
//! function used to, once, when the dataflow is built.

mod checkpointed;
pub mod fold;
mod inserts;
mod retained;
mod stash;
pub mod window;

pub use checkpointed::Checkpointed;
pub use fold::FoldByKey;
pub use inserts::{CountedInserts, DistinctInserts, Inserts};
pub use retained::Retained;
pub use window::{SplitLate, Tumbling};
