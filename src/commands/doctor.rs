//! `ctdiag doctor`: arguments -> validated [`DoctorConfig`] -> every check
//! within the budget -> the verdict table, JSON, Prometheus text, or the
//! one line node-problem-detector reads.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::cli::{DoctorArgs, OutputFormat, StaleArgs};
use crate::commands::args::{parse_duration_of, selector, SELECT_ADVICE};
use crate::doctor::{self, DoctorConfig, MAX_BUDGET, MIN_BUDGET};
use crate::error::{Error, Result};
use crate::findings::Outcome;
use crate::render::{self, Context};
use crate::service::api::ApiSource;

/// Checks the arguments before anything is read.
pub fn config(args: &DoctorArgs) -> Result<DoctorConfig> {
    // --all widens only the stale scan; the DNS Service is still the one
    // --service (or kube-dns) names.
    let selector = selector(&args.service, false)?;
    for (flag, value) in [("--netns", &args.netns), ("--probe-netns", &args.probe_netns)] {
        if value.as_deref() == Some("") {
            return Err(Error::Usage(format!("{flag} needs a path, a PID or a name")));
        }
    }
    if args.pods.iter().any(String::is_empty) {
        return Err(Error::Usage("--pods needs namespace paths, PIDs or names".into()));
    }
    let budget = parse_duration_of("--budget", &args.budget)?;
    if budget < MIN_BUDGET || budget > MAX_BUDGET {
        return Err(Error::Usage(format!(
            "--budget {}: between {} s and {} s",
            args.budget,
            MIN_BUDGET.as_secs(),
            MAX_BUDGET.as_secs()
        )));
    }
    let api = match args.api.as_deref() {
        None => None,
        Some("") => return Err(Error::Usage("--api needs a file, or - for stdin".into())),
        Some("-") => Some(ApiSource::Stdin),
        Some(path) => Some(ApiSource::File(PathBuf::from(path))),
    };
    let stale = StaleArgs {
        service: args.service.clone(),
        all: args.all,
        flush: false,
        yes: false,
        all_entries: false,
        netns: args.netns.clone(),
        from: None,
    };
    Ok(DoctorConfig {
        netns: args.netns.clone(),
        probe_netns: args.probe_netns.clone(),
        selector,
        all: args.all,
        budget,
        api,
        pods: (!args.pods.is_empty()).then(|| args.pods.clone()),
        node_local_dns: args.node_local_dns,
        stale_command: crate::commands::stale::command_line(&stale),
        advice: SELECT_ADVICE,
    })
}

/// Validates the arguments, runs every check, renders.
pub fn execute(args: DoctorArgs, ctx: &Context) -> Result<Outcome> {
    let config = match config(&args) {
        Ok(config) => config,
        // node-problem-detector shows stdout: even a bad flag is one line.
        Err(error) if args.npd => {
            render::emit(&render::doctor::npd_error(&error))?;
            return Ok(Outcome::Unknown);
        }
        Err(error) => return Err(error),
    };
    crate::interrupt::install();
    let show = !args.npd
        && !ctx.quiet
        && ctx.format == OutputFormat::Table
        && std::io::stderr().is_terminal();
    let bar = show.then(render::doctor::progress_bar);
    let report = doctor::run(config, &crate::interrupt::STOP, &|progress| {
        if let Some(bar) = &bar {
            bar.set_message(render::doctor::progress_text(progress));
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if args.npd {
        let outcome = report.npd_outcome();
        render::emit(&render::doctor::npd_line(&report))?;
        return Ok(outcome);
    }
    let outcome = report.outcome();
    render::emit_report(ctx, &report)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::service::select::Selector;
    use clap::Parser;

    fn parse(args: &[&str]) -> std::result::Result<Result<DoctorConfig>, clap::Error> {
        let mut full = vec!["ctdiag", "doctor"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).map(|cli| match cli.command {
            Command::Doctor(args) => config(&args),
            _ => unreachable!(),
        })
    }

    #[test]
    fn defaults_and_flags() {
        let config = parse(&[]).unwrap().unwrap();
        assert_eq!(config.budget, doctor::DEFAULT_BUDGET);
        assert!(matches!(config.selector, Selector::Spec(_)));
        assert_eq!(config.stale_command, "ctdiag stale");
        assert_eq!(config.node_local_dns, doctor::NODE_LOCAL_DNS);
        let config = parse(&[
            "--netns",
            "lab-node",
            "--all",
            "--budget",
            "30s",
            "--pods",
            "a,b",
            "--api",
            "-",
            "--node-local-dns",
            "198.18.253.10",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(config.stale_command, "ctdiag stale --netns lab-node --all");
        assert_eq!(config.pods, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(config.api, Some(ApiSource::Stdin));
        assert_eq!(config.budget.as_secs(), 30);
        let manual = parse(&["--cluster-ip", "198.19.0.10", "--endpoints", "198.18.2.2:53"])
            .unwrap()
            .unwrap();
        assert!(matches!(manual.selector, Selector::Manual(_)));
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for bad in [
            &["--budget", "1s"][..],
            &["--budget", "10m"],
            &["--budget", "soon"],
            &["--netns", ""],
            &["--api", ""],
            &["--pods", ""],
            &["--service", "a/b/c"],
        ] {
            assert!(matches!(parse(bad).unwrap(), Err(Error::Usage(_))), "{bad:?}");
        }
        assert!(parse(&["--node-local-dns", "nope"]).is_err());
    }
}
