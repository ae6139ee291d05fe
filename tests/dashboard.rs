//! The live dashboard in a real browser (issue 23): Debian's Chromium, headless, opens the
//! page of a running `edu-rtdw demo`, and the numbers of two panels (dead letters by
//! reason; registrations by level) equal what `query --as-of` returns at the logical
//! frontier the page shows (computed independently here from the query's rows); a second
//! load later shows a later frontier and numbers that moved. The test saves a screenshot
//! to `target/dashboard.png` (docs/dashboard.png is one of them).
//!
//! Chromium is installed by `scripts/test.sh` (`apt-get install chromium`). Its flags are
//! those that work on this closed network (no background networking, no sandbox as root).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Job, edu_rtdw, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium, headless, on `url` with `action` (`--dump-dom` or `--screenshot=…`): its stdout.
fn chromium(profile: &Path, url: &str, action: &str) -> String {
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium");
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,2200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(action)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium {action} {url} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page as Chromium rendered it: its frontier, and every `data-panel`, `data-key`,
/// `data-value` cell.
struct Page {
    upper: u64,
    cells: BTreeMap<(String, String), f64>,
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
}

fn read_page(dom: &str) -> Page {
    let panels = dom.find("id=\"panels\"").expect("the page has its panels");
    let tag_start = dom[..panels].rfind('<').expect("tag");
    let tag = &dom[tag_start..dom[tag_start..].find('>').expect("tag end") + tag_start];
    let upper = attribute(tag, "data-upper").and_then(|u| u.parse().ok()).expect("the page shows its frontier");
    let mut cells = BTreeMap::new();
    for piece in dom.split('<').filter(|t| t.contains("data-value=")) {
        if let (Some(panel), Some(key), Some(value)) =
            (attribute(piece, "data-panel"), attribute(piece, "data-key"), attribute(piece, "data-value"))
        {
            cells.insert((panel.to_string(), unescape(key)), value.parse().unwrap_or(f64::NAN));
        }
    }
    Page { upper, cells }
}

/// `panel`'s cells of `page`.
fn panel(page: &Page, panel: &str) -> BTreeMap<String, f64> {
    page.cells.iter().filter(|((p, _), _)| p == panel).map(|((_, k), v)| (k.clone(), *v)).collect()
}

/// `query METRIC --admin ADDR --as-of UPPER`: its rows.
fn query_at(dir: &Path, admin: &str, metric: &str, upper: u64) -> Vec<serde_json::Map<String, Value>> {
    let q = edu_rtdw(&["query", metric, "--admin", admin, "--as-of", &upper.to_string(), "--format", "json"], dir);
    assert!(q.status.success(), "query {metric} --as-of {upper}: {}", String::from_utf8_lossy(&q.stderr));
    let doc: Value = serde_json::from_slice(&q.stdout).expect("json");
    assert_eq!(doc["upper"].as_u64(), Some(upper), "query answers at the frontier asked for");
    doc["rows"].as_array().expect("rows").iter().filter_map(|r| r.as_object().cloned()).collect()
}

/// Dead letters per reason, from the query's rows.
fn dead_letters_by_reason(rows: &[serde_json::Map<String, Value>]) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row["reason"].as_str().unwrap_or_default().to_string()).or_default() += 1.0;
    }
    counts
}

/// Registrations (`leads`) per level over the latest 24 hours (`reg_date`) present.
fn registrations_by_level(rows: &[serde_json::Map<String, Value>]) -> BTreeMap<String, f64> {
    let mut hours: Vec<i64> = rows.iter().filter_map(|r| r["reg_date"].as_i64()).collect();
    hours.sort_unstable();
    hours.dedup();
    let first = hours.len().saturating_sub(24);
    let kept = &hours[first..];
    let mut totals = BTreeMap::new();
    for row in rows.iter().filter(|r| r["reg_date"].as_i64().is_some_and(|h| kept.contains(&h))) {
        *totals.entry(row["level"].as_str().unwrap_or_default().to_string()).or_default() +=
            row["leads"].as_f64().unwrap_or_default();
    }
    totals
}

fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("dashboard.png")
}

#[test]
fn the_dashboard_shows_query_numbers_at_its_frontier_and_moves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let admin = format!("127.0.0.1:{port}");
    let _demo = Job(Command::new(env!("CARGO_BIN_EXE_edu-rtdw"))
        .args(["demo", "--rate", "600", "--admin", &admin, "--sqlite", "demo.db"])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn edu-rtdw demo"));
    let url = format!("http://{admin}/");
    let profile = tmp.path().join("chromium");

    // The first load that shows some dead letters and registrations.
    let started = Instant::now();
    let first = loop {
        let page = read_page(&chromium(&profile, &url, "--dump-dom").replace('\n', " "));
        if !panel(&page, "dead_letters").is_empty() && !panel(&page, "registrations").is_empty() {
            break page;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the dashboard never showed data");
        std::thread::sleep(Duration::from_millis(500));
    };
    let dead = query_at(tmp.path(), &admin, "dead_letters", first.upper);
    assert_eq!(panel(&first, "dead_letters"), dead_letters_by_reason(&dead), "dead letters at {}", first.upper);
    let registrations = query_at(tmp.path(), &admin, "hourly_registrations_by_level", first.upper);
    assert_eq!(
        panel(&first, "registrations"),
        registrations_by_level(&registrations),
        "registrations at {}",
        first.upper
    );

    // Later, the page shows a later frontier and more dead letters.
    let total = |page: &Page| panel(page, "dead_letters").values().sum::<f64>();
    let started = Instant::now();
    let second = loop {
        let page = read_page(&chromium(&profile, &url, "--dump-dom").replace('\n', " "));
        if page.upper > first.upper && total(&page) > total(&first) {
            break page;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the dashboard's numbers never moved");
        std::thread::sleep(Duration::from_millis(500));
    };
    let dead = query_at(tmp.path(), &admin, "dead_letters", second.upper);
    assert_eq!(panel(&second, "dead_letters"), dead_letters_by_reason(&dead), "dead letters at {}", second.upper);

    let shot = screenshot_path();
    // target/ may be elsewhere (CARGO_TARGET_DIR): the screenshot's directory is made here.
    std::fs::create_dir_all(shot.parent().expect("a directory")).expect("screenshot directory");
    let _ = std::fs::remove_file(&shot);
    chromium(&profile, &url, &format!("--screenshot={}", shot.display()));
    assert!(shot.exists(), "chromium saved no screenshot");
}
