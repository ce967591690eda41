//! Reading ctdiag's JSON reports in tests: a field that must be there,
//! a doctor check by name, the finding codes.

use serde_json::Value;

/// `value[field]` as a u64; panics with the value when it is not one.
pub fn u(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or_else(|| panic!("{field} is not a number in {value:#}"))
}

/// The check named `name` of a doctor report.
pub fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// The codes of a report's `findings`, in order; only the warnings and
/// worse when `at_least_warning`.
pub fn codes(report: &Value, at_least_warning: bool) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !at_least_warning || f["severity"] != "info")
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}
