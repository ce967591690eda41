//! Packet matching and accounting of one lookup, and merging of results.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::lookup::{account, Lookup, PacketEffect, QuerySlot, QueryState};
use super::*;
use crate::dns::wire::{parse_name, QueryType, SentQuery};
use hickory_proto::op::{Message, MessageType, OpCode, Query};

const SERVER: &str = "127.0.0.1:53";
const FIVE_S: Duration = Duration::from_secs(5);

fn lookup() -> Lookup {
    let name = parse_name("kubernetes.default.svc.cluster.local").unwrap();
    let now = Instant::now();
    let slots = [(7u16, QueryType::A), (9u16, QueryType::AAAA)].map(|(id, qtype)| {
        let sent = SentQuery { id, name: name.clone(), qtype };
        let bytes = sent.encode().unwrap();
        QuerySlot { sent, bytes, state: QueryState::Pending { sent_at: now } }
    });
    Lookup::new(now, slots)
}

fn answer(id: u16, qtype: QueryType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.add_query(Query::query(
        Name::from_ascii("kubernetes.default.svc.cluster.local.").unwrap(),
        qtype.record_type(),
    ));
    m.to_vec().unwrap()
}

#[test]
fn duplicate_answer_counted_apart() {
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut l = lookup();
    let mut r = EngineResult::default();
    let now = Instant::now();
    let packet = answer(7, QueryType::A);
    assert_eq!(l.on_packet(&packet, server, server, now, &mut r), PacketEffect::Answered);
    assert_eq!(l.on_packet(&packet, server, server, now, &mut r), PacketEffect::Stray);
    assert_eq!(r.stray.duplicate, 1);
    assert_eq!(r.by_type[0].answered, 1);
    assert!(!l.finished());
    let packet = answer(9, QueryType::AAAA);
    assert_eq!(l.on_packet(&packet, server, server, now, &mut r), PacketEffect::Answered);
    assert!(l.finished());
    assert_eq!(r.rcodes.get("NOERROR"), Some(&2));
}

#[test]
fn late_answer_after_timeout_is_not_an_answer() {
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut l = lookup();
    let mut r = EngineResult::default();
    let later = Instant::now() + Duration::from_secs(10);
    l.expire(later, Duration::from_secs(1));
    assert!(l.finished());
    let packet = answer(9, QueryType::AAAA);
    assert_eq!(l.on_packet(&packet, server, server, later, &mut r), PacketEffect::Stray);
    assert_eq!(r.stray.late, 1);
    account(&l, FIVE_S, FIVE_S, &mut r);
    assert_eq!((r.both_lost_lookups, r.outcomes.timed_out, r.lost()), (1, 2, 2));
}

#[test]
fn stray_kinds_do_not_answer() {
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut l = lookup();
    let mut r = EngineResult::default();
    let now = Instant::now();
    let other: SocketAddr = "127.0.0.2:53".parse().unwrap();
    l.on_packet(&answer(7, QueryType::A), other, server, now, &mut r);
    l.on_packet(&answer(8, QueryType::A), server, server, now, &mut r);
    l.on_packet(&answer(7, QueryType::AAAA), server, server, now, &mut r);
    l.on_packet(&answer(7, QueryType::A)[..10], server, server, now, &mut r);
    let expected = StrayCounts {
        wrong_source: 1,
        wrong_id: 1,
        wrong_question: 1,
        malformed: 1,
        ..StrayCounts::default()
    };
    assert_eq!(r.stray, expected);
    assert_eq!(r.answered(), 0);
    assert!(!l.finished());
}

#[test]
fn answered_lookups_go_to_the_histogram_and_slow_ones_are_counted_exactly() {
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut r = EngineResult::default();
    let slow_after = Duration::from_millis(300);
    for (a_ms, aaaa_ms) in [(1, 2), (299, 299), (10, 300), (20, 500)] {
        let mut l = lookup();
        let a = l.started + Duration::from_millis(a_ms);
        let aaaa = l.started + Duration::from_millis(aaaa_ms);
        l.on_packet(&answer(7, QueryType::A), server, server, a, &mut r);
        l.on_packet(&answer(9, QueryType::AAAA), server, server, aaaa, &mut r);
        assert!(l.finished());
        account(&l, slow_after, Duration::from_millis(400), &mut r);
    }
    assert_eq!(r.latency.len(), 4);
    assert_eq!(r.slow_lookups, 2, "300 ms and 500 ms are at or above 300 ms");
    assert_eq!(r.beyond_resolver_timeout, 1, "500 ms only is at or above 400 ms");
    assert_eq!(r.latency.max_us(), Some(500_000), "the last answer ends a lookup");
    assert_eq!(r.latency.min_us(), Some(2_000));
}

#[test]
fn merged_results_add_up() {
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut answered = EngineResult::default();
    let mut l = lookup();
    let at = l.started + Duration::from_millis(3);
    l.on_packet(&answer(7, QueryType::A), server, server, at, &mut answered);
    l.on_packet(&answer(9, QueryType::AAAA), server, server, at, &mut answered);
    account(&l, FIVE_S, FIVE_S, &mut answered);
    answered.by_type = [TypeCounts { sent: 1, answered: 1, lost: 0 }; 2];
    answered.elapsed = Duration::from_secs(1);
    let mut lost = EngineResult::default();
    let mut l = lookup();
    l.expire(Instant::now() + Duration::from_secs(10), Duration::from_secs(1));
    l.on_packet(&answer(7, QueryType::A), server, server, Instant::now(), &mut lost);
    account(&l, FIVE_S, FIVE_S, &mut lost);
    lost.by_type[0].sent = 1;
    lost.by_type[1].sent = 1;
    lost.elapsed = Duration::from_secs(2);
    lost.sockets.lingering_closed_early = 4;
    let mut total = answered.clone();
    total.merge(&lost);
    assert_eq!(total.lookups, 2);
    assert_eq!((total.queries_sent(), total.answered(), total.lost()), (4, 2, 2));
    assert_eq!((total.both_lost_lookups, total.outcomes.timed_out, total.stray.late), (1, 2, 1));
    assert_eq!(total.latency.len(), 1);
    assert_eq!(total.rcodes.get("NOERROR"), Some(&2));
    assert_eq!(total.elapsed, Duration::from_secs(3));
    assert_eq!(total.sockets.lingering_closed_early, 4);
}

#[test]
fn one_lost_lookup_is_the_race_signature() {
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut l = lookup();
    let mut r = EngineResult::default();
    let now = Instant::now();
    l.on_packet(&answer(7, QueryType::A), server, server, now, &mut r);
    l.expire(now + Duration::from_secs(3), Duration::from_secs(2));
    assert!(l.finished());
    account(&l, FIVE_S, FIVE_S, &mut r);
    assert_eq!(r.one_lost_lookups, 1);
    assert_eq!(r.by_type[1].lost, 1);
    assert_eq!(r.by_type[0].lost, 0);
}

#[test]
fn each_errno_is_one_outcome_by_where_it_surfaced() {
    use super::lookup::Failure::*;
    use super::sockets::{failure_of_errno, ErrorSource::*};
    let cases = [
        // ICMP port unreachable, whichever call reports it.
        (Some(libc::ECONNREFUSED), Network, PortUnreachable),
        (Some(libc::ECONNREFUSED), Local, PortUnreachable),
        // connect()/send() refused at once: no route from this namespace.
        (Some(libc::ENETUNREACH), Local, NoRoute { errno: libc::ENETUNREACH }),
        (Some(libc::EHOSTUNREACH), Local, NoRoute { errno: libc::EHOSTUNREACH }),
        // The same errnos from an ICMP error of the network.
        (Some(libc::ENETUNREACH), Network, Unreachable),
        (Some(libc::EHOSTUNREACH), Network, Unreachable),
        (Some(libc::EHOSTDOWN), Network, Unreachable),
        (Some(libc::EACCES), Network, Unreachable),
        (Some(libc::ENOPROTOOPT), Network, Unreachable),
        // Local refusals other than routing.
        (Some(libc::EPERM), Local, SendFailed),
        (Some(libc::ENOBUFS), Local, SendFailed),
        (Some(libc::EINVAL), Local, SendFailed),
        (Some(libc::ECONNRESET), Network, SendFailed),
        (None, Local, SendFailed),
    ];
    for (errno, source, expected) in cases {
        assert_eq!(failure_of_errno(errno, source), expected, "{errno:?} {source:?}");
    }
}

#[test]
fn every_query_is_counted_in_exactly_one_outcome() {
    use super::lookup::Failure;
    let mut r = EngineResult::default();
    let server: SocketAddr = SERVER.parse().unwrap();
    let failures = [
        Failure::TimedOut,
        Failure::PortUnreachable,
        Failure::Unreachable,
        Failure::NoRoute { errno: libc::ENETUNREACH },
        Failure::SendFailed,
    ];
    for failure in failures {
        let mut l = lookup();
        l.on_packet(&answer(7, QueryType::A), server, server, Instant::now(), &mut r);
        l.queries[1].state = QueryState::Failed(failure);
        account(&l, FIVE_S, FIVE_S, &mut r);
    }
    let o = r.outcomes;
    assert_eq!(
        (o.answered, o.timed_out, o.port_unreachable, o.unreachable, o.no_route, o.send_failed),
        (5, 1, 1, 1, 1, 1)
    );
    assert_eq!(o.errors(), 4);
    assert_eq!(r.no_route_errno, Some(libc::ENETUNREACH));
    assert_eq!((r.by_type[0].lost, r.by_type[1].lost), (0, 5));
    let mut twice = r.clone();
    twice.merge(&r);
    assert_eq!(twice.outcomes.no_route, 2);
    assert_eq!(twice.no_route_errno, Some(libc::ENETUNREACH));
}

/// Runs `count` lookups to `server` in `mode` inside namespace `ns`.
fn run_in_namespace(ns: &str, server: &str, mode: Mode, count: u64) -> EngineResult {
    let config = EngineConfig {
        server: server.parse().unwrap(),
        names: vec![parse_name("kubernetes.default.svc.cluster.local").unwrap()],
        mode,
        count: Some(count),
        duration: None,
        rate: 100.0,
        concurrency: 4,
        timeout: Duration::from_millis(500),
        linger: Duration::ZERO,
        max_run: Duration::from_secs(10),
        slow_after: FIVE_S,
        resolver_timeout: FIVE_S,
        retry_after: None,
    };
    let netns = crate::netns::Netns::open(&format!("/run/netns/{ns}")).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    netns.run(|| run(&config, &stop, &|_| {})).unwrap().unwrap()
}

#[test]
fn the_kernel_tells_no_route_port_and_host_unreachable_and_a_local_firewall_apart() {
    if !crate::testutil::lab_allowed(
        "the_kernel_tells_no_route_port_and_host_unreachable_and_a_local_firewall_apart",
    ) {
        return;
    }
    // A namespace with loopback only: no route to 198.18.0.53 at all;
    // nothing listens on 127.0.0.1:5353; OUTPUT drops what goes to
    // 127.0.0.2 (the local firewall's EPERM).
    let ns = crate::testutil::NamespaceGuard::create("outcomes");
    ns.exec(&["iptables", "-A", "OUTPUT", "-d", "127.0.0.2", "-j", "DROP"]);
    for mode in [Mode::Parallel, Mode::Musl] {
        let r = run_in_namespace(&ns.name, "198.18.0.53:53", mode, 5);
        assert_eq!(r.outcomes.no_route, 10, "{mode:?}: {:?}", r.outcomes);
        assert_eq!(r.no_route_errno, Some(libc::ENETUNREACH), "{mode:?}");
        assert_eq!(r.lost(), 10);
    }
    let r = run_in_namespace(&ns.name, "127.0.0.1:5353", Mode::Parallel, 5);
    assert_eq!(r.outcomes.port_unreachable, 10, "{:?}", r.outcomes);
    let r = run_in_namespace(&ns.name, "127.0.0.2:53", Mode::Parallel, 5);
    assert_eq!(r.outcomes.send_failed, 10, "{:?}", r.outcomes);
    assert_eq!(r.outcomes.timed_out + r.outcomes.no_route, 0, "{:?}", r.outcomes);
    // ICMP host unreachable from "the network": 198.18.0.0/24 is local on
    // lo, and INPUT rejects 198.18.0.99 with a host-unreachable error, which
    // reaches the socket after its send succeeded.
    ns.exec(&["ip", "addr", "add", "198.18.0.1/24", "dev", "lo"]);
    ns.exec(&[
        "iptables",
        "-I",
        "INPUT",
        "1",
        "-d",
        "198.18.0.99",
        "-p",
        "udp",
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-host-unreachable",
    ]);
    for mode in [Mode::Parallel, Mode::Sequential] {
        let r = run_in_namespace(&ns.name, "198.18.0.99:53", mode, 5);
        assert_eq!(r.outcomes.unreachable, 10, "{mode:?}: {:?}", r.outcomes);
    }
}
