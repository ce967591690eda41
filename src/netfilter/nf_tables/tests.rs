//! The decoders on nf_tables replies captured from this kernel
//! ([`super::captures`]), and on broken and arbitrary bytes.

use std::net::SocketAddr;

use super::captures::*;
use super::*;
use crate::netfilter::{Expect, Progress, RawMessage, ReplyReader};
use crate::service::{Protocol, ProxyMode};

/// The messages of a captured reply, checked by the same reader the live
/// socket uses (sequence, port, NLMSG_DONE / NLMSG_ERROR).
fn messages(datagrams: &[&[u8]], sequence: u32, port: u32, expect: Expect) -> Vec<(u16, Vec<u8>)> {
    let mut reader = ReplyReader::new("capture", sequence, port, expect);
    let mut out = Vec::new();
    let mut progress = Progress::More;
    for datagram in datagrams {
        progress = reader
            .feed::<NetfilterError>(datagram, &mut |raw: RawMessage<'_>| {
                out.push((raw.message_type, raw.attributes.to_vec()));
                Ok(())
            })
            .unwrap();
    }
    assert_eq!(progress, Progress::Complete);
    assert!(!reader.interrupted);
    out
}

fn elements_of(datagrams: &[&[u8]], port: u32) -> Vec<NftElement> {
    let mut elements = Vec::new();
    for (kind, attributes) in messages(datagrams, 1_700_000_102, port, Expect::Done) {
        assert_eq!(kind, message_type(NFT_MSG_NEWSETELEM));
        decode_elements(&attributes, &mut elements).unwrap();
    }
    elements
}

fn rules_of(datagram: &[u8], port: u32) -> Vec<NftRule> {
    messages(&[datagram, &SETS_DONE_FOR_RULES(port)], 1_700_000_103, port, Expect::Done)
        .into_iter()
        .map(|(kind, attributes)| {
            assert_eq!(kind, message_type(NFT_MSG_NEWRULE));
            decode_rule(&attributes).unwrap()
        })
        .collect()
}

/// The rule dumps' NLMSG_DONE was captured too; it is the set dump's with
/// the rule dump's sequence number and port.
#[allow(non_snake_case)]
fn SETS_DONE_FOR_RULES(port: u32) -> Vec<u8> {
    let mut done = SETS_DONE.to_vec();
    done[8..12].copy_from_slice(&1_700_000_103u32.to_ne_bytes());
    done[12..16].copy_from_slice(&port.to_ne_bytes());
    done
}

#[test]
fn the_generation_reply_decodes_with_the_crate() {
    let replies = messages(&[&GEN_REPLY, &GEN_ACK], 1_700_000_100, PORT_1, Expect::Ack);
    assert_eq!(replies.len(), 1);
    let message = decode("gen", &GEN_REPLY).unwrap();
    let NfTablesMessage::NewGen(gen) = message else { panic!("{message:?}") };
    assert!(gen.attributes.contains(&GenAttribute::Id(3)), "{gen:?}");
}

#[test]
fn sets_decode_with_names_flags_and_lengths() {
    let sets: Vec<NftSet> =
        messages(&[&SETS_DATAGRAM, &SETS_DONE], 1_700_000_101, PORT_2, Expect::Done)
            .into_iter()
            .map(|(kind, _)| kind)
            .zip(split_messages(&SETS_DATAGRAM))
            .map(|(kind, bytes)| {
                assert_eq!(kind, message_type(NFT_MSG_NEWSET));
                let NfTablesMessage::NewSet(set) = decode("sets", bytes).unwrap() else { panic!() };
                set_from(&set).unwrap()
            })
            .collect();
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cluster-ips", "service-ips", "no-endpoint-services", "__map0"]);
    let service_ips = &sets[1];
    // ipv4_addr . inet_proto . inet_service, each padded to 4 bytes.
    assert_eq!((service_ips.key_len, service_ips.is_anonymous()), (12, false));
    assert!(sets[3].is_anonymous(), "{:?}", sets[3]);
    assert_eq!(sets[0].data_len, 0);
}

/// The messages of one datagram, as raw bytes.
fn split_messages(datagram: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= datagram.len() {
        let len = u32::from_ne_bytes(datagram[at..at + 4].try_into().unwrap()) as usize;
        out.push(&datagram[at..at + len]);
        at += (len + 3) & !3;
    }
    out
}

#[test]
fn service_ips_element_key_and_verdict() {
    let elements = elements_of(&[&SERVICE_IPS_DATAGRAM, &SERVICE_IPS_DONE], PORT_3);
    assert_eq!(elements.len(), 1);
    let element = &elements[0];
    assert_eq!(element.key, [198, 19, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0]);
    assert_eq!(
        element.data,
        Some(Data::Verdict(Verdict::Goto("service-AAAAAAAA-kube-system/kube-dns/udp/dns".into())))
    );
    assert_eq!((element.flags, element.comment.as_deref()), (0, None));
}

#[test]
fn element_comments_come_from_userdata() {
    let elements = elements_of(&[&NO_ENDPOINTS_DATAGRAM, &NO_ENDPOINTS_DONE], PORT_4);
    assert_eq!(elements.len(), 1);
    assert_eq!(elements[0].comment.as_deref(), Some("default/empty:http"));
    assert_eq!(elements[0].data, Some(Data::Verdict(Verdict::Goto("reject-chain".into()))));

    let cluster_ips = elements_of(&[&CLUSTER_IPS_DATAGRAM, &CLUSTER_IPS_DONE], PORT_5);
    assert_eq!(cluster_ips.len(), 1);
    assert_eq!(
        (cluster_ips[0].key.as_slice(), &cluster_ips[0].data),
        (&[198, 19, 0, 10][..], &None)
    );
}

#[test]
fn nftables_rules_decode_to_expressions() {
    let rules = rules_of(&NFT_RULES_DATAGRAM, PORT_7);
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].chain, "reject-chain");
    assert_eq!(rules[0].exprs, [Expr::Other("reject".into())]);
    let endpoint = &rules[1];
    assert_eq!(endpoint.chain, "endpoint-BBBBBBBB-kube-system/kube-dns/udp/dns__198.18.2.2/53");
    assert_eq!(
        endpoint.exprs,
        [
            Expr::Meta { key: NFT_META_L4PROTO, dreg: 1 },
            Expr::Cmp { sreg: 1, op: 0, data: vec![17] },
            Expr::Immediate { dreg: 1, data: Data::Value(vec![198, 18, 2, 2]) },
            Expr::Immediate { dreg: 2, data: Data::Value(vec![0, 53]) },
            Expr::Nat {
                kind: NFT_NAT_DNAT,
                family: 2,
                addr: Some((1, Some(1))),
                proto: Some((2, Some(2))),
                flags: 3,
            },
        ]
    );
    assert_eq!(
        rules[2].exprs,
        [
            Expr::Other("numgen".into()),
            Expr::Lookup { set: "__map0".into(), sreg: 1, dreg: Some(0), flags: 0 },
        ]
    );
    // The chain is found without decoding the rest.
    let raw = messages(
        &[&NFT_RULES_DATAGRAM, &SETS_DONE_FOR_RULES(PORT_7)],
        1_700_000_103,
        PORT_7,
        Expect::Done,
    );
    assert_eq!(raw_rule_chain(&raw[0].1), Some("reject-chain"));
}

#[test]
fn iptables_nft_rules_decode_to_compat_matches_and_targets() {
    let rules = rules_of(&NAT_RULES_DATAGRAM, PORT_8);
    let chains: Vec<&str> = rules.iter().map(|r| r.chain.as_str()).collect();
    assert_eq!(chains, ["KUBE-SERVICES", "KUBE-SVC-A", "KUBE-SEP-A"]);
    let names: Vec<String> = rules[0]
        .exprs
        .iter()
        .map(|e| match e {
            Expr::Match { name, .. } => format!("match {name}"),
            Expr::Other(name) => name.clone(),
            other => format!("{other:?}").split([' ', '{']).next().unwrap_or("").to_string(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "Meta",
            "Cmp",
            "Payload",
            "Cmp",
            "match comment",
            "Payload",
            "Cmp",
            "counter",
            "Immediate"
        ]
    );
    let Expr::Target { name, revision, info } = &rules[2].exprs[rules[2].exprs.len() - 1] else {
        panic!("{:?}", rules[2].exprs)
    };
    assert_eq!((name.as_str(), *revision, info.len()), ("DNAT", 2, 48));
}

#[test]
fn the_chain_reply_and_enoent() {
    let found = messages(&[&CHAIN_REPLY, &CHAIN_ACK], 1_700_000_104, PORT_9, Expect::Ack);
    assert_eq!(found.len(), 1);
    let mut reader = ReplyReader::new("chain", 1_700_000_104, PORT_10, Expect::Ack);
    let error = reader.feed(&CHAIN_ENOENT, &mut |_| Ok(())).unwrap_err();
    assert!(matches!(error, NetfilterError::Kernel { errno: libc::ENOENT, .. }), "{error:?}");
}

/// The captured objects as a [`Recorded`] source: what the readers of
/// both modes see in the capture namespace.
fn recorded() -> Recorded {
    let mut source = Recorded { generation: 3, ..Recorded::default() };
    let table = |t: &str| (Family::Ip, t.to_string());
    let sets = split_messages(&SETS_DATAGRAM)
        .into_iter()
        .map(|bytes| match decode("sets", bytes).unwrap() {
            NfTablesMessage::NewSet(set) => set_from(&set).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    source.sets.insert(table("kube-proxy"), sets);
    for (set, datagrams, port) in [
        ("service-ips", vec![&SERVICE_IPS_DATAGRAM[..], &SERVICE_IPS_DONE[..]], PORT_3),
        ("no-endpoint-services", vec![&NO_ENDPOINTS_DATAGRAM[..], &NO_ENDPOINTS_DONE[..]], PORT_4),
        ("cluster-ips", vec![&CLUSTER_IPS_DATAGRAM[..], &CLUSTER_IPS_DONE[..]], PORT_5),
        ("__map0", vec![&MAP0_DATAGRAM[..], &MAP0_DONE[..]], PORT_6),
    ] {
        let key = (Family::Ip, "kube-proxy".to_string(), set.to_string());
        source.elements.insert(key, elements_of(&datagrams, port));
    }
    source.rules.insert(table("kube-proxy"), rules_of(&NFT_RULES_DATAGRAM, PORT_7));
    source.rules.insert(table("nat"), rules_of(&NAT_RULES_DATAGRAM, PORT_8));
    source.chains.push((Family::Ip, "nat".into(), "KUBE-SERVICES".into()));
    source
}

#[test]
fn captured_objects_make_the_services_of_both_modes() {
    let endpoint: SocketAddr = "198.18.2.2:53".parse().unwrap();
    let nft = crate::service::nftables::read_family(&mut recorded(), Family::Ip).unwrap().unwrap();
    assert_eq!(nft.skipped, Vec::<String>::new());
    // 198.19.0.11 of no-endpoint-services is not in cluster-ips here: not a
    // ClusterIP (an external IP, as far as kube-proxy's sets say).
    assert_eq!(nft.services.len(), 1, "{nft:?}");
    let dns = &nft.services[0];
    assert_eq!((dns.name.as_str(), dns.port_name.as_str()), ("kube-dns", "dns"));
    assert_eq!(dns.cluster_ips, ["198.19.0.10".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!((dns.endpoints.as_slice(), dns.proxy_mode), (&[endpoint][..], ProxyMode::Nftables));
    // Without the cluster-ips set (kube-proxy before 1.31) an element that
    // goes to the reject chain is a ClusterIP without endpoints.
    let mut older = recorded();
    older.elements.retain(|(_, _, set), _| set != "cluster-ips");
    let nft = crate::service::nftables::read_family(&mut older, Family::Ip).unwrap().unwrap();
    assert_eq!(nft.services.len(), 2, "{nft:?}");
    let empty = &nft.services[0];
    assert_eq!((empty.name.as_str(), empty.port, empty.protocol), ("empty", 80, Protocol::Tcp));
    assert_eq!(empty.endpoints, []);

    let ipt = crate::service::iptables::read_family(&mut recorded(), Family::Ip).unwrap().unwrap();
    assert_eq!(ipt.skipped, Vec::<String>::new());
    assert_eq!(ipt.services.len(), 1, "{ipt:?}");
    assert_eq!((ipt.services[0].port, ipt.services[0].protocol), (53, Protocol::Udp));
    assert_eq!(ipt.services[0].endpoints, [endpoint]);

    // No such table, no such chain: nothing, not an error.
    assert_eq!(crate::service::nftables::read_family(&mut recorded(), Family::Ip6).unwrap(), None);
    assert_eq!(crate::service::iptables::read_family(&mut recorded(), Family::Ip6).unwrap(), None);
}

/// A source whose generation moves between every two questions: the
/// readers give up instead of mixing two states of the rules.
#[test]
fn a_ruleset_changing_underneath_is_never_mixed() {
    struct Moving(Recorded);
    impl Source for Moving {
        fn generation(&mut self) -> Result<u32, NftError> {
            self.0.generation += 1;
            Ok(self.0.generation)
        }
        fn chain_exists(&mut self, f: Family, t: &str, c: &str) -> Result<bool, NftError> {
            self.0.chain_exists(f, t, c)
        }
        fn sets(&mut self, f: Family, t: &str) -> Result<Option<Vec<NftSet>>, NftError> {
            self.0.sets(f, t)
        }
        fn elements(&mut self, f: Family, t: &str, s: &str) -> Result<Vec<NftElement>, NftError> {
            self.0.elements(f, t, s)
        }
        fn rules(
            &mut self,
            f: Family,
            t: &str,
            c: Option<&str>,
            keep: &dyn Fn(&str) -> bool,
        ) -> Result<Vec<NftRule>, NftError> {
            self.0.rules(f, t, c, keep)
        }
    }
    let error =
        crate::service::nftables::read_family(&mut Moving(recorded()), Family::Ip).unwrap_err();
    assert!(matches!(error, NftError::Changing { attempts: SNAPSHOT_ATTEMPTS }), "{error:?}");
    assert!(error.to_string().contains("no partial reading"), "{error}");
}

#[test]
fn truncated_and_garbled_messages_never_panic() {
    for datagram in [
        &NFT_RULES_DATAGRAM[..],
        &NAT_RULES_DATAGRAM[..],
        &SERVICE_IPS_DATAGRAM[..],
        &NO_ENDPOINTS_DATAGRAM[..],
        &MAP0_DATAGRAM[..],
    ] {
        let body = &datagram[20..];
        for cut in 0..body.len() {
            let _ = decode_rule(&body[..cut]);
            let _ = decode_elements(&body[..cut], &mut Vec::new());
            let _ = raw_rule_chain(&body[..cut]);
        }
        // Every byte flipped in turn.
        let mut bytes = body.to_vec();
        for i in 0..bytes.len() {
            bytes[i] ^= 0xff;
            if let Ok(rule) = decode_rule(&bytes) {
                let _ = crate::service::iptables::netlink_rule(Family::Ip, &rule);
            }
            let _ = decode_elements(&bytes, &mut Vec::new());
            bytes[i] ^= 0xff;
        }
    }
}

#[test]
fn registers_follow_writes_and_overlaps() {
    let mut registers = Registers::default();
    // NFT_REG_1 is NFT_REG32_00..03: a 16-byte write there covers reg32 01.
    registers.write(1, 16, Value::Const(vec![7; 16]));
    assert_eq!(registers.read(9).map(|(_, offset)| offset), Some(4));
    // A write to NFT_REG32_01 clobbers the 16-byte value.
    registers.write(9, 2, Value::Const(vec![0, 53]));
    assert_eq!(registers.read(1), None);
    assert_eq!(registers.read(9), Some((&Value::Const(vec![0, 53]), 0)));
    registers.forget();
    assert_eq!(registers.read(9), None);
    assert_eq!(register_slot(0), None);
    assert_eq!(register_slot(24), None);
    // Writes to no register are ignored.
    registers.write(0, 4, Value::Const(vec![1; 4]));
    registers.write(99, 4, Value::Const(vec![1; 4]));
    assert_eq!(registers.read(1), None);
}

#[test]
fn udata_comments() {
    assert_eq!(udata_comment(b"\x00\x04abc\x00").as_deref(), Some("abc"));
    assert_eq!(udata_comment(b"\x01\x01x\x00\x02hi").as_deref(), Some("hi"));
    assert_eq!(udata_comment(b"\x00\x09abc"), None);
    assert_eq!(udata_comment(b""), None);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Captured rule and element messages with bytes changed anywhere
    /// (lengths, types, values) and cut anywhere: decoding gives an error
    /// or objects, and the readers of both modes take whatever decodes,
    /// never panicking.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let captures: Vec<&'static [u8]> = vec![
            &NFT_RULES_DATAGRAM[20..],
            &NAT_RULES_DATAGRAM[20..],
            &SERVICE_IPS_DATAGRAM[20..],
            &NO_ENDPOINTS_DATAGRAM[20..],
            &MAP0_DATAGRAM[20..],
        ];
        (
            proptest::sample::select(captures),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(bytes, edits, cut)| {
                let mut bytes = bytes.to_vec();
                for (at, value) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
                let keep = bytes.len() - cut.index(bytes.len() / 4 + 1);
                bytes.truncate(keep);
                bytes
            })
    }

    /// Any expression, with registers and bytes drawn from small ranges so
    /// that expressions meet each other's registers.
    fn expression() -> impl Strategy<Value = Expr> {
        let register = prop_oneof![0u32..=4, 8u32..=24];
        let bytes = prop::collection::vec(any::<u8>(), 0..24);
        let verdict = prop_oneof![
            Just(Verdict::Accept),
            Just(Verdict::Drop),
            Just(Verdict::Return),
            Just(Verdict::Other(3)),
            "(KUBE-SEP-A|KUBE-SVC-A|endpoint-x|service-x)".prop_map(Verdict::Jump),
            "(endpoint-x|KUBE-SEP-A)".prop_map(Verdict::Goto),
        ];
        let data =
            prop_oneof![bytes.clone().prop_map(Data::Value), verdict.prop_map(Data::Verdict)];
        prop_oneof![
            (0u32..4, 0u32..30, 0u32..20, register.clone())
                .prop_map(|(base, offset, len, dreg)| Expr::Payload { base, offset, len, dreg }),
            (0u32..20, register.clone()).prop_map(|(key, dreg)| Expr::Meta { key, dreg }),
            (register.clone(), 0u32..6, bytes.clone()).prop_map(|(sreg, op, data)| Expr::Cmp {
                sreg,
                op,
                data
            }),
            (register.clone(), register.clone(), bytes.clone(), bytes.clone())
                .prop_map(|(sreg, dreg, mask, xor)| Expr::Bitwise { sreg, dreg, mask, xor }),
            (register.clone(), data).prop_map(|(dreg, data)| Expr::Immediate { dreg, data }),
            ("(__map0|service-ips|nope)", register.clone(), prop::option::of(register.clone()))
                .prop_map(|(set, sreg, dreg)| Expr::Lookup { set, sreg, dreg, flags: 0 }),
            (
                0u32..2,
                prop::option::of((register.clone(), prop::option::of(register.clone()))),
                prop::option::of((register.clone(), prop::option::of(register))),
                0u32..8,
            )
                .prop_map(|(kind, addr, proto, flags)| Expr::Nat {
                    kind,
                    family: 2,
                    addr,
                    proto,
                    flags
                }),
            (
                "(comment|udp|tcp|sctp|statistic)",
                0u32..3,
                prop::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(name, revision, info)| Expr::Match {
                    name,
                    revision,
                    info
                }),
            ("(DNAT|REJECT|MARK)", 0u32..4, prop::collection::vec(any::<u8>(), 0..60))
                .prop_map(|(name, revision, info)| Expr::Target { name, revision, info }),
            "(counter|numgen|ct|fib)".prop_map(Expr::Other),
        ]
    }

    fn rule() -> impl Strategy<Value = NftRule> {
        (
            "(KUBE-SERVICES|KUBE-SVC-A|KUBE-SEP-A|service-AAAAAAAA-kube-system/kube-dns/udp/dns|endpoint-x)",
            prop::collection::vec(expression(), 0..8),
        )
            .prop_map(|(chain, exprs)| NftRule { chain, handle: 1, exprs, comment: None })
    }

    proptest! {
        /// Rules of any expressions, in both modes' tables next to the
        /// captured ones: the readers never panic.
        #[test]
        fn any_expressions_never_panic(rules in prop::collection::vec(rule(), 0..12)) {
            let mut source = recorded();
            for rule in &rules {
                let _ = crate::service::iptables::netlink_rule(Family::Ip, rule);
                let _ = crate::service::iptables::netlink_rule(Family::Ip6, rule);
            }
            for table in ["kube-proxy", "nat"] {
                source.rules.entry((Family::Ip, table.to_string())).or_default().extend(rules.iter().cloned());
            }
            let _ = crate::service::nftables::read_family(&mut source.clone(), Family::Ip);
            let _ = crate::service::iptables::read_family(&mut source, Family::Ip);
        }

        #[test]
        fn mutated_captures_never_panic(bytes in mutated()) {
            let mut source = recorded();
            if let Ok(rule) = decode_rule(&bytes) {
                let _ = crate::service::iptables::netlink_rule(Family::Ip, &rule);
                for table in ["kube-proxy", "nat"] {
                    source.rules.entry((Family::Ip, table.to_string())).or_default().push(rule.clone());
                }
            }
            let mut elements = Vec::new();
            if decode_elements(&bytes, &mut elements).is_ok() {
                for set in ["service-ips", "no-endpoint-services", "cluster-ips", "__map0"] {
                    let key = (Family::Ip, "kube-proxy".to_string(), set.to_string());
                    source.elements.entry(key).or_default().extend(elements.iter().cloned());
                }
            }
            let _ = crate::service::nftables::read_family(&mut source.clone(), Family::Ip);
            let _ = crate::service::iptables::read_family(&mut source, Family::Ip);
        }

        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_rule(&bytes);
            let _ = decode_elements(&bytes, &mut Vec::new());
            let _ = raw_rule_chain(&bytes);
            let _ = udata_comment(&bytes);
            prop_assert!(walk(&bytes).count() <= bytes.len() / 4);
        }
    }
}

/// The shared dump loop of the socket code, driven by the captured rule
/// dump: the first attempt carries `NLM_F_DUMP_INTR` on its first rule, so
/// the dump is made again, and what the rule consumer keeps is the second
/// attempt's rules only (no rule of the abandoned attempt, none twice).
#[test]
fn an_interrupted_rule_dump_restarts_and_keeps_one_attempt() {
    use crate::netfilter::dump::{dump_with, Deadline, Received, Transport};
    use netlink_packet_core::NLM_F_DUMP_INTR;
    use std::time::Duration;

    struct Replay {
        attempts: Vec<Vec<Vec<u8>>>,
        queue: Vec<Vec<u8>>,
        buffer: Vec<u8>,
        sequence: u32,
        sent: usize,
    }
    impl Transport for Replay {
        fn port(&self) -> u32 {
            PORT_7
        }
        fn send(&mut self, bytes: &[u8]) -> Result<(), NetfilterError> {
            self.sequence = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
            self.queue = self.attempts.remove(0);
            self.queue.reverse();
            self.sent += 1;
            Ok(())
        }
        fn recv(&mut self, _: Duration) -> Result<Received<'_>, NetfilterError> {
            let Some(mut datagram) = self.queue.pop() else { return Ok(Received::TimedOut) };
            // The kernel echoes the request's sequence number.
            let mut at = 0;
            while at + 16 <= datagram.len() {
                let len = u32::from_ne_bytes(datagram[at..at + 4].try_into().unwrap()) as usize;
                datagram[at + 8..at + 12].copy_from_slice(&self.sequence.to_ne_bytes());
                at += (len + 3) & !3;
            }
            self.buffer = datagram;
            Ok(Received::Datagram(&self.buffer))
        }
        fn drain(&mut self) {}
    }

    let done = SETS_DONE_FOR_RULES(PORT_7);
    let mut interrupted = NFT_RULES_DATAGRAM.to_vec();
    // nlmsg_flags of the first message (bytes 6-7).
    interrupted[6] |= NLM_F_DUMP_INTR as u8;
    let mut transport = Replay {
        attempts: vec![vec![interrupted, done.clone()], vec![NFT_RULES_DATAGRAM.to_vec(), done]],
        queue: Vec::new(),
        buffer: Vec::new(),
        sequence: 0,
        sent: 0,
    };
    let mut rules = Vec::new();
    let keep = |_: &str| true;
    let message = NfTablesMessage::GetRule(RuleMessage {
        attributes: vec![RuleAttribute::Table("kube-proxy".into())],
    });
    let summary = dump_with(
        &mut transport,
        &mut 1,
        "nf_tables rule dump",
        NetfilterProtoFamily::IPv4,
        &message,
        Deadline::after(Duration::from_secs(5)),
        Duration::from_secs(1),
        rule_consumer(&mut rules, &keep),
    )
    .unwrap();
    assert_eq!((summary.attempts, transport.sent), (2, 2));
    let chains: Vec<&str> = rules.iter().map(|r| r.chain.as_str()).collect();
    assert_eq!(chains.len(), 3, "{chains:?}");
    assert_eq!(chains[0], "reject-chain");
}

/// Every question a reader asks shares one deadline: once it has passed,
/// the next one is refused at once with the budget named.
#[test]
fn one_deadline_bounds_a_whole_reading() {
    let mut reader = Reader::with_budget(std::time::Duration::from_millis(1)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let started = std::time::Instant::now();
    for error in [
        reader.generation().unwrap_err(),
        reader.sets(Family::Ip, "kube-proxy").unwrap_err(),
        reader.rules(Family::Ip, "nat", None, &|_| true).unwrap_err(),
        reader.elements(Family::Ip, "kube-proxy", "service-ips").unwrap_err(),
        reader.chain_exists(Family::Ip, "nat", "KUBE-SERVICES").unwrap_err(),
    ] {
        assert!(matches!(error, NftError::Netlink(NetfilterError::Deadline { .. })), "{error:?}");
        assert!(error.to_string().contains("1ms"), "{error}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}
