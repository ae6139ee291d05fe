//! What determines logical time, recorded with the progress (issue 22, finding 1).
//!
//! Sinks skip, on a restart, the updates at logical times they already hold.
//! That is exact only if the restart gives every input position the time the
//! first run gave it, so whatever determines logical time is recorded in the
//! SQLite state file the first time a job runs on it: the records per epoch,
//! the kind of input, and every source's name as the input calls it (the
//! Kafka topic names with their prefix, or the files' topic directories) with
//! its partitions. A later run compares its own settings with the record and
//! refuses, in one line naming the difference, to go on with other ones
//! (before, a restart with another `--epoch-records` silently skipped input).
//! Partitions that appear later are allowed: they start after everything
//! committed ([`crate::clock`]).
//!
//! ```
//! use connectors::identity::InputIdentity;
//!
//! let dir = tempfile_dir();
//! let path = dir.join("state.db");
//! let first = InputIdentity::new(256, "files", [("qos_log".to_string(), 2)]);
//! first.check(&path).expect("recorded");
//! first.check(&path).expect("the same settings go on");
//! let other = InputIdentity::new(4096, "files", [("qos_log".to_string(), 2)]);
//! let err = other.check(&path).unwrap_err().to_string();
//! assert!(err.contains("epoch_records 256") && err.contains("4096"), "{err}");
//! # fn tempfile_dir() -> std::path::PathBuf {
//! #     let d = std::env::temp_dir().join(format!("edu-rtdw-identity-{}", std::process::id()));
//! #     let _ = std::fs::remove_dir_all(&d);
//! #     std::fs::create_dir_all(&d).unwrap();
//! #     d
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use rusqlite::Connection;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS edu_rtdw_input (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

/// What determines the logical time of a job's input positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputIdentity {
    epoch_records: u64,
    kind: String,
    /// Source name (as the input calls it) → number of partitions.
    sources: BTreeMap<String, u32>,
}

impl InputIdentity {
    /// `epoch_records` per epoch, input `kind` (`files`, `kafka`), and each source's name and
    /// partition count.
    pub fn new(epoch_records: u64, kind: &str, sources: impl IntoIterator<Item = (String, u32)>) -> Self {
        InputIdentity { epoch_records, kind: kind.to_string(), sources: sources.into_iter().collect() }
    }

    /// Records this identity in the state file at `path` if it holds none yet; otherwise
    /// fails with one line naming the first difference from the recorded one.
    pub fn check(&self, path: &Path) -> anyhow::Result<()> {
        let conn = Connection::open(path).with_context(|| format!("cannot open SQLite state {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(SCHEMA).context("cannot create the input identity table")?;
        let recorded: BTreeMap<String, String> = {
            let mut stmt = conn.prepare("SELECT key, value FROM edu_rtdw_input")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        if recorded.is_empty() {
            let tx = conn.unchecked_transaction()?;
            for (key, value) in self.entries() {
                tx.execute("INSERT INTO edu_rtdw_input (key, value) VALUES (?1, ?2)", [key, value])?;
            }
            return Ok(tx.commit()?);
        }
        let differs = |what: &str, was: &str, now: &str| {
            anyhow::anyhow!(
                "the state file {} was written with {what} {was}, and this run has {now}: run with the same \
                 settings, or use a fresh --sqlite file",
                path.display()
            )
        };
        let epoch = recorded.get("epoch_records").map_or("?", String::as_str);
        if epoch != self.epoch_records.to_string() {
            return Err(differs("epoch_records", epoch, &self.epoch_records.to_string()));
        }
        let kind = recorded.get("input").map_or("?", String::as_str);
        if kind != self.kind {
            return Err(differs("input", kind, &self.kind));
        }
        for (key, value) in recorded.iter().filter_map(|(k, v)| Some((k.strip_prefix("source:")?, v))) {
            match self.sources.get(key) {
                None => bail!(differs(&format!("source {key}"), "present", "no such source")),
                Some(n) if *n < value.parse().unwrap_or(0) => {
                    bail!(differs(&format!("source {key} partitions"), value, &n.to_string()))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The identity as `key = value` pairs (what checkpoints record).
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut out = vec![("epoch_records".to_string(), self.epoch_records.to_string())];
        out.push(("input".to_string(), self.kind.clone()));
        out.extend(self.sources.iter().map(|(name, n)| (format!("source:{name}"), n.to_string())));
        out
    }
}
