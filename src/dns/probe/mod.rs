//! The `ctdiag probe` report: resolver-faithful A/AAAA lookups, one fresh
//! socket per lookup, with the conntrack counter deltas the probes caused as
//! the kernel's own evidence. Built from a plain [`ProbeConfig`]; the
//! command, `compare`, `doctor` and the renderers use it from here.

#[cfg(test)]
mod finding_tests;
mod findings;
mod report;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use crate::conntrack::{read_stats, Counters};
use crate::dns::engine::{self, EngineConfig, EngineResult};
use crate::dns::resolv::{ResolvConf, DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT_S};
use crate::dns::route::{no_route_evidence, NoRoute};
use crate::error::{Error, Result};
use crate::netns::{run_in, Netns};

pub(crate) use report::micros_to_ms;
pub use report::{
    build_report, latency_summary, ms_text, percent, ConntrackDelta, HistogramBucket, Latency,
    ProbeReport,
};

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

/// The summed conntrack counters of `stats_ns`, or why not.
pub(crate) fn read_counters(stats_ns: Option<&Netns>) -> std::result::Result<Counters, String> {
    match run_in(stats_ns, read_stats) {
        Ok(Ok(snapshot)) => Ok(snapshot.total()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs the probe with a validated config: counters, lookups, counters.
/// `stop` is the command's (set by Ctrl-C): the lookups stop early and the
/// report covers what was sent.
pub fn run(
    config: &ProbeConfig,
    stop: &AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ProbeReport> {
    let probe_ns = config.netns.as_deref().map(Netns::open).transpose()?;
    let stats_ns = config.stats_netns.as_deref().map(Netns::open).transpose()?;
    let (probe_ns, stats_ns) = (probe_ns.as_ref(), stats_ns.as_ref());
    let before = read_counters(stats_ns);
    let result = run_in(probe_ns, || engine::run(&config.engine, stop, progress))??;
    let after = read_counters(stats_ns);
    let delta = match (before, after) {
        (Ok(before), Ok(after)) => Ok(ConntrackDelta::from_counters(&after.delta_since(&before))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let no_route = result
        .no_route_errno
        .map(|errno| no_route_evidence(errno, config.engine.server.ip(), probe_ns));
    if result.answered() == 0 && result.outcomes.timed_out == 0 && result.outcomes.errors() > 0 {
        return Err(Error::Runtime(no_answer_sentence(config, &result, no_route.as_ref())));
    }
    Ok(build_report(config, &result, delta, no_route))
}

/// Why no query was answered and none timed out: what each error was, and
/// what to do about the most telling one.
pub(crate) fn no_answer_sentence(
    config: &ProbeConfig,
    result: &EngineResult,
    no_route: Option<&NoRoute>,
) -> String {
    let o = &result.outcomes;
    let server = config.engine.server;
    let seen_from = config.netns.as_deref().map(|n| format!(" (seen from namespace {n})"));
    let mut what = Vec::new();
    if let Some(no_route) = no_route.filter(|_| o.no_route > 0) {
        what.push(format!(
            "{} could not leave this namespace: connect()/send() failed at once with {}, no packet was sent ({})",
            o.no_route, no_route.errno, no_route.route_get
        ));
    }
    if o.port_unreachable > 0 {
        what.push(format!(
            "{} were refused with {} (the host is up, nothing listens on port {})",
            o.port_unreachable,
            if config.engine.mode == engine::Mode::Tcp {
                "a TCP reset"
            } else {
                "ICMP port unreachable"
            },
            server.port()
        ));
    }
    if o.unreachable > 0 {
        what.push(format!(
            "{} got ICMP host or network unreachable from the network",
            o.unreachable
        ));
    }
    if o.send_failed > 0 {
        what.push(format!(
            "{} could not be sent (a local firewall's EPERM, ENOBUFS, or a TCP connection that closed)",
            o.send_failed
        ));
    }
    let hint = if o.no_route > 0 {
        format!(
            "{} has no route to {}: check its routes (`ip route`), or probe from a pod's namespace (--netns)",
            config.netns.as_deref().map_or("this namespace".to_string(), |n| format!("namespace {n}")),
            server.ip()
        )
    } else {
        match config.cluster_endpoints.as_deref() {
            // Why: kube-proxy REJECTs a ClusterIP without endpoints.
            Some([]) => format!(
                "the node's kube-proxy rules have no endpoints for it ({}): is CoreDNS running?",
                config.server_from
            ),
            _ => format!("is a DNS server listening there{}?", seen_from.unwrap_or_default()),
        }
    };
    format!(
        "no answer from {server}: of {} queries, {}; {hint}",
        result.queries_sent(),
        what.join("; ")
    )
}
