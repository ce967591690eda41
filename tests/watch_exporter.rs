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

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::exposition::{parse_and_lint, value};
use common::prometheus::{exchange, Prometheus, Response, HTTP_TIMEOUT};
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
    let long_header = format!(
        "GET /metrics HTTP/1.1\r\nConnection: close\r\nX-Long: {}\r\n\r\n",
        "a".repeat(100_000)
    );
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

/// Runs inside a child process of the test below (the file-descriptor
/// limit is per process): exhausts the descriptors so that the server's
/// accept fails, frees them, and scrapes.
fn scrape_after_descriptors_ran_out() {
    let totals = Arc::new(Mutex::new(scenario()));
    let server = MetricsServer::start(loopback_any_port(), totals, 10).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "GET", "/metrics").status, 200);
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    let low = libc::rlimit { rlim_cur: open + 16, rlim_max: limit.rlim_max };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    // Connections until this process has no descriptor left: the server's
    // accept of the last one fails with EMFILE.
    let clients: Vec<TcpStream> =
        (0..64).map_while(|_| TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).ok()).collect();
    assert!(clients.len() < 64, "the limit was never reached");
    std::thread::sleep(Duration::from_millis(500));
    drop(clients);
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    // Bounded: the server may take a moment to listen again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let status = loop {
        match exchange(addr, request.as_bytes()) {
            Ok(r) => break r.status,
            Err(e) if Instant::now() > deadline => {
                panic!("no scrape after the descriptors ran out: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(status, 200);
    server.stop();
}

/// The environment variable that makes the test below its own child.
const FD_CHILD: &str = "CTDIAG_WATCH_EXPORTER_FD_CHILD";

#[test]
fn the_server_serves_again_after_the_process_ran_out_of_file_descriptors() {
    if std::env::var_os(FD_CHILD).is_some() {
        scrape_after_descriptors_ran_out();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let name = "the_server_serves_again_after_the_process_ran_out_of_file_descriptors";
    let out = common::run(
        "env",
        &[&format!("{FD_CHILD}=1"), exe.to_str().unwrap(), "--exact", name, "--nocapture"],
    );
    common::assert_success(&out, "the child that ran out of descriptors");
    assert!(common::stdout(&out).contains("1 passed"), "{}", common::stdout(&out));
}

// --- A real Prometheus scraping the exporter ---

#[test]
fn a_real_prometheus_scrapes_the_exporter_and_its_query_api_returns_the_counts() {
    if !common::require_tool("prometheus", "prometheus") {
        return;
    }
    let totals = Arc::new(Mutex::new(scenario()));
    let server = MetricsServer::start(loopback_any_port(), Arc::clone(&totals), 2).unwrap();
    let mut prometheus = Prometheus::start(server.local_addr());
    let silent = format!(
        "ctdiag_watch_endpoint_unanswered_total{{endpoint=\"{SILENT}\",cause=\"endpoint-silent\"}}"
    );
    let labels = prometheus.wait_for(&silent, &SILENT_LOST.to_string());
    assert_eq!(labels.get("node").map(String::as_str), Some("test-node"), "{labels:?}");
    assert_eq!(labels.get("job").map(String::as_str), Some("ctdiag-watch"));
    // More losses: the next scrapes read them.
    {
        let mut t = totals.lock().unwrap();
        let endpoint = t.by_endpoint.get_mut(&SILENT.parse().unwrap()).unwrap();
        *endpoint.unanswered_by_cause.get_mut(&Cause::EndpointSilent).unwrap() += 5;
    }
    prometheus.wait_for(&silent, &(SILENT_LOST + 5).to_string());
    // The hostile pod name arrives in Prometheus as the pod wrote it.
    let pod_lost = "ctdiag_watch_pod_unanswered_total{netns=\"cni-1\",cause=\"endpoint-silent\"}";
    let labels = prometheus.wait_for(pod_lost, "5");
    assert_eq!(labels.get("pod").map(String::as_str), Some(HOSTILE));
    // The histogram is one Prometheus understands: 43 answers in 3 ms,
    // the median inside the (2 ms, 5 ms] bucket.
    let median = "histogram_quantile(0.5, ctdiag_watch_latency_seconds_bucket)";
    let samples = prometheus.query(median).unwrap();
    let [(_, v)] = samples.as_slice() else { panic!("{median}: {samples:?}") };
    let v: f64 = v.parse().unwrap();
    assert!(v > 0.002 && v <= 0.005, "{median} = {v}");
    // The scrape itself succeeded every time (up is 1).
    prometheus.wait_for("up{job=\"ctdiag-watch\"}", "1");
    drop(prometheus);
    server.stop();
}

// --- The fleet files ---

/// A YAML node as JSON (plain scalars, sequences, string-keyed mappings).
fn yaml_to_json(node: &Yaml) -> Value {
    match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match k {
                    Yaml::Value(Scalar::String(key)) => (key.to_string(), yaml_to_json(v)),
                    other => panic!("a mapping key that is not a string: {other:?}"),
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => yaml_to_json(inner),
        other => panic!("a YAML node this test does not read: {other:?}"),
    }
}

/// The one YAML document of `path` (under the repository), as JSON.
fn yaml(path: &str) -> Value {
    let file = repo(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
    let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path}: one document");
    yaml_to_json(&docs[0])
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string())
        .collect()
}

/// The DaemonSet's pod spec and its one container.
fn watch_pod() -> (Value, Value) {
    let ds = yaml("deploy/watch-daemonset.yaml");
    assert_eq!(ds["kind"], "DaemonSet");
    let pod = ds["spec"]["template"]["spec"].clone();
    let containers = pod["containers"].as_array().expect("containers").clone();
    assert_eq!(containers.len(), 1, "one container: ctdiag watch");
    (pod, containers[0].clone())
}

/// The address after `--listen` in the container's args.
fn listen_addr(container: &Value) -> SocketAddr {
    let args = strings(&container["args"]);
    let at = args.iter().position(|a| a == "--listen").expect("--listen");
    args[at + 1].parse().unwrap_or_else(|e| panic!("--listen {}: {e}", args[at + 1]))
}

#[test]
fn the_watch_daemonset_runs_with_only_the_privileges_watch_needs() {
    let (pod, container) = watch_pod();
    assert_eq!(pod["hostNetwork"], true, "the node's interfaces and conntrack table");
    assert_eq!(pod["hostPID"], true, "the pods' processes, to name clients");
    assert_eq!(pod["automountServiceAccountToken"], false, "no API access needed");
    assert_eq!(strings(&container["args"])[0], "watch");
    let security = &container["securityContext"];
    assert_ne!(security["privileged"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    let seccomp = if security["seccompProfile"].is_object() {
        &security["seccompProfile"]
    } else {
        &pod["securityContext"]["seccompProfile"]
    };
    assert_eq!(seccomp["type"], "RuntimeDefault");
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    let mut added = strings(&security["capabilities"]["add"]);
    added.sort();
    // AF_PACKET, ctnetlink, other processes' /proc/PID/ns, setns into UTS.
    // Spelled without CAP_: the API refuses allowPrivilegeEscalation: false
    // next to "CAP_SYS_ADMIN" only, and a cluster policy may add it.
    assert_eq!(added, ["NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE"]);
    let resources = &container["resources"];
    for kind in ["requests", "limits"] {
        for what in ["cpu", "memory"] {
            assert!(resources[kind][what].is_string(), "{kind}.{what}: {resources}");
        }
    }
    // Every hostPath volume is mounted read-only, and none is a device.
    let volumes = pod["volumes"].as_array().unwrap();
    for volume in volumes.iter().filter(|v| v["hostPath"].is_object()) {
        let host = volume["hostPath"]["path"].as_str().unwrap();
        assert!(!host.starts_with("/dev"), "{host}");
        let mounts = container["volumeMounts"].as_array().unwrap();
        let mount = mounts.iter().find(|m| m["name"] == volume["name"]).expect("mounted");
        assert_eq!(mount["readOnly"], true, "{host} is mounted writable");
    }
    // The image deploy/Containerfile builds: the static binary, entrypoint
    // /ctdiag, named after the version of ctdiag it holds.
    let image = container["image"].as_str().unwrap();
    assert!(image.ends_with(&format!("/ctdiag:{}", env!("CARGO_PKG_VERSION"))), "{image}");
    let containerfile = std::fs::read_to_string(repo("deploy/Containerfile")).unwrap();
    assert!(containerfile.contains("ENTRYPOINT [\"/ctdiag\"]"));
    assert!(container["command"].is_null(), "args go to the image's /ctdiag");
    // The port it listens on is declared, named for the scrape config, and
    // the readiness probe asks the exporter itself.
    let listen = listen_addr(&container);
    let ports = container["ports"].as_array().unwrap();
    let metrics = ports.iter().find(|p| p["name"] == "metrics").expect("a port named metrics");
    assert_eq!(metrics["containerPort"], listen.port());
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/metrics");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], listen.port());
}

#[test]
fn the_scrape_config_selects_the_daemonset_pods_on_their_metrics_port() {
    let ds = yaml("deploy/watch-daemonset.yaml");
    let app = ds["spec"]["template"]["metadata"]["labels"]["app"].as_str().unwrap().to_string();
    assert_eq!(ds["spec"]["selector"]["matchLabels"]["app"], app.as_str());
    let config = yaml("deploy/prometheus/scrape.yaml");
    let jobs = config["scrape_configs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    // The job name the CtdiagWatchDown alert asks `up` of.
    let rules = std::fs::read_to_string(repo("deploy/prometheus/watch-alerts.yaml")).unwrap();
    let job_name = job["job_name"].as_str().unwrap();
    assert!(rules.contains(&format!("up{{job=\"{job_name}\"}}")), "{job_name}");
    let sd = &job["kubernetes_sd_configs"][0];
    assert_eq!(sd["role"], "pod");
    assert_eq!(
        strings(&sd["namespaces"]["names"]),
        [ds["metadata"]["namespace"].as_str().unwrap()]
    );
    assert_eq!(sd["selectors"][0]["label"], format!("app={app}"));
    let relabel = job["relabel_configs"].as_array().unwrap();
    let keeps = |source: &str| -> Vec<String> {
        relabel
            .iter()
            .filter(|r| r["action"] == "keep" && strings(&r["source_labels"]) == [source])
            .map(|r| r["regex"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keeps("__meta_kubernetes_pod_label_app"), [app]);
    assert_eq!(keeps("__meta_kubernetes_pod_container_port_name"), ["metrics"]);
    // The `node` label the alerts group by; no `pod` target label, which
    // would rename the metrics' own `pod` (the client) to exported_pod.
    let targets: Vec<&str> = relabel.iter().filter_map(|r| r["target_label"].as_str()).collect();
    assert!(targets.contains(&"node"), "{targets:?}");
    assert!(!targets.contains(&"pod"), "{targets:?}");
    assert_eq!(job["metrics_path"], "/metrics");
    let rule_files = strings(&config["rule_files"]);
    assert_eq!(rule_files, ["watch-alerts.yaml"]);
    assert!(repo("deploy/prometheus").join(&rule_files[0]).is_file());
}

/// Every `ctdiag_watch_` metric name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .match_indices("ctdiag_watch_")
        .map(|(at, _)| {
            text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests_on_metrics_the_exporter_serves() {
    if !common::require_tool("promtool", "prometheus") {
        return;
    }
    let dir = repo("deploy/prometheus");
    let rules = dir.join("watch-alerts.yaml");
    let check = common::run("promtool", &["check", "rules", rules.to_str().unwrap()]);
    common::assert_success(&check, "promtool check rules");
    assert!(
        common::stdout(&check).contains("SUCCESS: 4 rules found"),
        "{}",
        common::stdout(&check)
    );
    let tests = dir.join("watch-alerts.test.yaml");
    let test = common::run("promtool", &["test", "rules", tests.to_str().unwrap()]);
    common::assert_success(&test, "promtool test rules");
    assert!(common::stdout(&test).contains("SUCCESS"), "{}", common::stdout(&test));
    // Issue 15's two alerts are there, and every metric the rules and
    // their tests name is one the exporter serves (a renamed metric would
    // leave the alert silent while its unit test still passed).
    let doc = yaml("deploy/prometheus/watch-alerts.yaml");
    let alerts: Vec<&str> = doc["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    for want in ["DNSLookupsLost", "DNSEndpointSilent"] {
        assert!(alerts.contains(&want), "{alerts:?}");
    }
    let served = ctdiag::watch::metrics::render(&scenario(), 2);
    for file in [&rules, &tests] {
        let text = std::fs::read_to_string(file).unwrap();
        for name in metric_names(&text) {
            let typed = format!("# TYPE {name} ");
            assert!(served.contains(&typed), "{}: {name} is not served", file.display());
        }
    }
}
