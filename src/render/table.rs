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

/// The findings as text: one block per finding with its evidence and
/// remedy. With `-q`, info findings are left out.
pub fn findings(ctx: &Context, findings: &[Finding]) -> String {
    let shown: Vec<&Finding> =
        findings.iter().filter(|f| !ctx.quiet || f.severity >= Severity::Warning).collect();
    if shown.is_empty() {
        return if ctx.quiet { String::new() } else { "No findings.\n".to_string() };
    }
    let mut table = new_table(ctx, &["severity", "finding", "evidence / remedy"]);
    for f in shown {
        table.add_row(vec![
            severity_cell(ctx, f.severity),
            Cell::new(format!("{}\n({})", f.summary, f.code)),
            Cell::new(format!("{}\n-> {}", f.evidence, f.remedy)),
        ]);
    }
    format!("{table}\n")
}
