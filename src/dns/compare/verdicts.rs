//! The compare findings that read how queries ended, per type and per
//! rcode, rather than how many were lost: a target this namespace has no
//! route to, an endpoint that loses one record type only, endpoints that
//! answer with errors. One function per finding code.

use crate::findings::{Finding, FindingCode, Severity};

use super::findings::{loss_severity, ModeView};
use super::report::{CompareReport, TargetReport};
use super::Role;

/// `one-type-lost` needs this share (percent) of one type's queries lost...
pub const ONE_TYPE_SHARE_PERCENT: u64 = 25;
/// ...and at least this many of them, while the other type lost none.
/// Why a share and a floor: random loss of a few queries often falls on
/// one type by chance; a server or middlebox that drops a type drops most
/// of them.
pub const ONE_TYPE_MIN_LOST: u64 = 2;

/// The record type a target loses alone, with how many of it were lost:
/// `None` when both types lose queries, or too few of one were lost.
pub(super) fn lost_type(target: &TargetReport) -> Option<(&'static str, u64)> {
    [("A", "AAAA"), ("AAAA", "A")].into_iter().find_map(|(qtype, other)| {
        let lost = target.lost_of(qtype);
        let alone = target.lost_of(other) == 0
            && lost >= ONE_TYPE_MIN_LOST
            && lost * 100 >= ONE_TYPE_SHARE_PERCENT * target.lookups;
        alone.then_some((qtype, lost))
    })
}

/// What to call a target in a sentence: `the ClusterIP X` or `endpoint X`.
fn named(target: &TargetReport) -> String {
    match target.role {
        Role::ClusterIp => format!("the ClusterIP {}", target.address),
        Role::Endpoint => format!("endpoint {}", target.address),
    }
}

/// `no-route-to-target` for each target whose queries could not leave
/// this namespace: `connect`/`send` failed at once, so nothing about the
/// path, the DNAT or the server was measured.
pub(super) fn no_route_to_target(report: &CompareReport, view: &ModeView) -> Vec<Finding> {
    let place = report.header.netns.as_deref().unwrap_or("the namespace ctdiag ran in");
    view.of_mode
        .iter()
        .filter(|t| t.outcomes.no_route > 0)
        .map(|target| {
            let why = match &target.no_route {
                Some(no_route) => format!("{}; {}", no_route.errno, no_route.route_get),
                None => "connect()/send() failed with a routing error".into(),
            };
            let ip = target.address.rsplit_once(':').map_or(target.address.as_str(), |(ip, _)| ip);
            Finding::new(
                Severity::Warning,
                FindingCode::NoRouteToTarget,
                format!(
                    "no route to {}{}: {} of {} queries never left {place}",
                    named(target),
                    view.in_mode,
                    target.outcomes.no_route,
                    target.queries_sent
                ),
                format!(
                    "{why}; {}; these queries are not counted as lost on the path (no packet was sent)",
                    target.loss_text()
                ),
                format!(
                    "Not a DNS or conntrack failure: {place} has no route to {ip}. On a node, check its routes (`ip route`, `ip route get {ip}`): lookups from the node itself and from hostNetwork pods need one; to measure what pods see, probe from a pod's namespace (`ctdiag compare --netns POD`, `ctdiag doctor --probe-netns POD`)"
                ),
            )
        })
        .collect()
}

/// `one-type-lost` for each endpoint that loses one record type only,
/// probed directly (through the ClusterIP a one-of-the-pair loss is the
/// race's signature, which the path findings weigh).
pub(super) fn one_type_lost(report: &CompareReport, view: &ModeView) -> Vec<Finding> {
    let resolver = &report.resolver;
    let retry_s = f64::from(resolver.timeout_s) / f64::from(resolver.attempts.max(1));
    view.endpoints
        .iter()
        .filter_map(|endpoint| lost_type(endpoint).map(|found| (endpoint, found)))
        .map(|(endpoint, (qtype, lost))| {
            let other = if qtype == "A" { "AAAA" } else { "A" };
            let share = lost as f64 * 100.0 / endpoint.lookups.max(1) as f64;
            Finding::new(
                loss_severity(lost, endpoint.queries_sent),
                FindingCode::OneTypeLost,
                format!(
                    "endpoint {} loses {qtype} queries only{}: {lost} of {} ({share:.1}%), every {other} query answered",
                    endpoint.address, view.in_mode, endpoint.lookups
                ),
                format!(
                    "{}: lost by type A {}, AAAA {}; {}; a pod's resolver waits for the missing answer: glibc (A and AAAA in parallel) waits its whole timeout ({} s, from {}) and then sends both again, musl sends the unanswered query again every timeout/attempts ({retry_s:.1} s) until its timeout: each such lookup stalls for seconds",
                    endpoint.address,
                    endpoint.lost_of("A"),
                    endpoint.lost_of("AAAA"),
                    endpoint.outcomes_text(),
                    resolver.timeout_s,
                    resolver.source
                ),
                format!(
                    "Look at the server side of {}: a CoreDNS plugin, upstream or firewall/middlebox that drops {qtype} queries (its logs, the `forward` upstreams); where the pods do not need {qtype} answers, glibc 2.36+ can skip the query with `options no-aaaa` in the pods' dnsConfig",
                    endpoint.address
                ),
            )
        })
        .collect()
}

/// `endpoint-error-rcodes` for each endpoint answering errors (SERVFAIL,
/// REFUSED, ...) while a peer answers without them: warning, critical when
/// every answer is an error. The endpoint answers, so it is not dead.
pub(super) fn endpoint_error_rcodes(view: &ModeView) -> Vec<Finding> {
    let clean_peer = |endpoint: &TargetReport| {
        view.endpoints.iter().any(|p| {
            p.address != endpoint.address
                && p.error_answers() == 0
                && p.rcodes.get("NOERROR").is_some_and(|n| *n > 0)
        })
    };
    view.endpoints
        .iter()
        .filter(|e| e.error_answers() > 0 && clean_peer(e))
        .map(|endpoint| {
            let errors = endpoint.error_answers();
            let peers: Vec<String> = view
                .endpoints
                .iter()
                .filter(|p| p.address != endpoint.address)
                .map(|p| format!("{}: {}", p.address, p.rcodes_text()))
                .collect();
            Finding::new(
                if errors == endpoint.answered { Severity::Critical } else { Severity::Warning },
                FindingCode::EndpointErrorRcodes,
                format!(
                    "endpoint {} answers with errors{}: {errors} of {} answers ({}), while its peers answer NOERROR",
                    endpoint.address,
                    view.in_mode,
                    endpoint.answered,
                    endpoint.rcodes_text()
                ),
                format!(
                    "{}: {}; peers: {}; through the ClusterIP {}: {}",
                    endpoint.address,
                    endpoint.rcodes_text(),
                    peers.join("; "),
                    view.cluster.address,
                    view.cluster.rcodes_text()
                ),
                format!(
                    "That CoreDNS pod answers but fails: read its logs (find it with `kubectl get pods -A -o wide | grep {}`), check its upstream forwarders and its Corefile; the node's DNAT/conntrack path is not the cause (the server answered)",
                    endpoint.address.rsplit_once(':').map_or(endpoint.address.as_str(), |(ip, _)| ip)
                ),
            )
        })
        .collect()
}

/// `error-rcodes-everywhere`: the ClusterIP and every endpoint answer with
/// errors: CoreDNS itself or its upstream, not this node's conntrack;
/// critical when every answer of every target is an error.
pub(super) fn error_rcodes_everywhere(view: &ModeView) -> Option<Finding> {
    if view.endpoints.is_empty() || !view.of_mode.iter().all(|t| t.error_answers() > 0) {
        return None;
    }
    let (errors, answers) =
        view.of_mode.iter().fold((0, 0), |(e, a), t| (e + t.error_answers(), a + t.answered));
    Some(Finding::new(
        if errors == answers { Severity::Critical } else { Severity::Warning },
        FindingCode::ErrorRcodesEverywhere,
        format!(
            "every target answers with errors{}: {errors} of {answers} answers were SERVFAIL, REFUSED or the like, through the ClusterIP and at each endpoint directly",
            view.in_mode
        ),
        view.of_mode
            .iter()
            .map(|t| format!("{} {}: {}", t.role.as_str(), t.address, t.rcodes_text()))
            .collect::<Vec<_>>()
            .join("; "),
        "CoreDNS itself or its upstream fails, not this node's conntrack or DNAT (every server answered): read CoreDNS's logs (`kubectl -n kube-system logs -l k8s-app=kube-dns`), check its `forward` upstreams and the Corefile, and that the name asked is one it should answer",
    ))
}
