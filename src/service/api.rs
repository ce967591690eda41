//! The API's view of Services, from `kubectl get endpointslices -A -o json`
//! (discovery.k8s.io/v1), and its cross-check against what the node's
//! rules say.
//!
//! Read as kubectl prints it: a `List` whose `items` are EndpointSlices,
//! each with `metadata.namespace`, the label `kubernetes.io/service-name`,
//! `addressType` (IPv4, IPv6, FQDN), `ports[]` (`name`, `port`,
//! `protocol`) and `endpoints[]` (`addresses`, `conditions.ready`,
//! `serving`, `terminating`). A missing `ready` means ready (the API's
//! documented reading of an unknown state). Objects that do not have that
//! shape are skipped and named, never fatal; slices kube-proxy itself
//! ignores (headless Services, another service proxy, FQDN) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{Protocol, ProxyMode, Service, KUBE_DNS};
use crate::error::{Error, Result};
use crate::findings::{Finding, FindingCode, Severity};
use crate::process::{run_bounded, RunError};

/// How long `kubectl get endpointslices` may take. Why 30 s: an API server
/// far away or under load answers a cluster-wide list in seconds; longer
/// than this, the node's on-call engineer is better off with `--api FILE`.
pub const KUBECTL_DEADLINE: Duration = Duration::from_secs(30);

/// One endpoint address of a Service port as the API has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiEndpoint {
    /// `ip:port` (the port is the target port).
    pub address: SocketAddr,
    /// `conditions.ready` (missing counts as true).
    pub ready: bool,
    /// `conditions.serving` (missing: same as ready).
    pub serving: bool,
    /// `conditions.terminating` (missing: false).
    pub terminating: bool,
}

/// What identifies a Service port: namespace, name, port name, protocol.
type PortKey = (String, String, String, Protocol);

/// The Service ports the API has endpoints for.
#[derive(Debug, Clone, Default)]
pub struct ApiState {
    /// Per Service port, its endpoints from every slice.
    pub ports: BTreeMap<PortKey, Vec<ApiEndpoint>>,
    /// Objects that were skipped, each named, and why.
    pub skipped: Vec<String>,
    /// How many EndpointSlices were read.
    pub slices: usize,
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_str()
}

/// Parses the JSON kubectl prints for `get endpointslices -A -o json` (a
/// `List`), or a single EndpointSlice. An error only when the text is not
/// JSON or has neither `items` nor the shape of a slice.
pub fn parse(text: &str, from: &str) -> Result<ApiState> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        Error::Usage(format!(
            "{from}: not JSON ({e}); give the output of `kubectl get endpointslices -A -o json`"
        ))
    })?;
    let items: Vec<&Value> = match doc.get("items") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Null) => Vec::new(),
        _ if doc.get("kind").and_then(Value::as_str) == Some("EndpointSlice") => vec![&doc],
        _ => {
            return Err(Error::Usage(format!(
                "{from}: no `items` list of EndpointSlices; give the output of `kubectl get endpointslices -A -o json`"
            )))
        }
    };
    let mut state = ApiState::default();
    for (index, item) in items.iter().enumerate() {
        let label =
            match (str_at(item, &["metadata", "namespace"]), str_at(item, &["metadata", "name"])) {
                (Some(ns), Some(name)) => format!("EndpointSlice {ns}/{name}"),
                _ => format!("items[{index}]"),
            };
        match read_slice(item) {
            Ok(Some((service, ports))) => {
                state.slices += 1;
                for (key, endpoints) in ports {
                    let key = (service.0.clone(), service.1.clone(), key.0, key.1);
                    state.ports.entry(key).or_default().extend(endpoints);
                }
            }
            Ok(None) => state.slices += 1,
            Err(why) => state.skipped.push(format!("{label}: {why}")),
        }
    }
    for endpoints in state.ports.values_mut() {
        endpoints.sort_by_key(|e| e.address);
        endpoints.dedup_by(|a, b| a.address == b.address);
    }
    Ok(state)
}

/// A slice's Service and its ports' endpoints; `None` for a slice
/// kube-proxy ignores.
#[allow(clippy::type_complexity)]
fn read_slice(
    item: &Value,
) -> std::result::Result<
    Option<((String, String), Vec<((String, Protocol), Vec<ApiEndpoint>)>)>,
    String,
> {
    if item.get("kind").and_then(Value::as_str).is_some_and(|k| k != "EndpointSlice") {
        return Err(format!("kind {:?} is not EndpointSlice", item["kind"]));
    }
    let namespace = str_at(item, &["metadata", "namespace"]).ok_or("no metadata.namespace")?;
    let labels = item.get("metadata").and_then(|m| m.get("labels"));
    let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    let service =
        label("kubernetes.io/service-name").ok_or("no kubernetes.io/service-name label")?;
    // kube-proxy leaves these to others: no rules are expected for them.
    if labels.and_then(|l| l.get("service.kubernetes.io/headless")).is_some()
        || label("service.kubernetes.io/service-proxy-name").is_some()
    {
        return Ok(None);
    }
    let family = item.get("addressType").and_then(Value::as_str).ok_or("no addressType")?;
    match family {
        "IPv4" | "IPv6" => {}
        "FQDN" => return Ok(None),
        other => return Err(format!("addressType {other:?} is not IPv4, IPv6 or FQDN")),
    }
    let mut ports = Vec::new();
    let port_list = match item.get("ports") {
        Some(Value::Array(list)) => list.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err("ports is not a list".into()),
    };
    let endpoint_list = match item.get("endpoints") {
        Some(Value::Array(list)) => list.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err("endpoints is not a list".into()),
    };
    let mut endpoints_base = Vec::new();
    for (i, endpoint) in endpoint_list.iter().enumerate() {
        let addresses = endpoint
            .get("addresses")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("endpoints[{i}] has no addresses list"))?;
        let condition = |name: &str| {
            endpoint.get("conditions").and_then(|c| c.get(name)).and_then(Value::as_bool)
        };
        let ready = condition("ready").unwrap_or(true);
        let serving = condition("serving").unwrap_or(ready);
        let terminating = condition("terminating").unwrap_or(false);
        for address in addresses {
            let ip: IpAddr = address
                .as_str()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| format!("endpoints[{i}]: {address} is not an IP address"))?;
            if ip.is_ipv4() != (family == "IPv4") {
                return Err(format!("endpoints[{i}]: {ip} is not {family}"));
            }
            endpoints_base.push((ip, ready, serving, terminating));
        }
    }
    for (i, port) in port_list.iter().enumerate() {
        let name = match port.get("name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(format!("ports[{i}].name {other} is not a string")),
        };
        let protocol = match port.get("protocol") {
            // The API's default.
            None | Some(Value::Null) => Protocol::Tcp,
            Some(p) => p
                .as_str()
                .and_then(Protocol::parse)
                .ok_or_else(|| format!("ports[{i}].protocol {p} is not TCP, UDP or SCTP"))?,
        };
        let number = port
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("ports[{i}] has no port number from 1 to 65535"))?;
        let endpoints = endpoints_base
            .iter()
            .map(|(ip, ready, serving, terminating)| ApiEndpoint {
                address: SocketAddr::new(*ip, number),
                ready: *ready,
                serving: *serving,
                terminating: *terminating,
            })
            .collect();
        ports.push(((name, protocol), endpoints));
    }
    Ok(Some(((namespace.to_string(), service.to_string()), ports)))
}

/// Where the API's EndpointSlices came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiSource {
    /// `--api FILE`.
    File(std::path::PathBuf),
    /// `--api -`.
    Stdin,
    /// `--kubectl`: run kubectl.
    Kubectl,
}

impl ApiSource {
    /// Reads the JSON text, and says where it came from.
    pub fn read(&self) -> Result<(String, String)> {
        match self {
            ApiSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| Error::ReadFile { path: path.clone(), source })?;
                Ok((text, path.display().to_string()))
            }
            ApiSource::Stdin => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map_err(|e| Error::Usage(format!("--api -: cannot read stdin: {e}")))?;
                Ok((text, "stdin".into()))
            }
            ApiSource::Kubectl => {
                Ok((kubectl("kubectl")?, "kubectl get endpointslices -A -o json".into()))
            }
        }
    }
}

/// Runs `PROGRAM get endpointslices -A -o json`, bounded.
pub fn kubectl(program: &str) -> Result<String> {
    let args = ["get", "endpointslices", "-A", "-o", "json"];
    match run_bounded(program, &args, None, KUBECTL_DEADLINE) {
        Ok(out) if out.status.success() => Ok(out.stdout_text()),
        Ok(out) => Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: format!(
                "{}: {}; kubectl needs a kubeconfig that may list EndpointSlices (KUBECONFIG or ~/.kube/config); or save that command's output elsewhere and pass --api FILE",
                out.status,
                out.stderr_text()
            ),
        }),
        Err(RunError::NotFound { .. }) => Err(Error::Usage(format!(
            "--kubectl: `{program}` is not installed here; run `kubectl get endpointslices -A -o json > slices.json` where it is and pass --api slices.json"
        ))),
        Err(e) => Err(Error::Command { command: format!("{program} {}", args.join(" ")), detail: e.to_string() }),
    }
}

/// What the cross-check compared, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApiCheck {
    /// Where the EndpointSlices came from.
    pub from: String,
    /// EndpointSlices read.
    pub slices: usize,
    /// Service ports found in both the rules and the API.
    pub compared: usize,
    /// Objects skipped, each named.
    pub skipped: Vec<String>,
}

/// How many items a finding's evidence names before "and N more".
const EVIDENCE_ITEMS: usize = 12;

fn list(items: &[String]) -> String {
    let mut text = items.iter().take(EVIDENCE_ITEMS).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > EVIDENCE_ITEMS {
        text.push_str(&format!("; and {} more", items.len() - EVIDENCE_ITEMS));
    }
    text
}

fn is_kube_dns(key: &PortKey) -> bool {
    key.0 == KUBE_DNS.0 && key.1 == KUBE_DNS.1
}

fn state_words(e: &ApiEndpoint) -> String {
    match (e.ready, e.serving, e.terminating) {
        (false, _, true) => "terminating".into(),
        (false, true, false) => "serving, not ready".into(),
        _ => "not ready".into(),
    }
}

/// What the rules and the API disagree on, as lines naming each case, and
/// whether kube-dns is among them (which makes the finding critical).
#[derive(Default)]
struct Disagreements {
    /// Endpoints in the rules that the API has not ready (or not at all).
    not_ready: Vec<String>,
    /// Ready endpoints of the API that the rules lack.
    missing: Vec<String>,
    /// Service ports the rules REJECT while the API has ready endpoints.
    rejected: Vec<String>,
    /// kube-dns among `not_ready`, `missing`, `rejected`.
    dns_hit: [bool; 3],
}

/// The API's key for a Service port of the rules: the same key, or for
/// IPVS (kube-dns, no port name) the API's one port of that protocol.
fn api_key_of(key: &PortKey, port_name: &str, api: &ApiState) -> Option<PortKey> {
    if api.ports.contains_key(key) {
        return Some(key.clone());
    }
    if !port_name.is_empty() {
        return None;
    }
    let candidates: Vec<&PortKey> =
        api.ports.keys().filter(|k| k.0 == key.0 && k.1 == key.1 && k.3 == key.3).collect();
    match candidates.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

/// One Service port of the rules against the API's endpoints of it.
fn compare_service(service: &Service, api_endpoints: &[ApiEndpoint], found: &mut Disagreements) {
    let ready: Vec<&ApiEndpoint> = api_endpoints.iter().filter(|e| e.ready).collect();
    let dns = service.namespace == KUBE_DNS.0 && service.name == KUBE_DNS.1;
    let name = service.port_name_string();
    for endpoint in &service.endpoints {
        match api_endpoints.iter().find(|e| e.address == *endpoint) {
            Some(e) if e.ready => {}
            // kube-proxy falls back to serving terminating endpoints
            // when none is ready: that is by design.
            Some(e) if e.serving && e.terminating && ready.is_empty() => {}
            Some(e) => {
                found.not_ready.push(format!("{name} -> {endpoint} ({})", state_words(e)));
                found.dns_hit[0] |= dns;
            }
            None => {
                found
                    .not_ready
                    .push(format!("{name} -> {endpoint} (not in the API: the pod is gone)"));
                found.dns_hit[0] |= dns;
            }
        }
    }
    if service.endpoints.is_empty() && !ready.is_empty() {
        found.rejected.push(format!(
            "{name}: {} ready in the API ({})",
            ready.len(),
            ready.iter().map(|e| e.address.to_string()).collect::<Vec<_>>().join(", ")
        ));
        found.dns_hit[2] |= dns;
    } else {
        for e in ready.iter().filter(|e| !service.endpoints.contains(&e.address)) {
            found.missing.push(format!("{name} -> {}", e.address));
            found.dns_hit[1] |= dns;
        }
    }
}

/// Ready endpoints of Service ports the rules lack altogether.
fn ports_without_rules(api: &ApiState, in_rules: &BTreeSet<PortKey>, found: &mut Disagreements) {
    for (key, endpoints) in &api.ports {
        if in_rules.contains(key) || !endpoints.iter().any(|e| e.ready) {
            continue;
        }
        let name = if key.2.is_empty() {
            format!("{}/{}", key.0, key.1)
        } else {
            format!("{}/{}:{}", key.0, key.1, key.2)
        };
        found.missing.push(format!(
            "{name} ({}): no rules at all, {} ready in the API",
            key.3.as_str(),
            endpoints.iter().filter(|e| e.ready).count()
        ));
        found.dns_hit[1] |= is_kube_dns(key);
    }
}

/// Critical when kube-dns is concerned, else a warning.
fn severity(dns: bool) -> Severity {
    if dns {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// `rules-endpoint-not-ready`.
fn rules_endpoint_not_ready(found: &Disagreements) -> Option<Finding> {
    (!found.not_ready.is_empty()).then(|| Finding::new(
        severity(found.dns_hit[0]),
        FindingCode::RulesEndpointNotReady,
        format!("{} endpoint(s) in this node's rules are not ready in the API: queries sent there go to a dead or terminating pod", found.not_ready.len()),
        list(&found.not_ready),
        "kube-proxy on this node lags behind the API: check its logs and sync (`kubectl -n kube-system logs` of the node's kube-proxy pod, its sync_proxy_rules metrics); restarting it rewrites the rules; then look for stale conntrack entries (`ctdiag stale`)",
    ))
}

/// `api-endpoint-missing-from-rules`.
fn api_endpoint_missing_from_rules(found: &Disagreements) -> Option<Finding> {
    (!found.missing.is_empty()).then(|| Finding::new(
        severity(found.dns_hit[1]),
        FindingCode::ApiEndpointMissingFromRules,
        format!("{} endpoint(s) ready in the API are missing from this node's rules: kube-proxy is not syncing", found.missing.len()),
        list(&found.missing),
        "Check that kube-proxy runs on this node and what it logs (a Service with internalTrafficPolicy: Local only lists this node's endpoints: those are expected to be missing)",
    ))
}

/// `service-rejected-with-endpoints`.
fn service_rejected_with_endpoints(found: &Disagreements) -> Option<Finding> {
    (!found.rejected.is_empty()).then(|| Finding::new(
        severity(found.dns_hit[2]),
        FindingCode::ServiceRejectedWithEndpoints,
        format!("{} Service port(s) have ready endpoints in the API but this node's rules REJECT them as having none", found.rejected.len()),
        list(&found.rejected),
        "kube-proxy on this node has not seen the endpoints: check its logs and its connection to the API server; restart it",
    ))
}

/// `api-objects-skipped`.
fn api_objects_skipped(api: &ApiState) -> Option<Finding> {
    (!api.skipped.is_empty()).then(|| {
        Finding::new(
            Severity::Info,
            FindingCode::ApiObjectsSkipped,
            format!(
                "{} object(s) of the API listing could not be read and were skipped",
                api.skipped.len()
            ),
            list(&api.skipped),
            "Give the unmodified output of `kubectl get endpointslices -A -o json`",
        )
    })
}

/// Compares the rules' Services with the API's EndpointSlices. Only
/// Service ports with a name in the rules are compared (IPVS virtual
/// servers other than kube-dns have none).
pub fn cross_check(services: &[Service], api: &ApiState, from: &str) -> (ApiCheck, Vec<Finding>) {
    let mut check = ApiCheck {
        from: from.into(),
        slices: api.slices,
        skipped: api.skipped.clone(),
        ..ApiCheck::default()
    };
    let mut found = Disagreements::default();
    let mut in_rules: BTreeSet<PortKey> = BTreeSet::new();
    for service in services.iter().filter(|s| !s.name.is_empty()) {
        let key = (
            service.namespace.clone(),
            service.name.clone(),
            service.port_name.clone(),
            service.protocol,
        );
        let Some(api_key) = api_key_of(&key, &service.port_name, api) else { continue };
        check.compared += 1;
        compare_service(service, &api.ports[&api_key], &mut found);
        in_rules.insert(api_key);
    }
    // Only when a mode with names was read: IPVS cannot tell which is which.
    if services.iter().any(|s| matches!(s.proxy_mode, ProxyMode::Iptables | ProxyMode::Nftables)) {
        ports_without_rules(api, &in_rules, &mut found);
    }
    let findings = [
        rules_endpoint_not_ready(&found),
        api_endpoint_missing_from_rules(&found),
        service_rejected_with_endpoints(&found),
        api_objects_skipped(api),
    ];
    (check, findings.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLICES: &str = include_str!("../../tests/fixtures/api/endpointslices.json");

    fn svc(
        ns: &str,
        name: &str,
        port_name: &str,
        protocol: Protocol,
        endpoints: &[&str],
    ) -> Service {
        Service {
            namespace: ns.into(),
            name: name.into(),
            port_name: port_name.into(),
            protocol,
            cluster_ips: vec!["198.19.0.10".parse().unwrap()],
            port: 53,
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            proxy_mode: ProxyMode::Iptables,
        }
    }

    fn key(ns: &str, name: &str, port: &str, p: Protocol) -> PortKey {
        (ns.into(), name.into(), port.into(), p)
    }

    #[test]
    fn reads_kubectl_output_and_skips_what_kube_proxy_skips() {
        let state = parse(SLICES, "fixture").unwrap();
        let dns = &state.ports[&key("kube-system", "kube-dns", "dns", Protocol::Udp)];
        assert_eq!(dns.len(), 3);
        let terminating = dns.iter().find(|e| e.address.to_string() == "198.18.4.2:53").unwrap();
        assert!(!terminating.ready && terminating.terminating);
        assert!(state.ports.contains_key(&key(
            "kube-system",
            "kube-dns",
            "metrics",
            Protocol::Tcp
        )));
        // Unnamed port, protocol defaulted to TCP, IPv6 slice.
        assert_eq!(state.ports[&key("default", "web", "", Protocol::Tcp)].len(), 2);
        // Headless, other proxy and FQDN slices are not Services kube-proxy
        // programs.
        assert!(!state
            .ports
            .keys()
            .any(|k| k.1 == "headless" || k.1 == "other-proxy" || k.1 == "external"));
        assert_eq!(state.skipped.len(), 3, "{:#?}", state.skipped);
        assert!(
            state.skipped.iter().any(|s| s.starts_with("EndpointSlice default/broken-port-")),
            "{:#?}",
            state.skipped
        );
        assert!(state.skipped.iter().any(|s| s.starts_with("items[")), "{:#?}", state.skipped);
    }

    #[test]
    fn bad_documents_are_usage_errors() {
        for bad in ["", "{", "[]", "{\"kind\":\"List\"}", "42"] {
            assert!(matches!(parse(bad, "x"), Err(Error::Usage(_))), "{bad:?}");
        }
        assert_eq!(parse("{\"items\":null}", "x").unwrap().slices, 0);
    }

    #[test]
    fn the_three_disagreements() {
        let state = parse(SLICES, "fixture").unwrap();
        let rules = [
            // 198.18.4.2 is terminating in the API; 198.18.3.2 ready there
            // but not in the rules.
            svc(
                "kube-system",
                "kube-dns",
                "dns",
                Protocol::Udp,
                &["198.18.2.2:53", "198.18.4.2:53"],
            ),
            // REJECTed here, two ready endpoints in the API.
            svc("default", "web", "", Protocol::Tcp, &[]),
        ];
        let (check, findings) = cross_check(&rules, &state, "fixture");
        assert_eq!(check.compared, 2);
        let find = |code| {
            findings
                .iter()
                .find(|f| f.code == code)
                .unwrap_or_else(|| panic!("{code:?} in {findings:#?}"))
        };
        let not_ready = find(FindingCode::RulesEndpointNotReady);
        assert_eq!(not_ready.severity, Severity::Critical);
        assert!(
            not_ready.evidence.contains("198.18.4.2:53 (terminating)"),
            "{}",
            not_ready.evidence
        );
        let missing = find(FindingCode::ApiEndpointMissingFromRules);
        assert!(
            missing.evidence.contains("kube-system/kube-dns:dns -> 198.18.3.2:53"),
            "{}",
            missing.evidence
        );
        // The metrics and dns-tcp ports have no rules at all here.
        assert!(
            missing.evidence.contains("kube-system/kube-dns:metrics (tcp): no rules at all"),
            "{}",
            missing.evidence
        );
        let rejected = find(FindingCode::ServiceRejectedWithEndpoints);
        assert_eq!(rejected.severity, Severity::Warning);
        assert!(rejected.evidence.starts_with("default/web: 2 ready"), "{}", rejected.evidence);
        assert_eq!(find(FindingCode::ApiObjectsSkipped).severity, Severity::Info);
    }

    #[test]
    fn agreement_is_silent_and_terminating_fallback_is_by_design() {
        let text = r#"{"kind":"List","items":[{"kind":"EndpointSlice","addressType":"IPv4",
            "metadata":{"namespace":"kube-system","name":"kube-dns-a","labels":{"kubernetes.io/service-name":"kube-dns"}},
            "ports":[{"name":"dns","port":53,"protocol":"UDP"}],
            "endpoints":[{"addresses":["198.18.2.2"],"conditions":{"ready":false,"serving":true,"terminating":true}}]}]}"#;
        let state = parse(text, "x").unwrap();
        let rules = [svc("kube-system", "kube-dns", "dns", Protocol::Udp, &["198.18.2.2:53"])];
        let (check, findings) = cross_check(&rules, &state, "x");
        assert_eq!((check.compared, findings.len()), (1, 0), "{findings:#?}");
        // The same, IPVS style: kube-dns named, no port name.
        let mut ipvs = rules[0].clone();
        ipvs.port_name.clear();
        ipvs.proxy_mode = ProxyMode::Ipvs;
        let (check, findings) = cross_check(&[ipvs], &state, "x");
        assert_eq!((check.compared, findings.len()), (1, 0), "{findings:#?}");
    }

    #[test]
    fn kubectl_missing_or_failing_is_said() {
        let missing = kubectl("ctdiag-no-such-kubectl").unwrap_err();
        assert!(
            missing.to_string().contains("is not installed")
                && missing.to_string().contains("--api"),
            "{missing}"
        );
        let failing = kubectl("false").unwrap_err();
        assert!(failing.to_string().contains("kubeconfig"), "{failing}");
    }
}
