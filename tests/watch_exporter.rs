//! `ctdiag watch --listen` (issue 15): the exposition read by the
//! Prometheus project's own parser (prometheus_client) and linted by
//! `promtool check metrics`; the `/metrics` server over real TCP (bad
//! requests, a taken port, stop); a real Prometheus server (the Debian
//! `prometheus` package) scraping it, the counts read back through its
//! query API; and the fleet files: the alert rules through `promtool check
//! rules` and `promtool test rules`, the scrape config and the DaemonSet
//! parsed (saphyr) and checked against each other.
//!
//! The expected values are the counts each test puts into the totals it
//! serves, never what the exporter prints.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctdiag::watch::metrics::{MetricsError, MetricsServer};
use ctdiag::watch::model::{Cause, PodName, SeriesTotals, Totals};
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;

/// The endpoint the tests make silent, and how many of its queries they
/// leave unanswered (issue 15's acceptance: the dead endpoint's counter
/// read back through Prometheus).
const SILENT: &str = "198.18.2.2:53";
const SILENT_LOST: u64 = 7;

/// A pod hostname with every character the format must escape, and text
/// that would forge a sample line if it were not.
const HOSTILE: &str = "web-\"q\"\\back\nfake_metric 1";

/// How long one HTTP exchange with the exporter or Prometheus may take: a
/// local answer takes milliseconds; a loaded 2-core machine gets seconds.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A series: `queries`, `lost` of them endpoint-silent, the rest answered
/// NOERROR in 3 ms.
fn series(queries: u64, lost: u64) -> SeriesTotals {
    let mut s = SeriesTotals { queries, ..Default::default() };
    s.answers_by_rcode.insert("NOERROR".into(), queries - lost);
    s.unanswered_by_cause.insert(Cause::EndpointSilent, lost);
    for _ in lost..queries {
        s.latency.observe(0.003);
    }
    s
}

fn pod(netns: &str, hostname: &str) -> Option<PodName> {
    Some(PodName { netns: netns.into(), hostname: hostname.into() })
}

/// The scenario every test serves: 20 queries to the silent endpoint (7
/// lost), 30 to a healthy IPv6 one; four pods, the hostile one among the
/// two with losses.
fn scenario() -> Totals {
    let silent: SocketAddr = SILENT.parse().unwrap();
    let healthy: SocketAddr = "[2001:db8::53]:53".parse().unwrap();
    Totals {
        all: series(50, SILENT_LOST),
        by_endpoint: [(silent, series(20, SILENT_LOST)), (healthy, series(30, 0))].into(),
        by_pod: [
            (pod("cni-1", HOSTILE), series(12, 5)),
            (pod("cni-2", "api-7"), series(8, 2)),
            (pod("cni-3", "quiet-1"), series(20, 0)),
            (None, series(10, 0)),
        ]
        .into(),
        capture_drops: 3,
    }
}

// --- The exposition, read by the reference parser and promtool ---

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
struct Sample {
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// `text` parsed by prometheus_client and linted by promtool.
fn parse_and_lint(text: &str) -> Vec<Sample> {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("watch-exposition-{}.txt", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let parsed = common::run("/usr/bin/python3", &["-c", PARSE, &file.display().to_string()]);
    common::assert_success(&parsed, &format!("prometheus_client parser on:\n{text}"));
    let lint = common::run("sh", &["-c", &format!("promtool check metrics < {}", file.display())]);
    assert!(
        lint.status.success(),
        "promtool: {}{}\n{text}",
        common::stdout(&lint),
        common::stderr(&lint)
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
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {with:?}: {found:?}");
    found[0].value
}

fn parser_tools() -> bool {
    common::require_tool("promtool", "prometheus")
        && common::require_tool("python3", "python3-prometheus-client")
}

#[test]
fn the_exposition_passes_promtool_and_the_reference_parser_reads_back_what_was_counted() {
    if !parser_tools() {
        return;
    }
    let top = 2;
    let samples = parse_and_lint(&ctdiag::watch::metrics::render(&scenario(), top));
    assert!(samples.iter().all(|s| s.name.starts_with("ctdiag_watch_")), "{samples:?}");
    assert!(samples.iter().filter(|s| s.name.ends_with("_total")).all(|s| s.kind == "counter"));
    let silent = [("endpoint", SILENT), ("cause", "endpoint-silent")];
    let endpoint_lost = value(&samples, "ctdiag_watch_endpoint_unanswered_total", &silent);
    assert_eq!(endpoint_lost, SILENT_LOST as f64);
    let ok = [("endpoint", SILENT), ("rcode", "NOERROR")];
    assert_eq!(value(&samples, "ctdiag_watch_endpoint_answers_total", &ok), 13.0);
    assert_eq!(value(&samples, "ctdiag_watch_queries_total", &[]), 50.0);
    assert_eq!(value(&samples, "ctdiag_watch_capture_drops_total", &[]), 3.0);
    // The histogram: 43 answers in 3 ms, all in the 5 ms bucket, none in
    // the 2 ms one, +Inf is the count.
    let h = "ctdiag_watch_latency_seconds";
    assert_eq!(value(&samples, &format!("{h}_bucket"), &[("le", "0.002")]), 0.0);
    assert_eq!(value(&samples, &format!("{h}_bucket"), &[("le", "0.005")]), 43.0);
    assert_eq!(value(&samples, &format!("{h}_bucket"), &[("le", "+Inf")]), 43.0);
    assert_eq!(value(&samples, &format!("{h}_count"), &[]), 43.0);
    assert!((value(&samples, &format!("{h}_sum"), &[]) - 43.0 * 0.003).abs() < 1e-9);
    assert!(samples.iter().any(|s| s.name == format!("{h}_bucket") && s.kind == "histogram"));
    // The top 2 pods by unanswered: the hostile name comes back as it was.
    let hostile = [("pod", HOSTILE), ("netns", "cni-1"), ("cause", "endpoint-silent")];
    assert_eq!(value(&samples, "ctdiag_watch_pod_unanswered_total", &hostile), 5.0);
    let api = [("pod", "api-7"), ("netns", "cni-2"), ("cause", "endpoint-silent")];
    assert_eq!(value(&samples, "ctdiag_watch_pod_unanswered_total", &api), 2.0);
    // The other two (20 + 10 queries) are one series.
    let other = [("pod", "(other)"), ("netns", "")];
    assert_eq!(value(&samples, "ctdiag_watch_pod_queries_total", &other), 30.0);
    assert_eq!(value(&samples, "ctdiag_watch_pods_folded", &[]), 2.0);
    let pods: Vec<&str> = samples
        .iter()
        .filter(|s| s.name == "ctdiag_watch_pod_queries_total")
        .map(|s| s.labels["pod"].as_str())
        .collect();
    assert_eq!(pods.len(), top + 1, "{pods:?}");
    assert!(!samples.iter().any(|s| s.name.contains("fake_metric")), "forged sample");
}

// --- The server over real TCP ---

/// A response: status, headers (lower-case names), body.
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `request` as is to `addr` and reads until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    stream.write_all(request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Response { status, headers, body: body.to_string() })
}

fn get(addr: SocketAddr, method: &str, path: &str) -> Response {
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The value of the sample line `series` in a scrape.
fn line_value(body: &str, series: &str) -> Option<String> {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(str::to_string)
}

const SILENT_SERIES: &str =
    "ctdiag_watch_endpoint_unanswered_total{endpoint=\"198.18.2.2:53\",cause=\"endpoint-silent\"}";

fn loopback_any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn the_server_serves_the_totals_of_each_scrape_at_metrics_and_nothing_elsewhere() {
    let totals = Arc::new(Mutex::new(scenario()));
    let server = MetricsServer::start(loopback_any_port(), Arc::clone(&totals), 10).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "port 0 resolved");
    assert!(addr.ip().is_loopback());
    let first = get(addr, "GET", "/metrics");
    assert_eq!(first.status, 200);
    let content_type = &first.headers["content-type"];
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert_eq!(line_value(&first.body, SILENT_SERIES).as_deref(), Some("7"), "{}", first.body);
    // Each scrape reads the totals as they are then.
    {
        let mut t = totals.lock().unwrap();
        let silent = t.by_endpoint.get_mut(&SILENT.parse().unwrap()).unwrap();
        *silent.unanswered_by_cause.get_mut(&Cause::EndpointSilent).unwrap() += 5;
        silent.queries += 5;
    }
    let second = get(addr, "GET", "/metrics?format=text");
    assert_eq!(second.status, 200);
    assert_eq!(line_value(&second.body, SILENT_SERIES).as_deref(), Some("12"));
    // HEAD: the headers, no body.
    let head = get(addr, "HEAD", "/metrics");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "{:?}", head.body);
    for path in ["/", "/metricsx", "/metrics/", "/favicon.ico", "/../metrics"] {
        assert_eq!(get(addr, "GET", path).status, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let r = get(addr, method, "/metrics");
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.headers.get("allow").map(String::as_str), Some("GET, HEAD"));
    }
    server.stop();
}

#[test]
fn bad_requests_and_idle_clients_do_not_stop_the_server() {
    let totals = Arc::new(Mutex::new(scenario()));
    let server = MetricsServer::start(loopback_any_port(), totals, 10).unwrap();
    let addr = server.local_addr();
    // A client that opens a connection, sends half a request and waits:
    // the scrapes below still get their answers.
    let mut idle = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).unwrap();
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    let long_header = format!("GET /metrics HTTP/1.1\r\nConnection: close\r\nX-Long: {}\r\n\r\n", "a".repeat(100_000));
    let bad: Vec<Vec<u8>> = vec![
        b"\x00\xff\xfe garbage\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nConnection: close\r\nContent-Length: -4\r\n\r\n".to_vec(),
        b"GET /m\xc3\x28trics HTTP/1.1\r\n\r\n".to_vec(),
        long_header.into_bytes(),
    ];
    for request in &bad {
        // Any answer, or a closed connection, is fine: only the server's
        // survival is asserted.
        let _ = exchange(addr, request);
    }
    // A client that goes away mid-request.
    drop(TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map(|mut s| s.write_all(b"GET /met")));
    let r = get(addr, "GET", "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(line_value(&r.body, SILENT_SERIES).as_deref(), Some("7"));
    // Stopping does not wait for the idle client.
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(5), "stop took {:?}", started.elapsed());
    drop(idle);
}

#[test]
fn a_taken_port_or_a_foreign_address_is_a_clear_bind_error() {
    let holder = TcpListener::bind(loopback_any_port()).unwrap();
    let taken = holder.local_addr().unwrap();
    let totals = Arc::new(Mutex::new(Totals::default()));
    match MetricsServer::start(taken, Arc::clone(&totals), 10) {
        Err(e @ MetricsError::Bind { addr, .. }) => {
            assert_eq!(addr, taken);
            let text = e.to_string();
            assert!(text.starts_with(&format!("cannot listen on {taken}: ")), "{text}");
            assert!(text.contains("in use"), "{text}");
        }
        other => panic!("{taken} is taken: {other:?}"),
    }
    // An address this host does not have (nothing is sent to it): refused
    // unless the kernel allows binding foreign addresses.
    let foreign: SocketAddr = "198.18.200.1:0".parse().unwrap();
    let nonlocal = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind")
        .map(|v| v.trim() != "0")
        .unwrap_or(false);
    match (MetricsServer::start(foreign, totals, 10), nonlocal) {
        (Err(MetricsError::Bind { addr, cause }), false) => {
            assert_eq!(addr, foreign);
            assert!(cause.contains("not one of this host's"), "{cause}");
        }
        (Ok(server), true) => server.stop(),
        (other, nonlocal) => panic!("ip_nonlocal_bind {nonlocal}: {other:?}"),
    }
}

/// Whether a new listener can take `addr` within `limit` (the old socket
/// is closed by tiny_http's accept thread once it sees the stop).
fn port_freed(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if TcpListener::bind(addr).is_ok() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stop_and_drop_end_the_server_and_free_the_port() {
    let totals = Arc::new(Mutex::new(scenario()));
    let server = MetricsServer::start(loopback_any_port(), Arc::clone(&totals), 10).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "GET", "/metrics").status, 200);
    assert!(TcpListener::bind(addr).is_err(), "served port is held");
    server.stop();
    assert!(port_freed(addr, Duration::from_secs(10)), "{addr} still held after stop");
    assert!(TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).is_err(), "nobody listens");
    {
        let dropped = MetricsServer::start(addr, Arc::clone(&totals), 10).unwrap();
        assert_eq!(dropped.local_addr(), addr, "the same port, asked for by number");
        assert_eq!(get(addr, "GET", "/metrics").status, 200);
    }
    assert!(port_freed(addr, Duration::from_secs(10)), "{addr} still held after drop");
}
