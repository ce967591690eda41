//! Rendering of `ctdiag services` reports: one row per Service port; the
//! JSON is the list of Service ports, the findings go to stderr; no metrics.

use std::fmt::Write as _;

use comfy_table::Cell;

use crate::findings::Severity;
use crate::render::table::{findings, new_table, num};
use crate::render::terminal::escape;
use crate::render::{json, warn, Context, Render};
use crate::service::report::ServicesReport;
use crate::service::Service;

fn name(service: &Service) -> String {
    if service.name.is_empty() {
        "-".into()
    } else {
        format!("{}/{}", service.namespace, service.name)
    }
}

fn endpoints(service: &Service) -> String {
    if service.endpoints.is_empty() {
        "none (REJECT)".into()
    } else {
        service.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

/// The report for people: the Services, where they came from, findings;
/// with `-v` the skipped rules and notes.
fn table(ctx: &Context, report: &ServicesReport) -> String {
    let mut out = String::new();
    if !ctx.quiet {
        let modes: Vec<String> =
            report.per_mode.iter().map(|(m, n)| format!("{} {n}", m.as_str())).collect();
        let _ = writeln!(
            out,
            "{} Service port(s) from {}{}",
            report.services.len(),
            report.source,
            if modes.is_empty() { String::new() } else { format!(" ({})", modes.join(", ")) }
        );
        if let Some(dns) = &report.kube_dns_from {
            let _ = writeln!(out, "IPVS: kube-dns is {dns}");
        }
        let mut table = new_table(
            ctx,
            &["service", "port name", "proto", "cluster IPs", "port", "endpoints", "mode"],
        );
        for s in &report.services {
            table.add_row(vec![
                Cell::new(name(s)),
                Cell::new(if s.port_name.is_empty() { "-" } else { &s.port_name }),
                Cell::new(s.protocol.as_str()),
                Cell::new(
                    s.cluster_ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                ),
                num(s.port),
                Cell::new(endpoints(s)),
                Cell::new(s.proxy_mode.as_str()),
            ]);
        }
        let _ = writeln!(out, "{table}");
        if let Some(api) = &report.api {
            let _ = writeln!(
                out,
                "API: {} EndpointSlice(s) from {}; {} Service port(s) compared; {} object(s) skipped",
                api.slices,
                api.from,
                api.compared,
                api.skipped.len()
            );
        }
        if ctx.verbose > 0 {
            for note in &report.notes {
                let _ = writeln!(out, "note: {note}");
            }
            for line in &report.skipped {
                let _ = writeln!(out, "skipped: {line}");
            }
            if let Some(api) = &report.api {
                for line in &api.skipped {
                    let _ = writeln!(out, "skipped (API): {line}");
                }
            }
        }
        out.push('\n');
    }
    out.push_str(&findings(ctx, &report.findings));
    out
}

/// With `-o json` (a bare list on stdout): the findings of warning or
/// worse, and with `-v` the notes and skipped rules, on stderr.
fn findings_to_stderr(ctx: &Context, report: &ServicesReport) {
    if ctx.quiet {
        return;
    }
    for f in report.findings.iter().filter(|f| f.severity >= Severity::Warning || ctx.verbose > 0) {
        warn(&format!(
            "ctdiag: {} {} [{}]: {}",
            f.severity.as_str(),
            escape(&f.summary),
            f.code,
            escape(&f.evidence)
        ));
    }
    if ctx.verbose > 0 {
        for note in &report.notes {
            warn(&format!("ctdiag: note: {}", escape(note)));
        }
        for line in &report.skipped {
            warn(&format!("ctdiag: skipped: {}", escape(line)));
        }
        if let Some(api) = &report.api {
            for line in &api.skipped {
                warn(&format!("ctdiag: skipped (API): {}", escape(line)));
            }
        }
    }
}

impl Render for ServicesReport {
    const COMMAND: &'static str = "services";

    fn table(&self, ctx: &Context) -> String {
        table(ctx, self)
    }

    /// The list of Service ports: that list is the JSON contract. People
    /// reading stderr still learn what is wrong (the findings go there).
    fn json(&self, ctx: &Context) -> crate::error::Result<String> {
        findings_to_stderr(ctx, self);
        json::document(&self.services)
    }
}
