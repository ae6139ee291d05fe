//! The dashboard's panels: each one an aggregate of one metric's rows, all of them read
//! at one logical frontier (one [`Answer`]).
//!
//! Every number a panel shows is computed here from the rows the read returned, the same
//! rows `query METRIC` prints at that frontier:
//! * **participation**: 2.3's `event_count` summed per minute (`start_time`) and event,
//!   the last 60 minutes of windows (counted back from the latest one);
//! * **av_quality**: 2.5's `event_sum / event_count` over each 30-second window, per
//!   family (audio `lost`, video frame rate `fr`), the last 40 windows; and the 5
//!   classrooms with the most audio loss (`event_sum` of `*_AUDIO_STATE`) overall;
//! * **registrations**: 2.6's `leads` per hour (`reg_date`) and level, the last 24 hours;
//! * **consultants**: 2.7's 10 highest `cc_index` of the latest `attribution_time`;
//! * **uv_pv**: 2.8's `uv` and `pv` per area of the latest `stat_date`, summed over roles;
//! * **top_teachers**: 2.9's rows of the latest `stat_date`, by rank;
//! * **dead_letters**: dead letters per reason, all of them.
//!
//! Ties are broken by key so that the same rows always give the same panel.

use std::collections::BTreeMap;

use dataflows::OutputRow;
use dataflows::output::{Output, SqlValue};
use dataflows::timefmt::millis_text;

use crate::serving::Answer;

/// The outputs the panels read.
pub const READS: [Output; 7] = [
    Output::ClassPerformance1m,
    Output::AvQuality30s,
    Output::HourlyRegistrationsByLevel,
    Output::DailyCcConfirmations,
    Output::DailyUvPv,
    Output::TopTeachersDaily,
    Output::DeadLetters,
];

/// A series of stacked values per category (x), as charts and tables show it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stacked {
    /// The x categories, in order.
    pub xs: Vec<String>,
    /// Per series: its name and one value per x.
    pub series: Vec<(String, Vec<f64>)>,
}

/// Labelled values, largest first.
pub type Ranked = Vec<(String, f64)>;

/// Every panel's data at one frontier.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Panels {
    /// The frontier every panel is consistent at.
    pub upper: u64,
    /// The input has ended.
    pub complete: bool,
    /// Events per minute by event type.
    pub participation: Stacked,
    /// Average loss / frame rate per 30 s window, per family.
    pub av_quality: Stacked,
    /// Classrooms with the most audio loss.
    pub worst_classrooms: Ranked,
    /// Registrations per hour by level.
    pub registrations: Stacked,
    /// The latest day of 2.7 and its top consultants.
    pub consultants: (String, Ranked),
    /// The latest day of 2.8: per area, (uv, pv).
    pub uv_pv: (String, Vec<(String, i64, i64)>),
    /// The latest day of 2.9: (rank, teacher, students, rooms).
    pub top_teachers: (String, Vec<(i64, String, i64, i64)>),
    /// Dead letters per reason.
    pub dead_letters: Ranked,
}

/// A row's cells by column name.
struct Cells {
    output: Output,
    values: Vec<SqlValue>,
}

impl Cells {
    fn of(row: &OutputRow) -> Cells {
        Cells { output: row.output(), values: row.values() }
    }

    fn get(&self, column: &str) -> Option<&SqlValue> {
        let i = self.output.table().columns.iter().position(|(name, _)| *name == column)?;
        self.values.get(i)
    }

    fn int(&self, column: &str) -> i64 {
        match self.get(column) {
            Some(SqlValue::Int(i) | SqlValue::Millis(i)) => *i,
            Some(SqlValue::Double(d)) => *d as i64,
            _ => 0,
        }
    }

    fn text(&self, column: &str) -> String {
        match self.get(column) {
            Some(SqlValue::Text(s)) => s.clone(),
            Some(SqlValue::Int(i)) => i.to_string(),
            Some(SqlValue::Millis(ms)) => millis_text(*ms),
            Some(SqlValue::Double(d)) => d.to_string(),
            Some(SqlValue::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(SqlValue::Null) | None => "NULL".into(),
        }
    }
}

/// The panels of `answer` (a read of at least [`READS`]).
pub fn panels(answer: &Answer) -> Panels {
    let rows = |output: Output| -> Vec<Cells> {
        answer.tables.iter().filter(|(o, _)| *o == output).flat_map(|(_, rows)| rows.iter().map(Cells::of)).collect()
    };
    let (av_quality, worst_classrooms) = av_quality(&rows(Output::AvQuality30s));
    Panels {
        upper: answer.upper,
        complete: answer.complete,
        participation: participation(&rows(Output::ClassPerformance1m)),
        av_quality,
        worst_classrooms,
        registrations: registrations(&rows(Output::HourlyRegistrationsByLevel)),
        consultants: consultants(&rows(Output::DailyCcConfirmations)),
        uv_pv: uv_pv(&rows(Output::DailyUvPv)),
        top_teachers: top_teachers(&rows(Output::TopTeachersDaily)),
        dead_letters: dead_letters(&rows(Output::DeadLetters)),
    }
}

/// Sums `value` per (x, series) over the last `keep` xs (in the order of `x`'s sort key).
fn stack<K: Ord + Clone>(
    rows: &[Cells],
    x: impl Fn(&Cells) -> (K, String),
    series: impl Fn(&Cells) -> String,
    value: impl Fn(&Cells) -> f64,
    keep: usize,
) -> Stacked {
    let mut sums: BTreeMap<(K, String), BTreeMap<String, f64>> = BTreeMap::new();
    for row in rows {
        *sums.entry(x(row)).or_default().entry(series(row)).or_default() += value(row);
    }
    let first = sums.len().saturating_sub(keep);
    let kept: Vec<_> = sums.into_iter().skip(first).collect();
    let names: std::collections::BTreeSet<String> = kept.iter().flat_map(|(_, s)| s.keys().cloned()).collect();
    Stacked {
        xs: kept.iter().map(|((_, label), _)| label.clone()).collect(),
        series: names
            .into_iter()
            .map(|name| {
                let values = kept.iter().map(|(_, s)| s.get(&name).copied().unwrap_or(0.0)).collect();
                (name, values)
            })
            .collect(),
    }
}

fn participation(rows: &[Cells]) -> Stacked {
    let minute = |r: &Cells| {
        let start = r.int("start_time");
        (start, millis_text(start).get(11..16).unwrap_or_default().to_string())
    };
    stack(rows, minute, |r| r.text("event"), |r| r.int("event_count") as f64, 60)
}

/// A window: its start (ms) and its label.
type WindowLabel = (i64, String);

fn av_quality(rows: &[Cells]) -> (Stacked, Ranked) {
    let window = |r: &Cells| {
        let start = r.int("start_time");
        (start, millis_text(start).get(11..19).unwrap_or_default().to_string())
    };
    let family = |r: &Cells| if r.text("event").ends_with("_AUDIO_STATE") { "audio lost" } else { "video fr" };
    // Per window and family: the total of the samples over their count.
    let mut totals: BTreeMap<(WindowLabel, &str), (i64, i64)> = BTreeMap::new();
    for r in rows {
        let t = totals.entry((window(r), family(r))).or_default();
        t.0 += r.int("event_sum");
        t.1 += r.int("event_count");
    }
    let mut stacked = Stacked::default();
    let windows: Vec<WindowLabel> = {
        let mut w: Vec<_> = totals.keys().map(|(w, _)| w.clone()).collect();
        w.dedup();
        let first = w.len().saturating_sub(40);
        w.split_off(first)
    };
    stacked.xs = windows.iter().map(|(_, label)| label.clone()).collect();
    for name in ["audio lost", "video fr"] {
        let values = windows
            .iter()
            .map(|w| {
                totals.get(&(w.clone(), name)).map_or(0.0, |(s, n)| if *n > 0 { *s as f64 / *n as f64 } else { 0.0 })
            })
            .collect();
        stacked.series.push((name.to_string(), values));
    }
    let mut loss: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows.iter().filter(|r| family(r) == "audio lost") {
        *loss.entry(r.text("classroom_id")).or_default() += r.int("event_sum") as f64;
    }
    (stacked, top(loss.into_iter().collect(), 5))
}

fn registrations(rows: &[Cells]) -> Stacked {
    let hour = |r: &Cells| {
        let h = r.int("reg_date");
        (h, format!("{:02}h {:02}/{:02}", h % 100, h / 100 % 100, h / 10_000 % 100))
    };
    stack(rows, hour, |r| r.text("level"), |r| r.int("leads") as f64, 24)
}

/// The `n` largest values, ties by label.
fn top(mut items: Ranked, n: usize) -> Ranked {
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items.truncate(n);
    items
}

/// The greatest `column` text among `rows` (the latest day).
fn latest(rows: &[Cells], column: &str) -> String {
    rows.iter().map(|r| r.text(column)).max().unwrap_or_default()
}

fn consultants(rows: &[Cells]) -> (String, Ranked) {
    let day = latest(rows, "attribution_time");
    let mut per_cc: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.text("attribution_time") == day) {
        *per_cc.entry(format!("cc {}", r.int("cc_id"))).or_default() += r.int("cc_index") as f64;
    }
    (day, top(per_cc.into_iter().collect(), 10))
}

fn uv_pv(rows: &[Cells]) -> (String, Vec<(String, i64, i64)>) {
    let day = latest(rows, "stat_date");
    let mut per_area: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.text("stat_date") == day) {
        let a = per_area.entry(r.text("area")).or_default();
        a.0 += r.int("uv");
        a.1 += r.int("pv");
    }
    (day, per_area.into_iter().map(|(area, (uv, pv))| (area, uv, pv)).collect())
}

fn top_teachers(rows: &[Cells]) -> (String, Vec<(i64, String, i64, i64)>) {
    let day = latest(rows, "stat_date");
    let mut ranked: Vec<_> = rows
        .iter()
        .filter(|r| r.text("stat_date") == day)
        .map(|r| (r.int("rank"), r.text("teacher_id"), r.int("students"), r.int("rooms")))
        .collect();
    ranked.sort();
    (day, ranked)
}

fn dead_letters(rows: &[Cells]) -> Ranked {
    let mut per_reason: BTreeMap<String, f64> = BTreeMap::new();
    for r in rows {
        *per_reason.entry(r.text("reason")).or_default() += 1.0;
    }
    top(per_reason.into_iter().collect(), usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataflows::daily_cc_confirmations::StaffIndexRow;
    use dataflows::hourly_registrations_by_level::RegistrationRow;

    fn staff(cc: i64, n: i64, day: &str) -> OutputRow {
        OutputRow::Staff(StaffIndexRow { cc_id: cc, attribution_time: day.into(), cc_index: n })
    }

    #[test]
    fn consultants_of_the_latest_day_largest_first_ties_by_name() {
        let answer = Answer {
            upper: 7,
            complete: false,
            tables: vec![(
                Output::DailyCcConfirmations,
                vec![
                    staff(1, 9, "2025-12-01"),
                    staff(2, 3, "2025-12-02"),
                    staff(3, 5, "2025-12-02"),
                    staff(4, 3, "2025-12-02"),
                ],
            )],
        };
        let p = panels(&answer);
        assert_eq!(p.upper, 7);
        assert_eq!(p.consultants.0, "2025-12-02");
        assert_eq!(p.consultants.1, vec![("cc 3".into(), 5.0), ("cc 2".into(), 3.0), ("cc 4".into(), 3.0)]);
    }

    #[test]
    fn registrations_stack_per_hour_and_level() {
        let reg = |h: i64, level: &str, leads: i64| {
            OutputRow::Registration(RegistrationRow { reg_date: h, level: level.into(), leads })
        };
        let answer = Answer {
            upper: 1,
            complete: true,
            tables: vec![(
                Output::HourlyRegistrationsByLevel,
                vec![reg(2025120208, "A", 2), reg(2025120207, "B", 1), reg(2025120208, "B", 4)],
            )],
        };
        let p = panels(&answer).registrations;
        assert_eq!(p.xs, vec!["07h 02/12", "08h 02/12"]);
        assert_eq!(p.series, vec![("A".into(), vec![0.0, 2.0]), ("B".into(), vec![1.0, 4.0])]);
    }
}
