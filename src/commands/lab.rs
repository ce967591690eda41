//! `ctdiag lab`: validate the arguments, build/inspect/tear down the lab,
//! render what it is.

use std::time::Duration;

use comfy_table::Cell;

use crate::app::Outcome;
use crate::cli::{
    FamilyArg, LabAction, LabArgs, LabDnsServer, LabFillArgs, LabFillTarget, LabIpFamily,
    LabProxyMode, LabRunArgs, LabRunScenario, LabScenarioArgs, LabScenarioName, OutputFormat,
    ResponderBehaviorArgs,
};
use crate::error::Result;
use crate::lab::fill::{Family, FillConfig, FillReport, FillTarget};
use crate::lab::responder::ResponderBehavior;
use crate::lab::run::{RunConfig, RunReport, RunScenario};
use crate::lab::{
    self, DnsServerKind, DownReport, EndpointState, IpFamily, LabConfig, LabInfo, ProxyMode,
    Scenario,
};
use crate::render::{emit, json, note, table, Context, Delivery};

/// Default delay of the slow-endpoint scenario.
const DEFAULT_SLOW_DELAY: Duration = Duration::from_millis(1500);
/// Default AAAA drop share of the lossy scenario when no share is given.
const DEFAULT_LOSSY_AAAA_RATE: f64 = 0.5;

/// The responder behaviour the flags ask for.
fn behavior(args: &ResponderBehaviorArgs) -> ResponderBehavior {
    ResponderBehavior {
        delay: Duration::from_millis(args.delay_ms),
        drop_rate: args.drop_rate,
        drop_aaaa_rate: args.drop_aaaa_rate,
    }
}

/// Validates the arguments, runs, renders.
pub fn execute(args: LabArgs, ctx: &Context) -> Result<Outcome> {
    if let LabAction::Responder(responder) = &args.action {
        // The responder is a server, not a report: it runs until killed.
        lab::responder::serve(&responder.listen, behavior(&responder.behavior), responder.threads)?;
        return Ok(Outcome::Clean);
    }
    if let LabAction::Client(client) = &args.action {
        // Like the responder: a long-running process, not a report.
        lab::client::run(&lab::client::ClientConfig {
            bind: client.bind,
            server: client.server,
            status_file: client.status.clone(),
            hostname: client.hostname.clone(),
            netns_file: client.netns_file.clone(),
            interval: Duration::from_millis(client.interval_ms),
            lifetime: Duration::from_secs(client.lifetime_s),
        })?;
        return Ok(Outcome::Clean);
    }
    ctx.no_prometheus("ctdiag lab")?;
    match args.action {
        LabAction::Up(up) => {
            let config = LabConfig {
                prefix: up.lab.prefix,
                endpoints: up.endpoints,
                dns: match up.dns {
                    LabDnsServer::Embedded => DnsServerKind::Embedded,
                    LabDnsServer::Dnsmasq => DnsServerKind::Dnsmasq,
                },
                behavior: behavior(&up.behavior),
                proxy_mode: match up.proxy_mode {
                    LabProxyMode::Iptables => ProxyMode::Iptables,
                    LabProxyMode::Nftables => ProxyMode::Nftables,
                },
                ip_family: match up.ip_family {
                    LabIpFamily::Ipv4 => IpFamily::Ipv4,
                    LabIpFamily::Ipv6 => IpFamily::Ipv6,
                    LabIpFamily::Dual => IpFamily::Dual,
                },
            };
            let info = lab::up(&config)?;
            render_info(ctx, &info)?;
            if ctx.format == OutputFormat::Table {
                note(
                    ctx,
                    &format!(
                        "Try: ctdiag probe --netns {} --stats-netns {} --count 200",
                        info.namespaces.client, info.namespaces.node
                    ),
                );
            }
            Ok(Outcome::Clean)
        }
        LabAction::Down(down) => {
            let report = lab::down(&down.lab.prefix)?;
            render_down(ctx, &report)?;
            Ok(Outcome::Clean)
        }
        LabAction::Status(which) => {
            let info = lab::status(&which.prefix)?;
            let broken = info.servers.iter().any(|s| s.state == EndpointState::Running && !s.alive);
            render_info(ctx, &info)?;
            Ok(if broken { Outcome::Problem } else { Outcome::Clean })
        }
        LabAction::Scenario(scenario_args) => {
            let prefix = scenario_args.lab.prefix.clone();
            let scenario = validate_scenario(&scenario_args)?;
            let info = lab::apply_scenario(&prefix, &scenario)?;
            render_info(ctx, &info)?;
            Ok(Outcome::Clean)
        }
        LabAction::Fill(fill_args) => {
            let report = lab::fill::fill(&fill_config(&fill_args))?;
            // Fewer entries than asked for is worth a non-zero exit: a test
            // or a benchmark built on the fill must not go on unaware.
            let outcome = if report.created < i64::from(report.flows) {
                Outcome::Problem
            } else {
                Outcome::Clean
            };
            render_fill(ctx, &report)?;
            Ok(outcome)
        }
        LabAction::Run(run_args) => run(ctx, &run_args),
        LabAction::Responder(_) | LabAction::Client(_) => Ok(Outcome::Clean),
    }
}

/// `lab run`: every scenario, doctor on each, the table.
fn run(ctx: &Context, args: &LabRunArgs) -> Result<Outcome> {
    let budget = crate::commands::args::parse_duration_of("--budget", &args.budget)?;
    if budget < crate::doctor::MIN_BUDGET || budget > crate::doctor::MAX_BUDGET {
        return Err(crate::error::Error::Usage(format!(
            "--budget {}: between {} s and {} s",
            args.budget,
            crate::doctor::MIN_BUDGET.as_secs(),
            crate::doctor::MAX_BUDGET.as_secs()
        )));
    }
    let scenarios: Vec<RunScenario> = if args.scenarios.is_empty() {
        RunScenario::ALL.to_vec()
    } else {
        args.scenarios
            .iter()
            .map(|s| match s {
                LabRunScenario::Healthy => RunScenario::Healthy,
                LabRunScenario::ParallelClash => RunScenario::ParallelClash,
                LabRunScenario::RaceDrop => RunScenario::RaceDrop,
                LabRunScenario::DeadEndpoint => RunScenario::DeadEndpoint,
                LabRunScenario::SlowEndpoint => RunScenario::SlowEndpoint,
                LabRunScenario::StaleEntries => RunScenario::StaleEntries,
                LabRunScenario::FullTable => RunScenario::FullTable,
            })
            .collect()
    };
    let config = RunConfig {
        prefix: args.prefix.clone(),
        proxy_mode: match args.proxy_mode {
            LabProxyMode::Iptables => ProxyMode::Iptables,
            LabProxyMode::Nftables => ProxyMode::Nftables,
        },
        budget,
        scenarios,
    };
    // Ctrl-C or SIGTERM stops the run between steps; the lab is still
    // torn down and the table says how far it got.
    crate::interrupt::install();
    let report = lab::run::run(&config, &crate::interrupt::STOP, &|step| {
        note(ctx, &format!("lab run: {step}"))
    })?;
    // Decided before rendering: a closed pipe does not change it.
    let outcome = if report.interrupted {
        Outcome::Unknown
    } else if report.passed {
        Outcome::Clean
    } else {
        Outcome::Problem
    };
    let text = match ctx.format {
        OutputFormat::Json => json::document(&report)?,
        _ => render_run(ctx, &report),
    };
    emit(&text)?;
    Ok(outcome)
}

/// The scenario table: what each failure should show, what doctor found.
fn render_run(ctx: &Context, report: &RunReport) -> String {
    let mut out = String::new();
    if ctx.verbose > 0 {
        for result in &report.scenarios {
            if let Some(doctor) = &result.doctor {
                out.push_str(&format!("== {}\n", result.scenario.as_str()));
                out.push_str(&crate::render::doctor::table(ctx, doctor));
                out.push('\n');
            }
        }
    }
    let mut t = table::new_table(
        ctx,
        &["scenario", "expected finding", "doctor found", "unrelated warnings", "result", "time"],
    );
    for result in &report.scenarios {
        let expected = if result.expected.is_empty() {
            "none at warning or above".to_string()
        } else {
            result.expected.join(" or ")
        };
        let found =
            if result.found.is_empty() { "nothing".to_string() } else { result.found.join(", ") };
        let mut unrelated = result.unrelated.join(", ");
        if !result.unknown.is_empty() {
            if !unrelated.is_empty() {
                unrelated.push_str("; ");
            }
            unrelated.push_str(&format!("could not run: {}", result.unknown.join("; ")));
        }
        if let Some(error) = &result.error {
            unrelated = error.clone();
        }
        let verdict = match (result.passed, result.expected_found) {
            (true, _) => "pass".to_string(),
            (false, false) => "FAIL: expected finding missing".to_string(),
            (false, true) => "FAIL".to_string(),
        };
        t.add_row(vec![
            Cell::new(result.scenario.as_str()),
            Cell::new(expected),
            Cell::new(found),
            Cell::new(if unrelated.is_empty() { "none".to_string() } else { unrelated }),
            Cell::new(verdict),
            Cell::new(format!("{:.1} s + {:.1} s", result.setup_s, result.doctor_s)),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    let passed = report.scenarios.iter().filter(|r| r.passed).count();
    out.push_str(&format!(
        "{} of {} scenarios passed{}; lab {} {}; {:.0} s in all (time: setting up + doctor; -v shows each doctor table)\n",
        passed,
        report.scenarios.len(),
        if report.interrupted { " before the run was interrupted" } else { "" },
        report.prefix,
        if report.torn_down { "torn down" } else { "NOT torn down: run `ctdiag lab down --prefix` with it" },
        report.duration_s
    ));
    out
}

/// The fill's plain config from its flags.
fn fill_config(args: &LabFillArgs) -> FillConfig {
    FillConfig {
        prefix: args.lab.prefix.clone(),
        flows: args.flows,
        target: match args.to {
            LabFillTarget::ClusterIp => FillTarget::ClusterIp,
            LabFillTarget::Unrelated => FillTarget::Unrelated,
        },
        family: match args.family {
            FamilyArg::V4 => Family::Ipv4,
            FamilyArg::V6 => Family::Ipv6,
        },
        timeout: args.timeout.map(Duration::from_secs),
    }
}

fn render_fill(ctx: &Context, report: &FillReport) -> Result<Delivery> {
    if ctx.format == OutputFormat::Json {
        return emit(&json::document(report)?);
    }
    let mut t = table::new_table(ctx, &["lab fill", &report.prefix]);
    let rows: Vec<(&str, String)> = vec![
        ("node namespace", report.node_namespace.clone()),
        (
            "flows",
            format!(
                "{} {} to {} ({})",
                report.flows,
                report.family.as_str(),
                report.destination,
                report.target.as_str()
            ),
        ),
        ("sources", report.sources.clone()),
        ("datagrams sent", format!("{} in {} round(s)", report.packets_sent, report.rounds)),
        (
            "entries (conntrack -C)",
            format!("{} -> {} ({:+})", report.entries_before, report.entries_after, report.created),
        ),
        ("nf_conntrack_max", report.conntrack_max.to_string()),
        ("entry timeout", format!("{} s without traffic", report.timeout_s)),
        ("time", format!("{:.0} ms", report.elapsed_ms)),
    ];
    for (key, value) in rows {
        t.add_row(vec![Cell::new(key), Cell::new(value)]);
    }
    let mut text = format!("{t}\n");
    for n in &report.notes {
        text.push_str(&format!("note: {n}\n"));
    }
    emit(&text)
}

/// Turns the scenario flags into a [`Scenario`]; flags that do not belong
/// to the scenario are a usage error.
fn validate_scenario(args: &LabScenarioArgs) -> Result<Scenario> {
    use crate::error::Error;
    let unexpected = |flag: &str, name: &str| {
        Err(Error::Usage(format!("{flag} does not apply to the {name} scenario")))
    };
    match args.name {
        LabScenarioName::DeadEndpoint | LabScenarioName::StaleEndpoint => {
            let name = if args.name == LabScenarioName::DeadEndpoint {
                "dead-endpoint"
            } else {
                "stale-endpoint"
            };
            if args.delay_ms.is_some() {
                return unexpected("--delay-ms", name);
            }
            if args.drop_rate.is_some() || args.drop_aaaa_rate.is_some() {
                return unexpected("--drop-rate/--drop-aaaa-rate", name);
            }
            let endpoint = args.endpoint;
            Ok(if args.name == LabScenarioName::DeadEndpoint {
                Scenario::DeadEndpoint { endpoint }
            } else {
                Scenario::StaleEndpoint { endpoint }
            })
        }
        LabScenarioName::NeverTranslated | LabScenarioName::RaceDrop => {
            let (name, scenario) = if args.name == LabScenarioName::NeverTranslated {
                ("never-translated", Scenario::NeverTranslated)
            } else {
                ("race-drop", Scenario::RaceDrop)
            };
            if args.endpoint.is_some() {
                return unexpected("--endpoint", name);
            }
            if args.delay_ms.is_some() {
                return unexpected("--delay-ms", name);
            }
            if args.drop_rate.is_some() || args.drop_aaaa_rate.is_some() {
                return unexpected("--drop-rate/--drop-aaaa-rate", name);
            }
            Ok(scenario)
        }
        LabScenarioName::SlowEndpoint => {
            if args.drop_rate.is_some() || args.drop_aaaa_rate.is_some() {
                return unexpected("--drop-rate/--drop-aaaa-rate", "slow-endpoint");
            }
            let delay = args.delay_ms.map(Duration::from_millis).unwrap_or(DEFAULT_SLOW_DELAY);
            Ok(Scenario::SlowEndpoint { endpoint: args.endpoint, delay })
        }
        LabScenarioName::Lossy => {
            if args.delay_ms.is_some() {
                return unexpected("--delay-ms", "lossy");
            }
            let (drop_rate, drop_aaaa_rate) = match (args.drop_rate, args.drop_aaaa_rate) {
                (None, None) => (0.0, DEFAULT_LOSSY_AAAA_RATE),
                (rate, aaaa) => (rate.unwrap_or(0.0), aaaa.unwrap_or(0.0)),
            };
            Ok(Scenario::Lossy { endpoint: args.endpoint, drop_rate, drop_aaaa_rate })
        }
    }
}

fn render_info(ctx: &Context, info: &LabInfo) -> Result<Delivery> {
    if ctx.format == OutputFormat::Json {
        return emit(&json::document(info)?);
    }
    let mut summary = table::new_table(ctx, &["lab", &info.prefix]);
    let rows: Vec<(&str, String)> = vec![
        ("node namespace", info.namespaces.node.clone()),
        ("client namespace", format!("{} (198.18.1.2, 2001:db8:1::2)", info.namespaces.client)),
        ("router namespace", format!("{} ({}, drops all)", info.namespaces.router, lab::ROUTER_IP)),
        (
            "kube-dns ClusterIP",
            format!(
                "{} port {} udp+tcp ({})",
                info.cluster_ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(", "),
                info.port,
                info.ip_family.as_str()
            ),
        ),
        ("endpoints in the rules", info.endpoints.join(", ")),
        ("rules", format!("kube-proxy {} mode", info.rules_mode.as_str())),
        ("DNS server", info.dns_server.as_str().to_string()),
        ("client resolv.conf", info.resolv_conf.display().to_string()),
        ("state", info.state_dir.display().to_string()),
    ];
    for (key, value) in rows {
        summary.add_row(vec![Cell::new(key), Cell::new(value)]);
    }
    let mut servers = table::new_table(
        ctx,
        &[
            "endpoint",
            "namespace",
            "address",
            "server",
            "pid",
            "alive",
            "delay ms",
            "drop",
            "drop AAAA",
        ],
    );
    for s in &info.servers {
        let alive = match (s.state, s.alive) {
            (EndpointState::Removed, _) => "removed".to_string(),
            (_, true) => "yes".to_string(),
            (_, false) => "NO".to_string(),
        };
        servers.add_row(vec![
            table::num(s.endpoint),
            Cell::new(&s.namespace),
            Cell::new(if s.addresses.is_empty() {
                s.address.clone()
            } else {
                s.addresses.join(", ")
            }),
            Cell::new(s.kind.as_str()),
            Cell::new(s.pid.map_or("-".to_string(), |p| p.to_string())),
            Cell::new(alive),
            table::num(s.delay_ms),
            table::num(format!("{:.2}", s.drop_rate)),
            table::num(format!("{:.2}", s.drop_aaaa_rate)),
        ]);
    }
    let mut text = format!("{summary}\n{servers}\n");
    if !info.clients.is_empty() {
        let mut clients = table::new_table(
            ctx,
            &["client", "pid", "source", "hostname", "entry to", "alive", "answered", "last query"],
        );
        for c in &info.clients {
            clients.add_row(vec![
                table::num(c.id),
                Cell::new(c.pid),
                Cell::new(&c.source),
                Cell::new(&c.hostname),
                Cell::new(&c.entry_reply_src),
                Cell::new(if c.alive { "yes" } else { "no" }),
                table::num(format!("{}/{}", c.answered, c.queries)),
                Cell::new(match c.last_answered {
                    Some(true) => "answered",
                    Some(false) => "UNANSWERED",
                    None => "-",
                }),
            ]);
        }
        text.push_str(&format!(
            "sticky clients in {} (one socket each, a query per second):\n{clients}\n",
            info.namespaces.client
        ));
    }
    for scenario in &info.scenarios {
        text.push_str(&format!("scenario {}: {}\n", scenario.name, scenario.summary));
    }
    emit(&text)
}

fn render_down(ctx: &Context, report: &DownReport) -> Result<Delivery> {
    if ctx.format == OutputFormat::Json {
        return emit(&json::document(report)?);
    }
    if !report.found {
        return emit(&format!(
            "No lab with prefix {:?} was there; nothing to remove.",
            report.prefix
        ));
    }
    let mut text = format!(
        "Removed lab {:?}: namespaces {}; stopped {} process(es)",
        report.prefix,
        if report.removed_namespaces.is_empty() {
            "none".to_string()
        } else {
            report.removed_namespaces.join(", ")
        },
        report.stopped_pids.len()
    );
    for path in &report.removed_paths {
        text.push_str(&format!("; removed {}", path.display()));
    }
    text.push('.');
    emit(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, LabAction};
    use clap::Parser;

    fn scenario(args: &[&str]) -> Result<Scenario> {
        let mut full = vec!["ctdiag", "lab", "scenario"];
        full.extend_from_slice(args);
        let cli = Cli::try_parse_from(full).expect("parses");
        let Command::Lab(lab) = cli.command else { panic!("not lab") };
        let LabAction::Scenario(args) = lab.action else { panic!("not scenario") };
        validate_scenario(&args)
    }

    #[test]
    fn each_scenario_takes_only_its_own_flags() {
        assert!(matches!(scenario(&["race-drop"]), Ok(Scenario::RaceDrop)));
        assert!(matches!(scenario(&["never-translated"]), Ok(Scenario::NeverTranslated)));
        assert!(matches!(
            scenario(&["slow-endpoint", "--endpoint", "2", "--delay-ms", "400"]),
            Ok(Scenario::SlowEndpoint { endpoint: Some(2), .. })
        ));
        for (args, flag) in [
            (&["race-drop", "--endpoint", "1"][..], "--endpoint"),
            (&["race-drop", "--delay-ms", "5"][..], "--delay-ms"),
            (&["never-translated", "--drop-rate", "0.5"][..], "--drop-rate"),
            (&["dead-endpoint", "--delay-ms", "5"][..], "--delay-ms"),
            (&["slow-endpoint", "--drop-aaaa-rate", "0.5"][..], "--drop-rate/--drop-aaaa-rate"),
            (&["lossy", "--delay-ms", "5"][..], "--delay-ms"),
        ] {
            match scenario(args) {
                Err(crate::error::Error::Usage(message)) => {
                    assert!(message.starts_with(flag), "{args:?}: {message}");
                    assert!(message.contains(args[0]), "{args:?}: {message}");
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }
}
