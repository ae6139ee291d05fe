//! The JSON reader against its reference: wherever the fast scanner answers, it answers
//! exactly what serde's walker does (same slots, same verdict), the production entry point
//! agrees with the reference on every input, and nothing panics.
#![no_main]

use dataflows::json::{read_paths, read_paths_fast, reference_read, PathSet};
use libfuzzer_sys::fuzz_target;

/// Paths like the topics' own: top-level, nested, nested in strings, one shared prefix.
const PATHS: &[&[&str]] = &[
    &["id"],
    &["data", "timestamp"],
    &["data", "msg", "msgtype"],
    &["data", "msg", "msg_data", "action"],
    &["extra", "data_time"],
    &["agora_audioState", "lost"],
    &["messageCreateTime"],
];

fuzz_target!(|data: &[u8]| {
    let production = read_paths(data, PATHS);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(production.is_err(), "invalid UTF-8 read as JSON");
        return;
    };
    let reference = reference_read(text, PATHS);
    if let Some(fast) = read_paths_fast(text, &PathSet::new(PATHS)) {
        assert_eq!(Ok(fast), reference, "fast scanner vs reference on {text:?}");
    }
    assert_eq!(production, reference, "read_paths vs reference on {text:?}");
});
