//! What conntrack can see (issue 14, part 7): the A and AAAA queries of
//! one lookup, sent from one UDP socket as glibc and musl send them, share
//! one conntrack entry (same 5-tuple). Shown on the lab: a sender of the
//! test's own in the client pod's namespace, the kernel's `conntrack -L`
//! in the node's, and what `ctdiag stale` lists for it.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::conntrack::conntrack_list;
use common::kernel::dns_query;
use common::{json, lab_tools, stderr, TestLab};

/// Sends an A and an AAAA query from one socket inside the namespace
/// `netns` to `server`, and waits (at most 5 s) for both answers. Returns
/// the socket's port and the IDs of the answers received.
fn a_and_aaaa_from_one_socket(netns: &str, server: SocketAddr) -> (u16, Vec<u16>) {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        // Why a thread: setns(2) moves only the calling thread.
        let ns = std::fs::File::open(&path).expect("the client's namespace");
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let socket = UdpSocket::bind("0.0.0.0:0").expect("bind");
        let port = socket.local_addr().expect("local address").port();
        let name = "kubernetes.default.svc.cluster.local";
        socket.send_to(&dns_query(0x0a01, name, 1), server).expect("send A");
        socket.send_to(&dns_query(0x0a1c, name, 28), server).expect("send AAAA");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ids = Vec::new();
        let mut buffer = [0u8; 1500];
        while ids.len() < 2 && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            socket.set_read_timeout(Some(left.max(Duration::from_millis(10)))).expect("timeout");
            match socket.recv_from(&mut buffer) {
                Ok((n, from)) if n >= 2 && from == server => {
                    ids.push(u16::from_be_bytes([buffer[0], buffer[1]]));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (port, ids)
    })
    .join()
    .expect("the sender thread")
}

#[test]
fn a_and_aaaa_from_one_socket_share_one_conntrack_entry() {
    if !lab_tools() {
        return;
    }
    let lab = TestLab::up(&["--endpoints", "2"]);
    let node = lab.node_ns();
    let server: SocketAddr = format!("{}:53", lab.cluster_ip()).parse().expect("ClusterIP");
    let (port, mut ids) = a_and_aaaa_from_one_socket(&lab.client_ns(), server);
    ids.sort_unstable();
    assert_eq!(ids, [0x0a01, 0x0a1c], "both the A and the AAAA query were answered");

    // The kernel's view: one entry for the two queries, DNATed to one
    // endpoint (both answers came from it), with a reply seen.
    let port_text = port.to_string();
    let entries = conntrack_list(&node, &["--orig-port-src", &port_text]);
    assert_eq!(entries.len(), 1, "one entry for the A and the AAAA query: {entries:?}");
    let entry = &entries[0];
    assert_eq!((entry.dst.as_str(), entry.dport), ("198.19.0.10", 53));
    assert!(lab.endpoints().contains(&format!("{}:{}", entry.reply_src, entry.reply_sport)));
    assert!(!entry.unreplied, "{entry:?}");

    // What `stale` reads is that entry: one row for the lookup, not one
    // per query.
    let out = common::ctdiag(&["stale", "--netns", &node, "--all-entries", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    let src = format!("198.18.1.2:{port}");
    let rows: Vec<&serde_json::Value> = report["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["src"] == src.as_str())
        .collect();
    assert_eq!(rows.len(), 1, "{report:#}");
    assert_eq!(rows[0]["stale"], false);
}
