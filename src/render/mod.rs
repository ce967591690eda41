//! Rendering of reports, one way for every command: each report implements
//! [`Render`] (its table, its JSON, and its Prometheus text where it has
//! metrics), and [`emit_report`] picks the format and writes it; a stream
//! of samples (`stats --watch`) implements [`RenderLine`] and goes through
//! [`emit_line`]. The impls live in one file per command (`probe.rs`,
//! `lab.rs`, ...); the formats' shared pieces in [`table`], [`json`] and
//! [`prometheus`]. Progress goes to stderr, and only on a terminal.

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
pub mod watch;

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
}

/// The usage error of `-o prometheus` for a command without metrics.
fn no_prometheus(command: &str) -> Error {
    Error::Usage(format!("`{command}` has no Prometheus output; use -o table or -o json"))
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

/// A command's report, as each output format draws it. JSON is the report
/// serialized as it is (unless [`Render::json`] says otherwise), so what a
/// person reads and what a script parses come from the same struct.
pub trait Render: serde::Serialize {
    /// The command as the `-o prometheus` usage error names it.
    const COMMAND: &'static str;
    /// Whether the report has metrics: [`Render::prometheus`] gives `Some`.
    const METRICS: bool = false;

    /// The table (and text) for people.
    fn table(&self, ctx: &Context) -> String;

    /// The JSON document scripts parse: the report itself.
    fn json(&self, _ctx: &Context) -> Result<String> {
        json::document(self)
    }

    /// The Prometheus text exposition, for reports with metrics.
    fn prometheus(&self) -> Option<String> {
        None
    }
}

/// One sample of a stream (`stats --watch`): a JSON line each, or a table
/// row (with the header before the first).
pub trait RenderLine: serde::Serialize {
    /// The sample's table row, after the header line when `with_header`.
    fn row(&self, ctx: &Context, with_header: bool) -> String;
}

/// The usage error for `-o prometheus` when `R` has no metrics, given
/// before the command does any work (`lab up` builds nothing).
pub fn check_format<R: Render>(ctx: &Context) -> Result<()> {
    if ctx.format == OutputFormat::Prometheus && !R::METRICS {
        return Err(no_prometheus(R::COMMAND));
    }
    Ok(())
}

/// Renders a command's report in the chosen format and writes it. The
/// command decides its outcome before rendering, so a reader that closed
/// the pipe does not change the exit status.
pub fn emit_report<R: Render>(ctx: &Context, report: &R) -> Result<Delivery> {
    let text = match ctx.format {
        OutputFormat::Json => report.json(ctx)?,
        OutputFormat::Table => report.table(ctx),
        OutputFormat::Prometheus => match report.prometheus() {
            Some(text) => text,
            None => return Err(no_prometheus(R::COMMAND)),
        },
    };
    emit(&text)
}

/// Writes one sample of a stream: a compact JSON line, or its table row
/// (`-o prometheus` is refused by the command before the stream starts).
pub fn emit_line<R: RenderLine>(ctx: &Context, sample: &R, with_header: bool) -> Result<Delivery> {
    let text = match ctx.format {
        OutputFormat::Json => json::line(sample)?,
        _ => sample.row(ctx, with_header),
    };
    emit(&text)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::DownReport;
    use crate::stale::StaleReport;

    fn ctx(format: OutputFormat) -> Context {
        Context { format, color: false, quiet: false, verbose: 0 }
    }

    #[test]
    fn prometheus_is_refused_where_a_report_has_no_metrics() {
        // The CLI's usage error (exit 2), the same whether the command asks
        // before its work or the report is already there.
        let expected = "`ctdiag lab` has no Prometheus output; use -o table or -o json";
        let down = DownReport {
            prefix: "none".into(),
            found: false,
            removed_namespaces: Vec::new(),
            stopped_pids: Vec::new(),
            removed_paths: Vec::new(),
        };
        let prometheus = ctx(OutputFormat::Prometheus);
        for result in
            [check_format::<DownReport>(&prometheus), emit_report(&prometheus, &down).map(|_| ())]
        {
            match result {
                Err(Error::Usage(message)) => assert_eq!(message, expected),
                other => panic!("{other:?}"),
            }
        }
        assert!(check_format::<DownReport>(&ctx(OutputFormat::Table)).is_ok());
        assert!(check_format::<DownReport>(&ctx(OutputFormat::Json)).is_ok());
        assert!(check_format::<StaleReport>(&prometheus).is_ok());
    }
}
