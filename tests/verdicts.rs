//! Verdicts that hold on nodes unlike the lab (issue 14, parts 1-3), in
//! both kube-proxy modes: a node namespace without a default route is told
//! it has no route, not that queries are lost; an endpoint that drops AAAA
//! is named with the type; an endpoint answering SERVFAIL is not dead; a
//! pod up with nothing listening and a pod gone are both dead and told
//! apart by how their queries ended. Expected values come from the
//! scenario each test builds and from what `ip` and `dig` say about it.
//!
//! Network rule: every probe runs inside a lab namespace (`--netns`).

mod common;

use std::process::Output;

use common::report::u;
use common::TestLab;
use serde_json::Value;

const CLUSTER: &str = "198.19.0.10:53";
const NAME: &str = "kubernetes.default.svc.cluster.local";

/// `ctdiag compare --netns PROBE --stats-netns NODE` with a few lookups
/// per target and a timeout no loaded machine reaches on the lab.
fn compare(lab: &TestLab, probe_ns: &str) -> (Output, Value) {
    let node = lab.node_ns();
    let out = common::ctdiag(&[
        "compare",
        "--netns",
        probe_ns,
        "--stats-netns",
        &node,
        "--count",
        "20",
        "--rounds",
        "2",
        "--timeout",
        "1000",
        "-o",
        "json",
    ]);
    let report = common::json(&out);
    (out, report)
}

/// The target at `address`.
fn target<'a>(report: &'a Value, address: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["address"] == address))
        .unwrap_or_else(|| panic!("no target {address}: {report:#}"))
}

/// The findings with `code`.
fn findings<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .map_or(Vec::new(), |f| f.iter().filter(|f| f["code"] == code).collect())
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f["code"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// `dig` from the client pod to `server`, one try of one second: its
/// output (the world's view of what that server does).
fn dig(lab: &TestLab, server: &str, qtype: &str) -> String {
    let at = format!("@{server}");
    let out = lab.in_client(&["dig", "+time=1", "+tries=1", &at, NAME, qtype]);
    common::stdout(&out)
}

/// Every outcome field of a target, and that they add up to the queries.
fn outcomes(t: &Value) -> [u64; 6] {
    let o = &t["outcomes"];
    let fields =
        ["answered", "timed_out", "port_unreachable", "unreachable", "no_route", "send_failed"];
    let values = fields.map(|f| u(o, f));
    assert_eq!(values.iter().sum::<u64>(), u(t, "queries_sent"), "{t:#}");
    values
}

/// The node's namespace without its default route: lookups from the node
/// itself to the ClusterIP fail at `connect()` (the kernel says so with
/// `ip route get`), the endpoints on the node's own links answer.
fn no_route(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&["--proxy-mode", proxy_mode]);
    let node = lab.node_ns();
    common::assert_success(&lab.in_node(&["ip", "route", "del", "default"]), "ip route del");
    // The kernel's own answer for the ClusterIP from the node.
    let route = lab.in_node(&["ip", "route", "get", "198.19.0.10"]);
    assert!(!route.status.success(), "{}", common::stdout(&route));
    let kernel_says = common::stderr(&route);
    assert!(kernel_says.contains("unreachable"), "{kernel_says}");
    let (out, report) = compare(&lab, &node);
    assert_eq!(out.status.code(), Some(1), "{report:#}\n{}", common::stderr(&out));
    let cluster = target(&report, CLUSTER);
    let sent = u(cluster, "queries_sent");
    assert_eq!(sent, 40, "{cluster:#}");
    assert_eq!(outcomes(cluster), [0, 0, 0, 0, 40, 0], "{cluster:#}");
    assert!(cluster["no_route"]["errno"].as_str().unwrap().starts_with("ENETUNREACH"));
    let route_get = cluster["no_route"]["route_get"].as_str().unwrap();
    assert!(route_get.contains(kernel_says.lines().next().unwrap().trim()), "{route_get}");
    for endpoint in lab.endpoints() {
        let t = target(&report, &endpoint);
        assert_eq!(outcomes(t)[0], 40, "the endpoints on the node's links answer: {t:#}");
    }
    let found = codes(&report);
    for wrong in ["cluster-ip-path-loss", "loss-everywhere", "endpoint-dead"] {
        assert!(!found.iter().any(|c| c == wrong), "{wrong} in {found:?}");
    }
    let no_route = findings(&report, "no-route-to-target");
    assert_eq!(no_route.len(), 1, "{found:?}");
    assert_eq!(no_route[0]["severity"], "warning");
    assert!(no_route[0]["summary"].as_str().unwrap().contains(CLUSTER), "{:#}", no_route[0]);
    assert!(no_route[0]["remedy"].as_str().unwrap().contains("--probe-netns"));
    // probe says what happened: no route, not ICMP errors.
    let probe = common::ctdiag(&[
        "probe",
        "--netns",
        &node,
        "--server",
        CLUSTER,
        "--count",
        "5",
        "--timeout",
        "1000",
    ]);
    assert_eq!(probe.status.code(), Some(2), "{}", common::stdout(&probe));
    let said = common::stderr(&probe);
    assert!(said.contains("ENETUNREACH") && said.contains("no route"), "{said}");
    assert!(!said.contains("ICMP"), "{said}");
}

#[test]
fn no_route_in_iptables_mode() {
    no_route("iptables");
}

#[test]
fn no_route_in_nftables_mode() {
    no_route("nftables");
}

/// `doctor --npd` on a node namespace without a default route must not say
/// NonOK (exit 1) because its own lookups could not leave.
#[test]
fn doctor_npd_does_not_flag_a_node_without_a_route() {
    if !common::require_root() {
        return;
    }
    for proxy_mode in ["iptables", "nftables"] {
        let lab = TestLab::up(&["--proxy-mode", proxy_mode]);
        let node = lab.node_ns();
        common::assert_success(&lab.in_node(&["ip", "route", "del", "default"]), "ip route del");
        let out = common::ctdiag(&["doctor", "--netns", &node, "--budget", "8s", "--npd"]);
        // Not NonOK (1): the compare check could not measure (unknown, 2),
        // and says why.
        let text = common::stdout(&out);
        assert_eq!(out.status.code(), Some(2), "{proxy_mode}: {text}");
        assert!(text.contains("no route"), "{proxy_mode}: {text}");
    }
}

/// Endpoint 2 drops every AAAA query (`dig` sees A answered, AAAA not):
/// compare and doctor name `one-type-lost` for it, with AAAA.
fn aaaa_dropped(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--proxy-mode", proxy_mode]);
    lab.scenario("lossy", &["--endpoint", "2", "--drop-aaaa-rate", "1"]);
    let dropping = lab.endpoint_ip(2);
    assert!(dig(&lab, &dropping, "A").contains("status: NOERROR"));
    assert!(dig(&lab, &dropping, "AAAA").contains("timed out"));
    let (out, report) = compare(&lab, &lab.client_ns());
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let address = format!("{dropping}:53");
    let t = target(&report, &address);
    assert_eq!((u(&t["lost_by_type"], "A"), u(&t["lost_by_type"], "AAAA")), (0, 20), "{t:#}");
    assert_eq!(outcomes(t), [20, 20, 0, 0, 0, 0], "{t:#}");
    let named = findings(&report, "one-type-lost");
    assert_eq!(named.len(), 1, "{:?}", codes(&report));
    let summary = named[0]["summary"].as_str().unwrap();
    assert!(summary.contains(&address) && summary.contains("AAAA"), "{summary}");
    assert!(!codes(&report).iter().any(|c| c == "endpoint-dead"), "{:?}", codes(&report));
    // doctor picks compare's finding up.
    let (node, client) = (lab.node_ns(), lab.client_ns());
    let out = common::ctdiag(&[
        "doctor",
        "--netns",
        &node,
        "--probe-netns",
        &client,
        "--pods",
        &client,
        "--budget",
        "10s",
        "-o",
        "json",
    ]);
    let doctor = common::json(&out);
    assert_eq!(out.status.code(), Some(1), "{doctor:#}");
    let named = findings(&doctor, "one-type-lost");
    assert_eq!(named.len(), 1, "{doctor:#}");
    let summary = named[0]["summary"].as_str().unwrap();
    assert!(summary.contains(&address) && summary.contains("AAAA"), "{summary}");
}

#[test]
fn aaaa_dropped_in_iptables_mode() {
    aaaa_dropped("iptables");
}

#[test]
fn aaaa_dropped_in_nftables_mode() {
    aaaa_dropped("nftables");
}

/// Endpoint 2 answers SERVFAIL (as `dig` sees): `endpoint-error-rcodes`,
/// critical, never `endpoint-dead`; then every endpoint does:
/// `error-rcodes-everywhere`.
fn servfail(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--proxy-mode", proxy_mode]);
    lab.scenario("error-rcode", &["--endpoint", "2", "--rcode", "servfail"]);
    let (good, failing) = (lab.endpoint_ip(1), lab.endpoint_ip(2));
    assert!(dig(&lab, &failing, "A").contains("status: SERVFAIL"));
    assert!(dig(&lab, &good, "A").contains("status: NOERROR"));
    let (out, report) = compare(&lab, &lab.client_ns());
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let address = format!("{failing}:53");
    let t = target(&report, &address);
    assert_eq!(outcomes(t)[0], 40, "{t:#}");
    assert_eq!(u(&t["rcodes"], "SERVFAIL"), 40, "{t:#}");
    assert_eq!(u(&target(&report, &format!("{good}:53"))["rcodes"], "NOERROR"), 40);
    let found = codes(&report);
    assert!(!found.iter().any(|c| c == "endpoint-dead"), "{found:?}");
    let named = findings(&report, "endpoint-error-rcodes");
    assert_eq!(named.len(), 1, "{found:?}");
    assert_eq!(named[0]["severity"], "critical");
    assert!(named[0]["summary"].as_str().unwrap().contains(&address));
    lab.scenario("error-rcode", &["--rcode", "servfail"]);
    assert!(dig(&lab, &good, "A").contains("status: SERVFAIL"));
    let (out, report) = compare(&lab, &lab.client_ns());
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let found = codes(&report);
    assert_eq!(found, vec!["error-rcodes-everywhere".to_string()], "{report:#}");
    assert_eq!(u(&target(&report, CLUSTER)["rcodes"], "SERVFAIL"), 40);
}

#[test]
fn servfail_in_iptables_mode() {
    servfail("iptables");
}

#[test]
fn servfail_in_nftables_mode() {
    servfail("nftables");
}

/// Endpoint 2's pod is up with nothing listening (`dig`: connection
/// refused), endpoint 3's pod is gone (`dig`: timed out): both
/// `endpoint-dead`, and their outcomes tell them apart.
fn refused_or_gone(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--proxy-mode", proxy_mode, "--endpoints", "3"]);
    lab.scenario("not-listening", &["--endpoint", "2"]);
    lab.scenario("dead-endpoint", &["--endpoint", "3"]);
    let (refusing, gone) = (lab.endpoint_ip(2), lab.endpoint_ip(3));
    assert!(dig(&lab, &refusing, "A").contains("connection refused"));
    assert!(dig(&lab, &gone, "A").contains("timed out"));
    let (out, report) = compare(&lab, &lab.client_ns());
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let (refusing, gone) = (format!("{refusing}:53"), format!("{gone}:53"));
    assert_eq!(outcomes(target(&report, &refusing)), [0, 0, 40, 0, 0, 0], "{report:#}");
    assert_eq!(outcomes(target(&report, &gone)), [0, 40, 0, 0, 0, 0], "{report:#}");
    let dead = findings(&report, "endpoint-dead");
    assert_eq!(dead.len(), 2, "{:?}", codes(&report));
    for (address, said, how) in
        [(&refusing, "ICMP port unreachable", "refused"), (&gone, "timed out", "silence")]
    {
        let f = dead.iter().find(|f| f["summary"].as_str().unwrap().contains(address.as_str()));
        let f = f.unwrap_or_else(|| panic!("no endpoint-dead for {address}: {report:#}"));
        assert!(f["evidence"].as_str().unwrap().contains(said), "{f:#}");
        assert!(f["summary"].as_str().unwrap().contains(how), "{f:#}");
    }
}

#[test]
fn refused_or_gone_in_iptables_mode() {
    refused_or_gone("iptables");
}

#[test]
fn refused_or_gone_in_nftables_mode() {
    refused_or_gone("nftables");
}
