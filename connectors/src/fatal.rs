//! One error path: how an operator ends the job.
//!
//! Operators run inside timely workers and cannot return errors. An operator
//! that meets a fatal error (an unreadable input file, a sink that cannot
//! commit, a clock it cannot record) hands a one-line message to the job's
//! [`Fatal`] slot and drops its capabilities. The slot keeps the first
//! message and wakes every worker registered with it; each worker's loop
//! sees [`Fatal::raised`], stops stepping and returns the message, and `main`
//! prints `edu-rtdw: <message>` and exits non-zero. Nothing inside an
//! operator calls `process::exit`.
//!
//! ```
//! use connectors::fatal::Fatal;
//!
//! let fatal = Fatal::default();
//! assert!(!fatal.is_raised());
//! fatal.report("sink sqlite failed: disk full");
//! fatal.report("a later error is not kept");
//! assert!(fatal.is_raised());
//! assert_eq!(fatal.raised().as_deref(), Some("sink sqlite failed: disk full"));
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;

/// The job's slot for the first fatal error; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Fatal {
    inner: Arc<Mutex<Slot>>,
    raised: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Slot {
    message: Option<String>,
    workers: Vec<Thread>,
}

impl Fatal {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding the lock leaves a slot that is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the calling thread (a timely worker) to be woken when an error is reported.
    pub fn register_worker(&self) {
        self.slot().workers.push(std::thread::current());
    }

    /// Reports a fatal error: the first one is kept, and every registered worker is woken.
    pub fn report(&self, message: impl Into<String>) {
        let mut slot = self.slot();
        if slot.message.is_none() {
            slot.message = Some(message.into());
        }
        self.raised.store(true, Ordering::Release);
        for worker in &slot.workers {
            worker.unpark();
        }
    }

    /// Whether an error was reported (cheap enough for every worker step).
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }

    /// The first reported error, if any.
    pub fn raised(&self) -> Option<String> {
        self.slot().message.clone()
    }
}
