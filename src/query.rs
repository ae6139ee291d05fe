//! `edu-rtdw query METRIC`: a metric's rows at one logical time.
//!
//! With `--admin ADDR` it asks a running job's admin endpoint
//! (`/snapshot/METRIC`, process 0 of a cluster; `--as-of UPPER` for a recent older
//! frontier); otherwise it reads the latest
//! dump in `--snapshot-dir` (`DIR/METRIC/UPPER.jsonl`). It filters with
//! `--where COL=VALUE` (every filter must hold; a value compares with the
//! cell's text, `NULL` matches NULL), and prints the rows as an aligned table,
//! JSON or CSV together with the logical frontier they are consistent at
//! (every update at a time below it, none after).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use serde_json::{Map, Value};

use dataflows::Time;
use dataflows::output::Output;

use crate::snapshot::{dumps, metric_names};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// One JSON object: metric, upper, complete and rows.
    Json,
    /// CSV with a header line.
    Csv,
}

/// `edu-rtdw query`.
#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    /// The metric (CLI name such as hourly_registrations_by_level, `dead_letters`, or a table name).
    pub metric: String,
    /// Keep rows whose column COL has the text VALUE (repeatable; all must hold).
    #[arg(long = "where", value_name = "COL=VALUE")]
    pub filters: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// A running job's admin address (process 0 of a cluster); without it the latest dump is read.
    #[arg(long)]
    pub admin: Option<String>,
    /// Read the running job (`--admin`) at this older logical frontier, while its traces
    /// still hold it (the last `run --as-of-window` frontiers).
    #[arg(long, requires = "admin")]
    pub as_of: Option<u64>,
    /// Where `run --snapshot-dir` writes its dumps.
    #[arg(long, default_value = "snapshots")]
    pub snapshot_dir: PathBuf,
}

/// A metric's rows at one logical frontier.
#[derive(Debug)]
pub struct Snapshot {
    /// Every update at a time below this is included, none after.
    pub upper: Time,
    /// The input had ended (`None`: unknown, read from a dump).
    pub complete: Option<bool>,
    /// The rows.
    pub rows: Vec<Map<String, Value>>,
}

/// Runs `edu-rtdw query`.
pub fn run(args: &QueryArgs) -> anyhow::Result<()> {
    let output = Output::from_name(&args.metric)
        .ok_or_else(|| anyhow!("unknown metric `{}` (one of: {})", args.metric, metric_names().join(", ")))?;
    let filters = parse_filters(&args.filters, output)?;
    let mut snap = match &args.admin {
        Some(addr) => fetch(addr, output.name(), args.as_of)?,
        None => latest_dump(&args.snapshot_dir, output.name())?,
    };
    snap.rows.retain(|row| filters.iter().all(|(col, want)| row.get(col).map_or(want == "NULL", |v| text(v) == *want)));
    let out = std::io::stdout();
    let mut out = out.lock();
    match args.format {
        Format::Table => print_table(&mut out, output, &snap)?,
        Format::Json => print_json(&mut out, output, &snap)?,
        Format::Csv => print_csv(&mut out, output, &snap)?,
    }
    Ok(())
}

fn parse_filters(filters: &[String], output: Output) -> anyhow::Result<Vec<(String, String)>> {
    let columns: Vec<&str> = output.table().columns.iter().map(|(n, _)| *n).collect();
    filters
        .iter()
        .map(|f| {
            let (col, value) = f.split_once('=').with_context(|| format!("bad --where `{f}` (expected COL=VALUE)"))?;
            if !columns.contains(&col) {
                bail!("no column `{col}` in {} (columns: {})", output.table().name, columns.join(", "));
            }
            Ok((col.to_string(), value.to_string()))
        })
        .collect()
}

/// A cell as text: strings as they are, NULL as `NULL`, numbers and bytes in JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "NULL".to_string(),
        other => other.to_string(),
    }
}

/// Asks the admin endpoint at `addr` (`host:port`) for `metric`'s snapshot.
pub fn fetch(addr: &str, metric: &str, as_of: Option<u64>) -> anyhow::Result<Snapshot> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = agent
        .get(match as_of {
            Some(upper) => format!("http://{addr}/snapshot/{metric}?as_of={upper}"),
            None => format!("http://{addr}/snapshot/{metric}"),
        })
        .call()
        .with_context(|| format!("cannot reach the admin endpoint at {addr}"))?;
    let status = response.status();
    // A snapshot can be far larger than ureq's default 10 MB body limit.
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_string()
        .context("cannot read the admin endpoint's answer")?;
    if status != ureq::http::StatusCode::OK {
        bail!("{addr}: {status} {}", body.trim());
    }
    let mut lines = body.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap_or_default()).context("bad snapshot header")?;
    let upper = header.get("upper").and_then(Value::as_u64).context("snapshot header without `upper`")?;
    let complete = header.get("complete").and_then(Value::as_bool);
    Ok(Snapshot { upper, complete, rows: parse_rows(lines)? })
}

/// Reads the latest dump of `metric` under `dir`.
pub fn latest_dump(dir: &Path, metric: &str) -> anyhow::Result<Snapshot> {
    let metric_dir = dir.join(metric);
    if !metric_dir.is_dir() {
        bail!(
            "no snapshot of {metric} in {} (run with --snapshot-dir, or query a running job with --admin)",
            dir.display()
        );
    }
    let (upper, path) =
        dumps(&metric_dir)?.pop().with_context(|| format!("no snapshot files in {}", metric_dir.display()))?;
    let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let rows = parse_rows(lines.iter().map(String::as_str)).with_context(|| format!("in {}", path.display()))?;
    Ok(Snapshot { upper, complete: None, rows })
}

fn parse_rows<'a>(lines: impl Iterator<Item = &'a str>) -> anyhow::Result<Vec<Map<String, Value>>> {
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => bail!("a snapshot row is not a JSON object"),
            Err(e) => Err(anyhow!("bad snapshot row: {e}")),
        })
        .collect()
}

fn columns(output: Output) -> Vec<&'static str> {
    output.table().columns.iter().map(|(n, _)| *n).collect()
}

fn consistency(output: Output, snap: &Snapshot) -> String {
    let state = match snap.complete {
        Some(true) => ", input complete",
        Some(false) => ", input still running",
        None => "",
    };
    format!(
        "{} rows of {} consistent at logical time {} (every update at a time below it){state}",
        snap.rows.len(),
        output.name(),
        snap.upper
    )
}

/// `cell` with every control character (ESC, CR, newline, ...) written as an escape
/// (`\u{1b}`, `\r`, `\n`): a dead letter's raw bytes must not drive the user's terminal
/// nor break the table's lines. Other text, including non-ASCII, is kept.
fn printable(cell: String) -> String {
    if !cell.chars().any(char::is_control) {
        return cell;
    }
    cell.chars().map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() }).collect()
}

/// An aligned table for people: cells are [`printable`]. (`--format csv` and `json` keep
/// the data exact: JSON escapes control characters itself, CSV quotes cells holding line
/// breaks.)
fn print_table(out: &mut impl Write, output: Output, snap: &Snapshot) -> anyhow::Result<()> {
    let cols = columns(output);
    let cells: Vec<Vec<String>> = snap
        .rows
        .iter()
        .map(|r| cols.iter().map(|c| printable(r.get(*c).map_or("NULL".into(), text))).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let pad =
        |items: Vec<&str>| items.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect::<Vec<_>>().join(" | ");
    writeln!(out, "{}", pad(cols.clone()).trim_end())?;
    writeln!(out, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"))?;
    for row in &cells {
        writeln!(out, "{}", pad(row.iter().map(String::as_str).collect()).trim_end())?;
    }
    writeln!(out, "({})", consistency(output, snap))?;
    Ok(())
}

fn print_json(out: &mut impl Write, output: Output, snap: &Snapshot) -> anyhow::Result<()> {
    let doc = serde_json::json!({
        "metric": output.name(),
        "table": output.table().name,
        "upper": snap.upper,
        "complete": snap.complete,
        "rows": snap.rows,
    });
    writeln!(out, "{doc}")?;
    Ok(())
}

/// CSV (RFC 4180 quoting, `\n` line ends) with a header line; NULL is an empty cell.
fn print_csv(out: &mut impl Write, output: Output, snap: &Snapshot) -> anyhow::Result<()> {
    let cols = columns(output);
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(&cols)?;
    for row in &snap.rows {
        csv.write_record(cols.iter().map(|c| row.get(*c).filter(|v| !v.is_null()).map_or(String::new(), text)))?;
    }
    csv.flush()?;
    eprintln!("edu-rtdw: {}", consistency(output, snap));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_real_columns() {
        let reg = Output::from_name("hourly_registrations_by_level").expect("metric");
        assert!(parse_filters(&["level=A1".into()], reg).is_ok());
        assert!(parse_filters(&["nope=1".into()], reg).is_err());
        assert!(parse_filters(&["level".into()], reg).is_err());
    }

    /// Issue 22 finding 8: a dead letter's raw ESC sequence reached the terminal.
    #[test]
    fn tables_escape_control_characters() -> anyhow::Result<()> {
        let dead = Output::DeadLetters;
        let mut row = Map::new();
        row.insert("raw".into(), Value::from("\u{1b}[2J\u{1b}]0;owned\u{7}line\nnext\tcol é"));
        let snap = Snapshot { upper: 1, complete: None, rows: vec![row] };
        let mut out = Vec::new();
        print_table(&mut out, dead, &snap)?;
        let text = String::from_utf8(out)?;
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert!(text.contains("\\u{1b}[2J\\u{1b}]0;owned\\u{7}line\\nnext\\tcol é"), "{text}");
        assert_eq!(text.lines().count(), 4, "header, rule, one row, consistency: {text}");
        Ok(())
    }

    #[test]
    fn csv_quotes_when_needed() -> anyhow::Result<()> {
        let reg = Output::from_name("hourly_registrations_by_level").expect("metric");
        let cols = columns(reg);
        let cells = ["a,b", "say \"hi\"", "plain"];
        let mut row = Map::new();
        for (col, cell) in cols.iter().zip(cells) {
            row.insert(col.to_string(), Value::from(cell));
        }
        let snap = Snapshot { upper: 1, complete: None, rows: vec![row] };
        let mut out = Vec::new();
        print_csv(&mut out, reg, &snap)?;
        let text = String::from_utf8(out)?;
        let line = text.lines().nth(1).expect("one row");
        assert!(line.starts_with("\"a,b\",\"say \"\"hi\"\"\",plain"), "{line}");
        assert_eq!(text.lines().next(), Some(cols.join(",").as_str()));
        Ok(())
    }
}
