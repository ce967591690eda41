//! Sticky clients, seen from the lab: starting them in the client pod
//! (the process itself is [`super::client`]) and keeping those whose
//! conntrack entry in the node lands where a scenario needs it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::client::{self, StickyClient};
use super::state::{save_state, LabInfo};
use super::topology::client_ip;
use super::{exe_path, fill, system, DNS_PORT};
use crate::error::{Error, Result};

/// Clients started at once while placing them.
pub(super) const STICKY_BATCH: u32 = 4;
/// Most clients one scenario starts while placing them (extra ones are
/// stopped again).
pub(super) const STICKY_ATTEMPTS: u32 = 64;
/// How long a new client's first query gets to show up in the node's
/// conntrack table.
pub(super) const STICKY_ENTRY_TIMEOUT: Duration = Duration::from_secs(5);

/// The clients a scenario placed.
pub(super) struct Placed {
    /// Those whose entry matched what the scenario wanted.
    pub(super) on_target: Vec<StickyClient>,
    /// The others that were kept.
    pub(super) control: Vec<StickyClient>,
}

/// `ids 1, 3 (198.18.1.2:42001, ...)`, or `none`.
pub(super) fn describe_clients(clients: &[StickyClient]) -> String {
    if clients.is_empty() {
        return "none".into();
    }
    let ids: Vec<String> = clients.iter().map(|c| c.id.to_string()).collect();
    let sources: Vec<&str> = clients.iter().map(|c| c.source.as_str()).collect();
    format!("{} ({})", ids.join(", "), sources.join(", "))
}

/// Starts sticky clients in batches until at least `on_target` of them have
/// a conntrack entry in the node whose reply source satisfies `wanted` and
/// `control` others, as the node's table shows it (`conntrack -L`). Extra
/// control clients are stopped again; every client kept is added to
/// `info.clients` (and saved). Bounded: at most [`STICKY_ATTEMPTS`] clients.
pub(super) fn place_sticky_clients(
    info: &mut LabInfo,
    scenario: &str,
    wanted: &dyn Fn(SocketAddr) -> bool,
    on_target: usize,
    control: usize,
) -> Result<Placed> {
    system::require_tool("conntrack")?;
    let mut placed = Placed { on_target: Vec::new(), control: Vec::new() };
    let mut started = 0;
    while placed.on_target.len() < on_target || placed.control.len() < control {
        if started >= STICKY_ATTEMPTS {
            return Err(Error::Runtime(format!(
                "{scenario}: after {started} sticky clients only {} had their entry where the scenario needs it (wanted {on_target}); kube-proxy's random choice was unlucky, run the scenario again",
                placed.on_target.len()
            )));
        }
        let batch = start_sticky_clients(info, scenario, STICKY_BATCH)?;
        info.next_client_id += STICKY_BATCH;
        started += STICKY_BATCH;
        for client in batch {
            let reply_src: Option<SocketAddr> = client.entry_reply_src.parse().ok();
            if reply_src.is_some_and(wanted) {
                placed.on_target.push(client.clone());
                info.clients.push(client);
            } else if placed.control.len() < control {
                placed.control.push(client.clone());
                info.clients.push(client);
            } else {
                // Not needed: its entry stays (live, towards a running
                // endpoint) until it expires.
                system::stop(client.pid);
                let _ = std::fs::remove_file(&client.status_file);
                let _ = std::fs::remove_file(&client.log);
            }
        }
        save_state(info)?;
    }
    Ok(placed)
}

/// Starts `count` sticky clients in the client pod (ids after the last
/// one the lab had) and waits until each one's first query has a conntrack
/// entry in the node; returns them with the entry's reply source.
pub(super) fn start_sticky_clients(
    info: &LabInfo,
    scenario: &str,
    count: u32,
) -> Result<Vec<StickyClient>> {
    let next_id = info.next_client_id;
    if next_id + count - 1 > client::MAX_CLIENTS {
        return Err(Error::Usage(format!(
            "the lab has started {} sticky clients, the most one lab runs; `ctdiag lab up` rebuilds it",
            next_id - 1
        )));
    }
    let family = fill::Family::of(info.cluster_ip);
    let server = SocketAddr::new(info.cluster_ip, DNS_PORT);
    let source_ip = client_ip(family);
    let netns_file = Path::new(crate::netns::NETNS_RUN_DIR).join(&info.namespaces.client);
    let exe = exe_path()?;
    let mut clients = Vec::new();
    for id in next_id..next_id + count {
        let source = SocketAddr::new(source_ip, client::CLIENT_PORT_BASE + id as u16);
        let status_file = info.state_dir.join(format!("client{id}.jsonl"));
        let log = info.state_dir.join(format!("client{id}.log"));
        let args = vec![
            "lab".to_string(),
            "client".into(),
            "--bind".into(),
            source.to_string(),
            "--server".into(),
            server.to_string(),
            "--status".into(),
            status_file.display().to_string(),
            "--hostname".into(),
            info.client_pod.clone(),
            "--netns-file".into(),
            netns_file.display().to_string(),
            "--interval-ms".into(),
            client::QUERY_INTERVAL.as_millis().to_string(),
            "--lifetime-s".into(),
            client::MAX_LIFETIME.as_secs().to_string(),
        ];
        let pid = system::spawn_in_netns(&info.namespaces.client, &exe, &args, &log)?;
        clients.push(StickyClient {
            id,
            pid,
            source: source.to_string(),
            server: server.to_string(),
            entry_reply_src: String::new(),
            hostname: info.client_pod.clone(),
            scenario: scenario.to_string(),
            status_file,
            log,
            alive: true,
            queries: 0,
            answered: 0,
            last_answered: None,
        });
    }
    wait_for_entries(info, scenario, clients, source_ip, server)
}

/// Waits until each of `clients` (just started, querying `server` from
/// `source_ip`) has a conntrack entry in the node and records the entry's
/// reply source; stops them all and says why when one dies or
/// [`STICKY_ENTRY_TIMEOUT`] passes first.
fn wait_for_entries(
    info: &LabInfo,
    scenario: &str,
    mut clients: Vec<StickyClient>,
    source_ip: IpAddr,
    server: SocketAddr,
) -> Result<Vec<StickyClient>> {
    let deadline = std::time::Instant::now() + STICKY_ENTRY_TIMEOUT;
    loop {
        let entries = client::entries_towards(&info.namespaces.node, source_ip, server)?;
        for c in clients.iter_mut().filter(|c| c.entry_reply_src.is_empty()) {
            let port = c.source.parse::<SocketAddr>().map(|s| s.port()).unwrap_or(0);
            if let Some((_, reply_src)) = entries.iter().find(|(sport, _)| *sport == port) {
                c.entry_reply_src = reply_src.to_string();
            }
        }
        if clients.iter().all(|c| !c.entry_reply_src.is_empty()) {
            return Ok(clients);
        }
        let dead = clients.iter().find(|c| !system::alive_in_netns(c.pid, &info.namespaces.client));
        if dead.is_some() || std::time::Instant::now() >= deadline {
            let culprit = dead.or_else(|| clients.iter().find(|c| c.entry_reply_src.is_empty()));
            let detail = culprit.map_or(String::new(), |c| {
                let log = std::fs::read_to_string(&c.log).unwrap_or_default();
                format!(
                    "sticky client {} ({}) {}; its log ({}) says: {}",
                    c.id,
                    c.source,
                    if dead.is_some() { "died" } else { "has no conntrack entry in the node" },
                    c.log.display(),
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
                )
            });
            for c in &clients {
                system::stop(c.pid);
            }
            return Err(Error::Runtime(format!(
                "{scenario}: the sticky clients did not all reach the node within {}s: {detail}",
                STICKY_ENTRY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
