//! The probe report: what a run counted, in the form the renderers and
//! scripts read, with its findings.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::conntrack::stats::{
    CTA_STATS_CLASH_RESOLVE, CTA_STATS_DROP, CTA_STATS_EARLY_DROP, CTA_STATS_INSERT_FAILED,
};
use crate::conntrack::Counters;
use crate::dns::engine::{EngineResult, LookupHeader, Mode, Outcomes, SocketUse, StrayCounts};
use crate::dns::histogram::LatencyHistogram;
use crate::dns::route::NoRoute;
use crate::findings::Finding;

use super::findings::analyze;
use super::{ProbeConfig, ResolverOptions, HISTOGRAM_BOUNDS_MS};

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
    /// Where the lookups ran and what they asked (`netns`, `stats_netns`,
    /// `names`, as keys of this object).
    #[serde(flatten)]
    pub header: LookupHeader,
    /// Lookups made (each one fresh socket, an A and an AAAA query).
    pub lookups: u64,
    /// Queries sent (or attempted).
    pub queries_sent: u64,
    /// Queries answered (matching source, ID and question; TC unset).
    pub answered: u64,
    /// Queries without an answer: every outcome but answered.
    pub lost: u64,
    /// Lost queries per type (`A`, `AAAA`).
    pub lost_by_type: BTreeMap<String, u64>,
    /// Lookups that lost exactly one of their two queries: the race signature.
    pub one_lost_lookups: u64,
    /// Lookups that lost both queries.
    pub both_lost_lookups: u64,
    /// How each query ended: answered, timed_out, port_unreachable,
    /// unreachable, no_route, send_failed (they add up to `queries_sent`).
    pub outcomes: Outcomes,
    /// When queries found no route: the errno and what `ip route get`
    /// answered in the probe namespace; null otherwise.
    pub no_route: Option<NoRoute>,
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
    no_route: Option<NoRoute>,
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
        header: LookupHeader {
            netns: config.netns.clone(),
            stats_netns: config.stats_netns.clone(),
            names: config.names.clone(),
        },
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
        outcomes: result.outcomes,
        no_route,
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
