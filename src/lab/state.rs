//! What a lab consists of ([`LabInfo`]) and its state file,
//! `/run/ctdiag/lab/PREFIX/state.json`: the lab's own data, which it writes
//! and reads back itself with serde_json (no renderer involved).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::client::StickyClient;
use super::topology::existing_namespaces;
use super::{system, validate_prefix, DnsServerKind, IpFamily, ProxyMode, STATE_ROOT};
use crate::error::{Error, Result};

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
    /// The error rcode it answers every query with (embedded only), e.g.
    /// `SERVFAIL`; null: real answers.
    #[serde(default)]
    pub rcode: Option<String>,
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

pub(super) fn first_client_id() -> u32 {
    1
}

/// The lab's state directory.
pub fn state_dir(prefix: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(prefix)
}

pub(super) fn state_file(prefix: &str) -> PathBuf {
    state_dir(prefix).join("state.json")
}

pub(super) fn load_state(prefix: &str) -> Result<Option<LabInfo>> {
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
pub(super) fn save_state(info: &LabInfo) -> Result<()> {
    let path = state_file(&info.prefix);
    let text = serde_json::to_string_pretty(info)
        .map_err(|e| Error::Runtime(format!("cannot serialize lab state: {e}")))?;
    // Write then rename, so a reader never sees half a file.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| Error::Runtime(format!("cannot write lab state {}: {e}", path.display())))
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

pub(super) fn refresh_liveness(info: &mut LabInfo) {
    for server in &mut info.servers {
        server.alive = server.pid.is_some_and(|pid| system::alive_in_netns(pid, &server.namespace));
    }
    for client in &mut info.clients {
        client.refresh(&info.namespaces.client);
    }
}

/// The endpoints (1-based) whose DNS server runs, in order.
pub(super) fn running_endpoints(info: &LabInfo) -> Vec<u8> {
    info.servers.iter().filter(|s| s.state == EndpointState::Running).map(|s| s.endpoint).collect()
}
