//! The comparison check: the DNS Service's ClusterIP and each endpoint,
//! probed side by side with `dns::compare` (glibc's parallel A/AAAA), a
//! few lookups each, within the check's share of the budget. Only
//! addresses from the node's rules or the flags are probed (on a node
//! without kube-proxy rules, from the API listing `--api` gives), never a
//! resolv.conf's nameserver.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{CheckContext, CheckResult};
use crate::dns::compare::{self, CompareConfig, CompareReport, ModePlan, Role, Target};
use crate::dns::engine::{EngineConfig, Mode};
use crate::dns::probe::{
    resolver_options_or_defaults, DEFAULT_NAME, SLOW_FRACTION_OF_RESOLVER_TIMEOUT,
};
use crate::dns::resolv::resolv_conf_path;
use crate::error::{Error, Result};
use crate::service::from_api;
use crate::service::select::Selector;
use crate::service::{Protocol, Service};

/// Lookups per target: enough to see a dead endpoint (every one lost) and
/// a slow one (every one late), few enough for the budget.
pub const LOOKUPS_PER_TARGET: u64 = 20;
/// Rounds the lookups are cut into (interleaved between targets).
const ROUNDS: u32 = 2;
/// Lookups started per second.
const RATE: f64 = 200.0;
/// How long each query waits for its answer. Why 2 s: an endpoint that
/// answers 1.5 s late must count as slow, not as dead.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How long a socket whose query timed out waits for a late answer.
const LINGER: Duration = Duration::from_millis(200);

/// The UDP port of the DNS Service (the DNS-looking one when there are
/// several).
fn udp_port(services: &[Service]) -> Option<&Service> {
    let udp: Vec<&Service> = services.iter().filter(|s| s.protocol == Protocol::Udp).collect();
    udp.iter().find(|s| s.port_name == "dns" || s.port == 53).or_else(|| udp.first()).copied()
}

/// The comparison doctor runs: parallel lookups to the ClusterIP and to
/// each endpoint, from the pod's namespace when given.
fn compare_config(
    ctx: &CheckContext,
    (service, service_from): (&Service, &str),
    cluster: SocketAddr,
    endpoints: Vec<SocketAddr>,
) -> Result<CompareConfig> {
    let mut targets = vec![Target { address: cluster, role: Role::ClusterIp }];
    targets.extend(endpoints.iter().map(|e| Target { address: *e, role: Role::Endpoint }));
    // Lookups start in the pod's namespace when given, else in the node's.
    let probe_netns = ctx.config.probe_netns.clone().or_else(|| ctx.config.netns.clone());
    let resolver = resolver_options_or_defaults(&resolv_conf_path(probe_netns.as_deref()));
    let slow_ms = u64::from(resolver.timeout_s) * 1000 / SLOW_FRACTION_OF_RESOLVER_TIMEOUT;
    Ok(CompareConfig {
        service: service.port_name_string(),
        service_from: service_from.to_string(),
        cluster_ip: cluster,
        endpoints: endpoints.clone(),
        plans: vec![ModePlan {
            mode: Mode::Parallel,
            service_port: service.port_name_string(),
            targets,
        }],
        engine: EngineConfig {
            server: cluster,
            names: vec![crate::dns::wire::parse_name(DEFAULT_NAME)?],
            mode: Mode::Parallel,
            count: Some(LOOKUPS_PER_TARGET),
            duration: None,
            rate: RATE,
            concurrency: 16,
            timeout: TIMEOUT,
            linger: LINGER,
            max_run: ctx.left(),
            slow_after: Duration::from_millis(slow_ms),
            resolver_timeout: Duration::from_secs(u64::from(resolver.timeout_s)),
            retry_after: None,
        },
        count: Some(LOOKUPS_PER_TARGET),
        duration: None,
        rounds: ROUNDS,
        names: vec![DEFAULT_NAME.to_string()],
        netns: probe_netns,
        stats_netns: ctx.config.netns.clone(),
        slow_from: format!(
            "1/{SLOW_FRACTION_OF_RESOLVER_TIMEOUT} of the resolver's {} s timeout ({})",
            resolver.timeout_s, resolver.source
        ),
        resolver,
    })
}

/// Runs the comparison, stopping lookups early enough for those in flight
/// to finish before the check's deadline (or at once on Ctrl-C).
fn run_within_deadline(ctx: &CheckContext, config: &CompareConfig) -> Result<CompareReport> {
    // Stop starting lookups early enough for those in flight to finish
    // (one timeout and the linger) before the check's deadline, so that
    // what was measured is reported rather than given up.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_at = ctx.deadline.checked_sub(TIMEOUT + LINGER + Duration::from_millis(500));
    let watchdog = {
        let (stop, outer) = (stop.clone(), ctx.stop.clone());
        std::thread::spawn(move || loop {
            let due = stop_at.is_none_or(|at| Instant::now() >= at);
            // `outer` is set by the orchestrator on Ctrl-C too.
            if due || outer.load(Ordering::Relaxed) {
                stop.store(true, Ordering::SeqCst);
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        })
    };
    let report = compare::run(config, &stop, &|_| {});
    stop.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    report
}

/// The DNS Service from the API listing of `--api` (it must hold the
/// Service object: `kubectl get services,endpointslices`), for a node
/// without kube-proxy rules; `None` without `--api`.
fn from_api(ctx: &CheckContext) -> Result<Option<(Vec<Service>, String)>> {
    let (Some(api), Selector::Spec(spec)) = (&ctx.config.api, &ctx.config.selector) else {
        return Ok(None);
    };
    let (text, from) = from_api::read(api, &spec.namespace)?;
    let resolved = from_api::resolve(&text, &from, spec, &[Protocol::Udp])?;
    Ok(Some((resolved.services, resolved.source)))
}

/// Compares the ClusterIP with each endpoint.
pub(super) fn check(ctx: &CheckContext) -> Result<CheckResult> {
    let (services, from) = match super::checks::without_rules(ctx) {
        None => (super::checks::dns_service(ctx)?, "the node's rules".to_string()),
        Some(datapath) => match from_api(ctx)? {
            Some(found) => found,
            None => {
                return Ok(super::checks::not_applicable(
                    &datapath,
                    "no ClusterIP and endpoints to compare from the rules (--api gives them from the API)",
                ))
            }
        },
    };
    let service = udp_port(&services)
        .ok_or_else(|| Error::Runtime(format!("the DNS Service has no UDP port in {from}")))?;
    let Some(cluster_ip) = service.cluster_ips.first() else {
        return Err(Error::Runtime(format!("{} has no ClusterIP", service.port_name_string())));
    };
    let cluster = SocketAddr::new(*cluster_ip, service.port);
    let endpoints: Vec<SocketAddr> =
        service.endpoints.iter().copied().filter(|e| e.is_ipv4() == cluster_ip.is_ipv4()).collect();
    if endpoints.is_empty() {
        return Err(Error::Runtime(format!(
            "nothing to compare: {} has no endpoints in {from} (the kube-dns check says why)",
            service.port_name_string()
        )));
    }
    let config = compare_config(ctx, (service, &from), cluster, endpoints)?;
    let report = run_within_deadline(ctx, &config)?;
    // Lookups that could not leave the probe namespace measured nothing:
    // the check could not run (unknown), which is not a fault of the
    // node's DNS path; a warning here would flip an NPD condition on a
    // healthy node whose namespace simply has no route (hostNetwork).
    if let Some(no_route) =
        report.findings.iter().find(|f| f.code == crate::findings::FindingCode::NoRouteToTarget)
    {
        return Err(Error::Runtime(format!(
            "{}: {}; {}",
            no_route.summary, no_route.evidence, no_route.remedy
        )));
    }
    let columns: Vec<String> = report
        .targets
        .iter()
        .map(|t| {
            format!(
                "{} {}: {}/{} lost, p90 {}",
                t.role.as_str(),
                t.address,
                t.lost,
                t.queries_sent,
                t.latency_ms.p90.map_or("-".to_string(), |ms| format!("{ms:.1} ms"))
            )
        })
        .collect();
    let mut evidence = format!(
        "{} lookups per target from {}: {}{}",
        LOOKUPS_PER_TARGET,
        report.header.netns.as_deref().unwrap_or("this namespace"),
        columns.join("; "),
        if report.stopped_early { " (stopped early for the budget)" } else { "" }
    );
    if super::checks::without_rules(ctx).is_some() {
        evidence.push_str(&format!("; no kube-proxy rules: targets from {from}"));
    }
    let data = json!(report);
    // Only what needs attention or explains it: the "everything answered"
    // note stays in `ctdiag compare`.
    let findings = report
        .findings
        .into_iter()
        .filter(|f| f.code != crate::findings::FindingCode::CompareClean)
        .collect();
    Ok(CheckResult { evidence, remedy: None, findings, data, status: None })
}
