//! Services from kube-proxy's nftables mode, read from `nft list table ip
//! kube-proxy` and `nft list table ip6 kube-proxy`.
//!
//! What defines a Service port (see tests/fixtures/kube-proxy/README.md):
//! - The `service-ips` map: `CIP . proto . port : goto CHAIN`. A ClusterIP
//!   goes to the port's `service-HASH-ns/name/proto/portname` chain (or
//!   `local-...` for internalTrafficPolicy Local); external and load-balancer
//!   IPs go to `external-...` chains and are not ClusterIPs.
//! - The endpoints: `dnat to IP:PORT` in the `endpoint-...` chains that the
//!   service chain's `numgen random mod N vmap { ... }` goes to, or the newer
//!   inline `dnat ip to numgen random mod N map { 0 : IP . PORT, ... }`.
//! - A port without endpoints is only an element of `no-endpoint-services`,
//!   its name only in the element's comment (`"ns/name:port"`).
//!
//! The listing order is not relied on: chains may come before maps.

mod netlink;

pub use netlink::{read_family, read_service_family};

use std::net::{IpAddr, SocketAddr};

use super::{
    merge_families, parse_listing, read_rules, run_listing, Builder, Chains, Discovery, Key,
    ListingParser, ModeReaders, Parsed, Protocol, ProxyMode,
};
use crate::error::{Error, Result};
use crate::netfilter::nf_tables::{Family, NftError, Reader};
use crate::netns::{run_in, Netns};
use crate::process::RunError;
use crate::service::select::ServiceSpec;

/// A block of the listing the parser is inside.
#[derive(Debug)]
enum Block {
    /// `table FAMILY NAME {`; `ours` for `ip`/`ip6` `kube-proxy`.
    Table {
        ours: bool,
    },
    Map(String),
    Chain(String),
    Other,
}

/// One element of a verdict map: `IP . proto . port [comment "..."] : goto
/// CHAIN`.
#[derive(Debug)]
struct Element {
    ip: IpAddr,
    protocol: Protocol,
    port: u16,
    comment: Option<String>,
    /// The chain of a `goto`/`jump` verdict; `None` for `drop`, `reject`.
    chain: Option<String>,
}

/// The names nft may print for the ports kube-proxy's Services commonly use,
/// when it is not asked for numbers.
fn port_number(text: &str) -> Option<u16> {
    match text {
        "domain" => Some(53),
        "http" => Some(80),
        "https" => Some(443),
        _ => text.parse().ok().filter(|p| *p != 0),
    }
}

fn unquote(text: &str) -> &str {
    text.trim_matches('"')
}

/// The text between the first `{` and its matching `}`, if it closes.
fn braced(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let mut depth = 0usize;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start + 1..start + i]);
                }
            }
            _ => {}
        }
    }
    None
}

fn parse_element(text: &str) -> std::result::Result<Element, String> {
    let (key, verdict) =
        text.split_once(" : ").ok_or_else(|| format!("element {text:?} has no verdict"))?;
    let (key, comment) = match key.split_once(" comment ") {
        Some((key, comment)) => (key, Some(unquote(comment.trim()).to_string())),
        None => (key, None),
    };
    let parts: Vec<&str> = key.split(" . ").map(str::trim).collect();
    let [ip, protocol, port] = parts.as_slice() else {
        return Err(format!("element {text:?} is not IP . protocol . port"));
    };
    let ip: IpAddr = ip.parse().map_err(|_| format!("element {text:?}: bad address"))?;
    let protocol =
        Protocol::parse(protocol).ok_or_else(|| format!("element {text:?}: bad protocol"))?;
    let port = port_number(port).ok_or_else(|| format!("element {text:?}: bad port"))?;
    let chain = match verdict.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["goto" | "jump", chain] => Some(unquote(chain).to_string()),
        ["drop" | "reject" | "accept" | "return" | "continue"] => None,
        _ => return Err(format!("element {text:?}: verdict is not goto/jump CHAIN or drop")),
    };
    Ok(Element { ip, protocol, port, comment, chain })
}

/// Namespace, name, protocol and port name from a `service-HASH-ns/name/
/// proto/portname` or `local-HASH-...` chain name.
fn chain_service(chain: &str) -> Option<Key> {
    let rest = chain.strip_prefix("service-").or_else(|| chain.strip_prefix("local-"))?;
    let (_hash, spn) = rest.split_once('-')?;
    let parts: Vec<&str> = spn.split('/').collect();
    let [namespace, name, protocol, port_name] = parts.as_slice() else { return None };
    let protocol = Protocol::parse(protocol)?;
    let valid = |s: &str| !s.is_empty() && !s.contains("...");
    (valid(namespace) && valid(name) && !port_name.contains("..."))
        .then(|| (namespace.to_string(), name.to_string(), port_name.to_string(), protocol))
}

/// `ns/name:port` or `ns/name` from a `no-endpoint-services` comment.
fn comment_service(comment: &str, protocol: Protocol) -> Option<Key> {
    let (namespace, rest) = comment.split_once('/')?;
    let (name, port_name) = rest.split_once(':').unwrap_or((rest, ""));
    (!namespace.is_empty() && !name.is_empty() && !rest.contains(char::is_whitespace))
        .then(|| (namespace.to_string(), name.to_string(), port_name.to_string(), protocol))
}

/// `IP:PORT` or `[IPv6]:PORT` after `dnat [ip|ip6] to`, or the values of an
/// inline `numgen ... map { 0 : IP . PORT, ... }`.
fn dnat_targets(rule: &str) -> Option<std::result::Result<Vec<SocketAddr>, String>> {
    let words: Vec<&str> = rule.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "dnat")?;
    let mut rest = &words[at + 1..];
    if let ["ip" | "ip6", tail @ ..] = rest {
        rest = tail;
    }
    let bad = || Err(format!("cannot read the DNAT target in {rule:?}"));
    match rest {
        ["to", "numgen", ..] => {
            let Some(body) = braced(&rule[rule.find("numgen").unwrap_or(0)..]) else {
                return Some(bad());
            };
            let mut targets = Vec::new();
            for entry in body.split(',') {
                let value = entry.split_once(" : ").map(|(_, v)| v);
                let pair: Option<Vec<&str>> =
                    value.map(|v| v.split(" . ").map(str::trim).collect());
                match pair.as_deref() {
                    Some([ip, port]) => match (ip.parse::<IpAddr>(), port_number(port)) {
                        (Ok(ip), Some(port)) => targets.push(SocketAddr::new(ip, port)),
                        _ => return Some(bad()),
                    },
                    _ => return Some(bad()),
                }
            }
            Some(Ok(targets))
        }
        ["to", target, ..] => {
            Some(target.parse::<SocketAddr>().map(|a| vec![a]).or_else(|_| bad()))
        }
        _ => Some(bad()),
    }
}

/// Parses `nft list table ip kube-proxy` / `ip6` output (or a whole `nft
/// list ruleset`: other tables are ignored). Elements and rules that cannot
/// be read are listed in `skipped`, never fatal.
pub fn parse(text: &str) -> Parsed {
    parse_listing::<Parser>(text)
}

/// The `nft list` parser, fed one line at a time (so it can read a
/// listing while `nft` still prints it).
#[derive(Debug, Default)]
pub(crate) struct Parser {
    skipped: Vec<String>,
    chains: Chains,
    found: Found,
    stack: Vec<Block>,
    /// A map's `elements = { ... }` may span thousands of lines: the map,
    /// the text so far, its first line and how many braces are still open.
    /// Why the count: rescanning the growing text for its closing brace on
    /// every line would be quadratic.
    pending: Option<(String, String, usize, usize)>,
    number: usize,
}

impl ListingParser for Parser {
    fn line(&mut self, raw: &str) {
        self.number += 1;
        let number = self.number;
        let line = raw.trim();
        if let Some((map, mut buffer, start, open)) = self.pending.take() {
            buffer.push(' ');
            buffer.push_str(line);
            let open = (open + line.matches('{').count()).checked_sub(line.matches('}').count());
            match open {
                Some(0) | None => match braced(&buffer) {
                    Some(body) => {
                        collect_elements(&map, body, start, &mut self.found, &mut self.skipped)
                    }
                    None => self
                        .skipped
                        .push(format!("line {start}: the elements of map {map} are malformed")),
                },
                Some(open) => self.pending = Some((map, buffer, start, open)),
            }
            return;
        }
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        if line == "}" {
            self.stack.pop();
            return;
        }
        let ours = matches!(self.stack.first(), Some(Block::Table { ours: true }));
        if let Some(Block::Map(map)) = self.stack.last() {
            if ours && line.starts_with("elements = {") {
                match braced(line) {
                    Some(body) => {
                        collect_elements(map, body, number, &mut self.found, &mut self.skipped)
                    }
                    None => {
                        let open =
                            line.matches('{').count().saturating_sub(line.matches('}').count());
                        self.pending = Some((map.clone(), line.to_string(), number, open));
                    }
                }
            }
            return;
        }
        if let Some(head) = line.strip_suffix('{') {
            let words: Vec<&str> = head.split_whitespace().collect();
            self.stack.push(match words.as_slice() {
                ["table", family, name] => Block::Table {
                    ours: matches!(*family, "ip" | "ip6") && unquote(name) == "kube-proxy",
                },
                // Sets hold elements the same way (`cluster-ips`).
                ["map" | "set", name] => Block::Map(unquote(name).to_string()),
                ["chain", name] => Block::Chain(unquote(name).to_string()),
                _ => Block::Other,
            });
            return;
        }
        let Some(Block::Chain(chain)) = self.stack.last() else { return };
        if !ours {
            return;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if matches!(pair[0], "goto" | "jump") {
                let target = unquote(pair[1].trim_end_matches([',', '}'])).to_string();
                self.chains.jumps.entry(chain.clone()).or_default().push(target);
            }
        }
        match dnat_targets(line) {
            Some(Ok(targets)) => self.chains.dnat.entry(chain.clone()).or_default().extend(targets),
            Some(Err(why)) => self.skipped.push(format!("line {number}: {why}")),
            None => {}
        }
    }

    fn finish(self) -> Parsed {
        let Parser { mut skipped, chains, found, pending, .. } = self;
        if let Some((map, _, start, _)) = pending {
            skipped.push(format!("line {start}: the elements of map {map} never close"));
        }
        build(&found, &chains, skipped)
    }
}

/// The Services that the `service-ips`, `no-endpoint-services` and
/// `cluster-ips` elements and the chain graph define: the one place that
/// turns nftables-mode rules into Services, whether they were read from
/// `nft list` or over netlink.
fn build(found: &Found, chains: &Chains, mut skipped: Vec<String>) -> Parsed {
    let mut builder = Builder::default();
    for (element, at) in &found.service_ips {
        let Some(chain) = element.chain.as_deref() else {
            skipped.push(format!("{at}: service-ips element for {} has no chain", element.ip));
            continue;
        };
        if !(chain.starts_with("service-") || chain.starts_with("local-")) {
            continue; // external, load-balancer or firewall traffic
        }
        match chain_service(chain) {
            Some(key) if key.3 == element.protocol => {
                let endpoints = chains.endpoints_from(chain);
                builder.add(&key, element.ip, element.port, endpoints, ProxyMode::Nftables);
            }
            _ => skipped.push(format!("{at}: chain {chain} does not name a Service port")),
        }
    }
    for (element, at) in &found.no_endpoints {
        // Why: external and load-balancer IPs without (local) endpoints
        // are in this map too. The cluster-ips set names the ClusterIPs;
        // without it (older kube-proxy), a ClusterIP is the one that goes
        // to the reject chain, never a plain `drop`.
        let cluster_ip = if found.cluster_ips.is_empty() {
            element.chain.is_some()
        } else {
            found.cluster_ips.contains(&element.ip)
        };
        if !cluster_ip {
            continue;
        }
        match element.comment.as_deref().and_then(|c| comment_service(c, element.protocol)) {
            Some(key) => {
                builder.add(&key, element.ip, element.port, Vec::new(), ProxyMode::Nftables)
            }
            None => skipped.push(format!(
                "{at}: no-endpoint-services element for {} has no ns/name comment",
                element.ip
            )),
        }
    }
    Parsed { services: builder.finish(), skipped }
}

/// The elements of the maps and sets that define Services.
#[derive(Debug, Default)]
struct Found {
    /// `service-ips` elements, with where they were read (`line N`).
    service_ips: Vec<(Element, String)>,
    /// `no-endpoint-services` elements, with where they were read.
    no_endpoints: Vec<(Element, String)>,
    /// The `cluster-ips` set (kube-proxy >= 1.31): which addresses are
    /// ClusterIPs, as opposed to external and load-balancer IPs.
    cluster_ips: Vec<IpAddr>,
}

/// Reads the elements of the maps that define Services.
fn collect_elements(
    map: &str,
    body: &str,
    number: usize,
    found: &mut Found,
    skipped: &mut Vec<String>,
) {
    if map == "cluster-ips" {
        for text in body.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match text.parse::<IpAddr>() {
                Ok(ip) => found.cluster_ips.push(ip),
                Err(_) => skipped
                    .push(format!("line {number}: set cluster-ips: {text:?} is not an address")),
            }
        }
        return;
    }
    let target = match map {
        "service-ips" => &mut found.service_ips,
        "no-endpoint-services" => &mut found.no_endpoints,
        _ => return,
    };
    for text in body.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match parse_element(text) {
            Ok(element) => target.push((element, format!("line {number}"))),
            Err(why) => skipped.push(format!("line {number}: map {map}: {why}")),
        }
    }
}

/// Reads kube-proxy's `ip` and `ip6` tables inside `netns` (the current
/// namespace when `None`), both families: over netlink ([`read_netlink`]),
/// or with `nft` ([`read_tools`]) when netlink gives no reading (the reason
/// goes to [`Discovery::notes`]), as [`RulesFrom`] says. A missing table is
/// not an error.
pub fn read(netns: Option<&Netns>) -> Result<Discovery> {
    read_rules(
        netns,
        &ModeReaders {
            netlink: &read_netlink,
            tools: &read_tools,
            tools_read: "nftables mode read with nft",
        },
    )
}

/// [`read`] for one Service: over netlink only its part of the tables
/// ([`read_service_family`]); `nft`, when netlink gives no reading, lists
/// everything and the caller keeps the Service's ports. Without a spec:
/// every Service's map elements, no endpoints.
pub fn read_service(netns: Option<&Netns>, spec: Option<&ServiceSpec>) -> Result<Discovery> {
    read_rules(
        netns,
        &ModeReaders {
            netlink: &|netns| {
                read_netlink_with(netns, &|reader, family| {
                    read_service_family(reader, family, spec)
                })
            },
            tools: &read_tools,
            tools_read: "nftables mode read with nft",
        },
    )
}

/// The name the netlink reader goes by in [`Discovery::tools`].
pub const NETLINK_SOURCE: &str = "netlink (nftables)";

/// Reads kube-proxy's `ip` and `ip6` tables over netlink inside `netns`.
/// The outer error: the namespace could not be entered; the inner: why
/// netlink gave no reading (then the listing tool may).
pub fn read_netlink(netns: Option<&Netns>) -> Result<std::result::Result<Discovery, NftError>> {
    read_netlink_with(netns, &|reader, family| netlink::read_family(reader, family))
}

/// One family's table over netlink, as [`read_netlink_with`] asks for it:
/// all of it ([`read_family`]) or one Service's part.
type FamilyRead<'a> =
    &'a (dyn Fn(&mut Reader, Family) -> std::result::Result<Option<Parsed>, NftError> + Sync);

/// Reads kube-proxy's `ip` and `ip6` tables inside `netns` with
/// `read_family`: [`read_netlink`]'s way.
fn read_netlink_with(
    netns: Option<&Netns>,
    read_family: FamilyRead<'_>,
) -> Result<std::result::Result<Discovery, NftError>> {
    run_in(netns, || {
        let mut reader = Reader::open()?;
        let mut parts = Vec::new();
        for family in Family::BOTH {
            parts.extend(read_family(&mut reader, family)?);
        }
        let tools = if parts.is_empty() { Vec::new() } else { vec![NETLINK_SOURCE.to_string()] };
        Ok(Discovery { parsed: merge_families(parts), tools, ..Discovery::default() })
    })
}

/// Lists kube-proxy's `ip` and `ip6` tables with `nft` and parses them,
/// both families at once. Why `nft list table` and not `nft list tables`
/// first: listing one table that does not exist answers ENOENT in
/// milliseconds, while `list tables` fetches the whole ruleset (on an
/// iptables-nft node with many Services that is as slow as
/// `iptables-save`). An error only when `nft` cannot run or is refused.
pub fn read_tools(netns: Option<&Netns>) -> Result<Discovery> {
    run_in(netns, || {
        // Why parse while nft prints: on a big node the parse then ends
        // with the listing instead of after it.
        let list = |family: &'static str| {
            run_listing::<Parser>("nft", &["list", "table", family, "kube-proxy"])
        };
        let (v4, v6) = std::thread::scope(|scope| {
            let v6 = scope.spawn(|| list("ip6"));
            let v4 = list("ip");
            (v4, v6.join().unwrap_or_else(|_| Ok((failed_run(), Parser::default()))))
        });
        let mut parts = Vec::new();
        let mut read_any = false;
        let mut failures = Vec::new();
        for (family, result) in [("ip", v4), ("ip6", v6)] {
            match result {
                Ok((out, parser)) if out.status.success() => {
                    read_any = true;
                    parts.push(parser.finish());
                }
                Ok((out, _)) => {
                    let stderr = out.stderr_text();
                    // Why: nft says ENOENT for a table that does not exist.
                    if !stderr.contains("No such file or directory") {
                        failures.push(format!("nft list table {family} kube-proxy: {stderr}"));
                    }
                }
                Err(RunError::NotFound { .. }) => {
                    return Err(Error::Command {
                        command: "nft".into(),
                        detail: "not installed (the nftables package provides it)".into(),
                    })
                }
                // A hung nft is as good as none: say so, never wait on.
                Err(e) => {
                    return Err(Error::Command { command: "nft".into(), detail: e.to_string() })
                }
            }
        }
        if failures.len() == 2 {
            return Err(Error::Command {
                command: "nft list table ip|ip6 kube-proxy".into(),
                detail: format!("{} (reading the rules needs root)", failures.join("; ")),
            });
        }
        let tools = if read_any { vec!["nft".to_string()] } else { Vec::new() };
        let parsed = merge_families(parts);
        Ok(Discovery { parsed, tools, notes: failures, ..Discovery::default() })
    })?
}

/// A stand-in result for a listing thread that panicked.
fn failed_run() -> crate::process::Ran {
    use std::os::unix::process::ExitStatusExt;
    crate::process::Ran {
        status: std::process::ExitStatus::from_raw(1 << 8),
        stdout: Vec::new(),
        stderr: b"the listing thread panicked".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/kube-proxy/synthetic-1.33.nft");

    fn as_json(parsed: &Parsed) -> serde_json::Value {
        crate::service::services_json(parsed, ProxyMode::Nftables)
    }

    fn expected() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/kube-proxy/synthetic-1.33.expected.json"
        ))
        .unwrap()
    }

    #[test]
    fn kube_proxy_1_33_listing() {
        let parsed = parse(FIXTURE);
        assert_eq!(parsed.skipped, Vec::<String>::new());
        assert_eq!(as_json(&parsed), expected());
    }

    /// `read` lists the tables with the real `nft` in a namespace loaded with
    /// the fixture (a listing loads as is) and finds what parsing it finds.
    #[test]
    fn read_lists_both_tables_inside_a_namespace() {
        if !crate::testutil::lab_allowed("read_lists_both_tables_inside_a_namespace") {
            return;
        }
        let file =
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kube-proxy/synthetic-1.33.nft");
        let ns = crate::testutil::NamespaceGuard::create("nft");
        ns.exec(&["nft", "-f", file]);
        let netns = Netns::open(&ns.name).unwrap();
        let discovery = read_tools(Some(&netns)).unwrap();
        assert_eq!(discovery.tools, ["nft"]);
        assert_eq!(discovery.parsed.skipped, Vec::<String>::new());
        assert_eq!(as_json(&discovery.parsed), expected());
        // Over netlink: the same Services, and `read` takes that way.
        let over_netlink = read_netlink(Some(&netns)).unwrap().unwrap();
        assert_eq!(over_netlink.tools, [NETLINK_SOURCE]);
        assert_eq!(over_netlink.parsed, discovery.parsed);
        assert_eq!(read(Some(&netns)).unwrap().tools, [NETLINK_SOURCE]);
        // Both modes together: the iptables rules of the same namespace
        // (none here but the guard's own) add nothing.
        let both = super::super::discover(Some(&netns)).unwrap();
        assert_eq!(as_json(&both.parsed), expected());

        let empty = crate::testutil::NamespaceGuard::create("nft-empty");
        let empty = Netns::open(&empty.name).unwrap();
        for discovery in [read_tools(Some(&empty)).unwrap(), read(Some(&empty)).unwrap()] {
            assert_eq!((discovery.tools.len(), discovery.parsed), (0, Parsed::default()));
        }
    }

    #[test]
    fn chains_before_maps_give_the_same() {
        // Move every map block of the ip table to its end.
        let (v4, v6) = FIXTURE.split_at(FIXTURE.find("\ntable ip6 kube-proxy").unwrap());
        let mut maps = String::new();
        let mut rest = String::new();
        let mut in_map = false;
        for line in v4.lines() {
            if line.trim_start().starts_with("map ") || line.trim_start().starts_with("set ") {
                in_map = true;
            }
            if in_map {
                maps.push_str(line);
                maps.push('\n');
                if line.trim() == "}" {
                    in_map = false;
                }
            } else {
                rest.push_str(line);
                rest.push('\n');
            }
        }
        let close = rest.rfind('}').unwrap();
        let reordered = format!("{}{}}}\n{v6}", &rest[..close], maps);
        assert_ne!(reordered, FIXTURE);
        assert_eq!(as_json(&parse(&reordered)), expected());
    }

    #[test]
    fn other_tables_are_ignored() {
        let text = "table inet filter {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { 198.19.0.99 . udp . 53 : goto service-AAAAAAAA-x/y/udp/dns }\n\t}\n\tchain service-AAAAAAAA-x/y/udp/dns {\n\t\tmeta l4proto udp dnat to 198.18.9.9:53\n\t}\n}\n";
        assert_eq!(parse(text), Parsed::default());
    }

    #[test]
    fn elements_and_names() {
        let e = parse_element("2001:db8::10 . udp . 53 : goto service-X-a/b/udp/dns").unwrap();
        assert_eq!(
            (e.ip, e.protocol, e.port),
            ("2001:db8::10".parse().unwrap(), Protocol::Udp, 53)
        );
        let e = parse_element(
            r#"198.19.0.80 . tcp . http comment "default/empty:http" : goto reject-chain"#,
        )
        .unwrap();
        assert_eq!((e.port, e.comment.as_deref()), (80, Some("default/empty:http")));
        assert!(parse_element("198.19.0.80 . tcp : goto x").is_err());
        assert!(parse_element("198.19.0.80 . icmp . 1 : goto x").is_err());
        assert!(parse_element("198.19.0.80 . tcp . 0 : goto x").is_err());
        assert_eq!(parse_element("198.19.0.80 . tcp . 80 : drop").unwrap().chain, None);
        assert!(parse_element("198.19.0.80 . tcp . 80 : queue").is_err());
        assert_eq!(
            chain_service("service-ULMVA6XW-ns1/svc1/tcp/p80"),
            Some(("ns1".into(), "svc1".into(), "p80".into(), Protocol::Tcp))
        );
        assert_eq!(
            chain_service("local-ULMVA6XW-ns1/svc1/tcp/"),
            Some(("ns1".into(), "svc1".into(), "".into(), Protocol::Tcp))
        );
        assert_eq!(chain_service("external-ULMVA6XW-ns1/svc1/tcp/p80"), None);
        assert_eq!(chain_service("service-ULMVA6XW-ns1/svc1/tcp"), None);
        assert_eq!(chain_service("service-ULMVA6XW-ns1/svc1/icmp/x"), None);
        assert_eq!(comment_service("default/web", Protocol::Tcp).unwrap().2, "");
        assert_eq!(comment_service("web", Protocol::Tcp), None);
    }

    #[test]
    fn dnat_forms() {
        let one = |r: &str| dnat_targets(r).unwrap().unwrap();
        assert_eq!(
            one("meta l4proto udp dnat to 198.18.2.2:53"),
            ["198.18.2.2:53".parse().unwrap()]
        );
        assert_eq!(one("dnat ip6 to [2001:db8::2]:53"), ["[2001:db8::2]:53".parse().unwrap()]);
        assert_eq!(
            one("meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 198.18.7.1 . 8443, 1 : 198.18.7.2 . 8443 }"),
            ["198.18.7.1:8443".parse().unwrap(), "198.18.7.2:8443".parse().unwrap()]
        );
        assert!(dnat_targets("jump mark-for-masquerade").is_none());
        assert!(dnat_targets("dnat to 198.18.2.2").unwrap().is_err());
        assert!(dnat_targets("dnat ip to numgen random mod 2 map { 0 : x }").unwrap().is_err());
        assert!(dnat_targets("dnat ip to numgen random mod 2 map { 0 : 1.2.3.4 . 1")
            .unwrap()
            .is_err());
        assert!(dnat_targets("dnat").unwrap().is_err());
    }

    #[test]
    fn broken_listings_are_listed_not_fatal() {
        let text = "table ip kube-proxy {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { 198.19.0.10 . udp . 53 : goto service-AAAAAAAA-kube-system/kube-dns/udp/dns,\n\t\t\t     bogus : goto x,\n\t\t\t     198.19.0.11 . udp . 53 : goto service-nohash }\n\t}\n\tchain service-AAAAAAAA-kube-system/kube-dns/udp/dns {\n\t\tmeta l4proto udp dnat to nowhere\n\t}\n\tmap no-endpoint-services {\n\t\telements = { 198.19.0.12 . udp . 53 : goto reject-chain,\n";
        let parsed = parse(text);
        assert_eq!(parsed.services.len(), 1, "{parsed:?}");
        assert_eq!(parsed.services[0].endpoints, Vec::<SocketAddr>::new());
        assert_eq!(parsed.skipped.len(), 4, "{:#?}", parsed.skipped);
    }
}
