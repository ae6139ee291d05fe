//! The wall clock of the whole program: milliseconds since the Unix epoch.
//!
//! Every sink's `updated_at` stamp and the watermark lag on `/metrics` read it
//! here, so they agree on what "now" is.

/// Milliseconds since the Unix epoch, now (0 if the system clock is before the epoch).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
