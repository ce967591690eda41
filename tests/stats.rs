//! `ctdiag stats` against a real kernel in a lab: its numbers must be the
//! ones `conntrack -S` and `conntrack -C` print for the same namespace.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::TestLab;
use serde_json::Value;

/// `conntrack -S` parsed: cpu -> counter name -> value.
fn conntrack_s(ns: &str) -> BTreeMap<u64, BTreeMap<String, u64>> {
    let out = common::exec(ns, &["conntrack", "-S"]);
    assert!(out.status.success(), "conntrack -S failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut cpus = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split_whitespace();
        let Some(cpu) = fields.next().and_then(|f| f.strip_prefix("cpu=")) else { continue };
        let counters = fields
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse::<u64>().expect("counter value")))
            .collect();
        cpus.insert(cpu.parse().expect("cpu number"), counters);
    }
    assert!(!cpus.is_empty(), "conntrack -S printed no CPU line");
    cpus
}

fn conntrack_c(ns: &str) -> u64 {
    let out = common::exec(ns, &["conntrack", "-C"]);
    assert!(out.status.success());
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

/// A DNS query for `name` of type `qtype` with ID `id`.
fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
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
                        let query = dns_query(id, "kubernetes.default.svc.cluster.local", qtype);
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
    ns.run(|| {
        // SAFETY: plain socket/sendto/close calls with valid buffers.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP);
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let mut dst: libc::sockaddr_in = std::mem::zeroed();
            dst.sin_family = libc::AF_INET as libc::sa_family_t;
            dst.sin_addr.s_addr = u32::from_ne_bytes([198, 19, 0, 10]);
            for i in 0..n {
                let mut tcp = [0u8; 20];
                tcp[0..2].copy_from_slice(&(40000 + i as u16).to_be_bytes()); // source port
                tcp[2..4].copy_from_slice(&53u16.to_be_bytes()); // destination port
                tcp[4..8].copy_from_slice(&(1000 + i).to_be_bytes()); // sequence number
                tcp[12] = 5 << 4; // data offset: 5 words, no options
                tcp[13] = 0x03; // flags: SYN | FIN, never valid together
                tcp[14..16].copy_from_slice(&1024u16.to_be_bytes()); // window
                let sent = libc::sendto(
                    fd,
                    tcp.as_ptr().cast(),
                    tcp.len(),
                    0,
                    (&dst as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                assert_eq!(sent, 20, "sendto: {}", std::io::Error::last_os_error());
            }
            libc::close(fd);
        }
    })
    .expect("run in client namespace");
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
    // The clash needs both queries on two CPUs at the same instant; ctdiag
    // probe's threads mode spins its senders for that. A loaded machine can
    // still miss, so up to three bounded rounds until the kernel counts one.
    for _ in 0..3 {
        let clashes: u64 = conntrack_s(&lab.node_ns()).values().map(|c| c["clash_resolve"]).sum();
        if clashes > 0 {
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
    assert!(report["max_entries"].as_u64().unwrap_or(0) > 0);
    // The total row is the sum of the CPUs, counter by counter.
    for (name, total) in report["total"].as_object().expect("total") {
        let sum: u64 = reference.values().map(|c| c[name]).sum();
        assert_eq!(total.as_u64(), Some(sum), "total {name}");
    }
    // The traffic raced in conntrack: this kernel resolves the clashes.
    let clash: u64 = reference.values().map(|c| c["clash_resolve"]).sum();
    assert!(clash > 0, "parallel A/AAAA from one socket raised no clash_resolve: {reference:?}");
    let invalid: u64 = reference.values().map(|c| c["invalid"]).sum();
    assert!(invalid >= 10, "SYN|FIN segments not counted invalid: {reference:?}");
    let codes: Vec<&str> =
        report["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(codes.contains(&"totals-since-boot"), "{codes:?}");
    let clean = reference.values().all(|c| c["insert_failed"] == 0 && c["drop"] == 0);
    if clean {
        assert!(codes.contains(&"clashes-resolved"), "{codes:?}");
        assert_eq!(out.status.code(), Some(0), "no drops: exit 0");
    } else {
        assert!(codes.contains(&"conntrack-drops"), "{codes:?}");
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
    let watcher = Command::new(common::CTDIAG)
        .args(["stats", "--netns", &node, "--watch", "1.5", "--count", "2", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctdiag stats --watch");
    // Traffic during the first interval.
    // On current kernels `found` and `insert` no longer move; clashes of
    // parallel A/AAAA do, but only when two CPUs race, which a loaded
    // machine may not give. Invalid segments move `invalid` every time.
    std::thread::sleep(Duration::from_millis(200));
    parallel_lookups(&lab.client_ns(), 100);
    invalid_tcp_segments(&lab.client_ns(), 25);
    let out = watcher.wait_with_output().expect("watch output");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "--count 2 gives two lines: {lines:?}");
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1));
    let moved: u64 = lines
        .iter()
        .flat_map(|l| l["delta"].as_object().expect("delta").values())
        .map(|v| v.as_u64().expect("integer delta"))
        .sum();
    assert!(moved > 0, "no counter moved while traffic ran: {lines:?}");
    let invalid: u64 = lines.iter().map(|l| l["delta"]["invalid"].as_u64().unwrap_or(0)).sum();
    assert!(invalid >= 25, "25 SYN|FIN segments crossed the node: invalid +{invalid}");
    let first = &lines[0];
    assert!(first["seconds"].as_f64().unwrap() >= 1.4);
    let found = first["delta"]["found"].as_u64().unwrap_or(0) as f64;
    let rate = first["rate_per_s"]["found"].as_f64().unwrap_or(-1.0);
    assert!(
        (rate - found / first["seconds"].as_f64().unwrap()).abs() < 1e-6,
        "rate = delta / seconds"
    );
    assert!(first["entries"].as_u64().unwrap() > 0);
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
        let out = Command::new(common::CTDIAG).args(*args).output().expect("run ctdiag");
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
    let watcher = Command::new(common::CTDIAG)
        .args(["stats", "--netns", &lab.node_ns(), "--watch", "0.5", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctdiag stats --watch");
    std::thread::sleep(Duration::from_millis(1300));
    let kill = Command::new("kill").args(["-INT", &watcher.id().to_string()]).status();
    assert!(kill.expect("kill").success());
    let out = watcher.wait_with_output().expect("watch output");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
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
    let out = Command::new("unshare").args(["-m", "sh", "-c", &script]).output().expect("unshare");
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
