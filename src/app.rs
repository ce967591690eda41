//! The edge between the command line and the library: parse, dispatch to
//! the subcommand, and say whether a problem was found.

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::{Error, Result};
use crate::render::Context;

pub use crate::findings::Outcome;

/// Parses the command line and runs the command. clap prints usage errors
/// itself and exits 2.
pub fn run() -> Result<Outcome> {
    let cli = Cli::parse();
    let ctx = Context::new(&cli.global);
    let result = match cli.command {
        Command::Stats(args) => commands::stats::execute(args, &ctx),
        Command::Probe(args) => commands::probe::execute(args, &ctx),
        Command::Stale(args) => commands::stale::execute(args, &ctx),
        Command::Lab(args) => commands::lab::execute(args, &ctx),
    };
    match result {
        // Why: `ctdiag stats -o json | head -1` must not end in an error
        // message; a closed pipe means the reader has what it wanted.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Clean),
        other => other,
    }
}
