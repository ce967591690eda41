//! `ctdiag compare` against real labs in both kube-proxy modes: a dead
//! endpoint, a slow endpoint, a healthy lab, several resolver modes, and
//! bad input. The conntrack deltas it reports per target are checked
//! against `conntrack -S` read around the whole run.
//!
//! Network rule: every compare here runs with `--netns` in a lab client
//! namespace, so its probes never leave the lab.

mod common;

use std::process::Output;

use common::kernel::Moved;
use common::report::u;
use common::TestLab;
use serde_json::Value;

/// `ctdiag compare --netns CLIENT --stats-netns NODE ARGS -o json`.
fn compare(lab: &TestLab, args: &[&str]) -> (Output, Value) {
    let (client, node) = (lab.client_ns(), lab.node_ns());
    let mut full = vec!["compare", "--netns", &client, "--stats-netns", &node, "-o", "json"];
    full.extend_from_slice(args);
    let out = common::ctdiag(&full);
    let report = common::json(&out);
    (out, report)
}

/// The target of `role` at `address` in `mode`.
fn target<'a>(report: &'a Value, address: &str, mode: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .and_then(|targets| targets.iter().find(|t| t["address"] == address && t["mode"] == mode))
        .unwrap_or_else(|| panic!("no target {address} in {mode} mode: {report:#}"))
}

fn codes(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| {
                    (
                        f["code"].as_str().unwrap_or("").to_string(),
                        f["severity"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Slowness findings: on a healthy lab only a loaded machine stalling the
/// prober causes them (see `healthy`).
const SLOWNESS: [&str; 3] = ["endpoint-slow", "cluster-ip-path-slow", "slow-answers"];

/// The warnings a healthy lab must never show, load or not.
const LOSS: [&str; 5] = [
    "endpoint-dead",
    "endpoint-lossy",
    "cluster-ip-path-loss",
    "loss-everywhere",
    "compare-no-endpoints",
];

/// `ctdiag ARGS` on a healthy lab, run again (up to three runs in all)
/// while it exits 1 naming only slowness findings in whatever format it
/// prints: see `healthy` for why.
fn healthy_run(args: &[&str]) -> Output {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let out = common::ctdiag(args);
        let text = common::stdout(&out);
        let slow = SLOWNESS.iter().any(|c| text.contains(c));
        let lost = LOSS.iter().any(|c| text.contains(c));
        if attempt < 3 && out.status.code() == Some(1) && slow && !lost {
            eprintln!("run {attempt}: slowness on a healthy lab (load?), again");
            continue;
        }
        return out;
    }
}

/// Every field the Contract of `compare -o json` names, with its type.
fn assert_contract(report: &Value) {
    assert!(report["service"].is_string(), "{report:#}");
    assert!(report["cluster_ip"].is_string(), "{report:#}");
    assert!(report["findings"].is_array(), "{report:#}");
    let targets = report["targets"].as_array().expect("targets");
    assert!(!targets.is_empty());
    for t in targets {
        assert!(t["address"].as_str().is_some_and(|a| a.contains(':')), "{t:#}");
        assert!(matches!(t["role"].as_str(), Some("cluster-ip") | Some("endpoint")), "{t:#}");
        assert!(t["mode"].is_string(), "{t:#}");
        for field in ["lookups", "queries_sent", "lost", "one_lost_lookups"] {
            u(t, field);
        }
        for p in ["p50", "p90", "p99", "max"] {
            let v = &t["latency_ms"][p];
            assert!(v.is_f64() || v.is_null(), "{p} in {t:#}");
        }
    }
}

/// A lab whose last endpoint is dead: that endpoint loses every query, the
/// healthy one none, the ClusterIP some but not all; exit 1; one
/// `endpoint-dead` finding, for the dead endpoint.
fn dead_endpoint(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--proxy-mode", proxy_mode]);
    lab.scenario("dead-endpoint", &["--endpoint", "2"]);
    // --timeout 1000: the healthy endpoint must lose nothing, and the lab
    // answers in under a millisecond, so only a stall of a whole second on
    // a loaded machine could lose one of its answers.
    let (out, report) = compare(
        &lab,
        &[
            "--count",
            "40",
            "--rounds",
            "2",
            "--timeout",
            "1000",
            "--rate",
            "0",
            "--modes",
            "parallel,tcp",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert_contract(&report);
    assert_eq!(report["cluster_ip"], "198.19.0.10:53");
    assert_eq!(report["service"], "kube-system/kube-dns");
    let (healthy, dead) =
        (format!("{}:53", lab.endpoint_ip(1)), format!("{}:53", lab.endpoint_ip(2)));
    for mode in ["parallel", "tcp"] {
        let d = target(&report, &dead, mode);
        let h = target(&report, &healthy, mode);
        let c = target(&report, "198.19.0.10:53", mode);
        assert_eq!(d["role"], "endpoint");
        assert_eq!(c["role"], "cluster-ip");
        assert_eq!((u(d, "lookups"), u(d, "queries_sent")), (40, 80), "{mode}: {d:#}");
        assert_eq!(u(d, "lost"), 80, "{mode}: the dead endpoint answers nothing: {d:#}");
        assert_eq!(u(h, "lost"), 0, "{mode}: the healthy endpoint answers all: {h:#}");
        let through = u(c, "lost");
        // DNAT picks the dead endpoint for about half the lookups; 40
        // lookups all going one way has odds of 2^-39.
        assert!(through > 0 && through < 80, "{mode}: ClusterIP in between: {c:#}");
    }
    let found = codes(&report);
    let dead_findings: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "endpoint-dead")
        .collect();
    assert_eq!(dead_findings.len(), 1, "{found:?}");
    let summary = dead_findings[0]["summary"].as_str().unwrap();
    assert!(summary.contains(&dead) && !summary.contains(&healthy), "{summary}");
    assert_eq!(dead_findings[0]["severity"], "critical");
    assert!(
        !found.iter().any(|(c, _)| c == "endpoint-slow"
            || c == "loss-everywhere"
            || c == "cluster-ip-path-loss"),
        "nothing else is blamed: {found:?}"
    );
    // Both modes lose through the ClusterIP: no option makes it go away.
    let workaround = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "resolver-workaround")
        .unwrap_or_else(|| panic!("{found:?}"));
    assert!(workaround["summary"].as_str().unwrap().starts_with("no resolv.conf option"));
    assert_eq!(report["workarounds"][1]["resolv_conf_option"], "options use-vc");
}

#[test]
fn dead_endpoint_in_iptables_mode() {
    dead_endpoint("iptables");
}

#[test]
fn dead_endpoint_in_nftables_mode() {
    dead_endpoint("nftables");
}

/// The race-drop scenario (the node drops a query sent on a socket whose
/// earlier query is unanswered, as the conntrack insert race does on
/// kernels without clash resolution): only parallel mode loses, and only
/// through the ClusterIP; `--modes` names the options that avoid it; the
/// kernel's own counter of the rule equals the queries compare lost.
fn race_drop(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--proxy-mode", proxy_mode]);
    lab.scenario("race-drop", &[]);
    // --timeout 1000: every target but parallel-through-the-ClusterIP must
    // lose nothing; the endpoints answer 10 ms late, so a whole second is
    // left for a loaded machine.
    let (out, report) = compare(
        &lab,
        &[
            "--count",
            "40",
            "--rounds",
            "2",
            "--timeout",
            "1000",
            "--modes",
            "parallel,sequential,reopen,tcp",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert_contract(&report);
    let through = target(&report, "198.19.0.10:53", "parallel");
    let lost = u(through, "lost");
    // The endpoints answer 10 ms late, so each pair's AAAA meets its A
    // unanswered: every lookup loses one. Both queries leave in one
    // sendmmsg(2) call, so the second reaches the node's rule microseconds
    // after the first; it escapes only if the sender is preempted inside
    // that call for longer than the 10 ms the answer takes, a window of a
    // few microseconds per pair. A tenth of the pairs (4) is allowed for
    // that on a loaded machine; a rule that drops by chance (as before the
    // 10 ms delay, a fifth to three quarters) still fails. At most 40: one
    // query of each of the 40 pairs (the A answers come 10 ms late,
    // against a 1 s timeout).
    assert!((36..=40).contains(&lost), "parallel mode loses through the ClusterIP: {through:#}");
    assert_eq!(u(through, "one_lost_lookups"), lost, "one query of a pair each: {through:#}");
    for t in report["targets"].as_array().unwrap() {
        if !(t["mode"] == "parallel" && t["role"] == "cluster-ip") {
            assert_eq!(u(t, "lost"), 0, "{t:#}");
        }
    }
    // The kernel's view: the rule dropped exactly the queries lost.
    let listing = common::stdout(&common::exec(
        &lab.node_ns(),
        &["nft", "list", "table", "inet", "ctdiag-race"],
    ));
    let dropped: u64 = listing
        .split_once("counter packets ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {listing}"));
    assert_eq!(dropped, lost, "{listing}");
    let found = codes(&report);
    assert!(
        found.contains(&("cluster-ip-path-loss".to_string(), "critical".to_string())),
        "{found:?}"
    );
    // No endpoint is blamed for the loss. (Slowness is not what this
    // scenario is about: with the endpoints' p99 near 10 ms, two lookups
    // stalled 50 ms by a loaded machine can flag one, so it is not
    // asserted here; the healthy tests are where slowness is checked.)
    assert!(
        !found.iter().any(|(c, _)| LOSS.contains(&c.as_str()) && c != "cluster-ip-path-loss"),
        "no endpoint is blamed: {found:?}"
    );
    let workaround = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "resolver-workaround")
        .unwrap_or_else(|| panic!("{found:?}"));
    let summary = workaround["summary"].as_str().unwrap();
    for option in ["options single-request`", "options single-request-reopen`", "options use-vc`"] {
        assert!(summary.contains(option), "{option} in {summary}");
    }
    assert_eq!(workaround["severity"], "info");
}

#[test]
fn race_drop_in_iptables_mode() {
    race_drop("iptables");
}

#[test]
fn race_drop_in_nftables_mode() {
    race_drop("nftables");
}

/// A lab whose last endpoint answers 1000 ms late: only that endpoint is
/// flagged slow, with its factor; exit 1; no loss anywhere.
fn slow_endpoint(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let mut lab = TestLab::up(&["--proxy-mode", proxy_mode]);
    // Margins: every answer of the slow endpoint comes at least 1000 ms
    // late (the responder never answers early), so it is always above
    // --slow-ms 500; the fast endpoint answers in under a millisecond, so
    // only a 500 ms stall on a loaded machine could make one of its
    // lookups slow; and the slow answers have 1000 ms more before the
    // 2000 ms timeout.
    lab.scenario("slow-endpoint", &["--endpoint", "2", "--delay-ms", "1000"]);
    let (out, report) = compare(
        &lab,
        &["--count", "20", "--rounds", "2", "--timeout", "2000", "--slow-ms", "500", "--rate", "0"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert_contract(&report);
    let (fast, slow) = (format!("{}:53", lab.endpoint_ip(1)), format!("{}:53", lab.endpoint_ip(2)));
    for t in report["targets"].as_array().unwrap() {
        assert_eq!(u(t, "lost"), 0, "{t:#}");
    }
    let s = target(&report, &slow, "parallel");
    assert!(s["latency_ms"]["p50"].as_f64().unwrap() >= 1000.0, "{s:#}");
    assert_eq!(u(s, "slow_lookups"), 20, "every lookup of the slow endpoint: {s:#}");
    assert_eq!(u(target(&report, &fast, "parallel"), "slow_lookups"), 0);
    let found = codes(&report);
    assert_eq!(
        found.iter().filter(|(_, sev)| sev != "info").collect::<Vec<_>>(),
        vec![&("endpoint-slow".to_string(), "warning".to_string())],
        "only the slow endpoint is a problem: {found:?}"
    );
    let finding = &report["findings"][0];
    let summary = finding["summary"].as_str().unwrap();
    assert!(summary.contains(&slow) && !summary.contains(&fast), "{summary}");
    assert!(summary.contains("× its peers'"), "names the factor: {summary}");
    assert_eq!(report["verdict"], finding["summary"]);
}

#[test]
fn slow_endpoint_in_iptables_mode() {
    slow_endpoint("iptables");
}

#[test]
fn slow_endpoint_in_nftables_mode() {
    slow_endpoint("nftables");
}

/// A healthy lab: exit 0, no warning, every target answered everything,
/// in every resolver mode asked for; the per-target conntrack deltas add
/// up to what `conntrack -S` saw move over the whole run.
fn healthy(proxy_mode: &str) {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&["--proxy-mode", proxy_mode]);
    let node = lab.node_ns();
    // "No warning" on a healthy lab rests on its answers being fast: the
    // endpoints answer in under a millisecond, and a slowness warning
    // needs at least two lookups of one target 50 ms or more above its
    // peers (or 1 % over the 1 s --slow-ms). A loaded 2-core machine can
    // stall the prober that long now and then, so a run whose only
    // warnings are about slowness is run again, up to three runs; three
    // such runs in a row are not load but a fault. A loss, or any other
    // warning, fails at once.
    let slowness = SLOWNESS;
    let mut attempt = 0;
    let (out, report, before, after) = loop {
        attempt += 1;
        let before = common::conntrack_s(&node);
        let (out, report) = compare(
            &lab,
            &[
                "--count",
                "30",
                "--rounds",
                "3",
                "--rate",
                "0",
                "--modes",
                "threads,sequential,reopen,tcp,musl",
            ],
        );
        let after = common::conntrack_s(&node);
        let warnings: Vec<(String, String)> =
            codes(&report).into_iter().filter(|(_, sev)| sev != "info").collect();
        let only_slowness =
            !warnings.is_empty() && warnings.iter().all(|(c, _)| slowness.contains(&c.as_str()));
        if attempt < 3 && only_slowness {
            eprintln!("run {attempt}: slowness on a healthy lab (load?), again: {warnings:?}");
            continue;
        }
        break (out, report, before, after);
    };
    assert_contract(&report);
    let moved = Moved::between(before, after);
    let modes = ["threads", "sequential", "reopen", "tcp", "musl"];
    assert_eq!(report["modes"], serde_json::json!(modes));
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3 * modes.len());
    // threads and musl send a pair at once from one socket: through the
    // ClusterIP's DNAT that races in conntrack, and a kernel that drops
    // the clash's loser (before 5.6) loses queries there, at most what it
    // counted dropped. A kernel that resolves the clashes (6.18 here:
    // insert_failed and drop stay 0) loses none, anywhere. No other target
    // races on any kernel: one query in flight per socket, or an endpoint
    // probed directly (no DNAT to disagree on).
    let mut lost = 0;
    for t in targets {
        let protocol = if t["mode"] == "tcp" { "tcp" } else { "udp" };
        assert_eq!(t["protocol"], protocol);
        assert_eq!(u(t, "lookups"), 30, "{t:#}");
        let races = t["role"] == "cluster-ip" && (t["mode"] == "threads" || t["mode"] == "musl");
        if !races {
            assert_eq!(u(t, "lost"), 0, "{t:#}");
        }
        lost += u(t, "lost");
    }
    assert!(lost <= moved.drops(), "{lost} lost, conntrack dropped {}: {moved:?}", moved.drops());
    let found = codes(&report);
    if lost == 0 {
        assert_eq!(out.status.code(), Some(0), "{}\n{report:#}", common::stderr(&out));
        assert_eq!(found.first().map(|(c, _)| c.as_str()), Some("compare-clean"), "{found:?}");
        assert!(found.iter().all(|(_, sev)| sev == "info"), "{found:?}");
    } else {
        // The kernel dropped raced queries: loss through the ClusterIP
        // only, no endpoint blamed.
        assert_eq!(out.status.code(), Some(1), "{}\n{report:#}", common::stderr(&out));
        assert!(found.iter().any(|(c, _)| c == "cluster-ip-path-loss"), "{found:?}");
        assert!(
            !found.iter().any(|(c, _)| LOSS.contains(&c.as_str()) && c != "cluster-ip-path-loss"),
            "{found:?}"
        );
    }
    let options: Vec<&Value> = report["workarounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["resolv_conf_option"])
        .collect();
    assert_eq!(
        options,
        vec![
            &Value::Null,
            &serde_json::json!("options single-request"),
            &serde_json::json!("options single-request-reopen"),
            &serde_json::json!("options use-vc"),
            &Value::Null
        ]
    );
    // Nothing else runs in the lab's node namespace: what the targets'
    // batches saw is all that moved; a counter the kernel lacks
    // (clash_resolve before 5.10) is null on every target.
    for counter in ["insert_failed", "drop", "clash_resolve"] {
        match moved.by(counter) {
            Some(kernel) => {
                let summed: u64 = targets.iter().map(|t| u(&t["conntrack_delta"], counter)).sum();
                assert_eq!(summed, kernel, "{counter}: per-target deltas against conntrack -S");
            }
            None => {
                for t in targets {
                    assert!(t["conntrack_delta"][counter].is_null(), "{counter}: {t:#}");
                }
            }
        }
    }
}

#[test]
fn healthy_lab_in_iptables_mode() {
    healthy("iptables");
}

#[test]
fn healthy_lab_in_nftables_mode() {
    healthy("nftables");
}

/// The table and Prometheus forms carry the same run; Prometheus text
/// passes `promtool check metrics` (a real parser and linter).
#[test]
fn table_and_prometheus_output() {
    if !common::require_root() || !common::require_tool("promtool", "prometheus") {
        return;
    }
    let lab = TestLab::up(&[]);
    let (client, node) = (lab.client_ns(), lab.node_ns());
    let base =
        ["compare", "--netns", &client, "--stats-netns", &node, "--count", "10", "--rounds", "2"];
    let mut args = base.to_vec();
    args.extend(["-o", "prometheus"]);
    let out = healthy_run(&args);
    common::assert_success(&out, "compare -o prometheus");
    let text = common::stdout(&out);
    let file = std::env::temp_dir().join(format!("{}-compare.prom", lab.prefix));
    std::fs::write(&file, &text).unwrap();
    let check = common::run("sh", &["-c", &format!("promtool check metrics < {}", file.display())]);
    let _ = std::fs::remove_file(&file);
    assert!(
        check.status.success(),
        "promtool: {}{}\n{text}",
        common::stdout(&check),
        common::stderr(&check)
    );
    for ep in lab.endpoints() {
        let line = format!(
            "ctdiag_compare_lookups{{service=\"kube-system/kube-dns\",target=\"{ep}\",role=\"endpoint\",mode=\"parallel\"}} 10"
        );
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert!(text.contains("ctdiag_compare_findings{service=\"kube-system/kube-dns\",code=\"compare-clean\",severity=\"info\"} 1"), "{text}");
    // How the queries ended: a healthy lab answers all 20 of each target.
    let answered = format!(
        "ctdiag_compare_query_outcomes{{service=\"kube-system/kube-dns\",target=\"{}:53\",role=\"cluster-ip\",mode=\"parallel\",outcome=\"answered\"}} 20",
        lab.cluster_ip()
    );
    assert!(text.lines().any(|l| l == answered), "{answered} missing:\n{text}");
    let out = healthy_run(&base);
    common::assert_success(&out, "compare (table)");
    let table = common::stdout(&out);
    for needle in ["198.19.0.10:53", "cluster-ip", "endpoint", "p99 ms", "[compare-clean]"] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }
}

/// `--cluster-ip/--endpoints` need no rules: the lab's client namespace
/// has none, and the run still compares.
#[test]
fn service_given_on_the_command_line() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let client = lab.client_ns();
    let eps = lab.endpoints().join(",");
    let out = healthy_run(&[
        "compare",
        "--netns",
        &client,
        "--stats-netns",
        &client,
        "--cluster-ip",
        "198.19.0.10",
        "--endpoints",
        &eps,
        "--count",
        "10",
        "--rounds",
        "1",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let report = common::json(&out);
    assert_eq!(report["service_from"], "--cluster-ip/--endpoints");
    assert_eq!(report["endpoints"], serde_json::json!(lab.endpoints()));
    assert_eq!(report["targets"].as_array().map(Vec::len), Some(3));
}

/// Wrong Service, no rules, impossible flags: exit 2, a message that says
/// what exists or what to pass, and no report.
#[test]
fn bad_input_is_a_usage_error() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let (client, node) = (lab.client_ns(), lab.node_ns());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--stats-netns", &node, "--service", "default/nope"], "kube-system/kube-dns:dns"),
        (vec!["--stats-netns", &client], "--cluster-ip"),
        (
            vec!["--stats-netns", &node, "--service", "kube-dns:dns", "--modes", "parallel,tcp"],
            "no TCP port",
        ),
        (vec!["--stats-netns", &node, "--modes", "parallel,bogus"], "bogus"),
        (vec!["--stats-netns", &node, "--rounds", "0"], "--rounds 0"),
        (vec!["--stats-netns", &node, "--count", "0"], "--count 0"),
        (vec!["--stats-netns", &node, "--slow-ms", "5000"], "above --timeout"),
        (vec!["--stats-netns", &node, "--mode", "tcp", "--modes", "musl"], "cannot be used"),
        (vec!["--cluster-ip", "198.19.0.10", "--endpoints", "nope"], "not IP:PORT"),
        (vec!["--stats-netns", "/nonexistent/ns"], "does not exist"),
    ];
    for (args, expected) in cases {
        let mut full = vec!["compare", "--netns", client.as_str()];
        full.extend(args);
        let out = common::ctdiag(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}: {}", common::stderr(&out));
        let err = common::stderr(&out);
        assert!(err.contains(expected), "{full:?}: stderr lacks {expected:?}: {err}");
        assert!(out.stdout.is_empty(), "{full:?} printed a report: {}", common::stdout(&out));
    }
}
