//! The lab's kube-dns Service on the node: kube-proxy's rules for it (text
//! from [`super::rules`]), loaded the way a kube-proxy sync loads them, and
//! the endpoint lists those rules hold.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};

use super::state::LabInfo;
use super::topology::{endpoint_addr, endpoint_number};
use super::{rules, system, ProxyMode, CLUSTER_CIDR, CLUSTER_CIDR6, CLUSTER_IP, DNS_PORT, SERVICE};
use crate::error::Result;

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
pub(super) fn load_rules(
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

/// The endpoint numbers in the node's rules now.
pub(super) fn rules_endpoints(info: &LabInfo) -> Vec<u8> {
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
pub(super) fn endpoint_list(cluster_ips: &[IpAddr], numbers: &[u8]) -> Vec<String> {
    cluster_ips
        .iter()
        .flat_map(|cip| {
            numbers.iter().map(|n| SocketAddr::new(endpoint_addr(*n, *cip), DNS_PORT).to_string())
        })
        .collect()
}
