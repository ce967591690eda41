//! Property-based tests (proptest) of everything that reads text or packets
//! from outside: kube-proxy rule listings (iptables-save, nft list),
//! resolv.conf, and DNS answer matching. Each parser never panics on any
//! input, and where a writer exists the parser reads back what it wrote.
//! No root, no network.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ctdiag::dns::resolv::ResolvConf;
use ctdiag::dns::wire::{classify, QueryType, SentQuery, Verdict};
use ctdiag::lab::rules::ServiceRules;
use ctdiag::service::{api, iptables, ipvs, nftables, Parsed, Protocol, ProxyMode, Service};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::Name;
use proptest::prelude::*;
use proptest::sample::select;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kube-proxy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Text made of pieces of the format itself (the inputs most likely to
/// reach deep into a parser), or of any characters.
fn soup(pieces: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(select(pieces), 0..80).prop_map(|p| p.concat()),
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

const IPTABLES_PIECES: &[&str] = &[
    "-A ",
    "KUBE-SERVICES ",
    "KUBE-SEP-ABC ",
    "KUBE-SVC-X ",
    "-j ",
    "DNAT ",
    "REJECT ",
    "-m ",
    "comment ",
    "--comment ",
    "\"",
    "\\",
    "!",
    " ",
    "-d ",
    "198.19.0.10/32 ",
    "2001:db8::a/128 ",
    "--to-destination ",
    "198.18.2.2:53 ",
    "[::1]:53 ",
    "*nat\n",
    "*filter\n",
    "COMMIT\n",
    "\n",
    "a/b:c cluster IP",
    "kube-system/kube-dns:dns -> 198.18.2.2:53",
    " has no endpoints",
    "--dport ",
    "53 ",
    "-p ",
    "udp ",
    "tcp ",
    "statistic ",
    "--probability 0.5 ",
    ":KUBE-X - [0:0]\n",
];

const NFT_PIECES: &[&str] = &[
    "table ip kube-proxy {\n",
    "chain ",
    "map service-ips {\n",
    "elements = { ",
    "}",
    "{",
    "\n",
    "goto ",
    "service-A-a/b/udp/d",
    "endpoint-B-a/b/udp/d__198.18.2.2/53",
    ", ",
    "198.19.0.10",
    " . ",
    "udp",
    "tcp",
    "53",
    ":",
    "dnat ",
    "ip ",
    "to ",
    "198.18.2.2:53",
    "[::1]:53 ",
    "numgen ",
    "random mod 2 ",
    "vmap ",
    "0 : ",
    "comment \"x/y:z\" ",
    "no-endpoint-services",
    "ip6 ",
    "meta l4proto ",
    "th dport ",
    "type ipv4_addr . inet_proto . inet_service : verdict\n",
];

/// Every line of `text` but one.
fn without_line(text: &str, index: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let skip = index % lines.len().max(1);
    lines.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, l)| format!("{l}\n")).collect()
}

/// What identifies a Service port, to compare parses.
fn keys(parsed: &Parsed) -> BTreeSet<(String, String, String, Protocol, u16)> {
    parsed
        .services
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone(), s.port_name.clone(), s.protocol, s.port))
        .collect()
}

/// A Kubernetes name: a DNS label.
fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}[a-z0-9]"
}

/// A Service the lab's rule writer can write: one ClusterIP of either
/// family, 1-3 named ports of distinct names, 1-4 endpoints of that family.
fn service_rules() -> impl Strategy<Value = ServiceRules> {
    (
        label(),
        label(),
        any::<[u8; 2]>(),
        prop::collection::btree_map(label(), (select(&["udp", "tcp"][..]), 1u16..), 1..4),
        prop::collection::btree_set((1u8..=254, 1u8..=254), 1..5),
        any::<bool>(),
    )
        .prop_map(|(namespace, name, ip, ports, endpoints, ipv6)| {
            let target = 5353;
            let (cluster_ip, cluster_cidr) = if ipv6 {
                let ip =
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, u16::from(ip[0]), u16::from(ip[1]));
                (IpAddr::V6(ip), "2001:db8::/40")
            } else {
                (IpAddr::V4(Ipv4Addr::new(198, 19, ip[0], ip[1])), "198.18.0.0/16")
            };
            let endpoint = |(a, b): (u8, u8)| -> SocketAddr {
                let ip = if ipv6 {
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, u16::from(a), 0, 0, 0, u16::from(b), 2))
                } else {
                    IpAddr::V4(Ipv4Addr::new(198, 18, a, b))
                };
                SocketAddr::new(ip, target)
            };
            ServiceRules {
                service: format!("{namespace}/{name}"),
                cluster_ip,
                ports: ports.into_iter().map(|(n, (p, port))| (n, p.to_string(), port)).collect(),
                endpoints: endpoints.into_iter().map(endpoint).collect(),
                cluster_cidr: cluster_cidr.into(),
                reject_without_endpoints: true,
            }
        })
}

const IPVS_PIECES: &[&str] = &[
    "TCP  ",
    "UDP  ",
    "SCTP ",
    "FWM  ",
    "  -> ",
    "0A60000A:0035 ",
    "10.96.0.10:53 ",
    "[2001:0db8:0000:0000:0000:0000:0000:000a]:0035 ",
    "[::1]:53 ",
    "rr ",
    "Masq    ",
    "1      ",
    "0          ",
    "-1 ",
    "persistent 10800 FFFFFFFF",
    "\n",
    ":",
    "[",
    "]",
    "IP Virtual Server version 1.2.1 (size=4096)\n",
];

const API_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"items\"",
    "\"kind\"",
    "\"EndpointSlice\"",
    "\"endpoints\"",
    "\"addresses\"",
    "\"conditions\"",
    "\"ready\"",
    "\"ports\"",
    "\"port\"",
    "\"name\"",
    "\"protocol\"",
    "\"UDP\"",
    "53",
    "70000",
    "\"198.18.2.2\"",
    "\"2001:db8::5\"",
    "null",
    "true",
    "false",
    "\"metadata\"",
    "\"namespace\"",
    "\"labels\"",
    "\"kubernetes.io/service-name\"",
    "\"addressType\"",
    "\"IPv4\"",
    "\"IPv6\"",
    "\"FQDN\"",
];

proptest! {
    #[test]
    fn iptables_parser_never_panics(text in soup(IPTABLES_PIECES)) {
        let _ = iptables::parse(&text);
    }

    #[test]
    fn nftables_parser_never_panics(text in soup(NFT_PIECES)) {
        let _ = nftables::parse(&text);
    }

    #[test]
    fn ipvs_parser_never_panics(text in soup(IPVS_PIECES)) {
        let table = ipvs::parse(&text);
        // Every real server belongs to a virtual server that was read.
        prop_assert!(table.virtual_servers.iter().all(|vs| vs.real_servers.len() <= text.matches("->").count()));
    }

    /// Garbled EndpointSlice listings are an error or skipped objects,
    /// never a panic.
    #[test]
    fn endpointslice_parser_never_panics(text in soup(API_PIECES)) {
        let _ = api::parse(&text, "property");
    }

    /// A real listing with any one line gone still parses, and finds no
    /// Service port that was not in the whole listing.
    #[test]
    fn a_line_missing_from_a_real_listing_invents_nothing(index in any::<usize>()) {
        for (file, parse) in [
            ("eks-1.10-hello.iptables", iptables::parse as fn(&str) -> Parsed),
            ("synthetic-1.28.iptables", iptables::parse),
            ("synthetic-1.33.nft", nftables::parse),
        ] {
            let text = fixture(file);
            let whole = keys(&parse(&text));
            let cut = keys(&parse(&without_line(&text, index)));
            prop_assert!(cut.is_subset(&whole), "{file} without line {index}: {cut:?} vs {whole:?}");
        }
    }

    /// What the lab's writer gives `iptables-restore` (the format
    /// `iptables-save` prints) reads back as the same Service ports.
    #[test]
    fn iptables_rules_read_back_as_written(rules in service_rules()) {
        let parsed = iptables::parse(&rules.iptables_restore_input());
        let (namespace, name) = rules.service.split_once('/').unwrap();
        let mut endpoints: Vec<SocketAddr> = rules.endpoints.clone();
        endpoints.sort();
        let mut expected: Vec<Service> = rules
            .ports
            .iter()
            .map(|(port_name, protocol, port)| Service {
                namespace: namespace.to_string(),
                name: name.to_string(),
                port_name: port_name.clone(),
                protocol: Protocol::parse(protocol).unwrap(),
                cluster_ips: vec![rules.cluster_ip],
                port: *port,
                endpoints: endpoints.clone(),
                proxy_mode: ProxyMode::Iptables,
            })
            .collect();
        expected.sort_by(|a, b| {
            (&a.namespace, &a.name, &a.port_name, a.protocol)
                .cmp(&(&b.namespace, &b.name, &b.port_name, b.protocol))
        });
        prop_assert_eq!(&parsed.services, &expected);
        prop_assert!(parsed.skipped.is_empty(), "{:?}", parsed.skipped);
    }

    #[test]
    fn resolv_conf_never_panics(text in soup(&[
        "nameserver ", "198.18.0.1", "2001:db8::1", "fe80::1%eth0", "options ", "timeout:",
        "attempts:", "ndots:5 ", "99999999999", "0", "7", "#", ";", "\n", " ", "\t", "search ",
    ])) {
        let conf = ResolvConf::parse(&text);
        prop_assert!((1..=30).contains(&conf.timeout_s));
        prop_assert!((1..=5).contains(&conf.attempts));
    }

    /// Nameservers come back in order, comments and other lines are
    /// ignored, and the last `timeout:`/`attempts:` wins within glibc's
    /// bounds.
    #[test]
    fn resolv_conf_reads_back_what_was_written(
        servers in prop::collection::vec(
            prop_oneof![
                any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
                any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s))),
            ],
            0..5,
        ),
        timeouts in prop::collection::vec(0u32..100, 0..3),
        attempts in prop::collection::vec(0u32..20, 0..3),
        noise in prop::collection::vec(select(&[
            "search default.svc.cluster.local svc.cluster.local", "# nameserver 198.18.9.9",
            "; comment", "", "domain cluster.local", "nameserver not-an-address",
        ][..]), 0..4),
    ) {
        let mut text = String::new();
        for (i, server) in servers.iter().enumerate() {
            text.push_str(noise.get(i).copied().unwrap_or(""));
            text.push_str(&format!("\nnameserver {server}\n"));
        }
        for t in &timeouts {
            text.push_str(&format!("options ndots:5 timeout:{t}\n"));
        }
        for a in &attempts {
            text.push_str(&format!("options attempts:{a} # trailing comment\n"));
        }
        let conf = ResolvConf::parse(&text);
        prop_assert_eq!(&conf.nameservers, &servers);
        prop_assert_eq!(conf.timeout_s, timeouts.last().map_or(5, |t| (*t).clamp(1, 30)));
        prop_assert_eq!(conf.attempts, attempts.last().map_or(2, |a| (*a).clamp(1, 5)));
    }
}

/// A query for a random name and type.
fn sent_query() -> impl Strategy<Value = SentQuery> {
    (any::<u16>(), prop::collection::vec(label(), 1..5), any::<bool>()).prop_map(
        |(id, labels, a)| SentQuery {
            id,
            name: Name::from_ascii(format!("{}.", labels.join("."))).unwrap(),
            qtype: if a { QueryType::A } else { QueryType::AAAA },
        },
    )
}

/// The response a server would send to `query`, with the given changes.
fn response(query: &SentQuery, id: u16, name: &Name, tc: bool, rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.truncation = tc;
    m.metadata.response_code = rcode;
    m.add_query(Query::query(name.clone(), query.qtype.record_type()));
    m.to_vec().unwrap()
}

fn server() -> SocketAddr {
    "198.18.2.2:53".parse().unwrap()
}

proptest! {
    #[test]
    fn classify_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        query in sent_query(),
        from_server in any::<bool>(),
    ) {
        let source = if from_server { server() } else { "198.18.3.2:53".parse().unwrap() };
        let _ = classify(&bytes, source, server(), &[&query]);
    }

    /// The server's answer to a query is that query's answer, whatever its
    /// rcode; changing the source, the ID, the question or setting TC
    /// makes it the matching stray kind; any cut makes it malformed.
    #[test]
    fn classify_takes_only_the_exact_answer(
        a in sent_query(),
        b in sent_query(),
        rcode in select(&[ResponseCode::NoError, ResponseCode::NXDomain, ResponseCode::ServFail, ResponseCode::Refused][..]),
        cut in any::<prop::sample::Index>(),
    ) {
        prop_assume!(a.id != b.id);
        let queries = [&a, &b];
        let answer = response(&b, b.id, &b.name, false, rcode);
        prop_assert_eq!(classify(&answer, server(), server(), &queries), Verdict::Answer { index: 1, rcode });
        // An IPv4-mapped IPv6 source is the same server.
        let mapped: SocketAddr = "[::ffff:198.18.2.2]:53".parse().unwrap();
        prop_assert_eq!(classify(&answer, mapped, server(), &queries), Verdict::Answer { index: 1, rcode });
        let elsewhere: SocketAddr = "198.18.2.2:54".parse().unwrap();
        prop_assert_eq!(classify(&answer, elsewhere, server(), &queries), Verdict::WrongSource);
        let mut other_id = b.id.wrapping_add(1);
        while other_id == a.id {
            other_id = other_id.wrapping_add(1);
        }
        let wrong_id = response(&b, other_id, &b.name, false, rcode);
        prop_assert_eq!(classify(&wrong_id, server(), server(), &queries), Verdict::WrongId);
        let other_name = Name::from_ascii(format!("x{}", b.name)).unwrap();
        let wrong_question = response(&b, b.id, &other_name, false, rcode);
        prop_assert_eq!(classify(&wrong_question, server(), server(), &queries), Verdict::WrongQuestion);
        let truncated = response(&b, b.id, &b.name, true, rcode);
        prop_assert_eq!(classify(&truncated, server(), server(), &queries), Verdict::Truncated { index: 1 });
        let short = &answer[..cut.index(answer.len())];
        prop_assert_eq!(classify(short, server(), server(), &queries), Verdict::Malformed);
        // The query itself (not a response) is never an answer.
        let query_bytes = b.encode().unwrap();
        prop_assert_eq!(classify(&query_bytes, server(), server(), &queries), Verdict::Malformed);
    }
}
