//! The `fwctl` command line.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::{
    io::{self, BufWriter, Write},
    process::ExitCode,
};

use clap::{error::ErrorKind, CommandFactory, Parser};
use fwctl::{
    cli::{escape_rule_words, is_broken_pipe, Cli, UsageError},
    netlink::Client,
};

fn main() -> ExitCode {
    // Bad arguments: clap prints its message and exits 2 (help/version: 0).
    // A rule's words go to the rule parser whole (`-o IF` is not `-o json`).
    let cli = Cli::parse_from(escape_rule_words(std::env::args_os()));
    // Arguments that do not fit together, likewise, before any netlink traffic.
    let job = match cli.job() {
        Ok(job) => job,
        Err(e) => usage_exit(e),
    };
    let result = Client::connect().and_then(|mut client| {
        // `ct list` may print a million lines: buffer them.
        let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
        job.run(&mut client, cli.output, &mut out, &mut io::stderr().lock())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`fwctl ct list | head -1`) is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Nothing better to do if stderr is gone too.
            let _ = writeln!(io::stderr(), "fwctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reports `e` as clap reports bad arguments, with the subcommand's usage,
/// and exits 2.
fn usage_exit(e: UsageError) -> ! {
    let mut cmd = Cli::command();
    cmd.build();
    let [a, b] = e.path;
    match cmd
        .find_subcommand_mut(a)
        .and_then(|c| c.find_subcommand_mut(b))
    {
        Some(sub) => sub.error(ErrorKind::ValueValidation, e.message).exit(),
        None => cmd.error(ErrorKind::ValueValidation, e.message).exit(),
    }
}
