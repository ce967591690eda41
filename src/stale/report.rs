//! The report: one [`ServiceReport`] per ClusterIP:port, built from a scan
//! (and a flush), in the one-Service or the `services` JSON form.

use std::net::IpAddr;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::classify::{Target, Verdict};
use super::clients::{Client, ClientIndex};
use super::findings;
use super::flush::FlushReport;
use super::reach::Unreachable;
use super::scan::{Scan, Tally};
use super::StaleConfig;
use crate::conntrack::entry::Entry;
use crate::findings::Finding;
use crate::service::select::Selector;
use crate::service::ProxyMode;

/// One entry in the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryReport {
    /// The client, `ip:port`.
    pub src: String,
    /// The ClusterIP:port it was sent to.
    pub dst: String,
    /// The reply source: the DNAT target (the ClusterIP itself when never
    /// translated).
    pub reply_src: String,
    /// `ASSURED`, `UNREPLIED` or `SEEN_REPLY`.
    pub state: &'static str,
    /// Seconds to expiry.
    pub expires_s: Option<u32>,
    /// Conntrack zone.
    pub zone: u16,
    /// Connection mark.
    pub mark: Option<u32>,
    /// The kernel's id of the entry.
    pub id: Option<u32>,
    /// Whether it is stale.
    pub stale: bool,
    /// `dead-endpoint`, `never-translated` or null.
    pub reason: Option<&'static str>,
    /// The local pod that sent it, when its address is in a namespace on
    /// this node.
    pub client: Option<Client>,
}

/// Entries per DNAT target of a Service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetSummary {
    /// The DNAT target (reply source), `ip:port`; `other` for the targets
    /// beyond the summary's limit.
    pub target: String,
    /// Whether it is a current endpoint in the rules.
    pub in_rules: bool,
    /// Entries towards it.
    pub entries: u64,
    /// How many of them are stale.
    pub stale: u64,
    /// Why the node cannot reach it, for an endpoint in the rules that it
    /// cannot reach.
    pub unreachable: Option<String>,
}

/// The stale scan of one ClusterIP:port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceReport {
    /// `namespace/name:port-name` (the ClusterIP:port for an unnamed
    /// `--cluster-ip`).
    pub service: String,
    /// The ClusterIP.
    pub cluster_ip: IpAddr,
    /// The Service port.
    pub port: u16,
    /// Where the Service came from: `iptables`, `nftables` or `manual`.
    pub proxy_mode: ProxyMode,
    /// The current endpoints in the rules, `ip:port`.
    pub endpoints: Vec<String>,
    /// Entries the kernel returned for this Service's dump(s).
    pub scanned: u64,
    /// Whether the kernel filtered the dump (CTA_FILTER).
    pub kernel_filter: bool,
    /// Stale entries, and live ones with `--all-entries`: at most
    /// [`MAX_LISTED`](super::MAX_LISTED) of each (the rest are counted, not
    /// listed).
    pub entries: Vec<EntryReport>,
    /// Present (true) when `entries` holds only part of the entries it
    /// would list: the first [`MAX_LISTED`](super::MAX_LISTED) stale (and
    /// live) entries of the dump; `entries_not_listed` says how many more
    /// there are.
    #[serde(skip_serializing_if = "is_false")]
    pub entries_truncated: bool,
    /// Entries that `entries` would list but does not hold (present when
    /// truncated).
    #[serde(skip_serializing_if = "is_zero")]
    pub entries_not_listed: u64,
    /// Stale entries found.
    pub stale_count: u64,
    /// Entries that are not stale.
    pub live_count: u64,
    /// Entries per DNAT target.
    pub by_target: Vec<TargetSummary>,
    /// Endpoints in the rules the node cannot reach.
    pub unreachable_endpoints: Vec<Unreachable>,
    /// What was concluded about this Service.
    pub findings: Vec<Finding>,
    /// With `--flush`: what the flush did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush: Option<FlushReport>,
}

/// The whole `ctdiag stale` report: one Service port, or several (`--all`,
/// a Service with several UDP ports, a dual-stack Service) in the
/// `services` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleReport {
    /// The namespace scanned, as given.
    pub netns: Option<String>,
    /// Where the Services came from.
    pub source: String,
    /// Entries in the whole table when the scan started.
    pub table_entries: Option<u64>,
    /// Whether every dump was filtered by the kernel.
    pub kernel_filter: bool,
    /// One report per ClusterIP:port.
    pub services: Vec<ServiceReport>,
    /// Stale entries of all Services.
    pub stale_count: u64,
    /// Entries that are not stale, of all Services.
    pub live_count: u64,
    /// Every finding: each Service's, then those about the scan itself.
    pub findings: Vec<Finding>,
    /// With `--flush`: the totals.
    pub flush: Option<FlushReport>,
    /// Remarks (kernel filter, skipped entries, lookups not done).
    pub notes: Vec<String>,
    /// Whether JSON uses the `services` form (`--all` or more than one
    /// report).
    pub wrapped: bool,
}

impl StaleReport {
    /// The stale entries listed, over all Services.
    pub fn stale_entries(&self) -> impl Iterator<Item = (&ServiceReport, &EntryReport)> {
        self.services.iter().flat_map(|s| s.entries.iter().filter(|e| e.stale).map(move |e| (s, e)))
    }
}

impl Serialize for StaleReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if let (false, [one]) = (self.wrapped, self.services.as_slice()) {
            // The one-Service form: the Service's object, with the scan's
            // context beside it.
            #[derive(serde::Serialize)]
            struct One<'a> {
                #[serde(flatten)]
                service: &'a ServiceReport,
                netns: &'a Option<String>,
                source: &'a str,
                table_entries: Option<u64>,
                notes: &'a [String],
            }
            return One {
                service: one,
                netns: &self.netns,
                source: &self.source,
                table_entries: self.table_entries,
                notes: &self.notes,
            }
            .serialize(serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("services", &self.services)?;
        map.serialize_entry("stale_count", &self.stale_count)?;
        map.serialize_entry("live_count", &self.live_count)?;
        map.serialize_entry("kernel_filter", &self.kernel_filter)?;
        map.serialize_entry("findings", &self.findings)?;
        if let Some(flush) = &self.flush {
            map.serialize_entry("flush", flush)?;
        }
        map.serialize_entry("netns", &self.netns)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("table_entries", &self.table_entries)?;
        map.serialize_entry("notes", &self.notes)?;
        map.end()
    }
}

/// What the report is built from, besides the scan.
pub(super) struct Context<'a> {
    pub(super) config: &'a StaleConfig,
    pub(super) netns: Option<String>,
    pub(super) source: String,
    pub(super) table_entries: Option<u64>,
    pub(super) clients: &'a ClientIndex,
    pub(super) unreachable: &'a [Unreachable],
    pub(super) notes: Vec<String>,
}

impl Context<'_> {
    pub(super) fn report(
        &self,
        targets: &[Target],
        scan: &Scan,
        flushes: Option<&[FlushReport]>,
    ) -> StaleReport {
        let mut services = Vec::new();
        for (index, (target, tally)) in targets.iter().zip(&scan.tallies).enumerate() {
            let flush = flushes.and_then(|f| f.get(index)).cloned();
            services.push(self.service_report(target, tally, scan.kernel_filter, flush));
        }
        let mut notes = self.notes.clone();
        notes.extend(scan.filter_notes.iter().cloned());
        if scan.undecodable > 0 {
            notes.extend(scan.undecodable_notes.iter().cloned());
        }
        let global: Vec<Finding> =
            [findings::kernel_filter_unavailable(scan), findings::undecodable_entries(scan)]
                .into_iter()
                .flatten()
                .collect();
        if scan.restarts > 0 {
            notes.push(format!(
                "the dump was restarted {} time(s) (interrupted or overrun); the result is from a complete dump",
                scan.restarts
            ));
        }
        let wrapped = matches!(self.config.selector, Selector::All) || services.len() != 1;
        let mut findings: Vec<Finding> =
            services.iter().flat_map(|s| s.findings.iter().cloned()).collect();
        findings.extend(global.iter().cloned());
        if !wrapped {
            if let Some(one) = services.first_mut() {
                one.findings.extend(global);
            }
        }
        let flush = flushes.map(|all| {
            let mut total = FlushReport::default();
            for one in all {
                total.add(one);
            }
            total
        });
        StaleReport {
            netns: self.netns.clone(),
            source: self.source.clone(),
            table_entries: self.table_entries,
            kernel_filter: scan.kernel_filter,
            stale_count: services.iter().map(|s| s.stale_count).sum(),
            live_count: services.iter().map(|s| s.live_count).sum(),
            services,
            findings,
            flush,
            notes,
            wrapped,
        }
    }

    pub(super) fn entry_report(&self, entry: &Entry, verdict: Verdict) -> EntryReport {
        EntryReport {
            src: entry.orig.source().to_string(),
            dst: entry.orig.destination().to_string(),
            reply_src: entry.reply.source().to_string(),
            state: entry.state(),
            expires_s: entry.timeout,
            zone: entry.zone,
            mark: entry.mark,
            id: entry.id,
            stale: verdict.is_stale(),
            reason: verdict.reason(),
            client: self.clients.get(&entry.orig.src).cloned(),
        }
    }

    /// The entries a tally kept, in the report's order: stale first, then
    /// by DNAT target and client.
    pub(super) fn entry_reports(&self, tally: &Tally) -> Vec<EntryReport> {
        let mut entries: Vec<EntryReport> = tally
            .stale
            .iter()
            .chain(&tally.listed_live)
            .map(|(entry, verdict)| self.entry_report(entry, *verdict))
            .collect();
        entries.sort_by(|a, b| {
            (!a.stale, &a.reply_src, &a.src).cmp(&(!b.stale, &b.reply_src, &b.src))
        });
        entries
    }

    pub(super) fn service_report(
        &self,
        target: &Target,
        tally: &Tally,
        kernel_filter: bool,
        flush: Option<FlushReport>,
    ) -> ServiceReport {
        let name = target.service.port_name_string();
        let service = if target.service.cluster_ips.len() > 1 {
            format!("{name} ({})", target.cluster_ip)
        } else {
            name
        };
        let entries = self.entry_reports(tally);
        let unreachable: Vec<Unreachable> = self
            .unreachable
            .iter()
            .filter(|u| target.endpoints.iter().any(|e| e.ip() == u.endpoint))
            .cloned()
            .collect();
        let mut by_target: Vec<TargetSummary> = target
            .endpoints
            .iter()
            .map(|endpoint| {
                let count = tally.by_target.get(endpoint).copied().unwrap_or_default();
                TargetSummary {
                    target: endpoint.to_string(),
                    in_rules: true,
                    entries: count.entries,
                    stale: count.stale,
                    unreachable: unreachable
                        .iter()
                        .find(|u| u.endpoint == endpoint.ip())
                        .map(|u| u.why.clone()),
                }
            })
            .collect();
        for (address, count) in &tally.by_target {
            if !target.endpoints.contains(address) {
                by_target.push(TargetSummary {
                    target: address.to_string(),
                    in_rules: false,
                    entries: count.entries,
                    stale: count.stale,
                    unreachable: None,
                });
            }
        }
        if tally.other_targets.entries > 0 {
            by_target.push(TargetSummary {
                target: "other".into(),
                in_rules: false,
                entries: tally.other_targets.entries,
                stale: tally.other_targets.stale,
                unreachable: None,
            });
        }
        let mut report = ServiceReport {
            service,
            cluster_ip: target.cluster_ip,
            port: target.port,
            proxy_mode: target.service.proxy_mode,
            endpoints: target.endpoints.iter().map(ToString::to_string).collect(),
            scanned: tally.scanned,
            kernel_filter,
            entries,
            entries_truncated: tally.not_kept > 0,
            entries_not_listed: tally.not_kept,
            stale_count: tally.stale_count(),
            live_count: tally.live,
            by_target,
            unreachable_endpoints: unreachable,
            findings: Vec::new(),
            flush,
        };
        report.findings = self.findings(target, tally, &report);
        report
    }
}

pub(super) fn is_false(value: &bool) -> bool {
    !value
}

pub(super) fn is_zero(value: &u64) -> bool {
    *value == 0
}
