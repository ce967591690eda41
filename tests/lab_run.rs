//! `ctdiag lab run`: each failure yields its finding and no unrelated
//! warning, and the run leaves no namespace, process or file behind, also
//! when interrupted. In a test binary of their own, one at a time: `lab
//! run` times lookups, and a machine busy with other labs would make a
//! healthy endpoint look slow.

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One `lab run` at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn codes(report: &Value, at_least_warning: bool) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !at_least_warning || f["severity"] != "info")
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lab_run_finds_each_failure_and_leaves_nothing_behind() {
    if !common::require_root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let prefix = common::unique_prefix();
    let out = common::ctdiag(&["lab", "run", "--prefix", &prefix, "--budget", "10s", "-o", "json"]);
    let report = common::json(&out);
    assert_eq!(out.status.code(), Some(0), "{report:#}\n{}", common::stderr(&out));
    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s["scenario"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "healthy",
            "parallel-clash",
            "race-drop",
            "dead-endpoint",
            "slow-endpoint",
            "stale-entries",
            "full-table"
        ]
    );
    for scenario in scenarios {
        let name = scenario["scenario"].as_str().unwrap();
        assert_eq!(scenario["passed"], true, "{scenario:#}");
        assert_eq!(scenario["unrelated"], serde_json::json!([]), "{name}");
        let doctor = &scenario["doctor"];
        let found = codes(doctor, false);
        match name {
            "healthy" => {
                assert!(codes(doctor, true).is_empty(), "{doctor:#}");
                assert_eq!(doctor["verdict"], "ok");
            }
            _ => {
                let expected: Vec<String> = scenario["expected"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect();
                assert!(found.iter().any(|c| expected.contains(c)), "{name}: {found:?}");
            }
        }
    }
    assert_eq!(report["torn_down"], true);
    assert_leftovers_gone(&prefix);
}

fn assert_leftovers_gone(prefix: &str) {
    let namespaces: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    let ours: Vec<&String> =
        namespaces.iter().filter(|n| n.starts_with(&format!("{prefix}-"))).collect();
    assert!(ours.is_empty(), "namespaces left: {ours:?}");
    assert!(!Path::new("/run/ctdiag/lab").join(prefix).exists(), "state left");
    for netns in ["node", "client"] {
        assert!(!Path::new("/etc/netns").join(format!("{prefix}-{netns}")).exists());
    }
    // Sticky clients and responders name the lab's state directory or
    // addresses in their command lines.
    assert_eq!(
        common::process_with(&format!("/run/ctdiag/lab/{prefix}/")),
        None,
        "a lab process survived"
    );
}

#[test]
fn lab_run_interrupted_tears_everything_down() {
    if !common::require_root() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let prefix = common::unique_prefix();
    let running = common::spawn(
        common::CTDIAG,
        &[
            "lab",
            "run",
            "--prefix",
            &prefix,
            "--budget",
            "10s",
            "--scenarios",
            "stale-entries,healthy",
        ],
    );
    // Interrupt once the stale-entries scenario is set up (its sticky
    // clients run) and doctor is at work.
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = format!("/run/ctdiag/lab/{prefix}/");
    while common::process_with(&client).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        common::process_with(&client).is_some(),
        "the scenario never started its sticky clients"
    );
    std::thread::sleep(Duration::from_millis(1500));
    running.signal(libc::SIGINT);
    let out = running.wait_bounded(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}{}", common::stdout(&out), common::stderr(&out));
    assert!(common::stdout(&out).contains("interrupted"), "{}", common::stdout(&out));
    assert_leftovers_gone(&prefix);
}
