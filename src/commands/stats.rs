//! `ctdiag stats`: arguments -> validated [`StatsConfig`] -> report ->
//! table, JSON or Prometheus text.

use crate::cli::{OutputFormat, StatsArgs};
use crate::conntrack::stats::report::{self as stats_report, StatsConfig};
use crate::error::{Error, Result};
use crate::findings::Outcome;
use crate::netns::Netns;
use crate::render::{self, Context};

/// The longest `--watch` interval accepted (one hour).
const MAX_WATCH_SECONDS: f64 = 3600.0;

/// Checks the arguments before anything is read.
pub fn config(args: &StatsArgs) -> Result<StatsConfig> {
    let watch = match args.watch {
        None => None,
        Some(secs) if !secs.is_finite() || secs <= 0.0 => {
            return Err(Error::Usage(format!(
                "--watch {secs}: the interval must be a positive number of seconds (e.g. 1 or 0.5)"
            )))
        }
        Some(secs) if secs > MAX_WATCH_SECONDS => {
            return Err(Error::Usage(format!(
                "--watch {secs}: the interval must be at most {MAX_WATCH_SECONDS} seconds"
            )))
        }
        Some(secs) => Some(std::time::Duration::from_secs_f64(secs)),
    };
    if args.count == Some(0) {
        return Err(Error::Usage("--count 0: give at least one interval".into()));
    }
    Ok(StatsConfig {
        netns: args.netns.clone(),
        watch,
        count: args.count,
        force_procfs: args.procfs,
    })
}

/// Validates the arguments, reads, renders.
pub fn execute(args: StatsArgs, ctx: &Context) -> Result<Outcome> {
    let config = config(&args)?;
    if config.watch.is_some() && ctx.format == OutputFormat::Prometheus {
        return Err(Error::Usage(
            "--watch has no Prometheus output (a scrape reads the counters itself): use -o table or -o json"
                .into(),
        ));
    }
    match config.watch {
        None => {
            let report = stats_report::report_once(&config)?;
            let verdict = Outcome::from_findings(&report.findings);
            render::emit_report(ctx, &report)?;
            Ok(verdict)
        }
        Some(interval) => {
            let mut header_shown = false;
            let netns = config.netns.as_deref().map(Netns::open).transpose()?;
            // Ctrl-C or SIGTERM ends the watch after the interval being
            // measured, instead of killing the process mid-write.
            crate::interrupt::install();
            let stop = &crate::interrupt::STOP;
            stats_report::watch(&config, netns.as_ref(), interval, stop, |sample| {
                let delivery = render::emit_line(ctx, sample, !header_shown)?;
                header_shown = true;
                Ok(delivery == render::Delivery::Written)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_zero_is_usage_error() {
        let args = StatsArgs { netns: None, watch: Some(0.0), count: None, procfs: false };
        assert!(matches!(config(&args), Err(Error::Usage(_))));
        let args = StatsArgs { netns: None, watch: Some(f64::NAN), count: None, procfs: false };
        assert!(matches!(config(&args), Err(Error::Usage(_))));
    }
}
