//! Rendering of `ctdiag probe` reports (table) and its progress bar.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use comfy_table::Cell;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::dns::engine::LookupHeader;
use crate::dns::probe::ProbeReport;
use crate::render::prometheus::{self, Family};
use crate::render::table::{findings, new_table, num};
use crate::render::OutputFormat;
use crate::render::{Context, Render};

/// Runs `work` with a lookup progress bar on stderr when the output is a
/// table on a terminal and not `-q` (never into JSON or Prometheus text),
/// and clears the bar afterwards, whatever `work` returned. `work` gets the
/// callback to report finished lookups with.
pub fn with_progress<T>(
    ctx: &Context,
    count: Option<u64>,
    duration: Option<Duration>,
    work: impl FnOnce(&(dyn Fn(u64) + Sync)) -> T,
) -> T {
    let show = std::io::stderr().is_terminal() && !ctx.quiet && ctx.format == OutputFormat::Table;
    let bar = show.then(|| progress_bar(count, duration));
    let progress = |done: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let outcome = work(&progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    outcome
}

/// A progress bar on stderr: lookups done of `count`, or a spinner with the
/// number done for a `--duration` run.
fn progress_bar(count: Option<u64>, duration: Option<Duration>) -> ProgressBar {
    let bar = match count {
        Some(n) => {
            let bar = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "probing {bar:30} {pos}/{len} lookups ({per_sec}, {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let total =
                duration.map(|d| format!(" of {:.0} s", d.as_secs_f64())).unwrap_or_default();
            if let Ok(style) = ProgressStyle::with_template(&format!(
                "{{spinner}} probing: {{pos}} lookups, {{elapsed}}{total}"
            )) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }
    };
    bar
}

fn ms(value: Option<f64>) -> Cell {
    match value {
        Some(v) => num(format!("{v:.3}")),
        None => Cell::new("-"),
    }
}

/// The end of probe's and compare's opening line: where the lookups ran
/// and the names they asked for.
pub(super) fn from_and_names(header: &LookupHeader) -> String {
    format!(
        "from {}; names: {}",
        header.netns.as_deref().unwrap_or("the current namespace"),
        header.names.join(", ")
    )
}

/// The report for people: what was probed, the counts, the latency, the
/// conntrack evidence, the findings.
fn table(ctx: &Context, report: &ProbeReport) -> String {
    let mut out = String::new();
    if !ctx.quiet {
        let _ = writeln!(
            out,
            "probe {} ({}) mode {} {}",
            report.server,
            report.server_from,
            report.mode.as_str(),
            from_and_names(&report.header),
        );
        if let Some(endpoints) = &report.cluster_endpoints {
            let _ = writeln!(
                out,
                "endpoints in the rules: {}",
                if endpoints.is_empty() { "none".to_string() } else { endpoints.join(", ") }
            );
        }
        let mut t = new_table(
            ctx,
            &[
                "lookups",
                "queries",
                "answered",
                "lost",
                "lost A",
                "lost AAAA",
                "one of pair lost",
                "both lost",
                "would wait timeout",
            ],
        );
        t.add_row(vec![
            num(report.lookups),
            num(report.queries_sent),
            num(report.answered),
            num(report.lost),
            num(report.lost_by_type.get("A").copied().unwrap_or(0)),
            num(report.lost_by_type.get("AAAA").copied().unwrap_or(0)),
            num(report.one_lost_lookups),
            num(report.both_lost_lookups),
            num(report.resolver_timeout_lookups),
        ]);
        let _ = writeln!(out, "{t}");
        let slow_header = format!("≥ {} ms", report.slow_ms);
        let mut t = new_table(
            ctx,
            &["latency ms", "p50", "p90", "p99", "max", &slow_header, "answered/s", "run s"],
        );
        t.add_row(vec![
            Cell::new("lookup"),
            ms(report.latency_ms.p50),
            ms(report.latency_ms.p90),
            ms(report.latency_ms.p99),
            ms(report.latency_ms.max),
            num(report.slow_lookups),
            num(format!("{:.1}", report.answered_per_s)),
            num(format!("{:.3}", report.duration_s)),
        ]);
        let _ = writeln!(out, "{t}");
        if ctx.verbose > 0 {
            let mut t = new_table(ctx, &["latency ≤ ms", "lookups"]);
            for bucket in &report.latency_histogram {
                let bound = bucket.le_ms.map_or("+inf".to_string(), |b| format!("{b}"));
                t.add_row(vec![num(bound), num(bucket.count)]);
            }
            let _ = writeln!(out, "{t}");
        }
        let rcodes: Vec<String> = report.rcodes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            out,
            "rcodes: {}   stray packets: {}{}",
            if rcodes.is_empty() { "-".to_string() } else { rcodes.join(", ") },
            report.stray.total(),
            if report.mode == crate::dns::engine::Mode::Musl {
                format!("   sent again: {}", report.retransmitted)
            } else {
                String::new()
            },
        );
        let o = &report.outcomes;
        let _ = writeln!(
            out,
            "outcomes: answered {}   timed out {}   port unreachable {}   host/net unreachable {}   no route {}   send failed {}",
            o.answered, o.timed_out, o.port_unreachable, o.unreachable, o.no_route, o.send_failed
        );
        if let Some(no_route) = &report.no_route {
            let _ = writeln!(out, "no route: {}; {}", no_route.errno, no_route.route_get);
        }
        match &report.conntrack_delta {
            Some(d) => {
                let show = |v: Option<u64>| v.map_or("n/a".to_string(), |v| format!("+{v}"));
                let _ = writeln!(
                    out,
                    "conntrack: insert_failed {}  drop {}  early_drop {}  clash_resolve {}  ({})",
                    show(d.insert_failed),
                    show(d.drop),
                    show(d.early_drop),
                    show(d.clash_resolve),
                    report.conntrack_note,
                );
            }
            None => {
                let _ = writeln!(out, "conntrack: {}", report.conntrack_note);
            }
        }
        let _ = writeln!(out, "verdict: {}\n", report.verdict);
    }
    out.push_str(&findings(ctx, &report.findings));
    out
}

/// One sample per outcome of the queries (`outcome` label: answered,
/// timed_out, port_unreachable, unreachable, no_route, send_failed), with
/// the caller's labels; zeros included, so that a rate is always defined.
pub(super) fn outcome_samples(
    family: &mut Family,
    labels: &[(&str, &str)],
    o: &crate::dns::engine::Outcomes,
) {
    for (name, n) in [
        ("answered", o.answered),
        ("timed_out", o.timed_out),
        ("port_unreachable", o.port_unreachable),
        ("unreachable", o.unreachable),
        ("no_route", o.no_route),
        ("send_failed", o.send_failed),
    ] {
        let mut with = labels.to_vec();
        with.push(("outcome", name));
        family.sample(&with, n as f64);
    }
}

/// Prometheus text exposition (for node_exporter's textfile collector): the
/// run's lookups, queries, losses, latency percentiles in seconds, the
/// conntrack counter deltas and the findings. Gauges: each run replaces
/// the last one's figures.
fn prometheus(report: &ProbeReport) -> String {
    let labels = [("server", report.server.as_str()), ("mode", report.mode.as_str())];
    let gauge = |name: &str, help: &str, value: u64| {
        let mut family = Family::gauge(name, help);
        family.sample(&labels, value as f64);
        family
    };
    let lookups = gauge(
        "ctdiag_probe_lookups",
        "Lookups (an A and an AAAA query each) made in the last ctdiag probe run.",
        report.lookups,
    );
    let sent = gauge(
        "ctdiag_probe_queries_sent",
        "Queries sent in the last ctdiag probe run.",
        report.queries_sent,
    );
    let answered = gauge(
        "ctdiag_probe_queries_answered",
        "Queries answered in the last ctdiag probe run.",
        report.answered,
    );
    let lost = gauge(
        "ctdiag_probe_queries_lost",
        "Queries without an answer (timeout, ICMP error, send error) in the last ctdiag probe run.",
        report.lost,
    );
    let mut outcomes = Family::gauge(
        "ctdiag_probe_query_outcomes",
        "Queries of the last ctdiag probe run by how they ended (answered, timed out, ICMP port or host/net unreachable, no route, send failed).",
    );
    outcome_samples(&mut outcomes, &labels, &report.outcomes);
    let one_lost = gauge(
        "ctdiag_probe_one_lost_lookups",
        "Lookups that lost exactly one of their A/AAAA pair (the conntrack race signature) in the last ctdiag probe run.",
        report.one_lost_lookups,
    );
    let mut latency = Family::gauge(
        "ctdiag_probe_lookup_latency_seconds",
        "Lookup latency (first query sent to last answer) of the fully answered lookups, by percentile (100 = the slowest), in the last ctdiag probe run.",
    );
    prometheus::latency_percentiles(&mut latency, &labels, &report.latency_ms);
    let mut delta = Family::gauge(
        "ctdiag_probe_conntrack_delta",
        "How much a conntrack counter of the stats namespace rose during the last ctdiag probe run (namespace-wide).",
    );
    if let Some(d) = &report.conntrack_delta {
        prometheus::conntrack_delta(&mut delta, &labels, d);
    }
    let mut run =
        Family::gauge("ctdiag_probe_run_seconds", "Wall time of the last ctdiag probe run.");
    run.sample(&labels, report.duration_s);
    let findings = prometheus::findings("probe", &report.findings);
    prometheus::write_all(&[
        &lookups, &sent, &answered, &lost, &outcomes, &one_lost, &latency, &delta, &run, &findings,
    ])
}

impl Render for ProbeReport {
    const COMMAND: &'static str = "probe";
    const METRICS: bool = true;

    fn table(&self, ctx: &Context) -> String {
        table(ctx, self)
    }

    fn prometheus(&self) -> Option<String> {
        Some(prometheus(self))
    }
}
