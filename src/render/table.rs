//! Table output for people (comfy-table).

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};

use crate::findings::{Finding, Severity};
use crate::render::Context;

/// A table with the house style.
pub fn new_table(ctx: &Context, header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    if !ctx.color {
        table.force_no_tty();
    } else {
        table.enforce_styling();
    }
    // Why: off a terminal comfy-table does not know a width and would not
    // wrap; $COLUMNS or 120 keeps piped output readable.
    if table.width().is_none() {
        let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(120);
        table.set_width(width);
    }
    table.set_header(header.iter().map(Cell::new));
    table
}

/// A right-aligned number cell.
pub fn num(value: impl std::fmt::Display) -> Cell {
    Cell::new(value).set_alignment(CellAlignment::Right)
}

/// A severity cell, colored when color is on.
pub fn severity_cell(ctx: &Context, severity: Severity) -> Cell {
    let cell = Cell::new(severity.as_str());
    if !ctx.color {
        return cell;
    }
    match severity {
        Severity::Info => cell.fg(Color::Cyan),
        Severity::Warning => cell.fg(Color::Yellow),
        Severity::Critical => cell.fg(Color::Red),
    }
}

/// The report's notes (where its data came from, what was retried), one
/// `note:` line each, shown with `-v` only.
pub fn verbose_notes(ctx: &Context, notes: &[String], out: &mut String) {
    if ctx.verbose > 0 {
        for note in notes {
            out.push_str("note: ");
            out.push_str(note);
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
        let label = if ctx.color {
            let code = match f.severity {
                Severity::Info => "36",
                Severity::Warning => "33",
                Severity::Critical => "1;31",
            };
            format!("\x1b[{code}m{label}\x1b[0m")
        } else {
            label
        };
        out.push_str(&format!("{label} {} [{}]\n", f.summary, f.code));
        out.push_str(&format!("         evidence: {}\n", f.evidence));
        out.push_str(&format!("         remedy:   {}\n", f.remedy));
    }
    out
}
