//! `ctdiag services`: arguments -> validated [`ServicesConfig`] -> the
//! core's report -> table or JSON (the JSON is the list of Service ports;
//! findings go to stderr there, and to the exit status).

use std::path::PathBuf;

use crate::cli::ServicesArgs;
use crate::commands::args::{selector, SELECT_ADVICE};
use crate::error::{Error, Result};
use crate::findings::Outcome;
use crate::render::{self, Context};
use crate::service::api::ApiSource;
use crate::service::report::{self, ServicesConfig, ServicesReport};

/// Checks the arguments; opens nothing.
pub fn config(args: &ServicesArgs) -> Result<ServicesConfig> {
    let all = args.service.service.is_none() && args.service.cluster_ip.is_none();
    let selector = selector(&args.service, all)?;
    if args.netns.as_deref() == Some("") {
        return Err(Error::Usage("--netns needs a path, a PID or a name".into()));
    }
    let api = match (&args.api, args.kubectl) {
        (Some(path), _) if path == "-" => Some(ApiSource::Stdin),
        (Some(path), _) if path.is_empty() => {
            return Err(Error::Usage("--api needs a file, or - for stdin".into()))
        }
        (Some(path), _) => Some(ApiSource::File(PathBuf::from(path))),
        (None, true) => Some(ApiSource::Kubectl),
        (None, false) => None,
    };
    Ok(ServicesConfig {
        selector,
        netns: args.netns.clone(),
        cluster_dns: args.cluster_dns,
        api,
        advice: SELECT_ADVICE,
    })
}

/// Validates the arguments, builds the report, renders it.
pub fn execute(args: ServicesArgs, ctx: &Context) -> Result<Outcome> {
    render::check_format::<ServicesReport>(ctx)?;
    let config = config(&args)?;
    let report = report::build(&config)?;
    render::emit_report(ctx, &report)?;
    Ok(Outcome::from_findings(&report.findings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::service::select::Selector;
    use clap::Parser;

    fn parse(args: &[&str]) -> std::result::Result<Result<ServicesConfig>, clap::Error> {
        let mut full = vec!["ctdiag", "services"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).map(|cli| match cli.command {
            Command::Services(args) => config(&args),
            _ => unreachable!(),
        })
    }

    #[test]
    fn selections_and_api_sources() {
        assert_eq!(parse(&[]).unwrap().unwrap().selector, Selector::All);
        assert!(matches!(
            parse(&["--service", "kube-dns"]).unwrap().unwrap().selector,
            Selector::Spec(_)
        ));
        let manual = parse(&["--cluster-ip", "198.19.0.10", "--endpoints", "198.18.2.2:53"])
            .unwrap()
            .unwrap();
        assert!(matches!(manual.selector, Selector::Manual(_)));
        assert_eq!(parse(&["--api", "-"]).unwrap().unwrap().api, Some(ApiSource::Stdin));
        assert_eq!(parse(&["--kubectl"]).unwrap().unwrap().api, Some(ApiSource::Kubectl));
        assert!(parse(&["--api", "x.json", "--kubectl"]).is_err());
        assert!(parse(&["--cluster-dns", "nope"]).is_err());
        assert!(matches!(parse(&["--service", "web"]).unwrap(), Err(Error::Usage(_))));
        assert!(matches!(parse(&["--api", ""]).unwrap(), Err(Error::Usage(_))));
    }
}
