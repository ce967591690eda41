//! `ctdiag stats` against a real kernel in a lab: its numbers must be the
//! ones `conntrack -S` and `conntrack -C` print for the same namespace.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{kernel, TestLab};
use serde_json::Value;

fn conntrack_s(ns: &str) -> BTreeMap<u64, BTreeMap<String, u64>> {
    common::conntrack_s(ns)
}

fn conntrack_c(ns: &str) -> u64 {
    let out = common::exec(ns, &["conntrack", "-C"]);
    common::assert_success(&out, "conntrack -C");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("conntrack -C prints a number")
}

/// ctdiag's per-CPU counters as cpu -> name -> value.
fn ctdiag_cpus(report: &Value) -> BTreeMap<u64, BTreeMap<String, u64>> {
    report["cpus"]
        .as_array()
        .expect("cpus array")
        .iter()
        .map(|cpu| {
            let obj = cpu.as_object().expect("cpu object");
            let counters = obj
                .iter()
                .filter(|(k, _)| k.as_str() != "cpu")
                .map(|(k, v)| (k.clone(), v.as_u64().expect("integer counter")))
                .collect();
            (obj["cpu"].as_u64().expect("cpu id"), counters)
        })
        .collect()
}

/// Sends `lookups` glibc-style lookups from inside the client namespace: a
/// fresh socket per lookup, A and AAAA from two threads at the same instant
/// (the race the kernel's udpclash selftest uses), to the ClusterIP.
/// Bounded: `lookups` iterations, 200 ms receive timeout each.
fn parallel_lookups(client_ns: &str, lookups: u32) -> u32 {
    let ns = ctdiag::netns::Netns::open(client_ns).expect("open client namespace");
    ns.run(|| {
        let mut answered = 0;
        for i in 0..lookups {
            let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
            sock.connect("198.19.0.10:53").expect("connect");
            sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
            let sock = Arc::new(sock);
            let barrier = Arc::new(Barrier::new(2));
            let senders: Vec<_> = [1u16, 28u16]
                .into_iter()
                .map(|qtype| {
                    let (sock, barrier) = (Arc::clone(&sock), Arc::clone(&barrier));
                    let id = (i as u16).wrapping_mul(2).wrapping_add(qtype);
                    std::thread::spawn(move || {
                        let query =
                            kernel::dns_query(id, "kubernetes.default.svc.cluster.local", qtype);
                        barrier.wait();
                        let _ = sock.send(&query);
                    })
                })
                .collect();
            for s in senders {
                s.join().expect("sender thread");
            }
            let mut buf = [0u8; 512];
            for _ in 0..2 {
                if sock.recv(&mut buf).is_ok() {
                    answered += 1;
                }
            }
        }
        answered
    })
    .expect("run in client namespace")
}

/// Sends `n` TCP segments with SYN and FIN both set from the client pod to
/// the ClusterIP: conntrack in the node counts each as `invalid`, whatever
/// the machine's load (unlike the clash of parallel queries, which needs two
/// CPUs at the same instant).
fn invalid_tcp_segments(client_ns: &str, n: u32) {
    let ns = ctdiag::netns::Netns::open(client_ns).expect("open client namespace");
    let (pod, cluster_ip) = (Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 19, 0, 10));
    let segments: Vec<[u8; 20]> =
        (0..n).map(|i| kernel::tcp_syn_fin(pod, cluster_ip, 40000 + i as u16, 53)).collect();
    ns.run(|| kernel::send_raw_tcp(cluster_ip, &segments))
        .expect("run in client namespace")
        .expect("send SYN|FIN segments");
}

#[test]
fn stats_json_equals_conntrack_s_after_parallel_traffic() {
    if !common::require_root() {
        return;
    }
    stats_equal_conntrack_s_in(TestLab::up(&[]));
}

/// The same comparison with dnsmasq, a DNS server nobody here wrote, as the
/// CoreDNS endpoints.
#[test]
fn stats_json_equals_conntrack_s_with_dnsmasq_endpoints() {
    if !common::require_root() || !common::require_tool("dnsmasq", "dnsmasq-base") {
        return;
    }
    stats_equal_conntrack_s_in(TestLab::up(&["--dns", "dnsmasq"]));
}

/// Parallel A/AAAA traffic from the client pod, then `ctdiag stats -o json`
/// in the node namespace against `conntrack -S` and `conntrack -C`.
fn stats_equal_conntrack_s_in(lab: TestLab) {
    let answered = parallel_lookups(&lab.client_ns(), 400);
    assert!(answered > 700, "the lab answered only {answered} of 800 queries");
    invalid_tcp_segments(&lab.client_ns(), 10);
    // Which counter shows a race is the kernel's to say: with clash_resolve
    // (5.10+; `conntrack -S` prints it when the kernel sends it) a resolved
    // clash counts there; without it, a clash counts in insert_failed,
    // resolved (5.6-5.9) or dropped (before 5.6).
    let has_clash_resolve =
        conntrack_s(&lab.node_ns()).values().any(|c| c.contains_key("clash_resolve"));
    let race_counter = if has_clash_resolve { "clash_resolve" } else { "insert_failed" };
    // The clash needs both queries on two CPUs at the same instant; ctdiag
    // probe's threads mode spins its senders for that. A loaded machine can
    // still miss, so up to three bounded rounds until the kernel counts one.
    for _ in 0..3 {
        if kernel::total(&conntrack_s(&lab.node_ns()), race_counter) > 0 {
            break;
        }
        common::ctdiag(&[
            "probe",
            "--netns",
            &lab.client_ns(),
            "--mode",
            "threads",
            "--count",
            "1000",
            "--rate",
            "0",
            "--timeout",
            "1000",
            "-q",
        ]);
    }

    let out = common::ctdiag(&["stats", "--netns", &lab.node_ns(), "-o", "json"]);
    let report = common::json(&out);
    let reference = conntrack_s(&lab.node_ns());
    let entries = conntrack_c(&lab.node_ns());

    assert_eq!(report["source"], "netlink");
    let ours = ctdiag_cpus(&report);
    assert_eq!(ours, reference, "ctdiag stats and conntrack -S disagree");
    assert_eq!(report["entries"].as_u64(), Some(entries), "entries vs conntrack -C");
    let max = common::exec(&lab.node_ns(), &["cat", "/proc/sys/net/netfilter/nf_conntrack_max"]);
    let max: u64 = common::stdout(&max).trim().parse().expect("nf_conntrack_max");
    assert_eq!(report["max_entries"].as_u64(), Some(max), "max_entries vs nf_conntrack_max");
    // The total row is the sum of the CPUs, counter by counter.
    for (name, total) in report["total"].as_object().expect("total") {
        let sum: u64 = reference.values().map(|c| c[name]).sum();
        assert_eq!(total.as_u64(), Some(sum), "total {name}");
    }
    // The traffic raced in conntrack, in the counter this kernel has for it.
    let raced = kernel::total(&reference, race_counter);
    assert!(raced > 0, "parallel A/AAAA from one socket raised no {race_counter}: {reference:?}");
    let invalid = kernel::total(&reference, "invalid");
    assert!(invalid >= 10, "SYN|FIN segments not counted invalid: {reference:?}");
    let codes: Vec<&str> =
        report["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(codes.contains(&"totals-since-boot"), "{codes:?}");
    assert_eq!(
        codes.contains(&"no-clash-resolve-counter"),
        !has_clash_resolve,
        "said exactly when conntrack -S has no clash_resolve: {codes:?}"
    );
    let drops = kernel::total(&reference, "insert_failed") + kernel::total(&reference, "drop");
    if drops == 0 {
        // Only with clash_resolve: without it the race counted in
        // insert_failed (asserted above).
        assert!(codes.contains(&"clashes-resolved"), "{codes:?}");
        assert_eq!(out.status.code(), Some(0), "no drops: exit 0");
    } else {
        assert!(codes.contains(&"conntrack-drops"), "{codes:?}");
        assert!(!codes.contains(&"clashes-resolved"), "{codes:?}");
        assert_eq!(out.status.code(), Some(1), "drops: exit 1");
    }
}

#[test]
fn procfs_fallback_gives_the_netlink_numbers() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    parallel_lookups(&lab.client_ns(), 50);
    let node = lab.node_ns();
    let netlink = common::json(&common::ctdiag(&["stats", "--netns", &node, "-o", "json"]));
    let forced =
        common::json(&common::ctdiag(&["stats", "--netns", &node, "--procfs", "-o", "json"]));
    // A real lack of CAP_NET_ADMIN: ctnetlink refuses, ctdiag falls back.
    let out = common::exec(
        &node,
        &[
            "setpriv",
            "--bounding-set",
            "-net_admin",
            "--inh-caps",
            "-net_admin",
            common::CTDIAG,
            "stats",
            "-o",
            "json",
        ],
    );
    let unprivileged = common::json(&out);
    assert_eq!(netlink["source"], "netlink");
    for procfs in [&forced, &unprivileged] {
        assert_eq!(procfs["source"], "procfs");
        assert_eq!(ctdiag_cpus(procfs), ctdiag_cpus(&netlink));
        assert_eq!(procfs["total"], netlink["total"]);
        assert_eq!(procfs["entries"], netlink["entries"]);
        assert_eq!(procfs["max_entries"], netlink["max_entries"]);
    }
    let notes = unprivileged["notes"].as_array().expect("notes");
    assert!(
        notes.iter().any(|n| n.as_str().unwrap_or("").contains("CAP_NET_ADMIN")),
        "the fallback must say why: {notes:?}"
    );
}

#[test]
fn watch_shows_the_traffic_of_the_interval() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let node = lab.node_ns();
    let before = conntrack_s(&node);
    let mut watcher = common::spawn(
        common::CTDIAG,
        &["stats", "--netns", &node, "--watch", "1.5", "--count", "2", "-o", "json"],
    );
    // Traffic for as long as the watch runs (bounded: two 1.5 s intervals,
    // so about ten rounds), so every interval sees some whenever the
    // watcher took its first reading. On current kernels `found` and
    // `insert` no longer move; clashes of parallel A/AAAA need two CPUs
    // racing, which a loaded machine may not give; invalid segments move
    // `invalid` every time.
    let mut sent = 0;
    for _ in 0..40 {
        if !watcher.is_running() {
            break;
        }
        parallel_lookups(&lab.client_ns(), 5);
        invalid_tcp_segments(&lab.client_ns(), 5);
        sent += 5;
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = watcher.wait_bounded(Duration::from_secs(20));
    assert!(sent > 0, "the watch ended before any traffic was sent");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "--count 2 gives two lines: {lines:?}");
    let sum_invalid: u64 = lines.iter().map(|l| l["delta"]["invalid"].as_u64().unwrap_or(0)).sum();
    // Segments sent before the first reading or after the last one do not
    // count; all the others do.
    assert!(sum_invalid >= 5, "{sent} SYN|FIN segments crossed the node: invalid +{sum_invalid}");
    for line in &lines {
        let seconds = line["seconds"].as_f64().expect("seconds");
        assert!((1.4..3.0).contains(&seconds), "interval of {seconds} s for --watch 1.5");
        // Each rate is its delta over the measured interval, for the
        // counter that moved (not one that stays 0).
        let invalid = line["delta"]["invalid"].as_u64().expect("integer delta");
        assert!(invalid > 0, "traffic ran through every interval: {line}");
        let rate = line["rate_per_s"]["invalid"].as_f64().expect("rate");
        assert!((rate - invalid as f64 / seconds).abs() < 1e-6, "rate = delta / seconds: {line}");
        assert!(line["entries"].as_u64().unwrap() > 0);
    }
    // Exit 1 exactly when an interval saw conntrack drop packets. Whether
    // the race drops (or counts resolved clashes in insert_failed) is the
    // kernel's: with clash_resolve nothing drops in a healthy lab, so exit
    // 0; the kernel's own counters, read around the watch, bound what the
    // intervals may claim.
    let after = conntrack_s(&node);
    let moved = |counter: &str| kernel::total(&after, counter) - kernel::total(&before, counter);
    let kernel_drops = moved("insert_failed") + moved("drop");
    let seen_drops: u64 = lines
        .iter()
        .map(|l| {
            l["delta"]["insert_failed"].as_u64().unwrap_or(0)
                + l["delta"]["drop"].as_u64().unwrap_or(0)
        })
        .sum();
    assert!(
        seen_drops <= kernel_drops,
        "intervals saw {seen_drops} drops, the kernel {kernel_drops}"
    );
    let expected = if seen_drops > 0 { 1 } else { 0 };
    assert_eq!(
        out.status.code(),
        Some(expected),
        "insert_failed + drop: {seen_drops} in the intervals, {kernel_drops} around them; {}",
        common::stderr(&out)
    );
}

#[test]
fn pod_namespace_without_conntrack_says_where_to_look() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let report =
        common::json(&common::ctdiag(&["stats", "--netns", &lab.client_ns(), "-o", "json"]));
    let codes: Vec<&str> =
        report["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(codes.contains(&"no-conntrack-activity"), "{codes:?}");
}

#[test]
fn prometheus_output_carries_the_same_numbers() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    parallel_lookups(&lab.client_ns(), 20);
    let node = lab.node_ns();
    let report = common::json(&common::ctdiag(&["stats", "--netns", &node, "-o", "json"]));
    let out = common::ctdiag(&["stats", "--netns", &node, "-o", "prometheus"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for cpu in report["cpus"].as_array().unwrap() {
        let id = cpu["cpu"].as_u64().unwrap();
        for (name, value) in cpu.as_object().unwrap().iter().filter(|(k, _)| *k != "cpu") {
            let line = format!("ctdiag_conntrack_{name}_total{{cpu=\"{id}\"}} {value}");
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
    }
    let entries = format!("ctdiag_conntrack_entries {}", report["entries"]);
    assert!(text.lines().any(|l| l == entries), "{text}");
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let cases: &[&[&str]] = &[
        &["stats", "--watch", "0"],
        &["stats", "--watch", "-1"],
        &["stats", "--watch", "abc"],
        &["stats", "--count", "3"],
        &["stats", "--watch", "1", "--count", "0"],
        &["stats", "--netns", "/nonexistent/netns"],
        &["stats", "--netns", "4294967295"],
        &["stats", "--netns", "no-such-namespace-here"],
        &["stats", "--watch", "1", "-o", "prometheus"],
        &["stats", "-o", "yaml"],
    ];
    for args in cases {
        let out = common::ctdiag(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn ctrl_c_ends_watch_cleanly_with_what_was_seen() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let watcher = common::spawn(
        common::CTDIAG,
        &["stats", "--netns", &lab.node_ns(), "--watch", "0.5", "-o", "json"],
    );
    std::thread::sleep(Duration::from_millis(1300));
    watcher.signal(libc::SIGINT);
    let out = watcher.wait_bounded(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is whole JSON"))
        .collect();
    assert!((1..=3).contains(&lines.len()), "{lines:?}");
}

/// Without CAP_NET_ADMIN and without a readable procfs, ctdiag says what is
/// needed and exits 2 (a private mount namespace hides
/// /proc/sys/net/netfilter for this one run).
#[test]
fn neither_netlink_nor_procfs_names_cap_net_admin_and_exits_2() {
    if !common::require_root() {
        return;
    }
    let script = format!(
        "mount -t tmpfs none /proc/sys/net/netfilter && \
         exec setpriv --bounding-set -net_admin --inh-caps -net_admin {} stats",
        common::CTDIAG
    );
    let out = common::run("unshare", &["-m", "sh", "-c", &script]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");
    assert!(stderr.contains("procfs fallback failed"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// `--watch` with no `--count` whose reader has gone: it stops after the
/// first interval instead of watching for nobody, quietly, exit 0.
#[test]
fn watch_stops_when_its_reader_is_gone() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    for format in ["json", "table"] {
        let started = std::time::Instant::now();
        let out = common::spawn_with_stdout_closed(
            common::CTDIAG,
            &["stats", "--netns", &lab.node_ns(), "--watch", "0.2", "-o", format],
        )
        .wait_bounded(Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(0), "{format}: {}", common::stderr(&out));
        assert!(common::stderr(&out).is_empty(), "{format}: {}", common::stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(5), "{format}: {:?}", started.elapsed());
    }
}
