//! `edu-rtdw`: the real-time data warehouse binary.
//!
//! Subcommands: `run` (the job; the default when none is given) and `gen`
//! (seeded sample data). Timely's own cluster flags `-w -n -p -h` are accepted
//! before or after the subcommand.

mod cli;
mod config;
mod job;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(e) = job::dispatch(cli) {
        eprintln!("edu-rtdw: {e:#}");
        std::process::exit(1);
    }
}
