//! A real Prometheus server (the Debian `prometheus` package) started by
//! a test, scraping one target every second, read back through its query
//! API; and the plain HTTP/1 exchange both the test and the query use.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one HTTP exchange with an exporter or Prometheus may take: a
/// local answer takes milliseconds; a loaded 2-core machine gets seconds.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status, headers (lower-case names), body.
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// Sends `request` as is to `addr` and reads until the server closes.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
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

/// How long Prometheus may take from its start to a query that returns a
/// scraped value: it starts in about a second and scrapes every second
/// here; a loaded 2-core machine gets a minute.
pub const PROMETHEUS_WAIT: Duration = Duration::from_secs(60);

/// One sample of a query result: its labels and its value as Prometheus
/// wrote it.
pub type QuerySample = (BTreeMap<String, String>, String);

/// A Prometheus server started by the test, killed (and its directory
/// removed) when dropped, also when the test panics; then its log is shown.
pub struct Prometheus {
    running: Option<super::Running>,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping `target` every
    /// second with the label node="test-node".
    pub fn start(target: SocketAddr) -> Prometheus {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "prometheus-{}-{}",
            std::process::id(),
            target.port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: ctdiag-watch\n    scrape_interval: 1s\n    \
             scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n        \
             labels:\n          node: test-node\n"
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        // A free port: taken from the kernel, released, handed over.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let running = super::spawn(
            "prometheus",
            &[
                &format!("--config.file={}", config_file.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address={addr}"),
                "--log.level=warn",
            ],
        );
        Prometheus { running: Some(running), dir, addr }
    }

    /// The samples `query` returns now, as (labels, value), or why not.
    pub fn query(&mut self, query: &str) -> Result<Vec<QuerySample>, String> {
        if !self.running.as_mut().is_some_and(super::Running::is_running) {
            panic!("prometheus exited (its log follows)");
        }
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        // HTTP/1.0: Go's server answers with the length, never chunked.
        let request = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
        let r = exchange(self.addr, request.as_bytes()).map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
        if body["status"] != "success" {
            return Err(r.body);
        }
        let result = body["data"]["result"].as_array().ok_or_else(|| r.body.clone())?;
        Ok(result
            .iter()
            .map(|s| {
                let labels = serde_json::from_value(s["metric"].clone()).unwrap_or_default();
                (labels, s["value"][1].as_str().unwrap_or_default().to_string())
            })
            .collect())
    }

    /// Queries until the result is `want` (one sample, that value) or the
    /// wait ends; returns the sample's labels.
    pub fn wait_for(&mut self, query: &str, want: &str) -> BTreeMap<String, String> {
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        let mut last = Err("not queried".to_string());
        while Instant::now() < deadline {
            last = self.query(query);
            if let Ok(samples) = &last {
                if let [(labels, v)] = samples.as_slice() {
                    if v == want {
                        return labels.clone();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("{query} never returned {want} within {PROMETHEUS_WAIT:?}; last: {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.signal(libc::SIGKILL);
            if std::thread::panicking() {
                match running.wait_until(Duration::from_secs(10)) {
                    Ok(out) => eprintln!("--- prometheus log:\n{}", super::stderr(&out)),
                    Err(why) => eprintln!("--- prometheus log: {why}"),
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `text` with everything but unreserved characters percent-encoded.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
