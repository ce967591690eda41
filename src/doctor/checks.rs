//! The checks `ctdiag doctor` runs, each a thin adapter from the doctor's
//! config to a core module's report and back to a row of the verdict table.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::datapath::{self, NodeDatapath};
use super::{CheckContext, CheckResult, CheckSpec, Status};
use crate::conntrack::stats::report::{self as stats_report, StatsConfig};
use crate::conntrack::stats::{CTA_STATS_CHAIN_TOOLONG, CTA_STATS_CLASH_RESOLVE};
use crate::error::{Error, Result};
use crate::findings::{Finding, FindingCode, Severity};
use crate::netns::Netns;
use crate::service::report::{self as services_report, ServicesConfig};
use crate::service::select::{self, Resolved, SelectError, Selector};
use crate::service::{Protocol, Service};
use crate::stale::{self, StaleConfig};

/// Longest window the conntrack counters are sampled over.
const MAX_SAMPLE: Duration = Duration::from_secs(3);

/// Every check, in table order, with its share of the budget.
pub(super) fn all() -> Vec<CheckSpec> {
    vec![
        CheckSpec { name: "conntrack", share: 0.5, run: Arc::new(conntrack) },
        CheckSpec { name: "kube-dns", share: 0.6, run: Arc::new(kube_dns) },
        CheckSpec { name: "stale", share: 0.7, run: Arc::new(stale_entries) },
        CheckSpec { name: "compare", share: 0.93, run: Arc::new(super::compare::check) },
        CheckSpec { name: "resolvers", share: 0.6, run: Arc::new(super::resolver::check) },
        CheckSpec { name: "dns-path", share: 0.6, run: Arc::new(super::dns_path::check) },
    ]
}

fn open(netns: Option<&str>) -> Result<Option<Netns>> {
    netns.map(Netns::open).transpose()
}

/// The counters over an interval (rates now, not totals since boot), the
/// table fill, and which counters this kernel has.
fn conntrack(ctx: &CheckContext) -> Result<CheckResult> {
    let netns = open(ctx.config.netns.as_deref())?;
    // A fifth of the budget, at most 3 s: long enough to see a race that
    // happens a few times a second, short enough to leave time for the rest.
    let interval = ctx.config.budget.mul_f64(0.2).min(MAX_SAMPLE);
    let config = StatsConfig { netns: ctx.config.netns.clone(), ..StatsConfig::default() };
    let sample = stats_report::interval_sample(&config, netns.as_ref(), interval, &ctx.stop)?;
    let clash_resolve = sample.delta.has(CTA_STATS_CLASH_RESOLVE);
    let chaintoolong = sample.delta.has(CTA_STATS_CHAIN_TOOLONG);
    let mut findings = sample.findings.clone();
    if !clash_resolve && !sample.delta.0.is_empty() {
        findings.push(Finding::new(
            Severity::Info,
            FindingCode::NoClashResolveCounter,
            "This kernel does not report clash_resolve (pre-5.10 counting)",
            "the clash_resolve attribute is absent from the kernel's statistics",
            "insert_failed then also counts clashes the kernel resolved (5.6-5.9): compare it with drop before concluding that packets were lost",
        ));
    }
    let value = |name: &str| sample.delta.named().find(|(n, _)| n == name).map_or(0, |(_, v)| v);
    let evidence = format!(
        "over {:.1} s: insert_failed +{}, drop +{}, early_drop +{}, clash_resolve {}; table {} / {} ({:.1}%); counters of this kernel: clash_resolve {}, chaintoolong {} ({})",
        sample.seconds,
        value("insert_failed"),
        value("drop"),
        value("early_drop"),
        if clash_resolve { format!("+{}", value("clash_resolve")) } else { "n/a".into() },
        sample.entries,
        sample.max_entries,
        sample.used_percent,
        if clash_resolve { "yes" } else { "no" },
        if chaintoolong { "yes" } else { "no" },
        match sample.source {
            crate::conntrack::Source::Netlink => "ctnetlink",
            crate::conntrack::Source::Procfs => "procfs",
        },
    );
    let mut data = serde_json::to_value(&sample).unwrap_or_default();
    if let Some(object) = data.as_object_mut() {
        object.insert("clash_resolve_counter".into(), json!(clash_resolve));
        object.insert("chaintoolong_counter".into(), json!(chaintoolong));
        object.insert("kernel".into(), json!(crate::kernel::Kernel::running()));
    }
    Ok(CheckResult { evidence, remedy: None, findings, data, status: None })
}

/// The DNS Service as the node's rules (or the flags) define it, resolved
/// once for every check that needs it.
fn resolved(ctx: &CheckContext) -> &std::result::Result<Resolved, SelectError> {
    ctx.shared.dns_service.get_or_init(|| {
        let netns =
            open(ctx.config.netns.as_deref()).map_err(|e| SelectError::RulesUnreadable {
                place: ctx.config.netns.clone().unwrap_or_else(|| "this namespace".into()),
                cause: e.to_string(),
            })?;
        select::resolve(&ctx.config.selector, netns.as_ref(), &[])
    })
}

/// The DNS Service's ports as the node's rules (or the flags) define them.
pub(super) fn dns_service(ctx: &CheckContext) -> Result<Vec<Service>> {
    match resolved(ctx) {
        Ok(resolved) => Ok(resolved.services.clone()),
        Err(why) => Err(Error::Runtime(why.message(&ctx.config.advice))),
    }
}

/// What carries Services when the node namespace has no kube-proxy rules
/// at all (looked at once); `None` when it has them, the DNS Service was
/// given by flags, or the rules could not be read (then the checks say so).
pub(super) fn without_rules(ctx: &CheckContext) -> Option<NodeDatapath> {
    ctx.shared
        .datapath
        .get_or_init(|| match resolved(ctx) {
            Err(SelectError::NoRules { place, notes }) => {
                let netns = open(ctx.config.netns.as_deref()).ok().flatten();
                let bpf = std::path::Path::new(datapath::BPF_GLOBALS);
                Some(datapath::observe(netns.as_ref(), place.clone(), notes.clone(), bpf))
            }
            _ => None,
        })
        .clone()
}

/// The row of a check that reads netfilter's Service DNAT (`what` it would
/// have looked at) on a node without kube-proxy rules: not applicable.
pub(super) fn not_applicable(datapath: &NodeDatapath, what: &str) -> CheckResult {
    CheckResult {
        evidence: format!("{what}: {}", datapath.cause()),
        remedy: None,
        findings: Vec::new(),
        data: json!({ "service_datapath": datapath }),
        status: Some(Status::NotApplicable),
    }
}

fn describe(service: &Service) -> String {
    let ips: Vec<String> = service.cluster_ips.iter().map(ToString::to_string).collect();
    let endpoints: Vec<String> = service.endpoints.iter().map(ToString::to_string).collect();
    format!(
        "{} {} {}:{} -> {}",
        service.port_name_string(),
        service.protocol.as_str(),
        ips.join(","),
        service.port,
        if endpoints.is_empty() { "no endpoints".to_string() } else { endpoints.join(", ") }
    )
}

/// Proxy mode, the DNS Service as the rules define it, zero endpoints, and
/// the rules against the API when `--api` is given. Without kube-proxy
/// rules: not applicable when an eBPF datapath carries Services, else
/// unknown (kube-proxy may be broken).
fn kube_dns(ctx: &CheckContext) -> Result<CheckResult> {
    if let Some(datapath) = without_rules(ctx) {
        return Ok(kube_dns_without_rules(&datapath));
    }
    let config = ServicesConfig {
        selector: ctx.config.selector.clone(),
        netns: ctx.config.netns.clone(),
        cluster_dns: None,
        api: ctx.config.api.clone(),
        advice: ctx.config.advice,
    };
    let report = services_report::build(&config)?;
    let modes: Vec<&str> = report.per_mode.keys().map(|m| m.as_str()).collect();
    let udp: Vec<String> =
        report.services.iter().filter(|s| s.protocol == Protocol::Udp).map(describe).collect();
    let mut evidence = format!(
        "{} ({}): {}",
        if modes.is_empty() { "manual".to_string() } else { format!("{} mode", modes.join("+")) },
        report.source,
        if udp.is_empty() { "no UDP port".to_string() } else { udp.join("; ") }
    );
    if let Some(api) = &report.api {
        evidence.push_str(&format!(
            "; API ({}): {} slices, {} Service ports compared",
            api.from, api.slices, api.compared
        ));
    }
    let data = json!({
        "proxy_modes": report.per_mode,
        "source": report.source,
        "services": report.services,
        "api": report.api,
        "notes": report.notes,
    });
    Ok(CheckResult { evidence, remedy: None, findings: report.findings, data, status: None })
}

/// The kube-dns row on a node without kube-proxy rules.
fn kube_dns_without_rules(datapath: &NodeDatapath) -> CheckResult {
    let undecided = datapath.undecided();
    CheckResult {
        evidence: datapath.reason(),
        remedy: Some(datapath.remedy()),
        findings: vec![datapath.finding()],
        data: json!({ "service_datapath": datapath }),
        status: Some(if undecided { Status::Unknown } else { Status::NotApplicable }),
    }
}

/// Stale UDP conntrack entries of the DNS Service (`--all`: of every UDP
/// Service): a scan only; the remedy names the `ctdiag stale --flush`
/// command. Not applicable without kube-proxy rules: no DNAT, so no entry
/// can point at a dead endpoint.
fn stale_entries(ctx: &CheckContext) -> Result<CheckResult> {
    if let Some(datapath) = without_rules(ctx) {
        return Ok(not_applicable(&datapath, "no netfilter DNAT entries to be stale"));
    }
    let selector = if ctx.config.all { Selector::All } else { ctx.config.selector.clone() };
    let config = StaleConfig {
        selector,
        netns: ctx.config.netns.clone(),
        flush: false,
        all_entries: false,
        command: ctx.config.stale_command.clone(),
        advice: ctx.config.advice,
        from: None,
    };
    // Why a confirm that always says no: doctor never deletes; without
    // `flush` it is never asked anyway.
    let report = stale::run(&config, &mut |_| false)?;
    let per_service: Vec<String> = report
        .services
        .iter()
        .map(|s| {
            format!(
                "{} {}:{}: {} entries, {} stale",
                s.service, s.cluster_ip, s.port, s.scanned, s.stale_count
            )
        })
        .collect();
    let shown = 4;
    let mut evidence = per_service.iter().take(shown).cloned().collect::<Vec<_>>().join("; ");
    if per_service.len() > shown {
        evidence.push_str(&format!("; and {} more Service ports", per_service.len() - shown));
    }
    evidence = format!(
        "{} stale of {} entries scanned: {evidence}",
        report.stale_count,
        report.stale_count + report.live_count
    );
    let data = json!({
        "stale_count": report.stale_count,
        "live_count": report.live_count,
        "table_entries": report.table_entries,
        "kernel_filter": report.kernel_filter,
        "services": report.services.iter().map(|s| json!({
            "service": s.service,
            "cluster_ip": s.cluster_ip,
            "port": s.port,
            "endpoints": s.endpoints,
            "scanned": s.scanned,
            "stale_count": s.stale_count,
            "live_count": s.live_count,
        })).collect::<Vec<_>>(),
        // What the scan could not do (endpoints not checked for a route
        // where `ip` is missing, as in deploy/Containerfile's image).
        "notes": report.notes,
    });
    // Only what is worth a line in doctor: the per-Service "nothing stale"
    // notes stay in `ctdiag stale`.
    let findings: Vec<Finding> =
        report.findings.into_iter().filter(|f| f.code != FindingCode::NoStaleEntries).collect();
    Ok(CheckResult { evidence, remedy: None, findings, data, status: None })
}
