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
