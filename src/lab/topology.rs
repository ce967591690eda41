//! The lab's network: namespace names and addresses, the routed veths
//! between the node and each pod, the node's uplink to the router, sysctls
//! inside a namespace, and the client pod's resolv.conf.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::{fill, system, MAX_ENDPOINTS, NODE_UPLINK_IP, ROUTER_IP, ROUTER_LINK};
use crate::error::{Error, Result};

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

/// Namespaces in /run/netns that belong to the lab `prefix`.
pub(super) fn existing_namespaces(prefix: &str) -> Vec<String> {
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

/// Writes a sysctl under /proc/sys/net inside a namespace.
pub(super) fn set_sysctl(netns: &str, key: &str, value: &str) -> Result<()> {
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
pub(super) fn connect(node: &str, dev: &str, peer: &str, k: u8) -> Result<()> {
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
pub(super) fn connect_router(node: &str, router: &str) -> Result<()> {
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

/// Writes the client pod's resolv.conf as the kubelet would for a pod in
/// the `default` namespace: one `nameserver` line per kube-dns ClusterIP
/// (a dual-stack cluster lists both, in the kubelet's `clusterDNS` order).
pub(super) fn write_resolv_conf(client: &str, cluster_ips: &[IpAddr]) -> Result<PathBuf> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        assert_eq!(endpoint_ip(1), Ipv4Addr::new(198, 18, 2, 2));
        assert_eq!(endpoint_ip(32), Ipv4Addr::new(198, 18, 33, 2));
        assert_eq!(dns_ns("p", 3), "p-dns3");
    }
}
