//! Prometheus text exposition helpers: metric families with HELP and TYPE
//! lines, label values escaped as the format requires.

use std::fmt::Write as _;

/// Escapes a label value: backslash, double quote and newline, as the text
/// format requires. Any other control character (a pod's text) becomes
/// U+FFFD: the format has no escape for it, and it must not reach a
/// terminal that shows the exposition.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if super::terminal::is_hostile(c) => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text: backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A number as the text format writes it (`NaN`, `+Inf`, `-Inf` spelled out).
pub fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// One gauge per finding code and severity: how many findings with it the
/// run had. Why per command (`ctdiag_stats_findings`, ...): node_exporter's
/// textfile collector merges every file of its directory, and one metric
/// name written by two commands' files would collide.
pub fn findings(command: &str, findings: &[crate::findings::Finding]) -> Family {
    counted(
        &format!("ctdiag_{command}_findings"),
        &format!("Findings of the last ctdiag {command} run by code and severity (how many)."),
        findings.iter().map(|f| vec![("code", f.code.as_str()), ("severity", f.severity.as_str())]),
    )
}

/// One gauge per distinct label set: how many times it was given. Why
/// counted: two findings with one code (two dead endpoints) are one series,
/// and a series may appear only once. The series come out sorted by their
/// labels; give every set the same label names in the same order.
pub fn counted<'a>(
    name: &str,
    help: &str,
    label_sets: impl IntoIterator<Item = Vec<(&'a str, &'a str)>>,
) -> Family {
    let mut family = Family::gauge(name, help);
    let mut counts: std::collections::BTreeMap<Vec<(&str, &str)>, u32> = Default::default();
    for labels in label_sets {
        *counts.entry(labels).or_insert(0) += 1;
    }
    for (labels, n) in counts {
        family.sample(&labels, f64::from(n));
    }
    family
}

/// One sample per lookup latency percentile a probe or compare run has
/// (`percentile` label, `100` for the slowest), in seconds, with the
/// caller's labels; percentiles without a figure (no answered lookup) are
/// left out.
pub fn latency_percentiles(
    family: &mut Family,
    labels: &[(&str, &str)],
    latency: &crate::dns::probe::Latency,
) {
    for (percentile, v) in
        [("50", latency.p50), ("90", latency.p90), ("99", latency.p99), ("100", latency.max)]
    {
        if let Some(v) = v {
            let mut with = labels.to_vec();
            with.push(("percentile", percentile));
            family.sample(&with, v / 1000.0);
        }
    }
}

/// One sample per conntrack counter that a probe or compare run saw rise
/// (`counter` label), with the caller's labels; unread counters are left
/// out.
pub fn conntrack_delta(
    family: &mut Family,
    labels: &[(&str, &str)],
    delta: &crate::dns::probe::ConntrackDelta,
) {
    for (name, v) in [
        ("insert_failed", delta.insert_failed),
        ("drop", delta.drop),
        ("early_drop", delta.early_drop),
        ("clash_resolve", delta.clash_resolve),
    ] {
        if let Some(v) = v {
            let mut with = labels.to_vec();
            with.push(("counter", name));
            family.sample(&with, v as f64);
        }
    }
}

/// Writes families in order.
pub fn write_all(families: &[&Family]) -> String {
    let mut out = String::new();
    for family in families {
        family.write(&mut out);
    }
    out
}

/// One metric family: its HELP and TYPE lines, then its samples.
#[derive(Debug)]
pub struct Family {
    name: String,
    help: String,
    kind: &'static str,
    samples: Vec<(Vec<(String, String)>, f64)>,
}

impl Family {
    /// A gauge family.
    pub fn gauge(name: &str, help: &str) -> Self {
        Family { name: name.into(), help: help.into(), kind: "gauge", samples: Vec::new() }
    }

    /// A counter family (values only ever rise; the name ends in `_total`).
    pub fn counter(name: &str, help: &str) -> Self {
        Family { name: name.into(), help: help.into(), kind: "counter", samples: Vec::new() }
    }

    /// Adds a sample with its labels.
    pub fn sample(&mut self, labels: &[(&str, &str)], v: f64) {
        self.samples
            .push((labels.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect(), v));
    }

    /// Appends the family to `out` (nothing when it has no sample).
    pub fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, v) in &self.samples {
            let labels: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
            let labels =
                if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
            let _ = writeln!(out, "{}{labels} {}", self.name, value(*v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        let mut f = Family::gauge("ctdiag_x_seconds", "Line one\\two");
        f.sample(&[("target", "q\"")], 0.5);
        f.sample(&[], f64::NAN);
        let mut out = String::new();
        f.write(&mut out);
        assert_eq!(
            out,
            "# HELP ctdiag_x_seconds Line one\\\\two\n# TYPE ctdiag_x_seconds gauge\nctdiag_x_seconds{target=\"q\\\"\"} 0.5\nctdiag_x_seconds NaN\n"
        );
        let mut empty = String::new();
        Family::gauge("ctdiag_y", "none").write(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn counted_gives_one_series_per_label_set_sorted() {
        // Two dead endpoints are two findings with one code: one series
        // with 2, as the text format allows a series once.
        let sets = [
            vec![("check", "stale"), ("code", "endpoint-unreachable")],
            vec![("check", "compare"), ("code", "endpoint-dead")],
            vec![("check", "stale"), ("code", "endpoint-unreachable")],
        ];
        let mut out = String::new();
        counted("ctdiag_z_findings", "How many.", sets).write(&mut out);
        assert_eq!(
            out,
            "# HELP ctdiag_z_findings How many.\n# TYPE ctdiag_z_findings gauge\n\
             ctdiag_z_findings{check=\"compare\",code=\"endpoint-dead\"} 1\n\
             ctdiag_z_findings{check=\"stale\",code=\"endpoint-unreachable\"} 2\n"
        );
    }
}
