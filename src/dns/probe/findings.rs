//! The probe's findings: one function per finding code.

use crate::dns::engine::EngineResult;
use crate::findings::{Finding, FindingCode, Severity};

use super::report::{ms_text, percent, ConntrackDelta, ProbeReport};
use super::SLOW_SHARE_PERCENT;

const RACE_REMEDY: &str = "Avoid sending A and AAAA from one socket at once: add `options single-request-reopen` (glibc) to the pods' dnsConfig, run NodeLocal DNSCache, or use TCP (`use-vc`); kernels >= 5.6 resolve most clashes, so upgrade old nodes";

/// The findings, most severe first: one function per finding code, in the
/// order they are listed (equal severities keep it). The loss findings
/// exclude each other: race drops, else an unreachable endpoint, else plain
/// loss; without loss, resolved clashes, else no loss.
pub(super) fn analyze(report: &ProbeReport, result: &EngineResult) -> Vec<Finding> {
    let mut findings: Vec<Finding> = [
        cluster_dns_no_endpoints(report),
        conntrack_race_drops(report),
        dns_endpoint_unreachable(report),
        dns_queries_lost(report),
        conntrack_clashes_resolved(report),
        no_loss(report),
        conntrack_drops_elsewhere(report),
        slow_answers(report, result),
        dns_error_rcodes(report),
        name_does_not_exist(report),
        stray_packets(result),
        conntrack_counters_unavailable(report),
        stopped_early(report, result),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Most severe first; the order of equal ones is kept.
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// insert_failed + drop during the probe (0 when not read).
fn drops(report: &ProbeReport) -> u64 {
    report.conntrack_delta.as_ref().map_or(0, ConntrackDelta::drops)
}

/// Queries that got an ICMP error from the network (port, host or network
/// unreachable).
fn icmp_errors(report: &ProbeReport) -> u64 {
    report.outcomes.port_unreachable + report.outcomes.unreachable
}

/// Whether most lost queries got an ICMP error: a dead server, not a race.
fn mostly_refused(report: &ProbeReport) -> bool {
    icmp_errors(report) > 0 && icmp_errors(report) * 2 >= report.lost
}

/// The conntrack counters as evidence.
fn counters_text(report: &ProbeReport) -> String {
    match report.conntrack_delta.as_ref() {
        Some(d) => format!(
            "conntrack in {} (namespace-wide): insert_failed +{}, drop +{}, early_drop +{}, clash_resolve {}",
            report.header.stats_netns.as_deref().unwrap_or("the current namespace"),
            d.insert_failed.unwrap_or(0),
            d.drop.unwrap_or(0),
            d.early_drop.unwrap_or(0),
            d.clash_resolve.map_or("n/a".to_string(), |c| format!("+{c}")),
        ),
        None => "conntrack counters not read".to_string(),
    }
}

/// The loss figures as evidence.
fn loss_text(report: &ProbeReport) -> String {
    format!(
        "{} lookups, {} queries sent, {} answered, {} lost (A {}, AAAA {}; {} timed out, {} ICMP port unreachable, {} ICMP host/net unreachable, {} without a route, {} send failures); {} lookups lost exactly one of their pair, {} lost both; {} lookups would have waited the resolver's {} s timeout",
        report.lookups,
        report.queries_sent,
        report.answered,
        report.lost,
        report.lost_by_type.get("A").copied().unwrap_or(0),
        report.lost_by_type.get("AAAA").copied().unwrap_or(0),
        report.outcomes.timed_out,
        report.outcomes.port_unreachable,
        report.outcomes.unreachable,
        report.outcomes.no_route,
        report.outcomes.send_failed,
        report.one_lost_lookups,
        report.both_lost_lookups,
        report.resolver_timeout_lookups,
        report.resolver.timeout_s,
    )
}

/// `cluster-dns-no-endpoints`: the ClusterIP found in the rules has no
/// endpoint behind it.
fn cluster_dns_no_endpoints(report: &ProbeReport) -> Option<Finding> {
    if !report.cluster_endpoints.as_ref().is_some_and(Vec::is_empty) {
        return None;
    }
    Some(Finding::new(
        Severity::Critical,
        FindingCode::ClusterDnsNoEndpoints,
        format!("{} has no endpoints in the node's kube-proxy rules", report.server),
        format!(
            "{}: the rules reject it (iptables: a `has no endpoints` REJECT in the filter table; nftables: an element of `no-endpoint-services`) and DNAT it nowhere; every lookup through it fails",
            report.server_from
        ),
        "Check the CoreDNS pods and the Service's endpoints (`kubectl -n kube-system get pods -l k8s-app=kube-dns`, `kubectl -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns`); kube-proxy adds the DNAT rules once an endpoint is ready",
    ))
}

/// `conntrack-race-drops`: answers lost while conntrack dropped packets.
fn conntrack_race_drops(report: &ProbeReport) -> Option<Finding> {
    if report.lost == 0 || drops(report) == 0 {
        return None;
    }
    let delta = report.conntrack_delta.as_ref();
    Some(Finding::new(
        Severity::Critical,
        FindingCode::ConntrackRaceDrops,
        format!(
            "{} lookups lost one answer while insert_failed rose by {}: conntrack race drops",
            report.one_lost_lookups,
            delta.and_then(|d| d.insert_failed).unwrap_or(0)
        ),
        format!("{}; {}", loss_text(report), counters_text(report)),
        RACE_REMEDY,
    ))
}

/// `dns-endpoint-unreachable`: most lost queries got ICMP errors and
/// conntrack dropped nothing.
fn dns_endpoint_unreachable(report: &ProbeReport) -> Option<Finding> {
    if report.lost == 0 || drops(report) > 0 || !mostly_refused(report) {
        return None;
    }
    Some(Finding::new(
        Severity::Critical,
        FindingCode::DnsEndpointUnreachable,
        format!(
            "{} of {} queries got ICMP errors (port or host unreachable): a DNS server behind {} is dead or not listening",
            icmp_errors(report), report.queries_sent, report.server
        ),
        format!("{}; {}", loss_text(report), counters_text(report)),
        "Check the DNS service's endpoints (kubectl -n kube-system get endpoints kube-dns) and the CoreDNS pods; remove dead endpoints from the rules; look for stale conntrack entries (`conntrack -L -p udp --orig-port-dst 53`)",
    ))
}

/// `dns-queries-lost`: queries lost, neither to conntrack drops nor mostly
/// to ICMP errors; critical above 1 %.
fn dns_queries_lost(report: &ProbeReport) -> Option<Finding> {
    // Why timeouts only: an error the stack or the network reported (no
    // route, port unreachable) is no packet lost on the way.
    let timed_out = report.outcomes.timed_out;
    if timed_out == 0 || drops(report) > 0 || mostly_refused(report) {
        return None;
    }
    let share = timed_out as f64 / report.queries_sent.max(1) as f64;
    let race_like = report.one_lost_lookups > report.both_lost_lookups;
    Some(Finding::new(
        if share > 0.01 { Severity::Critical } else { Severity::Warning },
        FindingCode::DnsQueriesLost,
        format!(
            "{} of {} queries lost ({:.1}%, timed out); {} lookups lost exactly one of their pair",
            timed_out,
            report.queries_sent,
            share * 100.0,
            report.one_lost_lookups
        ),
        format!(
            "{}; {}{}",
            loss_text(report),
            counters_text(report),
            if race_like && report.conntrack_delta.is_some() {
                "; one-of-the-pair losses look like the A/AAAA race, but conntrack dropped nothing: the loss is elsewhere (server, network, rate limits)"
            } else {
                ""
            }
        ),
        match report.cluster_endpoints.as_deref() {
            Some(eps) if !eps.is_empty() => format!(
                "Probe each endpoint directly to find where queries die ({}); check CoreDNS logs and load",
                eps.iter()
                    .map(|e| format!("`ctdiag probe --server {e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => "Probe each endpoint directly (`ctdiag probe --server ENDPOINT_IP`, endpoints from `iptables-save -t nat | grep KUBE-SEP`) to find where queries die; check CoreDNS logs and load".to_string(),
        },
    ))
}

/// `conntrack-clashes-resolved`: nothing lost, and the kernel resolved the
/// clashes the lookups caused.
fn conntrack_clashes_resolved(report: &ProbeReport) -> Option<Finding> {
    let clashes = report.conntrack_delta.as_ref().and_then(|d| d.clash_resolve).unwrap_or(0);
    if report.lost > 0 || clashes == 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Info,
        FindingCode::ConntrackClashesResolved,
        format!(
            "{clashes} of {} lookups raced in conntrack (clash_resolve +{clashes}); the kernel resolved every clash; nothing lost",
            report.lookups
        ),
        format!("{}; {}", loss_text(report), counters_text(report)),
        "Nothing to fix: this kernel resolves the parallel A/AAAA clash. Older kernels (< 5.6) would drop these packets",
    ))
}

/// `no-loss`: every lookup answered, no clash counted.
fn no_loss(report: &ProbeReport) -> Option<Finding> {
    let clashes = report.conntrack_delta.as_ref().and_then(|d| d.clash_resolve).unwrap_or(0);
    if report.lost > 0 || clashes > 0 || report.lookups == 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Info,
        FindingCode::NoLoss,
        format!(
            "all {} lookups answered ({} queries); nothing lost",
            report.lookups, report.answered
        ),
        format!("{}; {}", loss_text(report), counters_text(report)),
        "Nothing to fix",
    ))
}

/// `conntrack-drops-elsewhere`: conntrack dropped packets though every
/// probe was answered.
fn conntrack_drops_elsewhere(report: &ProbeReport) -> Option<Finding> {
    let drops = drops(report);
    if drops == 0 || report.lost > 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Warning,
        FindingCode::ConntrackDropsElsewhere,
        format!("conntrack dropped packets ({drops}) during the probe, though every probe was answered"),
        format!("{}; the counters are namespace-wide: other traffic lost packets", counters_text(report)),
        "Watch the counters (`ctdiag stats --watch 1`) and look for the table filling up or other parallel-query clients",
    ))
}

/// `dns-error-rcodes`: answers that were errors.
fn dns_error_rcodes(report: &ProbeReport) -> Option<Finding> {
    let errors: u64 = report
        .rcodes
        .iter()
        .filter(|(code, _)| matches!(code.as_str(), "SERVFAIL" | "REFUSED" | "FORMERR" | "NOTIMP"))
        .map(|(_, n)| *n)
        .sum();
    (errors > 0).then(|| {
        Finding::new(
            Severity::Warning,
            FindingCode::DnsErrorRcodes,
            format!("{errors} answers were errors (SERVFAIL, REFUSED, ...)"),
            format!("rcodes: {:?}", report.rcodes),
            "Check that the name is one the server is meant to answer, and the server's logs",
        )
    })
}

/// `name-does-not-exist`: NXDOMAIN answers.
fn name_does_not_exist(report: &ProbeReport) -> Option<Finding> {
    let nx = report.rcodes.get("NXDOMAIN").filter(|n| **n > 0)?;
    Some(Finding::new(
        Severity::Info,
        FindingCode::NameDoesNotExist,
        format!("{nx} answers were NXDOMAIN"),
        format!("names: {}", report.header.names.join(", ")),
        "Probe a name that exists (the default kubernetes.default.svc.cluster.local does in every cluster)",
    ))
}

/// `stray-packets`: received packets not taken as answers.
fn stray_packets(result: &EngineResult) -> Option<Finding> {
    let s = &result.stray;
    (s.total() > 0).then(|| {
        Finding::new(
            Severity::Info,
            FindingCode::StrayPackets,
            format!("{} received packets were not taken as answers", s.total()),
            format!(
                "wrong source {}, wrong ID {}, wrong question {}, malformed {}, truncated (TC) {}, duplicate {}, late {}",
                s.wrong_source, s.wrong_id, s.wrong_question, s.malformed, s.truncated, s.duplicate, s.late
            ),
            "Late answers mean the server answered after --timeout; the others point at a misbehaving server or middlebox",
        )
    })
}

/// `conntrack-counters-unavailable`: the counters could not be read.
fn conntrack_counters_unavailable(report: &ProbeReport) -> Option<Finding> {
    report.conntrack_delta.is_none().then(|| {
        Finding::new(
            Severity::Info,
            FindingCode::ConntrackCountersUnavailable,
            "the conntrack counters could not be read; the probe's loss figures stand without the kernel's evidence",
            report.conntrack_note.clone(),
            "Run as root (CAP_NET_ADMIN) and point --stats-netns at the namespace where DNAT happens (the node's)",
        )
    })
}

/// `stopped-early`: a signal or the run cap ended the run.
fn stopped_early(report: &ProbeReport, result: &EngineResult) -> Option<Finding> {
    report.stopped_early.then(|| {
        Finding::new(
            Severity::Info,
            FindingCode::StoppedEarly,
            "the probe stopped before its planned end",
            if result.interrupted { "interrupted by a signal" } else { "hit the one-hour run cap" },
            "Use a shorter --duration or a smaller --count",
        )
    })
}

/// The `slow-answers` warning: 1 % or more of the answered lookups took
/// `--slow-ms` or longer, or any took longer than the resolver's timeout.
fn slow_answers(report: &ProbeReport, result: &EngineResult) -> Option<Finding> {
    let answered = result.latency.len();
    let beyond = result.beyond_resolver_timeout;
    let share = percent(report.slow_lookups, answered);
    if report.slow_lookups == 0 || (share < SLOW_SHARE_PERCENT && beyond == 0) {
        return None;
    }
    let remedy = match report.cluster_endpoints.as_deref() {
        Some(eps) if !eps.is_empty() => format!(
            "Find the slow endpoint: `ctdiag compare` probes the ClusterIP and each endpoint ({}) side by side; then check that CoreDNS pod's load, its upstream forwarders and its cache",
            eps.join(", ")
        ),
        _ => "Find which server is slow (`ctdiag compare --cluster-ip IP --endpoints IP:PORT,...` or `ctdiag probe --server` on each); check its load, upstream forwarders and cache".to_string(),
    };
    Some(Finding::new(
        Severity::Warning,
        FindingCode::SlowAnswers,
        format!(
            "{} of {answered} answered lookups ({share:.1}%) took {} ms or longer",
            report.slow_lookups, report.slow_ms
        ),
        format!(
            "latency ms p50 {}, p90 {}, p99 {}, max {}; threshold {} ms ({}); {beyond} lookups answered only after the resolver's {} s timeout (the resolver would have retried or given up)",
            ms_text(report.latency_ms.p50),
            ms_text(report.latency_ms.p90),
            ms_text(report.latency_ms.p99),
            ms_text(report.latency_ms.max),
            report.slow_ms,
            report.slow_from,
            report.resolver.timeout_s
        ),
        remedy,
    ))
}
