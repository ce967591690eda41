//! `ctdiag lab run`: builds a lab, puts it through each failure in turn,
//! runs doctor (the library) on each, and says whether doctor found what
//! the failure should show and nothing else; then tears the lab down, also
//! on Ctrl-C, on an error and on a panic (a guard).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::fill::{Family, FillConfig, FillTarget};
use super::{DnsServerKind, IpFamily, LabConfig, ProxyMode, Scenario};
use crate::dns::engine::{self, EngineConfig, Mode};
use crate::doctor::{self, DoctorConfig, DoctorReport, Status};
use crate::error::{Error, Result};
use crate::findings::Severity;
use crate::netns::Netns;
use crate::service::select::Advice;

/// The failures `lab run` reproduces, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunScenario {
    /// Nothing wrong: doctor must find nothing at warning or above.
    Healthy,
    /// The client pod races A/AAAA pairs from one socket (two threads, the
    /// most race-prone way) during doctor's sampling.
    ParallelClash,
    /// The node drops the second query of a pair sent at once on one
    /// socket (`lab scenario race-drop`): the race's drop on kernels
    /// without clash resolution, imitated.
    RaceDrop,
    /// An endpoint's pod is gone, the rules still point at it.
    DeadEndpoint,
    /// An endpoint answers 1.5 s late.
    SlowEndpoint,
    /// An endpoint left the rules; its conntrack entries keep sticky
    /// clients blackholed.
    StaleEntries,
    /// The node's table is filled to `nf_conntrack_max`.
    FullTable,
}

impl RunScenario {
    /// Every scenario, in the order they run.
    pub const ALL: [RunScenario; 7] = [
        RunScenario::Healthy,
        RunScenario::ParallelClash,
        RunScenario::RaceDrop,
        RunScenario::DeadEndpoint,
        RunScenario::SlowEndpoint,
        RunScenario::StaleEntries,
        RunScenario::FullTable,
    ];

    /// The name in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            RunScenario::Healthy => "healthy",
            RunScenario::ParallelClash => "parallel-clash",
            RunScenario::RaceDrop => "race-drop",
            RunScenario::DeadEndpoint => "dead-endpoint",
            RunScenario::SlowEndpoint => "slow-endpoint",
            RunScenario::StaleEntries => "stale-entries",
            RunScenario::FullTable => "full-table",
        }
    }

    /// The findings that show this failure: at least one must be present.
    /// On a kernel that resolves clashes the race shows as resolved
    /// clashes; on one that does not, as drops.
    pub fn expected(self) -> &'static [&'static str] {
        match self {
            RunScenario::Healthy => &[],
            RunScenario::ParallelClash => &["clashes-resolved", "conntrack-drops"],
            RunScenario::RaceDrop => &["cluster-ip-path-loss"],
            RunScenario::DeadEndpoint => &["endpoint-dead"],
            RunScenario::SlowEndpoint => &["endpoint-slow"],
            RunScenario::StaleEntries => &["stale-entries"],
            RunScenario::FullTable => &["table-full", "table-near-full"],
        }
    }

    /// Warnings that are the same failure seen by another check (a dead
    /// endpoint is also unreachable from the node; a full table also drops
    /// and evicts): not unrelated.
    pub fn related(self) -> &'static [&'static str] {
        match self {
            RunScenario::Healthy => &[],
            RunScenario::ParallelClash => &["conntrack-drops"],
            RunScenario::RaceDrop => &[],
            RunScenario::DeadEndpoint => {
                &["endpoint-unreachable", "cluster-ip-path-loss", "endpoint-lossy"]
            }
            RunScenario::SlowEndpoint => &["cluster-ip-path-slow"],
            RunScenario::StaleEntries => &[],
            RunScenario::FullTable => &[
                "early-drop",
                "conntrack-drops",
                "endpoint-dead",
                "endpoint-lossy",
                "cluster-ip-path-loss",
                "loss-everywhere",
                // Why slowness counts as the same failure: every new flow
                // into a full table first has the kernel look for an entry
                // to evict (early_drop); on a busy 2-core machine the
                // comparison once saw an endpoint's p90 at 44 ms there.
                "endpoint-slow",
                "cluster-ip-path-slow",
            ],
        }
    }

    /// Parses a name from the table.
    pub fn parse(text: &str) -> Option<Self> {
        RunScenario::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What `lab run` is to do.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The lab's prefix (a lab with it is rebuilt).
    pub prefix: String,
    /// kube-proxy mode of the lab's rules.
    pub proxy_mode: ProxyMode,
    /// Doctor's budget per scenario.
    pub budget: Duration,
    /// The scenarios, in order.
    pub scenarios: Vec<RunScenario>,
    /// What doctor's evidence tells to pass instead when the DNS Service
    /// cannot be resolved.
    pub advice: Advice,
}

/// One scenario's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: RunScenario,
    /// Codes that show the failure (one is enough).
    pub expected: Vec<&'static str>,
    /// Whether one of them was found (true for the healthy lab).
    pub expected_found: bool,
    /// Every finding at warning or above, and the expected ones at any
    /// severity: `code` (`severity`).
    pub found: Vec<String>,
    /// Warnings or worse that are neither expected nor the same failure
    /// seen by another check.
    pub unrelated: Vec<String>,
    /// Checks that could not run.
    pub unknown: Vec<String>,
    /// Whether doctor did what it should here.
    pub passed: bool,
    /// Doctor's verdict.
    pub verdict: Status,
    /// Setting the scenario up, seconds.
    pub setup_s: f64,
    /// Doctor's run, seconds.
    pub doctor_s: f64,
    /// Why the scenario could not be run, when it could not.
    pub error: Option<String>,
    /// Doctor's whole report (none when the scenario could not be set up).
    pub doctor: Option<DoctorReport>,
}

/// What `lab run` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The lab's prefix.
    pub prefix: String,
    /// One per scenario run.
    pub scenarios: Vec<ScenarioResult>,
    /// Whether every scenario passed.
    pub passed: bool,
    /// Whether Ctrl-C (or SIGTERM) ended the run early.
    pub interrupted: bool,
    /// Whether the lab was removed at the end.
    pub torn_down: bool,
    /// Wall time, seconds.
    pub duration_s: f64,
}

/// Tears the lab down when dropped: at the end, on an error, on a panic.
struct Teardown {
    prefix: String,
    done: bool,
}

impl Teardown {
    fn finish(&mut self) -> bool {
        self.done = true;
        super::down(&self.prefix).is_ok()
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        if !self.done {
            let _ = super::down(&self.prefix);
        }
    }
}

fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// A healthy lab with two embedded endpoints.
fn healthy_lab(config: &RunConfig) -> Result<super::LabInfo> {
    super::up(&LabConfig {
        prefix: config.prefix.clone(),
        endpoints: 2,
        dns: DnsServerKind::Embedded,
        behavior: super::responder::ResponderBehavior::healthy(),
        proxy_mode: config.proxy_mode,
        ip_family: IpFamily::Ipv4,
    })
}

/// Puts the (freshly built) lab into the scenario's failure.
fn set_up(config: &RunConfig, scenario: RunScenario) -> Result<()> {
    let prefix = &config.prefix;
    match scenario {
        RunScenario::Healthy | RunScenario::ParallelClash => {}
        RunScenario::RaceDrop => {
            super::apply_scenario(prefix, &Scenario::RaceDrop)?;
        }
        RunScenario::DeadEndpoint => {
            super::apply_scenario(prefix, &Scenario::DeadEndpoint { endpoint: None })?;
        }
        RunScenario::SlowEndpoint => {
            super::apply_scenario(
                prefix,
                &Scenario::SlowEndpoint { endpoint: None, delay: Duration::from_millis(1500) },
            )?;
        }
        RunScenario::StaleEntries => {
            super::apply_scenario(prefix, &Scenario::StaleEndpoint { endpoint: None })?;
        }
        RunScenario::FullTable => {
            let node = Netns::open(&super::node_ns(prefix))?;
            let max = crate::conntrack::stats::report::read_snapshot(
                &crate::conntrack::stats::report::StatsConfig::default(),
                Some(&node),
            )?
            .max_entries;
            let flows = u32::try_from(max).unwrap_or(u32::MAX);
            // Entries that outlive doctor's run: the kernel's 30 s UDP
            // timeout would let the table drain while it looks.
            let report = super::fill::fill(&FillConfig {
                prefix: prefix.clone(),
                flows,
                target: FillTarget::Unrelated,
                family: Family::Ipv4,
                timeout: Some(config.budget * 4 + Duration::from_secs(60)),
            })?;
            if report.entries_after < report.conntrack_max {
                return Err(Error::Runtime(format!(
                    "the fill reached {} of {} entries",
                    report.entries_after, report.conntrack_max
                )));
            }
        }
    }
    Ok(())
}

/// The race load of the parallel-clash scenario: lookups from the client
/// pod in threads mode until `stop`.
fn race_load(
    prefix: &str,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> Result<std::thread::JoinHandle<()>> {
    let client = Netns::open(&super::client_ns(prefix))?;
    let config = EngineConfig {
        server: SocketAddr::new(super::CLUSTER_IP.into(), super::DNS_PORT),
        names: vec![crate::dns::wire::parse_name(crate::dns::probe::DEFAULT_NAME)?],
        mode: Mode::Threads,
        count: None,
        duration: Some(limit),
        rate: 400.0,
        concurrency: 16,
        timeout: Duration::from_secs(1),
        linger: Duration::from_millis(500),
        max_run: limit,
        slow_after: Duration::from_secs(5),
        resolver_timeout: Duration::from_secs(5),
        retry_after: None,
    };
    std::thread::Builder::new()
        .name("lab-run-race".into())
        .spawn(move || {
            let _ = client.run(|| engine::run(&config, &stop, &|_| {}));
        })
        .map_err(|e| Error::Runtime(format!("cannot start the race load: {e}")))
}

/// Runs doctor on the lab as a node-problem-detector on it would: the
/// node's namespace, lookups from the client pod, its resolver.
fn doctor_config(config: &RunConfig) -> DoctorConfig {
    let node = super::node_ns(&config.prefix);
    let client = super::client_ns(&config.prefix);
    DoctorConfig {
        probe_netns: Some(client.clone()),
        pods: Some(vec![client]),
        budget: config.budget,
        ..DoctorConfig::new(Some(node), config.advice)
    }
}

/// Judges doctor's report for `scenario`.
fn judge(
    scenario: RunScenario,
    report: &DoctorReport,
) -> (bool, Vec<String>, Vec<String>, Vec<String>) {
    let expected = scenario.expected();
    let related = scenario.related();
    let mut found = Vec::new();
    let mut unrelated = Vec::new();
    for f in &report.findings {
        let code = f.finding.code.as_str();
        let shown = f.finding.severity >= Severity::Warning || expected.contains(&code);
        if !shown {
            continue;
        }
        let text = format!("{code} ({})", f.finding.severity.as_str());
        if !found.contains(&text) {
            found.push(text.clone());
        }
        if f.finding.severity >= Severity::Warning
            && !expected.contains(&code)
            && !related.contains(&code)
            && !unrelated.contains(&text)
        {
            unrelated.push(text);
        }
    }
    let expected_found = expected.is_empty()
        || report.findings.iter().any(|f| expected.contains(&f.finding.code.as_str()));
    let unknown: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Unknown)
        .map(|c| format!("{}: {}", c.check, c.evidence))
        .collect();
    (expected_found, found, unrelated, unknown)
}

/// Runs every scenario of `config` in turn on a lab rebuilt for each, and
/// tears the lab down at the end (also when `stop` is set, on an error or
/// a panic). `stop` is the command's (set by Ctrl-C and SIGTERM); `progress`
/// hears what is happening, for a status line.
pub fn run(config: &RunConfig, stop: &AtomicBool, progress: &dyn Fn(&str)) -> Result<RunReport> {
    super::validate_prefix(&config.prefix)?;
    super::require_root()?;
    let started = Instant::now();
    let mut teardown = Teardown { prefix: config.prefix.clone(), done: false };
    let mut results = Vec::new();
    let mut interrupted = false;
    for scenario in &config.scenarios {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        progress(&format!("{}: building the lab", scenario.as_str()));
        let setup_started = Instant::now();
        let prepared = healthy_lab(config).and_then(|_| set_up(config, *scenario));
        let setup_s = seconds(setup_started.elapsed());
        if let Err(e) = prepared {
            results.push(ScenarioResult {
                scenario: *scenario,
                expected: scenario.expected().to_vec(),
                expected_found: false,
                found: Vec::new(),
                unrelated: Vec::new(),
                unknown: Vec::new(),
                passed: false,
                verdict: Status::Unknown,
                setup_s,
                doctor_s: 0.0,
                error: Some(format!("could not set the scenario up: {e}")),
                doctor: None,
            });
            continue;
        }
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        progress(&format!(
            "{}: running doctor (budget {:.0} s)",
            scenario.as_str(),
            config.budget.as_secs_f64()
        ));
        let stop_load = Arc::new(AtomicBool::new(false));
        let load = if *scenario == RunScenario::ParallelClash {
            Some(race_load(&config.prefix, stop_load.clone(), config.budget)?)
        } else {
            None
        };
        let doctor_started = Instant::now();
        let report = doctor::run(doctor_config(config), stop, &|_| {});
        let doctor_s = seconds(doctor_started.elapsed());
        stop_load.store(true, Ordering::SeqCst);
        if let Some(load) = load {
            let _ = load.join();
        }
        let (expected_found, found, unrelated, unknown) = judge(*scenario, &report);
        let passed = expected_found && unrelated.is_empty() && unknown.is_empty();
        results.push(ScenarioResult {
            scenario: *scenario,
            expected: scenario.expected().to_vec(),
            expected_found,
            found,
            unrelated,
            unknown,
            passed,
            verdict: report.verdict,
            setup_s,
            doctor_s,
            error: None,
            doctor: Some(report),
        });
    }
    if stop.load(Ordering::SeqCst) {
        interrupted = true;
    }
    progress("tearing the lab down");
    let torn_down = teardown.finish();
    let passed =
        !interrupted && results.len() == config.scenarios.len() && results.iter().all(|r| r.passed);
    Ok(RunReport {
        prefix: config.prefix.clone(),
        scenarios: results,
        passed,
        interrupted,
        torn_down,
        duration_s: seconds(started.elapsed()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip_and_expectations_are_declared_codes() {
        for scenario in RunScenario::ALL {
            assert_eq!(RunScenario::parse(scenario.as_str()), Some(scenario));
        }
        assert!(RunScenario::Healthy.expected().is_empty());
        assert_eq!(RunScenario::parse("nope"), None);
    }
}
