//! What `ctdiag watch` counts: the interval and summary reports (their JSON
//! names are the interface scripts read, issue 15 fixed them) and the
//! cumulative totals the Prometheus endpoint serves.
//!
//! The matcher (capture -> per-query outcome) fills [`Totals`]; an interval
//! report is the difference of two snapshots plus the per-interval lists.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// Why a query went unanswered, as far as the packets and conntrack show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The client's conntrack entry DNATs to a target that is not an
    /// endpoint any more.
    StaleEntry,
    /// The DNATed copy left for the endpoint; no answer came back.
    EndpointSilent,
    /// The query was seen from the pod; no DNATed copy left the node.
    DroppedBeforeDnat,
    /// The other query of its A/AAAA pair was answered.
    OneTypeLost,
    /// The endpoint answered; the client never got the answer.
    AnswerNotDelivered,
    /// None of the above could be shown.
    Unknown,
}

impl Cause {
    /// Every cause, in report order.
    pub const ALL: [Cause; 6] = [
        Cause::StaleEntry,
        Cause::EndpointSilent,
        Cause::DroppedBeforeDnat,
        Cause::OneTypeLost,
        Cause::AnswerNotDelivered,
        Cause::Unknown,
    ];

    /// The kebab-case name used in JSON keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::StaleEntry => "stale-entry",
            Cause::EndpointSilent => "endpoint-silent",
            Cause::DroppedBeforeDnat => "dropped-before-dnat",
            Cause::OneTypeLost => "one-type-lost",
            Cause::AnswerNotDelivered => "answer-not-delivered",
            Cause::Unknown => "unknown",
        }
    }
}

/// Latency percentiles of answered queries, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// The pod a client address belongs to, named as `stale` names clients.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PodName {
    /// The pod's network namespace (`ip netns` name or `/proc/PID/ns/net`).
    pub netns: String,
    /// The pod's hostname (pod name); hostile text, escaped on a terminal.
    pub hostname: String,
}

/// One endpoint (the DNAT target, or the server address the client asked
/// when no DNAT was seen).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStats {
    /// `ip:port`.
    pub endpoint: SocketAddr,
    /// Queries seen towards it.
    pub queries: u64,
    /// Of those, answered.
    pub answered: u64,
    /// Of those, unanswered after `--timeout`.
    pub unanswered: u64,
    /// Latency of its answered queries.
    pub latency_ms: LatencyMs,
}

/// One client address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientStats {
    /// The client's address.
    pub client: IpAddr,
    /// The pod it belongs to, when found.
    pub pod: Option<PodName>,
    /// Queries it sent.
    pub queries: u64,
    /// Of those, unanswered after `--timeout`.
    pub unanswered: u64,
}

/// One interval (`"type": "interval"`) or the whole run (`"type":
/// "summary"`). Queries are counted in the interval in which they were
/// decided (answered, or unanswered once `--timeout` passed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchReport {
    /// `interval` or `summary`.
    #[serde(rename = "type")]
    pub kind: ReportKind,
    /// Seconds since the watch started, at the end of this report's span.
    pub elapsed_s: f64,
    /// Queries decided.
    pub queries: u64,
    /// Of those, answered.
    pub answered: u64,
    /// Of those, unanswered after `--timeout`.
    pub unanswered: u64,
    /// Unanswered queries per cause (every cause present, zeros included).
    pub unanswered_by_cause: BTreeMap<Cause, u64>,
    /// Per endpoint, most unanswered first.
    pub by_endpoint: Vec<EndpointStats>,
    /// Per client address, most unanswered first.
    pub by_client: Vec<ClientStats>,
    /// Answers per rcode name (`NOERROR`, `SERVFAIL`, ...).
    pub rcodes: BTreeMap<String, u64>,
    /// Packets the capture ring dropped (`PACKET_STATISTICS` tp_drops).
    pub capture_drops: u64,
    /// Whether packets were lost to the capture: the counts are a floor.
    pub incomplete: bool,
    /// Summary only: queries still waiting for an answer, within their
    /// timeout, when the watch ended (counted nowhere else).
    pub pending: u64,
}

/// Which report of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// One `--interval`.
    Interval,
    /// The whole run, last line.
    Summary,
}

/// Bucket upper bounds (seconds) of the latency histogram the Prometheus
/// endpoint serves: from 1 ms up to glibc's 5 s timeout and beyond.
pub const LATENCY_BUCKETS_S: [f64; 12] =
    [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A cumulative latency histogram (Prometheus semantics: each bucket counts
/// observations <= its bound; `+Inf` is `count`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencyBuckets {
    /// Per bound of [`LATENCY_BUCKETS_S`], cumulative.
    pub buckets: [u64; LATENCY_BUCKETS_S.len()],
    /// Observations.
    pub count: u64,
    /// Sum of observations, seconds.
    pub sum_s: f64,
}

impl LatencyBuckets {
    /// Adds one observation of `seconds`.
    pub fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS_S) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum_s += seconds;
    }
}

/// Counters of one series (an endpoint, a pod, or everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SeriesTotals {
    /// Queries decided.
    pub queries: u64,
    /// Answers per rcode name.
    pub answers_by_rcode: BTreeMap<String, u64>,
    /// Unanswered per cause.
    pub unanswered_by_cause: BTreeMap<Cause, u64>,
    /// Latency of answered queries.
    pub latency: LatencyBuckets,
}

/// Everything counted since the watch started: what `/metrics` serves.
/// Counters only grow.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// All queries.
    pub all: SeriesTotals,
    /// Per endpoint.
    pub by_endpoint: BTreeMap<SocketAddr, SeriesTotals>,
    /// Per pod (`None`: the client is not a known pod), keyed by the pod's
    /// name; the exporter keeps the top N and folds the rest into one series.
    pub by_pod: BTreeMap<Option<PodName>, SeriesTotals>,
    /// Packets the capture ring dropped.
    pub capture_drops: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus buckets are cumulative: an observation counts in its
    /// bucket and every larger one, and a 6 s one only in `+Inf` (count).
    #[test]
    fn latency_buckets_are_cumulative() {
        let mut h = LatencyBuckets::default();
        h.observe(0.003);
        h.observe(6.0);
        assert_eq!(h.buckets[0..2], [0, 0]);
        assert!(h.buckets[2..].iter().all(|&n| n == 1));
        assert_eq!(h.count, 2);
        assert!((h.sum_s - 6.003).abs() < 1e-9);
    }

    #[test]
    fn causes_serialize_as_their_names() {
        for cause in Cause::ALL {
            assert_eq!(serde_json::to_value(cause).unwrap(), cause.as_str());
        }
    }
}
