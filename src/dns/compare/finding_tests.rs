//! One case per finding code and severity: synthetic engine results per
//! target in, the finding out, through the same [`build_report`] a run
//! uses. A coverage test checks that every code of `compare` is produced.

use super::findings::analyze;
use super::*;
use crate::dns::engine::TypeCounts;
use crate::dns::histogram::LatencyHistogram;
use crate::dns::probe::MAX_RUN;
use crate::dns::wire::parse_name;
use crate::findings::{Finding, FindingCode, Severity};

const CLUSTER: &str = "198.19.0.10:53";
const EP1: &str = "198.18.2.2:53";
const EP2: &str = "198.18.3.2:53";

fn config(modes: &[Mode], endpoints: &[&str]) -> CompareConfig {
    let cluster_ip: SocketAddr = CLUSTER.parse().unwrap();
    let endpoints: Vec<SocketAddr> = endpoints.iter().map(|e| e.parse().unwrap()).collect();
    let mut targets = vec![Target { address: cluster_ip, role: Role::ClusterIp }];
    targets.extend(endpoints.iter().map(|e| Target { address: *e, role: Role::Endpoint }));
    CompareConfig {
        service: "kube-system/kube-dns".into(),
        service_from: "iptables-save in node".into(),
        cluster_ip,
        endpoints,
        plans: modes
            .iter()
            .map(|m| ModePlan {
                mode: *m,
                service_port: "kube-system/kube-dns:dns".into(),
                targets: targets.clone(),
            })
            .collect(),
        engine: EngineConfig {
            server: cluster_ip,
            names: vec![parse_name("kubernetes.default.svc.cluster.local").unwrap()],
            mode: modes[0],
            count: Some(100),
            duration: None,
            rate: 200.0,
            concurrency: 32,
            timeout: Duration::from_secs(2),
            linger: Duration::from_secs(1),
            max_run: MAX_RUN,
            slow_after: Duration::from_secs(1),
            resolver_timeout: Duration::from_secs(5),
            retry_after: None,
        },
        count: Some(100),
        duration: None,
        rounds: 5,
        names: vec!["kubernetes.default.svc.cluster.local".into()],
        netns: Some("client".into()),
        stats_netns: Some("node".into()),
        resolver: ResolverOptions { timeout_s: 5, attempts: 2, source: "glibc defaults".into() },
        slow_from: "1/5 of the resolver's 5 s timeout".into(),
    }
}

/// 100 lookups: `lost` of them lose their AAAA query (all of them when
/// `lost` is 100: both), the others answered in `ms` milliseconds
/// (`slow` of them in 1500 ms).
fn result(lost: u64, ms: u64, slow: u64) -> EngineResult {
    let mut r = EngineResult { lookups: 100, ..EngineResult::default() };
    if lost == 100 {
        r.by_type = [TypeCounts { sent: 100, answered: 0, lost: 100 }; 2];
        r.both_lost_lookups = 100;
        r.outcomes.timed_out = 200;
        return r;
    }
    r.by_type[0] = TypeCounts { sent: 100, answered: 100, lost: 0 };
    r.by_type[1] = TypeCounts { sent: 100, answered: 100 - lost, lost };
    r.one_lost_lookups = lost;
    r.outcomes.timed_out = lost;
    r.outcomes.answered = 200 - lost;
    r.rcodes.insert("NOERROR".into(), 200 - lost);
    r.latency = LatencyHistogram::new();
    for i in 0..(100 - lost) {
        r.latency.record_us(if i < slow { 1_500_000 } else { ms * 1000 });
    }
    r.slow_lookups = slow;
    r.elapsed = Duration::from_secs(1);
    r
}

/// 100 lookups whose 200 queries all found no route (connect failed).
fn no_route() -> EngineResult {
    let mut r = EngineResult { lookups: 100, ..EngineResult::default() };
    r.by_type = [TypeCounts { sent: 100, answered: 0, lost: 100 }; 2];
    r.both_lost_lookups = 100;
    r.outcomes.no_route = 200;
    r.no_route_errno = Some(libc::ENETUNREACH);
    r
}

/// 100 lookups answered in 1 ms, every AAAA query lost (timed out).
fn aaaa_dropped() -> EngineResult {
    let mut r = EngineResult { lookups: 100, ..EngineResult::default() };
    r.by_type[0] = TypeCounts { sent: 100, answered: 100, lost: 0 };
    r.by_type[1] = TypeCounts { sent: 100, answered: 0, lost: 100 };
    r.one_lost_lookups = 100;
    r.outcomes.answered = 100;
    r.outcomes.timed_out = 100;
    r.rcodes.insert("NOERROR".into(), 100);
    r.elapsed = Duration::from_secs(1);
    r
}

/// `result(0, 1, 0)` with `n` of its 200 answers `rcode` instead of NOERROR.
fn answering(rcode: &str, n: u64) -> EngineResult {
    let mut r = result(0, 1, 0);
    r.rcodes.insert("NOERROR".into(), 200 - n);
    r.rcodes.insert(rcode.into(), n);
    r.rcodes.retain(|_, count| *count > 0);
    r
}

/// 100 lookups, every query refused by the endpoint's kernel (ICMP port
/// unreachable: the pod is up, nothing listens).
fn port_unreachable() -> EngineResult {
    let mut r = EngineResult { lookups: 100, ..EngineResult::default() };
    r.by_type = [TypeCounts { sent: 100, answered: 0, lost: 100 }; 2];
    r.both_lost_lookups = 100;
    r.outcomes.port_unreachable = 200;
    r
}

/// The report for per-mode (cluster, endpoints...) results.
fn report(modes: &[Mode], per_mode: &[Vec<EngineResult>], endpoints: &[&str]) -> CompareReport {
    let config = config(modes, endpoints);
    let mut targets = Vec::new();
    for (plan, results) in config.plans.iter().zip(per_mode) {
        for (target, result) in plan.targets.iter().zip(results) {
            let delta = ConntrackDelta {
                insert_failed: Some(0),
                drop: Some(0),
                early_drop: Some(0),
                clash_resolve: Some(0),
            };
            targets.push(TargetReport::new(*target, plan.mode, result, Some(delta)));
        }
    }
    build_report(&config, targets, "read around each batch".into(), Duration::from_secs(3), false)
}

fn one(per: Vec<EngineResult>) -> CompareReport {
    report(&[Mode::Parallel], &[per], &[EP1, EP2])
}

type Case = (&'static str, CompareReport, FindingCode, Severity);

fn cases() -> Vec<Case> {
    let ok = || result(0, 1, 0);
    let mut stopped = one(vec![ok(), ok(), ok()]);
    stopped.stopped_early = true;
    stopped.findings = analyze(&stopped);
    vec![
        (
            "dead endpoint",
            one(vec![result(50, 1, 0), ok(), result(100, 0, 0)]),
            FindingCode::EndpointDead,
            Severity::Critical,
        ),
        (
            "lossy endpoint",
            one(vec![result(10, 1, 0), result(20, 1, 0), ok()]),
            FindingCode::EndpointLossy,
            Severity::Critical,
        ),
        (
            "one loss at an endpoint",
            one(vec![ok(), result(1, 1, 0), ok()]),
            FindingCode::EndpointLossy,
            Severity::Warning,
        ),
        (
            "slow endpoint",
            one(vec![result(0, 1, 50), ok(), result(0, 1, 100)]),
            FindingCode::EndpointSlow,
            Severity::Warning,
        ),
        (
            "loss through the ClusterIP only",
            one(vec![result(5, 1, 0), ok(), ok()]),
            FindingCode::ClusterIpPathLoss,
            Severity::Critical,
        ),
        (
            "one loss through the ClusterIP",
            one(vec![result(1, 1, 0), ok(), ok()]),
            FindingCode::ClusterIpPathLoss,
            Severity::Warning,
        ),
        (
            "slow through the ClusterIP only",
            one(vec![result(0, 1, 10), ok(), ok()]),
            FindingCode::ClusterIpPathSlow,
            Severity::Warning,
        ),
        (
            "loss everywhere",
            one(vec![result(10, 1, 0), result(10, 1, 0), result(10, 1, 0)]),
            FindingCode::LossEverywhere,
            Severity::Critical,
        ),
        (
            "one loss everywhere",
            one(vec![result(1, 1, 0), result(1, 1, 0), result(1, 1, 0)]),
            FindingCode::LossEverywhere,
            Severity::Warning,
        ),
        (
            "no endpoints",
            report(&[Mode::Parallel], &[vec![result(100, 0, 0)]], &[]),
            FindingCode::CompareNoEndpoints,
            Severity::Critical,
        ),
        (
            "reopen makes the loss go away",
            report(
                &[Mode::Parallel, Mode::Reopen],
                &[vec![result(5, 1, 0), ok(), ok()], vec![ok(), ok(), ok()]],
                &[EP1, EP2],
            ),
            FindingCode::ResolverWorkaround,
            Severity::Info,
        ),
        (
            "no route to the ClusterIP",
            one(vec![no_route(), ok(), ok()]),
            FindingCode::NoRouteToTarget,
            Severity::Warning,
        ),
        (
            "an endpoint drops AAAA",
            one(vec![result(50, 1, 0), ok(), aaaa_dropped()]),
            FindingCode::OneTypeLost,
            Severity::Critical,
        ),
        (
            "an endpoint answers SERVFAIL only",
            one(vec![answering("SERVFAIL", 100), ok(), answering("SERVFAIL", 200)]),
            FindingCode::EndpointErrorRcodes,
            Severity::Critical,
        ),
        (
            "an endpoint answers REFUSED now and then",
            one(vec![answering("REFUSED", 5), ok(), answering("REFUSED", 10)]),
            FindingCode::EndpointErrorRcodes,
            Severity::Warning,
        ),
        (
            "every target answers SERVFAIL",
            one(vec![
                answering("SERVFAIL", 200),
                answering("SERVFAIL", 200),
                answering("SERVFAIL", 200),
            ]),
            FindingCode::ErrorRcodesEverywhere,
            Severity::Critical,
        ),
        (
            "every target answers some SERVFAIL",
            one(vec![
                answering("SERVFAIL", 10),
                answering("SERVFAIL", 3),
                answering("SERVFAIL", 30),
            ]),
            FindingCode::ErrorRcodesEverywhere,
            Severity::Warning,
        ),
        ("healthy", one(vec![ok(), ok(), ok()]), FindingCode::CompareClean, Severity::Info),
        ("stopped early", stopped, FindingCode::CompareStoppedEarly, Severity::Info),
    ]
}

#[test]
fn each_case_produces_its_finding_with_its_severity() {
    for (name, report, code, severity) in cases() {
        let found = report
            .findings
            .iter()
            .find(|f| f.code == code)
            .unwrap_or_else(|| panic!("{name}: no {code} in {:#?}", report.findings));
        assert_eq!(found.severity, severity, "{name}: {found:?}");
        assert!(
            !found.summary.is_empty() && !found.evidence.is_empty() && !found.remedy.is_empty()
        );
        assert!(report.findings.windows(2).all(|w| w[0].severity >= w[1].severity), "{name}");
        for f in &report.findings {
            assert_eq!(f.code.command(), "compare", "{name}: {f:?}");
            assert!(f.code.severities().contains(&f.severity), "{name}: {f:?}");
        }
    }
}

#[test]
fn every_compare_code_is_produced_by_a_case() {
    let cases = cases();
    for code in FindingCode::ALL.iter().filter(|c| c.command() == "compare") {
        for severity in code.severities() {
            assert!(
                cases.iter().any(|c| c.2 == *code && c.3 == *severity),
                "no case in dns::compare::finding_tests produces {code} as {severity:?}"
            );
        }
    }
}

#[test]
fn findings_name_the_right_endpoint_and_nothing_else() {
    let dead = one(vec![result(50, 1, 0), result(0, 1, 0), result(100, 0, 0)]);
    let codes: Vec<FindingCode> = dead.findings.iter().map(|f| f.code).collect();
    assert_eq!(codes, vec![FindingCode::EndpointDead], "{:#?}", dead.findings);
    assert!(dead.findings[0].summary.contains(EP2) && !dead.findings[0].summary.contains(EP1));
    assert_eq!(dead.verdict, dead.findings[0].summary);
    let slow = one(vec![result(0, 1, 50), result(0, 1, 0), result(0, 1, 100)]);
    let codes: Vec<FindingCode> = slow.findings.iter().map(|f| f.code).collect();
    assert_eq!(codes, vec![FindingCode::EndpointSlow], "the ClusterIP is not flagged too");
    let f = &slow.findings[0];
    assert!(f.summary.contains(EP2) && f.summary.contains("× its peers'"), "{f:?}");
    // A 4 ms p99 next to a 1 ms one is noise, not a slow endpoint.
    let noise = one(vec![result(0, 1, 0), result(0, 1, 0), result(0, 4, 0)]);
    assert_eq!(noise.findings[0].code, FindingCode::CompareClean, "{:#?}", noise.findings);
}

/// 20 lookups answered in 1 ms, but `stalls` of them in 80 ms (below
/// the 1 s slow threshold: only the p99 against the peers' can flag it).
fn twenty_with_stalls(stalls: u64) -> EngineResult {
    let mut r = EngineResult { lookups: 20, ..EngineResult::default() };
    r.by_type = [TypeCounts { sent: 20, answered: 20, lost: 0 }; 2];
    for i in 0..20 {
        r.latency.record_us(if i < stalls { 80_000 } else { 1_000 });
    }
    r.elapsed = Duration::from_secs(1);
    r
}

#[test]
fn one_stalled_lookup_alone_never_makes_an_endpoint_slow() {
    // With 20 lookups the p99 is the slowest one: a single 80 ms stall
    // (a busy node) would be "80× its peers'".
    let once = one(vec![twenty_with_stalls(0), twenty_with_stalls(0), twenty_with_stalls(1)]);
    let codes: Vec<FindingCode> = once.findings.iter().map(|f| f.code).collect();
    assert_eq!(codes, vec![FindingCode::CompareClean], "{:#?}", once.findings);
    let twice = one(vec![twenty_with_stalls(0), twenty_with_stalls(0), twenty_with_stalls(2)]);
    let codes: Vec<FindingCode> = twice.findings.iter().map(|f| f.code).collect();
    assert_eq!(codes, vec![FindingCode::EndpointSlow], "{:#?}", twice.findings);
    assert!(twice.findings[0].summary.contains(EP2), "{:?}", twice.findings[0]);
    assert_eq!(twice.targets[2].second_slowest_ms, Some(80.0));
    assert_eq!(once.targets[2].second_slowest_ms, Some(1.0));
}

#[test]
fn a_dead_endpoint_in_several_modes_is_one_finding() {
    let dead = || vec![result(50, 1, 0), result(0, 1, 0), result(100, 0, 0)];
    let r = report(&[Mode::Parallel, Mode::Tcp], &[dead(), dead()], &[EP1, EP2]);
    let dead: Vec<&Finding> =
        r.findings.iter().filter(|f| f.code == FindingCode::EndpointDead).collect();
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(dead[0].summary.contains("in parallel, tcp mode: 400 of 400"), "{:?}", dead[0]);
    let workaround = r.findings.iter().find(|f| f.code == FindingCode::ResolverWorkaround).unwrap();
    assert!(workaround.summary.starts_with("no resolv.conf option"), "{workaround:?}");
}

#[test]
fn batches_spread_the_count_over_the_rounds() {
    let mut c = config(&[Mode::Parallel], &[EP1]);
    c.count = Some(12);
    c.rounds = 5;
    let counts: Vec<u64> = (0..5).map(|r| c.batch_count(r).unwrap()).collect();
    assert_eq!(counts, vec![3, 3, 2, 2, 2]);
    c.count = None;
    c.duration = Some(Duration::from_secs(10));
    assert_eq!(c.batch_duration(), Some(Duration::from_secs(1)), "10 s over 5 rounds of 2 targets");
}

fn ok() -> EngineResult {
    result(0, 1, 0)
}

fn codes(report: &CompareReport) -> Vec<FindingCode> {
    report.findings.iter().map(|f| f.code).collect()
}

#[test]
fn no_route_is_never_loss_on_the_path() {
    let r = one(vec![no_route(), ok(), ok()]);
    assert_eq!(codes(&r), vec![FindingCode::NoRouteToTarget], "{:#?}", r.findings);
    let f = &r.findings[0];
    assert!(f.summary.contains("the ClusterIP 198.19.0.10:53"), "{f:?}");
    assert!(f.evidence.contains("200 without a route"), "{f:?}");
    assert!(f.remedy.contains("--probe-netns"), "{f:?}");
    assert_eq!(r.targets[0].outcomes.no_route, 200);
    assert_eq!(r.targets[0].no_route_errno, Some(libc::ENETUNREACH));
    // An endpoint without a route is not dead either.
    let r = one(vec![result(50, 1, 0), ok(), no_route()]);
    assert!(!codes(&r).contains(&FindingCode::EndpointDead), "{:#?}", r.findings);
    assert!(codes(&r).contains(&FindingCode::NoRouteToTarget), "{:#?}", r.findings);
}

#[test]
fn nothing_listening_and_gone_are_both_dead_and_told_apart() {
    let refused = one(vec![result(50, 1, 0), ok(), port_unreachable()]);
    let gone = one(vec![result(50, 1, 0), ok(), result(100, 0, 0)]);
    for (r, outcome, how) in [
        (&refused, "200 ICMP port unreachable", "(refused: its host is up, nothing listens"),
        (&gone, "200 timed out", "(silence: its pod is gone"),
    ] {
        let dead: Vec<&Finding> =
            r.findings.iter().filter(|f| f.code == FindingCode::EndpointDead).collect();
        assert_eq!(dead.len(), 1, "{:#?}", r.findings);
        assert!(dead[0].summary.contains(EP2), "{:?}", dead[0]);
        assert!(dead[0].evidence.contains(outcome), "{outcome}: {:?}", dead[0]);
        assert!(dead[0].summary.contains(how), "{how}: {:?}", dead[0]);
    }
    assert_eq!(refused.targets[2].outcomes.port_unreachable, 200);
    assert_eq!(gone.targets[2].outcomes.timed_out, 200);
}

#[test]
fn one_type_lost_names_the_endpoint_the_type_and_the_resolvers() {
    let r = one(vec![result(50, 1, 0), ok(), aaaa_dropped()]);
    let f = r.findings.iter().find(|f| f.code == FindingCode::OneTypeLost).unwrap();
    assert!(f.summary.contains(EP2) && f.summary.contains("AAAA queries only"), "{f:?}");
    assert!(f.summary.contains("100 of 100 (100.0%)"), "{f:?}");
    assert!(f.evidence.contains("glibc") && f.evidence.contains("5 s"), "{f:?}");
    assert!(f.evidence.contains("musl") && f.evidence.contains("2.5 s"), "{f:?}");
    assert!(f.remedy.contains("no-aaaa"), "{f:?}");
    // Not also endpoint-lossy or dead for the same endpoint.
    assert!(!codes(&r).contains(&FindingCode::EndpointLossy), "{:#?}", r.findings);
    assert!(!codes(&r).contains(&FindingCode::EndpointDead), "{:#?}", r.findings);
    assert_eq!(r.targets[2].lost_by_type.get("AAAA"), Some(&100));
    assert_eq!(r.targets[2].lost_by_type.get("A"), Some(&0));
    // Through the ClusterIP, one of the pair lost is the race's signature:
    // no one-type-lost for it.
    let race = one(vec![result(50, 1, 0), ok(), ok()]);
    assert!(!codes(&race).contains(&FindingCode::OneTypeLost), "{:#?}", race.findings);
    // A few losses of one type by chance are not a server dropping it.
    let chance = one(vec![ok(), result(3, 1, 0), ok()]);
    assert!(!codes(&chance).contains(&FindingCode::OneTypeLost), "{:#?}", chance.findings);
}

#[test]
fn a_server_that_answers_errors_is_never_dead() {
    let r = one(vec![answering("SERVFAIL", 100), ok(), answering("SERVFAIL", 200)]);
    assert!(!codes(&r).contains(&FindingCode::EndpointDead), "{:#?}", r.findings);
    let f = r.findings.iter().find(|f| f.code == FindingCode::EndpointErrorRcodes).unwrap();
    assert!(f.summary.contains(EP2) && !f.summary.contains(EP1), "{f:?}");
    assert!(f.summary.contains("SERVFAIL 200"), "{f:?}");
    assert_eq!(r.targets[2].rcodes.get("SERVFAIL"), Some(&200));
    // All SERVFAIL: everywhere, and no endpoint singled out.
    let all = one(vec![
        answering("SERVFAIL", 200),
        answering("SERVFAIL", 200),
        answering("SERVFAIL", 200),
    ]);
    assert_eq!(codes(&all), vec![FindingCode::ErrorRcodesEverywhere], "{:#?}", all.findings);
}
