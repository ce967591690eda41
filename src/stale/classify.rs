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
    /// Its reply source is the ClusterIP itself while the Service has
    /// endpoints: created while it had none, never DNATed.
    NeverTranslated,
    /// Not translated, and the Service has no endpoints now: nothing better
    /// exists (not stale yet; it will be once endpoints return).
    Untranslated,
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
            Verdict::Live | Verdict::Untranslated => None,
        }
    }
}

/// Classifies an entry to `service` (ClusterIP:port) against the Service's
/// current endpoints.
pub fn classify(entry: &Entry, service: SocketAddr, endpoints: &[SocketAddr]) -> Verdict {
    let target = entry.reply.source();
    if target == service {
        if endpoints.is_empty() {
            Verdict::Untranslated
        } else {
            Verdict::NeverTranslated
        }
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
    /// The endpoints of the ClusterIP's address family.
    pub(super) endpoints: Vec<SocketAddr>,
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
