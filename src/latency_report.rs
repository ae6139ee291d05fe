//! `run --latency-report FILE`: turns on the end-to-end latency accounting
//! ([`connectors::latency`]) and writes its JSON report to FILE every second
//! (to `FILE.tmp`, then renamed) and once more when the run ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The background writer; dropping it writes the final report.
pub struct Reporter {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Enables the accounting and starts writing `path`.
pub fn start(path: &Path) -> Reporter {
    connectors::latency::enable();
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, file) = (Arc::clone(&stop), path.to_path_buf());
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            write(&file, false);
        }
    });
    Reporter { path: path.to_path_buf(), stop, thread: Some(thread) }
}

/// Writes the report, with `final` telling whether the run has ended.
fn write(path: &Path, done: bool) {
    let mut json = connectors::latency::report().to_json();
    json["final"] = serde_json::Value::Bool(done);
    let tmp = path.with_extension("tmp");
    let result = std::fs::write(&tmp, format!("{json}\n")).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), "cannot write the latency report: {e}");
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        write(&self.path, true);
    }
}
