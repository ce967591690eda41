//! `ctdiag stale` when most of a table is stale, beyond the 1,000 entries
//! of each kind the report keeps in memory per Service (README, "Stale
//! entries"): the counts must still be exact, `--all-entries -o json` must
//! still list every entry once, and `--flush` must still delete exactly the
//! stale entries, all checked against `conntrack -L` before and after.
//!
//! Network rule: the entries are made by `ctdiag lab fill` (raw datagrams
//! from the lab's client pod through the lab's node); nothing leaves the
//! lab's namespaces.

mod common;

use std::collections::BTreeSet;

use common::{assert_success, ctdiag, exec, json, stdout, TestLab};
use serde_json::Value;

/// The entries the report keeps per Service and kind, as the README
/// documents it.
const KEPT: usize = 1000;

/// `conntrack -L -p udp --orig-dst IP --orig-port-dst 53` in `ns`: per
/// entry, the client `ip:port` and the reply source address.
fn entries_to(ns: &str, cluster_ip: &str) -> Vec<(String, String)> {
    let out = exec(
        ns,
        &["conntrack", "-L", "-p", "udp", "--orig-dst", cluster_ip, "--orig-port-dst", "53"],
    );
    assert_success(&out, "conntrack -L");
    stdout(&out)
        .lines()
        .filter_map(|line| {
            let field = |key: &str, nth: usize| {
                line.split_whitespace()
                    .filter_map(|t| t.strip_prefix(key))
                    .nth(nth)
                    .map(str::to_string)
            };
            Some((format!("{}:{}", field("src=", 0)?, field("sport=", 0)?), field("src=", 1)?))
        })
        .collect()
}

fn sources(entries: &[Value], stale: bool) -> BTreeSet<String> {
    entries
        .iter()
        .filter(|e| e["stale"] == stale)
        .filter_map(|e| e["src"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn thousands_of_stale_entries_are_counted_listed_and_flushed_exactly() {
    if !common::require_root() || !common::require_tool("conntrack", "conntrack") {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2"]);
    let node = lab.node_ns();
    let cluster_ip = lab.cluster_ip();
    // 3,000 flows through the ClusterIP, DNATed by the rules to the two
    // endpoints (about half each), living 20 minutes without traffic; then
    // endpoint 2 leaves the rules and its pod goes, its entries stay.
    let fill = ctdiag(&[
        "lab",
        "fill",
        "--prefix",
        &lab.prefix,
        "--flows",
        "3000",
        "--to",
        "cluster-ip",
        "--timeout",
        "1200",
        "-o",
        "json",
    ]);
    assert_success(&fill, "lab fill");
    lab.scenario("stale-endpoint", &["--endpoint", "2"]);
    let dead = lab.endpoint_ip(2);
    let before = entries_to(&node, &cluster_ip);
    let kernel_stale: BTreeSet<String> =
        before.iter().filter(|(_, reply)| *reply == dead).map(|(src, _)| src.clone()).collect();
    let kernel_live: BTreeSet<String> =
        before.iter().filter(|(_, reply)| *reply != dead).map(|(src, _)| src.clone()).collect();
    assert!(kernel_stale.len() > KEPT, "only {} entries towards {dead}", kernel_stale.len());

    // The summary: exact counts, a list of the first 1,000, and it says so.
    let out = ctdiag(&["stale", "--netns", &node, "--service", "kube-dns", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "stale entries are a problem: {out:?}");
    let report = json(&out);
    assert_eq!(report["stale_count"], kernel_stale.len() as u64, "{}", report["findings"]);
    let listed = report["entries"].as_array().unwrap();
    assert_eq!(listed.len(), KEPT);
    assert!(sources(listed, true).is_subset(&kernel_stale));
    assert_eq!(report["entries_truncated"], true);
    assert_eq!(report["entries_not_listed"], (kernel_stale.len() - KEPT) as u64);
    let towards_dead = report["by_target"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == format!("{dead}:53"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(towards_dead["stale"], kernel_stale.len() as u64, "{towards_dead}");

    // The table says how many it does not show.
    let out = ctdiag(&["stale", "--netns", &node, "--service", "kube-dns", "--color", "never"]);
    let table = stdout(&out);
    let not_kept = format!("{} were counted but not kept", kernel_stale.len() - KEPT);
    assert!(table.contains(&not_kept), "{table}");

    // Every entry, each once: the stale ones are exactly the kernel's.
    let out = ctdiag(&[
        "stale",
        "--netns",
        &node,
        "--service",
        "kube-dns",
        "--all-entries",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let every = json(&out);
    let entries = every["entries"].as_array().unwrap();
    assert_eq!(sources(entries, true), kernel_stale);
    assert!(kernel_live.is_subset(&sources(entries, false)), "a live entry is missing");
    let count = every["stale_count"].as_u64().unwrap() + every["live_count"].as_u64().unwrap();
    assert_eq!(entries.len() as u64, count, "every entry counted is listed, once");
    assert!(every.get("entries_truncated").is_none());

    // The flush deletes them all, in batches, and nothing else.
    let out = ctdiag(&[
        "stale",
        "--netns",
        &node,
        "--service",
        "kube-dns",
        "--flush",
        "--yes",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let flushed = json(&out);
    let flush = &flushed["flush"];
    assert_eq!(
        flush["deleted"].as_u64().unwrap() + flush["already_gone"].as_u64().unwrap(),
        kernel_stale.len() as u64,
        "{flush}"
    );
    assert_eq!((flush["failed"].as_u64(), flush["remaining"].as_u64()), (Some(0), Some(0)));
    let after = entries_to(&node, &cluster_ip);
    assert!(after.iter().all(|(_, reply)| *reply != dead), "an entry towards {dead} is left");
    let after_sources: BTreeSet<String> = after.into_iter().map(|(src, _)| src).collect();
    assert!(kernel_live.is_subset(&after_sources), "a live entry was deleted");
}
