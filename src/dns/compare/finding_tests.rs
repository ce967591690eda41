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
        r.timed_out = 200;
        return r;
    }
    r.by_type[0] = TypeCounts { sent: 100, answered: 100, lost: 0 };
    r.by_type[1] = TypeCounts { sent: 100, answered: 100 - lost, lost };
    r.one_lost_lookups = lost;
    r.timed_out = lost;
    r.latency = LatencyHistogram::new();
    for i in 0..(100 - lost) {
        r.latency.record_us(if i < slow { 1_500_000 } else { ms * 1000 });
    }
    r.slow_lookups = slow;
    r.elapsed = Duration::from_secs(1);
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
