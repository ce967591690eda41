//! Rendering of `ctdiag watch` reports: the live view (totals, the
//! endpoints and pods with the most unanswered queries, latency
//! percentiles), redrawn each interval on a terminal; JSON Lines.

use std::fmt::Write as _;

use crate::render::table::{new_table, num};
use crate::render::terminal::escape;
use crate::render::{Context, Render, RenderLine};
use crate::watch::model::{ReportKind, WatchReport};

/// Rows of the endpoint and pod lists in the live view.
const TOP_ROWS: usize = 10;

/// The view of one report: totals, causes, endpoints, clients.
pub fn view(ctx: &Context, report: &WatchReport) -> String {
    let mut out = String::new();
    let what = match report.kind {
        ReportKind::Interval => "interval ending",
        ReportKind::Summary => "summary after",
    };
    let _ = writeln!(
        out,
        "{what} {:.1} s: {} queries, {} answered, {} unanswered{}{}",
        report.elapsed_s,
        report.queries,
        report.answered,
        report.unanswered,
        if report.capture_drops > 0 {
            format!(", {} packets dropped by the capture (incomplete)", report.capture_drops)
        } else {
            String::new()
        },
        if report.pending > 0 {
            format!(", {} still waiting at the end (not counted)", report.pending)
        } else {
            String::new()
        },
    );
    let causes: Vec<String> = report
        .unanswered_by_cause
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(cause, n)| format!("{} {n}", cause.as_str()))
        .collect();
    if !causes.is_empty() {
        let _ = writeln!(out, "unanswered by cause: {}", causes.join(", "));
    }
    if !report.rcodes.is_empty() {
        let rcodes: Vec<String> = report.rcodes.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(out, "answers: {}", rcodes.join(", "));
    }
    if !report.by_endpoint.is_empty() {
        let mut t = new_table(
            ctx,
            &[
                "endpoint",
                "queries",
                "answered",
                "unanswered",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
            ],
        );
        for e in report.by_endpoint.iter().take(TOP_ROWS) {
            let l = e.latency_ms;
            // An endpoint that answered nothing has no latency: a dash,
            // not a 0.0 that reads as "fast".
            let ms = |v: f64| if e.answered == 0 { "-".to_string() } else { format!("{v:.1}") };
            t.add_row(vec![
                num(e.endpoint),
                num(e.queries),
                num(e.answered),
                num(e.unanswered),
                num(ms(l.p50)),
                num(ms(l.p90)),
                num(ms(l.p99)),
                num(ms(l.max)),
            ]);
        }
        let _ = writeln!(out, "{t}");
    }
    if !report.by_client.is_empty() && !ctx.quiet {
        let mut t = new_table(ctx, &["client", "pod", "namespace", "queries", "unanswered"]);
        for c in report.by_client.iter().take(TOP_ROWS) {
            let (pod, netns) = match &c.pod {
                // Pod text is hostile: escaped before it reaches a terminal.
                Some(p) if !p.hostname.is_empty() => {
                    (escape(&p.hostname).into_owned(), escape(&p.netns).into_owned())
                }
                Some(p) => ("-".into(), escape(&p.netns).into_owned()),
                None => ("-".into(), "-".into()),
            };
            t.add_row(vec![num(c.client), num(pod), num(netns), num(c.queries), num(c.unanswered)]);
        }
        let _ = writeln!(out, "{t}");
        if report.by_client.len() > TOP_ROWS {
            let _ = writeln!(
                out,
                "({} more clients; -o json lists all)",
                report.by_client.len() - TOP_ROWS
            );
        }
    }
    out
}

impl Render for WatchReport {
    const COMMAND: &'static str = "watch";
    const METRICS: bool = true;

    fn table(&self, ctx: &Context) -> String {
        view(ctx, self)
    }
}

impl RenderLine for WatchReport {
    fn row(&self, ctx: &Context, _with_header: bool) -> String {
        view(ctx, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::OutputFormat;
    use crate::watch::model::{Cause, ClientStats, PodName};

    fn report() -> WatchReport {
        WatchReport {
            kind: ReportKind::Summary,
            elapsed_s: 2.0,
            queries: 3,
            answered: 2,
            unanswered: 1,
            unanswered_by_cause: Cause::ALL
                .iter()
                .map(|c| (*c, u64::from(*c == Cause::StaleEntry)))
                .collect(),
            by_endpoint: vec![],
            by_client: vec![ClientStats {
                client: "198.18.1.2".parse().unwrap(),
                pod: Some(PodName {
                    netns: "cte-client".into(),
                    hostname: "evil\u{1b}[2Jpod".into(),
                }),
                queries: 3,
                unanswered: 1,
            }],
            rcodes: [("NOERROR".to_string(), 2)].into(),
            capture_drops: 0,
            incomplete: false,
            pending: 0,
        }
    }

    #[test]
    fn pod_names_are_escaped_and_causes_named() {
        let ctx = Context { format: OutputFormat::Table, color: false, quiet: false, verbose: 0 };
        let text = view(&ctx, &report());
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("stale-entry 1"), "{text}");
        assert!(text.contains("3 queries, 2 answered, 1 unanswered"), "{text}");
    }
}
