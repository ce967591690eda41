//! The `ctdiag stats` report: conntrack counters per CPU and in total, the
//! table fill, `--watch` deltas and rates, and findings explained for the
//! running kernel. Built from a plain [`StatsConfig`]; the command, `doctor`
//! and the renderers all use it from here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{
    CTA_STATS_CHAIN_TOOLONG, CTA_STATS_CLASH_RESOLVE, CTA_STATS_DROP, CTA_STATS_EARLY_DROP,
    CTA_STATS_INSERT_FAILED,
};
use crate::conntrack::{read_stats, read_stats_from, Counters, CpuStats, Source, StatsSnapshot};
use crate::error::Result;
use crate::findings::{Finding, FindingCode, Outcome, Severity};
use crate::kernel::Kernel;
use crate::netns::Netns;

/// Table use above which the table counts as nearly full.
pub const TABLE_NEAR_FULL_PERCENT: f64 = 90.0;

/// Validated `ctdiag stats` settings.
#[derive(Debug, Clone, Default)]
pub struct StatsConfig {
    /// Namespace to read, as the user gave it (path, PID or `ip netns`
    /// name); the current one when `None`.
    pub netns: Option<String>,
    /// Interval of `--watch`.
    pub watch: Option<Duration>,
    /// Number of `--watch` intervals, unbounded when `None`.
    pub count: Option<u64>,
    /// Read procfs even when ctnetlink works.
    pub force_procfs: bool,
}

/// What `ctdiag stats` prints for a one-shot read.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// "netlink" or "procfs".
    pub source: Source,
    /// The namespace read, as given with `--netns`; null for the current one.
    pub netns: Option<String>,
    /// The running kernel (the findings are explained for it).
    pub kernel: Kernel,
    /// Entries in the table now.
    pub entries: u64,
    /// The table limit (`nf_conntrack_max`).
    pub max_entries: u64,
    /// `entries / max_entries` in percent.
    pub used_percent: f64,
    /// Whether this kernel sends `clash_resolve` (>= 5.10 counting).
    pub clash_resolve_supported: bool,
    /// Per-CPU counters, named as `conntrack -S` names them.
    pub cpus: Vec<CpuStats>,
    /// The same counters summed over all CPUs.
    pub total: Counters,
    /// Remarks about how the numbers were read.
    pub notes: Vec<String>,
    /// What the numbers mean.
    pub findings: Vec<Finding>,
}

/// One `--watch` interval.
#[derive(Debug, Clone, Serialize)]
pub struct WatchSample {
    /// 1 for the first interval.
    pub interval: u64,
    /// Measured length of the interval in seconds.
    pub seconds: f64,
    /// "netlink" or "procfs".
    pub source: Source,
    /// The namespace read; null for the current one.
    pub netns: Option<String>,
    /// Entries in the table at the end of the interval.
    pub entries: u64,
    /// The table limit.
    pub max_entries: u64,
    /// `entries / max_entries` in percent.
    pub used_percent: f64,
    /// Per-CPU counter changes during the interval.
    pub cpus: Vec<CpuStats>,
    /// Total counter changes during the interval.
    pub delta: Counters,
    /// `delta / seconds`, per counter.
    pub rate_per_s: BTreeMap<String, f64>,
    /// What the changes mean.
    pub findings: Vec<Finding>,
}

/// Whether counters are totals since boot or changes over a measured window.
#[derive(Debug, Clone, Copy)]
enum Window {
    SinceBoot,
    Interval(f64),
}

impl Window {
    fn describe(self, n: u64) -> String {
        match self {
            Window::SinceBoot => format!("{n} since boot"),
            Window::Interval(secs) => format!("+{n} in {secs:.1} s"),
        }
    }
}

/// Reads once, in `netns` when given.
pub fn read_snapshot(config: &StatsConfig, netns: Option<&Netns>) -> Result<StatsSnapshot> {
    let force_procfs = config.force_procfs;
    let read = move || if force_procfs { read_stats_from(Source::Procfs) } else { read_stats() };
    Ok(crate::netns::run_in(netns, read)??)
}

fn used_percent(entries: u64, max: u64) -> f64 {
    if max == 0 {
        0.0
    } else {
        entries as f64 * 100.0 / max as f64
    }
}

/// Builds the one-shot report with findings for counters since boot.
pub fn report(snapshot: StatsSnapshot, netns: Option<String>, kernel: Kernel) -> StatsReport {
    let total = snapshot.total();
    let clash_resolve_supported = total.has(CTA_STATS_CLASH_RESOLVE);
    let mut findings =
        analyze(&total, snapshot.entries, snapshot.max_entries, Window::SinceBoot, &kernel);
    findings.extend(context_findings(&snapshot, &total, netns.as_deref()));
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    StatsReport {
        source: snapshot.source,
        netns,
        kernel,
        entries: snapshot.entries,
        max_entries: snapshot.max_entries,
        used_percent: used_percent(snapshot.entries, snapshot.max_entries),
        clash_resolve_supported,
        cpus: snapshot.cpus,
        total,
        notes: snapshot.notes,
        findings,
    }
}

/// Findings about how to read the numbers rather than about the numbers.
fn context_findings(
    snapshot: &StatsSnapshot,
    total: &Counters,
    netns: Option<&str>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let quiet = total.0.values().all(|v| *v == 0) && snapshot.entries == 0;
    if quiet {
        let place =
            netns.map_or("this network namespace".to_string(), |n| format!("namespace {n}"));
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::NoConntrackActivity,
            format!("No conntrack activity in {place}"),
            "every counter is 0 and the table is empty",
            "Either nothing has crossed this namespace yet, or it is not where DNAT happens: counters \
             are per network namespace and kube-proxy's DNAT happens in the node's, so run on the \
             node itself (not in a pod) or pass --netns with the node's namespace",
        ));
    } else {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::TotalsSinceBoot,
            "These counters are totals since boot (or since the namespace was created), not what is happening now",
            "a one-shot read of the kernel's counters",
            "Run `ctdiag stats --watch 1` to see which counters move now, and how fast",
        ));
    }
    if !total.has(CTA_STATS_CLASH_RESOLVE) && !total.0.is_empty() {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::NoClashResolveCounter,
            "This kernel does not report clash_resolve (pre-5.10 counting)",
            "the clash_resolve attribute is absent from the kernel's statistics",
            "insert_failed then also counts clashes the kernel resolved (5.6-5.9): compare it with drop \
             before concluding that packets were lost",
        ));
    }
    for note in &snapshot.notes {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::StatsSource,
            note.clone(),
            format!("source: {}", source_name(snapshot.source)),
            "Run as root (CAP_NET_ADMIN) to read the counters over ctnetlink",
        ));
    }
    findings
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Netlink => "netlink",
        Source::Procfs => "procfs",
    }
}

/// The counters and table fill one analysis reads, with the window and the
/// running kernel they are explained for.
struct Signals<'a> {
    insert_failed: u64,
    drop: u64,
    early_drop: u64,
    clash_resolve: u64,
    chaintoolong: u64,
    has_clash_resolve: bool,
    entries: u64,
    max: u64,
    percent: f64,
    near_full: bool,
    rising: bool,
    window: Window,
    kernel: &'a Kernel,
}

impl<'a> Signals<'a> {
    fn read(
        counters: &Counters,
        entries: u64,
        max: u64,
        window: Window,
        kernel: &'a Kernel,
    ) -> Self {
        let value = |attr| counters.get(attr).unwrap_or(0);
        let percent = used_percent(entries, max);
        Signals {
            insert_failed: value(CTA_STATS_INSERT_FAILED),
            drop: value(CTA_STATS_DROP),
            early_drop: value(CTA_STATS_EARLY_DROP),
            clash_resolve: value(CTA_STATS_CLASH_RESOLVE),
            chaintoolong: value(CTA_STATS_CHAIN_TOOLONG),
            has_clash_resolve: counters.has(CTA_STATS_CLASH_RESOLVE),
            entries,
            max,
            percent,
            near_full: max > 0 && percent > TABLE_NEAR_FULL_PERCENT,
            rising: matches!(window, Window::Interval(_)),
            window,
            kernel,
        }
    }

    /// Whether conntrack lost packets (`insert_failed` or `drop` above 0).
    fn dropping(&self) -> bool {
        self.insert_failed > 0 || self.drop > 0
    }

    /// Whether the table is at its limit.
    fn full(&self) -> bool {
        self.max > 0 && self.entries >= self.max
    }
}

/// What the counters say, for totals since boot or for the changes over an
/// interval, explained for the running kernel (feature detection by
/// attribute presence): one function per finding code, in report order.
fn analyze(
    counters: &Counters,
    entries: u64,
    max: u64,
    window: Window,
    kernel: &Kernel,
) -> Vec<Finding> {
    let signals = Signals::read(counters, entries, max, window, kernel);
    [
        conntrack_drops(&signals),
        clashes_resolved(&signals),
        table_full(&signals),
        table_near_full(&signals),
        early_drop(&signals),
        chain_too_long(&signals),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// [`FindingCode::ConntrackDrops`]: `insert_failed` or `drop` above 0,
/// explained for the running kernel.
fn conntrack_drops(s: &Signals) -> Option<Finding> {
    if !s.dropping() {
        return None;
    }
    let severity = if s.rising { Severity::Critical } else { Severity::Warning };
    let kernel = s.kernel;
    let release = &kernel.release;
    let mut cause = if s.has_clash_resolve {
        format!(
            "On this kernel ({release}, it reports clash_resolve) a clash the kernel resolves is not \
             counted in insert_failed: insert_failed counts races it could not resolve, and those \
             packets are dropped, so the lookup waits for the resolver's 5 s timeout"
        )
    } else if kernel.older_than(5, 6) {
        format!(
            "This kernel ({release}) predates UDP clash resolution (5.6): every lost race drops \
             a packet and counts in insert_failed"
        )
    } else {
        format!(
            "On this kernel ({release}, no clash_resolve counter) insert_failed also counts \
             clashes that were resolved; drop counts the packets really lost"
        )
    };
    if kernel.older_than(6, 12) && !kernel.older_than(5, 6) {
        cause.push_str(
            "; kernels before 6.12 still drop clashes in the reply direction (reverse collisions)",
        );
    }
    let (percent, early_drop) = (s.percent, s.early_drop);
    let table_hint = if early_drop > 0 || s.near_full {
        format!("; the table is {percent:.1}% full and early_drop is {early_drop}, so a full table also drops")
    } else {
        String::new()
    };
    Some(Finding::new(
        severity,
        FindingCode::ConntrackDrops,
        format!(
            "conntrack is dropping packets{}: the DNS race of parallel A/AAAA queries or a full table",
            if s.rising { " now" } else { "" }
        ),
        format!(
            "insert_failed {}, drop {}{table_hint}. {cause}",
            s.window.describe(s.insert_failed),
            s.window.describe(s.drop)
        ),
        "Reproduce with `ctdiag probe --mode parallel` from a pod's namespace; mitigate the race with \
         `options single-request-reopen` (glibc) or NodeLocal DNSCache, or TCP for DNS; a kernel >= 5.10 \
         resolves most clashes (reverse-direction clashes since 6.12)",
    ))
}

/// [`FindingCode::ClashesResolved`]: clashes counted, none lost (only when
/// [`conntrack_drops`] has nothing to say).
fn clashes_resolved(s: &Signals) -> Option<Finding> {
    if s.dropping() || s.clash_resolve == 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Info,
        FindingCode::ClashesResolved,
        "Parallel A/AAAA races happen and the kernel resolves every one of them",
        format!("clash_resolve {}, insert_failed 0, drop 0", s.window.describe(s.clash_resolve)),
        "Nothing to do: no packet was lost to a clash. If lookups still take 5 s, look at stale \
         entries and dead endpoints (`ctdiag probe`)",
    ))
}

/// [`FindingCode::TableFull`]: the table at `nf_conntrack_max`.
fn table_full(s: &Signals) -> Option<Finding> {
    if !s.full() {
        return None;
    }
    let (entries, max) = (s.entries, s.max);
    Some(Finding::new(
        Severity::Critical,
        FindingCode::TableFull,
        "The conntrack table is full: new flows (DNS queries included) are dropped",
        format!(
            "{entries} of {max} entries (100%), early_drop {}",
            s.window.describe(s.early_drop)
        ),
        "Raise net.netfilter.nf_conntrack_max (and nf_conntrack_buckets), or find what fills the \
         table: `conntrack -L | awk '{print $1, $4}' | sort | uniq -c | sort -rn | head`",
    ))
}

/// [`FindingCode::TableNearFull`]: above [`TABLE_NEAR_FULL_PERCENT`] but not
/// full (then [`table_full`] speaks).
fn table_near_full(s: &Signals) -> Option<Finding> {
    if s.full() || !s.near_full {
        return None;
    }
    let (entries, max, percent) = (s.entries, s.max, s.percent);
    Some(Finding::new(
        Severity::Warning,
        FindingCode::TableNearFull,
        format!("The conntrack table is {percent:.1}% full"),
        format!("{entries} of {max} entries (over {TABLE_NEAR_FULL_PERCENT}%)"),
        "Raise net.netfilter.nf_conntrack_max before it fills up and starts dropping new flows",
    ))
}

/// [`FindingCode::EarlyDrop`]: entries evicted because the table was full.
fn early_drop(s: &Signals) -> Option<Finding> {
    if s.early_drop == 0 {
        return None;
    }
    let severity = if s.near_full || s.rising { Severity::Warning } else { Severity::Info };
    let (entries, max, percent) = (s.entries, s.max, s.percent);
    Some(Finding::new(
        severity,
        FindingCode::EarlyDrop,
        "conntrack evicted entries early because the table was full",
        format!(
            "early_drop {}; the table is {percent:.1}% full now ({entries} of {max})",
            s.window.describe(s.early_drop)
        ),
        "The table reached nf_conntrack_max at some point: raise net.netfilter.nf_conntrack_max",
    ))
}

/// [`FindingCode::ChainTooLong`]: inserts refused on a too-long hash chain.
fn chain_too_long(s: &Signals) -> Option<Finding> {
    if s.chaintoolong == 0 {
        return None;
    }
    Some(Finding::new(
        Severity::Warning,
        FindingCode::ChainTooLong,
        "conntrack refused inserts because a hash chain grew too long",
        format!("chaintoolong {}", s.window.describe(s.chaintoolong)),
        "The hash table is small for the number of entries (or someone floods one bucket): raise \
         nf_conntrack_buckets (/sys/module/nf_conntrack/parameters/hashsize)",
    ))
}

/// Runs `--watch`: reads every interval, hands each sample to `on_sample`,
/// and returns whether any interval found a problem. Stops after `count`
/// intervals, when `stop` is set (the command routes SIGINT/SIGTERM to it),
/// or when `on_sample` returns false (its reader is gone); the sample it was
/// given counts in the outcome.
pub fn watch(
    config: &StatsConfig,
    netns: Option<&Netns>,
    interval: Duration,
    stop: &AtomicBool,
    mut on_sample: impl FnMut(&WatchSample) -> Result<bool>,
) -> Result<Outcome> {
    let kernel = Kernel::running();
    let mut before = read_snapshot(config, netns)?;
    let mut taken = Instant::now();
    let mut outcome = Outcome::Clean;
    let mut n = 0;
    while config.count.is_none_or(|count| n < count) {
        if !sleep_unless_stopped(interval, stop) {
            break;
        }
        let now = read_snapshot(config, netns)?;
        let seconds = taken.elapsed().as_secs_f64();
        taken = Instant::now();
        n += 1;
        let sample = sample(n, seconds, &before, &now, config.netns.clone(), &kernel);
        if crate::findings::has_problem(&sample.findings) {
            outcome = Outcome::Problem;
        }
        if !on_sample(&sample)? {
            break;
        }
        before = now;
    }
    Ok(outcome)
}

/// Builds the sample of one interval from two readings.
fn sample(
    interval: u64,
    seconds: f64,
    before: &StatsSnapshot,
    now: &StatsSnapshot,
    netns: Option<String>,
    kernel: &Kernel,
) -> WatchSample {
    let cpus: Vec<CpuStats> = now
        .cpus
        .iter()
        .map(|cpu| {
            let then = before.cpus.iter().find(|c| c.cpu == cpu.cpu);
            let counters = match then {
                Some(then) => cpu.counters.delta_since(&then.counters),
                // A CPU that came online during the interval: all of its
                // counts are new.
                None => cpu.counters.clone(),
            };
            CpuStats { cpu: cpu.cpu, counters }
        })
        .collect();
    let mut delta = Counters::default();
    for cpu in &cpus {
        delta.accumulate(&cpu.counters);
    }
    let rate_per_s = delta
        .named()
        .map(|(name, value)| {
            (name.into_owned(), if seconds > 0.0 { value as f64 / seconds } else { 0.0 })
        })
        .collect();
    let findings = analyze(&delta, now.entries, now.max_entries, Window::Interval(seconds), kernel);
    WatchSample {
        interval,
        seconds,
        source: now.source,
        netns,
        entries: now.entries,
        max_entries: now.max_entries,
        used_percent: used_percent(now.entries, now.max_entries),
        cpus,
        delta,
        rate_per_s,
        findings,
    }
}

/// Sleeps for `duration` in short steps; false when `stop` was set.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + duration;
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Reads the counters twice, `interval` apart, and builds the sample of
/// that window: what is happening now, not totals since boot (`doctor`).
/// `stop` (checked every 100 ms) cuts the window short; the sample then
/// covers the time that passed.
pub fn interval_sample(
    config: &StatsConfig,
    netns: Option<&Netns>,
    interval: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<WatchSample> {
    let kernel = Kernel::running();
    let before = read_snapshot(config, netns)?;
    let taken = Instant::now();
    let deadline = taken + interval;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    let now = read_snapshot(config, netns)?;
    let seconds = taken.elapsed().as_secs_f64();
    Ok(sample(1, seconds, &before, &now, config.netns.clone(), &kernel))
}

/// Reads once in the configured namespace and builds the one-shot report.
pub fn report_once(config: &StatsConfig) -> Result<StatsReport> {
    let netns = config.netns.as_deref().map(Netns::open).transpose()?;
    let snapshot = read_snapshot(config, netns.as_ref())?;
    Ok(report(snapshot, config.netns.clone(), Kernel::running()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(pairs: &[(u16, u64)]) -> Counters {
        Counters(pairs.iter().copied().collect())
    }

    fn k618() -> Kernel {
        Kernel::from_release("6.18.0")
    }

    fn codes(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn clash_resolve_without_drops_is_info_only() {
        let c = counters(&[
            (CTA_STATS_INSERT_FAILED, 0),
            (CTA_STATS_DROP, 0),
            (CTA_STATS_CLASH_RESOLVE, 240),
        ]);
        let f = analyze(&c, 10, 1000, Window::Interval(1.0), &k618());
        assert_eq!(codes(&f), vec!["clashes-resolved"]);
        assert!(!crate::findings::has_problem(&f));
    }

    #[test]
    fn rising_insert_failed_is_critical_and_explained_for_kernel() {
        let with = counters(&[
            (CTA_STATS_INSERT_FAILED, 3),
            (CTA_STATS_DROP, 3),
            (CTA_STATS_CLASH_RESOLVE, 0),
        ]);
        let f = analyze(&with, 10, 1000, Window::Interval(2.0), &k618());
        assert_eq!(f[0].code, "conntrack-drops");
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(f[0].evidence.contains("+3 in 2.0 s"), "{}", f[0].evidence);
        assert!(f[0].evidence.contains("could not resolve"));
        let without = counters(&[(CTA_STATS_INSERT_FAILED, 3), (CTA_STATS_DROP, 0)]);
        let f = analyze(&without, 10, 1000, Window::SinceBoot, &k618());
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].evidence.contains("also counts clashes that were resolved"));
    }

    #[test]
    fn old_kernels_get_their_own_explanation() {
        let c = counters(&[(CTA_STATS_INSERT_FAILED, 7), (CTA_STATS_DROP, 7)]);
        let old = analyze(&c, 1, 100, Window::SinceBoot, &Kernel::from_release("4.19.0"));
        assert!(old[0].evidence.contains("predates UDP clash resolution"), "{}", old[0].evidence);
        let mid = counters(&[(CTA_STATS_INSERT_FAILED, 7), (CTA_STATS_CLASH_RESOLVE, 0)]);
        let f = analyze(&mid, 1, 100, Window::SinceBoot, &Kernel::from_release("5.15.0"));
        assert!(f[0].evidence.contains("reverse collisions"), "{}", f[0].evidence);
        assert!(f[0].evidence.contains("5.15.0"));
    }

    #[test]
    fn table_fill_thresholds() {
        let c = counters(&[(CTA_STATS_EARLY_DROP, 5), (CTA_STATS_DROP, 0)]);
        assert!(
            codes(&analyze(&c, 950, 1000, Window::SinceBoot, &k618())).contains(&"table-near-full")
        );
        assert!(codes(&analyze(&c, 1000, 1000, Window::SinceBoot, &k618())).contains(&"table-full"));
        let low = analyze(&c, 10, 1000, Window::SinceBoot, &k618());
        assert!(!codes(&low).contains(&"table-near-full"));
        let early = low.iter().find(|f| f.code == "early-drop").unwrap();
        assert_eq!(early.severity, Severity::Info);
    }

    #[test]
    fn chaintoolong_warns() {
        let c = counters(&[(CTA_STATS_CHAIN_TOOLONG, 1)]);
        assert_eq!(codes(&analyze(&c, 0, 100, Window::SinceBoot, &k618())), vec!["chain-too-long"]);
    }

    #[test]
    fn report_flags_missing_clash_counter_and_idle_namespace() {
        let snapshot = StatsSnapshot {
            source: Source::Procfs,
            cpus: vec![CpuStats { cpu: 0, counters: counters(&[(CTA_STATS_INSERT_FAILED, 0)]) }],
            entries: 0,
            max_entries: 100,
            notes: vec!["ctnetlink was refused".into()],
        };
        let r = report(snapshot, Some("/proc/1/ns/net".into()), k618());
        let c = codes(&r.findings);
        assert!(c.contains(&"no-conntrack-activity"));
        assert!(c.contains(&"no-clash-resolve-counter"));
        assert!(c.contains(&"stats-source"));
        assert!(!r.clash_resolve_supported);
    }

    #[test]
    fn watch_sample_deltas_and_rates() {
        let snap = |found, clash| StatsSnapshot {
            source: Source::Netlink,
            cpus: vec![
                CpuStats {
                    cpu: 0,
                    counters: counters(&[(2, found), (CTA_STATS_CLASH_RESOLVE, clash)]),
                },
                CpuStats { cpu: 1, counters: counters(&[(2, 1), (CTA_STATS_CLASH_RESOLVE, 0)]) },
            ],
            entries: 5,
            max_entries: 100,
            notes: vec![],
        };
        let s = sample(1, 2.0, &snap(10, 1), &snap(30, 5), None, &k618());
        assert_eq!(s.delta.get(2), Some(20));
        assert_eq!(s.delta.get(CTA_STATS_CLASH_RESOLVE), Some(4));
        assert_eq!(s.rate_per_s["found"], 10.0);
        assert_eq!(codes(&s.findings), vec!["clashes-resolved"]);
    }

    #[test]
    fn a_wrapped_counter_is_a_rise_not_zero() {
        let max = u64::from(u32::MAX);
        let snap = |insert_failed| StatsSnapshot {
            source: Source::Netlink,
            cpus: vec![CpuStats {
                cpu: 0,
                counters: counters(&[
                    (CTA_STATS_INSERT_FAILED, insert_failed),
                    (CTA_STATS_DROP, 0),
                    (CTA_STATS_CLASH_RESOLVE, 0),
                ]),
            }],
            entries: 5,
            max_entries: 100,
            notes: vec![],
        };
        let s = sample(1, 1.0, &snap(max - 1), &snap(3), None, &k618());
        assert_eq!(s.delta.get(CTA_STATS_INSERT_FAILED), Some(5));
        assert_eq!(s.cpus[0].counters.get(CTA_STATS_INSERT_FAILED), Some(5));
        assert_eq!(s.findings[0].code, FindingCode::ConntrackDrops);
        assert_eq!(s.findings[0].severity, Severity::Critical);
    }
}

#[cfg(test)]
mod finding_tests;
