//! The `ctdiag services` report: every Service port the node's rules
//! define, what was skipped, and findings, optionally checked against the
//! API's EndpointSlices. Built from a plain [`ServicesConfig`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::api::{self, ApiCheck, ApiSource};
use super::ipvs::ClusterDnsHint;
use super::select::{resolve_with, Advice, Selector};
use super::{ProxyMode, Service, KUBE_DNS};
use crate::error::{Error, Result};
use crate::findings::{Finding, FindingCode, Severity};
use crate::netns::Netns;

/// Validated `ctdiag services` settings.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    /// Which Service ports.
    pub selector: Selector,
    /// The node's namespace (`--netns`), where the rules are read.
    pub netns: Option<String>,
    /// `--cluster-dns`: the kube-dns ClusterIP, for IPVS mode.
    pub cluster_dns: Option<IpAddr>,
    /// `--api` / `--kubectl`: the API to compare with.
    pub api: Option<ApiSource>,
    /// What to pass instead when the Services cannot be resolved.
    pub advice: Advice,
}

/// What `ctdiag services` found.
#[derive(Debug, Clone, Serialize)]
pub struct ServicesReport {
    /// The Service ports, sorted (the `-o json` contract is this list).
    pub services: Vec<Service>,
    /// Where they came from (`netlink (iptables-nft) in NODE`, `iptables-save in NODE`, ...).
    pub source: String,
    /// The namespace the rules were read in (`--netns`).
    pub netns: Option<String>,
    /// How many Service ports each mode's rules define.
    pub per_mode: BTreeMap<ProxyMode, usize>,
    /// In IPVS mode: how kube-dns was recognised.
    pub kube_dns_from: Option<String>,
    /// Rules that were skipped and why.
    pub skipped: Vec<String>,
    /// Remarks: a mode that could not be read, and similar.
    pub notes: Vec<String>,
    /// The API cross-check, when asked for.
    pub api: Option<ApiCheck>,
    /// What is wrong, or worth knowing.
    pub findings: Vec<Finding>,
}

/// How many items a finding's evidence names before "and N more".
const EVIDENCE_ITEMS: usize = 12;

/// Reads the rules (and the API when asked) and builds the report.
pub fn build(config: &ServicesConfig) -> Result<ServicesReport> {
    let netns = config.netns.as_deref().map(Netns::open).transpose()?;
    // Read the API first: a bad --api file is a usage error, found before
    // the node's rules are listed.
    let api_text = config.api.as_ref().map(ApiSource::read).transpose()?;
    let api_state =
        api_text.map(|(text, from)| api::parse(&text, &from).map(|s| (s, from))).transpose()?;
    let hint = ClusterDnsHint { cluster_dns: config.cluster_dns };
    let resolved = resolve_with(&config.selector, netns.as_ref(), &[], &hint)
        .map_err(|e| Error::Usage(e.message(&config.advice)))?;
    let mut findings = rule_findings(&resolved.services, &resolved.per_mode, &resolved.skipped);
    let api = api_state.map(|(state, from)| {
        let (check, api_findings) = api::cross_check(&resolved.services, &state, &from);
        findings.extend(api_findings);
        check
    });
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(ServicesReport {
        services: resolved.services,
        source: resolved.source,
        netns: config.netns.clone(),
        per_mode: resolved.per_mode,
        kube_dns_from: resolved.ipvs_kube_dns.map(|m| format!("{} ({})", m.ip, m.how)),
        skipped: resolved.skipped,
        notes: resolved.notes,
        api,
        findings,
    })
}

fn list(items: &[String]) -> String {
    let mut text = items.iter().take(EVIDENCE_ITEMS).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > EVIDENCE_ITEMS {
        text.push_str(&format!(", and {} more", items.len() - EVIDENCE_ITEMS));
    }
    text
}

/// Whether `service` is kube-dns.
fn is_dns(service: &Service) -> bool {
    service.namespace == KUBE_DNS.0 && service.name == KUBE_DNS.1
}

/// Findings from the rules alone: one function per finding code.
pub fn rule_findings(
    services: &[Service],
    per_mode: &BTreeMap<ProxyMode, usize>,
    skipped: &[String],
) -> Vec<Finding> {
    [
        kube_dns_no_endpoints(services),
        services_without_endpoints(services),
        mixed_proxy_modes(per_mode),
        rules_skipped(skipped),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `kube-dns-no-endpoints`: kube-dns's port 53 REJECTed in the rules.
fn kube_dns_no_endpoints(services: &[Service]) -> Option<Finding> {
    let dns_empty: Vec<String> = services
        .iter()
        .filter(|s| is_dns(s) && s.endpoints.is_empty() && s.port == 53)
        .map(|s| {
            format!(
                "{} ({} {}:{})",
                s.port_name_string(),
                s.protocol.as_str(),
                s.cluster_ips.first().map_or("?".into(), |ip| ip.to_string()),
                s.port
            )
        })
        .collect();
    (!dns_empty.is_empty()).then(|| Finding::new(
        Severity::Critical,
        FindingCode::KubeDnsNoEndpoints,
        "kube-dns has no endpoints in this node's rules: every DNS lookup through its ClusterIP is rejected",
        format!("no endpoints: {}", dns_empty.join(", ")),
        "Check the CoreDNS pods (`kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide`) and whether kube-proxy on this node sees them (`ctdiag services --kubectl` compares with the API)",
    ))
}

/// `services-without-endpoints`: other Service ports without endpoints.
fn services_without_endpoints(services: &[Service]) -> Option<Finding> {
    let others: Vec<String> = services
        .iter()
        .filter(|s| !is_dns(s) && s.endpoints.is_empty())
        .map(|s| format!("{} ({} {})", s.port_name_string(), s.protocol.as_str(), s.port))
        .collect();
    (!others.is_empty()).then(|| Finding::new(
        Severity::Info,
        FindingCode::ServicesWithoutEndpoints,
        format!("{} other Service port(s) have no endpoints: connections to them are rejected", others.len()),
        list(&others),
        "Often intended (scaled to zero, no ready pods); `--kubectl` or `--api FILE` tells whether the API agrees",
    ))
}

/// `mixed-proxy-modes`: Services defined by more than one mode's rules.
fn mixed_proxy_modes(per_mode: &BTreeMap<ProxyMode, usize>) -> Option<Finding> {
    (per_mode.len() > 1).then(|| {
        let modes: Vec<String> =
            per_mode.iter().map(|(mode, n)| format!("{} {n}", mode.as_str())).collect();
        Finding::new(
            Severity::Warning,
            FindingCode::MixedProxyModes,
            "Rules of more than one kube-proxy mode define Services on this node: leftovers of a mode switch still DNAT traffic",
            format!("Service ports per mode: {}", modes.join(", ")),
            "Find the mode kube-proxy runs in (its --proxy-mode / config `mode`), then remove the other mode's rules: `kube-proxy --cleanup` run with the old mode's settings, or delete the `KUBE-*` chains / the kube-proxy nftables table / the IPVS virtual servers by hand",
        )
    })
}

/// `rules-skipped`: rules the parsers did not use.
fn rules_skipped(skipped: &[String]) -> Option<Finding> {
    (!skipped.is_empty()).then(|| {
        Finding::new(
            Severity::Info,
            FindingCode::RulesSkipped,
            format!("{} kube-proxy rule(s) were not used (`-v` lists them)", skipped.len()),
            list(skipped),
            "Nothing to do unless a Service you expect is missing: then look at these rules",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Protocol;

    fn svc(ns: &str, name: &str, endpoints: &[&str], mode: ProxyMode) -> Service {
        Service {
            namespace: ns.into(),
            name: name.into(),
            port_name: "dns".into(),
            protocol: Protocol::Udp,
            cluster_ips: vec!["198.19.0.10".parse().unwrap()],
            port: 53,
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            proxy_mode: mode,
        }
    }

    #[test]
    fn each_rule_finding_from_its_cause() {
        let healthy = [svc("kube-system", "kube-dns", &["198.18.2.2:53"], ProxyMode::Iptables)];
        let one_mode = BTreeMap::from([(ProxyMode::Iptables, 1)]);
        assert_eq!(rule_findings(&healthy, &one_mode, &[]), Vec::new());

        let dead = [
            svc("kube-system", "kube-dns", &[], ProxyMode::Iptables),
            svc("default", "idle", &[], ProxyMode::Iptables),
        ];
        let findings = rule_findings(&dead, &one_mode, &["line 3: x".into()]);
        let codes: Vec<(FindingCode, Severity)> =
            findings.iter().map(|f| (f.code, f.severity)).collect();
        assert_eq!(
            codes,
            [
                (FindingCode::KubeDnsNoEndpoints, Severity::Critical),
                (FindingCode::ServicesWithoutEndpoints, Severity::Info),
                (FindingCode::RulesSkipped, Severity::Info),
            ]
        );
        assert!(
            findings[0].evidence.contains("kube-system/kube-dns:dns (udp 198.19.0.10:53)"),
            "{}",
            findings[0].evidence
        );

        let two_modes = BTreeMap::from([(ProxyMode::Iptables, 1), (ProxyMode::Nftables, 3)]);
        let findings = rule_findings(&healthy, &two_modes, &[]);
        assert_eq!(findings[0].code, FindingCode::MixedProxyModes);
        assert_eq!(findings[0].severity, Severity::Warning);
        assert_eq!(findings[0].evidence, "Service ports per mode: iptables 1, nftables 3");
    }

    /// One EndpointSlice as `kubectl get endpointslices -A -o json` prints
    /// it: one port, endpoints `(address, ready)`; a not-ready endpoint is
    /// terminating (a pod going away), as on a rolling restart.
    fn slice(
        ns: &str,
        name: &str,
        port: (&str, u16, &str),
        endpoints: &[(&str, bool)],
    ) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "addressType": "IPv4",
            "metadata": {
                "namespace": ns,
                "name": format!("{name}-x7k2p"),
                "labels": { "kubernetes.io/service-name": name }
            },
            "ports": [{ "name": port.0, "port": port.1, "protocol": port.2 }],
            "endpoints": endpoints.iter().map(|(address, ready)| serde_json::json!({
                "addresses": [address],
                "conditions": { "ready": ready, "serving": ready, "terminating": !ready }
            })).collect::<Vec<_>>()
        })
    }

    /// The findings `build` gives for these rules and, when given, these
    /// slices: the rule findings, then the API cross-check's.
    fn findings_for(
        rules: &[Service],
        per_mode: &BTreeMap<ProxyMode, usize>,
        skipped: &[String],
        slices: Option<Vec<serde_json::Value>>,
    ) -> Vec<Finding> {
        let mut findings = rule_findings(rules, per_mode, skipped);
        if let Some(items) = slices {
            let text = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items });
            let state = api::parse(&text.to_string(), "case").expect("a valid listing");
            findings.extend(api::cross_check(rules, &state, "case").1);
        }
        findings
    }

    /// `default/api` port `http` (TCP 8080) in the rules, with `endpoints`.
    fn api_service(endpoints: &[&str]) -> Service {
        Service {
            port_name: "http".into(),
            protocol: Protocol::Tcp,
            cluster_ips: vec!["198.19.0.20".parse().unwrap()],
            port: 8080,
            ..svc("default", "api", endpoints, ProxyMode::Iptables)
        }
    }

    /// (name, findings, code, severity): each case is a node state that
    /// produces `code` at `severity`, through the real analyses.
    fn cases() -> Vec<(&'static str, Vec<Finding>, FindingCode, Severity)> {
        let one_mode = BTreeMap::from([(ProxyMode::Iptables, 1)]);
        let dns =
            |endpoints: &[&str]| svc("kube-system", "kube-dns", endpoints, ProxyMode::Iptables);
        let dns_slice = |endpoints: &[(&str, bool)]| {
            slice("kube-system", "kube-dns", ("dns", 53, "UDP"), endpoints)
        };
        let api_slice =
            |endpoints: &[(&str, bool)]| slice("default", "api", ("http", 8080, "TCP"), endpoints);
        let healthy = [dns(&["198.18.2.2:53"])];
        vec![
            (
                "kube-dns REJECTed in the rules",
                findings_for(&[dns(&[])], &one_mode, &[], None),
                FindingCode::KubeDnsNoEndpoints,
                Severity::Critical,
            ),
            (
                "a Service scaled to zero",
                findings_for(&[healthy[0].clone(), api_service(&[])], &one_mode, &[], None),
                FindingCode::ServicesWithoutEndpoints,
                Severity::Info,
            ),
            (
                "iptables and nftables rules both define Services",
                findings_for(
                    &healthy,
                    &BTreeMap::from([(ProxyMode::Iptables, 1), (ProxyMode::Nftables, 1)]),
                    &[],
                    None,
                ),
                FindingCode::MixedProxyModes,
                Severity::Warning,
            ),
            (
                "a rule that was not understood",
                findings_for(
                    &healthy,
                    &one_mode,
                    &["-A KUBE-SVC-X -j MARK: no endpoint".into()],
                    None,
                ),
                FindingCode::RulesSkipped,
                Severity::Info,
            ),
            (
                "kube-dns rules keep a terminating CoreDNS pod",
                findings_for(
                    &[dns(&["198.18.2.2:53", "198.18.4.2:53"])],
                    &one_mode,
                    &[],
                    Some(vec![dns_slice(&[("198.18.2.2", true), ("198.18.4.2", false)])]),
                ),
                FindingCode::RulesEndpointNotReady,
                Severity::Critical,
            ),
            (
                "another Service's rules keep a terminating pod",
                findings_for(
                    &[healthy[0].clone(), api_service(&["198.18.5.2:8080", "198.18.5.3:8080"])],
                    &one_mode,
                    &[],
                    Some(vec![
                        dns_slice(&[("198.18.2.2", true)]),
                        api_slice(&[("198.18.5.2", true), ("198.18.5.3", false)]),
                    ]),
                ),
                FindingCode::RulesEndpointNotReady,
                Severity::Warning,
            ),
            (
                "a new CoreDNS pod missing from the kube-dns rules",
                findings_for(
                    &healthy,
                    &one_mode,
                    &[],
                    Some(vec![dns_slice(&[("198.18.2.2", true), ("198.18.3.2", true)])]),
                ),
                FindingCode::ApiEndpointMissingFromRules,
                Severity::Critical,
            ),
            (
                "a new pod missing from another Service's rules",
                findings_for(
                    &[healthy[0].clone(), api_service(&["198.18.5.2:8080"])],
                    &one_mode,
                    &[],
                    Some(vec![
                        dns_slice(&[("198.18.2.2", true)]),
                        api_slice(&[("198.18.5.2", true), ("198.18.5.3", true)]),
                    ]),
                ),
                FindingCode::ApiEndpointMissingFromRules,
                Severity::Warning,
            ),
            (
                "kube-dns REJECTed while the API has CoreDNS ready",
                findings_for(
                    &[dns(&[])],
                    &one_mode,
                    &[],
                    Some(vec![dns_slice(&[("198.18.2.2", true)])]),
                ),
                FindingCode::ServiceRejectedWithEndpoints,
                Severity::Critical,
            ),
            (
                "another Service REJECTed while the API has pods ready",
                findings_for(
                    &[healthy[0].clone(), api_service(&[])],
                    &one_mode,
                    &[],
                    Some(vec![
                        dns_slice(&[("198.18.2.2", true)]),
                        api_slice(&[("198.18.5.2", true)]),
                    ]),
                ),
                FindingCode::ServiceRejectedWithEndpoints,
                Severity::Warning,
            ),
            (
                "a listing with an object that is no EndpointSlice",
                findings_for(
                    &healthy,
                    &one_mode,
                    &[],
                    Some(vec![
                        dns_slice(&[("198.18.2.2", true)]),
                        serde_json::json!({"kind": "EndpointSlice"}),
                    ]),
                ),
                FindingCode::ApiObjectsSkipped,
                Severity::Info,
            ),
        ]
    }

    #[test]
    fn each_case_produces_its_finding_with_its_severity() {
        for (name, findings, code, severity) in cases() {
            let found = findings
                .iter()
                .find(|f| f.code == code)
                .unwrap_or_else(|| panic!("{name}: no {code} in {findings:#?}"));
            assert_eq!(found.severity, severity, "{name}: {found:?}");
            assert!(
                !found.summary.is_empty() && !found.evidence.is_empty() && !found.remedy.is_empty(),
                "{name}: {found:?}"
            );
            for f in &findings {
                assert_eq!(f.code.command(), "services", "{name}: {f:?}");
                assert!(f.code.severities().contains(&f.severity), "{name}: {f:?}");
            }
        }
    }

    #[test]
    fn every_services_code_is_produced_by_a_case() {
        let cases = cases();
        for code in FindingCode::ALL.iter().filter(|c| c.command() == "services") {
            for severity in code.severities() {
                assert!(
                    cases.iter().any(|c| c.2 == *code && c.3 == *severity),
                    "no case in service::report::tests produces {code} as {severity:?}"
                );
            }
        }
    }
}
