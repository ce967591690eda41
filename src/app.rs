//! The edge between the command line and the library: parse, dispatch to
//! the subcommand, and say whether a problem was found.

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::{Error, Result};
use crate::render::Context;

/// What a command concluded, mapped to the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Ran and found nothing wrong: exit 0.
    Clean,
    /// Ran and found a problem (a warning or worse): exit 1.
    Problem,
}

impl Outcome {
    /// From a list of findings.
    pub fn from_findings(findings: &[crate::findings::Finding]) -> Self {
        if crate::findings::has_problem(findings) {
            Outcome::Problem
        } else {
            Outcome::Clean
        }
    }

    /// The process exit status.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Problem => ExitCode::from(1),
        }
    }
}

/// Parses the command line and runs the command. clap prints usage errors
/// itself and exits 2.
pub fn run() -> Result<Outcome> {
    let cli = Cli::parse();
    let ctx = Context::new(&cli.global);
    let result = match cli.command {
        Command::Stats(args) => commands::stats::execute(args, &ctx),
        Command::Probe(args) => commands::probe::execute(args, &ctx),
        Command::Lab(args) => commands::lab::execute(args, &ctx),
    };
    match result {
        // Why: `ctdiag stats -o json | head -1` must not end in an error
        // message; a closed pipe means the reader has what it wanted.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Clean),
        other => other,
    }
}
