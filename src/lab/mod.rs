//! The lab: a Kubernetes-node lookalike made of network namespaces, none of
//! them connected to the root namespace.
//!
//! - `PREFIX-node`: forwarding on, kube-proxy iptables-mode rules for
//!   `kube-system/kube-dns` (ClusterIP 198.19.0.10, port 53 UDP and TCP);
//!   node side of every veth at `198.18.K.1/24` (and `2001:db8:K::1/64`).
//! - `PREFIX-client`: a pod at 198.18.1.2 with a pod-like resolv.conf in
//!   `/etc/netns/PREFIX-client/resolv.conf` (used by `ip netns exec`).
//! - `PREFIX-dnsN`: CoreDNS endpoint N at `198.18.(N+1).2`, running the
//!   embedded responder ([`responder`]) or dnsmasq.
//! - `PREFIX-router`: the node's default gateway at `198.18.254.1`
//!   (`2001:db8:fe::1`), an upstream router that silently drops whatever
//!   the node routes to it (forwarding off, a blackhole default route).
//!   Why it exists: on a real node a packet to a ClusterIP that no rule
//!   translates is routed to the default gateway, and conntrack confirms
//!   its entry on the way out; a node without a default route would drop
//!   it before confirmation and leave no entry at all.
//!
//! State (what was built, server PIDs, logs) lives in
//! `/run/ctdiag/lab/PREFIX/`. Core functions return data and never print.
//!
//! Where things are: this file has the lab's constants, kinds and config,
//! and builds (`up`) and removes (`down`) the lab; `topology.rs` the
//! namespaces, veths and addresses; `kube_dns.rs` kube-proxy's rules for
//! the Service on the node; `servers.rs` the endpoints' DNS servers;
//! `state.rs` the lab's description and its state file; `scenarios.rs` one
//! function per scenario; `sticky.rs` placing sticky clients (`client.rs`
//! is the client process itself); `rules.rs` the rule text,
//! `responder.rs` the embedded DNS server, `system.rs` processes and
//! tools; `run.rs` is `lab run`, `fill.rs` is `lab fill`.

pub mod client;
pub mod fill;
mod kube_dns;
pub mod responder;
pub mod rules;
pub mod run;
mod scenarios;
mod servers;
mod state;
mod sticky;
pub mod system;
mod topology;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use kube_dns::{endpoint_list, load_rules};
use responder::ResponderBehavior;
use servers::start_server;
use state::{first_client_id, load_state, save_state};
use topology::{connect, connect_router, existing_namespaces, set_sysctl, write_resolv_conf};

pub use kube_dns::{kube_dns_rules, kube_dns_rules_for};
pub use scenarios::{apply_scenario, Scenario, RACE_TABLE};
pub use servers::dnsmasq_args;
pub use state::{
    state_dir, status, DnsServerInfo, EndpointState, LabInfo, LabNamespaces, ScenarioInfo,
};
pub use topology::{
    client_ip, client_ns, client_pod_name, dns_ns, endpoint_addr, endpoint_ip, endpoint_ip6,
    endpoint_number, node_ns, router_ns,
};

/// The kube-dns ClusterIP.
pub const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
/// The kube-dns IPv6 ClusterIP (also the AAAA record the lab's DNS servers
/// give for `kube-dns.kube-system.svc.cluster.local`).
pub const CLUSTER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xa);
/// The DNS port, on the ClusterIP and on every endpoint.
pub const DNS_PORT: u16 = 53;
/// The Service the rules are written for.
pub const SERVICE: &str = "kube-system/kube-dns";
/// kube-proxy's `--cluster-cidr` in the lab: pod traffic is not masqueraded.
pub const CLUSTER_CIDR: &str = "198.18.0.0/16";
/// The IPv6 `--cluster-cidr`: every pod address `2001:db8:K::2`.
pub const CLUSTER_CIDR6: &str = "2001:db8::/40";
/// Where lab state is kept, one directory per prefix.
pub const STATE_ROOT: &str = "/run/ctdiag/lab";
/// Longest accepted prefix: `PREFIX-client` and `PREFIX-dns32` stay short.
pub const MAX_PREFIX_LEN: usize = 20;
/// Most endpoints (198.18.2.2 .. 198.18.33.2).
pub const MAX_ENDPOINTS: u8 = 32;
/// The link number of the node's uplink to the router: 198.18.254.0/24
/// and 2001:db8:fe::/64.
pub const ROUTER_LINK: u8 = 254;
/// The router's address, the node's default gateway.
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, ROUTER_LINK, 1);
/// The node's address on the uplink.
pub const NODE_UPLINK_IP: Ipv4Addr = Ipv4Addr::new(198, 18, ROUTER_LINK, 2);
/// Environment variable naming the ctdiag binary to start as the responder
/// (default: the running executable).
pub const EXE_ENV: &str = "CTDIAG_EXE";

/// Which kube-proxy mode's rules implement the Service on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// iptables chains (`iptables-restore`).
    Iptables,
    /// The `ip kube-proxy` nftables table (`nft -f`).
    Nftables,
}

impl ProxyMode {
    /// The lowercase name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
        }
    }
}

/// Which address families the lab's kube-dns Service has (kube-proxy's
/// rules, the DNS servers' listeners, the pod's resolv.conf). Every link
/// carries both families' addresses either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 only (ClusterIP 198.19.0.10).
    #[default]
    Ipv4,
    /// IPv6 only (ClusterIP 2001:db8::a).
    Ipv6,
    /// Both, IPv4 first (as a dual-stack Service lists them).
    Dual,
}

impl IpFamily {
    /// kube-dns's ClusterIPs in this family set, IPv4 first.
    pub fn cluster_ips(self) -> Vec<IpAddr> {
        match self {
            IpFamily::Ipv4 => vec![IpAddr::V4(CLUSTER_IP)],
            IpFamily::Ipv6 => vec![IpAddr::V6(CLUSTER_IP6)],
            IpFamily::Dual => vec![IpAddr::V4(CLUSTER_IP), IpAddr::V6(CLUSTER_IP6)],
        }
    }

    /// The lowercase name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
            IpFamily::Dual => "dual",
        }
    }
}

/// Which DNS server runs in the endpoint namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsServerKind {
    /// ctdiag's embedded responder.
    Embedded,
    /// dnsmasq.
    Dnsmasq,
}

impl DnsServerKind {
    /// The lowercase name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsServerKind::Embedded => "embedded",
            DnsServerKind::Dnsmasq => "dnsmasq",
        }
    }
}

/// What `lab up` builds.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Namespace name prefix (validated by [`validate_prefix`]).
    pub prefix: String,
    /// Number of CoreDNS endpoints (1..=32).
    pub endpoints: u8,
    /// Which DNS server to run.
    pub dns: DnsServerKind,
    /// Delay and drops of the embedded responder (all endpoints).
    pub behavior: ResponderBehavior,
    /// iptables or nftables rules on the node.
    pub proxy_mode: ProxyMode,
    /// The kube-dns Service's address families.
    pub ip_family: IpFamily,
}

impl LabConfig {
    /// Checks every field; returns a usage error that says what to change.
    pub fn validate(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        if self.endpoints == 0 || self.endpoints > MAX_ENDPOINTS {
            return Err(Error::Usage(format!(
                "--endpoints {}: between 1 and {MAX_ENDPOINTS} endpoints are supported",
                self.endpoints
            )));
        }
        self.behavior.validate()?;
        if self.dns == DnsServerKind::Dnsmasq && self.behavior != ResponderBehavior::healthy() {
            return Err(Error::Usage(
                "--delay-ms, --drop-rate, --drop-aaaa-rate and --rcode need --dns embedded (dnsmasq cannot misbehave on purpose)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl ResponderBehavior {
    /// No delay, no drops.
    pub fn healthy() -> Self {
        ResponderBehavior {
            delay: Duration::ZERO,
            drop_rate: 0.0,
            drop_aaaa_rate: 0.0,
            rcode: None,
        }
    }
}

/// Checks a lab prefix: 1 to [`MAX_PREFIX_LEN`] characters from `a-z`, `0-9`
/// and `-`, starting with a letter or digit.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    let valid_chars =
        prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_start = prefix.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN || !valid_chars || !valid_start {
        return Err(Error::Usage(format!(
            "--prefix {prefix:?}: use 1 to {MAX_PREFIX_LEN} characters from a-z, 0-9 and '-', \
             starting with a letter or digit (namespace names are PREFIX-node, PREFIX-client, PREFIX-dnsN)"
        )));
    }
    Ok(())
}

/// What `lab down` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownReport {
    /// The prefix.
    pub prefix: String,
    /// Whether there was anything to remove.
    pub found: bool,
    /// Namespaces deleted.
    pub removed_namespaces: Vec<String>,
    /// Processes stopped (DNS servers and anything else in the namespaces).
    pub stopped_pids: Vec<u32>,
    /// Files and directories removed (/etc/netns entries, state dir).
    pub removed_paths: Vec<PathBuf>,
}

fn require_root() -> Result<()> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Privilege(
            "the lab creates network namespaces and firewall rules: run as root (sudo ctdiag lab ...)"
                .into(),
        ));
    }
    Ok(())
}

fn exe_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(EXE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    std::env::current_exe().map_err(|e| {
        Error::Runtime(format!(
            "cannot find the ctdiag binary to start the DNS responder ({e}); set {EXE_ENV}"
        ))
    })
}

/// Builds the lab. An existing lab with the same prefix is torn down first.
/// On failure, whatever was built is removed again.
pub fn up(config: &LabConfig) -> Result<LabInfo> {
    config.validate()?;
    require_root()?;
    system::require_tool("ip")?;
    system::require_tool("iptables-restore")?;
    if config.ip_family != IpFamily::Ipv4 && config.proxy_mode == ProxyMode::Iptables {
        system::require_tool("ip6tables-restore")?;
    }
    if config.proxy_mode == ProxyMode::Nftables {
        system::require_tool("nft")?;
    }
    if config.dns == DnsServerKind::Dnsmasq {
        system::require_tool("dnsmasq")?;
    }
    down(&config.prefix)?;
    match build(config) {
        Ok(info) => Ok(info),
        Err(e) => {
            // Best effort: the build error is what the user needs to see.
            let _ = down(&config.prefix);
            Err(e)
        }
    }
}

fn build(config: &LabConfig) -> Result<LabInfo> {
    let prefix = &config.prefix;
    let dir = state_dir(prefix);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    let node = node_ns(prefix);
    let client = client_ns(prefix);
    let router = router_ns(prefix);
    let dns: Vec<String> = (1..=config.endpoints).map(|n| dns_ns(prefix, n)).collect();

    for ns in [&node, &client, &router].into_iter().chain(dns.iter()) {
        system::ip(&["netns", "add", ns])?;
        system::ip(&["-n", ns, "link", "set", "lo", "up"])?;
        // Why no duplicate address detection: until a link-local address
        // has passed DAD (1 to 2 s) the kernel sends no neighbour
        // solicitation, so IPv6 right after `lab up` would go nowhere.
        // Devices take `default` when they appear in the namespace.
        set_sysctl(ns, "ipv6/conf/default/accept_dad", "0")?;
    }
    set_sysctl(&node, "ipv4/ip_forward", "1")?;
    set_sysctl(&node, "ipv6/conf/all/forwarding", "1")?;
    // Link 1 is the client, link N+1 endpoint N.
    connect(&node, "c0", &client, 1)?;
    for (i, ns) in dns.iter().enumerate() {
        let n = i as u8 + 1;
        connect(&node, &format!("d{n}"), ns, n + 1)?;
    }
    connect_router(&node, &router)?;

    let cluster_ips = config.ip_family.cluster_ips();
    let numbers: Vec<u8> = (1..=config.endpoints).collect();
    load_rules(&node, &cluster_ips, &numbers, config.proxy_mode, true)?;
    let resolv_conf = write_resolv_conf(&client, &cluster_ips)?;

    let mut servers = Vec::new();
    for (i, ns) in dns.iter().enumerate() {
        let n = i as u8 + 1;
        let log = dir.join(format!("dns{n}.log"));
        let addresses: Vec<String> = cluster_ips
            .iter()
            .map(|cip| SocketAddr::new(endpoint_addr(n, *cip), DNS_PORT).to_string())
            .collect();
        let mut server = DnsServerInfo {
            endpoint: n,
            namespace: ns.clone(),
            address: addresses[0].clone(),
            addresses,
            kind: config.dns,
            pid: None,
            alive: false,
            state: EndpointState::Running,
            delay_ms: config.behavior.delay.as_millis() as u64,
            drop_rate: config.behavior.drop_rate,
            drop_aaaa_rate: config.behavior.drop_aaaa_rate,
            rcode: config.behavior.rcode.map(|r| r.as_str().to_string()),
            log,
        };
        start_server(&mut server, &dir)?;
        servers.push(server);
    }
    let info = LabInfo {
        prefix: prefix.clone(),
        namespaces: LabNamespaces { node, client, router, dns },
        cluster_ip: cluster_ips[0],
        cluster_ips: cluster_ips.clone(),
        ip_family: config.ip_family,
        port: DNS_PORT,
        endpoints: endpoint_list(&cluster_ips, &numbers),
        dns_server: config.dns,
        resolv_conf,
        rules_mode: config.proxy_mode,
        state_dir: dir,
        servers,
        scenarios: Vec::new(),
        client_pod: client_pod_name(prefix),
        clients: Vec::new(),
        next_client_id: first_client_id(),
    };
    save_state(&info)?;
    Ok(info)
}

/// Tears the lab down: stops its DNS servers and anything else running in
/// its namespaces, deletes the namespaces, `/etc/netns/PREFIX-*` and the
/// state directory. A missing lab is not an error (`found` is false).
pub fn down(prefix: &str) -> Result<DownReport> {
    validate_prefix(prefix)?;
    require_root()?;
    let mut report = DownReport {
        prefix: prefix.to_string(),
        found: false,
        removed_namespaces: Vec::new(),
        stopped_pids: Vec::new(),
        removed_paths: Vec::new(),
    };
    // A broken state file must not keep the lab from being removed.
    if let Ok(Some(state)) = load_state(prefix) {
        for client in &state.clients {
            if system::alive_in_netns(client.pid, &state.namespaces.client)
                && system::stop(client.pid)
            {
                report.stopped_pids.push(client.pid);
            }
        }
        for server in &state.servers {
            if let Some(pid) = server.pid {
                if system::alive_in_netns(pid, &server.namespace) && system::stop(pid) {
                    report.stopped_pids.push(pid);
                }
            }
        }
    }
    for ns in existing_namespaces(prefix) {
        for pid in system::pids_in_netns(&ns) {
            if system::stop(pid) {
                report.stopped_pids.push(pid);
            }
        }
        system::ip(&["netns", "del", &ns])?;
        report.removed_namespaces.push(ns);
    }
    for ns in [client_ns(prefix), node_ns(prefix)] {
        let dir = Path::new("/etc/netns").join(&ns);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::Runtime(format!("cannot remove {}: {e}", dir.display())))?;
            report.removed_paths.push(dir);
        }
    }
    let dir = state_dir(prefix);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::Runtime(format!("cannot remove {}: {e}", dir.display())))?;
        report.removed_paths.push(dir);
    }
    report.found = !report.removed_namespaces.is_empty() || !report.removed_paths.is_empty();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_validation() {
        for good in ["ctdiag", "t1234-1", "a", "0lab", "abcdefghijklmnopqrst"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "Lab", "a_b", "a.b", "abcdefghijklmnopqrstu", "a b", "ä"] {
            assert!(matches!(validate_prefix(bad), Err(Error::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn config_validation() {
        let mut config = LabConfig {
            prefix: "x".into(),
            endpoints: 0,
            dns: DnsServerKind::Embedded,
            behavior: ResponderBehavior::healthy(),
            proxy_mode: ProxyMode::Iptables,
            ip_family: IpFamily::Ipv4,
        };
        assert!(config.validate().is_err());
        config.endpoints = 33;
        assert!(config.validate().is_err());
        config.endpoints = 32;
        assert!(config.validate().is_ok());
        config.dns = DnsServerKind::Dnsmasq;
        config.behavior.drop_rate = 0.5;
        assert!(config.validate().is_err());
    }
}
