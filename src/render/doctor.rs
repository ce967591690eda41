//! Rendering of `ctdiag doctor` reports: the verdict table, the progress
//! line, the node-problem-detector line and Prometheus text.

use std::fmt::Write as _;
use std::time::Duration;

use comfy_table::Cell;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::doctor::{DoctorReport, Progress, Status};
use crate::findings::Finding;
use crate::render::prometheus::{self, Family};
use crate::render::table::{findings, new_table};
use crate::render::{Context, Render};

/// The longest line node-problem-detector keeps (its `max_output_length`).
pub const NPD_MAX_LINE: usize = 80;

fn status_cell(ctx: &Context, status: Status) -> Cell {
    if !ctx.color {
        return Cell::new(status.as_str());
    }
    let sgr = match status {
        Status::NotApplicable => "36",
        Status::Ok => "32",
        Status::Unknown => "35",
        Status::Warning => "33",
        Status::Critical => "31",
    };
    Cell::new(crate::render::terminal::paint(sgr, status.as_str()))
}

/// The verdict table, the findings, and the verdict line.
fn table(ctx: &Context, report: &DoctorReport) -> String {
    let mut out = String::new();
    let mut t = new_table(ctx, &["check", "status", "evidence", "remedy"]);
    for check in &report.checks {
        if ctx.quiet && matches!(check.status, Status::Ok | Status::NotApplicable) {
            continue;
        }
        t.add_row(vec![
            Cell::new(&check.check),
            status_cell(ctx, check.status),
            Cell::new(&check.evidence),
            Cell::new(&check.remedy),
        ]);
    }
    let _ = writeln!(out, "{t}");
    out.push('\n');
    let list: Vec<Finding> = report.findings.iter().map(|f| f.finding.clone()).collect();
    let text = findings(ctx, &list);
    if !text.is_empty() {
        out.push_str(&text);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "verdict: {} - {} ({:.1} s of a {:.0} s budget{})",
        report.verdict.as_str().to_uppercase(),
        report.summary,
        report.duration_s,
        report.budget_s,
        report.netns.as_deref().map(|n| format!("; node namespace {n}")).unwrap_or_default()
    );
    out
}

/// A spinner on stderr with the checks still running.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} doctor: {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The progress line's text.
pub fn progress_text(progress: &Progress) -> String {
    format!(
        "{}/{} checks done, {:.1} s of {:.0} s; running: {}",
        progress.done,
        progress.total,
        progress.elapsed.as_secs_f64(),
        progress.budget.as_secs_f64(),
        if progress.running.is_empty() { "-".to_string() } else { progress.running.join(", ") }
    )
}

/// `text` as one line of at most [`NPD_MAX_LINE`] ASCII characters
/// (node-problem-detector cuts bytes, which could split a character).
fn one_line(text: &str) -> String {
    let flat: String =
        text.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { ' ' }).collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.len() <= NPD_MAX_LINE {
        flat
    } else {
        format!("{}...", &flat[..NPD_MAX_LINE - 3])
    }
}

/// The node-problem-detector line: the worst finding, or that all checks
/// passed, or which check could not run.
pub fn npd_line(report: &DoctorReport) -> String {
    let text = match report.verdict {
        Status::Critical | Status::Warning => match report.findings.first() {
            Some(f) => {
                format!("{} {}: {}", f.finding.severity.as_str(), f.finding.code, f.finding.summary)
            }
            None => report.summary.clone(),
        },
        Status::Unknown => match report.checks.iter().find(|c| c.status == Status::Unknown) {
            Some(check) => format!("unknown {}: {}", check.check, check.evidence),
            None => report.summary.clone(),
        },
        Status::Ok | Status::NotApplicable => format!("ok: {}", report.summary),
    };
    one_line(&text)
}

/// The node-problem-detector line for an error before any check ran.
pub fn npd_error(error: &crate::Error) -> String {
    one_line(&format!("unknown: {error}"))
}

/// Prometheus text exposition: per check its status (one series per
/// status, 1 for the current one) and duration, the findings by check, the
/// verdict and the run's time.
fn prometheus(report: &DoctorReport) -> String {
    const STATUSES: [Status; 5] =
        [Status::NotApplicable, Status::Ok, Status::Unknown, Status::Warning, Status::Critical];
    let mut status = Family::gauge(
        "ctdiag_doctor_check_status",
        "Whether a doctor check ended with this status (1) or not (0).",
    );
    let mut duration =
        Family::gauge("ctdiag_doctor_check_duration_seconds", "How long a doctor check took.");
    for check in &report.checks {
        for s in STATUSES {
            status.sample(
                &[("check", &check.check), ("status", s.as_str())],
                f64::from(u8::from(check.status == s)),
            );
        }
        duration.sample(&[("check", &check.check)], check.duration_s);
    }
    let findings = prometheus::counted(
        "ctdiag_doctor_findings",
        "Findings of the last ctdiag doctor run by check, code and severity (how many).",
        report.findings.iter().map(|f| {
            vec![
                ("check", f.check.as_str()),
                ("code", f.finding.code.as_str()),
                ("severity", f.finding.severity.as_str()),
            ]
        }),
    );
    let mut verdict = Family::gauge(
        "ctdiag_doctor_verdict",
        "Whether the last ctdiag doctor run's verdict is this status (1) or not (0).",
    );
    for s in STATUSES {
        verdict.sample(&[("status", s.as_str())], f64::from(u8::from(report.verdict == s)));
    }
    let mut run =
        Family::gauge("ctdiag_doctor_run_seconds", "Wall time of the last ctdiag doctor run.");
    run.sample(&[], report.duration_s);
    prometheus::write_all(&[&status, &duration, &findings, &verdict, &run])
}

impl Render for DoctorReport {
    const COMMAND: &'static str = "doctor";
    const METRICS: bool = true;

    fn table(&self, ctx: &Context) -> String {
        table(ctx, self)
    }

    fn prometheus(&self) -> Option<String> {
        Some(prometheus(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npd_lines_are_one_short_ascii_line() {
        let long = format!("critical endpoint-dead: {}\nsecond line é", "x".repeat(200));
        let line = one_line(&long);
        assert!(line.len() <= NPD_MAX_LINE && line.is_ascii() && !line.contains('\n'), "{line}");
        assert!(line.ends_with("..."));
        assert_eq!(one_line("ok: all 6 checks passed"), "ok: all 6 checks passed");
    }
}
