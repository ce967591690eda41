//! One finding code per case: a synthetic engine result (and counter
//! delta) in, the finding and its severity out, through the same
//! [`build_report`] a run uses. A coverage test checks that every code of
//! `probe` is produced here.

use std::collections::BTreeMap;

use super::*;
use crate::dns::engine::{self, EngineResult, Mode};
use crate::dns::histogram::LatencyHistogram;
use crate::dns::wire::parse_name;
use crate::findings::{FindingCode, Severity};

fn config(cluster_endpoints: Option<Vec<SocketAddr>>) -> ProbeConfig {
    let server: SocketAddr = "198.19.0.10:53".parse().unwrap();
    ProbeConfig {
        engine: EngineConfig {
            server,
            names: vec![parse_name(DEFAULT_NAME).unwrap()],
            mode: Mode::Parallel,
            count: Some(200),
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
        slow_from: "1/5 of the resolver's 5 s timeout (glibc defaults)".into(),
        server_from: "kube-system/kube-dns:dns ClusterIP (iptables-save in node)".into(),
        names: vec![DEFAULT_NAME.into()],
        netns: None,
        stats_netns: Some("node".into()),
        resolver: ResolverOptions { timeout_s: 5, attempts: 2, source: "glibc defaults".into() },
        cluster_endpoints,
    }
}

/// 100 lookups, all answered with NOERROR.
fn clean() -> EngineResult {
    let mut r = EngineResult { lookups: 100, ..EngineResult::default() };
    for t in &mut r.by_type {
        *t = engine::TypeCounts { sent: 100, answered: 100, lost: 0 };
    }
    r.rcodes.insert("NOERROR".into(), 200);
    for us in 1..=100 {
        r.latency.record_us(us * 100);
    }
    r.elapsed = Duration::from_secs(1);
    r
}

/// `clean()` with `lost` lookups losing their AAAA answer (timed out).
fn losing_aaaa(lost: u64) -> EngineResult {
    let mut r = clean();
    r.by_type[1].answered -= lost;
    r.by_type[1].lost = lost;
    r.outcomes.timed_out = lost;
    r.one_lost_lookups = lost;
    r.rcodes.insert("NOERROR".into(), 200 - lost);
    r
}

fn delta(insert_failed: u64, drop: u64, clash_resolve: u64) -> ConntrackDelta {
    ConntrackDelta {
        insert_failed: Some(insert_failed),
        drop: Some(drop),
        early_drop: Some(0),
        clash_resolve: Some(clash_resolve),
    }
}

type Case = (
    &'static str,
    ProbeConfig,
    EngineResult,
    std::result::Result<ConntrackDelta, String>,
    FindingCode,
    Severity,
);

fn cases() -> Vec<Case> {
    let quiet = || Ok(delta(0, 0, 0));
    let mut cases: Vec<Case> = Vec::new();
    let mut no_endpoints = losing_aaaa(0);
    no_endpoints.by_type = [engine::TypeCounts { sent: 100, answered: 0, lost: 100 }; 2];
    no_endpoints.rcodes.clear();
    no_endpoints.outcomes.timed_out = 200;
    no_endpoints.both_lost_lookups = 100;
    no_endpoints.latency = LatencyHistogram::new();
    cases.push((
        "kube-dns without endpoints",
        config(Some(vec![])),
        no_endpoints,
        quiet(),
        FindingCode::ClusterDnsNoEndpoints,
        Severity::Critical,
    ));
    cases.push((
        "answers lost while insert_failed rose",
        config(None),
        losing_aaaa(5),
        Ok(delta(5, 5, 0)),
        FindingCode::ConntrackRaceDrops,
        Severity::Critical,
    ));
    let mut refused = losing_aaaa(10);
    refused.outcomes.timed_out = 0;
    refused.outcomes.port_unreachable = 10;
    cases.push((
        "ICMP errors for most lost queries",
        config(None),
        refused,
        quiet(),
        FindingCode::DnsEndpointUnreachable,
        Severity::Critical,
    ));
    cases.push((
        "5 % lost, conntrack clean",
        config(Some(vec!["198.18.2.2:53".parse().unwrap()])),
        losing_aaaa(10),
        quiet(),
        FindingCode::DnsQueriesLost,
        Severity::Critical,
    ));
    cases.push((
        "0.5 % lost, conntrack clean",
        config(None),
        losing_aaaa(1),
        quiet(),
        FindingCode::DnsQueriesLost,
        Severity::Warning,
    ));
    cases.push((
        "races resolved, nothing lost",
        config(None),
        clean(),
        Ok(delta(0, 0, 7)),
        FindingCode::ConntrackClashesResolved,
        Severity::Info,
    ));
    cases.push((
        "all answered",
        config(None),
        clean(),
        quiet(),
        FindingCode::NoLoss,
        Severity::Info,
    ));
    cases.push((
        "drops by other traffic",
        config(None),
        clean(),
        Ok(delta(0, 2, 0)),
        FindingCode::ConntrackDropsElsewhere,
        Severity::Warning,
    ));
    let mut slow = clean();
    for _ in 0..3 {
        slow.latency.record_us(1_500_000);
    }
    slow.slow_lookups = 3;
    cases.push((
        "3 % slower than --slow-ms",
        config(None),
        slow,
        quiet(),
        FindingCode::SlowAnswers,
        Severity::Warning,
    ));
    let mut slow = clean();
    slow.slow_lookups = 1;
    slow.beyond_resolver_timeout = 1;
    slow.latency.record_us(5_500_000);
    cases.push((
        "one answer after the resolver timeout",
        config(None),
        slow,
        quiet(),
        FindingCode::SlowAnswers,
        Severity::Warning,
    ));
    let mut servfail = clean();
    servfail.rcodes.insert("NOERROR".into(), 190);
    servfail.rcodes.insert("SERVFAIL".into(), 10);
    cases.push((
        "SERVFAIL answers",
        config(None),
        servfail,
        quiet(),
        FindingCode::DnsErrorRcodes,
        Severity::Warning,
    ));
    let mut nxdomain = clean();
    nxdomain.rcodes = BTreeMap::from([("NXDOMAIN".to_string(), 200)]);
    cases.push((
        "NXDOMAIN answers",
        config(None),
        nxdomain,
        quiet(),
        FindingCode::NameDoesNotExist,
        Severity::Info,
    ));
    let mut stray = clean();
    stray.stray.late = 1;
    cases.push((
        "a late packet",
        config(None),
        stray,
        quiet(),
        FindingCode::StrayPackets,
        Severity::Info,
    ));
    cases.push((
        "counters unreadable",
        config(None),
        clean(),
        Err("ctnetlink refused the request".into()),
        FindingCode::ConntrackCountersUnavailable,
        Severity::Info,
    ));
    let mut interrupted = clean();
    interrupted.interrupted = true;
    cases.push((
        "interrupted",
        config(None),
        interrupted,
        quiet(),
        FindingCode::StoppedEarly,
        Severity::Info,
    ));
    cases
}

#[test]
fn each_case_produces_its_finding_with_its_severity() {
    for (name, config, result, delta, code, severity) in cases() {
        let report = build_report(&config, &result, delta, None);
        let found = report
            .findings
            .iter()
            .find(|f| f.code == code)
            .unwrap_or_else(|| panic!("{name}: no {code} in {:?}", report.findings));
        assert_eq!(found.severity, severity, "{name}: {found:?}");
        assert!(
            code.severities().contains(&severity),
            "{name}: {severity:?} not declared for {code}"
        );
        assert!(
            !found.summary.is_empty() && !found.evidence.is_empty() && !found.remedy.is_empty()
        );
        // Most severe first, and the verdict is the first finding.
        assert!(report.findings.windows(2).all(|w| w[0].severity >= w[1].severity), "{name}");
        assert_eq!(report.verdict, report.findings[0].summary, "{name}");
        // Every finding of a case is one `probe` declares, at a declared severity.
        for f in &report.findings {
            assert_eq!(f.code.command(), "probe", "{name}: {f:?}");
            assert!(f.code.severities().contains(&f.severity), "{name}: {f:?}");
        }
    }
}

#[test]
fn every_probe_code_is_produced_by_a_case() {
    let produced: Vec<FindingCode> = cases().iter().map(|c| c.4).collect();
    for code in FindingCode::ALL.iter().filter(|c| c.command() == "probe") {
        assert!(produced.contains(code), "no case in dns::probe::finding_tests produces {code}");
        for severity in code.severities() {
            assert!(
                cases().iter().any(|c| c.4 == *code && c.5 == *severity),
                "no case produces {code} as {severity:?}"
            );
        }
    }
}

#[test]
fn slow_answers_need_a_share_and_say_the_percentiles() {
    let mut few = clean();
    few.latency.record_us(1_500_000);
    few.slow_lookups = 1;
    let report = build_report(&config(None), &few, Ok(delta(0, 0, 0)), None);
    assert!(
        report.findings.iter().all(|f| f.code != FindingCode::SlowAnswers),
        "1 of 101 is under 1 %: {:?}",
        report.findings
    );
    assert_eq!((report.slow_lookups, report.slow_ms), (1, 1000));
    let mut many = clean();
    for _ in 0..10 {
        many.latency.record_us(1_500_000);
    }
    many.slow_lookups = 10;
    let eps = vec!["198.18.2.2:53".parse().unwrap(), "198.18.3.2:53".parse().unwrap()];
    let report = build_report(&config(Some(eps)), &many, Ok(delta(0, 0, 0)), None);
    let slow = report.findings.iter().find(|f| f.code == FindingCode::SlowAnswers).unwrap();
    assert!(slow.summary.starts_with("10 of 110 answered lookups (9.1%) took 1000 ms"), "{slow:?}");
    assert!(
        slow.evidence.contains("p99 1500.") && slow.evidence.contains("max 1500.000"),
        "{slow:?}"
    );
    assert!(slow.evidence.contains("0 lookups answered only after"), "{slow:?}");
    assert!(slow.remedy.contains("ctdiag compare") && slow.remedy.contains("198.18.3.2:53"));
    assert_eq!(report.resolver_timeout_lookups, 0, "1.5 s is within the 5 s timeout");
}

#[test]
fn the_remedy_of_a_loss_names_each_endpoint() {
    let eps: Vec<SocketAddr> =
        vec!["198.18.2.2:53".parse().unwrap(), "198.18.3.2:53".parse().unwrap()];
    let report = build_report(&config(Some(eps)), &losing_aaaa(10), Ok(delta(0, 0, 0)), None);
    let lost = &report.findings[0];
    assert_eq!(lost.code, FindingCode::DnsQueriesLost);
    for ep in ["198.18.2.2:53", "198.18.3.2:53"] {
        assert!(lost.remedy.contains(&format!("ctdiag probe --server {ep}")), "{lost:?}");
    }
    // One-of-the-pair loss with conntrack clean points away from the race.
    assert!(lost.evidence.contains("the loss is elsewhere"), "{lost:?}");
}

#[test]
fn only_timeouts_are_lost_queries() {
    // 10 lookups lost their AAAA query to a send failure, not to silence:
    // no dns-queries-lost, and the evidence names the outcome.
    let mut failed = losing_aaaa(10);
    failed.outcomes.timed_out = 0;
    failed.outcomes.send_failed = 10;
    let report = build_report(&config(None), &failed, Ok(delta(0, 0, 0)), None);
    assert!(
        report.findings.iter().all(|f| f.code != FindingCode::DnsQueriesLost),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.outcomes.send_failed, 10);
    // Half of them timed out: those count, and only those.
    let mut half = losing_aaaa(10);
    half.outcomes.timed_out = 5;
    half.outcomes.send_failed = 5;
    let report = build_report(&config(None), &half, Ok(delta(0, 0, 0)), None);
    let lost = report.findings.iter().find(|f| f.code == FindingCode::DnsQueriesLost).unwrap();
    assert!(lost.summary.starts_with("5 of 200 queries lost (2.5%, timed out)"), "{lost:?}");
    assert!(lost.evidence.contains("5 timed out") && lost.evidence.contains("5 send failures"));
}

#[test]
fn the_no_answer_sentence_names_what_happened() {
    let mut none = EngineResult { lookups: 5, ..EngineResult::default() };
    none.by_type = [engine::TypeCounts { sent: 5, answered: 0, lost: 5 }; 2];
    none.outcomes.no_route = 10;
    let no_route = crate::dns::route::NoRoute {
        errno: crate::dns::route::errno_name(libc::ENETUNREACH),
        route_get: "`ip route get 198.19.0.10`: RTNETLINK answers: Network is unreachable".into(),
    };
    let mut c = config(Some(vec!["198.18.2.2:53".parse().unwrap()]));
    c.netns = Some("node".into());
    let said = no_answer_sentence(&c, &none, Some(&no_route));
    assert!(said.contains("10 could not leave this namespace"), "{said}");
    assert!(said.contains("ENETUNREACH") && said.contains("RTNETLINK answers"), "{said}");
    assert!(said.contains("namespace node has no route to 198.19.0.10"), "{said}");
    assert!(!said.contains("ICMP"), "{said}");
    none.outcomes.no_route = 0;
    none.outcomes.port_unreachable = 10;
    let said = no_answer_sentence(&c, &none, None);
    assert!(said.contains("10 were refused with ICMP port unreachable"), "{said}");
    c.engine.mode = Mode::Tcp;
    assert!(no_answer_sentence(&c, &none, None).contains("with a TCP reset"));
}
