//! `ctdiag probe`: arguments -> validated [`ProbeConfig`] (the server from
//! `--server`, the node's kube-proxy rules or resolv.conf) -> report ->
//! table or JSON.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::cli::{OutputFormat, ProbeArgs, ProbeMode};
use crate::commands::args::{parse_duration, parse_server, selector};
use crate::dns::engine::{EngineConfig, Mode};
use crate::dns::probe::{
    self, resolver_options, resolver_options_or_defaults, ProbeConfig, DEFAULT_COUNT, DEFAULT_NAME,
    MAX_CONCURRENCY, MAX_COUNT, MAX_LINGER, MAX_RATE, MAX_RUN, MAX_TIMEOUT_MS,
};
use crate::dns::resolv::{resolv_conf_path, ResolvConf};
use crate::dns::wire::parse_name;
use crate::error::{Error, Result};
use crate::findings::Outcome;
use crate::netns::Netns;
use crate::render::{self, Context};
use crate::service::select::{self, Selector, ServiceSpec};
use crate::service::{self, ClusterDns, Protocol};

/// Checks every argument, then finds the server: `--server`; else
/// `--cluster-ip` (its `--endpoints` named in the report); else the
/// ClusterIP of `--service SPEC`, or of kube-dns, that `cluster_dns` finds
/// in the node's rules (given the spec when one was asked for: then an
/// error when it is not there); else the first nameserver of the probed
/// namespace's resolv.conf. Opens no socket; `cluster_dns` is called only
/// when neither `--server` nor `--cluster-ip` is given.
pub fn config(
    args: &ProbeArgs,
    cluster_dns: impl FnOnce(Option<&ServiceSpec>, Protocol) -> Result<Option<ClusterDns>>,
) -> Result<ProbeConfig> {
    let mode = if args.parallel { ProbeMode::Parallel } else { args.mode };
    let mode = match mode {
        ProbeMode::Parallel => Mode::Parallel,
        ProbeMode::Threads => Mode::Threads,
        ProbeMode::Sequential => Mode::Sequential,
        ProbeMode::Reopen => Mode::Reopen,
        ProbeMode::Tcp => Mode::Tcp,
    };
    let names_text: Vec<String> =
        if args.names.is_empty() { vec![DEFAULT_NAME.to_string()] } else { args.names.clone() };
    let names: Vec<Name> = names_text.iter().map(|n| parse_name(n)).collect::<Result<_>>()?;
    match args.count {
        Some(0) => return Err(Error::Usage("--count 0: give at least one lookup".into())),
        Some(n) if n > MAX_COUNT => {
            return Err(Error::Usage(format!("--count {n}: at most {MAX_COUNT} lookups per run")))
        }
        _ => {}
    }
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    let count = match (args.count, duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_COUNT),
    };
    if !args.rate.is_finite() || args.rate < 0.0 || args.rate > MAX_RATE {
        return Err(Error::Usage(format!(
            "--rate {}: give lookups per second between 0 and {MAX_RATE} (0 = as fast as possible)",
            args.rate
        )));
    }
    if let (Some(n), true) = (count, args.rate > 0.0) {
        let needed = n as f64 / args.rate;
        if needed > MAX_RUN.as_secs_f64() {
            return Err(Error::Usage(format!(
                "--count {n} at --rate {} takes {needed:.0} s, more than the {} s limit per run; raise --rate or lower --count",
                args.rate,
                MAX_RUN.as_secs()
            )));
        }
    }
    if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
        return Err(Error::Usage(format!(
            "--concurrency {}: give 1 to {MAX_CONCURRENCY} lookups in flight",
            args.concurrency
        )));
    }
    if args.timeout == 0 || args.timeout > MAX_TIMEOUT_MS {
        return Err(Error::Usage(format!(
            "--timeout {}: give 1 to {MAX_TIMEOUT_MS} milliseconds",
            args.timeout
        )));
    }
    for (flag, spec) in [("--netns", &args.netns), ("--stats-netns", &args.stats_netns)] {
        if spec.as_deref() == Some("") {
            return Err(Error::Usage(format!("{flag} needs a path, a PID or a name")));
        }
    }
    let resolv_path = resolv_conf_path(args.netns.as_deref());
    // The resolver's timeout comes from the namespace's file whenever it
    // is readable, whatever the server; it is only used for reporting.
    let resolver_or_defaults = || resolver_options_or_defaults(&resolv_path);
    let protocol = if mode == Mode::Tcp { Protocol::Tcp } else { Protocol::Udp };
    let explicit = args.service.service.is_some() || args.service.cluster_ip.is_some();
    let selected = if explicit { Some(selector(&args.service, false)?) } else { None };
    let discovered = match (&args.server, &selected) {
        (Some(_), _) => None,
        (None, Some(Selector::Manual(manual))) => Some(ClusterDns {
            server: SocketAddr::new(manual.cluster_ip, manual.port),
            source: "--cluster-ip/--endpoints".into(),
            endpoints: manual.endpoints.clone(),
        }),
        (None, Some(Selector::Spec(spec))) => cluster_dns(Some(spec), protocol)?,
        (None, _) => cluster_dns(None, protocol)?,
    };
    let cluster_endpoints = discovered.as_ref().map(|found| found.endpoints.clone());
    let (server, server_from, resolver) = match (&args.server, discovered) {
        (Some(text), _) => (parse_server(text)?, "--server".to_string(), resolver_or_defaults()),
        (None, Some(found)) => (found.server, found.source, resolver_or_defaults()),
        (None, None) => {
            let conf = ResolvConf::read(&resolv_path).map_err(|e| match e {
                Error::ReadFile { path, source } => Error::Usage(format!(
                    "cannot read {}: {source}; give the server to probe with --server IP[:PORT]",
                    path.display()
                )),
                other => other,
            })?;
            let server = conf.first_server(&resolv_path)?;
            (server, format!("{}", resolv_path.display()), resolver_options(&conf, &resolv_path))
        }
    };
    let timeout = Duration::from_millis(args.timeout);
    Ok(ProbeConfig {
        engine: EngineConfig {
            server,
            names,
            mode,
            count,
            duration,
            rate: args.rate,
            concurrency: args.concurrency,
            timeout,
            linger: timeout.min(MAX_LINGER),
            max_run: MAX_RUN,
            slow_after: Duration::from_secs(u64::from(resolver.timeout_s)),
        },
        server_from,
        names: names_text,
        netns: args.netns.clone(),
        stats_netns: args.stats_netns.clone(),
        resolver,
        cluster_endpoints,
    })
}

/// Validates the arguments, runs, renders.
pub fn execute(args: ProbeArgs, ctx: &Context) -> Result<Outcome> {
    ctx.no_prometheus("probe")?;
    let config = config(&args, |spec, protocol| {
        // The node's rules live where DNAT happens: the --stats-netns
        // namespace, else this one.
        let rules_ns = args.stats_netns.as_deref().map(Netns::open).transpose()?;
        if let Some(spec) = spec {
            let resolved =
                select::resolve(&Selector::Spec(spec.clone()), rules_ns.as_ref(), &[protocol])?;
            let Some((found, ip)) =
                resolved.services.iter().find_map(|s| s.cluster_ips.first().map(|ip| (s, *ip)))
            else {
                return Err(Error::Usage(format!("--service {spec}: no ClusterIP in the rules")));
            };
            return Ok(Some(ClusterDns {
                server: SocketAddr::new(ip, found.port),
                source: format!("{} ClusterIP, {}", found.port_name_string(), resolved.source),
                endpoints: found.endpoints.clone(),
            }));
        }
        match service::cluster_dns(rules_ns.as_ref(), protocol) {
            Ok(found) => Ok(Some(found)),
            Err(why) => {
                if ctx.verbose > 0 {
                    render::note(ctx, &format!("ctdiag: {why}"));
                }
                Ok(None)
            }
        }
    })?;
    crate::interrupt::install();
    let bar = (std::io::stderr().is_terminal() && !ctx.quiet && ctx.format == OutputFormat::Table)
        .then(|| render::probe::progress_bar(config.engine.count, config.engine.duration));
    let progress = |done: u64| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let outcome = probe::run(&config, &progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = outcome?;
    // Decided before rendering: a reader that closed the pipe does not
    // change what was found.
    let verdict = Outcome::from_findings(&report.findings);
    let text = match ctx.format {
        OutputFormat::Json => render::json::document(&report)?,
        _ => render::probe::table(ctx, &report),
    };
    render::emit(&text)?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_forms() {
        assert_eq!(parse_server("198.19.0.10").unwrap(), "198.19.0.10:53".parse().unwrap());
        assert_eq!(parse_server("127.0.0.1:5353").unwrap(), "127.0.0.1:5353".parse().unwrap());
        assert_eq!(parse_server("2001:db8::53").unwrap(), "[2001:db8::53]:53".parse().unwrap());
        assert_eq!(
            parse_server("[2001:db8::53]:54").unwrap(),
            "[2001:db8::53]:54".parse().unwrap()
        );
        for bad in ["", "dns.example", "198.19.0.10:0", "198.19.0.10:70000", "1.2.3", "0.0.0.0"] {
            assert!(matches!(parse_server(bad), Err(Error::Usage(_))), "{bad:?}");
        }
        assert!(parse_server("198.19.0.10:0").unwrap_err().to_string().contains("port 0"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        for bad in ["", "0", "-1s", "5x", "2h", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
