//! Decided queries -> counts: one [`Span`] per interval and one for the
//! whole run (the reports), and the cumulative [`Totals`] the Prometheus
//! endpoint serves.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::ResponseCode;

use super::matcher::{Decided, FastMap, Outcome};
use super::model::{
    Cause, ClientStats, EndpointStats, LatencyMs, PodName, ReportKind, Totals, WatchReport,
};
use crate::dns::histogram::LatencyHistogram;
use crate::dns::wire::rcode_name;

/// One endpoint's counts in a span.
#[derive(Debug, Default)]
struct EndpointSpan {
    queries: u64,
    answered: u64,
    unanswered: u64,
    latency: LatencyHistogram,
}

/// One client address's counts in a span.
#[derive(Debug, Default)]
struct ClientSpan {
    queries: u64,
    unanswered: u64,
}

/// Counts of the queries decided in one span of time.
#[derive(Debug, Default)]
pub struct Span {
    queries: u64,
    answered: u64,
    unanswered: u64,
    by_cause: BTreeMap<Cause, u64>,
    rcodes: BTreeMap<String, u64>,
    by_endpoint: FastMap<SocketAddr, EndpointSpan>,
    by_client: FastMap<IpAddr, ClientSpan>,
    /// Packets the capture dropped in the span.
    pub capture_drops: u64,
}

/// The conventional names of the 4-bit rcodes, made once.
fn rcode_names() -> &'static [String; 16] {
    static NAMES: std::sync::OnceLock<[String; 16]> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| std::array::from_fn(|i| rcode_name(ResponseCode::from(0, i as u8))))
}

/// The conventional name of a 4-bit rcode.
pub fn rcode_text(rcode: u8) -> &'static str {
    &rcode_names()[usize::from(rcode & 0x0f)]
}

/// Adds one to `name`'s count, allocating the key only the first time.
fn count(map: &mut BTreeMap<String, u64>, name: &str) {
    match map.get_mut(name) {
        Some(n) => *n += 1,
        None => {
            map.insert(name.to_string(), 1);
        }
    }
}

impl Span {
    /// Counts one decided query.
    pub fn record(&mut self, decided: &Decided) {
        self.queries += 1;
        let endpoint = self.by_endpoint.entry(decided.endpoint).or_default();
        endpoint.queries += 1;
        let client = self.by_client.entry(decided.client.ip()).or_default();
        client.queries += 1;
        match &decided.outcome {
            Outcome::Answered { rcode, latency } => {
                self.answered += 1;
                endpoint.answered += 1;
                endpoint.latency.record(*latency);
                count(&mut self.rcodes, rcode_text(*rcode));
            }
            Outcome::Unanswered(cause) => {
                self.unanswered += 1;
                endpoint.unanswered += 1;
                client.unanswered += 1;
                *self.by_cause.entry(*cause).or_default() += 1;
            }
        }
    }

    /// Whether anything was counted or dropped.
    pub fn is_empty(&self) -> bool {
        self.queries == 0 && self.capture_drops == 0
    }

    /// The report of this span; `pod` names a client address.
    pub fn report(
        &self,
        kind: ReportKind,
        elapsed_s: f64,
        pod: &dyn Fn(IpAddr) -> Option<PodName>,
    ) -> WatchReport {
        let mut by_endpoint: Vec<EndpointStats> = self
            .by_endpoint
            .iter()
            .map(|(endpoint, s)| EndpointStats {
                endpoint: *endpoint,
                queries: s.queries,
                answered: s.answered,
                unanswered: s.unanswered,
                latency_ms: latency_ms(&s.latency),
            })
            .collect();
        by_endpoint.sort_by(|a, b| {
            b.unanswered
                .cmp(&a.unanswered)
                .then(b.queries.cmp(&a.queries))
                .then(a.endpoint.cmp(&b.endpoint))
        });
        let mut by_client: Vec<ClientStats> = self
            .by_client
            .iter()
            .map(|(client, s)| ClientStats {
                client: *client,
                pod: pod(*client),
                queries: s.queries,
                unanswered: s.unanswered,
            })
            .collect();
        by_client.sort_by(|a, b| {
            b.unanswered
                .cmp(&a.unanswered)
                .then(b.queries.cmp(&a.queries))
                .then(a.client.cmp(&b.client))
        });
        let unanswered_by_cause =
            Cause::ALL.iter().map(|c| (*c, self.by_cause.get(c).copied().unwrap_or(0))).collect();
        WatchReport {
            kind,
            elapsed_s,
            queries: self.queries,
            answered: self.answered,
            unanswered: self.unanswered,
            unanswered_by_cause,
            by_endpoint,
            by_client,
            rcodes: self.rcodes.clone(),
            capture_drops: self.capture_drops,
            incomplete: self.capture_drops > 0,
            pending: 0,
        }
    }
}

/// Percentiles in milliseconds (zeros without answers).
fn latency_ms(h: &LatencyHistogram) -> LatencyMs {
    let ms = |us: Option<u64>| us.map_or(0.0, |us| us as f64 / 1000.0);
    LatencyMs {
        p50: ms(h.percentile_us(50.0)),
        p90: ms(h.percentile_us(90.0)),
        p99: ms(h.percentile_us(99.0)),
        max: ms(h.max_us()),
    }
}

/// Adds one decided query to the cumulative totals (`pod`: its client's
/// pod, if known; cloned only for a pod's first query).
pub fn add_to_totals(totals: &mut Totals, decided: &Decided, pod: &Option<PodName>) {
    add_series(&mut totals.all, decided);
    add_series(totals.by_endpoint.entry(decided.endpoint).or_default(), decided);
    match totals.by_pod.get_mut(pod) {
        Some(series) => add_series(series, decided),
        None => add_series(totals.by_pod.entry(pod.clone()).or_default(), decided),
    }
}

fn add_series(series: &mut super::model::SeriesTotals, decided: &Decided) {
    series.queries += 1;
    match &decided.outcome {
        Outcome::Answered { rcode, latency } => {
            count(&mut series.answers_by_rcode, rcode_text(*rcode));
            series.latency.observe(latency.as_secs_f64());
        }
        Outcome::Unanswered(cause) => {
            *series.unanswered_by_cause.entry(*cause).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn decided(client: &str, endpoint: &str, outcome: Outcome) -> Decided {
        Decided { client: client.parse().unwrap(), endpoint: endpoint.parse().unwrap(), outcome }
    }

    /// Counts per endpoint, client, cause and rcode; lists sorted most
    /// unanswered first; every cause present; totals series for all, the
    /// endpoint and the pod.
    #[test]
    fn span_and_totals_count_each_query_once() {
        let answered = |ms| Outcome::Answered { rcode: 0, latency: Duration::from_millis(ms) };
        let queries = [
            decided("198.18.1.2:1000", "198.18.2.2:53", answered(2)),
            decided("198.18.1.2:1001", "198.18.2.2:53", answered(4)),
            decided("198.18.1.3:1000", "198.18.3.2:53", Outcome::Unanswered(Cause::EndpointSilent)),
            decided(
                "198.18.1.3:1001",
                "198.18.2.2:53",
                Outcome::Answered { rcode: 3, latency: Duration::from_millis(1) },
            ),
        ];
        let mut span = Span::default();
        let mut totals = Totals::default();
        for q in &queries {
            span.record(q);
            add_to_totals(&mut totals, q, &None);
        }
        let report = span.report(ReportKind::Summary, 1.0, &|_| None);
        assert_eq!((report.queries, report.answered, report.unanswered), (4, 3, 1));
        assert_eq!(report.unanswered_by_cause.len(), Cause::ALL.len());
        assert_eq!(report.unanswered_by_cause[&Cause::EndpointSilent], 1);
        assert_eq!(report.rcodes["NOERROR"], 2);
        assert_eq!(report.rcodes["NXDOMAIN"], 1);
        assert_eq!(report.by_endpoint[0].endpoint, "198.18.3.2:53".parse().unwrap());
        assert_eq!(report.by_endpoint[1].queries, 3);
        assert!((report.by_endpoint[1].latency_ms.max - 4.0).abs() < 0.01);
        assert_eq!(report.by_client[0].client, "198.18.1.3".parse::<IpAddr>().unwrap());
        assert_eq!((report.by_client[0].queries, report.by_client[0].unanswered), (2, 1));
        assert_eq!(totals.all.queries, 4);
        assert_eq!(totals.all.latency.count, 3);
        assert_eq!(totals.by_endpoint.len(), 2);
        assert_eq!(totals.by_pod[&None].queries, 4);
        assert_eq!(totals.all.unanswered_by_cause[&Cause::EndpointSilent], 1);
    }
}
