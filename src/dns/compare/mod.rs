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

#[cfg(test)]
mod finding_tests;
mod findings;
mod report;
mod verdicts;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dns::engine::{self, EngineConfig, EngineResult, Mode};
use crate::dns::probe::{read_counters, ConntrackDelta, ResolverOptions};
use crate::dns::route::no_route_evidence;
use crate::error::Result;
use crate::netns::{run_in, Netns};

pub use report::{build_report, resolv_conf_option, CompareReport, ModeSummary, TargetReport};

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
    let mut targets: Vec<TargetReport> = pairs
        .iter()
        .zip(&results)
        .zip(deltas)
        .map(|(((mode, target), result), delta)| {
            TargetReport::new(*target, *mode, result, delta.filter(|_| counters_error.is_none()))
        })
        .collect();
    // What the routing table says, once per target that found no route.
    for target in &mut targets {
        if let (Some(errno), Ok(address)) =
            (target.no_route_errno, target.address.parse::<SocketAddr>())
        {
            target.no_route = Some(no_route_evidence(errno, address.ip(), probe_ns));
        }
    }
    let place = config.stats_netns.as_deref().unwrap_or("the current namespace");
    let conntrack_note = match counters_error {
        None => format!(
            "counters read in {place} before and after each target's batches and added up per target; they are namespace-wide, so other traffic there counts too"
        ),
        Some(why) => format!("conntrack counters in {place} could not be read: {why}"),
    };
    Ok(build_report(config, targets, conntrack_note, started.elapsed(), interrupted || capped))
}
