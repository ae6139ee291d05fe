//! The panels as HTML with server-side SVG charts (no script library, nothing from a CDN).
//!
//! Every panel is a `<section data-panel="NAME">` with its chart and a table of the numbers
//! it draws; every number cell carries `data-key` (its row's label) and `data-value` (the
//! exact number), so a reader (a person, or the browser test) reads the same values the
//! chart shows. The fragment's root carries `data-upper`, the frontier it is consistent at.

use std::fmt::Write;

use super::panels::{Panels, Ranked, Stacked};

/// Series colours (a colour-blind-safe palette).
const COLOURS: [&str; 8] = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000"];

/// HTML-escaped text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A number as shown: integers without decimals, others with two.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.2}") }
}

/// Stacked vertical bars, one per x, one colour per series.
fn stacked_bars(data: &Stacked) -> String {
    let (w, h, left, bottom) = (560.0, 180.0, 40.0, 20.0);
    let n = data.xs.len().max(1) as f64;
    let totals: Vec<f64> = (0..data.xs.len()).map(|i| data.series.iter().map(|(_, v)| v[i]).sum()).collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(1.0);
    let bar = (w - left) / n;
    let mut svg = format!(r#"<svg viewBox="0 0 {w} {h}" class="chart" role="img">"#);
    for (i, _) in data.xs.iter().enumerate() {
        let mut y = h - bottom;
        for (s, (_, values)) in data.series.iter().enumerate() {
            let height = values[i] / max * (h - bottom - 10.0);
            y -= height;
            let x = left + i as f64 * bar;
            let colour = COLOURS[s % COLOURS.len()];
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{height:.1}" fill="{colour}"/>"#,
                (bar - 1.0).max(0.5)
            );
        }
    }
    let _ = write!(svg, r#"<text x="0" y="12" class="axis">{}</text>"#, number(max));
    if let (Some(first), Some(last)) = (data.xs.first(), data.xs.last()) {
        let _ = write!(svg, r#"<text x="{left}" y="{h}" class="axis">{}</text>"#, escape(first));
        let _ = write!(svg, r#"<text x="{w}" y="{h}" class="axis" text-anchor="end">{}</text>"#, escape(last));
    }
    svg.push_str("</svg>");
    svg
}

/// The legend of a stacked chart, with each series' total over the shown xs.
fn legend(data: &Stacked, panel: &str) -> String {
    let mut html = String::from(r#"<table class="legend">"#);
    for (s, (name, values)) in data.series.iter().enumerate() {
        let total: f64 = values.iter().sum();
        let _ = write!(
            html,
            r#"<tr><td><span class="swatch" style="background:{}"></span>{}</td><td class="num" data-panel="{panel}" data-key="{}" data-value="{}">{}</td></tr>"#,
            COLOURS[s % COLOURS.len()],
            escape(name),
            escape(name),
            total,
            number(total)
        );
    }
    html.push_str("</table>");
    html
}

/// Horizontal bars with their values.
fn ranked_bars(items: &Ranked, panel: &str) -> String {
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1.0);
    let mut html = String::from(r#"<table class="bars">"#);
    for (label, value) in items {
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td class="barcell"><div class="bar" style="width:{:.1}%"></div></td><td class="num" data-panel="{panel}" data-key="{}" data-value="{value}">{}</td></tr>"#,
            escape(label),
            value / max * 100.0,
            escape(label),
            number(*value)
        );
    }
    if items.is_empty() {
        html.push_str(r#"<tr><td class="empty">no rows yet</td></tr>"#);
    }
    html.push_str("</table>");
    html
}

/// One chart per series (their units differ): a title with the series' mean, then its bars.
fn each_series(data: &Stacked, panel: &str) -> String {
    let mut html = String::new();
    for (name, values) in &data.series {
        let one = Stacked { xs: data.xs.clone(), series: vec![(name.clone(), values.clone())] };
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let _ = write!(
            html,
            r#"<h3>{} (mean <span class="num" data-panel="{panel}" data-key="{}" data-value="{mean}">{}</span>)</h3>{}"#,
            escape(name),
            escape(name),
            number(mean),
            stacked_bars(&one)
        );
    }
    html
}

fn section(name: &str, title: &str, body: &str) -> String {
    format!(r#"<section class="panel" data-panel="{name}"><h2>{}</h2>{body}</section>"#, escape(title))
}

/// Every panel, in one fragment consistent at `panels.upper`.
pub fn fragment(panels: &Panels, partitions: &str) -> String {
    let mut html = format!(r#"<div id="panels" data-upper="{}" data-complete="{}">"#, panels.upper, panels.complete);
    let stacked = |data: &Stacked, name: &str| format!("{}{}", stacked_bars(data), legend(data, name));
    html.push_str(&section(
        "participation",
        "Class participation: events per minute by type (last hour)",
        &stacked(&panels.participation, "participation"),
    ));
    html.push_str(&section(
        "av_quality",
        "Audio/video quality per 30 s: average loss and frame rate",
        &format!(
            "{}<h3>Classrooms with the most audio loss</h3>{}",
            each_series(&panels.av_quality, "av_quality"),
            ranked_bars(&panels.worst_classrooms, "worst_classrooms")
        ),
    ));
    html.push_str(&section(
        "registrations",
        "Registrations per hour by level (last 24 hours)",
        &stacked(&panels.registrations, "registrations"),
    ));
    let (day, consultants) = &panels.consultants;
    html.push_str(&section(
        "consultants",
        &format!("Course-consultant follow-ups, {day}"),
        &ranked_bars(consultants, "consultants"),
    ));
    let (day, areas) = &panels.uv_pv;
    let mut table = String::from(r#"<table class="grid"><tr><th>area</th><th>UV</th><th>PV</th></tr>"#);
    for (area, uv, pv) in areas {
        let a = escape(area);
        let _ = write!(
            table,
            r#"<tr><td>{a}</td><td class="num" data-panel="uv" data-key="{a}" data-value="{uv}">{uv}</td><td class="num" data-panel="pv" data-key="{a}" data-value="{pv}">{pv}</td></tr>"#
        );
    }
    table.push_str("</table>");
    html.push_str(&section("uv_pv", &format!("Unique users and page views per area, {day}"), &table));
    let (day, teachers) = &panels.top_teachers;
    let mut table =
        String::from(r#"<table class="grid"><tr><th>#</th><th>teacher</th><th>students</th><th>rooms</th></tr>"#);
    for (rank, teacher, students, rooms) in teachers {
        let t = escape(teacher);
        let _ = write!(
            table,
            r#"<tr><td>{rank}</td><td>{t}</td><td class="num" data-panel="top_teachers" data-key="{t}" data-value="{students}">{students}</td><td>{rooms}</td></tr>"#
        );
    }
    table.push_str("</table>");
    html.push_str(&section("top_teachers", &format!("Top teachers, {day}"), &table));
    html.push_str(&section(
        "dead_letters",
        "Dead letters by reason",
        &ranked_bars(&panels.dead_letters, "dead_letters"),
    ));
    html.push_str(&section("partitions", "Partitions: watermark lag and records/s", partitions));
    html.push_str("</div>");
    html
}
