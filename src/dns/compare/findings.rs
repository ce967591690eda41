//! The compare findings: one function per finding code.

use crate::dns::engine::Mode;
use crate::dns::probe::{ms_text, percent, SLOW_SHARE_PERCENT};
use crate::findings::{Finding, FindingCode, Severity};

use super::report::{CompareReport, ModeSummary, TargetReport};
use super::verdicts::{
    endpoint_error_rcodes, error_rcodes_everywhere, lost_type, no_route_to_target, one_type_lost,
};
use super::{Role, SLOW_FACTOR, SLOW_FLOOR_MS};

/// "critical above 1 % of the queries, else warning", as `probe` says it.
pub(super) fn loss_severity(lost: u64, sent: u64) -> Severity {
    if percent(lost, sent) > 1.0 {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// The median of some values (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// " in tcp mode" when more than one mode was compared.
fn in_mode(report: &CompareReport, mode: Mode) -> String {
    if report.modes.len() > 1 {
        format!(" in {} mode", mode.as_str())
    } else {
        String::new()
    }
}

/// The conntrack deltas of a target, for evidence.
fn counters_text(target: &TargetReport) -> String {
    match &target.conntrack_delta {
        Some(d) => format!(
            "conntrack during its batches (namespace-wide): insert_failed +{}, drop +{}, clash_resolve {}",
            d.insert_failed.unwrap_or(0),
            d.drop.unwrap_or(0),
            d.clash_resolve.map_or("n/a".to_string(), |c| format!("+{c}"))
        ),
        None => "conntrack counters not read".into(),
    }
}

/// The findings, most severe first: per mode, one function per finding
/// code in the order listed, then those over all modes (equal severities
/// keep that order); `compare-clean` only when nothing else warns.
pub(super) fn analyze(report: &CompareReport) -> Vec<Finding> {
    let mut findings = Vec::new();
    for view in report.modes.iter().filter_map(|mode| ModeView::of(report, *mode)) {
        findings.extend(compare_no_endpoints(report, &view));
        findings.extend(no_route_to_target(report, &view));
        findings.extend(one_type_lost(report, &view));
        findings.extend(endpoint_error_rcodes(&view));
        findings.extend(error_rcodes_everywhere(&view));
        findings.extend(loss_everywhere(&view));
        findings.extend(endpoint_lossy(&view));
        findings.extend(cluster_ip_path_loss(report, &view));
        findings.extend(endpoint_slow(report, &view));
        findings.extend(cluster_ip_path_slow(report, &view));
    }
    findings.extend(endpoint_dead(report));
    findings.extend(resolver_workaround(report));
    findings.extend(compare_stopped_early(report));
    if let Some(clean) = compare_clean(report, &findings) {
        findings.insert(0, clean);
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// One mode's targets: the ClusterIP and the endpoints probed directly.
pub(super) struct ModeView<'a> {
    /// Every target of the mode, in report order.
    pub(super) of_mode: Vec<&'a TargetReport>,
    pub(super) cluster: &'a TargetReport,
    pub(super) endpoints: Vec<&'a TargetReport>,
    /// " in MODE mode" when several modes were compared.
    pub(super) in_mode: String,
}

impl<'a> ModeView<'a> {
    /// `None` when the mode has no ClusterIP target (nothing to compare).
    pub(super) fn of(report: &'a CompareReport, mode: Mode) -> Option<Self> {
        let of_mode: Vec<&TargetReport> =
            report.targets.iter().filter(|t| t.mode == mode).collect();
        let cluster = *of_mode.iter().find(|t| t.role == Role::ClusterIp)?;
        let endpoints: Vec<&TargetReport> =
            of_mode.iter().filter(|t| t.role == Role::Endpoint).copied().collect();
        Some(ModeView { of_mode, cluster, endpoints, in_mode: in_mode(report, mode) })
    }

    /// Every target's loss, for evidence.
    fn all_text(&self) -> String {
        self.of_mode.iter().map(|t| t.loss_text()).collect::<Vec<_>>().join("; ")
    }

    /// Whether the ClusterIP and every endpoint lost queries to timeouts
    /// (false without endpoints).
    fn loss_everywhere(&self) -> bool {
        !self.endpoints.is_empty()
            && self.cluster.timed_out() > 0
            && self.endpoints.iter().all(|e| e.timed_out() > 0)
    }

    /// The endpoints that answered nothing, unless every target lost
    /// queries (then `loss-everywhere` says it).
    fn dead_endpoints(&self) -> Vec<&'a TargetReport> {
        if self.loss_everywhere() {
            return Vec::new();
        }
        self.endpoints.iter().filter(|e| e.dead()).copied().collect()
    }
}

/// ` --netns NS` for the commands a remedy names, when the counters were
/// read in another namespace.
pub(super) fn stats_ns_flag(report: &CompareReport) -> String {
    report.header.stats_netns.as_deref().map(|n| format!(" --netns {n}")).unwrap_or_default()
}

/// `compare-no-endpoints`: the mode's Service has no endpoint to compare.
fn compare_no_endpoints(report: &CompareReport, view: &ModeView) -> Option<Finding> {
    if !view.endpoints.is_empty() {
        return None;
    }
    let in_mode = &view.in_mode;
    Some(Finding::new(
        Severity::Critical,
        FindingCode::CompareNoEndpoints,
        format!("{} has no endpoints in the rules: nothing to compare{in_mode}", report.service),
        format!("{}; {}", report.service_from, view.cluster.loss_text()),
        "Check the CoreDNS pods and the Service's EndpointSlices (`kubectl -n kube-system get pods -l k8s-app=kube-dns`, `ctdiag services`); kube-proxy DNATs the ClusterIP once an endpoint is ready",
    ))
}

/// `loss-everywhere`: the ClusterIP and every endpoint lost queries.
fn loss_everywhere(view: &ModeView) -> Option<Finding> {
    if !view.loss_everywhere() {
        return None;
    }
    let in_mode = &view.in_mode;
    let (lost, sent) =
        view.of_mode.iter().fold((0, 0), |(l, s), t| (l + t.timed_out(), s + t.queries_sent));
    Some(Finding::new(
        loss_severity(lost, sent),
        FindingCode::LossEverywhere,
        format!(
            "queries are lost at every target{in_mode}: {lost} of {sent} ({:.1}%) timed out, through the ClusterIP and at each endpoint directly",
            percent(lost, sent)
        ),
        view.all_text(),
        "Not one endpoint and not the DNAT path: look at what every lookup shares: the node's network (`ctdiag stats --watch 1` for conntrack drops, `ip -s link` for interface drops), the pods' network, or CoreDNS's upstream forwarders (`kubectl -n kube-system logs -l k8s-app=kube-dns`)",
    ))
}

/// `endpoint-lossy` for each endpoint that lost some queries to timeouts,
/// not all, while not every target lost queries; an endpoint that loses
/// only one type is `one-type-lost` instead.
fn endpoint_lossy(view: &ModeView) -> Vec<Finding> {
    if view.loss_everywhere() {
        return Vec::new();
    }
    let in_mode = &view.in_mode;
    view.endpoints
        .iter()
        .filter(|endpoint| {
            !endpoint.dead() && endpoint.timed_out() > 0 && lost_type(endpoint).is_none()
        })
        .map(|endpoint| {
            Finding::new(
                loss_severity(endpoint.timed_out(), endpoint.queries_sent),
                FindingCode::EndpointLossy,
                format!(
                    "endpoint {} loses {:.1}% of its queries{in_mode}, probed directly",
                    endpoint.address,
                    endpoint.timed_out_percent()
                ),
                view.all_text(),
                format!(
                    "Check the CoreDNS pod at {}: its logs, CPU throttling and restarts; other endpoints answer, so the node's DNAT path is not the cause",
                    endpoint.address
                ),
            )
        })
        .collect()
}

/// `cluster-ip-path-loss`: queries through the ClusterIP time out while
/// every endpoint probed directly answered everything. Why timeouts only:
/// a query that found no route or got an ICMP error was not lost on the
/// DNAT/conntrack path (`no-route-to-target` says the first).
fn cluster_ip_path_loss(report: &CompareReport, view: &ModeView) -> Option<Finding> {
    let (cluster, endpoints) = (view.cluster, &view.endpoints);
    let endpoints_clean = endpoints.iter().all(|e| e.lost == 0);
    if endpoints.is_empty() || cluster.timed_out() == 0 || !endpoints_clean {
        return None;
    }
    let (in_mode, stats_ns) = (&view.in_mode, stats_ns_flag(report));
    Some(Finding::new(
        loss_severity(cluster.timed_out(), cluster.queries_sent),
        FindingCode::ClusterIpPathLoss,
        format!(
            "queries are lost through the ClusterIP {} only{in_mode}: {} of {} ({:.1}%) timed out; every endpoint probed directly answered everything",
            cluster.address, cluster.timed_out(), cluster.queries_sent, cluster.timed_out_percent()
        ),
        format!("{}; {}; {}", cluster.loss_text(), counters_text(cluster), endpoints.iter().map(|e| e.loss_text()).collect::<Vec<_>>().join("; ")),
        format!(
            "The DNAT/conntrack path loses them: conntrack drops and races (`ctdiag stats{stats_ns} --watch 1`: insert_failed, drop, clash_resolve), stale entries pointing at a gone endpoint (`ctdiag stale{stats_ns}`); a resolv.conf option that avoids the race is measured with `--modes parallel,sequential,reopen,tcp`"
        ),
    ))
}

/// `compare-stopped-early`: a signal or the run cap ended the run.
fn compare_stopped_early(report: &CompareReport) -> Option<Finding> {
    report.stopped_early.then(|| {
        Finding::new(
            Severity::Info,
            FindingCode::CompareStoppedEarly,
            "the comparison stopped before its planned end",
            format!(
                "{} s of lookups; the targets got the rounds that were finished",
                report.duration_s
            ),
            "Use a shorter --duration or a smaller --count",
        )
    })
}

/// `compare-clean`: every target answered every query and no finding so far
/// warns.
fn compare_clean(report: &CompareReport, findings: &[Finding]) -> Option<Finding> {
    if findings.iter().any(|f| f.severity >= Severity::Warning)
        || report.targets.is_empty()
        || !report.targets.iter().all(|t| t.lost == 0)
    {
        return None;
    }
    let p99s: Vec<String> = report
        .targets
        .iter()
        .map(|t| {
            format!("{}{} p99 {} ms", t.address, in_mode(report, t.mode), ms_text(t.latency_ms.p99))
        })
        .collect();
    Some(Finding::new(
        Severity::Info,
        FindingCode::CompareClean,
        format!(
            "the ClusterIP and all {} endpoints answered every query, none slow",
            report.endpoints.len()
        ),
        p99s.join(", "),
        "Nothing to fix on this node's DNS path",
    ))
}

/// `endpoint-dead` once per endpoint that answered nothing, naming the
/// modes (with the ClusterIP of the same mode) it was dead in.
fn endpoint_dead(report: &CompareReport) -> Vec<Finding> {
    let stats_ns = stats_ns_flag(report);
    let dead: Vec<(&TargetReport, &TargetReport)> = report
        .modes
        .iter()
        .filter_map(|mode| ModeView::of(report, *mode))
        .flat_map(|view| {
            let cluster = view.cluster;
            view.dead_endpoints().into_iter().map(move |endpoint| (endpoint, cluster))
        })
        .collect();
    let mut addresses: Vec<&str> = Vec::new();
    for (endpoint, _) in &dead {
        if !addresses.contains(&endpoint.address.as_str()) {
            addresses.push(endpoint.address.as_str());
        }
    }
    addresses
        .into_iter()
        .map(|address| {
            let of: Vec<&(&TargetReport, &TargetReport)> =
                dead.iter().filter(|(e, _)| e.address == address).collect();
            let (lost, sent) = of.iter().fold((0, 0), |(l, s), (e, _)| (l + e.lost, s + e.queries_sent));
            let modes: Vec<&str> = of.iter().map(|(e, _)| e.mode.as_str()).collect();
            let in_modes = if report.modes.len() > 1 {
                format!(" in {} mode", modes.join(", "))
            } else {
                String::new()
            };
            let evidence = of
                .iter()
                .map(|(e, cluster)| {
                    format!(
                        "{}{}: {} of {} queries lost ({}); through the ClusterIP {} of {} lost ({:.1}%)",
                        e.address,
                        in_mode(report, e.mode),
                        e.lost,
                        e.queries_sent,
                        e.outcomes_text(),
                        cluster.lost,
                        cluster.queries_sent,
                        cluster.lost_percent
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let ip = address.rsplit_once(':').map_or(address, |(ip, _)| ip);
            Finding::new(
                Severity::Critical,
                FindingCode::EndpointDead,
                format!("endpoint {address} answers nothing{in_modes}: {lost} of {sent} queries lost{}", how_dead(&of)),
                format!("{evidence}; the ClusterIP loses about the share of lookups kube-proxy sends to this endpoint"),
                format!(
                    "Find the pod behind {address} (`kubectl get pods -A -o wide | grep {ip}`): if it is gone or not ready, the node's rules are stale (`ctdiag services`, kube-proxy's logs); then flush the entries that still point at it (`ctdiag stale{stats_ns}`)"
                ),
            )
        })
        .collect()
}

/// What a dead endpoint's queries met, when one outcome dominates: the
/// kernel of a pod that is up refusing (nothing listens), or silence (the
/// pod is gone, or its packets are dropped).
fn how_dead(of: &[&(&TargetReport, &TargetReport)]) -> &'static str {
    let (refused, silent, sent) = of.iter().fold((0, 0, 0), |(r, t, s), (e, _)| {
        (r + e.outcomes.port_unreachable, t + e.outcomes.timed_out, s + e.queries_sent)
    });
    if refused * 2 > sent {
        " (refused: its host is up, nothing listens on the port)"
    } else if silent * 2 > sent {
        " (silence: its pod is gone or its packets are dropped)"
    } else {
        ""
    }
}

/// `endpoint-slow` for each endpoint whose p99 is far above its peers' or
/// with 1 % or more of its lookups slower than `--slow-ms`.
fn endpoint_slow(report: &CompareReport, view: &ModeView) -> Vec<Finding> {
    view.endpoints.iter().filter_map(|endpoint| slow_endpoint(report, view, endpoint)).collect()
}

/// [`endpoint_slow`] for one endpoint.
fn slow_endpoint(
    report: &CompareReport,
    view: &ModeView,
    endpoint: &TargetReport,
) -> Option<Finding> {
    let (cluster, endpoints, in_mode) = (view.cluster, &view.endpoints, &view.in_mode);
    let (Some(p99), Some(p99_of_two)) = (endpoint.latency_ms.p99, endpoint.p99_of_two()) else {
        return None;
    };
    let peers = median(
        endpoints
            .iter()
            .filter(|p| p.address != endpoint.address)
            .filter_map(|p| p.latency_ms.p99)
            .collect(),
    );
    let factor = peers.map(|peer| p99 / peer.max(0.001));
    let far_above = peers
        .is_some_and(|peer| p99_of_two >= SLOW_FACTOR * peer && p99_of_two - peer >= SLOW_FLOOR_MS);
    let slow_share = endpoint.slow_percent() >= SLOW_SHARE_PERCENT;
    if !far_above && !slow_share {
        return None;
    }
    let compared = match (peers, factor) {
        (Some(peer), Some(factor)) => {
            format!(", {factor:.1}× its peers' ({} ms)", ms_text(Some(peer)))
        }
        _ => String::new(),
    };
    Some(Finding::new(
        Severity::Warning,
        FindingCode::EndpointSlow,
        format!("endpoint {} is slow{in_mode}: p99 {} ms{compared}", endpoint.address, ms_text(Some(p99))),
        format!(
            "{}: p50 {}, p90 {}, p99 {}, max {} ms; {} of {} answered lookups ({:.1}%) took {} ms or longer; ClusterIP {}: p99 {} ms, {} slow",
            endpoint.address,
            ms_text(endpoint.latency_ms.p50),
            ms_text(endpoint.latency_ms.p90),
            ms_text(endpoint.latency_ms.p99),
            ms_text(endpoint.latency_ms.max),
            endpoint.slow_lookups,
            endpoint.fully_answered,
            endpoint.slow_percent(),
            report.slow_ms,
            cluster.address,
            ms_text(cluster.latency_ms.p99),
            cluster.slow_lookups,
        ),
        format!(
            "Check the CoreDNS pod at {}: CPU throttling (its limits), its upstream forwarders and cache hit rate (`kubectl -n kube-system logs` of that pod, its metrics); pods get its slowness for the share of lookups kube-proxy sends there",
            endpoint.address
        ),
    ))
}

/// `cluster-ip-path-slow`: the ClusterIP is slow and no endpoint is.
fn cluster_ip_path_slow(report: &CompareReport, view: &ModeView) -> Option<Finding> {
    let (cluster, endpoints) = (view.cluster, &view.endpoints);
    // Why `<` is the negation of `>=` here: a share is never NaN.
    if endpoints.is_empty()
        || !endpoint_slow(report, view).is_empty()
        || cluster.slow_percent() < SLOW_SHARE_PERCENT
    {
        return None;
    }
    let in_mode = &view.in_mode;
    Some(Finding::new(
        Severity::Warning,
        FindingCode::ClusterIpPathSlow,
        format!(
            "lookups through the ClusterIP {} are slow{in_mode} though no endpoint is: {:.1}% took {} ms or longer",
            cluster.address,
            cluster.slow_percent(),
            report.slow_ms
        ),
        format!(
            "ClusterIP p99 {} ms, max {} ms; endpoints' p99: {}",
            ms_text(cluster.latency_ms.p99),
            ms_text(cluster.latency_ms.max),
            endpoints
                .iter()
                .map(|e| format!("{} {} ms", e.address, ms_text(e.latency_ms.p99)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "The path through the node delays answers: look for retransmissions after drops (`ctdiag stats --watch 1`), and rerun: an endpoint slow only now and then can hide between rounds",
    ))
}

/// With several modes: which resolv.conf option makes the loss through the
/// ClusterIP go away on this node, measured.
fn resolver_workaround(report: &CompareReport) -> Option<Finding> {
    if report.workarounds.len() < 2 {
        return None;
    }
    let losing: Vec<&ModeSummary> =
        report.workarounds.iter().filter(|w| w.cluster_ip_lost > 0).collect();
    if losing.is_empty() {
        return None;
    }
    let describe = |w: &ModeSummary| {
        format!(
            "{} ({}): {} of {} lost through the ClusterIP, {} at the endpoints",
            w.mode.as_str(),
            w.resolv_conf_option.unwrap_or("default"),
            w.cluster_ip_lost,
            w.cluster_ip_queries,
            w.endpoints_lost
        )
    };
    let evidence = report.workarounds.iter().map(describe).collect::<Vec<_>>().join("; ");
    let helping: Vec<&ModeSummary> = report
        .workarounds
        .iter()
        .filter(|w| {
            w.cluster_ip_lost == 0 && w.cluster_ip_queries > 0 && w.resolv_conf_option.is_some()
        })
        .collect();
    let losing_names: Vec<&str> = losing.iter().map(|w| w.mode.as_str()).collect();
    Some(if helping.is_empty() {
        Finding::new(
            Severity::Info,
            FindingCode::ResolverWorkaround,
            format!(
                "no resolv.conf option compared here made the loss through the ClusterIP go away (lost in {} mode)",
                losing_names.join(", ")
            ),
            evidence,
            "The loss does not depend on how the pair of queries is sent, so it is not the parallel A/AAAA race: fix the cause the other findings name instead of the pods' dnsConfig",
        )
    } else {
        let options: Vec<String> =
            helping.iter().filter_map(|w| w.resolv_conf_option.map(|o| format!("`{o}`"))).collect();
        Finding::new(
            Severity::Info,
            FindingCode::ResolverWorkaround,
            format!(
                "on this node {} made the loss through the ClusterIP go away (lost in {} mode)",
                options.join(", "),
                losing_names.join(", ")
            ),
            evidence,
            format!(
                "A workaround for glibc pods until the cause is fixed: add {} to the pods' dnsConfig options; musl (Alpine) ignores these options, so it does not help those pods",
                options.join(" or ")
            ),
        )
    })
}
