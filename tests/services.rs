//! `ctdiag services` through the real binary: rule dumps of real clusters
//! loaded into scratch namespaces and read back, the lab in both proxy
//! modes, the API cross-check, probe's Service flags, and bad input.
//!
//! Network rule: nothing here sends a packet except `probe` inside a lab.
//! The real dumps carry their clusters' addresses (10.x, 172.30.x, ...):
//! they are only loaded as rules into namespaces that have no interface
//! but a downed loopback, so no packet ever matches them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::TestLab;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

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

    /// Runs a shell command line inside the namespace (for `< file` and
    /// pipes), bounded like every harness command.
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

/// A directory of fake tools, removed on drop.
struct FakeBin {
    dir: PathBuf,
}

impl FakeBin {
    fn new(tag: &str) -> FakeBin {
        let dir = std::env::temp_dir().join(format!("ctdiag-{}-{tag}", common::unique_prefix()));
        std::fs::create_dir_all(&dir).unwrap();
        FakeBin { dir }
    }

    fn script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

impl Drop for FakeBin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ctdiag ARGS` with `CTDIAG_RULES_FROM=from` (`netlink`, `tools`).
fn ctdiag_rules_from(from: &str, args: &[&str]) -> Output {
    let var = format!("CTDIAG_RULES_FROM={from}");
    let mut full = vec![var.as_str(), common::CTDIAG];
    full.extend_from_slice(args);
    common::run("/usr/bin/env", &full)
}

/// The services JSON without `proxy_mode` (the expected files are shared
/// between modes), after checking every entry's mode.
fn without_mode(mut value: Value, mode: &str) -> Value {
    for s in value.as_array_mut().expect("a JSON array") {
        let object = s.as_object_mut().unwrap();
        let keys: Vec<&String> = object.keys().collect();
        assert_eq!(
            keys,
            [
                "cluster_ips",
                "endpoints",
                "name",
                "namespace",
                "port",
                "port_name",
                "protocol",
                "proxy_mode"
            ],
            "exactly the contract's fields"
        );
        assert_eq!(object.remove("proxy_mode").unwrap(), mode);
    }
    value
}

fn expected(file: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("kube-proxy").join(file)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every ClusterIP the report names is in the kernel's own listing.
fn cluster_ips_in(listing: &str, report: &Value) {
    for s in report.as_array().unwrap() {
        for ip in s["cluster_ips"].as_array().unwrap() {
            let ip = ip.as_str().unwrap();
            assert!(listing.contains(ip), "{ip} is not in the kernel's listing");
        }
    }
}

/// Rule dumps of real clusters (see tests/fixtures/kube-proxy/README.md),
/// loaded with the tools kube-proxy uses and read back through the binary:
/// every Service port with the right ClusterIPs and endpoints, nothing
/// extra, in the mode they were written in.
#[test]
fn real_rule_dumps_read_back_through_the_binary() {
    if !common::require_root()
        || !common::require_tool("iptables-restore", "iptables")
        || !common::require_tool("nft", "nftables")
        || !common::require_tool("nfacct", "nfacct")
    {
        return;
    }
    let dir = format!("{FIXTURES}/kube-proxy");
    // (fixture, how to load it, expected file, mode, exit status)
    let cases: &[(&str, String, &str, &str, i32)] = &[
        (
            "eks-1.10-hello",
            format!("iptables-restore < {dir}/eks-1.10-hello.iptables"),
            "eks-1.10-hello.expected.json",
            "iptables",
            0,
        ),
        (
            "kubeadm-no-dns",
            format!("iptables-restore < {dir}/kubeadm-1.11-no-dns-endpoints.iptables"),
            "kubeadm-1.11-no-dns-endpoints.expected.json",
            "iptables",
            1,
        ),
        (
            // Weave's rules match ipsets that exist only on that node.
            "kubeadm-weave",
            format!("grep -v -- --match-set {dir}/kubeadm-1.11-weave.iptables | iptables-restore"),
            "kubeadm-1.11-weave.expected.json",
            "iptables",
            0,
        ),
        (
            // kube-proxy creates its nfacct counters before its rules.
            "kp-iptables",
            format!("nfacct add ct_state_invalid_dropped_pkts && nfacct add localhost_nps_accepted_pkts && iptables-restore < {dir}/kube-proxy-iptables-test.iptables"),
            "kube-proxy-test.expected.json",
            "iptables",
            0,
        ),
        (
            // The test's dump is sorted by object; kube-proxy's own
            // transaction adds chains, sets and maps before rules.
            "kp-nft",
            format!("{{ grep -E '^add (table|chain|set|map) ' {dir}/kube-proxy-nftables-test.nft; grep -vE '^add (table|chain|set|map) ' {dir}/kube-proxy-nftables-test.nft; }} | nft -f -"),
            "kube-proxy-test.expected.json",
            "nftables",
            0,
        ),
        (
            "synthetic-1.28",
            format!("iptables-restore < {dir}/synthetic-1.28.iptables && ip6tables-restore < {dir}/synthetic-1.28.ip6tables"),
            "synthetic-1.28.expected.json",
            "iptables",
            0,
        ),
        (
            "synthetic-1.33",
            format!("nft -f {dir}/synthetic-1.33.nft"),
            "synthetic-1.33.expected.json",
            "nftables",
            0,
        ),
    ];
    for (tag, load, expected_file, mode, status) in cases {
        let ns = Scratch::new(tag);
        ns.sh(load);
        let args = ["services", "-o", "json", "--netns", &ns.name];
        let out = common::ctdiag(&args);
        assert_eq!(out.status.code(), Some(*status), "{tag}: {}", common::stderr(&out));
        let report = common::json(&out);
        let listing = if *mode == "iptables" {
            common::stdout(&common::exec(&ns.name, &["iptables-save"]))
                + &common::stdout(&common::exec(&ns.name, &["ip6tables-save"]))
        } else {
            common::stdout(&common::exec(&ns.name, &["nft", "list", "ruleset"]))
        };
        cluster_ips_in(&listing, &report);
        // The same Services over netlink alone and through the listing
        // tools alone.
        for from in ["netlink", "tools"] {
            let forced = ctdiag_rules_from(from, &args);
            assert_eq!(
                forced.status.code(),
                Some(*status),
                "{tag} {from}: {}",
                common::stderr(&forced)
            );
            assert_eq!(common::json(&forced), report, "{tag}: {from} differs from the default");
        }
        // The default read them over netlink (iptables-restore writes
        // through iptables-nft here).
        let table = common::ctdiag(&["services", "--netns", &ns.name]);
        let source = format!(
            "from netlink ({}) in {}",
            if *mode == "iptables" { "iptables-nft" } else { "nftables" },
            ns.name
        );
        assert!(common::stdout(&table).contains(&source), "{tag}: {}", common::stdout(&table));
        assert_eq!(without_mode(report, mode), expected(expected_file), "{tag}");
    }
}

/// The kubeadm node whose kube-dns had no endpoints: the critical finding,
/// in the table and (with -o json) on stderr, and exit 1.
#[test]
fn kube_dns_without_endpoints_is_critical() {
    if !common::require_root() || !common::require_tool("iptables-restore", "iptables") {
        return;
    }
    let ns = Scratch::new("nodns");
    ns.sh(&format!(
        "iptables-restore < {FIXTURES}/kube-proxy/kubeadm-1.11-no-dns-endpoints.iptables"
    ));
    let table = common::ctdiag(&["services", "--netns", &ns.name, "--service", "kube-dns"]);
    assert_eq!(table.status.code(), Some(1), "{}", common::stderr(&table));
    let text = common::stdout(&table);
    assert!(table_findings(&text).contains(&("CRITICAL", "kube-dns-no-endpoints")), "{text}");
    assert!(text.contains("none (REJECT)"), "{text}");
    let json = common::ctdiag(&["services", "--netns", &ns.name, "-o", "json"]);
    assert_eq!(json.status.code(), Some(1));
    assert!(common::stderr(&json).contains("[kube-dns-no-endpoints]"), "{}", common::stderr(&json));
    assert_eq!(common::json(&json).as_array().unwrap().len(), 3);
}

fn kube_dns_entries(report: &Value) -> Vec<&Value> {
    report.as_array().unwrap().iter().filter(|s| s["name"] == "kube-dns").collect()
}

#[test]
fn lab_lists_kube_dns_with_both_endpoints_in_both_modes() {
    if !common::require_root() {
        return;
    }
    for mode in ["iptables", "nftables"] {
        let lab = TestLab::up(&["--proxy-mode", mode]);
        let out = common::ctdiag(&["services", "--netns", &lab.node_ns(), "-o", "json"]);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", common::stderr(&out));
        let report = common::json(&out);
        let dns = kube_dns_entries(&report);
        assert_eq!(dns.len(), 2, "{mode}: {report:#}");
        for (entry, (port_name, protocol)) in dns.iter().zip([("dns", "udp"), ("dns-tcp", "tcp")]) {
            assert_eq!(entry["port_name"], port_name);
            assert_eq!(entry["protocol"], protocol);
            assert_eq!(entry["cluster_ips"], serde_json::json!([lab.cluster_ip()]));
            assert_eq!(entry["port"], 53);
            assert_eq!(entry["endpoints"], serde_json::json!(lab.endpoints()), "{mode}");
            assert_eq!(entry["proxy_mode"], mode);
        }
        // The table names the same.
        let table = common::ctdiag(&["services", "--netns", &lab.node_ns()]);
        let text = common::stdout(&table);
        assert!(text.contains("198.18.2.2:53, 198.18.3.2:53") && text.contains(mode), "{text}");
    }
}

/// The lab in both proxy modes and every address family: the rules read
/// over netlink (the default) give exactly the Services the listing tools
/// give, kube-dns with its ClusterIP(s) and both endpoints of each family.
#[test]
fn labs_of_every_family_read_the_same_over_netlink_and_with_the_tools() {
    if !common::require_root()
        || !common::require_tool("nft", "nftables")
        || !common::require_tool("ip6tables-save", "iptables")
    {
        return;
    }
    let v4 = ["198.18.2.2:53", "198.18.3.2:53"];
    let v6 = ["[2001:db8:2::2]:53", "[2001:db8:3::2]:53"];
    for mode in ["iptables", "nftables"] {
        for (family, cluster_ips, endpoints) in [
            ("ipv4", vec!["198.19.0.10"], v4.to_vec()),
            ("ipv6", vec!["2001:db8::a"], v6.to_vec()),
            ("dual", vec!["198.19.0.10", "2001:db8::a"], [v4, v6].concat()),
        ] {
            let lab =
                TestLab::up(&["--endpoints", "2", "--ip-family", family, "--proxy-mode", mode]);
            let node = lab.node_ns();
            let args = ["services", "--netns", &node, "-o", "json"];
            let out = common::ctdiag(&args);
            assert_eq!(out.status.code(), Some(0), "{mode} {family}: {}", common::stderr(&out));
            let report = common::json(&out);
            for from in ["netlink", "tools"] {
                let forced = ctdiag_rules_from(from, &args);
                assert_eq!(common::json(&forced), report, "{mode} {family}: {from} differs");
            }
            let dns = kube_dns_entries(&report);
            assert_eq!(dns.len(), 2, "{mode} {family}: {report:#}");
            for entry in dns {
                assert_eq!(entry["cluster_ips"], serde_json::json!(cluster_ips), "{mode} {family}");
                assert_eq!(entry["endpoints"], serde_json::json!(endpoints), "{mode} {family}");
                assert_eq!(entry["proxy_mode"], mode);
            }
            let table = common::stdout(&common::ctdiag(&["services", "--netns", &node]));
            let source =
                if mode == "iptables" { "netlink (iptables-nft)" } else { "netlink (nftables)" };
            assert!(table.contains(&format!("from {source} in {node}")), "{table}");
        }
    }
}

/// Without CAP_NET_ADMIN nf_tables refuses the netlink dump: the listing
/// tools are tried (refused too), and the error says why for both.
#[test]
fn without_net_admin_netlink_and_the_tools_are_refused_and_said() {
    if !common::require_root()
        || !common::require_tool("nft", "nftables")
        || !common::require_tool("setpriv", "util-linux")
    {
        return;
    }
    let ns = Scratch::new("nocap");
    ns.sh(&format!("nft -f {FIXTURES}/kube-proxy/synthetic-1.33.nft"));
    let out = common::run(
        "setpriv",
        &[
            "--bounding-set",
            "-net_admin",
            "--inh-caps",
            "-net_admin",
            common::CTDIAG,
            "services",
            "--netns",
            &ns.name,
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    let err = common::stderr(&out);
    assert!(
        err.contains("nf_tables refused to list the rules over netlink: CAP_NET_ADMIN is needed"),
        "{err}"
    );
    assert!(err.contains("nft list table ip kube-proxy"), "{err}");
    assert!(out.stdout.is_empty());
}

/// A rule the netlink reader does not follow (a DNAT to the packet's own
/// source address): the default falls back to `nft` and says why with -v,
/// with the same Services; forced to netlink, it is an error.
#[test]
fn something_not_followed_over_netlink_is_read_with_nft() {
    if !common::require_root() || !common::require_tool("nft", "nftables") {
        return;
    }
    let ns = Scratch::new("odd");
    ns.sh(r#"nft -f - <<'EOF'
table ip kube-proxy {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 198.19.0.10 . udp . 53 : goto service-AAAAAAAA-kube-system/kube-dns/udp/dns }
	}
	chain service-AAAAAAAA-kube-system/kube-dns/udp/dns {
		meta l4proto udp dnat to ip saddr : 53
	}
}
EOF"#);
    let args = ["services", "--netns", &ns.name, "-o", "json", "-v"];
    let out = common::ctdiag(&args);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("note: nftables mode read with nft, not over netlink: the netlink reader does not follow ip kube-proxy chain service-AAAAAAAA-kube-system/kube-dns/udp/dns"),
        "{err}"
    );
    assert_eq!(common::json(&out), common::json(&ctdiag_rules_from("tools", &args)));
    let forced = ctdiag_rules_from("netlink", &args);
    assert_eq!(forced.status.code(), Some(2));
    assert!(common::stderr(&forced).contains("does not follow"), "{}", common::stderr(&forced));
}

/// Leftover rules of a second mode: a warning, exit 1.
#[test]
fn rules_of_two_modes_are_a_warning() {
    if !common::require_root() || !common::require_tool("nft", "nftables") {
        return;
    }
    let lab = TestLab::up(&[]);
    let load = common::exec(
        &lab.node_ns(),
        &["nft", "-f", &format!("{FIXTURES}/kube-proxy/synthetic-1.33.nft")],
    );
    common::assert_success(&load, "nft -f");
    let out = common::ctdiag(&["services", "--netns", &lab.node_ns()]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(table_findings(&text).contains(&("WARNING", "mixed-proxy-modes")), "{text}");
    assert!(text.contains("iptables 2, nftables"), "{text}");
}

#[test]
fn unknown_service_lists_the_services_found() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let out = common::ctdiag(&["services", "--netns", &lab.node_ns(), "--service", "default/nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert!(err.contains("no Service default/nope"), "{err}");
    assert!(
        err.contains("kube-system/kube-dns:dns (udp 53)")
            && err.contains("kube-system/kube-dns:dns-tcp (tcp 53)"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn no_rules_names_the_modes_checked_and_the_flags() {
    if !common::require_root() {
        return;
    }
    let ns = Scratch::new("empty");
    let out = common::ctdiag(&["services", "--netns", &ns.name]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    for needle in [
        "no kube-proxy rules",
        "iptables mode",
        "nftables mode",
        "IPVS mode",
        "--cluster-ip",
        "--endpoints",
    ] {
        assert!(err.contains(needle), "lacks {needle:?}: {err}");
    }
}

/// PATH tricks. By default the rules are read over netlink: no listing
/// tool is needed at all. Made to use the listing tools
/// (CTDIAG_RULES_FROM=tools): with no tool at all the error names each;
/// with only `nft`, nftables mode is read and the missing iptables-save is
/// named with -v.
#[test]
fn missing_listing_tools_are_named() {
    if !common::require_root() || !common::require_tool("nft", "nftables") {
        return;
    }
    let lab = TestLab::up(&["--proxy-mode", "nftables"]);
    let empty = FakeBin::new("nobin");
    let out = common::ctdiag_with_tools(
        &empty.dir,
        true,
        &[],
        &["services", "--netns", &lab.node_ns(), "-v"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(text.contains("from netlink (nftables)"), "{text}");
    assert!(text.contains("198.18.2.2:53, 198.18.3.2:53"), "{text}");

    let node = lab.node_ns();
    // As root the tools are looked up in ctdiag's fixed root PATH only:
    // `ctdiag_with_tools` leaves nothing there but the fake directory.
    let with_tools = |bin: &FakeBin, extra: &[&str]| {
        let mut args = vec!["services", "--netns", &node];
        args.extend_from_slice(extra);
        common::ctdiag_with_tools(&bin.dir, true, &["CTDIAG_RULES_FROM=tools"], &args)
    };
    let out = with_tools(&empty, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert!(
        err.contains("iptables-save")
            && err.contains("not installed (the iptables package provides it)"),
        "{err}"
    );
    assert!(
        err.contains("nft") && err.contains("not installed (the nftables package provides it)"),
        "{err}"
    );
    assert!(err.contains("--cluster-ip"), "{err}");

    let only_nft = FakeBin::new("onlynft");
    let nft = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("nft")).find(|f| f.is_file()))
        .unwrap();
    // A copy, not a link: the system directories are hidden.
    std::fs::copy(&nft, only_nft.dir.join("nft")).unwrap();
    let out = with_tools(&only_nft, &["-v"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains("note: iptables mode not read") && text.contains("not installed"),
        "{text}"
    );
    assert!(text.contains("from nft in"), "{text}");
    assert!(text.contains("198.18.2.2:53, 198.18.3.2:53"), "{text}");
}

/// `--cluster-ip/--endpoints` need no rules and no root.
#[test]
fn a_service_given_on_the_command_line() {
    let out = common::ctdiag(&[
        "services",
        "--cluster-ip",
        "198.19.0.10",
        "--endpoints",
        "198.18.3.2:53,198.18.2.2",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let report = common::json(&out);
    let entries = report.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        assert_eq!(entry["proxy_mode"], "manual");
        assert_eq!(entry["endpoints"], serde_json::json!(["198.18.2.2:53", "198.18.3.2:53"]));
    }
    for (args, needle) in [
        (&["services", "--endpoints", "198.18.2.2:53"][..], "--cluster-ip"),
        (&["services", "--cluster-ip", "nope", "--endpoints", "198.18.2.2"][..], "--cluster-ip"),
        (&["services", "--service", "web"][..], "NAMESPACE/NAME"),
        (
            &[
                "services",
                "--api",
                "/nonexistent/slices.json",
                "--cluster-ip",
                "198.19.0.10",
                "--endpoints",
                "198.18.2.2",
            ][..],
            "/nonexistent/slices.json",
        ),
        (&["services", "-o", "prometheus"][..], "Prometheus"),
    ] {
        let out = common::ctdiag(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(common::stderr(&out).contains(needle), "{args:?}: {}", common::stderr(&out));
    }
}

/// EndpointSlices as kubectl prints them for the lab's kube-dns: one
/// endpoint `ready` as the test says, the other ready.
fn lab_slices(second_ready: bool, extra_item: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"List","metadata":{{"resourceVersion":""}},"items":[{{
  "addressType":"IPv4","apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
  "metadata":{{"name":"kube-dns-x1","namespace":"kube-system","labels":{{"kubernetes.io/service-name":"kube-dns"}}}},
  "ports":[{{"name":"dns","port":53,"protocol":"UDP"}},{{"name":"dns-tcp","port":53,"protocol":"TCP"}}],
  "endpoints":[
    {{"addresses":["198.18.2.2"],"conditions":{{"ready":true,"serving":true,"terminating":false}}}},
    {{"addresses":["198.18.3.2"],"conditions":{{"ready":{second_ready},"serving":{second_ready},"terminating":{terminating}}}}}]}}{extra_item}]}}"#,
        terminating = !second_ready
    )
}

/// (severity, code) of each finding line of a table report
/// (`SEVERITY summary [code]`), in order.
fn table_findings(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|line| {
            let severity = line.split_whitespace().next()?;
            let code = line.strip_suffix(']')?.rsplit_once('[')?.1;
            ["INFO", "WARNING", "CRITICAL"].contains(&severity).then_some((severity, code))
        })
        .collect()
}

#[test]
fn the_api_cross_check_from_a_file_stdin_and_kubectl() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let node = lab.node_ns();
    let files = FakeBin::new("api");
    let agree = files.dir.join("agree.json");
    std::fs::write(&agree, lab_slices(true, "")).unwrap();
    let out = common::ctdiag(&["services", "--netns", &node, "--api", agree.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stdout(&out));
    assert!(
        common::stdout(&out).contains("2 Service port(s) compared"),
        "{}",
        common::stdout(&out)
    );

    // Endpoint 2 is terminating in the API but still in the rules.
    let lags = files.dir.join("lags.json");
    std::fs::write(
        &lags,
        lab_slices(
            false,
            r#",{"kind":"EndpointSlice","metadata":{"namespace":"default","name":"garbled"}}"#,
        ),
    )
    .unwrap();
    let out =
        common::ctdiag(&["services", "--netns", &node, "--api", lags.to_str().unwrap(), "-v"]);
    assert_eq!(out.status.code(), Some(1));
    let text = common::stdout(&out);
    assert_eq!(
        table_findings(&text),
        [("CRITICAL", "rules-endpoint-not-ready"), ("INFO", "api-objects-skipped")],
        "{text}"
    );
    assert!(text.contains("kube-system/kube-dns:dns -> 198.18.3.2:53 (terminating)"), "{text}");
    // The garbled object is named, not fatal.
    assert!(
        text.contains(
            "skipped (API): EndpointSlice default/garbled: no kubernetes.io/service-name label"
        ),
        "{text}"
    );

    // A third CoreDNS pod ready in the API that the node's rules lack.
    let behind = files.dir.join("behind.json");
    let third = r#"{"addresses":["198.18.4.2"],"conditions":{"ready":true,"serving":true,"terminating":false}}"#;
    let slices = lab_slices(true, "");
    let last = slices.rfind("]}]}").expect("the endpoints list ends the slice");
    std::fs::write(&behind, format!("{},{third}{}", &slices[..last], &slices[last..])).unwrap();
    let out = common::ctdiag(&["services", "--netns", &node, "--api", behind.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert_eq!(table_findings(&text), [("CRITICAL", "api-endpoint-missing-from-rules")], "{text}");
    assert!(text.contains("kube-system/kube-dns:dns -> 198.18.4.2:53"), "{text}");

    // The same through stdin and through a kubectl on PATH.
    let fake = FakeBin::new("kubectl");
    fake.script(
        "kubectl",
        &format!("[ \"$*\" = 'get endpointslices -A -o json' ] || exit 9; cat {}", lags.display()),
    );
    let out = common::ctdiag_with_tools(
        &fake.dir,
        false,
        &[],
        &["services", "--netns", &node, "--kubectl", "-o", "json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("[rules-endpoint-not-ready]"),
        "{}",
        common::stderr(&out)
    );
    let out = common::run(
        "sh",
        &[
            "-c",
            &format!("{} services --netns {node} --api - < {}", common::CTDIAG, lags.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));

    // kubectl that fails (no kubeconfig): a clear error, exit 2.
    let broken = FakeBin::new("kubectl-broken");
    broken.script("kubectl", "echo 'error: no configuration has been provided' >&2; exit 1");
    let out = common::ctdiag_with_tools(
        &broken.dir,
        false,
        &[],
        &["services", "--netns", &node, "--kubectl"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("kubeconfig") && common::stderr(&out).contains("--api FILE"),
        "{}",
        common::stderr(&out)
    );

    // Not JSON at all: a usage error that says what to give.
    let junk = files.dir.join("junk.json");
    std::fs::write(&junk, "<html>").unwrap();
    let out = common::ctdiag(&["services", "--netns", &node, "--api", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("kubectl get endpointslices -A -o json"),
        "{}",
        common::stderr(&out)
    );
}

/// probe: the ClusterIP from --cluster-ip is the server and --endpoints
/// are the report's cluster_endpoints; --service names a Service from the
/// rules; --server still works and conflicts with both.
#[test]
fn probe_takes_a_service() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let base = [
        "probe",
        "--netns",
        &lab.client_ns(),
        "--stats-netns",
        &lab.node_ns(),
        "--count",
        "20",
        "-o",
        "json",
    ];
    let mut manual = base.to_vec();
    manual.extend_from_slice(&[
        "--cluster-ip",
        "198.19.0.10:53",
        "--endpoints",
        "198.18.2.2:53,198.18.3.2:53",
    ]);
    let out = common::ctdiag(&manual);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let report = common::json(&out);
    assert_eq!(report["server"], "198.19.0.10:53");
    assert_eq!(report["server_from"], "--cluster-ip/--endpoints");
    assert_eq!(report["cluster_endpoints"], serde_json::json!(["198.18.2.2:53", "198.18.3.2:53"]));
    assert_eq!(report["lost"], 0);

    let mut by_spec = base.to_vec();
    by_spec.extend_from_slice(&["--service", "kube-system/kube-dns:dns"]);
    let out = common::ctdiag(&by_spec);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let report = common::json(&out);
    assert_eq!(report["server"], "198.19.0.10:53");
    assert!(
        report["server_from"]
            .as_str()
            .unwrap()
            .starts_with("kube-system/kube-dns:dns ClusterIP, netlink (iptables-nft) in"),
        "{report:#}"
    );

    let mut missing = base.to_vec();
    missing.extend_from_slice(&["--service", "default/nope"]);
    let out = common::ctdiag(&missing);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("Services found: kube-system/kube-dns:dns"),
        "{}",
        common::stderr(&out)
    );

    let mut both = base.to_vec();
    both.extend_from_slice(&[
        "--server",
        "198.18.2.2",
        "--cluster-ip",
        "198.19.0.10",
        "--endpoints",
        "198.18.2.2",
    ]);
    let out = common::ctdiag(&both);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("cannot be used with"), "{}", common::stderr(&out));
}
