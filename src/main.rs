//! `edu-rtdw`: the real-time data warehouse binary.
//!
//! Subcommands: `run` (the job; the default when none is given) and `gen`
//! (seeded sample data). Timely's own cluster flags `-w -n -p -h` are accepted
//! before or after the subcommand.

mod admin;
mod bench;
mod cli;
mod cluster;
mod config;
mod job;
mod progress;
mod query;
mod snapshot;

use clap::Parser;

/// mimalloc: the dataflow allocates and frees many small strings per record.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(e) = job::dispatch(cli) {
        eprintln!("edu-rtdw: {e:#}");
        std::process::exit(1);
    }
}
