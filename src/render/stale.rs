//! Rendering of `ctdiag stale` reports: the table, the list shown before a
//! flush asks, and Prometheus text.

use std::fmt::Write as _;

use comfy_table::Cell;

use crate::render::prometheus::{self, Family};
use crate::render::table::{findings, new_table, num, verbose_notes};
use crate::render::{Context, Render};
use crate::stale::{EntryReport, ServiceReport, StaleReport, MAX_LISTED};

/// Rows listed per Service in the table unless `-v`.
const ROWS_SHOWN: usize = 50;
/// Entries shown per Service before a flush asks, unless `-v` (the count
/// asked about is always the whole number).
const CANDIDATES_SHOWN: usize = 200;

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn client_text(entry: &EntryReport) -> String {
    match &entry.client {
        Some(client) => match &client.hostname {
            Some(host) => format!("{} ({host})", client.netns),
            None => client.netns.clone(),
        },
        None => "-".to_string(),
    }
}

/// The entries of one Service as a table (at most `limit` rows); `total`:
/// how many there are, of which the report kept `entries` (it keeps at
/// most [`MAX_LISTED`] of a kind).
fn entries_table(ctx: &Context, entries: &[&EntryReport], limit: usize, total: u64) -> String {
    let mut table = new_table(
        ctx,
        &["client", "pod", "reply from", "state", "expires s", "zone", "mark", "id", "verdict"],
    );
    // Addresses must not wrap mid-way: a wide table beats a broken one.
    table.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    for entry in entries.iter().take(limit) {
        let verdict = entry.reason.unwrap_or("live");
        table.add_row(vec![
            Cell::new(&entry.src),
            Cell::new(client_text(entry)),
            Cell::new(&entry.reply_src),
            Cell::new(entry.state),
            num(or_dash(entry.expires_s)),
            num(entry.zone),
            num(or_dash(entry.mark)),
            num(or_dash(entry.id)),
            Cell::new(verdict),
        ]);
    }
    let mut text = format!("{table}\n");
    let shown = entries.len().min(limit) as u64;
    let not_kept = total.saturating_sub(entries.len() as u64);
    if not_kept > 0 {
        let _ = writeln!(
            text,
            "... and {} more not shown: {not_kept} were counted but not kept (at most {MAX_LISTED} stale and {MAX_LISTED} live entries are kept per Service); `--all-entries -o json` lists every entry",
            total - shown
        );
    } else if entries.len() > limit {
        let _ = writeln!(
            text,
            "... and {} more (-v lists every one; -o json too)",
            entries.len() - limit
        );
    }
    text
}

fn service_heading(service: &ServiceReport) -> String {
    format!(
        "{} {}:{} udp ({} rules), endpoints: {}",
        service.service,
        service.cluster_ip,
        service.port,
        service.proxy_mode.as_str(),
        if service.endpoints.is_empty() {
            "none".to_string()
        } else {
            service.endpoints.join(", ")
        }
    )
}

/// The report for people: per Service its entries, a summary per DNAT
/// target and the flush outcome, then the findings.
fn table(ctx: &Context, report: &StaleReport) -> String {
    let mut out = String::new();
    if !ctx.quiet {
        let place = report.netns.as_deref().unwrap_or("the current namespace");
        let _ = writeln!(
            out,
            "conntrack of {place}: {} entries in the table; Services from {}; kernel-side filter: {}",
            or_dash(report.table_entries),
            report.source,
            if report.kernel_filter { "yes" } else { "no (filtered by ctdiag)" },
        );
        for service in &report.services {
            let _ = writeln!(out, "\n{}", service_heading(service));
            let _ = writeln!(
                out,
                "scanned {} entries: {} stale, {} live",
                service.scanned, service.stale_count, service.live_count
            );
            let listed: Vec<&EntryReport> = service.entries.iter().collect();
            if !listed.is_empty() {
                let limit = if ctx.verbose > 0 { usize::MAX } else { ROWS_SHOWN };
                let total = listed.len() as u64 + service.entries_not_listed;
                out.push_str(&entries_table(ctx, &listed, limit, total));
            }
            let mut targets =
                new_table(ctx, &["DNAT target", "in the rules", "entries", "stale", "reachable"]);
            for target in &service.by_target {
                targets.add_row(vec![
                    Cell::new(&target.target),
                    Cell::new(if target.in_rules { "yes" } else { "NO" }),
                    num(target.entries),
                    num(target.stale),
                    Cell::new(match (&target.unreachable, target.in_rules) {
                        (Some(why), _) => format!("NO: {why}"),
                        (None, true) => "yes".to_string(),
                        (None, false) => "-".to_string(),
                    }),
                ]);
            }
            if !service.by_target.is_empty() {
                let _ = writeln!(out, "{targets}");
            }
            if let Some(flush) = &service.flush {
                let _ = writeln!(
                    out,
                    "flush: {}deleted {}, already gone {}, failed {}{}; stale after the flush: {}",
                    if flush.declined { "declined at the prompt; " } else { "" },
                    flush.deleted,
                    flush.already_gone,
                    flush.failed,
                    if flush.spared > 0 {
                        format!(
                            ", spared {} (their target is an endpoint in a later read of the rules)",
                            flush.spared
                        )
                    } else {
                        String::new()
                    },
                    flush.remaining.map_or_else(
                        || "unknown (the scan after it failed)".to_string(),
                        |n| n.to_string()
                    )
                );
            }
        }
        verbose_notes(ctx, &report.notes, &mut out);
        out.push('\n');
    }
    out.push_str(&findings(ctx, &report.findings));
    out
}

/// What a flush would delete, shown before it asks, ready for the
/// terminal ([`crate::render::terminal::for_terminal`]).
pub fn candidates(ctx: &Context, report: &StaleReport) -> String {
    let mut out = String::new();
    for service in &report.services {
        let stale: Vec<&EntryReport> = service.entries.iter().filter(|e| e.stale).collect();
        if stale.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}", service_heading(service));
        let limit = if ctx.verbose > 0 { usize::MAX } else { CANDIDATES_SHOWN };
        out.push_str(&entries_table(ctx, &stale, limit, service.stale_count));
    }
    // Why here: this goes to stderr right before the flush prompt, not
    // through `emit`; a pod's hostname must not be able to spoof it.
    crate::render::terminal::for_terminal(&out).into_owned()
}

/// How a per-Service gauge is read from its report.
type Metric = fn(&ServiceReport) -> u64;

/// Prometheus text exposition: per Service the stale and live entry counts,
/// the entries scanned, and the findings.
fn prometheus(report: &StaleReport) -> String {
    let metrics: [(&str, &str, Metric); 3] = [
        (
            "ctdiag_stale_conntrack_entries",
            "UDP conntrack entries of a Service whose DNAT target is not a current endpoint (or never translated).",
            |s| s.stale_count,
        ),
        (
            "ctdiag_live_conntrack_entries",
            "UDP conntrack entries of a Service that are not stale.",
            |s| s.live_count,
        ),
        (
            "ctdiag_stale_scanned_entries",
            "Conntrack entries the kernel returned to the scan of a Service.",
            |s| s.scanned,
        ),
    ];
    let mut families = Vec::new();
    for (name, help, value) in metrics {
        let mut family = Family::gauge(name, help);
        for service in &report.services {
            let (ip, port) = (service.cluster_ip.to_string(), service.port.to_string());
            family.sample(
                &[("service", &service.service), ("cluster_ip", &ip), ("port", &port)],
                value(service) as f64,
            );
        }
        families.push(family);
    }
    let mut filter = Family::gauge(
        "ctdiag_stale_kernel_filter",
        "Whether the kernel filtered the conntrack dump (CTA_FILTER).",
    );
    filter.sample(&[], f64::from(u8::from(report.kernel_filter)));
    families.push(filter);
    if let Some(flush) = &report.flush {
        let mut flushed = Family::gauge(
            "ctdiag_stale_flushed_entries",
            "Stale entries deleted by this run's flush.",
        );
        flushed.sample(&[], flush.deleted as f64);
        families.push(flushed);
    }
    families.push(prometheus::findings("stale", &report.findings));
    prometheus::write_all(&families.iter().collect::<Vec<_>>())
}

impl Render for StaleReport {
    const COMMAND: &'static str = "stale";
    const METRICS: bool = true;

    fn table(&self, ctx: &Context) -> String {
        table(ctx, self)
    }

    fn prometheus(&self) -> Option<String> {
        Some(prometheus(self))
    }
}
