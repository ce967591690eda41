//! `ctdiag compare`: arguments -> validated [`CompareConfig`] (the Service
//! from `--cluster-ip/--endpoints` or the node's kube-proxy rules, else,
//! with `--api`/`--kubectl` on a node without them, from the API) ->
//! report -> table, JSON or Prometheus text.

use std::net::SocketAddr;

use crate::cli::CompareArgs;
use crate::commands::args::{
    check_netns_flags, lookup_names, lookup_plan, name_concurrency, retry_after, selector,
    slow_threshold,
};
use crate::dns::compare::{self, CompareConfig, ModePlan, Role, Target, MAX_ROUNDS};
use crate::dns::engine::{EngineConfig, Mode};
use crate::dns::probe::{resolver_options_or_defaults, MAX_LINGER, MAX_RUN};
use crate::dns::resolv::resolv_conf_path;
use crate::error::{Error, Result};
use crate::findings::Outcome;
use crate::netns::Netns;
use crate::render::{self, Context};
use crate::service::api::ApiSource;
use crate::service::from_api;
use crate::service::select::{self, Resolved, SelectError, Selector};
use crate::service::{Protocol, Service};

/// Checks every argument, then finds the Service's ClusterIP and endpoints
/// for each protocol the modes need through `resolve` (the node's rules;
/// called once, with the protocols). Opens no socket.
pub fn config(
    args: &CompareArgs,
    resolve: impl FnOnce(&Selector, &[Protocol]) -> Result<Resolved>,
) -> Result<CompareConfig> {
    let (lookup, namespaces) = (&args.lookup, &args.namespaces);
    let modes = modes_asked(args);
    let (names, names_text) = lookup_names(&lookup.names)?;
    let plan = lookup_plan(lookup)?;
    if args.rounds == 0 || args.rounds > MAX_ROUNDS {
        return Err(Error::Usage(format!(
            "--rounds {}: give 1 to {MAX_ROUNDS} rounds",
            args.rounds
        )));
    }
    check_netns_flags(namespaces)?;
    let selector = selector(&args.service, false)?;
    let resolved = resolve(&selector, &protocols_of(&modes))?;
    let mut plans = Vec::new();
    for mode in &modes {
        let service = service_port(&resolved, &selector, protocol_of(*mode))?;
        plans.push(ModePlan {
            mode: *mode,
            service_port: service.port_name_string(),
            targets: targets_of(service)?,
        });
    }
    let Some(first) = plans.first() else {
        return Err(Error::Usage("--modes: give at least one mode".into()));
    };
    let cluster_ip = first.targets[0].address;
    let endpoints: Vec<SocketAddr> = first.targets[1..].iter().map(|t| t.address).collect();
    let targets_per_mode: usize = plans.iter().map(|p| p.targets.len()).sum();
    if let (Some(n), true) = (plan.count, lookup.rate > 0.0) {
        let needed = n as f64 * targets_per_mode as f64 / lookup.rate;
        if needed > MAX_RUN.as_secs_f64() {
            return Err(Error::Usage(format!(
                "--count {n} for {targets_per_mode} targets at --rate {} takes {needed:.0} s, more than the {} s limit per run; raise --rate or lower --count",
                lookup.rate,
                MAX_RUN.as_secs()
            )));
        }
    }
    let rounds = match plan.count {
        // Never more rounds than lookups: each round gets at least one.
        Some(n) => args.rounds.min(u32::try_from(n).unwrap_or(u32::MAX)),
        None => args.rounds,
    };
    let resolv_path = resolv_conf_path(namespaces.netns.as_deref());
    let resolver = resolver_options_or_defaults(&resolv_path);
    let (slow_after, slow_from) = slow_threshold(args.slow_ms, &resolver, plan.timeout)?;
    let service_name = match &selector {
        Selector::Manual(manual) => {
            manual.spec.as_ref().map_or_else(|| cluster_ip.to_string(), ToString::to_string)
        }
        Selector::Spec(spec) => spec.to_string(),
        Selector::All => first.service_port.clone(),
    };
    Ok(CompareConfig {
        service: service_name,
        service_from: resolved.source.clone(),
        cluster_ip,
        endpoints,
        engine: EngineConfig {
            server: cluster_ip,
            names,
            mode: first.mode,
            count: plan.count,
            duration: plan.duration,
            rate: lookup.rate,
            concurrency: lookup.concurrency,
            timeout: plan.timeout,
            linger: plan.timeout.min(MAX_LINGER),
            max_run: MAX_RUN,
            slow_after,
            resolver_timeout: std::time::Duration::from_secs(u64::from(resolver.timeout_s)),
            retry_after: retry_after(Mode::Musl, plan.timeout, &resolver),
        },
        plans,
        count: plan.count,
        duration: plan.duration,
        rounds,
        names: names_text,
        netns: namespaces.netns.clone(),
        stats_netns: namespaces.stats_netns.clone(),
        resolver,
        slow_from,
    })
}

/// `--modes` (else `--mode`), each once, in the order given.
fn modes_asked(args: &CompareArgs) -> Vec<Mode> {
    let asked = if args.modes.is_empty() { vec![args.lookup.mode] } else { args.modes.clone() };
    let mut modes: Vec<Mode> = Vec::new();
    for mode in asked.into_iter().map(Mode::from) {
        // A mode named twice is compared once.
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    modes
}

/// The transports `modes` need, each once, in the order of the modes.
fn protocols_of(modes: &[Mode]) -> Vec<Protocol> {
    let mut protocols = Vec::new();
    for mode in modes {
        let protocol = protocol_of(*mode);
        if !protocols.contains(&protocol) {
            protocols.push(protocol);
        }
    }
    protocols
}

/// The transport a mode's lookups use.
fn protocol_of(mode: Mode) -> Protocol {
    if mode == Mode::Tcp {
        Protocol::Tcp
    } else {
        Protocol::Udp
    }
}

/// The one Service port of `protocol` among those resolved: the only one,
/// else the DNS-looking one (`dns`/`dns-tcp` or port 53); an error that
/// lists them when that does not decide.
fn service_port<'a>(
    resolved: &'a Resolved,
    selector: &Selector,
    protocol: Protocol,
) -> Result<&'a Service> {
    let of_protocol: Vec<&Service> =
        resolved.services.iter().filter(|s| s.protocol == protocol).collect();
    let dns_like = |s: &&&Service| s.port_name == "dns" || s.port_name == "dns-tcp" || s.port == 53;
    match of_protocol.as_slice() {
        [] => Err(Error::Usage(format!(
            "no {} port of {} in {}{}",
            protocol.as_str().to_uppercase(),
            describe(selector),
            resolved.source,
            if protocol == Protocol::Tcp {
                "; leave tcp out of --modes, or name a Service with a TCP port"
            } else {
                "; compare needs a UDP port (add tcp to --modes only next to a UDP mode when the Service has both)"
            }
        ))),
        [one] => Ok(one),
        several => match several.iter().filter(dns_like).collect::<Vec<_>>().as_slice() {
            [one] => Ok(one),
            _ => Err(Error::Usage(format!(
                "{} has several {} ports ({}); name one: --service NAMESPACE/NAME:PORT",
                describe(selector),
                protocol.as_str().to_uppercase(),
                several
                    .iter()
                    .map(|s| format!("{} {}", s.port_name_string(), s.port))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

fn describe(selector: &Selector) -> String {
    match selector {
        Selector::Spec(spec) => spec.to_string(),
        Selector::Manual(manual) => format!("{}:{}", manual.cluster_ip, manual.port),
        Selector::All => "the Services".into(),
    }
}

/// The ClusterIP (IPv4 first on a dual-stack Service) and the endpoints of
/// its address family.
fn targets_of(service: &Service) -> Result<Vec<Target>> {
    let Some(ip) = service.cluster_ips.first() else {
        return Err(Error::Usage(format!(
            "{} has no ClusterIP in the rules",
            service.port_name_string()
        )));
    };
    let mut targets =
        vec![Target { address: SocketAddr::new(*ip, service.port), role: Role::ClusterIp }];
    targets.extend(
        service
            .endpoints
            .iter()
            .filter(|e| e.is_ipv4() == ip.is_ipv4())
            .map(|e| Target { address: *e, role: Role::Endpoint }),
    );
    Ok(targets)
}

/// `--api FILE|-` or `--kubectl`, checked.
pub fn api_source(args: &CompareArgs) -> Result<Option<ApiSource>> {
    match (args.api.as_deref(), args.kubectl) {
        (Some(""), _) => Err(Error::Usage("--api needs a file, or - for stdin".into())),
        (Some("-"), _) => Ok(Some(ApiSource::Stdin)),
        (Some(path), _) => Ok(Some(ApiSource::File(std::path::PathBuf::from(path)))),
        (None, true) => Ok(Some(ApiSource::Kubectl)),
        (None, false) => Ok(None),
    }
}

/// The node's rules in `rules_ns`; when there are none (or none can be
/// read) and `api` is given, the Service `selector` names from the API.
pub fn resolve_with_api(
    selector: &Selector,
    rules_ns: Option<&Netns>,
    protocols: &[Protocol],
    api: Option<&ApiSource>,
) -> Result<Resolved> {
    let no_rules = match select::resolve(selector, rules_ns, protocols) {
        Ok(resolved) => return Ok(resolved),
        Err(e @ (SelectError::NoRules { .. } | SelectError::RulesUnreadable { .. })) => e,
        Err(e) => return Err(super::args::select_error(e)),
    };
    let (Some(api), Selector::Spec(spec)) = (api, selector) else {
        return Err(super::args::select_error(no_rules));
    };
    let (text, from) = from_api::read(api, &spec.namespace)?;
    let mut resolved = from_api::resolve(&text, &from, spec, protocols)?;
    resolved.notes.insert(
        0,
        format!("not from the rules: {}", no_rules.message(&super::args::SELECT_ADVICE)),
    );
    Ok(resolved)
}

/// Validates the arguments, runs, renders.
pub fn execute(args: CompareArgs, ctx: &Context) -> Result<Outcome> {
    let api = api_source(&args)?;
    let config = config(&args, |selector, protocols| {
        // The node's rules live where DNAT happens: the --stats-netns
        // namespace, else this one.
        let rules_ns = args.namespaces.stats_netns.as_deref().map(Netns::open).transpose()?;
        let resolved = resolve_with_api(selector, rules_ns.as_ref(), protocols, api.as_ref())?;
        if ctx.verbose > 0 {
            for line in resolved.notes.iter().chain(&resolved.skipped) {
                render::note(ctx, &format!("ctdiag: {line}"));
            }
        }
        Ok(resolved)
    })?;
    crate::interrupt::install();
    let total: u64 = config
        .count
        .map_or(0, |n| n * config.plans.iter().map(|p| p.targets.len() as u64).sum::<u64>());
    let outcome = render::probe::with_progress(
        ctx,
        (total > 0).then_some(total),
        config.duration,
        |progress| compare::run(&config, &crate::interrupt::STOP, progress),
    );
    let report = outcome.map_err(name_concurrency)?;
    let verdict = Outcome::from_findings(&report.findings);
    render::emit_report(ctx, &report)?;
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> std::result::Result<Result<Option<ApiSource>>, clap::Error> {
        let mut full = vec!["ctdiag", "compare"];
        full.extend_from_slice(args);
        Cli::try_parse_from(full).map(|cli| match cli.command {
            Command::Compare(args) => api_source(&args),
            _ => unreachable!(),
        })
    }

    #[test]
    fn api_and_kubectl_flags() {
        assert_eq!(parse(&[]).unwrap().unwrap(), None);
        assert_eq!(parse(&["--api", "-"]).unwrap().unwrap(), Some(ApiSource::Stdin));
        assert_eq!(
            parse(&["--api", "listing.json"]).unwrap().unwrap(),
            Some(ApiSource::File("listing.json".into()))
        );
        assert_eq!(parse(&["--kubectl"]).unwrap().unwrap(), Some(ApiSource::Kubectl));
        assert!(matches!(parse(&["--api", ""]).unwrap(), Err(Error::Usage(_))));
        // One source of the Service at a time.
        for both in [
            &["--api", "-", "--kubectl"][..],
            &["--kubectl", "--cluster-ip", "198.19.0.10", "--endpoints", "198.18.2.2"],
            &["--api", "-", "--cluster-ip", "198.19.0.10", "--endpoints", "198.18.2.2"],
        ] {
            assert!(parse(both).is_err(), "{both:?}");
        }
    }

    #[test]
    fn the_api_is_not_read_when_the_service_is_given() {
        let manual = crate::service::select::ManualService::new(
            "198.19.0.10".parse().unwrap(),
            53,
            vec!["198.18.2.2:53".parse().unwrap()],
            None,
        )
        .unwrap();
        // A file that does not exist: reading it would fail.
        let api = ApiSource::File("/nonexistent/ctdiag-listing.json".into());
        let resolved =
            resolve_with_api(&Selector::Manual(manual), None, &[Protocol::Udp], Some(&api))
                .unwrap();
        assert_eq!(resolved.source, "--cluster-ip/--endpoints");
    }
}
