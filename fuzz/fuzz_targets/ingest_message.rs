//! One message of each topic through the ingestion of SPEC §1/§4: it never panics, and
//! whatever a message does not contribute is a dead letter with a reason.
#![no_main]

use dataflows::ingest::{Delays, Input, PartitionIngest};
use dataflows::Topic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let delays = Delays::default();
    for topic in Topic::ALL {
        let mut partition = PartitionIngest::new(topic, 0, &delays);
        let mut out = Vec::new();
        partition.ingest_logged(0, Some(b"key"), data, Some(1_700_000_000_000), &mut out);
        partition.ingest(1, data, &mut out);
        out.extend(partition.watermark_update());
        out.extend(partition.went_idle());
        for input in &out {
            if let Input::Dead(dead) = input {
                assert!(!dead.reason.is_empty(), "a dead letter without a reason");
                assert!(dead.raw.len() <= data.len(), "a dead letter's raw is longer than its message");
            }
        }
    }
});
