//! Table output for people (comfy-table).
//!
//! Colors are [`terminal::paint`] marks, never comfy-table styling: the
//! text of a table reaches the terminal only through
//! [`terminal::for_terminal`] (in [`super::emit`]), which escapes every
//! control character a pod put in a cell and turns only ctdiag's own marks
//! into color.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

use crate::findings::{Finding, Severity};
use crate::render::terminal::{self, paint};
use crate::render::Context;

/// The width of tables piped to a file or a program: readable, and
/// overridden by `$COLUMNS`.
const PIPED_WIDTH: u16 = 120;
/// The width of tables on a terminal that reports no size (0 columns: a
/// pty without a window size, as under `script` or some `kubectl exec
/// -t`): the classic terminal width.
const UNKNOWN_TERMINAL_WIDTH: u16 = 80;

/// The width to lay a table out in: the terminal's when it reports one,
/// else `$COLUMNS`, else [`PIPED_WIDTH`] off a terminal and
/// [`UNKNOWN_TERMINAL_WIDTH`] on one that reports 0 columns.
pub fn table_width(terminal: Option<u16>, columns: Option<&str>) -> u16 {
    match terminal {
        Some(width) if width > 0 => width,
        _ => {
            let fallback = if terminal.is_some() { UNKNOWN_TERMINAL_WIDTH } else { PIPED_WIDTH };
            columns.and_then(|c| c.trim().parse().ok()).filter(|w| *w > 0).unwrap_or(fallback)
        }
    }
}

/// A table with the house style.
pub fn new_table(ctx: &Context, header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    if !ctx.color {
        table.force_no_tty();
    }
    // Why: off a terminal comfy-table does not know a width and would not
    // wrap; on a terminal that reports 0 columns it would squash every
    // column to one letter.
    let width = table_width(table.width(), std::env::var("COLUMNS").ok().as_deref());
    table.set_width(width);
    table.set_header(header.iter().map(Cell::new));
    table
}

/// A right-aligned number cell.
pub fn num(value: impl std::fmt::Display) -> Cell {
    Cell::new(value).set_alignment(CellAlignment::Right)
}

/// A severity cell, colored when color is on.
pub fn severity_cell(ctx: &Context, severity: Severity) -> Cell {
    if !ctx.color {
        return Cell::new(severity.as_str());
    }
    Cell::new(paint(severity_sgr(severity), severity.as_str()))
}

/// The SGR color of a severity.
fn severity_sgr(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "36",
        Severity::Warning => "33",
        Severity::Critical => "1;31",
    }
}

/// The report's notes (where its data came from, what was retried), one
/// `note:` line each, shown with `-v` only.
pub fn verbose_notes(ctx: &Context, notes: &[String], out: &mut String) {
    if ctx.verbose > 0 {
        for note in notes {
            out.push_str("note: ");
            out.push_str(&terminal::escape(note));
            out.push('\n');
        }
    }
}

/// The findings as text: a headline per finding with its severity and
/// code, then the evidence and the remedy, indented. With `-q`, info
/// findings are left out.
pub fn findings(ctx: &Context, findings: &[Finding]) -> String {
    let shown: Vec<&Finding> =
        findings.iter().filter(|f| !ctx.quiet || f.severity >= Severity::Warning).collect();
    if shown.is_empty() {
        return if ctx.quiet { String::new() } else { "No findings.\n".to_string() };
    }
    let mut out = String::new();
    for f in shown {
        let label = format!("{:<8}", f.severity.as_str().to_uppercase());
        let label = if ctx.color { paint(severity_sgr(f.severity), &label) } else { label };
        // Each field stays on its line: a pod's newline is escaped too.
        out.push_str(&format!("{label} {} [{}]\n", terminal::escape(&f.summary), f.code));
        out.push_str(&format!("         evidence: {}\n", terminal::escape(&f.evidence)));
        out.push_str(&format!("         remedy:   {}\n", terminal::escape(&f.remedy)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_or_zero_width_never_squashes_a_table() {
        // A terminal's own width wins.
        assert_eq!(table_width(Some(200), Some("90")), 200);
        // A pty that reports 0 columns: $COLUMNS, else 80.
        assert_eq!(table_width(Some(0), None), 80);
        assert_eq!(table_width(Some(0), Some("100")), 100);
        assert_eq!(table_width(Some(0), Some("0")), 80);
        // Not a terminal: $COLUMNS, else 120.
        assert_eq!(table_width(None, None), 120);
        assert_eq!(table_width(None, Some("junk")), 120);
        assert_eq!(table_width(None, Some("60")), 60);
    }

    #[test]
    fn finding_fields_stay_on_their_lines() {
        let ctx = Context {
            format: crate::render::OutputFormat::Table,
            color: true,
            quiet: false,
            verbose: 0,
        };
        let finding = Finding::new(
            Severity::Critical,
            crate::findings::FindingCode::ResolvConfUnusable,
            "summary",
            "pod web\n\rCRITICAL fake [x]\x1b[8m",
            "remedy",
        );
        let text = terminal::for_terminal(&findings(&ctx, &[finding])).into_owned();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.starts_with("\x1b[1;31mCRITICAL"), "{text:?}");
        assert!(text.contains("pod web\\x0a\\x0dCRITICAL fake [x]\\x1b[8m"), "{text}");
        assert_eq!(text.matches('\x1b').count(), 2, "only the label's color: {text:?}");
    }
}
