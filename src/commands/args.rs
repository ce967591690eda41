//! Parsers for flag values that several commands share.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::rr::Name;

use crate::cli::{
    FamilyArg, LabDnsServer, LabFillTarget, LabIpFamily, LabProxyMode, LabRunScenario, LookupArgs,
    NamespaceArgs, ProbeMode, ServiceArgs,
};
use crate::dns::engine::Mode;
use crate::dns::probe::{
    ResolverOptions, DEFAULT_COUNT, DEFAULT_NAME, MAX_CONCURRENCY, MAX_COUNT, MAX_RATE, MAX_RUN,
    MAX_TIMEOUT_MS, SLOW_FRACTION_OF_RESOLVER_TIMEOUT,
};
use crate::dns::wire::check_name;
use crate::error::{Error, Result};
use crate::lab::fill::{Family, FillTarget};
use crate::lab::run::RunScenario;
use crate::lab::{DnsServerKind, IpFamily, ProxyMode};
use crate::service::select::{
    Advice, ManualService, SelectError, Selector, ServiceSpec, DEFAULT_MANUAL_PORT,
};
use crate::service::KUBE_DNS;

/// What to pass instead when the Services cannot be resolved, in flags;
/// handed to the core in the configs of `stale`, `services` and `doctor`.
pub const SELECT_ADVICE: Advice = Advice {
    manual: "pass the Service yourself with --cluster-ip IP[:PORT] --endpoints IP:PORT,...",
    node: "--netns with the node's namespace",
};

/// A [`SelectError`] as the command line reports it: a usage error with
/// [`SELECT_ADVICE`].
pub fn select_error(error: SelectError) -> Error {
    Error::Usage(error.message(&SELECT_ADVICE))
}

/// The engine's mode for a `--mode`/`--modes` value.
impl From<ProbeMode> for Mode {
    fn from(mode: ProbeMode) -> Self {
        match mode {
            ProbeMode::Parallel => Mode::Parallel,
            ProbeMode::Threads => Mode::Threads,
            ProbeMode::Sequential => Mode::Sequential,
            ProbeMode::Reopen => Mode::Reopen,
            ProbeMode::Tcp => Mode::Tcp,
            ProbeMode::Musl => Mode::Musl,
        }
    }
}

/// Maps one clap value enum onto the core enum it stands for, variant by
/// variant (the same names on both sides).
macro_rules! from_flag {
    ($doc:literal, $flag:ty => $core:ty { $($from:ident => $to:ident),+ $(,)? }) => {
        #[doc = $doc]
        impl From<$flag> for $core {
            fn from(value: $flag) -> Self {
                match value {
                    $(<$flag>::$from => <$core>::$to),+
                }
            }
        }
    };
}

from_flag!("The lab's DNS server for `--dns`.", LabDnsServer => DnsServerKind {
    Embedded => Embedded, Dnsmasq => Dnsmasq,
});
from_flag!("kube-proxy's mode for `--proxy-mode`.", LabProxyMode => ProxyMode {
    Iptables => Iptables, Nftables => Nftables,
});
from_flag!("The lab's address families for `--ip-family`.", LabIpFamily => IpFamily {
    Ipv4 => Ipv4, Ipv6 => Ipv6, Dual => Dual,
});
from_flag!("A `lab run --scenarios` value.", LabRunScenario => RunScenario {
    Healthy => Healthy,
    ParallelClash => ParallelClash,
    RaceDrop => RaceDrop,
    DeadEndpoint => DeadEndpoint,
    SlowEndpoint => SlowEndpoint,
    StaleEntries => StaleEntries,
    FullTable => FullTable,
});
from_flag!("Where `lab fill --to` sends its flows.", LabFillTarget => FillTarget {
    ClusterIp => ClusterIp, Unrelated => Unrelated,
});
from_flag!("The family of `lab fill --family`.", FamilyArg => Family { V4 => Ipv4, V6 => Ipv6 });

/// The `--name` values checked (the default name when none is given), and
/// as typed.
pub fn lookup_names(names: &[String]) -> Result<(Vec<Name>, Vec<String>)> {
    let text: Vec<String> =
        if names.is_empty() { vec![DEFAULT_NAME.to_string()] } else { names.to_vec() };
    let parsed = text
        .iter()
        .map(|n| check_name(n).map_err(|why| Error::Usage(format!("--name {n:?}: {why}"))))
        .collect::<Result<_>>()?;
    Ok((parsed, text))
}

/// How many lookups, for how long, how fast and how patient: checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LookupPlan {
    /// `--count` (the default count when neither it nor `--duration` is given).
    pub count: Option<u64>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--timeout`.
    pub timeout: Duration,
}

/// Checks `--count`, `--duration`, `--rate`, `--concurrency` and
/// `--timeout` (clap already refuses `--count` with `--duration`).
pub fn lookup_plan(args: &LookupArgs) -> Result<LookupPlan> {
    let (count, rate, concurrency, timeout_ms) =
        (args.count, args.rate, args.concurrency, args.timeout);
    match count {
        Some(0) => return Err(Error::Usage("--count 0: give at least one lookup".into())),
        Some(n) if n > MAX_COUNT => {
            return Err(Error::Usage(format!("--count {n}: at most {MAX_COUNT} lookups per run")))
        }
        _ => {}
    }
    let duration = args.duration.as_deref().map(parse_duration).transpose()?;
    let count = match (count, duration) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_COUNT),
    };
    if !rate.is_finite() || !(0.0..=MAX_RATE).contains(&rate) {
        return Err(Error::Usage(format!(
            "--rate {rate}: give lookups per second between 0 and {MAX_RATE} (0 = as fast as possible)"
        )));
    }
    if concurrency == 0 || concurrency > MAX_CONCURRENCY {
        return Err(Error::Usage(format!(
            "--concurrency {concurrency}: give 1 to {MAX_CONCURRENCY} lookups in flight"
        )));
    }
    if timeout_ms == 0 || timeout_ms > MAX_TIMEOUT_MS {
        return Err(Error::Usage(format!(
            "--timeout {timeout_ms}: give 1 to {MAX_TIMEOUT_MS} milliseconds"
        )));
    }
    Ok(LookupPlan { count, duration, timeout: Duration::from_millis(timeout_ms) })
}

/// A run's error for the user who typed the flags: the open-file limit
/// that cannot hold the lookups in flight names `--concurrency`; other
/// errors pass unchanged.
pub fn name_concurrency(err: Error) -> Error {
    match err {
        Error::SocketBudget(e) => Error::Usage(format!(
            "--concurrency {}: {}; raise the limit (`ulimit -n {}`) or give --concurrency {} or less",
            e.concurrency,
            e.shortfall(),
            e.wanted,
            e.fits
        )),
        other => other,
    }
}

/// Refuses an empty `--netns ""` or `--stats-netns ""`.
pub fn check_netns_flags(args: &NamespaceArgs) -> Result<()> {
    for (flag, spec) in [("--netns", &args.netns), ("--stats-netns", &args.stats_netns)] {
        if spec.as_deref() == Some("") {
            return Err(Error::Usage(format!("{flag} needs a path, a PID or a name")));
        }
    }
    Ok(())
}

/// The `--slow-ms` threshold and where it came from: the flag, or a fifth
/// of the resolver's timeout. Why a fifth: in-cluster DNS answers in
/// milliseconds, so an answer that takes a fifth of the time the resolver
/// waits before it retries is far outside normal yet well before the
/// resolver gives up (1 s of the usual 5 s); the lab's slow endpoint
/// (1.5 s) is above it.
pub fn slow_threshold(
    slow_ms: Option<u64>,
    resolver: &ResolverOptions,
    timeout: Duration,
) -> Result<(Duration, String)> {
    match slow_ms {
        Some(0) => Err(Error::Usage("--slow-ms 0: give a threshold of 1 ms or more".into())),
        Some(ms) if u128::from(ms) > timeout.as_millis() => Err(Error::Usage(format!(
            "--slow-ms {ms} is above --timeout {}: no answered lookup can be that slow; raise --timeout or lower --slow-ms",
            timeout.as_millis()
        ))),
        Some(ms) => Ok((Duration::from_millis(ms), "--slow-ms".into())),
        None => {
            let ms = u64::from(resolver.timeout_s) * 1000 / SLOW_FRACTION_OF_RESOLVER_TIMEOUT;
            Ok((
                Duration::from_millis(ms),
                format!(
                    "1/{SLOW_FRACTION_OF_RESOLVER_TIMEOUT} of the resolver's {} s timeout ({})",
                    resolver.timeout_s, resolver.source
                ),
            ))
        }
    }
}

/// How often musl sends unanswered queries again: its `timeout /
/// attempts`, with `--timeout` as the timeout and the resolv.conf's
/// `attempts`. `None` for every other mode.
pub fn retry_after(mode: Mode, timeout: Duration, resolver: &ResolverOptions) -> Option<Duration> {
    (mode == Mode::Musl).then(|| timeout / resolver.attempts.max(1))
}

/// The Service selection the flags ask for: `--cluster-ip`/`--endpoints`
/// (named by `--service` when both are given), `--all`, `--service SPEC`,
/// else kube-dns.
pub fn selector(args: &ServiceArgs, all: bool) -> Result<Selector> {
    let spec = args.service.as_deref().map(parse_service).transpose()?;
    if all && (spec.is_some() || args.cluster_ip.is_some()) {
        return Err(Error::Usage(
            "--all takes every Service in the rules: leave out --service and --cluster-ip".into(),
        ));
    }
    if let Some(cluster_ip) = &args.cluster_ip {
        return Ok(Selector::Manual(parse_manual(cluster_ip, &args.endpoints, spec)?));
    }
    if !args.endpoints.is_empty() {
        return Err(Error::Usage("--endpoints needs --cluster-ip".into()));
    }
    Ok(match (all, spec) {
        (true, _) => Selector::All,
        (false, Some(spec)) => Selector::Spec(spec),
        (false, None) => Selector::Spec(ServiceSpec::kube_dns()),
    })
}

/// Parses what the user typed after `--service`: `kube-dns`
/// (`kube-system/kube-dns`), `NS/NAME` or `NS/NAME:PORT`, PORT a port name
/// (`dns`) or number (`53`).
pub fn parse_service(text: &str) -> Result<ServiceSpec> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "--service {text:?}: {why}; give kube-dns, NAMESPACE/NAME or NAMESPACE/NAME:PORT (PORT a port name or number)"
        ))
    };
    let (service, port) = match text.split_once(':') {
        Some((service, port)) => (service, Some(port)),
        None => (text, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad("the port is empty or not a port name or number"));
        }
    }
    let (namespace, name) = match service.split_once('/') {
        Some((namespace, name)) => (namespace, name),
        None if service == KUBE_DNS.1 => (KUBE_DNS.0, KUBE_DNS.1),
        None => return Err(bad("no namespace (only kube-dns may be given without one)")),
    };
    // Kubernetes names: DNS labels (lowercase letters, digits, '-').
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    if !valid(namespace) || !valid(name) {
        return Err(bad("not a valid namespace/name"));
    }
    Ok(ServiceSpec {
        namespace: namespace.into(),
        name: name.into(),
        port: port.map(str::to_string),
    })
}

/// Parses `--cluster-ip` and `--endpoints` (each endpoint `IP:PORT`,
/// `[IPv6]:PORT`, or a bare IP meaning the Service port; several per flag
/// separated by commas). The first endpoint that is wrong, in the order
/// given, is the one named.
pub fn parse_manual(
    cluster_ip: &str,
    endpoints: &[String],
    spec: Option<ServiceSpec>,
) -> Result<ManualService> {
    let (ip, port) = parse_ip_port(cluster_ip, DEFAULT_MANUAL_PORT).ok_or_else(|| {
        Error::Usage(format!(
            "--cluster-ip {cluster_ip:?}: give an IP or IP:PORT (e.g. 10.96.0.10, 10.96.0.10:53, [fd00::a]:53)"
        ))
    })?;
    let mut texts = Vec::new();
    let mut parsed = Vec::new();
    let mut unparsed = None;
    for text in endpoints.iter().flat_map(|e| e.split(',')).map(str::trim) {
        if text.is_empty() {
            continue;
        }
        match parse_ip_port(text, port) {
            Some((ep_ip, ep_port)) => {
                texts.push(text);
                parsed.push(SocketAddr::new(ep_ip, ep_port));
            }
            None => {
                unparsed = Some(text);
                break;
            }
        }
    }
    // An endpoint of the wrong family before the first unparsable one is
    // named first.
    let manual = ManualService::new(ip, port, parsed, spec).map_err(|mixed| {
        Error::Usage(format!(
            "--endpoints: {} is not of the ClusterIP's address family ({ip})",
            texts[mixed.index]
        ))
    })?;
    if let Some(text) = unparsed {
        return Err(Error::Usage(format!(
            "--endpoints: {text:?} is not IP:PORT (e.g. 10.244.1.5:53, [fd00::5]:53)"
        )));
    }
    Ok(manual)
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; port 0 refused.
fn parse_ip_port(text: &str, default_port: u16) -> Option<(IpAddr, u16)> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, default_port));
    }
    let address = text.parse::<SocketAddr>().ok()?;
    (address.port() != 0).then_some((address.ip(), address.port()))
}

/// Parses `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address.
pub fn parse_server(text: &str) -> Result<SocketAddr> {
    let bad = || {
        Error::Usage(format!(
            "--server {text:?}: not an IP address or IP:PORT (e.g. 198.19.0.10, 198.19.0.10:53, [2001:db8::53]:53); host names are not resolved"
        ))
    };
    let address = if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, 53)
    } else if let Ok(address) = text.parse::<SocketAddr>() {
        address
    } else {
        // A port that does not fit u16 makes SocketAddr fail: say so.
        if let Some((host, port)) = text.rsplit_once(':') {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.parse::<IpAddr>().is_ok() && port.parse::<u64>().is_ok() {
                return Err(Error::Usage(format!(
                    "--server {text}: port {port} is out of range (1 to 65535)"
                )));
            }
        }
        return Err(bad());
    };
    if address.port() == 0 {
        return Err(Error::Usage(format!("--server {text}: port 0 is not a port (1 to 65535)")));
    }
    if address.ip().is_unspecified() || address.ip().is_multicast() {
        return Err(Error::Usage(format!(
            "--server {text}: {} cannot be a DNS server address",
            address.ip()
        )));
    }
    Ok(address)
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    parse_duration_of("--duration", text)
}

/// [`parse_duration`] for the flag `flag` (named in errors).
pub fn parse_duration_of(flag: &str, text: &str) -> Result<Duration> {
    let bad =
        || Error::Usage(format!("{flag} {text:?}: give a duration such as 500ms, 30s, 2m or 1h"));
    let text_trim = text.trim();
    let split =
        text_trim.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text_trim.len());
    let (number, unit) = text_trim.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(Error::Usage(format!("{flag} {text}: must be longer than zero")));
    }
    if seconds > MAX_RUN.as_secs_f64() {
        return Err(Error::Usage(format!(
            "{flag} {text}: at most {} s (one hour) per run",
            MAX_RUN.as_secs()
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each flag value maps to the core value of the same name (the name
    /// users type is the one tables and JSON print).
    #[test]
    fn lab_flag_values_map_to_the_core_values_they_name() {
        use clap::ValueEnum;
        fn name<T: ValueEnum>(value: &T) -> String {
            value.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
        }
        for v in LabRunScenario::value_variants() {
            assert_eq!(RunScenario::from(*v).as_str(), name(v));
        }
        for v in LabProxyMode::value_variants() {
            assert_eq!(ProxyMode::from(*v).as_str(), name(v));
        }
        for v in LabIpFamily::value_variants() {
            assert_eq!(IpFamily::from(*v).as_str(), name(v));
        }
        for v in LabDnsServer::value_variants() {
            assert_eq!(DnsServerKind::from(*v).as_str(), name(v));
        }
        for v in LabFillTarget::value_variants() {
            assert_eq!(FillTarget::from(*v).as_str(), name(v));
        }
        // `--family 4|6` names the family by its number.
        for v in FamilyArg::value_variants() {
            assert_eq!(Family::from(*v).as_str(), format!("ipv{}", name(v)));
        }
    }

    #[test]
    fn service_forms() {
        assert_eq!(parse_service("kube-dns").unwrap(), ServiceSpec::kube_dns());
        let spec = parse_service("default/web:http").unwrap();
        assert_eq!((spec.namespace.as_str(), spec.name.as_str()), ("default", "web"));
        assert_eq!(spec.port.as_deref(), Some("http"));
        assert_eq!(spec.to_string(), "default/web:http");
        assert_eq!(parse_service("kube-system/kube-dns:53").unwrap().port.as_deref(), Some("53"));
        assert_eq!(parse_service("kube-dns:dns").unwrap().namespace, "kube-system");
        for bad in ["", "web", "/web", "ns/", "ns/web:", "ns/web:a b", "NS/web", "ns/we b"] {
            let error = parse_service(bad).unwrap_err();
            assert!(matches!(error, Error::Usage(_)), "{bad:?}");
            let text = error.to_string();
            assert!(text.contains(&format!("--service {bad:?}: ")), "{text}");
            assert!(text.contains("NAMESPACE/NAME"), "{text}");
        }
    }

    #[test]
    fn manual_forms() {
        let manual = parse_manual(
            "198.19.0.10",
            &["198.18.2.2:53,198.18.3.2".into(), "198.18.2.2:53".into()],
            None,
        )
        .unwrap();
        assert_eq!(manual.port, 53);
        assert_eq!(
            manual.endpoints,
            vec!["198.18.2.2:53".parse().unwrap(), "198.18.3.2:53".parse().unwrap()]
        );
        let v6 = parse_manual("[2001:db8::a]:5353", &["[2001:db8::2]:53".into()], None).unwrap();
        assert_eq!(v6.port, 5353);
        for (ip, eps) in [
            ("x", vec![]),
            ("198.19.0.10:0", vec![]),
            ("198.19.0.10", vec!["nope".to_string()]),
            ("198.19.0.10", vec!["[2001:db8::2]:53".to_string()]),
        ] {
            assert!(matches!(parse_manual(ip, &eps, None), Err(Error::Usage(_))), "{ip} {eps:?}");
        }
    }

    /// The first wrong endpoint in the order given is the one named,
    /// whether it does not parse or is of the other family; a bare IP is
    /// named as typed.
    #[test]
    fn manual_names_the_first_wrong_endpoint_as_typed() {
        let error = |eps: &str| parse_manual("198.19.0.10", &[eps.to_string()], None).unwrap_err();
        assert_eq!(
            error("2001:db8::2, nope").to_string(),
            "--endpoints: 2001:db8::2 is not of the ClusterIP's address family (198.19.0.10)"
        );
        assert_eq!(
            error("nope,2001:db8::2").to_string(),
            "--endpoints: \"nope\" is not IP:PORT (e.g. 10.244.1.5:53, [fd00::5]:53)"
        );
    }
}
