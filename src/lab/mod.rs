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

pub mod client;
pub mod fill;
pub mod responder;
pub mod rules;
pub mod run;
pub mod system;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use client::StickyClient;
use responder::ResponderBehavior;

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
/// How long a DNS server gets to start listening.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(5);

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
                "--delay-ms, --drop-rate and --drop-aaaa-rate need --dns embedded (dnsmasq cannot misbehave on purpose)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl ResponderBehavior {
    /// No delay, no drops.
    pub fn healthy() -> Self {
        ResponderBehavior { delay: Duration::ZERO, drop_rate: 0.0, drop_aaaa_rate: 0.0 }
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

/// The lab's namespace names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabNamespaces {
    /// The node (kube-proxy rules, conntrack).
    pub node: String,
    /// The client pod.
    pub client: String,
    /// The node's default gateway, which drops what it is sent.
    pub router: String,
    /// The endpoint namespaces, endpoint 1 first (a removed endpoint's
    /// namespace stays listed; see `servers[].state`).
    pub dns: Vec<String>,
}

/// Whether an endpoint's pod still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointState {
    /// Namespace and DNS server are there.
    Running,
    /// Namespace and server removed by a scenario; the address is blackholed.
    Removed,
}

/// One endpoint's DNS server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsServerInfo {
    /// Endpoint number, 1-based.
    pub endpoint: u8,
    /// Its namespace.
    pub namespace: String,
    /// Address it answers on (its first family's).
    pub address: String,
    /// Every address it answers on, one per family of the lab.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// embedded or dnsmasq.
    pub kind: DnsServerKind,
    /// PID of the server process (none once removed).
    pub pid: Option<u32>,
    /// Whether the process is alive in its namespace (checked when reported).
    pub alive: bool,
    /// running or removed.
    pub state: EndpointState,
    /// Answer delay in milliseconds (embedded only).
    pub delay_ms: u64,
    /// Share of all queries dropped (embedded only).
    pub drop_rate: f64,
    /// Share of AAAA queries dropped (embedded only).
    pub drop_aaaa_rate: f64,
    /// The server's stdout/stderr.
    pub log: PathBuf,
}

/// A scenario applied to the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// dead-endpoint, slow-endpoint, lossy, stale-endpoint, never-translated.
    pub name: String,
    /// The endpoint it acted on (none: every endpoint).
    pub endpoint: Option<u8>,
    /// What it did and what to expect, in words.
    pub summary: String,
}

/// What a lab consists of: `lab up` and `lab status` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabInfo {
    /// The namespace name prefix.
    pub prefix: String,
    /// Namespace names.
    pub namespaces: LabNamespaces,
    /// The kube-dns ClusterIP of the lab's first family (IPv4 unless the
    /// lab is IPv6 only).
    pub cluster_ip: IpAddr,
    /// Every ClusterIP of kube-dns, IPv4 first.
    #[serde(default)]
    pub cluster_ips: Vec<IpAddr>,
    /// The Service's address families.
    #[serde(default)]
    pub ip_family: IpFamily,
    /// The DNS port.
    pub port: u16,
    /// The endpoints in the kube-proxy rules, `ip:port`.
    pub endpoints: Vec<String>,
    /// The kind of DNS server in the endpoint namespaces.
    pub dns_server: DnsServerKind,
    /// The client pod's resolv.conf (bind-mounted by `ip netns exec`).
    pub resolv_conf: PathBuf,
    /// How the Service is implemented: kube-proxy's `iptables` or
    /// `nftables` mode.
    pub rules_mode: ProxyMode,
    /// Where PIDs, logs and this description are kept.
    pub state_dir: PathBuf,
    /// One DNS server per endpoint.
    pub servers: Vec<DnsServerInfo>,
    /// Scenarios applied since `lab up`, in order.
    pub scenarios: Vec<ScenarioInfo>,
    /// The client pod's name: the hostname of its sticky clients.
    #[serde(default)]
    pub client_pod: String,
    /// The sticky clients in the client pod (stale-endpoint,
    /// never-translated), oldest first.
    #[serde(default)]
    pub clients: Vec<StickyClient>,
    /// The id the next sticky client gets (ids are never reused, so each
    /// keeps its own source port and files).
    #[serde(default = "first_client_id")]
    pub next_client_id: u32,
}

fn first_client_id() -> u32 {
    1
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

/// The namespace name of the node.
pub fn node_ns(prefix: &str) -> String {
    format!("{prefix}-node")
}

/// The namespace name of the client pod.
pub fn client_ns(prefix: &str) -> String {
    format!("{prefix}-client")
}

/// The client pod's name, which its sticky clients have as hostname (in
/// Kubernetes a pod's hostname is its name).
pub fn client_pod_name(prefix: &str) -> String {
    format!("client-{prefix}")
}

/// The client pod's address in `family`.
pub fn client_ip(family: fill::Family) -> IpAddr {
    match family {
        fill::Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)),
        fill::Family::Ipv6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2)),
    }
}

/// The namespace name of the upstream router.
pub fn router_ns(prefix: &str) -> String {
    format!("{prefix}-router")
}

/// The namespace name of endpoint `n` (1-based).
pub fn dns_ns(prefix: &str, n: u8) -> String {
    format!("{prefix}-dns{n}")
}

/// The address of endpoint `n` (1-based): 198.18.(n+1).2.
pub fn endpoint_ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, n + 1, 2)
}

/// The IPv6 address of endpoint `n` (1-based): 2001:db8:(n+1)::2.
pub fn endpoint_ip6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, u16::from(n) + 1, 0, 0, 0, 0, 2)
}

/// Endpoint `n`'s address in the family of `like`.
pub fn endpoint_addr(n: u8, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(endpoint_ip(n)),
        IpAddr::V6(_) => IpAddr::V6(endpoint_ip6(n)),
    }
}

/// The endpoint number of an endpoint address (either family), if it is
/// one of the lab's.
pub fn endpoint_number(ip: IpAddr) -> Option<u8> {
    let link = match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            ((a, b, d) == (198, 18, 2)).then_some(u16::from(c))?
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[..2] == [0x2001, 0xdb8] && s[3..] == [0, 0, 0, 0, 2]).then_some(s[2])?
        }
    };
    let n = u8::try_from(link.checked_sub(1)?).ok()?;
    (1..=MAX_ENDPOINTS).contains(&n).then_some(n)
}

/// The lab's state directory.
pub fn state_dir(prefix: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(prefix)
}

fn state_file(prefix: &str) -> PathBuf {
    state_dir(prefix).join("state.json")
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

/// Namespaces in /run/netns that belong to the lab `prefix`.
fn existing_namespaces(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(crate::netns::NETNS_RUN_DIR) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
                return false;
            };
            rest == "node"
                || rest == "client"
                || rest == "router"
                || rest
                    .strip_prefix("dns")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    names.sort();
    names
}

fn load_state(prefix: &str) -> Result<Option<LabInfo>> {
    let path = state_file(prefix);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::Runtime(format!(
                "lab state {} is unreadable ({e}); `ctdiag lab down --prefix {prefix}` removes the lab",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::ReadFile { path, source }),
    }
}

/// Writes the lab's state file: [`LabInfo`] as pretty-printed JSON, read
/// back by [`load_state`]. The lab's own data, serialized here, not a
/// rendered report (every string in it is the lab's own: names from the
/// validated prefix, addresses, paths).
fn save_state(info: &LabInfo) -> Result<()> {
    let path = state_file(&info.prefix);
    let text = serde_json::to_string_pretty(info)
        .map_err(|e| Error::Runtime(format!("cannot serialize lab state: {e}")))?;
    // Write then rename, so a reader never sees half a file.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::Runtime(format!("cannot write lab state {}: {e}", path.display())))
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

/// Writes a sysctl under /proc/sys/net inside a namespace.
fn set_sysctl(netns: &str, key: &str, value: &str) -> Result<()> {
    let ns = crate::netns::Netns::open(netns)?;
    let path = PathBuf::from("/proc/sys/net").join(key);
    // Why from a thread inside the namespace: /proc/sys/net resolves to the
    // network namespace of the thread that opens the file.
    ns.run(|| std::fs::write(&path, value))?
        .map_err(|e| Error::Runtime(format!("cannot set {} in {netns}: {e}", path.display())))
}

/// A routed point-to-point veth between the node and `peer`: `dev` on the
/// node at 198.18.K.1/24 and 2001:db8:K::1/64, `eth0` in the peer at .2,
/// the peer's default routes via the node. Created inside the node
/// namespace, never in the root namespace.
fn connect(node: &str, dev: &str, peer: &str, k: u8) -> Result<()> {
    system::ip(&[
        "-n", node, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", peer,
    ])?;
    let v4_node = format!("198.18.{k}.1/24");
    let v4_peer = format!("198.18.{k}.2/24");
    let v4_gw = format!("198.18.{k}.1");
    let v6_node = format!("2001:db8:{k:x}::1/64");
    let v6_peer = format!("2001:db8:{k:x}::2/64");
    let v6_gw = format!("2001:db8:{k:x}::1");
    system::ip(&["-n", node, "addr", "add", &v4_node, "dev", dev])?;
    system::ip(&["-n", node, "-6", "addr", "add", &v6_node, "dev", dev, "nodad"])?;
    system::ip(&["-n", node, "link", "set", dev, "up"])?;
    system::ip(&["-n", peer, "addr", "add", &v4_peer, "dev", "eth0"])?;
    system::ip(&["-n", peer, "-6", "addr", "add", &v6_peer, "dev", "eth0", "nodad"])?;
    system::ip(&["-n", peer, "link", "set", "eth0", "up"])?;
    system::ip(&["-n", peer, "route", "add", "default", "via", &v4_gw])?;
    system::ip(&["-n", peer, "-6", "route", "add", "default", "via", &v6_gw])?;
    Ok(())
}

/// The node's uplink: `gw0` on the node at 198.18.254.2/24 and
/// 2001:db8:fe::2/64, `eth0` in the router at .1 / ::1, the node's default
/// routes via the router. The router does not forward (the default in a new
/// namespace, set explicitly) and its default routes are blackholes, so
/// whatever the node sends it disappears without an ICMP error, as on a
/// network that has no route back. Traffic the node itself sends to a
/// ClusterIP (hostNetwork probes) takes the default route to the nat OUTPUT
/// hook, which re-routes it after DNAT, as on a real node.
fn connect_router(node: &str, router: &str) -> Result<()> {
    let k = ROUTER_LINK;
    let (v4_node, v4_router) = (format!("{NODE_UPLINK_IP}/24"), format!("{ROUTER_IP}/24"));
    let (v6_node, v6_router) = (format!("2001:db8:{k:x}::2/64"), format!("2001:db8:{k:x}::1/64"));
    let v6_gw = format!("2001:db8:{k:x}::1");
    system::ip(&[
        "-n", node, "link", "add", "gw0", "type", "veth", "peer", "name", "eth0", "netns", router,
    ])?;
    system::ip(&["-n", node, "addr", "add", &v4_node, "dev", "gw0"])?;
    system::ip(&["-n", node, "-6", "addr", "add", &v6_node, "dev", "gw0", "nodad"])?;
    system::ip(&["-n", node, "link", "set", "gw0", "up"])?;
    system::ip(&["-n", router, "addr", "add", &v4_router, "dev", "eth0"])?;
    system::ip(&["-n", router, "-6", "addr", "add", &v6_router, "dev", "eth0", "nodad"])?;
    system::ip(&["-n", router, "link", "set", "eth0", "up"])?;
    set_sysctl(router, "ipv4/ip_forward", "0")?;
    set_sysctl(router, "ipv6/conf/all/forwarding", "0")?;
    system::ip(&["-n", router, "route", "add", "blackhole", "default"])?;
    system::ip(&["-n", router, "-6", "route", "add", "blackhole", "default"])?;
    system::ip(&["-n", node, "route", "add", "default", "via", &ROUTER_IP.to_string()])?;
    system::ip(&["-n", node, "-6", "route", "add", "default", "via", &v6_gw])?;
    Ok(())
}

/// The kube-proxy rules for the given IPv4 endpoints, kube-proxy's REJECT
/// included when there are none.
pub fn kube_dns_rules(endpoints: &[SocketAddrV4]) -> rules::ServiceRules {
    let endpoints: Vec<SocketAddr> = endpoints.iter().map(|e| SocketAddr::V4(*e)).collect();
    kube_dns_rules_for(IpAddr::V4(CLUSTER_IP), &endpoints, true)
}

/// kube-dns's rules in the family of `cluster_ip` for the given endpoints
/// (of that family); `reject`: kube-proxy's REJECT for a Service without
/// endpoints (missing while kube-proxy restarts).
pub fn kube_dns_rules_for(
    cluster_ip: IpAddr,
    endpoints: &[SocketAddr],
    reject: bool,
) -> rules::ServiceRules {
    rules::ServiceRules {
        service: SERVICE.into(),
        cluster_ip,
        ports: vec![
            ("dns".into(), "udp".into(), DNS_PORT),
            ("dns-tcp".into(), "tcp".into(), DNS_PORT),
        ],
        endpoints: endpoints.to_vec(),
        cluster_cidr: if cluster_ip.is_ipv6() { CLUSTER_CIDR6 } else { CLUSTER_CIDR }.into(),
        reject_without_endpoints: reject,
    }
}

/// Replaces the node's kube-dns rules in every family of `cluster_ips` in
/// one step per tool, as a kube-proxy sync does: iptables mode loads the
/// nat and filter tables with `iptables-restore` (IPv6: `ip6tables-restore`),
/// nftables mode the `ip`/`ip6 kube-proxy` tables in one `nft -f`
/// transaction. `endpoints` are endpoint numbers; `reject`: see
/// [`kube_dns_rules_for`]. Conntrack entries are left alone.
fn load_rules(
    node: &str,
    cluster_ips: &[IpAddr],
    endpoints: &[u8],
    mode: ProxyMode,
    reject: bool,
) -> Result<()> {
    let family_rules = cluster_ips.iter().map(|cip| {
        let eps: Vec<SocketAddr> =
            endpoints.iter().map(|n| SocketAddr::new(endpoint_addr(*n, *cip), DNS_PORT)).collect();
        kube_dns_rules_for(*cip, &eps, reject)
    });
    let mut loads: Vec<(&str, String)> = Vec::new();
    match mode {
        ProxyMode::Iptables => {
            for rules in family_rules {
                let tool = if rules.is_ipv6() { "ip6tables-restore" } else { "iptables-restore" };
                loads.push((tool, rules.iptables_restore_input()));
            }
        }
        ProxyMode::Nftables => {
            loads.push(("nft", family_rules.map(|r| r.nft_input()).collect::<String>()));
        }
    }
    for (tool, input) in loads {
        let mut args = vec!["netns", "exec", node, tool];
        if tool == "nft" {
            args.extend(["-f", "-"]);
        }
        system::run("ip", &args, Some(&input))?;
    }
    Ok(())
}

/// Writes the client pod's resolv.conf as the kubelet would for a pod in
/// the `default` namespace: one `nameserver` line per kube-dns ClusterIP
/// (a dual-stack cluster lists both, in the kubelet's `clusterDNS` order).
fn write_resolv_conf(client: &str, cluster_ips: &[IpAddr]) -> Result<PathBuf> {
    let dir = Path::new("/etc/netns").join(client);
    let path = dir.join("resolv.conf");
    let mut text =
        String::from("search default.svc.cluster.local svc.cluster.local cluster.local\n");
    for ip in cluster_ips {
        text.push_str(&format!("nameserver {ip}\n"));
    }
    text.push_str("options ndots:5\n");
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|e| Error::Runtime(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// The dnsmasq command line serving the lab's names on `listen`.
pub fn dnsmasq_args(listen: &[IpAddr], pid_file: &Path) -> Vec<String> {
    let mut args = vec![
        "--keep-in-foreground".to_string(),
        // Why: ignore /etc/dnsmasq.conf and /etc/hosts of the machine; the
        // lab's server must answer the same everywhere.
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--bind-interfaces".into(),
        format!(
            "--listen-address={}",
            listen.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(",")
        ),
        format!("--port={DNS_PORT}"),
        // Why root: Debian's dnsmasq-base alone has no dnsmasq user to drop to.
        "--user=root".into(),
        "--group=root".into(),
        format!("--pid-file={}", pid_file.display()),
        "--log-facility=-".into(),
        format!("--local=/{}/", responder::LAB_ZONE),
    ];
    for (name, v4, v6) in responder::LAB_RECORDS {
        args.push(format!("--address=/{name}/{v4}"));
        if let Some(v6) = v6 {
            args.push(format!("--address=/{name}/{v6}"));
        }
    }
    args
}

/// Starts the endpoint's DNS server and waits until it listens on every
/// address of the lab's families.
fn start_server(server: &mut DnsServerInfo, dir: &Path) -> Result<()> {
    let mut listen: Vec<SocketAddr> =
        server.addresses.iter().filter_map(|a| a.parse().ok()).collect();
    if listen.is_empty() {
        // A state file written before `addresses` existed.
        listen.push(SocketAddr::new(IpAddr::V4(endpoint_ip(server.endpoint)), DNS_PORT));
    }
    let pid = match server.kind {
        DnsServerKind::Embedded => {
            let mut args = vec!["lab".to_string(), "responder".into()];
            for addr in &listen {
                args.extend(["--listen".to_string(), addr.to_string()]);
            }
            args.extend([
                "--delay-ms".into(),
                server.delay_ms.to_string(),
                "--drop-rate".into(),
                server.drop_rate.to_string(),
                "--drop-aaaa-rate".into(),
                server.drop_aaaa_rate.to_string(),
            ]);
            system::spawn_in_netns(&server.namespace, &exe_path()?, &args, &server.log)?
        }
        DnsServerKind::Dnsmasq => {
            let pid_file = dir.join(format!("dns{}.dnsmasq.pid", server.endpoint));
            let ips: Vec<IpAddr> = listen.iter().map(|a| a.ip()).collect();
            let args = dnsmasq_args(&ips, &pid_file);
            let program = system::find_in_path("dnsmasq").ok_or_else(|| {
                Error::Runtime("`dnsmasq` not found in PATH: install dnsmasq-base".into())
            })?;
            system::spawn_in_netns(&server.namespace, &program, &args, &server.log)?
        }
    };
    server.pid = Some(pid);
    let deadline = std::time::Instant::now() + SERVER_START_TIMEOUT;
    for addr in &listen {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if !system::wait_listening(&server.namespace, *addr, pid, left)? {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            system::stop(pid);
            return Err(Error::Runtime(format!(
                "the {} DNS server in {} did not start listening on {addr} within {}s; its log ({}) ends with: {}",
                server.kind.as_str(),
                server.namespace,
                SERVER_START_TIMEOUT.as_secs(),
                server.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
    }
    server.alive = true;
    Ok(())
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

/// Describes an existing lab, with each DNS server's liveness checked now.
/// A lab that does not exist is a usage error.
pub fn status(prefix: &str) -> Result<LabInfo> {
    validate_prefix(prefix)?;
    let Some(mut info) = load_state(prefix)? else {
        let leftovers = existing_namespaces(prefix);
        let hint = if leftovers.is_empty() {
            String::new()
        } else {
            format!(
                " (leftover namespaces {} exist: `ctdiag lab down --prefix {prefix}` removes them)",
                leftovers.join(", ")
            )
        };
        return Err(Error::Usage(format!(
            "no lab with prefix {prefix:?}: create it with `ctdiag lab up --prefix {prefix}`{hint}"
        )));
    };
    refresh_liveness(&mut info);
    Ok(info)
}

fn refresh_liveness(info: &mut LabInfo) {
    for server in &mut info.servers {
        server.alive = server.pid.is_some_and(|pid| system::alive_in_netns(pid, &server.namespace));
    }
    for client in &mut info.clients {
        client.refresh(&info.namespaces.client);
    }
}

/// A scenario to apply to an existing lab.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// Endpoint `endpoint`'s pod is gone, its address blackholed, the rules
    /// still point at it.
    DeadEndpoint {
        /// 1-based endpoint; `None`: the last endpoint still running.
        endpoint: Option<u8>,
    },
    /// Endpoint `endpoint` answers `delay` late.
    SlowEndpoint {
        /// 1-based endpoint; `None`: the last endpoint still running.
        endpoint: Option<u8>,
        /// The delay.
        delay: Duration,
    },
    /// Endpoint `endpoint` (every endpoint when `None`) drops queries.
    Lossy {
        /// 1-based endpoint, or all.
        endpoint: Option<u8>,
        /// Share of all queries dropped.
        drop_rate: f64,
        /// Share of AAAA queries dropped.
        drop_aaaa_rate: f64,
    },
    /// Endpoint `endpoint` removed from the rules and its pod gone, its
    /// conntrack entries kept.
    StaleEndpoint {
        /// 1-based endpoint; `None`: the last endpoint still running.
        endpoint: Option<u8>,
    },
    /// kube-dns without endpoints and without kube-proxy's REJECT (as while
    /// kube-proxy restarts) while sticky clients retry: their packets are
    /// routed to the node's gateway untranslated, so their entries have the
    /// ClusterIP as reply source; then the endpoints come back and those
    /// entries keep the clients blackholed.
    NeverTranslated,
    /// The node drops a query to the ClusterIP sent on a socket whose
    /// earlier query is not answered yet: what the conntrack insert race
    /// does to glibc's parallel A/AAAA pair on kernels without clash
    /// resolution, imitated with an nftables rule before DNAT.
    RaceDrop,
}

/// How late the endpoints answer in `race-drop`, ms.
const RACE_ANSWER_DELAY_MS: u64 = 10;

/// The table `race-drop` adds to the node.
pub const RACE_TABLE: &str = "ctdiag-race";

/// The `race-drop` rules: before DNAT (priority -150, after conntrack's
/// -200), a UDP query to a kube-dns ClusterIP in a flow that already has an
/// unanswered packet (`ct state new`: no reply seen yet; `ct original
/// packets > 1`: not its first packet) is dropped. Why this imitates the
/// race: on a kernel without clash resolution, the second of two packets
/// sent at once on one socket loses the insert race and is dropped; a
/// query sent after the first was answered (`single-request`), from
/// another socket (`single-request-reopen`), or over TCP (`use-vc`) is not.
fn race_rules(cluster_ips: &[IpAddr]) -> String {
    let mut rules = format!(
        "table inet {RACE_TABLE} {{\n  chain prerouting {{\n    type filter hook prerouting priority -150; policy accept;\n"
    );
    for ip in cluster_ips {
        let family = if ip.is_ipv6() { "ip6" } else { "ip" };
        rules.push_str(&format!(
            "    {family} daddr {ip} udp dport {DNS_PORT} ct state new ct original packets > 1 counter drop\n"
        ));
    }
    rules.push_str("  }\n}\n");
    rules
}

/// The endpoints (1-based) whose DNS server runs, in order.
fn running_endpoints(info: &LabInfo) -> Vec<u8> {
    info.servers.iter().filter(|s| s.state == EndpointState::Running).map(|s| s.endpoint).collect()
}

/// Applies a scenario to the lab `prefix` and returns the updated lab.
pub fn apply_scenario(prefix: &str, scenario: &Scenario) -> Result<LabInfo> {
    validate_prefix(prefix)?;
    require_root()?;
    let mut info = status(prefix)?;
    let check_endpoint = |info: &LabInfo, n: u8| -> Result<()> {
        match info.servers.iter().find(|s| s.endpoint == n) {
            None => Err(Error::Usage(format!(
                "--endpoint {n}: the lab has endpoints 1 to {}",
                info.servers.len()
            ))),
            Some(s) if s.state == EndpointState::Removed => Err(Error::Usage(format!(
                "--endpoint {n}: that endpoint was already removed by an earlier scenario; `ctdiag lab up` rebuilds the lab"
            ))),
            Some(_) => Ok(()),
        }
    };
    let need_embedded = |info: &LabInfo, name: &str| -> Result<()> {
        if info.dns_server != DnsServerKind::Embedded {
            return Err(Error::Usage(format!(
                "{name} needs the embedded DNS server (`ctdiag lab up --dns embedded`); dnsmasq cannot delay or drop on purpose"
            )));
        }
        Ok(())
    };
    // Why the last endpoint by default: the first keeps answering, so the
    // lab still resolves and the failure is partial, as on a real cluster.
    let last_running = running_endpoints(&info).into_iter().max().unwrap_or(1);
    let pick = |endpoint: &Option<u8>| endpoint.unwrap_or(last_running);
    let applied = match scenario {
        Scenario::DeadEndpoint { endpoint } => {
            let endpoint = &pick(endpoint);
            check_endpoint(&info, *endpoint)?;
            remove_endpoint_pod(&mut info, *endpoint)?;
            let n_rules = rules_endpoints(&info).len();
            ScenarioInfo {
                name: "dead-endpoint".into(),
                endpoint: Some(*endpoint),
                summary: format!(
                    "endpoint {endpoint} ({}) is gone and blackholed on the node but still in the rules: about 1/{n_rules} of the lookups through {} get no answer",
                    endpoint_addr(*endpoint, info.cluster_ip),
                    info.cluster_ip
                ),
            }
        }
        Scenario::SlowEndpoint { endpoint, delay } => {
            let endpoint = &pick(endpoint);
            need_embedded(&info, "slow-endpoint")?;
            check_endpoint(&info, *endpoint)?;
            restart_server(&mut info, *endpoint, |s| s.delay_ms = delay.as_millis() as u64)?;
            ScenarioInfo {
                name: "slow-endpoint".into(),
                endpoint: Some(*endpoint),
                summary: format!(
                    "endpoint {endpoint} ({}) answers {} ms late",
                    endpoint_addr(*endpoint, info.cluster_ip),
                    delay.as_millis()
                ),
            }
        }
        Scenario::Lossy { endpoint, drop_rate, drop_aaaa_rate } => {
            need_embedded(&info, "lossy")?;
            ResponderBehavior {
                delay: Duration::ZERO,
                drop_rate: *drop_rate,
                drop_aaaa_rate: *drop_aaaa_rate,
            }
            .validate()?;
            let targets: Vec<u8> = match endpoint {
                Some(n) => {
                    check_endpoint(&info, *n)?;
                    vec![*n]
                }
                None => running_endpoints(&info),
            };
            for n in targets {
                restart_server(&mut info, n, |s| {
                    s.drop_rate = *drop_rate;
                    s.drop_aaaa_rate = *drop_aaaa_rate;
                })?;
            }
            let which = endpoint.map_or("every endpoint".to_string(), |n| format!("endpoint {n}"));
            ScenarioInfo {
                name: "lossy".into(),
                endpoint: *endpoint,
                summary: format!(
                    "{which} drops {:.0}% of AAAA queries and {:.0}% of all queries without answering",
                    drop_aaaa_rate * 100.0,
                    drop_rate * 100.0
                ),
            }
        }
        Scenario::StaleEndpoint { endpoint } => {
            let endpoint = &pick(endpoint);
            check_endpoint(&info, *endpoint)?;
            let remaining: Vec<u8> =
                rules_endpoints(&info).into_iter().filter(|n| n != endpoint).collect();
            if remaining.is_empty() {
                return Err(Error::Usage(
                    "stale-endpoint needs at least one other endpoint left in the rules (`lab up --endpoints 2`)".into(),
                ));
            }
            // Clients whose entries go to the endpoint exist before it
            // leaves, as resolvers that were running all along.
            let target = SocketAddr::new(endpoint_addr(*endpoint, info.cluster_ip), DNS_PORT);
            let placed = place_sticky_clients(
                &mut info,
                "stale-endpoint",
                &|reply_src| reply_src == target,
                STICKY_ON_TARGET,
                STICKY_CONTROL,
            )?;
            // Rules first, then the pod: as when kube-proxy syncs the new
            // endpoint list but never deletes the UDP conntrack entries.
            load_rules(
                &info.namespaces.node,
                &info.cluster_ips,
                &remaining,
                info.rules_mode,
                true,
            )?;
            info.endpoints = endpoint_list(&info.cluster_ips, &remaining);
            remove_endpoint_pod(&mut info, *endpoint)?;
            ScenarioInfo {
                name: "stale-endpoint".into(),
                endpoint: Some(*endpoint),
                summary: format!(
                    "endpoint {endpoint} ({}) is out of the rules and gone, its conntrack entries are kept: sticky clients {} (fixed source ports) stay blackholed until their entries are deleted; {} answered through the other endpoints",
                    endpoint_addr(*endpoint, info.cluster_ip),
                    describe_clients(&placed.on_target),
                    describe_clients(&placed.control),
                ),
            }
        }
        Scenario::NeverTranslated => {
            let endpoints = rules_endpoints(&info);
            if endpoints.is_empty() {
                return Err(Error::Usage(
                    "never-translated brings the endpoints back at the end, but the rules have none; `ctdiag lab up` rebuilds the lab".into(),
                ));
            }
            let node = info.namespaces.node.clone();
            // kube-proxy restarting: the Service's DNAT rules are gone and
            // so is its REJECT, so a packet to the ClusterIP is routed to
            // the default gateway (the router drops it) and conntrack
            // confirms an entry that was never translated.
            load_rules(&node, &info.cluster_ips, &[], info.rules_mode, false)?;
            let cluster = SocketAddr::new(info.cluster_ip, DNS_PORT);
            let placed = place_sticky_clients(
                &mut info,
                "never-translated",
                &|reply_src| reply_src == cluster,
                NEVER_TRANSLATED_CLIENTS,
                0,
            );
            // The endpoints come back whatever happened above, so that a
            // failed scenario does not leave kube-dns without endpoints.
            let restored = load_rules(&node, &info.cluster_ips, &endpoints, info.rules_mode, true);
            let placed = placed?;
            restored?;
            ScenarioInfo {
                name: "never-translated".into(),
                endpoint: None,
                summary: format!(
                    "kube-dns had no endpoints and no REJECT rule (kube-proxy restarting) while sticky clients {} retried: their entries were never translated (reply source {cluster}) and keep their queries going to the node's gateway now that the endpoints are back, until the entries are deleted",
                    describe_clients(&placed.on_target)
                ),
            }
        }
        Scenario::RaceDrop => {
            system::require_tool("nft")?;
            let node = info.namespaces.node.clone();
            // Why: `ct original packets` counts only with accounting on
            // (per namespace, writable in a child one).
            set_sysctl(&node, "netfilter/nf_conntrack_acct", "1")?;
            system::run(
                "ip",
                &["netns", "exec", &node, "nft", "-f", "-"],
                Some(&race_rules(&info.cluster_ips)),
            )?;
            // Why a delay: the race needs both queries in flight at once.
            // An answer within microseconds can beat the pair's second
            // query to the node (then it is a reply-seen flow and passes),
            // which made the share lost swing between a fifth and three
            // quarters; 10 ms, like a CoreDNS answering from cache, keeps
            // the first one unanswered while the second arrives.
            let delayed = info.dns_server == DnsServerKind::Embedded;
            if delayed {
                for n in running_endpoints(&info) {
                    restart_server(&mut info, n, |s| s.delay_ms = RACE_ANSWER_DELAY_MS)?;
                }
            }
            let ips: Vec<String> = info.cluster_ips.iter().map(IpAddr::to_string).collect();
            ScenarioInfo {
                name: "race-drop".into(),
                endpoint: None,
                summary: format!(
                    "the node drops a query to {} sent on a socket whose earlier query is unanswered (table inet {RACE_TABLE} in {node}){}: glibc's parallel A/AAAA pair loses one as in the conntrack insert race on kernels without clash resolution (where insert_failed would rise; here conntrack's counters do not move, the rule's counter does)",
                    ips.join(", "),
                    if delayed {
                        format!(", and the endpoints answer {RACE_ANSWER_DELAY_MS} ms late so that both queries of a pair are in flight at once")
                    } else {
                        String::new()
                    }
                ),
            }
        }
    };
    info.scenarios.push(applied);
    refresh_liveness(&mut info);
    save_state(&info)?;
    Ok(info)
}

/// The endpoint numbers in the node's rules now.
fn rules_endpoints(info: &LabInfo) -> Vec<u8> {
    let mut numbers: Vec<u8> = info
        .endpoints
        .iter()
        .filter_map(|e| e.parse::<SocketAddr>().ok())
        .filter_map(|e| endpoint_number(e.ip()))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// `ip:port` of each endpoint in each family of `cluster_ips`, as
/// `LabInfo::endpoints` lists them (IPv4 first).
fn endpoint_list(cluster_ips: &[IpAddr], numbers: &[u8]) -> Vec<String> {
    cluster_ips
        .iter()
        .flat_map(|cip| {
            numbers.iter().map(|n| SocketAddr::new(endpoint_addr(*n, *cip), DNS_PORT).to_string())
        })
        .collect()
}

/// Sticky clients a scenario wants on the endpoint (or entry kind) it acts
/// on.
const STICKY_ON_TARGET: usize = 2;
/// Sticky clients it wants elsewhere, to show the difference.
const STICKY_CONTROL: usize = 2;
/// Sticky clients the never-translated scenario starts.
const NEVER_TRANSLATED_CLIENTS: usize = 3;
/// Clients started at once while placing them.
const STICKY_BATCH: u32 = 4;
/// Most clients one scenario starts while placing them (extra ones are
/// stopped again).
const STICKY_ATTEMPTS: u32 = 64;
/// How long a new client's first query gets to show up in the node's
/// conntrack table.
const STICKY_ENTRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The clients a scenario placed.
struct Placed {
    /// Those whose entry matched what the scenario wanted.
    on_target: Vec<StickyClient>,
    /// The others that were kept.
    control: Vec<StickyClient>,
}

/// `ids 1, 3 (198.18.1.2:42001, ...)`, or `none`.
fn describe_clients(clients: &[StickyClient]) -> String {
    if clients.is_empty() {
        return "none".into();
    }
    let ids: Vec<String> = clients.iter().map(|c| c.id.to_string()).collect();
    let sources: Vec<&str> = clients.iter().map(|c| c.source.as_str()).collect();
    format!("{} ({})", ids.join(", "), sources.join(", "))
}

/// Starts sticky clients in batches until at least `on_target` of them have
/// a conntrack entry in the node whose reply source satisfies `wanted` and
/// `control` others, as the node's table shows it (`conntrack -L`). Extra
/// control clients are stopped again; every client kept is added to
/// `info.clients` (and saved). Bounded: at most [`STICKY_ATTEMPTS`] clients.
fn place_sticky_clients(
    info: &mut LabInfo,
    scenario: &str,
    wanted: &dyn Fn(SocketAddr) -> bool,
    on_target: usize,
    control: usize,
) -> Result<Placed> {
    system::require_tool("conntrack")?;
    let mut placed = Placed { on_target: Vec::new(), control: Vec::new() };
    let mut started = 0;
    while placed.on_target.len() < on_target || placed.control.len() < control {
        if started >= STICKY_ATTEMPTS {
            return Err(Error::Runtime(format!(
                "{scenario}: after {started} sticky clients only {} had their entry where the scenario needs it (wanted {on_target}); kube-proxy's random choice was unlucky, run the scenario again",
                placed.on_target.len()
            )));
        }
        let batch = start_sticky_clients(info, scenario, STICKY_BATCH)?;
        info.next_client_id += STICKY_BATCH;
        started += STICKY_BATCH;
        for client in batch {
            let reply_src: Option<SocketAddr> = client.entry_reply_src.parse().ok();
            if reply_src.is_some_and(wanted) {
                placed.on_target.push(client.clone());
                info.clients.push(client);
            } else if placed.control.len() < control {
                placed.control.push(client.clone());
                info.clients.push(client);
            } else {
                // Not needed: its entry stays (live, towards a running
                // endpoint) until it expires.
                system::stop(client.pid);
                let _ = std::fs::remove_file(&client.status_file);
                let _ = std::fs::remove_file(&client.log);
            }
        }
        save_state(info)?;
    }
    Ok(placed)
}

/// Starts `count` sticky clients in the client pod (ids after the last
/// one the lab had) and waits until each one's first query has a conntrack
/// entry in the node; returns them with the entry's reply source.
fn start_sticky_clients(info: &LabInfo, scenario: &str, count: u32) -> Result<Vec<StickyClient>> {
    let next_id = info.next_client_id;
    if next_id + count - 1 > client::MAX_CLIENTS {
        return Err(Error::Usage(format!(
            "the lab has started {} sticky clients, the most one lab runs; `ctdiag lab up` rebuilds it",
            next_id - 1
        )));
    }
    let family = fill::Family::of(info.cluster_ip);
    let server = SocketAddr::new(info.cluster_ip, DNS_PORT);
    let source_ip = client_ip(family);
    let netns_file = Path::new(crate::netns::NETNS_RUN_DIR).join(&info.namespaces.client);
    let exe = exe_path()?;
    let mut clients = Vec::new();
    for id in next_id..next_id + count {
        let source = SocketAddr::new(source_ip, client::CLIENT_PORT_BASE + id as u16);
        let status_file = info.state_dir.join(format!("client{id}.jsonl"));
        let log = info.state_dir.join(format!("client{id}.log"));
        let args = vec![
            "lab".to_string(),
            "client".into(),
            "--bind".into(),
            source.to_string(),
            "--server".into(),
            server.to_string(),
            "--status".into(),
            status_file.display().to_string(),
            "--hostname".into(),
            info.client_pod.clone(),
            "--netns-file".into(),
            netns_file.display().to_string(),
            "--interval-ms".into(),
            client::QUERY_INTERVAL.as_millis().to_string(),
            "--lifetime-s".into(),
            client::MAX_LIFETIME.as_secs().to_string(),
        ];
        let pid = system::spawn_in_netns(&info.namespaces.client, &exe, &args, &log)?;
        clients.push(StickyClient {
            id,
            pid,
            source: source.to_string(),
            server: server.to_string(),
            entry_reply_src: String::new(),
            hostname: info.client_pod.clone(),
            scenario: scenario.to_string(),
            status_file,
            log,
            alive: true,
            queries: 0,
            answered: 0,
            last_answered: None,
        });
    }
    let deadline = std::time::Instant::now() + STICKY_ENTRY_TIMEOUT;
    loop {
        let entries = client::entries_towards(&info.namespaces.node, source_ip, server)?;
        for c in clients.iter_mut().filter(|c| c.entry_reply_src.is_empty()) {
            let port = c.source.parse::<SocketAddr>().map(|s| s.port()).unwrap_or(0);
            if let Some((_, reply_src)) = entries.iter().find(|(sport, _)| *sport == port) {
                c.entry_reply_src = reply_src.to_string();
            }
        }
        if clients.iter().all(|c| !c.entry_reply_src.is_empty()) {
            return Ok(clients);
        }
        let dead = clients.iter().find(|c| !system::alive_in_netns(c.pid, &info.namespaces.client));
        if dead.is_some() || std::time::Instant::now() >= deadline {
            let culprit = dead.or_else(|| clients.iter().find(|c| c.entry_reply_src.is_empty()));
            let detail = culprit.map_or(String::new(), |c| {
                let log = std::fs::read_to_string(&c.log).unwrap_or_default();
                format!(
                    "sticky client {} ({}) {}; its log ({}) says: {}",
                    c.id,
                    c.source,
                    if dead.is_some() { "died" } else { "has no conntrack entry in the node" },
                    c.log.display(),
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                )
            });
            for c in &clients {
                system::stop(c.pid);
            }
            return Err(Error::Runtime(format!(
                "{scenario}: the sticky clients did not all reach the node within {}s: {detail}",
                STICKY_ENTRY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops endpoint `n`'s server, deletes its namespace and blackholes its
/// address on the node (a silent drop, like a pod that vanished).
fn remove_endpoint_pod(info: &mut LabInfo, n: u8) -> Result<()> {
    let node = info.namespaces.node.clone();
    let Some(server) = info.servers.iter_mut().find(|s| s.endpoint == n) else {
        return Err(Error::Usage(format!("--endpoint {n}: no such endpoint")));
    };
    if let Some(pid) = server.pid.take() {
        if system::alive_in_netns(pid, &server.namespace) {
            system::stop(pid);
        }
    }
    for pid in system::pids_in_netns(&server.namespace) {
        system::stop(pid);
    }
    system::ip(&["netns", "del", &server.namespace])?;
    for cip in info.cluster_ips.clone() {
        let (family, blackhole) = match endpoint_addr(n, cip) {
            IpAddr::V4(ip) => ("-4", format!("{ip}/32")),
            IpAddr::V6(ip) => ("-6", format!("{ip}/128")),
        };
        system::ip(&["-n", &node, family, "route", "add", "blackhole", &blackhole])?;
    }
    server.state = EndpointState::Removed;
    server.alive = false;
    Ok(())
}

/// Restarts endpoint `n`'s server with changed options.
fn restart_server(
    info: &mut LabInfo,
    n: u8,
    change: impl FnOnce(&mut DnsServerInfo),
) -> Result<()> {
    let dir = info.state_dir.clone();
    let Some(server) = info.servers.iter_mut().find(|s| s.endpoint == n) else {
        return Err(Error::Usage(format!("--endpoint {n}: no such endpoint")));
    };
    if let Some(pid) = server.pid.take() {
        if system::alive_in_netns(pid, &server.namespace) {
            system::stop(pid);
        }
    }
    change(server);
    start_server(server, &dir)
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

    #[test]
    fn addresses_and_names() {
        assert_eq!(endpoint_ip(1), Ipv4Addr::new(198, 18, 2, 2));
        assert_eq!(endpoint_ip(32), Ipv4Addr::new(198, 18, 33, 2));
        assert_eq!(dns_ns("p", 3), "p-dns3");
        let args = dnsmasq_args(&[endpoint_ip(1).into()], Path::new("/tmp/x.pid"));
        assert!(args.contains(&"--listen-address=198.18.2.2".to_string()));
        let both = dnsmasq_args(&[endpoint_ip(1).into(), endpoint_ip6(1).into()], Path::new("/x"));
        assert!(both.contains(&"--listen-address=198.18.2.2,2001:db8:2::2".to_string()));
        assert!(args
            .contains(&"--address=/kubernetes.default.svc.cluster.local/198.19.0.1".to_string()));
    }
}
