//! `ctdiag probe`: arguments -> validated [`ProbeConfig`] (the server from
//! `--server`, the node's kube-proxy rules or resolv.conf) -> report ->
//! table or JSON.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{ProbeArgs, ProbeMode};
use crate::commands::args::{
    check_netns_flags, lookup_names, lookup_plan, name_concurrency, parse_server, retry_after,
    selector, slow_threshold,
};
use crate::dns::engine::{EngineConfig, Mode};
use crate::dns::probe::{
    self, resolver_options, resolver_options_or_defaults, ProbeConfig, MAX_LINGER, MAX_RUN,
};
use crate::dns::resolv::{resolv_conf_path, ResolvConf};
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
    let lookup = &args.lookup;
    let mode = Mode::from(if args.parallel { ProbeMode::Parallel } else { lookup.mode });
    let (names, names_text) = lookup_names(&lookup.names)?;
    let plan = lookup_plan(lookup)?;
    if let (Some(n), true) = (plan.count, lookup.rate > 0.0) {
        let needed = n as f64 / lookup.rate;
        if needed > MAX_RUN.as_secs_f64() {
            return Err(Error::Usage(format!(
                "--count {n} at --rate {} takes {needed:.0} s, more than the {} s limit per run; raise --rate or lower --count",
                lookup.rate,
                MAX_RUN.as_secs()
            )));
        }
    }
    let namespaces = &args.namespaces;
    check_netns_flags(namespaces)?;
    let resolv_path = resolv_conf_path(namespaces.netns.as_deref());
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
            let server = conf.first_server(&resolv_path).map_err(|e| {
                Error::Usage(format!("{e}: give the server to probe with --server IP[:PORT]"))
            })?;
            (server, format!("{}", resolv_path.display()), resolver_options(&conf, &resolv_path))
        }
    };
    let (slow_after, slow_from) = slow_threshold(args.slow_ms, &resolver, plan.timeout)?;
    Ok(ProbeConfig {
        engine: EngineConfig {
            server,
            names,
            mode,
            count: plan.count,
            duration: plan.duration,
            rate: lookup.rate,
            concurrency: lookup.concurrency,
            timeout: plan.timeout,
            linger: plan.timeout.min(MAX_LINGER),
            max_run: MAX_RUN,
            slow_after,
            resolver_timeout: Duration::from_secs(u64::from(resolver.timeout_s)),
            retry_after: retry_after(mode, plan.timeout, &resolver),
        },
        slow_from,
        server_from,
        names: names_text,
        netns: namespaces.netns.clone(),
        stats_netns: namespaces.stats_netns.clone(),
        resolver,
        cluster_endpoints,
    })
}

/// Validates the arguments, runs, renders.
pub fn execute(args: ProbeArgs, ctx: &Context) -> Result<Outcome> {
    let config = config(&args, |spec, protocol| {
        // The node's rules live where DNAT happens: the --stats-netns
        // namespace, else this one.
        let rules_ns = args.namespaces.stats_netns.as_deref().map(Netns::open).transpose()?;
        if let Some(spec) = spec {
            let resolved =
                select::resolve(&Selector::Spec(spec.clone()), rules_ns.as_ref(), &[protocol])
                    .map_err(super::args::select_error)?;
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
    let outcome = render::probe::with_progress(
        ctx,
        config.engine.count,
        config.engine.duration,
        |progress| probe::run(&config, &crate::interrupt::STOP, progress),
    );
    let report = outcome.map_err(name_concurrency)?;
    let verdict = Outcome::from_findings(&report.findings);
    render::emit_report(ctx, &report)?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::args::parse_duration;

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
