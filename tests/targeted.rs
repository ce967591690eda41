//! The targeted read (one Service's rules, issue 17) against the full read
//! (every rule), on the real rule dumps of tests/fixtures/kube-proxy loaded
//! into scratch namespaces and on the lab in both proxy modes and every
//! address family: for every Service and every port of it, the same
//! Service ports, each source's entry kept apart.
//!
//! Network rule: nothing here sends a packet. The real dumps carry their
//! clusters' addresses (10.x, 172.30.x, ...): they are only loaded as
//! rules into namespaces that have no interface but a downed loopback, so
//! no packet ever matches them.

mod common;

use std::collections::BTreeSet;

use common::TestLab;
use ctdiag::netns::Netns;
use ctdiag::service::ipvs::ClusterDnsHint;
use ctdiag::service::select::ServiceSpec;
use ctdiag::service::targeted::{discover_names, discover_service};
use ctdiag::service::{discover, Service};
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kube-proxy");

/// A scratch network namespace, deleted on drop.
struct Scratch {
    name: String,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let name = format!("{}-{tag}", common::unique_prefix());
        common::assert_success(&common::run("ip", &["netns", "add", &name]), "ip netns add");
        Scratch { name }
    }

    /// Runs a shell command line inside the namespace.
    fn sh(&self, script: &str) {
        let out = common::exec(&self.name, &["sh", "-c", script]);
        common::assert_success(&out, script);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = common::run("ip", &["netns", "del", &self.name]);
    }
}

fn spec(namespace: &str, name: &str, port: Option<&str>) -> ServiceSpec {
    ServiceSpec { namespace: namespace.into(), name: name.into(), port: port.map(str::to_string) }
}

/// For every Service the full read finds in `ns`, and for each of its
/// ports by name and by number: the targeted read gives exactly the
/// Service ports of the full read that the spec names, from the same
/// sources. A Service that is not there: nothing. Returns how many
/// Service ports were compared.
fn targeted_equals_full(ns: &str, what: &str) -> usize {
    let netns = Netns::open(ns).unwrap();
    let full = discover(Some(&netns)).unwrap();
    assert!(!full.parsed.services.is_empty(), "{what}: the full read found nothing");
    let names: BTreeSet<(String, String)> =
        full.parsed.services.iter().map(|s| (s.namespace.clone(), s.name.clone())).collect();
    let hint = ClusterDnsHint::default();
    let mut compared = 0;
    for (namespace, name) in &names {
        let mut specs = vec![spec(namespace, name, None)];
        for s in
            full.parsed.services.iter().filter(|s| &s.namespace == namespace && &s.name == name)
        {
            specs.push(spec(namespace, name, Some(&s.port.to_string())));
            if !s.port_name.is_empty() {
                specs.push(spec(namespace, name, Some(&s.port_name)));
            }
        }
        for spec in specs {
            let want: Vec<&Service> =
                full.parsed.services.iter().filter(|s| spec.matches(s)).collect();
            let got = discover_service(Some(&netns), &spec, &hint).unwrap();
            let got: Vec<&Service> = got.parsed.services.iter().collect();
            assert_eq!(got, want, "{what}: {spec}");
            assert!(!got.is_empty(), "{what}: {spec}");
            compared += got.len();
        }
    }
    let missing = discover_service(Some(&netns), &spec("nowhere", "nothing", None), &hint).unwrap();
    assert_eq!(missing.parsed.services, Vec::<Service>::new(), "{what}");
    assert_eq!(missing.tools, full.tools, "{what}: the same sources were read");
    // What an error lists when a Service is not found: every port the
    // full read finds, with its addresses and source.
    let names = discover_names(Some(&netns), &hint).unwrap();
    let named = |services: &[Service]| -> Vec<String> {
        services
            .iter()
            .map(|s| {
                format!(
                    "{} {} {:?} {} {}",
                    s.port_name_string(),
                    s.protocol.as_str(),
                    s.cluster_ips,
                    s.port,
                    s.proxy_mode.as_str()
                )
            })
            .collect()
    };
    assert_eq!(named(&names.parsed.services), named(&full.parsed.services), "{what}");
    assert_eq!(names.per_mode, full.per_mode, "{what}");
    assert_eq!(names.tools, full.tools, "{what}");
    // Through the binary: the same error, word for word.
    let missing = |read: &str| {
        let out = common::run(
            "/usr/bin/env",
            &[
                &format!("CTDIAG_SERVICE_READ={read}"),
                common::CTDIAG,
                "stale",
                "--netns",
                ns,
                "--service",
                "nowhere/nothing",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{what} {read}: {}", common::stderr(&out));
        common::stderr(&out)
    };
    let full_error = missing("full");
    assert!(full_error.contains("no UDP Service nowhere/nothing"), "{what}: {full_error}");
    assert_eq!(missing("targeted"), full_error, "{what}");
    compared
}

#[test]
fn real_rule_dumps_read_the_same_targeted_and_full() {
    if !common::require_root()
        || !common::require_tool("iptables-restore", "iptables")
        || !common::require_tool("nft", "nftables")
        || !common::require_tool("nfacct", "nfacct")
    {
        return;
    }
    let dir = FIXTURES;
    let nft_test = format!("{{ grep -E '^add (table|chain|set|map) ' {dir}/kube-proxy-nftables-test.nft; grep -vE '^add (table|chain|set|map) ' {dir}/kube-proxy-nftables-test.nft; }} | nft -f -");
    let cases: Vec<(&str, String)> = vec![
        ("eks", format!("iptables-restore < {dir}/eks-1.10-hello.iptables")),
        ("kubeadm-nodns", format!("iptables-restore < {dir}/kubeadm-1.11-no-dns-endpoints.iptables")),
        (
            "weave",
            format!("grep -v -- --match-set {dir}/kubeadm-1.11-weave.iptables | iptables-restore"),
        ),
        ("kp-ipt", format!("nfacct add ct_state_invalid_dropped_pkts && nfacct add localhost_nps_accepted_pkts && iptables-restore < {dir}/kube-proxy-iptables-test.iptables")),
        ("kp-nft", nft_test),
        ("syn128", format!("iptables-restore < {dir}/synthetic-1.28.iptables && ip6tables-restore < {dir}/synthetic-1.28.ip6tables")),
        ("syn133", format!("nft -f {dir}/synthetic-1.33.nft")),
        // Both modes' rules at once (leftovers of a mode switch): each
        // source's entry stays its own.
        ("both", format!("iptables-restore < {dir}/synthetic-1.28.iptables && ip6tables-restore < {dir}/synthetic-1.28.ip6tables && nft -f {dir}/synthetic-1.33.nft")),
    ];
    for (tag, load) in cases {
        let ns = Scratch::new(tag);
        ns.sh(&load);
        let compared = targeted_equals_full(&ns.name, tag);
        assert!(compared > 0, "{tag}");
    }
}

/// The fixture with both modes' rules: kube-dns is found twice, once per
/// mode, each with the endpoints its own rules give (what the listing
/// tools print, not the code under test).
#[test]
fn both_modes_stay_two_entries() {
    if !common::require_root()
        || !common::require_tool("iptables-restore", "iptables")
        || !common::require_tool("nft", "nftables")
    {
        return;
    }
    let dir = FIXTURES;
    let ns = Scratch::new("two");
    ns.sh(&format!(
        "iptables-restore < {dir}/synthetic-1.28.iptables && nft -f {dir}/synthetic-1.33.nft"
    ));
    let netns = Netns::open(&ns.name).unwrap();
    let got = discover_service(
        Some(&netns),
        &spec("kube-system", "kube-dns", Some("dns")),
        &ClusterDnsHint::default(),
    )
    .unwrap();
    let modes: Vec<&str> = got.parsed.services.iter().map(|s| s.proxy_mode.as_str()).collect();
    assert_eq!(modes, ["iptables", "nftables"], "{:?}", got.parsed.services);
    // The endpoints each listing names for kube-dns:dns.
    let save = common::stdout(&common::exec(&ns.name, &["iptables-save"]));
    let nft = common::stdout(&common::exec(&ns.name, &["nft", "list", "ruleset"]));
    for (service, listing) in got.parsed.services.iter().zip([&save, &nft]) {
        assert!(!service.endpoints.is_empty(), "{service:?}");
        for endpoint in &service.endpoints {
            assert!(listing.contains(&endpoint.ip().to_string()), "{endpoint} not in\n{listing}");
        }
    }
}

/// `ctdiag stale --service kube-dns -o json` with the targeted read (the
/// default) and with the full read (`CTDIAG_SERVICE_READ=full`), over
/// netlink and with the listing tools (pairs of the same source).
fn stale_reports(node: &str) -> Vec<(String, Value)> {
    let mut reports = Vec::new();
    for from in ["netlink", "tools"] {
        for read in ["targeted", "full"] {
            let out = common::run(
                "/usr/bin/env",
                &[
                    &format!("CTDIAG_SERVICE_READ={read}"),
                    &format!("CTDIAG_RULES_FROM={from}"),
                    common::CTDIAG,
                    "stale",
                    "--netns",
                    node,
                    "--service",
                    "kube-dns",
                    "-o",
                    "json",
                ],
            );
            assert_eq!(out.status.code(), Some(0), "{read} {from}: {}", common::stderr(&out));
            let mut report = common::json(&out);
            // How long the scan took and what the table holds at the
            // moment are the only fields allowed to differ.
            strip_timing(&mut report);
            reports.push((format!("{read} {from}"), report));
        }
    }
    reports
}

fn strip_timing(value: &mut Value) {
    match value {
        Value::Object(map) => {
            // And what the conntrack table holds at the moment (entries
            // of earlier runs expire between two runs).
            map.retain(|key, _| {
                !key.contains("elapsed")
                    && !key.ends_with("_ms")
                    && !["table_entries", "expires_s", "state"].contains(&key.as_str())
            });
            map.values_mut().for_each(strip_timing);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_timing),
        _ => {}
    }
}

#[test]
fn the_lab_reads_the_same_targeted_and_full_in_both_modes_and_families() {
    if !common::require_root()
        || !common::require_tool("nft", "nftables")
        || !common::require_tool("ip6tables-save", "iptables")
    {
        return;
    }
    for mode in ["iptables", "nftables"] {
        for family in ["ipv4", "ipv6", "dual"] {
            let lab =
                TestLab::up(&["--endpoints", "2", "--ip-family", family, "--proxy-mode", mode]);
            let node = lab.node_ns();
            let what = format!("{mode} {family}");
            // kube-dns's dns and dns-tcp ports.
            assert_eq!(targeted_equals_full(&node, &what), 2 * 3 + 2, "{what}");
            let reports = stale_reports(&node);
            for pair in reports.chunks(2) {
                let [(targeted, got), (full, want)] = pair else { unreachable!() };
                assert_eq!(got, want, "{what}: {targeted} differs from {full}");
                // One ClusterIP: the report is the Service's; dual stack:
                // one entry per ClusterIP.
                let entries = got["services"].as_array().cloned().unwrap_or(vec![got.clone()]);
                assert_eq!(entries.len(), if family == "dual" { 2 } else { 1 }, "{what}: {got:#}");
                for entry in entries {
                    assert_eq!(entry["proxy_mode"], mode, "{what}: {got:#}");
                    let endpoints = entry["endpoints"].as_array().expect("endpoints");
                    assert_eq!(endpoints.len(), 2, "{what}: {got:#}");
                }
            }
        }
    }
}
