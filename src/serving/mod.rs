//! Serving: the metrics read at one logical time, from the arrangements themselves.
//!
//! Every metric's output collection is arranged where it is computed, sharded by row
//! across the workers of every process ([`dataflows::serve`]). A read picks one logical
//! frontier `upper` and asks every worker for its shard's rows as of `upper` (every update
//! at a time below it, none after); worker 0 merges the answers ([`peek`]). `query`, the
//! snapshot dumps, the admin endpoint's `/snapshot/METRIC` and SQL ([`sql`]) all read
//! through a [`Reader`].

pub mod peek;
pub mod sql;

use dataflows::output::Output;
use dataflows::{OutputRow, Time};

/// Which logical frontier a read is consistent at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// The newest frontier every worker's arrangement has passed.
    Latest,
    /// This frontier (every update at a time below it, none after); refused when it has not
    /// been reached yet, or is older than the oldest one the arrangements still hold.
    Upper(Time),
}

/// Some tables' rows, all consistent at one logical frontier.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// Every update at a time below this is included, none after.
    pub upper: Time,
    /// The input has ended: the contents are final.
    pub complete: bool,
    /// The rows of each table asked for, in the order asked, each sorted.
    pub tables: Vec<(Output, Vec<OutputRow>)>,
}

/// Reads tables from a running job. Blocking: call it off async runtimes' threads.
pub trait Reader: Send + Sync + 'static {
    /// The rows of `outputs` at `as_of`, or why they cannot be read (a message for the user).
    fn read(&self, outputs: &[Output], as_of: AsOf) -> Result<Answer, String>;
}
