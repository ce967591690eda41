//! One finding code per case: synthetic counters in, the finding and its
//! severity out, through the same [`report`] (totals since boot) and
//! `sample` (a `--watch` interval) a run uses. A coverage test checks that
//! every code of `stats` is produced here.

use super::*;

/// Every counter of a 6.18 kernel at 0, with `set` applied.
fn counters(set: &[(u16, u64)]) -> Counters {
    let mut c =
        Counters((1..=15).filter(|a| ![1, 3, 5, 6, 7].contains(a)).map(|a| (a, 0)).collect());
    for (attr, value) in set {
        c.0.insert(*attr, *value);
    }
    c
}

fn snapshot(counters: Counters, entries: u64, max: u64) -> StatsSnapshot {
    StatsSnapshot {
        source: Source::Netlink,
        cpus: vec![CpuStats { cpu: 0, counters }],
        entries,
        max_entries: max,
        notes: vec![],
    }
}

/// Totals since boot (`ctdiag stats`).
fn since_boot(snapshot: StatsSnapshot) -> Vec<Finding> {
    report(snapshot, None, Kernel::from_release("6.18.0")).findings
}

/// One `--watch` interval of 1 s from all-zero counters to `now`.
fn interval(now: StatsSnapshot) -> Vec<Finding> {
    let before = snapshot(counters(&[]), now.entries, now.max_entries);
    sample(1, 1.0, &before, &now, None, &Kernel::from_release("6.18.0")).findings
}

fn cases() -> Vec<(&'static str, Vec<Finding>, FindingCode, Severity)> {
    let busy = || counters(&[(CTA_STATS_CLASH_RESOLVE, 3)]);
    let mut procfs = snapshot(busy(), 10, 1000);
    procfs.source = Source::Procfs;
    procfs.notes.push("ctnetlink refused the request (CAP_NET_ADMIN is needed)".into());
    let mut pre_5_10 = counters(&[(CTA_STATS_INSERT_FAILED, 0)]);
    pre_5_10.0.remove(&CTA_STATS_CLASH_RESOLVE);
    pre_5_10.0.remove(&CTA_STATS_CHAIN_TOOLONG);
    pre_5_10.0.insert(crate::conntrack::stats::CTA_STATS_FOUND, 9);
    vec![
        (
            "insert_failed since boot",
            since_boot(snapshot(counters(&[(CTA_STATS_INSERT_FAILED, 4)]), 10, 1000)),
            FindingCode::ConntrackDrops,
            Severity::Warning,
        ),
        (
            "drop rising now",
            interval(snapshot(counters(&[(CTA_STATS_DROP, 4)]), 10, 1000)),
            FindingCode::ConntrackDrops,
            Severity::Critical,
        ),
        (
            "clashes resolved",
            interval(snapshot(busy(), 10, 1000)),
            FindingCode::ClashesResolved,
            Severity::Info,
        ),
        (
            "table at its limit",
            since_boot(snapshot(busy(), 1000, 1000)),
            FindingCode::TableFull,
            Severity::Critical,
        ),
        (
            "table 95 % full",
            since_boot(snapshot(busy(), 950, 1000)),
            FindingCode::TableNearFull,
            Severity::Warning,
        ),
        (
            "early_drop since boot, table low",
            since_boot(snapshot(counters(&[(CTA_STATS_EARLY_DROP, 2)]), 10, 1000)),
            FindingCode::EarlyDrop,
            Severity::Info,
        ),
        (
            "early_drop rising now",
            interval(snapshot(counters(&[(CTA_STATS_EARLY_DROP, 2)]), 10, 1000)),
            FindingCode::EarlyDrop,
            Severity::Warning,
        ),
        (
            "chaintoolong",
            interval(snapshot(counters(&[(CTA_STATS_CHAIN_TOOLONG, 1)]), 10, 1000)),
            FindingCode::ChainTooLong,
            Severity::Warning,
        ),
        (
            "no clash_resolve attribute",
            since_boot(snapshot(pre_5_10, 10, 1000)),
            FindingCode::NoClashResolveCounter,
            Severity::Info,
        ),
        (
            "a one-shot read",
            since_boot(snapshot(busy(), 10, 1000)),
            FindingCode::TotalsSinceBoot,
            Severity::Info,
        ),
        (
            "all zero, empty table",
            since_boot(snapshot(counters(&[]), 0, 1000)),
            FindingCode::NoConntrackActivity,
            Severity::Info,
        ),
        ("procfs fallback", since_boot(procfs), FindingCode::StatsSource, Severity::Info),
    ]
}

#[test]
fn each_case_produces_its_finding_with_its_severity() {
    for (name, findings, code, severity) in cases() {
        let found = findings
            .iter()
            .find(|f| f.code == code)
            .unwrap_or_else(|| panic!("{name}: no {code} in {findings:?}"));
        assert_eq!(found.severity, severity, "{name}: {found:?}");
        assert!(
            !found.summary.is_empty() && !found.evidence.is_empty() && !found.remedy.is_empty()
        );
        for f in &findings {
            assert_eq!(f.code.command(), "stats", "{name}: {f:?}");
            assert!(f.code.severities().contains(&f.severity), "{name}: {f:?}");
        }
    }
}

#[test]
fn every_stats_code_is_produced_by_a_case() {
    let cases = cases();
    for code in FindingCode::ALL.iter().filter(|c| c.command() == "stats") {
        for severity in code.severities() {
            assert!(
                cases.iter().any(|c| c.2 == *code && c.3 == *severity),
                "no case in conntrack::stats_report::finding_tests produces {code} as {severity:?}"
            );
        }
    }
}
