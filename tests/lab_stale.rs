//! The lab's side of `ctdiag stale`: `lab fill` (many conntrack entries,
//! fast), the sticky clients of the stale-endpoint and never-translated
//! scenarios, and the IPv6 lab. The kernel's own view (`conntrack -C`,
//! `conntrack -L`) and real DNS clients check every result.

mod common;

use std::collections::BTreeMap;

use common::{assert_success, ctdiag, exec, json, stdout, TestLab};
use serde_json::Value;

/// `conntrack -C` in the namespace.
fn conntrack_count(ns: &str) -> u64 {
    let out = exec(ns, &["conntrack", "-C"]);
    assert_success(&out, "conntrack -C");
    stdout(&out)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("conntrack -C printed {:?}", stdout(&out)))
}

/// One line of `conntrack -L`: the original and reply tuples and the
/// seconds left.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    timeout: u64,
    src: String,
    dst: String,
    sport: u16,
    reply_src: String,
    unreplied: bool,
}

/// Parses `conntrack -L` lines (`udp 17 29 src=.. dst=.. sport=.. dport=..
/// [UNREPLIED] src=.. dst=.. sport=.. dport=.. ...`).
fn parse_conntrack(text: &str) -> Vec<Entry> {
    text.lines()
        .filter(|l| l.starts_with("udp"))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let values = |key: &str| -> Vec<&str> {
                fields.iter().filter_map(|f| f.strip_prefix(key)).collect()
            };
            Entry {
                timeout: fields[2].parse().unwrap_or_else(|_| panic!("{line}")),
                src: values("src=")[0].to_string(),
                dst: values("dst=")[0].to_string(),
                sport: values("sport=")[0].parse().unwrap(),
                reply_src: values("src=")[1].to_string(),
                unreplied: line.contains("[UNREPLIED]"),
            }
        })
        .collect()
}

/// `conntrack -L -p udp ARGS` in the namespace, parsed.
fn conntrack_list(ns: &str, args: &[&str]) -> Vec<Entry> {
    let mut cmd = vec!["conntrack", "-L", "-p", "udp"];
    cmd.extend_from_slice(args);
    let out = exec(ns, &cmd);
    assert_success(&out, &cmd.join(" "));
    parse_conntrack(&stdout(&out))
}

/// `ctdiag lab fill --prefix P -o json ARGS`, which must succeed.
fn fill(lab: &TestLab, args: &[&str]) -> Value {
    let mut full = vec!["lab", "fill", "--prefix", lab.prefix.as_str(), "-o", "json"];
    full.extend_from_slice(args);
    let out = ctdiag(&full);
    assert_success(&out, &full.join(" "));
    json(&out)
}

fn lab_tools() -> bool {
    common::require_root()
        && common::require_tool("conntrack", "conntrack")
        && common::require_tool("nft", "nftables")
        && common::require_tool("dig", "bind9-dnsutils")
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
