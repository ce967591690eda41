//! The endpoints' DNS servers: the embedded responder or dnsmasq, started
//! in an endpoint's namespace, restarted with other options, or removed
//! with the endpoint's pod.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::state::{DnsServerInfo, EndpointState, LabInfo};
use super::topology::{endpoint_addr, endpoint_ip};
use super::{exe_path, responder, system, DnsServerKind, DNS_PORT};
use crate::error::{Error, Result};

/// How long a DNS server gets to start listening.
pub(super) const SERVER_START_TIMEOUT: Duration = Duration::from_secs(5);

/// The dnsmasq command line serving the lab's names on `listen`.
pub fn dnsmasq_args(listen: &[IpAddr], pid_file: &Path) -> Vec<String> {
    let mut args = vec![
        "--keep-in-foreground".to_string(),
        // Why: ignore /etc/dnsmasq.conf and /etc/hosts of the machine; the
        // lab's server must answer the same everywhere.
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--bind-interfaces".into(),
        format!(
            "--listen-address={}",
            listen.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(",")
        ),
        format!("--port={DNS_PORT}"),
        // Why root: Debian's dnsmasq-base alone has no dnsmasq user to drop to.
        "--user=root".into(),
        "--group=root".into(),
        format!("--pid-file={}", pid_file.display()),
        "--log-facility=-".into(),
        format!("--local=/{}/", responder::LAB_ZONE),
    ];
    for (name, v4, v6) in responder::LAB_RECORDS {
        args.push(format!("--address=/{name}/{v4}"));
        if let Some(v6) = v6 {
            args.push(format!("--address=/{name}/{v6}"));
        }
    }
    args
}

/// Starts the endpoint's DNS server and waits until it listens on every
/// address of the lab's families.
pub(super) fn start_server(server: &mut DnsServerInfo, dir: &Path) -> Result<()> {
    let mut listen: Vec<SocketAddr> =
        server.addresses.iter().filter_map(|a| a.parse().ok()).collect();
    if listen.is_empty() {
        // A state file written before `addresses` existed.
        listen.push(SocketAddr::new(IpAddr::V4(endpoint_ip(server.endpoint)), DNS_PORT));
    }
    let pid = match server.kind {
        DnsServerKind::Embedded => {
            let mut args = vec!["lab".to_string(), "responder".into()];
            for addr in &listen {
                args.extend(["--listen".to_string(), addr.to_string()]);
            }
            args.extend([
                "--delay-ms".into(),
                server.delay_ms.to_string(),
                "--drop-rate".into(),
                server.drop_rate.to_string(),
                "--drop-aaaa-rate".into(),
                server.drop_aaaa_rate.to_string(),
            ]);
            if let Some(rcode) = &server.rcode {
                args.extend(["--rcode".to_string(), rcode.to_lowercase()]);
            }
            system::spawn_in_netns(&server.namespace, &exe_path()?, &args, &server.log)?
        }
        DnsServerKind::Dnsmasq => {
            let pid_file = dir.join(format!("dns{}.dnsmasq.pid", server.endpoint));
            let ips: Vec<IpAddr> = listen.iter().map(|a| a.ip()).collect();
            let args = dnsmasq_args(&ips, &pid_file);
            let program = system::find_in_path("dnsmasq").ok_or_else(|| {
                Error::Runtime("`dnsmasq` not found in PATH: install dnsmasq-base".into())
            })?;
            system::spawn_in_netns(&server.namespace, &program, &args, &server.log)?
        }
    };
    server.pid = Some(pid);
    let deadline = std::time::Instant::now() + SERVER_START_TIMEOUT;
    for addr in &listen {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if !system::wait_listening(&server.namespace, *addr, pid, left)? {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            system::stop(pid);
            return Err(Error::Runtime(format!(
                "the {} DNS server in {} did not start listening on {addr} within {}s; its log ({}) ends with: {}",
                server.kind.as_str(),
                server.namespace,
                SERVER_START_TIMEOUT.as_secs(),
                server.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
    }
    server.alive = true;
    Ok(())
}

/// Stops endpoint `n`'s server, deletes its namespace and blackholes its
/// address on the node (a silent drop, like a pod that vanished).
pub(super) fn remove_endpoint_pod(info: &mut LabInfo, n: u8) -> Result<()> {
    let node = info.namespaces.node.clone();
    let Some(server) = info.servers.iter_mut().find(|s| s.endpoint == n) else {
        return Err(Error::Usage(format!("--endpoint {n}: no such endpoint")));
    };
    if let Some(pid) = server.pid.take() {
        if system::alive_in_netns(pid, &server.namespace) {
            system::stop(pid);
        }
    }
    for pid in system::pids_in_netns(&server.namespace) {
        system::stop(pid);
    }
    system::ip(&["netns", "del", &server.namespace])?;
    for cip in info.cluster_ips.clone() {
        let (family, blackhole) = match endpoint_addr(n, cip) {
            IpAddr::V4(ip) => ("-4", format!("{ip}/32")),
            IpAddr::V6(ip) => ("-6", format!("{ip}/128")),
        };
        system::ip(&["-n", &node, family, "route", "add", "blackhole", &blackhole])?;
    }
    server.state = EndpointState::Removed;
    server.alive = false;
    Ok(())
}

/// Stops endpoint `n`'s server and leaves its namespace (the pod) as it is.
pub(super) fn stop_server(info: &mut LabInfo, n: u8) -> Result<()> {
    let Some(server) = info.servers.iter_mut().find(|s| s.endpoint == n) else {
        return Err(Error::Usage(format!("--endpoint {n}: no such endpoint")));
    };
    if let Some(pid) = server.pid.take() {
        if system::alive_in_netns(pid, &server.namespace) {
            system::stop(pid);
        }
    }
    server.alive = false;
    Ok(())
}

/// Restarts endpoint `n`'s server with changed options.
pub(super) fn restart_server(
    info: &mut LabInfo,
    n: u8,
    change: impl FnOnce(&mut DnsServerInfo),
) -> Result<()> {
    let dir = info.state_dir.clone();
    let Some(server) = info.servers.iter_mut().find(|s| s.endpoint == n) else {
        return Err(Error::Usage(format!("--endpoint {n}: no such endpoint")));
    };
    if let Some(pid) = server.pid.take() {
        if system::alive_in_netns(pid, &server.namespace) {
            system::stop(pid);
        }
    }
    change(server);
    start_server(server, &dir)
}

#[cfg(test)]
mod tests {
    use super::super::endpoint_ip6;
    use super::*;

    #[test]
    fn dnsmasq_listens_on_each_address_and_serves_the_lab_names() {
        let args = dnsmasq_args(&[endpoint_ip(1).into()], Path::new("/tmp/x.pid"));
        assert!(args.contains(&"--listen-address=198.18.2.2".to_string()));
        let both = dnsmasq_args(&[endpoint_ip(1).into(), endpoint_ip6(1).into()], Path::new("/x"));
        assert!(both.contains(&"--listen-address=198.18.2.2,2001:db8:2::2".to_string()));
        assert!(args
            .contains(&"--address=/kubernetes.default.svc.cluster.local/198.19.0.1".to_string()));
    }
}
