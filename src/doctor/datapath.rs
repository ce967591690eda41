//! What carries Services on a node whose namespace has no kube-proxy
//! rules: Cilium's or Calico's eBPF load balancing (the ClusterIP is
//! translated before netfilter sees the packet, so there is no DNAT rule
//! and no DNAT conntrack entry to look at), IPVS mode without the `ip_vs`
//! module, or nothing at all (a kube-proxy that is broken or never synced).
//!
//! Only looked at: the node namespace's interfaces (`/proc/net/dev` of a
//! thread in that namespace: `/sys/class/net` would show the namespace
//! sysfs was mounted in), whether `/proc/net/ip_vs` exists there, and the
//! maps pinned under bpffs (one per mount namespace, not per network
//! namespace: the host's view).

use std::path::Path;

use serde::Serialize;

use crate::findings::{Finding, FindingCode, Severity};
use crate::netns::Netns;

/// Where tc programs (Cilium, Calico eBPF) pin their maps.
pub const BPF_GLOBALS: &str = "/sys/fs/bpf/tc/globals";
/// Interfaces Cilium creates in the host namespace (`cilium_host` and
/// `cilium_net` are a veth pair; `cilium_vxlan`/`cilium_geneve` with a tunnel).
const CILIUM_INTERFACES: [&str; 4] = ["cilium_host", "cilium_net", "cilium_vxlan", "cilium_geneve"];
/// Interfaces only Calico's eBPF dataplane creates (its iptables dataplane
/// has `cali*` pod interfaces too, so those are no sign).
const CALICO_EBPF_INTERFACES: [&str; 2] = ["bpfin.cali", "bpfout.cali"];
/// The dummy interface kube-proxy's IPVS mode binds ClusterIPs to.
const KUBE_IPVS_INTERFACE: &str = "kube-ipvs0";
/// Pinned maps named in a sign, per datapath.
const PINS_NAMED: usize = 3;

/// A Service datapath other than kube-proxy's netfilter rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Datapath {
    /// Cilium's eBPF kube-proxy replacement.
    Cilium,
    /// Calico's eBPF dataplane.
    CalicoEbpf,
    /// kube-proxy's IPVS mode, its `ip_vs` module not loaded.
    IpvsUnloaded,
}

impl Datapath {
    /// In words.
    pub fn words(self) -> &'static str {
        match self {
            Datapath::Cilium => "Cilium eBPF",
            Datapath::CalicoEbpf => "Calico eBPF",
            Datapath::IpvsUnloaded => "IPVS without ip_vs",
        }
    }

    /// Whether it load-balances Services without netfilter DNAT (so a node
    /// without kube-proxy rules is normal).
    pub fn is_ebpf(self) -> bool {
        matches!(self, Datapath::Cilium | Datapath::CalicoEbpf)
    }
}

/// One thing seen that points at a datapath.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sign {
    /// Which datapath.
    pub datapath: Datapath,
    /// What was seen: `interface cilium_host`, `pinned map cilium_lb4_services_v2`.
    pub seen: String,
}

/// A node namespace without kube-proxy rules, and what doctor saw there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeDatapath {
    /// Always false: this is only built when the rules are missing (a
    /// field, so that scripts need not infer it).
    pub kube_proxy_rules: bool,
    /// Where the rules were looked for (`this namespace`, or as typed).
    pub place: String,
    /// Signs of another datapath, in the order found.
    pub signs: Vec<Sign>,
    /// What could not be looked at, and the rule reader's remarks.
    pub notes: Vec<String>,
}

impl NodeDatapath {
    /// The eBPF datapaths seen, each once.
    fn ebpf(&self) -> Vec<Datapath> {
        let mut found: Vec<Datapath> =
            self.signs.iter().map(|s| s.datapath).filter(|d| d.is_ebpf()).collect();
        found.sort();
        found.dedup();
        found
    }

    /// Whether nothing says how Services work here: no eBPF datapath seen
    /// (kube-proxy may be broken; an unloaded `ip_vs` does not carry
    /// Services either).
    pub fn undecided(&self) -> bool {
        self.ebpf().is_empty()
    }

    /// What was seen, for evidence: `interface cilium_host, pinned map ...`.
    fn seen(&self, datapath: Datapath) -> String {
        let seen: Vec<&str> =
            self.signs.iter().filter(|s| s.datapath == datapath).map(|s| s.seen.as_str()).collect();
        seen.join(", ")
    }

    /// A few words for the verdict line: `Cilium eBPF datapath, no
    /// kube-proxy rules`.
    pub fn short(&self) -> String {
        let ebpf = self.ebpf();
        if ebpf.is_empty() {
            return "no kube-proxy rules".into();
        }
        let names: Vec<&str> = ebpf.iter().map(|d| d.words()).collect();
        format!("{} datapath, no kube-proxy rules", names.join(" + "))
    }

    /// The reason in one clause, for the checks that do not apply:
    /// `Cilium eBPF (interface cilium_host) carries Services, no kube-proxy
    /// rules in NODE`.
    pub fn cause(&self) -> String {
        let ebpf = self.ebpf();
        if ebpf.is_empty() {
            return format!(
                "no kube-proxy Service rules in {} (the kube-dns check says more)",
                self.place
            );
        }
        let seen: Vec<String> =
            ebpf.iter().map(|d| format!("{} ({})", d.words(), self.seen(*d))).collect();
        format!("{} carries Services, no kube-proxy rules in {}", seen.join(" and "), self.place)
    }

    /// The reason, in a sentence, with what was seen.
    pub fn reason(&self) -> String {
        let ebpf = self.ebpf();
        if !ebpf.is_empty() {
            let seen: Vec<String> =
                ebpf.iter().map(|d| format!("{} ({})", d.words(), self.seen(*d))).collect();
            return format!(
                "no kube-proxy Service rules in {}: Services are load-balanced by eBPF, not netfilter DNAT: {}",
                self.place,
                seen.join("; ")
            );
        }
        let ipvs = self.seen(Datapath::IpvsUnloaded);
        if !ipvs.is_empty() {
            return format!(
                "kube-proxy may be broken: no Service rules in {} and IPVS mode's {ipvs}",
                self.place
            );
        }
        format!(
            "kube-proxy may be broken or never synced: no Service rules in {} (iptables, nftables, IPVS) and no sign of another Service datapath (no cilium_*, bpfin.cali interface, no Cilium or Calico map pinned in {BPF_GLOBALS})",
            self.place
        )
    }

    /// What to do about it.
    pub fn remedy(&self) -> String {
        if !self.undecided() {
            return "Look at Services with the datapath's own tools (`cilium-dbg service list`, `calico-node -bpf nat dump`); `ctdiag compare --api FILE` or `--kubectl` probes the ClusterIP and endpoints from the API".into();
        }
        if !self.seen(Datapath::IpvsUnloaded).is_empty() {
            return "Load ip_vs (`modprobe ip_vs ip_vs_rr`, and at boot) and restart kube-proxy, or run it in iptables or nftables mode; its logs say which it tried".into();
        }
        "Check kube-proxy on this node: is it running, what its logs say (`kubectl -n kube-system logs` of its pod), its sync_proxy_rules metrics; run doctor in the node's namespace (--netns) if this is a pod's".into()
    }

    /// The finding that says what doctor found.
    pub fn finding(&self) -> Finding {
        let summary = if self.undecided() {
            "No kube-proxy Service rules and no other Service datapath seen".to_string()
        } else {
            format!("No kube-proxy Service rules: {}", self.short())
        };
        let mut evidence = self.reason();
        if !self.notes.is_empty() {
            evidence.push_str(&format!(" ({})", self.notes.join("; ")));
        }
        Finding::new(
            Severity::Info,
            FindingCode::NoKubeProxyRules,
            summary,
            evidence,
            self.remedy(),
        )
    }
}

/// Interface names in a `/proc/net/dev` listing (two header lines, then
/// `name: counters`).
pub fn interfaces(proc_net_dev: &str) -> Vec<String> {
    proc_net_dev
        .lines()
        .skip(2)
        .filter_map(|line| line.rsplit_once(':').map(|(name, _)| name.trim().to_string()))
        .filter(|name| !name.is_empty())
        .collect()
}

/// The signs among a namespace's `interfaces`, whether it has
/// `/proc/net/ip_vs`, and the names pinned in [`BPF_GLOBALS`]; sorted by
/// name within interfaces and within maps.
pub fn signs(interfaces: &[String], ip_vs_loaded: bool, pinned: &[String]) -> Vec<Sign> {
    let sign = |datapath, seen: String| Sign { datapath, seen };
    let mut found = Vec::new();
    let mut interfaces: Vec<&String> = interfaces.iter().collect();
    interfaces.sort();
    for name in interfaces {
        if CILIUM_INTERFACES.contains(&name.as_str()) {
            found.push(sign(Datapath::Cilium, format!("interface {name}")));
        } else if CALICO_EBPF_INTERFACES.contains(&name.as_str()) {
            found.push(sign(Datapath::CalicoEbpf, format!("interface {name}")));
        } else if name == KUBE_IPVS_INTERFACE && !ip_vs_loaded {
            found.push(sign(
                Datapath::IpvsUnloaded,
                format!("interface {name} without ip_vs (no /proc/net/ip_vs)"),
            ));
        }
    }
    let mut pinned: Vec<&String> = pinned.iter().collect();
    pinned.sort();
    for (datapath, prefix) in [(Datapath::Cilium, "cilium_"), (Datapath::CalicoEbpf, "cali_")] {
        let maps: Vec<&&String> = pinned.iter().filter(|n| n.starts_with(prefix)).collect();
        for name in maps.iter().take(PINS_NAMED) {
            found.push(sign(datapath, format!("pinned map {name}")));
        }
        if maps.len() > PINS_NAMED {
            found.push(sign(datapath, format!("{} more {prefix}* maps", maps.len() - PINS_NAMED)));
        }
    }
    found
}

/// Names in `dir` (empty when it does not exist or cannot be read).
fn pinned(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default()
}

/// Looks at the node namespace `netns` (the current one when `None`) and
/// the maps pinned in `bpf_globals`. What cannot be read is a note, never
/// an error: the rules are known to be missing either way.
pub fn observe(
    netns: Option<&Netns>,
    place: String,
    notes: Vec<String>,
    bpf_globals: &Path,
) -> NodeDatapath {
    let mut notes = notes;
    let looked = crate::netns::run_in(netns, || {
        let dir = crate::netns::proc_net_dir();
        let dev = std::fs::read_to_string(dir.join("dev"));
        (dev, dir.join("ip_vs").exists())
    });
    let (names, ip_vs) = match looked {
        Ok((Ok(dev), ip_vs)) => (interfaces(&dev), ip_vs),
        Ok((Err(e), ip_vs)) => {
            notes.push(format!("interfaces not listed: /proc/net/dev: {e}"));
            (Vec::new(), ip_vs)
        }
        Err(e) => {
            notes.push(format!("interfaces not listed: {e}"));
            (Vec::new(), false)
        }
    };
    let signs = signs(&names, ip_vs, &pinned(bpf_globals));
    NodeDatapath { kube_proxy_rules: false, place, signs, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn interfaces_from_proc_net_dev() {
        // As Linux 6.x prints it (header shortened to its two lines).
        let text = "Inter-|   Receive                |  Transmit\n face |bytes    packets errs|bytes\n    lo:       0       0    0        0\ncilium_host: 1234 5 0 0\n  eth0: 1 2 3 4\n";
        assert_eq!(interfaces(text), names(&["lo", "cilium_host", "eth0"]));
        assert!(interfaces("").is_empty());
    }

    #[test]
    fn signs_of_each_datapath() {
        let kinds = |s: &[Sign]| s.iter().map(|s| s.datapath).collect::<Vec<_>>();
        // Interfaces, whether ip_vs is loaded, pinned maps; what they say.
        type Case = (&'static [&'static str], bool, &'static [&'static str], Vec<Datapath>);
        let cases: [Case; 7] = [
            (&["lo", "eth0"], false, &[], vec![]),
            (&["lo", "cilium_host", "cilium_net"], false, &[], vec![Datapath::Cilium; 2]),
            (&["lo"], false, &["cilium_lb4_services_v2"], vec![Datapath::Cilium]),
            (&["bpfin.cali", "cali1234"], false, &[], vec![Datapath::CalicoEbpf]),
            (&["lo"], false, &["cali_v4_nat_fe3"], vec![Datapath::CalicoEbpf]),
            (&["kube-ipvs0"], false, &[], vec![Datapath::IpvsUnloaded]),
            // IPVS loaded: the rules reader would have read it; no sign.
            (&["kube-ipvs0"], true, &["other_map"], vec![]),
        ];
        for (ifaces, ip_vs, pins, expected) in cases {
            let found = signs(&names(ifaces), ip_vs, &names(pins));
            assert_eq!(kinds(&found), expected, "{ifaces:?} {ip_vs} {pins:?}");
        }
        let many: Vec<String> = (0..5).map(|i| format!("cilium_map{i}")).collect();
        let found = signs(&[], false, &many);
        assert_eq!(found.len(), PINS_NAMED + 1);
        assert_eq!(found[PINS_NAMED].seen, "2 more cilium_* maps");
    }

    fn node(signs: Vec<Sign>) -> NodeDatapath {
        NodeDatapath { kube_proxy_rules: false, place: "node".into(), signs, notes: vec![] }
    }

    #[test]
    fn reasons_and_whether_the_verdict_is_decided() {
        let none = node(vec![]);
        assert!(none.undecided());
        assert!(none.reason().starts_with("kube-proxy may be broken or never synced"));
        assert!(none.cause().starts_with("no kube-proxy Service rules in node"));
        assert_eq!(none.short(), "no kube-proxy rules");
        let ipvs = node(signs(&names(&["kube-ipvs0"]), false, &[]));
        assert!(ipvs.undecided());
        assert!(ipvs.reason().contains("without ip_vs"), "{}", ipvs.reason());
        assert!(ipvs.remedy().contains("modprobe ip_vs"));
        let cilium = node(signs(&names(&["cilium_host", "kube-ipvs0"]), false, &[]));
        assert!(!cilium.undecided());
        assert_eq!(cilium.short(), "Cilium eBPF datapath, no kube-proxy rules");
        assert!(
            cilium.reason().contains("Cilium eBPF (interface cilium_host)"),
            "{}",
            cilium.reason()
        );
        assert_eq!(
            cilium.cause(),
            "Cilium eBPF (interface cilium_host) carries Services, no kube-proxy rules in node"
        );
        for (datapath, undecided) in [(none, true), (cilium, false)] {
            let finding = datapath.finding();
            assert_eq!(
                (finding.code, finding.severity),
                (FindingCode::NoKubeProxyRules, Severity::Info)
            );
            assert_eq!(finding.summary.contains("no other"), undecided, "{finding:?}");
        }
    }

    #[test]
    fn pinned_maps_are_read_from_the_directory_given() {
        let dir = std::env::temp_dir().join(format!("ctdiag-pins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cilium_lb4_services_v2"), "").unwrap();
        let seen = observe(None, "here".into(), vec![], &dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(seen.signs.iter().any(|s| s.seen == "pinned map cilium_lb4_services_v2"));
        assert!(!seen.undecided());
        let missing = observe(None, "here".into(), vec![], &dir);
        assert!(missing.signs.iter().all(|s| !s.seen.starts_with("pinned")));
    }
}
