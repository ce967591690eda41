//! Rendering of reports: one file per output format, all taking the same
//! report structs. Progress goes to stderr, and only on a terminal.

pub mod compare;
pub mod doctor;
pub mod json;
pub mod lab;
pub mod probe;
pub mod prometheus;
pub mod services;
pub mod stale;
pub mod stats;
pub mod table;
pub mod terminal;

use std::io::{IsTerminal, Write};

use crate::error::{Error, Result};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable tables.
    Table,
    /// One JSON object (JSON Lines for streams such as `--watch`).
    Json,
    /// Prometheus text exposition format (metrics commands only).
    Prometheus,
}

/// Color choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Color when stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always color.
    Always,
    /// Never color.
    Never,
}

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
    pub fn new(format: OutputFormat, color: ColorChoice, quiet: bool, verbose: u8) -> Self {
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        };
        Context { format, color, quiet, verbose }
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

/// Whether written output reached a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written (to a terminal, a file or a pipe still read).
    Written,
    /// The reader closed the pipe (`ctdiag ... | head -1`).
    ReaderGone,
}

/// Writes rendered text to stdout, through [`terminal::for_terminal`]
/// (every control character a pod could have put in it escaped; JSON is
/// left as it is, having none: [`json`] escapes them). A closed pipe is not an error: the
/// reader has what it wanted, so the command ends quietly, and its exit
/// status still says what it found (the caller decided that before
/// rendering). Loops such as `--watch` stop on [`Delivery::ReaderGone`].
pub fn emit(text: &str) -> Result<Delivery> {
    let text = terminal::for_terminal(text);
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| if text.ends_with('\n') { Ok(()) } else { out.write_all(b"\n") })
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(Delivery::Written),
        // Why no message: `ctdiag stats -o json | head -1` must not end in
        // an error; a closed pipe means the reader is done.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Delivery::ReaderGone),
        Err(e) => Err(Error::Output(e)),
    }
}

/// Renders a command's report in the chosen format and writes it: the
/// report as JSON, or the command's own table or Prometheus text. The
/// outcome is the caller's, decided before rendering, so a reader that
/// closed the pipe does not change the exit status.
pub fn report<R: serde::Serialize>(
    ctx: &Context,
    report: &R,
    outcome: crate::findings::Outcome,
    table: fn(&Context, &R) -> String,
    prometheus: fn(&R) -> String,
) -> Result<crate::findings::Outcome> {
    let text = match ctx.format {
        OutputFormat::Json => json::document(report)?,
        OutputFormat::Prometheus => prometheus(report),
        OutputFormat::Table => table(ctx, report),
    };
    emit(&text)?;
    Ok(outcome)
}

/// Writes a note for people to stderr (never into the JSON on stdout),
/// through [`terminal::for_terminal`].
pub fn note(ctx: &Context, text: &str) {
    if !ctx.quiet {
        eprintln!("{}", terminal::for_terminal(text));
    }
}

/// Writes a line to stderr whatever `-q` says (warnings that go with the
/// output), through [`terminal::for_terminal`].
pub fn warn(text: &str) {
    eprintln!("{}", terminal::for_terminal(text));
}
