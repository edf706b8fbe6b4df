//! The `fwctl` command line.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::{
    io::{self, Write},
    process::ExitCode,
};

use clap::{Parser, Subcommand, ValueEnum};
use fwctl::{error::Error, netlink::Client, stats::StatsReport};

/// Configure and inspect rfw, the connection-tracking and NAT engine.
#[derive(Debug, Parser)]
#[command(name = "fwctl", version)]
struct Cli {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for programs.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Per-hook packet and byte counters of this network namespace.
    Stats,
}

fn main() -> ExitCode {
    // Bad arguments: clap prints its message and exits 2 (help/version: 0).
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Nothing better to do if stderr is gone too.
            let _ = writeln!(io::stderr(), "fwctl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Error> {
    match cli.command {
        Command::Stats => {
            let mut client = Client::connect()?;
            let report = StatsReport::fetch(&mut client)?;
            let text = match cli.output {
                Output::Table => report.to_table(),
                Output::Json => report.to_json()?,
            };
            print(&text)
        }
    }
}

/// Writes to stdout; a reader that went away (`fwctl stats | head -1`) is
/// not an error.
fn print(text: &str) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::io("writing output", e)),
        _ => Ok(()),
    }
}
