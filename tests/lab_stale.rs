//! The lab's side of `ctdiag stale`: `lab fill` (many conntrack entries,
//! fast), the sticky clients of the stale-endpoint and never-translated
//! scenarios, and the IPv6 lab. The kernel's own view (`conntrack -C`,
//! `conntrack -L`) and real DNS clients check every result.

mod common;

use std::collections::BTreeMap;

use common::conntrack::{conntrack_count, conntrack_list, CtLine as Entry};
use common::lab_tools;
use common::sticky::{client_port, now_ms, queries_after};
use common::{assert_success, ctdiag, exec, json, stdout, TestLab};
use serde_json::Value;

/// `ctdiag lab fill --prefix P -o json ARGS`, which must succeed.
fn fill(lab: &TestLab, args: &[&str]) -> Value {
    let mut full = vec!["lab", "fill", "--prefix", lab.prefix.as_str(), "-o", "json"];
    full.extend_from_slice(args);
    let out = ctdiag(&full);
    assert_success(&out, &full.join(" "));
    json(&out)
}

#[test]
fn fill_creates_exactly_the_entries_asked_for() {
    if !lab_tools() {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "2"]);
    let node = lab.node_ns();
    let before = conntrack_count(&node);

    let report = fill(&lab, &["--flows", "20000", "--to", "unrelated"]);
    assert_eq!(report["created"], 20000, "{report:#}");
    assert_eq!(report["entries_before"].as_u64(), Some(before));
    assert_eq!(report["destination"], "198.18.250.1:9");
    assert_eq!(conntrack_count(&node), before + 20000);
    let unrelated = conntrack_list(&node, &["--orig-dst", "198.18.250.1"]);
    assert_eq!(unrelated.len(), 20000);
    for e in &unrelated {
        assert!(e.src.starts_with("198.18.1.") && e.src != "198.18.1.2", "{e:?}");
        assert!(e.unreplied && e.reply_src == "198.18.250.1", "{e:?}");
    }

    // To the ClusterIP: DNATed to both endpoints, with the asked lifetime;
    // and a second fill does not reuse the first one's tuples.
    let report = fill(&lab, &["--flows", "5000", "--to", "cluster-ip", "--timeout", "600"]);
    assert_eq!(report["created"], 5000, "{report:#}");
    assert_eq!(report["timeout_s"], 600);
    assert_eq!(conntrack_count(&node), before + 25000);
    let dns = conntrack_list(&node, &["--orig-dst", "198.19.0.10"]);
    assert_eq!(dns.len(), 5000);
    let mut per_endpoint: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &dns {
        *per_endpoint.entry(e.reply_src.as_str()).or_default() += 1;
        assert!(e.timeout > 500, "entry without the fill's timeout: {e:?}");
    }
    let keys: Vec<&str> = per_endpoint.keys().copied().collect();
    assert_eq!(keys, ["198.18.2.2", "198.18.3.2"], "{per_endpoint:?}");
    // kube-proxy's 50 % split: far from 1000..4000 only with ~1e-100 odds.
    assert!(per_endpoint.values().all(|n| (1000..4000).contains(n)), "{per_endpoint:?}");
}

#[test]
fn fill_through_nftables_rules() {
    if !lab_tools() {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "3", "--proxy-mode", "nftables"]);
    let report = fill(&lab, &["--flows", "3000", "--to", "cluster-ip"]);
    assert_eq!(report["created"], 3000, "{report:#}");
    let dns = conntrack_list(&lab.node_ns(), &["--orig-dst", "198.19.0.10"]);
    assert_eq!(dns.len(), 3000);
    let endpoints: std::collections::BTreeSet<&str> =
        dns.iter().map(|e| e.reply_src.as_str()).collect();
    assert_eq!(endpoints.len(), 3, "{endpoints:?}");
}

#[test]
fn fill_refuses_bad_input() {
    if !lab_tools() {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "1"]);
    let p = lab.prefix.as_str();
    for args in [
        vec!["--flows", "0", "--to", "unrelated"],
        vec!["--flows", "999999999", "--to", "unrelated"],
        vec!["--flows", "10", "--to", "unrelated", "--timeout", "0"],
        vec!["--flows", "10", "--to", "cluster-ip", "--family", "6"],
        vec!["--flows", "10", "--to", "elsewhere"],
    ] {
        let mut full = vec!["lab", "fill", "--prefix", p];
        full.extend_from_slice(&args);
        let out = ctdiag(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", common::stderr(&out));
        assert!(!common::stderr(&out).is_empty());
    }
    let out =
        ctdiag(&["lab", "fill", "--prefix", "nosuchlab0", "--flows", "1", "--to", "unrelated"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("lab up"), "{}", common::stderr(&out));
    // Nothing was created by the refused fills.
    assert_eq!(conntrack_count(&lab.node_ns()), 0);
}

/// The hostname of process `pid` as seen in its UTS namespace.
fn hostname_of(pid: u64) -> String {
    let out = common::run("nsenter", &["-t", &pid.to_string(), "-u", "hostname"]);
    assert_success(&out, "nsenter -u hostname");
    stdout(&out).trim().to_string()
}

#[test]
fn stale_endpoint_sticky_clients_in_iptables_mode() {
    stale_endpoint_sticky_clients("iptables");
}

#[test]
fn stale_endpoint_sticky_clients_in_nftables_mode() {
    stale_endpoint_sticky_clients("nftables");
}

/// The acceptance behaviour `ctdiag stale --flush` reproduces: the clients
/// whose entries went to the removed endpoint get no answers while the
/// others do; `conntrack -D` of exactly their entries heals them.
fn stale_endpoint_sticky_clients(proxy_mode: &str) {
    let node_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if !lab_tools() || !common::require_tool("nsenter", "util-linux") {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2", "--proxy-mode", proxy_mode]);
    let info = lab.scenario("stale-endpoint", &["--endpoint", "2"]);
    let removed_at = now_ms();
    let node = lab.node_ns();
    let clients = info["clients"].as_array().unwrap().clone();
    let (on_dead, on_live): (Vec<Value>, Vec<Value>) =
        clients.iter().cloned().partition(|c| c["entry_reply_src"] == "198.18.3.2:53");
    assert!(on_dead.len() >= 2, "{info:#}");
    assert!(!on_live.is_empty(), "{info:#}");
    for c in &clients {
        assert_eq!(c["alive"], true, "{c}");
        assert_eq!(c["hostname"], format!("client-{}", lab.prefix));
        assert_eq!(hostname_of(c["pid"].as_u64().unwrap()), format!("client-{}", lab.prefix));
        // The pod sees its own resolv.conf (bound over /etc/resolv.conf in
        // its mount namespace, as `ip netns exec` does), the node its own.
        let pod_resolv_conf = format!("/proc/{}/root/etc/resolv.conf", c["pid"]);
        assert_eq!(
            std::fs::read_to_string(&pod_resolv_conf).unwrap(),
            std::fs::read_to_string(format!("/etc/netns/{}/resolv.conf", lab.client_ns())).unwrap(),
            "{pod_resolv_conf}"
        );
        assert_eq!(
            std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            node_resolv_conf
        );
        assert!(c["source"].as_str().unwrap().starts_with("198.18.1.2:"), "{c}");
    }
    for c in &on_live {
        assert_eq!(c["entry_reply_src"], "198.18.2.2:53", "{c}");
    }

    // After the removal: the clients on the dead endpoint time out, the
    // others are answered, every second.
    for c in &on_dead {
        let after = queries_after(c, removed_at, 3);
        assert!(after.iter().all(|q| q["answered"] == false), "client {}: {after:?}", c["id"]);
    }
    for c in &on_live {
        let after = queries_after(c, removed_at, 3);
        assert!(
            after.iter().all(|q| q["answered"] == true && q["answer"] == "198.19.0.1"),
            "{after:?}"
        );
    }
    // The kernel's view: exactly the blackholed clients' entries still
    // point at the removed endpoint, kept alive by their retries.
    let entries = conntrack_list(&node, &["--orig-dst", "198.19.0.10"]);
    let stale: Vec<&Entry> = entries.iter().filter(|e| e.reply_src == "198.18.3.2").collect();
    let mut stale_ports: Vec<u16> = stale.iter().map(|e| e.sport).collect();
    let mut dead_ports: Vec<u16> = on_dead.iter().map(client_port).collect();
    stale_ports.sort_unstable();
    dead_ports.sort_unstable();
    assert_eq!(stale_ports, dead_ports, "{entries:?}");
    assert!(stale.iter().all(|e| e.timeout > 20), "retries refresh the entries: {stale:?}");

    // `lab status` reports the same.
    let (out, status) = lab.status();
    assert_success(&out, "lab status");
    for c in status["clients"].as_array().unwrap() {
        let dead = c["entry_reply_src"] == "198.18.3.2:53";
        assert_eq!(c["last_answered"], !dead, "{c}");
    }

    // Deleting exactly those entries heals exactly those clients.
    delete_with_conntrack(&node, &dead_ports, "198.18.3.2");
    let deleted_at = now_ms();
    for c in &on_dead {
        let after = queries_after(c, deleted_at, 1);
        assert_eq!(after[0]["answered"], true, "client {} after the delete: {after:?}", c["id"]);
    }
    let entries = conntrack_list(&node, &["--orig-dst", "198.19.0.10"]);
    assert!(entries.iter().all(|e| e.reply_src == "198.18.2.2"), "{entries:?}");

    // `lab down` stops every client and leaves nothing behind.
    let pids: Vec<u32> = clients.iter().map(|c| c["pid"].as_u64().unwrap() as u32).collect();
    let down = ctdiag(&["lab", "down", "--prefix", &lab.prefix, "-o", "json"]);
    assert_success(&down, "lab down");
    let report = json(&down);
    for pid in &pids {
        assert!(!common::process_running(*pid), "client {pid} survived lab down");
        assert!(report["stopped_pids"].as_array().unwrap().iter().any(|p| p == pid), "{report}");
    }
    let namespaces = stdout(&common::run("ip", &["netns", "list"]));
    assert!(!namespaces.contains(&format!("{}-", lab.prefix)), "{namespaces}");
    assert!(!std::path::Path::new(&format!("/run/ctdiag/lab/{}", lab.prefix)).exists());
}

#[test]
fn never_translated_in_iptables_mode() {
    never_translated("iptables");
}

#[test]
fn never_translated_in_nftables_mode() {
    never_translated("nftables");
}

/// Entries created while kube-dns had no endpoints and no REJECT have the
/// ClusterIP as reply source, stay after the endpoints return and keep
/// their clients blackholed; `conntrack -D` heals them.
fn never_translated(proxy_mode: &str) {
    if !lab_tools() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2", "--proxy-mode", proxy_mode]);
    let info = lab.scenario("never-translated", &[]);
    let back_at = now_ms();
    let node = lab.node_ns();
    let clients = info["clients"].as_array().unwrap().clone();
    assert!(clients.len() >= 2, "{info:#}");
    assert!(clients.iter().all(|c| c["entry_reply_src"] == "198.19.0.10:53"), "{info:#}");
    assert_eq!(info["scenarios"][0]["name"], "never-translated");

    // The endpoints are back: in the rules, and a new flow is answered.
    assert_eq!(lab.endpoints(), ["198.18.2.2:53", "198.18.3.2:53"]);
    let listing = match proxy_mode {
        "nftables" => stdout(&lab.in_node(&["nft", "list", "table", "ip", "kube-proxy"])),
        _ => stdout(&lab.in_node(&["iptables-save"])),
    };
    assert!(
        listing.contains("198.18.3.2:53") && !listing.contains("has no endpoints"),
        "{listing}"
    );
    let fresh = stdout(&lab.in_client(&[
        "dig",
        "+short",
        "+tries=1",
        "+timeout=2",
        "-b",
        "198.18.1.2#45001",
        "@198.19.0.10",
        "kubernetes.default.svc.cluster.local",
    ]));
    assert_eq!(fresh.trim(), "198.19.0.1");

    // The sticky clients stay blackholed, their entries untranslated and
    // refreshed by every retry.
    for c in &clients {
        let after = queries_after(c, back_at, 3);
        assert!(after.iter().all(|q| q["answered"] == false), "client {}: {after:?}", c["id"]);
    }
    let entries = conntrack_list(&node, &["--orig-dst", "198.19.0.10"]);
    let ports: Vec<u16> = clients.iter().map(client_port).collect();
    for port in &ports {
        let e = entries
            .iter()
            .find(|e| e.sport == *port)
            .unwrap_or_else(|| panic!("no entry for client port {port}: {entries:?}"));
        assert_eq!(e.reply_src, "198.19.0.10", "{e:?}");
        assert!(e.unreplied && e.timeout > 20, "{e:?}");
    }
    let fresh_entry = entries.iter().find(|e| e.sport == 45001).expect("the fresh lookup's entry");
    assert!(fresh_entry.reply_src.starts_with("198.18."), "{fresh_entry:?}");

    // Deleting them heals the clients: their next query is DNATed.
    delete_with_conntrack(&node, &ports, "198.19.0.10");
    let deleted_at = now_ms();
    for c in &clients {
        let after = queries_after(c, deleted_at, 1);
        assert_eq!(after[0]["answered"], true, "client {}: {after:?}", c["id"]);
    }
    let entries = conntrack_list(&node, &["--orig-dst", "198.19.0.10"]);
    assert!(entries.iter().all(|e| e.reply_src != "198.19.0.10"), "{entries:?}");
}

/// When an untranslated entry exists at all: kube-proxy's REJECT drops the
/// packet before conntrack confirms it (no entry); without it the packet
/// is routed to the node's gateway and its entry stays.
#[test]
fn only_an_untranslated_packet_that_leaves_the_node_leaves_an_entry() {
    if !lab_tools() {
        return;
    }
    for proxy_mode in ["iptables", "nftables"] {
        let lab = TestLab::up(&["--endpoints", "1", "--proxy-mode", proxy_mode]);
        let node = lab.node_ns();
        for (reject, port) in [(true, "45011"), (false, "45012")] {
            let rules =
                ctdiag::lab::kube_dns_rules_for("198.19.0.10".parse().unwrap(), &[], reject);
            let (tool, input) = match proxy_mode {
                "nftables" => (vec!["nft", "-f"], rules.nft_input()),
                _ => (vec!["iptables-restore"], rules.iptables_restore_input()),
            };
            let file = std::env::temp_dir().join(format!("ctdiag-{}-{port}.rules", lab.prefix));
            std::fs::write(&file, input).unwrap();
            let mut cmd = tool.clone();
            cmd.push(file.to_str().unwrap());
            let loaded = exec(&node, &cmd);
            let _ = std::fs::remove_file(&file);
            assert_success(&loaded, &cmd.join(" "));
            let source = format!("198.18.1.2#{port}");
            let answer = stdout(&lab.in_client(&[
                "dig",
                "+short",
                "+tries=1",
                "+timeout=1",
                "-b",
                &source,
                "@198.19.0.10",
                "kubernetes.default.svc.cluster.local",
            ]));
            assert!(
                !answer.lines().any(|l| l.trim() == "198.19.0.1"),
                "{proxy_mode}: answered without endpoints: {answer}"
            );
            let entries = conntrack_list(&node, &["--orig-port-src", port]);
            if reject {
                assert!(entries.is_empty(), "{proxy_mode}: REJECT left an entry: {entries:?}");
            } else {
                assert_eq!(entries.len(), 1, "{proxy_mode}: {entries:?}");
                assert_eq!(entries[0].reply_src, "198.19.0.10", "{proxy_mode}: {entries:?}");
            }
        }
    }
}

/// `dig +short` from the client pod with a bounded wait.
fn dig_short(lab: &TestLab, args: &[&str]) -> String {
    let mut cmd = vec!["dig", "+short", "+tries=1", "+timeout=2"];
    cmd.extend_from_slice(args);
    stdout(&lab.in_client(&cmd)).trim().to_string()
}

#[test]
fn ipv6_lab_in_iptables_mode() {
    ipv6_lab("iptables");
}

#[test]
fn ipv6_lab_in_nftables_mode() {
    ipv6_lab("nftables");
}

/// An IPv6-only kube-dns: ip6tables / `ip6 kube-proxy` rules in kube-proxy's
/// format, answered through the v6 ClusterIP, found by probe's discovery,
/// and stale-endpoint's sticky clients in v6.
fn ipv6_lab(proxy_mode: &str) {
    if !lab_tools() || !common::require_tool("ip6tables-save", "iptables") {
        return;
    }
    let mut lab =
        TestLab::up(&["--endpoints", "2", "--ip-family", "ipv6", "--proxy-mode", proxy_mode]);
    assert_eq!(lab.info["ip_family"], "ipv6");
    assert_eq!(lab.info["cluster_ip"], "2001:db8::a");
    assert_eq!(lab.endpoints(), ["[2001:db8:2::2]:53", "[2001:db8:3::2]:53"]);
    let resolv = std::fs::read_to_string(lab.info["resolv_conf"].as_str().unwrap()).unwrap();
    let nameservers: Vec<&str> = resolv.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(nameservers, ["nameserver 2001:db8::a"], "{resolv}");

    // The kernel's view of the rules, as the mode's own tool lists them.
    let (listing, needles): (String, Vec<&str>) = match proxy_mode {
        "nftables" => (
            stdout(&lab.in_node(&["nft", "list", "table", "ip6", "kube-proxy"])),
            vec![
                "2001:db8::a . udp . 53 : goto service-FY5PMXPG-kube-system/kube-dns/udp/dns",
                "numgen random mod 2 vmap { 0 : goto endpoint-",
                "dnat to [2001:db8:2::2]:53",
                "dnat to [2001:db8:3::2]:53",
                "ip6 daddr . meta l4proto . th dport vmap @service-ips",
            ],
        ),
        _ => (
            stdout(&lab.in_node(&["ip6tables-save", "-t", "nat"])),
            vec![
                "-A KUBE-SERVICES -d 2001:db8::a/128 -p udp -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU",
                "--comment \"kube-system/kube-dns:dns -> [2001:db8:2::2]:53\" -m statistic --mode random --probability 0.50000000000",
                "-j DNAT --to-destination [2001:db8:3::2]:53",
            ],
        ),
    };
    for needle in needles {
        assert!(listing.contains(needle), "missing {needle:?} in:\n{listing}");
    }
    if proxy_mode == "iptables" {
        let v4 = stdout(&lab.in_node(&["iptables-save", "-t", "nat"]));
        assert!(!v4.contains("KUBE-SVC"), "an IPv6-only lab has no IPv4 Service rules:\n{v4}");
    }

    // Lookups through the v6 ClusterIP: AAAA and A, UDP and TCP, and the
    // pod's resolv.conf search path.
    let names = "kubernetes.default.svc.cluster.local";
    assert_eq!(dig_short(&lab, &["@2001:db8::a", names, "AAAA"]), "2001:db8::1");
    assert_eq!(dig_short(&lab, &["@2001:db8::a", names, "A"]), "198.19.0.1");
    assert_eq!(dig_short(&lab, &["+tcp", "@2001:db8::a", names, "A"]), "198.19.0.1");
    assert_eq!(dig_short(&lab, &["+search", "kube-dns.kube-system", "AAAA"]), "2001:db8::a");
    let entries = conntrack_list(&lab.node_ns(), &["-f", "ipv6", "--orig-dst", "2001:db8::a"]);
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e.reply_src == "2001:db8:2::2" || e.reply_src == "2001:db8:3::2"),
        "{entries:?}"
    );

    // probe's discovery finds the v6 ClusterIP in the node's rules.
    let out = ctdiag(&[
        "probe",
        "--netns",
        &lab.client_ns(),
        "--stats-netns",
        &lab.node_ns(),
        "--count",
        "20",
        "-o",
        "json",
    ]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["server"], "[2001:db8::a]:53", "{report:#}");
    assert_eq!(
        report["cluster_endpoints"],
        serde_json::json!(["[2001:db8:2::2]:53", "[2001:db8:3::2]:53"])
    );
    assert_eq!(report["answered"], report["queries_sent"], "{report:#}");
    assert_eq!(report["lost"], 0, "{report:#}");

    // stale-endpoint with v6 sticky clients.
    let info = lab.scenario("stale-endpoint", &["--endpoint", "2"]);
    let removed_at = now_ms();
    let clients = info["clients"].as_array().unwrap().clone();
    let (on_dead, on_live): (Vec<Value>, Vec<Value>) =
        clients.iter().cloned().partition(|c| c["entry_reply_src"] == "[2001:db8:3::2]:53");
    assert!(on_dead.len() >= 2 && !on_live.is_empty(), "{info:#}");
    assert!(
        clients.iter().all(|c| c["source"].as_str().unwrap().starts_with("[2001:db8:1::2]:")),
        "{info:#}"
    );
    let routes = stdout(&lab.in_node(&["ip", "-6", "route", "show", "type", "blackhole"]));
    assert!(routes.contains("2001:db8:3::2"), "{routes}");
    for c in &on_dead {
        let after = queries_after(c, removed_at, 2);
        assert!(after.iter().all(|q| q["answered"] == false), "client {}: {after:?}", c["id"]);
    }
    for c in &on_live {
        let after = queries_after(c, removed_at, 2);
        assert!(after.iter().all(|q| q["answered"] == true), "client {}: {after:?}", c["id"]);
    }
    let node = lab.node_ns();
    let entries = conntrack_list(&node, &["-f", "ipv6", "--orig-dst", "2001:db8::a"]);
    // The earlier dig and probe flows to endpoint 2 are stale too, but no
    // client reuses their ports: only the sticky clients' ports count here.
    let client_ports: Vec<u16> = clients.iter().map(client_port).collect();
    let mut stale: Vec<u16> = entries
        .iter()
        .filter(|e| e.reply_src == "2001:db8:3::2" && client_ports.contains(&e.sport))
        .map(|e| e.sport)
        .collect();
    let mut dead_ports: Vec<u16> = on_dead.iter().map(client_port).collect();
    stale.sort_unstable();
    dead_ports.sort_unstable();
    assert_eq!(stale, dead_ports, "{entries:?}");
    for port in &dead_ports {
        let out = exec(
            &node,
            &[
                "conntrack",
                "-D",
                "-f",
                "ipv6",
                "-p",
                "udp",
                "--orig-port-src",
                &port.to_string(),
                "--reply-src",
                "2001:db8:3::2",
            ],
        );
        assert_success(&out, "conntrack -D -f ipv6");
    }
    let deleted_at = now_ms();
    for c in &on_dead {
        assert_eq!(queries_after(c, deleted_at, 1)[0]["answered"], true, "client {}", c["id"]);
    }
}

#[test]
fn dual_stack_lab_answers_both_families_and_fills_each() {
    if !lab_tools() {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "2", "--ip-family", "dual", "--proxy-mode", "nftables"]);
    assert_eq!(lab.info["cluster_ips"], serde_json::json!(["198.19.0.10", "2001:db8::a"]));
    assert_eq!(
        lab.info["servers"][0]["addresses"],
        serde_json::json!(["198.18.2.2:53", "[2001:db8:2::2]:53"])
    );
    let resolv = std::fs::read_to_string(lab.info["resolv_conf"].as_str().unwrap()).unwrap();
    let nameservers: Vec<&str> = resolv.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(nameservers, ["nameserver 198.19.0.10", "nameserver 2001:db8::a"], "{resolv}");
    let names = "kubernetes.default.svc.cluster.local";
    assert_eq!(dig_short(&lab, &["@198.19.0.10", names, "AAAA"]), "2001:db8::1");
    assert_eq!(dig_short(&lab, &["@2001:db8::a", names, "A"]), "198.19.0.1");
    let node = lab.node_ns();
    let v4 = fill(&lab, &["--flows", "2000", "--to", "cluster-ip", "--family", "4"]);
    let v6 = fill(&lab, &["--flows", "3000", "--to", "cluster-ip", "--family", "6"]);
    assert_eq!((v4["created"].as_u64(), v6["created"].as_u64()), (Some(2000), Some(3000)));
    assert_eq!(v6["destination"], "[2001:db8::a]:53");
    let entries = conntrack_list(&node, &["-f", "ipv6", "--orig-dst", "2001:db8::a"]);
    let filled: Vec<&Entry> =
        entries.iter().filter(|e| e.src.starts_with("2001:db8:1::1:0:")).collect();
    assert_eq!(filled.len(), 3000);
    assert!(filled
        .iter()
        .all(|e| e.reply_src == "2001:db8:2::2" || e.reply_src == "2001:db8:3::2"));
    let unrelated = fill(&lab, &["--flows", "1000", "--to", "unrelated", "--family", "6"]);
    assert_eq!(unrelated["created"], 1000, "{unrelated:#}");
    assert_eq!(conntrack_list(&node, &["-f", "ipv6", "--orig-dst", "2001:db8:fa::1"]).len(), 1000);
}

/// A sticky client never outlives its lab: once the client pod's namespace
/// is gone (deleted behind ctdiag's back here), each client exits by itself
/// within a query interval or two.
#[test]
fn sticky_clients_exit_when_their_namespace_is_gone() {
    if !lab_tools() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2"]);
    let info = lab.scenario("never-translated", &[]);
    let pids: Vec<u32> = info["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pid"].as_u64().unwrap() as u32)
        .collect();
    assert!(!pids.is_empty());
    assert!(pids.iter().all(|p| common::process_running(*p)));
    assert_success(&common::run("ip", &["netns", "del", &lab.client_ns()]), "ip netns del");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pids.iter().any(|p| common::process_running(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left: Vec<&u32> = pids.iter().filter(|p| common::process_running(**p)).collect();
    assert!(left.is_empty(), "clients {left:?} outlived their namespace");
}

/// Deletes, with conntrack-tools, the UDP entries of these client source
/// ports whose reply comes from `reply_src`.
fn delete_with_conntrack(node: &str, ports: &[u16], reply_src: &str) {
    for port in ports {
        let out = exec(
            node,
            &[
                "conntrack",
                "-D",
                "-p",
                "udp",
                "--orig-port-src",
                &port.to_string(),
                "--reply-src",
                reply_src,
            ],
        );
        assert_success(&out, "conntrack -D");
    }
}
