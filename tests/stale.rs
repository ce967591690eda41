//! `ctdiag stale` against real kernels in labs: the entries it finds and
//! deletes are checked against `conntrack -L` and `conntrack -C` before and
//! after, and the clients' next queries against real DNS answers.
//!
//! Network rule: traffic only inside the labs' namespaces (198.18.0.0/15,
//! 2001:db8::/32); scratch namespaces hold only entries made by
//! `conntrack -I`, never traffic.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use common::conntrack::{conntrack_count, conntrack_list, CtLine};
use common::lab_tools;
use common::sticky::{client_port, now_ms, queries_after, stop_client};
use common::{assert_success, ctdiag, exec, json, stderr, stdout, TestLab};
use serde_json::Value;

/// Whether the kernel of `ns` filters a conntrack dump itself (CTA_FILTER,
/// Linux 5.8+, sometimes backported), as the kernel shows it to a peer
/// tool: conntrack-tools (1.4.7 here) sends `-L --orig-dst` with
/// CTA_FILTER, and a kernel that applied it flags its replies
/// NLM_F_DUMP_FILTERED, which strace decodes. `None` when strace is missing
/// or the listing gave no entry to flag (then only the report's own
/// consistency is checked). Needs an entry towards `dst` in `ns`.
fn kernel_filters_dumps(ns: &str, dst: &str) -> Option<bool> {
    if !common::require_tool("strace", "strace") {
        return None;
    }
    let out = exec(
        ns,
        &["strace", "-e", "trace=recvmsg", "conntrack", "-L", "-p", "udp", "--orig-dst", dst],
    );
    assert!(out.status.success(), "strace conntrack -L: {}", stderr(&out));
    let trace = stderr(&out);
    if !trace.contains("NLM_F_MULTI") {
        return None;
    }
    Some(trace.contains("NLM_F_DUMP_FILTERED"))
}

/// The finding codes of a one-Service report, in order, without
/// `kernel-filter-unavailable`: a kernel that ignores CTA_FILTER (before
/// 5.8) adds that one to every scan, so it is checked here against the
/// report's `kernel_filter` (which the main stale test checks against the
/// kernel) and left out of what each test expects.
fn codes_besides_filter(report: &Value) -> Vec<String> {
    let codes: Vec<String> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["code"].as_str().map(str::to_string))
        .collect();
    let unfiltered = report["kernel_filter"] == false;
    assert_eq!(
        codes.iter().any(|c| c == "kernel-filter-unavailable"),
        unfiltered,
        "kernel-filter-unavailable exactly when kernel_filter is false: {report}"
    );
    codes.into_iter().filter(|c| c != "kernel-filter-unavailable").collect()
}

/// Runs `ctdiag stale ARGS` with stdin closed (no terminal).
fn stale(args: &[&str]) -> Output {
    let mut full = vec!["stale"];
    full.extend_from_slice(args);
    ctdiag(&full)
}

/// Raises the UDP timeouts of `ns` so that entries outlive a slow test run
/// on a loaded machine (per-namespace sysctls).
fn long_udp_timeouts(ns: &str) {
    for key in ["nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"] {
        let setting = format!("net.netfilter.{key}=600");
        assert_success(&exec(ns, &["sysctl", "-q", "-w", &setting]), "sysctl");
    }
}

/// The lab of the stale-endpoint scenario: `lab up` in `proxy_mode` and
/// `family`, then `lab scenario stale-endpoint --endpoint 2`: endpoint 2 is
/// removed from the rules and its pod is gone while sticky clients (one
/// fixed-port socket each, a query a second) keep their entries. Returns
/// the lab, the clients whose entries point at the removed endpoint, and
/// the others.
fn stale_lab(proxy_mode: &str, family: &str) -> (TestLab, Vec<Value>, Vec<Value>) {
    let mut lab =
        TestLab::up(&["--endpoints", "2", "--proxy-mode", proxy_mode, "--ip-family", family]);
    long_udp_timeouts(&lab.node_ns());
    let info = lab.scenario("stale-endpoint", &["--endpoint", "2"]);
    let removed = info["servers"][1]["address"].as_str().expect("endpoint 2's address").to_string();
    let clients = info["clients"].as_array().expect("sticky clients").clone();
    let (dead, live): (Vec<Value>, Vec<Value>) =
        clients.into_iter().partition(|c| c["entry_reply_src"] == removed.as_str());
    assert!(dead.len() >= 2 && !live.is_empty(), "{info:#}");
    (lab, dead, live)
}

/// The address of endpoint `n` as `conntrack -L` prints it.
fn endpoint_ip(lab: &TestLab, n: usize) -> String {
    let address: std::net::SocketAddr = lab.info["servers"][n - 1]["address"]
        .as_str()
        .expect("server address")
        .parse()
        .expect("ip:port");
    address.ip().to_string()
}

/// The `entries` of a one-Service report, by client port.
fn entries_by_port(report: &Value) -> BTreeMap<u16, Value> {
    report["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let src: std::net::SocketAddr =
                e["src"].as_str().expect("src").parse().expect("ip:port");
            (src.port(), e.clone())
        })
        .collect()
}

fn sorted_ports(clients: &[Value]) -> Vec<u16> {
    let mut ports: Vec<u16> = clients.iter().map(client_port).collect();
    ports.sort_unstable();
    ports
}

#[test]
fn stale_endpoint_found_and_flushed_iptables() {
    stale_endpoint_found_and_flushed("iptables", "ipv4");
}

#[test]
fn stale_endpoint_found_and_flushed_nftables() {
    stale_endpoint_found_and_flushed("nftables", "ipv4");
}

#[test]
fn stale_endpoint_found_and_flushed_ipv6() {
    stale_endpoint_found_and_flushed("iptables", "ipv6");
}

#[test]
fn stale_endpoint_found_and_flushed_ipv6_nftables() {
    stale_endpoint_found_and_flushed("nftables", "ipv6");
}

fn stale_endpoint_found_and_flushed(proxy_mode: &str, family: &str) {
    if !lab_tools() {
        return;
    }
    let (lab, dead, live) = stale_lab(proxy_mode, family);
    let node = lab.node_ns();
    let cluster_ip = lab.cluster_ip();
    let (live_ip, dead_ip) = (endpoint_ip(&lab, 1), endpoint_ip(&lab, 2));
    let removed_at = now_ms();
    // The blackhole is real: the clients on the removed endpoint get no
    // answers, the others do.
    for c in &dead {
        let after = queries_after(c, removed_at, 2);
        assert!(after.iter().all(|q| q["answered"] == false), "client {}: {after:?}", c["id"]);
    }

    let out = stale(&["--netns", &node, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "stale entries found: exit 1\n{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["service"], "kube-system/kube-dns:dns");
    assert_eq!(report["cluster_ip"], cluster_ip.as_str());
    assert_eq!(report["port"], 53);
    assert_eq!(report["endpoints"].as_array().map(Vec::len), Some(1));
    // CTA_FILTER is 5.8+ (and backported here and there): what the report
    // says must be what the kernel shows a peer tool.
    let filters = kernel_filters_dumps(&node, &cluster_ip);
    if let Some(filters) = filters {
        assert_eq!(report["kernel_filter"], filters, "the kernel filters dumps: {filters}");
    }
    assert_eq!(report["proxy_mode"], proxy_mode);

    // Exactly the blackholed clients' entries, as conntrack -L lists them.
    let listed = conntrack_list(&node, &["--orig-dst", &cluster_ip]);
    let expected: BTreeMap<u16, &CtLine> =
        listed.iter().filter(|e| e.reply_src == dead_ip).map(|e| (e.sport, e)).collect();
    let dead_ports = sorted_ports(&dead);
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        dead_ports,
        "conntrack -L: {listed:?}"
    );
    let found = entries_by_port(&report);
    assert_eq!(found.keys().copied().collect::<Vec<_>>(), dead_ports, "only stale entries listed");
    for (port, entry) in &found {
        let line = expected[port];
        assert_eq!(entry["stale"], true);
        assert_eq!(entry["reason"], "dead-endpoint");
        let reply: std::net::SocketAddr = entry["reply_src"].as_str().unwrap().parse().unwrap();
        assert_eq!(reply.ip().to_string(), dead_ip);
        assert_eq!(entry["id"].as_u64(), Some(line.id), "the id conntrack -L -o id prints");
        assert_eq!(entry["zone"], 0);
        assert_eq!(entry["client"]["netns"], lab.client_ns().as_str());
        assert_eq!(entry["client"]["hostname"], lab.info["client_pod"]);
    }
    assert_eq!(report["stale_count"].as_u64(), Some(dead.len() as u64));
    let live_listed = listed.iter().filter(|e| e.reply_src == live_ip).count();
    assert_eq!(report["live_count"].as_u64(), Some(live_listed as u64));
    assert!(live_listed >= live.len());
    assert_eq!(codes_besides_filter(&report), ["stale-entries"]);
    let finding = &report["findings"][0];
    assert_eq!(finding["code"], "stale-entries", "the Service's findings come first");
    assert!(finding["remedy"]
        .as_str()
        .unwrap()
        .contains(&format!("ctdiag stale --netns {node} --flush")));
    assert!(finding["summary"]
        .as_str()
        .unwrap()
        .contains(lab.info["client_pod"].as_str().unwrap()));

    // --all: the services form, the same entries.
    let all = json(&stale(&["--netns", &node, "--all", "-o", "json"]));
    let services = all["services"].as_array().expect("services form");
    assert_eq!(services.len(), 1, "one UDP Service port in the lab: {all}");
    assert_eq!(all["stale_count"], report["stale_count"]);
    assert_eq!(services[0]["service"], "kube-system/kube-dns:dns");

    // The table says the same and exits the same.
    let table = stale(&["--netns", &node]);
    assert_eq!(table.status.code(), Some(1));
    assert!(stdout(&table).contains("dead-endpoint") && stdout(&table).contains("[stale-entries]"));

    // The flush: exactly those entries go, and each blackholed client's next
    // query from the same port is answered.
    let out = stale(&["--netns", &node, "--flush", "--yes", "-o", "json"]);
    let flushed_at = now_ms();
    assert_eq!(out.status.code(), Some(0), "all flushed: exit 0\n{}", stderr(&out));
    let flushed = json(&out);
    assert_eq!(flushed["flush"]["deleted"].as_u64(), Some(dead.len() as u64), "{flushed}");
    assert_eq!(flushed["flush"]["already_gone"], 0);
    assert_eq!(flushed["flush"]["failed"], 0);
    assert_eq!(flushed["flush"]["remaining"], 0);
    let after = conntrack_list(&node, &["--orig-dst", &cluster_ip]);
    assert!(after.iter().all(|e| e.reply_src == live_ip), "{after:?}");
    let survivors: BTreeSet<u64> = after.iter().map(|e| e.id).collect();
    for line in listed.iter().filter(|e| e.reply_src == live_ip) {
        assert!(survivors.contains(&line.id), "live entry {line:?} was deleted");
    }
    for c in &dead {
        let next = queries_after(c, flushed_at, 1);
        assert_eq!(next[0]["answered"], true, "client {} after the flush: {next:?}", c["id"]);
    }
    // A second flush has nothing to delete.
    let again = stale(&["--netns", &node, "--flush", "--yes", "-o", "json"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let again = json(&again);
    assert_eq!(again["flush"]["deleted"], 0);
    assert_eq!(again["stale_count"], 0);
}

#[test]
fn ten_thousand_live_entries_are_left_alone_iptables() {
    ten_thousand_live_entries_are_left_alone("iptables");
}

#[test]
fn ten_thousand_live_entries_are_left_alone_nftables() {
    ten_thousand_live_entries_are_left_alone("nftables");
}

fn ten_thousand_live_entries_are_left_alone(proxy_mode: &str) {
    if !lab_tools() {
        return;
    }
    let (lab, dead, _) = stale_lab(proxy_mode, "ipv4");
    let node = lab.node_ns();
    // The blackholed clients stop (their entries stay): after the flush
    // nothing recreates entries, so the counts are exact.
    for c in &dead {
        stop_client(c);
    }
    let fill = ctdiag(&[
        "lab",
        "fill",
        "--prefix",
        &lab.prefix,
        "--flows",
        "10000",
        "--to",
        "cluster-ip",
        "--timeout",
        "600",
        "-o",
        "json",
    ]);
    assert_success(&fill, "lab fill");
    assert_eq!(json(&fill)["created"], 10000);
    let live_before: BTreeSet<(String, u16, u64)> =
        conntrack_list(&node, &["--orig-dst", "198.19.0.10"])
            .into_iter()
            .filter(|e| e.reply_src == "198.18.2.2")
            .map(|e| (e.src, e.sport, e.id))
            .collect();
    assert!(live_before.len() >= 10_000, "{} live entries", live_before.len());
    let count_before = conntrack_count(&node);

    let scan = json(&stale(&["--netns", &node, "-o", "json"]));
    assert_eq!(scan["stale_count"].as_u64(), Some(dead.len() as u64));
    assert_eq!(scan["live_count"].as_u64(), Some(live_before.len() as u64));
    assert_eq!(scan["entries"].as_array().unwrap().len(), dead.len(), "live entries not listed");

    let out = stale(&["--netns", &node, "--flush", "--yes", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["flush"]["deleted"].as_u64(), Some(dead.len() as u64));
    assert_eq!(conntrack_count(&node), count_before - dead.len() as u64);
    let live_after: BTreeSet<(String, u16, u64)> =
        conntrack_list(&node, &["--orig-dst", "198.19.0.10"])
            .into_iter()
            .filter(|e| e.reply_src == "198.18.2.2")
            .map(|e| (e.src, e.sport, e.id))
            .collect();
    assert_eq!(live_after, live_before, "every live entry kept, with its id");
    // --all-entries lists the live ones too.
    let everything = json(&stale(&["--netns", &node, "--all-entries", "-o", "json"]));
    assert_eq!(everything["entries"].as_array().unwrap().len(), live_before.len());
}

#[test]
fn gone_and_recreated_entries_between_scan_and_flush_iptables() {
    gone_and_recreated_entries_between_scan_and_flush("iptables");
}

#[test]
fn gone_and_recreated_entries_between_scan_and_flush_nftables() {
    gone_and_recreated_entries_between_scan_and_flush("nftables");
}

/// The CPUs this test process may run on (its affinity mask, which the
/// commands it starts inherit), for `taskset`.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t, filled by sched_getaffinity(2) for this
    // thread; CPU_ISSET only reads it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let got =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(got, 0, "sched_getaffinity: {}", std::io::Error::last_os_error());
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    assert!(!cpus.is_empty(), "this process may run on no CPU");
    cpus
}

/// `sh -c SCRIPT` in `ns`, pinned to `cpu` (so every `conntrack` it runs
/// sends its request from that CPU); panics unless it exits 0.
fn pinned(ns: &str, cpu: usize, script: &str) {
    let cpu = cpu.to_string();
    assert_success(&exec(ns, &["taskset", "-c", &cpu, "sh", "-c", script]), script);
}

/// The `conntrack -I` command line of a UDP entry CLIENT:PORT ->
/// 198.19.0.10:53 whose reply comes from REPLY:53.
fn insert_command(client: &str, port: u16, reply: &str) -> String {
    format!(
        "conntrack -I -p udp -s {client} -d 198.19.0.10 --sport {port} --dport 53 \
         -r {reply} -q {client} --reply-port-src 53 --reply-port-dst {port} -t 300"
    )
}

/// Held while a test allocates conntrack entries on a pinned CPU.
static PINNED_CPU: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Scans (each with its own pair of stale entries) until the replacement
/// gets the old id.
const ATTEMPTS: u16 = 20;
/// Replacements within one scan: the old object is reused at the first one
/// or, once another allocation took it, hardly ever (measured with 20 per
/// scan: every success came at the first; with 2, one of 38 at the second).
const REPLACEMENTS: u32 = 2;

fn gone_and_recreated_entries_between_scan_and_flush(proxy_mode: &str) {
    if !lab_tools() {
        return;
    }
    let (lab, dead, _) = stale_lab(proxy_mode, "ipv4");
    let node = lab.node_ns();
    let (live_ip, dead_ip) = (endpoint_ip(&lab, 1), endpoint_ip(&lab, 2));
    // No client may touch the entries changed by hand below.
    for c in &dead {
        stop_client(c);
    }
    let source: std::net::SocketAddr =
        dead[0]["source"].as_str().expect("source").parse().expect("ip:port");
    let client = source.ip().to_string();
    let config = ctdiag::stale::StaleConfig {
        selector: ctdiag::service::select::Selector::Spec(
            ctdiag::service::select::ServiceSpec::kube_dns(),
        ),
        netns: Some(node.clone()),
        flush: true,
        all_entries: false,
        command: format!("ctdiag stale --netns {node}"),
        advice: ctdiag::commands::args::SELECT_ADVICE,
        from: None,
    };
    // Between the scan and the deletes (the prompt's moment): one stale
    // entry is deleted by someone else, one is replaced by a new entry with
    // the same original tuple towards the live endpoint. The hardest case
    // is a replacement with the old CTA_ID, and it is forced, not hoped
    // for: since 5.3 the id hashes the nf_conn's address and its original
    // tuple, and SLUB hands a CPU the object that CPU freed last (its
    // per-CPU freelist is LIFO). So the stale entry is made with
    // `conntrack -I` pinned to one CPU just before the scan, and the
    // replacement deletes it and inserts the new one from that same CPU;
    // the new entry then sits at the old address, with the old id.
    // What can still defeat it: another nf_conn allocated on that CPU (in
    // any namespace: the slab cache is global) between the delete and the
    // insert, or that CPU moving on to another slab page between the first
    // insert and the delete. Hence bounded retries (ATTEMPTS scans, each
    // with a fresh pair of entries, on alternating CPUs), and a failure if
    // none got the old id. Measured on this 2-core machine, 10 runs of both
    // variants each time: with two CPU hogs beside (`sh -c 'while :; do :;
    // done'` twice), 20 of 20 got the old id at the first replacement of
    // the first attempt; with the hogs and four processes inserting
    // conntrack entries without pause (two pinned to each CPU, load 15),
    // 19 of 20 got it within 20 attempts (most within 4), one did not: an
    // allocation rate no test run of this project comes near.
    let cpus = allowed_cpus();
    let mut outcomes = Vec::new();
    // The iptables and nftables variants run at the same time in this
    // binary: they must not allocate on the pinned CPU for each other.
    let _one_at_a_time = PINNED_CPU.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for attempt in 0..ATTEMPTS {
        // Another CPU each attempt: one CPU busy allocating entries for
        // someone else does not defeat every attempt.
        let cpu = cpus[usize::from(attempt) % cpus.len()];
        // Ports below the ephemeral range (32768-60999), so no client of
        // the lab has them; checked anyway.
        let (gone, recreated) = (20_000 + 2 * attempt, 20_001 + 2 * attempt);
        for port in [gone, recreated] {
            let sport = port.to_string();
            assert_eq!(conntrack_list(&node, &["--orig-port-src", &sport]), Vec::new());
            pinned(&node, cpu, &insert_command(&client, port, &dead_ip));
        }
        let listed = conntrack_list(&node, &["--orig-dst", "198.19.0.10"]);
        let stale_before = listed.iter().filter(|e| e.reply_src == dead_ip).count() as u64;
        let old_id = listed
            .iter()
            .find(|e| e.sport == recreated)
            .map(|e| e.id)
            .expect("the entry just inserted is listed");
        let mut asked = 0;
        let mut replacements = 0;
        let mut same_id = false;
        let report = ctdiag::stale::run(&config, &mut |report| {
            asked += 1;
            assert_eq!(report.stale_count, stale_before, "the scan found what conntrack -L lists");
            let sport = gone.to_string();
            assert_success(
                &exec(&node, &["conntrack", "-D", "-p", "udp", "--orig-port-src", &sport]),
                "conntrack -D",
            );
            // Delete (the old entry, or the previous replacement when its id
            // came out different) and insert in one pinned shell, so that
            // nothing of this test runs in between.
            let replace = format!(
                "conntrack -D -p udp --orig-port-src {recreated} >/dev/null 2>&1; exec {}",
                insert_command(&client, recreated, &live_ip)
            );
            for _ in 0..REPLACEMENTS {
                replacements += 1;
                pinned(&node, cpu, &replace);
                let now = conntrack_list(&node, &["--orig-port-src", &recreated.to_string()]);
                if now.first().map(|e| e.id) == Some(old_id) {
                    same_id = true;
                    break;
                }
            }
            true
        })
        .expect("the scan and flush run");
        assert_eq!(asked, 1);
        // Every attempt, same id or not: the gone entry counts as already
        // gone, the replacement is not deleted (ENOENT: the reply tuple of
        // the request names the dead endpoint), everything else stale is.
        let flush = report.flush.expect("a flush report");
        assert_eq!(flush.already_gone, 2, "attempt {attempt}: {flush:?}");
        assert_eq!(flush.deleted, stale_before - 2, "attempt {attempt}: {flush:?}");
        assert_eq!((flush.failed, flush.remaining), (0, Some(0)), "attempt {attempt}: {flush:?}");
        let kept = conntrack_list(&node, &["--orig-port-src", &recreated.to_string()]);
        assert_eq!(kept.len(), 1, "attempt {attempt}: the replacement is kept: {kept:?}");
        assert_eq!(kept[0].reply_src, live_ip, "attempt {attempt}: {kept:?}");
        if same_id {
            assert_eq!(kept[0].id, old_id, "attempt {attempt}: kept with the old id");
        }
        outcomes.push((attempt, cpu, replacements, same_id));
        eprintln!(
            "attempt {attempt}: {replacements} replacement(s) on CPU {cpu}, old id reused: {same_id}"
        );
        if same_id {
            break;
        }
    }
    assert!(
        outcomes.iter().any(|o| o.3),
        "the replacement never got the stale entry's id, so the hardest case was not tested: \
         (attempt, CPU, replacements, same id) {outcomes:?}"
    );
}

#[test]
fn a_flush_without_a_terminal_or_yes_deletes_nothing() {
    if !lab_tools() {
        return;
    }
    let (lab, dead, _) = stale_lab("iptables", "ipv4");
    let node = lab.node_ns();
    let before = conntrack_list(&node, &["--orig-dst", "198.19.0.10"]);
    let out = stale(&["--netns", &node, "--flush"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--yes") && stderr(&out).contains("nothing was deleted"));
    assert!(out.stdout.is_empty());
    assert_eq!(conntrack_list(&node, &["--orig-dst", "198.19.0.10"]), before);
    assert_eq!(before.iter().filter(|e| e.reply_src == "198.18.3.2").count(), dead.len());
}

/// A namespace of the test's own, with no rules and nothing connected:
/// entries are made with `conntrack -I`. An interface gives it routes
/// to the endpoints' subnets (198.18.2.0/24, 2001:db8:2::/64), so that
/// they count as reachable; no packet is ever sent.
struct Scratch(String);

impl Scratch {
    fn new() -> Scratch {
        let name = format!("{}-scratch", common::unique_prefix());
        let scratch = Scratch(name.clone());
        assert_success(&common::run("ip", &["netns", "add", &name]), "ip netns add");
        for args in [
            // Why a veth pair with both ends here: the dummy driver is not
            // built on every kernel (this one has none).
            &["link", "add", "ep", "type", "veth", "peer", "name", "ep-peer"][..],
            &["link", "set", "ep", "up"],
            &["link", "set", "ep-peer", "up"],
            &["addr", "add", "198.18.2.1/24", "dev", "ep"],
            &["addr", "add", "2001:db8:2::1/64", "dev", "ep", "nodad"],
        ] {
            let mut full = vec!["-n", name.as_str()];
            full.extend_from_slice(args);
            assert_success(&common::run("ip", &full), "ip in the scratch namespace");
        }
        scratch
    }

    /// `conntrack -I -p udp` of an entry ORIG_SRC:SPORT -> DST:DPORT whose
    /// reply comes from REPLY_SRC:RPORT.
    fn insert(&self, src: &str, sport: u16, dst: &str, reply: &str, extra: &[&str]) {
        let (sport, rport) = (sport.to_string(), "53".to_string());
        let mut args = vec![
            "conntrack",
            "-I",
            "-p",
            "udp",
            "-s",
            src,
            "-d",
            dst,
            "--sport",
            &sport,
            "--dport",
            "53",
            "-r",
            reply,
            "-q",
            src,
            "--reply-port-src",
            &rport,
            "--reply-port-dst",
            &sport,
            "-t",
            "300",
        ];
        args.extend_from_slice(extra);
        assert_success(&exec(&self.0, &args), "conntrack -I");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn cluster_ip_and_endpoints_without_rules_both_families() {
    if !common::require_root() || !common::require_tool("conntrack", "conntrack") {
        return;
    }
    let scratch = Scratch::new();
    // IPv6: one entry to the live endpoint, two to a dead one (one in zone
    // 7), one never translated, and one to another ClusterIP on the same
    // port (the address the kernel's IPv6 filter gets wrong).
    scratch.insert("2001:db8:1::2", 40001, "2001:db8::a", "2001:db8:2::2", &[]);
    scratch.insert("2001:db8:1::2", 40002, "2001:db8::a", "2001:db8:3::2", &[]);
    scratch.insert("2001:db8:1::3", 40003, "2001:db8::a", "2001:db8:3::2", &["-w", "7"]);
    scratch.insert("2001:db8:1::2", 40004, "2001:db8::a", "2001:db8::a", &[]);
    scratch.insert("2001:db8:1::2", 40005, "2001:db8::b", "2001:db8:3::2", &[]);
    // IPv4 in the same table, for a Service on another ClusterIP.
    scratch.insert("198.18.1.2", 40006, "198.19.0.10", "198.18.3.2", &[]);

    let v6 = |extra: &[&str]| {
        let mut args = vec![
            "--netns",
            scratch.0.as_str(),
            "--cluster-ip",
            "[2001:db8::a]:53",
            "--endpoints",
            "[2001:db8:2::2]:53",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        stale(&args)
    };
    let out = v6(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["service"], "[2001:db8::a]:53");
    assert_eq!(report["proxy_mode"], "manual");
    let entries = entries_by_port(&report);
    assert_eq!(entries.keys().copied().collect::<Vec<_>>(), [40002, 40003, 40004]);
    assert_eq!(entries[&40002]["reason"], "dead-endpoint");
    assert_eq!(entries[&40002]["reply_src"], "[2001:db8:3::2]:53");
    assert_eq!(entries[&40003]["zone"], 7);
    assert_eq!(entries[&40004]["reason"], "never-translated");
    assert_eq!(report["live_count"], 1);
    assert_eq!(report["stale_count"], 3);

    let out = v6(&["--flush", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let flushed = json(&out);
    assert_eq!(flushed["flush"]["deleted"], 3);
    assert_eq!(flushed["flush"]["remaining"], 0);
    let left: BTreeSet<u16> = conntrack_list(&scratch.0, &[]).iter().map(|e| e.sport).collect();
    assert_eq!(left, BTreeSet::from([40001, 40005, 40006]), "only the stale entries went");

    // IPv4, by --cluster-ip with a bare endpoint IP (the Service port).
    let out = stale(&[
        "--netns",
        &scratch.0,
        "--cluster-ip",
        "198.19.0.10",
        "--endpoints",
        "198.18.2.2",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["stale_count"], 1);
    assert_eq!(report["entries"][0]["src"], "198.18.1.2:40006");
    // Prometheus: the same numbers, labels as the contract says.
    let prom = stdout(&stale(&[
        "--netns",
        &scratch.0,
        "--cluster-ip",
        "198.19.0.10",
        "--endpoints",
        "198.18.2.2",
        "-o",
        "prometheus",
    ]));
    assert!(
        prom.contains(
            "ctdiag_stale_conntrack_entries{service=\"198.19.0.10:53\",cluster_ip=\"198.19.0.10\",port=\"53\"} 1"
        ),
        "{prom}"
    );
    assert!(prom.contains("# TYPE ctdiag_live_conntrack_entries gauge"), "{prom}");
}

#[test]
fn an_unreachable_endpoint_in_the_rules_is_named_iptables() {
    an_unreachable_endpoint_in_the_rules_is_named("iptables");
}

#[test]
fn an_unreachable_endpoint_in_the_rules_is_named_nftables() {
    an_unreachable_endpoint_in_the_rules_is_named("nftables");
}

fn an_unreachable_endpoint_in_the_rules_is_named(proxy_mode: &str) {
    if !common::require_root() || !common::require_tool("dig", "bind9-dnsutils") {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2", "--proxy-mode", proxy_mode]);
    lab.scenario("dead-endpoint", &["--endpoint", "2"]);
    let out = stale(&["--netns", &lab.node_ns(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["stale_count"], 0);
    let unreachable = report["unreachable_endpoints"].as_array().unwrap();
    assert_eq!(unreachable.len(), 1, "{report}");
    assert_eq!(unreachable[0]["endpoint"], "198.18.3.2");
    assert!(unreachable[0]["why"].as_str().unwrap().contains("blackhole"), "{report}");
    assert_eq!(codes_besides_filter(&report), ["endpoint-unreachable"]);
}

#[test]
fn without_cap_net_admin_the_error_names_it() {
    if !common::require_root() || !common::require_tool("setpriv", "util-linux") {
        return;
    }
    let scratch = Scratch::new();
    let out = exec(
        &scratch.0,
        &[
            "setpriv",
            "--bounding-set",
            "-net_admin",
            "--inh-caps",
            "-net_admin",
            common::CTDIAG,
            "stale",
            "--cluster-ip",
            "198.19.0.10",
            "--endpoints",
            "198.18.2.2",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("CAP_NET_ADMIN"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_selections_say_what_exists_and_what_to_pass() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "1"]);
    let out = stale(&["--netns", &lab.node_ns(), "--service", "default/nope"]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains("default/nope"), "{text}");
    assert!(text.contains("kube-system/kube-dns:dns (udp 53)"), "lists the UDP Services: {text}");
    assert!(!text.contains("dns-tcp"), "only UDP Services: {text}");

    let scratch = Scratch::new();
    let out = stale(&["--netns", &scratch.0]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    for needle in ["iptables mode", "nftables mode", "--cluster-ip", "--endpoints"] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let out = stale(&["--all", "--service", "kube-dns"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn never_translated_entries_are_found_and_flushed_iptables() {
    never_translated_entries_are_found_and_flushed("iptables");
}

#[test]
fn never_translated_entries_are_found_and_flushed_nftables() {
    never_translated_entries_are_found_and_flushed("nftables");
}

/// `lab scenario never-translated`: kube-dns had no endpoints (and no
/// REJECT) while sticky clients retried; the endpoints are back, and the
/// clients' untranslated entries keep them blackholed until the flush.
fn never_translated_entries_are_found_and_flushed(proxy_mode: &str) {
    if !lab_tools() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2", "--proxy-mode", proxy_mode]);
    let node = lab.node_ns();
    long_udp_timeouts(&node);
    let info = lab.scenario("never-translated", &[]);
    let clients = info["clients"].as_array().expect("sticky clients").clone();
    assert!(clients.len() >= 2, "{info:#}");
    let out = stale(&["--netns", &node, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    let entries = entries_by_port(&report);
    assert_eq!(entries.keys().copied().collect::<Vec<_>>(), sorted_ports(&clients));
    for entry in entries.values() {
        assert_eq!(entry["reason"], "never-translated");
        assert_eq!(entry["reply_src"], "198.19.0.10:53");
        assert_eq!(entry["state"], "UNREPLIED");
    }
    let listed =
        conntrack_list(&node, &["--orig-dst", "198.19.0.10", "--reply-src", "198.19.0.10"]);
    let mut ports: Vec<u16> = listed.iter().map(|e| e.sport).collect();
    ports.sort_unstable();
    assert_eq!(ports, sorted_ports(&clients), "cross-check with conntrack -L: {listed:?}");
    assert_eq!(codes_besides_filter(&report), ["never-translated-entries"]);

    let out = stale(&["--netns", &node, "--flush", "--yes", "-o", "json"]);
    let flushed_at = now_ms();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["flush"]["deleted"].as_u64(), Some(clients.len() as u64));
    for c in &clients {
        let next = queries_after(c, flushed_at, 1);
        assert_eq!(next[0]["answered"], true, "client {} after the flush: {next:?}", c["id"]);
    }
}

#[test]
fn a_dual_stack_service_is_one_report_per_cluster_ip() {
    if !lab_tools() {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2", "--ip-family", "dual"]);
    let node = lab.node_ns();
    long_udp_timeouts(&node);
    let info = lab.scenario("stale-endpoint", &["--endpoint", "2"]);
    let dead: Vec<&Value> = info["clients"]
        .as_array()
        .expect("sticky clients")
        .iter()
        .filter(|c| c["entry_reply_src"].as_str().is_some_and(|r| r.contains("3.2")))
        .collect();
    let out = stale(&["--netns", &node, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    let services = report["services"].as_array().expect("the services form");
    let ips: BTreeSet<&str> = services.iter().filter_map(|s| s["cluster_ip"].as_str()).collect();
    assert_eq!(ips, BTreeSet::from(["198.19.0.10", "2001:db8::a"]), "{report}");
    assert_eq!(report["stale_count"].as_u64(), Some(dead.len() as u64), "{report}");
    let per_service: u64 = services.iter().map(|s| s["stale_count"].as_u64().unwrap()).sum();
    assert_eq!(report["stale_count"].as_u64(), Some(per_service));
    let out = stale(&["--netns", &node, "--flush", "--yes", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["flush"]["deleted"].as_u64(), Some(dead.len() as u64));
}
