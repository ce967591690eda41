//! Root-only tests against the running kernel, in a fresh network namespace
//! of their own (not connected to anything; traffic on 127.0.0.1 only).
//! Outside CI they skip (recorded, see `testutil::lab_allowed`) when not
//! root; whenever `CI` is set and not `false`/`0` they fail instead.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};

use super::entry::{decode_entry, delete_request, DumpFilter, Entry, AF_INET, IPPROTO_UDP};
use super::socket::{DumpEvent, DUMP_DEADLINE};
use super::stats::{read_stats_netlink, read_stats_on, CTA_STATS_ERROR, CTA_STATS_INVALID};
use super::{read_stats, read_stats_procfs, AckOutcome, ConntrackError, CtnetlinkSocket, Source};
use crate::netns::Netns;
use crate::testutil::kernel::{parse_conntrack_s, send_raw_tcp, tcp_syn_fin};
use crate::testutil::{lab_allowed, NamespaceGuard, COMMAND_TIMEOUT};

/// Sends UDP on 127.0.0.1 from `flows` fresh sockets (3 datagrams each) and
/// `invalid` TCP segments with SYN|FIN (an invalid flag combination, counted
/// in `invalid`), from the calling thread's namespace. Returns the UDP
/// receiver's port.
fn send_traffic(flows: usize, invalid: usize) -> u16 {
    let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let target = receiver.local_addr().unwrap();
    for _ in 0..flows {
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        for _ in 0..3 {
            sender.send_to(b"ctdiag", target).unwrap();
        }
    }
    let segments: Vec<[u8; 20]> = (0..invalid)
        .map(|index| {
            tcp_syn_fin(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, 40_000 + index as u16, 9)
        })
        .collect();
    send_raw_tcp(Ipv4Addr::LOCALHOST, &segments).unwrap();
    target.port()
}

/// Clears CAP_NET_ADMIN from the calling thread's effective set (the
/// capability sets are per thread).
fn drop_net_admin_on_this_thread() {
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data structs, as
    // capget(2) documents; pid 0 is the calling thread.
    let got = unsafe {
        libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr())
    };
    assert_eq!(got, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_NET_ADMIN);
    let set =
        unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
    assert_eq!(set, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn netlink_and_procfs_match_conntrack_tools_in_a_fresh_namespace() {
    if !lab_allowed("netlink_and_procfs_match_conntrack_tools_in_a_fresh_namespace") {
        return;
    }
    let lab = NamespaceGuard::create("stats");
    let netns = Netns::open(&lab.name).unwrap();
    let flows = 7;
    let invalid = 5;
    netns.run(|| send_traffic(flows, invalid)).unwrap();

    let (netlink, procfs) = netns.run(|| (read_stats_netlink(), read_stats_procfs())).unwrap();
    let netlink = netlink.unwrap();
    let procfs = procfs.unwrap();
    let tools = parse_conntrack_s(&lab.exec(&["conntrack", "-S"])).unwrap();
    let tools_count: u64 = lab.exec(&["conntrack", "-C"]).trim().parse().unwrap();

    assert_eq!(netlink.source, Source::Netlink);
    assert!(netlink.notes.is_empty(), "{:?}", netlink.notes);
    // Field by field, CPU by CPU, both directions.
    let ours: BTreeMap<u64, BTreeMap<String, u64>> = netlink
        .cpus
        .iter()
        .map(|cpu| {
            (
                u64::from(cpu.cpu),
                cpu.counters.named().map(|(name, value)| (name.into_owned(), value)).collect(),
            )
        })
        .collect();
    assert_eq!(ours, tools);
    assert_eq!(netlink.entries, tools_count);
    // The traffic really went through conntrack here, so the comparison
    // above is not one of zeros: every UDP flow is an entry (timeout 30 s),
    // every SYN|FIN segment was counted invalid at least once.
    assert!(netlink.entries >= flows as u64, "entries {}", netlink.entries);
    assert!(netlink.total().get(CTA_STATS_INVALID).unwrap() >= invalid as u64);
    let max: u64 =
        lab.exec(&["cat", "/proc/sys/net/netfilter/nf_conntrack_max"]).trim().parse().unwrap();
    assert_eq!(netlink.max_entries, max);

    // procfs gives the same counters, CPU numbers, fill and limit.
    assert_eq!(procfs.source, Source::Procfs);
    assert_eq!(procfs.cpus, netlink.cpus);
    assert_eq!(procfs.entries, netlink.entries);
    assert_eq!(procfs.max_entries, netlink.max_entries);

    // The root namespace's numbers are not these (separate counters): the
    // namespace was really entered. Compare a counter this test drove.
    let root = read_stats_procfs().unwrap();
    assert_ne!(
        (root.entries, root.total().get(CTA_STATS_ERROR), root.total().get(CTA_STATS_INVALID)),
        (
            netlink.entries,
            netlink.total().get(CTA_STATS_ERROR),
            netlink.total().get(CTA_STATS_INVALID)
        ),
    );
}

#[test]
fn without_cap_net_admin_read_stats_falls_back_to_procfs() {
    if !lab_allowed("without_cap_net_admin_read_stats_falls_back_to_procfs") {
        return;
    }
    let lab = NamespaceGuard::create("nocap");
    let netns = Netns::open(&lab.name).unwrap();
    netns.run(|| send_traffic(3, 2)).unwrap();
    let privileged = netns.run(read_stats).unwrap().unwrap();
    assert_eq!(privileged.source, Source::Netlink);

    let (netlink, fallback) = netns
        .run(|| {
            drop_net_admin_on_this_thread();
            (read_stats_netlink(), read_stats())
        })
        .unwrap();
    let error = netlink.unwrap_err();
    assert!(matches!(error, ConntrackError::PermissionDenied { .. }), "{error:?}");
    let fallback = fallback.unwrap();
    assert_eq!(fallback.source, Source::Procfs);
    assert!(
        fallback.notes.iter().any(|note| note.contains("CAP_NET_ADMIN")),
        "{:?}",
        fallback.notes
    );
    assert_eq!(fallback.cpus, privileged.cpus);
    assert_eq!(fallback.entries, privileged.entries);
}

#[test]
fn delete_acknowledges_then_reports_already_gone() {
    if !lab_allowed("delete_acknowledges_then_reports_already_gone") {
        return;
    }
    let lab = NamespaceGuard::create("delete");
    let netns = Netns::open(&lab.name).unwrap();
    // One UDP flow from a known source port.
    let (source_port, destination_port) = netns
        .run(|| {
            let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            sender.send_to(b"ctdiag", receiver.local_addr().unwrap()).unwrap();
            (sender.local_addr().unwrap().port(), receiver.local_addr().unwrap().port())
        })
        .unwrap();
    let sport = source_port.to_string();
    let dport = destination_port.to_string();
    let listed = |lab: &NamespaceGuard| {
        let args = ["netns", "exec", &lab.name, "conntrack", "-L", "-p", "udp", "--sport", &sport];
        let mut args = args.to_vec();
        args.extend_from_slice(&["--dport", &dport]);
        // Exit 1 with no entries listed is not a failure here.
        crate::process::run_bounded("ip", &args, None, COMMAND_TIMEOUT)
            .map(|ran| ran.stdout_text().lines().count())
            .unwrap_or_else(|e| panic!("conntrack -L: {e}"))
    };
    assert_eq!(listed(&lab), 1);

    // The entry as the production dump decodes it, and the request the
    // flush sends for it (`delete_request`: reply tuple, zone and id), not
    // one built here: this is the request whose kernel answer is tested.
    let filter = DumpFilter {
        family: AF_INET,
        protocol: IPPROTO_UDP,
        dst: Some(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)),
        dst_port: Some(destination_port),
    };
    let (entries, first, second, stats) = netns
        .run(|| {
            let mut socket = CtnetlinkSocket::open().unwrap();
            let mut entries = Vec::new();
            socket
                .dump_each(
                    "IPCTNL_MSG_CT_GET",
                    filter.netfilter_family(),
                    &filter.request(),
                    DUMP_DEADLINE,
                    |event| {
                        match event {
                            DumpEvent::Restart { .. } => entries.clear(),
                            DumpEvent::Message(raw) => {
                                entries.push(decode_entry(raw.family, raw.attributes).unwrap())
                            }
                        }
                        Ok(())
                    },
                )
                .unwrap();
            let ours: Vec<Entry> =
                entries.into_iter().filter(|e| e.orig.src_port == source_port).collect();
            let request = || {
                ours.first().and_then(delete_request).expect("the flow's entry, with its CTA_ID")
            };
            let first =
                socket.request_ack("IPCTNL_MSG_CT_DELETE", filter.netfilter_family(), request());
            let second =
                socket.request_ack("IPCTNL_MSG_CT_DELETE", filter.netfilter_family(), request());
            // The same socket still works for a dump afterwards.
            (ours, first, second, read_stats_on(&mut socket))
        })
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].id.is_some(), "{entries:?}");
    assert_eq!(first.unwrap(), AckOutcome::Acknowledged);
    assert_eq!(second.unwrap(), AckOutcome::NotFound);
    assert_eq!(listed(&lab), 0);
    assert_eq!(stats.unwrap().entries, 0);
}
