//! The edge between the command line and the library: parse, dispatch to
//! the subcommand, and say whether a problem was found.

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::Result;
use crate::render::Context;

pub use crate::findings::Outcome;

/// Parses the command line and runs the command. clap prints usage errors
/// itself and exits 2.
pub fn run() -> Result<Outcome> {
    let cli = Cli::parse();
    let g = &cli.global;
    let ctx = Context::new(g.output, g.color, g.quiet, g.verbose);
    // Each command decides its outcome before it renders, and a closed
    // stdout pipe is not an error (`render::emit`): `ctdiag probe | head -c
    // 1` exits quietly with the status of the findings.
    match cli.command {
        Command::Stats(args) => commands::stats::execute(args, &ctx),
        Command::Probe(args) => commands::probe::execute(args, &ctx),
        Command::Compare(args) => commands::compare::execute(args, &ctx),
        Command::Services(args) => commands::services::execute(args, &ctx),
        Command::Stale(args) => commands::stale::execute(args, &ctx),
        Command::Doctor(args) => commands::doctor::execute(args, &ctx),
        Command::Lab(args) => commands::lab::execute(args, &ctx),
        Command::Watch(args) => commands::watch::execute(args, &ctx),
    }
}
