//! Which Service ports a command works on: a Service by namespace and name
//! (kube-dns by default, one port or all), every Service, or a Service given
//! by its ClusterIP and endpoints (no rules needed), resolved against the
//! node's kube-proxy rules. Shared by `stale`, `services`, `compare`,
//! `probe` and `doctor`; the command edge (`commands::args`) builds the
//! [`Selector`] from the flags' text.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use std::collections::BTreeMap;

use super::ipvs::{ClusterDnsHint, DnsMatch};
use super::targeted::{self, discover_names, discover_service};
use super::{discover_with, Protocol, ProxyMode, Service, KUBE_DNS};
use crate::netns::Netns;

/// A Service by namespace and name, one of its ports (by name, `dns`, or
/// number, `53`) or all of them.
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

    /// Whether a Service port is one this spec names.
    pub fn matches(&self, service: &Service) -> bool {
        self.names(&service.namespace, &service.name, &service.port_name, service.port)
    }

    /// Whether the Service port `namespace/name:port_name` (port number
    /// `port`) is one this spec names: [`Self::matches`] before there is a
    /// [`Service`].
    pub(crate) fn names(&self, namespace: &str, name: &str, port_name: &str, port: u16) -> bool {
        namespace == self.namespace
            && name == self.name
            && self.port.as_deref().is_none_or(|p| port_name == p || port.to_string() == p)
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

/// A Service given by its ClusterIP and endpoints, without rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualService {
    /// The ClusterIP.
    pub cluster_ip: IpAddr,
    /// The Service port.
    pub port: u16,
    /// The endpoints, sorted, without repeats.
    pub endpoints: Vec<SocketAddr>,
    /// A name for it, when it has one.
    pub spec: Option<ServiceSpec>,
}

/// The Service port assumed when none is given: DNS.
pub const DEFAULT_MANUAL_PORT: u16 = 53;

/// An endpoint of the other address family than the ClusterIP's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixedFamily {
    /// Its place among the endpoints as given.
    pub index: usize,
    /// The endpoint.
    pub endpoint: SocketAddr,
    /// The ClusterIP.
    pub cluster_ip: IpAddr,
}

impl fmt::Display for MixedFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "endpoint {} is not of the ClusterIP's address family ({})",
            self.endpoint, self.cluster_ip
        )
    }
}

impl ManualService {
    /// The Service at `cluster_ip`:`port` with `endpoints` (sorted, repeats
    /// dropped); refuses the first endpoint of the other address family.
    pub fn new(
        cluster_ip: IpAddr,
        port: u16,
        mut endpoints: Vec<SocketAddr>,
        spec: Option<ServiceSpec>,
    ) -> std::result::Result<Self, MixedFamily> {
        if let Some((index, endpoint)) =
            endpoints.iter().enumerate().find(|(_, e)| e.is_ipv4() != cluster_ip.is_ipv4())
        {
            return Err(MixedFamily { index, endpoint: *endpoint, cluster_ip });
        }
        endpoints.sort();
        endpoints.dedup();
        Ok(ManualService { cluster_ip, port, endpoints, spec })
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

/// Which Service ports a command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One Service (kube-dns by default).
    Spec(ServiceSpec),
    /// Every Service port the rules define, zero-endpoint ones included.
    All,
    /// A Service given by its ClusterIP and endpoints: no rules read.
    Manual(ManualService),
}

/// The Service ports a [`Selector`] named, and where they came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The Service ports, sorted by namespace, name, port name, protocol.
    pub services: Vec<Service>,
    /// Where they came from: `netlink (iptables-nft) in NS`, `nft in NS`,
    /// `--cluster-ip/--endpoints` (a [`Selector::Manual`]).
    pub source: String,
    /// Rules that were skipped and why (for `-v`); for a
    /// [`Selector::Spec`] read with the targeted read, among the rules read
    /// for that Service.
    pub skipped: Vec<String>,
    /// Remarks: a mode that could not be read, and similar.
    pub notes: Vec<String>,
    /// How many Service ports each mode's rules define (empty for
    /// `--cluster-ip`); for a [`Selector::Spec`] read with the targeted
    /// read, how many of that Service's ports each mode defines (so the
    /// modes that define it).
    pub per_mode: BTreeMap<ProxyMode, usize>,
    /// In IPVS mode, which ClusterIP was taken for kube-dns and how.
    pub ipvs_kube_dns: Option<DnsMatch>,
}

/// Why a [`Selector`] could not be resolved: what is wrong and what was
/// checked, with its data. What to pass instead is the caller's to say (in
/// the words of its interface: the command line names its flags), through
/// [`SelectError::message`] with an [`Advice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// The kube-proxy rules could not be read.
    RulesUnreadable {
        /// Where: `this namespace` or the namespace as typed.
        place: String,
        /// Why, in words.
        cause: String,
    },
    /// No kube-proxy rules of any mode.
    NoRules {
        /// Where: `this namespace` or the namespace as typed.
        place: String,
        /// Remarks from the discovery (a mode that could not be read).
        notes: Vec<String>,
    },
    /// The rules define no Service port the selector names.
    NoService {
        /// Where: `this namespace` or the namespace as typed.
        place: String,
        /// The Service asked for (`None`: any); boxed to keep the error
        /// small.
        spec: Option<Box<ServiceSpec>>,
        /// The protocols asked for (every protocol when empty).
        protocols: Vec<Protocol>,
        /// The Service ports of those protocols found, described, at most
        /// [`LISTED_IN_ERRORS`].
        found: Vec<String>,
        /// How many more were found than `found` lists.
        more: usize,
    },
}

/// What a caller tells the user to do instead when a [`SelectError`]
/// leaves them stuck: the command line names its flags here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advice {
    /// How to give the Service by hand, without rules.
    pub manual: &'static str,
    /// How to point at the node's namespace (after "run on the node (or").
    pub node: &'static str,
}

impl SelectError {
    /// The message for the user: what is wrong, what was checked, and
    /// (where there is nothing to fix in the selection) `advice`.
    pub fn message(&self, advice: &Advice) -> String {
        let Advice { manual, node } = advice;
        match self {
            SelectError::RulesUnreadable { place, cause } => {
                format!("cannot read kube-proxy's rules in {place}: {cause}; {manual}")
            }
            SelectError::NoRules { place, notes } => {
                let notes = if notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", notes.join("; "))
                };
                format!(
                    "no kube-proxy rules in {place}: checked iptables mode (KUBE-SERVICES in the ip/ip6 nat and filter tables over netlink, or iptables-save, ip6tables-save and their -nft/-legacy variants), nftables mode (the ip/ip6 kube-proxy tables over netlink, or nft list table ip|ip6 kube-proxy) and IPVS mode (/proc/net/ip_vs, kube-ipvs0){notes}; run on the node (or {node}), or {manual}"
                )
            }
            SelectError::NoService { place, spec, protocols, found, more } => {
                let protocol_words = protocol_words(protocols);
                let wanted = match spec {
                    Some(spec) => format!("no {protocol_words}Service {spec}"),
                    None => format!("no {protocol_words}Service"),
                };
                let mut found = found.clone();
                if *more > 0 {
                    found.push(format!("and {more} more (`ctdiag services` lists them all)"));
                }
                if found.is_empty() {
                    format!("{wanted} in the kube-proxy rules of {place}: they define no {protocol_words}Service at all")
                } else {
                    format!(
                        "{wanted} in the kube-proxy rules of {place}; the {protocol_words}Services found: {}",
                        found.join(", ")
                    )
                }
            }
        }
    }
}

/// Resolves `selector` against the kube-proxy rules of `netns` (the current
/// namespace when `None`), keeping only `protocols` (every protocol when
/// empty). Errors name what was checked ([`SelectError`]).
pub fn resolve(
    selector: &Selector,
    netns: Option<&Netns>,
    protocols: &[Protocol],
) -> std::result::Result<Resolved, SelectError> {
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
) -> std::result::Result<Resolved, SelectError> {
    resolve_reading(selector, netns, protocols, hint, targeted::enabled())
}

/// [`resolve_with`], a [`Selector::Spec`] read with the targeted read
/// when `targeted`.
fn resolve_reading(
    selector: &Selector,
    netns: Option<&Netns>,
    protocols: &[Protocol],
    hint: &ClusterDnsHint,
    targeted: bool,
) -> std::result::Result<Resolved, SelectError> {
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
    let unreadable = |e: crate::error::Error| SelectError::RulesUnreadable {
        place: place.clone(),
        cause: e.to_string(),
    };
    // Why another read after a targeted one that found nothing: the error
    // lists the Services there are (and says when there are no rules at
    // all); the names' read finds them without their chains.
    let discovery = match selector {
        Selector::Spec(spec) if targeted => {
            let found = discover_service(netns, spec, hint).map_err(unreadable)?;
            if found.parsed.services.iter().any(|s| of_protocols(s, protocols)) {
                found
            } else {
                discover_names(netns, hint).map_err(unreadable)?
            }
        }
        _ => discover_with(netns, hint).map_err(unreadable)?,
    };
    if discovery.parsed.services.is_empty() {
        return Err(SelectError::NoRules { place, notes: discovery.notes });
    }
    let of_protocol: Vec<&Service> =
        discovery.parsed.services.iter().filter(|s| of_protocols(s, protocols)).collect();
    let services: Vec<Service> = match selector {
        Selector::Spec(spec) => {
            of_protocol.iter().filter(|s| spec.matches(s)).map(|s| (*s).clone()).collect()
        }
        _ => of_protocol.iter().map(|s| (*s).clone()).collect(),
    };
    if services.is_empty() {
        return Err(SelectError::NoService {
            place,
            spec: match selector {
                Selector::Spec(spec) => Some(Box::new(spec.clone())),
                _ => None,
            },
            protocols: protocols.to_vec(),
            found: of_protocol.iter().take(LISTED_IN_ERRORS).map(|s| describe(s)).collect(),
            more: of_protocol.len().saturating_sub(LISTED_IN_ERRORS),
        });
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

/// Whether `service` is of one of `protocols` (any when empty).
fn of_protocols(service: &Service, protocols: &[Protocol]) -> bool {
    protocols.is_empty() || protocols.contains(&service.protocol)
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
    fn spec_matches_every_port_or_one_by_name_or_number() {
        let dns = service("kube-system", "kube-dns", "dns", Protocol::Udp);
        let tcp = service("kube-system", "kube-dns", "dns-tcp", Protocol::Tcp);
        let all = ServiceSpec::kube_dns();
        assert!(all.matches(&dns) && all.matches(&tcp));
        let spec = |namespace: &str, port: Option<&str>| ServiceSpec {
            namespace: namespace.into(),
            name: "kube-dns".into(),
            port: port.map(str::to_string),
        };
        let by_name = spec("kube-system", Some("dns"));
        assert!(by_name.matches(&dns) && !by_name.matches(&tcp));
        let by_number = spec("kube-system", Some("53"));
        assert!(by_number.matches(&dns) && by_number.matches(&tcp));
        assert!(!spec("default", None).matches(&dns));
    }

    #[test]
    fn manual_services() {
        let ip: IpAddr = "198.19.0.10".parse().unwrap();
        let a: SocketAddr = "198.18.2.2:53".parse().unwrap();
        let b: SocketAddr = "198.18.3.2:53".parse().unwrap();
        let manual = ManualService::new(ip, 53, vec![b, a, b], None).unwrap();
        assert_eq!(manual.endpoints, vec![a, b]);
        let services = manual.services(&[Protocol::Udp]);
        assert_eq!(services.len(), 1);
        assert_eq!(services[0].proxy_mode, ProxyMode::Manual);
        assert_eq!(services[0].port_name_string(), "198.19.0.10:53");
        let v6: SocketAddr = "[2001:db8::2]:53".parse().unwrap();
        let mixed = ManualService::new(ip, 53, vec![a, v6], None).unwrap_err();
        assert_eq!((mixed.index, mixed.endpoint, mixed.cluster_ip), (1, v6, ip));
        assert_eq!(
            mixed.to_string(),
            "endpoint [2001:db8::2]:53 is not of the ClusterIP's address family (198.19.0.10)"
        );
    }

    /// The advice goes where the caller's words belong and nowhere else:
    /// the error itself names no flag.
    #[test]
    fn select_error_messages_take_the_callers_advice() {
        let advice = Advice { manual: "MANUAL", node: "NODE" };
        let unreadable =
            SelectError::RulesUnreadable { place: "ns1".into(), cause: "refused".into() };
        assert_eq!(
            unreadable.message(&advice),
            "cannot read kube-proxy's rules in ns1: refused; MANUAL"
        );
        let none =
            SelectError::NoRules { place: "ns1".into(), notes: vec!["a".into(), "b".into()] };
        let text = none.message(&advice);
        assert!(text.starts_with("no kube-proxy rules in ns1: checked iptables mode"), "{text}");
        assert!(
            text.ends_with("kube-ipvs0) (a; b); run on the node (or NODE), or MANUAL"),
            "{text}"
        );
        let spec =
            ServiceSpec { namespace: "a".into(), name: "b".into(), port: Some("dns".into()) };
        let missing = |found: Vec<String>, more| SelectError::NoService {
            place: "ns1".into(),
            spec: Some(Box::new(spec.clone())),
            protocols: vec![Protocol::Udp],
            found,
            more,
        };
        assert_eq!(
            missing(Vec::new(), 0).message(&advice),
            "no UDP Service a/b:dns in the kube-proxy rules of ns1: they define no UDP Service at all"
        );
        assert_eq!(
            missing(vec!["x/y:dns (udp 53)".into()], 2).message(&advice),
            "no UDP Service a/b:dns in the kube-proxy rules of ns1; the UDP Services found: x/y:dns (udp 53), and 2 more (`ctdiag services` lists them all)"
        );
        for error in [unreadable, none, missing(Vec::new(), 0)] {
            let text = error.message(&Advice { manual: "", node: "" });
            assert!(!text.contains("--"), "{text}");
        }
    }
}
