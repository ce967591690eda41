//! The `ctdiag compare` report: the probe engine against a Service's
//! ClusterIP and against each of its endpoints directly, in one run,
//! interleaved, so that "is it the DNAT/conntrack path or one bad CoreDNS
//! replica?" is answered side by side. Built from a plain
//! [`CompareConfig`]; the command, `doctor` and the renderers use it from
//! here.
//!
//! Interleaving: the run is cut into rounds; each round sends a batch of
//! lookups to every target in turn (for every resolver mode asked for), so
//! load and time of day hit all targets alike. The conntrack counters of
//! the stats namespace are read around each batch and the deltas added up
//! per target (they are namespace-wide: other traffic counts too).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dns::engine::{self, EngineConfig, EngineResult, Mode};
use crate::dns::histogram::LatencyHistogram;
use crate::dns::probe::{
    latency_summary, micros_to_ms, ms_text, percent, read_counters, ConntrackDelta, Latency,
    ResolverOptions, SLOW_SHARE_PERCENT,
};
use crate::error::Result;
use crate::findings::{Finding, FindingCode, Severity};
use crate::netns::{run_in, Netns};

/// Rounds when `--rounds` is not given.
pub const DEFAULT_ROUNDS: u32 = 5;
/// The most rounds one run may have.
pub const MAX_ROUNDS: u32 = 1000;
/// An endpoint is slow next to its peers when its p99 is at least this
/// many times theirs...
pub const SLOW_FACTOR: f64 = 4.0;
/// ...and at least this many milliseconds above it. Why a floor: below a
/// few tens of milliseconds, p99s of healthy servers differ by scheduling
/// noise (a loaded node doubles a 1 ms p99 easily).
pub const SLOW_FLOOR_MS: f64 = 50.0;

/// What a target is to the Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The Service's ClusterIP: lookups go through the node's DNAT and
    /// conntrack, as a pod's do.
    ClusterIp,
    /// One endpoint, probed directly (no DNAT).
    Endpoint,
}

impl Role {
    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ClusterIp => "cluster-ip",
            Role::Endpoint => "endpoint",
        }
    }
}

/// One address to probe, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// IP:PORT.
    pub address: SocketAddr,
    /// ClusterIP or endpoint.
    pub role: Role,
}

/// The targets of one resolver mode (the ClusterIP first): a TCP mode
/// probes the Service's TCP port and its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModePlan {
    /// The resolver behaviour.
    pub mode: Mode,
    /// The Service port this mode probes, e.g. `kube-system/kube-dns:dns`.
    pub service_port: String,
    /// The ClusterIP, then each endpoint.
    pub targets: Vec<Target>,
}

/// Validated `ctdiag compare` settings.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The Service, e.g. `kube-system/kube-dns`, or `IP:PORT` for one given
    /// with `--cluster-ip`.
    pub service: String,
    /// Where it came from: `netlink (iptables-nft) in NS`, `iptables-save in NS`, `--cluster-ip/--endpoints`.
    pub service_from: String,
    /// The ClusterIP of the first mode's Service port.
    pub cluster_ip: SocketAddr,
    /// The first mode's endpoints.
    pub endpoints: Vec<SocketAddr>,
    /// Per mode, in the order asked for: what to probe.
    pub plans: Vec<ModePlan>,
    /// What the engine does in each batch; `server`, `mode`, `count` and
    /// `duration` are set per batch.
    pub engine: EngineConfig,
    /// Lookups per target and mode (`--count`), or `None` with `duration`.
    pub count: Option<u64>,
    /// The whole run's time for starting lookups (`--duration`), shared
    /// evenly by every batch.
    pub duration: Option<Duration>,
    /// How many rounds the lookups of each target are cut into.
    pub rounds: u32,
    /// The names as the user typed them.
    pub names: Vec<String>,
    /// Namespace of the probe sockets.
    pub netns: Option<String>,
    /// Namespace whose conntrack counters are read.
    pub stats_netns: Option<String>,
    /// The resolver's timeout and attempts.
    pub resolver: ResolverOptions,
    /// Where the slow-answer threshold came from.
    pub slow_from: String,
}

impl CompareConfig {
    /// Every (mode, target) pair, in report order.
    fn pairs(&self) -> Vec<(Mode, Target)> {
        self.plans.iter().flat_map(|p| p.targets.iter().map(move |t| (p.mode, *t))).collect()
    }

    /// Lookups of one target in round `round` (0-based), count runs only:
    /// the count spread as evenly as the rounds allow.
    fn batch_count(&self, round: u32) -> Option<u64> {
        let total = self.count?;
        let rounds = u64::from(self.rounds);
        let base = total / rounds;
        Some(base + u64::from(u64::from(round) < total % rounds))
    }

    /// Time of one batch, duration runs only.
    fn batch_duration(&self) -> Option<Duration> {
        let batches = self.rounds * self.pairs().len().max(1) as u32;
        self.duration.map(|d| d / batches.max(1))
    }
}

/// One target in one mode, side by side with the others.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    /// IP:PORT.
    pub address: String,
    /// `cluster-ip` or `endpoint`.
    pub role: Role,
    /// The resolver behaviour imitated.
    pub mode: Mode,
    /// `udp`, or `tcp` in tcp mode.
    pub protocol: &'static str,
    /// Lookups made (an A and an AAAA query each).
    pub lookups: u64,
    /// Queries sent (two per lookup).
    pub queries_sent: u64,
    /// Queries answered.
    pub answered: u64,
    /// Queries without an answer.
    pub lost: u64,
    /// `lost` as a share of `queries_sent`, percent.
    pub lost_percent: f64,
    /// Lookups that lost exactly one of their pair.
    pub one_lost_lookups: u64,
    /// Lookups that lost both queries.
    pub both_lost_lookups: u64,
    /// Queries that timed out.
    pub timed_out: u64,
    /// Queries that got an ICMP error.
    pub refused: u64,
    /// Queries that could not be sent.
    pub send_errors: u64,
    /// Queries sent again (`musl` mode).
    pub retransmitted: u64,
    /// Latency percentiles (ms) of the fully answered lookups.
    pub latency_ms: Latency,
    /// Fully answered lookups that took `slow_ms` or longer.
    pub slow_lookups: u64,
    /// Lookups that would have made the resolver wait its timeout.
    pub resolver_timeout_lookups: u64,
    /// Packets received but not taken as answers.
    pub stray_packets: u64,
    /// The conntrack counters' changes during this target's batches
    /// (namespace-wide); null when they could not be read.
    pub conntrack_delta: Option<ConntrackDelta>,
    /// Time spent on this target's batches, seconds.
    pub duration_s: f64,
    /// Fully answered lookups (for shares of slow lookups).
    #[serde(skip)]
    pub fully_answered: u64,
    /// The second slowest fully answered lookup, ms (null with fewer than
    /// two): with few lookups the p99 is the slowest one alone.
    #[serde(skip)]
    pub second_slowest_ms: Option<f64>,
}

impl TargetReport {
    /// From the merged engine results of this target's batches.
    pub fn new(
        target: Target,
        mode: Mode,
        result: &EngineResult,
        delta: Option<ConntrackDelta>,
    ) -> Self {
        let (latency, _) = latency_summary(&result.latency);
        let seconds = result.elapsed.as_secs_f64();
        TargetReport {
            address: target.address.to_string(),
            role: target.role,
            mode,
            protocol: if mode == Mode::Tcp { "tcp" } else { "udp" },
            lookups: result.lookups,
            queries_sent: result.queries_sent(),
            answered: result.answered(),
            lost: result.lost(),
            lost_percent: round2(percent(result.lost(), result.queries_sent())),
            one_lost_lookups: result.one_lost_lookups,
            both_lost_lookups: result.both_lost_lookups,
            timed_out: result.timed_out,
            refused: result.refused,
            send_errors: result.send_errors,
            retransmitted: result.retransmitted,
            latency_ms: latency,
            slow_lookups: result.slow_lookups,
            resolver_timeout_lookups: result.one_lost_lookups
                + result.both_lost_lookups
                + result.beyond_resolver_timeout,
            stray_packets: result.stray.total(),
            conntrack_delta: delta,
            duration_s: (seconds * 1000.0).round() / 1000.0,
            fully_answered: result.latency.len(),
            second_slowest_ms: second_slowest_us(&result.latency).map(micros_to_ms),
        }
    }

    /// The p99, except that one lookup alone never makes it: with fewer
    /// than 200 lookups the p99 is the slowest one, and a single stall (a
    /// busy node descheduling the prober) must not make an endpoint "slow".
    fn p99_of_two(&self) -> Option<f64> {
        let p99 = self.latency_ms.p99?;
        Some(self.second_slowest_ms.map_or(p99, |second| second.min(p99)))
    }

    /// Whether it answered nothing at all.
    fn dead(&self) -> bool {
        self.queries_sent > 0 && self.answered == 0
    }

    /// Share of the fully answered lookups that were slow, percent.
    fn slow_percent(&self) -> f64 {
        percent(self.slow_lookups, self.fully_answered)
    }

    /// `lost 12 of 400 (3.0%)`.
    fn loss_text(&self) -> String {
        format!(
            "{} {}: {} of {} queries lost ({:.1}%), {} lookups lost one of their pair",
            self.role.as_str(),
            self.address,
            self.lost,
            self.queries_sent,
            self.lost_percent,
            self.one_lost_lookups
        )
    }
}

/// The comparison of one resolver mode: does the loss through the
/// ClusterIP go away with the resolv.conf option this mode imitates?
#[derive(Debug, Clone, Serialize)]
pub struct ModeSummary {
    /// The resolver behaviour.
    pub mode: Mode,
    /// The resolv.conf option that makes a glibc resolver behave so; null
    /// for the resolvers' defaults (parallel, musl, threads).
    pub resolv_conf_option: Option<&'static str>,
    /// Queries sent to the ClusterIP in this mode.
    pub cluster_ip_queries: u64,
    /// Of those, lost.
    pub cluster_ip_lost: u64,
    /// Queries lost at the endpoints, probed directly, in this mode.
    pub endpoints_lost: u64,
}

/// The resolv.conf option that makes glibc behave like `mode`.
pub fn resolv_conf_option(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::Sequential => Some("options single-request"),
        Mode::Reopen => Some("options single-request-reopen"),
        Mode::Tcp => Some("options use-vc"),
        Mode::Parallel | Mode::Threads | Mode::Musl => None,
    }
}

/// What `ctdiag compare` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// The Service, e.g. `kube-system/kube-dns`.
    pub service: String,
    /// Where it came from.
    pub service_from: String,
    /// The ClusterIP probed, IP:PORT.
    pub cluster_ip: String,
    /// The endpoints the rules DNAT it to, IP:PORT.
    pub endpoints: Vec<String>,
    /// The resolver modes compared, in order.
    pub modes: Vec<Mode>,
    /// Namespace of the probe sockets; null for the current one.
    pub netns: Option<String>,
    /// Namespace whose conntrack counters were read; null for the current one.
    pub stats_netns: Option<String>,
    /// Names looked up, in turn.
    pub names: Vec<String>,
    /// Rounds the lookups were cut into.
    pub rounds: u32,
    /// `--timeout`, ms.
    pub timeout_ms: u64,
    /// The slow-answer threshold, ms.
    pub slow_ms: u64,
    /// Where `slow_ms` came from.
    pub slow_from: String,
    /// The pod resolver's timeout settings.
    pub resolver: ResolverOptions,
    /// Every target in every mode: the ClusterIP first, then each endpoint.
    pub targets: Vec<TargetReport>,
    /// Per mode: the loss through the ClusterIP, and the option that
    /// imitates it.
    pub workarounds: Vec<ModeSummary>,
    /// How the conntrack counters were read, or why not.
    pub conntrack_note: String,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Whether the run ended early (SIGINT or the run-time cap).
    pub stopped_early: bool,
    /// One line: the conclusion.
    pub verdict: String,
    /// What the numbers mean.
    pub findings: Vec<Finding>,
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Adds one batch's counter deltas to a target's.
fn add_delta(total: &mut Option<ConntrackDelta>, batch: &ConntrackDelta) {
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
    *total = Some(match total.take() {
        None => batch.clone(),
        Some(t) => ConntrackDelta {
            insert_failed: sum(t.insert_failed, batch.insert_failed),
            drop: sum(t.drop, batch.drop),
            early_drop: sum(t.early_drop, batch.early_drop),
            clash_resolve: sum(t.clash_resolve, batch.clash_resolve),
        },
    });
}

/// Runs the comparison: rounds of batches, every target in turn, counters
/// read around each batch. `progress` gets the lookups finished so far.
pub fn run(
    config: &CompareConfig,
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CompareReport> {
    let probe_ns = config.netns.as_deref().map(Netns::open).transpose()?;
    let stats_ns = config.stats_netns.as_deref().map(Netns::open).transpose()?;
    let (probe_ns, stats_ns) = (probe_ns.as_ref(), stats_ns.as_ref());
    let pairs = config.pairs();
    let mut results: Vec<EngineResult> = vec![EngineResult::default(); pairs.len()];
    let mut deltas: Vec<Option<ConntrackDelta>> = vec![None; pairs.len()];
    let mut counters_error: Option<String> = None;
    let started = Instant::now();
    let deadline = started + config.engine.max_run;
    let mut done_before = 0u64;
    let mut capped = false;
    'rounds: for round in 0..config.rounds {
        for (index, (mode, target)) in pairs.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break 'rounds;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                capped = true;
                break 'rounds;
            }
            let count = config.batch_count(round);
            if count == Some(0) {
                continue;
            }
            let engine = EngineConfig {
                server: target.address,
                mode: *mode,
                count,
                duration: config.batch_duration(),
                max_run: left,
                // Why no resend for other modes even if asked: only musl
                // resends.
                retry_after: if *mode == Mode::Musl { config.engine.retry_after } else { None },
                ..config.engine.clone()
            };
            let before = read_counters(stats_ns);
            let batch_progress = |n: u64| progress(done_before + n);
            let result = run_in(probe_ns, || engine::run(&engine, stop, &batch_progress))??;
            let after = read_counters(stats_ns);
            match (before, after) {
                (Ok(before), Ok(after)) => {
                    let delta = ConntrackDelta::from_counters(&after.delta_since(&before));
                    add_delta(&mut deltas[index], &delta);
                }
                (Err(e), _) | (_, Err(e)) => counters_error = Some(e),
            }
            done_before += result.lookups;
            capped |= result.capped;
            results[index].merge(&result);
        }
    }
    let interrupted = stop.load(Ordering::Relaxed) || results.iter().any(|r| r.interrupted);
    let targets = pairs
        .iter()
        .zip(&results)
        .zip(deltas)
        .map(|(((mode, target), result), delta)| {
            TargetReport::new(*target, *mode, result, delta.filter(|_| counters_error.is_none()))
        })
        .collect();
    let place = config.stats_netns.as_deref().unwrap_or("the current namespace");
    let conntrack_note = match counters_error {
        None => format!(
            "counters read in {place} before and after each target's batches and added up per target; they are namespace-wide, so other traffic there counts too"
        ),
        Some(why) => format!("conntrack counters in {place} could not be read: {why}"),
    };
    Ok(build_report(config, targets, conntrack_note, started.elapsed(), interrupted || capped))
}

/// The report from the targets' results: the per-mode summaries, the
/// findings and the verdict.
pub fn build_report(
    config: &CompareConfig,
    targets: Vec<TargetReport>,
    conntrack_note: String,
    elapsed: Duration,
    stopped_early: bool,
) -> CompareReport {
    let workarounds = config
        .plans
        .iter()
        .map(|plan| {
            let of_mode = targets.iter().filter(|t| t.mode == plan.mode);
            let (mut cluster_ip_queries, mut cluster_ip_lost, mut endpoints_lost) = (0, 0, 0);
            for t in of_mode {
                match t.role {
                    Role::ClusterIp => {
                        cluster_ip_queries += t.queries_sent;
                        cluster_ip_lost += t.lost;
                    }
                    Role::Endpoint => endpoints_lost += t.lost,
                }
            }
            ModeSummary {
                mode: plan.mode,
                resolv_conf_option: resolv_conf_option(plan.mode),
                cluster_ip_queries,
                cluster_ip_lost,
                endpoints_lost,
            }
        })
        .collect();
    let seconds = elapsed.as_secs_f64();
    let mut report = CompareReport {
        service: config.service.clone(),
        service_from: config.service_from.clone(),
        cluster_ip: config.cluster_ip.to_string(),
        endpoints: config.endpoints.iter().map(ToString::to_string).collect(),
        modes: config.plans.iter().map(|p| p.mode).collect(),
        netns: config.netns.clone(),
        stats_netns: config.stats_netns.clone(),
        names: config.names.clone(),
        rounds: config.rounds,
        timeout_ms: config.engine.timeout.as_millis() as u64,
        slow_ms: config.engine.slow_after.as_millis() as u64,
        slow_from: config.slow_from.clone(),
        resolver: config.resolver.clone(),
        targets,
        workarounds,
        conntrack_note,
        duration_s: (seconds * 1000.0).round() / 1000.0,
        stopped_early,
        verdict: String::new(),
        findings: Vec::new(),
    };
    report.findings = analyze(&report);
    report.verdict = report
        .findings
        .first()
        .map(|f| f.summary.clone())
        .unwrap_or_else(|| "nothing to report".into());
    report
}

/// "critical above 1 % of the queries, else warning", as `probe` says it.
fn loss_severity(lost: u64, sent: u64) -> Severity {
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

/// The findings, most severe first.
fn analyze(report: &CompareReport) -> Vec<Finding> {
    let mut findings = Vec::new();
    // Dead endpoints, gathered over the modes: one finding per endpoint.
    let mut dead: Vec<(&TargetReport, &TargetReport)> = Vec::new();
    let stats_ns =
        report.stats_netns.as_deref().map(|n| format!(" --netns {n}")).unwrap_or_default();
    for mode in &report.modes {
        let of_mode: Vec<&TargetReport> =
            report.targets.iter().filter(|t| t.mode == *mode).collect();
        let Some(cluster) = of_mode.iter().find(|t| t.role == Role::ClusterIp) else { continue };
        let endpoints: Vec<&TargetReport> =
            of_mode.iter().filter(|t| t.role == Role::Endpoint).copied().collect();
        let in_mode = in_mode(report, *mode);
        if endpoints.is_empty() {
            findings.push(Finding::new(
                Severity::Critical,
                FindingCode::CompareNoEndpoints,
                format!("{} has no endpoints in the rules: nothing to compare{in_mode}", report.service),
                format!("{}; {}", report.service_from, cluster.loss_text()),
                "Check the CoreDNS pods and the Service's EndpointSlices (`kubectl -n kube-system get pods -l k8s-app=kube-dns`, `ctdiag services`); kube-proxy DNATs the ClusterIP once an endpoint is ready",
            ));
            continue;
        }
        let all_text = || of_mode.iter().map(|t| t.loss_text()).collect::<Vec<_>>().join("; ");
        let everywhere = cluster.lost > 0 && endpoints.iter().all(|e| e.lost > 0);
        if everywhere {
            let (lost, sent) =
                of_mode.iter().fold((0, 0), |(l, s), t| (l + t.lost, s + t.queries_sent));
            findings.push(Finding::new(
                loss_severity(lost, sent),
                FindingCode::LossEverywhere,
                format!(
                    "queries are lost at every target{in_mode}: {lost} of {sent} ({:.1}%), through the ClusterIP and at each endpoint directly",
                    percent(lost, sent)
                ),
                all_text(),
                "Not one endpoint and not the DNAT path: look at what every lookup shares: the node's network (`ctdiag stats --watch 1` for conntrack drops, `ip -s link` for interface drops), the pods' network, or CoreDNS's upstream forwarders (`kubectl -n kube-system logs -l k8s-app=kube-dns`)",
            ));
        } else {
            for endpoint in &endpoints {
                if endpoint.dead() {
                    dead.push((endpoint, cluster));
                } else if endpoint.lost > 0 {
                    findings.push(Finding::new(
                        loss_severity(endpoint.lost, endpoint.queries_sent),
                        FindingCode::EndpointLossy,
                        format!(
                            "endpoint {} loses {:.1}% of its queries{in_mode}, probed directly",
                            endpoint.address, endpoint.lost_percent
                        ),
                        all_text(),
                        format!(
                            "Check the CoreDNS pod at {}: its logs, CPU throttling and restarts; other endpoints answer, so the node's DNAT path is not the cause",
                            endpoint.address
                        ),
                    ));
                }
            }
            let endpoints_clean = endpoints.iter().all(|e| e.lost == 0);
            if cluster.lost > 0 && endpoints_clean {
                findings.push(Finding::new(
                    loss_severity(cluster.lost, cluster.queries_sent),
                    FindingCode::ClusterIpPathLoss,
                    format!(
                        "queries are lost through the ClusterIP {} only{in_mode}: {} of {} ({:.1}%); every endpoint probed directly answered everything",
                        cluster.address, cluster.lost, cluster.queries_sent, cluster.lost_percent
                    ),
                    format!("{}; {}; {}", cluster.loss_text(), counters_text(cluster), endpoints.iter().map(|e| e.loss_text()).collect::<Vec<_>>().join("; ")),
                    format!(
                        "The DNAT/conntrack path loses them: conntrack drops and races (`ctdiag stats{stats_ns} --watch 1`: insert_failed, drop, clash_resolve), stale entries pointing at a gone endpoint (`ctdiag stale{stats_ns}`); a resolv.conf option that avoids the race is measured with `--modes parallel,sequential,reopen,tcp`"
                    ),
                ));
            }
        }
        findings.extend(slow_findings(report, cluster, &endpoints, &in_mode));
    }
    findings.extend(dead_findings(report, &dead, &stats_ns));
    findings.extend(workaround(report));
    if report.stopped_early {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::CompareStoppedEarly,
            "the comparison stopped before its planned end",
            format!(
                "{} s of lookups; the targets got the rounds that were finished",
                report.duration_s
            ),
            "Use a shorter --duration or a smaller --count",
        ));
    }
    if !findings.iter().any(|f| f.severity >= Severity::Warning)
        && !report.targets.is_empty()
        && report.targets.iter().all(|t| t.lost == 0)
    {
        let p99s: Vec<String> = report
            .targets
            .iter()
            .map(|t| {
                format!(
                    "{}{} p99 {} ms",
                    t.address,
                    in_mode(report, t.mode),
                    ms_text(t.latency_ms.p99)
                )
            })
            .collect();
        findings.insert(
            0,
            Finding::new(
                Severity::Info,
                FindingCode::CompareClean,
                format!(
                    "the ClusterIP and all {} endpoints answered every query, none slow",
                    report.endpoints.len()
                ),
                p99s.join(", "),
                "Nothing to fix on this node's DNS path",
            ),
        );
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// `endpoint-dead` once per endpoint that answered nothing, naming the
/// modes (with the ClusterIP of the same mode) it was dead in.
fn dead_findings(
    report: &CompareReport,
    dead: &[(&TargetReport, &TargetReport)],
    stats_ns: &str,
) -> Vec<Finding> {
    let mut addresses: Vec<&str> = Vec::new();
    for (endpoint, _) in dead {
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
                        "{}{}: {} of {} queries lost ({} ICMP errors, {} timed out); through the ClusterIP {} of {} lost ({:.1}%)",
                        e.address,
                        in_mode(report, e.mode),
                        e.lost,
                        e.queries_sent,
                        e.refused,
                        e.timed_out,
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
                format!("endpoint {address} answers nothing{in_modes}: {lost} of {sent} queries lost"),
                format!("{evidence}; the ClusterIP loses about the share of lookups kube-proxy sends to this endpoint"),
                format!(
                    "Find the pod behind {address} (`kubectl get pods -A -o wide | grep {ip}`): if it is gone or not ready, the node's rules are stale (`ctdiag services`, kube-proxy's logs); then flush the entries that still point at it (`ctdiag stale{stats_ns}`)"
                ),
            )
        })
        .collect()
}

/// `endpoint-slow` for each endpoint whose p99 is far above its peers' or
/// with 1 % or more of its lookups slower than `--slow-ms`;
/// `cluster-ip-path-slow` when the ClusterIP is slow and no endpoint is.
fn slow_findings(
    report: &CompareReport,
    cluster: &TargetReport,
    endpoints: &[&TargetReport],
    in_mode: &str,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for endpoint in endpoints {
        let (Some(p99), Some(p99_of_two)) = (endpoint.latency_ms.p99, endpoint.p99_of_two()) else {
            continue;
        };
        let peers = median(
            endpoints
                .iter()
                .filter(|p| p.address != endpoint.address)
                .filter_map(|p| p.latency_ms.p99)
                .collect(),
        );
        let factor = peers.map(|peer| p99 / peer.max(0.001));
        let far_above = peers.is_some_and(|peer| {
            p99_of_two >= SLOW_FACTOR * peer && p99_of_two - peer >= SLOW_FLOOR_MS
        });
        let slow_share = endpoint.slow_percent() >= SLOW_SHARE_PERCENT;
        if !far_above && !slow_share {
            continue;
        }
        let compared = match (peers, factor) {
            (Some(peer), Some(factor)) => {
                format!(", {factor:.1}× its peers' ({} ms)", ms_text(Some(peer)))
            }
            _ => String::new(),
        };
        findings.push(Finding::new(
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
        ));
    }
    let any_endpoint_slow = !findings.is_empty();
    if !any_endpoint_slow && cluster.slow_percent() >= SLOW_SHARE_PERCENT {
        findings.push(Finding::new(
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
        ));
    }
    findings
}

/// With several modes: which resolv.conf option makes the loss through the
/// ClusterIP go away on this node, measured.
fn workaround(report: &CompareReport) -> Option<Finding> {
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

/// One case per finding code and severity: synthetic engine results per
/// target in, the finding out, through the same [`build_report`] a run
/// uses. A coverage test checks that every code of `compare` is produced.
/// The second largest latency (nearest rank n-1), µs; None with fewer
/// than two.
fn second_slowest_us(histogram: &LatencyHistogram) -> Option<u64> {
    let n = histogram.len();
    (n >= 2).then(|| histogram.percentile_us((n as f64 - 1.5) / n as f64 * 100.0)).flatten()
}

#[cfg(test)]
mod finding_tests {
    use super::*;
    use crate::dns::engine::TypeCounts;
    use crate::dns::histogram::LatencyHistogram;
    use crate::dns::probe::MAX_RUN;
    use crate::dns::wire::parse_name;

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
            resolver: ResolverOptions {
                timeout_s: 5,
                attempts: 2,
                source: "glibc defaults".into(),
            },
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
        build_report(
            &config,
            targets,
            "read around each batch".into(),
            Duration::from_secs(3),
            false,
        )
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
        let workaround =
            r.findings.iter().find(|f| f.code == FindingCode::ResolverWorkaround).unwrap();
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
        assert_eq!(
            c.batch_duration(),
            Some(Duration::from_secs(1)),
            "10 s over 5 rounds of 2 targets"
        );
    }
}
