//! `ctdiag lab`: validate the arguments, build/inspect/tear down the lab,
//! render what it is ([`crate::render::emit_report`]: JSON, or the tables
//! of [`crate::render::lab`]).

use std::time::Duration;

use crate::cli::{
    LabAction, LabArgs, LabFillArgs, LabRcode, LabRunArgs, LabScenarioArgs, LabScenarioName,
    OutputFormat, ResponderBehaviorArgs,
};
use crate::error::Result;
use crate::findings::Outcome;
use crate::lab::fill::FillConfig;
use crate::lab::responder::{ErrorRcode, ResponderBehavior};
use crate::lab::run::{RunConfig, RunScenario};
use crate::lab::{self, EndpointState, LabConfig, LabInfo, Scenario};
use crate::render::{check_format, emit_report, note, Context};

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
        rcode: args.rcode.map(error_rcode),
    }
}

/// The responder's rcode for the flag's.
fn error_rcode(rcode: LabRcode) -> ErrorRcode {
    match rcode {
        LabRcode::Servfail => ErrorRcode::Servfail,
        LabRcode::Refused => ErrorRcode::Refused,
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
    // No lab report has metrics: refused before the lab is touched.
    check_format::<LabInfo>(ctx)?;
    match args.action {
        LabAction::Up(up) => {
            let config = LabConfig {
                prefix: up.lab.prefix,
                endpoints: up.endpoints,
                dns: up.dns.into(),
                behavior: behavior(&up.behavior),
                proxy_mode: up.proxy_mode.into(),
                ip_family: up.ip_family.into(),
            };
            let info = lab::up(&config)?;
            emit_report(ctx, &info)?;
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
            emit_report(ctx, &report)?;
            Ok(Outcome::Clean)
        }
        LabAction::Status(which) => {
            let info = lab::status(&which.prefix)?;
            let broken = info.servers.iter().any(|s| s.state == EndpointState::Running && !s.alive);
            emit_report(ctx, &info)?;
            Ok(if broken { Outcome::Problem } else { Outcome::Clean })
        }
        LabAction::Scenario(scenario_args) => {
            let prefix = scenario_args.lab.prefix.clone();
            let scenario = validate_scenario(&scenario_args)?;
            let info = lab::apply_scenario(&prefix, &scenario)?;
            emit_report(ctx, &info)?;
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
            emit_report(ctx, &report)?;
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
        args.scenarios.iter().map(|&s| RunScenario::from(s)).collect()
    };
    let config = RunConfig {
        prefix: args.prefix.clone(),
        proxy_mode: args.proxy_mode.into(),
        budget,
        scenarios,
        advice: super::args::SELECT_ADVICE,
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
    emit_report(ctx, &report)?;
    Ok(outcome)
}

/// The fill's plain config from its flags.
fn fill_config(args: &LabFillArgs) -> FillConfig {
    FillConfig {
        prefix: args.lab.prefix.clone(),
        flows: args.flows,
        target: args.to.into(),
        family: args.family.into(),
        timeout: args.timeout.map(Duration::from_secs),
    }
}

/// Turns the scenario flags into a [`Scenario`]; flags that do not belong
/// to the scenario are a usage error.
fn validate_scenario(args: &LabScenarioArgs) -> Result<Scenario> {
    use crate::error::Error;
    let unexpected = |flag: &str, name: &str| {
        Err(Error::Usage(format!("{flag} does not apply to the {name} scenario")))
    };
    // The scenario's name as typed (clap's spelling of the value).
    let name = clap::ValueEnum::to_possible_value(&args.name)
        .map_or_else(String::new, |v| v.get_name().to_string());
    if args.rcode.is_some() && args.name != LabScenarioName::ErrorRcode {
        return unexpected("--rcode", &name);
    }
    let other_flags =
        args.delay_ms.is_some() || args.drop_rate.is_some() || args.drop_aaaa_rate.is_some();
    match args.name {
        LabScenarioName::ErrorRcode | LabScenarioName::NotListening if other_flags => {
            unexpected("--delay-ms/--drop-rate/--drop-aaaa-rate", &name)
        }
        LabScenarioName::ErrorRcode => Ok(Scenario::ErrorRcode {
            endpoint: args.endpoint,
            rcode: error_rcode(args.rcode.unwrap_or(LabRcode::Servfail)),
        }),
        LabScenarioName::NotListening => Ok(Scenario::NotListening { endpoint: args.endpoint }),
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
        assert!(matches!(
            scenario(&["error-rcode", "--endpoint", "2"]),
            Ok(Scenario::ErrorRcode { endpoint: Some(2), rcode: ErrorRcode::Servfail })
        ));
        assert!(matches!(
            scenario(&["error-rcode", "--rcode", "refused"]),
            Ok(Scenario::ErrorRcode { endpoint: None, rcode: ErrorRcode::Refused })
        ));
        assert!(matches!(
            scenario(&["not-listening"]),
            Ok(Scenario::NotListening { endpoint: None })
        ));
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
            (&["lossy", "--rcode", "refused"][..], "--rcode"),
            (&["not-listening", "--delay-ms", "5"][..], "--delay-ms"),
            (&["error-rcode", "--drop-rate", "0.5"][..], "--delay-ms/--drop-rate"),
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
