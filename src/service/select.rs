//! Which Service ports a command works on: `--service kube-dns`, `--service
//! NS/NAME[:PORT]`, `--all`, or `--cluster-ip IP[:PORT] --endpoints
//! IP:PORT,...` (no rules needed), resolved against the node's kube-proxy
//! rules. Shared by `stale`, `services`, `compare`, `probe` and `doctor`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use std::collections::BTreeMap;

use super::ipvs::{ClusterDnsHint, DnsMatch};
use super::{discover_with, Protocol, ProxyMode, Service, KUBE_DNS};
use crate::error::{Error, Result};
use crate::netns::Netns;

/// `NS/NAME` or `NS/NAME:PORT` (`kube-dns` alone means
/// `kube-system/kube-dns`). PORT is a port name (`dns`) or number (`53`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// One port by name or number; every port when `None`.
    pub port: Option<String>,
}

impl ServiceSpec {
    /// `kube-system/kube-dns`, every port.
    pub fn kube_dns() -> Self {
        ServiceSpec { namespace: KUBE_DNS.0.into(), name: KUBE_DNS.1.into(), port: None }
    }

    /// Parses what the user typed after `--service`.
    pub fn parse(text: &str) -> Result<Self> {
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

    /// Whether a Service port is one this spec names.
    pub fn matches(&self, service: &Service) -> bool {
        service.namespace == self.namespace
            && service.name == self.name
            && self
                .port
                .as_deref()
                .is_none_or(|p| service.port_name == p || service.port.to_string() == p)
    }
}

impl fmt::Display for ServiceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if let Some(port) = &self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// A Service given on the command line: `--cluster-ip IP[:PORT]
/// --endpoints IP:PORT,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualService {
    /// The ClusterIP.
    pub cluster_ip: IpAddr,
    /// The Service port (53 when not given).
    pub port: u16,
    /// The endpoints, sorted, without repeats.
    pub endpoints: Vec<SocketAddr>,
    /// A name for it, from `--service` when both are given.
    pub spec: Option<ServiceSpec>,
}

/// The port assumed when `--cluster-ip` has none: DNS.
pub const DEFAULT_MANUAL_PORT: u16 = 53;

impl ManualService {
    /// Parses `--cluster-ip` and `--endpoints` (each endpoint `IP:PORT`,
    /// `[IPv6]:PORT`, or a bare IP meaning the Service port).
    pub fn parse(
        cluster_ip: &str,
        endpoints: &[String],
        spec: Option<ServiceSpec>,
    ) -> Result<Self> {
        let (ip, port) = parse_ip_port(cluster_ip, DEFAULT_MANUAL_PORT).ok_or_else(|| {
            Error::Usage(format!(
                "--cluster-ip {cluster_ip:?}: give an IP or IP:PORT (e.g. 10.96.0.10, 10.96.0.10:53, [fd00::a]:53)"
            ))
        })?;
        let mut parsed = Vec::new();
        for text in endpoints.iter().flat_map(|e| e.split(',')).map(str::trim) {
            if text.is_empty() {
                continue;
            }
            let (ep_ip, ep_port) = parse_ip_port(text, port).ok_or_else(|| {
                Error::Usage(format!(
                    "--endpoints: {text:?} is not IP:PORT (e.g. 10.244.1.5:53, [fd00::5]:53)"
                ))
            })?;
            if ep_ip.is_ipv4() != ip.is_ipv4() {
                return Err(Error::Usage(format!(
                    "--endpoints: {text} is not of the ClusterIP's address family ({ip})"
                )));
            }
            parsed.push(SocketAddr::new(ep_ip, ep_port));
        }
        parsed.sort();
        parsed.dedup();
        Ok(ManualService { cluster_ip: ip, port, endpoints: parsed, spec })
    }

    /// The Service ports it stands for, one per protocol asked for.
    pub fn services(&self, protocols: &[Protocol]) -> Vec<Service> {
        protocols
            .iter()
            .map(|protocol| Service {
                namespace: self.spec.as_ref().map(|s| s.namespace.clone()).unwrap_or_default(),
                name: self.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                port_name: self.spec.as_ref().and_then(|s| s.port.clone()).unwrap_or_default(),
                protocol: *protocol,
                cluster_ips: vec![self.cluster_ip],
                port: self.port,
                endpoints: self.endpoints.clone(),
                proxy_mode: ProxyMode::Manual,
            })
            .collect()
    }
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

/// Which Service ports a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `--service SPEC` (the default is kube-dns).
    Spec(ServiceSpec),
    /// `--all`: every Service port the rules define, zero-endpoint ones
    /// included.
    All,
    /// `--cluster-ip` / `--endpoints`: no rules read.
    Manual(ManualService),
}

/// The Service ports a [`Selector`] named, and where they came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The Service ports, sorted by namespace, name, port name, protocol.
    pub services: Vec<Service>,
    /// Where they came from: `netlink (iptables-nft) in NS`, `nft in NS`,
    /// `--cluster-ip/--endpoints`.
    pub source: String,
    /// Rules that were skipped and why (for `-v`).
    pub skipped: Vec<String>,
    /// Remarks: a mode that could not be read, and similar.
    pub notes: Vec<String>,
    /// How many Service ports each mode's rules define (empty for
    /// `--cluster-ip`).
    pub per_mode: BTreeMap<ProxyMode, usize>,
    /// In IPVS mode, which ClusterIP was taken for kube-dns and how.
    pub ipvs_kube_dns: Option<DnsMatch>,
}

/// What `--cluster-ip`/`--endpoints` do, for error messages.
const MANUAL_HINT: &str =
    "pass the Service yourself with --cluster-ip IP[:PORT] --endpoints IP:PORT,...";

/// Resolves `selector` against the kube-proxy rules of `netns` (the current
/// namespace when `None`), keeping only `protocols` (every protocol when
/// empty). Errors name what was checked and what to pass instead.
pub fn resolve(
    selector: &Selector,
    netns: Option<&Netns>,
    protocols: &[Protocol],
) -> Result<Resolved> {
    resolve_with(selector, netns, protocols, &ClusterDnsHint::default())
}

/// How many Services an error lists before "and N more".
const LISTED_IN_ERRORS: usize = 40;

/// [`resolve`], with a hint for naming kube-dns in IPVS mode.
pub fn resolve_with(
    selector: &Selector,
    netns: Option<&Netns>,
    protocols: &[Protocol],
    hint: &ClusterDnsHint,
) -> Result<Resolved> {
    if let Selector::Manual(manual) = selector {
        let protocols = if protocols.is_empty() {
            vec![Protocol::Udp, Protocol::Tcp]
        } else {
            protocols.to_vec()
        };
        return Ok(Resolved {
            services: manual.services(&protocols),
            source: "--cluster-ip/--endpoints".into(),
            skipped: Vec::new(),
            notes: Vec::new(),
            per_mode: BTreeMap::new(),
            ipvs_kube_dns: None,
        });
    }
    let place = netns.map_or_else(|| "this namespace".to_string(), |ns| ns.spec().to_string());
    let discovery = discover_with(netns, hint).map_err(|e| {
        Error::Usage(format!("cannot read kube-proxy's rules in {place}: {e}; {MANUAL_HINT}"))
    })?;
    if discovery.parsed.services.is_empty() {
        let notes = if discovery.notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", discovery.notes.join("; "))
        };
        return Err(Error::Usage(format!(
            "no kube-proxy rules in {place}: checked iptables mode (KUBE-SERVICES in the ip/ip6 nat and filter tables over netlink, or iptables-save, ip6tables-save and their -nft/-legacy variants), nftables mode (the ip/ip6 kube-proxy tables over netlink, or nft list table ip|ip6 kube-proxy) and IPVS mode (/proc/net/ip_vs, kube-ipvs0){notes}; run on the node (or --netns with the node's namespace), or {MANUAL_HINT}"
        )));
    }
    let of_protocol: Vec<&Service> = discovery
        .parsed
        .services
        .iter()
        .filter(|s| protocols.is_empty() || protocols.contains(&s.protocol))
        .collect();
    let protocol_words = protocol_words(protocols);
    let services: Vec<Service> = match selector {
        Selector::Spec(spec) => {
            of_protocol.iter().filter(|s| spec.matches(s)).map(|s| (*s).clone()).collect()
        }
        _ => of_protocol.iter().map(|s| (*s).clone()).collect(),
    };
    if services.is_empty() {
        let mut found: Vec<String> =
            of_protocol.iter().take(LISTED_IN_ERRORS).map(|s| describe(s)).collect();
        if of_protocol.len() > LISTED_IN_ERRORS {
            found.push(format!(
                "and {} more (`ctdiag services` lists them all)",
                of_protocol.len() - LISTED_IN_ERRORS
            ));
        }
        let wanted = match selector {
            Selector::Spec(spec) => format!("no {protocol_words}Service {spec}"),
            _ => format!("no {protocol_words}Service"),
        };
        return Err(Error::Usage(if found.is_empty() {
            format!("{wanted} in the kube-proxy rules of {place}: they define no {protocol_words}Service at all")
        } else {
            format!(
                "{wanted} in the kube-proxy rules of {place}; the {protocol_words}Services found: {}",
                found.join(", ")
            )
        }));
    }
    Ok(Resolved {
        services,
        source: format!("{} in {place}", discovery.tools.join(", ")),
        skipped: discovery.parsed.skipped,
        notes: discovery.notes,
        per_mode: discovery.per_mode,
        ipvs_kube_dns: discovery.ipvs_kube_dns,
    })
}

/// "UDP " for one protocol, "" for any.
fn protocol_words(protocols: &[Protocol]) -> String {
    match protocols {
        [one] => format!("{} ", one.as_str().to_uppercase()),
        _ => String::new(),
    }
}

/// `ns/name:port (udp 53)` for an error's list of what exists.
fn describe(service: &Service) -> String {
    format!("{} ({} {})", service.port_name_string(), service.protocol.as_str(), service.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(namespace: &str, name: &str, port_name: &str, protocol: Protocol) -> Service {
        Service {
            namespace: namespace.into(),
            name: name.into(),
            port_name: port_name.into(),
            protocol,
            cluster_ips: vec!["198.19.0.10".parse().unwrap()],
            port: 53,
            endpoints: Vec::new(),
            proxy_mode: ProxyMode::Iptables,
        }
    }

    #[test]
    fn spec_forms() {
        assert_eq!(ServiceSpec::parse("kube-dns").unwrap(), ServiceSpec::kube_dns());
        let spec = ServiceSpec::parse("default/web:http").unwrap();
        assert_eq!((spec.namespace.as_str(), spec.name.as_str()), ("default", "web"));
        assert_eq!(spec.port.as_deref(), Some("http"));
        assert_eq!(spec.to_string(), "default/web:http");
        assert_eq!(
            ServiceSpec::parse("kube-system/kube-dns:53").unwrap().port.as_deref(),
            Some("53")
        );
        assert_eq!(ServiceSpec::parse("kube-dns:dns").unwrap().namespace, "kube-system");
        for bad in ["", "web", "/web", "ns/", "ns/web:", "ns/web:a b", "NS/web", "ns/we b"] {
            let error = ServiceSpec::parse(bad).unwrap_err();
            assert!(matches!(error, Error::Usage(_)), "{bad:?}");
            assert!(error.to_string().contains("NAMESPACE/NAME"), "{error}");
        }
    }

    #[test]
    fn spec_matches_every_port_or_one_by_name_or_number() {
        let dns = service("kube-system", "kube-dns", "dns", Protocol::Udp);
        let tcp = service("kube-system", "kube-dns", "dns-tcp", Protocol::Tcp);
        let all = ServiceSpec::kube_dns();
        assert!(all.matches(&dns) && all.matches(&tcp));
        let by_name = ServiceSpec::parse("kube-system/kube-dns:dns").unwrap();
        assert!(by_name.matches(&dns) && !by_name.matches(&tcp));
        let by_number = ServiceSpec::parse("kube-system/kube-dns:53").unwrap();
        assert!(by_number.matches(&dns) && by_number.matches(&tcp));
        assert!(!ServiceSpec::parse("default/kube-dns").unwrap().matches(&dns));
    }

    #[test]
    fn manual_services() {
        let manual = ManualService::parse(
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
        let services = manual.services(&[Protocol::Udp]);
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].proxy_mode, ProxyMode::Manual);
        assert_eq!(services[0].port_name_string(), "198.19.0.10:53");
        let v6 =
            ManualService::parse("[2001:db8::a]:5353", &["[2001:db8::2]:53".into()], None).unwrap();
        assert_eq!(v6.port, 5353);
        for (ip, eps) in [
            ("x", vec![]),
            ("198.19.0.10:0", vec![]),
            ("198.19.0.10", vec!["nope".to_string()]),
            ("198.19.0.10", vec!["[2001:db8::2]:53".to_string()]),
        ] {
            assert!(
                matches!(ManualService::parse(ip, &eps, None), Err(Error::Usage(_))),
                "{ip} {eps:?}"
            );
        }
    }
}
