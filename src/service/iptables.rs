//! Services from kube-proxy's iptables mode, read from `iptables-save`
//! output.
//!
//! What defines a Service port (see tests/fixtures/kube-proxy/README.md for
//! the variations seen in the wild):
//! - nat `KUBE-SERVICES`: `-d CIP/32 -p P --dport N` with the comment
//!   `ns/name:port cluster IP`, jumping to the port's `KUBE-SVC-*` (or
//!   `KUBE-SVL-*`) chain. Rules with `external IP`, `loadbalancer IP` or
//!   `nodePort` comments are not ClusterIPs.
//! - The endpoints: every `KUBE-SEP-*` chain reachable from that chain (the
//!   session-affinity `recent --rcheck` rules name the same ones again),
//!   each with a `DNAT --to-destination IP:PORT` rule.
//! - A port without endpoints has no nat chain at all, only a filter
//!   `KUBE-SERVICES` rule with the comment `ns/name:port has no endpoints`.

mod netlink;

#[cfg(test)]
pub(crate) use netlink::to_rule as netlink_rule;
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

/// The options of one `-A CHAIN ...` rule that matter here, as
/// `iptables-save` writes them (the netlink reader builds the same from
/// the kernel's expressions). Negated options (`! -d ...`) are left out:
/// they never define a ClusterIP or endpoint.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// The chain (`-A CHAIN`).
    pub(crate) chain: String,
    /// `-d ADDRESS[/LEN]`.
    pub(crate) destination: Option<String>,
    /// `-p PROTOCOL` (a name, or a number iptables has no name for).
    pub(crate) protocol: Option<String>,
    /// `--dport PORT[:PORT]`.
    pub(crate) dport: Option<String>,
    /// `--comment TEXT`.
    pub(crate) comment: Option<String>,
    /// `-j TARGET` (a chain, `DNAT`, `REJECT`, `ACCEPT`, ...).
    pub(crate) target: Option<String>,
    /// `--to-destination ADDRESS[:PORT]` of a `DNAT`.
    pub(crate) to_destination: Option<String>,
}

/// Splits a rule line into words the way iptables-save quotes them: double
/// quotes around words with spaces, `\"` and `\\` inside. `None` when a quote
/// is not closed.
fn tokenize(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => word.push(chars.next()?),
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

fn parse_rule(words: &[String]) -> Option<Rule> {
    let mut words = words.iter().map(String::as_str);
    if words.next()? != "-A" {
        return None;
    }
    let mut rule = Rule { chain: words.next()?.to_string(), ..Rule::default() };
    let mut negated = false;
    while let Some(word) = words.next() {
        if word == "!" {
            negated = true;
            continue;
        }
        let slot = match word {
            "-d" | "--destination" => &mut rule.destination,
            "-p" | "--protocol" => &mut rule.protocol,
            "--dport" | "--destination-port" => &mut rule.dport,
            "--comment" => &mut rule.comment,
            "-j" | "--jump" => &mut rule.target,
            "--to-destination" => &mut rule.to_destination,
            _ => {
                negated = false;
                continue;
            }
        };
        let value = words.next()?;
        if !negated {
            *slot = Some(value.to_string());
        }
        negated = false;
    }
    Some(rule)
}

/// `ns/name:port` (or `ns/name:`, `ns/name` for an unnamed port) from the
/// start of a kube-proxy comment whose rest is `suffix`.
fn service_port_name<'a>(comment: &'a str, suffix: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let spn = comment.strip_suffix(suffix)?;
    let (namespace, rest) = spn.split_once('/')?;
    let (name, port_name) = rest.split_once(':').unwrap_or((rest, ""));
    let valid = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
    (valid(namespace) && valid(name) && !port_name.contains(char::is_whitespace))
        .then_some((namespace, name, port_name))
}

/// The address of a `-d` value that names one host (`/32`, `/128`, or no
/// prefix length).
fn host_address(text: &str) -> Option<IpAddr> {
    let (ip, len) = text.split_once('/').unwrap_or((text, ""));
    let ip: IpAddr = ip.parse().ok()?;
    let host_len = if ip.is_ipv4() { "32" } else { "128" };
    (len.is_empty() || len == host_len).then_some(ip)
}

/// One ClusterIP (or no-endpoints REJECT) rule, before the merge.
#[derive(Debug)]
struct PortRule {
    key: Key,
    ip: IpAddr,
    port: u16,
    /// The chain the nat rule jumps to; `None` for the filter REJECT rule.
    chain: Option<String>,
}

/// Reads a ClusterIP-defining rule, or says why it cannot.
fn port_rule(rule: &Rule, suffix: &str) -> std::result::Result<Option<PortRule>, String> {
    let Some(comment) = rule.comment.as_deref() else { return Ok(None) };
    if !comment.ends_with(suffix) {
        return Ok(None);
    }
    let (namespace, name, port_name) = service_port_name(comment, suffix)
        .ok_or_else(|| format!("comment {comment:?} does not name a Service port"))?;
    let ip = rule
        .destination
        .as_deref()
        .and_then(host_address)
        .ok_or_else(|| format!("{comment:?}: no single destination address (-d)"))?;
    let protocol = rule
        .protocol
        .as_deref()
        .and_then(Protocol::parse)
        .ok_or_else(|| format!("{comment:?}: no tcp, udp or sctp protocol (-p)"))?;
    let port = rule
        .dport
        .as_deref()
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{comment:?}: no destination port (--dport)"))?;
    Ok(Some(PortRule {
        key: (namespace.into(), name.into(), port_name.into(), protocol),
        ip,
        port,
        chain: rule.target.clone(),
    }))
}

/// Parses `iptables-save` (or `ip6tables-save`, or both concatenated)
/// output. Rules that are not kube-proxy's are ignored; kube-proxy rules
/// that cannot be read are listed in `skipped`, never fatal.
pub fn parse(text: &str) -> Parsed {
    parse_listing::<Parser>(text)
}

/// The iptables-save parser, fed one line at a time (so it can read a
/// listing while the tool still prints it).
#[derive(Debug, Default)]
pub(crate) struct Parser {
    skipped: Vec<String>,
    cluster_rules: Vec<PortRule>,
    no_endpoint_rules: Vec<PortRule>,
    /// Only jumps to KUBE-SVC/SVL/SEP chains are kept.
    chains: Chains,
    table: String,
    number: usize,
    /// Whether a `KUBE-SERVICES` chain was seen (kube-proxy's rules are
    /// here).
    pub(crate) saw_kube_services: bool,
}

impl ListingParser for Parser {
    fn line(&mut self, line: &str) {
        self.number += 1;
        let number = self.number;
        let line = line.trim();
        if let Some(name) = line.strip_prefix('*') {
            self.table = name.to_string();
            return;
        }
        if line == "COMMIT" {
            self.table.clear();
            return;
        }
        // Why the cheap check first: real dumps carry thousands of Docker,
        // CNI and firewall rules that are none of our business.
        if !line.starts_with("-A ") || !line.contains("KUBE-") {
            if line.starts_with(":KUBE-SERVICES ") {
                self.saw_kube_services = true;
            }
            return;
        }
        let Some(rule) = tokenize(line).as_deref().and_then(parse_rule) else {
            self.skipped.push(format!("line {number}: cannot split the rule (unclosed quote?)"));
            return;
        };
        let table = std::mem::take(&mut self.table);
        self.rule(&table, &rule, &format!("line {number}"));
        self.table = table;
    }

    fn finish(self) -> Parsed {
        let mut builder = Builder::default();
        for r in &self.cluster_rules {
            let endpoints =
                r.chain.as_deref().map(|c| self.chains.endpoints_from(c)).unwrap_or_default();
            builder.add(&r.key, r.ip, r.port, endpoints, ProxyMode::Iptables);
        }
        for r in &self.no_endpoint_rules {
            builder.add(&r.key, r.ip, r.port, Vec::new(), ProxyMode::Iptables);
        }
        Parsed { services: builder.finish(), skipped: self.skipped }
    }
}

impl Parser {
    /// Takes in one rule of `table` (`nat`, `filter`), read at `at` (`line
    /// N`, or where the netlink reader found it): the one place where
    /// iptables-mode rules, from `iptables-save` or over netlink, become
    /// ClusterIPs, jumps and DNAT targets.
    pub(crate) fn rule(&mut self, table: &str, rule: &Rule, at: &str) {
        if rule.chain == "KUBE-SERVICES" {
            self.saw_kube_services = true;
        }
        match table {
            "nat" => {
                if rule.chain == "KUBE-SERVICES" {
                    match port_rule(rule, " cluster IP") {
                        Ok(Some(r)) => self.cluster_rules.push(r),
                        Ok(None) => {}
                        Err(why) => self.skipped.push(format!("{at}: {why}")),
                    }
                } else if rule.chain.starts_with("KUBE-SEP-")
                    && rule.target.as_deref() == Some("DNAT")
                {
                    match rule.to_destination.as_deref().map(str::parse::<SocketAddr>) {
                        Some(Ok(addr)) => {
                            self.chains.dnat.entry(rule.chain.clone()).or_default().push(addr);
                        }
                        _ => self.skipped.push(format!(
                            "{at}: DNAT in {} has no IP:PORT --to-destination",
                            rule.chain
                        )),
                    }
                }
                if let Some(target) = &rule.target {
                    if ["KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-"].iter().any(|p| target.starts_with(p))
                        && rule.chain != "KUBE-SERVICES"
                    {
                        self.chains
                            .jumps
                            .entry(rule.chain.clone())
                            .or_default()
                            .push(target.clone());
                    }
                }
            }
            "filter" if rule.chain == "KUBE-SERVICES" => {
                match port_rule(rule, " has no endpoints") {
                    Ok(Some(r)) => self.no_endpoint_rules.push(r),
                    Ok(None) => {}
                    Err(why) => self.skipped.push(format!("{at}: {why}")),
                }
            }
            _ => {}
        }
    }
}

/// The save tools to try per address family, in order: the system's
/// default first, then each backend explicitly, because kube-proxy may have
/// written its rules with the other one.
const SAVE_TOOLS: [&[&str]; 2] = [
    &["iptables-save", "iptables-nft-save", "iptables-legacy-save"],
    &["ip6tables-save", "ip6tables-nft-save", "ip6tables-legacy-save"],
];

/// Reads kube-proxy's iptables-mode rules inside `netns` (the current
/// namespace when `None`), IPv4 and IPv6: over netlink where iptables-nft
/// wrote them ([`read_netlink`], which also runs the legacy save tool for
/// a family whose rules live in the legacy backend), or with the save
/// tools ([`read_tools`]) when netlink gives no reading (the reason goes to
/// [`Discovery::notes`]), as [`RulesFrom`] says.
pub fn read(netns: Option<&Netns>) -> Result<Discovery> {
    read_rules(
        netns,
        &ModeReaders {
            netlink: &read_netlink,
            tools: &read_tools,
            tools_read: "iptables mode read with iptables-save",
        },
    )
}

/// [`read`] for one Service: over netlink only its rules
/// ([`read_service_family`]: the `KUBE-SERVICES` rules that name it and
/// the chains they lead to); the save tools, when netlink gives no
/// reading, list everything and the caller keeps the Service's ports.
/// Without a spec: every Service's `KUBE-SERVICES` rules, no endpoints.
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
            tools_read: "iptables mode read with iptables-save",
        },
    )
}

/// The name the netlink reader goes by in [`Discovery::tools`].
pub const NETLINK_SOURCE: &str = "netlink (iptables-nft)";

/// The legacy backend's save tool per family: what lists rules that
/// `iptables-legacy` wrote (x_tables, which nf_tables does not see).
const LEGACY_SAVE: [&str; 2] = ["iptables-legacy-save", "ip6tables-legacy-save"];

/// Whether the legacy backend (x_tables) has tables of `family` in the
/// calling thread's namespace: `/proc/net/ip_tables_names` (or
/// `ip6_tables_names`) lists each table some `iptables-legacy` call
/// created there; the file is absent when the module is not even loaded.
fn legacy_tables(family: Family) -> Vec<String> {
    let file = match family {
        Family::Ip => "ip_tables_names",
        Family::Ip6 => "ip6_tables_names",
    };
    std::fs::read_to_string(crate::netns::proc_net_dir().join(file))
        .map(|names| names.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Reads kube-proxy's iptables-nft rules over netlink inside `netns`, both
/// families; a family whose rules are not in nf_tables but whose legacy
/// tables exist is read with its legacy save tool. The outer error: the
/// namespace could not be entered or the legacy tool hung; the inner: why
/// netlink gave no reading (then the save tools may).
pub fn read_netlink(netns: Option<&Netns>) -> Result<std::result::Result<Discovery, NftError>> {
    read_netlink_with(netns, &|reader, family| netlink::read_family(reader, family))
}

/// One family's rules over netlink, as [`read_netlink_with`] asks for
/// them: all of them ([`read_family`]) or one Service's.
type FamilyRead<'a> =
    &'a (dyn Fn(&mut Reader, Family) -> std::result::Result<Option<Parsed>, NftError> + Sync);

/// Reads kube-proxy's iptables rules of both families inside `netns` with
/// `read_family` (over netlink), or with the legacy save tool for a family
/// whose rules live in the legacy backend: [`read_netlink`]'s way.
fn read_netlink_with(
    netns: Option<&Netns>,
    read_family: FamilyRead<'_>,
) -> Result<std::result::Result<Discovery, NftError>> {
    run_in(netns, || {
        let found = Reader::open().and_then(|mut reader| {
            Ok([read_family(&mut reader, Family::Ip)?, read_family(&mut reader, Family::Ip6)?])
        });
        let found = match found {
            Ok(found) => found,
            Err(why) => return Ok(Err(why)),
        };
        let mut parts = Vec::new();
        let mut tools = Vec::new();
        let mut notes = Vec::new();
        for ((family, found), legacy) in Family::BOTH.into_iter().zip(found).zip(LEGACY_SAVE) {
            match found {
                Some(parsed) => {
                    parts.push(parsed);
                    if tools.is_empty() {
                        tools.push(NETLINK_SOURCE.to_string());
                    }
                    // Both backends in use: kube-proxy's rules were taken
                    // from nf_tables; say so, since the other may be its.
                    let legacy_names = legacy_tables(family);
                    if !legacy_names.is_empty() {
                        notes.push(format!(
                            "{} iptables rules were read from nf_tables (iptables-nft), but legacy (x_tables) tables exist too ({}): if kube-proxy runs iptables-legacy, `{legacy}` lists its rules",
                            family.as_str(),
                            legacy_names.join(", ")
                        ));
                    }
                }
                None if !legacy_tables(family).is_empty() => {
                    let read = save_family(&[legacy])?;
                    match read.tool {
                        Some(tool) => {
                            parts.push(read.parsed);
                            tools.push(tool);
                        }
                        None if !read.ran_any => notes.push(format!(
                            "{} legacy iptables tables exist but {legacy} could not run: {}",
                            family.as_str(),
                            if read.failures.is_empty() {
                                "not installed".to_string()
                            } else {
                                read.failures.join("; ")
                            }
                        )),
                        None => {}
                    }
                }
                None => {}
            }
        }
        Ok(Ok(Discovery { parsed: merge_families(parts), tools, notes, ..Discovery::default() }))
    })?
}

/// Runs the save tools (the listing-tool reader) inside `netns` (the current namespace when `None`)
/// and parses what they print, IPv4 and IPv6 at once. For each family the
/// first tool whose output holds `KUBE-SERVICES` counts. Why the whole
/// listing and not `-t nat` and `-t filter`: with the nf_tables backend
/// every run fetches the whole ruleset, so two runs cost twice one. Why
/// parse while the tool prints: on a big node the parse then ends with the
/// listing instead of after it. An error only when no IPv4 tool could run
/// at all (not installed, or not root).
pub fn read_tools(netns: Option<&Netns>) -> Result<Discovery> {
    run_in(netns, || {
        let (v4, v6) = std::thread::scope(|scope| {
            let v6 = scope.spawn(|| save_family(SAVE_TOOLS[1]));
            let v4 = save_family(SAVE_TOOLS[0]);
            let v6 = v6.join().unwrap_or_else(|_| {
                Err(Error::Runtime("the ip6tables-save thread panicked".into()))
            });
            (v4, v6)
        });
        let v4 = v4?;
        if !v4.ran_any {
            return Err(Error::Command {
                command: SAVE_TOOLS[0].join(" / "),
                detail: if v4.failures.is_empty() {
                    "not installed (the iptables package provides it)".into()
                } else {
                    format!("{} (reading the rules needs root)", v4.failures.join("; "))
                },
            });
        }
        let mut parsed = v4.parsed;
        let mut tools: Vec<String> = v4.tool.into_iter().collect();
        // IPv6 is optional: a node without ip6tables still has IPv4 rules.
        if let Ok(v6) = v6 {
            parsed = merge_families([parsed, v6.parsed]);
            tools.extend(v6.tool);
        }
        Ok(Discovery { parsed, tools, ..Discovery::default() })
    })?
}

/// What one address family's save tools gave.
struct SavedFamily {
    parsed: Parsed,
    /// The tool whose listing held kube-proxy's rules.
    tool: Option<String>,
    ran_any: bool,
    failures: Vec<String>,
}

/// The Services in the listing of the first of `candidates` that holds
/// `KUBE-SERVICES`. An error only when one hung: the other tools of the
/// family are not tried then (they share the kernel that made this one
/// hang).
fn save_family(candidates: &[&str]) -> Result<SavedFamily> {
    let mut family =
        SavedFamily { parsed: Parsed::default(), tool: None, ran_any: false, failures: Vec::new() };
    for tool in candidates {
        match run_listing::<Parser>(tool, &[]) {
            Ok((out, parser)) if out.status.success() => {
                family.ran_any = true;
                if parser.saw_kube_services {
                    family.parsed = parser.finish();
                    family.tool = Some(tool.to_string());
                    return Ok(family);
                }
            }
            Ok((out, _)) => {
                family.failures.push(format!("{tool}: {} {}", out.status, out.stderr_text()))
            }
            Err(RunError::NotFound { .. }) => {}
            Err(e @ RunError::TimedOut { .. }) => {
                return Err(Error::Command { command: tool.to_string(), detail: e.to_string() })
            }
            Err(e) => family.failures.push(e.to_string()),
        }
    }
    Ok(family)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(line: &str) -> Rule {
        parse_rule(&tokenize(line).unwrap()).unwrap()
    }

    fn as_json(parsed: &Parsed) -> serde_json::Value {
        crate::service::services_json(parsed, ProxyMode::Iptables)
    }

    fn expected(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn eks_1_10_dump() {
        let parsed = parse(include_str!("../../tests/fixtures/kube-proxy/eks-1.10-hello.iptables"));
        assert_eq!(
            as_json(&parsed),
            expected(include_str!("../../tests/fixtures/kube-proxy/eks-1.10-hello.expected.json"))
        );
        assert_eq!(parsed.skipped, Vec::<String>::new());
    }

    #[test]
    fn kube_proxy_1_28_dumps_both_families() {
        let v4 = include_str!("../../tests/fixtures/kube-proxy/synthetic-1.28.iptables");
        let v6 = include_str!("../../tests/fixtures/kube-proxy/synthetic-1.28.ip6tables");
        let parsed = parse(&format!("{v4}\n{v6}"));
        assert_eq!(
            as_json(&parsed),
            expected(include_str!("../../tests/fixtures/kube-proxy/synthetic-1.28.expected.json"))
        );
        assert_eq!(parsed.skipped, Vec::<String>::new());
        // Either family alone gives its own half.
        let dns = |p: &Parsed| p.services.iter().find(|s| s.port_name == "dns").cloned().unwrap();
        assert_eq!(dns(&parse(v6)).cluster_ips, ["2001:db8:ffff::10".parse::<IpAddr>().unwrap()]);
        assert_eq!(dns(&parse(v4)).endpoints.len(), 2);
    }

    #[test]
    fn the_labs_own_rules() {
        let endpoints = ["198.18.2.2:53".parse().unwrap(), "198.18.3.2:53".parse().unwrap()];
        let text = crate::lab::kube_dns_rules(&endpoints).iptables_restore_input();
        let parsed = parse(&text);
        assert_eq!(parsed.skipped, Vec::<String>::new());
        let dns = super::super::find(&parsed.services, super::super::KUBE_DNS, Protocol::Udp)
            .expect("kube-dns udp");
        assert_eq!(dns.cluster_ips, [IpAddr::from(crate::lab::CLUSTER_IP)]);
        assert_eq!(dns.port, 53);
        let want: Vec<SocketAddr> = endpoints.iter().map(|e| SocketAddr::V4(*e)).collect();
        assert_eq!(dns.endpoints, want);
    }

    /// `read` runs the real save tools in a namespace loaded with the
    /// fixtures, both address families, and finds what parsing the files
    /// finds.
    #[test]
    fn read_runs_the_save_tools_inside_a_namespace() {
        if !crate::testutil::lab_allowed("read_runs_the_save_tools_inside_a_namespace") {
            return;
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kube-proxy");
        let want =
            expected(include_str!("../../tests/fixtures/kube-proxy/synthetic-1.28.expected.json"));
        let ns = crate::testutil::NamespaceGuard::create("svc");
        ns.exec(&["iptables-restore", &format!("{dir}/synthetic-1.28.iptables")]);
        ns.exec(&["ip6tables-restore", &format!("{dir}/synthetic-1.28.ip6tables")]);
        let netns = Netns::open(&ns.name).unwrap();
        let discovery = read_tools(Some(&netns)).unwrap();
        assert_eq!(as_json(&discovery.parsed), want);
        assert_eq!(discovery.tools.len(), 2, "{:?}", discovery.tools);
        assert!(
            discovery.tools[0].starts_with("iptables")
                && discovery.tools[1].starts_with("ip6tables")
        );
        // iptables-restore wrote through iptables-nft here: the netlink
        // reader finds the same, and `read` takes it.
        let over_netlink = read_netlink(Some(&netns)).unwrap().unwrap();
        assert_eq!(over_netlink.parsed.services, discovery.parsed.services);
        assert_eq!(over_netlink.tools, [NETLINK_SOURCE]);
        assert_eq!(read(Some(&netns)).unwrap().tools, [NETLINK_SOURCE]);

        // A namespace without kube-proxy rules: read, nothing found.
        let empty = crate::testutil::NamespaceGuard::create("svc-empty");
        let empty = Netns::open(&empty.name).unwrap();
        for discovery in [read_tools(Some(&empty)).unwrap(), read(Some(&empty)).unwrap()] {
            assert_eq!(discovery.parsed, Parsed::default());
            assert_eq!(discovery.tools, Vec::<String>::new());
        }
    }

    /// Rules written by iptables-legacy are not in nf_tables: the netlink
    /// reader sees the legacy tables and runs the legacy save tool for
    /// them, per family.
    #[test]
    fn legacy_backend_rules_are_read_with_the_legacy_save_tool() {
        if !crate::testutil::lab_allowed("legacy_backend_rules_are_read_with_the_legacy_save_tool")
        {
            return;
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kube-proxy");
        let ns = crate::testutil::NamespaceGuard::create("svc-legacy");
        ns.exec(&["iptables-legacy-restore", &format!("{dir}/synthetic-1.28.iptables")]);
        ns.exec(&["ip6tables-legacy-restore", &format!("{dir}/synthetic-1.28.ip6tables")]);
        let netns = Netns::open(&ns.name).unwrap();
        let discovery = read_netlink(Some(&netns)).unwrap().unwrap();
        assert_eq!(discovery.tools, ["iptables-legacy-save", "ip6tables-legacy-save"]);
        assert_eq!(
            as_json(&discovery.parsed),
            expected(include_str!("../../tests/fixtures/kube-proxy/synthetic-1.28.expected.json"))
        );
        assert_eq!(read_tools(Some(&netns)).unwrap().parsed, discovery.parsed);

        // Both backends: the nf_tables rules are read, the legacy tables
        // are named in a note.
        let both = crate::testutil::NamespaceGuard::create("svc-both");
        both.exec(&["iptables-restore", &format!("{dir}/synthetic-1.28.iptables")]);
        both.exec(&["iptables-legacy", "-t", "nat", "-L", "-n"]);
        let discovery = read_netlink(Some(&Netns::open(&both.name).unwrap())).unwrap().unwrap();
        assert_eq!(discovery.tools, [NETLINK_SOURCE]);
        assert!(
            discovery.notes.iter().any(|n| n.contains("legacy (x_tables) tables exist too (nat)")),
            "{:?}",
            discovery.notes
        );
    }

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            tokenize(r#"-A X -m comment --comment "a b \"c\"" -j Y"#).unwrap(),
            ["-A", "X", "-m", "comment", "--comment", "a b \"c\"", "-j", "Y"]
        );
        assert_eq!(tokenize(r#"-A X --comment "open"#), None);
        assert_eq!(tokenize(r#"-A X --comment "x\"#), None);
        assert_eq!(tokenize("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn negated_options_are_left_out() {
        let r = rule(
            r#"-A KUBE-SVC-X ! -s 198.18.0.0/16 -d 198.19.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-MARK-MASQ"#,
        );
        assert_eq!(r.destination.as_deref(), Some("198.19.0.10/32"));
        let r = rule("-A KUBE-SERVICES ! -d 198.19.0.10/32 -p udp ! --dport 53 -j KUBE-SVC-X");
        assert_eq!((r.destination, r.dport), (None, None));
        assert_eq!(r.target.as_deref(), Some("KUBE-SVC-X"));
        // An option without its value: not a rule we can read.
        assert!(parse_rule(&tokenize("-A KUBE-SERVICES -d").unwrap()).is_none());
    }

    #[test]
    fn service_port_names_old_and_new() {
        assert_eq!(
            service_port_name("kube-system/kube-dns:dns cluster IP", " cluster IP"),
            Some(("kube-system", "kube-dns", "dns"))
        );
        assert_eq!(
            service_port_name("default/hello: cluster IP", " cluster IP"),
            Some(("default", "hello", ""))
        );
        assert_eq!(
            service_port_name("default/hello cluster IP", " cluster IP"),
            Some(("default", "hello", ""))
        );
        assert_eq!(service_port_name("default/hello external IP", " cluster IP"), None);
        assert_eq!(service_port_name("no slash cluster IP", " cluster IP"), None);
        assert_eq!(service_port_name("/x cluster IP", " cluster IP"), None);
    }

    #[test]
    fn host_addresses() {
        assert_eq!(host_address("198.19.0.10/32"), Some("198.19.0.10".parse().unwrap()));
        assert_eq!(host_address("198.19.0.10"), Some("198.19.0.10".parse().unwrap()));
        assert_eq!(host_address("2001:db8::10/128"), Some("2001:db8::10".parse().unwrap()));
        assert_eq!(host_address("198.19.0.0/16"), None);
        assert_eq!(host_address("2001:db8::10/32"), None);
        assert_eq!(host_address("kube-dns"), None);
    }

    #[test]
    fn unreadable_kube_rules_are_listed_not_fatal() {
        let text = r#"*nat
-A KUBE-SERVICES -d 198.19.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-A
-A KUBE-SERVICES -d 198.19.0.0/16 -p udp -m comment --comment "kube-system/broken:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-B
-A KUBE-SERVICES -d 198.19.0.11/32 -p icmp -m comment --comment "kube-system/broken:icmp cluster IP" -j KUBE-SVC-C
-A KUBE-SERVICES -d 198.19.0.12/32 -p udp -m comment --comment "kube-system/broken:noport cluster IP" -j KUBE-SVC-D
-A KUBE-SERVICES -m comment --comment "unclosed -j KUBE-SVC-E
-A KUBE-SVC-A -m comment --comment "kube-system/kube-dns:dns" -j KUBE-SEP-A
-A KUBE-SVC-A -j KUBE-SVC-A
-A KUBE-SEP-A -p udp -j DNAT --to-destination 198.18.2.2
COMMIT
"#;
        let parsed = parse(text);
        assert_eq!(parsed.services.len(), 1, "{parsed:?}");
        assert_eq!(parsed.services[0].endpoints, Vec::<SocketAddr>::new());
        assert_eq!(parsed.skipped.len(), 5, "{:#?}", parsed.skipped);
        assert!(parsed.skipped[0].starts_with("line 3: "), "{:?}", parsed.skipped);
        assert!(parsed.skipped[4].contains("DNAT in KUBE-SEP-A"), "{:?}", parsed.skipped);
    }
}
