//! Rendering of `ctdiag compare` reports: the side-by-side table, and the
//! Prometheus text exposition.

use std::fmt::Write as _;

use comfy_table::Cell;

use crate::dns::compare::CompareReport;
use crate::render::prometheus::{self, Family};
use crate::render::table::{findings, new_table, num};
use crate::render::{Context, Render};

fn ms(value: Option<f64>) -> Cell {
    match value {
        Some(v) => num(format!("{v:.3}")),
        None => Cell::new("-"),
    }
}

fn counter(value: Option<Option<u64>>) -> Cell {
    match value {
        Some(Some(v)) => num(format!("+{v}")),
        _ => Cell::new("-"),
    }
}

/// How the queries that were not plainly answered ended, and the answers
/// that were errors: one line per target, only where there are any.
fn target_notes(report: &CompareReport, many_modes: bool) -> String {
    let mut out = String::new();
    for target in &report.targets {
        let o = &target.outcomes;
        let mut notes = Vec::new();
        for (n, what) in [
            (o.timed_out, "timed out"),
            (o.port_unreachable, "port unreachable"),
            (o.unreachable, "host/net unreachable"),
            (o.no_route, "no route"),
            (o.send_failed, "send failed"),
        ] {
            if n > 0 {
                notes.push(format!("{n} {what}"));
            }
        }
        let lost_a = target.lost_by_type.get("A").copied().unwrap_or(0);
        let lost_aaaa = target.lost_by_type.get("AAAA").copied().unwrap_or(0);
        if lost_a + lost_aaaa > 0 {
            notes.push(format!("lost A {lost_a}, AAAA {lost_aaaa}"));
        }
        let errors: Vec<String> = target
            .rcodes
            .iter()
            .filter(|(code, _)| code.as_str() != "NOERROR" && code.as_str() != "NXDOMAIN")
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        if !errors.is_empty() {
            notes.push(format!("answers {}", errors.join(", ")));
        }
        if !notes.is_empty() {
            let mode =
                if many_modes { format!(" ({})", target.mode.as_str()) } else { String::new() };
            let _ = writeln!(out, "{}{mode}: {}", target.address, notes.join("; "));
        }
    }
    out
}

/// The report for people: what was compared, one row per target (and
/// mode), the resolver options measured, the findings.
fn table(ctx: &Context, report: &CompareReport) -> String {
    let mut out = String::new();
    if !ctx.quiet {
        let _ = writeln!(
            out,
            "compare {} ClusterIP {} ({}) with its endpoints {}, {}",
            report.service,
            report.cluster_ip,
            report.service_from,
            if report.endpoints.is_empty() {
                "(none)".to_string()
            } else {
                report.endpoints.join(", ")
            },
            super::probe::from_and_names(&report.header),
        );
        let _ = writeln!(
            out,
            "{} rounds, every target in turn; timeout {} ms; slow: {} ms or longer ({})",
            report.rounds, report.timeout_ms, report.slow_ms, report.slow_from
        );
        let many_modes = report.modes.len() > 1;
        let slow_header = format!("≥ {} ms", report.slow_ms);
        let mut header = vec![];
        if many_modes {
            header.push("mode");
        }
        header.extend([
            "target",
            "role",
            "lookups",
            "lost %",
            "one lost",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            slow_header.as_str(),
            "insert_failed",
            "drop",
            "clash_resolve",
        ]);
        let mut t = new_table(ctx, &header);
        // Numbers must not be wrapped mid-value: a wide table beats a broken one.
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        for target in &report.targets {
            let mut row = Vec::new();
            if many_modes {
                row.push(Cell::new(target.mode.as_str()));
            }
            let delta = target.conntrack_delta.as_ref();
            row.extend([
                Cell::new(&target.address),
                Cell::new(target.role.as_str()),
                num(target.lookups),
                num(format!("{:.1}", target.lost_percent)),
                num(target.one_lost_lookups),
                ms(target.latency_ms.p50),
                ms(target.latency_ms.p90),
                ms(target.latency_ms.p99),
                ms(target.latency_ms.max),
                num(target.slow_lookups),
                counter(delta.map(|d| d.insert_failed)),
                counter(delta.map(|d| d.drop)),
                counter(delta.map(|d| d.clash_resolve)),
            ]);
            t.add_row(row);
        }
        let _ = writeln!(out, "{t}");
        out.push_str(&target_notes(report, many_modes));
        let _ = writeln!(out, "conntrack: {}", report.conntrack_note);
        if many_modes {
            let mut t =
                new_table(ctx, &["mode", "resolv.conf", "lost via ClusterIP", "lost at endpoints"]);
            for w in &report.workarounds {
                t.add_row(vec![
                    Cell::new(w.mode.as_str()),
                    Cell::new(w.resolv_conf_option.unwrap_or("(default)")),
                    num(format!("{} of {}", w.cluster_ip_lost, w.cluster_ip_queries)),
                    num(w.endpoints_lost),
                ]);
            }
            let _ = writeln!(out, "{t}");
        }
        let _ = writeln!(out, "verdict: {}\n", report.verdict);
    }
    out.push_str(&findings(ctx, &report.findings));
    out
}

/// The Prometheus text exposition (for node_exporter's textfile
/// collector): one sample per target and mode, latencies in seconds, the
/// findings counted by code. Gauges, because each run replaces the last
/// one's figures; latency percentiles are a `percentile` label, not a
/// summary's `quantile` (the histogram keeps no exact sum to go with it).
fn prometheus(report: &CompareReport) -> String {
    let mut lookups = Family::gauge(
        "ctdiag_compare_lookups",
        "Lookups (an A and an AAAA query each) made to the target in the last ctdiag compare run.",
    );
    let mut sent = Family::gauge(
        "ctdiag_compare_queries_sent",
        "Queries sent to the target in the last ctdiag compare run.",
    );
    let mut lost = Family::gauge("ctdiag_compare_queries_lost", "Queries to the target that got no answer (timeout, ICMP error, send error) in the last ctdiag compare run.");
    let mut outcomes = Family::gauge("ctdiag_compare_query_outcomes", "Queries to the target in the last ctdiag compare run by how they ended (answered, timed out, ICMP port or host/net unreachable, no route, send failed).");
    let mut lost_ratio = Family::gauge("ctdiag_compare_queries_lost_ratio", "Share (0 to 1) of the queries to the target that were lost in the last ctdiag compare run.");
    let mut one_lost = Family::gauge("ctdiag_compare_one_lost_lookups", "Lookups that lost exactly one of their A/AAAA pair (the conntrack race signature) in the last ctdiag compare run.");
    let mut slow = Family::gauge("ctdiag_compare_slow_lookups", "Fully answered lookups that took the slow threshold or longer in the last ctdiag compare run.");
    let mut latency = Family::gauge("ctdiag_compare_lookup_latency_seconds", "Lookup latency (first query sent to last answer) of the fully answered lookups, by percentile (100 = the slowest), in the last ctdiag compare run.");
    let mut delta = Family::gauge("ctdiag_compare_conntrack_delta", "How much a conntrack counter of the stats namespace rose during the target's batches (namespace-wide) in the last ctdiag compare run.");
    for t in &report.targets {
        let labels = [
            ("service", report.service.as_str()),
            ("target", t.address.as_str()),
            ("role", t.role.as_str()),
            ("mode", t.mode.as_str()),
        ];
        lookups.sample(&labels, t.lookups as f64);
        sent.sample(&labels, t.queries_sent as f64);
        lost.sample(&labels, t.lost as f64);
        super::probe::outcome_samples(&mut outcomes, &labels, &t.outcomes);
        lost_ratio.sample(&labels, t.lost_percent / 100.0);
        one_lost.sample(&labels, t.one_lost_lookups as f64);
        slow.sample(&labels, t.slow_lookups as f64);
        prometheus::latency_percentiles(&mut latency, &labels, &t.latency_ms);
        if let Some(d) = &t.conntrack_delta {
            prometheus::conntrack_delta(&mut delta, &labels, d);
        }
    }
    let mut run =
        Family::gauge("ctdiag_compare_run_seconds", "Wall time of the last ctdiag compare run.");
    run.sample(&[("service", report.service.as_str())], report.duration_s);
    let service = report.service.as_str();
    let finding = prometheus::counted(
        "ctdiag_compare_findings",
        "Findings of the last ctdiag compare run by code and severity (how many; one per endpoint for endpoint findings).",
        report.findings.iter().map(|f| {
            vec![("service", service), ("code", f.code.as_str()), ("severity", f.severity.as_str())]
        }),
    );
    let mut out = String::new();
    for family in [
        &lookups,
        &sent,
        &lost,
        &outcomes,
        &lost_ratio,
        &one_lost,
        &slow,
        &latency,
        &delta,
        &run,
        &finding,
    ] {
        family.write(&mut out);
    }
    out
}

impl Render for CompareReport {
    const COMMAND: &'static str = "compare";
    const METRICS: bool = true;

    fn table(&self, ctx: &Context) -> String {
        table(ctx, self)
    }

    fn prometheus(&self) -> Option<String> {
        Some(prometheus(self))
    }
}
