//! Resolver fidelity: the probe modes against the real stub resolvers.
//! glibc (`getent ahosts NAME.`) and musl (tests/resolvers/lookup.c, built
//! with `musl-gcc -static` into a temp dir) run in a lab's client pod; strace
//! shows how each sends its pair of queries, and the node's conntrack
//! (`conntrack -S`, `conntrack -L`) shows what each does to it, next to
//! `ctdiag probe --mode parallel` and `--mode musl`.
//!
//! Network rule: the real resolvers run inside the lab's client namespace,
//! whose resolv.conf names the lab's ClusterIP; the loopback test sets
//! `--server` to its own responder.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::kernel::Moved;
use common::TestLab;
use hickory_proto::op::{Message, MessageType, OpCode};
use serde_json::Value;

/// The name every resolver looks up; the trailing dot keeps the pod's
/// search list (ndots:5) out of it.
const NAME: &str = "kubernetes.default.svc.cluster.local.";

/// Builds tests/resolvers/lookup.c with musl-gcc into a fresh temp dir.
fn musl_lookup() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctdiag-musl-{}", common::unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/resolvers/lookup.c");
    let binary = dir.join("lookup");
    let out = common::run(
        "musl-gcc",
        &["-static", "-O2", "-o", &binary.to_string_lossy(), &source.to_string_lossy()],
    );
    common::assert_success(&out, "musl-gcc lookup.c");
    binary
}

/// `strace -f -e trace=network CMD` in `ns`: the trace (stderr).
fn strace_in(ns: &str, cmd: &[&str]) -> String {
    let mut full = vec!["strace", "-f", "-e", "trace=network"];
    full.extend_from_slice(cmd);
    let out = common::exec(ns, &full);
    common::assert_success(&out, &format!("strace {cmd:?}"));
    common::stderr(&out)
}

/// The trace lines that concern DNS to the ClusterIP (port 53).
fn dns_lines(trace: &str) -> Vec<&str> {
    trace
        .lines()
        .filter(|l| l.contains("198.19.0.10") && l.contains("htons(53)") || l.contains("sendmmsg("))
        .collect()
}

#[test]
fn glibc_and_musl_send_their_pair_as_the_matching_modes_do() {
    if !common::require_root()
        || !common::require_tool("strace", "strace")
        || !common::require_tool("musl-gcc", "musl-tools")
        || !common::require_tool("getent", "libc-bin")
    {
        return;
    }
    let lab = TestLab::up(&[]);
    let client = lab.client_ns();
    let musl = musl_lookup();
    let ctdiag = |mode: &str| {
        strace_in(
            &client,
            &[
                common::CTDIAG,
                "probe",
                "--server",
                "198.19.0.10",
                "--mode",
                mode,
                "--count",
                "1",
                "-o",
                "json",
            ],
        )
    };
    // glibc: a connected socket, both queries in one sendmmsg.
    for (who, trace) in [
        ("getent (glibc)", strace_in(&client, &["getent", "ahosts", NAME])),
        ("--mode parallel", ctdiag("parallel")),
    ] {
        let lines = dns_lines(&trace);
        assert!(lines.iter().any(|l| l.starts_with("connect(")), "{who}: no connect:\n{trace}");
        let mmsg: Vec<&&str> = lines.iter().filter(|l| l.starts_with("sendmmsg(")).collect();
        assert_eq!(mmsg.len(), 1, "{who}: one sendmmsg:\n{trace}");
        assert!(mmsg[0].trim_end().ends_with("= 2"), "{who}: two messages in it: {}", mmsg[0]);
        assert!(!lines.iter().any(|l| l.starts_with("sendto(")), "{who}: no sendto:\n{trace}");
    }
    // musl: a socket bound to port 0, never connected, two sendto.
    let musl_trace = strace_in(&client, &[&musl.to_string_lossy(), NAME, "1"]);
    for (who, trace) in [("musl getaddrinfo", musl_trace), ("--mode musl", ctdiag("musl"))] {
        let lines = dns_lines(&trace);
        assert!(
            trace.lines().any(|l| l.starts_with("bind(") && l.contains("sin_port=htons(0)")),
            "{who}: no bind to port 0:\n{trace}"
        );
        assert!(!lines.iter().any(|l| l.starts_with("connect(")), "{who}: connected:\n{trace}");
        assert!(!lines.iter().any(|l| l.starts_with("sendmmsg(")), "{who}: sendmmsg:\n{trace}");
        let sendto = lines.iter().filter(|l| l.starts_with("sendto(")).count();
        assert_eq!(sendto, 2, "{who}: two sendto to the ClusterIP:\n{trace}");
    }
    let _ = std::fs::remove_dir_all(musl.parent().unwrap());
}

/// What a batch of lookups did to the node's conntrack.
#[derive(Debug)]
struct Effect {
    /// `conntrack -S` in the node around the batch.
    moved: Moved,
    /// UDP entries towards the ClusterIP's port 53 after the batch (the
    /// table was flushed before it).
    entries: u64,
}

/// Flushes the node's table, runs `batch`, and reads the counters and the
/// entries it left; `batch`'s own result comes back with them.
fn effect<T>(lab: &TestLab, batch: impl FnOnce() -> T) -> (Effect, T) {
    let node = lab.node_ns();
    common::assert_success(&lab.in_node(&["conntrack", "-F"]), "conntrack -F");
    let before = common::conntrack_s(&node);
    let result = batch();
    let moved = Moved::between(before, common::conntrack_s(&node));
    let listed = lab.in_node(&[
        "conntrack",
        "-L",
        "-p",
        "udp",
        "--orig-dst",
        "198.19.0.10",
        "--dport",
        "53",
    ]);
    common::assert_success(&listed, "conntrack -L");
    let entries = common::stdout(&listed).lines().filter(|l| l.starts_with("udp")).count() as u64;
    (Effect { moved, entries }, result)
}

/// `ctdiag probe` of `count` lookups in `mode` through the ClusterIP, one
/// at a time: the queries it lost.
fn probe_batch(lab: &TestLab, mode: &str, count: u64) -> u64 {
    let (client, node) = (lab.client_ns(), lab.node_ns());
    let count = count.to_string();
    let out = common::ctdiag(&[
        "probe",
        "--netns",
        &client,
        "--stats-netns",
        &node,
        "--server",
        "198.19.0.10",
        "--mode",
        mode,
        "--count",
        &count,
        "--rate",
        "0",
        "--concurrency",
        "1",
        "-o",
        "json",
    ]);
    let report: Value = common::json(&out);
    report["lost"].as_u64().unwrap_or_else(|| panic!("{mode}: no lost count: {report:#}"))
}

/// Real glibc, real musl and the matching probe modes, one lookup at a
/// time as a resolver makes them: each lookup is one conntrack entry, and
/// none of them races (the issue author's 2000-lookup runs: clash_resolve
/// +0 for all four), on any kernel: no race, nothing to drop. `--mode
/// threads` is the positive control: its queries do race, so the counter
/// this kernel counts races in (clash_resolve, else insert_failed) is
/// shown to move.
#[test]
fn conntrack_effect_of_the_real_resolvers_matches_the_modes() {
    if !common::require_root()
        || !common::require_tool("musl-gcc", "musl-tools")
        || !common::require_tool("getent", "libc-bin")
    {
        return;
    }
    const N: u64 = 150;
    let lab = TestLab::up(&[]);
    let musl = musl_lookup();
    let (glibc, ()) = effect(&lab, || {
        let script = format!("i=0; while [ $i -lt {N} ]; do getent ahosts {NAME} >/dev/null || exit 1; i=$((i+1)); done");
        common::assert_success(&lab.in_client(&["sh", "-c", &script]), "getent loop");
    });
    let (parallel, parallel_lost) = effect(&lab, || probe_batch(&lab, "parallel", N));
    let (musl_real, ()) = effect(&lab, || {
        let out = lab.in_client(&[&musl.to_string_lossy(), NAME, &N.to_string()]);
        common::assert_success(&out, "musl lookups");
        assert_eq!(common::stdout(&out).trim(), format!("lookups {N} both {N} failed 0"));
    });
    let (musl_mode, musl_mode_lost) = effect(&lab, || probe_batch(&lab, "musl", N));
    assert_eq!((parallel_lost, musl_mode_lost), (0, 0), "parallel, musl modes lost queries");
    // The positive control. A clash needs the two threads' sends on two
    // CPUs at the same instant; on a loaded 2-core machine one of them can
    // be kept off a CPU for a whole batch (this test once saw 150 threaded
    // lookups without a clash while other builds ran). So up to three
    // batches of 1000, stopping at the first race the kernel counts. A
    // batch that races loses nothing on a kernel that resolves its clashes
    // (6.18 here: insert_failed and drop stay 0); one that drops the
    // loser (before 5.6) loses at most what it counted dropped.
    let mut threads = None;
    for _ in 0..3 {
        let (e, lost) = effect(&lab, || probe_batch(&lab, "threads", 1000));
        let drops = e.moved.drops();
        assert!(lost <= drops, "threads: {lost} lost, conntrack dropped {drops}: {e:?}");
        let raced = e.moved.raced() > 0;
        threads = Some(e);
        if raced {
            break;
        }
    }
    let threads = threads.unwrap();
    let _ = std::fs::remove_dir_all(musl.parent().unwrap());
    eprintln!("glibc {glibc:?}\nparallel {parallel:?}\nmusl {musl_real:?}\n--mode musl {musl_mode:?}\nthreads {threads:?}");
    for (who, e) in [
        ("glibc", &glibc),
        ("parallel", &parallel),
        ("musl", &musl_real),
        ("--mode musl", &musl_mode),
    ] {
        let counters = ["insert_failed", "drop", "clash_resolve"].map(|c| e.moved.by(c));
        let zero = if e.moved.has("clash_resolve") { Some(0) } else { None };
        assert_eq!(counters, [Some(0), Some(0), zero], "{who}: {e:?}");
        // One fresh socket per lookup: one entry each (a source port
        // picked twice by chance merges two).
        assert!(e.entries <= N && e.entries >= N * 9 / 10, "{who}: {e:?}");
    }
    assert!(
        threads.moved.raced() > 0,
        "threads mode races ({} moves), in none of 3 x 1000 lookups: {threads:?}",
        threads.moved.race_counter()
    );
}

/// musl's resend schedule, seen on the real resolver and on the musl mode:
/// with both endpoints answering 3 s late and the pod's resolv.conf
/// defaults (timeout 5 s, attempts 2), musl sends its pair at once and
/// again 2.5 s later (`timeout / attempts`), and takes the late answers.
#[test]
fn musl_resends_after_timeout_over_attempts_as_the_musl_mode_does() {
    if !common::require_root()
        || !common::require_tool("strace", "strace")
        || !common::require_tool("musl-gcc", "musl-tools")
    {
        return;
    }
    let mut lab = TestLab::up(&[]);
    for endpoint in ["1", "2"] {
        lab.scenario("slow-endpoint", &["--endpoint", endpoint, "--delay-ms", "3000"]);
    }
    let client = lab.client_ns();
    let musl = musl_lookup();
    let out = common::exec(
        &client,
        &["strace", "-f", "-ttt", "-e", "trace=sendto", &musl.to_string_lossy(), NAME, "1"],
    );
    common::assert_success(&out, "musl lookup under strace");
    let trace = common::stderr(&out);
    let times: Vec<f64> = trace
        .lines()
        .filter(|l| l.contains("sendto(") && l.contains("198.19.0.10"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.parse::<f64>().ok()))
        .collect();
    assert_eq!(times.len(), 4, "the pair, then the pair again:\n{trace}");
    let at = |i: usize| times[i] - times[0];
    // The pair leaves at once (two sendto calls in a row); a resolver
    // that waited for the first answer would send the second query only
    // after 3 s. 1 s leaves room for strace and a loaded machine.
    assert!(at(1) < 1.0, "the pair leaves together:\n{trace}");
    // musl resends at timeout/attempts = 2.5 s by its own clock (whole
    // ms). strace's timestamps are taken when strace gets to run, which a
    // loaded machine can delay for one call and not another, so 0.5 s is
    // allowed either side: still apart from the other schedules one could
    // get wrong (every 1 s with attempts 5, 1.67 s with 3, once at 5 s),
    // and a resend due after the answers come at 3 s does not happen.
    for i in [2, 3] {
        assert!(
            (2.0..3.0).contains(&at(i)),
            "resent at timeout/attempts = 2.5 s: {:.3}\n{trace}",
            at(i)
        );
    }
    let _ = std::fs::remove_dir_all(musl.parent().unwrap());
    let out = common::ctdiag(&[
        "probe",
        "--netns",
        &client,
        "--stats-netns",
        &lab.node_ns(),
        "--mode",
        "musl",
        "--count",
        "2",
        "--timeout",
        "5000",
        "-o",
        "json",
    ]);
    let report = common::json(&out);
    assert_eq!(report["lost"], 0, "{report:#}");
    assert_eq!(
        report["retransmitted"], 4,
        "each query of each lookup once more at 2.5 s: {report:#}"
    );
    // The first copies are answered 3 s after they arrive: 3000 ms is a
    // hard floor. The copies sent again at 2.5 s would be answered at
    // 5.5 s, after the 5 s timeout (and counted lost): any p50 under the
    // timeout is the first copies', however late a loaded machine makes
    // them.
    let p50 = report["latency_ms"]["p50"].as_f64().unwrap();
    assert!((3000.0..5000.0).contains(&p50), "answered by the first copies, 3 s late: {report:#}");
}

/// `options attempts:N` of /etc/resolv.conf (the resolvers' default 2
/// when absent, capped at 5 as glibc caps it: RES_MAXRETRY); read, never
/// queried.
fn resolv_conf_attempts() -> u32 {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    text.lines()
        .filter(|l| l.trim_start().starts_with("options"))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.strip_prefix("attempts:")?.parse::<u32>().ok())
        .next_back()
        .unwrap_or(2)
        .clamp(1, 5)
}

/// A loopback DNS server that ignores the first copy of every query and
/// answers the second: what a lossy path looks like to a resolver that
/// sends again.
struct SecondCopyResponder {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl SecondCopyResponder {
    fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let address = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut seen: HashSet<(SocketAddr, u16)> = HashSet::new();
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::SeqCst) {
                let Ok((len, peer)) = socket.recv_from(&mut buf) else { continue };
                let Ok(query) = Message::from_vec(&buf[..len]) else { continue };
                let id = query.metadata.id;
                if seen.insert((peer, id)) {
                    continue;
                }
                let mut reply = Message::new(id, MessageType::Response, OpCode::Query);
                if let Some(q) = query.queries.first() {
                    reply.add_query(q.clone());
                }
                let _ = socket.send_to(&reply.to_vec().unwrap(), peer);
            }
        });
        SecondCopyResponder { address, stop, handle: Some(handle) }
    }
}

impl Drop for SecondCopyResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// musl mode sends unanswered queries again every timeout/attempts and
/// counts the answers to the second copy; parallel mode, which never
/// sends again (glibc waits its timeout, then moves on), loses them.
#[test]
fn musl_mode_sends_again_and_is_answered() {
    let responder = SecondCopyResponder::start();
    let server = responder.address.to_string();
    let run = |mode: &str| {
        let out = common::ctdiag(&[
            "probe",
            "--server",
            &server,
            "--mode",
            mode,
            "--count",
            "10",
            "--timeout",
            "600",
            "--rate",
            "0",
            "-o",
            "json",
        ]);
        common::json(&out)
    };
    let musl = run("musl");
    if musl["resolver"]["attempts"] == 1 {
        // `attempts:1` here: musl sends once and waits the whole timeout.
        assert_eq!((musl["lost"].as_u64(), musl["retransmitted"].as_u64()), (Some(20), Some(0)));
        return;
    }
    assert_eq!((musl["lookups"].as_u64(), musl["lost"].as_u64()), (Some(10), Some(0)), "{musl:#}");
    assert_eq!(musl["retransmitted"], 20, "each query sent once more: {musl:#}");
    assert_eq!(musl["queries_sent"], 20, "resends are counted apart: {musl:#}");
    // The answer comes after the resend, which musl mode sends at
    // timeout/attempts, attempts from this namespace's resolv.conf (read
    // here, default 2): that is a hard floor. Above it, 250 ms for a loaded
    // machine, and never past the 600 ms timeout (nothing was lost); a
    // resend at the timeout instead (glibc's schedule) would lose them all.
    let attempts = resolv_conf_attempts();
    let resend = 600.0 / attempts as f64;
    let p50 = musl["latency_ms"]["p50"].as_f64().unwrap();
    assert!(
        p50 >= resend && p50 < (resend + 250.0).min(600.0),
        "resend due at {resend} ms (attempts {attempts}): {musl:#}"
    );
    let parallel = run("parallel");
    assert_eq!(parallel["lost"], 20, "{parallel:#}");
    assert_eq!(parallel["retransmitted"], 0, "{parallel:#}");
}
