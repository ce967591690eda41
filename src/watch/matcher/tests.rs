//! One case per cause: the packets a node would see, built by hand from
//! the path each failure takes (the pod's query to the ClusterIP, its
//! DNATed copy to the endpoint, the endpoint's answer, the answer to the
//! pod after reverse NAT).

use super::*;

const CLUSTER: &str = "198.19.0.10:53";
const EP1: &str = "198.18.2.2:53";
const EP2: &str = "198.18.3.2:53";
const GONE: &str = "198.18.4.2:53";

fn sa(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn pkt(ms: u64, src: &str, dst: &str, id: u16, qtype: u16, response: bool) -> DnsPacket {
    DnsPacket {
        ts: Duration::from_millis(ms),
        src: sa(src),
        dst: sa(dst),
        transport: Transport::Udp,
        id,
        response,
        rcode: 0,
        qname: crate::watch::packet::name_hash(&[
            b"kubernetes",
            b"default",
            b"svc",
            b"cluster",
            b"local",
        ]),
        qtype,
    }
}

fn service() -> ServiceView {
    ServiceView {
        service_addrs: [sa(CLUSTER)].into(),
        endpoints: [sa(EP1), sa(EP2)].into(),
        unreachable: HashSet::new(),
    }
}

/// A conntrack table with one entry per client socket.
struct Table(HashMap<SocketAddr, SocketAddr>);

impl EntryLookup for Table {
    fn dnat_target(&mut self, client: SocketAddr, _asked: SocketAddr) -> Option<SocketAddr> {
        self.0.get(&client).copied()
    }
}

const C: &str = "198.18.1.2:40000";

/// The A query answered through EP1 (query, copy, endpoint answer,
/// delivered answer).
fn answered_a(id: u16) -> Vec<DnsPacket> {
    vec![
        pkt(0, C, CLUSTER, id, 1, false),
        pkt(1, C, EP1, id, 1, false),
        pkt(3, EP1, C, id, 1, true),
        pkt(4, CLUSTER, C, id, 1, true),
    ]
}

fn run(packets: Vec<DnsPacket>, table: &[(&str, &str)]) -> Vec<Decided> {
    run_with(service(), packets, table)
}

fn run_with(service: ServiceView, packets: Vec<DnsPacket>, table: &[(&str, &str)]) -> Vec<Decided> {
    let mut m = Matcher::new(Duration::from_millis(5000), service);
    let mut lookup = Table(table.iter().map(|(c, t)| (sa(c), sa(t))).collect());
    for p in packets {
        m.packet(p, &mut lookup);
    }
    m.advance(Duration::from_secs(60), &mut lookup);
    m.take_decided()
}

/// A case: its name, the packets, the conntrack table (client, DNAT
/// target), and the last unanswered query's (endpoint, cause).
type Case =
    (&'static str, Vec<DnsPacket>, Vec<(&'static str, &'static str)>, (&'static str, Cause));

#[test]
fn each_cause_from_the_packets_it_has() {
    // (case, packets, conntrack table, the AAAA query's expected outcome
    // as (endpoint, cause))
    let mut cases: Vec<Case> = Vec::new();
    // The AAAA copy left for EP1, which never answered it; A answered.
    let mut lost = answered_a(7);
    lost.extend([pkt(0, C, CLUSTER, 8, 28, false), pkt(1, C, EP1, 8, 28, false)]);
    cases.push(("one-type-lost", lost, vec![], (EP1, Cause::OneTypeLost)));
    // Both lost at EP1: the copies left, nothing came back.
    let silent = vec![
        pkt(0, C, CLUSTER, 7, 1, false),
        pkt(1, C, EP1, 7, 1, false),
        pkt(0, C, CLUSTER, 8, 28, false),
        pkt(1, C, EP1, 8, 28, false),
    ];
    cases.push(("endpoint-silent", silent, vec![], (EP1, Cause::EndpointSilent)));
    // No copy (the blackholed route drops it after DNAT): conntrack says EP1.
    let blackholed = vec![pkt(0, C, CLUSTER, 7, 1, false), pkt(0, C, CLUSTER, 8, 28, false)];
    cases.push((
        "endpoint-silent from conntrack",
        blackholed.clone(),
        vec![(C, EP1)],
        (EP1, Cause::EndpointSilent),
    ));
    // The entry DNATs to an address no longer an endpoint.
    cases.push(("stale-entry", blackholed.clone(), vec![(C, GONE)], (GONE, Cause::StaleEntry)));
    // Never translated: the entry's reply source is the ClusterIP itself.
    cases.push((
        "stale-entry never translated",
        blackholed.clone(),
        vec![(C, CLUSTER)],
        (CLUSTER, Cause::StaleEntry),
    ));
    // Nothing known of where it went.
    cases.push(("unknown", blackholed, vec![], (CLUSTER, Cause::Unknown)));
    // The A got through and was answered; the AAAA on the same socket never
    // left the node.
    let mut race = answered_a(7);
    race.push(pkt(0, C, CLUSTER, 8, 28, false));
    cases.push(("dropped-before-dnat", race, vec![(C, EP1)], (EP1, Cause::DroppedBeforeDnat)));
    // EP2 answered the AAAA; the answer never reached the pod.
    let mut undelivered = answered_a(7);
    undelivered.extend([
        pkt(0, C, CLUSTER, 8, 28, false),
        pkt(1, C, EP2, 8, 28, false),
        pkt(2, EP2, C, 8, 28, true),
    ]);
    cases.push(("answer-not-delivered", undelivered, vec![], (EP2, Cause::AnswerNotDelivered)));
    let mut produced = HashSet::new();
    for (name, packets, table, (endpoint, cause)) in cases {
        let decided = run(packets, &table);
        let aaaa: Vec<&Decided> =
            decided.iter().filter(|d| matches!(d.outcome, Outcome::Unanswered(_))).collect();
        let last = aaaa.last().unwrap_or_else(|| panic!("{name}: nothing unanswered"));
        assert_eq!(last.outcome, Outcome::Unanswered(cause), "{name}");
        assert_eq!(last.endpoint, sa(endpoint), "{name}");
        produced.insert(cause);
    }
    // Every cause has a case producing it.
    assert_eq!(produced, Cause::ALL.into_iter().collect());
}

/// An endpoint the node has no route to: a query DNATed there dies on the
/// node, no copy and no confirmed entry; the entry found for the socket is
/// its pair's (DNATed to the other endpoint, answered).
#[test]
fn unreachable_endpoint_is_blamed_for_a_query_that_never_left() {
    let mut view = service();
    view.unreachable.insert(sa(EP2));
    let mut packets = answered_a(7);
    packets.push(pkt(0, C, CLUSTER, 8, 28, false));
    let decided = run_with(view, packets, &[(C, EP1)]);
    let last = decided.last().unwrap();
    assert_eq!(last.outcome, Outcome::Unanswered(Cause::EndpointSilent));
    assert_eq!(last.endpoint, sa(EP2));
}

#[test]
fn answered_through_dnat_measures_latency_and_names_the_endpoint() {
    let decided = run(answered_a(7), &[]);
    assert_eq!(
        decided,
        vec![Decided {
            client: sa(C),
            endpoint: sa(EP1),
            outcome: Outcome::Answered { rcode: 0, latency: Duration::from_millis(4) }
        }]
    );
}

#[test]
fn a_query_sent_again_after_the_timeout_is_a_new_query() {
    let packets = vec![
        pkt(0, C, EP1, 7, 1, false),
        pkt(5001, C, EP1, 7, 1, false),
        pkt(5010, EP1, C, 7, 1, true),
    ];
    let decided = run(packets, &[]);
    assert_eq!(decided.len(), 2);
    assert_eq!(decided[0].outcome, Outcome::Unanswered(Cause::EndpointSilent));
    assert!(matches!(decided[1].outcome, Outcome::Answered { .. }));
}

#[test]
fn an_answer_to_no_query_seen_is_ignored() {
    let decided = run(vec![pkt(3, EP1, C, 7, 1, true)], &[]);
    assert!(decided.is_empty());
}

/// A closing watch takes no new query but decides the ones it has.
#[test]
fn closed_matcher_follows_only_the_queries_it_had() {
    let mut m = Matcher::new(Duration::from_millis(5000), service());
    let mut lookup = NoLookup;
    m.packet(pkt(0, C, EP1, 7, 1, false), &mut lookup);
    m.close();
    m.packet(pkt(1, C, EP1, 8, 1, false), &mut lookup);
    assert_eq!(m.pending(), 1);
    m.packet(pkt(2, EP1, C, 7, 1, true), &mut lookup);
    assert_eq!(m.pending(), 0);
    assert_eq!(m.take_decided().len(), 1);
}
