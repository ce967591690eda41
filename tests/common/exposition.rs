//! Prometheus text read the way its consumers read it: by the reference
//! parser (python3-prometheus-client) and linted by `promtool check
//! metrics`; shared by the tests of `-o prometheus` and of watch's
//! `/metrics`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// The parser: every sample as {family, type, name, labels, value}.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name,
                    "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// One sample as the parser read it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub kind: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// `text` parsed by prometheus_client and linted by promtool (both must
/// accept it); the samples the parser read.
pub fn parse_and_lint(text: &str) -> Vec<Sample> {
    // One file per call: tests of one binary run in parallel.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "exposition-{}-{}.txt",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, text).unwrap();
    let parsed = super::run("/usr/bin/python3", &["-c", PARSE, &file.display().to_string()]);
    super::assert_success(&parsed, &format!("prometheus_client parser on:\n{text}"));
    let lint = super::run("sh", &["-c", &format!("promtool check metrics < {}", file.display())]);
    assert!(
        lint.status.success(),
        "promtool: {}{}\n{text}",
        super::stdout(&lint),
        super::stderr(&lint)
    );
    let _ = std::fs::remove_file(&file);
    let samples: Vec<Value> = serde_json::from_slice(&parsed.stdout).unwrap();
    samples
        .into_iter()
        .map(|s| Sample {
            kind: s["type"].as_str().unwrap().to_string(),
            name: s["name"].as_str().unwrap().to_string(),
            labels: serde_json::from_value(s["labels"].clone()).unwrap(),
            value: s["value"].as_f64().unwrap(),
        })
        .collect()
}

/// The one sample of `name` whose labels include `with`.
pub fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {with:?}: {found:?}\nall: {samples:?}");
    found[0].value
}
