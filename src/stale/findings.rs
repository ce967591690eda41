//! What a Service's scan (and flush) means: one function per finding code,
//! its text, severity and remedy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::classify::{Target, Verdict};
use super::report::{Context, ServiceReport};
use super::scan::Tally;
use crate::findings::{Finding, FindingCode, Severity};

impl Context<'_> {
    pub(super) fn findings(
        &self,
        target: &Target,
        tally: &Tally,
        report: &ServiceReport,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let name = &report.service;
        let address = target.address();
        let flush_command = format!("{} --flush", self.config.command);
        let lasting = "Lasting fix: kube-proxy >= 1.32 deletes such entries itself through netlink when endpoints change (older versions run the conntrack binary, give up on errors such as \"such conntrack doesn't exist\", and skip Services without endpoints); node-local DNS (NodeLocal DNSCache) avoids the DNAT to CoreDNS for DNS altogether";
        let cross_check = format!(
            "`conntrack -L -p udp --orig-dst {} --orig-port-dst {}` lists them",
            target.cluster_ip, target.port
        );
        let flushed_all =
            report.flush.as_ref().is_some_and(|f| !f.declined && f.remaining == 0 && f.failed == 0);
        if !flushed_all {
            if tally.dead > 0 {
                let gone: Vec<String> = report
                    .by_target
                    .iter()
                    .filter(|t| !t.in_rules && t.stale > 0)
                    .map(|t| format!("{} ({} entries)", t.target, t.stale))
                    .collect();
                findings.push(Finding::new(
                    Severity::Critical,
                    FindingCode::StaleEntries,
                    format!(
                        "{} UDP conntrack entries of {name} send their clients' packets to {} that {} not an endpoint any more: {}",
                        tally.dead,
                        plural(gone.len(), "a DNAT target", "DNAT targets"),
                        if gone.len() == 1 { "is" } else { "are" },
                        self.blackholed(report, tally, Verdict::DeadEndpoint),
                    ),
                    format!(
                        "to {}; current endpoints: {}; {cross_check}",
                        gone.join(", "),
                        list_or_none(&report.endpoints)
                    ),
                    format!(
                        "Delete exactly these entries: `{flush_command}` (it shows them and asks first; add --yes without a terminal). {lasting}"
                    ),
                ));
            }
            if tally.never > 0 {
                findings.push(Finding::new(
                    Severity::Critical,
                    FindingCode::NeverTranslatedEntries,
                    format!(
                        "{} UDP conntrack entries of {name} were never DNATed (created while it had no endpoints) and still capture their clients' packets: {}",
                        tally.never,
                        self.blackholed(report, tally, Verdict::NeverTranslated),
                    ),
                    format!(
                        "reply source {address} (the ClusterIP itself) while the endpoints are {}; {cross_check}",
                        list_or_none(&report.endpoints)
                    ),
                    format!(
                        "Delete exactly these entries: `{flush_command}` (it shows them and asks first; add --yes without a terminal). kube-proxy skips Services without endpoints when it cleans conntrack, so these stay until deleted or idle for the UDP timeout. {lasting}"
                    ),
                ));
            }
        }
        if let Some(flush) = &report.flush {
            let found = report.stale_count;
            if flush.declined {
                // The stale findings above stand.
            } else if flush.remaining > 0 || flush.failed > 0 {
                findings.push(Finding::new(
                    Severity::Critical,
                    FindingCode::StaleEntriesRemain,
                    format!(
                        "The flush of {name} left {} stale entries behind",
                        flush.remaining
                    ),
                    format!(
                        "deleted {}, already gone {}, failed {}, still stale after the flush {}{}",
                        flush.deleted,
                        flush.already_gone,
                        flush.failed,
                        flush.remaining,
                        if flush.errors.is_empty() {
                            String::new()
                        } else {
                            format!("; first errors: {}", flush.errors.join("; "))
                        }
                    ),
                    format!(
                        "Run `{flush_command}` again; entries that come back at once mean a client is still being DNATed to a target that is not an endpoint: check the rules (`ctdiag stale -v`) and kube-proxy. {lasting}"
                    ),
                ));
            } else if found > 0 {
                findings.push(Finding::new(
                    Severity::Info,
                    FindingCode::StaleEntriesFlushed,
                    format!("Deleted the {found} stale entries of {name}; none remain"),
                    format!(
                        "deleted {}, already gone {} (expired, or replaced since the scan by a new entry, which was kept); a scan after the flush found none",
                        flush.deleted, flush.already_gone
                    ),
                    format!("Their clients' next packets from the same ports create new entries towards live endpoints. {lasting}"),
                ));
            }
        }
        for unreachable in &report.unreachable_endpoints {
            let count = tally
                .by_target
                .iter()
                .filter(|(a, _)| a.ip() == unreachable.endpoint)
                .map(|(_, c)| c.entries)
                .sum::<u64>();
            findings.push(Finding::new(
                Severity::Warning,
                FindingCode::EndpointUnreachable,
                format!(
                    "Endpoint {} of {name} is in the rules but the node cannot reach it: its {count} entries are live by the rules and dead in fact",
                    unreachable.endpoint
                ),
                unreachable.why.clone(),
                format!(
                    "Find the pod with IP {} (`kubectl get pods -A -o wide | grep -w {}`): if it is gone, kube-proxy has not removed it from the rules yet (check kube-proxy's logs); if it runs, its route or neighbour on this node is broken. Once it is out of the rules, `{flush_command}` deletes the entries towards it",
                    unreachable.endpoint, unreachable.endpoint
                ),
            ));
        }
        if target.endpoints.is_empty() {
            let pending = if tally.untranslated > 0 {
                format!(
                    "; {} untranslated entries of its clients will blackhole them once endpoints return: run `{flush_command}` then",
                    tally.untranslated
                )
            } else {
                String::new()
            };
            findings.push(Finding::new(
                Severity::Critical,
                FindingCode::ServiceNoEndpoints,
                format!("{name} has no endpoints in the rules: every packet its clients send to {address} fails"),
                format!("{} rules with no DNAT target for {address}{pending}", target.service.proxy_mode.as_str()),
                format!(
                    "Check the Service's pods and endpoints: `kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={svc}` and `kubectl -n {ns} get pods -o wide`",
                    ns = if target.service.namespace.is_empty() { "NAMESPACE" } else { &target.service.namespace },
                    svc = if target.service.name.is_empty() { "NAME" } else { &target.service.name },
                ),
            ));
        }
        if findings.is_empty() {
            findings.push(Finding::new(
                Severity::Info,
                FindingCode::NoStaleEntries,
                format!("No stale UDP conntrack entries for {name}"),
                format!(
                    "{} entries to {address}, all towards current endpoints ({})",
                    report.live_count,
                    list_or_none(&report.endpoints)
                ),
                "Nothing to do",
            ));
        }
        findings
    }

    /// Who sent from `address`: the pod (or namespace) holding it, else
    /// the address as an entry's `src` writes it.
    pub(super) fn who(&self, address: IpAddr) -> String {
        match self.clients.get(&address) {
            Some(client) => match &client.hostname {
                Some(host) => format!("pod {host} in {}", client.netns),
                None => format!("netns {}", client.netns),
            },
            None => match address {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            },
        }
    }

    /// "3 clients (198.18.1.2:40001 t-client, ...)" for the stale entries of
    /// one verdict: the count per client from the scan's exact tally, the
    /// sample sources from the entries listed.
    pub(super) fn blackholed(
        &self,
        report: &ServiceReport,
        tally: &Tally,
        verdict: Verdict,
    ) -> String {
        let reason = verdict.reason();
        // who -> (stale entries, the first sources listed)
        let mut clients: BTreeMap<String, (u64, Vec<&str>)> = BTreeMap::new();
        for ((_, address), count) in tally.by_client.iter().filter(|((v, _), _)| *v == verdict) {
            clients.entry(self.who(*address)).or_default().0 += count;
        }
        for entry in report.entries.iter().filter(|e| e.stale && e.reason == reason) {
            let Ok(source) = entry.src.parse::<SocketAddr>() else { continue };
            let samples = &mut clients.entry(self.who(source.ip())).or_default().1;
            if samples.len() < 3 {
                samples.push(&entry.src);
            }
        }
        let mut text = String::new();
        for (index, (who, (count, shown))) in clients.iter().enumerate() {
            if index == 5 {
                let _ = write!(text, ", and {} more", clients.len() - 5);
                break;
            }
            if index > 0 {
                text.push_str(", ");
            }
            let rest = count.saturating_sub(shown.len() as u64);
            if shown.is_empty() {
                // None of its entries is among those kept.
                let _ = write!(text, "{who} ({count} entries)");
                continue;
            }
            let more = if rest > 0 { format!(" +{rest}") } else { String::new() };
            let _ = write!(text, "{who} ({}{more})", shown.join(" "));
        }
        if let Some(others) = tally.other_clients.get(&verdict) {
            let _ = write!(text, ", and {others} entries of further clients (not counted apart)");
        }
        format!("{} blackholed: {text}", plural(clients.len(), "1 client", "clients"))
    }
}

/// `one` for 1, `N many` otherwise.
pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_string()
    } else {
        format!("{n} {many}")
    }
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
