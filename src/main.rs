//! `edu-rtdw`: the real-time data warehouse binary.
//!
//! Subcommands: `run` (the job; the default when none is given) and `gen`
//! (seeded sample data). Timely's own cluster flags `-w -n -p -h` are accepted
//! before or after the subcommand.

mod admin;
mod bench;
mod checkpoint;
mod cli;
mod cluster;
mod config;
mod dashboard;
mod job;
mod latency_report;
mod progress;
mod query;
mod serving;
mod snapshot;

/// mimalloc: the dataflow allocates and frees many small strings per record.
/// Built with `no_thp`: mimalloc does not ask for transparent huge pages, whose
/// 2 MiB zeroing on first touch took ~20 % of the worker's time in the in-memory
/// benchmark (perf: `clear_page_erms` under `do_huge_pmd_anonymous_page`), far
/// more than the memory it actually touched.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::parse();
    init_logs();
    if let Err(e) = job::dispatch(cli) {
        // Output into a pipe that was closed early (`edu-rtdw … | head -1`) is not an error.
        if broken_pipe(&e) {
            return;
        }
        eprintln!("edu-rtdw: {e:#}");
        std::process::exit(1);
    }
}

/// Logs go to stderr through `tracing`: level `info` unless `RUST_LOG` says
/// otherwise (e.g. `RUST_LOG=edu_rtdw=debug,connectors=debug`; `RUST_LOG=off`
/// silences them). Fatal errors are not logs: they are printed as one line
/// whatever the filter.
fn init_logs() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Whether `e` is a write into a closed pipe.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
