//! `-o prometheus` of stats, stale, probe, compare and doctor, read by the
//! Prometheus project's own Python text-format parser (prometheus_client,
//! not a regex) and checked against the JSON of the same lab, then linted
//! by `promtool check metrics`.

mod common;

use common::exposition::{parse_and_lint, value, Sample};
use common::TestLab;
use serde_json::Value;

/// Runs ctdiag with `-o prometheus`, parses, lints; returns the samples.
fn scrape(args: &[&str]) -> Vec<Sample> {
    let mut full = args.to_vec();
    full.extend(["-o", "prometheus"]);
    let out = common::ctdiag(&full);
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    let samples = parse_and_lint(&text);
    assert!(!samples.is_empty(), "{text}");
    for s in &samples {
        assert!(s.name.starts_with("ctdiag_"), "{}", s.name);
    }
    samples
}

fn json(args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    common::json(&common::ctdiag(&full))
}

#[test]
fn every_metrics_command_prints_parsable_prometheus_text_that_agrees_with_its_json() {
    if !common::require_root()
        || !common::require_tool("promtool", "prometheus")
        || !common::require_tool("python3", "python3-prometheus-client")
    {
        return;
    }
    let lab = TestLab::up(&[]);
    let (node, client) = (lab.node_ns(), lab.client_ns());

    // stats: per-CPU counters (type counter, `_total`), fill, findings.
    let stats = scrape(&["stats", "--netns", &node]);
    let stats_json = json(&["stats", "--netns", &node]);
    assert_eq!(
        value(&stats, "ctdiag_conntrack_max_entries", &[]),
        stats_json["max_entries"].as_f64().unwrap()
    );
    for cpu in stats_json["cpus"].as_array().unwrap() {
        let n = cpu["cpu"].to_string();
        // A counter that does not move between the two runs.
        let search_restart = cpu["search_restart"].as_f64().unwrap();
        assert_eq!(
            value(&stats, "ctdiag_conntrack_search_restart_total", &[("cpu", &n)]),
            search_restart
        );
    }
    assert!(stats.iter().filter(|s| s.name.ends_with("_total")).all(|s| s.kind == "counter"));
    for finding in stats_json["findings"].as_array().unwrap() {
        let code = finding["code"].as_str().unwrap();
        assert_eq!(value(&stats, "ctdiag_stats_findings", &[("code", code)]), 1.0, "{code}");
    }

    // probe: a fixed count, so both runs make the same lookups.
    let probe_args = ["probe", "--netns", &client, "--stats-netns", &node, "--count", "50"];
    let probe = scrape(&probe_args);
    let probe_json = json(&probe_args);
    let server = probe_json["server"].as_str().unwrap();
    let labels = [("server", server), ("mode", "parallel")];
    assert_eq!(
        value(&probe, "ctdiag_probe_lookups", &labels),
        probe_json["lookups"].as_f64().unwrap()
    );
    assert_eq!(
        value(&probe, "ctdiag_probe_queries_sent", &labels),
        probe_json["queries_sent"].as_f64().unwrap()
    );
    assert_eq!(
        value(&probe, "ctdiag_probe_queries_lost", &labels),
        probe_json["lost"].as_f64().unwrap()
    );
    let p50 = value(&probe, "ctdiag_probe_lookup_latency_seconds", &[("percentile", "50")]);
    assert!(p50 > 0.0 && p50 < 1.0, "latency in seconds: {p50}");

    // stale: the entries the probes left are live, none stale.
    let stale = scrape(&["stale", "--netns", &node]);
    let stale_json = json(&["stale", "--netns", &node]);
    let service =
        [("service", stale_json["service"].as_str().unwrap()), ("cluster_ip", "198.19.0.10")];
    assert_eq!(
        value(&stale, "ctdiag_stale_conntrack_entries", &service),
        stale_json["stale_count"].as_f64().unwrap()
    );
    assert_eq!(value(&stale, "ctdiag_stale_findings", &[("code", "no-stale-entries")]), 1.0);

    // compare: the ClusterIP and both endpoints, a fixed count each.
    let compare_args = ["compare", "--netns", &client, "--stats-netns", &node, "--count", "20"];
    let before = common::conntrack_s(&node);
    let compare = scrape(&compare_args);
    let after = common::conntrack_s(&node);
    let compare_json = json(&compare_args);
    // A healthy lab loses nothing, unless the kernel drops raced queries
    // (the ClusterIP's parallel A/AAAA on a kernel without full clash
    // resolution): then at most what conntrack counted during the run.
    let moved = |c: &str| {
        common::kernel::total(&after, c).saturating_sub(common::kernel::total(&before, c))
    };
    let kernel_drops = (moved("insert_failed") + moved("drop")) as f64;
    for target in compare_json["targets"].as_array().unwrap() {
        let address = target["address"].as_str().unwrap();
        assert_eq!(
            value(&compare, "ctdiag_compare_lookups", &[("target", address)]),
            target["lookups"].as_f64().unwrap()
        );
        let lost = value(&compare, "ctdiag_compare_queries_lost", &[("target", address)]);
        assert!(lost <= kernel_drops, "{address}: {lost} lost, conntrack dropped {kernel_drops}");
    }

    // doctor: one status series per check and status, the verdict.
    let doctor_args =
        ["doctor", "--netns", &node, "--probe-netns", &client, "--pods", &client, "--budget", "5s"];
    let doctor = scrape(&doctor_args);
    let doctor_json = json(&doctor_args);
    for check in doctor_json["checks"].as_array().unwrap() {
        let name = check["check"].as_str().unwrap();
        let status = check["status"].as_str().unwrap();
        assert_eq!(
            value(&doctor, "ctdiag_doctor_check_status", &[("check", name), ("status", status)]),
            1.0
        );
        let others: f64 = doctor
            .iter()
            .filter(|s| s.name == "ctdiag_doctor_check_status" && s.labels["check"] == name)
            .map(|s| s.value)
            .sum();
        assert_eq!(others, 1.0, "exactly one status per check");
    }
    let verdict = doctor_json["verdict"].as_str().unwrap();
    assert_eq!(value(&doctor, "ctdiag_doctor_verdict", &[("status", verdict)]), 1.0);
}
