//! `ctdiag stale`: arguments -> validated [`StaleConfig`] -> the scan (and,
//! with `--flush`, the confirmed flush) -> table, JSON or Prometheus text.

use std::io::{BufRead, IsTerminal, Write};

use crate::cli::OutputFormat;
use crate::cli::{RulesMode, StaleArgs};
use crate::commands::args::{selector, SELECT_ADVICE};
use crate::error::{Error, Result};
use crate::findings::Outcome;
use crate::render::{self, Context};
use crate::service::select::Selector;
use crate::service::ProxyMode;
use crate::stale::stream::{self, Listing};
use crate::stale::{self, StaleConfig, StaleReport};

/// Checks the arguments before anything is read. `terminal`: whether
/// stdin is a terminal to ask on. A `--flush` that could not ask and was
/// not told `--yes` is refused here, before anything is scanned or deleted.
pub fn config(args: &StaleArgs, terminal: bool) -> Result<StaleConfig> {
    let selector = selector(&args.service, args.all)?;
    if args.netns.as_deref() == Some("") {
        return Err(Error::Usage("--netns needs a path, a PID or a name".into()));
    }
    if let (true, Selector::Manual(manual)) = (args.flush, &selector) {
        if manual.endpoints.is_empty() {
            return Err(Error::Usage(
                "--flush with no --endpoints would delete every entry to the ClusterIP, live ones included; nothing was deleted. Name the endpoints (--endpoints IP:PORT,...), or flush a Service whose rules have no endpoints with --service".into(),
            ));
        }
    }
    if args.flush && !args.yes && !terminal {
        return Err(Error::Usage(
            "--flush without --yes asks before deleting, and there is no terminal to ask on; nothing was deleted. Run without --flush to see the stale entries, then add --yes to delete them".into(),
        ));
    }
    Ok(StaleConfig {
        selector,
        netns: args.netns.clone(),
        flush: args.flush,
        all_entries: args.all_entries,
        command: command_line(args),
        advice: SELECT_ADVICE,
        from: args.from.map(|mode| match mode {
            RulesMode::Iptables => ProxyMode::Iptables,
            RulesMode::Nftables => ProxyMode::Nftables,
            RulesMode::Ipvs => ProxyMode::Ipvs,
        }),
    })
}

/// The command that selects the same Services in the same namespace
/// (without `--flush`), for remedies.
pub(crate) fn command_line(args: &StaleArgs) -> String {
    let mut parts = vec!["ctdiag".to_string(), "stale".to_string()];
    let mut push = |flag: &str, value: Option<&str>| {
        parts.push(flag.to_string());
        if let Some(value) = value {
            parts.push(shell_word(value));
        }
    };
    if let Some(netns) = &args.netns {
        push("--netns", Some(netns));
    }
    if args.all {
        push("--all", None);
    }
    if let Some(from) = args.from {
        let value = clap::ValueEnum::to_possible_value(&from);
        push("--from", Some(value.as_ref().map_or("", |v| v.get_name())));
    }
    if let Some(service) = &args.service.service {
        push("--service", Some(service));
    }
    if let Some(cluster_ip) = &args.service.cluster_ip {
        push("--cluster-ip", Some(cluster_ip));
        push("--endpoints", Some(&args.service.endpoints.join(",")));
    }
    parts.join(" ")
}

/// `text` as one shell word.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:,[]@%+=".contains(&b));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Shows the stale entries on stderr and asks on the terminal whether to
/// delete them.
fn ask(ctx: &Context, report: &StaleReport) -> bool {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{}", render::stale::candidates(ctx, report));
    let _ = write!(err, "Delete these {} stale conntrack entries? [y/N] ", report.stale_count);
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The exit status of a report: by its findings, except that a flush whose
/// scan afterwards failed is "could not tell" (exit 2): what it deleted is
/// printed, whether stale entries remain is not known.
fn outcome(report: &StaleReport) -> Outcome {
    if report.flush.as_ref().is_some_and(|f| !f.verified()) {
        Outcome::Unknown
    } else {
        Outcome::from_findings(&report.findings)
    }
}

/// Validates the arguments, scans (and flushes), renders.
pub fn execute(args: StaleArgs, ctx: &Context) -> Result<Outcome> {
    let config = config(&args, std::io::stdin().is_terminal())?;
    if config.all_entries && !config.flush && ctx.format == OutputFormat::Json {
        // Every entry is listed: written out as the scan goes when there
        // are more than the report keeps in memory.
        let stdout = std::io::stdout().lock();
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout);
        let report = match stream::run(&config, &mut out) {
            Ok(Listing::Whole(report)) => report,
            Ok(Listing::Written(report)) => return Ok(Outcome::from_findings(&report.findings)),
            // The reader is gone before the scan ended: nothing to tell it.
            Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(Outcome::Unknown)
            }
            Err(error) => return Err(error),
        };
        drop(out);
        let verdict = Outcome::from_findings(&report.findings);
        render::emit_report(ctx, &report)?;
        return Ok(verdict);
    }
    let yes = args.yes;
    let report = stale::run(&config, &mut |report| yes || ask(ctx, report))?;
    let verdict = outcome(&report);
    render::emit_report(ctx, &report)?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ServiceArgs;

    fn args() -> StaleArgs {
        StaleArgs {
            service: ServiceArgs::default(),
            all: false,
            flush: false,
            yes: false,
            all_entries: false,
            netns: None,
            from: None,
        }
    }

    #[test]
    fn a_flush_that_cannot_ask_is_refused_before_anything_runs() {
        let flush = StaleArgs { flush: true, ..args() };
        let error = config(&flush, false).unwrap_err();
        assert!(matches!(error, Error::Usage(_)), "{error:?}");
        assert!(error.to_string().contains("--yes"), "{error}");
        assert!(config(&flush, true).unwrap().flush);
        assert!(config(&StaleArgs { yes: true, ..flush }, false).unwrap().flush);
    }

    #[test]
    fn the_remedy_command_selects_the_same_services() {
        let manual = StaleArgs {
            netns: Some("lab node".into()),
            service: ServiceArgs {
                service: None,
                cluster_ip: Some("198.19.0.10".into()),
                endpoints: vec!["198.18.2.2:53".into(), "198.18.3.2:53".into()],
            },
            ..args()
        };
        let config = config(&manual, false).unwrap();
        assert_eq!(
            config.command,
            "ctdiag stale --netns 'lab node' --cluster-ip 198.19.0.10 --endpoints 198.18.2.2:53,198.18.3.2:53"
        );
        assert!(matches!(config.selector, Selector::Manual(_)));
        let all = StaleArgs { all: true, ..args() };
        assert_eq!(super::config(&all, false).unwrap().command, "ctdiag stale --all");
        assert_eq!(super::config(&args(), false).unwrap().command, "ctdiag stale");
    }

    #[test]
    fn a_flush_whose_rescan_failed_exits_unknown() {
        let report = |remaining: Option<u64>| StaleReport {
            netns: None,
            source: String::new(),
            table_entries: None,
            kernel_filter: true,
            services: Vec::new(),
            stale_count: 2,
            live_count: 0,
            findings: Vec::new(),
            flush: Some(stale::FlushReport { deleted: 2, remaining, ..Default::default() }),
            notes: Vec::new(),
            wrapped: false,
        };
        assert_eq!(outcome(&report(None)), Outcome::Unknown);
        assert_eq!(outcome(&report(Some(0))), Outcome::Clean);
    }

    #[test]
    fn a_flush_with_no_endpoints_is_refused_before_anything_runs() {
        let empty = StaleArgs {
            flush: true,
            yes: true,
            service: ServiceArgs {
                service: None,
                cluster_ip: Some("198.19.0.10".into()),
                endpoints: vec![String::new()],
            },
            ..args()
        };
        let error = config(&empty, false).unwrap_err();
        assert!(matches!(error, Error::Usage(_)), "{error:?}");
        assert!(error.to_string().contains("nothing was deleted"), "{error}");
        // Without --flush the listing runs.
        assert!(config(&StaleArgs { flush: false, yes: false, ..empty }, false).is_ok());
    }

    #[test]
    fn bad_selections_are_usage_errors() {
        let both = StaleArgs {
            all: true,
            service: ServiceArgs { service: Some("kube-dns".into()), ..ServiceArgs::default() },
            ..args()
        };
        assert!(matches!(config(&both, false), Err(Error::Usage(_))));
        let empty_netns = StaleArgs { netns: Some(String::new()), ..args() };
        assert!(matches!(config(&empty_netns, false), Err(Error::Usage(_))));
    }
}
