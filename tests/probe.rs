//! `ctdiag probe` against real sockets: argument checks, a loopback
//! responder that misbehaves on purpose (strict matching), and labs where
//! the kernel's own counters (`conntrack -S`) are the reference.
//!
//! Network rule: probes only go to loopback or into lab namespaces; every
//! probe here sets `--server` to loopback or runs with `--netns` in a lab.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kernel::Moved;
use common::report::u;
use common::TestLab;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use serde_json::Value;

fn probe_in_lab(lab: &TestLab, args: &[&str]) -> (std::process::Output, Value) {
    let client = lab.client_ns();
    let node = lab.node_ns();
    let mut full = vec!["probe", "--netns", &client, "--stats-netns", &node, "-o", "json"];
    full.extend_from_slice(args);
    let out = common::ctdiag(&full);
    let report = common::json(&out);
    (out, report)
}

// ---------- no root needed ----------

#[test]
fn bad_input_is_a_usage_error_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["--server", "not-an-ip"], "not an IP address"),
        (&["--server", "127.0.0.1:0"], "port 0"),
        (&["--server", "127.0.0.1:70000"], "out of range"),
        (&["--server", "127.0.0.1", "--name", "bad..name"], "empty label"),
        (&["--server", "127.0.0.1", "--name", "has space.org"], "not allowed"),
        (&["--server", "127.0.0.1", "--count", "0"], "--count 0"),
        (&["--server", "127.0.0.1", "--rate=-5"], "--rate"),
        (&["--server", "127.0.0.1", "--rate", "NaN"], "--rate"),
        (&["--server", "127.0.0.1", "--concurrency", "0"], "--concurrency"),
        (&["--server", "127.0.0.1", "--timeout", "0"], "--timeout"),
        (&["--server", "127.0.0.1", "--duration", "forever"], "--duration"),
        (&["--server", "127.0.0.1", "--count", "1000000", "--rate", "1"], "limit per run"),
        (&["--server", "127.0.0.1", "--netns", "/nonexistent/ns"], "does not exist"),
        (&["--server", "127.0.0.1", "--mode", "bogus"], "bogus"),
        (&["--server", "127.0.0.1", "--count", "5", "--duration", "1s"], "cannot be used"),
        (&["--server", "127.0.0.1", "--slow-ms", "0"], "--slow-ms 0"),
        (&["--server", "127.0.0.1", "--slow-ms", "3000"], "above --timeout 2000"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["probe"];
        full.extend_from_slice(args);
        let out = common::ctdiag(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}: {}", common::stderr(&out));
        assert!(
            common::stderr(&out).contains(expected),
            "{full:?}: stderr lacks {expected:?}: {}",
            common::stderr(&out)
        );
        assert!(out.stdout.is_empty(), "{full:?} printed a report: {}", common::stdout(&out));
    }
}

/// A loopback port nobody listens on (bound, then released).
fn closed_loopback_port() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

#[test]
fn unreachable_server_counts_icmp_errors_and_exits_2_without_hanging() {
    let server = closed_loopback_port().to_string();
    for mode in ["parallel", "threads", "sequential", "reopen", "tcp"] {
        let started = Instant::now();
        // One lookup at a time, so that a run waiting out each lookup's
        // 2 s timeout instead of taking the ICMP error would last 40 s.
        let out = common::ctdiag(&[
            "probe",
            "--server",
            &server,
            "--count",
            "20",
            "--rate",
            "0",
            "--concurrency",
            "1",
            "--timeout",
            "2000",
            "--mode",
            mode,
        ]);
        assert_eq!(out.status.code(), Some(2), "{mode}: {}", common::stderr(&out));
        let err = common::stderr(&out);
        // The sentence names what happened: refused, nothing listening.
        let refused = if mode == "tcp" { "a TCP reset" } else { "ICMP port unreachable" };
        assert!(err.contains(refused) && err.contains(&server), "{mode}: {err}");
        assert!(err.contains("of 40 queries, 40 were refused"), "{mode}: {err}");
        // ICMP port unreachable arrives at once: 20 lookups on loopback
        // take milliseconds. The bound is half of what waiting out every
        // timeout costs (20 x 2 s = 40 s), which leaves 20 s for starting
        // ctdiag on a loaded machine and still fails a run in which even
        // half the lookups waited for their timeout.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(20), "{mode} took {took:?}");
    }
}

/// How the loopback responder misbehaves before it answers correctly.
struct Responder {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            handle.join().unwrap();
        }
    }
}

fn reply(query: &Message, id: u16, name: Option<&str>, tc: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.truncation = tc;
    let q = &query.queries[0];
    let name = name.map_or_else(|| q.name().clone(), |n| Name::from_ascii(n).unwrap());
    m.add_query(Query::query(name, q.query_type()));
    m.to_vec().unwrap()
}

/// Answers every lookup's pair once both queries are in: before each real
/// answer it sends a wrong-ID, a wrong-question and a TC copy, and the A
/// answer twice (a duplicate), all before the AAAA answer.
fn misbehaving_responder() -> Responder {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let address = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut pending: std::collections::HashMap<SocketAddr, Message> = Default::default();
        let mut buf = [0u8; 1500];
        while !stop_flag.load(Ordering::SeqCst) {
            let Ok((len, peer)) = socket.recv_from(&mut buf) else { continue };
            let query = Message::from_vec(&buf[..len]).unwrap();
            let Some(first) = pending.remove(&peer) else {
                pending.insert(peer, query);
                continue;
            };
            let (a, aaaa) = if first.queries[0].query_type() == RecordType::A {
                (first, query)
            } else {
                (query, first)
            };
            let ids = [a.metadata.id, aaaa.metadata.id];
            for q in [&a, &aaaa] {
                let id = q.metadata.id;
                // An ID that is neither query's.
                let mut wrong = id.wrapping_add(1);
                while ids.contains(&wrong) {
                    wrong = wrong.wrapping_add(1);
                }
                socket.send_to(&reply(q, wrong, None, false), peer).unwrap();
                socket.send_to(&reply(q, id, Some("other.cluster.local."), false), peer).unwrap();
                socket.send_to(&reply(q, id, None, true), peer).unwrap();
            }
            let answer_a = reply(&a, a.metadata.id, None, false);
            socket.send_to(&answer_a, peer).unwrap();
            socket.send_to(&answer_a, peer).unwrap();
            socket.send_to(&reply(&aaaa, aaaa.metadata.id, None, false), peer).unwrap();
        }
    });
    Responder { address, stop, handle: Some(handle) }
}

#[test]
fn strict_matching_against_a_misbehaving_loopback_responder() {
    let responder = misbehaving_responder();
    let server = responder.address.to_string();
    let out = common::ctdiag(&[
        "probe",
        "--server",
        &server,
        "--count",
        "50",
        "--rate",
        "0",
        "--concurrency",
        "8",
        "--mode",
        "parallel",
        "-o",
        "json",
    ]);
    let report = common::json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(u(&report, "lookups"), 50);
    assert_eq!(u(&report, "queries_sent"), 100);
    assert_eq!(u(&report, "answered"), 100);
    assert_eq!(u(&report, "lost"), 0);
    let stray = &report["stray"];
    assert_eq!(stray["wrong_id"], 100, "{stray}");
    assert_eq!(stray["wrong_question"], 100, "{stray}");
    assert_eq!(stray["truncated"], 100, "{stray}");
    assert_eq!(stray["duplicate"], 50, "{stray}");
    assert_eq!(stray["wrong_source"], 0, "{stray}");
    assert_eq!(report["rcodes"]["NOERROR"], 100);
    assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    let max = report["latency_ms"]["max"].as_f64().unwrap();
    assert!(report["latency_ms"]["p99"].as_f64().unwrap() <= max);
    assert!(report["findings"].as_array().unwrap().iter().any(|f| f["code"] == "stray-packets"));
}

#[test]
fn silent_server_loses_every_query_within_the_timeout() {
    // Bound and never read: queries are accepted by the kernel and never answered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    // One lookup at a time: ten waits of 300 ms, one after the other.
    let out = common::ctdiag(&[
        "probe",
        "--server",
        &server,
        "--count",
        "10",
        "--rate",
        "0",
        "--concurrency",
        "1",
        "--timeout",
        "300",
        "-o",
        "json",
    ]);
    let report = common::json(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(u(&report, "lost"), 20);
    assert_eq!(u(&report, "both_lost_lookups"), 10);
    assert_eq!(u(&report, "resolver_timeout_lookups"), 10);
    assert!(report["latency_ms"]["p50"].is_null());
    // Ten lookups in turn, each waiting its 300 ms: at least 3 s (a hard
    // floor: a run that gave up sooner did not wait for its timeout). The
    // upper bound is half of what the default 2 s timeout would cost (10 x
    // 2 s = 20 s), so a run that ignored --timeout fails, while 7 s are
    // left for a loaded machine to start and schedule ctdiag.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(3000), "took {took:?}: did it wait its timeouts?");
    assert!(took < Duration::from_secs(10), "took {took:?} with --timeout 300");
}

// ---------- labs (root) ----------

/// Every counter of ctdiag's `conntrack_delta` is what `conntrack -S` saw
/// move around the run, and null exactly when the kernel lacks it.
fn assert_delta_is_the_kernels(report: &Value, moved: &Moved, what: &str) {
    for counter in ["insert_failed", "drop", "early_drop", "clash_resolve"] {
        assert_eq!(
            report["conntrack_delta"][counter],
            serde_json::json!(moved.by(counter)),
            "{what} {counter}: ctdiag's delta against conntrack -S: {report:#}"
        );
    }
}

/// What a probe that may race must show, by what the kernel showed around
/// it: nothing lost and exit 0 when conntrack dropped nothing (a kernel
/// that resolves its clashes, 6.18 here); otherwise no more queries lost
/// than the packets conntrack counted dropped, and exit 1 (ctdiag reports
/// drops it saw as a finding).
fn assert_loss_within_kernel_drops(out: &Output, report: &Value, moved: &Moved, what: &str) {
    let drops = moved.drops();
    assert!(
        u(report, "lost") <= drops,
        "{what}: lost more than conntrack dropped ({drops}): {report:#}"
    );
    let status = if drops == 0 { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(status), "{what}: {drops} drops: {report:#}");
}

#[test]
fn threads_mode_clashes_match_conntrack_s_and_nothing_is_lost() {
    if !common::require_root() || !common::require_tool("conntrack", "conntrack") {
        return;
    }
    let lab = TestLab::up(&[]);
    // The clash needs both senders on two CPUs at the same instant; a
    // loaded CI machine can starve one of them for a whole run. Up to three
    // bounded runs, until the kernel counts a race in the counter it has
    // for it; every run must agree with conntrack -S.
    let mut raced = (serde_json::Value::Null, None);
    for _ in 0..3 {
        let before = common::conntrack_s(&lab.node_ns());
        let (out, run) =
            probe_in_lab(&lab, &["--mode", "threads", "--count", "2000", "--rate", "0"]);
        let moved = Moved::between(before, common::conntrack_s(&lab.node_ns()));
        assert_eq!(run["server"], "198.19.0.10:53");
        assert_eq!(run["mode"], "threads");
        assert_eq!(u(&run, "lookups"), 2000);
        assert_delta_is_the_kernels(&run, &moved, "threads");
        assert_loss_within_kernel_drops(&out, &run, &moved, "threads");
        let done = moved.raced() > 0;
        raced = (run, Some(moved));
        if done {
            break;
        }
    }
    let (report, moved) = raced;
    let moved = moved.unwrap();
    let counter = moved.race_counter();
    assert!(moved.raced() > 0, "no {counter} in three runs of 2000 threaded lookups: {report:#}");
    // The findings name what the kernel did with the races: resolved them
    // all (counted in clash_resolve, nothing dropped: the resolved clashes
    // first), or dropped packets: the lost queries first, or,
    // with nothing lost (as a 5.6-5.9 kernel counts resolved clashes in
    // insert_failed), the drops that cost no probe.
    let codes: Vec<&str> =
        report["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    if u(&report, "lost") > 0 {
        assert_eq!(codes.first(), Some(&"conntrack-race-drops"), "{moved:?}: {report:#}");
    } else if moved.drops() > 0 {
        assert!(codes.contains(&"conntrack-drops-elsewhere"), "{moved:?}: {report:#}");
        assert!(!codes.contains(&"conntrack-race-drops"), "{moved:?}: {report:#}");
    } else {
        assert_eq!(codes.first(), Some(&"conntrack-clashes-resolved"), "{moved:?}: {report:#}");
    }
}

#[test]
fn every_mode_answers_in_a_healthy_lab() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    for mode in ["parallel", "sequential", "reopen", "tcp", "musl"] {
        let before = common::conntrack_s(&lab.node_ns());
        let (out, report) = probe_in_lab(&lab, &["--mode", mode, "--count", "200", "--rate", "0"]);
        let moved = Moved::between(before, common::conntrack_s(&lab.node_ns()));
        assert_eq!(report["mode"], mode);
        // The counters are the kernel's own, read around the run: each
        // delta is what `conntrack -S` moved by (nothing else runs in the
        // lab's node namespace).
        assert_delta_is_the_kernels(&report, &moved, mode);
        // sequential, reopen and tcp never have two queries of one socket
        // in flight, so nothing races on any kernel: conntrack drops
        // nothing. parallel and musl send the pair at once from one
        // socket; from one thread the pair crosses the node in order on
        // one CPU and has not raced here (tests/resolvers.rs measures
        // clash_resolve +0), but should it race on a kernel that drops
        // clash losers (before 5.6), at most what that kernel counted
        // dropped may be lost; where it drops nothing (6.18 here), nothing.
        if matches!(mode, "sequential" | "reopen" | "tcp") {
            assert_eq!(moved.drops(), 0, "{mode}: a healthy lab drops nothing: {moved:?}");
        }
        assert_loss_within_kernel_drops(&out, &report, &moved, mode);
        let lost = u(&report, "lost");
        assert_eq!(u(&report, "answered"), 400 - lost, "{mode}: {report:#}");
        assert_eq!(report["rcodes"]["NOERROR"], 400 - lost, "{mode}");
    }
    // `--parallel` is the spelling users type.
    let before = common::conntrack_s(&lab.node_ns());
    let (out, report) = probe_in_lab(&lab, &["--parallel", "--count", "20"]);
    let moved = Moved::between(before, common::conntrack_s(&lab.node_ns()));
    assert_loss_within_kernel_drops(&out, &report, &moved, "--parallel");
    assert_eq!(report["mode"], "parallel");
}

/// A slow endpoint behind the ClusterIP: nothing is lost, yet the lookups
/// it answers are slower than --slow-ms, so the run warns with the share
/// and the percentiles (exit 1); with a threshold above the delay it does
/// not.
#[test]
fn slow_answers_are_a_warning_with_the_share() {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&[]);
    lab.scenario("slow-endpoint", &["--endpoint", "2", "--delay-ms", "300"]);
    let args = ["--count", "40", "--rate", "0", "--timeout", "1000"];
    let mut slow = args.to_vec();
    slow.extend(["--slow-ms", "200"]);
    let (out, report) = probe_in_lab(&lab, &slow);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(u(&report, "lost"), 0, "{report:#}");
    let slow_lookups = u(&report, "slow_lookups");
    // DNAT sends about half the lookups to the slow endpoint: all 40 one
    // way has odds of 2^-39.
    assert!(slow_lookups > 0 && slow_lookups < 40, "{report:#}");
    assert_eq!(report["slow_ms"], 200);
    assert_eq!(report["slow_from"], "--slow-ms");
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "slow-answers")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(finding["severity"], "warning");
    let summary = finding["summary"].as_str().unwrap();
    assert!(summary.starts_with(&format!("{slow_lookups} of 40 answered lookups")), "{summary}");
    // The evidence names the percentiles: p99 is one of the slow lookups,
    // so at least the 300 ms delay (the responder never answers early) and
    // under the 1000 ms timeout (nothing was lost). Any lateness a loaded
    // machine adds stays inside that window.
    let evidence = finding["evidence"].as_str().unwrap();
    let p99: f64 = evidence
        .split_once("p99 ")
        .and_then(|(_, rest)| rest.split([',', ' ']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no p99 in the evidence: {finding:#}"));
    assert!((300.0..1000.0).contains(&p99), "p99 {p99} ms with a 300 ms delay: {finding:#}");
    // 800 ms: 500 ms above the delay, room for a loaded machine; an
    // answer that late would be lost at the 1000 ms timeout anyway.
    let mut relaxed = args.to_vec();
    relaxed.extend(["--slow-ms", "800"]);
    let (out, report) = probe_in_lab(&lab, &relaxed);
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(u(&report, "slow_lookups"), 0);
    // The default: a fifth of the pod resolv.conf's 5 s timeout.
    let (_, report) = probe_in_lab(&lab, &["--count", "5"]);
    assert_eq!(report["slow_ms"], 1000, "{report:#}");
}

#[test]
fn dead_endpoint_loses_about_half_of_the_lookups() {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2"]);
    lab.scenario("dead-endpoint", &[]);
    let (out, report) = probe_in_lab(
        &lab,
        &["--count", "300", "--rate", "0", "--timeout", "500", "--concurrency", "64"],
    );
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let lookups = u(&report, "lookups") as f64;
    let hit = (u(&report, "one_lost_lookups") + u(&report, "both_lost_lookups")) as f64;
    let share = hit / lookups;
    // Binomial(300, 0.5): sd 0.029, so 0.2 is about seven sd. A healthy
    // answer taken for lost (later than 500 ms on a loaded machine) moves
    // the share by 1/300 each: it takes dozens to leave the window.
    assert!((0.3..=0.7).contains(&share), "share of lookups with a loss {share}: {report:#}");
    assert!(u(&report, "lost") > 0);
    assert_eq!(u(&report, "lost"), u(&report, "queries_sent") - u(&report, "answered"));
    // About half of the queries lost: far above the 1 % that makes a loss
    // critical, and conntrack dropped nothing (the packets die at the
    // blackhole), so it is dns-queries-lost, first.
    assert_eq!(report["findings"][0]["code"], "dns-queries-lost", "{report:#}");
    assert_eq!(report["findings"][0]["severity"], "critical", "{report:#}");
    // The server came from the rules, which still list both endpoints: the
    // remedy names the commands that probe each one.
    let endpoints = lab.endpoints();
    assert_eq!(report["cluster_endpoints"], serde_json::json!(endpoints), "{report:#}");
    let lost = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "dns-queries-lost")
        .unwrap_or_else(|| panic!("no dns-queries-lost finding: {report:#}"));
    for endpoint in &endpoints {
        let command = format!("ctdiag probe --server {endpoint}");
        assert!(lost["remedy"].as_str().unwrap().contains(&command), "{lost:#}");
    }
}

/// kube-proxy's rules for a kube-dns without ready endpoints: no DNAT, only
/// the filter table's REJECT.
const NO_ENDPOINT_RULES: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -d 198.19.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns has no endpoints" -m udp --dport 53 -j REJECT --reject-with icmp-port-unreachable
-A KUBE-SERVICES -d 198.19.0.10/32 -p tcp -m comment --comment "kube-system/kube-dns:dns-tcp has no endpoints" -m tcp --dport 53 -j REJECT --reject-with icmp-port-unreachable
COMMIT
"#;

#[test]
fn cluster_dns_without_endpoints_is_named() {
    cluster_dns_without_endpoints("iptables");
}

#[test]
fn cluster_dns_without_endpoints_is_named_in_nftables_mode() {
    cluster_dns_without_endpoints("nftables");
}

fn cluster_dns_without_endpoints(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&["--proxy-mode", proxy_mode]);
    let file = std::env::temp_dir().join(format!("ctdiag-{}-no-endpoints.rules", lab.prefix));
    let path = file.to_str().unwrap();
    let load: &[&str] = if proxy_mode == "nftables" {
        // The lab's own generator, as kube-proxy writes a Service whose
        // endpoints are all gone.
        std::fs::write(&file, ctdiag::lab::kube_dns_rules(&[]).nft_input()).unwrap();
        &["nft", "-f", path]
    } else {
        std::fs::write(&file, NO_ENDPOINT_RULES).unwrap();
        &["iptables-restore", path]
    };
    let restore = common::exec(&lab.node_ns(), load);
    let _ = std::fs::remove_file(&file);
    assert!(restore.status.success(), "{}", common::stderr(&restore));

    // One lookup: both queries get the node's ICMP port unreachable (the
    // first few ICMP errors to a host are never rate-limited).
    let (client, node) = (lab.client_ns(), lab.node_ns());
    let out =
        common::ctdiag(&["probe", "--netns", &client, "--stats-netns", &node, "--count", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let message = common::stderr(&out);
    assert!(message.contains("have no endpoints for it"), "{message}");
    assert!(message.contains("kube-system/kube-dns:dns ClusterIP"), "{message}");

    // More lookups than the ICMP rate limit lets through: some time out, so
    // the run reports, with the missing endpoints first.
    let (out, report) = probe_in_lab(&lab, &["--count", "10", "--rate", "0", "--timeout", "300"]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert_eq!(report["cluster_endpoints"], serde_json::json!([]));
    assert_eq!(report["findings"][0]["code"], "cluster-dns-no-endpoints", "{report:#}");
    assert_eq!(report["answered"], 0);
}

#[test]
fn injected_aaaa_loss_shows_as_one_lost_lookups() {
    if !common::require_root() {
        return;
    }
    let rate = 0.2;
    let lab = TestLab::up(&["--drop-aaaa-rate", "0.2"]);
    // --timeout 2000 (the default): no A may be lost, so an answer must
    // never be taken for lost because a loaded machine delayed it; the
    // lab's responder answers in under a millisecond, 2 s is beyond any
    // scheduling delay. The dropped AAAA queries wait it out 64 at a time.
    let (out, report) = probe_in_lab(
        &lab,
        &["--count", "1000", "--rate", "0", "--timeout", "2000", "--concurrency", "64"],
    );
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let share = u(&report, "one_lost_lookups") as f64 / u(&report, "lookups") as f64;
    // Binomial(1000, 0.2): sd 0.0126; 0.05 is about four sd.
    assert!((share - rate).abs() < 0.05, "one_lost share {share}: {report:#}");
    assert_eq!(report["lost_by_type"]["A"], 0, "{report:#}");
    assert_eq!(u(&report, "both_lost_lookups"), 0);
    assert_eq!(report["lost_by_type"]["AAAA"].as_u64(), Some(u(&report, "one_lost_lookups")));
}

#[test]
fn dnsmasq_endpoints_answer_every_mode() {
    if !common::require_root() || !common::require_tool("dnsmasq", "dnsmasq") {
        return;
    }
    let lab = TestLab::up(&["--dns", "dnsmasq"]);
    for mode in ["parallel", "threads", "tcp"] {
        let (out, report) = probe_in_lab(&lab, &["--mode", mode, "--count", "300", "--rate", "0"]);
        assert_eq!(out.status.code(), Some(0), "{mode}: {report:#}");
        assert_eq!(u(&report, "answered"), 600, "{mode}: {report:#}");
        assert_eq!(report["rcodes"]["NOERROR"], 600, "{mode}");
    }
}

#[test]
fn missing_nameserver_names_the_resolv_conf() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let file = format!("/etc/netns/{}/resolv.conf", lab.client_ns());
    std::fs::write(&file, "search cluster.local\noptions ndots:5\n").unwrap();
    let out = common::ctdiag(&["probe", "--netns", &lab.client_ns(), "--count", "5"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    assert!(common::stderr(&out).contains(&file), "{}", common::stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn default_server_is_the_kube_dns_cluster_ip_from_the_node_rules() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    // The pod's resolv.conf names the endpoint directly, so only the rules
    // can point at the ClusterIP.
    let file = format!("/etc/netns/{}/resolv.conf", lab.client_ns());
    std::fs::write(&file, format!("nameserver {}\noptions timeout:3\n", lab.endpoint_ip(1)))
        .unwrap();

    let before = common::conntrack_s(&lab.node_ns());
    let (out, report) = probe_in_lab(&lab, &["--count", "10"]);
    let moved = Moved::between(before, common::conntrack_s(&lab.node_ns()));
    // Parallel mode through the ClusterIP: nothing lost unless the kernel
    // dropped it.
    assert_loss_within_kernel_drops(&out, &report, &moved, "default server");
    assert_eq!(report["server"], format!("{}:53", lab.cluster_ip()));
    let from = report["server_from"].as_str().unwrap();
    assert!(from.starts_with("kube-system/kube-dns:dns ClusterIP"), "{from}");
    // Read over netlink: iptables-restore wrote through iptables-nft here.
    assert!(from.contains("netlink (iptables-nft)") && from.contains(&lab.node_ns()), "{from}");
    assert_eq!(u(&report, "answered"), 20 - u(&report, "lost"), "{report:#}");
    // resolv.conf still gives the resolver's timeout.
    assert_eq!(report["resolver"]["timeout_s"], 3, "{report:#}");

    // TCP mode takes the dns-tcp port.
    let (_, report) = probe_in_lab(&lab, &["--count", "2", "--mode", "tcp"]);
    assert!(
        report["server_from"].as_str().unwrap().starts_with("kube-system/kube-dns:dns-tcp"),
        "{report:#}"
    );

    // Where the rules are not (without --stats-netns: the test machine's
    // own namespace, which has no kube-proxy), resolv.conf decides, and -v
    // says why.
    let out =
        common::ctdiag(&["probe", "--netns", &lab.client_ns(), "--count", "2", "-o", "json", "-v"]);
    let report = common::json(&out);
    assert_eq!(report["server"], format!("{}:53", lab.endpoint_ip(1)));
    assert_eq!(report["server_from"], file.as_str());
    assert!(
        common::stderr(&out).contains("no kube-system/kube-dns udp ClusterIP"),
        "{}",
        common::stderr(&out)
    );

    // --server always wins.
    let (_, report) = probe_in_lab(&lab, &["--count", "2", "--server", &lab.endpoint_ip(2)]);
    assert_eq!(report["server"], format!("{}:53", lab.endpoint_ip(2)));
    assert_eq!(report["server_from"], "--server");
}

#[test]
fn nftables_mode_node_gives_the_default_server_and_races_the_same() {
    if !common::require_root() || !common::require_tool("nft", "nftables") {
        return;
    }
    let lab = TestLab::up(&["--proxy-mode", "nftables"]);
    // The pod's resolv.conf names an endpoint: only the nft rules can give
    // the ClusterIP.
    let file = format!("/etc/netns/{}/resolv.conf", lab.client_ns());
    std::fs::write(&file, format!("nameserver {}\n", lab.endpoint_ip(1))).unwrap();
    let before = common::conntrack_s(&lab.node_ns());
    let (out, report) = probe_in_lab(&lab, &["--mode", "threads", "--count", "300", "--rate", "0"]);
    let moved = Moved::between(before, common::conntrack_s(&lab.node_ns()));
    assert_eq!(report["server"], format!("{}:53", lab.cluster_ip()));
    let from = report["server_from"].as_str().unwrap();
    assert!(from.contains("netlink (nftables) in") && from.contains(&lab.node_ns()), "{from}");
    assert_eq!(report["cluster_endpoints"], serde_json::json!(lab.endpoints()));
    // Races through nft's DNAT as through iptables': the counters are the
    // kernel's, and nothing is lost unless the kernel dropped it.
    assert_delta_is_the_kernels(&report, &moved, "threads (nftables)");
    assert_loss_within_kernel_drops(&out, &report, &moved, "threads (nftables)");
    assert_eq!(u(&report, "answered"), 600 - u(&report, "lost"), "{report:#}");
}

#[test]
fn netns_by_pid_and_by_path_as_on_a_real_node() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    // A "pod" process: `ip netns exec` also bind-mounts the pod's
    // resolv.conf over /etc/resolv.conf in the process's mount namespace,
    // as the container runtime does.
    let pod = common::spawn("ip", &["netns", "exec", &lab.client_ns(), "sleep", "30"]);
    let pid = pod.id().to_string();
    // Wait until it runs inside the namespace (ip execs sleep), bounded.
    let started = Instant::now();
    let exec_done = || {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|exe| exe.to_string_lossy().contains("sleep"))
    };
    // Bounded at 20 s: `ip` execs sleep within milliseconds; the wait only
    // has to outlast a loaded machine, and the `sleep 30` must still run
    // when the probes below start.
    while !exec_done() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(exec_done(), "`ip netns exec ... sleep` did not exec sleep within 20 s");

    // By PID: sockets in the pod's namespace, server from the pod's own
    // resolv.conf (no --stats-netns, so no kube-proxy rules to read here).
    let before = common::conntrack_s(&lab.node_ns());
    let out = common::ctdiag(&["probe", "--netns", &pid, "--count", "10", "-o", "json"]);
    let moved = Moved::between(before, common::conntrack_s(&lab.node_ns()));
    let report = common::json(&out);
    // Without --stats-netns ctdiag reads no counters, so only a loss fails
    // the run; the kernel's view bounds the loss (none unless it dropped).
    let lost = u(&report, "lost");
    assert!(lost <= moved.drops(), "lost more than conntrack dropped: {moved:?} {report:#}");
    assert_eq!(out.status.code(), Some(if lost == 0 { 0 } else { 1 }), "{report:#}");
    assert_eq!(report["server_from"], format!("/proc/{pid}/root/etc/resolv.conf"));
    assert_eq!(report["server"], format!("{}:53", lab.cluster_ip()));
    assert_eq!(report["netns"], pid.as_str());
    assert_eq!(u(&report, "answered"), 20 - lost, "{report:#}");

    // By path: the node's counters and rules through /run/netns/NODE.
    let node_path = format!("/run/netns/{}", lab.node_ns());
    let before = common::conntrack_s(&lab.node_ns());
    let out = common::ctdiag(&[
        "probe",
        "--netns",
        &pid,
        "--stats-netns",
        &node_path,
        "--count",
        "10",
        "-o",
        "json",
    ]);
    let moved = Moved::between(before, common::conntrack_s(&lab.node_ns()));
    let report = common::json(&out);
    assert!(report["server_from"].as_str().unwrap().contains(&node_path), "{report:#}");
    // The counters are the node's, read through the path: they moved as
    // `conntrack -S` in the node saw them move (the default parallel mode:
    // nothing lost unless the kernel dropped it).
    assert_delta_is_the_kernels(&report, &moved, "--stats-netns PATH");
    assert_loss_within_kernel_drops(&out, &report, &moved, "--stats-netns PATH");
    assert_eq!(report["stats_netns"], node_path.as_str(), "{report:#}");
    // The pod process is killed when `pod` is dropped.
    drop(pod);
}

/// Answers AAAA queries at once and A queries `a_delay` late (from a second
/// thread, in arrival order), on loopback.
fn late_a_responder(a_delay: Duration) -> Responder {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let address = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let sender = socket.try_clone().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>, SocketAddr)>();
        let delayed = std::thread::spawn(move || {
            for (due, packet, peer) in rx {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let _ = sender.send_to(&packet, peer);
            }
        });
        let mut buf = [0u8; 1500];
        while !stop_flag.load(Ordering::SeqCst) {
            let Ok((len, peer)) = socket.recv_from(&mut buf) else { continue };
            let Ok(query) = Message::from_vec(&buf[..len]) else { continue };
            let answer = reply(&query, query.metadata.id, None, false);
            if query.queries[0].query_type() == RecordType::A {
                let _ = tx.send((Instant::now() + a_delay, answer, peer));
            } else {
                let _ = socket.send_to(&answer, peer);
            }
        }
        drop(tx);
        let _ = delayed.join();
    });
    Responder { address, stop, handle: Some(handle) }
}

/// single-request-reopen: the A query times out, the AAAA query goes out
/// on a new socket and is answered; the A answer that comes after the
/// timeout still reaches the A query's socket, kept open for it, and is
/// counted as late (a reopen run used to close that socket at once).
#[test]
fn reopen_mode_counts_late_a_answers_on_the_first_socket() {
    let responder = late_a_responder(Duration::from_millis(1500));
    let server = responder.address.to_string();
    let out = common::ctdiag(&[
        "probe",
        "--server",
        &server,
        "--mode",
        "reopen",
        "--count",
        "20",
        "--rate",
        "0",
        "--concurrency",
        "20",
        "--timeout",
        "1000",
        "-o",
        "json",
    ]);
    let report = common::json(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert_eq!(report["lost_by_type"]["A"], 20, "{report:#}");
    assert_eq!(report["lost_by_type"]["AAAA"], 0, "{report:#}");
    assert_eq!(u(&report, "one_lost_lookups"), 20);
    // A socket lingers min(--timeout, 1 s) after its query timed out: here
    // the window for a late answer is 1 s to 2 s after the query. Each A
    // answer is sent 1.5 s after the responder received its query, in the
    // middle: it cannot come early (the delay starts after ctdiag's send),
    // and a loaded machine would have to hold the responder's send, or
    // ctdiag's read, for 0.5 s to push it out of the window. A socket
    // closed at its timeout counts no late answer at all.
    assert_eq!(report["stray"]["late"], 20, "{report:#}");
    assert_eq!(report["stray"]["wrong_id"], 0, "{report:#}");
    assert_eq!(report["sockets"]["lingering_closed_early"], 0, "{report:#}");
    // Two sockets per lookup at once: the A socket and the AAAA socket.
    assert!(u(&report["sockets"], "peak_open") > 20, "{report:#}");
}

/// Counts the open descriptors of a process (`/proc/PID/fd`).
fn open_descriptors(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|dir| dir.count())
}

/// A server that drops everything for 20 s, `--timeout 50`, under a low
/// open-file limit (`prlimit --nofile=64`): the sockets lingering for late
/// answers are bounded, so the run never hits the limit; it ends with
/// every query lost (exit 1), not with an error.
#[test]
fn lingering_sockets_stay_under_the_open_file_limit_against_a_silent_server() {
    if !common::require_tool("prlimit", "util-linux") {
        return;
    }
    // Bound and never read: every query is swallowed without an answer.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let running = common::spawn(
        "prlimit",
        &[
            "--nofile=64:64",
            "--",
            common::CTDIAG,
            "probe",
            "--server",
            &server,
            "--timeout",
            "50",
            "--duration",
            "20s",
            "--rate",
            "0",
            "--concurrency",
            "32",
            "-o",
            "json",
        ],
    );
    // prlimit sets the limit and execs ctdiag: the same PID.
    let pid = running.id();
    let started = Instant::now();
    let mut peak = 0;
    let mut samples = 0;
    // Sampled every 50 ms until 1 s before the run's 20 s end.
    while started.elapsed() < Duration::from_secs(19) {
        if let Some(n) = open_descriptors(pid) {
            peak = peak.max(n);
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The run stops starting lookups at 20 s and then waits at most one
    // timeout plus one linger (100 ms): 10 s more is room for a loaded
    // machine, not for a run that ignores --duration.
    let out = running.wait_bounded(Duration::from_secs(30));
    let report = common::json(&out);
    assert_eq!(out.status.code(), Some(1), "{}\n{report:#}", common::stderr(&out));
    // 380 samples if every 50 ms sleep were exact; at least one a second
    // (19) even when a loaded machine wakes this thread late. The run holds
    // its 32 sockets all along, so any sample sees the steady state.
    assert!(samples >= 19, "only {samples} samples of /proc/{pid}/fd");
    assert!(peak > 32, "the run never held its 32 sockets: peak {peak} descriptors");
    assert!(peak < 64, "{peak} descriptors open at once, the limit is 64");
    assert_eq!(u(&report, "answered"), 0);
    assert!(u(&report, "lookups") > 1000, "{report:#}");
    assert_eq!(u(&report, "lost"), u(&report, "queries_sent"));
    assert_eq!(report["findings"][0]["code"], "dns-queries-lost", "{report:#}");
    assert_eq!(report["findings"][0]["severity"], "critical", "{report:#}");
    let sockets = &report["sockets"];
    assert_eq!(sockets["open_file_limit"], 64, "{report:#}");
    let lingering = u(sockets, "lingering_limit");
    assert!((1..32).contains(&lingering), "{report:#}");
    assert!(u(sockets, "peak_open") <= 32 + lingering, "{report:#}");
    // Every lookup times out and would linger: the limit was reached and
    // the oldest lingering sockets were closed to stay within it.
    assert!(u(sockets, "lingering_closed_early") > 0, "{report:#}");
}

#[test]
fn concurrency_beyond_the_open_file_limit_names_the_limit() {
    if !common::require_tool("prlimit", "util-linux") {
        return;
    }
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let args = ["--server", &server, "--count", "1", "--concurrency", "100", "--timeout", "50"];
    let mut full = vec!["--nofile=64:64", "--", common::CTDIAG, "probe"];
    full.extend_from_slice(&args);
    let out = common::run("prlimit", &full);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
    let message = common::stderr(&out);
    assert!(message.contains("open-file limit") && message.contains("ulimit -n"), "{message}");
    assert!(message.contains("--concurrency 100"), "{message}");
    assert!(out.stdout.is_empty());
    // With room under the hard limit, ctdiag raises the soft one itself.
    let mut full = vec!["--nofile=64:4096", "--", common::CTDIAG, "probe", "-o", "json"];
    full.extend_from_slice(&args);
    let out = common::run("prlimit", &full);
    let report = common::json(&out);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert!(u(&report["sockets"], "open_file_limit") > 64, "{report:#}");
}

/// The reader of stdout is gone before the report is written (`| head -c
/// 1` that already exited): ctdiag ends quietly, and its exit status is
/// still that of its findings (every query lost: 1), in both formats.
#[test]
fn closed_stdout_keeps_the_exit_status_of_the_findings() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    for format in ["json", "table"] {
        let running = common::spawn_with_stdout_closed(
            common::CTDIAG,
            &["probe", "--server", &server, "--count", "4", "--timeout", "100", "-o", format],
        );
        let out = running.wait_bounded(Duration::from_secs(20));
        assert_eq!(out.status.code(), Some(1), "{format}: {}", common::stderr(&out));
        assert!(common::stderr(&out).is_empty(), "{format}: {}", common::stderr(&out));
    }
    // A clean run through a closed pipe still exits 0.
    let responder = misbehaving_responder();
    let server = responder.address.to_string();
    let out = common::spawn_with_stdout_closed(
        common::CTDIAG,
        &["probe", "--server", &server, "--count", "4", "-q"],
    )
    .wait_bounded(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
}

/// The same in a lab: a probe from the pod to a blackholed endpoint, its
/// output piped into a reader that is gone.
#[test]
fn closed_stdout_in_a_lab_probe_still_exits_1() {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2"]);
    lab.scenario("dead-endpoint", &["--endpoint", "2"]);
    let (client, node, dead) = (lab.client_ns(), lab.node_ns(), lab.endpoint_ip(2));
    let args = [
        "probe",
        "--netns",
        &client,
        "--stats-netns",
        &node,
        "--server",
        &dead,
        "--count",
        "5",
        "--timeout",
        "200",
    ];
    let out = common::spawn_with_stdout_closed(common::CTDIAG, &args)
        .wait_bounded(common::COMMAND_TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    // The same run with a reader: the critical finding that decided it.
    let mut with_json = args.to_vec();
    with_json.extend_from_slice(&["-o", "json"]);
    let report = common::json(&common::ctdiag(&with_json));
    assert_eq!(report["findings"][0]["severity"], "critical", "{report:#}");
    assert_eq!(report["lost"], 10, "{report:#}");
}

/// An `iptables-save` that never returns, first in the root PATH: `probe` without
/// `--server`, made to read the rules with the listing tools
/// (CTDIAG_RULES_FROM=tools), gives up on it at the listing deadline
/// (shortened here to 3 s through CTDIAG_LISTING_DEADLINE_MS; 10 s by
/// default), kills it and what it started, falls back to the pod's
/// resolv.conf, and says why with -v. By default the rules are read over
/// netlink and the hung tool is never started.
#[test]
fn a_hung_iptables_save_costs_one_deadline_then_resolv_conf_decides() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let dir = std::env::temp_dir().join(format!("ctdiag-hung-{}", lab.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    // A unique sleep length marks the fake's process, to find leftovers.
    let marker = format!("599.{}", std::process::id());
    // The fake leaves a file behind when it runs: whether it ran is read
    // from that, not guessed from how long the run took.
    let ran = dir.join("ran");
    let fake = dir.join("iptables-save");
    std::fs::write(&fake, format!("#!/bin/sh\n: > '{}'\nexec sleep {marker}\n", ran.display()))
        .unwrap();
    common::run("chmod", &["755", fake.to_str().unwrap()]);
    let deadline = Duration::from_secs(3);
    let started = Instant::now();
    // As root ctdiag runs tools from its fixed root PATH only: the fake is
    // put first there, in a private mount namespace.
    let out = common::ctdiag_with_tools(
        &dir,
        false,
        &["CTDIAG_LISTING_DEADLINE_MS=3000", "CTDIAG_RULES_FROM=tools"],
        &[
            "probe",
            "--netns",
            &lab.client_ns(),
            "--stats-netns",
            &lab.node_ns(),
            "--count",
            "5",
            "-o",
            "json",
            "-v",
        ],
    );
    let elapsed = started.elapsed();
    let report = common::json(&out);
    let stderr = common::stderr(&out);
    assert!(ran.exists(), "the fake iptables-save never ran: {stderr}");
    // The hung tool holds the run for one whole deadline: a hard floor.
    // Above it, the 5 lookups in the lab and starting ctdiag take well
    // under a second; the bound is two deadlines, so a run that waited
    // for the hung tool twice (or for the 10 s default) fails, and a
    // loaded machine has 3 s for the rest.
    assert!(elapsed >= deadline, "returned after {elapsed:?}, before the deadline: {stderr}");
    assert!(elapsed < deadline * 2, "took {elapsed:?}, a second deadline: {stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{report:#}");
    // The lab pod's resolv.conf names the ClusterIP.
    let resolv = format!("/etc/netns/{}/resolv.conf", lab.client_ns());
    assert_eq!(report["server_from"], resolv.as_str(), "{report:#}");
    assert_eq!(report["server"], format!("{}:53", lab.cluster_ip()));
    assert_eq!(report["cluster_endpoints"], Value::Null);
    assert_eq!(report["answered"], 10, "{report:#}");
    assert!(
        stderr.contains("`iptables-save` did not finish within 3s and was killed"),
        "-v must say why the rules gave no server: {stderr}"
    );
    // The fake was killed, not left behind.
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&marker))
        .collect();
    assert!(leftovers.is_empty(), "the hung tool survived: {leftovers:?}");

    // The default reads the rules over netlink: the fake never runs.
    std::fs::remove_file(&ran).unwrap();
    let out = common::ctdiag_with_tools(
        &dir,
        false,
        &["CTDIAG_LISTING_DEADLINE_MS=3000"],
        &[
            "probe",
            "--netns",
            &lab.client_ns(),
            "--stats-netns",
            &lab.node_ns(),
            "--count",
            "5",
            "-o",
            "json",
        ],
    );
    let never_ran = !ran.exists();
    let _ = std::fs::remove_dir_all(&dir);
    let report = common::json(&out);
    assert!(never_ran, "the listing tool ran: {}", common::stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let from = report["server_from"].as_str().unwrap();
    assert!(from.contains("netlink (iptables-nft)"), "{from}");
    assert_eq!(report["cluster_endpoints"], serde_json::json!(lab.endpoints()));
}
