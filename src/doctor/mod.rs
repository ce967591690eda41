//! `ctdiag doctor`: every check in one run, within a time budget, one
//! verdict. Built from a plain [`DoctorConfig`]; the command, `lab run` and
//! the renderers use it from here.
//!
//! Each check runs on its own thread with its share of the budget (a
//! deadline from the start). A check that fails, panics or overruns is
//! `unknown` with the reason, and the others still run: doctor never stops
//! at the first failure. An overrunning check is asked to stop (its stop
//! flag) and left behind; every external command it started dies with the
//! budget ([`crate::process::DeadlineCap`]).
//!
//! Doctor calls the same library functions as the other commands
//! (`conntrack::stats::report`, `service::report`, `stale`,
//! `dns::compare`), never the commands, and never flushes anything.

mod checks;
mod compare;
pub mod datapath;
pub mod dns_path;
mod report;
pub mod resolver;

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::findings::{Finding, Severity};
use crate::service::api::ApiSource;
use crate::service::select::{Advice, Selector};

pub use datapath::NodeDatapath;
pub use report::{CheckReport, DoctorFinding, DoctorReport, Status};

/// The budget when `--budget` is not given.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(15);
/// The shortest budget accepted: every check needs a moment.
pub const MIN_BUDGET: Duration = Duration::from_secs(3);
/// The longest budget accepted.
pub const MAX_BUDGET: Duration = Duration::from_secs(300);
/// Node-local DNS's usual address (NodeLocal DNSCache's `__PILLAR__LOCAL__DNS__`).
pub const NODE_LOCAL_DNS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 20, 10));
/// What is left of the budget for rendering after the last check's deadline.
const RENDER_MARGIN: f64 = 0.05;

/// Validated `ctdiag doctor` settings.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// The node's network namespace (conntrack, kube-proxy rules, node-local
    /// DNS, NFQUEUE rules), as typed; the current one when `None`.
    pub netns: Option<String>,
    /// Where the comparison's lookups start (a pod's namespace); the node's
    /// when `None`.
    pub probe_netns: Option<String>,
    /// The DNS Service (kube-dns unless `--service`/`--cluster-ip`).
    pub selector: Selector,
    /// `--all`: the stale scan covers every UDP Service.
    pub all: bool,
    /// The whole run's time budget.
    pub budget: Duration,
    /// `--api`: EndpointSlices to check the rules against.
    pub api: Option<ApiSource>,
    /// `--pods`: only these network namespaces in the resolver check.
    pub pods: Option<Vec<String>>,
    /// The address node-local DNS would listen on.
    pub node_local_dns: IpAddr,
    /// The `ctdiag stale` command that selects the same Services in the same
    /// namespace (without `--flush`), for remedies.
    pub stale_command: String,
    /// What to pass instead when the DNS Service cannot be resolved (in
    /// the evidence of the checks that need it).
    pub advice: Advice,
}

impl DoctorConfig {
    /// A config for the node namespace `netns` with the defaults, `advice`
    /// from the caller.
    pub fn new(netns: Option<String>, advice: Advice) -> Self {
        let stale_command = match &netns {
            Some(ns) => format!("ctdiag stale --netns {ns}"),
            None => "ctdiag stale".to_string(),
        };
        DoctorConfig {
            netns,
            probe_netns: None,
            selector: Selector::Spec(crate::service::select::ServiceSpec::kube_dns()),
            all: false,
            budget: DEFAULT_BUDGET,
            api: None,
            pods: None,
            node_local_dns: NODE_LOCAL_DNS,
            stale_command,
            advice,
        }
    }
}

/// What a check concluded (before the orchestrator adds its name, status
/// and time).
#[derive(Debug, Clone, Default)]
pub struct CheckResult {
    /// One line: what was seen.
    pub evidence: String,
    /// What to do when nothing is wrong enough for a finding's remedy.
    pub remedy: Option<String>,
    /// The check's findings.
    pub findings: Vec<Finding>,
    /// The check's own data, for `-o json`.
    pub data: serde_json::Value,
    /// The status when the findings do not decide it: `not-applicable`,
    /// or `unknown` with evidence and data (`None`: from the findings).
    pub status: Option<Status>,
}

/// What every check gets.
pub struct CheckContext {
    /// The run's settings.
    pub config: Arc<DoctorConfig>,
    /// When the check's share of the budget ends.
    pub deadline: Instant,
    /// Set when the check should stop (its deadline passed, or Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Results checks share (computed once, by whichever asks first).
    pub shared: Arc<Shared>,
}

impl CheckContext {
    /// Time left before the deadline.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Results several checks use, computed once.
#[derive(Default)]
pub struct Shared {
    /// The DNS Service as the node's rules (or the flags) define it.
    pub dns_service: OnceLock<
        std::result::Result<crate::service::select::Resolved, crate::service::select::SelectError>,
    >,
    /// What carries Services when the node has no kube-proxy rules (`None`:
    /// it has them, the DNS Service was given by flags, or they could not
    /// be read).
    pub datapath: OnceLock<Option<NodeDatapath>>,
}

/// The function a check runs.
pub type CheckFn = Arc<dyn Fn(&CheckContext) -> crate::Result<CheckResult> + Send + Sync>;

/// A check: its name, its share of the budget (its deadline is that
/// fraction of the budget after the start), and what it runs.
#[derive(Clone)]
pub struct CheckSpec {
    /// The name in the table.
    pub name: &'static str,
    /// Fraction of the budget (0 to 1) after which it is given up.
    pub share: f64,
    /// The work.
    pub run: CheckFn,
}

/// Where the run is, for a progress line.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Checks finished (or given up).
    pub done: usize,
    /// Checks in all.
    pub total: usize,
    /// Names of the checks still running.
    pub running: Vec<&'static str>,
    /// Time since the start.
    pub elapsed: Duration,
    /// The budget.
    pub budget: Duration,
}

/// Runs every check within the budget and builds the report. External
/// commands started meanwhile are killed at the end of the budget at the
/// latest. `stop` is the command's (set by Ctrl-C): when it is set, every
/// check is asked to stop and hands in what it has.
pub fn run(config: DoctorConfig, stop: &AtomicBool, progress: &dyn Fn(&Progress)) -> DoctorReport {
    let started = Instant::now();
    let _cap = crate::process::DeadlineCap::until(started + config.budget);
    run_checks(Arc::new(config), checks::all(), started, stop, progress)
}

/// A panic's message, when it has one.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "no message".to_string()
    }
}

/// What a check's thread sends back: its index, its result, its time.
type Done = (usize, std::result::Result<CheckResult, String>, Duration);

/// What a check handed in, and how long it took.
type Returned = (std::result::Result<CheckResult, String>, Duration);

/// The checks of one run while they run: per check (by index) what it
/// handed in, its deadline, its stop flag, and whether it was given up.
struct Running {
    results: Vec<Option<Returned>>,
    deadlines: Vec<Instant>,
    stops: Vec<Arc<AtomicBool>>,
    given_up: Vec<bool>,
    /// Ctrl-C came during the run.
    interrupted: bool,
}

/// Runs `checks` on their own threads, each until its deadline, and builds
/// the report (also used by tests with checks of their own); `stop` as in
/// [`run`].
pub fn run_checks(
    config: Arc<DoctorConfig>,
    checks: Vec<CheckSpec>,
    started: Instant,
    stop: &AtomicBool,
    progress: &dyn Fn(&Progress),
) -> DoctorReport {
    let budget = config.budget;
    let shared = Arc::new(Shared::default());
    let (mut running, rx) = spawn_checks(&config, &checks, started, &shared);
    wait_for_checks(&mut running, &rx, &checks, started, budget, stop, progress);
    let mut reports = Vec::with_capacity(checks.len());
    let mut findings = Vec::new();
    for (index, spec) in checks.iter().enumerate() {
        let allowed = running.deadlines[index].saturating_duration_since(started);
        let returned = running.results[index].take();
        reports.push(check_report(
            spec,
            returned,
            allowed,
            running.interrupted,
            budget,
            &mut findings,
        ));
    }
    // Most severe first; checks keep their order among equals.
    findings.sort_by_key(|f| std::cmp::Reverse(f.finding.severity));
    // What a check that is still running has not decided yet stays unknown.
    let service_datapath = shared.datapath.get().cloned().flatten();
    let (verdict, summary) = verdict(&reports, &findings, service_datapath.as_ref());
    DoctorReport {
        verdict,
        summary,
        netns: config.netns.clone(),
        budget_s: seconds(budget),
        duration_s: seconds(started.elapsed()),
        checks: reports,
        service_datapath,
        findings,
    }
}

/// Starts one thread per check, each with its deadline (its share of the
/// budget after `started`) and its stop flag; a check whose thread cannot
/// start has its error handed in at once.
fn spawn_checks(
    config: &Arc<DoctorConfig>,
    checks: &[CheckSpec],
    started: Instant,
    shared: &Arc<Shared>,
) -> (Running, mpsc::Receiver<Done>) {
    let budget = config.budget;
    let (tx, rx) = mpsc::channel::<Done>();
    let mut running = Running {
        results: vec![None; checks.len()],
        deadlines: Vec::with_capacity(checks.len()),
        stops: Vec::with_capacity(checks.len()),
        given_up: vec![false; checks.len()],
        interrupted: false,
    };
    for (index, spec) in checks.iter().enumerate() {
        let share = spec.share.clamp(0.05, 1.0 - RENDER_MARGIN);
        let deadline = started + budget.mul_f64(share);
        let stop = Arc::new(AtomicBool::new(false));
        running.deadlines.push(deadline);
        running.stops.push(stop.clone());
        let context =
            CheckContext { config: config.clone(), deadline, stop, shared: shared.clone() };
        let run = spec.run.clone();
        let tx = tx.clone();
        let spawned =
            std::thread::Builder::new().name(format!("doctor-{}", spec.name)).spawn(move || {
                let began = Instant::now();
                let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| run(&context))) {
                    Ok(Ok(result)) => Ok(result),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(payload) => {
                        Err(format!("the check failed (panic: {})", panic_text(&*payload)))
                    }
                };
                let _ = tx.send((index, outcome, began.elapsed()));
            });
        if let Err(e) = spawned {
            running.results[index] =
                Some((Err(format!("cannot start its thread: {e}")), Duration::ZERO));
        }
    }
    (running, rx)
}

/// Collects what the checks hand in until each has or is given up (at its
/// deadline, or a moment after Ctrl-C), reporting progress on the way.
fn wait_for_checks(
    running: &mut Running,
    rx: &mpsc::Receiver<Done>,
    checks: &[CheckSpec],
    started: Instant,
    budget: Duration,
    stop: &AtomicBool,
    progress: &dyn Fn(&Progress),
) {
    loop {
        let pending: Vec<usize> = (0..checks.len())
            .filter(|i| running.results[*i].is_none() && !running.given_up[*i])
            .collect();
        progress(&Progress {
            done: checks.len() - pending.len(),
            total: checks.len(),
            running: pending.iter().map(|i| checks[*i].name).collect(),
            elapsed: started.elapsed(),
            budget,
        });
        if pending.is_empty() {
            break;
        }
        if !running.interrupted && stop.load(Ordering::Relaxed) {
            // Ctrl-C: every check is asked to stop and gets a moment to
            // hand in what it has.
            running.interrupted = true;
            let soon = Instant::now() + Duration::from_secs(1);
            for i in &pending {
                running.stops[*i].store(true, Ordering::SeqCst);
                running.deadlines[*i] = running.deadlines[*i].min(soon);
            }
        }
        let now = Instant::now();
        for i in &pending {
            if now >= running.deadlines[*i] {
                running.stops[*i].store(true, Ordering::SeqCst);
                running.given_up[*i] = true;
            }
        }
        let next = pending
            .iter()
            .filter(|i| !running.given_up[**i])
            .map(|i| running.deadlines[*i])
            .min()
            .unwrap_or(now);
        let wait = next.saturating_duration_since(now).min(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok((index, outcome, took)) => {
                if !running.given_up[index] {
                    running.results[index] = Some((outcome, took));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every thread has reported or died; what is missing is given up.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                for i in pending {
                    if running.results[i].is_none() {
                        running.given_up[i] = true;
                    }
                }
            }
        }
    }
}

/// One check's row from what it handed in (its findings go to `findings`,
/// named after it), or `unknown` with the reason when it handed in nothing
/// within `allowed`.
fn check_report(
    spec: &CheckSpec,
    returned: Option<Returned>,
    allowed: Duration,
    interrupted: bool,
    budget: Duration,
    findings: &mut Vec<DoctorFinding>,
) -> CheckReport {
    match returned {
        Some((Ok(result), took)) => {
            let status = result.status.unwrap_or_else(|| Status::of(&result.findings));
            let remedy = result
                .findings
                .iter()
                .filter(|f| f.severity >= Severity::Warning)
                .max_by_key(|f| f.severity)
                .map(|f| f.remedy.clone())
                .or(result.remedy.clone())
                .unwrap_or_else(|| "-".to_string());
            findings.extend(
                result
                    .findings
                    .into_iter()
                    .map(|finding| DoctorFinding { check: spec.name.to_string(), finding }),
            );
            CheckReport {
                check: spec.name.to_string(),
                status,
                evidence: result.evidence,
                remedy,
                duration_s: seconds(took),
                data: result.data,
            }
        }
        Some((Err(why), took)) => unknown(spec.name, why, seconds(took)),
        None if interrupted => {
            unknown(spec.name, "interrupted before it finished".into(), seconds(allowed))
        }
        None => unknown(
            spec.name,
            format!(
                "did not finish within {:.1} s (its share of the {:.0} s budget; --budget gives more)",
                allowed.as_secs_f64(),
                budget.as_secs_f64()
            ),
            seconds(allowed),
        ),
    }
}

/// The run's verdict (the worst problem, else `unknown` when a check could
/// not tell or none applied, else ok) and its one-line summary; `findings`
/// most severe first; `datapath` when the node has no kube-proxy rules.
/// Checks that do not apply are counted apart, never as passed.
fn verdict(
    reports: &[CheckReport],
    findings: &[DoctorFinding],
    datapath: Option<&NodeDatapath>,
) -> (Status, String) {
    let problem = reports.iter().map(|c| c.status).filter(|s| *s >= Status::Warning).max();
    let count = |status: Status| reports.iter().filter(|c| c.status == status).count();
    let not_applicable = count(Status::NotApplicable);
    let verdict = match problem {
        Some(status) => status,
        None if count(Status::Unknown) > 0 => Status::Unknown,
        None if not_applicable == reports.len() && !reports.is_empty() => Status::Unknown,
        None => Status::Ok,
    };
    // Why the checks that do not apply do not: the datapath in a few
    // words, else the first such check's evidence.
    let why_not = || {
        datapath.map(NodeDatapath::short).unwrap_or_else(|| {
            reports
                .iter()
                .find(|c| c.status == Status::NotApplicable)
                .map(|c| c.evidence.clone())
                .unwrap_or_default()
        })
    };
    let summary = match verdict {
        Status::Critical | Status::Warning => findings
            .first()
            .map(|f| format!("{}: {}", f.finding.code, f.finding.summary))
            .unwrap_or_default(),
        Status::Unknown if datapath.is_some_and(NodeDatapath::undecided) => format!(
            "{}: no Service rules, no other Service datapath seen",
            if datapath.is_some_and(|d| d.signs.is_empty()) {
                "kube-proxy may be broken or never synced"
            } else {
                "kube-proxy may be broken (IPVS without ip_vs)"
            }
        ),
        Status::Unknown if count(Status::Unknown) == 0 => {
            format!("no check applies here: {}", why_not())
        }
        Status::Unknown => {
            let unknown: Vec<&str> = reports
                .iter()
                .filter(|c| c.status == Status::Unknown)
                .map(|c| c.check.as_str())
                .collect();
            format!("nothing wrong found, but {} could not be checked", unknown.join(", "))
        }
        Status::Ok if not_applicable > 0 => {
            format!("{} passed, {not_applicable} not applicable: {}", count(Status::Ok), why_not())
        }
        Status::Ok | Status::NotApplicable => format!("all {} checks passed", reports.len()),
    };
    (verdict, summary)
}

fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

fn unknown(name: &str, why: String, duration_s: f64) -> CheckReport {
    CheckReport {
        check: name.to_string(),
        status: Status::Unknown,
        evidence: why,
        remedy: "-".to_string(),
        duration_s,
        data: serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{FindingCode, Outcome};

    fn spec(
        name: &'static str,
        share: f64,
        run: impl Fn(&CheckContext) -> crate::Result<CheckResult> + Send + Sync + 'static,
    ) -> CheckSpec {
        CheckSpec { name, share, run: Arc::new(run) }
    }

    fn config(budget: Duration) -> Arc<DoctorConfig> {
        Arc::new(DoctorConfig {
            budget,
            ..DoctorConfig::new(Some("node".into()), crate::commands::args::SELECT_ADVICE)
        })
    }

    fn clean(_: &CheckContext) -> crate::Result<CheckResult> {
        Ok(CheckResult { evidence: "fine".into(), ..CheckResult::default() })
    }

    #[test]
    fn a_failing_panicking_or_hanging_check_is_unknown_and_the_others_still_run() {
        let started = Instant::now();
        let checks = vec![
            spec("fails", 0.9, |_| Err(crate::Error::Privilege("CAP_NET_ADMIN is needed".into()))),
            spec("panics", 0.9, |_| panic!("decoder bug")),
            spec("hangs", 0.3, |ctx| {
                // Ignores its stop flag: the orchestrator must not wait.
                let _ = &ctx.stop;
                std::thread::sleep(Duration::from_secs(30));
                clean(ctx)
            }),
            spec("warns", 0.9, |_| {
                Ok(CheckResult {
                    evidence: "drops".into(),
                    findings: vec![Finding::new(
                        Severity::Warning,
                        FindingCode::ChainTooLong,
                        "chains",
                        "chaintoolong +1",
                        "raise buckets",
                    )],
                    ..CheckResult::default()
                })
            }),
            spec("fine", 0.9, clean),
        ];
        let report = run_checks(
            config(Duration::from_secs(2)),
            checks,
            started,
            &AtomicBool::new(false),
            &|_| {},
        );
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_millis(1900), "{elapsed:?}");
        let status: Vec<(&str, Status)> =
            report.checks.iter().map(|c| (c.check.as_str(), c.status)).collect();
        assert_eq!(
            status,
            [
                ("fails", Status::Unknown),
                ("panics", Status::Unknown),
                ("hangs", Status::Unknown),
                ("warns", Status::Warning),
                ("fine", Status::Ok),
            ]
        );
        assert!(report.checks[0].evidence.contains("CAP_NET_ADMIN"));
        assert!(report.checks[1].evidence.contains("decoder bug"));
        assert!(
            report.checks[2].evidence.contains("did not finish within 0.6 s"),
            "{}",
            report.checks[2].evidence
        );
        assert_eq!(report.checks[3].remedy, "raise buckets");
        assert_eq!(report.verdict, Status::Warning);
        assert_eq!(report.outcome(), Outcome::Problem);
        assert_eq!(report.npd_outcome(), Outcome::Problem);
        assert!(report.summary.starts_with("chain-too-long: "), "{}", report.summary);
        assert_eq!(report.findings[0].check, "warns");
    }

    #[test]
    fn verdicts_and_exit_statuses() {
        let started = Instant::now();
        let all_fine = run_checks(
            config(Duration::from_secs(5)),
            vec![spec("a", 0.5, clean)],
            started,
            &AtomicBool::new(false),
            &|_| {},
        );
        assert_eq!(
            (all_fine.verdict, all_fine.outcome(), all_fine.npd_outcome()),
            (Status::Ok, Outcome::Clean, Outcome::Clean)
        );
        let partly = run_checks(
            config(Duration::from_secs(5)),
            vec![
                spec("a", 0.5, clean),
                spec("b", 0.5, |_| Err(crate::Error::Runtime("no".into()))),
            ],
            started,
            &AtomicBool::new(false),
            &|_| {},
        );
        assert_eq!(partly.verdict, Status::Unknown);
        // A person still gets exit 0 (something was checked); NPD gets Unknown.
        assert_eq!((partly.outcome(), partly.npd_outcome()), (Outcome::Clean, Outcome::Unknown));
        assert!(partly.summary.contains("b could not be checked"), "{}", partly.summary);
        let nothing = run_checks(
            config(Duration::from_secs(5)),
            vec![spec("b", 0.5, |_| Err(crate::Error::Runtime("no".into())))],
            started,
            &AtomicBool::new(false),
            &|_| {},
        );
        assert_eq!(
            (nothing.outcome(), nothing.npd_outcome()),
            (Outcome::Unknown, Outcome::Unknown)
        );
    }
    fn not_applicable(_: &CheckContext) -> crate::Result<CheckResult> {
        Ok(CheckResult {
            evidence: "no DNAT here".into(),
            status: Some(Status::NotApplicable),
            ..CheckResult::default()
        })
    }

    /// A check that has seen the node's datapath (as `without_rules` does),
    /// `interfaces` in the node namespace.
    fn seeing(
        interfaces: &'static [&'static str],
    ) -> impl Fn(&CheckContext) -> crate::Result<CheckResult> {
        move |ctx| {
            let names: Vec<String> = interfaces.iter().map(|s| s.to_string()).collect();
            let seen = NodeDatapath {
                kube_proxy_rules: false,
                place: "node".into(),
                signs: datapath::signs(&names, false, &[]),
                notes: vec![],
            };
            let _ = ctx.shared.datapath.set(Some(seen.clone()));
            Ok(CheckResult {
                evidence: seen.reason(),
                status: Some(if seen.undecided() {
                    Status::Unknown
                } else {
                    Status::NotApplicable
                }),
                ..CheckResult::default()
            })
        }
    }

    fn run_specs(checks: Vec<CheckSpec>) -> DoctorReport {
        run_checks(
            config(Duration::from_secs(5)),
            checks,
            Instant::now(),
            &AtomicBool::new(false),
            &|_| {},
        )
    }

    #[test]
    fn checks_that_do_not_apply_are_counted_apart() {
        let report = run_specs(vec![
            spec("a", 0.5, clean),
            spec("kube-dns", 0.5, seeing(&["cilium_host"])),
            spec("stale", 0.5, not_applicable),
            spec("compare", 0.5, not_applicable),
            spec("b", 0.5, clean),
        ]);
        assert_eq!(report.verdict, Status::Ok);
        assert_eq!(
            report.summary,
            "2 passed, 3 not applicable: Cilium eBPF datapath, no kube-proxy rules"
        );
        assert_eq!((report.outcome(), report.npd_outcome()), (Outcome::Clean, Outcome::Clean));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][2]["status"], "not-applicable");
        assert_eq!(json["service_datapath"]["signs"][0]["datapath"], "cilium");
        // A check that applies and fails still decides the verdict.
        let warned = run_specs(vec![
            spec("stale", 0.5, not_applicable),
            spec("warns", 0.5, |_| {
                Ok(CheckResult {
                    findings: vec![Finding::new(
                        Severity::Warning,
                        FindingCode::ChainTooLong,
                        "chains",
                        "",
                        "",
                    )],
                    ..CheckResult::default()
                })
            }),
        ]);
        assert_eq!((warned.verdict, warned.outcome()), (Status::Warning, Outcome::Problem));
        // Nothing applies: not OK.
        let none = run_specs(vec![spec("stale", 0.5, not_applicable)]);
        assert_eq!(none.verdict, Status::Unknown);
        assert_eq!((none.outcome(), none.npd_outcome()), (Outcome::Unknown, Outcome::Unknown));
        assert!(
            none.summary.starts_with("no check applies here: no DNAT here"),
            "{}",
            none.summary
        );
    }

    #[test]
    fn no_rules_and_no_other_datapath_is_unknown_for_a_person_too() {
        for (interfaces, summary) in [
            (&[][..], "kube-proxy may be broken or never synced"),
            (&["kube-ipvs0"][..], "kube-proxy may be broken (IPVS without ip_vs)"),
        ] {
            let interfaces: &'static [&'static str] = interfaces;
            let report = run_specs(vec![
                spec("conntrack", 0.5, clean),
                spec("kube-dns", 0.5, seeing(interfaces)),
                spec("stale", 0.5, not_applicable),
            ]);
            assert_eq!(report.verdict, Status::Unknown, "{interfaces:?}");
            assert!(report.summary.starts_with(summary), "{}", report.summary);
            // Unlike a check that merely could not run (exit 0 for a
            // person), nothing here says the node's Services work.
            assert_eq!(
                (report.outcome(), report.npd_outcome()),
                (Outcome::Unknown, Outcome::Unknown)
            );
        }
    }
}
