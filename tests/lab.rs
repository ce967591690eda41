//! `ctdiag lab`: the real binary builds real namespaces; the kernel's view
//! (`ip netns`, `iptables-save`, `conntrack -L`) and real DNS clients (dig)
//! check the result.

mod common;

use common::{assert_success, ctdiag, exec, json, stdout, TestLab};

/// How long each dig waits for its one answer, s. Why 2: the lab's
/// responders answer in well under a millisecond, so an answer that does
/// not come within 2 s is lost (a dead or blackholed endpoint), not late
/// because a loaded 2-core machine was slow to schedule dig or the
/// responder; and a lost lookup costs only these 2 s.
const DIG_TIMEOUT: &str = "+timeout=2";

/// `dig` from the client pod with a bounded wait (+tries=1, [`DIG_TIMEOUT`]).
fn dig(lab: &TestLab, args: &[&str]) -> String {
    let mut cmd = vec!["dig", "+tries=1", DIG_TIMEOUT];
    cmd.extend_from_slice(args);
    stdout(&lab.in_client(&cmd))
}

fn short(lab: &TestLab, args: &[&str]) -> String {
    let mut full = vec!["+short"];
    full.extend_from_slice(args);
    dig(lab, &full).trim().to_string()
}

/// Starts `n` lookups through the ClusterIP at once (each its own dig, so
/// its own source port) and returns how many got no answer. Bounded: each
/// dig gives up after one try of [`DIG_TIMEOUT`].
fn parallel_lookup_failures(lab: &TestLab, n: usize) -> usize {
    let client = lab.client_ns();
    let digs: Vec<common::Running> = (0..n)
        .map(|_| {
            common::spawn(
                "ip",
                &[
                    "netns",
                    "exec",
                    &client,
                    "dig",
                    "+short",
                    "+tries=1",
                    DIG_TIMEOUT,
                    "@198.19.0.10",
                    "kubernetes.default.svc.cluster.local",
                    "A",
                ],
            )
        })
        .collect();
    digs.into_iter()
        .map(|dig| dig.wait_bounded(common::COMMAND_TIMEOUT))
        .filter(|o| String::from_utf8_lossy(&o.stdout).trim() != "198.19.0.1")
        .count()
}

/// Lookups from the pod through the ClusterIP: A and AAAA over UDP, A over
/// TCP, and the kube-dns service name.
fn assert_cluster_dns_answers(lab: &TestLab) {
    assert_eq!(
        short(lab, &["@198.19.0.10", "kubernetes.default.svc.cluster.local", "A"]),
        "198.19.0.1"
    );
    assert_eq!(
        short(lab, &["@198.19.0.10", "kubernetes.default.svc.cluster.local", "AAAA"]),
        "2001:db8::1"
    );
    assert_eq!(
        short(lab, &["+tcp", "@198.19.0.10", "kubernetes.default.svc.cluster.local", "A"]),
        "198.19.0.1"
    );
    assert_eq!(
        short(lab, &["@198.19.0.10", "kube-dns.kube-system.svc.cluster.local", "A"]),
        "198.19.0.10"
    );
}

fn netns_list() -> String {
    stdout(&common::run("ip", &["netns", "list"]))
}

#[test]
fn lab_up_builds_namespaces_rules_and_answers() {
    if !common::require_root()
        || !common::require_tool("dig", "bind9-dnsutils")
        || !common::require_tool("conntrack", "conntrack")
    {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "2"]);
    let info = &lab.info;
    assert_eq!(info["namespaces"]["node"], lab.node_ns().as_str());
    assert_eq!(info["namespaces"]["client"], lab.client_ns().as_str());
    assert_eq!(info["namespaces"]["dns"][1], lab.dns_ns(2).as_str());
    assert_eq!(info["cluster_ip"], "198.19.0.10");
    assert_eq!(info["port"], 53);
    assert_eq!(lab.endpoints(), vec!["198.18.2.2:53", "198.18.3.2:53"]);
    assert_eq!(info["dns_server"], "embedded");
    assert_eq!(info["rules_mode"], "iptables");
    assert_eq!(lab.server_pids().len(), 2);

    let namespaces = netns_list();
    for ns in [lab.node_ns(), lab.client_ns(), lab.dns_ns(1), lab.dns_ns(2)] {
        assert!(
            namespaces.lines().any(|l| l.split_whitespace().next() == Some(ns.as_str())),
            "{ns} missing:\n{namespaces}"
        );
    }

    let resolv = std::fs::read_to_string(info["resolv_conf"].as_str().unwrap()).unwrap();
    assert!(resolv.contains("nameserver 198.19.0.10"), "{resolv}");
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"));
    assert!(resolv.contains("options ndots:5"));

    // The kernel's view of the rules, as iptables-save prints them.
    let saved = stdout(&lab.in_node(&["iptables-save", "-t", "nat"]));
    for needle in [
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A KUBE-SERVICES -d 198.19.0.10/32 -p udp -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU",
        "-A KUBE-SERVICES -d 198.19.0.10/32 -p tcp -m comment --comment \"kube-system/kube-dns:dns-tcp cluster IP\" -m tcp --dport 53 -j KUBE-SVC-ERIFXISQEP7F7OF4",
        "-A KUBE-SVC-TCOU7JCQXEZGVUNU -m comment --comment \"kube-system/kube-dns:dns -> 198.18.2.2:53\" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-",
        "-m comment --comment \"kube-system/kube-dns:dns\" -m udp -j DNAT --to-destination 198.18.2.2:53",
        "-m comment --comment \"kube-system/kube-dns:dns\" -m udp -j DNAT --to-destination 198.18.3.2:53",
        "-m comment --comment \"kube-system/kube-dns:dns-tcp\" -m tcp -j DNAT --to-destination 198.18.3.2:53",
    ] {
        assert!(saved.contains(needle), "missing {needle:?} in:\n{saved}");
    }
    // The last endpoint's jump carries no statistic match.
    let last = saved
        .lines()
        .find(|l| l.contains("--comment \"kube-system/kube-dns:dns -> 198.18.3.2:53\""))
        .unwrap_or_else(|| panic!("no jump to endpoint 2:\n{saved}"));
    assert!(!last.contains("statistic"), "{last}");

    // Real lookups from the pod through the ClusterIP: UDP, AAAA, TCP, and
    // the resolv.conf search path.
    assert_cluster_dns_answers(&lab);
    assert_eq!(short(&lab, &["+search", "kubernetes.default", "A"]), "198.19.0.1");
    let nx = dig(&lab, &["@198.19.0.10", "nosuch.default.svc.cluster.local", "A"]);
    assert!(nx.contains("status: NXDOMAIN") && nx.contains(" aa"), "{nx}");

    // conntrack in the node namespace: the DNAT'd flow, reply from an endpoint.
    let listing =
        exec(&lab.node_ns(), &["conntrack", "-L", "-p", "udp", "--orig-dst", "198.19.0.10"]);
    let text = stdout(&listing);
    let dnat = text
        .lines()
        .find(|l| l.contains("src=198.18.1.2 dst=198.19.0.10"))
        .unwrap_or_else(|| panic!("no conntrack entry for the ClusterIP:\n{text}"));
    let reply_src = dnat.split_whitespace().filter(|f| f.starts_with("src=")).nth(1).unwrap();
    assert!(
        reply_src == "src=198.18.2.2" || reply_src == "src=198.18.3.2",
        "reply source is not an endpoint: {dnat}"
    );
}

#[test]
fn nftables_lab_builds_the_kube_proxy_table_and_answers() {
    if !common::require_root()
        || !common::require_tool("dig", "bind9-dnsutils")
        || !common::require_tool("nft", "nftables")
        || !common::require_tool("conntrack", "conntrack")
    {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "2", "--proxy-mode", "nftables"]);
    assert_eq!(lab.info["rules_mode"], "nftables");

    // The kernel's view, as nft lists it. NWBZK7IH is the hash a real
    // cluster's kube-proxy gives kube-system/kube-dns/tcp/dns-tcp.
    let listing = rules_listing(&lab, "nftables");
    for needle in [
        "198.19.0.10 . udp . 53 : goto service-FY5PMXPG-kube-system/kube-dns/udp/dns",
        "198.19.0.10 . tcp . 53 : goto service-NWBZK7IH-kube-system/kube-dns/tcp/dns-tcp",
        "ip daddr . meta l4proto . th dport vmap @service-ips",
        "type nat hook prerouting priority dstnat; policy accept;",
        "numgen random mod 2 vmap { 0 : goto endpoint-",
        "meta l4proto udp dnat to 198.18.2.2:53",
        "meta l4proto udp dnat to 198.18.3.2:53",
        "meta l4proto tcp dnat to 198.18.3.2:53",
    ] {
        assert!(listing.contains(needle), "missing {needle:?} in:\n{listing}");
    }
    // No iptables rules for the Service: nftables alone carries it.
    let saved = stdout(&lab.in_node(&["iptables-save", "-t", "nat"]));
    assert!(!saved.contains("KUBE-SERVICES"), "{saved}");

    assert_cluster_dns_answers(&lab);
    let listing =
        exec(&lab.node_ns(), &["conntrack", "-L", "-p", "udp", "--orig-dst", "198.19.0.10"]);
    let text = stdout(&listing);
    assert!(
        text.lines().any(|l| l.contains("src=198.18.1.2 dst=198.19.0.10")
            && (l.contains("src=198.18.2.2") || l.contains("src=198.18.3.2"))),
        "no DNAT'd conntrack entry for the ClusterIP:\n{text}"
    );
}

#[test]
fn status_reports_servers_and_a_dead_one() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "2"]);
    let (output, status) = lab.status();
    assert_success(&output, "lab status");
    assert_eq!(status["servers"][0]["alive"], true);
    assert_eq!(status["servers"][1]["alive"], true);
    assert_eq!(status["servers"][0]["pid"], lab.info["servers"][0]["pid"]);

    // A server that dies behind the lab's back is a problem: exit 1.
    let pid = lab.server_pids()[1];
    assert!(common::run("kill", &["-9", &pid.to_string()]).status.success());
    // SIGKILL takes effect at once; what can lag on a loaded machine is
    // the reaping of the dead server, so status is asked again until it
    // says so, for up to 10 s (a status that never notices still fails).
    let started = std::time::Instant::now();
    let (output, status) = loop {
        let (output, status) = lab.status();
        if status["servers"][1]["alive"] == false
            || started.elapsed() > std::time::Duration::from_secs(10)
        {
            break (output, status);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status["servers"][1]["alive"], false, "{status}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn dead_endpoint_loses_about_half_of_the_lookups() {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2"]);
    assert_eq!(parallel_lookup_failures(&lab, 10), 0, "healthy lab lost lookups");
    let info = lab.scenario("dead-endpoint", &["--endpoint", "2"]);
    assert_eq!(info["servers"][1]["state"], "removed");
    assert_eq!(info["servers"][0]["state"], "running");
    // The rules still point at both endpoints.
    assert_eq!(lab.endpoints().len(), 2);
    assert_eq!(info["scenarios"][0]["name"], "dead-endpoint");
    assert!(!netns_list().contains(&lab.dns_ns(2)));
    let routes = stdout(&lab.in_node(&["ip", "route", "show", "type", "blackhole"]));
    assert!(routes.contains("198.18.3.2"), "{routes}");

    // Binomial(40, 0.5): outside 8..=32 with probability ~1e-5.
    let failures = parallel_lookup_failures(&lab, 40);
    assert!((8..=32).contains(&failures), "{failures} of 40 lookups failed, expected about half");
}

/// The node's kube-proxy rules as the mode's own tool lists them.
fn rules_listing(lab: &TestLab, proxy_mode: &str) -> String {
    match proxy_mode {
        "nftables" => stdout(&lab.in_node(&["nft", "list", "table", "ip", "kube-proxy"])),
        _ => stdout(&lab.in_node(&["iptables-save", "-t", "nat"])),
    }
}

#[test]
fn stale_endpoint_blackholes_a_client_that_reuses_its_port() {
    stale_endpoint_scenario("iptables");
}

#[test]
fn stale_endpoint_in_nftables_mode() {
    stale_endpoint_scenario("nftables");
}

fn stale_endpoint_scenario(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2", "--proxy-mode", proxy_mode]);
    assert_eq!(lab.info["rules_mode"], proxy_mode);
    // Lookups from fixed source ports until both endpoints have been picked.
    let mut port_to_endpoint = Vec::new();
    for port in 40001..40041u16 {
        let source = format!("198.18.1.2#{port}");
        let answer =
            short(&lab, &["-b", &source, "@198.19.0.10", "kubernetes.default.svc.cluster.local"]);
        assert_eq!(answer, "198.19.0.1");
        let entries = stdout(&exec(
            &lab.node_ns(),
            &["conntrack", "-L", "-p", "udp", "--orig-port-src", &port.to_string()],
        ));
        let to_second = entries.contains("src=198.18.3.2");
        port_to_endpoint.push((port, to_second));
        let seen_both =
            port_to_endpoint.iter().any(|(_, s)| *s) && port_to_endpoint.iter().any(|(_, s)| !*s);
        if seen_both && port_to_endpoint.len() >= 4 {
            break;
        }
    }
    // What the loop waited for must have happened, or the checks below
    // would pass without a single blackholed port (each port picks an
    // endpoint at random: 40 ports all on one side has probability 2^-39).
    assert!(
        port_to_endpoint.iter().any(|(_, second)| *second)
            && port_to_endpoint.iter().any(|(_, second)| !*second),
        "40 source ports never reached both endpoints: {port_to_endpoint:?}"
    );
    let info = lab.scenario("stale-endpoint", &["--endpoint", "2"]);
    assert_eq!(lab.endpoints(), vec!["198.18.2.2:53"]);
    assert_eq!(info["servers"][1]["state"], "removed");
    let saved = rules_listing(&lab, proxy_mode);
    assert!(saved.contains("198.18.2.2"), "endpoint 1 missing from the rules:\n{saved}");
    assert!(!saved.contains("198.18.3.2"), "endpoint 2 still in the rules:\n{saved}");

    for (port, to_second) in &port_to_endpoint {
        let source = format!("198.18.1.2#{port}");
        let answer =
            short(&lab, &["-b", &source, "@198.19.0.10", "kubernetes.default.svc.cluster.local"]);
        if *to_second {
            assert_ne!(answer, "198.19.0.1", "port {port} should be blackholed by its stale entry");
        } else {
            assert_eq!(answer, "198.19.0.1", "port {port} went to the live endpoint");
        }
    }
    // A new source port is fine: new flows only see the live endpoint.
    assert_eq!(
        short(
            &lab,
            &["-b", "198.18.1.2#50001", "@198.19.0.10", "kubernetes.default.svc.cluster.local"]
        ),
        "198.19.0.1"
    );
}

#[test]
fn slow_and_lossy_endpoints() {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2"]);
    let info = lab.scenario("slow-endpoint", &["--endpoint", "1", "--delay-ms", "400"]);
    assert_eq!(info["servers"][0]["delay_ms"], 400);
    assert_eq!(info["servers"][0]["alive"], true);
    // `dig -u` prints the query time in microseconds, read from
    // CLOCK_REALTIME. Without -u, dig 9.18 reads CLOCK_REALTIME_COARSE (up
    // to one kernel tick behind at each end) and truncates to whole ms: a
    // reply delayed by exactly 400 ms has been read as 399 ms. dig takes
    // its send time before it sends, and the responder starts the delay
    // once it has received the query, so the precise interval is never
    // shorter than the delay. The 1 ms allowed covers the wall clock being
    // slewed by NTP meanwhile (at most 500 ppm: 0.2 ms of 400 ms). No
    // upper bound: a loaded machine only makes it later. An endpoint that
    // does not delay answers within a few ms and fails this by far.
    // +timeout=5: the answer is due after 0.4 s; 4.6 s is left for a
    // loaded machine to run the responder and dig.
    let slow = stdout(&lab.in_client(&[
        "dig",
        "-u",
        "+tries=1",
        "+timeout=5",
        "@198.18.2.2",
        "kubernetes.default.svc.cluster.local",
        "A",
    ]));
    let us: u64 = slow
        .lines()
        .find_map(|l| l.strip_prefix(";; Query time: "))
        .and_then(|rest| rest.strip_suffix(" usec"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!("no answer (or no usec query time) from the slow endpoint:\n{slow}")
        });
    assert!(us >= 399_000, "answered after {us} us, delay was 400 ms:\n{slow}");

    let info = lab.scenario("lossy", &["--endpoint", "2", "--drop-aaaa-rate", "1"]);
    assert_eq!(info["servers"][1]["drop_aaaa_rate"], 1.0);
    assert_eq!(
        short(&lab, &["@198.18.3.2", "kubernetes.default.svc.cluster.local", "A"]),
        "198.19.0.1"
    );
    let aaaa = dig(&lab, &["@198.18.3.2", "kubernetes.default.svc.cluster.local", "AAAA"]);
    assert!(!aaaa.contains("2001:db8::1"), "AAAA should have been dropped:\n{aaaa}");

    // Options that do not belong to a scenario are a usage error.
    let wrong = ctdiag(&["lab", "scenario", "lossy", "--prefix", &lab.prefix, "--delay-ms", "5"]);
    assert_eq!(wrong.status.code(), Some(2));
}

#[test]
fn dnsmasq_lab_answers_the_same() {
    if !common::require_root() || !common::require_tool("dnsmasq", "dnsmasq-base") {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "2", "--dns", "dnsmasq"]);
    assert_eq!(lab.info["dns_server"], "dnsmasq");
    assert_eq!(lab.info["servers"][0]["kind"], "dnsmasq");
    assert_cluster_dns_answers(&lab);
    let nx = dig(&lab, &["@198.19.0.10", "nosuch.default.svc.cluster.local", "A"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    // Both endpoints answer directly too.
    assert_eq!(
        short(&lab, &["@198.18.3.2", "kubernetes.default.svc.cluster.local", "A"]),
        "198.19.0.1"
    );
}

#[test]
fn down_removes_everything_and_up_rebuilds() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "2"]);
    let old_pids = lab.server_pids();

    // `lab up` on an existing prefix tears the old lab down first.
    let again = ctdiag(&["lab", "up", "--prefix", &lab.prefix, "--endpoints", "1", "-o", "json"]);
    assert_success(&again, "second lab up");
    let rebuilt = json(&again);
    assert_eq!(rebuilt["endpoints"].as_array().unwrap().len(), 1);
    for pid in &old_pids {
        assert!(!common::process_running(*pid), "old server {pid} still running");
    }
    assert!(!netns_list().contains(&lab.dns_ns(2)));
    let new_pid = rebuilt["servers"][0]["pid"].as_u64().unwrap();

    let down = ctdiag(&["lab", "down", "--prefix", &lab.prefix, "-o", "json"]);
    assert_success(&down, "lab down");
    let report = json(&down);
    assert_eq!(report["found"], true);
    assert_eq!(report["removed_namespaces"].as_array().unwrap().len(), 4);
    let namespaces = netns_list();
    assert!(!namespaces.contains(&format!("{}-", lab.prefix)), "{namespaces}");
    assert!(!common::process_running(new_pid as u32), "server {new_pid} survived");
    assert!(!std::path::Path::new(&format!("/etc/netns/{}", lab.client_ns())).exists());
    assert!(!std::path::Path::new(&format!("/run/ctdiag/lab/{}", lab.prefix)).exists());

    // Twice is fine, and says nothing was there.
    let twice = ctdiag(&["lab", "down", "--prefix", &lab.prefix, "-o", "json"]);
    assert_success(&twice, "second lab down");
    assert_eq!(json(&twice)["found"], false);
    let text = ctdiag(&["lab", "down", "--prefix", &lab.prefix]);
    assert!(stdout(&text).contains("nothing"), "{}", stdout(&text));

    // Status of a lab that is not there: exit 2 with a hint.
    let (status, _) = lab.status();
    assert_eq!(status.status.code(), Some(2));
    assert!(common::stderr(&status).contains("lab up"), "{}", common::stderr(&status));
}

#[test]
fn bad_prefix_is_a_usage_error() {
    // No root needed: the prefix is validated before anything is touched.
    for bad in ["Bad", "a_b", "-x", "waytoolongprefixfortheschema", ""] {
        // `--prefix=X` so that "-x" is a value, not a flag.
        let flag = format!("--prefix={bad}");
        let out = ctdiag(&["lab", "up", &flag]);
        assert_eq!(out.status.code(), Some(2), "prefix {bad:?}");
        assert!(common::stderr(&out).contains("--prefix"), "{}", common::stderr(&out));
        let out = ctdiag(&["lab", "down", &flag]);
        assert_eq!(out.status.code(), Some(2), "down prefix {bad:?}");
    }
    let out = ctdiag(&["lab", "up", "--prefix", "ok", "--endpoints", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ctdiag(&["lab", "up", "--prefix", "ok", "--drop-rate", "2"]);
    assert_eq!(out.status.code(), Some(2));
}
