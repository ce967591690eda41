//! Kubernetes Services as the node's kube-proxy rules define them: which
//! ClusterIP and port, and which endpoints the DNAT rules send traffic to.
//!
//! Only kube-proxy's iptables mode is read so far (`iptables-save`);
//! nftables and IPVS modes are not.

pub mod iptables;

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

    /// The lowercase name, as kube-proxy and iptables write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
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
}

impl Service {
    /// `namespace/name:port_name` (`namespace/name` for an unnamed port), as
    /// kube-proxy writes it in its rule comments.
    pub fn port_name_string(&self) -> String {
        if self.port_name.is_empty() {
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
