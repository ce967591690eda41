//! The lab's sticky clients (`lab scenario stale-endpoint` and
//! `never-translated`), as `lab status` / the scenario's JSON describe them:
//! one fixed-source-port socket each, one query a second, every query
//! logged to the client's status file (one JSON object per line).

use std::time::{Duration, Instant};

use serde_json::Value;

/// Milliseconds since the Unix epoch, the clock of the clients' status
/// files.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Every query a sticky client logged so far (its status file).
pub fn client_queries(client: &Value) -> Vec<Value> {
    let path = client["status_file"].as_str().expect("status_file");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The queries a sticky client logged after `since_ms`, waiting, bounded,
/// until there are `n`. The bound: 5 s plus 2 s a query, for a client that
/// queries once a second: twice its pace plus a start-up allowance, which
/// a loaded 2-core machine keeps, while a client that stopped querying
/// still fails within seconds.
pub fn queries_after(client: &Value, since_ms: u64, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5 + 2 * n as u64);
    loop {
        let after: Vec<Value> = client_queries(client)
            .into_iter()
            .filter(|q| q["sent_unix_ms"].as_u64().unwrap_or(0) > since_ms)
            .collect();
        if after.len() >= n {
            return after;
        }
        assert!(
            Instant::now() < deadline,
            "client {} logged {} queries after {since_ms}: {after:?}",
            client["id"],
            after.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A sticky client's source port.
pub fn client_port(client: &Value) -> u16 {
    let source: std::net::SocketAddr =
        client["source"].as_str().expect("source").parse().expect("ip:port");
    source.port()
}

/// Stops a sticky client with SIGKILL and waits (bounded, 5 s) until it is
/// gone; its conntrack entry stays until it times out.
pub fn stop_client(client: &Value) {
    let pid = client["pid"].as_u64().expect("pid") as i32;
    // SAFETY: kill(2) of a process this test's lab started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while super::process_running(pid as u32) {
        assert!(Instant::now() < deadline, "client {pid} did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}
