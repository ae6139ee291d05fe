//! The partitions panel: per source partition, records read, records/s and watermark lag,
//! from this process's metrics registry (`/metrics`' own numbers).
//!
//! Records/s is the difference of `edu_rtdw_records_read_total` between two renders over
//! the wall time between them (blank on the first render); the lag is
//! `edu_rtdw_watermark_lag_seconds` (live partitions only).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

use super::render::escape;

/// The previous render's totals, for rates.
#[derive(Default)]
pub struct Rates {
    last: Option<(Instant, BTreeMap<String, f64>)>,
}

impl Rates {
    /// No render yet.
    pub const fn new() -> Rates {
        Rates { last: None }
    }
}

/// `family`'s series in the Prometheus text `metrics`, keyed `source/partition`.
fn series(metrics: &str, family: &str) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(family).and_then(|r| r.strip_prefix('{')) else { continue };
        let Some((labels, value)) = rest.split_once("} ") else { continue };
        let label =
            |name: &str| labels.split(',').find_map(|l| l.strip_prefix(name)?.strip_prefix("=\"")?.strip_suffix('"'));
        if let (Some(source), Some(partition), Ok(v)) = (label("source"), label("partition"), value.trim().parse()) {
            found.insert(format!("{source}/{partition}"), v);
        }
    }
    found
}

impl Rates {
    /// The panel's table for `metrics` (the registry's text now).
    pub fn table(&mut self, metrics: &str) -> String {
        let read = series(metrics, "edu_rtdw_records_read_total");
        let lag = series(metrics, "edu_rtdw_watermark_lag_seconds");
        let now = Instant::now();
        let mut html = String::from(
            r#"<table class="grid"><tr><th>partition</th><th>records</th><th>records/s</th><th>watermark lag (s)</th></tr>"#,
        );
        for (part, total) in &read {
            let rate = self.last.as_ref().and_then(|(at, before)| {
                let secs = now.duration_since(*at).as_secs_f64();
                (secs > 0.0).then(|| (total - before.get(part).copied().unwrap_or(0.0)) / secs)
            });
            let p = escape(part);
            let _ = write!(
                html,
                r#"<tr><td>{p}</td><td class="num">{total}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                rate.map_or(String::new(), |r| format!("{r:.0}")),
                lag.get(part).map_or(String::new(), |l| format!("{l:.1}"))
            );
        }
        html.push_str("</table>");
        self.last = Some((now, read));
        html
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_series_by_source_and_partition() {
        let text = "edu_rtdw_records_read_total{source=\"qos_log\",partition=\"0\"} 12\n\
                    edu_rtdw_records_read_total{source=\"qos_log\",partition=\"1\"} 3\n\
                    edu_rtdw_watermark_lag_seconds{source=\"qos_log\",partition=\"0\"} 1.5\n";
        let read = series(text, "edu_rtdw_records_read_total");
        assert_eq!(read.get("qos_log/0"), Some(&12.0));
        assert_eq!(read.len(), 2);
        let html = Rates::default().table(text);
        assert!(
            html.contains(
                "<td>qos_log/0</td><td class=\"num\">12</td><td class=\"num\"></td><td class=\"num\">1.5</td>"
            ),
            "{html}"
        );
    }
}
