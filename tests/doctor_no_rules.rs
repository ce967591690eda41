//! `ctdiag doctor` on a node namespace without kube-proxy's rules (issue
//! 14, part 4): the lab's node with every netfilter rule removed is a node
//! whose kube-proxy never synced (verdict unknown, exit 2, the DNAT checks
//! not applicable); the same node with Cilium's `cilium_host`/`cilium_net`
//! veth pair is a node whose Services eBPF load-balances (those checks not
//! applicable with that reason, the verdict from the checks that apply).
//! Nothing is probed here: without rules doctor has no ClusterIP to probe.

mod common;

use common::report::{check, codes};
use common::TestLab;
use serde_json::Value;

/// The checks that read netfilter's Service DNAT (rules, entries, the
/// ClusterIP they give), and those that do not.
const DNAT_CHECKS: [&str; 2] = ["stale", "compare"];
const OTHER_CHECKS: [&str; 3] = ["conntrack", "resolvers", "dns-path"];

/// Removes every netfilter rule of the lab's node namespace, whichever
/// mode and backend wrote them, and checks with the listing tools that no
/// kube-proxy rule is left.
fn remove_kube_proxy_rules(lab: &TestLab) {
    for table in ["nat", "filter", "mangle", "raw"] {
        for tool in ["iptables", "ip6tables"] {
            for flag in ["-F", "-X"] {
                let _ = lab.in_node(&[tool, "-t", table, flag]);
            }
        }
    }
    common::assert_success(&lab.in_node(&["nft", "flush", "ruleset"]), "nft flush ruleset");
    for listing in [&["iptables-save"][..], &["ip6tables-save"], &["nft", "list", "ruleset"]] {
        let text = common::stdout(&lab.in_node(listing));
        assert!(
            !text.contains("KUBE-SVC") && !text.contains("kube-proxy"),
            "{listing:?} still lists kube-proxy rules:\n{text}"
        );
    }
}

/// doctor on the lab's node, as node-problem-detector or a person would
/// run it there.
fn doctor(lab: &TestLab, extra: &[&str]) -> std::process::Output {
    let (node, client) = (lab.node_ns(), lab.client_ns());
    let mut args = vec!["doctor", "--netns", &node, "--probe-netns", &client, "--pods", &client];
    args.extend_from_slice(extra);
    common::ctdiag(&args)
}

fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    check(report, name)["status"].as_str().unwrap_or("?")
}

#[test]
fn a_node_without_kube_proxy_rules_is_unknown_and_with_cilium_not_applicable() {
    if !common::require_root() || !common::require_tool("nft", "nftables") {
        return;
    }
    for mode in ["iptables", "nftables"] {
        let lab = TestLab::up(&["--proxy-mode", mode]);
        // With the rules, the kube-dns check sees the mode (the baseline
        // this test removes).
        remove_kube_proxy_rules(&lab);

        // No rules, no other datapath: kube-proxy may be broken.
        let out = doctor(&lab, &["--budget", "6s", "-o", "json"]);
        let report = common::json(&out);
        assert_eq!(out.status.code(), Some(2), "{mode}: {report:#}\n{}", common::stderr(&out));
        assert_eq!(report["verdict"], "unknown", "{mode}: {report:#}");
        assert_eq!(status(&report, "kube-dns"), "unknown", "{mode}: {report:#}");
        let evidence = check(&report, "kube-dns")["evidence"].as_str().unwrap();
        assert!(evidence.starts_with("kube-proxy may be broken or never synced"), "{evidence}");
        for name in DNAT_CHECKS {
            assert_eq!(status(&report, name), "not-applicable", "{mode} {name}: {report:#}");
        }
        for name in OTHER_CHECKS {
            assert_eq!(status(&report, name), "ok", "{mode} {name}: {report:#}");
        }
        assert_eq!(report["service_datapath"]["kube_proxy_rules"], false, "{report:#}");
        assert_eq!(report["service_datapath"]["signs"], serde_json::json!([]), "{report:#}");
        assert!(codes(&report, false).contains(&"no-kube-proxy-rules".to_string()));
        assert!(codes(&report, true).is_empty(), "{mode}: {report:#}");
        let npd = doctor(&lab, &["--budget", "6s", "--npd"]);
        let line = common::stdout(&npd);
        assert_eq!(npd.status.code(), Some(2), "{mode}: {line}{}", common::stderr(&npd));
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.starts_with("unknown kube-dns: kube-proxy may be broken"), "{line}");

        // Cilium's veth pair in the node namespace: its eBPF datapath
        // carries Services; the checks that apply decide.
        common::assert_success(
            &lab.in_node(&[
                "ip",
                "link",
                "add",
                "cilium_host",
                "type",
                "veth",
                "peer",
                "name",
                "cilium_net",
            ]),
            "ip link add cilium_host",
        );
        let out = doctor(&lab, &["--budget", "6s", "-o", "json"]);
        let report = common::json(&out);
        assert_eq!(out.status.code(), Some(0), "{mode}: {report:#}\n{}", common::stderr(&out));
        assert_eq!(report["verdict"], "ok", "{mode}: {report:#}");
        for name in ["kube-dns", "stale", "compare"] {
            assert_eq!(status(&report, name), "not-applicable", "{mode} {name}: {report:#}");
            let evidence = check(&report, name)["evidence"].as_str().unwrap();
            assert!(evidence.contains("Cilium eBPF (interface cilium_host"), "{name}: {evidence}");
        }
        for name in OTHER_CHECKS {
            assert_eq!(status(&report, name), "ok", "{mode} {name}: {report:#}");
        }
        assert_eq!(
            report["summary"],
            "3 passed, 3 not applicable: Cilium eBPF datapath, no kube-proxy rules",
            "{report:#}"
        );
        let signs: Vec<&str> = report["service_datapath"]["signs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["seen"].as_str().unwrap())
            .collect();
        assert_eq!(signs, ["interface cilium_host", "interface cilium_net"], "{report:#}");
        // Nothing was probed: the comparison has no targets.
        assert!(check(&report, "compare")["data"]["targets"].is_null(), "{report:#}");
        let npd = doctor(&lab, &["--budget", "6s", "--npd"]);
        let line = common::stdout(&npd);
        assert_eq!(npd.status.code(), Some(0), "{mode}: {line}{}", common::stderr(&npd));
        assert_eq!(
            line.trim_end(),
            "ok: 3 passed, 3 not applicable: Cilium eBPF datapath, no kube-proxy rules"
        );
    }
}

#[test]
fn ipvs_mode_without_ip_vs_is_named() {
    if !common::require_root() || !common::require_tool("nft", "nftables") {
        return;
    }
    let lab = TestLab::up(&[]);
    remove_kube_proxy_rules(&lab);
    // kube-proxy's IPVS dummy interface (a veth stands in: no dummy driver
    // in every kernel).
    common::assert_success(
        &lab.in_node(&[
            "ip",
            "link",
            "add",
            "kube-ipvs0",
            "type",
            "veth",
            "peer",
            "name",
            "ipvs-peer",
        ]),
        "ip link add kube-ipvs0",
    );
    // Whether ip_vs is loaded is the kernel's: /proc/net/ip_vs exists in
    // the node's namespace when it is.
    let loaded = lab.in_node(&["test", "-e", "/proc/net/ip_vs"]).status.success();
    let out = doctor(&lab, &["--budget", "6s", "-o", "json"]);
    let report = common::json(&out);
    assert_eq!(out.status.code(), Some(2), "{report:#}\n{}", common::stderr(&out));
    let evidence = check(&report, "kube-dns")["evidence"].as_str().unwrap();
    let named = evidence.contains("kube-ipvs0 without ip_vs");
    assert_eq!(named, !loaded, "ip_vs loaded: {loaded}; {evidence}");
    if !loaded {
        assert!(report["summary"].as_str().unwrap().contains("IPVS without ip_vs"), "{report:#}");
    }
}

/// The lab's kube-dns as `kubectl get services,endpointslices -n
/// kube-system -o json` prints it: the Service (the lab's ClusterIP, ports
/// `dns` UDP and `dns-tcp` TCP) and one EndpointSlice with `ready`
/// endpoints and one that is not ready (which must not be probed).
fn api_listing(cluster_ip: &str, ready: &[String], unready: &str) -> String {
    let address = |e: &String| e.rsplit_once(':').map(|(ip, _)| ip.to_string()).unwrap();
    let mut endpoints: Vec<Value> = ready
        .iter()
        .map(|e| serde_json::json!({ "addresses": [address(e)], "conditions": { "ready": true } }))
        .collect();
    endpoints.push(serde_json::json!({ "addresses": [unready], "conditions": { "ready": false } }));
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
                    "clusterIPs": [cluster_ip],
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
                    "name": "kube-dns-abcde",
                    "namespace": "kube-system",
                    "labels": { "kubernetes.io/service-name": "kube-dns" }
                },
                "ports": [
                    { "name": "dns", "port": 53, "protocol": "UDP" },
                    { "name": "dns-tcp", "port": 53, "protocol": "TCP" }
                ],
                "endpoints": endpoints
            }
        ]
    })
    .to_string()
}

/// A target of a compare report by address.
fn target<'a>(targets: &'a [Value], address: &str) -> &'a Value {
    targets
        .iter()
        .find(|t| t["address"] == address)
        .unwrap_or_else(|| panic!("no target {address} in {targets:#?}"))
}

#[test]
fn compare_and_doctor_take_the_service_from_the_api_without_rules() {
    if !common::require_root() || !common::require_tool("nft", "nftables") {
        return;
    }
    let lab = TestLab::up(&[]);
    let (node, client) = (lab.node_ns(), lab.client_ns());
    remove_kube_proxy_rules(&lab);
    let endpoints = lab.endpoints();
    assert_eq!(endpoints.len(), 2, "{:#}", lab.info);
    // 198.18.250.1 is routed to the lab's router, which drops everything:
    // were the unready endpoint probed, it would show as lost.
    let listing = api_listing(&lab.cluster_ip(), &endpoints, "198.18.250.1");
    // A kubectl that prints the listing for exactly the command ctdiag
    // should run, and fails otherwise.
    let dir = std::env::temp_dir().join(format!("ctdiag-kubectl-{}", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("listing.json"), &listing).unwrap();
    std::fs::write(
        dir.join("kubectl"),
        format!(
            "#!/bin/sh\n[ \"$*\" = 'get services,endpointslices -n kube-system -o json' ] || {{ echo \"unexpected: $*\" >&2; exit 1; }}\nexec cat {}\n",
            dir.join("listing.json").display()
        ),
    )
    .unwrap();
    common::run("chmod", &["+x", &dir.join("kubectl").display().to_string()]);

    // Without the API: no rules, nothing to compare (exit 2, said why).
    let base = ["compare", "--netns", &client, "--stats-netns", &node, "--count", "20"];
    let out = common::ctdiag(&base);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains("kube-proxy"), "{}", common::stderr(&out));

    let mut args = base.to_vec();
    args.extend(["--timeout", "500", "--kubectl", "-o", "json"]);
    let out = common::ctdiag_with_tools(&dir, false, &[], &args);
    let report = common::json(&out);
    assert!(
        report["service_from"].as_str().unwrap().contains("the API"),
        "{report:#}\n{}",
        common::stderr(&out)
    );
    assert_eq!(report["cluster_ip"], format!("{}:53", lab.cluster_ip()), "{report:#}");
    assert_eq!(report["endpoints"], serde_json::json!(endpoints), "{report:#}");
    let targets = report["targets"].as_array().unwrap().clone();
    assert_eq!(targets.len(), 3, "{targets:#?}");
    // Each endpoint answers every lookup (the lab's responders); the
    // ClusterIP, with no rule translating it, reaches the router that
    // drops: every lookup lost, so compare exits 1.
    for endpoint in &endpoints {
        let t = target(&targets, endpoint);
        assert_eq!((t["lookups"].as_u64(), t["lost"].as_u64()), (Some(20), Some(0)), "{t:#}");
    }
    let cluster = target(&targets, &format!("{}:53", lab.cluster_ip()));
    assert_eq!(cluster["answered"], 0, "{cluster:#}");
    assert_eq!(out.status.code(), Some(1), "{report:#}");

    // doctor on the same node with Cilium's interfaces and the listing as
    // --api: the comparison applies and runs on the API's targets.
    common::assert_success(
        &lab.in_node(&[
            "ip",
            "link",
            "add",
            "cilium_host",
            "type",
            "veth",
            "peer",
            "name",
            "cilium_net",
        ]),
        "ip link add cilium_host",
    );
    let file = dir.join("listing.json").display().to_string();
    let out = doctor(&lab, &["--api", &file, "--budget", "8s", "-o", "json"]);
    let report = common::json(&out);
    let compare = check(&report, "compare");
    assert_ne!(compare["status"], "not-applicable", "{compare:#}");
    let targets = compare["data"]["targets"].as_array().unwrap().clone();
    assert_eq!(targets.len(), 3, "{compare:#}");
    for endpoint in &endpoints {
        let t = target(&targets, endpoint);
        assert!(t["lookups"].as_u64() > Some(0) && t["lost"] == 0, "{t:#}");
    }
    assert!(compare["evidence"].as_str().unwrap().contains("targets from the API"), "{compare:#}");
    assert_eq!(status(&report, "kube-dns"), "not-applicable", "{report:#}");
    assert_eq!(status(&report, "stale"), "not-applicable", "{report:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
