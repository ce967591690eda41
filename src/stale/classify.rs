//! Which entries are stale: an entry's verdict against a Service port's
//! current endpoints, and the ClusterIP:port entries are matched against.

use std::net::{IpAddr, SocketAddr};

use crate::conntrack::entry::{Entry, AF_INET, AF_INET6};
use crate::service::Service;

/// Why an entry is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Its reply source is a current endpoint.
    Live,
    /// Its reply source is not a current endpoint.
    DeadEndpoint,
    /// Its reply source is the ClusterIP itself: never DNATed (created
    /// while the Service had no endpoints, or before its rules existed).
    /// Stale whether or not the Service has endpoints now, as kube-proxy's
    /// reconciler (kubernetes#139629) has it: deleting it lets the next
    /// packet meet the rules (a DNAT, or the REJECT of a Service without
    /// endpoints, which answers at once instead of a 5 s silence).
    NeverTranslated,
}

impl Verdict {
    /// Whether the entry is stale.
    pub fn is_stale(self) -> bool {
        matches!(self, Verdict::DeadEndpoint | Verdict::NeverTranslated)
    }

    /// The report's `reason`.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Verdict::DeadEndpoint => Some("dead-endpoint"),
            Verdict::NeverTranslated => Some("never-translated"),
            Verdict::Live => None,
        }
    }
}

/// Classifies an entry to `service` (ClusterIP:port) against the Service's
/// current endpoints: live only when its reply source is one of them. A
/// Service without endpoints has no live entry (kube-proxy's reconciler
/// deletes every entry of such a Service since kubernetes#139629).
pub fn classify(entry: &Entry, service: SocketAddr, endpoints: &[SocketAddr]) -> Verdict {
    let target = entry.reply.source();
    if target == service {
        Verdict::NeverTranslated
    } else if endpoints.contains(&target) {
        Verdict::Live
    } else {
        Verdict::DeadEndpoint
    }
}

/// One ClusterIP:port of a Service port: what entries are matched against.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) service: Service,
    pub(super) cluster_ip: IpAddr,
    pub(super) port: u16,
    /// The endpoints of the ClusterIP's address family: every endpoint
    /// any of `sources` names (an entry is live when one of them says so).
    pub(super) endpoints: Vec<SocketAddr>,
    /// Each rule source's view of this ClusterIP:port (one for most
    /// nodes; several when rules of two proxy modes, or two copies of one
    /// mode's rules, define it).
    pub(super) sources: Vec<super::sources::SourceView>,
}

impl Target {
    pub(super) fn address(&self) -> SocketAddr {
        SocketAddr::new(self.cluster_ip, self.port)
    }

    pub(super) fn family(&self) -> u8 {
        if self.cluster_ip.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        }
    }
}
