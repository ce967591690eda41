//! Rendering of `ctdiag stats` reports (table, Prometheus) and of its
//! `--watch` samples (rows, JSON Lines).

use std::fmt::Write as _;

use comfy_table::Cell;

use crate::conntrack::stats::report::{StatsReport, WatchSample};
use crate::conntrack::{Counters, CpuStats};
use crate::render::prometheus::{self, Family};
use crate::render::table::{findings, new_table, num, verbose_notes};
use crate::render::{Context, Render, RenderLine};

/// Counter names in attribute order, as the kernel sent them.
fn counter_names(cpus: &[CpuStats], total: &Counters) -> Vec<String> {
    let mut attrs: Vec<u16> = total.0.keys().copied().collect();
    for cpu in cpus {
        attrs.extend(cpu.counters.0.keys().copied());
    }
    attrs.sort_unstable();
    attrs.dedup();
    attrs.into_iter().map(|a| crate::conntrack::stats::counter_name(a).into_owned()).collect()
}

fn value_of(counters: &Counters, name: &str) -> Option<u64> {
    counters.named().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// The one-shot table: a row per CPU, a total row, the table fill, the
/// findings.
fn table(ctx: &Context, report: &StatsReport) -> String {
    let mut out = String::new();
    if !ctx.quiet {
        let names = counter_names(&report.cpus, &report.total);
        let mut header = vec!["cpu"];
        header.extend(names.iter().map(String::as_str));
        let mut t = new_table(ctx, &header);
        // Numbers must not be wrapped mid-name: a wide table beats a broken one.
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        for cpu in &report.cpus {
            let mut row = vec![num(cpu.cpu)];
            row.extend(names.iter().map(|n| cell_or_dash(value_of(&cpu.counters, n))));
            t.add_row(row);
        }
        let mut total_row = vec![Cell::new("total")];
        total_row.extend(names.iter().map(|n| cell_or_dash(value_of(&report.total, n))));
        t.add_row(total_row);
        let _ = writeln!(out, "{t}");
        let place = report.netns.as_deref().unwrap_or("current namespace");
        let _ = writeln!(
            out,
            "entries {} / max {} ({:.1}% used)   source: {}   namespace: {place}",
            report.entries,
            report.max_entries,
            report.used_percent,
            match report.source {
                crate::conntrack::Source::Netlink => "ctnetlink",
                crate::conntrack::Source::Procfs => "procfs",
            },
        );
        verbose_notes(ctx, &report.notes, &mut out);
        out.push('\n');
    }
    out.push_str(&findings(ctx, &report.findings));
    out
}

fn cell_or_dash(value: Option<u64>) -> Cell {
    match value {
        Some(v) => num(v),
        None => Cell::new("-"),
    }
}

/// Width of a `--watch` column.
const WATCH_COLUMN: usize = 14;

/// One `--watch` line (with the header line before the first): each
/// counter's change in the interval and its per-second rate.
fn watch_row(ctx: &Context, sample: &WatchSample, with_header: bool) -> String {
    let names = counter_names(&sample.cpus, &sample.delta);
    let mut out = String::new();
    if with_header {
        let _ = write!(out, "{:>4} {:>6} {:>9} {:>6}", "#", "secs", "entries", "used%");
        for name in &names {
            let _ = write!(out, " {name:>WATCH_COLUMN$}");
        }
        out.push_str("  findings\n");
    }
    let _ = write!(
        out,
        "{:>4} {:>6.2} {:>9} {:>6.1}",
        sample.interval, sample.seconds, sample.entries, sample.used_percent
    );
    for name in &names {
        let delta = value_of(&sample.delta, name).unwrap_or(0);
        let rate = sample.rate_per_s.get(name).copied().unwrap_or(0.0);
        let text = if delta == 0 { "0".to_string() } else { format!("+{delta} ({rate:.0}/s)") };
        let text = if ctx.color && delta > 0 && is_loss_counter(name) {
            crate::render::terminal::paint("31", &format!("{text:>WATCH_COLUMN$}"))
        } else {
            format!("{text:>WATCH_COLUMN$}")
        };
        let _ = write!(out, " {text}");
    }
    let codes: Vec<String> =
        sample.findings.iter().map(|f| format!("{}:{}", f.severity.as_str(), f.code)).collect();
    let _ = write!(out, "  {}", if codes.is_empty() { "-".to_string() } else { codes.join(",") });
    out
}

impl RenderLine for WatchSample {
    fn row(&self, ctx: &Context, with_header: bool) -> String {
        watch_row(ctx, self, with_header)
    }
}

fn is_loss_counter(name: &str) -> bool {
    matches!(name, "insert_failed" | "drop" | "early_drop" | "chaintoolong")
}

/// Prometheus text exposition of a one-shot report: each counter per CPU
/// (counters, since boot), the table fill, the findings.
fn prometheus(report: &StatsReport) -> String {
    let names = counter_names(&report.cpus, &report.total);
    let mut families = Vec::new();
    for name in &names {
        let mut family = Family::counter(
            &format!("ctdiag_conntrack_{}_total", sanitize(name)),
            &format!("conntrack per-CPU statistic `{name}` (as in conntrack -S), since boot."),
        );
        for cpu in &report.cpus {
            if let Some(v) = value_of(&cpu.counters, name) {
                family.sample(&[("cpu", &cpu.cpu.to_string())], v as f64);
            }
        }
        families.push(family);
    }
    let mut entries = Family::gauge("ctdiag_conntrack_entries", "Entries in the conntrack table.");
    entries.sample(&[], report.entries as f64);
    let mut max = Family::gauge(
        "ctdiag_conntrack_max_entries",
        "The conntrack table limit (nf_conntrack_max).",
    );
    max.sample(&[], report.max_entries as f64);
    families.extend([entries, max, prometheus::findings("stats", &report.findings)]);
    prometheus::write_all(&families.iter().collect::<Vec<_>>())
}

/// Metric names allow [a-zA-Z0-9_].
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

impl Render for StatsReport {
    const COMMAND: &'static str = "stats";
    const METRICS: bool = true;

    fn table(&self, ctx: &Context) -> String {
        table(ctx, self)
    }

    fn prometheus(&self) -> Option<String> {
        Some(prometheus(self))
    }
}
