//! `ctdiag watch`: arguments -> validated [`WatchConfig`] -> the watch loop
//! (live capture or `--read FILE`) -> a live view or JSON Lines, and the
//! summary; `--listen` serves the running totals to Prometheus.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::{OutputFormat, WatchArgs};
use crate::commands::args::{parse_duration_of, selector};
use crate::error::{Error, Result};
use crate::findings::Outcome;
use crate::render::{self, Context, Delivery};
use crate::watch::metrics::MetricsServer;
use crate::watch::model::{Totals, WatchReport};
use crate::watch::run::{self as watch_run, Input, WatchConfig};

/// Shortest `--interval`: a redraw per 100 ms is already more than a
/// person reads.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest `--timeout`, ms (a minute: far past any resolver's).
const MAX_TIMEOUT_MS: u64 = 60_000;

/// Checks the arguments before any capture opens.
pub fn config(args: &WatchArgs) -> Result<WatchConfig> {
    let duration =
        args.duration.as_deref().map(|d| parse_duration_of("--duration", d)).transpose()?;
    let interval = parse_duration_of("--interval", &args.interval)?;
    if interval < MIN_INTERVAL {
        return Err(Error::Usage(format!("--interval {}: at least 100ms", args.interval)));
    }
    if args.timeout == 0 || args.timeout > MAX_TIMEOUT_MS {
        return Err(Error::Usage(format!(
            "--timeout {}: between 1 and {MAX_TIMEOUT_MS} ms",
            args.timeout
        )));
    }
    if args.netns.as_deref() == Some("") {
        return Err(Error::Usage("--netns needs a path, a PID or a name".into()));
    }
    let selector = selector(&args.service, false)?;
    if args.read.is_some() && args.service.service.is_some() {
        return Err(Error::Usage(
            "--read has no rules to find --service in: give --cluster-ip and --endpoints".into(),
        ));
    }
    let input = match &args.read {
        Some(path) => Input::File(path.clone()),
        None => Input::Live(args.netns.clone()),
    };
    Ok(WatchConfig {
        input,
        duration,
        interval,
        timeout: Duration::from_millis(args.timeout),
        selector,
    })
}

/// Validates, watches, renders; exit 1 when a query went unanswered.
pub fn execute(args: WatchArgs, ctx: &Context) -> Result<Outcome> {
    render::check_format::<WatchReport>(ctx)?;
    let config = config(&args)?;
    let parts = watch_run::open(&config)?;
    let totals = Arc::new(Mutex::new(Totals::default()));
    let server = match args.listen {
        Some(addr) => Some(
            MetricsServer::start(addr, Arc::clone(&totals), args.top_pods)
                .map_err(|e| Error::Runtime(e.to_string()))?,
        ),
        None => None,
    };
    crate::interrupt::install();
    let live_view = ctx.format == OutputFormat::Table
        && matches!(config.input, Input::Live(_))
        && std::io::stdout().is_terminal();
    let mut reader_gone = false;
    let mut emit = |report: &WatchReport| -> Result<()> {
        let delivery = match ctx.format {
            OutputFormat::Json => render::emit_line(ctx, report, false)?,
            OutputFormat::Table if live_view => {
                // Home and clear, then the view: a refreshed screen.
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(b"\x1b[H\x1b[2J");
                let _ = out.flush();
                render::emit(&render::watch::view(ctx, report))?
            }
            _ => Delivery::Written,
        };
        reader_gone |= delivery == Delivery::ReaderGone;
        Ok(())
    };
    let stop = || crate::interrupt::requested();
    let summary = watch_run::run(&config, parts, &totals, &stop, &mut emit)?;
    let _ = reader_gone;
    let verdict = if summary.unanswered > 0 { Outcome::Problem } else { Outcome::Clean };
    match ctx.format {
        OutputFormat::Json => {
            render::emit_line(ctx, &summary, false)?;
        }
        OutputFormat::Prometheus => {
            let text = totals
                .lock()
                .map(|t| crate::watch::metrics::render(&t, args.top_pods))
                .unwrap_or_default();
            render::emit(&text)?;
        }
        OutputFormat::Table => {
            render::emit_report(ctx, &summary)?;
        }
    }
    if let Some(server) = server {
        server.stop();
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::select::Selector;
    use clap::Parser;

    fn parse(words: &[&str]) -> Result<WatchConfig> {
        let mut argv = vec!["ctdiag", "watch"];
        argv.extend_from_slice(words);
        let cli = crate::cli::Cli::try_parse_from(argv).map_err(|e| Error::Usage(e.to_string()))?;
        match cli.command {
            crate::cli::Command::Watch(args) => config(&args),
            _ => unreachable!("watch parses as watch"),
        }
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for words in [
            &["--interval", "10ms"][..],
            &["--timeout", "0"],
            &["--timeout", "600000"],
            &["--duration", "-1s"],
            &["--netns", ""],
            &["--read", "x.pcap", "--service", "kube-dns"],
            &["--cluster-ip", "198.19.0.10", "--endpoints", "nonsense"],
        ] {
            assert!(matches!(parse(words), Err(Error::Usage(_))), "{words:?}");
        }
    }

    #[test]
    fn defaults_and_manual_service() {
        let c = parse(&[
            "--read",
            "x.pcap",
            "--cluster-ip",
            "198.19.0.10",
            "--endpoints",
            "198.18.2.2:53",
        ])
        .unwrap();
        assert_eq!(c.timeout, Duration::from_millis(5000));
        assert_eq!(c.interval, Duration::from_secs(1));
        let Selector::Manual(manual) = c.selector else { panic!("manual") };
        let view = crate::watch::live::view_of(&manual.services(&[crate::service::Protocol::Udp]));
        assert!(view.service_addrs.contains(&"198.19.0.10:53".parse().unwrap()));
        assert!(view.endpoints.contains(&"198.18.2.2:53".parse().unwrap()));
    }
}
