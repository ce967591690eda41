//! `ctdiag stale --all-entries -o json` with bounded memory: every entry is
//! listed, but no more than [`super::MAX_LISTED`] stale and [`super::MAX_LISTED`] live
//! entries per Service are held at once.
//!
//! Up to the cap the report is built and printed as always (sorted, the
//! same bytes). The first entry beyond the cap opens the JSON document on
//! the output instead: the Services before it in full, then this Service's
//! fields known before its scan, its `entries` array with the entries kept
//! so far (sorted among themselves), and from then on each entry as the
//! dump delivers it. The fields that need the whole scan (`scanned`, the
//! counts, `by_target`, the findings) follow the array, so in this form
//! `scanned` and `kernel_filter` come after `entries`; the document is the
//! same JSON otherwise. Services are scanned one at a time (one dump each)
//! so that each one's entries can be written inside its own object.
//!
//! A dump that has to start over after entries were written cannot take
//! them back: the run then ends with an error (exit 2) and the output is
//! not valid JSON, so no reader can take it for a complete list.

use std::io::Write;
use std::net::IpAddr;

use serde::Serialize;

use super::classify::{Target, Verdict};
use super::clients::{self, ClientIndex};
use super::reach;
use super::report::Context;
use super::scan::{merge, open_session, plan, scan_with, Keep, Scan, Tally};
use super::{EntryReport, FlushReport, ServiceReport, StaleConfig, StaleReport, TargetSummary};
use crate::conntrack::entry::Entry;
use crate::conntrack::ConntrackError;
use crate::error::{Error, Result};
use crate::findings::Finding;
use crate::netns::{run_in, Netns};
use crate::service::select::Selector;
use crate::service::ProxyMode;
use reach::Unreachable;

/// What [`run`] did with the report.
#[derive(Debug)]
pub enum Listing {
    /// The report was written to the output as the scan went (more entries
    /// than [`super::MAX_LISTED`] of a kind for some Service); its `entries` hold
    /// only what was kept.
    Written(StaleReport),
    /// Everything fitted: nothing was written, render the report as usual.
    Whole(StaleReport),
}

/// The scan of `ctdiag stale --all-entries` (no flush) for JSON output on
/// `out`. See the module's documentation. `config.flush` must be false.
pub fn run(config: &StaleConfig, out: &mut dyn Write) -> Result<Listing> {
    if config.flush {
        return Err(Error::Runtime("a flush is never streamed (it asks first)".into()));
    }
    let netns = config.netns.as_deref().map(Netns::open).transpose()?;
    let mut session = open_session(config, netns.as_ref())?;
    if session.plans.iter().any(|p| p.targets.len() > 1) {
        // Many Services share one dump, whose entries cannot be written
        // inside one Service's object as they come: the usual scan first,
        // and one dump per Service only if some list does not fit.
        let report = super::run(config, &mut |_| false)?;
        if report.services.iter().all(|s| !s.entries_truncated) {
            return Ok(Listing::Whole(report));
        }
    }
    // Each entry's client is named as it is written, so every local
    // address is indexed first.
    let peers = run_in(netns.as_ref(), clients::linked_namespaces).unwrap_or_default();
    let clients = ClientIndex::build_all(&peers);
    let (unreachable, reach_notes) = reach::check(&session.endpoint_addresses(), netns.as_ref());
    let mut base_notes = std::mem::take(&mut session.notes);
    base_notes.extend(reach_notes);
    let mut notes = base_notes.clone();
    notes.extend(clients.notes.iter().cloned());
    let context = Context {
        config,
        netns: config.netns.clone(),
        source: session.source.clone(),
        table_entries: session.table_entries,
        clients: &clients,
        unreachable: &unreachable,
        notes,
    };
    let wrapped = matches!(config.selector, Selector::All) || session.targets.len() != 1;
    let mut writer = Writer::new(out, wrapped);
    let mut scans: Vec<Scan> = Vec::new();
    for index in 0..session.targets.len() {
        let one = &session.targets[index..=index];
        let plans = plan(one);
        let result = {
            let targets = &session.targets;
            let done = &scans;
            let context = &context;
            let writer = &mut writer;
            let mut hand = |_: usize, tally: &Tally, entry: &Entry, verdict: Verdict| {
                writer.row(context, targets, done, index, tally, entry, verdict)
            };
            scan_with(&mut session.socket, one, &plans, Keep::listing(true), Some(&mut hand))
        };
        let scan = match result {
            Ok(scan) => scan,
            Err(error) => return Err(writer.failure(error)),
        };
        writer.scanned(&context, &session.targets[index], index, &scan)?;
        scans.push(scan);
    }
    let scan = combine(scans);
    if writer.opened {
        let report = context.report(&session.targets, &scan, None);
        writer.finish(&report)?;
        return Ok(Listing::Written(report));
    }
    // Everything fitted: the report `super::run` makes, clients named from
    // the entries listed only (the same notes too).
    let listed = super::listed_addresses(&scan);
    let clients = if listed.is_empty() {
        ClientIndex::default()
    } else {
        ClientIndex::build(&listed, &peers)
    };
    base_notes.extend(clients.notes.iter().cloned());
    let context = Context { clients: &clients, notes: base_notes, ..context };
    Ok(Listing::Whole(context.report(&session.targets, &scan, None)))
}

/// The scans of the targets, one each, as one scan of them all.
fn combine(scans: Vec<Scan>) -> Scan {
    let mut all = Scan { kernel_filter: true, ..Scan::default() };
    for scan in scans {
        all.kernel_filter &= scan.kernel_filter;
        all.filter_notes.extend(scan.filter_notes);
        all.undecodable += scan.undecodable;
        for note in scan.undecodable_notes {
            if all.undecodable_notes.len() < super::MAX_NOTES {
                all.undecodable_notes.push(note);
            }
        }
        all.restarts += scan.restarts;
        for tally in scan.tallies {
            let mut into = Tally::default();
            merge(&mut into, tally);
            all.tallies.push(into);
        }
    }
    all
}

/// A Service's fields known before its scan, in the report's order.
#[derive(Serialize)]
struct Head<'a> {
    service: &'a str,
    cluster_ip: IpAddr,
    port: u16,
    proxy_mode: ProxyMode,
    endpoints: &'a [String],
}

/// A Service's fields after `entries`, in the report's order (with
/// `scanned` and `kernel_filter`, which come before `entries` otherwise).
#[derive(Serialize)]
struct Tail<'a> {
    scanned: u64,
    kernel_filter: bool,
    stale_count: u64,
    live_count: u64,
    by_target: &'a [TargetSummary],
    unreachable_endpoints: &'a [Unreachable],
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    flush: &'a Option<FlushReport>,
}

impl<'a> Tail<'a> {
    fn of(service: &'a ServiceReport) -> Self {
        Tail {
            scanned: service.scanned,
            kernel_filter: service.kernel_filter,
            stale_count: service.stale_count,
            live_count: service.live_count,
            by_target: &service.by_target,
            unreachable_endpoints: &service.unreachable_endpoints,
            findings: &service.findings,
            flush: &service.flush,
        }
    }
}

/// `value` pretty-printed as serde_json does, every line after the first
/// indented `depth` levels more.
fn pretty<T: Serialize>(value: &T, depth: usize) -> std::result::Result<String, serde_json::Error> {
    let text = serde_json::to_string_pretty(value)?;
    Ok(text.replace('\n', &format!("\n{}", indent(depth))))
}

/// The fields of a struct, pretty-printed at `depth` (>= 1): its lines
/// without the braces, no separator after the last.
fn fields<T: Serialize>(value: &T, depth: usize) -> std::result::Result<String, serde_json::Error> {
    let text = pretty(value, depth - 1)?;
    let close = format!("\n{}}}", indent(depth - 1));
    Ok(text
        .strip_prefix("{\n")
        .and_then(|t| t.strip_suffix(close.as_str()))
        .unwrap_or_default()
        .to_string())
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

/// Writes the document once it has to be written during the scan.
pub(super) struct Writer<'w> {
    out: &'w mut dyn Write,
    /// The `services` form.
    wrapped: bool,
    /// Whether the document has begun.
    pub(super) opened: bool,
    /// Service objects begun so far.
    services: usize,
    /// The Service whose entries are being written.
    open: Option<usize>,
    /// Whether the open `entries` array has an element.
    rows: bool,
    /// What stopped the writing.
    error: Option<Error>,
}

impl<'w> Writer<'w> {
    pub(super) fn new(out: &'w mut dyn Write, wrapped: bool) -> Self {
        Writer { out, wrapped, opened: false, services: 0, open: None, rows: false, error: None }
    }

    /// Depth of a Service object's fields.
    fn depth(&self) -> usize {
        if self.wrapped {
            3
        } else {
            1
        }
    }

    /// Writes `text`; a failure is kept for [`Writer::failure`] and stops
    /// the scan.
    fn write(&mut self, text: &str) -> std::result::Result<(), ConntrackError> {
        if self.error.is_some() {
            return Err(stopped());
        }
        match self.out.write_all(text.as_bytes()) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.error = Some(Error::Output(error));
                Err(stopped())
            }
        }
    }

    fn json<T: Serialize>(
        &mut self,
        render: impl FnOnce(&T) -> std::result::Result<String, serde_json::Error>,
        value: &T,
    ) -> std::result::Result<(), ConntrackError> {
        match render(value) {
            Ok(text) => self.write(&text),
            Err(error) => {
                self.error = Some(Error::Runtime(format!("cannot serialize report: {error}")));
                Err(stopped())
            }
        }
    }

    /// The error to report for a scan that stopped with `error`.
    pub(super) fn failure(&mut self, error: ConntrackError) -> Error {
        if let Some(mine) = self.error.take() {
            return mine;
        }
        match error {
            ConntrackError::DumpInconsistent { .. } if self.opened => Error::Runtime(format!(
                "the conntrack dump had to start over after entries were written out (the table changed during the dump); the list above is incomplete and not valid JSON: run again ({error})"
            )),
            other => Error::Conntrack(other),
        }
    }

    /// One entry beyond the cap of Service `index`: begins the document
    /// and the Service's object if need be, then writes it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn row(
        &mut self,
        context: &Context<'_>,
        targets: &[Target],
        done: &[Scan],
        index: usize,
        tally: &Tally,
        entry: &Entry,
        verdict: Verdict,
    ) -> std::result::Result<(), ConntrackError> {
        if self.open != Some(index) {
            if !self.opened {
                self.opened = true;
                self.write(if self.wrapped { "{\n  \"services\": [" } else { "{\n" })?;
                for (earlier, scan) in done.iter().enumerate() {
                    if let (Some(target), Some(tally)) =
                        (targets.get(earlier), scan.tallies.first())
                    {
                        let report =
                            context.service_report(target, tally, scan.kernel_filter, None);
                        self.whole_service(&report)?;
                    }
                }
            }
            let Some(target) = targets.get(index) else { return Ok(()) };
            let before = context.service_report(target, &Tally::default(), true, None);
            let depth = self.depth();
            let mut text = String::new();
            if self.wrapped {
                text.push_str(if self.services > 0 { ",\n" } else { "\n" });
                text.push_str(&indent(2));
                text.push_str("{\n");
            }
            self.services += 1;
            self.write(&text)?;
            let head = Head {
                service: &before.service,
                cluster_ip: before.cluster_ip,
                port: before.port,
                proxy_mode: before.proxy_mode,
                endpoints: &before.endpoints,
            };
            self.json(|h| fields(h, depth), &head)?;
            self.write(&format!(",\n{}\"entries\": [", indent(depth)))?;
            self.open = Some(index);
            self.rows = false;
            for kept in context.entry_reports(tally) {
                self.entry(&kept)?;
            }
        }
        let report = context.entry_report(entry, verdict);
        self.entry(&report)
    }

    fn entry(&mut self, entry: &EntryReport) -> std::result::Result<(), ConntrackError> {
        let depth = self.depth() + 1;
        let separator = if self.rows { ",\n" } else { "\n" };
        self.rows = true;
        self.write(&format!("{separator}{}", indent(depth)))?;
        self.json(|e| pretty(e, depth), entry)
    }

    /// A whole Service object in the `services` array.
    fn whole_service(&mut self, report: &ServiceReport) -> std::result::Result<(), ConntrackError> {
        self.write(if self.services > 0 { ",\n    " } else { "\n    " })?;
        self.services += 1;
        self.json(|r| pretty(r, 2), report)
    }

    /// Service `index` was scanned: closes its object if its entries were
    /// being written (in the `services` form; the one-Service form closes
    /// in [`Writer::finish`]), or writes it whole if the document has begun.
    pub(super) fn scanned(
        &mut self,
        context: &Context<'_>,
        target: &Target,
        index: usize,
        scan: &Scan,
    ) -> Result<()> {
        if !self.opened || !self.wrapped {
            return Ok(());
        }
        let Some(tally) = scan.tallies.first() else { return Ok(()) };
        let report = context.service_report(target, tally, scan.kernel_filter, None);
        let written = if self.open == Some(index) {
            self.open = None;
            self.close_entries(&report).and_then(|()| self.write(&format!("\n{}}}", indent(2))))
        } else {
            self.whole_service(&report)
        };
        written.map_err(|error| self.failure(error))
    }

    /// `]` of the open `entries` array and the Service's fields after it.
    fn close_entries(&mut self, report: &ServiceReport) -> std::result::Result<(), ConntrackError> {
        let depth = self.depth();
        self.write(&format!("\n{}],\n", indent(depth)))?;
        self.json(|t| fields(t, depth), &Tail::of(report))
    }

    /// The rest of the document, from the whole report.
    pub(super) fn finish(&mut self, report: &StaleReport) -> Result<()> {
        let written = if self.wrapped {
            #[derive(Serialize)]
            struct Rest<'a> {
                stale_count: u64,
                live_count: u64,
                kernel_filter: bool,
                findings: &'a [Finding],
                netns: &'a Option<String>,
                source: &'a str,
                table_entries: Option<u64>,
                notes: &'a [String],
            }
            let rest = Rest {
                stale_count: report.stale_count,
                live_count: report.live_count,
                kernel_filter: report.kernel_filter,
                findings: &report.findings,
                netns: &report.netns,
                source: &report.source,
                table_entries: report.table_entries,
                notes: &report.notes,
            };
            self.write("\n  ],\n").and_then(|()| self.json(|r| fields(r, 1), &rest))
        } else {
            #[derive(Serialize)]
            struct Rest<'a> {
                netns: &'a Option<String>,
                source: &'a str,
                table_entries: Option<u64>,
                notes: &'a [String],
            }
            let rest = Rest {
                netns: &report.netns,
                source: &report.source,
                table_entries: report.table_entries,
                notes: &report.notes,
            };
            match report.services.first() {
                Some(service) => self
                    .close_entries(service)
                    .and_then(|()| self.write(",\n"))
                    .and_then(|()| self.json(|r| fields(r, 1), &rest)),
                None => Ok(()),
            }
        };
        written
            .and_then(|()| self.write("\n}\n"))
            .and_then(|()| {
                self.out.flush().map_err(|error| {
                    self.error = Some(Error::Output(error));
                    stopped()
                })
            })
            .map_err(|error| self.failure(error))
    }
}

/// The error that stops a scan whose writing failed (the real error is the
/// writer's).
fn stopped() -> ConntrackError {
    ConntrackError::Unavailable("the output could not be written".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_the_lines_of_the_pretty_object() {
        #[derive(Serialize)]
        struct Two {
            a: u8,
            b: Vec<u8>,
        }
        let two = Two { a: 1, b: vec![2, 3] };
        assert_eq!(fields(&two, 1).unwrap(), "  \"a\": 1,\n  \"b\": [\n    2,\n    3\n  ]");
        assert_eq!(
            fields(&two, 3).unwrap(),
            "      \"a\": 1,\n      \"b\": [\n        2,\n        3\n      ]"
        );
        assert_eq!(
            pretty(&two, 1).unwrap(),
            "{\n    \"a\": 1,\n    \"b\": [\n      2,\n      3\n    ]\n  }"
        );
    }
}
