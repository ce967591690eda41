//! Several rule sources for one ClusterIP:port: rules of two proxy modes
//! (leftovers of a migration), two copies of one mode's rules (both
//! iptables backends), as the Service resolution returns them, each as its
//! source has it. They are merged into one target per ClusterIP:port
//! (before, each copy was scanned on its own and the union flushed, and
//! above four targets one copy silently replaced the others in the scan's
//! address map). An entry is live when any source names its target. A
//! flush refuses sources that disagree on the endpoints, and rules that
//! were skipped as unreadable (either may hide a live endpoint), unless
//! `--from` picks one mode's rules.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::classify::Target;
use crate::service::{ProxyMode, Service};

/// One rule source's endpoints for a ClusterIP:port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SourceView {
    /// `iptables rules`, `nftables rules`, `ipvs rules`,
    /// `--cluster-ip/--endpoints`; `... (copy 2)` for a second copy of one
    /// mode's rules.
    pub(super) label: String,
    /// Its endpoints of the ClusterIP's family, sorted.
    pub(super) endpoints: Vec<SocketAddr>,
}

/// The label of a source of `mode`.
pub(super) fn label(mode: ProxyMode) -> String {
    match mode {
        ProxyMode::Manual => "--cluster-ip/--endpoints".to_string(),
        other => format!("{} rules", other.as_str()),
    }
}

/// One target per ClusterIP:port of `services`, each with every source
/// that defines it; endpoints are the union of the sources'.
pub(super) fn targets(services: &[Service]) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    for service in services {
        for cluster_ip in &service.cluster_ips {
            let endpoints: Vec<SocketAddr> = service
                .endpoints
                .iter()
                .copied()
                .filter(|e| e.is_ipv4() == cluster_ip.is_ipv4())
                .collect();
            let address = SocketAddr::new(*cluster_ip, service.port);
            let mut view = SourceView { label: label(service.proxy_mode), endpoints };
            match targets.iter_mut().find(|t| t.address() == address) {
                Some(target) => {
                    let copies =
                        target.sources.iter().filter(|s| s.label.starts_with(&view.label)).count();
                    if copies > 0 {
                        view.label = format!("{} (copy {})", view.label, copies + 1);
                    }
                    let mut union: BTreeSet<SocketAddr> =
                        target.endpoints.iter().copied().collect();
                    union.extend(view.endpoints.iter().copied());
                    target.endpoints = union.into_iter().collect();
                    target.sources.push(view);
                }
                None => targets.push(Target {
                    service: service.clone(),
                    cluster_ip: *cluster_ip,
                    port: service.port,
                    endpoints: view.endpoints.clone(),
                    sources: vec![view],
                }),
            }
        }
    }
    targets
}

/// Adds `copies` (of another source, labelled `label`) to the targets of
/// the same ClusterIP:port; a copy of an address no target has is left
/// out (it is not a Service asked for).
pub(super) fn add_copies(targets: &mut [Target], copies: &[Service], label: &str) {
    for copy in self::targets(copies) {
        let Some(target) = targets.iter_mut().find(|t| t.address() == copy.address()) else {
            continue;
        };
        let mut union: BTreeSet<SocketAddr> = target.endpoints.iter().copied().collect();
        union.extend(copy.endpoints.iter().copied());
        target.endpoints = union.into_iter().collect();
        target
            .sources
            .push(SourceView { label: label.to_string(), endpoints: copy.endpoints.clone() });
    }
}

/// How the sources of `target` disagree on its endpoints, in words; `None`
/// when they agree (or there is one).
pub(super) fn disagreement(target: &Target) -> Option<String> {
    let first = target.sources.first()?;
    if target.sources.iter().all(|s| s.endpoints == first.endpoints) {
        return None;
    }
    let views: Vec<String> = target
        .sources
        .iter()
        .map(|s| {
            let only: Vec<String> = s
                .endpoints
                .iter()
                .filter(|e| target.sources.iter().any(|o| !o.endpoints.contains(e)))
                .map(ToString::to_string)
                .collect();
            format!(
                "{}: {}{}",
                s.label,
                list(&s.endpoints),
                if only.is_empty() {
                    String::new()
                } else {
                    format!(" (not in every source: {})", only.join(", "))
                }
            )
        })
        .collect();
    Some(format!(
        "{} {} is defined by {} rule sources that disagree on its endpoints: {}",
        target.service.port_name_string(),
        target.address(),
        target.sources.len(),
        views.join("; ")
    ))
}

/// Why a flush of `targets` must not run: sources that disagree, or rules
/// skipped as unreadable (`skipped`, from a rule read). `None`: safe.
pub(super) fn flush_refusal(targets: &[Target], skipped: &[String]) -> Option<String> {
    let disagreements: Vec<String> = targets.iter().filter_map(disagreement).collect();
    if !disagreements.is_empty() {
        let backends = if disagreements.iter().any(|d| d.contains("backend")) {
            " (--from cannot choose between the two iptables backends: remove the rules of the one kube-proxy does not use, e.g. `kube-proxy --cleanup` run with that backend's iptables)"
        } else {
            ""
        };
        return Some(format!(
            "--flush refused, nothing was deleted: {}. An entry towards an endpoint that only one source names may be live; pick the rules kube-proxy runs with --from iptables|nftables|ipvs{backends} (`ctdiag services` shows each source), or give the Service yourself with --cluster-ip/--endpoints",
            disagreements.join(". ")
        ));
    }
    let skipped: Vec<&String> =
        skipped.iter().filter(|s| may_hide_an_endpoint(s, targets)).collect();
    if !skipped.is_empty() {
        let shown: Vec<&str> = skipped.iter().take(3).map(|s| s.as_str()).collect();
        return Some(format!(
            "--flush refused, nothing was deleted: {} kube-proxy rule(s) could not be read and were skipped ({}{}), and a skipped rule may be an endpoint whose entries are live. Check them (`ctdiag services -v`), then give the Service yourself with --cluster-ip/--endpoints",
            skipped.len(),
            shown.join("; "),
            if skipped.len() > shown.len() { "; ..." } else { "" }
        ));
    }
    None
}

/// Whether a skipped rule may be an endpoint of one of `targets`. Known
/// to be about something else: an IPVS virtual server that is not a
/// ClusterIP (a NodePort or node address), a firewall-mark virtual server,
/// and a terminating IPVS real server of another virtual server. Anything
/// else may be (most skip reasons name a rule's line, not its Service), so
/// it counts.
fn may_hide_an_endpoint(skipped: &str, targets: &[Target]) -> bool {
    if skipped.contains("(a NodePort or node address, not a ClusterIP)")
        || skipped.contains("firewall-mark virtual server")
    {
        return false;
    }
    if skipped.starts_with("real server ") {
        // "real server IP:PORT of PROTO VIP:PORT: weight 0 (terminating...)"
        return targets.iter().any(|t| skipped.contains(&format!(" {}: ", t.address())));
    }
    true
}

fn list(endpoints: &[SocketAddr]) -> String {
    if endpoints.is_empty() {
        "no endpoints".to_string()
    } else {
        endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Protocol;

    fn service(mode: ProxyMode, endpoints: &[&str]) -> Service {
        Service {
            namespace: "kube-system".into(),
            name: "kube-dns".into(),
            port_name: "dns".into(),
            protocol: Protocol::Udp,
            cluster_ips: vec!["198.19.0.10".parse().unwrap()],
            port: 53,
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            proxy_mode: mode,
        }
    }

    #[test]
    fn copies_of_one_address_become_one_target_with_every_source() {
        let both = [
            service(ProxyMode::Iptables, &["198.18.2.2:53", "198.18.3.2:53"]),
            service(ProxyMode::Nftables, &["198.18.2.2:53"]),
            service(ProxyMode::Iptables, &["198.18.2.2:53"]),
        ];
        let targets = targets(&both);
        assert_eq!(targets.len(), 1);
        let labels: Vec<&str> = targets[0].sources.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["iptables rules", "nftables rules", "iptables rules (copy 2)"]);
        assert_eq!(targets[0].endpoints.len(), 2, "the union");
        let why = disagreement(&targets[0]).unwrap();
        assert_eq!(
            why,
            "kube-system/kube-dns:dns 198.19.0.10:53 is defined by 3 rule sources that disagree on its endpoints: iptables rules: 198.18.2.2:53, 198.18.3.2:53 (not in every source: 198.18.3.2:53); nftables rules: 198.18.2.2:53; iptables rules (copy 2): 198.18.2.2:53"
        );
        assert!(flush_refusal(&targets, &[]).unwrap().contains("--from"));
    }

    #[test]
    fn agreeing_sources_and_one_source_are_safe_unless_rules_were_skipped() {
        let agree = targets(&[
            service(ProxyMode::Iptables, &["198.18.2.2:53"]),
            service(ProxyMode::Nftables, &["198.18.2.2:53"]),
        ]);
        assert_eq!(disagreement(&agree[0]), None);
        assert_eq!(flush_refusal(&agree, &[]), None);
        let skipped = ["line 7: DNAT in KUBE-SEP-X has no IP:PORT --to-destination".to_string()];
        let refusal = flush_refusal(&agree, &skipped).unwrap();
        assert!(refusal.contains("1 kube-proxy rule(s) could not be read"), "{refusal}");
        assert!(refusal.contains("KUBE-SEP-X"), "{refusal}");
        // IPVS: a NodePort virtual server, and a terminating real server of
        // another virtual server, hide no endpoint of 198.19.0.10:53; a
        // terminating real server of it does (its entries are live for
        // kube-proxy).
        let elsewhere = [
            "virtual server udp 198.18.0.1:30053: its address is not on kube-ipvs0 (a NodePort or node address, not a ClusterIP)".to_string(),
            "real server 198.18.5.2:53 of udp 198.19.0.11:53: weight 0 (terminating: kube-proxy keeps it for open connections, new ones do not go to it)".to_string(),
        ];
        assert_eq!(flush_refusal(&agree, &elsewhere), None);
        let terminating = ["real server 198.18.5.2:53 of udp 198.19.0.10:53: weight 0 (terminating: kube-proxy keeps it for open connections, new ones do not go to it)".to_string()];
        assert!(flush_refusal(&agree, &terminating).is_some());
    }
}
