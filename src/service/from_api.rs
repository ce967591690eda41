//! One Service's ports, ClusterIPs and ready endpoints from the API alone,
//! for a node without kube-proxy rules (Cilium or Calico eBPF, a kube-proxy
//! that never synced): `compare` and `doctor` probe what the API says.
//!
//! EndpointSlices carry no ClusterIP, so the input is a listing with both
//! kinds, as `kubectl get services,endpointslices -n NAMESPACE -o json`
//! prints it (`-A` works too): the Service object gives `spec.clusterIPs`
//! (else `spec.clusterIP`) and `spec.ports`, the slices (read by
//! [`super::api::parse`]) give the endpoints, ready ones only, as
//! kube-proxy would use them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use super::api::{self, ApiSource, KUBECTL_DEADLINE};
use super::select::{Resolved, ServiceSpec};
use super::{Protocol, ProxyMode, Service};
use crate::error::{Error, Result};
use crate::process::{run_bounded, RunError};

/// The kubectl command whose output this reads, for `namespace`.
pub fn kubectl_command(namespace: &str) -> String {
    format!("kubectl get services,endpointslices -n {namespace} -o json")
}

/// Runs `PROGRAM get services,endpointslices -n NAMESPACE -o json`, bounded.
pub fn kubectl(program: &str, namespace: &str) -> Result<String> {
    let args = ["get", "services,endpointslices", "-n", namespace, "-o", "json"];
    let command = format!("{program} {}", args.join(" "));
    match run_bounded(program, &args, None, KUBECTL_DEADLINE) {
        Ok(out) if out.status.success() => Ok(out.stdout_text()),
        Ok(out) => Err(Error::Command {
            command,
            detail: format!(
                "{}: {}; kubectl needs a kubeconfig that may read Services and EndpointSlices (KUBECONFIG or ~/.kube/config); or save that command's output elsewhere and pass --api FILE",
                out.status,
                out.stderr_text().trim()
            ),
        }),
        Err(RunError::NotFound { .. }) => Err(Error::Usage(format!(
            "--kubectl: `{program}` is not installed here; run `{}` where it is and pass --api FILE",
            kubectl_command(namespace)
        ))),
        Err(e) => Err(Error::Command { command, detail: e.to_string() }),
    }
}

/// The listing's text and where it came from: the file or stdin, or what
/// [`kubectl`] printed for `namespace`.
pub fn read(source: &ApiSource, namespace: &str) -> Result<(String, String)> {
    match source {
        ApiSource::Kubectl => Ok((kubectl("kubectl", namespace)?, kubectl_command(namespace))),
        other => other.read(),
    }
}

/// A Service port as the Service object declares it.
struct DeclaredPort {
    name: String,
    protocol: Protocol,
    port: u16,
}

/// The ClusterIPs and ports of Service `spec` among `items`; `Err` says
/// what is missing.
fn declared(
    items: &[&Value],
    spec: &ServiceSpec,
) -> std::result::Result<(Vec<IpAddr>, Vec<DeclaredPort>), String> {
    let object = items
        .iter()
        .find(|item| {
            item.get("kind").and_then(Value::as_str) == Some("Service")
                && item.pointer("/metadata/namespace").and_then(Value::as_str)
                    == Some(spec.namespace.as_str())
                && item.pointer("/metadata/name").and_then(Value::as_str)
                    == Some(spec.name.as_str())
        })
        .ok_or_else(|| {
            format!(
                "no Service object {}/{} (EndpointSlices carry no ClusterIP)",
                spec.namespace, spec.name
            )
        })?;
    let texts: Vec<&str> = match object.pointer("/spec/clusterIPs").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(Value::as_str).collect(),
        None => object.pointer("/spec/clusterIP").and_then(Value::as_str).into_iter().collect(),
    };
    if texts.contains(&"None") {
        return Err(format!(
            "{}/{} is headless (clusterIP None): no ClusterIP to probe",
            spec.namespace, spec.name
        ));
    }
    let mut ips = Vec::new();
    for text in texts {
        ips.push(
            text.parse::<IpAddr>()
                .map_err(|_| format!("spec.clusterIPs: {text:?} is not an IP address"))?,
        );
    }
    if ips.is_empty() {
        return Err(format!("{}/{} has no spec.clusterIP", spec.namespace, spec.name));
    }
    ips.sort_by_key(|ip| (!ip.is_ipv4(), *ip));
    let mut ports = Vec::new();
    for (i, port) in
        object.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        let protocol = match port.get("protocol").and_then(Value::as_str) {
            None => Protocol::Tcp,
            Some(p) => Protocol::parse(p)
                .ok_or_else(|| format!("spec.ports[{i}].protocol {p:?} is not TCP, UDP or SCTP"))?,
        };
        let number = port
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("spec.ports[{i}] has no port number from 1 to 65535"))?;
        let name = port.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        ports.push(DeclaredPort { name, protocol, port: number });
    }
    Ok((ips, ports))
}

/// The Service ports `spec` names (of `protocols`, every one when empty)
/// from the JSON `text` read from `from`: ClusterIPs from the Service
/// object, ready endpoints from its EndpointSlices. An error (usage, exit
/// 2) when the text is not such a listing or lacks the Service object.
pub fn resolve(
    text: &str,
    from: &str,
    spec: &ServiceSpec,
    protocols: &[Protocol],
) -> Result<Resolved> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        Error::Usage(format!(
            "{from}: not JSON ({e}); give the output of `{}`",
            kubectl_command(&spec.namespace)
        ))
    })?;
    let items: Vec<&Value> = match doc.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![&doc],
    };
    let (cluster_ips, ports) = declared(&items, spec).map_err(|why| {
        Error::Usage(format!(
            "{from}: {why}; give the output of `{}`",
            kubectl_command(&spec.namespace)
        ))
    })?;
    let slices = api::parse(text, from)?;
    let mut services = Vec::new();
    for port in ports {
        if !protocols.is_empty() && !protocols.contains(&port.protocol) {
            continue;
        }
        let key = (spec.namespace.clone(), spec.name.clone(), port.name.clone(), port.protocol);
        let mut endpoints: Vec<SocketAddr> = slices
            .ports
            .get(&key)
            .map(|list| list.iter().filter(|e| e.ready).map(|e| e.address).collect())
            .unwrap_or_default();
        endpoints.sort();
        endpoints.dedup();
        let service = Service {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            port_name: port.name,
            protocol: port.protocol,
            cluster_ips: cluster_ips.clone(),
            port: port.port,
            endpoints,
            // No rules were read: the Service is given, here by the API.
            proxy_mode: ProxyMode::Manual,
        };
        if spec.matches(&service) {
            services.push(service);
        }
    }
    // The Service objects themselves are not slices: not worth a note.
    let notes: Vec<String> =
        slices.skipped.into_iter().filter(|s| !s.contains("is not EndpointSlice")).collect();
    Ok(Resolved {
        services,
        source: format!("the API ({from}: Service {spec} and its EndpointSlices)"),
        skipped: Vec::new(),
        notes,
        per_mode: BTreeMap::new(),
        ipvs_kube_dns: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing as `kubectl get services,endpointslices -n kube-system -o
    /// json` prints it (trimmed to the fields read): kube-dns with its two
    /// ports, one ready and one unready endpoint.
    fn listing(cluster_ip: Value) -> String {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": { "name": "kube-dns", "namespace": "kube-system" },
                    "spec": {
                        "clusterIP": cluster_ip,
                        "ports": [
                            { "name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53 },
                            { "name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53 }
                        ]
                    }
                },
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "addressType": "IPv4",
                    "metadata": {
                        "name": "kube-dns-x", "namespace": "kube-system",
                        "labels": { "kubernetes.io/service-name": "kube-dns" }
                    },
                    "ports": [
                        { "name": "dns", "port": 53, "protocol": "UDP" },
                        { "name": "dns-tcp", "port": 53, "protocol": "TCP" }
                    ],
                    "endpoints": [
                        { "addresses": ["198.18.3.2"], "conditions": { "ready": true } },
                        { "addresses": ["198.18.2.2"] },
                        { "addresses": ["198.18.4.2"], "conditions": { "ready": false } }
                    ]
                }
            ]
        })
        .to_string()
    }

    #[test]
    fn cluster_ip_from_the_service_and_ready_endpoints_from_its_slices() {
        let text = listing(Value::from("198.19.0.10"));
        let resolved = resolve(&text, "case", &ServiceSpec::kube_dns(), &[Protocol::Udp]).unwrap();
        assert_eq!(resolved.services.len(), 1, "{:?}", resolved.services);
        let dns = &resolved.services[0];
        assert_eq!(dns.port_name_string(), "kube-system/kube-dns:dns");
        assert_eq!(dns.cluster_ips, vec!["198.19.0.10".parse::<IpAddr>().unwrap()]);
        let endpoints: Vec<String> = dns.endpoints.iter().map(ToString::to_string).collect();
        assert_eq!(endpoints, ["198.18.2.2:53", "198.18.3.2:53"]);
        assert!(resolved.notes.is_empty(), "{:?}", resolved.notes);
        let both = resolve(&text, "case", &ServiceSpec::kube_dns(), &[]).unwrap();
        assert_eq!(both.services.len(), 2);
    }

    #[test]
    fn what_is_missing_is_a_usage_error_naming_the_command() {
        let spec = ServiceSpec::kube_dns();
        let slices_only = serde_json::json!({ "kind": "List", "items": [] }).to_string();
        for (text, says) in [
            ("not json".to_string(), "not JSON"),
            (slices_only, "no Service object kube-system/kube-dns"),
            (listing(Value::from("None")), "headless"),
            (listing(Value::from("nope")), "not an IP address"),
        ] {
            match resolve(&text, "case", &spec, &[]) {
                Err(Error::Usage(message)) => {
                    assert!(message.contains(says), "{message}");
                    assert!(message.contains("kubectl get services,endpointslices"), "{message}");
                }
                other => panic!("{says}: {other:?}"),
            }
        }
    }

    #[test]
    fn kubectl_missing_or_failing_is_said() {
        assert!(matches!(kubectl("ctdiag-no-such-kubectl", "kube-system"), Err(Error::Usage(_))));
        assert!(matches!(kubectl("false", "kube-system"), Err(Error::Command { .. })));
    }
}
