//! The `ctdiag probe` report: resolver-faithful A/AAAA lookups, one fresh
//! socket per lookup, with the conntrack counter deltas the probes caused as
//! the kernel's own evidence. Built from a plain [`ProbeConfig`]; the
//! command, `compare`, `doctor` and the renderers use it from here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::conntrack::stats::{
    CTA_STATS_CLASH_RESOLVE, CTA_STATS_DROP, CTA_STATS_EARLY_DROP, CTA_STATS_INSERT_FAILED,
};
use crate::conntrack::{read_stats, Counters};
use crate::dns::engine::{self, EngineConfig, EngineResult, Mode, SocketUse, StrayCounts};
use crate::dns::histogram::LatencyHistogram;
use crate::dns::resolv::{ResolvConf, DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT_S};
use crate::error::{Error, Result};
use crate::findings::{Finding, FindingCode, Severity};
use crate::netns::{run_in, Netns};

/// The name looked up when no `--name` is given.
pub const DEFAULT_NAME: &str = "kubernetes.default.svc.cluster.local";
/// Lookups when neither `--count` nor `--duration` is given.
pub const DEFAULT_COUNT: u64 = 200;
/// The most lookups one run may make.
pub const MAX_COUNT: u64 = 10_000_000;
/// Hard cap on the time spent starting lookups.
pub const MAX_RUN: Duration = Duration::from_secs(3600);
/// Highest `--rate` accepted.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Highest `--concurrency` accepted (each lookup holds a socket).
pub const MAX_CONCURRENCY: usize = 1024;
/// Longest `--timeout` accepted, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// How long a socket with a timed-out query stays open to count late
/// answers, at most.
pub const MAX_LINGER: Duration = Duration::from_secs(1);
/// The default `--slow-ms` is the resolver's timeout divided by this.
pub const SLOW_FRACTION_OF_RESOLVER_TIMEOUT: u64 = 5;
/// `slow-answers` warns when at least this share (percent) of the
/// answered lookups are slow.
pub const SLOW_SHARE_PERCENT: f64 = 1.0;
/// Upper bounds (ms) of the latency histogram buckets; the last bucket is
/// open.
pub const HISTOGRAM_BOUNDS_MS: &[f64] =
    &[0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];

/// Validated `ctdiag probe` settings.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// What the engine does.
    pub engine: EngineConfig,
    /// Where the server came from: `--server`, the kube-dns rules, or the
    /// resolv.conf read.
    pub server_from: String,
    /// The names as the user typed them.
    pub names: Vec<String>,
    /// Namespace of the probe sockets.
    pub netns: Option<String>,
    /// Namespace whose conntrack counters are read.
    pub stats_netns: Option<String>,
    /// The resolver's timeout and attempts (from resolv.conf or glibc's defaults).
    pub resolver: ResolverOptions,
    /// Where the slow-answer threshold (`engine.slow_after`) came from.
    pub slow_from: String,
    /// The endpoints behind the server when it is the kube-dns ClusterIP
    /// found in the rules; `None` for a server from elsewhere.
    pub cluster_endpoints: Option<Vec<SocketAddr>>,
}

/// The pod resolver's retry settings, to tell which lookups would have
/// waited a timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolverOptions {
    /// `options timeout:`, seconds.
    pub timeout_s: u32,
    /// `options attempts:`.
    pub attempts: u32,
    /// The file read, or "glibc defaults".
    pub source: String,
}

pub fn resolver_options(conf: &ResolvConf, path: &Path) -> ResolverOptions {
    ResolverOptions {
        timeout_s: conf.timeout_s,
        attempts: conf.attempts,
        source: path.display().to_string(),
    }
}

/// The resolver options of the resolv.conf at `path`, or glibc's defaults
/// when it cannot be read.
pub fn resolver_options_or_defaults(path: &Path) -> ResolverOptions {
    match ResolvConf::read(path) {
        Ok(conf) => resolver_options(&conf, path),
        Err(_) => ResolverOptions {
            timeout_s: DEFAULT_TIMEOUT_S,
            attempts: DEFAULT_ATTEMPTS,
            source: "glibc defaults".into(),
        },
    }
}

/// Latency percentiles of fully answered lookups (first send to last
/// answer), in milliseconds; null when no lookup was fully answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Slowest.
    pub max: Option<f64>,
}

/// One histogram bucket: lookups with latency at most `le_ms` (and above
/// the previous bucket's bound); `le_ms` null for the open last bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramBucket {
    /// Upper bound in milliseconds, null = infinity.
    pub le_ms: Option<f64>,
    /// Lookups in this bucket.
    pub count: u64,
}

/// The four conntrack counters that tell a race, as changed during the
/// probe; a field is null when the kernel does not have that counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConntrackDelta {
    /// A new entry could not be inserted (the race's loser on old kernels).
    pub insert_failed: Option<u64>,
    /// Packets dropped by conntrack.
    pub drop: Option<u64>,
    /// Entries evicted because the table was full.
    pub early_drop: Option<u64>,
    /// Clashes the kernel resolved (>= 5.10).
    pub clash_resolve: Option<u64>,
}

impl ConntrackDelta {
    /// The four counters out of a delta of all counters.
    pub(crate) fn from_counters(delta: &Counters) -> Self {
        ConntrackDelta {
            insert_failed: delta.get(CTA_STATS_INSERT_FAILED),
            drop: delta.get(CTA_STATS_DROP),
            early_drop: delta.get(CTA_STATS_EARLY_DROP),
            clash_resolve: delta.get(CTA_STATS_CLASH_RESOLVE),
        }
    }

    /// insert_failed + drop: the counters that mean a packet died.
    pub fn drops(&self) -> u64 {
        self.insert_failed.unwrap_or(0) + self.drop.unwrap_or(0)
    }
}

/// What `ctdiag probe` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The server probed, IP:PORT.
    pub server: String,
    /// Where the server came from: `--server`, the kube-dns rules, or the
    /// resolv.conf read.
    pub server_from: String,
    /// The endpoints the node's rules send the ClusterIP to, when the server
    /// came from those rules; null otherwise.
    pub cluster_endpoints: Option<Vec<String>>,
    /// The resolver behaviour imitated.
    pub mode: Mode,
    /// Namespace of the probe sockets; null for the current one.
    pub netns: Option<String>,
    /// Namespace whose conntrack counters were read; null for the current one.
    pub stats_netns: Option<String>,
    /// Names looked up, in turn.
    pub names: Vec<String>,
    /// Lookups made (each one fresh socket, an A and an AAAA query).
    pub lookups: u64,
    /// Queries sent (or attempted).
    pub queries_sent: u64,
    /// Queries answered (matching source, ID and question; TC unset).
    pub answered: u64,
    /// Queries without an answer: timed out, ICMP error or send failure.
    pub lost: u64,
    /// Lost queries per type (`A`, `AAAA`).
    pub lost_by_type: BTreeMap<String, u64>,
    /// Lookups that lost exactly one of their two queries: the race signature.
    pub one_lost_lookups: u64,
    /// Lookups that lost both queries.
    pub both_lost_lookups: u64,
    /// Queries that failed with an ICMP error (port/host unreachable).
    pub refused: u64,
    /// Queries that timed out.
    pub timed_out: u64,
    /// Queries that could not be sent, or whose TCP connection closed.
    pub send_errors: u64,
    /// Answers per rcode.
    pub rcodes: BTreeMap<String, u64>,
    /// Packets received but not taken as answers.
    pub stray: StrayCounts,
    /// Lookup latency percentiles (ms) of fully answered lookups.
    pub latency_ms: Latency,
    /// Lookup latency histogram (ms).
    pub latency_histogram: Vec<HistogramBucket>,
    /// The pod resolver's timeout settings used for `resolver_timeout_lookups`.
    pub resolver: ResolverOptions,
    /// Lookups that would have made the resolver wait its timeout: a query
    /// lost, or an answer slower than the timeout.
    pub resolver_timeout_lookups: u64,
    /// The slow-answer threshold, ms (`--slow-ms`).
    pub slow_ms: u64,
    /// Where `slow_ms` came from: `--slow-ms`, or a fifth of the resolver's
    /// timeout.
    pub slow_from: String,
    /// Fully answered lookups that took `slow_ms` or longer (counted
    /// exactly).
    pub slow_lookups: u64,
    /// Queries sent again because they were unanswered (`musl` mode:
    /// every timeout/attempts); not counted in `queries_sent`.
    pub retransmitted: u64,
    /// `--timeout` used, ms.
    pub timeout_ms: u64,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Answered queries per second over the run.
    pub answered_per_s: f64,
    /// Whether the run ended early (SIGINT or the run-time cap).
    pub stopped_early: bool,
    /// The probe sockets held: the open-file limit, the peak, and the
    /// lingering sockets (waiting for late answers) closed early to stay
    /// within it.
    pub sockets: SocketUse,
    /// How the conntrack counters changed during the probe (namespace-wide);
    /// null when they could not be read.
    pub conntrack_delta: Option<ConntrackDelta>,
    /// Where the counters were read, or why not.
    pub conntrack_note: String,
    /// One line: the conclusion.
    pub verdict: String,
    /// What the numbers mean.
    pub findings: Vec<Finding>,
}

pub(crate) fn micros_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Percentiles and the report's buckets from a latency histogram (see
/// [`crate::dns::histogram`] for the error bound).
pub fn latency_summary(histogram: &LatencyHistogram) -> (Latency, Vec<HistogramBucket>) {
    let latency = Latency {
        p50: histogram.percentile_us(50.0).map(micros_to_ms),
        p90: histogram.percentile_us(90.0).map(micros_to_ms),
        p99: histogram.percentile_us(99.0).map(micros_to_ms),
        max: histogram.max_us().map(micros_to_ms),
    };
    let bounds_us: Vec<Option<u64>> = HISTOGRAM_BOUNDS_MS
        .iter()
        .map(|ms| Some((ms * 1000.0).round() as u64))
        .chain(std::iter::once(None))
        .collect();
    let mut above = None;
    let buckets = bounds_us
        .iter()
        .map(|bound| {
            let count = histogram.count_in(above, *bound);
            above = *bound;
            HistogramBucket { le_ms: bound.map(micros_to_ms), count }
        })
        .collect();
    (latency, buckets)
}

/// Builds the report from the engine's result and the counter deltas.
pub fn build_report(
    config: &ProbeConfig,
    result: &EngineResult,
    delta: std::result::Result<ConntrackDelta, String>,
) -> ProbeReport {
    let (latency, histogram) = latency_summary(&result.latency);
    let resolver_timeout_lookups =
        result.one_lost_lookups + result.both_lost_lookups + result.beyond_resolver_timeout;
    let seconds = result.elapsed.as_secs_f64();
    let stats_place = config.stats_netns.as_deref().unwrap_or("the current namespace");
    let (conntrack_delta, conntrack_note) = match delta {
        Ok(d) => (
            Some(d),
            format!(
                "counters read before and after the probe in {stats_place}; they are namespace-wide, so other traffic there counts too"
            ),
        ),
        Err(why) => (None, format!("conntrack counters in {stats_place} could not be read: {why}")),
    };
    let mut report = ProbeReport {
        server: config.engine.server.to_string(),
        server_from: config.server_from.clone(),
        cluster_endpoints: config
            .cluster_endpoints
            .as_ref()
            .map(|eps| eps.iter().map(ToString::to_string).collect()),
        mode: config.engine.mode,
        netns: config.netns.clone(),
        stats_netns: config.stats_netns.clone(),
        names: config.names.clone(),
        lookups: result.lookups,
        queries_sent: result.queries_sent(),
        answered: result.answered(),
        lost: result.lost(),
        lost_by_type: BTreeMap::from([
            ("A".to_string(), result.by_type[0].lost),
            ("AAAA".to_string(), result.by_type[1].lost),
        ]),
        one_lost_lookups: result.one_lost_lookups,
        both_lost_lookups: result.both_lost_lookups,
        refused: result.refused,
        timed_out: result.timed_out,
        send_errors: result.send_errors,
        rcodes: result.rcodes.clone(),
        stray: result.stray.clone(),
        latency_ms: latency,
        latency_histogram: histogram,
        resolver: config.resolver.clone(),
        resolver_timeout_lookups,
        slow_ms: config.engine.slow_after.as_millis() as u64,
        slow_from: config.slow_from.clone(),
        slow_lookups: result.slow_lookups,
        retransmitted: result.retransmitted,
        timeout_ms: config.engine.timeout.as_millis() as u64,
        duration_s: (seconds * 1000.0).round() / 1000.0,
        answered_per_s: if seconds > 0.0 {
            (result.answered() as f64 / seconds * 10.0).round() / 10.0
        } else {
            0.0
        },
        stopped_early: result.interrupted || result.capped,
        sockets: result.sockets.clone(),
        conntrack_delta,
        conntrack_note,
        verdict: String::new(),
        findings: Vec::new(),
    };
    report.findings = analyze(&report, result);
    report.verdict = report
        .findings
        .first()
        .map(|f| f.summary.clone())
        .unwrap_or_else(|| "nothing to report".into());
    report
}

const RACE_REMEDY: &str = "Avoid sending A and AAAA from one socket at once: add `options single-request-reopen` (glibc) to the pods' dnsConfig, run NodeLocal DNSCache, or use TCP (`use-vc`); kernels >= 5.6 resolve most clashes, so upgrade old nodes";

/// The findings, most severe first.
fn analyze(report: &ProbeReport, result: &EngineResult) -> Vec<Finding> {
    let mut findings = Vec::new();
    if report.cluster_endpoints.as_ref().is_some_and(Vec::is_empty) {
        findings.push(Finding::new(
            Severity::Critical,
            FindingCode::ClusterDnsNoEndpoints,
            format!("{} has no endpoints in the node's kube-proxy rules", report.server),
            format!(
                "{}: the rules reject it (iptables: a `has no endpoints` REJECT in the filter table; nftables: an element of `no-endpoint-services`) and DNAT it nowhere; every lookup through it fails",
                report.server_from
            ),
            "Check the CoreDNS pods and the Service's endpoints (`kubectl -n kube-system get pods -l k8s-app=kube-dns`, `kubectl -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns`); kube-proxy adds the DNAT rules once an endpoint is ready",
        ));
    }
    let delta = report.conntrack_delta.as_ref();
    let drops = delta.map_or(0, ConntrackDelta::drops);
    let clashes = delta.and_then(|d| d.clash_resolve).unwrap_or(0);
    let counters_text = match delta {
        Some(d) => format!(
            "conntrack in {} (namespace-wide): insert_failed +{}, drop +{}, early_drop +{}, clash_resolve {}",
            report.stats_netns.as_deref().unwrap_or("the current namespace"),
            d.insert_failed.unwrap_or(0),
            d.drop.unwrap_or(0),
            d.early_drop.unwrap_or(0),
            d.clash_resolve.map_or("n/a".to_string(), |c| format!("+{c}")),
        ),
        None => "conntrack counters not read".to_string(),
    };
    let loss_text = format!(
        "{} lookups, {} queries sent, {} answered, {} lost (A {}, AAAA {}; {} timed out, {} ICMP errors, {} send errors); {} lookups lost exactly one of their pair, {} lost both; {} lookups would have waited the resolver's {} s timeout",
        report.lookups,
        report.queries_sent,
        report.answered,
        report.lost,
        report.lost_by_type.get("A").copied().unwrap_or(0),
        report.lost_by_type.get("AAAA").copied().unwrap_or(0),
        report.timed_out,
        report.refused,
        report.send_errors,
        report.one_lost_lookups,
        report.both_lost_lookups,
        report.resolver_timeout_lookups,
        report.resolver.timeout_s,
    );
    if report.lost > 0 {
        let share = report.lost as f64 / report.queries_sent.max(1) as f64;
        if drops > 0 {
            findings.push(Finding::new(
                Severity::Critical,
                FindingCode::ConntrackRaceDrops,
                format!(
                    "{} lookups lost one answer while insert_failed rose by {}: conntrack race drops",
                    report.one_lost_lookups,
                    delta.and_then(|d| d.insert_failed).unwrap_or(0)
                ),
                format!("{loss_text}; {counters_text}"),
                RACE_REMEDY,
            ));
        } else if report.refused > 0 && report.refused * 2 >= report.lost {
            findings.push(Finding::new(
                Severity::Critical,
                FindingCode::DnsEndpointUnreachable,
                format!(
                    "{} of {} queries got ICMP errors (port or host unreachable): a DNS server behind {} is dead or not listening",
                    report.refused, report.queries_sent, report.server
                ),
                format!("{loss_text}; {counters_text}"),
                "Check the DNS service's endpoints (kubectl -n kube-system get endpoints kube-dns) and the CoreDNS pods; remove dead endpoints from the rules; look for stale conntrack entries (`conntrack -L -p udp --orig-port-dst 53`)",
            ));
        } else {
            let race_like = report.one_lost_lookups > report.both_lost_lookups;
            findings.push(Finding::new(
                if share > 0.01 { Severity::Critical } else { Severity::Warning },
                FindingCode::DnsQueriesLost,
                format!(
                    "{} of {} queries lost ({:.1}%); {} lookups lost exactly one of their pair",
                    report.lost,
                    report.queries_sent,
                    share * 100.0,
                    report.one_lost_lookups
                ),
                format!(
                    "{loss_text}; {counters_text}{}",
                    if race_like && delta.is_some() {
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
            ));
        }
    } else if clashes > 0 {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::ConntrackClashesResolved,
            format!(
                "{clashes} of {} lookups raced in conntrack (clash_resolve +{clashes}); the kernel resolved every clash; nothing lost",
                report.lookups
            ),
            format!("{loss_text}; {counters_text}"),
            "Nothing to fix: this kernel resolves the parallel A/AAAA clash. Older kernels (< 5.6) would drop these packets",
        ));
    } else if report.lookups > 0 {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::NoLoss,
            format!(
                "all {} lookups answered ({} queries); nothing lost",
                report.lookups, report.answered
            ),
            format!("{loss_text}; {counters_text}"),
            "Nothing to fix",
        ));
    }
    if drops > 0 && report.lost == 0 {
        findings.push(Finding::new(
            Severity::Warning,
            FindingCode::ConntrackDropsElsewhere,
            format!("conntrack dropped packets ({drops}) during the probe, though every probe was answered"),
            format!("{counters_text}; the counters are namespace-wide: other traffic lost packets"),
            "Watch the counters (`ctdiag stats --watch 1`) and look for the table filling up or other parallel-query clients",
        ));
    }
    if let Some(slow) = slow_answers(report, result) {
        findings.push(slow);
    }
    let errors: u64 = report
        .rcodes
        .iter()
        .filter(|(code, _)| matches!(code.as_str(), "SERVFAIL" | "REFUSED" | "FORMERR" | "NOTIMP"))
        .map(|(_, n)| *n)
        .sum();
    if errors > 0 {
        findings.push(Finding::new(
            Severity::Warning,
            FindingCode::DnsErrorRcodes,
            format!("{errors} answers were errors (SERVFAIL, REFUSED, ...)"),
            format!("rcodes: {:?}", report.rcodes),
            "Check that the name is one the server is meant to answer, and the server's logs",
        ));
    }
    if let Some(nx) = report.rcodes.get("NXDOMAIN").filter(|n| **n > 0) {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::NameDoesNotExist,
            format!("{nx} answers were NXDOMAIN"),
            format!("names: {}", report.names.join(", ")),
            "Probe a name that exists (the default kubernetes.default.svc.cluster.local does in every cluster)",
        ));
    }
    if result.stray.total() > 0 {
        let s = &result.stray;
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::StrayPackets,
            format!("{} received packets were not taken as answers", s.total()),
            format!(
                "wrong source {}, wrong ID {}, wrong question {}, malformed {}, truncated (TC) {}, duplicate {}, late {}",
                s.wrong_source, s.wrong_id, s.wrong_question, s.malformed, s.truncated, s.duplicate, s.late
            ),
            "Late answers mean the server answered after --timeout; the others point at a misbehaving server or middlebox",
        ));
    }
    if delta.is_none() {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::ConntrackCountersUnavailable,
            "the conntrack counters could not be read; the probe's loss figures stand without the kernel's evidence",
            report.conntrack_note.clone(),
            "Run as root (CAP_NET_ADMIN) and point --stats-netns at the namespace where DNAT happens (the node's)",
        ));
    }
    if report.stopped_early {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::StoppedEarly,
            "the probe stopped before its planned end",
            if result.interrupted { "interrupted by a signal" } else { "hit the one-hour run cap" },
            "Use a shorter --duration or a smaller --count",
        ));
    }
    // Most severe first; the order of equal ones is kept.
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
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

/// `part` as a percentage of `whole` (0 when `whole` is 0).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A latency in ms for a sentence, `-` when there is none.
pub fn ms_text(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.3}"))
}

/// The summed conntrack counters of `stats_ns`, or why not.
pub(crate) fn read_counters(stats_ns: Option<&Netns>) -> std::result::Result<Counters, String> {
    match run_in(stats_ns, read_stats) {
        Ok(Ok(snapshot)) => Ok(snapshot.total()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the probe with a validated config: counters, lookups, counters.
pub fn run(config: &ProbeConfig, progress: &(dyn Fn(u64) + Sync)) -> Result<ProbeReport> {
    let probe_ns = config.netns.as_deref().map(Netns::open).transpose()?;
    let stats_ns = config.stats_netns.as_deref().map(Netns::open).transpose()?;
    let (probe_ns, stats_ns) = (probe_ns.as_ref(), stats_ns.as_ref());
    let before = read_counters(stats_ns);
    let result =
        run_in(probe_ns, || engine::run(&config.engine, &crate::interrupt::STOP, progress))??;
    let after = read_counters(stats_ns);
    let delta = match (before, after) {
        (Ok(before), Ok(after)) => Ok(ConntrackDelta::from_counters(&after.delta_since(&before))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if result.answered() == 0 && result.timed_out == 0 && result.refused + result.send_errors > 0 {
        return Err(Error::Runtime(format!(
            "no answer from {}: {} of {} queries failed with ICMP errors (port or host unreachable) and {} could not be sent; {}",
            config.engine.server,
            result.refused,
            result.queries_sent(),
            result.send_errors,
            match config.cluster_endpoints.as_deref() {
                // Why: kube-proxy REJECTs a ClusterIP without endpoints.
                Some([]) => format!("the node's kube-proxy rules have no endpoints for it ({}): is CoreDNS running?", config.server_from),
                _ => format!(
                    "is a DNS server listening there{}?",
                    config.netns.as_deref().map(|n| format!(" (seen from namespace {n})")).unwrap_or_default()
                ),
            },
        )));
    }
    Ok(build_report(config, &result, delta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_histogram() {
        let mut lat = LatencyHistogram::new();
        for i in 1..=100 {
            lat.record_us(i * 1000);
        }
        let (l, h) = latency_summary(&lat);
        // Within the histogram's resolution (1/1024) above the exact value.
        for (got, exact) in [(l.p50, 50.0), (l.p90, 90.0), (l.p99, 99.0)] {
            let got = got.unwrap();
            assert!(got >= exact && got <= exact * (1.0 + 1.0 / 1024.0), "{got} vs {exact}");
        }
        assert_eq!(l.max, Some(100.0), "the maximum is exact");
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 100);
        assert_eq!(h.len(), HISTOGRAM_BOUNDS_MS.len() + 1);
        // 1 ms lands in the <=1 bucket, 2 ms in <=2, 3..5 in <=5, 51..100 in <=100.
        assert_eq!((h[1].le_ms, h[1].count), (Some(1.0), 1));
        assert_eq!((h[2].le_ms, h[2].count), (Some(2.0), 1));
        assert_eq!((h[3].le_ms, h[3].count), (Some(5.0), 3));
        assert_eq!((h[7].le_ms, h[7].count), (Some(100.0), 50));
        assert_eq!(h.last().unwrap().le_ms, None);
        let (empty, buckets) = latency_summary(&LatencyHistogram::new());
        assert_eq!(empty, Latency::default());
        assert!(buckets.iter().all(|b| b.count == 0));
    }
}

/// One finding code per case: a synthetic engine result (and counter
/// delta) in, the finding and its severity out, through the same
/// [`build_report`] a run uses. A coverage test checks that every code of
/// `probe` is produced here.
#[cfg(test)]
mod finding_tests {
    use super::*;
    use crate::dns::wire::parse_name;

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
            resolver: ResolverOptions {
                timeout_s: 5,
                attempts: 2,
                source: "glibc defaults".into(),
            },
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
        r.timed_out = lost;
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
        no_endpoints.timed_out = 200;
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
        refused.timed_out = 0;
        refused.refused = 10;
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
            let report = build_report(&config, &result, delta);
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
            assert!(
                produced.contains(code),
                "no case in dns::probe::finding_tests produces {code}"
            );
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
        let report = build_report(&config(None), &few, Ok(delta(0, 0, 0)));
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
        let report = build_report(&config(Some(eps)), &many, Ok(delta(0, 0, 0)));
        let slow = report.findings.iter().find(|f| f.code == FindingCode::SlowAnswers).unwrap();
        assert!(
            slow.summary.starts_with("10 of 110 answered lookups (9.1%) took 1000 ms"),
            "{slow:?}"
        );
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
        let report = build_report(&config(Some(eps)), &losing_aaaa(10), Ok(delta(0, 0, 0)));
        let lost = &report.findings[0];
        assert_eq!(lost.code, FindingCode::DnsQueriesLost);
        for ep in ["198.18.2.2:53", "198.18.3.2:53"] {
            assert!(lost.remedy.contains(&format!("ctdiag probe --server {ep}")), "{lost:?}");
        }
        // One-of-the-pair loss with conntrack clean points away from the race.
        assert!(lost.evidence.contains("the loss is elsewhere"), "{lost:?}");
    }
}
