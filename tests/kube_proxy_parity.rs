//! kube-proxy parity: the entries `ctdiag stale` deletes are the ones
//! kube-proxy's own conntrack reconciler deletes for the same Service and
//! endpoints, on the cases of its unit tests.
//!
//! The reconciler is `CleanStaleEntries` in kubernetes
//! `pkg/proxy/conntrack/cleanup.go` (1.32+), in its newest form
//! (kubernetes#139629: a Service without serving endpoints is cleaned
//! too, every entry to it). Its unit tests are in `cleanup_test.go`; each
//! case below names the test it comes from. What kube-proxy deletes is
//! written here from those tests' expectations (`entriesAfterCleanup`,
//! the counts they check), never from ctdiag; what ctdiag deletes is what
//! `conntrack -L` no longer lists after `ctdiag stale --flush --yes`.
//!
//! Addresses of the Go tests mapped onto the lab ranges:
//!
//! | cleanup_test.go | here |
//! |---|---|
//! | ClusterIP 172.30.1.1 | 198.19.1.1 |
//! | ExternalIP 192.168.99.100 | 198.19.99.100 |
//! | LoadBalancer IP 1.2.3.4 | 198.19.4.4 |
//! | serving endpoint 10.240.0.4 | 198.18.240.4 |
//! | non-serving endpoint 10.240.1.5 | 198.18.241.5 |
//! | deleted endpoint 10.240.2.6 | 198.18.242.6 |
//! | NodePort 32000 (any node address) | 198.18.0.1:32000 |
//!
//! The Go tests' flows have no client address or port; each flow here has
//! the client 198.18.100.1 and a port of its own.

mod common;
mod stale_common;

use std::collections::BTreeSet;

use common::{json, stderr};
use ctdiag::lab::rules::ServiceRules;
use stale_common::{stale, Flow, Scratch};

const CLUSTER_IP: &str = "198.19.1.1";
const EXTERNAL_IP: &str = "198.19.99.100";
const LOAD_BALANCER_IP: &str = "198.19.4.4";
const SERVING: &str = "198.18.240.4";
const NON_SERVING: &str = "198.18.241.5";
const DELETED: &str = "198.18.242.6";
const NODE: &str = "198.18.0.1";
const CLIENT: &str = "198.18.100.1";
const SERVICE_PORT: u16 = 8000;
const NON_SERVICE_PORT: u16 = 3000;
const NODE_PORT: u16 = 32000;

fn ready() -> bool {
    common::require_root()
        && common::require_tool("conntrack", "conntrack")
        && common::require_tool("iptables-restore", "iptables")
}

/// Client ports, one per flow.
struct Ports(u16);

impl Ports {
    fn next(&mut self) -> u16 {
        self.0 += 1;
        self.0
    }
}

/// What `conntrack -L` no longer lists.
fn gone(before: &BTreeSet<Flow>, after: &BTreeSet<Flow>) -> BTreeSet<Flow> {
    before.difference(after).cloned().collect()
}

/// `ctdiag stale --flush --yes -o json` for one frontend address of the
/// Service, with the endpoints kube-proxy's rules DNAT to (the serving
/// ones); returns the report.
fn flush_manual(scratch: &Scratch, frontend: &str, endpoints: &str) -> serde_json::Value {
    let cluster = format!("{frontend}:{SERVICE_PORT}");
    let out = stale(&[
        "--netns",
        &scratch.0,
        "--cluster-ip",
        &cluster,
        "--endpoints",
        endpoints,
        "--flush",
        "--yes",
        "-o",
        "json",
    ]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    json(&out)
}

/// `TestCleanStaleEntries`: one Service (ClusterIP, an ExternalIP, a
/// LoadBalancer IP; TCP, UDP and SCTP ports 8000, UDP NodePort 32000),
/// a serving and a non-serving endpoint, and flows to every frontend and
/// port from three DNAT targets (serving, non-serving, deleted), plus six
/// flows never DNATed.
#[test]
fn clean_stale_entries_cases() {
    if !ready() {
        return;
    }
    let scratch = Scratch::new("kpparity");
    let mut ports = Ports(20000);
    let mut kube_proxy_deletes = BTreeSet::new();
    let mut node_port_flows = BTreeSet::new();
    for dnat in [SERVING, NON_SERVING, DELETED] {
        for proto in ["tcp", "udp", "sctp"] {
            for frontend in [CLUSTER_IP, LOAD_BALANCER_IP, EXTERNAL_IP] {
                for port in [SERVICE_PORT, NON_SERVICE_PORT] {
                    let mut flow = Flow::udp(CLIENT, ports.next(), frontend, port, dnat, port);
                    flow.proto = proto.into();
                    scratch.insert(&flow);
                    // cleanup_test.go: "we do not expect UDP entries with
                    // destination port `testServicePort` and DNATed
                    // destination address not an address of serving
                    // endpoint to be present after cleanup".
                    if proto == "udp" && port == SERVICE_PORT && dnat != SERVING {
                        kube_proxy_deletes.insert(flow);
                    }
                }
            }
            // The NodePort flow: "we do not expect UDP entries with
            // DNATed destination address not an address of serving
            // endpoint to be present after cleanup".
            let mut flow = Flow::udp(CLIENT, ports.next(), NODE, NODE_PORT, dnat, SERVICE_PORT);
            flow.proto = proto.into();
            scratch.insert(&flow);
            if proto == "udp" && dnat != SERVING {
                kube_proxy_deletes.insert(flow.clone());
                node_port_flows.insert(flow);
            }
        }
    }
    // "add 6 non-DNATed mock entries which should be cleared up by
    // reconciler": --orig-dst and --reply-src are the same; "we do not
    // expect entries with destination port `testServicePort` to be present
    // after cleanup".
    for frontend in [CLUSTER_IP, LOAD_BALANCER_IP, EXTERNAL_IP] {
        for port in [SERVICE_PORT, NON_SERVICE_PORT] {
            let flow = Flow::udp(CLIENT, ports.next(), frontend, port, frontend, port);
            scratch.insert(&flow);
            if port == SERVICE_PORT {
                kube_proxy_deletes.insert(flow);
            }
        }
    }
    let before = scratch.flows();
    assert_eq!(before.len(), 63 + 6, "the 63 flows and 6 non-DNATed ones of the Go test");

    // ctdiag per frontend address of the Service: the ClusterIP, then the
    // ExternalIP and the LoadBalancer IP given as ClusterIPs (kube-proxy
    // treats all three alike; ctdiag reads ClusterIPs from the rules, and
    // takes any address given with --cluster-ip).
    let endpoints = format!("{SERVING}:{SERVICE_PORT}");
    let mut reports = Vec::new();
    for frontend in [CLUSTER_IP, EXTERNAL_IP, LOAD_BALANCER_IP] {
        reports.push(flush_manual(&scratch, frontend, &endpoints));
    }
    let after = scratch.flows();
    let ctdiag_deletes = gone(&before, &after);

    // Parity: everything kube-proxy deletes but the NodePort flows.
    let expected: BTreeSet<Flow> =
        kube_proxy_deletes.difference(&node_port_flows).cloned().collect();
    assert_eq!(ctdiag_deletes, expected, "ctdiag's deletes vs kube-proxy's (NodePort aside)");
    // The deliberate difference: ctdiag works on ClusterIP:port entries
    // only; NodePort entries (any destination address, the NodePort) are
    // left to kube-proxy (README: "ctdiag stale and kube-proxy").
    assert_eq!(node_port_flows.len(), 2);
    assert!(node_port_flows.is_subset(&after), "NodePort flows are not ctdiag's to delete");
    // Each run said what it did, and the kernel agrees.
    let deleted: u64 = reports.iter().map(|r| r["flush"]["deleted"].as_u64().unwrap_or(0)).sum();
    assert_eq!(deleted as usize, ctdiag_deletes.len());
    for report in &reports {
        assert_eq!(report["flush"]["remaining"], 0, "{report:#}");
        // Per frontend: the non-serving and the deleted endpoint, and the
        // never-translated flow.
        assert_eq!(report["stale_count"], 3, "{report:#}");
    }
}

/// `TestPerformanceCleanStaleEntries` (a million flows there, a few
/// here): flows to the ExternalIP from the serving endpoint (kept), from
/// the deleted one (deleted), and to other ports from the deleted one
/// (kept: only the Service port is the Service's).
#[test]
fn performance_case_flows() {
    if !ready() {
        return;
    }
    let scratch = Scratch::new("kpperf");
    let valid = Flow::udp(CLIENT, 21001, EXTERNAL_IP, SERVICE_PORT, SERVING, SERVICE_PORT);
    let stale_flow = Flow::udp(CLIENT, 21002, EXTERNAL_IP, SERVICE_PORT, DELETED, SERVICE_PORT);
    scratch.insert(&valid);
    scratch.insert(&stale_flow);
    // "1 M to the Service IP with random ports": deleted only when the
    // port is the Service port (expectedDeleted++), kept otherwise.
    for (i, port) in [1u16, 53, 7999, 8001, 3000, 65535].into_iter().enumerate() {
        scratch.insert(&Flow::udp(CLIENT, 21100 + i as u16, EXTERNAL_IP, port, DELETED, port));
    }
    let before = scratch.flows();
    flush_manual(&scratch, EXTERNAL_IP, &format!("{SERVING}:{SERVICE_PORT}"));
    let after = scratch.flows();
    // "expectedEntries": the valid flow and the six to other ports.
    assert_eq!(after.len(), 7);
    assert_eq!(gone(&before, &after), BTreeSet::from([stale_flow]));
    assert!(after.contains(&valid));
}

/// `TestServiceWithoutEndpoints`, in its newest form: the Service has no
/// endpoints (its EndpointSlice belongs to another Service). Before
/// kubernetes#139629 the Go test expected both flows to stay (the
/// reconciler skipped such Services); since, the Service is cleaned with
/// an empty endpoint set, so every flow to it goes: the one from the
/// (other Service's) serving address, the one from the deleted endpoint,
/// and (the PR's point) a flow never DNATed, whose clients then meet the
/// REJECT rule at once. Here the Service comes from kube-proxy rules
/// loaded with iptables-restore: a Service without endpoints is only its
/// `has no endpoints` REJECT rule.
#[test]
fn service_without_endpoints_case() {
    if !ready() {
        return;
    }
    let scratch = Scratch::new("kpnoep");
    let rules = ServiceRules {
        service: "test/cleanup-test".into(),
        cluster_ip: EXTERNAL_IP.parse().expect("address"),
        ports: vec![("test-udp".into(), "udp".into(), SERVICE_PORT)],
        endpoints: Vec::new(),
        cluster_cidr: "198.18.0.0/15".into(),
        reject_without_endpoints: true,
    };
    scratch.iptables_restore(&rules.iptables_restore_input(), false);
    let flows = [
        Flow::udp(CLIENT, 22001, EXTERNAL_IP, SERVICE_PORT, SERVING, SERVICE_PORT),
        Flow::udp(CLIENT, 22002, EXTERNAL_IP, SERVICE_PORT, DELETED, SERVICE_PORT),
        Flow::udp(CLIENT, 22003, EXTERNAL_IP, SERVICE_PORT, EXTERNAL_IP, SERVICE_PORT),
    ];
    for flow in &flows {
        scratch.insert(flow);
    }
    // Not the Service's: another port of the same address.
    let other = Flow::udp(CLIENT, 22004, EXTERNAL_IP, NON_SERVICE_PORT, DELETED, NON_SERVICE_PORT);
    scratch.insert(&other);
    let before = scratch.flows();

    // The listing names all three stale, by kube-proxy's rules.
    let out = stale(&["--netns", &scratch.0, "--service", "test/cleanup-test", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["endpoints"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["stale_count"], 3, "{report:#}");
    assert_eq!(report["live_count"], 0, "{report:#}");

    let out = stale(&[
        "--netns",
        &scratch.0,
        "--service",
        "test/cleanup-test",
        "--flush",
        "--yes",
        "-o",
        "json",
    ]);
    let report = json(&out);
    assert_eq!(report["flush"]["deleted"], 3, "{report:#}");
    assert_eq!(report["flush"]["remaining"], 0, "{report:#}");
    let after = scratch.flows();
    assert_eq!(gone(&before, &after), flows.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(after, BTreeSet::from([other]));
}

/// The same rule in IPv6 (cleanup.go lists and cleans each family on its
/// own; `TestFilterForNAT`'s "ipv6 + UDP" case builds the same filter for
/// IPv6): from the serving endpoint kept, from the deleted one and never
/// DNATed deleted, another port kept.
#[test]
fn ipv6_flows() {
    if !ready() {
        return;
    }
    let scratch = Scratch::new("kpv6");
    let (cluster, serving, deleted, client) =
        ("2001:db8::a", "2001:db8:240::4", "2001:db8:242::6", "2001:db8:100::1");
    let kept = [
        Flow::udp(client, 23001, cluster, SERVICE_PORT, serving, SERVICE_PORT),
        Flow::udp(client, 23002, cluster, NON_SERVICE_PORT, deleted, NON_SERVICE_PORT),
    ];
    let deletes = [
        Flow::udp(client, 23003, cluster, SERVICE_PORT, deleted, SERVICE_PORT),
        Flow::udp(client, 23004, cluster, SERVICE_PORT, cluster, SERVICE_PORT),
    ];
    for flow in kept.iter().chain(&deletes) {
        scratch.insert(flow);
    }
    let before = scratch.flows();
    let report = flush_manual(&scratch, &format!("[{cluster}]"), &format!("[{serving}]:8000"));
    assert_eq!(report["flush"]["deleted"], 2, "{report:#}");
    let after = scratch.flows();
    assert_eq!(gone(&before, &after), deletes.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(after, kept.iter().cloned().collect::<BTreeSet<_>>());
}
