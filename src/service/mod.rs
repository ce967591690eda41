//! Kubernetes Services as the node's kube-proxy rules define them: which
//! ClusterIP and port, and which endpoints the DNAT rules send traffic to.
//!
//! kube-proxy's iptables mode (`iptables-save`), nftables mode (`nft list
//! table ip kube-proxy`) and IPVS mode (`/proc/net/ip_vs` with the
//! addresses of `kube-ipvs0`) are read. [`report`] builds `ctdiag
//! services`' report, [`api`] checks the rules against the API's
//! EndpointSlices.

pub mod api;
pub mod from_api;
pub mod iptables;
pub mod ipvs;
pub mod nftables;
pub mod report;
pub mod select;
pub mod targeted;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// The transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Parses iptables' `-p` value (`tcp`, `udp`, `sctp`, any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// From its IP protocol number (6, 17, 132).
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The lowercase name, as kube-proxy and iptables write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// How the node implements Services: which kube-proxy mode wrote the rules
/// a Service was read from, or `manual` for one given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// kube-proxy's iptables mode (`iptables-save`).
    Iptables,
    /// kube-proxy's nftables mode (`nft list table ip|ip6 kube-proxy`).
    Nftables,
    /// kube-proxy's IPVS mode (virtual servers and real servers).
    Ipvs,
    /// `--cluster-ip` / `--endpoints` on the command line: no rules read.
    Manual,
}

impl ProxyMode {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
            ProxyMode::Ipvs => "ipvs",
            ProxyMode::Manual => "manual",
        }
    }
}

/// One port of a Service with the ClusterIPs that carry it and the endpoints
/// its ClusterIP traffic is DNATed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// The Service's namespace, e.g. `kube-system`.
    pub namespace: String,
    /// The Service's name, e.g. `kube-dns`.
    pub name: String,
    /// The port's name (`dns`); "" for an unnamed port.
    pub port_name: String,
    /// The port's protocol.
    pub protocol: Protocol,
    /// The ClusterIPs (one per address family), sorted.
    pub cluster_ips: Vec<IpAddr>,
    /// The Service port.
    pub port: u16,
    /// The DNAT targets (endpoint IP and target port), sorted and without
    /// duplicates; empty when the Service has no ready endpoints.
    pub endpoints: Vec<SocketAddr>,
    /// Which rules it was read from.
    pub proxy_mode: ProxyMode,
}

impl Service {
    /// `namespace/name:port_name` (`namespace/name` for an unnamed port), as
    /// kube-proxy writes it in its rule comments; `CLUSTER_IP:PORT` for an
    /// unnamed Service given on the command line.
    pub fn port_name_string(&self) -> String {
        if self.namespace.is_empty() {
            match self.cluster_ips.first() {
                Some(ip) => SocketAddr::new(*ip, self.port).to_string(),
                None => format!("?:{}", self.port),
            }
        } else if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }
}

/// The namespace and name of the cluster DNS Service.
pub const KUBE_DNS: (&str, &str) = ("kube-system", "kube-dns");

/// The port of Service `namespace/name` that serves `protocol`, if the rules
/// define one. With several such ports (unusual), the one named like the
/// usual DNS ports (`dns`, `dns-tcp`) or else the first wins.
pub fn find<'a>(
    services: &'a [Service],
    (namespace, name): (&str, &str),
    protocol: Protocol,
) -> Option<&'a Service> {
    let mut matching = services
        .iter()
        .filter(|s| s.namespace == namespace && s.name == name && s.protocol == protocol);
    let first = matching.next()?;
    Some(
        std::iter::once(first)
            .chain(matching)
            .find(|s| s.port_name == "dns" || s.port_name == "dns-tcp")
            .unwrap_or(first),
    )
}

/// The Services found in rule listings, and the kube-proxy rules that could
/// not be understood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Sorted by namespace, name, port name, protocol.
    pub services: Vec<Service>,
    /// One line per skipped kube-proxy rule: where it is and why.
    pub skipped: Vec<String>,
}

/// Where kube-proxy's iptables- and nftables-mode rules are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesFrom {
    /// From the kernel over netlink; from the listing tools (`iptables-save`,
    /// `nft`) when netlink is refused, the iptables backend is legacy, or
    /// the netlink reader meets something it does not follow. The default.
    Auto,
    /// Only over netlink (an error when that fails).
    Netlink,
    /// Only through the listing tools, as before the netlink reader.
    Tools,
}

/// The environment variable that chooses [`RulesFrom`]: `auto` (the
/// default), `netlink` or `tools`.
pub const RULES_FROM_ENV: &str = "CTDIAG_RULES_FROM";

impl RulesFrom {
    /// The choice `CTDIAG_RULES_FROM` makes, and a note when it holds
    /// something else (then `auto` is used).
    pub fn from_env() -> (RulesFrom, Option<String>) {
        match std::env::var(RULES_FROM_ENV) {
            Err(_) => (RulesFrom::Auto, None),
            Ok(value) => match value.trim() {
                "" | "auto" => (RulesFrom::Auto, None),
                "netlink" => (RulesFrom::Netlink, None),
                "tools" => (RulesFrom::Tools, None),
                other => (
                    RulesFrom::Auto,
                    Some(format!(
                        "{RULES_FROM_ENV}={other:?} is not auto, netlink or tools: auto was used"
                    )),
                ),
            },
        }
    }
}

/// Several address families' Services merged into one list: a Service
/// with an IPv4 and an IPv6 ClusterIP is one entry.
pub(crate) fn merge_families(parts: impl IntoIterator<Item = Parsed>) -> Parsed {
    let mut builder = Builder::default();
    let mut skipped = Vec::new();
    for part in parts {
        for s in part.services {
            let key = (s.namespace.clone(), s.name.clone(), s.port_name.clone(), s.protocol);
            for ip in &s.cluster_ips {
                builder.add(&key, *ip, s.port, s.endpoints.clone(), s.proxy_mode);
            }
        }
        skipped.extend(part.skipped);
    }
    Parsed { services: builder.finish(), skipped }
}

/// A kube-proxy rule listing's parser (`iptables-save`, `nft list`), fed
/// one line at a time so it can read a listing while the tool still
/// prints it.
pub(crate) trait ListingParser: Default {
    /// Reads the next line of the listing.
    fn line(&mut self, line: &str);
    /// The Services of everything read.
    fn finish(self) -> Parsed;
}

/// A whole listing parsed by `P`.
pub(crate) fn parse_listing<P: ListingParser>(text: &str) -> Parsed {
    let mut parser = P::default();
    for line in text.lines() {
        parser.line(line);
    }
    parser.finish()
}

/// Runs a listing tool with the listing deadline, `P` parsing its output
/// while it prints. Why parse while the tool prints: on a big node the
/// parse then ends with the listing instead of after it.
pub(crate) fn run_listing<P: ListingParser>(
    tool: &str,
    args: &[&str],
) -> std::result::Result<(crate::process::Ran, P), crate::process::RunError> {
    let mut parser = P::default();
    crate::process::run_bounded_lines(tool, args, crate::process::listing_deadline(), |line| {
        parser.line(line)
    })
    .map(|ran| (ran, parser))
}

/// One kube-proxy mode's two readers, as [`read_rules`] chooses between
/// them: the iptables and nftables modes differ only in these pieces (and
/// a targeted read in what its readers read).
pub(crate) struct ModeReaders<'a> {
    /// Over netlink. The outer error: the namespace could not be entered
    /// (or a tool it runs hung); the inner: why netlink gave no reading
    /// (then the listing tools may).
    #[allow(clippy::type_complexity)]
    pub(crate) netlink: &'a dyn Fn(
        Option<&crate::netns::Netns>,
    ) -> crate::error::Result<
        std::result::Result<Discovery, crate::netfilter::nf_tables::NftError>,
    >,
    /// With the listing tools.
    pub(crate) tools: &'a dyn Fn(Option<&crate::netns::Netns>) -> crate::error::Result<Discovery>,
    /// How the note on a fallback names the mode and its listing tool,
    /// e.g. `iptables mode read with iptables-save`.
    pub(crate) tools_read: &'static str,
}

/// Reads one mode's rules inside `netns` as [`RulesFrom`] says: over
/// netlink, or with the listing tools when netlink gives no reading (the
/// reason goes to [`Discovery::notes`]).
pub(crate) fn read_rules(
    netns: Option<&crate::netns::Netns>,
    readers: &ModeReaders<'_>,
) -> crate::error::Result<Discovery> {
    use crate::error::Error;
    match RulesFrom::from_env().0 {
        RulesFrom::Tools => (readers.tools)(netns),
        RulesFrom::Netlink => {
            (readers.netlink)(netns)?.map_err(|why| Error::Runtime(why.to_string()))
        }
        RulesFrom::Auto => match (readers.netlink)(netns)? {
            Ok(discovery) => Ok(discovery),
            Err(why) => {
                let mut discovery = (readers.tools)(netns)
                    .map_err(|e| Error::Runtime(format!("{e} (and over netlink: {why})")))?;
                discovery.notes.push(format!("{}, not over netlink: {why}", readers.tools_read));
                Ok(discovery)
            }
        },
    }
}

/// The kube-proxy rules of a namespace, and where they were read.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The Services found.
    pub parsed: Parsed,
    /// Where kube-proxy rules were found: `netlink (iptables-nft)`,
    /// `netlink (nftables)`, or the tools whose output held them, e.g.
    /// `iptables-save`, `iptables-legacy-save`, `nft`, `/proc/net/ip_vs`.
    pub tools: Vec<String>,
    /// Why one of the modes could not be read (another was), e.g. a
    /// listing tool that hung or is not installed.
    pub notes: Vec<String>,
    /// How many Service ports each mode's rules define, before merging
    /// (more than one mode here means leftover rules of another mode).
    pub per_mode: BTreeMap<ProxyMode, usize>,
    /// In IPVS mode, which ClusterIP was taken for kube-dns and how.
    pub ipvs_kube_dns: Option<ipvs::DnsMatch>,
}

/// Reads kube-proxy's rules in `netns` (the current namespace when `None`)
/// in every mode it may run in: iptables, nftables and IPVS, and merges
/// what they define. An error only when neither `iptables-save` nor `nft`
/// could run and IPVS is not loaded.
pub fn discover(netns: Option<&crate::netns::Netns>) -> crate::error::Result<Discovery> {
    discover_with(netns, &ipvs::ClusterDnsHint::default())
}

/// [`discover`], with a hint for naming kube-dns in IPVS mode.
pub fn discover_with(
    netns: Option<&crate::netns::Netns>,
    hint: &ipvs::ClusterDnsHint,
) -> crate::error::Result<Discovery> {
    discover_modes(
        netns,
        hint,
        &ModeRead { iptables: &|| iptables::read(netns), nftables: &|| nftables::read(netns) },
        &|_| true,
    )
}

/// What reads the iptables and the nftables mode for [`discover_modes`]:
/// the whole rules, or only those of one Service ([`targeted`]).
pub(crate) struct ModeRead<'a> {
    /// Reads the iptables mode, both families.
    pub(crate) iptables: &'a (dyn Fn() -> crate::error::Result<Discovery> + Sync),
    /// Reads the nftables mode, both families.
    pub(crate) nftables: &'a (dyn Fn() -> crate::error::Result<Discovery> + Sync),
}

/// Reads every mode at once (`read` for the iptables and nftables modes,
/// the IPVS table in full) and merges what they define, keeping the
/// Service ports `keep` accepts.
pub(crate) fn discover_modes(
    netns: Option<&crate::netns::Netns>,
    hint: &ipvs::ClusterDnsHint,
    read: &ModeRead<'_>,
    keep: &dyn Fn(&Service) -> bool,
) -> crate::error::Result<Discovery> {
    use crate::error::Error;
    // Why in parallel: on a big node each listing takes a noticeable
    // fraction of a second, and they do not depend on each other.
    let panicked = |mode: &str| Error::Runtime(format!("reading the {mode} rules panicked"));
    let (from_iptables, from_nft, from_ipvs) = std::thread::scope(|scope| {
        let nft = scope.spawn(|| (read.nftables)());
        let ipvs = scope.spawn(|| ipvs::read(netns, hint));
        let iptables = (read.iptables)();
        let nft = nft.join().unwrap_or_else(|_| Err(panicked("nftables")));
        let ipvs = ipvs.join().unwrap_or_else(|_| Err(panicked("IPVS")));
        (iptables, nft, ipvs)
    });
    let mut notes: Vec<String> = RulesFrom::from_env().1.into_iter().collect();
    let ipvs_found = from_ipvs.as_ref().is_ok_and(|r| !r.tools.is_empty());
    if let (Err(a), Err(b), false) = (&from_iptables, &from_nft, ipvs_found) {
        let ipvs_why = match &from_ipvs {
            Err(e) => format!("IPVS mode: {e}"),
            Ok(_) => "IPVS mode: not loaded (no /proc/net/ip_vs)".into(),
        };
        return Err(Error::Command {
            command: "iptables-save / nft / IPVS".into(),
            detail: format!("iptables mode: {a}; nftables mode: {b}; {ipvs_why}"),
        });
    }
    for (mode, error) in [
        ("iptables", from_iptables.as_ref().err()),
        ("nftables", from_nft.as_ref().err()),
        ("IPVS", from_ipvs.as_ref().err()),
    ] {
        if let Some(e) = error {
            notes.push(format!("{mode} mode not read: {e}"));
        }
    }
    let mut services = Vec::new();
    let mut skipped = Vec::new();
    let mut tools = Vec::new();
    let mut per_mode = BTreeMap::new();
    // Why no merge across modes: each mode's parser has merged its address
    // families already; when two modes define the same Service (leftover
    // rules), each keeps its own entry, so nobody mistakes one mode's
    // endpoints for the other's.
    for mut found in [from_iptables.ok(), from_nft.ok()].into_iter().flatten() {
        found.parsed.services.retain(|s| keep(s));
        for s in &found.parsed.services {
            *per_mode.entry(s.proxy_mode).or_insert(0) += 1;
        }
        services.extend(found.parsed.services);
        skipped.extend(found.parsed.skipped);
        tools.extend(found.tools);
        notes.extend(found.notes);
    }
    let mut ipvs_kube_dns = None;
    if let Ok(mut read) = from_ipvs {
        read.services.retain(|s| keep(s));
        if !read.services.is_empty() {
            per_mode.insert(ProxyMode::Ipvs, read.services.len());
        }
        // IPVS Services have no names to merge by: each virtual server is
        // its own entry.
        services.extend(read.services);
        skipped.extend(read.skipped);
        tools.extend(read.tools);
        notes.extend(read.notes);
        ipvs_kube_dns = read.kube_dns;
    }
    services.sort_by(|a, b| {
        (&a.namespace, &a.name, &a.port_name, a.protocol, a.port, &a.cluster_ips, a.proxy_mode).cmp(
            &(
                &b.namespace,
                &b.name,
                &b.port_name,
                b.protocol,
                b.port,
                &b.cluster_ips,
                b.proxy_mode,
            ),
        )
    });
    Ok(Discovery { parsed: Parsed { services, skipped }, tools, notes, per_mode, ipvs_kube_dns })
}

/// The cluster DNS Service found in the node's kube-proxy rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// Its ClusterIP and port.
    pub server: SocketAddr,
    /// Where it was found, for the report, e.g. `kube-system/kube-dns:dns
    /// ClusterIP, netlink (iptables-nft) in ctdiag-node`.
    pub source: String,
    /// The endpoints the rules DNAT it to (empty: none).
    pub endpoints: Vec<SocketAddr>,
}

/// Finds the kube-dns ClusterIP for `protocol` in the kube-proxy rules of
/// `netns` (the current namespace when `None`). IPv4 first when the Service
/// is dual-stack. `Err` says why there is none: the rules cannot be read, or
/// they do not define kube-dns.
pub fn cluster_dns(
    netns: Option<&crate::netns::Netns>,
    protocol: Protocol,
) -> std::result::Result<ClusterDns, String> {
    let place = netns.map_or_else(|| "this namespace".to_string(), |ns| ns.spec().to_string());
    let kube_dns = select::ServiceSpec::kube_dns();
    let discovery = if targeted::enabled() {
        targeted::discover_service(netns, &kube_dns, &ipvs::ClusterDnsHint::default())
    } else {
        discover(netns)
    }
    .map_err(|e| format!("kube-proxy rules in {place} not read: {e}"))?;
    let found = find(&discovery.parsed.services, KUBE_DNS, protocol);
    let Some((dns, ip)) = found.and_then(|s| s.cluster_ips.first().map(|ip| (s, *ip))) else {
        let notes = if discovery.notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", discovery.notes.join("; "))
        };
        return Err(format!(
            "no {}/{} {} ClusterIP in the kube-proxy rules (iptables, nftables or IPVS mode) of {place}{notes}",
            KUBE_DNS.0,
            KUBE_DNS.1,
            protocol.as_str()
        ));
    };
    Ok(ClusterDns {
        server: SocketAddr::new(ip, dns.port),
        source: format!(
            "{} ClusterIP, {} in {place}",
            dns.port_name_string(),
            discovery.tools.join(", ")
        ),
        endpoints: dns.endpoints.clone(),
    })
}

/// What identifies a Service port: namespace, name, port name, protocol.
pub(crate) type Key = (String, String, String, Protocol);

/// Collects ClusterIPs and endpoints per Service port, from rules read in
/// any order and from both address families.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    services: BTreeMap<Key, Service>,
}

impl Builder {
    /// Records that `ip:port` is a ClusterIP of `key` whose traffic goes to
    /// `endpoints` (none: a Service without endpoints).
    pub(crate) fn add(
        &mut self,
        key: &Key,
        ip: IpAddr,
        port: u16,
        endpoints: Vec<SocketAddr>,
        proxy_mode: ProxyMode,
    ) {
        let service = self.services.entry(key.clone()).or_insert_with(|| Service {
            namespace: key.0.clone(),
            name: key.1.clone(),
            port_name: key.2.clone(),
            protocol: key.3,
            cluster_ips: Vec::new(),
            port,
            endpoints: Vec::new(),
            proxy_mode,
        });
        if !service.cluster_ips.contains(&ip) {
            service.cluster_ips.push(ip);
        }
        service.endpoints.extend(endpoints);
    }

    /// The Services sorted by key, each with sorted ClusterIPs and sorted,
    /// distinct endpoints.
    pub(crate) fn finish(self) -> Vec<Service> {
        self.services
            .into_values()
            .map(|mut s| {
                s.cluster_ips.sort();
                s.endpoints.sort();
                s.endpoints.dedup();
                s
            })
            .collect()
    }
}

/// The chain graph of kube-proxy's rules: which chains each chain jumps to,
/// and which DNAT destinations each chain writes.
#[derive(Debug, Default)]
pub(crate) struct Chains {
    /// chain -> the chains it jumps or goes to, in order.
    pub(crate) jumps: HashMap<String, Vec<String>>,
    /// chain -> its DNAT destinations.
    pub(crate) dnat: HashMap<String, Vec<SocketAddr>>,
}

impl Chains {
    /// Every DNAT destination reachable from `chain`. Each chain is visited
    /// once, so loops and the session-affinity rules' repeats do no harm.
    pub(crate) fn endpoints_from(&self, chain: &str) -> Vec<SocketAddr> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut stack = vec![chain.to_string()];
        while let Some(chain) = stack.pop() {
            if !seen.insert(chain.clone()) {
                continue;
            }
            out.extend(self.dnat.get(&chain).into_iter().flatten());
            // Reversed so the first jump is visited first.
            stack.extend(self.jumps.get(&chain).into_iter().flatten().rev().cloned());
        }
        out
    }
}

/// The services as JSON without `proxy_mode` (the expected files list
/// what a parser finds, shared with other tools), after checking that
/// every one came from `mode`: for the iptables and nftables parsers'
/// tests.
#[cfg(test)]
pub(crate) fn services_json(parsed: &Parsed, mode: ProxyMode) -> serde_json::Value {
    assert!(parsed.services.iter().all(|s| s.proxy_mode == mode));
    let mut value = serde_json::to_value(&parsed.services).unwrap();
    for service in value.as_array_mut().unwrap() {
        service.as_object_mut().unwrap().remove("proxy_mode");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(port_name: &str, protocol: Protocol) -> Service {
        Service {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            port_name: port_name.into(),
            protocol,
            cluster_ips: vec!["198.19.0.10".parse().unwrap()],
            port: 53,
            endpoints: Vec::new(),
            proxy_mode: ProxyMode::Iptables,
        }
    }

    #[test]
    fn finds_the_port_by_protocol() {
        let services = [
            service("metrics", Protocol::Tcp),
            service("dns-tcp", Protocol::Tcp),
            service("dns", Protocol::Udp),
        ];
        assert_eq!(find(&services, KUBE_DNS, Protocol::Udp).unwrap().port_name, "dns");
        assert_eq!(find(&services, KUBE_DNS, Protocol::Tcp).unwrap().port_name, "dns-tcp");
        assert_eq!(find(&services, KUBE_DNS, Protocol::Sctp), None);
        assert_eq!(find(&services, ("default", "kube-dns"), Protocol::Udp), None);
        assert_eq!(find(&services[..1], KUBE_DNS, Protocol::Tcp).unwrap().port_name, "metrics");
    }

    #[test]
    fn port_name_strings() {
        assert_eq!(service("dns", Protocol::Udp).port_name_string(), "kube-system/kube-dns:dns");
        assert_eq!(service("", Protocol::Udp).port_name_string(), "kube-system/kube-dns");
        assert_eq!(Protocol::parse("UDP"), Some(Protocol::Udp));
        assert_eq!(Protocol::parse("icmp"), None);
    }
}
