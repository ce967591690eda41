//! What a Service's scan (and flush) means: one function per finding code,
//! its text, severity and remedy, in the order the report lists them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::classify::{Target, Verdict};
use super::clients::ClientIndex;
use super::reach::Unreachable;
use super::report::{Context, ServiceReport};
use super::scan::{Scan, Tally};
use crate::findings::{Finding, FindingCode, Severity};

/// The lasting fix every remedy about stale entries ends with.
const LASTING: &str = "Lasting fix: kube-proxy >= 1.32 deletes such entries itself through netlink when endpoints change (older versions run the conntrack binary, give up on errors such as \"such conntrack doesn't exist\", and skip Services without endpoints); node-local DNS (NodeLocal DNSCache) avoids the DNAT to CoreDNS for DNS altogether";

/// One Service port's scan (and flush), and what its findings say about it.
struct Case<'a> {
    target: &'a Target,
    tally: &'a Tally,
    report: &'a ServiceReport,
    clients: &'a ClientIndex,
    /// `namespace/name:port-name` as the report names it.
    name: &'a str,
    /// The ClusterIP:port.
    address: SocketAddr,
    /// The command that deletes the stale entries: the edge's command line
    /// that selects the same Services (`StaleConfig::command`) with the
    /// action this advice is about, as the other remedies name `kubectl`
    /// and `conntrack` commands.
    flush_command: String,
    /// The `conntrack -L` command that lists the same entries.
    cross_check: String,
}

impl Context<'_> {
    /// The findings of one Service port, in the report's order: the stale
    /// entries (unless a flush deleted them all), the flush's outcome, the
    /// unreachable endpoints, the missing endpoints, and "no stale
    /// entries" when there is nothing else to say.
    pub(super) fn findings(
        &self,
        target: &Target,
        tally: &Tally,
        report: &ServiceReport,
    ) -> Vec<Finding> {
        let case = Case {
            target,
            tally,
            report,
            clients: self.clients,
            name: &report.service,
            address: target.address(),
            flush_command: format!("{} --flush", self.config.command),
            cross_check: format!(
                "`conntrack -L -p udp --orig-dst {} --orig-port-dst {}` lists them",
                target.cluster_ip, target.port
            ),
        };
        let flushed_all = report
            .flush
            .as_ref()
            .is_some_and(|f| !f.declined && f.remaining == Some(0) && f.failed == 0);
        let mut findings = Vec::new();
        if !flushed_all {
            findings.extend(stale_entries(&case));
            findings.extend(never_translated_entries(&case));
        }
        findings.extend(stale_entries_remain(&case));
        findings.extend(stale_entries_flushed(&case));
        findings.extend(flush_unverified(&case));
        findings.extend(rule_sources_disagree(&case));
        findings
            .extend(report.unreachable_endpoints.iter().map(|u| endpoint_unreachable(&case, u)));
        findings.extend(service_no_endpoints(&case));
        if findings.is_empty() {
            findings.push(no_stale_entries(&case));
        }
        findings
    }
}

/// `stale-entries`: entries towards a DNAT target that is not an endpoint.
fn stale_entries(case: &Case) -> Option<Finding> {
    let Case { tally, report, name, flush_command, cross_check, .. } = case;
    if tally.dead == 0 {
        return None;
    }
    let gone: Vec<String> = report
        .by_target
        .iter()
        .filter(|t| !t.in_rules && t.stale > 0)
        .map(|t| format!("{} ({} entries)", t.target, t.stale))
        .collect();
    Some(Finding::new(
        Severity::Critical,
        FindingCode::StaleEntries,
        format!(
            "{} UDP conntrack entries of {name} send their clients' packets to {} that {} not an endpoint any more: {}",
            tally.dead,
            plural(gone.len(), "a DNAT target", "DNAT targets"),
            if gone.len() == 1 { "is" } else { "are" },
            blackholed(case.clients, report, tally, Verdict::DeadEndpoint),
        ),
        format!(
            "to {}; current endpoints: {}; {cross_check}",
            gone.join(", "),
            list_or_none(&report.endpoints)
        ),
        format!(
            "Delete exactly these entries: `{flush_command}` (it shows them and asks first; add --yes without a terminal). {LASTING}"
        ),
    ))
}

/// `never-translated-entries`: entries created while the Service had no
/// endpoints, still answered by nobody.
fn never_translated_entries(case: &Case) -> Option<Finding> {
    let Case { tally, report, name, address, flush_command, cross_check, .. } = case;
    if tally.never == 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Critical,
        FindingCode::NeverTranslatedEntries,
        format!(
            "{} UDP conntrack entries of {name} were never DNATed (created while it had no endpoints) and still capture their clients' packets: {}",
            tally.never,
            blackholed(case.clients, report, tally, Verdict::NeverTranslated),
        ),
        format!(
            "reply source {address} (the ClusterIP itself) while the endpoints are {}; {cross_check}",
            list_or_none(&report.endpoints)
        ),
        format!(
            "Delete exactly these entries: `{flush_command}` (it shows them and asks first; add --yes without a terminal). kube-proxy before kubernetes#139629 skips Services without endpoints when it cleans conntrack, so these stay until deleted or idle for the UDP timeout. {LASTING}"
        ),
    ))
}

/// `stale-entries-remain`: a flush (not declined) left stale entries or
/// failed deletes behind.
fn stale_entries_remain(case: &Case) -> Option<Finding> {
    let Case { report, name, flush_command, .. } = case;
    let flush = report.flush.as_ref().filter(|f| !f.declined)?;
    let remaining = flush.remaining?;
    if remaining == 0 && flush.failed == 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Critical,
        FindingCode::StaleEntriesRemain,
        format!("The flush of {name} left {remaining} stale entries behind"),
        format!(
            "deleted {}, already gone {}, failed {}, still stale after the flush {}{}",
            flush.deleted,
            flush.already_gone,
            flush.failed,
            remaining,
            if flush.errors.is_empty() {
                String::new()
            } else {
                format!("; first errors: {}", flush.errors.join("; "))
            }
        ),
        format!(
            "Run `{flush_command}` again; entries that come back at once mean a client is still being DNATed to a target that is not an endpoint: check the rules (`ctdiag stale -v`) and kube-proxy. {LASTING}"
        ),
    ))
}

/// `stale-entries-flushed`: a flush deleted every stale entry the scan
/// found, and the scan after it found none.
fn stale_entries_flushed(case: &Case) -> Option<Finding> {
    let Case { report, name, .. } = case;
    let flush = report.flush.as_ref().filter(|f| !f.declined)?;
    let found = report.stale_count;
    if flush.remaining != Some(0) || flush.failed > 0 || found == 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Info,
        FindingCode::StaleEntriesFlushed,
        format!("Deleted the {found} stale entries of {name}; none remain"),
        format!(
            "deleted {}, already gone {} (expired, or replaced since the scan by a new entry, which was kept); a scan after the flush found none",
            flush.deleted, flush.already_gone
        ),
        format!("Their clients' next packets from the same ports create new entries towards live endpoints. {LASTING}"),
    ))
}

/// `flush-unverified`: the deletes ran but the scan after them failed.
fn flush_unverified(case: &Case) -> Option<Finding> {
    let Case { report, name, flush_command, .. } = case;
    let flush = report.flush.as_ref().filter(|f| !f.declined && f.remaining.is_none())?;
    Some(Finding::new(
        Severity::Warning,
        FindingCode::FlushUnverified,
        format!(
            "The flush of {name} deleted {} entries, but the scan after it failed: whether stale entries remain is unknown",
            flush.deleted
        ),
        format!(
            "deleted {}, already gone {}, failed {}, spared {}; {}",
            flush.deleted,
            flush.already_gone,
            flush.failed,
            flush.spared,
            flush.rescan_error.as_deref().unwrap_or("the scan after the flush failed")
        ),
        format!("Scan again: `{}`", flush_command.trim_end_matches(" --flush")),
    ))
}

/// `rule-sources-disagree`: several rule sources define the ClusterIP:port
/// with different endpoints (an entry is live when any of them names its
/// target; a flush refuses).
fn rule_sources_disagree(case: &Case) -> Option<Finding> {
    let Case { target, name, .. } = case;
    let why = super::sources::disagreement(target)?;
    Some(Finding::new(
        Severity::Warning,
        FindingCode::RuleSourcesDisagree,
        format!("The rules on this node disagree on the endpoints of {name}: entries towards an endpoint any of them names count as live"),
        why,
        "Find which rules kube-proxy runs (its --proxy-mode; leftovers of another mode or of the other iptables backend are removed with `kube-proxy --cleanup`), then scan and flush with --from iptables|nftables|ipvs",
    ))
}

/// `endpoint-unreachable`: an endpoint in the rules the node cannot reach.
fn endpoint_unreachable(case: &Case, unreachable: &Unreachable) -> Finding {
    let Case { tally, name, flush_command, .. } = case;
    let count = tally
        .by_target
        .iter()
        .filter(|(a, _)| a.ip() == unreachable.endpoint)
        .map(|(_, c)| c.entries)
        .sum::<u64>();
    Finding::new(
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
    )
}

/// `service-no-endpoints`: the rules have no DNAT target for the Service.
fn service_no_endpoints(case: &Case) -> Option<Finding> {
    let Case { target, tally, name, address, flush_command, .. } = case;
    if !target.endpoints.is_empty() {
        return None;
    }
    let pending = if tally.stale_count() > 0 {
        format!(
            "; its {} entries are all stale (nothing answers them, and until they go the REJECT rule for a Service without endpoints never sees their clients' packets): `{flush_command}` deletes them",
            tally.stale_count()
        )
    } else {
        String::new()
    };
    Some(Finding::new(
        Severity::Critical,
        FindingCode::ServiceNoEndpoints,
        format!("{name} has no endpoints in the rules: every packet its clients send to {address} fails"),
        format!("{} rules with no DNAT target for {address}{pending}", target.service.proxy_mode.as_str()),
        format!(
            "Check the Service's pods and endpoints: `kubectl -n {ns} get endpointslices -l kubernetes.io/service-name={svc}` and `kubectl -n {ns} get pods -o wide`",
            ns = if target.service.namespace.is_empty() { "NAMESPACE" } else { &target.service.namespace },
            svc = if target.service.name.is_empty() { "NAME" } else { &target.service.name },
        ),
    ))
}

/// `no-stale-entries`: nothing else to say about the Service.
fn no_stale_entries(case: &Case) -> Finding {
    let Case { report, name, address, .. } = case;
    Finding::new(
        Severity::Info,
        FindingCode::NoStaleEntries,
        format!("No stale UDP conntrack entries for {name}"),
        format!(
            "{} entries to {address}, all towards current endpoints ({})",
            report.live_count,
            list_or_none(&report.endpoints)
        ),
        "Nothing to do",
    )
}

/// `kernel-filter-unavailable`: the kernel did not filter a dump.
pub(super) fn kernel_filter_unavailable(scan: &Scan) -> Option<Finding> {
    if scan.kernel_filter {
        return None;
    }
    Some(Finding::new(
        Severity::Info,
        FindingCode::KernelFilterUnavailable,
        "The kernel did not filter the conntrack dump; ctdiag filtered it itself",
        scan.filter_notes.join("; "),
        "Nothing to do: the result is the same. On a very large table the scan takes longer (the kernel-side filter, CTA_FILTER, needs Linux >= 5.8)",
    ))
}

/// `undecodable-entries`: dump messages that did not decode.
pub(super) fn undecodable_entries(scan: &Scan) -> Option<Finding> {
    if scan.undecodable == 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Info,
        FindingCode::UndecodableEntries,
        format!("{} dump message(s) could not be decoded and were skipped", scan.undecodable),
        scan.undecodable_notes.join("; "),
        "Compare with `conntrack -L -p udp`; if entries are missing here, report the kernel version and this message",
    ))
}

/// Who sent from `address`: the pod (or namespace) holding it, else
/// the address as an entry's `src` writes it.
fn who(clients: &ClientIndex, address: IpAddr) -> String {
    match clients.get(&address) {
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
fn blackholed(
    pods: &ClientIndex,
    report: &ServiceReport,
    tally: &Tally,
    verdict: Verdict,
) -> String {
    let reason = verdict.reason();
    // who -> (stale entries, the first sources listed)
    let mut clients: BTreeMap<String, (u64, Vec<&str>)> = BTreeMap::new();
    for ((_, address), count) in tally.by_client.iter().filter(|((v, _), _)| *v == verdict) {
        clients.entry(who(pods, *address)).or_default().0 += count;
    }
    for entry in report.entries.iter().filter(|e| e.stale && e.reason == reason) {
        let Ok(source) = entry.src.parse::<SocketAddr>() else { continue };
        let samples = &mut clients.entry(who(pods, source.ip())).or_default().1;
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

/// `one` for 1, `N many` otherwise.
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_string()
    } else {
        format!("{n} {many}")
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}
