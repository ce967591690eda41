//! The DNS path on the node: is node-local DNS (NodeLocal DNSCache) there,
//! taking DNS out of conntrack with NOTRACK rules, and do NFQUEUE rules see
//! DNS packets (on kernels before 6.12 a queued packet's unconfirmed
//! conntrack entry cannot take part in clash resolution, so the parallel
//! A/AAAA race drops again).
//!
//! Only looked at, never probed: listening sockets (`/proc/net/udp`,
//! `tcp`, both families), interface addresses, and the rules
//! (`iptables-save`, `ip6tables-save`, `nft list ruleset`), all in the
//! node's namespace. No packet is sent to the node-local address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use serde_json::json;

use super::{CheckContext, CheckResult};
use crate::error::Result;
use crate::findings::{Finding, FindingCode, Severity};
use crate::kernel::Kernel;
use crate::netns::Netns;
use crate::process::{run_bounded, RunError};

/// The DNS port.
const DNS_PORT: u16 = 53;
/// Rules quoted per kind in the evidence and data.
const QUOTED: usize = 5;

/// One socket bound to port 53 on the node-local address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    /// `udp`, `tcp`, `udp6`, `tcp6`.
    pub protocol: String,
    /// The bound address.
    pub address: IpAddr,
}

/// Sockets in a `/proc/net/{udp,tcp}{,6}` listing bound to `port` on
/// `address` (TCP: listening only). Lines that do not parse are skipped.
pub fn listeners(text: &str, protocol: &str, address: IpAddr, port: u16) -> Vec<Listener> {
    let tcp = protocol.starts_with("tcp");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let (ip, local_port) = local.split_once(':')?;
            let local_port = u16::from_str_radix(local_port, 16).ok()?;
            // TCP LISTEN is 0A; an unconnected UDP socket shows 07.
            if local_port != port || (tcp && state != "0A") {
                return None;
            }
            let ip = proc_net_address(ip)?;
            (ip == address).then(|| Listener { protocol: protocol.to_string(), address: ip })
        })
        .collect()
}

/// An address as `/proc/net/*` prints it: the kernel's `__be32` words as
/// native-endian hex.
fn proc_net_address(hex: &str) -> Option<IpAddr> {
    let word = |chunk: &str| u32::from_str_radix(chunk, 16).ok().map(u32::to_ne_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(hex.get(i * 8..i * 8 + 8)?)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// What the rules say about DNS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RuleFindings {
    /// Rules that exempt port 53 from conntrack (NOTRACK, `CT --notrack`,
    /// nft `notrack`), as written.
    pub notrack_dns: Vec<String>,
    /// NFQUEUE rules that DNS packets can meet (port 53, or no port match
    /// at all), as written.
    pub nfqueue_dns: Vec<String>,
    /// NFQUEUE rules for other ports only.
    pub nfqueue_other: usize,
    /// The listings read (`iptables-save`, ...).
    pub sources: Vec<String>,
    /// Whether `iptables-save` is iptables-nft's (its tables then show in
    /// `nft list ruleset` too, and are read only once).
    pub iptables_nft: bool,
    /// Listings that could not be read, and why.
    pub notes: Vec<String>,
}

fn is_port_keyword(word: &str) -> bool {
    matches!(word, "--dport" | "--sport" | "--dports" | "--sports" | "dport" | "sport")
}

/// Whether a rule matches DNS by port: 53 as a destination or source
/// port, alone, in a multiport list (`--dports 5353,53`) or in an nft set
/// (`dport { 53, 5353 }`).
fn names_port_53(words: &[&str]) -> bool {
    words.iter().enumerate().any(|(i, word)| {
        if !is_port_keyword(word) {
            return false;
        }
        let rest = &words[i + 1..];
        match rest.first() {
            Some(&"{") => {
                rest[1..].iter().take_while(|w| **w != "}").any(|w| w.trim_matches(',') == "53")
            }
            Some(first) => first
                .trim_matches(|c| c == '{' || c == '}')
                .split(',')
                .any(|port| port.trim() == "53"),
            None => false,
        }
    })
}

/// Whether a rule restricts ports at all.
fn has_port_match(words: &[&str]) -> bool {
    words.iter().any(|w| is_port_keyword(w))
}

/// The words of a rule outside its comments (`-m comment --comment "..."`,
/// nft `comment "..."`): a Service named "queue" must not count.
fn rule_words(line: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for (i, part) in line.split('"').enumerate() {
        if i % 2 == 0 {
            words.extend(part.split_whitespace());
        }
    }
    words
}

impl RuleFindings {
    /// Reads an `iptables-save` / `ip6tables-save` listing.
    pub fn iptables(&mut self, text: &str) {
        if text.lines().take_while(|l| l.starts_with('#')).any(|l| l.contains("(nf_tables)")) {
            self.iptables_nft = true;
        }
        for line in text.lines().filter(|l| l.starts_with("-A ")) {
            let words = rule_words(line);
            let target = words.windows(2).find(|w| w[0] == "-j").map(|w| w[1]);
            let notrack =
                target == Some("NOTRACK") || (target == Some("CT") && words.contains(&"--notrack"));
            self.classify(line, &words, notrack, target == Some("NFQUEUE"));
        }
    }

    /// Reads an `nft list ruleset` listing, leaving out the tables
    /// iptables-nft manages (their rules come through `iptables-save`):
    /// those named in a "managed by iptables-nft" warning (which nft prints
    /// before or after the table, depending on its version), and, when
    /// `iptables-save` is iptables-nft's, the xtables tables (`ip`/`ip6`
    /// `filter`, `nat`, `mangle`, `raw`, `security`).
    pub fn nft(&mut self, text: &str) {
        let managed: Vec<(String, String)> = text
            .split("# Warning: table ")
            .skip(1)
            .filter(|rest| rest.contains("iptables-nft"))
            .filter_map(|rest| {
                let mut words = rest.split_whitespace();
                Some((words.next()?.to_string(), words.next()?.to_string()))
            })
            .collect();
        let mut skip_table = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if let Some(rest) = trimmed.strip_prefix("table ") {
                let mut words = rest.split_whitespace();
                let (family, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let xtables = matches!(family, "ip" | "ip6")
                    && matches!(name, "filter" | "nat" | "mangle" | "raw" | "security");
                skip_table = (self.iptables_nft && xtables)
                    || managed.iter().any(|(f, n)| f == family && n == name);
                continue;
            }
            if skip_table || trimmed.starts_with('#') || trimmed.starts_with('}') {
                continue;
            }
            let words = rule_words(trimmed);
            let notrack = words.contains(&"notrack");
            let queue = words.contains(&"queue");
            self.classify(trimmed, &words, notrack, queue);
        }
    }

    fn classify(&mut self, line: &str, words: &[&str], notrack: bool, queue: bool) {
        let dns = names_port_53(words);
        if notrack && dns {
            self.notrack_dns.push(line.to_string());
        }
        if queue {
            if dns || !has_port_match(words) {
                self.nfqueue_dns.push(line.to_string());
            } else {
                self.nfqueue_other += 1;
            }
        }
    }
}

/// What the check saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DnsPath {
    /// The node-local DNS address looked for.
    pub node_local_dns: Option<IpAddr>,
    /// Interfaces holding that address.
    pub interfaces: Vec<String>,
    /// Sockets bound to it on port 53.
    pub listeners: Vec<Listener>,
    /// What the rules say.
    pub rules: RuleFindings,
    /// The running kernel.
    pub kernel: String,
}

fn quote(rules: &[String]) -> String {
    let mut text =
        rules.iter().take(QUOTED).map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ");
    if rules.len() > QUOTED {
        text.push_str(&format!(", and {} more", rules.len() - QUOTED));
    }
    text
}

/// The findings about the DNS path, explained for `kernel`.
pub fn analyze(path: &DnsPath, kernel: &Kernel) -> Vec<Finding> {
    let mut findings = Vec::new();
    let address = path.node_local_dns.map_or("-".to_string(), |a| a.to_string());
    let present = !path.listeners.is_empty();
    if present {
        let where_ = if path.interfaces.is_empty() {
            String::new()
        } else {
            format!(" (interface {})", path.interfaces.join(", "))
        };
        let listening: Vec<String> = path.listeners.iter().map(|l| l.protocol.clone()).collect();
        if path.rules.sources.is_empty() {
            findings.push(Finding::new(
                Severity::Info,
                FindingCode::NodeLocalDns,
                format!("Node-local DNS listens on {address}:53{where_}; whether DNS to it bypasses conntrack is not known (the rules were not read)"),
                format!("listening: {}; {UNREAD}", listening.join(", ")),
                "Look for raw-table NOTRACK rules for port 53 on the node (`iptables -t raw -S | grep NOTRACK`, `nft list ruleset | grep notrack`), or run ctdiag where the listing tools are installed",
            ));
        } else if path.rules.notrack_dns.is_empty() {
            findings.push(Finding::new(
                Severity::Info,
                FindingCode::NodeLocalDns,
                format!("Node-local DNS listens on {address}:53{where_}, but DNS to it is still tracked by conntrack (no NOTRACK rule for port 53)"),
                format!("listening: {}; no NOTRACK/`CT --notrack` rule for port 53 in the raw table", listening.join(", ")),
                "NodeLocal DNSCache normally adds raw-table NOTRACK rules for port 53 to and from its address (`iptables -t raw -S | grep NOTRACK`); without them its traffic still creates conntrack entries",
            ));
        } else {
            findings.push(Finding::new(
                Severity::Info,
                FindingCode::NodeLocalDns,
                format!("Node-local DNS listens on {address}:53{where_} and DNS to it bypasses conntrack: pods that use it are not exposed to the DNAT race or to stale entries"),
                format!("listening: {}; NOTRACK rules: {}", listening.join(", "), quote(&path.rules.notrack_dns)),
                "Nothing to do for pods that use it (nameserver {address}); pods whose resolv.conf names the kube-dns ClusterIP still go through DNAT",
            ));
        }
    }
    if !path.rules.nfqueue_dns.is_empty() {
        let old = kernel.older_than(6, 12);
        findings.push(Finding::new(
            if old { Severity::Warning } else { Severity::Info },
            FindingCode::NfqueueOnDnsPath,
            if old {
                format!("{} NFQUEUE rule(s) can see DNS packets: on this kernel ({}) a queued packet's conntrack entry is not clash-resolved, so the parallel A/AAAA race drops again", path.rules.nfqueue_dns.len(), kernel.release)
            } else {
                format!("{} NFQUEUE rule(s) can see DNS packets; this kernel ({}) resolves clashes of queued packets too (since 6.12)", path.rules.nfqueue_dns.len(), kernel.release)
            },
            quote(&path.rules.nfqueue_dns),
            if old {
                "Keep port 53 out of the queue (match it before the NFQUEUE rule and ACCEPT), use `options single-request-reopen` (glibc) or NodeLocal DNSCache, or run a kernel >= 6.12"
            } else {
                "Nothing to fix on this kernel; a node with an older kernel and the same rules would drop raced DNS packets"
            },
        ));
    }
    findings
}

/// Reads one listing in the namespace; `None` and a note when it could not.
fn listing(program: &str, args: &[&str], notes: &mut Vec<String>) -> Option<String> {
    match run_bounded(program, args, None, crate::process::listing_deadline()) {
        Ok(ran) if ran.status.success() => Some(ran.stdout_text()),
        Ok(ran) => {
            notes.push(format!("`{program} {}` failed: {}", args.join(" "), ran.stderr_text()));
            None
        }
        Err(RunError::NotFound { .. }) => None,
        Err(e) => {
            notes.push(e.to_string());
            None
        }
    }
}

/// Looks at the node's sockets, addresses and rules.
fn observe(address: IpAddr) -> DnsPath {
    let mut path = DnsPath { node_local_dns: Some(address), ..DnsPath::default() };
    let proc_net = crate::netns::proc_net_dir();
    for protocol in ["udp", "tcp", "udp6", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc_net.join(protocol)) {
            path.listeners.extend(listeners(&text, protocol, address, DNS_PORT));
        }
    }
    if let Ok(addresses) = nix::ifaddrs::getifaddrs() {
        for interface in addresses {
            let ip = interface.address.as_ref().and_then(|a| {
                a.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            });
            if ip == Some(address) && !path.interfaces.contains(&interface.interface_name) {
                path.interfaces.push(interface.interface_name);
            }
        }
    }
    let mut notes = Vec::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        if let Some(text) = listing(tool, &[], &mut notes) {
            path.rules.iptables(&text);
            path.rules.sources.push(tool.to_string());
        }
    }
    if let Some(text) = listing("nft", &["list", "ruleset"], &mut notes) {
        path.rules.nft(&text);
        path.rules.sources.push("nft list ruleset".to_string());
    }
    path.rules.notes = notes;
    path
}

/// Why the rules were not read, when no listing tool is installed.
const UNREAD: &str = "rules not read: none of iptables-save, ip6tables-save, nft is installed";

/// Whether the rules can only add info findings on `kernel`: from 6.12 a
/// queued packet's clash is resolved, so an NFQUEUE rule DNS meets is info,
/// and NOTRACK only changes the wording of the info about node-local DNS.
/// Then a node without the listing tools (the `FROM scratch` image of
/// deploy/Containerfile) still gets a verdict; on older or unparsable
/// kernels the check stays unknown.
fn rules_only_inform(kernel: &Kernel) -> bool {
    kernel.version.is_some() && !kernel.older_than(6, 12)
}

/// Node-local DNS, NOTRACK and NFQUEUE in the node's namespace.
pub(super) fn check(ctx: &CheckContext) -> Result<CheckResult> {
    let netns = ctx.config.netns.as_deref().map(Netns::open).transpose()?;
    let address = ctx.config.node_local_dns;
    let mut path = crate::netns::run_in(netns.as_ref(), move || observe(address))?;
    let kernel = Kernel::running();
    path.kernel = kernel.release.clone();
    let rules_read = !path.rules.sources.is_empty();
    // Nothing installed (no notes: no tool ran and failed) and a kernel
    // where the rules could only add info: a verdict without them.
    let can_go_without = path.rules.notes.is_empty() && rules_only_inform(&kernel);
    if !rules_read && !can_go_without {
        return Err(crate::Error::Runtime(format!(
            "no rules could be read (iptables-save, ip6tables-save, nft list ruleset){}",
            if path.rules.notes.is_empty() {
                format!(": none is installed, and on this kernel ({}) an NFQUEUE rule DNS meets is a warning", kernel.release)
            } else {
                format!(": {}", path.rules.notes.join("; "))
            }
        )));
    }
    let findings = analyze(&path, &kernel);
    let evidence = format!(
        "node-local DNS on {address}:53: {}; NOTRACK for port 53: {}; NFQUEUE rules DNS can meet: {}{} ({})",
        if path.listeners.is_empty() {
            if path.interfaces.is_empty() {
                "not present".to_string()
            } else {
                format!("address on {} but nothing listens", path.interfaces.join(", "))
            }
        } else {
            format!("listening ({})", path.listeners.iter().map(|l| l.protocol.as_str()).collect::<Vec<_>>().join(", "))
        },
        if rules_read { path.rules.notrack_dns.len().to_string() } else { "not read".into() },
        if rules_read { path.rules.nfqueue_dns.len().to_string() } else { "not read".into() },
        if path.rules.nfqueue_other > 0 {
            format!(" (and {} for other ports)", path.rules.nfqueue_other)
        } else {
            String::new()
        },
        if rules_read {
            format!("read: {}", path.rules.sources.join(", "))
        } else {
            format!("{UNREAD}; on this kernel ({}) they could only add information: queued packets' clashes are resolved since 6.12", kernel.release)
        },
    );
    Ok(CheckResult { evidence, remedy: None, findings, data: json!(path), status: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  1: 0A14FEA9:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0\n\
  2: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0\n\
  3: 0A14FEA9:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0\n\
garbage\n";

    #[test]
    fn listeners_on_the_node_local_address() {
        let address: IpAddr = "169.254.20.10".parse().unwrap();
        assert_eq!(
            listeners(UDP, "udp", address, 53),
            [Listener { protocol: "udp".into(), address }]
        );
        // TCP counts only in LISTEN (0A); 01 is an established connection.
        let tcp = "hdr\n 0: 0A14FEA9:0035 00000000:0000 0A 0 0 0 0 0\n 1: 0A14FEA9:0035 0B14FEA9:C350 01 0\n";
        assert_eq!(listeners(tcp, "tcp", address, 53).len(), 1);
        let v6 = "hdr\n 0: B80D0120000000000000000000000100:0035 00000000000000000000000000000000:0000 07 0\n";
        let six: IpAddr = "2001:db8::1:0".parse().unwrap();
        assert_eq!(proc_net_address("B80D0120000000000000000000000100"), Some(six));
        assert_eq!(listeners(v6, "udp6", six, 53).len(), 1);
        assert_eq!(proc_net_address("zz"), None);
    }

    #[test]
    fn notrack_and_nfqueue_rules_in_iptables_and_nft_listings() {
        let mut rules = RuleFindings::default();
        rules.iptables(
            "*raw\n:PREROUTING ACCEPT [0:0]\n\
-A PREROUTING -d 169.254.20.10/32 -p udp -m udp --dport 53 -j NOTRACK\n\
-A OUTPUT -s 169.254.20.10/32 -p tcp -m tcp --sport 53 -j CT --notrack\n\
-A PREROUTING -p tcp -m tcp --dport 8080 -j NOTRACK\n\
COMMIT\n*mangle\n\
-A FORWARD -m comment --comment \"queue everything\" -j NFQUEUE --queue-num 100 --queue-bypass\n\
-A FORWARD -p tcp -m tcp --dport 443 -j NFQUEUE --queue-num 101\n\
-A FORWARD -p udp -m multiport --dports 5353,53 -j NFQUEUE --queue-num 102\n\
-A KUBE-SVC -m comment --comment \"default/queue:dns\" -j KUBE-SEP-X\nCOMMIT\n",
        );
        assert_eq!(rules.notrack_dns.len(), 2, "{rules:?}");
        assert_eq!(rules.nfqueue_dns.len(), 2, "{rules:?}");
        assert_eq!(rules.nfqueue_other, 1);
        let mut nft = RuleFindings::default();
        // iptables-nft's own tables come through iptables-save only.
        nft.iptables("# Generated by iptables-save v1.8.9 (nf_tables) on Mon\n*raw\nCOMMIT\n");
        assert!(nft.iptables_nft);
        nft.nft("table ip raw {\n\tchain PREROUTING {\n\t\tudp dport 53 counter notrack\n\t}\n}# Warning: table ip raw is managed by iptables-nft, do not touch!\n");
        assert!(nft.notrack_dns.is_empty(), "{nft:?}");
        let mut nft = RuleFindings::default();
        nft.nft(
            "# Warning: table ip raw is managed by iptables-nft, do not touch!\ntable ip raw {\n\tchain PREROUTING {\n\t\tudp dport 53 counter notrack\n\t}\n}\n\
table inet netpol {\n\tchain postrouting {\n\t\ttype filter hook postrouting priority srcnat - 5; policy accept;\n\t\tip daddr @podips-v4 queue flags bypass to 100 comment \"policy\"\n\t\tudp dport { 53, 5353 } notrack\n\t}\n}\n",
        );
        assert_eq!(nft.nfqueue_dns.len(), 1, "{nft:?}");
        assert_eq!(nft.notrack_dns.len(), 1, "{nft:?}");
    }

    #[test]
    fn findings_for_old_and_new_kernels() {
        let address: IpAddr = "169.254.20.10".parse().unwrap();
        let mut path = DnsPath {
            node_local_dns: Some(address),
            interfaces: vec!["nodelocaldns".into()],
            listeners: vec![Listener { protocol: "udp".into(), address }],
            ..DnsPath::default()
        };
        path.rules.sources.push("iptables-save".into());
        let tracked = analyze(&path, &Kernel::from_release("6.18.0"));
        assert_eq!(tracked.len(), 1);
        assert!(tracked[0].summary.contains("still tracked"), "{tracked:?}");
        path.rules.notrack_dns.push("-A PREROUTING -p udp --dport 53 -j NOTRACK".into());
        path.rules.nfqueue_dns.push("-A FORWARD -j NFQUEUE --queue-num 1".into());
        let old = analyze(&path, &Kernel::from_release("5.15.0"));
        let queue = old.iter().find(|f| f.code == FindingCode::NfqueueOnDnsPath).unwrap();
        assert_eq!(queue.severity, Severity::Warning);
        let new = analyze(&path, &Kernel::from_release("6.12.1"));
        let queue = new.iter().find(|f| f.code == FindingCode::NfqueueOnDnsPath).unwrap();
        assert_eq!(queue.severity, Severity::Info);
        let bypass = new.iter().find(|f| f.code == FindingCode::NodeLocalDns).unwrap();
        assert!(bypass.summary.contains("bypasses conntrack"), "{bypass:?}");
        assert!(analyze(&DnsPath::default(), &Kernel::from_release("6.18.0")).is_empty());
    }

    #[test]
    fn without_the_listing_tools_only_kernels_that_resolve_queued_clashes_get_a_verdict() {
        assert!(rules_only_inform(&Kernel::from_release("6.12.0")));
        assert!(rules_only_inform(&Kernel::from_release("6.18.44-fc-v669")));
        assert!(!rules_only_inform(&Kernel::from_release("6.11.9")));
        assert!(!rules_only_inform(&Kernel::from_release("5.15.0-91-generic")));
        assert!(!rules_only_inform(&Kernel::from_release("unknown")));
        // Node-local DNS seen, rules not read: no claim about NOTRACK.
        let address: IpAddr = "169.254.20.10".parse().unwrap();
        let path = DnsPath {
            node_local_dns: Some(address),
            listeners: vec![Listener { protocol: "udp".into(), address }],
            ..DnsPath::default()
        };
        let findings = analyze(&path, &Kernel::from_release("6.18.0"));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].code, FindingCode::NodeLocalDns);
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(findings[0].summary.contains("not known"), "{findings:?}");
        assert!(!findings[0].summary.contains("still tracked"), "{findings:?}");
    }
}
