//! [`Totals`] as Prometheus text exposition format (version 0.0.4): one
//! family per counter and scope (the node, each endpoint, each pod), with
//! HELP and TYPE lines, label values escaped.
//!
//! Scopes are separate families (`ctdiag_watch_queries_total`,
//! `ctdiag_watch_endpoint_queries_total`, `ctdiag_watch_pod_queries_total`)
//! rather than one family with a scope label, so that `sum()` over a family
//! never counts a query twice.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::watch::model::{Cause, PodName, SeriesTotals, Totals, LATENCY_BUCKETS_S};

/// Every metric name starts with this.
pub const PREFIX: &str = "ctdiag_watch_";

/// The `pod` label of the series the pods beyond the top N are folded
/// into. Its `netns` label is empty, which no pod's is, so a pod whose
/// hostname is this text still has a series of its own.
pub const OTHER_PODS: &str = "(other)";

/// The `pod` label of clients that are not a known pod (empty `netns`).
pub const NOT_A_POD: &str = "(not a pod)";

/// One series of a scope: its labels and its counters.
type Series<'a> = (Vec<(&'static str, Cow<'a, str>)>, Cow<'a, SeriesTotals>);

/// `totals` as Prometheus text, keeping the `top_pods` pods with the most
/// unanswered queries (then the most queries) and folding the rest into
/// one series labelled [`OTHER_PODS`].
pub fn render(totals: &Totals, top_pods: usize) -> String {
    let mut out = String::with_capacity(4096);
    let node: Vec<Series> = vec![(Vec::new(), Cow::Borrowed(&totals.all))];
    write_scope(&mut out, "", "", &node);
    let endpoints: Vec<Series> = totals
        .by_endpoint
        .iter()
        .map(|(addr, series)| {
            (vec![("endpoint", Cow::Owned(addr.to_string()))], Cow::Borrowed(series))
        })
        .collect();
    write_scope(&mut out, "endpoint_", ", per endpoint (the DNAT target)", &endpoints);
    let (pods, folded) = pod_series(totals, top_pods);
    write_scope(&mut out, "pod_", ", per client pod (top N, the rest as pod=\"(other)\")", &pods);
    family_header(
        &mut out,
        "pods_folded",
        "gauge",
        "Pods whose series are folded into pod=\"(other)\" (beyond the top N).",
    );
    let _ = writeln!(out, "{PREFIX}pods_folded {folded}");
    family_header(
        &mut out,
        "capture_drops_total",
        "counter",
        "Packets the capture ring dropped: the other counts are a floor when this rises.",
    );
    let _ = writeln!(out, "{PREFIX}capture_drops_total {}", totals.capture_drops);
    out
}

/// The pods' series, most unanswered first (then most queries, then by
/// name), the first `top` as they are and the rest merged into one; and
/// how many were merged.
fn pod_series(totals: &Totals, top: usize) -> (Vec<Series<'_>>, usize) {
    let mut ranked: Vec<(&Option<PodName>, &SeriesTotals)> = totals.by_pod.iter().collect();
    ranked.sort_by(|(ka, a), (kb, b)| {
        (unanswered(b), b.queries).cmp(&(unanswered(a), a.queries)).then_with(|| ka.cmp(kb))
    });
    let rest = ranked.split_off(top.min(ranked.len()));
    let mut series: Vec<Series> = ranked
        .into_iter()
        .map(|(pod, totals)| {
            let labels = match pod {
                Some(pod) => vec![
                    ("pod", Cow::Borrowed(pod.hostname.as_str())),
                    ("netns", Cow::Borrowed(pod.netns.as_str())),
                ],
                None => vec![("pod", Cow::Borrowed(NOT_A_POD)), ("netns", Cow::Borrowed(""))],
            };
            (labels, Cow::Borrowed(totals))
        })
        .collect();
    if !rest.is_empty() {
        let mut other = SeriesTotals::default();
        for (_, totals) in &rest {
            merge(&mut other, totals);
        }
        series.push((
            vec![("pod", Cow::Borrowed(OTHER_PODS)), ("netns", Cow::Borrowed(""))],
            Cow::Owned(other),
        ));
    }
    (series, rest.len())
}

/// Unanswered queries of a series, all causes.
fn unanswered(series: &SeriesTotals) -> u64 {
    series.unanswered_by_cause.values().sum()
}

/// Adds `from`'s counters to `into`'s.
fn merge(into: &mut SeriesTotals, from: &SeriesTotals) {
    into.queries += from.queries;
    for (rcode, n) in &from.answers_by_rcode {
        *into.answers_by_rcode.entry(rcode.clone()).or_insert(0) += n;
    }
    for (cause, n) in &from.unanswered_by_cause {
        *into.unanswered_by_cause.entry(*cause).or_insert(0) += n;
    }
    for (bucket, n) in into.latency.buckets.iter_mut().zip(from.latency.buckets) {
        *bucket += n;
    }
    into.latency.count += from.latency.count;
    into.latency.sum_s += from.latency.sum_s;
}

/// The four families of one scope (`scope` is the name part after the
/// prefix: empty for the node, `endpoint_`, `pod_`); nothing when it has
/// no series.
fn write_scope(out: &mut String, scope: &str, help: &str, series: &[Series]) {
    if series.is_empty() {
        return;
    }
    let name = format!("{scope}queries_total");
    family_header(
        out,
        &name,
        "counter",
        &format!("DNS queries decided (answered, or unanswered after the timeout){help}."),
    );
    for (labels, totals) in series {
        sample(out, &name, labels, &[], &totals.queries.to_string());
    }
    let name = format!("{scope}answers_total");
    family_header(out, &name, "counter", &format!("Answers by rcode{help}."));
    for (labels, totals) in series {
        for (rcode, n) in &totals.answers_by_rcode {
            sample(out, &name, labels, &[("rcode", rcode)], &n.to_string());
        }
    }
    let name = format!("{scope}unanswered_total");
    family_header(
        out,
        &name,
        "counter",
        &format!("Queries unanswered after the timeout, by cause{help}."),
    );
    for (labels, totals) in series {
        // Every cause, zeros included: a series that exists before its
        // first loss lets rate() and increase() see that first loss.
        for cause in Cause::ALL {
            let n = totals.unanswered_by_cause.get(&cause).copied().unwrap_or(0);
            sample(out, &name, labels, &[("cause", cause.as_str())], &n.to_string());
        }
    }
    write_histogram(out, &format!("{scope}latency_seconds"), help, series);
}

/// The latency histogram of a scope: cumulative `_bucket{le}` per bound,
/// `+Inf` (all observations), `_sum`, `_count`.
fn write_histogram(out: &mut String, name: &str, help: &str, series: &[Series]) {
    family_header(out, name, "histogram", &format!("Latency of answered queries, from the query to its answer as the packets' timestamps show{help}."));
    let bucket = format!("{name}_bucket");
    for (labels, totals) in series {
        let h = &totals.latency;
        for (bound, n) in LATENCY_BUCKETS_S.iter().zip(h.buckets) {
            sample(out, &bucket, labels, &[("le", &format!("{bound}"))], &n.to_string());
        }
        sample(out, &bucket, labels, &[("le", "+Inf")], &h.count.to_string());
        sample(out, &format!("{name}_sum"), labels, &[], &float(h.sum_s));
        sample(out, &format!("{name}_count"), labels, &[], &h.count.to_string());
    }
}

/// `# HELP` and `# TYPE` of `PREFIX + name` (the help text is ours: no
/// backslash or newline to escape).
fn family_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}{name} {kind}");
}

/// One sample line: the series' labels, then `extra`.
fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&'static str, Cow<'_, str>)],
    extra: &[(&str, &str)],
    value: &str,
) {
    let _ = write!(out, "{PREFIX}{name}");
    let all = labels.iter().map(|(k, v)| (*k, v.as_ref())).chain(extra.iter().copied());
    let mut first = true;
    for (key, v) in all {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{key}=\"");
        escape_label_into(out, v);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A label value as the text format requires: backslash, double quote and
/// newline escaped. Why more: pod hostnames are text from the pod, and the
/// format has no escape for other control characters (nor should a
/// terminal showing the page get them, or text-direction overrides): they
/// become U+FFFD.
fn escape_label_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control()
                || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') =>
            {
                out.push(char::REPLACEMENT_CHARACTER)
            }
            c => out.push(c),
        }
    }
}

/// A float as the text format writes it (`NaN`, `+Inf`, `-Inf` spelled
/// out; Rust's `Display` never uses an exponent).
fn float(v: f64) -> String {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pod(netns: &str, hostname: &str) -> Option<PodName> {
        Some(PodName { netns: netns.into(), hostname: hostname.into() })
    }

    /// A series with `queries` queries, `lost` of them endpoint-silent and
    /// the rest answered NOERROR in 3 ms.
    fn series(queries: u64, lost: u64) -> SeriesTotals {
        let mut s = SeriesTotals { queries, ..Default::default() };
        if queries > lost {
            s.answers_by_rcode.insert("NOERROR".into(), queries - lost);
        }
        if lost > 0 {
            s.unanswered_by_cause.insert(Cause::EndpointSilent, lost);
        }
        for _ in lost..queries {
            s.latency.observe(0.003);
        }
        s
    }

    /// The sample lines of `text` as (name{labels}, value).
    fn samples(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a sample line has a value");
                (series.to_string(), value.to_string())
            })
            .collect()
    }

    #[test]
    fn node_and_endpoint_counters_and_the_histogram_are_what_was_counted() {
        let mut all = series(3, 0);
        all.latency.observe(6.0);
        all.queries += 1;
        all.answers_by_rcode.insert("SERVFAIL".into(), 1);
        let endpoint: std::net::SocketAddr = "198.18.2.2:53".parse().unwrap();
        let totals = Totals {
            all,
            by_endpoint: [(endpoint, series(10, 7))].into(),
            by_pod: BTreeMap::new(),
            capture_drops: 5,
        };
        let got = samples(&render(&totals, 10));
        let want = [
            ("ctdiag_watch_queries_total", "4"),
            ("ctdiag_watch_answers_total{rcode=\"NOERROR\"}", "3"),
            ("ctdiag_watch_answers_total{rcode=\"SERVFAIL\"}", "1"),
            ("ctdiag_watch_unanswered_total{cause=\"endpoint-silent\"}", "0"),
            ("ctdiag_watch_latency_seconds_bucket{le=\"0.002\"}", "0"),
            ("ctdiag_watch_latency_seconds_bucket{le=\"0.005\"}", "3"),
            ("ctdiag_watch_latency_seconds_bucket{le=\"1\"}", "3"),
            ("ctdiag_watch_latency_seconds_bucket{le=\"5\"}", "3"),
            ("ctdiag_watch_latency_seconds_bucket{le=\"+Inf\"}", "4"),
            ("ctdiag_watch_latency_seconds_sum", "6.009"),
            ("ctdiag_watch_latency_seconds_count", "4"),
            ("ctdiag_watch_endpoint_queries_total{endpoint=\"198.18.2.2:53\"}", "10"),
            (
                "ctdiag_watch_endpoint_unanswered_total{endpoint=\"198.18.2.2:53\",cause=\"endpoint-silent\"}",
                "7",
            ),
            (
                "ctdiag_watch_endpoint_unanswered_total{endpoint=\"198.18.2.2:53\",cause=\"stale-entry\"}",
                "0",
            ),
            ("ctdiag_watch_endpoint_answers_total{endpoint=\"198.18.2.2:53\",rcode=\"NOERROR\"}", "3"),
            ("ctdiag_watch_endpoint_latency_seconds_count{endpoint=\"198.18.2.2:53\"}", "3"),
            ("ctdiag_watch_capture_drops_total", "5"),
            ("ctdiag_watch_pods_folded", "0"),
        ];
        for (series, value) in want {
            let v = got.get(series).unwrap_or_else(|| panic!("{series} missing: {got:#?}"));
            // The sum is a float: 6.009 may print as 6.009000000000001.
            if series.ends_with("_sum") {
                let v: f64 = v.parse().unwrap();
                assert!((v - 6.009).abs() < 1e-9, "{series} {v}");
            } else {
                assert_eq!(v, value, "{series}");
            }
        }
        // Every cause has a series per endpoint, zeros included.
        let causes = got.keys().filter(|k| k.starts_with("ctdiag_watch_endpoint_unanswered_total"));
        assert_eq!(causes.count(), Cause::ALL.len());
        // No pods, no pod families.
        assert!(!got.keys().any(|k| k.starts_with("ctdiag_watch_pod_")), "{got:#?}");
    }

    #[test]
    fn every_family_has_help_and_type_once_before_its_samples_and_its_samples_together() {
        let totals = Totals {
            all: series(5, 1),
            by_endpoint: [
                ("198.18.2.2:53".parse().unwrap(), series(5, 1)),
                ("[2001:db8::2]:53".parse().unwrap(), series(2, 0)),
            ]
            .into(),
            by_pod: [(pod("cni-1", "web-1"), series(4, 1)), (None, series(1, 0))].into(),
            capture_drops: 0,
        };
        let text = render(&totals, 10);
        let mut seen: Vec<String> = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(!seen.contains(&name), "{name} twice");
                seen.push(name.clone());
                current = name;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert_eq!(rest.split(' ').next().unwrap(), current);
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| *b == current))
                    .unwrap_or(name);
                assert_eq!(base, current, "{line} outside its family");
                assert!(name.starts_with(PREFIX));
            }
        }
        assert!(
            text.contains("ctdiag_watch_endpoint_queries_total{endpoint=\"[2001:db8::2]:53\"} 2\n")
        );
        assert!(text.contains(
            "ctdiag_watch_pod_unanswered_total{pod=\"web-1\",netns=\"cni-1\",cause=\"endpoint-silent\"} 1\n"
        ));
        assert!(text.contains("ctdiag_watch_pod_queries_total{pod=\"(not a pod)\",netns=\"\"} 1\n"));
    }

    #[test]
    fn hostile_pod_names_are_escaped() {
        let cases = [
            ("a\"b", "a\\\"b"),
            ("back\\slash", "back\\\\slash"),
            ("two\nlines", "two\\nlines"),
            ("bell\x07\r\t", "bell\u{FFFD}\u{FFFD}\u{FFFD}"),
            ("rtl\u{202E}x", "rtl\u{FFFD}x"),
            ("\"} 1\nctdiag_watch_fake 9\n#", "\\\"} 1\\nctdiag_watch_fake 9\\n#"),
        ];
        for (hostname, escaped) in cases {
            let totals = Totals {
                by_pod: [(pod("cni-9", hostname), series(1, 0))].into(),
                ..Default::default()
            };
            let text = render(&totals, 5);
            let want =
                format!("ctdiag_watch_pod_queries_total{{pod=\"{escaped}\",netns=\"cni-9\"}} 1\n");
            assert!(text.contains(&want), "{hostname:?}: want {want:?} in\n{text}");
            // The injected text stays inside the label: no line of its own.
            assert!(!text.lines().any(|l| l.starts_with("ctdiag_watch_fake")), "{text}");
        }
    }

    /// Pods beyond the top N, ranked by unanswered then queries, are one
    /// series whose counters are the sums of theirs.
    #[test]
    fn pods_beyond_the_top_n_are_folded_into_one_series() {
        let by_pod: BTreeMap<_, _> = [
            (pod("cni-a", "quiet-busy"), series(100, 0)),
            (pod("cni-b", "lossy"), series(10, 4)),
            (pod("cni-c", "lossier"), series(5, 5)),
            (pod("cni-d", "small"), series(3, 0)),
            (None, series(2, 1)),
        ]
        .into();
        // (top N, pods named, the folded series' queries and unanswered)
        type Case<'a> = (usize, &'a [&'a str], Option<(u64, u64)>);
        let cases: [Case; 5] = [
            (0, &[], Some((120, 10))),
            (1, &["lossier"], Some((115, 5))),
            (3, &["lossier", "lossy", "(not a pod)"], Some((103, 0))),
            (5, &["lossier", "lossy", "(not a pod)", "quiet-busy", "small"], None),
            (50, &["lossier", "lossy", "(not a pod)", "quiet-busy", "small"], None),
        ];
        for (top, named, folded) in cases {
            let text = render(&Totals { by_pod: by_pod.clone(), ..Default::default() }, top);
            let got = samples(&text);
            let pods: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("ctdiag_watch_pod_queries_total{pod=\""))
                .map(|l| l.split('"').next().unwrap())
                .filter(|p| *p != OTHER_PODS)
                .collect();
            assert_eq!(pods, named, "top {top}");
            let other_queries =
                got.get("ctdiag_watch_pod_queries_total{pod=\"(other)\",netns=\"\"}");
            let other_lost = got.get(
                "ctdiag_watch_pod_unanswered_total{pod=\"(other)\",netns=\"\",cause=\"endpoint-silent\"}",
            );
            match folded {
                Some((q, u)) => {
                    assert_eq!(other_queries, Some(&q.to_string()), "top {top}");
                    assert_eq!(other_lost, Some(&u.to_string()), "top {top}");
                    let count = got
                        ["ctdiag_watch_pod_latency_seconds_count{pod=\"(other)\",netns=\"\"}"]
                        .clone();
                    assert_eq!(count, (q - u).to_string(), "answered ones are observed");
                }
                None => assert_eq!((other_queries, other_lost), (None, None), "top {top}"),
            }
            let folded_pods = by_pod.len() - named.len();
            assert_eq!(got["ctdiag_watch_pods_folded"], folded_pods.to_string(), "top {top}");
        }
    }

    #[test]
    fn floats_are_written_as_the_format_spells_them() {
        for (v, text) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.25, "0.25"),
            (1e-7, "0.0000001"),
        ] {
            assert_eq!(float(v), text);
        }
    }
}
