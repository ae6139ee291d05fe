//! The live dashboard served at `/` of the admin address (issue 23).
//!
//! The page (`page.html`, embedded in the binary: no CDN, no script library) shows every
//! panel of [`panels`] as server-side SVG ([`render`]) with the numbers it draws, all read
//! at one logical frontier through [`crate::serving`] (one read of the metrics the panels
//! need, the same rows `query` prints at that frontier), and says which frontier. An open
//! page is kept current by server-sent events (`/dashboard/events`): the admin endpoint
//! pushes a new fragment whenever worker 0's frontier moves (at most about twice a second,
//! and a keep-alive every 15 s); the connection ends at the endpoint's lifetime limit and
//! the browser reconnects (`retry: 1000`), so the page stays within the limits every other
//! client has.

pub mod panels;
pub mod partitions;
pub mod render;

use std::sync::{Mutex, PoisonError};

use serde_json::json;

use crate::serving::peek::Serving;
use crate::serving::{AsOf, Reader};

use partitions::Rates;

/// The page template; the panels go in place of `<!--PANELS-->`.
const PAGE: &str = include_str!("page.html");

/// The process's previous partition totals: records/s are over the time since any page or
/// event last rendered them.
static RATES: Mutex<Rates> = Mutex::new(Rates::new());

/// The panels now, as an HTML fragment, with the frontier they are consistent at.
pub fn fragment(serving: &Serving) -> Result<(u64, bool, String), String> {
    let answer = serving.read(&panels::READS, AsOf::Latest)?;
    let panels = panels::panels(&answer);
    let metrics = connectors::metrics::render();
    let table = RATES.lock().unwrap_or_else(PoisonError::into_inner).table(&metrics);
    Ok((panels.upper, panels.complete, render::fragment(&panels, &table)))
}

/// The whole page, with the panels of now in it.
pub fn page(serving: &Serving) -> String {
    let panels = match fragment(serving) {
        Ok((_, _, html)) => html,
        Err(e) => format!(r#"<div id="panels" data-upper="">{}</div>"#, render::escape(&e)),
    };
    PAGE.replace("<!--PANELS-->", &panels)
}

/// One server-sent event with the panels of now (a comment when they cannot be read).
pub fn event(serving: &Serving) -> String {
    match fragment(serving) {
        Ok((upper, complete, html)) => {
            let data = json!({"upper": upper, "complete": complete, "html": html});
            format!("event: panels\ndata: {data}\n\n")
        }
        Err(e) => format!(": {}\n\n", e.replace('\n', " ")),
    }
}
