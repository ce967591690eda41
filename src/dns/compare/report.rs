//! The compare report: each target in each mode side by side, the
//! per-mode summaries, and the findings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::dns::engine::{EngineResult, LookupHeader, Mode, Outcomes};
use crate::dns::histogram::LatencyHistogram;
use crate::dns::probe::{
    latency_summary, micros_to_ms, percent, ConntrackDelta, Latency, ResolverOptions,
};
use crate::dns::route::NoRoute;
use crate::findings::Finding;

use super::findings::analyze;
use super::{CompareConfig, Role, Target};

/// The rcodes that are a server's error, not an answer about the name.
pub const ERROR_RCODES: &[&str] = &["SERVFAIL", "REFUSED", "FORMERR", "NOTIMP"];

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
    /// How each query ended: answered, timed_out, port_unreachable,
    /// unreachable, no_route, send_failed (they add up to `queries_sent`).
    pub outcomes: Outcomes,
    /// Queries without an answer per type (`A`, `AAAA`).
    pub lost_by_type: BTreeMap<String, u64>,
    /// Answers per rcode (`NOERROR`, `SERVFAIL`, ...).
    pub rcodes: BTreeMap<String, u64>,
    /// When queries found no route: the errno and what `ip route get`
    /// answered in the probe namespace; null otherwise.
    pub no_route: Option<NoRoute>,
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
    /// The errno of the first query without a route (the evidence in
    /// `no_route` is filled in by the run, which knows the namespace).
    #[serde(skip)]
    pub no_route_errno: Option<i32>,
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
            outcomes: result.outcomes,
            lost_by_type: BTreeMap::from([
                ("A".to_string(), result.by_type[0].lost),
                ("AAAA".to_string(), result.by_type[1].lost),
            ]),
            rcodes: result.rcodes.clone(),
            no_route: None,
            no_route_errno: result.no_route_errno,
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
    pub(super) fn p99_of_two(&self) -> Option<f64> {
        let p99 = self.latency_ms.p99?;
        Some(self.second_slowest_ms.map_or(p99, |second| second.min(p99)))
    }

    /// Whether it answered nothing at all, though some queries left this
    /// namespace (a target without a route is `no-route-to-target`).
    pub(super) fn dead(&self) -> bool {
        self.queries_sent > 0 && self.answered == 0 && self.outcomes.no_route < self.queries_sent
    }

    /// Queries that timed out: the only outcome that is loss on the path.
    pub(super) fn timed_out(&self) -> u64 {
        self.outcomes.timed_out
    }

    /// `timed_out` as a share of `queries_sent`, percent.
    pub(super) fn timed_out_percent(&self) -> f64 {
        percent(self.outcomes.timed_out, self.queries_sent)
    }

    /// Queries lost of one type (`A`, `AAAA`).
    pub(super) fn lost_of(&self, qtype: &str) -> u64 {
        self.lost_by_type.get(qtype).copied().unwrap_or(0)
    }

    /// Answers whose rcode is an error (SERVFAIL, REFUSED, FORMERR, NOTIMP).
    pub(super) fn error_answers(&self) -> u64 {
        self.rcodes
            .iter()
            .filter(|(code, _)| ERROR_RCODES.contains(&code.as_str()))
            .map(|(_, n)| *n)
            .sum()
    }

    /// The answers per rcode, for evidence: `SERVFAIL 40, NOERROR 2`.
    pub(super) fn rcodes_text(&self) -> String {
        if self.rcodes.is_empty() {
            return "no answers".into();
        }
        self.rcodes.iter().map(|(code, n)| format!("{code} {n}")).collect::<Vec<_>>().join(", ")
    }

    /// The outcomes that happened, for evidence: `40 timed out, 2 ICMP port
    /// unreachable`.
    pub(super) fn outcomes_text(&self) -> String {
        let o = &self.outcomes;
        let parts: Vec<String> = [
            (o.answered, "answered"),
            (o.timed_out, "timed out"),
            (o.port_unreachable, "ICMP port unreachable"),
            (o.unreachable, "ICMP host/net unreachable"),
            (o.no_route, "without a route"),
            (o.send_failed, "send failed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "no queries".into()
        } else {
            parts.join(", ")
        }
    }

    /// Share of the fully answered lookups that were slow, percent.
    pub(super) fn slow_percent(&self) -> f64 {
        percent(self.slow_lookups, self.fully_answered)
    }

    /// `lost 12 of 400 (3.0%)`.
    pub(super) fn loss_text(&self) -> String {
        format!(
            "{} {}: {} of {} queries lost ({:.1}%; {}), {} lookups lost one of their pair",
            self.role.as_str(),
            self.address,
            self.lost,
            self.queries_sent,
            self.lost_percent,
            self.outcomes_text(),
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
    /// Where the lookups ran and what they asked (`netns`, `stats_netns`,
    /// `names`, as keys of this object).
    #[serde(flatten)]
    pub header: LookupHeader,
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
        header: LookupHeader {
            netns: config.netns.clone(),
            stats_netns: config.stats_netns.clone(),
            names: config.names.clone(),
        },
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

/// The second largest latency (nearest rank n-1), µs; None with fewer
/// than two.
fn second_slowest_us(histogram: &LatencyHistogram) -> Option<u64> {
    let n = histogram.len();
    (n >= 2).then(|| histogram.percentile_us((n as f64 - 1.5) / n as f64 * 100.0)).flatten()
}
