//! Times `PartitionIngest::ingest` over files of JSON lines (one topic directory each):
//! `cargo run --release -p dataflows --example parse_timing -- DIR [REPEAT]`.
use std::time::Instant;

use dataflows::Topic;
use dataflows::ingest::{Delays, PartitionIngest};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "input".to_string());
    let repeat: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    for topic in Topic::ALL {
        let path = std::path::Path::new(&dir).join(topic.default_name());
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        let mut lines = Vec::new();
        for e in entries.flatten() {
            let text = std::fs::read(e.path()).unwrap_or_default();
            lines.extend(text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
        }
        let mut best = f64::MAX;
        let mut n = 0;
        for _ in 0..repeat {
            let mut ingest = PartitionIngest::new(topic, 0, &Delays::default());
            let mut out = Vec::new();
            let start = Instant::now();
            for (i, l) in lines.iter().enumerate() {
                ingest.ingest(i as u64, l, &mut out);
                if out.len() > 1024 {
                    n += out.len();
                    out.clear();
                }
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        if topic == Topic::Timeline {
            let rounds = if std::env::var("ONLY_FAST").is_ok() { 50 } else { 1 };
            for (label, which) in [("utf8 only", 0), ("read_paths", 1), ("Signal::parse", 2), ("fast only", 3)] {
                let start = Instant::now();
                let mut k = 0usize;
                for _ in 0..rounds {
                    for l in &lines {
                        k += match which {
                            0 => std::str::from_utf8(l).map_or(0, str::len),
                            1 => dataflows::json::read_path_set(l, dataflows::topics::Signal::path_set())
                                .map_or(0, |v| v.len()),
                            2 => dataflows::topics::Signal::parse(l)
                                .map_or(0, |s| usize::from(s.user_id.val().is_some())),
                            _ => dataflows::json::read_paths_fast(
                                std::str::from_utf8(l).unwrap_or(""),
                                dataflows::topics::Signal::path_set(),
                            )
                            .map_or(0, |_| 1),
                        };
                    }
                }
                println!(
                    "  {label:20} {:>8.0} ns/line ({k})",
                    start.elapsed().as_secs_f64() * 1e9 / (rounds * lines.len()) as f64
                );
            }
        }
        let bytes: usize = lines.iter().map(Vec::len).sum();
        println!(
            "{:50} {:>8} lines {:>8.0} ns/line {:>6.0} MB/s ({n})",
            topic.default_name(),
            lines.len(),
            best * 1e9 / lines.len() as f64,
            bytes as f64 / best / 1e6
        );
    }
}
