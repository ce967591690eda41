//! Rendering of reports: one file per output format, all taking the same
//! report structs. Progress goes to stderr, and only on a terminal.

pub mod json;
pub mod probe;
pub mod stale;
pub mod stats;
pub mod table;

use std::io::{IsTerminal, Write};

use crate::cli::{ColorChoice, GlobalArgs, OutputFormat};
use crate::error::{Error, Result};

/// How to render, from the global options.
#[derive(Debug, Clone)]
pub struct Context {
    /// table, json or prometheus.
    pub format: OutputFormat,
    /// Whether to use ANSI colors.
    pub color: bool,
    /// `-q`: only findings that need attention.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
}

impl Context {
    /// Resolves `--color auto` against the terminal and `NO_COLOR`.
    pub fn new(global: &GlobalArgs) -> Self {
        let color = match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Context { format: global.output, color, quiet: global.quiet, verbose: global.verbose }
    }

    /// A usage error for commands that have no Prometheus form.
    pub fn no_prometheus(&self, command: &str) -> Result<()> {
        if self.format == OutputFormat::Prometheus {
            return Err(Error::Usage(format!(
                "`{command}` has no Prometheus output; use -o table or -o json"
            )));
        }
        Ok(())
    }
}

/// Writes rendered text to stdout. A closed pipe surfaces as
/// `Error::Output(BrokenPipe)`, which the caller turns into a quiet exit.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).map_err(Error::Output)?;
    if !text.ends_with('\n') {
        out.write_all(b"\n").map_err(Error::Output)?;
    }
    out.flush().map_err(Error::Output)
}

/// Writes a note for people to stderr (never into the JSON on stdout).
pub fn note(ctx: &Context, text: &str) {
    if !ctx.quiet {
        eprintln!("{text}");
    }
}
